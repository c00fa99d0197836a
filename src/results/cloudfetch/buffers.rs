//! Recycled file buffers. Every CloudFetch file is downloaded into a buffer of the client's pool
//! and (LZ4 results) decompressed into another; each goes back to the pool when the file no
//! longer needs it: a downloaded body once it is decompressed, a decoded file once the consumer
//! has dropped every batch that points into it.
//!
//! Why: a stream of multi-MB buffers allocated on some threads and freed on others is what a
//! general-purpose allocator handles worst. glibc's malloc, for one, raises its mmap threshold
//! after the first large free and from then on serves such buffers from per-thread heap arenas,
//! which fragment and stay resident. Measured on the CloudFetch benchmark (64 MiB budget), that
//! took the client's peak RSS to 150-165 MB whether the buffers were freed at once or pooled per
//! result; the page faults of fresh buffers cost throughput too. A recycled buffer is already
//! mapped and is reused without being zeroed or copied, so once the pool holds a result's working
//! set, streaming allocates nothing large, for this result or the next.
//!
//! The pool belongs to the client (one for all its results, so the next result starts with warm
//! buffers) and keeps at most a fixed number of idle bytes; what goes beyond is freed, smallest
//! buffers first. Buffers are matched by size, so the downloaded bodies and the (larger) decoded
//! files each reuse buffers of their own size. When no buffer has been taken or given back for
//! [`IDLE_TRIM_AFTER`], every idle buffer is freed: a long-lived client that has stopped reading
//! large results does not keep their memory.

use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::sync::{Arc, Mutex, OnceLock, Weak};
use std::time::Duration;

use bytes::Bytes;
use tokio::time::Instant;

/// How long the pool's idle buffers are kept without any buffer taken or given back: 60 s.
pub(crate) const IDLE_TRIM_AFTER: Duration = Duration::from_secs(60);

/// Idle buffers ready for the next file, of whatever sizes the files needed.
#[derive(Debug)]
pub(crate) struct BufferPool {
    idle: Mutex<Idle>,
    /// At most this many bytes of capacity are kept idle; more is freed.
    max_idle_bytes: usize,
    /// Buffers allocated because no idle one fitted.
    allocated: AtomicU64,
    /// The runtime the trimming timer runs on: the first one a buffer was taken on (buffers
    /// come back from decode threads, outside any runtime).
    runtime: OnceLock<tokio::runtime::Handle>,
    /// Set when the client closes: from then on nothing is kept idle.
    closed: AtomicBool,
}

#[derive(Debug, Default)]
struct Idle {
    buffers: Vec<Vec<u8>>,
    bytes: usize,
    /// The last take or put.
    last_used: Option<Instant>,
    /// The timer waiting to free the idle buffers once the pool has been unused long enough,
    /// if one runs; aborted when the pool is dropped.
    trim_timer: Option<tokio::task::AbortHandle>,
}

impl Idle {
    fn remove(&mut self, i: usize) -> Vec<u8> {
        let buf = self.buffers.swap_remove(i);
        self.bytes -= buf.capacity();
        buf
    }
}

/// `need` rounded up to a size class (steps of 1/32 of its power of two, at least 64 KiB), so
/// that files of nearly the same size share buffers.
fn size_class(need: usize) -> usize {
    let need = need.max(1);
    let step = (need.checked_next_power_of_two().unwrap_or(need) / 32).max(64 * 1024);
    need.div_ceil(step).saturating_mul(step)
}

impl BufferPool {
    /// A pool keeping at most `max_idle_bytes` of idle buffers.
    pub(crate) fn new(max_idle_bytes: usize) -> Arc<Self> {
        Arc::new(BufferPool {
            idle: Mutex::new(Idle::default()),
            max_idle_bytes,
            allocated: AtomicU64::new(0),
            runtime: OnceLock::new(),
            closed: AtomicBool::new(false),
        })
    }

    fn idle(&self) -> std::sync::MutexGuard<'_, Idle> {
        // The idle list stays consistent under any panic (pushes and removals only).
        self.idle.lock().unwrap_or_else(|e| e.into_inner())
    }

    /// A buffer with room for at least `need` bytes: the smallest idle one that fits and is at
    /// most half as large again as `need`'s size class (so a downloaded body does not take a
    /// decoded file's larger buffer, which would only make the pool grow), or else a new one of
    /// `need`'s size class. Its contents are stale: callers overwrite them.
    pub(crate) fn take(&self, need: usize) -> Vec<u8> {
        if self.runtime.get().is_none() {
            if let Ok(handle) = tokio::runtime::Handle::try_current() {
                let _ = self.runtime.set(handle);
            }
        }
        let class = size_class(need);
        let mut idle = self.idle();
        idle.last_used = Some(Instant::now());
        let fits = idle
            .buffers
            .iter()
            .enumerate()
            .filter(|(_, b)| b.capacity() >= need && b.capacity() / 3 <= class / 2)
            .min_by_key(|(_, b)| b.capacity())
            .map(|(i, _)| i);
        if let Some(i) = fits {
            return idle.remove(i);
        }
        drop(idle);
        self.allocated.fetch_add(1, Ordering::Relaxed);
        Vec::with_capacity(class)
    }

    /// Gives `buf` back for reuse; when that would keep more than the limit idle, the smallest
    /// idle buffers are freed first.
    pub(crate) fn put(self: &Arc<Self>, buf: Vec<u8>) {
        if buf.capacity() == 0
            || buf.capacity() > self.max_idle_bytes
            || self.closed.load(Ordering::Acquire)
        {
            return;
        }
        let mut freed = Vec::new();
        let mut idle = self.idle();
        // Checked again under the lock: a close between the check above and here has emptied
        // the pool and must stay so.
        if self.closed.load(Ordering::Acquire) {
            return;
        }
        idle.bytes += buf.capacity();
        idle.buffers.push(buf);
        idle.last_used = Some(Instant::now());
        if idle.trim_timer.is_none() {
            idle.trim_timer = self.schedule_trim();
        }
        while idle.bytes > self.max_idle_bytes {
            let smallest = idle
                .buffers
                .iter()
                .enumerate()
                .min_by_key(|(_, b)| b.capacity())
                .map(|(i, _)| i);
            match smallest {
                Some(i) => freed.push(idle.remove(i)),
                None => break,
            }
        }
        drop(idle);
        drop(freed); // freed outside the lock
    }

    /// Starts the timer that frees every idle buffer once the pool has been unused for
    /// [`IDLE_TRIM_AFTER`]; `None` when no runtime is known to run it on. The timer holds the
    /// pool weakly, and a dropped pool aborts it.
    fn schedule_trim(self: &Arc<Self>) -> Option<tokio::task::AbortHandle> {
        let runtime = self.runtime.get()?;
        let pool = Arc::downgrade(self);
        let task = runtime.spawn(async move {
            loop {
                let due = {
                    let Some(pool) = pool.upgrade() else { return };
                    let idle = pool.idle();
                    let last = idle.last_used.unwrap_or_else(Instant::now);
                    crate::time::after(last, IDLE_TRIM_AFTER)
                };
                tokio::time::sleep_until(due).await;
                let Some(pool) = pool.upgrade() else { return };
                let mut idle = pool.idle();
                let unused_since = idle.last_used.unwrap_or_else(Instant::now);
                if crate::time::after(unused_since, IDLE_TRIM_AFTER) <= Instant::now() {
                    let freed = std::mem::take(&mut idle.buffers);
                    idle.bytes = 0;
                    idle.trim_timer = None;
                    drop(idle);
                    tracing::debug!(
                        buffers = freed.len(),
                        "CloudFetch buffer pool unused: idle buffers freed"
                    );
                    return;
                }
            }
        });
        Some(task.abort_handle())
    }

    /// Frees every idle buffer and stops the trimming timer; buffers given back later are freed
    /// at once. Called when the client closes.
    pub(crate) fn close(&self) {
        self.closed.store(true, Ordering::Release);
        let mut idle = self.idle();
        let freed = std::mem::take(&mut idle.buffers);
        idle.bytes = 0;
        let timer = idle.trim_timer.take();
        drop(idle);
        if let Some(timer) = timer {
            timer.abort();
        }
        drop(freed);
    }

    /// How many buffers [`take`](Self::take) has allocated (found no idle one that fitted).
    #[cfg(test)]
    pub(crate) fn allocated(&self) -> u64 {
        self.allocated.load(Ordering::Relaxed)
    }

    /// Idle buffers and their total capacity in bytes.
    #[cfg(test)]
    pub(crate) fn idle_stats(&self) -> (usize, usize) {
        let idle = self.idle();
        (idle.buffers.len(), idle.bytes)
    }

    /// `buf` as shared bytes that give it back to this pool (if the pool still exists) once the
    /// last clone, and every Arrow buffer sliced from them, is dropped.
    pub(crate) fn share(self: &Arc<Self>, buf: Vec<u8>) -> Bytes {
        Bytes::from_owner(Pooled {
            buf,
            pool: Arc::downgrade(self),
        })
    }
}

impl Drop for BufferPool {
    fn drop(&mut self) {
        if let Some(timer) = self.idle().trim_timer.take() {
            timer.abort();
        }
    }
}

/// A buffer owned by the bytes (and Arrow arrays) that point into it.
struct Pooled {
    buf: Vec<u8>,
    pool: Weak<BufferPool>,
}

impl AsRef<[u8]> for Pooled {
    fn as_ref(&self) -> &[u8] {
        &self.buf
    }
}

impl Drop for Pooled {
    fn drop(&mut self) {
        if let Some(pool) = self.pool.upgrade() {
            pool.put(std::mem::take(&mut self.buf));
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    const K: usize = 1024;

    #[test]
    fn size_classes_round_up_by_a_thirty_second_and_at_least_64_kib() {
        assert_eq!(size_class(0), 64 * K);
        assert_eq!(size_class(1), 64 * K);
        assert_eq!(size_class(64 * K), 64 * K);
        assert_eq!(size_class(2_000_000), 1_984 * K); // 31 steps of 64 KiB
        assert_eq!(size_class(2_100_000), 2_176 * K); // 17 steps of 128 KiB
        assert_eq!(size_class(4 * K * K), 4 * K * K);
        assert_eq!(size_class(4 * K * K + 1), 4 * K * K + 256 * K);
        assert_eq!(size_class(usize::MAX), usize::MAX);
    }

    #[test]
    fn take_reuses_the_smallest_idle_buffer_that_fits() {
        let pool = BufferPool::new(usize::MAX);
        let new = pool.take(100 * K);
        assert_eq!(new.capacity(), 128 * K, "a new buffer of the size class");
        pool.put(Vec::with_capacity(4 * K * K));
        pool.put(new);
        pool.put(Vec::with_capacity(2 * K * K));
        assert_eq!(pool.take(1_500_000).capacity(), 2 * K * K);
        assert_eq!(pool.take(100 * K).capacity(), 128 * K);
        assert_eq!(pool.idle_stats(), (1, 4 * K * K));
        // Fits, but more than half as large again: left for a larger file.
        assert_eq!(pool.take(2 * K * K).capacity(), 2 * K * K);
        assert_eq!(pool.idle_stats(), (1, 4 * K * K));
        assert_eq!(pool.take(3 * K * K).capacity(), 4 * K * K);
    }

    #[test]
    fn put_keeps_at_most_max_idle_bytes_freeing_the_smallest_first() {
        let pool = BufferPool::new(100);
        pool.put(Vec::with_capacity(40));
        pool.put(Vec::with_capacity(30));
        pool.put(Vec::with_capacity(50));
        assert_eq!(pool.idle_stats(), (2, 90), "the 30-byte one went");
        pool.put(Vec::with_capacity(101));
        assert_eq!(
            pool.idle_stats(),
            (2, 90),
            "larger than the limit: never kept"
        );
        pool.put(Vec::new());
        assert_eq!(
            pool.idle_stats(),
            (2, 90),
            "a buffer without memory is not kept"
        );
    }

    #[test]
    fn shared_bytes_return_their_buffer_when_the_last_slice_is_dropped() {
        let pool = BufferPool::new(1 << 20);
        let mut buf = Vec::with_capacity(64);
        buf.extend_from_slice(b"hello world");
        let bytes = pool.share(buf);
        let slice = bytes.slice(6..);
        drop(bytes);
        assert_eq!(
            pool.idle_stats().0,
            0,
            "a slice still points into the buffer"
        );
        assert_eq!(&slice[..], b"world");
        drop(slice);
        assert_eq!(pool.idle_stats(), (1, 64));
    }

    #[tokio::test(start_paused = true)]
    async fn idle_buffers_are_freed_once_the_pool_is_unused_for_a_minute() {
        let pool = BufferPool::new(1 << 20);
        let buf = pool.take(1000);
        pool.put(buf);
        assert_eq!(pool.idle_stats().0, 1);
        tokio::time::sleep(IDLE_TRIM_AFTER - Duration::from_secs(1)).await;
        assert_eq!(pool.idle_stats().0, 1, "not yet");
        // Used again: the minute starts over.
        let buf = pool.take(1000);
        pool.put(buf);
        tokio::time::sleep(IDLE_TRIM_AFTER / 2).await;
        assert_eq!(pool.idle_stats().0, 1, "used half a minute ago");
        tokio::time::sleep(IDLE_TRIM_AFTER / 2 + Duration::from_secs(1)).await;
        assert_eq!(pool.idle_stats(), (0, 0), "unused for a minute: freed");
        // And it keeps working: the next buffer given back starts a new timer.
        let buf = pool.take(1000);
        pool.put(buf);
        tokio::time::sleep(IDLE_TRIM_AFTER + Duration::from_secs(1)).await;
        assert_eq!(pool.idle_stats(), (0, 0));
    }

    #[tokio::test]
    async fn a_closed_pool_frees_its_buffers_ends_its_timer_and_keeps_nothing_more() {
        let pool = BufferPool::new(1 << 20);
        let buf = pool.take(1000);
        pool.put(buf);
        let timer = pool.idle().trim_timer.clone().expect("a trim timer runs");
        pool.close();
        assert_eq!(pool.idle_stats(), (0, 0));
        tokio::task::yield_now().await;
        assert!(timer.is_finished(), "the timer was aborted");
        pool.put(Vec::with_capacity(1000));
        assert_eq!(pool.idle_stats(), (0, 0), "nothing kept after close");
        assert!(pool.idle().trim_timer.is_none());
    }

    #[tokio::test]
    async fn a_dropped_pool_ends_its_timer() {
        let pool = BufferPool::new(1 << 20);
        let buf = pool.take(1000);
        pool.put(buf);
        let timer = pool.idle().trim_timer.clone().expect("a trim timer runs");
        drop(pool);
        tokio::task::yield_now().await;
        assert!(timer.is_finished());
    }

    #[test]
    fn a_buffer_outliving_its_pool_is_simply_freed() {
        let pool = BufferPool::new(1 << 20);
        let bytes = pool.share(vec![1, 2, 3]);
        drop(pool);
        assert_eq!(&bytes[..], &[1, 2, 3]);
        drop(bytes); // no pool to return to: must not panic
    }
}
