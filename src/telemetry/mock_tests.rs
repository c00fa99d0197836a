//! Telemetry against the mock warehouse over loopback HTTP with the driver's real transport:
//! the feature-flag request and the uploads are what the endpoints expect. Real clock (real
//! sockets and a paused clock do not mix); nothing waits on a timer.

use std::sync::Arc;
use std::time::Duration;

use super::client_provider::TelemetryClientProvider;
use super::types::{
    ConnectionParameters, OperationType, ResultFormat, StatementCompletion, TelemetryContext,
    TelemetryEndpoint,
};
use crate::auth::TokenAuth;
use crate::error::{Error, ErrorKind};
use crate::http::{HttpConfig, HyperTransport};
use crate::mock::{Fault, MockWarehouse};

async fn context(mock: &MockWarehouse) -> TelemetryContext {
    let transport = Arc::new(HyperTransport::new(&HttpConfig::default()).expect("transport"));
    let mut ctx = TelemetryContext::new(
        TelemetryEndpoint::with_base_url(&mock.base_url()),
        transport,
    );
    ctx.auth = Some(Arc::new(TokenAuth::new(mock.token()).expect("token")));
    ctx.org_id = Some("1234567".into());
    ctx.connection = Some(Arc::new(ConnectionParameters {
        http_path: mock.http_path().to_string(),
        host_url: mock.base_url(),
        port: mock.port(),
        auth_type: "pat".into(),
        enable_arrow: true,
        enable_direct_results: true,
        ..Default::default()
    }));
    ctx
}

fn host(mock: &MockWarehouse) -> String {
    format!("{}:{}", mock.host(), mock.port())
}

#[tokio::test]
async fn uploads_what_the_driver_emitted_to_the_mock_warehouse() {
    let mock = MockWarehouse::builder()
        .telemetry_enabled(true)
        .start()
        .await
        .expect("mock starts");
    let provider = TelemetryClientProvider::new();
    let mut handle = provider.get_or_create(&host(&mock), context(&mock).await);
    let e = handle.emitter();
    e.emit_connection_open("sess-1", Duration::from_millis(42));
    e.emit_statement_start(
        "sess-1",
        "stmt-1",
        OperationType::ExecuteStatement,
        tokio::time::Instant::now(),
    );
    e.emit_statement_complete(
        "sess-1",
        "stmt-1",
        StatementCompletion {
            result_format: Some(ResultFormat::InlineArrow),
            poll_count: 1,
            ..Default::default()
        },
    );
    e.emit_error(
        &Error::new(ErrorKind::Connect, "connection reset; token=abc123"),
        Some("sess-1"),
        None,
    );
    handle.close().await;

    let flags = mock.feature_flag_requests();
    assert_eq!(flags.len(), 1);
    assert_eq!(flags[0].driver, "RUST");
    assert_eq!(flags[0].version, env!("CARGO_PKG_VERSION"));

    let requests = mock.telemetry_requests();
    assert_eq!(requests.len(), 1, "one batch on close");
    let r = &requests[0];
    assert_eq!(r.endpoint, crate::mock::endpoint::TELEMETRY_EXT);
    assert!(r.had_authorization);
    assert!(r
        .headers
        .iter()
        .any(|(k, v)| k == "x-databricks-org-id" && v == "1234567"));
    assert!(!r.body.contains("abc123"), "secret leaked: {}", r.body);

    let logs = mock.telemetry_logs();
    assert_eq!(logs.len(), 3);
    let driver_log = |i: usize| &logs[i]["entry"]["sql_driver_log"];
    assert_eq!(logs[0]["workspace_id"], 1_234_567);
    assert_eq!(driver_log(0)["session_id"], "sess-1");
    assert_eq!(driver_log(0)["operation_latency_ms"], 42);
    assert_eq!(driver_log(1)["sql_statement_id"], "stmt-1");
    assert_eq!(
        driver_log(1)["sql_operation"]["execution_result"],
        "INLINE_ARROW"
    );
    assert_eq!(driver_log(2)["error_info"]["error_name"], "Connect");
    assert_eq!(driver_log(0)["driver_connection_params"]["mode"], "THRIFT");
    assert!(driver_log(1)["driver_connection_params"].is_null());
}

#[tokio::test]
async fn exports_nothing_when_the_workspace_flag_is_off() {
    let mock = MockWarehouse::builder()
        .telemetry_enabled(false)
        .start()
        .await
        .expect("mock starts");
    let provider = TelemetryClientProvider::new();
    let mut handle = provider.get_or_create(&host(&mock), context(&mock).await);
    handle.emitter().emit_connection_open("s", Duration::ZERO);
    handle.close().await;
    assert_eq!(mock.feature_flag_requests().len(), 1);
    assert!(mock.telemetry_requests().is_empty());
}

#[tokio::test]
async fn a_failing_telemetry_endpoint_is_retried_then_given_up_quietly() {
    let mock = MockWarehouse::builder()
        .telemetry_enabled(true)
        .start()
        .await
        .expect("mock starts");
    mock.inject(Fault::http_status(503).on("telemetry-ext").times(1));
    let provider = TelemetryClientProvider::new();
    let mut handle = provider.get_or_create(&host(&mock), context(&mock).await);
    handle.emitter().emit_connection_open("s", Duration::ZERO);
    handle.close().await;
    // The 503 was retried after ~100 ms and the second attempt recorded.
    assert_eq!(mock.telemetry_logs().len(), 1);
}
