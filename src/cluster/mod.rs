//! Scale-out: several alertd instances load the same config and share its
//! sources through leases in a NATS JetStream KV bucket ([`leases`]).
//!
//! Every instance runs one [`membership`](run) task and, per source, one
//! lease keeper beside the source's poll loop (in [`crate::schedule`]).
//! Each tick (a third of the lease TTL) the membership task writes this
//! instance's heartbeat and reads the bucket's keys; each keeper then
//!
//! - renews its lease if it holds one, and stops the source (the poll in
//!   flight finishes its page and commits) when the lease is gone or could
//!   not be renewed for two thirds of the TTL;
//! - hands the source over when the assignment (rendezvous hashing with
//!   bounded load, [`assign`]) gives it to another live instance, once the
//!   poll in flight has finished;
//! - takes the source when this instance is preferred, or when it has been
//!   without a holder for two ticks (its preferred instance is not taking it).
//!
//! The lease decides who polls; the cursor's compare-and-set in
//! [`crate::checkpoint`] decides who may move the cursor, so even a holder
//! that has not noticed yet that it lost its lease cannot move a cursor
//! another instance moved.

pub mod leases;
pub mod status;

use std::collections::{HashMap, HashSet};
use std::sync::Arc;
use std::time::Instant;

use tokio::sync::{Mutex, watch};
use tokio_util::sync::CancellationToken;
use tokio_util::task::TaskTracker;

use crate::internal_events::{LeaseAcquired, LeaseBucketFailed, LeaseLost, LeaseReleased, MembersChanged};
use crate::telemetry::Telemetry;

pub use leases::{LeaseError, LeaseTable, assign, preferred};

/// The right to poll a source, for as long as `token` is not cancelled.
#[derive(Debug, Clone)]
pub struct Tenure {
    /// The lease's epoch (`None` without `[cluster]`: the source is always
    /// this instance's).
    pub epoch: Option<u64>,
    /// Cancelled when the tenure ends (lease lost or handed over, or
    /// shutdown): the poll stops after its page in flight.
    pub token: CancellationToken,
    /// Cancelled only when the lease is *lost* (another instance may be
    /// polling already): the poll is abandoned at once, even mid-request.
    /// That is safe because nothing it left half done counts: a page is
    /// committed after its PubAcks or not at all, and a commit is one
    /// compare-and-set.
    pub revoked: CancellationToken,
}

/// What a source's poll loop and its lease keeper share.
#[derive(Debug, Clone)]
pub struct Slot {
    /// The current tenure, if any.
    pub tenure: watch::Receiver<Option<Tenure>>,
    /// Held by the poll loop while it polls: the keeper releases a lease
    /// only when it can take this.
    pub busy: Arc<Mutex<()>>,
}

impl Slot {
    /// A slot whose tenure never ends before `shutdown`: a source without
    /// `[cluster]`.
    pub fn always(shutdown: &CancellationToken) -> Slot {
        let tenure = Tenure { epoch: None, token: shutdown.clone(), revoked: CancellationToken::new() };
        let (_tx, rx) = watch::channel(Some(tenure));
        Slot { tenure: rx, busy: Arc::new(Mutex::new(())) }
    }
}

/// A source as the cluster sees it.
struct Keeper {
    source: String,
    tx: watch::Sender<Option<Tenure>>,
    busy: Arc<Mutex<()>>,
}

/// What the membership task last read from the bucket.
#[derive(Debug, Clone, Default)]
struct View {
    members: Vec<String>,
    leased: HashSet<String>,
    /// Who should hold each source ([`assign`]).
    owners: HashMap<String, String>,
    /// Whether the read succeeded (a failed read keeps the last view).
    fresh: bool,
}

/// This instance's part of the cluster: one lease keeper per source, added
/// and removed as the configuration changes (a reload).
pub struct Cluster {
    table: LeaseTable,
    sources: Arc<std::sync::Mutex<Vec<String>>>,
    keepers: HashMap<String, (CancellationToken, tokio::task::JoinHandle<()>, Slot)>,
    tracker: TaskTracker,
    view: watch::Receiver<View>,
    telemetry: Arc<Telemetry>,
    shutdown: CancellationToken,
}

impl Cluster {
    /// Share `source`: its slot gets a tenure whenever this instance holds
    /// the source's lease.
    /// A source already shared keeps its keeper (and lease): its slot again.
    pub fn add(&mut self, source: &str) -> Slot {
        if let Some((_, _, slot)) = self.keepers.get(source) {
            return slot.clone();
        }
        let (tx, rx) = watch::channel(None);
        let busy = Arc::new(Mutex::new(()));
        let keeper = Keeper { source: source.to_owned(), tx, busy: Arc::clone(&busy) };
        let stop = self.shutdown.child_token();
        let task = self.tracker.spawn(keep(
            self.table.clone(),
            keeper,
            self.view.clone(),
            Arc::clone(&self.telemetry),
            stop.clone(),
        ));
        let slot = Slot { tenure: rx, busy };
        self.keepers.insert(source.to_owned(), (stop, task, slot.clone()));
        let mut sources = self.sources.lock().unwrap_or_else(std::sync::PoisonError::into_inner);
        if !sources.iter().any(|s| s == source) {
            sources.push(source.to_owned());
        }
        slot
    }

    /// Stop sharing `source`: its keeper ends the tenure (the poll in flight
    /// finishes its page), then releases the lease so no instance keeps it;
    /// returns once the lease is released. Every instance reloading the
    /// same file drops it from its assignment too.
    pub async fn remove(&mut self, source: &str) {
        self.sources.lock().unwrap_or_else(std::sync::PoisonError::into_inner).retain(|s| s != source);
        if let Some((stop, task, _)) = self.keepers.remove(source) {
            stop.cancel();
            let _ = task.await;
        }
    }
}

/// The cluster with no source yet ([`Cluster::add`] them), and the task that
/// runs the membership until `shutdown`, releasing every lease at the end.
pub fn start(
    table: LeaseTable,
    telemetry: Arc<Telemetry>,
    shutdown: CancellationToken,
) -> (Cluster, impl std::future::Future<Output = ()>) {
    let (view_tx, view_rx) = watch::channel(View::default());
    let sources = Arc::new(std::sync::Mutex::new(Vec::new()));
    let tracker = TaskTracker::new();
    let cluster = Cluster {
        table: table.clone(),
        sources: Arc::clone(&sources),
        keepers: HashMap::new(),
        tracker: tracker.clone(),
        view: view_rx,
        telemetry: Arc::clone(&telemetry),
        shutdown: shutdown.clone(),
    };
    (cluster, run(table, sources, view_tx, tracker, telemetry, shutdown))
}

async fn run(
    table: LeaseTable,
    sources: Arc<std::sync::Mutex<Vec<String>>>,
    view_tx: watch::Sender<View>,
    tracker: TaskTracker,
    telemetry: Arc<Telemetry>,
    shutdown: CancellationToken,
) {
    let tick = table.ttl() / 3;
    let mut last = View::default();
    loop {
        let mut view = read_view(&table).await;
        let names = sources.lock().unwrap_or_else(std::sync::PoisonError::into_inner).clone();
        view.owners = assign(&names, &view.members);
        if view.fresh && view.members != last.members {
            MembersChanged { members: &view.members }.emit(&telemetry);
        }
        if view.fresh {
            last = view.clone();
            view_tx.send_replace(view);
        } else {
            // Keepers still tick (to renew, or to notice they cannot) but
            // take nothing on a stale view.
            view_tx.send_replace(View { fresh: false, ..last.clone() });
        }
        tokio::select! {
            () = shutdown.cancelled() => break,
            () = tokio::time::sleep(tick) => {}
        }
    }
    // The keepers release their leases once their polls have stopped.
    tracker.close();
    tracker.wait().await;
    if let Err(error) = table.leave().await {
        LeaseBucketFailed { operation: "leave", error: &error }.emit();
    }
}

/// Heartbeat, then read who is alive and which sources are leased.
async fn read_view(table: &LeaseTable) -> View {
    if let Err(error) = table.heartbeat().await {
        LeaseBucketFailed { operation: "heartbeat", error: &error }.emit();
        return View::default();
    }
    match table.names().await {
        Ok((members, leased)) => {
            View { members, leased: leased.into_iter().collect(), owners: HashMap::new(), fresh: true }
        }
        Err(error) => {
            LeaseBucketFailed { operation: "read members and leases", error: &error }.emit();
            View::default()
        }
    }
}

/// A lease this keeper holds.
struct Holding {
    held: leases::Held,
    acquired_at: chrono::DateTime<chrono::Utc>,
    renewed: Instant,
    token: CancellationToken,
    revoked: CancellationToken,
    handing_to: Option<String>,
}

/// One source's lease keeper, until `stop` (shutdown, or the source's
/// removal).
async fn keep(
    table: LeaseTable,
    keeper: Keeper,
    mut view: watch::Receiver<View>,
    telemetry: Arc<Telemetry>,
    stop: CancellationToken,
) {
    let me = table.instance().to_owned();
    let source = keeper.source.as_str();
    let mut holding: Option<Holding> = None;
    let mut free_ticks = 0u32;
    loop {
        tokio::select! {
            () = stop.cancelled() => break,
            changed = view.changed() => if changed.is_err() { break },
        }
        let current = view.borrow_and_update().clone();
        let wanted = current.owners.get(source).cloned();
        if let Some(h) = holding.as_mut() {
            match table.renew(source, h.held, h.acquired_at).await {
                Ok(leases::Renewal::Renewed(held)) => {
                    h.held = held;
                    h.renewed = Instant::now();
                }
                Ok(leases::Renewal::Lost) => {
                    end(&keeper, &mut holding, &telemetry, "another instance holds it");
                    continue;
                }
                Err(error) => {
                    LeaseBucketFailed { operation: "renew", error: &error }.emit();
                    if h.renewed.elapsed() > table.ttl() * 2 / 3 {
                        end(&keeper, &mut holding, &telemetry, "not renewed in time; it may expire");
                        continue;
                    }
                }
            }
            // Hand over to the preferred instance once the poll in flight is done.
            if let Some(h) = holding.as_mut().filter(|_| current.fresh) {
                if let Some(to) = wanted.as_ref().filter(|w| **w != me && current.members.contains(&me)) {
                    h.handing_to = Some(to.clone());
                    h.token.cancel();
                }
                if h.handing_to.is_some()
                    && let Ok(guard) = keeper.busy.try_lock()
                {
                    release(&table, &keeper, &mut holding, &telemetry).await;
                    drop(guard);
                }
            }
            continue;
        }
        if !current.fresh {
            continue;
        }
        let leased = current.leased.contains(source);
        free_ticks = if leased { 0 } else { free_ticks + 1 };
        let is_preferred = wanted.as_deref() == Some(me.as_str());
        if !(is_preferred || free_ticks >= 2) {
            continue;
        }
        match table.acquire(source).await {
            Ok(Some(held)) => {
                let token = stop.child_token();
                LeaseAcquired { source, epoch: held.epoch, preferred: is_preferred }.emit(&telemetry);
                let revoked = CancellationToken::new();
                keeper.tx.send_replace(Some(Tenure {
                    epoch: Some(held.epoch),
                    token: token.clone(),
                    revoked: revoked.clone(),
                }));
                holding = Some(Holding {
                    held,
                    acquired_at: chrono::Utc::now(),
                    renewed: Instant::now(),
                    token,
                    revoked,
                    handing_to: None,
                });
                free_ticks = 0;
            }
            Ok(None) => {}
            Err(error) => LeaseBucketFailed { operation: "acquire", error: &error }.emit(),
        }
    }
    // Shutdown or removal: the poll loop stops after its page; then let the lease go
    // so another instance takes the source at once instead of after the TTL.
    if holding.is_some() {
        let guard = tokio::time::timeout(table.ttl(), keeper.busy.lock()).await;
        if guard.is_ok() {
            release(&table, &keeper, &mut holding, &telemetry).await;
        }
    }
}

/// The lease is gone: stop the source.
fn end(keeper: &Keeper, holding: &mut Option<Holding>, telemetry: &Telemetry, reason: &str) {
    if let Some(h) = holding.take() {
        h.revoked.cancel();
        h.token.cancel();
        keeper.tx.send_replace(None);
        LeaseLost { source: &keeper.source, epoch: h.held.epoch, reason }.emit(telemetry);
    }
}

/// Let the lease go (the source's poll loop is idle).
async fn release(table: &LeaseTable, keeper: &Keeper, holding: &mut Option<Holding>, telemetry: &Telemetry) {
    if let Some(h) = holding.take() {
        h.token.cancel();
        keeper.tx.send_replace(None);
        if let Err(error) = table.release(&keeper.source, h.held).await {
            // It expires after the TTL anyway.
            LeaseBucketFailed { operation: "release", error: &error }.emit();
        }
        LeaseReleased { source: &keeper.source, epoch: h.held.epoch, to: h.handing_to.as_deref() }
            .emit(telemetry);
    }
}
