//! The trainer's state between epochs and between runs, stored in every checkpoint, and the
//! per-epoch records it keeps.
//!
//! Randomness is reproducible without storing a generator: epoch `e` draws its shuffling and
//! dropout from a generator seeded with `(seed, e)` (see [`epoch_seed`]), so the state's seed
//! and epoch count are the whole RNG state, and a resumed run draws exactly what an
//! uninterrupted run would have.

use contracts::config::TrainerConfig;
use serde::{Deserialize, Serialize};

/// One row of `metrics.csv`.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct EpochMetrics {
    /// 1-based.
    pub epoch: usize,
    /// Mean cross-entropy per target token over the epoch's batches (with dropout).
    #[serde(with = "exact")]
    pub train_loss: f64,
    /// Mean cross-entropy per target token on the val captions (no dropout).
    #[serde(with = "exact")]
    pub val_loss: f64,
    /// Corpus BLEU-4 of greedy captions of the val images.
    #[serde(with = "exact")]
    pub val_bleu4: f64,
    /// Learning rate used during the epoch.
    #[serde(with = "exact")]
    pub learning_rate: f64,
}

/// How long an epoch took: in `metrics.csv`, never in a checkpoint (so the same seed gives
/// byte-identical checkpoints).
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct EpochTiming {
    /// Wall time of the epoch, validation included.
    pub seconds: f64,
    /// Training captions per second (training steps only).
    pub captions_per_s: f64,
}

/// The trainer's state after an epoch; stored in every checkpoint.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct TrainerState {
    /// The trainer config the run started with (a resume with other values is warned about).
    pub trainer: TrainerConfig,
    /// Epochs finished.
    pub epochs_done: usize,
    /// Learning-rate decays so far: the rate is `learning_rate * lr_decay^lr_decays`.
    pub lr_decays: i32,
    /// Best validation metric so far and its epoch (1-based, 0 before the first).
    #[serde(with = "exact_option")]
    pub best: Option<f64>,
    pub best_epoch: usize,
    /// Epochs since the metric last improved (early stopping).
    pub epochs_without_improvement: usize,
    /// Epochs since the metric last improved or the rate was last decayed (plateau).
    pub epochs_on_plateau: usize,
    pub stopped_early: bool,
    pub history: Vec<EpochMetrics>,
}

impl TrainerState {
    pub fn new(trainer: &TrainerConfig) -> Self {
        Self {
            trainer: trainer.clone(),
            epochs_done: 0,
            lr_decays: 0,
            best: None,
            best_epoch: 0,
            epochs_without_improvement: 0,
            epochs_on_plateau: 0,
            stopped_early: false,
            history: Vec::new(),
        }
    }

    pub fn learning_rate(&self) -> f64 {
        self.trainer.learning_rate * self.trainer.lr_decay.powi(self.lr_decays)
    }

    /// Records an epoch's validation metric; returns whether it is the best so far.
    /// `higher_is_better` for BLEU, not for loss.
    pub fn record(
        &mut self,
        metrics: EpochMetrics,
        metric: f64,
        higher_is_better: bool,
        config: &TrainerConfig,
    ) -> bool {
        self.epochs_done = metrics.epoch;
        self.history.push(metrics);
        let improved = match self.best {
            None => true,
            Some(best) if higher_is_better => metric > best,
            Some(best) => metric < best,
        };
        if improved {
            self.best = Some(metric);
            self.best_epoch = self.epochs_done;
            self.epochs_without_improvement = 0;
            self.epochs_on_plateau = 0;
        } else {
            self.epochs_without_improvement += 1;
            self.epochs_on_plateau += 1;
            if config.lr_patience > 0 && self.epochs_on_plateau >= config.lr_patience {
                self.lr_decays += 1;
                self.epochs_on_plateau = 0;
            }
            if config.patience > 0 && self.epochs_without_improvement >= config.patience {
                self.stopped_early = true;
            }
        }
        improved
    }
}

/// Seed of epoch `epoch`'s shuffling and dropout (SplitMix64 of the pair, so neighbouring
/// seeds and epochs give unrelated streams).
pub fn epoch_seed(seed: u64, epoch: usize) -> u64 {
    let mut z = seed
        ^ (epoch as u64)
            .wrapping_add(1)
            .wrapping_mul(0x9E37_79B9_7F4A_7C15);
    z = (z ^ (z >> 30)).wrapping_mul(0xBF58_476D_1CE4_E5B9);
    z = (z ^ (z >> 27)).wrapping_mul(0x94D0_49BB_1331_11EB);
    z ^ (z >> 31)
}

/// Seed of the initial weights (distinct from every epoch's).
pub fn init_seed(seed: u64) -> u64 {
    epoch_seed(seed, usize::MAX)
}

/// f64 as its shortest round-trip decimal string, so values survive JSON exactly (a resumed
/// run compares metrics bit for bit with an uninterrupted one).
mod exact {
    use serde::{Deserialize, Deserializer, Serializer, de::Error};

    pub fn serialize<S: Serializer>(value: &f64, serializer: S) -> Result<S::Ok, S::Error> {
        serializer.serialize_str(&format!("{value:?}"))
    }

    pub fn deserialize<'de, D: Deserializer<'de>>(deserializer: D) -> Result<f64, D::Error> {
        let text = String::deserialize(deserializer)?;
        text.parse()
            .map_err(|_| D::Error::custom(format!("not a number: {text:?}")))
    }
}

mod exact_option {
    use serde::{Deserialize, Deserializer, Serializer, de::Error};

    pub fn serialize<S: Serializer>(value: &Option<f64>, serializer: S) -> Result<S::Ok, S::Error> {
        match value {
            Some(v) => serializer.serialize_some(&format!("{v:?}")),
            None => serializer.serialize_none(),
        }
    }

    pub fn deserialize<'de, D: Deserializer<'de>>(
        deserializer: D,
    ) -> Result<Option<f64>, D::Error> {
        let text = Option::<String>::deserialize(deserializer)?;
        text.map(|t| {
            t.parse()
                .map_err(|_| D::Error::custom(format!("not a number: {t:?}")))
        })
        .transpose()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn metrics(epoch: usize) -> EpochMetrics {
        EpochMetrics {
            epoch,
            train_loss: 0.1 + 0.2,
            val_loss: 1.0 / 3.0,
            val_bleu4: 0.0,
            learning_rate: 1e-3,
        }
    }

    #[test]
    fn state_survives_json_exactly() {
        let mut state = TrainerState::new(&TrainerConfig::default());
        state.record(metrics(1), 1.0 / 7.0, true, &TrainerConfig::default());
        let back: TrainerState =
            serde_json::from_value(serde_json::to_value(&state).unwrap()).unwrap();
        assert_eq!(back, state);
    }

    #[test]
    fn plateau_decays_the_rate_and_patience_stops() {
        let config = TrainerConfig {
            lr_patience: 2,
            patience: 3,
            lr_decay: 0.5,
            learning_rate: 1.0,
            ..Default::default()
        };
        let mut state = TrainerState::new(&config);
        assert!(state.record(metrics(1), 1.0, false, &config));
        assert!(!state.record(metrics(2), 1.0, false, &config));
        assert_eq!(state.learning_rate(), 1.0);
        assert!(!state.record(metrics(3), 2.0, false, &config));
        assert_eq!(state.learning_rate(), 0.5);
        assert!(!state.stopped_early);
        assert!(!state.record(metrics(4), 1.5, false, &config));
        assert!(state.stopped_early);
        assert_eq!(state.best_epoch, 1);
    }

    #[test]
    fn epoch_seeds_differ() {
        assert_ne!(epoch_seed(42, 0), epoch_seed(42, 1));
        assert_ne!(epoch_seed(42, 0), epoch_seed(43, 0));
        assert_ne!(init_seed(42), epoch_seed(42, 0));
    }
}
