//! Encode -> decode round trips through [`ResultDecoder`], the way the mock warehouse and the
//! driver use the two sides (the driver's side through the Thrift conversions of
//! [`super::from_thrift`]): inline Arrow with and without LZ4, column-based, CloudFetch files,
//! and what corrupt or inconsistent data turns into.

use std::sync::Arc;

use arrow_array::builder::{Float64Builder, MapBuilder, StringBuilder};
use arrow_array::cast::AsArray;
use arrow_array::types::{Int64Type, IntervalYearMonthType};
use arrow_array::{
    Array, ArrayRef, BinaryArray, BooleanArray, Date32Array, Decimal128Array, Float32Array,
    Float64Array, Int16Array, Int32Array, Int64Array, Int8Array, IntervalYearMonthArray, ListArray,
    NullArray, RecordBatch, StringArray, StructArray, TimestampMicrosecondArray,
};
use arrow_buffer::NullBuffer;
use arrow_schema::{DataType, Field, Fields, IntervalUnit, Schema, SchemaRef, TimeUnit};

use super::encode::{
    encode_batch_message, encode_schema_message, json_text, to_columns, to_table_schema,
};
use super::inline_rows::InlineRows;
use super::lz4::compress_frame;
use super::{from_thrift, ResultDecoder, ResultFormat};
use crate::thrift::status::ok_status;
use crate::thrift::tcli::{
    TColumn, TGetResultSetMetadataResp, TRowSet, TSparkArrowBatch, TSparkArrowResultLink,
    TSparkRowSetType, TTableSchema,
};
use crate::ErrorKind;

/// The decoder the Thrift backend builds for result metadata with these fields: the Arrow
/// schema message, the table schema, `lz4Compressed` and `resultFormat`.
fn thrift_decoder(
    arrow_schema: Option<&[u8]>,
    table: Option<&TTableSchema>,
    lz4: bool,
    format: Option<TSparkRowSetType>,
) -> crate::Result<ResultDecoder> {
    let metadata = TGetResultSetMetadataResp {
        status: ok_status(),
        schema: table.cloned(),
        result_format: format,
        lz4_compressed: Some(lz4),
        arrow_schema: arrow_schema.map(<[u8]>::to_vec),
        cache_lookup_result: None,
        uncompressed_bytes: None,
        compressed_bytes: None,
        is_staging_operation: None,
    };
    from_thrift::decoder(&metadata)
}

/// Decoding a `TRowSet` as the Thrift backend does: converted to the driver's inline rows,
/// then decoded.
trait DecodeRowSet {
    fn decode_row_set(&self, row_set: TRowSet) -> crate::Result<Vec<RecordBatch>>;
}

impl DecodeRowSet for ResultDecoder {
    fn decode_row_set(&self, row_set: TRowSet) -> crate::Result<Vec<RecordBatch>> {
        self.decode(InlineRows::try_from(row_set)?)
    }
}

/// Index of the first complex (list, struct, map) column of [`all_types`]; the columns before
/// it are scalar.
const FIRST_COMPLEX: usize = 14;

/// Every type the driver supports, each column with NULLs (row `i` is NULL when `i % 4 == 1`,
/// and the `Null` column in every row); inside the complex columns, more NULLs at other rows.
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
        Arc::new(IntervalYearMonthArray::from_iter(
            ids().map(|(i, v)| (!null(i)).then_some(v as i32 - 7)),
        )),
        Arc::new(NullArray::new(rows)),
        Arc::new(ListArray::from_iter_primitive::<Int64Type, _, _>(
            ids().map(|(i, v)| {
                (!null(i)).then(|| (0..i % 3).map(move |k| (k != 1).then_some(v + k as i64)))
            }),
        )),
        Arc::new(
            StructArray::try_new(
                struct_fields(),
                vec![
                    Arc::new(Int32Array::from_iter(
                        ids().map(|(i, v)| (i % 3 != 0).then_some(v as i32)),
                    )),
                    Arc::new(StringArray::from_iter(
                        ids().map(|(i, v)| (i % 5 != 0).then(|| format!("\"s\"\\{v}"))),
                    )),
                    Arc::new(
                        TimestampMicrosecondArray::from_iter_values(
                            ids().map(|(_, v)| v * 1_000_123),
                        )
                        .with_timezone("UTC"),
                    ),
                    Arc::new(
                        Decimal128Array::from_iter_values(ids().map(|(_, v)| v as i128 * 7))
                            .with_precision_and_scale(9, 3)
                            .unwrap(),
                    ),
                ],
                Some(NullBuffer::from_iter((0..rows).map(|i| !null(i)))),
            )
            .unwrap(),
        ),
        Arc::new({
            let mut map = MapBuilder::new(None, StringBuilder::new(), Float64Builder::new());
            for (i, v) in ids() {
                for k in 0..i % 3 {
                    map.keys().append_value(format!("k{k}"));
                    map.values()
                        .append_option((k != 0).then_some(v as f64 / 4.0));
                }
                map.append(!null(i)).unwrap();
            }
            map.finish()
        }),
    ];
    RecordBatch::try_new(all_types_schema(), columns).unwrap()
}

fn struct_fields() -> Fields {
    Fields::from(vec![
        Field::new("n", DataType::Int32, true),
        Field::new("s", DataType::Utf8, true),
        Field::new(
            "ts",
            DataType::Timestamp(TimeUnit::Microsecond, Some("UTC".into())),
            false,
        ),
        Field::new("d", DataType::Decimal128(9, 3), false),
    ])
}

fn map_type() -> DataType {
    let entries = Fields::from(vec![
        Field::new("key", DataType::Utf8, false),
        Field::new("value", DataType::Float64, true),
    ]);
    DataType::Map(
        Arc::new(Field::new("entries", DataType::Struct(entries), false)),
        false,
    )
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
        Field::new("months", DataType::Interval(IntervalUnit::YearMonth), true),
        Field::new("nothing", DataType::Null, true),
        Field::new(
            "list",
            DataType::List(Arc::new(Field::new_list_field(DataType::Int64, true))),
            true,
        ),
        Field::new("record", DataType::Struct(struct_fields()), true),
        Field::new("map", map_type(), true),
    ]))
}

fn arrow_decoder(schema: &Schema, lz4: bool) -> ResultDecoder {
    thrift_decoder(
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
        let decoded = decoder.decode_row_set(row_set).unwrap();
        assert_eq!(decoded, vec![first, second], "lz4 {lz4}");
    }
}

/// `original` sent column-based by the mock's encoder and decoded with the schema the table
/// schema gives.
fn column_based_round_trip(original: &RecordBatch) -> (ResultDecoder, Vec<RecordBatch>) {
    let decoder = thrift_decoder(
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
        to_columns(original).unwrap(),
        None,
        None,
        None,
        None,
    );
    let decoded = decoder.decode_row_set(row_set).unwrap();
    (decoder, decoded)
}

#[test]
fn column_based_round_trips_every_scalar_type_and_renders_complex_values_as_json() {
    let original = all_types(50, -10);
    let (decoder, decoded) = column_based_round_trip(&original);
    assert_eq!(decoded.len(), 1);
    let batch = &decoded[0];
    assert_eq!(batch.schema(), decoder.schema());
    assert_eq!(batch.num_rows(), 50);
    let schema = original.schema();
    for (i, field) in schema.fields().iter().enumerate() {
        let name = field.name();
        let got = batch.column(i);
        match field.data_type() {
            // Intervals come back as Hive's text.
            DataType::Interval(_) => {
                let months = original.column(i).as_primitive::<IntervalYearMonthType>();
                let expected: StringArray = months
                    .iter()
                    .map(|m| {
                        m.map(|m| {
                            let sign = if m < 0 { "-" } else { "" };
                            let m = m.unsigned_abs();
                            format!("{sign}{}-{}", m / 12, m % 12)
                        })
                    })
                    .collect();
                assert_eq!(got.as_ref(), &expected as &dyn Array, "column {i} ({name})");
            }
            // Lists, structs and maps come back as their JSON text.
            DataType::List(_) | DataType::Struct(_) | DataType::Map(_, _) => {
                assert!(i >= FIRST_COMPLEX, "column {i} ({name})");
                let expected = StringArray::from(json_text(original.column(i).as_ref()).unwrap());
                assert_eq!(got.as_ref(), &expected as &dyn Array, "column {i} ({name})");
            }
            // Every scalar type comes back as it was: values, NULLs and Arrow type.
            _ => {
                assert!(i < FIRST_COMPLEX, "column {i} ({name})");
                assert_eq!(
                    got.data_type(),
                    field.data_type(),
                    "column {i} ({name}) type"
                );
                assert_eq!(
                    got.logical_nulls(),
                    original.column(i).logical_nulls(),
                    "column {i} ({name}) NULLs"
                );
                assert_eq!(
                    got.as_ref(),
                    original.column(i).as_ref(),
                    "column {i} ({name}) values"
                );
            }
        }
    }
    // Spot checks of the JSON text.
    let text = |col: usize, row: usize| {
        let strings = batch.column(col).as_string::<i32>();
        (!strings.is_null(row)).then(|| strings.value(row).to_string())
    };
    assert_eq!(text(FIRST_COMPLEX, 1), None);
    assert_eq!(text(FIRST_COMPLEX, 2).as_deref(), Some("[-8,null]"));
    assert_eq!(
        text(FIRST_COMPLEX + 1, 0).as_deref(),
        Some(r#"{"n":null,"s":null,"ts":"1969-12-31 23:59:49.99877","d":-0.070}"#)
    );
    assert_eq!(
        text(FIRST_COMPLEX + 1, 2).as_deref(),
        Some(r#"{"n":-8,"s":"\"s\"\\-8","ts":"1969-12-31 23:59:51.999016","d":-0.056}"#)
    );
    assert_eq!(text(FIRST_COMPLEX + 2, 0).as_deref(), Some("{}"));
    assert_eq!(
        text(FIRST_COMPLEX + 2, 2).as_deref(),
        Some(r#"{"k0":null,"k1":-2.0}"#)
    );
}

#[test]
fn a_table_read_column_based_equals_the_same_table_read_as_arrow() {
    let original = all_types(300, 1_000_000);
    let decoder = arrow_decoder(&all_types_schema(), true);
    let arrow = decoder
        .decode_row_set(arrow_row_set(vec![arrow_batch(&original, true)]))
        .unwrap();
    let (_, columns) = column_based_round_trip(&original);
    let (arrow, columns) = (&arrow[0], &columns[0]);
    for i in 0..FIRST_COMPLEX {
        let name = original.schema().field(i).name().clone();
        if matches!(arrow.column(i).data_type(), DataType::Interval(_)) {
            continue;
        }
        assert_eq!(
            columns.column(i).as_ref(),
            arrow.column(i).as_ref(),
            "column {i} ({name})"
        );
    }
    for i in FIRST_COMPLEX..original.num_columns() {
        let expected = StringArray::from(json_text(arrow.column(i).as_ref()).unwrap());
        assert_eq!(
            columns.column(i).as_ref(),
            &expected as &dyn Array,
            "column {i}"
        );
    }
}

#[test]
fn a_malformed_value_in_a_column_based_row_set_names_column_row_and_text() {
    let original = all_types(10, 0);
    let decoder = thrift_decoder(
        None,
        Some(&to_table_schema(&original.schema())),
        false,
        Some(TSparkRowSetType::COLUMN_BASED_SET),
    )
    .unwrap();
    for (column, bad) in [
        (9, "1970-01-01 25:00:00"),
        (10, "1970-13-01"),
        (11, "1.234"),
    ] {
        let mut columns = to_columns(&original).unwrap();
        match &mut columns[column] {
            TColumn::StringVal(c) => c.values[6] = bad.to_string(),
            other => panic!("column {column} is {other:?}"),
        }
        let row_set = TRowSet::new(0, vec![], columns, None, None, None, None);
        let err = decoder.decode_row_set(row_set).unwrap_err();
        assert_eq!(err.kind(), ErrorKind::Decode);
        let name = original.schema().field(column).name().clone();
        let message = err.to_string();
        assert!(
            message.contains(&format!(
                "column {column} ({name}), row 6 of the row set: {bad:?}"
            )),
            "{message}"
        );
    }
}

#[test]
fn a_row_count_that_differs_from_the_batch_is_a_decode_error() {
    let batch = all_types(3, 0);
    let decoder = arrow_decoder(&batch.schema(), false);
    let mut announced = arrow_batch(&batch, false);
    announced.row_count = 5;
    let err = decoder
        .decode_row_set(arrow_row_set(vec![announced]))
        .unwrap_err();
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
        let err = decoder
            .decode_row_set(arrow_row_set(vec![truncated]))
            .unwrap_err();
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
        if let Err(e) = decoder.decode_row_set(arrow_row_set(vec![TSparkArrowBatch::new(bad, 200)]))
        {
            assert_eq!(e.kind(), ErrorKind::Decode);
        }
    }
    let err = decoder
        .decode_row_set(arrow_row_set(vec![TSparkArrowBatch::new(
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
        .decode_row_set(arrow_row_set(vec![
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
    let err = decoder
        .decode_row_set(arrow_row_set(vec![good]))
        .unwrap_err();
    assert!(err.to_string().contains("magic number"), "{err}");
}

#[test]
fn a_row_set_without_rows_yields_no_batches() {
    let schema = all_types_schema();
    let decoder = arrow_decoder(&schema, true);
    let empty = RecordBatch::new_empty(schema.clone());
    assert!(decoder
        .decode_row_set(arrow_row_set(vec![arrow_batch(&empty, true)]))
        .unwrap()
        .is_empty());
    assert!(decoder
        .decode_row_set(arrow_row_set(vec![]))
        .unwrap()
        .is_empty());
    let nothing = TRowSet::new(0, vec![], None, None, None, None, None);
    assert!(decoder.decode_row_set(nothing).unwrap().is_empty());
}

#[test]
fn an_arrow_result_without_arrow_schema_is_read_with_the_table_schema() {
    let schema = Schema::new(vec![
        Field::new("id", DataType::Int64, true),
        Field::new("name", DataType::Utf8, true),
    ]);
    let decoder = thrift_decoder(
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
        .decode_row_set(arrow_row_set(vec![arrow_batch(&batch, false)]))
        .unwrap();
    assert_eq!(decoded[0].columns(), batch.columns());
    assert_eq!(decoded[0].schema(), decoder.schema());
}

#[test]
fn metadata_without_any_schema_or_with_row_based_format_is_an_error() {
    let err =
        thrift_decoder(None, None, false, Some(TSparkRowSetType::ARROW_BASED_SET)).unwrap_err();
    assert_eq!(err.kind(), ErrorKind::Decode);
    let table = to_table_schema(&all_types_schema());
    let err = thrift_decoder(
        None,
        Some(&table),
        false,
        Some(TSparkRowSetType::ROW_BASED_SET),
    )
    .unwrap_err();
    assert!(err.to_string().contains("ROW_BASED_SET"), "{err}");
    // No format at all (vanilla HiveServer2) means column-based.
    let decoder = thrift_decoder(None, Some(&table), false, None).unwrap();
    assert_eq!(decoder.format(), ResultFormat::Columnar);
}

#[test]
fn cloudfetch_links_are_left_to_the_cloudfetch_pipeline() {
    let decoder = thrift_decoder(
        Some(&encode_schema_message(&all_types_schema())),
        None,
        true,
        Some(TSparkRowSetType::URL_BASED_SET),
    )
    .unwrap();
    assert_eq!(decoder.format(), ResultFormat::CloudFetch);
    let link = TSparkArrowResultLink::new("https://files/x?sig=1".into(), 0, 0, 10, 100, None);
    let row_set = TRowSet::new(0, vec![], None, None, None, None, vec![link]);
    let err = decoder.decode_row_set(row_set).unwrap_err();
    assert_eq!(err.kind(), ErrorKind::Decode);
    assert!(err.to_string().contains("CloudFetch pipeline"), "{err}");
    assert!(!err.to_string().contains("sig=1"), "{err}");
}
