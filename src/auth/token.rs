//! Access tokens that expire: [`AccessToken`], the cache every token-based provider shares
//! ([`CachedToken`]: refreshed ahead of expiry, one refresh in flight however many requests wait,
//! dropped on a 401), and [`TokenProviderAuth`], which caches the tokens of an application's own
//! async function.

use std::fmt;
use std::future::Future;
use std::pin::Pin;
use std::sync::{Arc, Mutex, MutexGuard};
use std::time::Duration;

use async_trait::async_trait;
use http::HeaderValue;
use tokio::time::Instant;

use super::AuthProvider;
use crate::error::{Error, Result};

/// How long before a token expires it is refreshed, unless a quarter of the token's lifetime is
/// less (a token valid 2 s is refreshed 0.5 s before it expires). Default 60 s.
pub const DEFAULT_REFRESH_MARGIN: Duration = Duration::from_secs(60);

/// An access token and how long it is valid. Its `Debug` never shows the token.
#[derive(Clone)]
pub struct AccessToken {
    token: String,
    expires_in: Option<Duration>,
}

impl AccessToken {
    /// `token`, valid for `expires_in` from now (`None`: until the server refuses it).
    pub fn new(token: impl Into<String>, expires_in: Option<Duration>) -> Self {
        AccessToken {
            token: token.into(),
            expires_in,
        }
    }

    /// The token itself.
    pub fn secret(&self) -> &str {
        &self.token
    }

    /// How long it was valid when it was made.
    pub fn expires_in(&self) -> Option<Duration> {
        self.expires_in
    }

    /// `Bearer <token>`, marked sensitive (never shown by `http`'s `Debug`).
    pub(crate) fn bearer(&self) -> Result<HeaderValue> {
        if self.token.trim().is_empty() {
            return Err(Error::auth("the access token obtained is empty"));
        }
        let mut value = HeaderValue::from_str(&format!("Bearer {}", self.token)).map_err(|_| {
            Error::auth(
                "the access token obtained contains characters not allowed in an HTTP header",
            )
        })?;
        value.set_sensitive(true);
        Ok(value)
    }
}

impl fmt::Debug for AccessToken {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("AccessToken")
            .field("token", &"<redacted>")
            .field("expires_in", &self.expires_in)
            .finish()
    }
}

/// Where a [`CachedToken`] gets a new token.
#[async_trait]
pub(crate) trait TokenSource: Send + Sync + fmt::Debug + 'static {
    /// A new token (a network round trip, or a browser login).
    async fn fetch(&self) -> Result<AccessToken>;
    /// The method's name for telemetry.
    fn auth_type(&self) -> &'static str;
    /// Whether a fetch may need a person (a browser login).
    fn interactive(&self) -> bool {
        false
    }
}

/// The cached header and when to renew it.
struct Cached {
    header: HeaderValue,
    /// From then on a request first tries to get a new token.
    refresh_at: Option<Instant>,
    /// From then on the token is not sent at all.
    expires_at: Option<Instant>,
}

/// An [`AuthProvider`] over a [`TokenSource`]: the token is fetched on first use, sent until
/// `margin` (at most a quarter of its lifetime) before it expires, then renewed by the first
/// request that needs it while the others wait for that one renewal. If renewing fails while
/// the old token is still valid, the old one is sent (and renewing is tried again on the next
/// request). A 401 drops the token that was refused.
pub(crate) struct CachedToken<S> {
    source: S,
    margin: Duration,
    cached: Mutex<Option<Cached>>,
    /// Held while a new token is fetched: one fetch at a time.
    refreshing: tokio::sync::Mutex<()>,
    /// Fetches finished so far, and the error of the last one when it failed: requests that
    /// waited for a fetch that failed get its error instead of each fetching in turn.
    outcome: Mutex<(u64, Option<SharedFailure>)>,
}

/// A failed fetch, as the requests that waited for it report it.
#[derive(Clone)]
struct SharedFailure {
    kind: crate::ErrorKind,
    message: String,
    http_status: Option<u16>,
}

impl SharedFailure {
    fn of(e: &Error) -> Self {
        SharedFailure {
            kind: e.kind(),
            message: e.message().to_string(),
            http_status: e.http_status(),
        }
    }

    fn error(&self) -> Error {
        Error::new(self.kind, self.message.clone()).with_http_status(self.http_status)
    }
}

impl<S: TokenSource> CachedToken<S> {
    pub(crate) fn new(source: S, margin: Duration) -> Self {
        CachedToken {
            source,
            margin,
            cached: Mutex::new(None),
            refreshing: tokio::sync::Mutex::new(()),
            outcome: Mutex::new((0, None)),
        }
    }

    fn cached(&self) -> MutexGuard<'_, Option<Cached>> {
        self.cached.lock().unwrap_or_else(|e| e.into_inner())
    }

    /// The cached header when it needs no renewal at `now`.
    fn fresh(&self, now: Instant) -> Option<HeaderValue> {
        let cached = self.cached();
        let c = cached.as_ref()?;
        c.refresh_at
            .is_none_or(|at| now < at)
            .then(|| c.header.clone())
    }

    /// The cached header while it has not expired at `now`.
    fn unexpired(&self, now: Instant) -> Option<HeaderValue> {
        let cached = self.cached();
        let c = cached.as_ref()?;
        c.expires_at
            .is_none_or(|at| now < at)
            .then(|| c.header.clone())
    }

    fn outcome(&self) -> MutexGuard<'_, (u64, Option<SharedFailure>)> {
        self.outcome.lock().unwrap_or_else(|e| e.into_inner())
    }

    /// Renew the token: one fetch at a time. While another request renews it, a token that
    /// has not expired is sent at once; a request that waited for a fetch that failed gets
    /// that fetch's error (or the still-valid token) instead of fetching again itself.
    async fn renew(&self) -> Result<HeaderValue> {
        let seen = self.outcome().0;
        let _one_at_a_time = match self.refreshing.try_lock() {
            Ok(guard) => guard,
            Err(_) => {
                if let Some(header) = self.unexpired(Instant::now()) {
                    return Ok(header);
                }
                self.refreshing.lock().await
            }
        };
        // Another request may have renewed it while this one waited.
        if let Some(header) = self.fresh(Instant::now()) {
            return Ok(header);
        }
        {
            let outcome = self.outcome();
            if let (true, Some(failure)) = (outcome.0 != seen, &outcome.1) {
                return match self.unexpired(Instant::now()) {
                    Some(header) => Ok(header),
                    None => Err(failure.error()),
                };
            }
        }
        let fetched = self.source.fetch().await;
        {
            let mut outcome = self.outcome();
            outcome.0 += 1;
            outcome.1 = fetched.as_ref().err().map(SharedFailure::of);
        }
        match fetched {
            Ok(token) => {
                let header = token.bearer()?;
                let now = Instant::now();
                let (refresh_at, expires_at) = match token.expires_in {
                    Some(lifetime) => {
                        let margin = self.margin.min(lifetime / 4);
                        (
                            Some(crate::time::after(now, lifetime - margin)),
                            Some(crate::time::after(now, lifetime)),
                        )
                    }
                    None => (None, None),
                };
                *self.cached() = Some(Cached {
                    header: header.clone(),
                    refresh_at,
                    expires_at,
                });
                tracing::debug!(
                    auth_type = self.source.auth_type(),
                    expires_in_ms = token.expires_in.map(|d| d.as_millis() as u64),
                    "access token obtained"
                );
                Ok(header)
            }
            Err(e) => match self.unexpired(Instant::now()) {
                Some(header) => {
                    tracing::debug!(
                        error = %e,
                        "renewing the access token failed; the current one is still valid"
                    );
                    Ok(header)
                }
                None => Err(e),
            },
        }
    }
}

impl<S: TokenSource> fmt::Debug for CachedToken<S> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("CachedToken")
            .field("source", &self.source)
            .field("cached", &self.cached().is_some())
            .finish_non_exhaustive()
    }
}

#[async_trait]
impl<S: TokenSource> AuthProvider for CachedToken<S> {
    async fn authorization(&self) -> Result<Option<HeaderValue>> {
        if let Some(header) = self.fresh(Instant::now()) {
            return Ok(Some(header));
        }
        self.renew().await.map(Some)
    }

    fn auth_type(&self) -> &'static str {
        self.source.auth_type()
    }

    fn interactive(&self) -> bool {
        self.source.interactive()
    }

    fn cached_authorization(&self) -> Option<HeaderValue> {
        self.unexpired(Instant::now())
    }

    fn rejected(&self, rejected: &HeaderValue) -> bool {
        let mut cached = self.cached();
        if cached.as_ref().is_some_and(|c| c.header == *rejected) {
            *cached = None;
        }
        true
    }
}

/// The future an application's token function returns.
pub(crate) type TokenFuture = Pin<Box<dyn Future<Output = Result<AccessToken>> + Send>>;

/// An application's function giving access tokens (token federation, a secrets manager...),
/// as an [`AuthProvider`]: its tokens are cached and renewed like OAuth tokens, and a 401 makes
/// it be called again once. Made with [`TokenProviderAuth::new`] or
/// [`ClientBuilder::token_provider`](crate::ClientBuilder::token_provider).
pub struct TokenProviderAuth {
    inner: CachedToken<FnSource>,
}

struct FnSource(Arc<dyn Fn() -> TokenFuture + Send + Sync>);

impl fmt::Debug for FnSource {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str("TokenFunction")
    }
}

#[async_trait]
impl TokenSource for FnSource {
    async fn fetch(&self) -> Result<AccessToken> {
        (self.0)().await
    }

    fn auth_type(&self) -> &'static str {
        "token-provider"
    }
}

impl TokenProviderAuth {
    /// A provider calling `fetch` for each new token, renewed [`DEFAULT_REFRESH_MARGIN`] (at
    /// most a quarter of its lifetime) before it expires.
    pub fn new<F, Fut>(fetch: F) -> Self
    where
        F: Fn() -> Fut + Send + Sync + 'static,
        Fut: Future<Output = Result<AccessToken>> + Send + 'static,
    {
        let fetch: Arc<dyn Fn() -> TokenFuture + Send + Sync> =
            Arc::new(move || Box::pin(fetch()) as TokenFuture);
        TokenProviderAuth {
            inner: CachedToken::new(FnSource(fetch), DEFAULT_REFRESH_MARGIN),
        }
    }
}

impl fmt::Debug for TokenProviderAuth {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        self.inner.fmt(f)
    }
}

#[async_trait]
impl AuthProvider for TokenProviderAuth {
    async fn authorization(&self) -> Result<Option<HeaderValue>> {
        self.inner.authorization().await
    }

    fn auth_type(&self) -> &'static str {
        self.inner.auth_type()
    }

    fn rejected(&self, rejected: &HeaderValue) -> bool {
        self.inner.rejected(rejected)
    }
}

#[cfg(test)]
mod tests {
    use std::sync::atomic::{AtomicU32, Ordering};

    use super::*;

    /// Tokens `t1`, `t2`, ... valid `lifetime` each, counting fetches; fails while `fail` is set.
    #[derive(Debug)]
    struct Counting {
        fetches: Arc<AtomicU32>,
        lifetime: Option<Duration>,
        fail: Arc<std::sync::atomic::AtomicBool>,
        delay: Duration,
    }

    #[async_trait]
    impl TokenSource for Counting {
        async fn fetch(&self) -> Result<AccessToken> {
            tokio::time::sleep(self.delay).await;
            let n = self.fetches.fetch_add(1, Ordering::SeqCst) + 1;
            if self.fail.load(Ordering::SeqCst) {
                return Err(Error::auth("the token endpoint refused"));
            }
            Ok(AccessToken::new(format!("t{n}"), self.lifetime))
        }
        fn auth_type(&self) -> &'static str {
            "test"
        }
    }

    fn counting(
        lifetime: Option<Duration>,
    ) -> (
        CachedToken<Counting>,
        Arc<AtomicU32>,
        Arc<std::sync::atomic::AtomicBool>,
    ) {
        let fetches = Arc::new(AtomicU32::new(0));
        let fail = Arc::new(std::sync::atomic::AtomicBool::new(false));
        let source = Counting {
            fetches: fetches.clone(),
            lifetime,
            fail: fail.clone(),
            delay: Duration::from_millis(10),
        };
        (
            CachedToken::new(source, DEFAULT_REFRESH_MARGIN),
            fetches,
            fail,
        )
    }

    async fn header(auth: &dyn AuthProvider) -> String {
        let value = auth
            .authorization()
            .await
            .expect("a header")
            .expect("some header");
        assert!(value.is_sensitive());
        value.to_str().expect("ASCII").to_string()
    }

    #[tokio::test(start_paused = true)]
    async fn a_token_is_reused_until_a_quarter_of_its_lifetime_remains() {
        let (auth, fetches, _) = counting(Some(Duration::from_secs(8)));
        assert_eq!(header(&auth).await, "Bearer t1");
        tokio::time::advance(Duration::from_secs(5)).await;
        assert_eq!(header(&auth).await, "Bearer t1");
        tokio::time::advance(Duration::from_millis(1100)).await;
        assert_eq!(
            header(&auth).await,
            "Bearer t2",
            "renewed 2 s before expiry"
        );
        assert_eq!(fetches.load(Ordering::SeqCst), 2);
    }

    #[tokio::test(start_paused = true)]
    async fn the_margin_is_at_most_sixty_seconds() {
        let (auth, _, _) = counting(Some(Duration::from_secs(3600)));
        assert_eq!(header(&auth).await, "Bearer t1");
        tokio::time::advance(Duration::from_secs(3600 - 61)).await;
        assert_eq!(header(&auth).await, "Bearer t1");
        tokio::time::advance(Duration::from_secs(2)).await;
        assert_eq!(header(&auth).await, "Bearer t2");
    }

    #[tokio::test(start_paused = true)]
    async fn many_waiting_requests_share_one_fetch_and_one_renewal() {
        let (auth, fetches, _) = counting(Some(Duration::from_secs(60)));
        let auth = Arc::new(auth);
        let fifty = |auth: &Arc<CachedToken<Counting>>| -> Vec<_> {
            (0..50)
                .map(|_| {
                    let auth = auth.clone();
                    tokio::spawn(async move { header(&*auth).await })
                })
                .collect()
        };
        for task in fifty(&auth) {
            assert_eq!(task.await.expect("task"), "Bearer t1");
        }
        assert_eq!(fetches.load(Ordering::SeqCst), 1);
        // Past the renewal point: one renewal; the others send the still-valid token at once.
        tokio::time::advance(Duration::from_secs(46)).await;
        for task in fifty(&auth) {
            let sent = task.await.expect("task");
            assert!(sent == "Bearer t1" || sent == "Bearer t2", "{sent}");
        }
        assert_eq!(fetches.load(Ordering::SeqCst), 2);
        assert_eq!(header(&*auth).await, "Bearer t2");
    }

    #[tokio::test(start_paused = true)]
    async fn requests_that_waited_for_a_failed_fetch_share_its_error() {
        let (auth, fetches, fail) = counting(None);
        fail.store(true, Ordering::SeqCst);
        let auth = Arc::new(auth);
        let tasks: Vec<_> = (0..50)
            .map(|_| {
                let auth = auth.clone();
                tokio::spawn(async move { auth.authorization().await })
            })
            .collect();
        for task in tasks {
            let err = task.await.expect("task").expect_err("refused");
            assert_eq!(err.kind(), crate::ErrorKind::Auth);
            assert!(err.to_string().contains("refused"), "{err}");
        }
        assert_eq!(fetches.load(Ordering::SeqCst), 1, "one fetch for all fifty");
        // A later request tries again.
        fail.store(false, Ordering::SeqCst);
        assert_eq!(header(&*auth).await, "Bearer t2");
    }

    #[tokio::test(start_paused = true)]
    async fn a_failed_renewal_keeps_sending_a_token_that_is_still_valid() {
        let (auth, fetches, fail) = counting(Some(Duration::from_secs(8)));
        assert_eq!(header(&auth).await, "Bearer t1");
        fail.store(true, Ordering::SeqCst);
        tokio::time::advance(Duration::from_secs(7)).await;
        assert_eq!(header(&auth).await, "Bearer t1");
        tokio::time::advance(Duration::from_secs(2)).await;
        let err = auth
            .authorization()
            .await
            .expect_err("expired and not renewed");
        assert_eq!(err.kind(), crate::ErrorKind::Auth);
        fail.store(false, Ordering::SeqCst);
        assert_eq!(header(&auth).await, "Bearer t4");
        assert_eq!(fetches.load(Ordering::SeqCst), 4);
    }

    #[tokio::test(start_paused = true)]
    async fn a_refused_token_is_dropped_and_the_next_request_gets_a_new_one() {
        let (auth, _, _) = counting(None);
        assert_eq!(header(&auth).await, "Bearer t1");
        let refused = HeaderValue::from_static("Bearer t1");
        assert!(auth.rejected(&refused));
        assert_eq!(header(&auth).await, "Bearer t2");
        // A 401 to an older token leaves the newer one in place.
        assert!(auth.rejected(&refused));
        assert_eq!(header(&auth).await, "Bearer t2");
    }

    #[tokio::test]
    async fn an_application_function_is_cached_like_any_token() {
        let calls = Arc::new(AtomicU32::new(0));
        let counted = calls.clone();
        let auth = TokenProviderAuth::new(move || {
            let n = counted.fetch_add(1, Ordering::SeqCst) + 1;
            async move {
                Ok(AccessToken::new(
                    format!("app-{n}"),
                    Some(Duration::from_secs(3600)),
                ))
            }
        });
        assert_eq!(header(&auth).await, "Bearer app-1");
        assert_eq!(header(&auth).await, "Bearer app-1");
        assert_eq!(calls.load(Ordering::SeqCst), 1);
        assert_eq!(auth.auth_type(), "token-provider");
        assert!(!format!("{auth:?}").contains("app-1"));
        assert!(!format!("{:?}", AccessToken::new("s3cret", None)).contains("s3cret"));
    }

    #[tokio::test]
    async fn an_empty_or_malformed_token_is_an_auth_error_without_the_token() {
        for bad in ["", "bad\r\ntoken"] {
            let auth =
                TokenProviderAuth::new(move || async move { Ok(AccessToken::new(bad, None)) });
            let err = auth.authorization().await.expect_err("refused");
            assert_eq!(err.kind(), crate::ErrorKind::Auth);
            assert!(!err.to_string().contains("bad"), "{err}");
        }
    }
}
