//! The attention model's training loss and gradients: autodiff through the attention and the
//! LSTM steps, the fused cross-entropy kernel for the vocabulary layer ([`crate::output`]),
//! joined by a surrogate. With `dH` the gradient of the mean cross-entropy with respect to the
//! scored hidden rows `H` (after dropout), `sum(H * dH) + regulariser` has the gradients of
//! `cross-entropy + regulariser` for every weight before the vocabulary layer; the layer's own
//! gradients come from the kernel. [`AttentionModel::reference_objective`] is the same
//! objective through autodiff alone, what `tests/gradients.rs` checks this against, with
//! dropout on.

use burn::module::AutodiffModule;
use burn::optim::GradientsParams;
use burn::tensor::backend::{AutodiffBackend, Backend};
use burn::tensor::{Int, Tensor};
use contracts::vocab::PAD;
use rand::RngCore;

use super::{AttentionModel, grid_of};
use crate::TeacherBatch;
use crate::dropout::dropout;
use crate::merge::cross_entropy;
use crate::model::{Images, Trainable};
use crate::output::head;

/// `weight * mean over captions and regions of (1 - sum_t alpha_t)^2`, the sum over each
/// caption's own steps: `alphas` `[steps, batch, regions]`, `inputs` `[steps, batch]` (`PAD`
/// past a caption's end) -> `[1]`.
pub fn attention_regulariser<B: Backend>(
    alphas: Tensor<B, 3>,
    inputs: Tensor<B, 2, Int>,
    weight: f64,
) -> Tensor<B, 1> {
    let mask = inputs
        .not_equal_elem(i64::from(PAD))
        .float()
        .unsqueeze_dim::<3>(2);
    let looked = (alphas * mask).sum_dim(0);
    (looked.neg() + 1.0).powi_scalar(2).mean() * weight
}

impl<B: Backend> AttentionModel<B> {
    /// The hidden rows of `batch`'s scored positions (`[tokens, hidden]`, dropout drawn from
    /// `rng`) and the regulariser.
    fn scored_rows(
        &self,
        images: &Images<B>,
        batch: &TeacherBatch<B>,
        rng: Option<&mut (dyn RngCore + '_)>,
    ) -> (Tensor<B, 2>, Tensor<B, 1>) {
        let (hidden, alphas) = self.run(grid_of(images), batch.inputs.clone());
        let rows = match &batch.rows {
            Some(index) => hidden.select(0, index.clone()),
            None => hidden,
        };
        let regulariser = attention_regulariser(alphas, batch.inputs.clone(), self.attention_reg);
        (dropout(rows, self.dropout, rng), regulariser)
    }

    /// Mean cross-entropy plus the regulariser, all through autodiff (per-caption weights are
    /// not applied): the reference the fused training pass is tested against.
    pub fn reference_objective(
        &self,
        images: &Images<B>,
        batch: &TeacherBatch<B>,
        rng: Option<&mut (dyn RngCore + '_)>,
    ) -> Tensor<B, 1> {
        let (rows, regulariser) = self.scored_rows(images, batch, rng);
        cross_entropy(self.output.forward(rows), batch.targets.clone()) + regulariser
    }
}

impl<B: AutodiffBackend> Trainable<B> for AttentionModel<B> {
    /// The loss reported is the cross-entropy alone (comparable with the merge model's and with
    /// the validation loss); the gradients include the regulariser.
    fn loss_and_grads(
        &self,
        images: &Images<B>,
        batch: &TeacherBatch<B>,
        rng: Option<&mut (dyn RngCore + '_)>,
    ) -> (Tensor<B::InnerBackend, 1>, GradientsParams) {
        let (rows, regulariser) = self.scored_rows(images, batch, rng);
        let output = self.output.valid();
        let (loss, grads) = head(&output, None, rows.clone().inner(), None, &batch.inner());
        let surrogate = (rows * Tensor::from_inner(grads.hidden)).sum() + regulariser;
        let mut params = GradientsParams::from_grads(surrogate.backward(), self);
        params.register(self.output.weight.id, grads.output_weight);
        if let Some(bias) = &self.output.bias {
            params.register(bias.id, grads.output_bias);
        }
        (loss, params)
    }
}
