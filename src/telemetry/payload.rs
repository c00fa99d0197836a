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

/// The JSON of a [`TelemetryRequest`] carrying one log per metric of `metrics`, sent at
/// `upload_time`, written straight into one buffer: each log's JSON text is written escaped, as
/// the content of its string in `protoLogs`, by [`JsonInString`] (no intermediate values or
/// text, no second pass).
pub(crate) fn upload_body(
    upload_time: i64,
    metrics: &[TelemetryMetric],
    ctx: LogContext<'_>,
) -> Vec<u8> {
    let mut body = Vec::with_capacity(64 + metrics.len().saturating_mul(768));
    body.extend_from_slice(b"{\"uploadTime\":");
    body.extend_from_slice(itoa::Buffer::new().format(upload_time).as_bytes());
    body.extend_from_slice(b",\"items\":[],\"protoLogs\":[");
    for (i, metric) in metrics.iter().enumerate() {
        if i > 0 {
            body.push(b',');
        }
        body.push(b'"');
        write_log(&mut JsonInString::new(&mut body), metric, ctx);
        body.push(b'"');
    }
    body.extend_from_slice(b"]}");
    body
}

/// A field name as [`JsonInString`] writes it: `\"name\":` (the name is plain ASCII, so its
/// own quotes are the only characters to escape), made at compile time.
macro_rules! key {
    ($name:literal) => {
        concat!("\\\"", $name, "\\\":")
    };
}

/// Writes one JSON object as the content of an enclosing JSON string: the text a JSON parser
/// reads back from that string is the object's JSON. So every character of the object's JSON
/// that a string must escape is escaped once more: its quotes come out as `\"`, a quote inside
/// one of its strings as `\\\"`, a newline inside one of its strings as `\\n`. Field names are
/// the wire's plain ASCII names and are written as they are.
pub(crate) struct JsonInString<'a> {
    out: &'a mut Vec<u8>,
    /// No field written yet in the object being written.
    first: bool,
}

impl<'a> JsonInString<'a> {
    pub(crate) fn new(out: &'a mut Vec<u8>) -> Self {
        JsonInString { out, first: true }
    }

    /// Write an object: `{`, what `fields` writes, `}`.
    #[inline]
    fn object(&mut self, fields: impl FnOnce(&mut Self)) {
        self.out.push(b'{');
        self.first = true;
        fields(self);
        self.out.push(b'}');
        self.first = false;
    }

    /// Start a field: `key` is its name as [`key!`] writes it.
    #[inline]
    fn key(&mut self, key: &'static str) {
        if !self.first {
            self.out.push(b',');
        }
        self.first = false;
        self.out.extend_from_slice(key.as_bytes());
    }

    #[inline]
    fn field_object(&mut self, key: &'static str, fields: impl FnOnce(&mut Self)) {
        self.key(key);
        self.object(fields);
    }

    #[inline]
    fn field_str(&mut self, key: &'static str, value: &str) {
        self.key(key);
        self.out.extend_from_slice(b"\\\"");
        escape_twice(self.out, value);
        self.out.extend_from_slice(b"\\\"");
    }

    #[inline]
    fn field_i64(&mut self, key: &'static str, value: i64) {
        self.key(key);
        self.out
            .extend_from_slice(itoa::Buffer::new().format(value).as_bytes());
    }

    #[inline]
    fn field_u64(&mut self, key: &'static str, value: u64) {
        self.key(key);
        self.out
            .extend_from_slice(itoa::Buffer::new().format(value).as_bytes());
    }

    #[inline]
    fn field_bool(&mut self, key: &'static str, value: bool) {
        self.key(key);
        self.out
            .extend_from_slice(if value { b"true" } else { b"false" });
    }

    /// Absent (`None`) fields are left out, never written as `null`.
    #[inline]
    fn opt_str(&mut self, key: &'static str, value: Option<&str>) {
        if let Some(v) = value {
            self.field_str(key, v);
        }
    }

    #[inline]
    fn opt_i64(&mut self, key: &'static str, value: Option<i64>) {
        if let Some(v) = value {
            self.field_i64(key, v);
        }
    }

    #[inline]
    fn opt_bool(&mut self, key: &'static str, value: Option<bool>) {
        if let Some(v) = value {
            self.field_bool(key, v);
        }
    }
}

/// The index of the first byte of `bytes` that a JSON string must escape (`"`, `\\` or a
/// control character), looking at eight bytes per step (most values have none).
fn first_to_escape(bytes: &[u8]) -> Option<usize> {
    const ONES: u64 = 0x0101_0101_0101_0101;
    const HIGHS: u64 = 0x8080_8080_8080_8080;
    // A high bit set in each byte of the word that is zero.
    let zero_bytes = |x: u64| x.wrapping_sub(ONES) & !x & HIGHS;
    let mut chunks = bytes.chunks_exact(8);
    let mut offset = 0;
    for chunk in chunks.by_ref() {
        let mut word = [0u8; 8];
        word.copy_from_slice(chunk);
        let x = u64::from_le_bytes(word);
        // Bytes below 0x20 (those with a high bit cannot be: they are masked out by `!x`),
        // bytes equal to `"`, bytes equal to `\\`.
        let hits = (x.wrapping_sub(ONES * 0x20) & !x & HIGHS)
            | zero_bytes(x ^ (ONES * u64::from(b'"')))
            | zero_bytes(x ^ (ONES * u64::from(b'\\')));
        if hits != 0 {
            // Borrows in the subtractions can only mark bytes above a true hit, so the lowest
            // mark is exact.
            return Some(offset + (hits.trailing_zeros() / 8) as usize);
        }
        offset += 8;
    }
    chunks
        .remainder()
        .iter()
        .position(|&b| b == b'"' || b == b'\\' || b < 0x20)
        .map(|at| offset + at)
}

/// Append `value` as it reads inside a JSON string that is itself inside a JSON string: `"`
/// and `\` become `\\\"` and `\\\\`, control characters `\\n`, `\\t`, ... or `\\u00XX`; everything
/// else (all of non-ASCII UTF-8 included) is copied as it is.
fn escape_twice(out: &mut Vec<u8>, value: &str) {
    let mut rest = value.as_bytes();
    while let Some(at) = first_to_escape(rest) {
        out.extend_from_slice(&rest[..at]);
        match rest[at] {
            b'"' => out.extend_from_slice(br#"\\\""#),
            b'\\' => out.extend_from_slice(br#"\\\\"#),
            b'\n' => out.extend_from_slice(br#"\\n"#),
            b'\r' => out.extend_from_slice(br#"\\r"#),
            b'\t' => out.extend_from_slice(br#"\\t"#),
            0x08 => out.extend_from_slice(br#"\\b"#),
            0x0c => out.extend_from_slice(br#"\\f"#),
            control => {
                const HEX: &[u8; 16] = b"0123456789abcdef";
                out.extend_from_slice(br#"\\u00"#);
                out.push(HEX[usize::from(control >> 4)]);
                out.push(HEX[usize::from(control & 0xf)]);
            }
        }
        rest = &rest[at + 1..];
    }
    out.extend_from_slice(rest);
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

/// One telemetry record, sent as JSON text inside `protoLogs` (as [`write_log`] writes it); the
/// tests read logs back with these types, which name every field and its type.
#[cfg(test)]
#[derive(Debug, Clone, PartialEq, Deserialize)]
pub(crate) struct TelemetryFrontendLog {
    /// The workspace id (authenticated export only).
    #[serde(default)]
    pub workspace_id: Option<i64>,
    /// A fresh UUID v4 per record.
    pub frontend_log_event_id: String,
    /// When and by whom.
    pub context: FrontendLogContext,
    /// What.
    pub entry: FrontendLogEntry,
}

/// `context` of a frontend log.
#[cfg(test)]
#[derive(Debug, Clone, PartialEq, Deserialize)]
pub(crate) struct FrontendLogContext {
    /// The client's part of the context.
    pub client_context: TelemetryClientContext,
}

/// `context.client_context`.
#[cfg(test)]
#[derive(Debug, Clone, PartialEq, Deserialize)]
pub(crate) struct TelemetryClientContext {
    /// When the record was made, in milliseconds since the Unix epoch.
    pub timestamp_millis: i64,
    /// The driver's user agent.
    pub user_agent: String,
}

/// `entry` of a frontend log.
#[cfg(test)]
#[derive(Debug, Clone, PartialEq, Deserialize)]
pub(crate) struct FrontendLogEntry {
    /// The driver's record.
    pub sql_driver_log: SqlDriverLog,
}

/// `entry.sql_driver_log`.
#[cfg(test)]
#[derive(Debug, Clone, Default, PartialEq, Deserialize)]
pub(crate) struct SqlDriverLog {
    #[serde(default)]
    pub session_id: Option<String>,
    #[serde(default)]
    pub sql_statement_id: Option<String>,
    #[serde(default)]
    pub system_configuration: Option<DriverSystemConfiguration>,
    #[serde(default)]
    pub auth_type: Option<String>,
    #[serde(default)]
    pub driver_connection_params: Option<DriverConnectionParams>,
    #[serde(default)]
    pub operation_latency_ms: Option<i64>,
    #[serde(default)]
    pub sql_operation: Option<SqlExecutionEvent>,
    #[serde(default)]
    pub error_info: Option<DriverErrorInfo>,
}

/// `system_configuration`.
#[cfg(test)]
#[derive(Debug, Clone, Default, PartialEq, Deserialize)]
pub(crate) struct DriverSystemConfiguration {
    #[serde(default)]
    pub driver_version: Option<String>,
    #[serde(default)]
    pub driver_name: Option<String>,
    #[serde(default)]
    pub runtime_name: Option<String>,
    #[serde(default)]
    pub runtime_version: Option<String>,
    #[serde(default)]
    pub runtime_vendor: Option<String>,
    #[serde(default)]
    pub os_name: Option<String>,
    #[serde(default)]
    pub os_version: Option<String>,
    #[serde(default)]
    pub os_arch: Option<String>,
    #[serde(default)]
    pub locale_name: Option<String>,
    #[serde(default)]
    pub char_set_encoding: Option<String>,
    #[serde(default)]
    pub process_name: Option<String>,
    #[serde(default)]
    pub client_app_name: Option<String>,
}

/// `driver_connection_params`.
#[cfg(test)]
#[derive(Debug, Clone, Default, PartialEq, Deserialize)]
pub(crate) struct DriverConnectionParams {
    #[serde(default)]
    pub http_path: Option<String>,
    #[serde(default)]
    pub mode: Option<String>,
    #[serde(default)]
    pub host_info: Option<HostDetails>,
    #[serde(default)]
    pub auth_mech: Option<String>,
    #[serde(default)]
    pub use_proxy: Option<bool>,
    #[serde(default)]
    pub enable_arrow: Option<bool>,
    #[serde(default)]
    pub enable_direct_results: Option<bool>,
    #[serde(default)]
    pub socket_timeout: Option<u64>,
}

/// `host_info`.
#[cfg(test)]
#[derive(Debug, Clone, Default, PartialEq, Deserialize)]
pub(crate) struct HostDetails {
    pub host_url: String,
    pub port: u16,
}

/// `sql_operation`.
#[cfg(test)]
#[derive(Debug, Clone, Default, PartialEq, Deserialize)]
pub(crate) struct SqlExecutionEvent {
    #[serde(default)]
    pub statement_type: Option<String>,
    #[serde(default)]
    pub is_compressed: Option<bool>,
    #[serde(default)]
    pub execution_result: Option<String>,
    #[serde(default)]
    pub retry_count: Option<i64>,
    #[serde(default)]
    pub operation_detail: Option<OperationDetail>,
    #[serde(default)]
    pub chunk_details: Option<ChunkDetails>,
    #[serde(default)]
    pub result_latency: Option<ResultLatency>,
}

/// `sql_operation.operation_detail`.
#[cfg(test)]
#[derive(Debug, Clone, Default, PartialEq, Deserialize)]
pub(crate) struct OperationDetail {
    #[serde(default)]
    pub n_operation_status_calls: Option<i64>,
    #[serde(default)]
    pub operation_status_latency_millis: Option<i64>,
    #[serde(default)]
    pub operation_type: Option<String>,
}

/// `sql_operation.chunk_details`.
#[cfg(test)]
#[derive(Debug, Clone, Default, PartialEq, Deserialize)]
pub(crate) struct ChunkDetails {
    #[serde(default)]
    pub total_chunks_present: Option<i64>,
    #[serde(default)]
    pub total_chunks_iterated: Option<i64>,
    #[serde(default)]
    pub initial_chunk_latency_millis: Option<i64>,
    #[serde(default)]
    pub slowest_chunk_latency_millis: Option<i64>,
    #[serde(default)]
    pub sum_chunks_download_time_millis: Option<i64>,
}

/// `sql_operation.result_latency`.
#[cfg(test)]
#[derive(Debug, Clone, Default, PartialEq, Deserialize)]
pub(crate) struct ResultLatency {
    #[serde(default)]
    pub result_set_ready_latency_millis: Option<i64>,
    #[serde(default)]
    pub result_set_consumption_latency_millis: Option<i64>,
}

/// `error_info`.
#[cfg(test)]
#[derive(Debug, Clone, Default, PartialEq, Deserialize)]
pub(crate) struct DriverErrorInfo {
    /// The error kind's name.
    pub error_name: String,
    /// The redacted description (authenticated export only).
    #[serde(default)]
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

/// The `auth_mech` of an [`AuthProvider::auth_type`](crate::auth::AuthProvider::auth_type):
/// `pat`, the OAuth methods (`oauth-m2m`, `oauth-u2m`), or anything else.
fn auth_mech(auth_type: &str) -> &'static str {
    let t = auth_type.to_ascii_lowercase();
    if t == "pat" {
        "PAT"
    } else if t.starts_with("oauth") {
        "DATABRICKS_OAUTH"
    } else {
        "OTHER"
    }
}

/// The `TelemetryFrontendLog` of one metric (protocol.md section 8). Unauthenticated logs carry
/// no workspace, session or statement id, no system or connection details and no error text;
/// the system's details go with the connection's, in the record of a session opening (or
/// failing to open), while every record names the driver and its version.
fn write_log(w: &mut JsonInString<'_>, m: &TelemetryMetric, ctx: LogContext<'_>) {
    let full = ctx.authenticated;
    let connection = m.connection.as_deref().filter(|_| full);
    w.object(|w| {
        w.opt_i64(key!("workspace_id"), ctx.workspace_id.filter(|_| full));
        let mut id = uuid::Uuid::encode_buffer();
        w.field_str(
            key!("frontend_log_event_id"),
            record_id().hyphenated().encode_lower(&mut id),
        );
        w.field_object(key!("context"), |w| {
            w.field_object(key!("client_context"), |w| {
                w.field_i64(key!("timestamp_millis"), m.timestamp_millis);
                w.field_str(key!("user_agent"), ctx.user_agent);
            });
        });
        w.field_object(key!("entry"), |w| {
            w.field_object(key!("sql_driver_log"), |w| {
                if full {
                    w.opt_str(key!("session_id"), m.session_id.as_deref());
                    w.opt_str(key!("sql_statement_id"), m.statement_id.as_deref());
                }
                w.field_object(key!("system_configuration"), |w| {
                    write_system(w, ctx.system, connection.is_some());
                });
                if let Some(c) = connection {
                    w.opt_str(
                        key!("auth_type"),
                        Some(c.auth_type.as_str()).filter(|t| !t.is_empty()),
                    );
                    w.field_object(key!("driver_connection_params"), |w| write_connection(w, c));
                }
                w.opt_i64(key!("operation_latency_ms"), m.latency.map(millis));
                w.field_object(key!("sql_operation"), |w| write_sql_operation(w, m));
                if let Some(e) = &m.error {
                    w.field_object(key!("error_info"), |w| {
                        w.field_str(key!("error_name"), &e.name);
                        if full && !e.message.is_empty() {
                            w.field_str(key!("stack_trace"), &e.message);
                        }
                    });
                }
            });
        });
    });
}

/// `system_configuration`: the driver's name and version, and with `full` the rest.
fn write_system(w: &mut JsonInString<'_>, s: &DriverConfiguration, full: bool) {
    w.field_str(key!("driver_version"), &s.driver_version);
    w.field_str(key!("driver_name"), &s.driver_name);
    if full {
        w.field_str(key!("runtime_name"), &s.runtime_name);
        w.field_str(key!("os_name"), &s.os_name);
        w.opt_str(key!("os_version"), s.os_version.as_deref());
        w.field_str(key!("os_arch"), &s.os_arch);
        w.opt_str(key!("locale_name"), s.locale_name.as_deref());
        w.field_str(key!("char_set_encoding"), &s.char_set_encoding);
        w.opt_str(key!("process_name"), s.process_name.as_deref());
        w.opt_str(key!("client_app_name"), s.client_app_name.as_deref());
    }
}

/// `driver_connection_params`.
fn write_connection(w: &mut JsonInString<'_>, c: &ConnectionParameters) {
    w.opt_str(
        key!("http_path"),
        Some(c.http_path.as_str()).filter(|p| !p.is_empty()),
    );
    w.field_str(key!("mode"), "THRIFT");
    let host_url = crate::redact_url(&c.host_url);
    if !host_url.is_empty() {
        w.field_object(key!("host_info"), |w| {
            w.field_str(key!("host_url"), &host_url);
            w.field_u64(key!("port"), u64::from(c.port));
        });
    }
    w.field_str(key!("auth_mech"), auth_mech(&c.auth_type));
    w.field_bool(key!("use_proxy"), c.use_proxy);
    w.field_bool(key!("enable_arrow"), c.enable_arrow);
    w.field_bool(key!("enable_direct_results"), c.enable_direct_results);
    if let Some(t) = c.socket_timeout_ms {
        w.field_u64(key!("socket_timeout"), t);
    }
}

fn count(n: u64) -> i64 {
    i64::try_from(n).unwrap_or(i64::MAX)
}

/// `sql_operation`: the operation's type, and for statements what the aggregate measured.
fn write_sql_operation(w: &mut JsonInString<'_>, m: &TelemetryMetric) {
    let Some(s) = &m.statement else {
        w.field_object(key!("operation_detail"), |w| {
            w.field_str(key!("operation_type"), m.operation_type.as_str());
        });
        return;
    };
    w.field_str(key!("statement_type"), s.operation_type.statement_type());
    w.opt_bool(key!("is_compressed"), s.compressed);
    w.opt_str(
        key!("execution_result"),
        s.result_format.map(|f| f.as_str()),
    );
    w.field_i64(key!("retry_count"), i64::from(s.retry_count));
    w.field_object(key!("operation_detail"), |w| {
        w.field_i64(key!("n_operation_status_calls"), i64::from(s.poll_count));
        w.field_i64(
            key!("operation_status_latency_millis"),
            millis(s.poll_latency),
        );
        w.field_str(key!("operation_type"), s.operation_type.as_str());
    });
    if s.chunks_iterated > 0 || s.chunks_present.is_some() {
        w.field_object(key!("chunk_details"), |w| {
            w.opt_i64(key!("total_chunks_present"), s.chunks_present.map(count));
            w.field_i64(key!("total_chunks_iterated"), count(s.chunks_iterated));
            w.opt_i64(
                key!("initial_chunk_latency_millis"),
                s.initial_chunk_latency.map(millis),
            );
            w.opt_i64(
                key!("slowest_chunk_latency_millis"),
                s.slowest_chunk_latency.map(millis),
            );
            w.field_i64(
                key!("sum_chunks_download_time_millis"),
                millis(s.sum_chunk_latency),
            );
        });
    }
    if s.result_ready_latency.is_some() || s.result_consumption_latency.is_some() {
        w.field_object(key!("result_latency"), |w| {
            w.opt_i64(
                key!("result_set_ready_latency_millis"),
                s.result_ready_latency.map(millis),
            );
            w.opt_i64(
                key!("result_set_consumption_latency_millis"),
                s.result_consumption_latency.map(millis),
            );
        });
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

    /// The text a metric's log is sent as (its string in `protoLogs`, read back).
    fn sent_text(m: &TelemetryMetric, ctx: LogContext<'_>) -> String {
        let body = upload_body(1, std::slice::from_ref(m), ctx);
        let mut request: TelemetryRequest = serde_json::from_slice(&body).expect("body is JSON");
        assert_eq!(request.proto_logs.len(), 1);
        request.proto_logs.remove(0)
    }

    /// The JSON a metric's log is sent as, checked against the wire types on the way.
    fn sent(m: &TelemetryMetric, ctx: LogContext<'_>) -> serde_json::Value {
        let text = sent_text(m, ctx);
        serde_json::from_str::<TelemetryFrontendLog>(&text).expect("the log has the wire types");
        serde_json::from_str(&text).expect("the log is JSON")
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
        let v = sent(&statement_metric(), ctx(&sys, true));
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
        let text = sent_text(&statement_metric(), ctx(&sys, true));
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
        let v = sent(&m, ctx(&sys, false));
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
        let v = sent(&m, ctx(&sys, true));
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
        assert_eq!(auth_mech("oauth-u2m"), "DATABRICKS_OAUTH");
        assert_eq!(auth_mech("token-provider"), "OTHER");
        assert_eq!(auth_mech("custom"), "OTHER");
    }

    #[test]
    fn an_upload_body_carries_each_log_as_its_own_json_text() {
        let sys = system();
        let mut tricky = statement_metric();
        tricky.session_id = Some(
            "quote \" backslash \\ tab \t newline \n nul \u{0} bell \u{7} \u{1f} é ✓ 😀 </>".into(),
        );
        tricky.error = Some(ErrorDetails {
            name: "Server".into(),
            message: "line 1\r\nline 2 \u{8}\u{c} \"quoted\" C:\\path\\".into(),
            http_status: Some(500),
            terminal: true,
            retryable: false,
        });
        let mut plain = statement_metric();
        plain.connection = None;
        let mut connection = statement_metric();
        connection.kind = MetricKind::Connection;
        connection.statement = None;
        let metrics = [plain, tricky, connection];
        let body = upload_body(1_700_000_000_000, &metrics, ctx(&sys, true));
        let parsed: TelemetryRequest = serde_json::from_slice(&body).expect("the body is JSON");
        assert_eq!(parsed.upload_time, 1_700_000_000_000);
        assert!(parsed.items.is_empty());
        assert_eq!(parsed.proto_logs.len(), 3);
        let logs: Vec<TelemetryFrontendLog> = parsed
            .proto_logs
            .iter()
            .map(|text| {
                assert!(!text.contains("null"), "absent fields are left out: {text}");
                serde_json::from_str(text).expect("each log is JSON of the wire types")
            })
            .collect();
        // Every character comes back as it was, through both levels of escaping.
        let tricky = &logs[1].entry.sql_driver_log;
        assert_eq!(tricky.session_id, metrics[1].session_id);
        let error = tricky.error_info.as_ref().expect("error_info");
        assert_eq!(error.error_name, "Server");
        assert_eq!(
            error.stack_trace.as_deref(),
            metrics[1].error.as_ref().map(|e| e.message.as_str())
        );
        assert!(parsed.proto_logs[1].contains("\\u0000"));
        // Records without the connection's details name no system details beyond the driver.
        let system = |log: &TelemetryFrontendLog| {
            log.entry
                .sql_driver_log
                .system_configuration
                .clone()
                .expect("system_configuration")
        };
        assert_eq!(system(&logs[0]).os_name, None);
        assert_eq!(
            system(&logs[2]).os_name.as_deref(),
            Some(sys.os_name.as_str())
        );
        assert_eq!(
            logs[2]
                .entry
                .sql_driver_log
                .driver_connection_params
                .as_ref()
                .and_then(|c| c.socket_timeout),
            Some(900_000)
        );
        let ids: std::collections::HashSet<_> = logs
            .iter()
            .map(|l| l.frontend_log_event_id.clone())
            .collect();
        assert_eq!(ids.len(), 3, "each record has its own id");
        let empty = upload_body(5, &[], ctx(&sys, true));
        assert_eq!(empty, br#"{"uploadTime":5,"items":[],"protoLogs":[]}"#);
    }

    #[test]
    fn the_escape_scan_finds_the_first_byte_to_escape_wherever_it_is() {
        let naive = |b: &[u8]| b.iter().position(|&c| c == b'"' || c == b'\\' || c < 0x20);
        let fillers = [
            b'a', b' ', b'!', b'#', b'[', b']', b'}', 0x7f, 0x80, 0xa0, 0xdf, 0xff,
        ];
        let mut specials: Vec<u8> = (0..0x20).collect();
        specials.extend([b'"', b'\\']);
        for len in 0..20 {
            for &fill in &fillers {
                let mut bytes = vec![fill; len];
                assert_eq!(first_to_escape(&bytes), None, "{bytes:?}");
                for at in 0..len {
                    for &special in &specials {
                        bytes[at] = special;
                        assert_eq!(first_to_escape(&bytes), naive(&bytes), "{bytes:?}");
                        // A second one further on changes nothing.
                        if at + 3 < len {
                            bytes[at + 3] = b'"';
                            assert_eq!(first_to_escape(&bytes), Some(at), "{bytes:?}");
                            bytes[at + 3] = fill;
                        }
                        bytes[at] = fill;
                    }
                }
            }
        }
        let mut state = 0x9e37_79b9_7f4a_7c15_u64;
        for _ in 0..20_000 {
            let len = (state % 40) as usize;
            let bytes: Vec<u8> = (0..len)
                .map(|_| {
                    state ^= state << 13;
                    state ^= state >> 7;
                    state ^= state << 17;
                    // Mostly harmless bytes, now and then one to escape.
                    let b = (state >> 24) as u8;
                    if b < 0x20 && !state.is_multiple_of(8) {
                        b | 0x40
                    } else {
                        b
                    }
                })
                .collect();
            assert_eq!(first_to_escape(&bytes), naive(&bytes), "{bytes:?}");
        }
    }

    #[test]
    fn record_ids_are_distinct_version_4_uuids() {
        let a = crate::telemetry::types::record_id();
        let b = crate::telemetry::types::record_id();
        assert_ne!(a, b);
        assert_eq!(a.get_version_num(), 4);
        assert_eq!(a.get_variant(), uuid::Variant::RFC4122);
    }
}
