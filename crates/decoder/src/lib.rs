//! The caption decoder: the seed's CNN-RNN "merge" model, shared by the trainer, the evaluator
//! and `caption`.
//!
//! An image's 2048-d ResNet50 vector is standardised (train-split mean and std, stored in the
//! model), projected to the word-embedding size and fed to an LSTM as the first step, before
//! `<start> w1 .. wn`. Each later step's hidden state, joined with the image embedding, is
//! projected to vocabulary logits that predict the next word. See [`CaptionModel`].
//!
//! - [`model`]: the network, teacher-forced loss and the step-by-step decode API.
//! - [`search`]: batched greedy decoding; [`beam`]: beam search, both over
//!   [`CaptionModel::start`] / [`CaptionModel::step`].
//! - [`training`]: the training loss with its (partly hand-written) gradients. On the CPU its
//!   elementwise work runs as fused multi-threaded passes over host memory (`cross_entropy`,
//!   `fused_lstm`); other backends run the same arithmetic as tensor operations.
//! - [`trained`]: checkpoint files and [`load_trained`] for the evaluator and `caption`.
//!
//! Everything random (initialisation, dropout) draws from an RNG the caller owns, never from
//! the backend's global generator: runs are reproducible from a seed, also when several run in
//! one process, and a resumed run draws exactly what an uninterrupted one would.

mod batch;
pub mod beam;
mod cross_entropy;
mod error;
mod fused_lstm;
mod init;
mod lstm;
pub mod model;
pub mod search;
mod stats;
pub mod trained;
pub mod training;

pub use batch::TeacherBatch;
pub use beam::{BeamConfig, Hypothesis, beam_search};
pub use error::DecoderError;
pub use fused_lstm::FusedRun;
pub use lstm::{Lstm, LstmGrads, LstmState, SequenceRun, TensorRun};
pub use model::{CaptionModel, CaptionModelConfig, DecodeState};
pub use search::greedy;
pub use stats::{FeatureStats, MIN_STD};
pub use trained::{
    BEST_CHECKPOINT, LAST_CHECKPOINT, Skipped, TrainedInfo, load_checkpoint, load_trained,
    save_checkpoint,
};

/// Padding after `<end>`; never a training target.
pub const PAD: u32 = 0;
/// First input token of every caption.
pub const START: u32 = 1;
/// Last target of every caption; decoding stops when it is produced.
pub const END: u32 = 2;
/// A word outside the vocabulary.
pub const UNK: u32 = 3;
/// Number of special tokens; ids from here on are words (as `crates/tokenizer/src/vocab.rs`).
pub const SPECIALS: u32 = 4;
