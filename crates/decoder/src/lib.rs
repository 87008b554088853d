//! The caption models, shared by the trainer, the evaluator and `caption`.
//!
//! - [`model`]: the caption-model abstraction ([`CaptionModel`] to decode and validate,
//!   [`Trainable`] to train); [`captioner`]: the registry of the models (one line each),
//!   from which come [`Captioner`], the enum every stage holds, and [`CaptionerConfig`], its
//!   architecture.
//! - [`merge`]: the seed's CNN-RNN "merge" model. An image's 2048-d ResNet50 vector is
//!   standardised (train-split mean and std, stored in the model), projected to the
//!   word-embedding size and fed to an LSTM as the first step, before `<start> w1 .. wn`; each
//!   later step's hidden state, joined with the image embedding, is projected to vocabulary
//!   logits. Its loss and gradients run on the fused CPU kernels of the `kernels` crate.
//! - [`attention`]: Xu et al. 2015's soft attention over the 7x7 grid of ResNet50's last
//!   feature map, with the gate on the context and the doubly stochastic regularisation.
//! - [`transformer`]: a Transformer encoder over the grid's regions and a Transformer decoder
//!   over the words, trained through burn's autodiff, decoded with a key/value cache.
//! - [`search`]: batched greedy decoding and beam search, written once over [`CaptionModel`].
//! - [`export`]: a model as PyTorch reads it (`config.json`, `model.safetensors`).
//! - [`checkpoint`]: checkpoint files; [`load_captioner`]: a trained model with its
//!   vocabulary and encoder settings, for the evaluator and `caption`.
//!
//! Everything random (initialisation, dropout) draws from an RNG the caller owns, never from
//! the backend's global generator: runs are reproducible from a seed, also when several run in
//! one process, and a resumed run draws exactly what an uninterrupted one would.

pub mod attention;
mod batch;
pub mod captioner;
pub mod checkpoint;
mod dropout;
mod error;
pub mod export;
mod init;
mod loader;
pub mod merge;
pub mod model;
mod output;
pub mod search;
mod stats;
pub mod transformer;

pub use batch::{SampledPolicy, TeacherBatch};
pub use captioner::{Captioner, CaptionerConfig, CaptionerState};
pub use checkpoint::{Skipped, TrainedInfo, load_checkpoint, save_checkpoint};
pub use error::DecoderError;
pub use loader::{TrainedCaptioner, load_captioner};
pub use model::{CaptionModel, DecodeState, Images, Trainable};
pub use search::{
    BeamConfig, Hypothesis, Sampled, banned_tokens, beam_search, greedy, greedy_attended, sample,
};
pub use stats::{FeatureStats, MIN_STD, StatsAccumulator};
