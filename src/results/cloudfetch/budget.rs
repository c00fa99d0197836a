//! The byte budget: how many bytes of CloudFetch files may be held at once, from the start of
//! their download until the consumer has handed out their last batch.
//!
//! A file is counted first by its link's `bytesNum` (the size as downloaded, LZ4-compressed when
//! the result is), reserved before its download starts; once downloaded, its reservation is
//! resized to the body's actual length (a server's `bytesNum` is not trusted further, and a body
//! far larger than announced is refused: see [`body_cap`](super::download::body_cap)); once
//! decoded, to what then stays in memory, its decoded size (the decompressed IPC stream the
//! batches point into), so decoded files waiting for the consumer count too.
//!
//! Only the scheduler reserves, one chunk at a time in chunk order, and it waits until the bytes
//! fit (or until nothing is held, so that a file larger than the budget proceeds alone). A later
//! chunk therefore never takes the room an earlier one needs (the consumer waits for the earlier
//! one: that would deadlock). Resizing never waits, for the same reason: a decoded chunk `k` that
//! waited for room held by chunks after it, which the consumer cannot release before `k`, would
//! never finish. So the budget may be exceeded by the growth of files already admitted (at most
//! the decode-ahead window's worth), and the scheduler then admits nothing until the consumer
//! brings it back under. A reservation is released when it is dropped, which the consumer does
//! when it hands out the last batch of the chunk.

use std::sync::{Arc, Mutex, MutexGuard};

use tokio::sync::Notify;

/// A byte budget; see the module docs.
#[derive(Debug)]
pub(crate) struct ByteBudget {
    capacity: u64,
    shared: Arc<Shared>,
}

#[derive(Debug, Default)]
struct Shared {
    counts: Mutex<Counts>,
    /// Woken whenever bytes are given back.
    released: Notify,
}

#[derive(Debug, Default)]
struct Counts {
    used: u64,
    peak: u64,
}

impl Shared {
    fn counts(&self) -> MutexGuard<'_, Counts> {
        // The counters stay consistent under any panic (plain integer updates).
        self.counts.lock().unwrap_or_else(|e| e.into_inner())
    }

    /// Moves `used` from `from` bytes to `to` bytes at once; wakes waiters when it shrinks.
    fn adjust(&self, from: u64, to: u64) {
        {
            let mut counts = self.counts();
            counts.used = counts.used.saturating_sub(from).saturating_add(to);
            counts.peak = counts.peak.max(counts.used);
        }
        if to < from {
            self.released.notify_waiters();
        }
    }
}

/// Bytes of the budget held by one chunk; released on drop.
#[derive(Debug)]
pub(crate) struct Reservation {
    bytes: u64,
    shared: Arc<Shared>,
}

impl Drop for Reservation {
    fn drop(&mut self) {
        self.shared.adjust(self.bytes, 0);
    }
}

impl Reservation {
    /// How many bytes this reservation holds.
    #[cfg(test)]
    pub(crate) fn bytes(&self) -> u64 {
        self.bytes
    }

    /// Makes this reservation hold `bytes` (at least one) instead, at once and without waiting,
    /// even when that takes the budget over its capacity (see the module docs for why).
    pub(crate) fn resize(&mut self, bytes: u64) {
        let bytes = bytes.max(1);
        self.shared.adjust(self.bytes, bytes);
        self.bytes = bytes;
    }
}

impl ByteBudget {
    /// A budget of `capacity` bytes, at least 1 and at most `u32::MAX`.
    pub(crate) fn new(capacity: u64) -> Self {
        ByteBudget {
            capacity: capacity.clamp(1, u64::from(u32::MAX)),
            shared: Arc::default(),
        }
    }

    /// How much a file announced as `bytes_num` bytes reserves: its size, at least one byte (so
    /// that every file counts) and at most the whole budget (a file larger than the budget is
    /// counted as the whole budget until it is decoded, and proceeds alone).
    pub(crate) fn cost_of(&self, bytes_num: i64) -> u64 {
        u64::try_from(bytes_num)
            .unwrap_or(0)
            .clamp(1, self.capacity)
    }

    /// Waits until `bytes` fit into the budget beside what is held, or until nothing is held,
    /// then holds them until the returned reservation is dropped. Meant for one caller at a time
    /// (the scheduler); waiters are not served in any particular order.
    pub(crate) async fn reserve(&self, bytes: u64) -> Reservation {
        let bytes = bytes.max(1);
        loop {
            // Register for the wake-up before looking, so a release in between is not missed.
            let released = self.shared.released.notified();
            tokio::pin!(released);
            released.as_mut().enable();
            {
                let mut counts = self.shared.counts();
                if counts.used == 0 || counts.used.saturating_add(bytes) <= self.capacity {
                    counts.used += bytes;
                    counts.peak = counts.peak.max(counts.used);
                    return Reservation {
                        bytes,
                        shared: self.shared.clone(),
                    };
                }
            }
            released.await;
        }
    }

    /// The budget in bytes.
    pub(crate) fn capacity(&self) -> u64 {
        self.capacity
    }

    /// Bytes reserved right now (may exceed the capacity while admitted files grow as they are
    /// decoded).
    pub(crate) fn in_use(&self) -> u64 {
        self.shared.counts().used
    }

    /// The most bytes ever reserved at once.
    pub(crate) fn peak(&self) -> u64 {
        self.shared.counts().peak
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[tokio::test]
    async fn reservations_wait_until_earlier_ones_are_released() {
        let budget = Arc::new(ByteBudget::new(100));
        let first = budget.reserve(60).await;
        assert_eq!(budget.in_use(), 60);

        let waiting = {
            let budget = budget.clone();
            tokio::spawn(async move { budget.reserve(50).await.bytes() })
        };
        tokio::task::yield_now().await;
        assert!(
            !waiting.is_finished(),
            "50 more bytes must not fit beside 60 of 100"
        );
        assert_eq!(budget.in_use(), 60);

        drop(first);
        assert_eq!(waiting.await.unwrap(), 50);
        assert_eq!(budget.peak(), 60);
    }

    #[tokio::test]
    async fn a_file_larger_than_the_budget_reserves_it_all_and_proceeds_alone() {
        let budget = ByteBudget::new(100);
        assert_eq!(budget.cost_of(10_000), 100);
        assert_eq!(budget.cost_of(0), 1, "an unknown size still counts");
        assert_eq!(budget.cost_of(-5), 1);
        let whole = budget.reserve(budget.cost_of(10_000)).await;
        assert_eq!(budget.in_use(), 100);
        drop(whole);
        assert_eq!(budget.in_use(), 0);
        assert_eq!(budget.peak(), 100);
        let alone = budget.reserve(500).await;
        assert_eq!(budget.in_use(), 500, "nothing else held: it proceeds");
        drop(alone);
    }

    #[tokio::test]
    async fn resizing_up_never_waits_even_past_the_capacity() {
        let budget = ByteBudget::new(100);
        let mut first = budget.reserve(40).await;
        let _second = budget.reserve(60).await;
        assert_eq!(budget.in_use(), 100, "the budget is full");
        // Not an await: growing completes at once, whatever the room.
        first.resize(300);
        assert_eq!(first.bytes(), 300);
        assert_eq!(budget.in_use(), 360);
        assert_eq!(budget.peak(), 360);
        first.resize(10);
        assert_eq!(budget.in_use(), 70);
        drop(first);
        assert_eq!(budget.in_use(), 60);
        assert_eq!(budget.peak(), 360);
    }

    #[tokio::test]
    async fn shrinking_a_reservation_wakes_a_waiting_one() {
        let budget = Arc::new(ByteBudget::new(100));
        let mut first = budget.reserve(90).await;
        let waiting = {
            let budget = budget.clone();
            tokio::spawn(async move { budget.reserve(50).await.bytes() })
        };
        tokio::task::yield_now().await;
        assert!(!waiting.is_finished());
        first.resize(120);
        tokio::task::yield_now().await;
        assert!(!waiting.is_finished(), "growing makes no room");
        first.resize(50);
        assert_eq!(waiting.await.unwrap(), 50);
        assert_eq!(budget.peak(), 120);
        assert_eq!(
            budget.in_use(),
            50,
            "the waiter's reservation was dropped again"
        );
    }

    #[test]
    fn capacity_is_capped_at_four_gib() {
        assert_eq!(ByteBudget::new(u64::MAX).capacity(), u64::from(u32::MAX));
        assert_eq!(ByteBudget::new(0).capacity(), 1);
    }
}
