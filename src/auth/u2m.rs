//! OAuth user-to-machine authentication ([`OAuthU2M`]): a person logs in with a browser
//! (authorization code with PKCE, a loopback redirect listener), then refresh tokens renew the
//! access token, kept in a token cache file so that the next run needs no browser.

use std::collections::BTreeMap;
use std::fmt;
use std::net::{Ipv4Addr, Ipv6Addr, SocketAddr};
use std::path::{Path, PathBuf};
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, Mutex};
use std::time::{Duration, SystemTime, UNIX_EPOCH};

use async_trait::async_trait;
use base64::Engine;
use serde::{Deserialize, Serialize};
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::{TcpListener, TcpStream};
use tokio::task::JoinSet;

use super::oauth::{AuthorizationServer, TokenAnswer, TokenRequestError};
use super::token::{AccessToken, CachedToken, TokenSource, DEFAULT_REFRESH_MARGIN};
use crate::error::{Error, ErrorKind, Result};
use crate::http::{fmt_duration, HttpTransport, RetryPolicy};

/// The client id of the Databricks CLI, which Databricks workspaces accept for browser logins
/// with a loopback redirect on port 8020.
pub const DEFAULT_U2M_CLIENT_ID: &str = "databricks-cli";

/// The loopback port of the login's redirect.
pub const DEFAULT_REDIRECT_PORT: u16 = 8020;

/// The longest request line and headers read from the browser's redirect.
const MAX_REDIRECT_REQUEST: usize = 16 * 1024;

/// How long one connection to the redirect listener has to send its request.
const REDIRECT_REQUEST_TIMEOUT: Duration = Duration::from_secs(5);

/// How many ports a redirect listener on port 0 tries when the IPv6 loopback has the port the
/// IPv4 loopback was given taken.
const EPHEMERAL_PORT_ATTEMPTS: usize = 5;

/// How many names are tried for the token cache's temporary file.
const TEMP_FILE_ATTEMPTS: usize = 8;

/// What is done with the login URL.
type UrlHandler = Arc<dyn Fn(&str) + Send + Sync>;

/// OAuth user-to-machine settings: a person logs in to the workspace in a browser.
///
/// On first use the driver opens a loopback listener for the redirect (on `127.0.0.1` and
/// `[::1]`, since browsers may resolve `localhost` to either), prints the login URL (and opens
/// it in the browser with [`open_browser`](Self::open_browser)), waits for the redirect, and
/// exchanges its code (with PKCE, S256) for an access token and a refresh token. A redirect
/// carrying another login's `state` is answered 400 and the wait goes on.
///
/// Refresh tokens renew the access token without a browser; both are kept in a token cache file
/// (one entry per workspace and client id), so that the next run logs in silently. A browser
/// login starts again only when the authorization server refuses the refresh token
/// (`invalid_grant`, or another OAuth error answered 400 or 401) and the cache file holds no
/// newer one; a network failure or a server error is returned as an error instead.
/// The cache file is written to a new file beside it, then renamed over it; on Unix that file is
/// created with mode 0600 (owner only), on Windows it inherits the ACLs of its directory. A
/// cache file that is not a token cache is left alone (and not written).
///
/// Defaults: client id `databricks-cli`; scopes `all-apis offline_access`; redirect
/// `http://localhost:8020`; the URL printed on standard error, no browser opened; a login waits
/// at most 5 minutes; the token cache at `~/.config/databricks-sql-rust/oauth-tokens.json`
/// (none when there is no home directory); tokens renewed 60 s (at most a quarter of their
/// lifetime) before they expire.
#[derive(Clone)]
pub struct OAuthU2M {
    client_id: String,
    scopes: Vec<String>,
    redirect_port: u16,
    open_browser: bool,
    on_login_url: Option<UrlHandler>,
    login_timeout: Duration,
    token_cache: Option<PathBuf>,
    refresh_margin: Duration,
}

impl Default for OAuthU2M {
    fn default() -> Self {
        Self::new()
    }
}

impl OAuthU2M {
    /// Every setting at its default.
    pub fn new() -> Self {
        OAuthU2M {
            client_id: DEFAULT_U2M_CLIENT_ID.to_string(),
            scopes: vec!["all-apis".to_string(), "offline_access".to_string()],
            redirect_port: DEFAULT_REDIRECT_PORT,
            open_browser: false,
            on_login_url: None,
            login_timeout: Duration::from_secs(300),
            token_cache: default_token_cache(),
            refresh_margin: DEFAULT_REFRESH_MARGIN,
        }
    }

    /// The OAuth client id (a public client registered with a loopback redirect). Default
    /// `databricks-cli`.
    pub fn client_id(mut self, client_id: impl Into<String>) -> Self {
        self.client_id = client_id.into();
        self
    }

    /// The scopes asked for. Default `all-apis offline_access` (the second one gives refresh
    /// tokens).
    pub fn scopes<I, S>(mut self, scopes: I) -> Self
    where
        I: IntoIterator<Item = S>,
        S: Into<String>,
    {
        self.scopes = scopes.into_iter().map(Into::into).collect();
        self
    }

    /// The loopback port the login redirects to (`http://localhost:<port>`); 0 takes any free
    /// port (the client id must then accept any loopback port). Default 8020.
    pub fn redirect_port(mut self, port: u16) -> Self {
        self.redirect_port = port;
        self
    }

    /// Open the login URL in the system's browser as well as printing it. Default false.
    pub fn open_browser(mut self, on: bool) -> Self {
        self.open_browser = on;
        self
    }

    /// Hand the login URL to `handler` instead of printing it (an application's own UI).
    pub fn on_login_url(mut self, handler: impl Fn(&str) + Send + Sync + 'static) -> Self {
        self.on_login_url = Some(Arc::new(handler));
        self
    }

    /// How long a login waits for the browser's redirect. Default 5 minutes.
    pub fn login_timeout(mut self, timeout: Duration) -> Self {
        self.login_timeout = timeout;
        self
    }

    /// Where tokens are kept between runs (`None`: nowhere, every run logs in). Default
    /// `~/.config/databricks-sql-rust/oauth-tokens.json`.
    pub fn token_cache(mut self, path: Option<PathBuf>) -> Self {
        self.token_cache = path;
        self
    }

    /// How long before a token expires it is renewed (at most a quarter of its lifetime).
    /// Default 60 s.
    pub fn refresh_margin(mut self, margin: Duration) -> Self {
        self.refresh_margin = margin;
        self
    }

    /// The provider for a workspace at `base_url`.
    pub(crate) fn provider(
        self,
        base_url: &str,
        transport: Arc<dyn HttpTransport>,
        retry: RetryPolicy,
    ) -> Result<CachedToken<BrowserLogin>> {
        if self.client_id.trim().is_empty() {
            return Err(Error::config("the OAuth client id is empty"));
        }
        let margin = self.refresh_margin;
        Ok(CachedToken::new(
            BrowserLogin::new(self, base_url, transport, retry),
            margin,
        ))
    }
}

impl fmt::Debug for OAuthU2M {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("OAuthU2M")
            .field("client_id", &self.client_id)
            .field("scopes", &self.scopes)
            .field("redirect_port", &self.redirect_port)
            .field("open_browser", &self.open_browser)
            .field("login_timeout", &self.login_timeout)
            .field("token_cache", &self.token_cache)
            .finish_non_exhaustive()
    }
}

fn default_token_cache() -> Option<PathBuf> {
    let home = std::env::var_os("HOME").or_else(|| std::env::var_os("USERPROFILE"))?;
    Some(
        PathBuf::from(home)
            .join(".config")
            .join("databricks-sql-rust")
            .join("oauth-tokens.json"),
    )
}

/// The authorization-code grant (with refresh tokens and the token cache) as a [`TokenSource`].
pub(crate) struct BrowserLogin {
    settings: OAuthU2M,
    server: AuthorizationServer,
    /// `<base URL>|<client id>`: the entry of the token cache.
    cache_key: String,
    /// The latest refresh token.
    refresh_token: Mutex<Option<String>>,
    /// Set by the first fetch: only that one may take the cache file's access token (a later
    /// fetch follows a refused or expiring token, which the file would give back).
    fetched: AtomicBool,
}

impl fmt::Debug for BrowserLogin {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("BrowserLogin")
            .field("client_id", &self.settings.client_id)
            .finish_non_exhaustive()
    }
}

#[async_trait]
impl TokenSource for BrowserLogin {
    async fn fetch(&self) -> Result<AccessToken> {
        let first = !self.fetched.swap(true, Ordering::SeqCst);
        let known = self.remembered_refresh_token();
        let (refresh_token, from_cache) = match known {
            Some(t) => (Some(t), false),
            None => match self.read_cache() {
                Some(entry) => {
                    if first {
                        let margin = self.settings.refresh_margin;
                        if let Some(token) = entry.valid_access_token(SystemTime::now(), margin) {
                            self.remember_refresh_token(entry.refresh_token.clone());
                            tracing::debug!("OAuth: access token taken from the token cache");
                            return Ok(token);
                        }
                    }
                    (entry.refresh_token, true)
                }
                None => (None, false),
            },
        };
        if let Some(refresh_token) = refresh_token {
            match self.refresh(&refresh_token).await {
                Ok(token) => return Ok(token),
                Err(e) if e.grant_refused() => {
                    if let Some(token) = self.refresh_rotated(&refresh_token, &e).await? {
                        return Ok(token);
                    }
                    tracing::debug!(
                        error = %e.error,
                        from_cache,
                        "OAuth: the refresh token was refused; logging in again"
                    );
                }
                Err(e) => return Err(e.error),
            }
        }
        self.login().await
    }

    fn auth_type(&self) -> &'static str {
        "oauth-u2m"
    }

    fn interactive(&self) -> bool {
        true
    }
}

impl BrowserLogin {
    fn new(
        settings: OAuthU2M,
        base_url: &str,
        transport: Arc<dyn HttpTransport>,
        retry: RetryPolicy,
    ) -> Self {
        BrowserLogin {
            cache_key: format!("{}|{}", base_url.trim_end_matches('/'), settings.client_id),
            server: AuthorizationServer::new(base_url, transport, retry, None),
            settings,
            refresh_token: Mutex::new(None),
            fetched: AtomicBool::new(false),
        }
    }

    fn remembered_refresh_token(&self) -> Option<String> {
        self.refresh_token
            .lock()
            .unwrap_or_else(|e| e.into_inner())
            .clone()
    }

    fn remember_refresh_token(&self, token: Option<String>) {
        *self.refresh_token.lock().unwrap_or_else(|e| e.into_inner()) = token;
    }

    async fn refresh(&self, refresh_token: &str) -> Result<AccessToken, TokenRequestError> {
        let form = [
            ("grant_type", "refresh_token"),
            ("refresh_token", refresh_token),
            ("client_id", self.settings.client_id.as_str()),
        ];
        let answer = self
            .server
            .token_request(&form, None, false, &[refresh_token])
            .await?;
        Ok(self.keep(answer, Some(refresh_token)))
    }

    /// After `refused` (the refusal of `refused_token`): when it is `invalid_grant` and the
    /// cache file holds another refresh token (another process renewed and rotated it), that
    /// one is tried once. `Ok(None)`: a browser login is what is left.
    async fn refresh_rotated(
        &self,
        refused_token: &str,
        refused: &TokenRequestError,
    ) -> Result<Option<AccessToken>> {
        if !refused.is_invalid_grant() {
            return Ok(None);
        }
        let Some(other) = self
            .read_cache()
            .and_then(|entry| entry.refresh_token)
            .filter(|t| t != refused_token)
        else {
            return Ok(None);
        };
        match self.refresh(&other).await {
            Ok(token) => {
                tracing::debug!("OAuth: renewed with the refresh token of the token cache");
                Ok(Some(token))
            }
            Err(e) if e.grant_refused() => {
                tracing::debug!(
                    error = %e.error,
                    "OAuth: the token cache's refresh token was refused too"
                );
                Ok(None)
            }
            Err(e) => Err(e.error),
        }
    }

    /// Remember the tokens of `answer` (in memory and in the cache file); the access token.
    fn keep(&self, answer: TokenAnswer, previous_refresh: Option<&str>) -> AccessToken {
        let token = answer.access_token();
        let refresh = answer
            .refresh_token
            .clone()
            .or_else(|| previous_refresh.map(str::to_string));
        self.remember_refresh_token(refresh.clone());
        self.write_cache(CacheEntry {
            access_token: Some(token.secret().to_string()),
            expires_at_unix: token.expires_in().and_then(|lifetime| {
                (SystemTime::now() + lifetime)
                    .duration_since(UNIX_EPOCH)
                    .ok()
                    .map(|d| d.as_secs())
            }),
            refresh_token: refresh,
        });
        token
    }

    /// A browser login: listen, show the URL, wait for the redirect, exchange the code.
    async fn login(&self) -> Result<AccessToken> {
        let s = &self.settings;
        let endpoints = self.server.endpoints().await?;
        let authorization_endpoint = endpoints.authorization_endpoint.clone().ok_or_else(|| {
            Error::new(
                ErrorKind::Auth,
                "the workspace's OAuth discovery document names no authorization endpoint",
            )
        })?;
        let listener = RedirectListener::bind(s.redirect_port).await?;
        let redirect_uri = format!("http://localhost:{}", listener.port);
        let verifier = random_text(32)?;
        let state = random_text(16)?;
        let challenge = base64::engine::general_purpose::URL_SAFE_NO_PAD.encode(
            ring::digest::digest(&ring::digest::SHA256, verifier.as_bytes()),
        );
        let mut url = url::Url::parse(&authorization_endpoint).map_err(|_| {
            Error::new(
                ErrorKind::Auth,
                "the workspace's OAuth authorization endpoint is not a valid URL",
            )
        })?;
        url.query_pairs_mut()
            .append_pair("response_type", "code")
            .append_pair("client_id", &s.client_id)
            .append_pair("redirect_uri", &redirect_uri)
            .append_pair("scope", &s.scopes.join(" "))
            .append_pair("state", &state)
            .append_pair("code_challenge", &challenge)
            .append_pair("code_challenge_method", "S256");
        self.show(url.as_str());
        let code = tokio::time::timeout(s.login_timeout, listener.wait_for_redirect(&state))
            .await
            .map_err(|_| {
                Error::new(
                    ErrorKind::Auth,
                    format!(
                        "the OAuth login timed out: no redirect to {redirect_uri} with this \
                         login's state came back within {} (the login timeout)",
                        fmt_duration(s.login_timeout)
                    ),
                )
            })??;
        drop(listener);
        let form = [
            ("grant_type", "authorization_code"),
            ("code", code.as_str()),
            ("redirect_uri", redirect_uri.as_str()),
            ("client_id", s.client_id.as_str()),
            ("code_verifier", verifier.as_str()),
        ];
        let answer = self
            .server
            .token_request(&form, None, false, &[&verifier, &code])
            .await?;
        tracing::debug!("OAuth: browser login completed");
        Ok(self.keep(answer, None))
    }

    fn show(&self, url: &str) {
        if let Some(handler) = &self.settings.on_login_url {
            handler(url);
        } else {
            eprintln!("Log in to Databricks in a browser: {url}");
        }
        if self.settings.open_browser {
            open_in_browser(url);
        }
    }

    fn read_cache(&self) -> Option<CacheEntry> {
        let path = self.settings.token_cache.as_deref()?;
        match read_cache_file(path) {
            Ok(mut file) => file.entries.remove(&self.cache_key),
            Err(e) => {
                tracing::debug!(error = %e, "OAuth: the token cache could not be read");
                None
            }
        }
    }

    fn write_cache(&self, entry: CacheEntry) {
        let Some(path) = self.settings.token_cache.as_deref() else {
            return;
        };
        if let Err(e) = store_in_cache_file(path, &self.cache_key, entry) {
            tracing::debug!(error = %e, "OAuth: the token cache was not written");
        }
    }
}

/// `bytes` random bytes from the system's secure source, as base64url text.
fn random_text(bytes: usize) -> Result<String> {
    use ring::rand::SecureRandom;
    let mut buf = vec![0u8; bytes];
    ring::rand::SystemRandom::new()
        .fill(&mut buf)
        .map_err(|_| {
            Error::new(
                ErrorKind::Auth,
                "no secure random numbers for the OAuth login",
            )
        })?;
    Ok(base64::engine::general_purpose::URL_SAFE_NO_PAD.encode(buf))
}

/// Start the system's browser on `url`, and reap it on a thread of its own when it exits;
/// failures are logged only (the URL was shown).
fn open_in_browser(url: &str) {
    let mut command = if cfg!(target_os = "macos") {
        std::process::Command::new("open")
    } else if cfg!(windows) {
        let mut c = std::process::Command::new("rundll32");
        c.arg("url.dll,FileProtocolHandler");
        c
    } else {
        std::process::Command::new("xdg-open")
    };
    let spawned = command
        .arg(url)
        .stdin(std::process::Stdio::null())
        .stdout(std::process::Stdio::null())
        .stderr(std::process::Stdio::null())
        .spawn();
    let mut child = match spawned {
        Ok(child) => child,
        Err(e) => {
            tracing::debug!(error = %e, "OAuth: the browser could not be started");
            return;
        }
    };
    let reaper = std::thread::Builder::new()
        .name("dbsql-browser-wait".into())
        .spawn(move || {
            if let Err(e) = child.wait() {
                tracing::debug!(error = %e, "OAuth: waiting for the browser command failed");
            }
        });
    if let Err(e) = reaper {
        tracing::debug!(error = %e, "OAuth: no thread to wait for the browser command");
    }
}

/// The loopback listener of a login's redirect: `127.0.0.1:<port>` and, where the machine has
/// IPv6, `[::1]:<port>`.
struct RedirectListener {
    v4: TcpListener,
    v6: Option<TcpListener>,
    port: u16,
}

impl RedirectListener {
    /// Listen on `port` of both loopback addresses; with port 0, on a port free on both. A
    /// machine without IPv6 gets the IPv4 listener only; an IPv6 port taken by another program
    /// is an error (that program would get the browser's redirect).
    async fn bind(port: u16) -> Result<Self> {
        let attempts = if port == 0 {
            EPHEMERAL_PORT_ATTEMPTS
        } else {
            1
        };
        let mut attempt = 0;
        loop {
            attempt += 1;
            let v4 = TcpListener::bind((Ipv4Addr::LOCALHOST, port))
                .await
                .map_err(|e| cannot_listen(&format!("127.0.0.1:{port}"), &e))?;
            let bound = v4
                .local_addr()
                .map_err(|e| Error::new(ErrorKind::Auth, format!("the login's listener: {e}")))?
                .port();
            match TcpListener::bind((Ipv6Addr::LOCALHOST, bound)).await {
                Ok(v6) => {
                    return Ok(RedirectListener {
                        v4,
                        v6: Some(v6),
                        port: bound,
                    })
                }
                Err(e) if ipv6_unavailable(&e) => {
                    tracing::debug!(
                        error = %e,
                        "OAuth: no IPv6 loopback; the login listens on 127.0.0.1 only"
                    );
                    return Ok(RedirectListener {
                        v4,
                        v6: None,
                        port: bound,
                    });
                }
                Err(e) if e.kind() == std::io::ErrorKind::AddrInUse && attempt < attempts => {
                    tracing::debug!(
                        port = bound,
                        "OAuth: the port is taken on [::1]; trying another one"
                    );
                }
                Err(e) => return Err(cannot_listen(&format!("[::1]:{bound}"), &e)),
            }
        }
    }

    /// Serve connections until one is the redirect of the login with `state`: its code, or
    /// the error the authorization server sent back. Each connection is served by a task of
    /// its own with [`REDIRECT_REQUEST_TIMEOUT`] to send its request, so that none holds up
    /// another. Other requests (a browser's `/favicon.ico`) get a 404 and a redirect with
    /// another state (forged, or a stale login's) a 400, and the wait goes on.
    async fn wait_for_redirect(&self, state: &str) -> Result<String> {
        let state: Arc<str> = Arc::from(state);
        let mut connections: JoinSet<Option<Result<String>>> = JoinSet::new();
        loop {
            let accepted = tokio::select! {
                accepted = self.v4.accept() => accepted,
                accepted = accept_on(self.v6.as_ref()) => accepted,
                Some(served) = connections.join_next() => {
                    match served {
                        Ok(Some(outcome)) => return outcome,
                        Ok(None) => {}
                        Err(e) => tracing::debug!(error = %e, "OAuth: a redirect connection task failed"),
                    }
                    continue;
                }
            };
            let (stream, _) = accepted.map_err(|e| {
                Error::new(ErrorKind::Auth, format!("the login's listener failed: {e}"))
            })?;
            connections.spawn(serve_redirect(stream, state.clone()));
        }
    }
}

/// A connection accepted by `listener`; never ready without one.
async fn accept_on(listener: Option<&TcpListener>) -> std::io::Result<(TcpStream, SocketAddr)> {
    match listener {
        Some(listener) => listener.accept().await,
        None => std::future::pending().await,
    }
}

fn cannot_listen(address: &str, e: &std::io::Error) -> Error {
    let why = if e.kind() == std::io::ErrorKind::AddrInUse {
        " (another program uses that port)"
    } else {
        ""
    };
    Error::new(
        ErrorKind::Auth,
        format!("the OAuth login cannot listen for its redirect on {address}{why}: {e}"),
    )
}

/// Whether a bind to the IPv6 loopback failed because the machine has no IPv6 (no such
/// address, or no such address family), rather than because the port is taken.
fn ipv6_unavailable(e: &std::io::Error) -> bool {
    use std::io::ErrorKind as K;
    // EAFNOSUPPORT and EPROTONOSUPPORT, which `std::io::ErrorKind` does not name.
    const NO_FAMILY: [i32; 2] = if cfg!(windows) {
        [10047, 10043]
    } else if cfg!(any(target_os = "linux", target_os = "android")) {
        [97, 93]
    } else {
        [47, 43]
    };
    matches!(e.kind(), K::AddrNotAvailable | K::Unsupported)
        || e.raw_os_error()
            .is_some_and(|code| NO_FAMILY.contains(&code))
}

/// One connection to the redirect listener: its request read and answered. `Some`: it was the
/// redirect of the login with `state` (its code, or the error it carries); `None`: anything
/// else.
async fn serve_redirect(mut stream: TcpStream, state: Arc<str>) -> Option<Result<String>> {
    let Some(target) = read_request_target(&mut stream).await else {
        respond(&mut stream, "400 Bad Request", "Not a login redirect.").await;
        return None;
    };
    let Ok(url) = url::Url::parse(&format!("http://localhost{target}")) else {
        respond(&mut stream, "400 Bad Request", "Not a login redirect.").await;
        return None;
    };
    let params: BTreeMap<String, String> = url.query_pairs().into_owned().collect();
    if !params.contains_key("code") && !params.contains_key("error") {
        respond(&mut stream, "404 Not Found", "Not a login redirect.").await;
        return None;
    }
    if params.get("state").map(String::as_str) != Some(&*state) {
        tracing::debug!("OAuth: a redirect with another login's state was refused");
        respond(
            &mut stream,
            "400 Bad Request",
            "This login was not started here.",
        )
        .await;
        return None;
    }
    if let Some(error) = params.get("error") {
        respond(&mut stream, "400 Bad Request", "The login failed.").await;
        let description = params
            .get("error_description")
            .map(|d| format!(": {d}"))
            .unwrap_or_default();
        return Some(Err(Error::new(
            ErrorKind::Auth,
            format!("the OAuth login was refused: {error}{description}"),
        )));
    }
    respond(
        &mut stream,
        "200 OK",
        "Logged in to Databricks. You can close this window.",
    )
    .await;
    Some(
        params
            .get("code")
            .filter(|c| !c.is_empty())
            .cloned()
            .ok_or_else(|| Error::new(ErrorKind::Auth, "the OAuth redirect carried an empty code")),
    )
}

/// The target of an HTTP `GET` request read from `stream` (`/path?query`), or `None` for
/// anything else, a request too large, or a connection too slow
/// ([`REDIRECT_REQUEST_TIMEOUT`]).
async fn read_request_target(stream: &mut TcpStream) -> Option<String> {
    let mut buf = Vec::with_capacity(1024);
    let read = async {
        let mut chunk = [0u8; 1024];
        while !buf.windows(4).any(|w| w == b"\r\n\r\n") {
            let n = stream.read(&mut chunk).await.ok()?;
            if n == 0 || buf.len() + n > MAX_REDIRECT_REQUEST {
                return None;
            }
            buf.extend_from_slice(&chunk[..n]);
        }
        Some(())
    };
    tokio::time::timeout(REDIRECT_REQUEST_TIMEOUT, read)
        .await
        .ok()??;
    let head = std::str::from_utf8(&buf).ok()?;
    let mut parts = head.lines().next()?.split(' ');
    match (parts.next(), parts.next(), parts.next()) {
        (Some("GET"), Some(target), Some(version))
            if target.starts_with('/') && version.starts_with("HTTP/1.") =>
        {
            Some(target.to_string())
        }
        _ => None,
    }
}

/// Answer `status` with a page saying `text`, and close; a peer that does not take the answer
/// within [`REDIRECT_REQUEST_TIMEOUT`] is left.
async fn respond(stream: &mut TcpStream, status: &str, text: &str) {
    let body = format!("<!doctype html><title>Databricks</title><p>{text}</p>\n");
    let reply = format!(
        "HTTP/1.1 {status}\r\nContent-Type: text/html; charset=utf-8\r\nContent-Length: {}\r\nConnection: close\r\n\r\n{body}",
        body.len()
    );
    let send = async {
        let _ = stream.write_all(reply.as_bytes()).await;
        let _ = stream.shutdown().await;
    };
    let _ = tokio::time::timeout(REDIRECT_REQUEST_TIMEOUT, send).await;
}

/// The token cache file: one entry per `<workspace base URL>|<client id>`.
#[derive(Debug, Default, Serialize, Deserialize)]
struct CacheFile {
    #[serde(default)]
    entries: BTreeMap<String, CacheEntry>,
}

#[derive(Clone, Default, Serialize, Deserialize)]
struct CacheEntry {
    #[serde(default, skip_serializing_if = "Option::is_none")]
    access_token: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    expires_at_unix: Option<u64>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    refresh_token: Option<String>,
}

impl fmt::Debug for CacheEntry {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("CacheEntry")
            .field("expires_at_unix", &self.expires_at_unix)
            .finish_non_exhaustive()
    }
}

impl CacheEntry {
    /// The cached access token when it is valid for more than `margin` at `now`.
    fn valid_access_token(&self, now: SystemTime, margin: Duration) -> Option<AccessToken> {
        let token = self.access_token.as_ref()?;
        // In whole seconds from the Unix epoch: no clock arithmetic that a large stored value
        // could overflow.
        let now_unix = now.duration_since(UNIX_EPOCH).ok()?.as_secs();
        let left = Duration::from_secs(self.expires_at_unix?.checked_sub(now_unix)?);
        (left > margin).then(|| AccessToken::new(token.clone(), Some(left)))
    }
}

fn read_cache_file(path: &Path) -> std::io::Result<CacheFile> {
    match std::fs::read(path) {
        Ok(bytes) => serde_json::from_slice(&bytes)
            .map_err(|e| std::io::Error::new(std::io::ErrorKind::InvalidData, e)),
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => Ok(CacheFile::default()),
        Err(e) => Err(e),
    }
}

/// Put `entry` under `key` in the cache file at `path` (created when missing). A file that
/// cannot be read or is not a token cache is an error, and is left as it is.
fn store_in_cache_file(path: &Path, key: &str, entry: CacheEntry) -> std::io::Result<()> {
    let mut file = read_cache_file(path)?;
    file.entries.insert(key.to_string(), entry);
    write_cache_file(path, &file)
}

/// Write `file` to `path`: into a new file of a random name beside it (created exclusively, so
/// never an existing file nor a symbolic link; on Unix with mode 0600 from its creation),
/// synced, then renamed over `path`.
fn write_cache_file(path: &Path, file: &CacheFile) -> std::io::Result<()> {
    use std::io::Write;
    if let Some(dir) = path.parent() {
        create_private_dir(dir)?;
    }
    let text = serde_json::to_vec_pretty(file).map_err(std::io::Error::other)?;
    let (tmp, mut out) = create_temp_beside(path)?;
    let result = (|| {
        out.write_all(&text)?;
        out.sync_all()?;
        drop(out);
        std::fs::rename(&tmp, path)
    })();
    if result.is_err() {
        let _ = std::fs::remove_file(&tmp);
    }
    result
}

/// A new file `<path>.<random>.tmp`, created exclusively (owner-only on Unix), and its path.
fn create_temp_beside(path: &Path) -> std::io::Result<(PathBuf, std::fs::File)> {
    let mut options = std::fs::OpenOptions::new();
    options.write(true).create_new(true);
    #[cfg(unix)]
    {
        use std::os::unix::fs::OpenOptionsExt;
        options.mode(0o600);
    }
    let mut attempt = 0;
    loop {
        attempt += 1;
        let mut name = path.as_os_str().to_owned();
        name.push(format!(".{:016x}.tmp", crate::http::backoff::random_u64()));
        let tmp = PathBuf::from(name);
        match options.open(&tmp) {
            Ok(out) => return Ok((tmp, out)),
            Err(e)
                if e.kind() == std::io::ErrorKind::AlreadyExists
                    && attempt < TEMP_FILE_ATTEMPTS => {}
            Err(e) => return Err(e),
        }
    }
}

fn create_private_dir(dir: &Path) -> std::io::Result<()> {
    let mut builder = std::fs::DirBuilder::new();
    builder.recursive(true);
    #[cfg(unix)]
    {
        use std::os::unix::fs::DirBuilderExt;
        builder.mode(0o700);
    }
    builder.create(dir)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn temp_path(name: &str) -> PathBuf {
        std::env::temp_dir().join(format!(
            "dbsql-u2m-{}-{}-{name}",
            std::process::id(),
            random_text(6).expect("random")
        ))
    }

    #[test]
    fn a_cached_expiry_too_far_ahead_for_the_clock_is_taken_as_far_ahead() {
        let entry = CacheEntry {
            access_token: Some("a".into()),
            expires_at_unix: Some(u64::MAX),
            refresh_token: None,
        };
        let token = entry
            .valid_access_token(SystemTime::now(), Duration::from_secs(60))
            .expect("valid");
        assert!(token
            .expires_in()
            .is_some_and(|d| d > Duration::from_secs(86_400 * 365)));
    }

    fn entry(refresh: &str) -> CacheEntry {
        CacheEntry {
            access_token: Some("a".into()),
            expires_at_unix: Some(5),
            refresh_token: Some(refresh.into()),
        }
    }

    fn names_in(dir: &Path) -> Vec<String> {
        let mut names: Vec<String> = std::fs::read_dir(dir)
            .expect("dir")
            .map(|e| e.expect("entry").file_name().to_string_lossy().into_owned())
            .collect();
        names.sort();
        names
    }

    #[test]
    fn the_cache_file_is_private_and_round_trips() {
        let dir = temp_path("cache");
        let path = dir.join("sub").join("tokens.json");
        let mut file = CacheFile::default();
        file.entries.insert("https://h|id".into(), entry("r"));
        write_cache_file(&path, &file).expect("written");
        let back = read_cache_file(&path).expect("read");
        assert_eq!(
            back.entries["https://h|id"].refresh_token.as_deref(),
            Some("r")
        );
        #[cfg(unix)]
        {
            use std::os::unix::fs::PermissionsExt;
            let mode = std::fs::metadata(&path).expect("meta").permissions().mode();
            assert_eq!(mode & 0o777, 0o600);
        }
        assert_eq!(names_in(path.parent().expect("dir")), ["tokens.json"]);
        let _ = std::fs::remove_dir_all(&dir);
    }

    #[cfg(unix)]
    #[test]
    fn a_world_readable_cache_file_is_replaced_by_a_private_one() {
        use std::os::unix::fs::PermissionsExt;
        let dir = temp_path("perm");
        std::fs::create_dir_all(&dir).expect("dir");
        let path = dir.join("tokens.json");
        std::fs::write(&path, r#"{"entries":{"other|id":{"refresh_token":"o"}}}"#).expect("file");
        std::fs::set_permissions(&path, std::fs::Permissions::from_mode(0o644)).expect("chmod");
        store_in_cache_file(&path, "https://h|id", entry("r")).expect("stored");
        let mode = std::fs::metadata(&path).expect("meta").permissions().mode();
        assert_eq!(mode & 0o777, 0o600, "the new file is private");
        let back = read_cache_file(&path).expect("read");
        assert_eq!(
            back.entries["https://h|id"].refresh_token.as_deref(),
            Some("r")
        );
        assert_eq!(back.entries["other|id"].refresh_token.as_deref(), Some("o"));
        assert_eq!(names_in(&dir), ["tokens.json"], "no temporary file left");
        let _ = std::fs::remove_dir_all(&dir);
    }

    #[test]
    fn a_cache_file_that_does_not_parse_is_left_untouched() {
        let dir = temp_path("garbage");
        std::fs::create_dir_all(&dir).expect("dir");
        let path = dir.join("tokens.json");
        std::fs::write(&path, "not a token cache").expect("file");
        let err = store_in_cache_file(&path, "https://h|id", entry("r")).expect_err("refused");
        assert_eq!(err.kind(), std::io::ErrorKind::InvalidData);
        assert_eq!(
            std::fs::read_to_string(&path).expect("read"),
            "not a token cache"
        );
        assert_eq!(names_in(&dir), ["tokens.json"]);
        let _ = std::fs::remove_dir_all(&dir);
    }

    #[test]
    fn a_cached_access_token_is_used_only_with_more_than_the_margin_left() {
        let now = SystemTime::now();
        let at = |secs: u64| CacheEntry {
            access_token: Some("tok".into()),
            expires_at_unix: Some(
                now.duration_since(UNIX_EPOCH)
                    .expect("after 1970")
                    .as_secs()
                    + secs,
            ),
            refresh_token: None,
        };
        let minute = Duration::from_secs(60);
        assert!(at(30).valid_access_token(now, minute).is_none());
        assert!(at(600).valid_access_token(now, minute).is_some());
        assert!(at(30)
            .valid_access_token(now, Duration::from_secs(10))
            .is_some());
        assert!(at(600)
            .valid_access_token(now, Duration::from_secs(900))
            .is_none());
        assert!(!format!("{:?}", at(600)).contains("tok"));
    }

    #[test]
    fn debug_shows_no_handler_or_tokens() {
        let u2m = OAuthU2M::new().on_login_url(|_| {});
        let text = format!("{u2m:?}");
        assert!(text.contains("databricks-cli"), "{text}");
        let login = BrowserLogin::new(
            u2m,
            "https://h.example.com",
            Arc::new(crate::http::MockHttpTransport::new()),
            RetryPolicy::default(),
        );
        login.remember_refresh_token(Some("refresh-token-value".into()));
        let provider = CachedToken::new(login, DEFAULT_REFRESH_MARGIN);
        let text = format!("{provider:?}");
        assert!(text.contains("databricks-cli"), "{text}");
        assert!(!text.contains("refresh-token-value"), "{text}");
    }

    #[test]
    fn random_texts_are_long_and_distinct() {
        let a = random_text(32).expect("random");
        let b = random_text(32).expect("random");
        assert_eq!(a.len(), 43);
        assert_ne!(a, b);
    }

    /// Whether this machine has an IPv6 loopback.
    fn has_ipv6() -> bool {
        std::net::TcpListener::bind((Ipv6Addr::LOCALHOST, 0)).is_ok()
    }

    /// `GET target` on `addr`: the status of the answer.
    async fn get(addr: SocketAddr, target: &str) -> u16 {
        let mut stream = TcpStream::connect(addr).await.expect("connect");
        stream
            .write_all(format!("GET {target} HTTP/1.1\r\nHost: localhost\r\n\r\n").as_bytes())
            .await
            .expect("request");
        let mut answer = String::new();
        stream.read_to_string(&mut answer).await.expect("answer");
        answer
            .get(9..12)
            .and_then(|s| s.parse().ok())
            .expect("a status line")
    }

    #[tokio::test]
    async fn the_redirect_listener_takes_both_loopback_addresses_on_one_port() {
        let listener = RedirectListener::bind(0).await.expect("listening");
        assert_ne!(listener.port, 0);
        assert_eq!(
            listener.v4.local_addr().expect("v4").ip(),
            Ipv4Addr::LOCALHOST
        );
        if has_ipv6() {
            let v6 = listener.v6.as_ref().expect("an IPv6 listener");
            assert_eq!(v6.local_addr().expect("v6").port(), listener.port);
        }
    }

    #[tokio::test]
    async fn a_forged_state_is_refused_and_the_real_redirect_still_completes_the_login() {
        let listener = RedirectListener::bind(0).await.expect("listening");
        let port = listener.port;
        let v4 = SocketAddr::from((Ipv4Addr::LOCALHOST, port));
        let genuine_on = if listener.v6.is_some() {
            SocketAddr::from((Ipv6Addr::LOCALHOST, port))
        } else {
            v4
        };
        let started = std::time::Instant::now();
        let browser = async {
            // A connection that never sends a request holds up nothing.
            let idle = TcpStream::connect(v4).await.expect("connect");
            assert_eq!(get(v4, "/?code=forged&state=other").await, 400);
            assert_eq!(get(v4, "/?error=access_denied&state=other").await, 400);
            assert_eq!(get(v4, "/favicon.ico").await, 404);
            assert_eq!(get(genuine_on, "/?code=c1&state=s1").await, 200);
            drop(idle);
        };
        let (code, ()) = tokio::join!(listener.wait_for_redirect("s1"), browser);
        assert_eq!(code.expect("the code"), "c1");
        assert!(
            started.elapsed() < REDIRECT_REQUEST_TIMEOUT,
            "the idle connection did not hold up the redirect"
        );
    }

    #[tokio::test]
    async fn an_error_redirect_with_the_right_state_ends_the_login() {
        let listener = RedirectListener::bind(0).await.expect("listening");
        let v4 = SocketAddr::from((Ipv4Addr::LOCALHOST, listener.port));
        let browser = get(v4, "/?error=access_denied&error_description=no&state=s1");
        let (outcome, status) = tokio::join!(listener.wait_for_redirect("s1"), browser);
        assert_eq!(status, 400);
        let err = outcome.expect_err("refused");
        assert_eq!(err.kind(), ErrorKind::Auth);
        assert!(err.to_string().contains("access_denied: no"), "{err}");
    }

    #[tokio::test]
    async fn an_ipv6_port_taken_by_another_program_fails_the_login() {
        if !has_ipv6() {
            return;
        }
        let other = std::net::TcpListener::bind((Ipv6Addr::LOCALHOST, 0)).expect("bind");
        let port = other.local_addr().expect("addr").port();
        let err = match RedirectListener::bind(port).await {
            Ok(_) => panic!("[::1]:{port} is taken"),
            Err(e) => e,
        };
        assert_eq!(err.kind(), ErrorKind::Auth);
        assert!(err.to_string().contains("another program"), "{err}");
    }
}
