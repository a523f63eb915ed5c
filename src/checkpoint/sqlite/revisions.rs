//! The SQLite side of revisits: tables `revisions` (per source and item, the
//! event id last published and the item's time) and `revisits` (per source,
//! an unfinished revisit walk and when the revisit started). Added beside
//! the version-1 schema with `CREATE TABLE IF NOT EXISTS`, so an older
//! alertd still opens the file.

use std::collections::HashMap;

use chrono::{DateTime, Utc};
use futures::future::BoxFuture;
use rusqlite::{Connection, OptionalExtension, params};

use super::SqliteStore;
use crate::checkpoint::StoreError;
use crate::checkpoint::revisions::{Revision, RevisionBackend, RevisitMove, RevisitState};
use crate::incremental::{format_time, parse_time};

/// Create the revisit tables if they are missing.
pub(super) fn create_tables(conn: &Connection) -> rusqlite::Result<()> {
    conn.execute_batch(
        "CREATE TABLE IF NOT EXISTS revisions (
             source    TEXT NOT NULL,
             native_id TEXT NOT NULL,
             event_id  TEXT NOT NULL,
             item_time TEXT NOT NULL,
             PRIMARY KEY (source, native_id)
         ) WITHOUT ROWID;
         CREATE INDEX IF NOT EXISTS revisions_by_time ON revisions (source, item_time);
         CREATE TABLE IF NOT EXISTS revisits (
             source     TEXT PRIMARY KEY,
             walk       TEXT,
             started_at TEXT,
             updated_at TEXT NOT NULL
         );",
    )
}

fn upsert(tx: &rusqlite::Transaction<'_>, source: &str, revisions: &[Revision]) -> rusqlite::Result<()> {
    let mut stmt = tx.prepare_cached(
        "INSERT INTO revisions (source, native_id, event_id, item_time) VALUES (?1, ?2, ?3, ?4)
         ON CONFLICT (source, native_id) DO UPDATE SET event_id = ?3, item_time = ?4",
    )?;
    for r in revisions {
        stmt.execute(params![source, r.native_id, r.event_id, format_time(r.item_time)])?;
    }
    Ok(())
}

impl SqliteStore {
    async fn revisit_state_of(&self, source: &str) -> Result<RevisitState, StoreError> {
        let source = source.to_owned();
        self.with(move |c| {
            c.query_row("SELECT walk, started_at FROM revisits WHERE source = ?1", [&source], |r| {
                let started: Option<String> = r.get(1)?;
                Ok(RevisitState { walk: r.get(0)?, started_at: started.as_deref().and_then(parse_time) })
            })
            .optional()
            .map(Option::unwrap_or_default)
        })
        .await
    }

    async fn published_of(
        &self,
        source: &str,
        native_ids: Vec<String>,
    ) -> Result<HashMap<String, String>, StoreError> {
        if native_ids.is_empty() {
            return Ok(HashMap::new());
        }
        let source = source.to_owned();
        let ids = serde_json::to_string(&native_ids).unwrap_or_else(|_| "[]".to_owned());
        self.with(move |c| {
            let mut stmt = c.prepare_cached(
                "SELECT native_id, event_id FROM revisions
                 WHERE source = ?1 AND native_id IN (SELECT value FROM json_each(?2))",
            )?;
            let rows = stmt.query_map(params![source, ids], |r| Ok((r.get(0)?, r.get(1)?)))?;
            rows.collect()
        })
        .await
    }

    async fn record_of(&self, source: &str, revisions: Vec<Revision>) -> Result<(), StoreError> {
        if revisions.is_empty() {
            return Ok(());
        }
        let source = source.to_owned();
        self.with(move |c| {
            let tx = c.transaction()?;
            upsert(&tx, &source, &revisions)?;
            tx.commit()
        })
        .await
    }

    async fn commit_revisit_of(
        &self,
        source: &str,
        change: RevisitMove,
        revisions: Vec<Revision>,
    ) -> Result<(), StoreError> {
        let source = source.to_owned();
        self.with(move |c| {
            let tx = c.transaction()?;
            upsert(&tx, &source, &revisions)?;
            let now = format_time(Utc::now());
            let (walk, started_at, prune): (Option<String>, DateTime<Utc>, Option<DateTime<Utc>>) =
                match change {
                    RevisitMove::Page { walk, started_at } => (Some(walk), started_at, None),
                    RevisitMove::Last { started_at, prune_before } => (None, started_at, Some(prune_before)),
                };
            tx.execute(
                "INSERT INTO revisits (source, walk, started_at, updated_at) VALUES (?1, ?2, ?3, ?4)
                 ON CONFLICT (source) DO UPDATE SET walk = ?2, started_at = ?3, updated_at = ?4",
                params![source, walk, format_time(started_at), now],
            )?;
            if let Some(before) = prune {
                tx.execute(
                    "DELETE FROM revisions WHERE source = ?1 AND item_time < ?2",
                    params![source, format_time(before)],
                )?;
            }
            tx.commit()
        })
        .await
    }

    async fn revision_count_of(&self, source: &str) -> Result<u64, StoreError> {
        let source = source.to_owned();
        self.with(move |c| {
            c.query_row("SELECT COUNT(*) FROM revisions WHERE source = ?1", [&source], |r| r.get::<_, i64>(0))
                .map(|n| n.max(0) as u64)
        })
        .await
    }
}

/// Forget `source`'s revisions and revisit, inside `alertd cursors reset`'s
/// transaction.
pub(super) fn forget(tx: &rusqlite::Transaction<'_>, source: &str) -> rusqlite::Result<()> {
    tx.execute("DELETE FROM revisions WHERE source = ?1", [source])?;
    tx.execute("DELETE FROM revisits WHERE source = ?1", [source])?;
    Ok(())
}

impl RevisionBackend for SqliteStore {
    fn revisit_state<'a>(&'a self, source: &'a str) -> BoxFuture<'a, Result<RevisitState, StoreError>> {
        Box::pin(self.revisit_state_of(source))
    }

    fn published<'a>(
        &'a self,
        source: &'a str,
        native_ids: Vec<String>,
    ) -> BoxFuture<'a, Result<HashMap<String, String>, StoreError>> {
        Box::pin(self.published_of(source, native_ids))
    }

    fn record<'a>(
        &'a self,
        source: &'a str,
        revisions: Vec<Revision>,
    ) -> BoxFuture<'a, Result<(), StoreError>> {
        Box::pin(self.record_of(source, revisions))
    }

    fn commit_revisit<'a>(
        &'a self,
        source: &'a str,
        change: RevisitMove,
        revisions: Vec<Revision>,
    ) -> BoxFuture<'a, Result<(), StoreError>> {
        Box::pin(self.commit_revisit_of(source, change, revisions))
    }

    fn revision_count<'a>(&'a self, source: &'a str) -> BoxFuture<'a, Result<u64, StoreError>> {
        Box::pin(self.revision_count_of(source))
    }
}

#[cfg(test)]
mod tests {
    #[tokio::test]
    async fn sqlite_passes_the_revision_suite() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("state.sqlite");
        let store = crate::checkpoint::Store::open(&path).unwrap();
        let reopened = crate::checkpoint::Store::open(&path).unwrap();
        crate::checkpoint::revision_conformance::run(&store, &reopened).await;
    }
}
