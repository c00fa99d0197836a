//! `inline_fetch`: 1,000,000 rows of `mock.rows` (BIGINT, STRING with NULLs, DOUBLE, TIMESTAMP,
//! BOOLEAN) as inline Arrow batches with LZ4, read through the public API from the in-process
//! mock warehouse over loopback HTTP.

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
    let (mock, session) = rt.block_on(async {
        let mock = MockWarehouse::start().await.expect("mock starts");
        let client = mock
            .client_builder()
            .lz4(true)
            .cloud_fetch(false)
            .build()
            .expect("client builds");
        let session = client.open_session().await.expect("session opens");
        (mock, session)
    });
    let sql = format!("SELECT * FROM mock.rows({ROWS})");
    let mut group = c.benchmark_group("inline_fetch");
    group.throughput(Throughput::Elements(ROWS));
    group.sample_size(10);
    group.measurement_time(Duration::from_secs(20));
    group.bench_function("mock_rows_1m_arrow_lz4", |b| {
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
    group.finish();
    rt.block_on(async {
        session.close().await.expect("session closes");
    });
    drop(mock);
}

criterion_group!(benches, inline_fetch);
criterion_main!(benches);
