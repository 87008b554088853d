//! `make bench`'s METEOR side (run by `scripts/bench.py`, which times the jar on the same
//! corpus): the time to load `data/meteor/` and to score a corpus, one JSON line.
//!
//!     cargo bench -p metrics --bench meteor -- CORPUS.json [DATA_DIR]
//!
//! CORPUS.json: `{"hypotheses": [..], "references": [[..], ..]}`.

use std::time::Instant;

use serde::Deserialize;

#[derive(Deserialize)]
struct Corpus {
    hypotheses: Vec<String>,
    references: Vec<Vec<String>>,
}

fn main() -> Result<(), Box<dyn std::error::Error>> {
    // `cargo bench` passes `--bench`; the corpus and data folder are the other arguments.
    let args: Vec<String> = std::env::args()
        .skip(1)
        .filter(|a| !a.starts_with("--"))
        .collect();
    let Some(corpus_path) = args.first() else {
        return Err("usage: meteor CORPUS.json [DATA_DIR]".into());
    };
    // Cargo runs benches in the package folder; the data is at the repository root.
    let default_data = concat!(env!("CARGO_MANIFEST_DIR"), "/../../data/meteor");
    let data = args.get(1).map_or(default_data, String::as_str);
    let corpus: Corpus = serde_json::from_str(&std::fs::read_to_string(corpus_path)?)?;

    let start = Instant::now();
    let meteor = metrics::Meteor::load(data)?;
    let load_s = start.elapsed().as_secs_f64();
    let start = Instant::now();
    let scores = meteor.score_corpus(&corpus.hypotheses, &corpus.references)?;
    let score_s = start.elapsed().as_secs_f64();
    println!(
        "{}",
        serde_json::json!({
            "load_s": load_s,
            "score_s": score_s,
            "images": corpus.hypotheses.len(),
            "meteor": scores.corpus,
        })
    );
    Ok(())
}
