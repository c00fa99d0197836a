//! The connector under TLS that goes through the proxy a target's [`ProxyRules`] name: an HTTP
//! `CONNECT` tunnel for `https://` targets, a connection to the proxy marked as proxied (so that
//! requests go out in absolute form) for `http://` targets, a direct connection otherwise.

use std::error::Error as StdError;
use std::fmt;
use std::future::Future;
use std::io;
use std::pin::Pin;
use std::sync::Arc;
use std::task::{Context, Poll};

use hyper::rt::{Read, ReadBufCursor, Write};
use hyper_util::client::legacy::connect::{Connected, Connection, HttpConnector};
use hyper_util::rt::TokioIo;
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::TcpStream;
use tower_service::Service;

use super::{ProxyRoute, ProxyRules};
use crate::error::ErrorKind;

/// The most bytes of a proxy's reply to `CONNECT` read before its head must have ended.
const MAX_CONNECT_REPLY: usize = 8 * 1024;

type BoxError = Box<dyn StdError + Send + Sync>;

/// Connects to a target directly or through its proxy (see the module documentation).
#[derive(Clone)]
pub(crate) struct ProxyConnector {
    tcp: HttpConnector,
    rules: Arc<ProxyRules>,
}

impl ProxyConnector {
    pub(crate) fn new(tcp: HttpConnector, rules: Arc<ProxyRules>) -> Self {
        ProxyConnector { tcp, rules }
    }
}

impl Service<http::Uri> for ProxyConnector {
    type Response = ProxyStream;
    type Error = BoxError;
    type Future = Pin<Box<dyn Future<Output = Result<ProxyStream, BoxError>> + Send>>;

    fn poll_ready(&mut self, cx: &mut Context<'_>) -> Poll<Result<(), BoxError>> {
        Service::<http::Uri>::poll_ready(&mut self.tcp, cx).map_err(Into::into)
    }

    fn call(&mut self, target: http::Uri) -> Self::Future {
        let mut tcp = self.tcp.clone();
        let Some(route) = self.rules.route(&target).cloned() else {
            return Box::pin(async move {
                let io = tcp.call(target).await?;
                Ok(ProxyStream {
                    io,
                    forwarding: false,
                })
            });
        };
        Box::pin(async move {
            let io = tcp
                .call(route.uri.clone())
                .await
                .map_err(|e| ProxyError::unreachable(&route, e.into()))?;
            let https = target
                .scheme_str()
                .is_some_and(|s| s.eq_ignore_ascii_case("https"));
            if https {
                let stream = tunnel(io.into_inner(), &target, &route).await?;
                tracing::debug!(proxy = %route.authority(), "tunnel through the proxy established");
                Ok(ProxyStream {
                    io: TokioIo::new(stream),
                    forwarding: false,
                })
            } else {
                Ok(ProxyStream {
                    io,
                    forwarding: true,
                })
            }
        })
    }
}

/// Asks the proxy for a tunnel to `target` over `stream` and reads its answer.
async fn tunnel(
    mut stream: TcpStream,
    target: &http::Uri,
    route: &ProxyRoute,
) -> Result<TcpStream, ProxyError> {
    let Some(host) = target.host() else {
        return Err(ProxyError::new(
            ErrorKind::Config,
            format!("no host to ask the proxy {} for", route.authority()),
        ));
    };
    let authority = format!("{host}:{}", target.port_u16().unwrap_or(443));
    let mut request = format!("CONNECT {authority} HTTP/1.1\r\nHost: {authority}\r\n").into_bytes();
    if let Some(value) = route.authorization() {
        request.extend_from_slice(b"Proxy-Authorization: ");
        request.extend_from_slice(value.as_bytes());
        request.extend_from_slice(b"\r\n");
    }
    request.extend_from_slice(b"\r\n");
    stream
        .write_all(&request)
        .await
        .map_err(|e| ProxyError::io(route, "the CONNECT request could not be sent", e))?;

    let mut reply = Vec::with_capacity(512);
    // Interim (1xx) replies before the final one are skipped; every head read counts against
    // the bound.
    let (status, reason, head_end) = loop {
        match scan_connect_reply(&reply) {
            ConnectReply::Final {
                status,
                reason,
                head_end,
            } => break (status, reason, head_end),
            ConnectReply::NotHttp => {
                return Err(ProxyError::new(
                    ErrorKind::Connect,
                    format!(
                        "the proxy {} answered CONNECT with something other than HTTP",
                        route.authority()
                    ),
                ))
            }
            ConnectReply::Incomplete => {}
        }
        if reply.len() >= MAX_CONNECT_REPLY {
            return Err(ProxyError::new(
                ErrorKind::Connect,
                format!(
                    "the proxy {} answered CONNECT with more than {MAX_CONNECT_REPLY} bytes of reply heads",
                    route.authority()
                ),
            ));
        }
        let mut buf = [0u8; 1024];
        let n = stream
            .read(&mut buf)
            .await
            .map_err(|e| ProxyError::io(route, "the reply to CONNECT could not be read", e))?;
        if n == 0 {
            return Err(ProxyError::new(
                ErrorKind::Connect,
                format!(
                    "the proxy {} closed the connection without answering CONNECT",
                    route.authority()
                ),
            ));
        }
        reply.extend_from_slice(&buf[..n]);
    };
    match status {
        200..=299 if reply.len() > head_end => Err(ProxyError::new(
            ErrorKind::Connect,
            format!(
                "the proxy {} sent data through the tunnel before the client did",
                route.authority()
            ),
        )),
        200..=299 => Ok(stream),
        407 => Err(ProxyError::new(
            ErrorKind::Auth,
            if route.authorization().is_some() {
                format!(
                    "the proxy {} refused the credentials (HTTP 407 Proxy Authentication Required)",
                    route.authority()
                )
            } else {
                format!(
                    "the proxy {} requires authentication (HTTP 407 Proxy Authentication \
                     Required): set its credentials",
                    route.authority()
                )
            },
        )),
        _ => Err(ProxyError {
            tunnel_status: Some(status),
            ..ProxyError::new(
                ErrorKind::Connect,
                format!(
                    "the proxy {} refused a tunnel to {authority}: HTTP {status}{reason}",
                    route.authority()
                ),
            )
        }),
    }
}

/// What the bytes a proxy has answered to `CONNECT` so far amount to.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) enum ConnectReply {
    /// No final head yet: read more.
    Incomplete,
    /// A head that does not start with an `HTTP/1.x` status line.
    NotHttp,
    /// The final (non-1xx) head: its status, its reason phrase (see [`status_line`]), and
    /// where it ends in the reply (interim heads before it included).
    Final {
        /// The status code.
        status: u16,
        /// ` <reason>`, or empty.
        reason: String,
        /// The offset just past the head's blank line.
        head_end: usize,
    },
}

/// Reads the heads in `reply`, skipping interim (1xx) ones, up to the final one.
pub(crate) fn scan_connect_reply(reply: &[u8]) -> ConnectReply {
    let mut start = 0;
    loop {
        let Some(len) = find_head_end(&reply[start..]) else {
            return ConnectReply::Incomplete;
        };
        let head_end = start + len;
        let Some((status, reason)) = status_line(&reply[start..head_end]) else {
            return ConnectReply::NotHttp;
        };
        if (100..200).contains(&status) {
            start = head_end;
            continue;
        }
        return ConnectReply::Final {
            status,
            reason,
            head_end,
        };
    }
}

/// The length of the head of `reply` (through the blank line), once it is complete.
fn find_head_end(reply: &[u8]) -> Option<usize> {
    reply
        .windows(4)
        .position(|w| w == b"\r\n\r\n")
        .map(|i| i + 4)
}

/// The status code of an `HTTP/1.x` status line and its reason phrase (` <reason>`, printable
/// ASCII only, at most 100 characters; empty when there is none).
fn status_line(head: &[u8]) -> Option<(u16, String)> {
    let line_end = head.iter().position(|&b| b == b'\r')?;
    let line = std::str::from_utf8(&head[..line_end]).ok()?;
    let mut parts = line.splitn(3, ' ');
    let version = parts.next()?;
    if !version.starts_with("HTTP/1.") {
        return None;
    }
    let code = parts.next()?;
    if code.len() != 3 {
        return None;
    }
    let status = code
        .parse::<u16>()
        .ok()
        .filter(|s| (100..600).contains(s))?;
    let reason: String = parts
        .next()
        .unwrap_or_default()
        .chars()
        .filter(|c| c.is_ascii_graphic() || *c == ' ')
        .take(100)
        .collect();
    let reason = reason.trim();
    Some((
        status,
        if reason.is_empty() {
            String::new()
        } else {
            format!(" {reason}")
        },
    ))
}

/// Why a connection through a proxy could not be made. Never holds the credentials.
#[derive(Debug)]
pub(crate) struct ProxyError {
    kind: ErrorKind,
    message: String,
    source: Option<BoxError>,
    /// The status of a refused CONNECT.
    tunnel_status: Option<u16>,
}

impl ProxyError {
    fn new(kind: ErrorKind, message: String) -> Self {
        ProxyError {
            kind,
            message,
            source: None,
            tunnel_status: None,
        }
    }

    fn unreachable(route: &ProxyRoute, source: BoxError) -> Self {
        ProxyError {
            kind: ErrorKind::Connect,
            message: format!("the proxy {} could not be reached", route.authority()),
            source: Some(source),
            tunnel_status: None,
        }
    }

    fn io(route: &ProxyRoute, what: &str, source: io::Error) -> Self {
        ProxyError {
            kind: ErrorKind::Connect,
            message: format!("{what} (proxy {})", route.authority()),
            source: Some(Box::new(source)),
            tunnel_status: None,
        }
    }

    /// The kind of the driver error this becomes: `Auth` when the proxy wants other
    /// credentials, `Connect` otherwise.
    pub(crate) fn kind(&self) -> ErrorKind {
        self.kind
    }

    /// The proxy could not reach the target (it answered the CONNECT with 502, 503 or 504:
    /// typically a host name it cannot resolve, or a target that refuses): like a refused
    /// connection, worth only a brief retry.
    pub(crate) fn target_unreachable(&self) -> bool {
        matches!(self.tunnel_status, Some(502..=504))
    }
}

impl fmt::Display for ProxyError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.message)
    }
}

impl StdError for ProxyError {
    fn source(&self) -> Option<&(dyn StdError + 'static)> {
        self.source
            .as_deref()
            .map(|e| e as &(dyn StdError + 'static))
    }
}

/// A connection made by [`ProxyConnector`]: to the target, through a tunnel, or to the proxy
/// for requests in absolute form (`forwarding`).
pub(crate) struct ProxyStream {
    io: TokioIo<TcpStream>,
    forwarding: bool,
}

impl Connection for ProxyStream {
    fn connected(&self) -> Connected {
        self.io.connected().proxy(self.forwarding)
    }
}

impl Read for ProxyStream {
    fn poll_read(
        mut self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        buf: ReadBufCursor<'_>,
    ) -> Poll<io::Result<()>> {
        Pin::new(&mut self.io).poll_read(cx, buf)
    }
}

impl Write for ProxyStream {
    fn poll_write(
        mut self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        buf: &[u8],
    ) -> Poll<io::Result<usize>> {
        Pin::new(&mut self.io).poll_write(cx, buf)
    }

    fn poll_flush(mut self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<io::Result<()>> {
        Pin::new(&mut self.io).poll_flush(cx)
    }

    fn poll_shutdown(mut self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<io::Result<()>> {
        Pin::new(&mut self.io).poll_shutdown(cx)
    }

    fn is_write_vectored(&self) -> bool {
        self.io.is_write_vectored()
    }

    fn poll_write_vectored(
        mut self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        bufs: &[io::IoSlice<'_>],
    ) -> Poll<io::Result<usize>> {
        Pin::new(&mut self.io).poll_write_vectored(cx, bufs)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn status_lines_are_parsed_strictly() {
        assert_eq!(
            status_line(b"HTTP/1.1 200 Connection established\r\n\r\n"),
            Some((200, " Connection established".to_string()))
        );
        assert_eq!(
            status_line(b"HTTP/1.0 407\r\n\r\n"),
            Some((407, String::new()))
        );
        assert_eq!(
            status_line(b"HTTP/1.1 502 Bad\x07 Gateway\r\n\r\n"),
            Some((502, " Bad Gateway".to_string()))
        );
        for bad in [
            &b"HTTP/1.1 2000 OK\r\n\r\n"[..],
            b"SSH-2.0-OpenSSH\r\n\r\n",
            b"HTTP/1.1 abc\r\n\r\n",
            b"HTTP/1.1 099 Low\r\n\r\n",
            b"HTTP/2 200\r\n\r\n",
        ] {
            assert_eq!(status_line(bad), None, "{:?}", String::from_utf8_lossy(bad));
        }
    }

    /// A proxy on loopback that reads the CONNECT head, answers `reply` and keeps the
    /// connection open until the client closes it; the route to it.
    async fn scripted_proxy(reply: &'static [u8]) -> (TcpStream, ProxyRoute) {
        use tokio::io::AsyncReadExt as _;
        let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
        let addr = listener.local_addr().unwrap();
        tokio::spawn(async move {
            let (mut conn, _) = listener.accept().await.unwrap();
            let mut head = Vec::new();
            let mut buf = [0u8; 256];
            while find_head_end(&head).is_none() {
                let n = conn.read(&mut buf).await.unwrap();
                if n == 0 {
                    return;
                }
                head.extend_from_slice(&buf[..n]);
            }
            let _ = conn.write_all(reply).await;
            let _ = conn.read(&mut buf).await;
        });
        let route = ProxyRoute {
            authority: addr.to_string(),
            uri: format!("http://{addr}").parse().unwrap(),
            authorization: None,
        };
        (TcpStream::connect(addr).await.unwrap(), route)
    }

    #[tokio::test]
    async fn interim_replies_before_the_final_one_are_skipped() {
        let target: http::Uri = "https://example.invalid:443/".parse().unwrap();
        let (stream, route) = scripted_proxy(
            b"HTTP/1.1 100 Continue\r\n\r\nHTTP/1.1 102 Processing\r\nX: y\r\n\r\n\
              HTTP/1.1 200 Connection established\r\n\r\n",
        )
        .await;
        assert!(tunnel(stream, &target, &route).await.is_ok());

        let (stream, route) =
            scripted_proxy(b"HTTP/1.1 100 Continue\r\n\r\nHTTP/1.1 403 Forbidden\r\n\r\n").await;
        let err = tunnel(stream, &target, &route).await.unwrap_err();
        assert_eq!(err.kind(), ErrorKind::Connect);
        assert!(err.to_string().contains("HTTP 403 Forbidden"), "{err}");
    }

    #[tokio::test]
    async fn endless_interim_replies_are_bounded() {
        let target: http::Uri = "https://example.invalid:443/".parse().unwrap();
        let interim: &'static [u8] = b"HTTP/1.1 100 Continue\r\n\r\n"
            .repeat(MAX_CONNECT_REPLY / 20)
            .leak();
        let (stream, route) = scripted_proxy(interim).await;
        let err = tunnel(stream, &target, &route).await.unwrap_err();
        assert!(err.to_string().contains("bytes of reply heads"), "{err}");
    }

    #[test]
    fn the_head_ends_at_the_first_blank_line() {
        assert_eq!(find_head_end(b"HTTP/1.1 200 OK\r\n"), None);
        assert_eq!(find_head_end(b"HTTP/1.1 200 OK\r\n\r\nrest"), Some(19));
    }
}
