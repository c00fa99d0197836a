//! The circuit breaker that protects a host's telemetry endpoint, and the registry that keeps one
//! breaker per host.
//!
//! CLOSED lets every export through and counts consecutive failures; at the threshold it opens.
//! OPEN rejects at once until its timeout has passed, then lets one probe through (HALF_OPEN).
//! In HALF_OPEN the configured number of successful probes closes it and any failure re-opens it.

use std::collections::HashMap;
use std::sync::{Arc, Mutex, MutexGuard, PoisonError};
use std::time::Duration;

use tokio::time::Instant;

use super::types::TelemetryConfiguration;

/// A breaker's state.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum CircuitState {
    /// Exports go through; failures are counted.
    Closed,
    /// Exports are rejected until the timeout passes.
    Open,
    /// One probe at a time goes through; successes close, a failure re-opens.
    HalfOpen,
}

/// The breaker's settings, taken from [`TelemetryConfiguration`].
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) struct CircuitBreakerConfig {
    /// Consecutive failures that open the breaker (at least 1).
    pub failure_threshold: u32,
    /// How long the breaker stays open before a probe.
    pub open_timeout: Duration,
    /// Successful probes that close a half-open breaker (at least 1).
    pub half_open_successes: u32,
}

impl From<&TelemetryConfiguration> for CircuitBreakerConfig {
    fn from(c: &TelemetryConfiguration) -> Self {
        CircuitBreakerConfig {
            failure_threshold: c.circuit_breaker_threshold.max(1),
            open_timeout: c.circuit_breaker_timeout,
            half_open_successes: c.circuit_breaker_half_open_successes.max(1),
        }
    }
}

#[derive(Debug)]
struct BreakerState {
    state: CircuitState,
    consecutive_failures: u32,
    half_open_successes: u32,
    opened_at: Option<Instant>,
    probe_in_flight: bool,
}

/// One host's circuit breaker. Ask [`try_acquire`](Self::try_acquire) before an export and
/// report its outcome on the permit.
#[derive(Debug)]
pub(crate) struct CircuitBreaker {
    host: String,
    config: CircuitBreakerConfig,
    state: Mutex<BreakerState>,
}

/// Leave to make one call through a breaker. Report the outcome with
/// [`success`](Self::success) or [`failure`](Self::failure); a permit dropped without an
/// outcome (the call was cancelled) frees its probe slot and counts as neither.
#[derive(Debug)]
#[must_use = "report the outcome of the call on the permit"]
pub(crate) struct BreakerPermit<'a> {
    breaker: &'a CircuitBreaker,
    probe: bool,
    settled: bool,
}

impl BreakerPermit<'_> {
    /// The call succeeded.
    pub(crate) fn success(mut self) {
        self.settled = true;
        self.breaker.on_success();
    }

    /// The call failed.
    pub(crate) fn failure(mut self) {
        self.settled = true;
        self.breaker.on_failure();
    }
}

impl Drop for BreakerPermit<'_> {
    fn drop(&mut self) {
        if !self.settled && self.probe {
            self.breaker.lock().probe_in_flight = false;
        }
    }
}

impl CircuitBreaker {
    /// A closed breaker for `host`.
    pub(crate) fn new(host: &str, config: CircuitBreakerConfig) -> Self {
        CircuitBreaker {
            host: host.to_string(),
            config,
            state: Mutex::new(BreakerState {
                state: CircuitState::Closed,
                consecutive_failures: 0,
                half_open_successes: 0,
                opened_at: None,
                probe_in_flight: false,
            }),
        }
    }

    fn lock(&self) -> MutexGuard<'_, BreakerState> {
        // The state stays consistent across every early return, so a poisoned lock is usable.
        self.state.lock().unwrap_or_else(PoisonError::into_inner)
    }

    #[cfg(test)]
    /// The settings this breaker runs with.
    pub(crate) fn config(&self) -> CircuitBreakerConfig {
        self.config
    }

    #[cfg(test)]
    /// The current state (an open breaker whose timeout passed reports OPEN until the next
    /// [`try_acquire`](Self::try_acquire) turns it HALF_OPEN).
    pub(crate) fn state(&self) -> CircuitState {
        self.lock().state
    }

    #[cfg(test)]
    /// Consecutive failures counted while closed.
    pub(crate) fn consecutive_failures(&self) -> u32 {
        self.lock().consecutive_failures
    }

    /// Leave to make a call, or `None` when the breaker rejects it.
    pub(crate) fn try_acquire(&self) -> Option<BreakerPermit<'_>> {
        let mut s = self.lock();
        match s.state {
            CircuitState::Closed => Some(BreakerPermit {
                breaker: self,
                probe: false,
                settled: false,
            }),
            CircuitState::Open => {
                let elapsed = s.opened_at.map(|t| t.elapsed()).unwrap_or(Duration::MAX);
                if elapsed < self.config.open_timeout {
                    return None;
                }
                self.transition(&mut s, CircuitState::HalfOpen);
                s.half_open_successes = 0;
                s.probe_in_flight = true;
                Some(BreakerPermit {
                    breaker: self,
                    probe: true,
                    settled: false,
                })
            }
            CircuitState::HalfOpen => {
                if s.probe_in_flight {
                    return None;
                }
                s.probe_in_flight = true;
                Some(BreakerPermit {
                    breaker: self,
                    probe: true,
                    settled: false,
                })
            }
        }
    }

    fn on_success(&self) {
        let mut s = self.lock();
        match s.state {
            CircuitState::Closed => s.consecutive_failures = 0,
            CircuitState::HalfOpen => {
                s.probe_in_flight = false;
                s.half_open_successes += 1;
                if s.half_open_successes >= self.config.half_open_successes {
                    s.consecutive_failures = 0;
                    s.opened_at = None;
                    self.transition(&mut s, CircuitState::Closed);
                }
            }
            // A call let through before the breaker opened finished late: no news.
            CircuitState::Open => {}
        }
    }

    fn on_failure(&self) {
        let mut s = self.lock();
        match s.state {
            CircuitState::Closed => {
                s.consecutive_failures += 1;
                if s.consecutive_failures >= self.config.failure_threshold {
                    s.opened_at = Some(Instant::now());
                    self.transition(&mut s, CircuitState::Open);
                }
            }
            CircuitState::HalfOpen => {
                s.probe_in_flight = false;
                s.opened_at = Some(Instant::now());
                self.transition(&mut s, CircuitState::Open);
            }
            CircuitState::Open => {}
        }
    }

    fn transition(&self, s: &mut BreakerState, to: CircuitState) {
        tracing::debug!(
            host = %self.host,
            from = ?s.state,
            to = ?to,
            failures = s.consecutive_failures,
            "telemetry circuit breaker changed state"
        );
        s.state = to;
    }
}

/// One circuit breaker per host, created on first use with the settings given then.
#[derive(Debug, Default)]
pub(crate) struct CircuitBreakerRegistry {
    breakers: Mutex<HashMap<String, Arc<CircuitBreaker>>>,
}

impl CircuitBreakerRegistry {
    #[cfg(test)]
    /// An empty registry.
    pub(crate) fn new() -> Self {
        Self::default()
    }

    /// The breaker of `host`, created with `config` if the host has none yet.
    pub(crate) fn get_or_create(
        &self,
        host: &str,
        config: CircuitBreakerConfig,
    ) -> Arc<CircuitBreaker> {
        let mut map = self.breakers.lock().unwrap_or_else(PoisonError::into_inner);
        map.entry(host.to_string())
            .or_insert_with(|| Arc::new(CircuitBreaker::new(host, config)))
            .clone()
    }

    #[cfg(test)]
    /// The breaker of `host`, if it has one.
    pub(crate) fn get(&self, host: &str) -> Option<Arc<CircuitBreaker>> {
        let map = self.breakers.lock().unwrap_or_else(PoisonError::into_inner);
        map.get(host).cloned()
    }

    #[cfg(test)]
    /// Forget the breaker of `host`.
    pub(crate) fn remove(&self, host: &str) {
        let mut map = self.breakers.lock().unwrap_or_else(PoisonError::into_inner);
        map.remove(host);
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn config(threshold: u32, timeout_secs: u64, successes: u32) -> CircuitBreakerConfig {
        CircuitBreakerConfig {
            failure_threshold: threshold,
            open_timeout: Duration::from_secs(timeout_secs),
            half_open_successes: successes,
        }
    }

    fn fail(b: &CircuitBreaker, n: u32) {
        for _ in 0..n {
            b.try_acquire()
                .expect("breaker let the call through")
                .failure();
        }
    }

    #[test]
    fn starts_closed_and_lets_calls_through() {
        let b = CircuitBreaker::new("h", config(5, 60, 2));
        assert_eq!(b.state(), CircuitState::Closed);
        b.try_acquire().expect("closed breaker admits").success();
        assert_eq!(b.state(), CircuitState::Closed);
    }

    #[test]
    fn opens_after_threshold_consecutive_failures() {
        let b = CircuitBreaker::new("h", config(5, 60, 2));
        fail(&b, 4);
        assert_eq!(b.state(), CircuitState::Closed);
        assert_eq!(b.consecutive_failures(), 4);
        fail(&b, 1);
        assert_eq!(b.state(), CircuitState::Open);
    }

    #[tokio::test(start_paused = true)]
    async fn rejects_at_once_when_open() {
        let b = CircuitBreaker::new("h", config(1, 60, 2));
        fail(&b, 1);
        assert!(b.try_acquire().is_none());
        tokio::time::advance(Duration::from_secs(59)).await;
        assert!(b.try_acquire().is_none());
        assert_eq!(b.state(), CircuitState::Open);
    }

    #[tokio::test(start_paused = true)]
    async fn goes_half_open_after_the_timeout_and_admits_one_probe() {
        let b = CircuitBreaker::new("h", config(1, 60, 2));
        fail(&b, 1);
        tokio::time::advance(Duration::from_secs(60)).await;
        let probe = b.try_acquire().expect("probe after timeout");
        assert_eq!(b.state(), CircuitState::HalfOpen);
        assert!(b.try_acquire().is_none(), "only one probe at a time");
        probe.success();
        assert_eq!(b.state(), CircuitState::HalfOpen);
    }

    #[tokio::test(start_paused = true)]
    async fn closes_after_the_configured_successes_in_half_open() {
        let b = CircuitBreaker::new("h", config(1, 60, 2));
        fail(&b, 1);
        tokio::time::advance(Duration::from_secs(60)).await;
        b.try_acquire().expect("probe 1").success();
        assert_eq!(b.state(), CircuitState::HalfOpen);
        b.try_acquire().expect("probe 2").success();
        assert_eq!(b.state(), CircuitState::Closed);
        assert_eq!(b.consecutive_failures(), 0);
    }

    #[tokio::test(start_paused = true)]
    async fn a_failed_probe_reopens_for_another_timeout() {
        let b = CircuitBreaker::new("h", config(1, 60, 2));
        fail(&b, 1);
        tokio::time::advance(Duration::from_secs(60)).await;
        b.try_acquire().expect("probe").failure();
        assert_eq!(b.state(), CircuitState::Open);
        tokio::time::advance(Duration::from_secs(30)).await;
        assert!(b.try_acquire().is_none());
        tokio::time::advance(Duration::from_secs(30)).await;
        assert!(b.try_acquire().is_some());
    }

    #[tokio::test(start_paused = true)]
    async fn a_cancelled_probe_frees_its_slot() {
        let b = CircuitBreaker::new("h", config(1, 60, 2));
        fail(&b, 1);
        tokio::time::advance(Duration::from_secs(60)).await;
        drop(b.try_acquire().expect("probe"));
        assert_eq!(b.state(), CircuitState::HalfOpen);
        assert!(b.try_acquire().is_some(), "the slot is free again");
    }

    #[test]
    fn success_resets_the_failure_count() {
        let b = CircuitBreaker::new("h", config(5, 60, 2));
        fail(&b, 4);
        b.try_acquire().expect("closed").success();
        assert_eq!(b.consecutive_failures(), 0);
        fail(&b, 4);
        assert_eq!(
            b.state(),
            CircuitState::Closed,
            "4 + 4 non-consecutive failures do not open it"
        );
    }

    #[test]
    fn a_late_outcome_while_open_changes_nothing() {
        let b = CircuitBreaker::new("h", config(2, 60, 2));
        let early = b.try_acquire().expect("closed");
        let early2 = b.try_acquire().expect("closed");
        fail(&b, 2);
        assert_eq!(b.state(), CircuitState::Open);
        early.success();
        early2.failure();
        assert_eq!(b.state(), CircuitState::Open);
    }

    #[test]
    fn breakers_are_isolated_per_host() {
        let r = CircuitBreakerRegistry::new();
        let a = r.get_or_create("a.example", config(1, 60, 2));
        let b = r.get_or_create("b.example", config(1, 60, 2));
        fail(&a, 1);
        assert_eq!(a.state(), CircuitState::Open);
        assert_eq!(b.state(), CircuitState::Closed);
        assert!(Arc::ptr_eq(
            &a,
            &r.get_or_create("a.example", config(9, 9, 9))
        ));
        assert!(r.get("b.example").is_some());
        r.remove("b.example");
        assert!(r.get("b.example").is_none());
    }

    #[test]
    fn configured_values_reach_the_breaker() {
        let mut c = TelemetryConfiguration {
            circuit_breaker_threshold: 2,
            circuit_breaker_timeout: Duration::from_secs(7),
            circuit_breaker_half_open_successes: 3,
            ..Default::default()
        };
        let r = CircuitBreakerRegistry::new();
        let b = r.get_or_create("h", CircuitBreakerConfig::from(&c));
        assert_eq!(b.config(), config(2, 7, 3));
        fail(&b, 2);
        assert_eq!(
            b.state(),
            CircuitState::Open,
            "threshold 2, not the default 5"
        );

        c.circuit_breaker_threshold = 0;
        c.circuit_breaker_half_open_successes = 0;
        let guarded = CircuitBreakerConfig::from(&c);
        assert_eq!(
            (guarded.failure_threshold, guarded.half_open_successes),
            (1, 1)
        );
    }
}
