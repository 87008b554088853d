//! [`Captioner`]: the one type the trainer, the search, the evaluator and `caption` hold,
//! whichever model `model.decoder` chose, and the registry of the models.
//!
//! [`decoders!`] lists every model once, as `Kind => module;`: the module exports its
//! architecture as `Config` (an [`Architecture`]), its network as `Model` (a [`CaptionModel`],
//! [`Trainable`] and [`Architected`] burn module) and its decoding state as `State`. From that
//! list come [`Captioner`] (the enum of the models, a burn module like them, so one checkpoint
//! format, one optimizer and one training loop serve every model), [`CaptionerState`] and
//! [`CaptionerConfig`] (the architecture stored in every checkpoint, tagged with the model's
//! kind: `"decoder": "merge"`), with every delegation written once, in the macro.

// A process holds one or two `Captioner`s, so the variants' size difference costs nothing; a
// Box would take the variant out of burn's `Module` derive, whose record enum needs the allow
// as well, hence the module-wide one.
#![allow(clippy::large_enum_variant)]

use burn::module::Module;
use burn::optim::GradientsParams;
use burn::tensor::backend::{AutodiffBackend, Backend};
use burn::tensor::{Int, Tensor};
use contracts::config::{DecoderKind, LrSchedule, ModelConfig};
use rand::RngCore;
use serde::{Deserialize, Serialize};

use crate::model::{CaptionModel, DecodeState, Images, Trainable};
use crate::{DecoderError, FeatureStats, TeacherBatch};

/// A tensor whose shape is not the architecture's: `(name, expected, found)`.
pub type ShapeMismatch = (String, Vec<usize>, Vec<usize>);

/// A model's architecture: everything needed to rebuild the network before loading its
/// weights, and how `pipeline.toml` asks for it.
pub trait Architecture: Clone + std::fmt::Debug + PartialEq + std::fmt::Display {
    /// The network this architecture builds.
    type Model<B: Backend>: Architected<B, Config = Self>;

    /// The architecture `[model]` and the model's own table ask for, over `vocab_size` tokens.
    fn from_pipeline(model: &ModelConfig, vocab_size: usize) -> Self;

    /// Tokens the model can produce, special tokens included.
    fn vocab_size(&self) -> usize;

    /// The length of the image vectors the model reads (pooled, or one grid region).
    fn feature_dim(&self) -> usize;

    fn validate(&self) -> Result<(), DecoderError>;

    /// The learning-rate schedule `trainer.lr_schedule = "auto"` gives this model.
    fn schedule(&self) -> LrSchedule {
        LrSchedule::Plateau
    }

    /// What the model's per-word weights over the grid are, for the figures that show them
    /// (`None`: the model has none).
    fn attention_maps(&self) -> Option<&'static str> {
        None
    }

    /// A freshly initialised network, every weight drawn from `seed`, standardising features
    /// with `stats`.
    fn init<B: Backend>(
        &self,
        stats: &FeatureStats,
        seed: u64,
        device: &B::Device,
    ) -> Result<Self::Model<B>, DecoderError>;
}

/// What a checkpoint needs of a network besides its weights.
pub trait Architected<B: Backend> {
    type Config;

    /// The architecture, read from the tensor shapes.
    fn config(&self) -> Self::Config;

    /// The standardisation statistics the network holds.
    fn feature_stats(&self) -> FeatureStats;

    /// Every tensor's shape as `config` needs it; the first mismatch.
    fn check_shapes(&self, config: &Self::Config) -> Result<(), ShapeMismatch>;
}

/// The registry: `Kind => module;` for every model, `Kind` being its [`DecoderKind`].
macro_rules! decoders {
    ($($(#[doc = $doc:literal])* $kind:ident => $module:ident;)+) => {
        /// Every caption model, as one burn module.
        #[derive(Module, Debug)]
        pub enum Captioner<B: Backend> {
            $($(#[doc = $doc])* $kind(crate::$module::Model<B>),)+
        }

        /// The decoding state of a [`Captioner`].
        #[derive(Debug, Clone)]
        pub enum CaptionerState<B: Backend> {
            $($kind(crate::$module::State<B>),)+
        }

        /// The architecture of a [`Captioner`], stored in checkpoints with the model's kind.
        #[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
        #[serde(tag = "decoder", rename_all = "lowercase")]
        pub enum CaptionerConfig {
            $($kind(crate::$module::Config),)+
        }

        impl<B: Backend> DecodeState<B> for CaptionerState<B> {
            fn select(self, indices: Tensor<B, 1, Int>) -> Self {
                match self {
                    $(Self::$kind(state) => Self::$kind(state.select(indices)),)+
                }
            }

            fn attention(&self) -> Option<Tensor<B, 2>> {
                match self {
                    $(Self::$kind(state) => state.attention(),)+
                }
            }
        }

        impl<B: Backend> CaptionModel<B> for Captioner<B> {
            type State = CaptionerState<B>;

            fn vocab_size(&self) -> usize {
                match self {
                    $(Self::$kind(model) => model.vocab_size(),)+
                }
            }

            fn start(&self, images: &Images<B>) -> Self::State {
                match self {
                    $(Self::$kind(model) => CaptionerState::$kind(model.start(images)),)+
                }
            }

            fn step(
                &self,
                tokens: Tensor<B, 1, Int>,
                state: Self::State,
            ) -> (Tensor<B, 2>, Self::State) {
                #[allow(unreachable_patterns)]
                match (self, state) {
                    $((Self::$kind(model), CaptionerState::$kind(state)) => {
                        let (log_probs, state) = model.step(tokens, state);
                        (log_probs, CaptionerState::$kind(state))
                    })+
                    _ => unreachable!("a decoding state comes from its own model's start"),
                }
            }

            fn loss(&self, images: &Images<B>, batch: &TeacherBatch<B>) -> Tensor<B, 1> {
                match self {
                    $(Self::$kind(model) => model.loss(images, batch),)+
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
                    $(Self::$kind(model) => model.loss_and_grads(images, batch, rng),)+
                }
            }
        }

        impl<B: Backend> Captioner<B> {
            /// The architecture, read from the weights.
            pub fn config(&self) -> CaptionerConfig {
                match self {
                    $(Self::$kind(model) => CaptionerConfig::$kind(model.config()),)+
                }
            }

            /// The standardisation statistics the model holds.
            pub fn feature_stats(&self) -> FeatureStats {
                match self {
                    $(Self::$kind(model) => model.feature_stats(),)+
                }
            }

            /// Every tensor's shape as `config` needs it; the first mismatch.
            pub fn check_shapes(&self, config: &CaptionerConfig) -> Result<(), ShapeMismatch> {
                #[allow(unreachable_patterns)]
                match (self, config) {
                    $((Self::$kind(model), CaptionerConfig::$kind(config)) => {
                        model.check_shapes(config)
                    })+
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

        /// For logs: `merge decoder: embed 256, hidden 512, vocabulary 60, merge true, ...`.
        impl std::fmt::Display for CaptionerConfig {
            fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
                match self {
                    $(Self::$kind(config) => write!(f, "{} decoder: {config}", self.kind()),)+
                }
            }
        }

        impl CaptionerConfig {
            /// The architecture `[model]` and the chosen model's table ask for, over a
            /// vocabulary of `vocab_size` tokens.
            pub fn from_pipeline(model: &ModelConfig, vocab_size: usize) -> Self {
                match model.decoder {
                    $(DecoderKind::$kind => Self::$kind(
                        <crate::$module::Config as Architecture>::from_pipeline(model, vocab_size),
                    ),)+
                }
            }

            pub fn kind(&self) -> DecoderKind {
                match self {
                    $(Self::$kind(_) => DecoderKind::$kind,)+
                }
            }

            pub fn vocab_size(&self) -> usize {
                match self {
                    $(Self::$kind(config) => config.vocab_size(),)+
                }
            }

            pub fn validate(&self) -> Result<(), DecoderError> {
                match self {
                    $(Self::$kind(config) => config.validate(),)+
                }
            }

            /// The learning-rate schedule `trainer.lr_schedule = "auto"` gives the model.
            pub fn schedule(&self) -> LrSchedule {
                match self {
                    $(Self::$kind(config) => config.schedule(),)+
                }
            }

            /// What the model's per-word weights over the grid are (`None`: it has none).
            pub fn attention_maps(&self) -> Option<&'static str> {
                match self {
                    $(Self::$kind(config) => config.attention_maps(),)+
                }
            }

            /// A freshly initialised model, every weight drawn from `seed`, standardising
            /// features with `stats`.
            pub fn init<B: Backend>(
                &self,
                stats: &FeatureStats,
                seed: u64,
                device: &B::Device,
            ) -> Result<Captioner<B>, DecoderError> {
                match self {
                    $(Self::$kind(config) => Ok(Captioner::$kind(config.init(stats, seed, device)?)),)+
                }
            }

            /// The length of the image vectors the model reads (pooled, or one grid region).
            pub fn feature_dim(&self) -> usize {
                match self {
                    $(Self::$kind(config) => config.feature_dim(),)+
                }
            }
        }
    };
}

decoders! {
    /// The seed's CNN-RNN merge model.
    Merge => merge;
    /// Soft attention over the grid (Xu et al. 2015).
    Attention => attention;
    /// A Transformer encoder over the grid and decoder over the words.
    Transformer => transformer;
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
