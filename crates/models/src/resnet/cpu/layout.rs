//! Channels-last activations: `[images, height, width, channels]`, row-major.
//!
//! In this order the activation *is* a matrix `[images * height * width, channels]` with one
//! row per position, so a 1x1 convolution is one matrix product over the buffer as it lies,
//! and a position's channels (what every kernel here walks) are contiguous. burn's tensors
//! are channels-first (`[N, C, H, W]`); the network converts once on the way in (the 3
//! channels of the input images) and its output, one pooled row per image, has no spatial
//! axes left to convert.

use rayon::prelude::*;

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
    pub fn zeros(images: usize, height: usize, width: usize, channels: usize) -> Self {
        Self {
            images,
            height,
            width,
            channels,
            data: vec![0.0; images * height * width * channels],
        }
    }

    /// Positions, i.e. rows of the matrix view.
    pub fn rows(&self) -> usize {
        self.images * self.height * self.width
    }

    /// Channels-first `[images, channels, height, width]` values, reordered.
    pub fn from_channels_first(
        values: &[f32],
        images: usize,
        channels: usize,
        height: usize,
        width: usize,
    ) -> Self {
        let plane = height * width;
        assert_eq!(values.len(), images * channels * plane, "input size");
        let mut out = Self::zeros(images, height, width, channels);
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
        let a = Activation::from_channels_first(&values, 1, 2, 2, 3);
        assert_eq!((a.rows(), a.channels), (6, 2));
        // Row (y, x) holds [channel 0, channel 1].
        assert_eq!(&a.data[..4], &[0.0, 100.0, 1.0, 101.0]);
        assert_eq!(&a.data[10..], &[12.0, 112.0]);
    }
}
