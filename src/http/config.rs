//! Settings of the HTTP transport ([`HttpConfig`], [`TlsRoots`]) and the driver's `User-Agent`.

use std::time::Duration;

use super::proxy::ProxyConfig;
use super::tls::{ClientCertificate, Pem};
use crate::error::{Error, Result};

/// Which certificate authorities the transport trusts (with
/// [`HttpConfig::extra_root_certificates`] added to them). Certificates are verified unless
/// [`HttpConfig::danger_accept_invalid_certificates`] is set.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
#[non_exhaustive]
pub enum TlsRoots {
    /// Mozilla's root certificates, compiled into the binary (the `webpki-roots` crate). Default.
    #[default]
    Webpki,
    /// The operating system's certificate store, read once when the transport is built
    /// (`rustls-native-certs`; honours `SSL_CERT_FILE` / `SSL_CERT_DIR`). An empty store is a
    /// configuration error unless extra root certificates are given. Needs the cargo feature
    /// `native-roots`.
    #[cfg(feature = "native-roots")]
    Native,
}

/// Settings of the HTTP transport ([`HyperTransport`](super::HyperTransport)).
///
/// Start from [`HttpConfig::default()`] and change what you need:
///
/// ```
/// use std::time::Duration;
/// use databricks_sql::http::HttpConfig;
///
/// let mut config = HttpConfig::default();
/// config.connect_timeout = Duration::from_secs(10);
/// config.user_agent_entry = Some("my-app/1.2".to_string());
/// ```
#[derive(Debug, Clone)]
#[non_exhaustive]
pub struct HttpConfig {
    /// How long establishing a connection may take: DNS, TCP connect, the `CONNECT` exchange
    /// with a proxy and the TLS handshake. Default 30 s.
    pub connect_timeout: Duration,
    /// How long one attempt of a request may take, from sending it to having read the whole
    /// response body (a request's own [`HttpRequest::timeout`](super::HttpRequest::timeout)
    /// overrides it). Default 900 s, like the 15-minute socket timeouts of the peer drivers:
    /// the server may hold a request for a while before it answers.
    pub request_timeout: Duration,
    /// How long an idle pooled connection is kept before it is closed. Default 90 s.
    pub pool_idle_timeout: Duration,
    /// How many idle connections are kept per host. Default 32.
    pub pool_max_idle_per_host: usize,
    /// Text appended to the `User-Agent` in parentheses, naming the application, e.g.
    /// `my-app/1.2` gives `databricks-sql-rust/<version> (my-app/1.2)`. Must not contain control
    /// characters. Default `None`.
    pub user_agent_entry: Option<String>,
    /// Which certificate authorities are trusted. Default [`TlsRoots::Webpki`]. TLS 1.2 and 1.3
    /// are spoken, nothing older (rustls implements no older version).
    pub tls_roots: TlsRoots,
    /// Certificate authorities trusted in addition to [`tls_roots`](Self::tls_roots), e.g. the
    /// private CA of a TLS-inspecting corporate gateway: each [`Pem`] holds one or more
    /// `CERTIFICATE` blocks. A file that cannot be read, or that holds no certificate, is a
    /// [`Config`](crate::ErrorKind::Config) error when the transport is built. Default none.
    pub extra_root_certificates: Vec<Pem>,
    /// The certificate and key presented when a server asks for one (mutual TLS). Default none.
    pub client_certificate: Option<ClientCertificate>,
    /// Accept any server certificate: expired, self-signed, for another name. **For development
    /// only**: anyone on the network path can then read and change the traffic, tokens included.
    /// A transport built with it logs a warning (`tracing`, level WARN) once. Default false.
    pub danger_accept_invalid_certificates: bool,
    /// Which HTTP proxy requests go through: see [`ProxyConfig`]. Default
    /// [`ProxyConfig::FromEnvironment`] (`HTTPS_PROXY`, `HTTP_PROXY`, `NO_PROXY`, read when the
    /// transport is built; loopback hosts are never proxied from the environment).
    pub proxy: ProxyConfig,
    /// The largest response body the transport reads, in bytes; a larger one is a protocol error.
    /// A guard against a broken server, not a limit on results (those come in many replies).
    /// Default 1 GiB.
    pub max_response_bytes: usize,
}

impl Default for HttpConfig {
    fn default() -> Self {
        HttpConfig {
            connect_timeout: Duration::from_secs(30),
            request_timeout: Duration::from_secs(900),
            pool_idle_timeout: Duration::from_secs(90),
            pool_max_idle_per_host: 32,
            user_agent_entry: None,
            tls_roots: TlsRoots::Webpki,
            extra_root_certificates: Vec::new(),
            client_certificate: None,
            danger_accept_invalid_certificates: false,
            proxy: ProxyConfig::FromEnvironment,
            max_response_bytes: 1 << 30,
        }
    }
}

impl HttpConfig {
    /// Checks the settings that could otherwise only fail later, on the wire.
    pub(crate) fn validate(&self) -> Result<()> {
        if self.connect_timeout.is_zero() {
            return Err(Error::config(
                "the connect timeout must be greater than zero",
            ));
        }
        if self.request_timeout.is_zero() {
            return Err(Error::config(
                "the request timeout must be greater than zero",
            ));
        }
        if self.max_response_bytes == 0 {
            return Err(Error::config(
                "the maximum response size must be greater than zero",
            ));
        }
        if let Some(entry) = &self.user_agent_entry {
            validate_user_agent_entry(entry)?;
        }
        Ok(())
    }
}

/// The driver's name as it appears in the `User-Agent`.
const DRIVER_NAME: &str = "databricks-sql-rust";

/// The `User-Agent` the driver sends: `databricks-sql-rust/<version>`, followed by
/// ` (<entry>)` when a user agent entry is set. Validate the entry first
/// ([`HttpConfig::validate`]): this function does not reject anything.
pub(crate) fn user_agent(entry: Option<&str>) -> String {
    let base = format!("{DRIVER_NAME}/{}", env!("CARGO_PKG_VERSION"));
    match entry.map(str::trim).filter(|e| !e.is_empty()) {
        Some(entry) => format!("{base} ({entry})"),
        None => base,
    }
}

/// Rejects a user agent entry that could not be sent in a header (or could smuggle one).
fn validate_user_agent_entry(entry: &str) -> Result<()> {
    if entry.chars().any(char::is_control) {
        return Err(Error::config(
            "the user agent entry contains control characters",
        ));
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::ErrorKind;

    #[test]
    fn user_agent_is_driver_name_and_version() {
        assert_eq!(
            user_agent(None),
            format!("databricks-sql-rust/{}", env!("CARGO_PKG_VERSION"))
        );
    }

    #[test]
    fn user_agent_appends_entry_in_parentheses() {
        assert_eq!(
            user_agent(Some("my-app/1.2")),
            format!(
                "databricks-sql-rust/{} (my-app/1.2)",
                env!("CARGO_PKG_VERSION")
            )
        );
        assert_eq!(user_agent(Some("  ")), user_agent(None));
    }

    #[test]
    fn user_agent_entry_with_control_characters_is_a_config_error() {
        for bad in ["app\r\nX-Evil: 1", "tab\there", "nul\0"] {
            let config = HttpConfig {
                user_agent_entry: Some(bad.to_string()),
                ..HttpConfig::default()
            };
            let err = config.validate().err().map(|e| e.kind());
            assert_eq!(err, Some(ErrorKind::Config), "{bad:?}");
        }
    }

    #[test]
    fn defaults_are_as_documented() {
        let c = HttpConfig::default();
        assert_eq!(c.connect_timeout, Duration::from_secs(30));
        assert_eq!(c.request_timeout, Duration::from_secs(900));
        assert_eq!(c.pool_idle_timeout, Duration::from_secs(90));
        assert_eq!(c.pool_max_idle_per_host, 32);
        assert_eq!(c.user_agent_entry, None);
        assert_eq!(c.tls_roots, TlsRoots::Webpki);
        assert!(c.extra_root_certificates.is_empty());
        assert!(c.client_certificate.is_none());
        assert!(!c.danger_accept_invalid_certificates);
        assert!(matches!(c.proxy, ProxyConfig::FromEnvironment));
        assert_eq!(c.max_response_bytes, 1 << 30);
        assert!(c.validate().is_ok());
    }

    #[test]
    fn zero_timeouts_and_zero_size_limit_are_rejected() {
        let zero = Duration::ZERO;
        let configs = [
            HttpConfig {
                connect_timeout: zero,
                ..HttpConfig::default()
            },
            HttpConfig {
                request_timeout: zero,
                ..HttpConfig::default()
            },
            HttpConfig {
                max_response_bytes: 0,
                ..HttpConfig::default()
            },
        ];
        for c in configs {
            assert_eq!(
                c.validate().err().map(|e| e.kind()),
                Some(ErrorKind::Config)
            );
        }
    }
}
