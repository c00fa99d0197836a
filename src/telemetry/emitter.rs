//! The driver's side of telemetry: [`TelemetryEventEmitter`], whose `emit_*` calls turn what
//! happened into events and put them on the host's bounded queue without ever waiting.
//!
//! A disabled emitter holds nothing, so an emit costs one branch. An enabled one checks a gate
//! (one atomic load) that the host's telemetry task closes while the feature flag is off or once
//! it has stopped; a full queue drops the event and counts the drop. No emit returns an error or
//! lets a panic out.

use std::panic::{catch_unwind, AssertUnwindSafe};
use std::sync::atomic::{AtomicU64, AtomicU8, Ordering};
use std::sync::Arc;
use std::time::Duration;

use tokio::sync::{mpsc, Notify};
use tokio::time::Instant;

use super::classifier::ExceptionClassifier;
use super::redact::redact_message;
use super::types::{
    ChunkDownload, ConnectionParameters, ErrorDetails, EventDetail, OperationType,
    StatementCompletion, TelemetryEvent,
};
use crate::error::{Error, ErrorKind};

const GATE_PENDING: u8 = 0;
const GATE_ON: u8 = 1;
const GATE_OFF: u8 = 2;
const GATE_CLOSED: u8 = 3;

/// Whether a host's telemetry wants events now. PENDING (flag not known yet) and ON accept;
/// OFF (flag off) and CLOSED (task stopped; final) refuse.
#[derive(Debug)]
pub(crate) struct EmitGate(AtomicU8);

impl EmitGate {
    /// A gate waiting for the feature flag.
    pub(crate) fn pending() -> Self {
        EmitGate(AtomicU8::new(GATE_PENDING))
    }

    /// A gate that accepts from the start (the flag is skipped).
    pub(crate) fn open() -> Self {
        EmitGate(AtomicU8::new(GATE_ON))
    }

    /// Whether events are accepted.
    pub(crate) fn accepts(&self) -> bool {
        matches!(self.0.load(Ordering::Relaxed), GATE_PENDING | GATE_ON)
    }

    /// Follow the feature flag (no effect once closed).
    pub(crate) fn set_enabled(&self, enabled: bool) {
        let to = if enabled { GATE_ON } else { GATE_OFF };
        let _ = self
            .0
            .fetch_update(Ordering::Relaxed, Ordering::Relaxed, |s| {
                (s != GATE_CLOSED).then_some(to)
            });
    }

    /// Refuse events for good.
    pub(crate) fn close(&self) {
        self.0.store(GATE_CLOSED, Ordering::Relaxed);
    }

    /// Whether the gate was closed for good.
    pub(crate) fn is_closed(&self) -> bool {
        self.0.load(Ordering::Relaxed) == GATE_CLOSED
    }
}

/// A host's event queue, between the driver's emitters and the host's telemetry task. Made by
/// [`event_queue`]: its capacity bounds memory (a full queue drops), and the task is woken only
/// for an error or once `wake_at` events wait, so that a statement's events cost no wake-up of
/// the task: it otherwise takes the queue in at every `flush_interval`.
pub(crate) fn event_queue(capacity: usize, wake_at: usize) -> (EventSender, EventReceiver) {
    let (tx, rx) = mpsc::channel(capacity.max(1));
    let wake = Arc::new(Notify::new());
    let sender = EventSender {
        tx,
        wake: wake.clone(),
        wake_at: wake_at.clamp(1, capacity.max(1)),
    };
    (sender, EventReceiver { rx, wake })
}

/// The driver's end of a host's event queue.
#[derive(Debug, Clone)]
pub(crate) struct EventSender {
    tx: mpsc::Sender<TelemetryEvent>,
    wake: Arc<Notify>,
    wake_at: usize,
}

impl EventSender {
    /// Queue `event` without waiting; wake the telemetry task for a terminal error (sent at
    /// once) or when `wake_at` events wait.
    pub(crate) fn try_send(&self, event: TelemetryEvent) -> Result<(), Refused> {
        let urgent = matches!(&event.detail, EventDetail::Error(e) if e.terminal);
        self.tx.try_send(event).map_err(|e| match e {
            mpsc::error::TrySendError::Full(_) => Refused::Full,
            mpsc::error::TrySendError::Closed(_) => Refused::Closed,
        })?;
        if urgent || self.tx.max_capacity() - self.tx.capacity() >= self.wake_at {
            self.wake.notify_one();
        }
        Ok(())
    }
}

/// Why an event was not queued.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum Refused {
    /// The queue is full: the event is dropped.
    Full,
    /// The telemetry task has stopped.
    Closed,
}

/// The telemetry task's end of a host's event queue.
#[derive(Debug)]
pub(crate) struct EventReceiver {
    rx: mpsc::Receiver<TelemetryEvent>,
    wake: Arc<Notify>,
}

impl EventReceiver {
    /// What wakes the task before its next tick.
    pub(crate) fn wake(&self) -> Arc<Notify> {
        self.wake.clone()
    }

    /// How many events the queue holds at most.
    pub(crate) fn capacity(&self) -> usize {
        self.rx.max_capacity()
    }

    /// The next waiting event, if any; `Disconnected` once every sender is gone.
    pub(crate) fn try_recv(&mut self) -> Result<TelemetryEvent, mpsc::error::TryRecvError> {
        self.rx.try_recv()
    }

    /// Refuse new events; those already queued can still be taken.
    pub(crate) fn close(&mut self) {
        self.rx.close();
    }
}

#[derive(Debug)]
struct EmitterInner {
    sender: EventSender,
    gate: Arc<EmitGate>,
    dropped: Arc<AtomicU64>,
    connection: Option<Arc<ConnectionParameters>>,
}

/// Emits telemetry events for one connection, stamping its parameters on the events that open a
/// session (or fail to). Cheap to clone; absent (a no-op) when telemetry
/// is disabled.
#[derive(Debug, Clone, Default)]
pub(crate) struct TelemetryEventEmitter {
    inner: Option<Arc<EmitterInner>>,
}

impl TelemetryEventEmitter {
    /// An emitter that does nothing.
    pub(crate) fn disabled() -> Self {
        Self::default()
    }

    /// An emitter onto `sender`, refused while `gate` is shut, counting drops in `dropped`,
    /// stamping each event with `connection`.
    pub(crate) fn new(
        sender: EventSender,
        gate: Arc<EmitGate>,
        dropped: Arc<AtomicU64>,
        connection: Option<Arc<ConnectionParameters>>,
    ) -> Self {
        TelemetryEventEmitter {
            inner: Some(Arc::new(EmitterInner {
                sender,
                gate,
                dropped,
                connection,
            })),
        }
    }

    /// Whether events currently go anywhere.
    pub(crate) fn is_enabled(&self) -> bool {
        self.inner.as_ref().is_some_and(|i| i.gate.accepts())
    }

    /// A session opened, after `latency`.
    pub(crate) fn emit_connection_open(&self, session_id: &str, latency: Duration) {
        if let Some(inner) = &self.inner {
            inner.emit(Some(session_id), None, || EventDetail::ConnectionOpen {
                latency,
            });
        }
    }

    /// A session closed, after `latency`.
    pub(crate) fn emit_connection_close(&self, session_id: &str, latency: Duration) {
        if let Some(inner) = &self.inner {
            inner.emit(Some(session_id), None, || EventDetail::ConnectionClose {
                latency,
            });
        }
    }

    /// A statement (or metadata operation) was submitted at `submitted` (its latency counts
    /// from then) and the server accepted it as `statement_id`.
    pub(crate) fn emit_statement_start(
        &self,
        session_id: &str,
        statement_id: &str,
        operation_type: OperationType,
        submitted: Instant,
    ) {
        if let Some(inner) = &self.inner {
            inner.emit_at(
                Some(submitted),
                Some(session_id),
                Some(statement_id),
                || EventDetail::StatementStart { operation_type },
            );
        }
    }

    /// A statement completed (its results consumed or it was closed).
    pub(crate) fn emit_statement_complete(
        &self,
        session_id: &str,
        statement_id: &str,
        completion: StatementCompletion,
    ) {
        if let Some(inner) = &self.inner {
            inner.emit(Some(session_id), Some(statement_id), || {
                EventDetail::StatementComplete(completion)
            });
        }
    }

    /// A CloudFetch file of a statement was downloaded.
    pub(crate) fn emit_cloudfetch_chunk(&self, statement_id: &str, chunk: ChunkDownload) {
        if let Some(inner) = &self.inner {
            inner.emit(None, Some(statement_id), || {
                EventDetail::CloudFetchChunk(chunk)
            });
        }
    }

    /// An error happened; the ids default to the ones the error carries.
    pub(crate) fn emit_error(
        &self,
        error: &Error,
        session_id: Option<&str>,
        statement_id: Option<&str>,
    ) {
        if let Some(inner) = &self.inner {
            inner.emit(
                session_id.or(error.session_id()),
                statement_id.or(error.statement_id()),
                || EventDetail::Error(error_details(error)),
            );
        }
    }
}

impl EmitterInner {
    fn emit(
        &self,
        session_id: Option<&str>,
        statement_id: Option<&str>,
        detail: impl FnOnce() -> EventDetail,
    ) {
        self.emit_at(None, session_id, statement_id, detail);
    }

    /// Emit an event that happened at `at` (`None`: now).
    fn emit_at(
        &self,
        at: Option<Instant>,
        session_id: Option<&str>,
        statement_id: Option<&str>,
        detail: impl FnOnce() -> EventDetail,
    ) {
        if !self.gate.accepts() {
            return;
        }
        let sent = catch_unwind(AssertUnwindSafe(|| {
            let mut event = TelemetryEvent::now(detail());
            if let Some(at) = at {
                event.at = at;
            }
            // The connection's parameters go with what opens a session (or fails to, before
            // there is one): once per session, not with every statement.
            let opens = match &event.detail {
                EventDetail::ConnectionOpen { .. } => true,
                EventDetail::Error(_) => session_id.is_none(),
                _ => false,
            };
            if opens {
                event.connection = self.connection.clone();
            }
            event.session_id = session_id.map(str::to_string);
            event.statement_id = statement_id.map(str::to_string);
            // Only whether the queue was full or closed matters; the event itself is dropped.
            self.sender
                .try_send(event)
                .map_err(|refused| refused == Refused::Full)
        }));
        match sent {
            Ok(Ok(())) => {}
            Ok(Err(true)) => self.count_drop("queue full"),
            Ok(Err(false)) => {
                self.gate.close();
                self.count_drop("telemetry stopped");
            }
            Err(_) => self.count_drop("building the event panicked"),
        }
    }

    fn count_drop(&self, why: &'static str) {
        let dropped = self.dropped.fetch_add(1, Ordering::Relaxed) + 1;
        // 1, 2, 4, 8...: the log stays small however many are dropped.
        if dropped.is_power_of_two() {
            tracing::debug!(dropped, why, "telemetry: event dropped");
        }
    }
}

/// What telemetry keeps of `error`: its kind's name, its classification and a redacted text.
/// For errors whose message can carry the server's words (what it reported about a statement,
/// an HTTP reason, a Thrift exception, an unknown handle), the text is only the HTTP status,
/// SQLSTATE and error code: server messages can quote the statement. Errors the driver words
/// itself (connection, timeout, decoding, downloads, configuration) keep their redacted message.
pub(crate) fn error_details(error: &Error) -> ErrorDetails {
    let server_worded = matches!(
        error.kind(),
        ErrorKind::Server
            | ErrorKind::QueryTimeout
            | ErrorKind::Cancelled
            | ErrorKind::InvalidHandle
            | ErrorKind::Http
            | ErrorKind::Auth
            | ErrorKind::Protocol
    );
    let message = if server_worded {
        let mut parts = Vec::new();
        if let Some(status) = error.http_status() {
            parts.push(format!("HTTP {status}"));
        }
        if let Some(state) = error.sql_state() {
            parts.push(format!("SQLSTATE {state}"));
        }
        if let Some(code) = error.error_code() {
            parts.push(format!("error code {code}"));
        }
        redact_message(&parts.join(", "))
    } else {
        redact_message(&error.to_string())
    };
    ErrorDetails {
        name: format!("{:?}", error.kind()),
        message,
        http_status: error.http_status(),
        terminal: ExceptionClassifier::is_terminal(error),
        retryable: ExceptionClassifier::is_retryable(error),
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::telemetry::types::{ResultFormat, TelemetryEventType};

    fn emitter(
        capacity: usize,
    ) -> (
        TelemetryEventEmitter,
        EventReceiver,
        Arc<EmitGate>,
        Arc<AtomicU64>,
    ) {
        let (tx, rx) = event_queue(capacity, capacity);
        let gate = Arc::new(EmitGate::pending());
        let dropped = Arc::new(AtomicU64::new(0));
        let conn = Arc::new(ConnectionParameters {
            http_path: "/sql/1.0/warehouses/abc".into(),
            auth_type: "pat".into(),
            ..Default::default()
        });
        let e = TelemetryEventEmitter::new(tx, gate.clone(), dropped.clone(), Some(conn));
        (e, rx, gate, dropped)
    }

    fn drain(rx: &mut EventReceiver) -> Vec<TelemetryEvent> {
        let mut out = Vec::new();
        while let Ok(e) = rx.try_recv() {
            out.push(e);
        }
        out
    }

    #[tokio::test(start_paused = true)]
    async fn only_a_terminal_error_or_a_full_batch_wakes_the_telemetry_task() {
        use futures::FutureExt;
        let (e, rx, _, _) = emitter(8);
        let woken = || rx.wake().notified().now_or_never().is_some();
        e.emit_statement_start("s", "q", OperationType::ExecuteStatement, Instant::now());
        e.emit_statement_complete("s", "q", StatementCompletion::default());
        e.emit_error(
            &Error::new(ErrorKind::Connect, "reset"),
            Some("s"),
            Some("q"),
        );
        assert!(
            !woken(),
            "a statement's events and a retryable error wait for the tick"
        );
        e.emit_error(&Error::from_http_status(401, "refused"), Some("s"), None);
        assert!(woken(), "a terminal error wakes the task");
        for _ in 0..4 {
            e.emit_connection_open("s", Duration::ZERO);
        }
        assert!(
            woken(),
            "eight waiting events (the wake-up mark) wake the task"
        );
    }

    #[tokio::test(start_paused = true)]
    async fn emits_each_event_type() {
        let (e, mut rx, _, _) = emitter(16);
        e.emit_connection_open("s1", Duration::from_millis(30));
        e.emit_statement_start("s1", "q1", OperationType::ExecuteStatement, Instant::now());
        e.emit_cloudfetch_chunk(
            "q1",
            ChunkDownload {
                chunk_index: 0,
                latency: Duration::from_millis(12),
                bytes: 1024,
                compressed: true,
            },
        );
        e.emit_statement_complete(
            "s1",
            "q1",
            StatementCompletion {
                result_format: Some(ResultFormat::ExternalLinks),
                ..Default::default()
            },
        );
        e.emit_error(
            &Error::new(ErrorKind::Connect, "connection reset"),
            Some("s1"),
            Some("q1"),
        );
        e.emit_connection_close("s1", Duration::from_millis(5));
        let types: Vec<_> = drain(&mut rx).iter().map(|ev| ev.event_type()).collect();
        assert_eq!(
            types,
            [
                TelemetryEventType::ConnectionOpen,
                TelemetryEventType::StatementStart,
                TelemetryEventType::CloudFetchChunk,
                TelemetryEventType::StatementComplete,
                TelemetryEventType::Error,
                TelemetryEventType::ConnectionClose,
            ]
        );
    }

    #[tokio::test(start_paused = true)]
    async fn events_carry_every_required_field() {
        let (e, mut rx, _, _) = emitter(16);
        e.emit_statement_start("s1", "q1", OperationType::ListTables, Instant::now());
        e.emit_cloudfetch_chunk("q1", ChunkDownload::default());
        e.emit_connection_open("s1", Duration::from_millis(30));
        let events = drain(&mut rx);
        let start = &events[0];
        assert_eq!(start.session_id.as_deref(), Some("s1"));
        assert_eq!(start.statement_id.as_deref(), Some("q1"));
        assert!(start.timestamp_millis > 0);
        assert!(
            start.connection.is_none(),
            "a statement's events do not repeat them"
        );
        assert_eq!(
            events[2].connection.as_ref().map(|c| c.http_path.as_str()),
            Some("/sql/1.0/warehouses/abc"),
            "a session opening carries the connection's parameters"
        );
        assert_eq!(
            start.detail,
            EventDetail::StatementStart {
                operation_type: OperationType::ListTables
            }
        );
        assert_eq!(events[1].statement_id.as_deref(), Some("q1"));
        assert_eq!(events[2].session_id.as_deref(), Some("s1"));
        assert_eq!(
            events[2].detail,
            EventDetail::ConnectionOpen {
                latency: Duration::from_millis(30)
            }
        );
    }

    #[tokio::test(start_paused = true)]
    async fn error_events_take_ids_from_the_error_and_classify_it() {
        let (e, mut rx, _, _) = emitter(16);
        let err = Error::from_http_status(401, "the server answered HTTP 401")
            .with_session_id("s9")
            .with_statement_id("q9");
        e.emit_error(&err, None, None);
        let ev = drain(&mut rx).remove(0);
        assert_eq!(ev.session_id.as_deref(), Some("s9"));
        assert_eq!(ev.statement_id.as_deref(), Some("q9"));
        let EventDetail::Error(d) = ev.detail else {
            panic!("not an error event: {:?}", ev.detail)
        };
        assert_eq!(d.name, "Auth");
        assert_eq!(d.http_status, Some(401));
        assert!(d.terminal && !d.retryable);
    }

    #[test]
    fn error_details_redact_secrets_and_never_keep_server_text() {
        let transport = Error::new(
            ErrorKind::CloudFetch,
            "download of https://bucket/f?X-Amz-Signature=s3cr3t failed with Bearer dapiabcdef",
        );
        let d = error_details(&transport);
        assert!(
            !d.message.contains("s3cr3t") && !d.message.contains("dapiabcdef"),
            "{}",
            d.message
        );
        assert!(
            d.message.contains("https://bucket/f?REDACTED"),
            "{}",
            d.message
        );

        let server = Error::new(
            ErrorKind::Server,
            "Syntax error in SELECT secret_column FROM t",
        )
        .with_sql_state(Some("42601".into()))
        .with_error_code(Some(1001));
        let d = error_details(&server);
        assert_eq!(d.name, "Server");
        assert_eq!(d.message, "SQLSTATE 42601, error code 1001");
        assert!(!d.terminal && !d.retryable);

        // An HTTP error quotes the server's reason header: only the status is kept.
        let http = Error::from_http_status(
            503,
            "the server answered HTTP 503: warehouse busy running SELECT secret_column",
        );
        let d = error_details(&http);
        assert_eq!(d.message, "HTTP 503");
        let protocol = Error::new(ErrorKind::Protocol, "TApplicationException: SELECT x");
        assert_eq!(error_details(&protocol).message, "");
    }

    #[tokio::test(start_paused = true)]
    async fn a_disabled_emitter_does_nothing() {
        let e = TelemetryEventEmitter::disabled();
        assert!(!e.is_enabled());
        e.emit_connection_open("s", Duration::ZERO);
        e.emit_statement_start("s", "q", OperationType::ExecuteStatement, Instant::now());
        e.emit_statement_complete("s", "q", StatementCompletion::default());
        e.emit_cloudfetch_chunk("q", ChunkDownload::default());
        e.emit_error(&Error::new(ErrorKind::Connect, "x"), None, None);
        e.emit_connection_close("s", Duration::ZERO);
    }

    #[tokio::test(start_paused = true)]
    async fn emits_nothing_while_the_flag_is_off_and_again_once_on() {
        let (e, mut rx, gate, dropped) = emitter(16);
        assert!(e.is_enabled(), "pending flag: events are queued");
        gate.set_enabled(false);
        assert!(!e.is_enabled());
        e.emit_connection_open("s", Duration::ZERO);
        assert!(drain(&mut rx).is_empty());
        gate.set_enabled(true);
        e.emit_connection_open("s", Duration::ZERO);
        assert_eq!(drain(&mut rx).len(), 1);
        assert_eq!(
            dropped.load(Ordering::Relaxed),
            0,
            "gated events are not drops"
        );
        gate.close();
        gate.set_enabled(true);
        assert!(gate.is_closed() && !e.is_enabled(), "closed is final");
    }

    #[tokio::test(start_paused = true)]
    async fn a_full_queue_drops_and_counts_without_blocking() {
        let (e, mut rx, _, dropped) = emitter(2);
        for _ in 0..5 {
            e.emit_connection_open("s", Duration::ZERO);
        }
        assert_eq!(drain(&mut rx).len(), 2);
        assert_eq!(dropped.load(Ordering::Relaxed), 3);
    }

    #[tokio::test(start_paused = true)]
    async fn never_errors_or_panics_when_telemetry_is_gone() {
        let (e, rx, gate, dropped) = emitter(2);
        drop(rx);
        e.emit_connection_open("s", Duration::ZERO);
        e.emit_error(&Error::new(ErrorKind::Connect, "x"), None, None);
        assert_eq!(
            dropped.load(Ordering::Relaxed),
            1,
            "the first drop closes the gate"
        );
        assert!(gate.is_closed());
        assert!(!e.is_enabled());
    }
}
