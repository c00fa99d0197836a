//! Stream a large result batch by batch, with memory bounded by the CloudFetch byte budget, and
//! print what the download pipeline did.
//!
//! ```text
//! cargo run --release --example large_result
//! ```
//!
//! With `DATABRICKS_HOST`, `DATABRICKS_HTTP_PATH` and `DATABRICKS_TOKEN` set it queries that
//! warehouse (`DATABRICKS_QUERY` gives the SQL text, default `SELECT * FROM range(10000000)`);
//! otherwise it starts the in-process mock warehouse and reads `SELECT * FROM mock.rows(2000000)`,
//! which the mock serves as 20 CloudFetch files (the embedded mock generates them as it serves
//! them, on the same cores, so the timings measure the mock too; `cargo bench --bench
//! cloudfetch` measures the driver alone).

mod common;

use std::time::Instant;

use databricks_sql::arrow::array::RecordBatch;
use databricks_sql::mock::MockWarehouse;
use databricks_sql::ClientBuilder;
use futures::StreamExt;

#[tokio::main]
async fn main() -> Result<(), Box<dyn std::error::Error>> {
    let real = common::start(&["DATABRICKS_TOKEN"]);
    // Keep the mock alive for the whole run (it stops when dropped).
    let mut _mock = None;
    let (builder, default_sql): (ClientBuilder, &str) = if real {
        (ClientBuilder::from_env(), "SELECT * FROM range(10000000)")
    } else {
        let mock = MockWarehouse::start().await?;
        println!("No DATABRICKS_* variables set: using the embedded mock warehouse.");
        let builder = mock.client_builder();
        _mock = Some(mock);
        (builder, "SELECT * FROM mock.rows(2000000)")
    };
    let sql = std::env::var("DATABRICKS_QUERY").unwrap_or_else(|_| default_sql.to_string());
    let client = builder.user_agent_entry("large_result").build()?;
    let session = client.open_session().await?;

    let started = Instant::now();
    let mut op = session.execute_statement(&sql).await?;
    let mut first_batch = None;
    let (mut batches, mut rows) = (0u64, 0u64);
    // `stream()` borrows the operation; `into_stream()` would own (and close) it.
    let mut stream = op.stream();
    while let Some(batch) = stream.next().await {
        let batch: RecordBatch = batch?;
        first_batch.get_or_insert_with(|| started.elapsed());
        batches += 1;
        rows += batch.num_rows() as u64;
        // A real application would process the batch here; dropping it gives its memory back.
    }
    drop(stream);
    let elapsed = started.elapsed();

    println!("{sql}");
    println!(
        "  {rows} rows in {batches} batches, {:.2} s ({:.1} M rows/s), first batch after {:.1} ms",
        elapsed.as_secs_f64(),
        rows as f64 / 1e6 / elapsed.as_secs_f64(),
        first_batch.unwrap_or(elapsed).as_secs_f64() * 1e3
    );
    match op.cloudfetch_summary() {
        Some(s) => {
            println!(
                "  CloudFetch: {} files, {:.1} MB downloaded, {} retries, {} link refreshes",
                s.chunks_decoded,
                s.bytes_downloaded as f64 / 1e6,
                s.retries,
                s.link_refreshes
            );
            println!(
                "  byte budget: {:.1} MB held at most of {:.1} MB",
                s.budget_peak as f64 / 1e6,
                s.budget_bytes as f64 / 1e6
            );
        }
        None => println!("  the result came inline (no CloudFetch files)"),
    }

    op.close().await?;
    session.close().await?;
    client.close().await?;
    Ok(())
}
