//! The contract tables (the README's Outputs section) as typed rows. Each table is a [`Table`]: its Arrow
//! schema, the stage that writes it, and the conversion of its rows to and from record
//! batches, by column name. [`read`] and [`write`] do the rest for every table alike.

use std::path::Path;
use std::sync::Arc;

use arrow::array::{
    Array, ArrayRef, AsArray, FixedSizeListArray, Float32Array, Float32Builder, ListBuilder,
    RecordBatch, StringArray, UInt8Array, UInt32Array, UInt32Builder, UInt64Array,
};
use arrow::datatypes::{
    DataType, Field, Float32Type, SchemaRef, UInt8Type, UInt32Type, UInt64Type,
};

use crate::error::ContractError;
use crate::parquet_io::{field, read_table, schema, write_table};
use crate::provenance::{Provenance, Stage};

pub use crate::artifacts::{CAPTIONS_FILE, FEATURES_DIR, TOKENS_FILE, VOCAB_FILE};

/// Length of a ResNet50 feature vector.
pub const FEATURE_DIM: usize = 2048;

/// Which part of the dataset an image belongs to.
#[derive(
    Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash, serde::Serialize, serde::Deserialize,
)]
#[serde(rename_all = "lowercase")]
pub enum Split {
    Train,
    Val,
    Test,
}

impl Split {
    pub const ALL: [Split; 3] = [Split::Train, Split::Val, Split::Test];
    /// The splits' names, in the order of [`Self::ALL`] (the config's choices and the
    /// `split` column's values).
    pub const NAMES: &'static [&'static str] = &["train", "val", "test"];

    pub fn as_str(self) -> &'static str {
        Self::NAMES[self as usize]
    }

    pub fn parse(text: &str) -> Option<Self> {
        Self::ALL.into_iter().find(|split| split.as_str() == text)
    }
}

impl std::fmt::Display for Split {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(self.as_str())
    }
}

/// One of the contract tables.
pub trait Table {
    /// The rows as a stage holds them.
    type Rows: Default;
    /// The stage that writes the table: a file of ours written by another stage is refused.
    const STAGE: Stage;
    /// The contract schema; a file is read by these column names, extra columns ignored.
    fn schema() -> SchemaRef;
    /// The rows as one record batch of [`Self::schema`].
    fn to_batch(rows: &Self::Rows) -> RecordBatch;
    /// Appends the rows of a batch already conformed to [`Self::schema`].
    fn extend(rows: &mut Self::Rows, batch: &Columns<'_>) -> Result<(), ContractError>;
}

/// Writes `rows` to `path` atomically, with `provenance` in its metadata.
pub fn write<T: Table>(
    path: &Path,
    rows: &T::Rows,
    provenance: &Provenance,
) -> Result<(), ContractError> {
    write_table(path, &T::to_batch(rows), provenance)
}

/// Reads `path`, checking its columns and, for a file of ours, that it is this table's.
pub fn read<T: Table>(path: &Path) -> Result<(T::Rows, Option<Provenance>), ContractError> {
    let table = read_table(path, &T::schema(), T::STAGE)?;
    let mut rows = T::Rows::default();
    for batch in &table.batches {
        T::extend(&mut rows, &Columns { path, batch })?;
    }
    Ok((rows, table.provenance))
}

/// A conformed record batch, its columns looked up by name.
pub struct Columns<'a> {
    path: &'a Path,
    batch: &'a RecordBatch,
}

impl<'a> Columns<'a> {
    pub fn len(&self) -> usize {
        self.batch.num_rows()
    }

    pub fn is_empty(&self) -> bool {
        self.len() == 0
    }

    fn column(&self, name: &str) -> &'a ArrayRef {
        self.batch
            .column_by_name(name)
            .expect("read_table conformed the batch to the table's schema")
    }

    pub fn strings(&self, name: &str) -> &'a StringArray {
        self.column(name).as_string::<i32>()
    }

    pub fn u8s(&self, name: &str) -> &'a UInt8Array {
        self.column(name).as_primitive::<UInt8Type>()
    }

    pub fn u32s(&self, name: &str) -> &'a UInt32Array {
        self.column(name).as_primitive::<UInt32Type>()
    }

    pub fn u64s(&self, name: &str) -> &'a UInt64Array {
        self.column(name).as_primitive::<UInt64Type>()
    }

    pub fn f32s(&self, name: &str) -> &'a Float32Array {
        self.column(name).as_primitive::<Float32Type>()
    }

    /// Row `i` of a `list<uint32>` column.
    pub fn u32_list(&self, name: &str, i: usize) -> Vec<u32> {
        let list = self.column(name).as_list::<i32>().value(i);
        list.as_primitive::<UInt32Type>().values().to_vec()
    }

    /// Row `i` of a `list<float32>` column.
    pub fn f32_list(&self, name: &str, i: usize) -> Vec<f32> {
        let list = self.column(name).as_list::<i32>().value(i);
        list.as_primitive::<Float32Type>().values().to_vec()
    }

    /// The values of a `fixed_size_list<float32>` column, row after row.
    pub fn f32_rows(&self, name: &str) -> &'a [f32] {
        let list = self.column(name).as_fixed_size_list();
        let width = list.value_length() as usize;
        let values = list.values().as_primitive::<Float32Type>().values();
        &values[list.offset() * width..(list.offset() + list.len()) * width]
    }

    /// Row `i` of a `split` column.
    pub fn split(&self, name: &str, i: usize) -> Result<Split, ContractError> {
        let text = self.strings(name).value(i);
        Split::parse(text).ok_or_else(|| ContractError::Schema {
            path: self.path.to_path_buf(),
            column: name.into(),
            message: format!("value {text:?} is not one of train, val, test"),
        })
    }
}

fn strings<'a>(rows: impl Iterator<Item = &'a str>) -> ArrayRef {
    Arc::new(StringArray::from_iter_values(rows))
}

fn batch(schema: SchemaRef, columns: Vec<ArrayRef>) -> RecordBatch {
    RecordBatch::try_new(schema, columns).expect("columns are built to match the schema")
}

/// `captions.parquet`: one row per caption.
pub struct CaptionsTable;

#[derive(Debug, Clone, PartialEq)]
pub struct CaptionRow {
    pub image: String,
    pub caption_idx: u8,
    pub split: Split,
    pub raw: String,
    pub clean: String,
}

impl Table for CaptionsTable {
    type Rows = Vec<CaptionRow>;
    const STAGE: Stage = Stage::Cleaner;

    fn schema() -> SchemaRef {
        schema(vec![
            field("image", DataType::Utf8),
            field("caption_idx", DataType::UInt8),
            field("split", DataType::Utf8),
            field("raw", DataType::Utf8),
            field("clean", DataType::Utf8),
        ])
    }

    fn to_batch(rows: &Self::Rows) -> RecordBatch {
        batch(
            Self::schema(),
            vec![
                strings(rows.iter().map(|r| r.image.as_str())),
                Arc::new(UInt8Array::from_iter_values(
                    rows.iter().map(|r| r.caption_idx),
                )),
                strings(rows.iter().map(|r| r.split.as_str())),
                strings(rows.iter().map(|r| r.raw.as_str())),
                strings(rows.iter().map(|r| r.clean.as_str())),
            ],
        )
    }

    fn extend(rows: &mut Self::Rows, c: &Columns<'_>) -> Result<(), ContractError> {
        let (image, idx, raw, clean) = (
            c.strings("image"),
            c.u8s("caption_idx"),
            c.strings("raw"),
            c.strings("clean"),
        );
        for i in 0..c.len() {
            rows.push(CaptionRow {
                image: image.value(i).to_string(),
                caption_idx: idx.value(i),
                split: c.split("split", i)?,
                raw: raw.value(i).to_string(),
                clean: clean.value(i).to_string(),
            });
        }
        Ok(())
    }
}

/// `vocab.parquet`: one row per token id.
pub struct VocabTable;

#[derive(Debug, Clone, PartialEq)]
pub struct VocabRow {
    pub token_id: u32,
    pub token: String,
    pub count: u64,
}

impl Table for VocabTable {
    type Rows = Vec<VocabRow>;
    const STAGE: Stage = Stage::Tokenizer;

    fn schema() -> SchemaRef {
        schema(vec![
            field("token_id", DataType::UInt32),
            field("token", DataType::Utf8),
            field("count", DataType::UInt64),
        ])
    }

    fn to_batch(rows: &Self::Rows) -> RecordBatch {
        batch(
            Self::schema(),
            vec![
                Arc::new(UInt32Array::from_iter_values(
                    rows.iter().map(|r| r.token_id),
                )),
                strings(rows.iter().map(|r| r.token.as_str())),
                Arc::new(UInt64Array::from_iter_values(rows.iter().map(|r| r.count))),
            ],
        )
    }

    fn extend(rows: &mut Self::Rows, c: &Columns<'_>) -> Result<(), ContractError> {
        let (id, token, count) = (c.u32s("token_id"), c.strings("token"), c.u64s("count"));
        for i in 0..c.len() {
            rows.push(VocabRow {
                token_id: id.value(i),
                token: token.value(i).to_string(),
                count: count.value(i),
            });
        }
        Ok(())
    }
}

/// `tokens.parquet`: one training sequence per caption.
pub struct TokensTable;

#[derive(Debug, Clone, PartialEq)]
pub struct TokenRow {
    pub image: String,
    pub caption_idx: u8,
    pub split: Split,
    pub token_ids: Vec<u32>,
}

impl Table for TokensTable {
    type Rows = Vec<TokenRow>;
    const STAGE: Stage = Stage::Tokenizer;

    fn schema() -> SchemaRef {
        schema(vec![
            field("image", DataType::Utf8),
            field("caption_idx", DataType::UInt8),
            field("split", DataType::Utf8),
            field(
                "token_ids",
                DataType::List(Arc::new(Field::new_list_field(DataType::UInt32, false))),
            ),
        ])
    }

    fn to_batch(rows: &Self::Rows) -> RecordBatch {
        let item = Arc::new(Field::new_list_field(DataType::UInt32, false));
        let mut ids = ListBuilder::new(UInt32Builder::new()).with_field(item);
        for row in rows {
            ids.values().append_slice(&row.token_ids);
            ids.append(true);
        }
        batch(
            Self::schema(),
            vec![
                strings(rows.iter().map(|r| r.image.as_str())),
                Arc::new(UInt8Array::from_iter_values(
                    rows.iter().map(|r| r.caption_idx),
                )),
                strings(rows.iter().map(|r| r.split.as_str())),
                Arc::new(ids.finish()),
            ],
        )
    }

    fn extend(rows: &mut Self::Rows, c: &Columns<'_>) -> Result<(), ContractError> {
        let (image, idx) = (c.strings("image"), c.u8s("caption_idx"));
        for i in 0..c.len() {
            rows.push(TokenRow {
                image: image.value(i).to_string(),
                caption_idx: idx.value(i),
                split: c.split("split", i)?,
                token_ids: c.u32_list("token_ids", i),
            });
        }
        Ok(())
    }
}

/// One `features/part-NNNNN.parquet` file: one 2048-d vector per image.
pub struct FeaturesTable;

/// Feature vectors of several images, row-major (`features.len() == images.len() * FEATURE_DIM`).
#[derive(Debug, Clone, Default, PartialEq)]
pub struct Features {
    pub images: Vec<String>,
    pub features: Vec<f32>,
}

impl Features {
    pub fn row(&self, i: usize) -> &[f32] {
        &self.features[i * FEATURE_DIM..(i + 1) * FEATURE_DIM]
    }
}

impl Table for FeaturesTable {
    type Rows = Features;
    const STAGE: Stage = Stage::Featurizer;

    fn schema() -> SchemaRef {
        let item = Arc::new(Field::new_list_field(DataType::Float32, false));
        schema(vec![
            field("image", DataType::Utf8),
            field("feature", DataType::FixedSizeList(item, FEATURE_DIM as i32)),
        ])
    }

    fn to_batch(rows: &Self::Rows) -> RecordBatch {
        let values = Float32Array::from(rows.features.clone());
        let item = Arc::new(Field::new_list_field(DataType::Float32, false));
        let list = FixedSizeListArray::new(item, FEATURE_DIM as i32, Arc::new(values), None);
        let images = strings(rows.images.iter().map(String::as_str));
        batch(Self::schema(), vec![images, Arc::new(list)])
    }

    fn extend(rows: &mut Self::Rows, c: &Columns<'_>) -> Result<(), ContractError> {
        rows.images.extend(
            c.strings("image")
                .iter()
                .map(|s| s.unwrap_or_default().to_string()),
        );
        rows.features.extend_from_slice(c.f32_rows("feature"));
        Ok(())
    }
}

/// `eval/predictions.parquet`: one caption per image.
pub struct PredictionsTable;

#[derive(Debug, Clone, PartialEq)]
pub struct PredictionRow {
    pub image: String,
    pub split: Split,
    pub caption: String,
    pub log_prob: f32,
    pub decoder: String,
}

impl Table for PredictionsTable {
    type Rows = Vec<PredictionRow>;
    const STAGE: Stage = Stage::Evaluator;

    fn schema() -> SchemaRef {
        schema(vec![
            field("image", DataType::Utf8),
            field("split", DataType::Utf8),
            field("caption", DataType::Utf8),
            field("log_prob", DataType::Float32),
            field("decoder", DataType::Utf8),
        ])
    }

    fn to_batch(rows: &Self::Rows) -> RecordBatch {
        batch(
            Self::schema(),
            vec![
                strings(rows.iter().map(|r| r.image.as_str())),
                strings(rows.iter().map(|r| r.split.as_str())),
                strings(rows.iter().map(|r| r.caption.as_str())),
                Arc::new(Float32Array::from_iter_values(
                    rows.iter().map(|r| r.log_prob),
                )),
                strings(rows.iter().map(|r| r.decoder.as_str())),
            ],
        )
    }

    fn extend(rows: &mut Self::Rows, c: &Columns<'_>) -> Result<(), ContractError> {
        let (image, caption, log_prob, decoder) = (
            c.strings("image"),
            c.strings("caption"),
            c.f32s("log_prob"),
            c.strings("decoder"),
        );
        for i in 0..c.len() {
            rows.push(PredictionRow {
                image: image.value(i).to_string(),
                split: c.split("split", i)?,
                caption: caption.value(i).to_string(),
                log_prob: log_prob.value(i),
                decoder: decoder.value(i).to_string(),
            });
        }
        Ok(())
    }
}

/// `eval/attention.parquet`: where the attention model looked for each word it wrote, one
/// row per word; `weights` is row-major over the grid (`grid_height x grid_width`, in the
/// provenance config).
pub struct AttentionTable;

#[derive(Debug, Clone, PartialEq)]
pub struct AttentionRow {
    pub image: String,
    /// The word's place in the caption, from 0.
    pub position: u32,
    pub word: String,
    pub weights: Vec<f32>,
}

impl Table for AttentionTable {
    type Rows = Vec<AttentionRow>;
    const STAGE: Stage = Stage::Evaluator;

    fn schema() -> SchemaRef {
        let item = Arc::new(Field::new_list_field(DataType::Float32, false));
        schema(vec![
            field("image", DataType::Utf8),
            field("position", DataType::UInt32),
            field("word", DataType::Utf8),
            field("weights", DataType::List(item)),
        ])
    }

    fn to_batch(rows: &Self::Rows) -> RecordBatch {
        let item = Field::new_list_field(DataType::Float32, false);
        let mut weights = ListBuilder::new(Float32Builder::new()).with_field(Arc::new(item));
        for row in rows {
            weights.values().append_slice(&row.weights);
            weights.append(true);
        }
        batch(
            Self::schema(),
            vec![
                strings(rows.iter().map(|r| r.image.as_str())),
                Arc::new(UInt32Array::from_iter_values(
                    rows.iter().map(|r| r.position),
                )),
                strings(rows.iter().map(|r| r.word.as_str())),
                Arc::new(weights.finish()),
            ],
        )
    }

    fn extend(rows: &mut Self::Rows, c: &Columns<'_>) -> Result<(), ContractError> {
        let (image, position, word) = (c.strings("image"), c.u32s("position"), c.strings("word"));
        for i in 0..c.len() {
            rows.push(AttentionRow {
                image: image.value(i).to_string(),
                position: position.value(i),
                word: word.value(i).to_string(),
                weights: c.f32_list("weights", i),
            });
        }
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn provenance() -> Provenance {
        Provenance::new(Stage::Cleaner, serde_json::json!({"seed": 1}))
    }

    fn caption(image: &str, split: Split) -> CaptionRow {
        CaptionRow {
            image: image.into(),
            caption_idx: 0,
            split,
            raw: "A dog.".into(),
            clean: "a dog".into(),
        }
    }

    #[test]
    fn captions_round_trip_with_provenance() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join(CAPTIONS_FILE);
        let rows = vec![
            caption("a.jpg", Split::Train),
            caption("b.jpg", Split::Test),
        ];
        write::<CaptionsTable>(&path, &rows, &provenance()).unwrap();
        let (back, prov) = read::<CaptionsTable>(&path).unwrap();
        assert_eq!(back, rows);
        assert_eq!(prov.unwrap(), provenance());
        let leftovers: Vec<_> = std::fs::read_dir(dir.path()).unwrap().collect();
        assert_eq!(leftovers.len(), 1, "temp file left behind");
    }

    #[test]
    fn tokens_and_features_round_trip() {
        let dir = tempfile::tempdir().unwrap();
        let tokens = vec![TokenRow {
            image: "a".into(),
            caption_idx: 3,
            split: Split::Val,
            token_ids: vec![1, 7, 2],
        }];
        let prov = Provenance::new(Stage::Tokenizer, ());
        write::<TokensTable>(&dir.path().join("t.parquet"), &tokens, &prov).unwrap();
        assert_eq!(
            read::<TokensTable>(&dir.path().join("t.parquet"))
                .unwrap()
                .0,
            tokens
        );

        let features = Features {
            images: vec!["x".into(), "y".into()],
            features: (0..2 * FEATURE_DIM).map(|i| i as f32).collect(),
        };
        let prov = Provenance::new(Stage::Featurizer, ());
        write::<FeaturesTable>(&dir.path().join("f.parquet"), &features, &prov).unwrap();
        let (back, _) = read::<FeaturesTable>(&dir.path().join("f.parquet")).unwrap();
        assert_eq!(back, features);
        assert_eq!(back.row(1)[0], FEATURE_DIM as f32);
    }

    #[test]
    fn wrong_stage_is_refused_with_the_stage_to_rerun() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("x.parquet");
        write::<CaptionsTable>(&path, &vec![caption("a", Split::Train)], &provenance()).unwrap();
        let err = read::<VocabTable>(&path).unwrap_err().to_string();
        assert_eq!(
            err,
            format!(
                "{}: written by the cleaner stage, expected the tokenizer stage; rerun the \
                 tokenizer stage (`make tokens`)",
                path.display()
            )
        );
    }

    #[test]
    fn missing_column_is_named() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("v.parquet");
        let schema = schema(vec![
            field("token_id", DataType::UInt32),
            field("token", DataType::Utf8),
        ]);
        let b = batch(
            schema,
            vec![
                Arc::new(UInt32Array::from(vec![0])),
                strings(["<pad>"].into_iter()),
            ],
        );
        write_table(&path, &b, &Provenance::new(Stage::Tokenizer, ())).unwrap();
        let err = read::<VocabTable>(&path).unwrap_err().to_string();
        assert_eq!(
            err,
            format!(
                "{}: column `count`: missing (expected UInt64)",
                path.display()
            )
        );
    }

    #[test]
    fn missing_file_says_which_stage_makes_it() {
        let err = read::<TokensTable>(Path::new("/nonexistent/tokens.parquet")).unwrap_err();
        assert_eq!(
            // As the binaries print it: the whole chain of causes.
            format!("{:#}", anyhow::Error::from(err)),
            "/nonexistent/tokens.parquet does not exist; run the tokenizer stage (`make tokens`)"
        );
    }

    #[test]
    fn stale_input_is_refused() {
        let dir = tempfile::tempdir().unwrap();
        let input = dir.path().join("captions.parquet");
        std::fs::write(&input, b"one").unwrap();
        let prov = Provenance::new(Stage::Tokenizer, ())
            .with_input(CAPTIONS_FILE, &input)
            .unwrap();
        prov.require_input(
            Path::new("tokens.parquet"),
            CAPTIONS_FILE,
            &input,
            Stage::Tokenizer,
        )
        .unwrap();
        std::fs::write(&input, b"two").unwrap();
        let err = prov
            .require_input(
                Path::new("tokens.parquet"),
                CAPTIONS_FILE,
                &input,
                Stage::Tokenizer,
            )
            .unwrap_err()
            .to_string();
        assert_eq!(
            err,
            format!(
                "tokens.parquet: it was built from a different {} than the one on disk now; \
                 rerun the tokenizer stage (`make tokens`)",
                input.display()
            )
        );
    }
}
