//! Beam-3 decoding speed of the Transformer at its default sizes (d_model 512, 8 heads,
//! feed-forward 2048, 2 + 2 layers) with a vocabulary of 8,000: 1,000 images of random 7x7
//! grids in batches of 64, as the evaluator decodes, up to 20 words each. The weights are
//! random, so almost no caption ends early and both sides run every step. Next to it,
//! `scripts/bench_transformer_decode.py`: the same work in PyTorch with its own key/value
//! cache (skipped without torch).
//!
//!     cargo bench -p decoder --bench decode                 # 1,000 images
//!     cargo bench -p decoder --bench decode -- --images 128 --no-python

use std::path::Path;
use std::process::Command;
use std::time::Instant;

use burn::tensor::{Tensor, TensorData};
use contracts::config::ModelConfig;
use decoder::captioner::Architecture;
use decoder::transformer::TransformerConfig;
use decoder::{BeamConfig, FeatureStats, Images, beam_search};
use rand::{Rng, SeedableRng};
use rand_chacha::ChaCha8Rng;

type B = kernels::Cpu;

const VOCAB: usize = 8000;
const REGIONS: usize = 49;
const CHANNELS: usize = 2048;
const BATCH: usize = 64;

fn main() {
    let args: Vec<String> = std::env::args().collect();
    let value = |flag: &str| {
        args.iter()
            .position(|a| a == flag)
            .and_then(|i| args.get(i + 1))
            .cloned()
    };
    let images: usize = value("--images").map_or(1000, |v| v.parse().expect("--images N"));
    let config = TransformerConfig::from_pipeline(&ModelConfig::default(), VOCAB);
    let device = Default::default();
    let model = config
        .init::<B>(&FeatureStats::identity(CHANNELS), 1, &device)
        .expect("the default architecture is valid");
    let search = BeamConfig {
        beam_size: 3,
        max_len: 20,
        length_alpha: 0.0,
        suppress_unk: true,
    };
    let mut rng = ChaCha8Rng::seed_from_u64(7);
    let started = Instant::now();
    let mut words = 0;
    for start in (0..images).step_by(BATCH) {
        let n = BATCH.min(images - start);
        let grid: Vec<f32> = (0..n * REGIONS * CHANNELS).map(|_| rng.random()).collect();
        let grid =
            Tensor::<B, 3>::from_data(TensorData::new(grid, [n, REGIONS, CHANNELS]), &device);
        let batch = Images {
            pooled: grid.clone().mean_dim(1).squeeze_dim(1),
            grid: Some(grid),
        };
        words += beam_search(&model, &batch, &search)
            .iter()
            .map(|h| h.tokens.len())
            .sum::<usize>();
    }
    let seconds = started.elapsed().as_secs_f64();
    let threads = std::thread::available_parallelism().map_or(1, |n| n.get());
    let threads = std::env::var("RAYON_NUM_THREADS")
        .ok()
        .and_then(|t| t.parse().ok())
        .unwrap_or(threads);
    println!(
        "burn transformer beam-3 decoding (cpu, {threads} threads): {:.1} images/s ({images} images, \
         {:.1} words each, {seconds:.1} s)",
        images as f64 / seconds,
        words as f64 / images as f64
    );
    if args.iter().any(|a| a == "--no-python") {
        return;
    }
    let script =
        Path::new(env!("CARGO_MANIFEST_DIR")).join("../../scripts/bench_transformer_decode.py");
    let output = Command::new("python3")
        .arg(&script)
        .args([
            "--images",
            &images.to_string(),
            "--threads",
            &threads.to_string(),
        ])
        .output();
    match output {
        Ok(out) if out.status.success() => print!("{}", String::from_utf8_lossy(&out.stdout)),
        Ok(out) => eprintln!(
            "{}: {}",
            script.display(),
            String::from_utf8_lossy(&out.stderr)
        ),
        Err(e) => eprintln!("python3: {e}"),
    }
}
