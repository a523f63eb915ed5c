//! The Prometheus metrics, named by Prometheus conventions (`_total` for
//! counters, base units in the name).

use prometheus_client::encoding::EncodeLabelSet;
use prometheus_client::metrics::counter::Counter;
use prometheus_client::metrics::family::Family;
use prometheus_client::metrics::gauge::Gauge;
use prometheus_client::metrics::histogram::{Histogram, exponential_buckets};
use prometheus_client::metrics::{MetricType, TypedMetric};
use prometheus_client::registry::{Metric, Registry};
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

/// Labels of configuration reloads.
#[derive(Debug, Clone, Hash, PartialEq, Eq, EncodeLabelSet)]
pub struct ReloadLabels {
    /// `success` or `failure`.
    pub result: String,
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

/// Register `metric` as `alertd_<name>` and remember its name and type.
pub(super) fn reg<M: Metric + TypedMetric>(
    registry: &mut Registry,
    families: &mut Vec<(String, MetricType)>,
    name: &str,
    help: &str,
    metric: M,
) {
    families.push((format!("alertd_{name}"), M::TYPE));
    registry.register(name, help, metric);
}

type F64Gauge = Gauge<f64, AtomicU64>;
type F64Counter = Counter<f64, AtomicU64>;

fn latency_histogram() -> Histogram {
    Histogram::new(exponential_buckets(0.001, 2.0, 14))
}

/// Every metric alertd exports.
pub struct Metrics {
    registry: Registry,
    /// Every registered family's full name and type.
    families: Vec<(String, MetricType)>,
    /// Polls by outcome.
    pub polls: Family<ResultLabels, Counter>,
    /// Pages committed.
    pub pages: Family<SourceLabels, Counter>,
    /// Messages newly stored by the sink (one per event and format, plus dead letters).
    pub events_published: Family<SourceLabels, Counter>,
    /// Messages the stream already had (acked as duplicates).
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
    /// 1 while the source is healthy here (it succeeded within its allowed
    /// gap, or this instance does not poll it), else 0; set at each scrape.
    pub source_healthy: Family<SourceLabels, Gauge>,
    /// 1 while this instance polls the source (always without `[cluster]`;
    /// with it, while this instance holds the source's lease).
    pub source_active: Family<SourceLabels, Gauge>,
    /// The longest a healthy source goes without a successful poll.
    pub source_allowed_gap: Family<SourceLabels, Gauge>,
    /// The source's `credential_expiry_warning`, in seconds.
    pub credential_expiry_warning: Family<SourceLabels, Gauge>,
    /// Configuration reloads (SIGHUP) by result.
    pub config_reloads: Family<ReloadLabels, Counter>,
    /// 1 if the last reload applied (or none was asked), 0 if it was refused.
    pub config_last_reload_successful: Gauge,
    /// When the running configuration was loaded (Unix seconds).
    pub config_last_reload_success_time: Gauge,
    /// Revisits (issue 19).
    pub revisit: super::revisit::RevisitMetrics,
    /// The label values other than `source`/`vendor` each source's series
    /// carry, so [`Metrics::remove_source`] finds every series of a source.
    extra_labels: std::sync::Mutex<std::collections::BTreeMap<String, std::collections::BTreeSet<Extra>>>,
}

/// A per-source series' further label, remembered for its removal.
#[derive(Debug, Clone, PartialEq, Eq, PartialOrd, Ord)]
pub enum Extra {
    /// `alertd_polls_total{result}`.
    Result(String),
    /// `alertd_http_responses_total{status}`.
    Status(String),
    /// `alertd_vendor_quota_*{period}`.
    Period(String),
    /// `alertd_cluster_lease_changes_total{change}`.
    Change(String),
}

impl std::fmt::Debug for Metrics {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str("Metrics")
    }
}

impl Default for Metrics {
    fn default() -> Self {
        let mut registry = Registry::with_prefix("alertd");
        let mut families = Vec::new();
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
            source_healthy: Family::default(),
            source_active: Family::default(),
            source_allowed_gap: Family::default(),
            credential_expiry_warning: Family::default(),
            config_reloads: Family::default(),
            config_last_reload_successful: Gauge::default(),
            config_last_reload_success_time: Gauge::default(),
            extra_labels: std::sync::Mutex::default(),
            revisit: super::revisit::RevisitMetrics::default(),
            registry: Registry::default(),
            families: Vec::new(),
        };
        reg(&mut registry, &mut families, "polls", "Polls by outcome", m.polls.clone());
        reg(&mut registry, &mut families, "pages", "Pages fetched, published and committed", m.pages.clone());
        reg(
            &mut registry,
            &mut families,
            "events_published",
            "Messages newly stored in the stream: one per event and configured format, plus dead letters",
            m.events_published.clone(),
        );
        reg(
            &mut registry,
            &mut families,
            "events_duplicate",
            "Messages acknowledged as duplicates of messages already in the stream",
            m.events_duplicate.clone(),
        );
        reg(
            &mut registry,
            &mut families,
            "events_skipped_seen",
            "Events not re-sent because they were delivered in the overlap window",
            m.events_skipped.clone(),
        );
        reg(
            &mut registry,
            &mut families,
            "dead_letters",
            "Items that could not be normalized",
            m.dead_letters.clone(),
        );
        reg(
            &mut registry,
            &mut families,
            "http_responses",
            "Vendor HTTP answers by status",
            m.http_responses.clone(),
        );
        reg(
            &mut registry,
            &mut families,
            "throttled_seconds",
            "Seconds spent waiting because the vendor throttled",
            m.throttled_seconds.clone(),
        );
        reg(
            &mut registry,
            &mut families,
            "seconds_since_last_success",
            "Seconds since the source's last successful poll",
            m.seconds_since_success.clone(),
        );
        reg(
            &mut registry,
            &mut families,
            "watermark_lag_seconds",
            "Seconds between now and the source's watermark",
            m.watermark_lag.clone(),
        );
        reg(
            &mut registry,
            &mut families,
            "puback_latency_seconds",
            "Seconds from sending a page's events to its last PubAck",
            m.puback_latency.clone(),
        );
        reg(&mut registry, &mut families, "poll_duration_seconds", "Poll durations", m.poll_duration.clone());
        reg(
            &mut registry,
            &mut families,
            "vendor_quota_limit",
            "API calls the vendor allows per period",
            m.quota_limit.clone(),
        );
        reg(
            &mut registry,
            &mut families,
            "vendor_quota_used",
            "API calls made in the vendor's current period",
            m.quota_used.clone(),
        );
        reg(
            &mut registry,
            &mut families,
            "credential_expiry_timestamp_seconds",
            "When the source's API key expires (Unix time), for keys that carry an expiry (JWTs)",
            m.credential_expiry.clone(),
        );
        reg(
            &mut registry,
            &mut families,
            "schedule_drift_seconds",
            "Seconds scheduled polls started after their scheduled time",
            m.schedule_drift.clone(),
        );
        reg(
            &mut registry,
            &mut families,
            "cluster_leases_held",
            "Sources whose lease this instance holds",
            m.leases_held.clone(),
        );
        reg(
            &mut registry,
            &mut families,
            "cluster_lease_changes",
            "Leases acquired, released or lost by this instance",
            m.lease_changes.clone(),
        );
        reg(
            &mut registry,
            &mut families,
            "cluster_members",
            "Live alertd instances seen",
            m.cluster_members.clone(),
        );
        reg(
            &mut registry,
            &mut families,
            "source_healthy",
            "1 while the source succeeded within its allowed gap (or another instance polls it), else 0",
            m.source_healthy.clone(),
        );
        reg(
            &mut registry,
            &mut families,
            "source_active",
            "1 while this instance polls the source (holds its lease under [cluster])",
            m.source_active.clone(),
        );
        reg(
            &mut registry,
            &mut families,
            "source_allowed_gap_seconds",
            "The longest a healthy source goes without a successful poll",
            m.source_allowed_gap.clone(),
        );
        reg(
            &mut registry,
            &mut families,
            "credential_expiry_warning_seconds",
            "How long before its API key expires the source warns (credential_expiry_warning)",
            m.credential_expiry_warning.clone(),
        );
        reg(
            &mut registry,
            &mut families,
            "config_reloads",
            "Configuration reloads (SIGHUP) by result",
            m.config_reloads.clone(),
        );
        reg(
            &mut registry,
            &mut families,
            "config_last_reload_successful",
            "1 if the last configuration reload applied (or none was asked), 0 if it was refused",
            m.config_last_reload_successful.clone(),
        );
        reg(
            &mut registry,
            &mut families,
            "config_last_reload_success_timestamp_seconds",
            "When the running configuration was loaded (Unix time)",
            m.config_last_reload_success_time.clone(),
        );
        m.config_last_reload_successful.set(1);
        m.config_last_reload_success_time.set(chrono::Utc::now().timestamp());
        m.revisit.register(&mut registry, &mut families);
        Metrics { registry, families, ..m }
    }
}

impl Metrics {
    /// Remember that `source` has a series with the further label `extra`.
    pub fn note(&self, source: &str, extra: Extra) {
        let mut seen = self.extra_labels.lock().unwrap_or_else(std::sync::PoisonError::into_inner);
        seen.entry(source.to_owned()).or_default().insert(extra);
    }

    /// Remove every series of `source` (a source removed by a reload), so
    /// dashboards and alerts stop seeing it.
    pub fn remove_source(&self, source: &str, vendor: &str) {
        let l = SourceLabels { source: source.to_owned(), vendor: vendor.to_owned() };
        for family in [
            &self.pages,
            &self.events_published,
            &self.events_duplicate,
            &self.events_skipped,
            &self.dead_letters,
        ] {
            family.remove(&l);
        }
        self.throttled_seconds.remove(&l);
        for family in [&self.seconds_since_success, &self.watermark_lag] {
            family.remove(&l);
        }
        for family in [&self.puback_latency, &self.poll_duration] {
            family.remove(&l);
        }
        for family in [
            &self.credential_expiry,
            &self.source_healthy,
            &self.source_active,
            &self.source_allowed_gap,
            &self.credential_expiry_warning,
        ] {
            family.remove(&l);
        }
        self.revisit.remove_source(&l);
        let extras = {
            let mut seen = self.extra_labels.lock().unwrap_or_else(std::sync::PoisonError::into_inner);
            seen.remove(source).unwrap_or_default()
        };
        let (s, v) = (source.to_owned(), vendor.to_owned());
        for extra in extras {
            match extra {
                Extra::Result(result) => {
                    self.polls.remove(&ResultLabels { source: s.clone(), vendor: v.clone(), result });
                }
                Extra::Status(status) => {
                    self.http_responses.remove(&StatusLabels {
                        source: s.clone(),
                        vendor: v.clone(),
                        status,
                    });
                }
                Extra::Period(period) => {
                    let q = QuotaLabels { source: s.clone(), vendor: v.clone(), period };
                    self.quota_limit.remove(&q);
                    self.quota_used.remove(&q);
                }
                Extra::Change(change) => {
                    self.lease_changes.remove(&LeaseLabels { source: s.clone(), change });
                }
            }
        }
    }

    /// The OpenMetrics text exposition (`application/openmetrics-text`).
    pub fn encode_openmetrics(&self) -> String {
        let mut out = String::new();
        // Writing into a String cannot fail.
        let _ = prometheus_client::encoding::text::encode(&mut out, &self.registry);
        out
    }

    /// The Prometheus text exposition (`text/plain; version=0.0.4`), which
    /// differs from OpenMetrics where a counter's `# HELP`/`# TYPE` name its
    /// samples' name (`_total` included) and in having no `# EOF`.
    pub fn encode(&self) -> String {
        let open = self.encode_openmetrics();
        let mut out = String::with_capacity(open.len());
        for line in open.lines() {
            if line == "# EOF" {
                continue;
            }
            let mut renamed = None;
            for prefix in ["# HELP ", "# TYPE "] {
                if let Some(rest) = line.strip_prefix(prefix) {
                    let name = rest.split(' ').next().unwrap_or_default();
                    if self.is_counter(name) {
                        renamed = Some(format!("{prefix}{name}_total{}", &rest[name.len()..]));
                    }
                }
            }
            out.push_str(renamed.as_deref().unwrap_or(line));
            out.push('\n');
        }
        out
    }

    fn is_counter(&self, name: &str) -> bool {
        self.families.iter().any(|(n, t)| n == name && matches!(t, MetricType::Counter))
    }

    /// The name of every sample alertd can export (a counter's with
    /// `_total`, a histogram's `_bucket`, `_sum` and `_count`), whether or
    /// not it has a series yet: what dashboards and alert rules may query.
    pub fn sample_names(&self) -> Vec<String> {
        let mut names = Vec::new();
        for (name, kind) in &self.families {
            match kind {
                MetricType::Counter => names.push(format!("{name}_total")),
                MetricType::Histogram => {
                    names.extend(["_bucket", "_sum", "_count"].map(|s| format!("{name}{s}")));
                }
                _ => names.push(name.clone()),
            }
        }
        names
    }
}
