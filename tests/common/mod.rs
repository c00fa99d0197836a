//! Shared set-up of the integration tests: a mock warehouse and a client pointed at it.
//!
//! Every test binary compiles its own copy of this module and uses a part of it, so the parts a
//! given binary leaves out are not dead code.
#![allow(dead_code)]

use std::time::Duration;

use databricks_sql::arrow::array::{Array, Int64Array, RecordBatch};
use databricks_sql::mock::{endpoint, MockWarehouse};
use databricks_sql::{ClientBuilder, DBSQLClient};

/// A mock warehouse and a client builder pointed at it, with fast retries for fault tests.
pub async fn mock() -> (MockWarehouse, ClientBuilder) {
    let mock = MockWarehouse::start().await.expect("mock warehouse starts");
    let builder = mock.client_builder().retry_policy(
        databricks_sql::http::RetryPolicy::default()
            .with_max_attempts(3)
            .with_backoff(Duration::from_millis(5), Duration::from_millis(50))
            .with_overall_timeout(Duration::from_secs(10)),
    );
    (mock, builder)
}

pub async fn client() -> (MockWarehouse, DBSQLClient) {
    let (mock, builder) = mock().await;
    (mock, builder.build().expect("client builds"))
}

/// Row count and sum of the `id` column (the first column, BIGINT) of `batches`.
pub fn count_and_sum_ids(batches: &[RecordBatch]) -> (usize, i64) {
    let mut rows = 0;
    let mut sum = 0i64;
    for b in batches {
        let ids = b
            .column(0)
            .as_any()
            .downcast_ref::<Int64Array>()
            .expect("id column is BIGINT");
        rows += ids.len();
        sum += ids
            .iter()
            .map(|v| v.expect("id is never null"))
            .sum::<i64>();
    }
    (rows, sum)
}

/// Wait (bounded, 5 s) until `check` holds.
pub async fn eventually(what: &str, mut check: impl FnMut() -> bool) {
    for _ in 0..500 {
        if check() {
            return;
        }
        tokio::time::sleep(Duration::from_millis(10)).await;
    }
    panic!("timed out waiting for: {what}");
}

/// Rows of the CloudFetch query of [`every_kind_of_request`]: three files of a mock built with
/// [`cloudfetch_in_small_files`].
pub const CLOUDFETCH_ROWS: i64 = 30_000;

/// A mock whose results above 1,000 rows are CloudFetch files of 10,000 rows, and whose
/// telemetry flag is on.
pub fn cloudfetch_in_small_files() -> databricks_sql::mock::MockWarehouseBuilder {
    MockWarehouse::builder()
        .cloudfetch_threshold_rows(1_000)
        .cloudfetch_rows_per_file(10_000)
        .telemetry_enabled(true)
}

/// `builder` with OAuth M2M (the mock's default client), telemetry with its own provider and a
/// fast flush, and no retries worth waiting for.
pub fn with_oauth_and_telemetry(builder: ClientBuilder) -> ClientBuilder {
    let mut telemetry = databricks_sql::telemetry::TelemetryConfiguration::default();
    telemetry.flush_interval = Duration::from_millis(20);
    builder
        .oauth_m2m(databricks_sql::auth::OAuthM2M::new(
            databricks_sql::mock::DEFAULT_OAUTH_CLIENT_ID,
            databricks_sql::mock::DEFAULT_OAUTH_CLIENT_SECRET,
        ))
        .telemetry(telemetry)
        .telemetry_provider(databricks_sql::telemetry::TelemetryClientProvider::new())
        .retry_policy(databricks_sql::http::RetryPolicy::default().with_max_attempts(1))
}

/// Makes a request of every kind with `client` and closes it: an OAuth token, the telemetry
/// feature flag, Thrift calls, CloudFetch downloads of [`CLOUDFETCH_ROWS`] rows and, at close,
/// a telemetry upload. Checks that each reached `mock`.
pub async fn every_kind_of_request(mock: &MockWarehouse, client: DBSQLClient) {
    let session = client.open_session().await.expect("session opens");
    let mut op = session
        .execute_statement(&format!("SELECT * FROM mock.rows({CLOUDFETCH_ROWS})"))
        .await
        .expect("statement runs");
    let batches = op.fetch_all().await.expect("rows arrive");
    let (rows, sum) = count_and_sum_ids(&batches);
    assert_eq!(rows as i64, CLOUDFETCH_ROWS);
    assert_eq!(sum, CLOUDFETCH_ROWS * (CLOUDFETCH_ROWS - 1) / 2);
    op.close().await.expect("operation closes");
    session.close().await.expect("session closes");
    client.close().await.expect("client closes");

    let counts = mock.call_counts();
    let count = |name: &str| counts.get(name).copied().unwrap_or(0);
    assert!(count("OpenSession") >= 1, "{counts:?}");
    assert!(count(endpoint::OAUTH_TOKEN) >= 1, "{counts:?}");
    assert!(count(endpoint::FEATURE_FLAGS) >= 1, "{counts:?}");
    assert_eq!(count(endpoint::CLOUDFETCH_FILE), 3, "{counts:?}");
    assert!(!mock.telemetry_requests().is_empty(), "{counts:?}");
}

/// The `use_proxy` of the connection parameters telemetry reported for the session opened.
pub fn reported_use_proxy(mock: &MockWarehouse) -> Option<bool> {
    mock.telemetry_logs().iter().find_map(|log| {
        log["entry"]["sql_driver_log"]["driver_connection_params"]["use_proxy"].as_bool()
    })
}

/// `der` as a PEM block labelled `label` (`CERTIFICATE`, `PRIVATE KEY`).
pub fn pem(label: &str, der: &[u8]) -> String {
    use base64::Engine as _;
    let text = base64::engine::general_purpose::STANDARD.encode(der);
    let lines: Vec<&str> = text
        .as_bytes()
        .chunks(64)
        .map(|c| std::str::from_utf8(c).expect("base64 is ASCII"))
        .collect();
    format!(
        "-----BEGIN {label}-----\n{}\n-----END {label}-----\n",
        lines.join("\n")
    )
}

/// A certificate authority for client certificates, made with rcgen.
pub struct ClientCa {
    issuer: rcgen::Issuer<'static, rcgen::KeyPair>,
    /// The authority's certificate (PEM).
    pub pem: String,
}

impl ClientCa {
    pub fn new(name: &str) -> ClientCa {
        let key = rcgen::KeyPair::generate().expect("key");
        let mut params = rcgen::CertificateParams::new(Vec::<String>::new()).expect("params");
        params
            .distinguished_name
            .push(rcgen::DnType::CommonName, name);
        params.is_ca = rcgen::IsCa::Ca(rcgen::BasicConstraints::Unconstrained);
        params.key_usages = vec![
            rcgen::KeyUsagePurpose::KeyCertSign,
            rcgen::KeyUsagePurpose::DigitalSignature,
        ];
        let cert = params.self_signed(&key).expect("CA certificate");
        ClientCa {
            pem: pem("CERTIFICATE", cert.der()),
            issuer: rcgen::Issuer::new(params, key),
        }
    }

    /// A client certificate signed by this authority and its private key, both PEM.
    pub fn client_certificate(&self, name: &str) -> (String, String) {
        let key = rcgen::KeyPair::generate().expect("key");
        let mut params = rcgen::CertificateParams::new(Vec::<String>::new()).expect("params");
        params
            .distinguished_name
            .push(rcgen::DnType::CommonName, name);
        params.extended_key_usages = vec![rcgen::ExtendedKeyUsagePurpose::ClientAuth];
        let cert = params
            .signed_by(&key, &self.issuer)
            .expect("client certificate");
        (
            pem("CERTIFICATE", cert.der()),
            pem("PRIVATE KEY", &key.serialize_der()),
        )
    }
}

pub mod oauth;
