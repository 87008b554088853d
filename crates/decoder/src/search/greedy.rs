//! Batched greedy decoding: the most likely next word at every step. Captions that produced
//! `<end>` leave the batch (their state rows are dropped with [`DecodeState::select`]), so the
//! cost follows the captions still being written.

use burn::tensor::backend::Backend;
use contracts::vocab::{END, START};

use super::{banned_tokens_mask, int_tensor};
use crate::model::{CaptionModel, DecodeState, Images};

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
    let batch = images.len();
    let device = images.pooled.device();
    let mut captions = vec![Vec::new(); batch];
    if batch == 0 || max_len == 0 {
        return captions;
    }
    let vocab = model.vocab_size();
    // [1, vocab]
    let banned = banned_tokens_mask::<B>(vocab, suppress_unk, &device).unsqueeze_dim(0);
    let mut state = model.start(images);
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
