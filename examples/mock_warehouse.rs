//! Runs the mock warehouse as a standalone server, so that other programs (and other Databricks
//! drivers) can be pointed at it.
//!
//! ```text
//! cargo run --example mock_warehouse                 # an ephemeral port
//! cargo run --example mock_warehouse -- --port 8080  # a fixed port
//! cargo run --release --example mock_warehouse -- --keep-files   # for benchmarks
//! ```
//!
//! `--keep-files` keeps the CloudFetch files of each statement once generated, so that running
//! the same large query again (a benchmark, one driver against another) serves them from memory
//! instead of generating them again; it holds their memory until the server stops.
//!
//! It prints where it listens and how to connect, and serves until Ctrl-C.

use databricks_sql::mock::MockWarehouse;

fn usage() -> ! {
    eprintln!(
        "usage: mock_warehouse [--port N] [--keep-files]   (N = 0 or absent: an ephemeral port)"
    );
    std::process::exit(2);
}

/// The `--port N` (or `--port=N`) argument, 0 when absent, and whether `--keep-files` was given.
fn args() -> (u16, bool) {
    let mut args = std::env::args().skip(1);
    let mut port = 0;
    let mut keep_files = false;
    while let Some(arg) = args.next() {
        let value = match arg.as_str() {
            "--port" | "-p" => args.next().unwrap_or_else(|| usage()),
            "--keep-files" => {
                keep_files = true;
                continue;
            }
            other => match other.strip_prefix("--port=") {
                Some(v) => v.to_string(),
                None if other == "--help" || other == "-h" => usage(),
                None => {
                    eprintln!("unknown argument: {other}");
                    usage()
                }
            },
        };
        port = value.parse().unwrap_or_else(|_| {
            eprintln!("not a port number: {value}");
            usage()
        });
    }
    (port, keep_files)
}

#[tokio::main]
async fn main() -> Result<(), Box<dyn std::error::Error>> {
    let (port, keep_files) = args();
    let mock = MockWarehouse::builder()
        .port(port)
        .cloudfetch_keep_files(keep_files)
        .start()
        .await?;

    println!("Mock Databricks SQL warehouse listening (plain HTTP, loopback only)");
    println!("  host       {}", mock.host());
    println!("  port       {}", mock.port());
    println!("  http path  {}", mock.http_path());
    println!("  token      {}", mock.token());
    println!("  endpoint   {}", mock.url());
    println!();
    println!("Connect with (ClientBuilder::from_env() reads these; the http:// scheme");
    println!("turns on plain HTTP, which the driver allows for loopback hosts only):");
    println!("  export DATABRICKS_HOST={}", mock.base_url());
    println!("  export DATABRICKS_HTTP_PATH={}", mock.http_path());
    println!("  export DATABRICKS_TOKEN={}", mock.token());
    println!();
    println!("Try: SELECT 1 | SELECT * FROM range(1000) | SELECT * FROM mock.rows(100) | SELECT sleep(2000)");
    println!("Press Ctrl-C to stop.");

    tokio::signal::ctrl_c().await?;
    println!();
    println!("Calls served: {:?}", mock.call_counts());
    mock.shutdown().await;
    Ok(())
}
