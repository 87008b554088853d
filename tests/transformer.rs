//! The Transformer end to end on a small synthetic set: `model.decoder = "transformer"` and
//! nothing else makes the featurizer write the grid, the trainer train on it (warm-up schedule),
//! the evaluator write each word's cross-attention to `eval/attention.parquet` and the report,
//! and `caption --attention-dir` draw its figure.

use std::path::Path;

use contracts::tables::{AttentionTable, read};
use imagecaptioning::{check_with_pyarrow, describe, prepare_work_dir, run_ok, tempdir};

const TRANSFORMER: [&str; 2] = ["--set", "model.decoder=transformer"];

#[test]
fn the_transformer_runs_the_pipeline_and_shows_its_cross_attention() {
    let dir = tempdir();
    let cwd = dir.path();
    prepare_work_dir(
        cwd,
        40,
        4,
        &[["--weights", "random"].as_slice(), &TRANSFORMER].concat(),
    );
    let tiny = [
        "--set",
        "model.transformer.d_model=32",
        "--set",
        "model.transformer.heads=4",
        "--set",
        "model.transformer.feed_forward=64",
        "--set",
        "trainer.epochs=2",
    ];
    let work = ["--work-dir", "work"];
    let trained = run_ok(
        "trainer",
        cwd,
        &[work.as_slice(), &TRANSFORMER, &tiny].concat(),
    );
    let log = describe(&trained);
    assert!(
        log.contains("(transformer decoder: d_model 32, 4 heads, feed-forward 64, 2 encoder and 2 decoder layers,"),
        "{log}"
    );
    let metrics = std::fs::read_to_string(cwd.join("work/model/metrics.csv")).unwrap();
    // Warm-up: the first epoch starts at learning_rate / warmup_steps (1e-3 / 400).
    let first = metrics.lines().nth(1).unwrap();
    assert_eq!(first.split(',').nth(9), Some("2.5e-6"), "{metrics}");

    run_ok("evaluator", cwd, &work);
    check_with_pyarrow(cwd, &[Path::new("work/eval/attention.parquet")]);
    let (rows, _) = read::<AttentionTable>(&cwd.join("work/eval/attention.parquet")).unwrap();
    assert!(!rows.is_empty());
    for row in &rows {
        assert_eq!(row.weights.len(), 49, "{row:?}");
        let sum: f32 = row.weights.iter().sum();
        assert!((sum - 1.0).abs() < 1e-4, "{row:?}");
    }
    let report = std::fs::read_to_string(cwd.join("work/eval/report.html")).unwrap();
    assert!(report.contains(
        "<p class=\"context\">Each word of the caption with the last decoder layer's cross-attention over the grid, averaged over its heads (brighter: more weight), for the gallery images.</p>"
    ));

    let out = run_ok(
        "caption",
        cwd,
        &[
            "--work-dir",
            "work",
            "--attention-dir",
            "maps",
            "synthetic/Images/synth_00000.png",
        ],
    );
    let figure = image::open(cwd.join("maps/synth_00000.png"))
        .unwrap_or_else(|e| panic!("{e}; {}", describe(&out)));
    assert!(figure.width() > 224, "{}", describe(&out));
}
