//! The per-host cache of the server-side feature flag that switches telemetry on.
//!
//! Entries are reference counted: [`acquire`](FeatureFlagCache::acquire) when a host's telemetry
//! client starts, [`release`](FeatureFlagCache::release) when it stops; the entry goes at zero.
//! A fetched value lives for the server's `ttl_seconds` (clamped to 60..3600 s) or 15 minutes;
//! concurrent lookups for one host share one request; a failed fetch means "off" until the TTL
//! passes. The map lock is never held across I/O: each host has its own async lock for that.

use std::collections::HashMap;
use std::sync::{Arc, Mutex, PoisonError};
use std::time::Duration;

use tokio::time::Instant;

use super::payload::FeatureFlagsResponse;
use super::types::TelemetryContext;
use crate::error::{Error, ErrorKind, Result};
use crate::http::HttpRequest;

/// Shortest and longest cache lifetime a server `ttl_seconds` may ask for.
const MIN_SERVER_TTL_SECS: i64 = 60;
const MAX_SERVER_TTL_SECS: i64 = 3600;

/// The version in the feature-flag URL: the bare `major.minor.patch` of the crate.
fn driver_version() -> String {
    format!(
        "{}.{}.{}",
        env!("CARGO_PKG_VERSION_MAJOR"),
        env!("CARGO_PKG_VERSION_MINOR"),
        env!("CARGO_PKG_VERSION_PATCH")
    )
}

#[derive(Debug, Clone, Copy)]
struct CachedFlag {
    enabled: bool,
    expires_at: Instant,
}

#[derive(Debug, Default)]
struct HostFlag {
    /// Held across the fetch, so that concurrent lookups wait for one request.
    cached: tokio::sync::Mutex<Option<CachedFlag>>,
}

#[derive(Debug)]
struct Entry {
    refs: usize,
    flag: Arc<HostFlag>,
}

/// Feature-flag values per host.
#[derive(Debug, Default)]
pub(crate) struct FeatureFlagCache {
    hosts: Mutex<HashMap<String, Entry>>,
}

impl FeatureFlagCache {
    #[cfg(test)]
    /// An empty cache.
    pub(crate) fn new() -> Self {
        Self::default()
    }

    fn hosts(&self) -> std::sync::MutexGuard<'_, HashMap<String, Entry>> {
        self.hosts.lock().unwrap_or_else(PoisonError::into_inner)
    }

    /// Take a reference on `host`'s entry, creating it.
    pub(crate) fn acquire(&self, host: &str) {
        self.hosts()
            .entry(host.to_string())
            .or_insert_with(|| Entry {
                refs: 0,
                flag: Arc::default(),
            })
            .refs += 1;
    }

    /// Drop a reference on `host`'s entry; the entry goes when none is left.
    pub(crate) fn release(&self, host: &str) {
        let mut hosts = self.hosts();
        if let Some(e) = hosts.get_mut(host) {
            e.refs = e.refs.saturating_sub(1);
            if e.refs == 0 {
                hosts.remove(host);
            }
        }
    }

    #[cfg(test)]
    /// References held on `host` (0 when it has no entry).
    pub(crate) fn ref_count(&self, host: &str) -> usize {
        self.hosts().get(host).map_or(0, |e| e.refs)
    }

    /// Whether telemetry is on for `host`: never when `enabled` is off, always when
    /// `force_enabled` is on, otherwise the host's feature flag, fetched with `ctx` when the
    /// cached value is missing or expired. Never fails: every problem means "off".
    pub(crate) async fn is_telemetry_enabled(&self, host: &str, ctx: &TelemetryContext) -> bool {
        if !ctx.config.enabled {
            return false;
        }
        if ctx.config.force_enabled {
            return true;
        }
        let flag = self.hosts().get(host).map(|e| e.flag.clone());
        let Some(flag) = flag else {
            tracing::debug!(
                host,
                "telemetry: feature flag asked for a host with no reference"
            );
            return false;
        };
        let mut cached = flag.cached.lock().await;
        if let Some(c) = *cached {
            if Instant::now() < c.expires_at {
                return c.enabled;
            }
        }
        let (enabled, ttl) = fetch(ctx).await;
        *cached = Some(CachedFlag {
            enabled,
            expires_at: crate::time::from_now(ttl),
        });
        enabled
    }
}

/// The flag's value and how long to trust it; a failure is "off" for the default TTL.
async fn fetch(ctx: &TelemetryContext) -> (bool, Duration) {
    let config = &ctx.config;
    match tokio::time::timeout(config.export_timeout, fetch_once(ctx)).await {
        Ok(Ok((enabled, ttl))) => {
            tracing::debug!(
                enabled,
                ttl_secs = ttl.as_secs(),
                "telemetry: feature flag fetched"
            );
            (enabled, ttl)
        }
        Ok(Err(e)) => {
            tracing::debug!(error = %e, "telemetry: feature flag fetch failed; telemetry off");
            (false, config.feature_flag_ttl)
        }
        Err(_) => {
            tracing::debug!(
                timeout_ms = config.export_timeout.as_millis() as u64,
                "telemetry: feature flag fetch timed out; telemetry off"
            );
            (false, config.feature_flag_ttl)
        }
    }
}

async fn fetch_once(ctx: &TelemetryContext) -> Result<(bool, Duration)> {
    let url = ctx.endpoint.feature_flag_url(&driver_version());
    let uri: http::Uri = url
        .parse()
        .map_err(|_| Error::config("the telemetry endpoint is not a valid URL"))?;
    let mut request = HttpRequest::new(http::Method::GET, uri);
    let credential = ctx.authorization().await;
    request.headers = ctx.headers(credential.clone(), false);
    request.timeout = Some(ctx.config.export_timeout);
    let mut response = ctx.transport.send(request.clone()).await?;
    // A refused OAuth token is dropped and the request sent once more with a fresh one.
    if response.status.as_u16() == 401 {
        if let (Some(auth), Some(sent)) = (&ctx.auth, &credential) {
            if auth.rejected(sent) {
                request.headers = ctx.headers(ctx.authorization().await, false);
                response = ctx.transport.send(request).await?;
            }
        }
    }
    if !response.status.is_success() {
        let status = response.status.as_u16();
        return Err(Error::from_http_status(
            status,
            format!("the feature-flag endpoint answered HTTP {status}"),
        ));
    }
    let body: FeatureFlagsResponse = serde_json::from_slice(&response.body).map_err(|e| {
        Error::new(
            ErrorKind::Decode,
            format!("the feature-flag answer is not valid JSON: {e}"),
        )
    })?;
    let name = &ctx.config.feature_flag_name;
    let enabled = body
        .flags
        .iter()
        .any(|f| &f.name == name && f.value.trim().eq_ignore_ascii_case("true"));
    let ttl = body
        .ttl_seconds
        .map(|t| {
            Duration::from_secs(
                t.clamp(MIN_SERVER_TTL_SECS, MAX_SERVER_TTL_SECS)
                    .unsigned_abs(),
            )
        })
        .unwrap_or(ctx.config.feature_flag_ttl);
    Ok((enabled, ttl))
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::http::MockHttpTransport;
    use crate::telemetry::test_support::{
        capture_logs, context, flag_response, response, GatedTransport,
    };

    const HOST: &str = "adb-1.azuredatabricks.net";

    fn mock_answering(
        times: usize,
        reply: impl Fn() -> crate::http::HttpResponse + Send + 'static,
    ) -> Arc<MockHttpTransport> {
        let mut t = MockHttpTransport::new();
        t.expect_send().times(times).returning(move |_| Ok(reply()));
        Arc::new(t)
    }

    #[tokio::test(start_paused = true)]
    async fn fetches_the_rust_flag_with_auth_and_org_id() {
        let mut t = MockHttpTransport::new();
        t.expect_send()
            .withf(|r| {
                r.method == http::Method::GET
                    && r.url.to_string()
                        == format!(
                            "https://{HOST}/api/2.0/connector-service/feature-flags/RUST/{}",
                            driver_version()
                        )
                    && r.headers["authorization"] == "Bearer dapi-test"
                    && r.headers["x-databricks-org-id"] == "6051921418418893"
                    && r.timeout == Some(Duration::from_secs(10))
            })
            .times(1)
            .returning(|_| Ok(flag_response("true", None)));
        let ctx = context(HOST, Arc::new(t));
        let cache = FeatureFlagCache::new();
        cache.acquire(HOST);
        assert!(cache.is_telemetry_enabled(HOST, &ctx).await);
    }

    #[tokio::test(start_paused = true)]
    async fn caches_the_flag_per_host() {
        let ctx = context(HOST, mock_answering(1, || flag_response("true", None)));
        let cache = FeatureFlagCache::new();
        cache.acquire(HOST);
        assert!(cache.is_telemetry_enabled(HOST, &ctx).await);
        tokio::time::advance(Duration::from_secs(14 * 60)).await;
        assert!(
            cache.is_telemetry_enabled(HOST, &ctx).await,
            "served from cache"
        );
    }

    #[tokio::test(start_paused = true)]
    async fn expires_after_fifteen_minutes_without_a_server_ttl() {
        let mut t = MockHttpTransport::new();
        let mut seq = mockall::Sequence::new();
        t.expect_send()
            .times(1)
            .in_sequence(&mut seq)
            .returning(|_| Ok(flag_response("true", None)));
        t.expect_send()
            .times(1)
            .in_sequence(&mut seq)
            .returning(|_| Ok(flag_response("false", None)));
        let ctx = context(HOST, Arc::new(t));
        let cache = FeatureFlagCache::new();
        cache.acquire(HOST);
        assert!(cache.is_telemetry_enabled(HOST, &ctx).await);
        tokio::time::advance(Duration::from_secs(15 * 60)).await;
        assert!(
            !cache.is_telemetry_enabled(HOST, &ctx).await,
            "refetched after 15 min"
        );
    }

    #[tokio::test(start_paused = true)]
    async fn server_ttl_wins_and_is_clamped() {
        for (server_ttl, lives) in [(120, 120), (5, 60), (100_000, 3600)] {
            let mut t = MockHttpTransport::new();
            t.expect_send()
                .times(2)
                .returning(move |_| Ok(flag_response("true", Some(server_ttl))));
            let ctx = context(HOST, Arc::new(t));
            let cache = FeatureFlagCache::new();
            cache.acquire(HOST);
            assert!(cache.is_telemetry_enabled(HOST, &ctx).await);
            tokio::time::advance(Duration::from_secs(lives - 1)).await;
            assert!(
                cache.is_telemetry_enabled(HOST, &ctx).await,
                "cached within {lives} s"
            );
            tokio::time::advance(Duration::from_secs(1)).await;
            assert!(
                cache.is_telemetry_enabled(HOST, &ctx).await,
                "second fetch after {lives} s"
            );
        }
    }

    #[test]
    fn ref_count_goes_up_and_down_and_the_entry_goes_at_zero() {
        let cache = FeatureFlagCache::new();
        cache.acquire(HOST);
        cache.acquire(HOST);
        assert_eq!(cache.ref_count(HOST), 2);
        cache.release(HOST);
        assert_eq!(cache.ref_count(HOST), 1);
        cache.release(HOST);
        assert_eq!(cache.ref_count(HOST), 0);
        assert!(cache.hosts().is_empty(), "entry removed at zero");
        cache.release(HOST);
        assert_eq!(cache.ref_count(HOST), 0, "an extra release is harmless");
    }

    #[tokio::test(start_paused = true)]
    async fn a_released_entry_forgets_its_value() {
        let ctx = context(HOST, mock_answering(2, || flag_response("true", None)));
        let cache = FeatureFlagCache::new();
        cache.acquire(HOST);
        assert!(cache.is_telemetry_enabled(HOST, &ctx).await);
        cache.release(HOST);
        assert!(
            !cache.is_telemetry_enabled(HOST, &ctx).await,
            "no reference: off, no fetch"
        );
        cache.acquire(HOST);
        assert!(
            cache.is_telemetry_enabled(HOST, &ctx).await,
            "fetched again"
        );
    }

    #[tokio::test(start_paused = true)]
    async fn hosts_are_independent() {
        let mut t = MockHttpTransport::new();
        t.expect_send()
            .withf(|r| r.url.host() == Some("a.example"))
            .times(1)
            .returning(|_| Ok(flag_response("true", None)));
        t.expect_send()
            .withf(|r| r.url.host() == Some("b.example"))
            .times(1)
            .returning(|_| Ok(flag_response("false", None)));
        let t = Arc::new(t);
        let (a, b) = (context("a.example", t.clone()), context("b.example", t));
        let cache = FeatureFlagCache::new();
        cache.acquire("a.example");
        cache.acquire("b.example");
        assert!(cache.is_telemetry_enabled("a.example", &a).await);
        assert!(!cache.is_telemetry_enabled("b.example", &b).await);
        cache.release("a.example");
        assert_eq!(cache.ref_count("b.example"), 1);
        assert!(
            !cache.is_telemetry_enabled("b.example", &b).await,
            "b still cached"
        );
    }

    #[tokio::test(start_paused = true)]
    async fn concurrent_lookups_share_one_request() {
        let t = GatedTransport::new(Some((
            200,
            String::from_utf8_lossy(&flag_response("true", None).body).into_owned(),
        )));
        let ctx = context(HOST, t.clone());
        let cache = Arc::new(FeatureFlagCache::new());
        cache.acquire(HOST);
        let lookups: Vec<_> = (0..5)
            .map(|_| {
                let (cache, ctx) = (cache.clone(), ctx.clone());
                tokio::spawn(async move { cache.is_telemetry_enabled(HOST, &ctx).await })
            })
            .collect();
        tokio::task::yield_now().await;
        t.open(1);
        for l in lookups {
            assert!(l.await.unwrap_or(false));
        }
        assert_eq!(t.requests().len(), 1);
    }

    #[tokio::test(start_paused = true)]
    async fn a_failed_fetch_means_off_and_is_not_retried_at_once() {
        let (_guard, logs) = capture_logs();
        let ctx = context(HOST, mock_answering(1, || response(503, "busy")));
        let cache = FeatureFlagCache::new();
        cache.acquire(HOST);
        assert!(!cache.is_telemetry_enabled(HOST, &ctx).await);
        tokio::time::advance(Duration::from_secs(60)).await;
        assert!(
            !cache.is_telemetry_enabled(HOST, &ctx).await,
            "no second request"
        );
        assert!(
            logs.has_debug("feature flag fetch failed"),
            "{:?}",
            logs.entries()
        );
    }

    #[tokio::test(start_paused = true)]
    async fn errors_are_logged_at_debug_and_mean_off() {
        let (_guard, logs) = capture_logs();
        let cache = FeatureFlagCache::new();
        cache.acquire(HOST);
        let mut t = MockHttpTransport::new();
        t.expect_send()
            .returning(|_| Err(Error::new(ErrorKind::Connect, "connection refused")));
        assert!(
            !cache
                .is_telemetry_enabled(HOST, &context(HOST, Arc::new(t)))
                .await
        );

        let cache = FeatureFlagCache::new();
        cache.acquire(HOST);
        let garbage = context(HOST, mock_answering(1, || response(200, "<html>")));
        assert!(!cache.is_telemetry_enabled(HOST, &garbage).await);

        let cache = FeatureFlagCache::new();
        cache.acquire(HOST);
        let hanging = context(HOST, GatedTransport::new(None));
        assert!(!cache.is_telemetry_enabled(HOST, &hanging).await);

        let cache = FeatureFlagCache::new();
        cache.acquire(HOST);
        let missing = context(HOST, mock_answering(1, || response(200, r#"{"flags":[]}"#)));
        assert!(
            !cache.is_telemetry_enabled(HOST, &missing).await,
            "missing flag means off"
        );

        assert!(logs.has_debug("connection refused"), "{:?}", logs.entries());
        assert!(logs.has_debug("not valid JSON"));
        assert!(logs.has_debug("timed out"));
    }

    #[tokio::test(start_paused = true)]
    async fn force_enabled_skips_the_flag_and_disabled_never_asks() {
        let mut ctx = context(HOST, Arc::new(MockHttpTransport::new()));
        let cache = FeatureFlagCache::new();
        ctx.config.force_enabled = true;
        assert!(cache.is_telemetry_enabled(HOST, &ctx).await);
        ctx.config.enabled = false;
        assert!(!cache.is_telemetry_enabled(HOST, &ctx).await);
    }

    #[tokio::test(start_paused = true)]
    async fn the_flag_name_is_a_setting() {
        let mut t = MockHttpTransport::new();
        t.expect_send().returning(|_| {
            Ok(response(
                200,
                r#"{"flags":[{"name":"custom.flag","value":"TRUE"}]}"#,
            ))
        });
        let mut ctx = context(HOST, Arc::new(t));
        ctx.config.feature_flag_name = "custom.flag".into();
        let cache = FeatureFlagCache::new();
        cache.acquire(HOST);
        assert!(cache.is_telemetry_enabled(HOST, &ctx).await);
    }
}
