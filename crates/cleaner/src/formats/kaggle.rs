//! The Kaggle Flickr8k layout (and the synthetic dataset): `captions.txt`, a CSV file with
//! header `image,caption` and RFC-4180 quoting (captions with commas are quoted, quotes
//! doubled). An image's caption number is its position among that image's rows.

use std::collections::HashMap;
use std::path::Path;

use anyhow::{Context, Result, bail};

use crate::source::{Parsed, RawCaption, Skipped, caption_index, read_text};

pub fn parse(path: &Path) -> Result<Parsed> {
    let bytes = read_text(path)?;
    let mut reader = csv::ReaderBuilder::new()
        .flexible(true)
        .from_reader(bytes.as_slice());
    let headers = reader
        .headers()
        .with_context(|| format!("{}:1: cannot read the CSV header", path.display()))?
        .clone();
    if headers.iter().map(str::trim).collect::<Vec<_>>() != ["image", "caption"] {
        bail!(
            "{}:1: expected the header `image,caption`, found `{}`",
            path.display(),
            headers.iter().collect::<Vec<_>>().join(",")
        );
    }
    let mut parsed = Parsed::default();
    let mut seen: HashMap<String, usize> = HashMap::new();
    for record in reader.byte_records() {
        let skip = |line: usize, reason: String| Skipped {
            file: path.to_path_buf(),
            line,
            reason,
        };
        let record = match record {
            Ok(record) => record,
            Err(e) => {
                let line = e.position().map_or(0, |p| p.line() as usize);
                parsed
                    .skipped
                    .push(skip(line, format!("malformed CSV ({e})")));
                continue;
            }
        };
        let line = record.position().map_or(0, |p| p.line() as usize);
        if record.len() != 2 {
            parsed.skipped.push(skip(
                line,
                format!("expected 2 fields (image,caption), found {}", record.len()),
            ));
            continue;
        }
        let (Ok(image), Ok(raw)) = (
            std::str::from_utf8(&record[0]),
            std::str::from_utf8(&record[1]),
        ) else {
            parsed.skipped.push(skip(line, "not valid UTF-8".into()));
            continue;
        };
        let image = image.trim().to_string();
        let count = seen.entry(image.clone()).or_default();
        match caption_index(*count) {
            Ok(caption_idx) => parsed.captions.push(RawCaption {
                image,
                caption_idx,
                raw: raw.trim().to_string(),
                line,
            }),
            Err(reason) => parsed.skipped.push(skip(line, reason)),
        }
        *count += 1;
    }
    Ok(parsed)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn parse_text(text: &[u8]) -> Result<Parsed> {
        parse_file(text).1
    }

    /// Parses `text` from a temporary file, also giving the file's path for messages.
    fn parse_file(text: &[u8]) -> (String, Result<Parsed>) {
        let file = tempfile::NamedTempFile::new().unwrap();
        std::fs::write(file.path(), text).unwrap();
        (file.path().display().to_string(), parse(file.path()))
    }

    #[test]
    fn quoted_commas_and_doubled_quotes() {
        let parsed = parse_text(
            b"image,caption\n\
              1000268201_693b08cb0e.jpg,A child in a pink dress is climbing up a set of stairs in an entry way .\n\
              1000268201_693b08cb0e.jpg,\"A girl , in pink , going into a wooden building .\"\n\
              1001773457_577c3a7d70.jpg,\"A dog named \"\"Spot\"\" runs .\"\n",
        )
        .unwrap();
        assert!(parsed.skipped.is_empty());
        assert_eq!(parsed.captions.len(), 3);
        assert_eq!(
            parsed.captions[1].raw,
            "A girl , in pink , going into a wooden building ."
        );
        assert_eq!(parsed.captions[1].caption_idx, 1);
        assert_eq!(parsed.captions[2].raw, "A dog named \"Spot\" runs .");
        assert_eq!(parsed.captions[2].caption_idx, 0);
        assert_eq!(parsed.captions[2].line, 4);
    }

    #[test]
    fn bad_rows_are_skipped_with_their_line() {
        let (path, parsed) =
            parse_file(b"image,caption\na.jpg,ok\nb.jpg,too,many\nc.jpg,\xff\xfe\n");
        let parsed = parsed.unwrap();
        assert_eq!(parsed.captions.len(), 1);
        let reasons: Vec<String> = parsed.skipped.iter().map(ToString::to_string).collect();
        assert_eq!(
            reasons,
            [
                format!("{path}:3: expected 2 fields (image,caption), found 3"),
                format!("{path}:4: not valid UTF-8"),
            ]
        );
    }

    #[test]
    fn wrong_header_and_empty_file_are_errors() {
        let (path, parsed) = parse_file(b"file,text\na,b\n");
        assert_eq!(
            parsed.unwrap_err().to_string(),
            format!("{path}:1: expected the header `image,caption`, found `file,text`")
        );
        let (path, parsed) = parse_file(b"");
        assert_eq!(
            parsed.unwrap_err().to_string(),
            format!("{path}: the file is empty")
        );
    }
}
