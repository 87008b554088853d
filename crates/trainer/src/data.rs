//! The training data: every input read once, checked, and cut into length-bucketed batches.
//!
//! Inputs (all under `paths.work_dir`): `vocab.parquet`, `tokens.parquet` (one training
//! sequence per caption), every part of `features/` and `captions.parquet` (the clean
//! captions of the val images are the BLEU references). Every caption must name an image with
//! a feature vector and be a well-formed `<start> .. <end>` sequence over the vocabulary; the
//! error names the image otherwise.

use std::collections::{HashMap, HashSet};
use std::path::Path;
use std::sync::Arc;

use anyhow::{Context, Result, bail, ensure};
use contracts::grid::GridStore;
use contracts::parquet_io::read_provenance;
use contracts::provenance::content_hash;
use contracts::tables::{CAPTIONS_FILE, CaptionRow, CaptionsTable, FEATURE_DIM, TokensTable, read};
use contracts::vocab::{END, START};
use contracts::{FeatureSet, Provenance, Split, Stage, Vocabulary, WorkDir};
use decoder::{FeatureStats, StatsAccumulator};
use rand::Rng;
use rand::seq::SliceRandom;

/// Reference captions of one image, each split into words.
pub type References = Vec<Vec<String>>;

/// One training sequence: a caption's token ids and the feature row of its image.
#[derive(Debug, Clone, PartialEq)]
pub struct Caption {
    /// Row of the image in [`Dataset::features`].
    pub image: usize,
    /// `<start> w1 .. wn <end>`
    pub tokens: Vec<u32>,
}

/// Content hashes of the inputs, recorded with the model.
#[derive(Debug, Clone, PartialEq)]
pub struct InputHashes {
    pub vocab: String,
    pub tokens: String,
    pub features: String,
}

/// Everything training reads, in memory.
#[derive(Debug, Clone)]
pub struct Dataset {
    pub vocab: Vocabulary,
    /// The feature vectors of the train and val images.
    pub features: FeatureSet,
    /// Their grids, row for row (attention decoder), in a temp file: never in memory whole.
    pub grid: Option<Arc<GridStore>>,
    pub train: Vec<Caption>,
    pub val: Vec<Caption>,
    /// Feature rows of the val images, in name order.
    pub val_images: Vec<usize>,
    /// The clean val captions of each of `val_images`, split on spaces.
    pub val_references: Vec<References>,
    /// The same for the train images (self-critical training's rewards).
    pub train_images: Vec<usize>,
    pub train_references: Vec<References>,
    pub hashes: InputHashes,
}

impl Dataset {
    /// Reads and checks the inputs under `work`, and the grid with `grid`.
    pub fn load(work: &WorkDir, grid: bool) -> Result<Self> {
        let vocab_path = work.vocab();
        let tokens_path = work.tokens();
        let features_dir = work.features();
        let captions_path = work.captions();

        let vocab = Vocabulary::read(&vocab_path)?;
        let vocab_provenance = read_provenance(&vocab_path)?;
        let (token_rows, tokens_provenance) = read::<TokensTable>(&tokens_path)?;
        // Token ids and references must come from the captions.parquet on disk now.
        for (path, provenance) in [
            (&vocab_path, &vocab_provenance),
            (&tokens_path, &tokens_provenance),
        ] {
            require_captions(path, provenance.as_ref(), &captions_path)?;
        }

        let wanted: HashSet<&str> = token_rows
            .iter()
            .filter(|r| r.split != Split::Test)
            .map(|r| r.image.as_str())
            .collect();
        let features = FeatureSet::read(&features_dir, |image| wanted.contains(image))?;

        let mut train = Vec::new();
        let mut val = Vec::new();
        for row in &token_rows {
            check_caption(
                &tokens_path,
                &row.image,
                row.caption_idx,
                &row.token_ids,
                vocab.len(),
            )?;
            if row.split == Split::Test {
                continue;
            }
            let Some(image) = features.row_of(&row.image) else {
                bail!(
                    "{}: image {} (caption {}) has no feature vector in {}; rerun the featurizer stage \
                     (`make features`) or the tokenizer stage (`make tokens`)",
                    tokens_path.display(),
                    row.image,
                    row.caption_idx,
                    features_dir.display()
                );
            };
            let caption = Caption {
                image,
                tokens: row.token_ids.clone(),
            };
            match row.split {
                Split::Train => train.push(caption),
                Split::Val => val.push(caption),
                Split::Test => {}
            }
        }
        ensure!(
            !train.is_empty(),
            "{}: the train split has no captions, so there is nothing to train on; rerun the cleaner \
             and tokenizer stages (`make tokens`)",
            tokens_path.display()
        );
        ensure!(
            !val.is_empty(),
            "{}: the val split has no captions; the trainer validates every epoch (early stopping, \
             best model), so the dataset needs a val split",
            tokens_path.display()
        );

        let (captions, _) = read::<CaptionsTable>(&captions_path)?;
        let (val_images, val_references) = references(
            &captions_path,
            &captions,
            Split::Val,
            &val,
            features.images(),
        )?;
        let (train_images, train_references) = references(
            &captions_path,
            &captions,
            Split::Train,
            &train,
            features.images(),
        )?;
        let grid = if grid {
            Some(Arc::new(load_grid(work, &features)?))
        } else {
            None
        };
        let hashes = InputHashes {
            vocab: content_hash(&vocab_path)?,
            tokens: content_hash(&tokens_path)?,
            features: content_hash(&features_dir)?,
        };
        Ok(Self {
            vocab,
            features,
            grid,
            train,
            val,
            val_images,
            val_references,
            train_images,
            train_references,
            hashes,
        })
    }

    /// Standardisation statistics of the train split's images (each image once): of the
    /// pooled vectors, or of the grid's channels over every region when there is a grid.
    pub fn train_feature_stats(&self) -> Result<FeatureStats> {
        let mut rows: Vec<usize> = self.train.iter().map(|c| c.image).collect();
        rows.sort_unstable();
        rows.dedup();
        let Some(grid) = &self.grid else {
            return Ok(FeatureStats::from_rows(
                FEATURE_DIM,
                rows.iter().map(|&r| self.features.row(r)),
            )?);
        };
        let channels = grid.shape().channels;
        let mut stats = StatsAccumulator::new(channels);
        for chunk in rows.chunks(64) {
            for region in grid.read(chunk)?.chunks(channels) {
                stats.add(region)?;
            }
        }
        Ok(stats.finish()?)
    }
}

/// The grids of the images of `features`, row for row, after checking they come from the
/// same network settings as the pooled vectors.
fn load_grid(work: &WorkDir, features: &FeatureSet) -> Result<GridStore> {
    let dir = work.grid();
    let started = std::time::Instant::now();
    let store = GridStore::build(&dir, features.images(), work.root())?;
    let grid_settings = contracts::EncoderSettings::from_part_config(
        &read_grid_provenance(&dir)?
            .map(|p| p.config)
            .unwrap_or_default(),
    )?;
    if let (Some(grid), Some(pooled)) = (&grid_settings, features.encoder())
        && grid != pooled
    {
        bail!(
            "{}: the grid was made with other encoder settings ({grid:?}) than features/ ({pooled:?}); \
             rerun the featurizer stage (`make features`)",
            dir.display()
        );
    }
    tracing::info!(
        "kept the {} grids {} of {} images in a temp file ({:.1} GB) in {:.1} s",
        store.shape(),
        store.len(),
        features.len(),
        (store.len() * store.shape().len() * 4) as f64 / 1e9,
        started.elapsed().as_secs_f64()
    );
    Ok(store)
}

/// The provenance of the first grid part.
fn read_grid_provenance(dir: &Path) -> Result<Option<Provenance>> {
    let parts = contracts::dataset::dataset_parts(dir)?;
    match parts.first() {
        Some(part) => Ok(read_provenance(part)?),
        None => Ok(None),
    }
}

fn check_caption(
    path: &Path,
    image: &str,
    caption_idx: u8,
    ids: &[u32],
    vocab_size: usize,
) -> Result<()> {
    let bad = |why: String| {
        anyhow::anyhow!(
            "{}: image {image} caption {caption_idx}: {why}; rerun the tokenizer stage (`make tokens`)",
            path.display()
        )
    };
    if ids.len() < 2 || ids[0] != START || ids[ids.len() - 1] != END {
        return Err(bad(
            "token ids must start with <start> (1) and end with <end> (2)".into(),
        ));
    }
    if let Some(id) = ids.iter().find(|&&id| id as usize >= vocab_size) {
        return Err(bad(format!(
            "token id {id} is outside the vocabulary of {vocab_size}"
        )));
    }
    Ok(())
}

/// Refuses a tokenizer output built from another `captions.parquet` than the one on disk.
fn require_captions(path: &Path, provenance: Option<&Provenance>, captions: &Path) -> Result<()> {
    if let Some(provenance) = provenance
        && provenance.inputs.contains_key(CAPTIONS_FILE)
    {
        provenance.require_input(path, CAPTIONS_FILE, captions, Stage::Tokenizer)?;
    }
    Ok(())
}

/// The images of `split` (feature rows, sorted by name) and their clean reference captions.
fn references(
    captions_path: &Path,
    rows: &[CaptionRow],
    split: Split,
    tokenized: &[Caption],
    images: &[String],
) -> Result<(Vec<usize>, Vec<References>)> {
    let mut references: HashMap<&str, Vec<Vec<String>>> = HashMap::new();
    for row in rows.iter().filter(|r| r.split == split) {
        let words: Vec<String> = row.clean.split_whitespace().map(str::to_string).collect();
        references
            .entry(row.image.as_str())
            .or_default()
            .push(words);
    }
    let mut split_images: Vec<usize> = tokenized.iter().map(|c| c.image).collect();
    split_images.sort_unstable_by(|a, b| images[*a].cmp(&images[*b]));
    split_images.dedup();
    let mut out = Vec::with_capacity(split_images.len());
    for &row in &split_images {
        let refs = references.remove(images[row].as_str()).with_context(|| {
            format!(
                "{}: {split} image {} has no captions here but has tokens; rerun the tokenizer stage (`make tokens`)",
                captions_path.display(),
                images[row]
            )
        })?;
        out.push(refs);
    }
    Ok((split_images, out))
}

/// Cuts captions (given by their token counts) into batches of similar length: sorted by
/// (length, random key), cut into runs of `batch_size`, batch order shuffled. Batches carry
/// almost no padding, and both the grouping and the order change with `rng`.
pub fn length_buckets(lengths: &[usize], batch_size: usize, rng: &mut impl Rng) -> Vec<Vec<usize>> {
    let keys: Vec<u64> = lengths.iter().map(|_| rng.random()).collect();
    let mut order: Vec<usize> = (0..lengths.len()).collect();
    order.sort_unstable_by_key(|&i| (lengths[i], keys[i], i));
    let mut batches: Vec<Vec<usize>> = order
        .chunks(batch_size.max(1))
        .map(<[usize]>::to_vec)
        .collect();
    batches.shuffle(rng);
    batches
}

/// Batches in length order, without shuffling (validation).
pub fn sorted_batches(lengths: &[usize], batch_size: usize) -> Vec<Vec<usize>> {
    let mut order: Vec<usize> = (0..lengths.len()).collect();
    order.sort_by_key(|&i| lengths[i]);
    order
        .chunks(batch_size.max(1))
        .map(<[usize]>::to_vec)
        .collect()
}

#[cfg(test)]
mod tests {
    use super::*;
    use rand::SeedableRng;
    use rand_chacha::ChaCha8Rng;

    #[test]
    fn buckets_cover_every_caption_once_with_little_padding() {
        let mut rng = ChaCha8Rng::seed_from_u64(1);
        let lengths: Vec<usize> = (0..1000).map(|_| rng.random_range(3..30)).collect();
        let batches = length_buckets(&lengths, 64, &mut ChaCha8Rng::seed_from_u64(7));
        let mut seen: Vec<usize> = batches.iter().flatten().copied().collect();
        seen.sort_unstable();
        assert_eq!(seen, (0..1000).collect::<Vec<_>>());
        let padding: usize = batches
            .iter()
            .map(|b| {
                let max = b.iter().map(|&i| lengths[i]).max().unwrap();
                b.iter().map(|&i| max - lengths[i]).sum::<usize>()
            })
            .sum();
        assert!(padding < 1000, "padding {padding} tokens");
        // Same seed, same batches; another seed, another order.
        assert_eq!(
            batches,
            length_buckets(&lengths, 64, &mut ChaCha8Rng::seed_from_u64(7))
        );
        assert_ne!(
            batches,
            length_buckets(&lengths, 64, &mut ChaCha8Rng::seed_from_u64(8))
        );
    }

    #[test]
    fn malformed_captions_name_the_image() {
        let err = check_caption(Path::new("t"), "x.jpg", 2, &[1, 9, 2], 5)
            .unwrap_err()
            .to_string();
        assert_eq!(
            err,
            "t: image x.jpg caption 2: token id 9 is outside the vocabulary of 5; \
             rerun the tokenizer stage (`make tokens`)"
        );
        assert!(check_caption(Path::new("t"), "x.jpg", 2, &[4, 2], 5).is_err());
        assert!(check_caption(Path::new("t"), "x.jpg", 2, &[1, 4, 2], 5).is_ok());
    }
}
