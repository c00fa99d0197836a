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

use super::catalog;
use super::cloudfetch::{self, ResultFiles};
use super::rowset::{self, ok_status};
use super::source::{BatchesSource, LimitedSource, MockRowsSource, RangeSource, RowSource};
use super::sql::{self, Statement};
use super::staging;
use super::state::{
    push_bounded, Config, Id, OpState, Operation, Outcome, Registered, Shared, SqlError, State,
    WireFormat,
};
use super::{protocol_version as pv, ParameterInfo, StatementInfo};
use crate::error::{Error, Result};
use crate::thrift::framing::{self, CallArgs};
use crate::thrift::handles::{guid_to_string, new_handle_identifier};
use crate::thrift::tcli::{
    TCancelOperationReq, TCancelOperationResp, TCloseOperationReq, TCloseOperationResp,
    TCloseSessionReq, TCloseSessionResp, TExecuteStatementReq, TExecuteStatementResp,
    TFetchOrientation, TFetchResultsReq, TFetchResultsResp, TGetCatalogsReq, TGetCatalogsResp,
    TGetColumnsReq, TGetColumnsResp, TGetCrossReferenceReq, TGetCrossReferenceResp,
    TGetFunctionsReq, TGetFunctionsResp, TGetInfoReq, TGetInfoResp, TGetInfoType, TGetInfoValue,
    TGetOperationStatusReq, TGetOperationStatusResp, TGetPrimaryKeysReq, TGetPrimaryKeysResp,
    TGetResultSetMetadataReq, TGetResultSetMetadataResp, TGetSchemasReq, TGetSchemasResp,
    TGetTableTypesReq, TGetTableTypesResp, TGetTablesReq, TGetTablesResp, TGetTypeInfoReq,
    TGetTypeInfoResp, THandleIdentifier, TOpenSessionReq, TOpenSessionResp, TOperationHandle,
    TOperationState, TOperationType, TProtocolVersion, TRowSet, TSessionHandle,
    TSparkDirectResults, TSparkGetDirectResults, TSparkParameterValue, TStatus, TStatusCode,
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
        "OpenSession" => {
            if let Some(refusal) = refuse_handshake(shared, args) {
                return framing::encode_exception(
                    m,
                    seq,
                    ApplicationErrorKind::ProtocolError,
                    refusal,
                );
            }
            run(m, seq, args, |r| async { open_session(shared, r) }).await
        }
        "CloseSession" => run(m, seq, args, |r| async { close_session(shared, r) }).await,
        "ExecuteStatement" => run(m, seq, args, |r| execute_statement(shared, r)).await,
        "GetOperationStatus" => run(m, seq, args, |r| async { operation_status(shared, r) }).await,
        "GetResultSetMetadata" => {
            run(m, seq, args, |r| async { result_set_metadata(shared, r) }).await
        }
        "FetchResults" => run(m, seq, args, |r| fetch_results(shared, r)).await,
        "CancelOperation" => run(m, seq, args, |r| async { cancel_operation(shared, r) }).await,
        "GetInfo" => run(m, seq, args, |r| async { get_info(shared, r) }).await,
        "GetCatalogs" => run(m, seq, args, |r| get_catalogs(shared, r)).await,
        "GetSchemas" => run(m, seq, args, |r| get_schemas(shared, r)).await,
        "GetTables" => run(m, seq, args, |r| get_tables(shared, r)).await,
        "GetTableTypes" => run(m, seq, args, |r| get_table_types(shared, r)).await,
        "GetColumns" => run(m, seq, args, |r| get_columns(shared, r)).await,
        "GetPrimaryKeys" => run(m, seq, args, |r| get_primary_keys(shared, r)).await,
        "GetFunctions" => run(m, seq, args, |r| get_functions(shared, r)).await,
        "GetTypeInfo" => run(m, seq, args, |r| get_type_info(shared, r)).await,
        "GetCrossReference" => run(m, seq, args, |r| get_cross_reference(shared, r)).await,
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

/// The highest `TProtocolVersion` a plain HiveServer2 knows (HIVE_CLI_SERVICE_PROTOCOL_V11).
const HIVE_V11: i32 = 10;

/// Why a plain HiveServer2 cannot even read this OpenSession, if it cannot: its IDL knows
/// protocol versions 0 to HIVE V11 only, so field 1 with any other value (a SPARK version,
/// Databricks' -7) reads as unset, and a required field that is unset fails the call before it
/// runs, answered as a Thrift application exception.
fn refuse_handshake(shared: &Shared, args: framing::CallArgs<'_>) -> Option<&'static str> {
    if shared.config.server_protocol_version >= pv::SPARK_V1 {
        return None;
    }
    let req = args.decode::<TOpenSessionReq>().ok()?;
    let known = req
        .client_protocol
        .is_some_and(|v| (0..=HIVE_V11).contains(&v.0));
    (!known).then_some(
        "Required field 'client_protocol' is unset! Struct:TOpenSessionReq(client_protocol:null)",
    )
}

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
    let configuration = req.configuration.unwrap_or_default();
    // Plain HiveServer2 reads the initial database from the configuration.
    let hive_database = configuration
        .get("use:database")
        .filter(|_| vanilla)
        .cloned();
    let session = super::state::Session {
        protocol_version: negotiated,
        catalog: ns.as_ref().and_then(|n| n.catalog_name.clone()),
        schema: ns
            .as_ref()
            .and_then(|n| n.schema_name.clone())
            .or(hive_database),
        configuration,
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

/// `SELECT <markers>`: one row of the bound parameters' text, one `STRING` column each; a
/// marker without a parameter is the error Databricks reports (`UNBOUND_SQL_PARAMETER`,
/// SQLSTATE 42P02).
fn bind_markers(
    markers: &[(sql::Marker, String)],
    params: &[ParameterInfo],
) -> std::result::Result<Result<BatchesSource>, SqlError> {
    let mut fields = Vec::with_capacity(markers.len());
    let mut columns: Vec<arrow_array::ArrayRef> = Vec::with_capacity(markers.len());
    for (marker, column) in markers {
        let bound = match marker {
            sql::Marker::Named(name) => params.iter().find(|p| {
                p.name
                    .as_deref()
                    .is_some_and(|n| n.eq_ignore_ascii_case(name))
            }),
            sql::Marker::Positional(n) => params
                .iter()
                .find(|p| p.ordinal.and_then(|o| usize::try_from(o).ok()) == Some(*n)),
        };
        let Some(bound) = bound else {
            let shown = match marker {
                sql::Marker::Named(name) => format!(":{name}"),
                sql::Marker::Positional(n) => format!("?{n}"),
            };
            let message = format!("[UNBOUND_SQL_PARAMETER] Found the unbound parameter: {shown}");
            return Err(SqlError {
                sql_state: "42P02".into(),
                display_message: message.clone(),
                message,
            });
        };
        fields.push(arrow_schema::Field::new(
            column,
            arrow_schema::DataType::Utf8,
            true,
        ));
        columns.push(Arc::new(arrow_array::StringArray::from(vec![bound
            .value
            .clone()])));
    }
    let schema = Arc::new(arrow_schema::Schema::new(fields));
    Ok(arrow_array::RecordBatch::try_new(schema.clone(), columns)
        .map_err(Error::from)
        .and_then(|batch| BatchesSource::new(schema, vec![batch])))
}

/// Rows a DML statement inserted: all of them for an `INSERT`, none otherwise.
fn inserted_rows(sql_text: &str, affected: i64) -> i64 {
    let insert = sql_text
        .trim_start()
        .get(..6)
        .is_some_and(|w| w.eq_ignore_ascii_case("insert"));
    if insert {
        affected
    } else {
        0
    }
}

/// What `sql` produces in session `sid` with `params` bound, and how long it runs beyond the
/// statement delay.
fn plan(
    st: &mut State,
    config: &Config,
    sid: &Id,
    sql_text: &str,
    params: &[ParameterInfo],
) -> (Outcome, Duration) {
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
        Statement::AllTypes => (rows(BatchesSource::all_types()), Duration::ZERO),
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
        Statement::SelectParams(markers) => match bind_markers(&markers, params) {
            Ok(src) => (rows(src), Duration::ZERO),
            Err(e) => (Outcome::Failed(e), Duration::ZERO),
        },
        Statement::Dml { rows: n } if config.dml_result_set => (
            rows(BatchesSource::dml_counts(n, inserted_rows(sql_text, n))),
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
        Statement::Staging(command) => (
            staging::plan(&mut st.staging, config, command),
            Duration::ZERO,
        ),
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

/// Whether `sql_text` is answered with a staging operation's instructions (a staging
/// statement, not a result registered for its text).
fn is_staging(st: &State, sql_text: &str) -> bool {
    !st.registered.contains_key(&sql::normalize(sql_text))
        && matches!(sql::parse(sql_text), Statement::Staging(_))
}

fn operation_handle(
    guid: THandleIdentifier,
    op_type: TOperationType,
    outcome: &Outcome,
) -> TOperationHandle {
    TOperationHandle {
        operation_id: guid,
        operation_type: op_type,
        has_result_set: matches!(outcome, Outcome::Rows(_)),
        modified_row_count: match outcome {
            Outcome::Modified(n) => Some(OrderedFloat(*n as f64)),
            _ => None,
        },
    }
}

/// The result formats a client says it can read.
#[derive(Debug, Clone, Copy, Default)]
struct FormatAsk {
    arrow: bool,
    lz4: bool,
    arrow_timestamps: bool,
    arrow_decimals: bool,
    cloudfetch: bool,
}

impl FormatAsk {
    /// What the client gets in a session of protocol `version`: Arrow from SPARK V5, LZ4 from
    /// V6, no extensions at all below SPARK V1. CloudFetch (from SPARK V3, with Arrow) is only
    /// allowed here; the result's size decides (see `launch`).
    fn grant(self, version: i32) -> WireFormat {
        let arrow = self.arrow && version >= pv::SPARK_V5;
        WireFormat {
            arrow,
            lz4: arrow && self.lz4 && version >= pv::SPARK_V6,
            arrow_timestamps: self.arrow_timestamps,
            arrow_decimals: self.arrow_decimals,
            vanilla: version < pv::SPARK_V1,
            cloudfetch: arrow && self.cloudfetch && version >= pv::SPARK_V3,
        }
    }
}

/// A new operation, as ExecuteStatement and the metadata RPCs ask for it.
struct Launch<'a> {
    session: &'a TSessionHandle,
    op_type: TOperationType,
    run_async: bool,
    timeout: Option<Duration>,
    direct: Option<&'a TSparkGetDirectResults>,
    ask: FormatAsk,
    /// The SQL text, for statements (keys the kept CloudFetch files).
    sql: Option<&'a str>,
}

/// What ExecuteStatement and the metadata RPCs answer: status, handle, direct results.
struct Launched {
    status: TStatus,
    handle: Option<TOperationHandle>,
    direct: Option<TSparkDirectResults>,
}

/// Register a new operation in its session and answer for it. `plan` decides (under the state
/// lock) what the operation produces and how long it runs beyond the statement delay; it gets
/// the session id, the operation id and the granted format.
async fn launch<F>(shared: &Arc<Shared>, l: Launch<'_>, plan: F) -> Launched
where
    F: FnOnce(&mut State, &Id, &Id, WireFormat) -> (Outcome, Duration),
{
    let now = Instant::now();
    let handle = new_handle_identifier();
    let failed = |status| Launched {
        status,
        handle: None,
        direct: None,
    };
    let Some(op_id) = id_of(&handle) else {
        return failed(error_status(None, "could not create an operation id", None));
    };
    let created = {
        let mut st = shared.lock();
        let sid = id_of(&l.session.session_id);
        let version = sid.and_then(|id| st.session(&id).map(|s| s.protocol_version));
        match (sid, version) {
            (Some(sid), Some(version)) => {
                let mut format = l.ask.grant(version);
                let (outcome, extra) = plan(&mut st, &sid, &op_id, format);
                let staging = matches!(outcome, Outcome::Rows(_))
                    && l.sql.is_some_and(|s| is_staging(&st, s));
                let cloud_files = match &outcome {
                    Outcome::Rows(src) if format.cloudfetch => {
                        cloud_files(shared, &mut st, src, format, l.sql)
                    }
                    _ => None,
                };
                format.cloudfetch = cloud_files.is_some();
                let mut op = Operation {
                    session: sid,
                    outcome: outcome.clone(),
                    format,
                    started_ms: now_ms(),
                    started: now,
                    run_time: st.knobs.statement_delay + extra,
                    polls_needed: st.knobs.running_polls,
                    polls_seen: 0,
                    timeout: l.timeout,
                    canceled: false,
                    next_offset: 0,
                    cloud_files,
                    staging,
                };
                if !l.run_async {
                    op.skip_polls();
                }
                let settles_at = op.settles_at();
                st.operations.insert(op_id, op);
                let answer_direct = shared.config.direct_results && !format.vanilla;
                Some((outcome, settles_at, answer_direct))
            }
            _ => None,
        }
    };
    let Some((outcome, settles_at, answer_direct)) = created else {
        return failed(invalid_handle("SessionHandle", &l.session.session_id.guid));
    };
    if !l.run_async {
        // A synchronous execution answers once the statement is done (or timed out).
        tokio::time::sleep_until(settles_at).await;
    }
    let direct = match l.direct.filter(|_| answer_direct) {
        Some(gdr) => direct_results(shared, op_id, gdr.max_rows, gdr.max_bytes).await,
        None => None,
    };
    Launched {
        status: ok_status(),
        handle: Some(operation_handle(handle, l.op_type, &outcome)),
        direct,
    }
}

/// The CloudFetch files of a result the client may download, when it has more rows than the
/// threshold: new, or the kept ones of an earlier execution of the same SQL in the same format.
fn cloud_files(
    shared: &Shared,
    st: &mut State,
    src: &Arc<dyn RowSource>,
    format: WireFormat,
    sql_text: Option<&str>,
) -> Option<Arc<ResultFiles>> {
    let settings = &shared.config.cloudfetch;
    if src.num_rows() <= settings.threshold_rows {
        return None;
    }
    let new = || {
        Arc::new(ResultFiles::new(
            src.clone(),
            format,
            settings.rows_per_file,
            shared.config.arrow_batch_rows,
        ))
    };
    match sql_text.filter(|_| settings.keep_files) {
        Some(text) => Some(
            st.kept_files
                .entry((sql::normalize(text), format))
                .or_insert_with(new)
                .clone(),
        ),
        None => Some(new()),
    }
}

async fn execute_statement(
    shared: &Arc<Shared>,
    req: TExecuteStatementReq,
) -> TExecuteStatementResp {
    let native = req.use_arrow_native_types.as_ref();
    let launch_req = Launch {
        session: &req.session_handle,
        op_type: TOperationType::EXECUTE_STATEMENT,
        run_async: req.run_async.unwrap_or(false),
        timeout: req
            .query_timeout
            .filter(|t| *t > 0)
            .map(|t| Duration::from_secs(t as u64)),
        direct: req.get_direct_results.as_ref(),
        ask: FormatAsk {
            arrow: req.can_read_arrow_result == Some(true),
            lz4: req.can_decompress_l_z4_result == Some(true),
            arrow_timestamps: native.and_then(|n| n.timestamp_as_arrow) == Some(true),
            arrow_decimals: native.and_then(|n| n.decimal_as_arrow) == Some(true),
            cloudfetch: req.can_download_result == Some(true),
        },
        sql: Some(&req.statement),
    };
    let launched = launch(shared, launch_req, |st, sid, op_id, format| {
        let info = StatementInfo {
            session_id: guid_to_string(sid),
            statement_id: guid_to_string(op_id),
            sql: req.statement.clone(),
            run_async: req.run_async.unwrap_or(false),
            query_timeout_secs: req.query_timeout,
            direct_results_max_rows: req.get_direct_results.as_ref().map(|g| g.max_rows),
            direct_results_max_bytes: req.get_direct_results.as_ref().and_then(|g| g.max_bytes),
            can_read_arrow: req.can_read_arrow_result == Some(true),
            can_decompress_lz4: req.can_decompress_l_z4_result == Some(true),
            can_download_result: req.can_download_result == Some(true),
            arrow_native_timestamps: format.arrow_timestamps,
            conf_overlay: req.conf_overlay.clone().unwrap_or_default(),
            parameters: req
                .parameters
                .iter()
                .flatten()
                .map(|p| ParameterInfo {
                    name: p.name.clone(),
                    ordinal: p.ordinal,
                    sql_type: p.type_.clone(),
                    value: match &p.value {
                        Some(TSparkParameterValue::StringValue(v)) => Some(v.clone()),
                        Some(TSparkParameterValue::DoubleValue(v)) => Some(v.0.to_string()),
                        Some(TSparkParameterValue::BooleanValue(v)) => Some(v.to_string()),
                        None => None,
                    },
                })
                .collect(),
            result_row_limit: req.result_row_limit,
        };
        let params = info.parameters.clone();
        push_bounded(&mut st.statements, info);
        let (outcome, runs_for) = plan(st, &shared.config, sid, &req.statement, &params);
        let outcome = match (outcome, req.result_row_limit) {
            (Outcome::Rows(src), Some(limit)) => {
                let limit = u64::try_from(limit).unwrap_or(0);
                Outcome::Rows(Arc::new(LimitedSource::new(src, limit)))
            }
            (outcome, _) => outcome,
        };
        (outcome, runs_for)
    })
    .await;
    TExecuteStatementResp {
        status: launched.status,
        operation_handle: launched.handle,
        direct_results: launched.direct,
    }
}

// -- metadata operations -----------------------------------------------------------------

/// A metadata operation's launch: column-based results (every client reads them).
fn metadata_launch<'a>(
    session: &'a TSessionHandle,
    op_type: TOperationType,
    run_async: Option<bool>,
    direct: Option<&'a TSparkGetDirectResults>,
) -> Launch<'a> {
    Launch {
        session,
        op_type,
        run_async: run_async.unwrap_or(false),
        timeout: None,
        direct,
        ask: FormatAsk::default(),
        sql: None,
    }
}

/// The outcome of a metadata result.
fn listed(r: Result<BatchesSource>) -> (Outcome, Duration) {
    let outcome = match r {
        Ok(src) => Outcome::Rows(Arc::new(src)),
        Err(e) => Outcome::Failed(SqlError {
            sql_state: "XX000".into(),
            message: e.to_string(),
            display_message: e.to_string(),
        }),
    };
    (outcome, Duration::ZERO)
}

/// One metadata RPC: launches an operation (direct results and async as the request asks) whose
/// result is `$result`, a listing of the fixed catalog built from the request `$r`.
macro_rules! metadata_rpc {
    ($name:ident, $req:ty, $resp:ident, $op:expr, |$r:ident| $result:expr) => {
        async fn $name(shared: &Arc<Shared>, $r: $req) -> $resp {
            let l = metadata_launch(
                &$r.session_handle,
                $op,
                $r.run_async,
                $r.get_direct_results.as_ref(),
            );
            let r = launch(shared, l, |_, _, _, _| listed($result)).await;
            $resp {
                status: r.status,
                operation_handle: r.handle,
                direct_results: r.direct,
            }
        }
    };
}

metadata_rpc!(
    get_catalogs,
    TGetCatalogsReq,
    TGetCatalogsResp,
    TOperationType::GET_CATALOGS,
    |req| catalog::catalogs()
);
metadata_rpc!(
    get_schemas,
    TGetSchemasReq,
    TGetSchemasResp,
    TOperationType::GET_SCHEMAS,
    |req| catalog::schemas(req.catalog_name.as_deref(), req.schema_name.as_deref())
);
metadata_rpc!(
    get_tables,
    TGetTablesReq,
    TGetTablesResp,
    TOperationType::GET_TABLES,
    |req| catalog::tables(
        req.catalog_name.as_deref(),
        req.schema_name.as_deref(),
        req.table_name.as_deref(),
        req.table_types.as_deref(),
    )
);
metadata_rpc!(
    get_table_types,
    TGetTableTypesReq,
    TGetTableTypesResp,
    TOperationType::GET_TABLE_TYPES,
    |req| catalog::table_types()
);
metadata_rpc!(
    get_columns,
    TGetColumnsReq,
    TGetColumnsResp,
    TOperationType::GET_COLUMNS,
    |req| catalog::columns(
        req.catalog_name.as_deref(),
        req.schema_name.as_deref(),
        req.table_name.as_deref(),
        req.column_name.as_deref(),
    )
);
// HiveServer2 has no operation type of its own for primary keys or foreign keys.
metadata_rpc!(
    get_primary_keys,
    TGetPrimaryKeysReq,
    TGetPrimaryKeysResp,
    TOperationType::UNKNOWN,
    |req| catalog::primary_keys(
        req.catalog_name.as_deref(),
        req.schema_name.as_deref(),
        req.table_name.as_deref(),
    )
);
metadata_rpc!(
    get_functions,
    TGetFunctionsReq,
    TGetFunctionsResp,
    TOperationType::GET_FUNCTIONS,
    |req| catalog::functions(Some(req.function_name.as_str()))
);
metadata_rpc!(
    get_cross_reference,
    TGetCrossReferenceReq,
    TGetCrossReferenceResp,
    TOperationType::UNKNOWN,
    |req| catalog::cross_reference(
        (
            req.parent_catalog_name.as_deref(),
            req.parent_schema_name.as_deref(),
            req.parent_table_name.as_deref(),
        ),
        (
            req.foreign_catalog_name.as_deref(),
            req.foreign_schema_name.as_deref(),
            req.foreign_table_name.as_deref(),
        ),
    )
);
metadata_rpc!(
    get_type_info,
    TGetTypeInfoReq,
    TGetTypeInfoResp,
    TOperationType::GET_TYPE_INFO,
    |req| catalog::type_info()
);

fn get_info(shared: &Shared, req: TGetInfoReq) -> TGetInfoResp {
    let open = id_of(&req.session_handle.session_id)
        .is_some_and(|id| shared.lock().session(&id).is_some());
    let value = match req.info_type {
        TGetInfoType::CLI_SERVER_NAME | TGetInfoType::CLI_DBMS_NAME => Some(catalog::DBMS_NAME),
        TGetInfoType::CLI_DBMS_VER => Some(catalog::DBMS_VERSION),
        _ => None,
    };
    let (status, value) = match (open, value) {
        (false, _) => (
            invalid_handle("SessionHandle", &req.session_handle.session_id.guid),
            String::new(),
        ),
        (true, None) => (
            error_status(
                None,
                &format!("Unrecognized GetInfoType value: {}", req.info_type.0),
                None,
            ),
            String::new(),
        ),
        (true, Some(v)) => (ok_status(), v.to_string()),
    };
    TGetInfoResp {
        status,
        info_value: TGetInfoValue::StringValue(value),
    }
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
        let mut metadata = rowset::metadata(&schema, format);
        metadata.is_staging_operation = op.staging.then_some(true);
        dr.result_set_metadata = Some(Box::new(metadata));
        let total = src.num_rows();
        let (page, end) = match &op.cloud_files {
            // CloudFetch: the first page of links. The operation stays open (links are
            // refreshed through it, and it holds the files).
            Some(files) => match cloudfetch::page_at(files, 0, links_per_page(shared)) {
                Ok((first, count)) => (
                    Page::Links {
                        files: files.clone(),
                        first,
                        count,
                    },
                    cloudfetch::page_end(files, first, count),
                ),
                Err(e) => (Page::Failed(e), 0),
            },
            None => {
                let n = rowset::page_rows(max_rows, max_bytes, &schema, total);
                let last = n as u64 >= total;
                if last {
                    dr.close_operation = Some(Box::new(TCloseOperationResp {
                        status: ok_status(),
                    }));
                }
                (Page::Rows { src, start: 0, n }, n as u64)
            }
        };
        op.next_offset = end;
        if dr.close_operation.is_some() {
            st.operations.remove(&op_id);
        }
        (dr, page, format, end < total)
    };
    let (mut dr, page, format, has_more) = page;
    let result_set = match answer_page(shared, &op_id, page, format).await {
        Ok(rs) => TFetchResultsResp {
            status: ok_status(),
            has_more_rows: Some(has_more),
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

/// What one page of a result holds.
enum Page {
    /// Rows `start .. start + n` of `src`.
    Rows {
        src: Arc<dyn RowSource>,
        start: u64,
        n: usize,
    },
    /// CloudFetch links to files `first .. first + count`.
    Links {
        files: Arc<ResultFiles>,
        first: usize,
        count: usize,
    },
    /// The page cannot be given (e.g. a `startRowOffset` inside a CloudFetch file).
    Failed(Error),
}

fn links_per_page(shared: &Shared) -> usize {
    shared.config.cloudfetch.links_per_page
}

/// The `TRowSet` of `page` of operation `op_id`.
async fn answer_page(
    shared: &Arc<Shared>,
    op_id: &Id,
    page: Page,
    format: WireFormat,
) -> Result<TRowSet> {
    match page {
        Page::Rows { src, start, n } => {
            encode(src, start, n, format, shared.config.arrow_batch_rows).await
        }
        Page::Links {
            files,
            first,
            count,
        } => {
            let links = cloudfetch::issue_links(shared, op_id, &files, first, count).await?;
            let start = cloudfetch::page_end(&files, first, 0);
            Ok(TRowSet {
                start_row_offset: i64::try_from(start).unwrap_or(i64::MAX),
                rows: Vec::new(),
                columns: None,
                binary_columns: None,
                column_count: None,
                arrow_batches: None,
                result_links: Some(links),
            })
        }
        Page::Failed(e) => Err(e),
    }
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
    let mut metadata = match op.rows() {
        Some(src) => rowset::metadata(&src.schema(), op.format),
        None => rowset::metadata(&arrow_schema::Schema::empty(), op.format),
    };
    metadata.is_staging_operation = op.staging.then_some(true);
    metadata
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
    let Some(op_id) = id_of(guid) else {
        return fetch_error(invalid_handle("OperationHandle", &guid.guid));
    };
    let (page, has_more, format, metadata) = {
        let mut st = shared.lock();
        let Some(op) = st.operations.get_mut(&op_id) else {
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
        let (page, end) = match op.cloud_files.as_ref().filter(|_| is_rows) {
            // CloudFetch: the page of links starting at `start` (maxRows and maxBytes do not
            // limit it), with fresh signatures and expiry times.
            Some(files) => match cloudfetch::page_at(files, start, links_per_page(shared)) {
                Ok((first, count)) => (
                    Page::Links {
                        files: files.clone(),
                        first,
                        count,
                    },
                    cloudfetch::page_end(files, first, count),
                ),
                Err(e) => return fetch_error(error_status(Some("HY000"), e.message(), None)),
            },
            None => {
                let n =
                    rowset::page_rows(req.max_rows, req.max_bytes, &src.schema(), total - start);
                (
                    Page::Rows {
                        src: src.clone(),
                        start,
                        n,
                    },
                    start + n as u64,
                )
            }
        };
        if is_rows {
            op.next_offset = end;
        }
        let has_more = !format.vanilla && end < total;
        let metadata = (req.include_result_set_metadata == Some(true))
            .then(|| rowset::metadata(&src.schema(), format));
        (page, has_more, format, metadata)
    };
    match answer_page(shared, &op_id, page, format).await {
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
