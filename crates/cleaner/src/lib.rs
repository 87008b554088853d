//! The cleaner stage: reads a raw captioned-image dataset in any known layout, cleans the
//! captions, assigns splits, and writes `captions.parquet`.

pub mod formats;
pub mod layout;
pub mod source;
pub mod splits;

use std::collections::{BTreeMap, BTreeSet, HashSet};
use std::fmt;
use std::path::{Path, PathBuf};

use anyhow::{Result, bail};
use contracts::config::CleanerConfig;
use contracts::tables::{CAPTIONS_FILE, CaptionRow, CaptionsTable, write};
use contracts::text::clean_caption;
use contracts::{Provenance, Split, Stage};

use crate::layout::{DatasetFiles, Layout};
use crate::source::{Parsed, Skipped};
use crate::splits::SplitSource;

/// What the cleaner needs to know.
#[derive(Debug, Clone)]
pub struct Options {
    pub dataset_dir: PathBuf,
    pub work_dir: PathBuf,
    /// Folder with the official Flickr8k split lists (used when the dataset has none).
    pub splits_dir: PathBuf,
    pub layout: Option<Layout>,
    pub config: CleanerConfig,
}

/// Counts the cleaner prints, so the user knows what was produced and what was dropped.
#[derive(Debug, Default)]
pub struct Summary {
    pub layout: Option<Layout>,
    pub captions_file: PathBuf,
    /// Captions and distinct images the caption file holds, before any filtering.
    pub read_captions: usize,
    pub read_images: usize,
    pub split_source: Option<SplitSource>,
    pub images: BTreeMap<Split, usize>,
    pub captions: BTreeMap<Split, usize>,
    pub dropped_empty: usize,
    pub dropped_duplicate: usize,
    pub dropped_not_in_split: usize,
    /// Images named by captions but absent from the image folder (captions excluded).
    pub missing_images: BTreeSet<String>,
    pub dropped_missing_image: usize,
    pub skipped: Vec<Skipped>,
}

/// Cleans the dataset and writes `work_dir/captions.parquet`.
pub fn run(options: &Options) -> Result<Summary> {
    let _lock = contracts::lock::lock_work_dir(&options.work_dir, "cleaner")?;
    let (rows, summary, provenance) = clean(options)?;
    write::<CaptionsTable>(&options.work_dir.join(CAPTIONS_FILE), &rows, &provenance)?;
    Ok(summary)
}

/// Everything but the writing: the rows, the summary and the provenance to store.
pub fn clean(options: &Options) -> Result<(Vec<CaptionRow>, Summary, Provenance)> {
    let files = layout::detect(&options.dataset_dir, options.layout)?;
    let (mut parsed, karpathy_splits) = match files.layout {
        Layout::Flickr8k => (formats::flickr_token::parse(&files.captions_file)?, None),
        Layout::Kaggle => (formats::kaggle::parse(&files.captions_file)?, None),
        Layout::Karpathy => {
            let (parsed, splits) = formats::karpathy::parse(&files.captions_file)?;
            (parsed, Some(splits))
        }
    };
    reject_unsafe_names(&files.captions_file, &mut parsed);
    let mut summary = Summary {
        layout: Some(files.layout),
        captions_file: files.captions_file.clone(),
        ..Summary::default()
    };
    let mut provenance = Provenance::new(
        Stage::Cleaner,
        serde_json::json!({ "layout": files.layout, "cleaner": options.config }),
    )
    .with_input("source", &files.captions_file)?;

    let images: BTreeSet<&str> = parsed.captions.iter().map(|c| c.image.as_str()).collect();
    summary.read_captions = parsed.captions.len();
    summary.read_images = images.len();
    let (splits, source) =
        assign_splits(options, &files, &images, karpathy_splits, &mut provenance)?;
    summary.split_source = Some(source.clone());
    provenance.config["split_source"] = serde_json::to_value(&source)?;
    // The featurizer finds the images through this record.
    provenance = provenance.with_image_dir(files.image_dir.as_deref());

    let mut rows = Vec::with_capacity(parsed.captions.len());
    let mut seen = HashSet::new();
    for caption in parsed.captions {
        let Some(&split) = splits.get(&caption.image) else {
            summary.dropped_not_in_split += 1;
            continue;
        };
        if let Some(dir) = &files.image_dir
            && !dir.join(&caption.image).is_file()
        {
            summary.dropped_missing_image += 1;
            summary.missing_images.insert(caption.image);
            continue;
        }
        if !seen.insert((caption.image.clone(), caption.caption_idx)) {
            summary.dropped_duplicate += 1;
            parsed.skipped.push(Skipped {
                file: files.captions_file.clone(),
                line: caption.line,
                reason: format!(
                    "duplicate caption number {} of {}",
                    caption.caption_idx, caption.image
                ),
            });
            continue;
        }
        let clean = clean_caption(&caption.raw);
        if clean.is_empty() {
            summary.dropped_empty += 1;
            continue;
        }
        rows.push(CaptionRow {
            image: caption.image,
            caption_idx: caption.caption_idx,
            split,
            raw: caption.raw,
            clean,
        });
    }
    summary.skipped = parsed.skipped;
    if rows.is_empty() {
        bail!(
            "{}: no usable captions left{}; nothing written",
            files.captions_file.display(),
            summary.why_none_left()
        );
    }
    rows.sort_by(|a, b| (&a.image, a.caption_idx).cmp(&(&b.image, b.caption_idx)));
    let mut last_image = "";
    for row in &rows {
        *summary.captions.entry(row.split).or_default() += 1;
        if row.image != last_image {
            *summary.images.entry(row.split).or_default() += 1;
            last_image = &row.image;
        }
    }
    Ok((rows, summary, provenance))
}

/// Drops captions whose image name is absolute or climbs out of the image folder.
fn reject_unsafe_names(file: &Path, parsed: &mut Parsed) {
    let mut skipped = Vec::new();
    parsed.captions.retain(
        |c| match contracts::image_name::check_image_name(&c.image) {
            Ok(()) => true,
            Err(reason) => {
                skipped.push(Skipped {
                    file: file.to_path_buf(),
                    line: c.line,
                    reason,
                });
                false
            }
        },
    );
    parsed.skipped.extend(skipped);
}

fn assign_splits(
    options: &Options,
    files: &DatasetFiles,
    images: &BTreeSet<&str>,
    karpathy: Option<splits::SplitMap>,
    provenance: &mut Provenance,
) -> Result<(splits::SplitMap, SplitSource)> {
    if let Some(splits) = karpathy {
        return Ok((splits, SplitSource::Karpathy));
    }
    if let Some(lists) = &files.split_lists {
        for (name, path) in ["train_list", "val_list", "test_list"].iter().zip(lists) {
            *provenance = provenance.clone().with_input(name, path)?;
        }
        return Ok((splits::read_lists(lists)?, SplitSource::DatasetLists));
    }
    if let Some((splits, lists)) = splits::official_lists(&options.splits_dir, images)? {
        for (name, path) in ["train_list", "val_list", "test_list"].iter().zip(&lists) {
            *provenance = provenance.clone().with_input(name, path)?;
        }
        return Ok((splits, SplitSource::OfficialLists));
    }
    let c = &options.config;
    Ok((
        splits::seeded_split(images, c.seed, c.val_fraction, c.test_fraction),
        SplitSource::Seeded { seed: c.seed },
    ))
}

/// How many skipped lines and missing images are listed one by one before a count.
const LISTED: usize = 20;

/// The skipped lines after the listed ones, as counts of their most common reasons.
fn more_skipped(rest: &[Skipped]) -> String {
    let mut counts: BTreeMap<&str, usize> = BTreeMap::new();
    for skipped in rest {
        *counts.entry(skipped.reason.as_str()).or_default() += 1;
    }
    let mut counts: Vec<(&str, usize)> = counts.into_iter().collect();
    counts.sort_by(|a, b| b.1.cmp(&a.1).then(a.0.cmp(b.0)));
    let mut parts: Vec<String> = counts
        .iter()
        .take(3)
        .map(|(reason, n)| format!("{n} {reason}"))
        .collect();
    let others: usize = counts.iter().skip(3).map(|(_, n)| n).sum();
    if others > 0 {
        parts.push(format!("{others} for other reasons"));
    }
    format!(
        "... and {} more skipped lines: {}",
        rest.len(),
        parts.join("; ")
    )
}

impl fmt::Display for Summary {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let layout = self.layout.map_or("unknown".into(), |l| format!("{l:?}"));
        let split = match &self.split_source {
            Some(SplitSource::DatasetLists) => "the dataset's split lists".to_string(),
            Some(SplitSource::OfficialLists) => "the official Flickr8k lists".to_string(),
            Some(SplitSource::Karpathy) => "Karpathy's split".to_string(),
            Some(SplitSource::Seeded { seed }) => format!("seeded 80/10/10 by image (seed {seed})"),
            None => "none".to_string(),
        };
        writeln!(
            f,
            "read        {} ({layout} layout): {} captions of {} images",
            self.captions_file.display(),
            self.read_captions,
            self.read_images
        )?;
        writeln!(f, "split       {split}")?;
        writeln!(f, "{:<10} {:>8} {:>9}", "split", "images", "captions")?;
        for split in Split::ALL {
            let (i, c) = (
                self.images.get(&split).unwrap_or(&0),
                self.captions.get(&split).unwrap_or(&0),
            );
            writeln!(f, "{:<10} {i:>8} {c:>9}", split.as_str())?;
        }
        let (i, c): (usize, usize) = (self.images.values().sum(), self.captions.values().sum());
        writeln!(f, "{:<10} {i:>8} {c:>9}", "total")?;
        writeln!(
            f,
            "dropped: {} empty after cleaning, {} of images in no split, {} of missing images ({} images), {} duplicates, {} unreadable lines",
            self.dropped_empty,
            self.dropped_not_in_split,
            self.dropped_missing_image,
            self.missing_images.len(),
            self.dropped_duplicate,
            self.skipped.len() - self.dropped_duplicate
        )
    }
}

impl Summary {
    /// Why no caption survived, for the error that says so: every count that is not zero.
    fn why_none_left(&self) -> String {
        let unreadable = self.skipped.len() - self.dropped_duplicate;
        let mut reasons = Vec::new();
        if let Some(first) = self.skipped.first() {
            reasons.push(format!("{unreadable} lines skipped, the first: {first}"));
        }
        for (count, what) in [
            (self.dropped_duplicate, "duplicates"),
            (self.dropped_empty, "empty after cleaning"),
            (self.dropped_not_in_split, "of images in no split"),
            (
                self.dropped_missing_image,
                "of images missing from the image folder",
            ),
        ] {
            if count > 0 {
                reasons.push(format!("{count} {what}"));
            }
        }
        if reasons.is_empty() {
            String::new()
        } else {
            format!(" ({})", reasons.join("; "))
        }
    }

    /// Logs each skipped line and missing image (the first few, then a count).
    pub fn warn_details(&self) {
        for skipped in self.skipped.iter().take(LISTED) {
            tracing::warn!("skipped {skipped}");
        }
        if self.skipped.len() > LISTED {
            tracing::warn!("{}", more_skipped(&self.skipped[LISTED..]));
        }
        for image in self.missing_images.iter().take(LISTED) {
            tracing::warn!(
                "image {image} is named by captions but missing from the image folder; its captions are excluded"
            );
        }
        if self.missing_images.len() > LISTED {
            tracing::warn!(
                "... and {} more missing images",
                self.missing_images.len() - LISTED
            );
        }
    }
}
