//! The unified configuration through the client builder: a connection URL against the mock
//! warehouse, with a token or OAuth client credentials, and the initial catalog and schema.

use databricks_sql::mock::{MockWarehouse, DEFAULT_OAUTH_CLIENT_ID, DEFAULT_OAUTH_CLIENT_SECRET};
use databricks_sql::telemetry::TelemetryClientProvider;
use databricks_sql::{ClientBuilder, ErrorKind, SessionOptions};

fn url(mock: &MockWarehouse, userinfo: &str, query: &str) -> String {
    format!(
        "databricks://{userinfo}{}:{}{}?{query}",
        mock.host(),
        mock.port(),
        mock.http_path()
    )
}

fn from_url(url: &str) -> ClientBuilder {
    ClientBuilder::from_url(url)
        .plain_http(true)
        .telemetry_provider(TelemetryClientProvider::new())
}

#[tokio::test]
async fn a_url_with_a_token_catalog_and_schema_opens_a_session_there() {
    let mock = MockWarehouse::start().await.expect("mock");
    let token = format!("token:{}@", mock.token());
    let client = from_url(&url(&mock, &token, "catalog=main&schema=sales"))
        .build()
        .expect("client");
    let session = client.open_session().await.expect("session");
    let info = mock.sessions().pop().expect("a session");
    assert_eq!(info.catalog.as_deref(), Some("main"));
    assert_eq!(info.schema.as_deref(), Some("sales"));
    // A session's own namespace wins over the client's.
    let other = client
        .open_session_with(SessionOptions::new().schema("hr"))
        .await
        .expect("session");
    let info = mock.sessions().pop().expect("a session");
    assert_eq!(info.catalog.as_deref(), Some("main"));
    assert_eq!(info.schema.as_deref(), Some("hr"));
    other.close().await.expect("close");
    session.close().await.expect("close");
}

#[tokio::test]
async fn a_url_with_oauth_client_credentials_authenticates_with_them() {
    let mock = MockWarehouse::start().await.expect("mock");
    let query = format!(
        "authType=oauth-m2m&clientId={DEFAULT_OAUTH_CLIENT_ID}&clientSecret={DEFAULT_OAUTH_CLIENT_SECRET}"
    );
    let client = from_url(&url(&mock, "", &query)).build().expect("client");
    let session = client.open_session().await.expect("session");
    assert_eq!(mock.oauth_requests().client_credentials, 1);
    session.close().await.expect("close");
}

#[tokio::test]
async fn a_bad_url_fails_at_build_without_quoting_its_secret() {
    for bad in [
        "postgres://token:dapi-very-secret@host/sql/1.0/warehouses/x",
        "databricks://user:dapi-very-secret@host/sql/1.0/warehouses/x",
        "databricks://host/sql/1.0/warehouses/x?clientSecret=dapi-very-secret&bogus=1",
    ] {
        let err = ClientBuilder::from_url(bad).build().expect_err(bad);
        assert_eq!(err.kind(), ErrorKind::Config, "{bad}");
        for text in [err.to_string(), format!("{err:?}")] {
            assert!(!text.contains("dapi-very-secret"), "{text}");
        }
    }
}
