//! The Transformer's training loss and gradients: burn's autodiff through the encoder and
//! the decoder, the fused cross-entropy kernel for the vocabulary layer ([`crate::output`],
//! which also applies self-critical weights and the sampled policy's banned tokens).
//!
//! The halves are joined by a surrogate, as in the other models: with `dH` the gradient of
//! the loss with respect to the final hidden rows `H`, `sum(H * dH)` has exactly the body's
//! gradients. [`TransformerModel::reference_objective`] is the same objective through
//! autodiff alone, what the tests check this against, with dropout on.

use burn::module::AutodiffModule;
use burn::optim::GradientsParams;
use burn::tensor::Tensor;
use burn::tensor::backend::{AutodiffBackend, Backend};
use rand::RngCore;

use super::{TransformerModel, grid_of};
use crate::TeacherBatch;
use crate::merge::cross_entropy;
use crate::model::{Images, Trainable};
use crate::output::scored_head;

impl<B: Backend> TransformerModel<B> {
    /// The logits of `batch`'s scored positions (`[tokens, vocab]` in row order), dropout
    /// drawn from `rng`, all through autodiff.
    pub fn reference_logits(
        &self,
        images: &Images<B>,
        batch: &TeacherBatch<B>,
        rng: Option<&mut (dyn RngCore + '_)>,
    ) -> Tensor<B, 2> {
        let hidden = self.hidden_rows(grid_of(images), batch.inputs.clone(), rng);
        let rows = match &batch.rows {
            Some(index) => hidden.select(0, index.clone()),
            None => hidden,
        };
        self.output.forward(rows)
    }

    /// Mean cross-entropy through autodiff alone: the reference for
    /// [`Trainable::loss_and_grads`].
    pub fn reference_objective(
        &self,
        images: &Images<B>,
        batch: &TeacherBatch<B>,
        rng: Option<&mut (dyn RngCore + '_)>,
    ) -> Tensor<B, 1> {
        cross_entropy(
            self.reference_logits(images, batch, rng),
            batch.targets.clone(),
        )
    }
}

impl<B: AutodiffBackend> Trainable<B> for TransformerModel<B> {
    fn loss_and_grads(
        &self,
        images: &Images<B>,
        batch: &TeacherBatch<B>,
        rng: Option<&mut (dyn RngCore + '_)>,
    ) -> (Tensor<B::InnerBackend, 1>, GradientsParams) {
        // Autodiff side: every position's final hidden state.
        let hidden = self.hidden_rows(grid_of(images), batch.inputs.clone(), rng);
        // Plain side: the vocabulary layer and its hand-written gradients (no dropout before
        // it: the Transformer's dropout is inside its blocks).
        let output = self.output.valid();
        let (loss, head) = scored_head(
            &output,
            None,
            hidden.clone().inner(),
            None,
            &batch.inner(),
            0.0,
            None,
        );
        let surrogate = (hidden * Tensor::from_inner(head.hidden)).sum();
        let mut grads = GradientsParams::from_grads(surrogate.backward(), self);
        grads.register(self.output.weight.id, head.output_weight);
        if let Some(bias) = &self.output.bias {
            grads.register(bias.id, head.output_bias);
        }
        (loss, grads)
    }
}
