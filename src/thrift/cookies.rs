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
        // An attribute whose value does not parse is ignored (an earlier one stands).
        if key.eq_ignore_ascii_case("max-age") {
            if let Ok(secs) = val.trim().parse::<i64>() {
                max_age = Some(secs);
            }
        } else if key.eq_ignore_ascii_case("expires") {
            if let Some(at) = parse_cookie_date(val) {
                expires = Some(at);
            }
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

/// An `Expires` date read the way RFC 6265 (section 5.1.1) reads it, which takes every form
/// servers write: IMF-fixdate (`Sun, 06 Nov 1994 08:49:37 GMT`), RFC 850
/// (`Sunday, 06-Nov-94 08:49:37 GMT`), the Netscape form with dashes and a four-digit year
/// (`Thu, 01-Jan-1970 00:00:10 GMT`, as Java servlet containers write it) and asctime
/// (`Sun Nov  6 08:49:37 1994`). The date is split at delimiters and its parts are
/// recognized by shape, in any order: the first `h:m:s` is the time, then one or two digits the
/// day, a month's first three letters the month, two to four digits the year (70-99 are
/// 1970-1999, 0-69 are 2000-2069). `None` when a part is missing or out of range (the
/// attribute is then ignored).
fn parse_cookie_date(text: &str) -> Option<SystemTime> {
    let delimiter = |c: char| matches!(c, '\t' | ' '..='/' | ';'..='@' | '['..='`' | '{'..='~');
    // How many ASCII digits `token` starts with, when that is `min..=max` of them.
    let digits = |token: &str, min: usize, max: usize| -> Option<u32> {
        let n = token.bytes().take_while(u8::is_ascii_digit).count();
        (min..=max).contains(&n).then(|| token[..n].parse().ok())?
    };
    let time = |token: &str| -> Option<(u32, u32, u32)> {
        // Hour and minute are digits only; the second may be followed by a non-digit.
        fn whole(field: &str) -> Option<&str> {
            field.bytes().all(|b| b.is_ascii_digit()).then_some(field)
        }
        let mut fields = token.splitn(3, ':');
        let hour = digits(whole(fields.next()?)?, 1, 2)?;
        let minute = digits(whole(fields.next()?)?, 1, 2)?;
        let second = digits(fields.next()?, 1, 2)?;
        Some((hour, minute, second))
    };
    const MONTHS: [&str; 12] = [
        "jan", "feb", "mar", "apr", "may", "jun", "jul", "aug", "sep", "oct", "nov", "dec",
    ];
    let month = |token: &str| -> Option<u32> {
        let prefix = token.get(..3)?;
        let i = MONTHS.iter().position(|m| m.eq_ignore_ascii_case(prefix))?;
        u32::try_from(i + 1).ok()
    };
    let (mut found_time, mut found_day, mut found_month, mut found_year) = (None, None, None, None);
    for token in text.split(delimiter).filter(|t| !t.is_empty()) {
        if found_time.is_none() {
            if let Some(t) = time(token) {
                found_time = Some(t);
                continue;
            }
        }
        if found_day.is_none() {
            if let Some(d) = digits(token, 1, 2) {
                found_day = Some(d);
                continue;
            }
        }
        if found_month.is_none() {
            if let Some(m) = month(token) {
                found_month = Some(m);
                continue;
            }
        }
        if found_year.is_none() {
            if let Some(y) = digits(token, 2, 4) {
                found_year = Some(y);
            }
        }
    }
    let (hour, minute, second) = found_time?;
    let year = match found_year? {
        y @ 70..=99 => y + 1900,
        y @ 0..=69 => y + 2000,
        y => y,
    };
    if year < 1601 || hour > 23 || minute > 59 || second > 59 {
        return None;
    }
    let at = chrono::NaiveDate::from_ymd_opt(i32::try_from(year).ok()?, found_month?, found_day?)?
        .and_hms_opt(hour, minute, second)?
        .and_utc()
        .timestamp();
    match u64::try_from(at) {
        Ok(after) => SystemTime::UNIX_EPOCH.checked_add(Duration::from_secs(after)),
        Err(_) => SystemTime::UNIX_EPOCH.checked_sub(Duration::from_secs(at.unsigned_abs())),
    }
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

    #[test]
    fn expires_dates_are_read_in_every_form_servers_write() {
        let at = |text: &str| {
            parse_cookie_date(text).map(|t| t.duration_since(SystemTime::UNIX_EPOCH).unwrap())
        };
        let nov_6_1994 = Some(Duration::from_secs(784_111_777));
        for form in [
            "Sun, 06 Nov 1994 08:49:37 GMT",
            "Sunday, 06-Nov-94 08:49:37 GMT",
            "Sun, 06-Nov-1994 08:49:37 GMT",
            "Sun Nov  6 08:49:37 1994",
            " 6 nOvEmBeR 1994 8:49:37 ",
        ] {
            assert_eq!(at(form), nov_6_1994, "{form}");
        }
        assert_eq!(
            at("Thu, 01-Jan-1970 00:00:10 GMT"),
            Some(Duration::from_secs(10))
        );
        assert_eq!(
            at("Wed, 01 Jan 2031 00:00:00 GMT"),
            Some(Duration::from_secs(1_924_992_000))
        );
        // Two-digit years: 70-99 are the 1900s, 0-69 the 2000s.
        assert_eq!(
            at("01-Jan-69 00:00:00 GMT"),
            Some(Duration::from_secs(3_124_224_000))
        );
        assert_eq!(at("01-Jan-70 00:00:00 GMT"), Some(Duration::ZERO));
        for bad in [
            "",
            "tomorrow",
            "Sun, 06 Nov 1994 GMT",
            "Sun, 31 Nov 1994 08:49:37 GMT",
            "Sun, 06 Nov 1994 24:00:00 GMT",
            "Sun, 06 Nov 1600 08:49:37 GMT",
            "Sun, 06 Foo 1994 08:49:37 GMT",
            "Sun, 06 Nov 1994 08:490:37 GMT",
            "Sun, 06 Nov 1994 1a:49:37 GMT",
            "Sun, 06 Nov 1994 08:4b:37 GMT",
        ] {
            assert_eq!(at(bad), None, "{bad:?}");
        }
    }

    #[test]
    fn a_netscape_expires_in_the_past_deletes_the_cookie() {
        let jar = CookieJar::default();
        jar.store(&headers(&["a=1", "b=2"]));
        jar.store(&headers(&[
            "a=; Path=/; Expires=Thu, 01-Jan-1970 00:00:10 GMT",
        ]));
        assert_eq!(jar.header().unwrap(), "b=2");
        jar.store(&headers(&["c=3; Expires=Fri, 31-Dec-9999 23:59:59 GMT"]));
        assert_eq!(jar.header().unwrap(), "b=2; c=3");
        // A later Expires that does not parse leaves the earlier one.
        jar.store(&headers(&[
            "b=; Expires=Thu, 01-Jan-1970 00:00:10 GMT; Expires=soon",
        ]));
        assert_eq!(jar.header().unwrap(), "c=3");
    }
}
