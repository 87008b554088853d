//! The contracts between pipeline stages: every artifact a stage writes and another reads.
//!
//! - [`artifacts`]: every file and folder name of a work directory.
//! - [`tables`]: the Parquet tables as typed rows; [`parquet_io`] reads what the ecosystem
//!   writes and writes atomically; [`provenance`]: how each file was made, and the checks a
//!   stage runs before trusting an input.
//! - [`vocab`]: the vocabulary, its special tokens and the ids-to-text policy.
//! - [`encoder`]: the image encoder's settings, recorded with features and models;
//!   [`feature_set`]: the one reader of a `features/` dataset; [`grid`]: the grid dataset
//!   of the attention decoder, streamed.
//! - [`config`]: `pipeline.toml`, every key checked at load; [`cli`]: the flags and `main`
//!   every binary shares.
//! - [`stage`]: the stages; [`dataset`]: a folder of Parquet parts.
//! - [`lock`]: one writer per work dir; [`atomic`]: files that appear whole or not at all.
//! - [`text`]: caption cleaning; [`image_name`]: image names are untrusted paths.
//!
//! No burn here: the cleaner and tokenizer build in seconds.

pub mod artifacts;
pub mod atomic;
pub mod cli;
mod columns;
pub mod config;
pub mod dataset;
pub mod encoder;
pub mod error;
pub mod feature_set;
pub mod grid;
pub mod image_name;
pub mod lock;
pub mod parquet_io;
pub mod provenance;
mod split;
pub mod stage;
pub mod tables;
pub mod text;
pub mod vocab;

pub use artifacts::{ModelDir, WorkDir};
pub use config::PipelineConfig;
pub use encoder::{EncoderSettings, WeightsSpec};
pub use error::ContractError;
pub use feature_set::FeatureSet;
pub use provenance::{Provenance, Stage};
pub use tables::Split;
pub use vocab::Vocabulary;
