//! The training loss with gradients: autodiff for the small front of the network, a
//! hand-written backward pass for the LSTM and the output layer, where the time goes.
//!
//! The output layer's logits are `[tokens, vocab]` (26 MB for a Flickr8k batch); under autodiff
//! softmax, cross-entropy and their gradients allocate and fill several tensors of that size.
//! Here the gradient of the mean cross-entropy with respect to the logits is formed directly,
//! `G = (softmax(logits) - onehot(target)) / tokens`, on the plain backend
//! ([`kernels::cross_entropy`]), and the output layer's gradients follow from it in matrix
//! products. The LSTM's backward pass is [`kernels::lstm::Lstm::backward_sequence`].
//!
//! The two halves are joined by a surrogate: with `dX` the gradient of the loss with respect to
//! the LSTM's inputs `X` (image embedding and word embeddings) and `dI` with respect to the
//! image part of the output layer's input, `sum(X * dX) + sum(I * dI)` has exactly those
//! gradients, so autodiff backpropagates it through the embeddings and the image projection.
//! `tests/gradients.rs` checks the result against plain autodiff of
//! [`MergeModel::reference_logits`], with dropout on and off.

use burn::module::AutodiffModule;
use burn::optim::GradientsParams;
use burn::tensor::Tensor;
use burn::tensor::backend::AutodiffBackend;
use kernels::contiguous;
use rand::RngCore;

use super::MergeModel;
use crate::TeacherBatch;
use crate::dropout::dropout;
use crate::model::{Images, Trainable};
use crate::output::scored_head;

impl<B: AutodiffBackend> Trainable<B> for MergeModel<B> {
    fn loss_and_grads(
        &self,
        images: &Images<B>,
        batch: &TeacherBatch<B>,
        mut rng: Option<&mut (dyn RngCore + '_)>,
    ) -> (Tensor<B::InnerBackend, 1>, GradientsParams) {
        let model = self;
        let p = model.dropout;
        let [steps, batch_size] = batch.inputs.dims();
        // Autodiff side: [batch, embed] image embedding, [steps + 1, batch, embed] LSTM inputs.
        let image = model.embed_image(images.pooled.clone());
        let first = dropout(image.clone(), p, rng.as_deref_mut());
        let words = model.embedding.forward(batch.inputs.clone());
        let inputs = Tensor::cat(vec![first.unsqueeze_dim::<3>(0), words], 0);
        let image_out = model
            .output_image
            .as_ref()
            .map(|_| dropout(image, p, rng.as_deref_mut()));

        // Plain side: LSTM and output layer with their hand-written gradients.
        let lstm = model.lstm.valid();
        let (hidden, run) = lstm.run_sequence_for_backward(inputs.clone().inner());
        let hidden_dim = lstm.hidden_dim();
        // [steps * batch, hidden]: the word steps' outputs (the image step's is not scored).
        let rows = hidden
            .narrow(0, 1, steps)
            .reshape([steps * batch_size, hidden_dim]);
        let output = model.output.valid();
        let output_image = model.output_image.as_ref().map(AutodiffModule::valid);
        let (loss, head_grads) = scored_head(
            &output,
            output_image.as_ref(),
            rows,
            image_out.clone().map(Tensor::inner),
            &batch.inner(),
            p,
            rng,
        );
        // [steps + 1, batch, hidden], the image step's zero.
        let d_hidden = Tensor::cat(
            vec![
                Tensor::zeros([1, batch_size, hidden_dim], &head_grads.hidden.device()),
                head_grads.hidden.reshape([steps, batch_size, hidden_dim]),
            ],
            0,
        );
        let lstm_grads = lstm.backward_sequence(run, d_hidden);

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
}
