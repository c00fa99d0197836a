//! This driver's side of the comparison with the official Python and Node.js drivers
//! (`scripts/compare/run.sh`): runs one workload against the warehouse named by
//! `DATABRICKS_HOST`, `DATABRICKS_HTTP_PATH` and `DATABRICKS_TOKEN` (the standalone mock
//! warehouse, in the comparison) and prints one JSON line with what it measured.
//!
//! ```text
//! compare_client <workload> [N]
//!   select1          N x `SELECT 1` in one session (default 2000), current-thread runtime
//!   cloudfetch       `SELECT * FROM mock.rows(N)` (default 10,000,000), batches streamed
//!   cloudfetch_all   the same, every batch collected with `fetch_all()`
//!   inline           `SELECT * FROM mock.rows(N)` (default 1,000,000), CloudFetch off
//!   rows             `SELECT * FROM mock.rows(N)` (default 1,000,000) with the defaults, read
//!                    as typed rows: `fetch_all_as` into a struct of the five columns
//!   columns          N x `columns(samples, tpch, %, %)` read whole (default 200)
//! ```
//!
//! The JSON line holds the workload's own wall-clock and CPU time (process CPU, every thread,
//! from connect to close excluded), the rows read and, for result reads, the time from the
//! execute call to the first batch in hand (when read batch by batch). Telemetry is off, as it is for the other drivers
//! in the comparison.

use std::time::{Duration, Instant};

use databricks_sql::{params, ClientBuilder, ExecuteOptions, Session};

/// One row of `mock.rows`, as an application would declare it (chrono's own `Deserialize`
/// for the timestamp, as the other drivers build their date-time objects).
#[derive(serde::Deserialize)]
struct MockRow {
    id: i64,
    name: Option<String>,
    amount: f64,
    ts: chrono::DateTime<chrono::Utc>,
    flag: bool,
}

/// Checks the row count and every field of the last row against `mock.rows`' rules (row `i`:
/// name `name-i` but NULL when `i % 7 == 3`, amount `i * 0.25`, ts `i` seconds, flag `i` even), so
/// that a fast wrong answer cannot pass for a result.
fn check_last_row(rows: &[MockRow], n: u64) {
    assert_eq!(rows.len() as u64, n, "rows read");
    let Some(last) = rows.last() else { return };
    let i = n as i64 - 1;
    assert_eq!(last.id, i, "id of the last row");
    let name = (i % 7 != 3).then(|| format!("name-{i}"));
    assert_eq!(last.name, name, "name of row {i}");
    assert_eq!(last.amount, i as f64 * 0.25, "amount of row {i}");
    assert_eq!(last.ts.timestamp(), i, "ts of row {i}");
    assert_eq!(last.flag, i % 2 == 0, "flag of row {i}");
}

/// What one workload measured.
struct Measured {
    rows: u64,
    iterations: u64,
    wall: Duration,
    cpu: Duration,
    first_batch: Option<Duration>,
}

/// The CPU time of this process so far, every thread included (`CLOCK_PROCESS_CPUTIME_ID`,
/// what Python's `time.process_time()` reads).
fn process_cpu() -> Duration {
    let mut ts = libc::timespec {
        tv_sec: 0,
        tv_nsec: 0,
    };
    // SAFETY: `ts` is a valid, writable timespec for the duration of the call, and
    // CLOCK_PROCESS_CPUTIME_ID is a clock every Unix this example runs on provides.
    let rc = unsafe { libc::clock_gettime(libc::CLOCK_PROCESS_CPUTIME_ID, &mut ts) };
    if rc != 0 {
        return Duration::ZERO;
    }
    Duration::new(
        u64::try_from(ts.tv_sec).unwrap_or(0),
        u32::try_from(ts.tv_nsec).unwrap_or(0),
    )
}

/// Times `work` (wall clock and process CPU).
async fn timed<F, Fut>(work: F) -> databricks_sql::Result<Measured>
where
    F: FnOnce() -> Fut,
    Fut: std::future::Future<Output = databricks_sql::Result<(u64, u64, Option<Duration>)>>,
{
    let cpu0 = process_cpu();
    let t0 = Instant::now();
    let (rows, iterations, first_batch) = work().await?;
    Ok(Measured {
        rows,
        iterations,
        wall: t0.elapsed(),
        cpu: process_cpu().saturating_sub(cpu0),
        first_batch,
    })
}

/// `SELECT * FROM mock.rows(n)` read batch by batch (each batch dropped once counted), or
/// collected whole with `fetch_all()`.
async fn read_rows(
    session: &Session,
    n: u64,
    options: ExecuteOptions,
    collect: bool,
) -> databricks_sql::Result<(u64, u64, Option<Duration>)> {
    let sql = format!("SELECT * FROM mock.rows({n})");
    let t0 = Instant::now();
    let mut op = session.execute_statement_with(&sql, options).await?;
    let mut rows = 0u64;
    let mut first = None;
    if collect {
        let batches = op.fetch_all().await?;
        rows = batches.iter().map(|b| b.num_rows() as u64).sum();
    } else {
        while let Some(batch) = op.next_batch().await? {
            first.get_or_insert_with(|| t0.elapsed());
            rows += batch.num_rows() as u64;
        }
    }
    op.close().await?;
    Ok((rows, 1, first))
}

async fn run(workload: &str, n: Option<u64>) -> Result<Measured, Box<dyn std::error::Error>> {
    let client = ClientBuilder::from_env()
        .telemetry_enabled(false)
        .user_agent_entry("compare_client")
        .build()?;
    let session = client.open_session().await?;
    let s = &session;
    let measured = match workload {
        "select1" => {
            let n = n.unwrap_or(2_000);
            timed(|| async move {
                let mut rows = 0;
                for _ in 0..n {
                    let batches = s.query("SELECT 1", params![]).await?;
                    rows += batches.iter().map(|b| b.num_rows() as u64).sum::<u64>();
                }
                Ok((rows, n, None))
            })
            .await?
        }
        "cloudfetch" | "cloudfetch_all" => {
            let collect = workload == "cloudfetch_all";
            let n = n.unwrap_or(10_000_000);
            timed(|| read_rows(s, n, ExecuteOptions::new(), collect)).await?
        }
        "inline" => {
            let n = n.unwrap_or(1_000_000);
            timed(|| read_rows(s, n, ExecuteOptions::new().cloud_fetch(false), false)).await?
        }
        "rows" => {
            let n = n.unwrap_or(1_000_000);
            timed(|| async move {
                let sql = format!("SELECT * FROM mock.rows({n})");
                let mut op = s.execute_statement(&sql).await?;
                let rows: Vec<MockRow> = op.fetch_all_as().await?;
                op.close().await?;
                check_last_row(&rows, n);
                Ok((rows.len() as u64, 1, None))
            })
            .await?
        }
        "columns" => {
            let n = n.unwrap_or(200);
            timed(|| async move {
                let mut rows = 0;
                for _ in 0..n {
                    let mut op = s
                        .columns(Some("samples"), Some("tpch"), Some("%"), Some("%"))
                        .await?;
                    let batches = op.fetch_all().await?;
                    op.close().await?;
                    rows += batches.iter().map(|b| b.num_rows() as u64).sum::<u64>();
                }
                Ok((rows, n, None))
            })
            .await?
        }
        other => return Err(format!("unknown workload: {other}").into()),
    };
    session.close().await?;
    client.close().await?;
    Ok(measured)
}

fn main() -> Result<(), Box<dyn std::error::Error>> {
    let mut args = std::env::args().skip(1);
    let Some(workload) = args.next() else {
        eprintln!(
            "usage: compare_client <select1|cloudfetch|cloudfetch_all|inline|rows|columns> [N]"
        );
        std::process::exit(2);
    };
    let n = match args.next() {
        Some(v) => Some(v.parse::<u64>().map_err(|_| format!("not a count: {v}"))?),
        None => None,
    };
    // Small statements on a current-thread runtime, as a new user's `#[tokio::main(flavor =
    // "current_thread")]` would run them; result reads on the default multi-thread runtime.
    let runtime = if workload == "select1" || workload == "columns" {
        tokio::runtime::Builder::new_current_thread()
            .enable_all()
            .build()?
    } else {
        tokio::runtime::Builder::new_multi_thread()
            .enable_all()
            .build()?
    };
    let m = runtime.block_on(run(&workload, n))?;
    let line = serde_json::json!({
        "driver": "rust",
        "workload": workload,
        "rows": m.rows,
        "iterations": m.iterations,
        "wall_s": m.wall.as_secs_f64(),
        "cpu_s": m.cpu.as_secs_f64(),
        "first_batch_s": m.first_batch.map(|d| d.as_secs_f64()),
    });
    println!("{line}");
    Ok(())
}
