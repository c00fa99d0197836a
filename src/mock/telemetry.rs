//! The feature-flag and telemetry endpoints of the mock warehouse: what they answer and what
//! they record (protocol.md section 8).
//!
//! - `GET /api/2.0/connector-service/feature-flags/{driver}/{version}` (auth required) answers
//!   `{"flags":[{"name":..,"value":..}],"ttl_seconds":N}` from the configured flags.
//! - `POST /telemetry-ext` (auth required) and `POST /telemetry-unauth` (no auth) take
//!   `{"uploadTime","items","protoLogs":[json text...]}`, record each protoLog parsed, and answer
//!   `{"errors":[],"numSuccess":n,"numProtoSuccess":n}`.

use std::collections::{BTreeMap, VecDeque};

use serde::Deserialize;
use serde_json::{json, Value};

use super::state::{push_bounded, HISTORY_LIMIT};

/// The flag that turns telemetry on for this driver.
pub const TELEMETRY_FLAG_NAME: &str =
    "databricks.partnerplatform.clientConfigsFeatureFlags.enableTelemetryForRust";

/// The `ttl_seconds` the feature-flag endpoint answers by default (15 minutes).
pub const DEFAULT_FEATURE_FLAG_TTL_SECONDS: u64 = 900;

/// The most bytes of telemetry upload bodies the mock keeps (256 MiB); beyond it the oldest
/// uploads are forgotten.
pub(crate) const UPLOAD_BYTES_LIMIT: usize = 256 << 20;

/// Path prefix of the feature-flag endpoint; `{driver}/{version}` follow.
pub(crate) const FEATURE_FLAGS_PREFIX: &str = "/api/2.0/connector-service/feature-flags/";

/// One request the telemetry endpoints received.
#[derive(Debug, Clone, PartialEq)]
#[non_exhaustive]
pub struct TelemetryRequest {
    /// [`endpoint::TELEMETRY_EXT`](crate::mock::endpoint::TELEMETRY_EXT) or
    /// [`endpoint::TELEMETRY_UNAUTH`](crate::mock::endpoint::TELEMETRY_UNAUTH).
    pub endpoint: &'static str,
    /// The request headers (names lower case), without `Authorization`.
    pub headers: Vec<(String, String)>,
    /// Whether the request carried an `Authorization` header (it should not on `telemetry-unauth`).
    pub had_authorization: bool,
    /// The body as received (lossy UTF-8).
    pub body: String,
    /// The `uploadTime` of the body, when it parsed.
    pub upload_time: Option<i64>,
    /// Each protoLog of the body that parsed as JSON, in order.
    pub proto_logs: Vec<Value>,
}

/// A telemetry upload as received: kept raw and parsed only when it is asked for, so that taking
/// it in costs the mock little (a driver under load sends many).
#[derive(Debug, Clone)]
pub(crate) struct Upload {
    endpoint: &'static str,
    headers: Vec<(String, String)>,
    had_authorization: bool,
    body: bytes::Bytes,
}

impl Upload {
    /// An upload to `endpoint` and the reply to it: `Ok` with the JSON answer (counting its
    /// protoLogs), or `Err` with a JSON error body for a body that is not an upload (HTTP 400).
    /// The upload is to be recorded either way.
    pub(crate) fn receive(
        endpoint: &'static str,
        headers: Vec<(String, String)>,
        had_authorization: bool,
        body: bytes::Bytes,
    ) -> (Self, Result<Value, Value>) {
        #[derive(Deserialize)]
        #[serde(rename_all = "camelCase")]
        struct Envelope {
            #[serde(default)]
            proto_logs: Vec<serde::de::IgnoredAny>,
        }
        let reply = match serde_json::from_slice::<Envelope>(&body) {
            Ok(envelope) => {
                let n = envelope.proto_logs.len();
                Ok(json!({"errors": [], "numSuccess": n, "numProtoSuccess": n}))
            }
            Err(e) => Err(json!({
                "error_code": "MALFORMED_REQUEST",
                "message": format!("the body is not a telemetry upload: {e}"),
            })),
        };
        let upload = Upload {
            endpoint,
            headers,
            had_authorization,
            body,
        };
        (upload, reply)
    }

    /// The upload, parsed: its `uploadTime` and each protoLog that is JSON.
    pub(crate) fn parse(&self) -> TelemetryRequest {
        #[derive(Deserialize)]
        #[serde(rename_all = "camelCase")]
        struct Envelope {
            upload_time: Option<i64>,
            #[serde(default)]
            proto_logs: Vec<String>,
        }
        let parsed = serde_json::from_slice::<Envelope>(&self.body).ok();
        TelemetryRequest {
            endpoint: self.endpoint,
            headers: self.headers.clone(),
            had_authorization: self.had_authorization,
            body: String::from_utf8_lossy(&self.body).into_owned(),
            upload_time: parsed.as_ref().and_then(|p| p.upload_time),
            proto_logs: parsed
                .map(|p| {
                    p.proto_logs
                        .iter()
                        .filter_map(|log| serde_json::from_str::<Value>(log).ok())
                        .collect()
                })
                .unwrap_or_default(),
        }
    }
}

/// One request the feature-flag endpoint received.
#[derive(Debug, Clone, PartialEq, Eq)]
#[non_exhaustive]
pub struct FeatureFlagRequest {
    /// The `{driver}` path segment, e.g. `RUST`.
    pub driver: String,
    /// The `{version}` path segment.
    pub version: String,
    /// The request headers (names lower case), without `Authorization`.
    pub headers: Vec<(String, String)>,
}

/// Feature-flag settings and what the telemetry endpoints recorded.
#[derive(Debug, Clone)]
pub(crate) struct TelemetryState {
    pub(crate) flags: BTreeMap<String, String>,
    pub(crate) ttl_seconds: u64,
    pub(crate) uploads: VecDeque<Upload>,
    /// Bytes of the bodies in `uploads`.
    pub(crate) upload_bytes: usize,
    pub(crate) flag_requests: VecDeque<FeatureFlagRequest>,
}

impl Default for TelemetryState {
    fn default() -> Self {
        let mut flags = BTreeMap::new();
        flags.insert(TELEMETRY_FLAG_NAME.to_string(), "false".to_string());
        TelemetryState {
            flags,
            ttl_seconds: DEFAULT_FEATURE_FLAG_TTL_SECONDS,
            uploads: VecDeque::new(),
            upload_bytes: 0,
            flag_requests: VecDeque::new(),
        }
    }
}

/// Split `{driver}/{version}` after the feature-flag prefix; `None` when the path is not one.
pub(crate) fn feature_flag_path(path: &str) -> Option<(String, String)> {
    let rest = path.strip_prefix(FEATURE_FLAGS_PREFIX)?;
    let (driver, version) = rest.split_once('/')?;
    if driver.is_empty() || version.is_empty() || version.contains('/') {
        return None;
    }
    Some((driver.to_string(), version.to_string()))
}

impl TelemetryState {
    /// Record a feature-flag request and build the JSON reply.
    pub(crate) fn feature_flags(&mut self, request: FeatureFlagRequest) -> Value {
        push_bounded(&mut self.flag_requests, request);
        let flags: Vec<Value> = self
            .flags
            .iter()
            .map(|(name, value)| json!({"name": name, "value": value}))
            .collect();
        json!({"flags": flags, "ttl_seconds": self.ttl_seconds})
    }

    /// Keep `upload`: the latest 10,000 uploads, and of those at most
    /// [`UPLOAD_BYTES_LIMIT`] bytes of bodies (the oldest go first).
    pub(crate) fn record(&mut self, upload: Upload) {
        self.record_within(upload, UPLOAD_BYTES_LIMIT);
    }

    /// [`record`](Self::record) with a byte limit of `max_bytes`.
    fn record_within(&mut self, upload: Upload, max_bytes: usize) {
        self.upload_bytes += upload.body.len();
        self.uploads.push_back(upload);
        while self.uploads.len() > HISTORY_LIMIT
            || (self.upload_bytes > max_bytes && self.uploads.len() > 1)
        {
            if let Some(old) = self.uploads.pop_front() {
                self.upload_bytes -= old.body.len();
            }
        }
    }

    /// The uploads kept, oldest first: cheap copies, to parse after the mock's lock is let go.
    pub(crate) fn uploads(&self) -> Vec<Upload> {
        self.uploads.iter().cloned().collect()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn feature_flag_path_has_driver_and_version() {
        assert_eq!(
            feature_flag_path("/api/2.0/connector-service/feature-flags/RUST/0.1.0"),
            Some(("RUST".into(), "0.1.0".into()))
        );
        assert_eq!(
            feature_flag_path("/api/2.0/connector-service/feature-flags/RUST"),
            None
        );
        assert_eq!(
            feature_flag_path("/api/2.0/connector-service/feature-flags/RUST/1/x"),
            None
        );
        assert_eq!(feature_flag_path("/telemetry-ext"), None);
    }

    #[test]
    fn feature_flags_answer_the_configured_flags_and_ttl() {
        let mut t = TelemetryState::default();
        t.flags
            .insert(TELEMETRY_FLAG_NAME.to_string(), "true".to_string());
        t.ttl_seconds = 120;
        let reply = t.feature_flags(FeatureFlagRequest {
            driver: "RUST".into(),
            version: "0.1.0".into(),
            headers: vec![],
        });
        assert_eq!(
            reply,
            json!({"flags": [{"name": TELEMETRY_FLAG_NAME, "value": "true"}], "ttl_seconds": 120})
        );
        assert_eq!(t.flag_requests.len(), 1);
    }

    #[test]
    fn upload_records_each_proto_log_parsed() {
        let mut t = TelemetryState::default();
        let body = json!({
            "uploadTime": 1700000000000i64,
            "items": [],
            "protoLogs": [
                json!({"frontend_log_event_id": "a", "entry": {"sql_driver_log": {"session_id": "s"}}}).to_string(),
                json!({"frontend_log_event_id": "b"}).to_string(),
            ]
        });
        let (upload, reply) = Upload::receive(
            "telemetry-ext",
            vec![("content-type".into(), "application/json".into())],
            true,
            body.to_string().into(),
        );
        t.record(upload);
        let reply = reply.unwrap();
        assert_eq!(
            reply,
            json!({"errors": [], "numSuccess": 2, "numProtoSuccess": 2})
        );
        let requests: Vec<_> = t.uploads().iter().map(Upload::parse).collect();
        let logs = &requests[0].proto_logs;
        assert_eq!(logs.len(), 2);
        assert_eq!(logs[0]["entry"]["sql_driver_log"]["session_id"], "s");
        assert_eq!(requests[0].upload_time, Some(1700000000000));
        assert!(requests[0].had_authorization);
    }

    #[test]
    fn a_body_that_is_not_an_upload_is_rejected_but_recorded() {
        let mut t = TelemetryState::default();
        let (upload, reply) = Upload::receive("telemetry-unauth", vec![], false, "not json".into());
        t.record(upload);
        assert!(reply.is_err());
        let requests: Vec<_> = t.uploads().iter().map(Upload::parse).collect();
        assert_eq!(requests.len(), 1);
        assert_eq!(requests[0].body, "not json");
        assert!(requests[0].proto_logs.is_empty());
    }

    #[test]
    fn keeps_at_most_the_byte_limit_of_uploads_dropping_the_oldest() {
        let mut t = TelemetryState::default();
        let big = bytes::Bytes::from(vec![b' '; 501]);
        for _ in 0..3 {
            let (upload, _) = Upload::receive("telemetry-ext", vec![], true, big.clone());
            t.record_within(upload, 1000);
        }
        assert_eq!(t.uploads.len(), 1, "two would pass the limit");
        assert_eq!(t.upload_bytes, big.len());
    }
}
