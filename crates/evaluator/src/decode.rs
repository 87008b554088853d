//! Captioning a split: the trained model, the split's feature vectors, beam search in batches.

use anyhow::Result;
use burn::tensor::backend::Backend;
use burn::tensor::{Tensor, TensorData};
use contracts::tables::{FEATURE_DIM, Features};
use decoder::{BeamConfig, Images, TrainedCaptioner, beam_search};

/// Images decoded per beam-search call.
const DECODE_BATCH: usize = 64;

/// Beam-searches every image; returns (words, log-probability) per image, in order.
pub fn caption_all<B: Backend>(
    trained: &TrainedCaptioner<B>,
    features: &Features,
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
        let images = Images {
            pooled: Tensor::<B, 2>::from_data(
                TensorData::new(chunk.to_vec(), [rows, FEATURE_DIM]),
                device,
            ),
        };
        for hypothesis in beam_search(&trained.model, &images, config) {
            let caption = trained.vocab.caption(&hypothesis.tokens)?;
            out.push((caption, hypothesis.log_prob));
        }
        progress.set_position((start + rows) as u64);
    }
    Ok(out)
}
