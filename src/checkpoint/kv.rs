//! The NATS JetStream KV backend: cursors shared by every alertd instance.
//!
//! One key per source, `cursor.<source>`, whose value holds everything the
//! SQLite backend keeps in its two tables for that source (vendor,
//! watermark, unfinished walk, the ids seen inside the overlap window). A
//! commit replaces the whole value with compare-and-set on the revision
//! this daemon last read or wrote, so a page's seen ids and its cursor move
//! land together or not at all, and a writer that lost the race (another
//! instance took the source over) gets [`StoreError::Conflict`] instead of
//! moving the cursor backwards or past the other's events.
//!
//! The seen ids travel in the value, so a source's overlap window must fit
//! in the server's `max_payload` (1 MiB by default: about 12,000 ids).

use std::collections::{BTreeMap, HashMap, HashSet};
use std::sync::{Arc, Mutex};

use async_nats::jetstream::{self, kv};
use bytes::Bytes;
use chrono::{DateTime, Utc};
use futures::StreamExt;
use serde::{Deserialize, Serialize};

use super::{CursorRow, Seen, SourceState, StoreError};
use crate::incremental::format_time;

/// The key prefix of cursor entries.
const PREFIX: &str = "cursor.";

/// How a commit moves the cursor.
pub(super) enum Move {
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

/// One source's value in the bucket.
#[derive(Debug, Clone, Default, Serialize, Deserialize)]
struct Record {
    vendor: Option<String>,
    watermark: Option<String>,
    walk: Option<String>,
    /// Event id → item time (fixed-width UTC text, so it sorts as time).
    #[serde(default)]
    seen: BTreeMap<String, String>,
    updated_at: String,
    /// The instance that wrote this revision.
    #[serde(default)]
    writer: Option<String>,
}

/// A record with the revision it was read or written at (0: no key).
#[derive(Debug, Clone, Default)]
struct Versioned {
    revision: u64,
    record: Record,
}

/// A KV bucket of cursors.
#[derive(Clone)]
pub(super) struct KvStore {
    kv: kv::Store,
    bucket: String,
    writer: String,
    /// The largest message the server accepts (`max_payload`).
    max_payload: usize,
    /// What this daemon last read or wrote per source: the revision its
    /// next commit expects, and the seen ids `seen` answers from.
    cache: Arc<Mutex<HashMap<String, Versioned>>>,
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
            description: "alertd cursors (one key per source)".to_owned(),
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
            max_payload: js.client().server_info().max_payload,
            cache: Arc::new(Mutex::new(HashMap::new())),
        })
    }

    /// The bucket's name.
    pub(super) fn bucket(&self) -> &str {
        &self.bucket
    }

    fn err(&self, message: impl std::fmt::Display) -> StoreError {
        StoreError::Kv { bucket: self.bucket.clone(), message: message.to_string() }
    }

    /// Read `source`'s value from the bucket (not the cache).
    async fn fetch(&self, source: &str) -> Result<Versioned, StoreError> {
        let entry =
            self.kv.entry(key(source)).await.map_err(|e| self.err(format!("reading {source}: {e}")))?;
        Ok(match entry {
            None => Versioned::default(),
            Some(entry) if entry.operation != kv::Operation::Put => {
                Versioned { revision: entry.revision, record: Record::default() }
            }
            Some(entry) => {
                let record = serde_json::from_slice(&entry.value).map_err(|e| {
                    self.err(format!(
                        "the cursor of {source} (revision {}) is not alertd's: {e}",
                        entry.revision
                    ))
                })?;
                Versioned { revision: entry.revision, record }
            }
        })
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

    pub(super) async fn load(&self, source: &str) -> Result<SourceState, StoreError> {
        let versioned = self.fetch(source).await?;
        let state = state_of(&versioned.record);
        self.remember(source, versioned);
        Ok(state)
    }

    pub(super) async fn seen(&self, source: &str, ids: Vec<String>) -> Result<HashSet<String>, StoreError> {
        let versioned = match self.cached(source) {
            Some(v) => v,
            None => {
                let v = self.fetch(source).await?;
                self.remember(source, v.clone());
                v
            }
        };
        Ok(ids.into_iter().filter(|id| versioned.record.seen.contains_key(id)).collect())
    }

    pub(super) async fn commit(
        &self,
        source: &str,
        vendor: &str,
        change: Move,
        seen: Vec<Seen>,
    ) -> Result<(), StoreError> {
        let base = match self.cached(source) {
            Some(v) => v,
            None => self.fetch(source).await?,
        };
        let mut record = base.record.clone();
        record.vendor = Some(vendor.to_owned());
        for s in seen {
            record.seen.insert(s.event_id, format_time(s.item_time));
        }
        match change {
            Move::Page { walk } => record.walk = Some(walk),
            Move::Last { watermark, prune_before } => {
                record.walk = None;
                record.watermark = Some(watermark);
                if let Some(before) = prune_before {
                    let before = format_time(before);
                    record.seen.retain(|_, time| *time >= before);
                }
            }
        }
        record.updated_at = format_time(Utc::now());
        record.writer = Some(self.writer.clone());
        let revision = self.write(source, base.revision, &record).await?;
        self.remember(source, Versioned { revision, record });
        Ok(())
    }

    /// Write `record` if the key is still at `expected` (0: absent).
    async fn write(&self, source: &str, expected: u64, record: &Record) -> Result<u64, StoreError> {
        let value = Bytes::from(serde_json::to_vec(record).map_err(|e| self.err(e))?);
        // `max_payload` is 0 before the first INFO; the server judges then.
        if self.max_payload > 0 && value.len() > self.max_payload {
            return Err(self.err(format!(
                "the cursor of {source} would be {} bytes ({} remembered event ids), over the server's max_payload of {}; \
                 raise max_payload on the NATS servers, shorten the source's overlap, or use the sqlite backend",
                value.len(),
                record.seen.len(),
                self.max_payload
            )));
        }
        let conflict =
            || StoreError::Conflict { bucket: self.bucket.clone(), source_name: source.to_owned(), expected };
        let written = if expected == 0 {
            self.kv.create(key(source), value).await.map_err(|e| match e.kind() {
                kv::CreateErrorKind::AlreadyExists => conflict(),
                _ => self.err(format!("writing {source}: {e}")),
            })
        } else {
            self.kv.update(key(source), value, expected).await.map_err(|e| match e.kind() {
                kv::UpdateErrorKind::WrongLastRevision => conflict(),
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
            let Versioned { record, .. } = self.fetch(&source).await?;
            let Some(vendor) = record.vendor.clone() else { continue };
            rows.push(CursorRow {
                source,
                vendor,
                watermark: record.watermark.clone(),
                walk_in_progress: record.walk.is_some(),
                seen: record.seen.len() as u64,
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
        let current = self.fetch(source).await?;
        let had = current.record.vendor.is_some();
        self.forget(source);
        match since {
            Some(since) => {
                let record = Record {
                    vendor: Some(vendor.to_owned()),
                    watermark: Some(format_time(since)),
                    updated_at: format_time(Utc::now()),
                    writer: Some(self.writer.clone()),
                    ..Record::default()
                };
                self.write(source, current.revision, &record).await?;
            }
            None if had => {
                self.kv
                    .purge_expect_revision(key(source), Some(current.revision))
                    .await
                    .map_err(|e| self.err(format!("purging {source}: {e}")))?;
            }
            None => {}
        }
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

fn key(source: &str) -> String {
    format!("{PREFIX}{source}")
}

fn state_of(record: &Record) -> SourceState {
    SourceState {
        vendor: record.vendor.clone(),
        watermark: record.watermark.clone(),
        walk: record.walk.clone(),
    }
}
