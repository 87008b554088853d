//! Reading and writing the pipeline's Parquet files.
//!
//! Writes go to a hidden temp file in the target directory and are renamed into place only
//! once complete, so a crash never leaves a half-written output. Reads check every expected
//! column and name the file, the column and what was expected; a file written by another tool
//! (pandas, pyarrow, Polars) is accepted when its columns match, with compatible encodings
//! (large strings, other integer widths) converted.

use std::fs::File;
use std::path::{Path, PathBuf};
use std::sync::Arc;

use arrow::array::{Array, ArrayRef, RecordBatch};
use arrow::datatypes::{DataType, Schema, SchemaRef};
use parquet::arrow::ArrowWriter;
use parquet::arrow::arrow_reader::ParquetRecordBatchReaderBuilder;
use parquet::basic::{Compression, ZstdLevel};
use parquet::file::metadata::KeyValue;
use parquet::file::properties::WriterProperties;

use crate::error::ContractError;
use crate::provenance::{Provenance, SCHEMA_VERSION, Stage, rerun_hint};

/// Rows per row group: a few thousand keeps files readable in pieces by every tool.
const ROW_GROUP_ROWS: usize = 4096;

/// A Parquet file being written; it appears at its path only after [`TableWriter::finish`].
pub struct TableWriter {
    path: PathBuf,
    temp: tempfile::NamedTempFile,
    writer: ArrowWriter<File>,
}

impl TableWriter {
    pub fn create(
        path: &Path,
        schema: SchemaRef,
        provenance: &Provenance,
    ) -> Result<Self, ContractError> {
        let io = |source| ContractError::Io {
            path: path.to_path_buf(),
            source,
        };
        let temp = crate::atomic::temp_beside(path)?;
        let metadata = provenance
            .to_key_values()
            .into_iter()
            .map(|(k, v)| KeyValue::new(k, v))
            .collect();
        let properties = WriterProperties::builder()
            .set_compression(Compression::ZSTD(ZstdLevel::default()))
            .set_max_row_group_row_count(Some(ROW_GROUP_ROWS))
            .set_key_value_metadata(Some(metadata))
            .build();
        let file = temp.reopen().map_err(io)?;
        let writer = ArrowWriter::try_new(file, schema, Some(properties))
            .map_err(|e| ContractError::parquet(path, e))?;
        Ok(Self {
            path: path.to_path_buf(),
            temp,
            writer,
        })
    }

    pub fn write(&mut self, batch: &RecordBatch) -> Result<(), ContractError> {
        self.writer
            .write(batch)
            .map_err(|e| ContractError::parquet(&self.path, e))
    }

    /// Completes the file and renames it into place.
    pub fn finish(self) -> Result<(), ContractError> {
        let path = self.path;
        self.writer
            .into_inner()
            .map_err(|e| ContractError::parquet(&path, e))?;
        crate::atomic::publish(self.temp, &path)
    }
}

/// Writes one batch as a whole file, atomically.
pub fn write_table(
    path: &Path,
    batch: &RecordBatch,
    provenance: &Provenance,
) -> Result<(), ContractError> {
    let mut writer = TableWriter::create(path, batch.schema(), provenance)?;
    writer.write(batch)?;
    writer.finish()
}

/// A table read from disk, its columns conformed to the expected schema.
pub struct Table {
    pub batches: Vec<RecordBatch>,
    /// `None` when the file was written by another tool.
    pub provenance: Option<Provenance>,
}

impl Table {
    pub fn num_rows(&self) -> usize {
        self.batches.iter().map(RecordBatch::num_rows).sum()
    }
}

/// Reads `path`, checking it holds every column of `expected` (extra columns are ignored) and
/// that a file of ours was written by `stage` with the current schema version.
pub fn read_table(path: &Path, expected: &SchemaRef, stage: Stage) -> Result<Table, ContractError> {
    let file = File::open(path).map_err(|source| ContractError::Io {
        path: path.to_path_buf(),
        source: with_hint(source, stage),
    })?;
    let builder = ParquetRecordBatchReaderBuilder::try_new(file)
        .map_err(|e| ContractError::parquet(path, format!("not a readable Parquet file ({e})")))?;
    let key_values = builder
        .metadata()
        .file_metadata()
        .key_value_metadata()
        .cloned();
    let lookup = |key: &str| {
        key_values
            .as_ref()
            .and_then(|kvs| kvs.iter().find(|kv| kv.key == key))
            .and_then(|kv| kv.value.clone())
    };
    let provenance = Provenance::from_key_values(path, lookup)?;
    check_origin(path, provenance.as_ref(), stage)?;
    let reader = builder
        .with_batch_size(8192)
        .build()
        .map_err(|e| ContractError::parquet(path, e))?;
    let mut batches = Vec::new();
    for batch in reader {
        let batch = batch.map_err(|e| ContractError::parquet(path, e))?;
        batches.push(conform(path, &batch, expected)?);
    }
    if batches.is_empty() {
        batches.push(RecordBatch::new_empty(expected.clone()));
    }
    Ok(Table {
        batches,
        provenance,
    })
}

/// The provenance of a file of ours, reading only its footer (`None` for a foreign file).
pub fn read_provenance(path: &Path) -> Result<Option<Provenance>, ContractError> {
    let file = File::open(path).map_err(|source| ContractError::Io {
        path: path.to_path_buf(),
        source,
    })?;
    let builder = ParquetRecordBatchReaderBuilder::try_new(file)
        .map_err(|e| ContractError::parquet(path, format!("not a readable Parquet file ({e})")))?;
    provenance_of(path, &builder)
}

fn provenance_of(
    path: &Path,
    builder: &ParquetRecordBatchReaderBuilder<File>,
) -> Result<Option<Provenance>, ContractError> {
    let key_values = builder.metadata().file_metadata().key_value_metadata();
    let lookup = |key: &str| {
        key_values
            .and_then(|kvs| kvs.iter().find(|kv| kv.key == key))
            .and_then(|kv| kv.value.clone())
    };
    Provenance::from_key_values(path, lookup)
}

fn with_hint(error: std::io::Error, stage: Stage) -> std::io::Error {
    if error.kind() == std::io::ErrorKind::NotFound {
        std::io::Error::new(
            error.kind(),
            format!("{error}; run the {}", rerun_hint(stage)),
        )
    } else {
        error
    }
}

fn check_origin(
    path: &Path,
    provenance: Option<&Provenance>,
    stage: Stage,
) -> Result<(), ContractError> {
    match provenance {
        None => {
            tracing::warn!(
                "{} has no imagecaptioning metadata (written by another tool?): accepted on its schema alone",
                path.display()
            );
            Ok(())
        }
        Some(p) if p.stage != stage.name() => Err(ContractError::Provenance {
            path: path.to_path_buf(),
            message: format!(
                "written by the {} stage, expected the {} stage",
                p.stage,
                stage.name()
            ),
            rerun: rerun_hint(stage),
        }),
        Some(p) if p.schema_version != SCHEMA_VERSION => Err(ContractError::Provenance {
            path: path.to_path_buf(),
            message: format!(
                "schema version {}, this build reads version {SCHEMA_VERSION}",
                p.schema_version
            ),
            rerun: rerun_hint(stage),
        }),
        Some(_) => Ok(()),
    }
}

/// Picks the expected columns out of `batch`, converting compatible encodings.
fn conform(
    path: &Path,
    batch: &RecordBatch,
    expected: &SchemaRef,
) -> Result<RecordBatch, ContractError> {
    let columns = expected
        .fields()
        .iter()
        .map(|field| {
            let schema_error = |message: String| ContractError::Schema {
                path: path.to_path_buf(),
                column: field.name().clone(),
                message,
            };
            let column = batch
                .column_by_name(field.name())
                .ok_or_else(|| schema_error(format!("missing (expected {})", field.data_type())))?;
            let column = conform_column(column, field.data_type()).ok_or_else(|| {
                schema_error(format!(
                    "has type {}, expected {}",
                    column.data_type(),
                    field.data_type()
                ))
            })?;
            if column.null_count() > 0 {
                return Err(schema_error(format!(
                    "has {} null values",
                    column.null_count()
                )));
            }
            Ok(column)
        })
        .collect::<Result<Vec<_>, _>>()?;
    RecordBatch::try_new(expected.clone(), columns).map_err(|e| ContractError::parquet(path, e))
}

fn conform_column(column: &ArrayRef, expected: &DataType) -> Option<ArrayRef> {
    if column.data_type() == expected {
        return Some(column.clone());
    }
    if !same_kind(column.data_type(), expected) {
        return None;
    }
    arrow::compute::cast(column, expected).ok()
}

/// Types that hold the same values in another encoding (string flavours, integer widths,
/// nested fields named or flagged differently).
fn same_kind(actual: &DataType, expected: &DataType) -> bool {
    use DataType::*;
    match (actual, expected) {
        (Utf8 | LargeUtf8 | Utf8View, Utf8) => true,
        (a, e) if a.is_integer() && e.is_integer() => true,
        (Float32 | Float64, Float32) => true,
        (List(a) | LargeList(a), List(e)) => same_kind(a.data_type(), e.data_type()),
        (FixedSizeList(a, n), FixedSizeList(e, m)) => {
            n == m && same_kind(a.data_type(), e.data_type())
        }
        _ => false,
    }
}

/// The `part-*.parquet` files of a dataset directory, in name order.
pub fn dataset_parts(dir: &Path) -> Result<Vec<PathBuf>, ContractError> {
    let entries = std::fs::read_dir(dir).map_err(|source| ContractError::Io {
        path: dir.to_path_buf(),
        source,
    })?;
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

/// Helper for schemas: a non-nullable field.
pub(crate) fn field(name: &str, data_type: DataType) -> arrow::datatypes::Field {
    arrow::datatypes::Field::new(name, data_type, false)
}

pub(crate) fn schema(fields: Vec<arrow::datatypes::Field>) -> SchemaRef {
    Arc::new(Schema::new(fields))
}
