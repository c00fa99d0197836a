//! The driver's own Thrift stack (HyperTransport, TokenAuth, RetryPolicy, ThriftClient) against
//! the mock: the two sides agree on the wire, and the driver's retries and error mapping see
//! the mock's faults and statuses as a warehouse's.

use std::sync::Arc;
use std::time::Duration;

use super::*;
use crate::auth::TokenAuth;
use crate::error::ErrorKind;
use crate::http::{HttpConfig, HyperTransport, RetryPolicy};
use crate::thrift::rpc::ThriftClient;
use crate::thrift::tcli::*;

fn client(mock: &MockWarehouse, token: &str) -> ThriftClient {
    let transport = Arc::new(HyperTransport::new(&HttpConfig::default()).unwrap());
    let retry = RetryPolicy {
        max_attempts: 3,
        min_backoff: Duration::from_millis(10),
        max_backoff: Duration::from_secs(5),
        overall_timeout: Duration::from_secs(60),
    };
    ThriftClient::new(
        transport,
        mock.url().parse().unwrap(),
        Arc::new(TokenAuth::new(token).unwrap()),
        retry,
    )
}

async fn open(c: &ThriftClient) -> TSessionHandle {
    let req = TOpenSessionReq::new(
        TProtocolVersion(-7),
        None,
        None,
        None,
        None,
        i64::from(protocol_version::SPARK_V8),
        None,
        None,
        true,
    );
    c.open_session(req).await.unwrap().session_handle.unwrap()
}

fn exec(s: &TSessionHandle, sql: &str) -> TExecuteStatementReq {
    TExecuteStatementReq::new(
        s.clone(),
        sql.to_string(),
        None,
        true,
        None,
        TSparkGetDirectResults::new(100_000, None),
        true,
        None,
        true,
        None,
        TSparkArrowTypes::new(true, true, true, false, None),
        None,
        None,
        None,
        None,
    )
}

#[tokio::test]
async fn the_driver_thrift_client_runs_a_query_end_to_end() {
    let mock = MockWarehouse::start().await.unwrap();
    let c = client(&mock, mock.token());
    let s = open(&c).await;
    let resp = c
        .execute_statement(exec(&s, "SELECT * FROM range(10)"))
        .await
        .unwrap();
    let dr = resp.direct_results.unwrap();
    let meta = dr.result_set_metadata.unwrap();
    let rows = dr.result_set.unwrap().results.unwrap();
    let batches = rows.arrow_batches.unwrap();
    assert_eq!(batches.iter().map(|b| b.row_count).sum::<i64>(), 10);
    assert_eq!(meta.lz4_compressed, Some(true));
    c.close_session(TCloseSessionReq::new(s)).await.unwrap();
    assert_eq!(mock.open_sessions(), 0);
    // The driver's headers reach the mock (the token does not appear in what it records).
    let req = mock.requests().pop().unwrap();
    assert!(req
        .headers
        .iter()
        .any(|(n, v)| n == "user-agent" && v.starts_with("databricks-sql-rust/")));
    assert!(req.headers.iter().all(|(n, _)| n != "authorization"));
}

#[tokio::test(start_paused = true)]
async fn the_driver_retries_an_idempotent_call_on_503_with_retry_after() {
    let mock = MockWarehouse::start().await.unwrap();
    let c = client(&mock, mock.token());
    let s = open(&c).await;
    let op = c
        .execute_statement(exec(&s, "SELECT 1"))
        .await
        .unwrap()
        .operation_handle
        .unwrap();
    mock.inject(
        Fault::http_status(503)
            .retry_after("1")
            .on("GetResultSetMetadata")
            .times(2),
    );
    let meta = c
        .get_result_set_metadata(TGetResultSetMetadataReq::new(op))
        .await;
    // Direct results already closed the operation: the retried call reaches the mock and gets
    // INVALID_HANDLE, which the driver maps.
    assert_eq!(meta.unwrap_err().kind(), ErrorKind::InvalidHandle);
    assert_eq!(mock.call_count("GetResultSetMetadata"), 3);
}

#[tokio::test]
async fn the_driver_sees_a_wrong_token_as_an_auth_error() {
    let mock = MockWarehouse::start().await.unwrap();
    let c = client(&mock, "not-the-token");
    let req = TOpenSessionReq::new(
        TProtocolVersion(-7),
        None,
        None,
        None,
        None,
        i64::from(protocol_version::SPARK_V8),
        None,
        None,
        None,
    );
    let err = c.open_session(req).await.unwrap_err();
    assert_eq!(err.kind(), ErrorKind::Auth);
    assert_eq!(mock.call_count("OpenSession"), 1);
}

#[tokio::test]
async fn the_driver_sees_a_corrupt_body_as_a_protocol_error() {
    let mock = MockWarehouse::start().await.unwrap();
    let c = client(&mock, mock.token());
    let s = open(&c).await;
    mock.inject(Fault::corrupt_body().on("ExecuteStatement"));
    let err = c.execute_statement(exec(&s, "SELECT 1")).await.unwrap_err();
    assert_eq!(err.kind(), ErrorKind::Protocol);
}

#[tokio::test]
async fn the_driver_maps_the_error_state_with_its_sql_state() {
    let mock = MockWarehouse::start().await.unwrap();
    let c = client(&mock, mock.token());
    let s = open(&c).await;
    let resp = c
        .execute_statement(exec(&s, "SELECT * FROM missing_table"))
        .await
        .unwrap();
    let status = resp.direct_results.unwrap().operation_status.unwrap();
    let err = crate::thrift::status::operation_state_error(&status).unwrap();
    assert_eq!(err.sql_state(), Some("42P01"));
    assert!(err.to_string().contains("missing_table"), "{err}");
}
