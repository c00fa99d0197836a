//! Telemetry: what the driver reports about its statements, to the workspace (the protoLogs its
//! telemetry endpoint receives) and to the application (`on_statement_metrics`).
//!
//! ```text
//! cargo run --example telemetry
//! ```
//!
//! It always uses the in-process mock warehouse, started with the telemetry feature flag on (a
//! real workspace's telemetry endpoint cannot be read back), so no `DATABRICKS_*` variables are
//! needed. It runs an inline query, a CloudFetch query read to the end, a failing query and a
//! metadata call, closes the client (which sends the pending telemetry), then prints the
//! protoLogs the mock received as JSON and a table of the metrics the application received.

mod common;

use std::sync::{Arc, Mutex};

use databricks_sql::mock::MockWarehouse;
use databricks_sql::telemetry::StatementMetrics;
use databricks_sql::{Error, Session};

/// Inline: far below the mock's CloudFetch threshold (100,000 rows).
const INLINE_SQL: &str = "SELECT * FROM range(1000)";
/// CloudFetch: above the threshold, three files of 100,000 rows.
const CLOUDFETCH_SQL: &str = "SELECT * FROM mock.rows(300000)";
/// The mock answers a query of an unknown table with SQLSTATE 42P01.
const FAILING_SQL: &str = "SELECT * FROM no_such_table";

#[tokio::main]
async fn main() -> Result<(), Box<dyn std::error::Error>> {
    if common::start(&["DATABRICKS_TOKEN"]) {
        println!("DATABRICKS_* variables are set but not used: this example always uses the mock.");
    }

    let mock = MockWarehouse::builder()
        .telemetry_enabled(true)
        .start()
        .await?;
    println!(
        "Mock warehouse at {} with the telemetry feature flag on.",
        mock.url()
    );

    // The application's own copy of each statement's figures, whether telemetry is on or not.
    // The callback runs on the task that ends the statement: it only stores a copy.
    let metrics: Arc<Mutex<Vec<StatementMetrics>>> = Arc::default();
    let sink = metrics.clone();
    let client = mock
        .client_builder()
        .user_agent_entry("telemetry-example")
        .on_statement_metrics(move |m| {
            if let Ok(mut all) = sink.lock() {
                all.push(m.clone());
            }
        })
        .build()?;
    let session = client.open_session().await?;

    let (rows, batches) = read_all(&session, INLINE_SQL).await?;
    println!("{INLINE_SQL}: {rows} rows in {batches} batches");

    let (rows, batches) = read_all(&session, CLOUDFETCH_SQL).await?;
    println!("{CLOUDFETCH_SQL}: {rows} rows in {batches} batches");

    // With direct results the error may come with the execute reply or at the first read.
    match read_all(&session, FAILING_SQL).await {
        Ok(_) => println!("{FAILING_SQL}: unexpectedly succeeded"),
        Err(e) => println!(
            "{FAILING_SQL}: failed as expected ({:?}, SQLSTATE {}): {e}",
            e.kind(),
            e.sql_state().unwrap_or("-")
        ),
    }

    let mut catalogs = session.catalogs().await?;
    let catalog_rows: usize = catalogs
        .fetch_all()
        .await?
        .iter()
        .map(|b| b.num_rows())
        .sum();
    catalogs.close().await?;
    println!("catalogs(): {catalog_rows} catalogs");

    session.close().await?;
    // Closing the host's last client flushes its pending telemetry (at most close_timeout, 2 s).
    client.close().await?;

    let logs = mock.telemetry_logs();
    println!(
        "\nThe mock answered {} feature-flag request(s) and received {} telemetry upload(s) \
         holding {} protoLogs:\n",
        mock.feature_flag_requests().len(),
        mock.telemetry_requests().len(),
        logs.len()
    );
    println!("{}", serde_json::to_string_pretty(&logs)?);

    let metrics = metrics.lock().map(|m| m.clone()).unwrap_or_default();
    println!(
        "\nThe application's statement metrics ({}):\n",
        metrics.len()
    );
    print_metrics(&metrics);

    mock.shutdown().await;
    Ok(())
}

/// Execute `sql`, read its result to the end and close it: (rows, batches).
async fn read_all(session: &Session, sql: &str) -> Result<(usize, usize), Error> {
    let mut op = session.execute_statement(sql).await?;
    let (mut rows, mut batches) = (0, 0);
    let read = loop {
        match op.next_batch().await {
            Ok(Some(batch)) => {
                rows += batch.num_rows();
                batches += 1;
            }
            Ok(None) => break Ok((rows, batches)),
            Err(e) => break Err(e),
        }
    };
    op.close().await?;
    read
}

/// One line per statement: what it was, how its result came, what it cost.
fn print_metrics(metrics: &[StatementMetrics]) {
    println!(
        "{:<18} {:<15} {:>10} {:>5} {:>7} {:>10}  error",
        "operation", "result", "latency ms", "polls", "chunks", "MB fetched"
    );
    for m in metrics {
        let chunks = match m.chunks_present {
            Some(present) => format!("{}/{present}", m.chunks_downloaded),
            None => "-".to_string(),
        };
        let error = match (&m.error, &m.sql_state) {
            (Some(kind), Some(state)) => format!("{kind:?} ({state})"),
            (Some(kind), None) => format!("{kind:?}"),
            (None, _) => "-".to_string(),
        };
        println!(
            "{:<18} {:<15} {:>10.2} {:>5} {:>7} {:>10.1}  {error}",
            m.operation_type.as_str(),
            m.result_format.map_or("-", |f| f.as_str()),
            m.latency.as_secs_f64() * 1e3,
            m.status_polls,
            chunks,
            m.bytes_downloaded as f64 / 1e6,
        );
    }
}
