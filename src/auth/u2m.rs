//! OAuth user-to-machine authentication ([`OAuthU2M`]): a person logs in with a browser
//! (authorization code with PKCE, a loopback redirect listener), then refresh tokens renew the
//! access token, kept in a token cache file so that the next run needs no browser.

use std::collections::BTreeMap;
use std::fmt;
use std::path::{Path, PathBuf};
use std::sync::{Arc, Mutex};
use std::time::{Duration, SystemTime, UNIX_EPOCH};

use async_trait::async_trait;
use base64::Engine;
use serde::{Deserialize, Serialize};
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::{TcpListener, TcpStream};

use super::oauth::{AuthorizationServer, TokenAnswer};
use super::token::{AccessToken, CachedToken, TokenSource, DEFAULT_REFRESH_MARGIN};
use crate::error::{Error, ErrorKind, Result};
use crate::http::{HttpTransport, RetryPolicy};

/// The client id of the Databricks CLI, which Databricks workspaces accept for browser logins
/// with a loopback redirect on port 8020.
pub const DEFAULT_U2M_CLIENT_ID: &str = "databricks-cli";

/// The loopback port of the login's redirect.
pub const DEFAULT_REDIRECT_PORT: u16 = 8020;

/// The longest request line and headers read from the browser's redirect.
const MAX_REDIRECT_REQUEST: usize = 16 * 1024;

/// What is done with the login URL.
type UrlHandler = Arc<dyn Fn(&str) + Send + Sync>;

/// OAuth user-to-machine settings: a person logs in to the workspace in a browser.
///
/// On first use the driver opens a loopback listener for the redirect, prints the login URL
/// (and opens it in the browser with [`open_browser`](Self::open_browser)), waits for the
/// redirect, and exchanges its code (with PKCE, S256) for an access token and a refresh token.
/// Refresh tokens renew the access token without a browser; both are kept in a token cache file
/// (mode 0600, one entry per workspace and client id), so that the next run logs in silently.
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
            BrowserLogin {
                cache_key: format!("{}|{}", base_url.trim_end_matches('/'), self.client_id),
                server: AuthorizationServer::new(base_url, transport, retry, None),
                settings: self,
                refresh_token: Mutex::new(None),
            },
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
        let known = self
            .refresh_token
            .lock()
            .unwrap_or_else(|e| e.into_inner())
            .clone();
        let (refresh_token, from_cache) = match known {
            Some(t) => (Some(t), false),
            None => match self.read_cache() {
                Some(entry) => {
                    if let Some(token) = entry.valid_access_token(SystemTime::now()) {
                        *self.refresh_token.lock().unwrap_or_else(|e| e.into_inner()) =
                            entry.refresh_token.clone();
                        tracing::debug!("OAuth: access token taken from the token cache");
                        return Ok(token);
                    }
                    (entry.refresh_token, true)
                }
                None => (None, false),
            },
        };
        if let Some(refresh_token) = refresh_token {
            match self.refresh(&refresh_token).await {
                Ok(token) => return Ok(token),
                Err(e) if e.kind() == ErrorKind::Auth => {
                    tracing::debug!(
                        error = %e,
                        from_cache,
                        "OAuth: the refresh token was refused; logging in again"
                    );
                }
                Err(e) => return Err(e),
            }
        }
        self.login().await
    }

    fn auth_type(&self) -> &'static str {
        "oauth-u2m"
    }
}

impl BrowserLogin {
    async fn refresh(&self, refresh_token: &str) -> Result<AccessToken> {
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

    /// Remember the tokens of `answer` (in memory and in the cache file); the access token.
    fn keep(&self, answer: TokenAnswer, previous_refresh: Option<&str>) -> AccessToken {
        let token = answer.access_token();
        let refresh = answer
            .refresh_token
            .clone()
            .or_else(|| previous_refresh.map(str::to_string));
        *self.refresh_token.lock().unwrap_or_else(|e| e.into_inner()) = refresh.clone();
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
        let listener = TcpListener::bind(("127.0.0.1", s.redirect_port))
            .await
            .map_err(|e| {
                Error::new(
                    ErrorKind::Auth,
                    format!(
                        "the OAuth login cannot listen for its redirect on 127.0.0.1:{}: {e}",
                        s.redirect_port
                    ),
                )
            })?;
        let port = listener
            .local_addr()
            .map_err(|e| Error::new(ErrorKind::Auth, format!("the login's listener: {e}")))?
            .port();
        let redirect_uri = format!("http://localhost:{port}");
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
        let code = tokio::time::timeout(s.login_timeout, wait_for_redirect(&listener, &state))
            .await
            .map_err(|_| {
                Error::new(
                    ErrorKind::Auth,
                    format!(
                        "no OAuth login came back within {} s (the browser's redirect to {redirect_uri})",
                        s.login_timeout.as_secs()
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
        let mut file = read_cache_file(path).unwrap_or_default();
        file.entries.insert(self.cache_key.clone(), entry);
        if let Err(e) = write_cache_file(path, &file) {
            tracing::debug!(error = %e, "OAuth: the token cache could not be written");
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

/// Start the system's browser on `url`; failures are logged only (the URL was shown).
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
    if let Err(e) = command
        .arg(url)
        .stdin(std::process::Stdio::null())
        .stdout(std::process::Stdio::null())
        .stderr(std::process::Stdio::null())
        .spawn()
    {
        tracing::debug!(error = %e, "OAuth: the browser could not be started");
    }
}

/// Accept connections on `listener` until one is the login's redirect: answer it and return
/// its code. Other requests (a browser's `/favicon.ico`) get a 404 and the wait goes on; a
/// redirect with another state, or with an OAuth error, ends the login with an error.
async fn wait_for_redirect(listener: &TcpListener, state: &str) -> Result<String> {
    loop {
        let (mut stream, _) = listener.accept().await.map_err(|e| {
            Error::new(ErrorKind::Auth, format!("the login's listener failed: {e}"))
        })?;
        let Some(target) = read_request_target(&mut stream).await else {
            respond(&mut stream, "400 Bad Request", "Not a login redirect.").await;
            continue;
        };
        let Ok(url) = url::Url::parse(&format!("http://localhost{target}")) else {
            respond(&mut stream, "400 Bad Request", "Not a login redirect.").await;
            continue;
        };
        let params: BTreeMap<String, String> = url.query_pairs().into_owned().collect();
        if !params.contains_key("code") && !params.contains_key("error") {
            respond(&mut stream, "404 Not Found", "Not a login redirect.").await;
            continue;
        }
        if params.get("state").map(String::as_str) != Some(state) {
            respond(
                &mut stream,
                "400 Bad Request",
                "This login was not started here.",
            )
            .await;
            return Err(Error::new(
                ErrorKind::Auth,
                "the OAuth redirect carried a state that is not this login's (a forged or stale redirect)",
            ));
        }
        if let Some(error) = params.get("error") {
            respond(&mut stream, "400 Bad Request", "The login failed.").await;
            let description = params
                .get("error_description")
                .map(|d| format!(": {d}"))
                .unwrap_or_default();
            return Err(Error::new(
                ErrorKind::Auth,
                format!("the OAuth login was refused: {error}{description}"),
            ));
        }
        respond(
            &mut stream,
            "200 OK",
            "Logged in to Databricks. You can close this window.",
        )
        .await;
        return params
            .get("code")
            .filter(|c| !c.is_empty())
            .cloned()
            .ok_or_else(|| {
                Error::new(ErrorKind::Auth, "the OAuth redirect carried an empty code")
            });
    }
}

/// The target of an HTTP `GET` request read from `stream` (`/path?query`), or `None` for
/// anything else, a request too large, or a connection too slow (5 s).
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
    tokio::time::timeout(Duration::from_secs(5), read)
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

async fn respond(stream: &mut TcpStream, status: &str, text: &str) {
    let body = format!("<!doctype html><title>Databricks</title><p>{text}</p>\n");
    let reply = format!(
        "HTTP/1.1 {status}\r\nContent-Type: text/html; charset=utf-8\r\nContent-Length: {}\r\nConnection: close\r\n\r\n{body}",
        body.len()
    );
    let _ = stream.write_all(reply.as_bytes()).await;
    let _ = stream.shutdown().await;
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
    /// The cached access token when it is valid for at least another minute at `now`.
    fn valid_access_token(&self, now: SystemTime) -> Option<AccessToken> {
        let token = self.access_token.as_ref()?;
        let expires = UNIX_EPOCH + Duration::from_secs(self.expires_at_unix?);
        let left = expires.duration_since(now).ok()?;
        (left > Duration::from_secs(60)).then(|| AccessToken::new(token.clone(), Some(left)))
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

/// Write `file` to `path` readable by the owner only: into a new temporary file beside it
/// (mode 0600 from its creation), then renamed over the old one.
fn write_cache_file(path: &Path, file: &CacheFile) -> std::io::Result<()> {
    use std::io::Write;
    if let Some(dir) = path.parent() {
        create_private_dir(dir)?;
    }
    let text = serde_json::to_vec_pretty(file).map_err(std::io::Error::other)?;
    let mut tmp_name = path.as_os_str().to_owned();
    tmp_name.push(format!(".{}.tmp", std::process::id()));
    let tmp = PathBuf::from(tmp_name);
    let mut options = std::fs::OpenOptions::new();
    options.write(true).create(true).truncate(true);
    #[cfg(unix)]
    {
        use std::os::unix::fs::OpenOptionsExt;
        options.mode(0o600);
    }
    let result = (|| {
        let mut out = options.open(&tmp)?;
        out.write_all(&text)?;
        out.sync_all()?;
        std::fs::rename(&tmp, path)
    })();
    if result.is_err() {
        let _ = std::fs::remove_file(&tmp);
    }
    result
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
    fn the_cache_file_is_private_and_round_trips() {
        let dir = temp_path("cache");
        let path = dir.join("sub").join("tokens.json");
        let mut file = CacheFile::default();
        file.entries.insert(
            "https://h|id".into(),
            CacheEntry {
                access_token: Some("a".into()),
                expires_at_unix: Some(5),
                refresh_token: Some("r".into()),
            },
        );
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
        let _ = std::fs::remove_dir_all(&dir);
    }

    #[test]
    fn a_cached_access_token_is_used_only_with_a_minute_left() {
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
        assert!(at(30).valid_access_token(now).is_none());
        assert!(at(600).valid_access_token(now).is_some());
        assert!(!format!("{:?}", at(600)).contains("tok"));
    }

    #[test]
    fn debug_shows_no_handler_or_tokens() {
        let u2m = OAuthU2M::new().on_login_url(|_| {});
        let text = format!("{u2m:?}");
        assert!(text.contains("databricks-cli"), "{text}");
    }

    #[test]
    fn random_texts_are_long_and_distinct() {
        let a = random_text(32).expect("random");
        let b = random_text(32).expect("random");
        assert_eq!(a.len(), 43);
        assert_ne!(a, b);
    }
}
