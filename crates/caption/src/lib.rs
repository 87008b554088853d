//! `caption`: new photos in, captions out, end to end: the featurizer's network and
//! preprocessing (the same weights and settings the model's features were made with) and the
//! trained decoder.

use std::path::{Path, PathBuf};

use anyhow::{Context, Result, bail};
use burn::tensor::backend::Backend;
use burn::tensor::{Tensor, TensorData};
use contracts::config::PipelineConfig;
use contracts::provenance::content_hash;
use contracts::{EncoderSettings, WeightsSpec, WorkDir};
use decoder::{BeamConfig, Images, beam_search, load_captioner};
use models::attention_map::{self, AttendedWord};
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
    /// For a model with attention, each word's weights over the grid (row-major, 49 for
    /// ResNet50's 7x7); left out of the JSON otherwise.
    #[serde(skip_serializing_if = "Vec::is_empty")]
    pub attention: Vec<Vec<f32>>,
}

/// An image that could not be captioned, and why.
#[derive(Debug, Clone)]
pub struct Failed {
    pub image: String,
    pub reason: String,
}

/// The network settings the training features were made with, as the trained model
/// records them; the config's for a model trained on features another tool made.
#[derive(Debug, Clone, PartialEq)]
pub struct NetworkSettings {
    pub weights: WeightsSource,
    pub preprocess: Preprocess,
}

impl NetworkSettings {
    /// `--weights` (`weights_override`) wins over the recorded weights; a recorded weights
    /// file must still have the SHA-256 it had.
    pub fn resolve(
        recorded: Option<&EncoderSettings>,
        config: &PipelineConfig,
        weights_override: Option<&str>,
    ) -> Result<Self> {
        let Some(recorded) = recorded else {
            tracing::warn!(
                "the model records no encoder settings (its features were made by another tool): \
                 using the featurizer settings of the config"
            );
            let weights = weights_override.unwrap_or(&config.paths.weights);
            return Ok(Self {
                weights: WeightsSource::parse(weights, config.featurizer.seed),
                preprocess: Preprocess::new(config.featurizer.resize, config.featurizer.crop),
            });
        };
        let weights = match (weights_override, &recorded.weights) {
            (Some(text), _) => WeightsSource::parse(text, config.featurizer.seed),
            (None, WeightsSpec::Random { random_seed }) => {
                WeightsSource::Random { seed: *random_seed }
            }
            (None, WeightsSpec::File { file, sha256 }) => {
                let path = PathBuf::from(file);
                if content_hash(&path)? != *sha256 {
                    bail!(
                        "{} is not the weights file the training features were made with (SHA-256 differs); pass --weights",
                        path.display()
                    );
                }
                WeightsSource::File(path)
            }
        };
        Ok(Self {
            weights,
            preprocess: Preprocess::new(recorded.resize, recorded.crop),
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
pub struct CaptionImages<'a> {
    pub config: &'a PipelineConfig,
    pub images: Vec<PathBuf>,
    /// `--weights`, over the weights the model records.
    pub weights: Option<&'a str>,
    pub beam: BeamConfig,
    /// `--attention-dir`: where to write each image's attention figure.
    pub attention_dir: Option<PathBuf>,
}

impl BackendTask for CaptionImages<'_> {
    type Output = Result<(Vec<Captioned>, Vec<Failed>)>;

    fn run<B: Backend>(self, device: B::Device) -> Self::Output {
        let work = WorkDir::new(&self.config.paths.work_dir);
        let trained = load_captioner::<B>(&work, &device)?;
        let kind = trained.info.model.kind();
        if self.attention_dir.is_some() && trained.info.model.attention_maps().is_none() {
            bail!(
                "--attention-dir: this {kind} model has no attention; train one with \
                 `--set model.decoder=attention` or `transformer` to see where it looks"
            );
        }
        if let Some(dir) = &self.attention_dir {
            std::fs::create_dir_all(dir).with_context(|| format!("creating {}", dir.display()))?;
        }
        let settings = NetworkSettings::resolve(trained.encoder(), self.config, self.weights)?;
        let network = load_resnet::<B>(&ResNetConfig::resnet50(), &settings.weights, &device)?;
        let preprocess = settings.preprocess;
        let side = preprocess.crop as usize;
        let (mut done, mut failed) = (Vec::new(), Vec::new());
        for chunk in self.images.chunks(self.config.featurizer.batch_size.max(1)) {
            let loaded: Vec<_> = chunk.par_iter().map(|path| preprocess.load(path)).collect();
            let mut pixels = Vec::new();
            let mut names = Vec::new();
            let mut paths = Vec::new();
            for (path, result) in chunk.iter().zip(loaded) {
                match result {
                    Ok(p) => {
                        pixels.extend_from_slice(&p);
                        names.push(display(path));
                        paths.push(path.as_path());
                    }
                    Err(e) => failed.push(Failed {
                        image: display(path),
                        reason: e.reason_text(),
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
            let (images, grid) = if kind.needs_grid() {
                let (pooled, map) = network.forward_with_grid(input);
                let [_, _, height, width] = map.dims();
                (Images::from_network(pooled, map), Some((height, width)))
            } else {
                (Images::pooled(network.forward(input)), None)
            };
            for ((image, path), hypothesis) in
                names
                    .into_iter()
                    .zip(paths)
                    .zip(beam_search(&trained.model, &images, &self.beam))
            {
                if let (Some(dir), Some(grid)) = (&self.attention_dir, grid) {
                    let words = trained.vocab.words(&hypothesis.tokens)?;
                    let figure = dir.join(figure_name(path));
                    write_figure(
                        path,
                        &preprocess,
                        grid,
                        &words,
                        &hypothesis.attention,
                        &figure,
                    )?;
                }
                done.push(Captioned {
                    image,
                    caption: trained.vocab.caption(&hypothesis.tokens)?,
                    log_prob: hypothesis.log_prob,
                    attention: hypothesis.attention,
                });
            }
        }
        Ok((done, failed))
    }
}

/// `photo.jpg` -> `photo.png`.
fn figure_name(photo: &Path) -> String {
    let stem = photo.file_stem().unwrap_or_default().to_string_lossy();
    format!("{stem}.png")
}

/// Writes the attention figure of one photo: the network's view of it, and each word's map
/// over the `(height, width)` grid.
fn write_figure(
    photo: &Path,
    preprocess: &Preprocess,
    grid: (usize, usize),
    words: &[&str],
    attention: &[Vec<f32>],
    out: &Path,
) -> Result<()> {
    let view = preprocess.resize_and_crop(&models::preprocess::load_image(photo)?);
    let words: Vec<AttendedWord> = words
        .iter()
        .zip(attention)
        .map(|(word, weights)| AttendedWord {
            word: word.to_string(),
            weights: weights.clone(),
        })
        .collect();
    let figure = attention_map::render(&view, grid, &words)?;
    attention_map::save_png(&figure, out)?;
    tracing::info!("wrote {}", out.display());
    Ok(())
}

fn display(path: &Path) -> String {
    path.display().to_string()
}
