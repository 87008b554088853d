//! Caption search over [`CaptionModel::start`](crate::CaptionModel::start) and
//! [`CaptionModel::step`](crate::CaptionModel::step), written once for every caption model:
//! batched [`greedy`] decoding, [`beam_search`], and [`sample`] for self-critical training.

mod beam;
mod greedy;
mod sample;
mod steps;

use burn::tensor::backend::Backend;
use burn::tensor::{Int, Tensor, TensorData};
use contracts::vocab::{PAD, START, UNK};

pub use beam::{BeamConfig, Hypothesis, beam_search};
pub use greedy::{greedy, greedy_attended};
pub use sample::{Sampled, sample};

/// The tokens a caption may never contain: `<pad>`, `<start>`, and `<unk>` with
/// `suppress_unk`.
pub fn banned_tokens(suppress_unk: bool) -> Vec<u32> {
    let mut banned = vec![PAD, START];
    if suppress_unk {
        banned.push(UNK);
    }
    banned
}

/// `[vocab]` additive mask: `-inf` on [`banned_tokens`].
pub fn banned_tokens_mask<B: Backend>(
    vocab: usize,
    suppress_unk: bool,
    device: &B::Device,
) -> Tensor<B, 1> {
    let mut mask = vec![0f32; vocab];
    for token in banned_tokens(suppress_unk) {
        mask[token as usize] = f32::NEG_INFINITY;
    }
    Tensor::from_data(TensorData::new(mask, [vocab]), device)
}

pub(crate) fn int_tensor<B: Backend>(values: &[usize], device: &B::Device) -> Tensor<B, 1, Int> {
    let ids: Vec<i64> = values.iter().map(|&v| v as i64).collect();
    Tensor::from_data(TensorData::new(ids, [values.len()]), device)
}
