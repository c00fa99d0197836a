//! [`Row`]: one row of a result, read a value at a time with [`Row::get`] through the
//! [`FromValue`] conversion trait; and the serde `Deserialize` of [`Decimal`].

use std::fmt;
use std::sync::Arc;

use arrow_array::{Array, RecordBatch};
use arrow_schema::{DataType, Schema, SchemaRef};
use chrono::{DateTime, NaiveDate, NaiveDateTime, Utc};
use serde::de::{DeserializeOwned, Visitor};
use serde::{Deserialize, Deserializer};

use super::column::{Col, Kind};
use super::de::{RowDe, ValueDe};
use super::row_error;
use crate::error::{Error, Result};
use crate::params::Decimal;

/// The error a [`FromValue`] conversion returns; [`Row::get`] turns it into an [`Error`] that
/// names the row, the column and both types.
pub type BoxError = Box<dyn std::error::Error + Send + Sync>;

/// A Rust type that one value of a result converts into, for [`Row::get`] (like
/// tokio-postgres' `FromSql`).
///
/// Implemented for `bool`, the integer types (from any integer column whose value fits, and
/// decimals without a fraction), `f32` and `f64` (from floats, integers and decimals),
/// `String` (strings; decimals, dates and timestamps as their text), `Vec<u8>` (binary),
/// [`Decimal`] (decimals, exact; integers), `chrono::NaiveDate` (dates),
/// `chrono::NaiveDateTime` (timestamps: the UTC wall time of one with a time zone),
/// `chrono::DateTime<Utc>` (timestamps with a time zone), `serde_json::Value` (any type, nested
/// ones as arrays and objects) and `Option<T>` of each (NULL is `None`; NULL into any other type
/// is an error).
///
/// Implement it for your own types by downcasting the array:
///
/// ```
/// use databricks_sql::arrow::array::{Array, StringArray};
/// use databricks_sql::rows::{BoxError, FromValue};
///
/// struct Upper(String);
///
/// impl FromValue for Upper {
///     fn from_value(array: &dyn Array, row: usize) -> Result<Self, BoxError> {
///         let strings = array
///             .as_any()
///             .downcast_ref::<StringArray>()
///             .ok_or("not a string column")?;
///         Ok(Upper(strings.value(row).to_uppercase()))
///     }
/// }
/// ```
pub trait FromValue: Sized {
    /// The value at `row` of `array`, which is not NULL (`row` is within the array).
    fn from_value(array: &dyn Array, row: usize) -> std::result::Result<Self, BoxError>;

    /// The value for a NULL: by default an error; `None` for `Option<T>`.
    fn from_null() -> std::result::Result<Self, BoxError> {
        Err("the value is NULL (read it as an Option)".into())
    }
}

impl<T: FromValue> FromValue for Option<T> {
    fn from_value(array: &dyn Array, row: usize) -> std::result::Result<Self, BoxError> {
        T::from_value(array, row).map(Some)
    }

    fn from_null() -> std::result::Result<Self, BoxError> {
        Ok(None)
    }
}

/// `FromValue` through the serde deserializer of one value: the same conversions as typed rows.
macro_rules! from_value_by_serde {
    ($($t:ty),* $(,)?) => {
        $(
            impl FromValue for $t {
                fn from_value(array: &dyn Array, row: usize) -> std::result::Result<Self, BoxError> {
                    let col = Col::new(array);
                    Ok(<$t>::deserialize(ValueDe { col: &col, row })?)
                }
            }
        )*
    };
}

from_value_by_serde!(
    bool,
    i8,
    i16,
    i32,
    i64,
    u8,
    u16,
    u32,
    u64,
    f32,
    f64,
    Vec<u8>,
    serde_json::Value,
);

impl FromValue for String {
    fn from_value(array: &dyn Array, row: usize) -> std::result::Result<Self, BoxError> {
        let col = Col::new(array);
        match col.str(row) {
            Some(text) => Ok(text.to_string()),
            None => col.text(row).ok_or_else(|| {
                format!("Arrow type {} is not read as a string", col.data_type).into()
            }),
        }
    }
}

impl FromValue for Decimal {
    fn from_value(array: &dyn Array, row: usize) -> std::result::Result<Self, BoxError> {
        let col = Col::new(array);
        match &col.kind {
            Kind::Decimal128(values, scale) if *scale >= 0 => {
                Ok(Decimal::new(values[row], scale.unsigned_abs())?)
            }
            Kind::Decimal128(..) | Kind::Decimal256(..) => match col.text(row) {
                Some(text) => Ok(text.parse()?),
                None => Err("the decimal has no text form".into()),
            },
            _ => match col.integer(row) {
                Some(v) => Ok(Decimal::new(v?, 0)?),
                None => Err(format!("Arrow type {} is not a decimal", col.data_type).into()),
            },
        }
    }
}

impl FromValue for NaiveDate {
    fn from_value(array: &dyn Array, row: usize) -> std::result::Result<Self, BoxError> {
        match Col::new(array).date(row) {
            Some(date) => Ok(date?),
            None => Err(format!("Arrow type {} is not a date", array.data_type()).into()),
        }
    }
}

impl FromValue for NaiveDateTime {
    fn from_value(array: &dyn Array, row: usize) -> std::result::Result<Self, BoxError> {
        match Col::new(array).timestamp(row) {
            Some((instant, _)) => Ok(instant?.naive_utc()),
            None => Err(format!("Arrow type {} is not a timestamp", array.data_type()).into()),
        }
    }
}

impl FromValue for DateTime<Utc> {
    fn from_value(array: &dyn Array, row: usize) -> std::result::Result<Self, BoxError> {
        match Col::new(array).timestamp(row) {
            Some((instant, true)) => Ok(instant?),
            Some((_, false)) => Err(
                "a timestamp without a time zone is not an instant (read it as a NaiveDateTime)"
                    .into(),
            ),
            None => Err(format!("Arrow type {} is not a timestamp", array.data_type()).into()),
        }
    }
}

/// Reads a [`Decimal`] from its text (`"-12.50"`, what typed rows give for decimal columns) or
/// from an integer.
impl<'de> Deserialize<'de> for Decimal {
    fn deserialize<D: Deserializer<'de>>(deserializer: D) -> std::result::Result<Self, D::Error> {
        struct DecimalVisitor;

        impl Visitor<'_> for DecimalVisitor {
            type Value = Decimal;

            fn expecting(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
                f.write_str("a decimal number as a string or an integer")
            }

            fn visit_str<E: serde::de::Error>(self, v: &str) -> std::result::Result<Decimal, E> {
                v.parse().map_err(E::custom)
            }

            fn visit_i64<E: serde::de::Error>(self, v: i64) -> std::result::Result<Decimal, E> {
                Decimal::new(v.into(), 0).map_err(E::custom)
            }

            fn visit_u64<E: serde::de::Error>(self, v: u64) -> std::result::Result<Decimal, E> {
                Decimal::new(v.into(), 0).map_err(E::custom)
            }
        }

        // Self-describing: a decimal column gives its text, an integer column its integer.
        deserializer.deserialize_any(DecimalVisitor)
    }
}

/// A column of a [`Row`]: its index (`usize`) or its name (`&str`, `String`; the exact name,
/// else the first that matches ignoring ASCII case). Sealed.
pub trait ColumnIndex: sealed::Sealed + fmt::Debug {
    /// The index of the column in `schema`, `None` when there is none.
    fn index_in(&self, schema: &Schema) -> Option<usize>;
}

mod sealed {
    pub trait Sealed {}
    impl Sealed for usize {}
    impl Sealed for str {}
    impl Sealed for String {}
    impl<T: Sealed + ?Sized> Sealed for &T {}
}

impl ColumnIndex for usize {
    fn index_in(&self, schema: &Schema) -> Option<usize> {
        (*self < schema.fields().len()).then_some(*self)
    }
}

impl ColumnIndex for str {
    fn index_in(&self, schema: &Schema) -> Option<usize> {
        super::column::find_name(schema.fields().iter().map(|f| f.name().as_str()), self)
    }
}

impl ColumnIndex for String {
    fn index_in(&self, schema: &Schema) -> Option<usize> {
        self.as_str().index_in(schema)
    }
}

impl<T: ColumnIndex + ?Sized> ColumnIndex for &T {
    fn index_in(&self, schema: &Schema) -> Option<usize> {
        (**self).index_in(schema)
    }
}

/// One row of a result (from [`Operation::rows_raw`](crate::Operation::rows_raw)): read its
/// values with [`get`](Row::get), or the whole row with [`deserialize`](Row::deserialize). Cheap
/// to clone: the rows of a batch share it.
#[derive(Clone)]
pub struct Row {
    batch: Arc<RecordBatch>,
    index: usize,
    number: u64,
}

impl fmt::Debug for Row {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("Row")
            .field("number", &self.number)
            .field("columns", &self.len())
            .finish_non_exhaustive()
    }
}

impl Row {
    pub(crate) fn new(batch: Arc<RecordBatch>, index: usize, number: u64) -> Row {
        Row {
            batch,
            index,
            number,
        }
    }

    /// The value of `column` (an index or a name) as a `T`. Never panics: a column that does
    /// not exist, a NULL read into a type other than `Option`, or a value `T` cannot hold is an
    /// error of kind [`Decode`](crate::ErrorKind::Decode) naming the row, the column, its Arrow
    /// type and `T`.
    ///
    /// ```no_run
    /// # async fn run(session: databricks_sql::Session) -> databricks_sql::Result<()> {
    /// use futures::TryStreamExt;
    ///
    /// let mut op = session.execute_statement("SELECT * FROM mock.rows(3)").await?;
    /// let mut rows = op.rows_raw();
    /// while let Some(row) = rows.try_next().await? {
    ///     let id: i64 = row.get(0)?;
    ///     let name: Option<String> = row.get("name")?;
    ///     println!("{id} {name:?}");
    /// }
    /// # Ok(()) }
    /// ```
    pub fn get<T: FromValue>(&self, column: impl ColumnIndex) -> Result<T> {
        let schema = self.batch.schema_ref();
        let Some(i) = column.index_in(schema) else {
            let names: Vec<&str> = schema.fields().iter().map(|f| f.name().as_str()).collect();
            return Err(Error::decode(format!(
                "row {} has no column {column:?} (columns: {})",
                self.number,
                names.join(", ")
            )));
        };
        let array = self.batch.column(i);
        let field = schema.field(i);
        let value = if array.data_type() == &DataType::Null || array.is_null(self.index) {
            T::from_null()
        } else {
            T::from_value(array.as_ref(), self.index)
        };
        value.map_err(|e| {
            Error::decode(format!(
                "cannot read row {}, column {i} `{}` ({}) as {}: {e}",
                self.number,
                field.name(),
                field.data_type(),
                short_type_name::<T>()
            ))
        })
    }

    /// The whole row as a `T`, as [`Operation::rows`](crate::Operation::rows) reads it.
    pub fn deserialize<T: DeserializeOwned>(&self) -> Result<T> {
        let batch = &self.batch;
        let schema = batch.schema_ref();
        let root = Col::root(
            &super::ROW_TYPE,
            super::column::Fields::new(
                schema.fields().iter().map(|f| f.name().as_str()).collect(),
                batch
                    .columns()
                    .iter()
                    .map(|c| Col::new(c.as_ref()))
                    .collect(),
            ),
        );
        T::deserialize(RowDe {
            root: &root,
            row: self.index,
        })
        .map_err(|e| row_error(e, batch, self.number))
    }

    /// The number of the row in the result, counted from 0.
    pub fn number(&self) -> u64 {
        self.number
    }

    /// The number of columns.
    pub fn len(&self) -> usize {
        self.batch.num_columns()
    }

    /// Whether the row has no columns.
    pub fn is_empty(&self) -> bool {
        self.batch.num_columns() == 0
    }

    /// The names and Arrow types of the columns.
    pub fn schema(&self) -> SchemaRef {
        self.batch.schema()
    }
}

/// `T`'s name without module paths (`Option<String>`, not `core::option::Option<alloc::...>`).
fn short_type_name<T>() -> String {
    let full = std::any::type_name::<T>();
    let mut out = String::with_capacity(full.len());
    let mut word = String::new();
    for c in full.chars() {
        if c.is_alphanumeric() || c == '_' || c == ':' {
            word.push(c);
        } else {
            out.push_str(word.rsplit("::").next().unwrap_or_default());
            word.clear();
            out.push(c);
        }
    }
    out.push_str(word.rsplit("::").next().unwrap_or_default());
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn short_type_names_drop_module_paths() {
        assert_eq!(short_type_name::<Option<String>>(), "Option<String>");
        assert_eq!(short_type_name::<i32>(), "i32");
        assert_eq!(short_type_name::<DateTime<Utc>>(), "DateTime<Utc>");
    }
}
