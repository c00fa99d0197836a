//! The mock warehouse's state: its fixed configuration, the sessions and operations it holds,
//! the lifecycle of an operation (PENDING, RUNNING, FINISHED...), and what it has recorded
//! (call counts, requests, statements) for tests to inspect.

use std::collections::{BTreeMap, HashMap, VecDeque};
use std::sync::{Arc, Mutex, MutexGuard};
use std::time::Duration;

use tokio::time::Instant;

use super::cloudfetch::{CloudFetchSettings, LinkSigner, ResultFiles};
use super::fault::FaultQueue;
use super::oauth::OAuthState;
use super::source::RowSource;
use super::staging::StagingState;
use super::telemetry::TelemetryState;
use super::{RecordedRequest, SessionInfo, StatementInfo};

/// A session or operation id: the 16 bytes of `THandleIdentifier.guid`.
pub(crate) type Id = [u8; 16];

/// At most this many entries are kept in each history (requests, statements, telemetry), the
/// oldest dropped first, so a long-running mock does not grow without bound.
pub(crate) const HISTORY_LIMIT: usize = 10_000;

pub(crate) fn push_bounded<T>(q: &mut VecDeque<T>, item: T) {
    if q.len() >= HISTORY_LIMIT {
        q.pop_front();
    }
    q.push_back(item);
}

/// Settings fixed when the mock starts.
#[derive(Debug, Clone)]
pub(crate) struct Config {
    /// The host name the mock goes by (`127.0.0.1` unless set).
    pub(crate) host: String,
    pub(crate) token: String,
    pub(crate) http_path: String,
    pub(crate) server_protocol_version: i32,
    pub(crate) direct_results: bool,
    /// DML answers with a `num_affected_rows` result set instead of `numModifiedRows`.
    pub(crate) dml_result_set: bool,
    pub(crate) arrow_batch_rows: usize,
    /// `http://127.0.0.1:<port>` (`https://` and the host name when set): CloudFetch links
    /// point here.
    pub(crate) base_url: String,
    pub(crate) cloudfetch: CloudFetchSettings,
    /// Signs CloudFetch links and holds the header value file GETs must carry.
    pub(crate) signer: LinkSigner,
    /// Plain HiveServer2's HTTP authentication, when the mock plays one.
    pub(crate) hive_auth: Option<HiveAuth>,
}

/// HiveServer2's HTTP authentication: `Authorization: Basic` with these credentials, then the
/// `hive.server2.auth` cookie the reply sets.
#[derive(Debug, Clone)]
pub(crate) struct HiveAuth {
    pub(crate) user: String,
    pub(crate) password: String,
}

/// Settings tests may change while the mock runs.
#[derive(Debug, Clone)]
pub(crate) struct Knobs {
    /// GetOperationStatus polls answered PENDING/RUNNING before FINISHED (async statements).
    pub(crate) running_polls: u32,
    /// How long every statement runs before it is FINISHED.
    pub(crate) statement_delay: Duration,
}

/// Everything the server tasks and the [`MockWarehouse`](super::MockWarehouse) handle share.
#[derive(Debug)]
pub(crate) struct Shared {
    pub(crate) config: Config,
    state: Mutex<State>,
}

impl Shared {
    pub(crate) fn new(config: Config, state: State) -> Arc<Self> {
        Arc::new(Shared {
            config,
            state: Mutex::new(state),
        })
    }

    /// Lock the state. Critical sections are short and never await; a panic while holding the
    /// lock (a bug) does not make the mock unusable for the rest of a test run.
    pub(crate) fn lock(&self) -> MutexGuard<'_, State> {
        self.state.lock().unwrap_or_else(|e| e.into_inner())
    }
}

/// The mutable state, behind [`Shared::lock`].
#[derive(Debug)]
pub(crate) struct State {
    pub(crate) knobs: Knobs,
    pub(crate) sessions: HashMap<Id, Session>,
    pub(crate) operations: HashMap<Id, Operation>,
    /// Results registered by tests, by [`normalize`](super::sql::normalize)d SQL text.
    pub(crate) registered: HashMap<String, Registered>,
    pub(crate) counts: BTreeMap<String, usize>,
    /// Requests by name that reached their handler (not answered by a fault or refused first).
    pub(crate) handled: BTreeMap<String, usize>,
    pub(crate) faults: FaultQueue,
    pub(crate) requests: VecDeque<RecordedRequest>,
    pub(crate) statements: VecDeque<StatementInfo>,
    /// Every session ever opened, open or closed, in opening order.
    pub(crate) session_log: Vec<Id>,
    pub(crate) telemetry: TelemetryState,
    /// CloudFetch file GETs by file index (over every statement), faulted ones included.
    pub(crate) cloudfetch_gets: BTreeMap<usize, usize>,
    /// CloudFetch file GETs that carried an `Authorization` header (all rejected with 400).
    pub(crate) cloudfetch_gets_with_authorization: usize,
    /// Requests answered 401 because their bearer token was missing, unknown, expired or revoked.
    pub(crate) unauthorized: usize,
    /// With `cloudfetch_keep_files`: the files of each CloudFetch result by normalized SQL text
    /// and wire format, kept after their operations close.
    pub(crate) kept_files: HashMap<(String, WireFormat), Arc<ResultFiles>>,
    /// The OAuth server: clients, issued codes and tokens, counts.
    pub(crate) oauth: OAuthState,
    /// The latest `hive.server2.auth` cookie values issued (plain HiveServer2 mode).
    pub(crate) hive_cookies: VecDeque<String>,
    /// Requests that carried a `hive.server2.auth` cookie the mock issued.
    pub(crate) cookie_authenticated: usize,
    /// Unity Catalog volume files and the presigned staging URLs issued.
    pub(crate) staging: StagingState,
}

impl State {
    pub(crate) fn new(knobs: Knobs, telemetry: TelemetryState, oauth: OAuthState) -> Self {
        State {
            knobs,
            sessions: HashMap::new(),
            operations: HashMap::new(),
            registered: HashMap::new(),
            counts: BTreeMap::new(),
            handled: BTreeMap::new(),
            faults: FaultQueue::default(),
            requests: VecDeque::new(),
            statements: VecDeque::new(),
            session_log: Vec::new(),
            telemetry,
            cloudfetch_gets: BTreeMap::new(),
            cloudfetch_gets_with_authorization: 0,
            unauthorized: 0,
            kept_files: HashMap::new(),
            oauth,
            hive_cookies: VecDeque::new(),
            cookie_authenticated: 0,
            staging: StagingState::default(),
        }
    }

    pub(crate) fn count(&mut self, name: &str) {
        *self.counts.entry(name.to_string()).or_insert(0) += 1;
    }

    /// Note that a request named `name` reached its handler.
    pub(crate) fn handled(&mut self, name: &str) {
        *self.handled.entry(name.to_string()).or_insert(0) += 1;
    }

    pub(crate) fn open_sessions(&self) -> usize {
        self.sessions.values().filter(|s| !s.closed).count()
    }

    /// Close a session and every operation it still has.
    pub(crate) fn close_session(&mut self, id: &Id) -> bool {
        match self.sessions.get_mut(id) {
            Some(s) if !s.closed => {
                s.closed = true;
                self.operations.retain(|_, op| &op.session != id);
                true
            }
            _ => false,
        }
    }

    /// The open session `id`.
    pub(crate) fn session(&mut self, id: &Id) -> Option<&mut Session> {
        self.sessions.get_mut(id).filter(|s| !s.closed)
    }

    pub(crate) fn session_info(&self, id: &Id) -> Option<SessionInfo> {
        let s = self.sessions.get(id)?;
        Some(SessionInfo {
            session_id: crate::thrift::handles::guid_to_string(id),
            protocol_version: s.protocol_version,
            configuration: s.configuration.clone(),
            catalog: s.catalog.clone(),
            schema: s.schema.clone(),
            closed: s.closed,
        })
    }
}

/// What a test registered for a SQL text.
#[derive(Debug, Clone)]
pub(crate) enum Registered {
    Rows(Arc<dyn RowSource>),
    Error(SqlError),
}

/// A session.
#[derive(Debug, Clone)]
pub(crate) struct Session {
    /// The negotiated protocol version.
    pub(crate) protocol_version: i32,
    pub(crate) configuration: BTreeMap<String, String>,
    pub(crate) catalog: Option<String>,
    pub(crate) schema: Option<String>,
    pub(crate) closed: bool,
}

/// An error a statement ends with (the ERROR state).
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) struct SqlError {
    pub(crate) sql_state: String,
    pub(crate) message: String,
    pub(crate) display_message: String,
}

/// What a statement produces once it has run.
#[derive(Debug, Clone)]
pub(crate) enum Outcome {
    /// A result set.
    Rows(Arc<dyn RowSource>),
    /// No result set; this many rows modified (DML).
    Modified(i64),
    /// No result set, no row count (commands).
    NoResult,
    /// The ERROR state.
    Failed(SqlError),
}

/// The states the mock's operations go through (a subset of `TOperationState`).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum OpState {
    Pending,
    Running,
    Finished,
    Canceled,
    Error,
    TimedOut,
}

impl OpState {
    pub(crate) fn is_terminal(self) -> bool {
        !matches!(self, OpState::Pending | OpState::Running)
    }
}

/// How a result is sent to the client, decided once at ExecuteStatement from what the client
/// said it can read and the session's protocol version.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub(crate) struct WireFormat {
    /// `ARROW_BASED_SET` (else `COLUMN_BASED_SET`).
    pub(crate) arrow: bool,
    /// Arrow batches are LZ4 frames.
    pub(crate) lz4: bool,
    /// Timestamps as Arrow timestamps (else strings).
    pub(crate) arrow_timestamps: bool,
    /// Decimals as Arrow decimals (else strings).
    pub(crate) arrow_decimals: bool,
    /// A vanilla HiveServer2 session (protocol below SPARK V1): no extension fields in replies,
    /// `hasMoreRows` always false.
    pub(crate) vanilla: bool,
    /// `URL_BASED_SET`: the result goes out as CloudFetch links to Arrow IPC stream files (the
    /// client sent `canDownloadResult`, the session is at SPARK V3 or later, Arrow is granted,
    /// and the result has more rows than the CloudFetch threshold).
    pub(crate) cloudfetch: bool,
}

/// A statement's operation.
#[derive(Debug)]
pub(crate) struct Operation {
    pub(crate) session: Id,
    pub(crate) outcome: Outcome,
    pub(crate) format: WireFormat,
    /// Epoch milliseconds at start, for `operationStarted`.
    pub(crate) started_ms: i64,
    pub(crate) started: Instant,
    /// How long the statement runs before it is FINISHED.
    pub(crate) run_time: Duration,
    /// GetOperationStatus polls to answer PENDING/RUNNING before FINISHED.
    pub(crate) polls_needed: u32,
    pub(crate) polls_seen: u32,
    /// The client's query timeout; `None` for none.
    pub(crate) timeout: Option<Duration>,
    pub(crate) canceled: bool,
    /// Where the next FETCH_NEXT starts.
    pub(crate) next_offset: u64,
    /// The result's CloudFetch files, when it is sent as links; dropped (and so evicted) with
    /// the operation unless the mock keeps files.
    pub(crate) cloud_files: Option<Arc<ResultFiles>>,
    /// The result is a staging operation's instructions (`isStagingOperation`).
    pub(crate) staging: bool,
}

impl Operation {
    /// The state at `now`, without counting a poll.
    pub(crate) fn state(&self, now: Instant) -> OpState {
        if let Outcome::Failed(_) = self.outcome {
            return OpState::Error;
        }
        if self.canceled {
            return OpState::Canceled;
        }
        let elapsed = now.saturating_duration_since(self.started);
        if let Some(t) = self.timeout {
            if self.run_time > t && elapsed >= t {
                return OpState::TimedOut;
            }
        }
        if elapsed >= self.run_time && self.polls_seen >= self.polls_needed {
            OpState::Finished
        } else if self.polls_seen == 0 {
            OpState::Pending
        } else {
            OpState::Running
        }
    }

    /// Answer one GetOperationStatus poll.
    pub(crate) fn poll(&mut self, now: Instant) -> OpState {
        let s = self.state(now);
        self.polls_seen = self.polls_seen.saturating_add(1);
        s
    }

    /// When the statement reaches a terminal state by time alone (its run time, or its timeout).
    pub(crate) fn settles_at(&self) -> Instant {
        let run = match self.timeout {
            Some(t) if t < self.run_time => t,
            _ => self.run_time,
        };
        crate::time::after(self.started, run)
    }

    /// For a synchronous execution: skip the polls, so only time decides the state.
    pub(crate) fn skip_polls(&mut self) {
        self.polls_seen = self.polls_seen.max(self.polls_needed);
    }

    /// The rows of the result, when it has a result set.
    pub(crate) fn rows(&self) -> Option<&Arc<dyn RowSource>> {
        match &self.outcome {
            Outcome::Rows(r) => Some(r),
            _ => None,
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::mock::source::RangeSource;

    fn new_id() -> Id {
        *uuid::Uuid::new_v4().as_bytes()
    }

    fn op(run_time_ms: u64, polls: u32, timeout_ms: Option<u64>) -> Operation {
        Operation {
            session: new_id(),
            outcome: Outcome::Rows(Arc::new(RangeSource::new(0, 1))),
            format: WireFormat {
                arrow: true,
                lz4: false,
                arrow_timestamps: true,
                arrow_decimals: true,
                vanilla: false,
                cloudfetch: false,
            },
            started_ms: 0,
            started: Instant::now(),
            run_time: Duration::from_millis(run_time_ms),
            polls_needed: polls,
            polls_seen: 0,
            timeout: timeout_ms.map(Duration::from_millis),
            canceled: false,
            next_offset: 0,
            cloud_files: None,
            staging: false,
        }
    }

    #[tokio::test(start_paused = true)]
    async fn a_sleeping_statement_is_pending_then_running_then_finished() {
        let mut o = op(500, 0, None);
        assert_eq!(o.poll(Instant::now()), OpState::Pending);
        assert_eq!(o.poll(Instant::now()), OpState::Running);
        tokio::time::advance(Duration::from_millis(499)).await;
        assert_eq!(o.poll(Instant::now()), OpState::Running);
        tokio::time::advance(Duration::from_millis(1)).await;
        assert_eq!(o.poll(Instant::now()), OpState::Finished);
    }

    #[test]
    fn running_polls_count_status_calls_before_finished() {
        let mut o = op(0, 3, None);
        let now = Instant::now();
        assert_eq!(o.poll(now), OpState::Pending);
        assert_eq!(o.poll(now), OpState::Running);
        assert_eq!(o.poll(now), OpState::Running);
        assert_eq!(o.poll(now), OpState::Finished);
        let mut sync = op(0, 3, None);
        sync.skip_polls();
        assert_eq!(sync.state(now), OpState::Finished);
    }

    #[tokio::test(start_paused = true)]
    async fn a_statement_longer_than_its_timeout_times_out_at_the_timeout() {
        let o = op(5_000, 0, Some(1_000));
        assert_eq!(o.settles_at(), o.started + Duration::from_secs(1));
        tokio::time::advance(Duration::from_millis(999)).await;
        assert_eq!(o.state(Instant::now()), OpState::Pending);
        tokio::time::advance(Duration::from_millis(1)).await;
        assert_eq!(o.state(Instant::now()), OpState::TimedOut);
        // A statement that fits in its timeout finishes normally.
        let quick = op(10, 0, Some(1_000));
        tokio::time::advance(Duration::from_millis(10)).await;
        assert_eq!(quick.state(Instant::now()), OpState::Finished);
    }

    #[test]
    fn cancel_and_failure_win_over_time() {
        let mut o = op(10_000, 0, None);
        o.canceled = true;
        assert_eq!(o.state(Instant::now()), OpState::Canceled);
        let mut f = op(10_000, 0, None);
        f.outcome = Outcome::Failed(SqlError {
            sql_state: "42P01".into(),
            message: "m".into(),
            display_message: "d".into(),
        });
        assert_eq!(f.state(Instant::now()), OpState::Error);
        assert!(OpState::Error.is_terminal() && !OpState::Running.is_terminal());
    }

    #[test]
    fn closing_a_session_closes_its_operations() {
        let mut st = State::new(
            Knobs {
                running_polls: 0,
                statement_delay: Duration::ZERO,
            },
            TelemetryState::default(),
            OAuthState::new(Default::default()),
        );
        let sid = new_id();
        st.sessions.insert(
            sid,
            Session {
                protocol_version: 0,
                configuration: BTreeMap::new(),
                catalog: None,
                schema: None,
                closed: false,
            },
        );
        let mut o = op(0, 0, None);
        o.session = sid;
        st.operations.insert(new_id(), o);
        st.operations.insert(new_id(), op(0, 0, None));
        assert_eq!(st.open_sessions(), 1);
        assert!(st.close_session(&sid));
        assert!(!st.close_session(&sid));
        assert_eq!(st.open_sessions(), 0);
        assert_eq!(st.operations.len(), 1);
        assert!(st.session(&sid).is_none());
        assert!(st.session_info(&sid).unwrap().closed);
    }
}
