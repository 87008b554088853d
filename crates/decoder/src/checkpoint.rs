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
    RecorderError,
};
use burn::tensor::backend::Backend;
use contracts::EncoderSettings;
use serde::{Deserialize, Serialize};

use crate::captioner::{Captioner, CaptionerConfig};
use crate::{DecoderError, FeatureStats};

/// Version of [`TrainedInfo`] and of the record layout: 2 since the model is a
/// [`Captioner`] and the info carries the encoder settings.
pub const CHECKPOINT_FORMAT: u32 = 2;

type ByteRecorder = NamedMpkBytesRecorder<FullPrecisionSettings>;

/// What a checkpoint was trained with and how far training had got.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct TrainedInfo {
    /// [`CHECKPOINT_FORMAT`] of the writer.
    pub format: u32,
    /// The architecture, with its kind (`"decoder": "merge"`).
    pub model: CaptionerConfig,
    /// Whether the model's standardisation holds train-split statistics (else identity).
    pub standardized: bool,
    /// The ResNet50 weights and preprocessing of the training features (`None` for features
    /// another tool wrote), so that `caption` encodes new photos the same way.
    pub encoder: Option<EncoderSettings>,
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

type ModelRecord<B> = <Captioner<B> as Module<B>>::Record;

/// Writes `(model, optimizer, info)` to `path` atomically (temp file in the same directory,
/// fsync, rename).
pub fn save_checkpoint<B: Backend, O: Record<B>>(
    path: &Path,
    model: &Captioner<B>,
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

/// What burn's recorder says of a file it cannot read, in one line: a file that ends early is
/// called cut off (burn's own text for it suggests an old burn version, which misleads), and
/// any other message loses that suggestion and its line breaks.
fn recorder_message(error: RecorderError) -> String {
    let (RecorderError::FileNotFound(text)
    | RecorderError::DeserializeError(text)
    | RecorderError::Unknown(text)) = error;
    if text.contains("UnexpectedEof") {
        return "the file ends early: it was cut off, by an interrupted copy or a full disk".into();
    }
    text.lines()
        .filter(|line| !line.is_empty() && !line.starts_with("The internal data format"))
        .collect::<Vec<_>>()
        .join(" ")
}

/// Reads a checkpoint: the model (shapes checked against the recorded config), the optimizer
/// part as `O` (use [`Skipped`] to ignore it) and its [`TrainedInfo`].
pub fn load_checkpoint<B: Backend, O: Record<B>>(
    path: &Path,
    device: &B::Device,
) -> Result<(Captioner<B>, O, TrainedInfo), DecoderError> {
    let format_error = |message: String| DecoderError::Format {
        path: path.to_path_buf(),
        message,
    };
    let bytes = std::fs::read(path).map_err(|error| match error.kind() {
        std::io::ErrorKind::NotFound => DecoderError::NoModel {
            path: path.to_path_buf(),
        },
        _ => DecoderError::Io {
            path: path.to_path_buf(),
            error,
        },
    })?;
    let (record, optimizer, info_json): (ModelRecord<B>, O, String) =
        Recorder::<B>::load(&ByteRecorder::default(), bytes, device)
            .map_err(|e| format_error(recorder_message(e)))?;
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
            .init::<B>(&FeatureStats::identity(info.model.feature_dim()), 0, device)?;
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
