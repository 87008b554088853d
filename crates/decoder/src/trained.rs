//! Checkpoint files: the weights, the optimizer state and what the model was trained with, in
//! one file written atomically.
//!
//! A checkpoint is burn's named MessagePack record (full f32 precision) of the tuple
//! `(model, optimizer, info)`, where `info` is [`TrainedInfo`] as JSON. One file per checkpoint
//! means one rename makes it visible: a crash leaves the previous checkpoint or the new one,
//! never a mix. Readers that do not need the optimizer state (the evaluator, `caption`) load it
//! as [`Skipped`], which parses over it without building tensors.
//!
//! Loading checks every tensor's shape against the recorded architecture, so a truncated,
//! foreign or tampered file is an error naming the file, not a panic later.

use std::path::Path;

use burn::module::Module;
use burn::record::{
    FullPrecisionSettings, NamedMpkBytesRecorder, PrecisionSettings, Record, Recorder,
};
use burn::tensor::backend::Backend;
use serde::{Deserialize, Serialize};

use crate::model::{CaptionModel, CaptionModelConfig};
use crate::{DecoderError, FeatureStats};

/// The checkpoint with the best validation metric; what the evaluator and `caption` load.
pub const BEST_CHECKPOINT: &str = "best.mpk";
/// The checkpoint after the last finished epoch; what `trainer --resume` continues from.
pub const LAST_CHECKPOINT: &str = "last.mpk";
/// Version of [`TrainedInfo`] and of the record layout.
pub const CHECKPOINT_FORMAT: u32 = 1;

type ByteRecorder = NamedMpkBytesRecorder<FullPrecisionSettings>;

/// What a checkpoint was trained with and how far training had got.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct TrainedInfo {
    /// [`CHECKPOINT_FORMAT`] of the writer.
    pub format: u32,
    pub model: CaptionModelConfig,
    /// Whether `feature_mean`/`feature_inv_std` hold train-split statistics (else identity).
    pub standardized: bool,
    /// `contracts::provenance::content_hash` of the `vocab.parquet` the token ids refer to.
    pub vocab_hash: String,
    /// Same for `tokens.parquet` and the `features/` dataset.
    pub tokens_hash: String,
    pub features_hash: String,
    /// Epochs finished when this checkpoint was written.
    pub epoch: usize,
    /// The trainer's own state (learning rate, early stopping, metrics so far); opaque here.
    pub trainer_state: serde_json::Value,
}

/// A record part that is parsed over and dropped (an optimizer state the reader ignores).
#[derive(Debug, Clone, Copy, Default)]
pub struct Skipped;

/// The serialized form of [`Skipped`].
#[derive(Debug, Clone, Copy, Default)]
pub struct SkippedItem;

impl Serialize for SkippedItem {
    fn serialize<S: serde::Serializer>(&self, serializer: S) -> Result<S::Ok, S::Error> {
        serializer.serialize_unit()
    }
}

impl<'de> Deserialize<'de> for SkippedItem {
    fn deserialize<D: serde::Deserializer<'de>>(deserializer: D) -> Result<Self, D::Error> {
        deserializer.deserialize_ignored_any(serde::de::IgnoredAny)?;
        Ok(SkippedItem)
    }
}

impl<B: Backend> Record<B> for Skipped {
    type Item<S: PrecisionSettings> = SkippedItem;

    fn into_item<S: PrecisionSettings>(self) -> Self::Item<S> {
        SkippedItem
    }

    fn from_item<S: PrecisionSettings>(_item: Self::Item<S>, _device: &B::Device) -> Self {
        Skipped
    }
}

type ModelRecord<B> = <CaptionModel<B> as Module<B>>::Record;

/// Writes `(model, optimizer, info)` to `path` atomically (temp file in the same directory,
/// fsync, rename).
pub fn save_checkpoint<B: Backend, O: Record<B>>(
    path: &Path,
    model: &CaptionModel<B>,
    optimizer: O,
    info: &TrainedInfo,
) -> Result<(), DecoderError> {
    let format_error = |message: String| DecoderError::Format {
        path: path.to_path_buf(),
        message,
    };
    let info_json = serde_json::to_string(info).map_err(|e| format_error(e.to_string()))?;
    let record: (ModelRecord<B>, O, String) = (model.clone().into_record(), optimizer, info_json);
    let bytes = Recorder::<B>::record(&ByteRecorder::default(), record, ())
        .map_err(|e| format_error(e.to_string()))?;
    contracts::atomic::write_atomically(path, &bytes).map_err(DecoderError::from)
}

/// Reads a checkpoint: the model (shapes checked against the recorded config), the optimizer
/// part as `O` (use [`Skipped`] to ignore it) and its [`TrainedInfo`].
pub fn load_checkpoint<B: Backend, O: Record<B>>(
    path: &Path,
    device: &B::Device,
) -> Result<(CaptionModel<B>, O, TrainedInfo), DecoderError> {
    let format_error = |message: String| DecoderError::Format {
        path: path.to_path_buf(),
        message,
    };
    let bytes = std::fs::read(path).map_err(|error| DecoderError::Io {
        path: path.to_path_buf(),
        error,
    })?;
    let (record, optimizer, info_json): (ModelRecord<B>, O, String) =
        Recorder::<B>::load(&ByteRecorder::default(), bytes, device)
            .map_err(|e| format_error(e.to_string()))?;
    let info: TrainedInfo = serde_json::from_str(&info_json)
        .map_err(|e| format_error(format!("its training info is unreadable: {e}")))?;
    if info.format != CHECKPOINT_FORMAT {
        return Err(format_error(format!(
            "checkpoint format {}, this build reads format {CHECKPOINT_FORMAT}",
            info.format
        )));
    }
    info.model
        .validate()
        .map_err(|e| format_error(e.to_string()))?;
    // A skeleton of the recorded architecture receives the weights.
    let skeleton =
        info.model
            .init::<B>(&FeatureStats::identity(info.model.feature_dim), 0, device)?;
    let model = skeleton.load_record(record);
    model
        .check_shapes(&info.model)
        .map_err(|(name, expected, found)| DecoderError::Shape {
            path: path.to_path_buf(),
            name,
            expected,
            found,
        })?;
    Ok((model, optimizer, info))
}

/// The trained model of `model_dir` ([`BEST_CHECKPOINT`]) for inference, with what it was
/// trained with. Callers compare `info.vocab_hash` with their `vocab.parquet`.
pub fn load_trained<B: Backend>(
    model_dir: &Path,
    device: &B::Device,
) -> Result<(CaptionModel<B>, TrainedInfo), DecoderError> {
    let path = model_dir.join(BEST_CHECKPOINT);
    if !path.exists() {
        return Err(DecoderError::NoModel { path });
    }
    let (model, Skipped, info) = load_checkpoint::<B, Skipped>(&path, device)?;
    Ok((model, info))
}
