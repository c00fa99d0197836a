//! The cookies a server sets on Thrift replies (`Set-Cookie`), sent back (`Cookie`) on every
//! later call to the same endpoint. HiveServer2's HTTP transport sets an authentication cookie
//! (`hive.server2.auth`) after the first authenticated request so that later requests need not
//! be authenticated again; load balancers set affinity cookies the same way.
//!
//! The jar serves one endpoint (one host), so `Domain` and `Path` are not needed to choose
//! cookies; only successful replies are read (a `Set-Cookie` on an HTTP error is not kept); a cookie is removed when the server expires it (`Max-Age` of zero or less, or an
//! `Expires` date in the past) and expires on its own after its `Max-Age` or `Expires`. Cookie
//! values are credentials: they are never logged, and the header sent is marked sensitive.

use std::sync::Mutex;
use std::time::{Duration, SystemTime};

use http::header::{HeaderMap, HeaderValue, SET_COOKIE};

/// At most this many cookies are kept (a server setting more is misbehaving); the oldest go
/// first.
const MAX_COOKIES: usize = 32;

/// At most this many bytes of cookie names and values are kept in all.
const MAX_COOKIE_BYTES: usize = 16 * 1024;

#[derive(Debug, Clone)]
struct Cookie {
    name: String,
    value: String,
    /// When the server said it expires, if it did.
    expires: Option<SystemTime>,
}

/// The cookies of one endpoint.
#[derive(Default)]
pub(crate) struct CookieJar {
    cookies: Mutex<Vec<Cookie>>,
}

impl std::fmt::Debug for CookieJar {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        let names: Vec<String> = self.lock().iter().map(|c| c.name.clone()).collect();
        f.debug_struct("CookieJar").field("names", &names).finish()
    }
}

impl CookieJar {
    fn lock(&self) -> std::sync::MutexGuard<'_, Vec<Cookie>> {
        // The list stays consistent under any panic (whole-element pushes and removals only).
        self.cookies.lock().unwrap_or_else(|e| e.into_inner())
    }

    /// The `Cookie` header for the next request (`name=value; name2=value2`), `None` when the
    /// jar holds no live cookie.
    pub(crate) fn header(&self) -> Option<HeaderValue> {
        let now = SystemTime::now();
        let mut cookies = self.lock();
        cookies.retain(|c| c.expires.is_none_or(|at| at > now));
        if cookies.is_empty() {
            return None;
        }
        let text = cookies
            .iter()
            .map(|c| format!("{}={}", c.name, c.value))
            .collect::<Vec<_>>()
            .join("; ");
        drop(cookies);
        let mut value = HeaderValue::from_str(&text).ok()?;
        value.set_sensitive(true);
        Some(value)
    }

    /// Takes in the `Set-Cookie` headers of a reply. Headers that do not parse are ignored
    /// (logged at debug, by cookie name only).
    pub(crate) fn store(&self, headers: &HeaderMap) {
        let mut set = headers.get_all(SET_COOKIE).iter().peekable();
        if set.peek().is_none() {
            return;
        }
        let now = SystemTime::now();
        let mut cookies = self.lock();
        for header in set {
            let Some(cookie) = header.to_str().ok().and_then(|h| parse(h, now)) else {
                tracing::debug!("a Set-Cookie header the driver cannot read was ignored");
                continue;
            };
            if cookie.name.len() + cookie.value.len() > MAX_COOKIE_BYTES {
                // Kept, it would push every other cookie out.
                tracing::debug!(name = %cookie.name, "an oversized cookie was ignored");
                continue;
            }
            cookies.retain(|c| c.name != cookie.name);
            if cookie.expires.is_some_and(|at| at <= now) {
                // The server expires (deletes) the cookie.
                continue;
            }
            cookies.push(cookie);
        }
        while cookies.len() > MAX_COOKIES
            || cookies
                .iter()
                .map(|c| c.name.len() + c.value.len())
                .sum::<usize>()
                > MAX_COOKIE_BYTES
        {
            cookies.remove(0);
        }
    }
}

/// One `Set-Cookie` value: `name=value` then attributes; only `Max-Age` (which wins) and
/// `Expires` matter here. `None` when there is no `=` or the name is empty or not a token.
fn parse(header: &str, now: SystemTime) -> Option<Cookie> {
    let mut parts = header.split(';');
    let (name, value) = parts.next()?.split_once('=')?;
    let name = name.trim();
    let value = value.trim();
    let token = |c: char| c.is_ascii_graphic() && !"()<>@,;:\\\"/[]?={}".contains(c);
    if name.is_empty() || !name.chars().all(token) {
        return None;
    }
    let mut max_age = None;
    let mut expires = None;
    for attribute in parts {
        let (key, val) = attribute.split_once('=').unwrap_or((attribute, ""));
        let key = key.trim();
        if key.eq_ignore_ascii_case("max-age") {
            max_age = val.trim().parse::<i64>().ok();
        } else if key.eq_ignore_ascii_case("expires") {
            expires = httpdate::parse_http_date(val.trim()).ok();
        }
    }
    let expires = match max_age {
        Some(secs) if secs <= 0 => Some(SystemTime::UNIX_EPOCH),
        Some(secs) => now.checked_add(Duration::from_secs(secs.unsigned_abs())),
        None => expires,
    };
    Some(Cookie {
        name: name.to_string(),
        value: value.to_string(),
        expires,
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    fn headers(set: &[&str]) -> HeaderMap {
        let mut h = HeaderMap::new();
        for v in set {
            h.append(SET_COOKIE, HeaderValue::from_str(v).unwrap());
        }
        h
    }

    #[test]
    fn an_empty_jar_sends_no_cookie_header() {
        let jar = CookieJar::default();
        assert!(jar.header().is_none());
        jar.store(&HeaderMap::new());
        assert!(jar.header().is_none());
    }

    #[test]
    fn cookies_set_are_sent_back_and_a_new_value_replaces_the_old() {
        let jar = CookieJar::default();
        jar.store(&headers(&[
            "hive.server2.auth=cu=alice&rn=1&s=abc; Path=/; HttpOnly; Max-Age=86400",
            "lb=node-2",
        ]));
        let h = jar.header().unwrap();
        assert_eq!(h, "hive.server2.auth=cu=alice&rn=1&s=abc; lb=node-2");
        assert!(h.is_sensitive());
        jar.store(&headers(&["hive.server2.auth=second"]));
        assert_eq!(jar.header().unwrap(), "lb=node-2; hive.server2.auth=second");
    }

    #[test]
    fn the_server_deletes_a_cookie_with_max_age_zero_or_a_past_expiry() {
        let jar = CookieJar::default();
        jar.store(&headers(&["a=1", "b=2", "c=3"]));
        jar.store(&headers(&[
            "a=; Max-Age=0",
            "b=x; Expires=Thu, 01 Jan 1970 00:00:00 GMT",
        ]));
        assert_eq!(jar.header().unwrap(), "c=3");
        // Max-Age wins over Expires.
        jar.store(&headers(&[
            "c=4; Max-Age=60; Expires=Thu, 01 Jan 1970 00:00:00 GMT",
        ]));
        assert_eq!(jar.header().unwrap(), "c=4");
    }

    #[test]
    fn an_expired_cookie_is_no_longer_sent() {
        let jar = CookieJar::default();
        jar.store(&headers(&["a=1"]));
        jar.lock()[0].expires = Some(SystemTime::now() - Duration::from_secs(1));
        assert!(jar.header().is_none());
    }

    #[test]
    fn unreadable_set_cookie_headers_are_ignored() {
        let jar = CookieJar::default();
        jar.store(&headers(&[
            "no-equals-sign",
            "=value",
            "bad name=1",
            "ok=1",
        ]));
        assert_eq!(jar.header().unwrap(), "ok=1");
    }

    #[test]
    fn the_jar_is_bounded() {
        let jar = CookieJar::default();
        for i in 0..100 {
            jar.store(&headers(&[&format!("c{i}={i}")]));
        }
        assert_eq!(jar.lock().len(), MAX_COOKIES);
        assert!(jar.header().unwrap().to_str().unwrap().ends_with("c99=99"));
        jar.store(&headers(&[&format!("big={}", "x".repeat(20_000))]));
        let total: usize = jar
            .lock()
            .iter()
            .map(|c| c.name.len() + c.value.len())
            .sum();
        assert!(total <= MAX_COOKIE_BYTES, "{total}");
    }

    #[test]
    fn debug_names_cookies_without_their_values() {
        let jar = CookieJar::default();
        jar.store(&headers(&["hive.server2.auth=secret-value"]));
        let text = format!("{jar:?}");
        assert!(text.contains("hive.server2.auth") && !text.contains("secret-value"));
    }
}
