//! `tokenizer`: builds the vocabulary from the train split of `captions.parquet` and writes
//! `vocab.parquet` and `tokens.parquet` (ids with `<start>`/`<end>`) to the work directory.
//!
//!     tokenizer --work-dir data/work --set tokenizer.min_count=5
//!
//! Exit codes: 0 written, 1 error (nothing written).

use std::process::ExitCode;

use clap::Parser;
use contracts::PipelineConfig;
use contracts::config::Override;

#[derive(Parser)]
#[command(
    version,
    about = "Build the vocabulary and token ids from captions.parquet"
)]
struct Cli {
    /// Keep words seen at least this often in train; overrides `tokenizer.min_count`.
    #[arg(long, value_name = "N")]
    min_count: Option<u64>,

    /// Truncate captions to this many words; overrides `tokenizer.max_len`.
    #[arg(long, value_name = "N")]
    max_len: Option<usize>,

    #[command(flatten)]
    common: contracts::cli::CommonArgs,
}

fn main() -> ExitCode {
    let cli = Cli::parse();
    let flags = [
        Override::flag("--min-count", "tokenizer.min_count", cli.min_count),
        Override::flag("--max-len", "tokenizer.max_len", cli.max_len),
    ];
    cli.common.run(&flags, run)
}

fn run(config: PipelineConfig) -> anyhow::Result<ExitCode> {
    let summary = tokenizer::run(&config.paths.work_dir, &config.tokenizer)?;
    print!("{summary}");
    println!(
        "wrote {} and {}",
        contracts::tables::VOCAB_FILE,
        contracts::tables::TOKENS_FILE
    );
    Ok(ExitCode::SUCCESS)
}
