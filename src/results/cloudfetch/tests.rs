//! Tests of the whole pipeline against a fake object store (an [`HttpTransport`]) and a fake link
//! source: order, integrity checks, healing, the byte budget, cancellation and what is sent.

use crate::results::decode_threads::DecodeThreads;
use std::collections::{BTreeMap, HashMap, VecDeque};
use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::{Arc, Mutex};
use std::time::{Duration, SystemTime, UNIX_EPOCH};

use arrow_array::{Array, Int64Array, RecordBatch, StringArray};
use arrow_schema::{DataType, Field, Schema, SchemaRef};
use async_trait::async_trait;
use bytes::Bytes;

use super::*;
use crate::error::{Error, ErrorKind, Result};
use crate::http::{HttpRequest, HttpResponse, HttpTransport};
use crate::results::encode::encode_ipc_stream;
use crate::results::lz4::compress_frame;

// ---------------------------------------------------------------------------------------------
// Result files and links

fn schema() -> SchemaRef {
    Arc::new(Schema::new(vec![Field::new("id", DataType::Int64, true)]))
}

fn now_ms() -> i64 {
    SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .map(|d| d.as_millis() as i64)
        .unwrap_or(0)
}

/// An hour from now: comfortably outside the expiry margin.
fn far_expiry() -> i64 {
    now_ms() + 3_600_000
}

/// Link `n` of a result: rows `start..start+rows`, its own header, a secret in its query string.
pub(crate) fn link(n: usize, start: i64, rows: i64) -> ResultLink {
    ResultLink {
        file_link: format!("https://store.test/file{n}?sig=secret{n}"),
        expiry_time: far_expiry(),
        start_row_offset: start,
        row_count: rows,
        bytes_num: 1000,
        http_headers: Some(BTreeMap::from([(
            "x-link-header".to_string(),
            format!("h{n}"),
        )])),
    }
}

/// An Arrow IPC stream of the ids `start..start+rows`, in batches of `batch_rows`.
fn ipc_file(start: i64, rows: i64, batch_rows: i64, lz4: bool) -> Bytes {
    let schema = schema();
    let mut batches = Vec::new();
    let mut at = start;
    while at < start + rows {
        let end = (at + batch_rows).min(start + rows);
        let ids = Int64Array::from_iter_values(at..end);
        batches.push(RecordBatch::try_new(schema.clone(), vec![Arc::new(ids)]).unwrap());
        at = end;
    }
    file_of(&schema, &batches, lz4)
}

/// A CloudFetch file: a whole Arrow IPC stream, LZ4-framed when `lz4`.
fn file_of(schema: &Schema, batches: &[RecordBatch], lz4: bool) -> Bytes {
    let plain = encode_ipc_stream(schema, batches).unwrap();
    Bytes::from(if lz4 { compress_frame(&plain) } else { plain })
}

/// `files` links of `rows` rows each, and a store serving their files.
fn result(files: usize, rows: i64, lz4: bool) -> (Vec<ResultLink>, Arc<FakeStore>) {
    let store = Arc::new(FakeStore::default());
    let links = (0..files)
        .map(|n| {
            let start = n as i64 * rows;
            store.put(n, ipc_file(start, rows, 40, lz4));
            link(n, start, rows)
        })
        .collect();
    (links, store)
}

// ---------------------------------------------------------------------------------------------
// The fake object store

/// What the store does with one request for a file.
#[derive(Debug, Clone)]
enum Reply {
    Status(u16),
    Fail(ErrorKind),
    Hang,
    Delay(Duration),
}

#[derive(Debug, Default)]
struct FakeStore {
    files: Mutex<HashMap<String, Bytes>>,
    /// Scripted replies per path, used before the file is served normally.
    script: Mutex<HashMap<String, VecDeque<Reply>>>,
    /// Every request: its full URL and headers.
    requests: Mutex<Vec<(String, http::HeaderMap)>>,
    in_flight: AtomicUsize,
    max_in_flight: AtomicUsize,
}

impl FakeStore {
    fn put(&self, n: usize, body: Bytes) {
        self.files.lock().unwrap().insert(format!("/file{n}"), body);
    }

    fn script(&self, n: usize, replies: impl IntoIterator<Item = Reply>) {
        self.script
            .lock()
            .unwrap()
            .insert(format!("/file{n}"), replies.into_iter().collect());
    }

    fn requests_for(&self, n: usize) -> Vec<String> {
        let path = format!("https://store.test/file{n}?");
        self.requests
            .lock()
            .unwrap()
            .iter()
            .filter(|(url, _)| url.starts_with(&path))
            .map(|(url, _)| url.clone())
            .collect()
    }

    fn request_count(&self) -> usize {
        self.requests.lock().unwrap().len()
    }
}

/// Counts a request as in flight until its future completes or is dropped.
struct InFlight<'a>(&'a AtomicUsize);

impl Drop for InFlight<'_> {
    fn drop(&mut self) {
        self.0.fetch_sub(1, Ordering::SeqCst);
    }
}

#[async_trait]
impl HttpTransport for FakeStore {
    async fn send(&self, request: HttpRequest) -> Result<HttpResponse> {
        assert_eq!(request.method, http::Method::GET);
        let path = request.url.path().to_string();
        self.requests
            .lock()
            .unwrap()
            .push((request.url.to_string(), request.headers.clone()));
        let now = self.in_flight.fetch_add(1, Ordering::SeqCst) + 1;
        self.max_in_flight.fetch_max(now, Ordering::SeqCst);
        let _guard = InFlight(&self.in_flight);

        let scripted = self
            .script
            .lock()
            .unwrap()
            .get_mut(&path)
            .and_then(|s| s.pop_front());
        let reply = |status: u16, body: Bytes| HttpResponse {
            status: http::StatusCode::from_u16(status).unwrap(),
            headers: http::HeaderMap::new(),
            body,
        };
        match scripted {
            Some(Reply::Status(status)) => return Ok(reply(status, Bytes::new())),
            Some(Reply::Fail(kind)) => return Err(Error::new(kind, "fake transport failure")),
            Some(Reply::Hang) => std::future::pending::<()>().await,
            Some(Reply::Delay(d)) => tokio::time::sleep(d).await,
            None => {}
        }
        let file = self.files.lock().unwrap().get(&path).cloned();
        Ok(match file {
            Some(body) => reply(200, body),
            None => reply(404, Bytes::new()),
        })
    }
}

// ---------------------------------------------------------------------------------------------
// The fake link source

/// Serves pages of the result's links, each time with a fresh signature and expiry.
#[derive(Debug)]
struct FakeLinks {
    links: Vec<ResultLink>,
    page: usize,
    /// The offset of every fetch_links call.
    calls: Mutex<Vec<i64>>,
    /// When set, every call waits forever (to test cancellation).
    hang: bool,
    in_flight: AtomicUsize,
}

impl FakeLinks {
    fn new(links: Vec<ResultLink>, page: usize) -> Arc<Self> {
        Arc::new(FakeLinks {
            links,
            page,
            calls: Mutex::new(Vec::new()),
            hang: false,
            in_flight: AtomicUsize::new(0),
        })
    }

    fn calls(&self) -> Vec<i64> {
        self.calls.lock().unwrap().clone()
    }
}

#[async_trait]
impl LinkSource for FakeLinks {
    async fn fetch_links(&self, start_row_offset: i64) -> Result<(Vec<ResultLink>, bool)> {
        let generation = {
            let mut calls = self.calls.lock().unwrap();
            calls.push(start_row_offset);
            calls.len()
        };
        self.in_flight.fetch_add(1, Ordering::SeqCst);
        let _guard = InFlight(&self.in_flight);
        if self.hang {
            std::future::pending::<()>().await;
        }
        let Some(first) = self
            .links
            .iter()
            .position(|l| l.start_row_offset >= start_row_offset)
        else {
            return Ok((Vec::new(), false));
        };
        let end = (first + self.page).min(self.links.len());
        let page = self.links[first..end]
            .iter()
            .map(|l| {
                let mut fresh = l.clone();
                fresh.file_link = fresh
                    .file_link
                    .replace("sig=secret", &format!("sig=fresh{generation}-"));
                fresh.expiry_time = far_expiry();
                fresh
            })
            .collect();
        Ok((page, end < self.links.len()))
    }
}

// ---------------------------------------------------------------------------------------------
// Harness

fn config() -> CloudFetchConfig {
    CloudFetchConfig {
        max_concurrent_downloads: 4,
        retry_min_backoff: Duration::from_millis(10),
        retry_max_backoff: Duration::from_millis(100),
        ..CloudFetchConfig::default()
    }
}

fn start(
    config: CloudFetchConfig,
    store: &Arc<FakeStore>,
    source: &Arc<FakeLinks>,
    first_links: Vec<ResultLink>,
    more_links: bool,
    lz4: bool,
) -> CloudFetchStream {
    CloudFetchStream::start(start_args(
        config,
        store,
        source,
        first_links,
        more_links,
        lz4,
    ))
    .unwrap()
}

/// What [`start`] starts, for tests that change a part of it.
fn start_args(
    config: CloudFetchConfig,
    store: &Arc<FakeStore>,
    source: &Arc<FakeLinks>,
    first_links: Vec<ResultLink>,
    more_links: bool,
    lz4: bool,
) -> CloudFetchStart {
    CloudFetchStart {
        decode_threads: Arc::new(DecodeThreads::new(config.decode_threads)),
        config,
        transport: store.clone(),
        link_source: source.clone(),
        first_links,
        more_links,
        first_row_offset: 0,
        schema: schema(),
        lz4,
        observer: None,
        cancelled: None,
        buffers: BufferPool::new(64 << 20),
    }
}

fn ids(batch: &RecordBatch) -> Vec<i64> {
    let ids = batch
        .column(0)
        .as_any()
        .downcast_ref::<Int64Array>()
        .unwrap();
    ids.values().to_vec()
}

/// Reads the stream to its end: the ids read, then the error if it ended with one.
async fn read_all(stream: &mut CloudFetchStream) -> (Vec<i64>, Option<Error>) {
    let mut all = Vec::new();
    loop {
        match stream.next_batch().await {
            Ok(Some(batch)) => {
                assert_eq!(batch.schema(), schema());
                all.extend(ids(&batch));
            }
            Ok(None) => return (all, None),
            Err(e) => return (all, Some(e)),
        }
    }
}

fn range(end: i64) -> Vec<i64> {
    (0..end).collect()
}

// ---------------------------------------------------------------------------------------------
// Buffer reuse

#[test]
fn a_link_debug_shows_neither_its_signature_nor_header_values() {
    let shown = format!("{:?}", link(3, 300, 100));
    assert!(!shown.contains("secret3"), "{shown}");
    assert!(!shown.contains("\"h3\""), "{shown}");
    assert!(shown.contains("store.test/file3"), "{shown}");
    assert!(shown.contains("x-link-header"), "{shown}");
    assert!(shown.contains("start_row_offset: 300"), "{shown}");
}

#[tokio::test]
async fn a_second_result_on_a_warm_pool_allocates_no_buffer() {
    for lz4 in [true, false] {
        let (links, store) = result(8, 1000, lz4);
        // A budget of one byte: one file at a time, so each result needs one body buffer and,
        // with LZ4, one decompression buffer, whatever the timing.
        let config = CloudFetchConfig {
            max_buffered_bytes: 1,
            ..config()
        };
        let pool = BufferPool::new(64 << 20);
        let mut allocated = Vec::new();
        for _ in 0..3 {
            let source = FakeLinks::new(links.clone(), 100);
            let mut args = start_args(config.clone(), &store, &source, links.clone(), false, lz4);
            args.buffers = pool.clone();
            let mut stream = CloudFetchStream::start(args).unwrap();
            let (rows, error) = read_all(&mut stream).await;
            assert!(error.is_none(), "{error:?}");
            assert_eq!(rows, range(8000));
            drop(stream);
            allocated.push(pool.allocated());
        }
        let per_file = if lz4 { 2 } else { 1 };
        assert_eq!(
            allocated,
            vec![per_file; 3],
            "lz4 {lz4}: the first result allocates its buffers, later ones reuse them"
        );
        assert_eq!(
            pool.idle_stats().0,
            per_file as usize,
            "every buffer came back"
        );
    }
}

// ---------------------------------------------------------------------------------------------
// Order and integrity

#[tokio::test(start_paused = true)]
async fn delivers_every_row_in_order_when_downloads_finish_out_of_order() {
    let (links, store) = result(8, 100, true);
    for n in 0..8 {
        // The first file is the slowest, the last the fastest.
        store.script(n, [Reply::Delay(Duration::from_millis(80 - 10 * n as u64))]);
    }
    let source = FakeLinks::new(links.clone(), 100);
    let mut stream = start(config(), &store, &source, links, false, true);
    let (rows, error) = read_all(&mut stream).await;
    assert!(error.is_none(), "{error:?}");
    assert_eq!(rows, range(800));
    assert!(source.calls().is_empty(), "no more pages were announced");
    let summary = stream.summary();
    assert_eq!(summary.chunks_present, 8);
    assert_eq!(summary.chunks_decoded, 8);
    assert_eq!(summary.chunks_iterated, 8);
    assert_eq!(summary.rows_decoded, 800);
    assert_eq!(
        summary.budget_in_use, 0,
        "everything consumed, nothing reserved"
    );
}

#[tokio::test]
async fn decodes_uncompressed_files_too() {
    let (links, store) = result(3, 50, false);
    let source = FakeLinks::new(links.clone(), 100);
    let mut stream = start(config(), &store, &source, links, false, false);
    assert_eq!(stream.schema(), schema());
    let (rows, error) = read_all(&mut stream).await;
    assert!(error.is_none(), "{error:?}");
    assert_eq!(rows, range(150));
}

#[tokio::test]
async fn an_empty_result_ends_at_once() {
    let store = Arc::new(FakeStore::default());
    let source = FakeLinks::new(Vec::new(), 10);
    let mut stream = start(config(), &store, &source, Vec::new(), false, true);
    assert!(stream.next_batch().await.unwrap().is_none());
    assert!(stream.next_batch().await.unwrap().is_none());
    assert_eq!(store.request_count(), 0);
}

#[tokio::test]
async fn fetches_further_link_pages_from_where_the_previous_links_end() {
    let (links, store) = result(8, 100, true);
    let source = FakeLinks::new(links.clone(), 3);
    let mut stream = start(config(), &store, &source, links[..2].to_vec(), true, true);
    let (rows, error) = read_all(&mut stream).await;
    assert!(error.is_none(), "{error:?}");
    assert_eq!(rows, range(800));
    assert_eq!(source.calls(), vec![200, 500]);
}

#[tokio::test]
async fn a_file_with_fewer_rows_than_its_link_is_an_error_naming_the_chunk() {
    let (links, store) = result(3, 100, true);
    store.put(1, ipc_file(100, 99, 40, true));
    let source = FakeLinks::new(links.clone(), 100);
    let mut stream = start(config(), &store, &source, links, false, true);
    let (rows, error) = read_all(&mut stream).await;
    assert_eq!(
        rows,
        range(100),
        "the rows before the bad file are delivered"
    );
    let error = error.expect("a row count mismatch must fail");
    assert_eq!(error.kind(), ErrorKind::Decode);
    assert!(
        error.message().contains("chunk 1 (rows 100..200)"),
        "{error}"
    );
    assert!(error.message().contains("99 rows"), "{error}");

    let again = stream.next_batch().await.unwrap_err();
    assert_eq!(again.kind(), ErrorKind::Decode, "the stream stays failed");
}

#[tokio::test]
async fn a_gap_between_link_pages_is_an_error_after_the_rows_before_it() {
    let (mut links, store) = result(4, 100, true);
    links[2].start_row_offset = 250; // rows 200..250 missing
    let source = FakeLinks::new(links.clone(), 10);
    let mut stream = start(config(), &store, &source, links[..2].to_vec(), true, true);
    let (rows, error) = read_all(&mut stream).await;
    assert_eq!(rows, range(200));
    let error = error.expect("a gap must fail");
    assert_eq!(error.kind(), ErrorKind::Decode);
    assert!(
        error.message().contains("rows 200..250 are missing"),
        "{error}"
    );
}

#[tokio::test]
async fn overlapping_links_are_an_error() {
    let (mut links, store) = result(3, 100, true);
    links[1].start_row_offset = 90;
    let source = FakeLinks::new(links.clone(), 10);
    let mut stream = start(config(), &store, &source, links, false, true);
    let (rows, error) = read_all(&mut stream).await;
    assert_eq!(rows, range(100));
    let error = error.expect("an overlap must fail");
    assert!(
        error.message().contains("rows 90..100 would come twice"),
        "{error}"
    );
}

#[tokio::test]
async fn a_corrupt_lz4_frame_is_a_decode_error_naming_the_chunk() {
    let (links, store) = result(2, 100, true);
    let mut corrupt = ipc_file(100, 100, 40, true).to_vec();
    let mid = corrupt.len() / 2;
    corrupt.truncate(mid);
    store.put(1, Bytes::from(corrupt));
    let source = FakeLinks::new(links.clone(), 10);
    let mut stream = start(config(), &store, &source, links, false, true);
    let (rows, error) = read_all(&mut stream).await;
    assert_eq!(rows, range(100));
    let error = error.expect("corrupt data must fail");
    assert_eq!(error.kind(), ErrorKind::Decode);
    assert!(
        error.message().contains("chunk 1 (rows 100..200)"),
        "{error}"
    );
}

#[tokio::test]
async fn a_file_whose_columns_do_not_match_the_schema_is_an_error() {
    let (links, store) = result(1, 10, false);
    let other = Arc::new(Schema::new(vec![Field::new("id", DataType::Utf8, true)]));
    let names = StringArray::from_iter_values((0..10).map(|i| i.to_string()));
    let batch = RecordBatch::try_new(other.clone(), vec![Arc::new(names)]).unwrap();
    store.put(0, file_of(&other, &[batch], false));
    let source = FakeLinks::new(links.clone(), 10);
    let mut stream = start(config(), &store, &source, links, false, false);
    let error = stream.next_batch().await.unwrap_err();
    assert_eq!(error.kind(), ErrorKind::Decode);
    assert!(error.message().contains("chunk 0"), "{error}");
}

#[tokio::test]
async fn a_file_whose_schema_differs_only_in_metadata_gets_the_result_schema() {
    let (links, store) = result(1, 10, false);
    let with_metadata = Arc::new(Schema::new(vec![Field::new("id", DataType::Int64, true)
        .with_metadata(HashMap::from([(
            "Spark:DataType:SqlName".into(),
            "BIGINT".into(),
        )]))]));
    let ids = Int64Array::from_iter_values(0..10);
    let batch = RecordBatch::try_new(with_metadata.clone(), vec![Arc::new(ids)]).unwrap();
    store.put(0, file_of(&with_metadata, &[batch], false));
    let source = FakeLinks::new(links.clone(), 10);
    let mut stream = start(config(), &store, &source, links, false, false);
    let (rows, error) = read_all(&mut stream).await; // read_all checks each batch's schema
    assert!(error.is_none(), "{error:?}");
    assert_eq!(rows, range(10));
}

// ---------------------------------------------------------------------------------------------
// Healing

#[tokio::test(start_paused = true)]
async fn retries_a_download_after_500_reset_and_timeout_then_succeeds() {
    let (links, store) = result(3, 100, true);
    store.script(
        1,
        [
            Reply::Status(500),
            Reply::Fail(ErrorKind::Connect),
            Reply::Fail(ErrorKind::Timeout),
        ],
    );
    let source = FakeLinks::new(links.clone(), 10);
    let mut stream = start(config(), &store, &source, links, false, true);
    let (rows, error) = read_all(&mut stream).await;
    assert!(error.is_none(), "{error:?}");
    assert_eq!(rows, range(300));
    assert_eq!(store.requests_for(1).len(), 4);
    assert!(source.calls().is_empty(), "retries need no fresh link");
    assert_eq!(stream.summary().retries, 3);
}

#[tokio::test(start_paused = true)]
async fn a_download_that_hangs_times_out_and_is_retried() {
    let (links, store) = result(2, 100, true);
    store.script(0, [Reply::Hang]);
    let source = FakeLinks::new(links.clone(), 10);
    let config = CloudFetchConfig {
        download_timeout: Duration::from_secs(5),
        ..config()
    };
    let mut stream = start(config, &store, &source, links, false, true);
    let (rows, error) = read_all(&mut stream).await;
    assert!(error.is_none(), "{error:?}");
    assert_eq!(rows, range(200));
    assert_eq!(store.requests_for(0).len(), 2);
}

#[tokio::test]
async fn refreshes_a_refused_link_and_downloads_from_the_fresh_one() {
    let (links, store) = result(3, 100, true);
    store.script(1, [Reply::Status(403)]);
    let source = FakeLinks::new(links.clone(), 10);
    let mut stream = start(config(), &store, &source, links, false, true);
    let (rows, error) = read_all(&mut stream).await;
    assert!(error.is_none(), "{error:?}");
    assert_eq!(rows, range(300));
    assert_eq!(
        source.calls(),
        vec![100],
        "the refresh asks for the chunk's own offset"
    );
    let urls = store.requests_for(1);
    assert_eq!(urls.len(), 2);
    assert!(urls[0].contains("sig=secret1"), "{urls:?}");
    assert!(urls[1].contains("sig=fresh1-1"), "{urls:?}");
    assert_eq!(stream.summary().link_refreshes, 1);
}

#[tokio::test]
async fn refreshes_a_link_that_expires_within_the_margin_before_using_it() {
    let (mut links, store) = result(3, 100, true);
    links[2].expiry_time = now_ms() + 10_000; // inside the 60 s margin
    let source = FakeLinks::new(links.clone(), 10);
    let mut stream = start(config(), &store, &source, links, false, true);
    let (rows, error) = read_all(&mut stream).await;
    assert!(error.is_none(), "{error:?}");
    assert_eq!(rows, range(300));
    assert_eq!(source.calls(), vec![200]);
    let urls = store.requests_for(2);
    assert_eq!(
        urls.len(),
        1,
        "the expired link itself is never used: {urls:?}"
    );
    assert!(urls[0].contains("sig=fresh"), "{urls:?}");
}

#[tokio::test]
async fn a_fresh_link_inside_the_margin_is_used_while_it_is_still_valid() {
    // A server whose links live shorter than the margin must still work.
    let (links, store) = result(1, 100, true);
    let mut expired = links.clone();
    expired[0].expiry_time = now_ms() - 1;
    let source = Arc::new(FakeLinks {
        links: links
            .iter()
            .map(|l| ResultLink {
                expiry_time: now_ms() + 5_000,
                ..l.clone()
            })
            .collect(),
        ..Arc::try_unwrap(FakeLinks::new(Vec::new(), 10)).unwrap()
    });
    let mut stream = start(config(), &store, &source, expired, false, true);
    let (rows, error) = read_all(&mut stream).await;
    assert!(error.is_none(), "{error:?}");
    assert_eq!(rows, range(100));
    assert_eq!(source.calls().len(), 1);
}

#[tokio::test(start_paused = true)]
async fn gives_up_after_the_attempts_and_names_the_chunk_without_the_query_string() {
    let (links, store) = result(4, 100, true);
    store.script(2, std::iter::repeat_n(Reply::Status(503), 10));
    let source = FakeLinks::new(links.clone(), 10);
    let mut stream = start(config(), &store, &source, links, false, true);
    let (rows, error) = read_all(&mut stream).await;
    assert_eq!(
        rows,
        range(200),
        "the rows before the failed chunk are delivered"
    );
    let error = error.expect("the download must fail in the end");
    assert_eq!(error.kind(), ErrorKind::CloudFetch);
    let shown = format!("{error} / {error:?}");
    assert!(shown.contains("chunk 2 (rows 200..300)"), "{shown}");
    assert!(shown.contains("5 attempts"), "{shown}");
    assert!(shown.contains("HTTP 503"), "{shown}");
    assert!(!shown.contains("secret"), "{shown}");
    assert_eq!(store.requests_for(2).len(), 5);
}

#[tokio::test]
async fn gives_up_when_the_link_is_refused_after_every_refresh() {
    let (links, store) = result(2, 100, true);
    store.script(0, std::iter::repeat_n(Reply::Status(403), 10));
    let source = FakeLinks::new(links.clone(), 10);
    let mut stream = start(config(), &store, &source, links, false, true);
    let error = stream.next_batch().await.unwrap_err();
    assert_eq!(error.kind(), ErrorKind::CloudFetch);
    assert!(error.message().contains("chunk 0 (rows 0..100)"), "{error}");
    assert!(error.message().contains("3 link refreshes"), "{error}");
    assert!(error.to_string().contains("HTTP 403"), "{error}");
    assert_eq!(source.calls(), vec![0, 0, 0]);
    assert_eq!(store.requests_for(0).len(), 4);
}

#[tokio::test]
async fn a_client_error_status_fails_at_once() {
    let (links, store) = result(1, 100, true);
    store.script(0, [Reply::Status(400)]);
    let source = FakeLinks::new(links.clone(), 10);
    let mut stream = start(config(), &store, &source, links, false, true);
    let error = stream.next_batch().await.unwrap_err();
    assert_eq!(error.kind(), ErrorKind::CloudFetch);
    assert!(error.to_string().contains("HTTP 400"), "{error}");
    assert_eq!(store.requests_for(0).len(), 1);
}

// ---------------------------------------------------------------------------------------------
// Budget and concurrency

#[tokio::test(start_paused = true)]
async fn downloads_never_run_more_than_the_budget_ahead_of_the_consumer() {
    // Uncompressed files announced at their true size: decoding does not change what a file
    // holds, so the budget admits exactly three files of the twenty at a time.
    let (mut links, store) = result(20, 100, false);
    let file_bytes = ipc_file(0, 100, 40, false).len() as u64;
    for l in &mut links {
        l.bytes_num = file_bytes as i64;
    }
    let budget = file_bytes * 7 / 2;
    let source = FakeLinks::new(links.clone(), 100);
    let config = CloudFetchConfig {
        max_buffered_bytes: budget,
        max_concurrent_downloads: 8,
        ..config()
    };
    let mut stream = start(config, &store, &source, links, false, false);
    let mut rows = Vec::new();
    let mut chunks_done = 0;
    while let Some(batch) = stream.next_batch().await.unwrap() {
        rows.extend(ids(&batch));
        if rows.len() % 100 == 0 {
            chunks_done += 1;
            // Let the pipeline run as far ahead as it can.
            tokio::time::sleep(Duration::from_millis(50)).await;
            let summary = stream.summary();
            assert!(summary.budget_in_use <= budget, "{summary:?}");
            assert!(
                store.request_count() <= chunks_done + 3,
                "{} downloads started with {chunks_done} chunks consumed and room for 3",
                store.request_count()
            );
        }
    }
    assert_eq!(rows, range(2000));
    let summary = stream.summary();
    assert_eq!(summary.budget_bytes, budget);
    assert_eq!(
        summary.budget_peak,
        3 * file_bytes,
        "three files fit, a fourth does not"
    );
}

#[tokio::test]
async fn decoded_files_waiting_for_the_consumer_count_against_the_budget() {
    // Files announced as one byte each: once downloaded they count at their actual length, once
    // decoded at their decoded size. The budget is large: every file is admitted.
    let (mut links, store) = result(20, 100, true);
    for l in &mut links {
        l.bytes_num = 1;
    }
    let decoded_bytes = ipc_file(0, 100, 40, false).len() as u64;
    let source = FakeLinks::new(links.clone(), 100);
    let config = CloudFetchConfig {
        max_buffered_bytes: 1 << 20,
        decode_threads: 2,
        ..config()
    };
    let mut stream = start(config, &store, &source, links, false, true);
    // The consumer takes the first batch of chunk 0 and stops.
    let first = stream.next_batch().await.unwrap().unwrap();
    assert_eq!(ids(&first), range(40));
    // Then five files are decoded: chunk 0 (the consumer's), three in the decode-ahead window
    // (decode threads + 1), one the order task holds; the other fifteen wait downloaded.
    eventually("the pipeline settles", || {
        let summary = stream.summary();
        summary.chunks_decoded == 5 && store.request_count() == 20
    })
    .await;
    let in_use = stream.summary().budget_in_use;
    let waiting: u64 = (5..20)
        .map(|n| store.files.lock().unwrap()[&format!("/file{n}")].len() as u64)
        .sum();
    assert_eq!(
        in_use,
        5 * decoded_bytes + waiting,
        "five decoded files of {decoded_bytes} bytes, and fifteen downloaded ones at their \
         actual length (not the one byte announced)"
    );
    let (rows, error) = read_all(&mut stream).await;
    assert!(error.is_none(), "{error:?}");
    assert_eq!(rows.len(), 1960);
    assert_eq!(stream.summary().budget_in_use, 0);
}

#[tokio::test]
async fn a_budget_full_of_decoded_files_admits_no_download_until_the_consumer_reads() {
    // Each file is announced as one byte but decodes to two thirds of the budget: once two
    // files are decoded, no more downloads start until the consumer reads on. (Under a budget of
    // announced sizes alone, all ten would start.) Downloads take a while, so decoding keeps up.
    let (mut links, store) = result(10, 100, true);
    for (n, l) in links.iter_mut().enumerate() {
        l.bytes_num = 1;
        store.script(n, [Reply::Delay(Duration::from_millis(30))]);
    }
    let decoded_bytes = ipc_file(0, 100, 40, false).len() as u64;
    let budget = decoded_bytes * 3 / 2;
    let source = FakeLinks::new(links.clone(), 100);
    let config = CloudFetchConfig {
        max_buffered_bytes: budget,
        max_concurrent_downloads: 1,
        ..config()
    };
    let mut stream = start(config, &store, &source, links, false, true);
    let mut rows = ids(&stream.next_batch().await.unwrap().unwrap());
    tokio::time::sleep(Duration::from_millis(400)).await;
    let held = stream.summary();
    assert!(held.budget_in_use > budget, "{held:?}");
    let started = store.request_count();
    assert!(
        started < 10,
        "{started} downloads started, the budget is full"
    );
    tokio::time::sleep(Duration::from_millis(200)).await;
    assert_eq!(store.request_count(), started, "nothing new starts");
    let (rest, error) = read_all(&mut stream).await;
    assert!(error.is_none(), "{error:?}");
    rows.extend(rest);
    assert_eq!(rows, range(1000));
    assert_eq!(stream.summary().budget_in_use, 0);
}

#[tokio::test]
async fn a_file_larger_than_the_whole_budget_proceeds_alone() {
    let (mut links, store) = result(5, 100, true);
    for l in &mut links {
        l.bytes_num = 10_000;
    }
    let source = FakeLinks::new(links.clone(), 100);
    let config = CloudFetchConfig {
        max_buffered_bytes: 4000,
        ..config()
    };
    let mut stream = start(config, &store, &source, links, false, true);
    let (rows, error) = read_all(&mut stream).await;
    assert!(error.is_none(), "{error:?}");
    assert_eq!(rows, range(500));
    assert_eq!(store.max_in_flight.load(Ordering::SeqCst), 1);
    assert_eq!(stream.summary().budget_peak, 4000);
}

#[tokio::test(start_paused = true)]
async fn runs_at_most_the_configured_number_of_downloads_at_once() {
    let (links, store) = result(12, 10, true);
    for n in 0..12 {
        store.script(n, [Reply::Delay(Duration::from_millis(100))]);
    }
    let source = FakeLinks::new(links.clone(), 100);
    let config = CloudFetchConfig {
        max_concurrent_downloads: 3,
        ..config()
    };
    let mut stream = start(config, &store, &source, links, false, true);
    let (rows, error) = read_all(&mut stream).await;
    assert!(error.is_none(), "{error:?}");
    assert_eq!(rows, range(120));
    assert_eq!(store.max_in_flight.load(Ordering::SeqCst), 3);
}

// ---------------------------------------------------------------------------------------------
// Cancellation

async fn eventually(what: &str, mut condition: impl FnMut() -> bool) {
    for _ in 0..500 {
        if condition() {
            return;
        }
        tokio::time::sleep(Duration::from_millis(10)).await;
    }
    panic!("timed out waiting until {what}");
}

#[tokio::test]
async fn dropping_the_stream_stops_downloads_link_fetching_and_decode_threads() {
    let (links, store) = result(6, 100, true);
    for n in 0..6 {
        store.script(n, [Reply::Hang]);
    }
    let source = Arc::new(FakeLinks {
        hang: true,
        ..Arc::try_unwrap(FakeLinks::new(links.clone(), 100)).unwrap()
    });
    let stream = start(config(), &store, &source, links, true, true);
    let decode_threads = stream.pipeline.decode_thread_counter();
    eventually("4 downloads and a link fetch are under way", || {
        store.in_flight.load(Ordering::SeqCst) == 4 && source.in_flight.load(Ordering::SeqCst) == 1
    })
    .await;
    // The decode threads start with the first file to decode: none has arrived.
    assert_eq!(decode_threads.load(Ordering::SeqCst), 0);

    drop(stream);
    eventually("every download and link fetch is dropped", || {
        store.in_flight.load(Ordering::SeqCst) == 0 && source.in_flight.load(Ordering::SeqCst) == 0
    })
    .await;
    eventually("no decode thread is left", || {
        decode_threads.load(Ordering::SeqCst) == 0
    })
    .await;
    let requests = store.request_count();
    tokio::time::sleep(Duration::from_millis(50)).await;
    assert_eq!(store.request_count(), requests, "nothing new starts");
}

#[tokio::test]
async fn cancel_stops_downloads_and_later_reads_fail_as_cancelled() {
    let (links, store) = result(3, 100, true);
    for n in 0..3 {
        store.script(n, [Reply::Hang]);
    }
    let source = FakeLinks::new(links.clone(), 100);
    let mut stream = start(config(), &store, &source, links, false, true);
    eventually("the downloads are under way", || {
        store.in_flight.load(Ordering::SeqCst) == 3
    })
    .await;
    stream.cancel();
    eventually("every download is dropped", || {
        store.in_flight.load(Ordering::SeqCst) == 0
    })
    .await;
    let error = stream.next_batch().await.unwrap_err();
    assert_eq!(error.kind(), ErrorKind::Cancelled);
}

#[tokio::test(start_paused = true)]
async fn a_dropped_next_batch_future_loses_no_rows() {
    let (links, store) = result(3, 100, true);
    store.script(0, [Reply::Delay(Duration::from_millis(500))]);
    let source = FakeLinks::new(links.clone(), 100);
    let mut stream = start(config(), &store, &source, links, false, true);
    let early = tokio::time::timeout(Duration::from_millis(100), stream.next_batch()).await;
    assert!(early.is_err(), "the first file is still downloading");
    let (rows, error) = read_all(&mut stream).await;
    assert!(error.is_none(), "{error:?}");
    assert_eq!(rows, range(300));
}

// ---------------------------------------------------------------------------------------------
// What is sent, and what is reported

#[tokio::test]
async fn sends_only_the_links_own_headers_never_a_token() {
    let (links, store) = result(3, 10, true);
    let source = FakeLinks::new(links.clone(), 100);
    let mut stream = start(config(), &store, &source, links, false, true);
    let (_, error) = read_all(&mut stream).await;
    assert!(error.is_none(), "{error:?}");
    let requests = store.requests.lock().unwrap().clone();
    assert_eq!(requests.len(), 3);
    for (url, headers) in requests {
        let n = url
            .trim_start_matches("https://store.test/file")
            .split('?')
            .next()
            .unwrap()
            .to_string();
        assert_eq!(headers.len(), 1, "{url}: {headers:?}");
        assert_eq!(headers["x-link-header"], format!("h{n}").as_str());
        assert!(headers.get(http::header::AUTHORIZATION).is_none());
    }
}

#[tokio::test]
async fn reports_each_chunk_to_the_observer() {
    let (links, store) = result(4, 100, true);
    let sizes: Vec<u64> = (0..4)
        .map(|n| store.files.lock().unwrap()[&format!("/file{n}")].len() as u64)
        .collect();
    let seen = Arc::new(Mutex::new(Vec::<ChunkStats>::new()));
    let observer = {
        let seen = seen.clone();
        move |stats: &ChunkStats| seen.lock().unwrap().push(stats.clone())
    };
    let source = FakeLinks::new(links.clone(), 100);
    let mut stream = CloudFetchStream::start(CloudFetchStart {
        decode_threads: Arc::new(DecodeThreads::new(2)),
        config: config(),
        transport: store.clone(),
        link_source: source.clone(),
        first_links: links,
        more_links: false,
        first_row_offset: 0,
        schema: schema(),
        lz4: true,
        observer: Some(Arc::new(observer)),
        cancelled: None,
        buffers: BufferPool::new(64 << 20),
    })
    .unwrap();
    let (rows, error) = read_all(&mut stream).await;
    assert!(error.is_none(), "{error:?}");
    assert_eq!(rows.len(), 400);
    let mut seen = seen.lock().unwrap().clone();
    seen.sort_by_key(|s| s.index);
    assert_eq!(seen.len(), 4);
    for (n, stats) in seen.iter().enumerate() {
        assert_eq!(stats.index, n);
        assert_eq!(stats.start_row_offset, n as i64 * 100);
        assert_eq!(stats.rows, 100);
        assert_eq!(stats.bytes, sizes[n]);
        assert!(stats.decoded_bytes > stats.bytes / 2, "{stats:?}");
        assert_eq!(stats.attempts, 1);
    }
    let summary = stream.summary();
    assert_eq!(summary.bytes_downloaded, sizes.iter().sum::<u64>());
    assert!(summary.first_chunk_latency.is_some());
}

#[tokio::test]
async fn batches_outlive_the_stream() {
    let (links, store) = result(2, 100, true);
    let source = FakeLinks::new(links.clone(), 100);
    let mut stream = start(config(), &store, &source, links, false, true);
    let first = stream.next_batch().await.unwrap().unwrap();
    drop(stream);
    assert_eq!(ids(&first), range(40));
    assert_eq!(first.column(0).null_count(), 0);
}

// ---------------------------------------------------------------------------------------------
// Announced and actual sizes

#[tokio::test]
async fn a_body_far_larger_than_its_link_announced_is_an_error_naming_the_chunk() {
    let (mut links, store) = result(2, 100, true);
    links[1].bytes_num = 10;
    store.put(1, Bytes::from(vec![0u8; 2 << 20]));
    let source = FakeLinks::new(links.clone(), 10);
    let mut stream = start(config(), &store, &source, links, false, true);
    let (ids, err) = read_all(&mut stream).await;
    assert_eq!(ids, range(100), "the rows before it are delivered");
    let err = err.expect("an error");
    assert_eq!(err.kind(), ErrorKind::CloudFetch, "{err}");
    let text = err.to_string();
    assert!(text.contains("chunk 1"), "{text}");
    assert!(
        text.contains("than the 10 bytes its link announced"),
        "{text}"
    );
    assert!(!text.contains("secret"), "{text}");
    assert_eq!(store.requests_for(1).len(), 1, "not retried");
}

#[tokio::test]
async fn a_downloaded_file_holds_its_actual_length_in_the_budget_not_its_announced_one() {
    use super::budget::ByteBudget;
    use super::download::Downloader;
    use super::links::Chunk;

    let (mut links, store) = result(1, 2_000, false);
    links[0].bytes_num = 1;
    let file_len = store.files.lock().unwrap()["/file0"].len() as u64;
    assert!(file_len > 10_000);
    let source = FakeLinks::new(links.clone(), 10);
    let downloader = Downloader::new(store.clone(), source, config(), BufferPool::new(64 << 20));
    let budget = ByteBudget::new(1 << 20);
    let mut reservation = budget.reserve(budget.cost_of(links[0].bytes_num)).await;
    assert_eq!(budget.in_use(), 1);
    let downloaded = downloader
        .download(Chunk::new(0, &links[0]), links[0].clone(), &mut reservation)
        .await
        .expect("download");
    assert_eq!(downloaded.body.len() as u64, file_len);
    assert_eq!(
        budget.in_use(),
        file_len,
        "resized when the download completed"
    );
}
