//! [`TestProxy`]: a small HTTP proxy on loopback for tests, which tunnels `CONNECT` requests,
//! forwards plain-http requests in absolute form, records each target, and can require basic
//! credentials.

use std::collections::BTreeMap;
use std::convert::Infallible;
use std::fmt;
use std::net::SocketAddr;
use std::sync::{Arc, Mutex};

use base64::Engine as _;
use bytes::Bytes;
use http::{header, HeaderValue, Method, Request, Response, StatusCode};
use http_body_util::combinators::BoxBody;
use http_body_util::{BodyExt, Empty, Full};
use hyper::body::Incoming;
use hyper::service::service_fn;
use hyper_util::rt::TokioIo;
use tokio::net::TcpStream;
use tokio::task::JoinSet;

use super::server::{self, ServerHandle};
use crate::error::Result;

/// A request the proxy received.
#[derive(Debug, Clone, PartialEq, Eq)]
#[non_exhaustive]
pub struct ProxiedRequest {
    /// `CONNECT` for a tunnel, else the method of the forwarded request (`POST`, `GET`...).
    pub method: String,
    /// The target as the client named it: `host:port`.
    pub target: String,
    /// The path of a forwarded request (no query); `None` for a tunnel, whose requests the
    /// proxy cannot see.
    pub path: Option<String>,
    /// Whether it was refused with 407 for missing or wrong credentials.
    pub refused: bool,
}

/// Builds a [`TestProxy`]; see each setter for its default.
#[derive(Clone, Default)]
#[must_use]
pub struct TestProxyBuilder {
    credentials: Option<(String, String)>,
    hosts: BTreeMap<String, SocketAddr>,
}

/// Shows the user name only.
impl fmt::Debug for TestProxyBuilder {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("TestProxyBuilder")
            .field("user", &self.credentials.as_ref().map(|(user, _)| user))
            .field("hosts", &self.hosts)
            .finish()
    }
}

impl TestProxyBuilder {
    /// Require `Proxy-Authorization: Basic` with these credentials on every request; others
    /// are answered `407 Proxy Authentication Required`. Default: no credentials required.
    pub fn basic_auth(mut self, user: impl Into<String>, password: impl Into<String>) -> Self {
        self.credentials = Some((user.into(), password.into()));
        self
    }

    /// Reach the host name `host` at `addr` instead of resolving it, as a proxy's own DNS
    /// would: for a mock started with
    /// [`host_name`](super::MockWarehouseBuilder::host_name), whose name resolves nowhere.
    /// Default: names are resolved by the system.
    pub fn resolve(mut self, host: impl Into<String>, addr: SocketAddr) -> Self {
        self.hosts.insert(host.into().to_ascii_lowercase(), addr);
        self
    }

    /// Start listening on an ephemeral port of 127.0.0.1, on the current tokio runtime.
    pub async fn start(self) -> Result<TestProxy> {
        let listener = server::bind(0).await?;
        let addr = server::local_addr(&listener)?;
        let state = Arc::new(ProxyState {
            authorization: self.credentials.map(|(user, password)| {
                let token =
                    base64::engine::general_purpose::STANDARD.encode(format!("{user}:{password}"));
                format!("Basic {token}")
            }),
            hosts: self.hosts,
            requests: Mutex::new(Vec::new()),
            tunnels: Mutex::new(JoinSet::new()),
        });
        let served = state.clone();
        let server = ServerHandle::spawn(listener, move |stream| serve(stream, served.clone()));
        Ok(TestProxy {
            inner: Arc::new(Inner {
                addr,
                state,
                server,
            }),
        })
    }
}

/// An HTTP proxy on 127.0.0.1 for tests (feature `mock`): it answers `CONNECT host:port` by
/// opening a TCP connection to the target and copying bytes both ways (a tunnel, as for
/// `https://` targets), forwards requests in absolute form (`GET http://host:port/path`) to
/// their target, and records each request ([`requests`](Self::requests)). Cheap to clone; it
/// stops on [`shutdown`](Self::shutdown) or when the last clone is dropped.
///
/// ```no_run
/// # async fn demo() -> databricks_sql::Result<()> {
/// use databricks_sql::http::Proxy;
/// use databricks_sql::mock::{MockWarehouse, TestProxy};
///
/// let mock = MockWarehouse::start().await?;
/// let proxy = TestProxy::builder().basic_auth("alice", "s3cret").start().await?;
/// let client = mock
///     .client_builder()
///     .proxy(Proxy::new(&proxy.url())?.basic_auth("alice", "s3cret"))
///     .build()?;
/// let session = client.open_session().await?;
/// assert!(!proxy.targets().is_empty());
/// # Ok(()) }
/// ```
#[derive(Clone)]
pub struct TestProxy {
    inner: Arc<Inner>,
}

struct Inner {
    addr: SocketAddr,
    state: Arc<ProxyState>,
    server: ServerHandle,
}

impl fmt::Debug for TestProxy {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("TestProxy")
            .field("addr", &self.inner.addr)
            .field("authenticated", &self.inner.state.authorization.is_some())
            .finish_non_exhaustive()
    }
}

impl TestProxy {
    /// Start a proxy that requires no credentials.
    pub async fn start() -> Result<TestProxy> {
        TestProxy::builder().start().await
    }

    /// A builder for a proxy with credentials or host mappings.
    pub fn builder() -> TestProxyBuilder {
        TestProxyBuilder::default()
    }

    /// The address it listens on (127.0.0.1, an ephemeral port).
    pub fn local_addr(&self) -> SocketAddr {
        self.inner.addr
    }

    /// Its URL, `http://127.0.0.1:<port>`, for [`Proxy::new`](crate::http::Proxy::new) or
    /// `HTTPS_PROXY`.
    pub fn url(&self) -> String {
        format!("http://{}", self.inner.addr)
    }

    /// Every request received so far, in order of arrival.
    pub fn requests(&self) -> Vec<ProxiedRequest> {
        self.inner.state.lock_requests().clone()
    }

    /// The targets (`host:port`) of the requests tunnelled or forwarded so far (refused ones
    /// left out), in order of arrival.
    pub fn targets(&self) -> Vec<String> {
        self.inner
            .state
            .lock_requests()
            .iter()
            .filter(|r| !r.refused)
            .map(|r| r.target.clone())
            .collect()
    }

    /// Stop: no new connections, open connections and tunnels closed, every task ended when
    /// this returns.
    pub async fn shutdown(&self) {
        self.inner.server.shutdown().await;
        let mut tunnels = std::mem::take(
            &mut *self
                .inner
                .state
                .tunnels
                .lock()
                .unwrap_or_else(|e| e.into_inner()),
        );
        tunnels.shutdown().await;
    }
}

struct ProxyState {
    /// The `Proxy-Authorization` value required, when credentials are.
    authorization: Option<String>,
    hosts: BTreeMap<String, SocketAddr>,
    requests: Mutex<Vec<ProxiedRequest>>,
    /// The running tunnels: aborted when the proxy is dropped or shut down.
    tunnels: Mutex<JoinSet<()>>,
}

impl ProxyState {
    fn lock_requests(&self) -> std::sync::MutexGuard<'_, Vec<ProxiedRequest>> {
        self.requests.lock().unwrap_or_else(|e| e.into_inner())
    }

    fn authorized(&self, headers: &http::HeaderMap) -> bool {
        match &self.authorization {
            None => true,
            Some(expected) => headers
                .get(header::PROXY_AUTHORIZATION)
                .is_some_and(|given| given.as_bytes() == expected.as_bytes()),
        }
    }

    /// Opens a connection to `host:port`, through the host mappings first, within 10 s.
    async fn connect(&self, host: &str, port: u16) -> std::io::Result<TcpStream> {
        let bare = host
            .strip_prefix('[')
            .and_then(|h| h.strip_suffix(']'))
            .unwrap_or(host);
        let connecting = async {
            match self.hosts.get(&bare.to_ascii_lowercase()) {
                Some(addr) => TcpStream::connect(addr).await,
                None => TcpStream::connect((bare, port)).await,
            }
        };
        tokio::time::timeout(std::time::Duration::from_secs(10), connecting)
            .await
            .unwrap_or_else(|_| {
                Err(std::io::Error::new(
                    std::io::ErrorKind::TimedOut,
                    "the target did not accept the connection within 10 s",
                ))
            })
    }
}

type ProxyBody = BoxBody<Bytes, hyper::Error>;

async fn serve(stream: TcpStream, state: Arc<ProxyState>) {
    let service = service_fn(move |req| handle(state.clone(), req));
    if let Err(e) = hyper::server::conn::http1::Builder::new()
        .serve_connection(TokioIo::new(stream), service)
        .with_upgrades()
        .await
    {
        tracing::debug!(error = %e, "test proxy: connection ended");
    }
}

fn status(code: StatusCode, text: &'static str) -> Response<ProxyBody> {
    let mut r = Response::new(
        Full::new(Bytes::from_static(text.as_bytes()))
            .map_err(|never| match never {})
            .boxed(),
    );
    *r.status_mut() = code;
    r
}

async fn handle(
    state: Arc<ProxyState>,
    req: Request<Incoming>,
) -> std::result::Result<Response<ProxyBody>, Infallible> {
    let Some(authority) = req.uri().authority().cloned() else {
        return Ok(status(
            StatusCode::BAD_REQUEST,
            "a proxy request names its target: CONNECT host:port or an absolute URL",
        ));
    };
    let tunnel = req.method() == Method::CONNECT;
    let port = authority
        .port_u16()
        .unwrap_or(if tunnel { 443 } else { 80 });
    let host = authority.host().to_string();
    let authorized = state.authorized(req.headers());
    state.lock_requests().push(ProxiedRequest {
        method: req.method().to_string(),
        target: format!("{host}:{port}"),
        path: (!tunnel).then(|| req.uri().path().to_string()),
        refused: !authorized,
    });
    if !authorized {
        let mut r = status(
            StatusCode::PROXY_AUTHENTICATION_REQUIRED,
            "proxy authentication required",
        );
        r.headers_mut().insert(
            header::PROXY_AUTHENTICATE,
            HeaderValue::from_static("Basic realm=\"test proxy\""),
        );
        return Ok(r);
    }
    let upstream = match state.connect(&host, port).await {
        Ok(upstream) => upstream,
        Err(e) => {
            tracing::debug!(error = %e, "test proxy: the target cannot be reached");
            return Ok(status(
                StatusCode::BAD_GATEWAY,
                "the target cannot be reached",
            ));
        }
    };
    if tunnel {
        let mut tunnels = state.tunnels.lock().unwrap_or_else(|e| e.into_inner());
        while tunnels.try_join_next().is_some() {}
        tunnels.spawn(async move {
            let mut upstream = upstream;
            match hyper::upgrade::on(req).await {
                Ok(upgraded) => {
                    let mut client = TokioIo::new(upgraded);
                    let _ = tokio::io::copy_bidirectional(&mut client, &mut upstream).await;
                }
                Err(e) => tracing::debug!(error = %e, "test proxy: the tunnel was not opened"),
            }
        });
        let mut r = Response::new(Empty::new().map_err(|never| match never {}).boxed());
        *r.status_mut() = StatusCode::OK;
        return Ok(r);
    }
    Ok(forward(&state, upstream, req).await)
}

/// Sends `req` (absolute form) to `upstream` in origin form and returns its response.
async fn forward(
    state: &ProxyState,
    upstream: TcpStream,
    req: Request<Incoming>,
) -> Response<ProxyBody> {
    let (mut parts, body) = req.into_parts();
    let origin_form = parts
        .uri
        .path_and_query()
        .map(|pq| pq.as_str())
        .unwrap_or("/")
        .parse::<http::Uri>();
    let Ok(origin_form) = origin_form else {
        return status(StatusCode::BAD_REQUEST, "the request path is not valid");
    };
    parts.uri = origin_form;
    parts.headers.remove(header::PROXY_AUTHORIZATION);
    parts.headers.remove("proxy-connection");
    let (mut sender, connection) =
        match hyper::client::conn::http1::handshake(TokioIo::new(upstream)).await {
            Ok(pair) => pair,
            Err(_) => return status(StatusCode::BAD_GATEWAY, "the target did not speak HTTP"),
        };
    // The upstream connection's task is one of the proxy's: ended by `shutdown` too.
    state
        .tunnels
        .lock()
        .unwrap_or_else(|e| e.into_inner())
        .spawn(async move {
            let _ = connection.await;
        });
    match sender.send_request(Request::from_parts(parts, body)).await {
        Ok(response) => response.map(|b| b.boxed()),
        Err(_) => status(StatusCode::BAD_GATEWAY, "the target did not answer"),
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use tokio::io::{AsyncReadExt, AsyncWriteExt};

    async fn exchange(proxy: &TestProxy, request: &str) -> String {
        let mut stream = TcpStream::connect(proxy.local_addr()).await.unwrap();
        stream.write_all(request.as_bytes()).await.unwrap();
        let mut buf = vec![0u8; 1024];
        let n = stream.read(&mut buf).await.unwrap();
        String::from_utf8_lossy(&buf[..n]).into_owned()
    }

    #[tokio::test]
    async fn requires_the_configured_credentials() {
        let proxy = TestProxy::builder()
            .basic_auth("alice", "s3cret")
            .start()
            .await
            .unwrap();
        let reply = exchange(
            &proxy,
            "CONNECT 127.0.0.1:1 HTTP/1.1\r\nHost: 127.0.0.1:1\r\n\r\n",
        )
        .await;
        assert!(reply.starts_with("HTTP/1.1 407"), "{reply}");
        assert!(reply.contains("proxy-authenticate"), "{reply}");
        let requests = proxy.requests();
        assert_eq!(requests.len(), 1);
        assert!(requests[0].refused);
        assert_eq!(requests[0].target, "127.0.0.1:1");
        assert!(proxy.targets().is_empty());
        assert!(!format!("{proxy:?}").contains("s3cret"));
        proxy.shutdown().await;
    }

    #[tokio::test]
    async fn tunnels_bytes_both_ways() {
        let echo = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
        let echo_addr = echo.local_addr().unwrap();
        tokio::spawn(async move {
            let (mut s, _) = echo.accept().await.unwrap();
            let mut buf = [0u8; 5];
            s.read_exact(&mut buf).await.unwrap();
            s.write_all(&buf).await.unwrap();
        });
        let proxy = TestProxy::builder()
            .resolve("echo.test", echo_addr)
            .start()
            .await
            .unwrap();
        let mut stream = TcpStream::connect(proxy.local_addr()).await.unwrap();
        stream
            .write_all(b"CONNECT echo.test:443 HTTP/1.1\r\nHost: echo.test:443\r\n\r\n")
            .await
            .unwrap();
        let mut head = Vec::new();
        while !head.ends_with(b"\r\n\r\n") {
            let mut byte = [0u8; 1];
            stream.read_exact(&mut byte).await.unwrap();
            head.push(byte[0]);
        }
        assert!(head.starts_with(b"HTTP/1.1 200"), "{head:?}");
        stream.write_all(b"hello").await.unwrap();
        let mut back = [0u8; 5];
        stream.read_exact(&mut back).await.unwrap();
        assert_eq!(&back, b"hello");
        assert_eq!(proxy.targets(), vec!["echo.test:443".to_string()]);
        proxy.shutdown().await;
    }
}
