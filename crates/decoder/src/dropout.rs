//! Inverted dropout with masks drawn from an RNG the caller owns (never the backend's global
//! generator), so that training is reproducible from a seed and a resumed run draws exactly
//! what an uninterrupted one would.

use burn::tensor::backend::Backend;
use burn::tensor::{Tensor, TensorData};
use rand::RngCore;

/// An inverted-dropout mask of `shape` drawn from `rng`: each element is `1 / (1 - p)` with
/// probability `1 - p`, else 0. `None` when `p` is 0.
pub(crate) fn dropout_mask<B: Backend, const D: usize>(
    shape: burn::tensor::Shape,
    p: f64,
    rng: &mut (dyn RngCore + '_),
    device: &B::Device,
) -> Option<Tensor<B, D>> {
    if p <= 0.0 {
        return None;
    }
    let n = shape.num_elements();
    let keep = 1.0 - p;
    // An element is kept when a uniform u32 falls below keep * 2^32.
    let threshold = (keep * 4_294_967_296.0) as u64;
    let scale = (1.0 / keep) as f32;
    let mut bytes = vec![0u8; 4 * n];
    rng.fill_bytes(&mut bytes);
    let mask: Vec<f32> = bytes
        .chunks_exact(4)
        .map(|b| {
            if u64::from(u32::from_le_bytes([b[0], b[1], b[2], b[3]])) < threshold {
                scale
            } else {
                0.0
            }
        })
        .collect();
    Some(Tensor::from_data(TensorData::new(mask, shape), device))
}

/// Inverted dropout with a mask drawn from `rng`; the identity without an RNG (inference).
pub(crate) fn dropout<B: Backend, const D: usize>(
    x: Tensor<B, D>,
    p: f64,
    rng: Option<&mut (dyn RngCore + '_)>,
) -> Tensor<B, D> {
    let Some(rng) = rng else { return x };
    match dropout_mask::<B, D>(x.shape(), p, rng, &x.device()) {
        Some(mask) => x * mask,
        None => x,
    }
}
