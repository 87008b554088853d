//! Additive attention's two per-step passes over a batch's regions, and their gradients:
//!
//! - the scores `e_br = w . tanh(P_br + s_b) + c` ([`scores`]), `P` the regions' side
//!   (`[batch, regions, dim]`, computed once per batch), `s` the state's side (`[batch, dim]`);
//! - the gated context `sigmoid(gate_b) * sum_r alpha_br a_br` over the grid `a`
//!   (`[batch, regions, feature]`, [`gated_context`]).
//!
//! As tensor operations the broadcast add and the tanh over `[batch, regions, dim]` took 25-55
//! ms of a step here (800k values, strided single-threaded passes with scalar `tanhf`), over
//! half of the attention model's forward step; the context was a batched product of one row
//! per caption and four elementwise passes. On the CPU each is one multi-threaded pass per
//! caption here, reading the grid where it lies.

use burn::tensor::Tensor;
use burn::tensor::backend::Backend;
use rayon::prelude::*;
use wide::f32x8;

use crate::backend::is_host;
use crate::host::{host_vec, map_in_place, sigmoid, sigmoid_lanes, to_tensor, with_values};

/// The scores' input `tanh(P + s)` (`[batch, regions, dim]`, what [`scores_backward`] reads)
/// and the scores `[batch, regions]`, for `weight` `[dim]` and `bias` `[1]`.
pub fn scores<B: Backend>(
    projected: Tensor<B, 3>,
    state: Tensor<B, 2>,
    weight: Tensor<B, 1>,
    bias: Tensor<B, 1>,
) -> (Tensor<B, 3>, Tensor<B, 2>) {
    let [batch, regions, dim] = projected.dims();
    if !is_host::<B>() {
        let layer = (projected + state.unsqueeze_dim(1)).tanh();
        let scores = layer
            .clone()
            .reshape([batch * regions, dim])
            .matmul(weight.reshape([dim, 1]))
            .reshape([batch, regions])
            + bias.reshape([1, 1]);
        return (layer, scores);
    }
    let device = projected.device();
    let mut layer = host_vec(projected);
    let (state, weight) = (host_vec(state), host_vec(weight));
    let bias = host_vec(bias)[0];
    let mut scores = vec![0.0f32; batch * regions];
    layer
        .par_chunks_mut(regions * dim)
        .zip(scores.par_chunks_mut(regions))
        .zip(state.par_chunks(dim))
        .for_each(|((rows, scores), state)| {
            for (row, score) in rows.chunks_exact_mut(dim).zip(scores) {
                for (x, s) in row.iter_mut().zip(state) {
                    *x += s;
                }
                map_in_place(row, f32x8::tanh, f32::tanh);
                *score = bias + dot(row, &weight);
            }
        });
    (
        to_tensor(layer, [batch, regions, dim], &device),
        to_tensor(scores, [batch, regions], &device),
    )
}

/// Gradients from [`scores_backward`].
#[derive(Debug, Clone)]
pub struct ScoreGrads<B: Backend> {
    /// `[batch, regions, dim]`: the accumulator passed in, plus this step's gradient of `P`.
    pub projected: Tensor<B, 3>,
    /// `[batch, dim]`: of the state's side.
    pub state: Tensor<B, 2>,
    /// `[dim]`
    pub weight: Tensor<B, 1>,
    /// `[1]`
    pub bias: Tensor<B, 1>,
}

/// The gradients of [`scores`] given those of the scores (`d_scores` `[batch, regions]`) and
/// its `layer`; this step's gradient of `P` is added to `d_projected`, where the steps of a
/// sequence accumulate theirs.
pub fn scores_backward<B: Backend>(
    layer: &Tensor<B, 3>,
    d_scores: Tensor<B, 2>,
    weight: Tensor<B, 1>,
    d_projected: Tensor<B, 3>,
) -> ScoreGrads<B> {
    let [batch, regions, dim] = layer.dims();
    if !is_host::<B>() {
        // d/d(P + s) = d_e w (1 - tanh^2)
        let d_layer = d_scores.clone().reshape([batch, regions, 1]) * weight.reshape([1, 1, dim]);
        let d_inside = d_layer.clone() - d_layer * layer.clone().square();
        return ScoreGrads {
            projected: d_projected + d_inside.clone(),
            state: d_inside.sum_dim(1).reshape([batch, dim]),
            weight: layer
                .clone()
                .reshape([batch * regions, dim])
                .transpose()
                .matmul(d_scores.clone().reshape([batch * regions, 1]))
                .reshape([dim]),
            bias: d_scores.sum().reshape([1]),
        };
    }
    let device = layer.device();
    let (d_scores, weight) = (host_vec(d_scores), host_vec(weight));
    let mut d_projected = host_vec(d_projected);
    let mut d_state = vec![0.0f32; batch * dim];
    // Per caption: its part of the weight's gradient, summed after.
    let d_weights: Vec<Vec<f32>> = with_values(layer, |layer| {
        d_projected
            .par_chunks_mut(regions * dim)
            .zip(d_state.par_chunks_mut(dim))
            .zip(layer.par_chunks(regions * dim))
            .zip(d_scores.par_chunks(regions))
            .map(|(((d_rows, d_state), rows), d_scores)| {
                let mut d_weight = vec![0.0f32; dim];
                for ((d_row, row), &d_e) in d_rows
                    .chunks_exact_mut(dim)
                    .zip(rows.chunks_exact(dim))
                    .zip(d_scores)
                {
                    for a in 0..dim {
                        let l = row[a];
                        let d_inside = d_e * weight[a] * (1.0 - l * l);
                        d_row[a] += d_inside;
                        d_state[a] += d_inside;
                        d_weight[a] += d_e * l;
                    }
                }
                d_weight
            })
            .collect()
    });
    let mut d_weight = vec![0.0f32; dim];
    for part in &d_weights {
        for (sum, d) in d_weight.iter_mut().zip(part) {
            *sum += d;
        }
    }
    let d_bias: f32 = d_scores.iter().sum();
    ScoreGrads {
        projected: to_tensor(d_projected, [batch, regions, dim], &device),
        state: to_tensor(d_state, [batch, dim], &device),
        weight: to_tensor(d_weight, [dim], &device),
        bias: to_tensor(vec![d_bias], [1], &device),
    }
}

/// The context, the gate and the gated context of [`gated_context`], each `[batch, feature]`.
#[derive(Debug, Clone)]
pub struct GatedContext<B: Backend> {
    /// `sum_r alpha_r a_r`
    pub context: Tensor<B, 2>,
    /// `sigmoid(gate)`
    pub beta: Tensor<B, 2>,
    /// `beta * context`
    pub gated: Tensor<B, 2>,
}

/// The context of the attention weights `alpha` (`[batch, regions]`) over `grid`
/// (`[batch, regions, feature]`), gated by `sigmoid(gate)` (`gate` `[batch, feature]`).
pub fn gated_context<B: Backend>(
    alpha: Tensor<B, 2>,
    grid: &Tensor<B, 3>,
    gate: Tensor<B, 2>,
) -> GatedContext<B> {
    let [batch, regions, features] = grid.dims();
    if !is_host::<B>() {
        let context = alpha
            .unsqueeze_dim::<3>(1)
            .matmul(grid.clone())
            .reshape([batch, features]);
        let beta = burn::tensor::activation::sigmoid(gate);
        let gated = beta.clone() * context.clone();
        return GatedContext {
            context,
            beta,
            gated,
        };
    }
    let device = alpha.device();
    let alpha = host_vec(alpha);
    let mut beta = host_vec(gate);
    let mut context = vec![0.0f32; batch * features];
    let mut gated = vec![0.0f32; batch * features];
    with_values(grid, |grid| {
        context
            .par_chunks_mut(features)
            .zip(beta.par_chunks_mut(features))
            .zip(gated.par_chunks_mut(features))
            .zip(grid.par_chunks(regions * features))
            .zip(alpha.par_chunks(regions))
            .for_each(|((((context, beta), gated), grid), alpha)| {
                for (row, &a) in grid.chunks_exact(features).zip(alpha) {
                    for (c, x) in context.iter_mut().zip(row) {
                        *c += a * x;
                    }
                }
                map_in_place(beta, sigmoid_lanes, sigmoid);
                for ((z, b), c) in gated.iter_mut().zip(beta.iter()).zip(context.iter()) {
                    *z = b * c;
                }
            });
    });
    let tensor = |values| to_tensor(values, [batch, features], &device);
    GatedContext {
        context: tensor(context),
        beta: tensor(beta),
        gated: tensor(gated),
    }
}

/// The gradients of the gate's input (`[batch, feature]`) and of the attention weights
/// (`[batch, regions]`) from that of the gated context, `d_gated`.
pub fn gated_context_backward<B: Backend>(
    d_gated: Tensor<B, 2>,
    forward: &GatedContext<B>,
    grid: &Tensor<B, 3>,
) -> (Tensor<B, 2>, Tensor<B, 2>) {
    let [batch, regions, features] = grid.dims();
    if !is_host::<B>() {
        let beta = forward.beta.clone();
        let d_context = d_gated.clone() * beta.clone();
        let d_gate = d_gated * forward.context.clone() * (beta.clone() - beta.square());
        // [batch, regions, feature] x [batch, feature, 1]
        let d_alpha = grid
            .clone()
            .matmul(d_context.unsqueeze_dim(2))
            .reshape([batch, regions]);
        return (d_gate, d_alpha);
    }
    let device = d_gated.device();
    let mut d_gate = host_vec(d_gated);
    let mut d_alpha = vec![0.0f32; batch * regions];
    with_values(&forward.context, |context| {
        with_values(&forward.beta, |beta| {
            with_values(grid, |grid| {
                d_gate
                    .par_chunks_mut(features)
                    .zip(d_alpha.par_chunks_mut(regions))
                    .zip(context.par_chunks(features))
                    .zip(beta.par_chunks(features))
                    .zip(grid.par_chunks(regions * features))
                    .for_each(|((((d_gate, d_alpha), context), beta), grid)| {
                        // d_gate holds d_gated until it is overwritten, value by value.
                        let d_context: Vec<f32> =
                            d_gate.iter().zip(beta).map(|(d, b)| d * b).collect();
                        for ((d, c), b) in d_gate.iter_mut().zip(context).zip(beta) {
                            *d *= c * (b - b * b);
                        }
                        for (d, row) in d_alpha.iter_mut().zip(grid.chunks_exact(features)) {
                            *d = dot(row, &d_context);
                        }
                    });
            })
        })
    });
    (
        to_tensor(d_gate, [batch, features], &device),
        to_tensor(d_alpha, [batch, regions], &device),
    )
}

fn dot(a: &[f32], b: &[f32]) -> f32 {
    let (a8, a_rest) = a.as_chunks::<8>();
    let (b8, b_rest) = b.as_chunks::<8>();
    let mut sum = f32x8::ZERO;
    for (x, y) in a8.iter().zip(b8) {
        sum = f32x8::new(*x).mul_add(f32x8::new(*y), sum);
    }
    sum.reduce_add() + a_rest.iter().zip(b_rest).map(|(x, y)| x * y).sum::<f32>()
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::backend::Cpu;
    use burn::backend::Autodiff;
    use burn::tensor::Distribution;

    type Plain = Autodiff<Cpu>;

    fn random<const D: usize>(shape: [usize; D], seed: u64) -> Vec<f32> {
        let device = Default::default();
        <Cpu as Backend>::seed(&device, seed);
        host_vec(Tensor::<Cpu, D>::random(
            shape,
            Distribution::Normal(0.0, 0.7),
            &device,
        ))
    }

    fn both<const D: usize>(
        values: &[f32],
        shape: [usize; D],
    ) -> (Tensor<Cpu, D>, Tensor<Plain, D>) {
        let device = Default::default();
        (
            to_tensor(values.to_vec(), shape, &device),
            to_tensor(values.to_vec(), shape, &device),
        )
    }

    fn assert_close<const D: usize>(name: &str, host: Tensor<Cpu, D>, reference: Tensor<Plain, D>) {
        assert_eq!(host.dims(), reference.dims(), "{name}");
        let (a, b) = (host_vec(host), host_vec(reference.inner()));
        let scale = b.iter().fold(0.0f32, |m, x| m.max(x.abs()));
        assert!(scale > 0.0, "{name} is all zeros");
        for (i, (x, y)) in a.iter().zip(&b).enumerate() {
            assert!((x - y).abs() <= 1e-5 * scale, "{name}[{i}]: {x} vs {y}");
        }
    }

    /// The CPU pass against the tensor operations every other backend runs (a `dim` that is
    /// not a multiple of 8 covers the scalar tails).
    #[test]
    fn the_host_pass_matches_tensor_operations() {
        let (batch, regions, dim) = (3, 5, 11);
        let projected = random([batch, regions, dim], 1);
        let state = random([batch, dim], 2);
        let weight = random([dim], 3);
        let d_scores = random([batch, regions], 4);
        let accumulated = random([batch, regions, dim], 5);
        let (p, p_ref) = both(&projected, [batch, regions, dim]);
        let (s, s_ref) = both(&state, [batch, dim]);
        let (w, w_ref) = both(&weight, [dim]);
        let (b, b_ref) = both(&[0.25], [1]);
        let (layer, scores) = super::scores(p, s, w.clone(), b);
        let (layer_ref, scores_ref) = super::scores(p_ref, s_ref, w_ref.clone(), b_ref);
        assert_close("scores", scores, scores_ref);
        assert_close("layer", layer.clone(), layer_ref.clone());
        let (d, d_ref) = both(&d_scores, [batch, regions]);
        let (acc, acc_ref) = both(&accumulated, [batch, regions, dim]);
        let host = scores_backward(&layer, d, w, acc);
        let reference = scores_backward(&layer_ref, d_ref, w_ref, acc_ref);
        assert_close("d projected", host.projected, reference.projected);
        assert_close("d state", host.state, reference.state);
        assert_close("d weight", host.weight, reference.weight);
        assert_close("d bias", host.bias, reference.bias);
    }

    /// The gated context's CPU pass against the tensor operations, both ways.
    #[test]
    fn the_gated_context_matches_tensor_operations() {
        let (batch, regions, features) = (3, 4, 13);
        let alpha = random([batch, regions], 11);
        let grid = random([batch, regions, features], 12);
        let gate = random([batch, features], 13);
        let d_gated = random([batch, features], 14);
        let (a, a_ref) = both(&alpha, [batch, regions]);
        let (g, g_ref) = both(&grid, [batch, regions, features]);
        let (z, z_ref) = both(&gate, [batch, features]);
        let host = gated_context(a, &g, z);
        let reference = gated_context(a_ref, &g_ref, z_ref);
        assert_close("context", host.context.clone(), reference.context.clone());
        assert_close("beta", host.beta.clone(), reference.beta.clone());
        assert_close("gated", host.gated.clone(), reference.gated.clone());
        let (d, d_ref) = both(&d_gated, [batch, features]);
        let (d_gate, d_alpha) = gated_context_backward(d, &host, &g);
        let (d_gate_ref, d_alpha_ref) = gated_context_backward(d_ref, &reference, &g_ref);
        assert_close("d gate", d_gate, d_gate_ref);
        assert_close("d alpha", d_alpha, d_alpha_ref);
    }

    /// The gated context's gradients against autodiff of its tensor form.
    #[test]
    fn the_gated_context_gradients_are_its_own() {
        let (batch, regions, features) = (2, 3, 5);
        let device = Default::default();
        let alpha = to_tensor::<Plain, 2>(random([batch, regions], 15), [batch, regions], &device)
            .require_grad();
        let grid = to_tensor::<Plain, 3>(
            random([batch, regions, features], 16),
            [batch, regions, features],
            &device,
        );
        let gate = to_tensor::<Plain, 2>(random([batch, features], 17), [batch, features], &device)
            .require_grad();
        let d = to_tensor::<Plain, 2>(random([batch, features], 18), [batch, features], &device);
        let forward = gated_context(alpha.clone(), &grid, gate.clone());
        let autodiff = (forward.gated.clone() * d.clone()).sum().backward();
        let (d_gate, d_alpha) = gated_context_backward(d, &forward, &grid);
        for (name, ours, reference) in [
            ("gate", d_gate, gate.grad(&autodiff).unwrap()),
            ("alpha", d_alpha, alpha.grad(&autodiff).unwrap()),
        ] {
            for (i, (x, y)) in host_vec(ours.inner())
                .iter()
                .zip(&host_vec(reference))
                .enumerate()
            {
                assert!((x - y).abs() <= 1e-5, "{name}[{i}]: {x} vs {y}");
            }
        }
    }

    /// The tensor form's gradients against autodiff of its forward pass.
    #[test]
    fn the_gradients_are_those_of_the_scores() {
        let (batch, regions, dim) = (2, 3, 4);
        let device = Default::default();
        let tracked = |values: Vec<f32>, shape: [usize; 2]| {
            to_tensor::<Plain, 2>(values, shape, &device).require_grad()
        };
        let projected = to_tensor::<Plain, 3>(
            random([batch, regions, dim], 6),
            [batch, regions, dim],
            &device,
        )
        .require_grad();
        let state = tracked(random([batch, dim], 7), [batch, dim]);
        let weight = to_tensor::<Plain, 1>(random([dim], 8), [dim], &device).require_grad();
        let bias = to_tensor::<Plain, 1>(vec![0.1], [1], &device).require_grad();
        let d_scores = random([batch, regions], 9);
        let (layer, scores) = super::scores(
            projected.clone(),
            state.clone(),
            weight.clone(),
            bias.clone(),
        );
        let d = to_tensor::<Plain, 2>(d_scores.clone(), [batch, regions], &device);
        let autodiff = (scores * d.clone()).sum().backward();
        let ours = scores_backward(
            &layer,
            d,
            weight.clone(),
            Tensor::zeros([batch, regions, dim], &device),
        );
        let close = |name: &str, a: Vec<f32>, b: Vec<f32>| {
            for (i, (x, y)) in a.iter().zip(&b).enumerate() {
                assert!((x - y).abs() <= 1e-5, "{name}[{i}]: {x} vs {y}");
            }
        };
        close(
            "projected",
            host_vec(ours.projected.inner()),
            host_vec(projected.grad(&autodiff).unwrap()),
        );
        close(
            "state",
            host_vec(ours.state.inner()),
            host_vec(state.grad(&autodiff).unwrap()),
        );
        close(
            "weight",
            host_vec(ours.weight.inner()),
            host_vec(weight.grad(&autodiff).unwrap()),
        );
        close(
            "bias",
            host_vec(ours.bias.inner()),
            host_vec(bias.grad(&autodiff).unwrap()),
        );
    }
}
