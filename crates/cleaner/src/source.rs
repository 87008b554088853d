//! What every dataset layout is read into: raw captions with the file and line they came
//! from, plus the lines that had to be skipped and why.

use std::path::{Path, PathBuf};

use anyhow::{Context, Result, bail};

/// One caption as the dataset states it.
#[derive(Debug, Clone, PartialEq)]
pub struct RawCaption {
    pub image: String,
    pub caption_idx: u8,
    pub raw: String,
    /// 1-based line (or record/entry number) in the source file, for messages.
    pub line: usize,
}

/// A line or entry that could not be used.
#[derive(Debug, Clone, PartialEq)]
pub struct Skipped {
    pub file: PathBuf,
    pub line: usize,
    pub reason: String,
}

impl std::fmt::Display for Skipped {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "{}:{}: {}", self.file.display(), self.line, self.reason)
    }
}

/// Captions read from one caption file.
#[derive(Debug, Default)]
pub struct Parsed {
    pub captions: Vec<RawCaption>,
    pub skipped: Vec<Skipped>,
}

/// A caption file's bytes as UTF-8. Editors on Windows save text as UTF-16 (Notepad's
/// "Unicode") or put a byte-order mark before UTF-8: both are read. UTF-16 without a
/// byte-order mark cannot be told apart reliably, so a file that looks like it is refused
/// in one sentence. An empty file is an error: it is never what the user meant.
pub fn read_text(path: &Path) -> Result<Vec<u8>> {
    let bytes = std::fs::read(path).with_context(|| format!("reading {}", path.display()))?;
    let text = match bytes.as_slice() {
        [0xEF, 0xBB, 0xBF, rest @ ..] => rest.to_vec(),
        [0xFF, 0xFE, rest @ ..] => utf16(path, rest, u16::from_le_bytes)?,
        [0xFE, 0xFF, rest @ ..] => utf16(path, rest, u16::from_be_bytes)?,
        _ if looks_like_utf16(&bytes) => bail!(
            "{} is UTF-16 without a byte-order mark: save it as UTF-8",
            path.display()
        ),
        _ => bytes,
    };
    if text.iter().all(u8::is_ascii_whitespace) {
        bail!("{}: the file is empty", path.display());
    }
    Ok(text)
}

fn utf16(path: &Path, bytes: &[u8], unit: fn([u8; 2]) -> u16) -> Result<Vec<u8>> {
    let (pairs, odd) = bytes.as_chunks::<2>();
    let units: Vec<u16> = pairs.iter().map(|&pair| unit(pair)).collect();
    match String::from_utf16(&units) {
        Ok(text) if odd.is_empty() => Ok(text.into_bytes()),
        _ => bail!(
            "{} is UTF-16 (it starts with a byte-order mark) but not valid UTF-16: save it as UTF-8",
            path.display()
        ),
    }
}

/// Text where every other byte of the start is zero: ASCII written as UTF-16.
fn looks_like_utf16(bytes: &[u8]) -> bool {
    let start = &bytes[..bytes.len().min(1024)];
    start.len() >= 4 && start.iter().filter(|&&b| b == 0).count() * 3 >= start.len()
}

/// Reads a text file as lines (see [`read_text`]), reporting (not failing on) lines that
/// are not UTF-8.
pub fn read_lines(path: &Path, parsed: &mut Parsed) -> Result<Vec<(usize, String)>> {
    let bytes = read_text(path)?;
    let mut lines = Vec::new();
    for (i, line) in bytes.split(|&b| b == b'\n').enumerate() {
        let line = line.strip_suffix(b"\r").unwrap_or(line);
        match std::str::from_utf8(line) {
            Ok(text) => lines.push((i + 1, text.to_string())),
            Err(e) => parsed.skipped.push(Skipped {
                file: path.to_path_buf(),
                line: i + 1,
                reason: format!("not valid UTF-8 ({e})"),
            }),
        }
    }
    Ok(lines)
}

/// The caption number of an image, which the contract stores as uint8.
pub fn caption_index(n: usize) -> Result<u8, String> {
    u8::try_from(n).map_err(|_| format!("caption number {n} is over 255"))
}

#[cfg(test)]
mod tests {
    use super::*;

    const TEXT: &str = "image,caption\n1000268201_693b08cb0e.jpg,A child in a pink dress .\n";

    fn read(bytes: &[u8]) -> Result<Vec<u8>> {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("captions.txt");
        std::fs::write(&path, bytes).unwrap();
        read_text(&path).map_err(|e| {
            anyhow::anyhow!(
                "{}",
                e.to_string()
                    .replace(&dir.path().display().to_string(), "DIR")
            )
        })
    }

    fn utf16(bom: bool, big_endian: bool) -> Vec<u8> {
        let mut out = Vec::new();
        if bom {
            out.extend(if big_endian {
                [0xFE, 0xFF]
            } else {
                [0xFF, 0xFE]
            });
        }
        for unit in TEXT.encode_utf16() {
            out.extend(if big_endian {
                unit.to_be_bytes()
            } else {
                unit.to_le_bytes()
            });
        }
        out
    }

    #[test]
    fn utf16_with_a_byte_order_mark_and_utf8_with_one_are_read() {
        assert_eq!(read(&utf16(true, false)).unwrap(), TEXT.as_bytes());
        assert_eq!(read(&utf16(true, true)).unwrap(), TEXT.as_bytes());
        let mut with_bom = vec![0xEF, 0xBB, 0xBF];
        with_bom.extend_from_slice(TEXT.as_bytes());
        assert_eq!(read(&with_bom).unwrap(), TEXT.as_bytes());
        assert_eq!(read(TEXT.as_bytes()).unwrap(), TEXT.as_bytes());
    }

    #[test]
    fn utf16_without_a_mark_or_broken_is_refused_in_one_sentence() {
        assert_eq!(
            read(&utf16(false, false)).unwrap_err().to_string(),
            "DIR/captions.txt is UTF-16 without a byte-order mark: save it as UTF-8"
        );
        let mut broken = utf16(true, false);
        broken.extend([0x00, 0xD8, 0x41, 0x00]); // a lone high surrogate, then "A"
        assert_eq!(
            read(&broken).unwrap_err().to_string(),
            "DIR/captions.txt is UTF-16 (it starts with a byte-order mark) but not valid UTF-16: \
             save it as UTF-8"
        );
        assert_eq!(
            read(b" \n\n").unwrap_err().to_string(),
            "DIR/captions.txt: the file is empty"
        );
    }
}
