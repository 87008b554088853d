//! Captioning a split: the trained model, the split's feature vectors (and grids, for the
//! attention model), beam search in batches.

use anyhow::Result;
use burn::tensor::backend::Backend;
use contracts::grid::GridStore;
use contracts::tables::Features;
use decoder::{BeamConfig, Images, TrainedCaptioner, beam_search};

/// Images decoded per beam-search call.
const DECODE_BATCH: usize = 64;

/// One image's caption.
#[derive(Debug, Clone, PartialEq)]
pub struct Decoded {
    pub caption: String,
    pub log_prob: f32,
    /// Each word and where the model looked for it (attention model only).
    pub attention: Vec<(String, Vec<f32>)>,
}

/// Beam-searches every image of `features` (and of `grid`, row for row, when the model reads
/// it), in order.
pub fn caption_all<B: Backend>(
    trained: &TrainedCaptioner<B>,
    features: &Features,
    grid: Option<&GridStore>,
    config: &BeamConfig,
    device: &B::Device,
    progress: &indicatif::ProgressBar,
) -> Result<Vec<Decoded>> {
    let mut out = Vec::with_capacity(features.images.len());
    let count = features.images.len();
    for start in (0..count).step_by(DECODE_BATCH) {
        let index: Vec<usize> = (start..(start + DECODE_BATCH).min(count)).collect();
        let images = Images::<B>::from_rows(&features.features, grid, &index, device)?;
        for hypothesis in beam_search(&trained.model, &images, config) {
            let caption = trained.vocab.caption(&hypothesis.tokens)?;
            let words = trained.vocab.words(&hypothesis.tokens)?;
            let attention = words
                .into_iter()
                .zip(hypothesis.attention)
                .map(|(word, weights)| (word.to_string(), weights))
                .collect();
            out.push(Decoded {
                caption,
                log_prob: hypothesis.log_prob,
                attention,
            });
        }
        progress.set_position((start + index.len()) as u64);
    }
    Ok(out)
}
