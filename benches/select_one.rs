//! `select_one`: the round trip of `SELECT 1` answered with direct results (ExecuteStatement,
//! then CloseOperation), through the public API against the in-process mock warehouse over
//! loopback HTTP. The figure is an upper bound of the client-side cost: it includes the mock's work.

use criterion::{criterion_group, criterion_main, Criterion};
use databricks_sql::mock::MockWarehouse;

fn select_one(c: &mut Criterion) {
    let rt = tokio::runtime::Builder::new_multi_thread()
        .worker_threads(2)
        .enable_all()
        .build()
        .expect("tokio runtime");
    let (mock, session) = rt.block_on(async {
        let mock = MockWarehouse::start().await.expect("mock starts");
        let client = mock.client_builder().build().expect("client builds");
        let session = client.open_session().await.expect("session opens");
        (mock, session)
    });
    c.bench_function("select_one", |b| {
        b.to_async(&rt).iter(|| async {
            let mut op = session
                .execute_statement("SELECT 1")
                .await
                .expect("execute");
            let batches = op.fetch_all().await.expect("fetch");
            assert_eq!(batches.iter().map(|b| b.num_rows()).sum::<usize>(), 1);
            op.close().await.expect("close");
        })
    });
    rt.block_on(async {
        session.close().await.expect("session closes");
    });
    drop(mock);
}

criterion_group!(benches, select_one);
criterion_main!(benches);
