//! The encode side of results, for the mock warehouse: Arrow schema and record-batch IPC messages
//! as Databricks puts them in `arrowSchema` / `TSparkArrowBatch.batch`, whole IPC streams (the
//! CloudFetch file format), and Arrow to Hive (`TTableSchema`, column-based `TColumn`s).
//!
//! Column-based values follow Databricks: timestamps as `1970-01-01 00:00:01[.fraction]` (UTC,
//! trailing zeros of the fraction dropped), dates as `1970-01-01`, decimals as plain numbers with
//! their scale (`-12.50`). Null bitmaps: bit `i % 8` of byte `i / 8` set means row `i` is NULL,
//! and a column without NULLs gets an empty bitmap.
//!
//! Intervals are Hive's text: a year-month interval (`Interval(YearMonth)`) as `[-]Y-M` (`1-2`,
//! `-0-3`), a day-time interval (`Interval(DayTime)`, `Duration` of any unit) as
//! `[-]D HH:MM:SS.nnnnnnnnn` (`1 02:03:04.500000000`). `Interval(MonthDayNano)` mixes months
//! with days and has no Hive form: such a column cannot be sent column-based.
//!
//! Complex values (`List`, `LargeList`, `FixedSizeList`, `Struct`, `Map`) are JSON text in the
//! shape Databricks and Spark give them in column-based results (`[1,2,null]`,
//! `{"a":1,"b":"x"}`, maps as objects); where Spark's text is not valid JSON (nested strings not
//! escaped, nested dates and timestamps not quoted) this encoder writes valid JSON.
//! [`json_text`] renders any array this way:
//!
//! | Arrow value | JSON |
//! |---|---|
//! | NULL (at any depth, and every `Null` value) | `null` |
//! | `Boolean` | `true` / `false` |
//! | integers | numbers: `-7` |
//! | `Float32`, `Float64` | numbers, shortest text that reads back exactly (`0.1`, `1.0`, `1e-7`); NaN and infinities as the strings `"NaN"`, `"Infinity"`, `"-Infinity"` |
//! | `Decimal128`, `Decimal256` | numbers in their top-level text: `-12.50` |
//! | strings | JSON strings, `"` `\` and control characters escaped |
//! | binaries | JSON strings holding standard base64 with padding |
//! | `Date32`, `Date64`, `Timestamp` | JSON strings holding their top-level text: `"2024-01-31"`, `"1970-01-01 00:00:01.5"` |
//! | intervals | JSON strings holding their top-level text: `"1-2"` |
//! | `List`, `LargeList`, `FixedSizeList` | arrays: `[1,2,null]` |
//! | `Struct` | objects with the fields in order: `{"a":1,"b":"x"}` |
//! | `Map` | objects with the entries in order, each key as a JSON string of its text: `{"k":1}`, `{"7":"x"}` |

use std::collections::BTreeMap;

use arrow_array::cast::AsArray;
use arrow_array::types::{
    ArrowPrimitiveType, Date32Type, Date64Type, Decimal128Type, Decimal256Type,
    DurationMicrosecondType, DurationMillisecondType, DurationNanosecondType, DurationSecondType,
    Float32Type, Float64Type, Int16Type, Int32Type, Int64Type, Int8Type, IntervalDayTimeType,
    IntervalYearMonthType, TimestampMicrosecondType, TimestampMillisecondType,
    TimestampNanosecondType, TimestampSecondType, UInt16Type, UInt32Type, UInt64Type, UInt8Type,
};
use arrow_array::{Array, ArrayRef, RecordBatch};
use arrow_buffer::NullBuffer;
use arrow_ipc::writer::{
    write_message, DictionaryTracker, IpcDataGenerator, IpcWriteContext, IpcWriteOptions,
    StreamWriter,
};
use arrow_schema::{DataType, IntervalUnit, Schema, TimeUnit};
use thrift::OrderedFloat;

use crate::error::{Error, Result};
use crate::thrift::tcli::{
    TBinaryColumn, TBoolColumn, TByteColumn, TColumn, TColumnDesc, TDoubleColumn, TI16Column,
    TI32Column, TI64Column, TPrimitiveTypeEntry, TStringColumn, TTableSchema, TTypeDesc,
    TTypeEntry, TTypeId, TTypeQualifierValue, TTypeQualifiers,
};

/// The IPC schema message for `schema` (continuation marker, length, flatbuffer, padding): the
/// bytes Databricks sends in `TGetResultSetMetadataResp.arrowSchema`.
pub(crate) fn encode_schema_message(schema: &Schema) -> Vec<u8> {
    let options = IpcWriteOptions::default();
    let encoded = IpcDataGenerator::default().schema_to_bytes_with_dictionary_tracker(
        schema,
        &mut DictionaryTracker::new(false),
        &options,
    );
    let mut out = Vec::with_capacity(encoded.ipc_message.len() + 16);
    // Writing into a Vec only fails on a message over 2 GiB, which a schema never is.
    if let Err(e) = write_message(&mut out, encoded, &options) {
        tracing::error!("encoding an Arrow schema message failed: {e}");
    }
    out
}

/// One IPC record-batch message for `batch`, without the schema: the bytes of
/// `TSparkArrowBatch.batch` (before LZ4 framing, which the caller adds when asked).
pub(crate) fn encode_batch_message(batch: &RecordBatch) -> Result<Vec<u8>> {
    let options = IpcWriteOptions::default();
    let (dictionaries, encoded) = IpcDataGenerator::default().encode(
        batch,
        &mut DictionaryTracker::new(false),
        &options,
        &mut IpcWriteContext::default(),
    )?;
    if !dictionaries.is_empty() {
        return Err(Error::decode(
            "dictionary-encoded columns cannot be sent as inline Arrow batches",
        ));
    }
    let mut out = Vec::with_capacity(encoded.ipc_message.len() + encoded.arrow_data.len() + 16);
    write_message(&mut out, encoded, &options)?;
    Ok(out)
}

/// A whole Arrow IPC stream (schema, batches, end-of-stream marker): the CloudFetch file format
/// (before LZ4 framing).
pub(crate) fn encode_ipc_stream(schema: &Schema, batches: &[RecordBatch]) -> Result<Vec<u8>> {
    let size: usize = batches.iter().map(|b| b.get_array_memory_size()).sum();
    let mut writer = StreamWriter::try_new(Vec::with_capacity(size + 1024), schema)?;
    for batch in batches {
        writer.write(batch)?;
    }
    writer.finish()?;
    Ok(writer.into_inner()?)
}

/// The Hive table schema Databricks reports for an Arrow schema: one column per field, named
/// like it, positions from 1, DECIMAL with precision and scale qualifiers.
pub(crate) fn to_table_schema(schema: &Schema) -> TTableSchema {
    let columns = schema
        .fields()
        .iter()
        .enumerate()
        .map(|(i, field)| {
            let (type_id, qualifiers) = hive_type(field.data_type());
            let entry = TPrimitiveTypeEntry::new(type_id, qualifiers);
            TColumnDesc::new(
                field.name().clone(),
                TTypeDesc::new(vec![TTypeEntry::PrimitiveEntry(entry)]),
                i as i32 + 1,
                None,
            )
        })
        .collect();
    TTableSchema::new(columns)
}

fn hive_type(data_type: &DataType) -> (TTypeId, Option<TTypeQualifiers>) {
    let decimal = |precision: u8, scale: i8| {
        Some(TTypeQualifiers::new(BTreeMap::from([
            (
                "precision".to_string(),
                TTypeQualifierValue::I32Value(precision.into()),
            ),
            (
                "scale".to_string(),
                TTypeQualifierValue::I32Value(scale.into()),
            ),
        ])))
    };
    let type_id = match data_type {
        DataType::Boolean => TTypeId::BOOLEAN_TYPE,
        DataType::Int8 => TTypeId::TINYINT_TYPE,
        DataType::Int16 => TTypeId::SMALLINT_TYPE,
        DataType::Int32 => TTypeId::INT_TYPE,
        DataType::Int64 => TTypeId::BIGINT_TYPE,
        DataType::Float32 => TTypeId::FLOAT_TYPE,
        DataType::Float64 => TTypeId::DOUBLE_TYPE,
        DataType::Utf8 | DataType::LargeUtf8 | DataType::Utf8View => TTypeId::STRING_TYPE,
        DataType::Binary | DataType::LargeBinary | DataType::BinaryView => TTypeId::BINARY_TYPE,
        DataType::Timestamp(_, _) => TTypeId::TIMESTAMP_TYPE,
        DataType::Date32 | DataType::Date64 => TTypeId::DATE_TYPE,
        DataType::Decimal128(p, s) | DataType::Decimal256(p, s) => {
            return (TTypeId::DECIMAL_TYPE, decimal(*p, *s))
        }
        DataType::Null => TTypeId::NULL_TYPE,
        DataType::List(_) | DataType::LargeList(_) | DataType::FixedSizeList(_, _) => {
            TTypeId::ARRAY_TYPE
        }
        DataType::Map(_, _) => TTypeId::MAP_TYPE,
        DataType::Struct(_) => TTypeId::STRUCT_TYPE,
        DataType::Interval(IntervalUnit::YearMonth) => TTypeId::INTERVAL_YEAR_MONTH_TYPE,
        DataType::Interval(_) | DataType::Duration(_) => TTypeId::INTERVAL_DAY_TIME_TYPE,
        _ => TTypeId::STRING_TYPE,
    };
    (type_id, None)
}

/// The column-based form of `batch`: typed columns for booleans, integers, floats, strings and
/// binaries; timestamps, dates, decimals, intervals and complex values as strings in Databricks'
/// format (see the module documentation); a `Null` column as empty strings, all NULL.
pub(crate) fn to_columns(batch: &RecordBatch) -> Result<Vec<TColumn>> {
    batch
        .schema()
        .fields()
        .iter()
        .zip(batch.columns())
        .map(|(field, array)| {
            to_column(array).ok_or_else(|| {
                Error::decode(format!(
                    "column {} of type {} cannot be sent as a column-based result",
                    field.name(),
                    field.data_type()
                ))
            })
        })
        .collect()
}

fn to_column(array: &ArrayRef) -> Option<TColumn> {
    let nulls = null_bitmap(array.logical_nulls().as_ref(), array.len());
    let column = match array.data_type() {
        DataType::Boolean => {
            let values = array.as_boolean().values().iter().collect();
            TColumn::BoolVal(TBoolColumn::new(values, nulls))
        }
        DataType::Int8 => TColumn::ByteVal(TByteColumn::new(values::<Int8Type>(array), nulls)),
        DataType::Int16 => TColumn::I16Val(TI16Column::new(values::<Int16Type>(array), nulls)),
        DataType::Int32 => TColumn::I32Val(TI32Column::new(values::<Int32Type>(array), nulls)),
        DataType::Int64 => TColumn::I64Val(TI64Column::new(values::<Int64Type>(array), nulls)),
        DataType::Float32 => {
            let values = array.as_primitive::<Float32Type>().values();
            let values = values.iter().map(|&v| OrderedFloat(f64::from(v))).collect();
            TColumn::DoubleVal(TDoubleColumn::new(values, nulls))
        }
        DataType::Float64 => {
            let values = array.as_primitive::<Float64Type>().values();
            let values = values.iter().map(|&v| OrderedFloat(v)).collect();
            TColumn::DoubleVal(TDoubleColumn::new(values, nulls))
        }
        DataType::Utf8 => strings(array.as_string::<i32>().iter(), nulls),
        DataType::LargeUtf8 => strings(array.as_string::<i64>().iter(), nulls),
        DataType::Utf8View => strings(array.as_string_view().iter(), nulls),
        DataType::Binary => binaries(array.as_binary::<i32>().iter(), nulls),
        DataType::LargeBinary => binaries(array.as_binary::<i64>().iter(), nulls),
        DataType::BinaryView => binaries(array.as_binary_view().iter(), nulls),
        DataType::Null => {
            TColumn::StringVal(TStringColumn::new(vec![String::new(); array.len()], nulls))
        }
        DataType::Timestamp(unit, _) => {
            let nanos_per_unit: i64 = match unit {
                TimeUnit::Second => 1_000_000_000,
                TimeUnit::Millisecond => 1_000_000,
                TimeUnit::Microsecond => 1_000,
                TimeUnit::Nanosecond => 1,
            };
            let raw: Vec<i64> = match unit {
                TimeUnit::Second => values::<TimestampSecondType>(array),
                TimeUnit::Millisecond => values::<TimestampMillisecondType>(array),
                TimeUnit::Microsecond => values::<TimestampMicrosecondType>(array),
                TimeUnit::Nanosecond => values::<TimestampNanosecondType>(array),
            };
            formatted(array, &raw, nulls, |s, &v| {
                format_timestamp(s, v, nanos_per_unit)
            })
        }
        DataType::Date32 => {
            let raw = array.as_primitive::<Date32Type>().values();
            formatted(array, raw, nulls, |s, &days| {
                format_date(s, i64::from(days))
            })
        }
        DataType::Date64 => {
            let raw = array.as_primitive::<Date64Type>().values();
            formatted(array, raw, nulls, |s, &ms| {
                format_date(s, ms.div_euclid(86_400_000))
            })
        }
        DataType::Decimal128(_, scale) => {
            let raw = array.as_primitive::<Decimal128Type>().values();
            formatted(array, raw, nulls, |s, &v| {
                let mut digits = [0u8; 40];
                let digits = u128_digits(v.unsigned_abs(), &mut digits);
                format_decimal(s, v < 0, digits, *scale)
            })
        }
        DataType::Decimal256(_, scale) => {
            let raw = array.as_primitive::<Decimal256Type>().values();
            formatted(array, raw, nulls, |s, v| {
                let text = v.to_string();
                let (negative, digits) = match text.strip_prefix('-') {
                    Some(rest) => (true, rest),
                    None => (false, text.as_str()),
                };
                format_decimal(s, negative, digits.as_bytes(), *scale)
            })
        }
        DataType::Interval(IntervalUnit::YearMonth) => {
            let raw = array.as_primitive::<IntervalYearMonthType>().values();
            formatted(array, raw, nulls, |s, &months| format_year_month(s, months))
        }
        DataType::Interval(IntervalUnit::DayTime) => {
            let raw = array.as_primitive::<IntervalDayTimeType>().values();
            formatted(array, raw, nulls, |s, v| {
                let millis = i128::from(v.days) * 86_400_000 + i128::from(v.milliseconds);
                format_day_time(s, millis * 1_000_000)
            })
        }
        DataType::Duration(unit) => {
            let raw: Vec<i64> = match unit {
                TimeUnit::Second => values::<DurationSecondType>(array),
                TimeUnit::Millisecond => values::<DurationMillisecondType>(array),
                TimeUnit::Microsecond => values::<DurationMicrosecondType>(array),
                TimeUnit::Nanosecond => values::<DurationNanosecondType>(array),
            };
            let nanos_per_unit = i128::from(nanos_per(*unit));
            formatted(array, &raw, nulls, |s, &v| {
                format_day_time(s, i128::from(v) * nanos_per_unit)
            })
        }
        DataType::List(_)
        | DataType::LargeList(_)
        | DataType::FixedSizeList(_, _)
        | DataType::Struct(_)
        | DataType::Map(_, _) => {
            let values = json_text(array.as_ref()).ok()?;
            let values = values.into_iter().map(Option::unwrap_or_default).collect();
            TColumn::StringVal(TStringColumn::new(values, nulls))
        }
        _ => return None,
    };
    Some(column)
}

/// Nanoseconds in one `unit`.
fn nanos_per(unit: TimeUnit) -> i64 {
    match unit {
        TimeUnit::Second => 1_000_000_000,
        TimeUnit::Millisecond => 1_000_000,
        TimeUnit::Microsecond => 1_000,
        TimeUnit::Nanosecond => 1,
    }
}

/// Hive's year-month interval text: `1-2` for 14 months, `-0-3` for -3.
fn format_year_month(s: &mut String, months: i32) {
    use std::fmt::Write;
    let sign = if months < 0 { "-" } else { "" };
    let months = months.unsigned_abs();
    let _ = write!(s, "{sign}{}-{}", months / 12, months % 12);
}

/// Hive's day-time interval text: `1 02:03:04.500000000`, `-0 00:00:01.000000000`.
fn format_day_time(s: &mut String, nanos: i128) {
    use std::fmt::Write;
    let sign = if nanos < 0 { "-" } else { "" };
    let nanos = nanos.unsigned_abs();
    let seconds = nanos / 1_000_000_000;
    let _ = write!(
        s,
        "{sign}{} {:02}:{:02}:{:02}.{:09}",
        seconds / 86_400,
        seconds / 3600 % 24,
        seconds / 60 % 60,
        seconds % 60,
        nanos % 1_000_000_000
    );
}

/// Renders every row of `array` as JSON text (the module documentation has the rules); `None`
/// for NULL rows. Arrays holding a type without a JSON form (unions, dictionaries, run-end
/// encoded arrays, `Interval(MonthDayNano)`, views of lists...) are a decode error naming it.
pub(crate) fn json_text(array: &dyn Array) -> Result<Vec<Option<String>>> {
    (0..array.len())
        .map(|row| {
            if is_null_at(array, row) {
                return Ok(None);
            }
            let mut s = String::with_capacity(32);
            write_json(&mut s, array, row).map_err(|unsupported| {
                Error::decode(format!("values of type {unsupported} have no JSON form"))
            })?;
            Ok(Some(s))
        })
        .collect()
}

/// Whether row `row` of `array` is NULL, `Null` arrays included.
fn is_null_at(array: &dyn Array, row: usize) -> bool {
    matches!(array.data_type(), DataType::Null) || array.is_null(row)
}

/// Appends the JSON text of row `row` of `array` to `s`; the error is the data type (at any
/// depth) that has no JSON form.
fn write_json(s: &mut String, array: &dyn Array, row: usize) -> std::result::Result<(), DataType> {
    if is_null_at(array, row) {
        s.push_str("null");
        return Ok(());
    }
    let unsupported = || array.data_type().clone();
    match array.data_type() {
        DataType::Boolean => {
            let v = array.as_boolean_opt().ok_or_else(unsupported)?.value(row);
            s.push_str(if v { "true" } else { "false" });
        }
        DataType::Int8 => write_int::<Int8Type>(s, array, row)?,
        DataType::Int16 => write_int::<Int16Type>(s, array, row)?,
        DataType::Int32 => write_int::<Int32Type>(s, array, row)?,
        DataType::Int64 => write_int::<Int64Type>(s, array, row)?,
        DataType::UInt8 => write_int::<UInt8Type>(s, array, row)?,
        DataType::UInt16 => write_int::<UInt16Type>(s, array, row)?,
        DataType::UInt32 => write_int::<UInt32Type>(s, array, row)?,
        DataType::UInt64 => write_int::<UInt64Type>(s, array, row)?,
        DataType::Float32 => {
            let v = primitive_at::<Float32Type>(array, row)?;
            write_float(s, f64::from(v), || format!("{v:?}"));
        }
        DataType::Float64 => {
            let v = primitive_at::<Float64Type>(array, row)?;
            write_float(s, v, || format!("{v:?}"));
        }
        DataType::Utf8 => write_json_string(
            s,
            array
                .as_string_opt::<i32>()
                .ok_or_else(unsupported)?
                .value(row),
        ),
        DataType::LargeUtf8 => write_json_string(
            s,
            array
                .as_string_opt::<i64>()
                .ok_or_else(unsupported)?
                .value(row),
        ),
        DataType::Utf8View => write_json_string(
            s,
            array
                .as_string_view_opt()
                .ok_or_else(unsupported)?
                .value(row),
        ),
        DataType::Binary => write_base64(
            s,
            array
                .as_binary_opt::<i32>()
                .ok_or_else(unsupported)?
                .value(row),
        ),
        DataType::LargeBinary => write_base64(
            s,
            array
                .as_binary_opt::<i64>()
                .ok_or_else(unsupported)?
                .value(row),
        ),
        DataType::BinaryView => write_base64(
            s,
            array
                .as_binary_view_opt()
                .ok_or_else(unsupported)?
                .value(row),
        ),
        DataType::Date32 => {
            let days = primitive_at::<Date32Type>(array, row)?;
            quoted(s, |s| format_date(s, i64::from(days)));
        }
        DataType::Date64 => {
            let ms = primitive_at::<Date64Type>(array, row)?;
            quoted(s, |s| format_date(s, ms.div_euclid(86_400_000)));
        }
        DataType::Timestamp(unit, _) => {
            let v = match unit {
                TimeUnit::Second => primitive_at::<TimestampSecondType>(array, row)?,
                TimeUnit::Millisecond => primitive_at::<TimestampMillisecondType>(array, row)?,
                TimeUnit::Microsecond => primitive_at::<TimestampMicrosecondType>(array, row)?,
                TimeUnit::Nanosecond => primitive_at::<TimestampNanosecondType>(array, row)?,
            };
            let nanos_per_unit = nanos_per(*unit);
            quoted(s, |s| format_timestamp(s, v, nanos_per_unit));
        }
        DataType::Decimal128(_, scale) => {
            let v = primitive_at::<Decimal128Type>(array, row)?;
            let mut digits = [0u8; 40];
            let digits = u128_digits(v.unsigned_abs(), &mut digits);
            format_decimal(s, v < 0, digits, *scale);
        }
        DataType::Decimal256(_, scale) => {
            let text = primitive_at::<Decimal256Type>(array, row)?.to_string();
            let (negative, digits) = match text.strip_prefix('-') {
                Some(rest) => (true, rest),
                None => (false, text.as_str()),
            };
            format_decimal(s, negative, digits.as_bytes(), *scale);
        }
        DataType::Interval(IntervalUnit::YearMonth) => {
            let months = primitive_at::<IntervalYearMonthType>(array, row)?;
            quoted(s, |s| format_year_month(s, months));
        }
        DataType::Interval(IntervalUnit::DayTime) => {
            let v = primitive_at::<IntervalDayTimeType>(array, row)?;
            let millis = i128::from(v.days) * 86_400_000 + i128::from(v.milliseconds);
            quoted(s, |s| format_day_time(s, millis * 1_000_000));
        }
        DataType::Duration(unit) => {
            let v = match unit {
                TimeUnit::Second => primitive_at::<DurationSecondType>(array, row)?,
                TimeUnit::Millisecond => primitive_at::<DurationMillisecondType>(array, row)?,
                TimeUnit::Microsecond => primitive_at::<DurationMicrosecondType>(array, row)?,
                TimeUnit::Nanosecond => primitive_at::<DurationNanosecondType>(array, row)?,
            };
            let nanos = i128::from(v) * i128::from(nanos_per(*unit));
            quoted(s, |s| format_day_time(s, nanos));
        }
        DataType::List(_) => {
            let list = array.as_list_opt::<i32>().ok_or_else(unsupported)?;
            write_json_array(s, list.value(row).as_ref())?;
        }
        DataType::LargeList(_) => {
            let list = array.as_list_opt::<i64>().ok_or_else(unsupported)?;
            write_json_array(s, list.value(row).as_ref())?;
        }
        DataType::FixedSizeList(_, _) => {
            let list = array.as_fixed_size_list_opt().ok_or_else(unsupported)?;
            write_json_array(s, list.value(row).as_ref())?;
        }
        DataType::Struct(fields) => {
            let st = array.as_struct_opt().ok_or_else(unsupported)?;
            s.push('{');
            for (i, (field, column)) in fields.iter().zip(st.columns()).enumerate() {
                if i > 0 {
                    s.push(',');
                }
                write_json_string(s, field.name());
                s.push(':');
                write_json(s, column.as_ref(), row)?;
            }
            s.push('}');
        }
        DataType::Map(_, _) => {
            let map = array.as_map_opt().ok_or_else(unsupported)?;
            let entries = map.value(row);
            let (keys, values) = (entries.column(0), entries.column(1));
            s.push('{');
            let mut key = String::new();
            for i in 0..entries.len() {
                if i > 0 {
                    s.push(',');
                }
                key.clear();
                write_json(&mut key, keys.as_ref(), i)?;
                if key.starts_with('"') {
                    s.push_str(&key);
                } else {
                    write_json_string(s, &key);
                }
                s.push(':');
                write_json(s, values.as_ref(), i)?;
            }
            s.push('}');
        }
        other => return Err(other.clone()),
    }
    Ok(())
}

/// Value `row` of a primitive array of type `T`; the array's type when it is not one.
fn primitive_at<T: ArrowPrimitiveType>(
    array: &dyn Array,
    row: usize,
) -> std::result::Result<T::Native, DataType> {
    array
        .as_primitive_opt::<T>()
        .map(|a| a.value(row))
        .ok_or_else(|| array.data_type().clone())
}

fn write_int<T: ArrowPrimitiveType>(
    s: &mut String,
    array: &dyn Array,
    row: usize,
) -> std::result::Result<(), DataType>
where
    T::Native: itoa::Integer,
{
    let v = primitive_at::<T>(array, row)?;
    s.push_str(itoa::Buffer::new().format(v));
    Ok(())
}

/// A finite float as its shortest exact text (`shortest`), NaN and infinities as JSON strings.
fn write_float(s: &mut String, v: f64, shortest: impl FnOnce() -> String) {
    if v.is_nan() {
        s.push_str("\"NaN\"");
    } else if v.is_infinite() {
        s.push_str(if v > 0.0 {
            "\"Infinity\""
        } else {
            "\"-Infinity\""
        });
    } else {
        s.push_str(&shortest());
    }
}

/// `text` as a JSON string: quotes, backslashes and control characters escaped.
fn write_json_string(s: &mut String, text: &str) {
    use std::fmt::Write;
    s.push('"');
    for c in text.chars() {
        match c {
            '"' => s.push_str("\\\""),
            '\\' => s.push_str("\\\\"),
            '\n' => s.push_str("\\n"),
            '\r' => s.push_str("\\r"),
            '\t' => s.push_str("\\t"),
            '\u{8}' => s.push_str("\\b"),
            '\u{c}' => s.push_str("\\f"),
            c if u32::from(c) < 0x20 => {
                let _ = write!(s, "\\u{:04x}", u32::from(c));
            }
            c => s.push(c),
        }
    }
    s.push('"');
}

/// `bytes` as a JSON string of standard base64 with padding.
fn write_base64(s: &mut String, bytes: &[u8]) {
    use base64::Engine as _;
    s.push('"');
    base64::engine::general_purpose::STANDARD.encode_string(bytes, s);
    s.push('"');
}

/// What `write` appends, between double quotes (it never writes a quote or a backslash).
fn quoted(s: &mut String, write: impl FnOnce(&mut String)) {
    s.push('"');
    write(s);
    s.push('"');
}

/// A JSON array of every value of `values`.
fn write_json_array(s: &mut String, values: &dyn Array) -> std::result::Result<(), DataType> {
    s.push('[');
    for i in 0..values.len() {
        if i > 0 {
            s.push(',');
        }
        write_json(s, values, i)?;
    }
    s.push(']');
    Ok(())
}

fn values<T: ArrowPrimitiveType>(array: &ArrayRef) -> Vec<T::Native> {
    array.as_primitive::<T>().values().to_vec()
}

fn strings<'a>(values: impl Iterator<Item = Option<&'a str>>, nulls: Vec<u8>) -> TColumn {
    let values = values.map(|v| v.unwrap_or_default().to_owned()).collect();
    TColumn::StringVal(TStringColumn::new(values, nulls))
}

fn binaries<'a>(values: impl Iterator<Item = Option<&'a [u8]>>, nulls: Vec<u8>) -> TColumn {
    let values = values.map(|v| v.unwrap_or_default().to_vec()).collect();
    TColumn::BinaryVal(TBinaryColumn::new(values, nulls))
}

/// A string column from raw values formatted one by one; NULL rows get an empty string.
fn formatted<V>(
    array: &ArrayRef,
    raw: &[V],
    nulls: Vec<u8>,
    format: impl Fn(&mut String, &V),
) -> TColumn {
    let values = raw
        .iter()
        .enumerate()
        .map(|(i, v)| {
            if array.is_null(i) {
                String::new()
            } else {
                let mut s = String::with_capacity(32);
                format(&mut s, v);
                s
            }
        })
        .collect();
    TColumn::StringVal(TStringColumn::new(values, nulls))
}

/// The Hive null bitmap for an Arrow null buffer: empty when nothing is NULL.
fn null_bitmap(nulls: Option<&NullBuffer>, len: usize) -> Vec<u8> {
    let Some(nulls) = nulls.filter(|n| n.null_count() > 0) else {
        return Vec::new();
    };
    // Same bit order as Arrow's validity bitmap, opposite meaning (set = NULL).
    let validity = nulls.inner().sliced();
    let mut bitmap: Vec<u8> = validity
        .as_slice()
        .iter()
        .take(len.div_ceil(8))
        .map(|v| !v)
        .collect();
    if !len.is_multiple_of(8) {
        if let Some(last) = bitmap.last_mut() {
            *last &= (1u8 << (len % 8)) - 1;
        }
    }
    bitmap
}

/// Appends `value` in decimal, zero-padded to `width` digits.
fn push_digits(s: &mut String, value: u32, width: usize) {
    if width == 2 && value < 100 {
        // Months, days, hours, minutes, seconds: two digits, the common case.
        let pair = [b'0' + (value / 10) as u8, b'0' + (value % 10) as u8];
        s.push(char::from(pair[0]));
        s.push(char::from(pair[1]));
        return;
    }
    let mut buf = [b'0'; 10];
    let mut v = value;
    let mut i = buf.len();
    while v > 0 || buf.len() - i < width {
        i -= 1;
        buf[i] = b'0' + (v % 10) as u8;
        v /= 10;
        if i == 0 {
            break;
        }
    }
    s.extend(buf[i..].iter().map(|&b| char::from(b)));
}

/// Writes the decimal digits of `v` into the end of `buf` and returns them.
fn u128_digits(mut v: u128, buf: &mut [u8; 40]) -> &[u8] {
    let mut i = buf.len();
    loop {
        i -= 1;
        buf[i] = b'0' + (v % 10) as u8;
        v /= 10;
        if v == 0 {
            break;
        }
    }
    &buf[i..]
}

/// `-12.50` from sign, unscaled digits `1250` and scale 2.
fn format_decimal(s: &mut String, negative: bool, digits: &[u8], scale: i8) {
    if negative {
        s.push('-');
    }
    if scale <= 0 {
        s.extend(digits.iter().map(|&b| b as char));
        if digits != b"0" {
            s.extend(std::iter::repeat_n('0', scale.unsigned_abs() as usize));
        }
        return;
    }
    let scale = scale as usize;
    if digits.len() <= scale {
        s.push_str("0.");
        s.extend(std::iter::repeat_n('0', scale - digits.len()));
        s.extend(digits.iter().map(|&b| b as char));
    } else {
        let (int, frac) = digits.split_at(digits.len() - scale);
        s.extend(int.iter().map(|&b| b as char));
        s.push('.');
        s.extend(frac.iter().map(|&b| b as char));
    }
}

/// Year, month, day of a day count since 1970-01-01 (proleptic Gregorian).
fn civil_from_days(days: i64) -> (i64, u32, u32) {
    let z = days + 719_468;
    let era = z.div_euclid(146_097);
    let doe = z.rem_euclid(146_097);
    let yoe = (doe - doe / 1460 + doe / 36_524 - doe / 146_096) / 365;
    let doy = doe - (365 * yoe + yoe / 4 - yoe / 100);
    let mp = (5 * doy + 2) / 153;
    let day = (doy - (153 * mp + 2) / 5 + 1) as u32;
    let month = if mp < 10 { mp + 3 } else { mp - 9 } as u32;
    let year = yoe + era * 400 + i64::from(month <= 2);
    (year, month, day)
}

fn format_date(s: &mut String, days: i64) {
    let (year, month, day) = civil_from_days(days);
    if (0..=9999).contains(&year) {
        push_digits(s, year as u32, 4);
    } else {
        use std::fmt::Write;
        let _ = write!(s, "{year}");
    }
    s.push('-');
    push_digits(s, month, 2);
    s.push('-');
    push_digits(s, day, 2);
}

/// `1970-01-01 00:00:01.5` for `value` units of `nanos_per_unit` nanoseconds after the epoch.
fn format_timestamp(s: &mut String, value: i64, nanos_per_unit: i64) {
    let units_per_second = 1_000_000_000 / nanos_per_unit;
    let seconds = value.div_euclid(units_per_second);
    let nanos = (value.rem_euclid(units_per_second) * nanos_per_unit) as u32;
    let days = seconds.div_euclid(86_400);
    let in_day = seconds.rem_euclid(86_400) as u32;
    format_date(s, days);
    s.push(' ');
    push_digits(s, in_day / 3600, 2);
    s.push(':');
    push_digits(s, in_day / 60 % 60, 2);
    s.push(':');
    push_digits(s, in_day % 60, 2);
    if nanos != 0 {
        let mut fraction = nanos;
        let mut width = 9;
        while fraction.is_multiple_of(10) {
            fraction /= 10;
            width -= 1;
        }
        s.push('.');
        push_digits(s, fraction, width);
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use arrow_array::{
        Date32Array, Decimal128Array, Int64Array, StringArray, TimestampMicrosecondArray,
        TimestampSecondArray,
    };
    use std::sync::Arc;

    fn strings_of(column: &TColumn) -> (&[String], &[u8]) {
        match column {
            TColumn::StringVal(c) => (&c.values, &c.nulls),
            other => panic!("expected stringVal, got {other:?}"),
        }
    }

    #[test]
    fn formats_timestamps_like_databricks() {
        let array: ArrayRef = Arc::new(TimestampMicrosecondArray::from(vec![
            Some(1_000_000),
            None,
            Some(1_500_000),
            Some(-1),
            Some(1_700_000_000_123_456),
            Some(951_782_400_000_000), // 2000-02-29
        ]));
        let column = to_column(&array).unwrap();
        let (values, nulls) = strings_of(&column);
        assert_eq!(
            values,
            &[
                "1970-01-01 00:00:01",
                "",
                "1970-01-01 00:00:01.5",
                "1969-12-31 23:59:59.999999",
                "2023-11-14 22:13:20.123456",
                "2000-02-29 00:00:00",
            ]
        );
        assert_eq!(nulls, &[0b0000_0010]);
        let seconds: ArrayRef = Arc::new(TimestampSecondArray::from(vec![86_400 * 365]));
        let column = to_column(&seconds).unwrap();
        assert_eq!(strings_of(&column).0, &["1971-01-01 00:00:00"]);
    }

    #[test]
    fn formats_dates_and_decimals() {
        let dates: ArrayRef = Arc::new(Date32Array::from(vec![0, -1, 19_000, 2_932_896]));
        let column = to_column(&dates).unwrap();
        assert_eq!(
            strings_of(&column).0,
            &["1970-01-01", "1969-12-31", "2022-01-08", "9999-12-31"]
        );
        let decimals: ArrayRef = Arc::new(
            Decimal128Array::from(vec![Some(-1250), Some(5), None, Some(0), Some(123_456)])
                .with_precision_and_scale(10, 2)
                .unwrap(),
        );
        let column = to_column(&decimals).unwrap();
        let (values, nulls) = strings_of(&column);
        assert_eq!(values, &["-12.50", "0.05", "", "0.00", "1234.56"]);
        assert_eq!(nulls, &[0b0000_0100]);
    }

    #[test]
    fn renders_lists_structs_and_maps_as_json_text() {
        use arrow_array::builder::{Int32Builder, MapBuilder, StringBuilder};
        use arrow_array::{BinaryArray, Float64Array, Int32Array, ListArray, StructArray};
        use arrow_schema::{Field, Fields};

        let list: ArrayRef = Arc::new(ListArray::from_iter_primitive::<Int32Type, _, _>(vec![
            Some(vec![Some(1), Some(2), None]),
            None,
            Some(vec![]),
        ]));
        let column = to_column(&list).unwrap();
        let (values, nulls) = strings_of(&column);
        assert_eq!(values, &["[1,2,null]", "", "[]"]);
        assert_eq!(nulls, &[0b010]);

        let fields = Fields::from(vec![
            Field::new("a", DataType::Int32, true),
            Field::new("b \"q\"", DataType::Utf8, true),
            Field::new(
                "ts",
                DataType::Timestamp(TimeUnit::Microsecond, Some("UTC".into())),
                true,
            ),
            Field::new("dec", DataType::Decimal128(5, 2), true),
            Field::new("f", DataType::Float64, true),
            Field::new("day", DataType::Date32, true),
            Field::new("bin", DataType::Binary, true),
        ]);
        let st: ArrayRef = Arc::new(
            StructArray::try_new(
                fields,
                vec![
                    Arc::new(Int32Array::from(vec![Some(1), None, Some(3)])),
                    Arc::new(StringArray::from(vec![
                        Some("x"),
                        Some("say \"hi\"\\\n\u{1}é"),
                        None,
                    ])),
                    Arc::new(
                        TimestampMicrosecondArray::from(vec![Some(1_500_000), None, Some(0)])
                            .with_timezone("UTC"),
                    ),
                    Arc::new(
                        Decimal128Array::from(vec![Some(-1250), Some(5), None])
                            .with_precision_and_scale(5, 2)
                            .unwrap(),
                    ),
                    Arc::new(Float64Array::from(vec![
                        Some(0.1),
                        Some(f64::NAN),
                        Some(f64::NEG_INFINITY),
                    ])),
                    Arc::new(Date32Array::from(vec![Some(0), None, Some(-1)])),
                    Arc::new(BinaryArray::from_opt_vec(vec![
                        Some(b"hi?".as_slice()),
                        None,
                        Some(b"".as_slice()),
                    ])),
                ],
                Some(NullBuffer::from(vec![true, true, false])),
            )
            .unwrap(),
        );
        let column = to_column(&st).unwrap();
        let (values, nulls) = strings_of(&column);
        assert_eq!(
            values,
            &[
                r#"{"a":1,"b \"q\"":"x","ts":"1970-01-01 00:00:01.5","dec":-12.50,"f":0.1,"day":"1970-01-01","bin":"aGk/"}"#,
                r#"{"a":null,"b \"q\"":"say \"hi\"\\\n\u0001é","ts":null,"dec":0.05,"f":"NaN","day":null,"bin":null}"#,
                "",
            ]
        );
        assert_eq!(nulls, &[0b100]);

        let mut builder = MapBuilder::new(None, StringBuilder::new(), Int32Builder::new());
        builder.keys().append_value("k");
        builder.values().append_value(1);
        builder.keys().append_value("quote\"");
        builder.values().append_null();
        builder.append(true).unwrap();
        builder.append(false).unwrap();
        builder.append(true).unwrap();
        let map: ArrayRef = Arc::new(builder.finish());
        let column = to_column(&map).unwrap();
        assert_eq!(
            strings_of(&column),
            (
                &[
                    r#"{"k":1,"quote\"":null}"#.to_string(),
                    String::new(),
                    "{}".to_string()
                ][..],
                &[0b010u8][..]
            )
        );

        let mut builder = MapBuilder::new(None, Int32Builder::new(), StringBuilder::new());
        builder.keys().append_value(7);
        builder.values().append_value("x");
        builder.append(true).unwrap();
        let int_keys: ArrayRef = Arc::new(builder.finish());
        assert_eq!(
            json_text(int_keys.as_ref()).unwrap(),
            vec![Some(r#"{"7":"x"}"#.to_string())]
        );

        // Every rendering is valid JSON.
        for array in [&list, &st, &map, &int_keys] {
            for text in json_text(array.as_ref()).unwrap().into_iter().flatten() {
                serde_json::from_str::<serde_json::Value>(&text)
                    .unwrap_or_else(|e| panic!("{text}: {e}"));
            }
        }
    }

    #[test]
    fn renders_nested_lists_of_structs_and_float32_shortest() {
        use arrow_array::{Float32Array, ListArray, StructArray};
        use arrow_buffer::OffsetBuffer;
        use arrow_schema::{Field, Fields};
        let inner = ListArray::from_iter_primitive::<Int32Type, _, _>(vec![
            Some(vec![Some(1)]),
            Some(vec![]),
            None,
        ]);
        let fields = Fields::from(vec![
            Field::new("xs", inner.data_type().clone(), true),
            Field::new("f", DataType::Float32, true),
        ]);
        let structs = StructArray::try_new(
            fields.clone(),
            vec![
                Arc::new(inner),
                Arc::new(Float32Array::from(vec![0.1, 1.0, 1e-7])),
            ],
            None,
        )
        .unwrap();
        let outer: ArrayRef = Arc::new(ListArray::new(
            Arc::new(Field::new("item", DataType::Struct(fields), true)),
            OffsetBuffer::new(vec![0, 2, 3].into()),
            Arc::new(structs),
            None,
        ));
        assert_eq!(
            json_text(outer.as_ref()).unwrap(),
            vec![
                Some(r#"[{"xs":[1],"f":0.1},{"xs":[],"f":1.0}]"#.to_string()),
                Some(r#"[{"xs":null,"f":1e-7}]"#.to_string()),
            ]
        );
        let nulls: ArrayRef = Arc::new(arrow_array::NullArray::new(2));
        assert_eq!(json_text(nulls.as_ref()).unwrap(), vec![None, None]);
    }

    #[test]
    fn renders_intervals_like_hive() {
        use arrow_array::{
            DurationMicrosecondArray, DurationSecondArray, IntervalDayTimeArray,
            IntervalYearMonthArray,
        };
        use arrow_buffer::IntervalDayTime;
        let year_month: ArrayRef = Arc::new(IntervalYearMonthArray::from(vec![
            Some(14),
            Some(-3),
            None,
            Some(0),
        ]));
        let column = to_column(&year_month).unwrap();
        assert_eq!(strings_of(&column).0, &["1-2", "-0-3", "", "0-0"]);
        assert_eq!(strings_of(&column).1, &[0b100]);

        let micros: ArrayRef = Arc::new(DurationMicrosecondArray::from(vec![
            93_784_500_000,
            -1_000_000,
            0,
        ]));
        let column = to_column(&micros).unwrap();
        assert_eq!(
            strings_of(&column).0,
            &[
                "1 02:03:04.500000000",
                "-0 00:00:01.000000000",
                "0 00:00:00.000000000"
            ]
        );
        let seconds: ArrayRef = Arc::new(DurationSecondArray::from(vec![i64::MIN]));
        assert_eq!(
            strings_of(&to_column(&seconds).unwrap()).0,
            &["-106751991167300 15:30:08.000000000"]
        );
        let day_time: ArrayRef = Arc::new(IntervalDayTimeArray::from(vec![IntervalDayTime::new(
            2, 1_500,
        )]));
        assert_eq!(
            strings_of(&to_column(&day_time).unwrap()).0,
            &["2 00:00:01.500000000"]
        );
        let schema = Schema::new(vec![
            arrow_schema::Field::new("ym", DataType::Interval(IntervalUnit::YearMonth), true),
            arrow_schema::Field::new("dt", DataType::Duration(TimeUnit::Microsecond), true),
        ]);
        let types: Vec<TTypeId> = to_table_schema(&schema)
            .columns
            .iter()
            .map(|c| match &c.type_desc.types[0] {
                TTypeEntry::PrimitiveEntry(e) => e.type_,
                other => panic!("{other:?}"),
            })
            .collect();
        assert_eq!(
            types,
            vec![
                TTypeId::INTERVAL_YEAR_MONTH_TYPE,
                TTypeId::INTERVAL_DAY_TIME_TYPE
            ]
        );
    }

    #[test]
    fn a_value_without_a_column_based_form_is_a_clear_error() {
        use arrow_array::{IntervalMonthDayNanoArray, ListArray};
        use arrow_buffer::{IntervalMonthDayNano, OffsetBuffer};
        let month_day_nano =
            IntervalMonthDayNanoArray::from(vec![IntervalMonthDayNano::new(1, 2, 3)]);
        let list: ArrayRef = Arc::new(ListArray::new(
            Arc::new(arrow_schema::Field::new(
                "item",
                month_day_nano.data_type().clone(),
                true,
            )),
            OffsetBuffer::new(vec![0, 1].into()),
            Arc::new(month_day_nano.clone()),
            None,
        ));
        let err = json_text(list.as_ref()).unwrap_err();
        assert!(err.to_string().contains("Interval(MonthDayNano)"), "{err}");
        for array in [list, Arc::new(month_day_nano) as ArrayRef] {
            let schema = Arc::new(Schema::new(vec![arrow_schema::Field::new(
                "iv",
                array.data_type().clone(),
                true,
            )]));
            let batch = RecordBatch::try_new(schema, vec![array]).unwrap();
            let err = to_columns(&batch).unwrap_err();
            assert!(
                err.to_string()
                    .contains("cannot be sent as a column-based result"),
                "{err}"
            );
        }
    }

    #[test]
    fn null_bitmap_sets_bit_i_mod_8_of_byte_i_div_8_and_is_empty_without_nulls() {
        let mut values: Vec<Option<i64>> = (0..11).map(Some).collect();
        values[0] = None;
        values[3] = None;
        values[10] = None;
        let array: ArrayRef = Arc::new(Int64Array::from(values));
        match to_column(&array).unwrap() {
            TColumn::I64Val(c) => assert_eq!(c.nulls, vec![0b0000_1001, 0b0000_0100]),
            other => panic!("{other:?}"),
        }
        // A slice with a bit offset is re-aligned.
        match to_column(&array.slice(3, 5)).unwrap() {
            TColumn::I64Val(c) => {
                assert_eq!(c.values, vec![0, 4, 5, 6, 7]);
                assert_eq!(c.nulls, vec![0b0000_0001]);
            }
            other => panic!("{other:?}"),
        }
        let no_nulls: ArrayRef = Arc::new(StringArray::from(vec!["a", "b"]));
        assert!(strings_of(&to_column(&no_nulls).unwrap()).1.is_empty());
    }

    #[test]
    fn table_schema_positions_start_at_one_and_decimals_carry_qualifiers() {
        let schema = Schema::new(vec![
            arrow_schema::Field::new("id", DataType::Int64, false),
            arrow_schema::Field::new("amount", DataType::Decimal128(10, 2), true),
            arrow_schema::Field::new(
                "ts",
                DataType::Timestamp(TimeUnit::Microsecond, Some("UTC".into())),
                true,
            ),
        ]);
        let table = to_table_schema(&schema);
        let summary: Vec<(String, i32, TTypeId)> = table
            .columns
            .iter()
            .map(|c| match &c.type_desc.types[0] {
                TTypeEntry::PrimitiveEntry(e) => (c.column_name.clone(), c.position, e.type_),
                other => panic!("{other:?}"),
            })
            .collect();
        assert_eq!(
            summary,
            vec![
                ("id".to_string(), 1, TTypeId::BIGINT_TYPE),
                ("amount".to_string(), 2, TTypeId::DECIMAL_TYPE),
                ("ts".to_string(), 3, TTypeId::TIMESTAMP_TYPE),
            ]
        );
        let schema = crate::results::schema::arrow_schema_from_table_schema(&table).unwrap();
        assert_eq!(
            schema
                .field(1)
                .metadata()
                .get(crate::results::schema::TYPE_NAME_KEY),
            Some(&"DECIMAL(10,2)".to_string())
        );
    }
}
