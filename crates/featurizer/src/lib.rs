//! The featurizer stage: images -> `features/part-NNNNN.parquet` (2048-d ResNet50 vectors).
//!
//! Decoding and resizing run on rayon threads one batch ahead of the network, through a
//! bounded channel, so memory stays bounded by the batch size whatever the dataset size.

pub mod images;
pub mod parts;

use std::path::PathBuf;
use std::sync::mpsc;
use std::time::{Duration, Instant};

use anyhow::{Context, Result, bail};
use burn::tensor::backend::Backend;
use burn::tensor::{Tensor, TensorData};
use contracts::tables::{CAPTIONS_FILE, FEATURE_DIM, FEATURES_DIR, Features, write_features};
use contracts::{Provenance, Stage};
use models::backend::BackendTask;
use models::preprocess::{ImageError, Preprocess};
use models::resnet::{ResNetConfig, WeightsSource, load_resnet};
use rayon::prelude::*;

use crate::images::ImageList;
use crate::parts::{Part, Shard};

/// Marks a complete `features/` dataset (every part present); the Makefile's target.
pub const SUCCESS_MARKER: &str = "_SUCCESS";

/// What the featurizer needs to know.
#[derive(Debug, Clone)]
pub struct Options {
    pub work_dir: PathBuf,
    pub images: Option<PathBuf>,
    pub weights: WeightsSource,
    pub preprocess: Preprocess,
    pub batch_size: usize,
    pub part_rows: usize,
    pub shard: Shard,
    /// Recompute parts made with other settings instead of refusing them.
    pub force: bool,
    /// Network structure; ResNet50 except in tests.
    pub network: ResNetConfig,
}

/// What a run did, for the summary and the exit code.
#[derive(Debug, Default)]
pub struct Summary {
    pub images: usize,
    pub featurized: usize,
    pub reused_parts: usize,
    pub written_parts: usize,
    pub missing_parts: usize,
    /// Images that could not be read: path and reason.
    pub skipped: Vec<(String, String)>,
    pub seconds: f64,
    /// Building the network and loading its weights.
    pub load: Duration,
    /// Time the network waited for decoded batches, ran, and spent writing parts.
    pub wait_decode: Duration,
    pub network: Duration,
    pub write: Duration,
}

/// Runs the featurizer on backend `B` (see [`models::backend::run_on`]).
pub struct Featurize(pub Options);

impl BackendTask for Featurize {
    type Output = Result<Summary>;

    fn run<B: Backend>(self, device: B::Device) -> Result<Summary> {
        featurize::<B>(&self.0, &device)
    }
}

/// The settings every part records; a resumed run must match them.
fn settings(options: &Options, list: &ImageList) -> Result<serde_json::Value> {
    let weights = match &options.weights {
        WeightsSource::Random { seed } => serde_json::json!({ "random_seed": seed }),
        WeightsSource::File(path) => serde_json::json!({
            "file": path.display().to_string(),
            "sha256": contracts::provenance::content_hash(path)?,
        }),
    };
    Ok(serde_json::json!({
        "weights": weights,
        "resize": options.preprocess.resize,
        "crop": options.preprocess.crop,
        "part_rows": options.part_rows,
        "images": list.names.len(),
        "images_sha256": list.fingerprint(),
    }))
}

fn featurize<B: Backend>(options: &Options, device: &B::Device) -> Result<Summary> {
    let started = Instant::now();
    let list = ImageList::resolve(&options.work_dir, options.images.as_deref())?;
    let features_dir = options.work_dir.join(FEATURES_DIR);
    std::fs::create_dir_all(&features_dir)
        .with_context(|| format!("creating {}", features_dir.display()))?;
    remove_stale_temp_files(&features_dir);
    let settings = settings(options, &list)?;
    let parts = parts::plan(&features_dir, list.names.len(), options.part_rows)?;
    let mut summary = Summary {
        images: list.names.len(),
        ..Summary::default()
    };

    let mut todo = Vec::new();
    for part in parts.iter().filter(|p| options.shard.owns(p.index)) {
        match existing_part(part, &settings, options.force)? {
            Some(skipped) => {
                summary.reused_parts += 1;
                summary.skipped.extend(skipped);
            }
            None => todo.push(part.clone()),
        }
    }
    if let WeightsSource::Random { seed } = options.weights {
        tracing::warn!(
            "using RANDOM ResNet50 weights (seed {seed}): features carry no ImageNet knowledge; \
             fine for the offline demo, not for real results (run `make weights`)"
        );
    }
    if !todo.is_empty() {
        let loading = Instant::now();
        let network = load_resnet::<B>(&options.network, &options.weights, device)?;
        summary.load = loading.elapsed();
        let provenance = base_provenance(&list, &settings)?;
        // The CPU path keeps both cores busy in every layer; burn's tensor operations do not.
        let halves = !network.uses_cpu_path();
        run_parts(
            options,
            &list,
            &todo,
            &provenance,
            device,
            (|images| network.forward(images), halves),
            &mut summary,
        )?;
    }
    summary.missing_parts = parts.iter().filter(|p| !p.path.is_file()).count();
    let marker = features_dir.join(SUCCESS_MARKER);
    if summary.missing_parts == 0 {
        std::fs::write(&marker, format!("{}\n", settings))
            .with_context(|| format!("writing {}", marker.display()))?;
    } else {
        let _ = std::fs::remove_file(&marker);
    }
    summary.seconds = started.elapsed().as_secs_f64();
    Ok(summary)
}

/// A killed run can leave the hidden temp file of the part it was writing; it is garbage.
fn remove_stale_temp_files(features_dir: &std::path::Path) {
    let Ok(entries) = std::fs::read_dir(features_dir) else {
        return;
    };
    for entry in entries.flatten() {
        let name = entry.file_name().to_string_lossy().into_owned();
        if name.starts_with(".part-") && name.ends_with(".tmp") {
            let _ = std::fs::remove_file(entry.path());
        }
    }
}

/// Provenance shared by every part of this run (each part adds the images it skipped).
fn base_provenance(list: &ImageList, settings: &serde_json::Value) -> Result<Provenance> {
    let provenance = Provenance::new(
        Stage::Featurizer,
        serde_json::json!({ "settings": settings }),
    );
    Ok(match &list.captions {
        Some(captions) => provenance.with_input(CAPTIONS_FILE, captions)?,
        None => provenance,
    })
}

/// `Some(skipped images)` when `part` is already done with the same settings; `None` when it
/// must be (re)computed. A part made with other settings is an error unless `force`.
fn existing_part(
    part: &Part,
    settings: &serde_json::Value,
    force: bool,
) -> Result<Option<Vec<(String, String)>>> {
    if !part.path.is_file() {
        return Ok(None);
    }
    let recorded = contracts::parquet_io::read_provenance(&part.path)?;
    let config = recorded.as_ref().map(|p| &p.config);
    if config.and_then(|c| c.get("settings")) == Some(settings) {
        let skipped = config
            .and_then(|c| c.get("skipped"))
            .and_then(|s| serde_json::from_value(s.clone()).ok())
            .unwrap_or_default();
        return Ok(Some(skipped));
    }
    if force {
        return Ok(None);
    }
    bail!(
        "{} was made with other settings (weights, preprocessing or image list) than this run; \
         delete the features directory or rerun with --force to recompute it",
        part.path.display()
    )
}

/// A part being filled: its slot in the to-do list, its rows, and the images it skipped.
struct OpenPart {
    slot: usize,
    features: Features,
    skipped: Vec<(String, String)>,
}

/// One decoded batch on its way from the decoding threads to the network.
struct Batch {
    part: usize,
    names: Vec<String>,
    pixels: Vec<Result<Vec<f32>, ImageError>>,
}

fn run_parts<B: Backend>(
    options: &Options,
    list: &ImageList,
    todo: &[Part],
    provenance: &Provenance,
    device: &B::Device,
    (forward, halves): (impl Fn(Tensor<B, 4>) -> Tensor<B, 2> + Sync, bool),
    summary: &mut Summary,
) -> Result<()> {
    let total: usize = todo.iter().map(|p| p.range.len()).sum();
    let progress = progress_bar(total as u64);
    let batch_size = options.batch_size.max(1);
    let preprocess = options.preprocess;
    let (sender, receiver) = mpsc::sync_channel::<Batch>(1);
    std::thread::scope(|scope| -> Result<()> {
        scope.spawn(move || {
            for (slot, part) in todo.iter().enumerate() {
                for chunk in list.names[part.range.clone()].chunks(batch_size) {
                    let pixels = chunk
                        .par_iter()
                        .map(|name| preprocess.load(&list.dir.join(name)))
                        .collect();
                    if sender
                        .send(Batch {
                            part: slot,
                            names: chunk.to_vec(),
                            pixels,
                        })
                        .is_err()
                    {
                        return;
                    }
                }
            }
        });
        let mut current: Option<OpenPart> = None;
        loop {
            let waited = Instant::now();
            let Ok(batch) = receiver.recv() else { break };
            summary.wait_decode += waited.elapsed();
            if current.as_ref().is_some_and(|open| open.slot != batch.part) {
                let open = current.take().expect("checked above");
                finish_part(&todo[open.slot], open, provenance, summary)?;
            }
            let batch_len = batch.names.len() as u64;
            let OpenPart {
                features, skipped, ..
            } = current.get_or_insert_with(|| OpenPart {
                slot: batch.part,
                features: Features::default(),
                skipped: Vec::new(),
            });
            let mut good = Vec::with_capacity(batch.names.len() * preprocess.tensor_len());
            let mut names = Vec::with_capacity(batch.names.len());
            for (name, pixels) in batch.names.into_iter().zip(batch.pixels) {
                match pixels {
                    Ok(pixels) => {
                        good.extend_from_slice(&pixels);
                        names.push(name);
                    }
                    Err(e) => {
                        progress.suspend(|| {
                            tracing::warn!("skipped {}: {}", e.path.display(), e.reason)
                        });
                        skipped.push((name, e.reason.to_string()));
                    }
                }
            }
            progress.inc(batch_len);
            if names.is_empty() {
                continue;
            }
            let ran = Instant::now();
            let output = run_network(
                &forward,
                good,
                names.len(),
                preprocess.crop as usize,
                device,
                halves,
            )?;
            summary.network += ran.elapsed();
            if output.len() != names.len() * FEATURE_DIM {
                bail!(
                    "the network produced {} values for {} images, expected {FEATURE_DIM} each",
                    output.len(),
                    names.len()
                );
            }
            summary.featurized += names.len();
            features.images.extend(names);
            features.features.extend_from_slice(&output);
        }
        if let Some(open) = current.take() {
            finish_part(&todo[open.slot], open, provenance, summary)?;
        }
        Ok(())
    })?;
    progress.finish_and_clear();
    Ok(())
}

/// Runs the network on a batch, with `halves` as two half-batches at once: while one half is
/// in an operation the backend runs on a single thread (elementwise work, pooling), the other
/// keeps the remaining cores busy. Returns `[images * FEATURE_DIM]` values in image order.
fn run_network<B: Backend>(
    forward: &(impl Fn(Tensor<B, 4>) -> Tensor<B, 2> + Sync),
    pixels: Vec<f32>,
    images: usize,
    side: usize,
    device: &B::Device,
    halves: bool,
) -> Result<Vec<f32>> {
    let run = |pixels: Vec<f32>, n: usize| {
        let input = Tensor::<B, 4>::from_data(TensorData::new(pixels, [n, 3, side, side]), device);
        forward(input)
            .into_data()
            .into_vec::<f32>()
            .map_err(|e| anyhow::anyhow!("reading features: {e:?}"))
    };
    if images < 2 || !halves {
        return run(pixels, images);
    }
    let first = images / 2;
    let mut pixels = pixels;
    let second_pixels = pixels.split_off(first * 3 * side * side);
    let (a, b) = std::thread::scope(|scope| {
        let second = scope.spawn(|| run(second_pixels, images - first));
        let a = run(pixels, first);
        (
            a,
            second
                .join()
                .unwrap_or_else(|_| Err(anyhow::anyhow!("the network thread panicked"))),
        )
    });
    let mut out = a?;
    out.extend(b?);
    Ok(out)
}

/// Writes one part atomically, recording the images it had to skip.
fn finish_part(
    part: &Part,
    open: OpenPart,
    provenance: &Provenance,
    summary: &mut Summary,
) -> Result<()> {
    let OpenPart {
        features, skipped, ..
    } = open;
    let written = Instant::now();
    let mut provenance = provenance.clone();
    provenance.config["skipped"] = serde_json::to_value(&skipped)?;
    write_features(&part.path, &features, &provenance)?;
    summary.write += written.elapsed();
    summary.written_parts += 1;
    summary.skipped.extend(skipped);
    tracing::debug!(
        "wrote {} ({} images)",
        part.path.display(),
        features.images.len()
    );
    Ok(())
}

fn progress_bar(total: u64) -> indicatif::ProgressBar {
    let bar = indicatif::ProgressBar::new(total);
    bar.set_style(
        indicatif::ProgressStyle::with_template(
            "featurizing {bar:40} {pos}/{len} images  {per_sec}  eta {eta}",
        )
        .expect("valid template"),
    );
    bar
}

impl std::fmt::Display for Summary {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        let rate = self.featurized as f64 / self.seconds.max(1e-9);
        let after_load =
            self.featurized as f64 / (self.seconds - self.load.as_secs_f64()).max(1e-9);
        writeln!(
            f,
            "images      {} in the list, {} featurized now ({rate:.1} images/s end to end, {after_load:.1} after loading the network)",
            self.images, self.featurized
        )?;
        writeln!(
            f,
            "parts       {} written, {} reused from an earlier run, {} still missing",
            self.written_parts, self.reused_parts, self.missing_parts
        )?;
        writeln!(
            f,
            "time        {:.1} s: loading the network {:.1} s, network {:.1} s, waiting for decoding {:.1} s, writing {:.1} s",
            self.seconds,
            self.load.as_secs_f64(),
            self.network.as_secs_f64(),
            self.wait_decode.as_secs_f64(),
            self.write.as_secs_f64()
        )?;
        writeln!(f, "skipped     {} unreadable images", self.skipped.len())
    }
}
