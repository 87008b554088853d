//! METEOR 1.5 exactly as coco-caption (pycocoevalcap 1.2) computes it, without Java.
//!
//! pycocoevalcap runs `java -jar meteor-1.5.jar - - -stdio -l en -norm` and, for each image,
//! sends `SCORE ||| ref 1 ||| ... ||| ref n ||| hypothesis`, then one `EVAL` line with every
//! image's statistics. This module reproduces that pipeline:
//!
//! - the protocol's escaping (`|||` is removed from the hypothesis, not from references), and
//!   Java's trimming of each field (`normalize.rs`);
//! - `-norm`: the jar's Moses-style tokenizer and its additions, then lowercasing
//!   (`normalize.rs`);
//! - the four matchers with the jar's word comparison (`String.hashCode()`), the Snowball
//!   English stemmer, WordNet synsets with WordNet's suffix rules, and the paraphrase table
//!   (`stage.rs`, `synonyms.rs`, `paraphrase.rs`);
//! - the jar's beam search over partial alignments, with its ranking and tie-breaking quirks
//!   (`align.rs`);
//! - the score with the English ranking parameters α 0.85, β 0.2, γ 0.6, δ 0.75 and module
//!   weights 1.0 / 0.6 / 0.8 / 0.6, the best of the references per image, and the corpus
//!   score from the summed statistics, as coco-caption's modified jar answers `EVAL` (not
//!   the mean of the image scores) (`stats.rs`).
//!
//! The data (function words, nonbreaking prefixes, WordNet, paraphrase table) is not part of
//! this repository: `make meteor-data` extracts it from the pycocoevalcap wheel into
//! `data/meteor/` ([`DEFAULT_DATA_DIR`]), and [`Meteor::load`] checks every file's size and
//! SHA-256 against `data.manifest`. `tests/meteor_parity.rs` compares every image's score and
//! statistics with the jar's on a committed fixture (`scripts/meteor_parity.py`).

mod align;
mod data;
mod java;
mod normalize;
mod paraphrase;
mod stage;
mod stats;
mod synonyms;

use std::collections::HashSet;
use std::path::{Path, PathBuf};

pub use stats::SentenceStats;

use crate::MetricsError;
use normalize::Normalizer;
use paraphrase::Paraphrases;
use stage::{Sentence, Stage};
use synonyms::Synonyms;

/// Where `make meteor-data` puts the data, relative to the repository root.
pub const DEFAULT_DATA_DIR: &str = "data/meteor";

/// Why METEOR cannot be loaded or a corpus scored.
#[derive(Debug, thiserror::Error)]
pub enum MeteorError {
    #[error("no METEOR data in {}: run `make meteor-data` to fetch it", dir.display())]
    NoData { dir: PathBuf },
    #[error(
        "{}: missing; the METEOR data folder is incomplete (rerun `make meteor-data`)",
        path.display()
    )]
    MissingFile { path: PathBuf },
    #[error(
        "{}: {actual} bytes, expected {expected}: truncated or not the METEOR 1.5 file (rerun `make meteor-data`)",
        path.display()
    )]
    WrongSize {
        path: PathBuf,
        expected: u64,
        actual: u64,
    },
    #[error(
        "{}: SHA-256 {actual}, expected {expected}: corrupt or not the METEOR 1.5 file (rerun `make meteor-data`)",
        path.display()
    )]
    WrongHash {
        path: PathBuf,
        expected: String,
        actual: String,
    },
    #[error("{}: {source}", path.display())]
    Io {
        path: PathBuf,
        source: std::io::Error,
    },
    #[error("{}:{line}: {message}", path.display())]
    Parse {
        path: PathBuf,
        line: usize,
        message: String,
    },
    #[error(
        "image {image}: a caption contains a line break, which the METEOR jar's line protocol cannot carry"
    )]
    LineBreak { image: usize },
    #[error(transparent)]
    Input(#[from] MetricsError),
}

/// A corpus's METEOR: the corpus score and each image's.
#[derive(Debug, Clone, PartialEq)]
pub struct MeteorScores {
    /// The score of the summed statistics (coco-caption's METEOR).
    pub corpus: f64,
    /// Each image's score against its best reference, in input order.
    pub per_image: Vec<f64>,
    /// Each image's statistics against its best reference (the jar's `SCORE` answer).
    pub stats: Vec<SentenceStats>,
}

/// The loaded METEOR resources; load once, score any number of corpora.
pub struct Meteor {
    normalizer: Normalizer,
    function_words: HashSet<String>,
    synonyms: Synonyms,
    paraphrases: Paraphrases,
    stemmer: rust_stemmers::Stemmer,
}

impl Meteor {
    /// Loads the data folder made by `make meteor-data` (checking every file's size and
    /// SHA-256). A folder that does not exist or holds none of the files is
    /// [`MeteorError::NoData`]; an incomplete or corrupt one is an error naming the file.
    pub fn load(dir: impl AsRef<Path>) -> Result<Self, MeteorError> {
        let files = data::Files::read(dir.as_ref())?;
        // The paraphrase table takes most of the time; parse the rest meanwhile.
        std::thread::scope(|scope| {
            let paraphrases = scope.spawn(|| {
                Paraphrases::parse(
                    &files.path(data::PARAPHRASES),
                    files.bytes(data::PARAPHRASES),
                )
            });
            let prefixes = normalize::parse_prefixes(files.text(data::PREFIXES)?);
            let function_words = files
                .text(data::FUNCTION_WORDS)?
                .lines()
                .map(str::to_owned)
                .collect();
            let synonyms = Synonyms::parse(
                &files.path(data::SYNSETS),
                files.text(data::SYNSETS)?,
                &files.path(data::EXCEPTIONS),
                files.text(data::EXCEPTIONS)?,
            )?;
            let paraphrases = paraphrases
                .join()
                .unwrap_or_else(|panic| std::panic::resume_unwind(panic))?;
            Ok(Meteor {
                normalizer: Normalizer::new(prefixes),
                function_words,
                synonyms,
                paraphrases,
                stemmer: rust_stemmers::Stemmer::create(rust_stemmers::Algorithm::English),
            })
        })
    }

    /// The words METEOR aligns for one line of text: tokenized as the jar's `-norm` does,
    /// lowercased, split on white space.
    pub fn words(&self, line: &str) -> Vec<String> {
        self.normalizer.words(line)
    }

    /// Scores `hypotheses[i]` against `references[i]` for every image, as pycocoevalcap's
    /// `Meteor().compute_score` does: each image's score against its best reference, and the
    /// corpus score of the summed statistics.
    ///
    /// Captions are plain text (tokenized or not, any case): the jar's normalization runs
    /// here. A caption may be empty; it must not contain a line break.
    pub fn score_corpus<H: AsRef<str>, R: AsRef<str>>(
        &self,
        hypotheses: &[H],
        references: &[Vec<R>],
    ) -> Result<MeteorScores, MeteorError> {
        if hypotheses.len() != references.len() {
            return Err(MetricsError::LengthMismatch {
                candidates: hypotheses.len(),
                references: references.len(),
            }
            .into());
        }
        if hypotheses.is_empty() {
            return Err(MetricsError::NoImages.into());
        }
        let mut per_image = Vec::with_capacity(hypotheses.len());
        let mut all_stats = Vec::with_capacity(hypotheses.len());
        let mut total = SentenceStats::default();
        for (image, (hypothesis, refs)) in hypotheses.iter().zip(references).enumerate() {
            if refs.is_empty() {
                return Err(MetricsError::NoReferences { image }.into());
            }
            let has_break = |s: &str| s.contains(['\n', '\r']);
            if has_break(hypothesis.as_ref()) || refs.iter().any(|r| has_break(r.as_ref())) {
                return Err(MeteorError::LineBreak { image });
            }
            let stats = self.sentence_stats(hypothesis.as_ref(), refs);
            total.add(&stats);
            per_image.push(stats.score());
            all_stats.push(stats);
        }
        Ok(MeteorScores {
            corpus: total.score(),
            per_image,
            stats: all_stats,
        })
    }

    /// One image's statistics against its best reference (`MeteorScorer.getMeteorStats`
    /// with several references: the first reference with the highest score).
    fn sentence_stats<R: AsRef<str>>(&self, hypothesis: &str, references: &[R]) -> SentenceStats {
        let (hypothesis, references) = normalize::protocol_fields(hypothesis, references);
        let test = self.sentence(&hypothesis);
        let mut best: Option<(f64, SentenceStats)> = None;
        for reference in &references {
            let reference = self.sentence(reference);
            let stage = Stage::new(&test, &reference, &self.paraphrases);
            let matches = align::align(&stage, test.words.len());
            let stats = SentenceStats::new(&test, &reference, &matches);
            let score = stats.score();
            if best.as_ref().is_none_or(|(s, _)| score > *s) {
                best = Some((score, stats));
            }
        }
        best.map(|(_, stats)| stats)
            .expect("the protocol always yields a reference")
    }

    /// Normalizes a line and computes what the matchers compare.
    fn sentence(&self, line: &str) -> Sentence {
        let words = self.normalizer.words(line);
        Sentence {
            keys: words.iter().map(|w| java::hash_code(w)).collect(),
            stem_keys: words
                .iter()
                .map(|w| java::hash_code(&self.stemmer.stem(w)))
                .collect(),
            synsets: words.iter().map(|w| self.synonyms.synsets_of(w)).collect(),
            phrase_ids: self.paraphrases.translate(&words),
            text: words.join(" "),
            word_starts: words
                .iter()
                .scan(0, |at, w| {
                    let start = *at;
                    *at += w.len() + 1;
                    Some(start)
                })
                .collect(),
            function: words
                .iter()
                .map(|w| self.function_words.contains(&w.to_lowercase()))
                .collect(),
            words,
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_missing_folder_is_no_data_naming_make_meteor_data() {
        let dir = tempfile::tempdir().unwrap();
        let missing = dir.path().join("meteor");
        let err = Meteor::load(&missing).err().unwrap();
        assert!(matches!(err, MeteorError::NoData { .. }));
        assert_eq!(
            err.to_string(),
            format!(
                "no METEOR data in {}: run `make meteor-data` to fetch it",
                missing.display()
            )
        );
        // An empty folder is no data too.
        let err = Meteor::load(dir.path()).err().unwrap();
        assert!(matches!(err, MeteorError::NoData { .. }));
    }

    #[test]
    fn an_incomplete_or_corrupt_folder_names_the_file() {
        let dir = tempfile::tempdir().unwrap();
        let write = |name: &str, bytes: &[u8]| {
            let path = dir.path().join(name);
            std::fs::create_dir_all(path.parent().unwrap()).unwrap();
            std::fs::write(path, bytes).unwrap();
        };
        write(data::PREFIXES, b"Mr\n");
        let words = dir.path().join(data::FUNCTION_WORDS);
        let err = Meteor::load(dir.path()).err().unwrap();
        assert_eq!(
            err.to_string(),
            format!(
                "{}: missing; the METEOR data folder is incomplete (rerun `make meteor-data`)",
                words.display()
            )
        );
        write(data::FUNCTION_WORDS, b"the\na\n");
        let err = Meteor::load(dir.path()).err().unwrap();
        assert_eq!(
            err.to_string(),
            format!(
                "{}: 6 bytes, expected 373: truncated or not the METEOR 1.5 file (rerun `make meteor-data`)",
                words.display()
            )
        );
        write(data::FUNCTION_WORDS, &[b'x'; 373]);
        let err = Meteor::load(dir.path()).err().unwrap();
        let actual = data::tests_support::sha256_hex(&[b'x'; 373]);
        assert_eq!(
            err.to_string(),
            format!(
                "{}: SHA-256 {actual}, expected 2ae0d5b8c29e2993a0f442b065b946d1a17fbfe8538e66bf5931c4a248cf4c3a: corrupt or not the METEOR 1.5 file (rerun `make meteor-data`)",
                words.display()
            )
        );
    }

    #[test]
    fn input_errors_say_which_image() {
        let err: MeteorError = MetricsError::NoReferences { image: 1 }.into();
        assert_eq!(err.to_string(), "image 1 has no reference captions");
        let err = MeteorError::LineBreak { image: 0 };
        assert_eq!(
            err.to_string(),
            "image 0: a caption contains a line break, which the METEOR jar's line protocol cannot carry"
        );
    }
}
