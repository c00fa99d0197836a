//! Tests of the retry policy against a scripted mock transport on tokio's paused clock.

use std::collections::VecDeque;
use std::sync::{Arc, Mutex};
use std::time::{Duration, SystemTime};

use http::{HeaderMap, HeaderValue, Method, StatusCode};
use tokio::time::Instant;

use super::*;
use crate::http::backoff::{parse_retry_after, Jitter, RandomSource};
use crate::http::MockHttpTransport;

const IDEMPOTENT: bool = true;
const NOT_IDEMPOTENT: bool = false;

fn request() -> HttpRequest {
    HttpRequest::new(
        Method::POST,
        http::Uri::from_static("https://example.invalid/sql/1.0/warehouses/abc"),
    )
}

fn status(code: u16) -> Result<HttpResponse> {
    Ok(HttpResponse {
        status: StatusCode::from_u16(code).unwrap_or(StatusCode::IM_A_TEAPOT),
        headers: HeaderMap::new(),
        body: bytes::Bytes::new(),
    })
}

fn status_with_header(code: u16, name: &'static str, value: &str) -> Result<HttpResponse> {
    let mut response = status(code)?;
    let value = HeaderValue::from_str(value).map_err(|_| Error::config("bad test header"))?;
    response.headers.insert(name, value);
    Ok(response)
}

fn retry_after(code: u16, seconds: u64) -> Result<HttpResponse> {
    status_with_header(code, "retry-after", &seconds.to_string())
}

fn connect_error() -> Result<HttpResponse> {
    Err(Error::new(
        ErrorKind::Connect,
        "could not connect to https://example.invalid/x",
    ))
}

/// A mock transport that answers with `script` in order (and fails the test on one call too
/// many), recording when each call came in.
fn scripted(script: Vec<Result<HttpResponse>>) -> (MockHttpTransport, Arc<Mutex<Vec<Instant>>>) {
    let calls = Arc::new(Mutex::new(Vec::new()));
    let seen = Arc::clone(&calls);
    let count = script.len();
    let script = Mutex::new(VecDeque::from(script));
    let mut mock = MockHttpTransport::new();
    mock.expect_send().times(count).returning(move |_| {
        seen.lock().unwrap().push(Instant::now());
        script.lock().unwrap().pop_front().unwrap()
    });
    (mock, calls)
}

/// The waits between consecutive calls.
fn gaps(calls: &Mutex<Vec<Instant>>) -> Vec<Duration> {
    let calls = calls.lock().unwrap();
    calls.windows(2).map(|w| w[1] - w[0]).collect()
}

fn policy(max_attempts: u32, min: u64, max: u64, overall: u64) -> RetryPolicy {
    RetryPolicy {
        max_attempts,
        min_backoff: Duration::from_secs(min),
        max_backoff: Duration::from_secs(max),
        overall_timeout: Duration::from_secs(overall),
    }
}

#[tokio::test(start_paused = true)]
async fn retries_idempotent_request_on_503_with_retry_after() {
    let (mock, calls) = scripted(vec![retry_after(503, 7), status(200)]);
    let response = RetryPolicy::default()
        .send(&mock, request(), IDEMPOTENT)
        .await;
    assert_eq!(response.map(|r| r.status).ok(), Some(StatusCode::OK));
    assert_eq!(gaps(&calls), vec![Duration::from_secs(7)]);
}

#[tokio::test(start_paused = true)]
async fn retries_idempotent_request_on_5xx_without_retry_after() {
    let (mock, calls) = scripted(vec![status(500), status(502), status(504), status(200)]);
    let response = RetryPolicy::default()
        .send(&mock, request(), IDEMPOTENT)
        .await;
    assert!(response.is_ok());
    assert_eq!(calls.lock().unwrap().len(), 4);
}

#[tokio::test(start_paused = true)]
async fn retries_idempotent_request_on_connect_error_and_timeout() {
    let timeout = Err(Error::new(ErrorKind::Timeout, "no complete response"));
    let (mock, _) = scripted(vec![connect_error(), timeout, status(200)]);
    let response = RetryPolicy::default()
        .send(&mock, request(), IDEMPOTENT)
        .await;
    assert!(response.is_ok());
}

#[tokio::test(start_paused = true)]
async fn does_not_retry_execute_on_500() {
    let (mock, _) = scripted(vec![status(500)]);
    let err = RetryPolicy::default()
        .send(&mock, request(), NOT_IDEMPOTENT)
        .await
        .err();
    assert_eq!(err.as_ref().map(Error::kind), Some(ErrorKind::Http));
    assert_eq!(err.as_ref().and_then(Error::http_status), Some(500));
}

#[tokio::test(start_paused = true)]
async fn does_not_retry_execute_on_503_without_retry_after() {
    let (mock, _) = scripted(vec![status(503)]);
    let err = RetryPolicy::default()
        .send(&mock, request(), NOT_IDEMPOTENT)
        .await
        .err();
    assert_eq!(err.and_then(|e| e.http_status()), Some(503));
}

/// A failure to connect at all: the request never left.
fn never_connected() -> Result<HttpResponse> {
    connect_error().map_err(Error::never_sent)
}

#[tokio::test(start_paused = true)]
async fn retries_execute_when_the_connection_was_never_made() {
    let (mock, calls) = scripted(vec![never_connected(), never_connected(), status(200)]);
    let response = RetryPolicy::default()
        .send(&mock, request(), NOT_IDEMPOTENT)
        .await
        .unwrap();
    assert_eq!(response.status, 200);
    assert_eq!(calls.lock().unwrap().len(), 3);
}

#[tokio::test(start_paused = true)]
async fn does_not_retry_execute_on_a_connection_lost_after_sending() {
    let (mock, _) = scripted(vec![connect_error()]);
    let err = RetryPolicy::default()
        .send(&mock, request(), NOT_IDEMPOTENT)
        .await
        .err();
    assert_eq!(err.map(|e| e.kind()), Some(ErrorKind::Connect));
}

#[tokio::test(start_paused = true)]
async fn retries_execute_on_429() {
    let (mock, calls) = scripted(vec![status(429), status(200)]);
    let response = RetryPolicy::default()
        .send(&mock, request(), NOT_IDEMPOTENT)
        .await;
    assert!(response.is_ok());
    let gaps = gaps(&calls);
    // No Retry-After: the first backoff, min_backoff plus up to a quarter.
    assert!(
        gaps[0] >= Duration::from_secs(1) && gaps[0] <= Duration::from_millis(1250),
        "{gaps:?}"
    );
}

#[tokio::test(start_paused = true)]
async fn retries_execute_on_503_with_retry_after() {
    let (mock, calls) = scripted(vec![retry_after(503, 3), status(200)]);
    let response = RetryPolicy::default()
        .send(&mock, request(), NOT_IDEMPOTENT)
        .await;
    assert!(response.is_ok());
    assert_eq!(gaps(&calls), vec![Duration::from_secs(3)]);
}

#[tokio::test(start_paused = true)]
async fn does_not_retry_501_or_client_errors() {
    for code in [501, 400, 404, 302] {
        let (mock, _) = scripted(vec![status(code)]);
        let err = RetryPolicy::default()
            .send(&mock, request(), IDEMPOTENT)
            .await
            .err();
        assert_eq!(err.and_then(|e| e.http_status()), Some(code));
    }
}

#[tokio::test(start_paused = true)]
async fn gives_up_after_max_attempts_with_last_status() {
    let script = vec![
        retry_after(503, 2),
        status(500),
        retry_after(429, 1),
        status(502),
        retry_after(503, 4),
    ];
    let (mock, calls) = scripted(script);
    let err = policy(5, 1, 60, 900)
        .send(&mock, request(), IDEMPOTENT)
        .await
        .err();
    let Some(err) = err else {
        panic!("expected an error after 5 failed attempts")
    };
    assert_eq!(calls.lock().unwrap().len(), 5);
    assert_eq!(err.kind(), ErrorKind::Http);
    assert_eq!(err.http_status(), Some(503));
    assert_eq!(err.retry_after(), Some(Duration::from_secs(4)));
    assert!(err.is_retryable());
    assert!(
        err.to_string().contains("gave up after 5 attempts"),
        "{err}"
    );
}

#[tokio::test(start_paused = true)]
async fn gives_up_after_max_attempts_with_last_transport_error() {
    let (mock, _) = scripted(vec![connect_error(), connect_error(), connect_error()]);
    let err = policy(3, 1, 60, 900)
        .send(&mock, request(), IDEMPOTENT)
        .await
        .err();
    let Some(err) = err else {
        panic!("expected an error after 3 failed attempts")
    };
    assert_eq!(err.kind(), ErrorKind::Connect);
    assert!(
        err.message()
            .starts_with("could not connect to https://example.invalid/x"),
        "{err}"
    );
    assert!(err.message().contains("gave up after 3 attempts"), "{err}");
}

#[tokio::test(start_paused = true)]
async fn respects_overall_timeout() {
    // Waits of 1, 2, 4 s (each plus up to a quarter) put the 4th attempt at 7..8.75 s; the next
    // wait (8 s, the cap) would end past the 10 s deadline, so the policy stops there.
    let (mock, calls) = scripted((0..4).map(|_| status(503)).collect());
    let started = Instant::now();
    let err = policy(100, 1, 8, 10)
        .send(&mock, request(), IDEMPOTENT)
        .await
        .err();
    assert!(started.elapsed() <= Duration::from_secs(10));
    assert_eq!(calls.lock().unwrap().len(), 4);
    let Some(err) = err else {
        panic!("expected an error at the overall timeout")
    };
    assert_eq!(err.http_status(), Some(503));
    assert!(err.message().contains("overall timeout of 10 s"), "{err}");
}

#[tokio::test(start_paused = true)]
async fn retry_after_past_the_overall_timeout_is_not_waited_for() {
    let (mock, _) = scripted(vec![retry_after(503, 30)]);
    let started = Instant::now();
    let err = policy(5, 1, 60, 20)
        .send(&mock, request(), IDEMPOTENT)
        .await
        .err();
    assert_eq!(started.elapsed(), Duration::ZERO);
    assert_eq!(
        err.and_then(|e| e.retry_after()),
        Some(Duration::from_secs(30))
    );
}

/// A transport whose requests never complete.
#[derive(Debug)]
struct Hanging;

#[async_trait::async_trait]
impl HttpTransport for Hanging {
    async fn send(&self, _request: HttpRequest) -> Result<HttpResponse> {
        std::future::pending().await
    }
}

#[tokio::test(start_paused = true)]
async fn an_attempt_still_running_at_the_overall_timeout_is_abandoned() {
    let started = Instant::now();
    let err = policy(5, 1, 60, 20)
        .send(&Hanging, request(), IDEMPOTENT)
        .await
        .err();
    assert_eq!(started.elapsed(), Duration::from_secs(20));
    assert_eq!(err.map(|e| e.kind()), Some(ErrorKind::Timeout));
}

#[tokio::test(start_paused = true)]
async fn auth_error_is_not_retried() {
    for code in [401, 403] {
        let (mock, _) = scripted(vec![retry_after(code, 1)]);
        let err = RetryPolicy::default()
            .send(&mock, request(), IDEMPOTENT)
            .await
            .err();
        assert_eq!(err.as_ref().map(Error::kind), Some(ErrorKind::Auth));
        assert_eq!(err.and_then(|e| e.http_status()), Some(code));
    }
}

#[tokio::test(start_paused = true)]
async fn retry_after_http_date_is_parsed() {
    let at = SystemTime::now() + Duration::from_secs(30);
    let (mock, calls) = scripted(vec![
        status_with_header(503, "retry-after", &httpdate::fmt_http_date(at)),
        status(200),
    ]);
    let response = RetryPolicy::default()
        .send(&mock, request(), IDEMPOTENT)
        .await;
    assert!(response.is_ok());
    // HTTP dates have whole seconds: the wait is 29..30 s.
    let gap = gaps(&calls)[0];
    assert!(
        gap > Duration::from_secs(28) && gap <= Duration::from_secs(30),
        "{gap:?}"
    );
}

#[test]
fn retry_after_header_forms() {
    let now = httpdate::parse_http_date("Sun, 06 Nov 1994 08:49:37 GMT").unwrap();
    let parse = |value: &str| {
        let mut headers = HeaderMap::new();
        headers.insert(
            http::header::RETRY_AFTER,
            HeaderValue::from_str(value).unwrap(),
        );
        parse_retry_after(&headers, now)
    };
    assert_eq!(parse("120"), Some(Duration::from_secs(120)));
    assert_eq!(parse(" 0 "), Some(Duration::ZERO));
    assert_eq!(
        parse("Sun, 06 Nov 1994 08:50:07 GMT"),
        Some(Duration::from_secs(30))
    );
    assert_eq!(parse("Sun, 06 Nov 1994 08:00:00 GMT"), Some(Duration::ZERO));
    assert_eq!(parse("-5"), None);
    assert_eq!(parse("soon"), None);
    assert_eq!(parse_retry_after(&HeaderMap::new(), now), None);
}

#[tokio::test(start_paused = true)]
async fn retry_after_is_capped_at_max_backoff() {
    let (mock, calls) = scripted(vec![retry_after(429, 3600), status(200)]);
    let response = policy(5, 1, 60, 900)
        .send(&mock, request(), NOT_IDEMPOTENT)
        .await;
    assert!(response.is_ok());
    assert_eq!(gaps(&calls), vec![Duration::from_secs(60)]);
}

#[test]
fn backoff_grows_and_is_capped() {
    let policy = policy(20, 1, 10, 900);
    let mut jitter = Jitter::new();
    for _ in 0..100 {
        let waits: Vec<Duration> = (1..=8)
            .map(|n| policy.backoff().delay(n, &mut jitter))
            .collect();
        let bases = [1, 2, 4, 8, 10, 10, 10, 10].map(Duration::from_secs);
        for (wait, base) in waits.iter().zip(bases) {
            assert!(*wait >= base, "{waits:?}");
            assert!(
                *wait <= (base + base / 4).min(Duration::from_secs(10)),
                "{waits:?}"
            );
        }
    }
    // Far past the point where the doubling overflows, the wait stays at the cap.
    assert_eq!(
        policy.backoff().delay(200, &mut jitter),
        Duration::from_secs(10)
    );
}

#[tokio::test(start_paused = true)]
async fn backoff_between_attempts_grows() {
    let (mock, calls) = scripted(vec![status(503), status(503), status(503), status(200)]);
    let response = policy(5, 1, 60, 900)
        .send(&mock, request(), IDEMPOTENT)
        .await;
    assert!(response.is_ok());
    let gaps = gaps(&calls);
    for (gap, base) in gaps.iter().zip([1u64, 2, 4]) {
        let base = Duration::from_secs(base);
        assert!(*gap >= base && *gap <= base + base / 4, "{gaps:?}");
    }
}

#[test]
fn jitter_fractions_are_in_unit_interval_and_vary() {
    let mut jitter = Jitter::new();
    let values: Vec<f64> = (0..1000).map(|_| jitter.next_fraction()).collect();
    assert!(values.iter().all(|v| (0.0..1.0).contains(v)));
    assert!(values.iter().any(|v| *v < 0.25) && values.iter().any(|v| *v > 0.75));
}

#[tokio::test(start_paused = true)]
async fn error_quotes_the_server_reason_header() {
    let (mock, _) = scripted(vec![status_with_header(
        400,
        "x-thriftserver-error-message",
        "Invalid SessionHandle\tplease reconnect",
    )]);
    let err = RetryPolicy::default()
        .send(&mock, request(), IDEMPOTENT)
        .await
        .err();
    let message = err.map(|e| e.to_string()).unwrap_or_default();
    assert!(message.contains("HTTP 400 Bad Request"), "{message}");
    assert!(
        message.contains(": Invalid SessionHandle please reconnect"),
        "{message}"
    );
}

/// A transport answering `script` in order and recording the `Authorization` header of each
/// request.
fn recording_auth(
    script: Vec<Result<HttpResponse>>,
) -> (MockHttpTransport, Arc<Mutex<Vec<String>>>) {
    let sent = Arc::new(Mutex::new(Vec::new()));
    let seen = Arc::clone(&sent);
    let count = script.len();
    let script = Mutex::new(VecDeque::from(script));
    let mut mock = MockHttpTransport::new();
    mock.expect_send()
        .times(count)
        .returning(move |request: HttpRequest| {
            let header = request
                .headers
                .get(AUTHORIZATION)
                .and_then(|v| v.to_str().ok())
                .unwrap_or("")
                .to_string();
            seen.lock().unwrap().push(header);
            script.lock().unwrap().pop_front().unwrap()
        });
    (mock, sent)
}

/// Tokens `tok-1`, `tok-2`... : a new one after each 401.
#[derive(Debug, Default)]
struct Renewing {
    generation: Mutex<u32>,
}

#[async_trait::async_trait]
impl AuthProvider for Renewing {
    async fn authorization(&self) -> Result<Option<HeaderValue>> {
        let n = *self.generation.lock().unwrap() + 1;
        Ok(Some(
            HeaderValue::from_str(&format!("Bearer tok-{n}")).unwrap(),
        ))
    }
    fn auth_type(&self) -> &'static str {
        "test"
    }
    fn rejected(&self, _: &HeaderValue) -> bool {
        *self.generation.lock().unwrap() += 1;
        true
    }
}

#[tokio::test(start_paused = true)]
async fn a_401_with_a_renewable_token_is_sent_once_more_at_once_with_a_fresh_one() {
    let (transport, sent) = recording_auth(vec![status(401), status(200)]);
    let auth = Renewing::default();
    let started = Instant::now();
    let mut attempts = 0;
    let response = RetryPolicy::default()
        .send_authenticated(
            &transport,
            request(),
            NOT_IDEMPOTENT,
            &auth,
            Some(&mut attempts),
        )
        .await
        .expect("the second attempt succeeds");
    assert_eq!(response.status, StatusCode::OK);
    assert_eq!(*sent.lock().unwrap(), ["Bearer tok-1", "Bearer tok-2"]);
    assert_eq!(attempts, 2);
    assert_eq!(
        started.elapsed(),
        Duration::ZERO,
        "no backoff before the fresh token"
    );
}

#[tokio::test(start_paused = true)]
async fn a_second_401_fails_with_an_auth_error() {
    let (transport, sent) = recording_auth(vec![status(401), status(401)]);
    let err = RetryPolicy::default()
        .send_authenticated(
            &transport,
            request(),
            IDEMPOTENT,
            &Renewing::default(),
            None,
        )
        .await
        .expect_err("refused twice");
    assert_eq!(err.kind(), ErrorKind::Auth);
    assert_eq!(err.http_status(), Some(401));
    assert_eq!(sent.lock().unwrap().len(), 2);
}

#[tokio::test(start_paused = true)]
async fn a_401_with_a_personal_access_token_is_not_retried() {
    let (transport, sent) = recording_auth(vec![status(401)]);
    let pat = crate::auth::TokenAuth::new("dapi-pat").unwrap();
    let err = RetryPolicy::default()
        .send_authenticated(&transport, request(), IDEMPOTENT, &pat, None)
        .await
        .expect_err("refused");
    assert_eq!(err.kind(), ErrorKind::Auth);
    assert_eq!(*sent.lock().unwrap(), ["Bearer dapi-pat"]);
}

#[tokio::test(start_paused = true)]
async fn every_attempt_asks_for_the_header_again() {
    // A provider whose token changes between attempts (renewed by another request).
    let auth = Renewing::default();
    let (transport, sent) = recording_auth(vec![status(503), status(200)]);
    let policy = RetryPolicy::default();
    let send = policy.send_authenticated(&transport, request(), IDEMPOTENT, &auth, None);
    tokio::pin!(send);
    // The first attempt goes out with tok-1 and is answered 503; renew while it backs off.
    tokio::select! {
        _ = &mut send => panic!("must back off first"),
        _ = tokio::time::sleep(Duration::from_millis(10)) => {}
    }
    *auth.generation.lock().unwrap() += 1;
    let response = send.await.expect("succeeds");
    assert_eq!(response.status, StatusCode::OK);
    assert_eq!(*sent.lock().unwrap(), ["Bearer tok-1", "Bearer tok-2"]);
}

#[tokio::test(start_paused = true)]
async fn send_returning_status_hands_back_a_final_refusal() {
    let (transport, _) = scripted(vec![status(500), status(400)]);
    let response = RetryPolicy::default()
        .send_returning_status(&transport, request(), IDEMPOTENT)
        .await
        .expect("a response");
    assert_eq!(response.status, StatusCode::BAD_REQUEST);
}

#[tokio::test(start_paused = true)]
async fn the_resend_with_a_fresh_credential_does_not_count_against_the_attempts() {
    let (transport, sent) = recording_auth(vec![status(401), status(200)]);
    let policy = RetryPolicy {
        max_attempts: 1,
        ..RetryPolicy::default()
    };
    let response = policy
        .send_authenticated(
            &transport,
            request(),
            IDEMPOTENT,
            &Renewing::default(),
            None,
        )
        .await
        .expect("the resend succeeds");
    assert_eq!(response.status, StatusCode::OK);
    assert_eq!(sent.lock().unwrap().len(), 2);
}
