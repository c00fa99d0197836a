//! [`Session`]: one TCLIService session: opened with a negotiated protocol version, runs
//! statements, and is closed explicitly or, best effort, in the background when dropped.

use std::collections::BTreeMap;
use std::future::Future;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, Mutex, PoisonError, Weak};

use arrow_array::{Array, RecordBatch};
use tokio::time::Instant;

use crate::client::ClientInner;
use crate::config::{
    query_tags_text, EffectiveExecuteOptions, ExecuteOptions, SessionOptions, STATEMENT_QUERY_TAGS,
};
use crate::error::{Error, ErrorKind, Result};
use crate::operation::Operation;
use crate::params::Params;
use crate::telemetry::{OperationType, PendingStatement, StatementRecorder, TelemetryEventEmitter};
use crate::thrift::handles::guid_to_string;
use crate::thrift::rpc::{counting_retries, ThriftClient};
use crate::thrift::tcli::{
    TCloseSessionReq, TExecuteStatementReq, TGetCatalogsReq, TGetColumnsReq, TGetCrossReferenceReq,
    TGetFunctionsReq, TGetInfoReq, TGetInfoType, TGetInfoValue, TGetPrimaryKeysReq, TGetSchemasReq,
    TGetTableTypesReq, TGetTablesReq, TGetTypeInfoReq, TNamespace, TOpenSessionReq,
    TOperationHandle, TProtocolVersion, TSessionHandle, TSparkArrowTypes, TSparkDirectResults,
    TSparkGetDirectResults,
};

/// What a server says it is ([`Session::server_info`]).
#[derive(Debug, Clone, PartialEq, Eq)]
#[non_exhaustive]
pub struct ServerInfo {
    /// The server's name (GetInfo `CLI_SERVER_NAME`), e.g. `Spark SQL`.
    pub server_name: String,
    /// The database system's name (GetInfo `CLI_DBMS_NAME`).
    pub dbms_name: String,
    /// The database system's version (GetInfo `CLI_DBMS_VER`).
    pub dbms_version: String,
}

/// The protocol version the driver asks for (SPARK_CLI_SERVICE_PROTOCOL_V8).
pub(crate) const CLIENT_PROTOCOL: TProtocolVersion =
    TProtocolVersion::SPARK_CLI_SERVICE_PROTOCOL_V8;

/// An open session on the warehouse. `Send + Sync`; statements of one session may run
/// concurrently. Close it with [`close`](Session::close); dropping it closes it in the background.
pub struct Session {
    inner: Arc<SessionInner>,
}

/// What a session and its operations share; dropping the last reference closes the session.
pub(crate) struct SessionInner {
    pub(crate) client: Arc<ClientInner>,
    pub(crate) handle: TSessionHandle,
    pub(crate) id: String,
    pub(crate) server_protocol: TProtocolVersion,
    /// Reports the session's life to the host's telemetry (absent when it is off).
    pub(crate) emitter: TelemetryEventEmitter,
    /// The statements of this session still measuring: closing the session ends their report.
    statements: Mutex<Vec<Weak<StatementRecorder>>>,
    closed: AtomicBool,
}

impl std::fmt::Debug for Session {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Session")
            .field("id", &self.inner.id)
            .field("server_protocol", &self.inner.server_protocol.0)
            .field("closed", &self.inner.closed.load(Ordering::Relaxed))
            .finish()
    }
}

impl SessionInner {
    /// Whether the server speaks at least `version` (a SPARK_CLI_SERVICE_PROTOCOL_Vn).
    pub(crate) fn supports(&self, version: TProtocolVersion) -> bool {
        is_spark(self.server_protocol) && self.server_protocol.0 >= version.0
    }
}

/// The protocol version sent to a server that refused the Databricks handshake
/// (HIVE_CLI_SERVICE_PROTOCOL_V10: known to HiveServer2 since Hive 2.3, the Spark Thrift Server
/// and Kyuubi).
pub(crate) const HIVE_CLIENT_PROTOCOL: TProtocolVersion =
    TProtocolVersion::HIVE_CLI_SERVICE_PROTOCOL_V10;

/// The session configuration key HiveServer2 reads the initial database from.
const HIVE_USE_DATABASE: &str = "use:database";

/// OpenSession as a Databricks server expects it: SPARK V8 in both protocol fields, the
/// initial namespace, multiple catalogs.
fn databricks_open_request(
    configuration: BTreeMap<String, String>,
    catalog: Option<String>,
    schema: Option<String>,
) -> TOpenSessionReq {
    let namespace =
        (catalog.is_some() || schema.is_some()).then(|| TNamespace::new(catalog, schema));
    TOpenSessionReq::new(
        CLIENT_PROTOCOL,
        None::<String>,
        None::<String>,
        (!configuration.is_empty()).then_some(configuration),
        None,
        Some(i64::from(CLIENT_PROTOCOL.0)),
        None,
        namespace,
        Some(true),
    )
}

/// OpenSession as plain HiveServer2 expects it: [`HIVE_CLIENT_PROTOCOL`] in field 1 and no
/// Databricks field; the schema goes in the configuration as `use:database`. HiveServer2 has
/// no catalogs: a catalog is a [`Config`](ErrorKind::Config) error (the statements would
/// otherwise run against another catalog's tables).
fn hive_open_request(
    mut configuration: BTreeMap<String, String>,
    catalog: Option<&str>,
    schema: Option<&str>,
) -> Result<TOpenSessionReq> {
    if let Some(catalog) = catalog {
        return Err(Error::config(format!(
            "the server speaks plain HiveServer2, which has no catalogs: the catalog {catalog:?} cannot be used (leave it unset; a schema can be set)"
        )));
    }
    if let Some(schema) = schema {
        configuration.insert(HIVE_USE_DATABASE.to_string(), schema.to_string());
    }
    Ok(TOpenSessionReq::new(
        HIVE_CLIENT_PROTOCOL,
        None::<String>,
        None::<String>,
        (!configuration.is_empty()).then_some(configuration),
        None,
        None,
        None,
        None,
        None,
    ))
}

/// Whether OpenSession failed the way a plain HiveServer2 server refuses the Databricks
/// handshake: it cannot read the SPARK protocol version in field 1 and says so (`Required field
/// 'client_protocol' is unset!`), as a Thrift application exception or as an error status. Any
/// other failure (an internal error, an overloaded gateway) is not a refusal of the handshake.
fn refuses_databricks_handshake(e: &Error) -> bool {
    const REFUSAL: &str = "Required field 'client_protocol' is unset";
    (e.is_application_exception() || e.kind() == ErrorKind::Server) && e.message().contains(REFUSAL)
}

/// The column a Databricks warehouse reports the rows a DML statement affected in.
const NUM_AFFECTED_ROWS: &str = "num_affected_rows";

/// The rows a statement affected according to its result set, read batch by batch: the sum of
/// a first column `num_affected_rows` of type BIGINT, else the number of rows; `None` when the
/// statement has no result set.
async fn count_affected(op: &mut Operation) -> Result<Option<u64>> {
    let mut total: Option<u64> = None;
    while let Some(batch) = op.next_batch().await? {
        let counts = batch
            .schema()
            .fields()
            .first()
            .filter(|f| f.name() == NUM_AFFECTED_ROWS)
            .and_then(|_| {
                batch
                    .column(0)
                    .as_any()
                    .downcast_ref::<arrow_array::Int64Array>()
            })
            .cloned();
        let n = match counts {
            Some(counts) => counts
                .iter()
                .flatten()
                .map(|n| u64::try_from(n).unwrap_or(0))
                .fold(0u64, u64::saturating_add),
            None => batch.num_rows() as u64,
        };
        total = Some(total.unwrap_or(0).saturating_add(n));
    }
    if total.is_none() && op.has_result_set() {
        total = Some(0);
    }
    Ok(total)
}

/// A protocol version's name for messages: `SPARK V8`, `HIVE V10`.
fn protocol_name(v: TProtocolVersion) -> String {
    if is_spark(v) {
        format!(
            "SPARK V{}",
            v.0 - TProtocolVersion::SPARK_CLI_SERVICE_PROTOCOL_V1.0 + 1
        )
    } else {
        format!("HIVE V{} (plain HiveServer2)", v.0 + 1)
    }
}

fn is_spark(v: TProtocolVersion) -> bool {
    v.0 >= TProtocolVersion::SPARK_CLI_SERVICE_PROTOCOL_V1.0
}

/// CloseSession, its latency reported as the session's `DELETE_SESSION`.
pub(crate) async fn close_session_handle(
    rpc: &ThriftClient,
    handle: TSessionHandle,
    emitter: &TelemetryEventEmitter,
    session_id: &str,
) -> Result<()> {
    let started = Instant::now();
    let result = match rpc.close_session(TCloseSessionReq::new(handle)).await {
        // A session the server no longer knows is closed: an earlier attempt whose reply was
        // lost may have closed it, or the server expired it.
        Err(e) if e.kind() == ErrorKind::InvalidHandle => {
            tracing::debug!(
                session_id,
                "CloseSession: the server no longer knows the session; it is closed"
            );
            Ok(())
        }
        other => other.map(|_| ()),
    };
    match &result {
        Ok(_) => emitter.emit_connection_close(session_id, started.elapsed()),
        Err(e) => emitter.emit_error(e, Some(session_id), None),
    }
    result
}

impl Session {
    pub(crate) async fn open(client: Arc<ClientInner>, options: SessionOptions) -> Result<Session> {
        // The session's own catalog and schema win over the client's.
        let catalog = options
            .catalog
            .clone()
            .or_else(|| client.config.catalog.clone());
        let schema = options
            .schema
            .clone()
            .or_else(|| client.config.schema.clone());
        let configuration = options.effective_configuration()?;
        let plain_hive = client.speaks_plain_hive();
        let request = if plain_hive {
            hive_open_request(configuration.clone(), catalog.as_deref(), schema.as_deref())
        } else {
            Ok(databricks_open_request(
                configuration.clone(),
                catalog.clone(),
                schema.clone(),
            ))
        };
        let started = Instant::now();
        let mut opened = match request {
            Ok(request) => client.rpc.open_session(request).await,
            Err(e) => Err(e),
        };
        if !plain_hive {
            opened = match opened {
                Err(refused) if refuses_databricks_handshake(&refused) => {
                    tracing::info!(
                        "the server refused the Databricks handshake: opening the session as plain HiveServer2 (protocol HIVE V10)"
                    );
                    let fallback = match hive_open_request(
                        configuration,
                        catalog.as_deref(),
                        schema.as_deref(),
                    ) {
                        Ok(request) => client.rpc.open_session(request).await,
                        Err(e) => Err(e),
                    };
                    match fallback {
                        Ok(resp) => {
                            client.set_speaks_plain_hive();
                            Ok(resp)
                        }
                        // The server's first answer stays the error; the second one says why
                        // the HiveServer2 handshake did not help.
                        Err(e) => Err(refused.with_message_suffix(&format!(
                            " (opening the session as plain HiveServer2 failed too: {})",
                            e.message()
                        ))),
                    }
                }
                other => other,
            };
        }
        let opened = opened.and_then(|resp| {
            resp.session_handle
                .map(|handle| (handle, resp.server_protocol_version))
                .ok_or_else(|| Error::protocol("the OpenSession reply has no session handle"))
        });
        let (handle, server_protocol) = match opened {
            Ok(opened) => opened,
            Err(e) => {
                client.telemetry.connect_failed(&e);
                return Err(e);
            }
        };
        let id = guid_to_string(&handle.session_id.guid);
        // A plain HiveServer2 server has no telemetry or feature-flag endpoints: nothing is
        // sent there.
        let emitter = if client.speaks_plain_hive() {
            TelemetryEventEmitter::disabled()
        } else {
            client.telemetry.connected()
        };
        emitter.emit_connection_open(&id, started.elapsed());
        tracing::debug!(session_id = %id, server_protocol = server_protocol.0, "session opened");
        let inner = Arc::new(SessionInner {
            client: client.clone(),
            handle,
            id,
            server_protocol,
            emitter,
            statements: Mutex::new(Vec::new()),
            closed: AtomicBool::new(false),
        });
        client.register_session(&inner.id, Arc::downgrade(&inner));
        Ok(Session { inner })
    }

    /// The session id (UUID text of the session handle).
    pub fn id(&self) -> &str {
        &self.inner.id
    }

    /// The protocol version the server negotiated (a `TProtocolVersion` value; Databricks
    /// warehouses answer SPARK_CLI_SERVICE_PROTOCOL_V3..V9 = 0xA503..0xA509).
    pub fn server_protocol_version(&self) -> i32 {
        self.inner.server_protocol.0
    }

    /// Run a query with `params` (see [`params!`](crate::params!); `params![]` for none) and
    /// read its whole result; the operation is closed before this returns.
    ///
    /// ```no_run
    /// # async fn demo(session: &databricks_sql::Session) -> databricks_sql::Result<()> {
    /// use databricks_sql::params;
    /// let batches = session
    ///     .query("SELECT * FROM orders WHERE id = :id", params![id => 42_i64])
    ///     .await?;
    /// # Ok(()) }
    /// ```
    pub async fn query(&self, sql: &str, params: Params) -> Result<Vec<RecordBatch>> {
        let mut op = self
            .execute_statement_with(sql, ExecuteOptions::new().params(params))
            .await?;
        let batches = op.fetch_all().await;
        let closed = op.close().await;
        let batches = batches?;
        closed?;
        Ok(batches)
    }

    /// Run a statement with `params` (`params![]` for none) to its end and return the rows it
    /// affected: the `num_affected_rows` column a Databricks warehouse returns for DML (a first
    /// column of that name, BIGINT); for another result set, the number of rows it returned
    /// (read batch by batch, never held whole); without a result set, the server's
    /// modified-row count (0 when it sends none). The operation is closed before this returns.
    ///
    /// ```no_run
    /// # async fn demo(session: &databricks_sql::Session) -> databricks_sql::Result<()> {
    /// use databricks_sql::params;
    /// let n = session
    ///     .execute("DELETE FROM orders WHERE day < :day", params![day => "2020-01-01"])
    ///     .await?;
    /// # Ok(()) }
    /// ```
    pub async fn execute(&self, sql: &str, params: Params) -> Result<u64> {
        let mut op = self
            .execute_statement_with(sql, ExecuteOptions::new().params(params))
            .await?;
        let counted = count_affected(&mut op).await;
        let closed = op.close().await;
        let counted = counted?;
        closed?;
        Ok(match counted {
            Some(n) => n,
            None => op
                .rows_affected()
                .map_or(0, |n| u64::try_from(n).unwrap_or(0)),
        })
    }

    /// Run a statement with the client's settings. Returns once the server accepted it; the
    /// result (or the error) is read through the [`Operation`].
    ///
    /// A staging statement (`PUT '<local>' INTO '/Volumes/...' [OVERWRITE]`,
    /// `GET '/Volumes/...' TO '<local>'`, `REMOVE '/Volumes/...'`) returns only once its file
    /// transfer is done: a statement whose first keyword is `PUT`, `GET` or `REMOVE` is waited
    /// for, and when the server marks its result a staging operation the driver moves the file
    /// (see [`ClientBuilder::staging_allowed_local_paths`](crate::ClientBuilder::staging_allowed_local_paths));
    /// the operation then has no rows, and
    /// [`Operation::staging_summary`] says what was moved.
    pub async fn execute_statement(&self, sql: &str) -> Result<Operation> {
        self.execute_statement_with(sql, ExecuteOptions::default())
            .await
    }

    /// Run a statement with per-statement settings.
    pub async fn execute_statement_with(
        &self,
        sql: &str,
        options: ExecuteOptions,
    ) -> Result<Operation> {
        self.inner.ensure_open()?;
        let opts = EffectiveExecuteOptions::resolve(&self.inner.client.config, options);
        let req = self
            .execute_request(sql, &opts)
            .map_err(|e| e.with_session_id(&self.inner.id))?;
        let call = self.inner.client.rpc.execute_statement(req);
        let (resp, pending) = self.submit(OperationType::ExecuteStatement, call).await?;
        let mut op = Operation::from_execute(self.inner.clone(), resp, opts, pending)?;
        if crate::staging::may_be_staging(sql) {
            op.run_staging().await?;
        }
        Ok(op)
    }

    /// Submit a statement or metadata call of `operation_type` with the RPC `call`: its
    /// measuring starts now (when anything reads it), the RPC's retries are counted, and a
    /// failure is reported as an error of the session.
    async fn submit<T>(
        &self,
        operation_type: OperationType,
        call: impl Future<Output = Result<T>>,
    ) -> Result<(T, Option<PendingStatement>)> {
        let pending = self
            .inner
            .client
            .telemetry
            .begin(&self.inner.emitter, operation_type);
        match counting_retries(pending.as_ref().map(|p| p.retries()), call).await {
            Ok(reply) => Ok((reply, pending)),
            Err(e) => {
                let e = e.with_session_id(&self.inner.id);
                if let Some(pending) = pending {
                    pending.failed(&self.inner.id, &e);
                }
                Err(e)
            }
        }
    }

    /// The ExecuteStatement request for `sql` with `opts`; an error, before anything is sent,
    /// when a parameter cannot be sent or the server cannot take parameters or a row limit.
    fn execute_request(
        &self,
        sql: &str,
        opts: &EffectiveExecuteOptions,
    ) -> Result<TExecuteStatementReq> {
        let s = &self.inner;
        let spark = is_spark(s.server_protocol);
        let parameters = opts.params.to_thrift()?;
        if parameters.is_some() && !s.supports(TProtocolVersion::SPARK_CLI_SERVICE_PROTOCOL_V8) {
            return Err(Error::config(format!(
                "query parameters need protocol SPARK V8 or later, and this session negotiated {}: bind values in the SQL text yourself, with care",
                protocol_name(s.server_protocol)
            )));
        }
        // A server that does not know the field would ignore it and return every row.
        if opts.row_limit.is_some() && !s.supports(TProtocolVersion::SPARK_CLI_SERVICE_PROTOCOL_V8)
        {
            return Err(Error::config(format!(
                "a row limit (resultRowLimit) needs protocol SPARK V8 or later, and this session negotiated {}: use LIMIT in the SQL text",
                protocol_name(s.server_protocol)
            )));
        }
        let arrow =
            spark && opts.arrow && s.supports(TProtocolVersion::SPARK_CLI_SERVICE_PROTOCOL_V5);
        let lz4 = arrow && opts.lz4 && s.supports(TProtocolVersion::SPARK_CLI_SERVICE_PROTOCOL_V6);
        let cloud_fetch = arrow
            && opts.cloud_fetch
            && s.supports(TProtocolVersion::SPARK_CLI_SERVICE_PROTOCOL_V3);
        let mut conf_overlay = opts.conf_overlay.clone();
        if let Some(tags) = query_tags_text(&opts.query_tags)? {
            conf_overlay.insert(STATEMENT_QUERY_TAGS.to_string(), tags);
        }
        let conf_overlay = (!conf_overlay.is_empty()).then_some(conf_overlay);
        let mut req = TExecuteStatementReq::new(
            s.handle.clone(),
            sql.to_string(),
            conf_overlay,
            Some(true),
            opts.query_timeout.map(|t| {
                let secs = t.as_secs().saturating_add(u64::from(t.subsec_nanos() > 0));
                i64::try_from(secs).unwrap_or(i64::MAX)
            }),
            None,
            None,
            None,
            None,
            None,
            None,
            None,
            None,
            None,
            None,
        );
        if spark {
            if opts.direct_results {
                req.get_direct_results =
                    Some(TSparkGetDirectResults::new(opts.max_rows_per_fetch, None));
            }
            req.can_read_arrow_result = Some(arrow);
            req.can_download_result = Some(cloud_fetch);
            req.can_decompress_l_z4_result = Some(lz4);
            if arrow {
                req.use_arrow_native_types = Some(TSparkArrowTypes::new(
                    Some(true),
                    Some(true),
                    Some(true),
                    Some(false),
                    Some(true),
                ));
            }
            req.result_row_limit = opts
                .row_limit
                .map(|rows| i64::try_from(rows).unwrap_or(i64::MAX));
            req.parameters = parameters;
        }
        Ok(req)
    }

    // --- metadata ---
    //
    // Each call runs one metadata RPC and returns its result as an [`Operation`], read like a
    // query's. Patterns use SQL `LIKE` wildcards (`%`, `_`); `None` means any.

    /// The catalogs (GetCatalogs): column `TABLE_CAT`.
    pub async fn catalogs(&self) -> Result<Operation> {
        let (direct, run_async) = self.metadata_flags()?;
        let req = TGetCatalogsReq::new(self.inner.handle.clone(), direct, run_async);
        let rpc = &self.inner.client.rpc;
        self.metadata_call("GetCatalogs", OperationType::ListCatalogs, async {
            let r = rpc.get_catalogs(req).await?;
            Ok((r.operation_handle, r.direct_results))
        })
        .await
    }

    /// The schemas of `catalog` whose names match `schema_pattern` (GetSchemas): columns
    /// `TABLE_SCHEM`, `TABLE_CATALOG`.
    pub async fn schemas(
        &self,
        catalog: Option<&str>,
        schema_pattern: Option<&str>,
    ) -> Result<Operation> {
        let (direct, run_async) = self.metadata_flags()?;
        let req = TGetSchemasReq::new(
            self.inner.handle.clone(),
            catalog.map(str::to_string),
            schema_pattern.map(str::to_string),
            direct,
            run_async,
        );
        let rpc = &self.inner.client.rpc;
        self.metadata_call("GetSchemas", OperationType::ListSchemas, async {
            let r = rpc.get_schemas(req).await?;
            Ok((r.operation_handle, r.direct_results))
        })
        .await
    }

    /// The tables matching the patterns (GetTables), optionally only of the given types (e.g.
    /// `TABLE`, `VIEW`): columns `TABLE_CAT`, `TABLE_SCHEM`, `TABLE_NAME`, `TABLE_TYPE`, `REMARKS`...
    pub async fn tables(
        &self,
        catalog: Option<&str>,
        schema_pattern: Option<&str>,
        table_pattern: Option<&str>,
        table_types: &[&str],
    ) -> Result<Operation> {
        let (direct, run_async) = self.metadata_flags()?;
        let types = if table_types.is_empty() {
            None
        } else {
            Some(table_types.iter().map(|t| t.to_string()).collect())
        };
        let req = TGetTablesReq::new(
            self.inner.handle.clone(),
            catalog.map(str::to_string),
            schema_pattern.map(str::to_string),
            table_pattern.map(str::to_string),
            types,
            direct,
            run_async,
        );
        let rpc = &self.inner.client.rpc;
        self.metadata_call("GetTables", OperationType::ListTables, async {
            let r = rpc.get_tables(req).await?;
            Ok((r.operation_handle, r.direct_results))
        })
        .await
    }

    /// The table types the server knows (GetTableTypes): column `TABLE_TYPE`.
    pub async fn table_types(&self) -> Result<Operation> {
        let (direct, run_async) = self.metadata_flags()?;
        let req = TGetTableTypesReq::new(self.inner.handle.clone(), direct, run_async);
        let rpc = &self.inner.client.rpc;
        self.metadata_call("GetTableTypes", OperationType::ListTableTypes, async {
            let r = rpc.get_table_types(req).await?;
            Ok((r.operation_handle, r.direct_results))
        })
        .await
    }

    /// The columns matching the patterns (GetColumns): JDBC `getColumns` columns.
    pub async fn columns(
        &self,
        catalog: Option<&str>,
        schema_pattern: Option<&str>,
        table_pattern: Option<&str>,
        column_pattern: Option<&str>,
    ) -> Result<Operation> {
        let (direct, run_async) = self.metadata_flags()?;
        let req = TGetColumnsReq::new(
            self.inner.handle.clone(),
            catalog.map(str::to_string),
            schema_pattern.map(str::to_string),
            table_pattern.map(str::to_string),
            column_pattern.map(str::to_string),
            direct,
            run_async,
        );
        let rpc = &self.inner.client.rpc;
        self.metadata_call("GetColumns", OperationType::ListColumns, async {
            let r = rpc.get_columns(req).await?;
            Ok((r.operation_handle, r.direct_results))
        })
        .await
    }

    /// The functions matching `function_pattern` (GetFunctions).
    pub async fn functions(
        &self,
        catalog: Option<&str>,
        schema_pattern: Option<&str>,
        function_pattern: &str,
    ) -> Result<Operation> {
        let (direct, run_async) = self.metadata_flags()?;
        let req = TGetFunctionsReq::new(
            self.inner.handle.clone(),
            catalog.map(str::to_string),
            schema_pattern.map(str::to_string),
            function_pattern.to_string(),
            direct,
            run_async,
        );
        let rpc = &self.inner.client.rpc;
        self.metadata_call("GetFunctions", OperationType::ListFunctions, async {
            let r = rpc.get_functions(req).await?;
            Ok((r.operation_handle, r.direct_results))
        })
        .await
    }

    /// The primary key columns of one table (GetPrimaryKeys).
    pub async fn primary_keys(
        &self,
        catalog: Option<&str>,
        schema: Option<&str>,
        table: &str,
    ) -> Result<Operation> {
        let (direct, run_async) = self.metadata_flags()?;
        let req = TGetPrimaryKeysReq::new(
            self.inner.handle.clone(),
            catalog.map(str::to_string),
            schema.map(str::to_string),
            table.to_string(),
            direct,
            run_async,
        );
        let rpc = &self.inner.client.rpc;
        self.metadata_call("GetPrimaryKeys", OperationType::ListPrimaryKeys, async {
            let r = rpc.get_primary_keys(req).await?;
            Ok((r.operation_handle, r.direct_results))
        })
        .await
    }

    /// Foreign keys (GetCrossReference), one row per key column, with JDBC `getCrossReference`
    /// columns (`PKTABLE_CAT` ... `FKCOLUMN_NAME`, `KEY_SEQ`, `FK_NAME`, `PK_NAME`...): the keys
    /// of the foreign (referencing) table that point at the parent (referenced) table. Names
    /// are not patterns; `None` leaves that part open, so `parent_table: None` lists every key
    /// of the foreign table ([`imported_keys`](Self::imported_keys)) and `foreign_table: None`
    /// every key pointing at the parent table ([`exported_keys`](Self::exported_keys)).
    #[allow(clippy::too_many_arguments)] // the six names of JDBC's getCrossReference
    pub async fn cross_reference(
        &self,
        parent_catalog: Option<&str>,
        parent_schema: Option<&str>,
        parent_table: Option<&str>,
        foreign_catalog: Option<&str>,
        foreign_schema: Option<&str>,
        foreign_table: Option<&str>,
    ) -> Result<Operation> {
        let (direct, run_async) = self.metadata_flags()?;
        let owned = |name: Option<&str>| name.map(str::to_string);
        let req = TGetCrossReferenceReq::new(
            self.inner.handle.clone(),
            owned(parent_catalog),
            owned(parent_schema),
            owned(parent_table),
            owned(foreign_catalog),
            owned(foreign_schema),
            owned(foreign_table),
            direct,
            run_async,
        );
        let rpc = &self.inner.client.rpc;
        self.metadata_call(
            "GetCrossReference",
            OperationType::ListCrossReferences,
            async {
                let r = rpc.get_cross_reference(req).await?;
                Ok((r.operation_handle, r.direct_results))
            },
        )
        .await
    }

    /// The foreign keys of `table`: the keys it uses to reference other tables
    /// ([`cross_reference`](Self::cross_reference) with `table` as the foreign table).
    pub async fn imported_keys(
        &self,
        catalog: Option<&str>,
        schema: Option<&str>,
        table: &str,
    ) -> Result<Operation> {
        self.cross_reference(None, None, None, catalog, schema, Some(table))
            .await
    }

    /// The foreign keys that reference `table`, in other tables
    /// ([`cross_reference`](Self::cross_reference) with `table` as the parent table).
    pub async fn exported_keys(
        &self,
        catalog: Option<&str>,
        schema: Option<&str>,
        table: &str,
    ) -> Result<Operation> {
        self.cross_reference(catalog, schema, Some(table), None, None, None)
            .await
    }

    /// The SQL types the server supports (GetTypeInfo): JDBC `getTypeInfo` columns.
    pub async fn type_info(&self) -> Result<Operation> {
        let (direct, run_async) = self.metadata_flags()?;
        let req = TGetTypeInfoReq::new(self.inner.handle.clone(), direct, run_async);
        let rpc = &self.inner.client.rpc;
        self.metadata_call("GetTypeInfo", OperationType::ListTypeInfo, async {
            let r = rpc.get_type_info(req).await?;
            Ok((r.operation_handle, r.direct_results))
        })
        .await
    }

    /// What the server says it is (three GetInfo calls): server name, DBMS name and version.
    pub async fn server_info(&self) -> Result<ServerInfo> {
        self.inner.ensure_open()?;
        Ok(ServerInfo {
            server_name: self.info_string(TGetInfoType::CLI_SERVER_NAME).await?,
            dbms_name: self.info_string(TGetInfoType::CLI_DBMS_NAME).await?,
            dbms_version: self.info_string(TGetInfoType::CLI_DBMS_VER).await?,
        })
    }

    /// Whether the session is still usable: open on this side and known to the server, checked
    /// with one GetInfo call (`CLI_SERVER_NAME`), the cheapest call that names the session: one
    /// round trip, no operation created on the server. The session pool's health check.
    #[cfg(feature = "pool")]
    pub(crate) async fn check_alive(&self) -> Result<()> {
        self.inner.ensure_open()?;
        self.info_string(TGetInfoType::CLI_SERVER_NAME)
            .await
            .map(|_| ())
    }

    /// Note that the server no longer has this session (it answered with an invalid handle),
    /// so that dropping it sends no CloseSession.
    #[cfg(feature = "pool")]
    pub(crate) fn forget_on_server(&self) {
        if !self.inner.closed.swap(true, Ordering::AcqRel) {
            self.inner.client.forget_session(&self.inner.id);
        }
    }

    /// One GetInfo call whose answer is a string.
    async fn info_string(&self, info_type: TGetInfoType) -> Result<String> {
        let req = TGetInfoReq::new(self.inner.handle.clone(), info_type);
        let resp = self
            .inner
            .client
            .rpc
            .get_info(req)
            .await
            .map_err(|e| e.with_session_id(&self.inner.id))?;
        match resp.info_value {
            TGetInfoValue::StringValue(value) => Ok(value),
            other => Err(Error::protocol(format!(
                "GetInfo {info_type:?} answered {other:?}, not a string"
            ))
            .with_session_id(&self.inner.id)),
        }
    }

    /// Direct results and async execution for metadata calls, where the server supports them.
    /// Fails when the session is closed.
    fn metadata_flags(&self) -> Result<(Option<TSparkGetDirectResults>, Option<bool>)> {
        let s = &self.inner;
        s.ensure_open()?;
        let config = &s.client.config;
        let direct = (is_spark(s.server_protocol) && config.direct_results)
            .then(|| TSparkGetDirectResults::new(config.max_rows_per_fetch.max(1), None));
        let run_async = s
            .supports(TProtocolVersion::SPARK_CLI_SERVICE_PROTOCOL_V6)
            .then_some(true);
        Ok((direct, run_async))
    }

    /// Run one metadata RPC (`call`, named `rpc`) and make its reply an [`Operation`] of
    /// `operation_type`.
    async fn metadata_call(
        &self,
        rpc: &str,
        operation_type: OperationType,
        call: impl Future<Output = Result<(Option<TOperationHandle>, Option<TSparkDirectResults>)>>,
    ) -> Result<Operation> {
        let ((handle, direct), pending) = self.submit(operation_type, call).await?;
        let options =
            EffectiveExecuteOptions::resolve(&self.inner.client.config, ExecuteOptions::default());
        Operation::from_parts(self.inner.clone(), rpc, handle, direct, options, pending)
    }

    /// Close the session on the server. Operations of the session can no longer be used.
    /// Calling it again does nothing.
    pub async fn close(&self) -> Result<()> {
        self.inner.close().await
    }
}

impl SessionInner {
    /// A `Closed` error when this session or its client was closed.
    fn ensure_open(&self) -> Result<()> {
        if self.closed.load(Ordering::Acquire) {
            return Err(Error::closed("the session was closed").with_session_id(&self.id));
        }
        if self.client.is_closed() {
            return Err(Error::closed("the client was closed").with_session_id(&self.id));
        }
        Ok(())
    }

    /// Measure `recorder`'s statement until it ends or this session closes.
    pub(crate) fn track(&self, recorder: &Arc<StatementRecorder>) {
        let mut statements = self
            .statements
            .lock()
            .unwrap_or_else(PoisonError::into_inner);
        statements.retain(|s| s.strong_count() > 0);
        statements.push(Arc::downgrade(recorder));
    }

    /// Close on the server once; later calls (and the drop) do nothing. The statements still
    /// open are reported as ended.
    pub(crate) async fn close(&self) -> Result<()> {
        if self.closed.swap(true, Ordering::AcqRel) {
            return Ok(());
        }
        self.client.forget_session(&self.id);
        let statements = std::mem::take(
            &mut *self
                .statements
                .lock()
                .unwrap_or_else(PoisonError::into_inner),
        );
        for statement in statements.iter().filter_map(Weak::upgrade) {
            statement.complete();
        }
        close_session_handle(
            &self.client.rpc,
            self.handle.clone(),
            &self.emitter,
            &self.id,
        )
        .await
        .map_err(|e| e.with_session_id(&self.id))
    }
}

impl Drop for SessionInner {
    fn drop(&mut self) {
        if self.closed.swap(true, Ordering::AcqRel) {
            return;
        }
        self.client.forget_session(&self.id);
        let Ok(runtime) = tokio::runtime::Handle::try_current() else {
            tracing::debug!(session_id = %self.id, "session dropped outside a runtime: not closed");
            return;
        };
        let rpc = self.client.rpc.clone();
        let handle = self.handle.clone();
        let id = self.id.clone();
        let emitter = self.emitter.clone();
        self.client.background.spawn_on(async move {
            if let Err(e) = close_session_handle(&rpc, handle, &emitter, &id).await {
                tracing::debug!(session_id = %id, error = %e, "background close of a dropped session failed");
            }
        }, &runtime);
    }
}

#[cfg(test)]
mod handshake_tests {
    use super::*;

    #[test]
    fn only_the_client_protocol_refusal_triggers_the_hiveserver2_handshake() {
        let refusal = "Required field 'client_protocol' is unset! Struct:TOpenSessionReq(...)";
        let exception = Error::protocol(format!(
            "the server answered OpenSession with a Thrift application exception (ProtocolError): {refusal}"
        ))
        .application_exception();
        assert!(refuses_databricks_handshake(&exception));
        let status = Error::new(ErrorKind::Server, refusal);
        assert!(refuses_databricks_handshake(&status));
        // Other failures of OpenSession leave the client speaking Databricks' protocol.
        let internal = Error::protocol(
            "the server answered OpenSession with a Thrift application exception (InternalError): boom",
        )
        .application_exception();
        assert!(!refuses_databricks_handshake(&internal));
        for other in [
            Error::new(ErrorKind::Server, "[INVALID_PARAMETER_VALUE] bad catalog"),
            Error::protocol(
                "the reply to OpenSession is malformed: Required field 'client_protocol' is unset",
            ),
            Error::from_http_status(503, "Service Unavailable"),
        ] {
            assert!(!refuses_databricks_handshake(&other), "{other}");
        }
    }

    #[test]
    fn a_catalog_cannot_be_sent_to_plain_hiveserver2() {
        let e = hive_open_request(BTreeMap::new(), Some("main"), None).unwrap_err();
        assert_eq!(e.kind(), ErrorKind::Config);
        assert!(e.message().contains("no catalogs"), "{e}");
        let req = hive_open_request(BTreeMap::new(), None, Some("sales")).unwrap();
        assert_eq!(req.client_protocol, Some(HIVE_CLIENT_PROTOCOL));
        assert_eq!(
            req.configuration
                .unwrap()
                .get(HIVE_USE_DATABASE)
                .map(String::as_str),
            Some("sales")
        );
        assert_eq!(req.client_protocol_i64, None);
        assert_eq!(req.initial_namespace, None);
        assert_eq!(req.can_use_multiple_catalogs, None);
    }
}
