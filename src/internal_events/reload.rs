//! Configuration reloads (SIGHUP): applied, refused, and the sources they
//! start and stop.

use crate::telemetry::{ReloadLabels, Telemetry};

fn count(telemetry: &Telemetry, result: &str) {
    telemetry.metrics.config_reloads.get_or_create(&ReloadLabels { result: result.to_owned() }).inc();
}

/// The new file is invalid: nothing changed, the daemon runs on.
pub struct ConfigReloadFailed<'a> {
    /// The file.
    pub file: &'a std::path::Path,
    /// Why (the loader's message: file, line, field).
    pub error: &'a dyn std::fmt::Display,
}

impl ConfigReloadFailed<'_> {
    /// Log it at ERROR and count it.
    pub fn emit(&self, telemetry: &Telemetry) {
        count(telemetry, "failure");
        telemetry.metrics.config_last_reload_successful.set(0);
        tracing::error!(
            message = "Configuration reload refused: the file is invalid; nothing changed, still running on the previous configuration.",
            file = %self.file.display(),
            error = %self.error,
            error_code = "config_invalid",
        );
    }
}

/// A section that only takes effect at a restart changed: that part of the
/// reload is refused, the rest applies.
pub struct RestartRequired<'a> {
    /// `[nats]`, `[state]`, `[service]` or `[cluster]`.
    pub section: &'a str,
}

impl RestartRequired<'_> {
    /// Log it at WARN.
    pub fn emit(&self) {
        tracing::warn!(
            message = "Configuration reload: this section changed but only takes effect at a restart; its change is ignored until then (the rest of the reload applies).",
            section = self.section,
        );
    }
}

/// A reload applied.
pub struct ConfigReloaded<'a> {
    /// The file.
    pub file: &'a std::path::Path,
    /// Sources started.
    pub added: &'a [String],
    /// Sources stopped (removed or disabled).
    pub removed: &'a [String],
    /// Sources restarted with new settings.
    pub changed: &'a [String],
    /// Sources left running as they were.
    pub unchanged: usize,
}

impl ConfigReloaded<'_> {
    /// Log it and count it.
    pub fn emit(&self, telemetry: &Telemetry) {
        count(telemetry, "success");
        telemetry.metrics.config_last_reload_successful.set(1);
        telemetry.metrics.config_last_reload_success_time.set(chrono::Utc::now().timestamp());
        tracing::info!(
            message = "Configuration reloaded.",
            file = %self.file.display(),
            added = %self.added.join(","),
            removed = %self.removed.join(","),
            changed = %self.changed.join(","),
            unchanged = self.unchanged,
        );
    }
}

/// A source a reload removed (or disabled) stopped after its page in
/// flight: its health and metric series are gone.
pub struct SourceRemoved<'a> {
    /// Source name.
    pub source: &'a str,
    /// Vendor key.
    pub vendor: &'a str,
}

impl SourceRemoved<'_> {
    /// Forget it and log it.
    pub fn emit(&self, telemetry: &Telemetry) {
        telemetry.forget_source(self.source, self.vendor);
        tracing::info!(message = "Source stopped and removed.", source = self.source, vendor = self.vendor);
    }
}
