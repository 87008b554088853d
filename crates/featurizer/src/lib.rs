//! The featurizer stage: images -> `features/part-NNNNN.parquet` (2048-d ResNet50 vectors),
//! and `grid/part-NNNNN.parquet` (the 7x7 feature map before pooling, from the same pass) when
//! the attention decoder needs it.
//!
//! - [`images`]: which images, where.
//! - [`parts`]: the dataset's parts, the unit of resume and sharding.
//! - [`pipeline`]: decoding one batch ahead of the network, memory bounded by the batch size,
//!   and faults that end the run instead of hanging it.

pub mod images;
pub mod parts;
pub mod pipeline;

use std::collections::HashSet;
use std::path::{Path, PathBuf};
use std::time::{Duration, Instant};

use anyhow::{Context, Result, bail};
use burn::tensor::backend::Backend;
use contracts::grid::{Grids, write_grid_part};
use contracts::lock::{WorkDirLock, lock_work_dir, lock_work_dir_shard};
use contracts::provenance::content_hash;
use contracts::tables::{CAPTIONS_FILE, Features, FeaturesTable, write};
use contracts::{EncoderSettings, Provenance, Stage, WeightsSpec, WorkDir};
use models::backend::BackendTask;
use models::preprocess::Preprocess;
use models::resnet::{ResNetConfig, WeightsSource, load_resnet};
use sha2::{Digest, Sha256};

use crate::images::ImageList;
use crate::parts::{Part, Shard};

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
    /// Also write `grid/` (the attention decoder reads it).
    pub grid: bool,
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

/// The settings every part records: the [`EncoderSettings`] (which the trained model copies,
/// for `caption`) and how the dataset is cut into parts. A resumed run must match them.
fn settings(options: &Options, list: &ImageList) -> Result<serde_json::Value> {
    let weights = match &options.weights {
        WeightsSource::Random { seed } => WeightsSpec::Random { random_seed: *seed },
        WeightsSource::File(path) => WeightsSpec::File {
            file: path.display().to_string(),
            sha256: content_hash(path)?,
        },
    };
    let encoder = EncoderSettings {
        weights,
        resize: options.preprocess.resize,
        crop: options.preprocess.crop,
    };
    let mut settings = serde_json::to_value(encoder)?;
    settings["part_rows"] = options.part_rows.into();
    settings["images"] = list.names.len().into();
    settings["images_sha256"] = list.fingerprint().into();
    Ok(settings)
}

/// The work-dir lock: exclusive for a whole run, shared with the other shards of the same job
/// (the same settings and shard count) for `--shard k/n`.
fn lock(options: &Options, settings: &serde_json::Value) -> Result<WorkDirLock> {
    let shard = options.shard;
    if shard == Shard::WHOLE {
        return Ok(lock_work_dir(&options.work_dir, "featurizer")?);
    }
    let job = hex::encode(Sha256::digest(settings.to_string().as_bytes()));
    Ok(lock_work_dir_shard(
        &options.work_dir,
        "featurizer",
        shard.index,
        shard.count,
        &job,
    )?)
}

fn featurize<B: Backend>(options: &Options, device: &B::Device) -> Result<Summary> {
    let started = Instant::now();
    let list = ImageList::resolve(&options.work_dir, options.images.as_deref())?;
    let work = WorkDir::new(&options.work_dir);
    let features_dir = work.features();
    let grid_dir = work.grid();
    let dirs: &[&Path] = if options.grid {
        &[&features_dir, &grid_dir]
    } else {
        &[&features_dir]
    };
    for dir in dirs {
        std::fs::create_dir_all(dir).with_context(|| format!("creating {}", dir.display()))?;
    }
    let settings = settings(options, &list)?;
    let _lock = lock(options, &settings)?;
    let parts = parts::plan(&features_dir, list.names.len(), options.part_rows)?;
    // A killed run can leave the temp file of a part it was writing; other shards may be
    // writing theirs right now, so only this run's parts are cleaned.
    let owned: HashSet<String> = parts
        .iter()
        .filter(|p| options.shard.owns(p.index))
        .map(|p| p.file_name())
        .collect();
    for dir in dirs {
        contracts::atomic::remove_stale_temps(dir, |target| owned.contains(target))?;
    }
    let mut summary = Summary {
        images: list.names.len(),
        ..Summary::default()
    };

    let mut todo = Vec::new();
    for part in parts.iter().filter(|p| options.shard.owns(p.index)) {
        let grid = options.grid.then(|| grid_dir.join(part.file_name()));
        match existing_part(part, grid.as_deref(), &settings, options.force)? {
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
        let plan = pipeline::Plan {
            list: &list,
            todo: &todo,
            batch_size: options.batch_size,
            side: options.preprocess.crop as usize,
            // The CPU path keeps both cores busy in every layer; burn's tensor operations
            // do not.
            halves: !network.uses_cpu_path(),
        };
        let preprocess = options.preprocess;
        let progress = progress_bar(todo.iter().map(|p| p.range.len() as u64).sum());
        pipeline::run(
            &plan,
            |path: &Path| preprocess.load(path).map_err(|e| e.reason_text()),
            |part: &Part,
             features: &Features,
             grids: Option<&Grids>,
             skipped: &[pipeline::Skip]| {
                write_part(part, features, skipped, &provenance)?;
                match grids {
                    Some(grids) => write_grid(
                        &grid_dir.join(part.file_name()),
                        grids,
                        skipped,
                        &provenance,
                    ),
                    None if options.grid && !features.images.is_empty() => {
                        bail!("the network gave no grid for {}", part.path.display())
                    }
                    None => Ok(()),
                }
            },
            |images| {
                if options.grid {
                    let (pooled, map) = network.forward_with_grid(images);
                    (pooled, Some(map))
                } else {
                    (network.forward(images), None)
                }
            },
            device,
            &mut summary,
            &progress,
        )?;
        progress.finish_and_clear();
    }
    summary.missing_parts = parts
        .iter()
        .filter(|p| !p.path.is_file() || (options.grid && !grid_dir.join(p.file_name()).is_file()))
        .count();
    let markers = if options.grid {
        vec![work.features_done(), work.grid_done()]
    } else {
        vec![work.features_done()]
    };
    for marker in markers {
        mark_done(&marker, &settings, summary.missing_parts == 0)?;
    }
    summary.seconds = started.elapsed().as_secs_f64();
    Ok(summary)
}

/// Writes the `_SUCCESS` marker of a complete dataset, or removes it. An unchanged marker is
/// left alone, so its time stamp, which the Makefile's later stages depend on, says when the
/// dataset last changed.
fn mark_done(marker: &Path, settings: &serde_json::Value, complete: bool) -> Result<()> {
    if !complete {
        let _ = std::fs::remove_file(marker);
        return Ok(());
    }
    let text = format!("{settings}\n");
    if std::fs::read_to_string(marker).ok().as_deref() != Some(text.as_str()) {
        std::fs::write(marker, text).with_context(|| format!("writing {}", marker.display()))?;
    }
    Ok(())
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

/// `Some(skipped images)` when `part` (and its `grid` part, when one is wanted) is already done
/// with the same settings; `None` when it must be (re)computed. A part made with other
/// settings is an error unless `force`.
fn existing_part(
    part: &Part,
    grid: Option<&Path>,
    settings: &serde_json::Value,
    force: bool,
) -> Result<Option<Vec<(String, String)>>> {
    let skipped = existing_file(&part.path, settings, force)?;
    match grid {
        Some(grid) if skipped.is_some() => Ok(existing_file(grid, settings, force)?.and(skipped)),
        _ => Ok(skipped),
    }
}

fn existing_file(
    path: &Path,
    settings: &serde_json::Value,
    force: bool,
) -> Result<Option<Vec<(String, String)>>> {
    if !path.is_file() {
        return Ok(None);
    }
    let recorded = contracts::parquet_io::read_provenance(path)?;
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
        path.display()
    )
}

/// Writes one part atomically, recording the images it had to skip.
fn write_part(
    part: &Part,
    features: &Features,
    skipped: &[pipeline::Skip],
    provenance: &Provenance,
) -> Result<()> {
    let mut provenance = provenance.clone();
    provenance.config["skipped"] = serde_json::to_value(skipped)?;
    write::<FeaturesTable>(&part.path, features, &provenance)?;
    tracing::debug!(
        "wrote {} ({} images)",
        part.path.display(),
        features.images.len()
    );
    Ok(())
}

/// Writes one grid part atomically, with the same provenance as its features part.
fn write_grid(
    path: &Path,
    grids: &Grids,
    skipped: &[pipeline::Skip],
    provenance: &Provenance,
) -> Result<()> {
    let mut provenance = provenance.clone();
    provenance.config["skipped"] = serde_json::to_value(skipped)?;
    write_grid_part(path, grids, &provenance)?;
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
