//! Caption metrics computed exactly as the coco-caption toolkit (`pycocoevalcap` 1.2) computes
//! them: corpus BLEU-1..4, ROUGE-L and CIDEr-D, and METEOR 1.5 ([`meteor`], which needs the
//! data of `make meteor-data`).
//!
//! Published Flickr8k/COCO numbers come from that toolkit, quirks included, so each metric
//! reproduces its Python source line by line rather than the textbook formula; the doc comments
//! name the quirk a line keeps. Callers pass captions already split into tokens (the cleaner's
//! lowercase, punctuation-free text split on whitespace); the PTB tokenizer does not run here.
//! `scripts/metrics_parity.py` feeds the same tokens to pycocoevalcap's `Bleu(4)`, `Rouge()` and
//! `Cider()` and `tests/parity.rs` checks that every score agrees to 1e-14.
//!
//! Images align by index: `candidates[i]` is scored against `references[i]`.

mod bleu;
mod cider;
pub mod meteor;
mod rouge;

pub use cider::CiderD;
pub use meteor::{Meteor, MeteorError, MeteorScores};

use std::collections::HashMap;

/// Longest n-gram BLEU and CIDEr-D count (both use 1..=4 in pycocoevalcap).
const MAX_N: usize = 4;

/// Every score pycocoevalcap reports for a corpus, on its 0-1 scale (CIDEr-D keeps its x10).
#[derive(Debug, Clone, PartialEq)]
pub struct Scores {
    /// Cumulative BLEU-1..4 (`bleu[3]` is BLEU-4).
    pub bleu: [f64; 4],
    /// ROUGE-L F-score (beta 1.2), averaged over images.
    pub rouge_l: f64,
    /// CIDEr-D over the corpus: the mean of `cider_d_per_image`.
    pub cider_d: f64,
    /// CIDEr-D of each image, in input order (the evaluator ranks images by it).
    pub cider_d_per_image: Vec<f64>,
}

/// Why a corpus cannot be scored.
#[derive(Debug, thiserror::Error)]
pub enum MetricsError {
    #[error("{candidates} candidates but {references} reference lists: images must align by index")]
    LengthMismatch {
        candidates: usize,
        references: usize,
    },
    #[error("no images to score")]
    NoImages,
    #[error("image {image} has no reference captions")]
    NoReferences { image: usize },
    #[error(
        "image {image}: token {token:?} is empty or contains whitespace; pass captions split on whitespace"
    )]
    BadToken { image: usize, token: String },
}

/// Scores `candidates[i]` against `references[i]` for every image with BLEU-1..4, ROUGE-L and
/// CIDEr-D.
///
/// CIDEr-D takes its document frequencies from the references passed here, as pycocoevalcap
/// does, so an image's CIDEr-D depends on which other images are scored with it. A caption may
/// have no tokens; it is scored as pycocoevalcap scores an empty string.
pub fn score_corpus<C: AsRef<str>, R: AsRef<str>>(
    candidates: &[Vec<C>],
    references: &[Vec<Vec<R>>],
) -> Result<Scores, MetricsError> {
    let (cands, refs) = token_views(candidates, references)?;
    let (cider_d, cider_d_per_image) = cider::cider_d(&cands, &refs);
    Ok(Scores {
        bleu: bleu::bleu(&cands, &refs),
        rouge_l: rouge::rouge_l(&cands, &refs),
        cider_d,
        cider_d_per_image,
    })
}

/// Corpus BLEU-4 alone, identical to `score_corpus(..)?.bleu[3]` but without ROUGE-L and CIDEr-D
/// (the trainer reports it on the validation split every epoch).
pub fn corpus_bleu4<C: AsRef<str>, R: AsRef<str>>(
    candidates: &[Vec<C>],
    references: &[Vec<Vec<R>>],
) -> Result<f64, MetricsError> {
    let (cands, refs) = token_views(candidates, references)?;
    Ok(bleu::bleu(&cands, &refs)[3])
}

/// One caption as borrowed tokens.
type Tokens<'a> = Vec<&'a str>;

/// Checks the corpus shape and borrows every token as `&str`.
///
/// Tokens must be non-empty and free of whitespace: pycocoevalcap rejoins tokens with spaces
/// and BLEU/CIDEr-D re-split with `str.split()` while ROUGE-L uses `str.split(" ")`, so such a
/// token would be scored differently by each metric. Python's `str.split()` also splits on the
/// ASCII separators U+001C..U+001F, which Rust's `char::is_whitespace` does not cover.
fn token_views<'a, C: AsRef<str>, R: AsRef<str>>(
    candidates: &'a [Vec<C>],
    references: &'a [Vec<Vec<R>>],
) -> Result<(Vec<Tokens<'a>>, Vec<Vec<Tokens<'a>>>), MetricsError> {
    if candidates.len() != references.len() {
        return Err(MetricsError::LengthMismatch {
            candidates: candidates.len(),
            references: references.len(),
        });
    }
    if candidates.is_empty() {
        return Err(MetricsError::NoImages);
    }
    let check = |image: usize, token: &'a str| {
        let bad = token.is_empty()
            || token
                .chars()
                .any(|c| c.is_whitespace() || ('\x1c'..='\x1f').contains(&c));
        if bad {
            Err(MetricsError::BadToken {
                image,
                token: token.to_owned(),
            })
        } else {
            Ok(token)
        }
    };
    let mut cands = Vec::with_capacity(candidates.len());
    let mut refs = Vec::with_capacity(references.len());
    for (image, (cand, image_refs)) in candidates.iter().zip(references).enumerate() {
        if image_refs.is_empty() {
            return Err(MetricsError::NoReferences { image });
        }
        cands.push(
            cand.iter()
                .map(|t| check(image, t.as_ref()))
                .collect::<Result<_, _>>()?,
        );
        refs.push(
            image_refs
                .iter()
                .map(|r| r.iter().map(|t| check(image, t.as_ref())).collect())
                .collect::<Result<_, _>>()?,
        );
    }
    Ok((cands, refs))
}

/// The 1- to 4-gram counts of one caption, kept in first-occurrence order (1-grams first), the
/// order pycocoevalcap's `precook` fills its dict in, so that float sums over n-grams add in the
/// same order as the Python code.
struct NgramCounts<'a> {
    /// `(ngram, count)` pairs; `ngram.len()` is n.
    entries: Vec<(&'a [&'a str], u32)>,
    /// Position of each n-gram in `entries`.
    index: HashMap<&'a [&'a str], usize>,
}

impl<'a> NgramCounts<'a> {
    fn new(tokens: &'a [&'a str]) -> Self {
        let mut counts = NgramCounts {
            entries: Vec::new(),
            index: HashMap::new(),
        };
        for n in 1..=MAX_N {
            for ngram in tokens.windows(n) {
                match counts.index.get(ngram) {
                    Some(&i) => counts.entries[i].1 += 1,
                    None => {
                        counts.index.insert(ngram, counts.entries.len());
                        counts.entries.push((ngram, 1));
                    }
                }
            }
        }
        counts
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn toks(s: &str) -> Vec<&str> {
        s.split_whitespace().collect()
    }

    #[test]
    fn ngram_counts_keep_first_occurrence_order() {
        let tokens = toks("a dog a dog");
        let counts = NgramCounts::new(&tokens);
        let got: Vec<(String, u32)> = counts
            .entries
            .iter()
            .map(|(g, c)| (g.join(" "), *c))
            .collect();
        let want = [
            ("a", 2),
            ("dog", 2),
            ("a dog", 2),
            ("dog a", 1),
            ("a dog a", 1),
            ("dog a dog", 1),
            ("a dog a dog", 1),
        ];
        assert_eq!(got, want.map(|(g, c)| (g.to_owned(), c)));
        assert_eq!(counts.index[&["dog", "a"][..]], 3);
    }

    #[test]
    fn mismatched_lengths_are_an_error() {
        let err = score_corpus(&[toks("a dog")], &[] as &[Vec<Vec<&str>>]).unwrap_err();
        assert!(matches!(
            err,
            MetricsError::LengthMismatch {
                candidates: 1,
                references: 0
            }
        ));
    }

    #[test]
    fn empty_corpus_is_an_error() {
        let none: [Vec<&str>; 0] = [];
        let err = corpus_bleu4(&none, &[] as &[Vec<Vec<&str>>]).unwrap_err();
        assert!(matches!(err, MetricsError::NoImages));
    }

    #[test]
    fn image_without_references_is_an_error() {
        let err = score_corpus(
            &[toks("a dog"), toks("a cat")],
            &[vec![toks("a dog")], vec![]],
        )
        .unwrap_err();
        assert!(matches!(err, MetricsError::NoReferences { image: 1 }));
    }

    #[test]
    fn token_with_whitespace_is_an_error() {
        let err = score_corpus(&[vec!["a dog"]], &[vec![toks("a dog")]]).unwrap_err();
        assert!(matches!(err, MetricsError::BadToken { image: 0, ref token } if token == "a dog"));
        let err = score_corpus(&[toks("a dog")], &[vec![vec!["a", ""]]]).unwrap_err();
        assert!(matches!(err, MetricsError::BadToken { image: 0, .. }));
    }

    #[test]
    fn owned_and_borrowed_tokens_score_the_same() {
        let cands = vec![toks("a dog runs on grass")];
        let refs = vec![vec![
            toks("a dog runs on the grass"),
            toks("a dog is running"),
        ]];
        let owned_cands: Vec<Vec<String>> = cands
            .iter()
            .map(|c| c.iter().map(|t| t.to_string()).collect())
            .collect();
        let a = score_corpus(&cands, &refs).unwrap();
        let b = score_corpus(&owned_cands, &refs).unwrap();
        assert_eq!(a, b);
        assert_eq!(corpus_bleu4(&cands, &refs).unwrap(), a.bleu[3]);
    }
}
