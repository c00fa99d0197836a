//! The HTTP transport: a pooled hyper 1 client over rustls, with connect and request timeouts,
//! proxies and TLS settings, and the one retry policy of the driver.
//!
//! Everything above this layer talks to an [`HttpTransport`]: the seam that unit tests replace.
//! [`HyperTransport`] is the real one; [`RetryPolicy::send`] wraps any transport with retries.
//! A client builds one transport and sends everything through it (Thrift calls, CloudFetch
//! downloads, telemetry, feature flags, OAuth), so its proxy ([`ProxyConfig`]) and TLS settings
//! ([`HttpConfig`]: extra root certificates, client certificate) apply to every request.
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
pub struct HttpResponse {
    /// The status code; any status is a response (not an error) at this level.
    pub status: http::StatusCode,
    /// Response headers.
    pub headers: http::HeaderMap,
    /// The whole response body.
    pub body: Bytes,
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
}

/// A duration for messages: `250 ms`, `30 s`.
pub(crate) fn fmt_duration(d: Duration) -> String {
    if d.subsec_millis() == 0 && d.as_secs() > 0 {
        format!("{} s", d.as_secs())
    } else {
        format!("{} ms", d.as_millis())
    }
}
