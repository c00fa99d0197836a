//! Decoding of downloaded files on the client's decode threads
//! ([`DecodeThreads`](crate::results::decode_threads)): LZ4 frame decompression into recycled
//! buffers, then zero-copy Arrow IPC stream decoding, then the row-count check against the
//! file's link. The decompressed bytes are handed to the Arrow
//! arrays without a copy (`Bytes::from_owner` into `Buffer::from`); once every batch of a file is
//! dropped its buffer goes back to the client's pool ([`buffers`](super::buffers)), and so does
//! an LZ4 body once decompressed, so steady-state decoding allocates nothing new.
//!
//! Once a file is decoded its share of the byte budget is resized from its download size to its
//! decoded size, which is what its batches keep in memory until the consumer is done with them.

use std::collections::VecDeque;
use std::panic::{catch_unwind, AssertUnwindSafe};
use std::sync::Arc;
use std::time::Instant;

use arrow_array::{RecordBatch, RecordBatchOptions};
use arrow_buffer::Buffer;
use arrow_ipc::reader::StreamDecoder;
use arrow_schema::SchemaRef;
use tokio::sync::oneshot;

use super::budget::Reservation;
use super::buffers::BufferPool;
use super::download::Downloaded;
use super::links::Chunk;
use super::stats::{ChunkObserver, ChunkStats, SummaryCounters};
use crate::error::{Error, ErrorKind, Result};
use crate::results::arrow_inline::check_ipc_stream;
use crate::results::decode_threads::DecodeThreads;
use crate::results::lz4::{decompress_frame, decompressed_bound};

/// A downloaded file waiting to be decoded.
#[derive(Debug)]
pub(crate) struct DecodeJob {
    pub chunk: Chunk,
    pub downloaded: Downloaded,
    pub reservation: Reservation,
    pub reply: oneshot::Sender<Result<DecodedChunk>>,
}

/// A decoded file: its batches in order, still holding its share of the byte budget, resized to
/// the memory its batches hold.
#[derive(Debug)]
pub(crate) struct DecodedChunk {
    pub chunk: Chunk,
    pub batches: VecDeque<RecordBatch>,
    /// Released when the consumer hands out the last batch (by dropping this chunk).
    pub _reservation: Reservation,
}

/// What every decode thread of one stream shares.
#[derive(Debug)]
pub(crate) struct DecodeContext {
    /// Every batch is delivered with this schema.
    pub schema: SchemaRef,
    /// Whether files are LZ4 frames.
    pub lz4: bool,
    /// Called with each file's figures.
    pub observer: Option<Arc<dyn ChunkObserver>>,
    /// The stream's totals.
    pub summary: Arc<SummaryCounters>,
    /// The pool downloaded bodies and decompressed files come from: an LZ4 body goes back once
    /// decompressed, a file's data once its batches are dropped.
    pub buffers: Arc<BufferPool>,
    /// The most one LZ4 file may decompress to (see [`CloudFetchConfig::max_buffered_bytes`]).
    pub max_decompressed: usize,
}

/// One stream's access to the client's decode threads: its jobs run with its context.
#[derive(Debug)]
pub(crate) struct DecodePool {
    threads: Arc<DecodeThreads>,
    worker: Arc<Worker>,
}

impl DecodePool {
    /// Decodes this stream's files (per `context`) on `threads`.
    pub(crate) fn new(threads: Arc<DecodeThreads>, context: DecodeContext) -> Self {
        DecodePool {
            threads,
            worker: Arc::new(Worker { context }),
        }
    }

    /// Queues `job`; its result arrives on `job.reply`. Fails only when no thread runs.
    pub(crate) fn submit(&self, job: DecodeJob) -> Result<()> {
        let chunk = job.chunk;
        let worker = self.worker.clone();
        self.threads
            .run(move || {
                if job.reply.is_closed() {
                    return; // the stream is gone: skip the work
                }
                worker.decode_job(job);
            })
            .map_err(|e| Error::new(ErrorKind::CloudFetch, format!("{chunk}: {}", e.message())))
    }
}

#[derive(Debug)]
struct Worker {
    context: DecodeContext,
}

impl Worker {
    fn decode_job(&self, job: DecodeJob) {
        let DecodeJob {
            chunk,
            downloaded,
            mut reservation,
            reply,
        } = job;
        let Downloaded {
            body,
            latency,
            total,
            attempts,
            refreshes,
        } = downloaded;
        let started = Instant::now();
        let bytes = body.len();
        let outcome = catch_unwind(AssertUnwindSafe(|| self.decode_file(&chunk, body)));
        let decode_latency = started.elapsed();
        let result = match outcome {
            Ok(Ok((batches, decoded_bytes))) => {
                // The downloaded body is gone (or is the decoded data itself): from now on the
                // file holds its decoded size, which the budget counts until the consumer is done.
                reservation.resize(decoded_bytes as u64);
                let stats = ChunkStats {
                    index: chunk.index,
                    start_row_offset: chunk.start_row_offset,
                    rows: chunk.row_count,
                    bytes: bytes as u64,
                    decoded_bytes: decoded_bytes as u64,
                    download_latency: latency,
                    download_total: total,
                    decode_latency,
                    attempts,
                    link_refreshes: refreshes,
                };
                tracing::debug!(
                    chunk = chunk.index,
                    decoded_bytes,
                    decode_ms = u64::try_from(decode_latency.as_millis()).unwrap_or(u64::MAX),
                    "CloudFetch file decoded"
                );
                self.context.summary.chunk_decoded(&stats);
                if let Some(observer) = &self.context.observer {
                    // An observer's panic must not take the decode thread down.
                    let _ = catch_unwind(AssertUnwindSafe(|| observer.on_chunk(&stats)));
                }
                Ok(DecodedChunk {
                    chunk,
                    batches,
                    _reservation: reservation,
                })
            }
            Ok(Err(e)) => Err(e),
            Err(_) => Err(Error::decode(format!(
                "{chunk}: the Arrow decoder failed on this file (it panicked)"
            ))),
        };
        let _ = reply.send(result);
    }

    /// Decompresses (when LZ4) and decodes one file; returns its batches (in the result's
    /// schema, empty ones left out) and the decoded size: the length of the Arrow IPC stream,
    /// the one buffer every batch points into (zero-copy), so what the batches hold. (An LZ4
    /// buffer's capacity may reach past it, sized for full blocks; that tail is not counted.)
    fn decode_file(&self, chunk: &Chunk, body: Vec<u8>) -> Result<(VecDeque<RecordBatch>, usize)> {
        let context = &self.context;
        let data = if context.lz4 {
            let not_lz4 = |e: Error| {
                Error::decode(format!(
                    "{chunk}: the file is not a valid LZ4 frame ({})",
                    e.message()
                ))
            };
            let mut out = match decompressed_bound(&body, context.max_decompressed) {
                Ok(bound) => context.buffers.take(bound),
                Err(e) => {
                    context.buffers.put(body);
                    return Err(not_lz4(e));
                }
            };
            let decompressed = decompress_frame(&body, &mut out, context.max_decompressed);
            context.buffers.put(body);
            if let Err(e) = decompressed {
                context.buffers.put(out);
                return Err(not_lz4(e));
            }
            context.buffers.share(out)
        } else {
            context.buffers.share(body)
        };
        let decoded_bytes = data.len();
        let batches = decode_stream(chunk, &context.schema, Buffer::from(data))?;
        Ok((batches, decoded_bytes))
    }
}

/// Decodes the Arrow IPC stream in `buffer` (one whole CloudFetch file, decompressed) into
/// batches of `schema`, leaving empty ones out, and checks the row total against `chunk`'s
/// link. The batches point into `buffer` (zero-copy).
pub(crate) fn decode_stream(
    chunk: &Chunk,
    schema: &SchemaRef,
    mut buffer: Buffer,
) -> Result<VecDeque<RecordBatch>> {
    let mut decoder = StreamDecoder::new();
    let mut batches = VecDeque::new();
    let mut rows = 0i64;
    let invalid = |e: arrow_schema::ArrowError| {
        Error::decode(format!(
            "{chunk}: the file is not a valid Arrow IPC stream ({e})"
        ))
    };
    check_ipc_stream(&buffer).map_err(|e| {
        Error::decode(format!(
            "{chunk}: the file is not a valid Arrow IPC stream ({})",
            e.message()
        ))
    })?;
    while !buffer.is_empty() {
        if let Some(batch) = decoder.decode(&mut buffer).map_err(invalid)? {
            rows = rows.saturating_add(i64::try_from(batch.num_rows()).unwrap_or(i64::MAX));
            if batch.num_rows() > 0 {
                batches.push_back(conform(chunk, schema, batch)?);
            }
        }
    }
    decoder.finish().map_err(invalid)?;
    if rows != chunk.row_count {
        return Err(Error::decode(format!(
            "{chunk}: the file has {rows} rows, its link announced {}",
            chunk.row_count
        )));
    }
    Ok(batches)
}

/// `batch` with the result's `schema` (the file's own may differ in metadata only).
fn conform(chunk: &Chunk, schema: &SchemaRef, batch: RecordBatch) -> Result<RecordBatch> {
    if Arc::ptr_eq(batch.schema_ref(), schema) || batch.schema_ref() == schema {
        return Ok(batch);
    }
    if batch.num_columns() != schema.fields().len() {
        return Err(Error::decode(format!(
            "{chunk}: the file has {} columns, the result {}",
            batch.num_columns(),
            schema.fields().len()
        )));
    }
    let options = RecordBatchOptions::new().with_row_count(Some(batch.num_rows()));
    RecordBatch::try_new_with_options(schema.clone(), batch.columns().to_vec(), &options).map_err(
        |e| {
            Error::decode(format!(
                "{chunk}: the file's columns do not match the result's schema ({e})"
            ))
        },
    )
}
