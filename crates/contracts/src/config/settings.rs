//! Every config key with its allowed values, checked once, when the configuration loads.
//!
//! [`SETTINGS`] is the one list: the loader refuses a key that is not in it, and a value
//! outside its range, before any stage does any work, naming the key, the value, the range
//! and where the value came from (the file, a `--set`, or a flag). The README's table of
//! ranges and the comments of `pipeline.toml` say the same.

use std::fmt;

use super::choices::{DecoderKind, Device, ScstBaseline, SynthScene, ValMetric};

/// What a key accepts.
#[derive(Debug, Clone, Copy, PartialEq)]
pub enum Allowed {
    /// An integer in `min..=max`.
    Int {
        min: i64,
        max: i64,
    },
    /// A number in the interval; `open_min`/`open_max` exclude that end.
    Float {
        min: f64,
        max: f64,
        open_min: bool,
        open_max: bool,
    },
    /// One of these strings.
    Choice(&'static [&'static str]),
    Bool,
    /// Any string (paths and file names).
    Text,
    /// A list of devices, each `cpu`, `cuda` or `cuda:N` ([`super::DeviceSlot`]).
    Devices,
}

impl Allowed {
    const fn int(min: i64, max: i64) -> Self {
        Self::Int { min, max }
    }

    /// `[min, max]`
    const fn closed(min: f64, max: f64) -> Self {
        Self::Float {
            min,
            max,
            open_min: false,
            open_max: false,
        }
    }

    /// `(min, max]`
    const fn above(min: f64, max: f64) -> Self {
        Self::Float {
            min,
            max,
            open_min: true,
            open_max: false,
        }
    }

    /// `[min, max)`
    const fn below(min: f64, max: f64) -> Self {
        Self::Float {
            min,
            max,
            open_min: false,
            open_max: true,
        }
    }

    /// Whether `value` is allowed.
    pub fn admits(&self, value: &toml::Value) -> bool {
        match (self, value) {
            (Self::Int { min, max }, toml::Value::Integer(v)) => (*min..=*max).contains(v),
            (Self::Float { .. }, toml::Value::Integer(v)) => self.admits_float(*v as f64),
            (Self::Float { .. }, toml::Value::Float(v)) => self.admits_float(*v),
            (Self::Choice(choices), toml::Value::String(v)) => choices.contains(&v.as_str()),
            (Self::Bool, toml::Value::Boolean(_)) | (Self::Text, toml::Value::String(_)) => true,
            (Self::Devices, toml::Value::Array(items)) => items.iter().all(|item| {
                item.as_str()
                    .is_some_and(|text| text.parse::<super::DeviceSlot>().is_ok())
            }),
            _ => false,
        }
    }

    fn admits_float(&self, v: f64) -> bool {
        let Self::Float {
            min,
            max,
            open_min,
            open_max,
        } = *self
        else {
            return false;
        };
        let above = if open_min { v > min } else { v >= min };
        let below = if open_max { v < max } else { v <= max };
        above && below
    }
}

impl fmt::Display for Allowed {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Self::Int { min, max } if *max == i64::MAX => write!(f, "an integer >= {min}"),
            Self::Int { min, max } => write!(f, "an integer from {min} to {max}"),
            Self::Float {
                min,
                max,
                open_min,
                open_max,
            } => {
                let open = if *open_min { "(" } else { "[" };
                let close = if *open_max { ")" } else { "]" };
                write!(f, "a number in {open}{min}, {max}{close}")
            }
            Self::Choice(choices) => {
                let quoted: Vec<String> = choices.iter().map(|c| format!("\"{c}\"")).collect();
                write!(f, "one of {}", quoted.join(", "))
            }
            Self::Bool => f.write_str("true or false"),
            Self::Text => f.write_str("a string"),
            Self::Devices => write!(
                f,
                "a list of {}, such as [\"cuda:0\", \"cuda:1\"]",
                super::DeviceSlot::EXPECTED
            ),
        }
    }
}

/// One key of `pipeline.toml`.
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct Setting {
    /// `section.key`
    pub key: &'static str,
    pub allowed: Allowed,
}

const fn setting(key: &'static str, allowed: Allowed) -> Setting {
    Setting { key, allowed }
}

const ANY_SEED: Allowed = Allowed::int(0, i64::MAX);
const DEVICES: Allowed = Allowed::Choice(Device::NAMES);

/// Every key of `pipeline.toml` and what it accepts.
pub const SETTINGS: &[Setting] = &[
    setting("paths.dataset_dir", Allowed::Text),
    setting("paths.work_dir", Allowed::Text),
    setting("paths.weights", Allowed::Text),
    setting("paths.splits_dir", Allowed::Text),
    setting("synth.images", Allowed::int(1, 1_000_000)),
    setting("synth.seed", ANY_SEED),
    setting("synth.image_size", Allowed::int(32, 4096)),
    setting("synth.scene", Allowed::Choice(SynthScene::NAMES)),
    setting("cleaner.seed", ANY_SEED),
    setting("cleaner.val_fraction", Allowed::below(0.0, 1.0)),
    setting("cleaner.test_fraction", Allowed::below(0.0, 1.0)),
    setting("tokenizer.min_count", Allowed::int(1, i64::MAX)),
    setting("tokenizer.max_len", Allowed::int(1, 1000)),
    setting("featurizer.batch_size", Allowed::int(1, 1024)),
    setting("featurizer.resize", Allowed::int(32, 4096)),
    setting("featurizer.crop", Allowed::int(32, 4096)),
    setting("featurizer.part_rows", Allowed::int(1, 1_000_000)),
    setting("featurizer.seed", ANY_SEED),
    setting("featurizer.device", DEVICES),
    setting("model.decoder", Allowed::Choice(DecoderKind::NAMES)),
    setting("model.embed_dim", Allowed::int(1, 65_536)),
    setting("model.hidden_dim", Allowed::int(1, 65_536)),
    setting("model.dropout", Allowed::below(0.0, 1.0)),
    setting("model.merge", Allowed::Bool),
    setting("model.standardize", Allowed::Bool),
    setting("model.attention_dim", Allowed::int(1, 65_536)),
    setting("trainer.epochs", Allowed::int(1, 100_000)),
    setting("trainer.batch_size", Allowed::int(1, 65_536)),
    setting("trainer.learning_rate", Allowed::above(0.0, 1.0)),
    setting("trainer.adam_epsilon", Allowed::above(0.0, 1.0)),
    setting("trainer.clip_norm", Allowed::closed(0.0, 1e9)),
    setting("trainer.lr_decay", Allowed::above(0.0, 1.0)),
    setting("trainer.lr_patience", Allowed::int(0, 100_000)),
    setting("trainer.patience", Allowed::int(0, 100_000)),
    setting("trainer.val_metric", Allowed::Choice(ValMetric::NAMES)),
    setting("trainer.seed", ANY_SEED),
    setting("trainer.device", DEVICES),
    setting("trainer.devices", Allowed::Devices),
    setting("trainer.scst_epochs", Allowed::int(0, 100_000)),
    setting("trainer.scst_samples", Allowed::int(2, 100)),
    setting(
        "trainer.scst_baseline",
        Allowed::Choice(ScstBaseline::NAMES),
    ),
    setting("trainer.scst_learning_rate", Allowed::above(0.0, 1.0)),
    setting("trainer.attention_reg", Allowed::closed(0.0, 1000.0)),
    setting(
        "evaluator.split",
        Allowed::Choice(&["train", "val", "test"]),
    ),
    setting("evaluator.beam_size", Allowed::int(1, 100)),
    setting("evaluator.max_len", Allowed::int(1, 255)),
    setting("evaluator.length_alpha", Allowed::closed(0.0, 10.0)),
    setting("evaluator.suppress_unk", Allowed::Bool),
    setting("evaluator.gallery_size", Allowed::int(0, 1000)),
    setting("evaluator.device", DEVICES),
    setting("evaluator.meteor_data", Allowed::Text),
];

/// The setting of `section.key`, if there is one.
pub fn find(key: &str) -> Option<&'static Setting> {
    SETTINGS.iter().find(|s| s.key == key)
}

/// The keys of `section`, for the message about a key it does not have.
pub fn keys_of(section: &str) -> Vec<&'static str> {
    SETTINGS
        .iter()
        .filter_map(|s| s.key.strip_prefix(section)?.strip_prefix('.'))
        .collect()
}

/// The sections, in file order.
pub fn sections() -> Vec<&'static str> {
    let mut out: Vec<&str> = Vec::new();
    for s in SETTINGS {
        let section = s.key.split('.').next().unwrap_or_default();
        if !out.contains(&section) {
            out.push(section);
        }
    }
    out
}
