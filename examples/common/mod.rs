//! What the examples share: logging set-up and the choice between a real warehouse and the
//! embedded mock.
#![allow(dead_code)]

/// Logs through `tracing` to stderr, filtered by `RUST_LOG` (nothing by default).
pub fn init_tracing() {
    tracing_subscriber::fmt()
        .with_env_filter(tracing_subscriber::EnvFilter::from_default_env())
        .with_writer(std::io::stderr)
        .init();
}

/// Whether every one of `vars` is set to a non-empty value: the example then runs against the
/// warehouse they name instead of the embedded mock.
pub fn all_set(vars: &[&str]) -> bool {
    vars.iter()
        .all(|v| std::env::var(v).map(|s| !s.is_empty()).unwrap_or(false))
}

/// The variables that name a warehouse reached with a personal access token.
pub const TOKEN_VARS: [&str; 3] = [
    "DATABRICKS_HOST",
    "DATABRICKS_HTTP_PATH",
    "DATABRICKS_TOKEN",
];
