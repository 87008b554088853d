//! Matrix products in the shapes gemm runs fastest here.
//!
//! - gemm is slow on some of the output layer's shapes in one call and fast on two concurrent
//!   halves: `[736, 512] x [512, 8000]` (the logits) 25.9 -> 17 ms, `[256, 64] x [64, 8000]`
//!   (the image part's weight gradient) 5.7 -> 1.4 ms ([`matmul_row_blocks`]).
//! - It is about twice as fast on `W^T x^T` as on `x W` when `x` is a batch of a few rows:
//!   `[64, 2048] x [2048, 2048]` 14.5 -> 7.2 ms, both transposes included ([`thin_matmul`]).
//!
//! Other backends get the plain product.

use std::ops::Range;

use burn::tensor::Tensor;
use burn::tensor::backend::Backend;
use rayon::prelude::*;

use crate::backend::is_host;
use crate::host::{host_vec, to_tensor, transposed};

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

/// `x W` for a thin `x` (`[rows, k]`, a batch) given `w_t` = W^T (`[n, k]`, contiguous), cut
/// into blocks of consecutive columns of the sizes `blocks` (summing to `n`). On the CPU it
/// runs as `W^T x^T`, whose row blocks each become one block of the result in one transposed
/// copy.
pub fn thin_matmul<B: Backend>(
    x: Tensor<B, 2>,
    w_t: Tensor<B, 2>,
    blocks: &[usize],
) -> Vec<Tensor<B, 2>> {
    let [rows, k] = x.dims();
    assert_eq!(
        blocks.iter().sum::<usize>(),
        w_t.dims()[0],
        "blocks cover W"
    );
    let starts = blocks.iter().scan(0, |start, &n| {
        *start += n;
        Some(*start - n)
    });
    if !is_host::<B>() {
        let product = x.matmul(w_t.transpose());
        return starts
            .zip(blocks)
            .map(|(start, &n)| product.clone().narrow(1, start, n))
            .collect();
    }
    let device = x.device();
    let x_t = to_tensor::<B, 2>(transposed(&host_vec(x), k), [k, rows], &device);
    // [n, rows]
    let product = host_vec(w_t.matmul(x_t));
    starts
        .zip(blocks)
        .map(|(start, &n)| {
            let block = &product[start * rows..(start + n) * rows];
            to_tensor(transposed(block, rows), [rows, n], &device)
        })
        .collect()
}

/// [`thin_matmul`] as one block: `x W` `[rows, n]`.
pub fn thin_product<B: Backend>(x: Tensor<B, 2>, w_t: Tensor<B, 2>) -> Tensor<B, 2> {
    let n = w_t.dims()[0];
    let [product] = thin_matmul(x, w_t, &[n])
        .try_into()
        .expect("thin_matmul returns one tensor per block");
    product
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

    fn assert_close(a: Tensor<impl Backend, 2>, b: Tensor<impl Backend, 2>) {
        assert_eq!(a.dims(), b.dims());
        let (a, b) = (
            a.into_data().to_vec::<f32>().unwrap(),
            b.into_data().to_vec::<f32>().unwrap(),
        );
        assert!(
            a.iter()
                .zip(&b)
                .all(|(x, y)| (x - y).abs() <= 1e-5 * y.abs().max(1.0))
        );
    }

    /// The CPU's transposed form and every other backend's plain one, against the product.
    fn thin_product_blocks<BB: Backend>() {
        let device = Default::default();
        let x = Tensor::<BB, 2>::random([5, 13], Distribution::Default, &device);
        let w = Tensor::<BB, 2>::random([13, 10], Distribution::Default, &device);
        let whole = x.clone().matmul(w.clone());
        let w_t = crate::contiguous(w.transpose());
        let blocks = thin_matmul(x.clone(), w_t.clone(), &[4, 1, 5]);
        assert_eq!(
            blocks.iter().map(|b| b.dims()).collect::<Vec<_>>(),
            vec![[5, 4], [5, 1], [5, 5]]
        );
        assert_close(Tensor::cat(blocks, 1), whole.clone());
        assert_close(thin_product(x, w_t), whole);
    }

    #[test]
    fn thin_matmul_blocks_are_the_product() {
        thin_product_blocks::<Cpu>();
        thin_product_blocks::<burn::backend::Autodiff<Cpu>>();
    }

    #[test]
    fn the_blocks_are_the_product() {
        let device = Default::default();
        let lhs = Tensor::<Cpu, 2>::random([801, 17], Distribution::Default, &device);
        let rhs = Tensor::<Cpu, 2>::random([17, 9], Distribution::Default, &device);
        let blocked = Tensor::cat(matmul_row_blocks(lhs.clone(), rhs.clone()), 0);
        assert_close(blocked, lhs.matmul(rhs));
    }
}
