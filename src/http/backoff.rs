//! The driver's one backoff ([`Backoff`]), one table of retryable HTTP statuses
//! ([`status_retry`]) and one `Retry-After` parser ([`parse_retry_after`]): every path that
//! retries (Thrift calls, CloudFetch downloads, result links, telemetry exports) uses them, each
//! with its own limits.

use std::hash::{BuildHasher, Hasher};
use std::time::{Duration, SystemTime};

use http::header::RETRY_AFTER;
use http::HeaderMap;

/// Exponential backoff with jitter: retry `n` (1 for the first) waits
/// `min · multiplier^(n-1)`, capped at `max`, plus up to `jitter` times that at random, never
/// more than `max`. A server's `Retry-After` replaces the computed wait, capped at `max`.
#[derive(Debug, Clone, Copy, PartialEq)]
pub(crate) struct Backoff {
    /// The wait before the first retry.
    pub min: Duration,
    /// The longest wait.
    pub max: Duration,
    /// Growth per retry. 2 everywhere in the driver.
    pub multiplier: f64,
    /// The random extra, as a fraction of the computed wait. 0.25 everywhere in the driver.
    pub jitter: f64,
}

impl Backoff {
    /// From `min` to `max`, doubling, with up to 25% random extra.
    pub(crate) const fn new(min: Duration, max: Duration) -> Self {
        Backoff {
            min,
            max,
            multiplier: 2.0,
            jitter: 0.25,
        }
    }

    /// The wait before retry `retry` (1 for the first), with `random` for the jitter.
    pub(crate) fn delay(&self, retry: u32, random: &mut dyn RandomSource) -> Duration {
        let exponent = i32::try_from(retry.saturating_sub(1))
            .unwrap_or(i32::MAX)
            .min(64);
        let base = self.min.as_secs_f64() * self.multiplier.max(1.0).powi(exponent);
        let max = self.max.max(self.min).as_secs_f64();
        let base = base.min(max);
        let extra = base * self.jitter.clamp(0.0, 1.0) * random.next_fraction();
        Duration::try_from_secs_f64((base + extra).min(max)).unwrap_or(self.max)
    }

    /// The server's `retry_after` when it gave one (capped at `max`), else [`delay`](Self::delay).
    pub(crate) fn delay_or(
        &self,
        retry: u32,
        retry_after: Option<Duration>,
        random: &mut dyn RandomSource,
    ) -> Duration {
        match retry_after {
            Some(after) => after.min(self.max.max(self.min)),
            None => self.delay(retry, random),
        }
    }
}

/// What an HTTP status says about sending the same request again.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum StatusRetry {
    /// The server did not run the request (408, 429, 503 with `Retry-After`): any request may
    /// be sent again.
    NotRun,
    /// A server error after which the request may or may not have run (5xx except 501): only
    /// idempotent requests are sent again.
    MayHaveRun,
    /// Sending it again will not help (4xx, 501, anything else).
    Never,
}

/// The one table of retryable statuses.
pub(crate) fn status_retry(status: u16, has_retry_after: bool) -> StatusRetry {
    match status {
        408 | 429 => StatusRetry::NotRun,
        503 if has_retry_after => StatusRetry::NotRun,
        501 => StatusRetry::Never,
        500..=599 => StatusRetry::MayHaveRun,
        _ => StatusRetry::Never,
    }
}

/// How long the server asks us to wait: `Retry-After` as delta seconds or as an HTTP date
/// (a date in the past means now). `None` when absent or unreadable. Callers cap it
/// ([`Backoff::delay_or`]).
pub(crate) fn parse_retry_after(headers: &HeaderMap, now: SystemTime) -> Option<Duration> {
    let value = headers.get(RETRY_AFTER)?.to_str().ok()?.trim();
    if let Ok(seconds) = value.parse::<u64>() {
        return Some(Duration::from_secs(seconds));
    }
    let at = httpdate::parse_http_date(value).ok()?;
    Some(at.duration_since(now).unwrap_or(Duration::ZERO))
}

/// Numbers in `[0, 1)` for jitter; tests inject fixed ones.
pub(crate) trait RandomSource: Send {
    /// The next number in `[0, 1)`.
    fn next_fraction(&mut self) -> f64;
}

/// A xorshift generator seeded from [`random_u64`]: jitter, not secrets.
#[derive(Debug, Clone)]
pub(crate) struct Jitter(u64);

impl Jitter {
    pub(crate) fn new() -> Self {
        Jitter(random_u64() | 1)
    }
}

impl RandomSource for Jitter {
    fn next_fraction(&mut self) -> f64 {
        let mut x = self.0;
        x ^= x << 13;
        x ^= x >> 7;
        x ^= x << 17;
        self.0 = x;
        (x >> 11) as f64 / (1u64 << 53) as f64
    }
}

/// A random number from the standard library's per-instance random hasher keys (seeded from
/// the OS once per thread, then stepped per call): cheap, with no system call. Not for secrets
/// (OAuth uses `ring`'s system random source).
pub(crate) fn random_u64() -> u64 {
    std::collections::hash_map::RandomState::new()
        .build_hasher()
        .finish()
}

#[cfg(test)]
pub(crate) mod tests {
    use super::*;

    /// Always the same fraction.
    pub(crate) struct Fixed(pub f64);

    impl RandomSource for Fixed {
        fn next_fraction(&mut self) -> f64 {
            self.0
        }
    }

    #[test]
    fn delays_double_from_min_to_max_with_up_to_a_quarter_more() {
        let b = Backoff::new(Duration::from_millis(100), Duration::from_secs(1));
        let low: Vec<_> = (1..=6).map(|n| b.delay(n, &mut Fixed(0.0))).collect();
        assert_eq!(
            low,
            [100, 200, 400, 800, 1000, 1000].map(Duration::from_millis)
        );
        let most = b.delay(1, &mut Fixed(0.999_999));
        assert!(most > Duration::from_micros(124_990) && most < Duration::from_millis(125));
        assert_eq!(
            b.delay(5, &mut Fixed(0.999_999)),
            Duration::from_secs(1),
            "never above max"
        );
        assert_eq!(b.delay(u32::MAX, &mut Fixed(0.5)), Duration::from_secs(1));
        assert_eq!(b.delay(0, &mut Fixed(0.0)), Duration::from_millis(100));
    }

    #[test]
    fn retry_after_replaces_the_backoff_capped_at_max() {
        let b = Backoff::new(Duration::from_millis(100), Duration::from_secs(10));
        assert_eq!(
            b.delay_or(1, Some(Duration::from_secs(3)), &mut Fixed(0.0)),
            Duration::from_secs(3)
        );
        assert_eq!(
            b.delay_or(1, Some(Duration::from_secs(300)), &mut Fixed(0.0)),
            Duration::from_secs(10)
        );
        assert_eq!(
            b.delay_or(1, None, &mut Fixed(0.0)),
            Duration::from_millis(100)
        );
    }

    #[test]
    fn the_status_table() {
        use StatusRetry::*;
        let cases = [
            (408, false, NotRun),
            (429, false, NotRun),
            (503, true, NotRun),
            (503, false, MayHaveRun),
            (500, false, MayHaveRun),
            (502, false, MayHaveRun),
            (504, false, MayHaveRun),
            (505, false, MayHaveRun),
            (599, false, MayHaveRun),
            (501, true, Never),
            (400, false, Never),
            (401, false, Never),
            (404, false, Never),
            (200, false, Never),
        ];
        for (status, after, expected) in cases {
            assert_eq!(status_retry(status, after), expected, "{status}");
        }
    }

    #[test]
    fn retry_after_reads_seconds_and_http_dates() {
        let now = SystemTime::UNIX_EPOCH + Duration::from_secs(1_700_000_000);
        let mut h = HeaderMap::new();
        h.insert(RETRY_AFTER, "7".parse().unwrap());
        assert_eq!(parse_retry_after(&h, now), Some(Duration::from_secs(7)));
        let later = httpdate::fmt_http_date(now + Duration::from_secs(30));
        h.insert(RETRY_AFTER, later.parse().unwrap());
        assert_eq!(parse_retry_after(&h, now), Some(Duration::from_secs(30)));
        let earlier = httpdate::fmt_http_date(now - Duration::from_secs(30));
        h.insert(RETRY_AFTER, earlier.parse().unwrap());
        assert_eq!(parse_retry_after(&h, now), Some(Duration::ZERO));
        h.insert(RETRY_AFTER, "soon".parse().unwrap());
        assert_eq!(parse_retry_after(&h, now), None);
    }

    #[test]
    fn jitter_is_in_the_unit_interval() {
        let mut j = Jitter::new();
        for _ in 0..10_000 {
            let f = j.next_fraction();
            assert!((0.0..1.0).contains(&f));
        }
    }
}
