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

/// `[vocab]` additive mask: `-inf` on tokens a caption may never contain.
pub fn banned_tokens_mask<B: Backend>(
    vocab: usize,
    suppress_unk: bool,
    device: &B::Device,
) -> Tensor<B, 1> {
    let mut mask = vec![0f32; vocab];
    mask[PAD as usize] = f32::NEG_INFINITY;
    mask[START as usize] = f32::NEG_INFINITY;
    if suppress_unk {
        mask[UNK as usize] = f32::NEG_INFINITY;
    }
    Tensor::from_data(TensorData::new(mask, [vocab]), device)
}

pub(crate) fn int_tensor<B: Backend>(values: &[usize], device: &B::Device) -> Tensor<B, 1, Int> {
    let ids: Vec<i64> = values.iter().map(|&v| v as i64).collect();
    Tensor::from_data(TensorData::new(ids, [values.len()]), device)
}
