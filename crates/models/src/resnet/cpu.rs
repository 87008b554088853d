//! The featurizer's network on the CPU backend, outside burn's generic convolution.
//!
//! Same function as [`FoldedResNet`]'s tensor operations (which stay the path of the GPU
//! backends, and the reference this one is tested against), computed in a layout and with
//! kernels chosen for CPUs:
//! - `layout.rs`: channels-last activations, so a 1x1 convolution is one matrix product over
//!   the buffer as it lies;
//! - `matmul.rs`: faer's matrix products on row tiles, each tile finished (bias, residual,
//!   ReLU) while in cache: no separate element-wise passes;
//! - `conv.rs`: the other convolutions as gathered tiles (`im2col`) times their weights;
//! - `winograd.rs`: the stride-1 3x3 convolutions by Winograd's F(4x4, 3x3);
//! - `pool.rs`: max and average pooling.
//!
//! The weights are reordered once, when the network is folded on the CPU backend.

mod conv;
mod layout;
mod matmul;
mod pool;
mod winograd;

use std::fmt;

use burn::nn::PaddingConfig2d;
use burn::nn::conv::Conv2d;
use burn::tensor::backend::Backend;

use self::conv::Conv;
use self::layout::{Activation, Buffers};
use self::matmul::Finish;
use self::winograd::Winograd;
use super::profile::{Layer, Profile};
use super::{FoldedBottleneck, FoldedResNet};

/// [`FoldedResNet`]'s weights, prepared for [`CpuResNet::forward`].
pub(crate) struct CpuResNet {
    stem: Conv,
    blocks: Vec<Block>,
    buffers: Buffers,
}

struct Block {
    conv1: Conv,
    conv2: Conv3x3,
    conv3: Conv,
    downsample: Option<Conv>,
}

/// A bottleneck's 3x3 convolution: Winograd at stride 1, gathered tiles at stride 2.
enum Conv3x3 {
    Winograd(Winograd),
    Strided(Conv),
}

impl fmt::Debug for CpuResNet {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "CpuResNet({} blocks)", self.blocks.len())
    }
}

impl CpuResNet {
    pub fn new<B: Backend>(network: &FoldedResNet<B>) -> Self {
        Self {
            stem: prepare(&network.conv1),
            blocks: network.blocks().map(Block::new).collect(),
            buffers: Buffers::default(),
        }
    }

    /// `[images, 3, height, width]` channels-first pixels -> `[images, feature_dim]`, and
    /// with `grid` the last feature map they pool ([`Map`]).
    pub fn forward(
        &self,
        pixels: &[f32],
        images: usize,
        (height, width): (usize, usize),
        grid: bool,
        profile: &mut Profile,
    ) -> (Vec<f32>, Option<Map>) {
        let buffers = &self.buffers;
        let shape = (images, self.stem.in_channels, height, width);
        let x = profile.time(Layer::Layout, 0, || {
            Activation::from_channels_first(pixels, shape, buffers)
        });
        let stem = profile.time(Layer::Stem7x7, self.stem.macs(&x), || {
            self.stem.forward(&x, Finish::RELU, buffers)
        });
        x.recycle(buffers);
        let mut x = profile.time(Layer::MaxPool, 0, || pool::max_pool_3x3_s2(&stem, buffers));
        stem.recycle(buffers);
        for block in &self.blocks {
            let out = block.forward(&x, profile, buffers);
            x.recycle(buffers);
            x = out;
        }
        let features = profile.time(Layer::AveragePool, 0, || pool::global_average(&x));
        let map = grid.then(|| {
            profile.time(Layer::Layout, 0, || Map {
                values: x.to_channels_first(),
                shape: [x.images, x.channels, x.height, x.width],
            })
        });
        x.recycle(buffers);
        (features, map)
    }
}

/// The last feature map, channels-first: `values` of `shape` `[images, channels, height,
/// width]`.
pub(crate) struct Map {
    pub values: Vec<f32>,
    pub shape: [usize; 4],
}

impl Block {
    fn new<B: Backend>(block: &FoldedBottleneck<B>) -> Self {
        Self {
            conv1: prepare(&block.conv1),
            conv2: match Folded::of(&block.conv2) {
                f if f.stride == 1 && f.kernel == 3 && f.pad == 1 => {
                    Conv3x3::Winograd(Winograd::new(&f.weight, f.bias))
                }
                f => Conv3x3::Strided(f.into_conv()),
            },
            conv3: prepare(&block.conv3),
            downsample: block.downsample.as_ref().map(prepare),
        }
    }

    fn forward(&self, x: &Activation, profile: &mut Profile, buffers: &Buffers) -> Activation {
        let shortcut = self.downsample.as_ref().map(|ds| {
            profile.time(Layer::Downsample, ds.macs(x), || {
                ds.forward(x, Finish::BIAS, buffers)
            })
        });
        let identity = shortcut.as_ref().unwrap_or(x);
        let h1 = profile.time(Layer::Conv1x1, self.conv1.macs(x), || {
            self.conv1.forward(x, Finish::RELU, buffers)
        });
        let h2 = match &self.conv2 {
            Conv3x3::Winograd(conv) => profile.time(Layer::Conv3x3, conv.macs(&h1), || {
                conv.forward(&h1, buffers)
            }),
            Conv3x3::Strided(conv) => profile.time(Layer::Conv3x3Stride2, conv.macs(&h1), || {
                conv.forward(&h1, Finish::RELU, buffers)
            }),
        };
        h1.recycle(buffers);
        let finish = Finish {
            relu: true,
            residual: Some(&identity.data),
        };
        let out = profile.time(Layer::Conv1x1, self.conv3.macs(&h2), || {
            self.conv3.forward(&h2, finish, buffers)
        });
        h2.recycle(buffers);
        if let Some(shortcut) = shortcut {
            shortcut.recycle(buffers);
        }
        out
    }
}

/// A folded burn convolution's weights (`[out, in, k, k]`), bias and geometry.
struct Folded {
    weight: Vec<f32>,
    bias: Vec<f32>,
    kernel: usize,
    stride: usize,
    pad: usize,
}

impl Folded {
    fn of<B: Backend>(conv: &Conv2d<B>) -> Self {
        let values = |data: burn::tensor::TensorData| {
            data.convert::<f32>()
                .into_vec::<f32>()
                .expect("f32 weights")
        };
        let bias = conv.bias.as_ref().expect("a folded convolution has a bias");
        let [kernel, kernel_w] = conv.kernel_size;
        let [stride, stride_w] = conv.stride;
        let pad = match conv.padding {
            PaddingConfig2d::Explicit(t, l, b, r) if t == l && t == b && t == r => t,
            PaddingConfig2d::Valid => 0,
            ref other => panic!("unsupported padding {other:?}"),
        };
        assert!(
            kernel == kernel_w && stride == stride_w && conv.groups == 1 && conv.dilation == [1, 1],
            "the CPU path runs square, ungrouped, undilated convolutions"
        );
        Self {
            weight: values(conv.weight.val().into_data()),
            bias: values(bias.val().into_data()),
            kernel,
            stride,
            pad,
        }
    }

    fn into_conv(self) -> Conv {
        Conv::new(&self.weight, self.bias, self.kernel, self.stride, self.pad)
    }
}

/// Deterministic values in [-1, 1), for the kernels' tests.
#[cfg(test)]
fn test_values(n: usize, seed: u32) -> Vec<f32> {
    (0..n as u32)
        .map(|i| ((i * 7919 + seed * 104729) % 1000) as f32 / 500.0 - 1.0)
        .collect()
}

/// A folded burn convolution, reordered for channels-last activations.
fn prepare<B: Backend>(conv: &Conv2d<B>) -> Conv {
    Folded::of(conv).into_conv()
}
