//! One walk's side of the pages: fetch through the vendor, then per page
//! normalize, drop what the store has as delivered, encode for every
//! configured format, publish, and commit once every message is
//! acknowledged.

use std::collections::HashSet;
use std::time::Instant;

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
use crate::publish::{Format, Message, dead_letter, event_subject};
use crate::vendors::{NormalizeContext, NormalizeError, PageError, Vendor};

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
}

/// Dead letters one poll sends item by item; the rest of a page's bad items
/// are counted in one overflow dead letter (see [`dead_letter::overflow`]).
pub const DEAD_LETTERS_PER_POLL: usize = 100;

/// How far in the future an item's time may lie before it is clamped, for
/// pruning its seen id: vendors' clocks drift by minutes, while an item
/// dated years ahead would otherwise be remembered for years.
const MAX_FUTURE_SKEW: chrono::TimeDelta = chrono::TimeDelta::days(1);

impl<'a, V: Vendor> Handler<'a, V> {
    /// A walk of `poller`'s source from `walk`, authenticated with `key`;
    /// it stops after the page in flight once `shutdown` is cancelled.
    pub(super) fn new(
        poller: &'a Poller<V>,
        key: Credential,
        walk: WalkState<V::Plan>,
        shutdown: &'a CancellationToken,
    ) -> Self {
        Handler {
            poller,
            key,
            walk,
            shutdown,
            report: PollReport::default(),
            dead_budget: DEAD_LETTERS_PER_POLL,
        }
    }

    /// What the walk did.
    pub(super) fn into_report(self) -> PollReport {
        self.report
    }
}

/// A page made ready to publish.
struct Prepared {
    messages: Vec<Message>,
    seen: Vec<Seen>,
    skipped: u64,
    dead_letters: u64,
}

impl<V: Vendor> PageHandler for Handler<'_, V> {
    type Error = PollError;

    async fn fetch(&mut self, at: &Position) -> Result<Page, PollError> {
        let p = self.poller;
        let user_agent = p.user_agent();
        let make = || {
            let request = p.vendor.request(&p.deps.client, &self.walk.plan, at, &self.key).timeout(p.timeout);
            match &user_agent {
                Some(ua) => request.header(reqwest::header::USER_AGENT, ua.as_str()),
                None => request,
            }
        };
        let ctx = FetchContext {
            policy: p.retry,
            throttle: &p.throttle,
            observer: p,
            throttling: throttling(&p.vendor),
            max_response_bytes: p.max_response_bytes,
        };
        let answer = match crate::http::fetch_answer(make, &ctx).await {
            Ok(answer) => answer,
            Err(error) => {
                if let Some(page) = p.vendor.empty_page_for(at, &error) {
                    ErrorAnsweredAsEmpty { source: &p.name, vendor: V::KEY, at, error: &error }.emit();
                    return Ok(page);
                }
                return Err(PollError::Fetch {
                    vendor: V::KEY,
                    source_name: p.name.clone(),
                    at: at.to_string(),
                    error,
                });
            }
        };
        let page = p
            .vendor
            .parse_answer(&answer.body, answer.next_link.as_deref())
            .map_err(|error| p.page_err(at, error))?;
        let limit = p.max_page_items();
        if page.items.len() > limit {
            let error = PageError::TooManyItems { items: page.items.len(), asked: p.page_size, limit };
            return Err(p.page_err(at, error));
        }
        if !page.usage.is_empty() {
            ApiUsageReported { source: &p.name, vendor: V::KEY, usage: &page.usage }.emit(&p.deps.telemetry);
        }
        Ok(page)
    }

    async fn deliver(
        &mut self,
        at: &Position,
        page: Page,
        next: Option<&Position>,
    ) -> Result<bool, PollError> {
        let p = self.poller;
        let items = page.items.len();
        let prepared = self.prepare(at, &page).await?;
        let sent = Instant::now();
        let published = p.deps.sink.publish(prepared.messages).await.map_err(|error| PollError::Publish {
            vendor: V::KEY,
            source_name: p.name.clone(),
            error,
        })?;
        let ack_latency = sent.elapsed();
        self.commit(at, next, prepared.seen).await?;

        self.report.pages += 1;
        self.report.items += items as u64;
        self.report.published += published.stored as u64;
        self.report.duplicates += published.duplicates as u64;
        self.report.dead_letters += prepared.dead_letters;
        self.report.skipped_seen += prepared.skipped;
        PageDelivered {
            source: &p.name,
            vendor: V::KEY,
            at,
            items,
            published: &published,
            skipped: prepared.skipped,
            ack_latency,
        }
        .emit(&p.deps.telemetry);
        Ok(!self.shutdown.is_cancelled())
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
        let ctx = NormalizeContext { source: &p.name, ingested_at };
        let latest = ingested_at + MAX_FUTURE_SKEW;

        let mut events = Vec::with_capacity(page.items.len());
        let mut dead = Vec::new();
        for item in &page.items {
            match p.vendor.normalize(item, &ctx) {
                Ok(n) => events.push(n),
                Err(error) => dead.push((error, item)),
            }
        }
        let max_mark = events.iter().filter_map(|n| n.mark).max();
        self.walk.max_mark = self.walk.max_mark.max(max_mark);

        let dead: Vec<(NormalizeError, &serde_json::Value, uuid::Uuid)> = dead
            .into_iter()
            .map(|(error, item)| (error, item, dead_letter::id(V::KEY, &p.name, item.to_string().as_bytes())))
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
        for n in &events {
            let id = n.event.id.to_string();
            if already.contains(&id) || !in_page.insert(id.clone()) {
                skipped += 1;
                continue;
            }
            self.encode(at, &n.event, &id, &mut messages)?;
            seen.push(Seen { event_id: id, item_time: n.item_time.min(latest) });
        }

        let mut dead_letters = 0;
        let mut overflow: Option<(usize, String)> = None;
        for (error, item, uuid) in dead {
            let id = uuid.to_string();
            if already.contains(&id) || !in_page.insert(id.clone()) {
                skipped += 1;
                continue;
            }
            if self.dead_budget > 0 {
                self.dead_budget -= 1;
                DeadLettered { source: &p.name, vendor: V::KEY, error: &error }.emit(&p.deps.telemetry);
                messages.push(dead_letter::item(origin, uuid, &error.0, item));
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
        Ok(Prepared { messages, seen, skipped, dead_letters })
    }

    /// The messages of one event, one per configured format.
    fn encode(
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
                    let payload = serde_json::to_vec(event).map(Bytes::from).map_err(unserializable)?;
                    let subject = event_subject(prefix, V::KEY, &p.name, event.source.kind.as_str());
                    messages.push(Message { subject, id: id.to_owned(), payload });
                }
                Format::Ocsf => {
                    messages.push(ocsf::message(prefix, event, &p.vendor.ocsf()).map_err(unserializable)?)
                }
            }
        }
        Ok(())
    }

    /// Commit a delivered page: the walk's next position, or for the last
    /// page the watermark, with the page's seen ids.
    async fn commit(
        &mut self,
        at: &Position,
        next: Option<&Position>,
        seen: Vec<Seen>,
    ) -> Result<(), PollError> {
        let p = self.poller;
        match next {
            Some(next) => {
                self.walk.next = next.clone();
                let text = serde_json::to_string(&self.walk)
                    .map_err(|e| p.page_err(at, PageError::State(format!("walk state: {e}"))))?;
                p.deps.store.commit_page(&p.name, V::KEY, text, seen).await.map_err(|e| p.store_err(e))?;
            }
            None => {
                let finish = p.vendor.finish(&self.walk.plan, self.walk.max_mark);
                p.deps
                    .store
                    .commit_last_page(&p.name, V::KEY, seen, finish.watermark.clone(), finish.prune_before)
                    .await
                    .map_err(|e| p.store_err(e))?;
                self.report.watermark = Some(finish.watermark);
            }
        }
        Ok(())
    }
}
