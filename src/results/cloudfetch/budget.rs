//! The byte budget: how many bytes of CloudFetch files may be downloading, or downloaded and not
//! yet consumed, at once. Counted by each link's `bytesNum`.
//!
//! Only the scheduler reserves, one chunk at a time in chunk order, so a later chunk can never
//! take the room an earlier one needs (the consumer waits for the earlier one: that would
//! deadlock). A reservation is released when it is dropped, which the consumer does when it
//! hands out the last batch of the chunk.

use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::Arc;

use tokio::sync::{OwnedSemaphorePermit, Semaphore};

use crate::error::{Error, ErrorKind, Result};

/// A byte budget; see the module docs.
#[derive(Debug)]
pub(crate) struct ByteBudget {
    /// One permit per byte. The semaphore enforces the budget; the counters below account for it
    /// (a waiting reservation already holds part of its permits, which are not memory yet).
    permits: Arc<Semaphore>,
    capacity: u32,
    accounting: Arc<Accounting>,
}

#[derive(Debug, Default)]
struct Accounting {
    reserved: AtomicU64,
    peak: AtomicU64,
}

/// Bytes of the budget held by one chunk; released on drop.
#[derive(Debug)]
pub(crate) struct Reservation {
    _permit: OwnedSemaphorePermit,
    bytes: u32,
    accounting: Arc<Accounting>,
}

impl Drop for Reservation {
    fn drop(&mut self) {
        self.accounting
            .reserved
            .fetch_sub(u64::from(self.bytes), Ordering::SeqCst);
    }
}

impl Reservation {
    /// How many bytes this reservation holds.
    pub(crate) fn bytes(&self) -> u64 {
        u64::from(self.bytes)
    }
}

impl ByteBudget {
    /// A budget of `capacity` bytes, at least 1 and at most `u32::MAX`.
    pub(crate) fn new(capacity: u64) -> Self {
        let capacity = u32::try_from(capacity.max(1)).unwrap_or(u32::MAX);
        ByteBudget {
            permits: Arc::new(Semaphore::new(capacity as usize)),
            capacity,
            accounting: Arc::default(),
        }
    }

    /// How much a file announced as `bytes_num` bytes reserves: its size, at least one byte (so
    /// that every file counts) and at most the whole budget (so that a file larger than the budget
    /// proceeds alone instead of waiting forever).
    pub(crate) fn cost_of(&self, bytes_num: i64) -> u32 {
        u32::try_from(bytes_num.clamp(1, i64::from(self.capacity))).unwrap_or(self.capacity)
    }

    /// Waits until `bytes` fit into the budget, then holds them until the returned reservation
    /// is dropped. Waiters are served first come, first served.
    pub(crate) async fn reserve(&self, bytes: u32) -> Result<Reservation> {
        let bytes = bytes.clamp(1, self.capacity);
        let permit = self
            .permits
            .clone()
            .acquire_many_owned(bytes)
            .await
            .map_err(|_| Error::new(ErrorKind::Closed, "the CloudFetch byte budget was closed"))?;
        let reserved = self
            .accounting
            .reserved
            .fetch_add(u64::from(bytes), Ordering::SeqCst)
            + u64::from(bytes);
        self.accounting.peak.fetch_max(reserved, Ordering::SeqCst);
        Ok(Reservation {
            _permit: permit,
            bytes,
            accounting: self.accounting.clone(),
        })
    }

    /// The budget in bytes.
    pub(crate) fn capacity(&self) -> u64 {
        u64::from(self.capacity)
    }

    /// Bytes reserved right now.
    pub(crate) fn in_use(&self) -> u64 {
        self.accounting.reserved.load(Ordering::SeqCst)
    }

    /// The most bytes ever reserved at once.
    pub(crate) fn peak(&self) -> u64 {
        self.accounting.peak.load(Ordering::SeqCst)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[tokio::test]
    async fn reservations_wait_until_earlier_ones_are_released() {
        let budget = Arc::new(ByteBudget::new(100));
        let first = budget.reserve(60).await.unwrap();
        assert_eq!(budget.in_use(), 60);

        let waiting = {
            let budget = budget.clone();
            tokio::spawn(async move { budget.reserve(50).await.map(|r| r.bytes()) })
        };
        tokio::task::yield_now().await;
        assert!(
            !waiting.is_finished(),
            "50 more bytes must not fit beside 60 of 100"
        );
        assert_eq!(budget.in_use(), 60);

        drop(first);
        assert_eq!(waiting.await.unwrap().unwrap(), 50);
        assert_eq!(budget.peak(), 60);
    }

    #[tokio::test]
    async fn a_file_larger_than_the_budget_reserves_it_all_and_proceeds_alone() {
        let budget = ByteBudget::new(100);
        assert_eq!(budget.cost_of(10_000), 100);
        assert_eq!(budget.cost_of(0), 1, "an unknown size still counts");
        assert_eq!(budget.cost_of(-5), 1);
        let whole = budget.reserve(budget.cost_of(10_000)).await.unwrap();
        assert_eq!(budget.in_use(), 100);
        drop(whole);
        assert_eq!(budget.in_use(), 0);
        assert_eq!(budget.peak(), 100, "the peak never exceeds the budget");
    }

    #[test]
    fn capacity_is_capped_at_four_gib() {
        assert_eq!(ByteBudget::new(u64::MAX).capacity(), u64::from(u32::MAX));
        assert_eq!(ByteBudget::new(0).capacity(), 1);
    }
}
