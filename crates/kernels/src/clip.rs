//! Global gradient-norm clipping, as PyTorch's `clip_grad_norm_` does it (burn's own clipping
//! works per tensor): the sum of squares of every gradient in one multi-threaded pass per
//! tensor on the CPU, in fixed chunks so that it is reproducible bit for bit.

use burn::module::{AutodiffModule, ModuleVisitor, Param};
use burn::optim::GradientsParams;
use burn::tensor::backend::{AutodiffBackend, Backend};
use burn::tensor::{ElementConversion, Tensor};
use rayon::prelude::*;
use wide::f32x8;

use crate::backend::is_host;
use crate::host::CHUNK;

/// Rescales all gradients together so that their global L2 norm is at most `max_norm`, as
/// PyTorch's `clip_grad_norm_` does (burn's own clipping works per tensor). Returns the norm
/// before clipping.
pub fn clip_global_norm<B: AutodiffBackend, M: AutodiffModule<B>>(
    model: &M,
    grads: &mut GradientsParams,
    max_norm: f64,
) -> f64 {
    struct SquaredNorm<'a> {
        grads: &'a mut GradientsParams,
        total: f64,
    }
    impl<B: AutodiffBackend> ModuleVisitor<B> for SquaredNorm<'_> {
        fn visit_float<const D: usize>(&mut self, param: &Param<Tensor<B, D>>) {
            if let Some(grad) = self.grads.remove::<B::InnerBackend, D>(param.id) {
                let (squares, grad) = squared_sum(grad);
                self.total += squares;
                self.grads.register(param.id, grad);
            }
        }
    }
    let mut norm = SquaredNorm { grads, total: 0.0 };
    model.visit(&mut norm);
    let norm = norm.total.sqrt();
    // PyTorch's rule: scale by max_norm / (norm + 1e-6) when that is below 1.
    let factor = max_norm / (norm + 1e-6);
    if factor < 1.0 {
        scale_grads(model, grads, factor);
    }
    norm
}

/// Multiplies every gradient of `model`'s parameters in `grads` by `factor`.
pub fn scale_grads<B: AutodiffBackend, M: AutodiffModule<B>>(
    model: &M,
    grads: &mut GradientsParams,
    factor: f64,
) {
    struct Scale<'a> {
        grads: &'a mut GradientsParams,
        factor: f64,
    }
    impl<B: AutodiffBackend> ModuleVisitor<B> for Scale<'_> {
        fn visit_float<const D: usize>(&mut self, param: &Param<Tensor<B, D>>) {
            if let Some(grad) = self.grads.remove::<B::InnerBackend, D>(param.id) {
                self.grads.register(param.id, scaled(grad, self.factor));
            }
        }
    }
    model.visit(&mut Scale { grads, factor });
}

/// `grads` with every gradient replaced by zeros of its shape, on its device; parameters
/// without a gradient (constants outside the graph) stay without one. Zeros rather than
/// `grads` scaled by 0, which would keep a NaN or an infinity.
pub fn zeroed<B: AutodiffBackend, M: AutodiffModule<B>>(
    model: &M,
    mut grads: GradientsParams,
) -> GradientsParams {
    struct Zeros<'a>(&'a mut GradientsParams);
    impl<B: AutodiffBackend> ModuleVisitor<B> for Zeros<'_> {
        fn visit_float<const D: usize>(&mut self, param: &Param<Tensor<B, D>>) {
            if let Some(grad) = self.0.remove::<B::InnerBackend, D>(param.id) {
                self.0.register(param.id, grad.zeros_like());
            }
        }
    }
    model.visit(&mut Zeros(&mut grads));
    grads
}

/// The sum of the squares of `tensor`'s elements, and the tensor back. The sum is split the
/// same way on every run (fixed chunks, or rows), so clipping is bit-for-bit reproducible.
fn squared_sum<B: Backend, const D: usize>(tensor: Tensor<B, D>) -> (f64, Tensor<B, D>) {
    if is_host::<B>() {
        host_squared_sum(tensor)
    } else {
        tensor_squared_sum(tensor)
    }
}

/// [`squared_sum`] in one multi-threaded pass over host memory.
fn host_squared_sum<B: Backend, const D: usize>(tensor: Tensor<B, D>) -> (f64, Tensor<B, D>) {
    let device = tensor.device();
    let data = tensor.into_data();
    let chunks: Vec<f64> = data
        .as_slice::<f32>()
        .expect("f32 gradients")
        .par_chunks(CHUNK)
        .map(sum_of_squares)
        .collect();
    (chunks.iter().sum(), Tensor::from_data(data, &device))
}

/// The sum of squares of `values`, in eight independent lanes (one running sum would wait on
/// each addition before the next).
fn sum_of_squares(values: &[f32]) -> f64 {
    let (lanes, rest) = values.as_chunks::<8>();
    let mut sums = f32x8::splat(0.0);
    for chunk in lanes {
        let x = f32x8::new(*chunk);
        sums += x * x;
    }
    f64::from(sums.reduce_add()) + rest.iter().map(|&x| f64::from(x * x)).sum::<f64>()
}

/// [`squared_sum`] as tensor operations: row sums first, since a whole-tensor sum of millions
/// of values may be split across threads differently from run to run.
fn tensor_squared_sum<B: Backend, const D: usize>(tensor: Tensor<B, D>) -> (f64, Tensor<B, D>) {
    let dims = tensor.dims();
    let n: usize = dims.iter().product();
    let rows = tensor
        .clone()
        .reshape([dims[0], n / dims[0]])
        .square()
        .sum_dim(1);
    (rows.sum().into_scalar().elem::<f64>(), tensor)
}

/// `tensor * factor`, in place and multi-threaded on the CPU.
fn scaled<B: Backend, const D: usize>(tensor: Tensor<B, D>, factor: f64) -> Tensor<B, D> {
    if !is_host::<B>() {
        return tensor.mul_scalar(factor);
    }
    let device = tensor.device();
    let mut data = tensor.into_data();
    let factor = factor as f32;
    data.as_mut_slice::<f32>()
        .expect("f32 gradients")
        .par_chunks_mut(CHUNK)
        .for_each(|chunk| chunk.iter_mut().for_each(|x| *x *= factor));
    Tensor::from_data(data, &device)
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::backend::Cpu;
    use burn::backend::Autodiff;
    use burn::nn::Linear;
    use burn::tensor::Distribution;

    #[test]
    fn squared_sums_agree_with_a_plain_f64_sum() {
        let tensor = Tensor::<Cpu, 2>::random(
            [300, 1001],
            Distribution::Normal(0.0, 2.0),
            &Default::default(),
        );
        let values = tensor.clone().into_data().to_vec::<f32>().unwrap();
        let exact: f64 = values.iter().map(|&x| f64::from(x) * f64::from(x)).sum();
        let (host, back) = host_squared_sum(tensor.clone());
        let (tensors, _) = tensor_squared_sum(tensor);
        assert!((host - exact).abs() < 1e-6 * exact, "{host} vs {exact}");
        assert!(
            (tensors - exact).abs() < 1e-5 * exact,
            "{tensors} vs {exact}"
        );
        assert_eq!(back.into_data().to_vec::<f32>().unwrap(), values);
    }

    #[test]
    fn clipping_brings_the_global_norm_down_to_the_limit() {
        type AD = Autodiff<Cpu>;
        let device = Default::default();
        let layer = Linear::<AD> {
            weight: Param::from_tensor(Tensor::random([6, 4], Distribution::Default, &device)),
            bias: Some(Param::from_tensor(Tensor::random(
                [4],
                Distribution::Default,
                &device,
            ))),
        };
        let x = Tensor::<AD, 2>::random([3, 6], Distribution::Default, &device);
        let loss = layer.forward(x).tanh().sum();
        let mut grads = GradientsParams::from_grads(loss.backward(), &layer);
        let norm = clip_global_norm(&layer, &mut grads, f64::MAX);
        assert!(norm > 0.0);
        assert_eq!(clip_global_norm(&layer, &mut grads, f64::MAX), norm);
        clip_global_norm(&layer, &mut grads, norm / 2.0);
        let clipped = clip_global_norm(&layer, &mut grads, f64::MAX);
        assert!(
            (clipped - norm / 2.0).abs() < 1e-5 * norm,
            "{clipped} vs {}",
            norm / 2.0
        );
    }

    /// The idle replica's gradients: exact zeros even where a gradient is NaN (scaling by 0
    /// keeps it), for the parameters that have a gradient and no others (an all-reduce over
    /// unequal parameter sets would wait forever).
    #[test]
    fn zeroed_gradients_are_zero_whatever_they_held() {
        type AD = Autodiff<Cpu>;
        let device = Default::default();
        let mut weight = vec![0.5f32; 24];
        weight[3] = f32::NAN;
        weight[7] = f32::INFINITY;
        let layer = Linear::<AD> {
            weight: Param::from_tensor(Tensor::from_data(
                burn::tensor::TensorData::new(weight, [6, 4]),
                &device,
            )),
            bias: Some(Param::from_tensor(Tensor::zeros([4], &device))),
        };
        let x = Tensor::<AD, 2>::ones([1, 6], &device);
        let loss = layer.forward(x).tanh().sum();
        let mut scaled_grads = GradientsParams::from_grads(loss.backward(), &layer);
        scale_grads(&layer, &mut scaled_grads, 0.0);
        let bias_id = layer.bias.as_ref().unwrap().id;
        let scaled_bias: Vec<f32> = scaled_grads
            .get::<Cpu, 1>(bias_id)
            .unwrap()
            .into_data()
            .to_vec()
            .unwrap();
        assert!(scaled_bias.iter().any(|g| g.is_nan()), "{scaled_bias:?}");
        // A parameter outside the graph has no gradient, before and after.
        scaled_grads.remove::<Cpu, 2>(layer.weight.id).unwrap();
        let zeros = zeroed(&layer, scaled_grads);
        assert_eq!(zeros.len(), 1);
        assert!(zeros.get::<Cpu, 2>(layer.weight.id).is_none());
        let bias: Vec<f32> = zeros
            .get::<Cpu, 1>(bias_id)
            .unwrap()
            .into_data()
            .to_vec()
            .unwrap();
        assert_eq!(bias, vec![0.0; 4]);
    }

    #[test]
    fn scaling_multiplies_every_element() {
        let tensor = Tensor::<Cpu, 1>::random([70_000], Distribution::Default, &Default::default());
        let values = tensor.clone().into_data().to_vec::<f32>().unwrap();
        let scaled = scaled(tensor, 0.25).into_data().to_vec::<f32>().unwrap();
        assert!(values.iter().zip(&scaled).all(|(v, s)| *s == v * 0.25));
    }
}
