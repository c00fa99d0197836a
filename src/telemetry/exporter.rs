//! [`DatabricksTelemetryExporter`]: POSTs batches of metrics to a host's telemetry endpoint,
//! through the host's circuit breaker, with its own small retry budget and per-request timeout
//! (never the driver's long retry policy). It never fails: every problem is logged at debug
//! and the batch is dropped.

use std::sync::Arc;
use std::time::Duration;

use async_trait::async_trait;
use bytes::Bytes;

use super::aggregator::MetricsSink;
use super::circuit_breaker::CircuitBreaker;
use super::classifier::ExceptionClassifier;
use super::payload::{upload_body, LogContext, TelemetryResponse};
use super::types::{unix_millis, DriverConfiguration, TelemetryContext, TelemetryMetric};
use crate::error::{Error, ErrorKind, Result};
use crate::http::backoff::{Backoff, Jitter};
use crate::http::{HttpRequest, HttpResponse};

/// What became of one batch.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum ExportOutcome {
    /// Nothing to send.
    Empty,
    /// The server took it; `accepted` is its `numProtoSuccess`, when it said.
    Sent {
        /// Proto logs the server accepted.
        accepted: Option<i64>,
    },
    /// The circuit breaker is open: not sent.
    Rejected,
    /// Sending failed (after the retries that were allowed): dropped.
    Failed,
}

/// Exports metrics of one host.
#[derive(Debug)]
pub(crate) struct DatabricksTelemetryExporter {
    ctx: TelemetryContext,
    breaker: Arc<CircuitBreaker>,
    system: DriverConfiguration,
}

impl DatabricksTelemetryExporter {
    /// An exporter to `ctx`'s endpoint, guarded by `breaker`. Detects the running system once.
    pub(crate) fn new(ctx: TelemetryContext, breaker: Arc<CircuitBreaker>) -> Self {
        let system =
            DriverConfiguration::detect(&ctx.config.driver_name, ctx.client_app_name.clone());
        DatabricksTelemetryExporter {
            ctx,
            breaker,
            system,
        }
    }

    /// Send `metrics` as one request (plus retries). Never fails.
    pub(crate) async fn export_batch(&self, metrics: &[TelemetryMetric]) -> ExportOutcome {
        if metrics.is_empty() {
            return ExportOutcome::Empty;
        }
        let Some(permit) = self.breaker.try_acquire() else {
            tracing::debug!(
                dropped = metrics.len(),
                "telemetry: circuit breaker open, batch dropped"
            );
            return ExportOutcome::Rejected;
        };
        let config = &self.ctx.config;
        let authorization = if config.authenticated_export {
            tokio::time::timeout(config.export_timeout, self.ctx.authorization())
                .await
                .ok()
                .flatten()
        } else {
            None
        };
        let authenticated = authorization.is_some();
        let request = match self.request(metrics, authorization) {
            Ok(r) => r,
            Err(e) => {
                // Not the endpoint's fault: the permit goes back without a verdict.
                tracing::debug!(error = %e, "telemetry: batch could not be prepared, dropped");
                return ExportOutcome::Failed;
            }
        };
        let mut attempt = 0;
        let mut fresh_credential = false;
        loop {
            let mut request = request.clone();
            if authenticated && (attempt > 0 || fresh_credential) {
                // Each attempt asks for the credential again: a token may have been renewed.
                let again = tokio::time::timeout(config.export_timeout, self.ctx.authorization());
                if let Ok(Some(value)) = again.await {
                    request.headers.insert(http::header::AUTHORIZATION, value);
                }
            }
            let sent_credential = request.headers.get(http::header::AUTHORIZATION).cloned();
            let error = match self.send(request).await {
                Ok(response) if response.status.is_success() => {
                    let accepted = self.accepted(&response, metrics.len());
                    tracing::debug!(
                        sent = metrics.len(),
                        authenticated,
                        attempts = attempt + 1,
                        "telemetry: batch exported"
                    );
                    permit.success();
                    return ExportOutcome::Sent { accepted };
                }
                Ok(response) => {
                    let status = response.status.as_u16();
                    // A refused OAuth token is dropped and the export sent once more with a
                    // fresh one (like every request of the driver).
                    if status == 401 && !fresh_credential {
                        if let (Some(auth), Some(sent)) = (&self.ctx.auth, &sent_credential) {
                            if auth.rejected(sent) {
                                fresh_credential = true;
                                continue;
                            }
                        }
                    }
                    Error::from_http_status(
                        status,
                        format!("telemetry export answered HTTP {status}"),
                    )
                }
                Err(e) => e,
            };
            let retry = attempt < config.max_retries
                && !ExceptionClassifier::is_terminal(&error)
                && ExceptionClassifier::is_retryable(&error);
            if !retry {
                tracing::debug!(
                    error = %error,
                    attempts = attempt + 1,
                    dropped = metrics.len(),
                    "telemetry: export failed, batch dropped"
                );
                permit.failure();
                return ExportOutcome::Failed;
            }
            let delay = self.backoff(attempt);
            tracing::debug!(
                error = %error,
                attempt = attempt + 1,
                delay_ms = delay.as_millis() as u64,
                "telemetry: export failed, retrying"
            );
            tokio::time::sleep(delay).await;
            attempt += 1;
        }
    }

    fn request(
        &self,
        metrics: &[TelemetryMetric],
        authorization: Option<http::HeaderValue>,
    ) -> Result<HttpRequest> {
        let authenticated = authorization.is_some();
        let user_agent = self.ctx.user_agent(authenticated);
        let log_ctx = LogContext {
            system: &self.system,
            workspace_id: self.ctx.workspace_id(),
            user_agent: &user_agent,
            authenticated,
        };
        let body = upload_body(unix_millis(), metrics, log_ctx);
        let url = self.ctx.endpoint.export_url(authenticated);
        let uri: http::Uri = url
            .parse()
            .map_err(|_| Error::config("the telemetry endpoint is not a valid URL"))?;
        let mut request = HttpRequest::new(http::Method::POST, uri);
        request.headers = self.ctx.headers(authorization, true);
        request.body = Bytes::from(body);
        request.timeout = Some(self.ctx.config.export_timeout);
        Ok(request)
    }

    /// One attempt, bounded by the export timeout whatever the transport does.
    async fn send(&self, request: HttpRequest) -> Result<HttpResponse> {
        let timeout = self.ctx.config.export_timeout;
        match tokio::time::timeout(timeout, self.ctx.transport.send(request)).await {
            Ok(result) => result,
            Err(_) => Err(Error::new(
                ErrorKind::Timeout,
                format!(
                    "telemetry export timed out after {} ms",
                    timeout.as_millis()
                ),
            )),
        }
    }

    /// The server's `numProtoSuccess`; fewer than sent is logged.
    fn accepted(&self, response: &HttpResponse, sent: usize) -> Option<i64> {
        let parsed: TelemetryResponse = match serde_json::from_slice(&response.body) {
            Ok(r) => r,
            Err(e) => {
                tracing::debug!(error = %e, "telemetry: export answer is not the expected JSON");
                return None;
            }
        };
        let accepted = parsed.num_proto_success;
        if accepted.is_some_and(|n| n < i64::try_from(sent).unwrap_or(i64::MAX))
            || !parsed.errors.is_empty()
        {
            tracing::debug!(
                sent,
                accepted,
                errors = parsed.errors.len(),
                "telemetry: the server did not accept every log"
            );
        }
        accepted
    }

    /// Backoff before retry `attempt` (0 first): the driver's one backoff, from `min_backoff`
    /// doubling to `max_backoff`, up to a quarter more at random (defaults: 100-125 ms,
    /// 200-250 ms, 400-500 ms, 800-1000 ms, then 1000 ms).
    fn backoff(&self, attempt: u32) -> Duration {
        let config = &self.ctx.config;
        Backoff::new(config.min_backoff, config.max_backoff).delay(attempt + 1, &mut Jitter::new())
    }
}

#[async_trait]
impl MetricsSink for DatabricksTelemetryExporter {
    async fn export(&self, metrics: Vec<TelemetryMetric>) {
        self.export_batch(&metrics).await;
    }
}

#[cfg(test)]
mod tests {
    use std::sync::Mutex;

    use tokio::time::Instant;

    use super::*;
    use crate::http::MockHttpTransport;
    use crate::telemetry::circuit_breaker::{CircuitBreakerConfig, CircuitState};
    use crate::telemetry::emitter::error_details;
    use crate::telemetry::payload::{TelemetryFrontendLog, TelemetryRequest};
    use crate::telemetry::test_support::{capture_logs, context, response, GatedTransport};
    use crate::telemetry::types::{
        ConnectionParameters, MetricKind, OperationType, StatementAggregate, TelemetryConfiguration,
    };

    const HOST: &str = "adb-1.azuredatabricks.net";

    fn metric(statement: &str) -> TelemetryMetric {
        TelemetryMetric {
            kind: MetricKind::Statement,
            timestamp_millis: 1_700_000_000_000,
            session_id: Some("sess-1".into()),
            statement_id: Some(statement.into()),
            connection: Some(Arc::new(ConnectionParameters {
                http_path: "/sql/1.0/warehouses/abc".into(),
                host_url: format!("https://{HOST}"),
                port: 443,
                auth_type: "pat".into(),
                ..Default::default()
            })),
            operation_type: OperationType::ExecuteStatement,
            latency: Some(Duration::from_millis(10)),
            statement: Some(StatementAggregate::new(
                OperationType::ExecuteStatement,
                Instant::now(),
            )),
            error: None,
        }
    }

    /// A mock that records every request and answers them with `statuses` in turn (the last
    /// one repeats).
    fn recording(statuses: &[u16]) -> (Arc<MockHttpTransport>, Arc<Mutex<Vec<HttpRequest>>>) {
        let seen = Arc::new(Mutex::new(Vec::new()));
        let statuses = statuses.to_vec();
        let mut t = MockHttpTransport::new();
        let log = seen.clone();
        t.expect_send().returning(move |r| {
            let n = log.lock().map(|mut l| {
                l.push(r);
                l.len()
            });
            let n = n.unwrap_or(1);
            let status = statuses[(n - 1).min(statuses.len() - 1)];
            Ok(response(
                status,
                r#"{"errors":[],"numSuccess":0,"numProtoSuccess":2}"#,
            ))
        });
        (Arc::new(t), seen)
    }

    fn exporter_with(ctx: TelemetryContext) -> (DatabricksTelemetryExporter, Arc<CircuitBreaker>) {
        let breaker = Arc::new(CircuitBreaker::new(
            HOST,
            CircuitBreakerConfig::from(&ctx.config),
        ));
        (
            DatabricksTelemetryExporter::new(ctx, breaker.clone()),
            breaker,
        )
    }

    fn sent(seen: &Arc<Mutex<Vec<HttpRequest>>>) -> Vec<HttpRequest> {
        seen.lock().map(|s| s.clone()).unwrap_or_default()
    }

    fn logs_of(request: &HttpRequest) -> (TelemetryRequest, Vec<TelemetryFrontendLog>) {
        let body: TelemetryRequest = serde_json::from_slice(&request.body).expect("request JSON");
        let logs = body
            .proto_logs
            .iter()
            .map(|l| serde_json::from_str(l).expect("frontend log JSON"))
            .collect();
        (body, logs)
    }

    #[tokio::test(start_paused = true)]
    async fn posts_to_the_authenticated_endpoint_with_the_payload_shape() {
        let (t, seen) = recording(&[200]);
        let (exporter, _) = exporter_with(context(HOST, t));
        let outcome = exporter.export_batch(&[metric("q1"), metric("q2")]).await;
        assert_eq!(outcome, ExportOutcome::Sent { accepted: Some(2) });
        let requests = sent(&seen);
        assert_eq!(requests.len(), 1);
        let r = &requests[0];
        assert_eq!(r.method, http::Method::POST);
        assert_eq!(r.url.to_string(), format!("https://{HOST}/telemetry-ext"));
        assert_eq!(r.headers["authorization"], "Bearer dapi-test");
        assert_eq!(r.headers["content-type"], "application/json");
        assert_eq!(r.headers["x-databricks-org-id"], "6051921418418893");
        assert_eq!(r.timeout, Some(Duration::from_secs(10)));
        let raw: serde_json::Value = serde_json::from_slice(&r.body).expect("JSON");
        assert_eq!(raw["items"], serde_json::json!([]));
        assert!(raw["uploadTime"].as_i64().is_some_and(|t| t > 0));
        let (_, logs) = logs_of(r);
        assert_eq!(logs.len(), 2);
        assert_eq!(logs[0].workspace_id, Some(6_051_921_418_418_893));
        let d = &logs[1].entry.sql_driver_log;
        assert_eq!(d.session_id.as_deref(), Some("sess-1"));
        assert_eq!(d.sql_statement_id.as_deref(), Some("q2"));
        assert_ne!(logs[0].frontend_log_event_id, logs[1].frontend_log_event_id);
    }

    #[tokio::test(start_paused = true)]
    async fn posts_to_the_unauthenticated_endpoint_without_credentials_or_ids() {
        for unauthenticated in [
            {
                let (t, seen) = recording(&[200]);
                let mut ctx = context(HOST, t);
                ctx.auth = None;
                (ctx, seen)
            },
            {
                let (t, seen) = recording(&[200]);
                let mut ctx = context(HOST, t);
                ctx.config.authenticated_export = false;
                (ctx, seen)
            },
            {
                let (t, seen) = recording(&[200]);
                let mut ctx = context(HOST, t);
                ctx.auth = Some(Arc::new(crate::telemetry::test_support::FailingAuth));
                (ctx, seen)
            },
        ] {
            let (ctx, seen) = unauthenticated;
            let (exporter, _) = exporter_with(ctx);
            exporter.export_batch(&[metric("q1")]).await;
            let r = sent(&seen).remove(0);
            assert_eq!(
                r.url.to_string(),
                format!("https://{HOST}/telemetry-unauth")
            );
            assert!(r.headers.get("authorization").is_none());
            assert!(r.headers.get("x-databricks-org-id").is_none());
            let (_, logs) = logs_of(&r);
            assert_eq!(logs[0].workspace_id, None);
            assert_eq!(logs[0].entry.sql_driver_log.session_id, None);
        }
    }

    #[tokio::test(start_paused = true)]
    async fn retries_retryable_errors_with_backoff() {
        let (t, seen) = recording(&[503, 429, 200]);
        let (exporter, breaker) = exporter_with(context(HOST, t));
        let t0 = Instant::now();
        let outcome = exporter.export_batch(&[metric("q1")]).await;
        assert!(matches!(outcome, ExportOutcome::Sent { .. }));
        assert_eq!(sent(&seen).len(), 3);
        let waited = Instant::now() - t0;
        assert!(
            waited >= Duration::from_millis(300) && waited <= Duration::from_millis(450),
            "two backoffs of 100-150 and 200-300 ms, got {waited:?}"
        );
        assert_eq!(breaker.consecutive_failures(), 0);
    }

    #[tokio::test(start_paused = true)]
    async fn does_not_retry_terminal_errors() {
        for status in [400, 401, 403, 404] {
            let (t, seen) = recording(&[status, 200]);
            let (exporter, breaker) = exporter_with(context(HOST, t));
            assert_eq!(
                exporter.export_batch(&[metric("q1")]).await,
                ExportOutcome::Failed
            );
            assert_eq!(sent(&seen).len(), 1, "{status} is not retried");
            assert_eq!(breaker.consecutive_failures(), 1);
        }
    }

    #[tokio::test(start_paused = true)]
    async fn gives_up_after_max_retries_and_counts_one_breaker_failure() {
        let (t, seen) = recording(&[500]);
        let (exporter, breaker) = exporter_with(context(HOST, t));
        assert_eq!(
            exporter.export_batch(&[metric("q1")]).await,
            ExportOutcome::Failed
        );
        assert_eq!(sent(&seen).len(), 4, "1 attempt + max_retries 3");
        assert_eq!(breaker.consecutive_failures(), 1);
    }

    #[tokio::test(start_paused = true)]
    async fn respects_the_circuit_breaker() {
        let (t, seen) = recording(&[401]);
        let mut ctx = context(HOST, t);
        ctx.config.circuit_breaker_threshold = 2;
        let (exporter, breaker) = exporter_with(ctx);
        exporter.export_batch(&[metric("q1")]).await;
        exporter.export_batch(&[metric("q1")]).await;
        assert_eq!(breaker.state(), CircuitState::Open);
        assert_eq!(
            exporter.export_batch(&[metric("q1")]).await,
            ExportOutcome::Rejected
        );
        assert_eq!(sent(&seen).len(), 2, "nothing sent while open");
        tokio::time::advance(Duration::from_secs(60)).await;
        exporter.export_batch(&[metric("q1")]).await;
        assert_eq!(sent(&seen).len(), 3, "one probe after the open timeout");
    }

    #[tokio::test(start_paused = true)]
    async fn each_attempt_times_out_after_the_export_timeout() {
        let t = GatedTransport::new(None);
        let mut ctx = context(HOST, t.clone());
        ctx.config.max_retries = 1;
        let (exporter, _) = exporter_with(ctx);
        let t0 = Instant::now();
        assert_eq!(
            exporter.export_batch(&[metric("q1")]).await,
            ExportOutcome::Failed
        );
        let waited = Instant::now() - t0;
        assert!(
            waited >= Duration::from_millis(20_100) && waited <= Duration::from_millis(20_150),
            "two 10 s timeouts and one backoff, got {waited:?}"
        );
        assert_eq!(t.requests().len(), 2, "a timeout is retryable");
    }

    #[tokio::test(start_paused = true)]
    async fn swallows_every_failure_and_logs_it_at_debug() {
        let (_guard, logs) = capture_logs();
        let mut t = MockHttpTransport::new();
        t.expect_send()
            .returning(|_| Err(Error::new(ErrorKind::Connect, "connection refused")));
        let (exporter, _) = exporter_with(context(HOST, Arc::new(t)));
        assert_eq!(
            exporter.export_batch(&[metric("q1")]).await,
            ExportOutcome::Failed
        );

        let mut t = MockHttpTransport::new();
        t.expect_send()
            .returning(|_| Ok(response(200, "<html>not json</html>")));
        let (exporter, _) = exporter_with(context(HOST, Arc::new(t)));
        assert_eq!(
            exporter.export_batch(&[metric("q1")]).await,
            ExportOutcome::Sent { accepted: None },
            "a 2xx with a garbage body still counts as delivered"
        );

        let (exporter, _) = exporter_with(context(
            "bad host with spaces",
            Arc::new(MockHttpTransport::new()),
        ));
        assert_eq!(
            exporter.export_batch(&[metric("q1")]).await,
            ExportOutcome::Failed
        );
        assert_eq!(exporter.export_batch(&[]).await, ExportOutcome::Empty);

        assert!(logs.has_debug("connection refused"), "{:?}", logs.entries());
        assert!(logs.has_debug("not the expected JSON"));
        assert!(logs.has_debug("not a valid URL"));
    }

    #[tokio::test(start_paused = true)]
    async fn reads_num_proto_success_and_logs_a_shortfall() {
        let (_guard, logs) = capture_logs();
        let mut t = MockHttpTransport::new();
        t.expect_send().returning(|_| {
            Ok(response(
                200,
                r#"{"errors":["bad log"],"numProtoSuccess":"1"}"#,
            ))
        });
        let (exporter, _) = exporter_with(context(HOST, Arc::new(t)));
        assert_eq!(
            exporter.export_batch(&[metric("q1"), metric("q2")]).await,
            ExportOutcome::Sent { accepted: Some(1) }
        );
        assert!(
            logs.has_debug("did not accept every log"),
            "{:?}",
            logs.entries()
        );
    }

    #[tokio::test(start_paused = true)]
    async fn never_sends_sql_text_tokens_or_presigned_urls() {
        let (t, seen) = recording(&[200]);
        let (exporter, _) = exporter_with(context(HOST, t));
        let mut m = metric("q1");
        m.kind = MetricKind::Error;
        m.error = Some(error_details(&Error::new(
            ErrorKind::CloudFetch,
            "GET https://bucket.s3.amazonaws.com/r/0.arrow?X-Amz-Signature=SIG123 failed; Authorization: Bearer dapi0123456789abcdef0123456789abcdef",
        )));
        let mut s = metric("q2");
        s.error = Some(error_details(
            &Error::new(
                ErrorKind::Server,
                "cannot resolve column in SELECT ssn FROM customers",
            )
            .with_sql_state(Some("42703".into())),
        ));
        exporter.export_batch(&[m, s]).await;
        let body = String::from_utf8_lossy(&sent(&seen)[0].body).into_owned();
        for secret in [
            "SIG123",
            "X-Amz-Signature",
            "dapi0123456789abcdef",
            "SELECT",
            "ssn",
            "customers",
        ] {
            assert!(!body.contains(secret), "{secret} leaked: {body}");
        }
        assert!(body.contains("SQLSTATE 42703"), "{body}");
        assert!(body.contains("CloudFetch"), "{body}");
    }

    #[tokio::test(start_paused = true)]
    async fn backoff_stays_within_the_configured_bounds() {
        let (exporter, _) = exporter_with(context(HOST, Arc::new(MockHttpTransport::new())));
        let c = TelemetryConfiguration::default();
        for attempt in 0..10 {
            for _ in 0..20 {
                let d = exporter.backoff(attempt);
                assert!(
                    d >= c.min_backoff && d <= c.max_backoff,
                    "attempt {attempt}: {d:?}"
                );
            }
        }
        assert!(exporter.backoff(0) <= Duration::from_millis(150));
        assert!(exporter.backoff(3) >= Duration::from_millis(800));
    }
}
