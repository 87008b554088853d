//! The sections of `pipeline.toml`, one struct each, with their built-in defaults.

use std::path::PathBuf;

use serde::{Deserialize, Serialize};

use super::choices::{DecoderKind, Device, DeviceSlot, ScstBaseline, SynthScene, ValMetric};
use crate::tables::Split;

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
