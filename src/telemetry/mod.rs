//! What alertd says about itself: Prometheus metrics and per-source health.
//!
//! One [`Telemetry`] per daemon (no process-global registry), so tests can
//! run several daemons in one process and read each one's numbers. The
//! internal events in [`crate::internal_events`] are the only writers.

mod health;
mod metrics;
mod revisit;

pub use health::{Health, SourceHealth};
pub use metrics::{
    Extra, LeaseLabels, Metrics, QuotaLabels, ReloadLabels, ResultLabels, SourceLabels, StatusLabels,
};
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
    /// The Prometheus text exposition (0.0.4), with the time-derived gauges
    /// (seconds since the last success, watermark lag, health) brought up to now.
    pub fn render(&self) -> String {
        self.refresh();
        self.metrics.encode()
    }

    /// [`Telemetry::render`] in the OpenMetrics format.
    pub fn render_openmetrics(&self) -> String {
        self.refresh();
        self.metrics.encode_openmetrics()
    }

    fn refresh(&self) {
        let now = chrono::Utc::now();
        let unhealthy = self.health.unhealthy(now);
        for (name, source) in self.health.snapshot() {
            let healthy = !unhealthy.iter().any(|(n, _)| *n == name);
            let labels = SourceLabels { source: name, vendor: source.vendor.to_owned() };
            self.metrics.source_healthy.get_or_create(&labels).set(i64::from(healthy));
            self.metrics.source_active.get_or_create(&labels).set(i64::from(source.active));
            self.metrics
                .source_allowed_gap
                .get_or_create(&labels)
                .set(i64::try_from(source.allowed_gap.as_secs()).unwrap_or(i64::MAX));
            if let Some(last) = source.last_success {
                self.metrics.seconds_since_success.get_or_create(&labels).set(seconds(now - last));
            }
            if let Some(mark) = source.watermark.as_deref().and_then(crate::incremental::parse_time) {
                self.metrics.watermark_lag.get_or_create(&labels).set(seconds(now - mark));
            }
        }
    }
}

impl Telemetry {
    /// Stop tracking a source a reload removed: its health entry and every
    /// metric series that names it.
    pub fn forget_source(&self, source: &str, vendor: &str) {
        self.health.remove(source);
        self.metrics.remove_source(source, vendor);
    }
}

fn seconds(d: chrono::Duration) -> f64 {
    d.num_milliseconds() as f64 / 1000.0
}

#[cfg(test)]
mod tests {
    use super::*;

    fn touch(t: &Telemetry, source: &str) {
        let l = SourceLabels { source: source.to_owned(), vendor: "canaryguard".to_owned() };
        t.health.register(
            source,
            "canaryguard",
            std::time::Duration::from_secs(60),
            std::time::Duration::from_secs(60),
        );
        t.metrics.pages.get_or_create(&l).inc();
        t.metrics.puback_latency.get_or_create(&l).observe(0.01);
        let r =
            ResultLabels { source: source.to_owned(), vendor: l.vendor.clone(), result: "auth".to_owned() };
        t.metrics.polls.get_or_create(&r).inc();
        t.metrics.note(source, Extra::Result("auth".to_owned()));
        let s =
            StatusLabels { source: source.to_owned(), vendor: l.vendor.clone(), status: "429".to_owned() };
        t.metrics.http_responses.get_or_create(&s).inc();
        t.metrics.note(source, Extra::Status("429".to_owned()));
    }

    #[test]
    fn a_forgotten_source_leaves_no_series_and_the_others_keep_theirs() {
        let t = Telemetry::default();
        touch(&t, "gone");
        touch(&t, "kept");
        assert!(t.render().contains("source=\"gone\""));
        t.forget_source("gone", "canaryguard");
        let text = t.render();
        assert!(!text.contains("source=\"gone\""), "{text}");
        for family in [
            "alertd_pages_total{",
            "alertd_polls_total{",
            "alertd_http_responses_total{",
            "alertd_source_healthy{",
        ] {
            assert!(
                text.lines().any(|l| l.starts_with(family) && l.contains("source=\"kept\"")),
                "{family}: {text}"
            );
        }
    }

    #[test]
    fn the_text_format_names_counters_by_their_samples_and_openmetrics_keeps_its_own() {
        let t = Telemetry::default();
        touch(&t, "a");
        let text = t.render();
        assert!(text.contains("# TYPE alertd_pages_total counter\n"), "{text}");
        assert!(text.contains("# HELP alertd_pages_total "), "{text}");
        assert!(text.contains("# TYPE alertd_cluster_members gauge\n"), "{text}");
        assert!(!text.contains("# EOF"));
        let open = t.render_openmetrics();
        assert!(open.contains("# TYPE alertd_pages counter\n") && open.ends_with("# EOF\n"), "{open}");
    }
}
