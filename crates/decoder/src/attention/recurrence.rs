//! The attention model's teacher-forced steps on a plain backend, with a hand-written backward
//! pass through time: what [`super::training`] runs between the autodiff front (the grid's
//! projection, the initial state, the word side of the LSTM) and the vocabulary layer.
//!
//! Under autodiff each step's products with the `[feature, 4 * hidden]` context weights and
//! the `[hidden, feature]` gate allocated a zero-filled full-size weight gradient per step, and
//! a third of the step time went to the kernel clearing those pages. Here each step keeps only
//! its activations, and the weight gradients of all steps are single products over the stacked
//! rows, after the loop. Within a step:
//!
//! - the three products of the previous hidden state (LSTM, attention, gate) are one, and
//!   every per-step product runs in gemm's fast orientation ([`kernels::matmul::thin_matmul`]);
//! - the attention scores and the LSTM cell are single passes on the CPU
//!   ([`kernels::attention`], [`kernels::lstm::Cell`]), tensor operations elsewhere.
//!
//! `tests/attention.rs` checks the gradients against autodiff of [`AttentionModel::run`].

use burn::tensor::Tensor;
use burn::tensor::backend::Backend;
use kernels::contiguous;
use kernels::lstm::{Cell, Lstm, LstmState};
use kernels::matmul::{thin_matmul, thin_product};

use super::{Attended, AttentionModel, Regions};

/// What the backward pass reads of one step.
struct StepRun<B: Backend> {
    attended: Attended<B>,
    cell: Cell<B>,
}

/// A teacher-forced run's activations, kept by [`run`] for [`backward`].
pub(crate) struct Run<B: Backend> {
    weights: StateWeights<B>,
    regions: Regions<B>,
    initial: LstmState<B>,
    steps: Vec<StepRun<B>>,
    /// `[steps, batch]`: 1 at a caption's own input steps, 0 at padding.
    mask: Tensor<B, 2>,
    /// `[batch, regions]`: each region's attention summed over a caption's own steps.
    looked: Tensor<B, 2>,
}

/// Gradients of the loop's weights and of its inputs.
pub(crate) struct RecurrenceGrads<B: Backend> {
    pub state_attention_weight: Tensor<B, 2>,
    pub state_attention_bias: Tensor<B, 1>,
    pub score_weight: Tensor<B, 2>,
    pub score_bias: Tensor<B, 1>,
    pub gate_weight: Tensor<B, 2>,
    pub gate_bias: Tensor<B, 1>,
    pub hidden_weight: Tensor<B, 2>,
    pub context_weight: Tensor<B, 2>,
    /// `[batch, regions, attention]`
    pub projected: Tensor<B, 3>,
    pub initial: LstmState<B>,
    /// `[steps * batch, 4 * hidden]`: the word side's pre-activations.
    pub word_part: Tensor<B, 2>,
}

/// Runs the steps from `initial` over `regions`, with the word side's pre-activations
/// `word_part` (`[steps * batch, 4 * hidden]`, time-major) and `mask` (`[steps, batch]`).
/// Returns every step's hidden state, `[steps * batch, hidden]` time-major.
pub(crate) fn run<B: Backend>(
    model: &AttentionModel<B>,
    regions: Regions<B>,
    initial: LstmState<B>,
    word_part: Tensor<B, 2>,
    mask: Tensor<B, 2>,
) -> (Tensor<B, 2>, Run<B>) {
    let [steps, batch] = mask.dims();
    let [_, count, _] = regions.grid.dims();
    let weights = StateWeights::of(model);
    let context_weight_t = contiguous(model.context_weight.val().transpose());
    let state_bias = model
        .state_attention
        .bias
        .as_ref()
        .map(|b| b.val().unsqueeze_dim(0));
    let gate_bias = model.gate.bias.as_ref().map(|b| b.val().unsqueeze_dim(0));
    let mut state = initial.clone();
    let mut looked = Tensor::zeros([batch, count], &mask.device());
    let mut runs = Vec::with_capacity(steps);
    let mut hidden = Vec::with_capacity(steps);
    for t in 0..steps {
        let [recurrent, state_part, gate_part] = weights.forward(state.hidden.clone());
        let attended = model.attend_projected(
            &regions,
            with_bias(state_part, &state_bias),
            with_bias(gate_part, &gate_bias),
        );
        looked = looked + attended.alpha.clone() * step_mask(&mask, t);
        let context_part = thin_product(attended.context.gated.clone(), context_weight_t.clone());
        let pre = word_part.clone().narrow(0, t * batch, batch) + context_part + recurrent;
        let cell = Lstm::cell(pre, Some(state.cell));
        state = LstmState {
            hidden: cell.hidden.clone(),
            cell: cell.cell.clone(),
        };
        hidden.push(cell.hidden.clone());
        runs.push(StepRun { attended, cell });
    }
    let run = Run {
        weights,
        regions,
        initial,
        steps: runs,
        mask,
        looked,
    };
    (Tensor::cat(hidden, 0), run)
}

/// The three products of a step's previous hidden state, as one matrix `[hidden, gates +
/// attention + feature]`: the LSTM's recurrent weights, the attention's state side, the gate.
struct StateWeights<B: Backend> {
    /// `[hidden, n]`
    weights: Tensor<B, 2>,
    /// `[n, hidden]`, contiguous.
    weights_t: Tensor<B, 2>,
    gates: usize,
    attention: usize,
    features: usize,
}

impl<B: Backend> StateWeights<B> {
    fn of(model: &AttentionModel<B>) -> Self {
        let weights = Tensor::cat(
            vec![
                model.lstm.hidden_weight.val(),
                model.state_attention.weight.val(),
                model.gate.weight.val(),
            ],
            1,
        );
        let [gates, attention, features] = [
            model.lstm.hidden_weight.dims()[1],
            model.state_attention.weight.dims()[1],
            model.gate.weight.dims()[1],
        ];
        Self {
            weights_t: contiguous(weights.clone().transpose()),
            weights,
            gates,
            attention,
            features,
        }
    }

    /// `[batch, hidden]` -> the recurrent part of the gates, the attention's state side and
    /// the gate's pre-activation, each without bias.
    fn forward(&self, hidden: Tensor<B, 2>) -> [Tensor<B, 2>; 3] {
        thin_matmul(
            hidden,
            self.weights_t.clone(),
            &[self.gates, self.attention, self.features],
        )
        .try_into()
        .expect("three blocks")
    }

    /// The gradient of the previous hidden state from those of the three parts.
    fn backward(
        &self,
        d_gates: Tensor<B, 2>,
        d_state: Tensor<B, 2>,
        d_gate: Tensor<B, 2>,
    ) -> Tensor<B, 2> {
        thin_product(
            Tensor::cat(vec![d_gates, d_state, d_gate], 1),
            self.weights.clone(),
        )
    }
}

fn with_bias<B: Backend>(values: Tensor<B, 2>, bias: &Option<Tensor<B, 2>>) -> Tensor<B, 2> {
    match bias {
        Some(bias) => values + bias.clone(),
        None => values,
    }
}

/// `[batch, 1]`: step `t`'s row of `mask`.
fn step_mask<B: Backend>(mask: &Tensor<B, 2>, t: usize) -> Tensor<B, 2> {
    let [_, batch] = mask.dims();
    mask.clone().narrow(0, t, 1).reshape([batch, 1])
}

/// Backpropagation through time of a [`run`], given the gradient of the loss with respect to
/// every step's hidden state (`[steps * batch, hidden]`) and the regulariser's weight: the
/// gradients of `loss + attention_reg * mean((1 - looked)^2)`.
pub(crate) fn backward<B: Backend>(
    model: &AttentionModel<B>,
    run: Run<B>,
    d_hidden: Tensor<B, 2>,
    attention_reg: f64,
) -> RecurrenceGrads<B> {
    let [batch, count, _] = run.regions.grid.dims();
    let attention_dim = model.score.weight.dims()[0];
    let device = d_hidden.device();
    let weights = &run.weights;
    let context_weight = model.context_weight.val();
    let score_weight = model.score_weight();
    // d/d alpha_t of attention_reg * mean over captions and regions of (1 - looked)^2, at a
    // caption's own steps.
    let looked_grad = (attention_reg > 0.0)
        .then(|| (run.looked.clone() - 1.0) * (2.0 * attention_reg / (batch * count) as f64));
    let mut d_projected = Tensor::zeros([batch, count, attention_dim], &device);
    let mut d_score_weight = Tensor::zeros([attention_dim], &device);
    let mut d_score_bias = Tensor::zeros([1], &device);
    let mut d_pre = Vec::with_capacity(run.steps.len());
    let mut d_gate = Vec::with_capacity(run.steps.len());
    let mut d_state = Vec::with_capacity(run.steps.len());
    let mut d_hidden_later: Option<Tensor<B, 2>> = None;
    let mut d_cell_later: Option<Tensor<B, 2>> = None;
    for (t, step) in run.steps.iter().enumerate().rev() {
        let mut d_h = d_hidden.clone().narrow(0, t * batch, batch);
        if let Some(later) = d_hidden_later.take() {
            d_h = d_h + later;
        }
        let previous_cell = match t {
            0 => &run.initial.cell,
            _ => &run.steps[t - 1].cell.cell,
        };
        let (d_step, d_cell) = step
            .cell
            .backward(Some(previous_cell), d_h, d_cell_later.take());
        d_cell_later = d_cell;
        let Attended {
            layer,
            alpha,
            context,
        } = &step.attended;
        // The LSTM's input z = sigmoid(W_b h + b) * sum_r alpha_r a_r.
        let d_gated = thin_product(d_step.clone(), context_weight.clone());
        let (d_gate_step, mut d_alpha) =
            kernels::attention::gated_context_backward(d_gated, context, &run.regions.grid);
        if let Some(looked_grad) = &looked_grad {
            d_alpha = d_alpha + looked_grad.clone() * step_mask(&run.mask, t);
        }
        // Through the softmax over regions.
        let d_scores = alpha.clone() * (d_alpha.clone() - (alpha.clone() * d_alpha).sum_dim(1));
        // scores = w . tanh(projected + U_a h + b_a) + b
        let scored =
            kernels::attention::scores_backward(layer, d_scores, score_weight.clone(), d_projected);
        d_projected = scored.projected;
        d_score_weight = d_score_weight + scored.weight;
        d_score_bias = d_score_bias + scored.bias;
        let d_state_step = scored.state;
        d_hidden_later =
            Some(weights.backward(d_step.clone(), d_state_step.clone(), d_gate_step.clone()));
        d_pre.push(d_step);
        d_gate.push(d_gate_step);
        d_state.push(d_state_step);
    }
    d_pre.reverse();
    d_gate.reverse();
    d_state.reverse();
    // [steps * batch, ..] time-major; step t read the state of step t - 1.
    let d_pre = Tensor::cat(d_pre, 0);
    let d_gate = Tensor::cat(d_gate, 0);
    let d_state = Tensor::cat(d_state, 0);
    let previous_hidden = Tensor::cat(
        std::iter::once(run.initial.hidden.clone())
            .chain(
                run.steps[..run.steps.len() - 1]
                    .iter()
                    .map(|s| s.cell.hidden.clone()),
            )
            .collect(),
        0,
    );
    let gated = Tensor::cat(
        run.steps
            .iter()
            .map(|s| s.attended.context.gated.clone())
            .collect(),
        0,
    );
    let previous_t = previous_hidden.transpose();
    RecurrenceGrads {
        state_attention_weight: previous_t.clone().matmul(d_state.clone()),
        state_attention_bias: sum_rows(d_state.clone()),
        score_weight: d_score_weight.reshape([attention_dim, 1]),
        score_bias: d_score_bias,
        gate_weight: previous_t.clone().matmul(d_gate.clone()),
        gate_bias: sum_rows(d_gate.clone()),
        hidden_weight: previous_t.matmul(d_pre.clone()),
        context_weight: gated.transpose().matmul(d_pre.clone()),
        projected: d_projected,
        initial: LstmState {
            hidden: d_hidden_later.expect("a caption has at least one step"),
            cell: d_cell_later.expect("the initial cell is never the zero state"),
        },
        word_part: d_pre,
    }
}

/// `[n, d] -> [d]`
fn sum_rows<B: Backend>(values: Tensor<B, 2>) -> Tensor<B, 1> {
    let [_, d] = values.dims();
    values.sum_dim(0).reshape([d])
}
