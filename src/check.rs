//! `alertd check [SOURCE]`: does the configuration work, end to end?
//!
//! Config (already loaded), each source's credential and a cheap
//! authenticated request to its vendor, and NATS connectivity plus the
//! stream. Nothing is published or committed.

use std::sync::Arc;
use std::time::Duration;

use crate::checkpoint::Store;
use chrono::{DateTime, Utc};

use crate::config::{Config, Credential};
use crate::daemon::http_client;
use crate::http::RetryPolicy;
use crate::poller::PollerDeps;
use crate::publish::{NatsSink, Sink, StdoutSink};
use crate::registry::build_all;
use crate::telemetry::Telemetry;
use crate::text::{printable, redact_urls_in};

/// One line of the report.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct CheckRow {
    /// What was checked.
    pub what: String,
    /// Whether it works.
    pub ok: bool,
    /// What was found.
    pub detail: String,
}

/// Run the checks; `only` limits the sources to one.
pub async fn run(config: &Config, only: Option<&str>) -> Vec<CheckRow> {
    let mut rows = vec![CheckRow {
        what: "config".into(),
        ok: true,
        detail: format!("{} sources, {} enabled", config.sources.len(), config.enabled_sources().count()),
    }];
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
        return CheckRow {
            what: "nats".into(),
            ok: true,
            detail: "not configured: events go to stdout".into(),
        };
    };
    let result = tokio::time::timeout(Duration::from_secs(10), async {
        let sink = NatsSink::connect(nats, "alertd-check").await.map_err(|e| e.to_string())?;
        sink.stream_summary(&nats.stream).await.map_err(|e| e.to_string())
    })
    .await
    .unwrap_or_else(|_| Err(format!("no answer from {} within 10s", nats.url)));
    // `nats.url` displays without its userinfo; a library's error text
    // might quote a URL as given, so it is redacted too.
    match result {
        Ok(summary) => CheckRow { what: "nats".into(), ok: true, detail: format!("{}: {summary}", nats.url) },
        Err(e) => CheckRow { what: "nats".into(), ok: false, detail: redact_urls_in(&e) },
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
    Some(match result {
        Ok(detail) => CheckRow { what: "state".into(), ok: true, detail },
        Err(detail) => CheckRow { what: "state".into(), ok: false, detail },
    })
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
    Some(match result {
        Ok(detail) => CheckRow { what: "cluster".into(), ok: true, detail },
        Err(detail) => CheckRow { what: "cluster".into(), ok: false, detail },
    })
}

async fn check_sources(config: &Config, only: Option<&str>) -> Vec<CheckRow> {
    let sources: Vec<_> =
        config.sources.iter().filter(|s| only.is_none_or(|o| o == s.name())).cloned().collect();
    if let Some(name) = only.filter(|_| sources.is_empty()) {
        return vec![CheckRow { what: format!("source {name}"), ok: false, detail: "no such source".into() }];
    }
    // The pollers are built as the daemon builds them, with a throw-away store.
    let dir = match tempfile::tempdir() {
        Ok(d) => d,
        Err(e) => return vec![CheckRow { what: "sources".into(), ok: false, detail: e.to_string() }],
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
        (Err(e), _) => return vec![CheckRow { what: "sources".into(), ok: false, detail: e.to_string() }],
        (_, Err(e)) => return vec![CheckRow { what: "sources".into(), ok: false, detail: e.to_string() }],
    };
    let mut sources = sources;
    for s in &mut sources {
        s.enabled = true;
    }
    let pollers = match build_all(&sources, &deps) {
        Ok(p) => p,
        Err(e) => return vec![CheckRow { what: "sources".into(), ok: false, detail: e }],
    };
    let sources = &sources;
    let probes = pollers.iter().map(|p| async move {
        let what = format!("source {} ({})", p.name(), p.vendor());
        let expiry = sources
            .iter()
            .find(|s| s.name() == p.name())
            .and_then(|s| Credential::resolve(&s.credential).ok())
            .and_then(|key| key.jwt_expiry())
            .map(|t| expiry_note(t, Utc::now()))
            .unwrap_or_default();
        match p.probe().await {
            Ok(Some(n)) => CheckRow {
                what,
                ok: true,
                detail: format!("authenticated; {n} items in the last overlap{expiry}"),
            },
            Ok(None) => CheckRow { what, ok: true, detail: format!("credential accepted{expiry}") },
            Err(e) => CheckRow { what, ok: false, detail: format!("{e}{expiry}") },
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
            if r.ok { "ok" } else { "FAIL" },
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
        let rows = [CheckRow {
            what: "source acme (canaryguard)".into(),
            ok: false,
            detail: "vendor said: \x1b]0;pwned\x07\x1b[2Jdenied\u{9b}1m".into(),
        }];
        let shown = table(&rows);
        assert!(!shown.replace('\n', "").chars().any(char::is_control), "{shown:?}");
        assert!(shown.contains("vendor said: ?]0;pwned??[2Jdenied?1m"), "{shown:?}");
    }
}
