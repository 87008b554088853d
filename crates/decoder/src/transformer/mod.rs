//! A Transformer captioner over the grid of ResNet50's last feature map (7x7 regions of 2048
//! channels), in the shape of ruotianluo's ImageCaptioning.pytorch "transformer". Its layers
//! are in [`layers`], its training loss and gradients in [`training`].
//!
//! ```text
//! grid [B, R, F] -> standardise -> dropout(relu(Linear F -> d)) + 2-D sinusoidal position
//!   -> encoder_layers x (self-attention, feed-forward) -> LayerNorm = memory [B, R, d]
//! words <start> w1 .. wn -> dropout(embedding * sqrt(d) + sinusoidal position)
//!   -> decoder_layers x (masked self-attention, cross-attention over memory, feed-forward)
//!   -> LayerNorm -> Linear d -> vocab                       the next word
//! ```
//!
//! Choices, and why:
//! - **Pre-norm** residual blocks with a final LayerNorm (ruotianluo's, the Annotated
//!   Transformer's): they train without the careful warm-up post-norm needs at this depth.
//! - **Sinusoidal word positions** (ruotianluo's, Vaswani et al.'s): no weights to learn for
//!   positions few training captions reach, and any caption length decodes.
//! - **The regions get a 2-D sinusoidal position** (row in the first half of the channels,
//!   column in the second): ruotianluo's regions are detector boxes that carry their place,
//!   a grid cell does not, and without it "a circle left of a square" cannot be told from
//!   "a square left of a circle".
//! - **Untied output layer** (ruotianluo's generator is its own `Linear`): the vocabulary
//!   layer stays the one every model ends with, so training shares the fused cross-entropy
//!   kernel ([`crate::output`]), and the embedding's scale (`sqrt(d_model)` at the input) need
//!   not suit the logits.

use burn::module::{Module, Param};
use burn::nn::attention::MultiHeadAttention;
use burn::nn::transformer::PositionWiseFeedForward;
use burn::nn::{Dropout, Embedding, Gelu, LayerNorm, Linear, Relu, generate_sinusoids};
use burn::tensor::activation::{log_softmax, relu};
use burn::tensor::backend::Backend;
use burn::tensor::{Int, Tensor};
use contracts::config::{LrSchedule, ModelConfig};
use contracts::tables::FEATURE_DIM;
use rand::RngCore;
use serde::{Deserialize, Serialize};

pub mod layers;
mod reference;
pub mod training;

/// The names the registry ([`crate::captioner`]) knows the model by.
pub use self::{TransformerConfig as Config, TransformerModel as Model, TransformerState as State};

use self::layers::{DecoderLayer, EncoderLayer, KeyValues, causal_mask, key_values, project};
pub use self::reference::write_reference_check;
use crate::captioner::{Architected, Architecture, ShapeMismatch};
use crate::dropout::dropout;
use crate::init::Initializer;
use crate::model::{CaptionModel, DecodeState, Images};
use crate::{DecoderError, FeatureStats, TeacherBatch};

/// Word positions a decoding can reach (`evaluator.max_len` is at most 255, plus `<start>`
/// and the forced `<end>`).
const MAX_POSITIONS: usize = 512;

/// The sinusoids' longest period, Vaswani et al.'s.
const MAX_TIMESCALE: usize = 10_000;

/// The architecture: everything needed to rebuild the network before loading its weights.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct TransformerConfig {
    /// Vocabulary size, special tokens included.
    pub vocab_size: usize,
    /// Channels of a grid region (2048 for ResNet50).
    pub feature_dim: usize,
    pub d_model: usize,
    pub heads: usize,
    pub feed_forward: usize,
    pub encoder_layers: usize,
    pub decoder_layers: usize,
    pub dropout: f64,
}

/// For logs, after `transformer decoder: `.
impl std::fmt::Display for TransformerConfig {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(
            f,
            "d_model {}, {} heads, feed-forward {}, {} encoder and {} decoder layers, \
             vocabulary {}, dropout {}",
            self.d_model,
            self.heads,
            self.feed_forward,
            self.encoder_layers,
            self.decoder_layers,
            self.vocab_size,
            self.dropout
        )
    }
}

impl Architecture for TransformerConfig {
    type Model<B: Backend> = TransformerModel<B>;

    fn from_pipeline(model: &ModelConfig, vocab_size: usize) -> Self {
        let own = &model.transformer;
        Self {
            vocab_size,
            feature_dim: FEATURE_DIM,
            d_model: own.d_model,
            heads: own.heads,
            feed_forward: own.feed_forward,
            encoder_layers: own.encoder_layers,
            decoder_layers: own.decoder_layers,
            dropout: own.dropout,
        }
    }

    fn vocab_size(&self) -> usize {
        self.vocab_size
    }

    fn feature_dim(&self) -> usize {
        self.feature_dim
    }

    fn schedule(&self) -> LrSchedule {
        LrSchedule::Warmup
    }

    fn attention_maps(&self) -> Option<&'static str> {
        Some("the last decoder layer's cross-attention over the grid, averaged over its heads")
    }

    fn validate(&self) -> Result<(), DecoderError> {
        crate::init::check_sizes(
            self.vocab_size,
            &[
                ("feature_dim", self.feature_dim),
                ("d_model", self.d_model),
                ("heads", self.heads),
                ("feed_forward", self.feed_forward),
                ("encoder_layers", self.encoder_layers),
                ("decoder_layers", self.decoder_layers),
            ],
            self.dropout,
        )?;
        if !self.d_model.is_multiple_of(self.heads) {
            return Err(DecoderError::Config(format!(
                "d_model {} is not a multiple of heads {}",
                self.d_model, self.heads
            )));
        }
        if !self.d_model.is_multiple_of(4) {
            return Err(DecoderError::Config(format!(
                "d_model {} is not a multiple of 4 (the regions' 2-D positions take sine and \
                 cosine pairs for rows and for columns)",
                self.d_model
            )));
        }
        Ok(())
    }

    /// A freshly initialised model, every weight drawn from `seed` (PyTorch's default
    /// initialisation for linear layers, `U(-1/sqrt(d), 1/sqrt(d))` for the embedding, whose
    /// `sqrt(d)` scale then gives words the positions' unit size), standardising grid channels
    /// with `stats`.
    fn init<B: Backend>(
        &self,
        stats: &FeatureStats,
        seed: u64,
        device: &B::Device,
    ) -> Result<TransformerModel<B>, DecoderError> {
        self.validate()?;
        crate::init::check_stats(stats, self.feature_dim, ("grid", "channels"))?;
        let mut init = Initializer::<B>::new(seed, device);
        let d = self.d_model;
        let (feature_mean, feature_inv_std) = init.standardisation(stats);
        let region_projection = init.linear(self.feature_dim, d, true);
        let encoder = (0..self.encoder_layers)
            .map(|_| EncoderLayer {
                norm_attention: init.layer_norm(d),
                attention: self.attention(&mut init),
                norm_feed_forward: init.layer_norm(d),
                feed_forward: self.feed_forward(&mut init),
            })
            .collect();
        let encoder_norm = init.layer_norm(d);
        let embedding = Embedding {
            weight: init.uniform([self.vocab_size, d], d),
        };
        let decoder = (0..self.decoder_layers)
            .map(|_| DecoderLayer {
                norm_self: init.layer_norm(d),
                self_attention: self.attention(&mut init),
                norm_cross: init.layer_norm(d),
                cross_attention: self.attention(&mut init),
                norm_feed_forward: init.layer_norm(d),
                feed_forward: self.feed_forward(&mut init),
            })
            .collect();
        let decoder_norm = init.layer_norm(d);
        let output = init.linear(d, self.vocab_size, true);
        Ok(TransformerModel {
            feature_mean,
            feature_inv_std,
            region_projection,
            encoder,
            encoder_norm,
            embedding,
            decoder,
            decoder_norm,
            output,
            dropout: self.dropout,
        })
    }
}

impl TransformerConfig {
    /// burn's multi-head attention, its four projections from `init` (its own dropout and
    /// activation are unused: see [`layers`]).
    fn attention<B: Backend>(&self, init: &mut Initializer<B>) -> MultiHeadAttention<B> {
        let d = self.d_model;
        MultiHeadAttention {
            query: init.linear(d, d, true),
            key: init.linear(d, d, true),
            value: init.linear(d, d, true),
            output: init.linear(d, d, true),
            dropout: Dropout { prob: 0.0 },
            activation: Gelu { approximate: false },
            d_model: d,
            n_heads: self.heads,
            d_k: d / self.heads,
            min_float: -1e4,
            quiet_softmax: false,
        }
    }

    /// burn's position-wise feed-forward block with ReLU, its layers from `init`.
    fn feed_forward<B: Backend>(&self, init: &mut Initializer<B>) -> PositionWiseFeedForward<B> {
        PositionWiseFeedForward {
            linear_inner: init.linear(self.d_model, self.feed_forward, true),
            linear_outer: init.linear(self.feed_forward, self.d_model, true),
            dropout: Dropout { prob: 0.0 },
            activation: burn::nn::activation::Activation::Relu(Relu),
        }
    }
}

/// The Transformer captioner. Build it with [`TransformerConfig::init`] or load it with
/// [`crate::load_captioner`].
#[derive(Module, Debug)]
pub struct TransformerModel<B: Backend> {
    /// `[feature_dim]` train-split mean of each grid channel (a constant).
    pub feature_mean: Param<Tensor<B, 1>>,
    /// `[feature_dim]` 1 / train-split std of each channel (a constant).
    pub feature_inv_std: Param<Tensor<B, 1>>,
    /// `feature_dim -> d_model`, followed by ReLU.
    pub region_projection: Linear<B>,
    pub encoder: Vec<EncoderLayer<B>>,
    pub encoder_norm: LayerNorm<B>,
    /// `[vocab_size, d_model]`
    pub embedding: Embedding<B>,
    pub decoder: Vec<DecoderLayer<B>>,
    pub decoder_norm: LayerNorm<B>,
    /// `d_model -> vocab_size`
    pub output: Linear<B>,
    pub dropout: f64,
}

/// What decoding carries from one step to the next: every decoder layer's keys and values of
/// the regions (computed once) and of the words so far (one more each step), row `i` of each
/// being partial caption `i`.
#[derive(Debug, Clone)]
pub struct TransformerState<B: Backend> {
    /// Per decoder layer: the cross-attention's keys and values of the encoded regions.
    pub regions: Vec<KeyValues<B>>,
    /// Per decoder layer: the self-attention's keys and values of the words so far; empty
    /// before the first step.
    pub words: Vec<KeyValues<B>>,
    /// `[MAX_POSITIONS, d_model]` the words' sinusoidal positions.
    positions: Tensor<B, 2>,
    /// Words decoded so far.
    pub step: usize,
    /// `[rows, regions]` the last step's cross-attention of the last decoder layer, averaged
    /// over heads.
    pub alpha: Option<Tensor<B, 2>>,
}

impl<B: Backend> DecodeState<B> for TransformerState<B> {
    fn select(self, indices: Tensor<B, 1, Int>) -> Self {
        let select = |kv: Vec<KeyValues<B>>| kv.into_iter().map(|kv| kv.select(indices.clone()));
        Self {
            regions: select(self.regions).collect(),
            words: select(self.words).collect(),
            positions: self.positions,
            step: self.step,
            alpha: self.alpha.map(|a| a.select(0, indices.clone())),
        }
    }

    fn attention(&self) -> Option<Tensor<B, 2>> {
        self.alpha.clone()
    }
}

impl<B: Backend> Architected<B> for TransformerModel<B> {
    type Config = TransformerConfig;

    fn config(&self) -> TransformerConfig {
        let [vocab_size, d_model] = self.embedding.weight.dims();
        let (heads, feed_forward) = match self.decoder.first() {
            Some(layer) => (
                layer.self_attention.n_heads,
                layer.feed_forward.linear_inner.weight.dims()[1],
            ),
            None => (0, 0),
        };
        TransformerConfig {
            vocab_size,
            feature_dim: self.feature_mean.dims()[0],
            d_model,
            heads,
            feed_forward,
            encoder_layers: self.encoder.len(),
            decoder_layers: self.decoder.len(),
            dropout: self.dropout,
        }
    }

    fn feature_stats(&self) -> FeatureStats {
        FeatureStats::from_constants(&self.feature_mean, &self.feature_inv_std)
    }

    fn check_shapes(&self, config: &TransformerConfig) -> Result<(), ShapeMismatch> {
        let (f, d, ff, v) = (
            config.feature_dim,
            config.d_model,
            config.feed_forward,
            config.vocab_size,
        );
        let dims = |l: &Linear<B>| l.weight.dims().to_vec();
        let mut checks: Vec<(String, Vec<usize>, Vec<usize>)> = vec![
            (
                "feature_mean".into(),
                vec![f],
                self.feature_mean.dims().to_vec(),
            ),
            (
                "feature_inv_std".into(),
                vec![f],
                self.feature_inv_std.dims().to_vec(),
            ),
            (
                "region_projection.weight".into(),
                vec![f, d],
                dims(&self.region_projection),
            ),
            (
                "encoder layers".into(),
                vec![config.encoder_layers],
                vec![self.encoder.len()],
            ),
            (
                "decoder layers".into(),
                vec![config.decoder_layers],
                vec![self.decoder.len()],
            ),
            (
                "embedding.weight".into(),
                vec![v, d],
                self.embedding.weight.dims().to_vec(),
            ),
            ("output.weight".into(), vec![d, v], dims(&self.output)),
        ];
        let attention = |name: String, a: &MultiHeadAttention<B>| {
            vec![
                (format!("{name}.query.weight"), vec![d, d], dims(&a.query)),
                (format!("{name}.key.weight"), vec![d, d], dims(&a.key)),
                (format!("{name}.value.weight"), vec![d, d], dims(&a.value)),
                (format!("{name}.output.weight"), vec![d, d], dims(&a.output)),
                (
                    format!("{name}.n_heads"),
                    vec![config.heads],
                    vec![a.n_heads],
                ),
            ]
        };
        let block = |name: String, b: &PositionWiseFeedForward<B>| {
            vec![
                (
                    format!("{name}.linear_inner.weight"),
                    vec![d, ff],
                    dims(&b.linear_inner),
                ),
                (
                    format!("{name}.linear_outer.weight"),
                    vec![ff, d],
                    dims(&b.linear_outer),
                ),
            ]
        };
        for (i, layer) in self.encoder.iter().enumerate() {
            checks.extend(attention(
                format!("encoder.{i}.attention"),
                &layer.attention,
            ));
            checks.extend(block(
                format!("encoder.{i}.feed_forward"),
                &layer.feed_forward,
            ));
        }
        for (i, layer) in self.decoder.iter().enumerate() {
            checks.extend(attention(
                format!("decoder.{i}.self_attention"),
                &layer.self_attention,
            ));
            checks.extend(attention(
                format!("decoder.{i}.cross_attention"),
                &layer.cross_attention,
            ));
            checks.extend(block(
                format!("decoder.{i}.feed_forward"),
                &layer.feed_forward,
            ));
        }
        match checks
            .into_iter()
            .find(|(_, expected, found)| expected != found)
        {
            Some(mismatch) => Err(mismatch),
            None => Ok(()),
        }
    }
}

impl<B: Backend> TransformerModel<B> {
    fn d_model(&self) -> usize {
        self.embedding.weight.dims()[1]
    }

    /// The encoded regions `[batch, regions, d_model]` of a raw grid `[batch, regions,
    /// feature_dim]` (a square one).
    pub fn encode(
        &self,
        grid: Tensor<B, 3>,
        mut rng: Option<&mut (dyn RngCore + '_)>,
    ) -> Tensor<B, 3> {
        let [_, regions, _] = grid.dims();
        let grid = kernels::standardise::standardise(
            grid,
            self.feature_mean.val(),
            self.feature_inv_std.val(),
        );
        let projected = relu(project(&self.region_projection, grid));
        let positions = region_positions::<B>(regions, self.d_model(), &projected.device());
        let mut x = dropout(projected, self.dropout, rng.as_deref_mut()) + positions.unsqueeze();
        for layer in &self.encoder {
            x = layer.forward(x, self.dropout, rng.as_deref_mut());
        }
        self.encoder_norm.forward(x)
    }

    /// The decoder's input: `tokens` (`[batch, steps]`) embedded, scaled by `sqrt(d_model)`,
    /// with the positions `first..first + steps` of `positions` added.
    fn embed(
        &self,
        tokens: Tensor<B, 2, Int>,
        positions: Tensor<B, 2>,
        first: usize,
        rng: Option<&mut (dyn RngCore + '_)>,
    ) -> Tensor<B, 3> {
        let steps = tokens.dims()[1];
        let scale = (self.d_model() as f64).sqrt();
        let words = self.embedding.forward(tokens) * scale;
        let positions = positions.narrow(0, first, steps).unsqueeze::<3>();
        dropout(words + positions, self.dropout, rng)
    }

    /// Teacher-forced final hidden states `[batch, steps, d_model]` of `inputs` (`[steps,
    /// batch]`, time-major as [`TeacherBatch`] holds them) over the encoded `memory`, and the
    /// last decoder layer's cross-attention `[batch, steps, regions]` averaged over heads.
    pub fn decode(
        &self,
        memory: Tensor<B, 3>,
        inputs: Tensor<B, 2, Int>,
        mut rng: Option<&mut (dyn RngCore + '_)>,
    ) -> (Tensor<B, 3>, Tensor<B, 3>) {
        let [steps, _] = inputs.dims();
        let device = memory.device();
        let positions = generate_sinusoids(steps, self.d_model(), MAX_TIMESCALE, &device);
        let mut x = self.embed(inputs.transpose(), positions, 0, rng.as_deref_mut());
        let mask = causal_mask::<B>(steps, &device);
        let mut cross = None;
        for layer in &self.decoder {
            let regions = key_values(&layer.cross_attention, memory.clone());
            let pass = layer.forward(
                x,
                None,
                Some(mask.clone()),
                &regions,
                self.dropout,
                rng.as_deref_mut(),
            );
            x = pass.output;
            cross = Some(pass.cross);
        }
        let cross = cross.expect("a transformer has decoder layers");
        (self.decoder_norm.forward(x), mean_over_heads(cross))
    }

    /// The final hidden states of every input position, `[steps * batch, d_model]`
    /// time-major (the row order of [`TeacherBatch`]).
    pub fn hidden_rows(
        &self,
        grid: Tensor<B, 3>,
        inputs: Tensor<B, 2, Int>,
        mut rng: Option<&mut (dyn RngCore + '_)>,
    ) -> Tensor<B, 2> {
        let [steps, batch] = inputs.dims();
        let memory = self.encode(grid, rng.as_deref_mut());
        let (hidden, _) = self.decode(memory, inputs, rng);
        hidden
            .swap_dims(0, 1)
            .reshape([steps * batch, self.d_model()])
    }

    /// Teacher-forced logits `[batch, steps, vocab]` of every input position, without
    /// dropout: what the PyTorch reference and the cache test compare with.
    pub fn logits(&self, grid: Tensor<B, 3>, inputs: Tensor<B, 2, Int>) -> Tensor<B, 3> {
        let memory = self.encode(grid, None);
        let (hidden, _) = self.decode(memory, inputs, None);
        project(&self.output, hidden)
    }
}

/// `[rows, heads, length, regions]` -> `[rows, length, regions]`.
fn mean_over_heads<B: Backend>(weights: Tensor<B, 4>) -> Tensor<B, 3> {
    let [rows, _, length, regions] = weights.dims();
    weights.mean_dim(1).reshape([rows, length, regions])
}

/// `[regions, d_model]`: region `r` of a square grid, at row `r / side` and column
/// `r % side`, gets the row's sinusoids in its first `d_model / 2` channels and the column's
/// in the rest.
pub fn region_positions<B: Backend>(
    regions: usize,
    d_model: usize,
    device: &B::Device,
) -> Tensor<B, 2> {
    let side = regions.isqrt();
    assert_eq!(
        side * side,
        regions,
        "the transformer reads a square grid of regions, not {regions}"
    );
    let half = d_model / 2;
    let line = generate_sinusoids::<B>(side, half, MAX_TIMESCALE, device);
    let rows = line
        .clone()
        .unsqueeze_dim::<3>(1)
        .repeat_dim(1, side)
        .reshape([regions, half]);
    let columns = line
        .unsqueeze_dim::<3>(0)
        .repeat_dim(0, side)
        .reshape([regions, half]);
    Tensor::cat(vec![rows, columns], 1)
}

/// The grid of `images`, which the transformer cannot do without.
fn grid_of<B: Backend>(images: &Images<B>) -> Tensor<B, 3> {
    images
        .grid
        .clone()
        .expect("the transformer reads grid features: the caller must load grid/")
}

impl<B: Backend> CaptionModel<B> for TransformerModel<B> {
    type State = TransformerState<B>;

    fn vocab_size(&self) -> usize {
        self.embedding.weight.dims()[0]
    }

    fn start(&self, images: &Images<B>) -> TransformerState<B> {
        let memory = self.encode(grid_of(images), None);
        let regions = self
            .decoder
            .iter()
            .map(|layer| key_values(&layer.cross_attention, memory.clone()))
            .collect();
        TransformerState {
            regions,
            words: Vec::new(),
            positions: generate_sinusoids(
                MAX_POSITIONS,
                self.d_model(),
                MAX_TIMESCALE,
                &memory.device(),
            ),
            step: 0,
            alpha: None,
        }
    }

    /// One word for every row: attention over the cached words and regions, so a step costs
    /// the words so far, not a rerun of the prefix.
    fn step(
        &self,
        tokens: Tensor<B, 1, Int>,
        state: TransformerState<B>,
    ) -> (Tensor<B, 2>, TransformerState<B>) {
        let [rows] = tokens.dims();
        let mut x = self.embed(
            tokens.reshape([rows, 1]),
            state.positions.clone(),
            state.step,
            None,
        );
        let mut past = state.words.into_iter();
        let mut words = Vec::with_capacity(self.decoder.len());
        let mut cross = None;
        for (layer, regions) in self.decoder.iter().zip(&state.regions) {
            let pass = layer.forward(x, past.next(), None, regions, 0.0, None);
            x = pass.output;
            words.push(pass.words);
            cross = Some(pass.cross);
        }
        let hidden = self.decoder_norm.forward(x).reshape([rows, self.d_model()]);
        let logits = self.output.forward(hidden);
        let alpha = cross.map(|c| {
            let regions = c.dims()[3];
            mean_over_heads(c).reshape([rows, regions])
        });
        (
            log_softmax(logits, 1),
            TransformerState {
                regions: state.regions,
                words,
                positions: state.positions,
                step: state.step + 1,
                alpha,
            },
        )
    }

    fn loss(&self, images: &Images<B>, batch: &TeacherBatch<B>) -> Tensor<B, 1> {
        let hidden = self.hidden_rows(grid_of(images), batch.inputs.clone(), None);
        let rows = match &batch.rows {
            Some(index) => hidden.select(0, index.clone()),
            None => hidden,
        };
        kernels::cross_entropy::loss(crate::output::logits(&self.output, None, rows, None, batch))
    }
}
