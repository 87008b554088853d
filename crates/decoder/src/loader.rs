//! One loader for a trained captioner, shared by the evaluator and `caption`: the best
//! checkpoint, the vocabulary it was trained with (hash-checked) and the encoder settings its
//! features were made with.

use burn::tensor::backend::Backend;
use contracts::provenance::content_hash;
use contracts::{EncoderSettings, Vocabulary, WorkDir};

use crate::DecoderError;
use crate::captioner::Captioner;
use crate::checkpoint::{Skipped, TrainedInfo, load_checkpoint};

/// A trained model ready to caption.
#[derive(Debug)]
pub struct TrainedCaptioner<B: Backend> {
    pub model: Captioner<B>,
    pub vocab: Vocabulary,
    pub info: TrainedInfo,
}

impl<B: Backend> TrainedCaptioner<B> {
    /// The encoder the training features came from (`None` when another tool made them).
    pub fn encoder(&self) -> Option<&EncoderSettings> {
        self.info.encoder.as_ref()
    }
}

/// Loads `WORK/model/best.mpk` and `WORK/vocab.parquet`, refusing a vocabulary other than
/// the one the model was trained with.
pub fn load_captioner<B: Backend>(
    work: &WorkDir,
    device: &B::Device,
) -> Result<TrainedCaptioner<B>, DecoderError> {
    let checkpoint = work.model().best();
    let (model, Skipped, info) = load_checkpoint::<B, Skipped>(&checkpoint, device)?;
    let vocab_path = work.vocab();
    if info.vocab_hash != content_hash(&vocab_path)? {
        return Err(DecoderError::OtherVocabulary {
            checkpoint,
            vocab: vocab_path,
        });
    }
    let vocab = Vocabulary::read(&vocab_path)?;
    Ok(TrainedCaptioner { model, vocab, info })
}
