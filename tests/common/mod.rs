//! Shared set-up of the integration tests: a mock warehouse and a client pointed at it.
#![allow(dead_code)]

use std::time::Duration;

use databricks_sql::arrow::array::{Array, Int64Array, RecordBatch};
use databricks_sql::mock::MockWarehouse;
use databricks_sql::{ClientBuilder, DBSQLClient};

/// A mock warehouse and a client builder pointed at it, with fast retries for fault tests.
pub async fn mock() -> (MockWarehouse, ClientBuilder) {
    let mock = MockWarehouse::start().await.expect("mock warehouse starts");
    let builder = mock
        .client_builder()
        .retry_policy(databricks_sql::http::RetryPolicy {
            max_attempts: 3,
            min_backoff: Duration::from_millis(5),
            max_backoff: Duration::from_millis(50),
            overall_timeout: Duration::from_secs(10),
        });
    (mock, builder)
}

pub async fn client() -> (MockWarehouse, DBSQLClient) {
    let (mock, builder) = mock().await;
    (mock, builder.build().expect("client builds"))
}

/// Row count and sum of the `id` column (the first column, BIGINT) of `batches`.
pub fn count_and_sum_ids(batches: &[RecordBatch]) -> (usize, i64) {
    let mut rows = 0;
    let mut sum = 0i64;
    for b in batches {
        let ids = b
            .column(0)
            .as_any()
            .downcast_ref::<Int64Array>()
            .expect("id column is BIGINT");
        rows += ids.len();
        sum += ids
            .iter()
            .map(|v| v.expect("id is never null"))
            .sum::<i64>();
    }
    (rows, sum)
}

/// Wait (bounded, 5 s) until `check` holds.
pub async fn eventually(what: &str, mut check: impl FnMut() -> bool) {
    for _ in 0..500 {
        if check() {
            return;
        }
        tokio::time::sleep(Duration::from_millis(10)).await;
    }
    panic!("timed out waiting for: {what}");
}
pub mod oauth;
