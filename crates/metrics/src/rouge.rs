//! ROUGE-L as `pycocoevalcap/rouge/rouge.py` computes it: an LCS-based F-score per image with
//! beta 1.2, averaged over images.

use crate::Tokens;

/// Weight of recall against precision ("updated ... based on discussion with Hovey").
const BETA: f64 = 1.2;

/// Mean ROUGE-L over images.
pub(crate) fn rouge_l(candidates: &[Tokens], references: &[Vec<Tokens>]) -> f64 {
    let total: f64 = candidates
        .iter()
        .zip(references)
        .map(|(c, rs)| image_score(c, rs))
        .sum();
    total / candidates.len() as f64
}

/// ROUGE-L of one candidate against its references.
///
/// rouge.py takes the best precision and the best recall over the references separately, so
/// they may come from different references, and only then combines them.
fn image_score(candidate: &[&str], references: &[Tokens]) -> f64 {
    let candidate = as_split_on_space(candidate);
    let mut prec_max = 0.0f64;
    let mut rec_max = 0.0f64;
    for r in references {
        let r = as_split_on_space(r);
        let lcs = lcs_len(r, candidate) as f64;
        prec_max = prec_max.max(lcs / candidate.len() as f64);
        rec_max = rec_max.max(lcs / r.len() as f64);
    }
    if prec_max != 0.0 && rec_max != 0.0 {
        let beta2 = BETA * BETA;
        // Same operation order as rouge.py, so the result is bit-for-bit the same.
        ((1.0 + beta2) * prec_max * rec_max) / (rec_max + beta2 * prec_max)
    } else {
        0.0
    }
}

/// The tokens rouge.py sees: it splits the joined caption with `split(" ")`, which turns an
/// empty caption into one empty token (length 1, not 0).
fn as_split_on_space<'a>(tokens: &'a [&'a str]) -> &'a [&'a str] {
    if tokens.is_empty() { &[""] } else { tokens }
}

/// Length of the longest common subsequence of `a` and `b` (rouge.py's `my_lcs`, with one row
/// of the table kept instead of all of it).
fn lcs_len(a: &[&str], b: &[&str]) -> usize {
    let mut row = vec![0usize; b.len() + 1];
    for x in a {
        // `diag` is the previous row's value at j - 1.
        let mut diag = 0;
        for (j, y) in b.iter().enumerate() {
            let up = row[j + 1];
            row[j + 1] = if x == y { diag + 1 } else { up.max(row[j]) };
            diag = up;
        }
    }
    row[b.len()]
}

#[cfg(test)]
mod tests {
    use super::*;

    fn toks(s: &str) -> Vec<&str> {
        s.split_whitespace().collect()
    }

    #[test]
    fn lcs_skips_unmatched_words() {
        // "a man ... a ... horse": 4 words in order.
        let a = toks("a man rides a horse");
        let b = toks("a man is riding a brown horse");
        assert_eq!(lcs_len(&a, &b), 4);
        assert_eq!(lcs_len(&b, &a), 4);
        assert_eq!(lcs_len(&a, &[]), 0);
    }

    #[test]
    fn f_score_weights_recall_by_beta() {
        // P = 4/5, R = 4/7: (1 + 1.44) P R / (R + 1.44 P) = 0.6472148541.
        let got = image_score(
            &toks("a man rides a horse"),
            &[toks("a man is riding a brown horse")],
        );
        assert!((got - 0.647_214_854_1).abs() < 1e-9, "{got}");
    }

    #[test]
    fn best_precision_and_recall_may_come_from_different_references() {
        // First reference: P = 1, R = 2/6; second: P = 1/2, R = 1. rouge.py combines
        // max P = 1 with max R = 1, so the score is 1.
        let got = image_score(
            &toks("a dog"),
            &[toks("a dog runs on the grass"), toks("dog")],
        );
        assert!((got - 1.0).abs() < 1e-12);
    }

    #[test]
    fn empty_candidate_scores_zero_and_corpus_is_the_mean() {
        assert_eq!(image_score(&[], &[toks("a dog")]), 0.0);
        let cands = [toks("a dog"), vec![]];
        let refs = [vec![toks("a dog")], vec![toks("a cat")]];
        assert!((rouge_l(&cands, &refs) - 0.5).abs() < 1e-12);
    }
}
