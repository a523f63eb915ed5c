//! `alertd check [SOURCE]`: does the configuration work, end to end?
//!
//! Config (already loaded), each source's credential and a cheap
//! authenticated request to its vendor, and NATS connectivity plus the
//! stream. Nothing is published or committed, and the stream is not
//! created (the `nats-kv` cursor and `[cluster]` lease buckets are opened as
//! `run` opens them, which creates a missing one).
//!
//! Each row judges what `run` would do: a row that says `FAIL` is something
//! that would make `run` fail (the command then exits non-zero); `WARN` is
//! something `run` works with but the operator should know (a stream whose
//! settings differ from the configuration, a disabled source that would
//! fail). A missing stream is `ok`: `run` creates it, and the row says with
//! which settings, once the account is known to be allowed to.

use std::sync::Arc;
use std::time::Duration;

use crate::checkpoint::Store;
use chrono::{DateTime, Utc};

use crate::config::{Config, Credential};
use crate::daemon::http_client;
use crate::http::RetryPolicy;
use crate::poller::PollerDeps;
use crate::publish::{NatsSink, Sink, StdoutSink, StreamPlan};
use crate::registry::build_all;
use crate::telemetry::Telemetry;
use crate::text::{printable, redact_urls_in};

/// One line of the report.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct CheckRow {
    /// What was checked.
    pub what: String,
    /// The verdict.
    pub result: Verdict,
    /// What was found.
    pub detail: String,
}

/// A row's verdict.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Verdict {
    /// Works as `run` needs it.
    Ok,
    /// `run` works, but something differs from the configuration or is off.
    Warn,
    /// `run` would fail.
    Fail,
}

impl Verdict {
    /// How the table shows it.
    pub fn as_str(self) -> &'static str {
        match self {
            Verdict::Ok => "ok",
            Verdict::Warn => "WARN",
            Verdict::Fail => "FAIL",
        }
    }
}

impl CheckRow {
    fn new(what: impl Into<String>, result: Verdict, detail: impl Into<String>) -> CheckRow {
        CheckRow { what: what.into(), result, detail: detail.into() }
    }

    fn judged(what: impl Into<String>, result: Result<String, String>) -> CheckRow {
        match result {
            Ok(detail) => CheckRow::new(what, Verdict::Ok, detail),
            Err(detail) => CheckRow::new(what, Verdict::Fail, detail),
        }
    }
}

/// Whether no row says `run` would fail.
pub fn passed(rows: &[CheckRow]) -> bool {
    rows.iter().all(|r| r.result != Verdict::Fail)
}

/// Run the checks; `only` limits the sources to one.
pub async fn run(config: &Config, only: Option<&str>) -> Vec<CheckRow> {
    let mut rows = vec![CheckRow::new(
        "config",
        Verdict::Ok,
        format!("{} sources, {} enabled", config.sources.len(), config.enabled_sources().count()),
    )];
    rows.push(check_nats(config).await);
    if let Some(row) = check_state(config).await {
        rows.push(row);
    }
    if let Some(row) = check_cluster(config).await {
        rows.push(row);
    }
    rows.extend(check_sources(config, only).await);
    rows
}

async fn check_nats(config: &Config) -> CheckRow {
    let Some(nats) = &config.nats else {
        return CheckRow::new("nats", Verdict::Ok, "not configured: events go to stdout");
    };
    let result = tokio::time::timeout(Duration::from_secs(10), async {
        let sink = NatsSink::connect(nats, "alertd-check").await.map_err(|e| e.to_string())?;
        sink.plan_stream(nats).await.map_err(|e| e.to_string())
    })
    .await
    .unwrap_or_else(|_| Err(format!("no answer from {} within 10s", nats.url)));
    // `nats.url` displays without its userinfo; a library's error text
    // might quote a URL as given, so it is redacted too.
    let url = &nats.url;
    match result {
        Ok(StreamPlan::Ready(summary)) => CheckRow::new("nats", Verdict::Ok, format!("{url}: {summary}")),
        Ok(StreamPlan::Create(plan)) => CheckRow::new("nats", Verdict::Ok, format!("{url}: {plan}")),
        Ok(StreamPlan::Differs { summary, differences }) => {
            CheckRow::new("nats", Verdict::Warn, format!("{url}: {summary}; {}", differences.join("; ")))
        }
        Err(e) => CheckRow::new("nats", Verdict::Fail, format!("{url}: {}", redact_urls_in(&e))),
    }
}

/// The `nats-kv` cursor bucket: reachable, how many cursors (`None` for SQLite).
async fn check_state(config: &Config) -> Option<CheckRow> {
    if *config.state.backend.get_ref() != crate::config::StateBackend::NatsKv {
        return None;
    }
    let result = tokio::time::timeout(Duration::from_secs(10), async {
        let store = crate::daemon::open_store(config).await.map_err(|e| e.to_string())?;
        let rows = store.list().await.map_err(|e| e.to_string())?;
        Ok::<_, String>(format!("{}: {} cursors", store.describe(), rows.len()))
    })
    .await
    .unwrap_or_else(|_| Err("no answer from the cursor bucket within 10s".into()));
    Some(CheckRow::judged("state", result))
}

/// The lease bucket under `[cluster]`: reachable, and who is alive.
async fn check_cluster(config: &Config) -> Option<CheckRow> {
    if !config.cluster.is_enabled() {
        return None;
    }
    let result = tokio::time::timeout(Duration::from_secs(10), async {
        let table = crate::daemon::open_leases(config).await.map_err(|e| e.to_string())?;
        let members = table.members().await.map_err(|e| e.to_string())?;
        let leases = table.leases().await.map_err(|e| e.to_string())?;
        Ok::<_, String>(format!(
            "bucket {}: {} live instances ({}), {} of {} sources leased; this one would be `{}`",
            config.cluster.bucket,
            members.len(),
            members.join(", "),
            leases.len(),
            config.enabled_sources().count(),
            config.cluster.instance_name()
        ))
    })
    .await
    .unwrap_or_else(|_| Err("no answer from the lease bucket within 10s".into()));
    Some(CheckRow::judged("cluster", result))
}

async fn check_sources(config: &Config, only: Option<&str>) -> Vec<CheckRow> {
    let sources: Vec<_> =
        config.sources.iter().filter(|s| only.is_none_or(|o| o == s.name())).cloned().collect();
    if let Some(name) = only.filter(|_| sources.is_empty()) {
        return vec![CheckRow::new(format!("source {name}"), Verdict::Fail, "no such source")];
    }
    // The pollers are built as the daemon builds them, with a throw-away store.
    let dir = match tempfile::tempdir() {
        Ok(d) => d,
        Err(e) => return vec![CheckRow::new("sources", Verdict::Fail, e.to_string())],
    };
    let deps = match (Store::open(&dir.path().join("check.sqlite")), http_client(None)) {
        (Ok(store), Ok(client)) => PollerDeps {
            store,
            sink: Sink::Stdout(StdoutSink::default()),
            client,
            retry: RetryPolicy::default(),
            telemetry: Arc::new(Telemetry::default()),
            instance: None,
        },
        (Err(e), _) => return vec![CheckRow::new("sources", Verdict::Fail, e.to_string())],
        (_, Err(e)) => return vec![CheckRow::new("sources", Verdict::Fail, e.to_string())],
    };
    // Disabled sources are checked too (their failure is only a warning:
    // `run` does not poll them).
    let disabled: Vec<String> = sources.iter().filter(|s| !s.enabled).map(|s| s.name().to_owned()).collect();
    let mut sources = sources;
    for s in &mut sources {
        s.enabled = true;
    }
    let pollers = match build_all(&sources, &deps) {
        Ok(p) => p,
        Err(e) => return vec![CheckRow::new("sources", Verdict::Fail, e)],
    };
    let sources = &sources;
    let disabled = &disabled;
    let probes = pollers.iter().map(|p| async move {
        let what = format!("source {} ({})", p.name(), p.vendor());
        let failed = if disabled.iter().any(|d| d == p.name()) { Verdict::Warn } else { Verdict::Fail };
        let off = if failed == Verdict::Warn { " (disabled: `run` does not poll it)" } else { "" };
        let expiry = sources
            .iter()
            .find(|s| s.name() == p.name())
            .and_then(|s| Credential::resolve(&s.credential).ok())
            .and_then(|key| key.jwt_expiry())
            .map(|t| expiry_note(t, Utc::now()))
            .unwrap_or_default();
        match p.probe().await {
            Ok(Some(n)) => CheckRow::new(
                what,
                Verdict::Ok,
                format!("authenticated; {n} items in the last overlap{expiry}"),
            ),
            Ok(None) => CheckRow::new(what, Verdict::Ok, format!("credential accepted{expiry}")),
            Err(e) => CheckRow::new(what, failed, format!("{e}{expiry}{off}")),
        }
    });
    futures::future::join_all(probes).await
}

/// `; key expires 2027-01-01 (in 40 days)` for the detail column.
pub fn expiry_note(expires_at: DateTime<Utc>, now: DateTime<Utc>) -> String {
    let date = expires_at.format("%Y-%m-%d");
    let days = (expires_at - now).num_days();
    if expires_at <= now {
        format!("; key EXPIRED on {date}")
    } else {
        format!("; key expires {date} (in {days} days)")
    }
}

/// The report as a table. Details quote what vendors and servers answered
/// (error messages, HTML titles), so every cell goes through
/// [`printable`]: an answer cannot drive the operator's terminal.
pub fn table(rows: &[CheckRow]) -> String {
    let width = rows.iter().map(|r| printable(&r.what).chars().count()).max().unwrap_or(5).max(5);
    let mut out = format!("{:<width$}  {:<6}  DETAIL\n", "CHECK", "RESULT");
    for r in rows {
        out.push_str(&format!(
            "{:<width$}  {:<6}  {}\n",
            printable(&r.what),
            r.result.as_str(),
            printable(&r.detail)
        ));
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_table_does_not_pass_terminal_controls_through() {
        let rows = [CheckRow::new(
            "source acme (canaryguard)",
            Verdict::Fail,
            "vendor said: \x1b]0;pwned\x07\x1b[2Jdenied\u{9b}1m",
        )];
        let shown = table(&rows);
        assert!(!shown.replace('\n', "").chars().any(char::is_control), "{shown:?}");
        assert!(shown.contains("vendor said: ?]0;pwned??[2Jdenied?1m"), "{shown:?}");
    }
}
