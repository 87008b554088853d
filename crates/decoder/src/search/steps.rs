//! The loop greedy decoding and sampling share: one token per unfinished caption and step,
//! finished captions leaving the batch (their state rows dropped with
//! [`DecodeState::select`]), so the cost follows the captions still being written.

use burn::tensor::Tensor;
use burn::tensor::backend::Backend;
use contracts::vocab::{END, START};

use super::{banned_tokens_mask, int_tensor};
use crate::model::{CaptionModel, DecodeState, Images};

/// A caption as decoding wrote it.
#[derive(Debug, Clone, Default, PartialEq)]
pub(super) struct Written {
    /// Word ids, without `<start>`/`<end>`.
    pub tokens: Vec<u32>,
    /// Whether it ended with `<end>` (else it ran into `max_len`).
    pub ended: bool,
    /// For a model with attention, where it looked for each word (`[regions]` each).
    pub attention: Vec<Vec<f32>>,
}

/// `copies` captions of each image (image-major: the copies of image 0 first), at most
/// `max_len` words each. The model starts once per image and its state is copied to the
/// image's rows (a Transformer encodes each image once). `choose` turns a step's `[rows, vocab]` log-probabilities, banned
/// tokens already at `-inf`, into one token per row. `<pad>` and `<start>` are banned, and
/// `<unk>` with `suppress_unk`.
pub(super) fn decode_steps<B: Backend, M: CaptionModel<B>>(
    model: &M,
    images: &Images<B>,
    copies: usize,
    max_len: usize,
    suppress_unk: bool,
    mut choose: impl FnMut(Tensor<B, 2>) -> Vec<u32>,
) -> Vec<Written> {
    let batch = images.len() * copies;
    let device = images.pooled.device();
    let mut captions = vec![Written::default(); batch];
    if batch == 0 || max_len == 0 {
        return captions;
    }
    // [1, vocab]
    let banned =
        banned_tokens_mask::<B>(model.vocab_size(), suppress_unk, &device).unsqueeze_dim(0);
    let mut state = model.start(images);
    if copies > 1 {
        let rows: Vec<usize> = (0..batch).map(|row| row / copies).collect();
        state = state.select(int_tensor::<B>(&rows, &device));
    }
    // `active[i]`: the caption that row i of the state belongs to.
    let mut active: Vec<usize> = (0..batch).collect();
    let mut tokens = int_tensor::<B>(&vec![START as usize; batch], &device);
    for _ in 0..max_len {
        let (log_probs, next) = model.step(tokens, state);
        state = next;
        let chosen = choose(log_probs + banned.clone());
        let attention = state.attention().map(host_rows);
        let mut keep = Vec::with_capacity(active.len());
        for (row, (&caption, &token)) in active.iter().zip(&chosen).enumerate() {
            if token == END {
                captions[caption].ended = true;
                continue;
            }
            captions[caption].tokens.push(token);
            if let Some(attention) = &attention {
                captions[caption].attention.push(attention[row].clone());
            }
            keep.push(row);
        }
        if keep.is_empty() {
            break;
        }
        let next_tokens: Vec<usize> = keep.iter().map(|&row| chosen[row] as usize).collect();
        if keep.len() < active.len() {
            state = state.select(int_tensor::<B>(&keep, &device));
            active = keep.iter().map(|&row| active[row]).collect();
        }
        tokens = int_tensor::<B>(&next_tokens, &device);
    }
    captions
}

/// `[rows, n]` -> one `Vec` per row, on the host.
pub(super) fn host_rows<B: Backend>(values: Tensor<B, 2>) -> Vec<Vec<f32>> {
    let [_, n] = values.dims();
    let flat: Vec<f32> = values
        .into_data()
        .convert::<f32>()
        .to_vec()
        .unwrap_or_default();
    flat.chunks(n.max(1)).map(<[f32]>::to_vec).collect()
}
