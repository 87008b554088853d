//! The LSTM's training pass on the CPU: matrix products through burn, the gate arithmetic of
//! each step fused into one multi-threaded pass over host memory.
//!
//! As tensor operations a step's gate arithmetic is about a dozen single-threaded passes (two
//! narrows, sigmoid, tanh twice, products and sums), each allocating its result; for the
//! default model that was 40 ms of a 60 ms forward pass here. This module keeps every step's
//! activations in a few large buffers instead, row-major by `(step, caption)`:
//!
//! - gates `[steps * batch, 4 * hidden]`: pre-activations, overwritten in place by the gate
//!   values `i f o g` (the same block order as the weights);
//! - cell, tanh(cell) and hidden `[steps * batch, hidden]`.
//!
//! With that layout the weight gradients of all steps are single matrix products over
//! `[steps * batch, 4 * hidden]`, without transposing copies.

use burn::tensor::Tensor;
use burn::tensor::backend::Backend;
use rayon::prelude::*;
use wide::f32x8;

use super::{Cell, Lstm, LstmGrads};
use crate::host::{
    contiguous, host_vec, map_in_place, sigmoid, sigmoid_lanes, to_tensor, transposed,
};

/// Activations of a fused sequence run, kept for [`backward`].
#[derive(Debug, Clone)]
pub struct FusedRun<B: Backend> {
    /// `[steps, batch, input_dim]`
    inputs: Tensor<B, 3>,
    /// `[steps * batch, hidden]`: every step's hidden state.
    hidden: Tensor<B, 2>,
    /// `[steps * batch * 4 * hidden]`: gate values `i f o g` of every step and caption.
    gates: Vec<f32>,
    /// `[steps * batch * hidden]`
    cell: Vec<f32>,
    /// `[steps * batch * hidden]`
    tanh_cell: Vec<f32>,
}

/// One caption's cell: `pre` (`[4 * hidden]` pre-activations) becomes the gate values
/// `i f o g`; `cell`, `tanh_cell` and `hidden` (`[hidden]` each) are written. `previous` is the
/// previous cell, `None` for the zero state.
fn forward_row(
    pre: &mut [f32],
    previous: Option<&[f32]>,
    cell: &mut [f32],
    tanh_cell: &mut [f32],
    hidden: &mut [f32],
) {
    let h = cell.len();
    let (sig, cand) = pre.split_at_mut(3 * h);
    map_in_place(sig, sigmoid_lanes, sigmoid);
    map_in_place(cand, f32x8::tanh, f32::tanh);
    for j in 0..h {
        let previous = previous.map_or(0.0, |p| p[j]);
        cell[j] = sig[h + j] * previous + sig[j] * cand[j];
    }
    tanh_cell.copy_from_slice(cell);
    map_in_place(tanh_cell, f32x8::tanh, f32::tanh);
    for j in 0..h {
        hidden[j] = sig[2 * h + j] * tanh_cell[j];
    }
}

/// One caption's cell backward: `d_pre` (`[4 * hidden]`) is written from the gradient of the
/// hidden state (`d_hidden(j)`) and of the cell from later steps (`d_cell`, which then holds
/// the previous cell's).
fn backward_row(
    sig: &[f32],
    candidate: &[f32],
    tanh_cell: &[f32],
    previous: Option<&[f32]>,
    d_hidden: impl Fn(usize) -> f32,
    d_cell: &mut [f32],
    d_pre: &mut [f32],
) {
    let h = candidate.len();
    for j in 0..h {
        let (i, f, o) = (sig[j], sig[h + j], sig[2 * h + j]);
        let (g, tc) = (candidate[j], tanh_cell[j]);
        let d_h = d_hidden(j);
        // h = o tanh(c_t);  c_t = f c_(t-1) + i g
        let d_c = d_h * o * (1.0 - tc * tc) + d_cell[j];
        let previous = previous.map_or(0.0, |p| p[j]);
        d_cell[j] = d_c * f;
        // Through the activations: sigmoid' = s (1 - s), tanh' = 1 - g^2.
        d_pre[j] = d_c * g * (i - i * i);
        d_pre[h + j] = d_c * previous * (f - f * f);
        d_pre[2 * h + j] = d_h * tc * (o - o * o);
        d_pre[3 * h + j] = d_c * i * (1.0 - g * g);
    }
}

/// [`Lstm::cell`] on the CPU: one pass per caption.
pub(crate) fn cell<B: Backend>(pre: Tensor<B, 2>, previous_cell: Option<Tensor<B, 2>>) -> Cell<B> {
    let [batch, g] = pre.dims();
    let h = g / 4;
    let device = pre.device();
    let mut gates = host_vec(pre);
    let previous = previous_cell.map(host_vec);
    // Per caption: cell | tanh(cell) | hidden.
    let mut states = vec![0.0f32; batch * 3 * h];
    gates
        .par_chunks_mut(g)
        .zip(states.par_chunks_mut(3 * h))
        .enumerate()
        .for_each(|(b, (pre, state))| {
            let (cell, rest) = state.split_at_mut(h);
            let (tanh_cell, hidden) = rest.split_at_mut(h);
            let previous = previous.as_ref().map(|p| &p[b * h..(b + 1) * h]);
            forward_row(pre, previous, cell, tanh_cell, hidden);
        });
    // Row by row with memcpy: a flattening iterator collects element by element, at whatever
    // speed the inliner leaves it (10% of a beam search's time in one build, 4% in another).
    let columns = |values: &[f32], width: usize, range: std::ops::Range<usize>| {
        let n = range.len();
        let mut out = Vec::with_capacity(batch * n);
        for row in values.chunks_exact(width) {
            out.extend_from_slice(&row[range.clone()]);
        }
        to_tensor::<B, 2>(out, [batch, n], &device)
    };
    Cell {
        gates: columns(&gates, g, 0..3 * h),
        candidate: columns(&gates, g, 3 * h..g),
        cell: columns(&states, 3 * h, 0..h),
        tanh_cell: columns(&states, 3 * h, h..2 * h),
        hidden: columns(&states, 3 * h, 2 * h..3 * h),
    }
}

/// [`Cell::backward`] on the CPU: one pass per caption.
pub(crate) fn cell_backward<B: Backend>(
    cell: &Cell<B>,
    previous_cell: Option<&Tensor<B, 2>>,
    d_hidden: Tensor<B, 2>,
    d_cell_later: Option<Tensor<B, 2>>,
) -> (Tensor<B, 2>, Option<Tensor<B, 2>>) {
    let [batch, h] = d_hidden.dims();
    let device = d_hidden.device();
    let (sig, candidate) = (
        host_vec(cell.gates.clone()),
        host_vec(cell.candidate.clone()),
    );
    let tanh_cell = host_vec(cell.tanh_cell.clone());
    let previous = previous_cell.map(|p| host_vec(p.clone()));
    let d_hidden = host_vec(d_hidden);
    let mut d_cell = d_cell_later.map_or_else(|| vec![0.0f32; batch * h], host_vec);
    let mut d_pre = vec![0.0f32; batch * 4 * h];
    d_pre
        .par_chunks_mut(4 * h)
        .zip(d_cell.par_chunks_mut(h))
        .enumerate()
        .for_each(|(b, (d_pre, d_cell))| {
            let row = b * h..(b + 1) * h;
            let d_h = &d_hidden[row.clone()];
            backward_row(
                &sig[b * 3 * h..(b + 1) * 3 * h],
                &candidate[row.clone()],
                &tanh_cell[row.clone()],
                previous.as_ref().map(|p| &p[row.clone()]),
                |j| d_h[j],
                d_cell,
                d_pre,
            );
        });
    (
        to_tensor(d_pre, [batch, 4 * h], &device),
        previous.map(|_| to_tensor(d_cell, [batch, h], &device)),
    )
}

/// Runs `inputs` (`[steps, batch, input_dim]`) from the zero state; returns every step's
/// hidden state `[steps, batch, hidden]` and the activations for [`backward`].
pub(crate) fn run<B: Backend>(lstm: &Lstm<B>, inputs: Tensor<B, 3>) -> (Tensor<B, 3>, FusedRun<B>) {
    let [steps, batch, input_dim] = inputs.dims();
    let hidden_dim = lstm.hidden_dim();
    let (h, g) = (hidden_dim, 4 * hidden_dim);
    let device = inputs.device();
    // The input side of every step in one product, then the bias row by row.
    let mut gates = host_vec(
        inputs
            .clone()
            .reshape([steps * batch, input_dim])
            .matmul(lstm.input_weight.val()),
    );
    let bias = host_vec(lstm.bias.val());
    // [4H, H], contiguous: with the weights on the left and the state as `[H, batch]`, the
    // recurrent product runs about twice as fast as `[batch, H] x [H, 4H]` here.
    let hidden_weight_t = contiguous(lstm.hidden_weight.val().transpose());
    let mut cell = vec![0.0f32; steps * batch * h];
    let mut tanh_cell = vec![0.0f32; steps * batch * h];
    let mut hidden = vec![0.0f32; steps * batch * h];
    for t in 0..steps {
        let rows = t * batch..(t + 1) * batch;
        // [4H, batch]: the recurrent side, zero at the first step.
        let recurrent = (t > 0).then(|| {
            let previous = transposed(&hidden[(t - 1) * batch * h..t * batch * h], h);
            host_vec(
                hidden_weight_t
                    .clone()
                    .matmul(to_tensor(previous, [h, batch], &device)),
            )
        });
        let (done, now) = cell.split_at_mut(rows.start * h);
        let previous_cell = (t > 0).then(|| &done[(t - 1) * batch * h..]);
        gates[rows.start * g..rows.end * g]
            .par_chunks_mut(g)
            .zip(now[..batch * h].par_chunks_mut(h))
            .zip(tanh_cell[rows.start * h..rows.end * h].par_chunks_mut(h))
            .zip(hidden[rows.start * h..rows.end * h].par_chunks_mut(h))
            .enumerate()
            .for_each(|(b, (((pre, c), tc), out))| {
                if let Some(recurrent) = &recurrent {
                    for (p, r) in pre.iter_mut().zip(recurrent[b..].iter().step_by(batch)) {
                        *p += r;
                    }
                }
                for (p, bias) in pre.iter_mut().zip(&bias) {
                    *p += bias;
                }
                let previous = previous_cell.map(|p| &p[b * h..(b + 1) * h]);
                forward_row(pre, previous, c, tc, out);
            });
    }
    let output = to_tensor::<B, 2>(hidden, [steps * batch, h], &device);
    let run = FusedRun {
        inputs,
        hidden: output.clone(),
        gates,
        cell,
        tanh_cell,
    };
    (output.reshape([steps, batch, h]), run)
}

/// Backpropagation through time of a [`run`], given the gradient of the loss with respect
/// to every step's hidden state (`[steps, batch, hidden]`).
pub(crate) fn backward<B: Backend>(
    lstm: &Lstm<B>,
    run: FusedRun<B>,
    d_hidden: Tensor<B, 3>,
) -> LstmGrads<B> {
    let [steps, batch, h] = d_hidden.dims();
    let g = 4 * h;
    let input_dim = lstm.input_dim();
    let device = d_hidden.device();
    let d_hidden = host_vec(d_hidden);
    // [H, 4H]: d_h(t-1) = W_hh d_pre(t), as `[H, batch]` (the faster orientation, as above).
    let hidden_weight = lstm.hidden_weight.val();
    let mut d_pre = vec![0.0f32; steps * batch * g];
    let mut d_cell_next = vec![0.0f32; batch * h];
    let mut d_hidden_next: Option<Vec<f32>> = None;
    for t in (0..steps).rev() {
        let rows = t * batch..(t + 1) * batch;
        let previous_cell = (t > 0).then(|| &run.cell[(t - 1) * batch * h..t * batch * h]);
        d_pre[rows.start * g..rows.end * g]
            .par_chunks_mut(g)
            .zip(d_cell_next.par_chunks_mut(h))
            .enumerate()
            .for_each(|(b, (d, d_cell_next))| {
                let row = rows.start + b;
                let gates = &run.gates[row * g..(row + 1) * g];
                let tanh_cell = &run.tanh_cell[row * h..(row + 1) * h];
                let d_h_here = &d_hidden[row * h..(row + 1) * h];
                let d_h = |j: usize| {
                    d_h_here[j] + d_hidden_next.as_ref().map_or(0.0, |n| n[j * batch + b])
                };
                let previous = previous_cell.map(|p| &p[b * h..(b + 1) * h]);
                let (sig, candidate) = gates.split_at(3 * h);
                backward_row(sig, candidate, tanh_cell, previous, d_h, d_cell_next, d);
            });
        d_hidden_next = (t > 0).then(|| {
            let step = transposed(&d_pre[rows.start * g..rows.end * g], g);
            host_vec(
                hidden_weight
                    .clone()
                    .matmul(to_tensor(step, [g, batch], &device)),
            )
        });
    }
    let mut bias = vec![0.0f32; g];
    for row in d_pre.chunks_exact(g) {
        for (sum, d) in bias.iter_mut().zip(row) {
            *sum += d;
        }
    }
    // [steps * batch, 4H]
    let d_pre = to_tensor::<B, 2>(d_pre, [steps * batch, g], &device);
    let inputs = run.inputs.reshape([steps * batch, input_dim]);
    // [input, 4H] = X^T d_pre
    let input_weight = inputs.transpose().matmul(d_pre.clone());
    // [hidden, 4H]: step t's gates saw h(t-1); step 0 saw zeros.
    let previous = (steps - 1) * batch;
    let hidden_weight = if previous > 0 {
        run.hidden
            .narrow(0, 0, previous)
            .transpose()
            .matmul(d_pre.clone().narrow(0, batch, previous))
    } else {
        Tensor::zeros([h, g], &device)
    };
    // [steps * batch, input] = d_pre W_ih^T
    let d_inputs = d_pre.matmul(lstm.input_weight.val().transpose());
    LstmGrads {
        input_weight,
        hidden_weight,
        bias: to_tensor(bias, [g], &device),
        inputs: d_inputs.reshape([steps, batch, input_dim]),
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::backend::Cpu;
    use burn::module::Param;
    use burn::tensor::Distribution;

    fn random<const D: usize>(shape: [usize; D]) -> Tensor<Cpu, D> {
        Tensor::random(shape, Distribution::Normal(0.0, 0.5), &Default::default())
    }

    fn assert_close<const D: usize>(name: &str, a: Tensor<Cpu, D>, b: Tensor<Cpu, D>) {
        assert_eq!(a.dims(), b.dims(), "{name}");
        let (a, b) = (host_vec(a), host_vec(b));
        let scale = b.iter().fold(0.0f32, |m, x| m.max(x.abs()));
        assert!(scale > 0.0, "{name} is all zeros");
        for (i, (x, y)) in a.iter().zip(&b).enumerate() {
            assert!((x - y).abs() <= 1e-5 * scale, "{name}[{i}]: {x} vs {y}");
        }
    }

    type Plain = burn::backend::Autodiff<Cpu>;

    /// `lstm` on the autodiff backend, which runs the tensor-operation forms as the other
    /// backends do.
    fn on_plain(lstm: &Lstm<Cpu>) -> Lstm<Plain> {
        let lift = |p: &Param<Tensor<Cpu, 2>>| Param::from_tensor(Tensor::from_inner(p.val()));
        Lstm {
            input_weight: lift(&lstm.input_weight),
            hidden_weight: lift(&lstm.hidden_weight),
            bias: Param::from_tensor(Tensor::from_inner(lstm.bias.val())),
        }
    }

    /// The fused pass against the tensor-operation path the other backends run, and both
    /// against the step-by-step reference.
    #[test]
    fn fused_run_and_backward_match_tensor_operations() {
        let (steps, batch, input, hidden) = (5, 3, 7, 10);
        let lstm = Lstm::<Cpu> {
            input_weight: Param::from_tensor(random([input, 4 * hidden])),
            hidden_weight: Param::from_tensor(random([hidden, 4 * hidden])),
            bias: Param::from_tensor(random([4 * hidden])),
        };
        let plain = on_plain(&lstm);
        let inputs = random([steps, batch, input]);
        let d_hidden = random([steps, batch, hidden]);
        let (fused_out, fused_run) = run(&lstm, inputs.clone());
        let (tensor_out, tensor_run) =
            super::super::tensor::run(&plain, Tensor::from_inner(inputs.clone()));
        assert_close("hidden states", fused_out.clone(), tensor_out.inner());
        let first = inputs.clone().narrow(0, 0, 1).reshape([batch, input]);
        let rest = inputs.narrow(0, 1, steps - 1);
        let (stepped, _) = plain.forward_after(Tensor::from_inner(first), Tensor::from_inner(rest));
        assert_close(
            "stepped hidden states",
            fused_out
                .narrow(0, 1, steps - 1)
                .reshape([(steps - 1) * batch, hidden]),
            stepped.inner(),
        );
        let fused = backward(&lstm, fused_run, d_hidden.clone());
        let reference =
            super::super::tensor::backward(&plain, tensor_run, Tensor::from_inner(d_hidden));
        assert_close(
            "input_weight",
            fused.input_weight,
            reference.input_weight.inner(),
        );
        assert_close(
            "hidden_weight",
            fused.hidden_weight,
            reference.hidden_weight.inner(),
        );
        assert_close("bias", fused.bias, reference.bias.inner());
        assert_close("inputs", fused.inputs, reference.inputs.inner());
    }

    /// One step's fused cell and its backward pass against the tensor operations, with and
    /// without a previous cell.
    #[test]
    fn the_fused_cell_matches_tensor_operations() {
        let (batch, hidden) = (3, 10);
        let pre = random([batch, 4 * hidden]);
        let d_hidden = random([batch, hidden]);
        let d_later = random([batch, hidden]);
        for previous in [None, Some(random([batch, hidden]))] {
            let lift = |t: &Tensor<Cpu, 2>| Tensor::<Plain, 2>::from_inner(t.clone());
            let fused = cell(pre.clone(), previous.clone());
            let tensors = Lstm::<Plain>::cell(lift(&pre), previous.as_ref().map(lift));
            for (name, a, b) in [
                ("gates", &fused.gates, &tensors.gates),
                ("candidate", &fused.candidate, &tensors.candidate),
                ("cell", &fused.cell, &tensors.cell),
                ("tanh_cell", &fused.tanh_cell, &tensors.tanh_cell),
                ("hidden", &fused.hidden, &tensors.hidden),
            ] {
                assert_close(name, a.clone(), b.clone().inner());
            }
            let (d_pre, d_previous) = cell_backward(
                &fused,
                previous.as_ref(),
                d_hidden.clone(),
                Some(d_later.clone()),
            );
            let plain_previous = previous.as_ref().map(lift);
            let (d_pre_ref, d_previous_ref) = tensors.backward(
                plain_previous.as_ref(),
                lift(&d_hidden),
                Some(lift(&d_later)),
            );
            assert_close("d_pre", d_pre, d_pre_ref.inner());
            assert_eq!(d_previous.is_some(), previous.is_some());
            if let (Some(a), Some(b)) = (d_previous, d_previous_ref) {
                assert_close("d_previous", a, b.inner());
            }
        }
    }
}
