//! Tensors as host buffers, for the fused CPU passes.

use std::any::Any;

use rayon::prelude::*;

use burn::tensor::backend::Backend;
use burn::tensor::{Tensor, TensorData};
use wide::f32x8;

/// Elements per parallel work item of a pass over one large buffer.
pub(crate) const CHUNK: usize = 1 << 16;

/// A float tensor's values, row-major (no copy for an unshared contiguous tensor).
pub(crate) fn host_vec<B: Backend, const D: usize>(tensor: Tensor<B, D>) -> Vec<f32> {
    tensor
        .into_data()
        .into_vec::<f32>()
        .expect("the fused kernels work on f32 tensors")
}

/// Calls `f` with `tensor`'s values, row-major: borrowed from the CPU backend's buffer when
/// it is contiguous (no copy even when the tensor is shared, as a batch's grid is), else a
/// copy.
pub(crate) fn with_values<B: Backend, const D: usize, R>(
    tensor: &Tensor<B, D>,
    f: impl FnOnce(&[f32]) -> R,
) -> R {
    let primitive: Box<dyn Any> = Box::new(tensor.clone().into_primitive().tensor());
    if let Ok(flex) = primitive.downcast::<burn_flex::FlexTensor>()
        && let Some(values) = flex.as_slice::<f32>()
    {
        return f(values);
    }
    f(&host_vec(tensor.clone()))
}

/// Row-major `values` as a tensor of `shape` (no copy).
pub(crate) fn to_tensor<B: Backend, const D: usize>(
    values: Vec<f32>,
    shape: [usize; D],
    device: &B::Device,
) -> Tensor<B, D> {
    Tensor::from_data(TensorData::new(values, shape), device)
}

/// Applies `lanes` to `values` eight at a time and `scalar` to the rest: libm's scalar
/// `expf` and `tanhf` took a third of the LSTM's forward pass.
pub(crate) fn map_in_place(
    values: &mut [f32],
    lanes: impl Fn(f32x8) -> f32x8,
    scalar: impl Fn(f32) -> f32,
) {
    let (chunks, rest) = values.as_chunks_mut::<8>();
    for chunk in chunks {
        *chunk = lanes(f32x8::new(*chunk)).to_array();
    }
    for value in rest {
        *value = scalar(*value);
    }
}

pub(crate) fn sigmoid(x: f32) -> f32 {
    1.0 / (1.0 + (-x).exp())
}

pub(crate) fn sigmoid_lanes(x: f32x8) -> f32x8 {
    let one = f32x8::splat(1.0);
    one / (one + (-x).exp())
}

/// `tensor` with a contiguous memory layout (a copy only when it is a strided view).
pub fn contiguous<B: Backend, const D: usize>(tensor: Tensor<B, D>) -> Tensor<B, D> {
    let dims = tensor.dims();
    let n: usize = dims.iter().product();
    tensor.reshape([n]).reshape(dims)
}

/// Row-major `values` with rows of `columns` values, transposed, in square tiles so that
/// reads and writes both stay within a few cache lines; bands of output rows in parallel.
pub(crate) fn transposed(values: &[f32], columns: usize) -> Vec<f32> {
    const TILE: usize = 16;
    let rows = values.len() / columns;
    let mut out = vec![0.0f32; values.len()];
    // Each band is TILE output rows: the input's columns c0..c0 + TILE.
    out.par_chunks_mut(TILE * rows)
        .enumerate()
        .for_each(|(band, out)| {
            let c0 = band * TILE;
            let width = out.len() / rows;
            for r0 in (0..rows).step_by(TILE) {
                for r in r0..(r0 + TILE).min(rows) {
                    for c in 0..width {
                        out[c * rows + r] = values[r * columns + c0 + c];
                    }
                }
            }
        });
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn tiled_transpose_moves_every_value() {
        let (rows, columns) = (37, 45);
        let values: Vec<f32> = (0..rows * columns).map(|i| i as f32).collect();
        let out = transposed(&values, columns);
        for r in 0..rows {
            for c in 0..columns {
                assert_eq!(out[c * rows + r], values[r * columns + c]);
            }
        }
    }
}
