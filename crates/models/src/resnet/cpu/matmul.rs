//! Matrix products with each convolution's bias, residual add and ReLU applied in the pass
//! that finishes an output tile, while the tile is still in cache.
//!
//! The products are faer's (`faer::linalg::matmul`: safe, zero-copy views of row-major
//! slices, explicit threading), always on one thread: the callers split the output into row
//! tiles and hand them to rayon, so a tile's product and its finishing pass run back to back
//! on the same core.

use faer::{Accum, MatMut, MatRef, Par};

/// A convolution as a matrix product: `[k, n]` row-major weights (`k` inputs per output
/// position, `n` output channels) and one bias per output channel (the folded BatchNorm).
#[derive(Debug, Clone, PartialEq)]
pub(crate) struct Weights {
    pub k: usize,
    pub n: usize,
    pub matrix: Vec<f32>,
    pub bias: Vec<f32>,
}

/// What happens to each value of an output tile after the product (the bias always).
#[derive(Debug, Clone, Copy)]
pub(crate) struct Finish<'a> {
    pub relu: bool,
    /// Values added before the ReLU, laid out as the tile (the shortcut of a block).
    pub residual: Option<&'a [f32]>,
}

impl Finish<'_> {
    /// Just the bias.
    pub const BIAS: Finish<'static> = Finish {
        relu: false,
        residual: None,
    };
    /// `relu(x + bias)`.
    pub const RELU: Finish<'static> = Finish {
        relu: true,
        residual: None,
    };
}

/// One output tile: `out = finish(lhs x weights.matrix + weights.bias)`, `lhs` being
/// `[m, weights.k]` row-major and `out` `[m, weights.n]`.
pub(crate) fn product(lhs: &[f32], weights: &Weights, out: &mut [f32], finish: Finish<'_>) {
    let (k, n) = (weights.k, weights.n);
    let m = out.len() / n;
    let lhs = MatRef::from_row_major_slice(lhs, m, k);
    let rhs = MatRef::from_row_major_slice(&weights.matrix, k, n);
    let dst = MatMut::from_row_major_slice_mut(out, m, n);
    faer::linalg::matmul::matmul(dst, Accum::Replace, lhs, rhs, 1.0f32, Par::Seq);
    finish_rows(out, &weights.bias, finish);
}

/// Applies the bias, residual and ReLU to `out`, rows of `bias.len()` values.
pub(crate) fn finish_rows(out: &mut [f32], bias: &[f32], finish: Finish<'_>) {
    let n = bias.len();
    match (finish.residual, finish.relu) {
        (Some(residual), relu) => {
            for (row, res) in out.chunks_exact_mut(n).zip(residual.chunks_exact(n)) {
                for ((v, b), r) in row.iter_mut().zip(bias).zip(res) {
                    let x = *v + b + r;
                    *v = if relu { x.max(0.0) } else { x };
                }
            }
        }
        (None, true) => {
            for row in out.chunks_exact_mut(n) {
                for (v, b) in row.iter_mut().zip(bias) {
                    *v = (*v + b).max(0.0);
                }
            }
        }
        (None, false) => {
            for row in out.chunks_exact_mut(n) {
                for (v, b) in row.iter_mut().zip(bias) {
                    *v += b;
                }
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn product_adds_bias_residual_and_clamps() {
        // [2, 3] x [3, 2]
        let lhs = [1.0, 2.0, 3.0, -1.0, 0.0, 1.0];
        let weights = Weights {
            k: 3,
            n: 2,
            matrix: vec![1.0, 0.0, 0.0, 1.0, 1.0, -1.0],
            bias: vec![0.5, -0.5],
        };
        let mut out = vec![f32::NAN; 4];
        product(&lhs, &weights, &mut out, Finish::BIAS);
        assert_eq!(out, [4.5, -1.5, 0.5, -1.5]);
        product(&lhs, &weights, &mut out, Finish::RELU);
        assert_eq!(out, [4.5, 0.0, 0.5, 0.0]);
        let residual = [1.0, 2.0, -1.0, 1.0];
        let finish = Finish {
            relu: true,
            residual: Some(&residual),
        };
        product(&lhs, &weights, &mut out, finish);
        assert_eq!(out, [5.5, 0.5, 0.0, 0.0]);
    }
}
