//! Staging: upload a small file to a Unity Catalog volume, download it again, compare, and
//! remove it from the volume.
//!
//! ```text
//! cargo run --example staging
//! ```
//!
//! With `DATABRICKS_HOST`, `DATABRICKS_HTTP_PATH` and `DATABRICKS_TOKEN` set it uses that
//! warehouse and the volume directory in `DATABRICKS_VOLUME` (e.g.
//! `/Volumes/main/default/my_volume`); otherwise it starts the in-process mock warehouse,
//! which keeps volume files in memory. The local files live in a fresh directory under the
//! system's temporary directory, the only directory the client is allowed to stage from and to;
//! it is removed at the end.

mod common;

use std::path::PathBuf;

use databricks_sql::mock::MockWarehouse;
use databricks_sql::{ClientBuilder, Session};

#[tokio::main]
async fn main() -> Result<(), Box<dyn std::error::Error>> {
    let real = common::start(&["DATABRICKS_TOKEN"]);

    // Keep the mock alive for the whole run (it stops when dropped).
    let mut _mock = None;
    let (builder, volume): (ClientBuilder, String) = if real {
        let volume = std::env::var("DATABRICKS_VOLUME").map_err(|_| {
            "set DATABRICKS_VOLUME to a volume directory you may write to, e.g. \
             /Volumes/main/default/my_volume"
        })?;
        println!("Using the warehouse named by DATABRICKS_HOST / DATABRICKS_HTTP_PATH.");
        (ClientBuilder::from_env(), volume)
    } else {
        let mock = MockWarehouse::start().await?;
        println!(
            "No DATABRICKS_* variables set: using the embedded mock warehouse at {}:{}{}",
            mock.host(),
            mock.port(),
            mock.http_path()
        );
        let builder = mock.client_builder();
        _mock = Some(mock);
        (builder, "/Volumes/main/default/examples".to_string())
    };

    let dir = LocalDir::new()?;
    let client = builder
        .user_agent_entry("staging-example")
        .staging_allowed_local_paths([dir.0.clone()])
        .build()?;
    let session = client.open_session().await?;

    let upload = dir.0.join("greeting.csv");
    let contents = "id,greeting\n1,hello\n2,bonjour\n3,hallo\n";
    tokio::fs::write(&upload, contents).await?;
    let remote = format!(
        "{}/greeting-{}.csv",
        volume.trim_end_matches('/'),
        std::process::id()
    );
    let download = dir.0.join("greeting-copy.csv");

    let result = run(&session, &upload, &remote, &download, contents).await;
    session.close().await?;
    client.close().await?;
    result
}

async fn run(
    session: &Session,
    upload: &std::path::Path,
    remote: &str,
    download: &std::path::Path,
    contents: &str,
) -> Result<(), Box<dyn std::error::Error>> {
    for sql in [
        format!("PUT '{}' INTO '{remote}' OVERWRITE", upload.display()),
        format!("GET '{remote}' TO '{}'", download.display()),
        format!("REMOVE '{remote}'"),
    ] {
        let mut op = session.execute_statement(&sql).await?;
        if let Some(done) = op.staging_summary() {
            println!(
                "{:<6} {:>4} bytes  {}",
                done.operation.to_string(),
                done.bytes,
                done.local_file
                    .as_ref()
                    .map_or_else(|| remote.to_string(), |p| p.display().to_string())
            );
        }
        op.close().await?;
    }
    let copy = tokio::fs::read_to_string(download).await?;
    if copy != contents {
        return Err("the downloaded copy differs from the uploaded file".into());
    }
    println!("The downloaded copy matches the uploaded file.");
    Ok(())
}

/// A fresh directory under the system's temporary directory, removed when dropped.
struct LocalDir(PathBuf);

impl LocalDir {
    fn new() -> std::io::Result<LocalDir> {
        let dir = std::env::temp_dir().join(format!(
            "databricks-sql-staging-example-{}",
            std::process::id()
        ));
        std::fs::create_dir_all(&dir)?;
        Ok(LocalDir(dir))
    }
}

impl Drop for LocalDir {
    fn drop(&mut self) {
        let _ = std::fs::remove_dir_all(&self.0);
    }
}
