//! The link source: the result's links in row order, with further pages fetched ahead of the
//! downloads, each link checked to start where the previous one ended; and the refresh of one
//! chunk's link (expired or refused) with FetchResults at the chunk's row offset.

use std::collections::BTreeMap;
use std::fmt;
use std::sync::Arc;

use async_trait::async_trait;
use tokio::sync::mpsc;

use super::pipeline::Step;
use super::stats::SummaryCounters;
use crate::error::{redact_url, Error, ErrorKind, Result};
use crate::results::empty_pages::EmptyPages;

/// One presigned link to a result file, as the server announced it: the pipeline's own type,
/// whatever protocol delivered it (from Thrift: `TSparkArrowResultLink`, converted with `From` in
/// `results::from_thrift`).
/// Its `Debug` never shows the URL's query (the presigned signature) or the header values.
#[derive(Clone, PartialEq, Eq)]
pub(crate) struct ResultLink {
    /// The presigned URL of the file.
    pub file_link: String,
    /// When the URL stops working, in milliseconds since the Unix epoch (server clock).
    pub expiry_time: i64,
    /// Row offset of the file's first row in the result.
    pub start_row_offset: i64,
    /// Rows in the file.
    pub row_count: i64,
    /// Bytes of the file as served (LZ4-compressed when the result is).
    pub bytes_num: i64,
    /// Headers the download must carry (cloud storage credentials, encryption keys).
    pub http_headers: Option<BTreeMap<String, String>>,
}

impl fmt::Debug for ResultLink {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("ResultLink")
            .field("file_link", &redact_url(&self.file_link))
            .field("expiry_time", &self.expiry_time)
            .field("start_row_offset", &self.start_row_offset)
            .field("row_count", &self.row_count)
            .field("bytes_num", &self.bytes_num)
            .field(
                "http_headers",
                &self
                    .http_headers
                    .as_ref()
                    .map(|h| h.keys().collect::<Vec<_>>()),
            )
            .finish()
    }
}

/// Where the pages of links come from: FetchResults(`startRowOffset`, FETCH_NEXT) on the operation.
#[async_trait]
pub(crate) trait LinkSource: Send + Sync + fmt::Debug + 'static {
    /// The links of the result page that starts at row `start_row_offset`, and whether more rows
    /// follow that page (`hasMoreRows`). Used both for the next page (the offset where the
    /// previous links end) and to refresh one link (that link's own offset).
    async fn fetch_links(&self, start_row_offset: i64) -> Result<(Vec<ResultLink>, bool)>;
}

/// Which file of the result a link is, for error messages and stats: "chunk 3 (rows 300..400)".
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) struct Chunk {
    /// Position in the result, from 0.
    pub index: usize,
    /// Row offset of the first row.
    pub start_row_offset: i64,
    /// Rows announced by the link.
    pub row_count: i64,
    /// Bytes announced by the link.
    pub bytes_num: i64,
}

impl Chunk {
    pub(crate) fn new(index: usize, link: &ResultLink) -> Self {
        Chunk {
            index,
            start_row_offset: link.start_row_offset,
            row_count: link.row_count,
            bytes_num: link.bytes_num,
        }
    }
}

impl fmt::Display for Chunk {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(
            f,
            "chunk {} (rows {}..{})",
            self.index,
            self.start_row_offset,
            self.start_row_offset.saturating_add(self.row_count)
        )
    }
}

/// Checks that each link starts where the previous one ended.
#[derive(Debug)]
struct Coverage {
    next_index: usize,
    next_offset: i64,
}

impl Coverage {
    fn accept(&mut self, link: &ResultLink) -> Result<()> {
        let chunk = Chunk::new(self.next_index, link);
        if link.row_count < 0 {
            return Err(Error::decode(format!(
                "the link of {chunk} announces a negative row count"
            )));
        }
        if link.start_row_offset != self.next_offset {
            let what = if link.start_row_offset > self.next_offset {
                format!(
                    "rows {}..{} are missing (gap)",
                    self.next_offset, link.start_row_offset
                )
            } else {
                format!(
                    "rows {}..{} would come twice (overlap)",
                    link.start_row_offset, self.next_offset
                )
            };
            return Err(Error::decode(format!(
                "the link of {chunk} starts at row {} but the links before it end at row {}: {what}",
                link.start_row_offset, self.next_offset
            )));
        }
        self.next_index += 1;
        self.next_offset = link.start_row_offset.saturating_add(link.row_count);
        Ok(())
    }
}

/// Everything the link task needs.
#[derive(Debug)]
pub(crate) struct LinkFeed {
    pub source: Arc<dyn LinkSource>,
    pub first_links: Vec<ResultLink>,
    pub more_links: bool,
    pub first_row_offset: i64,
    pub summary: Arc<SummaryCounters>,
}

impl LinkFeed {
    /// Sends every link of the result, in order, into `out` (whose capacity is the prefetch
    /// window), fetching the next page once the current one is in the window; then `End`, or
    /// `Failed` on a fetch error or a gap/overlap. Returns early when `out` is closed.
    pub(crate) async fn run(self, out: mpsc::Sender<Step<ResultLink>>) {
        let LinkFeed {
            source,
            first_links,
            more_links,
            first_row_offset,
            summary,
        } = self;
        let mut coverage = Coverage {
            next_index: 0,
            next_offset: first_row_offset,
        };
        let mut page = first_links;
        let mut has_more = more_links;
        // The server may still be writing files: empty pages are waited on with backoff.
        let mut empty_pages = EmptyPages::default();
        loop {
            for link in page.drain(..) {
                if let Err(e) = coverage.accept(&link) {
                    let _ = out.send(Step::Failed(e)).await;
                    return;
                }
                summary.link_received();
                if out.send(Step::Item(link)).await.is_err() {
                    return;
                }
            }
            if !has_more {
                let _ = out.send(Step::End).await;
                return;
            }
            let delay = empty_pages.delay();
            if !delay.is_zero() {
                tokio::time::sleep(delay).await;
            }
            match source.fetch_links(coverage.next_offset).await {
                Ok((links, more)) => {
                    let empty = links.is_empty() && more;
                    if let Err(e) = empty_pages.record(empty, "links", coverage.next_offset) {
                        let _ = out.send(Step::Failed(e)).await;
                        return;
                    }
                    page = links;
                    has_more = more;
                }
                Err(e) => {
                    let _ = out.send(Step::Failed(e)).await;
                    return;
                }
            }
        }
    }
}

/// A fresh link for `chunk`: FetchResults at the chunk's row offset, then the link that starts
/// there. The new link must cover the same rows as the old one.
pub(crate) async fn refresh(source: &dyn LinkSource, chunk: &Chunk) -> Result<ResultLink> {
    let (links, _) = source
        .fetch_links(chunk.start_row_offset)
        .await
        .map_err(|e| {
            Error::new(
                ErrorKind::CloudFetch,
                format!("{chunk}: fetching a fresh link failed: {e}"),
            )
            .with_http_status(e.http_status())
        })?;
    let link = links
        .into_iter()
        .find(|l| l.start_row_offset == chunk.start_row_offset)
        .ok_or_else(|| {
            Error::new(
                ErrorKind::CloudFetch,
                format!(
                    "{chunk}: asked for a fresh link, the server returned none that starts at row {}",
                    chunk.start_row_offset
                ),
            )
        })?;
    if link.row_count != chunk.row_count {
        return Err(Error::decode(format!(
            "{chunk}: the fresh link covers {} rows, the original {}",
            link.row_count, chunk.row_count
        )));
    }
    Ok(link)
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::results::cloudfetch::tests::link;

    #[test]
    fn coverage_accepts_contiguous_links_and_names_gaps_and_overlaps() {
        let mut c = Coverage {
            next_index: 0,
            next_offset: 0,
        };
        c.accept(&link(0, 0, 100)).unwrap();
        c.accept(&link(1, 100, 50)).unwrap();
        c.accept(&link(2, 150, 0)).unwrap();

        let gap = c.accept(&link(3, 160, 10)).unwrap_err();
        assert_eq!(gap.kind(), ErrorKind::Decode);
        assert!(gap.message().contains("chunk 3 (rows 160..170)"), "{gap}");
        assert!(gap.message().contains("rows 150..160 are missing"), "{gap}");

        let overlap = c.accept(&link(3, 140, 10)).unwrap_err();
        assert!(
            overlap.message().contains("rows 140..150 would come twice"),
            "{overlap}"
        );

        let negative = c.accept(&link(3, 150, -1)).unwrap_err();
        assert!(
            negative.message().contains("negative row count"),
            "{negative}"
        );
    }
}
