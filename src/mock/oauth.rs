//! The mock warehouse's OAuth server, the workspace's `/oidc` endpoints: discovery, the
//! authorization endpoint (authorization code with PKCE, approved at once), the token endpoint
//! (client credentials, authorization code, refresh token), and the access tokens it issued,
//! which the authenticated routes accept beside the static token.

use std::collections::{BTreeMap, BTreeSet, HashMap};
use std::fmt;
use std::time::{Duration, Instant};

use base64::engine::general_purpose::URL_SAFE_NO_PAD;
use base64::Engine as _;
use bytes::Bytes;
use http::{header, HeaderMap, HeaderValue, Response, StatusCode};
use ring::rand::{SecureRandom, SystemRandom};
use serde_json::{json, Value};

use super::state::Shared;

/// The confidential client (client credentials grant) the mock registers by default, with
/// [`DEFAULT_OAUTH_CLIENT_SECRET`]. More are added with
/// [`MockWarehouseBuilder::oauth_client`](super::MockWarehouseBuilder::oauth_client).
pub const DEFAULT_OAUTH_CLIENT_ID: &str = "mock-client";

/// The secret of [`DEFAULT_OAUTH_CLIENT_ID`].
pub const DEFAULT_OAUTH_CLIENT_SECRET: &str = "mock-secret";

/// The public client (authorization code grant with PKCE) the mock registers by default: the
/// client id the Databricks CLI and drivers use for user-to-machine OAuth. More are added with
/// [`MockWarehouseBuilder::oauth_u2m_client`](super::MockWarehouseBuilder::oauth_u2m_client).
pub const DEFAULT_OAUTH_U2M_CLIENT_ID: &str = "databricks-cli";

/// Default of [`MockWarehouseBuilder::oauth_token_lifetime`](super::MockWarehouseBuilder::oauth_token_lifetime):
/// one hour, the lifetime of a workspace's OAuth access tokens.
pub const DEFAULT_OAUTH_TOKEN_LIFETIME: Duration = Duration::from_secs(3600);

/// The scope a client credentials grant gets when it asks for none.
const DEFAULT_SCOPE: &str = "all-apis";

/// How long an authorization code can be exchanged after it is issued.
const CODE_LIFETIME: Duration = Duration::from_secs(60);

/// `GET`: the authorization server metadata (RFC 8414).
pub(crate) const DISCOVERY_PATH: &str = "/oidc/.well-known/oauth-authorization-server";
/// `GET`: the authorization endpoint.
pub(crate) const AUTHORIZE_PATH: &str = "/oidc/v1/authorize";
/// `POST`: the token endpoint.
pub(crate) const TOKEN_PATH: &str = "/oidc/v1/token";

/// Requests the OAuth endpoints answered, by kind ([`MockWarehouse::oauth_requests`](super::MockWarehouse::oauth_requests)).
/// Requests answered by an injected fault are not in it (they are in
/// [`MockWarehouse::call_count`](super::MockWarehouse::call_count)).
#[derive(Debug, Clone, Default, PartialEq, Eq)]
#[non_exhaustive]
pub struct OAuthRequestCounts {
    /// `GET /oidc/.well-known/oauth-authorization-server`.
    pub discovery: usize,
    /// `GET /oidc/v1/authorize`, refused ones included.
    pub authorize: usize,
    /// Token requests with `grant_type=client_credentials`, refused ones included.
    pub client_credentials: usize,
    /// Token requests with `grant_type=authorization_code`, refused ones included.
    pub authorization_code: usize,
    /// Token requests with `grant_type=refresh_token`, refused ones included.
    pub refresh_token: usize,
    /// Token requests refused (any grant type, an unknown or missing one included).
    pub failed: usize,
}

/// The OAuth settings a [`MockWarehouseBuilder`](super::MockWarehouseBuilder) collects.
#[derive(Clone)]
pub(crate) struct OAuthSettings {
    /// Confidential clients: id to secret.
    clients: BTreeMap<String, String>,
    /// Public clients (PKCE, no secret).
    public_clients: BTreeSet<String>,
    token_lifetime: Duration,
}

impl Default for OAuthSettings {
    fn default() -> Self {
        let mut s = OAuthSettings {
            clients: BTreeMap::new(),
            public_clients: BTreeSet::new(),
            token_lifetime: DEFAULT_OAUTH_TOKEN_LIFETIME,
        };
        s.add_client(
            DEFAULT_OAUTH_CLIENT_ID.into(),
            DEFAULT_OAUTH_CLIENT_SECRET.into(),
        );
        s.add_public_client(DEFAULT_OAUTH_U2M_CLIENT_ID.into());
        s
    }
}

impl fmt::Debug for OAuthSettings {
    /// Client ids and the lifetime; never a secret.
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("OAuthSettings")
            .field("clients", &self.clients.keys().collect::<Vec<_>>())
            .field("public_clients", &self.public_clients)
            .field("token_lifetime", &self.token_lifetime)
            .finish()
    }
}

impl OAuthSettings {
    pub(crate) fn add_client(&mut self, id: String, secret: String) {
        self.clients.insert(id, secret);
    }

    pub(crate) fn add_public_client(&mut self, id: String) {
        self.public_clients.insert(id);
    }

    pub(crate) fn set_token_lifetime(&mut self, lifetime: Duration) {
        self.token_lifetime = lifetime;
    }
}

/// An authorization code waiting to be exchanged.
struct PendingCode {
    client_id: String,
    redirect_uri: String,
    code_challenge: String,
    scope: String,
    expires: Instant,
}

/// What a refresh token grants.
struct RefreshGrant {
    client_id: String,
    scope: String,
}

/// The OAuth server's state, inside the mock's [`State`](super::state::State): its clients,
/// the codes, access tokens and refresh tokens it issued, and its counts.
pub(crate) struct OAuthState {
    settings: OAuthSettings,
    /// Access token to its expiry. Revocation empties it.
    access_tokens: HashMap<String, Instant>,
    codes: HashMap<String, PendingCode>,
    refresh_tokens: HashMap<String, RefreshGrant>,
    pub(crate) counts: OAuthRequestCounts,
}

impl fmt::Debug for OAuthState {
    /// Settings and counts; never a token or code.
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("OAuthState")
            .field("settings", &self.settings)
            .field("access_tokens", &self.access_tokens.len())
            .field("codes", &self.codes.len())
            .field("refresh_tokens", &self.refresh_tokens.len())
            .field("counts", &self.counts)
            .finish()
    }
}

impl OAuthState {
    pub(crate) fn new(settings: OAuthSettings) -> Self {
        OAuthState {
            settings,
            access_tokens: HashMap::new(),
            codes: HashMap::new(),
            refresh_tokens: HashMap::new(),
            counts: OAuthRequestCounts::default(),
        }
    }

    /// Whether `token` is an access token this server issued, not expired at `now` nor revoked.
    pub(crate) fn accepts(&self, token: &str, now: Instant) -> bool {
        self.access_tokens
            .get(token)
            .is_some_and(|expires| now < *expires)
    }

    /// Reject every access token issued so far.
    pub(crate) fn revoke_access_tokens(&mut self) {
        self.access_tokens.clear();
    }

    /// Refuse every refresh token issued so far (`invalid_grant`).
    pub(crate) fn revoke_refresh_tokens(&mut self) {
        self.refresh_tokens.clear();
    }

    pub(crate) fn set_token_lifetime(&mut self, lifetime: Duration) {
        self.settings.set_token_lifetime(lifetime);
    }

    /// A new access token valid for the configured lifetime, with its `expires_in`: the
    /// lifetime in whole seconds, at least 1. Expired tokens are forgotten on the way.
    fn issue_access_token(&mut self, now: Instant) -> Result<(String, u64), OAuthError> {
        let token = random_token()?;
        let lifetime = self.settings.token_lifetime;
        self.access_tokens.retain(|_, expires| now < *expires);
        let expires = crate::time::after(tokio::time::Instant::from_std(now), lifetime).into_std();
        self.access_tokens.insert(token.clone(), expires);
        Ok((token, lifetime.as_secs().max(1)))
    }

    fn issue_refresh_token(&mut self, client_id: &str, scope: &str) -> Result<String, OAuthError> {
        let token = random_token()?;
        self.refresh_tokens.insert(
            token.clone(),
            RefreshGrant {
                client_id: client_id.to_string(),
                scope: scope.to_string(),
            },
        );
        Ok(token)
    }

    /// The token reply: a new access token, and a new refresh token for `refresh_for` (a
    /// client id) when given.
    fn grant(
        &mut self,
        scope: &str,
        refresh_for: Option<&str>,
        now: Instant,
    ) -> Result<Value, OAuthError> {
        let (access, expires_in) = self.issue_access_token(now)?;
        let mut reply = json!({
            "access_token": access,
            "token_type": "Bearer",
            "expires_in": expires_in,
            "scope": scope,
        });
        if let Some(client_id) = refresh_for {
            let refresh = self.issue_refresh_token(client_id, scope)?;
            reply["refresh_token"] = Value::String(refresh);
        }
        Ok(reply)
    }
}

/// 32 random bytes (256 bits) from the system's secure generator, base64url without padding.
fn random_token() -> Result<String, OAuthError> {
    let mut bytes = [0u8; 32];
    SystemRandom::new()
        .fill(&mut bytes)
        .map_err(|_| OAuthError::server_error())?;
    Ok(URL_SAFE_NO_PAD.encode(bytes))
}

/// An OAuth error reply (RFC 6749 section 5.2).
#[derive(Debug)]
struct OAuthError {
    status: StatusCode,
    error: &'static str,
    description: Option<&'static str>,
}

impl OAuthError {
    fn invalid_request(description: &'static str) -> Self {
        OAuthError {
            status: StatusCode::BAD_REQUEST,
            error: "invalid_request",
            description: Some(description),
        }
    }

    fn invalid_client() -> Self {
        OAuthError {
            status: StatusCode::UNAUTHORIZED,
            error: "invalid_client",
            description: Some("Client authentication failed"),
        }
    }

    fn invalid_grant(description: &'static str) -> Self {
        OAuthError {
            status: StatusCode::BAD_REQUEST,
            error: "invalid_grant",
            description: Some(description),
        }
    }

    fn unsupported_grant_type() -> Self {
        OAuthError {
            status: StatusCode::BAD_REQUEST,
            error: "unsupported_grant_type",
            description: None,
        }
    }

    fn server_error() -> Self {
        OAuthError {
            status: StatusCode::INTERNAL_SERVER_ERROR,
            error: "server_error",
            description: Some("no randomness available"),
        }
    }

    fn reply(&self) -> Response<Bytes> {
        let body = match self.description {
            Some(d) => json!({"error": self.error, "error_description": d}),
            None => json!({"error": self.error}),
        };
        let mut r = json_reply(self.status, &body);
        if self.status == StatusCode::UNAUTHORIZED {
            r.headers_mut()
                .insert(header::WWW_AUTHENTICATE, HeaderValue::from_static("Basic"));
        }
        r
    }
}

fn json_reply(status: StatusCode, body: &Value) -> Response<Bytes> {
    let mut r = Response::new(Bytes::from(body.to_string()));
    *r.status_mut() = status;
    r.headers_mut().insert(
        header::CONTENT_TYPE,
        HeaderValue::from_static("application/json"),
    );
    r
}

/// The parameters of a query string or form body. Empty values count as absent (RFC 6749
/// section 3.1); a parameter given twice is refused.
struct Params(HashMap<String, String>);

impl Params {
    fn parse(input: &[u8]) -> Result<Self, OAuthError> {
        let mut map = HashMap::new();
        for (name, value) in url::form_urlencoded::parse(input) {
            if value.is_empty() {
                continue;
            }
            if map.insert(name.into_owned(), value.into_owned()).is_some() {
                return Err(OAuthError::invalid_request("a parameter is repeated"));
            }
        }
        Ok(Params(map))
    }

    fn get(&self, name: &str) -> Option<&str> {
        self.0.get(name).map(String::as_str)
    }

    fn require(&self, name: &str, missing: &'static str) -> Result<&str, OAuthError> {
        self.get(name).ok_or(OAuthError::invalid_request(missing))
    }
}

/// `GET /oidc/.well-known/oauth-authorization-server`.
pub(crate) fn discovery(shared: &Shared) -> Response<Bytes> {
    shared.lock().oauth.counts.discovery += 1;
    let base = &shared.config.base_url;
    let body = json!({
        "issuer": format!("{base}/oidc"),
        "authorization_endpoint": format!("{base}{AUTHORIZE_PATH}"),
        "token_endpoint": format!("{base}{TOKEN_PATH}"),
        "grant_types_supported": ["client_credentials", "authorization_code", "refresh_token"],
        "code_challenge_methods_supported": ["S256"],
        "response_types_supported": ["code"],
    });
    json_reply(StatusCode::OK, &body)
}

/// `GET /oidc/v1/authorize?...`: the user approves at once, so a valid request is answered
/// `302 Found` to `redirect_uri` with `code` and `state`; an invalid one 400 with an OAuth
/// error body and no redirect.
pub(crate) fn authorize(shared: &Shared, query: Option<&str>) -> Response<Bytes> {
    let now = Instant::now();
    let mut st = shared.lock();
    let oauth = &mut st.oauth;
    oauth.counts.authorize += 1;
    match authorize_redirect(oauth, query.unwrap_or("").as_bytes(), now) {
        Ok(location) => {
            drop(st);
            tracing::debug!("mock warehouse: OAuth authorization code issued");
            let mut r = Response::new(Bytes::new());
            *r.status_mut() = StatusCode::FOUND;
            match HeaderValue::from_str(&location) {
                Ok(v) => {
                    r.headers_mut().insert(header::LOCATION, v);
                    r
                }
                Err(_) => OAuthError::invalid_request("redirect_uri is not a valid URL").reply(),
            }
        }
        Err(e) => {
            drop(st);
            tracing::debug!(
                error = e.error,
                "mock warehouse: OAuth authorization refused"
            );
            e.reply()
        }
    }
}

/// The `Location` a valid authorization request is redirected to, after remembering its code.
fn authorize_redirect(
    oauth: &mut OAuthState,
    query: &[u8],
    now: Instant,
) -> Result<String, OAuthError> {
    let p = Params::parse(query)?;
    if p.get("response_type") != Some("code") {
        return Err(OAuthError::invalid_request("response_type must be code"));
    }
    let client_id = p.require("client_id", "client_id is missing")?;
    if !oauth.settings.public_clients.contains(client_id) {
        return Err(OAuthError::invalid_request("unknown client_id"));
    }
    let redirect_uri = p.require("redirect_uri", "redirect_uri is missing")?;
    let mut location = loopback_redirect(redirect_uri).ok_or(OAuthError::invalid_request(
        "redirect_uri must be http://localhost:<port> or http://127.0.0.1:<port>",
    ))?;
    if p.get("code_challenge_method") != Some("S256") {
        return Err(OAuthError::invalid_request(
            "code_challenge_method must be S256",
        ));
    }
    let challenge = p.require("code_challenge", "code_challenge is missing")?;
    if !is_s256_challenge(challenge) {
        return Err(OAuthError::invalid_request(
            "code_challenge must be 43 characters of base64url without padding",
        ));
    }
    let state = p.require("state", "state is missing")?;
    let code = random_token()?;
    oauth.codes.retain(|_, c| now < c.expires);
    oauth.codes.insert(
        code.clone(),
        PendingCode {
            client_id: client_id.to_string(),
            redirect_uri: redirect_uri.to_string(),
            code_challenge: challenge.to_string(),
            scope: p.get("scope").unwrap_or("").to_string(),
            expires: now + CODE_LIFETIME,
        },
    );
    location
        .query_pairs_mut()
        .append_pair("code", &code)
        .append_pair("state", state);
    Ok(location.into())
}

/// `uri` parsed, when it is a loopback redirect: `http://localhost:<port>...` or
/// `http://127.0.0.1:<port>...`, without user info or fragment.
fn loopback_redirect(uri: &str) -> Option<url::Url> {
    if !(uri.starts_with("http://localhost:") || uri.starts_with("http://127.0.0.1:")) {
        return None;
    }
    let url = url::Url::parse(uri).ok()?;
    let loopback = matches!(url.host_str(), Some("localhost" | "127.0.0.1"));
    let clean = url.username().is_empty() && url.password().is_none() && url.fragment().is_none();
    (loopback && clean).then_some(url)
}

/// Whether `challenge` has the shape of an S256 code challenge: the base64url (no padding) of
/// 32 bytes.
fn is_s256_challenge(challenge: &str) -> bool {
    challenge.len() == 43
        && URL_SAFE_NO_PAD
            .decode(challenge)
            .is_ok_and(|b| b.len() == 32)
}

/// Whether `verifier` is a PKCE code verifier (43 to 128 unreserved characters, RFC 7636
/// section 4.1) whose S256 transform is `challenge`.
fn verifier_matches(verifier: &str, challenge: &str) -> bool {
    let well_formed = (43..=128).contains(&verifier.len())
        && verifier
            .bytes()
            .all(|b| b.is_ascii_alphanumeric() || matches!(b, b'-' | b'.' | b'_' | b'~'));
    let digest = ring::digest::digest(&ring::digest::SHA256, verifier.as_bytes());
    well_formed && URL_SAFE_NO_PAD.encode(digest.as_ref()) == challenge
}

/// The credentials of an `Authorization: Basic` header: `Some(Ok((id, secret)))`,
/// `Some(Err(_))` when it does not decode, `None` without one. The id and secret are each
/// form-urlencoded inside the base64 (RFC 6749 section 2.3.1), so they are decoded after it.
fn basic_credentials(headers: &HeaderMap) -> Option<Result<(String, String), OAuthError>> {
    let decoded = super::server::basic_text(headers)?;
    Some(
        decoded
            .and_then(|s| {
                let (id, secret) = s.split_once(':')?;
                Some((form_decode(id)?, form_decode(secret)?))
            })
            .ok_or_else(OAuthError::invalid_client),
    )
}

/// `text` form-urlencoded (`+` for a space, `%XX` escapes), decoded; `None` when the escapes
/// do not make UTF-8.
fn form_decode(text: &str) -> Option<String> {
    let spaced = text.replace('+', " ");
    percent_encoding::percent_decode_str(&spaced)
        .decode_utf8()
        .ok()
        .map(|s| s.into_owned())
}

/// `POST /oidc/v1/token`: a token reply, or an OAuth error.
pub(crate) fn token(shared: &Shared, headers: &HeaderMap, body: &[u8]) -> Response<Bytes> {
    let now = Instant::now();
    let form = headers
        .get(header::CONTENT_TYPE)
        .and_then(|v| v.to_str().ok())
        .is_some_and(|v| {
            v.split(';').next().is_some_and(|t| {
                t.trim()
                    .eq_ignore_ascii_case("application/x-www-form-urlencoded")
            })
        });
    let params = if form {
        Params::parse(body)
    } else {
        Err(OAuthError::invalid_request(
            "the body must be application/x-www-form-urlencoded",
        ))
    };
    let basic = basic_credentials(headers);
    let mut st = shared.lock();
    let oauth = &mut st.oauth;
    let grant_type = params
        .as_ref()
        .ok()
        .and_then(|p| p.get("grant_type"))
        .unwrap_or("")
        .to_string();
    let outcome = params.and_then(|p| match p.get("grant_type") {
        Some("client_credentials") => {
            oauth.counts.client_credentials += 1;
            client_credentials(oauth, &p, basic, now)
        }
        Some("authorization_code") => {
            oauth.counts.authorization_code += 1;
            authorization_code(oauth, &p, basic, now)
        }
        Some("refresh_token") => {
            oauth.counts.refresh_token += 1;
            refresh_token(oauth, &p, basic, now)
        }
        Some(_) => Err(OAuthError::unsupported_grant_type()),
        None => Err(OAuthError::invalid_request("grant_type is missing")),
    });
    if outcome.is_err() {
        oauth.counts.failed += 1;
    }
    drop(st);
    // The grant type is logged only when it is one of the known ones: the field is free text.
    let grant = match grant_type.as_str() {
        g @ ("client_credentials" | "authorization_code" | "refresh_token") => g,
        _ => "other",
    };
    match outcome {
        Ok(reply) => {
            tracing::debug!(grant, "mock warehouse: OAuth token issued");
            let mut r = json_reply(StatusCode::OK, &reply);
            r.headers_mut()
                .insert(header::CACHE_CONTROL, HeaderValue::from_static("no-store"));
            r.headers_mut()
                .insert(header::PRAGMA, HeaderValue::from_static("no-cache"));
            r
        }
        Err(e) => {
            tracing::debug!(
                grant,
                error = e.error,
                "mock warehouse: OAuth token refused"
            );
            e.reply()
        }
    }
}

/// The client id of a public client's token request: `client_id` in the body, else the id of
/// an `Authorization: Basic` header.
fn public_client_id(
    p: &Params,
    basic: Option<Result<(String, String), OAuthError>>,
) -> Result<String, OAuthError> {
    match (p.get("client_id"), basic) {
        (Some(id), _) => Ok(id.to_string()),
        (None, Some(Ok((id, _)))) => Ok(id),
        (None, Some(Err(e))) => Err(e),
        (None, None) => Err(OAuthError::invalid_request("client_id is missing")),
    }
}

/// `grant_type=client_credentials`, the client authenticated by HTTP Basic or by `client_id`
/// and `client_secret` in the body (not both).
fn client_credentials(
    oauth: &mut OAuthState,
    p: &Params,
    basic: Option<Result<(String, String), OAuthError>>,
    now: Instant,
) -> Result<Value, OAuthError> {
    let (id, secret) = match basic {
        Some(_) if p.get("client_secret").is_some() => {
            return Err(OAuthError::invalid_request(
                "more than one client authentication method",
            ))
        }
        Some(credentials) => {
            let (id, secret) = credentials?;
            if p.get("client_id").is_some_and(|body_id| body_id != id) {
                return Err(OAuthError::invalid_client());
            }
            (id, secret)
        }
        None => match (p.get("client_id"), p.get("client_secret")) {
            (Some(id), Some(secret)) => (id.to_string(), secret.to_string()),
            _ => return Err(OAuthError::invalid_client()),
        },
    };
    if oauth.settings.clients.get(&id) != Some(&secret) {
        return Err(OAuthError::invalid_client());
    }
    let scope = p.get("scope").unwrap_or(DEFAULT_SCOPE).to_string();
    oauth.grant(&scope, None, now)
}

/// `grant_type=authorization_code` with PKCE. The code is consumed by the first request that
/// presents it, refused or not.
fn authorization_code(
    oauth: &mut OAuthState,
    p: &Params,
    basic: Option<Result<(String, String), OAuthError>>,
    now: Instant,
) -> Result<Value, OAuthError> {
    let code = p.require("code", "code is missing")?;
    let redirect_uri = p.require("redirect_uri", "redirect_uri is missing")?;
    let verifier = p.require("code_verifier", "code_verifier is missing")?;
    let client_id = public_client_id(p, basic)?;
    let pending = oauth.codes.remove(code).ok_or(OAuthError::invalid_grant(
        "the code is unknown or was already used",
    ))?;
    if now >= pending.expires {
        return Err(OAuthError::invalid_grant("the code has expired"));
    }
    if client_id != pending.client_id {
        return Err(OAuthError::invalid_grant(
            "the code was issued to another client",
        ));
    }
    if redirect_uri != pending.redirect_uri {
        return Err(OAuthError::invalid_grant(
            "redirect_uri differs from the authorization request's",
        ));
    }
    if !verifier_matches(verifier, &pending.code_challenge) {
        return Err(OAuthError::invalid_grant(
            "code_verifier does not match the code_challenge",
        ));
    }
    let scope = if pending.scope.is_empty() {
        DEFAULT_SCOPE
    } else {
        &pending.scope
    };
    oauth.grant(scope, Some(&client_id), now)
}

/// `grant_type=refresh_token`: a new access token and a new refresh token; the old refresh
/// token stays valid until the refresh tokens are revoked.
fn refresh_token(
    oauth: &mut OAuthState,
    p: &Params,
    basic: Option<Result<(String, String), OAuthError>>,
    now: Instant,
) -> Result<Value, OAuthError> {
    let refresh = p.require("refresh_token", "refresh_token is missing")?;
    let client_id = public_client_id(p, basic)?;
    let scope = match oauth.refresh_tokens.get(refresh) {
        Some(g) if g.client_id == client_id => g.scope.clone(),
        Some(_) => {
            return Err(OAuthError::invalid_grant(
                "the refresh token was issued to another client",
            ))
        }
        None => return Err(OAuthError::invalid_grant("unknown refresh token")),
    };
    oauth.grant(&scope, Some(&client_id), now)
}

#[cfg(test)]
mod tests {
    use super::*;
    use base64::engine::general_purpose::STANDARD;

    /// RFC 7636 appendix B.
    const VERIFIER: &str = "dBjftJeZ4CVP-mB92K27uhbUJU1p1r_wW1gFWFOEjXk";
    const CHALLENGE: &str = "E9Melhoa2OwvFrEMTJguCHaoeK1t8URWbuGJSstw-cM";

    #[test]
    fn pkce_s256_matches_the_rfc_7636_example() {
        assert!(is_s256_challenge(CHALLENGE));
        assert!(verifier_matches(VERIFIER, CHALLENGE));
        assert!(!verifier_matches(&VERIFIER.replace('d', "e"), CHALLENGE));
        // A challenge in padded or plain form is not an S256 challenge.
        assert!(!is_s256_challenge(&format!("{CHALLENGE}=")));
        assert!(!is_s256_challenge(VERIFIER.get(..42).unwrap()));
    }

    #[test]
    fn a_verifier_outside_rfc_7636_is_refused_even_when_its_hash_matches() {
        let short = "abc";
        let challenge = URL_SAFE_NO_PAD.encode(ring::digest::digest(
            &ring::digest::SHA256,
            short.as_bytes(),
        ));
        assert!(!verifier_matches(short, &challenge));
        let odd = format!("{VERIFIER}+");
        let challenge =
            URL_SAFE_NO_PAD.encode(ring::digest::digest(&ring::digest::SHA256, odd.as_bytes()));
        assert!(!verifier_matches(&odd, &challenge));
    }

    #[test]
    fn redirect_uris_must_be_loopback_http_with_a_port() {
        for ok in [
            "http://localhost:8020",
            "http://localhost:8020/callback",
            "http://127.0.0.1:1/cb?x=1",
        ] {
            assert!(loopback_redirect(ok).is_some(), "{ok}");
        }
        for bad in [
            "https://localhost:8020",
            "http://localhost/cb",
            "http://example.com:8020/cb",
            "http://localhost.example.com:8020/cb",
            "http://127.0.0.1:8020@example.com/cb",
            "http://localhost:8020/cb#frag",
            "http://[::1]:8020/cb",
            "http://localhost:notaport/cb",
        ] {
            assert!(loopback_redirect(bad).is_none(), "{bad}");
        }
    }

    #[test]
    fn parameters_given_twice_or_empty() {
        let p = Params::parse(b"a=1&b=&c=x%20y").unwrap();
        assert_eq!(p.get("a"), Some("1"));
        assert_eq!(p.get("b"), None);
        assert_eq!(p.get("c"), Some("x y"));
        assert!(Params::parse(b"a=1&a=2").is_err());
    }

    #[test]
    fn basic_credentials_decode_id_and_secret() {
        let mut h = HeaderMap::new();
        assert!(basic_credentials(&h).is_none());
        let v = format!("Basic {}", STANDARD.encode("id:se:cret"));
        h.insert(header::AUTHORIZATION, HeaderValue::from_str(&v).unwrap());
        let (id, secret) = basic_credentials(&h).unwrap().unwrap();
        assert_eq!((id.as_str(), secret.as_str()), ("id", "se:cret"));
        // Form-urlencoded inside the base64: `+` is a space, `%XX` a byte.
        let v = format!("Basic {}", STANDARD.encode("id+1:a%2Bb%25%3Ac%26d+e"));
        h.insert(header::AUTHORIZATION, HeaderValue::from_str(&v).unwrap());
        let (id, secret) = basic_credentials(&h).unwrap().unwrap();
        assert_eq!((id.as_str(), secret.as_str()), ("id 1", "a+b%:c&d e"));
        let v = format!("Basic {}", STANDARD.encode("id:%FF"));
        h.insert(header::AUTHORIZATION, HeaderValue::from_str(&v).unwrap());
        assert!(basic_credentials(&h).unwrap().is_err());
        h.insert(header::AUTHORIZATION, HeaderValue::from_static("Basic !!!"));
        assert!(basic_credentials(&h).unwrap().is_err());
        h.insert(header::AUTHORIZATION, HeaderValue::from_static("Bearer x"));
        assert!(basic_credentials(&h).is_none());
    }

    #[test]
    fn access_tokens_expire_and_are_revoked() {
        let mut s = OAuthSettings::default();
        s.set_token_lifetime(Duration::from_millis(500));
        let mut o = OAuthState::new(s);
        let now = Instant::now();
        let (t, expires_in) = o.issue_access_token(now).unwrap();
        assert_eq!(expires_in, 1);
        assert!(t.len() >= 43);
        assert!(o.accepts(&t, now + Duration::from_millis(499)));
        assert!(!o.accepts(&t, now + Duration::from_millis(500)));
        assert!(!o.accepts("unknown", now));
        let (t2, _) = o.issue_access_token(now).unwrap();
        o.revoke_access_tokens();
        assert!(!o.accepts(&t2, now));
    }

    #[test]
    fn debug_output_holds_no_secret() {
        let mut s = OAuthSettings::default();
        s.add_client("id-1".into(), "very-secret".into());
        let o = OAuthState::new(s);
        let shown = format!("{o:?}");
        assert!(shown.contains("id-1"));
        assert!(!shown.contains("very-secret") && !shown.contains(DEFAULT_OAUTH_CLIENT_SECRET));
    }
}
