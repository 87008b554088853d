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

/// Reads a text file as lines, reporting (not failing on) lines that are not UTF-8.
/// An empty file is an error: it is never what the user meant.
pub fn read_lines(path: &Path, parsed: &mut Parsed) -> Result<Vec<(usize, String)>> {
    let bytes = std::fs::read(path).with_context(|| format!("reading {}", path.display()))?;
    if bytes.iter().all(u8::is_ascii_whitespace) {
        bail!("{}: the file is empty", path.display());
    }
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
