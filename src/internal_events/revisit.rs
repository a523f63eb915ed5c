//! Revisits (issue 19): one line per revisit run, its metrics.

use std::time::Duration;

use super::labels;
use crate::telemetry::Telemetry;

/// What one revisit run did (a run is the part of a revisit between two
/// polls; a revisit the budget paused continues in the next run).
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct RevisitCounts {
    /// Pages fetched and committed.
    pub pages: u64,
    /// Items compared with their last published revision.
    pub compared: u64,
    /// Items at a new revision, published.
    pub updates: u64,
    /// Items at the revision last published (no message).
    pub unchanged: u64,
    /// Whether the revisit walked the rest of its window.
    pub complete: bool,
}

/// A revisit page was delivered and committed.
pub struct RevisitPageDone<'a> {
    /// Source name.
    pub source: &'a str,
    /// Vendor key.
    pub vendor: &'a str,
    /// Items compared on the page.
    pub compared: u64,
    /// Items published at a new revision.
    pub updates: u64,
}

impl RevisitPageDone<'_> {
    /// Count it.
    pub fn emit(&self, telemetry: &Telemetry) {
        let m = &telemetry.metrics.revisit;
        let l = labels(self.source, self.vendor);
        m.pages.get_or_create(&l).inc();
        m.items_compared.get_or_create(&l).inc_by(self.compared);
        m.updates.get_or_create(&l).inc_by(self.updates);
    }
}

/// A revisit run ended: walked its window to the end, or paused (its
/// budget ran out before the next poll, or shutdown).
pub struct RevisitRan<'a> {
    /// Source name.
    pub source: &'a str,
    /// Vendor key.
    pub vendor: &'a str,
    /// What it did.
    pub counts: RevisitCounts,
    /// Items whose revision the store remembers for the source (after a
    /// complete revisit pruned the ones that left the window).
    pub remembered: Option<u64>,
    /// How long the run took.
    pub elapsed: Duration,
}

impl RevisitRan<'_> {
    /// Log it and record its duration.
    pub fn emit(&self, telemetry: &Telemetry) {
        let m = &telemetry.metrics.revisit;
        let l = labels(self.source, self.vendor);
        m.duration.get_or_create(&l).observe(self.elapsed.as_secs_f64());
        if self.counts.complete {
            m.completed.get_or_create(&l).inc();
        }
        if let Some(n) = self.remembered {
            m.remembered.get_or_create(&l).set(i64::try_from(n).unwrap_or(i64::MAX));
        }
        let c = &self.counts;
        tracing::info!(
            message = if c.complete {
                "Revisit finished."
            } else {
                "Revisit paused; it continues after the next poll."
            },
            source = self.source,
            vendor = self.vendor,
            pages = c.pages,
            compared = c.compared,
            updates = c.updates,
            unchanged = c.unchanged,
            complete = c.complete,
            remembered = self.remembered,
            duration_ms = self.elapsed.as_millis() as u64,
        );
    }
}

/// A revisit run failed; its committed pages stay, and the next run
/// continues after them.
pub struct RevisitFailed<'a> {
    /// Source name.
    pub source: &'a str,
    /// Vendor key.
    pub vendor: &'a str,
    /// Why.
    pub error: &'a dyn std::fmt::Display,
    /// A bounded label.
    pub code: &'static str,
}

impl RevisitFailed<'_> {
    /// Log it.
    pub fn emit(&self) {
        tracing::warn!(
            message = "Revisit failed; it continues after the next poll.",
            source = self.source,
            vendor = self.vendor,
            error = %self.error,
            error_code = self.code,
        );
    }
}
