//! TLS end to end against the mock warehouse serving HTTPS: its certificate is rejected unless
//! its authority is trusted (PEM bytes or file) or verification is off; a client certificate is
//! presented when configured, and a mock that requires one refuses a client without it. The
//! same settings serve CloudFetch downloads.

mod common;

use std::time::{Duration, Instant};

use databricks_sql::http::Pem;
use databricks_sql::mock::{MockWarehouse, MockWarehouseBuilder};
use databricks_sql::{ClientBuilder, DBSQLClient, ErrorKind};

use common::{count_and_sum_ids, ClientCa};

/// A mock serving HTTPS whose results above 1,000 rows are CloudFetch files.
fn https_mock() -> MockWarehouseBuilder {
    MockWarehouse::builder()
        .tls(true)
        .cloudfetch_threshold_rows(1_000)
        .cloudfetch_rows_per_file(10_000)
}

/// A builder pointed at `mock` with nothing trusted beyond the default roots.
fn untrusting(mock: &MockWarehouse) -> ClientBuilder {
    DBSQLClient::builder()
        .host(mock.host())
        .port(mock.port())
        .http_path(mock.http_path())
        .token(mock.token())
        .telemetry_enabled(false)
}

/// Runs a CloudFetch query (Thrift and file downloads over TLS) and closes the client.
async fn query(mock: &MockWarehouse, client: DBSQLClient) {
    let session = client.open_session().await.expect("session opens");
    let mut op = session
        .execute_statement("SELECT * FROM mock.rows(25000)")
        .await
        .expect("statement runs");
    let (rows, _) = count_and_sum_ids(&op.fetch_all().await.expect("rows arrive"));
    assert_eq!(rows, 25_000);
    op.close().await.unwrap();
    session.close().await.unwrap();
    client.close().await.unwrap();
    assert_eq!(mock.cloudfetch_get_counts().len(), 3, "CloudFetch over TLS");
}

fn ca_pem(mock: &MockWarehouse) -> String {
    mock.ca_certificate_pem()
        .expect("an https mock has a CA")
        .to_string()
}

#[tokio::test]
async fn the_https_mock_is_rejected_by_default_without_retries() {
    let mock = https_mock().start().await.unwrap();
    assert!(mock.base_url().starts_with("https://127.0.0.1:"));
    assert!(mock.url().starts_with("https://"));
    let started = Instant::now();
    let err = untrusting(&mock)
        .build()
        .unwrap()
        .open_session()
        .await
        .unwrap_err();
    assert_eq!(err.kind(), ErrorKind::Connect, "{err}");
    assert!(err.to_string().contains("certificate"), "{err}");
    assert!(
        started.elapsed() < Duration::from_secs(5),
        "a certificate error is not worth waiting for: {:?}",
        started.elapsed()
    );
    assert_eq!(mock.call_count("OpenSession"), 0);
}

#[tokio::test]
async fn the_https_mock_is_accepted_with_its_ca_as_pem_bytes() {
    let mock = https_mock().start().await.unwrap();
    let client = untrusting(&mock)
        .add_root_certificates(Pem::from_bytes(ca_pem(&mock)))
        .build()
        .unwrap();
    query(&mock, client).await;
}

#[tokio::test]
async fn the_https_mock_is_accepted_with_its_ca_from_a_file() {
    let mock = https_mock().start().await.unwrap();
    let file = std::env::temp_dir().join(format!(
        "dbsql-mock-ca-{}-{}.pem",
        std::process::id(),
        mock.port()
    ));
    std::fs::write(&file, ca_pem(&mock)).unwrap();
    let client = untrusting(&mock)
        .add_root_certificates(Pem::from_file(&file))
        .build()
        .unwrap();
    query(&mock, client).await;
    std::fs::remove_file(&file).unwrap();
}

#[tokio::test]
async fn the_client_builder_of_an_https_mock_trusts_its_ca() {
    let mock = https_mock().start().await.unwrap();
    let client = mock
        .client_builder()
        .telemetry_enabled(false)
        .build()
        .unwrap();
    query(&mock, client).await;
}

#[tokio::test]
async fn the_https_mock_is_accepted_with_verification_off() {
    let mock = https_mock().start().await.unwrap();
    let client = untrusting(&mock)
        .danger_accept_invalid_certificates(true)
        .build()
        .unwrap();
    query(&mock, client).await;
}

#[tokio::test]
async fn a_ca_file_that_cannot_be_read_or_holds_no_certificate_fails_the_build() {
    let mock = https_mock().start().await.unwrap();
    let missing = std::env::temp_dir().join("dbsql-no-such-dir/missing-ca.pem");
    let err = untrusting(&mock)
        .add_root_certificates(Pem::from_file(&missing))
        .build()
        .unwrap_err();
    assert_eq!(err.kind(), ErrorKind::Config);
    assert!(err.to_string().contains("missing-ca.pem"), "{err}");

    let empty = std::env::temp_dir().join(format!(
        "dbsql-empty-{}-{}.pem",
        std::process::id(),
        mock.port()
    ));
    std::fs::write(&empty, "no certificate here\n").unwrap();
    let err = untrusting(&mock)
        .add_root_certificates(Pem::from_file(&empty))
        .build()
        .unwrap_err();
    assert_eq!(err.kind(), ErrorKind::Config);
    let text = err.to_string();
    assert!(text.contains(&empty.display().to_string()), "{text}");
    assert!(text.contains("no certificate"), "{text}");
    std::fs::remove_file(&empty).unwrap();
}

#[tokio::test]
async fn a_client_certificate_is_presented_and_required() {
    let client_ca = ClientCa::new("test client CA");
    let mock = https_mock()
        .require_client_certificate(client_ca.pem.clone())
        .start()
        .await
        .unwrap();
    let trusting = || untrusting(&mock).add_root_certificates(Pem::from_bytes(ca_pem(&mock)));

    let err = trusting()
        .build()
        .unwrap()
        .open_session()
        .await
        .unwrap_err();
    assert_eq!(err.kind(), ErrorKind::Connect, "{err}");
    assert!(
        err.to_string().to_lowercase().contains("certificate"),
        "{err}"
    );
    assert_eq!(
        mock.call_count("OpenSession"),
        0,
        "refused in the handshake"
    );

    let stranger = ClientCa::new("another CA").client_certificate("stranger");
    let err = trusting()
        .client_certificate(Pem::from_bytes(stranger.0), Pem::from_bytes(stranger.1))
        .build()
        .unwrap()
        .open_session()
        .await
        .unwrap_err();
    assert_eq!(err.kind(), ErrorKind::Connect, "{err}");
    assert_eq!(mock.call_count("OpenSession"), 0);

    // Also on every CloudFetch download: each new connection presents it.
    let (cert, key) = client_ca.client_certificate("driver");
    let client = trusting()
        .client_certificate(Pem::from_bytes(cert), Pem::from_bytes(key))
        .build()
        .unwrap();
    query(&mock, client).await;
}
