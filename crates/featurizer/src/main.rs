//! `featurizer`: ResNet50 feature vectors for every image, as `features/part-NNNNN.parquet`.
//!
//!     featurizer --work-dir data/work --weights data/weights/resnet50-0676ba61.pth
//!     featurizer --images photos/ --work-dir out/ --weights random     # no captions needed
//!     featurizer --shard 2/4 ...                                        # a quarter of the parts
//!     featurizer --shard auto ...                    # in a Slurm array task (k/n from Slurm)
//!     featurizer --shard auto --shard-count 8 ...    # in a Kubernetes Indexed Job's pod
//!
//! With `model.decoder = "attention"` it also writes `grid/part-NNNNN.parquet`, the 7x7 feature
//! map before pooling, from the same network pass.
//! A rerun keeps finished parts, so a killed run resumes where it stopped.
//! Exit codes: 0 every image featurized; 1 error; 3 finished, but some images could not be
//! read (listed above the summary; their features are absent).

use std::path::PathBuf;
use std::process::ExitCode;

use anyhow::Context;
use clap::Parser;
use contracts::PipelineConfig;
use contracts::config::Override;
use models::backend::run_on;
use models::preprocess::Preprocess;
use models::resnet::{ResNetConfig, WeightsSource};
use shard::ShardSpec;

mod shard;

#[derive(Parser)]
#[command(
    version,
    about = "Compute ResNet50 features of the images into features/part-*.parquet"
)]
struct Cli {
    /// torchvision ResNet50 weights (.pth or .safetensors), or `random` for the seeded
    /// demo initialisation; overrides `paths.weights`.
    #[arg(long, value_name = "FILE|random")]
    weights: Option<String>,

    /// Image folder. With captions.parquet in the work dir it overrides the folder the cleaner
    /// found; without it, every image under DIR is featurized.
    #[arg(long, value_name = "DIR")]
    images: Option<PathBuf>,

    /// Process only shard K of N (parts i with i % N == K-1). `auto` takes K/N from a Slurm
    /// array task (SLURM_ARRAY_TASK_ID, _MIN, _COUNT) or a Kubernetes Indexed Job's pod
    /// (JOB_COMPLETION_INDEX, 0-based, with --shard-count). Shards of one job may run at the
    /// same time on one work dir; a plain run afterwards checks every part and writes _SUCCESS.
    #[arg(long, value_name = "K/N|auto", default_value = "1/1")]
    shard: ShardSpec,

    /// With `--shard auto` in a Kubernetes Indexed Job: the number of shards, i.e. the Job's
    /// `completions` (Kubernetes does not tell the pods). In a Slurm array it is optional and
    /// must equal SLURM_ARRAY_TASK_COUNT.
    #[arg(long, value_name = "N")]
    shard_count: Option<usize>,

    /// Images per network call; overrides `featurizer.batch_size`.
    #[arg(long, value_name = "N")]
    batch_size: Option<usize>,

    /// `cpu` or `cuda`; overrides `featurizer.device`.
    #[arg(long)]
    device: Option<String>,

    /// Recompute parts that an earlier run made with other settings instead of refusing.
    #[arg(long)]
    force: bool,

    #[command(flatten)]
    common: contracts::cli::CommonArgs,
}

/// burn allocates per operation; mimalloc makes that cheap (see shared burn notes: 2.5x).
#[global_allocator]
static ALLOCATOR: mimalloc::MiMalloc = mimalloc::MiMalloc;

fn main() -> ExitCode {
    let cli = Cli::parse();
    let flags = [
        Override::text_flag("--weights", "paths.weights", cli.weights.as_ref()),
        Override::flag("--batch-size", "featurizer.batch_size", cli.batch_size),
        Override::flag("--device", "featurizer.device", cli.device.as_ref()),
    ];
    cli.common.run(&flags, |config| run(&cli, config))
}

fn run(cli: &Cli, config: PipelineConfig) -> anyhow::Result<ExitCode> {
    let shard = shard::resolve(cli.shard, cli.shard_count, &shard::environment())
        .map_err(anyhow::Error::msg)?;
    if cli.shard == ShardSpec::Auto {
        tracing::info!("shard {} from {}", shard.shard, shard.from);
    }
    let settings = config.featurizer;
    let options = featurizer::Options {
        work_dir: config.paths.work_dir,
        images: cli.images.clone(),
        weights: WeightsSource::parse(&config.paths.weights, settings.seed),
        preprocess: Preprocess::new(settings.resize, settings.crop),
        batch_size: settings.batch_size,
        part_rows: settings.part_rows,
        shard: shard.shard,
        force: cli.force,
        network: ResNetConfig::resnet50(),
        grid: config.model.decoder.needs_grid(),
    };
    let summary =
        run_on(settings.device, featurizer::Featurize(options))?.context("featurizing")?;
    print!("{summary}");
    if summary.skipped.is_empty() {
        return Ok(ExitCode::SUCCESS);
    }
    for (image, reason) in &summary.skipped {
        eprintln!("skipped image {image}: {reason}");
    }
    Ok(ExitCode::from(contracts::cli::EXIT_SKIPPED))
}
