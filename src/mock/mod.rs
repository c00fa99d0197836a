//! A mock Databricks SQL warehouse (feature `mock`): a real HTTP/1.1 server on `127.0.0.1` that
//! speaks the same Thrift TCLIService protocol as a warehouse, for tests, examples and benches.
//!
//! ```no_run
//! # async fn demo() -> databricks_sql::Result<()> {
//! use databricks_sql::mock::MockWarehouse;
//!
//! let mock = MockWarehouse::start().await?;
//! println!("Thrift endpoint: {} (token {})", mock.url(), mock.token());
//! // ... point a client at mock.host(), mock.port(), mock.http_path(), mock.token() ...
//! assert_eq!(mock.open_sessions(), 0);
//! mock.shutdown().await;
//! # Ok(()) }
//! ```
//!
//! # Endpoints
//! - `POST {http_path}` (default `/sql/1.0/warehouses/mock`): Thrift binary protocol. Requires
//!   `Authorization: Bearer <token>` with the static token or an OAuth access token the mock
//!   issued (else HTTP 401). Implements OpenSession, CloseSession, ExecuteStatement,
//!   GetOperationStatus, GetResultSetMetadata, FetchResults, CancelOperation, CloseOperation,
//!   and the metadata RPCs GetInfo (server/DBMS name `Spark SQL`, version),
//!   GetCatalogs, GetSchemas, GetTables, GetTableTypes, GetColumns, GetPrimaryKeys,
//!   GetCrossReference, GetFunctions and GetTypeInfo (column-based results with JDBC's `DatabaseMetaData` columns, from a small
//!   fixed catalog: `hive_metastore.default`, `main.default`, `main.information_schema`,
//!   `samples.nyctaxi`, `samples.tpch` with the TPC-H columns, primary and foreign keys, a
//!   few built-in functions, and JDBC name patterns); any other method (GetDelegationToken...)
//!   gets a Thrift application exception (unknown method).
//! - `GET /api/2.0/connector-service/feature-flags/{driver}/{version}` (auth required): the feature
//!   flags, by default [`TELEMETRY_FLAG_NAME`] = `"false"` with a TTL of 900 s.
//! - `POST /telemetry-ext` (auth required) and `POST /telemetry-unauth` (no auth): telemetry
//!   uploads, recorded ([`MockWarehouse::telemetry_logs`]).
//! - `GET /cloudfetch/<statement id>/<file>?exp=..&nonce=..&sig=..`: CloudFetch files, reached
//!   through the links the mock issues (see [CloudFetch](#cloudfetch)). No bearer token: the
//!   link's own header instead.
//! - `GET /oidc/.well-known/oauth-authorization-server`, `GET /oidc/v1/authorize` and
//!   `POST /oidc/v1/token` (no bearer token): the workspace's OAuth server (see [OAuth](#oauth)).
//! - `PUT`, `GET` or `DELETE /staging/<ticket>?exp=..&sig=..`: the presigned URLs of staging
//!   statements (see [Staging](#staging)). No bearer token: [`STAGING_HEADER`] instead.
//! - Every other path answers 404.
//!
//! # Built-in statements
//! Matched on tokens, so case and whitespace do not matter (`select * from RANGE( 10 );`).
//!
//! | statement | result |
//! |---|---|
//! | `SELECT <n>` (e.g. `SELECT 1`) | one `INT` column named `<n>` (`BIGINT` when it does not fit), one row with value n |
//! | `SELECT * FROM range(N)` | one column `id BIGINT`, rows `0..N-1` (also `range(START, END)`) |
//! | `SELECT * FROM mock.rows(N)` | `id BIGINT` (0..N-1), `name STRING` (`name-<id>`, NULL when id % 7 == 3), `amount DOUBLE` (id * 0.25), `ts TIMESTAMP` (epoch + id seconds, UTC; an Arrow `Timestamp(µs, "UTC")`), `flag BOOLEAN` (id % 2 == 0) |
//! | `SELECT * FROM mock.all_types` | one column of each type, named `c_<type>`: `BOOLEAN`, `TINYINT`, `SMALLINT`, `INT`, `BIGINT`, `FLOAT`, `DOUBLE`, `STRING`, `BINARY`, `DECIMAL(38,4)`, `DATE`, `TIMESTAMP` (UTC), `ARRAY<INT>`, `MAP<STRING,INT>`, `STRUCT<x:INT,y:STRING>`, `VOID`; four rows (extremes, empty values, nested NULLs), the last one NULL in every column |
//! | `SELECT sleep(MS)` | PENDING, then RUNNING for MS milliseconds, then FINISHED with one row: column `sleep(MS)` `BIGINT` = MS |
//! | `SELECT current_catalog()` / `current_schema()` | one `STRING`: the session's namespace (default `main` / `default`) |
//! | `SELECT ... FROM <any other table>` | ERROR state, SQLSTATE `42P01`, an error message naming the table |
//! | `INSERT ... VALUES (..), (..)` | no result set, rows affected = the number of tuples |
//! | `INSERT ... SELECT`, `UPDATE`, `DELETE`, `MERGE` | no result set, rows affected = 1 |
//! | `USE [CATALOG\|SCHEMA] name` | changes the session's namespace, no result set |
//! | `SET`, `CREATE`, `DROP`, `ALTER`, ... | no result set |
//! | anything else | ERROR state, SQLSTATE `42601` (syntax error) |
//!
//! SQL registered with [`MockWarehouse::register_result`] or [`MockWarehouse::register_error`]
//! wins over the built-ins; it is matched ignoring case, whitespace runs and trailing `;`.
//!
//! Rows are generated on demand for each page (by offset and count), so `mock.rows(10000000)`
//! costs nothing until it is fetched.
//!
//! # Protocol behaviour
//! - OpenSession negotiates `min(client_protocol_i64 (or client_protocol), server version)`; the
//!   server version defaults to SPARK_CLI_SERVICE_PROTOCOL_V8. Below SPARK V5 results are
//!   column-based only, below V6 never LZ4; below SPARK V1 the server behaves like a plain
//!   HiveServer2: it reads only field 1 of OpenSession and refuses a value it does not know (a
//!   SPARK version, -7, none) with a Thrift application exception (`Required field
//!   'client_protocol' is unset!`), reads the initial schema from the `use:database`
//!   configuration key, and sends no direct results, no extension fields, `hasMoreRows` always
//!   false. [`MockWarehouseBuilder::vanilla_hive`] adds HiveServer2's HTTP authentication.
//! - ExecuteStatement honours `runAsync` (without it, the reply waits until the statement is
//!   done), `getDirectResults {maxRows, maxBytes}` (a finished statement answers with its status,
//!   metadata and first page, and with `closeOperation` when that page holds every row: the
//!   operation is then already closed), `canReadArrowResult` (`ARROW_BASED_SET`, else
//!   `COLUMN_BASED_SET`), `canDecompressLZ4Result` (LZ4-framed Arrow batches),
//!   `useArrowNativeTypes` (timestamps and decimals as Arrow types, else strings) and
//!   `queryTimeout` (a statement that would run longer ends TIMEDOUT at the timeout).
//! - FetchResults pages by `maxRows` (and `maxBytes` when sent), from the operation's cursor or
//!   from `startRowOffset`, with `hasMoreRows`.
//! - An unknown (or closed) session or operation handle answers `INVALID_HANDLE`.
//!   [`MockWarehouse::expire_session`] and [`MockWarehouse::expire_all_sessions`] close sessions
//!   on the server side, as a warehouse does when a session idles out.
//!
//! # CloudFetch
//! When the client sent `canDownloadResult` (Arrow granted, session at SPARK V3 or later) and the
//! result has more rows than [`cloudfetch_threshold_rows`](MockWarehouseBuilder::cloudfetch_threshold_rows)
//! (default 100,000), the result goes out as links:
//! - Metadata: `resultFormat` `URL_BASED_SET`, `arrowSchema`, `lz4Compressed` as granted.
//! - The result is split into files of
//!   [`cloudfetch_rows_per_file`](MockWarehouseBuilder::cloudfetch_rows_per_file) rows (default
//!   100,000; the last file holds the rest). File `k` holds rows `k * rows_per_file ..`: one
//!   whole Arrow IPC stream (schema, batches of at most `arrow_batch_rows` rows, end marker) in
//!   the client's wire schema, LZ4-framed when `lz4Compressed`.
//! - Direct results and FetchResults answer a page of at most
//!   [`cloudfetch_links_per_page`](MockWarehouseBuilder::cloudfetch_links_per_page) links (default
//!   10) in `resultLinks`, with `hasMoreRows` until the last page; `maxRows` and `maxBytes` do not
//!   limit a page of links. A page starts at `startRowOffset` when sent (it must be the first row
//!   of a file, else the reply is an error status), else at the operation's cursor; asking again
//!   for the same offset gives the same files with fresh signatures and expiry (a link refresh).
//!   Direct results never close a CloudFetch operation (its links are refreshed through it).
//! - Each `TSparkArrowResultLink`: `fileLink`
//!   `<base_url>/cloudfetch/<statement>/<k>?exp=<ms>&nonce=<random>&sig=<keyed hash>`
//!   (`<base_url>` is [`MockWarehouse::base_url`], `http://127.0.0.1:<port>` by default),
//!   `expiryTime` (ms since the epoch: issue time plus
//!   [`cloudfetch_link_lifetime`](MockWarehouseBuilder::cloudfetch_link_lifetime), default 15
//!   minutes), `startRowOffset`, `rowCount`, `bytesNum` (the exact size served; files are
//!   generated when their link is first issued), and `httpHeaders` =
//!   `{`[`CLOUDFETCH_HEADER`]`: <a value random per mock>}`.
//! - A file GET is checked in this order: an `Authorization` header is refused with 400 and
//!   counted ([`MockWarehouse::cloudfetch_gets_with_authorization`]: the workspace token must
//!   never reach a presigned URL); then injected faults apply; a missing or wrong
//!   [`CLOUDFETCH_HEADER`] is 400; a bad signature is 403; an expired link is 403 (`Request has
//!   expired`); a closed operation or unknown file is 404; else `200` with the file.
//! - Each file is generated once, on the blocking pool, and served from memory until its
//!   operation is closed (or its session), which evicts it. With
//!   [`cloudfetch_keep_files`](MockWarehouseBuilder::cloudfetch_keep_files) the files of a SQL
//!   text stay cached for later executions (for benchmarks).
//! - Counters: [`MockWarehouse::cloudfetch_get_count`] / [`cloudfetch_get_counts`](MockWarehouse::cloudfetch_get_counts)
//!   (GETs per file index, over every statement), `call_count(`[`endpoint::CLOUDFETCH_FILE`]`)`
//!   (all file GETs), `call_count("FetchResults")` (link pages and refreshes).
//!
//! # Staging
//! Unity Catalog volume files live in memory ([`MockWarehouse::volume_file`],
//! [`MockWarehouse::put_volume_file`]). `PUT '<local>' INTO '/Volumes/...' [OVERWRITE]`,
//! `GET '/Volumes/...' TO '<local>'` and `REMOVE '/Volumes/...'` are answered as staging
//! operations: result metadata with `isStagingOperation = true` and one row of `operation`,
//! `presignedUrl` (`<base_url>/staging/<ticket>?exp=<ms>&sig=<keyed hash>`, valid 15 minutes,
//! for its own method only), `localFile` and `headers` (`{"x-mock-staging-key": "<value>"}`).
//! - A `PUT` without `OVERWRITE` onto an existing file fails with SQLSTATE `42K04`; a `GET` of
//!   a missing file fails with SQLSTATE `42K03`; the `DELETE` of a `REMOVE` whose file is gone
//!   answers 404.
//! - A request to a staging URL with an `Authorization` header is refused with 400 and counted
//!   ([`MockWarehouse::staging_requests_with_authorization`]) before any fault; then faults
//!   targeted at [`endpoint::STAGING`] apply (e.g. [`Fault::truncated_body`] cuts a download
//!   short); a missing or wrong [`STAGING_HEADER`] is 400, a bad or expired signature or another
//!   method 403.
//!
//! # OAuth
//! The mock is also the workspace's OAuth server, for machine-to-machine (client credentials)
//! and user-to-machine (authorization code with PKCE) authentication:
//! - `GET /oidc/.well-known/oauth-authorization-server`: the metadata, `issuer`
//!   `<base>/oidc`, `authorization_endpoint` `<base>/oidc/v1/authorize`, `token_endpoint`
//!   `<base>/oidc/v1/token` (`<base>` is [`MockWarehouse::base_url`]), the grant types
//!   `client_credentials`, `authorization_code` and `refresh_token`, PKCE method `S256`.
//! - `GET /oidc/v1/authorize?response_type=code&client_id=..&redirect_uri=..&scope=..&state=..&code_challenge=..&code_challenge_method=S256`:
//!   approved at once (no login page), answered `302 Found` to
//!   `<redirect_uri>?code=<code>&state=<state>`. The client must be a public client
//!   ([`oauth_u2m_client`](MockWarehouseBuilder::oauth_u2m_client), by default
//!   [`DEFAULT_OAUTH_U2M_CLIENT_ID`]), the redirect URI `http://localhost:<port>...` or
//!   `http://127.0.0.1:<port>...`, the challenge a base64url SHA-256 (43 characters), and
//!   `state` present; else `400` with `{"error":"invalid_request",..}` and no redirect. A code
//!   is valid for 60 s and consumed by the first token request presenting it.
//! - `POST /oidc/v1/token` (form-encoded body):
//!   - `grant_type=client_credentials` authenticated by HTTP Basic or by `client_id` and
//!     `client_secret` in the body ([`oauth_client`](MockWarehouseBuilder::oauth_client), by
//!     default [`DEFAULT_OAUTH_CLIENT_ID`] / [`DEFAULT_OAUTH_CLIENT_SECRET`]): an access token
//!     with `scope` as asked (default `all-apis`), no refresh token. A wrong client or secret is
//!     `401` `invalid_client`.
//!   - `grant_type=authorization_code` with `code`, `redirect_uri` and `client_id` as at the
//!     authorization request and a `code_verifier` whose S256 transform is the challenge: an
//!     access token and a refresh token. Anything else is `400` `invalid_grant`.
//!   - `grant_type=refresh_token` with `refresh_token` and `client_id`: a new access token and
//!     a new refresh token (the old one stays valid until
//!     [`MockWarehouse::revoke_oauth_refresh_tokens`]), else `400` `invalid_grant`.
//!   - another grant type is `400` `unsupported_grant_type`; a malformed request `400`
//!     `invalid_request`.
//! - Access tokens are 256 random bits, valid for
//!   [`oauth_token_lifetime`](MockWarehouseBuilder::oauth_token_lifetime) (default one hour;
//!   `expires_in` is it in whole seconds, at least 1) or until
//!   [`MockWarehouse::revoke_oauth_access_tokens`]. Every route that wants a bearer token takes
//!   one as it takes the static token; an expired, revoked or unknown one gets the usual 401.
//! - Counters: [`MockWarehouse::oauth_requests`] (requests the endpoints answered, by grant
//!   type, and refused token requests), and `call_count(`[`endpoint::OAUTH_TOKEN`]`)` (every
//!   token request, those answered by an injected fault included). Tokens, codes, verifiers
//!   and secrets are never logged nor recorded.
//!
//! # Fault injection
//! [`MockWarehouse::inject`] queues a [`Fault`] for the next requests matching its target: an HTTP
//! status (optionally with `Retry-After`), a delay, a dropped connection, a `200` with a garbage
//! body, or a body cut short. CloudFetch files are targeted one by one with
//! [`Fault::on_chunk`]`(k)` (file `k` of any statement) or all with [`Fault::on_any_chunk`]:
//!
//! | fault | effect on file `k` |
//! |---|---|
//! | `Fault::http_status(500).on_chunk(k).times(n)` | the next `n` GETs answer 500 |
//! | `Fault::delay(d).on_chunk(k)` | the next GET is answered after `d` (a slow response) |
//! | `Fault::drop_connection().on_chunk(k)` | the next GET's connection is closed without a reply |
//! | `Fault::truncated_body().on_chunk(k)` | the next GET declares the whole length, sends half, closes |
//! | `Fault::corrupt_file().on_chunk(k)` | the next GET serves a damaged file (invalid LZ4 frame, or invalid Arrow IPC when uncompressed) |
//! | `Fault::wrong_row_count().on_chunk(k)` | the next GET serves a valid file with one row fewer than its link says |
//! | `Fault::expired_link().on_chunk(k)` | the next link issued for file `k` has already expired (its GET would answer 403) |
//! | `Fault::http_status(403).on_chunk(k)` | the next GET is refused, as a storage service refuses a link (403 on first use) |
//!
//! # HTTPS
//! With [`tls(true)`](MockWarehouseBuilder::tls) the mock serves HTTPS (TLS 1.2 and 1.3) instead
//! of plain HTTP: at start it makes a certificate authority and a server certificate signed by
//! it for `localhost`, `127.0.0.1` and its [`host_name`](MockWarehouseBuilder::host_name)
//! (rcgen; nothing is stored). [`MockWarehouse::ca_certificate_pem`] gives the authority's
//! certificate, which a client must trust ([`MockWarehouse::client_builder`] does);
//! [`base_url`](MockWarehouse::base_url), [`url`](MockWarehouse::url), CloudFetch links and the
//! OAuth metadata are `https://`. With
//! [`require_client_certificate`](MockWarehouseBuilder::require_client_certificate) the
//! handshake fails for a client that presents no certificate signed by the given authority.
//!
//! # Test proxy
//! [`TestProxy`] is an HTTP proxy on loopback for tests of the driver's proxy support: it
//! tunnels `CONNECT` requests, forwards plain-http requests in absolute form, records each
//! target and can require basic credentials. A mock started with a
//! [`host_name`](MockWarehouseBuilder::host_name) that resolves nowhere is reachable only
//! through a proxy that maps that name to it ([`TestProxyBuilder::resolve`]): proxies from the
//! environment skip loopback hosts, so that is how tests reach the mock through one.

mod catalog;
mod cloudfetch;
mod fault;
mod oauth;
mod proxy;
mod rowset;
mod server;
mod service;
mod source;
mod sql;
mod staging;
mod state;
mod telemetry;
mod tls;

use std::collections::BTreeMap;
use std::fmt;
use std::net::SocketAddr;
use std::sync::Arc;
use std::time::Duration;

use arrow_array::RecordBatch;
use arrow_schema::SchemaRef;

pub use fault::{Fault, FaultKind, FaultTarget};
pub use oauth::{
    OAuthRequestCounts, DEFAULT_OAUTH_CLIENT_ID, DEFAULT_OAUTH_CLIENT_SECRET,
    DEFAULT_OAUTH_TOKEN_LIFETIME, DEFAULT_OAUTH_U2M_CLIENT_ID,
};
pub use proxy::{ProxiedRequest, TestProxy, TestProxyBuilder};
pub use telemetry::{
    FeatureFlagRequest, TelemetryRequest, DEFAULT_FEATURE_FLAG_TTL_SECONDS, TELEMETRY_FLAG_NAME,
};
#[cfg(test)]
pub(crate) use tls::pem_encode;

use crate::error::Result;
use cloudfetch::{CloudFetchSettings, LinkSigner};
use oauth::{OAuthSettings, OAuthState};
use server::ServerHandle;
use source::BatchesSource;
use state::{Config, Knobs, Registered, Shared, SqlError, State};
use telemetry::{TelemetryState, Upload};

/// The token the mock accepts unless [`MockWarehouseBuilder::token`] sets another.
pub const DEFAULT_TOKEN: &str = "dapi-mock-token";

/// The user name a [`vanilla_hive`](MockWarehouseBuilder::vanilla_hive) mock accepts unless
/// [`MockWarehouseBuilder::basic_credentials`] sets another.
pub const DEFAULT_BASIC_USER: &str = "mock-user";

/// The password a [`vanilla_hive`](MockWarehouseBuilder::vanilla_hive) mock accepts unless
/// [`MockWarehouseBuilder::basic_credentials`] sets another.
pub const DEFAULT_BASIC_PASSWORD: &str = "mock-password";

/// The host name of the mock unless [`MockWarehouseBuilder::host_name`] sets another.
pub const DEFAULT_HOST: &str = "127.0.0.1";

/// The HTTP path the mock serves Thrift on unless [`MockWarehouseBuilder::http_path`] sets another.
pub const DEFAULT_HTTP_PATH: &str = "/sql/1.0/warehouses/mock";

/// `TProtocolVersion` values for [`MockWarehouseBuilder::server_protocol_version`].
pub mod protocol_version {
    /// HIVE_CLI_SERVICE_PROTOCOL_V10 (vanilla HiveServer2).
    pub const HIVE_V10: i32 = 9;
    /// SPARK_CLI_SERVICE_PROTOCOL_V1: direct results.
    pub const SPARK_V1: i32 = 0xA501;
    /// SPARK_CLI_SERVICE_PROTOCOL_V3: CloudFetch.
    pub const SPARK_V3: i32 = 0xA503;
    /// SPARK_CLI_SERVICE_PROTOCOL_V4: multiple catalogs.
    pub const SPARK_V4: i32 = 0xA504;
    /// SPARK_CLI_SERVICE_PROTOCOL_V5: Arrow results.
    pub const SPARK_V5: i32 = 0xA505;
    /// SPARK_CLI_SERVICE_PROTOCOL_V6: LZ4 and async metadata.
    pub const SPARK_V6: i32 = 0xA506;
    /// SPARK_CLI_SERVICE_PROTOCOL_V7: result persistence.
    pub const SPARK_V7: i32 = 0xA507;
    /// SPARK_CLI_SERVICE_PROTOCOL_V8: parameters. The mock's default.
    pub const SPARK_V8: i32 = 0xA508;
    /// SPARK_CLI_SERVICE_PROTOCOL_V9.
    pub const SPARK_V9: i32 = 0xA509;
}

/// Names under which non-Thrift requests are counted ([`MockWarehouse::call_count`]), recorded
/// and targeted by faults ([`Fault::on`]). Thrift calls use their method name
/// (`"ExecuteStatement"`).
pub mod endpoint {
    /// `GET /api/2.0/connector-service/feature-flags/{driver}/{version}`.
    pub const FEATURE_FLAGS: &str = "feature-flags";
    /// `POST /telemetry-ext`.
    pub const TELEMETRY_EXT: &str = "telemetry-ext";
    /// `POST /telemetry-unauth`.
    pub const TELEMETRY_UNAUTH: &str = "telemetry-unauth";
    /// A POST to the HTTP path whose body is not a Thrift call.
    pub const MALFORMED_THRIFT: &str = "malformed-thrift";
    /// `GET /cloudfetch/<statement>/<file>`: a CloudFetch file.
    pub const CLOUDFETCH_FILE: &str = "cloudfetch-file";
    /// `GET /oidc/.well-known/oauth-authorization-server`: OAuth discovery.
    pub const OAUTH_DISCOVERY: &str = "oauth-discovery";
    /// `GET /oidc/v1/authorize`: the OAuth authorization endpoint.
    pub const OAUTH_AUTHORIZE: &str = "oauth-authorize";
    /// `POST /oidc/v1/token`: the OAuth token endpoint.
    pub const OAUTH_TOKEN: &str = "oauth-token";
    /// `PUT`, `GET` or `DELETE /staging/<ticket>`: a presigned URL of a staging statement.
    pub const STAGING: &str = "staging";
    /// Any other path or method (answered 404 or 405).
    pub const UNKNOWN: &str = "unknown";
}

/// The header every CloudFetch link lists in its `httpHeaders` (with a value random per mock),
/// and that a GET of the file must carry: without it (or with another value) the GET answers
/// 400, as a storage service does when a presigned request lacks its required headers.
pub const CLOUDFETCH_HEADER: &str = "x-mock-cloudfetch-key";

/// The header every staging operation lists in its `headers` (with a value random per mock),
/// and that a request to its presigned URL must carry (else 400).
pub const STAGING_HEADER: &str = "x-mock-staging-key";

/// Default of [`MockWarehouseBuilder::cloudfetch_threshold_rows`].
pub const DEFAULT_CLOUDFETCH_THRESHOLD_ROWS: u64 = 100_000;
/// Default of [`MockWarehouseBuilder::cloudfetch_rows_per_file`].
pub const DEFAULT_CLOUDFETCH_ROWS_PER_FILE: u64 = 100_000;
/// Default of [`MockWarehouseBuilder::cloudfetch_links_per_page`].
pub const DEFAULT_CLOUDFETCH_LINKS_PER_PAGE: usize = 10;
/// Default of [`MockWarehouseBuilder::cloudfetch_link_lifetime`]: 15 minutes, the usual lifetime
/// of a presigned result link.
pub const DEFAULT_CLOUDFETCH_LINK_LIFETIME: Duration = Duration::from_secs(15 * 60);

/// One HTTP request the mock received (any endpoint).
#[derive(Debug, Clone, PartialEq, Eq)]
#[non_exhaustive]
pub struct RecordedRequest {
    /// `GET`, `POST`...
    pub method: String,
    /// The URL path (no query).
    pub path: String,
    /// The Thrift method, or an [`endpoint`] name.
    pub name: String,
    /// The request headers (names lower case), without `Authorization`.
    pub headers: Vec<(String, String)>,
}

/// A session as the mock sees it.
#[derive(Debug, Clone, PartialEq, Eq)]
#[non_exhaustive]
pub struct SessionInfo {
    /// The session id (UUID text).
    pub session_id: String,
    /// The negotiated protocol version.
    pub protocol_version: i32,
    /// The session configuration the client sent.
    pub configuration: BTreeMap<String, String>,
    /// The current catalog (initial namespace or `USE`), if any was set.
    pub catalog: Option<String>,
    /// The current schema (initial namespace or `USE`), if any was set.
    pub schema: Option<String>,
    /// Whether the session was closed (by CloseSession).
    pub closed: bool,
}

/// One ExecuteStatement the mock received, with what the client asked for.
#[derive(Debug, Clone, PartialEq, Eq)]
#[non_exhaustive]
pub struct StatementInfo {
    /// The session id (UUID text).
    pub session_id: String,
    /// The statement (operation) id (UUID text).
    pub statement_id: String,
    /// The SQL text.
    pub sql: String,
    /// `runAsync`.
    pub run_async: bool,
    /// `queryTimeout` in seconds, when sent.
    pub query_timeout_secs: Option<i64>,
    /// `getDirectResults.maxRows`, when direct results were asked for.
    pub direct_results_max_rows: Option<i64>,
    /// `getDirectResults.maxBytes`, when sent.
    pub direct_results_max_bytes: Option<i64>,
    /// `canReadArrowResult`.
    pub can_read_arrow: bool,
    /// `canDecompressLZ4Result`.
    pub can_decompress_lz4: bool,
    /// `canDownloadResult` (CloudFetch).
    pub can_download_result: bool,
    /// `useArrowNativeTypes.timestampAsArrow`.
    pub arrow_native_timestamps: bool,
    /// `confOverlay`.
    pub conf_overlay: BTreeMap<String, String>,
    /// `parameters`, in the order sent.
    pub parameters: Vec<ParameterInfo>,
    /// `resultRowLimit`, when sent.
    pub result_row_limit: Option<i64>,
}

/// One query parameter of an ExecuteStatement, as the mock received it.
#[derive(Debug, Clone, PartialEq, Eq)]
#[non_exhaustive]
pub struct ParameterInfo {
    /// The marker's name (named parameters).
    pub name: Option<String>,
    /// The 1-based position (positional parameters).
    pub ordinal: Option<i32>,
    /// The SQL type name sent.
    pub sql_type: Option<String>,
    /// The value's text; `None` for NULL.
    pub value: Option<String>,
}

/// Builds a [`MockWarehouse`] with non-default settings; see each setter for its default.
#[derive(Debug, Clone)]
#[must_use]
pub struct MockWarehouseBuilder {
    token: String,
    port: u16,
    http_path: String,
    server_protocol_version: i32,
    direct_results: bool,
    dml_result_set: bool,
    arrow_batch_rows: usize,
    cloudfetch: CloudFetchSettings,
    knobs: Knobs,
    telemetry: TelemetryState,
    oauth: OAuthSettings,
    tls: bool,
    /// PEM of the authority client certificates must be signed by.
    client_ca: Option<Vec<u8>>,
    host_name: String,
    hive_auth: Option<state::HiveAuth>,
}

impl Default for MockWarehouseBuilder {
    fn default() -> Self {
        MockWarehouseBuilder {
            token: DEFAULT_TOKEN.to_string(),
            port: 0,
            tls: false,
            client_ca: None,
            host_name: DEFAULT_HOST.to_string(),
            http_path: DEFAULT_HTTP_PATH.to_string(),
            server_protocol_version: protocol_version::SPARK_V8,
            direct_results: true,
            dml_result_set: false,
            arrow_batch_rows: 10_000,
            cloudfetch: CloudFetchSettings {
                threshold_rows: DEFAULT_CLOUDFETCH_THRESHOLD_ROWS,
                rows_per_file: DEFAULT_CLOUDFETCH_ROWS_PER_FILE,
                links_per_page: DEFAULT_CLOUDFETCH_LINKS_PER_PAGE,
                link_lifetime: DEFAULT_CLOUDFETCH_LINK_LIFETIME,
                keep_files: false,
            },
            knobs: Knobs {
                running_polls: 0,
                statement_delay: Duration::ZERO,
            },
            telemetry: TelemetryState::default(),
            oauth: OAuthSettings::default(),
            hive_auth: None,
        }
    }
}

impl MockWarehouseBuilder {
    // -- connection -----------------------------------------------------------------------

    /// The bearer token the mock accepts. Default: [`DEFAULT_TOKEN`].
    pub fn token(mut self, token: impl Into<String>) -> Self {
        self.token = token.into();
        self
    }

    /// The port to listen on, on 127.0.0.1. Default: 0 (an ephemeral port).
    pub fn port(mut self, port: u16) -> Self {
        self.port = port;
        self
    }

    /// Serve HTTPS with a certificate made at start (see [HTTPS](self#https)) instead of plain
    /// HTTP. Default: false (plain HTTP, which the Python and Node.js drivers use).
    pub fn tls(mut self, on: bool) -> Self {
        self.tls = on;
        self
    }

    /// Require clients to present a certificate signed by a certificate of `ca_pem` (PEM text):
    /// the TLS handshake of a client without one fails. Implies [`tls(true)`](Self::tls).
    /// A PEM without a certificate makes [`start`](Self::start) fail. Default: no client
    /// certificate asked for.
    pub fn require_client_certificate(mut self, ca_pem: impl Into<Vec<u8>>) -> Self {
        self.client_ca = Some(ca_pem.into());
        self.tls = true;
        self
    }

    /// The host name the mock goes by: what [`MockWarehouse::host`] returns, what its URLs
    /// (CloudFetch links, OAuth metadata) and certificate name. It still listens on
    /// 127.0.0.1 only, so a name other than `127.0.0.1` or `localhost` is reached through a
    /// proxy that maps it to the mock ([`TestProxyBuilder::resolve`]); use it with
    /// [`tls(true)`](Self::tls), since the driver speaks plain HTTP to loopback hosts only.
    /// Default: [`DEFAULT_HOST`] (`127.0.0.1`).
    pub fn host_name(mut self, name: impl Into<String>) -> Self {
        self.host_name = name.into();
        self
    }

    /// The HTTP path Thrift is served on (a leading `/` is added when missing).
    /// Default: [`DEFAULT_HTTP_PATH`].
    pub fn http_path(mut self, path: impl Into<String>) -> Self {
        let path = path.into();
        self.http_path = if path.starts_with('/') {
            path
        } else {
            format!("/{path}")
        };
        self
    }

    // -- protocol -------------------------------------------------------------------------

    /// The highest `TProtocolVersion` the server speaks (see [`protocol_version`]); a session
    /// uses the lower of this and the client's. Default: SPARK_CLI_SERVICE_PROTOCOL_V8.
    pub fn server_protocol_version(mut self, version: i32) -> Self {
        self.server_protocol_version = version;
        self
    }

    /// Play a plain HiveServer2 (Apache Spark Thrift Server) in HTTP mode, as protocol version
    /// HIVE_CLI_SERVICE_PROTOCOL_V10: OpenSession with a Databricks protocol version is refused
    /// with a Thrift application exception; results are column-based only, without direct
    /// results or `hasMoreRows`; Thrift requests need `Authorization: Basic` with
    /// [`basic_credentials`](Self::basic_credentials) (a bearer token gets HTTP 500, as
    /// HiveServer2 answers it) or the `hive.server2.auth` cookie each authenticated reply sets;
    /// there are no telemetry or feature-flag endpoints (HTTP 404). Turning it off goes back to
    /// SPARK V8 with bearer tokens. Default: off.
    pub fn vanilla_hive(mut self, on: bool) -> Self {
        if on {
            self.server_protocol_version = protocol_version::HIVE_V10;
            self.hive_auth.get_or_insert_with(|| state::HiveAuth {
                user: DEFAULT_BASIC_USER.to_string(),
                password: DEFAULT_BASIC_PASSWORD.to_string(),
            });
        } else {
            self.server_protocol_version = protocol_version::SPARK_V8;
            self.hive_auth = None;
        }
        self
    }

    /// The user name and password a [`vanilla_hive`](Self::vanilla_hive) mock accepts (and
    /// turns that mode on). Default: [`DEFAULT_BASIC_USER`] / [`DEFAULT_BASIC_PASSWORD`].
    pub fn basic_credentials(
        mut self,
        user: impl Into<String>,
        password: impl Into<String>,
    ) -> Self {
        self = self.vanilla_hive(true);
        self.hive_auth = Some(state::HiveAuth {
            user: user.into(),
            password: password.into(),
        });
        self
    }

    /// Whether to answer `getDirectResults` (else it is ignored, as by vanilla HiveServer2).
    /// Default: true.
    pub fn direct_results(mut self, enabled: bool) -> Self {
        self.direct_results = enabled;
        self
    }

    /// Answer DML (`INSERT`, `UPDATE`, `DELETE`, `MERGE`) as a Databricks warehouse does: a
    /// one-row result set with `num_affected_rows` and `num_inserted_rows` (BIGINT) and no
    /// modified-row count in the operation status. Default: false (no result set, the count in
    /// `numModifiedRows`).
    pub fn dml_result_set(mut self, on: bool) -> Self {
        self.dml_result_set = on;
        self
    }

    /// Most rows per Arrow batch inside one page. Default: 10,000.
    pub fn arrow_batch_rows(mut self, rows: usize) -> Self {
        self.arrow_batch_rows = rows.max(1);
        self
    }

    // -- CloudFetch -----------------------------------------------------------------------

    /// Results with more rows than this are sent as CloudFetch links when the client sent
    /// `canDownloadResult` (and Arrow is granted, at SPARK V3 or later).
    /// Default: [`DEFAULT_CLOUDFETCH_THRESHOLD_ROWS`] (100,000).
    pub fn cloudfetch_threshold_rows(mut self, rows: u64) -> Self {
        self.cloudfetch.threshold_rows = rows;
        self
    }

    /// Rows per CloudFetch file (the last file of a result holds the rest).
    /// Default: [`DEFAULT_CLOUDFETCH_ROWS_PER_FILE`] (100,000).
    pub fn cloudfetch_rows_per_file(mut self, rows: u64) -> Self {
        self.cloudfetch.rows_per_file = rows.max(1);
        self
    }

    /// Links per FetchResults (or direct results) reply.
    /// Default: [`DEFAULT_CLOUDFETCH_LINKS_PER_PAGE`] (10, so a result of a million rows or more
    /// takes several pages and paging gets exercised).
    pub fn cloudfetch_links_per_page(mut self, links: usize) -> Self {
        self.cloudfetch.links_per_page = links.max(1);
        self
    }

    /// How long a CloudFetch link is valid after it is issued (`expiryTime`, and the signature's
    /// own expiry). Default: [`DEFAULT_CLOUDFETCH_LINK_LIFETIME`] (15 minutes).
    pub fn cloudfetch_link_lifetime(mut self, lifetime: Duration) -> Self {
        self.cloudfetch.link_lifetime = lifetime;
        self
    }

    /// Keep the CloudFetch files of a result after its operation closes, for the next execution
    /// of the same SQL text in the same format, so that a benchmark running one statement
    /// repeatedly measures the client and not file generation. Kept files are never evicted
    /// (except by [`MockWarehouse::register_result`] for its SQL text). Default: false (files
    /// are dropped when their operation closes).
    pub fn cloudfetch_keep_files(mut self, keep: bool) -> Self {
        self.cloudfetch.keep_files = keep;
        self
    }

    // -- timing ---------------------------------------------------------------------------

    /// GetOperationStatus polls an async statement answers PENDING (the first) or RUNNING
    /// before FINISHED; a statement with polls to go is never answered through direct results.
    /// Default: 0.
    pub fn running_polls(mut self, polls: u32) -> Self {
        self.knobs.running_polls = polls;
        self
    }

    /// How long every statement runs before it is FINISHED (on top of `sleep(MS)`).
    /// Default: zero.
    pub fn statement_delay(mut self, delay: Duration) -> Self {
        self.knobs.statement_delay = delay;
        self
    }

    // -- telemetry ------------------------------------------------------------------------

    /// Set [`TELEMETRY_FLAG_NAME`] to `"true"` or `"false"`. Default: `"false"`.
    pub fn telemetry_enabled(self, enabled: bool) -> Self {
        self.feature_flag(
            TELEMETRY_FLAG_NAME,
            Some(if enabled { "true" } else { "false" }),
        )
    }

    /// Set (or, with `None`, remove) a feature flag answered by the feature-flag endpoint.
    pub fn feature_flag(mut self, name: &str, value: Option<&str>) -> Self {
        set_flag(&mut self.telemetry, name, value);
        self
    }

    /// The `ttl_seconds` of the feature-flag reply.
    /// Default: [`DEFAULT_FEATURE_FLAG_TTL_SECONDS`] (900).
    pub fn feature_flag_ttl_seconds(mut self, ttl: u64) -> Self {
        self.telemetry.ttl_seconds = ttl;
        self
    }

    // -- OAuth ----------------------------------------------------------------------------

    /// Register a confidential OAuth client for the client credentials grant (machine to
    /// machine), in addition to the others; registering an id again replaces its secret.
    /// Default: [`DEFAULT_OAUTH_CLIENT_ID`] with [`DEFAULT_OAUTH_CLIENT_SECRET`] only.
    pub fn oauth_client(
        mut self,
        client_id: impl Into<String>,
        client_secret: impl Into<String>,
    ) -> Self {
        self.oauth
            .add_client(client_id.into(), client_secret.into());
        self
    }

    /// Register a public OAuth client (no secret) for the authorization code grant with PKCE
    /// (user to machine), in addition to the others.
    /// Default: [`DEFAULT_OAUTH_U2M_CLIENT_ID`] (`databricks-cli`) only.
    pub fn oauth_u2m_client(mut self, client_id: impl Into<String>) -> Self {
        self.oauth.add_public_client(client_id.into());
        self
    }

    /// How long an OAuth access token is valid after it is issued. The token reply's
    /// `expires_in` is this in whole seconds, at least 1: a lifetime under a second (for tests
    /// of expiry) is announced as 1 s but ends when configured.
    /// Default: [`DEFAULT_OAUTH_TOKEN_LIFETIME`] (one hour).
    pub fn oauth_token_lifetime(mut self, lifetime: Duration) -> Self {
        self.oauth.set_token_lifetime(lifetime);
        self
    }

    /// Start serving on the current tokio runtime.
    pub async fn start(self) -> Result<MockWarehouse> {
        let tls = if self.tls {
            let mut names = vec!["localhost".to_string(), "127.0.0.1".to_string()];
            if !names.contains(&self.host_name) {
                names.push(self.host_name.clone());
            }
            Some(tls::server(&names, self.client_ca.as_deref())?)
        } else {
            None
        };
        let listener = server::bind(self.port).await?;
        let addr = server::local_addr(&listener)?;
        let scheme = if tls.is_some() { "https" } else { "http" };
        let config = Config {
            host: self.host_name.clone(),
            token: self.token,
            http_path: self.http_path,
            server_protocol_version: self.server_protocol_version,
            direct_results: self.direct_results,
            dml_result_set: self.dml_result_set,
            arrow_batch_rows: self.arrow_batch_rows,
            base_url: format!("{scheme}://{}:{}", self.host_name, addr.port()),
            cloudfetch: self.cloudfetch,
            signer: LinkSigner::new(),
            hive_auth: self.hive_auth,
        };
        let state = State::new(self.knobs, self.telemetry, OAuthState::new(self.oauth));
        let shared = Shared::new(config, state);
        let (acceptor, ca_pem) = match tls {
            Some(t) => (Some(t.acceptor), Some(t.ca_pem)),
            None => (None, None),
        };
        let served = shared.clone();
        let server = ServerHandle::spawn(listener, move |stream| {
            server::serve_connection(stream, served.clone(), acceptor.clone())
        });
        tracing::debug!(
            port = addr.port(),
            https = ca_pem.is_some(),
            "mock warehouse started"
        );
        Ok(MockWarehouse {
            inner: Arc::new(Inner {
                shared,
                addr,
                server,
                ca_pem,
            }),
        })
    }
}

/// Decodes one CloudFetch file (from [`MockWarehouse::cloudfetch_files`], or downloaded from a
/// link) the way the driver's pipeline does: the LZ4 frame (when `lz4`) decompressed into one
/// buffer, then the Arrow IPC stream decoded over it without copying; on the calling thread.
/// Fails (`Decode`) on an invalid frame or stream.
pub fn decode_cloudfetch_file(file: &bytes::Bytes, lz4: bool) -> Result<Vec<RecordBatch>> {
    cloudfetch::decode_file(file, lz4)
}

fn set_flag(t: &mut TelemetryState, name: &str, value: Option<&str>) {
    match value {
        Some(v) => {
            t.flags.insert(name.to_string(), v.to_string());
        }
        None => {
            t.flags.remove(name);
        }
    }
}

/// A running mock warehouse. Cheap to clone (an `Arc` inside), `Send + Sync`; the server stops
/// on [`shutdown`](Self::shutdown) or when the last clone is dropped.
#[derive(Clone)]
pub struct MockWarehouse {
    inner: Arc<Inner>,
}

struct Inner {
    shared: Arc<Shared>,
    addr: SocketAddr,
    server: ServerHandle,
    /// The certificate authority's PEM, when serving HTTPS.
    ca_pem: Option<String>,
}

impl fmt::Debug for MockWarehouse {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("MockWarehouse")
            .field("addr", &self.inner.addr)
            .field("http_path", &self.http_path())
            .field("https", &self.inner.ca_pem.is_some())
            .finish_non_exhaustive()
    }
}

impl MockWarehouse {
    /// Start a mock with the default settings on an ephemeral port.
    pub async fn start() -> Result<MockWarehouse> {
        Self::builder().start().await
    }

    /// A builder for a mock with non-default settings.
    pub fn builder() -> MockWarehouseBuilder {
        MockWarehouseBuilder::default()
    }

    // -- where it is ----------------------------------------------------------------------

    /// The host to connect to: `127.0.0.1`, or the
    /// [`host_name`](MockWarehouseBuilder::host_name) it was given.
    pub fn host(&self) -> &str {
        &self.inner.shared.config.host
    }

    /// The port it listens on.
    pub fn port(&self) -> u16 {
        self.inner.addr.port()
    }

    /// The address it listens on: 127.0.0.1 and [`port`](Self::port).
    pub fn local_addr(&self) -> SocketAddr {
        self.inner.addr
    }

    /// The certificate (PEM) of the authority that signed its server certificate, when it
    /// serves HTTPS ([`MockWarehouseBuilder::tls`]); `None` for plain HTTP.
    pub fn ca_certificate_pem(&self) -> Option<&str> {
        self.inner.ca_pem.as_deref()
    }

    /// The HTTP path of the Thrift endpoint, e.g. `/sql/1.0/warehouses/mock`.
    pub fn http_path(&self) -> &str {
        &self.inner.shared.config.http_path
    }

    /// Requests that carried a `hive.server2.auth` cookie this mock issued
    /// ([`vanilla_hive`](MockWarehouseBuilder::vanilla_hive) mode).
    pub fn cookie_authenticated_requests(&self) -> usize {
        self.inner.shared.lock().cookie_authenticated
    }

    /// The bearer token it accepts.
    pub fn token(&self) -> &str {
        &self.inner.shared.config.token
    }

    /// The base URL, `http://127.0.0.1:<port>` (`https://` when it serves HTTPS, and its
    /// [`host_name`](MockWarehouseBuilder::host_name) when it has one): the telemetry,
    /// feature-flag and OAuth endpoints hang off it (OAuth discovery is
    /// `<base_url>/oidc/.well-known/oauth-authorization-server`).
    pub fn base_url(&self) -> String {
        self.inner.shared.config.base_url.clone()
    }

    /// The full URL of the Thrift endpoint, `<base_url><http_path>`.
    pub fn url(&self) -> String {
        format!("{}{}", self.base_url(), self.http_path())
    }

    /// A [`DBSQLClient`](crate::DBSQLClient) builder already pointed at this mock: host, port,
    /// HTTP path, token (user name and password for a
    /// [`vanilla_hive`](MockWarehouseBuilder::vanilla_hive) mock), and plain HTTP (loopback only), or for a mock serving HTTPS its
    /// certificate authority added to the trusted roots. Other settings are at their defaults.
    ///
    /// ```no_run
    /// # async fn demo() -> databricks_sql::Result<()> {
    /// let mock = databricks_sql::mock::MockWarehouse::start().await?;
    /// let client = mock.client_builder().build()?;
    /// let session = client.open_session().await?;
    /// # Ok(()) }
    /// ```
    pub fn client_builder(&self) -> crate::ClientBuilder {
        let builder = crate::DBSQLClient::builder()
            .host(self.host())
            .port(self.port())
            .http_path(self.http_path());
        let builder = match &self.inner.shared.config.hive_auth {
            Some(auth) => builder.basic_auth(&auth.user, &auth.password),
            None => builder.token(self.token()),
        };
        match self.ca_certificate_pem() {
            Some(ca) => builder.add_root_certificates(crate::http::Pem::from_bytes(ca)),
            None => builder.plain_http(true),
        }
    }

    // -- results --------------------------------------------------------------------------

    /// Answer `sql` (matched ignoring case, whitespace runs and trailing `;`) with `batches`.
    /// Fails when a batch's column types differ from `schema`'s.
    pub fn register_result(
        &self,
        sql: &str,
        schema: SchemaRef,
        batches: Vec<RecordBatch>,
    ) -> Result<()> {
        let source = BatchesSource::new(schema, batches)?;
        let key = sql::normalize(sql);
        let mut st = self.inner.shared.lock();
        st.kept_files.retain(|(text, _), _| *text != key);
        st.registered
            .insert(key, Registered::Rows(Arc::new(source)));
        Ok(())
    }

    /// Make `sql` end in the ERROR state with this SQLSTATE and message (also used as the
    /// display message).
    pub fn register_error(&self, sql: &str, sql_state: &str, message: &str) {
        let err = SqlError {
            sql_state: sql_state.to_string(),
            message: message.to_string(),
            display_message: message.to_string(),
        };
        self.inner
            .shared
            .lock()
            .registered
            .insert(sql::normalize(sql), Registered::Error(err));
    }

    /// The CloudFetch files this mock serves for `sql` (in order, whatever the threshold), as a
    /// client gets them that asks for Arrow native types (as this driver does), LZ4-framed when
    /// `lz4`; generated now, on the calling thread. For `range(..)`, `mock.rows(..)` and
    /// registered results; other statements are a `Config` error. With
    /// [`decode_cloudfetch_file`], for tests and the CloudFetch benchmark's in-memory baseline.
    pub fn cloudfetch_files(&self, sql: &str, lz4: bool) -> Result<Vec<bytes::Bytes>> {
        let registered = match self
            .inner
            .shared
            .lock()
            .registered
            .get(&sql::normalize(sql))
        {
            Some(Registered::Rows(src)) => Some(src.clone()),
            _ => None,
        };
        let src: Arc<dyn source::RowSource> =
            match (registered, sql::parse(sql)) {
                (Some(src), _) => src,
                (None, sql::Statement::Range { start, end }) => {
                    Arc::new(source::RangeSource::new(start, end))
                }
                (None, sql::Statement::MockRows(n)) => Arc::new(source::MockRowsSource::new(n)),
                _ => return Err(crate::Error::config(
                    "cloudfetch_files knows range(..), mock.rows(..) and registered results only",
                )),
            };
        let config = &self.inner.shared.config;
        let format = state::WireFormat {
            arrow: true,
            lz4,
            arrow_timestamps: true,
            arrow_decimals: true,
            vanilla: false,
            cloudfetch: true,
        };
        let files = cloudfetch::ResultFiles::new(
            src,
            format,
            config.cloudfetch.rows_per_file,
            config.arrow_batch_rows,
        );
        cloudfetch::all_files(&files)
    }

    // -- timing at runtime ----------------------------------------------------------------

    /// Change [`MockWarehouseBuilder::running_polls`] for statements executed from now on.
    pub fn set_running_polls(&self, polls: u32) {
        self.inner.shared.lock().knobs.running_polls = polls;
    }

    /// Change [`MockWarehouseBuilder::statement_delay`] for statements executed from now on.
    pub fn set_statement_delay(&self, delay: Duration) {
        self.inner.shared.lock().knobs.statement_delay = delay;
    }

    // -- what it saw ----------------------------------------------------------------------

    /// How many requests named `name` it received: a Thrift method (`"FetchResults"`) or an
    /// [`endpoint`] name. Requests answered with a fault or a 401 count too.
    pub fn call_count(&self, name: &str) -> usize {
        self.inner
            .shared
            .lock()
            .counts
            .get(name)
            .copied()
            .unwrap_or(0)
    }

    /// Every request name with its count.
    pub fn call_counts(&self) -> BTreeMap<String, usize> {
        self.inner.shared.lock().counts.clone()
    }

    /// How many requests named `name` reached their handler, i.e. were run: unlike
    /// [`call_count`](Self::call_count), requests answered by a fault before the handler (an
    /// HTTP status, a connection dropped before the run, a corrupt body) and requests refused
    /// (401, malformed Thrift) are not counted. A request whose connection a
    /// [`Fault::drop_connection_after_run`] drops was run, and counts; a delayed one counts
    /// once its delay is over, if the client is still connected.
    pub fn handled_count(&self, name: &str) -> usize {
        self.inner
            .shared
            .lock()
            .handled
            .get(name)
            .copied()
            .unwrap_or(0)
    }

    /// Every request name with how many of its requests reached their handler.
    pub fn handled_counts(&self) -> BTreeMap<String, usize> {
        self.inner.shared.lock().handled.clone()
    }

    /// Reset every count (received and handled) to zero.
    pub fn reset_call_counts(&self) {
        let mut st = self.inner.shared.lock();
        st.counts.clear();
        st.handled.clear();
    }

    /// Sessions opened and not yet closed.
    pub fn open_sessions(&self) -> usize {
        self.inner.shared.lock().open_sessions()
    }

    /// Close the session `session_id` (UUID text) on the server side, with its operations, as a
    /// warehouse does when a session idles out or the warehouse restarts: later calls naming it
    /// answer `INVALID_HANDLE`. Returns whether such an open session existed.
    pub fn expire_session(&self, session_id: &str) -> bool {
        let mut st = self.inner.shared.lock();
        let id = st
            .sessions
            .keys()
            .find(|id| crate::thrift::handles::guid_to_string(id.as_slice()) == session_id)
            .copied();
        id.is_some_and(|id| st.close_session(&id))
    }

    /// Close every open session on the server side (see
    /// [`expire_session`](Self::expire_session)); returns how many were open.
    pub fn expire_all_sessions(&self) -> usize {
        let mut st = self.inner.shared.lock();
        let ids: Vec<_> = st.sessions.keys().copied().collect();
        ids.iter().filter(|id| st.close_session(id)).count()
    }

    /// Operations not yet closed (by CloseOperation, direct results' `closeOperation`, or the
    /// closing of their session).
    pub fn open_operations(&self) -> usize {
        self.inner.shared.lock().operations.len()
    }

    /// CloudFetch file GETs of file `index` (counted from 0 in its result), over every
    /// statement, those answered with a fault or refused included.
    pub fn cloudfetch_get_count(&self, index: usize) -> usize {
        self.inner
            .shared
            .lock()
            .cloudfetch_gets
            .get(&index)
            .copied()
            .unwrap_or(0)
    }

    /// CloudFetch file GETs by file index (see [`cloudfetch_get_count`](Self::cloudfetch_get_count)).
    /// Their sum is [`call_count`](Self::call_count)`(endpoint::CLOUDFETCH_FILE)`.
    pub fn cloudfetch_get_counts(&self) -> BTreeMap<usize, usize> {
        self.inner.shared.lock().cloudfetch_gets.clone()
    }

    /// CloudFetch file GETs that carried an `Authorization` header: each was refused with 400.
    /// A driver must send presigned URLs only the links' own headers, so this should stay 0.
    pub fn cloudfetch_gets_with_authorization(&self) -> usize {
        self.inner.shared.lock().cloudfetch_gets_with_authorization
    }

    /// The Unity Catalog volume file at `path` (`/Volumes/<catalog>/<schema>/<volume>/...`),
    /// if there is one.
    pub fn volume_file(&self, path: &str) -> Option<bytes::Bytes> {
        self.inner.shared.lock().staging.files.get(path).cloned()
    }

    /// Stores `contents` as the volume file at `path`, replacing any file there.
    pub fn put_volume_file(&self, path: &str, contents: impl Into<bytes::Bytes>) {
        let contents = contents.into();
        self.inner
            .shared
            .lock()
            .staging
            .files
            .insert(path.to_string(), contents);
    }

    /// The paths of every volume file, sorted.
    pub fn volume_files(&self) -> Vec<String> {
        let st = self.inner.shared.lock();
        let mut paths: Vec<String> = st.staging.files.keys().cloned().collect();
        paths.sort();
        paths
    }

    /// Requests to presigned staging URLs that carried an `Authorization` header: each was
    /// refused with 400. A driver must send them only the operation's own headers, so this
    /// should stay 0.
    pub fn staging_requests_with_authorization(&self) -> usize {
        self.inner.shared.lock().staging.with_authorization
    }

    /// Every session opened so far (open or closed), in opening order.
    pub fn sessions(&self) -> Vec<SessionInfo> {
        let st = self.inner.shared.lock();
        st.session_log
            .iter()
            .filter_map(|id| st.session_info(id))
            .collect()
    }

    /// The latest ExecuteStatement calls (up to 10,000), oldest first.
    pub fn statements(&self) -> Vec<StatementInfo> {
        self.inner
            .shared
            .lock()
            .statements
            .iter()
            .cloned()
            .collect()
    }

    /// The latest requests of any kind (up to 10,000), oldest first.
    pub fn requests(&self) -> Vec<RecordedRequest> {
        self.inner.shared.lock().requests.iter().cloned().collect()
    }

    // -- faults ---------------------------------------------------------------------------

    /// Queue `fault` for the next requests it targets.
    pub fn inject(&self, fault: Fault) {
        self.inner.shared.lock().faults.push(fault);
    }

    /// Drop every queued fault.
    pub fn clear_faults(&self) {
        self.inner.shared.lock().faults.clear();
    }

    /// How many fault applications are still queued.
    pub fn pending_faults(&self) -> usize {
        self.inner.shared.lock().faults.pending()
    }

    // -- telemetry ------------------------------------------------------------------------

    /// Set [`TELEMETRY_FLAG_NAME`] to `"true"` or `"false"` from now on.
    pub fn set_telemetry_enabled(&self, enabled: bool) {
        self.set_feature_flag(
            TELEMETRY_FLAG_NAME,
            Some(if enabled { "true" } else { "false" }),
        );
    }

    /// Set (or, with `None`, remove) a feature flag from now on.
    pub fn set_feature_flag(&self, name: &str, value: Option<&str>) {
        set_flag(&mut self.inner.shared.lock().telemetry, name, value);
    }

    /// Change the `ttl_seconds` of the feature-flag reply from now on.
    pub fn set_feature_flag_ttl_seconds(&self, ttl: u64) {
        self.inner.shared.lock().telemetry.ttl_seconds = ttl;
    }

    /// Every protoLog of the telemetry uploads kept (see
    /// [`telemetry_requests`](Self::telemetry_requests)), parsed now, in order of arrival.
    pub fn telemetry_logs(&self) -> Vec<serde_json::Value> {
        let uploads = self.inner.shared.lock().telemetry.uploads();
        uploads.iter().flat_map(|u| u.parse().proto_logs).collect()
    }

    /// The latest requests to the telemetry endpoints (up to 10,000, and up to 256 MiB of
    /// bodies), oldest first, parsed now.
    pub fn telemetry_requests(&self) -> Vec<TelemetryRequest> {
        let uploads = self.inner.shared.lock().telemetry.uploads();
        uploads.iter().map(Upload::parse).collect()
    }

    /// The latest requests to the feature-flag endpoint (up to 10,000), oldest first.
    pub fn feature_flag_requests(&self) -> Vec<FeatureFlagRequest> {
        self.inner
            .shared
            .lock()
            .telemetry
            .flag_requests
            .iter()
            .cloned()
            .collect()
    }

    // -- OAuth ----------------------------------------------------------------------------

    /// Change [`MockWarehouseBuilder::oauth_token_lifetime`] for access tokens issued from now
    /// on.
    pub fn set_oauth_token_lifetime(&self, lifetime: Duration) {
        self.inner.shared.lock().oauth.set_token_lifetime(lifetime);
    }

    /// Reject every OAuth access token issued so far (with 401, as an expired one); refresh
    /// tokens stay valid and new access tokens are accepted. For tests of a client that gets a
    /// fresh token after a 401.
    pub fn revoke_oauth_access_tokens(&self) {
        self.inner.shared.lock().oauth.revoke_access_tokens();
    }

    /// How many requests were answered 401 because their bearer token was missing, unknown,
    /// expired or revoked.
    pub fn unauthorized_requests(&self) -> usize {
        self.inner.shared.lock().unauthorized
    }

    /// Refuse every OAuth refresh token issued so far (`400` `invalid_grant`, as an unknown
    /// one); access tokens stay valid and refresh tokens issued later are accepted. For tests
    /// of a client whose refresh is refused and that logs in again.
    pub fn revoke_oauth_refresh_tokens(&self) {
        self.inner.shared.lock().oauth.revoke_refresh_tokens();
    }

    /// The requests the OAuth endpoints answered, by kind.
    pub fn oauth_requests(&self) -> OAuthRequestCounts {
        self.inner.shared.lock().oauth.counts.clone()
    }

    // -- stopping -------------------------------------------------------------------------

    /// Stop the server: no new connections, open connections closed, every task ended when
    /// this returns. Dropping the last clone stops it too (without waiting).
    pub async fn shutdown(&self) {
        self.inner.server.shutdown().await;
        tracing::debug!(port = self.port(), "mock warehouse stopped");
    }
}

#[cfg(test)]
mod http_tests;

#[cfg(test)]
mod thrift_tests;

#[cfg(test)]
mod client_tests;
#[cfg(test)]
mod oauth_tests;
#[cfg(test)]
mod public_api_tests;
