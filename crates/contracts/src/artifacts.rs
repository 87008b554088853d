//! Every file and folder the stages exchange, named once: a [`WorkDir`] and its
//! [`ModelDir`]. Stages ask these for paths instead of spelling file names.

use std::path::{Path, PathBuf};

/// `captions.parquet`, also the name under which other files record it as an input.
pub const CAPTIONS_FILE: &str = "captions.parquet";
pub const VOCAB_FILE: &str = "vocab.parquet";
pub const TOKENS_FILE: &str = "tokens.parquet";
/// The features dataset folder (`part-NNNNN.parquet` files).
pub const FEATURES_DIR: &str = "features";
/// The attention decoder's grid features, beside `features/` (see [`crate::grid`]).
pub const GRID_DIR: &str = "grid";
pub const MODEL_DIR: &str = "model";
/// The checkpoint with the best validation metric; what the evaluator and `caption` load.
pub const BEST_CHECKPOINT: &str = "best.mpk";
/// The checkpoint after the last finished epoch; what `trainer --resume` continues from.
pub const LAST_CHECKPOINT: &str = "last.mpk";
/// Marks a stage's folder as complete (`features/`, `model/`); the Makefile's targets.
pub const SUCCESS_MARKER: &str = "_SUCCESS";

/// A work directory (`paths.work_dir`): where every stage reads and writes.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct WorkDir {
    root: PathBuf,
}

impl WorkDir {
    pub fn new(root: impl Into<PathBuf>) -> Self {
        Self { root: root.into() }
    }

    pub fn root(&self) -> &Path {
        &self.root
    }

    /// The cleaner's output.
    pub fn captions(&self) -> PathBuf {
        self.root.join(CAPTIONS_FILE)
    }

    /// The tokenizer's outputs.
    pub fn vocab(&self) -> PathBuf {
        self.root.join(VOCAB_FILE)
    }

    pub fn tokens(&self) -> PathBuf {
        self.root.join(TOKENS_FILE)
    }

    /// The featurizer's dataset folder.
    pub fn features(&self) -> PathBuf {
        self.root.join(FEATURES_DIR)
    }

    /// Present when every part of `features/` exists.
    pub fn features_done(&self) -> PathBuf {
        self.features().join(SUCCESS_MARKER)
    }

    /// The featurizer's grid dataset (attention decoder).
    pub fn grid(&self) -> PathBuf {
        self.root.join(GRID_DIR)
    }

    /// Present when every part of `grid/` exists.
    pub fn grid_done(&self) -> PathBuf {
        self.grid().join(SUCCESS_MARKER)
    }

    /// The trainer's output folder.
    pub fn model(&self) -> ModelDir {
        ModelDir {
            dir: self.root.join(MODEL_DIR),
        }
    }

    /// The evaluator's output folder.
    pub fn eval_dir(&self) -> PathBuf {
        self.root.join("eval")
    }

    pub fn predictions(&self) -> PathBuf {
        self.eval_dir().join("predictions.parquet")
    }

    /// The attention model's weights for every word it wrote.
    pub fn attention(&self) -> PathBuf {
        self.eval_dir().join("attention.parquet")
    }

    pub fn metrics_json(&self) -> PathBuf {
        self.eval_dir().join("metrics.json")
    }

    pub fn report_html(&self) -> PathBuf {
        self.eval_dir().join("report.html")
    }
}

/// The trainer's folder (`WORK/model/`).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ModelDir {
    dir: PathBuf,
}

impl ModelDir {
    /// Every file the trainer writes here (cleared when training starts over).
    pub const FILES: [&'static str; 6] = [
        BEST_CHECKPOINT,
        LAST_CHECKPOINT,
        "config.json",
        "trained.json",
        "metrics.csv",
        "loss.svg",
    ];

    pub fn new(dir: impl Into<PathBuf>) -> Self {
        Self { dir: dir.into() }
    }

    pub fn path(&self) -> &Path {
        &self.dir
    }

    pub fn best(&self) -> PathBuf {
        self.dir.join(BEST_CHECKPOINT)
    }

    pub fn last(&self) -> PathBuf {
        self.dir.join(LAST_CHECKPOINT)
    }

    /// The resolved pipeline configuration of the run, as JSON.
    pub fn config_json(&self) -> PathBuf {
        self.dir.join(Self::FILES[2])
    }

    /// What the best checkpoint was trained with, as JSON (for people and scripts; the
    /// checkpoint carries its own copy).
    pub fn trained_json(&self) -> PathBuf {
        self.dir.join(Self::FILES[3])
    }

    /// One row per epoch: losses, val metrics, learning rate, timings.
    pub fn metrics_csv(&self) -> PathBuf {
        self.dir.join(Self::FILES[4])
    }

    /// The loss curves.
    pub fn loss_svg(&self) -> PathBuf {
        self.dir.join(Self::FILES[5])
    }

    /// Present only after a training run that finished.
    pub fn done(&self) -> PathBuf {
        self.dir.join(SUCCESS_MARKER)
    }
}
