//! alertd's own events: one struct per log line, so every line has the same
//! fields wherever it is emitted and the set of things alertd reports is
//! readable in one file (after Vector's `internal_events`).
//!
//! Messages are capitalized sentences; fields are key/value; errors carry a
//! bounded `error_code` beside their text.
//!
//! One file per concern: `poll.rs` (a poll's start, progress, end),
//! `delivery.rs` (pages, dead letters), `http.rs` (answers, retries,
//! pacing, quotas, keys), `cluster.rs` (leases and members), `reload.rs` (SIGHUP), and the sink's
//! start-up here.

mod cluster;
mod delivery;
mod http;
mod poll;
mod reload;
mod revisit;

pub use cluster::*;
pub use delivery::*;
pub use http::*;
pub use poll::*;
pub use reload::*;
pub use revisit::*;

use std::time::Duration;

use crate::telemetry::SourceLabels;

fn labels(source: &str, vendor: &str) -> SourceLabels {
    SourceLabels { source: source.to_owned(), vendor: vendor.to_owned() }
}

fn result_labels(source: &str, vendor: &str, result: &str) -> crate::telemetry::ResultLabels {
    crate::telemetry::ResultLabels {
        source: source.to_owned(),
        vendor: vendor.to_owned(),
        result: result.to_owned(),
    }
}

/// The sink is not reachable yet at start-up; alertd keeps trying.
pub struct SinkUnavailable<'a> {
    /// What connecting or setting up the stream answered.
    pub error: &'a dyn std::fmt::Display,
    /// Wait before the next try.
    pub retry_in: Duration,
}

impl SinkUnavailable<'_> {
    /// Log it.
    pub fn emit(&self) {
        tracing::warn!(
            message = "NATS is not reachable; retrying.",
            error = %self.error,
            error_code = "nats_unavailable",
            retry_in_ms = self.retry_in.as_millis() as u64,
        );
    }
}
