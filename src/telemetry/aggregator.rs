//! [`MetricsAggregator`]: turns the event stream of one host into metrics (one per statement,
//! connection events straight through) and decides when they are flushed to the exporter:
//! at `batch_size`, every `flush_interval`, at once for terminal errors, and on shutdown.
//!
//! The aggregation itself is synchronous and owns its state; [`MetricsAggregator::run`] is the
//! loop of a host's telemetry task around it.

use std::collections::{HashMap, VecDeque};
use std::sync::Arc;
use std::time::Duration;

use async_trait::async_trait;
use tokio::sync::{mpsc, oneshot};
use tokio::time::{Instant, MissedTickBehavior};

use super::emitter::{EmitGate, EventReceiver};
use super::types::{
    ConnectionParameters, ErrorDetails, EventDetail, MetricKind, OperationType, StatementAggregate,
    TelemetryConfiguration, TelemetryEvent, TelemetryMetric,
};

/// Statements the aggregator follows at once at most: beyond, the one heard of least recently
/// is forgotten, so that statements whose completion never arrives (dropped from a full queue)
/// cannot grow the map for `statement_ttl`.
const MAX_OPEN_STATEMENTS: usize = 10_000;

/// Where flushed metrics go (the exporter; a recorder in tests). Must not fail.
#[async_trait]
pub(crate) trait MetricsSink: Send + Sync + 'static {
    /// Send `metrics` on; problems are handled (and logged) inside.
    async fn export(&self, metrics: Vec<TelemetryMetric>);
}

/// Whether telemetry is on for the host now (the feature flag; a fixed answer in tests).
#[async_trait]
pub(crate) trait EnabledCheck: Send + Sync + 'static {
    /// Never fails: a problem means `false`.
    async fn telemetry_enabled(&self) -> bool;
}

#[derive(Debug)]
struct StatementState {
    session_id: Option<String>,
    connection: Option<Arc<ConnectionParameters>>,
    /// Whether the start event was seen (else latency is unknown).
    started: bool,
    metrics: StatementAggregate,
    errors: Vec<(i64, ErrorDetails)>,
    errors_dropped: u64,
    last_seen: Instant,
}

/// Aggregates one host's events into metrics.
#[derive(Debug)]
pub(crate) struct MetricsAggregator {
    batch_size: usize,
    flush_interval: Duration,
    max_pending: usize,
    max_errors: usize,
    statement_ttl: Duration,
    close_timeout: Duration,
    statements: HashMap<String, StatementState>,
    pending: VecDeque<TelemetryMetric>,
    dropped_metrics: u64,
}

impl MetricsAggregator {
    /// An empty aggregator with the limits of `config`.
    pub(crate) fn new(config: &TelemetryConfiguration) -> Self {
        MetricsAggregator {
            batch_size: config.batch_size.max(1),
            flush_interval: config.flush_interval.max(Duration::from_millis(1)),
            max_pending: config.max_pending_metrics.max(1),
            max_errors: config.max_errors_per_statement,
            statement_ttl: config.statement_ttl,
            close_timeout: config.close_timeout,
            statements: HashMap::new(),
            pending: VecDeque::new(),
            dropped_metrics: 0,
        }
    }

    #[cfg(test)]
    /// Metrics waiting for export.
    pub(crate) fn pending_len(&self) -> usize {
        self.pending.len()
    }

    #[cfg(test)]
    /// Statements started and not yet completed.
    pub(crate) fn open_statements(&self) -> usize {
        self.statements.len()
    }

    #[cfg(test)]
    /// Metrics dropped because too many were pending.
    pub(crate) fn dropped_metrics(&self) -> u64 {
        self.dropped_metrics
    }

    /// Take in one event. Returns whether to flush now (batch full or a terminal error).
    pub(crate) fn process(&mut self, event: TelemetryEvent) -> bool {
        let TelemetryEvent {
            at,
            timestamp_millis,
            session_id,
            statement_id,
            connection,
            detail,
        } = event;
        match detail {
            EventDetail::ConnectionOpen { latency } | EventDetail::ConnectionClose { latency } => {
                let operation_type = if matches!(detail, EventDetail::ConnectionOpen { .. }) {
                    OperationType::CreateSession
                } else {
                    OperationType::DeleteSession
                };
                self.push(TelemetryMetric {
                    kind: MetricKind::Connection,
                    timestamp_millis,
                    session_id,
                    statement_id: None,
                    connection,
                    operation_type,
                    latency: Some(latency),
                    statement: None,
                    error: None,
                });
                self.batch_full()
            }
            EventDetail::StatementStart { operation_type } => {
                let Some(id) = statement_id else { return false };
                let state = self.state(id, at, session_id, connection);
                state.started = true;
                state.metrics.operation_type = operation_type;
                state.metrics.started_at = at;
                false
            }
            EventDetail::CloudFetchChunk(chunk) => {
                let Some(id) = statement_id else { return false };
                let m = &mut self.state(id, at, session_id, connection).metrics;
                m.chunks_iterated += 1;
                if m.initial_chunk_latency.is_none() || chunk.chunk_index == 0 {
                    m.initial_chunk_latency = Some(chunk.latency);
                }
                m.slowest_chunk_latency = m.slowest_chunk_latency.max(Some(chunk.latency));
                m.sum_chunk_latency += chunk.latency;
                m.bytes_downloaded += chunk.bytes;
                m.compressed = Some(m.compressed.unwrap_or(false) || chunk.compressed);
                false
            }
            EventDetail::StatementComplete(done) => {
                let Some(id) = statement_id else { return false };
                let state = self.state(id.clone(), at, session_id, connection);
                let m = &mut state.metrics;
                m.result_format = done.result_format.or(m.result_format);
                m.compressed = done.compressed.or(m.compressed);
                m.poll_count += done.poll_count;
                m.poll_latency += done.poll_latency;
                m.chunks_present = done.chunks_present.or(m.chunks_present);
                m.result_ready_latency = done.result_ready_latency.or(m.result_ready_latency);
                m.result_consumption_latency = done
                    .result_consumption_latency
                    .or(m.result_consumption_latency);
                m.retry_count += done.retry_count;
                self.complete(&id, at, timestamp_millis, None);
                self.batch_full()
            }
            EventDetail::Error(error) => match statement_id {
                Some(id) if !error.terminal => {
                    let max_errors = self.max_errors;
                    let state = self.state(id, at, session_id, connection);
                    if state.errors.len() < max_errors {
                        state.errors.push((timestamp_millis, error));
                    } else {
                        state.errors_dropped += 1;
                    }
                    false
                }
                Some(id) => {
                    self.state(id.clone(), at, session_id, connection);
                    self.complete(&id, at, timestamp_millis, Some(error));
                    true
                }
                None => {
                    let terminal = error.terminal;
                    self.push(TelemetryMetric {
                        kind: MetricKind::Error,
                        timestamp_millis,
                        session_id,
                        statement_id: None,
                        connection,
                        operation_type: OperationType::Unspecified,
                        latency: None,
                        statement: None,
                        error: Some(error),
                    });
                    terminal || self.batch_full()
                }
            },
        }
    }

    fn batch_full(&self) -> bool {
        self.pending.len() >= self.batch_size
    }

    fn state(
        &mut self,
        id: String,
        at: Instant,
        session_id: Option<String>,
        connection: Option<Arc<ConnectionParameters>>,
    ) -> &mut StatementState {
        if self.statements.len() >= MAX_OPEN_STATEMENTS && !self.statements.contains_key(&id) {
            self.forget_least_recent();
        }
        let state = self.statements.entry(id).or_insert_with(|| StatementState {
            session_id: None,
            connection: None,
            started: false,
            metrics: StatementAggregate::new(OperationType::Unspecified, at),
            errors: Vec::new(),
            errors_dropped: 0,
            last_seen: at,
        });
        state.last_seen = at;
        if state.session_id.is_none() {
            state.session_id = session_id;
        }
        if state.connection.is_none() {
            state.connection = connection;
        }
        state
    }

    /// Forget the statement heard of least recently (its completion was lost, most likely).
    fn forget_least_recent(&mut self) {
        let oldest = self
            .statements
            .iter()
            .min_by_key(|(_, s)| s.last_seen)
            .map(|(id, _)| id.clone());
        if let Some(id) = oldest {
            self.statements.remove(&id);
            tracing::debug!("telemetry: too many open statements, the least recent forgotten");
        }
    }

    /// Finish statement `id`: its metric (carrying `terminal` when a terminal error ended it)
    /// and one error metric per error it collected.
    fn complete(
        &mut self,
        id: &str,
        at: Instant,
        timestamp_millis: i64,
        terminal: Option<ErrorDetails>,
    ) {
        let Some(mut state) = self.statements.remove(id) else {
            return;
        };
        if state.started {
            state.metrics.latency = Some(at.saturating_duration_since(state.metrics.started_at));
        }
        if state.errors_dropped > 0 {
            tracing::debug!(
                statement_id = id,
                dropped = state.errors_dropped,
                "telemetry: errors beyond the per-statement limit were dropped"
            );
        }
        let operation_type = state.metrics.operation_type;
        for (ts, error) in state.errors.drain(..) {
            self.push(TelemetryMetric {
                kind: MetricKind::Error,
                timestamp_millis: ts,
                session_id: state.session_id.clone(),
                statement_id: Some(id.to_string()),
                connection: state.connection.clone(),
                operation_type,
                latency: None,
                statement: None,
                error: Some(error),
            });
        }
        self.push(TelemetryMetric {
            kind: MetricKind::Statement,
            timestamp_millis,
            session_id: state.session_id,
            statement_id: Some(id.to_string()),
            connection: state.connection,
            operation_type,
            latency: state.metrics.latency,
            statement: Some(state.metrics),
            error: terminal,
        });
    }

    fn push(&mut self, metric: TelemetryMetric) {
        self.pending.push_back(metric);
        while self.pending.len() > self.max_pending {
            let victim = self
                .pending
                .iter()
                .position(|m| m.error.is_none())
                .unwrap_or(0);
            self.pending.remove(victim);
            self.dropped_metrics += 1;
            if self.dropped_metrics.is_power_of_two() {
                tracing::debug!(
                    dropped = self.dropped_metrics,
                    "telemetry: too many pending metrics, oldest dropped"
                );
            }
        }
    }

    /// Forget statements with no event for `statement_ttl`. Returns how many went.
    pub(crate) fn evict_stale(&mut self, now: Instant) -> usize {
        let ttl = self.statement_ttl;
        let before = self.statements.len();
        self.statements
            .retain(|_, s| now.saturating_duration_since(s.last_seen) < ttl);
        let evicted = before - self.statements.len();
        if evicted > 0 {
            tracing::debug!(evicted, "telemetry: abandoned statements evicted");
        }
        evicted
    }

    /// Up to `max` of the oldest pending metrics.
    pub(crate) fn take_batch(&mut self, max: usize) -> Vec<TelemetryMetric> {
        let n = max.min(self.pending.len());
        self.pending.drain(..n).collect()
    }

    /// Forget everything (telemetry is off).
    pub(crate) fn clear(&mut self) {
        self.statements.clear();
        self.pending.clear();
    }

    async fn flush(&mut self, sink: &dyn MetricsSink) {
        while !self.pending.is_empty() {
            let batch = self.take_batch(self.batch_size);
            sink.export(batch).await;
        }
    }

    /// Take in the events waiting in `events` (at most a queue's worth, so that a steady stream
    /// cannot keep the task here), flushing to `sink` whenever a batch fills or a terminal error
    /// arrives.
    async fn take_in(&mut self, events: &mut EventReceiver, sink: &dyn MetricsSink) {
        for _ in 0..events.capacity() {
            let Ok(event) = events.try_recv() else { break };
            if self.process(event) {
                self.flush(sink).await;
            }
        }
    }

    /// The loop of a host's telemetry task: learn the feature flag (events wait in the queue
    /// meanwhile), then aggregate events, taking them in every `flush_interval` (when pending
    /// metrics are flushed to `sink`, the flag is re-checked and stale statements evicted) and
    /// whenever the queue wakes the task (a terminal error, or a batch's worth of events
    /// waiting); a full batch and a terminal error are flushed at once. Ends on `shutdown` (or
    /// when its sender is gone), even in the middle of an export: closes `gate`, takes what is
    /// left in the queue and flushes it. From the shutdown on, everything (an export or a flag
    /// lookup under way included) is bounded by `close_timeout`.
    pub(crate) async fn run(
        mut self,
        mut events: EventReceiver,
        mut shutdown: oneshot::Receiver<()>,
        sink: Arc<dyn MetricsSink>,
        flag: Arc<dyn EnabledCheck>,
        gate: Arc<EmitGate>,
    ) {
        let first_lookup = flag.telemetry_enabled();
        tokio::pin!(first_lookup);
        let (mut enabled, mut deadline) = tokio::select! {
            biased;
            enabled = &mut first_lookup => (enabled, None),
            _ = &mut shutdown => {
                let deadline = crate::time::from_now(self.close_timeout);
                let enabled = tokio::time::timeout_at(deadline, &mut first_lookup)
                    .await
                    .unwrap_or(false);
                (enabled, Some(deadline))
            }
        };
        gate.set_enabled(enabled);
        if deadline.is_none() {
            if !enabled {
                events_drain(&mut events);
            }
            let (now_enabled, stopped_at) = self
                .serve(
                    &mut events,
                    &mut shutdown,
                    sink.as_ref(),
                    flag.as_ref(),
                    &gate,
                    enabled,
                )
                .await;
            enabled = now_enabled;
            deadline =
                Some(stopped_at.unwrap_or_else(|| crate::time::from_now(self.close_timeout)));
        }
        gate.close();
        events.close();
        if !enabled {
            return;
        }
        while let Ok(event) = events.try_recv() {
            self.process(event);
        }
        let deadline = deadline.unwrap_or_else(|| crate::time::from_now(self.close_timeout));
        if tokio::time::timeout_at(deadline, self.flush(sink.as_ref()))
            .await
            .is_err()
        {
            tracing::debug!(
                left = self.pending.len(),
                "telemetry: the last flush did not finish within the close timeout"
            );
        }
    }

    /// The steady state of [`run`](Self::run), until shutdown. Returns whether telemetry is on,
    /// and when shutdown came in the middle of some work, the deadline (`close_timeout` from
    /// then) that bounded finishing it and bounds the rest of the closing.
    async fn serve(
        &mut self,
        events: &mut EventReceiver,
        shutdown: &mut oneshot::Receiver<()>,
        sink: &dyn MetricsSink,
        flag: &dyn EnabledCheck,
        gate: &EmitGate,
        mut enabled: bool,
    ) -> (bool, Option<Instant>) {
        let mut ticker = tokio::time::interval_at(
            crate::time::from_now(self.flush_interval),
            self.flush_interval,
        );
        ticker.set_missed_tick_behavior(MissedTickBehavior::Delay);
        let wake = events.wake();
        let close_timeout = self.close_timeout;
        loop {
            let tick = tokio::select! {
                biased;
                _ = &mut *shutdown => return (enabled, None),
                _ = ticker.tick() => true,
                _ = wake.notified() => false,
            };
            let (senders_gone, stopped_at) = {
                let work = self.step(tick, events, sink, flag, gate, &mut enabled);
                tokio::pin!(work);
                tokio::select! {
                    biased;
                    _ = &mut *shutdown => {
                        let deadline = crate::time::from_now(close_timeout);
                        let gone = tokio::time::timeout_at(deadline, &mut work)
                            .await
                            .unwrap_or(false);
                        (gone, Some(deadline))
                    }
                    gone = &mut work => (gone, None),
                }
            };
            if senders_gone || stopped_at.is_some() {
                return (enabled, stopped_at);
            }
        }
    }

    /// One round of [`serve`](Self::serve): on a `tick`, follow the feature flag; take in the
    /// waiting events; on a tick, evict stale statements and flush. Returns whether every
    /// sender is gone.
    async fn step(
        &mut self,
        tick: bool,
        events: &mut EventReceiver,
        sink: &dyn MetricsSink,
        flag: &dyn EnabledCheck,
        gate: &EmitGate,
        enabled: &mut bool,
    ) -> bool {
        if tick {
            let now_enabled = flag.telemetry_enabled().await;
            if now_enabled != *enabled {
                tracing::debug!(enabled = now_enabled, "telemetry: feature flag changed");
                *enabled = now_enabled;
                gate.set_enabled(now_enabled);
            }
        }
        if !*enabled {
            self.clear();
            return events_drain(events);
        }
        self.take_in(events, sink).await;
        if tick {
            self.evict_stale(Instant::now());
            self.flush(sink).await;
        }
        false
    }
}

/// Drop every waiting event; true when every sender is gone.
fn events_drain(events: &mut EventReceiver) -> bool {
    loop {
        match events.try_recv() {
            Ok(_) => {}
            Err(mpsc::error::TryRecvError::Empty) => return false,
            Err(mpsc::error::TryRecvError::Disconnected) => return true,
        }
    }
}

#[cfg(test)]
mod tests {
    use std::sync::atomic::{AtomicBool, Ordering};
    use std::sync::Mutex;

    use super::*;
    use crate::telemetry::emitter::{event_queue, EventSender};
    use crate::telemetry::types::{ChunkDownload, ResultFormat, StatementCompletion};

    fn config() -> TelemetryConfiguration {
        TelemetryConfiguration::default()
    }

    fn event(
        session: Option<&str>,
        statement: Option<&str>,
        detail: EventDetail,
    ) -> TelemetryEvent {
        let mut e = TelemetryEvent::now(detail);
        e.session_id = session.map(str::to_string);
        e.statement_id = statement.map(str::to_string);
        e
    }

    fn start(stmt: &str) -> TelemetryEvent {
        event(
            Some("s1"),
            Some(stmt),
            EventDetail::StatementStart {
                operation_type: OperationType::ExecuteStatement,
            },
        )
    }

    fn chunk(stmt: &str, index: u64, ms: u64) -> TelemetryEvent {
        event(
            None,
            Some(stmt),
            EventDetail::CloudFetchChunk(ChunkDownload {
                chunk_index: index,
                latency: Duration::from_millis(ms),
                bytes: 100,
                compressed: true,
            }),
        )
    }

    fn complete(stmt: &str) -> TelemetryEvent {
        event(
            Some("s1"),
            Some(stmt),
            EventDetail::StatementComplete(StatementCompletion {
                result_format: Some(ResultFormat::ExternalLinks),
                poll_count: 2,
                chunks_present: Some(2),
                ..Default::default()
            }),
        )
    }

    fn error(stmt: Option<&str>, terminal: bool) -> TelemetryEvent {
        event(
            Some("s1"),
            stmt,
            EventDetail::Error(ErrorDetails {
                name: if terminal { "Auth" } else { "Connect" }.into(),
                message: "m".into(),
                http_status: None,
                terminal,
                retryable: !terminal,
            }),
        )
    }

    fn connection_open() -> TelemetryEvent {
        event(
            Some("s1"),
            None,
            EventDetail::ConnectionOpen {
                latency: Duration::from_millis(50),
            },
        )
    }

    #[tokio::test(start_paused = true)]
    async fn aggregates_events_by_statement_id() {
        let mut a = MetricsAggregator::new(&config());
        a.process(start("q1"));
        a.process(start("q2"));
        tokio::time::advance(Duration::from_millis(100)).await;
        a.process(chunk("q1", 0, 30));
        a.process(chunk("q2", 0, 5));
        a.process(chunk("q1", 1, 70));
        tokio::time::advance(Duration::from_millis(100)).await;
        a.process(complete("q1"));
        let m = a.take_batch(10).remove(0);
        assert_eq!(m.kind, MetricKind::Statement);
        assert_eq!(m.statement_id.as_deref(), Some("q1"));
        assert_eq!(m.latency, Some(Duration::from_millis(200)));
        let s = m.statement.expect("statement details");
        assert_eq!(s.operation_type, OperationType::ExecuteStatement);
        assert_eq!(s.result_format, Some(ResultFormat::ExternalLinks));
        assert_eq!(s.chunks_iterated, 2);
        assert_eq!(s.chunks_present, Some(2));
        assert_eq!(s.initial_chunk_latency, Some(Duration::from_millis(30)));
        assert_eq!(s.slowest_chunk_latency, Some(Duration::from_millis(70)));
        assert_eq!(s.sum_chunk_latency, Duration::from_millis(100));
        assert_eq!(s.bytes_downloaded, 200);
        assert_eq!(s.poll_count, 2);
        assert_eq!(s.compressed, Some(true));
        assert_eq!(a.open_statements(), 1, "q2 still open");
    }

    #[tokio::test(start_paused = true)]
    async fn follows_at_most_a_bounded_number_of_open_statements() {
        let mut a = MetricsAggregator::new(&config());
        for i in 0..MAX_OPEN_STATEMENTS + 5 {
            a.process(start(&format!("q{i}")));
            tokio::time::advance(Duration::from_millis(1)).await;
        }
        assert_eq!(a.open_statements(), MAX_OPEN_STATEMENTS);
        a.process(complete("q0"));
        let m = a.take_batch(10).remove(0);
        assert!(
            m.latency.is_none(),
            "the oldest statement was forgotten: its completion starts afresh"
        );
        a.process(complete(&format!("q{}", MAX_OPEN_STATEMENTS + 4)));
        let m = a.take_batch(10).remove(0);
        assert!(m.latency.is_some(), "a recent statement is still followed");
    }

    #[tokio::test(start_paused = true)]
    async fn passes_connection_events_straight_through() {
        let mut a = MetricsAggregator::new(&config());
        a.process(connection_open());
        a.process(event(
            Some("s1"),
            None,
            EventDetail::ConnectionClose {
                latency: Duration::from_millis(5),
            },
        ));
        let ms = a.take_batch(10);
        assert_eq!(ms.len(), 2);
        assert_eq!(ms[0].kind, MetricKind::Connection);
        assert_eq!(ms[0].operation_type, OperationType::CreateSession);
        assert_eq!(ms[0].latency, Some(Duration::from_millis(50)));
        assert_eq!(ms[1].operation_type, OperationType::DeleteSession);
    }

    #[tokio::test(start_paused = true)]
    async fn buffers_statement_events_until_complete() {
        let mut a = MetricsAggregator::new(&config());
        assert!(!a.process(start("q1")));
        assert!(!a.process(chunk("q1", 0, 10)));
        assert_eq!(a.pending_len(), 0);
        assert!(!a.process(complete("q1")));
        assert_eq!(a.pending_len(), 1);
    }

    #[tokio::test(start_paused = true)]
    async fn flushes_terminal_errors_at_once() {
        let mut a = MetricsAggregator::new(&config());
        a.process(start("q1"));
        a.process(error(Some("q1"), false));
        assert!(
            a.process(error(Some("q1"), true)),
            "terminal error asks for a flush"
        );
        let ms = a.take_batch(10);
        assert_eq!(
            a.open_statements(),
            0,
            "the terminal error completed the statement"
        );
        assert_eq!(ms.len(), 2);
        assert_eq!(ms[0].kind, MetricKind::Error);
        assert_eq!(ms[1].kind, MetricKind::Statement);
        assert_eq!(ms[1].error.as_ref().map(|e| e.name.as_str()), Some("Auth"));
        assert!(
            a.process(error(None, true)),
            "a terminal error outside a statement too"
        );
    }

    #[tokio::test(start_paused = true)]
    async fn buffers_retryable_errors_until_the_statement_completes() {
        let mut a = MetricsAggregator::new(&config());
        a.process(start("q1"));
        assert!(!a.process(error(Some("q1"), false)));
        assert_eq!(a.pending_len(), 0);
        a.process(complete("q1"));
        let ms = a.take_batch(10);
        assert_eq!(ms.len(), 2);
        assert_eq!(ms[0].kind, MetricKind::Error);
        assert_eq!(ms[0].statement_id.as_deref(), Some("q1"));
        assert_eq!(ms[0].operation_type, OperationType::ExecuteStatement);
        assert!(ms[1].error.is_none(), "the statement itself ended well");
        assert!(
            !a.process(error(None, false)),
            "a retryable error outside a statement waits"
        );
        assert_eq!(a.pending_len(), 1);
    }

    #[tokio::test(start_paused = true)]
    async fn includes_session_and_statement_ids() {
        let mut a = MetricsAggregator::new(&config());
        a.process(start("q1"));
        a.process(chunk("q1", 0, 1));
        a.process(complete("q1"));
        let m = a.take_batch(1).remove(0);
        assert_eq!(m.session_id.as_deref(), Some("s1"));
        assert_eq!(m.statement_id.as_deref(), Some("q1"));
    }

    #[tokio::test(start_paused = true)]
    async fn asks_for_a_flush_at_batch_size() {
        let mut a = MetricsAggregator::new(&TelemetryConfiguration {
            batch_size: 3,
            ..config()
        });
        assert!(!a.process(connection_open()));
        assert!(!a.process(connection_open()));
        assert!(a.process(connection_open()));
    }

    #[tokio::test(start_paused = true)]
    async fn keeps_at_most_max_errors_per_statement() {
        let mut a = MetricsAggregator::new(&TelemetryConfiguration {
            max_errors_per_statement: 3,
            ..config()
        });
        a.process(start("q1"));
        for _ in 0..10 {
            a.process(error(Some("q1"), false));
        }
        a.process(complete("q1"));
        assert_eq!(a.pending_len(), 4, "3 errors and the statement");
    }

    #[tokio::test(start_paused = true)]
    async fn evicts_statements_idle_for_the_ttl() {
        let mut a = MetricsAggregator::new(&config());
        a.process(start("old"));
        tokio::time::advance(Duration::from_secs(1800)).await;
        a.process(start("young"));
        tokio::time::advance(Duration::from_secs(1800)).await;
        assert_eq!(a.evict_stale(Instant::now()), 1);
        assert_eq!(a.open_statements(), 1);
    }

    #[tokio::test(start_paused = true)]
    async fn caps_pending_metrics_dropping_the_oldest_non_error_first() {
        let mut a = MetricsAggregator::new(&TelemetryConfiguration {
            max_pending_metrics: 3,
            batch_size: 100,
            ..config()
        });
        a.process(error(None, false));
        for _ in 0..4 {
            a.process(connection_open());
        }
        assert_eq!(a.pending_len(), 3);
        assert_eq!(a.dropped_metrics(), 2);
        let ms = a.take_batch(10);
        assert_eq!(ms[0].kind, MetricKind::Error, "the error survived");
    }

    #[tokio::test(start_paused = true)]
    async fn a_completion_without_a_start_has_no_latency_and_missing_ids_are_ignored() {
        let mut a = MetricsAggregator::new(&config());
        a.process(complete("q1"));
        let m = a.take_batch(1).remove(0);
        assert_eq!(m.latency, None);
        assert_eq!(m.operation_type, OperationType::Unspecified);
        let anonymous = [
            event(
                None,
                None,
                EventDetail::StatementStart {
                    operation_type: OperationType::ListTables,
                },
            ),
            event(
                None,
                None,
                EventDetail::CloudFetchChunk(ChunkDownload::default()),
            ),
            event(
                None,
                None,
                EventDetail::StatementComplete(StatementCompletion::default()),
            ),
        ];
        for e in anonymous {
            assert!(!a.process(e));
        }
        assert_eq!((a.pending_len(), a.open_statements()), (0, 0));
    }

    // ---- the task loop ----

    #[derive(Default)]
    struct RecordingSink(Mutex<Vec<(Instant, Vec<TelemetryMetric>)>>);

    impl RecordingSink {
        fn batches(&self) -> Vec<(Instant, Vec<TelemetryMetric>)> {
            self.0.lock().map(|b| b.clone()).unwrap_or_default()
        }
    }

    #[async_trait]
    impl MetricsSink for RecordingSink {
        async fn export(&self, metrics: Vec<TelemetryMetric>) {
            if let Ok(mut b) = self.0.lock() {
                b.push((Instant::now(), metrics));
            }
        }
    }

    struct Flag(AtomicBool);

    #[async_trait]
    impl EnabledCheck for Flag {
        async fn telemetry_enabled(&self) -> bool {
            self.0.load(Ordering::Relaxed)
        }
    }

    struct Running {
        tx: EventSender,
        stop: Option<oneshot::Sender<()>>,
        sink: Arc<RecordingSink>,
        flag: Arc<Flag>,
        gate: Arc<EmitGate>,
        task: tokio::task::JoinHandle<()>,
    }

    fn run(config: TelemetryConfiguration, enabled: bool) -> Running {
        let (tx, rx) = event_queue(100, config.batch_size);
        let (stop, stop_rx) = oneshot::channel();
        let sink = Arc::new(RecordingSink::default());
        let flag = Arc::new(Flag(AtomicBool::new(enabled)));
        let gate = Arc::new(EmitGate::pending());
        let task = tokio::spawn(MetricsAggregator::new(&config).run(
            rx,
            stop_rx,
            sink.clone(),
            flag.clone(),
            gate.clone(),
        ));
        Running {
            tx,
            stop: Some(stop),
            sink,
            flag,
            gate,
            task,
        }
    }

    async fn settle() {
        for _ in 0..10 {
            tokio::task::yield_now().await;
        }
    }

    #[tokio::test(start_paused = true)]
    async fn flushes_on_the_timer() {
        let t0 = Instant::now();
        let r = run(config(), true);
        let _ = r.tx.try_send(connection_open());
        settle().await;
        tokio::time::advance(Duration::from_millis(4900)).await;
        settle().await;
        assert!(r.sink.batches().is_empty(), "nothing before the interval");
        tokio::time::advance(Duration::from_millis(100)).await;
        settle().await;
        let batches = r.sink.batches();
        assert_eq!(batches.len(), 1);
        assert_eq!(batches[0].0 - t0, Duration::from_secs(5));
        assert!(r.gate.accepts());
    }

    #[tokio::test(start_paused = true)]
    async fn flushes_when_the_batch_is_full() {
        let r = run(
            TelemetryConfiguration {
                batch_size: 2,
                ..config()
            },
            true,
        );
        let _ = r.tx.try_send(connection_open());
        let _ = r.tx.try_send(connection_open());
        let _ = r.tx.try_send(connection_open());
        settle().await;
        let batches = r.sink.batches();
        assert_eq!(batches.len(), 1, "one full batch, at once");
        assert_eq!(batches[0].1.len(), 2);
    }

    #[tokio::test(start_paused = true)]
    async fn flushes_a_terminal_error_at_once() {
        let r = run(config(), true);
        let _ = r.tx.try_send(start("q1"));
        let _ = r.tx.try_send(error(Some("q1"), true));
        settle().await;
        assert_eq!(r.sink.batches().len(), 1);
    }

    #[tokio::test(start_paused = true)]
    async fn drops_everything_and_shuts_the_gate_while_the_flag_is_off() {
        let r = run(config(), false);
        let _ = r.tx.try_send(connection_open());
        settle().await;
        assert!(!r.gate.accepts());
        tokio::time::advance(Duration::from_secs(5)).await;
        settle().await;
        assert!(r.sink.batches().is_empty());
        r.flag.0.store(true, Ordering::Relaxed);
        tokio::time::advance(Duration::from_secs(5)).await;
        settle().await;
        assert!(r.gate.accepts(), "the flag came on at the next tick");
        let _ = r.tx.try_send(connection_open());
        tokio::time::advance(Duration::from_secs(5)).await;
        settle().await;
        assert_eq!(r.sink.batches().len(), 1);
    }

    #[tokio::test(start_paused = true)]
    async fn shutdown_flushes_what_is_left_and_closes_the_gate() {
        let mut r = run(config(), true);
        settle().await;
        let _ = r.tx.try_send(connection_open());
        let _ = r.tx.try_send(connection_open());
        if let Some(stop) = r.stop.take() {
            let _ = stop.send(());
        }
        let _ = (&mut r.task).await;
        assert!(r.gate.is_closed());
        let batches = r.sink.batches();
        assert_eq!(batches.iter().map(|b| b.1.len()).sum::<usize>(), 2);
    }

    #[tokio::test(start_paused = true)]
    async fn stops_when_its_owner_is_gone() {
        let mut r = run(config(), true);
        drop(r.stop.take());
        let _ = (&mut r.task).await;
        assert!(r.gate.is_closed());
    }

    #[tokio::test(start_paused = true)]
    async fn the_last_flush_is_bounded_by_the_close_timeout() {
        struct Stuck;
        #[async_trait]
        impl MetricsSink for Stuck {
            async fn export(&self, _: Vec<TelemetryMetric>) {
                std::future::pending::<()>().await;
            }
        }
        let (tx, rx) = event_queue(10, 10);
        let (stop, stop_rx) = oneshot::channel();
        let gate = Arc::new(EmitGate::pending());
        let t0 = Instant::now();
        let task = tokio::spawn(MetricsAggregator::new(&config()).run(
            rx,
            stop_rx,
            Arc::new(Stuck),
            Arc::new(Flag(AtomicBool::new(true))),
            gate,
        ));
        settle().await;
        let _ = tx.try_send(connection_open());
        let _ = stop.send(());
        let _ = task.await;
        assert_eq!(Instant::now() - t0, Duration::from_secs(2));
    }

    #[tokio::test(start_paused = true)]
    async fn shutdown_during_a_stuck_export_ends_the_task_within_the_close_timeout() {
        struct Stuck;
        #[async_trait]
        impl MetricsSink for Stuck {
            async fn export(&self, _: Vec<TelemetryMetric>) {
                std::future::pending::<()>().await;
            }
        }
        let config = TelemetryConfiguration {
            batch_size: 1,
            ..config()
        };
        let (tx, rx) = event_queue(10, 1);
        let (stop, stop_rx) = oneshot::channel();
        let task = tokio::spawn(MetricsAggregator::new(&config).run(
            rx,
            stop_rx,
            Arc::new(Stuck),
            Arc::new(Flag(AtomicBool::new(true))),
            Arc::new(EmitGate::pending()),
        ));
        settle().await;
        let _ = tx.try_send(connection_open());
        settle().await;
        tokio::time::advance(Duration::from_secs(30)).await;
        assert!(!task.is_finished(), "the export is stuck, the task waits");
        let t0 = Instant::now();
        let _ = stop.send(());
        let _ = task.await;
        assert_eq!(Instant::now() - t0, Duration::from_secs(2));
    }

    #[tokio::test(start_paused = true)]
    async fn shutdown_while_the_flag_is_being_fetched_waits_at_most_the_close_timeout() {
        struct Slow;
        #[async_trait]
        impl EnabledCheck for Slow {
            async fn telemetry_enabled(&self) -> bool {
                std::future::pending::<bool>().await
            }
        }
        let (_tx, rx) = event_queue(10, 10);
        let (stop, stop_rx) = oneshot::channel();
        let gate = Arc::new(EmitGate::pending());
        let task = tokio::spawn(MetricsAggregator::new(&config()).run(
            rx,
            stop_rx,
            Arc::new(RecordingSink::default()),
            Arc::new(Slow),
            gate.clone(),
        ));
        settle().await;
        let t0 = Instant::now();
        let _ = stop.send(());
        let _ = task.await;
        assert_eq!(Instant::now() - t0, Duration::from_secs(2));
        assert!(gate.is_closed());
    }

    #[tokio::test(start_paused = true)]
    async fn events_emitted_just_before_shutdown_are_flushed_once_the_flag_is_known() {
        struct SlowYes;
        #[async_trait]
        impl EnabledCheck for SlowYes {
            async fn telemetry_enabled(&self) -> bool {
                tokio::time::sleep(Duration::from_millis(500)).await;
                true
            }
        }
        let (tx, rx) = event_queue(10, 10);
        let (stop, stop_rx) = oneshot::channel();
        let sink = Arc::new(RecordingSink::default());
        let task = tokio::spawn(MetricsAggregator::new(&config()).run(
            rx,
            stop_rx,
            sink.clone(),
            Arc::new(SlowYes),
            Arc::new(EmitGate::pending()),
        ));
        let _ = tx.try_send(connection_open());
        let _ = stop.send(());
        let _ = task.await;
        assert_eq!(sink.batches().len(), 1);
    }
}
