//! Karpathy's split JSON (`dataset_flickr8k.json`, also Flickr30k and COCO):
//! `images[].{filepath?, filename, split, sentences[].raw}`. Split `restval` counts as train.

use std::collections::HashMap;
use std::path::Path;

use anyhow::Result;
use contracts::Split;
use serde::Deserialize;

use crate::source::{Parsed, RawCaption, Skipped, caption_index, read_text};

#[derive(Deserialize)]
struct Dataset {
    images: Vec<Image>,
}

#[derive(Deserialize)]
struct Image {
    #[serde(default)]
    filepath: Option<String>,
    filename: String,
    split: String,
    sentences: Vec<Sentence>,
}

#[derive(Deserialize)]
struct Sentence {
    raw: String,
}

/// Captions plus the split each image belongs to.
pub fn parse(path: &Path) -> Result<(Parsed, HashMap<String, Split>)> {
    let bytes = read_text(path)?;
    let dataset: Dataset = serde_json::from_slice(&bytes).map_err(|e| {
        anyhow::anyhow!(
            "{}:{}: not a Karpathy split file ({e})",
            path.display(),
            e.line()
        )
    })?;
    let mut parsed = Parsed::default();
    let mut splits = HashMap::new();
    for (entry, image) in dataset.images.into_iter().enumerate() {
        let skip = |reason: String| Skipped {
            file: path.to_path_buf(),
            line: entry + 1,
            reason,
        };
        let split = match image.split.as_str() {
            "train" | "restval" => Split::Train,
            "val" => Split::Val,
            "test" => Split::Test,
            other => {
                parsed.skipped.push(skip(format!(
                    "image entry {}: unknown split {other:?}",
                    entry + 1
                )));
                continue;
            }
        };
        let name = match image.filepath.as_deref() {
            Some(dir) if !dir.is_empty() => format!("{dir}/{}", image.filename),
            _ => image.filename,
        };
        for (i, sentence) in image.sentences.into_iter().enumerate() {
            match caption_index(i) {
                Ok(caption_idx) => parsed.captions.push(RawCaption {
                    image: name.clone(),
                    caption_idx,
                    raw: sentence.raw.trim().to_string(),
                    line: entry + 1,
                }),
                Err(reason) => parsed.skipped.push(skip(reason)),
            }
        }
        splits.insert(name, split);
    }
    Ok((parsed, splits))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn restval_is_train_and_filepath_is_kept() {
        let file = tempfile::NamedTempFile::new().unwrap();
        std::fs::write(
            file.path(),
            r#"{"images": [
                {"filename": "a.jpg", "split": "restval", "sentences": [{"raw": "A dog ."}, {"raw": "A cat ."}]},
                {"filepath": "val2014", "filename": "b.jpg", "split": "test", "sentences": [{"raw": "Sky"}]},
                {"filename": "c.jpg", "split": "holdout", "sentences": [{"raw": "x"}]}
            ], "dataset": "flickr8k"}"#,
        )
        .unwrap();
        let (parsed, splits) = parse(file.path()).unwrap();
        assert_eq!(parsed.captions.len(), 3);
        assert_eq!(parsed.captions[1].caption_idx, 1);
        assert_eq!(splits["a.jpg"], Split::Train);
        assert_eq!(splits["val2014/b.jpg"], Split::Test);
        assert_eq!(
            parsed.skipped[0].to_string(),
            format!(
                "{}:3: image entry 3: unknown split \"holdout\"",
                file.path().display()
            )
        );
    }

    #[test]
    fn invalid_json_names_the_line() {
        let file = tempfile::NamedTempFile::new().unwrap();
        std::fs::write(file.path(), "{\"images\": [\n{\"filename\": }]}").unwrap();
        let err = parse(file.path()).unwrap_err().to_string();
        assert_eq!(
            err,
            format!(
                "{}:2: not a Karpathy split file (expected value at line 2 column 14)",
                file.path().display()
            )
        );
    }
}
