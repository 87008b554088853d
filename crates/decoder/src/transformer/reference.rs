//! What `scripts/transformer_reference.py` checks a Transformer against: the exported model,
//! a batch, and our teacher-forced logits and greedy captions for it.

use std::path::Path;

use burn::tensor::backend::Backend;
use burn::tensor::{Int, Tensor, TensorData};

use super::TransformerModel;
use crate::export::{export, save_tensors};
use crate::{Captioner, DecoderError, Images, greedy};

/// Writes into `dir` the model (`config.json`, `model.safetensors`), `inputs.safetensors`
/// (`grid`, raw; `tokens` `[n, steps]`, teacher-forced inputs) and `expected.safetensors`
/// (`logits` `[n, steps, vocab]`; `greedy` `[n, max_len]`, the greedy word ids with `<unk>`
/// suppressed, -1 after a caption's end).
pub fn write_reference_check<B: Backend>(
    model: &TransformerModel<B>,
    grid: Tensor<B, 3>,
    tokens: Tensor<B, 2, Int>,
    max_len: usize,
    dir: &Path,
) -> Result<(), DecoderError> {
    let captioner = Captioner::Transformer(model.clone());
    export(&captioner, dir)?;
    let logits = model.logits(grid.clone(), tokens.clone().transpose());
    let images = Images {
        pooled: grid.clone().mean_dim(1).squeeze_dim(1),
        grid: Some(grid.clone()),
    };
    let captions = greedy(model, &images, max_len, true);
    let mut words = vec![-1i64; captions.len() * max_len];
    for (row, caption) in captions.iter().enumerate() {
        for (t, &word) in caption.iter().enumerate() {
            words[row * max_len + t] = i64::from(word);
        }
    }
    save_tensors(
        &dir.join("inputs.safetensors"),
        &[
            ("grid", grid.into_data()),
            ("tokens", tokens.into_data().convert::<i64>()),
        ],
    )?;
    save_tensors(
        &dir.join("expected.safetensors"),
        &[
            ("logits", logits.into_data()),
            ("greedy", TensorData::new(words, [captions.len(), max_len])),
        ],
    )
}
