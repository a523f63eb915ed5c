//! The KV side of revisits: one key per remembered item,
//! `revision.<source>.<hash of its native id>` (the event id last published
//! and the item's time), and one per source, `revisit.<source>` (an
//! unfinished revisit walk and when the revisit started), written with
//! compare-and-set on the revision this daemon read or wrote.
//!
//! A key per item keeps every value small whatever the window holds, and
//! no daemon keeps the set in memory. A revisit page writes its items' keys
//! first and the `revisit.` key last: the item keys are facts ("this event
//! id was published"), true whether or not the walk's move lands.

use std::collections::HashMap;
use std::sync::Arc;

use bytes::Bytes;
use chrono::{DateTime, Utc};
use futures::future::BoxFuture;
use futures::{StreamExt, TryStreamExt};
use serde::{Deserialize, Serialize};

use super::KvStore;
use crate::checkpoint::StoreError;
use crate::checkpoint::revisions::{Revision, RevisionBackend, RevisitMove, RevisitState};
use crate::incremental::{format_time, parse_time};

/// Item keys read or written at once.
const CONCURRENCY: usize = 32;

/// Namespace of the native-id hashes in item keys (KV keys allow only a
/// few characters, and native ids are the vendor's choice).
const NAMESPACE: uuid::Uuid = uuid::Uuid::from_u128(0x2b9e_4c1d_77a0_4f3e_8d15_6a0c_93e2_51b7);

#[derive(Debug, Clone, Default, Serialize, Deserialize)]
struct RevisitRecord {
    walk: Option<String>,
    started_at: Option<String>,
}

#[derive(Debug, Clone, Serialize, Deserialize)]
struct ItemRecord {
    /// The event id last published.
    e: String,
    /// The item's time.
    t: String,
}

fn revisit_key(source: &str) -> String {
    format!("revisit.{source}")
}

fn item_prefix(source: &str) -> String {
    format!("revision.{source}.")
}

fn item_key(source: &str, native_id: &str) -> String {
    format!("{}{}", item_prefix(source), uuid::Uuid::new_v5(&NAMESPACE, native_id.as_bytes()).simple())
}

impl KvStore {
    fn revisit_revisions(&self) -> std::sync::MutexGuard<'_, HashMap<String, u64>> {
        self.revisits.lock().unwrap_or_else(std::sync::PoisonError::into_inner)
    }

    async fn revisit_state_of(&self, source: &str) -> Result<RevisitState, StoreError> {
        let entry = self
            .kv
            .entry(revisit_key(source))
            .await
            .map_err(|e| self.err(format!("reading the revisit of {source}: {e}")))?;
        let (revision, record) = match entry {
            None => (0, RevisitRecord::default()),
            Some(entry) if entry.operation != async_nats::jetstream::kv::Operation::Put => {
                (entry.revision, RevisitRecord::default())
            }
            Some(entry) => {
                let record: RevisitRecord = serde_json::from_slice(&entry.value)
                    .map_err(|e| self.err(format!("the revisit of {source} is not alertd's: {e}")))?;
                (entry.revision, record)
            }
        };
        self.revisit_revisions().insert(source.to_owned(), revision);
        Ok(RevisitState { walk: record.walk, started_at: record.started_at.as_deref().and_then(parse_time) })
    }

    async fn published_of(
        &self,
        source: &str,
        native_ids: Vec<String>,
    ) -> Result<HashMap<String, String>, StoreError> {
        let found: Vec<Option<(String, String)>> = futures::stream::iter(native_ids)
            .map(|id| async move {
                let key = item_key(source, &id);
                let value = self.kv.get(&key).await.map_err(|e| self.err(format!("reading {key}: {e}")))?;
                Ok::<_, StoreError>(
                    value
                        .and_then(|v| serde_json::from_slice::<ItemRecord>(&v).ok())
                        .map(|record| (id, record.e)),
                )
            })
            .buffer_unordered(CONCURRENCY)
            .try_collect()
            .await?;
        Ok(found.into_iter().flatten().collect())
    }

    async fn record_of(&self, source: &str, revisions: Vec<Revision>) -> Result<(), StoreError> {
        futures::stream::iter(revisions)
            .map(|r| async move {
                let key = item_key(source, &r.native_id);
                let record = ItemRecord { e: r.event_id, t: format_time(r.item_time) };
                let value = Bytes::from(serde_json::to_vec(&record).map_err(|e| self.err(e))?);
                self.kv.put(&key, value).await.map_err(|e| self.err(format!("writing {key}: {e}")))?;
                Ok::<_, StoreError>(())
            })
            .buffer_unordered(CONCURRENCY)
            .try_collect::<Vec<()>>()
            .await?;
        Ok(())
    }

    async fn commit_revisit_of(
        &self,
        source: &str,
        change: RevisitMove,
        revisions: Vec<Revision>,
    ) -> Result<(), StoreError> {
        self.record_of(source, revisions).await?;
        let (record, prune) = match change {
            RevisitMove::Page { walk, started_at } => {
                (RevisitRecord { walk: Some(walk), started_at: Some(format_time(started_at)) }, None)
            }
            RevisitMove::Last { started_at, prune_before } => {
                (RevisitRecord { walk: None, started_at: Some(format_time(started_at)) }, Some(prune_before))
            }
        };
        let expected = self.revisit_revisions().get(source).copied().unwrap_or(0);
        let value = Bytes::from(serde_json::to_vec(&record).map_err(|e| self.err(e))?);
        let key = revisit_key(source);
        let written = if expected == 0 {
            self.kv.create(&key, value).await.map_err(|e| match e.kind() {
                async_nats::jetstream::kv::CreateErrorKind::AlreadyExists => self.conflict(source, expected),
                _ => self.err(format!("writing {key}: {e}")),
            })
        } else {
            self.kv.update(&key, value, expected).await.map_err(|e| match e.kind() {
                async_nats::jetstream::kv::UpdateErrorKind::WrongLastRevision => {
                    self.conflict(source, expected)
                }
                _ => self.err(format!("writing {key}: {e}")),
            })
        };
        match written {
            Ok(revision) => {
                self.revisit_revisions().insert(source.to_owned(), revision);
            }
            Err(error) => {
                self.revisit_revisions().remove(source);
                return Err(error);
            }
        }
        if let Some(before) = prune {
            self.prune(source, before).await?;
        }
        Ok(())
    }

    /// Forget the items of `source` older than `before`: one read per
    /// remembered item, once per revisit.
    async fn prune(&self, source: &str, before: DateTime<Utc>) -> Result<(), StoreError> {
        let prefix = item_prefix(source);
        let keys = self.source_item_keys(&prefix).await?;
        let before = format_time(before);
        let before = Arc::new(before);
        futures::stream::iter(keys)
            .map(|key| {
                let before = Arc::clone(&before);
                async move {
                    let value =
                        self.kv.get(&key).await.map_err(|e| self.err(format!("reading {key}: {e}")))?;
                    let old = value
                        .and_then(|v| serde_json::from_slice::<ItemRecord>(&v).ok())
                        .is_some_and(|r| r.t.as_str() < before.as_str());
                    if old {
                        self.kv.purge(&key).await.map_err(|e| self.err(format!("purging {key}: {e}")))?;
                    }
                    Ok::<_, StoreError>(())
                }
            })
            .buffer_unordered(CONCURRENCY)
            .try_collect::<Vec<()>>()
            .await?;
        Ok(())
    }

    async fn source_item_keys(&self, prefix: &str) -> Result<Vec<String>, StoreError> {
        let mut keys = self.kv.keys().await.map_err(|e| self.err(format!("listing keys: {e}")))?;
        let mut out = Vec::new();
        while let Some(k) = keys.next().await {
            let k = k.map_err(|e| self.err(format!("listing keys: {e}")))?;
            if k.starts_with(prefix) {
                out.push(k);
            }
        }
        Ok(out)
    }

    async fn revision_counts_of(&self) -> Result<HashMap<String, u64>, StoreError> {
        let mut keys = self.kv.keys().await.map_err(|e| self.err(format!("listing keys: {e}")))?;
        let mut counts = HashMap::new();
        while let Some(k) = keys.next().await {
            let k = k.map_err(|e| self.err(format!("listing keys: {e}")))?;
            if let Some((source, _hash)) = k.strip_prefix("revision.").and_then(|rest| rest.rsplit_once('.'))
            {
                *counts.entry(source.to_owned()).or_insert(0) += 1;
            }
        }
        Ok(counts)
    }
}

impl RevisionBackend for KvStore {
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

    fn revision_counts(&self) -> BoxFuture<'_, Result<HashMap<String, u64>, StoreError>> {
        Box::pin(self.revision_counts_of())
    }
}
