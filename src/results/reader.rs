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
/// start at, and whether more links follow. Called again only when the previous call failed.
pub(crate) type StartCloudFetch =
    Box<dyn FnMut(Vec<ResultLink>, i64, bool) -> Result<CloudFetchStream> + Send + Sync>;

/// The reading state of one result.
pub(crate) struct ResultReader {
    source: Arc<dyn PageSource>,
    /// Whether pages carry row offsets, checked against the rows read and asked for explicitly
    /// (not on plain HiveServer2 servers, which read until an empty page instead).
    offsets: bool,
    /// How CloudFetch starts.
    start_cloudfetch: StartCloudFetch,
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
            start_cloudfetch,
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

    /// Puts `batch` back in front of the batches in hand: the next read starts with it.
    pub(crate) fn unread(&mut self, batch: RecordBatch) {
        self.pending.push_front(batch);
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
                if self.cloudfetch.is_some() {
                    return Err(Error::protocol(
                        "the server sent CloudFetch links twice for one result",
                    ));
                }
                // A pipeline that fails to start leaves the reader as it was: a retried read
                // fetches the same page again and tries again.
                let stream =
                    (self.start_cloudfetch)(links, self.rows_received, has_more.unwrap_or(false))?;
                self.more_rows = false;
                self.cloudfetch = Some(stream);
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

#[cfg(test)]
mod tests {
    use std::sync::Mutex;

    use arrow_array::Int64Array;
    use arrow_schema::{DataType, Field, Schema};

    use super::*;
    use crate::error::ErrorKind;
    use crate::http::RetryPolicy;

    /// Pages handed out in order, and the offsets they were asked for at.
    #[derive(Debug, Default)]
    struct Script {
        pages: Mutex<VecDeque<Page>>,
        asked: Mutex<Vec<Option<i64>>>,
    }

    impl fmt::Debug for Page {
        fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
            match self {
                Page::Rows { start, batches, .. } => write!(f, "Rows({start}, {})", batches.len()),
                Page::Links { start, links, .. } => write!(f, "Links({start}, {})", links.len()),
                Page::End => f.write_str("End"),
            }
        }
    }

    #[async_trait]
    impl LinkSource for Script {
        async fn fetch_links(&self, _: i64) -> Result<(Vec<ResultLink>, bool)> {
            Err(Error::protocol("no links in this script"))
        }
    }

    #[async_trait]
    impl PageSource for Script {
        async fn page(&self, start_row_offset: Option<i64>) -> Result<Page> {
            self.asked.lock().unwrap().push(start_row_offset);
            Ok(self.pages.lock().unwrap().pop_front().unwrap_or(Page::End))
        }

        fn closed(&self) -> bool {
            false
        }
    }

    fn batch(from: i64, rows: i64) -> RecordBatch {
        let schema = Arc::new(Schema::new(vec![Field::new("id", DataType::Int64, false)]));
        let ids = Int64Array::from_iter_values(from..from + rows);
        RecordBatch::try_new(schema, vec![Arc::new(ids)]).unwrap()
    }

    fn rows(start: i64, rows: i64, has_more: bool) -> Page {
        Page::Rows {
            start,
            batches: vec![batch(start, rows)],
            has_more: Some(has_more),
        }
    }

    fn reader(pages: Vec<Page>, offsets: bool) -> (ResultReader, Arc<Script>) {
        let script = Arc::new(Script {
            pages: Mutex::new(pages.into()),
            ..Script::default()
        });
        let no_cloudfetch: StartCloudFetch =
            Box::new(|_, _, _| Err(Error::protocol("CloudFetch cannot start here")));
        let reader = ResultReader::new(
            script.clone(),
            offsets,
            EmptyPages::within(&RetryPolicy::default()),
            no_cloudfetch,
        );
        (reader, script)
    }

    /// Reads every batch as `Operation` does; the ids in order, or the first error.
    async fn read_all(reader: &mut ResultReader) -> Result<Vec<i64>> {
        let mut ids = Vec::new();
        loop {
            while let Some(b) = reader.pop_pending() {
                let column = b.column(0).as_any().downcast_ref::<Int64Array>().unwrap();
                ids.extend(column.values().iter().copied());
            }
            if !reader.wants_page() {
                return Ok(ids);
            }
            let page = reader.next_page().await?;
            reader.accept(page)?;
        }
    }

    #[tokio::test]
    async fn pages_are_read_in_order_and_asked_for_at_the_rows_read_so_far() {
        let (mut reader, script) = reader(
            vec![rows(0, 5, true), rows(5, 3, true), rows(8, 2, false)],
            true,
        );
        assert_eq!(
            read_all(&mut reader).await.unwrap(),
            (0..10).collect::<Vec<_>>()
        );
        assert_eq!(
            *script.asked.lock().unwrap(),
            vec![Some(0), Some(5), Some(8)]
        );
    }

    #[tokio::test]
    async fn a_page_that_does_not_start_where_the_rows_read_end_is_an_error() {
        for page in [
            rows(6, 3, false),
            Page::Links {
                start: 4,
                links: Vec::new(),
                has_more: Some(false),
            },
        ] {
            let (mut reader, _) = reader(vec![rows(0, 5, true), page], true);
            let e = read_all(&mut reader).await.unwrap_err();
            assert_eq!(e.kind(), ErrorKind::Decode);
            assert!(e.to_string().contains("5 rows were read so far"), "{e}");
        }
    }

    #[tokio::test]
    async fn without_offsets_the_result_ends_at_the_first_empty_page() {
        // Plain HiveServer2: no offsets asked for or checked, `hasMoreRows` always false.
        let (mut reader, script) = reader(
            vec![rows(0, 4, false), rows(0, 3, false), rows(0, 0, false)],
            false,
        );
        assert_eq!(read_all(&mut reader).await.unwrap().len(), 7);
        assert_eq!(*script.asked.lock().unwrap(), vec![None, None, None]);
    }

    #[tokio::test]
    async fn a_cloudfetch_start_that_fails_leaves_the_page_to_be_fetched_again() {
        let links = Page::Links {
            start: 0,
            links: Vec::new(),
            has_more: Some(false),
        };
        let (mut reader, _) = reader(vec![links], true);
        let page = reader.next_page().await.unwrap();
        let e = reader.accept(page).unwrap_err();
        assert!(e.to_string().contains("cannot start"), "{e}");
        assert!(
            reader.wants_page(),
            "the read is not over: the rows are still to come"
        );
        assert!(reader.cloudfetch().is_none());
    }

    #[tokio::test]
    async fn unread_batches_come_back_first_and_stop_drops_everything() {
        let (mut reader, _) = reader(vec![rows(0, 5, true), rows(5, 5, false)], true);
        let page = reader.next_page().await.unwrap();
        reader.accept(page).unwrap();
        let first = reader.pop_pending().unwrap();
        reader.unread(first.slice(2, 3));
        let again = reader.pop_pending().unwrap();
        let ids = again
            .column(0)
            .as_any()
            .downcast_ref::<Int64Array>()
            .unwrap();
        assert_eq!(ids.values().to_vec(), vec![2, 3, 4]);
        reader.unread(again);
        reader.stop();
        assert!(reader.pop_pending().is_none());
        assert!(
            reader.prefetch.is_none(),
            "the prefetch of page 2 is dropped"
        );
    }
}
