//! The SQLite side of revisits: tables `item_revisions` (per source and
//! item, the event id last published, keyed by the item's time and native
//! id) and `revisits` (per source, an unfinished revisit walk and when the
//! revisit started).
//!
//! `item_revisions` is clustered by time: a walk goes through its window in
//! time order, so recording what it published appends to the B-tree, where
//! a table keyed by native id (schema version 1's `revisions`, which
//! version 2 migrates) took each commit's rows all over the table and
//! rewrote most of its pages per commit: about 13 % of a Red Canary
//! backfill's CPU (docs/performance.md). A revisit looks an item up by its
//! time and id; an item whose time changed is not found and is published
//! again (the vendors' item times are their creation or confirmation
//! times, which do not change).

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
        "CREATE TABLE IF NOT EXISTS item_revisions (
             source    TEXT NOT NULL,
             item_time TEXT NOT NULL,
             native_id TEXT NOT NULL,
             event_id  TEXT NOT NULL,
             PRIMARY KEY (source, item_time, native_id)
         ) WITHOUT ROWID;
         CREATE TABLE IF NOT EXISTS revisits (
             source     TEXT PRIMARY KEY,
             walk       TEXT,
             started_at TEXT,
             updated_at TEXT NOT NULL
         );",
    )
}

/// Schema version 1 kept revisions keyed by native id (table `revisions`,
/// index `revisions_by_time`): move them into `item_revisions`, in the
/// caller's transaction.
pub(super) fn migrate_from_v1(tx: &rusqlite::Transaction<'_>) -> rusqlite::Result<()> {
    let old: bool = tx.query_row(
        "SELECT EXISTS (SELECT 1 FROM sqlite_master WHERE type = 'table' AND name = 'revisions')",
        [],
        |r| r.get(0),
    )?;
    if old {
        tx.execute_batch(
            "INSERT OR REPLACE INTO item_revisions (source, item_time, native_id, event_id)
                 SELECT source, item_time, native_id, event_id FROM revisions ORDER BY source, item_time;
             DROP TABLE revisions;",
        )?;
    }
    Ok(())
}

fn upsert(tx: &rusqlite::Transaction<'_>, source: &str, revisions: &[Revision]) -> rusqlite::Result<()> {
    let mut stmt = tx.prepare_cached(
        "INSERT INTO item_revisions (source, item_time, native_id, event_id) VALUES (?1, ?2, ?3, ?4)
         ON CONFLICT (source, item_time, native_id) DO UPDATE SET event_id = ?4",
    )?;
    // In key order: vendors list items newest first, so a batch in its own
    // order inserts each row before the last one, and SQLite splits B-tree
    // pages far more often than for rows in ascending order (a Red Canary
    // backfill: `balance` −40 %, this function −11 %, 0.8 % of the whole
    // run's instructions; docs/performance.md). The sort is stable: an item
    // twice in one batch keeps the later event id.
    let mut order: Vec<&Revision> = revisions.iter().collect();
    order.sort_by(|a, b| (a.item_time, &a.native_id).cmp(&(b.item_time, &b.native_id)));
    for r in order {
        stmt.execute(params![source, format_time(r.item_time), r.native_id, r.event_id])?;
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
        items: Vec<(String, DateTime<Utc>)>,
    ) -> Result<HashMap<String, String>, StoreError> {
        if items.is_empty() {
            return Ok(HashMap::new());
        }
        let source = source.to_owned();
        self.with(move |c| {
            let mut stmt = c.prepare_cached(
                "SELECT event_id FROM item_revisions WHERE source = ?1 AND item_time = ?2 AND native_id = ?3",
            )?;
            let mut found = HashMap::new();
            for (native_id, item_time) in items {
                let event_id: Option<String> = stmt
                    .query_row(params![source, format_time(item_time), native_id], |r| r.get(0))
                    .optional()?;
                if let Some(event_id) = event_id {
                    found.insert(native_id, event_id);
                }
            }
            Ok(found)
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
                    "DELETE FROM item_revisions WHERE source = ?1 AND item_time < ?2",
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
            c.query_row("SELECT COUNT(*) FROM item_revisions WHERE source = ?1", [&source], |r| {
                r.get::<_, i64>(0)
            })
            .map(|n| n.max(0) as u64)
        })
        .await
    }
}

/// Forget `source`'s revisions and revisit, inside `alertd cursors reset`'s
/// transaction.
pub(super) fn forget(tx: &rusqlite::Transaction<'_>, source: &str) -> rusqlite::Result<()> {
    tx.execute("DELETE FROM item_revisions WHERE source = ?1", [source])?;
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
        items: Vec<(String, DateTime<Utc>)>,
    ) -> BoxFuture<'a, Result<HashMap<String, String>, StoreError>> {
        Box::pin(self.published_of(source, items))
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
    use super::*;

    /// A version-1 file's revisions (keyed by native id) are moved into
    /// `item_revisions` on open, and found there by item time and id.
    #[tokio::test]
    async fn a_version_1_file_keeps_its_revisions() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("v1.sqlite");
        let t = |s: &str| chrono::DateTime::parse_from_rfc3339(s).unwrap().to_utc();
        {
            let c = Connection::open(&path).unwrap();
            c.execute_batch(
                "CREATE TABLE cursors (source TEXT PRIMARY KEY, vendor TEXT NOT NULL, watermark TEXT,
                     walk TEXT, updated_at TEXT NOT NULL);
                 CREATE TABLE seen (source TEXT NOT NULL, event_id TEXT NOT NULL, item_time TEXT NOT NULL,
                     PRIMARY KEY (source, event_id)) WITHOUT ROWID;
                 CREATE TABLE revisions (source TEXT NOT NULL, native_id TEXT NOT NULL, event_id TEXT NOT NULL,
                     item_time TEXT NOT NULL, PRIMARY KEY (source, native_id)) WITHOUT ROWID;
                 CREATE INDEX revisions_by_time ON revisions (source, item_time);
                 INSERT INTO cursors VALUES ('acme', 'red_canary', '2026-03-20T00:00:00.000000Z', NULL, 'x');
                 INSERT INTO revisions VALUES ('acme', '17', 'e17', '2026-03-19T12:00:00.000000Z');
                 INSERT INTO revisions VALUES ('acme', '18', 'e18', '2026-03-19T13:00:00.000000Z');
                 INSERT INTO revisions VALUES ('other', '17', 'o17', '2026-03-01T00:00:00.000000Z');
                 PRAGMA user_version = 1;",
            )
            .unwrap();
        }
        let store = crate::checkpoint::Store::open(&path).unwrap();
        let found = store
            .published_revisions(
                "acme",
                vec![
                    ("17".into(), t("2026-03-19T12:00:00Z")),
                    ("18".into(), t("2026-03-19T13:00:00Z")),
                    // Its time changed: not the item recorded.
                    ("18".into(), t("2026-03-19T14:00:00Z")),
                ],
            )
            .await
            .unwrap();
        assert_eq!(found.len(), 2, "{found:?}");
        assert_eq!(found.get("17").map(String::as_str), Some("e17"));
        assert_eq!(store.revision_count("acme").await.unwrap(), 2);
        assert_eq!(store.revision_count("other").await.unwrap(), 1);
        assert!(store.load("acme").await.unwrap().watermark.is_some(), "the cursor is untouched");
        let c = Connection::open(&path).unwrap();
        let version: i64 = c.pragma_query_value(None, "user_version", |r| r.get(0)).unwrap();
        assert_eq!(version, 2);
        let old: i64 = c
            .query_row(
                "SELECT COUNT(*) FROM sqlite_master WHERE name IN ('revisions', 'revisions_by_time')",
                [],
                |r| r.get(0),
            )
            .unwrap();
        assert_eq!(old, 0, "the version-1 table and index are gone");
        drop(c);
        // Opening again migrates nothing twice.
        let again = crate::checkpoint::Store::open(&path).unwrap();
        assert_eq!(again.revision_count("acme").await.unwrap(), 2);
    }

    #[tokio::test]
    async fn sqlite_passes_the_revision_suite() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("state.sqlite");
        let store = crate::checkpoint::Store::open(&path).unwrap();
        let reopened = crate::checkpoint::Store::open(&path).unwrap();
        crate::checkpoint::revision_conformance::run(&store, &reopened).await;
    }
}
