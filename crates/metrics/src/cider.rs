//! CIDEr-D as `pycocoevalcap/cider/cider_scorer.py` computes it.
//!
//! pycocoevalcap's class is named `Cider`, but its scorer is CIDEr-D: it clips candidate
//! n-gram weights by the reference's (`min(vec_hyp, vec_ref)`, "vrama91: added clipping") and
//! multiplies by a Gaussian length penalty with sigma 6 ("added a length based gaussian
//! penalty"), and it scales by 10. Like that code, the inverse document frequencies come from
//! the references of the images being scored, not from a fixed corpus.

use std::collections::{HashMap, HashSet};

use crate::{MAX_N, NgramCounts, Tokens};

/// Standard deviation of the length penalty, in tokens.
const SIGMA: f64 = 6.0;

/// CIDEr-D of the corpus (the mean over images) and of each image.
pub(crate) fn cider_d(candidates: &[Tokens], references: &[Vec<Tokens>]) -> (f64, Vec<f64>) {
    let scorer = CiderD::new(references);
    let per_image: Vec<f64> = candidates
        .iter()
        .enumerate()
        .map(|(image, cand)| scorer.score(image, cand))
        .collect();
    let corpus = per_image.iter().sum::<f64>() / per_image.len() as f64;
    (corpus, per_image)
}

/// A CIDEr-D scorer over a fixed set of images' references: the document frequencies are
/// computed once, then any caption of image `i` is scored against `references[i]` (the
/// self-critical trainer scores thousands of samples against the train split this way).
pub struct CiderD<'a> {
    ref_counts: Vec<Vec<NgramCounts<'a>>>,
    /// Document frequency: in how many images' reference sets an n-gram occurs.
    doc_freq: HashMap<&'a [&'a str], f64>,
    /// `ref_len` in cider_scorer.py: log of the number of images, the idf numerator. With a
    /// single image every idf is 0 and so is every score.
    log_images: f64,
}

impl<'a> CiderD<'a> {
    /// The scorer of `references[i]`, each reference a caption's tokens.
    pub fn new(references: &'a [Vec<Vec<&'a str>>]) -> Self {
        let ref_counts: Vec<Vec<NgramCounts>> = references
            .iter()
            .map(|rs| rs.iter().map(|r| NgramCounts::new(r)).collect())
            .collect();
        let mut doc_freq: HashMap<&[&str], f64> = HashMap::new();
        for refs in &ref_counts {
            let mut seen = HashSet::new();
            for r in refs {
                for &(ngram, _) in &r.entries {
                    if seen.insert(ngram) {
                        *doc_freq.entry(ngram).or_default() += 1.0;
                    }
                }
            }
        }
        Self {
            ref_counts,
            doc_freq,
            log_images: (references.len() as f64).ln(),
        }
    }

    /// CIDEr-D of `candidate` against the references of image `image`.
    pub fn score(&self, image: usize, candidate: &[&str]) -> f64 {
        let refs = &self.ref_counts[image];
        let cand_counts = NgramCounts::new(candidate);
        let hyp = TfIdf::new(&cand_counts, &self.doc_freq, self.log_images);
        let mut score = [0.0; MAX_N];
        for r in refs {
            let sim = similarity(&hyp, &TfIdf::new(r, &self.doc_freq, self.log_images));
            for (s, v) in score.iter_mut().zip(sim) {
                *s += v;
            }
        }
        // Mean over n-gram orders, then over references, times 10, in that order.
        let mut mean = score.iter().sum::<f64>() / MAX_N as f64;
        mean /= refs.len() as f64;
        mean * 10.0
    }
}

/// One caption as tf-idf weights (`counts2vec` in cider_scorer.py).
struct TfIdf<'c, 'a> {
    counts: &'c NgramCounts<'a>,
    /// Weight of `counts.entries[i]`.
    weights: Vec<f64>,
    /// Euclidean norm of the weights of each n-gram order.
    norm: [f64; MAX_N],
    /// Number of bigrams: cider_scorer.py adds up counts where the 0-based order index is 1.
    /// That is the word count minus one, so length differences equal word-count differences
    /// whenever both captions are non-empty (and an empty one scores 0 anyway).
    length: u32,
}

impl<'c, 'a> TfIdf<'c, 'a> {
    fn new(counts: &'c NgramCounts<'a>, doc_freq: &HashMap<&[&str], f64>, log_images: f64) -> Self {
        let mut norm = [0.0; MAX_N];
        let mut length = 0;
        let weights = counts
            .entries
            .iter()
            .map(|&(ngram, tf)| {
                // An n-gram no reference has gets document frequency 1 (idf = log_images).
                let df = doc_freq.get(ngram).copied().unwrap_or(0.0).max(1.0).ln();
                let w = f64::from(tf) * (log_images - df);
                norm[ngram.len() - 1] += w * w;
                if ngram.len() == 2 {
                    length += tf;
                }
                w
            })
            .collect();
        TfIdf {
            counts,
            weights,
            norm: norm.map(f64::sqrt),
            length,
        }
    }

    /// Weight of `ngram` (0 if the caption lacks it).
    fn get(&self, ngram: &[&str]) -> f64 {
        self.counts
            .index
            .get(ngram)
            .map_or(0.0, |&i| self.weights[i])
    }
}

/// Clipped cosine similarity of each n-gram order times the length penalty (`sim`).
fn similarity(hyp: &TfIdf, reference: &TfIdf) -> [f64; MAX_N] {
    let delta = f64::from(hyp.length) - f64::from(reference.length);
    let mut val = [0.0; MAX_N];
    for (&(ngram, _), &w) in hyp.counts.entries.iter().zip(&hyp.weights) {
        let r = reference.get(ngram);
        // Clipping: repeating a matched n-gram cannot raise the dot product.
        val[ngram.len() - 1] += w.min(r) * r;
    }
    // `np.e ** x` in Python is pow(e, x), kept instead of exp(x) for bit-equal results.
    let penalty = std::f64::consts::E.powf(-(delta * delta) / (2.0 * SIGMA * SIGMA));
    for ((v, &norm_hyp), &norm_ref) in val.iter_mut().zip(&hyp.norm).zip(&reference.norm) {
        // An order with no weight on either side keeps its (zero) dot product.
        if norm_hyp != 0.0 && norm_ref != 0.0 {
            *v /= norm_hyp * norm_ref;
        }
        *v *= penalty;
    }
    val
}

#[cfg(test)]
mod tests {
    use super::*;

    fn toks(s: &str) -> Vec<&str> {
        s.split_whitespace().collect()
    }

    fn cider_of(pairs: &[(&str, &[&str])]) -> (f64, Vec<f64>) {
        let cands: Vec<Tokens> = pairs.iter().map(|(c, _)| toks(c)).collect();
        let refs: Vec<Vec<Tokens>> = pairs
            .iter()
            .map(|(_, rs)| rs.iter().map(|r| toks(r)).collect())
            .collect();
        cider_d(&cands, &refs)
    }

    #[test]
    fn candidate_matching_one_of_two_images() {
        // Two images, so idf = ln 2 - ln(df). "a" is in both reference sets (idf 0); the rest
        // of image 0's n-grams have idf ln 2. Image 0 matches exactly: cosine 1 for 1-, 2- and
        // 3-grams, 0 for 4-grams (none), so 10 * (1 + 1 + 1 + 0) / 4 = 7.5. Image 1 shares
        // only "a", whose weight is 0, so it scores 0.
        let (corpus, per_image) = cider_of(&[
            ("a dog runs", &["a dog runs"]),
            ("a bird flies", &["a cat sleeps"]),
        ]);
        assert!((per_image[0] - 7.5).abs() < 1e-12, "{per_image:?}");
        assert!(per_image[1].abs() < 1e-12);
        assert!((corpus - 3.75).abs() < 1e-12);
    }

    #[test]
    fn repeated_words_are_clipped_and_length_penalised() {
        // Image 0: unigram "dog" weighs 2 ln 2 in the candidate and ln 2 in the reference.
        // Clipped dot product min(2 ln 2, ln 2) * ln 2 over norms 2 ln 2 * ln 2 = 0.5 (it would
        // be 1 without clipping). The candidate has 1 bigram, the reference 0, so the penalty
        // is exp(-1 / 72): 10 * 0.5 * exp(-1/72) / 4 = 1.2327588959.
        let (_, per_image) = cider_of(&[("dog dog", &["dog"]), ("cat", &["cat"])]);
        assert!((per_image[0] - 1.25 * (-1.0f64 / 72.0).exp()).abs() < 1e-12);
        assert!((per_image[0] - 1.232_758_895_9).abs() < 1e-9);
        assert!((per_image[1] - 2.5).abs() < 1e-12);
    }

    #[test]
    fn single_image_scores_zero() {
        // log(1 image) - log(df = 1) = 0: every weight vanishes.
        let (corpus, per_image) = cider_of(&[("a dog runs", &["a dog runs"])]);
        assert_eq!(corpus, 0.0);
        assert_eq!(per_image, vec![0.0]);
    }

    #[test]
    fn score_is_averaged_over_references() {
        // Adding a reference sharing nothing with the candidate halves image 0's score.
        let (_, one) = cider_of(&[
            ("a dog runs", &["a dog runs"]),
            ("a bird flies", &["a cat sleeps"]),
        ]);
        let (_, two) = cider_of(&[
            ("a dog runs", &["a dog runs", "the red car"]),
            ("a bird flies", &["a cat sleeps"]),
        ]);
        assert!((two[0] - one[0] / 2.0).abs() < 1e-12, "{one:?} {two:?}");
    }

    #[test]
    fn empty_candidate_scores_zero() {
        let (_, per_image) = cider_of(&[("", &["a dog runs"]), ("a cat", &["a cat sleeps"])]);
        assert_eq!(per_image[0], 0.0);
    }
}
