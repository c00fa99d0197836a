//! Sessions, statements and results through the public API against the mock warehouse.

mod common;

use std::time::Duration;

use common::{client, count_and_sum_ids, eventually, mock};
use databricks_sql::arrow::array::{
    Array, BooleanArray, Float64Array, Int32Array, Int64Array, StringArray,
    TimestampMicrosecondArray,
};
use databricks_sql::arrow::schema::DataType;
use databricks_sql::{ErrorKind, ExecuteOptions, SessionOptions};
use futures::TryStreamExt;

#[tokio::test]
async fn session_opens_and_closes_on_the_server() {
    let (mock, client) = client().await;
    let session = client.open_session().await.unwrap();
    assert_eq!(
        session.id().len(),
        36,
        "session id is UUID text: {}",
        session.id()
    );
    assert_eq!(mock.open_sessions(), 1);
    session.close().await.unwrap();
    session.close().await.unwrap(); // a second close does nothing
    assert_eq!(mock.open_sessions(), 0);
    assert_eq!(mock.call_count("OpenSession"), 1);
    assert_eq!(mock.call_count("CloseSession"), 1);
    client.close().await.unwrap();
}

#[tokio::test]
async fn session_options_reach_the_server() {
    let (_mock, client) = client().await;
    let session = client
        .open_session_with(
            SessionOptions::new()
                .catalog("main")
                .schema("default")
                .configuration("ansi_mode", "true"),
        )
        .await
        .unwrap();
    assert!(session.server_protocol_version() >= 0xA501);
    session.close().await.unwrap();
}

#[tokio::test]
async fn select_one_returns_one_row() {
    let (mock, client) = client().await;
    let session = client.open_session().await.unwrap();
    let mut op = session.execute_statement("SELECT 1").await.unwrap();
    let batches = op.fetch_all().await.unwrap();
    assert_eq!(batches.iter().map(|b| b.num_rows()).sum::<usize>(), 1);
    let col = batches[0].column(0);
    let value = match col.data_type() {
        DataType::Int32 => col.as_any().downcast_ref::<Int32Array>().unwrap().value(0) as i64,
        DataType::Int64 => col.as_any().downcast_ref::<Int64Array>().unwrap().value(0),
        other => panic!("unexpected type {other}"),
    };
    assert_eq!(value, 1);
    op.close().await.unwrap();
    // Direct results answered everything: no polling, no fetch round trips.
    assert_eq!(mock.call_count("GetOperationStatus"), 0);
    assert_eq!(mock.call_count("FetchResults"), 0);
    session.close().await.unwrap();
}

async fn range_check(n: i64, options: ExecuteOptions) {
    let (_mock, client) = client().await;
    let session = client.open_session().await.unwrap();
    let sql = format!("SELECT * FROM range({n})");
    let mut op = session.execute_statement_with(&sql, options).await.unwrap();
    let batches = op.fetch_all().await.unwrap();
    let (rows, sum) = count_and_sum_ids(&batches);
    assert_eq!(rows as i64, n, "row count of {sql}");
    assert_eq!(sum, n * (n - 1) / 2, "sum of ids of {sql}");
    // Every id in its place: batches come in row order.
    let mut expected = 0i64;
    for b in &batches {
        let ids = b.column(0).as_any().downcast_ref::<Int64Array>().unwrap();
        for v in ids.values().iter() {
            assert_eq!(*v, expected);
            expected += 1;
        }
    }
    let schema = op.schema().await.unwrap();
    assert_eq!(schema.field(0).name(), "id");
    assert_eq!(schema.field(0).data_type(), &DataType::Int64);
    op.close().await.unwrap();
    session.close().await.unwrap();
}

#[tokio::test]
async fn range_with_arrow_and_lz4() {
    for n in [0, 1, 100_000] {
        range_check(n, ExecuteOptions::new().lz4(true)).await;
    }
}

#[tokio::test]
async fn range_with_arrow_without_lz4() {
    for n in [0, 1, 100_000] {
        range_check(n, ExecuteOptions::new().lz4(false)).await;
    }
}

#[tokio::test]
async fn range_column_based_when_arrow_is_off() {
    for n in [0, 1, 100_000] {
        range_check(n, ExecuteOptions::new().arrow(false)).await;
    }
}

#[tokio::test]
async fn range_across_many_small_fetches() {
    range_check(
        10_007,
        ExecuteOptions::new()
            .max_rows_per_fetch(1000)
            .direct_results(false),
    )
    .await;
}

async fn check_mock_rows(options: ExecuteOptions) {
    let (_mock, client) = client().await;
    let session = client.open_session().await.unwrap();
    let mut op = session
        .execute_statement_with("SELECT * FROM mock.rows(1000)", options)
        .await
        .unwrap();
    let schema = op.schema().await.unwrap();
    let names: Vec<&str> = schema.fields().iter().map(|f| f.name().as_str()).collect();
    assert_eq!(names, ["id", "name", "amount", "ts", "flag"]);
    let batches: Vec<_> = op.stream().try_collect().await.unwrap();
    let mut seen = 0i64;
    for b in &batches {
        let id = b.column(0).as_any().downcast_ref::<Int64Array>().unwrap();
        let name = b.column(1).as_any().downcast_ref::<StringArray>().unwrap();
        let amount = b.column(2).as_any().downcast_ref::<Float64Array>().unwrap();
        let flag = b.column(4).as_any().downcast_ref::<BooleanArray>().unwrap();
        for r in 0..b.num_rows() {
            let i = id.value(r);
            assert_eq!(i, seen);
            if i % 7 == 3 {
                assert!(name.is_null(r), "name of id {i} is NULL");
            } else {
                assert_eq!(name.value(r), format!("name-{i}"));
            }
            assert_eq!(amount.value(r), i as f64 * 0.25);
            assert_eq!(flag.value(r), i % 2 == 0);
            seen += 1;
        }
        // Timestamps: epoch + id seconds (Arrow natively, or as text column-based).
        match b.column(3).data_type() {
            DataType::Timestamp(_, _) => {
                let ts = b
                    .column(3)
                    .as_any()
                    .downcast_ref::<TimestampMicrosecondArray>()
                    .expect("microsecond timestamps");
                for r in 0..b.num_rows() {
                    assert_eq!(ts.value(r), id.value(r) * 1_000_000);
                }
            }
            DataType::Utf8 => {
                let ts = b.column(3).as_any().downcast_ref::<StringArray>().unwrap();
                assert!(ts.value(0).starts_with("1970-01-01"), "{}", ts.value(0));
            }
            other => panic!("unexpected ts type {other}"),
        }
    }
    assert_eq!(seen, 1000);
    op.close().await.unwrap();
    session.close().await.unwrap();
}

#[tokio::test]
async fn mock_rows_values_and_nulls_arrow() {
    check_mock_rows(ExecuteOptions::new()).await;
}

#[tokio::test]
async fn mock_rows_values_and_nulls_column_based() {
    check_mock_rows(ExecuteOptions::new().arrow(false)).await;
}

#[tokio::test]
async fn sleep_statement_is_polled_until_finished() {
    let (mock, client) = client().await;
    let session = client.open_session().await.unwrap();
    let mut op = session
        .execute_statement("SELECT sleep(200)")
        .await
        .unwrap();
    let batches = op.fetch_all().await.unwrap();
    assert_eq!(batches.iter().map(|b| b.num_rows()).sum::<usize>(), 1);
    assert!(
        mock.call_count("GetOperationStatus") >= 2,
        "a running statement is polled: {}",
        mock.call_count("GetOperationStatus")
    );
    op.close().await.unwrap();
}

#[tokio::test]
async fn cancel_stops_a_running_statement() {
    let (mock, client) = client().await;
    let session = client.open_session().await.unwrap();
    let mut op = session
        .execute_statement("SELECT sleep(30000)")
        .await
        .unwrap();
    let cancel = op.cancel_handle();
    let canceller = tokio::spawn(async move {
        tokio::time::sleep(Duration::from_millis(100)).await;
        cancel.cancel().await
    });
    let started = std::time::Instant::now();
    let err = op.fetch_all().await.unwrap_err();
    assert_eq!(err.kind(), ErrorKind::Cancelled, "{err}");
    assert!(started.elapsed() < Duration::from_secs(10));
    canceller.await.unwrap().unwrap();
    assert_eq!(mock.call_count("CancelOperation"), 1);
    assert_eq!(err.statement_id(), Some(op.id()));
}

#[tokio::test]
async fn query_timeout_ends_a_long_statement() {
    let (_mock, client) = client().await;
    let session = client.open_session().await.unwrap();
    let mut op = session
        .execute_statement_with(
            "SELECT sleep(30000)",
            ExecuteOptions::new().query_timeout(Duration::from_secs(1)),
        )
        .await
        .unwrap();
    let started = std::time::Instant::now();
    let err = op.fetch_all().await.unwrap_err();
    assert_eq!(err.kind(), ErrorKind::QueryTimeout, "{err}");
    assert!(err.is_timeout());
    assert!(started.elapsed() < Duration::from_secs(10));
}

#[tokio::test]
async fn unknown_table_fails_with_sql_state_42p01() {
    let (_mock, client) = client().await;
    let session = client.open_session().await.unwrap();
    let result = match session
        .execute_statement("SELECT * FROM no_such_table")
        .await
    {
        Ok(mut op) => op.fetch_all().await.map(|_| ()),
        Err(e) => Err(e),
    };
    let err = result.unwrap_err();
    assert_eq!(err.kind(), ErrorKind::Server, "{err}");
    assert_eq!(err.sql_state(), Some("42P01"));
    assert!(err.to_string().contains("no_such_table"), "{err}");
    assert!(!err.is_retryable());
}

#[tokio::test]
async fn dml_reports_rows_affected() {
    let (_mock, client) = client().await;
    let session = client.open_session().await.unwrap();
    let mut op = session
        .execute_statement("INSERT INTO t VALUES (1), (2), (3)")
        .await
        .unwrap();
    assert!(op.fetch_all().await.unwrap().is_empty());
    assert_eq!(op.rows_affected(), Some(3));
    assert!(op.schema().await.unwrap().fields().is_empty());
    op.close().await.unwrap();
}

#[tokio::test]
async fn dropping_without_close_closes_on_the_server() {
    let (mock, client) = client().await;
    let session = client.open_session().await.unwrap();
    let op = session
        .execute_statement_with(
            "SELECT * FROM range(10)",
            ExecuteOptions::new().direct_results(false),
        )
        .await
        .unwrap();
    assert_eq!(mock.open_operations(), 1);
    drop(op);
    drop(session);
    eventually("operation and session closed by the server", || {
        mock.open_operations() == 0 && mock.open_sessions() == 0
    })
    .await;
    assert_eq!(mock.call_count("CloseOperation"), 1);
    assert_eq!(mock.call_count("CloseSession"), 1);
}

#[tokio::test]
async fn client_close_waits_for_the_close_of_a_dropped_session() {
    let (mock, client) = client().await;
    let session = client.open_session().await.unwrap();
    // The server takes its time with the close started by the drop.
    mock.inject(
        databricks_sql::mock::Fault::delay(Duration::from_millis(300))
            .on("CloseSession")
            .times(1),
    );
    drop(session);
    client.close().await.unwrap();
    assert_eq!(
        mock.open_sessions(),
        0,
        "closed before client.close() returned"
    );
}

#[tokio::test]
async fn client_close_waits_for_the_close_of_a_dropped_operation() {
    let (mock, client) = client().await;
    let session = client.open_session().await.unwrap();
    let op = session
        .execute_statement_with(
            "SELECT * FROM range(10)",
            ExecuteOptions::new().direct_results(false),
        )
        .await
        .unwrap();
    mock.inject(
        databricks_sql::mock::Fault::delay(Duration::from_millis(300))
            .on("CloseOperation")
            .times(1),
    );
    drop(op);
    client.close().await.unwrap();
    assert_eq!(
        mock.handled_count("CloseOperation"),
        1,
        "the dropped operation's close ran before client.close() returned"
    );
    drop(session);
}

#[tokio::test]
async fn client_close_closes_open_sessions() {
    let (mock, client) = client().await;
    let _s1 = client.open_session().await.unwrap();
    let _s2 = client.open_session().await.unwrap();
    assert_eq!(mock.open_sessions(), 2);
    client.close().await.unwrap();
    assert_eq!(mock.open_sessions(), 0);
    let err = client.open_session().await.unwrap_err();
    assert_eq!(err.kind(), ErrorKind::Closed);
    // The sessions know they are closed: dropping them sends nothing more.
    drop((_s1, _s2));
    tokio::time::sleep(Duration::from_millis(100)).await;
    assert_eq!(mock.call_count("CloseSession"), 2);
}

#[tokio::test]
async fn wrong_token_is_an_auth_error() {
    let (mock, _) = mock().await;
    let client = mock.client_builder().token("wrong-token").build().unwrap();
    let err = client.open_session().await.unwrap_err();
    assert_eq!(err.kind(), ErrorKind::Auth, "{err}");
    assert_eq!(err.http_status(), Some(401));
    assert!(!err.to_string().contains("wrong-token"));
    assert!(!format!("{err:?}").contains("wrong-token"));
}

#[tokio::test]
async fn operations_of_one_session_run_concurrently() {
    let (_mock, client) = client().await;
    let session = std::sync::Arc::new(client.open_session().await.unwrap());
    let mut tasks = Vec::new();
    for n in [10i64, 1000, 5000, 20_000] {
        let s = session.clone();
        tasks.push(tokio::spawn(async move {
            let mut op = s
                .execute_statement(&format!("SELECT * FROM range({n})"))
                .await
                .unwrap();
            let (rows, sum) = count_and_sum_ids(&op.fetch_all().await.unwrap());
            op.close().await.unwrap();
            assert_eq!((rows as i64, sum), (n, n * (n - 1) / 2));
        }));
    }
    for t in tasks {
        t.await.unwrap();
    }
}

#[tokio::test]
async fn cancel_after_reading_part_of_a_result_fails_later_reads() {
    let (mock, client) = client().await;
    let session = client.open_session().await.unwrap();
    let mut op = session
        .execute_statement_with(
            "SELECT * FROM range(50000)",
            ExecuteOptions::new().max_rows_per_fetch(5000),
        )
        .await
        .unwrap();
    assert!(op.next_batch().await.unwrap().is_some());
    op.cancel().await.unwrap();
    let err = op.next_batch().await.unwrap_err();
    assert_eq!(err.kind(), ErrorKind::Cancelled, "{err}");
    assert_eq!(mock.call_count("CancelOperation"), 1);
}

#[tokio::test]
async fn reading_after_close_is_a_closed_error() {
    let (mock, client) = client().await;
    let session = client.open_session().await.unwrap();
    let mut op = session
        .execute_statement_with(
            "SELECT * FROM range(50000)",
            ExecuteOptions::new().max_rows_per_fetch(5000),
        )
        .await
        .unwrap();
    assert!(op.next_batch().await.unwrap().is_some());
    op.close().await.unwrap();
    op.close().await.unwrap();
    assert_eq!(op.next_batch().await.unwrap_err().kind(), ErrorKind::Closed);
    assert_eq!(mock.call_count("CloseOperation"), 1);
    assert_eq!(mock.open_operations(), 0);
}

#[tokio::test]
async fn pages_are_fetched_one_ahead_of_the_reader() {
    let (mock, client) = client().await;
    let session = client.open_session().await.unwrap();
    let mut op = session
        .execute_statement_with(
            "SELECT * FROM range(50000)",
            ExecuteOptions::new()
                .max_rows_per_fetch(10_000)
                .direct_results(false),
        )
        .await
        .unwrap();
    // The first page is read on demand; the second is prefetched while the first is consumed.
    assert!(op.next_batch().await.unwrap().is_some());
    common::eventually("the next page is prefetched", || {
        mock.call_count("FetchResults") == 2
    })
    .await;
    let (rows, sum) = count_and_sum_ids(&op.fetch_all().await.unwrap());
    assert_eq!(rows + 10_000, 50_000);
    assert_eq!(sum + (0..10_000).sum::<i64>(), 50_000 * 49_999 / 2);
    op.close().await.unwrap();
}
