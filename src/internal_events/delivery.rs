//! Pages delivered, walks ended by a rule, dead letters.

use std::time::Duration;

use super::labels;
use crate::paginate::{EndRule, Position};
use crate::publish::PublishReport;
use crate::telemetry::Telemetry;
use crate::vendors::NormalizeError;

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
    /// Events not re-sent because they were already delivered.
    pub skipped: u64,
    /// From sending the events to the last PubAck.
    pub ack_latency: Duration,
}

impl PageDelivered<'_> {
    /// Log it and count it.
    pub fn emit(&self, telemetry: &Telemetry) {
        let m = &telemetry.metrics;
        let l = labels(self.source, self.vendor);
        m.pages.get_or_create(&l).inc();
        m.events_published.get_or_create(&l).inc_by(self.published.stored as u64);
        m.events_duplicate.get_or_create(&l).inc_by(self.published.duplicates as u64);
        m.events_skipped.get_or_create(&l).inc_by(self.skipped);
        m.puback_latency.get_or_create(&l).observe(self.ack_latency.as_secs_f64());
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
    /// Which field was missing or malformed.
    pub error: &'a NormalizeError,
}

impl DeadLettered<'_> {
    /// Log it and count it.
    pub fn emit(&self, telemetry: &Telemetry) {
        telemetry.metrics.dead_letters.get_or_create(&labels(self.source, self.vendor)).inc();
        tracing::warn!(
            message = "Item could not be normalized; sent to the dead-letter subject.",
            source = self.source,
            vendor = self.vendor,
            error = %self.error,
            error_code = "normalize",
        );
    }
}

/// A poll's dead-letter budget was spent: the page's remaining bad items
/// went into one overflow dead letter.
pub struct DeadLettersCapped<'a> {
    /// Source name.
    pub source: &'a str,
    /// Vendor key.
    pub vendor: &'a str,
    /// Bad items counted, not copied.
    pub count: usize,
    /// The budget per poll.
    pub limit: usize,
}

impl DeadLettersCapped<'_> {
    /// Log it once and count the items.
    pub fn emit(&self, telemetry: &Telemetry) {
        telemetry
            .metrics
            .dead_letters
            .get_or_create(&labels(self.source, self.vendor))
            .inc_by(self.count as u64);
        tracing::warn!(
            message = "More items could not be normalized than a poll dead-letters one by one; the rest are counted in one overflow dead letter.",
            source = self.source,
            vendor = self.vendor,
            count = self.count,
            limit = self.limit,
            error_code = "dead_letters_capped",
        );
    }
}

/// Messages larger than the NATS server's `max_payload` went to the
/// dead-letter subject as truncated envelopes, so the walk goes on.
pub struct OversizedDeadLettered<'a> {
    /// Source name.
    pub source: &'a str,
    /// Vendor key.
    pub vendor: &'a str,
    /// How many on this page.
    pub count: usize,
    /// Where in the walk.
    pub at: &'a Position,
}

impl OversizedDeadLettered<'_> {
    /// Log it and count it.
    pub fn emit(&self, telemetry: &Telemetry) {
        telemetry
            .metrics
            .dead_letters
            .get_or_create(&labels(self.source, self.vendor))
            .inc_by(self.count as u64);
        tracing::warn!(
            message = "Messages exceed the NATS server's max_payload; sent to the dead-letter subject truncated.",
            source = self.source,
            vendor = self.vendor,
            count = self.count,
            at = %self.at,
            error_code = "max_payload",
        );
    }
}
