//! The contracts between pipeline stages: configuration, the Parquet tables with their
//! provenance, caption cleaning, and the command-line conventions every binary shares.
//!
//! No burn here: the cleaner and tokenizer build in seconds.

pub mod atomic;
pub mod cli;
pub mod config;
pub mod error;
pub mod image_name;
pub mod lock;
pub mod parquet_io;
pub mod provenance;
pub mod tables;
pub mod text;

pub use config::PipelineConfig;
pub use error::ContractError;
pub use provenance::{Provenance, Stage};
pub use tables::Split;
