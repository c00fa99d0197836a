//! The driver's one error type: an opaque [`Error`] with a [`kind`](Error::kind), what the server
//! said (SQLSTATE, error code, display message), and where it happened (session / statement id).
//!
//! An `Error` never carries a token or the query string of a URL: messages are built by the driver
//! itself, and every URL that goes into one passes through [`redact_url`] first.

use std::fmt;
use std::time::Duration;

/// A `Result` whose error is the driver's [`Error`].
pub type Result<T, E = Error> = std::result::Result<T, E>;

/// What kind of failure an [`Error`] is. New kinds may be added in minor releases.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
#[non_exhaustive]
pub enum ErrorKind {
    /// The client was configured with invalid or missing settings (host, path, token...). Not retried.
    Config,
    /// The server refused the credentials (HTTP 401/403), an auth provider failed, or an HTTP
    /// proxy wants other credentials (407). Not retried.
    Auth,
    /// The server answered with an HTTP status other than 200 that no other kind covers.
    /// Retried on 408, 429 and 503 with `Retry-After` (the request did not run); on other 5xx
    /// except 501 only when the request may run twice (not ExecuteStatement or OpenSession).
    Http,
    /// The connection could not be made or broke (refused, reset, DNS, TLS, a proxy that
    /// refused the tunnel). Retried when no connection was made, or when the request may run
    /// twice; except a host name that does not resolve and a failed TLS handshake (never
    /// retried) and a refused connection (retried twice within about half a second).
    Connect,
    /// A connect or request timeout of the transport elapsed. Retried when the request may run
    /// twice, or when the connection was never made. Also the wait or create timeout of a
    /// session pool (feature `pool`), which is not retried.
    Timeout,
    /// The reply could not be understood: malformed Thrift, an unexpected message, a missing field,
    /// a Thrift application exception. Not retried.
    Protocol,
    /// The server ran the request and reported an error (a `TStatus` of ERROR or an operation that
    /// ended in the ERROR state); see [`Error::sql_state`]. Not retried.
    Server,
    /// The server no longer knows the session or operation handle. Not retried.
    InvalidHandle,
    /// The statement was cancelled, by [`Operation::cancel`](crate::Operation::cancel) or by the
    /// server. Not retried.
    Cancelled,
    /// The statement ran longer than its query timeout (the server's TIMEDOUT state). Not retried.
    QueryTimeout,
    /// The result data could not be decoded (Arrow IPC, LZ4, column conversion) or did not match
    /// what the server announced (row counts, offsets); or a value did not convert into the
    /// Rust type a typed row asked for (see [`rows`](crate::rows): a type mismatch, a NULL into
    /// a type other than `Option`, a missing column). Not retried.
    Decode,
    /// A CloudFetch file download failed after its retries and link refreshes (the downloads
    /// themselves are retried like idempotent requests). Not retried further.
    CloudFetch,
    /// The client, session or operation was already closed. Not retried.
    Closed,
    /// The file transfer of a staging statement (`PUT`, `GET` or `REMOVE` of a Unity Catalog
    /// volume file) failed: the presigned URL answered an error status (see
    /// [`Error::http_status`]), the local file could not be read or written, or the transfer
    /// was cut short. Transient failures were already retried like idempotent requests; not
    /// retried further.
    Staging,
}

impl ErrorKind {
    fn describe(self) -> &'static str {
        match self {
            ErrorKind::Config => "invalid configuration",
            ErrorKind::Auth => "authentication failed",
            ErrorKind::Http => "HTTP error",
            ErrorKind::Connect => "connection failed",
            ErrorKind::Timeout => "request timed out",
            ErrorKind::Protocol => "protocol error",
            ErrorKind::Server => "server error",
            ErrorKind::InvalidHandle => "invalid handle",
            ErrorKind::Cancelled => "statement cancelled",
            ErrorKind::QueryTimeout => "query timed out",
            ErrorKind::Decode => "result decoding failed",
            ErrorKind::CloudFetch => "CloudFetch download failed",
            ErrorKind::Closed => "already closed",
            ErrorKind::Staging => "staging transfer failed",
        }
    }
}

/// The driver's error: see [`ErrorKind`] for the kinds and which of them are retried.
///
/// `Display` gives the kind, the message and, where known, the HTTP status, SQLSTATE and
/// statement id. A cause is given once: either the message names it (a network failure's root
/// cause, e.g. `Connection refused`; the last cause after retries) and
/// [`source`](std::error::Error::source) is `None`, or the message leaves it out and `source`
/// returns it. Error reports that print the whole chain never show a cause twice.
pub struct Error {
    inner: Box<Inner>,
}

struct Inner {
    kind: ErrorKind,
    message: String,
    sql_state: Option<String>,
    error_code: Option<i32>,
    display_message: Option<String>,
    http_status: Option<u16>,
    retry_after: Option<Duration>,
    session_id: Option<String>,
    statement_id: Option<String>,
    source: Option<Box<dyn std::error::Error + Send + Sync + 'static>>,
    /// The request never reached the server (no connection was made), so sending it again
    /// cannot run anything twice.
    never_sent: bool,
    /// Why no connection could be made, when the reason decides about retrying.
    connect_failure: Option<ConnectFailure>,
    /// The server answered with a Thrift application exception (it could not process the call
    /// at all, e.g. a request field it requires was missing or had a value it does not know).
    application_exception: bool,
}

/// Why a connection could not be made, where that decides whether trying again can help.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum ConnectFailure {
    /// The host name does not resolve (no such host): never retried.
    HostNotFound,
    /// Nothing listens on the port: retried only briefly.
    Refused,
    /// The TLS handshake failed (an untrusted certificate, no common protocol): never retried.
    Tls,
}

impl Error {
    /// A new error of `kind` with a message saying what failed. Crate-internal constructor.
    pub(crate) fn new(kind: ErrorKind, message: impl Into<String>) -> Self {
        Error {
            inner: Box::new(Inner {
                kind,
                message: message.into(),
                sql_state: None,
                error_code: None,
                display_message: None,
                http_status: None,
                retry_after: None,
                session_id: None,
                statement_id: None,
                source: None,
                never_sent: false,
                connect_failure: None,
                application_exception: false,
            }),
        }
    }

    /// Marks the error as one of a request that never reached the server (see
    /// [`was_never_sent`](Self::was_never_sent)).
    pub(crate) fn never_sent(mut self) -> Self {
        self.inner.never_sent = true;
        self
    }

    /// Whether the failed request never reached the server: no connection could be made, so
    /// even a request that must not run twice (ExecuteStatement) may be sent again.
    pub(crate) fn was_never_sent(&self) -> bool {
        self.inner.never_sent
    }

    /// Marks the error as a Thrift application exception the server answered with.
    pub(crate) fn application_exception(mut self) -> Self {
        self.inner.application_exception = true;
        self
    }

    /// Whether the server answered with a Thrift application exception.
    pub(crate) fn is_application_exception(&self) -> bool {
        self.inner.application_exception
    }

    /// The same error, saying why no connection could be made.
    pub(crate) fn with_connect_failure(mut self, failure: Option<ConnectFailure>) -> Self {
        self.inner.connect_failure = failure;
        self
    }

    /// Why no connection could be made, when known.
    pub(crate) fn connect_failure(&self) -> Option<ConnectFailure> {
        self.inner.connect_failure
    }

    pub(crate) fn config(message: impl Into<String>) -> Self {
        Self::new(ErrorKind::Config, message)
    }

    /// An [`ErrorKind::Auth`] error with `message`: what an application's own credential
    /// source (a [`TokenProviderAuth`](crate::auth::TokenProviderAuth) function, an
    /// [`AuthProvider`](crate::auth::AuthProvider)) returns when it has no credential to give.
    /// The message must not contain the credential.
    pub fn auth(message: impl Into<String>) -> Self {
        Self::new(ErrorKind::Auth, message)
    }

    pub(crate) fn protocol(message: impl Into<String>) -> Self {
        Self::new(ErrorKind::Protocol, message)
    }

    pub(crate) fn decode(message: impl Into<String>) -> Self {
        Self::new(ErrorKind::Decode, message)
    }

    pub(crate) fn closed(message: impl Into<String>) -> Self {
        Self::new(ErrorKind::Closed, message)
    }

    /// An error for an HTTP reply with a non-200 status. 401/403 are [`ErrorKind::Auth`].
    pub(crate) fn from_http_status(status: u16, message: impl Into<String>) -> Self {
        let kind = if status == 401 || status == 403 {
            ErrorKind::Auth
        } else {
            ErrorKind::Http
        };
        let mut e = Self::new(kind, message);
        e.inner.http_status = Some(status);
        e
    }

    /// This error with `source` as its cause (the mock warehouse's errors keep theirs).
    #[cfg(any(test, feature = "mock"))]
    pub(crate) fn with_source(
        mut self,
        source: impl Into<Box<dyn std::error::Error + Send + Sync + 'static>>,
    ) -> Self {
        self.inner.source = Some(source.into());
        self
    }

    pub(crate) fn with_sql_state(mut self, sql_state: Option<String>) -> Self {
        self.inner.sql_state = sql_state.filter(|s| !s.is_empty());
        self
    }

    pub(crate) fn with_error_code(mut self, code: Option<i32>) -> Self {
        self.inner.error_code = code;
        self
    }

    pub(crate) fn with_display_message(mut self, message: Option<String>) -> Self {
        self.inner.display_message = message.filter(|s| !s.is_empty());
        self
    }

    /// The same error, reporting `status` as its HTTP status.
    pub(crate) fn with_http_status(mut self, status: Option<u16>) -> Self {
        self.inner.http_status = status;
        self
    }

    /// The same error with `: <cause>` appended to its message: for causes whose text is all
    /// that matters (no `source()` then, so that the cause is told once).
    pub(crate) fn with_cause(self, cause: &dyn fmt::Display) -> Self {
        self.with_message_suffix(&format!(": {cause}"))
    }

    /// Append `suffix` to the message (e.g. how many attempts were made), keeping everything else.
    pub(crate) fn with_message_suffix(mut self, suffix: &str) -> Self {
        self.inner.message.push_str(suffix);
        self
    }

    pub(crate) fn with_retry_after(mut self, after: Option<Duration>) -> Self {
        self.inner.retry_after = after;
        self
    }

    /// Attach the session id, unless one is already attached.
    pub(crate) fn with_session_id(mut self, id: impl Into<String>) -> Self {
        if self.inner.session_id.is_none() {
            self.inner.session_id = Some(id.into());
        }
        self
    }

    /// Attach the statement id, unless one is already attached.
    pub(crate) fn with_statement_id(mut self, id: impl Into<String>) -> Self {
        if self.inner.statement_id.is_none() {
            self.inner.statement_id = Some(id.into());
        }
        self
    }

    /// What kind of error this is.
    pub fn kind(&self) -> ErrorKind {
        self.inner.kind
    }

    /// The message the driver wrote for this error (without kind, SQLSTATE or ids).
    pub fn message(&self) -> &str {
        &self.inner.message
    }

    /// The SQLSTATE the server reported, e.g. `42P01` for an unknown table.
    pub fn sql_state(&self) -> Option<&str> {
        self.inner.sql_state.as_deref()
    }

    /// The server's numeric error code, when it sent one.
    pub fn error_code(&self) -> Option<i32> {
        self.inner.error_code
    }

    /// The server's message meant for end users, when it sent one.
    pub fn display_message(&self) -> Option<&str> {
        self.inner.display_message.as_deref()
    }

    /// The HTTP status of the reply that caused this error, if there was one.
    pub fn http_status(&self) -> Option<u16> {
        self.inner.http_status
    }

    /// How long the server asked the client to wait (`Retry-After`), if it did.
    pub fn retry_after(&self) -> Option<Duration> {
        self.inner.retry_after
    }

    /// The session this error happened in, when known (UUID text).
    pub fn session_id(&self) -> Option<&str> {
        self.inner.session_id.as_deref()
    }

    /// The statement this error happened in, when known (UUID text).
    pub fn statement_id(&self) -> Option<&str> {
        self.inner.statement_id.as_deref()
    }

    /// Whether the transport or the operation timed out.
    pub fn is_timeout(&self) -> bool {
        matches!(
            self.inner.kind,
            ErrorKind::Timeout | ErrorKind::QueryTimeout
        )
    }

    /// Whether sending the same request again may succeed: connection failures (except a host
    /// name that does not resolve and a failed TLS handshake), transport timeouts, and HTTP
    /// 408, 429 and 5xx except 501 (the driver's one table of retryable
    /// statuses; whether the driver itself resends a request also depends on whether it may
    /// run twice, see [`RetryPolicy`](crate::http::RetryPolicy)).
    pub fn is_retryable(&self) -> bool {
        match self.inner.kind {
            ErrorKind::Connect => !matches!(
                self.inner.connect_failure,
                Some(ConnectFailure::HostNotFound | ConnectFailure::Tls)
            ),
            ErrorKind::Timeout => true,
            ErrorKind::Http => self.inner.http_status.is_some_and(|status| {
                crate::http::backoff::status_retry(status, self.inner.retry_after.is_some())
                    != crate::http::backoff::StatusRetry::Never
            }),
            _ => false,
        }
    }
}

impl fmt::Display for Error {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let i = &self.inner;
        write!(f, "{}: {}", i.kind.describe(), i.message)?;
        if let Some(status) = i.http_status {
            if !i.message.contains(&status.to_string()) {
                write!(f, " (HTTP {status})")?;
            }
        }
        if let Some(state) = &i.sql_state {
            write!(f, " [SQLSTATE {state}]")?;
        }
        if let Some(id) = &i.statement_id {
            write!(f, " (statement {id})")?;
        } else if let Some(id) = &i.session_id {
            write!(f, " (session {id})")?;
        }
        Ok(())
    }
}

impl fmt::Debug for Error {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let i = &self.inner;
        let mut d = f.debug_struct("Error");
        d.field("kind", &i.kind).field("message", &i.message);
        if let Some(v) = &i.sql_state {
            d.field("sql_state", v);
        }
        if let Some(v) = &i.error_code {
            d.field("error_code", v);
        }
        if let Some(v) = &i.display_message {
            d.field("display_message", v);
        }
        if let Some(v) = &i.http_status {
            d.field("http_status", v);
        }
        if let Some(v) = &i.session_id {
            d.field("session_id", v);
        }
        if let Some(v) = &i.statement_id {
            d.field("statement_id", v);
        }
        if let Some(v) = &i.source {
            d.field("source", v);
        }
        d.finish()
    }
}

impl std::error::Error for Error {
    fn source(&self) -> Option<&(dyn std::error::Error + 'static)> {
        self.inner
            .source
            .as_ref()
            .map(|s| s.as_ref() as &(dyn std::error::Error + 'static))
    }
}

impl From<thrift::Error> for Error {
    fn from(e: thrift::Error) -> Self {
        match e {
            thrift::Error::Application(app) => Error::protocol(format!(
                "the server answered with a Thrift application exception ({:?}): {}",
                app.kind, app.message
            )),
            thrift::Error::Transport(t) => Error::protocol(format!(
                "the Thrift reply ended early or could not be read: {t}"
            )),
            thrift::Error::Protocol(p) => {
                Error::protocol(format!("the Thrift reply is malformed: {p}"))
            }
            thrift::Error::User(u) => Error::protocol(format!("Thrift error: {u}")),
        }
    }
}

impl From<arrow_schema::ArrowError> for Error {
    fn from(e: arrow_schema::ArrowError) -> Self {
        Error::decode(format!("Arrow data could not be decoded: {e}"))
    }
}

/// A URL with its query string and fragment cut off and any user info removed: presigned URLs carry
/// their credentials in the query, so this is the only form of a URL that may appear in an error,
/// a log line or telemetry.
pub fn redact_url(url: &str) -> String {
    let cut = url.find(['?', '#']).unwrap_or(url.len());
    let mut out = url[..cut].to_string();
    if let Some(scheme_end) = out.find("://") {
        let rest_start = scheme_end + 3;
        let authority_end = out[rest_start..]
            .find('/')
            .map(|i| rest_start + i)
            .unwrap_or(out.len());
        if let Some(at) = out[rest_start..authority_end].rfind('@') {
            out.replace_range(rest_start..rest_start + at + 1, "");
        }
    }
    if cut < url.len() {
        out.push_str("?REDACTED");
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_cause_is_in_source_not_repeated_in_display() {
        let io = std::io::Error::new(std::io::ErrorKind::ConnectionRefused, "refused-by-peer");
        let e = Error::new(ErrorKind::Connect, "could not connect to https://h/x").with_source(io);
        assert_eq!(
            e.to_string(),
            "connection failed: could not connect to https://h/x"
        );
        let source = std::error::Error::source(&e).expect("a source");
        assert_eq!(source.to_string(), "refused-by-peer");
    }

    #[test]
    fn redact_url_drops_query_and_user_info() {
        assert_eq!(
            redact_url("https://bucket.s3.amazonaws.com/a/b.arrow?X-Amz-Signature=abc&x=1"),
            "https://bucket.s3.amazonaws.com/a/b.arrow?REDACTED"
        );
        assert_eq!(
            redact_url("https://user:pw@host/p#frag"),
            "https://host/p?REDACTED"
        );
        assert_eq!(redact_url("http://127.0.0.1:80/x"), "http://127.0.0.1:80/x");
    }

    #[test]
    fn display_names_kind_sql_state_and_statement() {
        let e = Error::new(ErrorKind::Server, "Table or view not found: t")
            .with_sql_state(Some("42P01".into()))
            .with_statement_id("01ef-aa");
        let s = e.to_string();
        assert!(
            s.starts_with("server error: Table or view not found: t"),
            "{s}"
        );
        assert!(s.contains("[SQLSTATE 42P01]"), "{s}");
        assert!(s.contains("(statement 01ef-aa)"), "{s}");
        assert_eq!(e.sql_state(), Some("42P01"));
    }

    #[test]
    fn retryable_kinds() {
        assert!(Error::from_http_status(503, "x").is_retryable());
        assert!(Error::from_http_status(429, "x").is_retryable());
        assert!(!Error::from_http_status(501, "x").is_retryable());
        assert!(!Error::from_http_status(400, "x").is_retryable());
        assert_eq!(Error::from_http_status(401, "x").kind(), ErrorKind::Auth);
        assert!(Error::new(ErrorKind::Connect, "reset").is_retryable());
        assert!(!Error::new(ErrorKind::Server, "bad sql").is_retryable());
    }
}
