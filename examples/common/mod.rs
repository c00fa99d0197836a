//! What the examples share: logging set-up and the choice between a real warehouse and the
//! embedded mock.

/// Sets up logging through `tracing` to stderr, filtered by `RUST_LOG` (nothing by default),
/// and says whether `DATABRICKS_HOST`, `DATABRICKS_HTTP_PATH` and every one of the
/// `credentials` variables are set to non-empty values: the example then runs against the
/// warehouse they name instead of the embedded mock.
pub fn start(credentials: &[&str]) -> bool {
    tracing_subscriber::fmt()
        .with_env_filter(tracing_subscriber::EnvFilter::from_default_env())
        .with_writer(std::io::stderr)
        .init();
    ["DATABRICKS_HOST", "DATABRICKS_HTTP_PATH"]
        .iter()
        .chain(credentials)
        .all(|v| std::env::var(v).is_ok_and(|s| !s.is_empty()))
}
