//! The benchmark's support: training throughput on Flickr8k-sized random data, for
//! `cargo bench -p trainer` and its PyTorch counterpart `scripts/bench_trainer.py`. It lives
//! with the benchmark, not in the stage's library: nothing but the benchmark uses it.
//!
//! The default model (`[model]` defaults: embed 256, hidden 512, merge, dropout 0.5) on 30,000
//! random captions over an 8,000-token vocabulary, lengths drawn like Flickr8k's (about 13
//! tokens on average, at most 34), batches of 64 cut by length as in training. Times the same
//! steps the trainer runs (fused loss and gradients, global-norm clipping, Adam) after a few
//! warm-up steps. [`run_epoch`] times an epoch instead, at Flickr8k's or COCO's size
//! ([`BenchOptions::coco`]), to show how time and memory grow with the data.

use std::path::Path;
use std::sync::Arc;
use std::time::Instant;

use anyhow::Result;
use burn::tensor::backend::Backend;
use contracts::config::DecoderKind;
use contracts::grid::{GridShape, GridStore};
use contracts::tables::{FEATURE_DIM, Features};
use contracts::vocab::{END, SPECIALS, START};
use contracts::{FeatureSet, PipelineConfig, Vocabulary};
use metrics::CiderD;
use models::backend::BackendTask;
use rand::{Rng, SeedableRng};
use rand_chacha::ChaCha8Rng;

use trainer::Trainer;
use trainer::data::{Caption, Dataset, InputHashes, length_buckets};
use trainer::trainer::reference_views;

/// The benchmark's data and schedule.
#[derive(Debug, Clone)]
pub struct BenchOptions {
    pub captions: usize,
    /// Images the captions describe (five captions each, as Flickr8k).
    pub images: usize,
    pub vocab: usize,
    /// Longest caption in tokens, `<start>`/`<end>` included.
    pub max_tokens: usize,
    pub batch_size: usize,
    /// Timed steps, after `warmup` untimed ones.
    pub steps: usize,
    pub warmup: usize,
    pub seed: u64,
}

impl Default for BenchOptions {
    fn default() -> Self {
        Self {
            captions: 30_000,
            images: 6_000,
            vocab: 8_000,
            max_tokens: 34,
            batch_size: 64,
            steps: 30,
            warmup: 3,
            seed: 0,
        }
    }
}

impl BenchOptions {
    /// COCO's size (Karpathy's splits: about 123,000 images with five captions each), with a
    /// vocabulary of 10,000 tokens.
    pub fn coco() -> Self {
        Self {
            captions: 600_000,
            images: 123_000,
            vocab: 10_000,
            ..Self::default()
        }
    }

    /// The pooled feature table's size in MiB: what the trainer holds per image.
    pub fn features_mib(&self) -> f64 {
        (self.images * FEATURE_DIM * size_of::<f32>()) as f64 / (1024.0 * 1024.0)
    }
}

/// What the benchmark measured.
#[derive(Debug, Clone)]
pub struct BenchReport {
    pub steps: usize,
    pub captions: usize,
    pub tokens: usize,
    pub seconds: f64,
    pub captions_per_s: f64,
    /// Peak resident memory of the process (VmHWM), MiB; `None` where /proc is missing.
    pub peak_rss_mib: Option<f64>,
}

/// Random captions and features shaped like Flickr8k's.
pub fn synthetic_dataset(options: &BenchOptions) -> Dataset {
    let mut rng = ChaCha8Rng::seed_from_u64(options.seed);
    let words = options.vocab.saturating_sub(SPECIALS as usize);
    let vocab = Vocabulary::with_words((0..words).map(|i| format!("w{i}")));
    let features = (0..options.images * FEATURE_DIM)
        .map(|_| rng.random::<f32>())
        .collect();
    let train: Vec<Caption> = (0..options.captions)
        .map(|i| {
            // Box-Muller: N(13, 4) tokens, clamped to [4, max_tokens].
            let (u, v): (f64, f64) = (rng.random::<f64>().max(1e-12), rng.random());
            let normal = (-2.0 * u.ln()).sqrt() * (std::f64::consts::TAU * v).cos();
            let length = ((13.0 + 4.0 * normal) as usize).clamp(4, options.max_tokens);
            let mut tokens = vec![START];
            tokens.extend((2..length).map(|_| rng.random_range(SPECIALS..options.vocab as u32)));
            tokens.push(END);
            Caption {
                image: i % options.images,
                tokens,
            }
        })
        .collect();
    let features = Features {
        images: (0..options.images).map(|i| format!("{i}.jpg")).collect(),
        features,
    };
    // Each image's captions as its references, for the self-critical rewards.
    let mut train_references: Vec<Vec<Vec<String>>> = vec![Vec::new(); options.images];
    for caption in &train {
        let words = caption.tokens[1..caption.tokens.len() - 1]
            .iter()
            .map(|&id| vocab.token(id).unwrap_or_default().to_string())
            .collect();
        train_references[caption.image].push(words);
    }
    Dataset {
        vocab,
        features: FeatureSet::from_features(features),
        grid: None,
        train,
        val: Vec::new(),
        val_images: Vec::new(),
        val_references: Vec::new(),
        train_images: (0..options.images).collect(),
        train_references,
        hashes: InputHashes {
            vocab: String::new(),
            tokens: String::new(),
            features: String::new(),
        },
    }
}

/// Peak resident set size of this process in MiB (`VmHWM` of `/proc/self/status`).
pub fn peak_rss_mib() -> Option<f64> {
    let status = std::fs::read_to_string("/proc/self/status").ok()?;
    let line = status.lines().find(|l| l.starts_with("VmHWM:"))?;
    let kib: f64 = line.split_whitespace().nth(1)?.parse().ok()?;
    Some(kib / 1024.0)
}

/// The benchmark as a task for [`models::backend::run_on`]: cross-entropy steps, then
/// self-critical ones on the same model.
pub struct BenchTask<'a> {
    pub options: &'a BenchOptions,
    pub data: &'a Dataset,
}

impl BackendTask for BenchTask<'_> {
    type Output = Result<(BenchReport, BenchReport)>;

    fn run<B: Backend>(self, device: B::Device) -> Self::Output {
        Ok((
            run::<B>(self.options, self.data, &device)?,
            run_scst::<B>(self.options, self.data, &device)?,
        ))
    }
}

/// A grid model's benchmark (`attention` or `transformer`) as a task for
/// [`models::backend::run_on`].
pub struct GridBenchTask<'a> {
    pub options: &'a BenchOptions,
    pub data: &'a Dataset,
    pub decoder: DecoderKind,
}

impl BackendTask for GridBenchTask<'_> {
    type Output = Result<BenchReport>;

    fn run<B: Backend>(self, device: B::Device) -> Self::Output {
        run_grid_model::<B>(self.options, self.data, self.decoder, &device)
    }
}

/// The benchmark's configuration: the defaults, with its batch size and seed.
fn bench_config(options: &BenchOptions) -> PipelineConfig {
    let mut config = PipelineConfig::default();
    config.trainer.batch_size = options.batch_size;
    config.trainer.seed = options.seed;
    config
}

/// Runs `step` on `warmup + steps` of `batches` (cycled) and times the last `steps`. A step
/// returns its loss, and the captions and tokens it trained on.
fn timed<'a, 'b, B: Backend>(
    options: &BenchOptions,
    mut run: Trainer<'a, B>,
    batches: &[&'b [usize]],
    mut step: impl FnMut(&mut Trainer<'a, B>, &'b [usize]) -> (f64, usize, usize),
) -> Result<BenchReport> {
    let (mut captions, mut tokens) = (0, 0);
    let mut started = Instant::now();
    for (i, &batch) in batches
        .iter()
        .cycle()
        .take(options.warmup + options.steps)
        .enumerate()
    {
        if i == options.warmup {
            started = Instant::now();
            (captions, tokens) = (0, 0);
        }
        let (loss, step_captions, step_tokens) = step(&mut run, batch);
        anyhow::ensure!(loss.is_finite(), "benchmark loss is {loss}");
        captions += step_captions;
        tokens += step_tokens;
    }
    let seconds = started.elapsed().as_secs_f64();
    Ok(BenchReport {
        steps: options.steps,
        captions,
        tokens,
        seconds,
        captions_per_s: captions as f64 / seconds,
        peak_rss_mib: peak_rss_mib(),
    })
}

/// Times `options.steps` self-critical steps (5 samples of each of `batch_size / 5` images,
/// CIDEr-D rewards against the image's captions, mean baseline); `captions` counts samples.
pub fn run_scst<B: Backend>(
    options: &BenchOptions,
    data: &Dataset,
    device: &B::Device,
) -> Result<BenchReport> {
    let config = bench_config(options);
    let run = Trainer::<B>::start(&config, data, std::slice::from_ref(device))?;
    let references = reference_views(&data.train_references);
    let scorer = CiderD::new(&references);
    let mut rng = ChaCha8Rng::seed_from_u64(options.seed);
    let images: Vec<usize> = (0..data.train_images.len()).collect();
    let per_step = (options.batch_size / config.trainer.scst_samples).max(1);
    let batches: Vec<&[usize]> = images.chunks(per_step).collect();
    timed(options, run, &batches, |run, batch| {
        let outcome = run.scst_step(batch, &scorer, &mut rng);
        let samples = outcome.rewards.rewards.len();
        (outcome.loss, samples, outcome.tokens)
    })
}

/// `data` with a random 7x7 grid for every image (2048 channels, 400 KB an image: 2.4 GB for
/// 6,000 images) in a [`GridStore`] whose temp file is in `temp_dir`, as the trainer keeps the
/// grid of a real dataset: the benchmark's peak memory shows it is not held in memory.
pub fn with_grid(mut data: Dataset, seed: u64, temp_dir: &Path) -> Result<Dataset> {
    let shape = GridShape {
        channels: FEATURE_DIM,
        height: 7,
        width: 7,
    };
    let store = GridStore::create(shape, data.features.len(), temp_dir)?;
    let mut rng = ChaCha8Rng::seed_from_u64(seed);
    let mut row = vec![0f32; shape.len()];
    for image in 0..data.features.len() {
        row.iter_mut().for_each(|x| *x = rng.random());
        store.put(image, &row)?;
    }
    data.grid = Some(Arc::new(store));
    Ok(data)
}

/// Times `options.steps` training steps of a grid model (`[model]` defaults, `decoder`) on
/// `data`, which needs a grid ([`with_grid`]).
pub fn run_grid_model<B: Backend>(
    options: &BenchOptions,
    data: &Dataset,
    decoder: DecoderKind,
    device: &B::Device,
) -> Result<BenchReport> {
    let mut config = bench_config(options);
    config.model.decoder = decoder;
    time_steps::<B>(options, &config, data, device)
}

/// An epoch's cost, timed on a sample of its batches.
#[derive(Debug, Clone)]
pub struct EpochReport {
    /// Batches in the epoch, and those timed (every `stride`-th).
    pub batches: usize,
    pub timed: usize,
    /// Captions in the timed batches.
    pub captions: usize,
    pub seconds: f64,
    /// The epoch's time: the timed seconds per caption times the epoch's captions.
    pub epoch_seconds: f64,
    pub peak_rss_mib: Option<f64>,
}

/// Times every `stride`-th batch of one epoch of the default model on `data` (the epoch's
/// length buckets, in their shuffled order, so the sample has the epoch's mix of lengths),
/// each once, after `options.warmup` untimed steps on the sample's first batches. Validation
/// is not part of it.
pub fn run_epoch<B: Backend>(
    options: &BenchOptions,
    data: &Dataset,
    device: &B::Device,
    stride: usize,
) -> Result<EpochReport> {
    let (batches, rng) = epoch_batches(options, data);
    let sample: Vec<&[usize]> = batches
        .iter()
        .step_by(stride.max(1))
        .map(Vec::as_slice)
        .collect();
    // The warm-up steps cycle round to the end, so every batch of the sample is timed once.
    let once = BenchOptions {
        steps: sample.len(),
        ..options.clone()
    };
    let report = time_batches::<B>(&once, &bench_config(options), data, device, &sample, rng)?;
    Ok(EpochReport {
        batches: batches.len(),
        timed: sample.len(),
        captions: report.captions,
        seconds: report.seconds,
        epoch_seconds: report.seconds / report.captions as f64 * data.train.len() as f64,
        peak_rss_mib: report.peak_rss_mib,
    })
}

/// [`run_epoch`] as a task for [`models::backend::run_on`].
pub struct EpochBenchTask<'a> {
    pub options: &'a BenchOptions,
    pub data: &'a Dataset,
    pub stride: usize,
}

impl BackendTask for EpochBenchTask<'_> {
    type Output = Result<EpochReport>;

    fn run<B: Backend>(self, device: B::Device) -> Self::Output {
        run_epoch::<B>(self.options, self.data, &device, self.stride)
    }
}

/// Times `options.steps` training steps of the default model on `data`.
pub fn run<B: Backend>(
    options: &BenchOptions,
    data: &Dataset,
    device: &B::Device,
) -> Result<BenchReport> {
    time_steps::<B>(options, &bench_config(options), data, device)
}

fn time_steps<B: Backend>(
    options: &BenchOptions,
    config: &PipelineConfig,
    data: &Dataset,
    device: &B::Device,
) -> Result<BenchReport> {
    let (batches, rng) = epoch_batches(options, data);
    let batches: Vec<&[usize]> = batches.iter().map(Vec::as_slice).collect();
    time_batches::<B>(options, config, data, device, &batches, rng)
}

/// One epoch's length buckets of `data`'s train captions, and the generator that drew them,
/// which the steps go on to draw dropout from.
fn epoch_batches(options: &BenchOptions, data: &Dataset) -> (Vec<Vec<usize>>, ChaCha8Rng) {
    let lengths: Vec<usize> = data.train.iter().map(|c| c.tokens.len()).collect();
    let mut rng = ChaCha8Rng::seed_from_u64(options.seed);
    let batches = length_buckets(&lengths, options.batch_size, &mut rng);
    (batches, rng)
}

/// Times `options.steps` training steps of `config`'s model on `batches` (cycled).
fn time_batches<B: Backend>(
    options: &BenchOptions,
    config: &PipelineConfig,
    data: &Dataset,
    device: &B::Device,
    batches: &[&[usize]],
    mut rng: ChaCha8Rng,
) -> Result<BenchReport> {
    let run = Trainer::<B>::start(config, data, std::slice::from_ref(device))?;
    let learning_rate = config.trainer.learning_rate;
    timed(options, run, batches, |run, batch| {
        let loss = run.step(batch, learning_rate, &mut rng);
        (loss.loss, batch.len(), loss.tokens)
    })
}
