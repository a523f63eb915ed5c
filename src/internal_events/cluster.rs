//! Leases and members under `[cluster]`.

use crate::telemetry::{Extra, Telemetry};

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
    /// How it was lost (another holder, not renewed in time).
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
    /// The bucket's or the connection's error.
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
    telemetry.metrics.note(source, Extra::Change(change.to_owned()));
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
