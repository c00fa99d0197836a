//! One file's download: a GET of the presigned URL carrying only the link's own `httpHeaders`
//! (never the workspace token), retried with backoff on connection failures, timeouts, 429 and
//! 5xx; its link refreshed (FetchResults at the chunk's row offset) when it has expired, with a
//! safety margin, or the storage server refuses it (401/403/404). Attempts and refreshes are
//! bounded; the final error names the chunk and says why.

use std::sync::Arc;
use std::time::{Duration, SystemTime, UNIX_EPOCH};

use http::header::{HeaderName, HeaderValue};
use tokio::time::Instant;

use super::budget::Reservation;
use super::buffers::BufferPool;
use super::links::{self, Chunk, LinkSource, ResultLink};
use super::CloudFetchConfig;
use crate::error::{redact_url, Error, ErrorKind, Result};
use crate::http::backoff::{parse_retry_after, status_retry, Backoff, Jitter, StatusRetry};
use crate::http::{HttpRequest, HttpResponse, HttpTransport};

/// The largest `bytesNum` taken as a buffer size hint (64 MiB).
const MAX_SIZE_HINT: i64 = 64 << 20;

/// The slack a file's body may have over twice its announced size (1 MiB).
const BODY_SLACK: usize = 1 << 20;

/// The largest body accepted for a file announced as `bytes_num` bytes: twice the announced
/// size plus [`BODY_SLACK`]. A body larger than that is an error, read no further than the cap,
/// so a server that understates its files cannot make downloads hold unbounded memory. `None`
/// when the link announces no size (`bytesNum` of 0 or less): the transport's own limit applies.
pub(crate) fn body_cap(bytes_num: i64) -> Option<usize> {
    let announced = usize::try_from(bytes_num).ok().filter(|&n| n > 0)?;
    Some(announced.saturating_mul(2).saturating_add(BODY_SLACK))
}

/// Downloads files; shared by every download task of one stream.
#[derive(Debug)]
pub(crate) struct Downloader {
    transport: Arc<dyn HttpTransport>,
    links: Arc<dyn LinkSource>,
    config: CloudFetchConfig,
    /// Where every file's body goes (see [`buffers`](super::buffers)).
    bodies: Arc<BufferPool>,
}

/// A downloaded file and what it took.
#[derive(Debug)]
pub(crate) struct Downloaded {
    /// The whole body as served, in a buffer of the download pool (the decoder gives it back).
    pub body: Vec<u8>,
    /// The successful attempt's time.
    pub latency: Duration,
    /// Time from the first attempt to the body, retries and refreshes included.
    pub total: Duration,
    /// Attempts made, the successful one included.
    pub attempts: u32,
    /// Link refreshes made.
    pub refreshes: u32,
}

/// What to do after a failed attempt.
enum Next {
    /// Try again after a backoff (`Retry-After` when the server sent one).
    Retry(Option<Duration>),
    /// Get a fresh link, then try again.
    Refresh,
    /// Give up now.
    Fail,
}

impl Downloader {
    pub(crate) fn new(
        transport: Arc<dyn HttpTransport>,
        links: Arc<dyn LinkSource>,
        config: CloudFetchConfig,
        bodies: Arc<BufferPool>,
    ) -> Self {
        Downloader {
            transport,
            links,
            config,
            bodies,
        }
    }

    /// Downloads `chunk` from `link` into a buffer of the pool, healing what can be healed (see
    /// the module docs), and resizes the chunk's `reservation` to the body's actual length: what
    /// the file holds from now on, whatever its link announced.
    pub(crate) async fn download(
        &self,
        chunk: Chunk,
        link: ResultLink,
        reservation: &mut Reservation,
    ) -> Result<Downloaded> {
        // `bytesNum` sizes the buffer; it is only a hint (the reply's Content-Length decides),
        // so a server's absurd value cannot make us allocate absurdly.
        let hint = usize::try_from(link.bytes_num.clamp(0, MAX_SIZE_HINT)).unwrap_or(0);
        let mut body = self.bodies.take(hint);
        let result = self.download_into(chunk, link, &mut body).await;
        match result {
            Ok(mut downloaded) => {
                reservation.resize(body.len() as u64);
                downloaded.body = body;
                Ok(downloaded)
            }
            Err(e) => {
                self.bodies.put(body);
                Err(e)
            }
        }
    }

    /// Downloads `chunk` from `link` into `body`; the returned `Downloaded::body` is empty.
    async fn download_into(
        &self,
        chunk: Chunk,
        mut link: ResultLink,
        body: &mut Vec<u8>,
    ) -> Result<Downloaded> {
        let started = Instant::now();
        let max_attempts = self.config.download_attempts.max(1);
        let mut attempts = 0u32;
        let mut jitter = Jitter::new();
        let mut refreshes = 0u32;
        let mut fresh = false;
        loop {
            if self.is_expired(&link, fresh) {
                if refreshes >= self.config.max_link_refreshes {
                    return Err(self.gave_up(
                        &chunk,
                        attempts,
                        refreshes,
                        started,
                        Error::new(ErrorKind::CloudFetch, "its link has expired"),
                    ));
                }
                tracing::debug!(
                    chunk = chunk.index,
                    "CloudFetch link expired: refreshing it"
                );
                link = links::refresh(self.links.as_ref(), &chunk).await?;
                refreshes += 1;
                fresh = true;
                continue;
            }

            attempts += 1;
            let attempt_started = Instant::now();
            let (next, error) = match self.get(&chunk, &link, body).await {
                Ok(resp)
                    if resp.status.is_success()
                        && body_cap(link.bytes_num).is_some_and(|cap| body.len() > cap) =>
                {
                    // A transport that does not apply the request's cap: checked here too.
                    let got = body.len();
                    body.clear();
                    (
                        Next::Fail,
                        Error::new(
                            ErrorKind::CloudFetch,
                            format!(
                                "the file is {got} bytes, far more than the {} bytes its link announced",
                                link.bytes_num
                            ),
                        ),
                    )
                }
                Ok(resp) if resp.status.is_success() => {
                    let latency = attempt_started.elapsed();
                    self.log_download(&chunk, &link, body.len(), latency, attempts);
                    return Ok(Downloaded {
                        body: Vec::new(),
                        latency,
                        total: started.elapsed(),
                        attempts,
                        refreshes,
                    });
                }
                Ok(resp) => classify_status(&resp),
                Err(e) => {
                    let next = if e.is_retryable() {
                        Next::Retry(None)
                    } else {
                        Next::Fail
                    };
                    (next, e)
                }
            };
            tracing::debug!(
                chunk = chunk.index,
                attempt = attempts,
                error = %error,
                "CloudFetch download attempt failed"
            );
            match next {
                Next::Fail => return Err(self.gave_up(&chunk, attempts, refreshes, started, error)),
                _ if attempts >= max_attempts => {
                    return Err(self.gave_up(&chunk, attempts, refreshes, started, error))
                }
                Next::Refresh if refreshes >= self.config.max_link_refreshes => {
                    return Err(self.gave_up(&chunk, attempts, refreshes, started, error))
                }
                Next::Refresh => {
                    link = links::refresh(self.links.as_ref(), &chunk).await?;
                    refreshes += 1;
                    fresh = true;
                }
                Next::Retry(retry_after) => {
                    let backoff =
                        Backoff::new(self.config.retry_min_backoff, self.config.retry_max_backoff);
                    tokio::time::sleep(backoff.delay_or(attempts, retry_after, &mut jitter)).await;
                }
            }
        }
    }

    /// One GET of `link` with its body read into `body`, bounded by the download timeout.
    async fn get(
        &self,
        chunk: &Chunk,
        link: &ResultLink,
        body: &mut Vec<u8>,
    ) -> Result<HttpResponse> {
        let url: http::Uri = link.file_link.parse().map_err(|_| {
            Error::new(
                ErrorKind::CloudFetch,
                format!(
                    "{chunk}: the link is not a valid URL: {}",
                    redact_url(&link.file_link)
                ),
            )
        })?;
        let mut request = HttpRequest::new(http::Method::GET, url);
        request.timeout = Some(self.config.download_timeout);
        request.max_response_bytes = body_cap(link.bytes_num);
        // Only the link's own headers: a presigned URL must never see the workspace token.
        for (name, value) in link.http_headers.iter().flatten() {
            let invalid = || {
                Error::new(
                    ErrorKind::CloudFetch,
                    format!("{chunk}: the link carries an invalid HTTP header {name:?}"),
                )
            };
            let name = HeaderName::from_bytes(name.as_bytes()).map_err(|_| invalid())?;
            let value = HeaderValue::from_str(value).map_err(|_| invalid())?;
            request.headers.append(name, value);
        }
        let timeout = self.config.download_timeout;
        match tokio::time::timeout(timeout, self.transport.send_into(request, body)).await {
            Ok(result) => result,
            Err(_) => Err(Error::new(
                ErrorKind::Timeout,
                format!("no complete reply within {timeout:?}"),
            )),
        }
    }

    /// Whether `link` must be refreshed before use: it expires within the safety margin, or, for a
    /// link fresh from a refresh, has actually expired. An `expiryTime` of 0 or less means unknown.
    fn is_expired(&self, link: &ResultLink, fresh: bool) -> bool {
        if link.expiry_time <= 0 {
            return false;
        }
        let now_ms = SystemTime::now()
            .duration_since(UNIX_EPOCH)
            .map(|d| i64::try_from(d.as_millis()).unwrap_or(i64::MAX))
            .unwrap_or(0);
        let margin_ms = if fresh {
            0
        } else {
            i64::try_from(self.config.link_expiry_margin.as_millis()).unwrap_or(i64::MAX)
        };
        link.expiry_time.saturating_sub(now_ms) <= margin_ms
    }

    /// The download's final error: the attempts, link refreshes and time it took, and the last
    /// cause (whose HTTP status it keeps).
    fn gave_up(
        &self,
        chunk: &Chunk,
        attempts: u32,
        refreshes: u32,
        started: Instant,
        last: Error,
    ) -> Error {
        Error::new(
            ErrorKind::CloudFetch,
            format!(
                "{chunk} could not be downloaded ({attempts} attempts over {}, {refreshes} link \
                 refreshes); the last one failed with {last}",
                crate::http::fmt_duration(started.elapsed())
            ),
        )
        .with_http_status(last.http_status())
    }

    fn log_download(
        &self,
        chunk: &Chunk,
        link: &ResultLink,
        bytes: usize,
        latency: Duration,
        attempts: u32,
    ) {
        let secs = latency.as_secs_f64();
        let mb_per_s = if secs > 0.0 {
            bytes as f64 / 1e6 / secs
        } else {
            f64::INFINITY
        };
        let latency_ms = u64::try_from(latency.as_millis()).unwrap_or(u64::MAX);
        tracing::debug!(
            chunk = chunk.index,
            start_row_offset = chunk.start_row_offset,
            rows = chunk.row_count,
            bytes,
            latency_ms,
            mb_per_s,
            attempts,
            "CloudFetch file downloaded"
        );
        if secs >= 1.0 && mb_per_s < self.config.slow_download_mbps {
            tracing::warn!(
                chunk = chunk.index,
                bytes,
                latency_ms,
                mb_per_s,
                threshold_mb_per_s = self.config.slow_download_mbps,
                url = %redact_url(&link.file_link),
                "CloudFetch download slower than the threshold"
            );
        }
    }
}

/// What a non-2xx reply means for the download: a refused or missing file needs a fresh link;
/// otherwise the one table of retryable statuses decides (a download is a GET: it may always
/// be sent again).
fn classify_status(resp: &HttpResponse) -> (Next, Error) {
    let status = resp.status.as_u16();
    let error =
        Error::from_http_status(status, format!("the storage server answered HTTP {status}"));
    let retry_after = parse_retry_after(&resp.headers, SystemTime::now());
    let next = match status {
        401 | 403 | 404 => Next::Refresh,
        _ => match status_retry(status, retry_after.is_some()) {
            StatusRetry::NotRun | StatusRetry::MayHaveRun => Next::Retry(retry_after),
            StatusRetry::Never => Next::Fail,
        },
    };
    (next, error)
}
