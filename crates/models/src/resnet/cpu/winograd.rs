//! Stride-1 3x3 convolutions by Winograd's minimal filtering, F(4x4, 3x3).
//!
//! Each 4x4 tile of output comes from a 6x6 tile of input: with the input tile and the filter
//! both transformed into 36 values per channel (`V = Bt d B`, `U = G g Gt`), the products
//! over input channels are 36 independent matrix products `M[p] = V[p] x U[p]` (tiles x in,
//! in x out), and `At M A` turns each tile's 36 sums back into its 4x4 outputs. That is 36
//! multiplies per 16 outputs instead of 144: 4x fewer, less where the side is not a multiple
//! of 4 (7 and 14: tiles over 8x8 and 16x16, 3.1x fewer).
//!
//! The filter transform runs once, in f64, when the network is prepared. The work per call
//! goes in groups of whole tile rows (at least [`MIN_TILES`] tiles and [`GROUP_BYTES`] of
//! transformed inputs and products), each in three parallel phases: input transform (per
//! tile), the 36 products (per point, faer), output transform with bias and ReLU (per tile
//! row, which is a contiguous run of output rows). Buffers are tile-major
//! (`[tile][point][channel]`), so each tile's values are contiguous for the transforms, and
//! the products see them as matrices with a row stride of 36 channels.

use std::array::from_fn;

use faer::{Accum, MatMut, MatRef, Par};
use rayon::prelude::*;
use wide::f32x8;

use super::layout::{Activation, Buffers};

/// Output side of a tile, input side of a tile, points per tile.
const OUT: usize = 4;
const IN: usize = OUT + 2;
const POINTS: usize = IN * IN;

/// Bytes of transformed inputs and products a group holds at least (in the L3 cache)...
const GROUP_BYTES: usize = 4 << 20;
/// ... and tiles at least: the rows of its products, enough to amortise reading the filters
/// (as for the tiles of `conv.rs`).
const MIN_TILES: usize = 256;

/// Channels per SIMD lane group.
const LANES: usize = 8;

/// `G` (6x3): the filter transform.
const G: [[f64; 3]; IN] = [
    [1.0 / 4.0, 0.0, 0.0],
    [-1.0 / 6.0, -1.0 / 6.0, -1.0 / 6.0],
    [-1.0 / 6.0, 1.0 / 6.0, -1.0 / 6.0],
    [1.0 / 24.0, 1.0 / 12.0, 1.0 / 6.0],
    [1.0 / 24.0, -1.0 / 12.0, 1.0 / 6.0],
    [0.0, 0.0, 1.0],
];

/// `Bt d` for one column of six input values.
fn input_1d(d: [f32x8; IN]) -> [f32x8; IN] {
    let (two, four, five) = (f32x8::splat(2.0), f32x8::splat(4.0), f32x8::splat(5.0));
    [
        four * d[0] - five * d[2] + d[4],
        d[3] + d[4] - four * (d[1] + d[2]),
        four * (d[1] - d[2]) + d[4] - d[3],
        two * (d[3] - d[1]) + d[4] - d[2],
        two * (d[1] - d[3]) + d[4] - d[2],
        four * d[1] - five * d[3] + d[5],
    ]
}

/// `At m` for one column of six products.
fn output_1d(m: [f32x8; IN]) -> [f32x8; OUT] {
    let (two, four, eight) = (f32x8::splat(2.0), f32x8::splat(4.0), f32x8::splat(8.0));
    let (s12, d12) = (m[1] + m[2], m[1] - m[2]);
    let (s34, d34) = (m[3] + m[4], m[3] - m[4]);
    [
        m[0] + s12 + s34,
        d12 + two * d34,
        s12 + four * s34,
        d12 + eight * d34 + m[5],
    ]
}

/// A stride-1, padding-1 3x3 convolution with bias, followed by ReLU.
#[derive(Debug, Clone, PartialEq)]
pub(crate) struct Winograd {
    pub in_channels: usize,
    pub out_channels: usize,
    /// `[point][in][out]`: the transformed filters, one matrix per point.
    filters: Vec<f32>,
    bias: Vec<f32>,
}

impl Winograd {
    /// From burn's `[out, in, 3, 3]` weights and the folded bias.
    pub fn new(weight: &[f32], bias: Vec<f32>) -> Self {
        let out_channels = bias.len();
        let in_channels = weight.len() / (9 * out_channels);
        assert_eq!(weight.len(), out_channels * in_channels * 9);
        let mut filters = vec![0.0; POINTS * in_channels * out_channels];
        for o in 0..out_channels {
            for c in 0..in_channels {
                let g = |r: usize, s: usize| weight[(o * in_channels + c) * 9 + r * 3 + s] as f64;
                // G g (6x3), then (G g) Gt (6x6).
                let mut gg = [[0.0f64; 3]; IN];
                for (a, row) in gg.iter_mut().enumerate() {
                    for (s, v) in row.iter_mut().enumerate() {
                        *v = (0..3).map(|r| G[a][r] * g(r, s)).sum();
                    }
                }
                for a in 0..IN {
                    for b in 0..IN {
                        let u: f64 = (0..3).map(|s| gg[a][s] * G[b][s]).sum();
                        filters[((a * IN + b) * in_channels + c) * out_channels + o] = u as f32;
                    }
                }
            }
        }
        Self {
            in_channels,
            out_channels,
            filters,
            bias,
        }
    }

    /// Multiply-accumulates of the direct convolution on `x` (what the profile counts).
    pub fn macs(&self, x: &Activation) -> u64 {
        (x.rows() * 9 * self.in_channels * self.out_channels) as u64
    }

    /// `relu(conv(x) + bias)`.
    pub fn forward(&self, x: &Activation, buffers: &Buffers) -> Activation {
        assert_eq!(x.channels, self.in_channels, "input channels");
        let (cin, cout) = (self.in_channels, self.out_channels);
        let (th, tw) = (x.height.div_ceil(OUT), x.width.div_ceil(OUT));
        let mut out = Activation::uninit(buffers, x.images, x.height, x.width, cout);
        let tile_rows = x.images * th;
        let per_tile_row = POINTS * tw * (cin + cout) * 4;
        let group = (GROUP_BYTES / per_tile_row)
            .max(MIN_TILES.div_ceil(tw))
            .clamp(1, tile_rows);
        let mut inputs = buffers.take(group * tw * POINTS * cin);
        let mut products = buffers.take(group * tw * POINTS * cout);
        // Output rows of each tile row: OUT image rows, fewer at an image's bottom edge.
        let mut out_rows: Vec<&mut [f32]> = Vec::with_capacity(tile_rows);
        let mut rest = out.data.as_mut_slice();
        for tile_row in 0..tile_rows {
            let ty = tile_row % th;
            let rows = OUT.min(x.height - ty * OUT);
            let (head, tail) = rest.split_at_mut(rows * x.width * cout);
            out_rows.push(head);
            rest = tail;
        }
        for (g, out_group) in out_rows.chunks_mut(group).enumerate() {
            let first = g * group;
            let count = out_group.len();
            let tiles = count * tw;
            let inputs = &mut inputs[..tiles * POINTS * cin];
            let products = &mut products[..tiles * POINTS * cout];
            inputs
                .par_chunks_mut(POINTS * cin)
                .enumerate()
                .for_each(|(t, v)| {
                    let tile_row = first + t / tw;
                    self.transform_input(x, tile_row / th, tile_row % th, t % tw, v);
                });
            self.multiply(inputs, products, tiles);
            out_group
                .par_iter_mut()
                .zip(products.par_chunks(tw * POINTS * cout))
                .for_each(|(rows, m)| self.transform_output(m, x.width, rows));
        }
        buffers.give(inputs);
        buffers.give(products);
        out
    }

    /// `v[point][channel] = (Bt d B)` of the input tile at tile `(ty, tx)` of `image`.
    fn transform_input(&self, x: &Activation, image: usize, ty: usize, tx: usize, v: &mut [f32]) {
        let c = self.in_channels;
        for c0 in (0..c).step_by(LANES) {
            let lanes = LANES.min(c - c0);
            let mut d = [[f32x8::ZERO; IN]; IN];
            for (r, row) in d.iter_mut().enumerate() {
                let Some(iy) = (ty * OUT + r).checked_sub(1).filter(|&iy| iy < x.height) else {
                    continue;
                };
                for (s, value) in row.iter_mut().enumerate() {
                    let Some(ix) = (tx * OUT + s).checked_sub(1).filter(|&ix| ix < x.width) else {
                        continue;
                    };
                    let at = ((image * x.height + iy) * x.width + ix) * c + c0;
                    *value = load(&x.data[at..at + lanes]);
                }
            }
            // Columns, then rows.
            let cols: [[f32x8; IN]; IN] = from_fn(|s| input_1d(from_fn(|r| d[r][s])));
            for (a, row) in transpose(cols).into_iter().enumerate() {
                for (b, value) in input_1d(row).iter().enumerate() {
                    let at = (a * IN + b) * c + c0;
                    store(*value, &mut v[at..at + lanes]);
                }
            }
        }
    }

    /// `products[tile][point] = inputs[tile][point] x filters[point]`, the points in parallel.
    fn multiply(&self, inputs: &[f32], products: &mut [f32], tiles: usize) {
        let (cin, cout) = (self.in_channels, self.out_channels);
        let mut columns = Vec::with_capacity(POINTS);
        let mut rest = MatMut::from_row_major_slice_mut(products, tiles, POINTS * cout);
        for _ in 0..POINTS - 1 {
            let (head, tail) = rest.split_at_col_mut(cout);
            columns.push(head);
            rest = tail;
        }
        columns.push(rest);
        columns.into_par_iter().enumerate().for_each(|(p, dst)| {
            let lhs = MatRef::from_row_major_slice_with_stride(
                &inputs[p * cin..],
                tiles,
                cin,
                POINTS * cin,
            );
            let filter = &self.filters[p * cin * cout..(p + 1) * cin * cout];
            let rhs = MatRef::from_row_major_slice(filter, cin, cout);
            faer::linalg::matmul::matmul(dst, Accum::Replace, lhs, rhs, 1.0f32, Par::Seq);
        });
    }

    /// One tile row: `relu(At m A + bias)` of each of its tiles, into its output rows.
    fn transform_output(&self, products: &[f32], width: usize, rows: &mut [f32]) {
        let c = self.out_channels;
        let height = rows.len() / (width * c);
        for (tx, m) in products.chunks_exact(POINTS * c).enumerate() {
            for c0 in (0..c).step_by(LANES) {
                let lanes = LANES.min(c - c0);
                let at = |p: usize| load(&m[p * c + c0..p * c + c0 + lanes]);
                // Columns, then rows.
                let cols: [[f32x8; OUT]; IN] = from_fn(|s| output_1d(from_fn(|r| at(r * IN + s))));
                let bias = load(&self.bias[c0..c0 + lanes]);
                for (r, row) in transpose(cols).into_iter().enumerate().take(height) {
                    for (s, y) in output_1d(row).iter().enumerate() {
                        let ox = tx * OUT + s;
                        if ox < width {
                            let at = (r * width + ox) * c + c0;
                            store((*y + bias).max(f32x8::ZERO), &mut rows[at..at + lanes]);
                        }
                    }
                }
            }
        }
    }
}

/// Rows of `m` as columns.
fn transpose<const R: usize, const C: usize>(m: [[f32x8; C]; R]) -> [[f32x8; R]; C] {
    from_fn(|j| from_fn(|i| m[i][j]))
}

/// Up to 8 values into lanes (the rest zero).
#[inline(always)]
fn load(values: &[f32]) -> f32x8 {
    if let Ok(lanes) = <[f32; LANES]>::try_from(values) {
        return f32x8::new(lanes);
    }
    let mut lanes = [0.0; LANES];
    lanes[..values.len()].copy_from_slice(values);
    f32x8::new(lanes)
}

/// The first `out.len()` lanes.
#[inline(always)]
fn store(value: f32x8, out: &mut [f32]) {
    match <&mut [f32; LANES]>::try_from(&mut *out) {
        Ok(lanes) => *lanes = value.to_array(),
        Err(_) => out.copy_from_slice(&value.to_array()[..out.len()]),
    }
}

#[cfg(test)]
mod tests {
    use super::super::conv::Conv;
    use super::super::matmul::Finish;
    use super::super::test_values as values;
    use super::*;

    #[test]
    fn matches_the_direct_convolution() {
        // Sides that are and are not multiples of the tile, channels that fill lanes or not.
        for (h, w, cin, cout) in [(8, 8, 8, 8), (7, 7, 4, 12), (14, 5, 20, 3), (3, 9, 1, 1)] {
            let mut x = Activation::zeros(2, h, w, cin);
            x.data = values(x.data.len(), 1);
            let weight = values(cout * cin * 9, 2);
            let bias = values(cout, 3);
            let buffers = Buffers::default();
            let direct =
                Conv::new(&weight, bias.clone(), 3, 1, 1).forward(&x, Finish::RELU, &buffers);
            let fast = Winograd::new(&weight, bias).forward(&x, &buffers);
            let scale = direct.data.iter().fold(0f32, |m, v| m.max(v.abs()));
            let err = fast
                .data
                .iter()
                .zip(&direct.data)
                .fold(0f32, |m, (a, b)| m.max((a - b).abs()));
            assert!(
                err <= 1e-5 * scale,
                "{h}x{w}, {cin} -> {cout}: {err} of {scale}"
            );
        }
    }
}
