//! [`HyperTransport`]: the real [`HttpTransport`], a pooled hyper client over rustls (ring
//! crypto), HTTP/1.1, through the configured proxy, with connect and per-request timeouts and a
//! response size cap.

use std::error::Error as StdError;
use std::future::Future;
use std::net::IpAddr;
use std::pin::Pin;
use std::sync::Arc;
use std::task::{Context, Poll};
use std::time::Duration;

use async_trait::async_trait;
use bytes::Bytes;
use futures::{StreamExt, TryStreamExt};
use http::header::{HeaderValue, CONTENT_LENGTH, PROXY_AUTHORIZATION, USER_AGENT};
use http_body_util::{BodyExt, Either, Full, LengthLimitError, Limited, StreamBody};
use hyper::body::Frame;
use hyper_rustls::HttpsConnector;
use hyper_util::client::legacy::connect::HttpConnector;
use hyper_util::client::legacy::Client;
use hyper_util::rt::{TokioExecutor, TokioTimer};

use super::config::{user_agent, HttpConfig};
use super::proxy::connector::{ProxyConnector, ProxyError};
use super::proxy::{ProxyRoute, ProxyRules};
use super::tls;
use super::{fmt_duration, BodyStream, HttpRequest, HttpResponse, HttpTransport, StreamedResponse};
use crate::error::{redact_url, ConnectFailure, Error, ErrorKind, Result};

/// The most [`HttpTransport::send_into`] allocates up front from a reply's `Content-Length`
/// (64 MiB); a longer body grows the buffer as it arrives.
const MAX_PRESIZE: usize = 64 << 20;

/// A request body: whole in memory, or streamed ([`HttpTransport::send_streamed`]).
type RequestBody = Either<Full<Bytes>, StreamBody<BoxFrames>>;

/// The pieces of a streamed request body, as hyper takes them.
type BoxFrames = futures::stream::BoxStream<'static, std::io::Result<Frame<Bytes>>>;

type HyperClient = Client<TimedConnector<HttpsConnector<ProxyConnector>>, RequestBody>;

/// The driver's HTTP transport: a pooled hyper 1 client over rustls with the `ring` crypto
/// provider, HTTP/1.1, TLS 1.2 or 1.3 with certificate verification (see [`HttpConfig`] for
/// extra root certificates, a client certificate and the option to turn verification off),
/// through the proxy of [`HttpConfig::proxy`].
///
/// The TLS settings and the proxy decision (the environment read, for the default
/// [`ProxyConfig::FromEnvironment`](super::ProxyConfig::FromEnvironment)) are fixed when the
/// transport is built. Plain `http://` is accepted only for loopback hosts (`127.0.0.0/8`,
/// `::1`, `localhost`), which is what the mock warehouse uses; any other `http://` URL is a
/// [`ErrorKind::Config`] error before any network traffic. Cheap to clone: clones share one
/// connection pool.
#[derive(Clone)]
pub struct HyperTransport {
    inner: Arc<Inner>,
}

struct Inner {
    client: HyperClient,
    proxies: Arc<ProxyRules>,
    user_agent: HeaderValue,
    connect_timeout: Duration,
    request_timeout: Duration,
    max_response_bytes: usize,
}

impl std::fmt::Debug for HyperTransport {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("HyperTransport")
            .field("user_agent", &self.inner.user_agent)
            .field("connect_timeout", &self.inner.connect_timeout)
            .field("request_timeout", &self.inner.request_timeout)
            .field("max_response_bytes", &self.inner.max_response_bytes)
            .field("proxies", &self.inner.proxies)
            .finish_non_exhaustive()
    }
}

impl HyperTransport {
    /// A transport with the given settings. Fails with [`ErrorKind::Config`] when a setting is
    /// invalid (see [`HttpConfig`]), a certificate or key cannot be read, or the trusted roots
    /// cannot be loaded.
    pub fn new(config: &HttpConfig) -> Result<Self> {
        Self::with_env(config, |name| std::env::var(name).ok())
    }

    /// [`new`](Self::new), reading environment variables through `env`.
    pub(crate) fn with_env(
        config: &HttpConfig,
        env: impl Fn(&str) -> Option<String>,
    ) -> Result<Self> {
        config.validate()?;
        let proxies = Arc::new(ProxyRules::resolve(&config.proxy, env)?);
        let user_agent = HeaderValue::from_str(&user_agent(config.user_agent_entry.as_deref()))
            .map_err(|_| Error::config("the user agent entry is not a valid HTTP header value"))?;

        let mut http = HttpConnector::new();
        http.enforce_http(false);
        http.set_nodelay(true);
        http.set_connect_timeout(Some(config.connect_timeout));

        let tls = tls::client_config(config)?;
        if config.danger_accept_invalid_certificates {
            tracing::warn!(
                "TLS certificate verification is off (danger_accept_invalid_certificates): any \
                 server is trusted, and anyone on the network path can read and change the \
                 traffic, credentials included; for development only"
            );
        }
        let connector = TimedConnector {
            inner: hyper_rustls::HttpsConnectorBuilder::new()
                .with_tls_config(tls)
                .https_or_http()
                .enable_http1()
                .wrap_connector(ProxyConnector::new(http, proxies.clone())),
            timeout: config.connect_timeout,
        };

        let client = Client::builder(TokioExecutor::new())
            .pool_idle_timeout(config.pool_idle_timeout)
            .pool_max_idle_per_host(config.pool_max_idle_per_host)
            .pool_timer(TokioTimer::new())
            .build(connector);

        Ok(HyperTransport {
            inner: Arc::new(Inner {
                client,
                proxies,
                user_agent,
                connect_timeout: config.connect_timeout,
                request_timeout: config.request_timeout,
                max_response_bytes: config.max_response_bytes,
            }),
        })
    }

    /// Whether requests to `url` go through a proxy.
    pub(crate) fn uses_proxy(&self, url: &http::Uri) -> bool {
        self.inner.proxies.route(url).is_some()
    }

    /// The most bytes a response body to `request` may have: its own cap, within the
    /// transport's.
    fn limit(&self, request: &HttpRequest) -> usize {
        let transport = self.inner.max_response_bytes;
        request
            .max_response_bytes
            .map_or(transport, |cap| cap.min(transport))
    }

    /// Sends `request` (with `upload` as its body when given) and returns the response head and
    /// its unread body (size-checked against `limit` by `Content-Length` when the server sent
    /// one).
    async fn start(
        &self,
        request: HttpRequest,
        url: &ShownUrl,
        upload: Option<BodyStream>,
        limit: usize,
    ) -> Result<(http::response::Parts, hyper::body::Incoming)> {
        let inner = &self.inner;
        let route = inner.proxies.route(&request.url).cloned();
        // A plain-http request goes to the proxy itself (in absolute form), which wants the
        // credentials on the request; through a tunnel they were on the CONNECT.
        let forwarded = route.as_ref().filter(|_| {
            request
                .url
                .scheme_str()
                .is_some_and(|s| s.eq_ignore_ascii_case("http"))
        });
        let mut builder = hyper::Request::builder()
            .method(request.method)
            .uri(request.url);
        if let Some(headers) = builder.headers_mut() {
            *headers = request.headers;
            if !headers.contains_key(USER_AGENT) {
                headers.insert(USER_AGENT, inner.user_agent.clone());
            }
            if let Some(value) = forwarded.and_then(|r| r.authorization()) {
                headers.insert(PROXY_AUTHORIZATION, value.clone());
            }
        }
        let body = match upload {
            None => Either::Left(Full::new(request.body)),
            Some(upload) => {
                if let Some(headers) = builder.headers_mut() {
                    headers.insert(CONTENT_LENGTH, HeaderValue::from(upload.len()));
                }
                Either::Right(StreamBody::new(
                    upload.into_chunks().map_ok(Frame::data).boxed(),
                ))
            }
        };
        let hyper_request = builder
            .body(body)
            .map_err(|e| Error::config(format!("invalid HTTP request to {url}: {e}")))?;

        let response = inner
            .client
            .request(hyper_request)
            .await
            .map_err(|e| self.request_error(e, url, route.as_deref()))?;
        let (parts, body) = response.into_parts();
        if let Some(length) = content_length(&parts.headers) {
            if length > limit as u64 {
                return Err(too_large(url, limit));
            }
        }
        Ok((parts, body))
    }

    /// One attempt without the overall request timeout (the caller applies it).
    async fn send_untimed(&self, request: HttpRequest, url: &ShownUrl) -> Result<HttpResponse> {
        let limit = self.limit(&request);
        let (parts, body) = self.start(request, url, None, limit).await?;
        let body = Limited::new(body, limit)
            .collect()
            .await
            .map_err(|e| {
                if e.downcast_ref::<LengthLimitError>().is_some() {
                    too_large(url, limit)
                } else {
                    cut_short(url, e)
                }
            })?
            .to_bytes();

        Ok(HttpResponse {
            status: parts.status,
            headers: parts.headers,
            body,
        })
    }

    /// [`send_untimed`](Self::send_untimed), with the body copied frame by frame into `out`
    /// (pre-sized from `Content-Length`) instead of a new buffer.
    async fn send_into_untimed(
        &self,
        request: HttpRequest,
        url: &ShownUrl,
        out: &mut Vec<u8>,
    ) -> Result<HttpResponse> {
        let limit = self.limit(&request);
        let (parts, mut body) = self.start(request, url, None, limit).await?;
        if let Some(length) = content_length(&parts.headers) {
            // Room for the announced length up front (bounded by the limit, and by
            // MAX_PRESIZE: a length the body has not proven yet allocates no more than that).
            // A buffer that is too small is replaced rather than grown, so its stale contents
            // are never copied.
            let length = usize::try_from(length).unwrap_or(limit).min(MAX_PRESIZE);
            if out.capacity() < length {
                *out = Vec::with_capacity(length);
            }
        }
        while let Some(frame) = body.frame().await {
            let frame = frame.map_err(|e| cut_short(url, e.into()))?;
            if let Ok(data) = frame.into_data() {
                if data.len() > limit - out.len() {
                    out.clear();
                    return Err(too_large(url, limit));
                }
                out.extend_from_slice(&data);
            }
        }
        Ok(HttpResponse {
            status: parts.status,
            headers: parts.headers,
            body: Bytes::new(),
        })
    }

    /// Maps a failure to send the request or read the response head (`proxy`: the proxy the
    /// request went through). A failure to connect (refused, unreachable, connect timeout, a
    /// proxy that refused) is marked as never sent.
    fn request_error(
        &self,
        e: hyper_util::client::legacy::Error,
        url: &ShownUrl,
        proxy: Option<&ProxyRoute>,
    ) -> Error {
        // A TLS failure (an untrusted certificate, a protocol mismatch) or a host name that
        // does not resolve will not heal by itself: never retried.
        let failure = if has_tls_error(&e) {
            Some(ConnectFailure::Tls)
        } else if e.is_connect() && is_host_not_found(&e) {
            Some(ConnectFailure::HostNotFound)
        } else if e.is_connect()
            && (has_io_error(&e, std::io::ErrorKind::ConnectionRefused)
                || causes(&e)
                    .filter_map(|err| err.downcast_ref::<ProxyError>())
                    .any(ProxyError::target_unreachable))
        {
            // Nothing listens, or the proxy cannot reach the target: retried only briefly.
            Some(ConnectFailure::Refused)
        } else {
            None
        };
        let connect = e.is_connect() && failure != Some(ConnectFailure::Tls);
        let error = self
            .request_error_kind(&e, url, proxy)
            .with_connect_failure(failure);
        if connect {
            error.never_sent()
        } else {
            error
        }
    }

    fn request_error_kind(
        &self,
        e: &hyper_util::client::legacy::Error,
        url: &ShownUrl,
        proxy: Option<&ProxyRoute>,
    ) -> Error {
        let cause = root_cause(e);
        let through = proxy
            .map(|p| format!(" through the proxy {}", p.authority()))
            .unwrap_or_default();
        let timed_out = has_timed_out_io(e);
        let refused = causes(e)
            .find_map(|err| err.downcast_ref::<ProxyError>())
            .map(|refused| {
                let kind = if timed_out {
                    ErrorKind::Timeout
                } else {
                    refused.kind()
                };
                (kind, format!("{refused}{}", root_cause(refused)))
            });
        if let Some((kind, refused)) = refused {
            return Error::new(kind, format!("could not connect to {url}: {refused}"));
        }
        if timed_out {
            let after = fmt_duration(self.inner.connect_timeout);
            Error::new(
                ErrorKind::Timeout,
                format!("could not connect to {url}{through} within {after}{cause}"),
            )
        } else if e.is_connect() {
            Error::new(
                ErrorKind::Connect,
                format!("could not connect to {url}{through}{cause}"),
            )
        } else {
            Error::new(
                ErrorKind::Connect,
                format!("the connection to {url} failed before a response arrived{cause}"),
            )
        }
    }
}

#[async_trait]
impl HttpTransport for HyperTransport {
    async fn send(&self, request: HttpRequest) -> Result<HttpResponse> {
        let (url, timeout) = self.checked(&request)?;
        tokio::time::timeout(timeout, self.send_untimed(request, &url))
            .await
            .unwrap_or_else(|_| Err(no_complete_response(&url, timeout)))
    }

    async fn send_into(&self, request: HttpRequest, body: &mut Vec<u8>) -> Result<HttpResponse> {
        body.clear();
        let (url, timeout) = self.checked(&request)?;
        let result = tokio::time::timeout(timeout, self.send_into_untimed(request, &url, body))
            .await
            .unwrap_or_else(|_| Err(no_complete_response(&url, timeout)));
        if result.is_err() {
            body.clear();
        }
        result
    }

    async fn send_streamed(
        &self,
        request: HttpRequest,
        upload: Option<BodyStream>,
    ) -> Result<StreamedResponse> {
        let (url, timeout) = self.checked(&request)?;
        let limit = request.max_response_bytes.unwrap_or(usize::MAX);
        let (parts, body) = tokio::time::timeout(timeout, self.start(request, &url, upload, limit))
            .await
            .unwrap_or_else(|_| Err(no_complete_response(&url, timeout)))?;
        let pieces = futures::stream::try_unfold((body, 0usize), move |(mut body, received)| {
            let url = url.clone();
            async move {
                loop {
                    let frame = match tokio::time::timeout(timeout, body.frame()).await {
                        Err(_) => {
                            return Err(Error::new(
                                ErrorKind::Timeout,
                                format!(
                                    "no more of the response body from {url} within {}",
                                    fmt_duration(timeout)
                                ),
                            ))
                        }
                        Ok(None) => return Ok(None),
                        Ok(Some(frame)) => frame.map_err(|e| cut_short(&url, e.into()))?,
                    };
                    if let Ok(data) = frame.into_data() {
                        if data.len() > limit - received {
                            return Err(too_large(&url, limit));
                        }
                        let received = received + data.len();
                        return Ok(Some((data, (body, received))));
                    }
                }
            }
        });
        Ok(StreamedResponse::new(parts.status, parts.headers, pieces))
    }
}

impl HyperTransport {
    /// The request's URL as errors show it, after the scheme and host check, and the timeout of
    /// its one attempt.
    fn checked(&self, request: &HttpRequest) -> Result<(ShownUrl, Duration)> {
        let url = ShownUrl(request.url.clone());
        check_scheme_and_host(&request.url, &url)?;
        Ok((url, request.timeout.unwrap_or(self.inner.request_timeout)))
    }
}

/// A request's URL as errors show it: redacted ([`redact_url`]: no credentials, no query) when
/// displayed, so that a request that succeeds never pays for formatting it.
#[derive(Clone)]
struct ShownUrl(http::Uri);

impl std::fmt::Display for ShownUrl {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(&redact_url(&self.0.to_string()))
    }
}

fn no_complete_response(url: &ShownUrl, timeout: Duration) -> Error {
    Error::new(
        ErrorKind::Timeout,
        format!(
            "no complete response from {url} within {}",
            fmt_duration(timeout)
        ),
    )
}

/// The body stopped before its end (connection reset, fewer bytes than `Content-Length`...).
fn cut_short(url: &ShownUrl, e: Box<dyn StdError + Send + Sync>) -> Error {
    Error::new(
        ErrorKind::Connect,
        format!(
            "the response body from {url} was cut short{}",
            root_cause(&*e)
        ),
    )
}

/// A connector whose whole connect (DNS, TCP, the proxy's `CONNECT` exchange and the TLS
/// handshake) is bounded by a timeout:
/// `HttpConnector`'s own timeout covers the TCP connect only, so a server that accepts the
/// connection but never completes the handshake would hold a request until its request timeout.
#[derive(Clone)]
struct TimedConnector<C> {
    inner: C,
    timeout: Duration,
}

impl<C> tower_service::Service<http::Uri> for TimedConnector<C>
where
    C: tower_service::Service<http::Uri>,
    C::Future: Send + 'static,
    C::Error: Into<Box<dyn StdError + Send + Sync>>,
{
    type Response = C::Response;
    type Error = Box<dyn StdError + Send + Sync>;
    type Future =
        Pin<Box<dyn Future<Output = std::result::Result<C::Response, Self::Error>> + Send>>;

    fn poll_ready(&mut self, cx: &mut Context<'_>) -> Poll<std::result::Result<(), Self::Error>> {
        self.inner.poll_ready(cx).map_err(Into::into)
    }

    fn call(&mut self, uri: http::Uri) -> Self::Future {
        let connecting = self.inner.call(uri);
        let timeout = self.timeout;
        Box::pin(async move {
            match tokio::time::timeout(timeout, connecting).await {
                Ok(result) => result.map_err(Into::into),
                // TimedOut in the chain is what `request_error` reports as a connect timeout.
                Err(_) => Err(Box::new(std::io::Error::new(
                    std::io::ErrorKind::TimedOut,
                    "the connection (TCP, proxy tunnel and TLS handshake) was not established in time",
                )) as Box<dyn StdError + Send + Sync>),
            }
        })
    }
}

/// Whether `host` (as in a URL, IPv6 with or without brackets) is a loopback host:
/// `127.0.0.0/8`, `::1` (also IPv4-mapped loopback) or `localhost`.
pub(crate) fn is_loopback_host(host: &str) -> bool {
    let host = host.strip_suffix('.').unwrap_or(host);
    if host.eq_ignore_ascii_case("localhost") {
        return true;
    }
    let bare = host
        .strip_prefix('[')
        .and_then(|h| h.strip_suffix(']'))
        .unwrap_or(host);
    match bare.parse::<IpAddr>() {
        Ok(IpAddr::V4(ip)) => ip.is_loopback(),
        Ok(IpAddr::V6(ip)) => {
            ip.is_loopback() || ip.to_ipv4_mapped().is_some_and(|v4| v4.is_loopback())
        }
        Err(_) => false,
    }
}

/// `https://` anywhere, `http://` only to a loopback host: checked before any network traffic.
fn check_scheme_and_host(uri: &http::Uri, url: &ShownUrl) -> Result<()> {
    let Some(host) = uri.host().filter(|h| !h.is_empty()) else {
        return Err(Error::config(format!("the URL {url} has no host")));
    };
    match uri.scheme_str() {
        Some(s) if s.eq_ignore_ascii_case("https") => Ok(()),
        Some(s) if s.eq_ignore_ascii_case("http") => {
            if is_loopback_host(host) {
                Ok(())
            } else {
                Err(Error::config(format!(
                    "plain http:// is only allowed to loopback hosts (127.0.0.1, ::1, localhost), \
                     not to {url}: use https://"
                )))
            }
        }
        _ => Err(Error::config(format!(
            "the URL {url} is not an https:// URL"
        ))),
    }
}

fn content_length(headers: &http::HeaderMap) -> Option<u64> {
    headers
        .get(CONTENT_LENGTH)
        .and_then(|v| v.to_str().ok())
        .and_then(|v| v.trim().parse().ok())
}

fn too_large(url: &ShownUrl, limit: usize) -> Error {
    Error::protocol(format!(
        "the response from {url} is larger than the limit of {limit} bytes"
    ))
}

/// Whether a rustls error is in the chain. I/O errors are looked into: the TLS stream wraps its
/// error in one, which hyper-rustls wraps in another, and an I/O error's `source()` skips the
/// error it wraps.
fn has_tls_error(e: &(dyn StdError + 'static)) -> bool {
    causes(e).any(|err| err.downcast_ref::<rustls::Error>().is_some())
}

/// Whether an I/O error of kind `TimedOut` is in the chain (the connect timeout elapsed).
fn has_timed_out_io(e: &(dyn StdError + 'static)) -> bool {
    has_io_error(e, std::io::ErrorKind::TimedOut)
}

/// Whether an I/O error of `kind` is in the chain.
fn has_io_error(e: &(dyn StdError + 'static), kind: std::io::ErrorKind) -> bool {
    causes(e).any(|err| {
        err.downcast_ref::<std::io::Error>()
            .is_some_and(|io| io.kind() == kind)
    })
}

/// Whether name resolution answered that the host does not exist (the system resolver's
/// "Name or service not known" / "No address associated with hostname", or "nodename nor
/// servname provided" on BSDs), as opposed to a temporary failure worth retrying.
fn is_host_not_found(e: &(dyn StdError + 'static)) -> bool {
    causes(e).any(|err| {
        let text = err.to_string();
        text.contains("failed to lookup address information")
            && !text.contains("Temporary failure")
            && !text.contains("try again")
    })
}

/// `e` and its causes, outermost first. An I/O error is followed by the error it wraps (its own
/// `source()` would skip that one and go on to its cause).
fn causes<'a>(
    e: &'a (dyn StdError + 'static),
) -> impl Iterator<Item = &'a (dyn StdError + 'static)> {
    std::iter::successors(Some(e), |&err: &&'a (dyn StdError + 'static)| {
        match err
            .downcast_ref::<std::io::Error>()
            .and_then(|io| io.get_ref())
        {
            Some(inner) => Some(inner as &(dyn StdError + 'static)),
            None => err.source(),
        }
    })
}

/// ` (<innermost cause>)`, the part of an error chain that says what actually happened
/// (`Connection refused`, `invalid peer certificate: UnknownIssuer`...), or nothing.
fn root_cause(e: &(dyn StdError + 'static)) -> String {
    let mut last = e;
    let mut depth = 0;
    while let Some(next) = last.source() {
        last = next;
        depth += 1;
    }
    if depth == 0 {
        String::new()
    } else {
        format!(" ({last})")
    }
}

#[cfg(test)]
mod tests;
