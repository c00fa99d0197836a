//! `select_one`: the round trip of `SELECT 1` answered with direct results (ExecuteStatement,
//! then CloseOperation), through the public API, against the mock warehouse running in a process
//! of its own, from a current-thread runtime (as a new user's `#[tokio::main(flavor =
//! "current_thread")]` program would). The benchmark's thread and the mock's process are pinned
//! to the first CPU: on a VM, waking the other process on another, idle CPU costs more than the
//! round trip itself (a third of the client's CPU, in `perf`), and unpinned the figures follow
//! wherever the scheduler puts the two.
//!
//! Two figures per round trip:
//! - `select_one/wall`: the elapsed time, the mock's work and the loopback included;
//! - `select_one/client_cpu`: the CPU time of the client's one thread (from
//!   `/proc/thread-self/schedstat`), so the client's own cost, whatever the mock costs.
//!
//! ```text
//! cargo bench --bench select_one
//! ```

mod common;

use std::time::Duration;

use criterion::Criterion;
use databricks_sql::mock::MockWarehouse;
use databricks_sql::Session;

fn main() {
    if common::serve_if_child(MockWarehouse::builder) {
        return;
    }
    let mut criterion = Criterion::default()
        .configure_from_args()
        .measurement_time(Duration::from_secs(5));
    bench(&mut criterion);
    criterion.final_summary();
}

/// CPU time of the calling thread so far (Linux; zero where the figure is missing).
fn thread_cpu() -> Duration {
    std::fs::read_to_string("/proc/thread-self/schedstat")
        .ok()
        .and_then(|s| s.split_whitespace().next()?.parse().ok())
        .map_or(Duration::ZERO, Duration::from_nanos)
}

async fn round_trip(session: &Session) {
    let mut op = session
        .execute_statement("SELECT 1")
        .await
        .expect("execute");
    let batches = op.fetch_all().await.expect("fetch");
    assert_eq!(batches.iter().map(|b| b.num_rows()).sum::<usize>(), 1);
    op.close().await.expect("close");
}

fn bench(c: &mut Criterion) {
    let mut server = common::MockProcess::spawn(true);
    let rt = tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
        .expect("tokio runtime");
    let client = server.client_builder().build().expect("client builds");
    let session = rt.block_on(client.open_session()).expect("session opens");
    let mut group = c.benchmark_group("select_one");
    group.bench_function("wall", |b| b.iter(|| rt.block_on(round_trip(&session))));
    group.bench_function("client_cpu", |b| {
        b.iter_custom(|iters| {
            rt.block_on(async {
                let start = thread_cpu();
                for _ in 0..iters {
                    round_trip(&session).await;
                }
                thread_cpu() - start
            })
        })
    });
    group.finish();
    rt.block_on(async {
        session.close().await.expect("session closes");
        client.close().await.expect("client closes");
    });
    server.assert_nothing_left_open();
}
