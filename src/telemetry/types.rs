//! The vocabulary of telemetry: its configuration (every default written where it is set), the
//! events the driver emits, the per-statement metrics the aggregator builds from them, and the
//! context a per-host telemetry client is built from.

use std::fmt;
use std::sync::Arc;
use std::time::{Duration, SystemTime, UNIX_EPOCH};

use http::{HeaderMap, HeaderValue};
use tokio::time::Instant;

use crate::auth::AuthProvider;
use crate::http::HttpTransport;

/// The feature flag that switches telemetry on for this driver, server side.
pub(crate) const DEFAULT_FEATURE_FLAG_NAME: &str =
    "databricks.partnerplatform.clientConfigsFeatureFlags.enableTelemetryForRust";

/// The header that names the workspace on telemetry and feature-flag requests.
pub(crate) const ORG_ID_HEADER: &str = "x-databricks-org-id";

/// The driver's name in the feature-flag URL (`/api/2.0/connector-service/feature-flags/RUST/..`).
pub(crate) const FEATURE_FLAG_DRIVER: &str = "RUST";

/// The name this driver reports in telemetry unless configured otherwise.
pub(crate) const DEFAULT_DRIVER_NAME: &str = "databricks-sql-rust";

/// Telemetry settings of a client. Every field documents its default; start from
/// [`TelemetryConfiguration::default()`] and change what you need.
///
/// Telemetry is on by default, but only takes effect when the workspace's feature flag for this
/// driver is on; set [`enabled`](Self::enabled) to `false` to turn it off entirely (no flag
/// request, no background task, no export). See `docs/TELEMETRY.md` for what is collected.
///
/// ```
/// use std::time::Duration;
/// use databricks_sql::telemetry::TelemetryConfiguration;
///
/// let mut config = TelemetryConfiguration::default();
/// config.enabled = false; // opt out
/// config.flush_interval = Duration::from_secs(10);
/// assert_eq!(config.batch_size, 100);
/// ```
#[derive(Debug, Clone, PartialEq, Eq)]
#[non_exhaustive]
pub struct TelemetryConfiguration {
    /// Whether telemetry may run at all. Default `true`: effective only when the host's feature
    /// flag is on (or [`force_enabled`](Self::force_enabled) is set).
    pub enabled: bool,
    /// Skip the feature flag and export whenever [`enabled`](Self::enabled) is set. Default
    /// `false`; meant for testing against a mock server.
    pub force_enabled: bool,
    /// The driver name reported in `system_configuration.driver_name`. Default `databricks-sql-rust`.
    pub driver_name: String,
    /// Metrics per export request; reaching it also triggers a flush. Default 100.
    pub batch_size: usize,
    /// How often pending metrics are flushed. Default 5 s.
    pub flush_interval: Duration,
    /// Retries of a failed export after the first attempt (retryable failures only). Default 3.
    pub max_retries: u32,
    /// Backoff before the first export retry; doubles per retry, with jitter. Default 100 ms.
    pub min_backoff: Duration,
    /// Cap of one export backoff. Default 1000 ms.
    pub max_backoff: Duration,
    /// Timeout of one telemetry HTTP request (an export attempt or the feature-flag fetch).
    /// Default 10 s.
    pub export_timeout: Duration,
    /// Export to the authenticated endpoint (`/telemetry-ext`) with the connection's credentials;
    /// when `false`, or when no credentials are available, metrics go to `/telemetry-unauth`
    /// without session ids, workspace id, system details or error messages. Default `true`.
    pub authenticated_export: bool,
    /// Consecutive failed exports that open the host's circuit breaker. Default 5.
    pub circuit_breaker_threshold: u32,
    /// How long an open circuit breaker rejects exports before letting one probe through.
    /// Default 60 s.
    pub circuit_breaker_timeout: Duration,
    /// Successful probes that close a half-open circuit breaker. Default 2.
    pub circuit_breaker_half_open_successes: u32,
    /// Metrics kept waiting for export; beyond it the oldest non-error metric is dropped.
    /// Default 500.
    pub max_pending_metrics: usize,
    /// Errors kept per statement. Default 50.
    pub max_errors_per_statement: usize,
    /// A statement the aggregator has heard nothing of for this long (no event, no completion)
    /// is forgotten. Default 1 h.
    pub statement_ttl: Duration,
    /// Bound on closing telemetry (the last flush included) when the last client of a host
    /// closes. Default 2 s.
    pub close_timeout: Duration,
    /// Capacity of the in-memory event queue between the driver and the telemetry task; when
    /// it is full, new events are dropped and counted. Default 1000.
    pub event_queue_capacity: usize,
    /// Name of the server-side feature flag that enables telemetry. Default
    /// `databricks.partnerplatform.clientConfigsFeatureFlags.enableTelemetryForRust`.
    pub feature_flag_name: String,
    /// How long a fetched feature flag is trusted when the server sends no `ttl_seconds`
    /// (a server TTL is clamped to 60..3600 s), and how long a failed fetch counts as "off"
    /// before it is tried again. Default 15 min.
    pub feature_flag_ttl: Duration,
}

impl Default for TelemetryConfiguration {
    fn default() -> Self {
        TelemetryConfiguration {
            enabled: true,
            force_enabled: false,
            driver_name: DEFAULT_DRIVER_NAME.to_string(),
            batch_size: 100,
            flush_interval: Duration::from_secs(5),
            max_retries: 3,
            min_backoff: Duration::from_millis(100),
            max_backoff: Duration::from_millis(1000),
            export_timeout: Duration::from_secs(10),
            authenticated_export: true,
            circuit_breaker_threshold: 5,
            circuit_breaker_timeout: Duration::from_secs(60),
            circuit_breaker_half_open_successes: 2,
            max_pending_metrics: 500,
            max_errors_per_statement: 50,
            statement_ttl: Duration::from_secs(3600),
            close_timeout: Duration::from_secs(2),
            event_queue_capacity: 1000,
            feature_flag_name: DEFAULT_FEATURE_FLAG_NAME.to_string(),
            feature_flag_ttl: Duration::from_secs(15 * 60),
        }
    }
}

/// Where a host's telemetry endpoints live: `https://{host}` for a workspace, or a plain
/// `http://127.0.0.1:{port}` base for the mock warehouse.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) struct TelemetryEndpoint {
    base_url: String,
}

impl TelemetryEndpoint {
    #[cfg(test)]
    /// The endpoint of a workspace host such as `adb-123.4.azuredatabricks.net` (HTTPS).
    /// A value that already carries a scheme is taken as a base URL.
    pub(crate) fn for_host(host: &str) -> Self {
        if host.contains("://") {
            Self::with_base_url(host)
        } else {
            Self::with_base_url(&format!("https://{host}"))
        }
    }

    /// An endpoint at `base_url` (scheme, host and port), e.g. `http://127.0.0.1:8080`.
    pub(crate) fn with_base_url(base_url: &str) -> Self {
        TelemetryEndpoint {
            base_url: base_url.trim_end_matches('/').to_string(),
        }
    }

    /// The base URL (scheme, host and port): what identifies the host's telemetry.
    pub(crate) fn base_url(&self) -> &str {
        &self.base_url
    }

    /// The export URL: `/telemetry-ext` when authenticated, `/telemetry-unauth` otherwise.
    pub(crate) fn export_url(&self, authenticated: bool) -> String {
        let path = if authenticated {
            "/telemetry-ext"
        } else {
            "/telemetry-unauth"
        };
        format!("{}{path}", self.base_url)
    }

    /// The feature-flag URL of this driver at `version`.
    pub(crate) fn feature_flag_url(&self, version: &str) -> String {
        format!(
            "{}/api/2.0/connector-service/feature-flags/{FEATURE_FLAG_DRIVER}/{version}",
            self.base_url
        )
    }
}

/// Everything a per-host telemetry client is built from. The driver fills one per client; when
/// several clients share a host, the first one's transport, credentials and settings serve the
/// host, and each keeps its own [`connection`](Self::connection) parameters.
#[derive(Clone)]
pub(crate) struct TelemetryContext {
    /// Base URL of the host's telemetry endpoints.
    pub endpoint: TelemetryEndpoint,
    /// The workspace (org) id, sent as `x-databricks-org-id` and as `workspace_id`, when known.
    pub org_id: Option<String>,
    /// The HTTP transport (never the driver's retry policy: telemetry has its own budget).
    pub transport: Arc<dyn HttpTransport>,
    /// The connection's credentials; `None` exports unauthenticated.
    pub auth: Option<Arc<dyn AuthProvider>>,
    /// Telemetry settings.
    pub config: TelemetryConfiguration,
    /// The driver's `User-Agent` value (with the application's entry), sent with authenticated
    /// telemetry requests and in their logs; unauthenticated ones send the bare driver name.
    pub user_agent: String,
    /// The application's name (the user agent entry), when the user set one.
    pub client_app_name: Option<String>,
    /// Parameters of the connection that emits through this context.
    pub connection: Option<Arc<ConnectionParameters>>,
}

impl fmt::Debug for TelemetryContext {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("TelemetryContext")
            .field("endpoint", &self.endpoint)
            .field("org_id", &self.org_id)
            .field("authenticated", &self.auth.is_some())
            .field("config", &self.config)
            .finish_non_exhaustive()
    }
}

impl TelemetryContext {
    /// A context with default settings, no credentials and no connection parameters.
    pub(crate) fn new(endpoint: TelemetryEndpoint, transport: Arc<dyn HttpTransport>) -> Self {
        TelemetryContext {
            endpoint,
            org_id: None,
            transport,
            auth: None,
            config: TelemetryConfiguration::default(),
            user_agent: bare_user_agent(),
            client_app_name: None,
            connection: None,
        }
    }

    /// The `Authorization` value for a telemetry request, or `None` when there are no
    /// credentials or they cannot be had now (logged at debug; the caller goes unauthenticated).
    /// With a provider that may need a person (a browser login), only a credential already at
    /// hand is used.
    pub(crate) async fn authorization(&self) -> Option<HeaderValue> {
        let auth = self.auth.as_ref()?;
        if auth.interactive() {
            // Telemetry never starts a login: only a credential already at hand is used.
            return auth.cached_authorization();
        }
        match auth.authorization().await {
            Ok(value) => value,
            Err(e) => {
                tracing::debug!(error = %e, "telemetry: credentials unavailable");
                None
            }
        }
    }

    /// The user agent for a request with or without credentials: without, only the driver's
    /// name and version, so that nothing identifies the application.
    pub(crate) fn user_agent(&self, authenticated: bool) -> String {
        if authenticated {
            self.user_agent.clone()
        } else {
            bare_user_agent()
        }
    }

    /// The headers of every telemetry request: `User-Agent`, a JSON content type when there is a
    /// body, and with credentials `Authorization` and `x-databricks-org-id` (when the org id is
    /// known). A request without credentials names no workspace or application.
    pub(crate) fn headers(&self, authorization: Option<HeaderValue>, json_body: bool) -> HeaderMap {
        let mut h = HeaderMap::new();
        let authenticated = authorization.is_some();
        if let Ok(v) = HeaderValue::from_str(&self.user_agent(authenticated)) {
            h.insert(http::header::USER_AGENT, v);
        }
        if let Some(org) = self
            .org_id
            .as_deref()
            .filter(|o| authenticated && !o.is_empty())
        {
            if let Ok(v) = HeaderValue::from_str(org) {
                h.insert(ORG_ID_HEADER, v);
            }
        }
        if let Some(mut v) = authorization {
            v.set_sensitive(true);
            h.insert(http::header::AUTHORIZATION, v);
        }
        if json_body {
            h.insert(
                http::header::CONTENT_TYPE,
                HeaderValue::from_static("application/json"),
            );
        }
        h
    }

    /// The workspace id: the org id when it is a number.
    pub(crate) fn workspace_id(&self) -> Option<i64> {
        self.org_id.as_deref().and_then(|o| o.trim().parse().ok())
    }
}

/// Parameters of one connection, reported as `driver_connection_params`. Never a secret: no
/// token, no password, no query string.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub(crate) struct ConnectionParameters {
    /// The warehouse's HTTP path, e.g. `/sql/1.0/warehouses/abc`.
    pub http_path: String,
    /// The workspace URL without path, e.g. `https://adb-123.4.azuredatabricks.net`.
    pub host_url: String,
    /// The port, 443 by default.
    pub port: u16,
    /// The authentication method (`AuthProvider::auth_type`), e.g. `pat`.
    pub auth_type: String,
    /// Whether a proxy is used.
    pub use_proxy: bool,
    /// Whether Arrow results are requested.
    pub enable_arrow: bool,
    /// Whether direct results are requested.
    pub enable_direct_results: bool,
    /// The socket (request) timeout in milliseconds, when one is set.
    pub socket_timeout_ms: Option<u64>,
}

/// The system the driver runs on, reported as `system_configuration`.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) struct DriverConfiguration {
    /// The driver's name (`TelemetryConfiguration::driver_name`).
    pub driver_name: String,
    /// The crate version.
    pub driver_version: String,
    /// The language runtime: `Rust`.
    pub runtime_name: String,
    /// The operating system (`linux`, `macos`, `windows`...).
    pub os_name: String,
    /// The kernel / OS release, when it can be read cheaply.
    pub os_version: Option<String>,
    /// The CPU architecture (`x86_64`, `aarch64`...).
    pub os_arch: String,
    /// The locale from `LC_ALL` / `LC_MESSAGES` / `LANG`, without its encoding (`en_US`).
    pub locale_name: Option<String>,
    /// Rust strings are UTF-8.
    pub char_set_encoding: String,
    /// The executable's file name (never its path).
    pub process_name: Option<String>,
    /// The application's name, when the user set one.
    pub client_app_name: Option<String>,
}

impl DriverConfiguration {
    /// Detect the running system. Reads the environment and, on Linux, one file under `/proc`.
    pub(crate) fn detect(driver_name: &str, client_app_name: Option<String>) -> Self {
        let locale_name = ["LC_ALL", "LC_MESSAGES", "LANG"]
            .iter()
            .filter_map(|k| std::env::var(k).ok())
            .find(|v| !v.is_empty())
            .map(|v| v.split(['.', '@']).next().unwrap_or_default().to_string())
            .filter(|v| !v.is_empty());
        let process_name = std::env::current_exe()
            .ok()
            .and_then(|p| p.file_name().map(|n| n.to_string_lossy().into_owned()));
        let os_version = if cfg!(target_os = "linux") {
            std::fs::read_to_string("/proc/sys/kernel/osrelease")
                .ok()
                .map(|s| s.trim().to_string())
                .filter(|s| !s.is_empty())
        } else {
            None
        };
        DriverConfiguration {
            driver_name: driver_name.to_string(),
            driver_version: env!("CARGO_PKG_VERSION").to_string(),
            runtime_name: "Rust".to_string(),
            os_name: std::env::consts::OS.to_string(),
            os_version,
            os_arch: std::env::consts::ARCH.to_string(),
            locale_name,
            char_set_encoding: "UTF-8".to_string(),
            process_name,
            client_app_name,
        }
    }
}

/// What an operation was, reported as `operation_detail.operation_type`; its wire name is
/// [`as_str`](Self::as_str).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
#[non_exhaustive]
pub enum OperationType {
    /// A session was opened (`CREATE_SESSION`).
    CreateSession,
    /// A session was closed (`DELETE_SESSION`).
    DeleteSession,
    /// A SQL statement (`EXECUTE_STATEMENT`).
    ExecuteStatement,
    /// A statement was closed (`CLOSE_STATEMENT`).
    CloseStatement,
    /// A statement was cancelled (`CANCEL_STATEMENT`).
    CancelStatement,
    /// [`Session::catalogs`](crate::Session::catalogs) (`LIST_CATALOGS`).
    ListCatalogs,
    /// [`Session::schemas`](crate::Session::schemas) (`LIST_SCHEMAS`).
    ListSchemas,
    /// [`Session::tables`](crate::Session::tables) (`LIST_TABLES`).
    ListTables,
    /// [`Session::table_types`](crate::Session::table_types) (`LIST_TABLE_TYPES`).
    ListTableTypes,
    /// [`Session::columns`](crate::Session::columns) (`LIST_COLUMNS`).
    ListColumns,
    /// [`Session::functions`](crate::Session::functions) (`LIST_FUNCTIONS`).
    ListFunctions,
    /// [`Session::type_info`](crate::Session::type_info) (`LIST_TYPE_INFO`).
    ListTypeInfo,
    /// [`Session::primary_keys`](crate::Session::primary_keys) (`LIST_PRIMARY_KEYS`).
    ListPrimaryKeys,
    /// [`Session::cross_reference`](crate::Session::cross_reference) and its short forms
    /// (`LIST_CROSS_REFERENCES`).
    ListCrossReferences,
    /// Not known (`TYPE_UNSPECIFIED`).
    Unspecified,
}

impl OperationType {
    /// The wire name, e.g. `EXECUTE_STATEMENT`.
    pub fn as_str(self) -> &'static str {
        match self {
            OperationType::CreateSession => "CREATE_SESSION",
            OperationType::DeleteSession => "DELETE_SESSION",
            OperationType::ExecuteStatement => "EXECUTE_STATEMENT",
            OperationType::CloseStatement => "CLOSE_STATEMENT",
            OperationType::CancelStatement => "CANCEL_STATEMENT",
            OperationType::ListCatalogs => "LIST_CATALOGS",
            OperationType::ListSchemas => "LIST_SCHEMAS",
            OperationType::ListTables => "LIST_TABLES",
            OperationType::ListTableTypes => "LIST_TABLE_TYPES",
            OperationType::ListColumns => "LIST_COLUMNS",
            OperationType::ListFunctions => "LIST_FUNCTIONS",
            OperationType::ListTypeInfo => "LIST_TYPE_INFO",
            OperationType::ListPrimaryKeys => "LIST_PRIMARY_KEYS",
            OperationType::ListCrossReferences => "LIST_CROSS_REFERENCES",
            OperationType::Unspecified => "TYPE_UNSPECIFIED",
        }
    }

    /// The `statement_type` of a statement of this operation type.
    pub(crate) fn statement_type(self) -> &'static str {
        match self {
            OperationType::ExecuteStatement => "SQL",
            OperationType::ListCatalogs
            | OperationType::ListSchemas
            | OperationType::ListTables
            | OperationType::ListTableTypes
            | OperationType::ListColumns
            | OperationType::ListFunctions
            | OperationType::ListTypeInfo
            | OperationType::ListPrimaryKeys
            | OperationType::ListCrossReferences => "METADATA",
            _ => "NONE",
        }
    }
}

/// How a statement's result came back, reported as `execution_result`; its wire name is
/// [`as_str`](Self::as_str).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
#[non_exhaustive]
pub enum ResultFormat {
    /// Arrow batches inline in the replies (`INLINE_ARROW`).
    InlineArrow,
    /// Column-based row sets inline in the replies (`COLUMNAR_INLINE`).
    ColumnarInline,
    /// CloudFetch: links to Arrow files in cloud storage (`EXTERNAL_LINKS`).
    ExternalLinks,
    /// JSON inline (`INLINE_JSON`; not produced by this driver's Thrift backend).
    InlineJson,
    /// Not known (`FORMAT_UNSPECIFIED`).
    Unspecified,
}

impl ResultFormat {
    /// The wire name, e.g. `EXTERNAL_LINKS`.
    pub fn as_str(self) -> &'static str {
        match self {
            ResultFormat::InlineArrow => "INLINE_ARROW",
            ResultFormat::ColumnarInline => "COLUMNAR_INLINE",
            ResultFormat::ExternalLinks => "EXTERNAL_LINKS",
            ResultFormat::InlineJson => "INLINE_JSON",
            ResultFormat::Unspecified => "FORMAT_UNSPECIFIED",
        }
    }
}

/// The kinds of events the driver emits.
#[cfg(test)]
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub(crate) enum TelemetryEventType {
    ConnectionOpen,
    ConnectionClose,
    StatementStart,
    StatementComplete,
    CloudFetchChunk,
    Error,
}

#[cfg(test)]
impl TelemetryEventType {
    /// A short name for logs, e.g. `statement.complete`.
    pub(crate) fn as_str(self) -> &'static str {
        match self {
            TelemetryEventType::ConnectionOpen => "connection.open",
            TelemetryEventType::ConnectionClose => "connection.close",
            TelemetryEventType::StatementStart => "statement.start",
            TelemetryEventType::StatementComplete => "statement.complete",
            TelemetryEventType::CloudFetchChunk => "cloudfetch.chunk",
            TelemetryEventType::Error => "error",
        }
    }
}

/// What the driver knows when a statement completes.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub(crate) struct StatementCompletion {
    /// The result's format, when there is a result.
    pub result_format: Option<ResultFormat>,
    /// Whether results were LZ4 compressed.
    pub compressed: Option<bool>,
    /// GetOperationStatus calls made, and their summed latency.
    pub poll_count: u32,
    /// Summed latency of the status polls.
    pub poll_latency: Duration,
    /// CloudFetch files the result consists of, when known.
    pub chunks_present: Option<u64>,
    /// From execute to result ready.
    pub result_ready_latency: Option<Duration>,
    /// From the first fetch to the last.
    pub result_consumption_latency: Option<Duration>,
    /// HTTP retries made by the driver for this statement.
    pub retry_count: u32,
}

/// One downloaded CloudFetch file.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub(crate) struct ChunkDownload {
    /// The file's index in the result (0 first).
    pub chunk_index: u64,
    /// How long the download took.
    pub latency: Duration,
    /// Bytes downloaded.
    pub bytes: u64,
    /// Whether the file was LZ4 compressed.
    pub compressed: bool,
}

/// An error as telemetry keeps it: its kind name and a redacted, bounded description. Built by
/// the emitter from a driver [`Error`](crate::Error); never holds SQL text or secrets.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) struct ErrorDetails {
    /// The [`ErrorKind`](crate::ErrorKind) name, e.g. `Auth`.
    pub name: String,
    /// The redacted description exported as `stack_trace`.
    pub message: String,
    /// The HTTP status, when the error came from one.
    pub http_status: Option<u16>,
    /// Terminal per the classifier: the statement is over, flush at once.
    pub terminal: bool,
    /// Retryable per the classifier: wait for the statement's completion.
    pub retryable: bool,
}

/// What an event says, per type.
#[derive(Debug, Clone, PartialEq)]
pub(crate) enum EventDetail {
    ConnectionOpen { latency: Duration },
    ConnectionClose { latency: Duration },
    StatementStart { operation_type: OperationType },
    StatementComplete(StatementCompletion),
    CloudFetchChunk(ChunkDownload),
    Error(ErrorDetails),
}

/// One event from the driver, as it travels through the queue to the aggregator.
#[derive(Debug, Clone)]
pub(crate) struct TelemetryEvent {
    /// When it happened (monotonic; the aggregator measures latencies with it).
    pub at: Instant,
    /// When it happened, in milliseconds since the Unix epoch.
    pub timestamp_millis: i64,
    /// The session, when known.
    pub session_id: Option<String>,
    /// The statement, when known.
    pub statement_id: Option<String>,
    /// The emitting connection's parameters.
    pub connection: Option<Arc<ConnectionParameters>>,
    /// What happened.
    pub detail: EventDetail,
}

impl TelemetryEvent {
    /// An event of `detail`, happening now.
    pub(crate) fn now(detail: EventDetail) -> Self {
        TelemetryEvent {
            at: Instant::now(),
            timestamp_millis: unix_millis(),
            session_id: None,
            statement_id: None,
            connection: None,
            detail,
        }
    }

    #[cfg(test)]
    /// Which kind of event this is.
    pub(crate) fn event_type(&self) -> TelemetryEventType {
        match self.detail {
            EventDetail::ConnectionOpen { .. } => TelemetryEventType::ConnectionOpen,
            EventDetail::ConnectionClose { .. } => TelemetryEventType::ConnectionClose,
            EventDetail::StatementStart { .. } => TelemetryEventType::StatementStart,
            EventDetail::StatementComplete(_) => TelemetryEventType::StatementComplete,
            EventDetail::CloudFetchChunk(_) => TelemetryEventType::CloudFetchChunk,
            EventDetail::Error(_) => TelemetryEventType::Error,
        }
    }
}

/// What the aggregator knows about one statement.
#[derive(Debug, Clone, PartialEq)]
pub(crate) struct StatementAggregate {
    /// What the statement was.
    pub operation_type: OperationType,
    /// When it started (monotonic).
    pub started_at: Instant,
    /// From start to completion.
    pub latency: Option<Duration>,
    /// The result's format.
    pub result_format: Option<ResultFormat>,
    /// Whether results were compressed.
    pub compressed: Option<bool>,
    /// CloudFetch files the result consists of, when known.
    pub chunks_present: Option<u64>,
    /// CloudFetch files downloaded.
    pub chunks_iterated: u64,
    /// Latency of the first file downloaded.
    pub initial_chunk_latency: Option<Duration>,
    /// Latency of the slowest file.
    pub slowest_chunk_latency: Option<Duration>,
    /// Summed download latency.
    pub sum_chunk_latency: Duration,
    /// Bytes downloaded.
    pub bytes_downloaded: u64,
    /// GetOperationStatus calls.
    pub poll_count: u32,
    /// Their summed latency.
    pub poll_latency: Duration,
    /// From execute to result ready.
    pub result_ready_latency: Option<Duration>,
    /// From the first fetch to the last.
    pub result_consumption_latency: Option<Duration>,
    /// HTTP retries.
    pub retry_count: u32,
}

impl StatementAggregate {
    /// A statement of `operation_type` that started at `started_at`.
    pub(crate) fn new(operation_type: OperationType, started_at: Instant) -> Self {
        StatementAggregate {
            operation_type,
            started_at,
            latency: None,
            result_format: None,
            compressed: None,
            chunks_present: None,
            chunks_iterated: 0,
            initial_chunk_latency: None,
            slowest_chunk_latency: None,
            sum_chunk_latency: Duration::ZERO,
            bytes_downloaded: 0,
            poll_count: 0,
            poll_latency: Duration::ZERO,
            result_ready_latency: None,
            result_consumption_latency: None,
            retry_count: 0,
        }
    }
}

/// What a metric reports.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub(crate) enum MetricKind {
    /// A session opened or closed (`operation_type` CREATE_SESSION / DELETE_SESSION).
    Connection,
    /// A statement, aggregated from its events.
    Statement,
    /// An error, on its own.
    Error,
}

/// One exportable record: becomes one `TelemetryFrontendLog`.
#[derive(Debug, Clone, PartialEq)]
pub(crate) struct TelemetryMetric {
    /// What it reports.
    pub kind: MetricKind,
    /// When (milliseconds since the Unix epoch).
    pub timestamp_millis: i64,
    /// The session, when known.
    pub session_id: Option<String>,
    /// The statement, when known.
    pub statement_id: Option<String>,
    /// The connection's parameters.
    pub connection: Option<Arc<ConnectionParameters>>,
    /// The operation's type.
    pub operation_type: OperationType,
    /// The operation's latency.
    pub latency: Option<Duration>,
    /// For statements: the aggregated details.
    pub statement: Option<StatementAggregate>,
    /// The error, for error metrics and statements ended by a terminal error.
    pub error: Option<ErrorDetails>,
}

/// `databricks-sql-rust/<version>`.
fn bare_user_agent() -> String {
    format!("{DEFAULT_DRIVER_NAME}/{}", env!("CARGO_PKG_VERSION"))
}

/// Milliseconds since the Unix epoch (0 if the clock is before it).
pub(crate) fn unix_millis() -> i64 {
    SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .map(|d| i64::try_from(d.as_millis()).unwrap_or(i64::MAX))
        .unwrap_or(0)
}

/// A version-4 UUID from [`random_u64`](crate::http::backoff::random_u64): ids of telemetry records, made without the
/// system call per id that a cryptographic source costs (a clash is as unlikely as for any
/// random UUID, not impossible).
pub(crate) fn record_id() -> uuid::Uuid {
    let mut bytes = [0u8; 16];
    bytes[..8].copy_from_slice(&crate::http::backoff::random_u64().to_le_bytes());
    bytes[8..].copy_from_slice(&crate::http::backoff::random_u64().to_le_bytes());
    uuid::Builder::from_random_bytes(bytes).into_uuid()
}

/// A duration in whole milliseconds, saturating.
pub(crate) fn millis(d: Duration) -> i64 {
    i64::try_from(d.as_millis()).unwrap_or(i64::MAX)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn defaults_are_as_documented() {
        let c = TelemetryConfiguration::default();
        assert!(c.enabled);
        assert!(!c.force_enabled);
        assert_eq!(c.driver_name, "databricks-sql-rust");
        assert_eq!(c.batch_size, 100);
        assert_eq!(c.flush_interval, Duration::from_secs(5));
        assert_eq!(c.max_retries, 3);
        assert_eq!(c.min_backoff, Duration::from_millis(100));
        assert_eq!(c.max_backoff, Duration::from_millis(1000));
        assert_eq!(c.export_timeout, Duration::from_secs(10));
        assert!(c.authenticated_export);
        assert_eq!(c.circuit_breaker_threshold, 5);
        assert_eq!(c.circuit_breaker_timeout, Duration::from_secs(60));
        assert_eq!(c.circuit_breaker_half_open_successes, 2);
        assert_eq!(c.max_pending_metrics, 500);
        assert_eq!(c.max_errors_per_statement, 50);
        assert_eq!(c.statement_ttl, Duration::from_secs(3600));
        assert_eq!(c.close_timeout, Duration::from_secs(2));
        assert_eq!(c.event_queue_capacity, 1000);
        assert_eq!(
            c.feature_flag_name,
            "databricks.partnerplatform.clientConfigsFeatureFlags.enableTelemetryForRust"
        );
        assert_eq!(c.feature_flag_ttl, Duration::from_secs(900));
    }

    #[test]
    fn endpoint_builds_https_urls_for_a_host_and_keeps_an_explicit_base() {
        let e = TelemetryEndpoint::for_host("adb-123.azuredatabricks.net");
        assert_eq!(
            e.export_url(true),
            "https://adb-123.azuredatabricks.net/telemetry-ext"
        );
        assert_eq!(
            e.export_url(false),
            "https://adb-123.azuredatabricks.net/telemetry-unauth"
        );
        assert_eq!(
            e.feature_flag_url("0.1.0"),
            "https://adb-123.azuredatabricks.net/api/2.0/connector-service/feature-flags/RUST/0.1.0"
        );
        let mock = TelemetryEndpoint::for_host("http://127.0.0.1:4567/");
        assert_eq!(mock.export_url(true), "http://127.0.0.1:4567/telemetry-ext");
    }

    #[test]
    fn workspace_id_is_the_numeric_org_id() {
        let mut ctx = TelemetryContext::new(
            TelemetryEndpoint::for_host("h"),
            Arc::new(crate::http::MockHttpTransport::new()),
        );
        assert_eq!(ctx.workspace_id(), None);
        ctx.org_id = Some("1234567890".into());
        assert_eq!(ctx.workspace_id(), Some(1_234_567_890));
        ctx.org_id = Some("not-a-number".into());
        assert_eq!(ctx.workspace_id(), None);
        assert!(!format!("{ctx:?}").contains("transport"));
    }

    #[tokio::test]
    async fn headers_carry_user_agent_org_id_and_credentials() {
        let mut ctx = crate::telemetry::test_support::context(
            "h",
            Arc::new(crate::http::MockHttpTransport::new()),
        );
        let auth = ctx.authorization().await;
        let h = ctx.headers(auth, true);
        assert_eq!(h["authorization"], "Bearer dapi-test");
        assert!(h["authorization"].is_sensitive());
        assert_eq!(h[ORG_ID_HEADER], "6051921418418893");
        assert_eq!(h["content-type"], "application/json");
        assert!(h["user-agent"]
            .to_str()
            .unwrap_or("")
            .starts_with("databricks-sql-rust/"));

        ctx.auth = Some(Arc::new(crate::telemetry::test_support::FailingAuth));
        ctx.user_agent = "databricks-sql-rust/0.1.0 (my-secret-app)".into();
        let auth = ctx.authorization().await;
        assert!(auth.is_none(), "a failing provider means no credentials");
        let h = ctx.headers(auth, false);
        assert!(h.get("authorization").is_none());
        assert!(
            h.get(ORG_ID_HEADER).is_none(),
            "no workspace without credentials"
        );
        assert!(h.get("content-type").is_none());
        assert!(!h["user-agent"]
            .to_str()
            .unwrap_or("")
            .contains("my-secret-app"));
        assert_eq!(
            ctx.user_agent(true),
            "databricks-sql-rust/0.1.0 (my-secret-app)"
        );
    }

    #[test]
    fn detected_system_names_the_driver_and_platform() {
        let d = DriverConfiguration::detect("databricks-sql-rust", Some("my-app".into()));
        assert_eq!(d.driver_name, "databricks-sql-rust");
        assert_eq!(d.driver_version, env!("CARGO_PKG_VERSION"));
        assert_eq!(d.os_name, std::env::consts::OS);
        assert_eq!(d.os_arch, std::env::consts::ARCH);
        assert_eq!(d.char_set_encoding, "UTF-8");
        assert_eq!(d.client_app_name.as_deref(), Some("my-app"));
        if let Some(p) = &d.process_name {
            assert!(!p.contains('/'), "process name must not be a path: {p}");
        }
    }

    #[test]
    fn wire_names_of_enums_match_the_protocol() {
        use OperationType as O;
        let operations = [
            (O::CreateSession, "CREATE_SESSION", "NONE"),
            (O::DeleteSession, "DELETE_SESSION", "NONE"),
            (O::ExecuteStatement, "EXECUTE_STATEMENT", "SQL"),
            (O::CloseStatement, "CLOSE_STATEMENT", "NONE"),
            (O::CancelStatement, "CANCEL_STATEMENT", "NONE"),
            (O::ListCatalogs, "LIST_CATALOGS", "METADATA"),
            (O::ListSchemas, "LIST_SCHEMAS", "METADATA"),
            (O::ListTables, "LIST_TABLES", "METADATA"),
            (O::ListTableTypes, "LIST_TABLE_TYPES", "METADATA"),
            (O::ListColumns, "LIST_COLUMNS", "METADATA"),
            (O::ListFunctions, "LIST_FUNCTIONS", "METADATA"),
            (O::ListTypeInfo, "LIST_TYPE_INFO", "METADATA"),
            (O::ListPrimaryKeys, "LIST_PRIMARY_KEYS", "METADATA"),
            (O::ListCrossReferences, "LIST_CROSS_REFERENCES", "METADATA"),
            (O::Unspecified, "TYPE_UNSPECIFIED", "NONE"),
        ];
        for (op, name, statement_type) in operations {
            assert_eq!(op.as_str(), name);
            assert_eq!(op.statement_type(), statement_type, "{name}");
        }
        let formats = [
            (ResultFormat::InlineArrow, "INLINE_ARROW"),
            (ResultFormat::ColumnarInline, "COLUMNAR_INLINE"),
            (ResultFormat::ExternalLinks, "EXTERNAL_LINKS"),
            (ResultFormat::InlineJson, "INLINE_JSON"),
            (ResultFormat::Unspecified, "FORMAT_UNSPECIFIED"),
        ];
        for (format, name) in formats {
            assert_eq!(format.as_str(), name);
        }
        let e = TelemetryEvent::now(EventDetail::ConnectionOpen {
            latency: Duration::ZERO,
        });
        assert_eq!(e.event_type(), TelemetryEventType::ConnectionOpen);
        assert_eq!(e.event_type().as_str(), "connection.open");
        assert!(e.timestamp_millis > 0);
    }
}
