//! A model as PyTorch reads it: a folder with `config.json` (the architecture, as checkpoints
//! store it: `"decoder"` names the model) and `model.safetensors` (the weights in PyTorch's
//! layout: linear weights `[out, in]`, layer norms' `weight` and `bias`; names are the
//! module paths, `decoder.0.cross_attention.query.weight`). `scripts/transformer_reference.py`
//! builds the Transformer from such a folder in PyTorch.

use std::path::Path;

use burn::tensor::TensorData;
use burn::tensor::backend::Backend;
use burn_store::{BurnToPyTorchAdapter, ModuleSnapshot, SafetensorsStore};
use contracts::atomic::write_atomically;
use safetensors::tensor::TensorView;

use crate::{Captioner, DecoderError};

/// The weights file's name in an exported folder.
pub const WEIGHTS_FILE: &str = "model.safetensors";
/// The architecture's file name in an exported folder.
pub const CONFIG_FILE: &str = "config.json";

/// Writes `model` into `dir` (created if missing), each file whole or not at all.
pub fn export<B: Backend>(model: &Captioner<B>, dir: &Path) -> Result<(), DecoderError> {
    let io = |error| DecoderError::Io {
        path: dir.to_path_buf(),
        error,
    };
    std::fs::create_dir_all(dir).map_err(io)?;
    let weights = dir.join(WEIGHTS_FILE);
    let format = |message: String| DecoderError::Format {
        path: weights.clone(),
        message,
    };
    let mut store = SafetensorsStore::from_bytes(None)
        .skip_enum_variants(true)
        .with_to_adapter(BurnToPyTorchAdapter);
    model
        .save_into(&mut store)
        .map_err(|e| format(e.to_string()))?;
    let bytes = store.get_bytes().map_err(|e| format(e.to_string()))?;
    write_atomically(&weights, &bytes)?;
    let config = serde_json::to_vec_pretty(&model.config()).expect("a config serialises");
    write_atomically(&dir.join(CONFIG_FILE), &config)?;
    Ok(())
}

/// Writes named tensors (`f32` or `i64`) to a safetensors file at `path`, whole or not at all:
/// inputs and expected outputs for a reference implementation to read.
pub fn save_tensors(path: &Path, tensors: &[(&str, TensorData)]) -> Result<(), DecoderError> {
    let views: Vec<(&str, TensorView<'_>)> = tensors
        .iter()
        .map(|(name, data)| {
            let dtype = match data.dtype {
                burn::tensor::DType::F32 => safetensors::Dtype::F32,
                burn::tensor::DType::I64 => safetensors::Dtype::I64,
                other => panic!("{name}: save f32 or i64 tensors, not {other:?}"),
            };
            let view = TensorView::new(dtype, data.shape.to_vec(), data.as_bytes())
                .expect("a tensor's bytes match its shape");
            (*name, view)
        })
        .collect();
    let bytes = safetensors::serialize(views, None).map_err(|e| DecoderError::Format {
        path: path.to_path_buf(),
        message: e.to_string(),
    })?;
    write_atomically(path, &bytes)?;
    Ok(())
}
