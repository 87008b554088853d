//! The attention model's training loss and gradients: autodiff for the small front of the
//! network (the initial state, the word side of the LSTM), a hand-written backward pass
//! through the steps ([`super::recurrence`]) and the grid's projection, and the fused
//! cross-entropy kernel for the vocabulary layer ([`crate::output`]).
//!
//! The halves are joined by a surrogate: with `dX` the gradient of the loss with respect to
//! each front output `X`, `sum over X of sum(X * dX)` has exactly the front's gradients.
//! [`AttentionModel::reference_objective`] is the same objective through autodiff alone, what
//! `tests/attention.rs` checks this against, with dropout on.

use burn::module::AutodiffModule;
use burn::optim::GradientsParams;
use burn::tensor::backend::{AutodiffBackend, Backend};
use burn::tensor::{Int, Tensor};
use contracts::vocab::PAD;
use rand::RngCore;

use burn::nn::Linear;
use kernels::lstm::LstmState;

use super::{AttentionModel, Regions, grid_of, mean_region, recurrence};
use crate::TeacherBatch;
use crate::dropout::dropout;
use crate::merge::cross_entropy;
use crate::model::{Images, Trainable};
use crate::output::scored_head;

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

    /// The logits of `batch`'s scored positions, `[tokens, vocab]` in row order, all through
    /// autodiff: the reference for other objectives (self-critical training's).
    pub fn reference_logits(
        &self,
        images: &Images<B>,
        batch: &TeacherBatch<B>,
        rng: Option<&mut (dyn RngCore + '_)>,
    ) -> Tensor<B, 2> {
        self.output.forward(self.scored_rows(images, batch, rng).0)
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
        // Plain side first: the standardised grid and its projection (nothing before them is
        // trained; the projection's gradients are formed below).
        let model = self.valid();
        let grid = model.standardise(grid_of(images).inner());
        let projected = model.grid_attention.forward(grid.clone());
        // Autodiff side: the initial state, the word side of the LSTM.
        let initial = self.initial_state(Tensor::from_inner(mean_region(&grid)));
        let words = self.word_part(batch.inputs.clone());

        // Plain side: the steps and the vocabulary layer with their hand-written gradients.
        let inner = batch.inner();
        let mask = inner.inputs.clone().not_equal_elem(i64::from(PAD)).float();
        let (hidden, run) = recurrence::run(
            &model,
            Regions {
                grid: grid.clone(),
                projected,
            },
            LstmState {
                hidden: initial.hidden.clone().inner(),
                cell: initial.cell.clone().inner(),
            },
            words.clone().inner(),
            mask,
        );
        let (loss, head_grads) =
            scored_head(&model.output, None, hidden, None, &inner, self.dropout, rng);
        // Teacher forcing only: a self-critical objective is REINFORCE alone (see
        // `SampledPolicy`).
        let attention_reg = match batch.sampled {
            Some(_) => 0.0,
            None => self.attention_reg * batch.caption_share,
        };
        let grads = recurrence::backward(&model, run, head_grads.hidden, attention_reg);

        // The surrogate carries the inputs' gradients into the autodiff graph.
        let surrogate = (initial.hidden * Tensor::from_inner(grads.initial.hidden)).sum()
            + (initial.cell * Tensor::from_inner(grads.initial.cell)).sum()
            + (words * Tensor::from_inner(grads.word_part)).sum();
        let mut params = GradientsParams::from_grads(surrogate.backward(), self);
        let linear = |layer: &Linear<B>| {
            let bias = layer
                .bias
                .as_ref()
                .expect("the attention layers have biases");
            (layer.weight.id, bias.id)
        };
        let (grid_weight, grid_bias) = projection_grads(grid, grads.projected);
        for ((weight_id, bias_id), weight, bias) in [
            (linear(&self.grid_attention), grid_weight, grid_bias),
            (
                linear(&self.state_attention),
                grads.state_attention_weight,
                grads.state_attention_bias,
            ),
            (linear(&self.score), grads.score_weight, grads.score_bias),
            (linear(&self.gate), grads.gate_weight, grads.gate_bias),
            (
                linear(&self.output),
                head_grads.output_weight,
                head_grads.output_bias,
            ),
        ] {
            params.register(weight_id, weight);
            params.register(bias_id, bias);
        }
        params.register(self.lstm.hidden_weight.id, grads.hidden_weight);
        params.register(self.context_weight.id, grads.context_weight);
        (loss, params)
    }
}

/// The gradients of the grid's projection `grid W_a + b_a` given that of its output,
/// `d_projected` (`[batch, regions, attention]`): `W_a`'s as `(d^T grid)^T`, which transposes
/// the small matrix rather than the grid.
fn projection_grads<B: Backend>(
    grid: Tensor<B, 3>,
    d_projected: Tensor<B, 3>,
) -> (Tensor<B, 2>, Tensor<B, 1>) {
    let [batch, regions, features] = grid.dims();
    let attention = d_projected.dims()[2];
    let d = d_projected.reshape([batch * regions, attention]);
    let weight = d
        .clone()
        .transpose()
        .matmul(grid.reshape([batch * regions, features]))
        .transpose();
    (
        kernels::contiguous(weight),
        d.sum_dim(0).reshape([attention]),
    )
}
