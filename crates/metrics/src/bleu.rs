//! Corpus BLEU-1..4 as `pycocoevalcap/bleu/bleu_scorer.py` computes it with `option="closest"`.
//!
//! Clipped n-gram matches and candidate n-gram totals are summed over the whole corpus before
//! any division (corpus BLEU, not a mean of sentence scores), and one brevity penalty is taken
//! from the summed lengths.

use std::collections::HashMap;

use crate::{MAX_N, NgramCounts, Tokens};

/// Added to every numerator so a zero match count gives a tiny precision instead of a zero
/// that would make every higher order zero as well (`tiny` in bleu_scorer.py).
const TINY: f64 = 1e-15;
/// Added to every denominator so no candidate n-grams of an order is not a division by zero
/// (`small` in bleu_scorer.py). With no 4-grams at all, the 4-gram precision is 1e-6, not 0.
const SMALL: f64 = 1e-9;

/// BLEU-1..4 of the corpus; `[k]` is the geometric mean of the 1..=k+1-gram precisions.
pub(crate) fn bleu(candidates: &[Tokens], references: &[Vec<Tokens>]) -> [f64; 4] {
    let mut test_len = 0usize;
    let mut ref_len = 0usize;
    // Candidate n-grams of each order (`guess`) and those matched in a reference (`correct`).
    let mut guess = [0usize; MAX_N];
    let mut correct = [0usize; MAX_N];

    for (cand, refs) in candidates.iter().zip(references) {
        test_len += cand.len();
        ref_len += closest_ref_len(cand.len(), refs);

        // `cook_refs`: each n-gram may be matched as often as it occurs in the single
        // reference that has it most often.
        let mut max_ref_counts: HashMap<&[&str], u32> = HashMap::new();
        for r in refs {
            for &(ngram, count) in &NgramCounts::new(r).entries {
                let max = max_ref_counts.entry(ngram).or_default();
                *max = (*max).max(count);
            }
        }
        // `cook_test`: clip each candidate n-gram count by that maximum.
        for &(ngram, count) in &NgramCounts::new(cand).entries {
            let allowed = max_ref_counts.get(ngram).copied().unwrap_or(0);
            correct[ngram.len() - 1] += count.min(allowed) as usize;
        }
        for (k, g) in guess.iter_mut().enumerate() {
            // A caption of `len` tokens has `len - n + 1` n-grams, and none when shorter.
            *g += cand.len().saturating_sub(k);
        }
    }

    let mut scores = [0.0; MAX_N];
    let mut product = 1.0;
    for k in 0..MAX_N {
        product *= (correct[k] as f64 + TINY) / (guess[k] as f64 + SMALL);
        scores[k] = product.powf(1.0 / (k + 1) as f64);
    }
    // Brevity penalty on the corpus lengths; the same constants keep an all-empty corpus from
    // dividing by zero.
    let ratio = (test_len as f64 + TINY) / (ref_len as f64 + SMALL);
    if ratio < 1.0 {
        let penalty = (1.0 - 1.0 / ratio).exp();
        for s in &mut scores {
            *s *= penalty;
        }
    }
    scores
}

/// The reference length closest to the candidate's; on a tie the shorter reference wins,
/// because bleu_scorer.py takes `min((abs(l - testlen), l))` over tuples.
fn closest_ref_len(test_len: usize, refs: &[Tokens]) -> usize {
    refs.iter()
        .map(|r| (r.len().abs_diff(test_len), r.len()))
        .min()
        .map_or(0, |(_, len)| len)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn toks(s: &str) -> Vec<&str> {
        s.split_whitespace().collect()
    }

    fn bleu_of(pairs: &[(&str, &[&str])]) -> [f64; 4] {
        let cands: Vec<Tokens> = pairs.iter().map(|(c, _)| toks(c)).collect();
        let refs: Vec<Vec<Tokens>> = pairs
            .iter()
            .map(|(_, rs)| rs.iter().map(|r| toks(r)).collect())
            .collect();
        bleu(&cands, &refs)
    }

    fn assert_close(got: [f64; 4], want: [f64; 4], tol: f64) {
        for k in 0..4 {
            assert!(
                (got[k] - want[k]).abs() < tol,
                "BLEU-{}: got {}, want {}",
                k + 1,
                got[k],
                want[k]
            );
        }
    }

    #[test]
    fn identical_caption_scores_just_below_one() {
        let got = bleu_of(&[("a dog runs on the grass", &["a dog runs on the grass"])]);
        // (6 + 1e-15) / (6 + 1e-9) and so on: the smoothing constants keep it a hair under 1.
        assert_close(got, [1.0; 4], 1e-9);
        assert!(got.iter().all(|&b| b < 1.0));
    }

    #[test]
    fn short_candidate_gets_brevity_penalty() {
        // Candidate 5 tokens, closest reference 6 tokens: BP = exp(1 - 6/5) = exp(-0.2).
        // Precisions: 1-grams 5/5, 2-grams 3/4 ("on grass" unmatched), 3-grams 2/3, 4-grams 1/2.
        let got = bleu_of(&[(
            "a dog runs on grass",
            &[
                "a dog runs on the grass",
                "a brown dog is running outside on the grass",
            ],
        )]);
        let bp = (-0.2f64).exp(); // 0.818730753
        let want = [
            bp,                      // 0.818731
            bp * 0.75f64.sqrt(),     // 0.709042
            bp * 0.5f64.cbrt(),      // 0.649827: (1 * 3/4 * 2/3)^(1/3)
            bp * 0.25f64.powf(0.25), // 0.578930
        ];
        assert_close(got, want, 1e-6);
        assert!((got[3] - 0.578_930).abs() < 1e-6);
    }

    #[test]
    fn closest_reference_tie_picks_the_shorter() {
        // Candidate 5 tokens, references 4 and 6 tokens: 4 is chosen, so there is no brevity
        // penalty (choosing 6 would give BLEU-1 = exp(-0.2)).
        let got = bleu_of(&[(
            "a dog runs on grass",
            &["a dog runs fast", "a dog runs on the grass"],
        )]);
        assert!((got[0] - 1.0).abs() < 1e-9);
    }

    #[test]
    fn repeated_words_are_clipped() {
        // "the" appears 4 times but at most twice in one reference: 2/4 unigrams match.
        let got = bleu_of(&[("the the the the", &["the cat the mat"])]);
        assert!((got[0] - 0.5).abs() < 1e-9);
    }

    #[test]
    fn missing_higher_orders_give_tiny_not_zero() {
        // Three tokens, no 4-grams: 4-gram precision (0 + 1e-15) / (0 + 1e-9) = 1e-6, so
        // BLEU-4 = (1e-6)^(1/4) * exp(1 - 6/3) = 0.0316228 * 0.3678794.
        let got = bleu_of(&[("a dog runs", &["a dog runs on the grass"])]);
        let bp = (-1.0f64).exp();
        assert_close(got, [bp, bp, bp, 1e-6f64.powf(0.25) * bp], 1e-6);
    }

    #[test]
    fn counts_are_summed_over_the_corpus() {
        // 3 of 5 unigrams match over the corpus: 0.6, not the mean of 2/2 and 1/3.
        let got = bleu_of(&[("a dog", &["a dog"]), ("a cat sits", &["a dog runs"])]);
        assert!((got[0] - 0.6).abs() < 1e-9);
    }

    #[test]
    fn empty_candidate_scores_zero() {
        let got = bleu_of(&[("", &["a dog runs"])]);
        assert_close(got, [0.0; 4], 1e-12);
    }
}
