//! The JSON the Databricks telemetry and feature-flag endpoints speak (protocol.md section 8),
//! as serde types, and the conversion of one metric into one `TelemetryFrontendLog`.
//! Absent (`None`) fields are left out of the JSON, never sent as `null`.

use serde::{Deserialize, Deserializer, Serialize};

use super::types::{millis, record_id, ConnectionParameters, DriverConfiguration, TelemetryMetric};

/// The body of `POST /telemetry-ext` and `/telemetry-unauth`, as [`upload_body`] writes it;
/// the tests read bodies back with it.
#[cfg(test)]
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub(crate) struct TelemetryRequest {
    /// When the batch was sent, in milliseconds since the Unix epoch.
    pub upload_time: i64,
    /// Always empty for drivers.
    #[serde(default)]
    pub items: Vec<String>,
    /// One JSON text of a [`TelemetryFrontendLog`] per metric.
    #[serde(default)]
    pub proto_logs: Vec<String>,
}

/// The JSON of a [`TelemetryRequest`] of `logs` sent at `upload_time`, written straight into
/// one buffer: each log is serialized into a scratch buffer reused from log to log, then copied
/// into its JSON string with `"` and `\\` escaped (the only characters that JSON written by
/// serde_json holds and a string must escape: control characters are already escaped).
pub(crate) fn upload_body(
    upload_time: i64,
    logs: impl Iterator<Item = TelemetryFrontendLog>,
) -> serde_json::Result<Vec<u8>> {
    let (size, _) = logs.size_hint();
    let mut body = Vec::with_capacity(64 + size.saturating_mul(1024));
    body.extend_from_slice(
        format!(r#"{{"uploadTime":{upload_time},"items":[],"protoLogs":["#).as_bytes(),
    );
    let mut scratch = Vec::with_capacity(1024);
    for (i, log) in logs.enumerate() {
        if i > 0 {
            body.push(b',');
        }
        scratch.clear();
        serde_json::to_writer(&mut scratch, &log)?;
        body.push(b'"');
        let mut rest = &scratch[..];
        while let Some(at) = rest.iter().position(|b| matches!(b, b'"' | b'\\')) {
            body.extend_from_slice(&rest[..at]);
            body.push(b'\\');
            body.push(rest[at]);
            rest = &rest[at + 1..];
        }
        body.extend_from_slice(rest);
        body.push(b'"');
    }
    body.extend_from_slice(b"]}");
    Ok(body)
}

/// The answer of the telemetry endpoints.
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub(crate) struct TelemetryResponse {
    /// Problems with individual logs.
    #[serde(default)]
    pub errors: Vec<serde_json::Value>,
    /// Items accepted.
    #[serde(
        default,
        deserialize_with = "lenient_i64",
        skip_serializing_if = "Option::is_none"
    )]
    pub num_success: Option<i64>,
    /// Proto logs accepted.
    #[serde(
        default,
        deserialize_with = "lenient_i64",
        skip_serializing_if = "Option::is_none"
    )]
    pub num_proto_success: Option<i64>,
}

/// The answer of `GET /api/2.0/connector-service/feature-flags/{DRIVER}/{version}`.
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
pub(crate) struct FeatureFlagsResponse {
    /// The flags that apply to this driver.
    #[serde(default)]
    pub flags: Vec<FeatureFlag>,
    /// How long the answer may be cached, in seconds.
    #[serde(
        default,
        deserialize_with = "lenient_i64",
        skip_serializing_if = "Option::is_none"
    )]
    pub ttl_seconds: Option<i64>,
}

/// One feature flag.
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
pub(crate) struct FeatureFlag {
    /// The flag's name.
    #[serde(default)]
    pub name: String,
    /// Its value as text (`"true"`); a JSON boolean is read as its text too.
    #[serde(default, deserialize_with = "value_as_text")]
    pub value: String,
}

/// Proto3 JSON writes 64-bit integers as strings: accept a number, a numeric string or null.
fn lenient_i64<'de, D: Deserializer<'de>>(d: D) -> Result<Option<i64>, D::Error> {
    Ok(match serde_json::Value::deserialize(d)? {
        serde_json::Value::Number(n) => n.as_i64().or_else(|| n.as_f64().map(|f| f as i64)),
        serde_json::Value::String(s) => s.trim().parse().ok(),
        _ => None,
    })
}

fn value_as_text<'de, D: Deserializer<'de>>(d: D) -> Result<String, D::Error> {
    Ok(match serde_json::Value::deserialize(d)? {
        serde_json::Value::String(s) => s,
        serde_json::Value::Null => String::new(),
        other => other.to_string(),
    })
}

/// One telemetry record, sent as JSON text inside `protoLogs`.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub(crate) struct TelemetryFrontendLog {
    /// The workspace id (authenticated export only).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub workspace_id: Option<i64>,
    /// A fresh UUID v4 per record.
    pub frontend_log_event_id: String,
    /// When and by whom.
    pub context: FrontendLogContext,
    /// What.
    pub entry: FrontendLogEntry,
}

/// `context` of a frontend log.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub(crate) struct FrontendLogContext {
    /// The client's part of the context.
    pub client_context: TelemetryClientContext,
}

/// `context.client_context`.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub(crate) struct TelemetryClientContext {
    /// When the record was made, in milliseconds since the Unix epoch.
    pub timestamp_millis: i64,
    /// The driver's user agent.
    pub user_agent: String,
}

/// `entry` of a frontend log.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub(crate) struct FrontendLogEntry {
    /// The driver's record.
    pub sql_driver_log: SqlDriverLog,
}

/// `entry.sql_driver_log`.
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
pub(crate) struct SqlDriverLog {
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub session_id: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub sql_statement_id: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub system_configuration: Option<DriverSystemConfiguration>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub auth_type: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub driver_connection_params: Option<DriverConnectionParams>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub operation_latency_ms: Option<i64>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub sql_operation: Option<SqlExecutionEvent>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub error_info: Option<DriverErrorInfo>,
}

/// `system_configuration`.
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
pub(crate) struct DriverSystemConfiguration {
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub driver_version: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub driver_name: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub runtime_name: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub runtime_version: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub runtime_vendor: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub os_name: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub os_version: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub os_arch: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub locale_name: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub char_set_encoding: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub process_name: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub client_app_name: Option<String>,
}

/// `driver_connection_params`.
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
pub(crate) struct DriverConnectionParams {
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub http_path: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub mode: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub host_info: Option<HostDetails>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub auth_mech: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub use_proxy: Option<bool>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub enable_arrow: Option<bool>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub enable_direct_results: Option<bool>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub socket_timeout: Option<u64>,
}

/// `host_info`.
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
pub(crate) struct HostDetails {
    pub host_url: String,
    pub port: u16,
}

/// `sql_operation`.
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
pub(crate) struct SqlExecutionEvent {
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub statement_type: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub is_compressed: Option<bool>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub execution_result: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub retry_count: Option<i64>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub operation_detail: Option<OperationDetail>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub chunk_details: Option<ChunkDetails>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub result_latency: Option<ResultLatency>,
}

/// `sql_operation.operation_detail`.
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
pub(crate) struct OperationDetail {
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub n_operation_status_calls: Option<i64>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub operation_status_latency_millis: Option<i64>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub operation_type: Option<String>,
}

/// `sql_operation.chunk_details`.
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
pub(crate) struct ChunkDetails {
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub total_chunks_present: Option<i64>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub total_chunks_iterated: Option<i64>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub initial_chunk_latency_millis: Option<i64>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub slowest_chunk_latency_millis: Option<i64>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub sum_chunks_download_time_millis: Option<i64>,
}

/// `sql_operation.result_latency`.
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
pub(crate) struct ResultLatency {
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub result_set_ready_latency_millis: Option<i64>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub result_set_consumption_latency_millis: Option<i64>,
}

/// `error_info`.
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
pub(crate) struct DriverErrorInfo {
    /// The error kind's name.
    pub error_name: String,
    /// The redacted description (authenticated export only).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub stack_trace: Option<String>,
}

/// What a frontend log needs besides its metric.
#[derive(Debug, Clone, Copy)]
pub(crate) struct LogContext<'a> {
    /// The running system.
    pub system: &'a DriverConfiguration,
    /// The workspace id, when known.
    pub workspace_id: Option<i64>,
    /// The driver's user agent.
    pub user_agent: &'a str,
    /// Whether the log goes to the authenticated endpoint. Unauthenticated logs carry no
    /// workspace, session or statement id, no system or connection details and no error text.
    pub authenticated: bool,
}

fn auth_mech(auth_type: &str) -> &'static str {
    let t = auth_type.to_ascii_lowercase();
    if t == "pat" || t.contains("token") {
        "PAT"
    } else if t.contains("oauth") {
        "DATABRICKS_OAUTH"
    } else {
        "OTHER"
    }
}

fn connection_params(c: &ConnectionParameters) -> DriverConnectionParams {
    DriverConnectionParams {
        http_path: Some(c.http_path.clone()).filter(|p| !p.is_empty()),
        mode: Some("THRIFT".to_string()),
        host_info: Some(HostDetails {
            host_url: crate::redact_url(&c.host_url),
            port: c.port,
        })
        .filter(|h| !h.host_url.is_empty()),
        auth_mech: Some(auth_mech(&c.auth_type).to_string()),
        use_proxy: Some(c.use_proxy),
        enable_arrow: Some(c.enable_arrow),
        enable_direct_results: Some(c.enable_direct_results),
        socket_timeout: c.socket_timeout_ms,
    }
}

fn system_configuration(s: &DriverConfiguration, full: bool) -> DriverSystemConfiguration {
    let mut out = DriverSystemConfiguration {
        driver_version: Some(s.driver_version.clone()),
        driver_name: Some(s.driver_name.clone()),
        ..Default::default()
    };
    if full {
        out.runtime_name = Some(s.runtime_name.clone());
        out.os_name = Some(s.os_name.clone());
        out.os_version = s.os_version.clone();
        out.os_arch = Some(s.os_arch.clone());
        out.locale_name = s.locale_name.clone();
        out.char_set_encoding = Some(s.char_set_encoding.clone());
        out.process_name = s.process_name.clone();
        out.client_app_name = s.client_app_name.clone();
    }
    out
}

fn count(n: u64) -> i64 {
    i64::try_from(n).unwrap_or(i64::MAX)
}

fn sql_operation(m: &TelemetryMetric) -> SqlExecutionEvent {
    let mut op = SqlExecutionEvent {
        operation_detail: Some(OperationDetail {
            operation_type: Some(m.operation_type.as_str().to_string()),
            ..Default::default()
        }),
        ..Default::default()
    };
    if let Some(s) = &m.statement {
        op.statement_type = Some(s.operation_type.statement_type().to_string());
        op.is_compressed = s.compressed;
        op.execution_result = s.result_format.map(|f| f.as_str().to_string());
        op.retry_count = Some(i64::from(s.retry_count));
        op.operation_detail = Some(OperationDetail {
            n_operation_status_calls: Some(i64::from(s.poll_count)),
            operation_status_latency_millis: Some(millis(s.poll_latency)),
            operation_type: Some(s.operation_type.as_str().to_string()),
        });
        if s.chunks_iterated > 0 || s.chunks_present.is_some() {
            op.chunk_details = Some(ChunkDetails {
                total_chunks_present: s.chunks_present.map(count),
                total_chunks_iterated: Some(count(s.chunks_iterated)),
                initial_chunk_latency_millis: s.initial_chunk_latency.map(millis),
                slowest_chunk_latency_millis: s.slowest_chunk_latency.map(millis),
                sum_chunks_download_time_millis: Some(millis(s.sum_chunk_latency)),
            });
        }
        if s.result_ready_latency.is_some() || s.result_consumption_latency.is_some() {
            op.result_latency = Some(ResultLatency {
                result_set_ready_latency_millis: s.result_ready_latency.map(millis),
                result_set_consumption_latency_millis: s.result_consumption_latency.map(millis),
            });
        }
    }
    op
}

impl TelemetryFrontendLog {
    /// The record of one metric.
    pub(crate) fn from_metric(m: &TelemetryMetric, ctx: LogContext<'_>) -> Self {
        let full = ctx.authenticated;
        let log = SqlDriverLog {
            session_id: m.session_id.clone().filter(|_| full),
            sql_statement_id: m.statement_id.clone().filter(|_| full),
            // The system's details go with the connection's: in the record of a session opening
            // (or failing to open); every record names the driver and its version.
            system_configuration: Some(system_configuration(
                ctx.system,
                full && m.connection.is_some(),
            )),
            auth_type: m
                .connection
                .as_ref()
                .map(|c| c.auth_type.clone())
                .filter(|t| full && !t.is_empty()),
            driver_connection_params: m
                .connection
                .as_deref()
                .filter(|_| full)
                .map(connection_params),
            operation_latency_ms: m.latency.map(millis),
            sql_operation: Some(sql_operation(m)),
            error_info: m.error.as_ref().map(|e| DriverErrorInfo {
                error_name: e.name.clone(),
                stack_trace: Some(e.message.clone()).filter(|s| full && !s.is_empty()),
            }),
        };
        TelemetryFrontendLog {
            workspace_id: ctx.workspace_id.filter(|_| full),
            frontend_log_event_id: record_id(),
            context: FrontendLogContext {
                client_context: TelemetryClientContext {
                    timestamp_millis: m.timestamp_millis,
                    user_agent: ctx.user_agent.to_string(),
                },
            },
            entry: FrontendLogEntry {
                sql_driver_log: log,
            },
        }
    }
}

#[cfg(test)]
mod tests {
    use std::sync::Arc;
    use std::time::Duration;

    use tokio::time::Instant;

    use super::*;
    use crate::telemetry::types::{
        ErrorDetails, MetricKind, OperationType, ResultFormat, StatementAggregate,
    };

    fn system() -> DriverConfiguration {
        DriverConfiguration::detect("databricks-sql-rust", Some("app".into()))
    }

    fn connection() -> Arc<ConnectionParameters> {
        Arc::new(ConnectionParameters {
            http_path: "/sql/1.0/warehouses/abc".into(),
            host_url: "https://adb-1.azuredatabricks.net".into(),
            port: 443,
            auth_type: "pat".into(),
            use_proxy: false,
            enable_arrow: true,
            enable_direct_results: true,
            socket_timeout_ms: Some(900_000),
        })
    }

    fn statement_metric() -> TelemetryMetric {
        let mut s = StatementAggregate::new(OperationType::ExecuteStatement, Instant::now());
        s.latency = Some(Duration::from_millis(1234));
        s.result_format = Some(ResultFormat::ExternalLinks);
        s.compressed = Some(true);
        s.chunks_present = Some(3);
        s.chunks_iterated = 3;
        s.initial_chunk_latency = Some(Duration::from_millis(40));
        s.slowest_chunk_latency = Some(Duration::from_millis(90));
        s.sum_chunk_latency = Duration::from_millis(180);
        s.poll_count = 4;
        s.poll_latency = Duration::from_millis(400);
        s.result_ready_latency = Some(Duration::from_millis(800));
        TelemetryMetric {
            kind: MetricKind::Statement,
            timestamp_millis: 1_700_000_000_000,
            session_id: Some("sess-1".into()),
            statement_id: Some("stmt-1".into()),
            connection: Some(connection()),
            operation_type: OperationType::ExecuteStatement,
            latency: Some(Duration::from_millis(1234)),
            statement: Some(s),
            error: None,
        }
    }

    fn ctx(system: &DriverConfiguration, authenticated: bool) -> LogContext<'_> {
        LogContext {
            system,
            workspace_id: Some(42),
            user_agent: "databricks-sql-rust/0.1.0",
            authenticated,
        }
    }

    #[test]
    fn statement_log_has_the_protocol_shape_and_leaves_out_nulls() {
        let sys = system();
        let log = TelemetryFrontendLog::from_metric(&statement_metric(), ctx(&sys, true));
        let v = serde_json::to_value(&log).expect("serializable");
        assert_eq!(v["workspace_id"], 42);
        assert!(uuid::Uuid::parse_str(v["frontend_log_event_id"].as_str().unwrap_or("")).is_ok());
        assert_eq!(
            v["context"]["client_context"]["timestamp_millis"],
            1_700_000_000_000_i64
        );
        assert_eq!(
            v["context"]["client_context"]["user_agent"],
            "databricks-sql-rust/0.1.0"
        );
        let d = &v["entry"]["sql_driver_log"];
        assert_eq!(d["session_id"], "sess-1");
        assert_eq!(d["sql_statement_id"], "stmt-1");
        assert_eq!(d["auth_type"], "pat");
        assert_eq!(d["operation_latency_ms"], 1234);
        assert_eq!(
            d["system_configuration"]["driver_name"],
            "databricks-sql-rust"
        );
        assert_eq!(d["system_configuration"]["char_set_encoding"], "UTF-8");
        assert_eq!(d["driver_connection_params"]["mode"], "THRIFT");
        assert_eq!(d["driver_connection_params"]["auth_mech"], "PAT");
        assert_eq!(d["driver_connection_params"]["host_info"]["port"], 443);
        let op = &d["sql_operation"];
        assert_eq!(op["statement_type"], "SQL");
        assert_eq!(op["execution_result"], "EXTERNAL_LINKS");
        assert_eq!(op["is_compressed"], true);
        assert_eq!(
            op["operation_detail"]["operation_type"],
            "EXECUTE_STATEMENT"
        );
        assert_eq!(op["operation_detail"]["n_operation_status_calls"], 4);
        assert_eq!(op["chunk_details"]["total_chunks_present"], 3);
        assert_eq!(op["chunk_details"]["initial_chunk_latency_millis"], 40);
        assert_eq!(op["chunk_details"]["slowest_chunk_latency_millis"], 90);
        assert_eq!(op["chunk_details"]["sum_chunks_download_time_millis"], 180);
        assert_eq!(op["result_latency"]["result_set_ready_latency_millis"], 800);
        let text = serde_json::to_string(&log).expect("serializable");
        assert!(
            !text.contains("null"),
            "null fields must be left out: {text}"
        );
        assert!(d.get("error_info").is_none());
        assert!(op["result_latency"]
            .get("result_set_consumption_latency_millis")
            .is_none());
    }

    #[test]
    fn unauthenticated_log_carries_no_ids_details_or_error_text() {
        let sys = system();
        let mut m = statement_metric();
        m.error = Some(ErrorDetails {
            name: "Connect".into(),
            message: "connection refused".into(),
            http_status: None,
            terminal: false,
            retryable: true,
        });
        let v = serde_json::to_value(TelemetryFrontendLog::from_metric(&m, ctx(&sys, false)))
            .expect("serializable");
        assert!(v.get("workspace_id").is_none());
        let d = &v["entry"]["sql_driver_log"];
        for absent in [
            "session_id",
            "sql_statement_id",
            "auth_type",
            "driver_connection_params",
        ] {
            assert!(d.get(absent).is_none(), "{absent} must be left out: {d}");
        }
        assert_eq!(
            d["system_configuration"]["driver_name"],
            "databricks-sql-rust"
        );
        assert!(d["system_configuration"].get("os_name").is_none());
        assert_eq!(d["error_info"]["error_name"], "Connect");
        assert!(d["error_info"].get("stack_trace").is_none());
    }

    #[test]
    fn connection_log_names_its_operation_type() {
        let sys = system();
        let m = TelemetryMetric {
            kind: MetricKind::Connection,
            timestamp_millis: 1,
            session_id: Some("s".into()),
            statement_id: None,
            connection: None,
            operation_type: OperationType::CreateSession,
            latency: Some(Duration::from_millis(75)),
            statement: None,
            error: None,
        };
        let v = serde_json::to_value(TelemetryFrontendLog::from_metric(&m, ctx(&sys, true)))
            .expect("serializable");
        let d = &v["entry"]["sql_driver_log"];
        assert_eq!(d["operation_latency_ms"], 75);
        assert_eq!(
            d["sql_operation"]["operation_detail"]["operation_type"],
            "CREATE_SESSION"
        );
        assert!(d.get("sql_statement_id").is_none());
    }

    #[test]
    fn request_and_response_use_the_wire_names() {
        let req = TelemetryRequest {
            upload_time: 5,
            items: vec![],
            proto_logs: vec!["{}".into()],
        };
        assert_eq!(
            serde_json::to_string(&req).expect("serializable"),
            r#"{"uploadTime":5,"items":[],"protoLogs":["{}"]}"#
        );
        let resp: TelemetryResponse =
            serde_json::from_str(r#"{"errors":[],"numSuccess":"2","numProtoSuccess":2}"#)
                .expect("parses");
        assert_eq!(resp.num_success, Some(2));
        assert_eq!(resp.num_proto_success, Some(2));
        let empty: TelemetryResponse = serde_json::from_str("{}").expect("parses");
        assert_eq!(empty.num_proto_success, None);
    }

    #[test]
    fn feature_flag_response_accepts_string_and_number_ttl_and_bool_values() {
        let r: FeatureFlagsResponse = serde_json::from_str(
            r#"{"flags":[{"name":"a","value":"true"},{"name":"b","value":true}],"ttl_seconds":"900"}"#,
        )
        .expect("parses");
        assert_eq!(r.ttl_seconds, Some(900));
        assert_eq!(r.flags[0].value, "true");
        assert_eq!(r.flags[1].value, "true");
        let r: FeatureFlagsResponse =
            serde_json::from_str(r#"{"flags":[],"ttl_seconds":120}"#).expect("parses");
        assert_eq!(r.ttl_seconds, Some(120));
        let r: FeatureFlagsResponse = serde_json::from_str(r#"{}"#).expect("parses");
        assert!(r.flags.is_empty());
        assert_eq!(r.ttl_seconds, None);
    }

    #[test]
    fn auth_mech_maps_auth_types() {
        assert_eq!(auth_mech("pat"), "PAT");
        assert_eq!(auth_mech("oauth-m2m"), "DATABRICKS_OAUTH");
        assert_eq!(auth_mech("custom"), "OTHER");
    }

    #[test]
    fn an_upload_body_carries_each_log_as_its_own_json_text() {
        let sys = system();
        let mut tricky = statement_metric();
        tricky.session_id = Some("quote \" backslash \\ tab \t é ✓".into());
        let metrics = [statement_metric(), tricky];
        let logs: Vec<_> = metrics
            .iter()
            .map(|m| TelemetryFrontendLog::from_metric(m, ctx(&sys, true)))
            .collect();
        let body = upload_body(1_700_000_000_000, logs.clone().into_iter()).expect("body");
        let parsed: TelemetryRequest = serde_json::from_slice(&body).expect("the body is JSON");
        assert_eq!(parsed.upload_time, 1_700_000_000_000);
        assert!(parsed.items.is_empty());
        assert_eq!(parsed.proto_logs.len(), 2);
        for (text, log) in parsed.proto_logs.iter().zip(&logs) {
            assert_eq!(text, &serde_json::to_string(log).expect("log JSON"));
        }
        let empty = upload_body(5, std::iter::empty()).expect("body");
        assert_eq!(empty, br#"{"uploadTime":5,"items":[],"protoLogs":[]}"#);
    }

    #[test]
    fn record_ids_are_distinct_version_4_uuids() {
        let a = crate::telemetry::types::record_id();
        let b = crate::telemetry::types::record_id();
        assert_ne!(a, b);
        let parsed = uuid::Uuid::parse_str(&a).expect("a UUID");
        assert_eq!(parsed.get_version_num(), 4);
        assert_eq!(a.len(), 36);
    }
}
