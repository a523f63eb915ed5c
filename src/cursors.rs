//! `alertd cursors list|reset`: what each source's cursor holds, and
//! forgetting it so the next poll starts over (or from a given time).

use chrono::{DateTime, Utc};

use crate::checkpoint::{CursorRow, StoreError};
use crate::config::Config;
use crate::daemon::{self, DaemonError};

/// Why a cursor command failed.
#[derive(Debug, thiserror::Error)]
pub enum CursorsError {
    /// The store could not be opened.
    #[error(transparent)]
    Open(#[from] DaemonError),
    /// The store refused.
    #[error(transparent)]
    Store(#[from] StoreError),
    /// `reset` named a source the configuration does not have.
    #[error("no source named `{0}` in the configuration")]
    UnknownSource(String),
}

/// The table of `alertd cursors list`: one line per source's cursor.
pub async fn list(config: &Config) -> Result<String, CursorsError> {
    let store = daemon::open_store(config).await?;
    let rows = store.list().await?;
    let mut revisions = std::collections::HashMap::new();
    for row in &rows {
        revisions.insert(row.source.clone(), store.revision_count(&row.source).await?);
    }
    Ok(table(&rows, &revisions))
}

/// `revisions`: per source, the items whose last published revision is
/// kept for revisits.
fn table(rows: &[CursorRow], revisions: &std::collections::HashMap<String, u64>) -> String {
    // Shared (nats-kv) cursors say which instance wrote them last.
    let shared = rows.iter().any(|r| r.written_by.is_some());
    let mut out = format!(
        "{:<24} {:<14} {:<30} {:<6} {:>6} {:>9}  {:<27}{}\n",
        "SOURCE",
        "VENDOR",
        "WATERMARK",
        "WALK",
        "SEEN",
        "REVISIONS",
        "UPDATED",
        if shared { "  WRITTEN BY" } else { "" }
    );
    for row in rows {
        out.push_str(&format!(
            "{:<24} {:<14} {:<30} {:<6} {:>6} {:>9}  {:<27}{}\n",
            row.source,
            row.vendor,
            row.watermark.as_deref().unwrap_or("-"),
            if row.walk_in_progress { "open" } else { "-" },
            row.seen,
            revisions.get(&row.source).copied().unwrap_or(0),
            row.updated_at,
            row.written_by.as_ref().map(|w| format!("  {w}")).unwrap_or_default()
        ));
    }
    out
}

/// Forget `source`'s cursor (`alertd cursors reset`), so its next poll
/// starts from its initial lookback, or from `since`. Returns what happened,
/// in a sentence.
pub async fn reset(
    config: &Config,
    source: &str,
    since: Option<DateTime<Utc>>,
) -> Result<String, CursorsError> {
    let vendor = config
        .sources
        .iter()
        .find(|s| s.name() == source)
        .map(|s| s.vendor().to_owned())
        .ok_or_else(|| CursorsError::UnknownSource(source.to_owned()))?;
    let store = daemon::open_store(config).await?;
    let had = store.reset(source, &vendor, since).await?;
    Ok(match (had, since) {
        (_, Some(t)) => format!("{source}: cursor set; the next poll starts from {t}"),
        (true, None) => format!("{source}: cursor removed; the next poll starts from its initial lookback"),
        (false, None) => format!("{source}: had no cursor"),
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_table_names_the_writer_only_for_shared_cursors() {
        let row = |written_by: Option<&str>| CursorRow {
            source: "acme".into(),
            vendor: "v".into(),
            watermark: None,
            walk_in_progress: true,
            seen: 3,
            updated_at: "2026-01-01T00:00:00.000000Z".into(),
            written_by: written_by.map(str::to_owned),
        };
        let revisions = std::collections::HashMap::from([("acme".to_owned(), 7)]);
        let local = table(&[row(None)], &revisions);
        assert!(
            local.contains("REVISIONS") && local.lines().nth(1).is_some_and(|l| l.contains(" 7 ")),
            "{local}"
        );
        assert!(!local.contains("WRITTEN BY"), "{local}");
        assert!(local.lines().nth(1).is_some_and(|l| l.starts_with("acme") && l.contains("open")), "{local}");
        let shared = table(&[row(Some("node-2"))], &revisions);
        assert!(shared.contains("WRITTEN BY") && shared.contains("node-2"), "{shared}");
    }
}
