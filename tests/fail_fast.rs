//! What will never work fails at once: a host name that does not resolve, a port nobody
//! listens on, with the driver's default retry policy (5 attempts, backoff from 1 s).

use std::time::{Duration, Instant};

use databricks_sql::telemetry::TelemetryClientProvider;
use databricks_sql::{DBSQLClient, ErrorKind};

#[tokio::test]
async fn a_host_that_does_not_resolve_fails_on_the_first_attempt() {
    let client = DBSQLClient::builder()
        .host("no-such-host.invalid")
        .http_path("/sql/1.0/warehouses/abc")
        .token("dapi-x")
        .telemetry_provider(TelemetryClientProvider::new())
        .build()
        .expect("client");
    let started = Instant::now();
    let err = client.open_session().await.expect_err("no such host");
    let took = started.elapsed();
    assert_eq!(err.kind(), ErrorKind::Connect, "{err}");
    assert!(err.to_string().contains("no-such-host.invalid"), "{err}");
    assert!(!err.is_retryable(), "{err}");
    assert_cause_given_once(&err);
    assert!(took < Duration::from_secs(1), "took {took:?}: {err}");
}

#[tokio::test]
async fn a_refused_port_fails_within_about_half_a_second() {
    // A port that was free a moment ago: nothing listens on it.
    let port = {
        let listener = std::net::TcpListener::bind("127.0.0.1:0").expect("bind");
        listener.local_addr().expect("addr").port()
    };
    let client = DBSQLClient::builder()
        .host("127.0.0.1")
        .port(port)
        .plain_http(true)
        .http_path("/sql/1.0/warehouses/abc")
        .token("dapi-x")
        .telemetry_provider(TelemetryClientProvider::new())
        .build()
        .expect("client");
    let started = Instant::now();
    let err = client.open_session().await.expect_err("refused");
    let took = started.elapsed();
    assert_eq!(err.kind(), ErrorKind::Connect, "{err}");
    let text = err.to_string();
    assert!(text.contains("gave up after 3 attempts over"), "{text}");
    assert!(
        text.to_lowercase().contains("refused"),
        "names the last cause: {text}"
    );
    assert_cause_given_once(&err);
    assert!(
        took >= Duration::from_millis(300) && took < Duration::from_millis(1500),
        "took {took:?}: {text}"
    );
}

/// No error in the chain below `err` says something its `Display` already says.
fn assert_cause_given_once(err: &databricks_sql::Error) {
    let text = err.to_string();
    let mut next = std::error::Error::source(err);
    while let Some(cause) = next {
        let said = cause.to_string();
        assert!(
            !text.contains(&said),
            "{said:?} is both in the message and in source(): {text}"
        );
        next = cause.source();
    }
}
