//! The state every vendor simulator shares: its alert store, seeded RNG,
//! fault queue and request log, plus the contract a vendor must fulfil.

use std::collections::{HashSet, VecDeque};
use std::sync::{Arc, Mutex, MutexGuard, PoisonError};

use axum::Router;
use axum::response::Response;
use chrono::{DateTime, SubsecRound, TimeDelta, Utc};
use rand::Rng;
use rand::rngs::StdRng;
use serde_json::Value;
use tokio_util::sync::CancellationToken;

use super::{Fault, RequestRecord};

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
    /// Breaks one item of a successful list body the way real data breaks.
    fn malform(&self, body: &mut Value);
    /// Changes an existing alert at `at` as a triage action on the vendor's
    /// side would (Rapid7 bumps `version`), for vendors whose items have
    /// revisions. Must keep `item.at` and `item.id`, which order the store.
    /// Returns false for vendors whose items never change.
    fn update(&self, rng: &mut StdRng, item: &mut Item, at: DateTime<Utc>) -> bool {
        let _ = (rng, item, at);
        false
    }
    /// The vendor's HTTP surface.
    fn routes(&self) -> Routes;
}

/// Everything a running simulator's handlers and tasks share.
pub(crate) struct Shared {
    api_key: String,
    vendor: Box<dyn VendorApi>,
    stop: CancellationToken,
    data: Mutex<Data>,
}

/// The mutable part of [`Shared`], behind one lock so a request sees a
/// consistent store.
struct Data {
    /// Ordered oldest first by (`at`, `id`).
    items: Vec<Item>,
    ids: HashSet<String>,
    rng: StdRng,
    faults: VecDeque<Fault>,
    log: Vec<RequestRecord>,
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
        let data = Data { items, ids, rng, faults: VecDeque::new(), log: Vec::new() };
        Self { api_key, vendor, stop, data: Mutex::new(data) }
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

    /// Makes `n` alerts arrive at `at`.
    pub(crate) fn add_items(&self, n: usize, at: DateTime<Utc>) {
        let mut guard = self.lock();
        let data = &mut *guard;
        for _ in 0..n {
            let item = unique_item(self.vendor.as_ref(), &mut data.rng, &mut data.ids, at);
            let pos = data.items.partition_point(|i| (i.at, &i.id) <= (item.at, &item.id));
            data.items.insert(pos, item);
        }
    }

    /// Lets the vendor change its `n` newest alerts at `at`; returns how
    /// many changed.
    pub(crate) fn update_items(&self, n: usize, at: DateTime<Utc>) -> usize {
        let mut guard = self.lock();
        let data = &mut *guard;
        let mut changed = 0;
        for item in data.items.iter_mut().rev().take(n) {
            if self.vendor.update(&mut data.rng, item, at) {
                changed += 1;
            }
        }
        changed
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
