//! The state every vendor simulator shares: its alert store, seeded RNG,
//! fault queue and request log, plus the contract a vendor must fulfil.

use std::collections::{HashSet, VecDeque};
use std::sync::{Arc, Mutex, MutexGuard, PoisonError};
use std::time::Instant;

use axum::Router;
use axum::body::Bytes;
use axum::response::Response;
use chrono::{DateTime, SubsecRound, TimeDelta, Utc};
use rand::Rng;
use rand::rngs::StdRng;
use serde_json::Value;
use tokio_util::sync::CancellationToken;

use super::{Fault, RequestRecord};
use crate::throttle::RateLimit;

/// The simulator's clock, truncated to whole seconds because vendors stamp
/// alerts with second precision and sorting/filtering must agree with the
/// timestamps that are served.
pub(crate) fn now() -> DateTime<Utc> {
    Utc::now().trunc_subsecs(0)
}

/// One alert as the vendor serves it, with its sort key lifted out so the
/// framework can keep the store ordered without knowing the vendor's schema.
#[derive(Debug, Clone)]
pub(crate) struct Item {
    /// When the alert happened; must match the timestamp inside `json`.
    pub(crate) at: DateTime<Utc>,
    /// The vendor's unique alert id; the tie-breaker when times are equal.
    pub(crate) id: String,
    /// The alert exactly as the API serves it.
    pub(crate) json: Value,
    /// `json` as the JSON text a page serves, rendered once when the item
    /// is stored or changed (by the framework, after `stamp`), so a page
    /// costs a copy per item rather than a clone and a serialization of
    /// its value (the end-to-end benchmark serves 100,000 items on the same
    /// two cores as the poller it measures).
    pub(crate) text: Arc<str>,
}

impl Item {
    /// An item; its text is rendered when the framework stores it.
    pub(crate) fn new(at: DateTime<Utc>, id: String, json: Value) -> Item {
        Item { at, id, json, text: Arc::from("") }
    }

    /// Stamps the item as the `seq`-th change (see `VendorApi::stamp`) and
    /// renders `text` again from `json`: every change of a stored item ends
    /// here.
    fn stamp(&mut self, vendor: &dyn VendorApi, seq: u64) {
        vendor.stamp(self, seq);
        self.text = Arc::from(self.json.to_string());
    }
}

/// Where [`page_body`] splices the items' text into an envelope: a string
/// no vendor field holds (it has NULs).
const ITEMS_MARK: &str = "\0alertd-sim-items\0";

/// The JSON text of `envelope` with `items` (pre-rendered item texts, see
/// [`Item::text`]) as the array at `pointer`: the same bytes as putting the
/// items' values there and serializing the whole. A `pointer` to anything
/// but an array (Thinkst's `incidents: null`) leaves the envelope as it is.
pub(crate) fn page_body(mut envelope: Value, pointer: &str, items: &[Arc<str>]) -> String {
    let Some(slot) = envelope.pointer_mut(pointer).filter(|slot| slot.is_array()) else {
        return envelope.to_string();
    };
    *slot = Value::String(ITEMS_MARK.to_owned());
    let head = envelope.to_string();
    let mark = Value::String(ITEMS_MARK.to_owned()).to_string();
    let Some((before, after)) = head.split_once(&mark) else {
        return head;
    };
    format!("{before}[{}]{after}", items.join(","))
}

/// A `200 OK` JSON answer of [`page_body`].
pub(crate) fn page_response(envelope: Value, pointer: &str, items: &[Arc<str>]) -> axum::response::Response {
    use axum::response::IntoResponse;
    (
        [(axum::http::header::CONTENT_TYPE, axum::http::HeaderValue::from_static("application/json"))],
        page_body(envelope, pointer, items),
    )
        .into_response()
}

/// The routes of one vendor, split so the framework can put fault injection
/// on the data endpoints only while health checks stay reliable.
pub(crate) struct Routes {
    /// Endpoints that never get injected faults (health, fallback).
    pub(crate) open: Router<Arc<Shared>>,
    /// Endpoints serving alerts; queued faults replace their answers.
    pub(crate) data: Router<Arc<Shared>>,
}

/// What a vendor simulator supplies; everything else (store, clock, faults,
/// logging, serving) is shared so a new vendor is one file.
pub(crate) trait VendorApi: Send + Sync + 'static {
    /// Makes one alert that happened at `at`, drawing all randomness from
    /// `rng` so a seed reproduces the data set.
    fn generate(&self, rng: &mut StdRng, at: DateTime<Utc>) -> Item;
    /// The vendor's throttling answer, so pollers see its real envelope.
    fn rate_limited(&self, retry_after_secs: u64) -> Response;
    /// The vendor's auth failure answer, for faults that reject a good key.
    fn unauthorized(&self) -> Response;
    /// The vendor's error envelope with HTTP 200, for [`Fault::ErrorIn200`].
    fn error_in_200(&self) -> Response;
    /// Breaks one item of a successful list body the way real data breaks.
    fn malform(&self, body: &mut Value);
    /// The vendor's HTTP surface.
    fn routes(&self) -> Routes;

    /// Changes `item` the way the vendor changes an existing alert at `at`
    /// (acknowledged, remediated, a Rapid7 `version` bump); `false` when the
    /// vendor never changes alerts or this one cannot change any more. Must
    /// keep `item.at` and `item.id`, which order the store.
    fn update(&self, _rng: &mut StdRng, _item: &mut Item, _at: DateTime<Utc>) -> bool {
        false
    }
    /// Writes the store's change counter into `item`: every created or
    /// updated alert gets the next value, in store order for the initial
    /// set. For vendors with a change sequence (Thinkst's `updated_id`).
    fn stamp(&self, _item: &mut Item, _seq: u64) {}
    /// Replaces the items of a list body with the hollow records the vendor
    /// pads pages past its end with, for [`Fault::HollowItems`].
    fn hollow(&self, _body: &mut Value) {}
    /// Points the list body's next-page link at `origin`, for
    /// [`Fault::NextLinkTo`].
    fn link_to(&self, _body: &mut Value, _origin: &str) {}
}

/// Everything a running simulator's handlers and tasks share.
pub(crate) struct Shared {
    api_key: String,
    vendor: Box<dyn VendorApi>,
    stop: CancellationToken,
    data: Mutex<Data>,
    limit: Option<RateLimit>,
}

/// The mutable part of [`Shared`], behind one lock so a request sees a
/// consistent store.
struct Data {
    /// Ordered oldest first by (`at`, `id`).
    items: Vec<Item>,
    ids: HashSet<String>,
    rng: StdRng,
    /// The last value given to [`VendorApi::stamp`].
    seq: u64,
    /// True while the stamps increase in store order (no update re-stamped
    /// an item before the newest, no arrival went before a stored item), so
    /// a vendor can binary-search them instead of scanning the store.
    stamps_in_order: bool,
    faults: VecDeque<Fault>,
    log: Vec<RequestRecord>,
    /// The last successful data answer, for [`Fault::RepeatPreviousPage`].
    last_page: Option<SavedPage>,
    /// When each data request inside the enforced limit's current window
    /// was admitted, oldest first.
    admitted: VecDeque<Instant>,
    /// Data requests refused for breaking the enforced limit.
    refused: u64,
}

/// A successful data answer, kept to be served again.
#[derive(Clone)]
pub(crate) struct SavedPage {
    /// Its `Content-Type`, if any.
    pub(crate) content_type: Option<axum::http::HeaderValue>,
    /// Its body.
    pub(crate) body: Bytes,
}

impl Shared {
    /// Seeds the store with `initial_items` alerts spread over the
    /// `history` before `anchor`.
    pub(crate) fn new(
        vendor: Box<dyn VendorApi>,
        mut rng: StdRng,
        api_key: String,
        seeding: Seeding,
        stop: CancellationToken,
        limit: Option<RateLimit>,
    ) -> Self {
        let mut ids = HashSet::with_capacity(seeding.initial_items);
        let span = seeding.history.num_seconds().max(1);
        let mut items: Vec<Item> = (0..seeding.initial_items)
            .map(|_| {
                let at = seeding.anchor - TimeDelta::seconds(rng.random_range(1..=span));
                unique_item(vendor.as_ref(), &mut rng, &mut ids, at)
            })
            .collect();
        items.sort_by(|a, b| (a.at, &a.id).cmp(&(b.at, &b.id)));
        let mut seq = 0;
        for item in &mut items {
            seq += 1;
            item.stamp(vendor.as_ref(), seq);
        }
        let data = Data {
            items,
            ids,
            rng,
            seq,
            stamps_in_order: true,
            faults: VecDeque::new(),
            log: Vec::new(),
            last_page: None,
            admitted: VecDeque::new(),
            refused: 0,
        };
        Self { api_key, vendor, stop, data: Mutex::new(data), limit }
    }

    fn lock(&self) -> MutexGuard<'_, Data> {
        // A panicking handler cannot leave the store half-updated in a way
        // that matters to a test double, so poisoning is ignored.
        self.data.lock().unwrap_or_else(PoisonError::into_inner)
    }

    /// The only key the vendor's auth check accepts.
    pub(crate) fn api_key(&self) -> &str {
        &self.api_key
    }

    /// The vendor hooks, for the fault layer.
    pub(crate) fn vendor(&self) -> &dyn VendorApi {
        self.vendor.as_ref()
    }

    /// Fires when the simulator stops, so long waits do not hold it open.
    pub(crate) fn stopped(&self) -> &CancellationToken {
        &self.stop
    }

    /// Lends the store (oldest first) to a handler without cloning it.
    pub(crate) fn with_items<R>(&self, f: impl FnOnce(&[Item]) -> R) -> R {
        f(&self.lock().items)
    }

    /// Lends the store with the last stamp given and whether the stamps
    /// increase in store order (see `Data::stamps_in_order`), for vendors
    /// with a change sequence that page through it.
    pub(crate) fn with_stamped_items<R>(&self, f: impl FnOnce(&[Item], u64, bool) -> R) -> R {
        let data = self.lock();
        f(&data.items, data.seq, data.stamps_in_order)
    }

    /// Makes `n` alerts arrive at `at`.
    pub(crate) fn add_items(&self, n: usize, at: DateTime<Utc>) {
        let mut guard = self.lock();
        let data = &mut *guard;
        for _ in 0..n {
            let mut item = unique_item(self.vendor.as_ref(), &mut data.rng, &mut data.ids, at);
            data.seq += 1;
            item.stamp(self.vendor.as_ref(), data.seq);
            let pos = data.items.partition_point(|i| (i.at, &i.id) <= (item.at, &item.id));
            data.stamps_in_order &= pos == data.items.len();
            data.items.insert(pos, item);
        }
    }

    /// Changes up to `n` existing alerts, newest first, at `at`; returns
    /// them as changed.
    pub(crate) fn update_items(&self, n: usize, at: DateTime<Utc>) -> Vec<Value> {
        self.update_items_before(n, DateTime::<Utc>::MAX_UTC, at)
    }

    /// Changes up to `n` existing alerts dated before `before`, newest
    /// first, at `at`; returns them as changed.
    pub(crate) fn update_items_before(
        &self,
        n: usize,
        before: DateTime<Utc>,
        at: DateTime<Utc>,
    ) -> Vec<Value> {
        let mut guard = self.lock();
        let data = &mut *guard;
        let mut changed = Vec::new();
        // Newest first: triage happens to recent alerts, and a poller sees
        // an update only while the item is inside its overlap window.
        let len = data.items.len();
        for index in (0..len).rev() {
            if changed.len() == n {
                break;
            }
            let item = &mut data.items[index];
            if item.at >= before {
                continue;
            }
            if self.vendor.update(&mut data.rng, item, at) {
                data.stamps_in_order &= index + 1 == len;
                data.seq += 1;
                item.stamp(self.vendor.as_ref(), data.seq);
                changed.push(item.json.clone());
            }
        }
        changed
    }

    /// Keeps a successful data answer for [`Fault::RepeatPreviousPage`].
    pub(crate) fn save_page(&self, page: SavedPage) {
        self.lock().last_page = Some(page);
    }

    /// The last successful data answer, if any.
    pub(crate) fn last_page(&self) -> Option<SavedPage> {
        self.lock().last_page.clone()
    }

    /// Every alert as served, oldest first.
    pub(crate) fn ground_truth(&self) -> Vec<Value> {
        self.lock().items.iter().map(|i| i.json.clone()).collect()
    }

    /// Queues `fault` for the next `times` data requests.
    pub(crate) fn inject(&self, fault: Fault, times: usize) {
        self.lock().faults.extend(std::iter::repeat_n(fault, times));
    }

    /// Takes the fault the current data request must get, if any.
    pub(crate) fn next_fault(&self) -> Option<Fault> {
        self.lock().faults.pop_front()
    }

    /// Admits a data request arriving at `now` under the enforced limit, or
    /// returns the whole seconds until the window has room (at least 1), for
    /// `Retry-After`. Only admitted requests count towards the window.
    pub(crate) fn admit(&self, now: Instant) -> Result<(), u64> {
        let Some(limit) = self.limit else {
            return Ok(());
        };
        let mut data = self.lock();
        while data.admitted.front().is_some_and(|t| now.saturating_duration_since(*t) >= limit.period) {
            data.admitted.pop_front();
        }
        if data.admitted.len() < limit.requests.get() as usize {
            data.admitted.push_back(now);
            return Ok(());
        }
        data.refused += 1;
        let frees_at = data.admitted.front().map_or(now, |t| *t + limit.period);
        let wait = frees_at.saturating_duration_since(now);
        Err((wait.as_secs() + u64::from(wait.subsec_nanos() > 0)).max(1))
    }

    /// Data requests refused so far for breaking the enforced limit.
    pub(crate) fn rate_limited_count(&self) -> u64 {
        self.lock().refused
    }

    /// Appends an answered request to the log.
    pub(crate) fn record(&self, record: RequestRecord) {
        self.lock().log.push(record);
    }

    /// The request log so far.
    pub(crate) fn requests(&self) -> Vec<RequestRecord> {
        self.lock().log.clone()
    }
}

/// How the initial data set is laid out in time.
pub(crate) struct Seeding {
    pub(crate) initial_items: usize,
    pub(crate) history: TimeDelta,
    pub(crate) anchor: DateTime<Utc>,
}

/// Generates until the id is new, because vendors' ids are unique and the
/// pollers under test deduplicate by id.
fn unique_item(
    vendor: &dyn VendorApi,
    rng: &mut StdRng,
    ids: &mut HashSet<String>,
    at: DateTime<Utc>,
) -> Item {
    loop {
        let item = vendor.generate(rng, at);
        if ids.insert(item.id.clone()) {
            return item;
        }
    }
}

/// One of `items`, drawn from the simulator's seeded RNG so a seed
/// reproduces the data set.
pub(crate) fn pick<'a, T>(rng: &mut StdRng, items: &'a [T]) -> &'a T {
    &items[rng.random_range(0..items.len())]
}

/// `len` lowercase hex digits from the seeded RNG (ids, hashes, node ids).
pub(crate) fn hex(rng: &mut StdRng, len: usize) -> String {
    (0..len).map(|_| char::from(b"0123456789abcdef"[rng.random_range(0..16)])).collect()
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    #[test]
    fn a_page_body_is_the_envelope_serialized_with_the_items_values() {
        let items = [json!({"id": "a", "n": [1, 2.5, null], "s": "quote \" and \\u{0}"}), json!({"id": "b"})];
        let texts: Vec<Arc<str>> = items.iter().map(|i| Arc::from(i.to_string())).collect();
        let envelope = json!({"data": {"alerts": [], "hasMore": true}, "meta": {"total": 2}});
        let mut whole = envelope.clone();
        whole["data"]["alerts"] = Value::Array(items.to_vec());
        assert_eq!(page_body(envelope.clone(), "/data/alerts", &texts), whole.to_string());
        let mut empty = envelope.clone();
        empty["data"]["alerts"] = json!([]);
        assert_eq!(page_body(envelope.clone(), "/data/alerts", &[]), empty.to_string());
        // Not an array (Thinkst's `incidents: null`), or not there: as it is.
        let null = json!({"incidents": null});
        assert_eq!(page_body(null.clone(), "/incidents", &texts), null.to_string());
        assert_eq!(page_body(envelope.clone(), "/nowhere", &texts), envelope.to_string());
    }
}
