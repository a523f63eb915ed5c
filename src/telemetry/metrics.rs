//! The Prometheus metrics, named by Prometheus conventions (`_total` for
//! counters, base units in the name).

use prometheus_client::encoding::EncodeLabelSet;
use prometheus_client::metrics::counter::Counter;
use prometheus_client::metrics::family::Family;
use prometheus_client::metrics::gauge::Gauge;
use prometheus_client::metrics::histogram::{Histogram, exponential_buckets};
use prometheus_client::registry::Registry;
use std::sync::atomic::AtomicU64;

/// Labels of every per-source metric.
#[derive(Debug, Clone, Hash, PartialEq, Eq, EncodeLabelSet)]
pub struct SourceLabels {
    /// Source name.
    pub source: String,
    /// Vendor key.
    pub vendor: String,
}

/// Labels of HTTP answers: the status code, or the failure kind when there
/// was no answer (`timeout`, `connect`).
#[derive(Debug, Clone, Hash, PartialEq, Eq, EncodeLabelSet)]
pub struct StatusLabels {
    /// Source name.
    pub source: String,
    /// Vendor key.
    pub vendor: String,
    /// `200`, `429`, `timeout`…
    pub status: String,
}

/// Labels of a vendor's reported API budget.
#[derive(Debug, Clone, Hash, PartialEq, Eq, EncodeLabelSet)]
pub struct QuotaLabels {
    /// Source name.
    pub source: String,
    /// Vendor key.
    pub vendor: String,
    /// `minute`, `hour`, `day`.
    pub period: String,
}

/// Labels of lease changes.
#[derive(Debug, Clone, Hash, PartialEq, Eq, EncodeLabelSet)]
pub struct LeaseLabels {
    /// Source name.
    pub source: String,
    /// `acquired`, `released`, `lost`.
    pub change: String,
}

/// Labels of poll outcomes.
#[derive(Debug, Clone, Hash, PartialEq, Eq, EncodeLabelSet)]
pub struct ResultLabels {
    /// Source name.
    pub source: String,
    /// Vendor key.
    pub vendor: String,
    /// `ok`, or the error's bounded code.
    pub result: String,
}

type F64Gauge = Gauge<f64, AtomicU64>;
type F64Counter = Counter<f64, AtomicU64>;

fn latency_histogram() -> Histogram {
    Histogram::new(exponential_buckets(0.001, 2.0, 14))
}

/// Every metric alertd exports.
pub struct Metrics {
    registry: Registry,
    /// Polls by outcome.
    pub polls: Family<ResultLabels, Counter>,
    /// Pages committed.
    pub pages: Family<SourceLabels, Counter>,
    /// Events newly stored by the sink.
    pub events_published: Family<SourceLabels, Counter>,
    /// Events the stream already had (acked as duplicates).
    pub events_duplicate: Family<SourceLabels, Counter>,
    /// Events not re-sent because they were delivered in the overlap window.
    pub events_skipped: Family<SourceLabels, Counter>,
    /// Items sent to the dead-letter subject.
    pub dead_letters: Family<SourceLabels, Counter>,
    /// Vendor HTTP answers by status.
    pub http_responses: Family<StatusLabels, Counter>,
    /// Seconds spent waiting because a vendor throttled.
    pub throttled_seconds: Family<SourceLabels, F64Counter>,
    /// Seconds since the source's last successful poll.
    pub seconds_since_success: Family<SourceLabels, F64Gauge>,
    /// Seconds between now and the source's watermark (time-based cursors).
    pub watermark_lag: Family<SourceLabels, F64Gauge>,
    /// Time from sending a page's events to the last PubAck.
    pub puback_latency: Family<SourceLabels, Histogram, fn() -> Histogram>,
    /// Poll durations.
    pub poll_duration: Family<SourceLabels, Histogram, fn() -> Histogram>,
    /// Calls the vendor allows per period, as it reports (Catchpoint).
    pub quota_limit: Family<QuotaLabels, Gauge>,
    /// Calls made in the current period, as the vendor reports.
    pub quota_used: Family<QuotaLabels, Gauge>,
    /// When the source's API key expires (Unix seconds), for keys that say.
    pub credential_expiry: Family<SourceLabels, Gauge>,
    /// How late scheduled polls start (start − scheduled time, jitter
    /// included in the schedule): one histogram for all sources, because a
    /// late start means an overloaded process, not a bad source, and per-
    /// source series would cost 14 buckets × 1,000 sources.
    pub schedule_drift: Histogram,
    /// Sources whose lease this instance holds (`[cluster]`).
    pub leases_held: Gauge,
    /// Leases taken, handed over or lost, per source.
    pub lease_changes: Family<LeaseLabels, Counter>,
    /// Live instances this instance sees (itself included).
    pub cluster_members: Gauge,
    /// Revisits (issue 19).
    pub revisit: super::revisit::RevisitMetrics,
}

impl std::fmt::Debug for Metrics {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str("Metrics")
    }
}

impl Default for Metrics {
    fn default() -> Self {
        let mut registry = Registry::with_prefix("alertd");
        let m = Metrics {
            polls: Family::default(),
            pages: Family::default(),
            events_published: Family::default(),
            events_duplicate: Family::default(),
            events_skipped: Family::default(),
            dead_letters: Family::default(),
            http_responses: Family::default(),
            throttled_seconds: Family::default(),
            seconds_since_success: Family::default(),
            watermark_lag: Family::default(),
            puback_latency: Family::new_with_constructor(latency_histogram),
            poll_duration: Family::new_with_constructor(latency_histogram),
            quota_limit: Family::default(),
            quota_used: Family::default(),
            credential_expiry: Family::default(),
            schedule_drift: latency_histogram(),
            leases_held: Gauge::default(),
            lease_changes: Family::default(),
            cluster_members: Gauge::default(),
            revisit: super::revisit::RevisitMetrics::default(),
            registry: Registry::default(),
        };
        registry.register("polls", "Polls by outcome", m.polls.clone());
        registry.register("pages", "Pages fetched, published and committed", m.pages.clone());
        registry.register(
            "events_published",
            "Events newly stored in the stream",
            m.events_published.clone(),
        );
        registry.register(
            "events_duplicate",
            "Events acknowledged as duplicates of events already in the stream",
            m.events_duplicate.clone(),
        );
        registry.register(
            "events_skipped_seen",
            "Events not re-sent because they were delivered in the overlap window",
            m.events_skipped.clone(),
        );
        registry.register("dead_letters", "Items that could not be normalized", m.dead_letters.clone());
        registry.register("http_responses", "Vendor HTTP answers by status", m.http_responses.clone());
        registry.register(
            "throttled_seconds",
            "Seconds spent waiting because the vendor throttled",
            m.throttled_seconds.clone(),
        );
        registry.register(
            "seconds_since_last_success",
            "Seconds since the source's last successful poll",
            m.seconds_since_success.clone(),
        );
        registry.register(
            "watermark_lag_seconds",
            "Seconds between now and the source's watermark",
            m.watermark_lag.clone(),
        );
        registry.register(
            "puback_latency_seconds",
            "Seconds from sending a page's events to its last PubAck",
            m.puback_latency.clone(),
        );
        registry.register("poll_duration_seconds", "Poll durations", m.poll_duration.clone());
        registry.register(
            "vendor_quota_limit",
            "API calls the vendor allows per period",
            m.quota_limit.clone(),
        );
        registry.register(
            "vendor_quota_used",
            "API calls made in the vendor's current period",
            m.quota_used.clone(),
        );
        registry.register(
            "credential_expiry_timestamp_seconds",
            "When the source's API key expires (Unix time), for keys that carry an expiry (JWTs)",
            m.credential_expiry.clone(),
        );
        registry.register(
            "schedule_drift_seconds",
            "Seconds scheduled polls started after their scheduled time",
            m.schedule_drift.clone(),
        );
        registry.register(
            "cluster_leases_held",
            "Sources whose lease this instance holds",
            m.leases_held.clone(),
        );
        registry.register(
            "cluster_lease_changes",
            "Leases acquired, released or lost by this instance",
            m.lease_changes.clone(),
        );
        registry.register("cluster_members", "Live alertd instances seen", m.cluster_members.clone());
        m.revisit.register(&mut registry);
        Metrics { registry, ..m }
    }
}

impl Metrics {
    /// The text exposition format.
    pub fn encode(&self) -> String {
        let mut out = String::new();
        // Writing into a String cannot fail.
        let _ = prometheus_client::encoding::text::encode(&mut out, &self.registry);
        out
    }
}
