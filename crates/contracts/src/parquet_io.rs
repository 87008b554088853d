//! Reading and writing the pipeline's Parquet files.
//!
//! Writing is strict, reading is liberal. Writes use zstd and the contract types, go to a
//! hidden temp file in the target directory and are renamed into place only once complete,
//! so a crash never leaves a half-written output. Reads accept what the ecosystem writes:
//! every codec (pandas, pyarrow and DuckDB default to snappy), `large_utf8`, string views
//! and dictionary-encoded strings (pandas categoricals) where the contract says utf8,
//! `large_list` where it says list, and variable lists of the right length where it says
//! fixed-size list (pandas and DuckDB write embeddings that way). Every expected column is
//! checked, and an error names the file, the column and what was expected.

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
use crate::provenance::{Provenance, SCHEMA_VERSION, Stage};

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
        Self::create_with(path, schema, provenance, ROW_GROUP_ROWS, &[])
    }

    /// [`Self::create`] with `row_group_rows` rows per row group (the writer buffers a whole
    /// group: wide rows want small groups) and `extra` key-value metadata.
    pub fn create_with(
        path: &Path,
        schema: SchemaRef,
        provenance: &Provenance,
        row_group_rows: usize,
        extra: &[(&str, String)],
    ) -> Result<Self, ContractError> {
        let io = |error| ContractError::io(path, error);
        let temp = crate::atomic::temp_beside(path)?;
        let metadata = provenance
            .to_key_values()
            .into_iter()
            .chain(extra.iter().map(|(k, v)| (k.to_string(), v.clone())))
            .map(|(k, v)| KeyValue::new(k, v))
            .collect();
        let properties = WriterProperties::builder()
            .set_compression(Compression::ZSTD(ZstdLevel::default()))
            .set_max_row_group_row_count(Some(row_group_rows))
            .set_key_value_metadata(Some(metadata))
            .build();
        let file = temp.reopen().map_err(io)?;
        let writer = ArrowWriter::try_new(file, schema, Some(properties))
            .map_err(|e| ContractError::from_parquet(path, e))?;
        Ok(Self {
            path: path.to_path_buf(),
            temp,
            writer,
        })
    }

    pub fn write(&mut self, batch: &RecordBatch) -> Result<(), ContractError> {
        self.writer
            .write(batch)
            .map_err(|e| ContractError::from_parquet(&self.path, e))
    }

    /// Completes the file and renames it into place.
    pub fn finish(self) -> Result<(), ContractError> {
        let path = self.path;
        self.writer
            .into_inner()
            .map_err(|e| ContractError::from_parquet(&path, e))?;
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
    let file = open_input(path, stage)?;
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
    let file = File::open(path).map_err(|error| ContractError::io(path, error))?;
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

/// Opens an input that `stage` makes; a missing file says which stage makes it.
pub(crate) fn open_input(path: &Path, stage: Stage) -> Result<File, ContractError> {
    File::open(path).map_err(|error| match error.kind() {
        std::io::ErrorKind::NotFound => ContractError::MissingInput {
            path: path.to_path_buf(),
            stage,
        },
        _ => ContractError::io(path, error),
    })
}

pub(crate) fn check_origin(
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
            stage,
        }),
        Some(p) if p.schema_version != SCHEMA_VERSION => Err(ContractError::Provenance {
            path: path.to_path_buf(),
            message: format!(
                "schema version {}, this build reads version {SCHEMA_VERSION}",
                p.schema_version
            ),
            stage,
        }),
        Some(_) => Ok(()),
    }
}

/// Picks the expected columns out of `batch`, converting compatible encodings.
pub(crate) fn conform(
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
                    "has {} null values (or values that do not fit {}: a list of another \
                     length, a number out of range)",
                    column.null_count(),
                    field.data_type()
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

/// Types that hold the same values in another encoding: string flavours (large, view,
/// dictionary), integer widths, lists of either offset size or of fixed size, nested fields
/// named or flagged differently. A value the cast cannot carry over (an id too large for its
/// column, a list of the wrong length) becomes a null, which [`conform`] refuses.
fn same_kind(actual: &DataType, expected: &DataType) -> bool {
    use DataType::*;
    match (actual, expected) {
        (Utf8 | LargeUtf8 | Utf8View, Utf8) => true,
        (Dictionary(_, values), Utf8) => same_kind(values, expected),
        (a, e) if a.is_integer() && e.is_integer() => true,
        (Float32 | Float64, Float32) => true,
        (List(a) | LargeList(a) | ListView(a) | LargeListView(a), List(e)) => {
            same_kind(a.data_type(), e.data_type())
        }
        (List(a) | LargeList(a), FixedSizeList(e, _)) => same_kind(a.data_type(), e.data_type()),
        (FixedSizeList(a, n), FixedSizeList(e, m)) => {
            n == m && same_kind(a.data_type(), e.data_type())
        }
        _ => false,
    }
}

/// Helper for schemas: a non-nullable field.
pub(crate) fn field(name: &str, data_type: DataType) -> arrow::datatypes::Field {
    arrow::datatypes::Field::new(name, data_type, false)
}

pub(crate) fn schema(fields: Vec<arrow::datatypes::Field>) -> SchemaRef {
    Arc::new(Schema::new(fields))
}

#[cfg(test)]
mod tests {
    use super::*;
    use arrow::array::{
        DictionaryArray, FixedSizeListArray, Float32Array, LargeListArray, LargeStringArray,
        ListArray, StringArray, StringViewArray, UInt32Array,
    };
    use arrow::datatypes::{Field, Float32Type, Int8Type, UInt32Type};
    use parquet::basic::{BrotliLevel, GzipLevel};

    /// Writes `batch` as another tool would: no provenance, the given codec.
    fn write_foreign(path: &Path, batch: &RecordBatch, compression: Compression) {
        let properties = WriterProperties::builder()
            .set_compression(compression)
            .build();
        let mut writer = ArrowWriter::try_new(
            File::create(path).unwrap(),
            batch.schema(),
            Some(properties),
        )
        .unwrap();
        writer.write(batch).unwrap();
        writer.close().unwrap();
    }

    fn utf8_schema() -> SchemaRef {
        schema(vec![field("image", DataType::Utf8)])
    }

    fn images(table: &Table) -> Vec<String> {
        table
            .batches
            .iter()
            .flat_map(|b| {
                let column = b.column(0).as_any().downcast_ref::<StringArray>().unwrap();
                column
                    .iter()
                    .map(|s| s.unwrap().to_string())
                    .collect::<Vec<_>>()
            })
            .collect()
    }

    #[test]
    fn every_codec_the_ecosystem_writes_is_read() {
        let dir = tempfile::tempdir().unwrap();
        let batch = RecordBatch::try_new(
            utf8_schema(),
            vec![Arc::new(StringArray::from(vec!["a.jpg", "b.jpg", "a.jpg"]))],
        )
        .unwrap();
        let codecs = [
            Compression::UNCOMPRESSED,
            Compression::SNAPPY,
            Compression::GZIP(GzipLevel::default()),
            Compression::LZ4,
            Compression::LZ4_RAW,
            Compression::BROTLI(BrotliLevel::default()),
            Compression::ZSTD(ZstdLevel::default()),
        ];
        for codec in codecs {
            let path = dir.path().join(format!("{codec}.parquet"));
            write_foreign(&path, &batch, codec);
            let table = read_table(&path, &utf8_schema(), Stage::Cleaner).unwrap();
            assert!(table.provenance.is_none());
            assert_eq!(images(&table), ["a.jpg", "b.jpg", "a.jpg"], "{codec}");
        }
    }

    #[test]
    fn large_view_and_dictionary_strings_read_as_utf8() {
        let dir = tempfile::tempdir().unwrap();
        let dictionary: DictionaryArray<Int8Type> =
            vec!["train", "val", "train"].into_iter().collect();
        let columns: [ArrayRef; 3] = [
            Arc::new(LargeStringArray::from(vec!["train", "val", "train"])),
            Arc::new(StringViewArray::from(vec!["train", "val", "train"])),
            Arc::new(dictionary),
        ];
        for (i, column) in columns.into_iter().enumerate() {
            let path = dir.path().join(format!("{i}.parquet"));
            let foreign = Schema::new(vec![Field::new("image", column.data_type().clone(), true)]);
            let batch = RecordBatch::try_new(Arc::new(foreign), vec![column]).unwrap();
            write_foreign(&path, &batch, Compression::SNAPPY);
            let table = read_table(&path, &utf8_schema(), Stage::Cleaner).unwrap();
            assert_eq!(images(&table), ["train", "val", "train"], "encoding {i}");
        }
    }

    #[test]
    fn large_lists_read_as_lists_and_variable_lists_as_fixed_size() {
        let dir = tempfile::tempdir().unwrap();
        let ids = Arc::new(Field::new_list_field(DataType::UInt32, true));
        let large = LargeListArray::from_iter_primitive::<UInt32Type, _, _>(vec![
            Some(vec![Some(1), Some(5), Some(2)]),
            Some(vec![Some(1), Some(2)]),
        ]);
        let expected = schema(vec![field(
            "ids",
            DataType::List(Arc::new(Field::new_list_field(DataType::UInt32, false))),
        )]);
        let path = dir.path().join("large.parquet");
        let foreign = Schema::new(vec![Field::new("ids", DataType::LargeList(ids), true)]);
        write_foreign(
            &path,
            &RecordBatch::try_new(Arc::new(foreign), vec![Arc::new(large)]).unwrap(),
            Compression::SNAPPY,
        );
        let table = read_table(&path, &expected, Stage::Tokenizer).unwrap();
        let lists = table.batches[0]
            .column(0)
            .as_any()
            .downcast_ref::<ListArray>()
            .unwrap();
        let first = lists.value(0);
        let first = first.as_any().downcast_ref::<UInt32Array>().unwrap();
        assert_eq!(first.values().to_vec(), [1, 5, 2]);

        // Embeddings of 3 values as a plain list (pandas, DuckDB) -> fixed_size_list<float, 3>.
        let fixed = schema(vec![field(
            "feature",
            DataType::FixedSizeList(Arc::new(Field::new_list_field(DataType::Float32, false)), 3),
        )]);
        let lists = |rows: Vec<Vec<f32>>| {
            ListArray::from_iter_primitive::<Float32Type, _, _>(
                rows.into_iter()
                    .map(|r| Some(r.into_iter().map(Some).collect::<Vec<_>>())),
            )
        };
        let write_lists = |name: &str, rows: Vec<Vec<f32>>| {
            let path = dir.path().join(name);
            let column = lists(rows);
            let foreign = Schema::new(vec![Field::new(
                "feature",
                column.data_type().clone(),
                true,
            )]);
            write_foreign(
                &path,
                &RecordBatch::try_new(Arc::new(foreign), vec![Arc::new(column)]).unwrap(),
                Compression::SNAPPY,
            );
            path
        };
        let good = write_lists(
            "good.parquet",
            vec![vec![1.0, 2.0, 3.0], vec![4.0, 5.0, 6.0]],
        );
        let table = read_table(&good, &fixed, Stage::Featurizer).unwrap();
        let column = table.batches[0].column(0);
        let values = column
            .as_any()
            .downcast_ref::<FixedSizeListArray>()
            .unwrap()
            .values();
        let values = values.as_any().downcast_ref::<Float32Array>().unwrap();
        assert_eq!(values.values().to_vec(), [1.0, 2.0, 3.0, 4.0, 5.0, 6.0]);

        let bad = write_lists("bad.parquet", vec![vec![1.0, 2.0, 3.0], vec![4.0, 5.0]]);
        let err = read_table(&bad, &fixed, Stage::Featurizer)
            .err()
            .unwrap()
            .to_string();
        assert_eq!(
            err,
            format!(
                "{}: column `feature`: has 1 null values (or values that do not fit \
                 FixedSizeList(3 x non-null Float32): a list of another length, a number out of \
                 range)",
                bad.display()
            )
        );
    }
}
