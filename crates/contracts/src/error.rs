//! Errors of the shared contracts: each names the file (and column or line) it concerns.

use std::path::PathBuf;

#[derive(Debug, thiserror::Error)]
pub enum ContractError {
    #[error("{}: {source}", path.display())]
    Io {
        path: PathBuf,
        source: std::io::Error,
    },

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

    #[error("{}: {message}; rerun the {rerun} stage (make {rerun})", path.display())]
    Provenance {
        path: PathBuf,
        message: String,
        rerun: String,
    },
}

impl ContractError {
    pub(crate) fn parquet(path: &std::path::Path, message: impl std::fmt::Display) -> Self {
        Self::Parquet {
            path: path.to_path_buf(),
            message: message.to_string(),
        }
    }
}
