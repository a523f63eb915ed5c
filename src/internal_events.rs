//! alertd's own events: one struct per log line, so every line has the same
//! fields wherever it is emitted and the set of things alertd reports is
//! readable in one file (after Vector's `internal_events`).
//!
//! Messages are capitalized sentences; fields are key/value; errors carry a
//! bounded `error_code` beside their text.

use std::time::Duration;

use crate::http::FetchError;

use crate::paginate::{EndRule, Position};
use crate::publish::PublishReport;
use crate::telemetry::{SourceLabels, StatusLabels, Telemetry};
use crate::vendors::NormalizeError;

fn labels(source: &str, vendor: &str) -> SourceLabels {
    SourceLabels { source: source.to_owned(), vendor: vendor.to_owned() }
}

/// What a poll did, as its summary line tells it.
#[derive(Debug, Clone, Copy, Default)]
pub struct PollCounts<'a> {
    /// Pages fetched and committed.
    pub pages: u64,
    /// Items on them.
    pub items: u64,
    /// Messages newly stored.
    pub published: u64,
    /// Messages the stream already had.
    pub duplicates: u64,
    /// Events skipped as already delivered.
    pub skipped_seen: u64,
    /// Dead letters sent.
    pub dead_letters: u64,
    /// Whether the walk reached its end.
    pub complete: bool,
    /// The watermark a completed walk left.
    pub watermark: Option<&'a str>,
}

/// A poll walked to its end or stopped cleanly: the one line per poll.
pub struct PollFinished<'a> {
    /// Source name.
    pub source: &'a str,
    /// Vendor key.
    pub vendor: &'a str,
    /// What it did.
    pub report: PollCounts<'a>,
    /// How long it took.
    pub elapsed: Duration,
}

impl PollFinished<'_> {
    /// Log it, count it, and mark the source healthy.
    pub fn emit(&self, telemetry: &Telemetry) {
        let r = &self.report;
        let m = &telemetry.metrics;
        m.polls.get_or_create(&result_labels(self.source, self.vendor, "ok")).inc();
        m.poll_duration.get_or_create(&labels(self.source, self.vendor)).observe(self.elapsed.as_secs_f64());
        telemetry.health.success(self.source, r.watermark);
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
            watermark = r.watermark.unwrap_or("-"),
            duration_ms = self.elapsed.as_millis() as u64,
        );
    }
}

/// A source joins this daemon's schedule: its health is tracked from now.
pub struct SourceScheduled<'a> {
    /// Source name.
    pub source: &'a str,
    /// Vendor key.
    pub vendor: &'static str,
    /// About how often it polls.
    pub interval: Duration,
    /// How long a poll may go without an answer before it counts as stalled.
    pub stall_after: Duration,
    /// Whether this instance polls it from the start (without `[cluster]`),
    /// or only once it holds its lease.
    pub active: bool,
}

impl SourceScheduled<'_> {
    /// Start tracking its health.
    pub fn emit(&self, telemetry: &Telemetry) {
        telemetry.health.register(self.source, self.vendor, self.interval, self.stall_after);
        if !self.active {
            telemetry.health.set_active(self.source, false);
        }
    }
}

/// A poll started or made progress (an answer came): it is not stalled.
pub struct PollProgressed<'a> {
    /// Source name.
    pub source: &'a str,
}

impl PollProgressed<'_> {
    /// Note it in the source's health.
    pub fn emit(&self, telemetry: &Telemetry) {
        telemetry.health.progress(self.source);
    }
}

/// A scheduled poll starts, `late` after its scheduled time (jitter
/// included): drift shows a process too busy to keep its schedules.
pub struct PollStarted<'a> {
    /// Source name.
    pub source: &'a str,
    /// Vendor key.
    pub vendor: &'a str,
    /// Start − scheduled time (zero if early).
    pub late: Duration,
}

impl PollStarted<'_> {
    /// Record the drift and log the start at debug level.
    pub fn emit(&self, telemetry: &Telemetry) {
        telemetry.metrics.schedule_drift.observe(self.late.as_secs_f64());
        tracing::debug!(
            message = "Poll started.",
            source = self.source,
            vendor = self.vendor,
            late_ms = self.late.as_millis() as u64,
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
    pub error: &'a dyn std::fmt::Display,
    /// A bounded label for the error (`auth`, `http_5xx`, `panic`, …).
    pub code: &'static str,
    /// How long it ran.
    pub elapsed: Duration,
}

impl PollFailed<'_> {
    /// Log it, count it, and record it in the source's health.
    pub fn emit(&self, telemetry: &Telemetry) {
        let code = self.code;
        telemetry.metrics.polls.get_or_create(&result_labels(self.source, self.vendor, code)).inc();
        telemetry.health.failure(self.source, code);
        tracing::error!(
            message = "Poll failed; the cursor stays at the last committed page.",
            source = self.source,
            vendor = self.vendor,
            error = %self.error,
            error_code = code,
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
    /// Why.
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

/// A vendor answered (or did not): counted by status.
pub struct HttpAnswered<'a> {
    /// Source name.
    pub source: &'a str,
    /// Vendor key.
    pub vendor: &'a str,
    /// The status code, or the failure kind when there was no answer.
    pub status: &'a str,
}

impl HttpAnswered<'_> {
    /// Count it.
    pub fn emit(&self, telemetry: &Telemetry) {
        let l = StatusLabels {
            source: self.source.to_owned(),
            vendor: self.vendor.to_owned(),
            status: self.status.to_owned(),
        };
        telemetry.metrics.http_responses.get_or_create(&l).inc();
    }
}

/// A request failed transiently; the source waits before retrying.
pub struct RetryScheduled<'a> {
    /// Source name.
    pub source: &'a str,
    /// Vendor key.
    pub vendor: &'a str,
    /// Why.
    pub error: &'a FetchError,
    /// How long.
    pub delay: Duration,
}

impl RetryScheduled<'_> {
    /// Log it; time spent throttled is counted.
    pub fn emit(&self, telemetry: &Telemetry) {
        if matches!(self.error, FetchError::Throttled { .. }) {
            telemetry
                .metrics
                .throttled_seconds
                .get_or_create(&labels(self.source, self.vendor))
                .inc_by(self.delay.as_secs_f64());
        }
        tracing::warn!(
            message = "Request failed; retrying.",
            source = self.source,
            vendor = self.vendor,
            error = %self.error,
            error_code = self.error.code(),
            delay_ms = self.delay.as_millis() as u64,
        );
    }
}

/// The vendor's budget runs low (`RateLimit-Remaining`): the source slows down.
pub struct Paced<'a> {
    /// Source name.
    pub source: &'a str,
    /// Vendor key.
    pub vendor: &'a str,
    /// How long the next request waits.
    pub delay: Duration,
}

impl Paced<'_> {
    /// Log it; the wait counts as throttled time.
    pub fn emit(&self, telemetry: &Telemetry) {
        telemetry
            .metrics
            .throttled_seconds
            .get_or_create(&labels(self.source, self.vendor))
            .inc_by(self.delay.as_secs_f64());
        tracing::info!(
            message = "Vendor rate budget is running low; slowing down.",
            source = self.source,
            vendor = self.vendor,
            delay_ms = self.delay.as_millis() as u64,
        );
    }
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

/// A vendor answered a page with an error status that, for that vendor,
/// means "nothing here" (Catchpoint's 404 for an empty window); the walk
/// goes on as if an empty page had come back.
pub struct ErrorAnsweredAsEmpty<'a> {
    /// Source name.
    pub source: &'a str,
    /// Vendor key.
    pub vendor: &'a str,
    /// Where in the walk.
    pub at: &'a Position,
    /// The answer that was read as an empty page.
    pub error: &'a FetchError,
}

impl ErrorAnsweredAsEmpty<'_> {
    /// Log it.
    pub fn emit(&self) {
        tracing::debug!(
            message = "Error answer read as an empty page.",
            source = self.source,
            vendor = self.vendor,
            at = %self.at,
            error = %self.error,
            error_code = self.error.code(),
        );
    }
}

/// A vendor reported its API budgets beside a page.
pub struct ApiUsageReported<'a> {
    /// Source name.
    pub source: &'a str,
    /// Vendor key.
    pub vendor: &'a str,
    /// What the vendor reported.
    pub usage: &'a [crate::paginate::ApiUsage],
}

impl ApiUsageReported<'_> {
    /// Export it as gauges and log it at debug level.
    pub fn emit(&self, telemetry: &Telemetry) {
        for u in self.usage {
            let l = crate::telemetry::QuotaLabels {
                source: self.source.to_owned(),
                vendor: self.vendor.to_owned(),
                period: u.period.to_owned(),
            };
            if let Some(limit) = u.limit {
                telemetry.metrics.quota_limit.get_or_create(&l).set(limit as i64);
            }
            if let Some(used) = u.used {
                telemetry.metrics.quota_used.get_or_create(&l).set(used as i64);
            }
            tracing::debug!(
                message = "Vendor reported API usage.",
                source = self.source,
                vendor = self.vendor,
                period = u.period,
                limit = u.limit,
                used = u.used,
            );
        }
    }
}

/// A source's API key carries an expiry date (a JWT's `exp`): exported as a
/// gauge at every poll, and a warning when it is within the warning period
/// (or past), so the key is rotated before polls start failing.
pub struct CredentialExpiry<'a> {
    /// Source name.
    pub source: &'a str,
    /// Vendor key.
    pub vendor: &'a str,
    /// When the key expires.
    pub expires_at: chrono::DateTime<chrono::Utc>,
    /// Whether to log (the caller rate-limits the warning).
    pub warn: bool,
}

impl CredentialExpiry<'_> {
    /// Set the gauge; log the warning if asked.
    pub fn emit(&self, telemetry: &Telemetry) {
        telemetry
            .metrics
            .credential_expiry
            .get_or_create(&labels(self.source, self.vendor))
            .set(self.expires_at.timestamp());
        if !self.warn {
            return;
        }
        let left = self.expires_at - chrono::Utc::now();
        if left <= chrono::TimeDelta::zero() {
            tracing::error!(
                message = "The API key has expired; rotate it.",
                source = self.source,
                vendor = self.vendor,
                expires_at = %self.expires_at.to_rfc3339(),
            );
        } else {
            tracing::warn!(
                message = "The API key expires soon; rotate it.",
                source = self.source,
                vendor = self.vendor,
                expires_at = %self.expires_at.to_rfc3339(),
                days_left = left.num_days(),
            );
        }
    }
}

/// This instance took a source's lease and starts polling it.
pub struct LeaseAcquired<'a> {
    /// Source name.
    pub source: &'a str,
    /// The tenure's number.
    pub epoch: u64,
    /// Whether rendezvous hashing prefers this instance for it (else it
    /// was taken because it was left without a holder).
    pub preferred: bool,
}

impl LeaseAcquired<'_> {
    /// Log and count it.
    pub fn emit(&self, telemetry: &Telemetry) {
        tracing::info!(
            message = "Lease acquired; polling the source.",
            source = self.source,
            epoch = self.epoch,
            preferred = self.preferred
        );
        lease_change(telemetry, self.source, "acquired", 1);
    }
}

/// This instance let a source go: handed over to the preferred instance,
/// or at shutdown.
pub struct LeaseReleased<'a> {
    /// Source name.
    pub source: &'a str,
    /// The tenure's number.
    pub epoch: u64,
    /// Who should take it next (`None` at shutdown).
    pub to: Option<&'a str>,
}

impl LeaseReleased<'_> {
    /// Log and count it.
    pub fn emit(&self, telemetry: &Telemetry) {
        tracing::info!(
            message = "Lease released.",
            source = self.source,
            epoch = self.epoch,
            to = self.to.unwrap_or("-")
        );
        lease_change(telemetry, self.source, "released", -1);
    }
}

/// This instance no longer holds a source's lease it thought it held:
/// another instance has it, or it could not be renewed in time. The source
/// stops before its next page.
pub struct LeaseLost<'a> {
    /// Source name.
    pub source: &'a str,
    /// The tenure's number.
    pub epoch: u64,
    /// Why.
    pub reason: &'a str,
}

impl LeaseLost<'_> {
    /// Log and count it.
    pub fn emit(&self, telemetry: &Telemetry) {
        tracing::warn!(
            message = "Lease lost; the source stops before its next page.",
            source = self.source,
            epoch = self.epoch,
            reason = self.reason,
            error_code = "lease_lost"
        );
        lease_change(telemetry, self.source, "lost", -1);
    }
}

/// A lease bucket operation failed (NATS unreachable, timeout); retried at
/// the next tick.
pub struct LeaseBucketFailed<'a> {
    /// What was being done.
    pub operation: &'a str,
    /// Why.
    pub error: &'a dyn std::fmt::Display,
}

impl LeaseBucketFailed<'_> {
    /// Log it.
    pub fn emit(&self) {
        tracing::warn!(
            message = "Lease bucket operation failed; retrying next tick.",
            operation = self.operation,
            error = %self.error,
            error_code = "lease_bucket"
        );
    }
}

/// The set of live instances changed.
pub struct MembersChanged<'a> {
    /// The live instances now.
    pub members: &'a [String],
}

impl MembersChanged<'_> {
    /// Log it and set the gauge.
    pub fn emit(&self, telemetry: &Telemetry) {
        tracing::info!(message = "Cluster members changed.", members = %self.members.join(","), count = self.members.len());
        telemetry.metrics.cluster_members.set(self.members.len() as i64);
    }
}

fn lease_change(telemetry: &Telemetry, source: &str, change: &str, held: i64) {
    let labels = crate::telemetry::LeaseLabels { source: source.to_owned(), change: change.to_owned() };
    telemetry.metrics.lease_changes.get_or_create(&labels).inc();
    telemetry.metrics.leases_held.inc_by(held);
    telemetry.health.set_active(source, held > 0);
}

/// A poll was dropped mid-way because its lease was lost: another
/// instance may be polling the source already. Nothing half done counts
/// (commits come after PubAcks, and each is one compare-and-set).
pub struct PollAbandoned<'a> {
    /// Source name.
    pub source: &'a str,
    /// Vendor key.
    pub vendor: &'static str,
}

impl PollAbandoned<'_> {
    /// Log it.
    pub fn emit(&self) {
        tracing::warn!(
            message = "Poll abandoned: the lease was lost.",
            source = self.source,
            vendor = self.vendor,
            error_code = "lease_lost"
        );
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::paginate::ApiUsage;

    #[test]
    fn reported_api_usage_becomes_quota_gauges() {
        let telemetry = Telemetry::default();
        let usage = [ApiUsage { period: "minute", limit: Some(20), used: Some(3) }];
        ApiUsageReported { source: "acme", vendor: "catchpoint", usage: &usage }.emit(&telemetry);
        let text = telemetry.render();
        assert!(
            text.contains(
                r#"alertd_vendor_quota_limit{source="acme",vendor="catchpoint",period="minute"} 20"#
            ),
            "{text}"
        );
        assert!(
            text.contains(r#"alertd_vendor_quota_used{source="acme",vendor="catchpoint",period="minute"} 3"#)
        );
    }
}
