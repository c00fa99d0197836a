//! Query parameters, rows affected, row limits, query tags and a statement submitted without
//! waiting for it.
//!
//! ```text
//! cargo run --example parameters
//! ```
//!
//! With `DATABRICKS_HOST`, `DATABRICKS_HTTP_PATH` and `DATABRICKS_TOKEN` set it runs against
//! that warehouse (read-only statements only); otherwise against the in-process mock
//! warehouse, and prints what the mock received.

mod common;

use databricks_sql::mock::MockWarehouse;
use databricks_sql::{params, ClientBuilder, Decimal, ExecuteOptions, SessionOptions};

#[tokio::main]
async fn main() -> Result<(), Box<dyn std::error::Error>> {
    let real = common::start(&["DATABRICKS_TOKEN"]);
    let mock = if real {
        None
    } else {
        Some(MockWarehouse::start().await?)
    };
    let builder = match &mock {
        Some(mock) => {
            println!("No DATABRICKS_* variables set: using the embedded mock warehouse.");
            mock.client_builder()
        }
        None => ClientBuilder::from_env(),
    };
    let client = builder.user_agent_entry("parameters-example").build()?;
    let session = client
        .open_session_with(SessionOptions::new().query_tag("team", "examples"))
        .await?;

    // Named parameters: the values never enter the SQL text.
    let price: Decimal = "19.99".parse()?;
    let batches = session
        .query(
            "SELECT :id AS id, :name AS name, :price AS price",
            params![id => 42_i64, name => "O'Reilly", price => price],
        )
        .await?;

    print_rows(&batches);

    // Positional parameters.
    let batches = session
        .query("SELECT ? AS a, ? AS b", params![1.5_f64, None::<String>])
        .await?;
    print_rows(&batches);

    // A row limit and a per-statement tag, the statement submitted without waiting for it.
    let mut op = session
        .execute_statement_with(
            "SELECT * FROM range(100)",
            ExecuteOptions::new()
                .row_limit(5)
                .query_tag("step", "limited"),
        )
        .await?;
    // The statement id is known as soon as the server accepted the statement.
    println!("submitted statement {}", op.id());
    op.wait().await?;
    let rows: usize = op.fetch_all().await?.iter().map(|b| b.num_rows()).sum();
    println!("row-limited statement returned {rows} rows");
    op.close().await?;

    if let Some(mock) = &mock {
        let affected = session
            .execute(
                "DELETE FROM orders WHERE day < :day",
                params![day => "2020-01-01"],
            )
            .await?;
        println!("DELETE affected {affected} row(s)");
        for statement in mock.statements() {
            println!("the mock received: {}", statement.sql);
            for p in &statement.parameters {
                println!(
                    "  parameter {}: {} = {}",
                    p.name
                        .clone()
                        .or(p.ordinal.map(|o| format!("#{o}")))
                        .unwrap_or_default(),
                    p.sql_type.as_deref().unwrap_or("?"),
                    p.value.as_deref().unwrap_or("NULL")
                );
            }
            if let Some(tags) = statement.conf_overlay.get("query_tags") {
                println!("  query tags: {tags}");
            }
        }
    }
    session.close().await?;
    client.close().await?;
    Ok(())
}

/// Prints each row as `column = value` pairs (the mock answers parameter queries as text).
fn print_rows(batches: &[databricks_sql::arrow::array::RecordBatch]) {
    use databricks_sql::arrow::array::{Array, StringArray};
    for batch in batches {
        for row in 0..batch.num_rows() {
            let cells: Vec<String> = batch
                .schema()
                .fields()
                .iter()
                .zip(batch.columns())
                .map(|(field, column)| {
                    let value = match column.as_any().downcast_ref::<StringArray>() {
                        Some(s) if s.is_null(row) => "NULL".to_string(),
                        Some(s) => s.value(row).to_string(),
                        None => format!("<{}>", column.data_type()),
                    };
                    format!("{} = {value}", field.name())
                })
                .collect();
            println!("  {}", cells.join(", "));
        }
    }
}
