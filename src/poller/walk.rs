//! One walk's side of the pages: fetch through the vendor, then per page
//! normalize, drop what the store has as delivered, encode for every
//! configured format, publish, and commit once every message is
//! acknowledged.
//!
//! Pages are pipelined: the next page's request goes out (and its answer
//! is read and, on a blocking thread, parsed) while a page is normalized,
//! encoded and sent, and a page's messages are sent and the walk goes on to
//! the next page while their acks are outstanding. At
//! most [`PAGES_IN_FLIGHT`] pages are sent and not yet acknowledged (and
//! the sink keeps at most its window of acks outstanding per walk); while a
//! page is fetched the walk keeps settling the acks that arrive. Pages are
//! committed in the order they were fetched, and a commit covers only pages
//! whose every message, and every message of every page before them, was
//! acknowledged: the acknowledged pages at the front of the queue, batched
//! into one transaction (at most [`PAGES_PER_COMMIT`], or fewer once the
//! oldest of them has waited [`COMMIT_WITHIN`]). The walk's last page, a
//! stop (shutdown, tenure ended) and a failure drain the queue: what was
//! acknowledged before the failure is committed, nothing after it.
//!
//! Memory: the queue holds at most [`PAGES_IN_FLIGHT`] unacknowledged and
//! [`PAGES_PER_COMMIT`] acknowledged pages, and keeps of each only its seen
//! ids and its walk state (about 100 bytes per event: 80 pages of 100
//! events are under 1 MB), plus the ids of the last [`RECENT_PAGES`]
//! committed pages that the store did not take (about 100 KB at 100 items
//! a page); the messages are handed to the sink when sent,
//! and those awaiting an ack are bounded by the sink's window (1,024 per
//! walk for JetStream, about 1.5 MB of 1.4 KB events per format); the pages
//! being prepared and fetched are two pages (each at most ten times the
//! page size, see `Poller::max_page_items`, and `max_response_bytes` as
//! text).

use std::borrow::Cow;
use std::collections::{HashSet, VecDeque};
use std::time::{Duration, Instant};

use bytes::Bytes;
use chrono::Utc;
use tokio_util::sync::CancellationToken;

use crate::checkpoint::Seen;
use crate::config::Credential;
use crate::http::FetchContext;
use crate::internal_events::{
    ApiUsageReported, DeadLettered, DeadLettersCapped, ErrorAnsweredAsEmpty, OversizedDeadLettered,
    PageDelivered,
};
use crate::ocsf;
use crate::paginate::{Page, PageHandler, Position};
use crate::publish::{Format, Message, Pipeline, PublishError, PublishReport, dead_letter, event_subject};
use crate::vendors::{Finish, NormalizeContext, NormalizeError, PageError, Vendor};

use super::{PollError, PollReport, Poller, WalkState, throttling};

/// The poller's side of one walk.
pub(super) struct Handler<'a, V: Vendor> {
    poller: &'a Poller<V>,
    key: Credential,
    walk: WalkState<V::Plan>,
    shutdown: &'a CancellationToken,
    report: PollReport,
    /// Dead letters this poll may still send one by one.
    dead_budget: usize,
    /// The sink's side of the pages sent.
    pipeline: Pipeline,
    /// Pages sent and not yet committed, oldest first.
    pages: VecDeque<Sent>,
    /// The ids of those pages' events and dead letters, and of the ids the
    /// last [`RECENT_PAGES`] committed pages did not store: a later page
    /// repeating one (a page boundary shifted by new items) skips it as
    /// the store would.
    pending_ids: HashSet<String>,
    /// Seen ids of items older than this are not stored (the walk's end
    /// would prune them; see [`Vendor::forget_before`]).
    forget_before: Option<chrono::DateTime<Utc>>,
    /// The ids the last committed pages did not store, oldest first.
    recent: VecDeque<Vec<String>>,
    /// The source's subjects, built once per walk.
    subjects: Subjects,
}

/// A source's event and finding subjects for its vendor's kind of item:
/// three escaped tokens and a `format!` per message were 2 % of a
/// backfill's instructions (issue 16, docs/performance.md).
struct Subjects {
    kind: crate::event::Kind,
    alertd: String,
    ocsf: String,
}

impl Subjects {
    fn of<V: Vendor>(poller: &Poller<V>) -> Subjects {
        let prefix = poller.deps.sink.subject_prefix();
        let kind = poller.vendor.kind();
        Subjects {
            kind,
            alertd: event_subject(prefix, V::KEY, &poller.name, kind.as_str()),
            ocsf: ocsf::subject(prefix, V::KEY, &poller.name, kind.as_str()),
        }
    }
}

/// Committed pages whose unstored ids the walk still remembers. A vendor
/// whose list has no upper bound (Red Canary's `since`) pushes items onto
/// the next page as new ones arrive during a walk; a shift of up to this
/// many pages is skipped here, a larger one is dropped by JetStream's
/// duplicate window instead (the message id is the same).
pub const RECENT_PAGES: usize = 16;

/// Pages one walk may have sent whose acks are not all in.
pub const PAGES_IN_FLIGHT: usize = 16;

/// Acknowledged pages committed together in one transaction, at most. A
/// commit's cost is mostly the B-tree pages it dirties (event ids are
/// random, so a page's ids land all over the `seen` table) and the WAL
/// `fsync`; committing many pages at once writes each dirtied B-tree page
/// once instead of once per page.
pub const PAGES_PER_COMMIT: usize = 64;

/// How long acknowledged pages may wait for more to commit with.
pub const COMMIT_WITHIN: Duration = Duration::from_millis(250);

/// A page sent, waiting for its acks and then its commit.
struct Sent {
    at: Position,
    change: Change,
    seen: Vec<Seen>,
    /// The revisions published, for revisits (empty without one).
    revisions: Vec<crate::checkpoint::Revision>,
    items: usize,
    events: u64,
    skipped: u64,
    dead_letters: u64,
    sent: Instant,
    /// What the sink acknowledged, and when the last ack was seen.
    acked: Option<(PublishReport, Duration)>,
}

/// How a page's commit moves the cursor.
enum Change {
    /// Resume from this walk state (JSON).
    Page(String),
    /// The walk's last page.
    Last(Finish),
}

/// Dead letters one poll sends item by item; the rest of a page's bad items
/// are counted in one overflow dead letter (see [`dead_letter::overflow`]).
pub const DEAD_LETTERS_PER_POLL: usize = 100;

/// How far in the future an item's time may lie before it is clamped, for
/// pruning its seen id: vendors' clocks drift by minutes, while an item
/// dated years ahead would otherwise be remembered for years.
const MAX_FUTURE_SKEW: chrono::TimeDelta = chrono::TimeDelta::days(1);

impl<'a, V: Vendor> Handler<'a, V> {
    /// A walk of `poller`'s source from `walk`, authenticated with `key`.
    /// Once `shutdown` is cancelled, a page already answered is still
    /// published and committed, and then the walk stops; a request waiting
    /// (throttle, `Retry-After`, backoff) or not yet answered is dropped and
    /// the walk stops before it.
    pub(super) fn new(
        poller: &'a Poller<V>,
        key: Credential,
        walk: WalkState<V::Plan>,
        shutdown: &'a CancellationToken,
    ) -> Self {
        let forget_before = poller.vendor.forget_before(&walk.plan);
        Handler {
            poller,
            key,
            forget_before,
            recent: VecDeque::new(),
            walk,
            shutdown,
            report: PollReport::default(),
            dead_budget: DEAD_LETTERS_PER_POLL,
            pipeline: poller.deps.sink.pipeline(),
            pages: VecDeque::new(),
            pending_ids: HashSet::new(),
            subjects: Subjects::of(poller),
        }
    }

    /// What the walk did.
    pub(super) fn into_report(self) -> PollReport {
        self.report
    }

    /// Wait for every page sent and commit the acknowledged ones: after
    /// the walk, whether it ended, stopped or failed.
    pub(super) async fn settle(&mut self) -> Result<(), PollError> {
        self.advance(true).await
    }
}

/// A page made ready to publish.
struct Prepared {
    messages: Vec<Message>,
    seen: Vec<Seen>,
    /// Events encoded (each one message per format).
    events: u64,
    /// The revisions published, for revisits (empty without one).
    revisions: Vec<crate::checkpoint::Revision>,
    skipped: u64,
    dead_letters: u64,
}

impl<V: Vendor> PageHandler for Handler<'_, V> {
    type Error = PollError;

    async fn fetch(&mut self, at: &Position) -> Result<Option<Page>, PollError> {
        let (poller, key, plan, stop) =
            (self.poller, self.key.clone(), self.walk.plan.clone(), self.shutdown);
        let fetch = fetch_page(poller, &key, &plan, at, stop);
        self.wait_for(fetch).await
    }

    async fn deliver(
        &mut self,
        at: &Position,
        page: Page,
        next: Option<&Position>,
    ) -> Result<bool, PollError> {
        self.deliver_page(at, page, next).await
    }

    /// The next request goes out (and its answer is read, then parsed on a
    /// blocking thread) while this page is normalized, encoded and sent:
    /// the vendor's latency, the parse and this page's work overlap instead
    /// of adding up. The fetch is polled first, so the request leaves before
    /// this page's work starts; the fetched page waits for the walk.
    async fn deliver_and_fetch(
        &mut self,
        at: &Position,
        page: Page,
        next: &Position,
    ) -> Result<(bool, Option<Result<Option<Page>, PollError>>), PollError> {
        let (poller, key, plan, stop) =
            (self.poller, self.key.clone(), self.walk.plan.clone(), self.shutdown);
        let fetch = fetch_page(poller, &key, &plan, next, stop);
        tokio::pin!(fetch);
        let mut fetched = None;
        let go_on = {
            let deliver = self.deliver_page(at, page, Some(next));
            tokio::pin!(deliver);
            loop {
                tokio::select! {
                    biased;
                    page = &mut fetch, if fetched.is_none() => fetched = Some(page),
                    delivered = &mut deliver => break delivered?,
                }
            }
        };
        if !go_on {
            return Ok((false, None));
        }
        let page = match fetched {
            Some(page) => page,
            None => self.wait_for(fetch).await,
        };
        Ok((true, Some(page)))
    }
}

impl<V: Vendor> Handler<'_, V> {
    /// Wait for `fetch` (a page being fetched). Acks of the pages sent keep
    /// arriving meanwhile: settle them, so the walk's window slots free up
    /// while it waits on the vendor, and commit acknowledged pages once they
    /// are due, so a long wait (the throttle, a `Retry-After`, a backoff)
    /// does not hold the cursor back.
    async fn wait_for(
        &mut self,
        fetch: impl Future<Output = Result<Option<Page>, PollError>>,
    ) -> Result<Option<Page>, PollError> {
        tokio::pin!(fetch);
        loop {
            let commit_at = match self.pages.front() {
                Some(front) if front.acked.is_some() => Some(front.sent + COMMIT_WITHIN),
                _ => None,
            };
            tokio::select! {
                biased;
                page = &mut fetch => return page,
                settled = self.pipeline.settle_one() => {
                    if let Err(error) = settled {
                        return Err(self.publish_err(error));
                    }
                    self.advance(false).await?;
                }
                () = sleep_until_instant(commit_at), if commit_at.is_some() => {
                    self.advance(false).await?;
                }
            }
        }
    }

    async fn deliver_page(
        &mut self,
        at: &Position,
        page: Page,
        next: Option<&Position>,
    ) -> Result<bool, PollError> {
        let items = page.items.len();
        let prepared = self.prepare(at, &page).await?;
        drop(page);
        let change = self.change(at, next)?;
        self.pending_ids.extend(prepared.seen.iter().map(|s| s.event_id.clone()));
        let sent = Instant::now();
        if let Err(error) = self.pipeline.send(prepared.messages).await {
            return Err(self.publish_err(error));
        }
        self.pages.push_back(Sent {
            at: at.clone(),
            change,
            seen: prepared.seen,
            revisions: prepared.revisions,
            items,
            events: prepared.events,
            skipped: prepared.skipped,
            dead_letters: prepared.dead_letters,
            sent,
            acked: None,
        });
        let go_on = !self.shutdown.is_cancelled();
        self.advance(!go_on || next.is_none()).await?;
        Ok(go_on)
    }
}

impl<V: Vendor> Handler<'_, V> {
    /// Normalize a page and encode what is new in it for every configured
    /// format. Events and dead letters the store has as delivered are
    /// skipped: a permanently broken item inside the overlap window is
    /// dead-lettered once, not at every poll.
    async fn prepare(&mut self, at: &Position, page: &Page) -> Result<Prepared, PollError> {
        let p = self.poller;
        let ingested_at = Utc::now();
        let origin = dead_letter::Origin {
            prefix: p.deps.sink.subject_prefix(),
            vendor: V::KEY,
            source: &p.name,
            ingested_at,
        };
        let ctx = NormalizeContext::new(&p.name, ingested_at);
        let latest = ingested_at + MAX_FUTURE_SKEW;
        // A revisit walks `(now − window, …)` and forgets what falls out
        // of it, and its window only moves forward: the revision of an item
        // older than the window now is one no revisit will ask for. A
        // backfill of a year of history stores the window's, not the year's.
        let revisable_after = p.revisit.map(|r| crate::incremental::earlier(ingested_at, r.window));

        let mut events = Vec::with_capacity(page.items.len());
        let mut dead = Vec::new();
        for (i, item) in page.items.iter().enumerate() {
            match p.vendor.normalize(item, &ctx.with_text(page.text(i))) {
                Ok(n) => events.push(n),
                // A dead letter carries the whole item, not the part read.
                Err(error) => dead.push((error, page.whole(i).unwrap_or(Cow::Borrowed(item)))),
            }
        }
        let max_mark = events.iter().filter_map(|n| n.mark).max();
        self.walk.max_mark = self.walk.max_mark.max(max_mark);

        let dead: Vec<(NormalizeError, Cow<'_, serde_json::Value>, uuid::Uuid)> = dead
            .into_iter()
            .map(|(error, item)| {
                let id = dead_letter::id(V::KEY, &p.name, item.to_string().as_bytes());
                (error, item, id)
            })
            .collect();
        let ids: Vec<String> = events
            .iter()
            .map(|n| n.event.id.to_string())
            .chain(dead.iter().map(|d| d.2.to_string()))
            .collect();
        let already = p.deps.store.seen(&p.name, ids).await.map_err(|e| p.store_err(e))?;

        let mut in_page = HashSet::new();
        let mut messages = Vec::with_capacity(events.len() + dead.len());
        let mut seen = Vec::with_capacity(events.len() + dead.len());
        let mut skipped = 0;
        let mut revisions = Vec::new();
        for n in &events {
            let id = n.event.id.to_string();
            if already.contains(&id) || self.pending_ids.contains(&id) || !in_page.insert(id.clone()) {
                skipped += 1;
                continue;
            }
            self.encode(at, &n.event, &id, &mut messages)?;
            if revisable_after.is_some_and(|after| n.item_time > after) {
                revisions.extend(crate::revisit::published_by_walk(&[(&n.event, n.item_time)]));
            }
            seen.push(Seen { event_id: id, item_time: n.item_time.min(latest) });
        }
        let new_events = seen.len() as u64;

        let mut dead_letters = 0;
        let mut overflow: Option<(usize, String)> = None;
        for (error, item, uuid) in dead {
            let id = uuid.to_string();
            if already.contains(&id) || self.pending_ids.contains(&id) || !in_page.insert(id.clone()) {
                skipped += 1;
                continue;
            }
            if self.dead_budget > 0 {
                self.dead_budget -= 1;
                DeadLettered { source: &p.name, vendor: V::KEY, error: &error }.emit(&p.deps.telemetry);
                messages.push(dead_letter::item(origin, uuid, &error.0, &item));
                dead_letters += 1;
            } else {
                let entry = overflow.get_or_insert_with(|| (0, error.0.clone()));
                entry.0 += 1;
            }
            seen.push(Seen { event_id: id, item_time: ingested_at });
        }
        if let Some((count, first_error)) = overflow {
            DeadLettersCapped { source: &p.name, vendor: V::KEY, count, limit: DEAD_LETTERS_PER_POLL }
                .emit(&p.deps.telemetry);
            messages.push(dead_letter::overflow(origin, &at.to_string(), count, &first_error));
            dead_letters += 1;
        }

        let oversized = p.deps.sink.fit(&mut messages, origin);
        if oversized > 0 {
            OversizedDeadLettered { source: &p.name, vendor: V::KEY, count: oversized, at }
                .emit(&p.deps.telemetry);
            dead_letters += oversized as u64;
        }
        Ok(Prepared { messages, seen, events: new_events, revisions, skipped, dead_letters })
    }

    /// The messages of one event, one per configured format.
    pub(super) fn encode(
        &self,
        at: &Position,
        event: &crate::event::Event,
        id: &str,
        messages: &mut Vec<Message>,
    ) -> Result<(), PollError> {
        let p = self.poller;
        let prefix = p.deps.sink.subject_prefix();
        let unserializable = |e: serde_json::Error| {
            p.page_err(at, PageError::Shape(format!("event could not be serialized: {e}")))
        };
        for format in p.deps.sink.formats() {
            match format {
                Format::Alertd => {
                    // Sized for the event at once (its raw item and about
                    // 1 KB of fields), not grown from serde_json's 128 bytes
                    // by doubling and copying.
                    let mut payload = Vec::with_capacity(event.raw.get().len() + 1024);
                    event.write_json(&mut payload).map_err(unserializable)?;
                    let payload = Bytes::from(payload);
                    let subject = if event.source.kind == self.subjects.kind {
                        self.subjects.alertd.clone()
                    } else {
                        event_subject(prefix, V::KEY, &p.name, event.source.kind.as_str())
                    };
                    messages.push(Message { subject, id: id.to_owned(), payload });
                }
                Format::Ocsf => {
                    let message = if event.source.kind == self.subjects.kind {
                        ocsf::message_to(self.subjects.ocsf.clone(), event, &p.vendor.ocsf())
                    } else {
                        ocsf::message(prefix, event, &p.vendor.ocsf())
                    };
                    messages.push(message.map_err(unserializable)?);
                }
            }
        }
        Ok(())
    }

    /// How committing the page at `at` moves the cursor: the walk state
    /// to resume from `next`, or for the last page the walk's end.
    fn change(&mut self, at: &Position, next: Option<&Position>) -> Result<Change, PollError> {
        let p = self.poller;
        Ok(match next {
            Some(next) => {
                self.walk.next = next.clone();
                let text = serde_json::to_string(&self.walk)
                    .map_err(|e| p.page_err(at, PageError::State(format!("walk state: {e}"))))?;
                Change::Page(text)
            }
            None => Change::Last(p.vendor.finish(&self.walk.plan, self.walk.max_mark)),
        })
    }

    /// Take in the acks that have arrived and commit the acknowledged
    /// pages at the front of the queue when enough of them wait (or
    /// `all`). Waits for acks only while more than [`PAGES_IN_FLIGHT`]
    /// pages are unacknowledged, or, with `all`, until every page is
    /// acknowledged. On a failure the pages acknowledged before it are
    /// committed, then the failure is returned.
    async fn advance(&mut self, all: bool) -> Result<(), PollError> {
        let mut acked = self.pages.iter().take_while(|s| s.acked.is_some()).count();
        let taken = loop {
            let unacked = self.pages.len() - acked;
            let wait = unacked > PAGES_IN_FLIGHT || (all && unacked > 0);
            let report = if wait { self.pipeline.done().await } else { self.pipeline.try_done() };
            match report {
                Ok(Some(report)) => {
                    let Some(page) = self.pages.get_mut(acked) else { break Ok(()) };
                    page.acked = Some((report, page.sent.elapsed()));
                    acked += 1;
                }
                Ok(None) => break Ok(()),
                Err(error) => break Err(self.publish_err(error)),
            }
        };
        let due = self.pages.front().is_some_and(|s| s.sent.elapsed() >= COMMIT_WITHIN);
        if acked > 0 && (all || taken.is_err() || acked >= PAGES_PER_COMMIT || due) {
            self.commit(acked).await?;
        }
        taken
    }

    /// Commit the first `n` pages of the queue (all acknowledged) in one
    /// transaction: their seen ids, and the last one's cursor move.
    async fn commit(&mut self, n: usize) -> Result<(), PollError> {
        let p = self.poller;
        let pages: Vec<Sent> = self.pages.drain(..n).collect();
        let Some(last) = pages.last() else { return Ok(()) };
        let stored = |s: &&Seen| self.forget_before.is_none_or(|before| s.item_time >= before);
        let seen: Vec<Seen> = pages.iter().flat_map(|s| s.seen.iter()).filter(stored).cloned().collect();
        // Revisits compare with what was published (after the PubAcks,
        // before the cursor moves: a crash in between only re-publishes).
        let revisions: Vec<crate::checkpoint::Revision> =
            pages.iter().flat_map(|s| s.revisions.iter().cloned()).collect();
        if !revisions.is_empty() {
            p.deps.store.record_revisions(&p.name, revisions).await.map_err(|e| p.store_err(e))?;
        }
        match &last.change {
            Change::Page(walk) => p
                .deps
                .store
                .commit_page(&p.name, V::KEY, walk.clone(), seen)
                .await
                .map_err(|e| p.store_err(e))?,
            Change::Last(finish) => {
                p.deps
                    .store
                    .commit_last_page(&p.name, V::KEY, seen, finish.watermark.clone(), finish.prune_before)
                    .await
                    .map_err(|e| p.store_err(e))?;
                self.report.watermark = Some(finish.watermark.clone());
            }
        }
        for page in &pages {
            // Stored ids leave the pending set (the store answers for them
            // now); unstored ones stay for RECENT_PAGES more pages.
            let mut unstored = Vec::new();
            for s in &page.seen {
                if stored(&s) {
                    self.pending_ids.remove(&s.event_id);
                } else {
                    unstored.push(s.event_id.clone());
                }
            }
            self.recent.push_back(unstored);
            while self.recent.len() > RECENT_PAGES {
                for id in self.recent.pop_front().unwrap_or_default() {
                    self.pending_ids.remove(&id);
                }
            }
            let (published, ack_latency) = page.acked.unwrap_or_default();
            self.report.pages += 1;
            self.report.items += page.items as u64;
            self.report.events += page.events;
            self.report.published += published.stored as u64;
            self.report.duplicates += published.duplicates as u64;
            self.report.dead_letters += page.dead_letters;
            self.report.skipped_seen += page.skipped;
            PageDelivered {
                source: &p.name,
                vendor: V::KEY,
                at: &page.at,
                items: page.items,
                published: &published,
                skipped: page.skipped,
                ack_latency,
            }
            .emit(&p.deps.telemetry);
        }
        Ok(())
    }

    fn publish_err(&self, error: PublishError) -> PollError {
        PollError::Publish { vendor: V::KEY, source_name: self.poller.name.clone(), error }
    }
}

/// Answers shorter than this are parsed on the walk's task, longer ones
/// on a blocking thread. (Normalizing stays on the walk's task: measured
/// on a blocking thread as well, it cost more CPU and gained nothing.)
const PARSE_INLINE_BELOW: usize = 16 * 1024;

/// Fetch and parse the page at `at` of `poller`'s walk under `plan`.
pub(super) async fn fetch_page<V: Vendor>(
    p: &Poller<V>,
    key: &Credential,
    plan: &V::Plan,
    at: &Position,
    stop: &CancellationToken,
) -> Result<Option<Page>, PollError> {
    let user_agent = p.user_agent();
    let make = || {
        let request = p.vendor.request(&p.deps.client, plan, at, key).timeout(p.timeout);
        match &user_agent {
            Some(ua) => request.header(reqwest::header::USER_AGENT, ua.as_str()),
            None => request,
        }
    };
    let ctx = FetchContext {
        policy: p.retry,
        throttle: &p.throttle,
        observer: p,
        throttling: throttling(p.vendor.as_ref()),
        max_response_bytes: p.max_response_bytes,
        stop,
    };
    let answer = match crate::http::fetch_answer(make, &ctx).await {
        Ok(Some(answer)) => answer,
        // The source is stopping and no answer came: nothing to deliver.
        Ok(None) => return Ok(None),
        Err(error) => {
            if let Some(page) = p.vendor.empty_page_for(at, &error) {
                ErrorAnsweredAsEmpty { source: &p.name, vendor: V::KEY, at, error: &error }.emit();
                return Ok(Some(page));
            }
            return Err(PollError::Fetch {
                vendor: V::KEY,
                source_name: p.name.clone(),
                at: at.to_string(),
                error,
            });
        }
    };
    // A large page is parsed on a blocking thread, beside the delivery of
    // the page before (see `deliver_and_fetch`); a small one (an idle
    // poll's) here, where a thread hop would cost more than its parse.
    let parsed = if answer.body.len() < PARSE_INLINE_BELOW {
        p.vendor.parse_answer(&answer.body, answer.next_link.as_deref())
    } else {
        let vendor = std::sync::Arc::clone(&p.vendor);
        tokio::task::spawn_blocking(move || vendor.parse_answer(&answer.body, answer.next_link.as_deref()))
            .await
            .map_err(|error| p.joined_err(error))?
    };
    let page = parsed.map_err(|error| p.page_err(at, error))?;
    let limit = p.max_page_items();
    if page.items.len() > limit {
        let error = PageError::TooManyItems { items: page.items.len(), asked: p.page_size, limit };
        return Err(p.page_err(at, error));
    }
    if !page.usage.is_empty() {
        ApiUsageReported { source: &p.name, vendor: V::KEY, usage: &page.usage }.emit(&p.deps.telemetry);
    }
    Ok(Some(page))
}

/// Sleep until `at` (`None`: never; the caller's branch is disabled then).
async fn sleep_until_instant(at: Option<Instant>) {
    match at {
        Some(at) => tokio::time::sleep_until(at.into()).await,
        None => std::future::pending().await,
    }
}
