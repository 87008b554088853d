//! Training throughput on Flickr8k-sized random data, for `cargo bench -p trainer` and its
//! PyTorch counterpart `scripts/bench_trainer.py`.
//!
//! The default model (`[model]` defaults: embed 256, hidden 512, merge, dropout 0.5) on 30,000
//! random captions over an 8,000-token vocabulary, lengths drawn like Flickr8k's (about 13
//! tokens on average, at most 34), batches of 64 cut by length as in training. Times the same
//! steps the trainer runs (fused loss and gradients, global-norm clipping, Adam) after a few
//! warm-up steps.

use std::time::Instant;

use anyhow::Result;
use burn::tensor::backend::Backend;
use burn::tensor::{Tensor, TensorData};
use contracts::PipelineConfig;
use contracts::tables::FEATURE_DIM;
use models::backend::BackendTask;
use rand::{Rng, SeedableRng};
use rand_chacha::ChaCha8Rng;

use crate::data::{Caption, Dataset, InputHashes, length_buckets};
use crate::train::{Train, adam, model_config, train_step};

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
    let vocab = (0..options.vocab).map(|i| format!("w{i}")).collect();
    let features = (0..options.images * FEATURE_DIM)
        .map(|_| rng.random::<f32>())
        .collect();
    let train = (0..options.captions)
        .map(|i| {
            // Box-Muller: N(13, 4) tokens, clamped to [4, max_tokens].
            let (u, v): (f64, f64) = (rng.random::<f64>().max(1e-12), rng.random());
            let normal = (-2.0 * u.ln()).sqrt() * (std::f64::consts::TAU * v).cos();
            let length = ((13.0 + 4.0 * normal) as usize).clamp(4, options.max_tokens);
            let mut tokens = vec![decoder::START];
            tokens.extend(
                (2..length).map(|_| rng.random_range(decoder::SPECIALS..options.vocab as u32)),
            );
            tokens.push(decoder::END);
            Caption {
                image: i % options.images,
                tokens,
            }
        })
        .collect();
    Dataset {
        vocab,
        images: (0..options.images).map(|i| format!("{i}.jpg")).collect(),
        features,
        train,
        val: Vec::new(),
        val_images: Vec::new(),
        val_references: Vec::new(),
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

/// The benchmark as a task for [`models::backend::run_on`].
pub struct BenchTask<'a> {
    pub options: &'a BenchOptions,
    pub data: &'a Dataset,
}

impl BackendTask for BenchTask<'_> {
    type Output = Result<BenchReport>;

    fn run<B: Backend>(self, device: B::Device) -> Self::Output {
        run::<B>(self.options, self.data, &device)
    }
}

/// Times `options.steps` training steps of the default model on `data`.
pub fn run<B: Backend>(
    options: &BenchOptions,
    data: &Dataset,
    device: &B::Device,
) -> Result<BenchReport> {
    let mut config = PipelineConfig::default();
    config.trainer.batch_size = options.batch_size;
    let model_config = model_config(&config, data.vocab.len());
    let stats = data.train_feature_stats()?;
    let mut model = model_config.init::<Train<B>>(&stats, options.seed, device)?;
    let mut optim = adam(&config.trainer).init();
    let features = Tensor::<B, 2>::from_data(
        TensorData::new(data.features.clone(), [data.images.len(), FEATURE_DIM]),
        device,
    );
    let lengths: Vec<usize> = data.train.iter().map(|c| c.tokens.len()).collect();
    let mut rng = ChaCha8Rng::seed_from_u64(options.seed);
    let batches = length_buckets(&lengths, options.batch_size, &mut rng);
    let (mut captions, mut tokens) = (0, 0);
    let mut started = Instant::now();
    for (step, batch) in batches
        .iter()
        .cycle()
        .take(options.warmup + options.steps)
        .enumerate()
    {
        if step == options.warmup {
            started = Instant::now();
            (captions, tokens) = (0, 0);
        }
        let (next, loss, batch_tokens) = train_step(
            model,
            &mut optim,
            &features,
            &data.train,
            batch,
            config.trainer.learning_rate,
            config.trainer.clip_norm,
            &mut rng,
            device,
        );
        anyhow::ensure!(loss.is_finite(), "benchmark loss is {loss}");
        model = next;
        captions += batch.len();
        tokens += batch_tokens;
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
