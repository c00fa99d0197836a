//! How the mock puts rows on the wire: the size of a page, the schema as the client sees it
//! (timestamps and decimals as strings unless the client asked for Arrow types), the result-set
//! metadata, and one page of rows as a `TRowSet` (Arrow batches, LZ4-framed or not, or typed
//! columns).
//!
//! A page is produced from its row range alone (`start`, `rows`), so pages, direct results and
//! (later) CloudFetch files can each be generated independently and on demand.
//!
//! A CloudFetch file (see [`super::cloudfetch`]) is produced the same way: rows
//! `start .. start + rows` as a whole Arrow IPC stream ([`encode_file`]), LZ4-framed when granted.

use std::sync::Arc;

use arrow_array::{ArrayRef, RecordBatch, StringArray};
use arrow_schema::{DataType, Field, Schema, SchemaRef};

use super::source::{estimated_row_bytes, RowSource};
use super::state::WireFormat;
use crate::error::{Error, Result};
use crate::results::encode::{
    encode_batch_message, encode_ipc_stream, encode_schema_message, to_columns, to_table_schema,
};
use crate::results::lz4::compress_frame;
use crate::thrift::tcli::{
    TColumn, TGetResultSetMetadataResp, TRowSet, TSparkArrowBatch, TSparkRowSetType,
};

/// Rows per page when the client sends `maxRows <= 0`.
pub(crate) const DEFAULT_PAGE_ROWS: u64 = 10_000;

/// The server's own cap on one page, in estimated Arrow bytes (128 MiB), whatever the client asks.
pub(crate) const MAX_PAGE_BYTES: u64 = 128 << 20;

/// How many rows the next page holds: `maxRows` (default [`DEFAULT_PAGE_ROWS`]), fewer when
/// `maxBytes` (or [`MAX_PAGE_BYTES`]) would be exceeded, at least one, at most `remaining`.
pub(crate) fn page_rows(
    max_rows: i64,
    max_bytes: Option<i64>,
    schema: &Schema,
    remaining: u64,
) -> usize {
    let mut n = if max_rows > 0 {
        max_rows as u64
    } else {
        DEFAULT_PAGE_ROWS
    };
    let row_bytes = estimated_row_bytes(schema) as u64;
    let byte_cap = match max_bytes {
        Some(b) if b > 0 => (b as u64).min(MAX_PAGE_BYTES),
        _ => MAX_PAGE_BYTES,
    };
    n = n.min((byte_cap / row_bytes).max(1));
    n.min(remaining) as usize
}

/// Whether a column of this type goes on the wire as a string in an Arrow result.
fn as_string_in_arrow(data_type: &DataType, format: WireFormat) -> bool {
    match data_type {
        DataType::Timestamp(..) => !format.arrow_timestamps,
        DataType::Decimal128(..) | DataType::Decimal256(..) => !format.arrow_decimals,
        _ => false,
    }
}

/// The Arrow schema the client receives: the result's schema with the columns it did not ask to
/// get as Arrow types turned into strings.
pub(crate) fn wire_schema(schema: &Schema, format: WireFormat) -> SchemaRef {
    let fields: Vec<Field> = schema
        .fields()
        .iter()
        .map(|f| {
            if as_string_in_arrow(f.data_type(), format) {
                Field::new(f.name(), DataType::Utf8, f.is_nullable())
            } else {
                f.as_ref().clone()
            }
        })
        .collect();
    Arc::new(Schema::new_with_metadata(fields, schema.metadata().clone()))
}

/// `batch` with the columns the client gets as strings converted (the same text as in a
/// column-based result).
fn to_wire_batch(batch: RecordBatch, wire: &SchemaRef, format: WireFormat) -> Result<RecordBatch> {
    if !batch
        .schema()
        .fields()
        .iter()
        .any(|f| as_string_in_arrow(f.data_type(), format))
    {
        return Ok(batch);
    }
    let columns = batch
        .schema()
        .fields()
        .iter()
        .zip(batch.columns())
        .map(|(f, a)| {
            if as_string_in_arrow(f.data_type(), format) {
                stringify(f, a)
            } else {
                Ok(a.clone())
            }
        })
        .collect::<Result<Vec<_>>>()?;
    Ok(RecordBatch::try_new(wire.clone(), columns)?)
}

/// One column as strings, formatted like a column-based result formats it.
fn stringify(field: &Field, array: &ArrayRef) -> Result<ArrayRef> {
    let schema = Arc::new(Schema::new(vec![Field::new(
        field.name(),
        field.data_type().clone(),
        true,
    )]));
    let one = RecordBatch::try_new(schema, vec![array.clone()])?;
    match to_columns(&one)?.pop() {
        Some(TColumn::StringVal(c)) => {
            let values: StringArray = c
                .values
                .iter()
                .enumerate()
                .map(|(i, v)| {
                    let null = c.nulls.get(i / 8).is_some_and(|b| b & (1 << (i % 8)) != 0);
                    (!null).then_some(v.as_str())
                })
                .collect();
            Ok(Arc::new(values))
        }
        _ => Err(Error::decode(format!(
            "column {} could not be converted to strings",
            field.name()
        ))),
    }
}

pub(crate) use crate::thrift::status::ok_status;

/// The result-set metadata of a result with `schema` sent as `format`.
pub(crate) fn metadata(schema: &Schema, format: WireFormat) -> TGetResultSetMetadataResp {
    let (result_format, lz4, arrow_schema) = if format.vanilla {
        (None, None, None)
    } else if format.arrow {
        let set_type = if format.cloudfetch {
            TSparkRowSetType::URL_BASED_SET
        } else {
            TSparkRowSetType::ARROW_BASED_SET
        };
        (
            Some(set_type),
            Some(format.lz4),
            Some(encode_schema_message(&wire_schema(schema, format))),
        )
    } else {
        (Some(TSparkRowSetType::COLUMN_BASED_SET), Some(false), None)
    };
    TGetResultSetMetadataResp {
        status: ok_status(),
        schema: Some(to_table_schema(schema)),
        result_format,
        lz4_compressed: lz4,
        arrow_schema,
        cache_lookup_result: None,
        uncompressed_bytes: None,
        compressed_bytes: None,
        is_staging_operation: if format.vanilla { None } else { Some(false) },
    }
}

/// Rows `start .. start + rows` of `source` in the client's wire schema, in batches of at most
/// `batch_rows` rows.
fn wire_batches(
    source: &dyn RowSource,
    wire: &SchemaRef,
    start: u64,
    rows: usize,
    format: WireFormat,
    batch_rows: usize,
) -> Result<Vec<RecordBatch>> {
    let batch_rows = batch_rows.max(1);
    let mut batches = Vec::with_capacity(rows.div_ceil(batch_rows));
    let mut done = 0usize;
    while done < rows {
        let n = batch_rows.min(rows - done);
        let batch = source.rows(start + done as u64, n)?;
        let got = batch.num_rows();
        if got == 0 {
            break;
        }
        batches.push(to_wire_batch(batch, wire, format)?);
        done += got;
    }
    Ok(batches)
}

/// A CloudFetch file: rows `start .. start + rows` of `source` as one whole Arrow IPC stream
/// (schema message, record batches of at most `batch_rows` rows, end-of-stream marker) in the
/// client's wire schema, LZ4-framed when `format.lz4`.
pub(crate) fn encode_file(
    source: &dyn RowSource,
    start: u64,
    rows: usize,
    format: WireFormat,
    batch_rows: usize,
) -> Result<Vec<u8>> {
    let wire = wire_schema(&source.schema(), format);
    let batches = wire_batches(source, &wire, start, rows, format, batch_rows)?;
    let stream = encode_ipc_stream(&wire, &batches)?;
    Ok(if format.lz4 {
        compress_frame(&stream)
    } else {
        stream
    })
}

/// Rows `start .. start + rows` of `source` as a `TRowSet` in `format`, Arrow batches holding at
/// most `batch_rows` rows each.
pub(crate) fn encode_page(
    source: &dyn RowSource,
    start: u64,
    rows: usize,
    format: WireFormat,
    batch_rows: usize,
) -> Result<TRowSet> {
    let mut row_set = TRowSet {
        start_row_offset: i64::try_from(start).unwrap_or(i64::MAX),
        rows: Vec::new(),
        columns: None,
        binary_columns: None,
        column_count: None,
        arrow_batches: None,
        result_links: None,
    };
    if format.arrow {
        let wire = wire_schema(&source.schema(), format);
        let batches = wire_batches(source, &wire, start, rows, format, batch_rows)?
            .iter()
            .map(|batch| {
                let message = encode_batch_message(batch)?;
                let bytes = if format.lz4 {
                    compress_frame(&message)
                } else {
                    message
                };
                Ok(TSparkArrowBatch {
                    batch: bytes,
                    row_count: batch.num_rows() as i64,
                })
            })
            .collect::<Result<Vec<_>>>()?;
        row_set.arrow_batches = Some(batches);
    } else {
        let batch = source.rows(start, rows)?;
        row_set.columns = Some(to_columns(&batch)?);
    }
    Ok(row_set)
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::mock::source::MockRowsSource;
    use arrow_schema::TimeUnit;

    fn fmt(arrow: bool, lz4: bool, native: bool) -> WireFormat {
        WireFormat {
            arrow,
            lz4,
            arrow_timestamps: native,
            arrow_decimals: native,
            vanilla: false,
            cloudfetch: false,
        }
    }

    #[test]
    fn page_size_follows_max_rows_then_max_bytes_then_what_is_left() {
        let schema = Schema::new(vec![Field::new("id", DataType::Int64, false)]);
        assert_eq!(page_rows(100, None, &schema, 1_000), 100);
        assert_eq!(page_rows(100, None, &schema, 30), 30);
        assert_eq!(
            page_rows(0, None, &schema, 1_000_000),
            DEFAULT_PAGE_ROWS as usize
        );
        // 8 bytes per row: 80 bytes hold 10 rows.
        assert_eq!(page_rows(100, Some(80), &schema, 1_000), 10);
        // Never less than one row, even when one row is bigger than maxBytes.
        assert_eq!(page_rows(100, Some(1), &schema, 1_000), 1);
        assert_eq!(page_rows(100, Some(1), &schema, 0), 0);
        assert_eq!(
            page_rows(i64::MAX, None, &schema, u64::MAX),
            (MAX_PAGE_BYTES / 8) as usize
        );
    }

    #[test]
    fn timestamps_are_strings_unless_asked_as_arrow() {
        let schema = crate::mock::source::mock_rows_schema();
        let native = wire_schema(&schema, fmt(true, false, true));
        assert!(matches!(
            native.field(3).data_type(),
            DataType::Timestamp(TimeUnit::Microsecond, Some(tz)) if tz.as_ref() == "UTC"
        ));
        let strings = wire_schema(&schema, fmt(true, false, false));
        assert_eq!(strings.field(3).data_type(), &DataType::Utf8);
        assert_eq!(strings.field(3).name(), "ts");
    }

    #[test]
    fn arrow_pages_are_split_into_batches_of_at_most_batch_rows() {
        let src = MockRowsSource::new(1_000);
        let rs = encode_page(&src, 100, 250, fmt(true, true, true), 100).unwrap();
        assert_eq!(rs.start_row_offset, 100);
        let batches = rs.arrow_batches.unwrap();
        let counts: Vec<i64> = batches.iter().map(|b| b.row_count).collect();
        assert_eq!(counts, vec![100, 100, 50]);
        assert!(rs.columns.is_none());
    }

    #[test]
    fn column_pages_have_one_typed_column_per_field() {
        let src = MockRowsSource::new(10);
        let rs = encode_page(&src, 0, 10, fmt(false, false, false), 100).unwrap();
        let cols = rs.columns.unwrap();
        assert_eq!(cols.len(), 5);
        match &cols[0] {
            TColumn::I64Val(c) => assert_eq!(c.values, (0..10).collect::<Vec<i64>>()),
            other => panic!("id column is {other:?}"),
        }
        match &cols[1] {
            // id 3 is NULL: bit 3 of byte 0.
            TColumn::StringVal(c) => assert_eq!(c.nulls, vec![0b0000_1000, 0]),
            other => panic!("name column is {other:?}"),
        }
        match &cols[3] {
            TColumn::StringVal(c) => assert_eq!(c.values[1], "1970-01-01 00:00:01"),
            other => panic!("ts column is {other:?}"),
        }
    }

    #[test]
    fn metadata_names_the_format_used() {
        let schema = crate::mock::source::mock_rows_schema();
        let arrow = metadata(&schema, fmt(true, true, true));
        assert_eq!(arrow.result_format, Some(TSparkRowSetType::ARROW_BASED_SET));
        assert_eq!(arrow.lz4_compressed, Some(true));
        assert!(arrow.arrow_schema.is_some());
        assert_eq!(arrow.schema.unwrap().columns.len(), 5);
        let cols = metadata(&schema, fmt(false, false, false));
        assert_eq!(cols.result_format, Some(TSparkRowSetType::COLUMN_BASED_SET));
        assert!(cols.arrow_schema.is_none());
        let mut vanilla = fmt(false, false, false);
        vanilla.vanilla = true;
        assert_eq!(metadata(&schema, vanilla).result_format, None);
    }
}
