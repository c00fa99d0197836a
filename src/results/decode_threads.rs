//! The client's decode threads: one small fixed pool for every result of a client, which
//! decompresses and decodes CloudFetch files and decodes large inline pages, so that decoding
//! stays off the async workers and N concurrent results do not start N pools.
//!
//! Why a fixed pool and not `spawn_blocking` per job: a blocking task per file spreads the
//! allocations over many threads and the allocator's per-thread arenas, which doubled peak RSS
//! when measured; a few long-lived threads do not. The threads start with the first job (a
//! client that never decodes a large result starts none) and exit once the pool is dropped
//! (with the client and the last result that uses it), after the job in hand.

use std::panic::{catch_unwind, AssertUnwindSafe};
use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::{mpsc, Arc, Mutex};

use tokio::sync::oneshot;

use crate::error::{Error, Result};

/// One unit of work.
type Job = Box<dyn FnOnce() + Send>;

/// A fixed number of threads running jobs in the order they were queued.
#[derive(Debug)]
pub(crate) struct DecodeThreads {
    size: usize,
    /// The queue, created with the threads at the first job.
    jobs: Mutex<Option<mpsc::Sender<Job>>>,
    live: Arc<AtomicUsize>,
}

impl DecodeThreads {
    /// A pool of `size` threads (at least 1), none started yet.
    pub(crate) fn new(size: usize) -> Self {
        DecodeThreads {
            size: size.max(1),
            jobs: Mutex::new(None),
            live: Arc::new(AtomicUsize::new(0)),
        }
    }

    /// How many threads the pool runs.
    pub(crate) fn size(&self) -> usize {
        self.size
    }

    /// Queues `job`. Fails when no thread could be started.
    pub(crate) fn run(&self, job: impl FnOnce() + Send + 'static) -> Result<()> {
        // The lock is held only to start the threads once and to queue (which never blocks).
        let mut jobs = self.jobs.lock().unwrap_or_else(|e| e.into_inner());
        let sender = match jobs.as_ref() {
            Some(sender) => sender,
            None => jobs.insert(self.start()?),
        };
        sender
            .send(Box::new(job))
            .map_err(|_| Error::decode("the decode threads have stopped"))
    }

    /// Runs `work` on a decode thread and waits for its result without blocking the async
    /// worker. A panic in `work` is a decode error.
    pub(crate) async fn decode<T: Send + 'static>(
        &self,
        work: impl FnOnce() -> Result<T> + Send + 'static,
    ) -> Result<T> {
        let (reply, result) = oneshot::channel();
        self.run(move || {
            if reply.is_closed() {
                return; // nobody waits for it any more: skip the work
            }
            let outcome = catch_unwind(AssertUnwindSafe(work))
                .unwrap_or_else(|_| Err(Error::decode("the decoder failed (it panicked)")));
            let _ = reply.send(outcome);
        })?;
        result
            .await
            .unwrap_or_else(|_| Err(Error::decode("a decode thread stopped mid-job")))
    }

    /// Starts the threads; returns the sending side of their queue.
    fn start(&self) -> Result<mpsc::Sender<Job>> {
        let (jobs, queue) = mpsc::channel::<Job>();
        let queue = Arc::new(Mutex::new(queue));
        for n in 0..self.size {
            let queue = queue.clone();
            self.live.fetch_add(1, Ordering::SeqCst);
            let alive = LiveGuard(self.live.clone());
            let spawned = std::thread::Builder::new()
                .name(format!("dbsql-decode-{n}"))
                .spawn(move || work(&queue, alive));
            if let Err(e) = spawned {
                self.live.fetch_sub(1, Ordering::SeqCst);
                if n == 0 {
                    return Err(Error::config(format!(
                        "could not start a decode thread: {e}"
                    )));
                }
                tracing::debug!(error = %e, threads = n, "fewer decode threads than configured");
                break;
            }
        }
        Ok(jobs)
    }

    /// Counts the running threads (they exit once the pool is dropped).
    #[cfg(test)]
    pub(crate) fn live_threads(&self) -> Arc<AtomicUsize> {
        self.live.clone()
    }
}

/// A thread's loop: take the next job until the queue is closed. A job's panic is caught so
/// that the thread lives on.
fn work(queue: &Mutex<mpsc::Receiver<Job>>, _alive: LiveGuard) {
    loop {
        let job = {
            let queue = queue.lock().unwrap_or_else(|e| e.into_inner());
            queue.recv()
        };
        let Ok(job) = job else { return };
        let _ = catch_unwind(AssertUnwindSafe(job));
    }
}

/// Counts a thread as live until it exits.
struct LiveGuard(Arc<AtomicUsize>);

impl Drop for LiveGuard {
    fn drop(&mut self) {
        self.0.fetch_sub(1, Ordering::SeqCst);
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::time::Duration;

    async fn eventually_zero(live: &AtomicUsize) {
        for _ in 0..500 {
            if live.load(Ordering::SeqCst) == 0 {
                return;
            }
            tokio::time::sleep(Duration::from_millis(10)).await;
        }
        panic!("threads still running");
    }

    #[tokio::test]
    async fn threads_start_with_the_first_job_and_end_with_the_pool() {
        let pool = DecodeThreads::new(2);
        let live = pool.live_threads();
        assert_eq!(live.load(Ordering::SeqCst), 0, "none before any job");
        let names = pool
            .decode(|| Ok(std::thread::current().name().map(str::to_string)))
            .await
            .unwrap();
        assert!(names.unwrap().starts_with("dbsql-decode-"));
        assert_eq!(live.load(Ordering::SeqCst), 2);
        // Many jobs, one pool: still two threads.
        let mut all = Vec::new();
        for i in 0..20 {
            all.push(pool.decode(move || Ok(i * 2)));
        }
        let results = futures::future::join_all(all).await;
        assert_eq!(results.into_iter().map(Result::unwrap).sum::<i32>(), 380);
        assert_eq!(live.load(Ordering::SeqCst), 2);
        drop(pool);
        eventually_zero(&live).await;
    }

    #[tokio::test]
    async fn a_panicking_job_is_an_error_and_the_threads_live_on() {
        let pool = DecodeThreads::new(1);
        let err = pool.decode::<()>(|| panic!("bad input")).await.unwrap_err();
        assert!(err.message().contains("panicked"), "{err}");
        assert_eq!(pool.decode(|| Ok(7)).await.unwrap(), 7);
    }
}
