//! The Thrift side of the mock warehouse: decodes one TCLIService call, runs it against the
//! mock's state, and encodes the reply (OpenSession, CloseSession, ExecuteStatement,
//! GetOperationStatus, GetResultSetMetadata, FetchResults, CancelOperation, CloseOperation; any
//! other method answers a Thrift application exception).

use std::sync::Arc;
use std::time::{Duration, SystemTime, UNIX_EPOCH};

use bytes::Bytes;
use thrift::protocol::TSerializable;
use thrift::{ApplicationErrorKind, OrderedFloat};
use tokio::time::Instant;

use super::rowset::{self, ok_status};
use super::source::{BatchesSource, MockRowsSource, RangeSource, RowSource};
use super::sql::{self, Statement};
use super::state::{
    push_bounded, Id, OpState, Operation, Outcome, Registered, Shared, SqlError, State, WireFormat,
};
use super::{protocol_version as pv, StatementInfo};
use crate::error::{Error, Result};
use crate::thrift::framing::{self, CallArgs};
use crate::thrift::handles::{guid_to_string, new_handle_identifier};
use crate::thrift::tcli::{
    TCancelOperationReq, TCancelOperationResp, TCloseOperationReq, TCloseOperationResp,
    TCloseSessionReq, TCloseSessionResp, TExecuteStatementReq, TExecuteStatementResp,
    TFetchOrientation, TFetchResultsReq, TFetchResultsResp, TGetOperationStatusReq,
    TGetOperationStatusResp, TGetResultSetMetadataReq, TGetResultSetMetadataResp,
    THandleIdentifier, TOpenSessionReq, TOpenSessionResp, TOperationHandle, TOperationState,
    TOperationType, TProtocolVersion, TRowSet, TSessionHandle, TSparkDirectResults, TStatus,
    TStatusCode,
};

/// The catalog `current_catalog()` answers when the session never set one.
pub(crate) const DEFAULT_CATALOG: &str = "main";
/// The schema `current_schema()` answers when the session never set one.
pub(crate) const DEFAULT_SCHEMA: &str = "default";

/// Pages with more rows than this are encoded on the blocking pool, off the async workers.
const BLOCKING_ENCODE_ROWS: usize = 4_096;

/// The method name of a strict binary Thrift call, or `None` when `body` is not one.
pub(crate) fn method_name(body: &[u8]) -> Option<String> {
    framing::decode_call(body).ok().map(|(name, _, _)| name)
}

/// Run one Thrift call and encode its reply (a REPLY, or an EXCEPTION for an unknown method or
/// undecodable arguments).
pub(crate) async fn handle(shared: &Arc<Shared>, body: Bytes) -> Vec<u8> {
    let (method, seq, args) = match framing::decode_call(&body) {
        Ok(call) => call,
        Err(e) => {
            return framing::encode_exception(
                "",
                0,
                ApplicationErrorKind::ProtocolError,
                e.message(),
            )
        }
    };
    let m = method.as_str();
    match m {
        "OpenSession" => run(m, seq, args, |r| async { open_session(shared, r) }).await,
        "CloseSession" => run(m, seq, args, |r| async { close_session(shared, r) }).await,
        "ExecuteStatement" => run(m, seq, args, |r| execute_statement(shared, r)).await,
        "GetOperationStatus" => run(m, seq, args, |r| async { operation_status(shared, r) }).await,
        "GetResultSetMetadata" => {
            run(m, seq, args, |r| async { result_set_metadata(shared, r) }).await
        }
        "FetchResults" => run(m, seq, args, |r| fetch_results(shared, r)).await,
        "CancelOperation" => run(m, seq, args, |r| async { cancel_operation(shared, r) }).await,
        "CloseOperation" => run(m, seq, args, |r| async { close_operation(shared, r) }).await,
        _ => framing::encode_exception(
            m,
            seq,
            ApplicationErrorKind::UnknownMethod,
            &format!("Invalid method name: '{m}'"),
        ),
    }
}

/// Decode the request, run `f`, encode its response.
async fn run<Req, Resp, F, Fut>(method: &str, seq: i32, args: CallArgs<'_>, f: F) -> Vec<u8>
where
    Req: TSerializable,
    Resp: TSerializable,
    F: FnOnce(Req) -> Fut,
    Fut: std::future::Future<Output = Resp>,
{
    let req = match args.decode::<Req>() {
        Ok(r) => r,
        Err(e) => {
            return framing::encode_exception(
                method,
                seq,
                ApplicationErrorKind::ProtocolError,
                e.message(),
            )
        }
    };
    let resp = f(req).await;
    framing::encode_reply(method, seq, &resp).unwrap_or_else(|e| {
        framing::encode_exception(
            method,
            seq,
            ApplicationErrorKind::InternalError,
            e.message(),
        )
    })
}

// -- statuses ----------------------------------------------------------------------------

fn error_status(sql_state: Option<&str>, message: &str, display: Option<&str>) -> TStatus {
    TStatus {
        status_code: TStatusCode::ERROR_STATUS,
        sql_state: sql_state.map(str::to_string),
        error_message: Some(message.to_string()),
        display_message: display.map(str::to_string),
        ..ok_status()
    }
}

fn invalid_handle(what: &str, guid: &[u8]) -> TStatus {
    TStatus {
        status_code: TStatusCode::INVALID_HANDLE_STATUS,
        error_message: Some(format!("Invalid {what}: {}", guid_to_string(guid))),
        ..ok_status()
    }
}

fn id_of(h: &THandleIdentifier) -> Option<Id> {
    h.guid.as_slice().try_into().ok()
}

fn now_ms() -> i64 {
    SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .map(|d| d.as_millis() as i64)
        .unwrap_or(0)
}

// -- sessions ----------------------------------------------------------------------------

fn open_session(shared: &Shared, req: TOpenSessionReq) -> TOpenSessionResp {
    let server = shared.config.server_protocol_version;
    let vanilla_server = server < pv::SPARK_V1;
    // A vanilla HiveServer2 reads field 1 only; a Databricks server prefers the i64 field.
    let client = if vanilla_server {
        req.client_protocol.map(|v| i64::from(v.0))
    } else {
        req.client_protocol_i64
            .or(req.client_protocol.map(|v| i64::from(v.0)))
    };
    let mut resp = TOpenSessionResp {
        status: ok_status(),
        server_protocol_version: TProtocolVersion(server),
        session_handle: None,
        configuration: None,
        get_infos: None,
        initial_namespace: None,
        can_use_multiple_catalogs: None,
    };
    let Some(client) = client.filter(|v| *v >= 0) else {
        resp.status = error_status(None, "Required field 'client_protocol' is unset!", None);
        return resp;
    };
    let negotiated = client.min(i64::from(server)) as i32;
    let handle = new_handle_identifier();
    let Some(id) = id_of(&handle) else {
        resp.status = error_status(None, "could not create a session id", None);
        return resp;
    };
    let vanilla = negotiated < pv::SPARK_V1;
    let ns = req.initial_namespace.filter(|_| !vanilla);
    let session = super::state::Session {
        protocol_version: negotiated,
        configuration: req.configuration.unwrap_or_default(),
        catalog: ns.as_ref().and_then(|n| n.catalog_name.clone()),
        schema: ns.as_ref().and_then(|n| n.schema_name.clone()),
        closed: false,
    };
    {
        let mut st = shared.lock();
        st.sessions.insert(id, session);
        st.session_log.push(id);
    }
    resp.server_protocol_version = TProtocolVersion(negotiated);
    resp.session_handle = Some(TSessionHandle { session_id: handle });
    if !vanilla {
        resp.initial_namespace = ns;
        resp.can_use_multiple_catalogs = (req.can_use_multiple_catalogs == Some(true)
            && negotiated >= pv::SPARK_V4)
            .then_some(true);
    }
    resp
}

fn close_session(shared: &Shared, req: TCloseSessionReq) -> TCloseSessionResp {
    let guid = &req.session_handle.session_id;
    let closed = id_of(guid).is_some_and(|id| shared.lock().close_session(&id));
    TCloseSessionResp {
        status: if closed {
            ok_status()
        } else {
            invalid_handle("SessionHandle", &guid.guid)
        },
    }
}

// -- statements --------------------------------------------------------------------------

/// What `sql` produces in session `sid`, and how long it runs beyond the statement delay.
fn plan(st: &mut State, sid: &Id, sql_text: &str) -> (Outcome, Duration) {
    if let Some(r) = st.registered.get(&sql::normalize(sql_text)) {
        return match r {
            Registered::Rows(src) => (Outcome::Rows(src.clone()), Duration::ZERO),
            Registered::Error(e) => (Outcome::Failed(e.clone()), Duration::ZERO),
        };
    }
    let rows = |r: Result<BatchesSource>| match r {
        Ok(src) => Outcome::Rows(Arc::new(src)),
        Err(e) => Outcome::Failed(SqlError {
            sql_state: "XX000".into(),
            message: e.to_string(),
            display_message: e.to_string(),
        }),
    };
    let (catalog, schema) = st
        .session(sid)
        .map(|s| (s.catalog.clone(), s.schema.clone()))
        .unwrap_or_default();
    match sql::parse(sql_text) {
        Statement::SelectInt { text, value } => {
            (rows(BatchesSource::select_int(&text, value)), Duration::ZERO)
        }
        Statement::Range { start, end } => (
            Outcome::Rows(Arc::new(RangeSource::new(start, end))),
            Duration::ZERO,
        ),
        Statement::MockRows(n) => (
            Outcome::Rows(Arc::new(MockRowsSource::new(n))),
            Duration::ZERO,
        ),
        Statement::Sleep(ms) => {
            let name = format!("sleep({ms})");
            let value = i64::try_from(ms).unwrap_or(i64::MAX);
            let src = BatchesSource::single(
                &name,
                arrow_schema::DataType::Int64,
                Arc::new(arrow_array::Int64Array::from(vec![value])),
            );
            (rows(src), Duration::from_millis(ms))
        }
        Statement::CurrentCatalog => (
            rows(BatchesSource::string(
                "current_catalog()",
                Some(catalog.as_deref().unwrap_or(DEFAULT_CATALOG)),
            )),
            Duration::ZERO,
        ),
        Statement::CurrentSchema => (
            rows(BatchesSource::string(
                "current_schema()",
                Some(schema.as_deref().unwrap_or(DEFAULT_SCHEMA)),
            )),
            Duration::ZERO,
        ),
        Statement::Dml { rows: n } => (Outcome::Modified(n), Duration::ZERO),
        Statement::Use {
            catalog: c,
            schema: s,
        } => {
            if let Some(session) = st.session(sid) {
                if c.is_some() {
                    session.catalog = c;
                }
                if s.is_some() {
                    session.schema = s;
                }
            }
            (Outcome::NoResult, Duration::ZERO)
        }
        Statement::Command => (Outcome::NoResult, Duration::ZERO),
        Statement::UnknownTable(name) => (
            Outcome::Failed(SqlError {
                sql_state: "42P01".into(),
                message: format!(
                    "[TABLE_OR_VIEW_NOT_FOUND] The mock warehouse has no table or view named `{name}`."
                ),
                display_message: format!("Table or view not found: {name}"),
            }),
            Duration::ZERO,
        ),
        Statement::Syntax(detail) => (
            Outcome::Failed(SqlError {
                sql_state: "42601".into(),
                message: format!("[PARSE_SYNTAX_ERROR] Syntax error: {detail}"),
                display_message: format!("Syntax error: {detail}"),
            }),
            Duration::ZERO,
        ),
    }
}

fn operation_handle(guid: THandleIdentifier, outcome: &Outcome) -> TOperationHandle {
    TOperationHandle {
        operation_id: guid,
        operation_type: TOperationType::EXECUTE_STATEMENT,
        has_result_set: matches!(outcome, Outcome::Rows(_)),
        modified_row_count: match outcome {
            Outcome::Modified(n) => Some(OrderedFloat(*n as f64)),
            _ => None,
        },
    }
}

async fn execute_statement(
    shared: &Arc<Shared>,
    req: TExecuteStatementReq,
) -> TExecuteStatementResp {
    let now = Instant::now();
    let session_guid = req.session_handle.session_id.clone();
    let run_async = req.run_async.unwrap_or(false);
    let handle = new_handle_identifier();
    let Some(op_id) = id_of(&handle) else {
        return TExecuteStatementResp {
            status: error_status(None, "could not create an operation id", None),
            operation_handle: None,
            direct_results: None,
        };
    };
    let created = {
        let mut st = shared.lock();
        create_operation(&mut st, shared, &req, op_id, now)
    };
    let Some((outcome, settles_at, answer_direct)) = created else {
        return TExecuteStatementResp {
            status: invalid_handle("SessionHandle", &session_guid.guid),
            operation_handle: None,
            direct_results: None,
        };
    };
    if !run_async {
        // A synchronous execution answers once the statement is done (or timed out).
        tokio::time::sleep_until(settles_at).await;
    }
    let mut resp = TExecuteStatementResp {
        status: ok_status(),
        operation_handle: Some(operation_handle(handle, &outcome)),
        direct_results: None,
    };
    if let Some(gdr) = req.get_direct_results.as_ref().filter(|_| answer_direct) {
        resp.direct_results = direct_results(shared, op_id, gdr.max_rows, gdr.max_bytes).await;
    }
    resp
}

/// Register the operation of `req` in its session; `None` when the session is unknown.
fn create_operation(
    st: &mut State,
    shared: &Shared,
    req: &TExecuteStatementReq,
    op_id: Id,
    now: Instant,
) -> Option<(Outcome, Instant, bool)> {
    let sid = id_of(&req.session_handle.session_id)?;
    let version = st.session(&sid)?.protocol_version;
    let (outcome, extra) = plan(st, &sid, &req.statement);
    let run_async = req.run_async.unwrap_or(false);
    let native = req.use_arrow_native_types.as_ref();
    let arrow = req.can_read_arrow_result == Some(true) && version >= pv::SPARK_V5;
    let format = WireFormat {
        arrow,
        lz4: arrow && req.can_decompress_l_z4_result == Some(true) && version >= pv::SPARK_V6,
        arrow_timestamps: native.and_then(|n| n.timestamp_as_arrow) == Some(true),
        arrow_decimals: native.and_then(|n| n.decimal_as_arrow) == Some(true),
        vanilla: version < pv::SPARK_V1,
    };
    let mut op = Operation {
        session: sid,
        outcome: outcome.clone(),
        format,
        started_ms: now_ms(),
        started: now,
        run_time: st.knobs.statement_delay + extra,
        polls_needed: if run_async { st.knobs.running_polls } else { 0 },
        polls_seen: 0,
        timeout: req
            .query_timeout
            .filter(|t| *t > 0)
            .map(|t| Duration::from_secs(t as u64)),
        canceled: false,
        next_offset: 0,
    };
    if !run_async {
        op.skip_polls();
    }
    let settles_at = op.settles_at();
    let gdr = req
        .get_direct_results
        .as_ref()
        .filter(|_| shared.config.direct_results && !format.vanilla);
    let info = StatementInfo {
        session_id: guid_to_string(&sid),
        statement_id: guid_to_string(&op_id),
        sql: req.statement.clone(),
        run_async,
        query_timeout_secs: req.query_timeout,
        direct_results_max_rows: req.get_direct_results.as_ref().map(|g| g.max_rows),
        direct_results_max_bytes: req.get_direct_results.as_ref().and_then(|g| g.max_bytes),
        can_read_arrow: req.can_read_arrow_result == Some(true),
        can_decompress_lz4: req.can_decompress_l_z4_result == Some(true),
        can_download_result: req.can_download_result == Some(true),
        arrow_native_timestamps: format.arrow_timestamps,
        conf_overlay: req.conf_overlay.clone().unwrap_or_default(),
    };
    push_bounded(&mut st.statements, info);
    st.operations.insert(op_id, op);
    Some((outcome, settles_at, gdr.is_some()))
}

/// The direct results of operation `op_id`: its status, and when it is FINISHED its metadata and
/// first page, closing it when that page holds every row (or it has no result set).
async fn direct_results(
    shared: &Arc<Shared>,
    op_id: Id,
    max_rows: i64,
    max_bytes: Option<i64>,
) -> Option<TSparkDirectResults> {
    let now = Instant::now();
    let page = {
        let mut st = shared.lock();
        let op = st.operations.get_mut(&op_id)?;
        let state = op.state(now);
        let status = status_response(op, state);
        let mut dr = TSparkDirectResults {
            operation_status: Some(Box::new(status)),
            result_set_metadata: None,
            result_set: None,
            close_operation: None,
        };
        if state != OpState::Finished {
            return Some(dr);
        }
        // A statement without a result set still answers (empty) metadata and a first page,
        // as clients read both from direct results whenever the statement is finished.
        let src: Arc<dyn RowSource> = match op.rows() {
            Some(src) => src.clone(),
            None => Arc::new(BatchesSource::empty(
                Arc::new(arrow_schema::Schema::empty()),
            )),
        };
        let format = op.format;
        let schema = src.schema();
        dr.result_set_metadata = Some(Box::new(rowset::metadata(&schema, format)));
        let total = src.num_rows();
        let n = rowset::page_rows(max_rows, max_bytes, &schema, total);
        op.next_offset = n as u64;
        let last = n as u64 >= total;
        if last {
            st.operations.remove(&op_id);
            dr.close_operation = Some(Box::new(TCloseOperationResp {
                status: ok_status(),
            }));
        }
        (dr, src, format, n, last)
    };
    let (mut dr, src, format, n, last) = page;
    let batch_rows = shared.config.arrow_batch_rows;
    let result_set = match encode(src, 0, n, format, batch_rows).await {
        Ok(rs) => TFetchResultsResp {
            status: ok_status(),
            has_more_rows: Some(!last),
            results: Some(rs),
            result_set_metadata: None,
        },
        Err(e) => TFetchResultsResp {
            status: error_status(Some("XX000"), e.message(), None),
            has_more_rows: None,
            results: None,
            result_set_metadata: None,
        },
    };
    dr.result_set = Some(Box::new(result_set));
    Some(dr)
}

/// Encode a page, on the blocking pool when it is large.
async fn encode(
    src: Arc<dyn RowSource>,
    start: u64,
    rows: usize,
    format: WireFormat,
    batch_rows: usize,
) -> Result<TRowSet> {
    if rows <= BLOCKING_ENCODE_ROWS {
        return rowset::encode_page(src.as_ref(), start, rows, format, batch_rows);
    }
    tokio::task::spawn_blocking(move || {
        rowset::encode_page(src.as_ref(), start, rows, format, batch_rows)
    })
    .await
    .map_err(|e| Error::decode(format!("encoding a page failed: {e}")))?
}

// -- operation status --------------------------------------------------------------------

fn thrift_state(s: OpState) -> TOperationState {
    match s {
        OpState::Pending => TOperationState::PENDING_STATE,
        OpState::Running => TOperationState::RUNNING_STATE,
        OpState::Finished => TOperationState::FINISHED_STATE,
        OpState::Canceled => TOperationState::CANCELED_STATE,
        OpState::Error => TOperationState::ERROR_STATE,
        OpState::TimedOut => TOperationState::TIMEDOUT_STATE,
    }
}

fn status_response(op: &Operation, state: OpState) -> TGetOperationStatusResp {
    let vanilla = op.format.vanilla;
    let mut resp = TGetOperationStatusResp {
        status: ok_status(),
        operation_state: Some(thrift_state(state)),
        sql_state: None,
        error_code: None,
        error_message: None,
        task_status: None,
        operation_started: Some(op.started_ms),
        operation_completed: state.is_terminal().then(now_ms),
        has_result_set: Some(op.rows().is_some()),
        progress_update_response: None,
        num_modified_rows: None,
        display_message: None,
        diagnostic_info: None,
        error_details_json: None,
    };
    match (state, &op.outcome) {
        (OpState::Error, Outcome::Failed(e)) => {
            resp.sql_state = Some(e.sql_state.clone());
            resp.error_message = Some(e.message.clone());
            if !vanilla {
                resp.display_message = Some(e.display_message.clone());
            }
        }
        (OpState::TimedOut, _) => {
            let secs = op.timeout.map(|t| t.as_secs()).unwrap_or(0);
            resp.error_message = Some(format!(
                "The statement was cancelled because it ran longer than its query timeout of {secs} s."
            ));
        }
        (OpState::Canceled, _) => {
            resp.error_message = Some("The statement was cancelled.".into());
        }
        (OpState::Finished, Outcome::Modified(n)) => resp.num_modified_rows = Some(*n),
        _ => {}
    }
    resp
}

fn operation_status(shared: &Shared, req: TGetOperationStatusReq) -> TGetOperationStatusResp {
    let guid = &req.operation_handle.operation_id;
    let mut st = shared.lock();
    match id_of(guid).and_then(|id| st.operations.get_mut(&id)) {
        Some(op) => {
            let state = op.poll(Instant::now());
            status_response(op, state)
        }
        None => TGetOperationStatusResp {
            status: invalid_handle("OperationHandle", &guid.guid),
            operation_state: None,
            sql_state: None,
            error_code: None,
            error_message: None,
            task_status: None,
            operation_started: None,
            operation_completed: None,
            has_result_set: None,
            progress_update_response: None,
            num_modified_rows: None,
            display_message: None,
            diagnostic_info: None,
            error_details_json: None,
        },
    }
}

// -- results -----------------------------------------------------------------------------

fn empty_metadata(status: TStatus) -> TGetResultSetMetadataResp {
    TGetResultSetMetadataResp {
        status,
        schema: None,
        result_format: None,
        lz4_compressed: None,
        arrow_schema: None,
        cache_lookup_result: None,
        uncompressed_bytes: None,
        compressed_bytes: None,
        is_staging_operation: None,
    }
}

/// The error status for an operation that cannot give results in `state`, if any.
fn not_fetchable(op: &Operation, state: OpState) -> Option<TStatus> {
    match (state, &op.outcome) {
        (OpState::Error, Outcome::Failed(e)) => Some(error_status(
            Some(&e.sql_state),
            &e.message,
            Some(&e.display_message),
        )),
        (OpState::Canceled, _) => Some(error_status(
            Some("HY008"),
            "The statement was cancelled.",
            None,
        )),
        (OpState::TimedOut, _) => Some(error_status(
            Some("HYT00"),
            "The statement ran longer than its query timeout.",
            None,
        )),
        _ => None,
    }
}

fn result_set_metadata(
    shared: &Shared,
    req: TGetResultSetMetadataReq,
) -> TGetResultSetMetadataResp {
    let guid = &req.operation_handle.operation_id;
    let st = shared.lock();
    let Some(op) = id_of(guid).and_then(|id| st.operations.get(&id)) else {
        return empty_metadata(invalid_handle("OperationHandle", &guid.guid));
    };
    if let Some(status) = not_fetchable(op, op.state(Instant::now())) {
        return empty_metadata(status);
    }
    match op.rows() {
        Some(src) => rowset::metadata(&src.schema(), op.format),
        None => rowset::metadata(&arrow_schema::Schema::empty(), op.format),
    }
}

fn fetch_error(status: TStatus) -> TFetchResultsResp {
    TFetchResultsResp {
        status,
        has_more_rows: None,
        results: None,
        result_set_metadata: None,
    }
}

async fn fetch_results(shared: &Arc<Shared>, req: TFetchResultsReq) -> TFetchResultsResp {
    let guid = &req.operation_handle.operation_id;
    let (src, start, n, has_more, format, metadata) = {
        let mut st = shared.lock();
        let Some(op) = id_of(guid).and_then(|id| st.operations.get_mut(&id)) else {
            return fetch_error(invalid_handle("OperationHandle", &guid.guid));
        };
        let state = op.state(Instant::now());
        if let Some(status) = not_fetchable(op, state) {
            return fetch_error(status);
        }
        if state != OpState::Finished {
            return fetch_error(error_status(
                Some("HY010"),
                &format!(
                    "The statement is not finished yet (state {state:?}): poll GetOperationStatus until it is FINISHED."
                ),
                None,
            ));
        }
        let orientation = req.orientation;
        if orientation != TFetchOrientation::FETCH_NEXT
            && orientation != TFetchOrientation::FETCH_FIRST
        {
            return fetch_error(error_status(
                Some("HY106"),
                &format!(
                    "Fetch orientation {} is not supported; use FETCH_NEXT.",
                    orientation.0
                ),
                None,
            ));
        }
        let format = op.format;
        // No result set, or fetchType 1 (the operation log, which the mock does not keep):
        // an empty page.
        let rows = op
            .rows()
            .filter(|_| req.fetch_type.unwrap_or(0) == 0)
            .cloned();
        let is_rows = rows.is_some();
        let src: Arc<dyn RowSource> = match rows {
            Some(src) => src,
            None => Arc::new(BatchesSource::empty(
                op.rows()
                    .map(|s| s.schema())
                    .unwrap_or_else(|| Arc::new(arrow_schema::Schema::empty())),
            )),
        };
        let total = src.num_rows();
        let start = match req.start_row_offset {
            Some(o) if o >= 0 => o as u64,
            _ if orientation == TFetchOrientation::FETCH_FIRST => 0,
            _ => op.next_offset,
        }
        .min(total);
        let n = rowset::page_rows(req.max_rows, req.max_bytes, &src.schema(), total - start);
        if is_rows {
            op.next_offset = start + n as u64;
        }
        let has_more = !format.vanilla && start + (n as u64) < total;
        let metadata = (req.include_result_set_metadata == Some(true))
            .then(|| rowset::metadata(&src.schema(), format));
        (src, start, n, has_more, format, metadata)
    };
    match encode(src, start, n, format, shared.config.arrow_batch_rows).await {
        Ok(rs) => TFetchResultsResp {
            status: ok_status(),
            has_more_rows: Some(has_more),
            results: Some(rs),
            result_set_metadata: metadata,
        },
        Err(e) => fetch_error(error_status(Some("XX000"), e.message(), None)),
    }
}

// -- ending operations -------------------------------------------------------------------

fn cancel_operation(shared: &Shared, req: TCancelOperationReq) -> TCancelOperationResp {
    let guid = &req.operation_handle.operation_id;
    let mut st = shared.lock();
    let status = match id_of(guid).and_then(|id| st.operations.get_mut(&id)) {
        Some(op) => {
            if !op.state(Instant::now()).is_terminal() {
                op.canceled = true;
            }
            ok_status()
        }
        None => invalid_handle("OperationHandle", &guid.guid),
    };
    TCancelOperationResp { status }
}

fn close_operation(shared: &Shared, req: TCloseOperationReq) -> TCloseOperationResp {
    let guid = &req.operation_handle.operation_id;
    let removed = id_of(guid).and_then(|id| shared.lock().operations.remove(&id));
    TCloseOperationResp {
        status: match removed {
            Some(_) => ok_status(),
            None => invalid_handle("OperationHandle", &guid.guid),
        },
    }
}
