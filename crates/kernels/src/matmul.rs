//! Matrix products as concurrent blocks of rows.
//!
//! gemm is slow here on some of the output layer's shapes in one call and fast on two
//! concurrent halves: `[736, 512] x [512, 8000]` (the logits) 25.9 -> 17 ms, `[256, 64] x
//! [64, 8000]` (the image part's weight gradient) 5.7 -> 1.4 ms. Other backends get one block.

use std::ops::Range;

use burn::tensor::Tensor;
use burn::tensor::backend::Backend;
use rayon::prelude::*;

use crate::backend::is_host;

/// Most rows per block of [`matmul_row_blocks`].
const MAX_BLOCK_ROWS: usize = 384;

/// `lhs x rhs` as blocks of consecutive rows of the result, computed concurrently on the CPU
/// (one block elsewhere). Concatenated in order, the blocks are the product.
pub fn matmul_row_blocks<B: Backend>(lhs: Tensor<B, 2>, rhs: Tensor<B, 2>) -> Vec<Tensor<B, 2>> {
    row_blocks::<B>(lhs.dims()[0])
        .into_par_iter()
        .map(|rows| {
            lhs.clone()
                .narrow(0, rows.start, rows.len())
                .matmul(rhs.clone())
        })
        .collect()
}

/// `rows` cut into near-equal blocks on the CPU: at least two, at most [`MAX_BLOCK_ROWS`]
/// rows each. One block elsewhere.
fn row_blocks<B: Backend>(rows: usize) -> Vec<Range<usize>> {
    let blocks = if is_host::<B>() {
        rows.div_ceil(MAX_BLOCK_ROWS).max(2).min(rows)
    } else {
        1
    };
    let size = rows.div_ceil(blocks);
    (0..blocks)
        .map(|i| i * size..((i + 1) * size).min(rows))
        .collect()
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::backend::Cpu;
    use burn::tensor::Distribution;

    fn blocks(rows: usize) -> Vec<Range<usize>> {
        row_blocks::<Cpu>(rows)
    }

    #[test]
    fn row_blocks_cover_every_row_once_in_near_equal_blocks() {
        assert_eq!(blocks(1), vec![0..1]);
        assert_eq!(blocks(5), vec![0..3, 3..5]);
        assert_eq!(blocks(MAX_BLOCK_ROWS), vec![0..192, 192..384]);
        assert_eq!(blocks(736), vec![0..368, 368..736]);
        assert_eq!(blocks(1000), vec![0..334, 334..668, 668..1000]);
        assert_eq!(
            row_blocks::<burn::backend::Autodiff<Cpu>>(1000),
            vec![0..1000]
        );
    }

    #[test]
    fn the_blocks_are_the_product() {
        let device = Default::default();
        let lhs = Tensor::<Cpu, 2>::random([801, 17], Distribution::Default, &device);
        let rhs = Tensor::<Cpu, 2>::random([17, 9], Distribution::Default, &device);
        let blocked = Tensor::cat(matmul_row_blocks(lhs.clone(), rhs.clone()), 0);
        let whole = lhs.matmul(rhs);
        let (a, b) = (
            blocked.into_data().to_vec::<f32>().unwrap(),
            whole.into_data().to_vec::<f32>().unwrap(),
        );
        assert_eq!(a.len(), b.len());
        assert!(
            a.iter()
                .zip(&b)
                .all(|(x, y)| (x - y).abs() <= 1e-5 * y.abs().max(1.0))
        );
    }
}
