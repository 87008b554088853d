//! Command-line conventions shared by every binary: `--config`, `--work-dir`, `--set`,
//! verbosity, logging, and turning an error chain into a message and an exit code.

use std::fmt::Display;
use std::path::PathBuf;
use std::process::ExitCode;

use clap::Args;

use crate::config::{Override, PipelineConfig};
use crate::error::ContractError;

/// The default config file, read from the current directory.
pub const DEFAULT_CONFIG: &str = "pipeline.toml";

/// Flags every stage accepts.
#[derive(Debug, Clone, Args)]
pub struct CommonArgs {
    /// Pipeline configuration file (TOML). Without it, `pipeline.toml` is used if present,
    /// else built-in defaults.
    #[arg(long, value_name = "FILE", global = true)]
    pub config: Option<PathBuf>,

    /// Directory for every stage output; overrides `paths.work_dir`.
    #[arg(long, value_name = "DIR", global = true)]
    pub work_dir: Option<PathBuf>,

    /// Override one config key, e.g. `--set trainer.epochs=15` (repeatable). Values use TOML
    /// syntax; a bare word is a string.
    #[arg(long = "set", value_name = "SECTION.KEY=VALUE", global = true)]
    pub overrides: Vec<String>,

    /// More log output (-v: debug, -vv: trace).
    #[arg(short, long, action = clap::ArgAction::Count, global = true)]
    pub verbose: u8,

    /// Only warnings and errors.
    #[arg(short, long, global = true)]
    pub quiet: bool,

    /// Print these config sections (comma-separated, e.g. `model,trainer`) as resolved after
    /// overrides, as JSON, and exit. The Makefile uses it to rerun a stage only when its own
    /// settings change.
    #[arg(long, value_name = "SECTIONS", hide_short_help = true)]
    pub print_config: Option<String>,
}

impl CommonArgs {
    /// Starts logging and loads the configuration: the file, then every `--set`, then the
    /// stage's own `flags` (each an [`Override`] of its config key, so it is checked like
    /// one), then `--work-dir`.
    pub fn load(&self, flags: &[Option<Override>]) -> Result<PipelineConfig, ContractError> {
        init_logging(self.verbose, self.quiet);
        let path = self
            .config
            .clone()
            .unwrap_or_else(|| PathBuf::from(DEFAULT_CONFIG));
        let mut overrides = self
            .overrides
            .iter()
            .map(|item| Override::set(item))
            .collect::<Result<Vec<_>, _>>()?;
        overrides.extend(flags.iter().flatten().cloned());
        overrides.extend(Override::text_flag(
            "--work-dir",
            "paths.work_dir",
            self.work_dir.as_ref().map(|dir| dir.display()),
        ));
        PipelineConfig::load(&path, &overrides, self.config.is_none())
    }

    /// A stage's `main`: loads the configuration (see [`Self::load`]) and runs `stage` on it,
    /// or, with `--print-config`, prints the sections asked for instead. The error of either
    /// is printed with its causes (see [`exit_with`]).
    pub fn run<E: Display + From<ContractError>>(
        &self,
        flags: &[Option<Override>],
        stage: impl FnOnce(PipelineConfig) -> Result<ExitCode, E>,
    ) -> ExitCode {
        let result =
            self.load(flags)
                .map_err(E::from)
                .and_then(|config| match &self.print_config {
                    Some(sections) => {
                        println!("{}", config.sections_json(sections)?);
                        Ok(ExitCode::SUCCESS)
                    }
                    None => stage(config),
                });
        exit_with(result)
    }
}

/// Log lines go to stderr so stdout stays clean for data (e.g. `caption`'s output).
pub fn init_logging(verbose: u8, quiet: bool) {
    let level = match (quiet, verbose) {
        (true, _) => "warn",
        (false, 0) => "info",
        (false, 1) => "debug",
        _ => "trace",
    };
    let filter = tracing_subscriber::EnvFilter::try_from_env("IMAGECAPTIONING_LOG")
        .unwrap_or_else(|_| tracing_subscriber::EnvFilter::new(level));
    let _ = tracing_subscriber::fmt()
        .with_env_filter(filter)
        .with_writer(std::io::stderr)
        .with_target(false)
        .without_time()
        .try_init();
}

/// Exit code of a stage that finished but skipped some unreadable inputs (`featurizer`,
/// `caption`), each named on stderr.
pub const EXIT_SKIPPED: u8 = 3;

/// Prints an error with its whole chain of causes and exits 1; passes a success through.
pub fn exit_with<E: Display>(result: Result<ExitCode, E>) -> ExitCode {
    match result {
        Ok(code) => code,
        Err(error) => {
            eprintln!("error: {error:#}");
            ExitCode::FAILURE
        }
    }
}
