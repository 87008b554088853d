//! Writing files so that they appear whole or not at all: a hidden temp file in the target
//! directory, renamed into place once complete (a rename within a directory is atomic).
//!
//! Temp files are named `.{name}.{random}.tmp` by [`temp_beside`]; [`temp_target`] reads that
//! name back, so every cleanup of a killed run's leftovers recognises exactly these files.

use std::io::Write;
use std::path::Path;

use crate::error::ContractError;

const TEMP_SUFFIX: &str = ".tmp";

/// A hidden temp file beside `path` (`.name.XXXXXX.tmp`), creating the directory if needed.
pub fn temp_beside(path: &Path) -> Result<tempfile::NamedTempFile, ContractError> {
    let io = |error| ContractError::io(path, error);
    let dir = match path.parent() {
        Some(dir) if !dir.as_os_str().is_empty() => dir,
        _ => Path::new("."),
    };
    std::fs::create_dir_all(dir).map_err(io)?;
    let name = path.file_name().unwrap_or_default().to_string_lossy();
    tempfile::Builder::new()
        .prefix(&format!(".{name}."))
        .suffix(TEMP_SUFFIX)
        .permissions(readable())
        .tempfile_in(dir)
        .map_err(io)
}

/// The file name a temp file of [`temp_beside`] was going to become (`.a.parquet.X1b2.tmp` ->
/// `a.parquet`); `None` for any other name.
pub fn temp_target(file_name: &str) -> Option<&str> {
    let inner = file_name.strip_prefix('.')?.strip_suffix(TEMP_SUFFIX)?;
    let (target, random) = inner.rsplit_once('.')?;
    (!target.is_empty() && !random.is_empty()).then_some(target)
}

/// Removes the temp files in `dir` left by writes of `wanted` targets that never finished (a
/// killed run). Returns how many were removed. A missing `dir` has none.
pub fn remove_stale_temps(
    dir: &Path,
    wanted: impl Fn(&str) -> bool,
) -> Result<usize, ContractError> {
    let entries = match std::fs::read_dir(dir) {
        Ok(entries) => entries,
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => return Ok(0),
        Err(e) => return Err(ContractError::io(dir, e)),
    };
    let mut removed = 0;
    for entry in entries {
        let entry = entry.map_err(|e| ContractError::io(dir, e))?;
        let name = entry.file_name();
        if temp_target(&name.to_string_lossy()).is_some_and(&wanted) {
            std::fs::remove_file(entry.path()).map_err(|e| ContractError::io(&entry.path(), e))?;
            removed += 1;
        }
    }
    Ok(removed)
}

/// Flushes `temp` to disk and renames it to `path`. On failure the temp file is removed.
pub fn publish(temp: tempfile::NamedTempFile, path: &Path) -> Result<(), ContractError> {
    let io = |error| ContractError::io(path, error);
    temp.as_file().sync_all().map_err(io)?;
    temp.persist(path).map_err(|e| io(e.error))?;
    Ok(())
}

/// Writes `bytes` to `path` atomically.
pub fn write_atomically(path: &Path, bytes: &[u8]) -> Result<(), ContractError> {
    let mut temp = temp_beside(path)?;
    temp.write_all(bytes)
        .map_err(|error| ContractError::io(path, error))?;
    publish(temp, path)
}

/// Outputs are ordinary files others may read (temp files default to owner-only).
fn readable() -> std::fs::Permissions {
    std::os::unix::fs::PermissionsExt::from_mode(0o644)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn written_whole_readable_and_nothing_left_beside() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("sub/out.json");
        write_atomically(&path, b"{}").unwrap();
        assert_eq!(std::fs::read(&path).unwrap(), b"{}");
        use std::os::unix::fs::PermissionsExt;
        assert_eq!(
            std::fs::metadata(&path).unwrap().permissions().mode() & 0o777,
            0o644
        );
        assert_eq!(
            std::fs::read_dir(dir.path().join("sub")).unwrap().count(),
            1
        );
    }

    #[test]
    fn temp_names_read_back_to_their_target() {
        let dir = tempfile::tempdir().unwrap();
        let temp = temp_beside(&dir.path().join("best.mpk")).unwrap();
        let name = temp
            .path()
            .file_name()
            .unwrap()
            .to_string_lossy()
            .into_owned();
        assert_eq!(temp_target(&name), Some("best.mpk"));
        assert_eq!(
            temp_target(".part-00001.parquet.a1B2c3.tmp"),
            Some("part-00001.parquet")
        );
        for other in [
            "best.mpk",
            ".best.mpk",
            ".tmp",
            "..x.tmp",
            "best.mpk.tmp",
            ".x..tmp",
        ] {
            assert_eq!(temp_target(other), None, "{other}");
        }
    }

    #[test]
    fn stale_temps_of_wanted_targets_are_removed_and_nothing_else() {
        let dir = tempfile::tempdir().unwrap();
        let keep = [
            "part-00000.parquet",
            ".part-00001.parquet.Zz9.tmp",
            "notes.tmp",
        ];
        for name in keep.iter().chain([".part-00002.parquet.Aa1.tmp"].iter()) {
            std::fs::write(dir.path().join(name), b"x").unwrap();
        }
        let removed = remove_stale_temps(dir.path(), |t| t == "part-00002.parquet").unwrap();
        assert_eq!(removed, 1);
        let mut left: Vec<String> = std::fs::read_dir(dir.path())
            .unwrap()
            .map(|e| e.unwrap().file_name().to_string_lossy().into_owned())
            .collect();
        left.sort();
        let mut expected: Vec<String> = keep.iter().map(|s| s.to_string()).collect();
        expected.sort();
        assert_eq!(left, expected);
        assert_eq!(
            remove_stale_temps(&dir.path().join("none"), |_| true).unwrap(),
            0
        );
    }
}
