//! Bad servers: HTTP errors, throttling, dropped connections, corrupt and slow replies, injected
//! into the mock warehouse. Each either heals with exactly the right rows or fails with a clear,
//! typed error; nothing panics.

mod common;

use std::time::Duration;

use common::{count_and_sum_ids, mock};
use databricks_sql::mock::Fault;
use databricks_sql::{ErrorKind, ExecuteOptions};

#[tokio::test]
async fn corrupt_thrift_body_is_a_protocol_error_and_the_session_survives() {
    let (mock, builder) = mock().await;
    let client = builder.build().unwrap();
    let session = client.open_session().await.unwrap();
    mock.inject(Fault::corrupt_body().on("ExecuteStatement"));
    let err = session.execute_statement("SELECT 1").await.unwrap_err();
    assert_eq!(err.kind(), ErrorKind::Protocol, "{err}");
    assert!(!err.is_retryable());
    assert_eq!(err.session_id(), Some(session.id()));
    let mut op = session.execute_statement("SELECT 1").await.unwrap();
    assert_eq!(op.fetch_all().await.unwrap()[0].num_rows(), 1);
}

#[tokio::test]
async fn corrupt_fetch_reply_mid_result_is_a_protocol_error() {
    let (mock, builder) = mock().await;
    let client = builder.build().unwrap();
    let session = client.open_session().await.unwrap();
    let mut op = session
        .execute_statement_with(
            "SELECT * FROM range(5000)",
            ExecuteOptions::new().max_rows_per_fetch(1000),
        )
        .await
        .unwrap();
    assert!(op.next_batch().await.unwrap().is_some());
    mock.inject(Fault::corrupt_body().on("FetchResults"));
    let mut result = Ok(());
    loop {
        match op.next_batch().await {
            Ok(Some(_)) => continue,
            Ok(None) => break,
            Err(e) => {
                result = Err(e);
                break;
            }
        }
    }
    let err = result.unwrap_err();
    assert_eq!(err.kind(), ErrorKind::Protocol, "{err}");
    assert_eq!(err.statement_id(), Some(op.id()));
}

#[tokio::test]
async fn retries_get_operation_status_on_503_with_retry_after() {
    let (mock, builder) = mock().await;
    let client = builder.build().unwrap();
    let session = client.open_session().await.unwrap();
    mock.inject(
        Fault::http_status(503)
            .retry_after("1")
            .on("GetOperationStatus")
            .times(2),
    );
    let mut op = session.execute_statement("SELECT sleep(50)").await.unwrap();
    let batches = op.fetch_all().await.unwrap();
    assert_eq!(batches.iter().map(|b| b.num_rows()).sum::<usize>(), 1);
    assert_eq!(
        mock.pending_faults(),
        0,
        "both 503s were consumed by retries"
    );
}

#[tokio::test]
async fn execute_statement_is_not_resent_after_a_500() {
    let (mock, builder) = mock().await;
    let client = builder.build().unwrap();
    let session = client.open_session().await.unwrap();
    mock.inject(Fault::http_status(500).on("ExecuteStatement").times(3));
    let err = session.execute_statement("SELECT 1").await.unwrap_err();
    assert_eq!(err.kind(), ErrorKind::Http, "{err}");
    assert_eq!(err.http_status(), Some(500));
    assert_eq!(
        mock.pending_faults(),
        2,
        "one attempt only (2 of 3 injected 500s left): the statement may have run"
    );
    assert!(mock.statements().is_empty());
}

#[tokio::test]
async fn execute_statement_is_resent_after_a_429() {
    let (mock, builder) = mock().await;
    let client = builder.build().unwrap();
    let session = client.open_session().await.unwrap();
    mock.inject(Fault::http_status(429).on("ExecuteStatement"));
    let mut op = session.execute_statement("SELECT 1").await.unwrap();
    assert_eq!(op.fetch_all().await.unwrap()[0].num_rows(), 1);
    assert_eq!(mock.pending_faults(), 0);
}

#[tokio::test]
async fn dropped_connections_during_fetch_heal_with_exact_rows() {
    let (mock, builder) = mock().await;
    let client = builder.build().unwrap();
    let session = client.open_session().await.unwrap();
    let mut op = session
        .execute_statement_with(
            "SELECT * FROM range(10007)",
            ExecuteOptions::new()
                .max_rows_per_fetch(1000)
                .direct_results(false),
        )
        .await
        .unwrap();
    mock.inject(Fault::drop_connection().on("FetchResults").times(2));
    let batches = op.fetch_all().await.unwrap();
    assert_eq!(count_and_sum_ids(&batches), (10007, 10007 * 10006 / 2));
    assert_eq!(mock.pending_faults(), 0);
}

#[tokio::test]
async fn gives_up_after_the_attempt_limit_with_the_last_status() {
    let (mock, builder) = mock().await;
    let client = builder.build().unwrap();
    let session = client.open_session().await.unwrap();
    let mut op = session.execute_statement("SELECT sleep(20)").await.unwrap();
    mock.inject(Fault::http_status(503).on("GetOperationStatus").times(10));
    let err = op.fetch_all().await.unwrap_err();
    assert_eq!(err.http_status(), Some(503), "{err}");
    assert!(err.is_retryable());
    assert_eq!(err.statement_id(), Some(op.id()));
    assert_eq!(
        mock.pending_faults(),
        7,
        "3 attempts used 3 of the 10 injected 503s"
    );
}

#[tokio::test]
async fn a_reply_slower_than_the_request_timeout_times_out_and_is_retried() {
    let (mock, builder) = mock().await;
    let client = builder
        .request_timeout(Duration::from_millis(300))
        .build()
        .unwrap();
    let session = client.open_session().await.unwrap();
    mock.inject(Fault::delay(Duration::from_secs(3)).on("GetOperationStatus"));
    let mut op = session.execute_statement("SELECT sleep(20)").await.unwrap();
    let started = std::time::Instant::now();
    let batches = op.fetch_all().await.unwrap();
    assert_eq!(batches.iter().map(|b| b.num_rows()).sum::<usize>(), 1);
    assert!(started.elapsed() < Duration::from_secs(3));
}

#[tokio::test]
async fn a_slow_execute_times_out_without_being_resent() {
    let (mock, builder) = mock().await;
    let client = builder
        .request_timeout(Duration::from_millis(300))
        .build()
        .unwrap();
    let session = client.open_session().await.unwrap();
    mock.inject(Fault::delay(Duration::from_secs(3)).on("ExecuteStatement"));
    let err = session.execute_statement("SELECT 1").await.unwrap_err();
    assert_eq!(err.kind(), ErrorKind::Timeout, "{err}");
    assert!(err.is_timeout());
}
