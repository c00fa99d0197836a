//! Helpers of the OAuth tests: a client builder without credentials, a transport that records
//! the secrets it carries, and a test that plays the browser of a login.

use std::path::PathBuf;
use std::sync::{Arc, Mutex};
use std::time::Duration;

use async_trait::async_trait;
use databricks_sql::auth::{OAuthM2M, OAuthU2M};
use databricks_sql::http::{HttpConfig, HttpRequest, HttpResponse, HttpTransport, HyperTransport};
use databricks_sql::mock::{MockWarehouse, DEFAULT_OAUTH_CLIENT_ID, DEFAULT_OAUTH_CLIENT_SECRET};
use databricks_sql::telemetry::TelemetryClientProvider;
use databricks_sql::{ClientBuilder, Result};

/// A builder pointed at `mock` with no credentials set.
pub fn builder(mock: &MockWarehouse) -> ClientBuilder {
    databricks_sql::DBSQLClient::builder()
        .host(mock.host())
        .port(mock.port())
        .http_path(mock.http_path())
        .plain_http(true)
        .telemetry_provider(TelemetryClientProvider::new())
        .retry_policy(
            databricks_sql::http::RetryPolicy::default()
                .with_max_attempts(3)
                .with_backoff(Duration::from_millis(5), Duration::from_millis(50))
                .with_overall_timeout(Duration::from_secs(10)),
        )
}

pub fn m2m() -> OAuthM2M {
    OAuthM2M::new(DEFAULT_OAUTH_CLIENT_ID, DEFAULT_OAUTH_CLIENT_SECRET)
}

pub async fn select_one(session: &databricks_sql::Session) {
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
pub struct Recording {
    inner: HyperTransport,
    seen: Mutex<Vec<String>>,
    /// Applied to each token request's body before it is sent.
    tamper: Option<fn(String) -> String>,
}

impl Recording {
    pub fn new(tamper: Option<fn(String) -> String>) -> Arc<Self> {
        Arc::new(Recording {
            inner: HyperTransport::new(&HttpConfig::default()).expect("transport"),
            seen: Mutex::new(Vec::new()),
            tamper,
        })
    }

    pub fn secrets(&self) -> Vec<String> {
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

/// Plays the browser for a login URL: follows it to the authorization endpoint, then follows
/// the redirect to the driver's loopback listener (after `edit`ing it). `localhost` in the
/// redirect is resolved as a browser would, to either loopback address.
pub fn play_browser(edit: fn(String) -> String) -> impl Fn(&str) + Send + Sync + 'static {
    Browser::default().play(&[edit])
}

/// A browser for logins that records what the driver's redirect listener answered.
#[derive(Clone, Default)]
pub struct Browser {
    visits: Arc<Mutex<Vec<tokio::task::JoinHandle<Vec<u16>>>>>,
}

impl Browser {
    /// The `on_login_url` handler: for each login URL, follows it to the authorization
    /// endpoint, then sends its redirect to the listener once per entry of `edits`, in order,
    /// each edited by it.
    pub fn play(&self, edits: &[fn(String) -> String]) -> impl Fn(&str) + Send + Sync + 'static {
        let edits = edits.to_vec();
        let visits = self.visits.clone();
        move |url: &str| {
            let url = url.to_string();
            let edits = edits.clone();
            let visit = tokio::spawn(async move {
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
                let mut statuses = Vec::new();
                for edit in edits {
                    let back = http
                        .send(HttpRequest::new(
                            http::Method::GET,
                            edit(location.clone()).parse().expect("URL"),
                        ))
                        .await
                        .expect("the listener answers");
                    statuses.push(back.status.as_u16());
                }
                statuses
            });
            visits.lock().unwrap().push(visit);
        }
    }

    /// The statuses the listener answered, login after login, once every visit is over.
    pub async fn statuses(&self) -> Vec<Vec<u16>> {
        let visits: Vec<_> = std::mem::take(&mut *self.visits.lock().unwrap());
        let mut all = Vec::new();
        for visit in visits {
            all.push(visit.await.expect("the browser's visit"));
        }
        all
    }
}

/// A redirect whose `state` is not the login's.
pub fn forge_state(location: String) -> String {
    location.replace("state=", "state=forged")
}

pub fn temp_cache(name: &str) -> PathBuf {
    let nanos = std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map(|d| d.as_nanos())
        .unwrap_or(0);
    std::env::temp_dir()
        .join(format!("dbsql-oauth-test-{}-{nanos}", std::process::id()))
        .join(name)
}

pub fn u2m(cache: &std::path::Path) -> OAuthU2M {
    OAuthU2M::new()
        .redirect_port(0)
        .token_cache(Some(cache.to_path_buf()))
        .login_timeout(Duration::from_secs(10))
}
