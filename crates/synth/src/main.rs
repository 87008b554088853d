//! `synth`: generates the project's built-in dataset, so the whole pipeline runs without a
//! download: images of one or two large coloured shapes on a plain background (or, with
//! `--scene small-shapes`, three or four small ones), five captions each, in the Kaggle
//! Flickr8k layout plus Flickr8k split lists (see `dataset.rs`).
//!
//! Everything follows from `synth.seed` (ChaCha8 streams, one per image), so a seed gives the
//! same files on every machine.
//!
//! ```text
//! synth                                         # synth.images images into paths.dataset_dir
//! synth --out data/synth --images 200 --seed 3  # a small set elsewhere
//! synth --out data/synth --force                # replace an earlier synthetic set
//! synth --out data/small --scene small-shapes   # small shapes at distinct places
//! synth --set synth.image_size=128 --out data/synth
//! ```
//!
//! Exit codes: 0 when the dataset was written, 1 on any error (printed with its causes).

mod captions;
mod dataset;
mod draw;
mod random;
mod scene;
mod split;

use std::path::PathBuf;
use std::process::ExitCode;

use clap::Parser;
use contracts::PipelineConfig;
use contracts::cli::CommonArgs;
use contracts::config::Override;

use crate::dataset::Options;

/// Generate the synthetic shapes dataset (images, captions, split lists).
#[derive(Debug, Parser)]
#[command(name = "synth", version, about, long_about = None)]
struct Cli {
    /// Output folder [default: paths.dataset_dir from the config]. Written atomically: the
    /// data goes to DIR.tmp-<pid> first and is renamed into place when complete.
    #[arg(long, value_name = "DIR")]
    out: Option<PathBuf>,

    /// Number of images, 5 captions each [default: synth.images from the config, 1500].
    #[arg(long, value_name = "N")]
    images: Option<usize>,

    /// Seed of everything random (scenes, captions, split) [default: synth.seed, 7].
    #[arg(long, value_name = "S")]
    seed: Option<u64>,

    /// What the images show: "mixed" (one or two large shapes) or "small-shapes" (three or
    /// four small ones at distinct places) [default: synth.scene, "mixed"].
    #[arg(long, value_name = "NAME")]
    scene: Option<String>,

    /// Replace DIR if it is not empty (only a dataset an earlier `synth` run wrote).
    #[arg(long)]
    force: bool,

    #[command(flatten)]
    common: CommonArgs,
}

impl Cli {
    /// The flags that set config keys (checked like them, and winning over them).
    fn overrides(&self) -> [Option<Override>; 4] {
        [
            Override::text_flag(
                "--out",
                "paths.dataset_dir",
                self.out.as_ref().map(|p| p.display()),
            ),
            Override::flag("--images", "synth.images", self.images),
            Override::flag("--seed", "synth.seed", self.seed),
            Override::text_flag("--scene", "synth.scene", self.scene.as_ref()),
        ]
    }

    /// The run's options.
    fn options(&self, config: &PipelineConfig) -> Options {
        Options {
            out: config.paths.dataset_dir.clone(),
            images: config.synth.images,
            seed: config.synth.seed,
            image_size: config.synth.image_size,
            scene: config.synth.scene,
            force: self.force,
        }
    }
}

fn main() -> ExitCode {
    let cli = Cli::parse();
    cli.common
        .run(&cli.overrides(), |config| -> anyhow::Result<ExitCode> {
            dataset::generate(&cli.options(&config))?.log();
            Ok(ExitCode::SUCCESS)
        })
}

#[cfg(test)]
mod tests {
    use std::path::Path;

    use clap::CommandFactory;
    use contracts::config::SynthScene;

    use super::*;

    fn load(args: &[&str]) -> (Cli, Result<PipelineConfig, contracts::ContractError>) {
        let cli =
            Cli::try_parse_from(std::iter::once("synth").chain(args.iter().copied())).unwrap();
        let mut overrides: Vec<Override> = cli
            .common
            .overrides
            .iter()
            .map(|item| Override::set(item).unwrap())
            .collect();
        overrides.extend(cli.overrides().into_iter().flatten());
        let config = PipelineConfig::load(Path::new("none.toml"), &overrides, true);
        (cli, config)
    }

    fn options(args: &[&str]) -> Options {
        let (cli, config) = load(args);
        cli.options(&config.unwrap())
    }

    #[test]
    fn cli_is_well_formed() {
        Cli::command().debug_assert();
    }

    #[test]
    fn defaults_come_from_the_config() {
        let o = options(&[]);
        assert_eq!(
            (o.out.as_path(), o.images, o.seed, o.image_size, o.force),
            (Path::new("data/flickr8k"), 1500, 7, 256, false)
        );
        assert_eq!(o.scene, SynthScene::Mixed);
        let o = options(&[
            "--set",
            "synth.images=30",
            "--set",
            "synth.seed=4",
            "--set",
            "paths.dataset_dir=x",
            "--set",
            "synth.scene=small-shapes",
        ]);
        assert_eq!(
            (o.out.as_path(), o.images, o.seed, o.scene),
            (Path::new("x"), 30, 4, SynthScene::SmallShapes)
        );
    }

    #[test]
    fn flags_win_over_the_config() {
        let o = options(&[
            "--set",
            "synth.images=30",
            "--set",
            "synth.image_size=64",
            "--set",
            "synth.scene=small-shapes",
            "--images",
            "12",
            "--seed",
            "9",
            "--out",
            "d",
            "--scene",
            "mixed",
            "--force",
        ]);
        assert_eq!(
            (o.out.as_path(), o.images, o.seed, o.image_size, o.force),
            (Path::new("d"), 12, 9, 64, true)
        );
        assert_eq!(o.scene, SynthScene::Mixed);
        assert_eq!(
            options(&["--scene", "small-shapes"]).scene,
            SynthScene::SmallShapes
        );
    }

    #[test]
    fn an_unknown_scene_is_refused_with_the_choices() {
        assert_eq!(
            load(&["--scene", "tiny"]).1.unwrap_err().to_string(),
            "synth.scene = \"tiny\" (from --scene tiny) is not allowed: expected one of \
             \"mixed\", \"small-shapes\""
        );
    }
}
