//! `caption`: new photos in, captions out, end to end: the featurizer's network and
//! preprocessing (the same weights and settings the model's features were made with) and the
//! trained decoder.

use std::path::{Path, PathBuf};

use anyhow::{Context, Result, bail};
use burn::tensor::backend::Backend;
use burn::tensor::{Tensor, TensorData};
use contracts::config::PipelineConfig;
use contracts::provenance::content_hash;
use contracts::tables::{FEATURES_DIR, VOCAB_FILE, read_vocab};
use decoder::{BeamConfig, beam_search, load_trained};
use models::backend::BackendTask;
use models::image_files::find_images;
use models::preprocess::Preprocess;
use models::resnet::{ResNetConfig, WeightsSource, load_resnet};
use rayon::prelude::*;

/// One captioned image.
#[derive(Debug, Clone, serde::Serialize)]
pub struct Captioned {
    pub image: String,
    pub caption: String,
    pub log_prob: f32,
}

/// An image that could not be captioned, and why.
#[derive(Debug, Clone)]
pub struct Failed {
    pub image: String,
    pub reason: String,
}

/// The network settings the features were made with, as the featurizer recorded them in
/// `features/_SUCCESS`; the config's when that record is missing.
#[derive(Debug, Clone, PartialEq)]
pub struct NetworkSettings {
    pub weights: WeightsSource,
    pub preprocess: Preprocess,
}

impl NetworkSettings {
    pub fn resolve(config: &PipelineConfig, weights_override: Option<&str>) -> Result<Self> {
        let marker = config.paths.work_dir.join(FEATURES_DIR).join("_SUCCESS");
        let settings = match std::fs::read_to_string(&marker) {
            Ok(text) => Some(
                serde_json::from_str::<serde_json::Value>(&text)
                    .with_context(|| format!("reading {}", marker.display()))?,
            ),
            Err(_) => {
                tracing::warn!(
                    "{} is missing: using the featurizer settings of the config",
                    marker.display()
                );
                None
            }
        };
        let number = |key: &str| settings.as_ref().and_then(|s| s[key].as_u64());
        let preprocess = Preprocess::new(
            number("resize").map_or(config.featurizer.resize, |v| v as u32),
            number("crop").map_or(config.featurizer.crop, |v| v as u32),
        );
        let recorded = settings.as_ref().map(|s| &s["weights"]);
        let weights = match (weights_override, recorded) {
            (Some(text), _) => WeightsSource::parse(text, config.featurizer.seed),
            (None, Some(w)) if w["random_seed"].is_u64() => WeightsSource::Random {
                seed: w["random_seed"].as_u64().unwrap_or_default(),
            },
            (None, Some(w)) => {
                let path = PathBuf::from(
                    w["file"]
                        .as_str()
                        .context("features/_SUCCESS names no weights file")?,
                );
                let expected = w["sha256"].as_str().unwrap_or_default();
                if content_hash(&path)? != expected {
                    bail!(
                        "{} is not the weights file the training features were made with (SHA-256 differs); pass --weights",
                        path.display()
                    );
                }
                WeightsSource::File(path)
            }
            (None, None) => WeightsSource::parse(&config.paths.weights, config.featurizer.seed),
        };
        Ok(Self {
            weights,
            preprocess,
        })
    }
}

/// The image files named on the command line: files as given, folders searched recursively.
pub fn collect_images(inputs: &[PathBuf]) -> Result<Vec<PathBuf>> {
    let mut images = Vec::new();
    for input in inputs {
        if input.is_dir() {
            images.extend(
                find_images(input).with_context(|| format!("listing {}", input.display()))?,
            );
        } else {
            images.push(input.clone());
        }
    }
    if images.is_empty() {
        bail!("no images to caption");
    }
    Ok(images)
}

/// Captions images on backend `B`.
pub struct CaptionImages {
    pub work_dir: PathBuf,
    pub images: Vec<PathBuf>,
    pub network: NetworkSettings,
    pub beam: BeamConfig,
    pub batch_size: usize,
}

impl BackendTask for CaptionImages {
    type Output = Result<(Vec<Captioned>, Vec<Failed>)>;

    fn run<B: Backend>(self, device: B::Device) -> Self::Output {
        let (model, info) = load_trained::<B>(&self.work_dir.join("model"), &device)?;
        let vocab_path = self.work_dir.join(VOCAB_FILE);
        if info.vocab_hash != content_hash(&vocab_path)? {
            bail!(
                "the model was trained with another vocabulary than {}; rerun the trainer (`make model`)",
                vocab_path.display()
            );
        }
        let vocab: Vec<String> = read_vocab(&vocab_path)?
            .0
            .into_iter()
            .map(|r| r.token)
            .collect();
        let network = load_resnet::<B>(&ResNetConfig::resnet50(), &self.network.weights, &device)?;
        let preprocess = self.network.preprocess;
        let side = preprocess.crop as usize;
        let (mut done, mut failed) = (Vec::new(), Vec::new());
        for chunk in self.images.chunks(self.batch_size.max(1)) {
            let loaded: Vec<_> = chunk.par_iter().map(|path| preprocess.load(path)).collect();
            let mut pixels = Vec::new();
            let mut names = Vec::new();
            for (path, result) in chunk.iter().zip(loaded) {
                match result {
                    Ok(p) => {
                        pixels.extend_from_slice(&p);
                        names.push(display(path));
                    }
                    Err(e) => failed.push(Failed {
                        image: display(path),
                        reason: e.reason.to_string(),
                    }),
                }
            }
            if names.is_empty() {
                continue;
            }
            let input = Tensor::<B, 4>::from_data(
                TensorData::new(pixels, [names.len(), 3, side, side]),
                &device,
            );
            let features = network.forward(input);
            for (image, hypothesis) in names
                .into_iter()
                .zip(beam_search(&model, features, &self.beam))
            {
                let words: Vec<&str> = hypothesis
                    .tokens
                    .iter()
                    .filter_map(|&t| vocab.get(t as usize).map(String::as_str))
                    .collect();
                done.push(Captioned {
                    image,
                    caption: words.join(" "),
                    log_prob: hypothesis.log_prob,
                });
            }
        }
        Ok((done, failed))
    }
}

fn display(path: &Path) -> String {
    path.display().to_string()
}
