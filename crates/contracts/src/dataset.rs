//! A Parquet dataset folder as the stages see it: its `part-*.parquet` files, in name order.

use std::path::{Path, PathBuf};

use crate::error::ContractError;

/// The `part-*.parquet` files of a dataset directory, in name order.
pub fn dataset_parts(dir: &Path) -> Result<Vec<PathBuf>, ContractError> {
    let entries = std::fs::read_dir(dir).map_err(|error| ContractError::io(dir, error))?;
    let mut parts: Vec<PathBuf> = entries
        .filter_map(|entry| entry.ok().map(|e| e.path()))
        .filter(|p| {
            let name = p.file_name().unwrap_or_default().to_string_lossy();
            name.starts_with("part-") && name.ends_with(".parquet")
        })
        .collect();
    parts.sort();
    Ok(parts)
}
