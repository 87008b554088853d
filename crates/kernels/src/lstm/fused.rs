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

use super::{Lstm, LstmGrads};
use crate::host::{contiguous, host_vec, to_tensor, transposed};

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

fn sigmoid(x: f32) -> f32 {
    1.0 / (1.0 + (-x).exp())
}

fn sigmoid_lanes(x: f32x8) -> f32x8 {
    let one = f32x8::splat(1.0);
    one / (one + (-x).exp())
}

/// Applies `lanes` to `values` eight at a time and `scalar` to the rest: libm's scalar
/// `expf` and `tanhf` took a third of the forward pass.
fn map_in_place(values: &mut [f32], lanes: impl Fn(f32x8) -> f32x8, scalar: impl Fn(f32) -> f32) {
    let (chunks, rest) = values.as_chunks_mut::<8>();
    for chunk in chunks {
        *chunk = lanes(f32x8::new(*chunk)).to_array();
    }
    for value in rest {
        *value = scalar(*value);
    }
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
                let (sig, cand) = pre.split_at_mut(3 * h);
                map_in_place(sig, sigmoid_lanes, sigmoid);
                map_in_place(cand, f32x8::tanh, f32::tanh);
                for j in 0..h {
                    let previous = previous_cell.map_or(0.0, |p| p[b * h + j]);
                    c[j] = sig[h + j] * previous + sig[j] * cand[j];
                }
                tc.copy_from_slice(c);
                map_in_place(tc, f32x8::tanh, f32::tanh);
                for j in 0..h {
                    out[j] = sig[2 * h + j] * tc[j];
                }
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
                for j in 0..h {
                    let (i, f, o) = (gates[j], gates[h + j], gates[2 * h + j]);
                    let candidate = gates[3 * h + j];
                    let tc = tanh_cell[j];
                    let d_h =
                        d_h_here[j] + d_hidden_next.as_ref().map_or(0.0, |n| n[j * batch + b]);
                    // h = o tanh(c_t);  c_t = f c_(t-1) + i g
                    let d_cell = d_h * o * (1.0 - tc * tc) + d_cell_next[j];
                    let previous = previous_cell.map_or(0.0, |p| p[b * h + j]);
                    d_cell_next[j] = d_cell * f;
                    // Through the activations: sigmoid' = s (1 - s), tanh' = 1 - g^2.
                    d[j] = d_cell * candidate * (i - i * i);
                    d[h + j] = d_cell * previous * (f - f * f);
                    d[2 * h + j] = d_h * tc * (o - o * o);
                    d[3 * h + j] = d_cell * i * (1.0 - candidate * candidate);
                }
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
        let inputs = random([steps, batch, input]);
        let d_hidden = random([steps, batch, hidden]);
        let (fused_out, fused_run) = run(&lstm, inputs.clone());
        let (tensor_out, tensor_run) = super::super::tensor::run(&lstm, inputs.clone());
        assert_close("hidden states", fused_out.clone(), tensor_out);
        let first = inputs.clone().narrow(0, 0, 1).reshape([batch, input]);
        let rest = inputs.narrow(0, 1, steps - 1);
        let (stepped, _) = lstm.forward_after(first, rest);
        assert_close(
            "stepped hidden states",
            fused_out
                .narrow(0, 1, steps - 1)
                .reshape([(steps - 1) * batch, hidden]),
            stepped,
        );
        let fused = backward(&lstm, fused_run, d_hidden.clone());
        let reference = super::super::tensor::backward(&lstm, tensor_run, d_hidden);
        assert_close("input_weight", fused.input_weight, reference.input_weight);
        assert_close(
            "hidden_weight",
            fused.hidden_weight,
            reference.hidden_weight,
        );
        assert_close("bias", fused.bias, reference.bias);
        assert_close("inputs", fused.inputs, reference.inputs);
    }
}
