//! Parity with pycocoevalcap 1.2: every score in `fixtures/parity.json` (written by
//! `scripts/metrics_parity.py`, which runs pycocoevalcap's `Bleu(4)`, `Rouge()` and `Cider()`
//! on the same tokens) must be reproduced to 1e-14. The largest difference measured over the
//! fixture's 1,047 images was 8.9e-16 (a CIDEr-D per image), a few ulps: the bound leaves room
//! for another platform's `ln`/`exp` and nothing more.
//!
//! `METRICS_PARITY_FIXTURE=/path/to.json` checks another fixture written by the script, e.g. a
//! larger one generated with `--images 2000`.

use std::path::PathBuf;

use serde::Deserialize;

const TOLERANCE: f64 = 1e-14;

#[derive(Deserialize)]
struct Fixture {
    pycocoevalcap: String,
    cases: Vec<Case>,
}

#[derive(Deserialize)]
struct Case {
    name: String,
    candidates: Vec<Vec<String>>,
    references: Vec<Vec<Vec<String>>>,
    bleu: [f64; 4],
    rouge_l: f64,
    cider_d: f64,
    cider_d_per_image: Vec<f64>,
}

fn fixture_path() -> PathBuf {
    std::env::var_os("METRICS_PARITY_FIXTURE").map_or_else(
        || PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("tests/fixtures/parity.json"),
        PathBuf::from,
    )
}

/// Records the largest absolute difference seen per metric and every one over the tolerance.
struct Diffs {
    max: [(&'static str, f64); 4],
    failures: Vec<String>,
}

impl Diffs {
    fn check(&mut self, slot: usize, case: &str, what: &str, got: f64, want: f64) {
        let diff = (got - want).abs();
        self.max[slot].1 = self.max[slot].1.max(diff);
        if diff.is_nan() || diff > TOLERANCE {
            self.failures
                .push(format!("{case}: {what}: got {got}, pycocoevalcap {want}"));
        }
    }
}

#[test]
fn scores_match_pycocoevalcap() {
    let path = fixture_path();
    let text = std::fs::read_to_string(&path)
        .unwrap_or_else(|e| panic!("cannot read {}: {e}", path.display()));
    let fixture: Fixture = serde_json::from_str(&text)
        .unwrap_or_else(|e| panic!("cannot parse {}: {e}", path.display()));
    assert!(!fixture.cases.is_empty(), "{} has no cases", path.display());

    let mut diffs = Diffs {
        max: [
            ("BLEU", 0.0),
            ("ROUGE-L", 0.0),
            ("CIDEr-D", 0.0),
            ("CIDEr-D per image", 0.0),
        ],
        failures: Vec::new(),
    };
    for case in &fixture.cases {
        let name = &case.name;
        let got = metrics::score_corpus(&case.candidates, &case.references)
            .unwrap_or_else(|e| panic!("{name}: {e}"));
        for k in 0..4 {
            diffs.check(
                0,
                name,
                &format!("BLEU-{}", k + 1),
                got.bleu[k],
                case.bleu[k],
            );
        }
        diffs.check(1, name, "ROUGE-L", got.rouge_l, case.rouge_l);
        diffs.check(2, name, "CIDEr-D", got.cider_d, case.cider_d);
        assert_eq!(
            got.cider_d_per_image.len(),
            case.cider_d_per_image.len(),
            "{name}"
        );
        for (i, (&g, &w)) in got
            .cider_d_per_image
            .iter()
            .zip(&case.cider_d_per_image)
            .enumerate()
        {
            diffs.check(3, name, &format!("CIDEr-D of image {i}"), g, w);
        }
        let bleu4 = metrics::corpus_bleu4(&case.candidates, &case.references).unwrap();
        assert_eq!(
            bleu4, got.bleu[3],
            "{name}: corpus_bleu4 differs from score_corpus"
        );
    }

    let images: usize = fixture.cases.iter().map(|c| c.candidates.len()).sum();
    println!(
        "{} cases, {images} images vs pycocoevalcap {}; max |difference|:",
        fixture.cases.len(),
        fixture.pycocoevalcap
    );
    for (metric, max) in diffs.max {
        println!("  {metric}: {max:e}");
    }
    assert!(
        diffs.failures.is_empty(),
        "differences over {TOLERANCE}:\n{}",
        diffs.failures.join("\n")
    );
}
