//! `from_batch` over in-memory batches of the Arrow types the mock warehouse does not send.

use std::collections::HashMap;
use std::sync::Arc;

use arrow_array::builder::{FixedSizeListBuilder, Int64Builder, LargeListBuilder};
use arrow_array::types::Int32Type;
use arrow_array::{
    ArrayRef, Date64Array, Decimal256Array, DictionaryArray, FixedSizeBinaryArray, Float16Array,
    LargeBinaryArray, LargeStringArray, RecordBatch, StringViewArray, TimestampMillisecondArray,
    TimestampNanosecondArray, TimestampSecondArray, UInt64Array,
};
use arrow_buffer::i256;
use chrono::{DateTime, NaiveDate, NaiveDateTime, Utc};
use serde::Deserialize;

use super::*;
use crate::ErrorKind;

fn batch(columns: Vec<(&str, ArrayRef)>) -> RecordBatch {
    RecordBatch::try_from_iter(columns).unwrap()
}

#[test]
fn decimals_read_from_decimal_text_and_from_integers() {
    let b = batch(vec![
        (
            "d",
            Arc::new(arrow_array::Int64Array::from(vec![-12, 7])) as ArrayRef,
        ),
        (
            "e",
            Arc::new(
                arrow_array::Decimal128Array::from(vec![-1250, 3])
                    .with_precision_and_scale(10, 2)
                    .unwrap(),
            ),
        ),
    ]);
    let rows: Vec<(crate::Decimal, crate::Decimal)> = from_batch(&b).unwrap();
    let text: Vec<(String, String)> = rows
        .iter()
        .map(|(d, e)| (d.to_string(), e.to_string()))
        .collect();
    assert_eq!(
        text,
        vec![
            ("-12".to_string(), "-12.50".to_string()),
            ("7".to_string(), "0.03".to_string())
        ]
    );
}

#[test]
fn strings_of_every_layout_borrow_from_the_batch() {
    let b = batch(vec![
        (
            "view",
            Arc::new(StringViewArray::from(vec![
                Some("a view that is long enough"),
                None,
            ])),
        ),
        ("large", Arc::new(LargeStringArray::from(vec!["x", "y"]))),
        (
            "bytes",
            Arc::new(LargeBinaryArray::from(vec![&b"\x01"[..], b""])),
        ),
        (
            "fixed",
            Arc::new(FixedSizeBinaryArray::try_from_iter([[1u8, 2], [3, 4]].into_iter()).unwrap()),
        ),
    ]);
    #[derive(Deserialize, Debug, PartialEq)]
    struct Texts<'a> {
        view: Option<&'a str>,
        large: &'a str,
        bytes: Vec<u8>,
        fixed: Vec<u8>,
    }
    let rows: Vec<Texts> = from_batch(&b).unwrap();
    assert_eq!(
        rows,
        [
            Texts {
                view: Some("a view that is long enough"),
                large: "x",
                bytes: vec![1],
                fixed: vec![1, 2],
            },
            Texts {
                view: None,
                large: "y",
                bytes: vec![],
                fixed: vec![3, 4],
            },
        ]
    );
}

#[test]
fn timestamps_of_every_unit_with_and_without_a_zone() {
    let b = batch(vec![
        (
            "s",
            Arc::new(TimestampSecondArray::from(vec![1]).with_timezone("Etc/UTC")),
        ),
        (
            "ms",
            Arc::new(
                TimestampMillisecondArray::from(vec![1_500]).with_timezone("America/Los_Angeles"),
            ),
        ),
        (
            "ns",
            Arc::new(TimestampNanosecondArray::from(vec![1_000_000_001])),
        ),
        ("d64", Arc::new(Date64Array::from(vec![86_400_000 * 365]))),
    ]);
    #[derive(Deserialize, Debug)]
    struct Times {
        s: DateTime<Utc>,
        ms: DateTime<Utc>,
        ns: NaiveDateTime,
        d64: NaiveDate,
    }
    let rows: Vec<Times> = from_batch(&b).unwrap();
    assert_eq!(rows[0].s, DateTime::from_timestamp(1, 0).unwrap());
    assert_eq!(rows[0].ms, DateTime::from_timestamp_millis(1_500).unwrap());
    assert_eq!(
        rows[0].ns,
        DateTime::from_timestamp(1, 1).unwrap().naive_utc()
    );
    assert_eq!(rows[0].d64, NaiveDate::from_ymd_opt(1971, 1, 1).unwrap());

    // A timestamp without a zone is no instant: DateTime<Utc> refuses it, naming the column.
    #[derive(Deserialize, Debug)]
    struct Instant {
        ns: DateTime<Utc>,
    }
    let e = match from_batch::<Instant>(&b) {
        Ok(rows) => panic!(
            "a zoneless timestamp read as an instant: {:?}",
            rows.first().map(|r| r.ns)
        ),
        Err(e) => e,
    };
    assert!(e.to_string().contains("column 2 `ns`"), "{e}");
}

#[test]
fn wide_decimals_unsigned_and_half_floats() {
    let big = i256::from_string("-123456789012345678901234567890123456789012").unwrap();
    let b = batch(vec![
        (
            "d",
            Arc::new(
                Decimal256Array::from(vec![big])
                    .with_precision_and_scale(50, 2)
                    .unwrap(),
            ),
        ),
        ("u", Arc::new(UInt64Array::from(vec![u64::MAX]))),
        ("h", Arc::new(Float16Array::from(vec![half_one()]))),
    ]);
    #[derive(Deserialize, Debug)]
    struct Wide {
        d: String,
        u: u64,
        h: f32,
    }
    let rows: Vec<Wide> = from_batch(&b).unwrap();
    assert_eq!(rows[0].d, "-1234567890123456789012345678901234567890.12");
    assert_eq!(rows[0].u, u64::MAX);
    assert_eq!(rows[0].h, 1.0);
    let e = from_batch::<(i64,)>(&b.project(&[1]).unwrap()).unwrap_err();
    assert!(e.to_string().contains("out of range for i64"), "{e}");
}

fn half_one() -> <arrow_array::types::Float16Type as arrow_array::ArrowPrimitiveType>::Native {
    <arrow_array::types::Float16Type as arrow_array::ArrowPrimitiveType>::Native::from_f32(1.0)
}

#[test]
fn large_and_fixed_size_lists_are_sequences() {
    let mut large = LargeListBuilder::new(Int64Builder::new());
    large.append_value([Some(1), None]);
    let mut fixed = FixedSizeListBuilder::new(Int64Builder::new(), 2);
    fixed.values().append_value(7);
    fixed.values().append_value(8);
    fixed.append(true);
    let b = batch(vec![
        ("large", Arc::new(large.finish())),
        ("fixed", Arc::new(fixed.finish())),
    ]);
    #[derive(Deserialize, Debug)]
    struct Lists {
        large: Vec<Option<i64>>,
        fixed: [i64; 2],
    }
    let rows: Vec<Lists> = from_batch(&b).unwrap();
    assert_eq!(rows[0].large, vec![Some(1), None]);
    assert_eq!(rows[0].fixed, [7, 8]);
}

#[test]
fn an_unsupported_type_fails_only_when_a_field_reads_it() {
    let dict: DictionaryArray<Int32Type> = vec!["a", "b"].into_iter().collect();
    let b = batch(vec![
        ("id", Arc::new(UInt64Array::from(vec![1, 2]))),
        ("dict", Arc::new(dict)),
    ]);
    #[derive(Deserialize, Debug)]
    struct IdOnly {
        id: u8,
    }
    let rows: Vec<IdOnly> = from_batch(&b).unwrap();
    assert_eq!(rows[1].id, 2);
    let e = from_batch::<HashMap<String, serde_json::Value>>(&b).unwrap_err();
    assert_eq!(e.kind(), ErrorKind::Decode);
    let text = e.to_string();
    assert!(
        text.contains("column 1 `dict`") && text.contains("Dictionary"),
        "{text}"
    );
}

#[test]
fn unit_enums_read_from_strings() {
    #[derive(Deserialize, Debug, PartialEq)]
    enum Status {
        #[serde(rename = "open")]
        Open,
        #[serde(rename = "closed")]
        Closed,
    }
    let b = batch(vec![(
        "s",
        Arc::new(LargeStringArray::from(vec!["closed", "open"])),
    )]);
    let rows: Vec<Status> = from_batch(&b).unwrap();
    assert_eq!(rows, [Status::Closed, Status::Open]);
    let b = batch(vec![("s", Arc::new(LargeStringArray::from(vec!["gone"])))]);
    let e = from_batch::<Status>(&b).unwrap_err();
    assert!(e.to_string().contains("unknown variant `gone`"), "{e}");
}
