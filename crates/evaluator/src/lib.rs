//! The evaluator stage: captions the test split with the trained model, scores the captions
//! with the coco-caption metrics (METEOR when `make meteor-data` has run), and writes
//! `eval/predictions.parquet`, `eval/metrics.json` and `eval/report.html`. `evaluator score`
//! scores any captions against any references.

pub mod decode;
pub mod report;
pub mod score;

use std::collections::BTreeMap;
use std::path::{Path, PathBuf};

use anyhow::{Result, bail};
use burn::tensor::backend::Backend;
use contracts::artifacts::{BEST_CHECKPOINT, CAPTIONS_FILE, FEATURES_DIR};
use contracts::atomic::write_atomically;
use contracts::config::EvaluatorConfig;
use contracts::grid::{GridShape, GridStore};
use contracts::provenance::content_hash;
use contracts::tables::{
    AttentionRow, AttentionTable, CaptionsTable, PredictionRow, PredictionsTable, read, write,
};
use contracts::{FeatureSet, Provenance, Stage, WorkDir};
use decoder::{BeamConfig, load_captioner};
use models::backend::BackendTask;

use crate::report::{Report, best_and_worst};
use crate::score::{Captions, MetricsReport};

/// Runs the evaluation on backend `B`.
pub struct Evaluate {
    pub work_dir: PathBuf,
    pub config: EvaluatorConfig,
}

impl BackendTask for Evaluate {
    type Output = Result<MetricsReport>;

    fn run<B: Backend>(self, device: B::Device) -> Result<MetricsReport> {
        evaluate::<B>(&self.work_dir, &self.config, &device)
    }
}

fn evaluate<B: Backend>(
    work_dir: &Path,
    config: &EvaluatorConfig,
    device: &B::Device,
) -> Result<MetricsReport> {
    let _lock = contracts::lock::lock_work_dir(work_dir, "evaluator")?;
    let split = config.split;
    // Before the long part: a corrupt METEOR data folder stops here.
    let meteor = score::load_meteor(&config.meteor_data)?;
    let work = WorkDir::new(work_dir);
    let trained = load_captioner::<B>(&work, device)?;
    let model_kind = trained.info.model.kind();
    let captions_path = work.captions();
    let (captions, captions_provenance) = read::<CaptionsTable>(&captions_path)?;
    let mut references: Captions = BTreeMap::new();
    let mut raw_references: Captions = BTreeMap::new();
    for row in captions.into_iter().filter(|r| r.split == split) {
        references
            .entry(row.image.clone())
            .or_default()
            .push(row.clean);
        raw_references.entry(row.image).or_default().push(row.raw);
    }
    if references.is_empty() {
        bail!("{}: the {split} split is empty", captions_path.display());
    }
    let images: Vec<String> = references.keys().cloned().collect();
    let features_dir = work.features();
    let features = FeatureSet::read(&features_dir, |image| references.contains_key(image))?
        .select(&features_dir, &images)?;

    let beam = BeamConfig::from_config(config);
    let decoder_name = if beam.beam_size == 1 {
        "greedy".to_string()
    } else {
        format!("beam{}", beam.beam_size)
    };
    let progress = indicatif::ProgressBar::new(images.len() as u64).with_style(
        indicatif::ProgressStyle::with_template(
            "captioning {bar:40} {pos}/{len} images  {per_sec}  eta {eta}",
        )
        .expect("valid template"),
    );
    let grid = model_kind
        .needs_grid()
        .then(|| GridStore::build(&work.grid(), &images, work.root()))
        .transpose()?;
    let decoded =
        decode::caption_all(&trained, &features, grid.as_ref(), &beam, device, &progress)?;
    progress.finish_and_clear();

    let rows: Vec<PredictionRow> = images
        .iter()
        .zip(&decoded)
        .map(|(image, decoded)| PredictionRow {
            image: image.clone(),
            split,
            caption: decoded.caption.clone(),
            log_prob: decoded.log_prob,
            decoder: decoder_name.clone(),
        })
        .collect();
    let attention: BTreeMap<String, Vec<(String, Vec<f32>)>> = images
        .iter()
        .zip(&decoded)
        .filter(|(_, d)| !d.attention.is_empty())
        .map(|(image, d)| (image.clone(), d.attention.clone()))
        .collect();
    let checkpoint = work.model().best();
    let model_hash = content_hash(&checkpoint)?;
    let provenance = Provenance::new(Stage::Evaluator, config)
        .with_input(BEST_CHECKPOINT, &checkpoint)?
        .with_input(CAPTIONS_FILE, &captions_path)?
        .with_input(FEATURES_DIR, &features_dir)?;
    write::<PredictionsTable>(&work.predictions(), &rows, &provenance)?;
    let grid_shape = grid.as_ref().map(GridStore::shape);
    write_attention(&work, &attention, grid_shape, &provenance)?;

    let predictions: Captions = rows
        .iter()
        .map(|r| (r.image.clone(), vec![r.caption.clone()]))
        .collect();
    let (mut metrics, _) = score::score(&predictions, &references, meteor.as_ref())?;
    metrics
        .context
        .insert("split".into(), split.as_str().into());
    metrics
        .context
        .insert("model".into(), model_kind.name().into());
    metrics
        .context
        .insert("decoder".into(), decoder_name.clone().into());
    metrics
        .context
        .insert("model_hash".into(), model_hash.into());
    write_atomically(
        &work.metrics_json(),
        serde_json::to_string_pretty(&metrics)?.as_bytes(),
    )?;

    let first: BTreeMap<String, String> = rows
        .iter()
        .map(|r| (r.image.clone(), r.caption.clone()))
        .collect();
    let (best, worst) = best_and_worst(&metrics, &first, &raw_references, config.gallery_size);
    let report = Report {
        title: format!("ImageCaptioning: {split} split, {model_kind} model, {decoder_name}"),
        metrics: &metrics,
        loss_svg: std::fs::read_to_string(work.model().loss_svg()).ok(),
        best,
        worst,
        image_dir: captions_provenance.as_ref().and_then(Provenance::image_dir),
        attention: grid_shape
            .zip(trained.info.model.attention_maps())
            .map(|(shape, what)| report::Attention {
                grid: (shape.height, shape.width),
                words: attention,
                crop: trained.encoder().map(|e| (e.resize, e.crop)),
                what,
            }),
    };
    write_atomically(&work.report_html(), report.to_html().as_bytes())?;
    Ok(metrics)
}

/// `eval/attention.parquet` for a model with attention; an old one is removed otherwise, so
/// the file never describes another model.
fn write_attention(
    work: &WorkDir,
    attention: &BTreeMap<String, Vec<(String, Vec<f32>)>>,
    shape: Option<GridShape>,
    provenance: &Provenance,
) -> Result<()> {
    let path = work.attention();
    let Some(shape) = shape else {
        let _ = std::fs::remove_file(&path);
        return Ok(());
    };
    let rows: Vec<AttentionRow> = attention
        .iter()
        .flat_map(|(image, words)| {
            words
                .iter()
                .enumerate()
                .map(move |(position, (word, weights))| AttentionRow {
                    image: image.clone(),
                    position: position as u32,
                    word: word.clone(),
                    weights: weights.clone(),
                })
        })
        .collect();
    let mut provenance = provenance.clone();
    provenance.config = serde_json::json!({
        "evaluator": provenance.config,
        "grid_height": shape.height,
        "grid_width": shape.width,
    });
    write::<AttentionTable>(&path, &rows, &provenance)?;
    Ok(())
}
