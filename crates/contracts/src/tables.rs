//! The contract tables (the README's Outputs section) as typed rows. Each table is a [`Table`]: its Arrow
//! schema, the stage that writes it, and the conversion of its rows to and from record
//! batches, by column name. A table of row structs is declared with `row_table!`, which
//! states each column once, as a field; [`read`] and [`write`] do the rest for every table
//! alike.

use std::path::Path;
use std::sync::Arc;

use arrow::array::{ArrayRef, FixedSizeListArray, Float32Array, RecordBatch};
use arrow::datatypes::{DataType, Field, SchemaRef};

pub use crate::columns::{ColumnValue, Columns};
use crate::error::ContractError;
use crate::parquet_io::{field, read_table, schema, write_table};
use crate::provenance::{Provenance, Stage};
pub use crate::split::Split;

pub use crate::artifacts::{CAPTIONS_FILE, FEATURES_DIR, TOKENS_FILE, VOCAB_FILE};

/// Length of a ResNet50 feature vector.
pub const FEATURE_DIM: usize = 2048;

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
        T::extend(&mut rows, &Columns::new(path, batch))?;
    }
    Ok((rows, table.provenance))
}

fn batch(schema: SchemaRef, columns: Vec<ArrayRef>) -> RecordBatch {
    RecordBatch::try_new(schema, columns).expect("columns are built to match the schema")
}

/// Declares a table whose rows are structs, one field per column: the row struct, the table
/// and its [`Table`] implementation, each column stated once (its name is the field's, its
/// type the field type's [`ColumnValue`]).
macro_rules! row_table {
    (
        $(#[doc = $doc:literal])*
        pub struct $table:ident($stage:expr) of $row:ident {
            $( $(#[doc = $field_doc:literal])* pub $field:ident: $type:ty, )+
        }
    ) => {
        $(#[doc = $doc])*
        pub struct $table;

        #[doc = concat!("One row of [`", stringify!($table), "`].")]
        #[derive(Debug, Clone, PartialEq)]
        pub struct $row {
            $( $(#[doc = $field_doc])* pub $field: $type, )+
        }

        impl Table for $table {
            type Rows = Vec<$row>;
            const STAGE: Stage = $stage;

            fn schema() -> SchemaRef {
                schema(vec![$(field(stringify!($field), <$type>::data_type()),)+])
            }

            fn to_batch(rows: &Self::Rows) -> RecordBatch {
                batch(
                    Self::schema(),
                    vec![$(<$type>::column(rows.iter().map(|row| &row.$field)),)+],
                )
            }

            fn extend(rows: &mut Self::Rows, c: &Columns<'_>) -> Result<(), ContractError> {
                rows.reserve(c.len());
                for i in 0..c.len() {
                    rows.push($row {
                        $($field: <$type>::read(c, stringify!($field), i)?,)+
                    });
                }
                Ok(())
            }
        }
    };
}

row_table! {
    /// `captions.parquet`: one row per caption.
    pub struct CaptionsTable(Stage::Cleaner) of CaptionRow {
        pub image: String,
        pub caption_idx: u8,
        pub split: Split,
        pub raw: String,
        pub clean: String,
    }
}

row_table! {
    /// `vocab.parquet`: one row per token id.
    pub struct VocabTable(Stage::Tokenizer) of VocabRow {
        pub token_id: u32,
        pub token: String,
        pub count: u64,
    }
}

row_table! {
    /// `tokens.parquet`: one training sequence per caption.
    pub struct TokensTable(Stage::Tokenizer) of TokenRow {
        pub image: String,
        pub caption_idx: u8,
        pub split: Split,
        pub token_ids: Vec<u32>,
    }
}

/// One `features/part-NNNNN.parquet` file: one 2048-d vector per image. Its rows are held
/// column by column ([`Features`]), the vectors as one block, so it is written out by hand.
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

impl FeaturesTable {
    fn feature_type() -> DataType {
        let item = Arc::new(Field::new_list_field(DataType::Float32, false));
        DataType::FixedSizeList(item, FEATURE_DIM as i32)
    }
}

impl Table for FeaturesTable {
    type Rows = Features;
    const STAGE: Stage = Stage::Featurizer;

    fn schema() -> SchemaRef {
        schema(vec![
            field("image", String::data_type()),
            field("feature", Self::feature_type()),
        ])
    }

    fn to_batch(rows: &Self::Rows) -> RecordBatch {
        let DataType::FixedSizeList(item, width) = Self::feature_type() else {
            unreachable!("the feature column is a fixed-size list")
        };
        let values = Float32Array::from(rows.features.clone());
        let list = FixedSizeListArray::new(item, width, Arc::new(values), None);
        batch(
            Self::schema(),
            vec![String::column(rows.images.iter()), Arc::new(list)],
        )
    }

    fn extend(rows: &mut Self::Rows, c: &Columns<'_>) -> Result<(), ContractError> {
        for i in 0..c.len() {
            rows.images.push(String::read(c, "image", i)?);
        }
        rows.features.extend_from_slice(c.f32_rows("feature"));
        Ok(())
    }
}

row_table! {
    /// `eval/predictions.parquet`: one caption per image.
    pub struct PredictionsTable(Stage::Evaluator) of PredictionRow {
        pub image: String,
        pub split: Split,
        pub caption: String,
        pub log_prob: f32,
        pub decoder: String,
    }
}

row_table! {
    /// `eval/attention.parquet`: where the attention model looked for each word it wrote, one
    /// row per word; `weights` is row-major over the grid (`grid_height x grid_width`, in the
    /// provenance config).
    pub struct AttentionTable(Stage::Evaluator) of AttentionRow {
        pub image: String,
        /// The word's place in the caption, from 0.
        pub position: u32,
        pub word: String,
        pub weights: Vec<f32>,
    }
}

#[cfg(test)]
mod tests {
    use arrow::array::UInt32Array;

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
                String::column([String::from("<pad>")].iter()),
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
