//! What telemetry costs a client: the same work with telemetry off and on, through the public
//! API, against a mock warehouse running in a process of its own (this same binary,
//! re-executed) with the telemetry feature flag on.
//!
//! - `select_one_x1000`: 1,000 round trips of `SELECT 1` (execute, read, close) on one session:
//!   the per-statement cost (events, aggregation, one protoLog per statement, an export every
//!   100 of them).
//! - `cloudfetch_2m`: one CloudFetch result of `SELECT * FROM mock.rows(2000000)` (20 files of
//!   100,000 rows, LZ4) read to the end: the per-chunk cost. The mock keeps its files
//!   (`cloudfetch_keep_files`), so only the warm-up pays for generating them.
//!
//! "off" is a client built with `.telemetry_enabled(false)` (no feature-flag request, no
//! background task); "on" is a client with the default settings, which finds the flag on and
//! exports to the mock's `/telemetry-ext`. Each has its own `TelemetryClientProvider` and one
//! session, kept for the whole run, so "on" measures telemetry in its steady state, not its
//! start. The mock takes every upload in on the same two cores (it reads the body and counts
//! its logs), so "on" figures include work a real telemetry endpoint does elsewhere.
//!
//! Target: telemetry on costs less than 1% (on/off ratio of medians below 1.01).
//!
//! ```text
//! cargo bench --bench telemetry_overhead
//! ```
//!
//! About 40 s on two cores. The mock keeps the uploads it receives raw (at most 256 MiB).
//!
//! Besides criterion's groups (`telemetry_overhead/select_one_x1000/{off,on}`,
//! `telemetry_overhead/cloudfetch_2m/{off,on}`, which run every "off" sample before every "on"
//! one), it runs a paired comparison that alternates off and on runs (61 pairs of
//! `select_one_x1000`, 31 of `cloudfetch_2m`, after a warm-up; the order within a pair swaps
//! every pair) so that drift of the machine hits both alike, and prints one line per case to
//! stderr: the median of each, the on/off ratio of the medians and the median of the per-pair
//! ratios. With `-- --test` each case runs once and the comparison is one pair.

mod common;

use std::sync::atomic::{AtomicU64, Ordering};
use std::time::{Duration, Instant};

use criterion::{Criterion, SamplingMode};
use databricks_sql::mock::MockWarehouse;
use databricks_sql::telemetry::TelemetryClientProvider;
use databricks_sql::{DBSQLClient, Session};
use tokio::runtime::Runtime;

const GROUP: &str = "telemetry_overhead";
const ROUND_TRIPS: usize = 1_000;
const CLOUDFETCH_SQL: &str = "SELECT * FROM mock.rows(2000000)";
const CLOUDFETCH_ROWS: u64 = 2_000_000;
const SELECT_ONE_PAIRS: usize = 61;
const CLOUDFETCH_PAIRS: usize = 31;

fn main() {
    // The mock's process: telemetry flag on, CloudFetch files kept.
    if common::serve_if_child(|| {
        MockWarehouse::builder()
            .telemetry_enabled(true)
            .cloudfetch_keep_files(true)
    }) {
        return;
    }
    // Few samples of long iterations (flat sampling): about a minute and a half in all on two
    // cores. Command-line options override these.
    let mut criterion = Criterion::default()
        .sample_size(10)
        .warm_up_time(Duration::from_secs(1))
        .measurement_time(Duration::from_secs(6))
        .configure_from_args();
    bench(&mut criterion);
    criterion.final_summary();
}

// -- the clients ---------------------------------------------------------------------------

/// One side of the comparison: a client with its own telemetry provider and one session.
struct Variant {
    name: &'static str,
    client: DBSQLClient,
    session: Session,
}

impl Variant {
    fn connect(runtime: &Runtime, server: &common::MockProcess, telemetry: bool) -> Variant {
        let builder = server
            .client_builder()
            .telemetry_provider(TelemetryClientProvider::new());
        let client = if telemetry {
            builder
        } else {
            builder.telemetry_enabled(false)
        }
        .build()
        .expect("client");
        let session = runtime.block_on(client.open_session()).expect("session");
        Variant {
            name: if telemetry { "on" } else { "off" },
            client,
            session,
        }
    }

    fn close(self, runtime: &Runtime) {
        runtime.block_on(async {
            self.session.close().await.expect("session closes");
            self.client.close().await.expect("client closes");
        });
    }
}

// -- the work ------------------------------------------------------------------------------

/// The two measured cases.
#[derive(Debug, Clone, Copy)]
enum Case {
    SelectOneX1000,
    CloudFetch2m,
}

impl Case {
    fn name(self) -> &'static str {
        match self {
            Case::SelectOneX1000 => "select_one_x1000",
            Case::CloudFetch2m => "cloudfetch_2m",
        }
    }

    fn pairs(self) -> usize {
        match self {
            Case::SelectOneX1000 => SELECT_ONE_PAIRS,
            Case::CloudFetch2m => CLOUDFETCH_PAIRS,
        }
    }

    /// One run of the case on `session`: how long it took.
    async fn run(self, session: &Session) -> Duration {
        let start = Instant::now();
        match self {
            Case::SelectOneX1000 => {
                for _ in 0..ROUND_TRIPS {
                    let mut op = session
                        .execute_statement("SELECT 1")
                        .await
                        .expect("execute");
                    let batches = op.fetch_all().await.expect("fetch");
                    assert_eq!(batches.iter().map(|b| b.num_rows()).sum::<usize>(), 1);
                    op.close().await.expect("close");
                }
            }
            Case::CloudFetch2m => {
                let mut op = session
                    .execute_statement(CLOUDFETCH_SQL)
                    .await
                    .expect("execute");
                let mut rows = 0u64;
                while let Some(batch) = op.next_batch().await.expect("batch") {
                    rows += batch.num_rows() as u64;
                }
                assert_eq!(rows, CLOUDFETCH_ROWS);
                assert!(
                    op.cloudfetch_summary()
                        .is_some_and(|s| s.chunks_decoded > 0),
                    "the result must come through CloudFetch"
                );
                op.close().await.expect("close");
            }
        }
        start.elapsed()
    }
}

// -- the benchmark -------------------------------------------------------------------------

fn bench(c: &mut Criterion) {
    let mut server = common::MockProcess::spawn(false);
    let runtime = tokio::runtime::Builder::new_multi_thread()
        .worker_threads(2)
        .enable_all()
        .build()
        .expect("runtime");
    let off = Variant::connect(&runtime, &server, false);
    let on = Variant::connect(&runtime, &server, true);
    // The first CloudFetch execution makes the mock generate (and keep) its files.
    runtime.block_on(Case::CloudFetch2m.run(&off.session));

    let mut paired = Vec::new();
    for case in [Case::SelectOneX1000, Case::CloudFetch2m] {
        // Iterations criterion ran, per variant: 0 when filtered out or listing, 1 in test mode.
        let iterations = [AtomicU64::new(0), AtomicU64::new(0)];
        let mut group = c.benchmark_group(format!("{GROUP}/{}", case.name()));
        group.sampling_mode(SamplingMode::Flat);
        for (variant, count) in [&off, &on].into_iter().zip(&iterations) {
            let session = &variant.session;
            group.bench_function(variant.name, |b| {
                b.to_async(&runtime).iter_custom(|iters| async move {
                    count.fetch_add(iters, Ordering::Relaxed);
                    let mut total = Duration::ZERO;
                    for _ in 0..iters {
                        total += case.run(session).await;
                    }
                    total
                })
            });
        }
        group.finish();
        let ran = iterations.iter().map(|n| n.load(Ordering::Relaxed)).max();
        match ran {
            Some(0) | None => {}
            Some(1) => paired.push(compare(&runtime, case, 1, &off, &on)),
            Some(_) => paired.push(compare(&runtime, case, case.pairs(), &off, &on)),
        }
    }

    off.close(&runtime);
    on.close(&runtime);
    let stats = server.stats();
    let (logs, flag_requests) = (stats["protoLogs"], stats["flag_requests"]);
    eprintln!();
    for line in &paired {
        eprintln!("{line}");
    }
    eprintln!(
        "{GROUP}: the mock received {logs} protoLogs and {flag_requests} feature-flag request(s) \
         (from the \"on\" client only)"
    );
    assert!(
        logs > 0 && flag_requests == 1,
        "telemetry must be on for the \"on\" client and off for the \"off\" one"
    );
    server.assert_nothing_left_open();
}

/// Alternate `pairs` runs of `off` and `on` after one warm-up run of each; the summary line:
/// wall-clock medians and ratios, and the client process's CPU time per run (all its threads,
/// the telemetry task's included; the mock's process is not counted), where Linux tells it.
fn compare(runtime: &Runtime, case: Case, pairs: usize, off: &Variant, on: &Variant) -> String {
    runtime.block_on(async {
        case.run(&off.session).await;
        case.run(&on.session).await;
    });
    let (mut offs, mut ons) = (Vec::new(), Vec::new());
    let (mut off_cpu, mut on_cpu) = (Vec::new(), Vec::new());
    let timed = |variant: &Variant| {
        let cpu = process_cpu();
        let wall = runtime.block_on(case.run(&variant.session));
        let cpu = process_cpu().zip(cpu).map(|(after, before)| after - before);
        (wall.as_secs_f64(), cpu)
    };
    for pair in 0..pairs {
        let ((t_off, c_off), (t_on, c_on)) = if pair % 2 == 0 {
            let off_run = timed(off);
            (off_run, timed(on))
        } else {
            let on_run = timed(on);
            (timed(off), on_run)
        };
        offs.push(t_off);
        ons.push(t_on);
        off_cpu.extend(c_off);
        on_cpu.extend(c_on);
    }
    let ratios: Vec<f64> = ons.iter().zip(&offs).map(|(on, off)| on / off).collect();
    let (off_median, on_median) = (median(offs), median(ons));
    let cpu = if off_cpu.len() == pairs && on_cpu.len() == pairs {
        let (off_cpu, on_cpu) = (median(off_cpu), median(on_cpu));
        format!(
            "; client CPU per run: off median {:.1} ms, on median {:.1} ms, ratio {:.3}",
            off_cpu * 1e3,
            on_cpu * 1e3,
            on_cpu / off_cpu
        )
    } else {
        String::new()
    };
    format!(
        "{GROUP} paired {}: off median {:.1} ms, on median {:.1} ms, ratio {:.3} \
         (median of pair ratios {:.3}, {pairs} pairs){cpu}",
        case.name(),
        off_median * 1e3,
        on_median * 1e3,
        on_median / off_median,
        median(ratios),
    )
}

/// CPU time used so far by every thread of this process, in seconds, from
/// `/proc/self/task/*/schedstat` (nanoseconds on CPU); `None` where that is not readable.
/// Threads that ended are not counted, so only differences over a short span are meaningful.
fn process_cpu() -> Option<f64> {
    let mut total_ns: u64 = 0;
    for task in std::fs::read_dir("/proc/self/task").ok()? {
        let path = task.ok()?.path().join("schedstat");
        let text = std::fs::read_to_string(path).ok()?;
        total_ns += text.split_whitespace().next()?.parse::<u64>().ok()?;
    }
    Some(total_ns as f64 / 1e9)
}

fn median(mut values: Vec<f64>) -> f64 {
    values.sort_by(f64::total_cmp);
    match values.len() {
        0 => f64::NAN,
        n if n % 2 == 1 => values[n / 2],
        n => (values[n / 2 - 1] + values[n / 2]) / 2.0,
    }
}
