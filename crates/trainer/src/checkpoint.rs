//! Checkpoints as the trainer writes and resumes them: the info recorded with the weights,
//! the optimizer state in a stable order, the checks before `--resume` trusts a checkpoint,
//! and clearing the model directory for a new run.

use std::path::{Path, PathBuf};

use anyhow::{Result, bail};
use burn::module::ParamId;
use burn::optim::Optimizer;
use burn::optim::adaptor::OptimizerAdaptor;
use burn::optim::record::AdaptorRecord;
use burn::tensor::backend::AutodiffBackend;
use contracts::config::{ModelConfig, TrainerConfig};
use contracts::{EncoderSettings, ModelDir};
use decoder::checkpoint::CHECKPOINT_FORMAT;
use decoder::{Captioner, CaptionerConfig, TrainedInfo};
use kernels::adam::Adam;

use crate::data::InputHashes;
use crate::state::TrainerState;

/// Adam over a caption model on the autodiff backend `A`.
pub type Optim<A> = OptimizerAdaptor<Adam, Captioner<A>, A>;
type OptimRecord<A> = <Optim<A> as Optimizer<Captioner<A>, A>>::Record;
/// The optimizer state as a checkpoint stores it: one entry per parameter, in parameter-id
/// order (burn's own record is a hash map, whose order differs from process to process).
pub type SortedOptimRecord<A> = Vec<(String, AdaptorRecord<Adam, A>)>;

/// [`SortedOptimRecord`] of an optimizer's state.
pub fn sorted<A: AutodiffBackend>(record: OptimRecord<A>) -> SortedOptimRecord<A> {
    let mut entries: Vec<(ParamId, _)> = record.into_iter().collect();
    entries.sort_by_key(|(id, _)| *id);
    entries
        .into_iter()
        .map(|(id, state)| (id.serialize(), state))
        .collect()
}

/// The optimizer record back from a checkpoint.
pub fn unsorted<A: AutodiffBackend>(record: SortedOptimRecord<A>) -> OptimRecord<A> {
    record
        .into_iter()
        .map(|(id, state)| (ParamId::deserialize(&id), state))
        .collect()
}

/// What the model was trained with, recorded in every checkpoint.
#[derive(Debug, Clone)]
pub struct RunInputs {
    pub model: CaptionerConfig,
    pub standardized: bool,
    pub encoder: Option<EncoderSettings>,
    pub hashes: InputHashes,
}

/// The checkpoint info for `state`.
pub fn trained_info(inputs: &RunInputs, state: &TrainerState) -> Result<TrainedInfo> {
    Ok(TrainedInfo {
        format: CHECKPOINT_FORMAT,
        model: inputs.model.clone(),
        standardized: inputs.standardized,
        encoder: inputs.encoder.clone(),
        vocab_hash: inputs.hashes.vocab.clone(),
        tokens_hash: inputs.hashes.tokens.clone(),
        features_hash: inputs.hashes.features.clone(),
        epoch: state.epochs_done,
        trainer_state: serde_json::to_value(state)?,
    })
}

/// Refuses a checkpoint trained with another architecture, vocabulary or data, and returns
/// its trainer state; warns when trainer settings differ.
pub fn check_resumable(
    path: &Path,
    info: &TrainedInfo,
    inputs: &RunInputs,
    model_config: &ModelConfig,
    trainer: &TrainerConfig,
) -> Result<TrainerState> {
    let (model, hashes) = (&inputs.model, &inputs.hashes);
    let hint = "train from scratch (without --resume) or restore the inputs and config it was trained with";
    if info.vocab_hash != hashes.vocab {
        bail!(
            "{}: the checkpoint was trained with a different vocabulary (vocab.parquet has changed since); {hint}",
            path.display()
        );
    }
    if info.model != *model || info.standardized != model_config.standardize {
        bail!(
            "{}: the checkpoint has model config {} (standardize = {}), the config now asks for {} \
             (standardize = {}); {hint}",
            path.display(),
            serde_json::to_string(&info.model)?,
            info.standardized,
            serde_json::to_string(model)?,
            model_config.standardize
        );
    }
    for (name, recorded, now) in [
        ("tokens.parquet", &info.tokens_hash, &hashes.tokens),
        ("features/", &info.features_hash, &hashes.features),
    ] {
        if recorded != now {
            bail!(
                "{}: the checkpoint was trained on a different {name} than the one on disk now; {hint}",
                path.display()
            );
        }
    }
    let state = TrainerState::from_checkpoint(info.trainer_state.clone())
        .map_err(|e| anyhow::anyhow!("{}: unreadable trainer state ({e})", path.display()))?;
    let comparable = |c: &TrainerConfig| TrainerConfig {
        epochs: 0,
        patience: 0,
        scst_epochs: 0,
        device: Default::default(),
        ..c.clone()
    };
    if comparable(&state.trainer) != comparable(trainer) {
        tracing::warn!(
            "resuming with trainer settings that differ from the run's start ({} then, {} now): the \
             result will differ from an uninterrupted run",
            serde_json::to_string(&state.trainer)?,
            serde_json::to_string(trainer)?
        );
    }
    Ok(state)
}

/// Removes the trainer's files from `dir` (a new run overwrites the old model), and the
/// temp files of writes a killed run never finished. Returns the model files it removed.
pub fn clear_model_dir(model_dir: &ModelDir) -> Result<Vec<PathBuf>> {
    let dir = model_dir.path();
    let mut removed = Vec::new();
    for name in ModelDir::FILES {
        let path = dir.join(name);
        if path.exists() {
            std::fs::remove_file(&path).map_err(|e| anyhow::anyhow!("{}: {e}", path.display()))?;
            removed.push(path);
        }
    }
    contracts::atomic::remove_stale_temps(dir, |target| ModelDir::FILES.contains(&target))?;
    Ok(removed)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_new_run_clears_only_the_trainers_files() {
        let dir = tempfile::tempdir().unwrap();
        let model_dir = ModelDir::new(dir.path());
        std::fs::write(model_dir.best(), b"x").unwrap();
        std::fs::write(dir.path().join(".metrics.csv.ab12.tmp"), b"x").unwrap();
        std::fs::write(dir.path().join("notes.txt"), b"x").unwrap();
        assert_eq!(clear_model_dir(&model_dir).unwrap(), vec![model_dir.best()]);
        let mut left: Vec<String> = std::fs::read_dir(dir.path())
            .unwrap()
            .map(|e| e.unwrap().file_name().to_string_lossy().into_owned())
            .collect();
        left.sort();
        assert_eq!(left, ["notes.txt"]);
    }
}
