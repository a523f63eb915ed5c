//! Revisits (issue 19): re-reading recent history for vendors whose items
//! change in place without a change feed.
//!
//! A regular poll sees an item change only while the item is inside the
//! source's `overlap`. A revisit walks `(now − window, now − overlap)` with
//! the vendor's own requests and page scheme, compares each item's current
//! event id (which fingerprints its revision) with the one last published
//! for it, and publishes only the items whose revision changed. The store
//! remembers, per source and item, the event id last published and the
//! item's time (`checkpoint::Revision`); the regular walk records what it
//! publishes, a revisit what it finds changed, and a complete revisit
//! forgets the items that left the window.
//!
//! **When.** A revisit is due `every` after the last one started (the
//! first one `every` after the source's first complete walk, never while
//! that walk, a backfill, is unfinished, and never past the regular walk's
//! watermark). The
//! scheduler runs it between two polls of the source, in the same task, so a
//! poll and a revisit never race on the store. **Budget**: before each
//! request the revisit asks the source's throttle whether a request fits
//! now, leaving in every rate-limit window what the regular polls use
//! ([`Budget`]), with the limit's spacing elapsed again before the next
//! poll is due; a fetch still under way at that time is dropped. Otherwise
//! the revisit pauses, its position stored, and continues after the next
//! poll: a poll is never delayed by a revisit beyond the commit of a page
//! already fetched.
//!
//! **Crash safety.** A revisit page is published first; only once every
//! message has its PubAck are the page's revisions and the revisit's next
//! position committed, together. A crash before the commit re-fetches the
//! page, whose items then compare as changed again and are re-published
//! under the same event ids (JetStream's duplicate window drops them); a
//! crash after it continues on the next page.
//!
//! The poller hands a revisit its requests, encoding and sink through the
//! narrow [`Access`] trait, so this module knows no poller.

#[cfg(test)]
mod tests;

use std::collections::HashSet;
use std::time::Duration;

use chrono::{DateTime, Utc};
use futures::future::BoxFuture;
use serde::{Deserialize, Serialize};
use tokio_util::sync::CancellationToken;

use crate::checkpoint::{Revision, RevisitMove, Store, StoreError};
use crate::config::SourceConfig;
use crate::event::Event;
use crate::incremental::{earlier, parse_time};
use crate::internal_events::{RevisitCounts, RevisitPageDone};
use crate::paginate::{self, Page, PageHandler, PaginateError, Position};
use crate::publish::{Message, PublishError, Sink, dead_letter};
use crate::telemetry::Telemetry;
use crate::throttle::{RateLimit, Throttle};
use crate::vendors::{NormalizeContext, Vendor};

/// A source's revisit settings, resolved from its `revisit` table and the
/// vendor's default.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Settings {
    /// How far back a revisit walks.
    pub window: Duration,
    /// How often a revisit starts.
    pub every: Duration,
    /// The source's overlap: a revisit ends where the regular poll's
    /// window begins.
    pub overlap: Duration,
}

impl Settings {
    /// The revisit of `source` of vendor `V`, or `None` when it is off (the
    /// vendor's default is off and the source sets none, the source turns it
    /// off, or the vendor cannot revisit).
    pub fn of<V: Vendor>(source: &SourceConfig) -> Option<Settings> {
        let configured = source.revisit.unwrap_or_default();
        if configured.enabled == Some(false) {
            return None;
        }
        let (window, every) = match (V::REVISIT, source.revisit) {
            (Some((window, every)), _) => {
                (configured.window.unwrap_or(window), configured.every.unwrap_or(every))
            }
            // Off by default, but the source asks for one.
            (None, Some(_)) => {
                (configured.window.unwrap_or(DEFAULT_WINDOW), configured.every.unwrap_or(DEFAULT_EVERY))
            }
            (None, None) => return None,
        };
        (window > source.overlap).then_some(Settings { window, every, overlap: source.overlap })
    }
}

/// How often a revisit waiting for a spare request asks the throttle again.
const SPARE_CHECK: Duration = Duration::from_millis(50);

/// The window of a source that asks for a revisit its vendor does not make
/// by default.
pub const DEFAULT_WINDOW: Duration = Duration::from_secs(7 * 86_400);
/// How often such a revisit starts.
pub const DEFAULT_EVERY: Duration = Duration::from_secs(3600);

/// What a revisit may spend in one run: the throttle's spare requests until
/// the next poll is due.
#[derive(Debug, Clone, Copy)]
pub struct Budget {
    /// When the next regular poll is due: the run ends before it.
    pub deadline: tokio::time::Instant,
    /// About how often the regular poll runs.
    pub poll_interval: Duration,
    /// Requests the last regular poll made (at least 1).
    pub poll_requests: u32,
}

impl Budget {
    /// Requests of `limit`'s window left to the regular polls: as many as
    /// polls start in the window (one poll about every `poll_interval`; a
    /// tenth of an interval of slack, since a schedule's ticks wander by
    /// the poll's own duration), times the requests of one poll.
    pub fn reserve(&self, limit: &RateLimit) -> u32 {
        let interval = self.poll_interval.as_secs_f64().max(0.001);
        let polls =
            (limit.period.as_secs_f64() / interval - 0.1).ceil().clamp(1.0, f64::from(u32::MAX)) as u32;
        polls.saturating_mul(self.poll_requests.max(1))
    }
}

/// A step of a revisit that failed, as the poller reports it.
#[derive(Debug, Clone, thiserror::Error)]
#[error("{message}")]
pub struct Failure {
    /// A bounded label (the poll error's code).
    pub code: &'static str,
    /// What happened.
    pub message: String,
}

/// Why a revisit run failed (its committed pages stay).
#[derive(Debug, thiserror::Error)]
pub enum RevisitError {
    /// A request, a page or an encoding failed.
    #[error(transparent)]
    Failed(#[from] Failure),
    /// The store refused.
    #[error(transparent)]
    Store(#[from] StoreError),
    /// NATS did not acknowledge the page's updates.
    #[error(transparent)]
    Publish(#[from] PublishError),
    /// The vendor's pages misbehaved.
    #[error(transparent)]
    Paginate(#[from] PaginateError),
    /// The budget ran out (not a failure: the revisit pauses).
    #[error("the revisit's budget ran out before the next poll")]
    OutOfBudget,
}

impl RevisitError {
    /// A bounded label for logs.
    pub fn code(&self) -> &'static str {
        match self {
            RevisitError::Failed(f) => f.code,
            RevisitError::Store(e) => e.code(),
            RevisitError::Publish(_) => "publish",
            RevisitError::Paginate(_) => "paginate",
            RevisitError::OutOfBudget => "out_of_budget",
        }
    }
}

/// What a revisit needs from the poller of its source.
pub trait Access<V: Vendor>: Send + Sync {
    /// The source's name.
    fn source(&self) -> &str;
    /// The vendor.
    fn vendor(&self) -> &V;
    /// The checkpoint store.
    fn store(&self) -> &Store;
    /// Where events go.
    fn sink(&self) -> &Sink;
    /// Metrics.
    fn telemetry(&self) -> &Telemetry;
    /// The source's throttle (shared with its regular polls).
    fn throttle(&self) -> &Throttle;
    /// The most pages one walk may take.
    fn max_pages(&self) -> u64;
    /// Fetch and parse the page at `at` of `plan`, as a regular walk does
    /// (throttled, retried).
    fn fetch<'a>(
        &'a self,
        plan: &'a V::Plan,
        at: &'a Position,
    ) -> BoxFuture<'a, Result<Option<Page>, Failure>>;
    /// The messages of `event` (found by a walk of `plan`), one per
    /// configured format.
    fn encode(&self, plan: &V::Plan, event: &Event) -> Result<Vec<Message>, Failure>;
}

/// An unfinished revisit, stored as JSON so the next run resumes it.
#[derive(Debug, Serialize, Deserialize)]
struct RevisitWalk<P> {
    plan: P,
    next: Position,
    /// The window's start: revisions of older items are forgotten at the end.
    after: DateTime<Utc>,
    /// The window's end: newer items are the regular poll's.
    before: DateTime<Utc>,
}

/// Run `source`'s revisit if one is due or unfinished, until it ends, its
/// budget runs out, or `shutdown`. `Ok(None)`: nothing was due.
pub async fn run<V: Vendor, A: Access<V>>(
    access: &A,
    settings: &Settings,
    budget: Budget,
    shutdown: &CancellationToken,
) -> Result<Option<RevisitCounts>, RevisitError> {
    let store = access.store();
    let name = access.source();
    let state = store.revisit_state(name).await?;
    let now = Utc::now();
    let resumed = state.walk.as_deref().and_then(|text| match serde_json::from_str::<RevisitWalk<V::Plan>>(text) {
        Ok(walk) => Some(walk),
        Err(error) => {
            tracing::warn!(message = "Stored revisit state is unreadable; starting a new revisit.", source = %name, %error);
            None
        }
    });
    let (walk, started_at) = match (resumed, state.started_at) {
        (Some(walk), Some(started)) => (walk, started),
        _ => {
            let due = state.started_at.is_none_or(|last| {
                chrono::Duration::from_std(settings.every).is_ok_and(|every| now - last >= every)
            });
            if !due {
                return Ok(None);
            }
            // Only what the regular walk has been through: never while its
            // first walk (a backfill) is unfinished, and never past its
            // watermark's overlap.
            let cursor = store.load(name).await?;
            let Some(mark) = cursor.watermark.as_deref().and_then(parse_time) else { return Ok(None) };
            if cursor.walk.is_some() && state.started_at.is_none() {
                return Ok(None);
            }
            let after = earlier(now, settings.window);
            let before = earlier(now.min(mark), settings.overlap);
            if before <= after {
                return Ok(None);
            }
            // The first revisit of a source is due `every` after its first
            // walk: that walk has just read the window at its current
            // revisions.
            if state.started_at.is_none() {
                let first = RevisitMove::Last { started_at: now, prune_before: after };
                store.commit_revisit(name, first, Vec::new()).await?;
                return Ok(None);
            }
            let Some(plan) = access.vendor().revisit_plan(after, before) else { return Ok(None) };
            (RevisitWalk { plan, next: access.vendor().scheme().first(), after, before }, now)
        }
    };
    let start = walk.next.clone();
    let mut handler = Handler {
        access,
        walk,
        started_at,
        budget,
        shutdown,
        counts: RevisitCounts::default(),
        _vendor: std::marker::PhantomData,
    };
    let scheme = access.vendor().scheme();
    let result = paginate::walk(&scheme, start, access.max_pages(), &mut handler).await;
    match result {
        Ok(outcome) => {
            handler.counts.complete = outcome.complete;
            Ok(Some(handler.counts))
        }
        Err(RevisitError::OutOfBudget) => Ok(Some(handler.counts)),
        Err(error) => Err(error),
    }
}

struct Handler<'a, V: Vendor, A: Access<V>> {
    access: &'a A,
    walk: RevisitWalk<V::Plan>,
    started_at: DateTime<Utc>,
    budget: Budget,
    shutdown: &'a CancellationToken,
    counts: RevisitCounts,
    _vendor: std::marker::PhantomData<fn() -> V>,
}

impl<V: Vendor, A: Access<V>> PageHandler for Handler<'_, V, A> {
    type Error = RevisitError;

    async fn fetch(&mut self, at: &Position) -> Result<Option<Page>, RevisitError> {
        let budget = self.budget;
        // Wait for a spare request (the polls' requests age out of their
        // windows, the pacing passes) until the next poll is due.
        while !self.access.throttle().spare(|l| budget.reserve(l), budget.deadline) {
            let retry = tokio::time::Instant::now() + SPARE_CHECK;
            if self.shutdown.is_cancelled() || retry >= budget.deadline {
                return Err(RevisitError::OutOfBudget);
            }
            tokio::select! {
                () = tokio::time::sleep_until(retry) => {}
                () = self.shutdown.cancelled() => return Err(RevisitError::OutOfBudget),
            }
        }
        if self.shutdown.is_cancelled() {
            return Err(RevisitError::OutOfBudget);
        }
        let access = self.access;
        let plan = &self.walk.plan;
        // A request still under way when the next poll is due is dropped
        // (nothing was committed for it) and asked again in the next run.
        match tokio::time::timeout_at(budget.deadline, access.fetch(plan, at)).await {
            // `None`: the source is stopping; the revisit pauses here.
            Ok(page) => page?.map_or(Err(RevisitError::OutOfBudget), |page| Ok(Some(page))),
            Err(_) => Err(RevisitError::OutOfBudget),
        }
    }

    async fn deliver(
        &mut self,
        at: &Position,
        page: Page,
        next: Option<&Position>,
    ) -> Result<bool, RevisitError> {
        let access = self.access;
        let name = access.source();
        let ingested_at = Utc::now();
        let ctx = NormalizeContext::new(name, ingested_at);
        let mut found = Vec::with_capacity(page.items.len());
        let mut in_page = HashSet::new();
        for (i, item) in page.items.iter().enumerate() {
            // Items that fail to normalize are the regular walk's dead
            // letters; a revisit only looks for new revisions.
            let Ok(n) = access.vendor().normalize(item, &ctx.with_text(page.text(i))) else { continue };
            // Vendors that filter only on a start (Red Canary's `since`)
            // answer newer items too: those are the regular poll's.
            if n.item_time >= self.walk.before || n.item_time <= self.walk.after {
                continue;
            }
            if in_page.insert(n.event.native_id.clone()) {
                found.push(n);
            }
        }
        let ids: Vec<(String, DateTime<Utc>)> =
            found.iter().map(|n| (n.event.native_id.clone(), n.item_time)).collect();
        let published = access.store().published_revisions(name, ids).await?;
        let mut messages = Vec::new();
        let mut revisions = Vec::new();
        let mut unchanged = 0;
        for n in &found {
            let id = n.event.id.to_string();
            if published.get(&n.event.native_id) == Some(&id) {
                unchanged += 1;
                continue;
            }
            messages.extend(access.encode(&self.walk.plan, &n.event)?);
            revisions.push(Revision {
                native_id: n.event.native_id.clone(),
                event_id: id,
                item_time: n.item_time,
            });
        }
        let origin = dead_letter::Origin {
            prefix: access.sink().subject_prefix(),
            vendor: V::KEY,
            source: name,
            ingested_at,
        };
        access.sink().fit(&mut messages, origin);
        access.sink().publish(messages).await?;
        let updates = revisions.len() as u64;
        let change = match next {
            Some(next) => {
                self.walk.next = next.clone();
                let walk = serde_json::to_string(&self.walk).map_err(|e| Failure {
                    code: "bad_state",
                    message: format!("revisit state at {at}: {e}"),
                })?;
                RevisitMove::Page { walk, started_at: self.started_at }
            }
            None => RevisitMove::Last { started_at: self.started_at, prune_before: self.walk.after },
        };
        access.store().commit_revisit(name, change, revisions).await?;
        self.counts.pages += 1;
        self.counts.compared += found.len() as u64;
        self.counts.updates += updates;
        self.counts.unchanged += unchanged;
        RevisitPageDone { source: name, vendor: V::KEY, compared: found.len() as u64, updates }
            .emit(access.telemetry());
        Ok(!self.shutdown.is_cancelled())
    }
}

/// The bookkeeping a regular walk leaves for revisits: the revisions of
/// the events it published (call after their PubAcks, before the cursor
/// commit).
pub fn published_by_walk(events: &[(&Event, DateTime<Utc>)]) -> Vec<Revision> {
    events
        .iter()
        .map(|(event, item_time)| Revision {
            native_id: event.native_id.clone(),
            event_id: event.id.to_string(),
            item_time: *item_time,
        })
        .collect()
}
