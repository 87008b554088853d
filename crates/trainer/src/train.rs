//! The training loop, top to bottom: open the run (new or resumed), then per epoch train on
//! length-bucketed batches, validate, record, save and report, until the epochs run out or
//! early stopping ends it.
//!
//! Runs on `Autodiff<B>` for any backend `B` (CPU Flex, or CUDA on a `cuda` build) through
//! [`models::backend::run_on`]; validation and decoding use the plain backend.

use std::path::PathBuf;
use std::time::Instant;

use anyhow::{Context, Result, bail};
use burn::tensor::backend::{Backend, Device, DeviceId};
use contracts::config::DeviceSlot;
use contracts::{ModelDir, PipelineConfig};
use indicatif::{ProgressBar, ProgressDrawTarget, ProgressStyle};
use metrics::CiderD;
use models::backend::BackendTask;
use rand::SeedableRng;
use rand::seq::SliceRandom;
use rand_chacha::ChaCha8Rng;
use tracing::{info, warn};

use crate::checkpoint::clear_model_dir;
use crate::data::{Dataset, length_buckets};
use crate::report::{Timings, read_timings, write_reports};
use crate::state::{EpochMetrics, EpochTiming, Phase, epoch_seed};
use crate::trainer::{Trainer, reference_views};

/// How to run, beyond the configuration.
#[derive(Debug, Clone, Default)]
pub struct TrainOptions {
    /// Continue from `model/last.mpk` instead of starting over.
    pub resume: bool,
    /// Draw a progress bar on stderr (hidden anyway when stderr is not a terminal).
    pub progress: bool,
}

/// What a run did.
#[derive(Debug, Clone)]
pub struct TrainSummary {
    pub model_dir: PathBuf,
    /// Every epoch so far, resumed ones included.
    pub history: Vec<EpochMetrics>,
    /// Epochs trained by this call.
    pub epochs_run: usize,
    pub best_epoch: usize,
    pub best: Option<f64>,
    pub stopped_early: bool,
    /// Devices each batch was split across (1: not split).
    pub devices: usize,
}

/// The training run as a task for [`models::backend::run_on`].
pub struct TrainTask<'a> {
    pub config: &'a PipelineConfig,
    pub data: &'a Dataset,
    pub options: &'a TrainOptions,
    pub model_dir: &'a ModelDir,
}

impl BackendTask for TrainTask<'_> {
    type Output = Result<TrainSummary>;

    fn run<B: Backend>(self, _: B::Device) -> Self::Output {
        let devices: Vec<B::Device> = self
            .config
            .trainer
            .replicas()
            .iter()
            .map(|slot| B::Device::from_id(DeviceId::new(0, slot.index)))
            .collect();
        train_on::<B>(self, &devices)
    }
}

/// What one epoch's optimizer steps gave, in either phase.
struct EpochTrained {
    /// Mean loss per token (cross-entropy) or per sampled caption (self-critical).
    loss: f64,
    /// Captions trained on, or captions sampled.
    captions: usize,
    /// Seconds of training, validation left out.
    seconds: f64,
    /// Self-critical only: the mean reward and the mean advantage per sample.
    rewards: Option<(f64, f64)>,
}

fn train_on<B: Backend>(task: TrainTask<'_>, devices: &[B::Device]) -> Result<TrainSummary> {
    let TrainTask {
        config,
        data,
        options,
        model_dir,
    } = task;
    let trainer = &config.trainer;
    let (mut run, mut timings) = open::<B>(config, data, options, model_dir, devices)?;
    let start_epoch = run.state.epochs_done;
    let start_epochs = run.state.total_epochs();
    if run.state.stopped_early {
        info!(
            "training already stopped early after epoch {} (best epoch {})",
            run.state.epochs_done, run.state.best_epoch
        );
    } else if start_epoch >= trainer.epochs && trainer.scst_epochs == 0 {
        info!("nothing to do: {start_epoch} epochs trained already (raise --epochs to continue)");
    }
    for epoch in start_epoch..trainer.epochs {
        if run.state.stopped_early {
            break;
        }
        let started = Instant::now();
        let learning_rate = run.state.learning_rate();
        let trained;
        (run, trained) = train_epoch(run, epoch, options)?;
        finish_epoch(
            &mut run,
            epoch,
            trained,
            learning_rate,
            started,
            model_dir,
            &mut timings,
        )?;
    }
    if trainer.scst_epochs > 0 && run.state.cross_entropy_done(trainer.epochs) {
        run = self_critical(run, options, model_dir, &mut timings)?;
    }
    let state = &run.state;
    if state.best_epoch == 0 && !model_dir.best().exists() {
        warn!("no epoch was trained, so there is no best model yet");
    }
    Ok(TrainSummary {
        model_dir: model_dir.path().to_path_buf(),
        history: state.history.clone(),
        epochs_run: state.total_epochs() - start_epochs,
        best_epoch: state.best_epoch_overall(),
        best: state
            .scst
            .best
            .filter(|_| state.scst.best_epoch > 0)
            .or(state.best),
        stopped_early: state.stopped_early || state.scst.stopped_early,
        devices: run.devices(),
    })
}

/// The self-critical phase: from the best cross-entropy checkpoint (or where a resumed run
/// left it), epochs of sampled, CIDEr-D-rewarded steps over the train images, the best
/// checkpoint chosen by val CIDEr-D, early stopping on it with `trainer.patience`.
fn self_critical<'a, B: Backend>(
    mut run: Trainer<'a, B>,
    options: &TrainOptions,
    model_dir: &ModelDir,
    timings: &mut Timings,
) -> Result<Trainer<'a, B>> {
    let config = run.config();
    let trainer = &config.trainer;
    let data = run.data();
    let references = reference_views(&data.train_references);
    let scorer = CiderD::new(&references);
    if run.state.scst.epochs_done == 0 && !run.state.scst.stopped_early {
        let best = model_dir.best();
        run.begin_scst(&best)?;
        let best_epoch = run.state.best_epoch;
        // The score to beat, measured on the weights SCST starts from.
        run.state.scst.best = Some(run.validate()?.cider);
        info!(
            "self-critical training from {} (epoch {best_epoch}, val CIDEr-D {:.4}): {} epochs, {} samples per image, {} baseline, lr {:e}",
            best.display(),
            run.state.scst.best.unwrap_or(f64::NAN),
            trainer.scst_epochs,
            trainer.scst_samples,
            trainer.scst_baseline.name(),
            trainer.scst_learning_rate
        );
    }
    for _ in run.state.scst.epochs_done..trainer.scst_epochs {
        if run.state.scst.stopped_early {
            break;
        }
        let epoch = run.state.total_epochs();
        let started = Instant::now();
        let trained;
        (run, trained) = scst_epoch(run, epoch, &scorer, options)?;
        let learning_rate = trainer.scst_learning_rate;
        finish_epoch(
            &mut run,
            epoch,
            trained,
            learning_rate,
            started,
            model_dir,
            timings,
        )?;
    }
    Ok(run)
}

/// The run to continue: `last.mpk` with `--resume` (and earlier epochs' timings), else a new
/// model in a cleared model directory. Writes `config.json`.
fn open<'a, B: Backend>(
    config: &'a PipelineConfig,
    data: &'a Dataset,
    options: &TrainOptions,
    model_dir: &ModelDir,
    devices: &[B::Device],
) -> Result<(Trainer<'a, B>, Timings)> {
    let last = model_dir.last();
    let resume = options.resume && last.exists();
    if options.resume && !resume {
        info!(
            "--resume: no checkpoint at {}, starting a new run",
            last.display()
        );
    }
    let (run, mut timings) = if resume {
        let run = Trainer::<B>::resume(config, data, &last, devices).with_context(|| {
            format!(
                "cannot resume: run the trainer without --resume (or delete {}) to start over",
                model_dir.path().display()
            )
        })?;
        info!(
            "resuming from {} after epoch {}",
            last.display(),
            run.state.epochs_done
        );
        // Earlier epochs' timings live in metrics.csv only, not in checkpoints.
        (run, read_timings(model_dir))
    } else {
        if !clear_model_dir(model_dir)?.is_empty() {
            info!(
                "overwriting the model in {} (use --resume to continue it instead)",
                model_dir.path().display()
            );
        }
        (Trainer::<B>::start(config, data, devices)?, Timings::new())
    };
    timings.retain(|&epoch, _| epoch <= run.state.epochs_done);
    std::fs::create_dir_all(model_dir.path())
        .with_context(|| format!("creating {}", model_dir.path().display()))?;
    contracts::atomic::write_atomically(
        &model_dir.config_json(),
        serde_json::to_string_pretty(config)?.as_bytes(),
    )?;
    let trainer = &config.trainer;
    info!(
        "model: {} parameters ({}); Adam epsilon {:e}, clip norm {}, batch {}{}",
        run.num_params(),
        run.model_config(),
        trainer.adam_epsilon,
        trainer.clip_norm,
        trainer.batch_size,
        split_across(&trainer.replicas())
    );
    Ok((run, timings))
}

/// One epoch of optimizer steps over length-bucketed batches, shuffled and with dropout
/// drawn from the epoch's own generator.
fn train_epoch<'a, B: Backend>(
    mut run: Trainer<'a, B>,
    epoch: usize,
    options: &TrainOptions,
) -> Result<(Trainer<'a, B>, EpochTrained)> {
    let trainer = &run.config().trainer;
    let started = Instant::now();
    let mut rng = ChaCha8Rng::seed_from_u64(epoch_seed(trainer.seed, epoch));
    let lengths: Vec<usize> = run.data().train.iter().map(|c| c.tokens.len()).collect();
    let batches = length_buckets(&lengths, trainer.batch_size, &mut rng);
    let bar = progress_bar(options, batches.len(), epoch, trainer.epochs);
    let (mut loss_sum, mut tokens, mut captions) = (0.0, 0usize, 0usize);
    for batch in &batches {
        let learning_rate = run.state.learning_rate();
        let step = run.step(batch, learning_rate, &mut rng);
        run.state.steps_done += 1;
        if !step.loss.is_finite() {
            bail!(
                "training diverged in epoch {} (loss {}); lower trainer.learning_rate or trainer.clip_norm",
                epoch + 1,
                step.loss
            );
        }
        loss_sum += step.loss * step.tokens as f64;
        tokens += step.tokens;
        captions += batch.len();
        bar.inc(1);
        let rate = captions as f64 / started.elapsed().as_secs_f64();
        bar.set_message(format!(
            "loss {:.3}, {rate:.0} captions/s",
            loss_sum / tokens as f64
        ));
    }
    bar.finish_and_clear();
    let trained = EpochTrained {
        loss: loss_sum / tokens.max(1) as f64,
        captions,
        seconds: started.elapsed().as_secs_f64(),
        rewards: None,
    };
    Ok((run, trained))
}

/// One self-critical epoch: every train image, in a shuffled order, `trainer.scst_samples`
/// captions sampled for each, rewarded with CIDEr-D against its references.
fn scst_epoch<'a, B: Backend>(
    mut run: Trainer<'a, B>,
    epoch: usize,
    scorer: &CiderD,
    options: &TrainOptions,
) -> Result<(Trainer<'a, B>, EpochTrained)> {
    let trainer = &run.config().trainer;
    let started = Instant::now();
    let mut rng = ChaCha8Rng::seed_from_u64(epoch_seed(trainer.seed, epoch));
    let mut order: Vec<usize> = (0..run.data().train_images.len()).collect();
    order.shuffle(&mut rng);
    let images_per_step = (trainer.batch_size / trainer.scst_samples).max(1);
    let batches: Vec<&[usize]> = order.chunks(images_per_step).collect();
    let total = trainer.epochs + trainer.scst_epochs;
    let bar = progress_bar(options, batches.len(), epoch, total);
    let (mut loss_sum, mut reward_sum, mut advantage_sum, mut samples) = (0.0, 0.0, 0.0, 0);
    for batch in batches {
        let step = run.scst_step(batch, scorer, &mut rng);
        if !step.loss.is_finite() {
            bail!(
                "self-critical training diverged in epoch {} (loss {}); lower trainer.scst_learning_rate",
                epoch + 1,
                step.loss
            );
        }
        let n = step.rewards.rewards.len();
        loss_sum += step.loss * n as f64;
        reward_sum += step.rewards.mean_reward() * n as f64;
        advantage_sum += step.rewards.mean_advantage() * n as f64;
        samples += n;
        bar.inc(1);
        bar.set_message(format!("reward {:.3}", reward_sum / samples as f64));
    }
    bar.finish_and_clear();
    let per_sample = |sum: f64| sum / samples.max(1) as f64;
    let trained = EpochTrained {
        loss: per_sample(loss_sum),
        captions: samples,
        seconds: started.elapsed().as_secs_f64(),
        rewards: Some((per_sample(reward_sum), per_sample(advantage_sum))),
    };
    Ok((run, trained))
}

/// The end of an epoch of either phase, written once: validate, record the metrics (the
/// phase's own rule for the best checkpoint and early stopping), save, write the reports and
/// log the epoch. `started` is when the epoch began, for its wall time.
fn finish_epoch<B: Backend>(
    run: &mut Trainer<'_, B>,
    epoch: usize,
    trained: EpochTrained,
    learning_rate: f64,
    started: Instant,
    model_dir: &ModelDir,
    timings: &mut Timings,
) -> Result<()> {
    let trainer = &run.config().trainer;
    let phase = match trained.rewards {
        None => Phase::CrossEntropy,
        Some(_) => Phase::SelfCritical,
    };
    let validation = run.validate()?;
    let metrics = EpochMetrics {
        epoch: epoch + 1,
        phase,
        train_loss: trained.loss,
        val_loss: validation.loss,
        val_bleu4: validation.bleu4,
        val_cider: validation.cider,
        val_repeats: validation.repeats,
        mean_reward: trained.rewards.map(|(reward, _)| reward),
        mean_advantage: trained.rewards.map(|(_, advantage)| advantage),
        learning_rate,
    };
    let timing = EpochTiming {
        seconds: started.elapsed().as_secs_f64(),
        captions_per_s: trained.captions as f64 / trained.seconds,
    };
    timings.insert(metrics.epoch, timing);
    let improved = match phase {
        Phase::CrossEntropy => {
            let higher_is_better = trainer.val_metric.higher_is_better();
            let metric = if higher_is_better {
                validation.bleu4
            } else {
                validation.loss
            };
            run.state
                .record(metrics.clone(), metric, higher_is_better, trainer)
        }
        Phase::SelfCritical => run.state.record_scst(metrics.clone(), trainer.patience),
    };
    run.save(model_dir, improved)?;
    write_reports(model_dir, &run.state.history, timings)?;
    let best = if improved { " (best)" } else { "" };
    match phase {
        Phase::CrossEntropy => {
            info!(
                "epoch {}/{}: train loss {:.4}, val loss {:.4}, val BLEU-4 {:.4}{best}, lr {:e}, {:.1} s, {:.0} training captions/s ({})",
                metrics.epoch,
                trainer.epochs,
                metrics.train_loss,
                metrics.val_loss,
                metrics.val_bleu4,
                learning_rate,
                timing.seconds,
                timing.captions_per_s,
                trainer.device
            );
            if run.state.stopped_early {
                info!(
                    "early stopping: val {} has not improved for {} epochs; best epoch {}",
                    trainer.val_metric.name(),
                    trainer.patience,
                    run.state.best_epoch
                );
            }
        }
        Phase::SelfCritical => {
            info!(
                "epoch {}/{} (self-critical): reward {:.4}, val loss {:.4}, val BLEU-4 {:.4}, val CIDEr-D {:.4}{best}, {} repeating captions, {:.1} s, {:.0} samples/s",
                metrics.epoch,
                trainer.epochs + trainer.scst_epochs,
                metrics.mean_reward.unwrap_or(f64::NAN),
                metrics.val_loss,
                metrics.val_bleu4,
                metrics.val_cider,
                metrics.val_repeats,
                timing.seconds,
                timing.captions_per_s
            );
            if run.state.scst.stopped_early {
                info!(
                    "early stopping: val CIDEr-D has not improved for {} self-critical epochs",
                    trainer.patience
                );
            }
        }
    }
    Ok(())
}

/// How a batch is split, for the log: nothing on one device.
fn split_across(devices: &[DeviceSlot]) -> String {
    if devices.len() < 2 {
        return String::new();
    }
    let names: Vec<String> = devices.iter().map(DeviceSlot::to_string).collect();
    format!(
        ", split across {} devices ({})",
        devices.len(),
        names.join(", ")
    )
}

fn progress_bar(
    options: &TrainOptions,
    batches: usize,
    epoch: usize,
    epochs: usize,
) -> ProgressBar {
    if !options.progress {
        return ProgressBar::hidden();
    }
    let bar = ProgressBar::with_draw_target(Some(batches as u64), ProgressDrawTarget::stderr());
    let style = ProgressStyle::with_template(
        "epoch {prefix} [{bar:30}] {pos}/{len} batches, {msg} ({elapsed}, eta {eta})",
    )
    .unwrap_or_else(|_| ProgressStyle::default_bar())
    .progress_chars("=> ");
    bar.set_style(style);
    bar.set_prefix(format!("{}/{epochs}", epoch + 1));
    bar
}
