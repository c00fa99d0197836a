//! HTTP proxies: the settings ([`ProxyConfig`], [`Proxy`]), from the environment or explicit,
//! and the decision, made once per transport, of which proxy (if any) a target goes through.
//! The connector that goes through it is in [`connector`].

pub(super) mod connector;

#[cfg(any(test, feature = "fuzzing"))]
pub(crate) use connector::{scan_connect_reply, ConnectReply};

use std::fmt;
use std::net::IpAddr;
use std::sync::Arc;

use http::HeaderValue;

use super::client::is_loopback_host;
use crate::error::{Error, Result};

/// Which HTTP proxy the transport's requests go through. Default
/// [`FromEnvironment`](ProxyConfig::FromEnvironment).
///
/// Requests to `https://` hosts go through an HTTP `CONNECT` tunnel (TLS to the host runs
/// inside it, end to end); requests to `http://` hosts (loopback only, such as the mock
/// warehouse) are sent to the proxy in absolute form. One decision serves every request of a
/// client: Thrift calls, CloudFetch downloads, telemetry, feature flags and OAuth.
///
/// ```
/// use databricks_sql::http::{Proxy, ProxyConfig};
///
/// # fn demo() -> databricks_sql::Result<()> {
/// let explicit: ProxyConfig = Proxy::new("http://proxy.corp.example:3128")?
///     .basic_auth("alice", "s3cret")
///     .bypass(["internal.example", "10.0.0.0/8"])
///     .into();
/// let none = ProxyConfig::None;
/// # Ok(()) }
/// ```
#[derive(Debug, Clone, Default)]
#[non_exhaustive]
pub enum ProxyConfig {
    /// The proxy the environment names, read once when the transport is built: `HTTPS_PROXY`
    /// (else `https_proxy`) for `https://` targets, `HTTP_PROXY` (else `http_proxy`) for
    /// `http://` targets, each a URL as [`Proxy::new`] takes it (credentials in it are used
    /// for basic authentication), and `NO_PROXY` (else `no_proxy`), a comma-separated list of
    /// targets reached directly, in the syntax of [`Proxy::bypass`]. Empty variables count as
    /// unset; `ALL_PROXY` is not read; a variable that is not a usable proxy URL (another
    /// scheme such as `https://` or `socks5://`, a path) is ignored with a warning. Loopback
    /// targets (`localhost`, `127.0.0.0/8`, `::1`) are never proxied from the environment.
    /// Default.
    #[default]
    FromEnvironment,
    /// No proxy: every connection goes straight to its target; the environment is not read.
    None,
    /// This proxy for every target, loopback hosts included, except those of its
    /// [bypass list](Proxy::bypass); the environment is not read.
    Explicit(Proxy),
}

impl From<Proxy> for ProxyConfig {
    fn from(proxy: Proxy) -> Self {
        ProxyConfig::Explicit(proxy)
    }
}

/// An HTTP proxy: where it is, the basic credentials it wants (if any), and the targets that
/// bypass it. `Debug` never shows the password.
#[derive(Clone)]
pub struct Proxy {
    /// `host:port` (an IPv6 host in brackets).
    authority: String,
    credentials: Option<Credentials>,
    bypass: Vec<BypassRule>,
}

#[derive(Clone)]
struct Credentials {
    user: String,
    password: String,
}

impl Proxy {
    /// A proxy from its URL: `http://[user:password@]host[:port]` (user and password
    /// percent-encoded; without a scheme `http://` is assumed; the port defaults to 80). Only
    /// `http://` proxies are supported: TLS to the target runs inside the tunnel. Fails with
    /// [`Config`](crate::ErrorKind::Config), without quoting the password, when the URL is not
    /// one.
    pub fn new(url: &str) -> Result<Proxy> {
        Proxy::parse(url).map_err(|reason| {
            Error::config(format!(
                "the proxy URL {} is not usable: {reason}",
                without_credentials(url)
            ))
        })
    }

    fn parse(url: &str) -> std::result::Result<Proxy, String> {
        let url = url.trim();
        let with_scheme = if url.contains("://") {
            url.to_string()
        } else {
            format!("http://{url}")
        };
        let parsed = url::Url::parse(&with_scheme).map_err(|e| e.to_string())?;
        if parsed.scheme() != "http" {
            return Err(format!(
                "only http:// proxies are supported, not {}://",
                parsed.scheme()
            ));
        }
        if !matches!(parsed.path(), "" | "/") || parsed.query().is_some() {
            return Err("a proxy URL has no path or query".to_string());
        }
        let host = match parsed.host() {
            Some(url::Host::Domain(d)) if !d.is_empty() => d.to_string(),
            Some(url::Host::Ipv4(ip)) => ip.to_string(),
            Some(url::Host::Ipv6(ip)) => format!("[{ip}]"),
            _ => return Err("it names no host".to_string()),
        };
        let port = parsed.port_or_known_default().unwrap_or(80);
        let decode = |s: &str| {
            percent_encoding::percent_decode_str(s)
                .decode_utf8()
                .map(|c| c.into_owned())
                .map_err(|_| "its user info is not valid percent-encoded UTF-8".to_string())
        };
        let credentials = if parsed.username().is_empty() && parsed.password().is_none() {
            None
        } else {
            Some(Credentials {
                user: decode(parsed.username())?,
                password: decode(parsed.password().unwrap_or_default())?,
            })
        };
        Ok(Proxy {
            authority: format!("{host}:{port}"),
            credentials,
            bypass: Vec::new(),
        })
    }

    /// Authenticate to the proxy with HTTP basic authentication (`Proxy-Authorization: Basic`),
    /// replacing credentials given in the URL. Default: the URL's, else none.
    pub fn basic_auth(mut self, user: impl Into<String>, password: impl Into<String>) -> Proxy {
        self.credentials = Some(Credentials {
            user: user.into(),
            password: password.into(),
        });
        self
    }

    /// Targets reached directly, added to the list: each entry (entries may also be
    /// comma-separated, as in `NO_PROXY`) is `*` (every target), a host name (`example.com`
    /// matches it and its subdomains; a leading `.` or `*.` means the same), an IP address, or
    /// an IP network in CIDR form (`10.0.0.0/8`), optionally followed by `:port` to match that
    /// port only (`[::1]:8443` for IPv6). Names are matched as written in the URL, without DNS.
    /// Default: none.
    pub fn bypass<I, S>(mut self, targets: I) -> Proxy
    where
        I: IntoIterator<Item = S>,
        S: AsRef<str>,
    {
        for entry in targets {
            self.bypass.extend(BypassRule::parse_list(entry.as_ref()));
        }
        self
    }

    /// What requests through this proxy need: its URI, name and `Proxy-Authorization` value.
    fn route(&self) -> Result<Arc<ProxyRoute>> {
        let uri = format!("http://{}", self.authority)
            .parse::<http::Uri>()
            .map_err(|_| {
                Error::config(format!(
                    "the proxy address {} is not a valid authority",
                    self.authority
                ))
            })?;
        let authorization = match &self.credentials {
            None => None,
            Some(c) => Some(
                crate::auth::basic_header(&c.user, &c.password)
                    .ok_or_else(|| Error::config("the proxy credentials cannot be sent"))?,
            ),
        };
        Ok(Arc::new(ProxyRoute {
            authority: self.authority.clone(),
            uri,
            authorization,
        }))
    }
}

impl fmt::Debug for Proxy {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let mut d = f.debug_struct("Proxy");
        d.field("url", &format_args!("http://{}", self.authority));
        d.field("authenticated", &self.credentials.is_some());
        d.field("bypass", &self.bypass).finish()
    }
}

/// One proxy as the connector uses it.
pub(crate) struct ProxyRoute {
    /// `host:port`, for messages and logs.
    authority: String,
    /// `http://host:port`, what the TCP connector is called with.
    uri: http::Uri,
    /// `Basic <base64>`, marked sensitive.
    authorization: Option<HeaderValue>,
}

impl ProxyRoute {
    /// The proxy as errors name it: `host:port`, never the credentials.
    pub(crate) fn authority(&self) -> &str {
        &self.authority
    }

    /// The `Proxy-Authorization` header value, when credentials are set.
    pub(crate) fn authorization(&self) -> Option<&HeaderValue> {
        self.authorization.as_ref()
    }
}

impl fmt::Debug for ProxyRoute {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("ProxyRoute")
            .field("authority", &self.authority)
            .field("authenticated", &self.authorization.is_some())
            .finish()
    }
}

/// The proxy decision of one transport, made when it is built.
#[derive(Debug, Default)]
pub(crate) struct ProxyRules {
    http: Option<Arc<ProxyRoute>>,
    https: Option<Arc<ProxyRoute>>,
    bypass: Vec<BypassRule>,
    /// Loopback targets are reached directly (proxies from the environment).
    direct_loopback: bool,
}

impl ProxyRules {
    /// The rules of `config`, reading the environment through `env` when it says so.
    pub(crate) fn resolve(
        config: &ProxyConfig,
        env: impl Fn(&str) -> Option<String>,
    ) -> Result<ProxyRules> {
        match config {
            ProxyConfig::None => Ok(ProxyRules::default()),
            ProxyConfig::Explicit(proxy) => {
                let route = proxy.route()?;
                Ok(ProxyRules {
                    http: Some(route.clone()),
                    https: Some(route),
                    bypass: proxy.bypass.clone(),
                    direct_loopback: false,
                })
            }
            ProxyConfig::FromEnvironment => {
                let var = |names: [&'static str; 2]| {
                    names.into_iter().find_map(|name| {
                        env(name)
                            .filter(|v| !v.trim().is_empty())
                            .map(|v| (name, v))
                    })
                };
                // A variable that is not a usable proxy URL (another scheme, a path...) is
                // ignored with a warning rather than failing every client of the process.
                let from_var = |found: Option<(&'static str, String)>| match found {
                    None => Ok(None),
                    Some((name, value)) => match Proxy::parse(&value) {
                        Ok(proxy) => proxy.route().map(Some),
                        Err(reason) => {
                            tracing::warn!(
                                variable = name,
                                proxy = %without_credentials(&value),
                                reason = %reason,
                                "the proxy variable is not a usable proxy URL \
                                 (http://[user:password@]host:port); it is ignored"
                            );
                            Ok(None)
                        }
                    },
                };
                let bypass = var(["NO_PROXY", "no_proxy"])
                    .map(|(_, v)| BypassRule::parse_list(&v))
                    .unwrap_or_default();
                Ok(ProxyRules {
                    http: from_var(var(["HTTP_PROXY", "http_proxy"]))?,
                    https: from_var(var(["HTTPS_PROXY", "https_proxy"]))?,
                    bypass,
                    direct_loopback: true,
                })
            }
        }
    }

    /// The proxy a connection to `target` goes through, or `None` to connect directly.
    pub(crate) fn route(&self, target: &http::Uri) -> Option<&Arc<ProxyRoute>> {
        let route = match target.scheme_str() {
            Some(s) if s.eq_ignore_ascii_case("https") => self.https.as_ref(),
            Some(s) if s.eq_ignore_ascii_case("http") => self.http.as_ref(),
            _ => None,
        }?;
        let host = target.host()?;
        if self.direct_loopback && is_loopback_host(host) {
            return None;
        }
        let port = target.port_u16().unwrap_or(match target.scheme_str() {
            Some(s) if s.eq_ignore_ascii_case("http") => 80,
            _ => 443,
        });
        let target = Target::new(host, port);
        if self.bypass.iter().any(|rule| rule.matches(&target)) {
            return None;
        }
        Some(route)
    }
}

/// A target host as bypass rules see it.
struct Target {
    /// Lower case, without brackets or a trailing dot.
    name: String,
    ip: Option<IpAddr>,
    port: u16,
}

impl Target {
    fn new(host: &str, port: u16) -> Target {
        let bare = host
            .strip_prefix('[')
            .and_then(|h| h.strip_suffix(']'))
            .unwrap_or(host);
        let name = bare.trim_end_matches('.').to_ascii_lowercase();
        Target {
            ip: name.parse().ok(),
            name,
            port,
        }
    }
}

/// One entry of a bypass list (`NO_PROXY`).
#[derive(Debug, Clone, PartialEq, Eq)]
enum BypassRule {
    /// `*`: every target.
    All,
    /// A host name and its subdomains.
    Domain { name: String, port: Option<u16> },
    /// An address, or a network (`prefix` bits).
    Ip {
        addr: IpAddr,
        prefix: u8,
        port: Option<u16>,
    },
}

impl BypassRule {
    /// The rules of a comma-separated list; empty entries are skipped, and an entry that is not
    /// an address, a network or a port-qualified name is taken as a host name.
    fn parse_list(list: &str) -> Vec<BypassRule> {
        list.split(',')
            .map(str::trim)
            .filter(|e| !e.is_empty())
            .map(BypassRule::parse)
            .collect()
    }

    fn parse(entry: &str) -> BypassRule {
        if entry == "*" {
            return BypassRule::All;
        }
        let (host, port) = split_port(entry);
        let host = host
            .strip_prefix('[')
            .and_then(|h| h.strip_suffix(']'))
            .unwrap_or(host);
        if let Some((addr, bits)) = host.split_once('/') {
            if let (Ok(addr), Ok(prefix)) = (addr.parse::<IpAddr>(), bits.parse::<u8>()) {
                let max = if addr.is_ipv4() { 32 } else { 128 };
                if prefix <= max {
                    return BypassRule::Ip { addr, prefix, port };
                }
            }
        }
        if let Ok(addr) = host.parse::<IpAddr>() {
            let prefix = if addr.is_ipv4() { 32 } else { 128 };
            return BypassRule::Ip { addr, prefix, port };
        }
        let name = host
            .strip_prefix("*.")
            .or_else(|| host.strip_prefix('.'))
            .unwrap_or(host)
            .trim_end_matches('.')
            .to_ascii_lowercase();
        BypassRule::Domain { name, port }
    }

    fn matches(&self, target: &Target) -> bool {
        let port_ok = |port: &Option<u16>| port.is_none_or(|p| p == target.port);
        match self {
            BypassRule::All => true,
            BypassRule::Domain { name, port } => {
                port_ok(port)
                    && !name.is_empty()
                    && (target.name == *name
                        || target
                            .name
                            .strip_suffix(name.as_str())
                            .is_some_and(|rest| rest.ends_with('.')))
            }
            BypassRule::Ip { addr, prefix, port } => {
                port_ok(port) && target.ip.is_some_and(|ip| in_network(ip, *addr, *prefix))
            }
        }
    }
}

/// `host:port` split at a numeric port (a bare IPv6 address has no port: `::1` stays whole).
fn split_port(entry: &str) -> (&str, Option<u16>) {
    if entry.starts_with('[') {
        if let Some((host, rest)) = entry.split_once(']') {
            let port = rest.strip_prefix(':').and_then(|p| p.parse().ok());
            return (&entry[..host.len() + 1], port);
        }
        return (entry, None);
    }
    match entry.rsplit_once(':') {
        Some((host, port)) if !host.contains(':') => match port.parse() {
            Ok(port) => (host, Some(port)),
            Err(_) => (entry, None),
        },
        _ => (entry, None),
    }
}

/// Whether `ip` is in the network `net`/`prefix` (IPv4-mapped IPv6 addresses count as IPv4).
fn in_network(ip: IpAddr, net: IpAddr, prefix: u8) -> bool {
    let canonical = |ip: IpAddr| match ip {
        IpAddr::V6(v6) => v6.to_ipv4_mapped().map_or(ip, IpAddr::V4),
        v4 => v4,
    };
    match (canonical(ip), net) {
        (IpAddr::V4(ip), IpAddr::V4(net)) => {
            let mask = u32::MAX.checked_shl(32 - u32::from(prefix)).unwrap_or(0);
            u32::from(ip) & mask == u32::from(net) & mask
        }
        (IpAddr::V6(ip), IpAddr::V6(net)) => {
            let mask = u128::MAX.checked_shl(128 - u32::from(prefix)).unwrap_or(0);
            u128::from(ip) & mask == u128::from(net) & mask
        }
        _ => false,
    }
}

#[cfg(test)]
mod tests;

/// A proxy URL as errors and logs show it: its scheme and what follows the last `@` (the
/// credentials, whatever characters they hold, are left out).
fn without_credentials(url: &str) -> String {
    let url = url.trim();
    let (scheme, rest) = match url.split_once("://") {
        Some((scheme, rest)) => (format!("{scheme}://"), rest),
        None => (String::new(), url),
    };
    let host = rest.rsplit_once('@').map_or(rest, |(_, host)| host);
    format!("{scheme}{host}")
}
