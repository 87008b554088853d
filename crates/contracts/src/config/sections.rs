//! The sections of `pipeline.toml`, each declared once with [`section!`]: every key's type,
//! built-in default, allowed values and doc on one line under its doc comment.
//!
//! A model's own keys live in its table under `[model]` (`[model.merge]`,
//! `[model.attention]`); the keys every decoder shares stay in `[model]`.

use std::path::PathBuf;

use super::choices::{
    DecoderKind, Device, DeviceSlot, LrSchedule, ScstBaseline, SynthScene, ValMetric,
};
use super::settings::{Allowed, section};
use crate::tables::Split;

/// Any seed a `u64` holds that TOML's integers can write.
const ANY_SEED: Allowed = Allowed::int(0, i64::MAX);
/// Where a stage runs.
const DEVICES: Allowed = Allowed::Choice(Device::NAMES);
/// A layer or embedding width.
const WIDTH: Allowed = Allowed::int(1, 65_536);

section! {
    /// Where inputs are read and outputs written.
    pub struct Paths = "paths" {
        /// The raw dataset: any layout the cleaner detects (Flickr8k, Kaggle, Karpathy,
        /// synthetic).
        dataset_dir: PathBuf = "data/flickr8k".into(), Allowed::Text;
        /// Every stage output (Parquet files, model, evaluation) goes under this directory.
        work_dir: PathBuf = "data/work".into(), Allowed::Text;
        /// ResNet50 weights: a torchvision `.pth` or `.safetensors` file, or `random` (demo
        /// only).
        weights: String = "data/weights/resnet50-0676ba61.pth".into(), Allowed::Text;
        /// Folder with the official Flickr8k split lists, used when a dataset has none.
        splits_dir: PathBuf = "data/splits".into(), Allowed::Text;
    }
}

section! {
    /// The synthetic shapes dataset (`synth`).
    pub struct SynthConfig = "synth" {
        /// Number of images to generate.
        images: usize = 1500, Allowed::int(1, 1_000_000);
        /// Seed of everything random in the dataset.
        seed: u64 = 7, ANY_SEED;
        /// Side of the square PNG images, in pixels.
        image_size: u32 = 256, Allowed::int(32, 4096);
        /// What each image shows.
        scene: SynthScene = SynthScene::Mixed, Allowed::Choice(SynthScene::NAMES);
    }
}

section! {
    /// Caption cleaning and split assignment (`cleaner`).
    pub struct CleanerConfig = "cleaner" {
        /// Seed of the 80/10/10 split used when a dataset has no split of its own.
        seed: u64 = 42, ANY_SEED;
        /// Fraction of images in the val split of a seeded split.
        val_fraction: f64 = 0.1, Allowed::below(0.0, 1.0);
        /// Fraction of images in the test split of a seeded split.
        test_fraction: f64 = 0.1, Allowed::below(0.0, 1.0);
    }
}

section! {
    /// Vocabulary and token ids (`tokenizer`).
    pub struct TokenizerConfig = "tokenizer" {
        /// A train-split word seen at least this many times is in the vocabulary.
        min_count: u64 = 5, Allowed::int(1, i64::MAX);
        /// Longest caption in words; longer ones are truncated (and counted).
        max_len: usize = 32, Allowed::int(1, 1000);
    }
}

section! {
    /// ResNet50 feature extraction (`featurizer`).
    pub struct FeaturizerConfig = "featurizer" {
        /// Images per network call.
        batch_size: usize = 16, Allowed::int(1, 1024);
        /// Shorter side after resizing: 256 for IMAGENET1K_V1 weights, 232 for V2.
        resize: u32 = 256, Allowed::int(32, 4096);
        /// Side of the center crop fed to the network.
        crop: u32 = 224, Allowed::int(32, 4096);
        /// Rows per `features/part-NNNNN.parquet` file (the unit of resume and sharding).
        part_rows: usize = 512, Allowed::int(1, 1_000_000);
        /// Seed of the `random` weights.
        seed: u64 = 0, ANY_SEED;
        /// `cpu`, or `cuda` on a build with the `cuda` feature.
        device: Device = Device::Cpu, DEVICES;
    }
}

section! {
    /// The caption decoder's architecture, shared by trainer, evaluator and `caption`: the
    /// keys every decoder reads, then each model's own table.
    pub struct ModelConfig = "model" {
        /// Which caption model: `merge` (the seed's CNN-RNN), `attention` (soft attention
        /// over the ResNet50 grid) or `transformer` (a Transformer over the grid).
        decoder: DecoderKind = DecoderKind::Merge, Allowed::Choice(DecoderKind::NAMES);
        /// The LSTM decoders' word (and projected image) embedding size.
        embed_dim: usize = 256, WIDTH;
        /// The LSTM decoders' hidden size.
        hidden_dim: usize = 512, WIDTH;
        /// The LSTM decoders' dropout, after the image projection and before the output layer.
        dropout: f64 = 0.5, Allowed::below(0.0, 1.0);
        /// Z-score image features with the train split's mean and standard deviation.
        standardize: bool = true, Allowed::Bool;
        table merge: MergeSettings;
        table attention: AttentionSettings;
        table transformer: TransformerSettings;
    }
}

section! {
    /// The merge model's own keys.
    pub struct MergeSettings = "model.merge" {
        /// Join the image embedding with the LSTM output before the vocabulary layer (false:
        /// the image is only the LSTM's first input).
        join_image: bool = true, Allowed::Bool;
    }
}

section! {
    /// The attention model's own keys.
    pub struct AttentionSettings = "model.attention" {
        /// Size of the additive attention (the grid's and the state's projections).
        dim: usize = 256, WIDTH;
        /// Weight of the doubly stochastic regularisation in cross-entropy training.
        doubly_stochastic: f64 = 1.0, Allowed::closed(0.0, 1000.0);
    }
}

section! {
    /// The Transformer's own keys (ruotianluo's ImageCaptioning.pytorch sizes, with fewer
    /// layers: see the README).
    pub struct TransformerSettings = "model.transformer" {
        /// Width of every layer: the projected regions, the word embeddings, the attention.
        d_model: usize = 512, WIDTH;
        /// Attention heads; `d_model` must be a multiple.
        heads: usize = 8, Allowed::int(1, 1024);
        /// Width of each layer's feed-forward block.
        feed_forward: usize = 2048, WIDTH;
        /// Self-attention layers over the grid's regions.
        encoder_layers: usize = 2, Allowed::int(1, 64);
        /// Decoder layers (masked self-attention, cross-attention, feed-forward).
        decoder_layers: usize = 2, Allowed::int(1, 64);
        /// Dropout on the embeddings, on the attention weights and on every sublayer's output.
        dropout: f64 = 0.1, Allowed::below(0.0, 1.0);
    }
}

section! {
    /// Training (`trainer`).
    pub struct TrainerConfig = "trainer" {
        /// Cross-entropy epochs, at most (early stopping may end them sooner).
        epochs: usize = 20, Allowed::int(1, 100_000);
        /// Captions per optimizer step.
        batch_size: usize = 64, Allowed::int(1, 65_536);
        /// Adam's learning rate in the cross-entropy epochs.
        learning_rate: f64 = 1e-3, Allowed::above(0.0, 1.0);
        /// Adam's epsilon (PyTorch's default; burn's own default is 1e-5).
        adam_epsilon: f64 = 1e-8, Allowed::above(0.0, 1.0);
        /// Gradients are rescaled to at most this global L2 norm (0: no clipping).
        clip_norm: f64 = 5.0, Allowed::closed(0.0, 1e9);
        /// `auto` (the model's own), `plateau` or `warmup`.
        lr_schedule: LrSchedule = LrSchedule::Auto, Allowed::Choice(LrSchedule::NAMES);
        /// Optimizer steps of the `warmup` schedule's linear rise to `learning_rate`.
        warmup_steps: usize = 400, Allowed::int(1, 10_000_000);
        /// With `plateau`, the learning rate is multiplied by this when validation stops
        /// improving...
        lr_decay: f64 = 0.5, Allowed::above(0.0, 1.0);
        /// ...for this many epochs (0: never).
        lr_patience: usize = 2, Allowed::int(0, 100_000);
        /// Stop after this many epochs without improvement of the validation metric (0:
        /// never).
        patience: usize = 5, Allowed::int(0, 100_000);
        /// Validation metric for early stopping: `bleu4` or `loss`.
        val_metric: ValMetric = ValMetric::Bleu4, Allowed::Choice(ValMetric::NAMES);
        /// Seed of initialisation, dropout and shuffling.
        seed: u64 = 42, ANY_SEED;
        /// `cpu`, or `cuda` on a build with the `cuda` feature.
        device: Device = Device::Cpu, DEVICES;
        /// Data-parallel training: the devices of `device`'s kind that each take a slice of
        /// every batch (`["cuda:0", "cuda:1"]`); empty, the default, is `device` alone.
        devices: Vec<DeviceSlot> = Vec::new(), Allowed::Devices;
        /// Self-critical epochs after the cross-entropy ones, from the best cross-entropy
        /// checkpoint (0: none).
        scst_epochs: usize = 0, Allowed::int(0, 100_000);
        /// Captions sampled per image in a self-critical step.
        scst_samples: usize = 5, Allowed::int(2, 100);
        /// What a sample's CIDEr-D reward is compared with.
        scst_baseline: ScstBaseline = ScstBaseline::Mean, Allowed::Choice(ScstBaseline::NAMES);
        /// Adam's learning rate during self-critical training.
        scst_learning_rate: f64 = 5e-5, Allowed::above(0.0, 1.0);
    }
}

section! {
    /// Decoding and scoring (`evaluator`, `caption`).
    pub struct EvaluatorConfig = "evaluator" {
        /// Split to decode and score.
        split: Split = Split::Test, Allowed::Choice(Split::NAMES);
        /// Beam width; 1 is greedy decoding.
        beam_size: usize = 3, Allowed::int(1, 100);
        /// Longest generated caption, in words.
        max_len: usize = 20, Allowed::int(1, 255);
        /// Hypotheses are ranked by log-probability / length^alpha (0: no normalisation).
        length_alpha: f64 = 0.0, Allowed::closed(0.0, 10.0);
        /// Never generate `<unk>`.
        suppress_unk: bool = true, Allowed::Bool;
        /// Images shown in each of the best and worst galleries of the report.
        gallery_size: usize = 12, Allowed::int(0, 1000);
        /// `cpu`, or `cuda` on a build with the `cuda` feature.
        device: Device = Device::Cpu, DEVICES;
        /// METEOR's data folder (`make meteor-data`); without it METEOR is left out, with a
        /// warning.
        meteor_data: PathBuf = "data/meteor".into(), Allowed::Text;
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
