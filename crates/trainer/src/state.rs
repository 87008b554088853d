//! The trainer's state between epochs and between runs, stored in every checkpoint, and the
//! per-epoch records it keeps.
//!
//! Randomness is reproducible without storing a generator: epoch `e` draws its shuffling and
//! dropout from a generator seeded with `(seed, e)` (see [`epoch_seed`]), so the state's seed
//! and epoch count are the whole RNG state, and a resumed run draws exactly what an
//! uninterrupted run would have.

use contracts::config::{LrSchedule, TrainerConfig};
use serde::{Deserialize, Serialize};

/// The training phase an epoch belongs to.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
pub enum Phase {
    /// Teacher forcing on the references.
    #[serde(rename = "xe")]
    CrossEntropy,
    /// Self-critical training on the model's own samples (CIDEr-D reward).
    #[serde(rename = "scst")]
    SelfCritical,
}

fn cross_entropy() -> Phase {
    Phase::CrossEntropy
}

impl Phase {
    pub fn name(self) -> &'static str {
        match self {
            Phase::CrossEntropy => "xe",
            Phase::SelfCritical => "scst",
        }
    }
}

/// One row of `metrics.csv`.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct EpochMetrics {
    /// 1-based, counting both phases.
    pub epoch: usize,
    #[serde(default = "cross_entropy")]
    pub phase: Phase,
    /// Mean cross-entropy per target token over the epoch's batches (with dropout).
    #[serde(with = "exact")]
    pub train_loss: f64,
    /// Mean cross-entropy per target token on the val captions (no dropout).
    #[serde(with = "exact")]
    pub val_loss: f64,
    /// Corpus BLEU-4 of greedy captions of the val images.
    #[serde(with = "exact")]
    pub val_bleu4: f64,
    /// Corpus CIDEr-D of the same captions (what self-critical training optimises); 0 in
    /// checkpoints from before it was recorded.
    #[serde(default, with = "exact")]
    pub val_cider: f64,
    /// How many of those captions repeat a word or a word pair ("a dog a dog"): the
    /// degenerate captions a CIDEr reward can breed.
    #[serde(default)]
    pub val_repeats: usize,
    /// Self-critical epochs: the mean CIDEr-D reward of the samples, and the mean advantage
    /// (reward minus baseline).
    #[serde(default, with = "exact_option")]
    pub mean_reward: Option<f64>,
    #[serde(default, with = "exact_option")]
    pub mean_advantage: Option<f64>,
    /// Learning rate of the epoch's first step (the whole epoch's under `plateau`).
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
    /// The learning-rate schedule in force: `trainer.lr_schedule`, `auto` resolved to the
    /// model's own (checkpoints from before the key: plateau).
    #[serde(default = "plateau")]
    pub schedule: LrSchedule,
    /// Optimizer steps of the cross-entropy epochs so far: the warm-up schedule's clock.
    #[serde(default)]
    pub steps_done: usize,
    /// Plateau's learning-rate decays so far: the rate is `learning_rate * lr_decay^lr_decays`.
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
    /// Every epoch so far, both phases.
    pub history: Vec<EpochMetrics>,
    /// The self-critical phase, after `epochs_done` cross-entropy epochs (absent from
    /// checkpoints written before it existed: not started).
    #[serde(default)]
    pub scst: ScstProgress,
}

/// How far self-critical training has got; the best checkpoint is chosen by val CIDEr-D.
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
pub struct ScstProgress {
    pub epochs_done: usize,
    /// Val CIDEr-D to beat: the best cross-entropy checkpoint's at the start.
    #[serde(with = "exact_option")]
    pub best: Option<f64>,
    /// Epoch (counting both phases) of the best self-critical checkpoint; 0 while none beat
    /// the cross-entropy one.
    pub best_epoch: usize,
    pub epochs_without_improvement: usize,
    pub stopped_early: bool,
}

impl TrainerState {
    /// The state a checkpoint stores. One written before `trainer.attention_reg` moved into
    /// `[model.attention]` records it with the trainer settings: it is dropped here, as the
    /// checkpoint's architecture holds the same weight, so such a run still resumes.
    pub fn from_checkpoint(mut value: serde_json::Value) -> serde_json::Result<Self> {
        if let Some(trainer) = value.get_mut("trainer").and_then(|t| t.as_object_mut()) {
            trainer.remove("attention_reg");
        }
        serde_json::from_value(value)
    }

    /// A run's first state; `model_schedule` is what `auto` stands for with its model.
    pub fn new(trainer: &TrainerConfig, model_schedule: LrSchedule) -> Self {
        let schedule = match trainer.lr_schedule {
            LrSchedule::Auto => model_schedule,
            chosen => chosen,
        };
        Self {
            trainer: trainer.clone(),
            schedule,
            steps_done: 0,
            epochs_done: 0,
            lr_decays: 0,
            best: None,
            best_epoch: 0,
            epochs_without_improvement: 0,
            epochs_on_plateau: 0,
            stopped_early: false,
            history: Vec::new(),
            scst: ScstProgress::default(),
        }
    }

    /// Whether the cross-entropy phase is over (its epochs done, or stopped early).
    pub fn cross_entropy_done(&self, epochs: usize) -> bool {
        self.stopped_early || self.epochs_done >= epochs
    }

    /// Epochs trained so far, both phases.
    pub fn total_epochs(&self) -> usize {
        self.epochs_done + self.scst.epochs_done
    }

    /// The best checkpoint's epoch: the self-critical one once one beat cross-entropy.
    pub fn best_epoch_overall(&self) -> usize {
        if self.scst.best_epoch > 0 {
            self.scst.best_epoch
        } else {
            self.best_epoch
        }
    }

    /// Records a self-critical epoch with its val CIDEr-D; returns whether it is the best so
    /// far. Stops after `patience` epochs without improvement (0: never).
    pub fn record_scst(&mut self, metrics: EpochMetrics, patience: usize) -> bool {
        let cider = metrics.val_cider;
        self.history.push(metrics);
        let scst = &mut self.scst;
        scst.epochs_done += 1;
        let improved = scst.best.is_none_or(|best| cider > best);
        if improved {
            scst.best = Some(cider);
            scst.best_epoch = self.epochs_done + scst.epochs_done;
            scst.epochs_without_improvement = 0;
        } else {
            scst.epochs_without_improvement += 1;
            if patience > 0 && scst.epochs_without_improvement >= patience {
                scst.stopped_early = true;
            }
        }
        improved
    }

    /// The learning rate of the next cross-entropy step.
    ///
    /// `warmup` rises linearly to `learning_rate` over `warmup_steps` steps and then falls
    /// with `1/sqrt(step)`: the Transformer's schedule (`d_model^-0.5 * min(step^-0.5,
    /// step * warmup^-1.5)`), scaled so that its peak is `learning_rate`.
    pub fn learning_rate(&self) -> f64 {
        let base = self.trainer.learning_rate;
        match self.schedule {
            LrSchedule::Warmup => {
                let step = (self.steps_done + 1) as f64;
                let warmup = self.trainer.warmup_steps as f64;
                base * (step / warmup).min((warmup / step).sqrt())
            }
            LrSchedule::Plateau | LrSchedule::Auto => {
                base * self.trainer.lr_decay.powi(self.lr_decays)
            }
        }
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
            if self.schedule == LrSchedule::Plateau
                && config.lr_patience > 0
                && self.epochs_on_plateau >= config.lr_patience
            {
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

/// The schedule of a checkpoint written before `trainer.lr_schedule`.
fn plateau() -> LrSchedule {
    LrSchedule::Plateau
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
            phase: Phase::CrossEntropy,
            train_loss: 0.1 + 0.2,
            val_loss: 1.0 / 3.0,
            val_bleu4: 0.0,
            val_cider: 0.7,
            val_repeats: 2,
            mean_reward: None,
            mean_advantage: Some(-1.0 / 3.0),
            learning_rate: 1e-3,
        }
    }

    #[test]
    fn state_survives_json_exactly() {
        let mut state = TrainerState::new(&TrainerConfig::default(), LrSchedule::Plateau);
        state.record(metrics(1), 1.0 / 7.0, true, &TrainerConfig::default());
        let back: TrainerState =
            serde_json::from_value(serde_json::to_value(&state).unwrap()).unwrap();
        assert_eq!(back, state);
    }

    #[test]
    fn a_state_written_before_the_model_tables_still_reads() {
        let state = TrainerState::new(&TrainerConfig::default(), LrSchedule::Plateau);
        let mut old = serde_json::to_value(&state).unwrap();
        old["trainer"]["attention_reg"] = serde_json::json!(1.0);
        assert!(serde_json::from_value::<TrainerState>(old.clone()).is_err());
        assert_eq!(TrainerState::from_checkpoint(old).unwrap(), state);
    }

    /// Linear to the peak at `warmup_steps`, then `1/sqrt(step)`; plateaus do not decay it,
    /// and `auto` is the model's schedule, a named one the named one.
    #[test]
    fn warmup_rises_to_the_peak_then_falls_with_the_inverse_square_root() {
        let config = TrainerConfig {
            learning_rate: 0.01,
            warmup_steps: 4,
            lr_patience: 1,
            ..Default::default()
        };
        let mut state = TrainerState::new(&config, LrSchedule::Warmup);
        assert_eq!(state.schedule, LrSchedule::Warmup);
        let mut rates = Vec::new();
        for step in 0..16 {
            state.steps_done = step;
            rates.push(state.learning_rate());
        }
        let expected = [0.0025, 0.005, 0.0075, 0.01, 0.01 * (4.0f64 / 5.0).sqrt()];
        for (rate, expected) in rates.iter().zip(expected) {
            assert!((rate - expected).abs() < 1e-15, "{rates:?}");
        }
        assert!((rates[15] - 0.005).abs() < 1e-15, "{rates:?}");
        state.record(metrics(1), 1.0, true, &config);
        state.record(metrics(2), 0.5, true, &config);
        assert_eq!(state.lr_decays, 0);
        let plateau = TrainerConfig {
            lr_schedule: LrSchedule::Plateau,
            ..config.clone()
        };
        assert_eq!(
            TrainerState::new(&plateau, LrSchedule::Warmup).schedule,
            LrSchedule::Plateau
        );
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
        let mut state = TrainerState::new(&config, LrSchedule::Plateau);
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
    fn self_critical_epochs_beat_the_cross_entropy_best_or_stop() {
        let mut state = TrainerState::new(&TrainerConfig::default(), LrSchedule::Plateau);
        state.record(metrics(1), 0.5, true, &TrainerConfig::default());
        state.scst.best = Some(1.0);
        let scst = |epoch, cider| EpochMetrics {
            phase: Phase::SelfCritical,
            val_cider: cider,
            ..metrics(epoch)
        };
        assert!(!state.record_scst(scst(2, 0.9), 2));
        assert_eq!(state.best_epoch_overall(), 1);
        assert!(state.record_scst(scst(3, 1.1), 2));
        assert_eq!(state.best_epoch_overall(), 3);
        assert!(!state.record_scst(scst(4, 1.0), 2));
        assert!(!state.scst.stopped_early);
        assert!(!state.record_scst(scst(5, 1.05), 2));
        assert!(state.scst.stopped_early);
        assert_eq!(state.total_epochs(), 5);
    }

    #[test]
    fn epoch_seeds_differ() {
        assert_ne!(epoch_seed(42, 0), epoch_seed(42, 1));
        assert_ne!(epoch_seed(42, 0), epoch_seed(43, 0));
        assert_ne!(init_seed(42), epoch_seed(42, 0));
    }
}
