//! Result pages that come back without rows while the server says more rows follow. A server
//! still producing a result may answer so for a while; each such page in a row waits a little
//! longer before the next fetch, and after [`MAX_EMPTY_PAGES`] of them the result is given up
//! on with an error instead of being fetched forever. Used for inline pages and CloudFetch link
//! pages alike.

use std::time::Duration;

use crate::error::{Error, Result};
use crate::http::backoff::{Backoff, Jitter};
use crate::http::RetryPolicy;

/// How many pages in a row may come back empty while more rows are announced: 20 (the next
/// one is an error).
pub(crate) const MAX_EMPTY_PAGES: u32 = 20;
/// The wait before fetching again after the first empty page: 100 ms, doubling up to
/// [`EMPTY_PAGE_MAX_BACKOFF`] (with jitter).
const EMPTY_PAGE_MIN_BACKOFF: Duration = Duration::from_millis(100);
/// The longest wait between two empty pages: 2 s.
const EMPTY_PAGE_MAX_BACKOFF: Duration = Duration::from_secs(2);

/// Counts the empty pages in a row of one result.
#[derive(Debug)]
pub(crate) struct EmptyPages {
    in_a_row: u32,
    backoff: Backoff,
    jitter: Jitter,
}

impl Default for EmptyPages {
    fn default() -> Self {
        EmptyPages {
            in_a_row: 0,
            backoff: Backoff::new(EMPTY_PAGE_MIN_BACKOFF, EMPTY_PAGE_MAX_BACKOFF),
            jitter: Jitter::new(),
        }
    }
}

impl EmptyPages {
    /// Waits no longer than `retry`'s backoff would (a client configured for quick retries
    /// also waits less on empty pages), and no longer than the defaults.
    pub(crate) fn within(retry: &RetryPolicy) -> Self {
        EmptyPages {
            backoff: Backoff::new(
                retry.min_backoff.min(EMPTY_PAGE_MIN_BACKOFF),
                retry.max_backoff.min(EMPTY_PAGE_MAX_BACKOFF),
            ),
            ..Self::default()
        }
    }

    /// Takes in a page that announced more rows: `empty` when it had none (`what` names what
    /// was missing, e.g. `rows` or `links`; `offset` the row offset asked for). An error once
    /// too many came back empty in a row.
    pub(crate) fn record(&mut self, empty: bool, what: &str, offset: i64) -> Result<()> {
        if !empty {
            self.in_a_row = 0;
            return Ok(());
        }
        self.in_a_row += 1;
        if self.in_a_row > MAX_EMPTY_PAGES {
            return Err(Error::protocol(format!(
                "the server answered more than {MAX_EMPTY_PAGES} result pages in a row with no \
                 {what} while saying more rows follow (row offset {offset})"
            )));
        }
        Ok(())
    }

    /// How long to wait before the next fetch: zero unless the last page was empty.
    pub(crate) fn delay(&mut self) -> Duration {
        if self.in_a_row == 0 {
            return Duration::ZERO;
        }
        self.backoff.delay(self.in_a_row, &mut self.jitter)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn empty_pages_wait_longer_and_are_bounded() {
        let mut pages = EmptyPages::default();
        assert_eq!(pages.delay(), Duration::ZERO);
        for _ in 0..MAX_EMPTY_PAGES {
            pages.record(true, "rows", 10).unwrap();
            let d = pages.delay();
            assert!(d > Duration::ZERO && d <= EMPTY_PAGE_MAX_BACKOFF, "{d:?}");
        }
        let e = pages.record(true, "rows", 10).unwrap_err();
        assert!(
            e.message()
                .contains("20 result pages in a row with no rows"),
            "{e}"
        );
        assert!(e.message().contains("row offset 10"), "{e}");
    }

    #[test]
    fn a_quick_retry_policy_shortens_the_waits() {
        let retry = RetryPolicy {
            min_backoff: Duration::from_millis(5),
            max_backoff: Duration::from_millis(50),
            ..RetryPolicy::default()
        };
        let mut pages = EmptyPages::within(&retry);
        for _ in 0..MAX_EMPTY_PAGES {
            pages.record(true, "rows", 0).unwrap();
            assert!(pages.delay() <= Duration::from_millis(50));
        }
        let mut defaults = EmptyPages::within(&RetryPolicy::default());
        for _ in 0..MAX_EMPTY_PAGES {
            defaults.record(true, "rows", 0).unwrap();
        }
        assert!(defaults.delay() <= EMPTY_PAGE_MAX_BACKOFF);
        assert!(defaults.delay() >= Duration::from_secs(1));
    }

    #[test]
    fn a_page_with_rows_starts_the_count_over() {
        let mut pages = EmptyPages::default();
        for _ in 0..MAX_EMPTY_PAGES {
            pages.record(true, "links", 0).unwrap();
        }
        pages.record(false, "links", 0).unwrap();
        assert_eq!(pages.delay(), Duration::ZERO);
        pages.record(true, "links", 0).unwrap();
    }
}
