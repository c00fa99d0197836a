//! Encode -> decode round trips through [`ResultDecoder`], the way the mock warehouse and the
//! driver use the two sides: inline Arrow with and without LZ4, column-based, CloudFetch files,
//! and what corrupt or inconsistent data turns into.

use std::sync::Arc;

use arrow_array::cast::AsArray;
use arrow_array::{
    Array, ArrayRef, BinaryArray, BooleanArray, Date32Array, Decimal128Array, Float32Array,
    Float64Array, Int16Array, Int32Array, Int64Array, Int8Array, RecordBatch, StringArray,
    TimestampMicrosecondArray,
};
use arrow_schema::{DataType, Field, Schema, SchemaRef, TimeUnit};

use super::encode::{encode_batch_message, encode_schema_message, to_columns, to_table_schema};
use super::lz4::compress_frame;
use super::{ResultDecoder, ResultFormat};
use crate::thrift::tcli::{TRowSet, TSparkArrowBatch, TSparkArrowResultLink, TSparkRowSetType};
use crate::ErrorKind;

/// Every type the driver supports, each column with NULLs (row `i` is NULL when `i % 4 == 1`).
fn all_types(rows: usize, start: i64) -> RecordBatch {
    let null = |i: usize| i % 4 == 1;
    let ids = || (0..rows).map(|i| (i, start + i as i64));
    let columns: Vec<ArrayRef> = vec![
        Arc::new(BooleanArray::from_iter(
            ids().map(|(i, v)| (!null(i)).then_some(v % 2 == 0)),
        )),
        Arc::new(Int8Array::from_iter(
            ids().map(|(i, v)| (!null(i)).then_some(v as i8)),
        )),
        Arc::new(Int16Array::from_iter(
            ids().map(|(i, v)| (!null(i)).then_some(v as i16)),
        )),
        Arc::new(Int32Array::from_iter(
            ids().map(|(i, v)| (!null(i)).then_some(v as i32 * 3)),
        )),
        Arc::new(Int64Array::from_iter(
            ids().map(|(i, v)| (!null(i)).then_some(v << 33)),
        )),
        Arc::new(Float32Array::from_iter(
            ids().map(|(i, v)| (!null(i)).then_some(v as f32 / 2.0)),
        )),
        Arc::new(Float64Array::from_iter(
            ids().map(|(i, v)| (!null(i)).then_some(v as f64 * 0.25)),
        )),
        Arc::new(StringArray::from_iter(
            ids().map(|(i, v)| (!null(i)).then(|| format!("name-{v}"))),
        )),
        Arc::new(BinaryArray::from_iter(
            ids().map(|(i, v)| (!null(i)).then(|| v.to_le_bytes().to_vec())),
        )),
        Arc::new(
            TimestampMicrosecondArray::from_iter(
                ids().map(|(i, v)| (!null(i)).then_some(v * 1_000_000)),
            )
            .with_timezone("UTC"),
        ),
        Arc::new(Date32Array::from_iter(
            ids().map(|(i, v)| (!null(i)).then_some(v as i32)),
        )),
        Arc::new(
            Decimal128Array::from_iter(ids().map(|(i, v)| (!null(i)).then_some(v as i128 * 125)))
                .with_precision_and_scale(12, 2)
                .unwrap(),
        ),
    ];
    RecordBatch::try_new(all_types_schema(), columns).unwrap()
}

fn all_types_schema() -> SchemaRef {
    Arc::new(Schema::new(vec![
        Field::new("flag", DataType::Boolean, true),
        Field::new("tiny", DataType::Int8, true),
        Field::new("small", DataType::Int16, true),
        Field::new("int", DataType::Int32, true),
        Field::new("id", DataType::Int64, true),
        Field::new("f32", DataType::Float32, true),
        Field::new("amount", DataType::Float64, true),
        Field::new("name", DataType::Utf8, true),
        Field::new("bytes", DataType::Binary, true),
        Field::new(
            "ts",
            DataType::Timestamp(TimeUnit::Microsecond, Some("UTC".into())),
            true,
        ),
        Field::new("day", DataType::Date32, true),
        Field::new("price", DataType::Decimal128(12, 2), true),
    ]))
}

fn arrow_decoder(schema: &Schema, lz4: bool) -> ResultDecoder {
    ResultDecoder::new(
        Some(&encode_schema_message(schema)),
        Some(&to_table_schema(schema)),
        lz4,
        Some(TSparkRowSetType::ARROW_BASED_SET),
    )
    .unwrap()
}

fn arrow_batch(batch: &RecordBatch, lz4: bool) -> TSparkArrowBatch {
    let message = encode_batch_message(batch).unwrap();
    let bytes = if lz4 {
        compress_frame(&message)
    } else {
        message
    };
    TSparkArrowBatch::new(bytes, batch.num_rows() as i64)
}

fn arrow_row_set(batches: Vec<TSparkArrowBatch>) -> TRowSet {
    TRowSet::new(0, vec![], None, None, None, batches, None)
}

#[test]
fn inline_arrow_round_trips_every_type_with_nulls_with_and_without_lz4() {
    for lz4 in [false, true] {
        let decoder = arrow_decoder(&all_types_schema(), lz4);
        assert_eq!(decoder.format(), ResultFormat::ArrowInline);
        assert_eq!(decoder.schema(), all_types_schema());
        let (first, second) = (all_types(1000, 0), all_types(37, 1000));
        let row_set = arrow_row_set(vec![arrow_batch(&first, lz4), arrow_batch(&second, lz4)]);
        let decoded = decoder.decode(row_set).unwrap();
        assert_eq!(decoded, vec![first, second], "lz4 {lz4}");
    }
}

#[test]
fn column_based_round_trips_typed_columns_and_stringifies_the_rest() {
    let original = all_types(50, -10);
    let decoder = ResultDecoder::new(
        None,
        Some(&to_table_schema(&original.schema())),
        false,
        Some(TSparkRowSetType::COLUMN_BASED_SET),
    )
    .unwrap();
    assert_eq!(decoder.format(), ResultFormat::Columnar);
    let row_set = TRowSet::new(
        0,
        vec![],
        to_columns(&original).unwrap(),
        None,
        None,
        None,
        None,
    );
    let decoded = decoder.decode(row_set).unwrap();
    assert_eq!(decoded.len(), 1);
    let batch = &decoded[0];
    assert_eq!(batch.schema(), decoder.schema());
    assert_eq!(batch.num_rows(), 50);
    // Booleans, integers, floats, strings and binaries come back as they were.
    for i in 0..9 {
        assert_eq!(
            batch.column(i).as_ref(),
            original.column(i).as_ref(),
            "column {i}"
        );
    }
    // Timestamps, dates and decimals come back as Databricks' strings, NULLs kept.
    let text = |col: usize, row: usize| {
        let strings = batch.column(col).as_string::<i32>();
        (!strings.is_null(row)).then(|| strings.value(row).to_string())
    };
    assert_eq!(text(9, 0).as_deref(), Some("1969-12-31 23:59:50"));
    assert_eq!(text(10, 0).as_deref(), Some("1969-12-22"));
    assert_eq!(text(11, 0).as_deref(), Some("-12.50"));
    assert_eq!(text(11, 1), None);
    assert_eq!(text(9, 12).as_deref(), Some("1970-01-01 00:00:02"));
}

#[test]
fn a_row_count_that_differs_from_the_batch_is_a_decode_error() {
    let batch = all_types(3, 0);
    let decoder = arrow_decoder(&batch.schema(), false);
    let mut announced = arrow_batch(&batch, false);
    announced.row_count = 5;
    let err = decoder.decode(arrow_row_set(vec![announced])).unwrap_err();
    assert_eq!(err.kind(), ErrorKind::Decode);
    assert!(
        err.to_string()
            .contains("Arrow batch 0 was announced with 5 rows but holds 3"),
        "{err}"
    );
}

#[test]
fn a_corrupt_or_truncated_ipc_message_is_a_decode_error_not_a_panic() {
    let batch = all_types(200, 0);
    let decoder = arrow_decoder(&batch.schema(), false);
    let message = encode_batch_message(&batch).unwrap();
    for cut in (0..message.len()).step_by(61) {
        let truncated = TSparkArrowBatch::new(message[..cut].to_vec(), 200);
        let err = decoder.decode(arrow_row_set(vec![truncated])).unwrap_err();
        assert_eq!(err.kind(), ErrorKind::Decode, "cut at {cut}");
    }
    // Flipping bits in the header and the offsets must be caught; flips inside values may
    // decode to other values, which only a checksum could see. Nothing may panic.
    let mut x: u32 = 99;
    for _ in 0..2000 {
        x = x.wrapping_mul(1_103_515_245).wrapping_add(12345);
        let mut bad = message.clone();
        let at = (x as usize >> 4) % bad.len();
        bad[at] ^= 1 << (x % 8);
        if let Err(e) = decoder.decode(arrow_row_set(vec![TSparkArrowBatch::new(bad, 200)])) {
            assert_eq!(e.kind(), ErrorKind::Decode);
        }
    }
    let err = decoder
        .decode(arrow_row_set(vec![TSparkArrowBatch::new(
            b"not arrow".to_vec(),
            1,
        )]))
        .unwrap_err();
    assert_eq!(err.kind(), ErrorKind::Decode);
}

#[test]
fn a_corrupt_lz4_frame_is_a_decode_error_naming_the_batch() {
    let batch = all_types(100, 0);
    let decoder = arrow_decoder(&batch.schema(), true);
    let mut good = arrow_batch(&batch, true);
    let mut bad = good.batch.clone();
    bad.truncate(bad.len() - 10);
    let err = decoder
        .decode(arrow_row_set(vec![
            good.clone(),
            TSparkArrowBatch::new(bad, 100),
        ]))
        .unwrap_err();
    assert_eq!(err.kind(), ErrorKind::Decode);
    assert!(
        err.to_string()
            .contains("Arrow batch 1: LZ4 frame is truncated"),
        "{err}"
    );

    good.batch[0] ^= 0xFF;
    let err = decoder.decode(arrow_row_set(vec![good])).unwrap_err();
    assert!(err.to_string().contains("magic number"), "{err}");
}

#[test]
fn a_row_set_without_rows_yields_no_batches() {
    let schema = all_types_schema();
    let decoder = arrow_decoder(&schema, true);
    let empty = RecordBatch::new_empty(schema.clone());
    assert!(decoder
        .decode(arrow_row_set(vec![arrow_batch(&empty, true)]))
        .unwrap()
        .is_empty());
    assert!(decoder.decode(arrow_row_set(vec![])).unwrap().is_empty());
    let nothing = TRowSet::new(0, vec![], None, None, None, None, None);
    assert!(decoder.decode(nothing).unwrap().is_empty());
}

#[test]
fn an_arrow_result_without_arrow_schema_is_read_with_the_table_schema() {
    let schema = Schema::new(vec![
        Field::new("id", DataType::Int64, true),
        Field::new("name", DataType::Utf8, true),
    ]);
    let decoder = ResultDecoder::new(
        None,
        Some(&to_table_schema(&schema)),
        false,
        Some(TSparkRowSetType::ARROW_BASED_SET),
    )
    .unwrap();
    assert_eq!(decoder.schema().field(0).data_type(), &DataType::Int64);
    let batch = RecordBatch::try_new(
        Arc::new(schema),
        vec![
            Arc::new(Int64Array::from(vec![1, 2])),
            Arc::new(StringArray::from(vec![Some("a"), None])),
        ],
    )
    .unwrap();
    let decoded = decoder
        .decode(arrow_row_set(vec![arrow_batch(&batch, false)]))
        .unwrap();
    assert_eq!(decoded[0].columns(), batch.columns());
    assert_eq!(decoded[0].schema(), decoder.schema());
}

#[test]
fn metadata_without_any_schema_or_with_row_based_format_is_an_error() {
    let err =
        ResultDecoder::new(None, None, false, Some(TSparkRowSetType::ARROW_BASED_SET)).unwrap_err();
    assert_eq!(err.kind(), ErrorKind::Decode);
    let table = to_table_schema(&all_types_schema());
    let err = ResultDecoder::new(
        None,
        Some(&table),
        false,
        Some(TSparkRowSetType::ROW_BASED_SET),
    )
    .unwrap_err();
    assert!(err.to_string().contains("ROW_BASED_SET"), "{err}");
    // No format at all (vanilla HiveServer2) means column-based.
    let decoder = ResultDecoder::new(None, Some(&table), false, None).unwrap();
    assert_eq!(decoder.format(), ResultFormat::Columnar);
}

#[test]
fn cloudfetch_links_are_left_to_the_cloudfetch_pipeline() {
    let decoder = ResultDecoder::new(
        Some(&encode_schema_message(&all_types_schema())),
        None,
        true,
        Some(TSparkRowSetType::URL_BASED_SET),
    )
    .unwrap();
    assert_eq!(decoder.format(), ResultFormat::CloudFetch);
    let link = TSparkArrowResultLink::new("https://files/x?sig=1".into(), 0, 0, 10, 100, None);
    let row_set = TRowSet::new(0, vec![], None, None, None, None, vec![link]);
    let err = decoder.decode(row_set).unwrap_err();
    assert_eq!(err.kind(), ErrorKind::Decode);
    assert!(err.to_string().contains("CloudFetch pipeline"), "{err}");
    assert!(!err.to_string().contains("sig=1"), "{err}");
}
