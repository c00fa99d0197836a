//! Per-chunk figures of a CloudFetch result ([`ChunkStats`], handed to a [`ChunkObserver`]) and
//! the running totals of one stream ([`CloudFetchSummary`]): the hook telemetry reads.

use std::sync::Mutex;
use std::time::Duration;

/// What one CloudFetch file cost. Carries no URL and no data.
#[derive(Debug, Clone, PartialEq)]
#[non_exhaustive]
pub struct ChunkStats {
    /// Position of the file in the result, from 0.
    pub index: usize,
    /// Row offset of the file's first row in the result.
    pub start_row_offset: i64,
    /// Rows in the file (checked against its link).
    pub rows: i64,
    /// Bytes downloaded (the body as served, LZ4-compressed when the result is).
    pub bytes: u64,
    /// Bytes of Arrow IPC data after decompression.
    pub decoded_bytes: u64,
    /// Time of the successful download attempt, request sent to whole body read.
    pub download_latency: Duration,
    /// Time from the first attempt to the whole body, retries, backoff and link refreshes included.
    pub download_total: Duration,
    /// Time spent decompressing and decoding the file.
    pub decode_latency: Duration,
    /// Download attempts made, the successful one included.
    pub attempts: u32,
    /// How many times the file's link was refreshed.
    pub link_refreshes: u32,
}

/// Receives the [`ChunkStats`] of each file once it is decoded.
///
/// Called on a decode thread: keep it short and never block (a non-blocking send into a bounded
/// queue, a few counters). A closure `Fn(&ChunkStats)` is an observer.
pub trait ChunkObserver: Send + Sync + 'static {
    /// One file has been downloaded and decoded.
    fn on_chunk(&self, stats: &ChunkStats);
}

impl<F> ChunkObserver for F
where
    F: Fn(&ChunkStats) + Send + Sync + 'static,
{
    fn on_chunk(&self, stats: &ChunkStats) {
        self(stats)
    }
}

impl std::fmt::Debug for dyn ChunkObserver {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str("ChunkObserver")
    }
}

/// Running totals of one CloudFetch stream (a snapshot).
#[derive(Debug, Clone, Default, PartialEq)]
#[non_exhaustive]
pub struct CloudFetchSummary {
    /// Links received from the server so far (files the result has, as far as known).
    pub chunks_present: u64,
    /// Files downloaded and decoded.
    pub chunks_decoded: u64,
    /// Files whose batches the consumer has started to read.
    pub chunks_iterated: u64,
    /// Bytes downloaded in all.
    pub bytes_downloaded: u64,
    /// Rows decoded in all.
    pub rows_decoded: u64,
    /// Total download time of the first file (its `download_total`), once known.
    pub first_chunk_latency: Option<Duration>,
    /// The longest `download_total` of any file.
    pub slowest_chunk_latency: Duration,
    /// The sum of every file's `download_total`.
    pub sum_download_time: Duration,
    /// Download attempts beyond the first, over all files.
    pub retries: u64,
    /// Link refreshes over all files.
    pub link_refreshes: u64,
    /// The byte budget (`max_buffered_bytes`, capped).
    pub budget_bytes: u64,
    /// Bytes of the budget reserved right now.
    pub budget_in_use: u64,
    /// The most bytes of the budget ever reserved at once. Downloads are admitted only within
    /// `budget_bytes`, but decoded files may take it over by the growth of files already admitted.
    pub budget_peak: u64,
}

/// The stream's totals, updated by the pipeline's stages.
#[derive(Debug, Default)]
pub(crate) struct SummaryCounters {
    inner: Mutex<CloudFetchSummary>,
}

impl SummaryCounters {
    fn update(&self, f: impl FnOnce(&mut CloudFetchSummary)) {
        // A poisoned lock only means a panic elsewhere mid-update of plain counters.
        let mut guard = self.inner.lock().unwrap_or_else(|e| e.into_inner());
        f(&mut guard);
    }

    pub(crate) fn link_received(&self) {
        self.update(|s| s.chunks_present += 1);
    }

    pub(crate) fn chunk_iterated(&self) {
        self.update(|s| s.chunks_iterated += 1);
    }

    pub(crate) fn chunk_decoded(&self, chunk: &ChunkStats) {
        self.update(|s| {
            s.chunks_decoded += 1;
            s.bytes_downloaded += chunk.bytes;
            s.rows_decoded += u64::try_from(chunk.rows).unwrap_or(0);
            if chunk.index == 0 {
                s.first_chunk_latency = Some(chunk.download_total);
            }
            s.slowest_chunk_latency = s.slowest_chunk_latency.max(chunk.download_total);
            s.sum_download_time += chunk.download_total;
            s.retries += u64::from(chunk.attempts.saturating_sub(1));
            s.link_refreshes += u64::from(chunk.link_refreshes);
        });
    }

    pub(crate) fn snapshot(&self) -> CloudFetchSummary {
        self.inner.lock().unwrap_or_else(|e| e.into_inner()).clone()
    }
}
