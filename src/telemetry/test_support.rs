//! Test doubles shared by the telemetry unit tests: canned HTTP responses, credentials, a
//! transport that answers only when told to, and a capture of `tracing` output.

use std::fmt::Write as _;
use std::sync::{Arc, Mutex};

use async_trait::async_trait;
use bytes::Bytes;
use http::HeaderValue;
use tokio::sync::Semaphore;

use super::types::{TelemetryContext, TelemetryEndpoint};
use crate::auth::AuthProvider;
use crate::error::{Error, ErrorKind, Result};
use crate::http::{HttpRequest, HttpResponse, HttpTransport};

/// A response of `status` with `body`.
pub(crate) fn response(status: u16, body: &str) -> HttpResponse {
    HttpResponse {
        status: http::StatusCode::from_u16(status).unwrap_or(http::StatusCode::IM_A_TEAPOT),
        headers: http::HeaderMap::new(),
        body: Bytes::from(body.to_string()),
    }
}

/// The feature-flag answer with the Rust flag set to `value`.
pub(crate) fn flag_response(value: &str, ttl_seconds: Option<i64>) -> HttpResponse {
    let ttl = ttl_seconds
        .map(|t| format!(r#","ttl_seconds":{t}"#))
        .unwrap_or_default();
    response(
        200,
        &format!(
            r#"{{"flags":[{{"name":"databricks.partnerplatform.clientConfigsFeatureFlags.enableTelemetryForRust","value":"{value}"}}]{ttl}}}"#
        ),
    )
}

/// A personal access token provider with a fixed token.
#[derive(Debug)]
pub(crate) struct StaticAuth(pub &'static str);

#[async_trait]
impl AuthProvider for StaticAuth {
    async fn authorization(&self) -> Result<Option<HeaderValue>> {
        HeaderValue::from_str(&format!("Bearer {}", self.0))
            .map(Some)
            .map_err(|_| Error::config("bad token"))
    }
    fn auth_type(&self) -> &'static str {
        "pat"
    }
}

/// A provider whose every call fails.
#[derive(Debug)]
pub(crate) struct FailingAuth;

#[async_trait]
impl AuthProvider for FailingAuth {
    async fn authorization(&self) -> Result<Option<HeaderValue>> {
        Err(Error::new(ErrorKind::Auth, "token refresh failed"))
    }
    fn auth_type(&self) -> &'static str {
        "oauth-m2m"
    }
}

/// A context for `host` over `transport`, authenticated with token `dapi-test`.
pub(crate) fn context(host: &str, transport: Arc<dyn HttpTransport>) -> TelemetryContext {
    let mut ctx = TelemetryContext::new(TelemetryEndpoint::for_host(host), transport);
    ctx.auth = Some(Arc::new(StaticAuth("dapi-test")));
    ctx.org_id = Some("6051921418418893".into());
    ctx
}

/// A transport that records requests and answers each with `reply` only once a permit is
/// released with [`GatedTransport::open`]; `None` as reply never answers.
#[derive(Debug)]
pub(crate) struct GatedTransport {
    gate: Semaphore,
    reply: Option<(u16, String)>,
    requests: Mutex<Vec<HttpRequest>>,
}

impl GatedTransport {
    pub(crate) fn new(reply: Option<(u16, String)>) -> Arc<Self> {
        Arc::new(GatedTransport {
            gate: Semaphore::new(0),
            reply,
            requests: Mutex::new(Vec::new()),
        })
    }

    /// Let `n` requests be answered.
    pub(crate) fn open(&self, n: usize) {
        self.gate.add_permits(n);
    }

    pub(crate) fn requests(&self) -> Vec<HttpRequest> {
        self.requests.lock().map(|r| r.clone()).unwrap_or_default()
    }
}

#[async_trait]
impl HttpTransport for GatedTransport {
    async fn send(&self, request: HttpRequest) -> Result<HttpResponse> {
        if let Ok(mut r) = self.requests.lock() {
            r.push(request);
        }
        let Some((status, body)) = &self.reply else {
            std::future::pending::<()>().await;
            return Err(Error::new(ErrorKind::Timeout, "never"));
        };
        let permit = self.gate.acquire().await;
        if let Ok(p) = permit {
            p.forget();
        }
        Ok(response(*status, body))
    }
}

/// Everything logged while the guard lives, as (level, rendered fields).
#[derive(Debug, Clone, Default)]
pub(crate) struct CapturedLogs(Arc<Mutex<Vec<(tracing::Level, String)>>>);

impl CapturedLogs {
    pub(crate) fn entries(&self) -> Vec<(tracing::Level, String)> {
        self.0.lock().map(|v| v.clone()).unwrap_or_default()
    }

    /// Whether any line contains `needle`, and every line is at DEBUG or TRACE.
    pub(crate) fn has_debug(&self, needle: &str) -> bool {
        let entries = self.entries();
        entries.iter().all(|(l, _)| *l >= tracing::Level::DEBUG)
            && entries.iter().any(|(_, m)| m.contains(needle))
    }
}

struct CaptureLayer(CapturedLogs);

struct Render(String);

impl tracing::field::Visit for Render {
    fn record_debug(&mut self, field: &tracing::field::Field, value: &dyn std::fmt::Debug) {
        let _ = write!(self.0, "{}={:?} ", field.name(), value);
    }
}

impl<S: tracing::Subscriber> tracing_subscriber::Layer<S> for CaptureLayer {
    fn on_event(
        &self,
        event: &tracing::Event<'_>,
        _ctx: tracing_subscriber::layer::Context<'_, S>,
    ) {
        let mut r = Render(String::new());
        event.record(&mut r);
        if let Ok(mut v) = (self.0).0.lock() {
            v.push((*event.metadata().level(), r.0));
        }
    }
}

/// Capture this thread's `tracing` events (tokio tests run their tasks on this thread).
pub(crate) fn capture_logs() -> (tracing::subscriber::DefaultGuard, CapturedLogs) {
    use tracing_subscriber::layer::SubscriberExt;
    let logs = CapturedLogs::default();
    let subscriber = tracing_subscriber::registry().with(CaptureLayer(logs.clone()));
    (tracing::subscriber::set_default(subscriber), logs)
}
