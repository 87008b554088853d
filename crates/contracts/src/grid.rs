//! The grid dataset, `grid/part-NNNNN.parquet` beside `features/`: ResNet50's last feature map
//! before pooling (`[2048, 7, 7]` for a 224 crop), one row per image, for the attention
//! decoder. The featurizer writes it from the same network pass as the pooled vectors, part for
//! part, only when the decoder needs it.
//!
//! A row is `image` utf8 and `grid` fixed_size_list<float32, C*H*W> in `[C, H, W]` order; the
//! shape is in the key-value metadata (`imagecaptioning.grid_shape` = `2048,7,7`). Flickr8k's
//! grid is 8,091 x 100,352 floats, 3.2 GB before compression, so nothing reads it whole:
//! [`GridReader`] streams it in small batches, and [`GridStore`] keeps the rows a stage needs in
//! an unnamed temp file, read back a batch at a time (the page cache, not the process, holds
//! what is hot).

use std::collections::HashMap;
use std::fs::File;
use std::os::unix::fs::FileExt;
use std::path::{Path, PathBuf};
use std::sync::Arc;

use arrow::array::{AsArray, FixedSizeListArray, Float32Array, RecordBatch, StringArray};
use arrow::datatypes::{DataType, Field, Float32Type, SchemaRef};
use parquet::arrow::arrow_reader::{ParquetRecordBatchReader, ParquetRecordBatchReaderBuilder};

use crate::dataset::dataset_parts;
use crate::error::ContractError;
use crate::parquet_io::{TableWriter, check_origin, conform, field, open_input, schema};
use crate::provenance::Provenance;
use crate::stage::Stage;

/// Metadata key of the grid shape, `channels,height,width`.
pub const GRID_SHAPE_KEY: &str = "imagecaptioning.grid_shape";

/// Rows per row group and per read: the writer buffers a whole group (400 KB a row).
const GRID_ROWS_PER_GROUP: usize = 64;

/// The shape of one image's grid.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct GridShape {
    pub channels: usize,
    pub height: usize,
    pub width: usize,
}

impl GridShape {
    /// Grid cells, the regions attention chooses between.
    pub fn regions(&self) -> usize {
        self.height * self.width
    }

    /// Floats per image.
    pub fn len(&self) -> usize {
        self.channels * self.regions()
    }

    pub fn is_empty(&self) -> bool {
        self.len() == 0
    }

    /// `2048,7,7`
    pub fn to_metadata(&self) -> String {
        format!("{},{},{}", self.channels, self.height, self.width)
    }

    pub fn parse(text: &str) -> Option<Self> {
        let mut dims = text.split(',').map(|d| d.trim().parse::<usize>().ok());
        let shape = Self {
            channels: dims.next()??,
            height: dims.next()??,
            width: dims.next()??,
        };
        (dims.next().is_none() && !shape.is_empty()).then_some(shape)
    }

    fn schema(&self) -> SchemaRef {
        let item = Arc::new(Field::new_list_field(DataType::Float32, false));
        schema(vec![
            field("image", DataType::Utf8),
            field("grid", DataType::FixedSizeList(item, self.len() as i32)),
        ])
    }
}

impl std::fmt::Display for GridShape {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "[{}, {}, {}]", self.channels, self.height, self.width)
    }
}

/// The grids of several images, each `[channels, height, width]` row-major.
#[derive(Debug, Clone, PartialEq)]
pub struct Grids {
    pub shape: GridShape,
    pub images: Vec<String>,
    pub values: Vec<f32>,
}

impl Grids {
    pub fn new(shape: GridShape) -> Self {
        Self {
            shape,
            images: Vec::new(),
            values: Vec::new(),
        }
    }

    pub fn row(&self, i: usize) -> &[f32] {
        &self.values[i * self.shape.len()..(i + 1) * self.shape.len()]
    }
}

/// Writes one grid part atomically, the shape in its metadata.
pub fn write_grid_part(
    path: &Path,
    grids: &Grids,
    provenance: &Provenance,
) -> Result<(), ContractError> {
    let shape = grids.shape;
    let schema = shape.schema();
    let mut writer = TableWriter::create_with(
        path,
        schema.clone(),
        provenance,
        GRID_ROWS_PER_GROUP,
        &[(GRID_SHAPE_KEY, shape.to_metadata())],
    )?;
    let item = Arc::new(Field::new_list_field(DataType::Float32, false));
    for start in (0..grids.images.len()).step_by(GRID_ROWS_PER_GROUP) {
        let end = (start + GRID_ROWS_PER_GROUP).min(grids.images.len());
        let values =
            Float32Array::from(grids.values[start * shape.len()..end * shape.len()].to_vec());
        let list =
            FixedSizeListArray::new(item.clone(), shape.len() as i32, Arc::new(values), None);
        let images = StringArray::from_iter_values(grids.images[start..end].iter());
        let batch = RecordBatch::try_new(schema.clone(), vec![Arc::new(images), Arc::new(list)])
            .expect("columns are built to match the schema");
        writer.write(&batch)?;
    }
    writer.finish()
}

/// One grid part, read a few rows at a time.
pub struct GridReader {
    path: PathBuf,
    shape: GridShape,
    provenance: Option<Provenance>,
    reader: ParquetRecordBatchReader,
}

impl GridReader {
    /// Opens `path`, checking its origin, its shape metadata and its columns.
    pub fn open(path: &Path) -> Result<Self, ContractError> {
        let file = open_input(path, Stage::Featurizer)?;
        let builder = ParquetRecordBatchReaderBuilder::try_new(file).map_err(|e| {
            ContractError::parquet(path, format!("not a readable Parquet file ({e})"))
        })?;
        let key_values = builder.metadata().file_metadata().key_value_metadata();
        let lookup = |key: &str| {
            key_values
                .and_then(|kvs| kvs.iter().find(|kv| kv.key == key))
                .and_then(|kv| kv.value.clone())
        };
        let provenance = Provenance::from_key_values(path, lookup)?;
        check_origin(path, provenance.as_ref(), Stage::Featurizer)?;
        let shape_text = lookup(GRID_SHAPE_KEY).ok_or_else(|| ContractError::Provenance {
            path: path.to_path_buf(),
            message: format!("no {GRID_SHAPE_KEY} metadata, so the grid's shape is unknown"),
            stage: Stage::Featurizer,
        })?;
        let shape = GridShape::parse(&shape_text).ok_or_else(|| ContractError::Provenance {
            path: path.to_path_buf(),
            message: format!("{GRID_SHAPE_KEY} is {shape_text:?}, expected channels,height,width"),
            stage: Stage::Featurizer,
        })?;
        let reader = builder
            .with_batch_size(GRID_ROWS_PER_GROUP)
            .build()
            .map_err(|e| ContractError::parquet(path, e))?;
        Ok(Self {
            path: path.to_path_buf(),
            shape,
            provenance,
            reader,
        })
    }

    pub fn shape(&self) -> GridShape {
        self.shape
    }

    /// `None` when another tool wrote the part.
    pub fn provenance(&self) -> Option<&Provenance> {
        self.provenance.as_ref()
    }

    /// The next few rows, `None` at the end.
    pub fn next_rows(&mut self) -> Result<Option<Grids>, ContractError> {
        let Some(batch) = self.reader.next() else {
            return Ok(None);
        };
        let batch = batch.map_err(|e| ContractError::parquet(&self.path, e))?;
        let batch = conform(&self.path, &batch, &self.shape.schema())?;
        let images = batch
            .column_by_name("image")
            .expect("conformed")
            .as_string::<i32>();
        let list = batch
            .column_by_name("grid")
            .expect("conformed")
            .as_fixed_size_list();
        let values = list.values().as_primitive::<Float32Type>();
        Ok(Some(Grids {
            shape: self.shape,
            images: images
                .iter()
                .map(|s| s.unwrap_or_default().to_string())
                .collect(),
            values: values.values()[..batch.num_rows() * self.shape.len()].to_vec(),
        }))
    }
}

/// The grids a stage needs, in the order it asks for them, kept in an unnamed temp file
/// (removed by the OS when the store is dropped, even after a crash) and stored region-major,
/// `[regions, channels]`, the layout attention reads.
#[derive(Debug)]
pub struct GridStore {
    file: File,
    shape: GridShape,
    rows: usize,
}

impl GridStore {
    /// Streams every part of `dir` and keeps the grids of `images`, row `i` for `images[i]`;
    /// the temp file goes in `temp_dir` (about 400 KB an image). An image without a grid, or
    /// with two, is an error naming it; so are parts of different shapes.
    pub fn build(dir: &Path, images: &[String], temp_dir: &Path) -> Result<Self, ContractError> {
        let stale = |message: String| ContractError::Provenance {
            path: dir.to_path_buf(),
            message,
            stage: Stage::Featurizer,
        };
        let parts = dataset_parts(dir).map_err(|e| match e {
            ContractError::Io { error, .. } if error.kind() == std::io::ErrorKind::NotFound => {
                ContractError::MissingInput {
                    path: dir.to_path_buf(),
                    stage: Stage::Featurizer,
                }
            }
            other => other,
        })?;
        if parts.is_empty() {
            return Err(stale("no part-*.parquet files".into()));
        }
        let row_of: HashMap<&str, usize> = images
            .iter()
            .enumerate()
            .map(|(i, image)| (image.as_str(), i))
            .collect();
        let mut found = vec![false; images.len()];
        let mut store: Option<Self> = None;
        for part in &parts {
            let mut reader = GridReader::open(part)?;
            let shape = reader.shape();
            let store = match &store {
                Some(store) if store.shape != shape => {
                    return Err(stale(format!(
                        "{} holds grids of shape {shape}, other parts {}",
                        part.display(),
                        store.shape
                    )));
                }
                Some(store) => store,
                None => store.insert(Self::create(shape, images.len(), temp_dir)?),
            };
            let mut region_major = vec![0f32; shape.len()];
            while let Some(grids) = reader.next_rows()? {
                for (i, image) in grids.images.iter().enumerate() {
                    let Some(&row) = row_of.get(image.as_str()) else {
                        continue;
                    };
                    if std::mem::replace(&mut found[row], true) {
                        return Err(stale(format!("image {image} has more than one grid")));
                    }
                    to_region_major(grids.row(i), shape, &mut region_major);
                    store.put(row, &region_major)?;
                }
            }
        }
        let missing: Vec<&String> = images
            .iter()
            .zip(&found)
            .filter(|(_, found)| !**found)
            .map(|(image, _)| image)
            .collect();
        if let Some(first) = missing.first() {
            return Err(stale(format!(
                "{} images have no grid (first: {first})",
                missing.len()
            )));
        }
        Ok(store.expect("at least one part"))
    }

    /// An empty store of `rows` grids of `shape` (zeros until [`Self::put`]), its temp file in
    /// `temp_dir`.
    pub fn create(shape: GridShape, rows: usize, temp_dir: &Path) -> Result<Self, ContractError> {
        let io = |e| ContractError::io(temp_dir, e);
        let file = tempfile::tempfile_in(temp_dir).map_err(io)?;
        file.set_len((rows * shape.len() * 4) as u64).map_err(io)?;
        Ok(Self { file, shape, rows })
    }

    /// Stores row `row`, `[regions, channels]`.
    pub fn put(&self, row: usize, region_major: &[f32]) -> Result<(), ContractError> {
        assert!(row < self.rows && region_major.len() == self.shape.len());
        self.file
            .write_all_at(as_bytes(region_major), offset(row, self.shape))
            .map_err(|e| ContractError::io(Path::new("grid store (temp file)"), e))
    }

    pub fn shape(&self) -> GridShape {
        self.shape
    }

    pub fn len(&self) -> usize {
        self.rows
    }

    pub fn is_empty(&self) -> bool {
        self.rows == 0
    }

    /// The grids of `rows`, one after another, each `[regions, channels]`.
    pub fn read(&self, rows: &[usize]) -> Result<Vec<f32>, ContractError> {
        let len = self.shape.len();
        let mut out = vec![0f32; rows.len() * len];
        for (chunk, &row) in out.chunks_mut(len).zip(rows) {
            assert!(row < self.rows, "grid row {row} of {}", self.rows);
            self.file
                .read_exact_at(as_bytes_mut(chunk), offset(row, self.shape))
                .map_err(|e| ContractError::io(Path::new("grid store (temp file)"), e))?;
        }
        Ok(out)
    }
}

fn offset(row: usize, shape: GridShape) -> u64 {
    (row * shape.len() * 4) as u64
}

/// `[channels, regions]` -> `[regions, channels]`.
pub fn to_region_major(grid: &[f32], shape: GridShape, out: &mut [f32]) {
    let (channels, regions) = (shape.channels, shape.regions());
    for c in 0..channels {
        for r in 0..regions {
            out[r * channels + c] = grid[c * regions + r];
        }
    }
}

fn as_bytes(values: &[f32]) -> &[u8] {
    bytemuck::cast_slice(values)
}

fn as_bytes_mut(values: &mut [f32]) -> &mut [u8] {
    bytemuck::cast_slice_mut(values)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn shape() -> GridShape {
        GridShape {
            channels: 3,
            height: 2,
            width: 2,
        }
    }

    fn grids(images: &[&str]) -> Grids {
        let shape = shape();
        Grids {
            shape,
            images: images.iter().map(|s| s.to_string()).collect(),
            values: (0..images.len() * shape.len()).map(|i| i as f32).collect(),
        }
    }

    fn provenance() -> Provenance {
        Provenance::new(Stage::Featurizer, serde_json::json!({}))
    }

    #[test]
    fn a_part_reads_back_with_its_shape() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("part-00000.parquet");
        let written = grids(&["a.jpg", "b.jpg"]);
        write_grid_part(&path, &written, &provenance()).unwrap();
        let mut reader = GridReader::open(&path).unwrap();
        assert_eq!(reader.shape(), shape());
        assert_eq!(reader.next_rows().unwrap(), Some(written));
        assert_eq!(reader.next_rows().unwrap(), None);
    }

    #[test]
    fn the_store_keeps_the_asked_images_region_major_in_the_asked_order() {
        let dir = tempfile::tempdir().unwrap();
        write_grid_part(
            &dir.path().join("part-00000.parquet"),
            &grids(&["a.jpg", "b.jpg"]),
            &provenance(),
        )
        .unwrap();
        let mut second = grids(&["c.jpg"]);
        second.values.iter_mut().for_each(|v| *v += 100.0);
        write_grid_part(
            &dir.path().join("part-00001.parquet"),
            &second,
            &provenance(),
        )
        .unwrap();
        let wanted = ["c.jpg".to_string(), "a.jpg".to_string()];
        let store = GridStore::build(dir.path(), &wanted, dir.path()).unwrap();
        assert_eq!(store.len(), 2);
        // c.jpg's [3 channels, 4 regions] = 100..112 becomes region-major.
        let c: Vec<f32> = [0, 4, 8, 1, 5, 9, 2, 6, 10, 3, 7, 11]
            .iter()
            .map(|&i| 100.0 + i as f32)
            .collect();
        let a: Vec<f32> = [0, 4, 8, 1, 5, 9, 2, 6, 10, 3, 7, 11]
            .iter()
            .map(|&i| i as f32)
            .collect();
        assert_eq!(store.read(&[1, 0]).unwrap(), [a, c].concat());
    }

    #[test]
    fn missing_grids_and_unknown_shapes_are_refused() {
        let dir = tempfile::tempdir().unwrap();
        write_grid_part(
            &dir.path().join("part-00000.parquet"),
            &grids(&["a.jpg"]),
            &provenance(),
        )
        .unwrap();
        let wanted = [
            "a.jpg".to_string(),
            "z.jpg".to_string(),
            "y.jpg".to_string(),
        ];
        let err = GridStore::build(dir.path(), &wanted, dir.path()).unwrap_err();
        assert_eq!(
            err.to_string(),
            format!(
                "{}: 2 images have no grid (first: z.jpg); rerun the featurizer stage (`make features`)",
                dir.path().display()
            )
        );
        assert_eq!(GridShape::parse("2048,7,7").unwrap().len(), 2048 * 49);
        assert_eq!(GridShape::parse("2048,7"), None);
        assert_eq!(GridShape::parse("0,7,7"), None);
    }
}
