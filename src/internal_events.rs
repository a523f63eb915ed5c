//! alertd's own events: one struct per log line, so every line has the same
//! fields wherever it is emitted and the set of things alertd reports is
//! readable in one file (after Vector's `internal_events`).
//!
//! Messages are capitalized sentences; fields are key/value; errors carry a
//! bounded `error_code` beside their text.

use std::time::Duration;

use crate::paginate::{EndRule, Position};
use crate::poller::{PollError, PollReport};
use crate::publish::PublishReport;
use crate::vendors::NormalizeError;

/// A poll walked to its end or stopped cleanly: the one line per poll.
pub struct PollFinished<'a> {
    /// Source name.
    pub source: &'a str,
    /// Vendor key.
    pub vendor: &'a str,
    /// What it did.
    pub report: &'a PollReport,
    /// How long it took.
    pub elapsed: Duration,
}

impl PollFinished<'_> {
    /// Log it.
    pub fn emit(&self) {
        let r = self.report;
        tracing::info!(
            message = "Poll finished.",
            source = self.source,
            vendor = self.vendor,
            pages = r.pages,
            items = r.items,
            published = r.published,
            duplicates = r.duplicates,
            skipped_seen = r.skipped_seen,
            dead_letters = r.dead_letters,
            complete = r.complete,
            duration_ms = self.elapsed.as_millis() as u64,
        );
    }
}

/// A poll failed; its cursor stays at the last committed page.
pub struct PollFailed<'a> {
    /// Source name.
    pub source: &'a str,
    /// Vendor key.
    pub vendor: &'a str,
    /// Why.
    pub error: &'a PollError,
    /// How long it ran.
    pub elapsed: Duration,
}

impl PollFailed<'_> {
    /// Log it.
    pub fn emit(&self) {
        tracing::error!(
            message = "Poll failed; the cursor stays at the last committed page.",
            source = self.source,
            vendor = self.vendor,
            error = %self.error,
            error_code = self.error.code(),
            duration_ms = self.elapsed.as_millis() as u64,
        );
    }
}

/// A page was published, acknowledged and committed.
pub struct PageDelivered<'a> {
    /// Source name.
    pub source: &'a str,
    /// Vendor key.
    pub vendor: &'a str,
    /// Where in the walk.
    pub at: &'a Position,
    /// Items on the page.
    pub items: usize,
    /// What the sink acknowledged.
    pub published: &'a PublishReport,
}

impl PageDelivered<'_> {
    /// Log it.
    pub fn emit(&self) {
        tracing::debug!(
            message = "Page committed.",
            source = self.source,
            vendor = self.vendor,
            at = %self.at,
            items = self.items,
            stored = self.published.stored,
            duplicates = self.published.duplicates,
        );
    }
}

/// A walk ended on a page past the API's end (a repeat of the previous page,
/// or hollow items) rather than where the continuation said; worth seeing
/// when a vendor's paging changes.
pub struct WalkEndedByRule<'a> {
    /// Source name.
    pub source: &'a str,
    /// Vendor key.
    pub vendor: &'a str,
    /// Which rule.
    pub rule: EndRule,
    /// Pages fetched, the recognised one included.
    pub pages: u64,
}

impl WalkEndedByRule<'_> {
    /// Log it.
    pub fn emit(&self) {
        tracing::info!(
            message = "Walk ended on a page past the end of the data.",
            source = self.source,
            vendor = self.vendor,
            rule = self.rule.as_str(),
            pages = self.pages,
        );
    }
}

/// An item could not be normalized and went to the dead-letter subject.
pub struct DeadLettered<'a> {
    /// Source name.
    pub source: &'a str,
    /// Vendor key.
    pub vendor: &'a str,
    /// Why.
    pub error: &'a NormalizeError,
}

impl DeadLettered<'_> {
    /// Log it.
    pub fn emit(&self) {
        tracing::warn!(
            message = "Item could not be normalized; sent to the dead-letter subject.",
            source = self.source,
            vendor = self.vendor,
            error = %self.error,
            error_code = "normalize",
        );
    }
}

/// The sink is not reachable yet at start-up; alertd keeps trying.
pub struct SinkUnavailable<'a> {
    /// Why.
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
