//! `databricks-sql`: a fully async Rust driver for Databricks SQL warehouses.
//!
//! It speaks Thrift TCLIService over HTTPS (hyper + rustls), returns Arrow
//! [`RecordBatch`](arrow_array::RecordBatch)es, and has telemetry built in.
#![deny(missing_docs)]
#![warn(missing_debug_implementations)]

pub mod auth;
mod error;
pub mod http;
#[cfg(feature = "mock")]
pub mod mock;
pub(crate) mod results;
pub mod telemetry;
pub(crate) mod thrift;

pub use error::{redact_url, Error, ErrorKind, Result};
