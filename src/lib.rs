//! `databricks-sql`: a fully async Rust driver for Databricks SQL warehouses.
//!
//! It speaks Thrift TCLIService over HTTPS (hyper + rustls), returns Arrow
//! [`RecordBatch`](arrow_array::RecordBatch)es, and has telemetry built in.
//!
//! ```no_run
//! # async fn run() -> databricks_sql::Result<()> {
//! use databricks_sql::DBSQLClient;
//!
//! let client = DBSQLClient::builder()
//!     .host("adb-123.4.azuredatabricks.net")
//!     .http_path("/sql/1.0/warehouses/abc")
//!     .token(std::env::var("DATABRICKS_TOKEN").unwrap_or_default())
//!     .build()?;
//! let session = client.open_session().await?;
//! let mut op = session.execute_statement("SELECT * FROM range(10)").await?;
//! while let Some(batch) = op.next_batch().await? {
//!     println!("{} rows", batch.num_rows());
//! }
//! op.close().await?;
//! session.close().await?;
//! client.close().await?;
//! # Ok(()) }
//! ```
//!
//! With the `mock` feature, `mock::MockWarehouse` is an in-process warehouse for tests; with the
//! `pool` feature, `pool::SessionPool` keeps open sessions for reuse.
#![deny(missing_docs)]
#![warn(missing_debug_implementations)]

pub mod auth;
mod client;
mod config;
mod error;
#[cfg(any(test, feature = "fuzzing"))]
#[doc(hidden)]
pub mod fuzzing;
pub mod http;
#[cfg(feature = "mock")]
pub mod mock;
mod operation;
pub mod params;
#[cfg(feature = "pool")]
pub mod pool;
pub(crate) mod results;
pub mod rows;
mod session;
mod settings;
mod staging;
pub mod telemetry;
pub(crate) mod thrift;
mod time;

pub use client::{ClientBuilder, DBSQLClient};
pub use config::{ClientConfig, ExecuteOptions, SessionOptions};
pub use error::{redact_url, Error, ErrorKind, Result};
pub use operation::{CancelHandle, Operation, OperationState, OperationStatus};
pub use params::{Decimal, Params, SqlValue, ToSql};
pub use results::cloudfetch::{ChunkObserver, ChunkStats, CloudFetchConfig, CloudFetchSummary};
pub use session::{ServerInfo, Session};
pub use staging::{StagingOperation, StagingSummary, CHUNK_SIZE as STAGING_CHUNK_SIZE};

/// The Arrow crates this driver's results are built with, re-exported so that your code uses
/// the same versions.
pub mod arrow {
    pub use arrow_array as array;
    pub use arrow_schema as schema;
}
