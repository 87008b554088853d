//! Batched greedy decoding: the most likely next word at every step.

use burn::tensor::backend::Backend;

use super::steps::decode_steps;
use crate::model::{CaptionModel, Images};

/// Greedy captions of a batch of images.
///
/// Returns each image's word ids, without `<start>`/`<end>`, at most `max_len` words.
/// `<pad>` and `<start>` are never produced, `<unk>` not when `suppress_unk` is set.
pub fn greedy<B: Backend, M: CaptionModel<B>>(
    model: &M,
    images: &Images<B>,
    max_len: usize,
    suppress_unk: bool,
) -> Vec<Vec<u32>> {
    greedy_attended(model, images, max_len, suppress_unk)
        .into_iter()
        .map(|(tokens, _)| tokens)
        .collect()
}

/// [`greedy`], with where a model with attention looked for each word (`[regions]` weights
/// per word; empty for a model without attention).
pub fn greedy_attended<B: Backend, M: CaptionModel<B>>(
    model: &M,
    images: &Images<B>,
    max_len: usize,
    suppress_unk: bool,
) -> Vec<(Vec<u32>, Vec<Vec<f32>>)> {
    let argmax = |log_probs: burn::tensor::Tensor<B, 2>| -> Vec<u32> {
        log_probs
            .argmax(1)
            .squeeze_dim::<1>(1)
            .into_data()
            .convert::<i64>()
            .to_vec::<i64>()
            .unwrap_or_default()
            .into_iter()
            .map(|t| t as u32)
            .collect()
    };
    decode_steps(model, images, 1, max_len, suppress_unk, argmax)
        .into_iter()
        .map(|written| (written.tokens, written.attention))
        .collect()
}
