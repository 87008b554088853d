//! The training loop: epochs of teacher-forced steps over length-bucketed batches, then
//! validation (loss and greedy BLEU-4), checkpoints, reports and early stopping.
//!
//! Runs on `Autodiff<B>` for any backend `B` (CPU Flex, or CUDA on a `cuda` build) through
//! [`models::backend::run_on`]; validation and decoding use the plain backend (`model.valid()`).

use std::path::{Path, PathBuf};
use std::time::Instant;

use anyhow::{Context, Result, bail};
use burn::backend::Autodiff;
use burn::module::{AutodiffModule, Module, ModuleVisitor, Param, ParamId};
use burn::optim::adaptor::OptimizerAdaptor;
use burn::optim::record::AdaptorRecord;
use burn::optim::{GradientsParams, Optimizer};
use burn::tensor::backend::{AutodiffBackend, Backend};
use burn::tensor::{ElementConversion, Int, Tensor, TensorData};
use contracts::PipelineConfig;
use contracts::config::{EvaluatorConfig, TrainerConfig};
use contracts::tables::FEATURE_DIM;
use decoder::training::loss_and_grads;
use decoder::{CaptionModel, CaptionModelConfig, FeatureStats, SPECIALS, TeacherBatch, greedy};
use indicatif::{ProgressBar, ProgressDrawTarget, ProgressStyle};
use models::backend::{BackendTask, is_host};
use rand::SeedableRng;
use rand_chacha::ChaCha8Rng;
use rayon::prelude::*;
use tracing::{info, warn};
use wide::f32x8;

use crate::adam::{Adam, CHUNK};
use crate::checkpoint::{
    CONFIG_FILE, EpochMetrics, EpochTiming, TRAINED_FILE, TrainerState, check_resumable,
    clear_model_dir, epoch_seed, init_seed, trained_info,
};
use crate::data::{Caption, Dataset, length_buckets, sorted_batches};
use crate::report::{read_timings, write_reports};

/// The training backend over `B`.
pub type Train<B> = Autodiff<B>;
/// Adam over the caption model.
pub type Optim<B> = OptimizerAdaptor<Adam, CaptionModel<Train<B>>, Train<B>>;
type OptimRecord<B> = <Optim<B> as Optimizer<CaptionModel<Train<B>>, Train<B>>>::Record;
/// The optimizer state as a checkpoint stores it: one entry per parameter, in parameter-id
/// order (burn's own record is a hash map, whose order differs from process to process).
type SortedOptimRecord<B> = Vec<(String, AdaptorRecord<Adam, Train<B>>)>;

fn sorted<B: Backend>(record: OptimRecord<B>) -> SortedOptimRecord<B> {
    let mut entries: Vec<(ParamId, _)> = record.into_iter().collect();
    entries.sort_by_key(|(id, _)| *id);
    entries
        .into_iter()
        .map(|(id, state)| (id.serialize(), state))
        .collect()
}

fn unsorted<B: Backend>(record: SortedOptimRecord<B>) -> OptimRecord<B> {
    record
        .into_iter()
        .map(|(id, state)| (ParamId::deserialize(&id), state))
        .collect()
}

/// Images per greedy-decoding call during validation.
const DECODE_BATCH: usize = 256;

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
}

/// The model's architecture from `[model]` and the vocabulary size.
pub fn model_config(config: &PipelineConfig, vocab_size: usize) -> CaptionModelConfig {
    CaptionModelConfig {
        vocab_size,
        feature_dim: FEATURE_DIM,
        embed_dim: config.model.embed_dim,
        hidden_dim: config.model.hidden_dim,
        dropout: config.model.dropout,
        merge: config.model.merge,
    }
}

/// Adam as PyTorch computes it, with `trainer.adam_epsilon`; clipping is global (see
/// [`clip_global_norm`]), not burn's per-tensor clipping.
pub fn adam(trainer: &TrainerConfig) -> Adam {
    Adam::new(trainer.adam_epsilon as f32)
}

/// Rescales all gradients together so that their global L2 norm is at most `max_norm`, as
/// PyTorch's `clip_grad_norm_` does (burn's own clipping works per tensor). Returns the norm
/// before clipping.
pub fn clip_global_norm<B: AutodiffBackend>(
    model: &CaptionModel<B>,
    grads: &mut GradientsParams,
    max_norm: f64,
) -> f64 {
    struct SquaredNorm<'a> {
        grads: &'a mut GradientsParams,
        total: f64,
    }
    impl<B: AutodiffBackend> ModuleVisitor<B> for SquaredNorm<'_> {
        fn visit_float<const D: usize>(&mut self, param: &Param<Tensor<B, D>>) {
            if let Some(grad) = self.grads.remove::<B::InnerBackend, D>(param.id) {
                let (squares, grad) = squared_sum(grad);
                self.total += squares;
                self.grads.register(param.id, grad);
            }
        }
    }
    struct Scale<'a> {
        grads: &'a mut GradientsParams,
        factor: f64,
    }
    impl<B: AutodiffBackend> ModuleVisitor<B> for Scale<'_> {
        fn visit_float<const D: usize>(&mut self, param: &Param<Tensor<B, D>>) {
            if let Some(grad) = self.grads.remove::<B::InnerBackend, D>(param.id) {
                self.grads.register(param.id, scaled(grad, self.factor));
            }
        }
    }
    let mut norm = SquaredNorm { grads, total: 0.0 };
    model.visit(&mut norm);
    let norm = norm.total.sqrt();
    // PyTorch's rule: scale by max_norm / (norm + 1e-6) when that is below 1.
    let factor = max_norm / (norm + 1e-6);
    if factor < 1.0 {
        model.visit(&mut Scale { grads, factor });
    }
    norm
}

/// The sum of the squares of `tensor`'s elements, and the tensor back. The sum is split the
/// same way on every run (fixed chunks, or rows), so clipping is bit-for-bit reproducible.
fn squared_sum<B: Backend, const D: usize>(tensor: Tensor<B, D>) -> (f64, Tensor<B, D>) {
    if is_host::<B>() {
        host_squared_sum(tensor)
    } else {
        tensor_squared_sum(tensor)
    }
}

/// [`squared_sum`] in one multi-threaded pass over host memory.
fn host_squared_sum<B: Backend, const D: usize>(tensor: Tensor<B, D>) -> (f64, Tensor<B, D>) {
    let device = tensor.device();
    let data = tensor.into_data();
    let chunks: Vec<f64> = data
        .as_slice::<f32>()
        .expect("f32 gradients")
        .par_chunks(CHUNK)
        .map(sum_of_squares)
        .collect();
    (chunks.iter().sum(), Tensor::from_data(data, &device))
}

/// The sum of squares of `values`, in eight independent lanes (one running sum would wait on
/// each addition before the next).
fn sum_of_squares(values: &[f32]) -> f64 {
    let (lanes, rest) = values.as_chunks::<8>();
    let mut sums = f32x8::splat(0.0);
    for chunk in lanes {
        let x = f32x8::new(*chunk);
        sums += x * x;
    }
    f64::from(sums.reduce_add()) + rest.iter().map(|&x| f64::from(x * x)).sum::<f64>()
}

/// [`squared_sum`] as tensor operations: row sums first, since a whole-tensor sum of millions
/// of values may be split across threads differently from run to run.
fn tensor_squared_sum<B: Backend, const D: usize>(tensor: Tensor<B, D>) -> (f64, Tensor<B, D>) {
    let dims = tensor.dims();
    let n: usize = dims.iter().product();
    let rows = tensor
        .clone()
        .reshape([dims[0], n / dims[0]])
        .square()
        .sum_dim(1);
    (rows.sum().into_scalar().elem::<f64>(), tensor)
}

/// `tensor * factor`, in place and multi-threaded on the CPU.
fn scaled<B: Backend, const D: usize>(tensor: Tensor<B, D>, factor: f64) -> Tensor<B, D> {
    if !is_host::<B>() {
        return tensor.mul_scalar(factor);
    }
    let device = tensor.device();
    let mut data = tensor.into_data();
    let factor = factor as f32;
    data.as_mut_slice::<f32>()
        .expect("f32 gradients")
        .par_chunks_mut(CHUNK)
        .for_each(|chunk| chunk.iter_mut().for_each(|x| *x *= factor));
    Tensor::from_data(data, &device)
}

fn rows_tensor<B: Backend>(
    rows: impl Iterator<Item = usize>,
    device: &B::Device,
) -> Tensor<B, 1, Int> {
    let rows: Vec<i64> = rows.map(|r| r as i64).collect();
    let n = rows.len();
    Tensor::from_data(TensorData::new(rows, [n]), device)
}

/// One optimizer step on the captions `batch` (indices into `captions`); returns the updated
/// model, the batch's mean loss and its number of target tokens.
#[allow(clippy::too_many_arguments)]
pub fn train_step<B: Backend>(
    model: CaptionModel<Train<B>>,
    optim: &mut Optim<B>,
    features: &Tensor<B, 2>,
    captions: &[Caption],
    batch: &[usize],
    learning_rate: f64,
    clip_norm: f64,
    rng: &mut ChaCha8Rng,
    device: &B::Device,
) -> (CaptionModel<Train<B>>, f64, usize) {
    let rows = rows_tensor::<B>(batch.iter().map(|&i| captions[i].image), device);
    let batch_features = Tensor::from_inner(features.clone().select(0, rows));
    let tokens: Vec<&[u32]> = batch
        .iter()
        .map(|&i| captions[i].tokens.as_slice())
        .collect();
    let batch = TeacherBatch::<Train<B>>::new(&tokens, device);
    let (loss, mut grads) = loss_and_grads(&model, batch_features, &batch, Some(rng));
    if clip_norm > 0.0 {
        clip_global_norm(&model, &mut grads, clip_norm);
    }
    let model = optim.step(learning_rate, model, grads);
    (model, loss.into_scalar().elem::<f64>(), batch.tokens)
}

/// Mean loss per target token over `captions` (no dropout), in length-sorted batches.
pub fn validation_loss<B: Backend>(
    model: &CaptionModel<B>,
    captions: &[Caption],
    features: &Tensor<B, 2>,
    batch_size: usize,
    device: &B::Device,
) -> f64 {
    let lengths: Vec<usize> = captions.iter().map(|c| c.tokens.len()).collect();
    let (mut sum, mut tokens) = (0.0, 0usize);
    for batch in sorted_batches(&lengths, batch_size) {
        let rows = rows_tensor::<B>(batch.iter().map(|&i| captions[i].image), device);
        let ids: Vec<&[u32]> = batch
            .iter()
            .map(|&i| captions[i].tokens.as_slice())
            .collect();
        let teacher = TeacherBatch::<B>::new(&ids, device);
        let loss = model
            .loss(features.clone().select(0, rows), &teacher)
            .into_scalar()
            .elem::<f64>();
        sum += loss * teacher.tokens as f64;
        tokens += teacher.tokens;
    }
    sum / tokens.max(1) as f64
}

/// Greedy captions of the val images as words (specials dropped), in `data.val_images` order.
pub fn validation_captions<'a, B: Backend>(
    model: &CaptionModel<B>,
    data: &'a Dataset,
    features: &Tensor<B, 2>,
    evaluator: &EvaluatorConfig,
    device: &B::Device,
) -> Vec<Vec<&'a str>> {
    let mut out = Vec::with_capacity(data.val_images.len());
    for chunk in data.val_images.chunks(DECODE_BATCH) {
        let rows = rows_tensor::<B>(chunk.iter().copied(), device);
        for ids in greedy(
            model,
            features.clone().select(0, rows),
            evaluator.max_len,
            evaluator.suppress_unk,
        ) {
            out.push(
                ids.iter()
                    .filter(|&&id| id >= SPECIALS)
                    .map(|&id| data.vocab[id as usize].as_str())
                    .collect(),
            );
        }
    }
    out
}

/// The training run as a task for [`models::backend::run_on`].
pub struct TrainTask<'a> {
    pub config: &'a PipelineConfig,
    pub data: &'a Dataset,
    pub options: &'a TrainOptions,
    pub model_dir: &'a Path,
}

impl BackendTask for TrainTask<'_> {
    type Output = Result<TrainSummary>;

    fn run<B: Backend>(self, device: B::Device) -> Self::Output {
        train_on::<B>(self, &device)
    }
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

fn train_on<B: Backend>(task: TrainTask<'_>, device: &B::Device) -> Result<TrainSummary> {
    let TrainTask {
        config,
        data,
        options,
        model_dir,
    } = task;
    let trainer = &config.trainer;
    let model_config = model_config(config, data.vocab.len());
    let higher_is_better = trainer.val_metric.higher_is_better();
    let last_path = model_dir.join(decoder::LAST_CHECKPOINT);
    let best_path = model_dir.join(decoder::BEST_CHECKPOINT);

    let resume = options.resume && last_path.exists();
    if options.resume && !resume {
        info!(
            "--resume: no checkpoint at {}, starting a new run",
            last_path.display()
        );
    }
    let (mut model, mut optim, mut state) = if resume {
        let (model, record, info) =
            decoder::load_checkpoint::<Train<B>, SortedOptimRecord<B>>(&last_path, device)
                .with_context(|| {
                    format!(
                        "cannot resume: run the trainer without --resume (or delete {}) to \
                         start over",
                        model_dir.display()
                    )
                })?;
        let state = check_resumable(
            &last_path,
            &info,
            &model_config,
            &config.model,
            &data.hashes,
            trainer,
        )?;
        info!(
            "resuming from {} after epoch {}",
            last_path.display(),
            state.epochs_done
        );
        (
            model,
            adam(trainer).init().load_record(unsorted(record)),
            state,
        )
    } else {
        let removed = clear_model_dir(model_dir)?;
        if !removed.is_empty() {
            info!(
                "overwriting the model in {} (use --resume to continue it instead)",
                model_dir.display()
            );
        }
        let stats = if config.model.standardize {
            data.train_feature_stats()?
        } else {
            FeatureStats::identity(FEATURE_DIM)
        };
        let model = model_config.init::<Train<B>>(&stats, init_seed(trainer.seed), device)?;
        (model, adam(trainer).init(), TrainerState::new(trainer))
    };
    std::fs::create_dir_all(model_dir)
        .with_context(|| format!("creating {}", model_dir.display()))?;
    contracts::atomic::write_atomically(
        &model_dir.join(CONFIG_FILE),
        serde_json::to_string_pretty(config)?.as_bytes(),
    )?;
    info!(
        "model: {} parameters (embed {}, hidden {}, vocabulary {}, merge {}, dropout {}); Adam epsilon {:e}, \
         clip norm {}, batch {}",
        model.num_params(),
        model_config.embed_dim,
        model_config.hidden_dim,
        model_config.vocab_size,
        model_config.merge,
        model_config.dropout,
        trainer.adam_epsilon,
        trainer.clip_norm,
        trainer.batch_size
    );

    // Every image's raw vector on the device, once; batches select their rows.
    let features = Tensor::<B, 2>::from_data(
        TensorData::new(data.features.clone(), [data.images.len(), FEATURE_DIM]),
        device,
    );
    let lengths: Vec<usize> = data.train.iter().map(|c| c.tokens.len()).collect();
    // Earlier epochs' timings live in metrics.csv only, not in checkpoints.
    let mut timings = if resume {
        read_timings(model_dir)
    } else {
        Default::default()
    };
    timings.retain(|&epoch, _| epoch <= state.epochs_done);
    let start_epoch = state.epochs_done;
    if state.stopped_early {
        info!(
            "training already stopped early after epoch {} (best epoch {})",
            state.epochs_done, state.best_epoch
        );
    } else if start_epoch >= trainer.epochs {
        info!("nothing to do: {start_epoch} epochs trained already (raise --epochs to continue)");
    }
    for epoch in start_epoch..trainer.epochs {
        if state.stopped_early {
            break;
        }
        let started = Instant::now();
        let mut rng = ChaCha8Rng::seed_from_u64(epoch_seed(trainer.seed, epoch));
        let batches = length_buckets(&lengths, trainer.batch_size, &mut rng);
        let learning_rate = state.learning_rate();
        let bar = progress_bar(options, batches.len(), epoch, trainer.epochs);
        let (mut loss_sum, mut tokens, mut captions) = (0.0, 0usize, 0usize);
        for batch in &batches {
            let (next, loss, batch_tokens) = train_step(
                model,
                &mut optim,
                &features,
                &data.train,
                batch,
                learning_rate,
                trainer.clip_norm,
                &mut rng,
                device,
            );
            model = next;
            if !loss.is_finite() {
                bail!(
                    "training diverged in epoch {} (loss {loss}); lower trainer.learning_rate or trainer.clip_norm",
                    epoch + 1
                );
            }
            loss_sum += loss * batch_tokens as f64;
            tokens += batch_tokens;
            captions += batch.len();
            bar.inc(1);
            let rate = captions as f64 / started.elapsed().as_secs_f64();
            bar.set_message(format!(
                "loss {:.3}, {rate:.0} captions/s",
                loss_sum / tokens as f64
            ));
        }
        let train_seconds = started.elapsed().as_secs_f64();
        bar.finish_and_clear();

        let inner = model.valid();
        let val_loss = validation_loss(&inner, &data.val, &features, trainer.batch_size, device);
        let hypotheses = validation_captions(&inner, data, &features, &config.evaluator, device);
        let val_bleu4 =
            metrics::corpus_bleu4(&hypotheses, &data.val_references).context("val BLEU-4")?;
        let metrics = EpochMetrics {
            epoch: epoch + 1,
            train_loss: loss_sum / tokens.max(1) as f64,
            val_loss,
            val_bleu4,
            learning_rate,
        };
        let timing = EpochTiming {
            seconds: started.elapsed().as_secs_f64(),
            captions_per_s: captions as f64 / train_seconds,
        };
        timings.insert(metrics.epoch, timing);
        let metric = if higher_is_better {
            val_bleu4
        } else {
            val_loss
        };
        let improved = state.record(metrics.clone(), metric, higher_is_better, trainer);
        let info = trained_info(
            &model_config,
            config.model.standardize,
            &data.hashes,
            &state,
        )?;
        if improved {
            decoder::save_checkpoint(&best_path, &model, sorted(optim.to_record()), &info)?;
            contracts::atomic::write_atomically(
                &model_dir.join(TRAINED_FILE),
                serde_json::to_string_pretty(&info)?.as_bytes(),
            )?;
        }
        decoder::save_checkpoint(&last_path, &model, sorted(optim.to_record()), &info)?;
        write_reports(model_dir, &state.history, &timings)?;
        info!(
            "epoch {}/{}: train loss {:.4}, val loss {:.4}, val BLEU-4 {:.4}{}, lr {:e}, {:.1} s, {:.0} training captions/s ({})",
            metrics.epoch,
            trainer.epochs,
            metrics.train_loss,
            metrics.val_loss,
            metrics.val_bleu4,
            if improved { " (best)" } else { "" },
            learning_rate,
            timing.seconds,
            timing.captions_per_s,
            trainer.device
        );
        if state.stopped_early {
            info!(
                "early stopping: val {} has not improved for {} epochs; best epoch {}",
                trainer.val_metric.name(),
                trainer.patience,
                state.best_epoch
            );
        }
    }
    if state.best_epoch == 0 && !best_path.exists() {
        warn!("no epoch was trained, so there is no best model yet");
    }
    Ok(TrainSummary {
        model_dir: model_dir.to_path_buf(),
        history: state.history.clone(),
        epochs_run: state.epochs_done - start_epoch,
        best_epoch: state.best_epoch,
        best: state.best,
        stopped_early: state.stopped_early,
    })
}

#[cfg(test)]
mod tests {
    use super::*;
    use burn::tensor::Distribution;
    use models::backend::Cpu;

    #[test]
    fn squared_sums_agree_with_a_plain_f64_sum() {
        let tensor = Tensor::<Cpu, 2>::random(
            [300, 1001],
            Distribution::Normal(0.0, 2.0),
            &Default::default(),
        );
        let values = tensor.clone().into_data().to_vec::<f32>().unwrap();
        let exact: f64 = values.iter().map(|&x| f64::from(x) * f64::from(x)).sum();
        let (host, back) = host_squared_sum(tensor.clone());
        let (tensors, _) = tensor_squared_sum(tensor);
        assert!((host - exact).abs() < 1e-6 * exact, "{host} vs {exact}");
        assert!(
            (tensors - exact).abs() < 1e-5 * exact,
            "{tensors} vs {exact}"
        );
        assert_eq!(back.into_data().to_vec::<f32>().unwrap(), values);
    }

    #[test]
    fn clipping_brings_the_global_norm_down_to_the_limit() {
        let device = Default::default();
        let config = CaptionModelConfig {
            vocab_size: 12,
            feature_dim: 6,
            embed_dim: 4,
            hidden_dim: 5,
            dropout: 0.0,
            merge: true,
        };
        let model = config
            .init::<Train<Cpu>>(&FeatureStats::identity(6), 3, &device)
            .unwrap();
        let features = Tensor::random([2, 6], Distribution::Default, &device);
        let captions: [&[u32]; 2] = [&[1, 5, 6, 2], &[1, 7, 2]];
        let batch = TeacherBatch::new(&captions, &device);
        let (_, mut grads) = loss_and_grads(&model, features, &batch, None);
        let norm = clip_global_norm(&model, &mut grads, f64::MAX);
        assert!(norm > 0.0);
        assert_eq!(clip_global_norm(&model, &mut grads, f64::MAX), norm);
        clip_global_norm(&model, &mut grads, norm / 2.0);
        let clipped = clip_global_norm(&model, &mut grads, f64::MAX);
        assert!(
            (clipped - norm / 2.0).abs() < 1e-5 * norm,
            "{clipped} vs {}",
            norm / 2.0
        );
    }

    #[test]
    fn scaling_multiplies_every_element() {
        let tensor = Tensor::<Cpu, 1>::random([70_000], Distribution::Default, &Default::default());
        let values = tensor.clone().into_data().to_vec::<f32>().unwrap();
        let scaled = scaled(tensor, 0.25).into_data().to_vec::<f32>().unwrap();
        assert!(values.iter().zip(&scaled).all(|(v, s)| *s == v * 0.25));
    }
}
