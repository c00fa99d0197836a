//! Telemetry: what the driver measures about its own connections and statements, aggregated per
//! statement and exported in the background to the workspace's telemetry endpoint.
//!
//! It is on by default but takes effect only when the workspace's feature flag for this driver
//! is on; [`TelemetryConfiguration::enabled`] turns it off entirely. It never collects SQL text,
//! row data, tokens or presigned URLs. See `docs/TELEMETRY.md` for the user guide.
//!
//! Nothing here can fail, block or slow a query: events are non-blocking sends into a bounded
//! queue, and everything else runs in one background task per host, isolated from the driver.

// The driver wires these components in the next issue; until then parts are used by tests only.
#![cfg_attr(not(test), allow(dead_code))]

mod aggregator;
mod circuit_breaker;
mod classifier;
mod client_provider;
mod emitter;
mod exporter;
mod feature_flag;
mod payload;
mod redact;
mod types;

#[cfg(all(test, feature = "mock"))]
mod mock_tests;
#[cfg(test)]
mod test_support;

pub use client_provider::TelemetryClientProvider;
pub use types::TelemetryConfiguration;

// What the driver (client, session, operation, CloudFetch) uses to report.
#[allow(unused_imports)] // Until the driver is wired in the next issue.
pub(crate) use client_provider::TelemetryHandle;
#[allow(unused_imports)]
pub(crate) use emitter::TelemetryEventEmitter;
#[allow(unused_imports)]
pub(crate) use types::{
    ChunkDownload, ConnectionParameters, OperationType, ResultFormat, StatementCompletion,
    TelemetryContext, TelemetryEndpoint,
};
