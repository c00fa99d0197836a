//! Unity Catalog volume staging: the file transfer of a `PUT`, `GET` or `REMOVE` statement,
//! run by the driver against the presigned URL the server answers with, limited to local paths
//! under the directories the application allowed.
//!
//! The server runs such a statement itself and marks its result a staging operation
//! (`isStagingOperation` in the result set metadata); its one row says what to do: `operation`
//! (`PUT`, `GET` or `REMOVE`), `presignedUrl`, `localFile` and `headers` (a JSON object of
//! header names and values to send). The transfer goes through the client's transport without
//! credentials: the workspace token never reaches the presigned URL.
//!
//! - `PUT` streams the local file as the request body, in pieces of [`CHUNK_SIZE`], with its
//!   `Content-Length`.
//! - `GET` streams the response body into `<target>.<random>.part` in the target's directory
//!   and renames it to the target only once it is complete (its length matching the reply's
//!   `Content-Length` when there is one); on any failure the partial file is removed, and no
//!   file is left at the target path.
//! - `REMOVE` sends `DELETE`; HTTP 404 (already gone) counts as success.
//!
//! Transient failures (connection failures, timeouts, HTTP 408, 429, 5xx except 501) are
//! retried within the client's [`RetryPolicy`] attempts and backoff, each attempt from the
//! start of the file. Progress and byte counts are logged with `tracing` at debug level.

use std::path::{Component, Path, PathBuf};
use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::Arc;
use std::time::SystemTime;

use arrow_array::{Array, LargeStringArray, RecordBatch, StringArray, StringViewArray};
use bytes::{Bytes, BytesMut};
use futures::StreamExt;
use http::header::{HeaderName, HeaderValue, CONTENT_LENGTH};
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::time::Instant;

use crate::error::{redact_url, Error, ErrorKind, Result};
use crate::http::backoff::{parse_retry_after, Backoff, Jitter};
use crate::http::{BodyStream, HttpRequest, HttpTransport, RetryPolicy};

/// The size of the pieces a `PUT` reads its file in and sends (256 KiB): the most file data
/// the upload holds in memory at once.
pub const CHUNK_SIZE: usize = 256 << 10;

/// How often a transfer logs its progress: every 16 MiB.
const PROGRESS_EVERY: u64 = 16 << 20;

/// The file operation of a staging statement.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
#[non_exhaustive]
pub enum StagingOperation {
    /// Upload a local file to a volume.
    Put,
    /// Download a volume file to a local file.
    Get,
    /// Delete a volume file.
    Remove,
}

impl std::fmt::Display for StagingOperation {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(match self {
            StagingOperation::Put => "PUT",
            StagingOperation::Get => "GET",
            StagingOperation::Remove => "REMOVE",
        })
    }
}

/// What the file transfer of a staging statement did, from
/// [`Operation::staging_summary`](crate::Operation::staging_summary).
#[derive(Debug, Clone, PartialEq, Eq)]
#[non_exhaustive]
pub struct StagingSummary {
    /// The operation.
    pub operation: StagingOperation,
    /// The local file read (`PUT`) or written (`GET`), canonicalized; `None` for `REMOVE`.
    pub local_file: Option<PathBuf>,
    /// Bytes uploaded or downloaded by the successful attempt (0 for `REMOVE`).
    pub bytes: u64,
    /// The largest piece of file data the driver held in memory at once: a piece read from
    /// the file (`PUT`, at most [`CHUNK_SIZE`]) or received from the network (`GET`).
    pub largest_chunk: usize,
    /// `PUT` and `GET`: attempts made, the successful one included. `REMOVE`: 1 (its retries
    /// are those of the client's [`RetryPolicy`]).
    pub attempts: u32,
    /// For `REMOVE`: the file was already gone (HTTP 404).
    pub already_absent: bool,
}

/// Whether `sql` may be a staging statement: its first keyword (after whitespace, comments and
/// opening parentheses) is `PUT`, `GET` or `REMOVE`. Only such statements are waited for and
/// checked for a staging result before [`Session::execute_statement`](crate::Session) returns.
pub(crate) fn may_be_staging(sql: &str) -> bool {
    let mut rest = sql;
    loop {
        let trimmed = rest.trim_start_matches(|c: char| c.is_whitespace() || c == '(');
        if let Some(comment) = trimmed.strip_prefix("--") {
            rest = comment.split_once('\n').map_or("", |(_, after)| after);
        } else if let Some(comment) = trimmed.strip_prefix("/*") {
            rest = comment.split_once("*/").map_or("", |(_, after)| after);
        } else {
            rest = trimmed;
            break;
        }
    }
    let word: String = rest
        .chars()
        .take_while(|c| c.is_ascii_alphabetic())
        .collect();
    ["put", "get", "remove"]
        .iter()
        .any(|k| word.eq_ignore_ascii_case(k))
}

/// What the server asked for: the one row of a staging result.
pub(crate) struct StagingRequest {
    operation: StagingOperation,
    url: http::Uri,
    local_file: Option<String>,
    headers: Vec<(HeaderName, HeaderValue)>,
}

impl std::fmt::Debug for StagingRequest {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("StagingRequest")
            .field("operation", &self.operation)
            .field("url", &redact_url(&self.url.to_string()))
            .field("local_file", &self.local_file)
            .field(
                "headers",
                &self.headers.iter().map(|(n, _)| n).collect::<Vec<_>>(),
            )
            .finish()
    }
}

impl StagingRequest {
    /// The request in the result of a staging statement: exactly one row with the columns
    /// `operation`, `presignedUrl`, `localFile` (absent or NULL for `REMOVE`) and `headers`.
    pub(crate) fn from_batches(batches: &[RecordBatch]) -> Result<Self> {
        let rows: usize = batches.iter().map(RecordBatch::num_rows).sum();
        let Some(batch) = batches
            .iter()
            .find(|b| b.num_rows() > 0)
            .filter(|_| rows == 1)
        else {
            return Err(Error::protocol(format!(
                "a staging operation's result must have exactly one row, not {rows}"
            )));
        };
        let operation = match string_cell(batch, "operation")?.as_deref() {
            Some(op) if op.eq_ignore_ascii_case("PUT") => StagingOperation::Put,
            Some(op) if op.eq_ignore_ascii_case("GET") => StagingOperation::Get,
            Some(op) if op.eq_ignore_ascii_case("REMOVE") => StagingOperation::Remove,
            Some(op) => {
                return Err(Error::protocol(format!(
                    "unknown staging operation {op:?} (expected PUT, GET or REMOVE)"
                )))
            }
            None => {
                return Err(Error::protocol(
                    "the staging operation's result has no `operation`",
                ))
            }
        };
        let url = string_cell(batch, "presignedUrl")?
            .ok_or_else(|| Error::protocol("the staging operation's result has no presignedUrl"))?;
        let url: http::Uri = url.parse().map_err(|_| {
            Error::protocol(format!(
                "the staging operation's presigned URL is not a valid URL: {}",
                redact_url(&url)
            ))
        })?;
        let local_file = if batch.schema().column_with_name("localFile").is_some() {
            string_cell(batch, "localFile")?.filter(|s| !s.is_empty())
        } else {
            None
        };
        let headers = match batch.schema().column_with_name("headers") {
            Some(_) => parse_headers(string_cell(batch, "headers")?.as_deref())?,
            None => Vec::new(),
        };
        Ok(StagingRequest {
            operation,
            url,
            local_file,
            headers,
        })
    }
}

/// The value of string column `name` in the first row of `batch` (`None` when NULL).
fn string_cell(batch: &RecordBatch, name: &str) -> Result<Option<String>> {
    let column = batch.column_by_name(name).ok_or_else(|| {
        Error::protocol(format!(
            "the staging operation's result has no column `{name}`"
        ))
    })?;
    if column.is_null(0) {
        return Ok(None);
    }
    let any = column.as_any();
    let value = if let Some(a) = any.downcast_ref::<StringArray>() {
        a.value(0)
    } else if let Some(a) = any.downcast_ref::<LargeStringArray>() {
        a.value(0)
    } else if let Some(a) = any.downcast_ref::<StringViewArray>() {
        a.value(0)
    } else {
        return Err(Error::protocol(format!(
            "the staging operation's column `{name}` is {}, not a string",
            column.data_type()
        )));
    };
    Ok(Some(value.to_string()))
}

/// The `headers` cell: a JSON object of header names and values (a non-string value is sent
/// as its JSON text). Messages name a bad header, never its value.
fn parse_headers(json: Option<&str>) -> Result<Vec<(HeaderName, HeaderValue)>> {
    let Some(json) = json.map(str::trim).filter(|j| !j.is_empty()) else {
        return Ok(Vec::new());
    };
    let map: serde_json::Map<String, serde_json::Value> = serde_json::from_str(json)
        .map_err(|_| Error::protocol("the staging operation's `headers` is not a JSON object"))?;
    map.into_iter()
        .map(|(name, value)| {
            let value = match value {
                serde_json::Value::String(s) => s,
                other => other.to_string(),
            };
            let invalid = || {
                Error::protocol(format!(
                    "the staging operation's header {name:?} is not a valid HTTP header"
                ))
            };
            let header = HeaderName::from_bytes(name.as_bytes()).map_err(|_| invalid())?;
            let value = HeaderValue::from_str(&value).map_err(|_| invalid())?;
            Ok((header, value))
        })
        .collect()
}

/// Runs staging transfers for one client: its credential-free transport and retry policy.
pub(crate) struct Stager<'a> {
    pub(crate) transport: &'a Arc<dyn HttpTransport>,
    pub(crate) retry: &'a RetryPolicy,
    /// The directories local files must lie under.
    pub(crate) allowed: &'a [PathBuf],
}

impl Stager<'_> {
    /// Checks the local path of `request` against the allowed directories, then runs the
    /// transfer. Nothing is sent to the presigned URL before the check has passed.
    pub(crate) async fn run(&self, request: StagingRequest) -> Result<StagingSummary> {
        let started = Instant::now();
        let url_text = redact_url(&request.url.to_string());
        let summary = match request.operation {
            StagingOperation::Put => {
                let local = self.local_file(&request)?;
                let source = checked_source(local, self.allowed).await?;
                tracing::debug!(local_file = %source.display(), url = %url_text, "staging PUT: uploading");
                self.put(&request, &source).await?
            }
            StagingOperation::Get => {
                let local = self.local_file(&request)?;
                let target = checked_target(local, self.allowed).await?;
                tracing::debug!(local_file = %target.display(), url = %url_text, "staging GET: downloading");
                self.get(&request, &target).await?
            }
            StagingOperation::Remove => {
                tracing::debug!(url = %url_text, "staging REMOVE: deleting");
                self.remove(&request).await?
            }
        };
        let secs = started.elapsed().as_secs_f64();
        tracing::debug!(
            operation = %summary.operation,
            bytes = summary.bytes,
            attempts = summary.attempts,
            elapsed_ms = u64::try_from(started.elapsed().as_millis()).unwrap_or(u64::MAX),
            mb_per_s = if secs > 0.0 { summary.bytes as f64 / 1e6 / secs } else { 0.0 },
            "staging transfer done"
        );
        Ok(summary)
    }

    fn local_file<'r>(&self, request: &'r StagingRequest) -> Result<&'r str> {
        let op = request.operation;
        if self.allowed.is_empty() {
            return Err(Error::config(format!(
                "staging {op} needs a local directory it may use: none is allowed (set \
                 ClientBuilder::staging_allowed_local_paths or \
                 ExecuteOptions::staging_allowed_local_paths)"
            )));
        }
        request.local_file.as_deref().ok_or_else(|| {
            Error::protocol(format!(
                "the staging {op} operation's result has no localFile"
            ))
        })
    }

    /// One request of the transfer: the presigned URL with the server's headers only.
    fn request(&self, request: &StagingRequest, method: http::Method) -> HttpRequest {
        let mut http = HttpRequest::new(method, request.url.clone());
        for (name, value) in &request.headers {
            http.headers.append(name.clone(), value.clone());
        }
        http
    }

    /// Runs `attempt` until it succeeds, fails for good, or the policy's attempts or deadline
    /// are used up; the final error is a [`ErrorKind::Staging`] error naming `what`.
    async fn with_retries<T, F, Fut>(&self, what: &str, mut attempt: F) -> Result<(T, u32)>
    where
        F: FnMut() -> Fut,
        Fut: std::future::Future<Output = Result<T>>,
    {
        let started = Instant::now();
        let deadline = crate::time::after(started, self.retry.overall_timeout);
        let max_attempts = self.retry.max_attempts.max(1);
        let backoff = Backoff::new(self.retry.min_backoff, self.retry.max_backoff);
        let mut jitter = Jitter::new();
        let mut attempts = 0;
        loop {
            attempts += 1;
            let error = match attempt().await {
                Ok(value) => return Ok((value, attempts)),
                Err(e) => e,
            };
            let wait = backoff.delay_or(attempts, error.retry_after(), &mut jitter);
            let retry =
                error.is_retryable() && attempts < max_attempts && Instant::now() + wait < deadline;
            tracing::debug!(attempt = attempts, retry, error = %error, "staging {what}: attempt failed");
            if !retry {
                let kind = match error.kind() {
                    ErrorKind::Config | ErrorKind::Staging => error.kind(),
                    _ => ErrorKind::Staging,
                };
                let status = error.http_status();
                let plural = if attempts == 1 { "" } else { "s" };
                return Err(Error::new(
                    kind,
                    format!("{what} failed ({attempts} attempt{plural}): {error}"),
                )
                .with_http_status(status));
            }
            tokio::time::sleep(wait).await;
        }
    }

    async fn put(&self, request: &StagingRequest, source: &Path) -> Result<StagingSummary> {
        let what = format!(
            "staging PUT of {} to {}",
            source.display(),
            redact_url(&request.url.to_string())
        );
        let largest = AtomicUsize::new(0);
        let (bytes, attempts) = self
            .with_retries(&what, || self.upload(request, source, &largest))
            .await?;
        Ok(StagingSummary {
            operation: StagingOperation::Put,
            local_file: Some(source.to_path_buf()),
            bytes,
            largest_chunk: largest.load(Ordering::Relaxed),
            attempts,
            already_absent: false,
        })
    }

    /// One upload attempt, the file read from its start.
    async fn upload(
        &self,
        request: &StagingRequest,
        source: &Path,
        largest: &AtomicUsize,
    ) -> Result<u64> {
        let pieces = Arc::new(AtomicUsize::new(0));
        let (body, length) = file_body(source, pieces.clone()).await?;
        let response = self
            .transport
            .send_streamed(self.request(request, http::Method::PUT), Some(body))
            .await;
        largest.fetch_max(pieces.load(Ordering::Relaxed), Ordering::Relaxed);
        let response = response?;
        let status = response.status;
        if !status.is_success() {
            return Err(status_error(status.as_u16(), &response.headers));
        }
        tracing::debug!(
            bytes = length,
            status = status.as_u16(),
            "staging PUT: uploaded"
        );
        Ok(length)
    }

    async fn get(&self, request: &StagingRequest, target: &Path) -> Result<StagingSummary> {
        let what = format!(
            "staging GET of {} to {}",
            redact_url(&request.url.to_string()),
            target.display()
        );
        let largest = AtomicUsize::new(0);
        let (bytes, attempts) = self
            .with_retries(&what, || self.download(request, target, &largest))
            .await?;
        Ok(StagingSummary {
            operation: StagingOperation::Get,
            local_file: Some(target.to_path_buf()),
            bytes,
            largest_chunk: largest.load(Ordering::Relaxed),
            attempts,
            already_absent: false,
        })
    }

    /// One download attempt: the body into a `.part` file beside `target`, renamed to `target`
    /// once complete. The `.part` file is removed on failure (or when the future is dropped).
    async fn download(
        &self,
        request: &StagingRequest,
        target: &Path,
        largest: &AtomicUsize,
    ) -> Result<u64> {
        let response = self
            .transport
            .send_streamed(self.request(request, http::Method::GET), None)
            .await?;
        if !response.status.is_success() {
            return Err(status_error(response.status.as_u16(), &response.headers));
        }
        let expected: Option<u64> = response
            .headers
            .get(CONTENT_LENGTH)
            .and_then(|v| v.to_str().ok())
            .and_then(|v| v.trim().parse().ok());
        let (part, file) = PartFile::create(target).await?;
        match write_body(response.body, expected, file, part.path(), largest).await {
            Ok(written) => {
                part.commit(target).await?;
                Ok(written)
            }
            Err(e) => {
                part.discard().await;
                Err(e)
            }
        }
    }

    async fn remove(&self, request: &StagingRequest) -> Result<StagingSummary> {
        let what = format!("staging REMOVE of {}", redact_url(&request.url.to_string()));
        let response = self
            .retry
            .send_returning_status(
                self.transport.as_ref(),
                self.request(request, http::Method::DELETE),
                true,
            )
            .await
            .map_err(|e| {
                let status = e.http_status();
                Error::new(ErrorKind::Staging, format!("{what} failed: {e}"))
                    .with_http_status(status)
            })?;
        let status = response.status.as_u16();
        let already_absent = status == 404;
        if !response.status.is_success() && !already_absent {
            let e = status_error(status, &response.headers);
            return Err(
                Error::new(ErrorKind::Staging, format!("{what} failed: {e}"))
                    .with_http_status(Some(status)),
            );
        }
        if already_absent {
            tracing::debug!("staging REMOVE: the file was already gone (HTTP 404)");
        }
        Ok(StagingSummary {
            operation: StagingOperation::Remove,
            local_file: None,
            bytes: 0,
            largest_chunk: 0,
            attempts: 1,
            already_absent,
        })
    }
}

/// An error for a non-2xx answer of the storage server.
fn status_error(status: u16, headers: &http::HeaderMap) -> Error {
    Error::from_http_status(status, format!("the storage server answered HTTP {status}"))
        .with_retry_after(parse_retry_after(headers, SystemTime::now()))
}

fn local_io_error(what: &str, path: &Path, e: std::io::Error) -> Error {
    Error::new(
        ErrorKind::Staging,
        format!("could not {what} the local file {}: {e}", path.display()),
    )
}

/// Writes a download's `body` to `file` (at `path`) as it arrives, checking its length against
/// `expected` (the reply's `Content-Length`), and returns the bytes written.
async fn write_body(
    mut body: futures::stream::BoxStream<'static, Result<Bytes>>,
    expected: Option<u64>,
    mut file: tokio::fs::File,
    path: &Path,
    largest: &AtomicUsize,
) -> Result<u64> {
    let mut written = 0u64;
    let mut logged = 0u64;
    while let Some(piece) = body.next().await {
        let piece = piece?;
        largest.fetch_max(piece.len(), Ordering::Relaxed);
        file.write_all(&piece)
            .await
            .map_err(|e| local_io_error("write", path, e))?;
        written += piece.len() as u64;
        if written - logged >= PROGRESS_EVERY {
            logged = written;
            tracing::debug!(bytes = written, expected, "staging GET: progress");
        }
        if expected.is_some_and(|n| written > n) {
            break;
        }
    }
    if let Some(expected) = expected.filter(|&n| n != written) {
        return Err(Error::new(
            ErrorKind::Connect,
            format!(
                "the download brought {written} bytes where Content-Length announced {expected}"
            ),
        ));
    }
    file.flush()
        .await
        .map_err(|e| local_io_error("write", path, e))?;
    file.sync_all()
        .await
        .map_err(|e| local_io_error("write", path, e))?;
    Ok(written)
}

/// The body of a `PUT`: `path` read in pieces of [`CHUNK_SIZE`] as the request is sent,
/// exactly as long as the file was when opened (a file that shrinks meanwhile fails the
/// upload). `largest` keeps the largest piece read.
async fn file_body(path: &Path, largest: Arc<AtomicUsize>) -> Result<(BodyStream, u64)> {
    let file = tokio::fs::File::open(path)
        .await
        .map_err(|e| local_io_error("open", path, e))?;
    let length = file
        .metadata()
        .await
        .map_err(|e| local_io_error("read", path, e))?
        .len();
    let chunks =
        futures::stream::try_unfold((file, 0u64, 0u64), move |(mut file, read, logged)| {
            let largest = largest.clone();
            async move {
                let remaining = length - read;
                if remaining == 0 {
                    return Ok(None);
                }
                let want = usize::try_from(remaining)
                    .unwrap_or(CHUNK_SIZE)
                    .min(CHUNK_SIZE);
                let mut buf = BytesMut::with_capacity(want);
                while buf.len() < want {
                    let n = (&mut file)
                        .take((want - buf.len()) as u64)
                        .read_buf(&mut buf)
                        .await?;
                    if n == 0 {
                        return Err(std::io::Error::new(
                            std::io::ErrorKind::UnexpectedEof,
                            format!(
                                "the file shrank to {} bytes while being uploaded",
                                read + buf.len() as u64
                            ),
                        ));
                    }
                }
                largest.fetch_max(buf.len(), Ordering::Relaxed);
                let read = read + buf.len() as u64;
                let logged = if read - logged >= PROGRESS_EVERY {
                    tracing::debug!(bytes = read, total = length, "staging PUT: progress");
                    read
                } else {
                    logged
                };
                Ok(Some((Bytes::from(buf), (file, read, logged))))
            }
        });
    Ok((BodyStream::new(length, chunks), length))
}

/// A `<target>.<random>.part` file being downloaded: removed when dropped unless it was
/// committed (renamed to its target).
struct PartFile {
    path: Option<PathBuf>,
}

impl PartFile {
    /// A new, empty `.part` file beside `target`, and its handle for writing.
    async fn create(target: &Path) -> Result<(PartFile, tokio::fs::File)> {
        let name = target.file_name().unwrap_or_default().to_string_lossy();
        let random = uuid::Uuid::new_v4().simple().to_string();
        let path = target.with_file_name(format!("{name}.{}.part", &random[..12]));
        let file = tokio::fs::OpenOptions::new()
            .write(true)
            .create_new(true)
            .open(&path)
            .await
            .map_err(|e| local_io_error("create", &path, e))?;
        Ok((PartFile { path: Some(path) }, file))
    }

    fn path(&self) -> &Path {
        self.path.as_deref().unwrap_or(Path::new(""))
    }

    /// Renames the file to `target`; from then on it is no longer removed. On failure it is
    /// removed.
    async fn commit(mut self, target: &Path) -> Result<()> {
        let Some(path) = self.path.take() else {
            return Ok(());
        };
        match tokio::fs::rename(&path, target).await {
            Ok(()) => Ok(()),
            Err(e) => {
                self.path = Some(path);
                self.discard().await;
                Err(local_io_error("write", target, e))
            }
        }
    }

    /// Removes the file now.
    async fn discard(mut self) {
        if let Some(path) = self.path.take() {
            let _ = tokio::task::spawn_blocking(move || remove_part(&path)).await;
        }
    }
}

impl Drop for PartFile {
    fn drop(&mut self) {
        let Some(path) = self.path.take() else {
            return;
        };
        // Off the async worker when a runtime is there (it is, unless the runtime is going away).
        match tokio::runtime::Handle::try_current() {
            Ok(handle) => {
                handle.spawn_blocking(move || remove_part(&path));
            }
            Err(_) => remove_part(&path),
        }
    }
}

fn remove_part(path: &Path) {
    if let Err(e) = std::fs::remove_file(path) {
        if e.kind() != std::io::ErrorKind::NotFound {
            tracing::debug!(path = %path.display(), error = %e, "staging GET: could not remove the partial file");
        }
    }
}

/// The allowed directories, canonicalized; those that do not exist are left out.
async fn canonical_allowed(allowed: &[PathBuf]) -> Vec<PathBuf> {
    let mut out = Vec::with_capacity(allowed.len());
    for dir in allowed {
        match tokio::fs::canonicalize(dir).await {
            Ok(dir) => out.push(dir),
            Err(e) => {
                tracing::debug!(dir = %dir.display(), error = %e, "staging: an allowed directory cannot be resolved")
            }
        }
    }
    out
}

fn outside_allowed(op: StagingOperation, local: &str) -> Error {
    Error::config(format!(
        "staging {op}: the local path {local} is not under a directory allowed for staging \
         (after resolving `..` and symbolic links)"
    ))
}

/// The canonical path of the file a `PUT` uploads: an existing regular file whose canonical
/// path lies under a canonical allowed directory.
async fn checked_source(local: &str, allowed: &[PathBuf]) -> Result<PathBuf> {
    let op = StagingOperation::Put;
    let allowed = canonical_allowed(allowed).await;
    let canonical = tokio::fs::canonicalize(local).await.map_err(|e| {
        Error::config(format!(
            "staging PUT: the local file {local} cannot be resolved: {e}"
        ))
    })?;
    if !allowed.iter().any(|dir| canonical.starts_with(dir)) {
        return Err(outside_allowed(op, local));
    }
    let metadata = tokio::fs::metadata(&canonical).await.map_err(|e| {
        Error::config(format!(
            "staging PUT: the local file {local} cannot be read: {e}"
        ))
    })?;
    if !metadata.is_file() {
        return Err(Error::config(format!(
            "staging PUT: the local path {local} is not a regular file"
        )));
    }
    Ok(canonical)
}

/// Where a `GET` writes: the file name of `local` in the canonical form of its directory,
/// which must lie under a canonical allowed directory (the file itself need not exist).
async fn checked_target(local: &str, allowed: &[PathBuf]) -> Result<PathBuf> {
    let op = StagingOperation::Get;
    let allowed = canonical_allowed(allowed).await;
    let path = Path::new(local);
    let name = match path.components().next_back() {
        Some(Component::Normal(name)) => name.to_owned(),
        _ => {
            return Err(Error::config(format!(
                "staging GET: the local path {local} does not name a file"
            )))
        }
    };
    let parent = match path.parent() {
        Some(p) if !p.as_os_str().is_empty() => p.to_path_buf(),
        _ => PathBuf::from("."),
    };
    let canonical_parent = tokio::fs::canonicalize(&parent).await.map_err(|e| {
        Error::config(format!(
            "staging GET: the directory of the local file {local} cannot be resolved: {e}"
        ))
    })?;
    if !allowed.iter().any(|dir| canonical_parent.starts_with(dir)) {
        return Err(outside_allowed(op, local));
    }
    let target = canonical_parent.join(name);
    // An existing symbolic link at the target would be replaced by the rename, never followed;
    // a directory cannot be replaced.
    if let Ok(meta) = tokio::fs::symlink_metadata(&target).await {
        if meta.is_dir() {
            return Err(Error::config(format!(
                "staging GET: the local path {local} is a directory"
            )));
        }
    }
    Ok(target)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn staging_keywords_are_recognised_after_comments_and_whitespace() {
        assert!(may_be_staging("PUT '/tmp/a' INTO '/Volumes/c/s/v/a'"));
        assert!(may_be_staging("  get '/Volumes/c/s/v/a' TO '/tmp/a'"));
        assert!(may_be_staging(
            "-- upload\n/* x */ Remove '/Volumes/c/s/v/a'"
        ));
        assert!(!may_be_staging("SELECT 'PUT'"));
        assert!(!may_be_staging("GETX"));
        assert!(!may_be_staging("-- PUT"));
    }

    #[test]
    fn headers_are_parsed_from_a_json_object_and_bad_ones_are_named_without_value() {
        let h = parse_headers(Some(r#"{"x-a":"1","x-b":2}"#)).unwrap();
        assert_eq!(h.len(), 2);
        assert_eq!(h[1].1, "2");
        assert!(parse_headers(None).unwrap().is_empty());
        let e = parse_headers(Some(r#"{"bad name":"s3cret"}"#)).unwrap_err();
        assert!(e.message().contains("bad name"));
        assert!(!e.to_string().contains("s3cret"));
        assert!(parse_headers(Some("[1]")).is_err());
    }

    #[test]
    fn the_request_debug_output_hides_the_query_and_header_values() {
        let r = StagingRequest {
            operation: StagingOperation::Get,
            url: "https://h/p?sig=s3cret".parse().unwrap(),
            local_file: Some("/tmp/x".into()),
            headers: vec![(
                HeaderName::from_static("x-key"),
                HeaderValue::from_static("hidden-value"),
            )],
        };
        let text = format!("{r:?}");
        assert!(!text.contains("s3cret"));
        assert!(!text.contains("hidden-value"));
        assert!(text.contains("x-key"));
    }

    #[tokio::test]
    async fn file_body_is_read_in_bounded_pieces_of_the_announced_length() {
        let dir = std::env::temp_dir().join(format!("dbsql-staging-unit-{}", uuid::Uuid::new_v4()));
        tokio::fs::create_dir_all(&dir).await.unwrap();
        let path = dir.join("f");
        let data: Vec<u8> = (0..(CHUNK_SIZE * 3 + 17)).map(|i| i as u8).collect();
        tokio::fs::write(&path, &data).await.unwrap();
        let largest = Arc::new(AtomicUsize::new(0));
        let (body, length) = file_body(&path, largest.clone()).await.unwrap();
        assert_eq!(length, data.len() as u64);
        let pieces: Vec<Bytes> = body.into_chunks().map(|c| c.unwrap()).collect().await;
        assert_eq!(pieces.len(), 4);
        assert!(pieces.iter().all(|p| p.len() <= CHUNK_SIZE));
        assert_eq!(pieces.concat(), data);
        assert_eq!(largest.load(Ordering::Relaxed), CHUNK_SIZE);
        tokio::fs::remove_dir_all(&dir).await.unwrap();
    }
}
