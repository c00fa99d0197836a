//! The redaction pass every error message goes through before telemetry keeps it: SQL sections
//! cut, URL query strings and user info dropped, bearer tokens, `token=`/`password=`-style
//! values, access-token shapes (`dapi…`, JWTs) replaced, and the result bounded in length.

/// Longest message telemetry keeps, in characters (the marker of a cut included).
pub(crate) const MAX_MESSAGE_CHARS: usize = 1024;

const REDACTED: &str = "[REDACTED]";
const TRUNCATED: &str = "…[truncated]";

/// Keys whose values are secrets when they appear as `key=value` or `key: value`.
const SECRET_KEYS: [&str; 9] = [
    "token",
    "password",
    "passwd",
    "pwd",
    "secret",
    "apikey",
    "api_key",
    "authorization",
    "credential",
];

/// `message` with everything that could be a secret or SQL text removed, at most
/// [`MAX_MESSAGE_CHARS`] characters long.
pub(crate) fn redact_message(message: &str) -> String {
    let s = cut_sql_section(message);
    let s = redact_urls(&s);
    let s = redact_auth_schemes(&s);
    let s = redact_key_values(&s);
    let s = redact_token_shapes(&s);
    truncate(&s, MAX_MESSAGE_CHARS)
}

/// Spark error messages quote the statement after a `== SQL` line: drop it and what follows.
fn cut_sql_section(s: &str) -> String {
    match s.find("== SQL") {
        Some(i) => format!("{}[SQL REDACTED]", &s[..i]),
        None => s.to_string(),
    }
}

fn is_url_end(c: char) -> bool {
    c.is_whitespace() || matches!(c, '"' | '\'' | '`' | '<' | '>')
}

fn redact_urls(s: &str) -> String {
    let lower = s.to_ascii_lowercase();
    let mut out = String::with_capacity(s.len());
    let mut pos = 0;
    while let Some(start) = next_url_start(&lower, pos) {
        let end = s[start..]
            .char_indices()
            .find(|&(_, c)| is_url_end(c))
            .map(|(i, _)| start + i)
            .unwrap_or(s.len());
        out.push_str(&s[pos..start]);
        out.push_str(&crate::redact_url(&s[start..end]));
        pos = end;
    }
    out.push_str(&s[pos..]);
    out
}

fn next_url_start(lower: &str, from: usize) -> Option<usize> {
    let http = lower[from..].find("http://");
    let https = lower[from..].find("https://");
    match (http, https) {
        (Some(a), Some(b)) => Some(from + a.min(b)),
        (a, b) => a.or(b).map(|i| from + i),
    }
}

fn is_value_end(c: char) -> bool {
    c.is_whitespace() || matches!(c, '"' | '\'' | '&' | ';' | ',' | '}' | ')' | ']')
}

/// The end of the value starting at `start` (exclusive).
fn value_end(s: &str, start: usize) -> usize {
    s[start..]
        .char_indices()
        .find(|&(_, c)| is_value_end(c))
        .map(|(i, _)| start + i)
        .unwrap_or(s.len())
}

/// `Bearer <x>` and `Basic <x>`, any case.
fn redact_auth_schemes(s: &str) -> String {
    let lower = s.to_ascii_lowercase();
    let mut out = String::with_capacity(s.len());
    let mut pos = 0;
    loop {
        let next = ["bearer ", "basic "]
            .iter()
            .filter_map(|p| lower[pos..].find(p).map(|i| (pos + i, p.len())))
            .min();
        let Some((at, len)) = next else { break };
        let mut start = at + len;
        while s[start..].starts_with(' ') {
            start += 1;
        }
        let end = if s[start..].starts_with(REDACTED) {
            start + REDACTED.len()
        } else {
            value_end(s, start)
        };
        out.push_str(&s[pos..start]);
        if end > start {
            out.push_str(REDACTED);
        }
        pos = end;
    }
    out.push_str(&s[pos..]);
    out
}

fn is_key_char(c: char) -> bool {
    c.is_ascii_alphanumeric() || matches!(c, '_' | '-' | '.')
}

/// `key=value`, `key: value` and `"key": "value"` where the key names a secret.
fn redact_key_values(s: &str) -> String {
    let mut out = String::with_capacity(s.len());
    let mut pos = 0;
    let mut search = 0;
    while let Some(rel) = s[search..].find(['=', ':']) {
        let sep = search + rel;
        search = sep + 1;
        let before = s[..sep].trim_end_matches(['"', '\'']);
        let key_start = before
            .char_indices()
            .rev()
            .take_while(|&(_, c)| is_key_char(c))
            .last()
            .map(|(i, _)| i)
            .unwrap_or(before.len());
        let key = before[key_start..].to_ascii_lowercase();
        if key.is_empty() || !SECRET_KEYS.iter().any(|k| key.contains(k)) {
            continue;
        }
        let mut start = sep + 1;
        while s[start..].starts_with([' ', '"', '\'']) {
            start += 1;
        }
        if s[start..].starts_with(REDACTED) {
            continue;
        }
        let end = value_end(s, start);
        if end == start || start < pos {
            continue;
        }
        out.push_str(&s[pos..start]);
        out.push_str(REDACTED);
        pos = end;
        search = end;
    }
    out.push_str(&s[pos..]);
    out
}

/// Databricks personal access tokens (`dapi` + hex) and JWTs (`eyJ….….…`) wherever they stand.
fn redact_token_shapes(s: &str) -> String {
    let mut out = String::with_capacity(s.len());
    let mut pos = 0;
    let mut word_start: Option<usize> = None;
    let flush_word = |out: &mut String, pos: &mut usize, start: usize, end: usize| {
        let word = &s[start..end];
        if looks_like_token(word) {
            out.push_str(&s[*pos..start]);
            out.push_str(REDACTED);
            *pos = end;
        }
    };
    for (i, c) in s.char_indices() {
        let in_word = c.is_ascii_alphanumeric() || matches!(c, '_' | '-' | '.');
        match (in_word, word_start) {
            (true, None) => word_start = Some(i),
            (false, Some(start)) => {
                flush_word(&mut out, &mut pos, start, i);
                word_start = None;
            }
            _ => {}
        }
    }
    if let Some(start) = word_start {
        flush_word(&mut out, &mut pos, start, s.len());
    }
    out.push_str(&s[pos..]);
    out
}

fn looks_like_token(word: &str) -> bool {
    let pat = word.strip_prefix("dapi").is_some_and(|rest| {
        rest.len() >= 16 && rest.bytes().all(|b| b.is_ascii_hexdigit() || b == b'-')
    });
    let jwt = word.starts_with("eyJ") && word.len() > 20 && word.matches('.').count() >= 2;
    pat || jwt
}

fn truncate(s: &str, max_chars: usize) -> String {
    if s.chars().count() <= max_chars {
        return s.to_string();
    }
    let keep = max_chars.saturating_sub(TRUNCATED.chars().count());
    let mut out: String = s.chars().take(keep).collect();
    out.push_str(TRUNCATED);
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn drops_url_query_strings_and_user_info() {
        let m = "download of https://bucket.s3.amazonaws.com/f.arrow?X-Amz-Signature=abc123&X-Amz-Credential=AKIA failed";
        let r = redact_message(m);
        assert_eq!(
            r,
            "download of https://bucket.s3.amazonaws.com/f.arrow?REDACTED failed"
        );
        let r = redact_message("GET HTTP://user:pw@host/p?q=1 and http://plain/x");
        assert_eq!(r, "GET HTTP://host/p?REDACTED and http://plain/x");
    }

    #[test]
    fn replaces_bearer_and_basic_credentials() {
        let r = redact_message("sent Bearer dapi0123abcd; basic dXNlcjpwdw==");
        assert_eq!(r, "sent Bearer [REDACTED]; basic [REDACTED]");
        let r = redact_message("header Authorization: Bearer abc.def");
        assert!(!r.contains("abc.def"), "{r}");
    }

    #[test]
    fn replaces_secret_key_values() {
        let r = redact_message(
            "token=abc&x=1 password: hunter2, {\"client_secret\": \"s3cr3t\"} access_token='t0k' pwd=p;",
        );
        for secret in ["abc", "hunter2", "s3cr3t", "t0k", "=p;"] {
            assert!(!r.contains(secret), "{secret} left in {r}");
        }
        assert!(r.contains("x=1"), "{r}");
        assert_eq!(
            redact_message("max rows: 10, retry=3"),
            "max rows: 10, retry=3"
        );
    }

    #[test]
    fn replaces_personal_access_tokens_and_jwts_anywhere() {
        let r = redact_message(
            "bad dapi0123456789abcdef0123456789abcdef and eyJhbGciOi.eyJzdWIiOiIx.c2ln end",
        );
        assert_eq!(r, "bad [REDACTED] and [REDACTED] end");
        assert_eq!(redact_message("dapper eyJ short"), "dapper eyJ short");
    }

    #[test]
    fn cuts_the_sql_section_of_server_messages() {
        let m = "[PARSE_SYNTAX_ERROR] Syntax error at or near 'SELEC'.\n== SQL ==\nSELEC secret FROM t\n^^^";
        let r = redact_message(m);
        assert!(!r.contains("secret"), "{r}");
        assert!(r.starts_with("[PARSE_SYNTAX_ERROR] Syntax error"), "{r}");
        assert!(r.ends_with("[SQL REDACTED]"), "{r}");
    }

    #[test]
    fn bounds_long_messages_on_a_char_boundary() {
        let m = "é".repeat(5000);
        let r = redact_message(&m);
        assert_eq!(r.chars().count(), MAX_MESSAGE_CHARS);
        assert!(r.ends_with(TRUNCATED));
        assert_eq!(redact_message("short"), "short");
    }

    #[test]
    fn is_idempotent() {
        let m = "token=abc https://h/p?sig=1 Bearer xyz";
        let once = redact_message(m);
        assert_eq!(redact_message(&once), once);
    }
}
