//! Initial weights: every value drawn from one seeded generator, every parameter numbered in
//! creation order.
//!
//! burn gives each new parameter a random id, and checkpoints store the ids; numbering them
//! instead makes two runs with the same seed write byte-identical checkpoints.

use burn::module::{Param, ParamId};
use burn::nn::{LayerNorm, LayerNormConfig, Linear};
use burn::tensor::backend::Backend;
use burn::tensor::{Tensor, TensorData};
use rand::{Rng, SeedableRng};
use rand_chacha::ChaCha8Rng;
use rand_distr::{Distribution, StandardNormal};

/// Makes the parameters of one model, in a fixed order.
pub(crate) struct Initializer<'a, B: Backend> {
    rng: ChaCha8Rng,
    device: &'a B::Device,
    next_id: u64,
}

impl<'a, B: Backend> Initializer<'a, B> {
    pub fn new(seed: u64, device: &'a B::Device) -> Self {
        Self {
            rng: ChaCha8Rng::seed_from_u64(seed),
            device,
            next_id: 0,
        }
    }

    fn param<const D: usize>(
        &mut self,
        values: Vec<f32>,
        shape: [usize; D],
    ) -> Param<Tensor<B, D>> {
        self.next_id += 1;
        let tensor = Tensor::from_data(TensorData::new(values, shape), self.device);
        Param::initialized(ParamId::from(self.next_id), tensor.require_grad())
    }

    /// U(-1/sqrt(fan_in), 1/sqrt(fan_in)), PyTorch's default for linear and LSTM weights.
    pub fn uniform<const D: usize>(
        &mut self,
        shape: [usize; D],
        fan_in: usize,
    ) -> Param<Tensor<B, D>> {
        let bound = 1.0 / (fan_in as f32).sqrt();
        let n = shape.iter().product();
        let values = (0..n)
            .map(|_| (self.rng.random::<f32>() * 2.0 - 1.0) * bound)
            .collect();
        self.param(values, shape)
    }

    /// N(0, 1), PyTorch's default for embeddings.
    pub fn normal<const D: usize>(&mut self, shape: [usize; D]) -> Param<Tensor<B, D>> {
        let n = shape.iter().product();
        let values = (0..n)
            .map(|_| StandardNormal.sample(&mut self.rng))
            .collect();
        self.param(values, shape)
    }

    /// A `[input -> output]` layer with PyTorch's initialisation for fan-in `input`.
    pub fn linear(&mut self, input: usize, output: usize, bias: bool) -> Linear<B> {
        Linear {
            weight: self.uniform([input, output], input),
            bias: bias.then(|| self.uniform([output], input)),
        }
    }

    /// A layer norm over `dim` features: scale 1, shift 0 and epsilon 1e-5, as PyTorch's.
    pub fn layer_norm(&mut self, dim: usize) -> LayerNorm<B> {
        let mut norm = LayerNormConfig::new(dim).init(self.device);
        norm.gamma = self.param(vec![1.0; dim], [dim]);
        norm.beta = Some(self.param(vec![0.0; dim], [dim]));
        norm
    }

    /// The standardisation constants of `stats`: the mean, then 1 / std, `[dim]` each.
    pub fn standardisation(
        &mut self,
        stats: &crate::FeatureStats,
    ) -> (Param<Tensor<B, 1>>, Param<Tensor<B, 1>>) {
        let inv_std: Vec<f32> = stats.std.iter().map(|s| 1.0 / s).collect();
        (self.constant(&stats.mean), self.constant(&inv_std))
    }

    /// A constant the optimizer leaves alone (no gradient), e.g. standardisation statistics.
    pub fn constant(&mut self, values: &[f32]) -> Param<Tensor<B, 1>> {
        self.next_id += 1;
        let tensor = Tensor::from_data(
            TensorData::new(values.to_vec(), [values.len()]),
            self.device,
        );
        Param::initialized(ParamId::from(self.next_id), tensor)
    }
}

/// That `stats` has the model's `feature_dim` entries: "`{what}` statistics have N `{unit}`,
/// the model M" otherwise (`("grid", "channels")` for a grid model).
pub(crate) fn check_stats(
    stats: &crate::FeatureStats,
    feature_dim: usize,
    (what, unit): (&str, &str),
) -> Result<(), crate::DecoderError> {
    if stats.dim() != feature_dim {
        return Err(crate::DecoderError::Config(format!(
            "{what} statistics have {} {unit}, the model {feature_dim}",
            stats.dim()
        )));
    }
    Ok(())
}

/// The checks every caption model's config shares: words besides the special tokens, positive
/// sizes (`(name, value)`), a dropout probability in `[0, 1)`.
pub(crate) fn check_sizes(
    vocab_size: usize,
    sizes: &[(&str, usize)],
    dropout: f64,
) -> Result<(), crate::DecoderError> {
    let bad = |m: String| Err(crate::DecoderError::Config(m));
    if vocab_size <= contracts::vocab::SPECIALS as usize {
        return bad(format!(
            "vocab_size {vocab_size} leaves no room for words after the 4 special tokens"
        ));
    }
    if let Some((name, _)) = sizes.iter().find(|(_, value)| *value == 0) {
        return bad(format!("{name} must be positive"));
    }
    if !(0.0..1.0).contains(&dropout) {
        return bad(format!("dropout {dropout} is not in [0, 1)"));
    }
    Ok(())
}
