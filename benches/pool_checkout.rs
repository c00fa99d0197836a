//! `pool_checkout`: what a session from a `SessionPool` costs (a checkout: the health check's
//! one GetInfo round trip), beside opening and closing a session for each use (OpenSession and
//! CloseSession), against the in-process mock warehouse over loopback HTTP.

use criterion::{criterion_group, criterion_main, Criterion};
use databricks_sql::mock::MockWarehouse;
use databricks_sql::pool::SessionPool;

fn pool_checkout(c: &mut Criterion) {
    let rt = tokio::runtime::Builder::new_multi_thread()
        .worker_threads(2)
        .enable_all()
        .build()
        .expect("tokio runtime");
    let (mock, client, pool) = rt.block_on(async {
        let mock = MockWarehouse::start().await.expect("mock starts");
        let client = mock
            .client_builder()
            .telemetry_enabled(false)
            .build()
            .expect("client builds");
        let pool = SessionPool::builder(client.clone())
            .max_size(1)
            .build()
            .expect("pool builds");
        drop(pool.get().await.expect("first session opens"));
        (mock, client, pool)
    });
    let mut group = c.benchmark_group("pool_checkout");
    group.bench_function("checkout_from_pool", |b| {
        b.to_async(&rt).iter(|| async {
            let session = pool.get().await.expect("checkout");
            assert!(!session.id().is_empty());
        })
    });
    group.bench_function("open_and_close_session", |b| {
        b.to_async(&rt).iter(|| async {
            let session = client.open_session().await.expect("open");
            session.close().await.expect("close");
        })
    });
    group.finish();
    rt.block_on(async {
        pool.close().await.expect("pool closes");
        client.close().await.expect("client closes");
    });
    drop(mock);
}

criterion_group!(benches, pool_checkout);
criterion_main!(benches);
