//! The driver's side of telemetry: [`ClientTelemetry`], one per client, which takes a reference
//! on its host's telemetry at the first connection and gives it back on close; and
//! [`StatementRecorder`], one per statement, which measures the statement and reports it once,
//! when it ends, to the host's telemetry and to the application as [`StatementMetrics`].
//!
//! Nothing here blocks or fails: reports are non-blocking emits, and a panicking application
//! callback is caught and logged at debug.

use std::fmt;
use std::panic::{catch_unwind, AssertUnwindSafe};
use std::sync::atomic::{AtomicU32, Ordering};
use std::sync::{Arc, Mutex, MutexGuard, PoisonError};
use std::time::Duration;

use tokio::time::Instant;

use super::classifier::ExceptionClassifier;
use super::client_provider::{TelemetryClientProvider, TelemetryHandle};
use super::emitter::TelemetryEventEmitter;
use super::types::{
    ChunkDownload, OperationType, ResultFormat, StatementCompletion, TelemetryContext,
};
use crate::error::{Error, ErrorKind};
use crate::results::cloudfetch::{ChunkObserver, ChunkStats, SummaryCounters};

/// The environment variable that turns telemetry off for every client of the process, whatever
/// their settings say: `1`, `true`, `yes` or `on`, in any case.
pub const TELEMETRY_DISABLED_ENV: &str = "DATABRICKS_TELEMETRY_DISABLED";

/// Whether [`TELEMETRY_DISABLED_ENV`] turns telemetry off now.
pub(crate) fn disabled_by_env() -> bool {
    std::env::var(TELEMETRY_DISABLED_ENV).is_ok_and(|v| switches_off(&v))
}

/// Whether a value of [`TELEMETRY_DISABLED_ENV`] says "off".
fn switches_off(value: &str) -> bool {
    matches!(
        value.trim().to_ascii_lowercase().as_str(),
        "1" | "true" | "yes" | "on"
    )
}

/// The workspace (org) id in a warehouse's HTTP path: `?o=<digits>` or `/o/<digits>/`.
pub(crate) fn org_id_from_http_path(http_path: &str) -> Option<String> {
    let digits = |s: &str| {
        let d: String = s.chars().take_while(char::is_ascii_digit).collect();
        (!d.is_empty()).then_some(d)
    };
    let (path, query) = http_path.split_once('?').unwrap_or((http_path, ""));
    query
        .split('&')
        .find_map(|pair| pair.strip_prefix("o=").and_then(digits))
        .or_else(|| {
            let mut parts = path.split('/');
            parts.find(|p| *p == "o")?;
            parts.next().and_then(digits)
        })
}

/// What the application asked to receive for each finished statement.
pub(crate) type StatementCallback = Arc<dyn Fn(&StatementMetrics) + Send + Sync + 'static>;

fn lock<T>(m: &Mutex<T>) -> MutexGuard<'_, T> {
    // Every critical section here leaves plain figures consistent: a poisoned lock is usable.
    m.lock().unwrap_or_else(PoisonError::into_inner)
}

/// What one client reports through: its host's telemetry (taken when its first session opens),
/// the application's statement callback and chunk observer.
pub(crate) struct ClientTelemetry {
    context: TelemetryContext,
    provider: TelemetryClientProvider,
    taken: Mutex<Taken>,
    on_statement: Option<StatementCallback>,
    chunk_observer: Option<Arc<dyn ChunkObserver>>,
}

/// The references a client holds on its host's telemetry.
#[derive(Debug, Default)]
struct Taken {
    /// The host's telemetry, with this client's credentials: taken when a session first opened
    /// (the credentials work), so that credentials the workspace refuses never serve the host.
    authenticated: Option<TelemetryHandle>,
    /// The host's telemetry without credentials: taken when connecting failed before any
    /// session opened; what it exports goes to `/telemetry-unauth`, with no ids or details.
    unauthenticated: Option<TelemetryHandle>,
    /// The client was closed: nothing is taken again.
    closed: bool,
}

impl fmt::Debug for ClientTelemetry {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("ClientTelemetry")
            .field("context", &self.context)
            .field("taken", &*lock(&self.taken))
            .field("on_statement", &self.on_statement.is_some())
            .field("chunk_observer", &self.chunk_observer.is_some())
            .finish()
    }
}

impl ClientTelemetry {
    /// The telemetry of a client whose host's telemetry is described by `context` and shared
    /// through `provider`. Takes nothing yet: that happens when a session opens (or fails to).
    pub(crate) fn new(
        context: TelemetryContext,
        provider: TelemetryClientProvider,
        on_statement: Option<StatementCallback>,
        chunk_observer: Option<Arc<dyn ChunkObserver>>,
    ) -> Self {
        ClientTelemetry {
            context,
            provider,
            taken: Mutex::new(Taken::default()),
            on_statement,
            chunk_observer,
        }
    }

    /// A session opened: the emitter for it. The client's first session takes a reference on
    /// the host's telemetry, starting it when this is its first client. A disabled emitter when
    /// telemetry is off or the client was closed.
    pub(crate) fn connected(&self) -> TelemetryEventEmitter {
        let mut taken = lock(&self.taken);
        if taken.closed {
            return TelemetryEventEmitter::disabled();
        }
        taken
            .authenticated
            .get_or_insert_with(|| {
                self.provider
                    .get_or_create(self.context.endpoint.base_url(), self.context.clone())
            })
            .emitter()
    }

    /// Opening a session failed with `error`: reported with the client's credentials once a
    /// session has opened, and before that through the host's telemetry without credentials.
    pub(crate) fn connect_failed(&self, error: &Error) {
        let emitter = {
            let mut taken = lock(&self.taken);
            if taken.closed {
                return;
            }
            let taken = &mut *taken;
            match &taken.authenticated {
                Some(handle) => handle.emitter(),
                None => taken
                    .unauthenticated
                    .get_or_insert_with(|| {
                        let mut context = self.context.clone();
                        context.auth = None;
                        let key = format!("{} without credentials", context.endpoint.base_url());
                        self.provider.get_or_create(&key, context)
                    })
                    .emitter(),
            }
        };
        emitter.emit_error(error, None, None);
    }

    /// Give the host's telemetry back; when this was its last client, its pending metrics are
    /// flushed, waiting at most `close_timeout`. Nothing is taken again afterwards.
    pub(crate) async fn close(&self) {
        let (authenticated, unauthenticated) = {
            let mut taken = lock(&self.taken);
            taken.closed = true;
            (taken.authenticated.take(), taken.unauthenticated.take())
        };
        for mut handle in [authenticated, unauthenticated].into_iter().flatten() {
            handle.close().await;
        }
    }

    /// The application's chunk observer, if it registered one.
    pub(crate) fn chunk_observer(&self) -> Option<&Arc<dyn ChunkObserver>> {
        self.chunk_observer.as_ref()
    }

    /// A statement of `operation_type` is about to be submitted in a session reporting through
    /// `emitter`: its measuring starts now. `None` when nobody would read what is measured
    /// (telemetry off or not in effect, and no statement callback), so that a statement then
    /// costs one branch per reporting point.
    pub(crate) fn begin(
        &self,
        emitter: &TelemetryEventEmitter,
        operation_type: OperationType,
    ) -> Option<PendingStatement> {
        let emitter = if emitter.is_enabled() {
            emitter.clone()
        } else if self.on_statement.is_some() {
            TelemetryEventEmitter::disabled()
        } else {
            return None;
        };
        Some(PendingStatement {
            emitter,
            on_statement: self.on_statement.clone(),
            operation_type,
            submitted: Instant::now(),
            retries: Arc::new(AtomicU32::new(0)),
        })
    }
}

/// A statement being submitted, before the server named it.
pub(crate) struct PendingStatement {
    emitter: TelemetryEventEmitter,
    on_statement: Option<StatementCallback>,
    operation_type: OperationType,
    submitted: Instant,
    retries: Arc<AtomicU32>,
}

impl PendingStatement {
    /// Where the submitting RPC counts its retries.
    pub(crate) fn retries(&self) -> &Arc<AtomicU32> {
        &self.retries
    }

    /// The server did not accept the statement: an error of the session.
    pub(crate) fn failed(self, session_id: &str, error: &Error) {
        self.emitter.emit_error(error, Some(session_id), None);
    }

    /// The server accepted the statement as `statement_id`: its recorder, the start reported.
    pub(crate) fn accepted(self, session_id: &str, statement_id: &str) -> Arc<StatementRecorder> {
        self.emitter.emit_statement_start(
            session_id,
            statement_id,
            self.operation_type,
            self.submitted,
        );
        Arc::new(StatementRecorder {
            emitter: self.emitter,
            on_statement: self.on_statement,
            session_id: session_id.to_string(),
            statement_id: statement_id.to_string(),
            operation_type: self.operation_type,
            submitted: self.submitted,
            retries: self.retries,
            state: Mutex::new(RecordState::default()),
        })
    }
}

/// What a statement measured so far.
#[derive(Default)]
struct RecordState {
    /// Reported: later calls change nothing.
    done: bool,
    /// A terminal error was reported: telemetry already closed the statement's record.
    terminal_reported: bool,
    /// The kind of the last error reported (the same error read again is not reported again).
    last_error: Option<ErrorKind>,
    /// The first error, for the application's metrics.
    first_error: Option<(ErrorKind, Option<String>)>,
    polls: u32,
    poll_latency: Duration,
    ready_at: Option<Instant>,
    first_read: Option<Instant>,
    last_read: Option<Instant>,
    result_format: Option<ResultFormat>,
    compressed: Option<bool>,
    chunks: Option<Arc<SummaryCounters>>,
}

/// Measures one statement and reports it once, when it ends (closed, cancelled, dropped, or its
/// session closed): a `statement.complete` event for the host's telemetry and [`StatementMetrics`]
/// for the application's callback. Also the statement's [`ChunkObserver`], reporting each
/// CloudFetch file.
pub(crate) struct StatementRecorder {
    emitter: TelemetryEventEmitter,
    on_statement: Option<StatementCallback>,
    session_id: String,
    statement_id: String,
    operation_type: OperationType,
    submitted: Instant,
    retries: Arc<AtomicU32>,
    state: Mutex<RecordState>,
}

impl fmt::Debug for StatementRecorder {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("StatementRecorder")
            .field("statement_id", &self.statement_id)
            .field("operation_type", &self.operation_type)
            .finish_non_exhaustive()
    }
}

impl StatementRecorder {
    /// Where the statement's RPCs count their retries.
    pub(crate) fn retries(&self) -> &Arc<AtomicU32> {
        &self.retries
    }

    /// One GetOperationStatus call took `latency`.
    pub(crate) fn poll(&self, latency: Duration) {
        let mut st = lock(&self.state);
        st.polls = st.polls.saturating_add(1);
        st.poll_latency += latency;
    }

    /// The statement finished: its result is ready (the first call counts).
    pub(crate) fn ready(&self) {
        lock(&self.state).ready_at.get_or_insert_with(Instant::now);
    }

    /// The result comes as `format`, LZ4-compressed or not.
    pub(crate) fn result(&self, format: ResultFormat, compressed: bool) {
        let mut st = lock(&self.state);
        st.result_format = Some(format);
        st.compressed = Some(compressed);
    }

    /// The result is CloudFetch files, counted by `counters`.
    pub(crate) fn cloudfetch(&self, counters: Arc<SummaryCounters>) {
        let mut st = lock(&self.state);
        st.result_format = Some(ResultFormat::ExternalLinks);
        st.chunks = Some(counters);
    }

    /// A read of the result that started at `started` returned.
    pub(crate) fn read(&self, started: Instant) {
        let mut st = lock(&self.state);
        st.first_read.get_or_insert(started);
        st.last_read = Some(Instant::now());
    }

    /// An operation of the statement failed with `error`. Reported unless the statement was
    /// already reported or the error repeats the last one (a failed result read again).
    pub(crate) fn error(&self, error: &Error) {
        {
            let mut st = lock(&self.state);
            // Once a terminal error was reported, telemetry has closed the statement's record:
            // anything more about it would open a second one.
            if st.done || st.terminal_reported || st.last_error == Some(error.kind()) {
                return;
            }
            st.last_error = Some(error.kind());
            st.first_error
                .get_or_insert_with(|| (error.kind(), error.sql_state().map(str::to_string)));
            if ExceptionClassifier::is_terminal(error) {
                st.terminal_reported = true;
            }
        }
        self.emitter
            .emit_error(error, Some(&self.session_id), Some(&self.statement_id));
    }

    /// The statement ended: report it, once.
    pub(crate) fn complete(&self) {
        let (completion, metrics, terminal_reported) = {
            let mut st = lock(&self.state);
            if st.done {
                return;
            }
            st.done = true;
            let now = Instant::now();
            let chunks = st.chunks.as_ref().map(|c| c.snapshot());
            let completion = StatementCompletion {
                result_format: st.result_format,
                compressed: st.compressed,
                poll_count: st.polls,
                poll_latency: st.poll_latency,
                chunks_present: chunks.as_ref().map(|c| c.chunks_present),
                result_ready_latency: st
                    .ready_at
                    .map(|t| t.saturating_duration_since(self.submitted)),
                result_consumption_latency: st
                    .first_read
                    .zip(st.last_read)
                    .map(|(first, last)| last.saturating_duration_since(first)),
                retry_count: self.retries.load(Ordering::Relaxed),
            };
            let metrics = self.on_statement.as_ref().map(|_| {
                let (error, sql_state) = st.first_error.clone().unzip();
                StatementMetrics {
                    statement_id: self.statement_id.clone(),
                    session_id: self.session_id.clone(),
                    operation_type: self.operation_type,
                    latency: now.saturating_duration_since(self.submitted),
                    result_format: completion.result_format,
                    compressed: completion.compressed,
                    status_polls: completion.poll_count,
                    status_poll_latency: completion.poll_latency,
                    result_ready_latency: completion.result_ready_latency,
                    result_consumption_latency: completion.result_consumption_latency,
                    retry_count: completion.retry_count,
                    chunks_present: completion.chunks_present,
                    chunks_downloaded: chunks.as_ref().map_or(0, |c| c.chunks_decoded),
                    initial_chunk_latency: chunks.as_ref().and_then(|c| c.first_chunk_latency),
                    slowest_chunk_latency: chunks
                        .as_ref()
                        .filter(|c| c.chunks_decoded > 0)
                        .map(|c| c.slowest_chunk_latency),
                    sum_chunk_download_time: chunks
                        .as_ref()
                        .map_or(Duration::ZERO, |c| c.sum_download_time),
                    bytes_downloaded: chunks.as_ref().map_or(0, |c| c.bytes_downloaded),
                    error,
                    sql_state: sql_state.flatten(),
                }
            });
            (completion, metrics, st.terminal_reported)
        };
        if !terminal_reported {
            self.emitter
                .emit_statement_complete(&self.session_id, &self.statement_id, completion);
        }
        if let (Some(callback), Some(metrics)) = (&self.on_statement, metrics) {
            if catch_unwind(AssertUnwindSafe(|| callback(&metrics))).is_err() {
                tracing::debug!(
                    statement_id = %self.statement_id,
                    "telemetry: the application's statement metrics callback panicked"
                );
            }
        }
    }
}

impl ChunkObserver for StatementRecorder {
    fn on_chunk(&self, stats: &ChunkStats) {
        let compressed = {
            let st = lock(&self.state);
            if st.done || st.terminal_reported {
                return;
            }
            st.compressed.unwrap_or(false)
        };
        self.emitter.emit_cloudfetch_chunk(
            &self.statement_id,
            ChunkDownload {
                chunk_index: u64::try_from(stats.index).unwrap_or(u64::MAX),
                latency: stats.download_total,
                bytes: stats.bytes,
                compressed,
            },
        );
    }
}

/// What one statement cost, handed to the callback of
/// [`ClientBuilder::on_statement_metrics`](crate::ClientBuilder::on_statement_metrics) when the
/// statement ends (closed, cancelled, dropped, or its session closed). The same figures the
/// driver's telemetry exports per statement, available with that telemetry off.
#[derive(Debug, Clone, PartialEq)]
#[non_exhaustive]
pub struct StatementMetrics {
    /// The statement id the server gave.
    pub statement_id: String,
    /// The session it ran in.
    pub session_id: String,
    /// A SQL statement or which metadata call.
    pub operation_type: OperationType,
    /// From submitting the statement to its end.
    pub latency: Duration,
    /// How the result came back, once known (`None`: no result read, or none at all).
    pub result_format: Option<ResultFormat>,
    /// Whether the result was LZ4-compressed, once known.
    pub compressed: Option<bool>,
    /// GetOperationStatus calls made for the statement (while waiting for it, and by
    /// [`Operation::status`](crate::Operation::status)).
    pub status_polls: u32,
    /// Their summed latency.
    pub status_poll_latency: Duration,
    /// From submitting to the statement finished, when it did.
    pub result_ready_latency: Option<Duration>,
    /// From the first read of the result to the last, when it was read.
    pub result_consumption_latency: Option<Duration>,
    /// HTTP attempts beyond the first, over every RPC of the statement.
    pub retry_count: u32,
    /// CloudFetch files the result has, as far as the links received tell (CloudFetch only).
    pub chunks_present: Option<u64>,
    /// CloudFetch files downloaded and decoded (exported as `total_chunks_iterated`).
    pub chunks_downloaded: u64,
    /// Download time of the first file, retries included.
    pub initial_chunk_latency: Option<Duration>,
    /// The longest download time of one file.
    pub slowest_chunk_latency: Option<Duration>,
    /// The download times of every file, summed.
    pub sum_chunk_download_time: Duration,
    /// Bytes of CloudFetch files downloaded.
    pub bytes_downloaded: u64,
    /// The kind of the first error the statement met, if any.
    pub error: Option<ErrorKind>,
    /// That error's SQLSTATE, when the server gave one.
    pub sql_state: Option<String>,
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn org_id_comes_from_the_query_or_the_path() {
        assert_eq!(
            org_id_from_http_path("sql/protocolv1/o/6051921418418893/0123-abc"),
            Some("6051921418418893".into())
        );
        assert_eq!(
            org_id_from_http_path("/sql/1.0/warehouses/abc?o=42&x=1"),
            Some("42".into())
        );
        assert_eq!(org_id_from_http_path("/sql/1.0/warehouses/abc"), None);
        assert_eq!(org_id_from_http_path("/o/notdigits/x"), None);
    }

    #[test]
    fn the_kill_switch_takes_the_usual_true_words_in_any_case() {
        for (value, off) in [
            ("1", true),
            ("TRUE", true),
            ("Yes", true),
            ("on", true),
            ("0", false),
            ("false", false),
            ("", false),
        ] {
            assert_eq!(switches_off(value), off, "{value:?}");
        }
    }
}
