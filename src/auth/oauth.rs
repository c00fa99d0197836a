//! OAuth with the workspace's authorization server: endpoint discovery, the token endpoint's
//! requests and answers, and machine-to-machine authentication ([`OAuthM2M`]: a service
//! principal's client credentials).

use std::fmt;
use std::sync::Arc;
use std::time::{Duration, SystemTime};

use async_trait::async_trait;
use bytes::Bytes;
use http::header::{ACCEPT, AUTHORIZATION, CONTENT_TYPE};
use http::{HeaderValue, Method};
use serde::Deserialize;
use tokio::sync::OnceCell;

use super::token::{AccessToken, CachedToken, TokenSource, DEFAULT_REFRESH_MARGIN};
use crate::error::{redact_url, Error, ErrorKind, Result};
use crate::http::backoff::parse_retry_after;
use crate::http::{is_loopback_host, HttpRequest, HttpTransport, RetryPolicy};

/// The scope Databricks workspaces grant for their APIs (SQL included).
pub const DEFAULT_SCOPE: &str = "all-apis";

/// Where a workspace publishes its OAuth endpoints, below its base URL.
const DISCOVERY_PATH: &str = "/oidc/.well-known/oauth-authorization-server";

/// The application id of Azure Databricks in Microsoft Entra: the scope `<id>/.default` asks
/// Entra for a token that Azure Databricks workspaces accept.
const AZURE_DATABRICKS_SCOPE: &str = "2ff814a6-3304-4ab8-85cb-cd0e6f879c1d/.default";

/// OAuth machine-to-machine settings: a service principal's client id and secret, exchanged
/// at the token endpoint for access tokens (the `client_credentials` grant), which are cached
/// and renewed before they expire.
///
/// ```
/// use databricks_sql::auth::OAuthM2M;
///
/// let m2m = OAuthM2M::new("my-service-principal-id", "my-secret");
/// let builder = databricks_sql::DBSQLClient::builder().oauth_m2m(m2m);
/// ```
///
/// Defaults: the token endpoint is the workspace's own, found through its discovery document
/// (`https://<host>/oidc/.well-known/oauth-authorization-server`); scope `all-apis`; the client
/// authenticates with HTTP Basic; tokens are renewed 60 s (at most a quarter of their
/// lifetime) before they expire. `Debug` never shows the secret.
#[derive(Clone)]
pub struct OAuthM2M {
    client_id: String,
    client_secret: String,
    scopes: Vec<String>,
    token_endpoint: Option<String>,
    secret_in_body: bool,
    refresh_margin: Duration,
}

impl OAuthM2M {
    /// Client credentials `client_id` and `client_secret`, every other setting at its default.
    pub fn new(client_id: impl Into<String>, client_secret: impl Into<String>) -> Self {
        OAuthM2M {
            client_id: client_id.into(),
            client_secret: client_secret.into(),
            scopes: vec![DEFAULT_SCOPE.to_string()],
            token_endpoint: None,
            secret_in_body: false,
            refresh_margin: DEFAULT_REFRESH_MARGIN,
        }
    }

    /// The scopes asked for. Default `all-apis`.
    pub fn scopes<I, S>(mut self, scopes: I) -> Self
    where
        I: IntoIterator<Item = S>,
        S: Into<String>,
    {
        self.scopes = scopes.into_iter().map(Into::into).collect();
        self
    }

    /// Use this token endpoint instead of the one the workspace's discovery document names.
    pub fn token_endpoint(mut self, url: impl Into<String>) -> Self {
        self.token_endpoint = Some(url.into());
        self
    }

    /// Send the client id and secret in the request body (`client_secret_post`) instead of an
    /// HTTP Basic header. Default false.
    pub fn client_secret_in_body(mut self, on: bool) -> Self {
        self.secret_in_body = on;
        self
    }

    /// How long before a token expires it is renewed (at most a quarter of its lifetime).
    /// Default 60 s.
    pub fn refresh_margin(mut self, margin: Duration) -> Self {
        self.refresh_margin = margin;
        self
    }

    /// An Azure service principal of Microsoft Entra: tokens come from the authority
    /// `authority` (e.g. `https://login.microsoftonline.com/<tenant id>`), with the scope of
    /// Azure Databricks and the secret in the body, as Entra expects.
    pub fn azure_entra(mut self, authority: &str) -> Self {
        self.token_endpoint = Some(format!(
            "{}/oauth2/v2.0/token",
            authority.trim_end_matches('/')
        ));
        self.scopes = vec![AZURE_DATABRICKS_SCOPE.to_string()];
        self.secret_in_body = true;
        self
    }

    /// The provider for a workspace at `base_url` (`https://<host>`), talking through
    /// `transport` with `retry`.
    pub(crate) fn provider(
        self,
        base_url: &str,
        transport: Arc<dyn HttpTransport>,
        retry: RetryPolicy,
    ) -> Result<CachedToken<ClientCredentials>> {
        if self.client_id.trim().is_empty() {
            return Err(Error::config("the OAuth client id is empty"));
        }
        if self.client_secret.is_empty() {
            return Err(Error::config("the OAuth client secret is empty"));
        }
        let margin = self.refresh_margin;
        let server =
            AuthorizationServer::new(base_url, transport, retry, self.token_endpoint.clone());
        Ok(CachedToken::new(
            ClientCredentials {
                settings: self,
                server,
            },
            margin,
        ))
    }
}

impl fmt::Debug for OAuthM2M {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("OAuthM2M")
            .field("client_id", &self.client_id)
            .field("client_secret", &"<redacted>")
            .field("scopes", &self.scopes)
            .field("token_endpoint", &self.token_endpoint)
            .field("client_secret_in_body", &self.secret_in_body)
            .field("refresh_margin", &self.refresh_margin)
            .finish()
    }
}

/// The `client_credentials` grant as a [`TokenSource`].
pub(crate) struct ClientCredentials {
    settings: OAuthM2M,
    server: AuthorizationServer,
}

impl fmt::Debug for ClientCredentials {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("ClientCredentials")
            .field("client_id", &self.settings.client_id)
            .finish_non_exhaustive()
    }
}

#[async_trait]
impl TokenSource for ClientCredentials {
    async fn fetch(&self) -> Result<AccessToken> {
        let s = &self.settings;
        let scope = s.scopes.join(" ");
        let mut form = vec![
            ("grant_type", "client_credentials"),
            ("scope", scope.as_str()),
        ];
        let basic = if s.secret_in_body {
            form.push(("client_id", s.client_id.as_str()));
            form.push(("client_secret", s.client_secret.as_str()));
            None
        } else {
            Some((s.client_id.as_str(), s.client_secret.as_str()))
        };
        let answer = self
            .server
            .token_request(&form, basic, true, &[&s.client_secret])
            .await
            .map_err(Error::from)?;
        Ok(answer.access_token())
    }

    fn auth_type(&self) -> &'static str {
        "oauth-m2m"
    }
}

/// The endpoints a workspace's discovery document names.
#[derive(Debug, Clone, Deserialize)]
pub(crate) struct Endpoints {
    pub authorization_endpoint: Option<String>,
    pub token_endpoint: String,
}

/// A workspace's OAuth authorization server: its discovery document (read once) and its token
/// endpoint.
pub(crate) struct AuthorizationServer {
    base_url: String,
    transport: Arc<dyn HttpTransport>,
    retry: RetryPolicy,
    /// A token endpoint given in the settings, which skips discovery for token requests.
    token_endpoint: Option<String>,
    endpoints: OnceCell<Endpoints>,
}

impl fmt::Debug for AuthorizationServer {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("AuthorizationServer")
            .field("base_url", &self.base_url)
            .finish_non_exhaustive()
    }
}

/// A token endpoint's answer.
#[derive(Deserialize)]
pub(crate) struct TokenAnswer {
    access_token: String,
    #[serde(default)]
    token_type: Option<String>,
    #[serde(default, deserialize_with = "lenient_seconds")]
    expires_in: Option<u64>,
    #[serde(default)]
    pub refresh_token: Option<String>,
}

impl TokenAnswer {
    pub(crate) fn access_token(&self) -> AccessToken {
        AccessToken::new(
            self.access_token.clone(),
            self.expires_in.map(Duration::from_secs),
        )
    }
}

/// `expires_in` as a number or a numeric string (some servers send text).
fn lenient_seconds<'de, D: serde::Deserializer<'de>>(
    d: D,
) -> std::result::Result<Option<u64>, D::Error> {
    Ok(match serde_json::Value::deserialize(d)? {
        serde_json::Value::Number(n) => {
            n.as_u64().or_else(|| n.as_f64().map(|f| f.max(0.0) as u64))
        }
        serde_json::Value::String(s) => s.trim().parse().ok(),
        _ => None,
    })
}

/// An OAuth error answer (RFC 6749 section 5.2).
#[derive(Deserialize)]
struct OAuthErrorAnswer {
    error: String,
    #[serde(default)]
    error_description: Option<String>,
}

/// A failed token request: the driver's error, and the OAuth error code (`invalid_grant`...)
/// when the token endpoint refused with an OAuth error body.
#[derive(Debug)]
pub(crate) struct TokenRequestError {
    pub(crate) error: Error,
    pub(crate) oauth_error: Option<String>,
}

impl TokenRequestError {
    /// Whether the token endpoint refused the grant itself (`invalid_grant`, or any OAuth
    /// error answered with 400 or 401), as opposed to failing to answer.
    pub(crate) fn grant_refused(&self) -> bool {
        match &self.oauth_error {
            Some(code) => {
                code == "invalid_grant" || matches!(self.error.http_status(), Some(400 | 401))
            }
            None => false,
        }
    }

    pub(crate) fn is_invalid_grant(&self) -> bool {
        self.oauth_error.as_deref() == Some("invalid_grant")
    }
}

impl From<Error> for TokenRequestError {
    fn from(error: Error) -> Self {
        TokenRequestError {
            error,
            oauth_error: None,
        }
    }
}

impl From<TokenRequestError> for Error {
    fn from(e: TokenRequestError) -> Self {
        e.error
    }
}

impl AuthorizationServer {
    pub(crate) fn new(
        base_url: &str,
        transport: Arc<dyn HttpTransport>,
        retry: RetryPolicy,
        token_endpoint: Option<String>,
    ) -> Self {
        AuthorizationServer {
            base_url: base_url.trim_end_matches('/').to_string(),
            transport,
            retry,
            token_endpoint,
            endpoints: OnceCell::new(),
        }
    }

    /// The discovery document, fetched on first use.
    pub(crate) async fn endpoints(&self) -> Result<&Endpoints> {
        self.endpoints
            .get_or_try_init(|| async {
                let url = format!("{}{DISCOVERY_PATH}", self.base_url);
                let mut request = HttpRequest::new(Method::GET, parse_url(&url)?);
                request
                    .headers
                    .insert(ACCEPT, HeaderValue::from_static("application/json"));
                let response = self
                    .retry
                    .send(&*self.transport, request, true)
                    .await
                    .map_err(|e| {
                        Error::new(
                            ErrorKind::Auth,
                            format!(
                                "the workspace's OAuth discovery document ({}) could not be read: {}",
                                redact_url(&url),
                                e.message()
                            ),
                        )
                        .with_http_status(e.http_status())
                    })?;
                parse_discovery_document(&response.body, &url)
            })
            .await
    }

    /// The token endpoint: the one in the settings, else the discovered one.
    pub(crate) async fn token_endpoint(&self) -> Result<String> {
        match &self.token_endpoint {
            Some(url) => Ok(url.clone()),
            None => Ok(self.endpoints().await?.token_endpoint.clone()),
        }
    }

    /// POST `form` to the token endpoint (client authentication by HTTP Basic when `basic`
    /// is given, the id and secret form-urlencoded first as RFC 6749 section 2.3.1 asks) and
    /// read the token it answers. None of `secrets` ever appears in an error.
    ///
    /// Errors: a transport failure keeps its kind ([`ErrorKind::Connect`],
    /// [`ErrorKind::Timeout`]...) and names the endpoint; a refusal with an OAuth error body is
    /// [`ErrorKind::Auth`] quoting the server's error and description, with the HTTP status and
    /// the OAuth error code; a final 5xx or 429 without one is [`ErrorKind::Http`]; any other
    /// refusal or an answer that is not a bearer token is [`ErrorKind::Auth`].
    pub(crate) async fn token_request(
        &self,
        form: &[(&str, &str)],
        basic: Option<(&str, &str)>,
        idempotent: bool,
        secrets: &[&str],
    ) -> Result<TokenAnswer, TokenRequestError> {
        let url = self.token_endpoint().await?;
        let shown = redact_url(&url);
        let mut request = HttpRequest::new(Method::POST, parse_url(&url)?);
        let body = url::form_urlencoded::Serializer::new(String::new())
            .extend_pairs(form)
            .finish();
        request.body = Bytes::from(body);
        let headers = &mut request.headers;
        headers.insert(
            CONTENT_TYPE,
            HeaderValue::from_static("application/x-www-form-urlencoded"),
        );
        headers.insert(ACCEPT, HeaderValue::from_static("application/json"));
        if let Some((id, secret)) = basic {
            headers.insert(AUTHORIZATION, basic_authorization(id, secret)?);
        }
        let response = self
            .retry
            .send_returning_status(&*self.transport, request, idempotent)
            .await
            .map_err(|e| {
                let message = scrub(
                    format!(
                        "the request to the OAuth token endpoint {shown} failed: {}",
                        e.message()
                    ),
                    secrets,
                );
                let mut error = Error::new(e.kind(), message)
                    .with_http_status(e.http_status())
                    .with_retry_after(e.retry_after())
                    .with_connect_failure(e.connect_failure());
                if e.was_never_sent() {
                    error = error.never_sent();
                }
                error
            })?;
        let status = response.status.as_u16();
        if !response.status.is_success() {
            let (kind, detail, oauth_error) = read_refusal(response.status, &response.body);
            let message = scrub(
                format!("the OAuth token endpoint {shown} refused the request (HTTP {status}): {detail}"),
                secrets,
            );
            let error = Error::new(kind, message)
                .with_http_status(Some(status))
                .with_retry_after(parse_retry_after(&response.headers, SystemTime::now()));
            return Err(TokenRequestError { error, oauth_error });
        }
        read_token_answer(&response.body, &shown).map_err(TokenRequestError::from)
    }
}

/// The endpoints of the discovery document `body` read from `url`, each checked with
/// [`check_discovered_endpoint`]; an [`ErrorKind::Auth`] error for anything else.
pub(crate) fn parse_discovery_document(body: &[u8], url: &str) -> Result<Endpoints> {
    let endpoints = serde_json::from_slice::<Endpoints>(body).map_err(|e| {
        Error::new(
            ErrorKind::Auth,
            format!(
                "the workspace's OAuth discovery document ({}) is not what OAuth \
                 servers publish (no token_endpoint?): {e}",
                redact_url(url)
            ),
        )
    })?;
    check_discovered_endpoint("token_endpoint", &endpoints.token_endpoint, url)?;
    if let Some(endpoint) = &endpoints.authorization_endpoint {
        check_discovered_endpoint("authorization_endpoint", endpoint, url)?;
    }
    Ok(endpoints)
}

/// What a token endpoint's refusal with `status` and `body` means: the error kind, the detail
/// for the message (the OAuth error and its description when the body is an OAuth error), and
/// the OAuth error code.
pub(crate) fn read_refusal(
    status: http::StatusCode,
    body: &[u8],
) -> (ErrorKind, String, Option<String>) {
    let refusal = serde_json::from_slice::<OAuthErrorAnswer>(body).ok();
    match refusal {
        Some(answer) => {
            let detail = match answer.error_description {
                Some(d) if !d.trim().is_empty() => {
                    format!("{}: {}", answer.error, d.trim())
                }
                _ => answer.error.clone(),
            };
            (ErrorKind::Auth, detail, Some(answer.error))
        }
        None if status.as_u16() == 429 || status.is_server_error() => (
            ErrorKind::Http,
            "no OAuth error in the answer".to_string(),
            None,
        ),
        None => (
            ErrorKind::Auth,
            "no OAuth error in the answer".to_string(),
            None,
        ),
    }
}

/// The token in a token endpoint's successful answer `body` (the endpoint shown as `shown`
/// in errors): an [`ErrorKind::Auth`] error when it is not a bearer token.
pub(crate) fn read_token_answer(body: &[u8], shown: &str) -> Result<TokenAnswer> {
    let answer: TokenAnswer = serde_json::from_slice(body).map_err(|e| {
        Error::new(
            ErrorKind::Auth,
            format!("the OAuth token endpoint {shown} answered something that is not a token: {e}"),
        )
    })?;
    if answer
        .token_type
        .as_deref()
        .is_some_and(|t| !t.eq_ignore_ascii_case("bearer"))
    {
        return Err(Error::new(
            ErrorKind::Auth,
            format!("the OAuth token endpoint {shown} gave a token that is not a bearer token"),
        ));
    }
    Ok(answer)
}

/// The `Authorization: Basic` header of a client: id and secret each form-urlencoded, joined
/// by `:`, in base64 (RFC 6749 section 2.3.1), marked sensitive.
fn basic_authorization(id: &str, secret: &str) -> Result<HeaderValue> {
    let id: String = url::form_urlencoded::byte_serialize(id.as_bytes()).collect();
    let secret: String = url::form_urlencoded::byte_serialize(secret.as_bytes()).collect();
    super::basic_header(&id, &secret)
        .ok_or_else(|| Error::config("the OAuth client credentials do not fit in a header"))
}

/// An endpoint named by the discovery document (at `document`) under `field`: `https://`, or
/// `http://` to a loopback host; anything else is an [`ErrorKind::Auth`] error naming `field`.
fn check_discovered_endpoint(field: &str, endpoint: &str, document: &str) -> Result<()> {
    let secure = url::Url::parse(endpoint).is_ok_and(|u| match u.scheme() {
        "https" => u.host_str().is_some(),
        "http" => u.host_str().is_some_and(is_loopback_host),
        _ => false,
    });
    if secure {
        Ok(())
    } else {
        Err(Error::new(
            ErrorKind::Auth,
            format!(
                "the workspace's OAuth discovery document ({}) names a {field} that is not an \
                 https:// URL ({}): refused, tokens and codes go only over TLS",
                redact_url(document),
                redact_url(endpoint)
            ),
        ))
    }
}

/// `url` as a URI, or a configuration error naming it (without its query).
fn parse_url(url: &str) -> Result<http::Uri> {
    url.parse()
        .map_err(|_| Error::config(format!("not a valid URL: {}", redact_url(url))))
}

/// `message` with every occurrence of each of `secrets` replaced (a server echoing what it was
/// sent must not put a secret into an error).
fn scrub(mut message: String, secrets: &[&str]) -> String {
    for secret in secrets.iter().filter(|s| s.len() >= 4) {
        message = message.replace(secret, "<redacted>");
    }
    message
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn debug_never_shows_the_secret() {
        let m2m = OAuthM2M::new("id-1", "very-secret-value");
        let text = format!("{m2m:?}");
        assert!(text.contains("id-1"));
        assert!(!text.contains("very-secret-value"), "{text}");
    }

    #[test]
    fn azure_entra_sets_the_authority_scope_and_body_credentials() {
        let m2m = OAuthM2M::new("id", "secret")
            .azure_entra("https://login.microsoftonline.com/tenant-1/");
        assert_eq!(
            m2m.token_endpoint.as_deref(),
            Some("https://login.microsoftonline.com/tenant-1/oauth2/v2.0/token")
        );
        assert_eq!(m2m.scopes, vec![AZURE_DATABRICKS_SCOPE.to_string()]);
        assert!(m2m.secret_in_body);
    }

    #[test]
    fn scrub_replaces_secrets() {
        assert_eq!(
            scrub("bad secret s3cr3t!".into(), &["s3cr3t"]),
            "bad secret <redacted>!"
        );
    }

    #[test]
    fn token_answers_accept_text_lifetimes() {
        let a: TokenAnswer = serde_json::from_str(
            r#"{"access_token":"x","token_type":"Bearer","expires_in":"3599"}"#,
        )
        .expect("parses");
        assert_eq!(
            a.access_token().expires_in(),
            Some(Duration::from_secs(3599))
        );
        let b: TokenAnswer = serde_json::from_str(r#"{"access_token":"x"}"#).expect("parses");
        assert_eq!(b.access_token().expires_in(), None);
    }

    /// A transport answering from a script, one entry per request.
    #[derive(Debug)]
    struct Scripted(
        std::sync::Mutex<std::collections::VecDeque<Result<crate::http::HttpResponse>>>,
    );

    #[async_trait]
    impl HttpTransport for Scripted {
        async fn send(&self, _request: HttpRequest) -> Result<crate::http::HttpResponse> {
            self.0
                .lock()
                .unwrap()
                .pop_front()
                .unwrap_or_else(|| Err(Error::protocol("no more answers in the script")))
        }
    }

    fn answer(status: u16, body: &str) -> Result<crate::http::HttpResponse> {
        Ok(crate::http::HttpResponse {
            status: http::StatusCode::from_u16(status).unwrap(),
            headers: http::HeaderMap::new(),
            body: Bytes::from(body.to_string()),
        })
    }

    fn server(
        script: Vec<Result<crate::http::HttpResponse>>,
        endpoint: Option<&str>,
    ) -> AuthorizationServer {
        let retry = RetryPolicy {
            max_attempts: 1,
            ..RetryPolicy::default()
        };
        AuthorizationServer::new(
            "https://h.example.com",
            Arc::new(Scripted(std::sync::Mutex::new(script.into()))),
            retry,
            endpoint.map(str::to_string),
        )
    }

    async fn refused(answer: Result<crate::http::HttpResponse>) -> TokenRequestError {
        let server = server(vec![answer], Some("https://h.example.com/oidc/v1/token"));
        match server
            .token_request(&[("grant_type", "refresh_token")], None, true, &[])
            .await
        {
            Ok(_) => panic!("refused"),
            Err(e) => e,
        }
    }

    #[tokio::test]
    async fn a_transport_failure_keeps_its_kind_and_names_the_token_endpoint() {
        for kind in [ErrorKind::Connect, ErrorKind::Timeout] {
            let e = refused(Err(Error::new(kind, "it broke"))).await;
            assert_eq!(e.error.kind(), kind);
            let text = e.error.to_string();
            assert!(
                text.contains("https://h.example.com/oidc/v1/token"),
                "{text}"
            );
            assert!(text.contains("it broke"), "{text}");
            assert_eq!(e.oauth_error, None);
            assert!(!e.grant_refused());
        }
    }

    #[tokio::test]
    async fn a_server_error_without_an_oauth_error_is_an_http_error() {
        for status in [503, 500, 429] {
            let e = refused(answer(status, "<html>busy</html>")).await;
            assert_eq!(e.error.kind(), ErrorKind::Http, "{status}");
            assert_eq!(e.error.http_status(), Some(status));
            assert!(!e.grant_refused());
        }
        let e = refused(answer(403, "")).await;
        assert_eq!(e.error.kind(), ErrorKind::Auth);
        assert!(!e.grant_refused());
    }

    #[tokio::test]
    async fn an_oauth_error_is_an_auth_error_with_its_code_and_status() {
        let e = refused(answer(
            400,
            r#"{"error":"invalid_grant","error_description":"expired"}"#,
        ))
        .await;
        assert_eq!(e.error.kind(), ErrorKind::Auth);
        assert_eq!(e.error.http_status(), Some(400));
        assert_eq!(e.oauth_error.as_deref(), Some("invalid_grant"));
        assert!(e.is_invalid_grant() && e.grant_refused());
        assert!(e.error.to_string().contains("invalid_grant: expired"));

        let e = refused(answer(401, r#"{"error":"invalid_client"}"#)).await;
        assert!(e.grant_refused() && !e.is_invalid_grant());

        // A server error that says so in OAuth terms is not a refused grant.
        let e = refused(answer(500, r#"{"error":"server_error"}"#)).await;
        assert_eq!(e.error.kind(), ErrorKind::Auth);
        assert_eq!(e.error.http_status(), Some(500));
        assert!(!e.grant_refused());
    }

    #[test]
    fn http_basic_form_encodes_the_id_and_secret_before_base64() {
        let value = basic_authorization("id with space", "a+b%:c&d").expect("header");
        assert!(value.is_sensitive());
        let text = value.to_str().expect("ASCII");
        use base64::Engine as _;
        let decoded = base64::engine::general_purpose::STANDARD
            .decode(text.strip_prefix("Basic ").expect("Basic"))
            .expect("base64");
        assert_eq!(
            String::from_utf8(decoded).expect("UTF-8"),
            "id+with+space:a%2Bb%25%3Ac%26d"
        );
    }

    #[test]
    fn discovered_endpoints_must_be_https_unless_loopback() {
        let doc = "https://h/oidc/.well-known/oauth-authorization-server";
        for ok in [
            "https://h.example.com/oidc/v1/token",
            "http://localhost:8080/token",
            "http://127.0.0.1:1/token",
            "http://[::1]:1/token",
        ] {
            assert!(
                check_discovered_endpoint("token_endpoint", ok, doc).is_ok(),
                "{ok}"
            );
        }
        for bad in [
            "http://h.example.com/oidc/v1/token",
            "http://localhost.example.com/token",
            "ftp://h.example.com/token",
            "not a url",
        ] {
            let err = check_discovered_endpoint("authorization_endpoint", bad, doc).expect_err(bad);
            assert_eq!(err.kind(), ErrorKind::Auth);
            assert!(err.to_string().contains("authorization_endpoint"), "{err}");
        }
    }

    #[tokio::test]
    async fn a_discovery_document_naming_a_plain_http_endpoint_is_refused() {
        let doc = r#"{"authorization_endpoint":"https://h.example.com/oidc/v1/authorize",
                      "token_endpoint":"http://attacker.example.com/token"}"#;
        let server = server(vec![answer(200, doc)], None);
        let err = server.endpoints().await.expect_err("refused");
        assert_eq!(err.kind(), ErrorKind::Auth);
        assert!(err.to_string().contains("token_endpoint"), "{err}");
    }
}
