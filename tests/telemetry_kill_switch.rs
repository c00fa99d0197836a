//! The environment kill switch `DATABRICKS_TELEMETRY_DISABLED` turns telemetry off whatever the
//! client's settings say. A test binary of its own: the variable is process-wide.

use std::time::Duration;

use databricks_sql::mock::MockWarehouse;
use databricks_sql::telemetry::{
    TelemetryClientProvider, TelemetryConfiguration, TELEMETRY_DISABLED_ENV,
};

#[tokio::test]
async fn the_kill_switch_wins_over_every_setting() {
    let mock = MockWarehouse::builder()
        .telemetry_enabled(true)
        .start()
        .await
        .expect("mock starts");
    let mut forced = TelemetryConfiguration::default();
    forced.force_enabled = true;
    forced.flush_interval = Duration::from_millis(20);
    for value in ["1", "TRUE", "yes", "On"] {
        std::env::set_var(TELEMETRY_DISABLED_ENV, value);
        let provider = TelemetryClientProvider::new();
        let client = mock
            .client_builder()
            .telemetry(forced.clone())
            .telemetry_enabled(true)
            .telemetry_provider(provider.clone())
            .build()
            .unwrap();
        let session = client.open_session().await.unwrap();
        let mut op = session.execute_statement("SELECT 1").await.unwrap();
        op.fetch_all().await.unwrap();
        op.close().await.unwrap();
        assert_eq!(provider.client_count(), 0, "{value:?}: no telemetry client");
        session.close().await.unwrap();
        client.close().await.unwrap();
        assert!(mock.feature_flag_requests().is_empty(), "{value:?}");
        assert!(mock.telemetry_requests().is_empty(), "{value:?}");
    }
    // Any other value leaves the settings in charge.
    std::env::set_var(TELEMETRY_DISABLED_ENV, "0");
    let provider = TelemetryClientProvider::new();
    let client = mock
        .client_builder()
        .telemetry(forced)
        .telemetry_provider(provider.clone())
        .build()
        .unwrap();
    let session = client.open_session().await.unwrap();
    assert_eq!(provider.client_count(), 1);
    session.close().await.unwrap();
    client.close().await.unwrap();
    assert!(!mock.telemetry_requests().is_empty());
    std::env::remove_var(TELEMETRY_DISABLED_ENV);
}
