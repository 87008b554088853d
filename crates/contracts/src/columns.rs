//! How a row's field is one Parquet column: [`ColumnValue`] gives a Rust type its Arrow type,
//! builds the column from rows and reads a row back, so that a table states each column once
//! (its name and its type, in its row struct) and [`crate::tables`]' `row_table!` derives the
//! schema and both conversions from that.

use std::path::Path;
use std::sync::Arc;

use arrow::array::{
    Array, ArrayRef, AsArray, Float32Array, Float32Builder, ListBuilder, RecordBatch, StringArray,
    UInt8Array, UInt32Array, UInt32Builder, UInt64Array,
};
use arrow::datatypes::{DataType, Field, Float32Type, UInt8Type, UInt32Type, UInt64Type};

use crate::error::ContractError;
use crate::split::Split;

/// A conformed record batch, its columns looked up by name.
pub struct Columns<'a> {
    path: &'a Path,
    batch: &'a RecordBatch,
}

impl<'a> Columns<'a> {
    pub(crate) fn new(path: &'a Path, batch: &'a RecordBatch) -> Self {
        Self { path, batch }
    }

    pub fn len(&self) -> usize {
        self.batch.num_rows()
    }

    pub fn is_empty(&self) -> bool {
        self.len() == 0
    }

    /// The column `name`, which `read_table` made sure is there with the table's type.
    pub fn column(&self, name: &str) -> &'a ArrayRef {
        self.batch
            .column_by_name(name)
            .expect("read_table conformed the batch to the table's schema")
    }

    /// The values of a `fixed_size_list<float32>` column, row after row.
    pub fn f32_rows(&self, name: &str) -> &'a [f32] {
        let list = self.column(name).as_fixed_size_list();
        let width = list.value_length() as usize;
        let values = list.values().as_primitive::<Float32Type>().values();
        &values[list.offset() * width..(list.offset() + list.len()) * width]
    }
}

/// A Rust type stored as one column.
pub trait ColumnValue: Sized {
    /// The column's Arrow type.
    fn data_type() -> DataType;

    /// The column of `values`, one per row.
    fn column<'a>(values: impl Iterator<Item = &'a Self>) -> ArrayRef
    where
        Self: 'a;

    /// Row `i` of the column `name`.
    fn read(columns: &Columns<'_>, name: &str, i: usize) -> Result<Self, ContractError>;
}

impl ColumnValue for String {
    fn data_type() -> DataType {
        DataType::Utf8
    }

    fn column<'a>(values: impl Iterator<Item = &'a Self>) -> ArrayRef {
        Arc::new(StringArray::from_iter_values(values))
    }

    fn read(columns: &Columns<'_>, name: &str, i: usize) -> Result<Self, ContractError> {
        Ok(columns.column(name).as_string::<i32>().value(i).to_string())
    }
}

/// A split is stored by its name (`train`, `val`, `test`); any other value is an error naming
/// the file and the column.
impl ColumnValue for Split {
    fn data_type() -> DataType {
        DataType::Utf8
    }

    fn column<'a>(values: impl Iterator<Item = &'a Self>) -> ArrayRef {
        Arc::new(StringArray::from_iter_values(values.map(|s| s.as_str())))
    }

    fn read(columns: &Columns<'_>, name: &str, i: usize) -> Result<Self, ContractError> {
        let text = columns.column(name).as_string::<i32>().value(i);
        Split::parse(text).ok_or_else(|| ContractError::Schema {
            path: columns.path.to_path_buf(),
            column: name.into(),
            message: format!("value {text:?} is not one of {}", Split::NAMES.join(", ")),
        })
    }
}

/// Numbers, each as the Arrow primitive of the same width.
macro_rules! primitive_column {
    ($($rust:ty => $array:ty, $arrow:ty, $data_type:ident;)+) => {$(
        impl ColumnValue for $rust {
            fn data_type() -> DataType {
                DataType::$data_type
            }

            fn column<'a>(values: impl Iterator<Item = &'a Self>) -> ArrayRef {
                Arc::new(<$array>::from_iter_values(values.copied()))
            }

            fn read(columns: &Columns<'_>, name: &str, i: usize) -> Result<Self, ContractError> {
                Ok(columns.column(name).as_primitive::<$arrow>().value(i))
            }
        }
    )+};
}

primitive_column! {
    u8 => UInt8Array, UInt8Type, UInt8;
    u32 => UInt32Array, UInt32Type, UInt32;
    u64 => UInt64Array, UInt64Type, UInt64;
    f32 => Float32Array, Float32Type, Float32;
}

/// Lists of numbers, as `list<item>` with non-null items.
macro_rules! list_column {
    ($($item:ty => $builder:ty, $arrow:ty, $data_type:ident;)+) => {$(
        impl ColumnValue for Vec<$item> {
            fn data_type() -> DataType {
                DataType::List(Arc::new(Field::new_list_field(DataType::$data_type, false)))
            }

            fn column<'a>(values: impl Iterator<Item = &'a Self>) -> ArrayRef {
                let item = Arc::new(Field::new_list_field(DataType::$data_type, false));
                let mut lists = ListBuilder::new(<$builder>::new()).with_field(item);
                for list in values {
                    lists.values().append_slice(list);
                    lists.append(true);
                }
                Arc::new(lists.finish())
            }

            fn read(columns: &Columns<'_>, name: &str, i: usize) -> Result<Self, ContractError> {
                let list = columns.column(name).as_list::<i32>().value(i);
                Ok(list.as_primitive::<$arrow>().values().to_vec())
            }
        }
    )+};
}

list_column! {
    u32 => UInt32Builder, UInt32Type, UInt32;
    f32 => Float32Builder, Float32Type, Float32;
}
