//! The HTTP transport: a pooled hyper 1 client over rustls, with connect and request timeouts,
//! proxies and TLS settings, and the one retry policy of the driver.
//!
//! Everything above this layer talks to an [`HttpTransport`]: the seam that unit tests replace.
//! [`HyperTransport`] is the real one; [`RetryPolicy::send`] wraps any transport with retries.
//! A client builds one transport and sends everything through it (Thrift calls, CloudFetch
//! downloads, staging transfers, telemetry, feature flags, OAuth), so its proxy
//! ([`ProxyConfig`]) and TLS settings ([`HttpConfig`]: extra root certificates, client
//! certificate) apply to every request. Large bodies (files moved to and from volumes) are
//! streamed with [`HttpTransport::send_streamed`], never held whole in memory.
//!
//! ```no_run
//! use databricks_sql::http::{HttpConfig, HttpRequest, HttpTransport, HyperTransport, RetryPolicy};
//!
//! # async fn example() -> databricks_sql::Result<()> {
//! let transport = HyperTransport::new(&HttpConfig::default())?;
//! let url = http::Uri::from_static("https://adb-123.4.azuredatabricks.net/sql/1.0/warehouses/abc");
//! let mut request = HttpRequest::new(http::Method::POST, url);
//! request.headers.insert(
//!     http::header::CONTENT_TYPE,
//!     http::HeaderValue::from_static("application/x-thrift"),
//! );
//! // Ok only for a 2xx reply; throttling and server errors were retried per the policy.
//! let response = RetryPolicy::default().send(&transport, request, true).await?;
//! println!("{} bytes", response.body.len());
//! # Ok(())
//! # }
//! ```

pub(crate) mod backoff;
mod client;
mod config;
mod proxy;
mod retry;
mod tls;

pub use client::HyperTransport;
#[cfg(any(test, feature = "fuzzing"))]
pub(crate) use proxy::{scan_connect_reply, ConnectReply};
// For the client builder (is `http://` allowed?) and telemetry (the user agent it reports).
pub(crate) use client::is_loopback_host;
pub(crate) use config::user_agent;
pub use config::{HttpConfig, TlsRoots};
pub use proxy::{Proxy, ProxyConfig};
pub use retry::RetryPolicy;
pub use tls::{ClientCertificate, Pem};

use std::time::Duration;

use async_trait::async_trait;
use bytes::Bytes;
use futures::stream::BoxStream;
use futures::StreamExt;

use crate::error::Result;

/// One HTTP request, with its whole body in memory. Built with [`HttpRequest::new`], then its
/// public fields set.
#[derive(Debug, Clone)]
#[non_exhaustive]
pub struct HttpRequest {
    /// GET, POST...
    pub method: http::Method,
    /// Absolute URL (`https://host:port/path?query`).
    pub url: http::Uri,
    /// Request headers (the transport adds `User-Agent` when absent).
    pub headers: http::HeaderMap,
    /// Request body (empty for GET).
    pub body: Bytes,
    /// Overrides the transport's request timeout for this request.
    pub timeout: Option<Duration>,
    /// Caps this response's body below the transport's own limit (`None`, the default: the
    /// transport's limit). A longer body is an error, read no further than the cap.
    pub max_response_bytes: Option<usize>,
}

impl HttpRequest {
    /// A request with no headers, no body and the transport's default timeout.
    pub fn new(method: http::Method, url: http::Uri) -> Self {
        HttpRequest {
            method,
            url,
            headers: http::HeaderMap::new(),
            body: Bytes::new(),
            timeout: None,
            max_response_bytes: None,
        }
    }
}

/// One HTTP response, with its whole body read.
#[derive(Debug, Clone)]
#[non_exhaustive]
pub struct HttpResponse {
    /// The status code; any status is a response (not an error) at this level.
    pub status: http::StatusCode,
    /// Response headers.
    pub headers: http::HeaderMap,
    /// The whole response body.
    pub body: Bytes,
}

impl HttpResponse {
    /// A response with this status, headers and body (for an [`HttpTransport`] of one's own).
    pub fn new(status: http::StatusCode, headers: http::HeaderMap, body: Bytes) -> Self {
        HttpResponse {
            status,
            headers,
            body,
        }
    }
}

/// A request body produced piece by piece while it is sent (a file being uploaded), so that it is
/// never held whole in memory. Its length is known up front and sent as `Content-Length`; a
/// stream that ends early or runs long fails the request.
pub struct BodyStream {
    length: u64,
    chunks: BoxStream<'static, std::io::Result<Bytes>>,
}

impl BodyStream {
    /// A body of exactly `length` bytes, read from `chunks` as the request is sent.
    pub fn new(
        length: u64,
        chunks: impl futures::Stream<Item = std::io::Result<Bytes>> + Send + 'static,
    ) -> Self {
        BodyStream {
            length,
            chunks: chunks.boxed(),
        }
    }

    /// The body's length in bytes (its `Content-Length`).
    pub fn len(&self) -> u64 {
        self.length
    }

    /// Whether the body is empty.
    pub fn is_empty(&self) -> bool {
        self.length == 0
    }

    /// The pieces of the body, in order.
    pub fn into_chunks(self) -> BoxStream<'static, std::io::Result<Bytes>> {
        self.chunks
    }
}

impl std::fmt::Debug for BodyStream {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("BodyStream")
            .field("length", &self.length)
            .finish_non_exhaustive()
    }
}

/// A response whose body the caller reads piece by piece (see
/// [`HttpTransport::send_streamed`]).
#[non_exhaustive]
pub struct StreamedResponse {
    /// The status code; any status is a response (not an error) at this level.
    pub status: http::StatusCode,
    /// Response headers.
    pub headers: http::HeaderMap,
    /// The body, piece by piece as it arrives; an error ends it (connection lost, body cut
    /// short, a timeout between pieces).
    pub body: BoxStream<'static, Result<Bytes>>,
}

impl StreamedResponse {
    /// A response of `status` and `headers` whose body is read from `body`.
    pub fn new(
        status: http::StatusCode,
        headers: http::HeaderMap,
        body: impl futures::Stream<Item = Result<Bytes>> + Send + 'static,
    ) -> Self {
        StreamedResponse {
            status,
            headers,
            body: body.boxed(),
        }
    }
}

impl std::fmt::Debug for StreamedResponse {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("StreamedResponse")
            .field("status", &self.status)
            .finish_non_exhaustive()
    }
}

/// Sends one HTTP request and reads its whole response.
///
/// Implementations return `Ok` for every HTTP status; connection failures are
/// [`ErrorKind::Connect`](crate::ErrorKind::Connect), elapsed timeouts
/// [`ErrorKind::Timeout`](crate::ErrorKind::Timeout). Retrying is not the transport's job.
#[cfg_attr(test, mockall::automock)]
#[async_trait]
pub trait HttpTransport: Send + Sync + std::fmt::Debug + 'static {
    /// Send `request` and return the response.
    async fn send(&self, request: HttpRequest) -> Result<HttpResponse>;

    /// Send `request` and read the response body into `body` (its contents replaced, its memory
    /// reused) instead of a new buffer; the returned response's own `body` is empty.
    ///
    /// Large downloads (CloudFetch files) go through this, so that one pool of buffers serves
    /// every file. On error `body` is left empty; if the future is dropped before it completes,
    /// `body` holds whatever part of the body had arrived. The default implementation copies
    /// the body that [`send`](Self::send) returns.
    async fn send_into(&self, request: HttpRequest, body: &mut Vec<u8>) -> Result<HttpResponse> {
        body.clear();
        let mut response = self.send(request).await?;
        body.extend_from_slice(&response.body);
        response.body = Bytes::new();
        Ok(response)
    }

    /// Send `request` with `upload` (when given) as its body, read piece by piece while it is
    /// sent and announced as `Content-Length` (in place of `request.body`), and return once the
    /// response head has arrived, its body to be read by the caller piece by piece. Files
    /// moved to and from Unity Catalog volumes go through this.
    ///
    /// [`HyperTransport`] holds neither body whole in memory. Its timeout (the request's own or
    /// the transport's) bounds the wait for the response head (the upload included), then each
    /// wait for the next piece of the response body; the transport's response size cap does not
    /// apply (the request's `max_response_bytes` does, when set). The default implementation
    /// collects `upload` in memory, calls [`send`](Self::send) and hands out the whole body as
    /// one piece: fine for test doubles, not for large files.
    async fn send_streamed(
        &self,
        mut request: HttpRequest,
        upload: Option<BodyStream>,
    ) -> Result<StreamedResponse> {
        if let Some(upload) = upload {
            let mut body = Vec::new();
            let mut chunks = upload.into_chunks();
            while let Some(chunk) = chunks.next().await {
                let chunk = chunk.map_err(|e| {
                    crate::Error::new(
                        crate::ErrorKind::Connect,
                        format!(
                            "the body of the request to {} could not be read: {e}",
                            crate::error::redact_url(&request.url.to_string())
                        ),
                    )
                })?;
                body.extend_from_slice(&chunk);
            }
            request.body = Bytes::from(body);
        }
        let response = self.send(request).await?;
        let body = response.body;
        Ok(StreamedResponse::new(
            response.status,
            response.headers,
            futures::stream::iter((!body.is_empty()).then_some(Ok(body))),
        ))
    }
}

/// A duration for messages: `250 ms`, `30 s`.
pub(crate) fn fmt_duration(d: Duration) -> String {
    if d.subsec_millis() == 0 && d.as_secs() > 0 {
        format!("{} s", d.as_secs())
    } else {
        format!("{} ms", d.as_millis())
    }
}
