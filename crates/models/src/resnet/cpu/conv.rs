//! Convolutions as matrix products over channels-last activations.
//!
//! A 1x1 convolution with stride 1 multiplies the activation as it lies (`[positions,
//! channels]`) by its `[in, out]` weights: no copy. Every other convolution (the 7x7 stem,
//! the strided 3x3 and 1x1 ones) first gathers, per output tile, each position's receptive
//! field into a row (`im2col`, `(ky, kx, channel)` order, zeros for the padding) and then
//! multiplies that tile. Output tiles are the unit of work for the rayon threads; each gets
//! its bias, residual and ReLU right after its product (see `matmul.rs`).

use std::cell::RefCell;

use rayon::prelude::*;

use super::layout::{Activation, Buffers};
use super::matmul::{Finish, Weights, product};

thread_local! {
    /// Each thread's gathered tile, kept between tiles and layers (up to 5 MB: 256 rows of a
    /// 3x3 convolution over 512 channels).
    static PATCHES: RefCell<Vec<f32>> = const { RefCell::new(Vec::new()) };
}

/// A square convolution with bias, prepared for channels-last activations.
#[derive(Debug, Clone, PartialEq)]
pub(crate) struct Conv {
    pub kernel: usize,
    pub stride: usize,
    pub pad: usize,
    pub in_channels: usize,
    /// `[kernel * kernel * in_channels, out_channels]`, rows in `(ky, kx, channel)` order.
    pub weights: Weights,
}

impl Conv {
    /// From burn's `[out, in, kernel, kernel]` weights and the folded bias.
    pub fn new(weight: &[f32], bias: Vec<f32>, kernel: usize, stride: usize, pad: usize) -> Self {
        let out_channels = bias.len();
        let in_channels = weight.len() / (out_channels * kernel * kernel);
        assert_eq!(weight.len(), out_channels * in_channels * kernel * kernel);
        let k = kernel * kernel * in_channels;
        let mut matrix = vec![0.0; k * out_channels];
        for o in 0..out_channels {
            for c in 0..in_channels {
                for ky in 0..kernel {
                    for kx in 0..kernel {
                        let row = (ky * kernel + kx) * in_channels + c;
                        matrix[row * out_channels + o] =
                            weight[((o * in_channels + c) * kernel + ky) * kernel + kx];
                    }
                }
            }
        }
        Self {
            kernel,
            stride,
            pad,
            in_channels,
            weights: Weights {
                k,
                n: out_channels,
                matrix,
                bias,
            },
        }
    }

    /// Output side for an input side.
    pub fn out_size(&self, size: usize) -> usize {
        (size + 2 * self.pad - self.kernel) / self.stride + 1
    }

    /// Multiply-accumulates for input `x`.
    pub fn macs(&self, x: &Activation) -> u64 {
        let positions = x.images * self.out_size(x.height) * self.out_size(x.width);
        (positions * self.weights.k * self.weights.n) as u64
    }

    /// `finish(conv(x) + bias)`; a residual in `finish` has the output's layout.
    pub fn forward(&self, x: &Activation, finish: Finish<'_>, buffers: &Buffers) -> Activation {
        assert_eq!(x.channels, self.in_channels, "input channels");
        let (k, n) = (self.weights.k, self.weights.n);
        let mut out = Activation::uninit(
            buffers,
            x.images,
            self.out_size(x.height),
            self.out_size(x.width),
            n,
        );
        let direct = self.kernel == 1 && self.stride == 1;
        let tile = tile_rows(out.rows(), k, n);
        let shape = (out.height, out.width);
        out.data
            .par_chunks_mut(tile * n)
            .enumerate()
            .for_each(|(index, out_tile)| {
                let first = index * tile;
                let rows = out_tile.len() / n;
                let finish = Finish {
                    residual: finish.residual.map(|r| &r[first * n..(first + rows) * n]),
                    ..finish
                };
                if direct {
                    let lhs = &x.data[first * k..(first + rows) * k];
                    product(lhs, &self.weights, out_tile, finish);
                } else {
                    PATCHES.with_borrow_mut(|patches| {
                        self.gather(x, shape, first..first + rows, patches);
                        product(patches, &self.weights, out_tile, finish);
                    });
                }
            });
        out
    }

    /// The receptive fields of output rows `rows` (of an output `shape`), one row each. For
    /// each kernel row the in-bounds kernel columns are one contiguous run of the input.
    fn gather(
        &self,
        x: &Activation,
        (out_h, out_w): (usize, usize),
        rows: std::ops::Range<usize>,
        patches: &mut Vec<f32>,
    ) {
        let c = self.in_channels;
        let (k, kernel, pad) = (self.weights.k, self.kernel, self.pad);
        patches.clear();
        patches.resize(rows.len() * k, 0.0);
        for (row, patch) in rows.zip(patches.chunks_exact_mut(k)) {
            let image = row / (out_h * out_w);
            let (oy, ox) = ((row / out_w) % out_h, row % out_w);
            // Kernel columns kx0..kx1 land inside the image, at input columns x0.. .
            let left = ox * self.stride;
            let kx0 = pad.saturating_sub(left);
            let kx1 = kernel.min((x.width + pad).saturating_sub(left));
            if kx0 >= kx1 {
                continue;
            }
            let x0 = left + kx0 - pad;
            let run = (kx1 - kx0) * c;
            for ky in 0..kernel {
                let iy = oy * self.stride + ky;
                if iy < pad || iy - pad >= x.height {
                    continue;
                }
                let src = ((image * x.height + iy - pad) * x.width + x0) * c;
                let dst = (ky * kernel + kx0) * c;
                patch[dst..dst + run].copy_from_slice(&x.data[src..src + run]);
            }
        }
    }
}

/// Output rows per tile: enough that the product amortises reading its `[k, n]` weights
/// (at least 256 rows, more for large weights), and a tile per thread at least.
fn tile_rows(rows: usize, k: usize, n: usize) -> usize {
    let threads = rayon::current_num_threads();
    let by_weights = (k * n / 1024).max(256);
    by_weights.min(rows.div_ceil(threads)).max(1)
}

#[cfg(test)]
mod tests {
    use super::super::test_values as values;
    use super::*;

    /// Direct convolution of channels-last `x` with burn-layout weights, for reference.
    fn reference(
        x: &Activation,
        weight: &[f32],
        bias: &[f32],
        kernel: usize,
        stride: usize,
        pad: usize,
    ) -> Vec<f32> {
        let conv = Conv::new(weight, bias.to_vec(), kernel, stride, pad);
        let (oh, ow, cin, cout) = (
            conv.out_size(x.height),
            conv.out_size(x.width),
            x.channels,
            bias.len(),
        );
        let mut out = vec![0.0; x.images * oh * ow * cout];
        for i in 0..x.images {
            for oy in 0..oh {
                for ox in 0..ow {
                    for o in 0..cout {
                        let mut acc = bias[o];
                        for c in 0..cin {
                            for ky in 0..kernel {
                                for kx in 0..kernel {
                                    let iy = (oy * stride + ky) as isize - pad as isize;
                                    let ix = (ox * stride + kx) as isize - pad as isize;
                                    if iy < 0
                                        || ix < 0
                                        || iy >= x.height as isize
                                        || ix >= x.width as isize
                                    {
                                        continue;
                                    }
                                    let v = x.data[((i * x.height + iy as usize) * x.width
                                        + ix as usize)
                                        * cin
                                        + c];
                                    acc += v * weight[((o * cin + c) * kernel + ky) * kernel + kx];
                                }
                            }
                        }
                        out[((i * oh + oy) * ow + ox) * cout + o] = acc;
                    }
                }
            }
        }
        out
    }

    #[test]
    fn matches_direct_convolution() {
        for (kernel, stride, pad, h, w) in [
            (1, 1, 0, 5, 4),
            (1, 2, 0, 5, 4),
            (3, 1, 1, 5, 4),
            (3, 2, 1, 7, 6),
            (7, 2, 3, 9, 8),
        ] {
            let (cin, cout) = (3, 5);
            let mut x = Activation::zeros(2, h, w, cin);
            x.data = values(x.data.len(), 1);
            let weight = values(cout * cin * kernel * kernel, 2);
            let bias = values(cout, 3);
            let expected = reference(&x, &weight, &bias, kernel, stride, pad);
            let conv = Conv::new(&weight, bias, kernel, stride, pad);
            let out = conv.forward(&x, Finish::BIAS, &Buffers::default());
            let err = out
                .data
                .iter()
                .zip(&expected)
                .fold(0f32, |m, (a, b)| m.max((a - b).abs()));
            assert!(err < 1e-5, "kernel {kernel} stride {stride}: {err}");
        }
    }
}
