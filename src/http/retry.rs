//! The driver's one retry policy (STUB: the transport work replaces the body of `send`).

use std::time::Duration;

use super::{HttpRequest, HttpResponse, HttpTransport};
use crate::error::{Error, Result};

/// How failed HTTP requests are retried. Defaults follow the peer drivers (protocol.md section 6).
#[derive(Debug, Clone)]
pub struct RetryPolicy {
    /// Attempts in all, the first included. Default 5.
    pub max_attempts: u32,
    /// Backoff before the first retry. Default 1 s.
    pub min_backoff: Duration,
    /// Cap of one backoff (and of an honoured `Retry-After`). Default 60 s.
    pub max_backoff: Duration,
    /// Overall deadline across all attempts of one request. Default 900 s.
    pub overall_timeout: Duration,
}

impl Default for RetryPolicy {
    fn default() -> Self {
        RetryPolicy {
            max_attempts: 5,
            min_backoff: Duration::from_secs(1),
            max_backoff: Duration::from_secs(60),
            overall_timeout: Duration::from_secs(900),
        }
    }
}

impl RetryPolicy {
    /// Send `request`, retrying per the policy. Returns the response only for a 2xx status; any
    /// other final status becomes an [`Error`] (401/403 -> `Auth`, others `Http`) carrying the
    /// status and any `Retry-After`. `idempotent` says whether the request may be resent after a
    /// connection failure or a 5xx (ExecuteStatement is not: it is resent only on 429, or 503
    /// with Retry-After).
    pub async fn send(
        &self,
        transport: &dyn HttpTransport,
        request: HttpRequest,
        idempotent: bool,
    ) -> Result<HttpResponse> {
        let _ = idempotent;
        let resp = transport.send(request).await?;
        if resp.status.is_success() {
            Ok(resp)
        } else {
            Err(Error::from_http_status(
                resp.status.as_u16(),
                format!("the server answered HTTP {}", resp.status.as_u16()),
            ))
        }
    }
}
