//! Provenance: what every Parquet file says about how it was made, and the checks a stage
//! runs before trusting an input.
//!
//! Each file carries the stage that wrote it, the schema version, the config values that
//! shaped it and the SHA-256 of each input. A downstream stage compares those hashes with the
//! files on disk now, so a stale file (tokens built from an older captions.parquet) is refused
//! with the name of the stage to rerun instead of silently mixing two runs.

use std::collections::BTreeMap;
use std::io::Read;
use std::path::{Path, PathBuf};

use serde::{Deserialize, Serialize};
use sha2::{Digest, Sha256};

pub use crate::stage::Stage;

use crate::dataset::dataset_parts;
use crate::error::ContractError;

/// Version of the table layouts (the README's Outputs section); bumped when a column changes.
pub const SCHEMA_VERSION: u32 = 1;

pub(crate) const KEY_STAGE: &str = "imagecaptioning.stage";
pub(crate) const KEY_SCHEMA_VERSION: &str = "imagecaptioning.schema_version";
pub(crate) const KEY_CONFIG: &str = "imagecaptioning.config";
pub(crate) const KEY_INPUTS: &str = "imagecaptioning.inputs";
/// The config entry of `captions.parquet` that says where the images are.
const KEY_IMAGE_DIR: &str = "image_dir";

/// How a file was made; stored as key-value metadata of each Parquet file.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Provenance {
    pub stage: String,
    pub schema_version: u32,
    /// The config values that shaped the file (a JSON object).
    pub config: serde_json::Value,
    /// Input name (e.g. `captions.parquet`) to the SHA-256 of its content.
    pub inputs: BTreeMap<String, String>,
}

impl Provenance {
    pub fn new(stage: Stage, config: impl Serialize) -> Self {
        Self {
            stage: stage.name().to_string(),
            schema_version: SCHEMA_VERSION,
            config: serde_json::to_value(config).unwrap_or(serde_json::Value::Null),
            inputs: BTreeMap::new(),
        }
    }

    /// Records where the dataset's images are (the cleaner does; the featurizer and the
    /// evaluator's report find them through it).
    pub fn with_image_dir(mut self, dir: Option<&Path>) -> Self {
        self.config[KEY_IMAGE_DIR] = serde_json::json!(dir.map(|d| d.display().to_string()));
        self
    }

    /// The image folder recorded by [`Self::with_image_dir`].
    pub fn image_dir(&self) -> Option<PathBuf> {
        self.config.get(KEY_IMAGE_DIR)?.as_str().map(PathBuf::from)
    }

    /// Records the current content hash of an input file or directory.
    pub fn with_input(mut self, name: &str, path: &Path) -> Result<Self, ContractError> {
        self.inputs.insert(name.to_string(), content_hash(path)?);
        Ok(self)
    }

    pub(crate) fn to_key_values(&self) -> Vec<(String, String)> {
        vec![
            (KEY_STAGE.into(), self.stage.clone()),
            (KEY_SCHEMA_VERSION.into(), self.schema_version.to_string()),
            (KEY_CONFIG.into(), self.config.to_string()),
            (
                KEY_INPUTS.into(),
                serde_json::to_string(&self.inputs).unwrap_or_else(|_| "{}".into()),
            ),
        ]
    }

    /// Parses our keys; `None` when the file has none of them (written by another tool).
    pub(crate) fn from_key_values(
        path: &Path,
        lookup: impl Fn(&str) -> Option<String>,
    ) -> Result<Option<Self>, ContractError> {
        let Some(stage) = lookup(KEY_STAGE) else {
            return Ok(None);
        };
        let bad =
            |key: &str| ContractError::parquet(path, format!("metadata key {key} is malformed"));
        let schema_version = lookup(KEY_SCHEMA_VERSION)
            .and_then(|v| v.parse().ok())
            .ok_or_else(|| bad(KEY_SCHEMA_VERSION))?;
        let config = match lookup(KEY_CONFIG) {
            Some(text) => serde_json::from_str(&text).map_err(|_| bad(KEY_CONFIG))?,
            None => serde_json::Value::Null,
        };
        let inputs = match lookup(KEY_INPUTS) {
            Some(text) => serde_json::from_str(&text).map_err(|_| bad(KEY_INPUTS))?,
            None => BTreeMap::new(),
        };
        Ok(Some(Self {
            stage,
            schema_version,
            config,
            inputs,
        }))
    }

    /// Refuses this file if `input` on disk is not the one it was built from.
    pub fn require_input(
        &self,
        file: &Path,
        name: &str,
        input: &Path,
        rerun: Stage,
    ) -> Result<(), ContractError> {
        let Some(recorded) = self.inputs.get(name) else {
            return Err(ContractError::Provenance {
                path: file.to_path_buf(),
                message: format!("it does not record which {name} it was built from"),
                stage: rerun,
            });
        };
        if *recorded != content_hash(input)? {
            return Err(ContractError::Provenance {
                path: file.to_path_buf(),
                message: format!(
                    "it was built from a different {} than the one on disk now",
                    input.display()
                ),
                stage: rerun,
            });
        }
        Ok(())
    }
}

/// SHA-256 of a file, or for a directory of a `.parquet` dataset, of its part names and
/// their hashes in name order (so adding, removing or changing a part changes it).
pub fn content_hash(path: &Path) -> Result<String, ContractError> {
    let io = |error| ContractError::io(path, error);
    if path.is_dir() {
        let mut hasher = Sha256::new();
        for part in dataset_parts(path)? {
            hasher.update(part.file_name().unwrap_or_default().as_encoded_bytes());
            hasher.update(file_hash(&part)?.as_bytes());
        }
        return Ok(hex::encode(hasher.finalize()));
    }
    std::fs::metadata(path).map_err(io)?;
    file_hash(path)
}

fn file_hash(path: &Path) -> Result<String, ContractError> {
    let io = |error| ContractError::io(path, error);
    let mut file = std::fs::File::open(path).map_err(io)?;
    let mut hasher = Sha256::new();
    let mut buffer = vec![0u8; 1 << 20];
    loop {
        let n = file.read(&mut buffer).map_err(io)?;
        if n == 0 {
            break;
        }
        hasher.update(&buffer[..n]);
    }
    Ok(hex::encode(hasher.finalize()))
}
