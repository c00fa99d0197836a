//! Quickstart: run one query and print the result as a small table, with how long each step took.
//!
//! ```text
//! cargo run --example quickstart
//! ```
//!
//! With `DATABRICKS_HOST`, `DATABRICKS_HTTP_PATH` and `DATABRICKS_TOKEN` set it queries that
//! warehouse; otherwise it starts the in-process mock warehouse and queries it.
//! `DATABRICKS_QUERY` overrides the SQL text.

mod common;

use std::time::Instant;

use databricks_sql::arrow::array::RecordBatch;
use databricks_sql::arrow::schema::Schema;
use databricks_sql::mock::MockWarehouse;
use databricks_sql::ClientBuilder;

#[tokio::main]
async fn main() -> Result<(), Box<dyn std::error::Error>> {
    let real = common::start(&["DATABRICKS_TOKEN"]);

    let t = Instant::now();
    // Keep the mock alive for the whole run (it stops when dropped).
    let mut _mock = None;
    let (builder, default_sql): (ClientBuilder, &str) = if real {
        println!("Connecting to the warehouse named by DATABRICKS_HOST / DATABRICKS_HTTP_PATH.");
        (ClientBuilder::from_env(), "SELECT * FROM range(10)")
    } else {
        let mock = MockWarehouse::start().await?;
        println!(
            "No DATABRICKS_* variables set: using the embedded mock warehouse at {}:{}{}",
            mock.host(),
            mock.port(),
            mock.http_path()
        );
        let b = mock.client_builder();
        _mock = Some(mock);
        (b, "SELECT * FROM mock.rows(10)")
    };
    let client = builder.user_agent_entry("quickstart").build()?;
    let sql = std::env::var("DATABRICKS_QUERY").unwrap_or_else(|_| default_sql.to_string());
    step("build client", t);

    let t = Instant::now();
    let session = client.open_session().await?;
    step("open session", t);

    let t = Instant::now();
    let mut op = session.execute_statement(&sql).await?;
    step("execute", t);

    let t = Instant::now();
    let batches = op.fetch_all().await?;
    let schema = op.schema().await?;
    step("fetch result", t);

    let t = Instant::now();
    op.close().await?;
    session.close().await?;
    client.close().await?;
    step("close", t);

    println!("\n{sql}\n");
    if batches.is_empty() {
        println!("(no rows; columns: {})", schema_names(&schema));
        return Ok(());
    }
    print_table(&batches)
}

fn step(name: &str, since: Instant) {
    println!("{name:<14} {:>9.2} ms", since.elapsed().as_secs_f64() * 1e3);
}

/// The result as an aligned table, by arrow's pretty printer (every Arrow type; NULL shown as
/// `NULL`).
fn print_table(batches: &[RecordBatch]) -> Result<(), Box<dyn std::error::Error>> {
    let options = arrow_cast::display::FormatOptions::default().with_null("NULL");
    let table = arrow_cast::pretty::pretty_format_batches_with_options(batches, &options)?;
    println!("{table}");
    let rows: usize = batches.iter().map(|b| b.num_rows()).sum();
    println!("{rows} rows");
    Ok(())
}

fn schema_names(schema: &Schema) -> String {
    let names: Vec<&str> = schema.fields().iter().map(|f| f.name().as_str()).collect();
    names.join(", ")
}
