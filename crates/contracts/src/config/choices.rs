//! The enum-valued keys of `pipeline.toml`. Each is declared once with `choices!`: its
//! variants and the names the config spells them with, from which come serde's names,
//! `ALL`, `NAMES` (the allowed strings the settings table shows) and `name()`, so a new
//! variant cannot be missing from any of them.

use std::fmt;

use serde::{Deserialize, Serialize};

/// An enum of config choices: `Variant = "name"` each, with its doc comments.
macro_rules! choices {
    (
        $(#[$meta:meta])*
        pub enum $name:ident {
            $( $(#[$variant_meta:meta])* $variant:ident = $text:literal ),+ $(,)?
        }
    ) => {
        $(#[$meta])*
        #[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
        pub enum $name {
            $( $(#[$variant_meta])* #[serde(rename = $text)] $variant ),+
        }

        impl $name {
            /// Every variant, in the order the config lists them.
            pub const ALL: &'static [Self] = &[$(Self::$variant),+];
            /// The names the config accepts, in the same order.
            pub const NAMES: &'static [&'static str] = &[$($text),+];

            /// The variant's name in the config.
            pub fn name(self) -> &'static str {
                match self {
                    $(Self::$variant => $text),+
                }
            }
        }

        impl fmt::Display for $name {
            fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
                f.write_str(self.name())
            }
        }
    };
}

choices! {
    /// Where the networks run.
    #[derive(Default)]
    pub enum Device {
        #[default]
        Cpu = "cpu",
        /// burn-cuda, on a build with the `cuda` cargo feature.
        Cuda = "cuda",
    }
}

choices! {
    /// The validation metric that picks the best checkpoint and stops training early.
    pub enum ValMetric {
        /// Corpus BLEU-4 of greedy captions of the val images (higher is better).
        Bleu4 = "bleu4",
        /// Cross-entropy per token on the val captions (lower is better).
        Loss = "loss",
    }
}

impl ValMetric {
    pub fn higher_is_better(self) -> bool {
        match self {
            Self::Bleu4 => true,
            Self::Loss => false,
        }
    }
}

choices! {
    /// The baseline of self-critical training: a sample's advantage is its reward minus this.
    pub enum ScstBaseline {
        /// The mean reward of the image's other samples ("new self-critical").
        Mean = "mean",
        /// The reward of the image's greedy caption (Rennie et al.).
        Greedy = "greedy",
    }
}

choices! {
    /// What the synthetic images show.
    pub enum SynthScene {
        /// One large shape, or two side by side: pooled features suffice (the demo's dataset).
        Mixed = "mixed",
        /// Three or four small shapes at distinct places, named in reading order: a test for
        /// attention over the feature grid.
        SmallShapes = "small-shapes",
    }
}

choices! {
    /// Which caption model the trainer builds and the checkpoint holds.
    pub enum DecoderKind {
        /// The seed's CNN-RNN: the pooled image vector as the LSTM's first input, merged again
        /// with each output.
        Merge = "merge",
        /// Xu et al. 2015 soft attention over the 7x7 grid of ResNet50's last feature map.
        Attention = "attention",
        /// A Transformer encoder over the grid's regions and a Transformer decoder over the
        /// words (Vaswani et al. 2017, as captioning codebases use it since 2018).
        Transformer = "transformer",
    }
}

choices! {
    /// How the learning rate moves during the cross-entropy epochs.
    pub enum LrSchedule {
        /// The model's own: `plateau` for the LSTM decoders, `warmup` for the Transformer.
        Auto = "auto",
        /// Constant, multiplied by `lr_decay` after `lr_patience` epochs without improvement.
        Plateau = "plateau",
        /// Linear warm-up to `learning_rate` over `warmup_steps` optimizer steps, then decay
        /// with the inverse square root of the step (the Transformer's "noam" schedule, its
        /// peak set by `learning_rate`).
        Warmup = "warmup",
    }
}

/// What a decoder reads of each image: the featurizer writes it, and the trainer, the
/// evaluator and `caption` hand it to the model.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum ImageInputs {
    /// The pooled vector (`features/`) alone.
    Pooled,
    /// The pooled vector and the grid of regions (`features/` and `grid/`).
    PooledAndGrid,
}

impl DecoderKind {
    /// What the model reads of each image; every decoder says, in one exhaustive match.
    pub fn inputs(self) -> ImageInputs {
        match self {
            Self::Merge => ImageInputs::Pooled,
            Self::Attention | Self::Transformer => ImageInputs::PooledAndGrid,
        }
    }

    /// Whether the model reads the grid features (`grid/`) besides the pooled ones.
    pub fn needs_grid(self) -> bool {
        self.inputs() == ImageInputs::PooledAndGrid
    }
}

/// One device of a backend: an entry of `trainer.devices`, written `cpu`, `cuda` (its first
/// device) or `cuda:N`.
///
/// The CPU backend has one device; naming it more than once runs that many replicas on the
/// same cores, which tests data-parallel training without GPUs but is no faster.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(try_from = "String", into = "String")]
pub struct DeviceSlot {
    pub kind: Device,
    /// The device's index among its kind's (always 0 for `cpu`).
    pub index: u16,
}

impl DeviceSlot {
    pub const EXPECTED: &str = "\"cpu\", \"cuda\" or \"cuda:N\"";
}

impl std::str::FromStr for DeviceSlot {
    type Err = String;

    fn from_str(text: &str) -> Result<Self, String> {
        let slot = |kind, index| Ok(Self { kind, index });
        let bad = || Err(format!("device {text:?}: expected {}", Self::EXPECTED));
        match text.split_once(':') {
            None if text == "cpu" => slot(Device::Cpu, 0),
            None if text == "cuda" => slot(Device::Cuda, 0),
            Some(("cuda", index)) => index
                .parse()
                .map_or_else(|_| bad(), |i| slot(Device::Cuda, i)),
            _ => bad(),
        }
    }
}

impl TryFrom<String> for DeviceSlot {
    type Error = String;

    fn try_from(text: String) -> Result<Self, String> {
        text.parse()
    }
}

impl From<DeviceSlot> for String {
    fn from(slot: DeviceSlot) -> String {
        slot.to_string()
    }
}

impl fmt::Display for DeviceSlot {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self.kind {
            Device::Cpu => f.write_str("cpu"),
            Device::Cuda => write!(f, "cuda:{}", self.index),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// serde reads and writes each variant by the name `NAMES` lists for it.
    #[test]
    fn serde_names_are_the_listed_names() {
        fn check<T: Serialize + for<'de> Deserialize<'de> + PartialEq + fmt::Debug + Copy>(
            all: &[T],
            names: &[&str],
            name: impl Fn(T) -> &'static str,
        ) {
            assert_eq!(all.len(), names.len());
            for (&variant, &text) in all.iter().zip(names) {
                assert_eq!(name(variant), text);
                assert_eq!(serde_json::to_value(variant).unwrap(), text);
                assert_eq!(serde_json::from_value::<T>(text.into()).unwrap(), variant);
            }
        }
        check(Device::ALL, Device::NAMES, Device::name);
        check(ValMetric::ALL, ValMetric::NAMES, ValMetric::name);
        check(ScstBaseline::ALL, ScstBaseline::NAMES, ScstBaseline::name);
        check(SynthScene::ALL, SynthScene::NAMES, SynthScene::name);
        check(DecoderKind::ALL, DecoderKind::NAMES, DecoderKind::name);
    }
}
