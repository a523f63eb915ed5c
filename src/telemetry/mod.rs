//! What alertd says about itself: Prometheus metrics and per-source health.
//!
//! One [`Telemetry`] per daemon (no process-global registry), so tests can
//! run several daemons in one process and read each one's numbers. The
//! internal events in [`crate::internal_events`] are the only writers.

mod health;
mod metrics;
mod revisit;

pub use health::{Health, SourceHealth};
pub use metrics::{LeaseLabels, Metrics, QuotaLabels, ResultLabels, SourceLabels, StatusLabels};
pub use revisit::RevisitMetrics;

/// The daemon's metrics and health, shared by pollers and the HTTP listener.
#[derive(Debug, Default)]
pub struct Telemetry {
    /// Counters, gauges, histograms.
    pub metrics: Metrics,
    /// Per-source poll outcomes, for `/healthz` and the watchdog.
    pub health: Health,
}

impl Telemetry {
    /// The Prometheus text exposition, with the time-derived gauges (seconds
    /// since the last success, watermark lag) brought up to now.
    pub fn render(&self) -> String {
        let now = chrono::Utc::now();
        for (name, source) in self.health.snapshot() {
            let labels = SourceLabels { source: name, vendor: source.vendor.to_owned() };
            if let Some(last) = source.last_success {
                self.metrics.seconds_since_success.get_or_create(&labels).set(seconds(now - last));
            }
            if let Some(mark) = source.watermark.as_deref().and_then(crate::incremental::parse_time) {
                self.metrics.watermark_lag.get_or_create(&labels).set(seconds(now - mark));
            }
        }
        self.metrics.encode()
    }
}

fn seconds(d: chrono::Duration) -> f64 {
    d.num_milliseconds() as f64 / 1000.0
}
