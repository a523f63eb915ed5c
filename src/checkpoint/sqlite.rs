//! The SQLite backend: one file per daemon, the embedded default.
//!
//! A page's seen ids and the walk's new position are written in one
//! transaction (WAL, `synchronous = FULL`: the WAL is `fsync`ed at every
//! commit, so a committed cursor survives a crash or a power loss; the
//! poller commits several acknowledged pages in one transaction).

use std::collections::HashSet;
use std::path::{Path, PathBuf};
use std::sync::{Arc, Mutex};
use std::time::Duration;

use backon::{BlockingRetryable, ConstantBuilder};
use chrono::{DateTime, Utc};
use futures::future::BoxFuture;
use rusqlite::{Connection, OptionalExtension, TransactionBehavior, params};

use super::{Backend, CursorRow, Move, Seen, SourceState, StoreError};
use crate::incremental::format_time;

mod revisions;

/// The schema version this code writes (`PRAGMA user_version`). Version 2
/// keeps revisions by item time (`sqlite/revisions.rs`); an alertd that
/// writes version 1 refuses the file rather than lose them.
pub(super) const SCHEMA_VERSION: i64 = 2;

/// A SQLite file shared by all pollers of one daemon.
#[derive(Clone)]
pub(super) struct SqliteStore {
    conn: Arc<Mutex<Connection>>,
    path: PathBuf,
}

/// How long a statement waits for another connection's lock.
const BUSY_TIMEOUT: Duration = Duration::from_secs(5);
/// The pause between attempts to switch a new file to WAL.
const WAL_SWITCH_RETRY: Duration = Duration::from_millis(10);

impl SqliteStore {
    /// Open (creating if needed) the store at `path`, in WAL mode.
    pub(super) fn open(path: &Path) -> Result<SqliteStore, StoreError> {
        let err = |source| StoreError::Sqlite { path: path.display().to_string(), source };
        if let Some(dir) = path.parent().filter(|d| !d.as_os_str().is_empty()) {
            // A missing directory gives SQLite's vague "unable to open";
            // creating it (or failing with the OS's reason) is clearer.
            std::fs::create_dir_all(dir)
                .map_err(|e| err(rusqlite::Error::InvalidPath(format!("{}: {e}", dir.display()).into())))?;
        }
        let mut conn = Connection::open(path).map_err(err)?;
        conn.busy_timeout(BUSY_TIMEOUT).map_err(err)?;
        // SQLite switches a file to WAL under an exclusive lock without
        // calling the busy handler: two processes opening a new store at
        // once (`alertd cursors list` beside a starting daemon) had one
        // fail with "database is locked". Retried for the busy timeout.
        (|| conn.pragma_update(None, "journal_mode", "WAL"))
            .retry(
                ConstantBuilder::default()
                    .with_delay(WAL_SWITCH_RETRY)
                    .with_max_times((BUSY_TIMEOUT.as_millis() / WAL_SWITCH_RETRY.as_millis()) as usize)
                    .with_jitter(),
            )
            .sleep(std::thread::sleep)
            .when(|e| e.sqlite_error_code() == Some(rusqlite::ErrorCode::DatabaseBusy))
            .call()
            .map_err(err)?;
        conn.pragma_update(None, "synchronous", "FULL").map_err(err)?;
        // Event ids are random, so a commit of many pages' ids dirties
        // B-tree pages all over the `seen` table; with SQLite's default
        // 2 MB cache a large commit spills dirty pages to the WAL before it
        // ends and reads them back. A walk stores only the ids of its
        // window's last `overlap` (see `Vendor::forget_before`), so a
        // backfill writes few; 4 MiB (a cap, filled only as used) holds a
        // 64-page commit of them, and keeps the revisit's bookkeeping of
        // 100,000 items under 20 MB (docs/performance.md).
        conn.pragma_update(None, "cache_size", -4_096).map_err(err)?;
        // The schema is read and brought up to date in one write
        // transaction taken at its start (`IMMEDIATE`): two processes
        // opening a new file at once then wait for each other (the busy
        // timeout) instead of one failing with "database is locked" when
        // both read the schema and then both try to write it.
        let tx = conn.transaction_with_behavior(TransactionBehavior::Immediate).map_err(err)?;
        let version: i64 = tx.pragma_query_value(None, "user_version", |r| r.get(0)).map_err(err)?;
        if version > SCHEMA_VERSION {
            return Err(StoreError::TooNew { path: path.display().to_string(), found: version });
        }
        if version < 1 {
            tx.execute_batch(
                "CREATE TABLE IF NOT EXISTS cursors (
                     source     TEXT PRIMARY KEY,
                     vendor     TEXT NOT NULL,
                     watermark  TEXT,
                     walk       TEXT,
                     updated_at TEXT NOT NULL
                 );
                 CREATE TABLE IF NOT EXISTS seen (
                     source    TEXT NOT NULL,
                     event_id  TEXT NOT NULL,
                     item_time TEXT NOT NULL,
                     PRIMARY KEY (source, event_id)
                 ) WITHOUT ROWID;
                 CREATE INDEX IF NOT EXISTS seen_by_time ON seen (source, item_time);
                 PRAGMA user_version = 1;",
            )
            .map_err(err)?;
        }
        revisions::create_tables(&tx).map_err(err)?;
        if version < 2 {
            revisions::migrate_from_v1(&tx).map_err(err)?;
            tx.pragma_update(None, "user_version", 2).map_err(err)?;
        }
        tx.commit().map_err(err)?;
        Ok(SqliteStore { conn: Arc::new(Mutex::new(conn)), path: path.to_owned() })
    }

    /// The file's path.
    pub(super) fn path(&self) -> &Path {
        &self.path
    }

    async fn with<T, F>(&self, f: F) -> Result<T, StoreError>
    where
        T: Send + 'static,
        F: FnOnce(&mut Connection) -> rusqlite::Result<T> + Send + 'static,
    {
        let conn = Arc::clone(&self.conn);
        let path = self.path.display().to_string();
        tokio::task::spawn_blocking(move || {
            let mut guard = conn.lock().map_err(|_| StoreError::Task("store lock poisoned".into()))?;
            f(&mut guard).map_err(|source| StoreError::Sqlite { path, source })
        })
        .await
        .map_err(|e| StoreError::Task(e.to_string()))?
    }

    /// The state of `source` (empty if it never ran).
    pub(super) async fn load(&self, source: &str) -> Result<SourceState, StoreError> {
        let source = source.to_owned();
        self.with(move |c| {
            c.query_row("SELECT vendor, watermark, walk FROM cursors WHERE source = ?1", [&source], |r| {
                Ok(SourceState { vendor: Some(r.get(0)?), watermark: r.get(1)?, walk: r.get(2)? })
            })
            .optional()
            .map(Option::unwrap_or_default)
        })
        .await
    }

    /// Which of `ids` were already delivered for `source`: one query per
    /// page (the ids travel as one JSON array), not one per id.
    pub(super) async fn seen(&self, source: &str, ids: Vec<String>) -> Result<HashSet<String>, StoreError> {
        if ids.is_empty() {
            return Ok(HashSet::new());
        }
        let source = source.to_owned();
        let ids = serde_json::to_string(&ids).unwrap_or_else(|_| "[]".to_owned());
        self.with(move |c| {
            let mut stmt = c.prepare_cached(
                "SELECT event_id FROM seen WHERE source = ?1 AND event_id IN (SELECT value FROM json_each(?2))",
            )?;
            let rows = stmt.query_map(params![source, ids], |r| r.get::<_, String>(0))?;
            rows.collect()
        })
        .await
    }

    /// Commit a delivered page: its seen ids and the cursor's move (the
    /// walk's next position, or the last page's watermark, end of walk and
    /// pruning), in one transaction.
    pub(super) async fn commit(
        &self,
        source: &str,
        vendor: &str,
        change: Move,
        seen: Vec<Seen>,
    ) -> Result<(), StoreError> {
        let (source, vendor) = (source.to_owned(), vendor.to_owned());
        self.with(move |c| {
            let tx = c.transaction()?;
            insert_seen(&tx, &source, &seen)?;
            match change {
                Move::Page { walk } => tx.execute(
                    "INSERT INTO cursors (source, vendor, walk, updated_at) VALUES (?1, ?2, ?3, ?4)
                     ON CONFLICT (source) DO UPDATE SET vendor = ?2, walk = ?3, updated_at = ?4",
                    params![source, vendor, walk, now()],
                )?,
                Move::Last { watermark, prune_before } => {
                    tx.execute(
                        "INSERT INTO cursors (source, vendor, watermark, walk, updated_at) VALUES (?1, ?2, ?3, NULL, ?4)
                         ON CONFLICT (source) DO UPDATE SET vendor = ?2, watermark = ?3, walk = NULL, updated_at = ?4",
                        params![source, vendor, watermark, now()],
                    )?;
                    match prune_before {
                        Some(before) => tx.execute(
                            "DELETE FROM seen WHERE source = ?1 AND item_time < ?2",
                            params![source, format_time(before)],
                        )?,
                        None => 0,
                    }
                }
            };
            tx.commit()
        })
        .await
    }

    /// Every source's cursor, for `alertd cursors list`.
    pub(super) async fn list(&self) -> Result<Vec<CursorRow>, StoreError> {
        self.with(|c| {
            let mut stmt = c.prepare(
                "SELECT c.source, c.vendor, c.watermark, c.walk IS NOT NULL, c.updated_at,
                        (SELECT COUNT(*) FROM seen s WHERE s.source = c.source)
                 FROM cursors c ORDER BY c.source",
            )?;
            let rows = stmt.query_map([], |r| {
                Ok(CursorRow {
                    source: r.get(0)?,
                    vendor: r.get(1)?,
                    watermark: r.get(2)?,
                    walk_in_progress: r.get(3)?,
                    updated_at: r.get(4)?,
                    seen: r.get::<_, i64>(5)? as u64,
                    written_by: None,
                })
            })?;
            rows.collect()
        })
        .await
    }

    /// Forget `source`'s cursor, so its next poll starts from its initial
    /// lookback, or from `since` if given. Returns whether it had one.
    pub(super) async fn reset(
        &self,
        source: &str,
        vendor: &str,
        since: Option<DateTime<Utc>>,
    ) -> Result<bool, StoreError> {
        let (source, vendor) = (source.to_owned(), vendor.to_owned());
        self.with(move |c| {
            let tx = c.transaction()?;
            let had = tx.execute("DELETE FROM cursors WHERE source = ?1", [&source])? > 0;
            tx.execute("DELETE FROM seen WHERE source = ?1", [&source])?;
            revisions::forget(&tx, &source)?;
            if let Some(since) = since {
                tx.execute(
                    "INSERT INTO cursors (source, vendor, watermark, walk, updated_at) VALUES (?1, ?2, ?3, NULL, ?4)",
                    params![source, vendor, format_time(since), now()],
                )?;
            }
            tx.commit()?;
            Ok(had)
        })
        .await
    }
}

fn insert_seen(tx: &rusqlite::Transaction<'_>, source: &str, seen: &[Seen]) -> rusqlite::Result<()> {
    let mut stmt =
        tx.prepare_cached("INSERT OR IGNORE INTO seen (source, event_id, item_time) VALUES (?1, ?2, ?3)")?;
    for s in seen {
        stmt.execute(params![source, s.event_id, format_time(s.item_time)])?;
    }
    Ok(())
}

fn now() -> String {
    format_time(Utc::now())
}

impl Backend for SqliteStore {
    fn describe(&self) -> String {
        self.path().display().to_string()
    }

    fn load<'a>(&'a self, source: &'a str) -> BoxFuture<'a, Result<SourceState, StoreError>> {
        Box::pin(SqliteStore::load(self, source))
    }

    fn seen<'a>(
        &'a self,
        source: &'a str,
        ids: Vec<String>,
    ) -> BoxFuture<'a, Result<HashSet<String>, StoreError>> {
        Box::pin(SqliteStore::seen(self, source, ids))
    }

    fn commit<'a>(
        &'a self,
        source: &'a str,
        vendor: &'a str,
        change: Move,
        seen: Vec<Seen>,
    ) -> BoxFuture<'a, Result<(), StoreError>> {
        Box::pin(SqliteStore::commit(self, source, vendor, change, seen))
    }

    fn list(&self) -> BoxFuture<'_, Result<Vec<CursorRow>, StoreError>> {
        Box::pin(SqliteStore::list(self))
    }

    fn reset<'a>(
        &'a self,
        source: &'a str,
        vendor: &'a str,
        since: Option<DateTime<Utc>>,
    ) -> BoxFuture<'a, Result<bool, StoreError>> {
        Box::pin(SqliteStore::reset(self, source, vendor, since))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn processes_opening_a_new_store_at_once_all_open_it() {
        // A daemon starting while `alertd cursors list` (or the shutdown
        // tests' cursor reads) opened the new file failed with "database
        // is locked": once in the WAL switch (no busy handler), once in two
        // deferred schema transactions upgrading at once. Before the fix,
        // about one open in seven of such a race failed.
        for round in 0..60 {
            let dir = tempfile::tempdir().unwrap();
            let path = dir.path().join("state.sqlite");
            let start = Arc::new(std::sync::Barrier::new(3));
            let opening: Vec<_> = (0..3)
                .map(|_| {
                    let (path, start) = (path.clone(), start.clone());
                    std::thread::spawn(move || {
                        start.wait();
                        SqliteStore::open(&path).map(|_| ())
                    })
                })
                .collect();
            for open in opening {
                open.join().unwrap().unwrap_or_else(|e| panic!("round {round}: {e}"));
            }
        }
    }

    #[tokio::test]
    async fn sqlite_passes_the_backend_suite() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("sub/state.sqlite");
        let store = super::super::Store::open(&path).unwrap();
        let reopened = super::super::Store::open(&path).unwrap();
        super::super::conformance::run(&store, &reopened).await;
    }

    #[tokio::test]
    async fn a_newer_schema_is_refused() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("s.sqlite");
        Connection::open(&path).unwrap().pragma_update(None, "user_version", 99).unwrap();
        assert!(matches!(SqliteStore::open(&path), Err(StoreError::TooNew { found: 99, .. })));
    }
}
