//! Telemetry wired into the driver, end to end against the mock warehouse: when it starts, what
//! reaches the telemetry endpoint (and in which wire format), what never does, how clients of
//! one host share it, how it ends, and what the application receives locally.

mod common;

use std::sync::{Arc, Mutex};
use std::time::Duration;

use databricks_sql::http::{HttpConfig, HyperTransport};
use databricks_sql::mock::{MockWarehouse, MockWarehouseBuilder};
use databricks_sql::telemetry::{
    OperationType, ResultFormat, StatementMetrics, TelemetryClientProvider, TelemetryConfiguration,
};
use databricks_sql::{ChunkStats, ClientBuilder, ErrorKind, ExecuteOptions};
use serde_json::Value;

use common::count_and_sum_ids;

/// Telemetry settings for tests: flushes every 50 ms.
fn fast_telemetry() -> TelemetryConfiguration {
    let mut t = TelemetryConfiguration::default();
    t.flush_interval = Duration::from_millis(50);
    t
}

/// A mock whose CloudFetch starts above 1,000 rows, in files of 10,000 rows.
fn small_files() -> MockWarehouseBuilder {
    MockWarehouse::builder()
        .cloudfetch_threshold_rows(1_000)
        .cloudfetch_rows_per_file(10_000)
        .cloudfetch_links_per_page(3)
}

/// A mock with the telemetry flag `on`, and a builder for it with its own telemetry provider.
async fn mock_with_flag(on: bool) -> (MockWarehouse, ClientBuilder, TelemetryClientProvider) {
    let mock = small_files()
        .telemetry_enabled(on)
        .start()
        .await
        .expect("mock starts");
    let provider = TelemetryClientProvider::new();
    let builder = mock
        .client_builder()
        .telemetry(fast_telemetry())
        .telemetry_provider(provider.clone());
    (mock, builder, provider)
}

fn driver_log(log: &Value) -> &Value {
    &log["entry"]["sql_driver_log"]
}

fn operation_type(log: &Value) -> &str {
    driver_log(log)["sql_operation"]["operation_detail"]["operation_type"]
        .as_str()
        .unwrap_or("")
}

/// The statement logs (not errors, not sessions) the mock received.
fn statement_logs(mock: &MockWarehouse) -> Vec<Value> {
    mock.telemetry_logs()
        .into_iter()
        .filter(|l| driver_log(l)["sql_statement_id"].is_string())
        .filter(|l| driver_log(l)["error_info"].is_null())
        .collect()
}

fn error_logs(mock: &MockWarehouse) -> Vec<Value> {
    mock.telemetry_logs()
        .into_iter()
        .filter(|l| !driver_log(l)["error_info"].is_null())
        .collect()
}

fn log_of(mock: &MockWarehouse, statement_id: &str) -> Value {
    let logs: Vec<Value> = statement_logs(mock)
        .into_iter()
        .filter(|l| driver_log(l)["sql_statement_id"] == statement_id)
        .collect();
    assert_eq!(logs.len(), 1, "one log for {statement_id}: {logs:#?}");
    logs.into_iter().next().unwrap_or_default()
}

/// Metrics the application receives, collected.
fn collecting() -> (
    Arc<Mutex<Vec<StatementMetrics>>>,
    impl Fn(&StatementMetrics) + Send + Sync + 'static,
) {
    let seen = Arc::new(Mutex::new(Vec::new()));
    let sink = seen.clone();
    (seen, move |m: &StatementMetrics| {
        sink.lock().unwrap().push(m.clone())
    })
}

/// Runs `sql` to the end and closes it; returns the statement id.
async fn run(session: &databricks_sql::Session, sql: &str) -> String {
    let mut op = session.execute_statement(sql).await.expect("executes");
    op.fetch_all().await.expect("reads");
    let id = op.id().to_string();
    op.close().await.expect("closes");
    id
}

// --- wire format ------------------------------------------------------------------------------

/// What a JSON value must be.
enum Kind {
    Str,
    Int,
    Bool,
    Obj(&'static [(&'static str, Kind)]),
}

const SYSTEM: &[(&str, Kind)] = &[
    ("driver_version", Kind::Str),
    ("driver_name", Kind::Str),
    ("runtime_name", Kind::Str),
    ("runtime_version", Kind::Str),
    ("runtime_vendor", Kind::Str),
    ("os_name", Kind::Str),
    ("os_version", Kind::Str),
    ("os_arch", Kind::Str),
    ("locale_name", Kind::Str),
    ("char_set_encoding", Kind::Str),
    ("process_name", Kind::Str),
    ("client_app_name", Kind::Str),
];
const HOST_INFO: &[(&str, Kind)] = &[("host_url", Kind::Str), ("port", Kind::Int)];
const CONNECTION: &[(&str, Kind)] = &[
    ("http_path", Kind::Str),
    ("mode", Kind::Str),
    ("host_info", Kind::Obj(HOST_INFO)),
    ("auth_mech", Kind::Str),
    ("use_proxy", Kind::Bool),
    ("enable_arrow", Kind::Bool),
    ("enable_direct_results", Kind::Bool),
    ("socket_timeout", Kind::Int),
];
const OPERATION_DETAIL: &[(&str, Kind)] = &[
    ("operation_type", Kind::Str),
    ("n_operation_status_calls", Kind::Int),
    ("operation_status_latency_millis", Kind::Int),
];
const CHUNK_DETAILS: &[(&str, Kind)] = &[
    ("total_chunks_present", Kind::Int),
    ("total_chunks_iterated", Kind::Int),
    ("initial_chunk_latency_millis", Kind::Int),
    ("slowest_chunk_latency_millis", Kind::Int),
    ("sum_chunks_download_time_millis", Kind::Int),
];
const RESULT_LATENCY: &[(&str, Kind)] = &[
    ("result_set_ready_latency_millis", Kind::Int),
    ("result_set_consumption_latency_millis", Kind::Int),
];
const SQL_OPERATION: &[(&str, Kind)] = &[
    ("statement_type", Kind::Str),
    ("is_compressed", Kind::Bool),
    ("execution_result", Kind::Str),
    ("retry_count", Kind::Int),
    ("operation_detail", Kind::Obj(OPERATION_DETAIL)),
    ("chunk_details", Kind::Obj(CHUNK_DETAILS)),
    ("result_latency", Kind::Obj(RESULT_LATENCY)),
];
const ERROR_INFO: &[(&str, Kind)] = &[("error_name", Kind::Str), ("stack_trace", Kind::Str)];
const DRIVER_LOG: &[(&str, Kind)] = &[
    ("session_id", Kind::Str),
    ("sql_statement_id", Kind::Str),
    ("system_configuration", Kind::Obj(SYSTEM)),
    ("auth_type", Kind::Str),
    ("driver_connection_params", Kind::Obj(CONNECTION)),
    ("operation_latency_ms", Kind::Int),
    ("sql_operation", Kind::Obj(SQL_OPERATION)),
    ("error_info", Kind::Obj(ERROR_INFO)),
];
const ENTRY: &[(&str, Kind)] = &[("sql_driver_log", Kind::Obj(DRIVER_LOG))];
const CLIENT_CONTEXT: &[(&str, Kind)] =
    &[("timestamp_millis", Kind::Int), ("user_agent", Kind::Str)];
const CONTEXT: &[(&str, Kind)] = &[("client_context", Kind::Obj(CLIENT_CONTEXT))];
const FRONTEND_LOG: &[(&str, Kind)] = &[
    ("workspace_id", Kind::Int),
    ("frontend_log_event_id", Kind::Str),
    ("context", Kind::Obj(CONTEXT)),
    ("entry", Kind::Obj(ENTRY)),
];

/// Checks that `value` has only the fields of `spec`, each of its kind (null fields must be
/// left out, not sent as null).
fn check_shape(path: &str, value: &Value, kind: &Kind) {
    match (kind, value) {
        (Kind::Str, Value::String(_)) | (Kind::Bool, Value::Bool(_)) => {}
        (Kind::Int, Value::Number(n)) if n.is_i64() || n.is_u64() => {}
        (Kind::Obj(fields), Value::Object(map)) => {
            for (key, v) in map {
                let Some((_, k)) = fields.iter().find(|(name, _)| name == key) else {
                    panic!("{path}.{key} is not a field of the wire format");
                };
                check_shape(&format!("{path}.{key}"), v, k);
            }
        }
        _ => panic!("{path} has the wrong type: {value}"),
    }
}

/// Checks every request the telemetry endpoints received: the body's envelope, each protoLog's
/// shape, and that nothing secret or private is in it.
fn check_payloads(mock: &MockWarehouse, forbidden: &[&str]) {
    let requests = mock.telemetry_requests();
    assert!(!requests.is_empty(), "nothing was exported");
    for r in requests {
        let body: Value = serde_json::from_str(&r.body).expect("the body is JSON");
        assert!(body["uploadTime"].is_i64(), "{body}");
        assert!(
            body["items"].as_array().is_some_and(|i| i.is_empty()),
            "{body}"
        );
        let logs = body["protoLogs"].as_array().expect("protoLogs");
        assert!(!logs.is_empty());
        for text in logs {
            let text = text.as_str().expect("each protoLog is JSON text");
            let log: Value = serde_json::from_str(text).expect("each protoLog parses");
            check_shape("log", &log, &Kind::Obj(FRONTEND_LOG));
            let id = log["frontend_log_event_id"].as_str().unwrap_or("");
            assert_eq!(id.len(), 36, "a UUID: {id}");
        }
        for word in forbidden {
            assert!(
                !r.body.contains(word),
                "{word:?} in a telemetry body: {}",
                r.body
            );
        }
        assert!(
            !r.body.contains('?'),
            "a query string in a telemetry body: {}",
            r.body
        );
    }
}

// --- lifecycle --------------------------------------------------------------------------------

#[tokio::test]
async fn initialises_on_the_first_connection_not_at_build() {
    let (mock, builder, provider) = mock_with_flag(true).await;
    let client = builder.build().unwrap();
    tokio::time::sleep(Duration::from_millis(50)).await;
    assert_eq!(provider.client_count(), 0, "building starts nothing");
    assert!(mock.feature_flag_requests().is_empty());
    let session = client.open_session().await.unwrap();
    assert_eq!(provider.client_count(), 1);
    common::eventually("the feature flag is asked for", || {
        mock.feature_flag_requests().len() == 1
    })
    .await;
    let flag = &mock.feature_flag_requests()[0];
    assert_eq!(flag.driver, "RUST");
    assert_eq!(flag.version, env!("CARGO_PKG_VERSION"));
    session.close().await.unwrap();
    client.close().await.unwrap();
    assert_eq!(provider.client_count(), 0);
    let types: Vec<String> = mock
        .telemetry_logs()
        .iter()
        .map(|l| operation_type(l).to_string())
        .collect();
    assert_eq!(types, ["CREATE_SESSION", "DELETE_SESSION"]);
}

#[tokio::test]
async fn with_the_flag_off_nothing_is_sent() {
    let (mock, builder, provider) = mock_with_flag(false).await;
    let client = builder.build().unwrap();
    let session = client.open_session().await.unwrap();
    run(&session, "SELECT 1").await;
    session.close().await.unwrap();
    client.close().await.unwrap();
    assert_eq!(
        mock.feature_flag_requests().len(),
        1,
        "the flag is asked for"
    );
    assert!(mock.telemetry_requests().is_empty(), "but nothing is sent");
    assert_eq!(provider.client_count(), 0);
}

#[tokio::test]
async fn force_enabled_exports_without_asking_the_flag() {
    let (mock, builder, _) = mock_with_flag(false).await;
    let mut t = fast_telemetry();
    t.force_enabled = true;
    let client = builder.telemetry(t).build().unwrap();
    let session = client.open_session().await.unwrap();
    let id = run(&session, "SELECT 1").await;
    session.close().await.unwrap();
    client.close().await.unwrap();
    assert!(mock.feature_flag_requests().is_empty());
    log_of(&mock, &id);
}

#[tokio::test]
async fn the_per_client_override_turns_telemetry_off_for_that_client_only() {
    let (mock, builder, provider) = mock_with_flag(true).await;
    let quiet = mock
        .client_builder()
        .telemetry(fast_telemetry())
        .telemetry_provider(provider.clone())
        .telemetry_enabled(false)
        .build()
        .unwrap();
    let session = quiet.open_session().await.unwrap();
    run(&session, "SELECT 1").await;
    assert_eq!(
        provider.client_count(),
        0,
        "an off client takes no telemetry"
    );
    session.close().await.unwrap();
    quiet.close().await.unwrap();
    assert!(mock.feature_flag_requests().is_empty());
    assert!(mock.telemetry_requests().is_empty());

    let loud = builder.build().unwrap();
    let session = loud.open_session().await.unwrap();
    let id = run(&session, "SELECT 1").await;
    session.close().await.unwrap();
    loud.close().await.unwrap();
    log_of(&mock, &id);
}

#[tokio::test]
async fn ten_clients_of_one_host_share_one_telemetry_client_and_one_flag_request() {
    let (mock, _, provider) = mock_with_flag(true).await;
    let mut clients = Vec::new();
    let mut sessions = Vec::new();
    for _ in 0..10 {
        let client = mock
            .client_builder()
            .telemetry(fast_telemetry())
            .telemetry_provider(provider.clone())
            .build()
            .unwrap();
        for _ in 0..3 {
            sessions.push(client.open_session().await.unwrap());
        }
        clients.push(client);
    }
    assert_eq!(provider.client_count(), 1);
    let mut ids = Vec::new();
    for session in &sessions {
        ids.push(run(session, "SELECT 1").await);
    }
    for (i, client) in clients.iter().enumerate() {
        client.close().await.unwrap();
        let expected = usize::from(i < clients.len() - 1);
        assert_eq!(
            provider.client_count(),
            expected,
            "after closing client {i}"
        );
    }
    assert_eq!(mock.feature_flag_requests().len(), 1);
    for id in &ids {
        log_of(&mock, id);
    }
    let sessions_opened = mock
        .telemetry_logs()
        .iter()
        .filter(|l| operation_type(l) == "CREATE_SESSION")
        .count();
    assert_eq!(sessions_opened, 30);
}

#[test]
fn closing_flushes_and_leaves_no_task_behind() {
    // The mock runs on a runtime of its own, so that the client's runtime counts only the
    // client's tasks; connections are not pooled, so none stays open.
    let server = tokio::runtime::Builder::new_multi_thread()
        .worker_threads(1)
        .enable_all()
        .build()
        .unwrap();
    let mock = server
        .block_on(small_files().telemetry_enabled(true).start())
        .unwrap();
    let client_rt = tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
        .unwrap();
    client_rt.block_on(async {
        let metrics = tokio::runtime::Handle::current().metrics();
        let mut http = HttpConfig::default();
        http.pool_max_idle_per_host = 0;
        for close in [true, false] {
            let provider = TelemetryClientProvider::new();
            let transport = Arc::new(HyperTransport::new(&http).unwrap());
            let client = mock
                .client_builder()
                .transport(transport)
                .telemetry(fast_telemetry())
                .telemetry_provider(provider.clone())
                .build()
                .unwrap();
            let before = mock.telemetry_logs().len();
            let session = client.open_session().await.unwrap();
            run(&session, "SELECT * FROM range(10)").await;
            assert!(metrics.num_alive_tasks() >= 1, "the telemetry task runs");
            if close {
                session.close().await.unwrap();
                client.close().await.unwrap();
            } else {
                drop(session);
                drop(client);
            }
            // Dropping closes the session in the background and stops telemetry within
            // its close timeout.
            for _ in 0..300 {
                if metrics.num_alive_tasks() == 0 {
                    break;
                }
                tokio::time::sleep(Duration::from_millis(10)).await;
            }
            assert_eq!(metrics.num_alive_tasks(), 0, "close={close}: tasks left");
            assert_eq!(provider.client_count(), 0);
            let logs = mock.telemetry_logs();
            assert!(
                logs[before..]
                    .iter()
                    .any(|l| operation_type(l) == "EXECUTE_STATEMENT"),
                "close={close}: the statement was flushed"
            );
        }
    });
    server.block_on(mock.shutdown());
}

// --- what each statement reports ---------------------------------------------------------------

#[tokio::test]
async fn each_result_format_and_metadata_call_is_reported_with_its_type() {
    let (mock, builder, _) = mock_with_flag(true).await;
    let (seen, callback) = collecting();
    let client = builder.on_statement_metrics(callback).build().unwrap();
    let session = client.open_session().await.unwrap();
    let inline = run(&session, "SELECT * FROM range(100)").await;
    let mut op = session
        .execute_statement_with(
            "SELECT * FROM range(100)",
            ExecuteOptions::new().arrow(false),
        )
        .await
        .unwrap();
    op.fetch_all().await.unwrap();
    let columnar = op.id().to_string();
    op.close().await.unwrap();
    let mut op = session.catalogs().await.unwrap();
    op.fetch_all().await.unwrap();
    let catalogs = op.id().to_string();
    op.close().await.unwrap();
    let mut op = session.tables(None, None, None, &[]).await.unwrap();
    op.fetch_all().await.unwrap();
    let tables = op.id().to_string();
    op.close().await.unwrap();
    session.close().await.unwrap();
    client.close().await.unwrap();

    let log = log_of(&mock, &inline);
    let op = &driver_log(&log)["sql_operation"];
    assert_eq!(op["execution_result"], "INLINE_ARROW");
    assert_eq!(op["statement_type"], "SQL");
    assert_eq!(op["is_compressed"], true);
    assert_eq!(operation_type(&log), "EXECUTE_STATEMENT");
    assert!(driver_log(&log)["operation_latency_ms"].is_i64());
    assert!(op["result_latency"]["result_set_ready_latency_millis"].is_i64());

    let log = log_of(&mock, &columnar);
    assert_eq!(
        driver_log(&log)["sql_operation"]["execution_result"],
        "COLUMNAR_INLINE"
    );

    for (id, wanted) in [(&catalogs, "LIST_CATALOGS"), (&tables, "LIST_TABLES")] {
        let log = log_of(&mock, id);
        assert_eq!(operation_type(&log), wanted);
        assert_eq!(
            driver_log(&log)["sql_operation"]["statement_type"],
            "METADATA"
        );
    }

    let local = seen.lock().unwrap().clone();
    let kinds: Vec<(OperationType, Option<ResultFormat>)> = local
        .iter()
        .map(|m| (m.operation_type, m.result_format))
        .collect();
    assert_eq!(
        kinds,
        [
            (
                OperationType::ExecuteStatement,
                Some(ResultFormat::InlineArrow)
            ),
            (
                OperationType::ExecuteStatement,
                Some(ResultFormat::ColumnarInline)
            ),
            // The mock answers metadata calls column-based, as warehouses do.
            (
                OperationType::ListCatalogs,
                Some(ResultFormat::ColumnarInline)
            ),
            (
                OperationType::ListTables,
                Some(ResultFormat::ColumnarInline)
            ),
        ]
    );
    assert_eq!(local[0].statement_id, inline);
}

#[tokio::test]
async fn a_cloudfetch_statement_reports_its_chunks() {
    let (mock, builder, _) = mock_with_flag(true).await;
    let (seen, callback) = collecting();
    let observed = Arc::new(Mutex::new(Vec::<ChunkStats>::new()));
    let sink = observed.clone();
    let client = builder
        .on_statement_metrics(callback)
        .chunk_observer(Arc::new(move |s: &ChunkStats| {
            sink.lock().unwrap().push(s.clone())
        }))
        .build()
        .unwrap();
    let session = client.open_session().await.unwrap();
    let mut op = session
        .execute_statement("SELECT * FROM mock.rows(75000)")
        .await
        .unwrap();
    let batches = op.fetch_all().await.unwrap();
    assert_eq!(batches.iter().map(|b| b.num_rows()).sum::<usize>(), 75_000);
    let summary = op.cloudfetch_summary().expect("a CloudFetch result");
    let id = op.id().to_string();
    op.close().await.unwrap();
    session.close().await.unwrap();
    client.close().await.unwrap();

    assert_eq!(summary.chunks_decoded, 8);
    assert_eq!(
        observed.lock().unwrap().len(),
        8,
        "the application's observer"
    );
    let log = log_of(&mock, &id);
    let op = &driver_log(&log)["sql_operation"];
    assert_eq!(op["execution_result"], "EXTERNAL_LINKS");
    assert_eq!(op["is_compressed"], true);
    let chunks = &op["chunk_details"];
    assert_eq!(chunks["total_chunks_present"], 8);
    assert_eq!(chunks["total_chunks_iterated"], 8);
    let sum = chunks["sum_chunks_download_time_millis"].as_i64().unwrap();
    let slowest = chunks["slowest_chunk_latency_millis"].as_i64().unwrap();
    let initial = chunks["initial_chunk_latency_millis"].as_i64().unwrap();
    assert!(slowest <= sum && initial <= slowest, "{chunks}");
    assert_eq!(
        u128::try_from(sum).unwrap(),
        summary.sum_download_time.as_millis(),
        "{chunks}"
    );

    let local = seen.lock().unwrap().clone();
    assert_eq!(local.len(), 1);
    let m = &local[0];
    assert_eq!(m.result_format, Some(ResultFormat::ExternalLinks));
    assert_eq!(m.chunks_present, Some(8));
    assert_eq!(m.chunks_downloaded, 8);
    assert_eq!(m.bytes_downloaded, summary.bytes_downloaded);
    assert!(m.result_consumption_latency.is_some());
}

#[tokio::test]
async fn a_failing_statement_reports_its_error_without_the_server_text() {
    let (mock, builder, _) = mock_with_flag(true).await;
    let (seen, callback) = collecting();
    let client = builder.on_statement_metrics(callback).build().unwrap();
    let session = client.open_session().await.unwrap();
    let failed = match session
        .execute_statement("SELECT * FROM no_such_table")
        .await
    {
        Ok(mut op) => {
            let e = op.fetch_all().await.unwrap_err();
            op.close().await.unwrap();
            e
        }
        Err(e) => e,
    };
    assert_eq!(failed.sql_state(), Some("42P01"));
    session.close().await.unwrap();
    client.close().await.unwrap();

    let errors = error_logs(&mock);
    assert_eq!(errors.len(), 1, "{errors:#?}");
    let info = &driver_log(&errors[0])["error_info"];
    assert_eq!(info["error_name"], "Server");
    assert_eq!(info["stack_trace"], "SQLSTATE 42P01");
    assert_eq!(
        driver_log(&errors[0])["sql_statement_id"],
        failed.statement_id().unwrap_or_default()
    );
    let local = seen.lock().unwrap().clone();
    assert_eq!(local.len(), 1);
    assert_eq!(local[0].error, Some(ErrorKind::Server));
    assert_eq!(local[0].sql_state.as_deref(), Some("42P01"));
    check_payloads(&mock, &["no_such_table", "SELECT"]);
}

#[tokio::test]
async fn a_dropped_operation_is_still_reported() {
    let (mock, builder, _) = mock_with_flag(true).await;
    let (seen, callback) = collecting();
    let client = builder.on_statement_metrics(callback).build().unwrap();
    let session = client.open_session().await.unwrap();
    let mut op = session
        .execute_statement("SELECT * FROM mock.rows(30000)")
        .await
        .unwrap();
    op.next_batch().await.unwrap();
    let id = op.id().to_string();
    drop(op);
    let mut unread = session.execute_statement("SELECT 1").await.unwrap();
    let unread_id = unread.id().to_string();
    // Closing the session ends the report of a statement still held.
    session.close().await.unwrap();
    client.close().await.unwrap();
    log_of(&mock, &id);
    log_of(&mock, &unread_id);
    assert_eq!(seen.lock().unwrap().len(), 2);
    // Closing it afterwards reports nothing twice.
    let _ = unread.close().await;
    assert_eq!(seen.lock().unwrap().len(), 2);
}

#[tokio::test]
async fn a_cancelled_statement_is_reported_when_cancelled() {
    let (mock, builder, _) = mock_with_flag(true).await;
    let (seen, callback) = collecting();
    let client = builder.on_statement_metrics(callback).build().unwrap();
    let session = client.open_session().await.unwrap();
    let mut op = session
        .execute_statement("SELECT sleep(5000)")
        .await
        .unwrap();
    let id = op.id().to_string();
    op.cancel().await.unwrap();
    assert_eq!(seen.lock().unwrap().len(), 1, "reported at the cancel");
    assert_eq!(op.wait().await.unwrap_err().kind(), ErrorKind::Cancelled);
    op.close().await.unwrap();
    session.close().await.unwrap();
    client.close().await.unwrap();
    log_of(&mock, &id);
    assert_eq!(seen.lock().unwrap().len(), 1);
}

#[tokio::test]
async fn a_statement_stopped_by_its_query_timeout_reports_the_timeout() {
    let (mock, builder, _) = mock_with_flag(true).await;
    let (seen, callback) = collecting();
    let client = builder.on_statement_metrics(callback).build().unwrap();
    let session = client.open_session().await.unwrap();
    let mut op = session
        .execute_statement_with(
            "SELECT sleep(5000)",
            ExecuteOptions::new().query_timeout(Duration::from_millis(200)),
        )
        .await
        .unwrap();
    let id = op.id().to_string();
    let err = op.fetch_all().await.unwrap_err();
    assert_eq!(err.kind(), ErrorKind::QueryTimeout);
    op.close().await.unwrap();
    session.close().await.unwrap();
    client.close().await.unwrap();
    let local = seen.lock().unwrap().clone();
    assert_eq!(local.len(), 1);
    assert_eq!(local[0].error, Some(ErrorKind::QueryTimeout));
    let errors = error_logs(&mock);
    assert_eq!(errors.len(), 1, "{errors:#?}");
    assert_eq!(
        driver_log(&errors[0])["error_info"]["error_name"],
        "QueryTimeout"
    );
    assert_eq!(driver_log(&errors[0])["sql_statement_id"], id.as_str());
    log_of(&mock, &id);
}

#[tokio::test]
async fn polls_and_retries_are_counted() {
    let (mock, builder, _) = mock_with_flag(true).await;
    let (seen, callback) = collecting();
    let client = builder
        .retry_policy(
            databricks_sql::http::RetryPolicy::default()
                .with_max_attempts(3)
                .with_backoff(Duration::from_millis(5), Duration::from_millis(20))
                .with_overall_timeout(Duration::from_secs(10)),
        )
        .on_statement_metrics(callback)
        .build()
        .unwrap();
    let session = client.open_session().await.unwrap();
    mock.set_running_polls(3);
    mock.inject(
        databricks_sql::mock::Fault::http_status(503)
            .on("GetOperationStatus")
            .times(2),
    );
    let id = run(&session, "SELECT 1").await;
    session.close().await.unwrap();
    client.close().await.unwrap();
    let log = log_of(&mock, &id);
    let op = &driver_log(&log)["sql_operation"];
    assert_eq!(op["retry_count"], 2, "{op}");
    assert!(
        op["operation_detail"]["n_operation_status_calls"]
            .as_i64()
            .unwrap()
            >= 3,
        "{op}"
    );
    let m = seen.lock().unwrap()[0].clone();
    assert_eq!(m.retry_count, 2);
    assert!(m.status_polls >= 3);
}

#[tokio::test]
async fn every_payload_has_the_wire_format_and_no_secret() {
    let (mock, builder, _) = mock_with_flag(true).await;
    let client = builder.user_agent_entry("telemetry-test").build().unwrap();
    let session = client.open_session().await.unwrap();
    let id = run(&session, "SELECT * FROM mock.rows(25000)").await;
    run(&session, "SELECT * FROM range(7)").await;
    let failed = session
        .execute_statement("SELECT * FROM no_such_table")
        .await;
    if let Ok(mut op) = failed {
        let _ = op.fetch_all().await;
    }
    let mut op = session.columns(None, None, Some("%"), None).await.unwrap();
    op.fetch_all().await.unwrap();
    drop(op);
    session.close().await.unwrap();
    client.close().await.unwrap();
    // The system's and the connection's details go with the session's opening, once.
    let log = log_of(&mock, &id);
    assert!(driver_log(&log)["driver_connection_params"].is_null());
    assert!(driver_log(&log)["system_configuration"]["os_name"].is_null());
    assert_eq!(
        driver_log(&log)["system_configuration"]["driver_name"],
        "databricks-sql-rust"
    );
    let opened: Vec<Value> = mock
        .telemetry_logs()
        .into_iter()
        .filter(|l| operation_type(l) == "CREATE_SESSION")
        .collect();
    assert_eq!(opened.len(), 1);
    let opened = driver_log(&opened[0]);
    assert_eq!(
        opened["system_configuration"]["client_app_name"],
        "telemetry-test"
    );
    assert_eq!(opened["driver_connection_params"]["mode"], "THRIFT");
    assert_eq!(opened["auth_type"], "pat");
    check_payloads(
        &mock,
        &[
            mock.token(),
            "SELECT",
            "mock.rows",
            "range(",
            "no_such_table",
            "cloudfetch/",
            databricks_sql::mock::DEFAULT_TOKEN,
        ],
    );
    let files = mock.cloudfetch_get_counts();
    assert!(!files.is_empty(), "the statement was CloudFetch");
}

// --- local metrics without Databricks telemetry -------------------------------------------------

#[tokio::test]
async fn local_metrics_work_with_telemetry_off() {
    let (mock, builder, provider) = mock_with_flag(false).await;
    let (seen, callback) = collecting();
    let client = builder
        .telemetry_enabled(false)
        .on_statement_metrics(callback)
        .build()
        .unwrap();
    let session = client.open_session().await.unwrap();
    let mut op = session
        .execute_statement("SELECT * FROM range(1000)")
        .await
        .unwrap();
    let (rows, _) = count_and_sum_ids(&op.fetch_all().await.unwrap());
    assert_eq!(rows, 1000);
    op.close().await.unwrap();
    session.close().await.unwrap();
    client.close().await.unwrap();
    assert_eq!(provider.client_count(), 0);
    assert!(mock.feature_flag_requests().is_empty());
    assert!(mock.telemetry_requests().is_empty());
    let local = seen.lock().unwrap().clone();
    assert_eq!(local.len(), 1);
    assert!(local[0].latency > Duration::ZERO);
    assert_eq!(local[0].error, None);
}

#[tokio::test]
async fn a_panicking_callback_changes_nothing() {
    let (_mock, builder, _) = mock_with_flag(true).await;
    let client = builder
        .on_statement_metrics(|_| panic!("the application's callback fails"))
        .build()
        .unwrap();
    let session = client.open_session().await.unwrap();
    let mut op = session
        .execute_statement("SELECT * FROM range(10)")
        .await
        .unwrap();
    let (rows, sum) = count_and_sum_ids(&op.fetch_all().await.unwrap());
    assert_eq!((rows, sum), (10, 45));
    op.close().await.unwrap();
    session.close().await.unwrap();
    client.close().await.unwrap();
}

// --- unauthenticated path ------------------------------------------------------------------------

#[tokio::test]
async fn a_refused_first_connection_is_reported_without_credentials_or_ids() {
    let (mock, builder, _) = mock_with_flag(false).await;
    let mut t = fast_telemetry();
    t.force_enabled = true;
    let client = builder.token("wrong-token").telemetry(t).build().unwrap();
    let err = client.open_session().await.unwrap_err();
    assert_eq!(err.kind(), ErrorKind::Auth);
    client.close().await.unwrap();
    let requests = mock.telemetry_requests();
    assert_eq!(requests.len(), 1, "{requests:#?}");
    let r = &requests[0];
    assert_eq!(r.endpoint, databricks_sql::mock::endpoint::TELEMETRY_UNAUTH);
    assert!(!r.had_authorization);
    assert!(!r.body.contains("wrong-token"));
    let log = &r.proto_logs[0];
    assert!(log.get("workspace_id").is_none());
    let d = driver_log(log);
    assert!(d["session_id"].is_null() && d["sql_statement_id"].is_null());
    assert!(d["driver_connection_params"].is_null());
    assert_eq!(d["error_info"]["error_name"], "Auth");
    assert!(d["error_info"]["stack_trace"].is_null());
}
