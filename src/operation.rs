//! [`Operation`]: one running statement: waits for it to finish (polling with a short growing
//! interval), reads its result as Arrow `RecordBatch`es in row order, cancels and closes it.

use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::Arc;
use std::time::Duration;

use arrow_array::RecordBatch;
use arrow_schema::{Schema, SchemaRef};
use async_trait::async_trait;
use futures::stream::{BoxStream, StreamExt};
use serde::de::DeserializeOwned;
use tokio::sync::Notify;
use tokio::time::Instant;

use crate::config::EffectiveExecuteOptions;
use crate::error::{Error, ErrorKind, Result};
use crate::results::cloudfetch::{
    ChunkObserver, ChunkStats, CloudFetchStart, CloudFetchStream, CloudFetchSummary, LinkSource,
    ResultLink,
};
use crate::results::decode_threads::DecodeThreads;
use crate::results::empty_pages::EmptyPages;
use crate::results::inline_rows::InlineRows;
use crate::results::reader::{Page, PageSource, ResultReader, StartCloudFetch};
use crate::results::{from_thrift, ResultDecoder, ResultFormat as RowFormat};
use crate::session::SessionInner;
use crate::staging::StagingSummary;
use crate::telemetry::{PendingStatement, ResultFormat, StatementRecorder};
use crate::thrift::handles::guid_to_string;
use crate::thrift::rpc::{counting_retries, ThriftClient};
use crate::thrift::status::{check_status, operation_state_error};
use crate::thrift::tcli::{
    TCancelOperationReq, TCloseOperationReq, TExecuteStatementResp, TFetchOrientation,
    TFetchResultsReq, TFetchResultsResp, TGetOperationStatusReq, TGetOperationStatusResp,
    TGetResultSetMetadataReq, TGetResultSetMetadataResp, TOperationHandle, TOperationState,
    TProtocolVersion, TSparkDirectResults,
};

/// The state of a statement on the server.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
#[non_exhaustive]
pub enum OperationState {
    /// Accepted, not started.
    Initialized,
    /// Queued.
    Pending,
    /// Running.
    Running,
    /// Done; the result (if any) can be read.
    Finished,
    /// Cancelled.
    Canceled,
    /// Closed.
    Closed,
    /// Failed.
    Error,
    /// Stopped by its query timeout.
    TimedOut,
    /// A state this driver does not know.
    Unknown,
}

impl OperationState {
    fn from_thrift(state: Option<TOperationState>) -> Self {
        match state {
            Some(TOperationState::INITIALIZED_STATE) => OperationState::Initialized,
            Some(TOperationState::PENDING_STATE) => OperationState::Pending,
            Some(TOperationState::RUNNING_STATE) => OperationState::Running,
            Some(TOperationState::FINISHED_STATE) => OperationState::Finished,
            Some(TOperationState::CANCELED_STATE) => OperationState::Canceled,
            Some(TOperationState::CLOSED_STATE) => OperationState::Closed,
            Some(TOperationState::ERROR_STATE) => OperationState::Error,
            Some(TOperationState::TIMEDOUT_STATE) => OperationState::TimedOut,
            _ => OperationState::Unknown,
        }
    }

    /// Whether the statement can no longer change state.
    pub fn is_terminal(self) -> bool {
        !matches!(
            self,
            OperationState::Initialized | OperationState::Pending | OperationState::Running
        )
    }
}

/// What the server said of a statement, from [`Operation::status`].
#[derive(Debug, Clone)]
#[non_exhaustive]
pub struct OperationStatus {
    /// The statement's state.
    pub state: OperationState,
    /// Rows inserted, updated or deleted, for DML.
    pub rows_affected: Option<i64>,
    /// The SQLSTATE of a failed statement.
    pub sql_state: Option<String>,
    /// The error message of a failed statement.
    pub error_message: Option<String>,
}

/// What an operation shares with its [`CancelHandle`]s and its background close.
struct OpShared {
    rpc: Arc<ThriftClient>,
    handle: TOperationHandle,
    id: String,
    session_id: String,
    /// Closed on the server (by us, or by the server with direct results).
    closed: AtomicBool,
    cancelled: AtomicBool,
    cancel_notify: Notify,
    /// Measures the statement for telemetry and the application (absent when nobody reads it).
    recorder: Option<Arc<StatementRecorder>>,
}

impl OpShared {
    fn err(&self, e: Error) -> Error {
        e.with_statement_id(&self.id)
            .with_session_id(&self.session_id)
    }

    /// Run an RPC of this statement, counting its retries.
    async fn counted<T>(&self, call: impl std::future::Future<Output = Result<T>>) -> Result<T> {
        counting_retries(self.recorder.as_ref().map(|r| r.retries()), call)
            .await
            .map_err(|e| self.err(e))
    }

    /// Report `result`'s error, if any, as an error of this statement; pass it on.
    fn observe<T>(&self, result: Result<T>) -> Result<T> {
        if let (Err(e), Some(recorder)) = (&result, &self.recorder) {
            recorder.error(e);
        }
        result
    }

    /// The statement ended (closed, cancelled or dropped): report it, once.
    fn complete(&self) {
        if let Some(recorder) = &self.recorder {
            recorder.complete();
        }
    }

    /// Resolves once the statement is cancelled (at once when it already is).
    async fn cancelled(self: Arc<Self>) {
        loop {
            // Registered before the check, so a cancel between the two is not missed.
            let notified = self.cancel_notify.notified();
            if self.cancelled.load(Ordering::Acquire) {
                return;
            }
            notified.await;
        }
    }

    /// Cancel on the application's request: the statement is reported as ended once the
    /// server has cancelled it.
    async fn cancel(&self) -> Result<()> {
        if self.cancel_on_server().await? {
            self.complete();
        }
        Ok(())
    }

    /// Send CancelOperation once (later calls, and calls after close, do nothing) and wake
    /// every wait on the statement. Returns whether this call sent it.
    async fn cancel_on_server(&self) -> Result<bool> {
        if self.closed.load(Ordering::Acquire) {
            return Ok(false);
        }
        let first = !self.cancelled.swap(true, Ordering::AcqRel);
        self.cancel_notify.notify_waiters();
        if first {
            let cancelled = self
                .counted(
                    self.rpc
                        .cancel_operation(TCancelOperationReq::new(self.handle.clone())),
                )
                .await;
            self.observe(cancelled)?;
            tracing::debug!(statement_id = %self.id, "statement cancelled");
        }
        Ok(first)
    }
}

/// Cancels an [`Operation`] from another task while it is being read.
#[derive(Clone)]
pub struct CancelHandle {
    shared: Arc<OpShared>,
}

impl std::fmt::Debug for CancelHandle {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("CancelHandle")
            .field("statement_id", &self.shared.id)
            .finish()
    }
}

impl CancelHandle {
    /// Cancel the statement; a read waiting on it ends with an error of kind
    /// [`Cancelled`](ErrorKind::Cancelled).
    pub async fn cancel(&self) -> Result<()> {
        self.shared.cancel().await
    }
}

/// A statement that was accepted by the server: read its result with
/// [`next_batch`](Operation::next_batch), [`fetch_all`](Operation::fetch_all) or
/// [`stream`](Operation::stream). Close it with [`close`](Operation::close); dropping it closes it
/// in the background.
pub struct Operation {
    shared: Arc<OpShared>,
    /// Keeps the session open while the operation lives.
    session: Arc<SessionInner>,
    options: EffectiveExecuteOptions,
    has_result_set: bool,
    finished: bool,
    direct: Option<TSparkDirectResults>,
    decoder: Option<Arc<ResultDecoder>>,
    /// Reads the result's pages, once its metadata is known.
    reader: Option<ResultReader>,
    /// Rows handed out by `next_batch` (less those given back by the typed-row streams): the
    /// result position of the next row, which typed-row errors name.
    rows_read: u64,
    rows_affected: Option<i64>,
    deadline: Option<Instant>,
    /// [`close`](Operation::close) was called: reads fail from now on.
    closed_by_user: bool,
    /// The result set metadata marks the result a staging operation.
    staging: bool,
    /// What the file transfer of a staging statement did.
    staging_summary: Option<StagingSummary>,
}

impl std::fmt::Debug for Operation {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Operation")
            .field("id", &self.shared.id)
            .field("session_id", &self.shared.session_id)
            .field("finished", &self.finished)
            .field("reader", &self.reader)
            .finish_non_exhaustive()
    }
}

impl Operation {
    pub(crate) fn from_execute(
        session: Arc<SessionInner>,
        resp: TExecuteStatementResp,
        options: EffectiveExecuteOptions,
        pending: Option<PendingStatement>,
    ) -> Result<Operation> {
        Self::from_parts(
            session,
            "ExecuteStatement",
            resp.operation_handle,
            resp.direct_results,
            options,
            pending,
        )
    }

    /// An operation from the handle and direct results of a reply to `rpc`, measured from
    /// `pending` (when anything reads the measures).
    pub(crate) fn from_parts(
        session: Arc<SessionInner>,
        rpc: &str,
        handle: Option<TOperationHandle>,
        direct: Option<TSparkDirectResults>,
        options: EffectiveExecuteOptions,
        pending: Option<PendingStatement>,
    ) -> Result<Operation> {
        let handle = match handle {
            Some(handle) => handle,
            None => {
                let e = Error::protocol(format!("the {rpc} reply has no operation handle"))
                    .with_session_id(&session.id);
                if let Some(pending) = pending {
                    pending.failed(&session.id, &e);
                }
                return Err(e);
            }
        };
        let id = guid_to_string(&handle.operation_id.guid);
        let recorder = pending.map(|p| p.accepted(&session.id, &id));
        if let Some(recorder) = &recorder {
            session.track(recorder);
        }
        let has_result_set = handle.has_result_set;
        let rows_affected = handle
            .modified_row_count
            .map(|n| n.0)
            .filter(|n| n.is_finite() && *n >= 0.0)
            .map(|n| n as i64);
        let server_closed = direct
            .as_ref()
            .map(|d| d.close_operation.is_some())
            .unwrap_or(false);
        let deadline = options.query_timeout.map(crate::time::from_now);
        tracing::debug!(statement_id = %id, session_id = %session.id, direct = direct.is_some(), "statement accepted");
        let shared = Arc::new(OpShared {
            rpc: session.client.rpc.clone(),
            handle,
            id,
            session_id: session.id.clone(),
            closed: AtomicBool::new(server_closed),
            cancelled: AtomicBool::new(false),
            cancel_notify: Notify::new(),
            recorder,
        });
        let mut op = Operation {
            shared,
            session,
            options,
            has_result_set,
            finished: false,
            direct,
            decoder: None,
            reader: None,
            rows_read: 0,
            rows_affected,
            deadline,
            closed_by_user: false,
            staging: false,
            staging_summary: None,
        };
        // A status in the direct results tells at once whether the statement is done.
        if let Some(status) = op.direct.as_mut().and_then(|d| d.operation_status.take()) {
            let applied = op.apply_status(&status);
            op.shared.observe(applied)?;
        }
        Ok(op)
    }

    /// The statement id (UUID text of the operation handle).
    pub fn id(&self) -> &str {
        &self.shared.id
    }

    /// The id of the session the statement runs in.
    pub fn session_id(&self) -> &str {
        &self.shared.session_id
    }

    /// A handle that cancels this statement from another task.
    pub fn cancel_handle(&self) -> CancelHandle {
        CancelHandle {
            shared: self.shared.clone(),
        }
    }

    /// Whether the statement has a result set (queries; DML on a Databricks warehouse too).
    pub(crate) fn has_result_set(&self) -> bool {
        self.has_result_set
    }

    /// Rows inserted, updated or deleted by a DML statement, once it finished; `None` for queries.
    pub fn rows_affected(&self) -> Option<i64> {
        self.rows_affected
    }

    /// Running totals of the CloudFetch download pipeline (files, bytes, retries, link
    /// refreshes, and the byte budget's use and peak), once the result turned out to be
    /// CloudFetch links and the pipeline started (at the first batch read); `None` otherwise.
    pub fn cloudfetch_summary(&self) -> Option<CloudFetchSummary> {
        self.reader
            .as_ref()
            .and_then(ResultReader::cloudfetch)
            .map(|s| s.summary())
    }

    /// Ask the server for the statement's current state (one GetOperationStatus call).
    pub async fn status(&self) -> Result<OperationStatus> {
        if self.shared.closed.load(Ordering::Acquire) {
            return Ok(OperationStatus {
                state: if self.finished {
                    OperationState::Finished
                } else {
                    OperationState::Closed
                },
                rows_affected: self.rows_affected,
                sql_state: None,
                error_message: None,
            });
        }
        let resp = self.shared.observe(self.get_status().await)?;
        Ok(OperationStatus {
            state: OperationState::from_thrift(resp.operation_state),
            rows_affected: resp.num_modified_rows.or(self.rows_affected),
            sql_state: resp.sql_state.clone(),
            error_message: resp.error_message.clone(),
        })
    }

    /// What the file transfer of a staging statement did (`PUT`, `GET` or `REMOVE` of a Unity
    /// Catalog volume file); `None` for other statements.
    pub fn staging_summary(&self) -> Option<&StagingSummary> {
        self.staging_summary.as_ref()
    }

    /// Waits for the statement and, when the server marks its result a staging operation,
    /// reads the one row of instructions and runs the file transfer (see
    /// [`staging`](crate::staging)): the operation has no rows left afterwards.
    pub(crate) async fn run_staging(&mut self) -> Result<()> {
        self.wait().await?;
        if !self.has_result_set {
            return Ok(());
        }
        let decoded = self.ensure_decoder().await;
        self.shared.observe(decoded)?;
        if !self.staging {
            return Ok(());
        }
        let rows = self.fetch_all().await?;
        let client = &self.session.client;
        let stager = crate::staging::Stager {
            transport: &client.transport,
            retry: &client.config.retry,
            allowed: &self.options.staging_allowed_local_paths,
        };
        let done = match crate::staging::StagingRequest::from_batches(&rows) {
            Ok(request) => stager.run(request).await,
            Err(e) => Err(e),
        };
        let summary = self.shared.observe(done.map_err(|e| self.shared.err(e)))?;
        self.staging_summary = Some(summary);
        Ok(())
    }

    /// Wait until the statement finished; errors if it failed, was cancelled or timed out.
    pub async fn wait(&mut self) -> Result<()> {
        let waited = self.wait_finished().await;
        self.shared.observe(waited)
    }

    async fn wait_finished(&mut self) -> Result<()> {
        if self.finished {
            return Ok(());
        }
        let mut interval = self.session.client.config.min_poll_interval;
        let cap = self.session.client.config.max_poll_interval;
        loop {
            if self.closed_by_user {
                return Err(self.shared.err(Error::closed("the operation was closed")));
            }
            if self.shared.cancelled.load(Ordering::Acquire) {
                return Err(self.cancelled_error());
            }
            let resp = self.get_status().await?;
            if self.apply_status(&resp)? {
                return Ok(());
            }
            // Not done: wait, but wake at once on cancel or at the deadline.
            let sleep_until = {
                let next = crate::time::from_now(interval);
                match self.deadline {
                    Some(d) if d < next => d,
                    _ => next,
                }
            };
            let notified = self.shared.cancel_notify.notified();
            tokio::select! {
                _ = tokio::time::sleep_until(sleep_until) => {}
                _ = notified => {}
            }
            if let Some(d) = self.deadline {
                if Instant::now() >= d {
                    return Err(self.timeout_locally().await);
                }
            }
            interval = (interval * 2).min(cap);
        }
    }

    /// The next batch of the result, in row order; `None` at the end (or for a statement without
    /// a result set). Batches with no rows are skipped.
    pub async fn next_batch(&mut self) -> Result<Option<RecordBatch>> {
        let started = Instant::now();
        let next = self.read_next_batch().await;
        if let (Ok(_), Some(recorder)) = (&next, &self.shared.recorder) {
            recorder.read(started);
        }
        if let Ok(Some(batch)) = &next {
            self.rows_read += batch.num_rows() as u64;
        }
        self.shared.observe(next)
    }

    /// Gives back the unread end of a batch `next_batch` handed out: the next read starts with
    /// it.
    fn unread(&mut self, batch: RecordBatch) {
        if batch.num_rows() == 0 {
            return;
        }
        if let Some(reader) = self.reader.as_mut() {
            self.rows_read = self.rows_read.saturating_sub(batch.num_rows() as u64);
            reader.unread(batch);
        }
    }

    async fn read_next_batch(&mut self) -> Result<Option<RecordBatch>> {
        loop {
            if self.closed_by_user {
                return Err(self.shared.err(Error::closed("the operation was closed")));
            }
            if self.shared.cancelled.load(Ordering::Acquire) {
                // Cancelled while no read was waiting: stop the downloads now.
                if let Some(stream) = self.reader.as_mut().and_then(ResultReader::cloudfetch_mut) {
                    stream.cancel();
                }
                return Err(self.cancelled_error());
            }
            if let Some(batch) = self.reader.as_mut().and_then(ResultReader::pop_pending) {
                return Ok(Some(batch));
            }
            self.wait_finished().await?;
            if !self.has_result_set {
                return Ok(None);
            }
            self.ensure_decoder().await?;
            let (Some(decoder), Some(reader)) = (self.decoder.clone(), self.reader.as_mut()) else {
                return Err(self.shared.err(Error::protocol("no result metadata")));
            };
            if let Some(direct_rows) = self.direct.as_mut().and_then(|d| d.result_set.take()) {
                let threads = &self.session.client.decode_threads;
                let page = decode_page(threads, decoder, *direct_rows).await;
                page.and_then(|page| reader.accept(page))
                    .map_err(|e| self.shared.err(e))?;
                continue;
            }
            if let Some(stream) = reader.cloudfetch_mut() {
                let notified = self.shared.cancel_notify.notified();
                // `None`: cancelled while waiting. The cancel is checked first, so a pipeline
                // that its cancel already stopped is never reported as a failure of its own.
                let next = tokio::select! {
                    biased;
                    _ = notified => None,
                    next = stream.next_batch() => Some(next),
                };
                match next {
                    Some(Ok(batch)) => return Ok(batch),
                    None => {}
                    // A cancel between the check above and the wait stops the pipeline too.
                    Some(Err(_)) if self.shared.cancelled.load(Ordering::Acquire) => {}
                    Some(Err(e)) => return Err(self.shared.err(e)),
                }
                stream.cancel();
                return Err(self.cancelled_error());
            }
            if !reader.wants_page() {
                return Ok(None);
            }
            let page = reader.next_page().await;
            page.and_then(|page| reader.accept(page))
                .map_err(|e| self.shared.err(e))?;
        }
    }

    /// Read the whole remaining result into memory.
    pub async fn fetch_all(&mut self) -> Result<Vec<RecordBatch>> {
        let mut out = Vec::new();
        while let Some(batch) = self.next_batch().await? {
            out.push(batch);
        }
        Ok(out)
    }

    /// The result as a stream of batches, borrowing the operation.
    pub fn stream(&mut self) -> BoxStream<'_, Result<RecordBatch>> {
        futures::stream::try_unfold(self, |op| async move {
            Ok(op.next_batch().await?.map(|b| (b, op)))
        })
        .boxed()
    }

    /// The result as a `'static` stream of batches, owning the operation (closed when the
    /// stream is dropped).
    pub fn into_stream(self) -> BoxStream<'static, Result<RecordBatch>> {
        futures::stream::try_unfold(self, |mut op| async move {
            Ok(op.next_batch().await?.map(|b| (b, op)))
        })
        .boxed()
    }

    /// The rows of the result as `T`s, deserialized with serde (see [`rows`](crate::rows) for
    /// how Arrow types map to Rust types). A row that does not deserialize ends the stream with
    /// an error of kind [`Decode`](ErrorKind::Decode) naming the row, the column and both
    /// types, after the rows before it. Rows are numbered by their position in the result,
    /// from 0, whatever was read before. A stream dropped before the end hands the rows it has
    /// not yielded back to the operation: the next read (another stream, `next_batch`) starts
    /// with them; after an error, with the row that failed.
    ///
    /// ```no_run
    /// # async fn run(session: databricks_sql::Session) -> databricks_sql::Result<()> {
    /// use futures::TryStreamExt;
    ///
    /// let mut op = session.execute_statement("SELECT * FROM mock.rows(10)").await?;
    /// let pairs: Vec<(i64, Option<String>)> = op.rows().try_collect().await?;
    /// # Ok(()) }
    /// ```
    pub fn rows<'a, T: DeserializeOwned + Send + 'a>(&'a mut self) -> BoxStream<'a, Result<T>> {
        let cursor = BatchCursor::new(self, Vec::<T>::new().into_iter());
        futures::stream::try_unfold(cursor, |mut cursor| async move {
            loop {
                if let Some(value) = cursor.items.next() {
                    cursor.consumed += 1;
                    return Ok(Some((value, cursor)));
                }
                if let Some(e) = cursor.failed.take() {
                    return Err(e);
                }
                let Some(batch) = cursor.next_batch().await? else {
                    return Ok(None);
                };
                let mut values = Vec::new();
                if let Err(e) = crate::rows::deserialize_rows(&batch, cursor.first_row, &mut values)
                {
                    cursor.failed = Some(cursor.op.shared.err(e));
                }
                cursor.items = values.into_iter();
                cursor.batch = Some(batch);
            }
        })
        .boxed()
    }

    /// Read the whole remaining result into memory as `T`s (see [`rows`](Operation::rows));
    /// the first error ends the read.
    pub async fn fetch_all_as<T: DeserializeOwned>(&mut self) -> Result<Vec<T>> {
        let mut out = Vec::new();
        loop {
            let first_row = self.rows_read;
            let Some(batch) = self.next_batch().await? else {
                return Ok(out);
            };
            crate::rows::deserialize_rows(&batch, first_row, &mut out)
                .map_err(|e| self.shared.err(e))?;
        }
    }

    /// The rows of the result one at a time, to read by column index or name with
    /// [`Row::get`](crate::rows::Row::get); numbered like the rows of [`rows`](Operation::rows).
    pub fn rows_raw(&mut self) -> BoxStream<'_, Result<crate::rows::Row>> {
        let none: Box<dyn Iterator<Item = crate::rows::Row> + Send> = Box::new(std::iter::empty());
        futures::stream::try_unfold(BatchCursor::new(self, none), |mut cursor| async move {
            loop {
                if let Some(row) = cursor.items.next() {
                    cursor.consumed += 1;
                    return Ok(Some((row, cursor)));
                }
                let Some(batch) = cursor.next_batch().await? else {
                    return Ok(None);
                };
                cursor.items = Box::new(crate::rows::rows_of(batch.clone(), cursor.first_row));
                cursor.batch = Some(batch);
            }
        })
        .boxed()
    }

    /// The schema of the result, waiting for the statement to finish if needed. A statement
    /// without a result set has an empty schema.
    pub async fn schema(&mut self) -> Result<SchemaRef> {
        let schema = self.result_schema().await;
        self.shared.observe(schema)
    }

    async fn result_schema(&mut self) -> Result<SchemaRef> {
        self.wait_finished().await?;
        if !self.has_result_set {
            return Ok(Arc::new(Schema::empty()));
        }
        self.ensure_decoder().await?;
        match &self.decoder {
            Some(d) => Ok(d.schema()),
            None => Err(self.shared.err(Error::protocol("no result metadata"))),
        }
    }

    /// Cancel the statement on the server; later reads end with a
    /// [`Cancelled`](ErrorKind::Cancelled) error.
    pub async fn cancel(&self) -> Result<()> {
        self.shared.cancel().await
    }

    /// Close the statement on the server, freeing its resources. Calling it again does nothing.
    pub async fn close(&mut self) -> Result<()> {
        self.closed_by_user = true;
        if let Some(reader) = self.reader.as_mut() {
            reader.stop();
        }
        if self.shared.closed.swap(true, Ordering::AcqRel) {
            self.shared.complete();
            return Ok(());
        }
        let closed = close_operation(&self.shared).await;
        let closed = self.shared.observe(closed);
        self.shared.complete();
        closed
    }

    // --- internals ---

    async fn get_status(&self) -> Result<TGetOperationStatusResp> {
        let req = TGetOperationStatusReq::new(self.shared.handle.clone(), None);
        let started = Instant::now();
        let status = self
            .shared
            .counted(self.shared.rpc.get_operation_status(req))
            .await;
        if let Some(recorder) = &self.shared.recorder {
            recorder.poll(started.elapsed());
        }
        status
    }

    /// Take in a status; true when the statement finished, an error when it ended otherwise.
    fn apply_status(&mut self, status: &TGetOperationStatusResp) -> Result<bool> {
        check_status(&status.status).map_err(|e| self.shared.err(e))?;
        if let Some(n) = status.num_modified_rows {
            self.rows_affected = Some(n);
        }
        if let Some(e) = operation_state_error(status) {
            if e.kind() == ErrorKind::Cancelled || e.kind() == ErrorKind::QueryTimeout {
                // The server ended it: nothing more to close there.
                self.shared.closed.store(true, Ordering::Release);
            }
            return Err(self.shared.err(e));
        }
        if status.operation_state == Some(TOperationState::FINISHED_STATE) {
            if let Some(has) = status.has_result_set {
                self.has_result_set = has;
            }
            self.finished = true;
            if let Some(recorder) = &self.shared.recorder {
                recorder.ready();
            }
            return Ok(true);
        }
        Ok(false)
    }

    async fn ensure_decoder(&mut self) -> Result<()> {
        if self.decoder.is_some() {
            return Ok(());
        }
        let metadata: TGetResultSetMetadataResp = match self
            .direct
            .as_mut()
            .and_then(|d| d.result_set_metadata.take())
        {
            Some(m) => *m,
            None => {
                let req = TGetResultSetMetadataReq::new(self.shared.handle.clone());
                self.shared
                    .counted(self.shared.rpc.get_result_set_metadata(req))
                    .await?
            }
        };
        self.staging = metadata.is_staging_operation == Some(true);
        let decoder = from_thrift::decoder(&metadata).map_err(|e| self.shared.err(e))?;
        if let Some(recorder) = &self.shared.recorder {
            let format = match decoder.format() {
                RowFormat::ArrowInline => ResultFormat::InlineArrow,
                RowFormat::Columnar => ResultFormat::ColumnarInline,
                RowFormat::CloudFetch => ResultFormat::ExternalLinks,
            };
            recorder.result(format, decoder.lz4_compressed());
        }
        let decoder = Arc::new(decoder);
        let client = &self.session.client;
        let pages = Arc::new(ThriftPages {
            shared: self.shared.clone(),
            max_rows: self.options.max_rows_per_fetch,
            decoder: decoder.clone(),
            decode_threads: client.decode_threads.clone(),
        });
        let start_cloudfetch = self.cloudfetch_starter(&decoder, pages.clone());
        self.reader = Some(ResultReader::new(
            pages,
            self.session
                .supports(TProtocolVersion::SPARK_CLI_SERVICE_PROTOCOL_V1),
            EmptyPages::within(&client.config.retry),
            start_cloudfetch,
        ));
        self.decoder = Some(decoder);
        Ok(())
    }

    /// How this result's CloudFetch stream starts, should its pages turn out to be links: the
    /// client's pipeline settings, transport, buffers and decode threads, the statement's
    /// telemetry and the application's chunk observer, and its cancellation.
    fn cloudfetch_starter(
        &self,
        decoder: &ResultDecoder,
        links: Arc<ThriftPages>,
    ) -> StartCloudFetch {
        let client = self.session.client.clone();
        let recorder = self.shared.recorder.clone();
        let shared = self.shared.clone();
        let schema = decoder.schema();
        let lz4 = decoder.lz4_compressed();
        Box::new(move |first_links, first_row_offset, more_links| {
            let observer: Option<Arc<dyn ChunkObserver>> =
                match (recorder.clone(), client.telemetry.chunk_observer().cloned()) {
                    (Some(recorder), Some(user)) => Some(Arc::new(move |stats: &ChunkStats| {
                        recorder.on_chunk(stats);
                        user.on_chunk(stats);
                    })),
                    (Some(recorder), None) => Some(recorder),
                    (None, user) => user,
                };
            let stream = CloudFetchStream::start(CloudFetchStart {
                config: client.config.cloud_fetch_config.clone(),
                transport: client.transport.clone(),
                link_source: links.clone(),
                first_links,
                more_links,
                first_row_offset,
                schema: schema.clone(),
                lz4,
                observer,
                cancelled: Some(Box::pin(shared.clone().cancelled())),
                buffers: client.cloudfetch_buffers.clone(),
                decode_threads: client.decode_threads.clone(),
            })?;
            if let Some(recorder) = &recorder {
                recorder.cloudfetch(stream.counters());
            }
            Ok(stream)
        })
    }

    fn cancelled_error(&self) -> Error {
        self.shared.err(Error::new(
            ErrorKind::Cancelled,
            "the statement was cancelled",
        ))
    }

    /// The client-side deadline passed: cancel on the server and report a query timeout.
    async fn timeout_locally(&mut self) -> Error {
        // Not reported as ended here: the query timeout it returns is the statement's error.
        if let Err(e) = self.shared.cancel_on_server().await {
            tracing::debug!(statement_id = %self.shared.id, error = %e, "cancel after query timeout failed");
        }
        let secs = self
            .options
            .query_timeout
            .unwrap_or(Duration::ZERO)
            .as_secs_f64();
        self.shared.err(Error::new(
            ErrorKind::QueryTimeout,
            format!("the statement did not finish within its query timeout of {secs} s"),
        ))
    }
}

/// The state of a typed-row stream: the batch it is handing out row by row. A stream dropped
/// before the end of its batch gives the unread rows back to the operation, so that the next
/// read (a new stream, `next_batch`) starts with them and no row is lost.
struct BatchCursor<'a, I> {
    op: &'a mut Operation,
    batch: Option<RecordBatch>,
    /// The batch's rows, converted.
    items: I,
    /// How many of `items` were handed out.
    consumed: usize,
    /// The result position of the batch's first row.
    first_row: u64,
    /// The conversion error that ends the stream once the rows before it are handed out.
    failed: Option<Error>,
}

impl<'a, I> BatchCursor<'a, I> {
    /// A cursor with no batch yet; `items` is empty.
    fn new(op: &'a mut Operation, items: I) -> Self {
        let first_row = op.rows_read;
        BatchCursor {
            op,
            batch: None,
            items,
            consumed: 0,
            first_row,
            failed: None,
        }
    }
}

impl<I> BatchCursor<'_, I> {
    /// The next batch of the operation; the current one is finished.
    async fn next_batch(&mut self) -> Result<Option<RecordBatch>> {
        self.batch = None;
        self.consumed = 0;
        self.first_row = self.op.rows_read;
        self.op.next_batch().await
    }
}

impl<I> Drop for BatchCursor<'_, I> {
    fn drop(&mut self) {
        if let Some(batch) = self.batch.take() {
            let unread = batch.num_rows().saturating_sub(self.consumed);
            if unread > 0 {
                self.op.unread(batch.slice(self.consumed, unread));
            }
        }
    }
}

/// Inline pages larger than this (in encoded bytes, about) are decoded on the client's decode
/// threads, off the async workers: 256 KiB. Smaller ones cost less than the hand-off.
const DECODE_OFF_WORKER_BYTES: usize = 256 * 1024;

/// Decodes `resp`: a large inline page on `threads`, anything else here.
async fn decode_page(
    threads: &DecodeThreads,
    decoder: Arc<ResultDecoder>,
    resp: TFetchResultsResp,
) -> Result<Page> {
    let has_more = resp.has_more_rows;
    let Some(mut row_set) = resp.results else {
        return Ok(Page::End);
    };
    let start = row_set.start_row_offset;
    if let Some(links) = row_set.result_links.take().filter(|l| !l.is_empty()) {
        return Ok(Page::Links {
            start,
            links: links.into_iter().map(ResultLink::from).collect(),
            has_more,
        });
    }
    let rows = InlineRows::try_from(row_set)?;
    let batches = if rows.encoded_bytes() <= DECODE_OFF_WORKER_BYTES {
        decoder.decode(rows)?
    } else {
        threads.decode(move || decoder.decode(rows)).await?
    };
    Ok(Page::Rows {
        start,
        batches,
        has_more,
    })
}

/// One FetchResults call: the next page, or the page starting at `start_row_offset`.
async fn fetch_page(
    shared: &OpShared,
    max_rows: i64,
    start_row_offset: Option<i64>,
) -> Result<TFetchResultsResp> {
    let req = TFetchResultsReq::new(
        shared.handle.clone(),
        TFetchOrientation::FETCH_NEXT,
        max_rows,
        Some(0),
        None,
        start_row_offset,
        None,
    );
    shared.counted(shared.rpc.fetch_results(req)).await
}

/// The pages of one operation's result: FetchResults from a given row offset, decoded (large
/// inline pages on the client's decode threads); for CloudFetch, the link pages.
struct ThriftPages {
    shared: Arc<OpShared>,
    max_rows: i64,
    decoder: Arc<ResultDecoder>,
    decode_threads: Arc<DecodeThreads>,
}

impl std::fmt::Debug for ThriftPages {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("ThriftPages")
            .field("statement_id", &self.shared.id)
            .finish_non_exhaustive()
    }
}

#[async_trait]
impl LinkSource for ThriftPages {
    async fn fetch_links(&self, start_row_offset: i64) -> Result<(Vec<ResultLink>, bool)> {
        let resp = fetch_page(&self.shared, self.max_rows, Some(start_row_offset)).await?;
        let links = resp
            .results
            .and_then(|r| r.result_links)
            .unwrap_or_default()
            .into_iter()
            .map(ResultLink::from)
            .collect();
        Ok((links, resp.has_more_rows.unwrap_or(false)))
    }
}

#[async_trait]
impl PageSource for ThriftPages {
    async fn page(&self, start_row_offset: Option<i64>) -> Result<Page> {
        let resp = fetch_page(&self.shared, self.max_rows, start_row_offset).await?;
        decode_page(&self.decode_threads, self.decoder.clone(), resp)
            .await
            .map_err(|e| self.shared.err(e))
    }

    fn closed(&self) -> bool {
        self.shared.closed.load(Ordering::Acquire)
    }
}

/// CloseOperation. An operation the server no longer knows is closed: an earlier attempt whose
/// reply was lost may have closed it, or the server dropped it.
async fn close_operation(shared: &OpShared) -> Result<()> {
    let result = shared
        .counted(
            shared
                .rpc
                .close_operation(TCloseOperationReq::new(shared.handle.clone())),
        )
        .await;
    match result {
        Err(e) if e.kind() == ErrorKind::InvalidHandle => {
            tracing::debug!(statement_id = %shared.id, "CloseOperation: the server no longer knows the operation; it is closed");
            Ok(())
        }
        other => other.map(|_| ()),
    }
}

impl Drop for Operation {
    fn drop(&mut self) {
        // Dropped rather than closed: the statement's report is not lost.
        self.shared.complete();
        if self.shared.closed.swap(true, Ordering::AcqRel) {
            return;
        }
        let Ok(runtime) = tokio::runtime::Handle::try_current() else {
            tracing::debug!(statement_id = %self.shared.id, "operation dropped outside a runtime: not closed");
            return;
        };
        let shared = self.shared.clone();
        // Keep the session alive until the operation is closed.
        let session = self.session.clone();
        let background = session.client.background.clone();
        background.spawn_on(async move {
            if let Err(e) = close_operation(&shared).await {
                tracing::debug!(statement_id = %shared.id, error = %e, "background close of a dropped operation failed");
            }
            drop(session);
        }, &runtime);
    }
}

#[cfg(all(test, feature = "mock"))]
#[path = "operation_tests.rs"]
mod tests;
