//! Typed rows against the mock warehouse: `Operation::rows`, `fetch_all_as`, `rows_raw` and
//! `Row::get`, from Arrow and column-based results and through CloudFetch.

mod common;

use std::collections::{BTreeMap, HashMap};

use chrono::{DateTime, NaiveDate, NaiveDateTime, Utc};
use common::client;
use databricks_sql::mock::MockWarehouse;
use databricks_sql::{Decimal, ErrorKind, ExecuteOptions, Session};
use futures::{StreamExt, TryStreamExt};
use serde::Deserialize;

/// The five columns of `mock.rows(N)`.
#[derive(Debug, Deserialize, PartialEq)]
struct MockRow {
    id: i64,
    name: Option<String>,
    amount: f64,
    ts: DateTime<Utc>,
    flag: bool,
}

/// Row `id` of `mock.rows(N)` as its documented rules make it.
fn expected(id: i64) -> MockRow {
    MockRow {
        id,
        name: (id % 7 != 3).then(|| format!("name-{id}")),
        amount: id as f64 * 0.25,
        ts: DateTime::from_timestamp(id, 0).unwrap(),
        flag: id % 2 == 0,
    }
}

async fn session() -> (MockWarehouse, databricks_sql::DBSQLClient, Session) {
    let (mock, client) = client().await;
    let session = client.open_session().await.unwrap();
    (mock, client, session)
}

#[tokio::test]
async fn mock_rows_deserialize_into_a_struct_with_fetch_all_as() {
    let (_mock, _client, session) = session().await;
    let mut op = session
        .execute_statement("SELECT * FROM mock.rows(50)")
        .await
        .unwrap();
    let rows: Vec<MockRow> = op.fetch_all_as().await.unwrap();
    assert_eq!(rows, (0..50).map(expected).collect::<Vec<_>>());
    assert_eq!(rows[3].name, None, "NULL reads as None");
    op.close().await.unwrap();
}

#[tokio::test]
async fn rows_stream_numbers_rows_across_pages_and_columns_may_be_left_out() {
    let (_mock, _client, session) = session().await;
    // Pages of 7 rows: the stream joins them in order; `ts` and `flag` have no field.
    #[derive(Debug, Deserialize)]
    struct Partial {
        #[serde(rename = "ID")]
        id: u32,
        name: Option<String>,
    }
    let mut op = session
        .execute_statement_with(
            "SELECT * FROM mock.rows(40)",
            ExecuteOptions::new()
                .max_rows_per_fetch(7)
                .direct_results(false),
        )
        .await
        .unwrap();
    let rows: Vec<Partial> = op.rows().try_collect().await.unwrap();
    assert_eq!(rows.len(), 40);
    for (i, row) in rows.iter().enumerate() {
        assert_eq!(row.id as usize, i);
        assert_eq!(row.name, expected(i as i64).name);
    }
}

#[tokio::test]
async fn tuples_read_columns_by_position_and_one_column_reads_as_a_value() {
    let (_mock, _client, session) = session().await;
    let mut op = session
        .execute_statement("SELECT * FROM mock.rows(3)")
        .await
        .unwrap();
    let rows: Vec<(i64, Option<String>, f64)> = op.fetch_all_as().await.unwrap();
    assert_eq!(rows[2], (2, Some("name-2".to_string()), 0.5));

    let mut op = session
        .execute_statement("SELECT * FROM range(5)")
        .await
        .unwrap();
    let ids: Vec<i64> = op.rows::<i64>().try_collect().await.unwrap();
    assert_eq!(ids, vec![0, 1, 2, 3, 4]);

    let mut op = session
        .execute_statement("SELECT * FROM mock.rows(2)")
        .await
        .unwrap();
    let e = op.fetch_all_as::<i64>().await.unwrap_err();
    assert_eq!(e.kind(), ErrorKind::Decode);
    assert!(e.to_string().contains("a row of 5 columns"), "{e}");
}

/// Every column of `mock.all_types`.
#[derive(Debug, Deserialize, PartialEq)]
struct AllTypes {
    c_boolean: Option<bool>,
    c_tinyint: Option<i8>,
    c_smallint: Option<i16>,
    c_int: Option<i32>,
    c_bigint: Option<i64>,
    c_float: Option<f32>,
    c_double: Option<f64>,
    c_string: Option<String>,
    c_binary: Option<Vec<u8>>,
    c_decimal: Option<Decimal>,
    c_date: Option<NaiveDate>,
    c_timestamp: Option<DateTime<Utc>>,
    c_array: Option<Vec<Option<i32>>>,
    c_map: Option<BTreeMap<String, Option<i32>>>,
    c_struct: Option<Pair>,
    c_void: Option<()>,
}

#[derive(Debug, Deserialize, PartialEq)]
struct Pair {
    x: Option<i32>,
    y: Option<String>,
}

fn all_types_expected() -> Vec<AllTypes> {
    let dec = |s: &str| Some(s.parse::<Decimal>().unwrap());
    let date = |y, m, d| NaiveDate::from_ymd_opt(y, m, d);
    let map = |entries: &[(&str, Option<i32>)]| {
        Some(
            entries
                .iter()
                .map(|(k, v)| (k.to_string(), *v))
                .collect::<BTreeMap<_, _>>(),
        )
    };
    vec![
        AllTypes {
            c_boolean: Some(true),
            c_tinyint: Some(i8::MIN),
            c_smallint: Some(i16::MIN),
            c_int: Some(i32::MIN),
            c_bigint: Some(i64::MIN),
            c_float: Some(1.5),
            c_double: Some(0.1),
            c_string: Some("hello".into()),
            c_binary: Some(vec![0, 1, 255]),
            c_decimal: dec("12345.6789"),
            c_date: date(1970, 1, 1),
            c_timestamp: DateTime::from_timestamp_micros(1_700_000_000_123_456),
            c_array: Some(vec![Some(1), Some(2), None]),
            c_map: map(&[("a", Some(1)), ("b", None)]),
            c_struct: Some(Pair {
                x: Some(1),
                y: Some("one".into()),
            }),
            c_void: None,
        },
        AllTypes {
            c_boolean: Some(false),
            c_tinyint: Some(0),
            c_smallint: Some(0),
            c_int: Some(0),
            c_bigint: Some(0),
            c_float: Some(-0.25),
            c_double: Some(-2.5e-300),
            c_string: Some(String::new()),
            c_binary: Some(vec![]),
            c_decimal: dec("-0.0005"),
            c_date: date(1, 1, 1),
            c_timestamp: DateTime::from_timestamp_micros(-1),
            c_array: Some(vec![]),
            c_map: map(&[]),
            c_struct: Some(Pair {
                x: None,
                y: Some("two, \"quoted\"".into()),
            }),
            c_void: None,
        },
        AllTypes {
            c_boolean: Some(true),
            c_tinyint: Some(i8::MAX),
            c_smallint: Some(i16::MAX),
            c_int: Some(i32::MAX),
            c_bigint: Some(i64::MAX),
            c_float: Some(3.0e38),
            c_double: Some(1e300),
            c_string: Some("naïve, \"q\"".into()),
            c_binary: Some(b"abc".to_vec()),
            c_decimal: dec("9999999999999999999999999999999.9999"),
            c_date: date(9999, 12, 31),
            c_timestamp: DateTime::from_timestamp_micros(0),
            c_array: Some(vec![Some(-7)]),
            c_map: map(&[("z\"q", Some(3))]),
            c_struct: Some(Pair {
                x: Some(3),
                y: None,
            }),
            c_void: None,
        },
        AllTypes {
            c_boolean: None,
            c_tinyint: None,
            c_smallint: None,
            c_int: None,
            c_bigint: None,
            c_float: None,
            c_double: None,
            c_string: None,
            c_binary: None,
            c_decimal: None,
            c_date: None,
            c_timestamp: None,
            c_array: None,
            c_map: None,
            c_struct: None,
            c_void: None,
        },
    ]
}

#[tokio::test]
async fn all_types_deserialize_with_nulls_and_nested_values() {
    let (_mock, _client, session) = session().await;
    let mut op = session
        .execute_statement("SELECT * FROM mock.all_types")
        .await
        .unwrap();
    let rows: Vec<AllTypes> = op.fetch_all_as().await.unwrap();
    assert_eq!(rows, all_types_expected());
}

#[tokio::test]
async fn all_types_deserialize_the_same_from_column_based_results() {
    // Without Arrow the server sends column-based rows: complex values as JSON text.
    let (_mock, _client, session) = session().await;
    let mut op = session
        .execute_statement_with(
            "SELECT * FROM mock.all_types",
            ExecuteOptions::new().arrow(false),
        )
        .await
        .unwrap();
    let rows: Vec<AllTypes> = op.fetch_all_as().await.unwrap();
    assert_eq!(rows, all_types_expected());
}

#[tokio::test]
async fn all_types_read_as_text_and_json_values() {
    let (_mock, _client, session) = session().await;
    #[derive(Debug, Deserialize)]
    struct AsText {
        c_decimal: Option<String>,
        c_date: Option<String>,
        c_timestamp: Option<String>,
        c_double: Option<f32>,
        c_int: Option<i64>,
    }
    let mut op = session
        .execute_statement("SELECT * FROM mock.all_types")
        .await
        .unwrap();
    let rows: Vec<AsText> = op.fetch_all_as().await.unwrap();
    assert_eq!(rows[0].c_decimal.as_deref(), Some("12345.6789"));
    assert_eq!(rows[1].c_decimal.as_deref(), Some("-0.0005"));
    assert_eq!(rows[1].c_date.as_deref(), Some("0001-01-01"));
    assert_eq!(
        rows[0].c_timestamp.as_deref(),
        Some("2023-11-14T22:13:20.123456Z")
    );
    assert_eq!(
        rows[1].c_timestamp.as_deref(),
        Some("1969-12-31T23:59:59.999999Z")
    );
    assert_eq!(rows[0].c_double, Some(0.1));
    assert_eq!(rows[2].c_int, Some(i64::from(i32::MAX)));
    assert!(rows[3].c_decimal.is_none());

    let mut op = session
        .execute_statement("SELECT * FROM mock.all_types")
        .await
        .unwrap();
    let rows: Vec<HashMap<String, serde_json::Value>> = op.fetch_all_as().await.unwrap();
    assert_eq!(rows.len(), 4);
    assert_eq!(rows[0].len(), 16, "every column is in the map");
    assert_eq!(rows[0]["c_array"], serde_json::json!([1, 2, null]));
    assert_eq!(rows[0]["c_map"], serde_json::json!({"a": 1, "b": null}));
    assert_eq!(rows[0]["c_struct"], serde_json::json!({"x": 1, "y": "one"}));
    assert_eq!(rows[0]["c_decimal"], serde_json::json!("12345.6789"));
    assert_eq!(rows[0]["c_void"], serde_json::Value::Null);
    assert_eq!(rows[0]["c_binary"], serde_json::json!([0, 1, 255]));
    assert!(rows[3].values().all(|v| v.is_null()), "{:?}", rows[3]);
}

#[tokio::test]
async fn a_value_out_of_range_names_the_absolute_row_column_and_both_types() {
    let (_mock, _client, session) = session().await;
    #[derive(Debug, Deserialize)]
    struct Narrow {
        id: u8,
    }
    // Pages of 100 rows: row 256 is the 57th of the third page.
    let mut op = session
        .execute_statement_with(
            "SELECT * FROM mock.rows(300)",
            ExecuteOptions::new()
                .max_rows_per_fetch(100)
                .direct_results(false),
        )
        .await
        .unwrap();
    let mut rows = op.rows::<Narrow>();
    let mut ok = 0;
    let e = loop {
        match rows.next().await {
            Some(Ok(row)) => {
                assert_eq!(u32::from(row.id), ok, "rows in order");
                ok += 1;
            }
            Some(Err(e)) => break e,
            None => panic!("the stream ended without an error"),
        }
    };
    assert_eq!(ok, 256, "the rows before the bad one come out first");
    assert!(
        rows.next().await.is_none(),
        "the stream ends after its error"
    );
    assert_eq!(e.kind(), ErrorKind::Decode);
    let text = e.to_string();
    for part in ["row 256", "column 0 `id`", "Int64", "u8", "256"] {
        assert!(text.contains(part), "{part:?} missing from: {text}");
    }
    assert!(e.statement_id().is_some());
}

#[tokio::test]
async fn a_stream_dropped_mid_batch_gives_its_unread_rows_back() {
    let (_mock, _client, session) = session().await;
    // One page of 100 rows: the stream holds the whole batch while it yields row by row.
    let mut op = session
        .execute_statement("SELECT * FROM mock.rows(100)")
        .await
        .unwrap();
    let first: Vec<MockRow> = op.rows().take(3).try_collect().await.unwrap();
    assert_eq!(first, (0..3).map(expected).collect::<Vec<_>>());
    // `rows_raw` dropped after 10 more rows gives back the rest too.
    let rows: Vec<_> = op.rows_raw().take(10).try_collect().await.unwrap();
    assert_eq!(rows.last().map(|r| r.number()), Some(12));
    assert_eq!(rows.last().unwrap().get::<i64>("id").unwrap(), 12);
    // Read on as Arrow: the batch starts at row 13.
    let batch = op
        .next_batch()
        .await
        .unwrap()
        .expect("the rest of the batch");
    let ids = batch
        .column(0)
        .as_any()
        .downcast_ref::<databricks_sql::arrow::array::Int64Array>()
        .unwrap();
    assert_eq!((ids.value(0), batch.num_rows()), (13, 87));
    assert!(op.next_batch().await.unwrap().is_none());
}

#[tokio::test]
async fn after_an_error_the_failing_row_is_read_next_and_numbers_are_positions() {
    let (_mock, _client, session) = session().await;
    #[derive(Debug, Deserialize)]
    struct Narrow {
        id: u8,
    }
    let mut op = session
        .execute_statement_with(
            "SELECT * FROM mock.rows(300)",
            ExecuteOptions::new()
                .max_rows_per_fetch(100)
                .direct_results(false),
        )
        .await
        .unwrap();
    // The first page as Arrow; the typed stream then numbers rows from 100.
    assert_eq!(op.next_batch().await.unwrap().unwrap().num_rows(), 100);
    let e = match op.rows::<Narrow>().try_collect::<Vec<_>>().await {
        Ok(rows) => panic!("row 256 fit a u8: last id {:?}", rows.last().map(|r| r.id)),
        Err(e) => e,
    };
    assert!(e.to_string().contains("row 256"), "{e}");
    // Nothing is lost: the next read starts at the row that failed.
    let rows: Vec<MockRow> = op.fetch_all_as().await.unwrap();
    assert_eq!(rows, (256..300).map(expected).collect::<Vec<_>>());
}

#[tokio::test]
async fn type_mismatch_null_and_missing_field_errors_name_what_went_wrong() {
    let (_mock, _client, session) = session().await;

    #[derive(Debug, Deserialize)]
    struct WrongType {
        amount: String,
    }
    let mut op = session
        .execute_statement("SELECT * FROM mock.rows(5)")
        .await
        .unwrap();
    let e = match op.fetch_all_as::<WrongType>().await {
        Ok(rows) => panic!(
            "a Float64 read as a String: {:?}",
            rows.first().map(|r| &r.amount)
        ),
        Err(e) => e,
    };
    let text = e.to_string();
    for part in ["row 0", "column 2 `amount`", "Float64", "a string"] {
        assert!(text.contains(part), "{part:?} missing from: {text}");
    }

    #[derive(Debug, Deserialize)]
    struct NotNull {
        name: String,
    }
    let mut op = session
        .execute_statement("SELECT * FROM mock.rows(5)")
        .await
        .unwrap();
    let e = match op.fetch_all_as::<NotNull>().await {
        Ok(rows) => panic!(
            "a NULL read as a String: {:?}",
            rows.get(3).map(|r| &r.name)
        ),
        Err(e) => e,
    };
    let text = e.to_string();
    for part in ["row 3", "column 1 `name`", "Utf8", "NULL", "Option"] {
        assert!(text.contains(part), "{part:?} missing from: {text}");
    }

    #[derive(Debug, Deserialize)]
    struct Missing {
        id: i64,
        price: f64,
    }
    let mut op = session
        .execute_statement("SELECT * FROM mock.rows(5)")
        .await
        .unwrap();
    let e = match op.fetch_all_as::<Missing>().await {
        Ok(rows) => panic!(
            "a missing column read: {:?}",
            rows.first().map(|r| (r.id, r.price))
        ),
        Err(e) => e,
    };
    let text = e.to_string();
    assert!(text.contains("row 0"), "{text}");
    assert!(text.contains("missing field `price`"), "{text}");

    #[derive(Debug, Deserialize)]
    struct NestedWrong {
        c_struct: Option<BTreeMap<String, bool>>,
    }
    let mut op = session
        .execute_statement("SELECT * FROM mock.all_types")
        .await
        .unwrap();
    let e = match op.fetch_all_as::<NestedWrong>().await {
        Ok(rows) => panic!(
            "integers read as booleans: {:?}",
            rows.first().map(|r| &r.c_struct)
        ),
        Err(e) => e,
    };
    let text = e.to_string();
    for part in ["row 0", "column 14 `c_struct`", "Struct", "Int32", "bool"] {
        assert!(text.contains(part), "{part:?} missing from: {text}");
    }
}

#[tokio::test]
async fn row_get_reads_by_index_and_by_name() {
    let (_mock, _client, session) = session().await;
    let mut op = session
        .execute_statement("SELECT * FROM mock.rows(10)")
        .await
        .unwrap();
    let rows: Vec<databricks_sql::rows::Row> = op.rows_raw().try_collect().await.unwrap();
    assert_eq!(rows.len(), 10);
    for (i, row) in rows.iter().enumerate() {
        let want = expected(i as i64);
        assert_eq!(row.number(), i as u64);
        assert_eq!(row.len(), 5);
        assert_eq!(row.get::<i64>(0).unwrap(), want.id);
        assert_eq!(row.get::<i64>("id").unwrap(), want.id);
        assert_eq!(row.get::<Option<String>>("name").unwrap(), want.name);
        assert_eq!(
            row.get::<f64>("AMOUNT").unwrap(),
            want.amount,
            "names match ignoring case"
        );
        assert_eq!(row.get::<DateTime<Utc>>(3).unwrap(), want.ts);
        assert_eq!(row.get::<NaiveDateTime>("ts").unwrap(), want.ts.naive_utc());
        assert_eq!(row.get::<bool>(String::from("flag")).unwrap(), want.flag);
        assert_eq!(row.get::<u8>("id").unwrap(), i as u8);
        assert_eq!(row.deserialize::<MockRow>().unwrap(), want);
    }

    let null = &rows[3];
    let e = null.get::<String>("name").unwrap_err();
    assert_eq!(e.kind(), ErrorKind::Decode);
    let text = e.to_string();
    for part in ["row 3", "column 1 `name`", "Utf8", "String", "NULL"] {
        assert!(text.contains(part), "{part:?} missing from: {text}");
    }
    let text = rows[1].get::<i32>("amount").unwrap_err().to_string();
    for part in ["row 1", "column 2 `amount`", "Float64", "i32"] {
        assert!(text.contains(part), "{part:?} missing from: {text}");
    }
    let text = rows[1].get::<i64>("price").unwrap_err().to_string();
    assert!(text.contains("no column \"price\""), "{text}");
    assert!(text.contains("id, name, amount, ts, flag"), "{text}");
    let text = rows[1].get::<i64>(5).unwrap_err().to_string();
    assert!(text.contains("no column 5"), "{text}");
    let text = rows[1]
        .get::<DateTime<Utc>>("flag")
        .unwrap_err()
        .to_string();
    assert!(
        text.contains("Boolean") && text.contains("DateTime<Utc>"),
        "{text}"
    );
}

#[tokio::test]
async fn row_get_reads_every_type_of_all_types() {
    let (_mock, _client, session) = session().await;
    let mut op = session
        .execute_statement("SELECT * FROM mock.all_types")
        .await
        .unwrap();
    let rows: Vec<databricks_sql::rows::Row> = op.rows_raw().try_collect().await.unwrap();
    let row = &rows[0];
    assert!(row.get::<bool>("c_boolean").unwrap());
    assert_eq!(row.get::<i8>("c_tinyint").unwrap(), i8::MIN);
    assert_eq!(row.get::<i16>("c_smallint").unwrap(), i16::MIN);
    assert_eq!(row.get::<i32>("c_int").unwrap(), i32::MIN);
    assert_eq!(row.get::<i64>("c_bigint").unwrap(), i64::MIN);
    assert_eq!(row.get::<f32>("c_float").unwrap(), 1.5);
    assert_eq!(row.get::<f64>("c_double").unwrap(), 0.1);
    assert_eq!(row.get::<String>("c_string").unwrap(), "hello");
    assert_eq!(row.get::<Vec<u8>>("c_binary").unwrap(), vec![0, 1, 255]);
    assert_eq!(
        row.get::<Decimal>("c_decimal").unwrap(),
        Decimal::new(123_456_789, 4).unwrap()
    );
    assert_eq!(row.get::<String>("c_decimal").unwrap(), "12345.6789");
    assert_eq!(row.get::<f64>("c_decimal").unwrap(), 12345.6789);
    assert_eq!(
        row.get::<NaiveDate>("c_date").unwrap(),
        NaiveDate::from_ymd_opt(1970, 1, 1).unwrap()
    );
    assert_eq!(
        row.get::<DateTime<Utc>>("c_timestamp").unwrap(),
        DateTime::from_timestamp_micros(1_700_000_000_123_456).unwrap()
    );
    assert_eq!(
        row.get::<serde_json::Value>("c_array").unwrap(),
        serde_json::json!([1, 2, null])
    );
    assert_eq!(
        row.get::<serde_json::Value>("c_map").unwrap(),
        serde_json::json!({"a": 1, "b": null})
    );
    assert_eq!(
        row.get::<serde_json::Value>("c_struct").unwrap(),
        serde_json::json!({"x": 1, "y": "one"})
    );
    assert_eq!(row.get::<Option<i64>>("c_void").unwrap(), None);
    assert!(row.get::<i64>("c_void").is_err());
    assert!(row.get::<u8>("c_tinyint").is_err(), "-128 does not fit u8");
    assert!(
        row.get::<i64>("c_decimal").is_err(),
        "12345.6789 has a fraction"
    );

    let last = &rows[3];
    for i in 0..last.len() {
        assert_eq!(last.get::<Option<serde_json::Value>>(i).unwrap(), None);
        assert_eq!(last.get::<Option<String>>(i).unwrap(), None);
    }
}

#[tokio::test]
async fn rows_through_cloudfetch_come_out_complete_and_in_order() {
    let mock = MockWarehouse::builder()
        .cloudfetch_threshold_rows(1_000)
        .cloudfetch_rows_per_file(7_000)
        .start()
        .await
        .unwrap();
    let client = mock.client_builder().build().unwrap();
    let session = client.open_session().await.unwrap();
    const N: i64 = 50_000;
    let mut op = session
        .execute_statement(&format!("SELECT * FROM mock.rows({N})"))
        .await
        .unwrap();
    let mut rows = op.rows::<MockRow>();
    let mut next = 0;
    while let Some(row) = rows.try_next().await.unwrap() {
        assert_eq!(row, expected(next));
        next += 1;
    }
    drop(rows);
    assert_eq!(next, N);
    let summary = op
        .cloudfetch_summary()
        .expect("the result came as CloudFetch files");
    assert_eq!(summary.chunks_decoded, 8, "{summary:?}");
    op.close().await.unwrap();

    let mut op = session
        .execute_statement(&format!("SELECT * FROM mock.rows({N})"))
        .await
        .unwrap();
    let numbers: Vec<u64> = op
        .rows_raw()
        .map_ok(|row| row.number())
        .try_collect()
        .await
        .unwrap();
    assert_eq!(numbers, (0..N as u64).collect::<Vec<_>>());
    session.close().await.unwrap();
    client.close().await.unwrap();
}
