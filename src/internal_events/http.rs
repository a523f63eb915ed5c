//! Vendor answers: statuses, retries, pacing, empty answers, quotas and
//! the key's expiry.

use std::time::Duration;

use super::labels;
use crate::http::FetchError;
use crate::paginate::Position;
use crate::telemetry::{Extra, StatusLabels, Telemetry};

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
        telemetry.metrics.note(self.source, Extra::Status(l.status));
    }
}

/// A request failed transiently; the source waits before retrying.
pub struct RetryScheduled<'a> {
    /// Source name.
    pub source: &'a str,
    /// Vendor key.
    pub vendor: &'a str,
    /// The transient failure being retried.
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
            telemetry.metrics.note(self.source, Extra::Period(l.period.clone()));
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
