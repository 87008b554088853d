//! A single-layer LSTM with its four gates in one weight matrix: the cell as tensor
//! operations, and a sequence forward and backward pass for training.
//!
//! burn's `nn::Lstm` runs eight small matrix products per step and writes every output step
//! into a preallocated tensor; under autodiff every per-step slice of a sequence tensor also
//! costs a zero-filled copy of the whole sequence in the backward pass, which grows with the
//! square of the caption length. Here a training sequence runs on a plain backend instead,
//! with a hand-written backward pass through time: the input side of all steps is one batched
//! product, each step one recurrent product (forward and backward), and the weight and input
//! gradients are single products over all steps.
//!
//! [`Lstm::cell`] is the one tensor-operation form of the cell: decoding steps with it, and on
//! backends other than the CPU so do training sequences ([`tensor`]). On the CPU the gate
//! arithmetic of a training sequence runs fused over host memory ([`fused`]); the two are
//! tested against each other.

mod fused;
mod tensor;

use burn::module::{Module, Param};
use burn::tensor::Tensor;
use burn::tensor::activation::sigmoid;
use burn::tensor::backend::Backend;

use crate::backend::is_host;

/// The LSTM's weights; gate blocks are ordered input, forget, output, candidate (`i f o g`),
/// so the three sigmoid gates are one contiguous slice.
#[derive(Module, Debug)]
pub struct Lstm<B: Backend> {
    /// `[input_dim, 4 * hidden_dim]`
    pub input_weight: Param<Tensor<B, 2>>,
    /// `[hidden_dim, 4 * hidden_dim]`
    pub hidden_weight: Param<Tensor<B, 2>>,
    /// `[4 * hidden_dim]` (PyTorch's `b_ih + b_hh` in one vector).
    pub bias: Param<Tensor<B, 1>>,
}

/// Hidden and cell state, each `[batch, hidden_dim]`.
#[derive(Debug, Clone)]
pub struct LstmState<B: Backend> {
    pub hidden: Tensor<B, 2>,
    pub cell: Tensor<B, 2>,
}

impl<B: Backend> LstmState<B> {
    /// Keeps the rows `indices` (`[n]`, repeats allowed), e.g. to reorder beams.
    pub fn select(self, indices: Tensor<B, 1, burn::tensor::Int>) -> Self {
        Self {
            hidden: self.hidden.select(0, indices.clone()),
            cell: self.cell.select(0, indices),
        }
    }
}

/// Every activation of one step of the cell, each `[batch, ..]`: what its backward pass
/// ([`Cell::backward`]) reads.
#[derive(Debug, Clone)]
pub struct Cell<B: Backend> {
    /// `[batch, 3 * hidden]`: the input, forget and output gates.
    pub gates: Tensor<B, 2>,
    /// `[batch, hidden]`: the candidate cell values.
    pub candidate: Tensor<B, 2>,
    pub cell: Tensor<B, 2>,
    pub tanh_cell: Tensor<B, 2>,
    pub hidden: Tensor<B, 2>,
}

impl<B: Backend> Cell<B> {
    /// Gradients of this step's pre-activations `[batch, 4 * hidden]` and of the previous
    /// cell (`None` when it was the zero state), given the gradients of this step's hidden
    /// state and, from later steps, of its cell.
    pub fn backward(
        &self,
        previous_cell: Option<&Tensor<B, 2>>,
        d_hidden: Tensor<B, 2>,
        d_cell_later: Option<Tensor<B, 2>>,
    ) -> (Tensor<B, 2>, Option<Tensor<B, 2>>) {
        if is_host::<B>() {
            fused::cell_backward(self, previous_cell, d_hidden, d_cell_later)
        } else {
            self.backward_tensors(previous_cell, d_hidden, d_cell_later)
        }
    }

    /// [`Self::backward`] as tensor operations.
    fn backward_tensors(
        &self,
        previous_cell: Option<&Tensor<B, 2>>,
        d_hidden: Tensor<B, 2>,
        d_cell_later: Option<Tensor<B, 2>>,
    ) -> (Tensor<B, 2>, Option<Tensor<B, 2>>) {
        let [batch, h] = d_hidden.dims();
        let gate = |k: usize| self.gates.clone().narrow(1, k * h, h);
        let (input_gate, forget_gate, output_gate) = (gate(0), gate(1), gate(2));
        // h = o tanh(c_t);  c_t = f c_(t-1) + i g
        let one_minus_tanh2 = self.tanh_cell.clone().square().neg().add_scalar(1.0);
        let mut d_cell = d_hidden.clone() * output_gate * one_minus_tanh2;
        if let Some(later) = d_cell_later {
            d_cell = d_cell + later;
        }
        let d_output = d_hidden * self.tanh_cell.clone();
        let d_input = d_cell.clone() * self.candidate.clone();
        let d_candidate = d_cell.clone() * input_gate;
        let (d_forget, d_previous) = match previous_cell {
            Some(previous) => (
                d_cell.clone() * previous.clone(),
                Some(d_cell * forget_gate),
            ),
            None => (Tensor::zeros([batch, h], &d_output.device()), None),
        };
        // Through the activations: sigmoid' = s (1 - s), tanh' = 1 - g^2.
        let gates = self.gates.clone();
        let d_sigmoid =
            Tensor::cat(vec![d_input, d_forget, d_output], 1) * (gates.clone() - gates.square());
        let d_tanh = d_candidate * self.candidate.clone().square().neg().add_scalar(1.0);
        (Tensor::cat(vec![d_sigmoid, d_tanh], 1), d_previous)
    }
}

/// A training sequence's activations, kept by [`Lstm::run_sequence_for_backward`] for
/// [`Lstm::backward_sequence`].
#[derive(Debug, Clone)]
pub struct SequenceRun<B: Backend>(Run<B>);

#[derive(Debug, Clone)]
enum Run<B: Backend> {
    Tensors(tensor::TensorRun<B>),
    Fused(fused::FusedRun<B>),
}

/// Gradients from [`Lstm::backward_sequence`].
#[derive(Debug, Clone)]
pub struct LstmGrads<B: Backend> {
    pub input_weight: Tensor<B, 2>,
    pub hidden_weight: Tensor<B, 2>,
    pub bias: Tensor<B, 1>,
    /// `[steps, batch, input_dim]`: gradient of the sequence's inputs.
    pub inputs: Tensor<B, 3>,
}

impl<B: Backend> Lstm<B> {
    pub fn hidden_dim(&self) -> usize {
        self.hidden_weight.dims()[0]
    }

    pub fn input_dim(&self) -> usize {
        self.input_weight.dims()[0]
    }

    /// Input-side gate pre-activations with the bias: `[n, input_dim] -> [n, 4 * hidden_dim]`.
    pub fn project_input(&self, input: Tensor<B, 2>) -> Tensor<B, 2> {
        input.matmul(self.input_weight.val()) + self.bias.val().unsqueeze_dim(0)
    }

    /// The cell on all gate pre-activations `[batch, 4 * hidden]`; `previous_cell` is `None`
    /// for the zero initial state. On the CPU one fused pass ([`fused`]).
    pub fn cell(pre: Tensor<B, 2>, previous_cell: Option<Tensor<B, 2>>) -> Cell<B> {
        if is_host::<B>() {
            fused::cell(pre, previous_cell)
        } else {
            Self::cell_tensors(pre, previous_cell)
        }
    }

    /// [`Self::cell`] as tensor operations.
    fn cell_tensors(pre: Tensor<B, 2>, previous_cell: Option<Tensor<B, 2>>) -> Cell<B> {
        let hidden_dim = pre.dims()[1] / 4;
        let gates = sigmoid(pre.clone().narrow(1, 0, 3 * hidden_dim));
        let candidate = pre.narrow(1, 3 * hidden_dim, hidden_dim).tanh();
        let input_gate = gates.clone().narrow(1, 0, hidden_dim);
        let output_gate = gates.clone().narrow(1, 2 * hidden_dim, hidden_dim);
        // With a zero previous cell the forget gate's term vanishes.
        let cell = match previous_cell {
            Some(previous) => {
                gates.clone().narrow(1, hidden_dim, hidden_dim) * previous
                    + input_gate * candidate.clone()
            }
            None => input_gate * candidate.clone(),
        };
        let tanh_cell = cell.clone().tanh();
        let hidden = output_gate * tanh_cell.clone();
        Cell {
            gates,
            candidate,
            cell,
            tanh_cell,
            hidden,
        }
    }

    /// One step from input-side pre-activations `[batch, 4 * hidden_dim]` (see
    /// [`Self::project_input`]); `state` is `None` for the zero initial state.
    pub fn step_projected(
        &self,
        projected: Tensor<B, 2>,
        state: Option<LstmState<B>>,
    ) -> LstmState<B> {
        // With a zero state the recurrent product vanishes.
        let (pre, previous_cell) = match state {
            Some(state) => (
                projected + state.hidden.matmul(self.hidden_weight.val()),
                Some(state.cell),
            ),
            None => (projected, None),
        };
        let Cell { cell, hidden, .. } = Self::cell(pre, previous_cell);
        LstmState { hidden, cell }
    }

    /// One step from raw input `[batch, input_dim]`.
    pub fn step(&self, input: Tensor<B, 2>, state: Option<LstmState<B>>) -> LstmState<B> {
        self.step_projected(self.project_input(input), state)
    }

    /// Runs `first` (`[batch, input_dim]`) and then `rest` (`[steps, batch, input_dim]`,
    /// time-major) from the zero state, step by step with plain tensor operations (the
    /// reference the training passes are tested against). Returns the hidden states of the
    /// `rest` steps, time-major as `[steps * batch, hidden_dim]` (row `t * batch + b`), and the
    /// final state.
    pub fn forward_after(
        &self,
        first: Tensor<B, 2>,
        rest: Tensor<B, 3>,
    ) -> (Tensor<B, 2>, LstmState<B>) {
        let [steps, batch, input_dim] = rest.dims();
        let mut state = self.step(first, None);
        // [steps * batch, 4 * hidden]: the input side of every step in one product.
        let projected = self.project_input(rest.reshape([steps * batch, input_dim]));
        let mut outputs = Vec::with_capacity(steps);
        for t in 0..steps {
            // [batch, 4 * hidden]: rows of step t.
            let step_input = projected.clone().narrow(0, t * batch, batch);
            state = self.step_projected(step_input, Some(state));
            outputs.push(state.hidden.clone());
        }
        (Tensor::cat(outputs, 0), state)
    }

    /// Runs `inputs` (`[steps, batch, input_dim]`, time-major) from the zero state; returns
    /// every step's hidden state `[steps, batch, hidden_dim]`. Meant for a backend without
    /// autodiff (the inner backend when training).
    pub fn run_sequence(&self, inputs: Tensor<B, 3>) -> Tensor<B, 3> {
        self.run_sequence_for_backward(inputs).0
    }

    /// [`Self::run_sequence`], keeping the activations [`Self::backward_sequence`] needs.
    pub fn run_sequence_for_backward(
        &self,
        inputs: Tensor<B, 3>,
    ) -> (Tensor<B, 3>, SequenceRun<B>) {
        if is_host::<B>() {
            let (output, run) = fused::run(self, inputs);
            (output, SequenceRun(Run::Fused(run)))
        } else {
            let (output, run) = tensor::run(self, inputs);
            (output, SequenceRun(Run::Tensors(run)))
        }
    }

    /// Backpropagation through time of a [`Self::run_sequence_for_backward`] run, given the
    /// gradient of the loss with respect to every step's hidden state (`[steps, batch,
    /// hidden_dim]`).
    pub fn backward_sequence(&self, run: SequenceRun<B>, d_hidden: Tensor<B, 3>) -> LstmGrads<B> {
        match run.0 {
            Run::Fused(run) => fused::backward(self, run, d_hidden),
            Run::Tensors(run) => tensor::backward(self, run, d_hidden),
        }
    }
}
