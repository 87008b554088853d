//! The stem's 3x3 / stride 2 / padding 1 max pooling and the final global average pooling,
//! channels-last: both walk a position's contiguous channels, which vectorises, one output
//! row (or image) per rayon work item.

use rayon::prelude::*;

use super::layout::{Activation, Buffers};

/// 3x3 max pooling with stride 2 and padding 1 (padding never wins: torch pads with -inf).
pub(crate) fn max_pool_3x3_s2(x: &Activation, buffers: &Buffers) -> Activation {
    let (h, w, c) = (x.height, x.width, x.channels);
    let (oh, ow) = ((h - 1) / 2 + 1, (w - 1) / 2 + 1);
    let mut out = Activation::uninit(buffers, x.images, oh, ow, c);
    out.data
        .par_chunks_mut(ow * c)
        .enumerate()
        .for_each(|(row, out_row)| {
            let (image, oy) = (row / oh, row % oh);
            out_row.fill(f32::NEG_INFINITY);
            for iy in (2 * oy).saturating_sub(1)..(2 * oy + 2).min(h) {
                let line = &x.data[(image * h + iy) * w * c..][..w * c];
                for (ox, out) in out_row.chunks_exact_mut(c).enumerate() {
                    for ix in (2 * ox).saturating_sub(1)..(2 * ox + 2).min(w) {
                        for (o, v) in out.iter_mut().zip(&line[ix * c..(ix + 1) * c]) {
                            *o = o.max(*v);
                        }
                    }
                }
            }
        });
    out
}

/// Mean over each image's positions: `[images, channels]`.
pub(crate) fn global_average(x: &Activation) -> Vec<f32> {
    let (positions, c) = (x.height * x.width, x.channels);
    let mut out = vec![0.0f32; x.images * c];
    out.par_chunks_mut(c).enumerate().for_each(|(image, sums)| {
        for position in x.data[image * positions * c..][..positions * c].chunks_exact(c) {
            for (s, v) in sums.iter_mut().zip(position) {
                *s += v;
            }
        }
        let scale = 1.0 / positions as f32;
        sums.iter_mut().for_each(|s| *s *= scale);
    });
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn max_pool_windows_and_borders() {
        // One channel, 4 x 4, value = 4 y + x: each output is its window's bottom-right value.
        let mut x = Activation::zeros(1, 4, 4, 1);
        x.data = (0..16).map(|v| v as f32).collect();
        let p = max_pool_3x3_s2(&x, &Buffers::default());
        assert_eq!((p.height, p.width), (2, 2));
        assert_eq!(p.data, [5.0, 7.0, 13.0, 15.0]);
    }

    #[test]
    fn global_average_per_image_and_channel() {
        let mut x = Activation::zeros(2, 1, 2, 2);
        x.data = vec![1.0, 10.0, 3.0, 30.0, 5.0, 50.0, 7.0, 70.0];
        assert_eq!(global_average(&x), [2.0, 20.0, 6.0, 60.0]);
    }
}
