//! Telemetry: what the driver measures about its own connections and statements, aggregated per
//! statement and exported in the background to the workspace's telemetry endpoint, and handed
//! to the application when it asks ([`ClientBuilder::on_statement_metrics`](crate::ClientBuilder::on_statement_metrics)).
//!
//! It is on by default but takes effect only when the workspace's feature flag for this driver
//! is on (or [`TelemetryConfiguration::force_enabled`]); [`TelemetryConfiguration::enabled`],
//! [`ClientBuilder::telemetry_enabled`](crate::ClientBuilder::telemetry_enabled) or the
//! environment variable [`TELEMETRY_DISABLED_ENV`] turn it off entirely. It never collects SQL
//! text, row data, tokens or presigned URLs. See `docs/TELEMETRY.md` for the user guide.
//!
//! Nothing here can fail, block or slow a query: events are non-blocking sends into a bounded
//! queue, and everything else runs in one background task per host, isolated from the driver.

mod aggregator;
mod circuit_breaker;
mod classifier;
mod client_provider;
mod emitter;
mod exporter;
mod feature_flag;
mod payload;
mod recorder;
mod redact;
mod types;

#[cfg(any(test, feature = "fuzzing"))]
pub(crate) use redact::{redact_message, MAX_MESSAGE_CHARS};

#[cfg(all(test, feature = "mock"))]
mod mock_tests;
#[cfg(test)]
mod test_support;

pub use client_provider::TelemetryClientProvider;
pub use recorder::{StatementMetrics, TELEMETRY_DISABLED_ENV};
pub use types::{OperationType, ResultFormat, TelemetryConfiguration};

// What the driver (client, session, operation) reports through.
pub(crate) use emitter::TelemetryEventEmitter;
pub(crate) use recorder::{
    disabled_by_env, org_id_from_http_path, ClientTelemetry, PendingStatement, StatementCallback,
    StatementRecorder,
};
pub(crate) use types::{ConnectionParameters, TelemetryContext, TelemetryEndpoint};
