//! `caption`: captions your photos with the trained model.
//!
//!     caption --work-dir data/work photo.jpg holiday/
//!     caption --json --beam-size 5 photos/ > captions.jsonl
//!     caption --attention-dir maps/ photo.jpg      # attention model: where it looked, per word
//!
//! Prints `image<TAB>caption` per image (or one JSON object per line with `--json`) on stdout;
//! unreadable images are named on stderr and the rest still captioned.
//! Exit codes: 0 every image captioned; 1 error; 3 some images could not be read.

use std::io::Write;
use std::path::PathBuf;
use std::process::ExitCode;

use anyhow::Context;
use clap::Parser;
use contracts::PipelineConfig;
use contracts::config::Override;
use decoder::BeamConfig;
use models::backend::run_on;

/// burn allocates per operation; mimalloc makes that cheap.
#[global_allocator]
static ALLOCATOR: mimalloc::MiMalloc = mimalloc::MiMalloc;

#[derive(Parser)]
#[command(
    version,
    about = "Caption images with the trained model (ResNet50 features + LSTM decoder)"
)]
struct Cli {
    /// Image files or folders (searched recursively for jpg, png, ... files).
    #[arg(required = true, value_name = "IMAGE|DIR")]
    inputs: Vec<PathBuf>,

    /// One JSON object per line (`image`, `caption`, `log_prob`, and for a model with
    /// attention maps `attention`: each word's weights over the 7x7 grid, row-major) instead
    /// of TSV.
    #[arg(long)]
    json: bool,

    /// Beam width (1 = greedy); overrides `evaluator.beam_size`.
    #[arg(long, value_name = "N")]
    beam_size: Option<usize>,

    /// ResNet50 weights (.pth/.safetensors or `random`). By default the weights the training
    /// features were made with, as the trained model records them.
    #[arg(long, value_name = "FILE|random")]
    weights: Option<String>,

    /// `cpu` or `cuda`; overrides `evaluator.device`.
    #[arg(long)]
    device: Option<String>,

    /// Write one PNG per image into DIR: the photo, then each generated word with where the
    /// model looked for it (Xu et al.'s figures). Needs a model with attention maps
    /// (`attention`, or `transformer`: its last layer's cross-attention, averaged over heads).
    #[arg(long, value_name = "DIR")]
    attention_dir: Option<PathBuf>,

    #[command(flatten)]
    common: contracts::cli::CommonArgs,
}

fn main() -> ExitCode {
    let cli = Cli::parse();
    let flags = [
        Override::flag("--beam-size", "evaluator.beam_size", cli.beam_size),
        Override::flag("--device", "evaluator.device", cli.device.as_ref()),
    ];
    cli.common.run(&flags, |config| run(&cli, config))
}

fn run(cli: &Cli, config: PipelineConfig) -> anyhow::Result<ExitCode> {
    let task = caption::CaptionImages {
        config: &config,
        images: caption::collect_images(&cli.inputs)?,
        weights: cli.weights.as_deref(),
        beam: BeamConfig::from_config(&config.evaluator),
        attention_dir: cli.attention_dir.clone(),
    };
    let (captioned, failed) = run_on(config.evaluator.device, task)?.context("captioning")?;
    for bad in &failed {
        eprintln!("cannot caption {}: {}", bad.image, bad.reason);
    }
    let mut stdout = std::io::stdout().lock();
    for item in &captioned {
        let line = if cli.json {
            serde_json::to_string(item)?
        } else {
            format!("{}\t{}", item.image, item.caption)
        };
        if let Err(e) = writeln!(stdout, "{line}") {
            // A closed pipe (`caption ... | head`) is not an error.
            if e.kind() == std::io::ErrorKind::BrokenPipe {
                return Ok(ExitCode::SUCCESS);
            }
            return Err(e.into());
        }
    }
    Ok(if failed.is_empty() {
        ExitCode::SUCCESS
    } else {
        ExitCode::from(contracts::cli::EXIT_SKIPPED)
    })
}
