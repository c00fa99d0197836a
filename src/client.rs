//! [`DBSQLClient`] and its [`ClientBuilder`]: the entry point, which owns the transport, the
//! authentication and the client-wide configuration, and opens [`Session`]s.

use std::collections::HashMap;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, Mutex, Weak};
use std::time::Duration;

use tokio_util::task::TaskTracker;

use crate::auth::{
    AccessToken, AuthProvider, BasicAuth, OAuthM2M, OAuthU2M, TokenAuth, TokenProviderAuth,
};
use crate::config::{ClientConfig, SessionOptions};
use crate::results::decode_threads::DecodeThreads;
use crate::settings::{
    expand_home, AuthType, Settings, CONFIG_FILE_VAR, CONFIG_PROFILE_VAR, DEFAULT_CONFIG_FILE,
};

/// A host as [`ClientBuilder::host`] takes it.
#[derive(Debug, PartialEq)]
struct ParsedHost {
    /// The host name or IP address (an IPv6 address without brackets).
    host: String,
    /// The port, when one was given.
    port: Option<u16>,
    /// An `http://` URL.
    plain_http: bool,
}

fn parse_host(input: &str) -> Result<ParsedHost> {
    let text = input.trim();
    // Credentials must not end up in an error message.
    let shown = if text.contains('@') {
        "the host".to_string()
    } else {
        format!("the host {text:?}")
    };
    if text.is_empty() {
        return Err(Error::config("the host is empty"));
    }
    if let Ok(ip) = text.parse::<std::net::Ipv6Addr>() {
        return Ok(ParsedHost {
            host: ip.to_string(),
            port: None,
            plain_http: false,
        });
    }
    let url_text = if text.contains("://") {
        text.to_string()
    } else {
        format!("https://{text}")
    };
    let url = url::Url::parse(&url_text)
        .map_err(|e| Error::config(format!("{shown} is not a host name or URL: {e}")))?;
    let plain_http = match url.scheme() {
        "https" => false,
        "http" => true,
        other => {
            return Err(Error::config(format!(
                "{shown} has the scheme {other}://: only https:// (or http:// for a loopback host) is possible"
            )))
        }
    };
    if !url.username().is_empty() || url.password().is_some() {
        return Err(Error::config(
            "the host must not contain credentials: set a token or OAuth settings instead",
        ));
    }
    if url.path() != "/" && !url.path().is_empty() {
        return Err(Error::config(format!(
            "{shown} has a path ({}): give the warehouse's path with http_path",
            url.path()
        )));
    }
    // A workspace URL copied from a browser (`https://<host>/?o=<workspace id>#...`): only its
    // scheme, host and port matter.
    let host = match url.host() {
        Some(url::Host::Domain(d)) => d.to_string(),
        Some(url::Host::Ipv4(ip)) => ip.to_string(),
        Some(url::Host::Ipv6(ip)) => ip.to_string(),
        None => return Err(Error::config(format!("{shown} names no host"))),
    };
    Ok(ParsedHost {
        host,
        port: url.port(),
        plain_http,
    })
}

/// The user's home directory, where `~/.databrickscfg` lives.
fn home_dir() -> Option<std::path::PathBuf> {
    std::env::var_os("HOME")
        .or_else(|| std::env::var_os("USERPROFILE"))
        .filter(|h| !h.is_empty())
        .map(std::path::PathBuf::from)
}
use crate::error::{Error, Result};
use crate::http::{is_loopback_host, user_agent, HttpTransport, HyperTransport, RetryPolicy};
use crate::results::cloudfetch::{BufferPool, ChunkObserver};
use crate::session::{Session, SessionInner};
use crate::telemetry::{
    disabled_by_env, org_id_from_http_path, ClientTelemetry, ConnectionParameters,
    StatementCallback, StatementMetrics, TelemetryClientProvider, TelemetryConfiguration,
    TelemetryContext, TelemetryEndpoint,
};
use crate::thrift::rpc::ThriftClient;

/// A client of one Databricks SQL warehouse.
///
/// Cheap to clone (an `Arc` inside), `Send + Sync`: share one client across tasks.
///
/// ```no_run
/// # async fn run() -> databricks_sql::Result<()> {
/// use databricks_sql::DBSQLClient;
/// let client = DBSQLClient::builder()
///     .host("adb-123.4.azuredatabricks.net")
///     .http_path("/sql/1.0/warehouses/abc")
///     .token("dapi...")
///     .build()?;
/// let session = client.open_session().await?;
/// let mut op = session.execute_statement("SELECT * FROM range(10)").await?;
/// while let Some(batch) = op.next_batch().await? {
///     println!("{} rows", batch.num_rows());
/// }
/// op.close().await?;
/// session.close().await?;
/// client.close().await?;
/// # Ok(()) }
/// ```
#[derive(Clone)]
pub struct DBSQLClient {
    pub(crate) inner: Arc<ClientInner>,
}

/// What a client's sessions and operations share.
pub(crate) struct ClientInner {
    pub(crate) config: ClientConfig,
    pub(crate) rpc: Arc<ThriftClient>,
    /// The transport without credentials, for CloudFetch files (presigned URLs).
    pub(crate) transport: Arc<dyn HttpTransport>,
    /// The buffers CloudFetch files are downloaded and decompressed into, reused by every result
    /// of this client (and alive as long as any of its sessions and operations); at most two
    /// byte budgets' worth is kept idle (one budget's worth is what
    /// a result's working set needs beside its live files: measured, a cap of one budget made
    /// every result free and allocate again, with the allocator retention that pooling avoids).
    pub(crate) cloudfetch_buffers: Arc<BufferPool>,
    /// The threads CloudFetch files and large inline pages are decoded on, shared by every
    /// result of this client (`CloudFetchConfig::decode_threads` of them, started with the
    /// first large result).
    pub(crate) decode_threads: Arc<DecodeThreads>,
    /// What the client reports through: its host's telemetry and the application's hooks.
    pub(crate) telemetry: ClientTelemetry,
    closed: AtomicBool,
    /// Sessions opened by this client and not yet closed, by id: `close()` closes them.
    open_sessions: Mutex<HashMap<String, Weak<SessionInner>>>,
    /// The closes started in the background when a session or operation is dropped without
    /// being closed: `close()` waits for them, within [`DROPPED_CLOSE_WAIT`].
    pub(crate) background: TaskTracker,
    /// The server refused the Databricks handshake and accepted plain HiveServer2's: sessions
    /// are opened the HiveServer2 way from then on.
    plain_hive: AtomicBool,
}

/// How long [`DBSQLClient::close`] waits for the background closes of dropped sessions and
/// operations: 5 s.
const DROPPED_CLOSE_WAIT: Duration = Duration::from_secs(5);

impl ClientInner {
    pub(crate) fn register_session(&self, id: &str, session: Weak<SessionInner>) {
        if let Ok(mut map) = self.open_sessions.lock() {
            map.insert(id.to_string(), session);
        }
    }

    pub(crate) fn forget_session(&self, id: &str) {
        if let Ok(mut map) = self.open_sessions.lock() {
            map.remove(id);
        }
    }

    /// Whether the server is known to speak plain HiveServer2 (it refused the Databricks
    /// handshake).
    pub(crate) fn speaks_plain_hive(&self) -> bool {
        self.plain_hive.load(Ordering::Acquire)
    }

    pub(crate) fn set_speaks_plain_hive(&self) {
        self.plain_hive.store(true, Ordering::Release);
    }

    pub(crate) fn is_closed(&self) -> bool {
        self.closed.load(Ordering::Acquire)
    }
}

impl std::fmt::Debug for DBSQLClient {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        let c = &self.inner.config;
        f.debug_struct("DBSQLClient")
            .field("host", &c.host)
            .field("port", &c.port)
            .field("http_path", &c.http_path)
            .field("closed", &self.inner.is_closed())
            .finish_non_exhaustive()
    }
}

impl DBSQLClient {
    /// A builder with every setting at its default (see [`ClientConfig`]).
    pub fn builder() -> ClientBuilder {
        ClientBuilder::new()
    }

    /// The configuration this client was built with.
    pub fn config(&self) -> &ClientConfig {
        &self.inner.config
    }

    /// Open a session with default options.
    pub async fn open_session(&self) -> Result<Session> {
        self.open_session_with(SessionOptions::default()).await
    }

    /// Open a session with an initial catalog/schema and session configuration.
    pub async fn open_session_with(&self, options: SessionOptions) -> Result<Session> {
        if self.inner.is_closed() {
            return Err(Error::closed("the client was closed; build a new one"));
        }
        Session::open(self.inner.clone(), options).await
    }

    /// Close every session this client opened that is still open, wait (at most 5 s) for the
    /// closes started in the background for sessions and operations dropped without
    /// [`close`](Session::close), then close the client itself: its idle CloudFetch buffers are
    /// freed, its reference on the host's telemetry is released, and when it was the host's last client the pending telemetry is
    /// sent, waiting at most its `close_timeout` (2 s by default). Bounded in time: each
    /// CloseSession goes through the retry policy.
    pub async fn close(&self) -> Result<()> {
        if self.inner.closed.swap(true, Ordering::AcqRel) {
            return Ok(());
        }
        let sessions: Vec<(String, Weak<SessionInner>)> = match self.inner.open_sessions.lock() {
            Ok(mut map) => map.drain().collect(),
            Err(_) => Vec::new(),
        };
        let mut first_error = None;
        for (id, session) in sessions {
            // A session already dropped was closed by its own drop.
            let Some(session) = session.upgrade() else {
                continue;
            };
            if let Err(e) = session.close().await {
                tracing::debug!(session_id = %id, error = %e, "closing a session at client close failed");
                first_error.get_or_insert(e.with_session_id(id));
            }
        }
        let background = &self.inner.background;
        background.close();
        if tokio::time::timeout(DROPPED_CLOSE_WAIT, background.wait())
            .await
            .is_err()
        {
            tracing::debug!(
                pending = background.len(),
                "closes of dropped sessions and operations still running at client close"
            );
        }
        self.inner.cloudfetch_buffers.close();
        self.inner.telemetry.close().await;
        match first_error {
            Some(e) => Err(e),
            None => Ok(()),
        }
    }
}

/// How the client authenticates, as set on the builder; turned into a provider at build, once
/// the workspace's address is known.
enum AuthChoice {
    Provider(Arc<dyn AuthProvider>),
    M2M(OAuthM2M),
    U2M(OAuthU2M),
}

impl std::fmt::Debug for AuthChoice {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            AuthChoice::Provider(p) => p.fmt(f),
            AuthChoice::M2M(m) => m.fmt(f),
            AuthChoice::U2M(u) => u.fmt(f),
        }
    }
}

/// Builds a [`DBSQLClient`]. Setters are grouped by topic; each says its default.
#[must_use]
pub struct ClientBuilder {
    config: ClientConfig,
    auth: Option<AuthChoice>,
    transport: Option<Arc<dyn HttpTransport>>,
    telemetry_enabled: Option<bool>,
    telemetry_provider: Option<TelemetryClientProvider>,
    on_statement: Option<StatementCallback>,
    chunk_observer: Option<Arc<dyn ChunkObserver>>,
    error: Option<Error>,
}

impl std::fmt::Debug for ClientBuilder {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("ClientBuilder")
            .field("config", &self.config)
            .field("auth", &self.auth)
            .field("telemetry_enabled", &self.telemetry_enabled)
            .field("on_statement_metrics", &self.on_statement.is_some())
            .field("chunk_observer", &self.chunk_observer)
            .finish_non_exhaustive()
    }
}

impl Default for ClientBuilder {
    fn default() -> Self {
        Self::new()
    }
}

impl ClientBuilder {
    /// Every setting at its default.
    pub fn new() -> Self {
        ClientBuilder {
            config: ClientConfig::default(),
            auth: None,
            transport: None,
            telemetry_enabled: None,
            telemetry_provider: None,
            on_statement: None,
            chunk_observer: None,
            error: None,
        }
    }

    /// A builder from the Databricks unified configuration: `DATABRICKS_*` environment
    /// variables (`DATABRICKS_HOST`, `DATABRICKS_HTTP_PATH`, `DATABRICKS_PORT`,
    /// `DATABRICKS_TOKEN`, `DATABRICKS_CLIENT_ID`, `DATABRICKS_CLIENT_SECRET`,
    /// `DATABRICKS_AUTH_TYPE`), then for what they leave unset the profile
    /// `DATABRICKS_CONFIG_PROFILE` (default `DEFAULT`) of `DATABRICKS_CONFIG_FILE` (default
    /// `~/.databrickscfg`). Settings made afterwards on the builder win. The README's
    /// configuration section has the whole table; a setting that cannot be read is reported by
    /// [`build`](Self::build).
    ///
    /// Credentials: `auth_type` `pat` uses the token, `oauth-m2m` the client id and secret
    /// ([`OAuthM2M`]), `oauth-u2m` a browser login ([`OAuthU2M`]); without an auth type, a token
    /// means `pat` and a client id with a secret means `oauth-m2m` (both at once, from whatever
    /// levels, is a configuration error: set the auth type).
    pub fn from_env() -> Self {
        Self::new().resolved(Settings::default())
    }

    /// A builder from the profile `profile` of `DATABRICKS_CONFIG_FILE` (default
    /// `~/.databrickscfg`), under the `DATABRICKS_*` environment variables as in
    /// [`from_env`](Self::from_env) (which reads the profile `DATABRICKS_CONFIG_PROFILE`, else
    /// `DEFAULT`). A profile that does not exist is reported by [`build`](Self::build).
    pub fn from_profile(profile: &str) -> Self {
        let home = home_dir();
        let file = match std::env::var(CONFIG_FILE_VAR) {
            Ok(f) if !f.trim().is_empty() => Some(expand_home(f.trim(), home.as_deref())),
            _ => home.as_ref().map(|h| h.join(DEFAULT_CONFIG_FILE)),
        };
        let Some(file) = file else {
            return Self::new().failed(Error::config(format!(
                "the profile [{profile}] was asked for, but there is no home directory to find \
                 {DEFAULT_CONFIG_FILE} in (set {CONFIG_FILE_VAR})"
            )));
        };
        match Settings::from_profile(&file, profile) {
            Ok(from_profile) => {
                let env = |name: &str| {
                    (name != CONFIG_PROFILE_VAR && name != CONFIG_FILE_VAR)
                        .then(|| std::env::var(name).ok())
                        .flatten()
                };
                // The environment over the profile; no other profile is read.
                let merged = Settings::from_environment(env, None)
                    .map(|from_env| from_env.or(from_profile))
                    .and_then(|merged| merged.validate().map(|()| merged));
                match merged {
                    Ok(settings) => Self::new().apply(settings),
                    Err(e) => Self::new().failed(e),
                }
            }
            Err(e) => Self::new().failed(e),
        }
    }

    /// A builder from a connection URL, for tools that take one string:
    /// `databricks://[token:<PAT>@]<host>[:<port>]/<http path>[?<key>=<value>&...]` with the
    /// keys `catalog`, `schema`, `auth_type`, `client_id`, `client_secret`, `token` and
    /// `oauth_redirect_port` (values percent-encoded). What the URL leaves unset comes from the
    /// environment and profile as in [`from_env`](Self::from_env). Errors never quote the URL.
    ///
    /// ```
    /// let builder = databricks_sql::ClientBuilder::from_url(
    ///     "databricks://adb-123.4.azuredatabricks.net/sql/1.0/warehouses/abc?catalog=main",
    /// );
    /// ```
    pub fn from_url(url: &str) -> Self {
        match Settings::from_url(url) {
            Ok(settings) => Self::new().resolved(settings),
            Err(e) => Self::new().failed(e),
        }
    }

    /// `explicit` over the process's environment and profile, applied to this builder.
    fn resolved(self, explicit: Settings) -> Self {
        let home = home_dir();
        match Settings::resolve(explicit, |name| std::env::var(name).ok(), home.as_deref()) {
            Ok(settings) => self.apply(settings),
            Err(e) => self.failed(e),
        }
    }

    fn failed(mut self, error: Error) -> Self {
        self.error.get_or_insert(error);
        self
    }

    /// Set what `settings` holds.
    fn apply(mut self, settings: Settings) -> Self {
        if let Some(host) = settings.host {
            self = self.host(host);
        }
        if let Some(port) = settings.port {
            self = self.port(port);
        }
        if let Some(path) = settings.http_path {
            self = self.http_path(path);
        }
        if let Some(catalog) = settings.catalog {
            self = self.catalog(catalog);
        }
        if let Some(schema) = settings.schema {
            self = self.schema(schema);
        }
        let auth_type = match (
            settings.auth_type,
            &settings.token,
            &settings.client_id,
            &settings.client_secret,
        ) {
            (Some(t), ..) => Some(t),
            (None, Some(_), Some(_), Some(_)) => {
                return self.failed(Error::config(
                    "more than one authentication method is configured (a token and OAuth \
                     client credentials): choose one with auth_type (DATABRICKS_AUTH_TYPE, \
                     or auth_type in the profile or URL)",
                ))
            }
            (None, Some(_), ..) => Some(AuthType::Pat),
            (None, None, Some(_), Some(_)) => Some(AuthType::OAuthM2M),
            _ => None,
        };
        match auth_type {
            Some(AuthType::Pat) => {
                if let Some(token) = settings.token {
                    self = self.token(token);
                }
            }
            Some(AuthType::OAuthM2M) => {
                if let (Some(id), Some(secret)) = (settings.client_id, settings.client_secret) {
                    self = self.oauth_m2m(OAuthM2M::new(id, secret));
                }
            }
            Some(AuthType::OAuthU2M) => {
                let mut u2m = OAuthU2M::new();
                if let Some(id) = settings.client_id {
                    u2m = u2m.client_id(id);
                }
                if let Some(port) = settings.oauth_redirect_port {
                    u2m = u2m.redirect_port(port);
                }
                self = self.oauth_u2m(u2m);
            }
            None => {}
        }
        self
    }

    /// Start from a whole configuration (authentication is set separately).
    pub fn config(mut self, config: ClientConfig) -> Self {
        self.config = config;
        self
    }

    // --- where ---

    /// Workspace host: `adb-123.4.azuredatabricks.net`, `host:8443`, an IP address (IPv6 bare
    /// or in brackets), or a URL such as `https://host:8443/` (scheme in any case; its port is
    /// taken, an `http://` URL means [`plain_http`](Self::plain_http)). Required. Anything else
    /// (another scheme, a path, credentials) is reported by [`build`](Self::build) as a
    /// configuration error naming what is wrong.
    pub fn host(mut self, host: impl Into<String>) -> Self {
        match parse_host(&host.into()) {
            Ok(parsed) => {
                self.config.host = parsed.host;
                if parsed.plain_http {
                    self.config.plain_http = true;
                    self.config.port = 80;
                }
                if let Some(port) = parsed.port {
                    self.config.port = port;
                }
                self
            }
            Err(e) => self.failed(e),
        }
    }

    /// TCP port. Default 443.
    pub fn port(mut self, port: u16) -> Self {
        self.config.port = port;
        self
    }

    /// HTTP path of the warehouse, e.g. `/sql/1.0/warehouses/abc`. Required.
    pub fn http_path(mut self, path: impl Into<String>) -> Self {
        self.config.http_path = path.into();
        self
    }

    /// The initial catalog of sessions opened with [`DBSQLClient::open_session`] (a
    /// [`SessionOptions`] catalog wins). Default: the warehouse's.
    pub fn catalog(mut self, catalog: impl Into<String>) -> Self {
        self.config.catalog = Some(catalog.into());
        self
    }

    /// The initial schema of sessions opened with [`DBSQLClient::open_session`] (a
    /// [`SessionOptions`] schema wins). Default: the warehouse's.
    pub fn schema(mut self, schema: impl Into<String>) -> Self {
        self.config.schema = Some(schema.into());
        self
    }

    /// Use plain `http://`: accepted only when the host is a loopback address (a mock warehouse
    /// on this machine). Default false (HTTPS with certificate verification).
    pub fn plain_http(mut self, on: bool) -> Self {
        self.config.plain_http = on;
        self
    }

    // --- authentication (the last one set wins) ---

    /// Authenticate with a personal access token (`Authorization: Bearer <token>`).
    pub fn token(mut self, token: impl AsRef<str>) -> Self {
        match TokenAuth::new(token.as_ref()) {
            Ok(auth) => self.auth = Some(AuthChoice::Provider(Arc::new(auth))),
            Err(e) => self.error = Some(e),
        }
        self
    }

    /// Authenticate with a user name and password (`Authorization: Basic`), as plain
    /// HiveServer2 servers (Apache Spark Thrift Server, Apache Hive, Kyuubi) expect over HTTP.
    /// Databricks workspaces do not accept it: use a token or OAuth there.
    pub fn basic_auth(mut self, user: impl AsRef<str>, password: impl AsRef<str>) -> Self {
        match BasicAuth::new(user.as_ref(), password.as_ref()) {
            Ok(auth) => self.auth = Some(AuthChoice::Provider(Arc::new(auth))),
            Err(e) => self.error = Some(e),
        }
        self
    }

    /// Authenticate as a service principal with OAuth client credentials (machine to machine):
    /// see [`OAuthM2M`] for its settings and defaults.
    pub fn oauth_m2m(mut self, settings: OAuthM2M) -> Self {
        self.auth = Some(AuthChoice::M2M(settings));
        self
    }

    /// Authenticate a person with a browser login (OAuth user to machine): see [`OAuthU2M`]
    /// for its settings and defaults. The first statement that needs a token starts the login
    /// when no cached token can be used.
    pub fn oauth_u2m(mut self, settings: OAuthU2M) -> Self {
        self.auth = Some(AuthChoice::U2M(settings));
        self
    }

    /// Authenticate with access tokens from the application's own async function (token
    /// federation, a secrets manager...): each token is cached and renewed before it expires
    /// (see [`TokenProviderAuth`]), and a 401 makes `fetch` be called again once.
    pub fn token_provider<F, Fut>(self, fetch: F) -> Self
    where
        F: Fn() -> Fut + Send + Sync + 'static,
        Fut: std::future::Future<Output = Result<AccessToken>> + Send + 'static,
    {
        self.auth_provider(Arc::new(TokenProviderAuth::new(fetch)))
    }

    /// Authenticate with a custom provider of the `Authorization` header.
    pub fn auth_provider(mut self, provider: Arc<dyn AuthProvider>) -> Self {
        self.auth = Some(AuthChoice::Provider(provider));
        self
    }

    // --- transport ---

    /// Timeout for establishing a connection (TCP, a proxy tunnel, TLS). Default 30 s.
    pub fn connect_timeout(mut self, timeout: Duration) -> Self {
        self.config.http.connect_timeout = timeout;
        self
    }

    /// Timeout of one HTTP request attempt. Default 900 s.
    pub fn request_timeout(mut self, timeout: Duration) -> Self {
        self.config.http.request_timeout = timeout;
        self
    }

    /// Text added to the `User-Agent` header in parentheses, e.g. your application's name.
    pub fn user_agent_entry(mut self, entry: impl Into<String>) -> Self {
        self.config.http.user_agent_entry = Some(entry.into());
        self
    }

    /// Trust the certificate authorities of `pem` (one or more `CERTIFICATE` blocks) in addition
    /// to the default roots, e.g. the private CA of a TLS-inspecting corporate gateway; may be
    /// called again to add more. A file that cannot be read or holds no certificate makes
    /// [`build`](Self::build) fail with a [`Config`](crate::ErrorKind::Config) error naming it.
    /// Default: none (Mozilla's roots only, see [`TlsRoots`](crate::http::TlsRoots)).
    ///
    /// ```no_run
    /// use databricks_sql::http::Pem;
    /// let builder = databricks_sql::DBSQLClient::builder()
    ///     .add_root_certificates(Pem::from_file("/etc/ssl/certs/corporate-ca.pem"));
    /// ```
    pub fn add_root_certificates(mut self, pem: crate::http::Pem) -> Self {
        self.config.http.extra_root_certificates.push(pem);
        self
    }

    /// Present this client certificate chain and private key (PEM) to servers that ask for
    /// one (mutual TLS). Default: none.
    pub fn client_certificate(mut self, chain: crate::http::Pem, key: crate::http::Pem) -> Self {
        self.config.http.client_certificate = Some(crate::http::ClientCertificate::new(chain, key));
        self
    }

    /// Accept any server certificate (expired, self-signed, for another host). **For
    /// development only**: anyone on the network path can then read and change the traffic,
    /// tokens included. A warning is logged once when the client is built. Default false.
    pub fn danger_accept_invalid_certificates(mut self, accept: bool) -> Self {
        self.config.http.danger_accept_invalid_certificates = accept;
        self
    }

    /// The HTTP proxy of every request of the client (Thrift, CloudFetch downloads, telemetry,
    /// feature flags, OAuth): a [`Proxy`](crate::http::Proxy), [`ProxyConfig::None`](crate::http::ProxyConfig::None)
    /// or [`ProxyConfig::FromEnvironment`](crate::http::ProxyConfig::FromEnvironment). Default:
    /// from the environment (`HTTPS_PROXY`, `HTTP_PROXY`, `NO_PROXY`, read at
    /// [`build`](Self::build); never for loopback hosts).
    ///
    /// ```no_run
    /// # fn demo() -> databricks_sql::Result<()> {
    /// use databricks_sql::http::Proxy;
    /// let builder = databricks_sql::DBSQLClient::builder().proxy(
    ///     Proxy::new("http://proxy.corp.example:3128")?.basic_auth("alice", "s3cret"),
    /// );
    /// # Ok(()) }
    /// ```
    pub fn proxy(mut self, proxy: impl Into<crate::http::ProxyConfig>) -> Self {
        self.config.http.proxy = proxy.into();
        self
    }

    /// Retry policy of requests to the warehouse. Default: 5 attempts, backoff 1 s..60 s, 900 s overall.
    pub fn retry_policy(mut self, policy: RetryPolicy) -> Self {
        self.config.retry = policy;
        self
    }

    /// Replace the HTTP transport (for tests, or a custom stack). Default: hyper over rustls.
    /// The transport settings of this builder (timeouts, proxy, certificates) configure only
    /// the default transport: a transport given here brings its own, and telemetry then reports
    /// no proxy in use.
    pub fn transport(mut self, transport: Arc<dyn HttpTransport>) -> Self {
        self.transport = Some(transport);
        self
    }

    // --- results ---

    /// Rows asked for per fetch. Default 100,000.
    pub fn max_rows_per_fetch(mut self, rows: i64) -> Self {
        self.config.max_rows_per_fetch = rows;
        self
    }

    /// Small results in the ExecuteStatement reply itself. Default true.
    pub fn direct_results(mut self, on: bool) -> Self {
        self.config.direct_results = on;
        self
    }

    /// Arrow results (otherwise column-based). Default true.
    pub fn arrow(mut self, on: bool) -> Self {
        self.config.arrow = on;
        self
    }

    /// LZ4-compressed Arrow results. Default true.
    pub fn lz4(mut self, on: bool) -> Self {
        self.config.lz4 = on;
        self
    }

    /// Large results as CloudFetch links, downloaded in parallel. Default true.
    pub fn cloud_fetch(mut self, on: bool) -> Self {
        self.config.cloud_fetch = on;
        self
    }

    /// Settings of the CloudFetch download pipeline: concurrency (6), byte budget (48 MiB),
    /// retries and link refreshes. See [`CloudFetchConfig`](crate::CloudFetchConfig).
    pub fn cloud_fetch_config(mut self, config: crate::CloudFetchConfig) -> Self {
        self.config.cloud_fetch_config = config;
        self
    }

    /// Default query timeout of every statement. Default none.
    pub fn query_timeout(mut self, timeout: Duration) -> Self {
        self.config.query_timeout = Some(timeout);
        self
    }

    /// Bounds of the wait between status polls: the first wait and the cap. Default 2 ms and 200 ms.
    pub fn poll_interval(mut self, first: Duration, cap: Duration) -> Self {
        self.config.min_poll_interval = first;
        self.config.max_poll_interval = cap.max(first);
        self
    }

    /// Local directories that staging statements may read files from (`PUT`) and write files
    /// to (`GET`) when moving files to and from Unity Catalog volumes. A local path is allowed
    /// when its canonical form (`..` and symbolic links resolved; for `GET`, that of its
    /// directory) lies under the canonical form of one of these directories. Replaces any
    /// earlier list. Default none: staging `PUT` and `GET` fail with
    /// [`ErrorKind::Config`](crate::ErrorKind::Config) before any transfer (`REMOVE` needs no
    /// local path).
    ///
    /// ```
    /// let builder = databricks_sql::DBSQLClient::builder()
    ///     .staging_allowed_local_paths(["/data/uploads", "/data/downloads"]);
    /// ```
    pub fn staging_allowed_local_paths(
        mut self,
        dirs: impl IntoIterator<Item = impl Into<std::path::PathBuf>>,
    ) -> Self {
        self.config.staging_allowed_local_paths = dirs.into_iter().map(Into::into).collect();
        self
    }

    // --- telemetry and observation ---

    /// Telemetry settings (see [`TelemetryConfiguration`], which documents each default). By
    /// default telemetry is on but in effect only when the workspace's feature flag for this
    /// driver is on. The environment variable `DATABRICKS_TELEMETRY_DISABLED` (`1`, `true`,
    /// `yes`, `on`) turns it off whatever is set here.
    pub fn telemetry(mut self, config: TelemetryConfiguration) -> Self {
        self.config.telemetry = config;
        self
    }

    /// Turn this client's telemetry on or off, overriding the `enabled` of
    /// [`telemetry`](Self::telemetry) whatever the order of the calls. Default: that setting
    /// (`true`). Off: no feature-flag request, no background task, nothing sent.
    pub fn telemetry_enabled(mut self, enabled: bool) -> Self {
        self.telemetry_enabled = Some(enabled);
        self
    }

    /// Share telemetry through `provider` instead of the process-wide
    /// [`TelemetryClientProvider::global()`]: clients of one host that share a provider share
    /// one telemetry task and one feature-flag lookup. Default: the global provider.
    pub fn telemetry_provider(mut self, provider: TelemetryClientProvider) -> Self {
        self.telemetry_provider = Some(provider);
        self
    }

    /// Call `callback` with the [`StatementMetrics`] of every statement and metadata call that the
    /// server accepted, once it ends (closed, cancelled, dropped, or its session closed): the figures telemetry exports,
    /// locally, whether Databricks telemetry is on or not. It runs on the task (or in the drop)
    /// that ends the statement: keep it short and non-blocking. A panic in it is caught.
    /// Default: none.
    ///
    /// ```no_run
    /// # fn demo() -> databricks_sql::Result<()> {
    /// let client = databricks_sql::DBSQLClient::builder()
    ///     .host("adb-123.4.azuredatabricks.net")
    ///     .http_path("/sql/1.0/warehouses/abc")
    ///     .token("dapi...")
    ///     .on_statement_metrics(|m| {
    ///         eprintln!("{} {} took {:?}", m.operation_type.as_str(), m.statement_id, m.latency)
    ///     })
    ///     .build()?;
    /// # Ok(()) }
    /// ```
    pub fn on_statement_metrics(
        mut self,
        callback: impl Fn(&StatementMetrics) + Send + Sync + 'static,
    ) -> Self {
        self.on_statement = Some(Arc::new(callback));
        self
    }

    /// Receive the [`ChunkStats`](crate::ChunkStats) of every CloudFetch file of this client's
    /// results, once the file is decoded. Called on a decode thread: keep it short. Default: none.
    pub fn chunk_observer(mut self, observer: Arc<dyn ChunkObserver>) -> Self {
        self.chunk_observer = Some(observer);
        self
    }

    /// Check the settings and build the client. No network traffic happens here.
    pub fn build(self) -> Result<DBSQLClient> {
        if let Some(e) = self.error {
            return Err(e);
        }
        let mut config = self.config;
        if config.host.is_empty() {
            return Err(Error::config(
                "no host was given (e.g. adb-123.4.azuredatabricks.net)",
            ));
        }
        if config
            .host
            .chars()
            .any(|c| c.is_whitespace() || c.is_control() || c == '@' || c == '?' || c == '#')
        {
            return Err(Error::config(format!(
                "the host {:?} is not a valid host name",
                config.host
            )));
        }
        let path = config.http_path.trim();
        if path.is_empty() {
            return Err(Error::config(
                "no HTTP path was given (e.g. /sql/1.0/warehouses/<id>)",
            ));
        }
        config.http_path = if path.starts_with('/') {
            path.to_string()
        } else {
            format!("/{path}")
        };
        if config.plain_http && !is_loopback_host(&config.host) {
            return Err(Error::config(format!(
                "plain http:// is only allowed for loopback hosts, not {}",
                config.host
            )));
        }
        let auth = self.auth.ok_or_else(|| {
            Error::config(
                "no credentials were given: set a token, OAuth settings or an auth provider",
            )
        })?;
        let scheme = if config.plain_http { "http" } else { "https" };
        let host_for_url = if config.host.contains(':') && !config.host.starts_with('[') {
            format!("[{}]", config.host)
        } else {
            config.host.clone()
        };
        let endpoint: http::Uri = format!(
            "{scheme}://{host_for_url}:{}{}",
            config.port, config.http_path
        )
        .parse()
        .map_err(|e| {
            Error::config(format!(
                "the host and HTTP path do not form a valid URL: {e}"
            ))
        })?;
        // Whether a proxy applies to the workspace host, as telemetry reports it (unknown, so
        // false, for a transport given to the builder).
        let (transport, use_proxy): (Arc<dyn HttpTransport>, bool) = match self.transport {
            Some(t) => (t, false),
            None => {
                let t = HyperTransport::new(&config.http)?;
                let use_proxy = t.uses_proxy(&endpoint);
                (Arc::new(t), use_proxy)
            }
        };
        // The workspace's own base URL: its OAuth and telemetry endpoints live below it.
        let base_url = match (config.plain_http, config.port) {
            (true, port) => format!("http://{host_for_url}:{port}"),
            (false, 443) => format!("https://{host_for_url}"),
            (false, port) => format!("https://{host_for_url}:{port}"),
        };
        let auth: Arc<dyn AuthProvider> = match auth {
            AuthChoice::Provider(provider) => provider,
            AuthChoice::M2M(settings) => {
                Arc::new(settings.provider(&base_url, transport.clone(), config.retry.clone())?)
            }
            AuthChoice::U2M(settings) => {
                Arc::new(settings.provider(&base_url, transport.clone(), config.retry.clone())?)
            }
        };
        let telemetry = {
            let mut settings = config.telemetry.clone();
            settings.enabled =
                self.telemetry_enabled.unwrap_or(settings.enabled) && !disabled_by_env();
            let mut context = TelemetryContext::new(
                TelemetryEndpoint::with_base_url(&base_url),
                transport.clone(),
            );
            context.org_id = org_id_from_http_path(&config.http_path);
            context.auth = Some(auth.clone());
            context.config = settings;
            context.user_agent = user_agent(config.http.user_agent_entry.as_deref());
            context.client_app_name = config
                .http
                .user_agent_entry
                .clone()
                .filter(|e| !e.trim().is_empty());
            context.connection = Some(Arc::new(ConnectionParameters {
                // Without its query (`?o=<org id>`): no query string goes to telemetry.
                http_path: config
                    .http_path
                    .split('?')
                    .next()
                    .unwrap_or_default()
                    .to_string(),
                host_url: base_url,
                port: config.port,
                auth_type: auth.auth_type().to_string(),
                use_proxy,
                enable_arrow: config.arrow,
                enable_direct_results: config.direct_results,
                socket_timeout_ms: u64::try_from(config.http.request_timeout.as_millis()).ok(),
            }));
            ClientTelemetry::new(
                context,
                self.telemetry_provider
                    .unwrap_or_else(TelemetryClientProvider::global),
                self.on_statement,
                self.chunk_observer,
            )
        };
        let rpc = Arc::new(ThriftClient::new(
            transport.clone(),
            endpoint,
            auth,
            config.retry.clone(),
        ));
        let idle_buffers =
            usize::try_from(config.cloud_fetch_config.max_buffered_bytes).unwrap_or(usize::MAX);
        Ok(DBSQLClient {
            inner: Arc::new(ClientInner {
                cloudfetch_buffers: BufferPool::new(idle_buffers.saturating_mul(2)),
                decode_threads: Arc::new(DecodeThreads::new(
                    config.cloud_fetch_config.decode_threads,
                )),
                config,
                rpc,
                transport,
                telemetry,
                closed: AtomicBool::new(false),
                open_sessions: Mutex::new(HashMap::new()),
                background: TaskTracker::new(),
                plain_hive: AtomicBool::new(false),
            }),
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn auth_of(settings: Settings) -> String {
        format!("{:?}", ClientBuilder::new().apply(settings).auth)
    }

    #[test]
    fn resolved_settings_choose_the_credentials() {
        let s =
            |token: Option<&str>, id: Option<&str>, secret: Option<&str>, t: Option<AuthType>| {
                Settings {
                    token: token.map(str::to_string),
                    client_id: id.map(str::to_string),
                    client_secret: secret.map(str::to_string),
                    auth_type: t,
                    ..Settings::default()
                }
            };
        let cases = [
            (s(Some("dapi-1"), None, None, None), "TokenAuth"),
            (s(None, Some("id"), Some("sec-1"), None), "OAuthM2M"),
            // A token and client credentials without an auth type: ambiguous, an error.
            (s(Some("dapi-1"), Some("id"), Some("sec-1"), None), "None"),
            (
                s(
                    Some("dapi-1"),
                    Some("id"),
                    Some("sec-1"),
                    Some(AuthType::Pat),
                ),
                "TokenAuth",
            ),
            (
                s(
                    Some("dapi-1"),
                    Some("id"),
                    Some("sec-1"),
                    Some(AuthType::OAuthM2M),
                ),
                "OAuthM2M",
            ),
            (
                s(None, Some("id"), None, Some(AuthType::OAuthU2M)),
                "OAuthU2M",
            ),
            (s(None, Some("id"), None, None), "None"),
        ];
        for (settings, expected) in cases {
            let shown = auth_of(settings.clone());
            assert!(shown.contains(expected), "{settings:?}: {shown}");
            assert!(
                !shown.contains("dapi-1") && !shown.contains("sec-1"),
                "{shown}"
            );
        }
        let u2m = auth_of(Settings {
            auth_type: Some(AuthType::OAuthU2M),
            client_id: Some("my-app".into()),
            oauth_redirect_port: Some(9000),
            ..Settings::default()
        });
        assert!(u2m.contains("my-app") && u2m.contains("9000"), "{u2m}");
    }

    #[test]
    fn settings_made_on_the_builder_win_over_resolved_ones() {
        let b = ClientBuilder::new()
            .apply(Settings {
                host: Some("https://from-env.example:8443".into()),
                http_path: Some("/sql/1.0/warehouses/env".into()),
                catalog: Some("env_catalog".into()),
                token: Some("dapi-env".into()),
                ..Settings::default()
            })
            .http_path("/sql/1.0/warehouses/mine")
            .oauth_m2m(OAuthM2M::new("id", "secret"));
        assert_eq!(b.config.host, "from-env.example");
        assert_eq!(b.config.port, 8443);
        assert_eq!(b.config.http_path, "/sql/1.0/warehouses/mine");
        assert_eq!(b.config.catalog.as_deref(), Some("env_catalog"));
        assert!(format!("{:?}", b.auth).contains("OAuthM2M"));
    }

    #[test]
    fn hosts_are_parsed_as_urls() {
        let ok = |input: &str, host: &str, port: Option<u16>, plain: bool| {
            assert_eq!(
                parse_host(input).expect(input),
                ParsedHost {
                    host: host.to_string(),
                    port,
                    plain_http: plain
                },
                "{input}"
            );
        };
        ok(
            "adb-1.2.azuredatabricks.net",
            "adb-1.2.azuredatabricks.net",
            None,
            false,
        );
        ok("  ADB-1.Example.NET  ", "adb-1.example.net", None, false);
        ok("HTTPS://HOST:8443/", "host", Some(8443), false);
        ok("https://host:443", "host", None, false);
        ok("host:9000", "host", Some(9000), false);
        ok("http://127.0.0.1:5000", "127.0.0.1", Some(5000), true);
        ok("::1", "::1", None, false);
        ok("[::1]:8080", "::1", Some(8080), false);
        ok("https://[2001:db8::1]/", "2001:db8::1", None, false);
        ok("https://adb-1.net/?o=123#job/1", "adb-1.net", None, false);
        for (bad, names) in [
            ("", "empty"),
            ("ftp://host", "ftp://"),
            ("https://host/sql/1.0/warehouses/x", "/sql/1.0/warehouses/x"),
            ("host:99999", "not a host name or URL"),
            ("https://", "not a host name or URL"),
        ] {
            let e = parse_host(bad).expect_err(bad);
            assert_eq!(e.kind(), crate::ErrorKind::Config);
            assert!(e.to_string().contains(names), "{bad}: {e}");
        }
        let e = parse_host("https://token:dapi-secret@host").expect_err("credentials");
        assert!(!e.to_string().contains("dapi-secret"), "{e}");
        let built = ClientBuilder::new()
            .host("gopher://h")
            .http_path("/p")
            .token("t")
            .build()
            .expect_err("bad scheme");
        assert!(built.to_string().contains("gopher://"), "{built}");
    }

    #[test]
    fn host_accepts_urls_and_ports() {
        let b = ClientBuilder::new().host("https://adb-1.2.azuredatabricks.net:8443/");
        assert_eq!(b.config.host, "adb-1.2.azuredatabricks.net");
        assert_eq!(b.config.port, 8443);
        assert!(!b.config.plain_http);
        let b = ClientBuilder::new().host("http://127.0.0.1:5000");
        assert!(b.config.plain_http);
        assert_eq!(b.config.port, 5000);
    }

    #[test]
    fn build_rejects_missing_or_unsafe_settings() {
        let no_host = DBSQLClient::builder().http_path("/p").token("t").build();
        assert_eq!(no_host.unwrap_err().kind(), crate::ErrorKind::Config);
        let no_token = DBSQLClient::builder().host("h").http_path("/p").build();
        assert!(no_token.unwrap_err().to_string().contains("credentials"));
        let plain_remote = DBSQLClient::builder()
            .host("example.invalid")
            .http_path("/p")
            .token("t")
            .plain_http(true)
            .build();
        assert!(plain_remote.unwrap_err().to_string().contains("loopback"));
        let empty_token = DBSQLClient::builder()
            .host("h")
            .http_path("/p")
            .token("")
            .build();
        assert_eq!(empty_token.unwrap_err().kind(), crate::ErrorKind::Config);
    }

    #[test]
    fn debug_never_shows_the_token() {
        let b = DBSQLClient::builder()
            .host("h")
            .http_path("p")
            .token("dapiSECRET");
        assert!(!format!("{b:?}").contains("SECRET"));
    }
}
