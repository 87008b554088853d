//! [`Captioner`]: the one type the trainer, the search, the evaluator and `caption` hold,
//! whichever model `model.decoder` chose.
//!
//! It is the enum of the implementations of [`CaptionModel`] and [`Trainable`], a burn module
//! like them, so one checkpoint format, one optimizer and one training loop serve every model;
//! [`CaptionerConfig`] is its architecture, stored in every checkpoint.

use burn::module::Module;
use burn::optim::GradientsParams;
use burn::tensor::backend::{AutodiffBackend, Backend};
use burn::tensor::{Int, Tensor};
use contracts::config::{DecoderKind, ModelConfig};
use contracts::tables::FEATURE_DIM;
use rand::RngCore;
use serde::{Deserialize, Serialize};

use crate::attention::{AttentionConfig, AttentionModel, AttentionState};
use crate::merge::{MergeConfig, MergeModel, MergeState};
use crate::model::{CaptionModel, DecodeState, Images, Trainable};
use crate::{DecoderError, FeatureStats, TeacherBatch};

/// Every caption model, as one burn module.
// A process holds one or two of these, so the variants' size difference costs nothing; a Box
// would take the variant out of burn's `Module` derive.
#[allow(clippy::large_enum_variant)]
#[derive(Module, Debug)]
pub enum Captioner<B: Backend> {
    /// The seed's CNN-RNN merge model.
    Merge(MergeModel<B>),
    /// Soft attention over the grid (Xu et al. 2015).
    Attention(AttentionModel<B>),
}

/// The decoding state of a [`Captioner`].
#[derive(Debug, Clone)]
pub enum CaptionerState<B: Backend> {
    Merge(MergeState<B>),
    Attention(AttentionState<B>),
}

impl<B: Backend> DecodeState<B> for CaptionerState<B> {
    fn select(self, indices: Tensor<B, 1, Int>) -> Self {
        match self {
            Self::Merge(state) => Self::Merge(state.select(indices)),
            Self::Attention(state) => Self::Attention(state.select(indices)),
        }
    }

    fn attention(&self) -> Option<Tensor<B, 2>> {
        match self {
            Self::Merge(state) => state.attention(),
            Self::Attention(state) => state.attention(),
        }
    }
}

impl<B: Backend> CaptionModel<B> for Captioner<B> {
    type State = CaptionerState<B>;

    fn vocab_size(&self) -> usize {
        match self {
            Self::Merge(model) => model.vocab_size(),
            Self::Attention(model) => model.vocab_size(),
        }
    }

    fn start(&self, images: &Images<B>) -> Self::State {
        match self {
            Self::Merge(model) => CaptionerState::Merge(model.start(images)),
            Self::Attention(model) => CaptionerState::Attention(model.start(images)),
        }
    }

    fn step(&self, tokens: Tensor<B, 1, Int>, state: Self::State) -> (Tensor<B, 2>, Self::State) {
        match (self, state) {
            (Self::Merge(model), CaptionerState::Merge(state)) => {
                let (log_probs, state) = model.step(tokens, state);
                (log_probs, CaptionerState::Merge(state))
            }
            (Self::Attention(model), CaptionerState::Attention(state)) => {
                let (log_probs, state) = model.step(tokens, state);
                (log_probs, CaptionerState::Attention(state))
            }
            _ => unreachable!("a decoding state comes from its own model's start"),
        }
    }

    fn loss(&self, images: &Images<B>, batch: &TeacherBatch<B>) -> Tensor<B, 1> {
        match self {
            Self::Merge(model) => model.loss(images, batch),
            Self::Attention(model) => model.loss(images, batch),
        }
    }
}

impl<B: AutodiffBackend> Trainable<B> for Captioner<B> {
    fn loss_and_grads(
        &self,
        images: &Images<B>,
        batch: &TeacherBatch<B>,
        rng: Option<&mut (dyn RngCore + '_)>,
    ) -> (Tensor<B::InnerBackend, 1>, GradientsParams) {
        match self {
            Self::Merge(model) => model.loss_and_grads(images, batch, rng),
            Self::Attention(model) => model.loss_and_grads(images, batch, rng),
        }
    }
}

impl<B: Backend> Captioner<B> {
    /// The architecture, read from the weights.
    pub fn config(&self) -> CaptionerConfig {
        match self {
            Self::Merge(model) => CaptionerConfig::Merge(model.config()),
            Self::Attention(model) => CaptionerConfig::Attention(model.config()),
        }
    }

    /// The standardisation statistics the model holds.
    pub fn feature_stats(&self) -> FeatureStats {
        match self {
            Self::Merge(model) => model.feature_stats(),
            Self::Attention(model) => model.feature_stats(),
        }
    }

    /// Every tensor's shape as `config` needs it; the first mismatch as `(name, expected,
    /// found)`.
    pub fn check_shapes(
        &self,
        config: &CaptionerConfig,
    ) -> Result<(), (String, Vec<usize>, Vec<usize>)> {
        match (self, config) {
            (Self::Merge(model), CaptionerConfig::Merge(config)) => model.check_shapes(config),
            (Self::Attention(model), CaptionerConfig::Attention(config)) => {
                model.check_shapes(config)
            }
            (model, config) => Err((
                format!(
                    "decoder ({} in the weights, {} in the config)",
                    model.config().kind(),
                    config.kind()
                ),
                Vec::new(),
                Vec::new(),
            )),
        }
    }
}

/// The architecture of a [`Captioner`]: everything needed to rebuild it before loading its
/// weights. Stored in checkpoints with the model's kind (`"decoder": "merge"`).
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(tag = "decoder", rename_all = "lowercase")]
pub enum CaptionerConfig {
    Merge(MergeConfig),
    Attention(AttentionConfig),
}

/// For logs: `merge decoder: embed 256, hidden 512, vocabulary 60, merge true, dropout 0.5`.
impl std::fmt::Display for CaptionerConfig {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            Self::Merge(c) => write!(
                f,
                "{} decoder: embed {}, hidden {}, vocabulary {}, merge {}, dropout {}",
                self.kind(),
                c.embed_dim,
                c.hidden_dim,
                c.vocab_size,
                c.merge,
                c.dropout
            ),
            Self::Attention(c) => write!(
                f,
                "{} decoder: embed {}, hidden {}, attention {}, vocabulary {}, dropout {}, attention_reg {}",
                self.kind(),
                c.embed_dim,
                c.hidden_dim,
                c.attention_dim,
                c.vocab_size,
                c.dropout,
                c.attention_reg
            ),
        }
    }
}

impl CaptionerConfig {
    /// The architecture `[model]` and the chosen model's table ask for, over a vocabulary of
    /// `vocab_size` tokens.
    pub fn from_pipeline(model: &ModelConfig, vocab_size: usize) -> Self {
        match model.decoder {
            DecoderKind::Merge => Self::Merge(MergeConfig {
                vocab_size,
                feature_dim: FEATURE_DIM,
                embed_dim: model.embed_dim,
                hidden_dim: model.hidden_dim,
                dropout: model.dropout,
                merge: model.merge.join_image,
            }),
            DecoderKind::Attention => Self::Attention(AttentionConfig {
                vocab_size,
                feature_dim: FEATURE_DIM,
                embed_dim: model.embed_dim,
                hidden_dim: model.hidden_dim,
                attention_dim: model.attention.dim,
                dropout: model.dropout,
                attention_reg: model.attention.doubly_stochastic,
            }),
        }
    }

    pub fn kind(&self) -> DecoderKind {
        match self {
            Self::Merge(_) => DecoderKind::Merge,
            Self::Attention(_) => DecoderKind::Attention,
        }
    }

    pub fn vocab_size(&self) -> usize {
        match self {
            Self::Merge(config) => config.vocab_size,
            Self::Attention(config) => config.vocab_size,
        }
    }

    pub fn validate(&self) -> Result<(), DecoderError> {
        match self {
            Self::Merge(config) => config.validate(),
            Self::Attention(config) => config.validate(),
        }
    }

    /// A freshly initialised model, every weight drawn from `seed`, standardising features
    /// with `stats`.
    pub fn init<B: Backend>(
        &self,
        stats: &FeatureStats,
        seed: u64,
        device: &B::Device,
    ) -> Result<Captioner<B>, DecoderError> {
        match self {
            Self::Merge(config) => Ok(Captioner::Merge(config.init(stats, seed, device)?)),
            Self::Attention(config) => Ok(Captioner::Attention(config.init(stats, seed, device)?)),
        }
    }

    /// The length of the image vectors the model reads (pooled, or one grid region).
    pub fn feature_dim(&self) -> usize {
        match self {
            Self::Merge(config) => config.feature_dim,
            Self::Attention(config) => config.feature_dim,
        }
    }
}

#[cfg(test)]
mod tests {
    use contracts::config::{AttentionSettings, MergeSettings};

    use super::*;

    /// Checkpoints store the architecture as these JSON objects, written before the model's
    /// keys moved into `[model.merge]` and `[model.attention]`: they must still load, and the
    /// tables must build the same architecture.
    #[test]
    fn checkpoints_written_before_the_model_tables_load() {
        let merge: CaptionerConfig = serde_json::from_str(
            r#"{"decoder":"merge","vocab_size":60,"feature_dim":2048,"embed_dim":256,"hidden_dim":512,"dropout":0.5,"merge":false}"#,
        )
        .unwrap();
        let model = ModelConfig {
            merge: MergeSettings { join_image: false },
            ..ModelConfig::default()
        };
        assert_eq!(merge, CaptionerConfig::from_pipeline(&model, 60));
        let attention: CaptionerConfig = serde_json::from_str(
            r#"{"decoder":"attention","vocab_size":60,"feature_dim":2048,"embed_dim":256,"hidden_dim":512,"attention_dim":128,"dropout":0.5,"attention_reg":0.25}"#,
        )
        .unwrap();
        let model = ModelConfig {
            decoder: DecoderKind::Attention,
            attention: AttentionSettings {
                dim: 128,
                doubly_stochastic: 0.25,
            },
            ..ModelConfig::default()
        };
        assert_eq!(attention, CaptionerConfig::from_pipeline(&model, 60));
    }

    /// Every kind the config names builds its own model, which a checkpoint tags with the
    /// same name.
    #[test]
    fn every_decoder_kind_is_registered_under_its_config_name() {
        for &kind in DecoderKind::ALL {
            let model = ModelConfig {
                decoder: kind,
                ..ModelConfig::default()
            };
            let config = CaptionerConfig::from_pipeline(&model, 60);
            assert_eq!(config.kind(), kind);
            let json = serde_json::to_value(&config).unwrap();
            assert_eq!(json["decoder"], kind.name());
        }
    }
}
