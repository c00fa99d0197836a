//! Every RPC the driver uses against every fault a server or network produces: the call
//! succeeds after retries, or fails with the typed error the retry rules give; the mock's record
//! of the requests it ran shows whether the faulted request ran, and ExecuteStatement never runs
//! twice on the server for one call. Backoffs are cut to
//! milliseconds (a `Retry-After` is capped at the policy's `max_backoff`), so the whole matrix
//! takes seconds.

mod common;

use std::time::{Duration, SystemTime};

use databricks_sql::http::RetryPolicy;
use databricks_sql::mock::{Fault, MockWarehouse};
use databricks_sql::telemetry::TelemetryClientProvider;
use databricks_sql::{DBSQLClient, ErrorKind, ExecuteOptions, Result, Session};

/// The request timeout of the clients here; the slow fault answers after twice as long.
const REQUEST_TIMEOUT: Duration = Duration::from_millis(200);

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Rpc {
    OpenSession,
    ExecuteStatement,
    GetOperationStatus,
    GetResultSetMetadata,
    FetchResults,
    GetCatalogs,
    CancelOperation,
    CloseOperation,
    CloseSession,
}

impl Rpc {
    const ALL: [Rpc; 9] = [
        Rpc::OpenSession,
        Rpc::ExecuteStatement,
        Rpc::GetOperationStatus,
        Rpc::GetResultSetMetadata,
        Rpc::FetchResults,
        Rpc::GetCatalogs,
        Rpc::CancelOperation,
        Rpc::CloseOperation,
        Rpc::CloseSession,
    ];

    fn name(self) -> &'static str {
        match self {
            Rpc::OpenSession => "OpenSession",
            Rpc::ExecuteStatement => "ExecuteStatement",
            Rpc::GetOperationStatus => "GetOperationStatus",
            Rpc::GetResultSetMetadata => "GetResultSetMetadata",
            Rpc::FetchResults => "FetchResults",
            Rpc::GetCatalogs => "GetCatalogs",
            Rpc::CancelOperation => "CancelOperation",
            Rpc::CloseOperation => "CloseOperation",
            Rpc::CloseSession => "CloseSession",
        }
    }

    /// Whether the driver may send it twice (every RPC but the two that create something).
    fn idempotent(self) -> bool {
        !matches!(self, Rpc::OpenSession | Rpc::ExecuteStatement)
    }
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum FaultCase {
    TooManyRequestsSeconds,
    TooManyRequestsDate,
    UnavailableRetryAfter,
    Unavailable,
    InternalError,
    BadGateway,
    NotImplemented,
    DropBeforeRun,
    DropAfterRun,
    Slow,
    CorruptBody,
}

impl FaultCase {
    const ALL: [FaultCase; 11] = [
        FaultCase::TooManyRequestsSeconds,
        FaultCase::TooManyRequestsDate,
        FaultCase::UnavailableRetryAfter,
        FaultCase::Unavailable,
        FaultCase::InternalError,
        FaultCase::BadGateway,
        FaultCase::NotImplemented,
        FaultCase::DropBeforeRun,
        FaultCase::DropAfterRun,
        FaultCase::Slow,
        FaultCase::CorruptBody,
    ];

    fn fault(self) -> Fault {
        let in_a_second = httpdate::fmt_http_date(SystemTime::now() + Duration::from_secs(2));
        match self {
            FaultCase::TooManyRequestsSeconds => Fault::http_status(429).retry_after("1"),
            FaultCase::TooManyRequestsDate => Fault::http_status(429).retry_after(in_a_second),
            FaultCase::UnavailableRetryAfter => Fault::http_status(503).retry_after("1"),
            FaultCase::Unavailable => Fault::http_status(503),
            FaultCase::InternalError => Fault::http_status(500),
            FaultCase::BadGateway => Fault::http_status(502),
            FaultCase::NotImplemented => Fault::http_status(501),
            FaultCase::DropBeforeRun => Fault::drop_connection(),
            FaultCase::DropAfterRun => Fault::drop_connection_after_run(),
            FaultCase::Slow => Fault::delay(REQUEST_TIMEOUT * 2),
            FaultCase::CorruptBody => Fault::corrupt_body(),
        }
    }

    /// What the retry rules make of this fault on `rpc`: `None` for success after a retry, else
    /// the error kind.
    fn expected(self, rpc: Rpc) -> Option<ErrorKind> {
        use FaultCase::*;
        match self {
            // The server says it did not run the request: any request is sent again.
            TooManyRequestsSeconds | TooManyRequestsDate | UnavailableRetryAfter => None,
            // It may have run: only idempotent requests are sent again.
            Unavailable | InternalError | BadGateway if rpc.idempotent() => None,
            Unavailable | InternalError | BadGateway => Some(ErrorKind::Http),
            NotImplemented => Some(ErrorKind::Http),
            DropBeforeRun | DropAfterRun if rpc.idempotent() => None,
            DropBeforeRun | DropAfterRun => Some(ErrorKind::Connect),
            Slow if rpc.idempotent() => None,
            Slow => Some(ErrorKind::Timeout),
            CorruptBody => Some(ErrorKind::Protocol),
        }
    }
}

async fn client(mock: &MockWarehouse) -> DBSQLClient {
    mock.client_builder()
        .telemetry_provider(TelemetryClientProvider::new())
        .request_timeout(REQUEST_TIMEOUT)
        .retry_policy(
            RetryPolicy::default()
                .with_max_attempts(3)
                .with_backoff(Duration::from_millis(1), Duration::from_millis(10))
                .with_overall_timeout(Duration::from_secs(10)),
        )
        .build()
        .expect("client")
}

async fn rows(op: &mut databricks_sql::Operation) -> Result<usize> {
    Ok(op.fetch_all().await?.iter().map(|b| b.num_rows()).sum())
}

/// Set up what `rpc` needs, inject `fault` on its next call, make the call; the call's outcome.
async fn run(mock: &MockWarehouse, rpc: Rpc, fault: Fault) -> Result<()> {
    let client = client(mock).await;
    let fault = fault.on(rpc.name()).times(1);
    if rpc == Rpc::OpenSession {
        mock.inject(fault);
        return client.open_session().await.map(|_| ());
    }
    let session: Session = client.open_session().await.expect("session");
    match rpc {
        Rpc::ExecuteStatement => {
            mock.inject(fault);
            let mut op = session.execute_statement("SELECT 1").await?;
            assert_eq!(rows(&mut op).await.expect("rows"), 1);
        }
        Rpc::GetOperationStatus => {
            mock.inject(fault);
            let mut op = session.execute_statement("SELECT sleep(30)").await?;
            assert_eq!(rows(&mut op).await?, 1);
        }
        Rpc::GetResultSetMetadata | Rpc::FetchResults => {
            mock.inject(fault);
            let options = ExecuteOptions::new()
                .direct_results(false)
                .max_rows_per_fetch(100);
            let mut op = session
                .execute_statement_with("SELECT * FROM range(250)", options)
                .await?;
            assert_eq!(rows(&mut op).await?, 250);
        }
        Rpc::GetCatalogs => {
            mock.inject(fault);
            let mut op = session.catalogs().await?;
            assert!(rows(&mut op).await? > 0);
        }
        Rpc::CancelOperation => {
            let op = session
                .execute_statement("SELECT sleep(5000)")
                .await
                .expect("execute");
            mock.inject(fault);
            op.cancel().await?;
        }
        Rpc::CloseOperation => {
            // Without direct results: the server does not close the operation by itself.
            let options = ExecuteOptions::new().direct_results(false);
            let mut op = session
                .execute_statement_with("SELECT 1", options)
                .await
                .expect("execute");
            rows(&mut op).await.expect("rows");
            mock.inject(fault);
            op.close().await?;
        }
        Rpc::CloseSession => {
            mock.inject(fault);
            session.close().await?;
        }
        Rpc::OpenSession => unreachable!("handled above"),
    }
    Ok(())
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn every_rpc_against_every_fault_follows_the_retry_rules() {
    let started = std::time::Instant::now();
    let mut failures = Vec::new();
    for rpc in Rpc::ALL {
        for case in FaultCase::ALL {
            let mock = MockWarehouse::start().await.expect("mock");
            let outcome = run(&mock, rpc, case.fault()).await;
            let got = outcome.as_ref().err().map(|e| e.kind());
            if got != case.expected(rpc) {
                failures.push(format!(
                    "{} x {case:?}: expected {:?}, got {outcome:?}",
                    rpc.name(),
                    case.expected(rpc)
                ));
            }
            if got.is_none() && mock.pending_faults() != 0 {
                failures.push(format!(
                    "{} x {case:?}: the fault was never met",
                    rpc.name()
                ));
            }
            // The mock records which requests it ran: the faulted one ran only if the fault
            // struck after the run (or a slow reply outlived the client's wait).
            let received = mock.call_count(rpc.name());
            let handled = mock.handled_count(rpc.name());
            let faulted_ran = match case {
                FaultCase::DropAfterRun => 1..=1,
                FaultCase::Slow => 0..=1,
                _ => 0..=0,
            };
            let faulted_run = (handled + 1).checked_sub(received);
            if !faulted_run.is_some_and(|n| faulted_ran.contains(&n)) {
                failures.push(format!(
                    "{} x {case:?}: {received} received, {handled} run; the faulted one should have run {faulted_ran:?} times",
                    rpc.name()
                ));
            }
            if rpc == Rpc::ExecuteStatement {
                if handled > 1 {
                    failures.push(format!("ExecuteStatement x {case:?}: run {handled} times"));
                }
                let ran = mock.statements().len();
                // A reply slower than the request timeout: the mock runs the statement after
                // the delay, unless the client has hung up by then.
                let expected_runs = match case {
                    _ if got.is_none() => 1..=1,
                    FaultCase::DropAfterRun => 1..=1,
                    FaultCase::Slow => 0..=1,
                    _ => 0..=0,
                };
                if !expected_runs.contains(&ran) {
                    failures.push(format!(
                        "ExecuteStatement x {case:?}: ran {ran} times on the server, expected {expected_runs:?}"
                    ));
                }
            }
            if let Err(e) = &outcome {
                let text = e.to_string();
                if text.trim().is_empty() || !text.contains(':') {
                    failures.push(format!("{} x {case:?}: unclear error {text:?}", rpc.name()));
                }
            }
        }
    }
    assert!(failures.is_empty(), "{}", failures.join("\n"));
    assert!(
        started.elapsed() < Duration::from_secs(60),
        "took {:?}",
        started.elapsed()
    );
}
