//! `evaluator`: captions a split with the trained model and scores it as coco-caption does.
//!
//!     evaluator --work-dir data/work                       # test split, beam 3 (pipeline.toml)
//!     evaluator --split val --beam-size 1                  # greedy on val
//!     evaluator score --predictions p.tsv --references r.tsv --json m.json
//!
//! Writes eval/predictions.parquet, eval/metrics.json and eval/report.html under the work dir.
//! Exit codes: 0 done, 1 error.

use std::path::PathBuf;
use std::process::ExitCode;

use anyhow::Context;
use clap::{Parser, Subcommand};
use contracts::PipelineConfig;
use contracts::config::Override;
use evaluator::score::{load_meteor, read_any, score};
use models::backend::run_on;

#[derive(Parser)]
#[command(
    version,
    about = "Caption a split with the trained model and score it (BLEU, METEOR, ROUGE-L, CIDEr-D)"
)]
struct Cli {
    #[command(subcommand)]
    command: Option<Command>,

    /// Split to caption and score: train, val or test; overrides `evaluator.split`.
    #[arg(long)]
    split: Option<String>,

    /// Beam width (1 = greedy); overrides `evaluator.beam_size`.
    #[arg(long, value_name = "N")]
    beam_size: Option<usize>,

    /// `cpu` or `cuda`; overrides `evaluator.device`.
    #[arg(long)]
    device: Option<String>,

    #[command(flatten)]
    common: contracts::cli::CommonArgs,
}

#[derive(Subcommand)]
enum Command {
    /// Score any captions against any references, with the cleaner's cleaning on both sides.
    Score {
        /// Predictions: eval/predictions.parquet, or TSV `image<TAB>caption`, one per image.
        #[arg(long, value_name = "FILE")]
        predictions: PathBuf,
        /// References: a captions.parquet, or TSV `image<TAB>caption`, several lines per image.
        #[arg(long, value_name = "FILE")]
        references: PathBuf,
        /// Also write the metrics as JSON (the keys of eval/metrics.json).
        #[arg(long, value_name = "OUT")]
        json: Option<PathBuf>,
    },
    /// Print the last evaluation of the work dir (metrics, three examples, report path)
    /// without recomputing it.
    Show,
}

fn main() -> ExitCode {
    let cli = Cli::parse();
    let flags = [
        Override::flag("--split", "evaluator.split", cli.split.as_ref()),
        Override::flag("--beam-size", "evaluator.beam_size", cli.beam_size),
        Override::flag("--device", "evaluator.device", cli.device.as_ref()),
    ];
    cli.common.run(&flags, |config| run(cli.command, config))
}

fn run(command: Option<Command>, config: PipelineConfig) -> anyhow::Result<ExitCode> {
    if let Some(Command::Score {
        predictions,
        references,
        json,
    }) = command
    {
        let meteor = load_meteor(&config.evaluator.meteor_data)?;
        let (mut metrics, unmatched) = score(
            &read_any(&predictions, true)?,
            &read_any(&references, false)?,
            meteor.as_ref(),
        )?;
        unmatched.warn();
        metrics.context.insert(
            "predictions".into(),
            predictions.display().to_string().into(),
        );
        metrics
            .context
            .insert("references".into(), references.display().to_string().into());
        print!("{metrics}");
        if let Some(out) = json {
            contracts::atomic::write_atomically(
                &out,
                serde_json::to_string_pretty(&metrics)?.as_bytes(),
            )?;
        }
        return Ok(ExitCode::SUCCESS);
    }
    if let Some(Command::Show) = command {
        return show(&config.paths.work_dir);
    }
    let task = evaluator::Evaluate {
        work_dir: config.paths.work_dir.clone(),
        config: config.evaluator.clone(),
    };
    run_on(config.evaluator.device, task)?.context("evaluating")?;
    show(&config.paths.work_dir)
}

/// Prints eval/metrics.json, the first three predictions and where the report is.
fn show(work_dir: &std::path::Path) -> anyhow::Result<ExitCode> {
    let work = contracts::WorkDir::new(work_dir);
    let metrics_path = work.metrics_json();
    let text = std::fs::read_to_string(&metrics_path).with_context(|| {
        format!(
            "reading {} (run the evaluator first: `make evaluate`)",
            metrics_path.display()
        )
    })?;
    let metrics: serde_json::Value = serde_json::from_str(&text)
        .with_context(|| format!("parsing {}", metrics_path.display()))?;
    let field = |key: &str| metrics[key].as_str().unwrap_or("?").to_string();
    println!(
        "{} split, {} model, {}, {} images",
        field("split"),
        field("model"),
        field("decoder"),
        metrics["images"]
    );
    for key in evaluator::score::METRIC_KEYS {
        // METEOR is absent when it was left out.
        if let Some(value) = metrics[key].as_f64() {
            println!("  {key:<8} {value:.4}");
        }
    }
    let (predictions, _) =
        contracts::tables::read::<contracts::tables::PredictionsTable>(&work.predictions())?;
    println!("examples:");
    for row in predictions.iter().take(3) {
        println!("  {}\t{}", row.image, row.caption);
    }
    println!("report: {}", work.report_html().display());
    Ok(ExitCode::SUCCESS)
}
