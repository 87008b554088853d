//! The training loss with gradients: autodiff for the small front of the network, a
//! hand-written backward pass for the LSTM and the output layer, where the time goes.
//!
//! The output layer's logits are `[tokens, vocab]` (26 MB for a Flickr8k batch); under autodiff
//! softmax, cross-entropy and their gradients allocate and fill several tensors of that size.
//! Here the gradient of the mean cross-entropy with respect to the logits is formed directly,
//! `G = (softmax(logits) - onehot(target)) / tokens`, on the plain backend
//! (`cross_entropy.rs`), and the output layer's gradients follow from it in matrix
//! products. The LSTM's backward pass is
//! [`Lstm::backward_sequence`](crate::Lstm::backward_sequence).
//!
//! The two halves are joined by a surrogate: with `dX` the gradient of the loss with respect to
//! the LSTM's inputs `X` (image embedding and word embeddings) and `dI` with respect to the
//! image part of the output layer's input, `sum(X * dX) + sum(I * dI)` has exactly those
//! gradients, so autodiff backpropagates it through the embeddings and the image projection.
//! `tests/gradients.rs` checks the result against plain autodiff of [`CaptionModel::forward`].

use burn::module::AutodiffModule;
use burn::nn::Linear;
use burn::optim::GradientsParams;
use burn::tensor::backend::{AutodiffBackend, Backend};
use burn::tensor::{IndexingUpdateOp, Int, Tensor};
use models::backend::is_host;
use rand::RngCore;
use rayon::prelude::*;
use std::ops::Range;

use crate::cross_entropy::{CrossEntropy, Logits, cross_entropy};
use crate::model::{CaptionModel, dropout, dropout_mask};
use crate::{TeacherBatch, lstm::contiguous};

/// Gradients of the output layer and of its inputs.
pub(crate) struct HeadGrads<B: Backend> {
    pub output_weight: Tensor<B, 2>,
    pub output_bias: Tensor<B, 1>,
    pub image_weight: Option<Tensor<B, 2>>,
    /// `[tokens, hidden]`
    pub hidden: Tensor<B, 2>,
    /// `[batch, embed]`
    pub image: Option<Tensor<B, 2>>,
}

/// Most rows per block of [`matmul_row_blocks`].
const MAX_BLOCK_ROWS: usize = 384;

/// `lhs x rhs` as blocks of consecutive rows, computed concurrently on the CPU. gemm is slow
/// here on some of the head's shapes in one call and fast on two concurrent halves:
/// `[736, 512] x [512, 8000]` (the logits) 25.9 -> 17 ms, `[256, 64] x [64, 8000]` (the image
/// part's weight gradient) 5.7 -> 1.4 ms. Other backends get one block.
fn matmul_row_blocks<B: Backend>(lhs: Tensor<B, 2>, rhs: Tensor<B, 2>) -> Vec<Tensor<B, 2>> {
    row_blocks::<B>(lhs.dims()[0])
        .into_par_iter()
        .map(|rows| {
            lhs.clone()
                .narrow(0, rows.start, rows.len())
                .matmul(rhs.clone())
        })
        .collect()
}

/// `rows` cut into near-equal blocks on the CPU: at least two, at most [`MAX_BLOCK_ROWS`]
/// rows each. One block elsewhere.
fn row_blocks<B: Backend>(rows: usize) -> Vec<Range<usize>> {
    let blocks = if is_host::<B>() {
        rows.div_ceil(MAX_BLOCK_ROWS).max(2).min(rows)
    } else {
        1
    };
    let size = rows.div_ceil(blocks);
    (0..blocks)
        .map(|i| i * size..((i + 1) * size).min(rows))
        .collect()
}

/// The output layer and mean cross-entropy over `hidden` rows (`[tokens, hidden]`, their
/// `targets` `[tokens]`); `image` is the image part's input `[batch, embed]` (merge model) and
/// `row_captions` each row's caption (`None`: rows are `steps * batch` in time-major order).
/// Returns the loss (`[1]`) and, with `want_grads`, the gradients.
pub(crate) fn head<B: Backend>(
    output: &Linear<B>,
    output_image: Option<&Linear<B>>,
    hidden: Tensor<B, 2>,
    image: Option<Tensor<B, 2>>,
    targets: Tensor<B, 1, Int>,
    row_captions: Option<&Tensor<B, 1, Int>>,
    want_grads: bool,
) -> (Tensor<B, 1>, Option<HeadGrads<B>>) {
    let vocab = output.weight.dims()[1];
    let image_part = output_image.zip(image);
    let logits = Logits {
        // [tokens, vocab] in blocks of rows.
        hidden_part: matmul_row_blocks(hidden.clone(), output.weight.val()),
        bias: match &output.bias {
            Some(bias) => bias.val(),
            None => Tensor::zeros([vocab], &hidden.device()),
        },
        // [batch, vocab]: once per caption.
        image_part: image_part
            .as_ref()
            .map(|(layer, image)| layer.forward(image.clone())),
        row_captions: row_captions.cloned(),
        targets,
    };
    let CrossEntropy { loss, grads } = cross_entropy(logits, want_grads);
    let Some(d) = grads else {
        return (loss, None);
    };
    let output_weight = hidden.transpose().matmul(d.logits.clone());
    let d_hidden = d.logits.matmul(output.weight.val().transpose());
    let (image_weight, d_image) = match (image_part, d.image_part) {
        (Some((layer, image)), Some(d_image_logits)) => (
            Some(Tensor::cat(
                matmul_row_blocks(image.transpose(), d_image_logits.clone()),
                0,
            )),
            // [batch, embed] as (W d^T)^T: with only `batch` rows, d W^T is a slow shape here
            // (3.6 against 1.5 ms).
            Some(
                layer
                    .weight
                    .val()
                    .matmul(d_image_logits.transpose())
                    .transpose(),
            ),
        ),
        _ => (None, None),
    };
    let grads = HeadGrads {
        output_weight,
        output_bias: d.bias,
        image_weight,
        hidden: d_hidden,
        image: d_image,
    };
    (loss, Some(grads))
}

/// One batch's mean cross-entropy (`[1]`, on the inner backend: read it without a sync when
/// convenient) and the gradients of every parameter, ready for `Optimizer::step`.
///
/// - `features`: `[batch, feature_dim]` raw image vectors of the batch's captions.
/// - `rng`: dropout masks are drawn from it; `None` trains without dropout.
pub fn loss_and_grads<B: AutodiffBackend>(
    model: &CaptionModel<B>,
    features: Tensor<B, 2>,
    batch: &TeacherBatch<B>,
    mut rng: Option<&mut (dyn RngCore + '_)>,
) -> (Tensor<B::InnerBackend, 1>, GradientsParams) {
    let p = model.dropout;
    let [steps, batch_size] = batch.inputs.dims();
    // Autodiff side: [batch, embed] image embedding, [steps + 1, batch, embed] LSTM inputs.
    let image = model.embed_image(features);
    let first = dropout(image.clone(), p, rng.as_deref_mut());
    let words = model.embedding.forward(batch.inputs.clone());
    let inputs = Tensor::cat(vec![first.unsqueeze_dim::<3>(0), words], 0);
    let image_out = model
        .output_image
        .as_ref()
        .map(|_| dropout(image, p, rng.as_deref_mut()));

    // Plain side: LSTM and output layer with their hand-written gradients.
    let lstm = model.lstm.valid();
    let (hidden, run) = lstm.run_sequence(inputs.clone().inner(), true);
    let hidden_dim = lstm.hidden_dim();
    // [steps * batch, hidden]: the word steps' outputs (the image step's is not scored).
    let mut rows = hidden
        .narrow(0, 1, steps)
        .reshape([steps * batch_size, hidden_dim]);
    let rows_index = batch.rows.clone().map(Tensor::inner);
    if let Some(index) = &rows_index {
        rows = rows.select(0, index.clone());
    }
    // [tokens, hidden]
    let mask = rng
        .and_then(|rng| dropout_mask::<B::InnerBackend, 2>(rows.shape(), p, rng, &rows.device()));
    if let Some(mask) = &mask {
        rows = rows * mask.clone();
    }
    let output = model.output.valid();
    let output_image = model.output_image.as_ref().map(AutodiffModule::valid);
    let row_captions = batch.row_captions.clone().map(Tensor::inner);
    let (loss, grads) = head(
        &output,
        output_image.as_ref(),
        rows,
        image_out.clone().map(Tensor::inner),
        batch.targets.clone().inner(),
        row_captions.as_ref(),
        true,
    );
    let head_grads = grads.expect("head was asked for gradients");

    // Back through the dropout and the row selection to [steps + 1, batch, hidden].
    let mut d_rows = head_grads.hidden;
    if let Some(mask) = mask {
        d_rows = d_rows * mask;
    }
    if let Some(index) = rows_index {
        let zeros = Tensor::zeros([steps * batch_size, hidden_dim], &d_rows.device());
        d_rows = zeros.select_assign(0, index, d_rows, IndexingUpdateOp::Add);
    }
    let d_hidden = Tensor::cat(
        vec![
            Tensor::zeros([1, batch_size, hidden_dim], &d_rows.device()),
            d_rows.reshape([steps, batch_size, hidden_dim]),
        ],
        0,
    );
    let lstm_grads =
        lstm.backward_sequence(run.expect("run_sequence kept its activations"), d_hidden);

    // The surrogate carries dX and dI into the autodiff graph.
    let mut surrogate = (inputs * Tensor::from_inner(contiguous(lstm_grads.inputs))).sum();
    if let (Some(image_out), Some(d_image)) = (image_out, head_grads.image) {
        surrogate = surrogate + (image_out * Tensor::from_inner(d_image)).sum();
    }
    let mut grads = GradientsParams::from_grads(surrogate.backward(), model);
    grads.register(model.lstm.input_weight.id, lstm_grads.input_weight);
    grads.register(model.lstm.hidden_weight.id, lstm_grads.hidden_weight);
    grads.register(model.lstm.bias.id, lstm_grads.bias);
    grads.register(model.output.weight.id, head_grads.output_weight);
    if let Some(bias) = &model.output.bias {
        grads.register(bias.id, head_grads.output_bias);
    }
    if let (Some(layer), Some(weight)) = (&model.output_image, head_grads.image_weight) {
        grads.register(layer.weight.id, weight);
    }
    (loss, grads)
}

#[cfg(test)]
mod tests {
    use super::*;
    use models::backend::Cpu;

    fn blocks(rows: usize) -> Vec<Range<usize>> {
        row_blocks::<Cpu>(rows)
    }

    #[test]
    fn row_blocks_cover_every_row_once_in_near_equal_blocks() {
        assert_eq!(blocks(1), vec![0..1]);
        assert_eq!(blocks(5), vec![0..3, 3..5]);
        assert_eq!(blocks(MAX_BLOCK_ROWS), vec![0..192, 192..384]);
        assert_eq!(blocks(736), vec![0..368, 368..736]);
        assert_eq!(blocks(1000), vec![0..334, 334..668, 668..1000]);
    }
}
