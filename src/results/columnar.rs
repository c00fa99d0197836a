//! Column-based row sets (`COLUMN_BASED_SET`: one `TColumn` per result column, each
//! `{values, nulls}`) to an Arrow `RecordBatch` of the result's schema.
//!
//! Null bitmap: bit `i % 8` (least significant first) of byte `i / 8` set means row `i` is NULL;
//! an empty bitmap means no NULLs, and a bitmap shorter than the column leaves the rows it does
//! not cover non-NULL. Fixed-width values move into Arrow buffers without a copy.

use std::sync::Arc;

use arrow_array::builder::{BinaryBuilder, StringBuilder};
use arrow_array::types::{Float32Type, Float64Type, Int16Type, Int32Type, Int64Type, Int8Type};
use arrow_array::{
    ArrayRef, ArrowPrimitiveType, BooleanArray, PrimitiveArray, RecordBatch, RecordBatchOptions,
};
use arrow_buffer::{BooleanBuffer, Buffer, NullBuffer, ScalarBuffer};
use arrow_schema::{DataType, Field, SchemaRef};

use crate::error::{Error, Result};
use crate::thrift::tcli::TColumn;

/// Converts the columns of a column-based row set to one batch of `schema`; `None` when the
/// row set has no rows. Every column must have the same length, and there must be one column
/// per schema field.
pub(crate) fn columns_to_batch(
    schema: &SchemaRef,
    columns: Vec<TColumn>,
) -> Result<Option<RecordBatch>> {
    if columns.len() != schema.fields().len() {
        return Err(Error::decode(format!(
            "the row set has {} columns but the result schema has {}",
            columns.len(),
            schema.fields().len()
        )));
    }
    let Some(rows) = columns.first().map(column_len) else {
        return Ok(None);
    };
    for (index, column) in columns.iter().enumerate() {
        if column_len(column) != rows {
            return Err(Error::decode(format!(
                "column {index} ({}) has {} values but column 0 has {rows}",
                schema.field(index).name(),
                column_len(column)
            )));
        }
    }
    if rows == 0 {
        return Ok(None);
    }
    let arrays = columns
        .into_iter()
        .zip(schema.fields().iter())
        .enumerate()
        .map(|(index, (column, field))| column_to_array(column, field, index))
        .collect::<Result<Vec<ArrayRef>>>()?;
    let options = RecordBatchOptions::new().with_row_count(Some(rows));
    let batch = RecordBatch::try_new_with_options(schema.clone(), arrays, &options)?;
    Ok(Some(batch))
}

/// How many values a column holds.
pub(crate) fn column_len(column: &TColumn) -> usize {
    match column {
        TColumn::BoolVal(c) => c.values.len(),
        TColumn::ByteVal(c) => c.values.len(),
        TColumn::I16Val(c) => c.values.len(),
        TColumn::I32Val(c) => c.values.len(),
        TColumn::I64Val(c) => c.values.len(),
        TColumn::DoubleVal(c) => c.values.len(),
        TColumn::StringVal(c) => c.values.len(),
        TColumn::BinaryVal(c) => c.values.len(),
    }
}

fn variant_name(column: &TColumn) -> &'static str {
    match column {
        TColumn::BoolVal(_) => "boolVal",
        TColumn::ByteVal(_) => "byteVal",
        TColumn::I16Val(_) => "i16Val",
        TColumn::I32Val(_) => "i32Val",
        TColumn::I64Val(_) => "i64Val",
        TColumn::DoubleVal(_) => "doubleVal",
        TColumn::StringVal(_) => "stringVal",
        TColumn::BinaryVal(_) => "binaryVal",
    }
}

/// The Arrow null buffer for a Hive null bitmap over `len` rows, `None` when no row is NULL.
pub(crate) fn nulls_from_bitmap(bitmap: &[u8], len: usize) -> Option<NullBuffer> {
    let bytes = len.div_ceil(8);
    let bitmap = &bitmap[..bitmap.len().min(bytes)];
    if bitmap.iter().all(|&b| b == 0) {
        return None;
    }
    // Arrow's validity bitmap has the same bit order with the opposite meaning (set = valid).
    let mut validity = vec![0xFFu8; bytes];
    for (v, n) in validity.iter_mut().zip(bitmap) {
        *v = !n;
    }
    let nulls = NullBuffer::new(BooleanBuffer::new(Buffer::from_vec(validity), 0, len));
    (nulls.null_count() > 0).then_some(nulls)
}

fn primitive<T: ArrowPrimitiveType>(values: Vec<T::Native>, nulls: &[u8]) -> ArrayRef {
    let len = values.len();
    Arc::new(PrimitiveArray::<T>::new(
        ScalarBuffer::from(values),
        nulls_from_bitmap(nulls, len),
    ))
}

fn column_to_array(column: TColumn, field: &Field, index: usize) -> Result<ArrayRef> {
    let array: ArrayRef = match (column, field.data_type()) {
        (TColumn::BoolVal(c), DataType::Boolean) => {
            let len = c.values.len();
            Arc::new(BooleanArray::new(
                BooleanBuffer::from(c.values),
                nulls_from_bitmap(&c.nulls, len),
            ))
        }
        (TColumn::ByteVal(c), DataType::Int8) => primitive::<Int8Type>(c.values, &c.nulls),
        (TColumn::I16Val(c), DataType::Int16) => primitive::<Int16Type>(c.values, &c.nulls),
        (TColumn::I32Val(c), DataType::Int32) => primitive::<Int32Type>(c.values, &c.nulls),
        (TColumn::I64Val(c), DataType::Int64) => primitive::<Int64Type>(c.values, &c.nulls),
        (TColumn::DoubleVal(c), DataType::Float64) => {
            let values = c.values.into_iter().map(|v| v.0).collect();
            primitive::<Float64Type>(values, &c.nulls)
        }
        (TColumn::DoubleVal(c), DataType::Float32) => {
            let values = c.values.into_iter().map(|v| v.0 as f32).collect();
            primitive::<Float32Type>(values, &c.nulls)
        }
        (TColumn::StringVal(c), DataType::Utf8) => {
            let nulls = nulls_from_bitmap(&c.nulls, c.values.len());
            let bytes = c.values.iter().map(String::len).sum();
            let mut builder = StringBuilder::with_capacity(c.values.len(), bytes);
            for (i, v) in c.values.iter().enumerate() {
                if nulls.as_ref().is_some_and(|n| n.is_null(i)) {
                    builder.append_null();
                } else {
                    builder.append_value(v);
                }
            }
            Arc::new(builder.finish())
        }
        (TColumn::BinaryVal(c), DataType::Binary) => {
            let nulls = nulls_from_bitmap(&c.nulls, c.values.len());
            let bytes = c.values.iter().map(Vec::len).sum();
            let mut builder = BinaryBuilder::with_capacity(c.values.len(), bytes);
            for (i, v) in c.values.iter().enumerate() {
                if nulls.as_ref().is_some_and(|n| n.is_null(i)) {
                    builder.append_null();
                } else {
                    builder.append_value(v);
                }
            }
            Arc::new(builder.finish())
        }
        // A column the schema types as a string but the server sent typed: show its values.
        (column, DataType::Utf8) => stringify(column),
        (column, other) => {
            return Err(Error::decode(format!(
                "column {index} ({}) is {other} in the result schema but the server sent {}",
                field.name(),
                variant_name(&column)
            )))
        }
    };
    Ok(array)
}

fn stringify(column: TColumn) -> ArrayRef {
    fn build<V>(values: Vec<V>, nulls: &[u8], show: impl Fn(&V) -> String) -> ArrayRef {
        let nulls = nulls_from_bitmap(nulls, values.len());
        let mut builder = StringBuilder::with_capacity(values.len(), values.len() * 8);
        for (i, v) in values.iter().enumerate() {
            if nulls.as_ref().is_some_and(|n| n.is_null(i)) {
                builder.append_null();
            } else {
                builder.append_value(show(v));
            }
        }
        Arc::new(builder.finish())
    }
    match column {
        TColumn::BoolVal(c) => build(c.values, &c.nulls, |v| v.to_string()),
        TColumn::ByteVal(c) => build(c.values, &c.nulls, |v| v.to_string()),
        TColumn::I16Val(c) => build(c.values, &c.nulls, |v| v.to_string()),
        TColumn::I32Val(c) => build(c.values, &c.nulls, |v| v.to_string()),
        TColumn::I64Val(c) => build(c.values, &c.nulls, |v| v.to_string()),
        TColumn::DoubleVal(c) => build(c.values, &c.nulls, |v| v.0.to_string()),
        TColumn::StringVal(c) => build(c.values, &c.nulls, String::clone),
        TColumn::BinaryVal(c) => build(c.values, &c.nulls, |v| {
            String::from_utf8_lossy(v).into_owned()
        }),
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::thrift::tcli::{
        TBinaryColumn, TBoolColumn, TByteColumn, TDoubleColumn, TI16Column, TI32Column, TI64Column,
        TStringColumn,
    };
    use crate::ErrorKind;
    use arrow_array::cast::AsArray;
    use arrow_array::Array;
    use arrow_schema::Schema;
    use thrift::OrderedFloat;

    fn schema(fields: Vec<(&str, DataType)>) -> SchemaRef {
        Arc::new(Schema::new(
            fields
                .into_iter()
                .map(|(n, t)| Field::new(n, t, true))
                .collect::<Vec<_>>(),
        ))
    }

    #[test]
    fn an_empty_bitmap_means_no_nulls() {
        let s = schema(vec![("id", DataType::Int64)]);
        let col = TColumn::I64Val(TI64Column::new(vec![1, 2, 3], vec![]));
        let batch = columns_to_batch(&s, vec![col]).unwrap().unwrap();
        assert_eq!(batch.num_rows(), 3);
        assert_eq!(batch.column(0).null_count(), 0);
        assert!(batch.column(0).nulls().is_none());
    }

    #[test]
    fn null_bit_i_is_bit_i_mod_8_of_byte_i_div_8() {
        // Rows 0, 3, 8 and 10 are NULL: byte 0 = 0b0000_1001, byte 1 = 0b0000_0101.
        let s = schema(vec![("v", DataType::Int32)]);
        let col = TColumn::I32Val(TI32Column::new(
            (0..11).collect(),
            vec![0b0000_1001, 0b0000_0101],
        ));
        let batch = columns_to_batch(&s, vec![col]).unwrap().unwrap();
        let nulls: Vec<usize> = (0..11).filter(|&i| batch.column(0).is_null(i)).collect();
        assert_eq!(nulls, vec![0, 3, 8, 10]);
        assert_eq!(batch.column(0).as_primitive::<Int32Type>().value(1), 1);
    }

    #[test]
    fn a_short_bitmap_leaves_the_remaining_rows_non_null() {
        let s = schema(vec![("v", DataType::Utf8)]);
        let values: Vec<String> = (0..20).map(|i| format!("v{i}")).collect();
        let col = TColumn::StringVal(TStringColumn::new(values, vec![0b1000_0000]));
        let batch = columns_to_batch(&s, vec![col]).unwrap().unwrap();
        let strings = batch.column(0).as_string::<i32>();
        assert_eq!(strings.null_count(), 1);
        assert!(strings.is_null(7));
        assert_eq!(strings.value(19), "v19");
    }

    #[test]
    fn converts_every_column_type() {
        let s = schema(vec![
            ("b", DataType::Boolean),
            ("i8", DataType::Int8),
            ("i16", DataType::Int16),
            ("i32", DataType::Int32),
            ("i64", DataType::Int64),
            ("f32", DataType::Float32),
            ("f64", DataType::Float64),
            ("s", DataType::Utf8),
            ("bin", DataType::Binary),
        ]);
        let null_row_1 = vec![0b10];
        let columns = vec![
            TColumn::BoolVal(TBoolColumn::new(vec![true, false], null_row_1.clone())),
            TColumn::ByteVal(TByteColumn::new(vec![-8, 0], null_row_1.clone())),
            TColumn::I16Val(TI16Column::new(vec![-16, 0], null_row_1.clone())),
            TColumn::I32Val(TI32Column::new(vec![-32, 0], null_row_1.clone())),
            TColumn::I64Val(TI64Column::new(vec![-64, 0], null_row_1.clone())),
            TColumn::DoubleVal(TDoubleColumn::new(
                vec![OrderedFloat(1.5), OrderedFloat(0.0)],
                null_row_1.clone(),
            )),
            TColumn::DoubleVal(TDoubleColumn::new(
                vec![OrderedFloat(2.25), OrderedFloat(0.0)],
                null_row_1.clone(),
            )),
            TColumn::StringVal(TStringColumn::new(
                vec!["héllo".into(), String::new()],
                null_row_1.clone(),
            )),
            TColumn::BinaryVal(TBinaryColumn::new(vec![vec![0, 255], vec![]], null_row_1)),
        ];
        let batch = columns_to_batch(&s, columns).unwrap().unwrap();
        assert_eq!(batch.schema(), s);
        for c in batch.columns() {
            assert!(c.is_valid(0) && c.is_null(1), "{:?}", c.data_type());
        }
        assert!(batch.column(0).as_boolean().value(0));
        assert_eq!(batch.column(1).as_primitive::<Int8Type>().value(0), -8);
        assert_eq!(batch.column(2).as_primitive::<Int16Type>().value(0), -16);
        assert_eq!(batch.column(3).as_primitive::<Int32Type>().value(0), -32);
        assert_eq!(batch.column(4).as_primitive::<Int64Type>().value(0), -64);
        assert_eq!(batch.column(5).as_primitive::<Float32Type>().value(0), 1.5);
        assert_eq!(batch.column(6).as_primitive::<Float64Type>().value(0), 2.25);
        assert_eq!(batch.column(7).as_string::<i32>().value(0), "héllo");
        assert_eq!(batch.column(8).as_binary::<i32>().value(0), &[0, 255]);
    }

    #[test]
    fn typed_values_for_a_string_column_are_shown_as_text() {
        let s = schema(vec![("d", DataType::Utf8)]);
        let col = TColumn::I32Val(TI32Column::new(vec![7, 0], vec![0b10]));
        let batch = columns_to_batch(&s, vec![col]).unwrap().unwrap();
        let strings = batch.column(0).as_string::<i32>();
        assert_eq!(strings.value(0), "7");
        assert!(strings.is_null(1));
    }

    #[test]
    fn mismatched_column_lengths_are_a_decode_error() {
        let s = schema(vec![("a", DataType::Int64), ("b", DataType::Utf8)]);
        let columns = vec![
            TColumn::I64Val(TI64Column::new(vec![1, 2, 3], vec![])),
            TColumn::StringVal(TStringColumn::new(vec!["x".into()], vec![])),
        ];
        let err = columns_to_batch(&s, columns).unwrap_err();
        assert_eq!(err.kind(), ErrorKind::Decode);
        assert!(
            err.to_string()
                .contains("column 1 (b) has 1 values but column 0 has 3"),
            "{err}"
        );
    }

    #[test]
    fn a_column_count_or_type_mismatch_is_a_decode_error() {
        let s = schema(vec![("a", DataType::Int64), ("b", DataType::Utf8)]);
        let one = vec![TColumn::I64Val(TI64Column::new(vec![1], vec![]))];
        let err = columns_to_batch(&s, one).unwrap_err();
        assert_eq!(err.kind(), ErrorKind::Decode);
        assert!(
            err.to_string()
                .contains("1 columns but the result schema has 2"),
            "{err}"
        );

        let s = schema(vec![("a", DataType::Int64)]);
        let wrong = vec![TColumn::BoolVal(TBoolColumn::new(vec![true], vec![]))];
        let err = columns_to_batch(&s, wrong).unwrap_err();
        assert_eq!(err.kind(), ErrorKind::Decode);
        assert!(
            err.to_string()
                .contains("is Int64 in the result schema but the server sent boolVal"),
            "{err}"
        );
    }

    #[test]
    fn zero_rows_yield_no_batch() {
        let s = schema(vec![("a", DataType::Int64)]);
        let empty = vec![TColumn::I64Val(TI64Column::new(vec![], vec![]))];
        assert!(columns_to_batch(&s, empty).unwrap().is_none());
        assert!(columns_to_batch(&schema(vec![]), vec![]).unwrap().is_none());
    }

    #[test]
    fn nulls_in_a_non_nullable_field_are_a_decode_error() {
        let s = Arc::new(Schema::new(vec![Field::new("a", DataType::Int64, false)]));
        let col = TColumn::I64Val(TI64Column::new(vec![1, 2], vec![0b1]));
        let err = columns_to_batch(&s, vec![col]).unwrap_err();
        assert_eq!(err.kind(), ErrorKind::Decode);
    }
}
