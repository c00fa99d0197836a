//! [`SessionPool`] (feature `pool`): open sessions of one client kept for reuse, for
//! applications that run many short statements, on deadpool's managed pool.
//!
//! ```no_run
//! # async fn run() -> databricks_sql::Result<()> {
//! use databricks_sql::pool::SessionPool;
//! use databricks_sql::{DBSQLClient, SessionOptions};
//!
//! let client = DBSQLClient::builder()
//!     .host("adb-123.4.azuredatabricks.net")
//!     .http_path("/sql/1.0/warehouses/abc")
//!     .token("dapi...")
//!     .build()?;
//! let pool = SessionPool::builder(client.clone())
//!     .session_options(SessionOptions::new().catalog("main"))
//!     .max_size(8)
//!     .build()?;
//! {
//!     let session = pool.get().await?; // checked with one GetInfo call, or newly opened
//!     let batches = session.query("SELECT 1", Default::default()).await?;
//! } // back in the pool
//! pool.close().await?;
//! client.close().await?;
//! # Ok(()) }
//! ```

use std::ops::Deref;
use std::time::Duration;

use deadpool::managed::{self, Metrics, PoolError, RecycleError, RecycleResult, TimeoutType};
use deadpool::Runtime;

use crate::client::DBSQLClient;
use crate::config::SessionOptions;
use crate::error::{Error, ErrorKind, Result};
use crate::session::Session;

/// The most sessions a pool holds (checked out and idle together) unless
/// [`SessionPoolBuilder::max_size`] says otherwise: 10.
pub const DEFAULT_MAX_SIZE: usize = 10;
/// How long [`SessionPool::get`] waits for a session to be returned when all are checked out,
/// unless [`SessionPoolBuilder::wait_timeout`] says otherwise: 30 s.
pub const DEFAULT_WAIT_TIMEOUT: Duration = Duration::from_secs(30);
/// How long opening a new session may take, unless [`SessionPoolBuilder::create_timeout`] says
/// otherwise: 60 s (OpenSession goes through the client's retry policy within it).
pub const DEFAULT_CREATE_TIMEOUT: Duration = Duration::from_secs(60);
/// How long the health check of an idle session may take before the session is discarded,
/// unless [`SessionPoolBuilder::recycle_timeout`] says otherwise: 10 s.
pub const DEFAULT_RECYCLE_TIMEOUT: Duration = Duration::from_secs(10);

/// Opens the pool's sessions and checks them on checkout.
#[derive(Debug)]
struct SessionManager {
    client: DBSQLClient,
    options: SessionOptions,
}

impl managed::Manager for SessionManager {
    type Type = Session;
    type Error = Error;

    async fn create(&self) -> Result<Session> {
        self.client.open_session_with(self.options.clone()).await
    }

    /// The health check: one GetInfo call. A session that fails it is discarded (dropped,
    /// which closes it in the background unless the server no longer has it).
    async fn recycle(&self, session: &mut Session, _: &Metrics) -> RecycleResult<Error> {
        match session.check_alive().await {
            Ok(()) => Ok(()),
            Err(e) => {
                if matches!(e.kind(), ErrorKind::InvalidHandle | ErrorKind::Closed) {
                    session.forget_on_server();
                }
                tracing::debug!(session_id = %session.id(), error = %e, "pooled session failed its health check: discarded");
                Err(RecycleError::Backend(e))
            }
        }
    }
}

/// A pool of open [`Session`]s of one [`DBSQLClient`], all opened with the same
/// [`SessionOptions`]. Cheap to clone (an `Arc` inside), `Send + Sync`.
///
/// - [`get`](Self::get) hands out an idle session after a health check (one GetInfo call: a
///   round trip to the server, no statement run), or opens a new one while fewer than
///   [`max_size`](SessionPoolBuilder::max_size) exist, or waits for one to be returned.
/// - A session that fails the health check (the server closed it or forgot it: an invalid
///   handle; closed through [`Session::close`]; any other failure of the check) is discarded
///   and the next idle one is tried, or a new one opened.
/// - A [`PooledSession`] goes back to the pool when dropped.
/// - [`close`](Self::close) closes the idle sessions and every session returned later;
///   dropping the last clone of the pool closes the idle sessions in the background (as a
///   dropped [`Session`] is), and [`DBSQLClient::close`] waits for those closes.
///
/// Session state that a statement changes (`USE`, `SET`) stays with the session and so with
/// whoever gets it next: set such options through [`SessionOptions`] instead.
#[derive(Clone)]
pub struct SessionPool {
    pool: managed::Pool<SessionManager>,
}

impl std::fmt::Debug for SessionPool {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("SessionPool")
            .field("status", &self.status())
            .field("closed", &self.pool.is_closed())
            .finish_non_exhaustive()
    }
}

/// Builds a [`SessionPool`]; each setting says its default.
#[derive(Debug)]
#[must_use]
pub struct SessionPoolBuilder {
    client: DBSQLClient,
    options: SessionOptions,
    max_size: usize,
    wait_timeout: Option<Duration>,
    create_timeout: Option<Duration>,
    recycle_timeout: Option<Duration>,
}

impl SessionPool {
    /// A builder of a pool of `client`'s sessions, every setting at its default.
    pub fn builder(client: DBSQLClient) -> SessionPoolBuilder {
        SessionPoolBuilder {
            client,
            options: SessionOptions::default(),
            max_size: DEFAULT_MAX_SIZE,
            wait_timeout: Some(DEFAULT_WAIT_TIMEOUT),
            create_timeout: Some(DEFAULT_CREATE_TIMEOUT),
            recycle_timeout: Some(DEFAULT_RECYCLE_TIMEOUT),
        }
    }

    /// A session: an idle one that passed the health check, else a new one (while the pool
    /// holds fewer than its maximum), else the next one returned, waiting at most the wait
    /// timeout.
    ///
    /// Errors: [`ErrorKind::Timeout`] when no session was free within the wait timeout or
    /// opening one took longer than the create timeout; [`ErrorKind::Closed`] after
    /// [`close`](Self::close); the error of OpenSession when a new session could not be opened.
    pub async fn get(&self) -> Result<PooledSession> {
        match self.pool.get().await {
            Ok(object) => Ok(PooledSession { object }),
            Err(e) => Err(self.pool_error(e)),
        }
    }

    fn pool_error(&self, error: PoolError<Error>) -> Error {
        let timeouts = self.pool.timeouts();
        let shown = |t: Option<Duration>| t.map_or("none".to_string(), |t| format!("{t:?}"));
        match error {
            PoolError::Backend(e) => e,
            PoolError::Timeout(TimeoutType::Wait) => Error::new(
                ErrorKind::Timeout,
                format!(
                    "no session of the pool was free within its wait timeout ({}; {} sessions, all checked out)",
                    shown(timeouts.wait),
                    self.pool.status().max_size
                ),
            ),
            PoolError::Timeout(TimeoutType::Create) => Error::new(
                ErrorKind::Timeout,
                format!(
                    "opening a session for the pool took longer than its create timeout ({})",
                    shown(timeouts.create)
                ),
            ),
            // deadpool 0.13 does not return a recycle timeout: a health check that outlasts it
            // discards that session (dropped, so closed in the background) and `get` goes on
            // with the next idle session or opens a new one.
            PoolError::Timeout(other) => Error::new(
                ErrorKind::Timeout,
                format!("the session pool timed out ({other:?})"),
            ),
            PoolError::Closed => Error::closed("the session pool was closed"),
            PoolError::NoRuntimeSpecified => {
                Error::config("the session pool has timeouts but no runtime")
            }
            PoolError::PostCreateHook(e) => {
                Error::config(format!("a session pool hook failed: {e}"))
            }
        }
    }

    /// How many sessions the pool holds, how many of them are idle, and how many callers wait.
    pub fn status(&self) -> PoolStatus {
        let s = self.pool.status();
        PoolStatus {
            max_size: s.max_size,
            size: s.size,
            available: s.available,
            waiting: s.waiting,
        }
    }

    /// Whether [`close`](Self::close) was called.
    pub fn is_closed(&self) -> bool {
        self.pool.is_closed()
    }

    /// Close the pool: callers waiting in [`get`](Self::get) and later calls fail with
    /// [`ErrorKind::Closed`]; the idle sessions are closed on the server now (CloseSession,
    /// awaited), sessions still checked out when they are returned (in the background).
    /// Returns the first error of a CloseSession, after trying them all. Calling it again does
    /// nothing.
    pub async fn close(&self) -> Result<()> {
        let idle = self.pool.retain(|_, _| false).removed;
        self.pool.close();
        let mut first_error = None;
        for session in idle {
            if let Err(e) = session.close().await {
                first_error.get_or_insert(e);
            }
        }
        first_error.map_or(Ok(()), Err)
    }
}

impl SessionPoolBuilder {
    /// The options every session of the pool is opened with (initial catalog and schema,
    /// session configuration). Default: [`SessionOptions::default()`], the client's catalog and
    /// schema.
    pub fn session_options(mut self, options: SessionOptions) -> Self {
        self.options = options;
        self
    }

    /// The most sessions the pool holds, checked out and idle together. Default
    /// [`DEFAULT_MAX_SIZE`] (10). Must be at least 1.
    pub fn max_size(mut self, size: usize) -> Self {
        self.max_size = size;
        self
    }

    /// How long [`SessionPool::get`] waits for a session when all are checked out; `None`
    /// waits without limit, zero fails at once. Default [`DEFAULT_WAIT_TIMEOUT`] (30 s).
    pub fn wait_timeout(mut self, timeout: Option<Duration>) -> Self {
        self.wait_timeout = timeout;
        self
    }

    /// How long opening a new session may take; `None` leaves it to the client's retry policy.
    /// Default [`DEFAULT_CREATE_TIMEOUT`] (60 s).
    ///
    /// When the timeout fires after the server opened the session but before its reply was
    /// read, the driver never learns that session's handle and cannot close it: the session
    /// stays open on the server until the server expires it as idle.
    pub fn create_timeout(mut self, timeout: Option<Duration>) -> Self {
        self.create_timeout = timeout;
        self
    }

    /// How long the health check of an idle session may take; a session whose check takes
    /// longer is discarded. `None` leaves it to the client's retry policy. Default
    /// [`DEFAULT_RECYCLE_TIMEOUT`] (10 s).
    pub fn recycle_timeout(mut self, timeout: Option<Duration>) -> Self {
        self.recycle_timeout = timeout;
        self
    }

    /// Build the pool. No session is opened here: the first [`SessionPool::get`] opens one.
    /// A `max_size` of 0 is a [`Config`](ErrorKind::Config) error.
    pub fn build(self) -> Result<SessionPool> {
        if self.max_size == 0 {
            return Err(Error::config(
                "the session pool's max_size must be at least 1",
            ));
        }
        let manager = SessionManager {
            client: self.client,
            options: self.options,
        };
        let pool = managed::Pool::builder(manager)
            .max_size(self.max_size)
            .wait_timeout(self.wait_timeout)
            .create_timeout(self.create_timeout)
            .recycle_timeout(self.recycle_timeout)
            .runtime(Runtime::Tokio1)
            .build()
            .map_err(|e| Error::config(format!("the session pool could not be built: {e}")))?;
        Ok(SessionPool { pool })
    }
}

/// A session checked out of a [`SessionPool`]: use it as a [`Session`] (it dereferences to
/// one); dropping it returns it to the pool.
pub struct PooledSession {
    object: managed::Object<SessionManager>,
}

impl PooledSession {
    /// Take the session out of the pool for good: the pool may open another in its place, and
    /// closing this one is up to the caller (or its drop).
    pub fn detach(self) -> Session {
        managed::Object::take(self.object)
    }
}

impl Deref for PooledSession {
    type Target = Session;

    fn deref(&self) -> &Session {
        &self.object
    }
}

impl std::fmt::Debug for PooledSession {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_tuple("PooledSession").field(&*self.object).finish()
    }
}

/// What a [`SessionPool`] holds ([`SessionPool::status`]).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
#[non_exhaustive]
pub struct PoolStatus {
    /// The most sessions the pool holds (0 once closed).
    pub max_size: usize,
    /// The sessions it holds now, checked out and idle.
    pub size: usize,
    /// Idle sessions, ready to be handed out.
    pub available: usize,
    /// Callers of [`SessionPool::get`] waiting for a session.
    pub waiting: usize,
}
