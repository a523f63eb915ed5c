//! The checkpoint store: where each source's cursor lives, behind one
//! interface with two backends.
//!
//! - [`sqlite`]: a local file, the embedded default (one daemon).
//! - [`kv`]: a NATS JetStream KV bucket (`[state] backend = "nats-kv"`),
//!   shared by many daemons, replicated when the NATS cluster is, and
//!   written with compare-and-set so two writers can never both advance a
//!   cursor from the same state.
//!
//! Per source it keeps the watermark of the last complete walk, the state of
//! an unfinished walk (its plan and the position after the last committed
//! page), and the ids of events delivered inside the overlap window. A page's
//! seen ids and the walk's new position are written in one transaction, and
//! the poller calls it only after every event of the page has its PubAck:
//! a crash at any point leaves a state that re-fetches, never one that skips.
//! Both backends keep that rule: SQLite with a transaction, the KV bucket
//! with one cursor value per source replaced as a whole (the page's ids are
//! written first, to a key the cursor then lists).
//!
//! Times are stored as fixed-width RFC 3339 UTC text (see
//! [`crate::incremental::format_time`]), never as floats.

#[doc(hidden)]
pub mod conformance;
mod kv;
pub(crate) use kv::open_bucket;
#[doc(hidden)]
pub mod revision_conformance;
mod revisions;
pub use revisions::{Revision, RevisitMove, RevisitState};
mod sqlite;

use std::collections::HashSet;
use std::path::Path;
use std::sync::Arc;

use chrono::{DateTime, Utc};
use futures::future::BoxFuture;

use kv::KvStore;
use sqlite::{SCHEMA_VERSION, SqliteStore};

/// Why the store failed.
#[derive(Debug, thiserror::Error)]
pub enum StoreError {
    /// SQLite refused.
    #[error("checkpoint store {path}: {source}")]
    Sqlite {
        /// The database file.
        path: String,
        /// SQLite's error.
        #[source]
        source: rusqlite::Error,
    },
    /// The file was written by a newer alertd.
    #[error(
        "checkpoint store {path} has schema version {found}; this alertd understands up to {SCHEMA_VERSION}"
    )]
    TooNew {
        /// The database file.
        path: String,
        /// Its version.
        found: i64,
    },
    /// The blocking task died.
    #[error("checkpoint store task failed: {0}")]
    Task(String),
    /// The KV bucket could not be opened, read or written.
    #[error("checkpoint bucket {bucket}: {message}")]
    Kv {
        /// The bucket.
        bucket: String,
        /// What failed.
        message: String,
    },
    /// Another writer changed the cursor since this daemon read it: the
    /// page is delivered (acked) but this daemon's cursor move is refused,
    /// and the next poll starts from what the other writer left.
    #[error(
        "checkpoint bucket {bucket}: the cursor of source {source_name} was changed by another writer (expected revision {expected}); not overwriting it"
    )]
    Conflict {
        /// The bucket.
        bucket: String,
        /// The source.
        source_name: String,
        /// The revision this daemon read.
        expected: u64,
    },
}

impl StoreError {
    /// A bounded label for metrics and logs.
    pub fn code(&self) -> &'static str {
        match self {
            StoreError::Conflict { .. } => "store_conflict",
            _ => "store",
        }
    }
}

/// One source's stored state.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct SourceState {
    /// The vendor that wrote it.
    pub vendor: Option<String>,
    /// Watermark of the last complete walk.
    pub watermark: Option<String>,
    /// An unfinished walk (JSON), to resume.
    pub walk: Option<String>,
}

/// An event id delivered, with the time its vendor filter compares.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Seen {
    /// The event id.
    pub event_id: String,
    /// The item's time, for pruning.
    pub item_time: DateTime<Utc>,
}

/// A row of `alertd cursors list`.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct CursorRow {
    /// Source name.
    pub source: String,
    /// Vendor key.
    pub vendor: String,
    /// Watermark.
    pub watermark: Option<String>,
    /// Whether a walk is unfinished.
    pub walk_in_progress: bool,
    /// Ids remembered in the overlap window.
    pub seen: u64,
    /// Last write.
    pub updated_at: String,
    /// The instance that wrote it (shared backends only).
    pub written_by: Option<String>,
}

/// How a commit moves the cursor.
pub(crate) enum Move {
    /// A page inside a walk: resume from `walk` next time.
    Page {
        /// The walk state (JSON).
        walk: String,
    },
    /// The walk's last page: a new watermark, and ids older than
    /// `prune_before` are forgotten.
    Last {
        /// The new watermark.
        watermark: String,
        /// Forget ids of items older than this.
        prune_before: Option<DateTime<Utc>>,
    },
}

/// What a cursor backend does. [`Store`] holds one behind an `Arc`; each
/// backend's file implements it (the SQL, or the KV compare-and-set), and
/// `conformance` holds both to the same behaviour.
trait Backend: Send + Sync {
    /// Where the cursors are, for logs and `alertd check`.
    fn describe(&self) -> String;
    fn load<'a>(&'a self, source: &'a str) -> BoxFuture<'a, Result<SourceState, StoreError>>;
    fn seen<'a>(
        &'a self,
        source: &'a str,
        ids: Vec<String>,
    ) -> BoxFuture<'a, Result<HashSet<String>, StoreError>>;
    fn commit<'a>(
        &'a self,
        source: &'a str,
        vendor: &'a str,
        change: Move,
        seen: Vec<Seen>,
    ) -> BoxFuture<'a, Result<(), StoreError>>;
    fn list(&self) -> BoxFuture<'_, Result<Vec<CursorRow>, StoreError>>;
    fn reset<'a>(
        &'a self,
        source: &'a str,
        vendor: &'a str,
        since: Option<DateTime<Utc>>,
    ) -> BoxFuture<'a, Result<bool, StoreError>>;
}

/// The checkpoint store; cheap to clone, shared by all pollers.
#[derive(Clone)]
pub struct Store {
    backend: Arc<dyn Backend>,
    /// The same backend, for revisits (`revisions.rs`).
    revisions: Arc<dyn revisions::RevisionBackend>,
}

impl std::fmt::Debug for Store {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Store").field("at", &self.describe()).finish()
    }
}

impl Store {
    /// Open (creating if needed) the SQLite store at `path`, in WAL mode.
    pub fn open(path: &Path) -> Result<Store, StoreError> {
        let store = Arc::new(SqliteStore::open(path)?);
        Ok(Store { backend: store.clone(), revisions: store })
    }

    /// Open (creating if needed) the JetStream KV bucket `bucket` with
    /// `replicas` copies. `writer` (the instance name) is recorded with
    /// every cursor it writes, for `alertd cursors list`.
    pub async fn open_kv(
        js: &async_nats::jetstream::Context,
        bucket: &str,
        replicas: usize,
        writer: &str,
    ) -> Result<Store, StoreError> {
        let store = Arc::new(KvStore::open(js, bucket, replicas, writer).await?);
        Ok(Store { backend: store.clone(), revisions: store })
    }

    /// Where the cursors are: the file path or `nats-kv:<bucket>`.
    pub fn describe(&self) -> String {
        self.backend.describe()
    }

    /// The state of `source` (empty if it never ran). With the KV backend
    /// this also remembers the revision read, which the next commit of
    /// `source` must still find.
    pub async fn load(&self, source: &str) -> Result<SourceState, StoreError> {
        self.backend.load(source).await
    }

    /// Which of `ids` were already delivered for `source`.
    pub async fn seen(&self, source: &str, ids: Vec<String>) -> Result<HashSet<String>, StoreError> {
        self.backend.seen(source, ids).await
    }

    /// Commit a delivered page of an unfinished walk: its seen ids and the
    /// walk state to resume from, at once.
    pub async fn commit_page(
        &self,
        source: &str,
        vendor: &str,
        walk: String,
        seen: Vec<Seen>,
    ) -> Result<(), StoreError> {
        self.backend.commit(source, vendor, Move::Page { walk }, seen).await
    }

    /// Commit the last page of a walk: its seen ids, the new watermark, the
    /// end of the walk, and the pruning of ids that can no longer come back,
    /// at once.
    pub async fn commit_last_page(
        &self,
        source: &str,
        vendor: &str,
        seen: Vec<Seen>,
        watermark: String,
        prune_before: Option<DateTime<Utc>>,
    ) -> Result<(), StoreError> {
        self.backend.commit(source, vendor, Move::Last { watermark, prune_before }, seen).await
    }

    /// Every source's cursor, for `alertd cursors list`.
    pub async fn list(&self) -> Result<Vec<CursorRow>, StoreError> {
        self.backend.list().await
    }

    /// Forget `source`'s cursor, so its next poll starts from its initial
    /// lookback, or from `since` if given, and what its revisits remembered
    /// (the revisions it published, an unfinished revisit). Returns whether
    /// it had a cursor.
    pub async fn reset(
        &self,
        source: &str,
        vendor: &str,
        since: Option<DateTime<Utc>>,
    ) -> Result<bool, StoreError> {
        self.backend.reset(source, vendor, since).await
    }
}

/// Revisits (issue 19): the last published revision of each item in the
/// revisit window, and the revisit walk's state (see `revisions.rs`).
impl Store {
    /// `source`'s revisit: an unfinished walk, when it started.
    pub async fn revisit_state(&self, source: &str) -> Result<RevisitState, StoreError> {
        self.revisions.revisit_state(source).await
    }

    /// The event id last published for each item `(native id, item time)`
    /// that has one, by native id. (SQLite finds an item by both: an item
    /// whose time changed is not found; the KV bucket by its id alone.)
    pub async fn published_revisions(
        &self,
        source: &str,
        items: Vec<(String, chrono::DateTime<chrono::Utc>)>,
    ) -> Result<std::collections::HashMap<String, String>, StoreError> {
        self.revisions.published(source, items).await
    }

    /// Remember revisions published by the regular walk (after their
    /// PubAcks, before the page's cursor commit).
    pub async fn record_revisions(&self, source: &str, revisions: Vec<Revision>) -> Result<(), StoreError> {
        self.revisions.record(source, revisions).await
    }

    /// Commit a delivered revisit page: the revisions it published and the
    /// revisit's move.
    pub async fn commit_revisit(
        &self,
        source: &str,
        change: RevisitMove,
        revisions: Vec<Revision>,
    ) -> Result<(), StoreError> {
        self.revisions.commit_revisit(source, change, revisions).await
    }

    /// How many item revisions `source` remembers.
    pub async fn revision_count(&self, source: &str) -> Result<u64, StoreError> {
        self.revisions.revision_count(source).await
    }
}
