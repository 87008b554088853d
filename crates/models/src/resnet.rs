//! ResNet50 exactly as torchvision builds it, as the featurizer's image encoder.
//!
//! The network is torchvision's `resnet50` (v1.5: the stride of a downsampling block sits on its
//! 3x3 convolution; bottleneck stages 3-4-6-3 with expansion 4), stopped after global average
//! pooling: the output is the 2048-d vector that torchvision feeds to `fc`. Depth and widths come
//! from [`ResNetConfig`], so the tests run a tiny network through exactly the same code.
//!
//! Two forms of the network live here:
//! - [`ResNet`] mirrors torchvision's modules and state-dict keys (`conv1`, `bn1`,
//!   `layer1.0.conv2`, `layer2.0.downsample.{conv,bn}`, ...), so that weight files map onto it
//!   with one key rename (`downsample.0`/`.1` -> `downsample.conv`/`.bn`).
//! - [`FoldedResNet`] is the inference form: every BatchNorm is folded into the convolution in
//!   front of it (`w' = w * g / sqrt(v + eps)`, `b' = beta - m * g / sqrt(v + eps)`). It computes the
//!   same function (to float rounding) several times faster, because BatchNorm over a
//!   `[1, C, 1, 1]` broadcast is slow on burn's CPU backend.
//!
//! On the CPU backend a [`FoldedResNet`] also carries its weights reordered for the CPU path
//! (`cpu.rs`: channels-last layout, matrix products with fused bias, residual and ReLU), and
//! [`FoldedResNet::forward`] runs that; [`FoldedResNet::forward_tensor_ops`] is burn's tensor
//! operations, the path of every other backend, kept as the reference the CPU path is tested
//! against. [`profile`] times either by kind of layer.
//!
//! Weights come from a torchvision `.pth` state dict, a `.safetensors` file, or a seeded random
//! initialisation: see [`WeightsSource`] and [`load_resnet`] (in `weights.rs`).

use burn::config::Config;
use burn::module::{Module, Param};
use burn::nn::conv::{Conv2d, Conv2dConfig};
use burn::nn::{BatchNorm, BatchNormConfig, PaddingConfig2d};
use std::sync::Arc;

use burn::tensor::activation::relu;
use burn::tensor::backend::Backend;
use burn::tensor::module::max_pool2d;
use burn::tensor::{Tensor, TensorData};

use kernels::is_host;

mod cpu;
pub mod profile;
mod weights;

use profile::{Layer, Profile};

pub use weights::{ModelError, WeightsSource, load_resnet, load_resnet_unfolded};

/// Channel expansion of a bottleneck block: its output has `4 * planes` channels.
pub const EXPANSION: usize = 4;

/// BatchNorm epsilon used by torchvision's `nn.BatchNorm2d`.
pub const BN_EPSILON: f64 = 1e-5;

/// Shape of a ResNet with bottleneck blocks.
#[derive(Config, Debug, PartialEq, Eq)]
pub struct ResNetConfig {
    /// Number of bottleneck blocks in each of the four stages (`[3, 4, 6, 3]` for ResNet50).
    #[config(default = "[3, 4, 6, 3]")]
    pub layers: [usize; 4],
    /// Planes of the stem and the first stage (64 for ResNet50); stage `s` has
    /// `base_planes * 2^s` planes and `4x` that many output channels.
    #[config(default = 64)]
    pub base_planes: usize,
}

impl ResNetConfig {
    /// torchvision's `resnet50`.
    pub fn resnet50() -> Self {
        Self::new()
    }

    /// Length of the feature vector: the channels of the last stage (2048 for ResNet50).
    pub fn feature_dim(&self) -> usize {
        self.base_planes * 8 * EXPANSION
    }

    /// Planes of stage `stage` (0-based).
    fn planes(&self, stage: usize) -> usize {
        self.base_planes << stage
    }

    /// Every block as `(stage, index, in_channels, planes, stride, has_downsample)`, in
    /// torchvision's order (its `_make_layer` rules: the first block of a stage strides by 2
    /// except in stage 0, and gets a downsample when the stride or the channel count changes).
    fn blocks(&self) -> Vec<BlockSpec> {
        let mut specs = Vec::new();
        let mut in_channels = self.base_planes;
        for (stage, &count) in self.layers.iter().enumerate() {
            let planes = self.planes(stage);
            for index in 0..count {
                let stride = if index == 0 && stage > 0 { 2 } else { 1 };
                let downsample = index == 0 && (stride != 1 || in_channels != planes * EXPANSION);
                specs.push(BlockSpec {
                    stage,
                    index,
                    in_channels,
                    planes,
                    stride,
                    downsample,
                });
                in_channels = planes * EXPANSION;
            }
        }
        specs
    }

    /// The tensors a torchvision state dict of this network holds, as `(key, shape)` in
    /// torchvision's order, without `fc.*` and the BatchNorm `num_batches_tracked` counters
    /// (which the loader ignores).
    pub fn torchvision_tensors(&self) -> Vec<(String, Vec<usize>)> {
        fn bn(out: &mut Vec<(String, Vec<usize>)>, prefix: &str, channels: usize) {
            for name in ["weight", "bias", "running_mean", "running_var"] {
                out.push((format!("{prefix}.{name}"), vec![channels]));
            }
        }
        let b = self.base_planes;
        let mut out = vec![("conv1.weight".to_string(), vec![b, 3, 7, 7])];
        bn(&mut out, "bn1", b);
        for spec in self.blocks() {
            let p = format!("layer{}.{}", spec.stage + 1, spec.index);
            let (cin, planes, cout) = (spec.in_channels, spec.planes, spec.planes * EXPANSION);
            out.push((format!("{p}.conv1.weight"), vec![planes, cin, 1, 1]));
            bn(&mut out, &format!("{p}.bn1"), planes);
            out.push((format!("{p}.conv2.weight"), vec![planes, planes, 3, 3]));
            bn(&mut out, &format!("{p}.bn2"), planes);
            out.push((format!("{p}.conv3.weight"), vec![cout, planes, 1, 1]));
            bn(&mut out, &format!("{p}.bn3"), cout);
            if spec.downsample {
                out.push((format!("{p}.downsample.0.weight"), vec![cout, cin, 1, 1]));
                bn(&mut out, &format!("{p}.downsample.1"), cout);
            }
        }
        out
    }

    /// Builds the network with burn's (lazy) default initialisation: a skeleton that
    /// [`load_resnet_unfolded`] fills with real or seeded-random weights.
    pub fn init<B: Backend>(&self, device: &B::Device) -> ResNet<B> {
        let b = self.base_planes;
        let conv1 = Conv2dConfig::new([3, b], [7, 7])
            .with_stride([2, 2])
            .with_padding(PaddingConfig2d::Explicit(3, 3, 3, 3))
            .with_bias(false)
            .init(device);
        let mut stages: [Vec<Bottleneck<B>>; 4] = Default::default();
        for spec in self.blocks() {
            stages[spec.stage].push(spec.init(device));
        }
        let [layer1, layer2, layer3, layer4] = stages;
        ResNet {
            conv1,
            bn1: bn(b, device),
            layer1,
            layer2,
            layer3,
            layer4,
        }
    }
}

/// One bottleneck block's place in the network.
#[derive(Debug, Clone, Copy)]
struct BlockSpec {
    stage: usize,
    index: usize,
    in_channels: usize,
    planes: usize,
    stride: usize,
    downsample: bool,
}

impl BlockSpec {
    fn init<B: Backend>(&self, device: &B::Device) -> Bottleneck<B> {
        let (planes, out) = (self.planes, self.planes * EXPANSION);
        let s = self.stride;
        let downsample = self.downsample.then(|| Downsample {
            conv: conv(self.in_channels, out, 1, s, 0, device),
            bn: bn(out, device),
        });
        Bottleneck {
            conv1: conv(self.in_channels, planes, 1, 1, 0, device),
            bn1: bn(planes, device),
            conv2: conv(planes, planes, 3, s, 1, device),
            bn2: bn(planes, device),
            conv3: conv(planes, out, 1, 1, 0, device),
            bn3: bn(out, device),
            downsample,
        }
    }
}

/// A square convolution without bias, as torchvision's `conv1x1` / `conv3x3`.
fn conv<B: Backend>(
    cin: usize,
    cout: usize,
    kernel: usize,
    stride: usize,
    pad: usize,
    device: &B::Device,
) -> Conv2d<B> {
    Conv2dConfig::new([cin, cout], [kernel, kernel])
        .with_stride([stride, stride])
        .with_padding(PaddingConfig2d::Explicit(pad, pad, pad, pad))
        .with_bias(false)
        .init(device)
}

fn bn<B: Backend>(channels: usize, device: &B::Device) -> BatchNorm<B> {
    BatchNormConfig::new(channels)
        .with_epsilon(BN_EPSILON)
        .init(device)
}

/// The stem's 3x3, stride 2, padding 1 max pooling.
fn stem_pool<B: Backend>(x: Tensor<B, 4>) -> Tensor<B, 4> {
    max_pool2d(x, [3, 3], [2, 2], [1, 1], [1, 1], false)
}

/// Global average pooling: `[N, C, H, W]` -> `[N, C]`.
fn global_avg_pool<B: Backend>(x: Tensor<B, 4>) -> Tensor<B, 2> {
    let [n, c, h, w] = x.dims();
    // Flatten the spatial dims, average them, drop the reduced axis.
    x.reshape([n, c, h * w]).mean_dim(2).reshape([n, c])
}

/// torchvision's ResNet (bottleneck blocks) up to the pooled features, with BatchNorm layers.
///
/// Field names are torchvision's state-dict keys. Prefer [`FoldedResNet`] (from
/// [`ResNet::fold`]) for inference.
#[derive(Module, Debug)]
pub struct ResNet<B: Backend> {
    pub conv1: Conv2d<B>,
    pub bn1: BatchNorm<B>,
    pub layer1: Vec<Bottleneck<B>>,
    pub layer2: Vec<Bottleneck<B>>,
    pub layer3: Vec<Bottleneck<B>>,
    pub layer4: Vec<Bottleneck<B>>,
}

/// torchvision's `Bottleneck` (v1.5: the stride is on `conv2`, the 3x3 convolution).
#[derive(Module, Debug)]
pub struct Bottleneck<B: Backend> {
    pub conv1: Conv2d<B>,
    pub bn1: BatchNorm<B>,
    pub conv2: Conv2d<B>,
    pub bn2: BatchNorm<B>,
    pub conv3: Conv2d<B>,
    pub bn3: BatchNorm<B>,
    /// 1x1 convolution (with the block's stride) + BatchNorm on the shortcut; torchvision's
    /// `downsample.0` / `downsample.1`.
    pub downsample: Option<Downsample<B>>,
}

/// The projection shortcut of the first block of a stage.
#[derive(Module, Debug)]
pub struct Downsample<B: Backend> {
    pub conv: Conv2d<B>,
    pub bn: BatchNorm<B>,
}

impl<B: Backend> ResNet<B> {
    /// `[N, 3, H, W]` normalized images -> `[N, C]` pooled features (C = 2048 for ResNet50).
    ///
    /// BatchNorm uses the running statistics on a plain backend (on `Autodiff<_>` burn switches
    /// it to batch statistics: call `.valid()` first there).
    pub fn forward(&self, images: Tensor<B, 4>) -> Tensor<B, 2> {
        let x = relu(self.bn1.forward(self.conv1.forward(images)));
        let mut x = stem_pool(x);
        for block in self.blocks() {
            x = block.forward(x);
        }
        global_avg_pool(x)
    }

    fn blocks(&self) -> impl Iterator<Item = &Bottleneck<B>> {
        self.layer1
            .iter()
            .chain(&self.layer2)
            .chain(&self.layer3)
            .chain(&self.layer4)
    }

    /// Folds every BatchNorm into the convolution before it, giving the fast inference form.
    pub fn fold(self) -> FoldedResNet<B> {
        let fold_stage =
            |stage: Vec<Bottleneck<B>>| stage.into_iter().map(Bottleneck::fold).collect();
        let mut folded = FoldedResNet {
            conv1: fold_bn(self.conv1, self.bn1),
            layer1: fold_stage(self.layer1),
            layer2: fold_stage(self.layer2),
            layer3: fold_stage(self.layer3),
            layer4: fold_stage(self.layer4),
            cpu: None,
        };
        if is_host::<B>() {
            folded.cpu = Some(Arc::new(cpu::CpuResNet::new(&folded)));
        }
        folded
    }
}

impl<B: Backend> Bottleneck<B> {
    /// `[N, Cin, H, W]` -> `[N, 4 * planes, H / stride, W / stride]`.
    pub fn forward(&self, x: Tensor<B, 4>) -> Tensor<B, 4> {
        let identity = match &self.downsample {
            Some(ds) => ds.bn.forward(ds.conv.forward(x.clone())),
            None => x.clone(),
        };
        let out = relu(self.bn1.forward(self.conv1.forward(x)));
        let out = relu(self.bn2.forward(self.conv2.forward(out)));
        let out = self.bn3.forward(self.conv3.forward(out));
        relu(out + identity)
    }

    fn fold(self) -> FoldedBottleneck<B> {
        FoldedBottleneck {
            conv1: fold_bn(self.conv1, self.bn1),
            conv2: fold_bn(self.conv2, self.bn2),
            conv3: fold_bn(self.conv3, self.bn3),
            downsample: self.downsample.map(|ds| fold_bn(ds.conv, ds.bn)),
        }
    }
}

/// `bn(conv(x))` as one convolution with bias (inference only: uses the running statistics).
fn fold_bn<B: Backend>(conv: Conv2d<B>, bn: BatchNorm<B>) -> Conv2d<B> {
    let Conv2d {
        weight,
        bias,
        stride,
        kernel_size,
        dilation,
        groups,
        padding,
    } = conv;
    let weight = weight.val();
    let out_channels = weight.dims()[0];
    // Per output channel: scale = gamma / sqrt(running_var + eps).
    let scale = bn.gamma.val() / (bn.running_var.value() + bn.epsilon).sqrt();
    let shift = match bias {
        Some(b) => b.val() - bn.running_mean.value(),
        None => bn.running_mean.value().neg(),
    };
    let bias = bn.beta.val() + shift * scale.clone();
    // Scale each output channel's filter: [O] -> [O, 1, 1, 1] broadcast over [O, I, kh, kw].
    let weight = weight * scale.reshape([out_channels, 1, 1, 1]);
    Conv2d {
        weight: Param::from_tensor(weight),
        bias: Some(Param::from_tensor(bias)),
        stride,
        kernel_size,
        dilation,
        groups,
        padding,
    }
}

/// [`ResNet`] with every BatchNorm folded into its convolution: the inference form.
#[derive(Module, Debug)]
pub struct FoldedResNet<B: Backend> {
    pub conv1: Conv2d<B>,
    pub layer1: Vec<FoldedBottleneck<B>>,
    pub layer2: Vec<FoldedBottleneck<B>>,
    pub layer3: Vec<FoldedBottleneck<B>>,
    pub layer4: Vec<FoldedBottleneck<B>>,
    /// The same weights reordered for the CPU path, made by [`ResNet::fold`] on the CPU
    /// backend (it is not updated if the tensors above are changed afterwards).
    #[module(skip)]
    cpu: Option<Arc<cpu::CpuResNet>>,
}

/// A [`Bottleneck`] with its BatchNorms folded into the convolutions.
#[derive(Module, Debug)]
pub struct FoldedBottleneck<B: Backend> {
    pub conv1: Conv2d<B>,
    pub conv2: Conv2d<B>,
    pub conv3: Conv2d<B>,
    pub downsample: Option<Conv2d<B>>,
}

impl<B: Backend> FoldedResNet<B> {
    /// `[N, 3, H, W]` normalized images -> `[N, C]` pooled features (`[N, 3, 224, 224]` ->
    /// `[N, 2048]` for ResNet50). Any `H, W` of at least 32 works (global pooling).
    ///
    /// On the CPU backend this runs the CPU path, elsewhere [`Self::forward_tensor_ops`].
    pub fn forward(&self, images: Tensor<B, 4>) -> Tensor<B, 2> {
        self.forward_profiled(images, &mut Profile::off())
    }

    /// [`Self::forward`], timing each layer into `profile`.
    pub fn forward_profiled(&self, images: Tensor<B, 4>, profile: &mut Profile) -> Tensor<B, 2> {
        self.run(images, false, profile).0
    }

    /// The pooled features and the last feature map they pool (`[N, C, H/32, W/32]`, the
    /// 7x7 grid attention reads), from one pass.
    pub fn forward_with_grid(&self, images: Tensor<B, 4>) -> (Tensor<B, 2>, Tensor<B, 4>) {
        let (pooled, map) = self.run(images, true, &mut Profile::off());
        (pooled, map.expect("a grid was asked for"))
    }

    /// The pooled features, and with `grid` the map they pool: by the CPU path where there
    /// is one, else by tensor operations.
    fn run(
        &self,
        images: Tensor<B, 4>,
        grid: bool,
        profile: &mut Profile,
    ) -> (Tensor<B, 2>, Option<Tensor<B, 4>>) {
        let Some(cpu) = &self.cpu else {
            let map = self.feature_map(images, profile);
            let pooled = profile.time(Layer::AveragePool, 0, || global_avg_pool(map.clone()));
            return (pooled, grid.then_some(map));
        };
        let [n, _, h, w] = images.dims();
        let device = images.device();
        let pixels = images
            .into_data()
            .convert::<f32>()
            .into_vec::<f32>()
            .expect("f32 images");
        let (features, map) = cpu.forward(&pixels, n, (h, w), grid, profile);
        let dim = features.len() / n.max(1);
        let pooled = Tensor::from_data(TensorData::new(features, [n, dim]), &device);
        let map = map.map(|m| Tensor::from_data(TensorData::new(m.values, m.shape), &device));
        (pooled, map)
    }

    /// The network as burn tensor operations: the path of the GPU backends, and on the CPU
    /// backend the reference for the CPU path.
    pub fn forward_tensor_ops(&self, images: Tensor<B, 4>) -> Tensor<B, 2> {
        self.forward_tensor_ops_profiled(images, &mut Profile::off())
    }

    /// [`Self::forward_tensor_ops`], timing each layer into `profile`.
    pub fn forward_tensor_ops_profiled(
        &self,
        images: Tensor<B, 4>,
        profile: &mut Profile,
    ) -> Tensor<B, 2> {
        let map = self.feature_map(images, profile);
        profile.time(Layer::AveragePool, 0, || global_avg_pool(map))
    }

    /// The last feature map by tensor operations: the reference for the CPU path's grid.
    pub fn feature_map_tensor_ops(&self, images: Tensor<B, 4>) -> Tensor<B, 4> {
        self.feature_map(images, &mut Profile::off())
    }

    /// `[N, 3, H, W]` -> the last block's output, before pooling, by tensor operations.
    fn feature_map(&self, images: Tensor<B, 4>, profile: &mut Profile) -> Tensor<B, 4> {
        let macs = conv_macs(&self.conv1, &images);
        let x = profile.time(Layer::Stem7x7, macs, || self.conv1.forward(images));
        let x = profile.time(Layer::ElementWise, 0, || relu(x));
        let mut x = profile.time(Layer::MaxPool, 0, || stem_pool(x));
        for block in self.blocks() {
            x = block.forward(x, profile);
        }
        x
    }

    /// Length of the feature vector (the output channels of the last block).
    pub fn feature_dim(&self) -> usize {
        match self.blocks().last() {
            Some(block) => block.conv3.weight.dims()[0],
            None => self.conv1.weight.dims()[0],
        }
    }

    /// Whether [`Self::forward`] runs the CPU path (it does on the CPU backend).
    pub fn uses_cpu_path(&self) -> bool {
        self.cpu.is_some()
    }

    fn blocks(&self) -> impl Iterator<Item = &FoldedBottleneck<B>> {
        self.layer1
            .iter()
            .chain(&self.layer2)
            .chain(&self.layer3)
            .chain(&self.layer4)
    }
}

impl<B: Backend> FoldedBottleneck<B> {
    /// `[N, Cin, H, W]` -> `[N, 4 * planes, H / stride, W / stride]`.
    fn forward(&self, x: Tensor<B, 4>, profile: &mut Profile) -> Tensor<B, 4> {
        let identity = match &self.downsample {
            Some(ds) => {
                let macs = conv_macs(ds, &x);
                profile.time(Layer::Downsample, macs, || ds.forward(x.clone()))
            }
            None => x.clone(),
        };
        let macs = conv_macs(&self.conv1, &x);
        let out = profile.time(Layer::Conv1x1, macs, || self.conv1.forward(x));
        let out = profile.time(Layer::ElementWise, 0, || relu(out));
        let kind = match self.conv2.stride {
            [1, 1] => Layer::Conv3x3,
            _ => Layer::Conv3x3Stride2,
        };
        let macs = conv_macs(&self.conv2, &out);
        let out = profile.time(kind, macs, || self.conv2.forward(out));
        let out = profile.time(Layer::ElementWise, 0, || relu(out));
        let macs = conv_macs(&self.conv3, &out);
        let out = profile.time(Layer::Conv1x1, macs, || self.conv3.forward(out));
        profile.time(Layer::ElementWise, 0, || relu(out + identity))
    }
}

/// Multiply-accumulates of `conv` on `x` (square kernels, "same"-style padding as here).
fn conv_macs<B: Backend>(conv: &Conv2d<B>, x: &Tensor<B, 4>) -> u64 {
    let [n, _, h, w] = x.dims();
    let [out_c, in_c, kh, kw] = conv.weight.dims();
    let pad = kh / 2;
    let (oh, ow) = (
        (h + 2 * pad - kh) / conv.stride[0] + 1,
        (w + 2 * pad - kw) / conv.stride[1] + 1,
    );
    (n * oh * ow * out_c * in_c * kh * kw) as u64
}
