//! Channels-last activations: `[images, height, width, channels]`, row-major.
//!
//! In this order the activation *is* a matrix `[images * height * width, channels]` with one
//! row per position, so a 1x1 convolution is one matrix product over the buffer as it lies,
//! and a position's channels (what every kernel here walks) are contiguous. burn's tensors
//! are channels-first (`[N, C, H, W]`); the network converts once on the way in (the 3
//! channels of the input images) and its output, one pooled row per image, has no spatial
//! axes left to convert.
//!
//! Activation buffers come from [`Buffers`] and go back to it when a layer is done with them:
//! a ResNet50 pass at batch 16 writes about 600 MB of activations, and in freshly allocated
//! memory each 4 KiB page costs a page fault on first touch (about 9,000 per image, 15% of
//! the pass's CPU time here).

use std::sync::Mutex;

use rayon::prelude::*;

/// Free activation buffers, kept from one layer and one batch to the next.
#[derive(Debug, Default)]
pub(crate) struct Buffers {
    free: Mutex<Vec<Vec<f32>>>,
}

/// Buffers kept at most (a bottleneck block holds five at once).
const KEPT: usize = 12;

impl Buffers {
    /// A buffer of `len` values; what they hold is unspecified (callers overwrite them all).
    pub fn take(&self, len: usize) -> Vec<f32> {
        let mut free = self.free.lock().unwrap_or_else(|e| e.into_inner());
        // The smallest free buffer that is large enough.
        let best = (0..free.len())
            .filter(|&i| free[i].capacity() >= len)
            .min_by_key(|&i| free[i].capacity());
        match best {
            Some(i) => {
                let mut buffer = free.swap_remove(i);
                buffer.resize(len, 0.0);
                buffer
            }
            None => vec![0.0; len],
        }
    }

    /// Returns a buffer for later [`Buffers::take`]s.
    pub fn give(&self, buffer: Vec<f32>) {
        let mut free = self.free.lock().unwrap_or_else(|e| e.into_inner());
        free.push(buffer);
        if free.len() > KEPT {
            let smallest = (0..free.len()).min_by_key(|&i| free[i].capacity());
            free.swap_remove(smallest.expect("not empty"));
        }
    }
}

/// An activation in channels-last order.
#[derive(Debug, Clone, PartialEq)]
pub(crate) struct Activation {
    pub images: usize,
    pub height: usize,
    pub width: usize,
    pub channels: usize,
    /// `[images, height, width, channels]`
    pub data: Vec<f32>,
}

impl Activation {
    /// Zeros of this shape.
    #[cfg(test)]
    pub fn zeros(images: usize, height: usize, width: usize, channels: usize) -> Self {
        Self {
            images,
            height,
            width,
            channels,
            data: vec![0.0; images * height * width * channels],
        }
    }

    /// An activation of this shape in a buffer from `buffers`, its values unspecified: for
    /// outputs that are written whole.
    pub fn uninit(
        buffers: &Buffers,
        images: usize,
        height: usize,
        width: usize,
        channels: usize,
    ) -> Self {
        Self {
            images,
            height,
            width,
            channels,
            data: buffers.take(images * height * width * channels),
        }
    }

    /// Gives the buffer back.
    pub fn recycle(self, buffers: &Buffers) {
        buffers.give(self.data);
    }

    /// Positions, i.e. rows of the matrix view.
    pub fn rows(&self) -> usize {
        self.images * self.height * self.width
    }

    /// Channels-first `[images, channels, height, width]` values, reordered.
    pub fn from_channels_first(
        values: &[f32],
        (images, channels, height, width): (usize, usize, usize, usize),
        buffers: &Buffers,
    ) -> Self {
        let plane = height * width;
        assert_eq!(values.len(), images * channels * plane, "input size");
        let mut out = Self::uninit(buffers, images, height, width, channels);
        // One image row per work item: `width * channels` values out, `channels` rows in.
        out.data
            .par_chunks_mut(width * channels)
            .enumerate()
            .for_each(|(row, out_row)| {
                let (image, y) = (row / height, row % height);
                for c in 0..channels {
                    let start = (image * channels + c) * plane + y * width;
                    let src = &values[start..start + width];
                    for (x, v) in src.iter().enumerate() {
                        out_row[x * channels + c] = *v;
                    }
                }
            });
        out
    }

    /// The values in channels-first order, `[images, channels, height, width]`.
    pub fn to_channels_first(&self) -> Vec<f32> {
        let plane = self.height * self.width;
        let mut out = vec![0.0; self.data.len()];
        // One image's channel plane per work item.
        out.par_chunks_mut(plane)
            .enumerate()
            .for_each(|(item, out_plane)| {
                let (image, c) = (item / self.channels, item % self.channels);
                let pixels = &self.data[image * plane * self.channels..][..plane * self.channels];
                for (v, pixel) in out_plane.iter_mut().zip(pixels.chunks_exact(self.channels)) {
                    *v = pixel[c];
                }
            });
        out
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn channels_first_is_reordered() {
        // [1 image, 2 channels, 2 x 3]: value = 100 c + 10 y + x.
        let values: Vec<f32> = (0..2)
            .flat_map(|c| {
                (0..2).flat_map(move |y| (0..3).map(move |x| (100 * c + 10 * y + x) as f32))
            })
            .collect();
        let a = Activation::from_channels_first(&values, (1, 2, 2, 3), &Buffers::default());
        assert_eq!((a.rows(), a.channels), (6, 2));
        // Row (y, x) holds [channel 0, channel 1].
        assert_eq!(&a.data[..4], &[0.0, 100.0, 1.0, 101.0]);
        assert_eq!(&a.data[10..], &[12.0, 112.0]);
        assert_eq!(a.to_channels_first(), values);
    }
}

#[cfg(test)]
mod buffer_tests {
    use super::*;

    #[test]
    fn buffers_are_reused_smallest_fit_first() {
        let buffers = Buffers::default();
        buffers.give(vec![1.0; 10]);
        buffers.give(vec![2.0; 100]);
        let small = buffers.take(8);
        assert_eq!((small.len(), small[0]), (8, 1.0));
        let large = buffers.take(50);
        assert_eq!((large.len(), large[0]), (50, 2.0));
        assert_eq!(buffers.take(5).capacity(), 5, "none free: a new one");
    }
}
