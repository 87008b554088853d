//! Per-channel standardisation `(x - mean) * inv_std` of rows of channels: a batch's pooled
//! features (`[batch, channels]`) or its grid of regions (`[batch, regions, channels]`, 6.4M
//! values for a Flickr8k batch).
//!
//! As tensor operations that is two broadcast passes on one thread; on the CPU it is one pass,
//! rows in parallel.

use burn::tensor::Tensor;
use burn::tensor::backend::Backend;
use rayon::prelude::*;

use crate::backend::is_host;
use crate::host::{host_vec, to_tensor};

/// `(x - mean) * inv_std` over the last dimension of `x`, `mean` and `inv_std` `[channels]`.
pub fn standardise<B: Backend, const D: usize>(
    x: Tensor<B, D>,
    mean: Tensor<B, 1>,
    inv_std: Tensor<B, 1>,
) -> Tensor<B, D> {
    let dims = x.dims();
    let channels = dims[D - 1];
    if !is_host::<B>() {
        // [1, .., 1, channels], broadcast over the rows.
        let mut shape = [1; D];
        shape[D - 1] = channels;
        return (x - mean.reshape(shape)) * inv_std.reshape(shape);
    }
    let device = x.device();
    let (mean, inv_std) = (host_vec(mean), host_vec(inv_std));
    let mut values = host_vec(x);
    values.par_chunks_mut(channels).for_each(|row| {
        for ((x, m), s) in row.iter_mut().zip(&mean).zip(&inv_std) {
            *x = (*x - m) * s;
        }
    });
    to_tensor(values, dims, &device)
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::backend::Cpu;
    use burn::backend::Autodiff;
    use burn::tensor::Distribution;

    #[test]
    fn the_host_pass_matches_tensor_operations() {
        let device = Default::default();
        let x = Tensor::<Cpu, 3>::random([2, 3, 5], Distribution::Default, &device);
        let mean = Tensor::<Cpu, 1>::random([5], Distribution::Default, &device);
        let inv_std = Tensor::<Cpu, 1>::random([5], Distribution::Default, &device);
        let host = host_vec(standardise(x.clone(), mean.clone(), inv_std.clone()));
        let lift1 = |t: Tensor<Cpu, 1>| Tensor::<Autodiff<Cpu>, 1>::from_inner(t);
        let reference =
            host_vec(standardise(Tensor::from_inner(x), lift1(mean), lift1(inv_std)).inner());
        assert_eq!(host.len(), 30);
        for (i, (a, b)) in host.iter().zip(&reference).enumerate() {
            assert!(
                (a - b).abs() <= 1e-6 * b.abs().max(1.0),
                "[{i}]: {a} vs {b}"
            );
        }
    }
}
