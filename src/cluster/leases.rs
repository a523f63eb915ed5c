//! The lease bucket: who is alive, and who polls which source.
//!
//! A JetStream KV bucket whose `max_age` is the lease TTL holds two kinds
//! of keys:
//!
//! - `member.<instance>`: written by every live instance each tick; an
//!   instance that stops writing it disappears after one TTL.
//! - `lease.<source>`: created (compare-and-set on "absent") by the instance
//!   that takes the source, renewed by compare-and-set on the revision it
//!   holds, deleted (again by revision) when it lets go. A holder that dies
//!   stops renewing, and the server expires the lease after one TTL.
//!
//! The lease's *epoch* is the revision of the write that created it: it
//! grows with every new holder, so requests and cursor writes can be told
//! apart by tenure.

use std::time::Duration;

use async_nats::jetstream::{self, kv};
use bytes::Bytes;
use chrono::{DateTime, Utc};
use futures::StreamExt;
use serde::{Deserialize, Serialize};

const MEMBER: &str = "member.";
const LEASE: &str = "lease.";

/// Why a lease operation failed.
#[derive(Debug, thiserror::Error)]
pub enum LeaseError {
    /// The bucket could not be opened, read or written.
    #[error("lease bucket {bucket}: {message}")]
    Bucket {
        /// The bucket.
        bucket: String,
        /// What failed.
        message: String,
    },
    /// The bucket exists with a different TTL than this instance's.
    #[error(
        "lease bucket {bucket} expires entries after {found:?}, but this instance's lease_ttl is {configured:?}; every instance must use the same lease_ttl (delete the bucket to change it)"
    )]
    TtlMismatch {
        /// The bucket.
        bucket: String,
        /// Its `max_age`.
        found: Duration,
        /// `[cluster] lease_ttl`.
        configured: Duration,
    },
}

/// A lease this instance holds.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Held {
    /// The revision to renew or release against.
    pub revision: u64,
    /// The revision that created the lease: the tenure's number.
    pub epoch: u64,
}

/// What renewing a lease found.
#[derive(Debug)]
pub enum Renewal {
    /// Still ours, at this revision.
    Renewed(Held),
    /// Someone else holds it, or it expired: ours no longer.
    Lost,
}

/// A lease's value.
#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct LeaseRecord {
    /// The holder.
    pub instance: String,
    /// The tenure's number (0 in the creating write, which is the epoch).
    #[serde(default)]
    pub epoch: u64,
    /// When the holder took it.
    pub acquired_at: DateTime<Utc>,
    /// The holder's last renewal.
    pub renewed_at: DateTime<Utc>,
}

/// A member's value.
#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct MemberRecord {
    /// When the instance started.
    pub started_at: DateTime<Utc>,
    /// Its last heartbeat.
    pub seen_at: DateTime<Utc>,
    /// alertd's version.
    pub version: String,
}

/// A lease as read back, for `alertd cluster status`.
#[derive(Debug, Clone)]
pub struct LeaseView {
    /// The source.
    pub source: String,
    /// Its value.
    pub record: LeaseRecord,
    /// The tenure (see [`Held::epoch`]).
    pub epoch: u64,
}

/// The lease bucket, as one instance sees it.
#[derive(Clone)]
pub struct LeaseTable {
    kv: kv::Store,
    bucket: String,
    instance: String,
    ttl: Duration,
    started_at: DateTime<Utc>,
}

impl std::fmt::Debug for LeaseTable {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("LeaseTable").field("bucket", &self.bucket).field("instance", &self.instance).finish()
    }
}

impl LeaseTable {
    /// Open `bucket` (creating it with `max_age = ttl` and `replicas`
    /// copies), refusing one made with another TTL.
    pub async fn open(
        js: &jetstream::Context,
        bucket: &str,
        ttl: Duration,
        replicas: usize,
        instance: &str,
    ) -> Result<LeaseTable, LeaseError> {
        let err = |message: String| LeaseError::Bucket { bucket: bucket.to_owned(), message };
        // A lease operation that takes longer than a tick is as good as
        // failed: give up then (not after the publishing `ack_timeout`), so
        // a holder cut off from NATS notices within 2/3 TTL + one tick.
        let mut js = js.clone();
        js.set_timeout((ttl / 3).max(Duration::from_millis(200)));
        let config = kv::Config {
            bucket: bucket.to_owned(),
            description: "alertd leases and live instances".to_owned(),
            history: 1,
            max_age: ttl,
            num_replicas: replicas.max(1),
            storage: jetstream::stream::StorageType::File,
            ..Default::default()
        };
        let kv = crate::checkpoint::open_bucket(&js, config).await.map_err(err)?;
        let mut table = LeaseTable {
            kv,
            bucket: bucket.to_owned(),
            instance: instance.to_owned(),
            ttl,
            started_at: Utc::now(),
        };
        let found = table.kv.status().await.map_err(|e| err(format!("reading its settings: {e}")))?.max_age();
        if found != ttl {
            return Err(LeaseError::TtlMismatch { bucket: bucket.to_owned(), found, configured: ttl });
        }
        table.started_at = Utc::now();
        Ok(table)
    }

    /// This instance's name.
    pub fn instance(&self) -> &str {
        &self.instance
    }

    /// The lease TTL.
    pub fn ttl(&self) -> Duration {
        self.ttl
    }

    fn err(&self, message: impl std::fmt::Display) -> LeaseError {
        LeaseError::Bucket { bucket: self.bucket.clone(), message: message.to_string() }
    }

    /// Say this instance is alive (for one more TTL).
    pub async fn heartbeat(&self) -> Result<(), LeaseError> {
        let record = MemberRecord {
            started_at: self.started_at,
            seen_at: Utc::now(),
            version: env!("CARGO_PKG_VERSION").to_owned(),
        };
        self.kv
            .put(format!("{MEMBER}{}", self.instance), json(&record))
            .await
            .map_err(|e| self.err(format!("heartbeat: {e}")))?;
        Ok(())
    }

    /// Say this instance is leaving (its sources are released separately).
    pub async fn leave(&self) -> Result<(), LeaseError> {
        self.kv
            .delete(format!("{MEMBER}{}", self.instance))
            .await
            .map_err(|e| self.err(format!("leave: {e}")))
    }

    /// The live instances, sorted.
    pub async fn members(&self) -> Result<Vec<String>, LeaseError> {
        Ok(self.names().await?.0)
    }

    /// The live instances and the sources some instance holds, both sorted,
    /// from one listing of the bucket's keys (what every tick needs; the
    /// lease values are not read).
    pub async fn names(&self) -> Result<(Vec<String>, Vec<String>), LeaseError> {
        let (mut members, mut leased) = (Vec::new(), Vec::new());
        for key in self.keys().await? {
            if let Some(member) = key.strip_prefix(MEMBER) {
                members.push(member.to_owned());
            } else if let Some(source) = key.strip_prefix(LEASE) {
                leased.push(source.to_owned());
            }
        }
        members.sort();
        leased.sort();
        Ok((members, leased))
    }

    async fn keys(&self) -> Result<Vec<String>, LeaseError> {
        let mut keys = self.kv.keys().await.map_err(|e| self.err(format!("listing keys: {e}")))?;
        let mut out = Vec::new();
        while let Some(k) = keys.next().await {
            out.push(k.map_err(|e| self.err(format!("listing keys: {e}")))?);
        }
        Ok(out)
    }

    /// Who holds `source`, if anyone.
    pub async fn holder(&self, source: &str) -> Result<Option<LeaseView>, LeaseError> {
        let entry = self.kv.entry(lease_key(source)).await.map_err(|e| self.err(format!("reading: {e}")))?;
        let Some(entry) = entry.filter(|e| e.operation == kv::Operation::Put) else { return Ok(None) };
        let record: LeaseRecord = serde_json::from_slice(&entry.value)
            .map_err(|e| self.err(format!("lease of {source} is not alertd's: {e}")))?;
        let epoch = if record.epoch == 0 { entry.revision } else { record.epoch };
        Ok(Some(LeaseView { source: source.to_owned(), record, epoch }))
    }

    /// Every lease, sorted by source.
    pub async fn leases(&self) -> Result<Vec<LeaseView>, LeaseError> {
        let (_, sources) = self.names().await?;
        let mut out = Vec::with_capacity(sources.len());
        for source in sources {
            if let Some(view) = self.holder(&source).await? {
                out.push(view);
            }
        }
        Ok(out)
    }

    /// Take `source` if nobody holds it. `None`: somebody does.
    pub async fn acquire(&self, source: &str) -> Result<Option<Held>, LeaseError> {
        let now = Utc::now();
        let record =
            LeaseRecord { instance: self.instance.clone(), epoch: 0, acquired_at: now, renewed_at: now };
        match self.kv.create(lease_key(source), json(&record)).await {
            Ok(revision) => Ok(Some(Held { revision, epoch: revision })),
            Err(e) if e.kind() == kv::CreateErrorKind::AlreadyExists => Ok(None),
            Err(e) => Err(self.err(format!("taking {source}: {e}"))),
        }
    }

    /// Renew `held` for one more TTL.
    pub async fn renew(
        &self,
        source: &str,
        held: Held,
        acquired_at: DateTime<Utc>,
    ) -> Result<Renewal, LeaseError> {
        let record = LeaseRecord {
            instance: self.instance.clone(),
            epoch: held.epoch,
            acquired_at,
            renewed_at: Utc::now(),
        };
        match self.kv.update(lease_key(source), json(&record), held.revision).await {
            Ok(revision) => Ok(Renewal::Renewed(Held { revision, epoch: held.epoch })),
            Err(e) if e.kind() == kv::UpdateErrorKind::WrongLastRevision => Ok(Renewal::Lost),
            Err(e) => Err(self.err(format!("renewing {source}: {e}"))),
        }
    }

    /// Let go of `held` now, so another instance need not wait for it to
    /// expire. A lease that is no longer ours is left alone.
    pub async fn release(&self, source: &str, held: Held) -> Result<(), LeaseError> {
        match self.kv.delete_expect_revision(lease_key(source), Some(held.revision)).await {
            Ok(()) => Ok(()),
            Err(e) if e.kind() == kv::DeleteErrorKind::WrongLastRevision => Ok(()),
            Err(e) => Err(self.err(format!("releasing {source}: {e}"))),
        }
    }
}

fn lease_key(source: &str) -> String {
    format!("{LEASE}{source}")
}

fn json<T: Serialize>(value: &T) -> Bytes {
    // Plain structs of strings and times always serialize.
    Bytes::from(serde_json::to_vec(value).unwrap_or_default())
}

/// The instance that should hold `source` among `members`: highest
/// rendezvous score, from a hash that is the same in every alertd build
/// (UUIDv5, i.e. SHA-1), so all instances agree without talking.
pub fn preferred<'m>(source: &str, members: &'m [String]) -> Option<&'m str> {
    members.iter().max_by_key(|m| score(source, m)).map(String::as_str)
}

/// Who should hold each of `sources`: rendezvous hashing with bounded
/// load. Sources, in name order, each take their highest-scoring member
/// that holds fewer than ⌈sources / members⌉, so a handful of sources is
/// still spread evenly (plain rendezvous leaves some instances idle) and
/// every instance computes the same answer from the same config and
/// member list.
pub fn assign(sources: &[String], members: &[String]) -> std::collections::HashMap<String, String> {
    let mut out = std::collections::HashMap::with_capacity(sources.len());
    if members.is_empty() {
        return out;
    }
    let cap = sources.len().div_ceil(members.len());
    let mut load = vec![0usize; members.len()];
    let mut ordered: Vec<&String> = sources.iter().collect();
    ordered.sort();
    ordered.dedup();
    for source in ordered {
        let mut ranked: Vec<usize> = (0..members.len()).collect();
        ranked.sort_by_key(|&i| std::cmp::Reverse(score(source, &members[i])));
        if let Some(&i) = ranked.iter().find(|&&i| load[i] < cap) {
            load[i] += 1;
            out.insert(source.clone(), members[i].clone());
        }
    }
    out
}

fn score(source: &str, member: &str) -> u128 {
    uuid::Uuid::new_v5(&uuid::Uuid::NAMESPACE_OID, format!("alertd-lease\0{source}\0{member}").as_bytes())
        .as_u128()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn rendezvous_spreads_sources_evenly_and_moves_few_when_a_member_leaves() {
        let members: Vec<String> = (0..3).map(|i| format!("node-{i}")).collect();
        let sources: Vec<String> = (0..300).map(|i| format!("tenant-{i}")).collect();
        let owner = |members: &[String]| -> Vec<String> {
            sources.iter().map(|s| preferred(s, members).unwrap().to_owned()).collect()
        };
        let before = owner(&members);
        for m in &members {
            let n = before.iter().filter(|o| *o == m).count();
            assert!((70..=130).contains(&n), "{m} prefers {n} of 300");
        }
        let after = owner(&members[..2]);
        let moved = before.iter().zip(&after).filter(|(b, a)| b != a).count();
        let orphaned = before.iter().filter(|o| *o == "node-2").count();
        assert_eq!(moved, orphaned, "only the leaving member's sources move");
    }

    #[test]
    fn nobody_is_preferred_among_no_members() {
        assert_eq!(preferred("a", &[]), None);
        assert!(assign(&["a".to_owned()], &[]).is_empty());
    }

    #[test]
    fn bounded_assignment_spreads_even_a_few_sources_evenly() {
        let members: Vec<String> = (0..3).map(|i| format!("node-{i}")).collect();
        for n in [1, 2, 6, 7, 300] {
            let sources: Vec<String> = (0..n).map(|i| format!("tenant-{i}")).collect();
            let owners = assign(&sources, &members);
            assert_eq!(owners.len(), n, "every source has an owner");
            let cap = n.div_ceil(3);
            for m in &members {
                let held = owners.values().filter(|o| *o == m).count();
                assert!(
                    held <= cap && held + 1 >= cap.min(n / 3 + 1).saturating_sub(1),
                    "{m}: {held} of {n}"
                );
            }
            // The same answer whatever order the config lists them in.
            let mut reversed = sources.clone();
            reversed.reverse();
            assert_eq!(assign(&reversed, &members), owners);
        }
        let six: Vec<String> = (0..6).map(|i| format!("s{i}")).collect();
        let owners = assign(&six, &members);
        for m in &members {
            assert_eq!(owners.values().filter(|o| *o == m).count(), 2, "6 sources over 3 instances: 2 each");
        }
    }
}
