//! `Duration::MAX` means "no limit" wherever a duration is set: nothing adds it to a clock and
//! panics. Users pass it for timeouts; servers may send absurd lifetimes.

use std::time::Duration;

use databricks_sql::auth::AccessToken;
use databricks_sql::http::RetryPolicy;
use databricks_sql::mock::MockWarehouse;
use databricks_sql::telemetry::TelemetryClientProvider;
use databricks_sql::ExecuteOptions;

#[tokio::test]
async fn duration_max_timeouts_and_token_lifetimes_run_statements() {
    let mock = MockWarehouse::builder()
        .running_polls(2)
        .start()
        .await
        .expect("mock");
    let token = mock.token().to_string();
    let client = mock
        .client_builder()
        .token_provider(move || {
            let token = token.clone();
            async move { Ok(AccessToken::new(token, Some(Duration::MAX))) }
        })
        .telemetry_provider(TelemetryClientProvider::new())
        .query_timeout(Duration::MAX)
        .retry_policy(RetryPolicy::default().with_overall_timeout(Duration::MAX))
        .build()
        .expect("client");
    let session = client.open_session().await.expect("session");
    let options = ExecuteOptions::new()
        .query_timeout(Duration::MAX)
        .direct_results(false);
    let mut op = session
        .execute_statement_with("SELECT 1", options)
        .await
        .expect("execute");
    let rows: usize = op
        .fetch_all()
        .await
        .expect("rows")
        .iter()
        .map(|b| b.num_rows())
        .sum();
    assert_eq!(rows, 1);
    session.close().await.expect("close");
    client.close().await.expect("client close");
}
