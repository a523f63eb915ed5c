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
use std::time::Duration;

use async_nats::jetstream::consumer::{AckPolicy, DeliverPolicy, PullConsumer, ReplayPolicy, pull};

use bytes::Bytes;
use chrono::{DateTime, Utc};
use futures::future::BoxFuture;
use futures::{StreamExt, TryStreamExt};
use serde::{Deserialize, Serialize};

use super::KvStore;
use crate::checkpoint::StoreError;
use crate::checkpoint::revisions::{Revision, RevisionBackend, RevisitMove, RevisitState};
use crate::incremental::{format_time, parse_time};

/// Item keys read, written or purged at once.
const CONCURRENCY: usize = 32;

/// Item keys a prune reads at once.
const SCAN_BATCH: usize = 500;

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
        items: Vec<(String, DateTime<Utc>)>,
    ) -> Result<HashMap<String, String>, StoreError> {
        // Keys are per native id: the item's time is not needed to find it.
        let found: Vec<Option<(String, String)>> = futures::stream::iter(items)
            .map(|(id, _)| async move {
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

    /// Forget the items of `source` older than `before`, once per revisit.
    ///
    /// The source's item keys are read in batches of `SCAN_BATCH` from a
    /// consumer the server filters on `revision.<source>.>` (the latest
    /// value of each key), never listed or collected: memory holds one
    /// batch, whatever the window holds. An old item is removed from the
    /// stream up to the revision read (no purge marker is left behind, and
    /// a newer value written meanwhile stays); so are the markers an older
    /// alertd's prune left.
    async fn prune(&self, source: &str, before: DateTime<Utc>) -> Result<(), StoreError> {
        let (pending, consumer) = self.item_consumer(source, false).await?;
        let pruned = if pending == 0 {
            Ok(())
        } else {
            self.prune_with(&consumer, source, &format_time(before)).await
        };
        self.drop_consumer(&consumer).await;
        pruned
    }

    async fn prune_with(
        &self,
        consumer: &PullConsumer,
        source: &str,
        before: &str,
    ) -> Result<(), StoreError> {
        let reading = |e: &dyn std::fmt::Display| self.err(format!("reading the revisions of {source}: {e}"));
        loop {
            let mut batch =
                consumer.fetch().max_messages(SCAN_BATCH).messages().await.map_err(|e| reading(&e))?;
            let (mut got, mut last) = (0, false);
            let mut stale: Vec<(String, u64)> = Vec::new();
            while let Some(message) = batch.next().await {
                let message = message.map_err(|e| reading(&e))?;
                got += 1;
                let info = message.info().map_err(|e| reading(&e))?;
                let (revision, pending) = (info.stream_sequence, info.pending);
                last |= pending == 0;
                // A put holds an item record; anything else is a marker.
                let put = message.headers.as_ref().and_then(|h| h.get("KV-Operation")).is_none();
                let old = !put
                    || serde_json::from_slice::<ItemRecord>(&message.payload)
                        .is_ok_and(|r| r.t.as_str() < before);
                if old {
                    stale.push((message.subject.to_string(), revision));
                }
            }
            futures::stream::iter(stale)
                .map(|(subject, revision)| async move {
                    self.kv
                        .stream
                        .purge()
                        .filter(subject.as_str())
                        .sequence(revision + 1)
                        .await
                        .map_err(|e| self.err(format!("purging {subject}: {e}")))?;
                    Ok::<_, StoreError>(())
                })
                .buffer_unordered(CONCURRENCY)
                .try_for_each(|()| futures::future::ready(Ok(())))
                .await?;
            // The last entry there was, or none left (entries removed
            // meanwhile).
            if last || got == 0 {
                return Ok(());
            }
        }
    }

    /// An ephemeral consumer (no acknowledgements) on the latest value of
    /// each of `source`'s item keys, and how many it has to deliver.
    async fn item_consumer(
        &self,
        source: &str,
        headers_only: bool,
    ) -> Result<(u64, PullConsumer), StoreError> {
        let consumer = self
            .kv
            .stream
            .create_consumer(pull::Config {
                description: Some(format!("alertd: the revisions of {source}")),
                filter_subject: format!("{}{}>", self.kv.prefix, item_prefix(source)),
                headers_only,
                ack_policy: AckPolicy::None,
                deliver_policy: DeliverPolicy::LastPerSubject,
                replay_policy: ReplayPolicy::Instant,
                inactive_threshold: Duration::from_secs(60),
                memory_storage: true,
                ..Default::default()
            })
            .await
            .map_err(|e| self.err(format!("reading the revisions of {source}: {e}")))?;
        Ok((consumer.cached_info().num_pending, consumer))
    }

    /// Remove a consumer once read (an ephemeral one goes after its
    /// inactivity threshold anyway, hence no error).
    async fn drop_consumer(&self, consumer: &PullConsumer) {
        let _ = self.kv.stream.delete_consumer(&consumer.cached_info().name).await;
    }

    /// How many items `source` remembers: the server counts the keys
    /// (the pending count of a consumer on them); nothing is listed.
    async fn revision_count_of(&self, source: &str) -> Result<u64, StoreError> {
        let (pending, consumer) = self.item_consumer(source, true).await?;
        self.drop_consumer(&consumer).await;
        Ok(pending)
    }

    /// Forget `source`'s remembered items and its revisit (`alertd cursors
    /// reset`): two purges by subject on the server, no marker left.
    pub(super) async fn forget_revisions(&self, source: &str) -> Result<(), StoreError> {
        for (what, filter) in [
            ("revisions", format!("{}{}>", self.kv.prefix, item_prefix(source))),
            ("revisit", format!("{}{}", self.kv.prefix, revisit_key(source))),
        ] {
            self.kv
                .stream
                .purge()
                .filter(filter)
                .await
                .map_err(|e| self.err(format!("forgetting the {what} of {source}: {e}")))?;
        }
        self.revisit_revisions().remove(source);
        Ok(())
    }
}

impl RevisionBackend for KvStore {
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
