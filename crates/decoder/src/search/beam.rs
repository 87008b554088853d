//! Beam search over a batch of images.
//!
//! Every image keeps `beam_size` partial captions; each step extends all of them with every
//! word, keeps the best `beam_size` continuations per image, and sets aside those that ended
//! with `<end>`. An image is done when it holds `beam_size` finished captions; at `max_len`
//! the unfinished beams are finished as they are, so a model that never says `<end>` still
//! returns its best hypothesis. Hypotheses are ranked by log-probability / length^alpha.
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

/// A finished caption: word ids without `<start>`/`<end>`, and its total log-probability
/// (including the `<end>` step when it ended).
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

    fn rank(&self, hypothesis: &Hypothesis, ended: bool) -> f64 {
        let length = (hypothesis.tokens.len() + usize::from(ended)).max(1) as f64;
        hypothesis.log_prob as f64 / length.powf(self.length_alpha)
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
    // Row i * k + b is beam b of image i.
    let mut state = model.start(&batch.clone().repeat_each(k));
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
            let done = finished[image].len() >= k || beams[image].is_empty();
            let candidates = if done {
                Vec::new()
            } else {
                candidates(&beams[image], image * k, &log_probs, &banned, vocab, k)
            };
            let mut kept = Vec::with_capacity(k);
            let mut ended = Vec::new();
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
                        finished[image].push((config.rank(&hypothesis, true), hypothesis));
                        ended.push(parent);
                    }
                } else if !last_step {
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
            if last_step {
                // Out of steps: beams that did not end here finish as they stand.
                for (_, beam) in beams[image]
                    .iter()
                    .enumerate()
                    .filter(|(p, _)| !ended.contains(p))
                {
                    let hypothesis = beam.clone();
                    finished[image].push((config.rank(&hypothesis, false), hypothesis));
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
        if beams
            .iter()
            .zip(&finished)
            .all(|(b, f)| b.is_empty() || f.len() >= k)
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
