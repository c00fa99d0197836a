//! Result sources: where a statement's rows come from. Every source answers any row range
//! `(offset, len)` on demand, so a 10-million-row result is never held in memory and any page,
//! inline batch or (later) CloudFetch file can be produced independently of the others.

use std::fmt;
use std::sync::Arc;

use arrow_array::{
    ArrayRef, BooleanArray, Float64Array, Int32Array, Int64Array, RecordBatch, StringArray,
    TimestampMicrosecondArray,
};
use arrow_schema::{DataType, Field, Schema, SchemaRef, TimeUnit};

use crate::error::{Error, Result};

/// A result set whose rows can be produced by range.
pub(crate) trait RowSource: Send + Sync + fmt::Debug {
    /// The result's schema (the logical types, e.g. `Timestamp(µs, "UTC")` for `TIMESTAMP`).
    fn schema(&self) -> SchemaRef;
    /// Total number of rows.
    fn num_rows(&self) -> u64;
    /// Rows `offset .. offset + len` (clamped to the end) as one batch.
    fn rows(&self, offset: u64, len: usize) -> Result<RecordBatch>;
}

/// A rough size in bytes of one row of `schema` as Arrow data, used to size pages by `maxBytes`.
pub(crate) fn estimated_row_bytes(schema: &Schema) -> usize {
    schema
        .fields()
        .iter()
        .map(|f| match f.data_type() {
            DataType::Boolean | DataType::Int8 | DataType::UInt8 | DataType::Null => 1,
            DataType::Int16 | DataType::UInt16 | DataType::Float16 => 2,
            DataType::Int32 | DataType::UInt32 | DataType::Float32 | DataType::Date32 => 4,
            DataType::Decimal128(..) => 16,
            DataType::Utf8 | DataType::Binary => 20,
            DataType::LargeUtf8 | DataType::LargeBinary => 24,
            _ => 8,
        })
        .sum::<usize>()
        .max(1)
}

fn clamp(total: u64, offset: u64, len: usize) -> (u64, usize) {
    let start = offset.min(total);
    let n = (total - start).min(len as u64) as usize;
    (start, n)
}

/// `range(start, end)`: one column `id BIGINT`.
#[derive(Debug)]
pub(crate) struct RangeSource {
    start: i64,
    end: i64,
    schema: SchemaRef,
}

impl RangeSource {
    pub(crate) fn new(start: i64, end: i64) -> Self {
        RangeSource {
            start,
            end: end.max(start),
            schema: Arc::new(Schema::new(vec![Field::new("id", DataType::Int64, false)])),
        }
    }
}

impl RowSource for RangeSource {
    fn schema(&self) -> SchemaRef {
        self.schema.clone()
    }
    fn num_rows(&self) -> u64 {
        self.end.abs_diff(self.start)
    }
    fn rows(&self, offset: u64, len: usize) -> Result<RecordBatch> {
        let (start, n) = clamp(self.num_rows(), offset, len);
        let first = self.start + start as i64;
        let ids: Int64Array = (first..first + n as i64).collect();
        Ok(RecordBatch::try_new(
            self.schema.clone(),
            vec![Arc::new(ids)],
        )?)
    }
}

/// `mock.rows(n)`: `id BIGINT`, `name STRING` (`name-<id>`, NULL when id % 7 == 3),
/// `amount DOUBLE` (id * 0.25), `ts TIMESTAMP` (epoch + id seconds, UTC), `flag BOOLEAN` (even ids).
#[derive(Debug)]
pub(crate) struct MockRowsSource {
    n: u64,
    schema: SchemaRef,
}

impl MockRowsSource {
    pub(crate) fn new(n: u64) -> Self {
        MockRowsSource {
            n,
            schema: mock_rows_schema(),
        }
    }
}

/// The schema of `mock.rows(n)`.
pub(crate) fn mock_rows_schema() -> SchemaRef {
    Arc::new(Schema::new(vec![
        Field::new("id", DataType::Int64, false),
        Field::new("name", DataType::Utf8, true),
        Field::new("amount", DataType::Float64, false),
        Field::new(
            "ts",
            DataType::Timestamp(TimeUnit::Microsecond, Some("UTC".into())),
            false,
        ),
        Field::new("flag", DataType::Boolean, false),
    ]))
}

impl RowSource for MockRowsSource {
    fn schema(&self) -> SchemaRef {
        self.schema.clone()
    }
    fn num_rows(&self) -> u64 {
        self.n
    }
    fn rows(&self, offset: u64, len: usize) -> Result<RecordBatch> {
        let (start, n) = clamp(self.n, offset, len);
        let ids = start as i64..(start + n as u64) as i64;
        let id: Int64Array = ids.clone().collect();
        let name: StringArray = ids
            .clone()
            .map(|i| (i % 7 != 3).then(|| format!("name-{i}")))
            .collect();
        let amount: Float64Array = ids.clone().map(|i| i as f64 * 0.25).collect();
        let ts = TimestampMicrosecondArray::from_iter_values(ids.clone().map(|i| i * 1_000_000))
            .with_timezone("UTC");
        let flag: BooleanArray = ids.map(|i| Some(i % 2 == 0)).collect();
        let columns: Vec<ArrayRef> = vec![
            Arc::new(id),
            Arc::new(name),
            Arc::new(amount),
            Arc::new(ts),
            Arc::new(flag),
        ];
        Ok(RecordBatch::try_new(self.schema.clone(), columns)?)
    }
}

/// A result held in memory: registered by a test, or a one-row answer (`SELECT 1`, `sleep`).
#[derive(Debug)]
pub(crate) struct BatchesSource {
    schema: SchemaRef,
    batches: Vec<RecordBatch>,
    /// Row offset of each batch's first row; same length as `batches`.
    starts: Vec<u64>,
    total: u64,
}

impl BatchesSource {
    /// Fails when a batch's schema has different field types than `schema`.
    pub(crate) fn new(schema: SchemaRef, batches: Vec<RecordBatch>) -> Result<Self> {
        let mut starts = Vec::with_capacity(batches.len());
        let mut total = 0u64;
        let mut kept = Vec::with_capacity(batches.len());
        for (i, b) in batches.into_iter().enumerate() {
            let same = b.schema().fields().len() == schema.fields().len()
                && b.schema()
                    .fields()
                    .iter()
                    .zip(schema.fields().iter())
                    .all(|(a, f)| a.data_type() == f.data_type());
            if !same {
                return Err(Error::config(format!(
                    "registered batch {i} does not match the registered schema"
                )));
            }
            if b.num_rows() == 0 {
                continue;
            }
            // Re-label the batch with the registered schema (names, nullability, metadata).
            let b = RecordBatch::try_new(schema.clone(), b.columns().to_vec())?;
            starts.push(total);
            total += b.num_rows() as u64;
            kept.push(b);
        }
        Ok(BatchesSource {
            schema,
            batches: kept,
            starts,
            total,
        })
    }

    /// A result with no rows.
    pub(crate) fn empty(schema: SchemaRef) -> Self {
        BatchesSource {
            schema,
            batches: Vec::new(),
            starts: Vec::new(),
            total: 0,
        }
    }

    /// A one-row, one-column result.
    pub(crate) fn single(name: &str, data_type: DataType, value: ArrayRef) -> Result<Self> {
        let schema = Arc::new(Schema::new(vec![Field::new(name, data_type, true)]));
        let batch = RecordBatch::try_new(schema.clone(), vec![value])?;
        Self::new(schema, vec![batch])
    }

    /// `SELECT <int>`: an `INT` column when the value fits, else `BIGINT`.
    pub(crate) fn select_int(text: &str, value: i64) -> Result<Self> {
        match i32::try_from(value) {
            Ok(v) => Self::single(text, DataType::Int32, Arc::new(Int32Array::from(vec![v]))),
            Err(_) => Self::single(
                text,
                DataType::Int64,
                Arc::new(Int64Array::from(vec![value])),
            ),
        }
    }

    /// `SELECT * FROM mock.all_types`: one column of each type a warehouse returns (see the
    /// table in the module docs of [`crate::mock`]), four rows, the last one all NULL.
    pub(crate) fn all_types() -> Result<Self> {
        let batch = all_types_batch()?;
        Self::new(batch.schema(), vec![batch])
    }

    /// A DML statement's answer on a Databricks warehouse: one row, `num_affected_rows` and
    /// `num_inserted_rows` (BIGINT).
    pub(crate) fn dml_counts(affected: i64, inserted: i64) -> Result<Self> {
        let schema = Arc::new(Schema::new(vec![
            Field::new("num_affected_rows", DataType::Int64, true),
            Field::new("num_inserted_rows", DataType::Int64, true),
        ]));
        let batch = RecordBatch::try_new(
            schema.clone(),
            vec![
                Arc::new(Int64Array::from(vec![affected])),
                Arc::new(Int64Array::from(vec![inserted])),
            ],
        )?;
        Self::new(schema, vec![batch])
    }

    /// A one-row `STRING` result.
    pub(crate) fn string(name: &str, value: Option<&str>) -> Result<Self> {
        Self::single(
            name,
            DataType::Utf8,
            Arc::new(StringArray::from(vec![value])),
        )
    }
}

/// The first `limit` rows of another source (`resultRowLimit`).
#[derive(Debug)]
pub(crate) struct LimitedSource {
    inner: Arc<dyn RowSource>,
    limit: u64,
}

impl LimitedSource {
    pub(crate) fn new(inner: Arc<dyn RowSource>, limit: u64) -> Self {
        LimitedSource { inner, limit }
    }
}

impl RowSource for LimitedSource {
    fn schema(&self) -> SchemaRef {
        self.inner.schema()
    }
    fn num_rows(&self) -> u64 {
        self.inner.num_rows().min(self.limit)
    }
    fn rows(&self, offset: u64, len: usize) -> Result<RecordBatch> {
        let (offset, len) = clamp(self.num_rows(), offset, len);
        self.inner.rows(offset, len)
    }
}

/// The rows of `mock.all_types`.
pub(crate) fn all_types_batch() -> Result<RecordBatch> {
    use arrow_array::builder::{
        Int32Builder, ListBuilder, MapBuilder, StringBuilder as StrBuilder, StructBuilder,
    };
    use arrow_array::{
        BinaryArray, Date32Array, Decimal128Array, Float32Array, Int16Array, Int8Array, NullArray,
    };
    let mut list = ListBuilder::new(Int32Builder::new());
    list.append_value([Some(1), Some(2), None]);
    list.append_value([]);
    list.append_value([Some(-7)]);
    list.append_null();
    let mut map = MapBuilder::new(None, StrBuilder::new(), Int32Builder::new());
    for entries in [
        vec![("a", Some(1)), ("b", None)],
        vec![],
        vec![("z\"q", Some(3))],
    ] {
        for (k, v) in entries {
            map.keys().append_value(k);
            map.values().append_option(v);
        }
        map.append(true)?;
    }
    map.append(false)?;
    let struct_fields = vec![
        Field::new("x", DataType::Int32, true),
        Field::new("y", DataType::Utf8, true),
    ];
    let mut structs = StructBuilder::from_fields(struct_fields, 4);
    for (x, y, valid) in [
        (Some(1), Some("one"), true),
        (None, Some("two, \"quoted\""), true),
        (Some(3), None, true),
        (None, None, false),
    ] {
        structs
            .field_builder::<Int32Builder>(0)
            .ok_or_else(|| Error::config("struct field 0"))?
            .append_option(x);
        structs
            .field_builder::<StrBuilder>(1)
            .ok_or_else(|| Error::config("struct field 1"))?
            .append_option(y);
        structs.append(valid);
    }
    let decimal = Decimal128Array::from(vec![
        Some(123_456_789_i128),
        Some(-5),
        Some(99_999_999_999_999_999_999_999_999_999_999_999_i128),
        None,
    ])
    .with_precision_and_scale(38, 4)?;
    let list = list.finish();
    let map = map.finish();
    let structs = structs.finish();
    let columns: Vec<(&str, ArrayRef)> = vec![
        (
            "c_boolean",
            Arc::new(BooleanArray::from(vec![
                Some(true),
                Some(false),
                Some(true),
                None,
            ])),
        ),
        (
            "c_tinyint",
            Arc::new(Int8Array::from(vec![
                Some(i8::MIN),
                Some(0),
                Some(i8::MAX),
                None,
            ])),
        ),
        (
            "c_smallint",
            Arc::new(Int16Array::from(vec![
                Some(i16::MIN),
                Some(0),
                Some(i16::MAX),
                None,
            ])),
        ),
        (
            "c_int",
            Arc::new(Int32Array::from(vec![
                Some(i32::MIN),
                Some(0),
                Some(i32::MAX),
                None,
            ])),
        ),
        (
            "c_bigint",
            Arc::new(Int64Array::from(vec![
                Some(i64::MIN),
                Some(0),
                Some(i64::MAX),
                None,
            ])),
        ),
        (
            "c_float",
            Arc::new(Float32Array::from(vec![
                Some(1.5),
                Some(-0.25),
                Some(3.0e38),
                None,
            ])),
        ),
        (
            "c_double",
            Arc::new(Float64Array::from(vec![
                Some(0.1),
                Some(-2.5e-300),
                Some(1e300),
                None,
            ])),
        ),
        (
            "c_string",
            Arc::new(StringArray::from(vec![
                Some("hello"),
                Some(""),
                Some("naïve, \"q\""),
                None,
            ])),
        ),
        (
            "c_binary",
            Arc::new(BinaryArray::from(vec![
                Some(&b"\x00\x01\xff"[..]),
                Some(&b""[..]),
                Some(&b"abc"[..]),
                None,
            ])),
        ),
        ("c_decimal", Arc::new(decimal)),
        (
            "c_date",
            Arc::new(Date32Array::from(vec![
                Some(0),
                Some(-719_162),
                Some(2_932_896),
                None,
            ])),
        ),
        (
            "c_timestamp",
            Arc::new(
                TimestampMicrosecondArray::from(vec![
                    Some(1_700_000_000_123_456),
                    Some(-1),
                    Some(0),
                    None,
                ])
                .with_timezone("UTC"),
            ),
        ),
        ("c_array", Arc::new(list)),
        ("c_map", Arc::new(map)),
        ("c_struct", Arc::new(structs)),
        ("c_void", Arc::new(NullArray::new(4))),
    ];
    let fields: Vec<Field> = columns
        .iter()
        .map(|(name, array)| Field::new(*name, array.data_type().clone(), true))
        .collect();
    let arrays = columns.into_iter().map(|(_, a)| a).collect();
    Ok(RecordBatch::try_new(Arc::new(Schema::new(fields)), arrays)?)
}

impl RowSource for BatchesSource {
    fn schema(&self) -> SchemaRef {
        self.schema.clone()
    }
    fn num_rows(&self) -> u64 {
        self.total
    }
    fn rows(&self, offset: u64, len: usize) -> Result<RecordBatch> {
        let (start, n) = clamp(self.total, offset, len);
        if n == 0 {
            return Ok(RecordBatch::new_empty(self.schema.clone()));
        }
        let end = start + n as u64;
        // The batch holding `start`: the last one whose first row is at or before it.
        let first = self
            .starts
            .partition_point(|&s| s <= start)
            .saturating_sub(1);
        let mut parts = Vec::new();
        for (b, &b_start) in self.batches[first..].iter().zip(&self.starts[first..]) {
            if b_start >= end {
                break;
            }
            let from = start.saturating_sub(b_start) as usize;
            let to = ((end - b_start) as usize).min(b.num_rows());
            parts.push(b.slice(from, to - from));
        }
        if parts.len() == 1 {
            return Ok(parts.swap_remove(0));
        }
        Ok(arrow_select::concat::concat_batches(&self.schema, &parts)?)
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use arrow_array::cast::AsArray;
    use arrow_array::types::{Int64Type, TimestampMicrosecondType};
    use arrow_array::Array;

    #[test]
    fn range_rows_are_ids_from_the_offset() {
        let s = RangeSource::new(0, 10);
        assert_eq!(s.num_rows(), 10);
        let b = s.rows(7, 5).unwrap();
        assert_eq!(b.num_rows(), 3);
        let ids: Vec<i64> = b.column(0).as_primitive::<Int64Type>().values().to_vec();
        assert_eq!(ids, vec![7, 8, 9]);
        assert_eq!(s.rows(10, 5).unwrap().num_rows(), 0);
        assert_eq!(s.rows(u64::MAX, 5).unwrap().num_rows(), 0);
        assert_eq!(RangeSource::new(5, 2).num_rows(), 0);
    }

    #[test]
    fn mock_rows_values_follow_the_documented_rules() {
        let s = MockRowsSource::new(1000);
        let b = s.rows(990, 100).unwrap();
        assert_eq!(b.num_rows(), 10);
        let id = b.column(0).as_primitive::<Int64Type>();
        let name = b.column(1).as_string::<i32>();
        let amount = b
            .column(2)
            .as_primitive::<arrow_array::types::Float64Type>();
        let ts = b.column(3).as_primitive::<TimestampMicrosecondType>();
        let flag = b.column(4).as_boolean();
        for row in 0..b.num_rows() {
            let i = id.value(row);
            assert_eq!(i, 990 + row as i64);
            if i % 7 == 3 {
                assert!(name.is_null(row), "id {i}");
            } else {
                assert_eq!(name.value(row), format!("name-{i}"));
            }
            assert_eq!(amount.value(row), i as f64 * 0.25);
            assert_eq!(ts.value(row), i * 1_000_000);
            assert_eq!(flag.value(row), i % 2 == 0);
        }
        assert_eq!(
            b.schema().field(3).data_type(),
            &DataType::Timestamp(TimeUnit::Microsecond, Some("UTC".into()))
        );
        // id 990 % 7 == 3: the first row's name is null
        assert_eq!(990 % 7, 3);
        assert_eq!(name.null_count(), 2);
    }

    #[test]
    fn huge_mock_rows_costs_nothing_until_a_page_is_asked_for() {
        let s = MockRowsSource::new(10_000_000_000);
        let b = s.rows(9_999_999_998, 1000).unwrap();
        assert_eq!(b.num_rows(), 2);
        assert_eq!(
            b.column(0).as_primitive::<Int64Type>().value(1),
            9_999_999_999
        );
    }

    #[test]
    fn registered_batches_slice_across_batch_boundaries() {
        let schema = Arc::new(Schema::new(vec![Field::new("x", DataType::Int64, false)]));
        let mk = |r: std::ops::Range<i64>| {
            RecordBatch::try_new(
                schema.clone(),
                vec![Arc::new(r.collect::<Int64Array>()) as ArrayRef],
            )
            .unwrap()
        };
        let s = BatchesSource::new(
            schema.clone(),
            vec![mk(0..3), mk(3..3), mk(3..7), mk(7..10)],
        )
        .unwrap();
        assert_eq!(s.num_rows(), 10);
        for (off, len) in [(0, 10), (2, 3), (3, 4), (5, 100), (9, 1), (0, 1)] {
            let b = s.rows(off, len).unwrap();
            let got: Vec<i64> = b.column(0).as_primitive::<Int64Type>().values().to_vec();
            let want: Vec<i64> = (off as i64..(off as i64 + len as i64).min(10)).collect();
            assert_eq!(got, want, "offset {off} len {len}");
        }
        assert_eq!(s.rows(10, 1).unwrap().num_rows(), 0);
    }

    #[test]
    fn registered_batches_must_match_the_schema() {
        let schema = Arc::new(Schema::new(vec![Field::new("x", DataType::Int64, false)]));
        let other = Arc::new(Schema::new(vec![Field::new("x", DataType::Utf8, false)]));
        let b = RecordBatch::try_new(
            other,
            vec![Arc::new(StringArray::from(vec!["a"])) as ArrayRef],
        )
        .unwrap();
        assert!(BatchesSource::new(schema, vec![b]).is_err());
    }

    #[test]
    fn select_int_is_int_named_after_the_literal() {
        let s = BatchesSource::select_int("1", 1).unwrap();
        assert_eq!(s.schema().field(0).name(), "1");
        assert_eq!(s.schema().field(0).data_type(), &DataType::Int32);
        let big = BatchesSource::select_int("9999999999", 9_999_999_999).unwrap();
        assert_eq!(big.schema().field(0).data_type(), &DataType::Int64);
    }
}
