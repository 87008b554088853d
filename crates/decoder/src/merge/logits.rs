//! The merge model's output layer as the fused cross-entropy kernel takes it: the LSTM part
//! in row blocks, the image part once per caption.

use burn::nn::Linear;
use burn::tensor::Tensor;
use burn::tensor::backend::Backend;
use kernels::cross_entropy::Logits;
use kernels::matmul::matmul_row_blocks;

use crate::TeacherBatch;

/// The output layer's logits over `hidden` rows (`[tokens, hidden]`, the scored positions of
/// `batch`); `image` is the image part's input `[batch, embed]` (merge model).
pub(super) fn logits<B: Backend>(
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
    }
}
