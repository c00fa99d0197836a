//! Connection settings resolved the way the Databricks CLI and SDKs resolve them: from
//! `DATABRICKS_*` environment variables, a `~/.databrickscfg` profile and a `databricks://`
//! connection URL, merged setting by setting in a fixed order of precedence.
//!
//! # Precedence
//!
//! Each setting is taken from the highest level that sets it; the levels are merged setting by
//! setting (a token from the environment and a host from the profile make one configuration).
//!
//! | Level | Source | Example |
//! |---|---|---|
//! | 1 (highest) | builder setters, or a connection URL when one is used (its values win over the environment) | `databricks://token:<PAT>@<host>/<http path>` |
//! | 2 | environment variables | `DATABRICKS_TOKEN=dapi...` |
//! | 3 (lowest) | the profile named by `DATABRICKS_CONFIG_PROFILE` (default `DEFAULT`) in the file named by `DATABRICKS_CONFIG_FILE` (default `~/.databrickscfg`) | `token = dapi...` |
//!
//! | Setting | Environment variable | Profile key | Connection URL |
//! |---|---|---|---|
//! | host | `DATABRICKS_HOST` | `host` | `<host>` |
//! | port | `DATABRICKS_PORT` | `port` | `:<port>` |
//! | HTTP path | `DATABRICKS_HTTP_PATH` | `http_path`, or `warehouse_id` (→ `/sql/1.0/warehouses/<id>`) | `/<http path>` |
//! | token | `DATABRICKS_TOKEN` | `token` | `token:<PAT>@`, or `token=` |
//! | OAuth client id | `DATABRICKS_CLIENT_ID` | `client_id` | `client_id=` / `clientId=` |
//! | OAuth client secret | `DATABRICKS_CLIENT_SECRET` | `client_secret` | `client_secret=` / `clientSecret=` |
//! | auth type | `DATABRICKS_AUTH_TYPE` | `auth_type` | `auth_type=` / `authType=` |
//! | catalog | | | `catalog=` |
//! | schema | | | `schema=` |
//! | OAuth redirect port | | | `oauth_redirect_port=` / `oauthRedirectPort=` |
//!
//! Empty values (an empty or blank environment variable, `token =` in a profile, `?catalog=` in a
//! URL) count as unset. Auth types are `pat`, `oauth-m2m` and `oauth-u2m` (also spelled
//! `databricks-cli` or `external-browser`), in any case.
//!
//! # Profiles
//!
//! `~/.databrickscfg` is an INI file of profiles, one section each. Section names are
//! case-sensitive, key names are not; unknown keys are ignored; a value in quotes is unquoted;
//! backslashes are literal. The `DEFAULT` profile is the `[DEFAULT]` section together with any keys
//! written before the first section; other profiles do not inherit from it. With neither
//! `DATABRICKS_CONFIG_FILE` nor `DATABRICKS_CONFIG_PROFILE` set, a missing file or a file without a
//! `DEFAULT` profile just means no profile; a file or profile named by those variables must exist.
//!
//! ```ini
//! [DEFAULT]
//! host = https://adb-123.4.azuredatabricks.net
//! token = dapi...
//! http_path = /sql/1.0/warehouses/abc
//!
//! [ci]
//! host = https://adb-123.4.azuredatabricks.net
//! auth_type = oauth-m2m
//! client_id = ...
//! client_secret = ...
//! warehouse_id = abc
//! ```
//!
//! Errors name the setting, file and profile that are wrong, never a value: no error built here
//! contains a token, a client secret or a connection URL. The one exception is an unknown query
//! key of a URL, which is named (see [`Settings::from_url`]).

use std::collections::{BTreeMap, BTreeSet};
use std::fmt;
use std::path::{Path, PathBuf};
use std::str::FromStr;

use ini::{Ini, ParseOption, Properties};
use url::Url;

use crate::error::{Error, Result};

/// The environment variable naming the config file (default `~/.databrickscfg`).
pub(crate) const CONFIG_FILE_VAR: &str = "DATABRICKS_CONFIG_FILE";
/// The environment variable naming the profile (default [`DEFAULT_PROFILE`]).
pub(crate) const CONFIG_PROFILE_VAR: &str = "DATABRICKS_CONFIG_PROFILE";
/// The profile read when `DATABRICKS_CONFIG_PROFILE` is unset.
pub(crate) const DEFAULT_PROFILE: &str = "DEFAULT";
/// The config file read when `DATABRICKS_CONFIG_FILE` is unset, relative to the home directory.
pub(crate) const DEFAULT_CONFIG_FILE: &str = ".databrickscfg";

/// Where a setting came from, as error messages name it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) enum Source {
    /// The `DATABRICKS_*` environment variables.
    Environment,
    /// A profile (INI section) of a config file.
    Profile {
        /// The config file.
        file: PathBuf,
        /// The section name.
        profile: String,
    },
    /// A `databricks://` connection URL.
    Url,
}

impl fmt::Display for Source {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Source::Environment => f.write_str("the environment"),
            Source::Profile { file, profile } => {
                write!(f, "profile [{profile}] of {}", file.display())
            }
            Source::Url => f.write_str("the connection URL"),
        }
    }
}

/// How the client authenticates, named as the Databricks SDKs name it (`auth_type`).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum AuthType {
    /// A personal access token: `pat`.
    Pat,
    /// OAuth machine-to-machine with a service principal's client id and secret: `oauth-m2m`.
    OAuthM2M,
    /// OAuth user-to-machine through a browser login: `oauth-u2m`, `databricks-cli` or
    /// `external-browser`.
    OAuthU2M,
}

impl AuthType {
    /// The accepted spellings, for error messages.
    const ACCEPTED: &'static str =
        "pat, oauth-m2m, oauth-u2m (also databricks-cli or external-browser)";

    /// The canonical name: `pat`, `oauth-m2m` or `oauth-u2m`.
    pub(crate) fn as_str(self) -> &'static str {
        match self {
            AuthType::Pat => "pat",
            AuthType::OAuthM2M => "oauth-m2m",
            AuthType::OAuthU2M => "oauth-u2m",
        }
    }

    /// Parses `value` (case-insensitive); `what` names where it was written, for the error.
    fn parse(value: &str, what: &str) -> Result<AuthType> {
        let v = value.trim().to_ascii_lowercase();
        match v.as_str() {
            "pat" => Ok(AuthType::Pat),
            "oauth-m2m" => Ok(AuthType::OAuthM2M),
            "oauth-u2m" | "databricks-cli" | "external-browser" => Ok(AuthType::OAuthU2M),
            _ => Err(Error::config(format!(
                "{what} is not a known auth type; accepted: {}",
                Self::ACCEPTED
            ))),
        }
    }
}

impl fmt::Display for AuthType {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.as_str())
    }
}

impl FromStr for AuthType {
    type Err = Error;

    /// `pat`, `oauth-m2m`, `oauth-u2m`, `databricks-cli` or `external-browser`, in any case.
    fn from_str(s: &str) -> Result<AuthType> {
        AuthType::parse(s, "the value")
    }
}

/// Settings found in the environment, a profile or a connection URL; every one optional.
///
/// `Debug` shows whether a token or client secret is set, never its value.
#[derive(Clone, Default, PartialEq)]
pub(crate) struct Settings {
    /// Workspace host as given: a host name or an `https://` URL (the builder's `host()` parses it).
    pub host: Option<String>,
    /// TCP port.
    pub port: Option<u16>,
    /// HTTP path of the warehouse, e.g. `/sql/1.0/warehouses/abc`.
    pub http_path: Option<String>,
    /// Personal access token.
    pub token: Option<String>,
    /// OAuth client id (a service principal's application id for `oauth-m2m`).
    pub client_id: Option<String>,
    /// OAuth client secret (`oauth-m2m`).
    pub client_secret: Option<String>,
    /// Explicit authentication method; `None` leaves the choice to the builder.
    pub auth_type: Option<AuthType>,
    /// Where `auth_type` came from, for error messages; set together with it.
    pub auth_type_source: Option<Source>,
    /// Initial catalog of sessions.
    pub catalog: Option<String>,
    /// Initial schema of sessions.
    pub schema: Option<String>,
    /// Local port of the OAuth user-to-machine redirect listener.
    pub oauth_redirect_port: Option<u16>,
}

/// Prints in place of a secret in `Debug` output.
struct Redacted;

impl fmt::Debug for Redacted {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str("<redacted>")
    }
}

impl fmt::Debug for Settings {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("Settings")
            .field("host", &self.host)
            .field("port", &self.port)
            .field("http_path", &self.http_path)
            .field("token", &self.token.as_ref().map(|_| Redacted))
            .field("client_id", &self.client_id)
            .field(
                "client_secret",
                &self.client_secret.as_ref().map(|_| Redacted),
            )
            .field("auth_type", &self.auth_type)
            .field("auth_type_source", &self.auth_type_source)
            .field("catalog", &self.catalog)
            .field("schema", &self.schema)
            .field("oauth_redirect_port", &self.oauth_redirect_port)
            .finish()
    }
}

/// What looking a profile up in a config file found.
enum ProfileLookup {
    /// The file does not exist.
    NoFile,
    /// The file exists but has no such section.
    NoProfile,
    /// The profile's settings.
    Found(Box<Settings>),
}

/// Connection URL query keys, each with the setting it names (camelCase spellings included).
const URL_QUERY_KEYS: &[(&str, &str)] = &[
    ("catalog", "catalog"),
    ("schema", "schema"),
    ("auth_type", "auth_type"),
    ("authType", "auth_type"),
    ("client_id", "client_id"),
    ("clientId", "client_id"),
    ("client_secret", "client_secret"),
    ("clientSecret", "client_secret"),
    ("token", "token"),
    ("oauth_redirect_port", "oauth_redirect_port"),
    ("oauthRedirectPort", "oauth_redirect_port"),
];

/// Query keys whose values are secrets: an unknown key right after one may be a piece of it.
const URL_SECRET_KEYS: &[&str] = &["token", "client_secret"];

impl Settings {
    /// Resolves the settings below the builder level and checks them: `explicit` (the builder's
    /// setters, or a connection URL) wins over [`from_environment`](Self::from_environment), which
    /// wins over the profile; then [`validate`](Self::validate).
    pub(crate) fn resolve(
        explicit: Settings,
        env: impl Fn(&str) -> Option<String>,
        home: Option<&Path>,
    ) -> Result<Settings> {
        let settings = explicit.or(Settings::from_environment(env, home)?);
        settings.validate()?;
        Ok(settings)
    }

    /// Settings from the environment, with the gaps filled from a config file profile.
    ///
    /// `env` looks a variable up (`|name| std::env::var(name).ok()` in production); `home` is the
    /// user's home directory, where `.databrickscfg` is looked for (and what a leading `~/` of
    /// `DATABRICKS_CONFIG_FILE` stands for). Reads `DATABRICKS_HOST`, `DATABRICKS_PORT`,
    /// `DATABRICKS_HTTP_PATH`, `DATABRICKS_TOKEN`, `DATABRICKS_CLIENT_ID`,
    /// `DATABRICKS_CLIENT_SECRET`, `DATABRICKS_AUTH_TYPE`, `DATABRICKS_CONFIG_FILE` and
    /// `DATABRICKS_CONFIG_PROFILE`; values are trimmed, and empty ones count as unset.
    ///
    /// Errors (kind `Config`): an invalid port or auth type; a file named by
    /// `DATABRICKS_CONFIG_FILE` that does not exist; a profile named by
    /// `DATABRICKS_CONFIG_PROFILE` that is not in the file; a config file that cannot be read or
    /// parsed.
    pub(crate) fn from_environment(
        env: impl Fn(&str) -> Option<String>,
        home: Option<&Path>,
    ) -> Result<Settings> {
        let var = |name: &str| {
            env(name)
                .map(|v| v.trim().to_string())
                .filter(|v| !v.is_empty())
        };
        let auth_type = var("DATABRICKS_AUTH_TYPE")
            .map(|v| AuthType::parse(&v, "DATABRICKS_AUTH_TYPE"))
            .transpose()?;
        let from_env = Settings {
            host: var("DATABRICKS_HOST"),
            port: var("DATABRICKS_PORT")
                .map(|v| parse_port(&v, "DATABRICKS_PORT"))
                .transpose()?,
            http_path: var("DATABRICKS_HTTP_PATH"),
            token: var("DATABRICKS_TOKEN"),
            client_id: var("DATABRICKS_CLIENT_ID"),
            client_secret: var("DATABRICKS_CLIENT_SECRET"),
            auth_type_source: auth_type.map(|_| Source::Environment),
            auth_type,
            ..Settings::default()
        };

        let file_var = var(CONFIG_FILE_VAR);
        let profile_var = var(CONFIG_PROFILE_VAR);
        let profile = profile_var.as_deref().unwrap_or(DEFAULT_PROFILE);
        let file = match &file_var {
            Some(f) => Some(expand_home(f, home)),
            None => home.map(|h| h.join(DEFAULT_CONFIG_FILE)),
        };
        let Some(file) = file else {
            if let Some(p) = &profile_var {
                return Err(Error::config(format!(
                    "{CONFIG_PROFILE_VAR} names the profile [{p}], but there is no config file: \
                     {CONFIG_FILE_VAR} is unset and the home directory is unknown"
                )));
            }
            return Ok(from_env);
        };
        let from_profile = match read_profile(&file, profile)? {
            ProfileLookup::Found(settings) => *settings,
            ProfileLookup::NoFile if file_var.is_some() => {
                return Err(Error::config(format!(
                    "the config file {} named by {CONFIG_FILE_VAR} does not exist",
                    file.display()
                )))
            }
            ProfileLookup::NoFile if profile_var.is_some() => {
                return Err(Error::config(format!(
                    "the profile [{profile}] named by {CONFIG_PROFILE_VAR} cannot be read: the \
                     config file {} does not exist",
                    file.display()
                )))
            }
            ProfileLookup::NoProfile if profile_var.is_some() => {
                return Err(Error::config(format!(
                    "the profile [{profile}] named by {CONFIG_PROFILE_VAR} is not in {} \
                     (profile names are case-sensitive)",
                    file.display()
                )))
            }
            ProfileLookup::NoFile | ProfileLookup::NoProfile => Settings::default(),
        };
        Ok(from_env.or(from_profile))
    }

    /// Settings of the profile (INI section) `profile` of the config file `file`.
    ///
    /// Keys: `host`, `port`, `http_path`, `warehouse_id` (for an `http_path` of
    /// `/sql/1.0/warehouses/<id>`; giving both is an error), `token`, `client_id`,
    /// `client_secret`, `auth_type`; others are ignored. `DEFAULT` also takes the keys written
    /// before the first section.
    ///
    /// Errors (kind `Config`, naming the file and profile): the file does not exist or cannot be
    /// read or parsed; the profile is not in it; a port or auth type is invalid.
    pub(crate) fn from_profile(file: &Path, profile: &str) -> Result<Settings> {
        match read_profile(file, profile)? {
            ProfileLookup::Found(settings) => Ok(*settings),
            ProfileLookup::NoFile => Err(Error::config(format!(
                "the config file {} does not exist",
                file.display()
            ))),
            ProfileLookup::NoProfile => Err(Error::config(format!(
                "the profile [{profile}] is not in {} (profile names are case-sensitive)",
                file.display()
            ))),
        }
    }

    /// Settings from a connection URL:
    ///
    /// `databricks://[token:<PAT>@]<host>[:<port>]/<http path>[?<key>=<value>&...]`
    ///
    /// - the user info `token:<PAT>` gives a personal access token (the user name must be
    ///   literally `token`);
    /// - query keys: `catalog`, `schema`, `auth_type` (`authType`), `client_id` (`clientId`),
    ///   `client_secret` (`clientSecret`), `token`, `oauth_redirect_port` (`oauthRedirectPort`);
    ///   an unknown or repeated key is an error, an empty value counts as unset;
    /// - every part is percent-decoded (`%2F` is `/`, `%26` is `&`, `%23` is `#`); `+` is a
    ///   literal plus sign;
    /// - a URL without a path (or with `/` alone) leaves the HTTP path unset.
    ///
    /// ```text
    /// databricks://token:dapi123@adb-123.4.azuredatabricks.net/sql/1.0/warehouses/abc
    /// databricks://adb-123.4.azuredatabricks.net:443/sql/1.0/warehouses/abc?catalog=main&schema=default
    /// databricks://adb-123.4.azuredatabricks.net/sql/1.0/warehouses/abc?authType=oauth-m2m&clientId=my-sp&clientSecret=s%2Bcr%26t
    /// ```
    ///
    /// Errors (kind `Config`) name the part of the URL that is wrong, never a value of it.
    pub(crate) fn from_url(url: &str) -> Result<Settings> {
        const FORMAT: &str =
            "expected databricks://[token:<PAT>@]<host>[:<port>]/<http path>[?<key>=<value>&...]";
        let parsed = Url::parse(url.trim()).map_err(|e| {
            Error::config(format!(
                "the connection URL is not a valid URL ({e}); {FORMAT}"
            ))
        })?;
        if parsed.scheme() != "databricks" {
            return Err(Error::config(format!(
                "the connection URL must start with databricks://; {FORMAT}"
            )));
        }
        if parsed.fragment().is_some() {
            return Err(Error::config(
                "the connection URL has a fragment (a '#'): write '#' in values as %23",
            ));
        }
        let host = match parsed.host_str() {
            Some(h) if !h.is_empty() => decode_part(h, "the host of the connection URL")?,
            _ => {
                return Err(Error::config(format!(
                    "the connection URL has no host; {FORMAT}"
                )))
            }
        };
        let mut settings = Settings {
            host: Some(host),
            port: parsed.port(),
            ..Settings::default()
        };

        let has_user_info = !parsed.username().is_empty() || parsed.password().is_some();
        if has_user_info {
            let user = decode_part(parsed.username(), "the user name of the connection URL")?;
            if user != "token" {
                return Err(Error::config(
                    "the user name of the connection URL must be `token` \
                     (databricks://token:<PAT>@<host>/...)",
                ));
            }
            let token = decode_part(
                parsed.password().unwrap_or_default(),
                "the token of the connection URL",
            )?;
            if token.is_empty() {
                return Err(Error::config(
                    "the connection URL has no token after `token:` (databricks://token:<PAT>@<host>/...)",
                ));
            }
            settings.token = Some(token);
        }

        let path = decode_part(parsed.path(), "the HTTP path of the connection URL")?;
        if !path.is_empty() && path != "/" {
            settings.http_path = Some(path);
        }

        let mut seen = BTreeSet::new();
        let mut values: BTreeMap<&'static str, String> = BTreeMap::new();
        let mut previous: Option<&'static str> = None;
        for pair in parsed.query().unwrap_or_default().split('&') {
            if pair.is_empty() {
                continue;
            }
            let (raw_key, raw_value) = pair.split_once('=').unwrap_or((pair, ""));
            let key = percent_decode(raw_key);
            let setting = key.as_deref().and_then(|k| {
                URL_QUERY_KEYS
                    .iter()
                    .find(|(name, _)| *name == k)
                    .map(|(_, setting)| *setting)
            });
            let Some(setting) = setting else {
                return Err(unknown_query_key(key.as_deref(), previous));
            };
            previous = Some(setting);
            if !seen.insert(setting) {
                return Err(Error::config(format!(
                    "the connection URL gives {setting} more than once"
                )));
            }
            let value = decode_part(
                raw_value,
                &format!("the value of {setting} in the connection URL"),
            )?;
            if !value.is_empty() {
                values.insert(setting, value);
            }
        }
        if let Some(token) = values.remove("token") {
            if settings.token.is_some() {
                return Err(Error::config(
                    "the connection URL gives the token twice: as `token:<PAT>@` and as `token=`",
                ));
            }
            settings.token = Some(token);
        }
        settings.catalog = values.remove("catalog");
        settings.schema = values.remove("schema");
        settings.client_id = values.remove("client_id");
        settings.client_secret = values.remove("client_secret");
        if let Some(v) = values.remove("auth_type") {
            settings.auth_type = Some(AuthType::parse(&v, "auth_type in the connection URL")?);
            settings.auth_type_source = Some(Source::Url);
        }
        if let Some(v) = values.remove("oauth_redirect_port") {
            settings.oauth_redirect_port =
                Some(parse_port(&v, "oauth_redirect_port in the connection URL")?);
        }
        Ok(settings)
    }

    /// Each setting from `self` when set, else from `fallback` (`auth_type` moves together with
    /// `auth_type_source`).
    pub(crate) fn or(self, fallback: Settings) -> Settings {
        let (auth_type, auth_type_source) = if self.auth_type.is_some() {
            (self.auth_type, self.auth_type_source)
        } else {
            (fallback.auth_type, fallback.auth_type_source)
        };
        Settings {
            host: self.host.or(fallback.host),
            port: self.port.or(fallback.port),
            http_path: self.http_path.or(fallback.http_path),
            token: self.token.or(fallback.token),
            client_id: self.client_id.or(fallback.client_id),
            client_secret: self.client_secret.or(fallback.client_secret),
            auth_type,
            auth_type_source,
            catalog: self.catalog.or(fallback.catalog),
            schema: self.schema.or(fallback.schema),
            oauth_redirect_port: self.oauth_redirect_port.or(fallback.oauth_redirect_port),
        }
    }

    /// Checks what an explicit `auth_type` requires of the merged settings: `pat` needs a token,
    /// `oauth-m2m` a client id and a client secret. Without `auth_type` nothing is checked.
    pub(crate) fn validate(&self) -> Result<()> {
        let Some(auth_type) = self.auth_type else {
            return Ok(());
        };
        let from = self
            .auth_type_source
            .as_ref()
            .map(|s| format!(" (set by {s})"))
            .unwrap_or_default();
        let missing = match auth_type {
            AuthType::Pat if self.token.is_none() => "a token",
            AuthType::OAuthM2M => match (&self.client_id, &self.client_secret) {
                (None, None) => "client_id and client_secret",
                (None, Some(_)) => "client_id",
                (Some(_), None) => "client_secret",
                (Some(_), Some(_)) => return Ok(()),
            },
            _ => return Ok(()),
        };
        Err(Error::config(format!(
            "auth_type is {auth_type}{from}, but {missing} is not set"
        )))
    }
}

/// Looks `profile` up in the config file `file`.
fn read_profile(file: &Path, profile: &str) -> Result<ProfileLookup> {
    let text = match std::fs::read_to_string(file) {
        Ok(text) => text,
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => return Ok(ProfileLookup::NoFile),
        Err(e) => {
            return Err(Error::config(format!(
                "the config file {} cannot be read: {e}",
                file.display()
            )))
        }
    };
    // Backslashes are literal, as in the Databricks CLI's parser; quoted values are unquoted.
    let options = ParseOption {
        enabled_escape: false,
        ..ParseOption::default()
    };
    let ini = Ini::load_from_str_opt(&text, options).map_err(|e| {
        Error::config(format!(
            "the config file {} is not valid INI: line {}, column {}: {}",
            file.display(),
            e.line,
            e.col,
            e.msg
        ))
    })?;

    // `DEFAULT` is the `[DEFAULT]` section plus the keys before the first section, which
    // rust-ini keeps in its general section.
    let mut sections: Vec<&Properties> = Vec::new();
    if profile == DEFAULT_PROFILE {
        sections.extend(
            ini.section(None::<String>)
                .filter(|general| !general.is_empty()),
        );
    }
    sections.extend(ini.section_all(Some(profile)));
    if sections.is_empty() {
        return Ok(ProfileLookup::NoProfile);
    }
    // A key written twice takes its last value.
    let mut keys: BTreeMap<String, String> = BTreeMap::new();
    for section in sections {
        for (key, value) in section.iter() {
            keys.insert(key.to_ascii_lowercase(), value.trim().to_string());
        }
    }

    let source = Source::Profile {
        file: file.to_path_buf(),
        profile: profile.to_string(),
    };
    let mut get = |key: &str| keys.remove(key).filter(|v| !v.is_empty());
    let warehouse_id = get("warehouse_id");
    let http_path = match (get("http_path"), warehouse_id) {
        (Some(_), Some(_)) => {
            return Err(Error::config(format!(
                "{source} sets both http_path and warehouse_id: keep one"
            )))
        }
        (Some(path), None) => Some(path),
        (None, Some(id)) => Some(format!("/sql/1.0/warehouses/{id}")),
        (None, None) => None,
    };
    let port = get("port")
        .map(|v| parse_port(&v, &format!("port in {source}")))
        .transpose()?;
    let auth_type = get("auth_type")
        .map(|v| AuthType::parse(&v, &format!("auth_type in {source}")))
        .transpose()?;
    Ok(ProfileLookup::Found(Box::new(Settings {
        host: get("host"),
        port,
        http_path,
        token: get("token"),
        client_id: get("client_id"),
        client_secret: get("client_secret"),
        auth_type,
        auth_type_source: auth_type.map(|_| source),
        ..Settings::default()
    })))
}

/// `file` with a leading `~` or `~/` replaced by the home directory, when it is known.
pub(crate) fn expand_home(file: &str, home: Option<&Path>) -> PathBuf {
    match home {
        Some(home) if file == "~" => home.to_path_buf(),
        Some(home) => match file.strip_prefix("~/") {
            Some(rest) => home.join(rest),
            None => PathBuf::from(file),
        },
        None => PathBuf::from(file),
    }
}

/// A TCP port; `what` names where it was written, for the error.
fn parse_port(value: &str, what: &str) -> Result<u16> {
    value
        .trim()
        .parse::<u16>()
        .map_err(|_| Error::config(format!("{what} is not a port number (0 to 65535)")))
}

/// The error for a query key of a connection URL that is not known. A key right after a secret
/// is not named: it is likely a piece of the secret with an unencoded `&`.
fn unknown_query_key(key: Option<&str>, previous: Option<&'static str>) -> Error {
    const ACCEPTED: &str = "accepted: catalog, schema, auth_type (authType), client_id \
         (clientId), client_secret (clientSecret), token, oauth_redirect_port (oauthRedirectPort)";
    match (key, previous) {
        (_, Some(secret)) if URL_SECRET_KEYS.contains(&secret) => Error::config(format!(
            "the connection URL has an unknown query key after {secret} (not shown, as it may be \
             part of the {secret}): write '&' in values as %26; {ACCEPTED}"
        )),
        (Some(key), _) => Error::config(format!(
            "the connection URL has an unknown query key {key:?}; {ACCEPTED}"
        )),
        (None, _) => Error::config(format!(
            "the connection URL has a query key that is not valid percent-encoding; {ACCEPTED}"
        )),
    }
}

/// `part` percent-decoded; `what` names the part, for the error (which never shows the part).
fn decode_part(part: &str, what: &str) -> Result<String> {
    percent_decode(part).ok_or_else(|| {
        Error::config(format!(
            "{what} is not valid percent-encoding of UTF-8 text (write '%' as %25)"
        ))
    })
}

/// `s` with every `%XX` replaced by its byte; `None` for a bad escape or bytes that are not UTF-8.
/// `+` stays a plus sign.
fn percent_decode(s: &str) -> Option<String> {
    fn hex(b: u8) -> Option<u8> {
        match b {
            b'0'..=b'9' => Some(b - b'0'),
            b'a'..=b'f' => Some(b - b'a' + 10),
            b'A'..=b'F' => Some(b - b'A' + 10),
            _ => None,
        }
    }
    let bytes = s.as_bytes();
    let mut out = Vec::with_capacity(bytes.len());
    let mut i = 0;
    while i < bytes.len() {
        if bytes[i] == b'%' {
            let hi = hex(*bytes.get(i + 1)?)?;
            let lo = hex(*bytes.get(i + 2)?)?;
            out.push(hi * 16 + lo);
            i += 3;
        } else {
            out.push(bytes[i]);
            i += 1;
        }
    }
    String::from_utf8(out).ok()
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::error::ErrorKind;
    use std::collections::HashMap;
    use std::sync::atomic::{AtomicUsize, Ordering};

    const TOKEN: &str = "dapi-secret-token-0123";
    const SECRET: &str = "sp-secret-9876";

    /// A directory under the system temp dir, removed when dropped.
    struct TempDir(PathBuf);

    impl TempDir {
        fn new() -> TempDir {
            static NEXT: AtomicUsize = AtomicUsize::new(0);
            let nanos = std::time::SystemTime::now()
                .duration_since(std::time::UNIX_EPOCH)
                .map(|d| d.as_nanos())
                .unwrap_or_default();
            let dir = std::env::temp_dir().join(format!(
                "databricks-sql-settings-{}-{}-{nanos}",
                std::process::id(),
                NEXT.fetch_add(1, Ordering::Relaxed)
            ));
            std::fs::create_dir_all(&dir).unwrap();
            TempDir(dir)
        }

        fn path(&self) -> &Path {
            &self.0
        }

        fn write(&self, name: &str, text: &str) -> PathBuf {
            let file = self.0.join(name);
            std::fs::write(&file, text).unwrap();
            file
        }
    }

    impl Drop for TempDir {
        fn drop(&mut self) {
            let _ = std::fs::remove_dir_all(&self.0);
        }
    }

    fn env_of(vars: &[(&str, &str)]) -> impl Fn(&str) -> Option<String> {
        let map: HashMap<String, String> = vars
            .iter()
            .map(|(k, v)| (k.to_string(), v.to_string()))
            .collect();
        move |name| map.get(name).cloned()
    }

    fn no_env(_: &str) -> Option<String> {
        None
    }

    #[track_caller]
    fn assert_config_error_without_secrets(e: &Error) {
        assert_eq!(e.kind(), ErrorKind::Config, "{e}");
        let (display, debug) = (e.to_string(), format!("{e:?}"));
        for secret in [TOKEN, SECRET] {
            assert!(!display.contains(secret), "{display}");
            assert!(!debug.contains(secret), "{debug}");
        }
    }

    fn full_profile() -> String {
        format!(
            "[DEFAULT]\nhost = https://profile-host\nport = 8443\nhttp_path = /sql/profile\n\
             token = {TOKEN}\nclient_id = profile-id\nclient_secret = {SECRET}\nauth_type = pat\n"
        )
    }

    #[test]
    fn reads_every_environment_variable() {
        let env = env_of(&[
            ("DATABRICKS_HOST", "https://env-host"),
            ("DATABRICKS_PORT", "8443"),
            ("DATABRICKS_HTTP_PATH", "/sql/1.0/warehouses/env"),
            ("DATABRICKS_TOKEN", TOKEN),
            ("DATABRICKS_CLIENT_ID", "env-id"),
            ("DATABRICKS_CLIENT_SECRET", SECRET),
            ("DATABRICKS_AUTH_TYPE", "oauth-m2m"),
        ]);
        let s = Settings::from_environment(env, None).unwrap();
        assert_eq!(
            s,
            Settings {
                host: Some("https://env-host".into()),
                port: Some(8443),
                http_path: Some("/sql/1.0/warehouses/env".into()),
                token: Some(TOKEN.into()),
                client_id: Some("env-id".into()),
                client_secret: Some(SECRET.into()),
                auth_type: Some(AuthType::OAuthM2M),
                auth_type_source: Some(Source::Environment),
                ..Settings::default()
            }
        );
    }

    #[test]
    fn empty_and_blank_environment_values_are_unset() {
        let names = [
            "DATABRICKS_HOST",
            "DATABRICKS_PORT",
            "DATABRICKS_HTTP_PATH",
            "DATABRICKS_TOKEN",
            "DATABRICKS_CLIENT_ID",
            "DATABRICKS_CLIENT_SECRET",
            "DATABRICKS_AUTH_TYPE",
            CONFIG_FILE_VAR,
            CONFIG_PROFILE_VAR,
        ];
        for value in ["", "  ", "\n"] {
            let vars: Vec<(&str, &str)> = names.iter().map(|n| (*n, value)).collect();
            let s = Settings::from_environment(env_of(&vars), None).unwrap();
            assert_eq!(s, Settings::default(), "value {value:?}");
        }
    }

    #[test]
    fn environment_values_are_trimmed() {
        let env = env_of(&[
            ("DATABRICKS_TOKEN", " dapi1\n"),
            ("DATABRICKS_PORT", " 444 "),
        ]);
        let s = Settings::from_environment(env, None).unwrap();
        assert_eq!(s.token.as_deref(), Some("dapi1"));
        assert_eq!(s.port, Some(444));
    }

    #[test]
    fn environment_wins_over_profile_for_each_key() {
        let dir = TempDir::new();
        dir.write(DEFAULT_CONFIG_FILE, &full_profile());
        type Check = fn(&Settings) -> bool;
        let cases: &[(&str, &str, Check)] = &[
            ("DATABRICKS_HOST", "env-host", |s| {
                s.host.as_deref() == Some("env-host")
            }),
            ("DATABRICKS_PORT", "1443", |s| s.port == Some(1443)),
            ("DATABRICKS_HTTP_PATH", "/env", |s| {
                s.http_path.as_deref() == Some("/env")
            }),
            ("DATABRICKS_TOKEN", "env-token", |s| {
                s.token.as_deref() == Some("env-token")
            }),
            ("DATABRICKS_CLIENT_ID", "env-id", |s| {
                s.client_id.as_deref() == Some("env-id")
            }),
            ("DATABRICKS_CLIENT_SECRET", "env-secret", |s| {
                s.client_secret.as_deref() == Some("env-secret")
            }),
            ("DATABRICKS_AUTH_TYPE", "oauth-u2m", |s| {
                s.auth_type == Some(AuthType::OAuthU2M)
                    && s.auth_type_source == Some(Source::Environment)
            }),
        ];
        for (name, value, check) in cases {
            let s = Settings::from_environment(env_of(&[(name, value)]), Some(dir.path())).unwrap();
            assert!(check(&s), "{name}: {s:?}");
            // Every other setting still comes from the profile.
            assert!(s.host.is_some() && s.port.is_some() && s.http_path.is_some());
            assert!(s.token.is_some() && s.client_id.is_some() && s.client_secret.is_some());
            assert!(s.auth_type.is_some());
        }
    }

    #[test]
    fn profile_fills_settings_the_environment_leaves_unset() {
        let dir = TempDir::new();
        dir.write(DEFAULT_CONFIG_FILE, &full_profile());
        let env = env_of(&[("DATABRICKS_HOST", "env-host"), ("DATABRICKS_TOKEN", "")]);
        let s = Settings::from_environment(env, Some(dir.path())).unwrap();
        let file = dir.path().join(DEFAULT_CONFIG_FILE);
        assert_eq!(
            s,
            Settings {
                host: Some("env-host".into()),
                port: Some(8443),
                http_path: Some("/sql/profile".into()),
                token: Some(TOKEN.into()),
                client_id: Some("profile-id".into()),
                client_secret: Some(SECRET.into()),
                auth_type: Some(AuthType::Pat),
                auth_type_source: Some(Source::Profile {
                    file,
                    profile: DEFAULT_PROFILE.into()
                }),
                ..Settings::default()
            }
        );
    }

    #[test]
    fn reads_the_profile_named_by_databricks_config_profile() {
        let dir = TempDir::new();
        dir.write(
            DEFAULT_CONFIG_FILE,
            "[DEFAULT]\nhost = default-host\n\n[dev]\nhost = dev-host\ntoken = dev-token\n",
        );
        let env = env_of(&[(CONFIG_PROFILE_VAR, "dev")]);
        let s = Settings::from_environment(env, Some(dir.path())).unwrap();
        assert_eq!(s.host.as_deref(), Some("dev-host"));
        assert_eq!(s.token.as_deref(), Some("dev-token"));
    }

    #[test]
    fn reads_the_file_named_by_databricks_config_file() {
        let home = TempDir::new();
        home.write(DEFAULT_CONFIG_FILE, "[DEFAULT]\nhost = home-host\n");
        let elsewhere = TempDir::new();
        let file = elsewhere.write("other.cfg", "[DEFAULT]\nhost = other-host\n");
        let env = env_of(&[(CONFIG_FILE_VAR, file.to_str().unwrap())]);
        let s = Settings::from_environment(env, Some(home.path())).unwrap();
        assert_eq!(s.host.as_deref(), Some("other-host"));
    }

    #[test]
    fn tilde_in_databricks_config_file_is_the_home_directory() {
        let home = TempDir::new();
        home.write("work.cfg", "[DEFAULT]\nhost = work-host\n");
        let env = env_of(&[(CONFIG_FILE_VAR, "~/work.cfg")]);
        let s = Settings::from_environment(env, Some(home.path())).unwrap();
        assert_eq!(s.host.as_deref(), Some("work-host"));
    }

    #[test]
    fn missing_default_config_file_is_no_profile() {
        let home = TempDir::new();
        let env = env_of(&[("DATABRICKS_HOST", "h")]);
        let s = Settings::from_environment(env, Some(home.path())).unwrap();
        assert_eq!(s.host.as_deref(), Some("h"));
        assert_eq!(
            Settings::from_environment(no_env, None).unwrap(),
            Settings::default()
        );
    }

    #[test]
    fn default_profile_missing_from_an_existing_file_is_fine() {
        let home = TempDir::new();
        home.write(DEFAULT_CONFIG_FILE, "[dev]\nhost = dev-host\n");
        let s = Settings::from_environment(no_env, Some(home.path())).unwrap();
        assert_eq!(s, Settings::default());
    }

    #[test]
    fn missing_file_named_by_databricks_config_file_is_an_error_naming_it() {
        let home = TempDir::new();
        let missing = home.path().join("missing.cfg");
        let env = env_of(&[
            (CONFIG_FILE_VAR, missing.to_str().unwrap()),
            ("DATABRICKS_TOKEN", TOKEN),
        ]);
        let e = Settings::from_environment(env, Some(home.path())).unwrap_err();
        assert_config_error_without_secrets(&e);
        assert!(
            e.to_string().contains(&missing.display().to_string()),
            "{e}"
        );
        assert!(e.to_string().contains(CONFIG_FILE_VAR), "{e}");
    }

    #[test]
    fn missing_profile_named_by_databricks_config_profile_is_an_error_naming_it() {
        let home = TempDir::new();
        let file = home.write(DEFAULT_CONFIG_FILE, &full_profile());
        let env = env_of(&[(CONFIG_PROFILE_VAR, "prod"), ("DATABRICKS_TOKEN", TOKEN)]);
        let e = Settings::from_environment(env, Some(home.path())).unwrap_err();
        assert_config_error_without_secrets(&e);
        let msg = e.to_string();
        assert!(msg.contains("[prod]"), "{msg}");
        assert!(msg.contains(&file.display().to_string()), "{msg}");

        // DEFAULT named explicitly must exist too.
        home.write(DEFAULT_CONFIG_FILE, "[dev]\nhost = h\n");
        let env = env_of(&[(CONFIG_PROFILE_VAR, DEFAULT_PROFILE)]);
        let e = Settings::from_environment(env, Some(home.path())).unwrap_err();
        assert!(e.to_string().contains("[DEFAULT]"), "{e}");
    }

    #[test]
    fn named_profile_without_a_config_file_is_an_error() {
        let home = TempDir::new();
        let env = env_of(&[(CONFIG_PROFILE_VAR, "dev")]);
        let e = Settings::from_environment(&env, Some(home.path())).unwrap_err();
        assert_config_error_without_secrets(&e);
        assert!(e.to_string().contains("[dev]"), "{e}");
        assert!(e.to_string().contains(DEFAULT_CONFIG_FILE), "{e}");
        let e = Settings::from_environment(&env, None).unwrap_err();
        assert!(e.to_string().contains("[dev]"), "{e}");
    }

    #[test]
    fn from_profile_errors_name_the_file_and_profile() {
        let dir = TempDir::new();
        let missing = dir.path().join("nope.cfg");
        let e = Settings::from_profile(&missing, "dev").unwrap_err();
        assert_config_error_without_secrets(&e);
        assert!(
            e.to_string().contains(&missing.display().to_string()),
            "{e}"
        );

        let file = dir.write("cfg", &format!("[Dev]\ntoken = {TOKEN}\n"));
        let e = Settings::from_profile(&file, "dev").unwrap_err();
        assert_config_error_without_secrets(&e);
        assert!(e.to_string().contains("[dev]"), "{e}");
        assert!(e.to_string().contains(&file.display().to_string()), "{e}");
    }

    #[test]
    fn profile_section_names_are_case_sensitive() {
        let dir = TempDir::new();
        let file = dir.write("cfg", "[Dev]\nhost = upper\n[dev]\nhost = lower\n");
        let host = |p| Settings::from_profile(&file, p).unwrap().host;
        assert_eq!(host("Dev").as_deref(), Some("upper"));
        assert_eq!(host("dev").as_deref(), Some("lower"));
        assert!(Settings::from_profile(&file, "DEV").is_err());
    }

    #[test]
    fn ini_default_section_is_the_default_profile() {
        let dir = TempDir::new();
        let file = dir.write(
            "cfg",
            &format!("; comment\n[DEFAULT]\nhost = default-host\ntoken = {TOKEN}\n"),
        );
        let s = Settings::from_profile(&file, DEFAULT_PROFILE).unwrap();
        assert_eq!(s.host.as_deref(), Some("default-host"));
        assert_eq!(s.token.as_deref(), Some(TOKEN));
        // `default` is another, case-sensitive, name.
        assert!(Settings::from_profile(&file, "default").is_err());
    }

    #[test]
    fn keys_before_any_section_belong_to_the_default_profile() {
        let dir = TempDir::new();
        let file = dir.write(
            "cfg",
            "host = top-host\ntoken = top-token\n[DEFAULT]\ntoken = section-token\n",
        );
        let s = Settings::from_profile(&file, DEFAULT_PROFILE).unwrap();
        assert_eq!(s.host.as_deref(), Some("top-host"));
        assert_eq!(s.token.as_deref(), Some("section-token"));
    }

    #[test]
    fn named_profiles_do_not_inherit_from_default() {
        let dir = TempDir::new();
        let file = dir.write(
            "cfg",
            "[DEFAULT]\ntoken = default-token\n[dev]\nhost = dev-host\n",
        );
        let s = Settings::from_profile(&file, "dev").unwrap();
        assert_eq!(s.host.as_deref(), Some("dev-host"));
        assert_eq!(s.token, None);
    }

    #[test]
    fn profile_with_oauth_m2m_and_client_credentials() {
        let dir = TempDir::new();
        let file = dir.write(
            "cfg",
            &format!(
                "[sp]\nhost = https://adb-1.2.azuredatabricks.net\nauth_type = OAuth-M2M\n\
                 client_id = my-sp\nclient_secret = {SECRET}\nwarehouse_id = abc\n"
            ),
        );
        let s = Settings::from_profile(&file, "sp").unwrap();
        assert_eq!(s.auth_type, Some(AuthType::OAuthM2M));
        assert_eq!(
            s.auth_type_source,
            Some(Source::Profile {
                file: file.clone(),
                profile: "sp".into()
            })
        );
        assert_eq!(s.client_id.as_deref(), Some("my-sp"));
        assert_eq!(s.client_secret.as_deref(), Some(SECRET));
        assert_eq!(s.http_path.as_deref(), Some("/sql/1.0/warehouses/abc"));
        s.validate().unwrap();
    }

    #[test]
    fn profile_with_both_http_path_and_warehouse_id_is_an_error() {
        let dir = TempDir::new();
        let file = dir.write("cfg", "[p]\nhttp_path = /a\nwarehouse_id = b\n");
        let e = Settings::from_profile(&file, "p").unwrap_err();
        assert!(e.to_string().contains("warehouse_id"), "{e}");
        assert!(e.to_string().contains("[p]"), "{e}");
    }

    #[test]
    fn profile_values_are_read_as_written() {
        let dir = TempDir::new();
        let file = dir.write(
            "cfg",
            "[p]\nHOST = \"quoted-host\"\nhttp_path = /sql\\path\nunknown_key = x\n\
             token =\nclient_id = a=b\n",
        );
        let s = Settings::from_profile(&file, "p").unwrap();
        assert_eq!(
            s.host.as_deref(),
            Some("quoted-host"),
            "key case and quotes"
        );
        assert_eq!(
            s.http_path.as_deref(),
            Some("/sql\\path"),
            "backslash is literal"
        );
        assert_eq!(s.token, None, "empty value is unset");
        assert_eq!(s.client_id.as_deref(), Some("a=b"));
    }

    #[test]
    fn unreadable_ini_is_an_error_naming_the_file() {
        let dir = TempDir::new();
        let file = dir.write("cfg", &format!("[p\ntoken = {TOKEN}\n"));
        let e = Settings::from_profile(&file, "p").unwrap_err();
        assert_config_error_without_secrets(&e);
        assert!(e.to_string().contains(&file.display().to_string()), "{e}");
    }

    #[test]
    fn invalid_port_is_a_config_error() {
        let e =
            Settings::from_environment(env_of(&[("DATABRICKS_PORT", "https")]), None).unwrap_err();
        assert_eq!(e.kind(), ErrorKind::Config);
        assert!(e.to_string().contains("DATABRICKS_PORT"), "{e}");

        let dir = TempDir::new();
        let file = dir.write("cfg", "[p]\nport = 70000\n");
        let e = Settings::from_profile(&file, "p").unwrap_err();
        assert_eq!(e.kind(), ErrorKind::Config);
        assert!(e.to_string().contains("port in profile [p]"), "{e}");

        let e = Settings::from_url("databricks://host:99999/p").unwrap_err();
        assert_eq!(e.kind(), ErrorKind::Config);
        let e = Settings::from_url("databricks://host/p?oauth_redirect_port=x").unwrap_err();
        assert!(e.to_string().contains("oauth_redirect_port"), "{e}");
    }

    #[test]
    fn auth_type_parses_sdk_names_case_insensitively() {
        let cases = [
            ("pat", AuthType::Pat),
            ("PAT", AuthType::Pat),
            ("oauth-m2m", AuthType::OAuthM2M),
            ("OAuth-M2M", AuthType::OAuthM2M),
            ("oauth-u2m", AuthType::OAuthU2M),
            ("databricks-cli", AuthType::OAuthU2M),
            ("External-Browser", AuthType::OAuthU2M),
        ];
        for (text, expected) in cases {
            assert_eq!(text.parse::<AuthType>().unwrap(), expected, "{text}");
        }
        for auth in [AuthType::Pat, AuthType::OAuthM2M, AuthType::OAuthU2M] {
            assert_eq!(auth.to_string().parse::<AuthType>().unwrap(), auth);
        }
    }

    #[test]
    fn unknown_auth_type_is_an_error_listing_accepted_values() {
        for text in ["basic", "oauth_m2m", "azure-cli"] {
            let e = text.parse::<AuthType>().unwrap_err();
            assert_eq!(e.kind(), ErrorKind::Config);
            let msg = e.to_string();
            for accepted in [
                "pat",
                "oauth-m2m",
                "oauth-u2m",
                "databricks-cli",
                "external-browser",
            ] {
                assert!(msg.contains(accepted), "{msg}");
            }
        }
        let e = Settings::from_environment(env_of(&[("DATABRICKS_AUTH_TYPE", "basic")]), None)
            .unwrap_err();
        assert!(e.to_string().contains("DATABRICKS_AUTH_TYPE"), "{e}");
    }

    #[test]
    fn url_token_in_user_info_with_port_and_path() {
        let s = Settings::from_url(&format!(
            "databricks://token:{TOKEN}@adb-1.2.azuredatabricks.net:8443/sql/1.0/warehouses/abc"
        ))
        .unwrap();
        assert_eq!(
            s,
            Settings {
                host: Some("adb-1.2.azuredatabricks.net".into()),
                port: Some(8443),
                http_path: Some("/sql/1.0/warehouses/abc".into()),
                token: Some(TOKEN.into()),
                ..Settings::default()
            }
        );
    }

    #[test]
    fn url_without_user_info_port_or_path() {
        let s = Settings::from_url("databricks://host.example").unwrap();
        assert_eq!(s.host.as_deref(), Some("host.example"));
        assert_eq!((s.port, s.http_path, s.token), (None, None, None));
        let s = Settings::from_url("DATABRICKS://host.example/").unwrap();
        assert_eq!(s.http_path, None);
    }

    #[test]
    fn url_query_keys_in_snake_and_camel_case() {
        for (auth, id, secret) in [
            ("auth_type", "client_id", "client_secret"),
            ("authType", "clientId", "clientSecret"),
        ] {
            let s = Settings::from_url(&format!(
                "databricks://h/p?catalog=main&schema=sales&{auth}=oauth-m2m&{id}=sp&{secret}={SECRET}"
            ))
            .unwrap();
            assert_eq!(s.catalog.as_deref(), Some("main"));
            assert_eq!(s.schema.as_deref(), Some("sales"));
            assert_eq!(s.auth_type, Some(AuthType::OAuthM2M));
            assert_eq!(s.auth_type_source, Some(Source::Url));
            assert_eq!(s.client_id.as_deref(), Some("sp"));
            assert_eq!(s.client_secret.as_deref(), Some(SECRET));
        }
        let s = Settings::from_url(&format!(
            "databricks://h/p?token={TOKEN}&oauthRedirectPort=8020&catalog="
        ))
        .unwrap();
        assert_eq!(s.token.as_deref(), Some(TOKEN));
        assert_eq!(s.oauth_redirect_port, Some(8020));
        assert_eq!(s.catalog, None, "empty value is unset");
    }

    #[test]
    fn url_percent_decodes_every_value() {
        let s = Settings::from_url(
            "databricks://token:p%40ss%2Fw%3Ard@h%2Dx/sql/1.0/warehouses/a%20b\
             ?client_secret=s%2Bcr%26t%3D%23&catalog=my%20catalog&schema=a+b",
        )
        .unwrap();
        assert_eq!(s.token.as_deref(), Some("p@ss/w:rd"));
        assert_eq!(s.host.as_deref(), Some("h-x"));
        assert_eq!(s.http_path.as_deref(), Some("/sql/1.0/warehouses/a b"));
        assert_eq!(s.client_secret.as_deref(), Some("s+cr&t=#"));
        assert_eq!(s.catalog.as_deref(), Some("my catalog"));
        assert_eq!(s.schema.as_deref(), Some("a+b"), "+ is a literal plus");
    }

    #[test]
    fn url_with_another_scheme_is_an_error() {
        for url in [
            format!("https://token:{TOKEN}@h/p"),
            format!("token:{TOKEN}@h/p"),
            "h/p".to_string(),
        ] {
            let e = Settings::from_url(&url).unwrap_err();
            assert_config_error_without_secrets(&e);
        }
        let e = Settings::from_url("jdbc://h/p").unwrap_err();
        assert!(e.to_string().contains("databricks://"), "{e}");
    }

    #[test]
    fn url_unknown_query_key_is_an_error_naming_it() {
        let e = Settings::from_url("databricks://h/p?catalogue=main").unwrap_err();
        assert_eq!(e.kind(), ErrorKind::Config);
        assert!(e.to_string().contains("\"catalogue\""), "{e}");
        assert!(e.to_string().contains("accepted: catalog"), "{e}");
    }

    #[test]
    fn url_unknown_key_after_a_secret_is_not_named() {
        // "sp-secret&9876" written without encoding its '&'.
        let e = Settings::from_url("databricks://h/p?client_secret=sp-secret&9876").unwrap_err();
        let msg = e.to_string();
        assert!(!msg.contains("9876"), "{msg}");
        assert!(msg.contains("%26"), "{msg}");
    }

    #[test]
    fn url_user_name_must_be_token() {
        for url in [
            format!("databricks://admin:{TOKEN}@h/p"),
            format!("databricks://{TOKEN}@h/p"),
            format!("databricks://:{TOKEN}@h/p"),
        ] {
            let e = Settings::from_url(&url).unwrap_err();
            assert_config_error_without_secrets(&e);
            assert!(e.to_string().contains("`token`"), "{e}");
        }
        let e = Settings::from_url("databricks://token@h/p").unwrap_err();
        assert!(e.to_string().contains("no token"), "{e}");
    }

    #[test]
    fn url_setting_given_twice_is_an_error() {
        let e = Settings::from_url(&format!("databricks://token:{TOKEN}@h/p?token={TOKEN}"))
            .unwrap_err();
        assert_config_error_without_secrets(&e);
        let e = Settings::from_url(&format!(
            "databricks://h/p?client_secret={SECRET}&clientSecret={SECRET}"
        ))
        .unwrap_err();
        assert_config_error_without_secrets(&e);
        assert!(
            e.to_string().contains("client_secret more than once"),
            "{e}"
        );
    }

    #[test]
    fn url_errors_never_contain_the_token_or_secret() {
        let bad = [
            format!("databricks://token:{TOKEN}@h:port/p"),
            format!("databricks://token:{TOKEN}#x@h/p"),
            format!("databricks://token:{TOKEN}@h/p#frag"),
            format!("databricks://token:{TOKEN}%zz@h/p"),
            format!("databricks://token:{TOKEN}@/p"),
            format!("databricks://token:{TOKEN}@h/p?client_secret={SECRET}%"),
            format!("databricks://token:{TOKEN}@h/p?client_secret={SECRET}&x=1"),
            format!("databricks://token:{TOKEN}@h/p?clientsecret={SECRET}"),
            format!("databricks://token:{TOKEN}@h/p?authType={SECRET}x"),
            format!("databricks://user:{TOKEN}@h/p?client_secret={SECRET}"),
            format!("ftp://token:{TOKEN}@h/p"),
            format!("databricks://token:{TOKEN}@h/p?{SECRET}"),
        ];
        for url in &bad {
            match Settings::from_url(url) {
                Ok(s) => panic!("{url} was accepted: {s:?}"),
                Err(e) => {
                    assert_eq!(e.kind(), ErrorKind::Config);
                    let (display, debug) = (e.to_string(), format!("{e:?}"));
                    assert!(!display.contains(TOKEN), "{display}");
                    assert!(!debug.contains(TOKEN), "{debug}");
                    // The last case names an unknown key, which is only the secret when the
                    // user wrote the secret as a key.
                    if !url.ends_with(&format!("?{SECRET}")) {
                        assert!(!display.contains(SECRET), "{display}");
                        assert!(!debug.contains(SECRET), "{debug}");
                    }
                }
            }
        }
    }

    #[test]
    fn or_takes_each_setting_from_self_when_set() {
        let high = Settings {
            host: Some("high".into()),
            auth_type: Some(AuthType::Pat),
            auth_type_source: Some(Source::Url),
            ..Settings::default()
        };
        let low = Settings {
            host: Some("low".into()),
            port: Some(1),
            token: Some("t".into()),
            auth_type: Some(AuthType::OAuthU2M),
            auth_type_source: Some(Source::Environment),
            catalog: Some("c".into()),
            ..Settings::default()
        };
        let merged = high.clone().or(low.clone());
        assert_eq!(merged.host.as_deref(), Some("high"));
        assert_eq!(merged.port, Some(1));
        assert_eq!(merged.token.as_deref(), Some("t"));
        assert_eq!(merged.catalog.as_deref(), Some("c"));
        assert_eq!(merged.auth_type, Some(AuthType::Pat));
        assert_eq!(merged.auth_type_source, Some(Source::Url));
        let merged = Settings::default().or(low.clone());
        assert_eq!(merged, low);
    }

    #[test]
    fn url_values_win_over_the_environment() {
        let url = Settings::from_url("databricks://token:url-token@url-host/url-path").unwrap();
        let env = env_of(&[
            ("DATABRICKS_HOST", "env-host"),
            ("DATABRICKS_TOKEN", "env-token"),
            ("DATABRICKS_CLIENT_ID", "env-id"),
        ]);
        let s = Settings::resolve(url, env, None).unwrap();
        assert_eq!(s.host.as_deref(), Some("url-host"));
        assert_eq!(s.token.as_deref(), Some("url-token"));
        assert_eq!(s.http_path.as_deref(), Some("/url-path"));
        assert_eq!(s.client_id.as_deref(), Some("env-id"));
    }

    #[test]
    fn explicit_oauth_m2m_needs_client_id_and_secret() {
        let cases = [
            (None, None, "client_id and client_secret"),
            (Some("id"), None, "client_secret"),
            (None, Some(SECRET), "client_id"),
        ];
        for (id, secret, missing) in cases {
            let s = Settings {
                client_id: id.map(String::from),
                client_secret: secret.map(String::from),
                auth_type: Some(AuthType::OAuthM2M),
                auth_type_source: Some(Source::Environment),
                ..Settings::default()
            };
            let e = s.validate().unwrap_err();
            assert_config_error_without_secrets(&e);
            let msg = e.to_string();
            assert!(msg.contains(&format!("but {missing} is not set")), "{msg}");
            assert!(msg.contains("the environment"), "{msg}");
        }
    }

    #[test]
    fn explicit_pat_needs_a_token() {
        let s = Settings {
            auth_type: Some(AuthType::Pat),
            client_secret: Some(SECRET.into()),
            ..Settings::default()
        };
        let e = s.validate().unwrap_err();
        assert_config_error_without_secrets(&e);
        assert!(e.to_string().contains("a token"), "{e}");
        let u2m = Settings {
            auth_type: Some(AuthType::OAuthU2M),
            ..Settings::default()
        };
        u2m.validate().unwrap();
        Settings::default().validate().unwrap();
    }

    #[test]
    fn resolve_validates_after_merging_every_level() {
        let builder = Settings {
            token: Some(TOKEN.into()),
            ..Settings::default()
        };
        let env = env_of(&[("DATABRICKS_AUTH_TYPE", "pat")]);
        let s = Settings::resolve(builder, &env, None).unwrap();
        assert_eq!(s.auth_type, Some(AuthType::Pat));
        let e = Settings::resolve(Settings::default(), &env, None).unwrap_err();
        assert!(e.to_string().contains("set by the environment"), "{e}");
    }

    #[test]
    fn url_auth_type_wins_and_is_named_in_errors() {
        let builder = Settings {
            auth_type: Some(AuthType::OAuthM2M),
            auth_type_source: Some(Source::Url),
            client_id: Some("id".into()),
            ..Settings::default()
        };
        let env = env_of(&[("DATABRICKS_AUTH_TYPE", "pat"), ("DATABRICKS_TOKEN", TOKEN)]);
        let e = Settings::resolve(builder, env, None).unwrap_err();
        assert_config_error_without_secrets(&e);
        assert_eq!(
            e.message(),
            "auth_type is oauth-m2m (set by the connection URL), but client_secret is not set"
        );
    }

    #[test]
    fn source_names_each_level() {
        let profile = Source::Profile {
            file: PathBuf::from("/home/u/.databrickscfg"),
            profile: "dev".into(),
        };
        assert_eq!(
            profile.to_string(),
            "profile [dev] of /home/u/.databrickscfg"
        );
        assert_eq!(Source::Environment.to_string(), "the environment");
        assert_eq!(Source::Url.to_string(), "the connection URL");
    }

    #[test]
    fn debug_never_prints_the_token_or_secret() {
        let s = Settings {
            host: Some("h".into()),
            token: Some(TOKEN.into()),
            client_id: Some("visible-id".into()),
            client_secret: Some(SECRET.into()),
            ..Settings::default()
        };
        let debug = format!("{s:?} {s:#?}");
        assert!(!debug.contains(TOKEN), "{debug}");
        assert!(!debug.contains(SECRET), "{debug}");
        assert!(debug.contains("<redacted>"), "{debug}");
        assert!(debug.contains("visible-id"), "{debug}");
        let unset = format!("{:?}", Settings::default());
        assert!(!unset.contains("<redacted>"), "{unset}");
    }
}
