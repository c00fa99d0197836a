//! CloudFetch: results delivered as presigned links to Arrow IPC stream files (`URL_BASED_SET`).
//! This module owns the whole download pipeline and its entry point, [`CloudFetchStream`], with its
//! settings, [`CloudFetchConfig`].
//!
//! How a result flows (each stage is one file):
//! - [`links`]: the link source. The links of the first page, then further pages fetched ahead of
//!   the consumer (FetchResults with `startRowOffset`), checked to cover the rows without gap or
//!   overlap.
//! - [`budget`]: a byte budget over in-flight plus downloaded-but-unconsumed files (the links'
//!   `bytesNum` until decoded, then the decoded size), reserved in chunk order, so memory stays
//!   flat whatever the result size.
//! - [`buffers`]: the client's pool of file buffers, which every download and decompression
//!   reuses, so streaming a result makes no large allocation once the pool is warm.
//! - [`download`]: one file: a GET with only the link's own headers (never the workspace token),
//!   retried on 5xx/connection failures/timeouts, its link refreshed when expired or refused.
//! - [`decode`]: LZ4 frame decompression and zero-copy Arrow IPC decoding on a small fixed pool of
//!   decode threads, with each file's row count checked against its link.
//! - [`pipeline`]: the tasks that tie the stages together, deliver batches in row order, and stop
//!   when the stream is dropped or cancelled.
//! - [`stats`]: per-chunk figures (bytes, rows, latencies) for logs and telemetry.

mod budget;
mod buffers;
mod decode;
mod download;
mod links;
mod pipeline;
mod stats;
#[cfg(test)]
mod tests;

#[cfg(any(test, feature = "fuzzing"))]
pub(crate) use self::{decode::decode_stream, links::Chunk};

use std::sync::Arc;
use std::time::Duration;

use arrow_array::RecordBatch;
use arrow_schema::SchemaRef;

use crate::error::Result;
use crate::http::HttpTransport;
use crate::results::decode_threads::DecodeThreads;

pub(crate) use buffers::BufferPool;
pub(crate) use links::{LinkSource, ResultLink};
pub(crate) use stats::SummaryCounters;
pub use stats::{ChunkObserver, ChunkStats, CloudFetchSummary};

/// Settings of the CloudFetch download pipeline. Every field's default is written on it; change
/// a few on a default (the struct is non-exhaustive, so that new settings are not breaking):
///
/// ```
/// let mut cloud_fetch = databricks_sql::CloudFetchConfig::default();
/// cloud_fetch.max_concurrent_downloads = 8;
/// ```
#[derive(Debug, Clone)]
#[non_exhaustive]
pub struct CloudFetchConfig {
    /// How many files download at once. Default 6: four to eight concurrent GETs saturate a
    /// loopback link and, at the tens of MB/s one connection to cloud storage gets, six of them
    /// already deliver more than two decode threads consume; more connections only add memory
    /// and contention (the byte budget bounds memory either way).
    pub max_concurrent_downloads: usize,
    /// Byte budget over the files held from the start of their download until their last batch
    /// is handed out: a file counts at its link's `bytesNum` (the size as downloaded,
    /// LZ4-compressed when the result is) while it downloads, at its body's actual length once
    /// downloaded (a body larger than twice its `bytesNum` plus 1 MiB is an error), then at its
    /// decoded size (the Arrow data its batches hold) once decoded. One file may decompress to
    /// at most this budget or 1 GiB, whichever is larger; more is an error before anything is
    /// allocated. A new download starts only when its `bytesNum` fits beside what is held. Decoding never waits for room, so the budget
    /// may be exceeded by the growth of files already admitted (a few files of the decode-ahead
    /// window); no new download starts until the consumer brings it back under. The client's
    /// memory is this budget plus what it does not count: the batches the caller still holds,
    /// buffers in flight in the HTTP stack, and the file buffers the client keeps for reuse.
    /// Files are downloaded and decompressed into buffers recycled from one pool per client,
    /// reused by its next results too (so no large allocation happens once it is warm); it keeps
    /// idle buffers of at most twice this many bytes, freed after 60 s without CloudFetch
    /// activity, or once the client and every session and operation of it are dropped.
    /// Default 48 MiB: room for six concurrent downloads of files up to 8 MB. Measured with
    /// `cargo bench --bench cloudfetch` on loopback, where downloads outrun decoding and the budget
    /// fills (10M rows, 100 LZ4 files of 2.1 MB, 3.8 MB decoded): peak client RSS about 105 MB
    /// at 48 MiB and 122 MB at 64 MiB, at the same throughput (before buffers were pooled: 142 MB
    /// and 157 MB).
    /// Lower it to bound memory tighter; raise it for large files on slow storage (six concurrent
    /// downloads of 20 MB files need 120 MiB). A file announced larger than the whole budget
    /// still proceeds, alone (it is counted as the whole budget until decoded), so nothing
    /// deadlocks. Values above 4 GiB are capped at 4 GiB.
    pub max_buffered_bytes: u64,
    /// How many links may wait, already fetched, ahead of the downloads: the next page of links is
    /// requested as soon as the current page fits into this window. Default 32.
    pub link_prefetch: usize,
    /// Download attempts per file in all, the first included. Default 5. Connection failures,
    /// timeouts, HTTP 429 and 5xx (except 501) are retried with backoff; HTTP 401/403/404 refresh
    /// the link first; other statuses fail at once.
    pub download_attempts: u32,
    /// Backoff before the first retry of a download; it doubles per retry, with jitter. Default
    /// 500 ms.
    pub retry_min_backoff: Duration,
    /// Cap of one backoff, and of an honoured `Retry-After`. Default 10 s (so five attempts wait
    /// under 8 s in all at the default minimum).
    pub retry_max_backoff: Duration,
    /// How many times one file's link may be refreshed (expired or refused). Default 3.
    pub max_link_refreshes: u32,
    /// A link whose `expiryTime` is closer than this is treated as expired before use and is
    /// refreshed first. Default 60 s: it covers clock skew between this machine and the server
    /// (the expiry is in the server's clock) plus the time a slow download of a large file takes.
    /// A link fresh from a refresh is used as long as it has not actually expired, so a server whose
    /// links live shorter than the margin still works.
    pub link_expiry_margin: Duration,
    /// Timeout of one download attempt (request sent to whole body read). Default 60 s: a 20 MB
    /// file at the slow-download threshold takes 20 s; an attempt that takes three times that is
    /// better retried.
    pub download_timeout: Duration,
    /// A download slower than this many MB/s (10^6 bytes per second) is logged as a warning.
    /// Default 1.0. Only downloads that took at least one second are judged, so that the latency
    /// of small files does not count as slowness.
    pub slow_download_mbps: f64,
    /// Threads that decompress and decode files (LZ4 decompression is most of the work) and
    /// large inline pages: one pool per client, shared by all its results, started with the
    /// first large result. Default 2. A small fixed pool rather than a blocking task per file:
    /// spreading files over many threads and their allocator arenas doubled peak RSS when
    /// measured.
    pub decode_threads: usize,
}

impl Default for CloudFetchConfig {
    fn default() -> Self {
        CloudFetchConfig {
            max_concurrent_downloads: 6,
            max_buffered_bytes: 48 * 1024 * 1024,
            link_prefetch: 32,
            download_attempts: 5,
            retry_min_backoff: Duration::from_millis(500),
            retry_max_backoff: Duration::from_secs(10),
            max_link_refreshes: 3,
            link_expiry_margin: Duration::from_secs(60),
            download_timeout: Duration::from_secs(60),
            slow_download_mbps: 1.0,
            decode_threads: 2,
        }
    }
}

impl CloudFetchConfig {
    /// The most one LZ4 file may decompress to: the byte budget, or 1 GiB if that is larger.
    pub(crate) fn max_decompressed_file_bytes(&self) -> usize {
        usize::try_from(self.max_buffered_bytes)
            .unwrap_or(usize::MAX)
            .max(crate::results::lz4::MAX_DECOMPRESSED)
    }
}

/// Everything one CloudFetch result needs to start streaming.
pub(crate) struct CloudFetchStart {
    /// The pipeline's settings.
    pub config: CloudFetchConfig,
    /// The HTTP client the files are downloaded with. It must not add the workspace token:
    /// requests to presigned URLs carry only the links' own headers.
    pub transport: Arc<dyn HttpTransport>,
    /// Where further link pages and refreshed links come from (FetchResults).
    pub link_source: Arc<dyn LinkSource>,
    /// The links that came with the first result page (direct results or the first FetchResults).
    pub first_links: Vec<ResultLink>,
    /// Whether the server said more rows follow the first page (`hasMoreRows`).
    pub more_links: bool,
    /// The row offset the first link must start at: the rows of the result already read (0
    /// for a result that starts with links).
    pub first_row_offset: i64,
    /// The result's Arrow schema (from `arrowSchema` of the result set metadata); every batch is
    /// delivered with it.
    pub schema: SchemaRef,
    /// Whether the files are LZ4 frames (`lz4Compressed` of the metadata).
    pub lz4: bool,
    /// Called once per decoded file with its figures (the telemetry hook); `None` for no calls.
    pub observer: Option<Arc<dyn ChunkObserver>>,
    /// Resolves when the statement is cancelled: the pipeline then stops fetching links and
    /// downloading at once, even while nobody reads (the next read reports the cancel).
    pub cancelled: Option<futures::future::BoxFuture<'static, ()>>,
    /// Where file buffers come from and go back to: the client's pool, shared by its results.
    pub buffers: Arc<BufferPool>,
    /// The threads files are decoded on: the client's, shared by its results.
    pub decode_threads: Arc<DecodeThreads>,
}

/// The record batches of one CloudFetch result, in row order.
///
/// Created by [`CloudFetchStream::start`], which starts fetching links and downloading files at
/// once. Dropping the stream (or calling [`cancel`](Self::cancel)) stops link fetching and every
/// download; the file the decode threads have in hand is finished, and the stream's files still
/// queued for decoding are skipped.
#[derive(Debug)]
pub(crate) struct CloudFetchStream {
    pipeline: pipeline::Pipeline,
}

impl CloudFetchStream {
    /// Starts the pipeline. Must be called within a tokio runtime; fails (`Config`) outside one, or
    /// when the decode threads cannot be started.
    pub(crate) fn start(start: CloudFetchStart) -> Result<Self> {
        Ok(CloudFetchStream {
            pipeline: pipeline::Pipeline::start(start)?,
        })
    }

    /// The next batch in row order; `Ok(None)` after the last one.
    ///
    /// An error (a download that failed after its retries, a row count or offset mismatch, a
    /// failed link fetch) comes after every batch before it and ends the stream: later calls
    /// return an error of the same kind. Cancel-safe: dropping the future loses no batch.
    pub(crate) async fn next_batch(&mut self) -> Result<Option<RecordBatch>> {
        self.pipeline.next_batch().await
    }

    /// Stops link fetching and downloads now; later calls to [`next_batch`](Self::next_batch)
    /// return a `Cancelled` error.
    pub(crate) fn cancel(&mut self) {
        self.pipeline.cancel();
    }

    /// The result's schema.
    #[cfg(test)]
    pub(crate) fn schema(&self) -> SchemaRef {
        self.pipeline.schema()
    }

    /// The stream's chunk counters (links received, files decoded and read, download times),
    /// shared, so that a statement's telemetry can read them after the stream is gone.
    pub(crate) fn counters(&self) -> Arc<SummaryCounters> {
        self.pipeline.counters()
    }

    /// Running totals of this stream so far (chunks, bytes, latencies, retries, and the byte
    /// budget's use): what telemetry reports per statement.
    pub(crate) fn summary(&self) -> CloudFetchSummary {
        self.pipeline.summary()
    }
}
