//! Captions sampled from the model's own distribution, word by word (multinomial), for
//! self-critical training.

use burn::tensor::backend::Backend;
use contracts::vocab::{END, START};
use rand::{Rng, RngCore};

use super::steps::decode_steps;
use crate::model::{CaptionModel, Images};

/// A sampled caption: word ids without `<start>`/`<end>`, and whether it ended with `<end>`
/// (or ran into `max_len`).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Sampled {
    pub tokens: Vec<u32>,
    pub ended: bool,
}

impl Sampled {
    /// The caption as a training sequence: `<start> w1 .. wn`, then `<end>` if it ended.
    pub fn sequence(&self) -> Vec<u32> {
        let mut ids = Vec::with_capacity(self.tokens.len() + 2);
        ids.push(START);
        ids.extend(&self.tokens);
        if self.ended {
            ids.push(END);
        }
        ids
    }
}

/// `copies` sampled captions of each image of `images` (image-major), at most `max_len` words,
/// every draw from `rng` (rows in order, one uniform number per row and step: reproducible
/// from a seed). `<pad>` and `<start>` are never drawn, `<unk>` not when `suppress_unk` is
/// set.
pub fn sample<B: Backend, M: CaptionModel<B>>(
    model: &M,
    images: &Images<B>,
    copies: usize,
    max_len: usize,
    suppress_unk: bool,
    rng: &mut dyn RngCore,
) -> Vec<Sampled> {
    let draw_rows = |log_probs: burn::tensor::Tensor<B, 2>| -> Vec<u32> {
        let vocab = log_probs.dims()[1];
        let values: Vec<f32> = log_probs
            .into_data()
            .convert::<f32>()
            .to_vec()
            .unwrap_or_default();
        values.chunks(vocab).map(|row| draw(row, rng)).collect()
    };
    decode_steps(model, images, copies, max_len, suppress_unk, draw_rows)
        .into_iter()
        .map(|written| Sampled {
            tokens: written.tokens,
            ended: written.ended,
        })
        .collect()
}

/// A token drawn with probability `softmax(log_probs)`, by inverting the cumulative sum.
fn draw(log_probs: &[f32], rng: &mut dyn RngCore) -> u32 {
    let max = log_probs.iter().copied().fold(f32::NEG_INFINITY, f32::max);
    let weights: Vec<f64> = log_probs
        .iter()
        .map(|&lp| f64::from(lp - max).exp())
        .collect();
    let mut left = rng.random::<f64>() * weights.iter().sum::<f64>();
    for (token, &w) in weights.iter().enumerate() {
        if left < w {
            return token as u32;
        }
        left -= w;
    }
    // Rounding left a sliver past the last weight: the last possible token.
    weights.iter().rposition(|&w| w > 0.0).unwrap_or(0) as u32
}

#[cfg(test)]
mod tests {
    use super::*;
    use rand::SeedableRng;
    use rand_chacha::ChaCha8Rng;

    #[test]
    fn draws_follow_the_distribution_and_never_a_banned_token() {
        let log_probs = [f32::NEG_INFINITY, 0.5f32.ln(), 0.25f32.ln(), 0.25f32.ln()];
        let mut rng = ChaCha8Rng::seed_from_u64(3);
        let mut counts = [0usize; 4];
        for _ in 0..20_000 {
            counts[draw(&log_probs, &mut rng) as usize] += 1;
        }
        assert_eq!(counts[0], 0);
        let share = |c: usize| c as f64 / 20_000.0;
        assert!((share(counts[1]) - 0.5).abs() < 0.02, "{counts:?}");
        assert!((share(counts[2]) - 0.25).abs() < 0.02, "{counts:?}");
    }

    #[test]
    fn a_sampled_caption_becomes_a_training_sequence() {
        let ended = Sampled {
            tokens: vec![7, 9],
            ended: true,
        };
        assert_eq!(ended.sequence(), [START, 7, 9, END]);
        let cut = Sampled {
            tokens: vec![7],
            ended: false,
        };
        assert_eq!(cut.sequence(), [START, 7]);
    }
}
