//! The pipeline's orchestration: three tasks joined by channels, and the consumer's end.
//!
//! ```text
//!  link task ──links (prefetch window)──▶ scheduler ──chunks in order──▶ order task ──▶ consumer
//!  (pages, gap/overlap   reserves budget in chunk order,    awaits downloads in order,  next_batch()
//!   checks)              spawns one download per chunk      queues them for decoding
//!                        (bounded concurrency)              (decode-ahead window)
//! ```
//!
//! Every message is a [`Step`]: an item, a failure (delivered after every item before it, so the
//! consumer gets all good rows, then the error) or the end. Every task and every download is
//! owned by a handle that aborts it on drop: dropping the [`Pipeline`] (or cancelling it) drops
//! the channels and the handles, which stops everything; the decode threads exit once their job
//! queue is gone.

use std::fmt;
use std::future::Future;
use std::pin::Pin;
#[cfg(test)]
use std::sync::atomic::AtomicUsize;
use std::sync::Arc;
use std::task::{Context, Poll};

use arrow_array::RecordBatch;
#[cfg(test)]
use arrow_schema::SchemaRef;
use tokio::sync::{mpsc, oneshot, Semaphore};
use tokio::task::{AbortHandle, JoinError, JoinHandle};

use super::budget::{ByteBudget, Reservation};
use super::decode::{DecodeContext, DecodeJob, DecodePool, DecodedChunk};
use super::download::{Downloaded, Downloader};
use super::links::{Chunk, LinkFeed, ResultLink};
use super::stats::{CloudFetchSummary, SummaryCounters};
use super::CloudFetchStart;
use crate::error::{Error, ErrorKind, Result};

/// One message between the pipeline's stages.
#[derive(Debug)]
pub(crate) enum Step<T> {
    /// The next item, in row order.
    Item(T),
    /// The stage failed; nothing follows.
    Failed(Error),
    /// The result is complete; nothing follows.
    End,
}

/// A spawned task that is aborted when its handle is dropped.
pub(crate) struct Task<T>(JoinHandle<T>);

impl<T: Send + 'static> Task<T> {
    pub(crate) fn spawn(future: impl Future<Output = T> + Send + 'static) -> Self {
        Task(tokio::spawn(future))
    }
}

impl<T> Task<T> {
    /// A handle that aborts the task without owning it.
    fn abort_handle(&self) -> AbortHandle {
        self.0.abort_handle()
    }
}

impl<T> Future for Task<T> {
    type Output = std::result::Result<T, JoinError>;

    fn poll(mut self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<Self::Output> {
        Pin::new(&mut self.0).poll(cx)
    }
}

impl<T> Drop for Task<T> {
    fn drop(&mut self) {
        self.0.abort();
    }
}

impl<T> fmt::Debug for Task<T> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_tuple("Task").field(&self.0.id()).finish()
    }
}

/// A chunk whose download has started.
#[derive(Debug)]
struct Scheduled {
    chunk: Chunk,
    /// The download, and the chunk's reservation, resized to the body's actual length when the
    /// download completes.
    download: Task<Result<(Downloaded, Reservation)>>,
}

/// A chunk queued for decoding (or decoded), in row order.
#[derive(Debug)]
struct Ready {
    chunk: Chunk,
    decoded: oneshot::Receiver<Result<DecodedChunk>>,
}

#[derive(Debug)]
enum State {
    Running,
    Done,
    Failed { kind: ErrorKind, message: String },
}

/// The running pipeline of one result, seen from its consumer.
pub(crate) struct Pipeline {
    #[cfg(test)]
    schema: SchemaRef,
    ready: mpsc::Receiver<Step<Ready>>,
    /// The chunk being decoded that the consumer waits for (kept here so that a dropped
    /// `next_batch` future loses nothing).
    pending: Option<Ready>,
    /// The decoded chunk whose batches are being handed out.
    current: Option<DecodedChunk>,
    state: State,
    tasks: Vec<Task<()>>,
    budget: Arc<ByteBudget>,
    summary: Arc<SummaryCounters>,
    #[cfg(test)]
    decode_threads: Arc<AtomicUsize>,
}

impl fmt::Debug for Pipeline {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("Pipeline")
            .field("state", &self.state)
            .field("current", &self.current.as_ref().map(|c| c.chunk))
            .field("budget_in_use", &self.budget.in_use())
            .finish_non_exhaustive()
    }
}

impl Pipeline {
    pub(crate) fn start(start: CloudFetchStart) -> Result<Self> {
        if tokio::runtime::Handle::try_current().is_err() {
            return Err(Error::config(
                "CloudFetch results must be read within a tokio runtime",
            ));
        }
        let CloudFetchStart {
            config,
            transport,
            link_source,
            first_links,
            more_links,
            first_row_offset,
            schema,
            lz4,
            observer,
            cancelled,
            buffers,
            decode_threads,
        } = start;
        let summary = Arc::new(SummaryCounters::default());
        let budget = Arc::new(ByteBudget::new(config.max_buffered_bytes));
        #[cfg(test)]
        let live_decode_threads = decode_threads.live_threads();
        let window = decode_threads.size();
        let pool = DecodePool::new(
            decode_threads,
            DecodeContext {
                schema: schema.clone(),
                lz4,
                observer,
                summary: summary.clone(),
                buffers: buffers.clone(),
                max_decompressed: config.max_decompressed_file_bytes(),
            },
        );

        let (links_tx, links_rx) = mpsc::channel(config.link_prefetch.max(1));
        let (scheduled_tx, scheduled_rx) = mpsc::unbounded_channel();
        // Decode-ahead: one file per decode thread plus one decoded and waiting; the consumer
        // holds one more. Decoded files count against the byte budget at their decoded size, so
        // this window decides how much of the budget decoded files may take, not the total.
        let (ready_tx, ready_rx) = mpsc::channel(window + 1);

        let feed = LinkFeed {
            source: link_source.clone(),
            first_links,
            more_links,
            first_row_offset,
            summary: summary.clone(),
        };
        let permits = Arc::new(Semaphore::new(config.max_concurrent_downloads.max(1)));
        let downloader = Arc::new(Downloader::new(transport, link_source, config, buffers));
        let mut tasks = vec![
            Task::spawn(feed.run(links_tx)),
            Task::spawn(schedule(
                links_rx,
                scheduled_tx,
                budget.clone(),
                permits,
                downloader,
            )),
            Task::spawn(order(scheduled_rx, ready_tx, pool)),
        ];
        if let Some(cancelled) = cancelled {
            // A cancel stops the stages at once, not at the next read: aborting them drops the
            // channels, which drops (and so aborts) every scheduled download, and the decode
            // pool, whose threads then exit. The consumer sees the cancel at its next read.
            let stages: Vec<AbortHandle> = tasks.iter().map(Task::abort_handle).collect();
            tasks.push(Task::spawn(async move {
                cancelled.await;
                tracing::debug!("statement cancelled: stopping the CloudFetch downloads");
                stages.iter().for_each(AbortHandle::abort);
            }));
        }
        Ok(Pipeline {
            #[cfg(test)]
            schema,
            ready: ready_rx,
            pending: None,
            current: None,
            state: State::Running,
            tasks,
            budget,
            summary,
            #[cfg(test)]
            decode_threads: live_decode_threads,
        })
    }

    #[cfg(test)]
    pub(crate) fn schema(&self) -> SchemaRef {
        self.schema.clone()
    }

    pub(crate) async fn next_batch(&mut self) -> Result<Option<RecordBatch>> {
        loop {
            if let Some(current) = &mut self.current {
                if let Some(batch) = current.batches.pop_front() {
                    if current.batches.is_empty() {
                        // The last batch is handed out: release the chunk's budget now, so the
                        // next chunk's reservation never waits on this one.
                        self.current = None;
                    }
                    return Ok(Some(batch));
                }
                self.current = None;
            }
            if let Some(ready) = &mut self.pending {
                let chunk = ready.chunk;
                let decoded = (&mut ready.decoded).await;
                self.pending = None;
                match decoded {
                    Ok(Ok(decoded)) => {
                        self.summary.chunk_iterated();
                        self.current = Some(decoded);
                        continue;
                    }
                    Ok(Err(e)) => return Err(self.fail(e)),
                    Err(_) => {
                        return Err(self.fail(Error::new(
                            ErrorKind::CloudFetch,
                            format!("{chunk}: decoding stopped unexpectedly"),
                        )))
                    }
                }
            }
            match &self.state {
                State::Running => {}
                State::Done => return Ok(None),
                State::Failed { kind, message } => {
                    return Err(Error::new(*kind, message.clone()));
                }
            }
            match self.ready.recv().await {
                Some(Step::Item(ready)) => self.pending = Some(ready),
                Some(Step::Failed(e)) => return Err(self.fail(e)),
                Some(Step::End) => {
                    self.state = State::Done;
                    self.tasks.clear();
                }
                None => {
                    return Err(self.fail(Error::new(
                        ErrorKind::CloudFetch,
                        "the CloudFetch pipeline stopped unexpectedly",
                    )))
                }
            }
        }
    }

    /// Stops everything; later reads fail with `Cancelled`.
    pub(crate) fn cancel(&mut self) {
        if !matches!(self.state, State::Failed { .. }) {
            self.state = State::Failed {
                kind: ErrorKind::Cancelled,
                message: "the CloudFetch result was cancelled".into(),
            };
        }
        self.stop();
    }

    /// The stream's chunk counters, shared: they stay readable after the stream is gone.
    pub(crate) fn counters(&self) -> Arc<SummaryCounters> {
        self.summary.clone()
    }

    pub(crate) fn summary(&self) -> CloudFetchSummary {
        let mut summary = self.summary.snapshot();
        summary.budget_bytes = self.budget.capacity();
        summary.budget_in_use = self.budget.in_use();
        summary.budget_peak = self.budget.peak();
        summary
    }

    /// Counts this stream's running decode threads.
    #[cfg(test)]
    pub(crate) fn decode_thread_counter(&self) -> Arc<AtomicUsize> {
        self.decode_threads.clone()
    }

    /// Records `e` as the end of the stream, stops every task, and returns `e`.
    fn fail(&mut self, e: Error) -> Error {
        self.state = State::Failed {
            kind: e.kind(),
            message: format!("the result stream already failed: {e}"),
        };
        self.stop();
        e
    }

    fn stop(&mut self) {
        self.tasks.clear();
        self.pending = None;
        self.current = None;
        self.ready.close();
        while self.ready.try_recv().is_ok() {}
    }
}

/// The scheduler: takes links in order, reserves each one's bytes of the budget (in order), waits
/// for a download slot, and starts its download.
async fn schedule(
    mut links: mpsc::Receiver<Step<ResultLink>>,
    out: mpsc::UnboundedSender<Step<Scheduled>>,
    budget: Arc<ByteBudget>,
    permits: Arc<Semaphore>,
    downloader: Arc<Downloader>,
) {
    let mut index = 0usize;
    while let Some(step) = links.recv().await {
        let link = match step {
            Step::Item(link) => link,
            Step::Failed(e) => {
                let _ = out.send(Step::Failed(e));
                return;
            }
            Step::End => {
                let _ = out.send(Step::End);
                return;
            }
        };
        let chunk = Chunk::new(index, &link);
        index += 1;
        let mut reservation = budget.reserve(budget.cost_of(link.bytes_num)).await;
        let Ok(permit) = permits.clone().acquire_owned().await else {
            return; // never closed
        };
        let downloader = downloader.clone();
        let download = Task::spawn(async move {
            let result = downloader.download(chunk, link, &mut reservation).await;
            drop(permit);
            result.map(|downloaded| (downloaded, reservation))
        });
        let scheduled = Scheduled { chunk, download };
        if out.send(Step::Item(scheduled)).is_err() {
            return;
        }
    }
}

/// The order task: awaits the downloads in chunk order and queues each file for decoding; the
/// bounded `out` channel is the decode-ahead window.
async fn order(
    mut scheduled: mpsc::UnboundedReceiver<Step<Scheduled>>,
    out: mpsc::Sender<Step<Ready>>,
    pool: DecodePool,
) {
    while let Some(step) = scheduled.recv().await {
        let next = match step {
            Step::Item(Scheduled { chunk, download }) => match download.await {
                Ok(Ok((downloaded, reservation))) => {
                    let (reply, decoded) = oneshot::channel();
                    let job = DecodeJob {
                        chunk,
                        downloaded,
                        reservation,
                        reply,
                    };
                    match pool.submit(job) {
                        Ok(()) => Step::Item(Ready { chunk, decoded }),
                        Err(e) => Step::Failed(e),
                    }
                }
                Ok(Err(e)) => Step::Failed(e),
                Err(_) => Step::Failed(Error::new(
                    ErrorKind::CloudFetch,
                    format!("{chunk}: the download task stopped unexpectedly"),
                )),
            },
            Step::Failed(e) => Step::Failed(e),
            Step::End => Step::End,
        };
        let last = !matches!(next, Step::Item(_));
        if out.send(next).await.is_err() || last {
            return;
        }
    }
}
