//! The data folder (`data/meteor/`, made by `make meteor-data`): which files, their sizes and
//! SHA-256 (`data.manifest`, shared with the script), and reading them checked.

use std::path::{Path, PathBuf};

use sha2::{Digest, Sha256};

use super::MeteorError;

/// The committed list of data files: `sha256 bytes path source` lines, `#` comments.
const MANIFEST: &str = include_str!("data.manifest");

pub(crate) const FUNCTION_WORDS: &str = "function/english.words";
pub(crate) const PREFIXES: &str = "nonbreaking/english.prefixes";
pub(crate) const EXCEPTIONS: &str = "synonym/english.exceptions";
pub(crate) const SYNSETS: &str = "synonym/english.synsets";
pub(crate) const PARAPHRASES: &str = "paraphrase-en.gz";

/// One file of the manifest.
#[derive(Debug, PartialEq, Eq)]
pub(crate) struct Entry {
    pub(crate) sha256: &'static str,
    pub(crate) bytes: u64,
    pub(crate) path: &'static str,
}

/// The manifest's files. The manifest is part of the source; `manifest_lists_every_file`
/// checks it parses.
pub(crate) fn manifest() -> Vec<Entry> {
    MANIFEST
        .lines()
        .filter(|l| !l.trim().is_empty() && !l.starts_with('#'))
        .map(|l| {
            let fields: Vec<&str> = l.split_whitespace().collect();
            Entry {
                sha256: fields[0],
                bytes: fields[1].parse().expect("data.manifest: byte count"),
                path: fields[2],
            }
        })
        .collect()
}

/// The checked contents of every manifest file, in manifest order.
pub(crate) struct Files {
    pub(crate) dir: PathBuf,
    contents: Vec<(&'static str, Vec<u8>)>,
}

impl Files {
    /// Reads every file of the manifest from `dir` and checks its size and SHA-256.
    ///
    /// A folder that does not exist, or holds none of the files, is [`MeteorError::NoData`];
    /// a missing, truncated or changed file is an error naming it.
    pub(crate) fn read(dir: &Path) -> Result<Self, MeteorError> {
        let entries = manifest();
        let no_data = || MeteorError::NoData {
            dir: dir.to_path_buf(),
        };
        if !dir.is_dir() || entries.iter().all(|e| !dir.join(e.path).exists()) {
            return Err(no_data());
        }
        let mut contents = Vec::with_capacity(entries.len());
        for entry in entries {
            let path = dir.join(entry.path);
            let io = |source| MeteorError::Io {
                path: path.clone(),
                source,
            };
            let bytes = match std::fs::metadata(&path) {
                Ok(meta) => meta.len(),
                Err(e) if e.kind() == std::io::ErrorKind::NotFound => {
                    return Err(MeteorError::MissingFile { path });
                }
                Err(e) => return Err(io(e)),
            };
            if bytes != entry.bytes {
                return Err(MeteorError::WrongSize {
                    path,
                    expected: entry.bytes,
                    actual: bytes,
                });
            }
            let data = std::fs::read(&path).map_err(io)?;
            let sha256 = hex(&Sha256::digest(&data));
            if sha256 != entry.sha256 {
                return Err(MeteorError::WrongHash {
                    path,
                    expected: entry.sha256.to_owned(),
                    actual: sha256,
                });
            }
            contents.push((entry.path, data));
        }
        Ok(Files {
            dir: dir.to_path_buf(),
            contents,
        })
    }

    pub(crate) fn path(&self, name: &str) -> PathBuf {
        self.dir.join(name)
    }

    pub(crate) fn bytes(&self, name: &str) -> &[u8] {
        self.contents
            .iter()
            .find(|(n, _)| *n == name)
            .map(|(_, data)| data.as_slice())
            .expect("a manifest file")
    }

    /// A file as UTF-8 text (the jar reads its resources as UTF-8).
    pub(crate) fn text(&self, name: &str) -> Result<&str, MeteorError> {
        let bytes = self.bytes(name);
        std::str::from_utf8(bytes).map_err(|e| MeteorError::Parse {
            path: self.path(name),
            line: 1 + bytes[..e.valid_up_to()]
                .iter()
                .filter(|&&b| b == b'\n')
                .count(),
            message: "not UTF-8 text".to_owned(),
        })
    }
}

fn hex(bytes: &[u8]) -> String {
    bytes.iter().map(|b| format!("{b:02x}")).collect()
}

#[cfg(test)]
pub(crate) mod tests_support {
    pub(crate) fn sha256_hex(bytes: &[u8]) -> String {
        use sha2::Digest;
        super::hex(&super::Sha256::digest(bytes))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn manifest_lists_every_file() {
        let entries = manifest();
        let paths: Vec<&str> = entries.iter().map(|e| e.path).collect();
        for name in [FUNCTION_WORDS, PREFIXES, EXCEPTIONS, SYNSETS, PARAPHRASES] {
            assert!(paths.contains(&name), "{name} not in data.manifest");
        }
        for e in &entries {
            assert_eq!(e.sha256.len(), 64, "{}", e.path);
            assert!(
                e.sha256.bytes().all(|b| b.is_ascii_hexdigit()),
                "{}",
                e.path
            );
        }
    }

    #[test]
    fn sha256_hex_is_lowercase() {
        assert_eq!(
            hex(&Sha256::digest(b"")),
            "e3b0c44298fc1c149afbf4c8996fb92427ae41e4649b934ca495991b7852b855"
        );
    }
}
