//! Beam search over a batch of images.
//!
//! Every image keeps `beam_size` partial captions; each step extends all of them with every
//! word, keeps the best `beam_size` continuations per image, and sets aside those that ended
//! with `<end>` (an ending counts when it ranks among the best `beam_size` continuations, so
//! beam 1 is greedy). Hypotheses are ranked by log-probability / length^alpha, the length
//! counting the `<end>` token.
//!
//! Two rules decide where the search ends, each chosen so that a caption is never preferred
//! for having been cut short:
//! - **At `max_len`** every unfinished beam is finished with a forced `<end>`, whose
//!   log-probability it pays (fairseq's rule): a caption cut at the limit is scored as the
//!   model's probability of saying exactly it, like every finished one. Without that term a
//!   truncated caption, spared the cost of ending, could outrank a finished one.
//! - **An image stops early** only when its best finished caption ranks at least as high as
//!   anything a live beam could still reach: its log-probability can only fall, and its length
//!   can reach `max_len + 1`, so a beam with log-probability `L` can score at most
//!   `L / (max_len + 1)^alpha` (`L` itself when `alpha = 0`). Stopping then gives the same
//!   caption as searching every step to `max_len`. (Stopping at `beam_size` finished captions,
//!   as before, could drop a live beam that was on its way to a better one.)
//!
//! All images advance together through one `[images * beam_size, vocab]` step of the model.

use burn::tensor::backend::Backend;
use burn::tensor::{Int, Tensor, TensorData};
use contracts::vocab::{END, START};

use super::banned_tokens_mask;
use super::steps::host_rows;
use crate::model::{CaptionModel, DecodeState, Images};

/// How to search.
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct BeamConfig {
    pub beam_size: usize,
    /// Most words in a caption (`<end>` not counted).
    pub max_len: usize,
    /// Length normalisation exponent (0: plain log-probability).
    pub length_alpha: f64,
    pub suppress_unk: bool,
}

/// A finished caption: word ids without `<start>`/`<end>`, and its total log-probability,
/// the `<end>` step included (forced at `max_len`).
#[derive(Debug, Clone, PartialEq)]
pub struct Hypothesis {
    pub tokens: Vec<u32>,
    pub log_prob: f32,
    /// For a model with attention, where it looked for each word (`[regions]` each); empty
    /// otherwise.
    pub attention: Vec<Vec<f32>>,
}

/// A caption being extended.
type Beam = Hypothesis;

impl BeamConfig {
    /// The `[evaluator]` settings (shared by the evaluator and `caption`).
    pub fn from_config(config: &contracts::config::EvaluatorConfig) -> Self {
        Self {
            beam_size: config.beam_size,
            max_len: config.max_len,
            length_alpha: config.length_alpha,
            suppress_unk: config.suppress_unk,
        }
    }

    /// A finished hypothesis's score: log-probability / (words + `<end>`)^alpha.
    fn rank(&self, hypothesis: &Hypothesis) -> f64 {
        let length = (hypothesis.tokens.len() + 1) as f64;
        f64::from(hypothesis.log_prob) / length.powf(self.length_alpha)
    }

    /// The highest score a live beam can still reach (see the module's doc).
    fn bound(&self, beam: &Beam) -> f64 {
        let longest = (self.max_len + 1) as f64;
        f64::from(beam.log_prob) / longest.powf(self.length_alpha)
    }

    /// Whether no live beam can outrank the best finished hypothesis any more.
    fn settled(&self, finished: &[(f64, Hypothesis)], beams: &[Beam]) -> bool {
        let best = finished
            .iter()
            .map(|(score, _)| *score)
            .fold(f64::NEG_INFINITY, f64::max);
        beams.iter().all(|beam| self.bound(beam) <= best)
    }
}

/// The best caption of each of `batch`'s images.
pub fn beam_search<B: Backend, M: CaptionModel<B>>(
    model: &M,
    batch: &Images<B>,
    config: &BeamConfig,
) -> Vec<Hypothesis> {
    let images = batch.len();
    let k = config.beam_size.max(1);
    let device = batch.pooled.device();
    if images == 0 {
        return Vec::new();
    }
    let vocab = model.vocab_size();
    let banned: Vec<f32> = banned_tokens_mask::<B>(vocab, config.suppress_unk, &device)
        .into_data()
        .to_vec()
        .unwrap_or_default();
    // Row i * k + b is beam b of image i: the model starts once per image (a Transformer
    // encodes each image once), and the state is copied to the image's k rows.
    let copies: Vec<i64> = (0..images * k).map(|row| (row / k) as i64).collect();
    let copies = Tensor::<B, 1, Int>::from_data(TensorData::new(copies, [images * k]), &device);
    let mut state = model.start(batch).select(copies);
    // Only beam 0 of each image is alive at first, so the k copies do not all expand alike.
    let mut beams: Vec<Vec<Beam>> = vec![
        vec![Beam {
            tokens: Vec::new(),
            log_prob: 0.0,
            attention: Vec::new(),
        }];
        images
    ];
    let mut finished: Vec<Vec<(f64, Hypothesis)>> = vec![Vec::new(); images];
    let mut tokens = vec![START; images * k];
    for step in 0..=config.max_len {
        let input = Tensor::<B, 1, Int>::from_data(
            TensorData::new(
                tokens.iter().map(|&t| t as i64).collect::<Vec<_>>(),
                [images * k],
            ),
            &device,
        );
        let (log_probs, next) = model.step(input, state);
        let attention = next.attention().map(host_rows);
        let log_probs: Vec<f32> = log_probs
            .into_data()
            .convert::<f32>()
            .to_vec()
            .unwrap_or_default();
        let last_step = step == config.max_len;
        let mut rows = Vec::with_capacity(images * k);
        for image in 0..images {
            let done = beams[image].is_empty() || config.settled(&finished[image], &beams[image]);
            let mut kept = Vec::with_capacity(k);
            if done {
                beams[image].clear();
            } else if last_step {
                // Out of steps: every beam ends here, paying for its `<end>`.
                for (parent, beam) in beams[image].iter().enumerate() {
                    let row = (image * k + parent) * vocab;
                    let hypothesis = Hypothesis {
                        log_prob: beam.log_prob + log_probs[row + END as usize],
                        ..beam.clone()
                    };
                    finished[image].push((config.rank(&hypothesis), hypothesis));
                }
            } else {
                let candidates =
                    candidates(&beams[image], image * k, &log_probs, &banned, vocab, k);
                for (rank, (parent, token, log_prob)) in candidates.into_iter().enumerate() {
                    if kept.len() == k {
                        break;
                    }
                    if token == END {
                        // Only an ending that ranks among the best k counts (so beam 1 = greedy).
                        if rank < k {
                            let hypothesis = Hypothesis {
                                log_prob,
                                ..beams[image][parent].clone()
                            };
                            finished[image].push((config.rank(&hypothesis), hypothesis));
                        }
                    } else {
                        let mut beam = Beam {
                            log_prob,
                            ..beams[image][parent].clone()
                        };
                        beam.tokens.push(token);
                        if let Some(attention) = &attention {
                            beam.attention.push(attention[image * k + parent].clone());
                        }
                        kept.push((parent, beam));
                    }
                }
            }
            let parents: Vec<usize> = kept.iter().map(|(p, _)| image * k + p).collect();
            beams[image] = kept.into_iter().map(|(_, beam)| beam).collect();
            // Dead rows copy row 0 of the image; their beams are not tracked.
            for b in 0..k {
                rows.push(parents.get(b).copied().unwrap_or(image * k));
                tokens[image * k + b] = beams[image]
                    .get(b)
                    .and_then(|beam| beam.tokens.last().copied())
                    .unwrap_or(START);
            }
        }
        if last_step
            || beams
                .iter()
                .zip(&finished)
                .all(|(b, f)| b.is_empty() || config.settled(f, b))
        {
            break;
        }
        let rows = Tensor::<B, 1, Int>::from_data(
            TensorData::new(
                rows.iter().map(|&r| r as i64).collect::<Vec<_>>(),
                [images * k],
            ),
            &device,
        );
        state = next.select(rows);
    }
    finished
        .into_iter()
        .map(|mut done| {
            done.sort_by(|a, b| b.0.total_cmp(&a.0));
            done.into_iter()
                .next()
                .map(|(_, h)| h)
                .unwrap_or(Hypothesis {
                    tokens: Vec::new(),
                    log_prob: f32::NEG_INFINITY,
                    attention: Vec::new(),
                })
        })
        .collect()
}

/// The best `2k` (parent beam, token, total log-prob) continuations of one image's beams,
/// best first; ties go to the lower beam, then the lower token id, as greedy's argmax does.
fn candidates(
    beams: &[Beam],
    first_row: usize,
    log_probs: &[f32],
    banned: &[f32],
    vocab: usize,
    k: usize,
) -> Vec<(usize, u32, f32)> {
    let mut all: Vec<(usize, u32, f32)> = Vec::with_capacity(beams.len() * vocab);
    for (b, beam) in beams.iter().enumerate() {
        let row = &log_probs[(first_row + b) * vocab..(first_row + b + 1) * vocab];
        all.extend(
            row.iter()
                .zip(banned)
                .enumerate()
                .filter(|(_, (_, ban))| ban.is_finite())
                .map(|(t, (lp, _))| (b, t as u32, beam.log_prob + lp)),
        );
    }
    let order = |a: &(usize, u32, f32), b: &(usize, u32, f32)| {
        b.2.total_cmp(&a.2).then(a.0.cmp(&b.0)).then(a.1.cmp(&b.1))
    };
    let keep = (2 * k).min(all.len());
    if keep < all.len() {
        all.select_nth_unstable_by(keep, order);
        all.truncate(keep);
    }
    all.sort_by(order);
    all
}

#[cfg(test)]
mod tests {
    use burn::backend::Flex;
    use burn::module::Param;

    use super::*;
    use crate::captioner::Architecture;
    use crate::merge::{MergeConfig, MergeModel};
    use crate::{FeatureStats, greedy};

    type B = Flex;

    fn model(seed: u64) -> MergeModel<B> {
        let config = MergeConfig {
            vocab_size: 12,
            feature_dim: 6,
            embed_dim: 8,
            hidden_dim: 10,
            dropout: 0.0,
            merge: true,
        };
        config
            .init::<B>(&FeatureStats::identity(6), seed, &Default::default())
            .unwrap()
    }

    fn features(images: usize) -> Images<B> {
        let values: Vec<f32> = (0..images * 6)
            .map(|i| ((i * 37 % 11) as f32 - 5.0) / 3.0)
            .collect();
        Images::pooled(Tensor::from_data(
            TensorData::new(values, [images, 6]),
            &Default::default(),
        ))
    }

    fn config(beam_size: usize) -> BeamConfig {
        BeamConfig {
            beam_size,
            max_len: 8,
            length_alpha: 0.0,
            suppress_unk: true,
        }
    }

    #[test]
    fn beam_of_one_is_greedy() {
        for seed in 0..5 {
            let model = model(seed);
            let beams: Vec<Vec<u32>> = beam_search(&model, &features(4), &config(1))
                .into_iter()
                .map(|h| h.tokens)
                .collect();
            assert_eq!(beams, greedy(&model, &features(4), 8, true), "seed {seed}");
        }
    }

    #[test]
    fn batched_and_one_at_a_time_agree() {
        let model = model(3);
        let batched = beam_search(&model, &features(5), &config(3));
        let data: Vec<f32> = features(5).pooled.into_data().to_vec().unwrap();
        for (i, expected) in batched.iter().enumerate() {
            let one = Images::pooled(Tensor::<B, 2>::from_data(
                TensorData::new(data[i * 6..(i + 1) * 6].to_vec(), [1, 6]),
                &Default::default(),
            ));
            let alone = beam_search(&model, &one, &config(3));
            assert_eq!(alone[0].tokens, expected.tokens, "image {i}");
            assert!((alone[0].log_prob - expected.log_prob).abs() < 1e-4);
        }
    }

    #[test]
    fn wider_beams_never_find_worse_captions_than_greedy_here() {
        let model = model(1);
        let greedy = beam_search(&model, &features(6), &config(1));
        let wide = beam_search(&model, &features(6), &config(4));
        for (g, w) in greedy.iter().zip(&wide) {
            assert!(
                w.log_prob >= g.log_prob - 1e-5,
                "beam 4 {w:?} vs greedy {g:?}"
            );
        }
    }

    /// A model whose next-token distribution depends on the previous token alone, written
    /// out by hand, so that every beam's log-probability can be worked out on paper. Tokens:
    /// 0 `<pad>`, 1 `<start>`, 2 `<end>`, 3 `<unk>`, 4 "a", 5 "b", 6 "c", 7 "d".
    struct Bigram {
        /// `[vocab, vocab]`: row `t` holds `log p(next | previous = t)`.
        table: Tensor<B, 2>,
    }

    #[derive(Debug, Clone)]
    struct NoState;

    impl DecodeState<B> for NoState {
        fn select(self, _: Tensor<B, 1, Int>) -> Self {
            self
        }
    }

    impl Bigram {
        const VOCAB: usize = 8;

        /// `rows`: (previous token, [(next token, probability)]); anything unlisted has
        /// probability 1e-9.
        fn new(rows: &[(u32, &[(u32, f64)])]) -> Self {
            let mut table = vec![1e-9f64.ln() as f32; Self::VOCAB * Self::VOCAB];
            for (previous, next) in rows {
                for &(token, p) in *next {
                    table[*previous as usize * Self::VOCAB + token as usize] = p.ln() as f32;
                }
            }
            let shape = [Self::VOCAB, Self::VOCAB];
            Self {
                table: Tensor::from_data(TensorData::new(table, shape), &Default::default()),
            }
        }
    }

    impl CaptionModel<B> for Bigram {
        type State = NoState;

        fn vocab_size(&self) -> usize {
            Self::VOCAB
        }

        fn start(&self, _: &Images<B>) -> NoState {
            NoState
        }

        fn step(&self, tokens: Tensor<B, 1, Int>, state: NoState) -> (Tensor<B, 2>, NoState) {
            (self.table.clone().select(0, tokens), state)
        }

        fn loss(&self, _: &Images<B>, _: &crate::TeacherBatch<B>) -> Tensor<B, 1> {
            unreachable!("search only")
        }
    }

    const A: u32 = 4;
    const B_: u32 = 5;
    const C: u32 = 6;
    const D: u32 = 7;

    /// The one caption of one image, with `beam_size` 2.
    fn search(model: &Bigram, max_len: usize, length_alpha: f64) -> Hypothesis {
        let image = Images::pooled(Tensor::<B, 2>::zeros([1, 1], &Default::default()));
        let config = BeamConfig {
            beam_size: 2,
            max_len,
            length_alpha,
            suppress_unk: true,
        };
        beam_search(model, &image, &config).remove(0)
    }

    fn assert_found(found: &Hypothesis, tokens: &[u32], probability: f64) {
        assert_eq!(found.tokens, tokens, "{found:?}");
        let expected = probability.ln() as f32;
        assert!(
            (found.log_prob - expected).abs() < 1e-5,
            "{} vs {expected}",
            found.log_prob
        );
    }

    /// At max_len 2: "a a" is likely (0.5 * 0.99) but almost never ends (0.01), "b" ends at
    /// once (0.5 * 0.6). Cut off "as it stands", "a a" would win with 0.495; paying for its
    /// `<end>` it has 0.00495, and "b b" 0.5 * 0.4 * 0.6 = 0.12, so "b" (0.3) is the caption.
    #[test]
    fn a_caption_cut_at_max_len_pays_for_its_end() {
        let model = Bigram::new(&[
            (START, &[(A, 0.5), (B_, 0.5)]),
            (A, &[(A, 0.99), (END, 0.01)]),
            (B_, &[(END, 0.6), (B_, 0.4)]),
        ]);
        assert_found(&search(&model, 2, 0.0), &[B_], 0.3);
        // With room to end, nothing is forced: "a a" still ends at 0.00495, "b" wins the same.
        assert_found(&search(&model, 5, 0.0), &[B_], 0.3);
    }

    /// Two captions finish before the best one: "b" (0.4 * 0.5 = 0.2) at the second step
    /// and "a c" (0.6 * 0.9 * 0.3 = 0.162) at the third, while "a c d" (0.378) is still live
    /// and ends with 0.99: 0.37422. Stopping at two finished captions returned "b".
    #[test]
    fn the_search_goes_on_while_a_live_beam_can_still_win() {
        let model = Bigram::new(&[
            (START, &[(A, 0.6), (B_, 0.4)]),
            (A, &[(C, 0.9), (END, 0.1)]),
            (B_, &[(END, 0.5), (B_, 0.5)]),
            (C, &[(D, 0.7), (END, 0.3)]),
            (D, &[(END, 0.99), (D, 0.01)]),
        ]);
        assert_found(&search(&model, 5, 0.0), &[A, C, D], 0.6 * 0.9 * 0.7 * 0.99);
    }

    /// With alpha 1, "b" ends at the second step with ln(0.36) / 2 = -0.511. The live beam
    /// "a c" (ln 0.2 = -1.609) would score -1.609 / 3 = -0.536 if it ended now, below "b",
    /// but each certain word it adds raises its score: "a c d" ends with -1.609 / 4 = -0.402
    /// and wins. The bound that lets the search stop is a beam's score at `max_len`
    /// (-1.609 / 9), not at its present length.
    #[test]
    fn a_live_beam_that_gains_by_growing_keeps_the_search_going() {
        let model = Bigram::new(&[
            (START, &[(B_, 0.36), (A, 0.2)]),
            (B_, &[(END, 1.0)]),
            (A, &[(C, 1.0)]),
            (C, &[(D, 1.0)]),
            (D, &[(END, 1.0)]),
        ]);
        assert_found(&search(&model, 8, 1.0), &[A, C, D], 0.2);
    }

    /// "a" ends with 0.6 * 0.5 = 0.3; "b c" with 0.4 * 1.0 * 0.625 = 0.25; "a c" with 0.1875;
    /// "b c d" with 0.4 * 0.375 * 0.99 = 0.1485. By log-probability "a" wins; per token
    /// (alpha 1, `<end>` counted) "b c" does: ln(0.25) / 3 = -0.462 against ln(0.3) / 2 =
    /// -0.602, ln(0.1875) / 3 = -0.558 and ln(0.1485) / 4 = -0.477.
    #[test]
    fn length_normalisation_ranks_by_log_probability_per_token() {
        let model = Bigram::new(&[
            (START, &[(A, 0.6), (B_, 0.4)]),
            (A, &[(END, 0.5), (C, 0.5)]),
            (B_, &[(C, 1.0)]),
            (C, &[(END, 0.625), (D, 0.375)]),
            (D, &[(END, 0.99), (D, 0.01)]),
        ]);
        assert_found(&search(&model, 5, 0.0), &[A], 0.3);
        assert_found(&search(&model, 5, 1.0), &[B_, C], 0.4 * 0.625);
    }

    #[test]
    fn a_model_that_never_ends_returns_max_len_words() {
        let mut model = model(2);
        // Make <end> impossible: a huge negative bias on its logit.
        let mut bias: Vec<f32> = model
            .output
            .bias
            .as_ref()
            .unwrap()
            .val()
            .into_data()
            .to_vec()
            .unwrap();
        bias[END as usize] = -1e9;
        model.output.bias = Some(Param::from_tensor(Tensor::from_data(
            TensorData::new(bias, [12]),
            &Default::default(),
        )));
        for k in [1, 3] {
            let out = beam_search(&model, &features(3), &config(k));
            assert!(
                out.iter()
                    .all(|h| h.tokens.len() == 8 && h.log_prob.is_finite()),
                "beam {k}: {out:?}"
            );
            assert!(
                out.iter()
                    .all(|h| !h.tokens.contains(&END) && !h.tokens.contains(&START))
            );
        }
    }
}
