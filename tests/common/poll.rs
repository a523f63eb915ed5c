//! Helpers for vendor integration tests: one daemon poll, and what the
//! stream holds per item revision.

use std::collections::{HashMap, HashSet};

use alertd::config::Config;
use alertd::daemon::{self, Mode};
use alertd::poller::{PollError, PollReport};
use tokio_util::sync::CancellationToken;

use super::stream_messages;

/// One poll of the config's only source by a fresh daemon (a restart).
pub async fn run_once(config: &Config) -> Result<PollReport, PollError> {
    let sink = super::quiet_sink(config);
    let mut results =
        daemon::run(config, sink, Mode::Once, CancellationToken::new()).await.expect("daemon starts");
    results.remove(0).1
}

/// A daemon running on its schedules in this process, as `alertd run` does.
pub struct RunningDaemon {
    shutdown: CancellationToken,
    task: tokio::task::JoinHandle<Result<daemon::PollResults, daemon::DaemonError>>,
}

impl RunningDaemon {
    /// Start `config` in the background.
    pub fn start(config: &Config) -> RunningDaemon {
        let shutdown = CancellationToken::new();
        let (config, token) = (config.clone(), shutdown.clone());
        let task = tokio::spawn(async move {
            let sink = super::quiet_sink(&config);
            daemon::run(&config, sink, Mode::Forever, token).await
        });
        RunningDaemon { shutdown, task }
    }

    /// Stop it as SIGTERM does and check it stopped cleanly.
    pub async fn stop(self) {
        self.shutdown.cancel();
        self.task.await.expect("daemon task").expect("daemon stops cleanly");
    }
}

/// How often each `(native_id, revision)` is in `stream`, after checking
/// every message's `Nats-Msg-Id` is its event id and its subject is
/// `subject` (dead letters excluded).
pub async fn revisions_in_stream(url: &str, stream: &str, subject: &str) -> HashMap<(String, String), usize> {
    let mut counts = HashMap::new();
    for m in stream_messages(url, stream).await {
        if m.subject.starts_with("alertd.deadletter.") {
            continue;
        }
        assert_eq!(m.subject, subject);
        assert_eq!(m.msg_id.as_deref(), m.payload["id"].as_str(), "Nats-Msg-Id is the event id");
        let key = (
            m.payload["native_id"].as_str().expect("native_id").to_owned(),
            m.payload["revision"].as_str().expect("revision").to_owned(),
        );
        *counts.entry(key).or_insert(0) += 1;
    }
    counts
}

/// Panics on any revision stored more than once.
pub fn assert_no_duplicates(stream: &HashMap<(String, String), usize>) {
    let dupes: Vec<_> = stream.iter().filter(|(_, n)| **n > 1).collect();
    assert!(dupes.is_empty(), "duplicates in the stream: {dupes:?}");
}

/// How often each native id is among `stream`'s events (dead letters left
/// out), after checking each message's `Nats-Msg-Id` is its event id and its
/// subject is `subject`.
pub async fn native_ids_in_stream(url: &str, stream: &str, subject: &str) -> HashMap<String, usize> {
    let mut counts = HashMap::new();
    for m in stream_messages(url, stream).await {
        if m.subject.starts_with("alertd.deadletter.") {
            continue;
        }
        assert_eq!(m.subject, subject);
        assert_eq!(m.msg_id.as_deref(), m.payload["id"].as_str(), "Nats-Msg-Id is the event id");
        *counts.entry(m.payload["native_id"].as_str().expect("native_id").to_owned()).or_insert(0) += 1;
    }
    counts
}

/// The ids (`field` of each item) of every alert the simulator has.
pub fn truth_ids(sim: &alertd::sim::Simulator, field: &str) -> HashSet<String> {
    sim.ground_truth().iter().map(|a| a[field].as_str().expect("an id").to_owned()).collect()
}

/// `stream` holds every id of `truth` exactly once, and nothing else.
pub fn assert_exactly_once(stream: &HashMap<String, usize>, truth: &HashSet<String>) {
    let dupes: Vec<_> = stream.iter().filter(|(_, n)| **n > 1).collect();
    assert!(dupes.is_empty(), "duplicates in the stream: {dupes:?}");
    let missing: Vec<_> = truth.iter().filter(|id| !stream.contains_key(*id)).collect();
    assert!(missing.is_empty(), "{} alerts missing from the stream: {missing:?}", missing.len());
    assert_eq!(stream.len(), truth.len(), "stream holds alerts the vendor never had");
}
