//! METEOR through `evaluator score`: with the data of `make meteor-data` it reports the jar's
//! corpus METEOR (the Flickr8k case of the metrics crate's parity fixture); without the data
//! it leaves METEOR out with one warning; a corrupt data folder is an error naming the file.

use std::path::{Path, PathBuf};

use imagecaptioning::{describe, run, tempdir};

fn repository() -> PathBuf {
    PathBuf::from(env!("CARGO_MANIFEST_DIR"))
}

/// The data folder of `make meteor-data` (which `make test` runs first).
fn meteor_data() -> PathBuf {
    let dir = repository().join("data/meteor");
    assert!(
        dir.join("paraphrase-en.gz").is_file(),
        "{} has no METEOR data: run `make meteor-data` (make test does)",
        dir.display()
    );
    dir
}

/// Writes predictions.tsv and references.tsv for the fixture's `flickr8k_clean` case and
/// returns the jar's corpus METEOR for it.
fn write_flickr8k_case(dir: &Path) -> f64 {
    let path = repository().join("crates/metrics/tests/fixtures/meteor.json");
    let fixture: serde_json::Value =
        serde_json::from_str(&std::fs::read_to_string(&path).unwrap()).unwrap();
    let case = fixture["cases"]
        .as_array()
        .unwrap()
        .iter()
        .find(|c| c["name"] == "flickr8k_clean")
        .expect("the fixture has the flickr8k_clean case");
    let (mut predictions, mut references) = (String::new(), String::new());
    for (i, (hypothesis, refs)) in case["hypotheses"]
        .as_array()
        .unwrap()
        .iter()
        .zip(case["references"].as_array().unwrap())
        .enumerate()
    {
        predictions += &format!("image{i:03}.jpg\t{}\n", hypothesis.as_str().unwrap());
        for r in refs.as_array().unwrap() {
            references += &format!("image{i:03}.jpg\t{}\n", r.as_str().unwrap());
        }
    }
    std::fs::write(dir.join("predictions.tsv"), predictions).unwrap();
    std::fs::write(dir.join("references.tsv"), references).unwrap();
    case["meteor"].as_f64().unwrap()
}

fn score(dir: &Path, meteor_data: &Path) -> std::process::Output {
    run(
        "evaluator",
        dir,
        &[
            "score",
            "--predictions",
            "predictions.tsv",
            "--references",
            "references.tsv",
            "--json",
            "metrics.json",
            "--set",
            &format!(
                "evaluator.meteor_data={:?}",
                meteor_data.display().to_string()
            ),
        ],
    )
}

#[test]
fn score_reports_the_jars_meteor() {
    let dir = tempdir();
    let jar = write_flickr8k_case(dir.path());
    let out = score(dir.path(), &meteor_data());
    assert!(out.status.success(), "{}", describe(&out));
    let metrics: serde_json::Value =
        serde_json::from_str(&std::fs::read_to_string(dir.path().join("metrics.json")).unwrap())
            .unwrap();
    let meteor = metrics["METEOR"].as_f64().expect("METEOR in the JSON");
    assert!((meteor - jar).abs() < 1e-9, "METEOR {meteor}, jar {jar}");
    let stdout = String::from_utf8_lossy(&out.stdout);
    let line = format!("  METEOR   {meteor:.4}");
    let lines: Vec<&str> = stdout.lines().collect();
    let at = lines.iter().position(|l| *l == line);
    assert!(at.is_some(), "no {line:?} in:\n{stdout}");
    assert!(lines[at.unwrap() - 1].starts_with("  BLEU-4 "), "{stdout}");
    assert!(lines[at.unwrap() + 1].starts_with("  ROUGE-L "), "{stdout}");
}

#[test]
fn without_data_meteor_is_left_out_with_one_warning() {
    let dir = tempdir();
    write_flickr8k_case(dir.path());
    let missing = dir.path().join("no-meteor-here");
    let out = score(dir.path(), &missing);
    assert!(out.status.success(), "{}", describe(&out));
    let stderr = String::from_utf8_lossy(&out.stderr);
    let warnings: Vec<&str> = stderr.lines().filter(|l| l.contains("METEOR")).collect();
    assert_eq!(
        warnings,
        [format!(
            " WARN METEOR left out: no METEOR data in {}: run `make meteor-data` to fetch it",
            missing.display()
        )],
        "{}",
        describe(&out)
    );
    let metrics: serde_json::Value =
        serde_json::from_str(&std::fs::read_to_string(dir.path().join("metrics.json")).unwrap())
            .unwrap();
    assert!(metrics.get("METEOR").is_none(), "{metrics}");
    assert!(metrics["BLEU-4"].is_f64(), "{metrics}");
    assert!(!String::from_utf8_lossy(&out.stdout).contains("METEOR"));
}

#[test]
fn a_corrupt_data_folder_is_an_error_naming_the_file() {
    let dir = tempdir();
    write_flickr8k_case(dir.path());
    // The first files of the manifest intact, then a truncated synonym file.
    let data = meteor_data();
    let corrupt = dir.path().join("meteor");
    for name in [
        "function/english.words",
        "nonbreaking/english.prefixes",
        "synonym/english.exceptions",
    ] {
        std::fs::create_dir_all(corrupt.join(name).parent().unwrap()).unwrap();
        std::fs::copy(data.join(name), corrupt.join(name)).unwrap();
    }
    let synsets = std::fs::read(data.join("synonym/english.synsets")).unwrap();
    let truncated = corrupt.join("synonym/english.synsets");
    std::fs::write(&truncated, &synsets[..1000]).unwrap();
    let out = score(dir.path(), &corrupt);
    assert_eq!(out.status.code(), Some(1), "{}", describe(&out));
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert_eq!(
        stderr.lines().last().unwrap(),
        format!(
            "error: loading METEOR's data (evaluator.meteor_data): {}: 1000 bytes, expected \
             3702066: truncated or not the METEOR 1.5 file (rerun `make meteor-data`)",
            truncated.display()
        ),
        "{}",
        describe(&out)
    );
    assert!(!dir.path().join("metrics.json").exists());
}
