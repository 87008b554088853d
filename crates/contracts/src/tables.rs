//! The contract tables of `design.md` as typed rows, with their Arrow schemas and the
//! conversions to and from record batches.

use std::path::Path;
use std::sync::Arc;

use arrow::array::{
    Array, AsArray, FixedSizeListArray, Float32Array, ListBuilder, RecordBatch, StringArray,
    UInt8Array, UInt32Array, UInt32Builder, UInt64Array,
};
use arrow::datatypes::{
    DataType, Field, Float32Type, SchemaRef, UInt8Type, UInt32Type, UInt64Type,
};

use crate::error::ContractError;
use crate::parquet_io::{Table, field, read_table, schema, write_table};
use crate::provenance::{Provenance, Stage};

/// Length of a ResNet50 feature vector.
pub const FEATURE_DIM: usize = 2048;

pub const CAPTIONS_FILE: &str = "captions.parquet";
pub const VOCAB_FILE: &str = "vocab.parquet";
pub const TOKENS_FILE: &str = "tokens.parquet";
pub const FEATURES_DIR: &str = "features";
pub const PREDICTIONS_FILE: &str = "eval/predictions.parquet";

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

    pub fn as_str(self) -> &'static str {
        match self {
            Split::Train => "train",
            Split::Val => "val",
            Split::Test => "test",
        }
    }

    pub fn parse(text: &str) -> Option<Self> {
        match text {
            "train" => Some(Split::Train),
            "val" => Some(Split::Val),
            "test" => Some(Split::Test),
            _ => None,
        }
    }
}

impl std::fmt::Display for Split {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(self.as_str())
    }
}

/// One row of `captions.parquet`.
#[derive(Debug, Clone, PartialEq)]
pub struct CaptionRow {
    pub image: String,
    pub caption_idx: u8,
    pub split: Split,
    pub raw: String,
    pub clean: String,
}

/// One row of `vocab.parquet`.
#[derive(Debug, Clone, PartialEq)]
pub struct VocabRow {
    pub token_id: u32,
    pub token: String,
    pub count: u64,
}

/// One row of `tokens.parquet`.
#[derive(Debug, Clone, PartialEq)]
pub struct TokenRow {
    pub image: String,
    pub caption_idx: u8,
    pub split: Split,
    pub token_ids: Vec<u32>,
}

/// One row of `eval/predictions.parquet`.
#[derive(Debug, Clone, PartialEq)]
pub struct PredictionRow {
    pub image: String,
    pub split: Split,
    pub caption: String,
    pub log_prob: f32,
    pub decoder: String,
}

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

pub fn captions_schema() -> SchemaRef {
    schema(vec![
        field("image", DataType::Utf8),
        field("caption_idx", DataType::UInt8),
        field("split", DataType::Utf8),
        field("raw", DataType::Utf8),
        field("clean", DataType::Utf8),
    ])
}

pub fn vocab_schema() -> SchemaRef {
    schema(vec![
        field("token_id", DataType::UInt32),
        field("token", DataType::Utf8),
        field("count", DataType::UInt64),
    ])
}

pub fn tokens_schema() -> SchemaRef {
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

pub fn features_schema() -> SchemaRef {
    let item = Arc::new(Field::new_list_field(DataType::Float32, false));
    schema(vec![
        field("image", DataType::Utf8),
        field("feature", DataType::FixedSizeList(item, FEATURE_DIM as i32)),
    ])
}

pub fn predictions_schema() -> SchemaRef {
    schema(vec![
        field("image", DataType::Utf8),
        field("split", DataType::Utf8),
        field("caption", DataType::Utf8),
        field("log_prob", DataType::Float32),
        field("decoder", DataType::Utf8),
    ])
}

fn strings<'a>(rows: impl Iterator<Item = &'a str>) -> Arc<StringArray> {
    Arc::new(StringArray::from_iter_values(rows))
}

fn batch(schema: SchemaRef, columns: Vec<arrow::array::ArrayRef>) -> RecordBatch {
    RecordBatch::try_new(schema, columns).expect("columns are built to match the schema")
}

fn parse_split(path: &Path, text: &str) -> Result<Split, ContractError> {
    Split::parse(text).ok_or_else(|| ContractError::Schema {
        path: path.to_path_buf(),
        column: "split".into(),
        message: format!("value {text:?} is not one of train, val, test"),
    })
}

pub fn write_captions(
    path: &Path,
    rows: &[CaptionRow],
    provenance: &Provenance,
) -> Result<(), ContractError> {
    let columns: Vec<arrow::array::ArrayRef> = vec![
        strings(rows.iter().map(|r| r.image.as_str())),
        Arc::new(UInt8Array::from_iter_values(
            rows.iter().map(|r| r.caption_idx),
        )),
        strings(rows.iter().map(|r| r.split.as_str())),
        strings(rows.iter().map(|r| r.raw.as_str())),
        strings(rows.iter().map(|r| r.clean.as_str())),
    ];
    write_table(path, &batch(captions_schema(), columns), provenance)
}

pub fn read_captions(path: &Path) -> Result<(Vec<CaptionRow>, Option<Provenance>), ContractError> {
    let Table {
        batches,
        provenance,
    } = read_table(path, &captions_schema(), Stage::Cleaner)?;
    let mut rows = Vec::new();
    for b in &batches {
        let (image, idx, split, raw, clean) = (
            b.column(0).as_string::<i32>(),
            b.column(1).as_primitive::<UInt8Type>(),
            b.column(2).as_string::<i32>(),
            b.column(3).as_string::<i32>(),
            b.column(4).as_string::<i32>(),
        );
        for i in 0..b.num_rows() {
            rows.push(CaptionRow {
                image: image.value(i).to_string(),
                caption_idx: idx.value(i),
                split: parse_split(path, split.value(i))?,
                raw: raw.value(i).to_string(),
                clean: clean.value(i).to_string(),
            });
        }
    }
    Ok((rows, provenance))
}

pub fn write_vocab(
    path: &Path,
    rows: &[VocabRow],
    provenance: &Provenance,
) -> Result<(), ContractError> {
    let columns: Vec<arrow::array::ArrayRef> = vec![
        Arc::new(UInt32Array::from_iter_values(
            rows.iter().map(|r| r.token_id),
        )),
        strings(rows.iter().map(|r| r.token.as_str())),
        Arc::new(UInt64Array::from_iter_values(rows.iter().map(|r| r.count))),
    ];
    write_table(path, &batch(vocab_schema(), columns), provenance)
}

pub fn read_vocab(path: &Path) -> Result<(Vec<VocabRow>, Option<Provenance>), ContractError> {
    let Table {
        batches,
        provenance,
    } = read_table(path, &vocab_schema(), Stage::Tokenizer)?;
    let mut rows = Vec::new();
    for b in &batches {
        let (id, token, count) = (
            b.column(0).as_primitive::<UInt32Type>(),
            b.column(1).as_string::<i32>(),
            b.column(2).as_primitive::<UInt64Type>(),
        );
        for i in 0..b.num_rows() {
            rows.push(VocabRow {
                token_id: id.value(i),
                token: token.value(i).to_string(),
                count: count.value(i),
            });
        }
    }
    Ok((rows, provenance))
}

pub fn write_tokens(
    path: &Path,
    rows: &[TokenRow],
    provenance: &Provenance,
) -> Result<(), ContractError> {
    let item = Arc::new(Field::new_list_field(DataType::UInt32, false));
    let mut ids = ListBuilder::new(UInt32Builder::new()).with_field(item);
    for row in rows {
        ids.values().append_slice(&row.token_ids);
        ids.append(true);
    }
    let columns: Vec<arrow::array::ArrayRef> = vec![
        strings(rows.iter().map(|r| r.image.as_str())),
        Arc::new(UInt8Array::from_iter_values(
            rows.iter().map(|r| r.caption_idx),
        )),
        strings(rows.iter().map(|r| r.split.as_str())),
        Arc::new(ids.finish()),
    ];
    write_table(path, &batch(tokens_schema(), columns), provenance)
}

pub fn read_tokens(path: &Path) -> Result<(Vec<TokenRow>, Option<Provenance>), ContractError> {
    let Table {
        batches,
        provenance,
    } = read_table(path, &tokens_schema(), Stage::Tokenizer)?;
    let mut rows = Vec::new();
    for b in &batches {
        let (image, idx, split, ids) = (
            b.column(0).as_string::<i32>(),
            b.column(1).as_primitive::<UInt8Type>(),
            b.column(2).as_string::<i32>(),
            b.column(3).as_list::<i32>(),
        );
        for i in 0..b.num_rows() {
            let list = ids.value(i);
            rows.push(TokenRow {
                image: image.value(i).to_string(),
                caption_idx: idx.value(i),
                split: parse_split(path, split.value(i))?,
                token_ids: list.as_primitive::<UInt32Type>().values().to_vec(),
            });
        }
    }
    Ok((rows, provenance))
}

/// Features as a record batch (one part file is one or more of these).
pub fn features_batch(features: &Features) -> RecordBatch {
    let values = Float32Array::from(features.features.clone());
    let item = Arc::new(Field::new_list_field(DataType::Float32, false));
    let list = FixedSizeListArray::new(item, FEATURE_DIM as i32, Arc::new(values), None);
    let images = strings(features.images.iter().map(String::as_str));
    batch(features_schema(), vec![images, Arc::new(list)])
}

pub fn write_features(
    path: &Path,
    features: &Features,
    provenance: &Provenance,
) -> Result<(), ContractError> {
    write_table(path, &features_batch(features), provenance)
}

/// Reads one features part file.
pub fn read_features(path: &Path) -> Result<(Features, Option<Provenance>), ContractError> {
    let Table {
        batches,
        provenance,
    } = read_table(path, &features_schema(), Stage::Featurizer)?;
    let mut out = Features::default();
    for b in &batches {
        let images = b.column(0).as_string::<i32>();
        let list = b.column(1).as_fixed_size_list();
        out.images
            .extend(images.iter().map(|s| s.unwrap_or_default().to_string()));
        let values = list.values().as_primitive::<Float32Type>();
        let start = list.offset() * FEATURE_DIM;
        out.features
            .extend_from_slice(&values.values()[start..start + list.len() * FEATURE_DIM]);
    }
    Ok((out, provenance))
}

pub fn write_predictions(
    path: &Path,
    rows: &[PredictionRow],
    provenance: &Provenance,
) -> Result<(), ContractError> {
    let columns: Vec<arrow::array::ArrayRef> = vec![
        strings(rows.iter().map(|r| r.image.as_str())),
        strings(rows.iter().map(|r| r.split.as_str())),
        strings(rows.iter().map(|r| r.caption.as_str())),
        Arc::new(Float32Array::from_iter_values(
            rows.iter().map(|r| r.log_prob),
        )),
        strings(rows.iter().map(|r| r.decoder.as_str())),
    ];
    write_table(path, &batch(predictions_schema(), columns), provenance)
}

pub fn read_predictions(
    path: &Path,
) -> Result<(Vec<PredictionRow>, Option<Provenance>), ContractError> {
    let Table {
        batches,
        provenance,
    } = read_table(path, &predictions_schema(), Stage::Evaluator)?;
    let mut rows = Vec::new();
    for b in &batches {
        let (image, split, caption, log_prob, decoder) = (
            b.column(0).as_string::<i32>(),
            b.column(1).as_string::<i32>(),
            b.column(2).as_string::<i32>(),
            b.column(3).as_primitive::<Float32Type>(),
            b.column(4).as_string::<i32>(),
        );
        for i in 0..b.num_rows() {
            rows.push(PredictionRow {
                image: image.value(i).to_string(),
                split: parse_split(path, split.value(i))?,
                caption: caption.value(i).to_string(),
                log_prob: log_prob.value(i),
                decoder: decoder.value(i).to_string(),
            });
        }
    }
    Ok((rows, provenance))
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
        write_captions(&path, &rows, &provenance()).unwrap();
        let (back, prov) = read_captions(&path).unwrap();
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
        write_tokens(&dir.path().join("t.parquet"), &tokens, &prov).unwrap();
        assert_eq!(
            read_tokens(&dir.path().join("t.parquet")).unwrap().0,
            tokens
        );

        let features = Features {
            images: vec!["x".into(), "y".into()],
            features: (0..2 * FEATURE_DIM).map(|i| i as f32).collect(),
        };
        let prov = Provenance::new(Stage::Featurizer, ());
        write_features(&dir.path().join("f.parquet"), &features, &prov).unwrap();
        let (back, _) = read_features(&dir.path().join("f.parquet")).unwrap();
        assert_eq!(back, features);
        assert_eq!(back.row(1)[0], FEATURE_DIM as f32);
    }

    #[test]
    fn wrong_stage_is_refused_with_the_stage_to_rerun() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("x.parquet");
        write_captions(&path, &[caption("a", Split::Train)], &provenance()).unwrap();
        let err = read_vocab(&path).unwrap_err().to_string();
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
        let err = read_vocab(&path).unwrap_err().to_string();
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
        let err = read_tokens(Path::new("/nonexistent/tokens.parquet")).unwrap_err();
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
