//! Errors of the decoder library; each names the file it concerns, and none has an error
//! `source`, so an error chain prints each cause once.

use std::path::PathBuf;

#[derive(Debug, thiserror::Error)]
pub enum DecoderError {
    #[error("{}: {error}", path.display())]
    Io {
        path: PathBuf,
        error: std::io::Error,
    },

    #[error("{} does not exist: no trained model here; run the trainer stage (`make model`)", path.display())]
    NoModel { path: PathBuf },

    #[error("{}: not a readable caption-model checkpoint ({message}); retrain with `make model`", path.display())]
    Format { path: PathBuf, message: String },

    #[error(
        "{}: tensor `{name}` has shape {found:?} but the model config recorded with it needs {expected:?}",
        path.display()
    )]
    Shape {
        path: PathBuf,
        name: String,
        expected: Vec<usize>,
        found: Vec<usize>,
    },

    #[error(
        "{} was trained with another vocabulary than {}; rerun the trainer stage (`make model`)",
        checkpoint.display(),
        vocab.display()
    )]
    OtherVocabulary { checkpoint: PathBuf, vocab: PathBuf },

    #[error("invalid model config: {0}")]
    Config(String),

    #[error(transparent)]
    Contract(#[from] contracts::ContractError),
}
