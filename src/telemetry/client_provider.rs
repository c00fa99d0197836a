//! One telemetry client per host, shared by every connection to it and reference counted:
//! [`TelemetryClientProvider`] hands out [`TelemetryHandle`]s; the first handle of a host starts
//! its [`TelemetryClient`] (one background task: feature flag, aggregator, exporter), the last
//! one to go closes it (a final flush, bounded by `close_timeout`).
//!
//! The task is isolated: a panic inside it is caught and only turns this host's telemetry off.
//! The provider's map lock is never held across I/O or an `.await`.

use std::collections::HashMap;
use std::fmt;
use std::panic::AssertUnwindSafe;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, Mutex, MutexGuard, OnceLock, PoisonError};
use std::time::Duration;

use async_trait::async_trait;
use futures::FutureExt;
use tokio::sync::oneshot;
use tokio::task::JoinHandle;

use super::aggregator::{EnabledCheck, MetricsAggregator};
use super::circuit_breaker::{CircuitBreakerConfig, CircuitBreakerRegistry};
use super::emitter::{event_queue, EmitGate, EventSender, TelemetryEventEmitter};
use super::exporter::DatabricksTelemetryExporter;
use super::feature_flag::FeatureFlagCache;
use super::types::{ConnectionParameters, TelemetryContext};

fn lock<T>(m: &Mutex<T>) -> MutexGuard<'_, T> {
    // Every critical section here leaves the data consistent, so a poisoned lock is usable.
    m.lock().unwrap_or_else(PoisonError::into_inner)
}

/// The feature flag of one host, as the aggregator's loop asks for it.
struct HostFlag {
    flags: Arc<FeatureFlagCache>,
    host: String,
    ctx: TelemetryContext,
}

#[async_trait]
impl EnabledCheck for HostFlag {
    async fn telemetry_enabled(&self) -> bool {
        self.flags.is_telemetry_enabled(&self.host, &self.ctx).await
    }
}

/// The telemetry of one host: the queue into its background task and the means to stop it.
pub(crate) struct TelemetryClient {
    host: String,
    sender: EventSender,
    gate: Arc<EmitGate>,
    dropped: Arc<AtomicU64>,
    stop: Mutex<Option<oneshot::Sender<()>>>,
    task: Mutex<Option<JoinHandle<()>>>,
    close_timeout: Duration,
    flags: Arc<FeatureFlagCache>,
}

impl fmt::Debug for TelemetryClient {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("TelemetryClient")
            .field("host", &self.host)
            .field("accepting", &self.gate.accepts())
            .field("dropped", &self.dropped.load(Ordering::Relaxed))
            .finish_non_exhaustive()
    }
}

impl TelemetryClient {
    /// Start the telemetry of `host` on `runtime`: take a feature-flag reference, spawn the task.
    fn start(
        host: &str,
        ctx: TelemetryContext,
        flags: &Arc<FeatureFlagCache>,
        breakers: &CircuitBreakerRegistry,
        runtime: &tokio::runtime::Handle,
    ) -> Arc<Self> {
        let config = ctx.config.clone();
        // Woken early once a batch's worth of events waits (or half the queue, if less).
        let capacity = config.event_queue_capacity.max(1);
        let (sender, events) = event_queue(capacity, config.batch_size.min(capacity / 2));
        let (stop, stop_rx) = oneshot::channel();
        let gate = Arc::new(if config.force_enabled {
            EmitGate::open()
        } else {
            EmitGate::pending()
        });
        flags.acquire(host);
        let breaker = breakers.get_or_create(host, CircuitBreakerConfig::from(&config));
        let flag = Arc::new(HostFlag {
            flags: flags.clone(),
            host: host.to_string(),
            ctx: ctx.clone(),
        });
        let task_gate = gate.clone();
        let task_host = host.to_string();
        let close_timeout = config.close_timeout;
        let task = runtime.spawn(async move {
            let work = async move {
                let exporter = Arc::new(DatabricksTelemetryExporter::new(ctx, breaker));
                MetricsAggregator::new(&config)
                    .run(events, stop_rx, exporter, flag, task_gate.clone())
                    .await;
            };
            if AssertUnwindSafe(work).catch_unwind().await.is_err() {
                tracing::debug!(
                    host = %task_host,
                    "telemetry: the telemetry task panicked; telemetry is off for this host"
                );
            }
        });
        Arc::new(TelemetryClient {
            host: host.to_string(),
            sender,
            gate,
            dropped: Arc::new(AtomicU64::new(0)),
            stop: Mutex::new(Some(stop)),
            task: Mutex::new(Some(task)),
            close_timeout,
            flags: flags.clone(),
        })
    }

    /// An emitter into this client for a connection with `connection` parameters.
    fn emitter(&self, connection: Option<Arc<ConnectionParameters>>) -> TelemetryEventEmitter {
        TelemetryEventEmitter::new(
            self.sender.clone(),
            self.gate.clone(),
            self.dropped.clone(),
            connection,
        )
    }

    /// Whether its task has ended (stopped, panicked, or its runtime is gone).
    fn is_dead(&self) -> bool {
        self.gate.is_closed() || lock(&self.task).as_ref().is_none_or(|t| t.is_finished())
    }

    /// Ask the task to flush and stop; it bounds its last flush by `close_timeout`.
    fn begin_close(&self) {
        if let Some(stop) = lock(&self.stop).take() {
            let _ = stop.send(());
        }
    }

    /// Ask the task to stop and wait for it at most `close_timeout`, then abort it.
    async fn close(&self) {
        self.begin_close();
        let task = lock(&self.task).take();
        let Some(mut task) = task else { return };
        match tokio::time::timeout(self.close_timeout, &mut task).await {
            Ok(Ok(())) => tracing::debug!(host = %self.host, "telemetry: closed"),
            Ok(Err(e)) => {
                tracing::debug!(host = %self.host, error = %e, "telemetry: task ended abnormally")
            }
            Err(_) => {
                task.abort();
                tracing::debug!(host = %self.host, "telemetry: close timed out, task aborted");
            }
        }
    }
}

impl Drop for TelemetryClient {
    fn drop(&mut self) {
        self.begin_close();
        self.flags.release(&self.host);
    }
}

struct Holder {
    client: Arc<TelemetryClient>,
    refs: usize,
}

#[derive(Default)]
struct ProviderInner {
    clients: Mutex<HashMap<String, Holder>>,
    flags: Arc<FeatureFlagCache>,
    breakers: CircuitBreakerRegistry,
}

impl ProviderInner {
    /// Drop one reference to `client` of `host`; returns the client when that was the last.
    fn release(&self, host: &str, client: &Arc<TelemetryClient>) -> Option<Arc<TelemetryClient>> {
        let mut clients = lock(&self.clients);
        let holder = clients.get_mut(host)?;
        if !Arc::ptr_eq(&holder.client, client) {
            return None; // A replaced client: the map has moved on.
        }
        holder.refs = holder.refs.saturating_sub(1);
        if holder.refs > 0 {
            return None;
        }
        clients.remove(host).map(|h| h.client)
    }
}

/// Shares one telemetry client per host among all the connections that use this provider.
///
/// The driver uses [`TelemetryClientProvider::global()`] unless the client builder is given
/// another one, so separate clients to the same host share one background task and one
/// export stream. Give a client its own [`TelemetryClientProvider::new()`] to keep its telemetry
/// apart (in tests, for instance). Cloning is cheap and shares the same clients.
#[derive(Clone, Default)]
pub struct TelemetryClientProvider {
    inner: Arc<ProviderInner>,
}

impl fmt::Debug for TelemetryClientProvider {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("TelemetryClientProvider")
            .field("hosts", &lock(&self.inner.clients).len())
            .finish()
    }
}

impl TelemetryClientProvider {
    /// A provider of its own, sharing nothing with any other.
    pub fn new() -> Self {
        Self::default()
    }

    /// The process-wide provider that clients use by default.
    pub fn global() -> Self {
        static GLOBAL: OnceLock<TelemetryClientProvider> = OnceLock::new();
        GLOBAL.get_or_init(TelemetryClientProvider::new).clone()
    }

    /// A reference to the telemetry of `host`, starting it if this is the first one; `ctx` serves
    /// the host when it starts, and its connection parameters stamp this handle's events.
    /// Returns a disabled handle when telemetry is off in `ctx.config` or there is no tokio
    /// runtime to run it on. Never blocks and never fails.
    pub(crate) fn get_or_create(&self, host: &str, ctx: TelemetryContext) -> TelemetryHandle {
        if !ctx.config.enabled {
            return TelemetryHandle::disabled();
        }
        let Ok(runtime) = tokio::runtime::Handle::try_current() else {
            tracing::debug!(
                host,
                "telemetry: no tokio runtime, telemetry off for this client"
            );
            return TelemetryHandle::disabled();
        };
        let connection = ctx.connection.clone();
        let inner = &self.inner;
        let client = {
            let mut clients = lock(&inner.clients);
            match clients.get_mut(host) {
                Some(holder) if !holder.client.is_dead() => {
                    holder.refs += 1;
                    holder.client.clone()
                }
                _ => {
                    let client =
                        TelemetryClient::start(host, ctx, &inner.flags, &inner.breakers, &runtime);
                    clients.insert(
                        host.to_string(),
                        Holder {
                            client: client.clone(),
                            refs: 1,
                        },
                    );
                    client
                }
            }
        };
        TelemetryHandle {
            inner: Some(HandleInner {
                provider: self.inner.clone(),
                host: host.to_string(),
                client,
                connection,
            }),
        }
    }

    /// How many hosts have a telemetry client in this provider now: one per host, however many
    /// driver clients share it; it goes when the host's last client closes or is dropped.
    pub fn client_count(&self) -> usize {
        lock(&self.inner.clients).len()
    }

    #[cfg(test)]
    /// References held on `host`'s telemetry client.
    pub(crate) fn ref_count(&self, host: &str) -> usize {
        lock(&self.inner.clients).get(host).map_or(0, |h| h.refs)
    }
}

struct HandleInner {
    provider: Arc<ProviderInner>,
    host: String,
    client: Arc<TelemetryClient>,
    connection: Option<Arc<ConnectionParameters>>,
}

/// One reference to a host's telemetry, held by one driver client. Releases its reference on
/// [`close`](Self::close) (waiting, bounded, for the last flush when it was the last reference)
/// or when dropped (without waiting).
pub(crate) struct TelemetryHandle {
    inner: Option<HandleInner>,
}

impl fmt::Debug for TelemetryHandle {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match &self.inner {
            Some(i) => f
                .debug_struct("TelemetryHandle")
                .field("host", &i.host)
                .field("client", &i.client)
                .finish(),
            None => f.write_str("TelemetryHandle(disabled)"),
        }
    }
}

impl TelemetryHandle {
    /// A handle to nothing: its emitter is absent.
    pub(crate) fn disabled() -> Self {
        TelemetryHandle { inner: None }
    }

    #[cfg(test)]
    /// Whether this handle refers to a running telemetry client.
    pub(crate) fn is_enabled(&self) -> bool {
        self.inner.is_some()
    }

    /// The emitter for this handle's connection (absent when disabled).
    pub(crate) fn emitter(&self) -> TelemetryEventEmitter {
        match &self.inner {
            Some(i) => i.client.emitter(i.connection.clone()),
            None => TelemetryEventEmitter::disabled(),
        }
    }

    #[cfg(test)]
    /// Events dropped so far by this host's emitters (queue full or telemetry stopped).
    pub(crate) fn dropped_events(&self) -> u64 {
        self.inner
            .as_ref()
            .map_or(0, |i| i.client.dropped.load(Ordering::Relaxed))
    }

    /// Release the reference; when it was the host's last, flush and stop its telemetry,
    /// waiting at most `close_timeout`. Idempotent; never fails.
    pub(crate) async fn close(&mut self) {
        let Some(inner) = self.inner.take() else {
            return;
        };
        let last = inner.provider.release(&inner.host, &inner.client);
        if let Some(client) = last {
            client.close().await;
        }
    }
}

impl Drop for TelemetryHandle {
    fn drop(&mut self) {
        if let Some(inner) = self.inner.take() {
            if let Some(client) = inner.provider.release(&inner.host, &inner.client) {
                client.begin_close();
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use std::sync::Mutex as StdMutex;

    use tokio::time::Instant;

    use super::*;
    use crate::error::Error;
    use crate::http::{HttpRequest, MockHttpTransport};
    use crate::telemetry::payload::{TelemetryFrontendLog, TelemetryRequest};
    use crate::telemetry::test_support::{capture_logs, context, flag_response, response};
    use crate::telemetry::types::{OperationType, StatementCompletion};

    const HOST: &str = "adb-1.azuredatabricks.net";

    /// A transport that answers the flag with `flag` and records every export.
    fn transport(flag: &'static str) -> (Arc<MockHttpTransport>, Arc<StdMutex<Vec<HttpRequest>>>) {
        let exports = Arc::new(StdMutex::new(Vec::new()));
        let log = exports.clone();
        let mut t = MockHttpTransport::new();
        t.expect_send().returning(move |r| {
            if r.url.path().contains("feature-flags") {
                return Ok(flag_response(flag, None));
            }
            if let Ok(mut l) = log.lock() {
                l.push(r);
            }
            Ok(response(200, r#"{"numProtoSuccess":1}"#))
        });
        (Arc::new(t), exports)
    }

    fn exported_logs(exports: &Arc<StdMutex<Vec<HttpRequest>>>) -> Vec<TelemetryFrontendLog> {
        let requests = exports.lock().map(|e| e.clone()).unwrap_or_default();
        requests
            .iter()
            .flat_map(|r| {
                let body: TelemetryRequest = serde_json::from_slice(&r.body).expect("JSON body");
                body.proto_logs
                    .into_iter()
                    .map(|l| serde_json::from_str::<TelemetryFrontendLog>(&l).expect("log JSON"))
                    .collect::<Vec<_>>()
            })
            .collect()
    }

    async fn settle() {
        for _ in 0..20 {
            tokio::task::yield_now().await;
        }
    }

    #[tokio::test(start_paused = true)]
    async fn creates_one_client_per_host_shared_across_connections() {
        let provider = TelemetryClientProvider::new();
        let (t, _) = transport("true");
        let a = provider.get_or_create(HOST, context(HOST, t.clone()));
        let b = provider.get_or_create(HOST, context(HOST, t.clone()));
        let other = provider.get_or_create("other.example", context("other.example", t));
        assert_eq!(provider.client_count(), 2);
        assert_eq!(provider.ref_count(HOST), 2);
        let (Some(ia), Some(ib)) = (&a.inner, &b.inner) else {
            panic!("handles should be enabled")
        };
        assert!(
            Arc::ptr_eq(&ia.client, &ib.client),
            "one client for both connections"
        );
        assert!(other.is_enabled());
    }

    #[tokio::test(start_paused = true)]
    async fn closes_the_client_only_when_the_last_reference_is_released() {
        let provider = TelemetryClientProvider::new();
        let (t, _) = transport("true");
        let mut a = provider.get_or_create(HOST, context(HOST, t.clone()));
        let mut b = provider.get_or_create(HOST, context(HOST, t));
        let client = a.inner.as_ref().map(|i| i.client.clone()).expect("enabled");
        a.close().await;
        assert_eq!(provider.ref_count(HOST), 1);
        settle().await;
        assert!(!client.is_dead(), "still serving the other connection");
        b.close().await;
        assert_eq!(provider.client_count(), 0);
        assert!(client.is_dead(), "closed with the last reference");
        b.close().await; // idempotent
        assert_eq!(
            provider.inner.flags.ref_count(HOST),
            1,
            "held by the client Arc still here"
        );
        drop(client);
        assert_eq!(
            provider.inner.flags.ref_count(HOST),
            0,
            "flag entry goes with the client"
        );
    }

    #[tokio::test(start_paused = true)]
    async fn dropping_the_last_handle_stops_the_task() {
        let provider = TelemetryClientProvider::new();
        let (t, _) = transport("true");
        let h = provider.get_or_create(HOST, context(HOST, t));
        let client = h.inner.as_ref().map(|i| i.client.clone()).expect("enabled");
        drop(h);
        assert_eq!(provider.client_count(), 0);
        settle().await;
        assert!(client.is_dead());
    }

    #[tokio::test(start_paused = true)]
    async fn exports_events_end_to_end_with_ids_and_flushes_on_close() {
        let provider = TelemetryClientProvider::new();
        let (t, exports) = transport("true");
        let mut h = provider.get_or_create(HOST, context(HOST, t));
        let e = h.emitter();
        e.emit_connection_open("sess-1", Duration::from_millis(40));
        e.emit_statement_start(
            "sess-1",
            "stmt-1",
            OperationType::ExecuteStatement,
            Instant::now(),
        );
        e.emit_statement_complete("sess-1", "stmt-1", StatementCompletion::default());
        settle().await;
        assert!(
            exported_logs(&exports).is_empty(),
            "waiting for the interval"
        );
        h.close().await;
        let logs = exported_logs(&exports);
        assert_eq!(logs.len(), 2);
        assert_eq!(
            logs[1].entry.sql_driver_log.sql_statement_id.as_deref(),
            Some("stmt-1")
        );
        assert_eq!(
            logs[1].entry.sql_driver_log.session_id.as_deref(),
            Some("sess-1")
        );
        assert_eq!(logs[0].workspace_id, Some(6_051_921_418_418_893));
        e.emit_connection_open("sess-2", Duration::ZERO);
        assert!(!e.is_enabled(), "after close the emitter is a no-op");
    }

    #[tokio::test(start_paused = true)]
    async fn exports_on_the_flush_interval() {
        let provider = TelemetryClientProvider::new();
        let (t, exports) = transport("true");
        let h = provider.get_or_create(HOST, context(HOST, t));
        let t0 = Instant::now();
        h.emitter().emit_connection_open("s", Duration::ZERO);
        while exported_logs(&exports).is_empty() {
            tokio::time::sleep(Duration::from_millis(100)).await;
        }
        let waited = Instant::now() - t0;
        assert!(
            waited >= Duration::from_secs(5) && waited <= Duration::from_millis(5100),
            "{waited:?}"
        );
    }

    #[tokio::test(start_paused = true)]
    async fn the_feature_flag_off_means_nothing_is_exported() {
        let provider = TelemetryClientProvider::new();
        let (t, exports) = transport("false");
        let mut h = provider.get_or_create(HOST, context(HOST, t));
        let e = h.emitter();
        e.emit_connection_open("s", Duration::ZERO);
        settle().await;
        assert!(!e.is_enabled(), "the gate shuts once the flag is known");
        tokio::time::advance(Duration::from_secs(10)).await;
        h.close().await;
        assert!(exported_logs(&exports).is_empty());
    }

    #[tokio::test(start_paused = true)]
    async fn disabled_configuration_creates_nothing() {
        let provider = TelemetryClientProvider::new();
        let mut ctx = context(HOST, Arc::new(MockHttpTransport::new()));
        ctx.config.enabled = false;
        let mut h = provider.get_or_create(HOST, ctx);
        assert!(!h.is_enabled());
        assert!(!h.emitter().is_enabled());
        assert_eq!(h.dropped_events(), 0);
        assert_eq!(provider.client_count(), 0);
        h.close().await;
        assert_eq!(format!("{h:?}"), "TelemetryHandle(disabled)");
    }

    #[test]
    fn without_a_runtime_the_handle_is_disabled() {
        let provider = TelemetryClientProvider::new();
        let h = provider.get_or_create(HOST, context(HOST, Arc::new(MockHttpTransport::new())));
        assert!(!h.is_enabled());
    }

    #[tokio::test(start_paused = true)]
    async fn a_panic_in_the_telemetry_task_stays_there_and_the_host_gets_a_fresh_client() {
        let (_guard, logs) = capture_logs();
        let provider = TelemetryClientProvider::new();
        let mut t = MockHttpTransport::new();
        t.expect_send().returning(|r| {
            if r.url.path().contains("feature-flags") {
                return Ok(flag_response("true", None));
            }
            panic!("exporter blew up");
        });
        let mut ctx = context(HOST, Arc::new(t));
        ctx.config.batch_size = 1;
        let mut h = provider.get_or_create(HOST, ctx);
        let e = h.emitter();
        e.emit_connection_open("s", Duration::ZERO);
        settle().await;
        assert!(
            logs.has_debug("telemetry task panicked"),
            "{:?}",
            logs.entries()
        );
        for _ in 0..3 {
            e.emit_connection_open("s", Duration::ZERO); // no panic, no error
        }
        assert!(!e.is_enabled());
        let (t2, _) = transport("true");
        let fresh = provider.get_or_create(HOST, context(HOST, t2));
        assert!(fresh.emitter().is_enabled(), "a dead client is replaced");
        h.close().await; // releases nothing of the fresh client
        assert_eq!(provider.ref_count(HOST), 1);
    }

    #[tokio::test(start_paused = true)]
    async fn close_is_bounded_by_the_close_timeout() {
        let provider = TelemetryClientProvider::new();
        let mut t = MockHttpTransport::new();
        t.expect_send().returning(|r| {
            if r.url.path().contains("feature-flags") {
                return Ok(flag_response("true", None));
            }
            Err(Error::new(crate::ErrorKind::Connect, "connection refused"))
        });
        let mut ctx = context(HOST, Arc::new(t));
        ctx.config.max_backoff = Duration::from_secs(30);
        ctx.config.min_backoff = Duration::from_secs(30);
        let mut h = provider.get_or_create(HOST, ctx);
        h.emitter().emit_connection_open("s", Duration::ZERO);
        settle().await;
        let t0 = Instant::now();
        h.close().await;
        assert!(Instant::now() - t0 <= Duration::from_secs(2));
    }

    #[tokio::test(start_paused = true)]
    async fn a_full_queue_is_counted_on_the_handle() {
        let provider = TelemetryClientProvider::new();
        let (t, _) = transport("true");
        let mut ctx = context(HOST, t);
        ctx.config.event_queue_capacity = 2;
        let h = provider.get_or_create(HOST, ctx);
        let e = h.emitter();
        for _ in 0..5 {
            e.emit_connection_open("s", Duration::ZERO);
        }
        assert_eq!(h.dropped_events(), 3);
        assert!(format!("{h:?}").contains("dropped: 3"));
    }

    #[tokio::test(start_paused = true)]
    async fn force_enabled_accepts_before_any_flag_and_the_global_provider_is_shared() {
        let (t, _) = transport("false");
        let mut ctx = context("force.example", t);
        ctx.config.force_enabled = true;
        let provider = TelemetryClientProvider::global();
        let h = provider.get_or_create("force.example", ctx);
        settle().await;
        assert!(h.emitter().is_enabled(), "force_enabled ignores the flag");
        assert_eq!(
            TelemetryClientProvider::global().ref_count("force.example"),
            1
        );
        assert!(format!("{provider:?}").contains("hosts"));
    }
}
