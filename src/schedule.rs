//! Timing: each source is its own task on its schedule, with jitter, until
//! shutdown. A source waiting for its next start stops at once. A poll at
//! shutdown gets the cancelled token: a page already answered is published
//! and committed, a request waiting (throttle, `Retry-After`, backoff) or
//! not yet answered ends at once (`http::fetch`), then the task ends.
//!
//! [`Sources`] keeps those tasks keyed by source name, each with its own
//! stop signal (a child of the daemon's shutdown), so a reload stops or
//! restarts one source at a page boundary without touching the others.

use std::collections::HashMap;
use std::sync::Arc;
use std::time::Duration;

use chrono::{DateTime, Utc};
use rand::Rng;
use tokio_util::sync::CancellationToken;
use tokio_util::task::TaskTracker;

use crate::cluster::Slot;
use crate::config::Schedule;
use crate::internal_events::{PollAbandoned, PollStarted};
use crate::poller::{Poll, PollError, PollReport};
use crate::telemetry::Telemetry;

/// A poller with its timing.
pub struct Scheduled {
    /// The source.
    pub poller: Arc<dyn Poll>,
    /// When it polls.
    pub schedule: Schedule,
    /// Up to this much random delay per start.
    pub jitter: Duration,
    /// Where the start drift is recorded.
    pub telemetry: Arc<Telemetry>,
    /// When this instance may poll it ([`Slot::always`] without `[cluster]`).
    pub slot: Slot,
}

/// Poll every source on its schedule until `shutdown` is cancelled.
pub async fn run(sources: Vec<Scheduled>, shutdown: CancellationToken) {
    let mut running = Sources::default();
    for source in sources {
        running.start(source, shutdown.child_token());
    }
    running.wait().await;
}

/// The sources polling now, each its own task with its own stop signal,
/// keyed by source name.
#[derive(Default)]
pub struct Sources {
    tracker: TaskTracker,
    running: HashMap<String, Running>,
}

struct Running {
    stop: CancellationToken,
    task: tokio::task::JoinHandle<()>,
}

impl Sources {
    /// Poll `source` on its schedule until `stop` is cancelled (give a child
    /// of the daemon's shutdown, so shutdown stops it too). A source of the
    /// same name must have been stopped first.
    pub fn start(&mut self, source: Scheduled, stop: CancellationToken) {
        let name = source.poller.name().to_owned();
        let task = self.tracker.spawn(source_loop(source, stop.clone()));
        if let Some(old) = self.running.insert(name, Running { stop, task }) {
            // Not expected (callers stop first); never leave one polling unseen.
            old.stop.cancel();
        }
    }

    /// Stop the named sources: each poll in flight finishes its page (and
    /// commits), then its task ends; returns once all have ended.
    pub async fn stop(&mut self, names: &[String]) {
        let stopping: Vec<Running> = names.iter().filter_map(|n| self.running.remove(n)).collect();
        for r in &stopping {
            r.stop.cancel();
        }
        for r in stopping {
            // A panicking source loop has already been reported by its poller.
            let _ = r.task.await;
        }
    }

    /// Whether `name` is polling.
    pub fn contains(&self, name: &str) -> bool {
        self.running.contains_key(name)
    }

    /// Wait until every source has stopped (after shutdown).
    pub async fn wait(self) {
        self.tracker.close();
        self.tracker.wait().await;
    }
}

/// Poll every source once, concurrently; the results in the sources' order.
pub async fn run_once(
    pollers: &[Arc<dyn Poll>],
    shutdown: &CancellationToken,
) -> Vec<(String, Result<PollReport, PollError>)> {
    let polls = pollers.iter().map(|p| async move { (p.name().to_owned(), p.poll_once(shutdown).await) });
    futures::future::join_all(polls).await
}

async fn source_loop(source: Scheduled, shutdown: CancellationToken) {
    let mut tenure_rx = source.slot.tenure.clone();
    loop {
        // Wait until this instance may poll the source.
        let tenure = loop {
            let current = tenure_rx.borrow_and_update().clone();
            if let Some(tenure) = current.filter(|t| !t.token.is_cancelled()) {
                break tenure;
            }
            tokio::select! {
                () = shutdown.cancelled() => return,
                changed = tenure_rx.changed() => if changed.is_err() {
                    // Nobody will grant a tenure any more.
                    shutdown.cancelled().await;
                    return;
                },
            }
        };
        source.poller.set_lease(tenure.epoch);
        // The tenure ends with the lease or with this source's own stop (a
        // reload removing or changing it): either stops the walk at a page.
        let token = tenure.token.child_token();
        let forward = {
            let (token, stop) = (token.clone(), shutdown.clone());
            tokio::spawn(async move {
                tokio::select! {
                    () = stop.cancelled() => token.cancel(),
                    () = token.cancelled() => {}
                }
            })
        };
        // The first poll starts at once (plus jitter): a restarted daemon,
        // or a new lease holder, resumes an interrupted walk without
        // waiting a whole interval.
        let mut next = later(Utc::now(), jitter(source.jitter));
        loop {
            tokio::select! {
                () = token.cancelled() => break,
                () = sleep_until(next) => {}
            }
            let busy = source.slot.busy.lock().await;
            if token.is_cancelled() {
                break;
            }
            let late = (Utc::now() - next).to_std().unwrap_or_default();
            PollStarted { source: source.poller.name(), vendor: source.poller.vendor(), late }
                .emit(&source.telemetry);
            // Errors are logged by the poller; the source retries on schedule.
            // The tenure's token stops the walk after its page in flight; a
            // lost lease abandons the poll where it is.
            let mut requests = 1;
            let started = Utc::now();
            tokio::select! {
                report = source.poller.poll_once(&token) => {
                    if let Ok(report) = report {
                        requests = u32::try_from(report.pages).unwrap_or(u32::MAX).max(1);
                    }
                }
                () = tenure.revoked.cancelled() => {
                    PollAbandoned { source: source.poller.name(), vendor: source.poller.vendor() }.emit();
                }
            }
            if token.is_cancelled() {
                break;
            }
            next = later(source.schedule.next_after(Utc::now()), jitter(source.jitter));
            // Between two polls: the source's revisit, if due, within what
            // the rate limits leave until the next poll (crate::revisit).
            if source.poller.revisits() {
                let budget = revisit_budget(started, next, requests);
                tokio::select! {
                    () = source.poller.revisit(budget, &token) => {}
                    () = tenure.revoked.cancelled() => {}
                }
            }
            drop(busy);
            if token.is_cancelled() {
                break;
            }
        }
        source.poller.set_lease(None);
        token.cancel();
        let _ = forward.await;
        if shutdown.is_cancelled() {
            return;
        }
    }
}

/// A revisit's budget: until `next` (the next poll, one interval after the
/// poll that started at `started`), leaving the regular polls their
/// `requests` per poll.
fn revisit_budget(started: DateTime<Utc>, next: DateTime<Utc>, requests: u32) -> crate::revisit::Budget {
    let until = (next - Utc::now()).to_std().unwrap_or_default();
    crate::revisit::Budget {
        deadline: tokio::time::Instant::now() + until,
        poll_interval: (next - started).to_std().unwrap_or_default(),
        poll_requests: requests,
    }
}

fn jitter(max: Duration) -> chrono::Duration {
    if max.is_zero() {
        return chrono::Duration::zero();
    }
    let ms = rand::rng().random_range(0..=max.as_millis().min(u128::from(u32::MAX)) as u64);
    chrono::Duration::milliseconds(ms as i64)
}

/// `t + d`, saturating: a schedule may already give the latest time chrono
/// can represent (a start that never comes), and `+` would panic there.
fn later(t: DateTime<Utc>, d: chrono::Duration) -> DateTime<Utc> {
    t.checked_add_signed(d).unwrap_or(DateTime::<Utc>::MAX_UTC)
}

async fn sleep_until(when: DateTime<Utc>) {
    if let Ok(wait) = (when - Utc::now()).to_std() {
        tokio::time::sleep(wait).await;
    }
}
