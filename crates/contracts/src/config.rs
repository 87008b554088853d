//! `pipeline.toml`: every path and hyperparameter of the pipeline, one section per stage.
//!
//! The file is read as a TOML table, `--set section.key=value` overrides are applied to that
//! table, and only then is it turned into [`PipelineConfig`]: so an override is checked exactly
//! like a key in the file, and an unknown key is an error that names it.

use std::path::{Path, PathBuf};

use serde::{Deserialize, Serialize};

use crate::error::ContractError;

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
}

impl Default for SynthConfig {
    fn default() -> Self {
        Self {
            images: 1500,
            seed: 7,
            image_size: 256,
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
    pub device: String,
}

impl Default for FeaturizerConfig {
    fn default() -> Self {
        Self {
            batch_size: 16,
            resize: 256,
            crop: 224,
            part_rows: 512,
            seed: 0,
            device: "cpu".into(),
        }
    }
}

/// The caption decoder's architecture, shared by trainer, evaluator and `caption`.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(default, deny_unknown_fields)]
pub struct ModelConfig {
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
}

impl Default for ModelConfig {
    fn default() -> Self {
        Self {
            embed_dim: 256,
            hidden_dim: 512,
            dropout: 0.5,
            merge: true,
            standardize: true,
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
    pub val_metric: String,
    /// Seed of initialisation, dropout and shuffling.
    pub seed: u64,
    /// `cpu`, or `cuda` on a build with the `cuda` feature.
    pub device: String,
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
            val_metric: "bleu4".into(),
            seed: 42,
            device: "cpu".into(),
        }
    }
}

/// Decoding and scoring (`evaluator`, `caption`).
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(default, deny_unknown_fields)]
pub struct EvaluatorConfig {
    /// Split to decode and score.
    pub split: String,
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
    pub device: String,
    /// METEOR's data folder (`make meteor-data`); without it METEOR is left out, with a warning.
    pub meteor_data: PathBuf,
}

impl Default for EvaluatorConfig {
    fn default() -> Self {
        Self {
            split: "test".into(),
            beam_size: 3,
            max_len: 20,
            length_alpha: 0.0,
            suppress_unk: true,
            gallery_size: 12,
            device: "cpu".into(),
            meteor_data: "data/meteor".into(),
        }
    }
}

impl PipelineConfig {
    /// Reads `path` and applies `overrides` (`section.key=value`, value in TOML syntax; a bare
    /// word is taken as a string). A missing default config file is not an error when
    /// `path_is_default` is true: the built-in defaults apply.
    pub fn load(
        path: &Path,
        overrides: &[String],
        path_is_default: bool,
    ) -> Result<Self, ContractError> {
        let config_error = |message: String| ContractError::Config {
            file: path.to_path_buf(),
            message,
        };
        let text = match std::fs::read_to_string(path) {
            Ok(text) => text,
            Err(e) if e.kind() == std::io::ErrorKind::NotFound && path_is_default => String::new(),
            Err(source) => {
                return Err(ContractError::Io {
                    path: path.to_path_buf(),
                    source,
                });
            }
        };
        // Parsing the file's own text first gives errors with its real line numbers.
        let config: Self = toml::from_str(&text).map_err(|e| config_error(e.to_string()))?;
        if overrides.is_empty() {
            return Ok(config);
        }
        let mut table: toml::Table = text
            .parse()
            .map_err(|e: toml::de::Error| config_error(e.to_string()))?;
        for item in overrides {
            apply_override(&mut table, item)?;
        }
        let merged = toml::to_string(&table).map_err(|e| config_error(e.to_string()))?;
        toml::from_str(&merged).map_err(|e| {
            config_error(format!(
                "after applying --set {}: {e}",
                overrides.join(" --set ")
            ))
        })
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

/// Sets `section.key` in `table` from `section.key=value`.
fn apply_override(table: &mut toml::Table, item: &str) -> Result<(), ContractError> {
    let bad = |why: &str| ContractError::Override {
        item: item.to_string(),
        message: why.to_string(),
    };
    let (key, value) = item
        .split_once('=')
        .ok_or_else(|| bad("expected section.key=value"))?;
    let (section, field) = key
        .trim()
        .split_once('.')
        .ok_or_else(|| bad("the key needs a section, e.g. trainer.epochs"))?;
    let value = parse_value(value.trim());
    let entry = table
        .entry(section.to_string())
        .or_insert_with(|| toml::Value::Table(toml::Table::new()));
    let toml::Value::Table(section_table) = entry else {
        return Err(bad("that section is not a table"));
    };
    section_table.insert(field.to_string(), value);
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

    #[test]
    fn overrides_win_over_the_file() {
        let file = write("[trainer]\nepochs = 3\nseed = 1\n");
        let overrides = vec![
            "trainer.epochs=15".to_string(),
            "paths.weights=random".to_string(),
        ];
        let config = PipelineConfig::load(file.path(), &overrides, false).unwrap();
        assert_eq!(config.trainer.epochs, 15);
        assert_eq!(config.trainer.seed, 1);
        assert_eq!(config.paths.weights, "random");
        assert_eq!(config.model, ModelConfig::default());
    }

    #[test]
    fn unknown_key_in_file_is_named() {
        let file = write("[trainer]\nepoch = 3\n");
        let err = PipelineConfig::load(file.path(), &[], false)
            .unwrap_err()
            .to_string();
        assert!(err.contains("epoch"), "{err}");
        assert!(err.contains(&file.path().display().to_string()), "{err}");
    }

    #[test]
    fn unknown_key_in_override_is_named() {
        let file = write("");
        let err = PipelineConfig::load(file.path(), &["trainer.epohcs=2".into()], false)
            .unwrap_err()
            .to_string();
        assert!(err.contains("epohcs"), "{err}");
    }

    #[test]
    fn override_without_section_is_refused() {
        let err = PipelineConfig::load(Path::new("none.toml"), &["epochs=2".into()], true)
            .unwrap_err()
            .to_string();
        assert!(err.contains("epochs=2"), "{err}");
    }

    #[test]
    fn wrong_type_is_an_error() {
        let err = PipelineConfig::load(
            Path::new("none.toml"),
            &["trainer.epochs=many".into()],
            true,
        )
        .unwrap_err()
        .to_string();
        assert!(err.contains("epochs"), "{err}");
    }

    #[test]
    fn sections_print_as_json_and_unknown_sections_are_refused() {
        let config =
            PipelineConfig::load(Path::new("none.toml"), &["trainer.epochs=3".into()], true)
                .unwrap();
        let json: serde_json::Value =
            serde_json::from_str(&config.sections_json("trainer,model").unwrap()).unwrap();
        assert_eq!(json["trainer"]["epochs"], 3);
        assert_eq!(json["model"]["hidden_dim"], 512);
        assert!(json.get("paths").is_none());
        assert!(config.sections_json("nope").is_err());
    }

    #[test]
    fn missing_explicit_file_is_an_error() {
        assert!(PipelineConfig::load(Path::new("/nonexistent/p.toml"), &[], false).is_err());
    }
}
