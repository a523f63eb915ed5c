//! A poll's life: scheduled, started, progressing, finished or failed.

use std::time::Duration;

use super::{labels, result_labels};
use crate::telemetry::{Extra, Telemetry};

/// What a poll did, as its summary line tells it.
#[derive(Debug, Clone, Copy, Default)]
pub struct PollCounts<'a> {
    /// Pages fetched and committed.
    pub pages: u64,
    /// Items on them.
    pub items: u64,
    /// Events sent (each one message per format).
    pub events: u64,
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

/// A poll walked to its end: the one line per poll.
pub struct PollFinished<'a> {
    /// Source name.
    pub source: &'a str,
    /// Vendor key.
    pub vendor: &'a str,
    /// What it did.
    pub report: PollCounts<'a>,
    /// The formats each event was published in (one message each).
    pub formats: &'a [crate::config::Format],
    /// How long it took.
    pub elapsed: Duration,
}

impl PollFinished<'_> {
    /// Log it, count it, and mark the source healthy.
    pub fn emit(&self, telemetry: &Telemetry) {
        let r = &self.report;
        let m = &telemetry.metrics;
        m.polls.get_or_create(&result_labels(self.source, self.vendor, "ok")).inc();
        m.note(self.source, Extra::Result("ok".to_owned()));
        m.poll_duration.get_or_create(&labels(self.source, self.vendor)).observe(self.elapsed.as_secs_f64());
        telemetry.health.success(self.source, r.watermark);
        tracing::info!(
            message = "Poll finished.",
            source = self.source,
            vendor = self.vendor,
            pages = r.pages,
            items = r.items,
            events = r.events,
            messages = r.published,
            formats = %FormatList(self.formats),
            duplicates = r.duplicates,
            skipped_seen = r.skipped_seen,
            dead_letters = r.dead_letters,
            complete = r.complete,
            watermark = r.watermark.unwrap_or("-"),
            duration_ms = self.elapsed.as_millis() as u64,
        );
    }
}

/// A poll stopped before its walk's end because its source is stopping
/// (shutdown; under `[cluster]`, the lease handed over): the pages it
/// committed stay, the walk resumes at the next one. No failure: nothing is
/// counted as an error and the source's health is left as it was.
pub struct PollStopped<'a> {
    /// Source name.
    pub source: &'a str,
    /// Vendor key.
    pub vendor: &'a str,
    /// What it did before it stopped.
    pub report: PollCounts<'a>,
    /// The formats each event was published in (one message each).
    pub formats: &'a [crate::config::Format],
    /// How long it ran.
    pub elapsed: Duration,
}

impl PollStopped<'_> {
    /// Log it.
    pub fn emit(&self) {
        let r = &self.report;
        tracing::info!(
            message = "Poll stopped: the source is stopping; the cursor stays at the last committed page.",
            source = self.source,
            vendor = self.vendor,
            pages = r.pages,
            items = r.items,
            events = r.events,
            messages = r.published,
            formats = %FormatList(self.formats),
            duplicates = r.duplicates,
            skipped_seen = r.skipped_seen,
            dead_letters = r.dead_letters,
            duration_ms = self.elapsed.as_millis() as u64,
        );
    }
}

/// `alertd,ocsf` for a log field.
struct FormatList<'a>(&'a [crate::config::Format]);

impl std::fmt::Display for FormatList<'_> {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        for (i, format) in self.0.iter().enumerate() {
            if i > 0 {
                f.write_str(",")?;
            }
            f.write_str(format.as_str())?;
        }
        Ok(())
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
    /// Its `credential_expiry_warning`.
    pub expiry_warning: Duration,
}

impl SourceScheduled<'_> {
    /// Start tracking its health.
    pub fn emit(&self, telemetry: &Telemetry) {
        telemetry.health.register(self.source, self.vendor, self.interval, self.stall_after);
        telemetry
            .metrics
            .credential_expiry_warning
            .get_or_create(&labels(self.source, self.vendor))
            .set(i64::try_from(self.expiry_warning.as_secs()).unwrap_or(i64::MAX));
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
    /// The poll's error, naming the source and where in the walk.
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
        telemetry.metrics.note(self.source, Extra::Result(code.to_owned()));
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
