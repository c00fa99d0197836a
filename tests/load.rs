//! Load and leak suite: several workers run a random mix of statements at once (small queries,
//! inline and CloudFetch results, DML with parameters, metadata calls, failing statements,
//! cancels, operations dropped mid-stream) while faults are injected (HTTP 503 with
//! `Retry-After`, dropped connections, truncated and corrupt CloudFetch files, expired links).
//! Every successful read is checked row by row; afterwards the client leaves no task, no socket
//! or file descriptor, and the mock no open session or operation.
//!
//! Memory: a counting allocator gives the bytes live on the heap. Once the client, the mock and
//! their runtimes are gone, the live heap must be back within [`HEAP_BOUND`] of where it started
//! (what stays: lazily built statics such as the TLS root store). The process RSS is reported
//! too, all of it and the anonymous part, before and after `malloc_trim`: glibc keeps freed
//! memory in its per-thread arenas, and the pages of the executable that ran count in the RSS,
//! so the RSS after a run says what the allocator and the loader hold, not what the driver holds.
//!
//! The short variant runs in `cargo test`. The long one runs for `LOAD_SECONDS` (default 600)
//! and prints its figures:
//!
//! ```text
//! LOAD_SECONDS=600 cargo test --release --test load -- --ignored --nocapture
//! ```

use std::alloc::{GlobalAlloc, Layout, System};
use std::collections::BTreeMap;
use std::sync::atomic::{AtomicI64, AtomicU64, Ordering};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use databricks_sql::arrow::array::{Array, Int64Array};
use databricks_sql::http::{HttpConfig, RetryPolicy};
use databricks_sql::mock::{Fault, MockWarehouse};
use databricks_sql::{params, ClientConfig, CloudFetchConfig, DBSQLClient, ErrorKind, Session};

/// What one run did.
#[derive(Debug, Default)]
struct Tally {
    statements: AtomicU64,
    rows: AtomicU64,
    faults: AtomicU64,
    errors: Mutex<BTreeMap<String, u64>>,
}

impl Tally {
    fn error(&self, kind: ErrorKind) {
        *self
            .errors
            .lock()
            .unwrap()
            .entry(format!("{kind:?}"))
            .or_insert(0) += 1;
    }
}

/// A small deterministic random source (xorshift).
struct Rng(u64);

impl Rng {
    fn below(&mut self, n: u64) -> u64 {
        self.0 ^= self.0 << 13;
        self.0 ^= self.0 >> 7;
        self.0 ^= self.0 << 17;
        self.0 % n
    }
}

/// How far above its starting value the live heap may end, once everything is dropped.
const HEAP_BOUND: i64 = 2 << 20;

/// The system allocator, counting the bytes live on the heap.
struct Counting;

static LIVE_BYTES: AtomicI64 = AtomicI64::new(0);
static PEAK_BYTES: AtomicI64 = AtomicI64::new(0);

// SAFETY: every call goes straight to the system allocator with the same arguments; the
// counters are plain atomics.
unsafe impl GlobalAlloc for Counting {
    unsafe fn alloc(&self, layout: Layout) -> *mut u8 {
        let p = unsafe { System.alloc(layout) };
        if !p.is_null() {
            let live = LIVE_BYTES.fetch_add(layout.size() as i64, Ordering::Relaxed);
            PEAK_BYTES.fetch_max(live + layout.size() as i64, Ordering::Relaxed);
        }
        p
    }

    unsafe fn alloc_zeroed(&self, layout: Layout) -> *mut u8 {
        let p = unsafe { System.alloc_zeroed(layout) };
        if !p.is_null() {
            let live = LIVE_BYTES.fetch_add(layout.size() as i64, Ordering::Relaxed);
            PEAK_BYTES.fetch_max(live + layout.size() as i64, Ordering::Relaxed);
        }
        p
    }

    unsafe fn dealloc(&self, ptr: *mut u8, layout: Layout) {
        unsafe { System.dealloc(ptr, layout) };
        LIVE_BYTES.fetch_sub(layout.size() as i64, Ordering::Relaxed);
    }

    unsafe fn realloc(&self, ptr: *mut u8, layout: Layout, new_size: usize) -> *mut u8 {
        let p = unsafe { System.realloc(ptr, layout, new_size) };
        if !p.is_null() {
            let delta = new_size as i64 - layout.size() as i64;
            let live = LIVE_BYTES.fetch_add(delta, Ordering::Relaxed);
            PEAK_BYTES.fetch_max(live + delta, Ordering::Relaxed);
        }
        p
    }
}

#[global_allocator]
static ALLOCATOR: Counting = Counting;

/// Returns the free memory glibc's arenas hold to the system, where that allocator is in use.
fn trim_allocator() {
    #[cfg(all(target_os = "linux", target_env = "gnu"))]
    {
        extern "C" {
            fn malloc_trim(pad: usize) -> std::os::raw::c_int;
        }
        // SAFETY: malloc_trim only walks glibc's own arenas; it takes no pointer of ours.
        unsafe {
            malloc_trim(0);
        }
    }
}

fn mib(bytes: i64) -> f64 {
    bytes as f64 / f64::from(1 << 20)
}

fn open_fds() -> usize {
    std::fs::read_dir("/proc/self/fd").map_or(0, |d| d.count())
}

/// The process's resident memory in KiB: all of it (`VmRSS`).
fn rss_kib() -> u64 {
    status_kib("VmRSS:")
}

/// The process's anonymous resident memory in KiB (`RssAnon`: heap and stacks, not the pages
/// of the executable and libraries, which count in `VmRSS` once code runs).
fn anon_kib() -> u64 {
    status_kib("RssAnon:")
}

/// A `kB` figure of `/proc/self/status`, 0 where there is none.
fn status_kib(field: &str) -> u64 {
    std::fs::read_to_string("/proc/self/status")
        .ok()
        .and_then(|s| {
            s.lines()
                .find(|l| l.starts_with(field))
                .and_then(|l| l.split_whitespace().nth(1))
                .and_then(|v| v.parse().ok())
        })
        .unwrap_or(0)
}

fn client(mock: &MockWarehouse) -> DBSQLClient {
    let mut http = HttpConfig::default();
    http.pool_idle_timeout = Duration::from_millis(100);
    http.request_timeout = Duration::from_secs(10);
    let config = {
        let mut c = ClientConfig::default();
        c.host = mock.host().to_string();
        c.port = mock.port();
        c.http_path = mock.http_path().to_string();
        c.plain_http = true;
        c.http = http;
        c.retry = RetryPolicy::default()
            .with_max_attempts(4)
            .with_backoff(Duration::from_millis(5), Duration::from_millis(50))
            .with_overall_timeout(Duration::from_secs(20));
        c.cloud_fetch_config = {
            let mut c = CloudFetchConfig::default();
            c.max_buffered_bytes = 8 << 20;
            c
        };
        c
    };
    DBSQLClient::builder()
        .config(config)
        .token(mock.token())
        .telemetry_enabled(false)
        .build()
        .expect("client builds")
}

/// Checks that `batches` hold ids `0..n` in order (column 0).
fn check_ids(batches: &[databricks_sql::arrow::array::RecordBatch], n: i64) {
    let mut next = 0i64;
    for b in batches {
        let ids = b.column(0).as_any().downcast_ref::<Int64Array>().unwrap();
        for i in 0..ids.len() {
            assert_eq!(ids.value(i), next, "rows out of order or lost");
            next += 1;
        }
    }
    assert_eq!(next, n, "row count");
}

/// One statement of the mix, chosen by `pick`.
async fn one(session: &Session, pick: u64, tally: &Tally) -> databricks_sql::Result<()> {
    match pick {
        0 => {
            let b = session.query("SELECT 1", params![]).await?;
            assert_eq!(b.iter().map(|b| b.num_rows()).sum::<usize>(), 1);
        }
        1 => {
            let b = session
                .query("SELECT * FROM range(5000)", params![])
                .await?;
            check_ids(&b, 5000);
            tally.rows.fetch_add(5000, Ordering::Relaxed);
        }
        2 => {
            // CloudFetch: 20 files of 2,000 rows.
            let b = session
                .query("SELECT * FROM range(40000)", params![])
                .await?;
            check_ids(&b, 40_000);
            tally.rows.fetch_add(40_000, Ordering::Relaxed);
        }
        3 => {
            let n = session
                .execute(
                    "INSERT INTO t VALUES (:a), (:b)",
                    params![a => 1_i64, b => 2_i64],
                )
                .await?;
            assert_eq!(n, 2);
        }
        4 => {
            let mut op = session.schemas(None, None).await?;
            op.fetch_all().await?;
            op.close().await?;
        }
        5 => {
            let e = session
                .query("SELECT * FROM no_such_table", params![])
                .await
                .expect_err("fails");
            assert_eq!(e.kind(), ErrorKind::Server, "{e}");
        }
        6 => {
            // Cancel mid-stream.
            let mut op = session
                .execute_statement("SELECT * FROM range(40000)")
                .await?;
            op.next_batch().await?;
            op.cancel().await?;
            let _ = op.next_batch().await;
            op.close().await?;
        }
        _ => {
            // Dropped mid-stream without a close: closed in the background.
            let mut op = session
                .execute_statement("SELECT * FROM range(40000)")
                .await?;
            op.next_batch().await?;
            drop(op);
        }
    }
    Ok(())
}

/// Injects one random fault.
fn inject(mock: &MockWarehouse, rng: &mut Rng, tally: &Tally) {
    let fault = match rng.below(6) {
        0 => Fault::http_status(503)
            .retry_after("0")
            .on("GetOperationStatus"),
        1 => Fault::drop_connection().on("FetchResults"),
        2 => Fault::truncated_body().on_any_chunk(),
        3 => Fault::corrupt_file().on_any_chunk(),
        4 => Fault::expired_link().on_any_chunk(),
        _ => Fault::http_status(429)
            .retry_after("0")
            .on("ExecuteStatement"),
    };
    mock.inject(fault);
    tally.faults.fetch_add(1, Ordering::Relaxed);
}

/// Runs `workers` workers until `duration` has passed (at least `min_statements` each), then
/// closes everything and checks that nothing is left. Returns the tally.
fn run(workers: usize, duration: Duration, min_statements: u64) -> Tally {
    // One run at a time: the heap figures are the process's.
    static ONE_AT_A_TIME: Mutex<()> = Mutex::new(());
    let _one = ONE_AT_A_TIME.lock().unwrap_or_else(|e| e.into_inner());
    let heap_before = LIVE_BYTES.load(Ordering::Relaxed);
    PEAK_BYTES.store(heap_before, Ordering::Relaxed);
    let mock_rt = tokio::runtime::Builder::new_multi_thread()
        .worker_threads(1)
        .enable_all()
        .build()
        .unwrap();
    let mock = mock_rt
        .block_on(
            MockWarehouse::builder()
                .cloudfetch_threshold_rows(10_000)
                .cloudfetch_rows_per_file(2_000)
                .start(),
        )
        .unwrap();
    let client_rt = tokio::runtime::Builder::new_multi_thread()
        .worker_threads(2)
        .enable_all()
        .build()
        .unwrap();
    let fds_before = open_fds();
    let rss_start = rss_kib();
    let anon_start = anon_kib();
    let tally = Arc::new(Tally::default());
    let peak = Arc::new(AtomicU64::new(rss_start));
    client_rt.block_on(async {
        let client = client(&mock);
        let deadline = Instant::now() + duration;
        let mut tasks = Vec::new();
        for w in 0..workers {
            let session = client.open_session().await.unwrap();
            let mock = mock.clone();
            let tally = tally.clone();
            let peak = peak.clone();
            tasks.push(tokio::spawn(async move {
                let mut rng = Rng(0x9E37_79B9_7F4A_7C15 ^ (w as u64 + 1));
                let mut done = 0u64;
                while done < min_statements || Instant::now() < deadline {
                    if rng.below(10) == 0 {
                        inject(&mock, &mut rng, &tally);
                    }
                    let pick = rng.below(8);
                    if let Err(e) = one(&session, pick, &tally).await {
                        tally.error(e.kind());
                    }
                    tally.statements.fetch_add(1, Ordering::Relaxed);
                    done += 1;
                    peak.fetch_max(rss_kib(), Ordering::Relaxed);
                }
                session.close().await.unwrap();
            }));
        }
        for t in tasks {
            t.await.unwrap();
        }
        mock.clear_faults();
        client.close().await.unwrap();
        drop(client);
        let metrics = tokio::runtime::Handle::current().metrics();
        let mut left = 0;
        for _ in 0..500 {
            // This block's own task is the one alive.
            left = metrics.num_alive_tasks();
            if left == 0 {
                break;
            }
            tokio::time::sleep(Duration::from_millis(10)).await;
        }
        assert_eq!(left, 0, "client tasks left after close");
    });
    // The mock closes its side of the client's connections once they are gone.
    let mut fds_after = open_fds();
    for _ in 0..200 {
        if fds_after <= fds_before {
            break;
        }
        std::thread::sleep(Duration::from_millis(10));
        fds_after = open_fds();
    }
    assert!(
        fds_after <= fds_before,
        "file descriptors left: {fds_before} before, {fds_after} after"
    );
    mock_rt.block_on(async {
        for _ in 0..500 {
            if mock.open_sessions() == 0 && mock.open_operations() == 0 {
                break;
            }
            tokio::time::sleep(Duration::from_millis(10)).await;
        }
    });
    assert_eq!(mock.open_sessions(), 0, "sessions left open on the server");
    assert_eq!(
        mock.open_operations(),
        0,
        "operations left open on the server"
    );
    let rss_end = rss_kib();
    let anon_end = anon_kib();
    let heap_end = LIVE_BYTES.load(Ordering::Relaxed);
    // Everything gone: the client's runtime, the mock and its runtime.
    drop(client_rt);
    mock_rt.block_on(mock.shutdown());
    drop(mock);
    drop(mock_rt);
    let heap_after = LIVE_BYTES.load(Ordering::Relaxed);
    let anon_dropped = anon_kib();
    trim_allocator();
    let rss_trimmed = rss_kib();
    let anon_trimmed = anon_kib();
    println!(
        "load: {} workers, {:?}: {} statements, {} rows checked, {} faults injected, errors by kind {:?}; \
         leaked tasks 0, fds {fds_before} -> {fds_after}; RSS start {} MiB, peak {} MiB, end {} MiB, \
         after malloc_trim {} MiB; anonymous RSS start {} MiB, end {} MiB, after dropping the \
         client and the mock {} MiB, after malloc_trim {} MiB; live heap before {:.1} MiB, \
         peak {:.1} MiB, at the end {:.1} MiB, after dropping {:.2} MiB",
        workers,
        duration,
        tally.statements.load(Ordering::Relaxed),
        tally.rows.load(Ordering::Relaxed),
        tally.faults.load(Ordering::Relaxed),
        tally.errors.lock().unwrap(),
        rss_start / 1024,
        peak.load(Ordering::Relaxed) / 1024,
        rss_end / 1024,
        rss_trimmed / 1024,
        anon_start / 1024,
        anon_end / 1024,
        anon_dropped / 1024,
        anon_trimmed / 1024,
        mib(heap_before),
        mib(PEAK_BYTES.load(Ordering::Relaxed)),
        mib(heap_end),
        mib(heap_after),
    );
    assert!(
        heap_after - heap_before <= HEAP_BOUND,
        "live heap {:.2} MiB before the run, {:.2} MiB after everything was dropped",
        mib(heap_before),
        mib(heap_after)
    );
    Arc::try_unwrap(tally).unwrap_or_default()
}

#[test]
fn a_short_mixed_load_with_faults_leaves_nothing_behind() {
    let tally = run(4, Duration::ZERO, 25);
    assert_eq!(tally.statements.load(Ordering::Relaxed), 100);
    assert!(tally.faults.load(Ordering::Relaxed) > 0);
}

#[test]
#[ignore = "the long run: LOAD_SECONDS=600 cargo test --release --test load -- --ignored --nocapture"]
fn a_long_mixed_load_with_faults_leaves_nothing_behind() {
    let seconds = std::env::var("LOAD_SECONDS")
        .ok()
        .and_then(|s| s.parse().ok())
        .unwrap_or(600);
    run(64, Duration::from_secs(seconds), 100);
}
