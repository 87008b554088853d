//! METEOR's sufficient statistics and score (`MeteorStats`, `MeteorScorer.computeMetrics`),
//! with the English "rank" parameters of METEOR 1.5.

use super::align::count_chunks;
use super::stage::{MODULES, Match, Sentence};

/// Module weights: exact, stem, synonym, paraphrase.
const WEIGHTS: [f64; MODULES] = [1.0, 0.6, 0.8, 0.6];
/// Weight of recall against precision in the harmonic mean.
const ALPHA: f64 = 0.85;
/// Shape of the fragmentation penalty.
const BETA: f64 = 0.2;
/// Largest fragmentation penalty.
const GAMMA: f64 = 0.6;
/// Weight of content words against function words.
const DELTA: f64 = 0.75;

/// The sufficient statistics of one hypothesis against its chosen reference, as the jar's
/// `SCORE` command prints them; sums of them score a corpus.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct SentenceStats {
    pub test_length: u64,
    pub reference_length: u64,
    pub test_function_words: u64,
    pub reference_function_words: u64,
    /// Matched content words of the hypothesis, by module (exact, stem, synonym, paraphrase).
    pub test_content_matches: [u64; MODULES],
    pub reference_content_matches: [u64; MODULES],
    /// Matched function words of the hypothesis, by module.
    pub test_function_matches: [u64; MODULES],
    pub reference_function_matches: [u64; MODULES],
    pub chunks: u64,
    pub test_word_matches: u64,
    pub reference_word_matches: u64,
}

impl SentenceStats {
    /// The statistics of an alignment.
    pub(crate) fn new(test: &Sentence, reference: &Sentence, matches: &[Option<Match>]) -> Self {
        let mut stats = SentenceStats {
            test_length: test.words.len() as u64,
            reference_length: reference.words.len() as u64,
            test_function_words: test.function.iter().filter(|&&f| f).count() as u64,
            reference_function_words: reference.function.iter().filter(|&&f| f).count() as u64,
            chunks: count_chunks(matches) as u64,
            ..SentenceStats::default()
        };
        for m in matches.iter().flatten() {
            for i in m.match_start..m.match_start + m.match_length {
                if test.function[i] {
                    stats.test_function_matches[m.module] += 1;
                } else {
                    stats.test_content_matches[m.module] += 1;
                }
            }
            for j in m.start..m.start + m.length {
                if reference.function[j] {
                    stats.reference_function_matches[m.module] += 1;
                } else {
                    stats.reference_content_matches[m.module] += 1;
                }
            }
        }
        stats.test_word_matches = stats.test_total_matches();
        stats.reference_word_matches = stats.reference_total_matches();
        stats
    }

    /// The 23 numbers of the jar's `SCORE` output line, in its order: lengths, function words,
    /// then per module (test content, reference content, test function, reference function),
    /// then chunks and matched words.
    pub fn jar_fields(&self) -> [u64; 23] {
        let mut fields = [0; 23];
        fields[..4].copy_from_slice(&[
            self.test_length,
            self.reference_length,
            self.test_function_words,
            self.reference_function_words,
        ]);
        for m in 0..MODULES {
            fields[4 + 4 * m..8 + 4 * m].copy_from_slice(&[
                self.test_content_matches[m],
                self.reference_content_matches[m],
                self.test_function_matches[m],
                self.reference_function_matches[m],
            ]);
        }
        fields[20..].copy_from_slice(&[
            self.chunks,
            self.test_word_matches,
            self.reference_word_matches,
        ]);
        fields
    }

    fn test_total_matches(&self) -> u64 {
        (0..MODULES)
            .map(|m| self.test_content_matches[m] + self.test_function_matches[m])
            .sum()
    }

    fn reference_total_matches(&self) -> u64 {
        (0..MODULES)
            .map(|m| self.reference_content_matches[m] + self.reference_function_matches[m])
            .sum()
    }

    /// Whether hypothesis and reference match completely in one chunk: no fragmentation
    /// penalty, and the corpus sum leaves the chunk out.
    fn is_perfect(&self) -> bool {
        self.test_total_matches() == self.test_length
            && self.reference_total_matches() == self.reference_length
            && self.chunks == 1
    }

    /// Adds another sentence's statistics (`MeteorStats.addStats`): a perfect sentence adds no
    /// chunk.
    pub(crate) fn add(&mut self, other: &SentenceStats) {
        self.test_length += other.test_length;
        self.reference_length += other.reference_length;
        self.test_function_words += other.test_function_words;
        self.reference_function_words += other.reference_function_words;
        for m in 0..MODULES {
            self.test_content_matches[m] += other.test_content_matches[m];
            self.reference_content_matches[m] += other.reference_content_matches[m];
            self.test_function_matches[m] += other.test_function_matches[m];
            self.reference_function_matches[m] += other.reference_function_matches[m];
        }
        if !other.is_perfect() {
            self.chunks += other.chunks;
        }
        self.test_word_matches += other.test_word_matches;
        self.reference_word_matches += other.reference_word_matches;
    }

    /// `computeMetrics`: the METEOR score of these statistics, operation for operation (the
    /// same floating-point result as the jar's double arithmetic).
    pub fn score(&self) -> f64 {
        let f = |n: u64| n as f64;
        let test_weighted_length = DELTA * (f(self.test_length) - f(self.test_function_words))
            + (1.0 - DELTA) * f(self.test_function_words);
        let reference_weighted_length = DELTA
            * (f(self.reference_length) - f(self.reference_function_words))
            + (1.0 - DELTA) * f(self.reference_function_words);
        // The jar adds content matches then function matches, module by module, into one sum
        // per side; the fold keeps that order of floating-point additions.
        let accumulate = |sum: f64, matches: &[u64; MODULES], word_weight: f64| {
            matches
                .iter()
                .zip(WEIGHTS)
                .fold(sum, |sum, (&n, w)| sum + f(n) * w * word_weight)
        };
        let test_weighted_matches = accumulate(
            accumulate(0.0, &self.test_content_matches, DELTA),
            &self.test_function_matches,
            1.0 - DELTA,
        );
        let reference_weighted_matches = accumulate(
            accumulate(0.0, &self.reference_content_matches, DELTA),
            &self.reference_function_matches,
            1.0 - DELTA,
        );
        let precision = test_weighted_matches / test_weighted_length;
        let recall = reference_weighted_matches / reference_weighted_length;
        let f_mean = 1.0 / (((1.0 - ALPHA) / precision) + (ALPHA / recall));
        let frag = if self.is_perfect() {
            0.0
        } else {
            f(self.chunks) / (f(self.test_word_matches + self.reference_word_matches) / 2.0)
        };
        let frag_penalty = GAMMA * frag.powf(BETA);
        let score = f_mean * (1.0 - frag_penalty);
        // 0/0 (an empty side, no matches) scores 0; so does a negative score.
        if score.is_nan() || score <= 0.0 {
            0.0
        } else {
            score
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn stats(fields: [u64; 23]) -> SentenceStats {
        let mut s = SentenceStats {
            test_length: fields[0],
            reference_length: fields[1],
            test_function_words: fields[2],
            reference_function_words: fields[3],
            chunks: fields[20],
            test_word_matches: fields[21],
            reference_word_matches: fields[22],
            ..SentenceStats::default()
        };
        for m in 0..MODULES {
            s.test_content_matches[m] = fields[4 + 4 * m];
            s.reference_content_matches[m] = fields[5 + 4 * m];
            s.test_function_matches[m] = fields[6 + 4 * m];
            s.reference_function_matches[m] = fields[7 + 4 * m];
        }
        s
    }

    #[test]
    fn jar_fields_round_trip() {
        let fields: [u64; 23] = std::array::from_fn(|i| i as u64 * 3 + 1);
        assert_eq!(stats(fields).jar_fields(), fields);
    }

    #[test]
    fn empty_sides_score_zero() {
        assert_eq!(SentenceStats::default().score(), 0.0);
        let mut s = SentenceStats {
            test_length: 3,
            reference_length: 4,
            ..SentenceStats::default()
        };
        assert_eq!(s.score(), 0.0);
        s.test_length = 0;
        assert_eq!(s.score(), 0.0);
    }

    #[test]
    fn a_perfect_match_has_no_penalty_and_adds_no_chunk() {
        // "a dog runs" against itself: 3 words, "a" a function word, one chunk.
        let mut fields = [0u64; 23];
        fields[..4].copy_from_slice(&[3, 3, 1, 1]);
        fields[4..8].copy_from_slice(&[2, 2, 1, 1]);
        fields[20..].copy_from_slice(&[1, 3, 3]);
        let perfect = stats(fields);
        assert_eq!(perfect.score(), 1.0);
        let mut total = SentenceStats::default();
        total.add(&perfect);
        total.add(&perfect);
        assert_eq!(total.chunks, 0);
        assert_eq!(total.test_length, 6);
        assert_eq!(total.score(), 1.0);
        // The same words in two chunks are penalised, and their chunks are summed.
        let mut split = perfect.clone();
        split.chunks = 2;
        assert!(split.score() < 1.0);
        total.add(&split);
        assert_eq!(total.chunks, 2);
    }
}
