//! The NATS JetStream KV backend: cursors shared by every alertd instance.
//!
//! Per source, a cursor key `cursor.<source>` holds what the SQLite backend
//! keeps in its `cursors` row (vendor, watermark, unfinished walk) and the
//! list of the source's *segments*: each committed page's seen ids live
//! under a key of their own, `seen.<source>.<slot>`, so the overlap window
//! (and a long first backfill) is not limited by the size of one message.
//!
//! A page commit writes the page's segment first, then replaces the cursor
//! value with compare-and-set on the revision this daemon last read or
//! wrote. The cursor value is the only truth: a segment it does not list
//! is garbage, so a commit that loses the race (another instance took the
//! source over) leaves nothing behind that counts, and the loser gets
//! [`StoreError::Conflict`] instead of moving the cursor backwards or past
//! the other's events. Segments are written with compare-and-set as well
//! (create for a new slot, the slot's revision for a reused one), so two
//! writers cannot overwrite each other's ids either; a writer that finds a
//! slot taken moves to a fresh one.
//!
//! Pruned segments are not deleted: their slots go on a free list and are
//! overwritten by later pages, so the bucket holds at most the largest
//! number of segments a source ever needed (delete markers would pile up).

use std::collections::{BTreeMap, HashMap, HashSet};
use std::sync::{Arc, Mutex};

use async_nats::jetstream::{self, kv};
use bytes::Bytes;
use chrono::{DateTime, Utc};
use futures::StreamExt;
use futures::future::BoxFuture;
use serde::{Deserialize, Serialize};

use super::{Backend, CursorRow, Move, Seen, SourceState, StoreError};
use crate::incremental::format_time;

mod revisions;

/// The key prefix of cursor entries.
const PREFIX: &str = "cursor.";

/// Fresh slots tried before a commit gives up as a conflict.
const SLOT_ATTEMPTS: usize = 8;

/// One source's cursor value.
#[derive(Debug, Clone, Default, Serialize, Deserialize)]
struct Record {
    vendor: Option<String>,
    watermark: Option<String>,
    walk: Option<String>,
    /// The live segments of seen ids, oldest first.
    #[serde(default)]
    segments: Vec<Segment>,
    /// Slots of pruned segments, to overwrite (at their revision) first.
    #[serde(default)]
    free: Vec<Slot>,
    /// The next never-used slot.
    #[serde(default)]
    next_slot: u32,
    updated_at: String,
    /// The instance that wrote this revision.
    #[serde(default)]
    writer: Option<String>,
}

/// A page's seen ids, stored under `seen.<source>.<slot>`.
#[derive(Debug, Clone, Serialize, Deserialize)]
struct Segment {
    slot: u32,
    /// The segment key's revision when it was written.
    revision: u64,
    /// The newest item time in it (fixed-width UTC text, sorts as time):
    /// the segment is pruned when even this is older than the prune time.
    newest: String,
    /// How many ids it holds.
    count: u32,
}

/// A slot whose key may be overwritten at `revision`.
#[derive(Debug, Clone, Copy, Serialize, Deserialize)]
struct Slot {
    slot: u32,
    revision: u64,
}

/// A cursor as this daemon knows it: the revision it was read or written at
/// (0: no key), and the seen ids of its segments.
#[derive(Debug, Clone, Default)]
struct Versioned {
    revision: u64,
    record: Record,
    /// Segment slot → its ids.
    ids: BTreeMap<u32, HashSet<String>>,
}

/// A KV bucket of cursors.
#[derive(Clone)]
pub(super) struct KvStore {
    kv: kv::Store,
    bucket: String,
    writer: String,
    /// What this daemon last read or wrote per source: the revision its
    /// next commit expects, and the seen ids `seen` answers from.
    cache: Arc<Mutex<HashMap<String, Versioned>>>,
    /// The revision of each source's `revisit.` key this daemon last read
    /// or wrote (`kv/revisions.rs`).
    revisits: Arc<Mutex<HashMap<String, u64>>>,
}

impl KvStore {
    /// Open `bucket`, creating it (file storage, history 1, `replicas`)
    /// when it does not exist.
    pub(super) async fn open(
        js: &jetstream::Context,
        bucket: &str,
        replicas: usize,
        writer: &str,
    ) -> Result<KvStore, StoreError> {
        let config = kv::Config {
            bucket: bucket.to_owned(),
            description: "alertd cursors (a key per source, and its seen ids)".to_owned(),
            history: 1,
            num_replicas: replicas.max(1),
            storage: jetstream::stream::StorageType::File,
            ..Default::default()
        };
        let kv = open_bucket(js, config)
            .await
            .map_err(|message| StoreError::Kv { bucket: bucket.to_owned(), message })?;
        Ok(KvStore {
            kv,
            bucket: bucket.to_owned(),
            writer: writer.to_owned(),
            cache: Arc::new(Mutex::new(HashMap::new())),
            revisits: Arc::new(Mutex::new(HashMap::new())),
        })
    }

    /// The bucket's name.
    pub(super) fn bucket(&self) -> &str {
        &self.bucket
    }

    fn err(&self, message: impl std::fmt::Display) -> StoreError {
        StoreError::Kv { bucket: self.bucket.clone(), message: message.to_string() }
    }

    fn conflict(&self, source: &str, expected: u64) -> StoreError {
        StoreError::Conflict { bucket: self.bucket.clone(), source_name: source.to_owned(), expected }
    }

    /// Read `source`'s cursor value (not its segments) from the bucket.
    async fn fetch_record(&self, source: &str) -> Result<(u64, Record), StoreError> {
        let entry = self
            .kv
            .entry(cursor_key(source))
            .await
            .map_err(|e| self.err(format!("reading {source}: {e}")))?;
        Ok(match entry {
            None => (0, Record::default()),
            Some(entry) if entry.operation != kv::Operation::Put => (entry.revision, Record::default()),
            Some(entry) => {
                let record = serde_json::from_slice(&entry.value).map_err(|e| {
                    self.err(format!(
                        "the cursor of {source} (revision {}) is not alertd's: {e}",
                        entry.revision
                    ))
                })?;
                (entry.revision, record)
            }
        })
    }

    /// Read `source`'s cursor and every segment it lists (the segments
    /// from the cache when the cursor has not changed since).
    async fn fetch(&self, source: &str) -> Result<Versioned, StoreError> {
        let (revision, record) = self.fetch_record(source).await?;
        if let Some(cached) = self.cached(source).filter(|c| c.revision == revision && revision > 0) {
            return Ok(Versioned { revision, record, ids: cached.ids });
        }
        let mut ids = BTreeMap::new();
        for segment in &record.segments {
            let key = seen_key(source, segment.slot);
            let entry = self.kv.entry(&key).await.map_err(|e| self.err(format!("reading {key}: {e}")))?;
            // A listed segment is never overwritten (only free slots are),
            // so anything else means the cursor moved meanwhile: the next
            // commit's compare-and-set finds that out.
            let Some(entry) = entry.filter(|e| e.revision == segment.revision) else { continue };
            let page: Vec<String> = serde_json::from_slice(&entry.value)
                .map_err(|e| self.err(format!("{key} is not a list of event ids: {e}")))?;
            ids.insert(segment.slot, page.into_iter().collect());
        }
        Ok(Versioned { revision, record, ids })
    }

    fn cached(&self, source: &str) -> Option<Versioned> {
        self.lock().get(source).cloned()
    }

    fn remember(&self, source: &str, versioned: Versioned) {
        self.lock().insert(source.to_owned(), versioned);
    }

    fn forget(&self, source: &str) {
        self.lock().remove(source);
    }

    fn lock(&self) -> std::sync::MutexGuard<'_, HashMap<String, Versioned>> {
        // The map holds plain data; a panic elsewhere leaves it usable.
        self.cache.lock().unwrap_or_else(std::sync::PoisonError::into_inner)
    }

    async fn current(&self, source: &str) -> Result<Versioned, StoreError> {
        match self.cached(source) {
            Some(v) => Ok(v),
            None => {
                let v = self.fetch(source).await?;
                self.remember(source, v.clone());
                Ok(v)
            }
        }
    }

    pub(super) async fn load(&self, source: &str) -> Result<SourceState, StoreError> {
        let versioned = self.fetch(source).await?;
        let state = state_of(&versioned.record);
        self.remember(source, versioned);
        Ok(state)
    }

    pub(super) async fn seen(&self, source: &str, ids: Vec<String>) -> Result<HashSet<String>, StoreError> {
        let current = self.current(source).await?;
        Ok(ids.into_iter().filter(|id| current.ids.values().any(|page| page.contains(id))).collect())
    }

    pub(super) async fn commit(
        &self,
        source: &str,
        vendor: &str,
        change: Move,
        seen: Vec<Seen>,
    ) -> Result<(), StoreError> {
        let base = self.current(source).await?;
        let mut next = base.clone();
        let record = &mut next.record;
        record.vendor = Some(vendor.to_owned());
        if let Some(newest) = seen.iter().map(|s| s.item_time).max() {
            let page: Vec<String> = seen.into_iter().map(|s| s.event_id).collect();
            let (slot, revision) = self.write_segment(source, record, &page, base.revision).await?;
            record.segments.push(Segment {
                slot,
                revision,
                newest: format_time(newest),
                count: page.len() as u32,
            });
            next.ids.insert(slot, page.into_iter().collect());
        }
        match change {
            Move::Page { walk } => record.walk = Some(walk),
            Move::Last { watermark, prune_before } => {
                record.walk = None;
                record.watermark = Some(watermark);
                if let Some(before) = prune_before {
                    let before = format_time(before);
                    let (old, kept): (Vec<Segment>, Vec<Segment>) =
                        record.segments.drain(..).partition(|s| s.newest < before);
                    record.segments = kept;
                    for segment in old {
                        next.ids.remove(&segment.slot);
                        record.free.push(Slot { slot: segment.slot, revision: segment.revision });
                    }
                }
            }
        }
        record.updated_at = format_time(Utc::now());
        record.writer = Some(self.writer.clone());
        next.revision = self.write_cursor(source, base.revision, &next.record).await?;
        self.remember(source, next);
        Ok(())
    }

    /// Store `page` under a free slot (overwritten at its revision) or a new
    /// one (created), taking it off `record`'s free list or advancing
    /// `next_slot`. A slot someone else wrote meanwhile is skipped.
    async fn write_segment(
        &self,
        source: &str,
        record: &mut Record,
        page: &[String],
        expected: u64,
    ) -> Result<(u32, u64), StoreError> {
        let value = Bytes::from(serde_json::to_vec(page).map_err(|e| self.err(e))?);
        for _ in 0..SLOT_ATTEMPTS {
            let (slot, written) = match record.free.pop() {
                Some(free) => {
                    let written =
                        self.kv.update(seen_key(source, free.slot), value.clone(), free.revision).await;
                    (
                        free.slot,
                        written
                            .map_err(|e| (e.kind() == kv::UpdateErrorKind::WrongLastRevision, e.to_string())),
                    )
                }
                None => {
                    let slot = record.next_slot;
                    record.next_slot += 1;
                    let written = self.kv.create(seen_key(source, slot), value.clone()).await;
                    (
                        slot,
                        written.map_err(|e| (e.kind() == kv::CreateErrorKind::AlreadyExists, e.to_string())),
                    )
                }
            };
            match written {
                Ok(revision) => return Ok((slot, revision)),
                // Another writer used this slot: this daemon's view is
                // probably stale, but only the cursor's compare-and-set
                // decides that; try a fresh slot.
                Err((true, _)) => continue,
                Err((false, e)) => {
                    self.forget(source);
                    return Err(self.err(format!("writing the seen ids of {source}: {e}")));
                }
            }
        }
        self.forget(source);
        Err(self.conflict(source, expected))
    }

    /// Write the cursor value if the key is still at `expected` (0: absent).
    async fn write_cursor(&self, source: &str, expected: u64, record: &Record) -> Result<u64, StoreError> {
        let value = Bytes::from(serde_json::to_vec(record).map_err(|e| self.err(e))?);
        let written = if expected == 0 {
            self.kv.create(cursor_key(source), value).await.map_err(|e| match e.kind() {
                kv::CreateErrorKind::AlreadyExists => self.conflict(source, expected),
                _ => self.err(format!("writing {source}: {e}")),
            })
        } else {
            self.kv.update(cursor_key(source), value, expected).await.map_err(|e| match e.kind() {
                kv::UpdateErrorKind::WrongLastRevision => self.conflict(source, expected),
                _ => self.err(format!("writing {source}: {e}")),
            })
        };
        if written.is_err() {
            // Whatever happened (a lost race, or a timeout after which the
            // write may have landed), the next poll reads the bucket afresh.
            self.forget(source);
        }
        written
    }

    pub(super) async fn list(&self) -> Result<Vec<CursorRow>, StoreError> {
        let mut keys = self.kv.keys().await.map_err(|e| self.err(format!("listing keys: {e}")))?;
        let mut sources: Vec<String> = Vec::new();
        while let Some(k) = keys.next().await {
            let k = k.map_err(|e| self.err(format!("listing keys: {e}")))?;
            if let Some(source) = k.strip_prefix(PREFIX) {
                sources.push(source.to_owned());
            }
        }
        sources.sort();
        let mut rows = Vec::with_capacity(sources.len());
        for source in sources {
            let (_, record) = self.fetch_record(&source).await?;
            let Some(vendor) = record.vendor.clone() else { continue };
            rows.push(CursorRow {
                source,
                vendor,
                watermark: record.watermark.clone(),
                walk_in_progress: record.walk.is_some(),
                seen: record.segments.iter().map(|s| u64::from(s.count)).sum(),
                updated_at: record.updated_at.clone(),
                written_by: record.writer.clone(),
            });
        }
        Ok(rows)
    }

    pub(super) async fn reset(
        &self,
        source: &str,
        vendor: &str,
        since: Option<DateTime<Utc>>,
    ) -> Result<bool, StoreError> {
        let (revision, current) = self.fetch_record(source).await?;
        let had = current.vendor.is_some();
        self.forget(source);
        // The slots stay allocated (free), to be overwritten later.
        let mut free = current.free.clone();
        free.extend(current.segments.iter().map(|s| Slot { slot: s.slot, revision: s.revision }));
        // Without `since` the source is forgotten (no vendor: as if it never
        // ran); with it, it restarts from `since`.
        let record = Record {
            vendor: since.map(|_| vendor.to_owned()),
            watermark: since.map(format_time),
            free,
            next_slot: current.next_slot,
            updated_at: format_time(Utc::now()),
            writer: Some(self.writer.clone()),
            ..Record::default()
        };
        if since.is_some() || had {
            self.write_cursor(source, revision, &record).await?;
        }
        // What the source's revisits remembered goes with its cursor.
        self.forget_revisions(source).await?;
        Ok(had)
    }
}

/// Open the KV bucket `config.bucket`, creating it with `config` when it
/// does not exist yet (the lease bucket is opened the same way).
pub(crate) async fn open_bucket(js: &jetstream::Context, config: kv::Config) -> Result<kv::Store, String> {
    match js.get_key_value(&config.bucket).await {
        Ok(kv) => Ok(kv),
        Err(_) => js.create_key_value(config).await.map_err(|e| format!("cannot open or create it: {e}")),
    }
}

fn cursor_key(source: &str) -> String {
    format!("{PREFIX}{source}")
}

fn seen_key(source: &str, slot: u32) -> String {
    format!("seen.{source}.{slot}")
}

fn state_of(record: &Record) -> SourceState {
    SourceState {
        vendor: record.vendor.clone(),
        watermark: record.watermark.clone(),
        walk: record.walk.clone(),
    }
}

impl Backend for KvStore {
    fn describe(&self) -> String {
        format!("nats-kv:{}", self.bucket())
    }

    fn load<'a>(&'a self, source: &'a str) -> BoxFuture<'a, Result<SourceState, StoreError>> {
        Box::pin(KvStore::load(self, source))
    }

    fn seen<'a>(
        &'a self,
        source: &'a str,
        ids: Vec<String>,
    ) -> BoxFuture<'a, Result<HashSet<String>, StoreError>> {
        Box::pin(KvStore::seen(self, source, ids))
    }

    fn commit<'a>(
        &'a self,
        source: &'a str,
        vendor: &'a str,
        change: Move,
        seen: Vec<Seen>,
    ) -> BoxFuture<'a, Result<(), StoreError>> {
        Box::pin(KvStore::commit(self, source, vendor, change, seen))
    }

    fn list(&self) -> BoxFuture<'_, Result<Vec<CursorRow>, StoreError>> {
        Box::pin(KvStore::list(self))
    }

    fn reset<'a>(
        &'a self,
        source: &'a str,
        vendor: &'a str,
        since: Option<DateTime<Utc>>,
    ) -> BoxFuture<'a, Result<bool, StoreError>> {
        Box::pin(KvStore::reset(self, source, vendor, since))
    }
}
