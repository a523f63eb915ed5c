//! `alertd cluster status`: who is alive and who holds which source, read
//! from the lease bucket (any instance, or an operator's machine, can ask).

use std::fmt::Write as _;

use chrono::{DateTime, Utc};

use super::LeaseError;
use super::leases::{LeaseTable, LeaseView, assign};

/// One configured source and its lease.
#[derive(Debug, Clone)]
pub struct SourceRow {
    /// Source name.
    pub source: String,
    /// Vendor key.
    pub vendor: String,
    /// The lease, if anyone holds it.
    pub lease: Option<LeaseView>,
    /// The live instance the assignment gives it to.
    pub preferred: Option<String>,
}

/// The cluster as the lease bucket shows it.
#[derive(Debug, Clone)]
pub struct ClusterStatus {
    /// Live instances (heartbeat within one TTL).
    pub members: Vec<String>,
    /// Every enabled source of the config, in config order.
    pub sources: Vec<SourceRow>,
    /// Leases of sources that are not in this config.
    pub foreign: Vec<LeaseView>,
}

/// Read the bucket. `sources` are the enabled sources `(name, vendor)`.
pub async fn read(table: &LeaseTable, sources: &[(String, String)]) -> Result<ClusterStatus, LeaseError> {
    let members = table.members().await?;
    let mut leases = table.leases().await?;
    let names: Vec<String> = sources.iter().map(|(s, _)| s.clone()).collect();
    let owners = assign(&names, &members);
    let rows = sources
        .iter()
        .map(|(source, vendor)| {
            let lease = leases.iter().position(|l| &l.source == source).map(|i| leases.remove(i));
            SourceRow {
                source: source.clone(),
                vendor: vendor.clone(),
                lease,
                preferred: owners.get(source).cloned(),
            }
        })
        .collect();
    Ok(ClusterStatus { members, sources: rows, foreign: leases })
}

/// The status as the tables `alertd cluster status` prints.
pub fn render(status: &ClusterStatus, now: DateTime<Utc>) -> String {
    let mut out = String::new();
    let _ = writeln!(out, "{:<24} {:>7}", "INSTANCE", "SOURCES");
    for m in &status.members {
        let held = status
            .sources
            .iter()
            .filter(|s| s.lease.as_ref().is_some_and(|l| &l.record.instance == m))
            .count();
        let _ = writeln!(out, "{m:<24} {held:>7}");
    }
    let _ = writeln!(out);
    let _ = writeln!(
        out,
        "{:<24} {:<14} {:<24} {:>8} {:>10} {:>9}  PREFERRED",
        "SOURCE", "VENDOR", "HOLDER", "EPOCH", "HELD FOR", "RENEWED"
    );
    for s in &status.sources {
        let (holder, epoch, held, renewed) = match &s.lease {
            Some(l) => (
                l.record.instance.clone(),
                l.epoch.to_string(),
                ago(now - l.record.acquired_at),
                format!("{} ago", ago(now - l.record.renewed_at)),
            ),
            None => ("(nobody)".to_owned(), "-".to_owned(), "-".to_owned(), "-".to_owned()),
        };
        let _ = writeln!(
            out,
            "{:<24} {:<14} {holder:<24} {epoch:>8} {held:>10} {renewed:>9}  {}",
            s.source,
            s.vendor,
            s.preferred.as_deref().unwrap_or("-")
        );
    }
    for l in &status.foreign {
        let _ = writeln!(
            out,
            "{:<24} {:<14} {:<24} {:>8}  (not in this config)",
            l.source, "?", l.record.instance, l.epoch
        );
    }
    out
}

fn ago(d: chrono::Duration) -> String {
    let s = d.num_seconds().max(0);
    match s {
        0..120 => format!("{s}s"),
        120..7200 => format!("{}m", s / 60),
        _ => format!("{}h", s / 3600),
    }
}
