//! `inline_fetch`: 1,000,000 rows of `mock.rows` (BIGINT, STRING with NULLs, DOUBLE, TIMESTAMP,
//! BOOLEAN) read through the public API from the in-process mock warehouse over loopback HTTP,
//! two ways in one group: as inline Arrow batches with LZ4 (`mock_rows_1m_arrow_lz4`) and as
//! column-based row sets converted to Arrow by the driver (`mock_rows_1m_column_based`, the
//! timestamps sent as text and parsed).

use std::time::Duration;

use criterion::{criterion_group, criterion_main, Criterion, Throughput};
use databricks_sql::mock::MockWarehouse;

const ROWS: u64 = 1_000_000;

fn inline_fetch(c: &mut Criterion) {
    let rt = tokio::runtime::Builder::new_multi_thread()
        .worker_threads(2)
        .enable_all()
        .build()
        .expect("tokio runtime");
    let (mock, arrow_session, column_session) = rt.block_on(async {
        let mock = MockWarehouse::start().await.expect("mock starts");
        let arrow = mock
            .client_builder()
            .lz4(true)
            .cloud_fetch(false)
            .build()
            .expect("client builds");
        let columns = mock
            .client_builder()
            .arrow(false)
            .cloud_fetch(false)
            .build()
            .expect("client builds");
        let arrow_session = arrow.open_session().await.expect("session opens");
        let column_session = columns.open_session().await.expect("session opens");
        (mock, arrow_session, column_session)
    });
    let sql = format!("SELECT * FROM mock.rows({ROWS})");
    let mut group = c.benchmark_group("inline_fetch");
    group.throughput(Throughput::Elements(ROWS));
    group.sample_size(10);
    group.measurement_time(Duration::from_secs(20));
    for (name, session) in [
        ("mock_rows_1m_arrow_lz4", &arrow_session),
        ("mock_rows_1m_column_based", &column_session),
    ] {
        group.bench_function(name, |b| {
            b.to_async(&rt).iter(|| async {
                let mut op = session.execute_statement(&sql).await.expect("execute");
                let mut rows = 0u64;
                while let Some(batch) = op.next_batch().await.expect("batch") {
                    rows += batch.num_rows() as u64;
                }
                assert_eq!(rows, ROWS);
                op.close().await.expect("close");
            })
        });
    }
    group.finish();
    rt.block_on(async {
        arrow_session.close().await.expect("session closes");
        column_session.close().await.expect("session closes");
    });
    drop(mock);
}

criterion_group!(benches, inline_fetch);
criterion_main!(benches);
