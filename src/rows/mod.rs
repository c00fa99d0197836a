//! Typed rows: a result's rows as Rust values, through serde ([`from_batch`],
//! [`Operation::rows`](crate::Operation::rows), [`Operation::fetch_all_as`](crate::Operation::fetch_all_as))
//! or one value at a time ([`Row::get`] and the [`FromValue`] trait).
//!
//! ```no_run
//! # async fn run(session: databricks_sql::Session) -> databricks_sql::Result<()> {
//! use chrono::{DateTime, Utc};
//! use futures::TryStreamExt;
//!
//! #[derive(serde::Deserialize)]
//! struct Order {
//!     id: i64,
//!     name: Option<String>, // NULL -> None
//!     amount: f64,
//!     ts: DateTime<Utc>,    // needs chrono's `serde` feature in your Cargo.toml
//! }
//!
//! let mut op = session.execute_statement("SELECT * FROM mock.rows(100)").await?;
//! let mut rows = op.rows::<Order>();
//! while let Some(order) = rows.try_next().await? {
//!     println!("{} {:?} {}", order.id, order.name, order.amount);
//! }
//! # Ok(()) }
//! ```
//!
//! # Rows into serde types
//! A row deserializes into a struct by column name (the exact name, else the first that matches
//! ignoring ASCII case); columns without a field are ignored; a field without a column is an
//! error naming the field, except `Option` fields (`None`) and `#[serde(default)]` fields, as
//! serde has it. A tuple (or a `Vec` / tuple struct) reads the columns by position, a map
//! (`HashMap<String, serde_json::Value>`, `serde_json::Value`) every column by name, and a
//! single value (`i64`, `String`...) the one column of a one-column result.
//!
//! | Arrow type | reads into |
//! |---|---|
//! | `Int8`..`Int64`, `UInt8`..`UInt64` | any integer type the value fits (else an error naming the value), `f32`, `f64` |
//! | `Float16`, `Float32`, `Float64` | `f32`, `f64` |
//! | `Boolean` | `bool` |
//! | `Utf8`, `LargeUtf8`, `Utf8View` | `String`, `&str` (borrowing the batch, with [`from_batch`]), `char`, unit enum variants by name; ARRAY/MAP/STRUCT targets parse the string as JSON (column-based results carry complex values as JSON text) |
//! | `Binary`, `LargeBinary`, `BinaryView`, `FixedSizeBinary` | `Vec<u8>`, `serde_bytes` types |
//! | `Decimal128`, `Decimal256` | [`Decimal`](crate::Decimal) (exact, up to 38 digits), `String` (exact text, e.g. `-12.5000`), `f64`/`f32` (rounded); `Decimal128` also into integers (when it has no fraction) |
//! | `Date32`, `Date64` | `chrono::NaiveDate`, `String` (`YYYY-MM-DD`) |
//! | `Timestamp` with a time zone (Databricks `TIMESTAMP`) | `chrono::DateTime<Utc>` / `DateTime<FixedOffset>`, `String`: RFC 3339 text of the UTC instant (`2023-11-14T22:13:20.123456Z`), whichever the zone; `i64`: microseconds since the epoch |
//! | `Timestamp` without a time zone (`TIMESTAMP_NTZ`) | `chrono::NaiveDateTime`, `String` (`2023-11-14T22:13:20.123456`); `i64`: microseconds since the epoch |
//! | `List`, `LargeList`, `FixedSizeList` | `Vec<T>`, arrays, tuples, any sequence |
//! | `Map` | `HashMap`, `BTreeMap`, any map; a struct by key |
//! | `Struct` | a struct by field name, a map, a tuple by position |
//! | `Null` and NULL values | `Option<T>` (`None`), `()`; a NULL into anything else is an error |
//!
//! Dates and timestamps go to serde as text so that chrono's own `Deserialize` reads them:
//! enable chrono's `serde` feature in your `Cargo.toml` for chrono fields (this crate does not
//! need it). Parsing that text is most of the cost of a timestamp field; where it matters,
//! `#[serde(with = "chrono::serde::ts_microseconds")]` (or `ts_microseconds_option`) on a
//! `DateTime<Utc>` field reads the `i64` microseconds instead (see the `typed_rows` benchmark).
//! Other types (dictionaries, intervals, unions) are an error when a field reads them.
//!
//! # Errors
//! A value that does not convert is an error of kind [`Decode`](crate::ErrorKind::Decode), never
//! a panic, naming the row (counted from 0 over the result read), the column (index and name),
//! its Arrow type and the Rust type asked for:
//!
//! ```text
//! result decoding failed: cannot deserialize row 17, column 2 `amount` (Float64): Arrow type Float64 cannot be deserialized into i32
//! ```
//!
//! # How it reads
//! The deserializer picks each column's accessor once per batch, maps struct fields to columns
//! once per batch, borrows strings from the batch, and formats timestamps without the
//! formatting machinery (see the `typed_rows` benchmark). Time zone names of every kind
//! (`Etc/UTC`, `America/Los_Angeles`, offsets) are accepted.

mod column;
mod de;
mod value;

use std::sync::Arc;

use arrow_array::RecordBatch;
use arrow_schema::DataType;
use serde::Deserialize;

use crate::error::{Error, Result};
use column::{Col, Fields};
use de::{DeError, RowDe};

pub use value::{BoxError, ColumnIndex, FromValue, Row};

/// The rows of `batch` as `T`s, in order (see the [module docs](self) for the mapping of Arrow
/// types). Rows are counted from 0 in errors. `T` may borrow strings and bytes from the batch.
///
/// ```
/// # use std::sync::Arc;
/// use databricks_sql::arrow::array::{Int64Array, RecordBatch, StringArray};
///
/// #[derive(serde::Deserialize, Debug, PartialEq)]
/// struct Item<'a> {
///     id: i64,
///     name: Option<&'a str>,
/// }
///
/// let batch = RecordBatch::try_from_iter([
///     ("id", Arc::new(Int64Array::from(vec![1, 2])) as _),
///     ("name", Arc::new(StringArray::from(vec![Some("a"), None])) as _),
/// ])?;
/// let items: Vec<Item> = databricks_sql::rows::from_batch(&batch)?;
/// assert_eq!(items, [Item { id: 1, name: Some("a") }, Item { id: 2, name: None }]);
/// # Ok::<(), Box<dyn std::error::Error>>(())
/// ```
pub fn from_batch<'a, T: Deserialize<'a>>(batch: &'a RecordBatch) -> Result<Vec<T>> {
    let mut out = Vec::with_capacity(batch.num_rows());
    deserialize_rows(batch, 0, &mut out)?;
    Ok(out)
}

/// The type given to a batch's columns taken as one struct (only ever shown, never read).
static ROW_TYPE: DataType = DataType::Null;

/// Deserializes the rows of `batch` into `out`, numbering them from `first_row` in errors; on an
/// error, `out` holds the rows before the failed one.
pub(crate) fn deserialize_rows<'a, T: Deserialize<'a>>(
    batch: &'a RecordBatch,
    first_row: u64,
    out: &mut Vec<T>,
) -> Result<()> {
    let schema = batch.schema_ref();
    let root = Col::root(
        &ROW_TYPE,
        Fields::new(
            schema.fields().iter().map(|f| f.name().as_str()).collect(),
            batch
                .columns()
                .iter()
                .map(|c| Col::new(c.as_ref()))
                .collect(),
        ),
    );
    out.reserve(batch.num_rows());
    for row in 0..batch.num_rows() {
        match T::deserialize(RowDe { root: &root, row }) {
            Ok(value) => out.push(value),
            Err(e) => return Err(row_error(e, batch, first_row + row as u64)),
        }
    }
    Ok(())
}

/// The driver's error for a row that did not deserialize.
fn row_error(e: DeError, batch: &RecordBatch, row: u64) -> Error {
    let column = e.column.and_then(|i| {
        let field = batch.schema_ref().fields().get(i)?.clone();
        Some(format!(
            ", column {i} `{}` ({})",
            field.name(),
            field.data_type()
        ))
    });
    Error::decode(format!(
        "cannot deserialize row {row}{}: {}",
        column.unwrap_or_default(),
        e.message
    ))
}

/// Row handles of `batch`, numbered from `first_row`.
pub(crate) fn rows_of(batch: RecordBatch, first_row: u64) -> impl Iterator<Item = Row> {
    let batch = Arc::new(batch);
    (0..batch.num_rows()).map(move |i| Row::new(batch.clone(), i, first_row + i as u64))
}

#[cfg(test)]
mod tests;
