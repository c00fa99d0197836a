//! Time arithmetic that never panics. Durations come from users (`Duration::MAX` as "no
//! timeout") and from servers (a token's `expires_in`, a feature flag's TTL), so `instant +
//! duration` may overflow; these saturate at a point far enough ahead to mean "never" instead.

use std::time::Duration;

use tokio::time::Instant;

/// About thirty years: what "never" becomes when an instant plus a duration would overflow.
const FAR_AHEAD: Duration = Duration::from_secs(30 * 365 * 24 * 60 * 60);

/// `start + d`, or a point about thirty years after `start` when that overflows.
pub(crate) fn after(start: Instant, d: Duration) -> Instant {
    start
        .checked_add(d)
        .or_else(|| start.checked_add(FAR_AHEAD))
        .unwrap_or(start)
}

/// `now + d`, saturating like [`after`].
pub(crate) fn from_now(d: Duration) -> Instant {
    after(Instant::now(), d)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn durations_that_would_overflow_saturate_far_ahead() {
        let now = Instant::now();
        assert_eq!(
            after(now, Duration::from_secs(5)),
            now + Duration::from_secs(5)
        );
        assert_eq!(after(now, Duration::MAX), now + FAR_AHEAD);
        assert!(from_now(Duration::MAX) > now + FAR_AHEAD / 2);
    }
}
