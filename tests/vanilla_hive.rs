//! Plain HiveServer2 servers (Apache Spark Thrift Server, Apache Hive, Kyuubi) through the
//! public API, against the mock playing one (`vanilla_hive`): the handshake fallback, Basic
//! authentication and the auth cookie, column-based results fetched until an empty page,
//! metadata calls and errors.

mod common;

use common::count_and_sum_ids;
use databricks_sql::arrow::array::{Array, StringArray};
use databricks_sql::mock::{
    protocol_version, MockWarehouse, DEFAULT_BASIC_PASSWORD, DEFAULT_BASIC_USER,
};
use databricks_sql::{DBSQLClient, ErrorKind, SessionOptions};

async fn hive() -> (MockWarehouse, DBSQLClient) {
    let mock = MockWarehouse::builder()
        .vanilla_hive(true)
        .start()
        .await
        .expect("mock starts");
    let client = mock.client_builder().build().expect("client builds");
    (mock, client)
}

#[tokio::test]
async fn a_plain_hiveserver2_is_reached_out_of_the_box_and_remembered() {
    let (mock, client) = hive().await;
    let session = client.open_session().await.unwrap();
    assert_eq!(
        session.server_protocol_version(),
        protocol_version::HIVE_V10
    );
    // The Databricks handshake was refused once, then HiveServer2's accepted.
    assert_eq!(mock.call_count("OpenSession"), 2);
    assert_eq!(mock.handled_count("OpenSession"), 2);
    assert_eq!(mock.sessions().len(), 1);
    // The next session goes straight to HiveServer2's handshake.
    let second = client.open_session().await.unwrap();
    assert_eq!(mock.call_count("OpenSession"), 3);
    second.close().await.unwrap();
    session.close().await.unwrap();
    assert_eq!(mock.open_sessions(), 0);
    client.close().await.unwrap();
    // Only Thrift calls: no telemetry or feature-flag request went to the HiveServer2 host.
    let others: Vec<String> = mock
        .requests()
        .iter()
        .filter(|r| r.path != mock.http_path())
        .map(|r| format!("{} {}", r.method, r.path))
        .collect();
    assert!(others.is_empty(), "{others:?}");
}

#[tokio::test]
async fn statements_send_no_databricks_fields_and_read_every_page_until_an_empty_one() {
    let mock = MockWarehouse::builder()
        .vanilla_hive(true)
        .start()
        .await
        .unwrap();
    let client = mock
        .client_builder()
        .max_rows_per_fetch(10_000)
        .build()
        .unwrap();
    let session = client.open_session().await.unwrap();
    let mut op = session
        .execute_statement("SELECT * FROM range(100000)")
        .await
        .unwrap();
    let batches = op.fetch_all().await.unwrap();
    let n = 100_000i64;
    assert_eq!(count_and_sum_ids(&batches), (n as usize, n * (n - 1) / 2));
    // Ten pages of 10,000 rows, then the empty page that ends a HiveServer2 result.
    assert_eq!(mock.call_count("FetchResults"), 11);
    let statement = &mock.statements()[0];
    assert!(!statement.can_read_arrow);
    assert!(!statement.can_download_result);
    assert!(!statement.can_decompress_lz4);
    assert_eq!(statement.direct_results_max_rows, None);
    op.close().await.unwrap();
    session.close().await.unwrap();
    client.close().await.unwrap();
}

#[tokio::test]
async fn basic_auth_is_sent_and_the_auth_cookie_sent_back() {
    let (mock, client) = hive().await;
    let session = client.open_session().await.unwrap();
    let mut op = session.execute_statement("SELECT 1").await.unwrap();
    op.fetch_all().await.unwrap();
    op.close().await.unwrap();
    session.close().await.unwrap();
    let thrift_requests = mock
        .requests()
        .iter()
        .filter(|r| r.path == mock.http_path())
        .count();
    assert!(thrift_requests >= 5, "{thrift_requests}");
    // Every request after the first carried the cookie the first reply set.
    assert_eq!(mock.cookie_authenticated_requests(), thrift_requests - 1);
    client.close().await.unwrap();
}

#[tokio::test]
async fn wrong_credentials_and_bearer_tokens_are_refused_with_clear_errors() {
    let mock = MockWarehouse::builder()
        .basic_credentials("alice", "right-password")
        .start()
        .await
        .unwrap();
    let wrong = mock
        .client_builder()
        .basic_auth("alice", "wrong-password")
        .build()
        .unwrap();
    let err = wrong.open_session().await.expect_err("refused");
    assert_eq!(err.kind(), ErrorKind::Auth, "{err}");
    assert_eq!(err.http_status(), Some(401));
    assert!(!err.to_string().contains("wrong-password"), "{err}");
    // HiveServer2 answers a bearer token with HTTP 500.
    let bearer = mock.client_builder().token("dapi-token").build().unwrap();
    let err = bearer.open_session().await.expect_err("refused");
    assert_eq!(err.http_status(), Some(500), "{err}");
    assert!(!err.to_string().contains("dapi-token"), "{err}");
    let right = mock.client_builder().build().unwrap();
    right.open_session().await.unwrap().close().await.unwrap();
    assert_eq!(
        (DEFAULT_BASIC_USER, DEFAULT_BASIC_PASSWORD),
        ("mock-user", "mock-password"),
        "the documented defaults"
    );
}

#[tokio::test]
async fn a_failing_statement_reports_its_sqlstate() {
    let (_mock, client) = hive().await;
    let session = client.open_session().await.unwrap();
    let err = async {
        let mut op = session
            .execute_statement("SELECT * FROM no_such_table")
            .await?;
        op.fetch_all().await
    }
    .await
    .expect_err("fails");
    assert_eq!(err.kind(), ErrorKind::Server, "{err}");
    assert_eq!(err.sql_state(), Some("42P01"), "{err}");
    assert!(err.to_string().contains("no_such_table"), "{err}");
    session.close().await.unwrap();
}

#[tokio::test]
async fn the_initial_schema_is_sent_as_use_database() {
    let (mock, client) = hive().await;
    let session = client
        .open_session_with(SessionOptions::new().schema("sales"))
        .await
        .unwrap();
    assert_eq!(mock.sessions()[0].schema.as_deref(), Some("sales"));
    let mut op = session
        .execute_statement("SELECT current_schema()")
        .await
        .unwrap();
    let batches = op.fetch_all().await.unwrap();
    let schema = batches[0]
        .column(0)
        .as_any()
        .downcast_ref::<StringArray>()
        .unwrap();
    assert_eq!(schema.value(0), "sales");
    session.close().await.unwrap();
}

#[tokio::test]
async fn a_catalog_is_refused_rather_than_ignored() {
    let (mock, client) = hive().await;
    let err = client
        .open_session_with(SessionOptions::new().catalog("main"))
        .await
        .expect_err("no catalogs on HiveServer2");
    assert!(
        err.message().contains("Required field 'client_protocol'"),
        "{err}"
    );
    assert!(err.message().contains("no catalogs"), "{err}");
    assert_eq!(mock.sessions().len(), 0);
    // Without the catalog the same client connects.
    client.open_session().await.unwrap().close().await.unwrap();
}

#[tokio::test]
async fn metadata_calls_fetch_their_results_explicitly() {
    let (mock, client) = hive().await;
    let session = client.open_session().await.unwrap();
    let schemas = session
        .schemas(None, None)
        .await
        .unwrap()
        .fetch_all()
        .await
        .unwrap();
    assert!(schemas.iter().map(|b| b.num_rows()).sum::<usize>() > 0);
    let columns = session
        .columns(None, None, None, None)
        .await
        .unwrap()
        .fetch_all()
        .await
        .unwrap();
    assert!(columns.iter().map(|b| b.num_rows()).sum::<usize>() > 0);
    let catalogs = session.catalogs().await.unwrap().fetch_all().await.unwrap();
    assert!(!catalogs.is_empty());
    // No direct results: metadata and rows were asked for with their own calls.
    assert!(mock.call_count("GetResultSetMetadata") >= 3);
    assert!(mock.call_count("FetchResults") >= 3);
    session.close().await.unwrap();
}

#[tokio::test]
async fn a_databricks_mock_is_not_affected_by_the_fallback() {
    let mock = MockWarehouse::start().await.unwrap();
    let client = mock.client_builder().build().unwrap();
    let session = client.open_session().await.unwrap();
    assert_eq!(
        session.server_protocol_version(),
        protocol_version::SPARK_V8
    );
    assert_eq!(mock.call_count("OpenSession"), 1);
    session.close().await.unwrap();
}
