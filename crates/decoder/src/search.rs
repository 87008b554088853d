//! Caption search over [`CaptionModel::step`]: batched greedy decoding.
//!
//! Greedy decoding takes the most likely next word at every step; captions that produced
//! `<end>` leave the batch (their state rows are dropped with [`DecodeState::select`]), so the
//! cost follows the captions still being written.

use burn::tensor::backend::Backend;
use burn::tensor::{Int, Tensor, TensorData};

use crate::model::{CaptionModel, DecodeState};
use crate::{END, PAD, START, UNK};

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

fn int_tensor<B: Backend>(values: &[usize], device: &B::Device) -> Tensor<B, 1, Int> {
    let ids: Vec<i64> = values.iter().map(|&v| v as i64).collect();
    Tensor::from_data(TensorData::new(ids, [values.len()]), device)
}

/// Greedy captions of a batch of images: `features` `[batch, feature_dim]` raw vectors.
///
/// Returns each image's word ids, without `<start>`/`<end>`, at most `max_len` words.
/// `<pad>` and `<start>` are never produced, `<unk>` not when `suppress_unk` is set.
pub fn greedy<B: Backend>(
    model: &CaptionModel<B>,
    features: Tensor<B, 2>,
    max_len: usize,
    suppress_unk: bool,
) -> Vec<Vec<u32>> {
    let [batch, _] = features.dims();
    let device = features.device();
    let mut captions = vec![Vec::new(); batch];
    if batch == 0 || max_len == 0 {
        return captions;
    }
    let vocab = model.config().vocab_size;
    // [1, vocab]
    let banned = banned_tokens_mask::<B>(vocab, suppress_unk, &device).unsqueeze_dim(0);
    let mut state: DecodeState<B> = model.start(features);
    // `active[i]`: the caption that row i of the state belongs to.
    let mut active: Vec<usize> = (0..batch).collect();
    let mut tokens = int_tensor::<B>(&vec![START as usize; batch], &device);
    for _ in 0..max_len {
        let (log_probs, next) = model.step(tokens, state);
        state = next;
        // [rows]
        let best = (log_probs + banned.clone()).argmax(1).squeeze_dim::<1>(1);
        let best: Vec<i64> = best
            .into_data()
            .convert::<i64>()
            .to_vec()
            .unwrap_or_default();
        let mut keep = Vec::with_capacity(active.len());
        for (row, (&caption, &token)) in active.iter().zip(&best).enumerate() {
            if token as u32 == END {
                continue;
            }
            captions[caption].push(token as u32);
            keep.push(row);
        }
        if keep.is_empty() {
            break;
        }
        let next_tokens: Vec<usize> = keep.iter().map(|&row| best[row] as usize).collect();
        if keep.len() < active.len() {
            state = state.select(int_tensor::<B>(&keep, &device));
            active = keep.iter().map(|&row| active[row]).collect();
        }
        tokens = int_tensor::<B>(&next_tokens, &device);
    }
    captions
}
