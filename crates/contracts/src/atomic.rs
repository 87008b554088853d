//! Writing files so that they appear whole or not at all: a hidden temp file in the target
//! directory, renamed into place once complete (a rename within a directory is atomic).

use std::io::Write;
use std::path::Path;

use crate::error::ContractError;

/// A hidden temp file beside `path` (`.name.XXXX.tmp`), creating the directory if needed.
pub fn temp_beside(path: &Path) -> Result<tempfile::NamedTempFile, ContractError> {
    let io = |source| ContractError::Io {
        path: path.to_path_buf(),
        source,
    };
    let dir = match path.parent() {
        Some(dir) if !dir.as_os_str().is_empty() => dir,
        _ => Path::new("."),
    };
    std::fs::create_dir_all(dir).map_err(io)?;
    let name = path.file_name().unwrap_or_default().to_string_lossy();
    tempfile::Builder::new()
        .prefix(&format!(".{name}."))
        .suffix(".tmp")
        .permissions(readable())
        .tempfile_in(dir)
        .map_err(io)
}

/// Flushes `temp` to disk and renames it to `path`.
pub fn publish(temp: tempfile::NamedTempFile, path: &Path) -> Result<(), ContractError> {
    let io = |source| ContractError::Io {
        path: path.to_path_buf(),
        source,
    };
    temp.as_file().sync_all().map_err(io)?;
    temp.persist(path).map_err(|e| io(e.error))?;
    Ok(())
}

/// Writes `bytes` to `path` atomically.
pub fn write_atomically(path: &Path, bytes: &[u8]) -> Result<(), ContractError> {
    let mut temp = temp_beside(path)?;
    temp.write_all(bytes).map_err(|source| ContractError::Io {
        path: path.to_path_buf(),
        source,
    })?;
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
}
