//! Training throughput of the default caption model on Flickr8k-sized random data, next to
//! the same model in PyTorch (`scripts/bench_trainer.py`, skipped when torch is missing).
//!
//!     cargo bench -p trainer                      # 30 timed steps
//!     cargo bench -p trainer -- --steps 60 --device cuda   # on a `--features cuda` build
//!     cargo bench -p trainer -- --no-python
//!     cargo bench -p trainer -- --attention --steps 10  # the attention model, next to
//!                                                       # scripts/bench_attention.py
//!     cargo bench -p trainer -- --transformer --steps 10  # the Transformer, next to
//!                                                         # scripts/bench_transformer.py
//!     cargo bench -p trainer -- --epoch flickr8k        # one epoch's time and peak memory
//!     cargo bench -p trainer -- --epoch coco --stride 20  # at COCO's size, every 20th batch

use std::path::Path;
use std::process::Command;

use contracts::config::{DecoderKind, Device};
use models::backend::run_on;
mod support;

use support::{
    BenchOptions, BenchTask, EpochBenchTask, GridBenchTask, synthetic_dataset, with_grid,
};

#[global_allocator]
static GLOBAL: mimalloc::MiMalloc = mimalloc::MiMalloc;

fn main() -> anyhow::Result<()> {
    trainer::allocator::keep_freed_memory();
    let args: Vec<String> = std::env::args().collect();
    let value = |flag: &str| {
        args.iter()
            .position(|a| a == flag)
            .and_then(|i| args.get(i + 1))
            .cloned()
    };
    let mut options = BenchOptions::default();
    if let Some(steps) = value("--steps") {
        options.steps = steps.parse()?;
    }
    let device = value("--device").unwrap_or_else(|| "cpu".into());
    let kind = match device.as_str() {
        "cpu" => Device::Cpu,
        "cuda" => Device::Cuda,
        other => anyhow::bail!("--device {other}: expected cpu or cuda"),
    };
    if let Some(scale) = value("--epoch") {
        let stride = value("--stride").map_or(Ok(1), |s| s.parse())?;
        return epoch(&scale, stride, kind, &device);
    }
    for (flag, decoder) in [
        ("--attention", DecoderKind::Attention),
        ("--transformer", DecoderKind::Transformer),
    ] {
        if args.iter().any(|a| a == flag) {
            return grid_model(
                &options,
                decoder,
                kind,
                &device,
                args.iter().any(|a| a == "--no-python"),
            );
        }
    }
    let data = synthetic_dataset(&options);
    let (report, scst) = run_on(
        kind,
        BenchTask {
            options: &options,
            data: &data,
        },
    )??;
    let threads = threads();
    println!(
        "burn trainer ({device}, {threads} threads): {:.1} training captions/s ({} steps of batch {}, \
         {:.3} s/step, {:.1} tokens/step), peak memory {} MiB",
        report.captions_per_s,
        report.steps,
        options.batch_size,
        report.seconds / report.steps as f64,
        report.tokens as f64 / report.steps as f64,
        report
            .peak_rss_mib
            .map_or("?".into(), |m| format!("{m:.0}")),
    );
    println!(
        "burn scst ({device}, {threads} threads): {:.1} sampled captions/s ({} steps of {} images x 5 \
         samples, {:.3} s/step against {:.3} s/step for cross-entropy)",
        scst.captions_per_s,
        scst.steps,
        options.batch_size / 5,
        scst.seconds / scst.steps as f64,
        report.seconds / report.steps as f64,
    );
    if args.iter().any(|a| a == "--no-python") || device != "cpu" {
        return Ok(());
    }
    compare_with_pytorch("bench_trainer.py", &options, report.captions_per_s);
    Ok(())
}

/// A grid model's training speed and peak memory, with its grid in a temp file as in
/// training; the same model in PyTorch (`scripts/bench_<decoder>.py`) unless `no_python`.
fn grid_model(
    options: &BenchOptions,
    decoder: DecoderKind,
    kind: Device,
    device: &str,
    no_python: bool,
) -> anyhow::Result<()> {
    let temp = tempfile::tempdir_in(env!("CARGO_TARGET_TMPDIR"))?;
    let data = with_grid(synthetic_dataset(options), options.seed, temp.path())?;
    let report = run_on(
        kind,
        GridBenchTask {
            options,
            data: &data,
            decoder,
        },
    )??;
    let threads = threads();
    println!(
        "burn {decoder} trainer ({device}, {threads} threads): {:.1} training captions/s ({} steps of batch {}, \
         {:.3} s/step, grid of {} images in a temp file), peak memory {} MiB",
        report.captions_per_s,
        report.steps,
        options.batch_size,
        report.seconds / report.steps as f64,
        options.images,
        report
            .peak_rss_mib
            .map_or("?".into(), |m| format!("{m:.0}")),
    );
    if !no_python && device == "cpu" {
        let script = format!("bench_{decoder}.py");
        compare_with_pytorch(&script, options, report.captions_per_s);
    }
    Ok(())
}

/// One epoch of the default model at `scale` ("flickr8k" or "coco"), timed on every
/// `stride`-th batch: its time, and the process's peak memory next to the feature table's size.
fn epoch(scale: &str, stride: usize, kind: Device, device: &str) -> anyhow::Result<()> {
    let options = match scale {
        "flickr8k" => BenchOptions::default(),
        "coco" => BenchOptions::coco(),
        other => anyhow::bail!("--epoch {other}: expected flickr8k or coco"),
    };
    let data = synthetic_dataset(&options);
    let report = run_on(
        kind,
        EpochBenchTask {
            options: &options,
            data: &data,
            stride,
        },
    )??;
    println!(
        "burn epoch {scale} ({device}, {} threads): {} captions, {} images, vocabulary {}: \
         epoch {:.0} s ({} of {} batches timed, {:.1} s, {:.1} captions/s), peak memory {} MiB, \
         pooled features {:.0} MiB",
        threads(),
        options.captions,
        options.images,
        options.vocab,
        report.epoch_seconds,
        report.timed,
        report.batches,
        report.seconds,
        report.captions as f64 / report.seconds,
        report
            .peak_rss_mib
            .map_or("?".into(), |m| format!("{m:.0}")),
        options.features_mib(),
    );
    Ok(())
}

/// The threads burn's CPU backend and the PyTorch side use: one per core.
fn threads() -> usize {
    std::thread::available_parallelism().map_or(1, |n| n.get())
}

/// Runs the PyTorch side `script` with the same steps and threads, prints its line and the
/// ratio of `ours` (captions/s) to it.
fn compare_with_pytorch(script: &str, options: &BenchOptions, ours: f64) {
    let threads = threads();
    let script = Path::new(env!("CARGO_MANIFEST_DIR"))
        .join("../../scripts")
        .join(script);
    let output = Command::new("python3")
        .arg(&script)
        .args([
            "--steps",
            &options.steps.to_string(),
            "--warmup",
            &options.warmup.to_string(),
            "--threads",
            &threads.to_string(),
        ])
        .output();
    match output {
        Ok(out) if out.status.success() => {
            let text = String::from_utf8_lossy(&out.stdout);
            print!("{text}");
            let torch = text
                .split_whitespace()
                .zip(text.split_whitespace().skip(1))
                .find(|(_, next)| *next == "training")
                .and_then(|(number, _)| number.parse::<f64>().ok());
            if let Some(torch) = torch {
                println!("ratio burn / pytorch: {:.2}", ours / torch);
            }
        }
        Ok(out) => eprintln!(
            "{} failed: {}",
            script.display(),
            String::from_utf8_lossy(&out.stderr)
        ),
        Err(e) => eprintln!("python3 not available ({e}): skipping the PyTorch reference"),
    }
}
