//! OAuth against the mock warehouse's authorization server: machine to machine (client
//! credentials), user to machine (a browser login played by the test), renewal, the 401
//! retry, and that no secret, token or verifier ever shows in logs, errors or telemetry.

mod common;

use std::path::PathBuf;
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use async_trait::async_trait;
use databricks_sql::auth::{OAuthM2M, OAuthU2M};
use databricks_sql::http::{HttpConfig, HttpRequest, HttpResponse, HttpTransport, HyperTransport};
use databricks_sql::mock::{MockWarehouse, DEFAULT_OAUTH_CLIENT_ID, DEFAULT_OAUTH_CLIENT_SECRET};
use databricks_sql::telemetry::{TelemetryClientProvider, TelemetryConfiguration};
use databricks_sql::{ClientBuilder, ErrorKind, Result};

/// A builder pointed at `mock` with no credentials set.
fn builder(mock: &MockWarehouse) -> ClientBuilder {
    databricks_sql::DBSQLClient::builder()
        .host(mock.host())
        .port(mock.port())
        .http_path(mock.http_path())
        .plain_http(true)
        .telemetry_provider(TelemetryClientProvider::new())
        .retry_policy(databricks_sql::http::RetryPolicy {
            max_attempts: 3,
            min_backoff: Duration::from_millis(5),
            max_backoff: Duration::from_millis(50),
            overall_timeout: Duration::from_secs(10),
        })
}

fn m2m() -> OAuthM2M {
    OAuthM2M::new(DEFAULT_OAUTH_CLIENT_ID, DEFAULT_OAUTH_CLIENT_SECRET)
}

async fn select_one(session: &databricks_sql::Session) {
    let mut op = session
        .execute_statement("SELECT 1")
        .await
        .expect("execute");
    let rows: usize = op
        .fetch_all()
        .await
        .expect("fetch")
        .iter()
        .map(|b| b.num_rows())
        .sum();
    assert_eq!(rows, 1);
    op.close().await.expect("close");
}

/// A transport that records what secrets travel: every bearer token sent, the verifier and
/// code of token requests, and the tokens the token endpoint answers.
#[derive(Debug)]
struct Recording {
    inner: HyperTransport,
    seen: Mutex<Vec<String>>,
    /// Applied to each token request's body before it is sent.
    tamper: Option<fn(String) -> String>,
}

impl Recording {
    fn new(tamper: Option<fn(String) -> String>) -> Arc<Self> {
        Arc::new(Recording {
            inner: HyperTransport::new(&HttpConfig::default()).expect("transport"),
            seen: Mutex::new(Vec::new()),
            tamper,
        })
    }

    fn secrets(&self) -> Vec<String> {
        self.seen.lock().unwrap().clone()
    }
}

#[async_trait]
impl HttpTransport for Recording {
    async fn send(&self, mut request: HttpRequest) -> Result<HttpResponse> {
        let mut seen = Vec::new();
        if let Some(v) = request
            .headers
            .get("authorization")
            .and_then(|v| v.to_str().ok())
        {
            if let Some(token) = v.strip_prefix("Bearer ") {
                seen.push(token.to_string());
            }
        }
        let token_request = request.url.path().ends_with("/token");
        if token_request {
            let body = String::from_utf8_lossy(&request.body).into_owned();
            for (k, v) in url::form_urlencoded::parse(body.as_bytes()) {
                if k == "code_verifier"
                    || k == "code"
                    || k == "refresh_token"
                    || k == "client_secret"
                {
                    seen.push(v.into_owned());
                }
            }
            if let Some(tamper) = self.tamper {
                request.body = tamper(body).into();
            }
        }
        let response = self.inner.send(request).await;
        if let (true, Ok(r)) = (token_request, &response) {
            if let Ok(v) = serde_json::from_slice::<serde_json::Value>(&r.body) {
                for key in ["access_token", "refresh_token"] {
                    if let Some(t) = v[key].as_str() {
                        seen.push(t.to_string());
                    }
                }
            }
        }
        self.seen.lock().unwrap().extend(seen);
        response
    }
}

#[tokio::test]
async fn m2m_finds_the_token_endpoint_and_runs_a_query() {
    let mock = MockWarehouse::start().await.expect("mock");
    let client = builder(&mock).oauth_m2m(m2m()).build().expect("client");
    let session = client.open_session().await.expect("session");
    select_one(&session).await;
    select_one(&session).await;
    let counts = mock.oauth_requests();
    assert_eq!(counts.discovery, 1);
    assert_eq!(counts.client_credentials, 1, "one token serves every call");
    session.close().await.expect("close");
    client.close().await.expect("close");
}

#[tokio::test]
async fn short_lived_tokens_are_renewed_before_they_expire_without_a_failed_call() {
    let mock = MockWarehouse::builder()
        .oauth_token_lifetime(Duration::from_secs(2))
        .start()
        .await
        .expect("mock");
    let client = builder(&mock).oauth_m2m(m2m()).build().expect("client");
    let session = client.open_session().await.expect("session");
    let until = Instant::now() + Duration::from_secs(6);
    let mut statements = 0;
    while Instant::now() < until {
        select_one(&session).await;
        statements += 1;
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
    let counts = mock.oauth_requests();
    assert!(
        counts.client_credentials >= 3,
        "{statements} statements over 6 s with 2 s tokens: {counts:?}"
    );
    assert_eq!(counts.failed, 0);
    let calls = mock
        .requests()
        .iter()
        .filter(|r| r.path == mock.http_path())
        .count();
    assert!(calls > statements, "every call reached the warehouse");
    session.close().await.expect("close");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn fifty_concurrent_statements_at_expiry_ask_for_one_token() {
    let mock = MockWarehouse::builder()
        .oauth_token_lifetime(Duration::from_secs(2))
        .start()
        .await
        .expect("mock");
    let client = builder(&mock).oauth_m2m(m2m()).build().expect("client");
    let session = Arc::new(client.open_session().await.expect("session"));
    assert_eq!(mock.oauth_requests().client_credentials, 1);
    // Past the renewal point (a quarter of the lifetime before expiry).
    tokio::time::sleep(Duration::from_millis(1600)).await;
    let tasks: Vec<_> = (0..50)
        .map(|_| {
            let session = session.clone();
            tokio::spawn(async move { select_one(&session).await })
        })
        .collect();
    for task in tasks {
        task.await.expect("statement");
    }
    assert_eq!(
        mock.oauth_requests().client_credentials,
        2,
        "one renewal for all 50"
    );
}

#[tokio::test]
async fn a_wrong_secret_is_an_auth_error_quoting_the_token_endpoint() {
    let mock = MockWarehouse::start().await.expect("mock");
    let client = builder(&mock)
        .oauth_m2m(OAuthM2M::new(
            DEFAULT_OAUTH_CLIENT_ID,
            "not-the-right-secret",
        ))
        .build()
        .expect("client");
    let err = client.open_session().await.expect_err("refused");
    assert_eq!(err.kind(), ErrorKind::Auth);
    let text = err.to_string();
    assert!(text.contains("invalid_client"), "{text}");
    assert!(text.contains("/oidc/v1/token"), "{text}");
    for shown in [text, format!("{err:?}")] {
        assert!(!shown.contains("not-the-right-secret"), "{shown}");
    }
    assert_eq!(mock.oauth_requests().failed, 1);
}

#[tokio::test]
async fn a_401_to_a_revoked_oauth_token_is_retried_once_with_a_fresh_token() {
    let mock = MockWarehouse::start().await.expect("mock");
    let client = builder(&mock).oauth_m2m(m2m()).build().expect("client");
    let session = client.open_session().await.expect("session");
    select_one(&session).await;
    mock.revoke_oauth_access_tokens();
    select_one(&session).await;
    assert_eq!(mock.oauth_requests().client_credentials, 2);
}

#[tokio::test]
async fn a_401_to_a_personal_access_token_is_not_retried() {
    let mock = MockWarehouse::start().await.expect("mock");
    let client = builder(&mock).token("dapi-wrong").build().expect("client");
    let err = client.open_session().await.expect_err("refused");
    assert_eq!(err.kind(), ErrorKind::Auth);
    let opens = mock
        .requests()
        .iter()
        .filter(|r| r.path == mock.http_path())
        .count();
    assert_eq!(opens, 1, "a refused PAT is sent once");
}

/// Plays the browser for a login URL: follows it to the authorization endpoint, then follows
/// the redirect to the driver's loopback listener (after `edit`ing it).
fn play_browser(edit: fn(String) -> String) -> impl Fn(&str) + Send + Sync + 'static {
    move |url: &str| {
        let url = url.to_string();
        tokio::spawn(async move {
            let http = HyperTransport::new(&HttpConfig::default()).expect("transport");
            let authorize = http
                .send(HttpRequest::new(
                    http::Method::GET,
                    url.parse().expect("URL"),
                ))
                .await
                .expect("the authorization endpoint answers");
            assert_eq!(authorize.status.as_u16(), 302, "a redirect to the listener");
            let location = authorize.headers["location"]
                .to_str()
                .expect("text")
                .to_string();
            let location = edit(location).replace("//localhost:", "//127.0.0.1:");
            let back = http
                .send(HttpRequest::new(
                    http::Method::GET,
                    location.parse().expect("URL"),
                ))
                .await
                .expect("the listener answers");
            assert!(back.status.as_u16() == 200 || back.status.as_u16() == 400);
        });
    }
}

fn temp_cache(name: &str) -> PathBuf {
    let nanos = std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map(|d| d.as_nanos())
        .unwrap_or(0);
    std::env::temp_dir()
        .join(format!("dbsql-oauth-test-{}-{nanos}", std::process::id()))
        .join(name)
}

fn u2m(cache: &std::path::Path) -> OAuthU2M {
    OAuthU2M::new()
        .redirect_port(0)
        .token_cache(Some(cache.to_path_buf()))
        .login_timeout(Duration::from_secs(10))
}

#[tokio::test]
async fn u2m_logs_in_once_then_reuses_its_cached_tokens_without_a_browser() {
    let mock = MockWarehouse::builder()
        .oauth_token_lifetime(Duration::from_secs(30))
        .start()
        .await
        .expect("mock");
    let cache = temp_cache("tokens.json");
    let first = builder(&mock)
        .oauth_u2m(u2m(&cache).on_login_url(play_browser(|l| l)))
        .build()
        .expect("client");
    let session = first
        .open_session()
        .await
        .expect("session after a browser login");
    select_one(&session).await;
    session.close().await.expect("close");
    assert_eq!(mock.oauth_requests().authorization_code, 1);
    #[cfg(unix)]
    {
        use std::os::unix::fs::PermissionsExt;
        let mode = std::fs::metadata(&cache)
            .expect("cache file")
            .permissions()
            .mode();
        assert_eq!(mode & 0o777, 0o600, "the token cache is private");
    }

    // The cached access token has less than a minute left: the refresh token renews it.
    let second = builder(&mock)
        .oauth_u2m(u2m(&cache).on_login_url(|_| panic!("no browser the second time")))
        .build()
        .expect("client");
    let session = second.open_session().await.expect("session from the cache");
    select_one(&session).await;
    let counts = mock.oauth_requests();
    assert_eq!(counts.authorize, 1, "no second login");
    assert_eq!(counts.refresh_token, 1);
    let _ = std::fs::remove_dir_all(cache.parent().expect("dir"));
}

#[tokio::test]
async fn a_redirect_with_another_state_fails_the_login() {
    let mock = MockWarehouse::start().await.expect("mock");
    let cache = temp_cache("tokens.json");
    let client = builder(&mock)
        .oauth_u2m(u2m(&cache).on_login_url(play_browser(|l| l.replace("state=", "state=forged"))))
        .build()
        .expect("client");
    let err = client.open_session().await.expect_err("forged state");
    assert_eq!(err.kind(), ErrorKind::Auth);
    assert!(err.to_string().contains("state"), "{err}");
    assert_eq!(mock.oauth_requests().authorization_code, 0);
}

#[tokio::test]
async fn a_tampered_pkce_verifier_is_refused_by_the_token_endpoint() {
    let mock = MockWarehouse::start().await.expect("mock");
    let cache = temp_cache("tokens.json");
    let transport = Recording::new(Some(|body| {
        body.replace("code_verifier=", "code_verifier=x")
    }));
    let client = builder(&mock)
        .transport(transport)
        .oauth_u2m(u2m(&cache).on_login_url(play_browser(|l| l)))
        .build()
        .expect("client");
    let err = client.open_session().await.expect_err("wrong verifier");
    assert_eq!(err.kind(), ErrorKind::Auth);
    assert!(err.to_string().contains("invalid_grant"), "{err}");
}

/// Every `tracing` event at any level, formatted with its fields.
#[derive(Clone, Default)]
struct Captured(Arc<Mutex<Vec<u8>>>);

impl std::io::Write for Captured {
    fn write(&mut self, buf: &[u8]) -> std::io::Result<usize> {
        self.0.lock().unwrap().extend_from_slice(buf);
        Ok(buf.len())
    }
    fn flush(&mut self) -> std::io::Result<()> {
        Ok(())
    }
}

#[tokio::test]
async fn no_secret_token_or_verifier_shows_in_logs_errors_or_telemetry() {
    let captured = Captured::default();
    let writer = captured.clone();
    let subscriber = tracing_subscriber::fmt()
        .with_max_level(tracing::Level::TRACE)
        .with_writer(move || writer.clone())
        .finish();
    let _guard = tracing::subscriber::set_default(subscriber);

    let mock = MockWarehouse::builder()
        .oauth_token_lifetime(Duration::from_secs(30))
        .telemetry_enabled(true)
        .start()
        .await
        .expect("mock");
    let transport = Recording::new(None);
    let mut telemetry = TelemetryConfiguration::default();
    telemetry.force_enabled = true;
    let mut errors = Vec::new();

    // M2M, with a revoked token on the way, and a wrong secret.
    let client = builder(&mock)
        .transport(transport.clone())
        .telemetry(telemetry.clone())
        .oauth_m2m(m2m())
        .build()
        .expect("client");
    let session = client.open_session().await.expect("session");
    select_one(&session).await;
    mock.revoke_oauth_access_tokens();
    select_one(&session).await;
    let failing = session
        .execute_statement("SELECT * FROM no_such_table")
        .await;
    if let Err(e) = failing {
        errors.push(e);
    }
    session.close().await.expect("close");
    client.close().await.expect("close");
    let wrong = builder(&mock)
        .transport(transport.clone())
        .oauth_m2m(OAuthM2M::new(DEFAULT_OAUTH_CLIENT_ID, "wrong-secret-value"))
        .build()
        .expect("client");
    errors.push(wrong.open_session().await.expect_err("wrong secret"));

    // U2M: a login, then a forged redirect.
    let cache = temp_cache("tokens.json");
    let client = builder(&mock)
        .transport(transport.clone())
        .telemetry(telemetry)
        .oauth_u2m(u2m(&cache).on_login_url(play_browser(|l| l)))
        .build()
        .expect("client");
    let session = client.open_session().await.expect("session");
    select_one(&session).await;
    session.close().await.expect("close");
    client.close().await.expect("close");
    let forged = builder(&mock)
        .transport(transport.clone())
        .oauth_u2m(
            u2m(&temp_cache("other.json"))
                .on_login_url(play_browser(|l| l.replace("state=", "state=x"))),
        )
        .build()
        .expect("client");
    errors.push(forged.open_session().await.expect_err("forged state"));

    let mut secrets = transport.secrets();
    secrets.push(DEFAULT_OAUTH_CLIENT_SECRET.to_string());
    secrets.push("wrong-secret-value".to_string());
    assert!(
        secrets.len() > 6,
        "tokens, codes and verifiers were seen: {}",
        secrets.len()
    );
    let logs = String::from_utf8_lossy(&captured.0.lock().unwrap()).into_owned();
    assert!(
        logs.contains("access token obtained"),
        "trace output was captured"
    );
    let texts: Vec<String> = errors
        .iter()
        .flat_map(|e| [e.to_string(), format!("{e:?}")])
        .collect();
    let telemetry: Vec<String> = mock
        .telemetry_requests()
        .into_iter()
        .map(|r| r.body)
        .collect();
    assert!(!telemetry.is_empty(), "telemetry was exported");
    for secret in &secrets {
        assert!(!logs.contains(secret.as_str()), "a secret in the logs");
        for text in &texts {
            assert!(
                !text.contains(secret.as_str()),
                "a secret in an error: {text}"
            );
        }
        for body in &telemetry {
            assert!(!body.contains(secret.as_str()), "a secret in telemetry");
        }
    }
    let _ = std::fs::remove_dir_all(cache.parent().expect("dir"));
}
