//! The mock warehouse's HTTP/1.1 server: accepts connections on loopback (over TLS when the
//! mock serves HTTPS), routes each request
//! (Thrift on the HTTP path, the feature-flag and telemetry endpoints, CloudFetch files, the
//! OAuth endpoints, 404 elsewhere), counts and records it, applies injected faults, checks the
//! bearer token, and stops without leaving a task behind.

use std::future::Future;
use std::net::SocketAddr;
use std::sync::{Arc, Mutex};
use std::time::Instant;

use bytes::Bytes;
use http::{header, HeaderMap, HeaderValue, Method, Request, Response, StatusCode};
use http_body_util::combinators::BoxBody;
use http_body_util::{BodyExt, Full, StreamBody};
use hyper::body::{Frame, Incoming};
use hyper::service::service_fn;
use hyper_util::rt::TokioIo;
use tokio::net::{TcpListener, TcpStream};
use tokio::sync::oneshot;
use tokio::task::{JoinHandle, JoinSet};

use super::cloudfetch::{self, Variant};
use super::endpoint;
use super::fault::{FaultKind, Injected, Occasion};
use super::oauth;
use super::service;
use super::staging;
use super::state::{push_bounded, Id, Shared};
use super::telemetry::{feature_flag_path, FeatureFlagRequest, Upload};
use super::RecordedRequest;
use super::{CLOUDFETCH_HEADER, STAGING_HEADER};
use crate::error::{Error, ErrorKind, Result};

/// The body sent by a [`FaultKind::CorruptBody`] fault: neither strict binary Thrift (its first
/// four bytes are not a version word) nor JSON.
pub(crate) const GARBAGE_BODY: &[u8] = b"<html><body>502 this is not a reply</body></html>";

/// Bind `127.0.0.1:port` (0 = an ephemeral port).
pub(crate) async fn bind(port: u16) -> Result<TcpListener> {
    TcpListener::bind(("127.0.0.1", port)).await.map_err(|e| {
        Error::new(
            ErrorKind::Config,
            format!("the mock server could not listen on 127.0.0.1:{port}"),
        )
        .with_source(e)
    })
}

/// A running server (the mock warehouse, the test proxy): its accept task and the signal that
/// stops it.
#[derive(Debug)]
pub(crate) struct ServerHandle {
    stop: Mutex<Option<oneshot::Sender<()>>>,
    task: Mutex<Option<JoinHandle<()>>>,
}

impl ServerHandle {
    /// Start serving `listener` on the current tokio runtime, each connection in a task of its
    /// own running `serve`.
    pub(crate) fn spawn<F, Fut>(listener: TcpListener, serve: F) -> Self
    where
        F: Fn(TcpStream) -> Fut + Send + 'static,
        Fut: Future<Output = ()> + Send + 'static,
    {
        let (tx, rx) = oneshot::channel();
        let task = tokio::spawn(accept_loop(listener, serve, rx));
        ServerHandle {
            stop: Mutex::new(Some(tx)),
            task: Mutex::new(Some(task)),
        }
    }

    /// Stop accepting, end every connection, and wait until every task has finished.
    pub(crate) async fn shutdown(&self) {
        let stop = self.stop.lock().unwrap_or_else(|e| e.into_inner()).take();
        if let Some(stop) = stop {
            let _ = stop.send(());
        }
        let task = self.task.lock().unwrap_or_else(|e| e.into_inner()).take();
        if let Some(task) = task {
            let _ = task.await;
        }
    }
}

impl Drop for ServerHandle {
    fn drop(&mut self) {
        // Aborting the accept task drops its JoinSet, which aborts every connection task.
        if let Some(task) = self
            .task
            .get_mut()
            .unwrap_or_else(|e| e.into_inner())
            .take()
        {
            task.abort();
        }
    }
}

async fn accept_loop<F, Fut>(listener: TcpListener, serve: F, mut stop: oneshot::Receiver<()>)
where
    F: Fn(TcpStream) -> Fut,
    Fut: Future<Output = ()> + Send + 'static,
{
    let mut connections = JoinSet::new();
    loop {
        tokio::select! {
            _ = &mut stop => break,
            accepted = listener.accept() => match accepted {
                Ok((stream, _peer)) => {
                    connections.spawn(serve(stream));
                }
                Err(e) => {
                    // e.g. too many open files: back off a little instead of spinning.
                    tracing::debug!(error = %e, "mock server: accept failed");
                    tokio::time::sleep(std::time::Duration::from_millis(10)).await;
                }
            },
            Some(_) = connections.join_next(), if !connections.is_empty() => {}
        }
    }
    drop(listener);
    connections.shutdown().await;
}

/// Serves one connection of the mock warehouse, after a TLS handshake when `tls` is set.
pub(crate) async fn serve_connection(
    stream: TcpStream,
    shared: Arc<Shared>,
    tls: Option<tokio_rustls::TlsAcceptor>,
) {
    let _ = stream.set_nodelay(true);
    match tls {
        None => serve_http(TokioIo::new(stream), shared).await,
        Some(acceptor) => match acceptor.accept(stream).await {
            Ok(stream) => serve_http(TokioIo::new(stream), shared).await,
            // An untrusted server certificate, a missing client certificate...
            Err(e) => tracing::debug!(error = %e, "mock warehouse: TLS handshake failed"),
        },
    }
}

async fn serve_http<I>(io: I, shared: Arc<Shared>)
where
    I: hyper::rt::Read + hyper::rt::Write + Unpin + Send + 'static,
{
    let service = service_fn(move |req| {
        let shared = shared.clone();
        async move { handle(shared, req).await }
    });
    if let Err(e) = hyper::server::conn::http1::Builder::new()
        .keep_alive(true)
        .serve_connection(io, service)
        .await
    {
        tracing::debug!(error = %e, "mock warehouse: connection ended");
    }
}

/// Returned by the request handler to make hyper close the connection without a reply.
#[derive(Debug)]
pub(crate) struct DropConnection;

impl std::fmt::Display for DropConnection {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str("connection dropped by an injected fault")
    }
}

impl std::error::Error for DropConnection {}

/// A reply before it is sent: the whole body in memory.
type Reply = Response<Bytes>;

/// A reply as sent: whole, or cut short by a [`FaultKind::TruncatedBody`] fault.
type Body = BoxBody<Bytes, DropConnection>;

fn reply(status: StatusCode, content_type: &'static str, body: impl Into<Bytes>) -> Reply {
    let mut r = Response::new(body.into());
    *r.status_mut() = status;
    r.headers_mut()
        .insert(header::CONTENT_TYPE, HeaderValue::from_static(content_type));
    r
}

fn text(status: StatusCode, body: impl Into<String>) -> Reply {
    reply(status, "text/plain; charset=utf-8", body.into())
}

fn json(status: StatusCode, body: &serde_json::Value) -> Reply {
    reply(status, "application/json", body.to_string())
}

enum Route {
    Thrift,
    FeatureFlags { driver: String, version: String },
    TelemetryExt,
    TelemetryUnauth,
    CloudFetchFile { op: Id, chunk: usize },
    OAuthDiscovery,
    OAuthAuthorize,
    OAuthToken,
    Staging { ticket: String },
    WrongMethod(&'static str),
    NotFound,
}

fn route(http_path: &str, method: &Method, path: &str) -> Route {
    let post = method == Method::POST;
    if path == http_path {
        return if post {
            Route::Thrift
        } else {
            Route::WrongMethod("POST")
        };
    }
    if path == "/telemetry-ext" {
        return if post {
            Route::TelemetryExt
        } else {
            Route::WrongMethod("POST")
        };
    }
    if path == "/telemetry-unauth" {
        return if post {
            Route::TelemetryUnauth
        } else {
            Route::WrongMethod("POST")
        };
    }
    if path.starts_with(cloudfetch::FILE_PATH_PREFIX) {
        return match cloudfetch::parse_file_path(path) {
            Some((op, chunk)) if method == Method::GET => Route::CloudFetchFile { op, chunk },
            Some(_) => Route::WrongMethod("GET"),
            None => Route::NotFound,
        };
    }
    if let Some(ticket) = path.strip_prefix(staging::PATH_PREFIX) {
        return if [Method::PUT, Method::GET, Method::DELETE].contains(method) {
            Route::Staging {
                ticket: ticket.to_string(),
            }
        } else {
            Route::WrongMethod("PUT, GET, DELETE")
        };
    }
    match path {
        oauth::DISCOVERY_PATH if method == Method::GET => return Route::OAuthDiscovery,
        oauth::AUTHORIZE_PATH if method == Method::GET => return Route::OAuthAuthorize,
        oauth::TOKEN_PATH if post => return Route::OAuthToken,
        oauth::DISCOVERY_PATH | oauth::AUTHORIZE_PATH => return Route::WrongMethod("GET"),
        oauth::TOKEN_PATH => return Route::WrongMethod("POST"),
        _ => {}
    }
    if let Some((driver, version)) = feature_flag_path(path) {
        return if method == Method::GET {
            Route::FeatureFlags { driver, version }
        } else {
            Route::WrongMethod("GET")
        };
    }
    Route::NotFound
}

/// Whether `headers` carry `Authorization: Bearer <token>` with the mock's static token or an
/// OAuth access token it issued that has neither expired nor been revoked.
fn authorized(shared: &Shared, headers: &HeaderMap) -> bool {
    match bearer(headers) {
        Some(given) if given == shared.config.token => true,
        Some(given) => shared.lock().oauth.accepts(given, Instant::now()),
        None => false,
    }
}

/// The name of HiveServer2's authentication cookie.
const HIVE_AUTH_COOKIE: &str = "hive.server2.auth";

/// HiveServer2's HTTP authentication of a Thrift request: a `hive.server2.auth` cookie the mock
/// issued is enough; else `Authorization: Basic` must carry the configured credentials, and
/// the reply then sets a new cookie (`Ok(Some(set-cookie))`). A bearer token gets HTTP 500 (as
/// HiveServer2's Basic decoder fails on it); anything else 401.
fn hive_gate(
    shared: &Shared,
    headers: &HeaderMap,
) -> std::result::Result<Option<HeaderValue>, Box<Reply>> {
    let Some(auth) = &shared.config.hive_auth else {
        return Ok(None);
    };
    let cookie = headers
        .get_all(header::COOKIE)
        .iter()
        .filter_map(|v| v.to_str().ok())
        .flat_map(|v| v.split(';'))
        .filter_map(|pair| pair.trim().split_once('='))
        .find(|(name, _)| *name == HIVE_AUTH_COOKIE)
        .map(|(_, value)| value.to_string());
    {
        let mut st = shared.lock();
        if cookie.is_some_and(|c| st.hive_cookies.contains(&c)) {
            st.cookie_authenticated += 1;
            return Ok(None);
        }
    }
    let given = headers
        .get(header::AUTHORIZATION)
        .and_then(|v| v.to_str().ok())
        .and_then(|v| v.split_once(' '));
    match given {
        Some((scheme, _)) if scheme.eq_ignore_ascii_case("bearer") => {
            shared.lock().unauthorized += 1;
            Err(Box::new(text(
                StatusCode::INTERNAL_SERVER_ERROR,
                "Authentication Error: the Authorization header is not Basic",
            )))
        }
        Some((scheme, _)) if scheme.eq_ignore_ascii_case("basic") => {
            let decoded = basic_text(headers).flatten();
            let expected = format!("{}:{}", auth.user, auth.password);
            if decoded.as_deref() != Some(expected.as_str()) {
                shared.lock().unauthorized += 1;
                return Err(Box::new(basic_challenge()));
            }
            let value = uuid::Uuid::new_v4().simple().to_string();
            let set_cookie = HeaderValue::from_str(&format!(
                "{HIVE_AUTH_COOKIE}={value}; Path=/; Max-Age=86400; HttpOnly"
            ))
            .ok();
            push_bounded(&mut shared.lock().hive_cookies, value);
            Ok(set_cookie)
        }
        _ => {
            shared.lock().unauthorized += 1;
            Err(Box::new(basic_challenge()))
        }
    }
}

/// The decoded text (`user:password`) of an `Authorization: Basic` header: `None` without
/// one, `Some(None)` when it is not base64 of UTF-8 text.
pub(crate) fn basic_text(headers: &HeaderMap) -> Option<Option<String>> {
    use base64::Engine as _;
    let value = headers.get(header::AUTHORIZATION)?.to_str().ok()?;
    let (scheme, encoded) = value.split_once(' ')?;
    if !scheme.eq_ignore_ascii_case("basic") {
        return None;
    }
    Some(
        base64::engine::general_purpose::STANDARD
            .decode(encoded.trim())
            .ok()
            .and_then(|b| String::from_utf8(b).ok()),
    )
}

fn basic_challenge() -> Reply {
    let mut r = text(
        StatusCode::UNAUTHORIZED,
        "Unauthorized: the user name or password is missing or wrong",
    );
    r.headers_mut().insert(
        header::WWW_AUTHENTICATE,
        HeaderValue::from_static("Basic realm=\"HiveServer2\""),
    );
    r
}

/// The token of an `Authorization: Bearer <token>` header.
fn bearer(headers: &HeaderMap) -> Option<&str> {
    let value = headers.get(header::AUTHORIZATION)?.to_str().ok()?;
    let (scheme, given) = value.split_once(' ')?;
    scheme
        .eq_ignore_ascii_case("bearer")
        .then_some(given.trim())
}

/// The headers as `(lower-case name, value)` pairs, without `Authorization`.
fn recordable_headers(headers: &HeaderMap) -> Vec<(String, String)> {
    headers
        .iter()
        .filter(|(name, _)| *name != header::AUTHORIZATION)
        .map(|(name, value)| {
            (
                name.as_str().to_string(),
                String::from_utf8_lossy(value.as_bytes()).into_owned(),
            )
        })
        .collect()
}

fn unauthorized() -> Reply {
    let mut r = text(
        StatusCode::UNAUTHORIZED,
        "Unauthorized: the access token is missing or invalid",
    );
    r.headers_mut()
        .insert(header::WWW_AUTHENTICATE, HeaderValue::from_static("Bearer"));
    r
}

async fn handle(
    shared: Arc<Shared>,
    req: Request<Incoming>,
) -> std::result::Result<Response<Body>, DropConnection> {
    let (reply, truncate) = answer(shared, req).await?;
    Ok(if truncate {
        truncated(reply)
    } else {
        reply.map(|body| Full::new(body).map_err(|never| match never {}).boxed())
    })
}

/// `reply` with its whole length declared but only the first half of its body sent, then the
/// connection closed.
fn truncated(reply: Reply) -> Response<Body> {
    let (mut parts, body) = reply.into_parts();
    parts
        .headers
        .insert(header::CONTENT_LENGTH, HeaderValue::from(body.len()));
    let half = body.slice(..body.len() / 2);
    let frames = futures::stream::iter([Ok(Frame::data(half)), Err(DropConnection)]);
    Response::from_parts(parts, StreamBody::new(frames).boxed())
}

/// The reply to one request, and whether a fault asks to cut its body short.
async fn answer(
    shared: Arc<Shared>,
    req: Request<Incoming>,
) -> std::result::Result<(Reply, bool), DropConnection> {
    let (parts, body) = req.into_parts();
    let body = match body.collect().await {
        Ok(b) => b.to_bytes(),
        // The client went away mid-body: nothing to answer.
        Err(_) => return Err(DropConnection),
    };
    let path = parts.uri.path();
    let mut route = route(&shared.config.http_path, &parts.method, path);
    if shared.config.hive_auth.is_some() && !matches!(route, Route::Thrift) {
        // HiveServer2 serves Thrift only.
        route = Route::NotFound;
    }
    let (name, is_rpc) = match &route {
        Route::Thrift => match service::method_name(&body) {
            Some(m) => (m, true),
            None => (endpoint::MALFORMED_THRIFT.to_string(), false),
        },
        Route::FeatureFlags { .. } => (endpoint::FEATURE_FLAGS.to_string(), false),
        Route::TelemetryExt => (endpoint::TELEMETRY_EXT.to_string(), false),
        Route::TelemetryUnauth => (endpoint::TELEMETRY_UNAUTH.to_string(), false),
        Route::CloudFetchFile { .. } => (endpoint::CLOUDFETCH_FILE.to_string(), false),
        Route::OAuthDiscovery => (endpoint::OAUTH_DISCOVERY.to_string(), false),
        Route::OAuthAuthorize => (endpoint::OAUTH_AUTHORIZE.to_string(), false),
        Route::OAuthToken => (endpoint::OAUTH_TOKEN.to_string(), false),
        Route::Staging { .. } => (endpoint::STAGING.to_string(), false),
        Route::WrongMethod(_) | Route::NotFound => (endpoint::UNKNOWN.to_string(), false),
    };
    let chunk = match &route {
        Route::CloudFetchFile { chunk, .. } => Some(*chunk),
        _ => None,
    };
    let with_authorization = parts.headers.contains_key(header::AUTHORIZATION);
    let headers = recordable_headers(&parts.headers);
    let injected = {
        let mut st = shared.lock();
        st.count(&name);
        let record = RecordedRequest {
            method: parts.method.to_string(),
            path: path.to_string(),
            name: name.clone(),
            headers: headers.clone(),
        };
        push_bounded(&mut st.requests, record);
        if let Some(chunk) = chunk {
            *st.cloudfetch_gets.entry(chunk).or_insert(0) += 1;
            if with_authorization {
                // The workspace token must never go to a presigned URL: record and refuse
                // before any fault, so that no such request goes unnoticed.
                st.cloudfetch_gets_with_authorization += 1;
                drop(st);
                tracing::debug!("mock warehouse: a CloudFetch GET carried an Authorization header");
                let r = text(
                    StatusCode::BAD_REQUEST,
                    "InvalidAuthenticationInfo: a presigned URL must not carry an Authorization header",
                );
                return Ok((r, false));
            }
        }
        if with_authorization && matches!(route, Route::Staging { .. }) {
            // Like CloudFetch files: the workspace token must never reach a presigned URL.
            st.staging.with_authorization += 1;
            drop(st);
            tracing::debug!("mock warehouse: a staging request carried an Authorization header");
            let r = text(
                StatusCode::BAD_REQUEST,
                "InvalidAuthenticationInfo: a presigned URL must not carry an Authorization header",
            );
            return Ok((r, false));
        }
        st.faults.take(Occasion {
            name: &name,
            is_rpc,
            chunk,
            link_issue: false,
        })
    };
    let mut truncate = false;
    let mut variant = None;
    let mut drop_after_run = false;
    if let Some(Injected { kind, delay }) = injected {
        if !delay.is_zero() {
            tokio::time::sleep(delay).await;
        }
        match kind {
            FaultKind::HttpStatus {
                status,
                retry_after,
            } => {
                let code =
                    StatusCode::from_u16(status).unwrap_or(StatusCode::INTERNAL_SERVER_ERROR);
                let mut r = text(code, format!("injected fault: HTTP {status}"));
                if let Some(v) = retry_after.and_then(|v| HeaderValue::from_str(&v).ok()) {
                    r.headers_mut().insert(header::RETRY_AFTER, v);
                }
                return Ok((r, false));
            }
            FaultKind::DropConnection => return Err(DropConnection),
            FaultKind::CorruptBody => {
                let content_type = if is_rpc {
                    "application/x-thrift"
                } else {
                    "application/json"
                };
                return Ok((reply(StatusCode::OK, content_type, GARBAGE_BODY), false));
            }
            FaultKind::TruncatedBody => truncate = true,
            FaultKind::DropConnectionAfterRun => drop_after_run = true,
            other => variant = cloudfetch::variant_of(&other),
        }
    }
    let out = respond(
        &shared, route, &name, &parts, headers, body, is_rpc, variant,
    )
    .await;
    if drop_after_run {
        return Err(DropConnection);
    }
    Ok((out, truncate))
}

/// The reply of `route` (a request named `name`) when no fault intervenes (`variant`: the
/// damaged CloudFetch file a fault asked for). Notes each request that reaches its handler.
#[allow(clippy::too_many_arguments)]
async fn respond(
    shared: &Arc<Shared>,
    route: Route,
    name: &str,
    parts: &http::request::Parts,
    headers: Vec<(String, String)>,
    body: Bytes,
    is_rpc: bool,
    variant: Option<Variant>,
) -> Reply {
    match route {
        Route::NotFound => text(StatusCode::NOT_FOUND, "Not Found"),
        Route::WrongMethod(allow) => {
            let mut r = text(StatusCode::METHOD_NOT_ALLOWED, "Method Not Allowed");
            r.headers_mut()
                .insert(header::ALLOW, HeaderValue::from_static(allow));
            r
        }
        Route::CloudFetchFile { op, chunk } => {
            shared.lock().handled(name);
            let key = parts
                .headers
                .get(CLOUDFETCH_HEADER)
                .and_then(|v| v.to_str().ok());
            match cloudfetch::serve(shared, op, chunk, parts.uri.query(), key, variant).await {
                Ok(file) => reply(StatusCode::OK, "application/octet-stream", file),
                Err(refused) => text(
                    StatusCode::from_u16(refused.status).unwrap_or(StatusCode::FORBIDDEN),
                    refused.message,
                ),
            }
        }
        Route::Staging { ticket } => {
            shared.lock().handled(name);
            let header = parts
                .headers
                .get(STAGING_HEADER)
                .and_then(|v| v.to_str().ok());
            let served = staging::serve(
                shared,
                &ticket,
                &parts.method,
                parts.uri.query(),
                header,
                body,
            );
            let status = StatusCode::from_u16(served.status).unwrap_or(StatusCode::FORBIDDEN);
            reply(status, "application/octet-stream", served.body)
        }
        Route::OAuthDiscovery | Route::OAuthAuthorize | Route::OAuthToken => {
            shared.lock().handled(name);
            match route {
                Route::OAuthDiscovery => oauth::discovery(shared),
                Route::OAuthAuthorize => oauth::authorize(shared, parts.uri.query()),
                _ => oauth::token(shared, &parts.headers, &body),
            }
        }
        Route::Thrift if shared.config.hive_auth.is_some() => {
            let set_cookie = match hive_gate(shared, &parts.headers) {
                Ok(set_cookie) => set_cookie,
                Err(refused) => return *refused,
            };
            if !is_rpc {
                return text(
                    StatusCode::BAD_REQUEST,
                    "Bad Request: the body is not a strict binary Thrift call",
                );
            }
            shared.lock().handled(name);
            let body = service::handle(shared, body).await;
            let mut r = reply(StatusCode::OK, "application/x-thrift", body);
            if let Some(cookie) = set_cookie {
                r.headers_mut().insert(header::SET_COOKIE, cookie);
            }
            r
        }
        _ if !matches!(route, Route::TelemetryUnauth) && !authorized(shared, &parts.headers) => {
            shared.lock().unauthorized += 1;
            unauthorized()
        }
        Route::Thrift if !is_rpc => text(
            StatusCode::BAD_REQUEST,
            "Bad Request: the body is not a strict binary Thrift call",
        ),
        Route::Thrift => {
            shared.lock().handled(name);
            let body = service::handle(shared, body).await;
            reply(StatusCode::OK, "application/x-thrift", body)
        }
        Route::FeatureFlags { driver, version } => {
            let mut st = shared.lock();
            st.handled(name);
            let answer = st.telemetry.feature_flags(FeatureFlagRequest {
                driver,
                version,
                headers,
            });
            json(StatusCode::OK, &answer)
        }
        Route::TelemetryExt | Route::TelemetryUnauth => {
            let (endpoint, had_auth) = match route {
                Route::TelemetryExt => (endpoint::TELEMETRY_EXT, true),
                _ => (
                    endpoint::TELEMETRY_UNAUTH,
                    parts.headers.contains_key(header::AUTHORIZATION),
                ),
            };
            let (upload, answer) = Upload::receive(endpoint, headers, had_auth, body);
            let mut st = shared.lock();
            st.handled(name);
            st.telemetry.record(upload);
            match answer {
                Ok(v) => json(StatusCode::OK, &v),
                Err(v) => json(StatusCode::BAD_REQUEST, &v),
            }
        }
    }
}

/// The address a listener is bound to.
pub(crate) fn local_addr(listener: &TcpListener) -> Result<SocketAddr> {
    listener.local_addr().map_err(|e| {
        Error::new(
            ErrorKind::Config,
            "the mock server's listening address is unknown",
        )
        .with_source(e)
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn bearer_token_is_read_from_a_bearer_authorization_header_only() {
        let mut h = HeaderMap::new();
        assert_eq!(bearer(&h), None);
        h.insert(
            header::AUTHORIZATION,
            HeaderValue::from_static("Bearer t0k"),
        );
        assert_eq!(bearer(&h), Some("t0k"));
        h.insert(
            header::AUTHORIZATION,
            HeaderValue::from_static("bearer t0k"),
        );
        assert_eq!(bearer(&h), Some("t0k"));
        h.insert(
            header::AUTHORIZATION,
            HeaderValue::from_static("Bearer t0kX"),
        );
        assert_ne!(bearer(&h), Some("t0k"));
        h.insert(header::AUTHORIZATION, HeaderValue::from_static("Basic t0k"));
        assert_eq!(bearer(&h), None);
    }

    #[test]
    fn recorded_headers_leave_out_authorization() {
        let mut h = HeaderMap::new();
        h.insert(
            header::AUTHORIZATION,
            HeaderValue::from_static("Bearer secret"),
        );
        h.insert(header::USER_AGENT, HeaderValue::from_static("ua/1"));
        let got = recordable_headers(&h);
        assert_eq!(got, vec![("user-agent".to_string(), "ua/1".to_string())]);
    }

    #[test]
    fn routes_by_method_and_path() {
        let p = "/sql/1.0/warehouses/mock";
        assert!(matches!(route(p, &Method::POST, p), Route::Thrift));
        assert!(matches!(route(p, &Method::GET, p), Route::WrongMethod(_)));
        assert!(matches!(
            route(p, &Method::POST, "/sql/1.0/warehouses/other"),
            Route::NotFound
        ));
        assert!(matches!(
            route(
                p,
                &Method::GET,
                "/api/2.0/connector-service/feature-flags/RUST/1.0"
            ),
            Route::FeatureFlags { .. }
        ));
        assert!(matches!(
            route(p, &Method::POST, "/telemetry-unauth"),
            Route::TelemetryUnauth
        ));
        assert!(matches!(
            route(p, &Method::GET, oauth::DISCOVERY_PATH),
            Route::OAuthDiscovery
        ));
        assert!(matches!(
            route(p, &Method::GET, oauth::AUTHORIZE_PATH),
            Route::OAuthAuthorize
        ));
        assert!(matches!(
            route(p, &Method::POST, oauth::TOKEN_PATH),
            Route::OAuthToken
        ));
        assert!(matches!(
            route(p, &Method::GET, oauth::TOKEN_PATH),
            Route::WrongMethod("POST")
        ));
        assert!(matches!(
            route(p, &Method::POST, oauth::AUTHORIZE_PATH),
            Route::WrongMethod("GET")
        ));
        for method in [Method::PUT, Method::GET, Method::DELETE] {
            assert!(matches!(
                route(p, &method, "/staging/abc"),
                Route::Staging { ticket } if ticket == "abc"
            ));
        }
        assert!(matches!(
            route(p, &Method::POST, "/staging/abc"),
            Route::WrongMethod(_)
        ));
    }
}
