//! The Makefile's stage stamps (`WORK/.config/STAGE.json`): a stage reruns when a config key
//! it reads changes, and only then. Each stage's list of keys is checked both ways: every key
//! the stage reads changes its stamp, and keys that only other stages read leave it as it is.
//! One real run then shows the stamps at work: after `evaluator.max_len` changes (the trainer
//! validates and samples with it) `make evaluate` retrains; after `evaluator.beam_size` changes
//! only the evaluator reruns.
//!
//! The Makefile runs with `CARGO=true` and `BIN` set to the binaries under test, so it builds
//! nothing.

use std::path::{Path, PathBuf};
use std::process::{Command, Output};

use imagecaptioning::{bin_dir, describe, tempdir};

fn repo() -> PathBuf {
    PathBuf::from(env!("CARGO_MANIFEST_DIR"))
}

/// `make TARGETS` in `cwd` with the project's Makefile and `pipeline.toml`, the overrides `set`.
fn make(cwd: &Path, targets: &str, set: &str) -> Output {
    let out = Command::new("make")
        .arg("--no-print-directory")
        .arg("-f")
        .arg(repo().join("Makefile"))
        .arg(format!("BIN={}", bin_dir().display()))
        .arg("CARGO=true")
        .arg(format!("CONFIG={}", repo().join("pipeline.toml").display()))
        .arg("WORK=work")
        .arg("DATASET=data/synthetic")
        .arg("WEIGHTS=random")
        .arg(format!("SET={set}"))
        .args(targets.split_whitespace())
        .current_dir(cwd)
        .env("NO_COLOR", "1")
        .output()
        .expect("make runs");
    assert!(
        out.status.success(),
        "make {targets} {set}:\n{}",
        describe(&out)
    );
    out
}

/// The stamp of `stage` after `make` with `set`.
fn stamp(cwd: &Path, stage: &str, set: &str) -> String {
    let path = format!("work/.config/{stage}.json");
    make(cwd, &path, set);
    std::fs::read_to_string(cwd.join(path)).unwrap()
}

/// Per stage: keys it reads (each must change its stamp) and keys only other stages read
/// (each must leave it alone), with a value that differs from `pipeline.toml`'s.
const CASES: &[(&str, &[&str], &[&str])] = &[
    (
        "synth",
        &[
            "synth.images=10",
            "synth.seed=8",
            "synth.scene=\"small-shapes\"",
        ],
        &["cleaner.seed=1", "featurizer.batch_size=3"],
    ),
    (
        "cleaner",
        &[
            "cleaner.seed=1",
            "cleaner.val_fraction=0.2",
            "paths.splits_dir=\"x\"",
        ],
        &[
            "synth.seed=8",
            "tokenizer.min_count=2",
            "featurizer.part_rows=7",
        ],
    ),
    (
        "featurizer",
        &[
            "featurizer.batch_size=3",
            "featurizer.resize=240",
            "model.decoder=\"attention\"",
        ],
        &[
            "model.hidden_dim=64",
            "model.dropout=0.1",
            "tokenizer.min_count=2",
        ],
    ),
    (
        "tokenizer",
        &["tokenizer.min_count=2", "tokenizer.max_len=30"],
        &[
            "featurizer.part_rows=7",
            "cleaner.seed=1",
            "model.embed_dim=8",
        ],
    ),
    (
        "trainer",
        &[
            "trainer.seed=1",
            "trainer.scst_samples=3",
            "model.hidden_dim=64",
            "model.decoder=\"attention\"",
            "evaluator.max_len=15",
            "evaluator.suppress_unk=false",
        ],
        &[
            "evaluator.beam_size=2",
            "evaluator.gallery_size=3",
            "evaluator.split=\"val\"",
            "featurizer.batch_size=3",
        ],
    ),
    (
        "evaluator",
        &[
            "evaluator.beam_size=2",
            "evaluator.max_len=15",
            "evaluator.meteor_data=\"m\"",
        ],
        &[
            "trainer.seed=1",
            "model.dropout=0.1",
            "featurizer.batch_size=3",
        ],
    ),
];

#[test]
fn each_stamp_changes_with_the_keys_its_stage_reads_and_no_others() {
    let dir = tempdir();
    let mut wrong = Vec::new();
    for (stage, reads, ignores) in CASES {
        let base = stamp(dir.path(), stage, "");
        for (key, expect_change) in reads
            .iter()
            .map(|k| (k, true))
            .chain(ignores.iter().map(|k| (k, false)))
        {
            let changed = stamp(dir.path(), stage, &format!("--set {key}")) != base;
            if changed != expect_change {
                let verb = if changed {
                    "changes"
                } else {
                    "does not change"
                };
                wrong.push(format!("{key} {verb} the {stage} stamp"));
            }
        }
    }
    assert!(wrong.is_empty(), "{}", wrong.join("\n"));
}

/// Which stage binaries a `make` run started, from the commands it printed.
fn stages_run(out: &Output) -> Vec<&'static str> {
    let printed = String::from_utf8_lossy(&out.stdout);
    let bin = bin_dir();
    [
        "synth",
        "cleaner",
        "featurizer",
        "tokenizer",
        "trainer",
        "evaluator",
    ]
    .into_iter()
    .filter(|stage| {
        let command = format!("{} ", bin.join(stage).display());
        printed.lines().any(|line| line.starts_with(&command))
    })
    .collect()
}

#[test]
fn make_retrains_after_a_decoding_key_the_trainer_reads_and_not_after_the_beam_size() {
    let dir = tempdir();
    let tiny = "--set synth.images=30 --set synth.image_size=64 --set tokenizer.min_count=1 \
                --set trainer.epochs=1 --set trainer.scst_epochs=0 --set evaluator.gallery_size=2";
    let first = make(dir.path(), "synth evaluate", tiny);
    assert_eq!(
        stages_run(&first),
        [
            "synth",
            "cleaner",
            "featurizer",
            "tokenizer",
            "trainer",
            "evaluator"
        ]
    );
    let again = make(dir.path(), "synth evaluate", tiny);
    assert_eq!(
        stages_run(&again),
        Vec::<&str>::new(),
        "{}",
        describe(&again)
    );
    let max_len = make(
        dir.path(),
        "synth evaluate",
        &format!("{tiny} --set evaluator.max_len=12"),
    );
    assert_eq!(stages_run(&max_len), ["trainer", "evaluator"]);
    let beam = make(
        dir.path(),
        "synth evaluate",
        &format!("{tiny} --set evaluator.max_len=12 --set evaluator.beam_size=2"),
    );
    assert_eq!(stages_run(&beam), ["evaluator"]);
}
