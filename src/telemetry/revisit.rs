//! The metrics of revisits (issue 19), registered beside the others.

use prometheus_client::metrics::counter::Counter;
use prometheus_client::metrics::family::Family;
use prometheus_client::metrics::gauge::Gauge;
use prometheus_client::metrics::histogram::{Histogram, exponential_buckets};
use prometheus_client::registry::Registry;

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
    pub(super) fn register(&self, registry: &mut Registry) {
        registry.register("revisit_pages", "Revisit pages fetched and committed", self.pages.clone());
        registry.register(
            "revisit_items_compared",
            "Items a revisit compared with their last published revision",
            self.items_compared.clone(),
        );
        registry.register(
            "revisit_updates",
            "Items a revisit found at a new revision and published",
            self.updates.clone(),
        );
        registry.register(
            "revisits_completed",
            "Revisits that walked their whole window",
            self.completed.clone(),
        );
        registry.register(
            "revisit_duration_seconds",
            "Seconds of each revisit run between two polls",
            self.duration.clone(),
        );
        registry.register(
            "revisit_remembered_items",
            "Items whose last published revision the store keeps for revisits",
            self.remembered.clone(),
        );
    }
}
