//! The LSTM's training pass as tensor operations, for every backend but the CPU: each step is
//! [`Lstm::cell`] on `[batch, 4 * hidden]` pre-activations, each step's activations are kept,
//! and the backward pass runs the same arithmetic as [`super::fused`] step by step.

use burn::tensor::Tensor;
use burn::tensor::backend::Backend;

use super::{Cell, Lstm, LstmGrads};

/// Activations of a tensor-operation sequence run, kept for [`backward`].
#[derive(Debug, Clone)]
pub(crate) struct TensorRun<B: Backend> {
    /// `[steps, batch, input_dim]`
    inputs: Tensor<B, 3>,
    /// Every step's cell, in order.
    cells: Vec<Cell<B>>,
}

/// Runs `inputs` (`[steps, batch, input_dim]`) from the zero state; returns every step's
/// hidden state `[steps, batch, hidden]` and the activations for [`backward`].
pub(crate) fn run<B: Backend>(
    lstm: &Lstm<B>,
    inputs: Tensor<B, 3>,
) -> (Tensor<B, 3>, TensorRun<B>) {
    let [steps, batch, input_dim] = inputs.dims();
    let hidden_dim = lstm.hidden_dim();
    // [steps * batch, 4H]: the input side of every step in one product.
    let projected = lstm.project_input(inputs.clone().reshape([steps * batch, input_dim]));
    let hidden_weight = lstm.hidden_weight.val();
    let mut cells: Vec<Cell<B>> = Vec::with_capacity(steps);
    for t in 0..steps {
        let input_side = projected.clone().narrow(0, t * batch, batch);
        // With the zero initial state the recurrent product vanishes.
        let (pre, previous_cell) = match cells.last() {
            Some(c) => (
                input_side + c.hidden.clone().matmul(hidden_weight.clone()),
                Some(c.cell.clone()),
            ),
            None => (input_side, None),
        };
        cells.push(Lstm::cell(pre, previous_cell));
    }
    let hidden: Vec<Tensor<B, 2>> = cells.iter().map(|c| c.hidden.clone()).collect();
    let output = Tensor::cat(hidden, 0).reshape([steps, batch, hidden_dim]);
    (output, TensorRun { inputs, cells })
}

/// Backpropagation through time of a [`run`], given the gradient of the loss with respect to
/// every step's hidden state (`[steps, batch, hidden]`).
pub(crate) fn backward<B: Backend>(
    lstm: &Lstm<B>,
    run: TensorRun<B>,
    d_hidden: Tensor<B, 3>,
) -> LstmGrads<B> {
    let [steps, batch, h] = d_hidden.dims();
    let input_dim = lstm.input_dim();
    let device = d_hidden.device();
    let hidden_weight_t = lstm.hidden_weight.val().transpose();
    let mut d_pre = Vec::with_capacity(steps);
    let mut d_hidden_next: Option<Tensor<B, 2>> = None;
    let mut d_cell_next: Option<Tensor<B, 2>> = None;
    for t in (0..steps).rev() {
        let mut d_h = d_hidden.clone().narrow(0, t, 1).reshape([batch, h]);
        if let Some(next) = d_hidden_next.take() {
            d_h = d_h + next;
        }
        let previous_cell = t.checked_sub(1).map(|p| &run.cells[p].cell);
        // [batch, 4H]
        let (d_step, d_cell) = run.cells[t].backward(previous_cell, d_h, d_cell_next.take());
        d_cell_next = d_cell;
        if t > 0 {
            d_hidden_next = Some(d_step.clone().matmul(hidden_weight_t.clone()));
        }
        d_pre.push(d_step);
    }
    d_pre.reverse();
    // [steps * batch, 4H], rows t * batch + b.
    let d_pre = Tensor::cat(d_pre, 0);
    let inputs = run.inputs.reshape([steps * batch, input_dim]);
    // [input, 4H] = X^T d_pre
    let input_weight = inputs.transpose().matmul(d_pre.clone());
    // [hidden, 4H]: step t's gates saw h(t-1); step 0 saw zeros.
    let hidden_weight = if steps > 1 {
        let previous: Vec<Tensor<B, 2>> = run.cells[..steps - 1]
            .iter()
            .map(|c| c.hidden.clone())
            .collect();
        Tensor::cat(previous, 0)
            .transpose()
            .matmul(d_pre.clone().narrow(0, batch, (steps - 1) * batch))
    } else {
        Tensor::zeros([h, 4 * h], &device)
    };
    // [steps * batch, input] = d_pre W_ih^T
    let d_inputs = d_pre.clone().matmul(lstm.input_weight.val().transpose());
    LstmGrads {
        input_weight,
        hidden_weight,
        bias: d_pre.sum_dim(0).reshape([4 * h]),
        inputs: d_inputs.reshape([steps, batch, input_dim]),
    }
}
