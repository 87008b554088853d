//! Errors of the shared contracts: each names the file (and column or line) it concerns.
//!
//! A variant's message carries the whole story once: none has an error `source`, so an
//! error chain printed with `{:#}` does not repeat the OS reason after it.

use std::path::PathBuf;

use crate::stage::Stage;

#[derive(Debug, thiserror::Error)]
pub enum ContractError {
    #[error("{}: {error}", path.display())]
    Io {
        path: PathBuf,
        error: std::io::Error,
    },

    /// An input another stage makes is not there.
    #[error("{} does not exist; run the {} stage (`make {}`)", path.display(), stage.name(), stage.make_target())]
    MissingInput { path: PathBuf, stage: Stage },

    /// Another run holds the work directory (see [`crate::lock`]).
    #[error("{message}")]
    Locked { message: String },

    /// A config key or value that is not allowed (see [`crate::config::settings`]).
    #[error("{message}")]
    Setting { message: String },

    #[error("config {}: {message}", file.display())]
    Config { file: PathBuf, message: String },

    #[error("--set {item}: {message}")]
    Override { item: String, message: String },

    #[error("{}: {message}", path.display())]
    Parquet { path: PathBuf, message: String },

    #[error("{}: column `{column}`: {message}", path.display())]
    Schema {
        path: PathBuf,
        column: String,
        message: String,
    },

    #[error("{}: {message}; rerun the {} stage (`make {}`)", path.display(), stage.name(), stage.make_target())]
    Provenance {
        path: PathBuf,
        message: String,
        stage: Stage,
    },
}

impl ContractError {
    /// An I/O error on `path`.
    pub fn io(path: &std::path::Path, error: std::io::Error) -> Self {
        Self::Io {
            path: path.to_path_buf(),
            error,
        }
    }

    /// A Parquet reader's or writer's error; an I/O error underneath (a full disk, a failing
    /// device) is reported as what it is, with the OS reason.
    pub(crate) fn from_parquet(
        path: &std::path::Path,
        error: parquet::errors::ParquetError,
    ) -> Self {
        match error {
            parquet::errors::ParquetError::External(inner) => {
                match inner.downcast::<std::io::Error>() {
                    Ok(io) => Self::io(path, *io),
                    Err(other) => Self::parquet(path, other),
                }
            }
            other => Self::parquet(path, other),
        }
    }

    pub(crate) fn parquet(path: &std::path::Path, message: impl std::fmt::Display) -> Self {
        Self::Parquet {
            path: path.to_path_buf(),
            message: message.to_string(),
        }
    }
}
