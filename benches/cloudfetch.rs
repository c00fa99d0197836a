//! CloudFetch end to end: `SELECT * FROM mock.rows(10000000)` with LZ4 (100 files of 100,000
//! rows, about 400 MB of Arrow data) through the public API, against a mock warehouse running in
//! a process of its own (this same binary, re-executed), so that the peak RSS read here is the
//! client's alone. The mock keeps the files it generates (`cloudfetch_keep_files`), so only the
//! first (warm-up) execution pays for generating them.
//!
//! Baseline: the same 100 files, already in memory, LZ4-decompressed and Arrow-decoded one after
//! the other on one thread, with the driver's own code ([`decode_cloudfetch_file`]).
//!
//! Decoded bytes are the lengths of the decoded Arrow buffers (values, offsets, validity), not
//! their capacities (zero-copy arrays share one allocation per file, which capacities would
//! count once per column).
//!
//! ```text
//! cargo bench --bench cloudfetch
//! ```
//!
//! Besides criterion's figures it prints the medians: decoded MB/s, rows/s, time to first batch,
//! the client's peak RSS (VmHWM), and the ratio to the baseline.

mod common;

use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use arrow_data::ArrayData;
use criterion::{Criterion, Throughput};
use databricks_sql::arrow::array::{Array, RecordBatch};
use databricks_sql::mock::{decode_cloudfetch_file, MockWarehouse};
use databricks_sql::Session;

const SQL: &str = "SELECT * FROM mock.rows(10000000)";
const ROWS: u64 = 10_000_000;

fn main() {
    if common::serve_if_child(|| MockWarehouse::builder().cloudfetch_keep_files(true)) {
        return;
    }
    let mut criterion = Criterion::default()
        .configure_from_args()
        .sample_size(10)
        .warm_up_time(Duration::from_secs(1))
        .measurement_time(Duration::from_secs(8));
    bench(&mut criterion);
    criterion.final_summary();
}

// -- measuring -----------------------------------------------------------------------------

/// Bytes of Arrow data in `batch`: the lengths of every buffer, validity included.
fn arrow_bytes(batch: &RecordBatch) -> u64 {
    fn data_bytes(d: &ArrayData) -> usize {
        d.buffers().iter().map(|b| b.len()).sum::<usize>()
            + d.nulls().map_or(0, |n| n.buffer().len())
            + d.child_data().iter().map(data_bytes).sum::<usize>()
    }
    batch
        .columns()
        .iter()
        .map(|c| data_bytes(&c.to_data()) as u64)
        .sum()
}

/// One execution of the query, read to the end.
#[derive(Debug, Clone, Copy)]
struct Run {
    total: Duration,
    first_batch: Duration,
    rows: u64,
    bytes: u64,
    /// The most the pipeline's byte budget held at once.
    budget_peak: u64,
}

async fn run_once(session: &Session) -> Run {
    let start = Instant::now();
    let mut op = session.execute_statement(SQL).await.expect("execute");
    let mut first_batch = None;
    let (mut rows, mut bytes) = (0u64, 0u64);
    while let Some(batch) = op.next_batch().await.expect("batch") {
        first_batch.get_or_insert_with(|| start.elapsed());
        rows += batch.num_rows() as u64;
        bytes += arrow_bytes(&batch);
    }
    let total = start.elapsed();
    let budget_peak = op.cloudfetch_summary().map_or(0, |s| s.budget_peak);
    op.close().await.expect("close");
    assert_eq!(rows, ROWS);
    Run {
        total,
        first_batch: first_batch.unwrap_or(total),
        rows,
        bytes,
        budget_peak,
    }
}

/// A field of `/proc/self/status` in KiB (`VmHWM`, `VmRSS`).
fn proc_status_kib(field: &str) -> Option<u64> {
    let status = std::fs::read_to_string("/proc/self/status").ok()?;
    status
        .lines()
        .find_map(|l| l.strip_prefix(field)?.strip_prefix(':'))?
        .trim()
        .trim_end_matches("kB")
        .trim()
        .parse()
        .ok()
}

fn median(mut values: Vec<Duration>) -> Duration {
    values.sort();
    values.get(values.len() / 2).copied().unwrap_or_default()
}

fn mb_per_s(bytes: u64, d: Duration) -> f64 {
    bytes as f64 / 1e6 / d.as_secs_f64()
}

// -- the benchmark -------------------------------------------------------------------------

fn bench(c: &mut Criterion) {
    let mut server = common::MockProcess::spawn(false);
    let runtime = tokio::runtime::Builder::new_multi_thread()
        .worker_threads(2)
        .enable_all()
        .build()
        .expect("runtime");
    let client = server.client_builder().build().expect("client");
    let session = runtime.block_on(client.open_session()).expect("session");

    // Warm-up outside the measurement: the mock generates its files once, here.
    let warm = runtime.block_on(run_once(&session));
    // Peak RSS from here on only (Linux: writing 5 to clear_refs resets VmHWM).
    let _ = std::fs::write("/proc/self/clear_refs", "5");

    let runs = Arc::new(Mutex::new(Vec::<Run>::new()));
    let mut group = c.benchmark_group("cloudfetch");
    group.throughput(Throughput::Bytes(warm.bytes));
    {
        let runs = runs.clone();
        group.bench_function("end_to_end_10M_mock_rows_lz4", |b| {
            b.iter_custom(|iters| {
                let mut total = Duration::ZERO;
                for _ in 0..iters {
                    let run = runtime.block_on(run_once(&session));
                    total += run.total;
                    runs.lock().expect("runs").push(run);
                }
                total
            })
        });
    }
    let peak_rss_kib = proc_status_kib("VmHWM");
    runtime.block_on(async {
        let _ = session.close().await;
        let _ = client.close().await;
    });
    server.assert_nothing_left_open();
    drop(server);

    // Baseline: the same files in memory, decoded on this thread.
    let files = {
        let mock = runtime
            .block_on(MockWarehouse::start())
            .expect("in-process mock");
        let files = mock.cloudfetch_files(SQL, true).expect("files");
        runtime.block_on(mock.shutdown());
        files
    };
    let compressed: usize = files.iter().map(|f| f.len()).sum();
    let baseline_runs = Arc::new(Mutex::new(Vec::<Duration>::new()));
    {
        let baseline_runs = baseline_runs.clone();
        group.bench_function("baseline_one_thread_in_memory", |b| {
            b.iter_custom(|iters| {
                let mut total = Duration::ZERO;
                for _ in 0..iters {
                    let start = Instant::now();
                    let mut bytes = 0u64;
                    for f in &files {
                        let batches = decode_cloudfetch_file(f, true).expect("decode");
                        bytes += batches.iter().map(arrow_bytes).sum::<u64>();
                    }
                    let elapsed = start.elapsed();
                    assert_eq!(bytes, warm.bytes);
                    total += elapsed;
                    baseline_runs.lock().expect("runs").push(elapsed);
                }
                total
            })
        });
    }
    group.finish();

    let runs = runs.lock().expect("runs").clone();
    let e2e = median(runs.iter().map(|r| r.total).collect());
    let first = median(runs.iter().map(|r| r.first_batch).collect());
    let base = median(baseline_runs.lock().expect("runs").clone());
    let e2e_mbps = mb_per_s(warm.bytes, e2e);
    let base_mbps = mb_per_s(warm.bytes, base);
    println!();
    println!(
        "CloudFetch summary ({} runs end to end, medians):",
        runs.len()
    );
    println!(
        "  result: {} rows, {:.1} MB of Arrow data, {} files, {:.1} MB served (LZ4)",
        warm.rows,
        warm.bytes as f64 / 1e6,
        files.len(),
        compressed as f64 / 1e6
    );
    println!(
        "  end to end: {:.3} s, {:.0} MB/s decoded, {:.2} M rows/s, first batch after {:.1} ms",
        e2e.as_secs_f64(),
        e2e_mbps,
        warm.rows as f64 / 1e6 / e2e.as_secs_f64(),
        first.as_secs_f64() * 1e3
    );
    let budget_peak = runs.iter().map(|r| r.budget_peak).max().unwrap_or(0);
    println!(
        "  byte budget: {:.1} MB held at most ({:.1} MB configured)",
        budget_peak as f64 / 1e6,
        databricks_sql::CloudFetchConfig::default().max_buffered_bytes as f64 / 1e6
    );
    match peak_rss_kib {
        Some(kib) => println!(
            "  client peak RSS (VmHWM during the end-to-end runs): {:.1} MB",
            kib as f64 * 1024.0 / 1e6
        ),
        None => println!("  client peak RSS: unknown (no /proc/self/status)"),
    }
    println!(
        "  baseline (one thread, in memory): {:.3} s, {:.0} MB/s decoded",
        base.as_secs_f64(),
        base_mbps
    );
    println!("  end to end / baseline: {:.2}x", e2e_mbps / base_mbps);
}
