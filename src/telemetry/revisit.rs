//! The metrics of revisits (issue 19), registered beside the others.

use prometheus_client::metrics::MetricType;
use prometheus_client::metrics::counter::Counter;
use prometheus_client::metrics::family::Family;
use prometheus_client::metrics::gauge::Gauge;
use prometheus_client::metrics::histogram::{Histogram, exponential_buckets};
use prometheus_client::registry::Registry;

use super::metrics::reg;

use super::SourceLabels;

fn duration_histogram() -> Histogram {
    Histogram::new(exponential_buckets(0.01, 2.0, 16))
}

/// Per source: what revisits walked, compared and found.
#[derive(Debug)]
pub struct RevisitMetrics {
    /// Revisit pages fetched, compared and committed.
    pub pages: Family<SourceLabels, Counter>,
    /// Items compared with their last published revision.
    pub items_compared: Family<SourceLabels, Counter>,
    /// Items found at a new revision (published).
    pub updates: Family<SourceLabels, Counter>,
    /// Revisits that walked their whole window.
    pub completed: Family<SourceLabels, Counter>,
    /// Duration of each revisit run (one run between two polls; a revisit
    /// paused by its budget continues in the next run).
    pub duration: Family<SourceLabels, Histogram, fn() -> Histogram>,
    /// Items whose last published revision the store remembers.
    pub remembered: Family<SourceLabels, Gauge>,
}

impl Default for RevisitMetrics {
    fn default() -> Self {
        RevisitMetrics {
            pages: Family::default(),
            items_compared: Family::default(),
            updates: Family::default(),
            completed: Family::default(),
            duration: Family::new_with_constructor(duration_histogram),
            remembered: Family::default(),
        }
    }
}

impl RevisitMetrics {
    /// Register every metric in `registry`.
    pub(super) fn register(&self, registry: &mut Registry, families: &mut Vec<(String, MetricType)>) {
        reg(registry, families, "revisit_pages", "Revisit pages fetched and committed", self.pages.clone());
        reg(
            registry,
            families,
            "revisit_items_compared",
            "Items a revisit compared with their last published revision",
            self.items_compared.clone(),
        );
        reg(
            registry,
            families,
            "revisit_updates",
            "Items a revisit found at a new revision and published",
            self.updates.clone(),
        );
        reg(
            registry,
            families,
            "revisits_completed",
            "Revisits that walked their whole window",
            self.completed.clone(),
        );
        reg(
            registry,
            families,
            "revisit_duration_seconds",
            "Seconds of each revisit run between two polls",
            self.duration.clone(),
        );
        reg(
            registry,
            families,
            "revisit_remembered_items",
            "Items whose last published revision the store keeps for revisits",
            self.remembered.clone(),
        );
    }

    /// Drop a removed source's series (reload).
    pub(super) fn remove_source(&self, l: &SourceLabels) {
        for family in [&self.pages, &self.items_compared, &self.updates, &self.completed] {
            family.remove(l);
        }
        self.duration.remove(l);
        self.remembered.remove(l);
    }
}
