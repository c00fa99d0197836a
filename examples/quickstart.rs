//! Quickstart: run one query and print the result as a small table, with how long each step took.
//!
//! ```text
//! cargo run --example quickstart
//! ```
//!
//! With `DATABRICKS_HOST`, `DATABRICKS_HTTP_PATH` and `DATABRICKS_TOKEN` set it queries that
//! warehouse; otherwise it starts the in-process mock warehouse and queries it.
//! `DATABRICKS_QUERY` overrides the SQL text.

use std::time::Instant;

use databricks_sql::arrow::array::{
    Array, BooleanArray, Float32Array, Float64Array, Int16Array, Int32Array, Int64Array, Int8Array,
    RecordBatch, StringArray, TimestampMicrosecondArray,
};
use databricks_sql::arrow::schema::{DataType, TimeUnit};
use databricks_sql::mock::MockWarehouse;
use databricks_sql::ClientBuilder;

#[tokio::main]
async fn main() -> Result<(), Box<dyn std::error::Error>> {
    tracing_subscriber::fmt()
        .with_env_filter(tracing_subscriber::EnvFilter::from_default_env())
        .with_writer(std::io::stderr)
        .init();

    let real = [
        "DATABRICKS_HOST",
        "DATABRICKS_HTTP_PATH",
        "DATABRICKS_TOKEN",
    ]
    .iter()
    .all(|v| std::env::var(v).map(|s| !s.is_empty()).unwrap_or(false));

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
    print_table(&schema, &batches);
    Ok(())
}

fn step(name: &str, since: Instant) {
    println!("{name:<14} {:>9.2} ms", since.elapsed().as_secs_f64() * 1e3);
}

fn print_table(schema: &databricks_sql::arrow::schema::Schema, batches: &[RecordBatch]) {
    let header: Vec<String> = schema.fields().iter().map(|f| f.name().clone()).collect();
    let mut rows: Vec<Vec<String>> = Vec::new();
    for batch in batches {
        for r in 0..batch.num_rows() {
            rows.push(
                batch
                    .columns()
                    .iter()
                    .map(|c| cell(c.as_ref(), r))
                    .collect(),
            );
        }
    }
    let widths: Vec<usize> = (0..header.len())
        .map(|i| {
            rows.iter()
                .map(|r| r[i].len())
                .chain(std::iter::once(header[i].len()))
                .max()
                .unwrap_or(0)
        })
        .collect();
    let line = |cells: &[String]| {
        let parts: Vec<String> = cells
            .iter()
            .zip(&widths)
            .map(|(c, w)| format!(" {c:<w$} "))
            .collect();
        format!("|{}|", parts.join("|"))
    };
    let rule = format!(
        "+{}+",
        widths
            .iter()
            .map(|w| "-".repeat(w + 2))
            .collect::<Vec<_>>()
            .join("+")
    );
    println!("{rule}\n{}\n{rule}", line(&header));
    for r in &rows {
        println!("{}", line(r));
    }
    println!("{rule}\n{} rows", rows.len());
}

fn cell(array: &dyn Array, row: usize) -> String {
    if array.is_null(row) {
        return "NULL".to_string();
    }
    let any = array.as_any();
    match array.data_type() {
        DataType::Boolean => any
            .downcast_ref::<BooleanArray>()
            .map(|a| a.value(row).to_string()),
        DataType::Int8 => any
            .downcast_ref::<Int8Array>()
            .map(|a| a.value(row).to_string()),
        DataType::Int16 => any
            .downcast_ref::<Int16Array>()
            .map(|a| a.value(row).to_string()),
        DataType::Int32 => any
            .downcast_ref::<Int32Array>()
            .map(|a| a.value(row).to_string()),
        DataType::Int64 => any
            .downcast_ref::<Int64Array>()
            .map(|a| a.value(row).to_string()),
        DataType::Float32 => any
            .downcast_ref::<Float32Array>()
            .map(|a| a.value(row).to_string()),
        DataType::Float64 => any
            .downcast_ref::<Float64Array>()
            .map(|a| a.value(row).to_string()),
        DataType::Utf8 => any
            .downcast_ref::<StringArray>()
            .map(|a| a.value(row).to_string()),
        DataType::Timestamp(TimeUnit::Microsecond, _) => any
            .downcast_ref::<TimestampMicrosecondArray>()
            .and_then(|a| a.value_as_datetime(row))
            .map(|t| t.to_string()),
        other => Some(format!("<{other}>")),
    }
    .unwrap_or_else(|| "?".to_string())
}
