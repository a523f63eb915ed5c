//! What a revisit remembers per source (issue 19): the last published
//! revision of each item inside the revisit window, and the state of an
//! unfinished revisit walk.
//!
//! The regular walk records the revision of every event it published (after
//! the PubAck, before its cursor commit); a revisit compares each item of
//! `[now − window, now − overlap]` with it and publishes only what changed.
//! A revisit page's revisions and the revisit's next position are written
//! together (one SQLite transaction; in the KV bucket the revisions first,
//! then the revisit's state with compare-and-set), always after the page's
//! PubAcks: a crash re-fetches a page whose publication may be lost, never
//! skips one. Recording a revision is idempotent ("this event id was
//! published"), so writing it twice is harmless.
//!
//! Both backends implement [`RevisionBackend`]: SQLite in
//! `sqlite/revisions.rs` (tables `item_revisions` and `revisits`), the KV bucket
//! in `kv/revisions.rs` (keys `revision.<source>.<hash of native id>` and
//! `revisit.<source>`).

use std::collections::HashMap;

use chrono::{DateTime, Utc};
use futures::future::BoxFuture;

use super::StoreError;

/// The last published revision of one item.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Revision {
    /// The vendor's id of the item.
    pub native_id: String,
    /// The event id published for it (it fingerprints the revision).
    pub event_id: String,
    /// The item's time as the vendor's filter compares it: the record is
    /// forgotten once this leaves the revisit window.
    pub item_time: DateTime<Utc>,
}

/// A source's revisit, as stored.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct RevisitState {
    /// An unfinished revisit walk (JSON: its plan and next position).
    pub walk: Option<String>,
    /// When the current (or, with no walk, the last) revisit started.
    pub started_at: Option<DateTime<Utc>>,
}

/// How a revisit page commit moves the revisit.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum RevisitMove {
    /// A page inside the revisit: resume from `walk`.
    Page {
        /// The walk state (JSON).
        walk: String,
        /// When the revisit started.
        started_at: DateTime<Utc>,
    },
    /// The revisit's last page: the walk ends; revisions of items older than
    /// `prune_before` are forgotten.
    Last {
        /// When the revisit started (the next starts `every` later).
        started_at: DateTime<Utc>,
        /// The start of the revisit window.
        prune_before: DateTime<Utc>,
    },
}

/// What a backend does for revisits.
pub(super) trait RevisionBackend: Send + Sync {
    fn revisit_state<'a>(&'a self, source: &'a str) -> BoxFuture<'a, Result<RevisitState, StoreError>>;
    /// The event id last published for each item `(native id, item time)`
    /// that has one, by native id.
    fn published<'a>(
        &'a self,
        source: &'a str,
        items: Vec<(String, DateTime<Utc>)>,
    ) -> BoxFuture<'a, Result<HashMap<String, String>, StoreError>>;
    fn record<'a>(
        &'a self,
        source: &'a str,
        revisions: Vec<Revision>,
    ) -> BoxFuture<'a, Result<(), StoreError>>;
    fn commit_revisit<'a>(
        &'a self,
        source: &'a str,
        change: RevisitMove,
        revisions: Vec<Revision>,
    ) -> BoxFuture<'a, Result<(), StoreError>>;
    /// How many items `source` remembers.
    fn revision_count<'a>(&'a self, source: &'a str) -> BoxFuture<'a, Result<u64, StoreError>>;
}
