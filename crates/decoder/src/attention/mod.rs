//! Xu et al. 2015's soft-attention decoder ("Show, Attend and Tell") over the grid of
//! ResNet50's last feature map (7x7 regions of 2048 channels for a 224 crop). Its training loss
//! and gradients are in [`training`].
//!
//! ```text
//! grid [B, R, F] -> standardise = a_1..a_R; mean over regions -> h0 = tanh(Linear), c0 = tanh(Linear)
//! step t (input word y):
//!   e_r = w . tanh(W_a a_r + U_a h) + b          additive attention, A = attention_dim
//!   alpha = softmax_r(e);  context = sum_r alpha_r a_r
//!   beta = sigmoid(W_b h);  z = beta * context    the gate on the context
//!   h, c = LSTM([emb(y) ; z], h, c)
//!   logits = Linear(dropout(h))                   the next word
//! ```
//!
//! The output layer is the simple one (`Linear(dropout(h))`), not the paper's deep output
//! `L_o(E y + L_h h + L_z z)`: it is what the widely used PyTorch implementation trains, it has
//! 2048 x V fewer weights to fit on 6,000 training images, and it keeps the vocabulary layer
//! the same as the merge model's, so both share the fused cross-entropy kernel.
//!
//! Training adds the doubly stochastic regularisation `attention_reg * mean over captions and
//! regions of (1 - sum_t alpha_tr)^2`: every region is encouraged to be looked at about once
//! over the caption. The mean over regions (the paper sums) keeps `attention_reg = 1` on the
//! scale the popular implementation uses.

use burn::module::{Module, Param};
use burn::nn::{Embedding, Linear};
use burn::tensor::activation::{log_softmax, softmax};
use burn::tensor::backend::Backend;
use burn::tensor::{Int, Tensor};
use serde::{Deserialize, Serialize};

mod recurrence;
pub mod training;

/// The names the registry ([`crate::captioner`]) knows the model by.
pub use self::{AttentionConfig as Config, AttentionModel as Model, AttentionState as State};

use contracts::config::ModelConfig;
use contracts::tables::FEATURE_DIM;
use kernels::attention::GatedContext;
use kernels::lstm::{Lstm, LstmState};

use crate::captioner::{Architected, Architecture, ShapeMismatch};
use crate::init::Initializer;
use crate::model::{CaptionModel, DecodeState, Images};
use crate::{DecoderError, FeatureStats, TeacherBatch};

/// The architecture: everything needed to rebuild the network before loading its weights.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct AttentionConfig {
    /// Vocabulary size, special tokens included.
    pub vocab_size: usize,
    /// Channels of a grid region (2048 for ResNet50).
    pub feature_dim: usize,
    /// Word embedding size.
    pub embed_dim: usize,
    /// LSTM hidden size.
    pub hidden_dim: usize,
    /// Size of the additive attention's projections.
    pub attention_dim: usize,
    /// Dropout before the output layer.
    pub dropout: f64,
    /// Weight of the doubly stochastic regularisation in the training loss.
    pub attention_reg: f64,
}

/// For logs, after `attention decoder: `.
impl std::fmt::Display for AttentionConfig {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(
            f,
            "embed {}, hidden {}, attention {}, vocabulary {}, dropout {}, attention_reg {}",
            self.embed_dim,
            self.hidden_dim,
            self.attention_dim,
            self.vocab_size,
            self.dropout,
            self.attention_reg
        )
    }
}

impl Architecture for AttentionConfig {
    type Model<B: Backend> = AttentionModel<B>;

    fn from_pipeline(model: &ModelConfig, vocab_size: usize) -> Self {
        Self {
            vocab_size,
            feature_dim: FEATURE_DIM,
            embed_dim: model.embed_dim,
            hidden_dim: model.hidden_dim,
            attention_dim: model.attention.dim,
            dropout: model.dropout,
            attention_reg: model.attention.doubly_stochastic,
        }
    }

    fn vocab_size(&self) -> usize {
        self.vocab_size
    }

    fn feature_dim(&self) -> usize {
        self.feature_dim
    }

    fn attention_maps(&self) -> Option<&'static str> {
        Some("its soft attention over the grid")
    }

    fn validate(&self) -> Result<(), DecoderError> {
        crate::init::check_sizes(
            self.vocab_size,
            &[
                ("feature_dim", self.feature_dim),
                ("embed_dim", self.embed_dim),
                ("hidden_dim", self.hidden_dim),
                ("attention_dim", self.attention_dim),
            ],
            self.dropout,
        )?;
        if self.attention_reg.is_nan() || self.attention_reg < 0.0 {
            return Err(DecoderError::Config(format!(
                "attention_reg {} is negative",
                self.attention_reg
            )));
        }
        Ok(())
    }

    /// A freshly initialised model, every weight drawn from `seed` (PyTorch's default
    /// initialisation, as the merge model), standardising grid channels with `stats`.
    fn init<B: Backend>(
        &self,
        stats: &FeatureStats,
        seed: u64,
        device: &B::Device,
    ) -> Result<AttentionModel<B>, DecoderError> {
        self.validate()?;
        crate::init::check_stats(stats, self.feature_dim, ("grid", "channels"))?;
        let mut init = Initializer::<B>::new(seed, device);
        let (f, e, h, a, v) = (
            self.feature_dim,
            self.embed_dim,
            self.hidden_dim,
            self.attention_dim,
            self.vocab_size,
        );
        let init_hidden = init.linear(f, h, true);
        let init_cell = init.linear(f, h, true);
        let grid_attention = init.linear(f, a, true);
        let state_attention = init.linear(h, a, true);
        let score = init.linear(a, 1, true);
        let gate = init.linear(h, f, true);
        let embedding = Embedding {
            weight: init.normal([v, e]),
        };
        let lstm = Lstm {
            input_weight: init.uniform([e, 4 * h], h),
            hidden_weight: init.uniform([h, 4 * h], h),
            bias: init.uniform([4 * h], h),
        };
        let context_weight = init.uniform([f, 4 * h], h);
        let output = init.linear(h, v, true);
        let (feature_mean, feature_inv_std) = init.standardisation(stats);
        Ok(AttentionModel {
            feature_mean,
            feature_inv_std,
            init_hidden,
            init_cell,
            grid_attention,
            state_attention,
            score,
            gate,
            embedding,
            lstm,
            context_weight,
            output,
            dropout: self.dropout,
            attention_reg: self.attention_reg,
        })
    }
}

/// The soft-attention model. Build it with [`AttentionConfig::init`] or load it with
/// [`crate::load_captioner`].
#[derive(Module, Debug)]
pub struct AttentionModel<B: Backend> {
    /// `[feature_dim]` train-split mean of each grid channel (a constant).
    pub feature_mean: Param<Tensor<B, 1>>,
    /// `[feature_dim]` 1 / train-split std of each channel (a constant).
    pub feature_inv_std: Param<Tensor<B, 1>>,
    /// `feature_dim -> hidden_dim`: h0 from the mean region, followed by tanh.
    pub init_hidden: Linear<B>,
    /// `feature_dim -> hidden_dim`: c0 likewise.
    pub init_cell: Linear<B>,
    /// `feature_dim -> attention_dim`: each region's side of the attention.
    pub grid_attention: Linear<B>,
    /// `hidden_dim -> attention_dim`: the state's side.
    pub state_attention: Linear<B>,
    /// `attention_dim -> 1`: a region's score.
    pub score: Linear<B>,
    /// `hidden_dim -> feature_dim`: the gate beta on the context.
    pub gate: Linear<B>,
    /// `[vocab_size, embed_dim]`
    pub embedding: Embedding<B>,
    /// The LSTM, its input weights those of the word embedding.
    pub lstm: Lstm<B>,
    /// `[feature_dim, 4 * hidden_dim]` the LSTM's input weights of the gated context. Kept
    /// apart from the word's (one `[embed + feature, 4 * hidden]` matrix in the paper): a slice
    /// of one matrix would cost a full-size gradient per step under autodiff.
    pub context_weight: Param<Tensor<B, 2>>,
    /// `hidden_dim -> vocab_size`
    pub output: Linear<B>,
    pub dropout: f64,
    pub attention_reg: f64,
}

/// A batch's grid as every step reads it.
#[derive(Debug, Clone)]
pub struct Regions<B: Backend> {
    /// `[batch, regions, feature_dim]` standardised.
    pub grid: Tensor<B, 3>,
    /// `[batch, regions, attention_dim]` the grid's side of the attention, computed once.
    pub projected: Tensor<B, 3>,
}

impl<B: Backend> Regions<B> {
    fn select(self, indices: Tensor<B, 1, Int>) -> Self {
        Self {
            grid: self.grid.select(0, indices.clone()),
            projected: self.projected.select(0, indices),
        }
    }
}

/// What decoding carries from one step to the next.
#[derive(Debug, Clone)]
pub struct AttentionState<B: Backend> {
    pub lstm: LstmState<B>,
    pub regions: Regions<B>,
    /// `[rows, regions]` the last step's attention weights.
    pub alpha: Option<Tensor<B, 2>>,
}

impl<B: Backend> DecodeState<B> for AttentionState<B> {
    fn select(self, indices: Tensor<B, 1, Int>) -> Self {
        Self {
            lstm: self.lstm.select(indices.clone()),
            alpha: self.alpha.map(|a| a.select(0, indices.clone())),
            regions: self.regions.select(indices),
        }
    }

    fn attention(&self) -> Option<Tensor<B, 2>> {
        self.alpha.clone()
    }
}

/// One step's attention for a state: every value its backward pass reads.
#[derive(Debug, Clone)]
pub(crate) struct Attended<B: Backend> {
    /// `[batch, regions, attention_dim]`: `tanh(W_a a_r + U_a h)`, the scores' input.
    pub layer: Tensor<B, 3>,
    /// `[batch, regions]`: the attention weights.
    pub alpha: Tensor<B, 2>,
    /// The context, the gate and the gated context (the LSTM's input beside the word).
    pub context: GatedContext<B>,
}

/// One step's outputs before the vocabulary layer.
pub(crate) struct Step<B: Backend> {
    pub lstm: LstmState<B>,
    /// `[batch, regions]`
    pub alpha: Tensor<B, 2>,
}

impl<B: Backend> Architected<B> for AttentionModel<B> {
    type Config = AttentionConfig;

    fn config(&self) -> AttentionConfig {
        let [vocab_size, embed_dim] = self.embedding.weight.dims();
        AttentionConfig {
            vocab_size,
            feature_dim: self.feature_mean.dims()[0],
            embed_dim,
            hidden_dim: self.lstm.hidden_dim(),
            attention_dim: self.score.weight.dims()[0],
            dropout: self.dropout,
            attention_reg: self.attention_reg,
        }
    }

    fn feature_stats(&self) -> FeatureStats {
        FeatureStats::from_constants(&self.feature_mean, &self.feature_inv_std)
    }

    fn check_shapes(&self, config: &AttentionConfig) -> Result<(), ShapeMismatch> {
        let (f, e, h, a, v) = (
            config.feature_dim,
            config.embed_dim,
            config.hidden_dim,
            config.attention_dim,
            config.vocab_size,
        );
        let dims = |l: &Linear<B>| l.weight.dims().to_vec();
        let checks: Vec<(&str, Vec<usize>, Vec<usize>)> = vec![
            ("feature_mean", vec![f], self.feature_mean.dims().to_vec()),
            (
                "feature_inv_std",
                vec![f],
                self.feature_inv_std.dims().to_vec(),
            ),
            ("init_hidden.weight", vec![f, h], dims(&self.init_hidden)),
            ("init_cell.weight", vec![f, h], dims(&self.init_cell)),
            (
                "grid_attention.weight",
                vec![f, a],
                dims(&self.grid_attention),
            ),
            (
                "state_attention.weight",
                vec![h, a],
                dims(&self.state_attention),
            ),
            ("score.weight", vec![a, 1], dims(&self.score)),
            ("gate.weight", vec![h, f], dims(&self.gate)),
            (
                "embedding.weight",
                vec![v, e],
                self.embedding.weight.dims().to_vec(),
            ),
            (
                "lstm.input_weight",
                vec![e, 4 * h],
                self.lstm.input_weight.dims().to_vec(),
            ),
            (
                "context_weight",
                vec![f, 4 * h],
                self.context_weight.dims().to_vec(),
            ),
            (
                "lstm.hidden_weight",
                vec![h, 4 * h],
                self.lstm.hidden_weight.dims().to_vec(),
            ),
            ("lstm.bias", vec![4 * h], self.lstm.bias.dims().to_vec()),
            ("output.weight", vec![h, v], dims(&self.output)),
        ];
        match checks
            .into_iter()
            .find(|(_, expected, found)| expected != found)
        {
            Some((name, expected, found)) => Err((name.to_string(), expected, found)),
            None => Ok(()),
        }
    }
}

impl<B: Backend> AttentionModel<B> {
    fn embed_dim(&self) -> usize {
        self.embedding.weight.dims()[1]
    }

    /// The standardised grid and the initial state: `[batch, regions, feature_dim]` raw.
    pub(crate) fn begin(&self, grid: Tensor<B, 3>) -> (Regions<B>, LstmState<B>) {
        let grid = self.standardise(grid);
        let state = self.initial_state(mean_region(&grid));
        let projected = self.grid_attention.forward(grid.clone());
        (Regions { grid, projected }, state)
    }

    /// A raw grid `[batch, regions, feature_dim]` standardised with the train statistics.
    pub(crate) fn standardise(&self, grid: Tensor<B, 3>) -> Tensor<B, 3> {
        kernels::standardise::standardise(grid, self.feature_mean.val(), self.feature_inv_std.val())
    }

    /// h0 and c0 from the mean region `[batch, feature_dim]`.
    pub(crate) fn initial_state(&self, mean: Tensor<B, 2>) -> LstmState<B> {
        LstmState {
            hidden: self.init_hidden.forward(mean.clone()).tanh(),
            cell: self.init_cell.forward(mean).tanh(),
        }
    }

    /// `[attention_dim]`: the score layer's weights as one vector.
    pub(crate) fn score_weight(&self) -> Tensor<B, 1> {
        let [dim, _] = self.score.weight.dims();
        self.score.weight.val().reshape([dim])
    }

    /// `[1]`: the score layer's bias (zero if it has none).
    fn score_bias(&self) -> Tensor<B, 1> {
        match &self.score.bias {
            Some(bias) => bias.val(),
            None => Tensor::zeros([1], &self.score.weight.device()),
        }
    }

    /// The attention and the gate for state `hidden` (`[batch, hidden]`).
    pub(crate) fn attend(&self, regions: &Regions<B>, hidden: Tensor<B, 2>) -> Attended<B> {
        let state = self.state_attention.forward(hidden.clone());
        self.attend_projected(regions, state, self.gate.forward(hidden))
    }

    /// [`Self::attend`] from the state's two projections, biases included: `state`
    /// (`[batch, attention_dim]`, the attention's side) and `gate` (`[batch, feature_dim]`,
    /// before the sigmoid).
    pub(crate) fn attend_projected(
        &self,
        regions: &Regions<B>,
        state: Tensor<B, 2>,
        gate: Tensor<B, 2>,
    ) -> Attended<B> {
        let (layer, scores) = kernels::attention::scores(
            regions.projected.clone(),
            state,
            self.score_weight(),
            self.score_bias(),
        );
        let alpha = softmax(scores, 1);
        let context = kernels::attention::gated_context(alpha.clone(), &regions.grid, gate);
        Attended {
            layer,
            alpha,
            context,
        }
    }

    /// One step from word-side LSTM pre-activations `[batch, 4 * hidden]` (see
    /// [`Self::word_part`]).
    pub(crate) fn step_from(
        &self,
        regions: &Regions<B>,
        word_part: Tensor<B, 2>,
        state: LstmState<B>,
    ) -> Step<B> {
        let attended = self.attend(regions, state.hidden.clone());
        let lstm = self.lstm.step_projected(
            word_part + attended.context.gated.matmul(self.context_weight.val()),
            Some(state),
        );
        Step {
            lstm,
            alpha: attended.alpha,
        }
    }

    /// Word-side LSTM pre-activations of `tokens` (`[steps, batch]`), bias included:
    /// `[steps * batch, 4 * hidden]`.
    pub(crate) fn word_part(&self, tokens: Tensor<B, 2, Int>) -> Tensor<B, 2> {
        let [steps, batch] = tokens.dims();
        let words = self
            .embedding
            .forward(tokens)
            .reshape([steps * batch, self.embed_dim()]);
        self.lstm.project_input(words)
    }

    /// Teacher-forced hidden states of every input position, `[steps * batch, hidden]`
    /// time-major, and the attention weights `[steps, batch, regions]`.
    pub(crate) fn run(
        &self,
        grid: Tensor<B, 3>,
        inputs: Tensor<B, 2, Int>,
    ) -> (Tensor<B, 2>, Tensor<B, 3>) {
        let [steps, batch] = inputs.dims();
        let (regions, mut state) = self.begin(grid);
        let words = self.word_part(inputs);
        let mut hidden = Vec::with_capacity(steps);
        let mut alphas = Vec::with_capacity(steps);
        for t in 0..steps {
            let step = self.step_from(&regions, words.clone().narrow(0, t * batch, batch), state);
            hidden.push(step.lstm.hidden.clone());
            alphas.push(step.alpha.unsqueeze_dim::<3>(0));
            state = step.lstm;
        }
        (Tensor::cat(hidden, 0), Tensor::cat(alphas, 0))
    }
}

/// `[batch, feature_dim]`: the mean over a grid's regions.
pub(crate) fn mean_region<B: Backend>(grid: &Tensor<B, 3>) -> Tensor<B, 2> {
    let [batch, _, channels] = grid.dims();
    grid.clone().mean_dim(1).reshape([batch, channels])
}

/// The grid of `images`, which an attention model cannot do without.
fn grid_of<B: Backend>(images: &Images<B>) -> Tensor<B, 3> {
    images
        .grid
        .clone()
        .expect("the attention model reads grid features: the caller must load grid/")
}

impl<B: Backend> CaptionModel<B> for AttentionModel<B> {
    type State = AttentionState<B>;

    fn vocab_size(&self) -> usize {
        self.embedding.weight.dims()[0]
    }

    fn start(&self, images: &Images<B>) -> AttentionState<B> {
        let (regions, lstm) = self.begin(grid_of(images));
        AttentionState {
            lstm,
            regions,
            alpha: None,
        }
    }

    fn step(
        &self,
        tokens: Tensor<B, 1, Int>,
        state: AttentionState<B>,
    ) -> (Tensor<B, 2>, AttentionState<B>) {
        let [batch] = tokens.dims();
        let words = self.word_part(tokens.reshape([1, batch]));
        let step = self.step_from(&state.regions, words, state.lstm);
        let logits = self.output.forward(step.lstm.hidden.clone());
        (
            log_softmax(logits, 1),
            AttentionState {
                lstm: step.lstm,
                regions: state.regions,
                alpha: Some(step.alpha),
            },
        )
    }

    /// The cross-entropy part only, as the merge model's, so val losses compare.
    fn loss(&self, images: &Images<B>, batch: &TeacherBatch<B>) -> Tensor<B, 1> {
        let (hidden, _) = self.run(grid_of(images), batch.inputs.clone());
        let rows = match &batch.rows {
            Some(index) => hidden.select(0, index.clone()),
            None => hidden,
        };
        kernels::cross_entropy::loss(crate::output::logits(&self.output, None, rows, None, batch))
    }
}
