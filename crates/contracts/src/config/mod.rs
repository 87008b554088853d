//! `pipeline.toml`: every path and hyperparameter of the pipeline, one section per stage.
//!
//! The file is read as a TOML table, overrides (`--set section.key=value`, and stage flags
//! such as `trainer --epochs 5`) are applied to that table, every key is checked against its
//! range in [`settings::SETTINGS`], and only then is the table turned into
//! [`PipelineConfig`]: an override is checked exactly like a key in the file, and a bad key or
//! value is an error that names it and where it came from, before any stage starts work.

pub mod settings;

use std::collections::BTreeMap;
use std::fmt;
use std::path::{Path, PathBuf};

use serde::{Deserialize, Serialize};

use crate::error::ContractError;
pub use crate::tables::Split;

/// The whole configuration; every section has defaults so a partial file is valid.
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
#[serde(default, deny_unknown_fields)]
pub struct PipelineConfig {
    pub paths: Paths,
    pub synth: SynthConfig,
    pub cleaner: CleanerConfig,
    pub tokenizer: TokenizerConfig,
    pub featurizer: FeaturizerConfig,
    pub model: ModelConfig,
    pub trainer: TrainerConfig,
    pub evaluator: EvaluatorConfig,
}

/// Where inputs are read and outputs written.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(default, deny_unknown_fields)]
pub struct Paths {
    /// The raw dataset: any layout the cleaner detects (Flickr8k, Kaggle, Karpathy, synthetic).
    pub dataset_dir: PathBuf,
    /// Every stage output (Parquet files, model, evaluation) goes under this directory.
    pub work_dir: PathBuf,
    /// ResNet50 weights: a torchvision `.pth` or `.safetensors` file, or `random` (demo only).
    pub weights: String,
    /// Folder with the official Flickr8k split lists, used when a dataset has none.
    pub splits_dir: PathBuf,
}

impl Default for Paths {
    fn default() -> Self {
        Self {
            dataset_dir: "data/flickr8k".into(),
            work_dir: "data/work".into(),
            weights: "data/weights/resnet50-0676ba61.pth".into(),
            splits_dir: "data/splits".into(),
        }
    }
}

/// The synthetic shapes dataset (`synth`).
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(default, deny_unknown_fields)]
pub struct SynthConfig {
    /// Number of images to generate.
    pub images: usize,
    /// Seed of everything random in the dataset.
    pub seed: u64,
    /// Side of the square PNG images, in pixels.
    pub image_size: u32,
    /// What each image shows.
    pub scene: SynthScene,
}

impl Default for SynthConfig {
    fn default() -> Self {
        Self {
            images: 1500,
            seed: 7,
            image_size: 256,
            scene: SynthScene::Mixed,
        }
    }
}

/// Caption cleaning and split assignment (`cleaner`).
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(default, deny_unknown_fields)]
pub struct CleanerConfig {
    /// Seed of the 80/10/10 split used when a dataset has no split of its own.
    pub seed: u64,
    /// Fraction of images in the val split of a seeded split.
    pub val_fraction: f64,
    /// Fraction of images in the test split of a seeded split.
    pub test_fraction: f64,
}

impl Default for CleanerConfig {
    fn default() -> Self {
        Self {
            seed: 42,
            val_fraction: 0.1,
            test_fraction: 0.1,
        }
    }
}

/// Vocabulary and token ids (`tokenizer`).
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(default, deny_unknown_fields)]
pub struct TokenizerConfig {
    /// A train-split word seen at least this many times is in the vocabulary.
    pub min_count: u64,
    /// Longest caption in words; longer ones are truncated (and counted).
    pub max_len: usize,
}

impl Default for TokenizerConfig {
    fn default() -> Self {
        Self {
            min_count: 5,
            max_len: 32,
        }
    }
}

/// ResNet50 feature extraction (`featurizer`).
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(default, deny_unknown_fields)]
pub struct FeaturizerConfig {
    /// Images per network call.
    pub batch_size: usize,
    /// Shorter side after resizing: 256 for IMAGENET1K_V1 weights, 232 for V2.
    pub resize: u32,
    /// Side of the center crop fed to the network.
    pub crop: u32,
    /// Rows per `features/part-NNNNN.parquet` file (the unit of resume and sharding).
    pub part_rows: usize,
    /// Seed of the `random` weights.
    pub seed: u64,
    /// `cpu`, or `cuda` on a build with the `cuda` feature.
    pub device: Device,
}

impl Default for FeaturizerConfig {
    fn default() -> Self {
        Self {
            batch_size: 16,
            resize: 256,
            crop: 224,
            part_rows: 512,
            seed: 0,
            device: Device::Cpu,
        }
    }
}

/// The caption decoder's architecture, shared by trainer, evaluator and `caption`.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(default, deny_unknown_fields)]
pub struct ModelConfig {
    /// Which caption model: `merge` (the seed's CNN-RNN) or `attention` (soft attention over
    /// the ResNet50 grid).
    pub decoder: DecoderKind,
    /// Word (and projected image) embedding size.
    pub embed_dim: usize,
    /// LSTM hidden size.
    pub hidden_dim: usize,
    /// Dropout after the image projection and before the output layer.
    pub dropout: f64,
    /// Join the image embedding with the LSTM output before the vocabulary projection.
    pub merge: bool,
    /// Z-score image features with the train split's mean and standard deviation.
    pub standardize: bool,
    /// Size of the attention model's additive attention (grid and state projections).
    pub attention_dim: usize,
}

impl Default for ModelConfig {
    fn default() -> Self {
        Self {
            decoder: DecoderKind::Merge,
            embed_dim: 256,
            hidden_dim: 512,
            dropout: 0.5,
            merge: true,
            standardize: true,
            attention_dim: 256,
        }
    }
}

/// Training (`trainer`).
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(default, deny_unknown_fields)]
pub struct TrainerConfig {
    pub epochs: usize,
    /// Captions per optimizer step.
    pub batch_size: usize,
    pub learning_rate: f64,
    /// Adam's epsilon (PyTorch's default; burn's own default is 1e-5).
    pub adam_epsilon: f64,
    /// Gradients are rescaled to at most this global L2 norm.
    pub clip_norm: f64,
    /// Learning rate is multiplied by this when validation stops improving...
    pub lr_decay: f64,
    /// ...for this many epochs.
    pub lr_patience: usize,
    /// Stop after this many epochs without improvement of the validation metric.
    pub patience: usize,
    /// Validation metric for early stopping: `bleu4` or `loss`.
    pub val_metric: ValMetric,
    /// Seed of initialisation, dropout and shuffling.
    pub seed: u64,
    /// `cpu`, or `cuda` on a build with the `cuda` feature.
    pub device: Device,
    /// Data-parallel training: the devices of `device`'s kind that each take a slice of every
    /// batch (`["cuda:0", "cuda:1"]`); empty, the default, is `device` alone.
    pub devices: Vec<DeviceSlot>,
    /// Self-critical epochs after the cross-entropy ones, from the best cross-entropy
    /// checkpoint (0: none).
    pub scst_epochs: usize,
    /// Captions sampled per image in a self-critical step.
    pub scst_samples: usize,
    /// What a sample's CIDEr-D reward is compared with.
    pub scst_baseline: ScstBaseline,
    /// Adam's learning rate during self-critical training.
    pub scst_learning_rate: f64,
    /// Weight of the attention model's doubly stochastic regularisation.
    pub attention_reg: f64,
}

impl Default for TrainerConfig {
    fn default() -> Self {
        Self {
            epochs: 20,
            batch_size: 64,
            learning_rate: 1e-3,
            adam_epsilon: 1e-8,
            clip_norm: 5.0,
            lr_decay: 0.5,
            lr_patience: 2,
            patience: 5,
            val_metric: ValMetric::Bleu4,
            seed: 42,
            device: Device::Cpu,
            devices: Vec::new(),
            scst_epochs: 0,
            scst_samples: 5,
            scst_baseline: ScstBaseline::Mean,
            scst_learning_rate: 5e-5,
            attention_reg: 1.0,
        }
    }
}

/// Decoding and scoring (`evaluator`, `caption`).
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(default, deny_unknown_fields)]
pub struct EvaluatorConfig {
    /// Split to decode and score.
    pub split: Split,
    /// Beam width; 1 is greedy decoding.
    pub beam_size: usize,
    /// Longest generated caption, in words.
    pub max_len: usize,
    /// Hypotheses are ranked by log-probability / length^alpha (0 = no normalisation).
    pub length_alpha: f64,
    /// Never generate `<unk>`.
    pub suppress_unk: bool,
    /// Images shown in each of the best and worst galleries of the report.
    pub gallery_size: usize,
    /// `cpu`, or `cuda` on a build with the `cuda` feature.
    pub device: Device,
    /// METEOR's data folder (`make meteor-data`); without it METEOR is left out, with a warning.
    pub meteor_data: PathBuf,
}

impl Default for EvaluatorConfig {
    fn default() -> Self {
        Self {
            split: Split::Test,
            beam_size: 3,
            max_len: 20,
            length_alpha: 0.0,
            suppress_unk: true,
            gallery_size: 12,
            device: Device::Cpu,
            meteor_data: "data/meteor".into(),
        }
    }
}

/// Where the networks run.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum Device {
    #[default]
    Cpu,
    /// burn-cuda, on a build with the `cuda` cargo feature.
    Cuda,
}

impl Device {
    pub fn name(self) -> &'static str {
        match self {
            Device::Cpu => "cpu",
            Device::Cuda => "cuda",
        }
    }
}

impl fmt::Display for Device {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.name())
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

impl TrainerConfig {
    /// The devices training runs on: `devices`, or `device`'s first one when it is empty.
    pub fn replicas(&self) -> Vec<DeviceSlot> {
        if self.devices.is_empty() {
            vec![DeviceSlot {
                kind: self.device,
                index: 0,
            }]
        } else {
            self.devices.clone()
        }
    }
}

/// The validation metric that picks the best checkpoint and stops training early.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum ValMetric {
    /// Corpus BLEU-4 of greedy captions of the val images (higher is better).
    Bleu4,
    /// Cross-entropy per token on the val captions (lower is better).
    Loss,
}

impl ValMetric {
    pub fn higher_is_better(self) -> bool {
        matches!(self, ValMetric::Bleu4)
    }

    pub fn name(self) -> &'static str {
        match self {
            ValMetric::Bleu4 => "bleu4",
            ValMetric::Loss => "loss",
        }
    }
}

/// The baseline of self-critical training: a sample's advantage is its reward minus this.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum ScstBaseline {
    /// The mean reward of the image's other samples ("new self-critical").
    Mean,
    /// The reward of the image's greedy caption (Rennie et al.).
    Greedy,
}

impl ScstBaseline {
    pub fn name(self) -> &'static str {
        match self {
            ScstBaseline::Mean => "mean",
            ScstBaseline::Greedy => "greedy",
        }
    }
}

/// What the synthetic images show.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "kebab-case")]
pub enum SynthScene {
    /// One large shape, or two side by side: pooled features suffice (the demo's dataset).
    Mixed,
    /// Three or four small shapes at distinct places, named in reading order: a test for
    /// attention over the feature grid.
    SmallShapes,
}

impl SynthScene {
    pub fn name(self) -> &'static str {
        match self {
            SynthScene::Mixed => "mixed",
            SynthScene::SmallShapes => "small-shapes",
        }
    }
}

impl fmt::Display for SynthScene {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.name())
    }
}

/// Which caption model the trainer builds and the checkpoint holds.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum DecoderKind {
    /// The seed's CNN-RNN: the pooled image vector as the LSTM's first input, merged again
    /// with each output.
    Merge,
    /// Xu et al. 2015 soft attention over the 7x7 grid of ResNet50's last feature map.
    Attention,
}

impl DecoderKind {
    /// Whether the model reads the grid features (`grid/`) besides the pooled ones.
    pub fn needs_grid(self) -> bool {
        self == DecoderKind::Attention
    }

    pub fn name(self) -> &'static str {
        match self {
            DecoderKind::Merge => "merge",
            DecoderKind::Attention => "attention",
        }
    }
}

impl fmt::Display for DecoderKind {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.name())
    }
}

/// One key set from the command line: by `--set section.key=value` or by a stage's own flag
/// (`trainer --epochs 5` sets `trainer.epochs`).
#[derive(Debug, Clone, PartialEq)]
pub struct Override {
    /// `section.key`
    pub key: String,
    /// As typed on the command line.
    pub text: String,
    pub value: toml::Value,
    /// The flag that set it (`--epochs`), or `None` for `--set`.
    pub flag: Option<&'static str>,
}

impl Override {
    /// Parses `section.key=value` as given to `--set` (the value in TOML syntax; a bare word is
    /// a string).
    pub fn set(item: &str) -> Result<Self, ContractError> {
        let bad = |why: &str| ContractError::Override {
            item: item.to_string(),
            message: why.to_string(),
        };
        let (key, value) = item
            .split_once('=')
            .ok_or_else(|| bad("expected section.key=value"))?;
        let key = key.trim();
        if !key.contains('.') {
            return Err(bad("the key needs a section, e.g. trainer.epochs"));
        }
        let text = value.trim().to_string();
        Ok(Self {
            key: key.to_string(),
            value: parse_value(&text),
            text,
            flag: None,
        })
    }

    /// The key `flag` sets, when the flag was given (a number or a word).
    pub fn flag(flag: &'static str, key: &str, value: Option<impl ToString>) -> Option<Self> {
        value.map(|v| {
            let text = v.to_string();
            Self {
                key: key.to_string(),
                value: parse_value(&text),
                text,
                flag: Some(flag),
            }
        })
    }

    /// The key a flag taking a list of words sets (`--devices cuda:0,cuda:1`): an array of
    /// strings.
    pub fn list_flag(flag: &'static str, key: &str, values: Option<&Vec<String>>) -> Option<Self> {
        values.map(|values| Self {
            key: key.to_string(),
            value: toml::Value::Array(values.iter().cloned().map(toml::Value::String).collect()),
            text: values.join(","),
            flag: Some(flag),
        })
    }

    /// The key a flag taking a path or name sets: the value is a string as given.
    pub fn text_flag(flag: &'static str, key: &str, value: Option<impl ToString>) -> Option<Self> {
        value.map(|v| {
            let text = v.to_string();
            Self {
                key: key.to_string(),
                value: toml::Value::String(text.clone()),
                text,
                flag: Some(flag),
            }
        })
    }
}

/// Where a key's value came from, for messages.
#[derive(Debug, Clone, PartialEq)]
enum Source {
    File(PathBuf),
    Command(Override),
}

impl fmt::Display for Source {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Source::File(path) => write!(f, "in {}", path.display()),
            Source::Command(o) => match o.flag {
                Some(flag) => write!(f, "from {flag} {}", o.text),
                None => write!(f, "from --set {}={}", o.key, o.text),
            },
        }
    }
}

impl PipelineConfig {
    /// Reads `path`, applies `overrides` in order and checks every key. A missing default
    /// config file is not an error when `path_is_default` is true: the built-in defaults
    /// apply.
    pub fn load(
        path: &Path,
        overrides: &[Override],
        path_is_default: bool,
    ) -> Result<Self, ContractError> {
        let config_error = |message: String| ContractError::Config {
            file: path.to_path_buf(),
            message,
        };
        let text = match std::fs::read_to_string(path) {
            Ok(text) => text,
            Err(e) if e.kind() == std::io::ErrorKind::NotFound && path_is_default => String::new(),
            Err(error) => return Err(ContractError::io(path, error)),
        };
        let mut table: toml::Table = text
            .parse()
            .map_err(|e: toml::de::Error| config_error(e.to_string()))?;
        let mut sources = BTreeMap::new();
        for (section, keys) in &table {
            match keys {
                toml::Value::Table(keys) => {
                    for key in keys.keys() {
                        sources.insert(format!("{section}.{key}"), Source::File(path.into()));
                    }
                }
                _ => return Err(config_error(format!("`{section}` is not a [section]"))),
            }
        }
        for item in overrides {
            apply(&mut table, item)?;
            sources.insert(item.key.clone(), Source::Command(item.clone()));
        }
        check_keys(&table, &sources)?;
        let config: Self = toml::Value::Table(table)
            .try_into()
            .map_err(|e: toml::de::Error| config_error(e.to_string()))?;
        config.check_relations(&sources)?;
        Ok(config)
    }

    /// Rules between keys, which [`settings::SETTINGS`] cannot say key by key.
    fn check_relations(&self, sources: &BTreeMap<String, Source>) -> Result<(), ContractError> {
        let source = |key: &str| {
            sources
                .get(key)
                .map_or_else(|| "the default".to_string(), Source::to_string)
        };
        let (crop, resize) = (self.featurizer.crop, self.featurizer.resize);
        if crop > resize {
            return Err(ContractError::Setting {
                message: format!(
                    "featurizer.crop = {crop} ({}) is larger than featurizer.resize = {resize} \
                     ({}): the center crop must fit in the resized image",
                    source("featurizer.crop"),
                    source("featurizer.resize")
                ),
            });
        }
        let trainer = &self.trainer;
        if let Some(other) = trainer.devices.iter().find(|d| d.kind != trainer.device) {
            return Err(ContractError::Setting {
                message: format!(
                    "trainer.devices names {other} ({}), but trainer.device = \"{}\" ({}): \
                     set trainer.device = \"{}\" as well, or list {} devices only",
                    source("trainer.devices"),
                    trainer.device,
                    source("trainer.device"),
                    other.kind,
                    trainer.device
                ),
            });
        }
        let (val, test) = (self.cleaner.val_fraction, self.cleaner.test_fraction);
        if val + test >= 1.0 {
            return Err(ContractError::Setting {
                message: format!(
                    "cleaner.val_fraction = {val} ({}) and cleaner.test_fraction = {test} ({}) \
                     leave no images for train: their sum must be below 1",
                    source("cleaner.val_fraction"),
                    source("cleaner.test_fraction")
                ),
            });
        }
        Ok(())
    }
}

impl PipelineConfig {
    /// The named sections (`paths`, `trainer`, ...) as one JSON object, keys sorted.
    pub fn sections_json(&self, names: &str) -> Result<String, ContractError> {
        let all = serde_json::to_value(self).map_err(|e| ContractError::Override {
            item: names.into(),
            message: e.to_string(),
        })?;
        let mut picked = serde_json::Map::new();
        for name in names.split(',').map(str::trim).filter(|n| !n.is_empty()) {
            let section = all.get(name).ok_or_else(|| ContractError::Override {
                item: name.into(),
                message: "no such config section".into(),
            })?;
            picked.insert(name.into(), section.clone());
        }
        Ok(serde_json::Value::Object(picked).to_string())
    }
}

/// Sets `item.key` in `table`.
fn apply(table: &mut toml::Table, item: &Override) -> Result<(), ContractError> {
    let (section, field) = item.key.split_once('.').unwrap_or((&item.key, ""));
    let entry = table
        .entry(section.to_string())
        .or_insert_with(|| toml::Value::Table(toml::Table::new()));
    let toml::Value::Table(section_table) = entry else {
        return Err(ContractError::Override {
            item: format!("{}={}", item.key, item.text),
            message: "that section is not a table".into(),
        });
    };
    section_table.insert(field.to_string(), item.value.clone());
    Ok(())
}

/// Refuses an unknown section or key, and a value outside its key's range.
fn check_keys(
    table: &toml::Table,
    sources: &BTreeMap<String, Source>,
) -> Result<(), ContractError> {
    let known_sections = settings::sections();
    for (section, keys) in table {
        let toml::Value::Table(keys) = keys else {
            continue;
        };
        for (key, value) in keys {
            let name = format!("{section}.{key}");
            let source = &sources[&name];
            let Some(setting) = settings::find(&name) else {
                let known = if known_sections.contains(&section.as_str()) {
                    format!("[{section}] has {}", settings::keys_of(section).join(", "))
                } else {
                    format!("the sections are {}", known_sections.join(", "))
                };
                return Err(ContractError::Setting {
                    message: format!("unknown key {name} ({source}); {known}"),
                });
            };
            if !setting.allowed.admits(value) {
                return Err(ContractError::Setting {
                    message: format!(
                        "{name} = {value} ({source}) is not allowed: expected {}",
                        setting.allowed
                    ),
                });
            }
        }
    }
    Ok(())
}

/// A TOML literal (`15`, `0.5`, `true`, `"x"`) or, failing that, a bare string.
fn parse_value(text: &str) -> toml::Value {
    format!("v = {text}")
        .parse::<toml::Table>()
        .ok()
        .and_then(|mut t| t.remove("v"))
        .unwrap_or_else(|| toml::Value::String(text.to_string()))
}

#[cfg(test)]
mod tests {
    use super::*;

    fn write(text: &str) -> tempfile::NamedTempFile {
        let file = tempfile::NamedTempFile::new().unwrap();
        std::fs::write(file.path(), text).unwrap();
        file
    }

    fn sets(items: &[&str]) -> Vec<Override> {
        items.iter().map(|i| Override::set(i).unwrap()).collect()
    }

    /// The error of loading `file` (`none.toml`: no file, the defaults) with `overrides`.
    fn load_error(file: &Path, overrides: &[Override]) -> String {
        PipelineConfig::load(file, overrides, file == Path::new("none.toml"))
            .unwrap_err()
            .to_string()
    }

    #[test]
    fn overrides_win_over_the_file() {
        let file = write("[trainer]\nepochs = 3\nseed = 1\n");
        let overrides = sets(&["trainer.epochs=15", "paths.weights=random"]);
        let config = PipelineConfig::load(file.path(), &overrides, false).unwrap();
        assert_eq!(config.trainer.epochs, 15);
        assert_eq!(config.trainer.seed, 1);
        assert_eq!(config.paths.weights, "random");
        assert_eq!(config.model, ModelConfig::default());
    }

    #[test]
    fn unknown_keys_are_named_with_where_they_came_from() {
        let file = write("[trainer]\nepoch = 3\n");
        let known = settings::keys_of("trainer").join(", ");
        assert_eq!(
            load_error(file.path(), &[]),
            format!(
                "unknown key trainer.epoch (in {}); [trainer] has {known}",
                file.path().display()
            )
        );
        let empty = write("");
        assert_eq!(
            load_error(empty.path(), &sets(&["trainer.epohcs=2"])),
            format!(
                "unknown key trainer.epohcs (from --set trainer.epohcs=2); [trainer] has {known}"
            )
        );
        assert_eq!(
            load_error(empty.path(), &sets(&["train.epochs=2"])),
            "unknown key train.epochs (from --set train.epochs=2); the sections are paths, \
             synth, cleaner, tokenizer, featurizer, model, trainer, evaluator"
        );
    }

    #[test]
    fn override_without_section_is_refused() {
        assert_eq!(
            Override::set("epochs=2").unwrap_err().to_string(),
            "--set epochs=2: the key needs a section, e.g. trainer.epochs"
        );
        assert_eq!(
            Override::set("trainer.epochs").unwrap_err().to_string(),
            "--set trainer.epochs: expected section.key=value"
        );
    }

    #[test]
    fn flags_are_named_as_the_source_of_their_value() {
        let flag = Override::flag("--batch-size", "featurizer.batch_size", Some(0)).unwrap();
        assert_eq!(
            PipelineConfig::load(Path::new("none.toml"), &[flag], true)
                .unwrap_err()
                .to_string(),
            "featurizer.batch_size = 0 (from --batch-size 0) is not allowed: expected an \
             integer from 1 to 1024"
        );
        assert_eq!(
            Override::flag("--epochs", "trainer.epochs", None::<usize>),
            None
        );
    }

    /// A value just outside (or of another type than) what each key accepts, and the error.
    #[test]
    fn every_key_refuses_values_outside_its_range() {
        let cases: &[(&str, &str, &str)] = &[
            ("paths.dataset_dir", "3", "a string"),
            ("paths.work_dir", "true", "a string"),
            ("paths.weights", "1.5", "a string"),
            ("paths.splits_dir", "0", "a string"),
            ("synth.images", "0", "an integer from 1 to 1000000"),
            ("synth.seed", "-1", "an integer >= 0"),
            ("synth.image_size", "16", "an integer from 32 to 4096"),
            ("synth.scene", "large", "one of \"mixed\", \"small-shapes\""),
            ("cleaner.seed", "\"x\"", "an integer >= 0"),
            ("cleaner.val_fraction", "1.0", "a number in [0, 1)"),
            ("cleaner.test_fraction", "-0.1", "a number in [0, 1)"),
            ("tokenizer.min_count", "0", "an integer >= 1"),
            ("tokenizer.max_len", "0", "an integer from 1 to 1000"),
            ("featurizer.batch_size", "0", "an integer from 1 to 1024"),
            ("featurizer.resize", "31", "an integer from 32 to 4096"),
            ("featurizer.crop", "5000", "an integer from 32 to 4096"),
            ("featurizer.part_rows", "0", "an integer from 1 to 1000000"),
            ("featurizer.seed", "0.5", "an integer >= 0"),
            ("featurizer.device", "gpu", "one of \"cpu\", \"cuda\""),
            ("model.decoder", "lstm", "one of \"merge\", \"attention\""),
            ("model.embed_dim", "0", "an integer from 1 to 65536"),
            ("model.hidden_dim", "70000", "an integer from 1 to 65536"),
            ("model.dropout", "1", "a number in [0, 1)"),
            ("model.merge", "yes", "true or false"),
            ("model.standardize", "1", "true or false"),
            ("model.attention_dim", "0", "an integer from 1 to 65536"),
            ("trainer.epochs", "0", "an integer from 1 to 100000"),
            ("trainer.batch_size", "0", "an integer from 1 to 65536"),
            ("trainer.learning_rate", "0", "a number in (0, 1]"),
            ("trainer.adam_epsilon", "0", "a number in (0, 1]"),
            ("trainer.clip_norm", "-1", "a number in [0, 1000000000]"),
            ("trainer.lr_decay", "1.5", "a number in (0, 1]"),
            ("trainer.lr_patience", "-1", "an integer from 0 to 100000"),
            ("trainer.patience", "-2", "an integer from 0 to 100000"),
            ("trainer.val_metric", "bleu5", "one of \"bleu4\", \"loss\""),
            ("trainer.seed", "many", "an integer >= 0"),
            ("trainer.device", "tpu", "one of \"cpu\", \"cuda\""),
            (
                "trainer.devices",
                "[\"cuda:x\"]",
                "a list of \"cpu\", \"cuda\" or \"cuda:N\", such as [\"cuda:0\", \"cuda:1\"]",
            ),
            ("trainer.scst_epochs", "-1", "an integer from 0 to 100000"),
            ("trainer.scst_samples", "1", "an integer from 2 to 100"),
            (
                "trainer.scst_baseline",
                "max",
                "one of \"mean\", \"greedy\"",
            ),
            ("trainer.scst_learning_rate", "0", "a number in (0, 1]"),
            ("trainer.attention_reg", "-1", "a number in [0, 1000]"),
            (
                "evaluator.split",
                "dev",
                "one of \"train\", \"val\", \"test\"",
            ),
            ("evaluator.beam_size", "0", "an integer from 1 to 100"),
            ("evaluator.max_len", "0", "an integer from 1 to 255"),
            ("evaluator.length_alpha", "-1", "a number in [0, 10]"),
            ("evaluator.suppress_unk", "\"no\"", "true or false"),
            ("evaluator.gallery_size", "-1", "an integer from 0 to 1000"),
            ("evaluator.device", "metal", "one of \"cpu\", \"cuda\""),
            ("evaluator.meteor_data", "7", "a string"),
        ];
        let tested: Vec<&str> = cases.iter().map(|c| c.0).collect();
        let all: Vec<&str> = settings::SETTINGS.iter().map(|s| s.key).collect();
        assert_eq!(tested, all, "every key needs a case here");
        for (key, value, allowed) in cases {
            let item = format!("{key}={value}");
            let shown = parse_value(value);
            assert_eq!(
                load_error(Path::new("none.toml"), &sets(&[&item])),
                format!("{key} = {shown} (from --set {item}) is not allowed: expected {allowed}"),
                "{item}"
            );
            // The same value in a file names the file.
            let (section, name) = key.split_once('.').unwrap();
            let file = write(&format!("[{section}]\n{name} = {shown}\n"));
            assert_eq!(
                load_error(file.path(), &[]),
                format!(
                    "{key} = {shown} (in {}) is not allowed: expected {allowed}",
                    file.path().display()
                ),
            );
        }
    }

    #[test]
    fn the_settings_list_every_key_and_admit_the_defaults() {
        let defaults = serde_json::to_value(PipelineConfig::default()).unwrap();
        let mut keys = Vec::new();
        for (section, fields) in defaults.as_object().unwrap() {
            for (field, value) in fields.as_object().unwrap() {
                let key = format!("{section}.{field}");
                let setting = settings::find(&key).unwrap_or_else(|| panic!("{key} has no range"));
                let value: toml::Value = serde_json::from_value(value.clone()).unwrap();
                assert!(setting.allowed.admits(&value), "default {key} = {value}");
                keys.push(key);
            }
        }
        keys.sort();
        let mut listed: Vec<String> = settings::SETTINGS.iter().map(|s| s.key.into()).collect();
        listed.sort();
        assert_eq!(keys, listed);
        // The shipped pipeline.toml loads.
        let shipped = Path::new(env!("CARGO_MANIFEST_DIR")).join("../../pipeline.toml");
        PipelineConfig::load(&shipped, &[], false).unwrap();
    }

    #[test]
    fn rules_between_keys_name_both() {
        assert_eq!(
            load_error(Path::new("none.toml"), &sets(&["featurizer.crop=300"])),
            "featurizer.crop = 300 (from --set featurizer.crop=300) is larger than \
             featurizer.resize = 256 (the default): the center crop must fit in the resized image"
        );
        assert_eq!(
            load_error(
                Path::new("none.toml"),
                &sets(&["cleaner.val_fraction=0.5", "cleaner.test_fraction=0.5"])
            ),
            "cleaner.val_fraction = 0.5 (from --set cleaner.val_fraction=0.5) and \
             cleaner.test_fraction = 0.5 (from --set cleaner.test_fraction=0.5) leave no images \
             for train: their sum must be below 1"
        );
        let devices = Override::list_flag(
            "--devices",
            "trainer.devices",
            Some(&vec!["cuda:0".into(), "cuda:1".into()]),
        );
        assert_eq!(
            load_error(Path::new("none.toml"), &[devices.unwrap()]),
            "trainer.devices names cuda:0 (from --devices cuda:0,cuda:1), but trainer.device = \
             \"cpu\" (the default): set trainer.device = \"cuda\" as well, or list cpu devices \
             only"
        );
    }

    #[test]
    fn devices_are_cpu_cuda_or_cuda_with_an_index() {
        let slot = |text: &str| text.parse::<DeviceSlot>();
        let cuda = |index| DeviceSlot {
            kind: Device::Cuda,
            index,
        };
        assert_eq!(
            slot("cpu"),
            Ok(DeviceSlot {
                kind: Device::Cpu,
                index: 0
            })
        );
        assert_eq!(slot("cuda"), Ok(cuda(0)));
        assert_eq!(slot("cuda:3"), Ok(cuda(3)));
        for bad in ["cpu:1", "cuda:", "cuda:-1", "gpu", ""] {
            assert_eq!(
                slot(bad),
                Err(format!(
                    "device {bad:?}: expected \"cpu\", \"cuda\" or \"cuda:N\""
                ))
            );
        }
        let config = PipelineConfig::load(
            Path::new("none.toml"),
            &sets(&["trainer.devices=[\"cpu\", \"cpu\"]"]),
            true,
        )
        .unwrap();
        assert_eq!(config.trainer.replicas().len(), 2);
        assert_eq!(
            PipelineConfig::default().trainer.replicas(),
            [DeviceSlot {
                kind: Device::Cpu,
                index: 0
            }]
        );
        assert_eq!(cuda(1).to_string(), "cuda:1");
    }

    #[test]
    fn sections_print_as_json_and_unknown_sections_are_refused() {
        let config =
            PipelineConfig::load(Path::new("none.toml"), &sets(&["trainer.epochs=3"]), true)
                .unwrap();
        let json: serde_json::Value =
            serde_json::from_str(&config.sections_json("trainer,model").unwrap()).unwrap();
        assert_eq!(json["trainer"]["epochs"], 3);
        assert_eq!(json["trainer"]["val_metric"], "bleu4");
        assert_eq!(json["model"]["hidden_dim"], 512);
        assert!(json.get("paths").is_none());
        assert!(config.sections_json("nope").is_err());
    }

    #[test]
    fn missing_explicit_file_is_an_error() {
        assert_eq!(
            load_error(Path::new("/nonexistent/p.toml"), &[]),
            "/nonexistent/p.toml: No such file or directory (os error 2)"
        );
    }
}
