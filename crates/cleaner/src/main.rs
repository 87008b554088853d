//! `cleaner`: turns a raw captioned-image dataset into `captions.parquet`.
//!
//! Detects the layout (original Flickr8k, Kaggle Flickr8k, Karpathy JSON, or the synthetic
//! set), cleans captions (see README "Cleaning rules"), assigns train/val/test and prints
//! what it kept and dropped.
//!
//!     cleaner --dataset-dir data/flickr8k --work-dir data/work
//!
//! Exit codes: 0 written, 1 error (nothing written).

use std::path::PathBuf;
use std::process::ExitCode;

use clap::Parser;
use cleaner::layout::Layout;
use contracts::PipelineConfig;
use contracts::config::Override;

#[derive(Parser)]
#[command(
    version,
    about = "Clean a captioned-image dataset into captions.parquet"
)]
struct Cli {
    /// Dataset folder; overrides `paths.dataset_dir`.
    #[arg(long, value_name = "DIR")]
    dataset_dir: Option<PathBuf>,

    /// Read this layout even if the folder holds several.
    #[arg(long)]
    layout: Option<Layout>,

    #[command(flatten)]
    common: contracts::cli::CommonArgs,
}

fn main() -> ExitCode {
    let cli = Cli::parse();
    let flags = [Override::text_flag(
        "--dataset-dir",
        "paths.dataset_dir",
        cli.dataset_dir.as_ref().map(|p| p.display()),
    )];
    cli.common.run(&flags, |config| run(&cli, config))
}

fn run(cli: &Cli, config: PipelineConfig) -> anyhow::Result<ExitCode> {
    let options = cleaner::Options {
        dataset_dir: config.paths.dataset_dir,
        work_dir: config.paths.work_dir,
        splits_dir: config.paths.splits_dir,
        layout: cli.layout,
        config: config.cleaner,
    };
    let summary = cleaner::run(&options)?;
    summary.warn_details();
    print!("{summary}");
    println!(
        "wrote {}",
        options
            .work_dir
            .join(contracts::tables::CAPTIONS_FILE)
            .display()
    );
    Ok(ExitCode::SUCCESS)
}
