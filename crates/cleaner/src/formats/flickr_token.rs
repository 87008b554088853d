//! The original Flickr8k release: `Flickr8k.token.txt`, lines `<image>#<n><TAB><caption>`.
//!
//! Quirks of the real file: a few lines separate key and caption with a space instead of a
//! tab, and one key (`2258277193_586949ec62.jpg.1`) names an image the release lacks; that
//! one is excluded later as a missing image (or by the split lists).

use std::path::Path;

use anyhow::Result;

use crate::source::{Parsed, RawCaption, Skipped, caption_index, read_lines};

pub fn parse(path: &Path) -> Result<Parsed> {
    let mut parsed = Parsed::default();
    for (line_no, line) in read_lines(path, &mut parsed)? {
        if line.trim().is_empty() {
            continue;
        }
        match parse_line(&line) {
            Ok((image, caption_idx, raw)) => parsed.captions.push(RawCaption {
                image,
                caption_idx,
                raw,
                line: line_no,
            }),
            Err(reason) => parsed.skipped.push(Skipped {
                file: path.to_path_buf(),
                line: line_no,
                reason,
            }),
        }
    }
    Ok(parsed)
}

/// Splits `image#n<TAB or space>caption`.
fn parse_line(line: &str) -> Result<(String, u8, String), String> {
    let (key, caption) = match line.split_once('\t') {
        Some(parts) => parts,
        None => line
            .split_once(' ')
            .ok_or_else(|| "expected `<image>#<n><TAB><caption>`".to_string())?,
    };
    let (image, number) = key
        .rsplit_once('#')
        .ok_or_else(|| format!("key {key:?} has no `#<n>` caption number"))?;
    let number: usize = number
        .parse()
        .map_err(|_| format!("key {key:?}: caption number {number:?} is not a number"))?;
    if image.is_empty() {
        return Err(format!("key {key:?} has no image name"));
    }
    Ok((
        image.to_string(),
        caption_index(number)?,
        caption.trim().to_string(),
    ))
}

#[cfg(test)]
mod tests {
    use super::parse_line;

    #[test]
    fn tab_and_space_separators() {
        let tab = parse_line("1000268201_693b08cb0e.jpg#1\tA girl going into a wooden building .")
            .unwrap();
        assert_eq!(
            tab,
            (
                "1000268201_693b08cb0e.jpg".into(),
                1,
                "A girl going into a wooden building .".into()
            )
        );
        let space =
            parse_line("1001773457_577c3a7d70.jpg#0 A black dog and a spotted dog are fighting")
                .unwrap();
        assert_eq!(space.0, "1001773457_577c3a7d70.jpg");
        assert_eq!(space.2, "A black dog and a spotted dog are fighting");
    }

    #[test]
    fn odd_key_keeps_its_name() {
        let (image, n, _) =
            parse_line("2258277193_586949ec62.jpg.1#2\tThree people are waiting .").unwrap();
        assert_eq!((image.as_str(), n), ("2258277193_586949ec62.jpg.1", 2));
    }

    #[test]
    fn malformed_lines_say_why() {
        assert_eq!(
            parse_line("no-separator-here").unwrap_err(),
            "expected `<image>#<n><TAB><caption>`"
        );
        assert_eq!(
            parse_line("a.jpg\tcaption").unwrap_err(),
            "key \"a.jpg\" has no `#<n>` caption number"
        );
        assert_eq!(
            parse_line("a.jpg#x\tcaption").unwrap_err(),
            "key \"a.jpg#x\": caption number \"x\" is not a number"
        );
        assert_eq!(
            parse_line("a.jpg#300\tcaption").unwrap_err(),
            "caption number 300 is over 255"
        );
    }
}
