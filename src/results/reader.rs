//! Reading one result, whatever protocol delivers it: its pages in row order, each checked to
//! start where the rows read so far end; the next page fetched and decoded in the background
//! while the caller reads this one; a bound on empty pages; and the hand-off to the CloudFetch
//! pipeline when a page brings links instead of rows.
//!
//! The protocol side supplies the decoded pages ([`PageSource`]: FetchResults for Thrift) and
//! the start of a CloudFetch stream ([`StartCloudFetch`]); the operation adds status polling,
//! cancellation and timeouts around it.

use std::collections::VecDeque;
use std::fmt;
use std::sync::Arc;
use std::time::Duration;

use arrow_array::RecordBatch;
use async_trait::async_trait;

use crate::error::{Error, Result};
use crate::results::cloudfetch::{CloudFetchStream, LinkSource, ResultLink};
use crate::results::empty_pages::EmptyPages;

/// One page of a result, decoded.
pub(crate) enum Page {
    /// Rows, as Arrow batches.
    Rows {
        /// The row offset of the page's first row (0 where the server sends none).
        start: i64,
        batches: Vec<RecordBatch>,
        /// Whether the server says more rows follow (`None`: it did not say).
        has_more: Option<bool>,
    },
    /// CloudFetch links: the rest of the result goes through the download pipeline.
    Links {
        start: i64,
        links: Vec<ResultLink>,
        has_more: Option<bool>,
    },
    /// No rows at all: the end.
    End,
}

/// Where a result's pages come from. Its [`LinkSource`] side serves the CloudFetch pipeline's
/// further link pages and link refreshes.
#[async_trait]
pub(crate) trait PageSource: LinkSource {
    /// The page that starts at row `start_row_offset` (`None`: the next page, for servers
    /// that take no row offset), decoded.
    async fn page(&self, start_row_offset: Option<i64>) -> Result<Page>;

    /// Whether the server already closed the result: no page may be asked for any more.
    fn closed(&self) -> bool;
}

/// Starts the CloudFetch stream of a result from its first links, the row offset they must
/// start at, and whether more links follow. Called at most once.
pub(crate) type StartCloudFetch =
    Box<dyn FnOnce(Vec<ResultLink>, i64, bool) -> Result<CloudFetchStream> + Send + Sync>;

/// The reading state of one result.
pub(crate) struct ResultReader {
    source: Arc<dyn PageSource>,
    /// Whether pages carry row offsets, checked against the rows read and asked for explicitly
    /// (not on plain HiveServer2 servers, which read until an empty page instead).
    offsets: bool,
    /// How CloudFetch starts, until it has.
    start_cloudfetch: Option<StartCloudFetch>,
    /// The next page, being fetched and decoded in the background.
    prefetch: Option<AbortOnDrop<Result<Page>>>,
    /// The CloudFetch pipeline, once the result turned out to be links to files.
    cloudfetch: Option<CloudFetchStream>,
    /// Batches of pages taken in and not yet handed out.
    pending: VecDeque<RecordBatch>,
    /// The server may have more rows to fetch.
    more_rows: bool,
    /// Rows handed out or queued so far: the offset the next page must start at.
    rows_received: i64,
    /// Pages in a row that had no rows while more were announced.
    empty_pages: EmptyPages,
}

impl fmt::Debug for ResultReader {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("ResultReader")
            .field("rows_received", &self.rows_received)
            .field("more_rows", &self.more_rows)
            .field("cloudfetch", &self.cloudfetch.is_some())
            .finish_non_exhaustive()
    }
}

impl ResultReader {
    /// A reader of the pages `source` gives; `offsets` as on [`ResultReader`]; empty pages
    /// bounded by `empty_pages`.
    pub(crate) fn new(
        source: Arc<dyn PageSource>,
        offsets: bool,
        empty_pages: EmptyPages,
        start_cloudfetch: StartCloudFetch,
    ) -> Self {
        ResultReader {
            source,
            offsets,
            start_cloudfetch: Some(start_cloudfetch),
            prefetch: None,
            cloudfetch: None,
            pending: VecDeque::new(),
            more_rows: true,
            rows_received: 0,
            empty_pages,
        }
    }

    /// The next batch already in hand, if any.
    pub(crate) fn pop_pending(&mut self) -> Option<RecordBatch> {
        self.pending.pop_front()
    }

    /// The CloudFetch stream, once the result is read through one.
    pub(crate) fn cloudfetch_mut(&mut self) -> Option<&mut CloudFetchStream> {
        self.cloudfetch.as_mut()
    }

    /// The CloudFetch stream, once the result is read through one.
    pub(crate) fn cloudfetch(&self) -> Option<&CloudFetchStream> {
        self.cloudfetch.as_ref()
    }

    /// Whether another page should be asked for.
    pub(crate) fn wants_page(&self) -> bool {
        self.more_rows && !self.source.closed()
    }

    /// Stops everything: the prefetch, the CloudFetch downloads, the batches in hand.
    pub(crate) fn stop(&mut self) {
        self.pending.clear();
        self.prefetch = None;
        self.cloudfetch = None;
    }

    /// Take in one page: queue its batches (checking it starts where the last one ended) or hand
    /// its links to CloudFetch; then start fetching the next page in the background.
    pub(crate) fn accept(&mut self, page: Page) -> Result<()> {
        match page {
            Page::End => {
                self.more_rows = false;
                Ok(())
            }
            Page::Links {
                start,
                links,
                has_more,
            } => {
                // The links must go on from the rows already read (rows may come first): the
                // page's offset is checked here, each link's by the pipeline.
                if self.offsets && start != self.rows_received {
                    return Err(Error::decode(format!(
                        "the server sent links starting at row offset {start} but {} rows were read so far: rows would be lost or duplicated",
                        self.rows_received
                    )));
                }
                let start_cloudfetch = self.start_cloudfetch.take().ok_or_else(|| {
                    Error::protocol("the server sent CloudFetch links twice for one result")
                })?;
                let stream =
                    start_cloudfetch(links, self.rows_received, has_more.unwrap_or(false))?;
                self.cloudfetch = Some(stream);
                self.more_rows = false;
                Ok(())
            }
            Page::Rows {
                start,
                batches,
                has_more,
            } => {
                if self.offsets && start != self.rows_received {
                    return Err(Error::decode(format!(
                        "the server sent rows starting at offset {start} but {} rows were read so far: rows would be lost or duplicated",
                        self.rows_received
                    )));
                }
                let count: usize = batches.iter().map(|b| b.num_rows()).sum();
                self.rows_received += count as i64;
                self.pending
                    .extend(batches.into_iter().filter(|b| b.num_rows() > 0));
                self.more_rows = if self.offsets {
                    has_more.unwrap_or(false)
                } else {
                    // Plain HiveServer2 always says false: read until an empty page.
                    count > 0
                };
                if self.more_rows {
                    self.empty_pages
                        .record(count == 0, "rows", self.rows_received)?;
                }
                self.start_prefetch();
                Ok(())
            }
        }
    }

    /// Fetch and decode the next page in the background while the caller consumes this one.
    fn start_prefetch(&mut self) {
        if !self.wants_page() || self.prefetch.is_some() {
            return;
        }
        let source = self.source.clone();
        let from = self.next_offset();
        // After an empty page, the server is given a moment before it is asked again.
        let delay: Duration = self.empty_pages.delay();
        self.prefetch = Some(AbortOnDrop(tokio::spawn(async move {
            if !delay.is_zero() {
                tokio::time::sleep(delay).await;
            }
            source.page(from).await
        })));
    }

    /// The row offset the next page must start at, asked for explicitly (`startRowOffset`) so
    /// that a fetch resent after its reply was lost gets the same rows again instead of the
    /// page after them. `None` where pages carry no offsets (the next page).
    fn next_offset(&self) -> Option<i64> {
        self.offsets.then_some(self.rows_received)
    }

    /// The next page: the one prefetched, or one fetched now.
    pub(crate) async fn next_page(&mut self) -> Result<Page> {
        match self.prefetch.take() {
            Some(mut task) => match (&mut task.0).await {
                Ok(page) => page,
                Err(e) => Err(Error::protocol(format!(
                    "the task reading a result page failed: {e}"
                ))),
            },
            None => self.source.page(self.next_offset()).await,
        }
    }
}

/// A spawned task that is aborted when this handle is dropped (no task outlives its result).
struct AbortOnDrop<T>(tokio::task::JoinHandle<T>);

impl<T> Drop for AbortOnDrop<T> {
    fn drop(&mut self) {
        self.0.abort();
    }
}
