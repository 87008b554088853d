//! The vocabulary layer every caption model ends with, as the fused cross-entropy kernel takes
//! it: the hidden part in row blocks, an optional per-caption image part (merge model), and
//! its mean cross-entropy with the gradients of its weights and inputs, formed directly
//! (`G = (softmax(logits) - onehot(target)) / tokens`, [`kernels::cross_entropy`]) instead of
//! through autodiff, which would allocate several `[tokens, vocab]` tensors.

use burn::nn::Linear;
use burn::tensor::backend::Backend;
use burn::tensor::{IndexingUpdateOp, Tensor};
use kernels::cross_entropy::{self, Logits};
use kernels::matmul::matmul_row_blocks;
use rand::RngCore;

use crate::TeacherBatch;
use crate::dropout::dropout_mask;

/// The output layer's logits over `hidden` rows (`[tokens, hidden]`, the scored positions of
/// `batch`); `image` is the image part's input `[batch, embed]` (merge model).
pub(crate) fn logits<B: Backend>(
    output: &Linear<B>,
    output_image: Option<&Linear<B>>,
    hidden: Tensor<B, 2>,
    image: Option<Tensor<B, 2>>,
    batch: &TeacherBatch<B>,
) -> Logits<B> {
    let vocab = output.weight.dims()[1];
    Logits {
        // [tokens, vocab] in blocks of rows.
        hidden_part: matmul_row_blocks(hidden.clone(), output.weight.val()),
        bias: match &output.bias {
            Some(bias) => bias.val(),
            None => Tensor::zeros([vocab], &hidden.device()),
        },
        // [batch, vocab]: once per caption.
        image_part: output_image
            .zip(image)
            .map(|(layer, image)| layer.forward(image)),
        row_captions: batch.row_captions.clone(),
        targets: batch.targets.clone(),
        weights: batch.weights.clone(),
        banned: batch.banned_columns(),
    }
}

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

/// The output layer's mean cross-entropy over `hidden` rows and its gradients.
pub(crate) fn head<B: Backend>(
    output: &Linear<B>,
    output_image: Option<&Linear<B>>,
    hidden: Tensor<B, 2>,
    image: Option<Tensor<B, 2>>,
    batch: &TeacherBatch<B>,
) -> (Tensor<B, 1>, HeadGrads<B>) {
    let logits = logits(output, output_image, hidden.clone(), image.clone(), batch);
    let (loss, d) = cross_entropy::loss_and_grads(logits);
    let output_weight = hidden.transpose().matmul(d.logits.clone());
    let d_hidden = d.logits.matmul(output.weight.val().transpose());
    let (image_weight, d_image) = match (output_image.zip(image), d.image_part) {
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
    (loss, grads)
}

/// [`head`] over every input position's hidden state (`[steps * batch, hidden]`, time-major):
/// keeps `batch`'s scored rows, applies dropout `p` with a mask drawn from `rng`, and returns
/// `HeadGrads::hidden` for every position again (zero where nothing is scored).
pub(crate) fn scored_head<B: Backend>(
    output: &Linear<B>,
    output_image: Option<&Linear<B>>,
    hidden: Tensor<B, 2>,
    image: Option<Tensor<B, 2>>,
    batch: &TeacherBatch<B>,
    p: f64,
    rng: Option<&mut (dyn RngCore + '_)>,
) -> (Tensor<B, 1>, HeadGrads<B>) {
    let [positions, hidden_dim] = hidden.dims();
    let mut rows = match &batch.rows {
        Some(index) => hidden.select(0, index.clone()),
        None => hidden,
    };
    // [tokens, hidden]
    let mask = rng.and_then(|rng| dropout_mask::<B, 2>(rows.shape(), p, rng, &rows.device()));
    if let Some(mask) = &mask {
        rows = rows * mask.clone();
    }
    let (loss, mut grads) = head(output, output_image, rows, image, batch);
    if let Some(mask) = mask {
        grads.hidden = grads.hidden * mask;
    }
    if let Some(index) = &batch.rows {
        let zeros = Tensor::zeros([positions, hidden_dim], &grads.hidden.device());
        grads.hidden = zeros.select_assign(0, index.clone(), grads.hidden, IndexingUpdateOp::Add);
    }
    (loss, grads)
}
