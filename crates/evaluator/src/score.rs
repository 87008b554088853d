//! Scoring captions against references with the coco-caption metrics, from our Parquet
//! contracts or from plain TSV (`image<TAB>caption`, several reference lines per image), so
//! other systems' outputs are scored by exactly the same code. Both sides are cleaned with the
//! cleaner's rules first.

use std::collections::BTreeMap;
use std::path::Path;

use anyhow::{Context, Result, bail};
use contracts::tables::{CaptionsTable, PredictionsTable, read};
use contracts::text::clean_caption;
use serde::Serialize;

/// Metric names exactly as `eval/metrics.json` spells them, in coco-caption's order. METEOR is
/// left out (absent from the JSON, the table and the report) without its data.
pub const METRIC_KEYS: [&str; 7] = [
    "BLEU-1", "BLEU-2", "BLEU-3", "BLEU-4", "METEOR", "ROUGE-L", "CIDEr-D",
];

/// Loads METEOR's data folder (`evaluator.meteor_data`). Without the data METEOR is left out:
/// `None`, with one warning naming `make meteor-data`. An incomplete or corrupt folder is an
/// error naming the file.
pub fn load_meteor(dir: &Path) -> Result<Option<metrics::Meteor>> {
    match metrics::Meteor::load(dir) {
        Ok(meteor) => Ok(Some(meteor)),
        Err(e @ metrics::MeteorError::NoData { .. }) => {
            tracing::warn!("METEOR left out: {e}");
            Ok(None)
        }
        Err(e) => Err(e).context("loading METEOR's data (evaluator.meteor_data)"),
    }
}

/// Captions by image.
pub type Captions = BTreeMap<String, Vec<String>>;

/// Reads captions from a Parquet contract file (predictions or captions) or a TSV file, and
/// cleans them. A predictions file must hold one caption per image.
pub fn read_any(path: &Path, one_per_image: bool) -> Result<Captions> {
    let raw = if path.extension().is_some_and(|e| e == "parquet") {
        read_parquet(path)?
    } else {
        read_tsv(path)?
    };
    let mut out: Captions = BTreeMap::new();
    for (image, caption, line) in raw {
        let entry = out.entry(image.clone()).or_default();
        if one_per_image && !entry.is_empty() {
            bail!(
                "{}:{line}: a second caption for image {image}; a predictions file holds one per image",
                path.display()
            );
        }
        entry.push(clean_caption(&caption));
    }
    if out.is_empty() {
        bail!("{}: no captions", path.display());
    }
    Ok(out)
}

/// (image, caption, line or row number) from a Parquet file of ours: predictions carry a
/// `caption` column, captions.parquet a `raw` one.
fn read_parquet(path: &Path) -> Result<Vec<(String, String, usize)>> {
    let numbered = |rows: Vec<(String, String)>| {
        rows.into_iter()
            .enumerate()
            .map(|(i, (a, b))| (a, b, i + 1))
            .collect()
    };
    match read::<PredictionsTable>(path) {
        Ok((rows, _)) => Ok(numbered(
            rows.into_iter().map(|r| (r.image, r.caption)).collect(),
        )),
        Err(predictions_error) => match read::<CaptionsTable>(path) {
            Ok((rows, _)) => Ok(numbered(
                rows.into_iter().map(|r| (r.image, r.raw)).collect(),
            )),
            Err(_) => Err(predictions_error).with_context(|| {
                format!(
                    "{} is neither a predictions file nor a captions.parquet",
                    path.display()
                )
            }),
        },
    }
}

fn read_tsv(path: &Path) -> Result<Vec<(String, String, usize)>> {
    let text =
        std::fs::read_to_string(path).with_context(|| format!("reading {}", path.display()))?;
    let mut rows = Vec::new();
    for (i, line) in text.lines().enumerate() {
        if line.trim().is_empty() {
            continue;
        }
        let Some((image, caption)) = line.split_once('\t') else {
            bail!("{}:{}: expected `image<TAB>caption`", path.display(), i + 1);
        };
        rows.push((image.trim().to_string(), caption.to_string(), i + 1));
    }
    Ok(rows)
}

/// The metrics of one scored set, as written to `eval/metrics.json`.
#[derive(Debug, Clone, Serialize)]
pub struct MetricsReport {
    #[serde(flatten)]
    pub scores: BTreeMap<String, f64>,
    pub images: usize,
    #[serde(flatten)]
    pub context: BTreeMap<String, serde_json::Value>,
    /// Per-image CIDEr-D, in image order (not written to the JSON).
    #[serde(skip)]
    pub per_image: Vec<(String, f64)>,
}

/// Images present on only one side, reported and left out.
#[derive(Debug, Default)]
pub struct Unmatched {
    pub without_references: Vec<String>,
    pub without_prediction: Vec<String>,
}

/// Scores `predictions` against `references` over the images both hold, with METEOR when
/// `meteor` is given.
pub fn score(
    predictions: &Captions,
    references: &Captions,
    meteor: Option<&metrics::Meteor>,
) -> Result<(MetricsReport, Unmatched)> {
    let mut unmatched = Unmatched::default();
    let mut images = Vec::new();
    for image in predictions.keys() {
        if references.contains_key(image) {
            images.push(image.clone());
        } else {
            unmatched.without_references.push(image.clone());
        }
    }
    unmatched.without_prediction = references
        .keys()
        .filter(|i| !predictions.contains_key(*i))
        .cloned()
        .collect();
    if images.is_empty() {
        bail!("no image has both a prediction and references");
    }
    let words = |caption: &String| {
        caption
            .split_whitespace()
            .map(str::to_string)
            .collect::<Vec<_>>()
    };
    let candidates: Vec<Vec<String>> = images.iter().map(|i| words(&predictions[i][0])).collect();
    let refs: Vec<Vec<Vec<String>>> = images
        .iter()
        .map(|i| references[i].iter().map(words).collect())
        .collect();
    let scores = metrics::score_corpus(&candidates, &refs)?;
    let mut values = BTreeMap::from([
        ("BLEU-1", scores.bleu[0]),
        ("BLEU-2", scores.bleu[1]),
        ("BLEU-3", scores.bleu[2]),
        ("BLEU-4", scores.bleu[3]),
        ("ROUGE-L", scores.rouge_l),
        ("CIDEr-D", scores.cider_d),
    ]);
    if let Some(meteor) = meteor {
        // The same cleaned captions the other metrics score.
        let hypotheses: Vec<&str> = images.iter().map(|i| predictions[i][0].as_str()).collect();
        let texts: Vec<Vec<&str>> = images
            .iter()
            .map(|i| references[i].iter().map(String::as_str).collect())
            .collect();
        values.insert("METEOR", meteor.score_corpus(&hypotheses, &texts)?.corpus);
    }
    let report = MetricsReport {
        scores: values
            .into_iter()
            .map(|(k, v)| (k.to_string(), v))
            .collect(),
        images: images.len(),
        context: BTreeMap::new(),
        per_image: images.into_iter().zip(scores.cider_d_per_image).collect(),
    };
    Ok((report, unmatched))
}

impl Unmatched {
    /// Warns about images left out (the first few by name, then a count).
    pub fn warn(&self) {
        for (list, what) in [
            (
                &self.without_references,
                "has a prediction but no references",
            ),
            (&self.without_prediction, "has references but no prediction"),
        ] {
            for image in list.iter().take(5) {
                tracing::warn!("image {image} {what}: left out");
            }
            if list.len() > 5 {
                tracing::warn!("... {} images in all {what}", list.len());
            }
        }
    }
}

impl std::fmt::Display for MetricsReport {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        let context: Vec<String> = self
            .context
            .iter()
            .map(|(k, v)| format!("{k} {}", v.as_str().map_or(v.to_string(), str::to_string)))
            .collect();
        writeln!(f, "{} images; {}", self.images, context.join(", "))?;
        for key in METRIC_KEYS {
            if let Some(value) = self.scores.get(key) {
                writeln!(f, "  {key:<8} {value:.4}")?;
            }
        }
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn write(dir: &Path, name: &str, text: &str) -> std::path::PathBuf {
        let path = dir.join(name);
        std::fs::write(&path, text).unwrap();
        path
    }

    #[test]
    fn tsv_sides_are_cleaned_and_unmatched_images_reported() {
        let dir = tempfile::tempdir().unwrap();
        let preds = write(
            dir.path(),
            "p.tsv",
            "a.jpg\tA dog runs .\nb.jpg\tA cat\nz.jpg\tnobody\n",
        );
        let refs = write(
            dir.path(),
            "r.tsv",
            "a.jpg\ta dog runs\na.jpg\tA dog is running.\nb.jpg\ta cat sits\nc.jpg\tx\n",
        );
        let (report, unmatched) = score(
            &read_any(&preds, true).unwrap(),
            &read_any(&refs, false).unwrap(),
            None,
        )
        .unwrap();
        assert_eq!(report.images, 2);
        assert_eq!(unmatched.without_references, ["z.jpg"]);
        assert_eq!(unmatched.without_prediction, ["c.jpg"]);
        assert!(report.scores["BLEU-1"] > 0.8, "{report}");
        assert_eq!(report.per_image[0].0, "a.jpg");
    }

    #[test]
    fn the_terminal_table_lists_the_metrics_computed() {
        let mut report = MetricsReport {
            scores: METRIC_KEYS
                .iter()
                .enumerate()
                .map(|(i, k)| (k.to_string(), i as f64 / 10.0))
                .collect(),
            images: 2,
            context: [("split".to_string(), serde_json::json!("test"))].into(),
            per_image: Vec::new(),
        };
        assert_eq!(
            report.to_string(),
            "2 images; split test\n  BLEU-1   0.0000\n  BLEU-2   0.1000\n  BLEU-3   0.2000\n  \
             BLEU-4   0.3000\n  METEOR   0.4000\n  ROUGE-L  0.5000\n  CIDEr-D  0.6000\n"
        );
        report.scores.remove("METEOR");
        assert!(!report.to_string().contains("METEOR"));
        assert_eq!(report.to_string().lines().count(), 7);
    }

    #[test]
    fn two_predictions_for_one_image_are_refused_with_the_line() {
        let dir = tempfile::tempdir().unwrap();
        let preds = write(dir.path(), "p.tsv", "a.jpg\tone\na.jpg\ttwo\n");
        let err = read_any(&preds, true).unwrap_err().to_string();
        assert_eq!(
            err,
            format!(
                "{}:2: a second caption for image a.jpg; a predictions file holds one per image",
                preds.display()
            )
        );
    }

    #[test]
    fn a_line_without_a_tab_is_named() {
        let dir = tempfile::tempdir().unwrap();
        let preds = write(dir.path(), "p.tsv", "a.jpg\tok\nbroken line\n");
        assert_eq!(
            read_any(&preds, true).unwrap_err().to_string(),
            format!("{}:2: expected `image<TAB>caption`", preds.display())
        );
    }
}
