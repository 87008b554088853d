//! Captioning a split: the trained model, the split's feature vectors, beam search in batches.

use std::collections::{BTreeMap, HashSet};
use std::path::Path;

use anyhow::{Context, Result, bail};
use burn::tensor::backend::Backend;
use burn::tensor::{Tensor, TensorData};
use contracts::parquet_io::dataset_parts;
use contracts::tables::{FEATURE_DIM, Features, read_features};
use decoder::{BeamConfig, CaptionModel, beam_search};

/// Images decoded per beam-search call.
const DECODE_BATCH: usize = 64;

/// The feature vectors of `images` (all of them, or an error naming the missing ones).
pub fn load_features(features_dir: &Path, images: &[String]) -> Result<Features> {
    let wanted: HashSet<&str> = images.iter().map(String::as_str).collect();
    let mut found: BTreeMap<String, Vec<f32>> = BTreeMap::new();
    let parts = dataset_parts(features_dir)?;
    if parts.is_empty() {
        bail!(
            "{} holds no feature parts: run the featurizer (`make features`)",
            features_dir.display()
        );
    }
    for part in parts {
        let (features, _) = read_features(&part)?;
        for (i, image) in features.images.iter().enumerate() {
            if wanted.contains(image.as_str()) {
                found.insert(image.clone(), features.row(i).to_vec());
            }
        }
    }
    let missing: Vec<&String> = images.iter().filter(|i| !found.contains_key(*i)).collect();
    if let Some(first) = missing.first() {
        bail!(
            "{} images have no features in {} (first: {first}); rerun the featurizer (`make features`)",
            missing.len(),
            features_dir.display()
        );
    }
    let mut out = Features::default();
    for image in images {
        out.features.extend_from_slice(&found[image]);
        out.images.push(image.clone());
    }
    Ok(out)
}

/// Beam-searches every image; returns (words, log-probability) per image, in order.
pub fn caption_all<B: Backend>(
    model: &CaptionModel<B>,
    features: &Features,
    vocab: &[String],
    config: &BeamConfig,
    device: &B::Device,
    progress: &indicatif::ProgressBar,
) -> Result<Vec<(String, f32)>> {
    let mut out = Vec::with_capacity(features.images.len());
    for (chunk, start) in features
        .features
        .chunks(DECODE_BATCH * FEATURE_DIM)
        .zip((0..).step_by(DECODE_BATCH))
    {
        let rows = chunk.len() / FEATURE_DIM;
        let input =
            Tensor::<B, 2>::from_data(TensorData::new(chunk.to_vec(), [rows, FEATURE_DIM]), device);
        for hypothesis in beam_search(model, input, config) {
            out.push((words(&hypothesis.tokens, vocab)?, hypothesis.log_prob));
        }
        progress.set_position((start + rows) as u64);
    }
    Ok(out)
}

/// Token ids to a space-separated caption.
pub fn words(tokens: &[u32], vocab: &[String]) -> Result<String> {
    let words: Vec<&str> = tokens
        .iter()
        .map(|&t| vocab.get(t as usize).map(String::as_str))
        .collect::<Option<_>>()
        .context("the model produced a token id outside the vocabulary")?;
    Ok(words.join(" "))
}
