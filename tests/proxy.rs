//! An explicitly configured proxy, end to end against the mock warehouse and the test proxy:
//! every kind of request goes through it (Thrift, CloudFetch, feature flags, telemetry, OAuth),
//! in absolute form to the plain-http mock and through CONNECT tunnels to the https one; the
//! bypass list sends matching hosts direct; proxy authentication works, and a refusal is a clear
//! error that never shows the password. Environment proxies are in `tests/proxy_env.rs`.

mod common;

use databricks_sql::http::{Proxy, ProxyConfig};
use databricks_sql::mock::{MockWarehouse, TestProxy};
use databricks_sql::ErrorKind;

use common::{cloudfetch_in_small_files, every_kind_of_request, with_oauth_and_telemetry};

#[tokio::test]
async fn every_kind_of_request_to_the_plain_http_mock_is_forwarded_by_the_proxy() {
    let mock = cloudfetch_in_small_files().start().await.unwrap();
    let proxy = TestProxy::start().await.unwrap();
    let client = with_oauth_and_telemetry(mock.client_builder())
        .proxy(Proxy::new(&proxy.url()).unwrap())
        .build()
        .unwrap();
    every_kind_of_request(&mock, client).await;

    let requests = proxy.requests();
    assert_eq!(
        requests.len(),
        mock.requests().len(),
        "every request the mock received came through the proxy"
    );
    let target = format!("127.0.0.1:{}", mock.port());
    assert!(requests.iter().all(|r| r.target == target && !r.refused));
    let paths: Vec<&str> = requests.iter().filter_map(|r| r.path.as_deref()).collect();
    for expected in [
        mock.http_path(),
        "/oidc/v1/token",
        "/telemetry-ext",
        "/api/2.0/connector-service/feature-flags/",
        "/cloudfetch/",
    ] {
        assert!(
            paths.iter().any(|p| p.starts_with(expected)),
            "{expected} went through the proxy: {paths:?}"
        );
    }
    assert_eq!(common::reported_use_proxy(&mock), Some(true));
}

#[tokio::test]
async fn every_kind_of_request_to_the_https_mock_goes_through_connect_tunnels() {
    let mock = cloudfetch_in_small_files().tls(true).start().await.unwrap();
    let proxy = TestProxy::builder()
        .basic_auth("alice", "s3cret")
        .start()
        .await
        .unwrap();
    let client = with_oauth_and_telemetry(mock.client_builder())
        .proxy(
            Proxy::new(&proxy.url())
                .unwrap()
                .basic_auth("alice", "s3cret"),
        )
        .build()
        .unwrap();
    every_kind_of_request(&mock, client).await;

    let requests = proxy.requests();
    assert!(!requests.is_empty());
    let target = format!("127.0.0.1:{}", mock.port());
    for r in &requests {
        assert_eq!(r.method, "CONNECT", "{r:?}");
        assert_eq!(r.target, target, "{r:?}");
        assert!(!r.refused, "{r:?}");
    }
    assert_eq!(common::reported_use_proxy(&mock), Some(true));
}

#[tokio::test]
async fn the_bypass_list_sends_matching_hosts_direct() {
    let mock = cloudfetch_in_small_files().start().await.unwrap();
    let proxy = TestProxy::start().await.unwrap();
    let client = with_oauth_and_telemetry(mock.client_builder())
        .proxy(
            Proxy::new(&proxy.url())
                .unwrap()
                .bypass(["internal.example", "127.0.0.1"]),
        )
        .build()
        .unwrap();
    every_kind_of_request(&mock, client).await;
    assert!(proxy.requests().is_empty(), "{:?}", proxy.requests());
    assert_eq!(common::reported_use_proxy(&mock), Some(false));
}

#[tokio::test]
async fn no_proxy_is_reported_as_such() {
    let mock = cloudfetch_in_small_files().start().await.unwrap();
    let client = with_oauth_and_telemetry(mock.client_builder())
        .proxy(ProxyConfig::None)
        .build()
        .unwrap();
    every_kind_of_request(&mock, client).await;
    assert_eq!(common::reported_use_proxy(&mock), Some(false));
}

#[tokio::test]
async fn a_wrong_proxy_password_is_a_clear_auth_error_that_never_shows_it() {
    let mock = MockWarehouse::builder().tls(true).start().await.unwrap();
    let proxy = TestProxy::builder()
        .basic_auth("alice", "s3cret")
        .start()
        .await
        .unwrap();
    let authority = proxy.local_addr().to_string();

    let builder = mock.client_builder().proxy(
        Proxy::new(&format!("http://alice:hunter2-wrong@{authority}"))
            .unwrap()
            .basic_auth("alice", "hunter2-wrong"),
    );
    let shown = format!("{builder:?}");
    assert!(shown.contains(&authority), "{shown}");
    assert!(!shown.contains("hunter2"), "{shown}");

    let wrong = mock
        .client_builder()
        .telemetry_enabled(false)
        .proxy(
            Proxy::new(&proxy.url())
                .unwrap()
                .basic_auth("alice", "hunter2-wrong"),
        )
        .build()
        .unwrap();
    let shown_builder = format!("{wrong:?}");
    assert!(!shown_builder.contains("hunter2"), "{shown_builder}");
    let err = wrong.open_session().await.unwrap_err();
    assert_eq!(err.kind(), ErrorKind::Auth, "{err}");
    let shown = format!("{err} {err:?}");
    assert!(
        shown.contains(&format!("the proxy {authority} refused the credentials")),
        "{shown}"
    );
    assert!(!shown.contains("hunter2"), "{shown}");
    assert_eq!(mock.call_count("OpenSession"), 0);
    assert_eq!(proxy.requests().len(), 1, "a refusal is final: not retried");

    let missing = mock
        .client_builder()
        .telemetry_enabled(false)
        .proxy(Proxy::new(&proxy.url()).unwrap())
        .build()
        .unwrap();
    let err = missing.open_session().await.unwrap_err();
    assert_eq!(err.kind(), ErrorKind::Auth, "{err}");
    assert!(
        err.to_string()
            .contains(&format!("the proxy {authority} requires authentication")),
        "{err}"
    );

    // Credentials in the URL work as well as basic_auth.
    let right = mock
        .client_builder()
        .telemetry_enabled(false)
        .proxy(Proxy::new(&format!("http://alice:s3cret@{authority}")).unwrap())
        .build()
        .unwrap();
    let session = right.open_session().await.unwrap();
    session.close().await.unwrap();
    right.close().await.unwrap();
    assert_eq!(mock.call_count("OpenSession"), 1);
}

#[tokio::test]
async fn a_target_the_proxy_cannot_reach_fails_within_about_half_a_second() {
    let proxy = TestProxy::builder().start().await.unwrap();
    let client = databricks_sql::DBSQLClient::builder()
        .host("no-such-host.invalid")
        .http_path("/sql/1.0/warehouses/abc")
        .token("dapi-x")
        .proxy(Proxy::new(&format!("http://{}", proxy.local_addr())).unwrap())
        .telemetry_enabled(false)
        .build()
        .unwrap();
    let started = std::time::Instant::now();
    let err = client.open_session().await.unwrap_err();
    let took = started.elapsed();
    assert_eq!(err.kind(), ErrorKind::Connect, "{err}");
    let text = err.to_string();
    assert!(text.contains("HTTP 502"), "{text}");
    assert!(text.contains("gave up after 3 attempts"), "{text}");
    assert!(
        took < std::time::Duration::from_millis(1500),
        "took {took:?}"
    );
    assert_eq!(proxy.targets().len(), 3);
}
