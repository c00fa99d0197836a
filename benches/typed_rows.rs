//! `typed_rows`: 1,000,000 rows of `mock.rows` (BIGINT, STRING with NULLs, DOUBLE, TIMESTAMP,
//! BOOLEAN) into a five-field struct, two ways side by side in one group: through the serde
//! deserializer of `databricks_sql::rows::from_batch` (`serde_from_batch`), and through a
//! hand-written loop that downcasts the same Arrow arrays and pushes one struct per row
//! (`hand_written_loop`); and through serde again with the timestamp field read as `i64`
//! microseconds (`chrono::serde::ts_microseconds`) instead of RFC 3339 text
//! (`serde_from_batch_ts_microseconds`). The batches are fetched from the mock warehouse once, before the timing
//! loop, so that only the conversion is measured.

use std::time::Duration;

use chrono::{DateTime, Utc};
use criterion::{criterion_group, criterion_main, Criterion, Throughput};
use databricks_sql::arrow::array::{
    Array, BooleanArray, Float64Array, Int64Array, RecordBatch, StringArray,
    TimestampMicrosecondArray,
};
use databricks_sql::mock::MockWarehouse;
use serde::Deserialize;

const ROWS: u64 = 1_000_000;

/// The five columns of `mock.rows`.
#[derive(Debug, Deserialize, PartialEq)]
struct Order {
    id: i64,
    name: Option<String>,
    amount: f64,
    ts: DateTime<Utc>,
    flag: bool,
}

/// `Order` with its timestamp read as microseconds (no text in between).
#[derive(Debug, Deserialize)]
struct OrderMicros {
    id: i64,
    name: Option<String>,
    amount: f64,
    #[serde(with = "chrono::serde::ts_microseconds")]
    ts: DateTime<Utc>,
    flag: bool,
}

/// The rows of `batches` as `Order`s (one `Vec` per batch), read the way one would without the
/// driver's help.
fn hand_written(batches: &[RecordBatch]) -> Vec<Vec<Order>> {
    let mut all = Vec::with_capacity(batches.len());
    for batch in batches {
        let mut out = Vec::with_capacity(batch.num_rows());
        let column = |i: usize| batch.column(i).as_any();
        let id = column(0)
            .downcast_ref::<Int64Array>()
            .expect("id is BIGINT");
        let name = column(1)
            .downcast_ref::<StringArray>()
            .expect("name is STRING");
        let amount = column(2)
            .downcast_ref::<Float64Array>()
            .expect("amount is DOUBLE");
        let ts = column(3)
            .downcast_ref::<TimestampMicrosecondArray>()
            .expect("ts is TIMESTAMP");
        let flag = column(4)
            .downcast_ref::<BooleanArray>()
            .expect("flag is BOOLEAN");
        for row in 0..batch.num_rows() {
            out.push(Order {
                id: id.value(row),
                name: (!name.is_null(row)).then(|| name.value(row).to_string()),
                amount: amount.value(row),
                ts: DateTime::from_timestamp_micros(ts.value(row)).expect("ts in range"),
                flag: flag.value(row),
            });
        }
        all.push(out);
    }
    all
}

/// The rows of `batches` (one `Vec` per batch) through the driver's serde deserializer.
fn with_serde<T: serde::de::DeserializeOwned>(batches: &[RecordBatch]) -> Vec<Vec<T>> {
    batches
        .iter()
        .map(|batch| databricks_sql::rows::from_batch::<T>(batch).expect("rows deserialize"))
        .collect()
}

fn typed_rows(c: &mut Criterion) {
    let rt = tokio::runtime::Builder::new_multi_thread()
        .worker_threads(2)
        .enable_all()
        .build()
        .expect("tokio runtime");
    let batches = rt.block_on(async {
        let mock = MockWarehouse::start().await.expect("mock starts");
        let client = mock.client_builder().build().expect("client builds");
        let session = client.open_session().await.expect("session opens");
        let mut op = session
            .execute_statement(&format!("SELECT * FROM mock.rows({ROWS})"))
            .await
            .expect("execute");
        let batches = op.fetch_all().await.expect("rows arrive");
        op.close().await.expect("close");
        session.close().await.expect("session closes");
        client.close().await.expect("client closes");
        mock.shutdown().await;
        batches
    });
    let rows: usize = batches.iter().map(|b| b.num_rows()).sum();
    assert_eq!(rows as u64, ROWS);
    let hand = hand_written(&batches);
    let micros = with_serde::<OrderMicros>(&batches);
    let text = with_serde::<Order>(&batches);
    assert_eq!(hand.iter().map(Vec::len).sum::<usize>(), rows);
    for ((h, m), t) in hand
        .iter()
        .flatten()
        .zip(micros.iter().flatten())
        .zip(text.iter().flatten())
    {
        assert_eq!(h, t);
        let m = (m.id, &m.name, m.amount, m.ts, m.flag);
        assert_eq!(m, (h.id, &h.name, h.amount, h.ts, h.flag));
    }

    let mut group = c.benchmark_group("typed_rows");
    group.throughput(Throughput::Elements(ROWS));
    group.sample_size(20);
    group.measurement_time(Duration::from_secs(10));
    group.bench_function("hand_written_loop", |b| {
        b.iter(|| hand_written(std::hint::black_box(&batches)))
    });
    group.bench_function("serde_from_batch", |b| {
        b.iter(|| with_serde::<Order>(std::hint::black_box(&batches)))
    });
    group.bench_function("serde_from_batch_ts_microseconds", |b| {
        b.iter(|| with_serde::<OrderMicros>(std::hint::black_box(&batches)))
    });
    group.finish();
}

criterion_group!(benches, typed_rows);
criterion_main!(benches);
