//! Parity with the METEOR 1.5 jar as pycocoevalcap 1.2 runs it: every case of
//! `fixtures/meteor.json` (written by `scripts/meteor_parity.py` with Java and pycocoevalcap)
//! must give the jar's per-image scores and corpus score to 1e-15 and its sufficient statistics
//! exactly; the normalizer must give the jar's tokens and the stemmer the jar's stems.
//!
//! Needs the data of `make meteor-data` (`data/meteor/` at the repository root, or the folder
//! in `METEOR_DATA`); `make test` fetches it first. `METEOR_PARITY_FIXTURE=/path/to.json`
//! checks another fixture written by the script, e.g. a larger one (see its header).

use std::collections::{BTreeSet, HashMap};
use std::path::PathBuf;
use std::sync::OnceLock;

use metrics::{Meteor, MeteorError};
use serde::Deserialize;

/// The acceptance bound for scores. Measured 2026-12-02 on the committed fixture (560 images,
/// OpenJDK 17, x86-64): the largest |ours - jar| was 1.1e-16 per image and 5.6e-17 for a
/// corpus, about one ulp (the statistics are equal; only the last bit of the arithmetic
/// differs), so 1e-15 leaves a few ulps for another libm's `powf` while still catching a
/// parameter off by 1e-6 relative, which the former 1e-4 let through.
const TOLERANCE: f64 = 1e-15;

#[derive(Deserialize)]
struct Fixture {
    pycocoevalcap: String,
    java: String,
    cases: Vec<Case>,
    normalize: Vec<(String, String)>,
    stems: Vec<(String, String)>,
}

#[derive(Deserialize)]
struct Case {
    name: String,
    hypotheses: Vec<String>,
    references: Vec<Vec<String>>,
    meteor: f64,
    per_image: Vec<f64>,
    stats: Vec<Vec<u64>>,
}

fn fixture() -> Fixture {
    let path = std::env::var_os("METEOR_PARITY_FIXTURE").map_or_else(
        || PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("tests/fixtures/meteor.json"),
        PathBuf::from,
    );
    let text = std::fs::read_to_string(&path)
        .unwrap_or_else(|e| panic!("cannot read {}: {e}", path.display()));
    serde_json::from_str(&text).unwrap_or_else(|e| panic!("cannot parse {}: {e}", path.display()))
}

/// The data, loaded once for all the tests of this file.
fn meteor() -> &'static Meteor {
    static METEOR: OnceLock<Meteor> = OnceLock::new();
    METEOR.get_or_init(|| {
        let dir = std::env::var_os("METEOR_DATA").map_or_else(
            || PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("../../data/meteor"),
            PathBuf::from,
        );
        match Meteor::load(&dir) {
            Ok(meteor) => meteor,
            Err(e @ MeteorError::NoData { .. }) => {
                panic!("{e} (the parity test needs the jar's data; `make test` fetches it)")
            }
            Err(e) => panic!("{e}"),
        }
    })
}

#[test]
fn scores_and_statistics_match_the_jar() {
    let fixture = fixture();
    let meteor = meteor();
    let mut failures = Vec::new();
    let (mut max_image, mut max_corpus, mut images) = (0.0f64, 0.0f64, 0);
    for case in &fixture.cases {
        let name = &case.name;
        let got = meteor
            .score_corpus(&case.hypotheses, &case.references)
            .unwrap_or_else(|e| panic!("{name}: {e}"));
        assert_eq!(got.per_image.len(), case.per_image.len(), "{name}");
        for (i, (&g, &want)) in got.per_image.iter().zip(&case.per_image).enumerate() {
            let diff = (g - want).abs();
            max_image = max_image.max(diff);
            if diff.is_nan() || diff > TOLERANCE {
                failures.push(format!(
                    "{name} image {i}: METEOR {g}, jar {want} ({:?} vs {:?})",
                    case.hypotheses[i], case.references[i]
                ));
            }
            let stats = got.stats[i].jar_fields();
            if stats[..] != case.stats[i][..] {
                failures.push(format!(
                    "{name} image {i}: statistics {stats:?}, jar {:?}",
                    case.stats[i]
                ));
            }
        }
        let diff = (got.corpus - case.meteor).abs();
        max_corpus = max_corpus.max(diff);
        if diff.is_nan() || diff > TOLERANCE {
            failures.push(format!(
                "{name}: corpus METEOR {}, jar {}",
                got.corpus, case.meteor
            ));
        }
        images += case.hypotheses.len();
    }
    println!(
        "{} cases, {images} images vs the METEOR 1.5 jar (pycocoevalcap {}, {}); max |difference|: \
         per image {max_image:e}, corpus {max_corpus:e}",
        fixture.cases.len(),
        fixture.pycocoevalcap,
        fixture.java
    );
    assert!(
        failures.is_empty(),
        "{} differences (scores over {TOLERANCE:e}):\n{}",
        failures.len(),
        failures.join("\n")
    );
}

#[test]
fn normalization_gives_the_jars_tokens() {
    let fixture = fixture();
    let meteor = meteor();
    let changed: HashMap<&str, &str> = fixture
        .normalize
        .iter()
        .map(|(text, out)| (text.as_str(), out.as_str()))
        .collect();
    // Every caption of the fixture, as the script fed them to the jar's Normalizer; the ones
    // it did not list come out unchanged.
    let texts: BTreeSet<String> = fixture
        .cases
        .iter()
        .flat_map(|c| c.hypotheses.iter().chain(c.references.iter().flatten()))
        .map(|t| t.replace("|||", "").trim().to_owned())
        .collect();
    let mut failures = Vec::new();
    for text in &texts {
        let jar = changed.get(text.as_str()).copied().unwrap_or(text);
        let want: Vec<String> = jar
            .to_lowercase()
            .split([' ', '\t', '\n', '\r', '\x0c'])
            .filter(|w| !w.is_empty())
            .map(str::to_owned)
            .collect();
        let got = meteor.words(text);
        if got != want {
            failures.push(format!("{text:?}: {got:?}, jar {want:?}"));
        }
    }
    println!(
        "{} captions normalized as the jar does ({} changed by it)",
        texts.len(),
        changed.len()
    );
    assert!(failures.is_empty(), "{}", failures.join("\n"));
}

#[test]
fn the_snowball_stemmer_gives_the_jars_stems() {
    let fixture = fixture();
    let stemmer = rust_stemmers::Stemmer::create(rust_stemmers::Algorithm::English);
    let failures: Vec<String> = fixture
        .stems
        .iter()
        .filter(|(word, stem)| stemmer.stem(word) != stem.as_str())
        .map(|(word, stem)| format!("{word}: {}, jar {stem}", stemmer.stem(word)))
        .collect();
    assert!(!fixture.stems.is_empty());
    assert!(failures.is_empty(), "{}", failures.join("\n"));
}

#[test]
fn bad_input_is_refused() {
    let meteor = meteor();
    let err = meteor
        .score_corpus(&["a dog", "a cat"], &[vec!["a dog"], vec![]])
        .unwrap_err();
    assert_eq!(err.to_string(), "image 1 has no reference captions");
    let err = meteor
        .score_corpus(&["a dog"], &[vec!["a dog"], vec!["a cat"]])
        .unwrap_err();
    assert_eq!(
        err.to_string(),
        "1 candidates but 2 reference lists: images must align by index"
    );
    let err = meteor
        .score_corpus(&["a cat", "a dog\nruns"], &[vec!["a cat"], vec!["a dog"]])
        .unwrap_err();
    assert_eq!(
        err.to_string(),
        "image 1: a caption contains a line break, which the METEOR jar's line protocol cannot carry"
    );
    let none: [&str; 0] = [];
    let err = meteor.score_corpus(&none, &[] as &[Vec<&str>]).unwrap_err();
    assert_eq!(err.to_string(), "no images to score");
}
