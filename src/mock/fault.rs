//! Fault injection: what the mock warehouse does instead of (or before) answering the next
//! requests that match a target.
//!
//! A [`Fault`] applies to the next `n` requests matching its [`FaultTarget`]; faults are queued in
//! the order they were injected and each request uses at most one (the first that matches).
//!
//! CloudFetch files are targeted per chunk ([`Fault::on_chunk`]). Most kinds act when a file is
//! requested; [`FaultKind::ExpiredLink`] acts when a link to the file is *issued* (in a
//! FetchResults or direct-results reply), so it is matched against link issues, never requests.

use std::time::Duration;

/// What a fault does to a request.
#[derive(Debug, Clone, PartialEq, Eq)]
#[non_exhaustive]
pub enum FaultKind {
    /// Answer nothing but this HTTP status (with a short text body), without running the request.
    HttpStatus {
        /// The status code, e.g. 503.
        status: u16,
        /// The `Retry-After` header value to send, if any (`"2"` or an HTTP date).
        retry_after: Option<String>,
    },
    /// Close the connection without writing any reply; the request is not run.
    DropConnection,
    /// Run the request, then close the connection without writing its reply: the client
    /// cannot tell this from [`DropConnection`](Self::DropConnection), but the request ran.
    DropConnectionAfterRun,
    /// Answer `200 OK` with a body that is neither Thrift nor JSON; the request is not run.
    CorruptBody,
    /// Run the request normally (after the fault's delay, if any).
    Pass,
    /// Answer normally, but declare the whole body's length, send only its first half and close
    /// the connection (the client sees a body cut short: a connection error).
    TruncatedBody,
    /// CloudFetch files only (other requests run normally): serve a damaged file. An LZ4 file is
    /// served as a frame with a content checksum whose block data has bytes overwritten (an
    /// invalid LZ4 frame); an uncompressed file has the flatbuffer metadata of its schema
    /// message overwritten (an invalid Arrow IPC stream).
    CorruptFile,
    /// CloudFetch files only (other requests run normally): serve a valid file with one row
    /// fewer than its link announces (`rowCount`).
    WrongRowCount,
    /// CloudFetch links only: the link is issued already expired (`expiryTime` one second in the
    /// past, and its signature expired, so a GET of it answers 403). Applied when the link is
    /// issued, not when it is requested.
    ExpiredLink,
}

impl FaultKind {
    /// Whether the fault acts when a CloudFetch link is issued (else: when a request arrives).
    pub(crate) fn at_link_issue(&self) -> bool {
        matches!(self, FaultKind::ExpiredLink)
    }
}

/// Which requests a fault applies to.
#[derive(Debug, Clone, PartialEq, Eq)]
#[non_exhaustive]
pub enum FaultTarget {
    /// Every request, whatever its path.
    AnyRequest,
    /// Every Thrift call.
    AnyRpc,
    /// Requests with this name: a Thrift method (`"ExecuteStatement"`) or one of the endpoint
    /// names of [`endpoint`](crate::mock::endpoint) (`"feature-flags"`, `"telemetry-ext"`...).
    Named(String),
    /// GETs of CloudFetch file number `n` (counted from 0 in the result, whatever the
    /// statement), or of any file with `None`; for [`FaultKind::ExpiredLink`], the issue of that
    /// file's link.
    CloudFetchFile(Option<usize>),
}

/// What a fault is matched against: a request, or the issue of a CloudFetch link.
#[derive(Debug, Clone, Copy)]
pub(crate) struct Occasion<'a> {
    /// The request name (a Thrift method or an [`endpoint`](crate::mock::endpoint) name).
    pub(crate) name: &'a str,
    pub(crate) is_rpc: bool,
    /// The CloudFetch file, for a file GET or a link issue.
    pub(crate) chunk: Option<usize>,
    /// A link is being issued (not a request arriving).
    pub(crate) link_issue: bool,
}

impl<'a> Occasion<'a> {
    /// An arriving request that is not a CloudFetch file GET.
    #[cfg(test)]
    pub(crate) fn request(name: &'a str, is_rpc: bool) -> Self {
        Occasion {
            name,
            is_rpc,
            chunk: None,
            link_issue: false,
        }
    }
}

impl FaultTarget {
    pub(crate) fn matches(&self, name: &str, is_rpc: bool, chunk: Option<usize>) -> bool {
        match self {
            FaultTarget::AnyRequest => true,
            FaultTarget::AnyRpc => is_rpc,
            FaultTarget::Named(n) => n == name,
            FaultTarget::CloudFetchFile(want) => {
                chunk.is_some() && (want.is_none() || *want == chunk)
            }
        }
    }
}

/// A fault to inject with [`MockWarehouse::inject`](crate::mock::MockWarehouse::inject).
///
/// By default a fault applies once, to the next request of any kind, without delay.
///
/// ```
/// use std::time::Duration;
/// use databricks_sql::mock::Fault;
///
/// // The next two GetOperationStatus calls get 503 with Retry-After: 1.
/// let f = Fault::http_status(503).retry_after("1").on("GetOperationStatus").times(2);
/// // The next ExecuteStatement waits 2 s before it is answered normally.
/// let d = Fault::delay(Duration::from_secs(2)).on("ExecuteStatement");
/// // The first two GETs of CloudFetch file 3 answer 500; file 5's first link is issued expired.
/// let c = Fault::http_status(500).on_chunk(3).times(2);
/// let e = Fault::expired_link().on_chunk(5);
/// # let _ = (f, d, c, e);
/// ```
#[derive(Debug, Clone, PartialEq, Eq)]
#[must_use]
pub struct Fault {
    pub(crate) kind: FaultKind,
    pub(crate) delay: Duration,
    pub(crate) target: FaultTarget,
    pub(crate) times: usize,
}

impl Fault {
    fn new(kind: FaultKind) -> Self {
        Fault {
            kind,
            delay: Duration::ZERO,
            target: FaultTarget::AnyRequest,
            times: 1,
        }
    }

    /// Answer with HTTP `status` instead of running the request.
    pub fn http_status(status: u16) -> Self {
        Self::new(FaultKind::HttpStatus {
            status,
            retry_after: None,
        })
    }

    /// Wait `delay`, then answer normally.
    pub fn delay(delay: Duration) -> Self {
        Self::new(FaultKind::Pass).delayed_by(delay)
    }

    /// Close the connection without a reply.
    pub fn drop_connection() -> Self {
        Self::new(FaultKind::DropConnection)
    }

    /// Run the request, then close the connection without its reply.
    pub fn drop_connection_after_run() -> Self {
        Self::new(FaultKind::DropConnectionAfterRun)
    }

    /// Answer `200 OK` with a garbage body.
    pub fn corrupt_body() -> Self {
        Self::new(FaultKind::CorruptBody)
    }

    /// Send the first half of the reply body, then close the connection (see
    /// [`FaultKind::TruncatedBody`]).
    pub fn truncated_body() -> Self {
        Self::new(FaultKind::TruncatedBody)
    }

    /// Serve a damaged CloudFetch file (see [`FaultKind::CorruptFile`]).
    pub fn corrupt_file() -> Self {
        Self::new(FaultKind::CorruptFile)
    }

    /// Serve a CloudFetch file with one row fewer than its link says (see
    /// [`FaultKind::WrongRowCount`]).
    pub fn wrong_row_count() -> Self {
        Self::new(FaultKind::WrongRowCount)
    }

    /// Issue a CloudFetch link already expired (see [`FaultKind::ExpiredLink`]). Its `times`
    /// counts link issues: the first link and each refreshed one.
    pub fn expired_link() -> Self {
        Self::new(FaultKind::ExpiredLink)
    }

    /// Send `Retry-After: <value>` with an [`http_status`](Self::http_status) fault (ignored by
    /// other kinds). `value` is sent as is: seconds (`"2"`) or an HTTP date.
    pub fn retry_after(mut self, value: impl Into<String>) -> Self {
        if let FaultKind::HttpStatus { retry_after, .. } = &mut self.kind {
            *retry_after = Some(value.into());
        }
        self
    }

    /// Wait `delay` before doing what the fault does. Default: no delay.
    pub fn delayed_by(mut self, delay: Duration) -> Self {
        self.delay = delay;
        self
    }

    /// Apply to requests named `name` only: a Thrift method name such as `"FetchResults"`, or an
    /// endpoint name from [`endpoint`](crate::mock::endpoint).
    pub fn on(self, name: &str) -> Self {
        self.on_target(FaultTarget::Named(name.to_string()))
    }

    /// Apply to CloudFetch file number `index` (from 0 in the result) only.
    pub fn on_chunk(self, index: usize) -> Self {
        self.on_target(FaultTarget::CloudFetchFile(Some(index)))
    }

    /// Apply to every CloudFetch file.
    pub fn on_any_chunk(self) -> Self {
        self.on_target(FaultTarget::CloudFetchFile(None))
    }

    /// Apply to every Thrift call (not to the telemetry endpoints).
    pub fn on_any_rpc(self) -> Self {
        self.on_target(FaultTarget::AnyRpc)
    }

    /// Apply to the requests `target` selects. Default: [`FaultTarget::AnyRequest`].
    pub fn on_target(mut self, target: FaultTarget) -> Self {
        self.target = target;
        self
    }

    /// Apply to the next `n` matching requests. Default: 1.
    pub fn times(mut self, n: usize) -> Self {
        self.times = n;
        self
    }

    /// What the fault does.
    pub fn kind(&self) -> &FaultKind {
        &self.kind
    }
}

/// The queue of injected faults not yet used up.
#[derive(Debug, Default)]
pub(crate) struct FaultQueue {
    faults: Vec<Fault>,
}

/// What to do with one request, taken from the queue.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) struct Injected {
    pub(crate) kind: FaultKind,
    pub(crate) delay: Duration,
}

impl FaultQueue {
    pub(crate) fn push(&mut self, fault: Fault) {
        if fault.times > 0 {
            self.faults.push(fault);
        }
    }

    /// Use one application of the first fault matching `at`, if any. Faults that act at link
    /// issue match only link issues, the others only requests.
    pub(crate) fn take(&mut self, at: Occasion<'_>) -> Option<Injected> {
        let i = self.faults.iter().position(|f| {
            f.kind.at_link_issue() == at.link_issue
                && f.target.matches(at.name, at.is_rpc, at.chunk)
        })?;
        let f = &mut self.faults[i];
        let injected = Injected {
            kind: f.kind.clone(),
            delay: f.delay,
        };
        f.times -= 1;
        if f.times == 0 {
            let _used_up = self.faults.remove(i);
        }
        Some(injected)
    }

    pub(crate) fn clear(&mut self) {
        self.faults.clear();
    }

    pub(crate) fn pending(&self) -> usize {
        self.faults.iter().map(|f| f.times).sum()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_fault_applies_to_the_next_n_matching_requests_only() {
        let mut q = FaultQueue::default();
        q.push(Fault::http_status(503).on("FetchResults").times(2));
        assert_eq!(q.take(Occasion::request("ExecuteStatement", true)), None);
        assert!(q.take(Occasion::request("FetchResults", true)).is_some());
        assert!(q.take(Occasion::request("FetchResults", true)).is_some());
        assert_eq!(q.take(Occasion::request("FetchResults", true)), None);
        assert_eq!(q.pending(), 0);
    }

    #[test]
    fn faults_are_used_in_injection_order() {
        let mut q = FaultQueue::default();
        q.push(Fault::drop_connection().on_any_rpc());
        q.push(Fault::corrupt_body());
        assert_eq!(
            q.take(Occasion::request("feature-flags", false))
                .unwrap()
                .kind,
            FaultKind::CorruptBody
        );
        assert_eq!(
            q.take(Occasion::request("OpenSession", true)).unwrap().kind,
            FaultKind::DropConnection
        );
        assert_eq!(q.take(Occasion::request("OpenSession", true)), None);
    }

    #[test]
    fn retry_after_and_delay_are_carried() {
        let mut q = FaultQueue::default();
        q.push(
            Fault::http_status(429)
                .retry_after("3")
                .delayed_by(Duration::from_millis(5)),
        );
        let got = q.take(Occasion::request("x", false)).unwrap();
        assert_eq!(
            got.kind,
            FaultKind::HttpStatus {
                status: 429,
                retry_after: Some("3".into())
            }
        );
        assert_eq!(got.delay, Duration::from_millis(5));
        q.push(Fault::delay(Duration::from_secs(1)).times(0));
        assert_eq!(q.pending(), 0);
    }

    fn file(chunk: usize, link_issue: bool) -> Occasion<'static> {
        Occasion {
            name: crate::mock::endpoint::CLOUDFETCH_FILE,
            is_rpc: false,
            chunk: Some(chunk),
            link_issue,
        }
    }

    #[test]
    fn chunk_faults_match_their_file_only() {
        let mut q = FaultQueue::default();
        q.push(Fault::http_status(500).on_chunk(2).times(2));
        assert_eq!(q.take(file(1, false)), None);
        assert_eq!(q.take(Occasion::request("FetchResults", true)), None);
        assert!(q.take(file(2, false)).is_some());
        assert!(q.take(file(2, false)).is_some());
        assert_eq!(q.take(file(2, false)), None);
        q.push(Fault::drop_connection().on_any_chunk());
        assert_eq!(q.take(Occasion::request("cloudfetch-file", false)), None);
        assert!(q.take(file(7, false)).is_some());
    }

    #[test]
    fn expired_link_faults_act_at_link_issue_only() {
        let mut q = FaultQueue::default();
        q.push(Fault::expired_link().on_chunk(1));
        assert_eq!(q.take(file(1, false)), None, "a GET does not use it");
        assert_eq!(q.take(file(0, true)), None, "another file's link does not");
        assert_eq!(q.take(file(1, true)).unwrap().kind, FaultKind::ExpiredLink);
        q.push(Fault::http_status(403).on_chunk(1));
        assert_eq!(
            q.take(file(1, true)),
            None,
            "a request fault is not used at link issue"
        );
        assert_eq!(q.pending(), 1);
    }
}
