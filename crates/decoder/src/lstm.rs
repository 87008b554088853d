//! A single-layer LSTM with its four gates in one weight matrix, and a hand-written
//! backward pass through time for training.
//!
//! burn's `nn::Lstm` runs eight small matrix products per step and writes every output step
//! into a preallocated tensor; under autodiff every per-step slice of a sequence tensor also
//! costs a zero-filled copy of the whole sequence in the backward pass, which grows with the
//! square of the caption length. [`Lstm::run_sequence`] and [`Lstm::backward_sequence`] run
//! the sequence on a plain backend instead: the input side of all steps is one batched
//! product, each step one recurrent product (forward and backward), and the weight and input
//! gradients are single products over all steps. On the CPU backend the gate arithmetic runs
//! fused over host memory ([`crate::fused_lstm`]); elsewhere as tensor operations on
//! feature-major per-step tensors (`[features, batch]`, so each gate block is a contiguous
//! slice). [`Lstm::step`] and
//! [`Lstm::forward_after`] compute the same function with plain burn operations (decoding, and
//! the reference the tests compare against).

use burn::module::{Module, Param};
use burn::tensor::Tensor;
use burn::tensor::activation::sigmoid;
use burn::tensor::backend::Backend;
use models::backend::is_host;

use crate::fused_lstm::{self, FusedRun};

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

    /// One step from input-side pre-activations `[batch, 4 * hidden_dim]` (see
    /// [`Self::project_input`]); `state` is `None` for the zero initial state.
    pub fn step_projected(
        &self,
        projected: Tensor<B, 2>,
        state: Option<LstmState<B>>,
    ) -> LstmState<B> {
        let [batch, four_hidden] = projected.dims();
        let hidden_dim = four_hidden / 4;
        // With a zero state the recurrent product and the forget gate's term vanish.
        let (gates, previous_cell) = match state {
            Some(state) => (
                projected + state.hidden.matmul(self.hidden_weight.val()),
                Some(state.cell),
            ),
            None => (projected, None),
        };
        // [batch, 3 * hidden]: input, forget and output gates.
        let sig = sigmoid(gates.clone().narrow(1, 0, 3 * hidden_dim));
        // [batch, hidden]: the candidate cell values.
        let candidate = gates.narrow(1, 3 * hidden_dim, hidden_dim).tanh();
        let input_gate = sig.clone().narrow(1, 0, hidden_dim);
        let output_gate = sig.clone().narrow(1, 2 * hidden_dim, hidden_dim);
        let cell = match previous_cell {
            Some(previous) => {
                sig.narrow(1, hidden_dim, hidden_dim) * previous + input_gate * candidate
            }
            None => input_gate * candidate,
        };
        debug_assert_eq!(cell.dims(), [batch, hidden_dim]);
        let hidden = output_gate * cell.clone().tanh();
        LstmState { hidden, cell }
    }

    /// One step from raw input `[batch, input_dim]`.
    pub fn step(&self, input: Tensor<B, 2>, state: Option<LstmState<B>>) -> LstmState<B> {
        self.step_projected(self.project_input(input), state)
    }

    /// Runs `first` (`[batch, input_dim]`) and then `rest` (`[steps, batch, input_dim]`,
    /// time-major) from the zero state. Returns the hidden states of the `rest` steps,
    /// time-major as `[steps * batch, hidden_dim]` (row `t * batch + b`), and the final state.
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
}

/// Activations of [`Lstm::run_sequence`] kept for [`Lstm::backward_sequence`].
#[derive(Debug, Clone)]
pub enum SequenceRun<B: Backend> {
    Tensors(TensorRun<B>),
    Fused(FusedRun<B>),
}

/// Activations of the tensor-operation path. Per-step tensors are feature-major,
/// `[features, batch]`.
#[derive(Debug, Clone)]
pub struct TensorRun<B: Backend> {
    /// `[steps, batch, input_dim]`: the inputs, batch-major as given.
    inputs: Tensor<B, 3>,
    /// `[hidden_dim, steps * batch]`: every step's hidden state side by side (column
    /// `t * batch + b`).
    hidden: Tensor<B, 2>,
    /// `[3 * hidden_dim, batch]`: input, forget and output gate values.
    gates: Vec<Tensor<B, 2>>,
    /// `[hidden_dim, batch]`: candidate cell values.
    candidate: Vec<Tensor<B, 2>>,
    /// `[hidden_dim, batch]`: cell state after each step.
    cell: Vec<Tensor<B, 2>>,
    /// `[hidden_dim, batch]`: tanh of the cell state.
    tanh_cell: Vec<Tensor<B, 2>>,
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

/// `tensor` with a contiguous memory layout (a copy only when it is a strided view).
pub(crate) fn contiguous<B: Backend, const D: usize>(tensor: Tensor<B, D>) -> Tensor<B, D> {
    let dims = tensor.dims();
    let n: usize = dims.iter().product();
    tensor.reshape([n]).reshape(dims)
}

impl<B: Backend> Lstm<B> {
    /// Runs `inputs` (`[steps, batch, input_dim]`, time-major) from the zero state.
    ///
    /// Returns the hidden state of every step as `[steps, batch, hidden_dim]` and, with
    /// `keep`, the activations [`Self::backward_sequence`] needs. Meant for a backend without
    /// autodiff (the inner backend when training).
    pub fn run_sequence(
        &self,
        inputs: Tensor<B, 3>,
        keep: bool,
    ) -> (Tensor<B, 3>, Option<SequenceRun<B>>) {
        if is_host::<B>() {
            let (output, run) = fused_lstm::run(self, inputs, keep);
            (output, run.map(SequenceRun::Fused))
        } else {
            let (output, run) = self.run_tensors(inputs, keep);
            (output, run.map(SequenceRun::Tensors))
        }
    }

    /// Backpropagation through time of a [`Self::run_sequence`] run, given the gradient of
    /// the loss with respect to every step's hidden state (`[steps, batch, hidden_dim]`).
    pub fn backward_sequence(&self, run: SequenceRun<B>, d_hidden: Tensor<B, 3>) -> LstmGrads<B> {
        match run {
            SequenceRun::Fused(run) => fused_lstm::backward(self, run, d_hidden),
            SequenceRun::Tensors(run) => self.backward_tensors(run, d_hidden),
        }
    }

    /// [`Self::run_sequence`] as tensor operations, for any backend.
    pub(crate) fn run_tensors(
        &self,
        inputs: Tensor<B, 3>,
        keep: bool,
    ) -> (Tensor<B, 3>, Option<TensorRun<B>>) {
        let [steps, batch, input_dim] = inputs.dims();
        let hidden_dim = self.hidden_dim();
        // [steps, 4 * hidden, batch]: the input side of every step, one batched product of
        // W_ih^T [4H, I] with each step's inputs [I, batch] (transposed views, no copies).
        let projected = self
            .input_weight
            .val()
            .transpose()
            .unsqueeze_dim::<3>(0)
            .matmul(inputs.clone().swap_dims(1, 2));
        // [4H, hidden]
        let hidden_weight_t = self.hidden_weight.val().transpose();
        // [4H, 1], broadcast over the batch.
        let bias = self.bias.val().reshape([4 * hidden_dim, 1]);
        let mut hidden: Option<Tensor<B, 2>> = None;
        let mut cell: Option<Tensor<B, 2>> = None;
        let mut outputs = Vec::with_capacity(steps);
        let mut run = TensorRun {
            inputs: Tensor::empty([0, 0, 0], &inputs.device()),
            hidden: Tensor::empty([0, 0], &inputs.device()),
            gates: Vec::new(),
            candidate: Vec::new(),
            cell: Vec::new(),
            tanh_cell: Vec::new(),
        };
        for t in 0..steps {
            // [4H, batch]: contiguous rows of step t.
            let input_side = projected
                .clone()
                .narrow(0, t, 1)
                .reshape([4 * hidden_dim, batch]);
            let pre = match &hidden {
                Some(h) => hidden_weight_t.clone().matmul(h.clone()) + input_side,
                None => input_side,
            } + bias.clone();
            let gates = sigmoid(pre.clone().narrow(0, 0, 3 * hidden_dim));
            let candidate = pre.narrow(0, 3 * hidden_dim, hidden_dim).tanh();
            let input_gate = gates.clone().narrow(0, 0, hidden_dim);
            let output_gate = gates.clone().narrow(0, 2 * hidden_dim, hidden_dim);
            let new_cell = match cell {
                Some(c) => {
                    gates.clone().narrow(0, hidden_dim, hidden_dim) * c
                        + input_gate * candidate.clone()
                }
                None => input_gate * candidate.clone(),
            };
            let tanh_cell = new_cell.clone().tanh();
            let h = output_gate * tanh_cell.clone();
            outputs.push(h.clone());
            hidden = Some(h);
            if keep {
                run.gates.push(gates);
                run.candidate.push(candidate);
                run.cell.push(new_cell.clone());
                run.tanh_cell.push(tanh_cell);
            }
            cell = Some(new_cell);
        }
        // [hidden, steps * batch]
        let hidden_all = Tensor::cat(outputs, 1);
        // [steps, batch, hidden]
        let output = contiguous(hidden_all.clone().transpose()).reshape([steps, batch, hidden_dim]);
        if !keep {
            return (output, None);
        }
        run.inputs = inputs;
        run.hidden = hidden_all;
        debug_assert_eq!(run.inputs.dims()[2], input_dim);
        (output, Some(run))
    }

    /// [`Self::backward_sequence`] of a [`Self::run_tensors`] run.
    pub(crate) fn backward_tensors(
        &self,
        run: TensorRun<B>,
        d_hidden: Tensor<B, 3>,
    ) -> LstmGrads<B> {
        let [steps, batch, hidden_dim] = d_hidden.dims();
        let input_dim = self.input_dim();
        // [steps, hidden, batch], feature-major like the run.
        let d_hidden = contiguous(d_hidden.swap_dims(1, 2));
        let hidden_weight = self.hidden_weight.val();
        let mut d_gates = Vec::with_capacity(steps);
        let mut d_hidden_next: Option<Tensor<B, 2>> = None;
        let mut d_cell_next: Option<Tensor<B, 2>> = None;
        for t in (0..steps).rev() {
            let mut d_h = d_hidden
                .clone()
                .narrow(0, t, 1)
                .reshape([hidden_dim, batch]);
            if let Some(next) = d_hidden_next.take() {
                d_h = next + d_h;
            }
            let gates = run.gates[t].clone();
            let input_gate = gates.clone().narrow(0, 0, hidden_dim);
            let forget_gate = gates.clone().narrow(0, hidden_dim, hidden_dim);
            let output_gate = gates.clone().narrow(0, 2 * hidden_dim, hidden_dim);
            let candidate = run.candidate[t].clone();
            let tanh_cell = run.tanh_cell[t].clone();
            // h = o * tanh(c)
            let d_output = d_h.clone() * tanh_cell.clone();
            let mut d_cell = d_h * output_gate * tanh_cell.square().neg().add_scalar(1.0);
            if let Some(next) = d_cell_next.take() {
                d_cell = d_cell + next;
            }
            // c = f * c_prev + i * g
            let d_input = d_cell.clone() * candidate.clone();
            let d_candidate = d_cell.clone() * input_gate;
            let d_forget = match t {
                0 => Tensor::zeros([hidden_dim, batch], &d_cell.device()),
                _ => d_cell.clone() * run.cell[t - 1].clone(),
            };
            if t > 0 {
                d_cell_next = Some(d_cell * forget_gate);
            }
            // Through the activations: sigmoid' = s (1 - s), tanh' = 1 - g^2.
            let d_sigmoid = Tensor::cat(vec![d_input, d_forget, d_output], 0)
                * (gates.clone() - gates.square());
            let d_tanh = d_candidate * candidate.square().neg().add_scalar(1.0);
            // [4 * hidden, batch]
            let d_pre = Tensor::cat(vec![d_sigmoid, d_tanh], 0);
            if t > 0 {
                // [hidden, batch] = W_hh [hidden, 4H] x d_pre
                d_hidden_next = Some(hidden_weight.clone().matmul(d_pre.clone()));
            }
            d_gates.push(d_pre);
        }
        d_gates.reverse();
        // [4H, steps * batch]: every step's gate gradients side by side.
        let d_pre = Tensor::cat(d_gates, 1);
        // [steps * batch, input], batch-major rows t * batch + b.
        let inputs = run.inputs.reshape([steps * batch, input_dim]);
        // [input, 4H] = X^T [input, steps * batch] x d_pre^T
        let input_weight = inputs.transpose().matmul(d_pre.clone().transpose());
        // [hidden, 4H]: step t's gates saw h_{t-1}; step 0 saw zeros.
        let previous = (steps - 1) * batch;
        let hidden_weight_grad = if previous > 0 {
            run.hidden
                .narrow(1, 0, previous)
                .matmul(d_pre.clone().narrow(1, batch, previous).transpose())
        } else {
            Tensor::zeros([hidden_dim, 4 * hidden_dim], &d_pre.device())
        };
        // [steps * batch, input] = d_pre^T x W_ih^T
        let d_inputs = d_pre
            .clone()
            .transpose()
            .matmul(self.input_weight.val().transpose());
        LstmGrads {
            input_weight,
            hidden_weight: hidden_weight_grad,
            bias: d_pre.sum_dim(1).reshape([4 * hidden_dim]),
            inputs: d_inputs.reshape([steps, batch, input_dim]),
        }
    }
}
