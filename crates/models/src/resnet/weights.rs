//! Filling a [`ResNet`] with weights: torchvision state dicts (`.pth`), `.safetensors`, or a
//! seeded random initialisation.
//!
//! A weight file is untrusted input. It is read only through burn-store's readers, and before
//! anything is applied its key list and shapes are checked against the network's own list
//! ([`ResNetConfig::torchvision_tensors`]): a missing, unexpected or mis-shaped tensor is an
//! error naming the key and the file. (burn-store's own "unused" report cannot be used for this:
//! it lists BatchNorm `weight`/`bias` as unused although it maps them to `gamma`/`beta`.) The
//! only tensors tolerated beyond the list are the classifier `fc.*` and BatchNorm's
//! `num_batches_tracked` counters, which the features do not use.

use std::collections::{BTreeMap, BTreeSet, HashMap};
use std::fmt;
use std::fs::File;
use std::io::Read;
use std::path::{Path, PathBuf};

use burn::module::ParamId;
use burn::tensor::backend::Backend;
use burn::tensor::{DType, TensorData};
use burn_store::pytorch::PytorchReader;
use burn_store::pytorch::reader::{FileFormat, PytorchMetadata};
use burn_store::{
    KeyRemapper, ModuleSnapshot, ModuleStore, PyTorchToBurnAdapter, SafetensorsStore,
    TensorSnapshot,
};
use rand::SeedableRng;
use rand_chacha::ChaCha8Rng;
use rand_distr::{Distribution, Normal};

use super::{FoldedResNet, ResNet, ResNetConfig};

/// Where the network's weights come from.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum WeightsSource {
    /// torchvision's initialisation (Kaiming-normal convolutions, fan-out mode; identity
    /// BatchNorm), drawn from a ChaCha8 generator seeded with `seed`: the same weights on
    /// every backend and machine. Only for demos and tests: the features mean nothing.
    Random { seed: u64 },
    /// A torchvision state dict (`.pth`/`.pt`, e.g. `resnet50-0676ba61.pth` or
    /// `resnet50-11ad3fa6.pth`) or a `.safetensors` file with the same keys.
    File(PathBuf),
}

impl WeightsSource {
    /// A `paths.weights` / `--weights` value: `random` (seeded with `seed`) or a file path.
    pub fn parse(text: &str, seed: u64) -> Self {
        match text {
            "random" => Self::Random { seed },
            path => Self::File(PathBuf::from(path)),
        }
    }
}

impl fmt::Display for WeightsSource {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Self::Random { seed } => write!(f, "random (seed {seed})"),
            Self::File(path) => write!(f, "{}", path.display()),
        }
    }
}

/// Why weights could not be loaded. Every variant names the file; those about one tensor name
/// its key as written in the file.
#[derive(Debug, thiserror::Error)]
pub enum ModelError {
    /// The file could not be opened or parsed (missing, truncated, not a weight file).
    #[error("cannot read weights file {}: {reason}", path.display())]
    Read { path: PathBuf, reason: String },
    /// Neither the extension nor the first bytes say `.pth` or `.safetensors`.
    #[error(
        "weights file {}: unknown format (expected a PyTorch .pth/.pt state dict or .safetensors)",
        path.display()
    )]
    UnknownFormat { path: PathBuf },
    /// A tensor the network needs is not in the file.
    #[error("weights file {} lacks tensor `{key}`{}", path.display(), and_more(*more))]
    MissingTensor {
        path: PathBuf,
        key: String,
        more: usize,
    },
    /// The file holds a tensor the network does not have (another architecture?).
    #[error("weights file {} has unexpected tensor `{key}`{}", path.display(), and_more(*more))]
    UnexpectedTensor {
        path: PathBuf,
        key: String,
        more: usize,
    },
    /// A tensor has the wrong shape (another depth or width?).
    #[error(
        "weights file {}: tensor `{key}` has shape {found:?}, expected {expected:?}",
        path.display()
    )]
    ShapeMismatch {
        path: PathBuf,
        key: String,
        expected: Vec<usize>,
        found: Vec<usize>,
    },
    /// A tensor is not floating point.
    #[error("weights file {}: tensor `{key}` has dtype {dtype}, expected a float type", path.display())]
    DType {
        path: PathBuf,
        key: String,
        dtype: String,
    },
    /// burn-store refused a tensor after the checks above passed (should not happen).
    #[error("weights file {}: cannot apply tensors: {reason}", path.display())]
    Apply { path: PathBuf, reason: String },
}

fn and_more(more: usize) -> String {
    match more {
        0 => String::new(),
        n => format!(" (and {n} more)"),
    }
}

/// Loads the network and folds its BatchNorms: the form to run inference with.
pub fn load_resnet<B: Backend>(
    config: &ResNetConfig,
    source: &WeightsSource,
    device: &B::Device,
) -> Result<FoldedResNet<B>, ModelError> {
    Ok(load_resnet_unfolded(config, source, device)?.fold())
}

/// Loads the network with its BatchNorm layers (torchvision's structure), e.g. to check the
/// folded form against it.
pub fn load_resnet_unfolded<B: Backend>(
    config: &ResNetConfig,
    source: &WeightsSource,
    device: &B::Device,
) -> Result<ResNet<B>, ModelError> {
    let expected = config.torchvision_tensors();
    let (path, tensors) = match source {
        WeightsSource::Random { seed } => {
            (PathBuf::from("<random>"), random_tensors(&expected, *seed))
        }
        WeightsSource::File(path) => {
            let tensors = read_tensors(path)?;
            check_tensors(path, &expected, &tensors)?;
            (path.clone(), tensors)
        }
    };
    let mut model = config.init::<B>(device);
    apply(&mut model, &path, tensors)?;
    Ok(model)
}

/// Keys a torchvision checkpoint may hold that the feature network does not use.
fn is_ignored(key: &str) -> bool {
    key.starts_with("fc.") || key.ends_with(".num_batches_tracked")
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Format {
    Pytorch,
    Safetensors,
}

/// The file's format, from its extension or, failing that, its first bytes (a zip archive or
/// a pickle stream is PyTorch's; safetensors starts with a little-endian header length and `{`).
fn detect_format(path: &Path) -> Result<Format, ModelError> {
    let read_err = |e: std::io::Error| ModelError::Read {
        path: path.to_owned(),
        reason: e.to_string(),
    };
    let ext = path
        .extension()
        .and_then(|e| e.to_str())
        .map(str::to_ascii_lowercase);
    match ext.as_deref() {
        Some("pth" | "pt") => return Ok(Format::Pytorch),
        Some("safetensors") => return Ok(Format::Safetensors),
        _ => {}
    }
    let mut head = [0u8; 9];
    let mut file = File::open(path).map_err(read_err)?;
    let n = file.read(&mut head).map_err(read_err)?;
    match &head[..n] {
        [b'P', b'K', 3, 4, ..] | [0x80, ..] => Ok(Format::Pytorch),
        [_, _, _, _, _, _, _, _, b'{'] => Ok(Format::Safetensors),
        _ => Err(ModelError::UnknownFormat {
            path: path.to_owned(),
        }),
    }
}

/// Every tensor in the file by its key, unchanged and lazily loaded.
fn read_tensors(path: &Path) -> Result<BTreeMap<String, TensorSnapshot>, ModelError> {
    let read_err = |reason: String| ModelError::Read {
        path: path.to_owned(),
        reason,
    };
    // Existence first: both readers would report it less plainly.
    std::fs::metadata(path).map_err(|e| read_err(e.to_string()))?;
    match detect_format(path)? {
        Format::Pytorch => {
            let reader = PytorchReader::new(path).map_err(|e| read_err(e.to_string()))?;
            check_pytorch_data_size(reader.metadata(), reader.tensors()).map_err(read_err)?;
            let tensors = reader
                .into_tensors()
                .into_iter()
                .map(|(key, mut snapshot)| {
                    // The reader leaves the module path empty; burn-store's appliers match on it.
                    snapshot.path_stack = Some(key.split('.').map(str::to_string).collect());
                    (key, snapshot)
                });
            Ok(tensors.collect())
        }
        Format::Safetensors => {
            let mut store = SafetensorsStore::from_file(path).map_indices_contiguous(false);
            let all = store
                .get_all_snapshots()
                .map_err(|e| read_err(e.to_string()))?;
            Ok(all.clone())
        }
    }
}

/// burn-store's PyTorch reader reads tensor data lazily and fills what it cannot read with
/// zeros, so a truncated file would load "successfully". Check up front that the file holds at
/// least the bytes its tensors declare: in the ZIP format each tensor lives in its own
/// `data/<n>` entry; in the legacy format each storage is an 8-byte element count followed by
/// the data (a state dict saved by `torch.save` has one storage per tensor).
fn check_pytorch_data_size(
    metadata: &PytorchMetadata,
    tensors: &HashMap<String, TensorSnapshot>,
) -> Result<(), String> {
    let Some(available) = metadata.total_data_size else {
        return Ok(());
    };
    let declared: usize = tensors
        .values()
        .map(|t| t.shape.num_elements() * t.dtype.size())
        .sum();
    let required = match metadata.format_type {
        FileFormat::Zip => declared,
        FileFormat::Legacy => declared + 8 * tensors.len(),
        FileFormat::Tar | FileFormat::Pickle => return Ok(()),
    };
    if available < required {
        return Err(format!(
            "tensor data is incomplete ({available} bytes where its {} tensors need {required}): \
             the file is truncated or damaged",
            tensors.len()
        ));
    }
    Ok(())
}

/// Compares the file's keys, shapes and dtypes with the network's list.
fn check_tensors(
    path: &Path,
    expected: &[(String, Vec<usize>)],
    found: &BTreeMap<String, TensorSnapshot>,
) -> Result<(), ModelError> {
    let path = path.to_owned();
    let missing: Vec<&String> = expected
        .iter()
        .map(|(k, _)| k)
        .filter(|k| !found.contains_key(*k))
        .collect();
    if let Some(first) = missing.first() {
        let (key, more) = ((*first).clone(), missing.len() - 1);
        return Err(ModelError::MissingTensor { path, key, more });
    }
    let known: BTreeSet<&str> = expected.iter().map(|(k, _)| k.as_str()).collect();
    let extra: Vec<&String> = found
        .keys()
        .filter(|k| !known.contains(k.as_str()) && !is_ignored(k))
        .collect();
    if let Some(first) = extra.first() {
        let (key, more) = ((*first).clone(), extra.len() - 1);
        return Err(ModelError::UnexpectedTensor { path, key, more });
    }
    for (key, shape) in expected {
        let snapshot = &found[key];
        if !is_float(snapshot.dtype) {
            let dtype = format!("{:?}", snapshot.dtype);
            return Err(ModelError::DType {
                path,
                key: key.clone(),
                dtype,
            });
        }
        if snapshot.shape.as_slice() != shape.as_slice() {
            return Err(ModelError::ShapeMismatch {
                path,
                key: key.clone(),
                expected: shape.clone(),
                found: snapshot.shape.to_vec(),
            });
        }
    }
    Ok(())
}

fn is_float(dtype: DType) -> bool {
    matches!(
        dtype,
        DType::F64 | DType::F32 | DType::Flex32 | DType::F16 | DType::BF16
    )
}

/// torchvision's initialisation, drawn in key order from one seeded generator.
fn random_tensors(
    expected: &[(String, Vec<usize>)],
    seed: u64,
) -> BTreeMap<String, TensorSnapshot> {
    let mut rng = ChaCha8Rng::seed_from_u64(seed);
    let mut out = BTreeMap::new();
    for (key, shape) in expected {
        let n: usize = shape.iter().product();
        let values: Vec<f32> = if key.ends_with("weight") && shape.len() == 4 {
            // kaiming_normal_(mode="fan_out", nonlinearity="relu"): std = sqrt(2 / fan_out).
            let fan_out = shape[0] * shape[2] * shape[3];
            let std = (2.0 / fan_out as f64).sqrt() as f32;
            let normal = Normal::new(0.0f32, std).expect("std is finite and positive");
            (0..n).map(|_| normal.sample(&mut rng)).collect()
        } else if key.ends_with("weight") || key.ends_with("running_var") {
            vec![1.0; n]
        } else {
            // BatchNorm bias and running_mean.
            vec![0.0; n]
        };
        let data = TensorData::new(values, shape.clone());
        out.insert(key.clone(), snapshot(key, data));
    }
    out
}

fn snapshot(key: &str, data: TensorData) -> TensorSnapshot {
    let path = key.split('.').map(str::to_string).collect();
    TensorSnapshot::from_data(data, path, Vec::new(), ParamId::new())
}

/// Renames torchvision keys to the module's field names, converts to f32, and applies them.
fn apply<B: Backend>(
    model: &mut ResNet<B>,
    path: &Path,
    tensors: BTreeMap<String, TensorSnapshot>,
) -> Result<(), ModelError> {
    let apply_err = |reason: String| ModelError::Apply {
        path: path.to_owned(),
        reason,
    };
    let mut snapshots = Vec::with_capacity(tensors.len());
    for (key, snap) in tensors {
        if is_ignored(&key) {
            continue;
        }
        if snap.dtype == DType::F32 {
            snapshots.push(snap);
            continue;
        }
        // Half or double precision files: the network computes in f32.
        let data = snap.to_data().map_err(|e| ModelError::Read {
            path: path.to_owned(),
            reason: format!("tensor `{key}`: {e:?}"),
        })?;
        snapshots.push(snapshot(&key, data.convert::<f32>()));
    }
    let remapper = KeyRemapper::new()
        .add_pattern(r"^(.+)\.downsample\.0\.(\w+)$", "$1.downsample.conv.$2")
        .and_then(|r| r.add_pattern(r"^(.+)\.downsample\.1\.(\w+)$", "$1.downsample.bn.$2"))
        .map_err(|e| apply_err(e.to_string()))?;
    let (snapshots, _) = remapper.remap(snapshots);
    let result = model.apply(snapshots, None, Some(Box::new(PyTorchToBurnAdapter)), true);
    if let Some(error) = result.errors.first() {
        return Err(apply_err(error.to_string()));
    }
    if let Some((key, _)) = result.missing.first() {
        return Err(apply_err(format!("no tensor reached `{key}`")));
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn resnet50_has_torchvision_tensor_count() {
        // 53 convolutions + 53 BatchNorms x 4 tensors, as burn-store applied to torchvision's.
        assert_eq!(ResNetConfig::resnet50().torchvision_tensors().len(), 265);
    }

    #[test]
    fn fc_and_counters_are_ignored_but_nothing_else() {
        assert!(is_ignored("fc.weight"));
        assert!(is_ignored("layer1.0.bn1.num_batches_tracked"));
        assert!(!is_ignored("layer1.0.bn1.running_var"));
        assert!(!is_ignored("fcx.weight"));
    }
}
