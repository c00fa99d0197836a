//! Configuration: the client-wide [`ClientConfig`] with every default written where it is set, and
//! the per-session ([`SessionOptions`]) and per-statement ([`ExecuteOptions`]) overrides.

use std::collections::BTreeMap;
use std::path::PathBuf;
use std::sync::Arc;
use std::time::Duration;

use crate::error::{Error, Result};
use crate::http::{HttpConfig, RetryPolicy};
use crate::params::{Params, ToSql};
use crate::results::cloudfetch::CloudFetchConfig;
use crate::telemetry::TelemetryConfiguration;

/// Client-wide settings. Build one through [`DBSQLClient::builder`](crate::DBSQLClient::builder),
/// or start from [`ClientConfig::default`] and set the public fields (the struct is
/// non-exhaustive: new settings are added without breaking code written this way):
///
/// ```
/// let mut config = databricks_sql::ClientConfig::default();
/// config.host = "adb-123.4.azuredatabricks.net".into();
/// config.http_path = "/sql/1.0/warehouses/abc".into();
/// config.max_rows_per_fetch = 50_000;
/// ```
#[derive(Debug, Clone)]
#[non_exhaustive]
pub struct ClientConfig {
    /// Workspace host name, e.g. `adb-123.4.azuredatabricks.net` (no scheme, no path). Required.
    pub host: String,
    /// TCP port. Default 443.
    pub port: u16,
    /// HTTP path of the warehouse, e.g. `/sql/1.0/warehouses/abc`. Required.
    pub http_path: String,
    /// Speak plain `http://` instead of `https://`. Only accepted for loopback hosts (a mock
    /// warehouse on this machine). Default false.
    pub plain_http: bool,
    /// Transport settings: timeouts, connection pool, TLS roots, user agent entry.
    pub http: HttpConfig,
    /// How failed requests are retried (attempts, backoff, overall deadline).
    pub retry: RetryPolicy,
    /// Rows asked for per FetchResults call (and in direct results). Default 100,000.
    pub max_rows_per_fetch: i64,
    /// Ask the server to answer small results in the ExecuteStatement reply itself. Default true.
    pub direct_results: bool,
    /// Ask for Arrow results (otherwise column-based). Default true.
    pub arrow: bool,
    /// Ask for LZ4-compressed Arrow results. Default true.
    pub lz4: bool,
    /// Allow large results as CloudFetch links: files downloaded in parallel from cloud storage
    /// (see `cloud_fetch_config`). Default true. Needs Arrow results.
    pub cloud_fetch: bool,
    /// Settings of the CloudFetch download pipeline (concurrency, byte budget, retries...).
    pub cloud_fetch_config: CloudFetchConfig,
    /// First wait between GetOperationStatus polls; it doubles up to `max_poll_interval`. Default 2 ms.
    pub min_poll_interval: Duration,
    /// Cap of the wait between GetOperationStatus polls. Default 200 ms.
    pub max_poll_interval: Duration,
    /// Default query timeout for every statement (`None`: no timeout). Default `None`.
    pub query_timeout: Option<Duration>,
    /// Initial catalog of sessions opened without one in their [`SessionOptions`]. Default
    /// none (the warehouse's).
    pub catalog: Option<String>,
    /// Initial schema of sessions opened without one in their [`SessionOptions`]. Default
    /// none (the warehouse's).
    pub schema: Option<String>,
    /// Telemetry settings (see [`TelemetryConfiguration`] for each default): on, but in effect
    /// only when the workspace's feature flag for this driver is on.
    pub telemetry: TelemetryConfiguration,
    /// Local directories that staging statements (`PUT` / `GET` of Unity Catalog volume files)
    /// may read files from and write files to; see
    /// [`ClientBuilder::staging_allowed_local_paths`](crate::ClientBuilder::staging_allowed_local_paths).
    /// Default none: `PUT` and `GET` fail with [`ErrorKind::Config`](crate::ErrorKind::Config).
    pub staging_allowed_local_paths: Vec<PathBuf>,
}

impl Default for ClientConfig {
    fn default() -> Self {
        ClientConfig {
            host: String::new(),
            port: 443,
            http_path: String::new(),
            plain_http: false,
            http: HttpConfig::default(),
            retry: RetryPolicy::default(),
            max_rows_per_fetch: 100_000,
            direct_results: true,
            arrow: true,
            lz4: true,
            cloud_fetch: true,
            cloud_fetch_config: CloudFetchConfig::default(),
            min_poll_interval: Duration::from_millis(2),
            max_poll_interval: Duration::from_millis(200),
            query_timeout: None,
            catalog: None,
            schema: None,
            telemetry: TelemetryConfiguration::default(),
            staging_allowed_local_paths: Vec::new(),
        }
    }
}

/// Settings of one session, for [`DBSQLClient::open_session_with`](crate::DBSQLClient::open_session_with).
///
/// ```
/// # use databricks_sql::SessionOptions;
/// let options = SessionOptions::new()
///     .catalog("main")
///     .schema("default")
///     .configuration("ansi_mode", "true");
/// ```
#[derive(Debug, Clone, Default)]
#[must_use]
pub struct SessionOptions {
    pub(crate) catalog: Option<String>,
    pub(crate) schema: Option<String>,
    pub(crate) configuration: BTreeMap<String, String>,
    pub(crate) query_tags: Vec<(String, String)>,
}

impl SessionOptions {
    /// No initial namespace and no session configuration.
    pub fn new() -> Self {
        Self::default()
    }

    /// Initial catalog of the session.
    pub fn catalog(mut self, catalog: impl Into<String>) -> Self {
        self.catalog = Some(catalog.into());
        self
    }

    /// Initial schema (database) of the session.
    pub fn schema(mut self, schema: impl Into<String>) -> Self {
        self.schema = Some(schema.into());
        self
    }

    /// A session configuration entry (Spark conf), e.g. `("ansi_mode", "true")`.
    pub fn configuration(mut self, key: impl Into<String>, value: impl Into<String>) -> Self {
        self.configuration.insert(key.into(), value.into());
        self
    }

    /// A query tag for every statement of the session (e.g. `("team", "finance")`), for cost
    /// attribution in the warehouse's query history: sent as the `QUERY_TAGS` session
    /// configuration, `key:value` pairs separated by commas; `\` in keys, and `\`, `:` and `,`
    /// in values, are escaped by a backslash; an empty value sends the key alone. A key may not
    /// be empty or hold `:` or `,` (opening the session fails with a `Config` error). Tags
    /// accumulate, and win over a `QUERY_TAGS` entry set with
    /// [`configuration`](Self::configuration).
    pub fn query_tag(mut self, key: impl Into<String>, value: impl Into<String>) -> Self {
        self.query_tags.push((key.into(), value.into()));
        self
    }

    /// The session configuration as sent: the entries, plus `QUERY_TAGS` when tags were given.
    pub(crate) fn effective_configuration(&self) -> Result<BTreeMap<String, String>> {
        let mut configuration = self.configuration.clone();
        if let Some(tags) = query_tags_text(&self.query_tags)? {
            configuration.insert(SESSION_QUERY_TAGS.to_string(), tags);
        }
        Ok(configuration)
    }
}

/// The session configuration key of the session's query tags.
pub(crate) const SESSION_QUERY_TAGS: &str = "QUERY_TAGS";

/// The statement configuration (`confOverlay`) key of a statement's own query tags.
pub(crate) const STATEMENT_QUERY_TAGS: &str = "query_tags";

/// Query tags as sent: `key:value` pairs joined by `,`; `\` escaped in keys, `\`, `:` and `,`
/// escaped in values, by a backslash; a key alone for an empty value. `None` for no tags; an
/// error for a key that is empty or holds `:` or `,` (it could not be read back).
pub(crate) fn query_tags_text(tags: &[(String, String)]) -> Result<Option<String>> {
    fn escape(out: &mut String, text: &str, special: &[char]) {
        for c in text.chars() {
            if special.contains(&c) {
                out.push('\\');
            }
            out.push(c);
        }
    }
    if tags.is_empty() {
        return Ok(None);
    }
    let mut out = String::new();
    for (i, (key, value)) in tags.iter().enumerate() {
        if key.is_empty() || key.contains([':', ',']) {
            return Err(Error::config(format!(
                "query tag key {key:?} is empty or holds ':' or ','"
            )));
        }
        if i > 0 {
            out.push(',');
        }
        escape(&mut out, key, &['\\']);
        if !value.is_empty() {
            out.push(':');
            escape(&mut out, value, &['\\', ':', ',']);
        }
    }
    Ok(Some(out))
}

/// Settings of one statement, for
/// [`Session::execute_statement_with`](crate::Session::execute_statement_with); each one left
/// unset takes the client's value.
///
/// ```
/// # use databricks_sql::ExecuteOptions;
/// # use std::time::Duration;
/// let options = ExecuteOptions::new()
///     .query_timeout(Duration::from_secs(30))
///     .max_rows_per_fetch(10_000)
///     .lz4(false);
/// ```
#[derive(Debug, Clone, Default)]
#[must_use]
pub struct ExecuteOptions {
    pub(crate) query_timeout: Option<Duration>,
    pub(crate) max_rows_per_fetch: Option<i64>,
    pub(crate) arrow: Option<bool>,
    pub(crate) lz4: Option<bool>,
    pub(crate) cloud_fetch: Option<bool>,
    pub(crate) direct_results: Option<bool>,
    pub(crate) conf_overlay: BTreeMap<String, String>,
    pub(crate) params: Params,
    pub(crate) row_limit: Option<u64>,
    pub(crate) query_tags: Vec<(String, String)>,
    pub(crate) staging_allowed_local_paths: Option<Vec<PathBuf>>,
}

impl ExecuteOptions {
    /// Every setting taken from the client.
    pub fn new() -> Self {
        Self::default()
    }

    /// The server stops the statement after this long (whole seconds, rounded up), and the
    /// driver cancels it if the server does not; the error is of kind
    /// [`QueryTimeout`](crate::ErrorKind::QueryTimeout).
    pub fn query_timeout(mut self, timeout: Duration) -> Self {
        self.query_timeout = Some(timeout);
        self
    }

    /// Rows asked for per FetchResults call.
    pub fn max_rows_per_fetch(mut self, rows: i64) -> Self {
        self.max_rows_per_fetch = Some(rows);
        self
    }

    /// Ask for Arrow results (`false`: column-based).
    pub fn arrow(mut self, on: bool) -> Self {
        self.arrow = Some(on);
        self
    }

    /// Ask for LZ4-compressed Arrow results.
    pub fn lz4(mut self, on: bool) -> Self {
        self.lz4 = Some(on);
        self
    }

    /// Allow results as CloudFetch links.
    pub fn cloud_fetch(mut self, on: bool) -> Self {
        self.cloud_fetch = Some(on);
        self
    }

    /// Ask for the result in the ExecuteStatement reply itself when it is small.
    pub fn direct_results(mut self, on: bool) -> Self {
        self.direct_results = Some(on);
        self
    }

    /// A configuration entry for this statement only (`confOverlay`).
    pub fn conf(mut self, key: impl Into<String>, value: impl Into<String>) -> Self {
        self.conf_overlay.insert(key.into(), value.into());
        self
    }

    /// The statement's parameters (see [`Params`] and [`params!`](crate::params!)), replacing
    /// any set before. Needs a server speaking protocol SPARK V8 or later (Databricks): on
    /// another server, executing the statement fails before anything is sent.
    pub fn params(mut self, params: Params) -> Self {
        self.params = params;
        self
    }

    /// Adds the value of the named marker `:name`.
    pub fn param(mut self, name: impl Into<String>, value: impl ToSql) -> Self {
        self.params = std::mem::take(&mut self.params).named(name, value);
        self
    }

    /// Adds the value of the next positional marker `?`.
    pub fn bind(mut self, value: impl ToSql) -> Self {
        self.params = std::mem::take(&mut self.params).positional(value);
        self
    }

    /// The server returns at most this many rows (`resultRowLimit`; protocol SPARK V8 or later:
    /// on an older or a plain HiveServer2 server, which would ignore it, executing the
    /// statement fails before anything is sent). Default: no limit.
    pub fn row_limit(mut self, rows: u64) -> Self {
        self.row_limit = Some(rows);
        self
    }

    /// A query tag for this statement only, sent as `query_tags` in the statement's
    /// configuration (the session's tags stay in force through the session's configuration);
    /// written and checked as [`SessionOptions::query_tag`] says.
    pub fn query_tag(mut self, key: impl Into<String>, value: impl Into<String>) -> Self {
        self.query_tags.push((key.into(), value.into()));
        self
    }

    /// The local directories a staging statement (`PUT` / `GET`) may use, in place of the
    /// client's [`staging_allowed_local_paths`](crate::ClientBuilder::staging_allowed_local_paths)
    /// for this statement only.
    pub fn staging_allowed_local_paths(
        mut self,
        dirs: impl IntoIterator<Item = impl Into<PathBuf>>,
    ) -> Self {
        self.staging_allowed_local_paths = Some(dirs.into_iter().map(Into::into).collect());
        self
    }
}

/// The settings one statement runs with: the client's, overridden by its [`ExecuteOptions`].
#[derive(Debug, Clone)]
pub(crate) struct EffectiveExecuteOptions {
    pub query_timeout: Option<Duration>,
    pub max_rows_per_fetch: i64,
    pub arrow: bool,
    pub lz4: bool,
    pub cloud_fetch: bool,
    pub direct_results: bool,
    pub conf_overlay: BTreeMap<String, String>,
    pub params: Params,
    pub row_limit: Option<u64>,
    pub query_tags: Vec<(String, String)>,
    pub staging_allowed_local_paths: Arc<[PathBuf]>,
}

impl EffectiveExecuteOptions {
    pub(crate) fn resolve(config: &ClientConfig, options: ExecuteOptions) -> Self {
        EffectiveExecuteOptions {
            query_timeout: options.query_timeout.or(config.query_timeout),
            max_rows_per_fetch: options
                .max_rows_per_fetch
                .unwrap_or(config.max_rows_per_fetch)
                .max(1),
            arrow: options.arrow.unwrap_or(config.arrow),
            lz4: options.lz4.unwrap_or(config.lz4),
            cloud_fetch: options.cloud_fetch.unwrap_or(config.cloud_fetch),
            direct_results: options.direct_results.unwrap_or(config.direct_results),
            conf_overlay: options.conf_overlay,
            params: options.params,
            row_limit: options.row_limit,
            query_tags: options.query_tags,
            staging_allowed_local_paths: options
                .staging_allowed_local_paths
                .unwrap_or_else(|| config.staging_allowed_local_paths.clone())
                .into(),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn statement_options_override_client_defaults() {
        let config = ClientConfig::default();
        let eff = EffectiveExecuteOptions::resolve(
            &config,
            ExecuteOptions::new().lz4(false).max_rows_per_fetch(0),
        );
        assert!(!eff.lz4);
        assert!(eff.arrow);
        assert_eq!(
            eff.max_rows_per_fetch, 1,
            "row count is clamped to at least 1"
        );
        assert_eq!(eff.query_timeout, None);
    }
}
