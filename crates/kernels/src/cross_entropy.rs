//! The output layer's softmax cross-entropy and the gradient of its logits, in one pass.
//!
//! The logits of a Flickr8k batch are `[tokens, vocab]`, about 6 million values. As tensor
//! operations, adding the bias and the image part, the max, exp, sum, the division and the
//! column sums for the bias and image gradients are ten passes over them; on the CPU backend
//! each runs on one thread (40 ms a step here). On the CPU, [`loss_and_grads`] makes one
//! multi-threaded pass over the rows, and one over column blocks for the sums; elsewhere it
//! runs the same arithmetic as tensor operations.

use burn::tensor::backend::Backend;
use burn::tensor::{IndexingUpdateOp, Int, Tensor, TensorData};
use rayon::prelude::*;
use wide::f32x8;

use crate::backend::is_host;

/// Vocabulary columns per work item of the column sums.
const COLUMN_BLOCK: usize = 256;

/// The output layer's logits before their additive terms.
pub struct Logits<B: Backend> {
    /// `[tokens, vocab]`: the LSTM part, without the bias, in blocks of consecutive rows.
    pub hidden_part: Vec<Tensor<B, 2>>,
    /// `[vocab]`
    pub bias: Tensor<B, 1>,
    /// `[batch, vocab]`: the image part of each caption (merge model), added to its rows.
    pub image_part: Option<Tensor<B, 2>>,
    /// `[tokens]`: the caption of each row; `None`: rows are `steps * batch`, time-major.
    pub row_captions: Option<Tensor<B, 1, Int>>,
    /// `[tokens]`
    pub targets: Tensor<B, 1, Int>,
    /// `[tokens]`: each row's weight in the mean (self-critical training's advantages);
    /// `None`: every row weighs 1.
    pub weights: Option<Vec<f32>>,
    /// Vocabulary columns outside the distribution (set to `-inf` before the softmax, so the
    /// others' probabilities are renormalised over what remains and these get no gradient):
    /// the tokens self-critical sampling never draws. Empty: the full softmax.
    pub banned: Vec<usize>,
}

/// The gradients of the (weighted) mean cross-entropy.
pub struct LogitGrads<B: Backend> {
    /// `[tokens, vocab]`: `(softmax - onehot(target)) / tokens`.
    pub logits: Tensor<B, 2>,
    /// `[vocab]`: the column sums of `logits`.
    pub bias: Tensor<B, 1>,
    /// `[batch, vocab]`: the sums of each caption's rows of `logits`.
    pub image_part: Option<Tensor<B, 2>>,
}

/// Mean over rows of `weight * -log softmax(hidden_part + bias + image_part)[target]` (`[1]`),
/// the softmax taken over the columns that are not `banned`.
pub fn loss<B: Backend>(logits: Logits<B>) -> Tensor<B, 1> {
    if is_host::<B>() {
        fused_rows(logits, false).loss()
    } else {
        TensorForward::new(logits).loss
    }
}

/// [`loss`] and its gradients.
pub fn loss_and_grads<B: Backend>(logits: Logits<B>) -> (Tensor<B, 1>, LogitGrads<B>) {
    if is_host::<B>() {
        let rows = fused_rows(logits, true);
        (rows.loss(), rows.grads())
    } else {
        TensorForward::new(logits).grads()
    }
}

/// Each row's caption index, as plain numbers.
fn row_captions<B: Backend>(logits: &Logits<B>, tokens: usize, batch: usize) -> Vec<usize> {
    match &logits.row_captions {
        Some(index) => index
            .clone()
            .into_data()
            .iter::<i64>()
            .map(|c| c as usize)
            .collect(),
        None => (0..tokens).map(|r| r % batch).collect(),
    }
}

/// Replaces each value `x` of `row` by `exp(x - max)` and returns their sum, eight lanes at
/// a time (with libm's scalar `expf` the fused pass took 18.5 ms a batch here, with this 15).
fn exp_shifted(row: &mut [f32], max: f32) -> f32 {
    let (lanes, rest) = row.as_chunks_mut::<8>();
    let shift = f32x8::splat(max);
    let mut sums = f32x8::ZERO;
    for chunk in lanes {
        let exp = (f32x8::new(*chunk) - shift).exp();
        *chunk = exp.to_array();
        sums += exp;
    }
    let mut sum = sums.reduce_add();
    for value in rest {
        *value = (*value - max).exp();
        sum += *value;
    }
    sum
}

/// Row blocks as one buffer (no copy for a single block).
fn join_rows<B: Backend>(mut blocks: Vec<Tensor<B, 2>>, shape: [usize; 2]) -> TensorData {
    if blocks.len() == 1 {
        return blocks.remove(0).into_data();
    }
    let mut values = Vec::with_capacity(shape[0] * shape[1]);
    for block in blocks {
        values.extend_from_slice(block.into_data().as_slice::<f32>().expect("f32 logits"));
    }
    TensorData::new(values, shape)
}

/// The CPU path's pass over the rows: the mean loss and, when `into_grads`, every row turned
/// into its gradient `(softmax - onehot(target)) / tokens` in place.
struct FusedRows<B: Backend> {
    device: B::Device,
    mean: f64,
    /// `[tokens, vocab]`
    data: TensorData,
    captions: Vec<usize>,
    vocab: usize,
    /// Captions of the image part (`None` without one).
    image_batch: Option<usize>,
}

fn fused_rows<B: Backend>(logits: Logits<B>, into_grads: bool) -> FusedRows<B> {
    let device = logits.bias.device();
    let vocab = logits.bias.dims()[0];
    let tokens = logits.targets.dims()[0];
    let image_batch = logits.image_part.as_ref().map(|t| t.dims()[0]);
    let captions = row_captions(&logits, tokens, image_batch.unwrap_or(1));
    let targets: Vec<usize> = logits
        .targets
        .into_data()
        .iter::<i64>()
        .map(|t| t as usize)
        .collect();
    let weights = logits.weights.unwrap_or_else(|| vec![1.0; tokens]);
    let banned = logits.banned;
    let bias = logits.bias.into_data();
    let bias = bias.as_slice::<f32>().expect("f32 logits");
    let image = logits.image_part.map(Tensor::into_data);
    let image = image
        .as_ref()
        .map(|d| d.as_slice::<f32>().expect("f32 logits"));
    let mut data = join_rows(logits.hidden_part, [tokens, vocab]);
    let values = data.as_mut_slice::<f32>().expect("f32 logits");

    // Per-row losses in row order, summed below in a fixed order: reproducible.
    let row_losses: Vec<f64> = values
        .par_chunks_mut(vocab)
        .zip(targets.par_iter())
        .zip(captions.par_iter())
        .zip(weights.par_iter())
        .map(|(((row, &target), &caption), &weight)| {
            let scale = weight / tokens as f32;
            for (value, b) in row.iter_mut().zip(bias) {
                *value += b;
            }
            if let Some(image) = image {
                let part = &image[caption * vocab..(caption + 1) * vocab];
                for (value, p) in row.iter_mut().zip(part) {
                    *value += p;
                }
            }
            for &column in &banned {
                row[column] = f32::NEG_INFINITY;
            }
            let max = row.iter().copied().fold(f32::NEG_INFINITY, f32::max);
            let picked = row[target] - max;
            let sum = exp_shifted(row, max);
            if into_grads {
                let factor = scale / sum;
                for value in row.iter_mut() {
                    *value *= factor;
                }
                row[target] -= scale;
            }
            f64::from(weight) * f64::from(sum.ln() - picked)
        })
        .collect();
    FusedRows {
        device,
        mean: row_losses.iter().sum::<f64>() / tokens as f64,
        data,
        captions,
        vocab,
        image_batch,
    }
}

impl<B: Backend> FusedRows<B> {
    fn loss(&self) -> Tensor<B, 1> {
        Tensor::from_data(TensorData::new(vec![self.mean as f32], [1]), &self.device)
    }

    /// The gradients of rows [`fused_rows`] turned into gradients: the logits' own, and in one
    /// pass over column blocks the bias's and the image part's (per-caption row sums).
    fn grads(self) -> LogitGrads<B> {
        let Self {
            device,
            data,
            captions,
            vocab,
            image_batch,
            ..
        } = self;
        let values = data.as_slice::<f32>().expect("f32 logits");
        let image_rows = image_batch.unwrap_or(0);
        // Per column block: the bias gradient and the per-caption sums, rows added in order.
        let blocks: Vec<(Vec<f32>, Vec<f32>)> = (0..vocab.div_ceil(COLUMN_BLOCK))
            .into_par_iter()
            .map(|block| {
                let start = block * COLUMN_BLOCK;
                let width = COLUMN_BLOCK.min(vocab - start);
                let mut bias = vec![0.0f32; width];
                let mut image = vec![0.0f32; image_rows * width];
                for (r, &caption) in captions.iter().enumerate() {
                    let row = &values[r * vocab + start..r * vocab + start + width];
                    for (sum, v) in bias.iter_mut().zip(row) {
                        *sum += v;
                    }
                    if image_batch.is_some() {
                        let sums = &mut image[caption * width..(caption + 1) * width];
                        for (sum, v) in sums.iter_mut().zip(row) {
                            *sum += v;
                        }
                    }
                }
                (bias, image)
            })
            .collect();
        let mut bias_grad = Vec::with_capacity(vocab);
        let mut image_grad = vec![0.0f32; image_rows * vocab];
        for (block, (bias, image)) in blocks.iter().enumerate() {
            let start = block * COLUMN_BLOCK;
            bias_grad.extend_from_slice(bias);
            for (caption, sums) in image.chunks(bias.len()).enumerate() {
                image_grad[caption * vocab + start..caption * vocab + start + sums.len()]
                    .copy_from_slice(sums);
            }
        }
        LogitGrads {
            logits: Tensor::from_data(data, &device),
            bias: Tensor::from_data(TensorData::new(bias_grad, [vocab]), &device),
            image_part: image_batch.map(|batch| {
                Tensor::from_data(TensorData::new(image_grad, [batch, vocab]), &device)
            }),
        }
    }
}

/// The same computation as tensor operations, for any backend: the forward part, kept for
/// the gradients.
struct TensorForward<B: Backend> {
    loss: Tensor<B, 1>,
    /// `[tokens, vocab]`: `exp(logits - max)` and `[tokens, 1]` its row sums.
    exp: Tensor<B, 2>,
    sum: Tensor<B, 2>,
    /// `[tokens, 1]`
    targets: Tensor<B, 2, Int>,
    image_part: Option<Tensor<B, 2>>,
    row_captions: Option<Tensor<B, 1, Int>>,
    /// `[tokens, 1]`, when the rows are weighted.
    weights: Option<Tensor<B, 2>>,
}

impl<B: Backend> TensorForward<B> {
    fn new(logits: Logits<B>) -> Self {
        let mut values = Tensor::cat(logits.hidden_part, 0) + logits.bias.unsqueeze_dim(0);
        let [tokens, vocab] = values.dims();
        if let Some(image) = &logits.image_part {
            let batch = image.dims()[0];
            values = match &logits.row_captions {
                Some(index) => values + image.clone().select(0, index.clone()),
                // [steps, batch * vocab] + [1, batch * vocab]: one row per step, broadcast.
                None => (values.reshape([tokens / batch, batch * vocab])
                    + image.clone().reshape([1, batch * vocab]))
                .reshape([tokens, vocab]),
            };
        }
        if !logits.banned.is_empty() {
            let mut mask = vec![0f32; vocab];
            for &column in &logits.banned {
                mask[column] = f32::NEG_INFINITY;
            }
            let mask = Tensor::<B, 1>::from_data(TensorData::new(mask, [vocab]), &values.device());
            values = values + mask.unsqueeze_dim(0);
        }
        let targets = logits.targets.reshape([tokens, 1]);
        // [tokens, 1]: the shift keeps exp() finite and cancels out of the loss.
        let max = values.clone().max_dim(1);
        let shifted = values - max;
        let picked = shifted.clone().gather(1, targets.clone());
        let exp = shifted.exp();
        let sum = exp.clone().sum_dim(1);
        let device = sum.device();
        let weights = logits
            .weights
            .map(|w| Tensor::<B, 2>::from_data(TensorData::new(w, [tokens, 1]), &device));
        let row_losses = sum.clone().log() - picked;
        let loss = match &weights {
            Some(w) => (row_losses * w.clone()).mean(),
            None => row_losses.mean(),
        };
        Self {
            loss,
            exp,
            sum,
            targets,
            image_part: logits.image_part,
            row_captions: logits.row_captions,
            weights,
        }
    }

    fn grads(self) -> (Tensor<B, 1>, LogitGrads<B>) {
        let [tokens, vocab] = self.exp.dims();
        let scale = 1.0 / tokens as f64;
        let minus = Tensor::<B, 2>::full([tokens, 1], -scale, &self.exp.device());
        let mut d_logits = (self.exp / self.sum.mul_scalar(tokens as f64)).scatter(
            1,
            self.targets,
            minus,
            IndexingUpdateOp::Add,
        );
        if let Some(weights) = self.weights {
            d_logits = d_logits * weights;
        }
        let bias = d_logits.clone().sum_dim(0).reshape([vocab]);
        let row_captions = self.row_captions;
        let image_part = self.image_part.map(|image| {
            let batch = image.dims()[0];
            match row_captions {
                Some(index) => Tensor::zeros([batch, vocab], &image.device()).select_assign(
                    0,
                    index,
                    d_logits.clone(),
                    IndexingUpdateOp::Add,
                ),
                // The sum over steps as a product with ones: a reduction along the outer
                // dimension of a [steps, batch * vocab] tensor is a slow strided walk.
                None => {
                    let steps = tokens / batch;
                    Tensor::<B, 2>::ones([1, steps], &d_logits.device())
                        .matmul(d_logits.clone().reshape([steps, batch * vocab]))
                        .reshape([batch, vocab])
                }
            }
        });
        let grads = LogitGrads {
            logits: d_logits,
            bias,
            image_part,
        };
        (self.loss, grads)
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::backend::Cpu;
    use burn::tensor::Distribution;

    fn ints(values: &[i64], device: &burn::tensor::Device<Cpu>) -> Tensor<Cpu, 1, Int> {
        Tensor::from_data(TensorData::new(values.to_vec(), [values.len()]), device)
    }

    /// Six rows over a batch of three captions, vocabulary 700 (three column blocks).
    fn logits(with_image: bool, indexed: bool) -> Logits<Cpu> {
        let device = Default::default();
        let normal = Distribution::Normal(0.0, 3.0);
        let (tokens, batch, vocab) = (6, 3, 700);
        Logits {
            // Two blocks, as the training head cuts long batches.
            hidden_part: vec![
                Tensor::random([4, vocab], normal, &device),
                Tensor::random([tokens - 4, vocab], normal, &device),
            ],
            bias: Tensor::random([vocab], normal, &device),
            image_part: with_image.then(|| Tensor::random([batch, vocab], normal, &device)),
            row_captions: indexed.then(|| ints(&[0, 2, 1, 2, 0, 0], &device)),
            targets: ints(&[5, 699, 0, 42, 42, 300], &device),
            weights: None,
            banned: Vec::new(),
        }
    }

    fn clone(l: &Logits<Cpu>) -> Logits<Cpu> {
        Logits {
            hidden_part: l.hidden_part.clone(),
            bias: l.bias.clone(),
            image_part: l.image_part.clone(),
            row_captions: l.row_captions.clone(),
            targets: l.targets.clone(),
            weights: l.weights.clone(),
            banned: l.banned.clone(),
        }
    }

    fn assert_close<const D: usize>(name: &str, a: Tensor<Cpu, D>, b: Tensor<Cpu, D>) {
        let (a, b) = (a.into_data().to_vec::<f32>(), b.into_data().to_vec::<f32>());
        let (a, b) = (a.unwrap(), b.unwrap());
        assert_eq!(a.len(), b.len(), "{name}");
        for (i, (x, y)) in a.iter().zip(&b).enumerate() {
            assert!(
                (x - y).abs() <= 1e-5 * y.abs().max(1e-2),
                "{name}[{i}]: {x} vs {y}"
            );
        }
    }

    #[test]
    fn the_fused_pass_matches_tensor_operations() {
        for (with_image, indexed) in [(true, true), (true, false), (false, true), (false, false)] {
            let input = logits(with_image, indexed);
            let fused = fused_rows(clone(&input), true);
            let (loss, f) = (fused.loss(), fused.grads());
            let (reference_loss, r) = TensorForward::new(input).grads();
            assert_close("loss", loss, reference_loss);
            assert_close("d_logits", f.logits, r.logits);
            assert_close("d_bias", f.bias, r.bias);
            assert_eq!(f.image_part.is_some(), with_image);
            if let (Some(f), Some(r)) = (f.image_part, r.image_part) {
                assert_close("d_image", f, r);
            }
        }
    }

    #[test]
    fn weighted_rows_match_tensor_operations_and_scale_each_row() {
        let weights = vec![0.5, -2.0, 0.0, 1.0, 3.0, -0.25];
        for (with_image, indexed) in [(true, true), (false, false)] {
            let mut input = logits(with_image, indexed);
            input.weights = Some(weights.clone());
            let fused = fused_rows(clone(&input), true);
            let (loss, f) = (fused.loss(), fused.grads());
            let (reference_loss, r) = TensorForward::new(clone(&input)).grads();
            assert_close("loss", loss.clone(), reference_loss);
            assert_close("d_logits", f.logits.clone(), r.logits);
            assert_close("d_bias", f.bias, r.bias);
            // Each row's gradient is its weight times its unweighted gradient.
            input.weights = None;
            let plain = fused_rows(input, true).grads().logits;
            let scale = Tensor::<Cpu, 1>::from_data(
                TensorData::new(weights.clone(), [6]),
                &Default::default(),
            );
            assert_close("scaled", f.logits, plain * scale.unsqueeze_dim(1));
        }
    }

    /// The loss and gradients by burn's autodiff through `log_softmax`, independent of the
    /// hand-written formulas: `[tokens, vocab]` logits, `[vocab]` bias, `[batch, vocab]` image.
    fn autodiff_reference(
        input: &Logits<Cpu>,
    ) -> (
        Tensor<Cpu, 1>,
        Tensor<Cpu, 2>,
        Tensor<Cpu, 1>,
        Tensor<Cpu, 2>,
    ) {
        type AD = burn::backend::Autodiff<Cpu>;
        let hidden =
            Tensor::<AD, 2>::from_inner(Tensor::cat(input.hidden_part.clone(), 0)).require_grad();
        let bias = Tensor::<AD, 1>::from_inner(input.bias.clone()).require_grad();
        let image = Tensor::<AD, 2>::from_inner(input.image_part.clone().expect("an image part"))
            .require_grad();
        let [tokens, vocab] = hidden.dims();
        let captions = Tensor::<AD, 1, Int>::from_inner(input.row_captions.clone().unwrap());
        let mut logits =
            hidden.clone() + bias.clone().unsqueeze_dim(0) + image.clone().select(0, captions);
        let mut mask = vec![0f32; vocab];
        for &column in &input.banned {
            mask[column] = f32::NEG_INFINITY;
        }
        logits = logits
            + Tensor::<AD, 1>::from_data(TensorData::new(mask, [vocab]), &Default::default())
                .unsqueeze_dim(0);
        let log_probs = burn::tensor::activation::log_softmax(logits, 1);
        let targets = Tensor::<AD, 1, Int>::from_inner(input.targets.clone()).reshape([tokens, 1]);
        let picked = log_probs.gather(1, targets).reshape([tokens]);
        let weights = input.weights.clone().unwrap_or_else(|| vec![1.0; tokens]);
        let weights =
            Tensor::<AD, 1>::from_data(TensorData::new(weights, [tokens]), &Default::default());
        let loss = (picked * weights).neg().mean();
        let grads = loss.backward();
        (
            loss.inner(),
            hidden.grad(&grads).unwrap(),
            bias.grad(&grads).unwrap(),
            image.grad(&grads).unwrap(),
        )
    }

    #[test]
    fn both_passes_match_burns_autodiff_weighted_and_with_banned_columns() {
        for (weights, banned) in [
            (None, Vec::new()),
            (Some(vec![0.5, -2.0, 0.0, 1.0, 3.0, -0.25]), vec![1, 3, 650]),
        ] {
            let mut input = logits(true, true);
            input.weights = weights;
            input.banned = banned.clone();
            let (loss, d_logits, d_bias, d_image) = autodiff_reference(&input);
            let fused = fused_rows(clone(&input), true);
            let (fused_loss, f) = (fused.loss(), fused.grads());
            let (tensor_loss, t) = TensorForward::new(clone(&input)).grads();
            for (what, grads, value) in [("fused", f, fused_loss), ("tensor", t, tensor_loss)] {
                assert_close(&format!("{what} loss"), value, loss.clone());
                assert_close(
                    &format!("{what} d_logits"),
                    grads.logits.clone(),
                    d_logits.clone(),
                );
                assert_close(&format!("{what} d_bias"), grads.bias, d_bias.clone());
                assert_close(
                    &format!("{what} d_image"),
                    grads.image_part.unwrap(),
                    d_image.clone(),
                );
                // A banned column has no probability, so no gradient at all.
                let values: Vec<f32> = grads.logits.into_data().to_vec().unwrap();
                for &column in &banned {
                    assert!(
                        values.chunks(700).all(|row| row[column] == 0.0),
                        "{what} {column}"
                    );
                }
            }
        }
    }

    #[test]
    fn the_loss_alone_matches_the_loss_with_gradients() {
        let input = logits(true, true);
        let alone = loss(clone(&input));
        assert_close("loss", alone, loss_and_grads(input).0);
    }
}
