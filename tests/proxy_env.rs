//! Proxies from the environment (`HTTPS_PROXY`, `HTTP_PROXY`, `NO_PROXY`), end to end. A test
//! binary of its own: the variables are process-wide, and the tests here take turns with them.
//!
//! Environment proxies never apply to loopback hosts, so the mock goes by a name that resolves
//! nowhere (`warehouse.mock.invalid`) and the test proxy maps that name to it, as a corporate
//! proxy's own DNS would.

mod common;

use std::sync::Mutex;

use databricks_sql::http::ProxyConfig;
use databricks_sql::mock::{MockWarehouse, TestProxy};
use databricks_sql::ErrorKind;

use common::{cloudfetch_in_small_files, every_kind_of_request, with_oauth_and_telemetry};

const NAME: &str = "warehouse.mock.invalid";

const VARIABLES: [&str; 6] = [
    "HTTPS_PROXY",
    "https_proxy",
    "HTTP_PROXY",
    "http_proxy",
    "NO_PROXY",
    "no_proxy",
];

/// Held by each test while it sets and reads the variables.
static ENVIRONMENT: Mutex<()> = Mutex::new(());

/// Sets the proxy variables to `vars` (and unsets the others) until dropped.
struct Environment<'a> {
    _turn: std::sync::MutexGuard<'a, ()>,
}

impl Environment<'_> {
    fn set(vars: &[(&str, &str)]) -> Self {
        let turn = ENVIRONMENT.lock().unwrap_or_else(|e| e.into_inner());
        for name in VARIABLES {
            std::env::remove_var(name);
        }
        for (name, value) in vars {
            std::env::set_var(name, value);
        }
        Environment { _turn: turn }
    }
}

impl Drop for Environment<'_> {
    fn drop(&mut self) {
        for name in VARIABLES {
            std::env::remove_var(name);
        }
    }
}

/// An https mock named [`NAME`] and a proxy that maps the name to it.
async fn named_mock_and_proxy() -> (MockWarehouse, TestProxy) {
    let mock = cloudfetch_in_small_files()
        .tls(true)
        .host_name(NAME)
        .start()
        .await
        .unwrap();
    let proxy = TestProxy::builder()
        .resolve(NAME, mock.local_addr())
        .start()
        .await
        .unwrap();
    (mock, proxy)
}

#[tokio::test]
async fn every_kind_of_request_goes_through_the_proxy_of_https_proxy() {
    let (mock, proxy) = named_mock_and_proxy().await;
    let _env = Environment::set(&[("HTTPS_PROXY", &proxy.url())]);
    let client = with_oauth_and_telemetry(mock.client_builder())
        .build()
        .unwrap();
    every_kind_of_request(&mock, client).await;
    let target = format!("{NAME}:{}", mock.port());
    let requests = proxy.requests();
    assert!(!requests.is_empty());
    assert!(
        requests
            .iter()
            .all(|r| r.method == "CONNECT" && r.target == target),
        "{requests:?}"
    );
    assert_eq!(common::reported_use_proxy(&mock), Some(true));
}

#[tokio::test]
async fn lower_case_variables_and_credentials_in_the_url_are_used() {
    let (mock, _) = named_mock_and_proxy().await;
    let proxy = TestProxy::builder()
        .basic_auth("alice", "s3cret")
        .resolve(NAME, mock.local_addr())
        .start()
        .await
        .unwrap();
    let url = format!("http://alice:s3cret@{}", proxy.local_addr());
    let _env = Environment::set(&[("https_proxy", &url)]);
    let client = mock
        .client_builder()
        .telemetry_enabled(false)
        .build()
        .unwrap();
    let session = client.open_session().await.unwrap();
    session.close().await.unwrap();
    client.close().await.unwrap();
    assert_eq!(proxy.targets(), vec![format!("{NAME}:{}", mock.port())]);
}

#[tokio::test]
async fn no_proxy_sends_the_host_direct() {
    let (mock, proxy) = named_mock_and_proxy().await;
    for no_proxy in [NAME, ".mock.invalid", "*"] {
        let _env = Environment::set(&[("HTTPS_PROXY", &proxy.url()), ("NO_PROXY", no_proxy)]);
        let client = mock
            .client_builder()
            .telemetry_enabled(false)
            .retry_policy(databricks_sql::http::RetryPolicy::default().with_max_attempts(1))
            .build()
            .unwrap();
        // Direct, the name resolves nowhere: the connection fails before any proxy is asked.
        let err = client.open_session().await.unwrap_err();
        assert_eq!(err.kind(), ErrorKind::Connect, "{no_proxy}: {err}");
        assert!(!err.to_string().contains("proxy"), "{no_proxy}: {err}");
    }
    assert!(proxy.requests().is_empty(), "{:?}", proxy.requests());
}

#[tokio::test]
async fn loopback_hosts_and_proxy_config_none_ignore_the_environment() {
    let proxy = TestProxy::start().await.unwrap();
    let _env = Environment::set(&[("HTTPS_PROXY", &proxy.url()), ("HTTP_PROXY", &proxy.url())]);
    // The plain-http mock on 127.0.0.1 and the https one: loopback, reached directly.
    for mock in [
        cloudfetch_in_small_files().start().await.unwrap(),
        cloudfetch_in_small_files().tls(true).start().await.unwrap(),
    ] {
        let client = with_oauth_and_telemetry(mock.client_builder())
            .build()
            .unwrap();
        every_kind_of_request(&mock, client).await;
        assert_eq!(common::reported_use_proxy(&mock), Some(false));
    }
    assert!(proxy.requests().is_empty(), "{:?}", proxy.requests());

    let (named, named_proxy) = named_mock_and_proxy().await;
    drop(named_proxy);
    let client = named
        .client_builder()
        .telemetry_enabled(false)
        .proxy(ProxyConfig::None)
        .retry_policy(databricks_sql::http::RetryPolicy::default().with_max_attempts(1))
        .build()
        .unwrap();
    let err = client.open_session().await.unwrap_err();
    assert_eq!(err.kind(), ErrorKind::Connect, "{err}");
    assert!(proxy.requests().is_empty());
}

#[tokio::test]
async fn an_unusable_proxy_variable_is_ignored_with_a_warning() {
    let _env = Environment::set(&[("HTTPS_PROXY", "ftp://bob:hunter2@proxy.example:21")]);
    let mock = MockWarehouse::start().await.unwrap();
    let client = mock
        .client_builder()
        .build()
        .expect("the variable is ignored");
    let session = client.open_session().await.expect("a direct connection");
    session.close().await.unwrap();
}
