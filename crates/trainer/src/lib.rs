//! The trainer stage: `vocab.parquet` + `tokens.parquet` + `features/` -> `model/`.
//!
//! Trains the caption decoder (`crates/decoder`) with teacher forcing, validates every epoch
//! (loss and greedy BLEU-4 on the val split), keeps the best and the last checkpoint, and can
//! resume after a crash with the same result as an uninterrupted run.
//!
//! - [`data`]: reading and checking the inputs, length-bucketed batches.
//! - [`trainer`](mod@trainer): [`Trainer`], the model in training with its optimizer and
//!   state: step, validate, save.
//! - [`step`]: what one optimizer step is made of (the training backend, the work, its loss);
//!   [`replica`]: the model, optimizer and features on one device; [`parallel`]: one replica
//!   per device of `trainer.devices`, their gradients all-reduced. The imports run one way:
//!   `trainer` -> `parallel` -> `replica` -> `step`.
//! - [`train`]: the training loop, top to bottom: cross-entropy epochs, then self-critical
//!   ones ([`scst`]: rewards, baselines and weights) when `trainer.scst_epochs` asks.
//! - [`state`]: what survives between epochs and runs; [`checkpoint`]: what a checkpoint
//!   records and the checks before resuming one.
//! - [`report`]: `metrics.csv` and `loss.svg`.
//! - [`allocator`]: the one mimalloc setting training wants.

pub mod allocator;
pub mod checkpoint;
pub mod data;
pub mod parallel;
pub mod replica;
pub mod report;
pub mod scst;
pub mod state;
pub mod step;
pub mod train;
pub mod trainer;

use std::fmt;

use anyhow::Result;
use contracts::{PipelineConfig, WorkDir};
use decoder::CaptionerConfig;
use models::backend::run_on;
use tracing::info;

pub use data::Dataset;
pub use state::EpochMetrics;
pub use train::{TrainOptions, TrainSummary};
pub use trainer::Trainer;

/// Trains with `config` (work directory, `[model]`, `[trainer]`, and `[evaluator]`'s decoding
/// settings for the validation BLEU), writing `work_dir/model/`.
pub fn run(config: &PipelineConfig, options: &TrainOptions) -> Result<TrainSummary> {
    CaptionerConfig::from_pipeline(&config.model, contracts::vocab::SPECIALS as usize + 1)
        .validate()?;
    let work_dir = &config.paths.work_dir;
    let _lock = contracts::lock::lock_work_dir(work_dir, "trainer")?;
    let work = WorkDir::new(work_dir);
    let data = Dataset::load(&work, config.model.decoder.needs_grid())?;
    info!(
        "read {} train and {} val captions, {} feature vectors, a vocabulary of {} tokens from {}",
        data.train.len(),
        data.val.len(),
        data.features.len(),
        data.vocab.len(),
        work_dir.display()
    );
    let model_dir = work.model();
    // The Makefile's target: present only after a run that finished.
    let done = model_dir.done();
    let _ = std::fs::remove_file(&done);
    let summary = run_on(
        config.trainer.device,
        train::TrainTask {
            config,
            data: &data,
            options,
            model_dir: &model_dir,
        },
    )??;
    contracts::atomic::write_atomically(&done, summary.to_string().as_bytes())?;
    Ok(summary)
}

impl fmt::Display for TrainSummary {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let epochs = self.history.len();
        match (self.best, self.history.get(self.best_epoch.wrapping_sub(1))) {
            (Some(_), Some(best)) => writeln!(
                f,
                "trained {} epoch(s) ({} in this run){}{}; best epoch {}: val loss {:.4}, val BLEU-4 {:.4}",
                epochs,
                self.epochs_run,
                if self.devices > 1 {
                    format!(" on {} devices", self.devices)
                } else {
                    String::new()
                },
                if self.stopped_early {
                    ", stopped early"
                } else {
                    ""
                },
                self.best_epoch,
                best.val_loss,
                best.val_bleu4
            )?,
            _ => writeln!(f, "no epoch trained")?,
        }
        writeln!(f, "model in {}", self.model_dir.display())
    }
}
