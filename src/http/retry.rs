//! The driver's one retry policy: which failed requests are sent again, and how long to wait
//! between attempts (`Retry-After`, else exponential backoff with jitter), within an attempt
//! limit and an overall deadline.

use std::time::{Duration, SystemTime};

use http::header::AUTHORIZATION;
use http::{HeaderMap, StatusCode};
use tokio::time::Instant;

use super::backoff::{parse_retry_after, status_retry, Backoff, Jitter, StatusRetry};
use super::{fmt_duration, HttpRequest, HttpResponse, HttpTransport};
use crate::auth::AuthProvider;
use crate::error::{ConnectFailure, Error, ErrorKind, Result};

/// How failed HTTP requests are retried. Defaults follow the peer drivers (protocol.md section 6).
///
/// What is retried:
/// - every request: HTTP 408, 429, 503 with a `Retry-After` (the server says it did not run
///   it), and a failure to connect (the request never left);
/// - idempotent requests also: other 5xx except 501, connections lost after the request was
///   sent, and transport timeouts.
///
/// What is not: a host name that does not resolve and a failed TLS handshake (certificate,
/// protocol) fail at once; a refused connection (nothing listens on the port) is retried at
/// most twice, 100 ms and 200 ms later, so that a wrong port fails within about half a second.
/// HTTP 401/403 fail at once with [`ErrorKind::Auth`] (except one resend with a fresh OAuth
/// token, see [`AuthProvider::rejected`](crate::auth::AuthProvider::rejected)). An error after
/// the last attempt says how many attempts were made over how long, and the last cause. Before a retry the policy waits what
/// `Retry-After` asks (capped at `max_backoff`), otherwise `min_backoff · 2^(n-1)` for the n-th
/// retry plus up to a quarter of that at random, never more than `max_backoff`. It stops after
/// `max_attempts`, or when the next wait would end past `overall_timeout`; an attempt still
/// running when `overall_timeout` passes is abandoned with [`ErrorKind::Timeout`].
#[derive(Debug, Clone)]
#[non_exhaustive]
pub struct RetryPolicy {
    /// Attempts in all, the first included. Default 5.
    pub max_attempts: u32,
    /// Backoff before the first retry. Default 1 s.
    pub min_backoff: Duration,
    /// Cap of one backoff (and of an honoured `Retry-After`). Default 60 s.
    pub max_backoff: Duration,
    /// Overall deadline across all attempts of one request. Default 900 s.
    pub overall_timeout: Duration,
}

impl Default for RetryPolicy {
    fn default() -> Self {
        RetryPolicy {
            max_attempts: 5,
            min_backoff: Duration::from_secs(1),
            max_backoff: Duration::from_secs(60),
            overall_timeout: Duration::from_secs(900),
        }
    }
}

/// Response headers in which Databricks explains a failed request, first found wins.
const REASON_HEADERS: [&str; 3] = [
    "x-thriftserver-error-message",
    "x-databricks-error-or-redirect-message",
    "x-databricks-reason-phrase",
];

/// The longest server reason quoted in an error message, in characters.
const MAX_REASON_CHARS: usize = 300;

impl RetryPolicy {
    /// This policy with `attempts` attempts in all, the first included (at least 1 is made).
    ///
    /// ```
    /// use std::time::Duration;
    /// use databricks_sql::http::RetryPolicy;
    /// let policy = RetryPolicy::default()
    ///     .with_max_attempts(3)
    ///     .with_backoff(Duration::from_millis(100), Duration::from_secs(5))
    ///     .with_overall_timeout(Duration::from_secs(60));
    /// assert_eq!(policy.max_attempts, 3);
    /// ```
    #[must_use]
    pub fn with_max_attempts(mut self, attempts: u32) -> Self {
        self.max_attempts = attempts;
        self
    }

    /// This policy with backoffs from `min` (before the first retry) up to `max` (the cap of one
    /// backoff and of an honoured `Retry-After`).
    #[must_use]
    pub fn with_backoff(mut self, min: Duration, max: Duration) -> Self {
        self.min_backoff = min;
        self.max_backoff = max;
        self
    }

    /// This policy with `timeout` as the overall deadline across all attempts of one request.
    #[must_use]
    pub fn with_overall_timeout(mut self, timeout: Duration) -> Self {
        self.overall_timeout = timeout;
        self
    }

    /// Send `request`, retrying per the policy. Returns the response only for a 2xx status; any
    /// other final status becomes an [`Error`] (401/403 -> `Auth`, others `Http`) carrying the
    /// status and any `Retry-After`. `idempotent` says whether the request may be resent after a
    /// connection failure or a 5xx (ExecuteStatement is not: it is resent only on 429, or 503
    /// with Retry-After).
    pub async fn send(
        &self,
        transport: &dyn HttpTransport,
        request: HttpRequest,
        idempotent: bool,
    ) -> Result<HttpResponse> {
        let mut attempts = 0;
        self.send_counted(transport, request, idempotent, &mut attempts)
            .await
    }

    /// [`send`](Self::send), counting in `attempts` the attempts made (the first included),
    /// whatever the outcome: what telemetry reports as a call's retries.
    pub(crate) async fn send_counted(
        &self,
        transport: &dyn HttpTransport,
        request: HttpRequest,
        idempotent: bool,
        attempts: &mut u32,
    ) -> Result<HttpResponse> {
        let mut call = Call::new(request, idempotent);
        call.attempts = Some(attempts);
        self.run(transport, call).await
    }

    /// [`send`](Self::send) with the `Authorization` header asked of `auth` before each attempt,
    /// so that a token refreshed meanwhile is the one sent. When the server answers 401 and
    /// `auth` says a fresh header may succeed ([`AuthProvider::rejected`]), the request is sent
    /// once more at once with the fresh header (also a request that must not run twice: a
    /// refused request did not run). Attempts are counted in `attempts` when given.
    pub(crate) async fn send_authenticated(
        &self,
        transport: &dyn HttpTransport,
        request: HttpRequest,
        idempotent: bool,
        auth: &dyn AuthProvider,
        attempts: Option<&mut u32>,
    ) -> Result<HttpResponse> {
        let mut call = Call::new(request, idempotent);
        call.auth = Some(auth);
        call.attempts = attempts;
        self.run(transport, call).await
    }

    /// [`send`](Self::send), except that a final answer with a status that is not retried (or
    /// no longer: attempts or time are up) is returned as `Ok`, for callers that read the
    /// body of a refusal (an OAuth token endpoint's error). Transport failures are still errors.
    pub(crate) async fn send_returning_status(
        &self,
        transport: &dyn HttpTransport,
        request: HttpRequest,
        idempotent: bool,
    ) -> Result<HttpResponse> {
        let mut call = Call::new(request, idempotent);
        call.return_status = true;
        self.run(transport, call).await
    }

    /// The one retry loop.
    async fn run(
        &self,
        transport: &dyn HttpTransport,
        mut call: Call<'_, '_>,
    ) -> Result<HttpResponse> {
        let started = Instant::now();
        let deadline = crate::time::after(started, self.overall_timeout);
        let mut max_attempts = self.max_attempts.max(1);
        let mut jitter = Jitter::new();
        let backoff = self.backoff();
        let mut attempt: u32 = 0;
        // The 401 retry with a fresh credential is made at most once per request.
        let mut reauthenticated = false;
        let mut refusals = 0;
        loop {
            attempt += 1;
            if let Some(attempts) = call.attempts.as_deref_mut() {
                *attempts = attempt;
            }
            let mut request = call.request.clone();
            let mut sent_authorization = None;
            if let Some(auth) = call.auth {
                if let Some(value) = auth.authorization().await? {
                    request.headers.insert(AUTHORIZATION, value.clone());
                    sent_authorization = Some(value);
                }
            }
            let remaining = deadline.saturating_duration_since(Instant::now());
            let outcome = tokio::time::timeout(remaining, transport.send(request)).await;
            let (failure, response) = match outcome {
                Err(_) => {
                    return Err(Error::new(
                        ErrorKind::Timeout,
                        format!(
                            "no response within the overall timeout of {}{}",
                            fmt_duration(self.overall_timeout),
                            attempts_note(attempt)
                        ),
                    ));
                }
                Ok(Ok(response)) if response.status.is_success() => return Ok(response),
                Ok(Ok(response)) => (
                    Failure::Status {
                        status: response.status,
                        retry_after: parse_retry_after(&response.headers, SystemTime::now()),
                        reason: server_reason(&response.headers),
                    },
                    Some(response),
                ),
                Ok(Err(error)) => (Failure::Transport(error), None),
            };

            if let (Some(auth), Some(rejected), Failure::Status { status, .. }) =
                (call.auth, &sent_authorization, &failure)
            {
                if *status == StatusCode::UNAUTHORIZED
                    && !reauthenticated
                    && auth.rejected(rejected)
                {
                    // The resend with a fresh credential does not count against the attempts.
                    reauthenticated = true;
                    max_attempts = max_attempts.saturating_add(1);
                    tracing::debug!(attempt, "HTTP 401: retrying once with a fresh credential");
                    continue;
                }
            }
            let give_up = |failure: Failure, note: String| match (call.return_status, response) {
                (true, Some(response)) => Ok(response),
                _ => Err(failure.into_error(note)),
            };
            if !failure.is_retryable(call.idempotent) {
                return give_up(failure, attempts_note(attempt));
            }
            let refused = failure.connect_failure() == Some(ConnectFailure::Refused);
            if refused {
                refusals += 1;
            }
            if attempt >= max_attempts || refusals > REFUSED_RETRIES {
                return give_up(
                    failure,
                    format!(
                        " (gave up after {attempt} attempts over {})",
                        fmt_duration(started.elapsed())
                    ),
                );
            }
            let wait = if refused {
                REFUSED_BACKOFF.delay(refusals, &mut jitter)
            } else {
                backoff.delay_or(attempt, failure.retry_after(), &mut jitter)
            };
            if crate::time::from_now(wait) > deadline {
                return give_up(
                    failure,
                    format!(
                        " (gave up after {attempt} attempts: the next retry would pass the \
                         overall timeout of {})",
                        fmt_duration(self.overall_timeout)
                    ),
                );
            }
            match &failure {
                Failure::Status { status, .. } => tracing::debug!(
                    attempt,
                    status = status.as_u16(),
                    wait_ms = wait.as_millis() as u64,
                    "retrying HTTP request"
                ),
                Failure::Transport(error) => tracing::debug!(
                    attempt,
                    error_kind = ?error.kind(),
                    wait_ms = wait.as_millis() as u64,
                    "retrying HTTP request"
                ),
            }
            tokio::time::sleep(wait).await;
        }
    }

    /// The policy's backoff: `min_backoff` doubling to `max_backoff`, up to a quarter more at
    /// random.
    fn backoff(&self) -> Backoff {
        Backoff::new(self.min_backoff, self.max_backoff)
    }
}

/// How often a refused connection (nothing listens on the port) is retried, whatever the
/// attempt limit: twice, 100 ms and then 200 ms (up to a quarter more) later, so that a wrong
/// port fails within about half a second while a server restarting its listener gets a chance.
const REFUSED_RETRIES: u32 = 2;
const REFUSED_BACKOFF: Backoff =
    Backoff::new(Duration::from_millis(100), Duration::from_millis(250));

/// One request through [`RetryPolicy::run`] and how to send it.
struct Call<'a, 'c> {
    request: HttpRequest,
    idempotent: bool,
    /// Asked for the `Authorization` header before each attempt.
    auth: Option<&'a dyn AuthProvider>,
    /// Where the attempts made are counted.
    attempts: Option<&'c mut u32>,
    /// Return a final refusal's response instead of an error.
    return_status: bool,
}

impl Call<'_, '_> {
    fn new(request: HttpRequest, idempotent: bool) -> Self {
        Call {
            request,
            idempotent,
            auth: None,
            attempts: None,
            return_status: false,
        }
    }
}

/// Why one attempt failed.
enum Failure {
    /// The server answered with a status other than 2xx.
    Status {
        status: StatusCode,
        retry_after: Option<Duration>,
        reason: Option<String>,
    },
    /// The transport failed (connection, timeout...).
    Transport(Error),
}

impl Failure {
    fn is_retryable(&self, idempotent: bool) -> bool {
        match self {
            Failure::Status {
                status,
                retry_after,
                ..
            } => match status_retry(status.as_u16(), retry_after.is_some()) {
                StatusRetry::NotRun => true,
                StatusRetry::MayHaveRun => idempotent,
                StatusRetry::Never => false,
            },
            Failure::Transport(error) => {
                error.is_retryable() && (idempotent || error.was_never_sent())
            }
        }
    }

    fn connect_failure(&self) -> Option<ConnectFailure> {
        match self {
            Failure::Status { .. } => None,
            Failure::Transport(error) => error.connect_failure(),
        }
    }

    fn retry_after(&self) -> Option<Duration> {
        match self {
            Failure::Status { retry_after, .. } => *retry_after,
            Failure::Transport(_) => None,
        }
    }

    /// The final error; `note` is appended to the message (attempt count and why we stopped).
    fn into_error(self, note: String) -> Error {
        match self {
            Failure::Status {
                status,
                retry_after,
                reason,
            } => {
                let mut message = format!("the server answered HTTP {}", status.as_u16());
                if let Some(text) = status.canonical_reason() {
                    message.push_str(&format!(" {text}"));
                }
                message.push_str(&note);
                if let Some(reason) = reason {
                    message.push_str(&format!(": {reason}"));
                }
                Error::from_http_status(status.as_u16(), message).with_retry_after(retry_after)
            }
            Failure::Transport(error) if note.is_empty() => error,
            Failure::Transport(error) => error.with_message_suffix(&note),
        }
    }
}

/// ` (after N attempts)` when there was more than one.
fn attempts_note(attempt: u32) -> String {
    if attempt > 1 {
        format!(" (after {attempt} attempts)")
    } else {
        String::new()
    }
}

/// The server's own explanation of a failed request, from the Databricks reason headers,
/// shortened and stripped of control characters.
fn server_reason(headers: &HeaderMap) -> Option<String> {
    let value = REASON_HEADERS
        .iter()
        .filter_map(|name| headers.get(*name))
        .find_map(|v| {
            let text = String::from_utf8_lossy(v.as_bytes());
            let text = text.trim();
            (!text.is_empty()).then(|| text.to_string())
        })?;
    let mut clean: String = value
        .chars()
        .map(|c| if c.is_control() { ' ' } else { c })
        .take(MAX_REASON_CHARS)
        .collect();
    if value.chars().count() > MAX_REASON_CHARS {
        clean.push('…');
    }
    Some(clean)
}

#[cfg(test)]
mod tests;
