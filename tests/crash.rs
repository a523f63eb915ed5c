//! Crash safety across vendors: the real `alertd run` binary is killed with
//! SIGKILL at seeded random points while it backfills a Thinkst Canary
//! console (a cursor walk) and a Red Canary tenant (a `links.next` walk) at
//! once, restarted each time, and the stream is then compared with both
//! simulators' ground truth: nothing missing, nothing twice.
//!
//! The kill points come from `ALERTD_CRASH_SEED` (default 5), so a failure
//! is reproduced with the seed the test prints.

mod common;

use std::collections::HashMap;
use std::path::{Path, PathBuf};
use std::process::{Command, Stdio};
use std::time::{Duration, Instant};

use alertd::checkpoint::Store;
use alertd::sim::{Fault, RED_CANARY_DEMO_KEY, SimConfig, SimVendor, Simulator, THINKST_CANARY_DEMO_KEY};
use rand::rngs::StdRng;
use rand::{Rng, SeedableRng};

use common::{NatsServer, alertd_bin, stream_messages};

/// Kills the backfills must survive; each one interrupts both walks.
const KILLS: usize = 20;
const SOURCES: [&str; 2] = ["tc", "rc"];

fn write_config(dir: &Path, nats: &str, thinkst: &str, red_canary: &str) -> PathBuf {
    let source = |vendor: &str, name: &str, base_url: &str, key_env: &str| {
        format!(
            "[[source]]\nvendor = \"{vendor}\"\nname = \"{name}\"\nbase_url = \"{base_url}\"\n\
             credential = {{ env = \"{key_env}\" }}\nschedule = \"every 1s\"\njitter = \"0s\"\nlag = \"0s\"\n\
             initial_lookback = \"72h\"\npage_size = 3\nrate_limits = []\n\n"
        )
    };
    let text = format!(
        "[nats]\nurl = \"{nats}\"\nack_timeout = \"2s\"\n\n[state]\npath = \"{}\"\n\n[service]\nlisten = \"off\"\n\n{}{}",
        dir.join("state.sqlite").display(),
        source("thinkst_canary", "tc", thinkst, "ALERTD_CRASH_TC_KEY"),
        source("red_canary", "rc", red_canary, "ALERTD_CRASH_RC_KEY"),
    );
    let path = dir.join("alertd.toml");
    std::fs::write(&path, text).unwrap();
    path
}

fn daemon(config: &Path, once: bool) -> Command {
    let mut command = Command::new(alertd_bin());
    command.arg("run");
    if once {
        command.arg("--once");
    }
    command
        .arg("-c")
        .arg(config)
        .env("ALERTD_CRASH_TC_KEY", THINKST_CANARY_DEMO_KEY)
        .env("ALERTD_CRASH_RC_KEY", RED_CANARY_DEMO_KEY)
        .stdout(Stdio::null())
        .stderr(Stdio::null());
    command
}

/// Whether every source has finished its first walk.
async fn backfilled(state: &Path) -> bool {
    let store = Store::open(state).unwrap();
    for name in SOURCES {
        let s = store.load(name).await.unwrap();
        if s.walk.is_some() || s.watermark.is_none() {
            return false;
        }
    }
    true
}

/// How often each `(native_id, revision)` is in the stream, per subject,
/// after checking every message's `Nats-Msg-Id` is its event id.
async fn revisions_by_subject(url: &str) -> HashMap<String, HashMap<(String, String), usize>> {
    let mut by_subject: HashMap<String, HashMap<(String, String), usize>> = HashMap::new();
    for m in stream_messages(url, "ALERTD").await {
        assert_eq!(m.msg_id.as_deref(), m.payload["id"].as_str(), "Nats-Msg-Id is the event id");
        let key = (
            m.payload["native_id"].as_str().expect("native_id").to_owned(),
            m.payload["revision"].as_str().expect("revision").to_owned(),
        );
        *by_subject.entry(m.subject).or_default().entry(key).or_default() += 1;
    }
    by_subject
}

/// `(native_id, revision)` of everything a simulator has.
fn truth(sim: &Simulator, revision: impl Fn(&serde_json::Value) -> String) -> Vec<(String, String)> {
    sim.ground_truth()
        .iter()
        .map(|i| (i["id"].to_string().trim_matches('"').to_owned(), revision(i)))
        .collect()
}

fn compare(
    vendor: &str,
    stream: &HashMap<(String, String), usize>,
    truth: &[(String, String)],
) -> (usize, usize, usize) {
    let missing = truth.iter().filter(|k| !stream.contains_key(*k)).count();
    let duplicated = stream.values().filter(|n| **n > 1).count();
    let foreign = stream.keys().filter(|k| !truth.contains(k)).count();
    eprintln!(
        "{vendor}: {} in truth, {} in stream, {missing} missing, {duplicated} duplicated",
        truth.len(),
        stream.len()
    );
    (missing, duplicated, foreign)
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn sigkills_during_cursor_and_link_walks_lose_nothing_and_duplicate_nothing() {
    let seed: u64 = std::env::var("ALERTD_CRASH_SEED").ok().and_then(|s| s.parse().ok()).unwrap_or(5);
    let mut rng = StdRng::seed_from_u64(seed);
    let nats = NatsServer::start();
    let start = |vendor: SimVendor, seed: u64| {
        Simulator::start(vendor, SimConfig { seed, initial_items: 300, ..SimConfig::for_vendor(vendor) })
    };
    let thinkst = start(SimVendor::ThinkstCanary, 5).await.unwrap();
    let red_canary = start(SimVendor::RedCanary, 11).await.unwrap();
    // Every page takes a little while, so a backfill of 100 pages per source
    // spans many kills.
    for sim in [&thinkst, &red_canary] {
        sim.inject(Fault::Slow(Duration::from_millis(60)), 100_000);
    }
    let dir = tempfile::tempdir().unwrap();
    let config = write_config(dir.path(), &nats.url(), &thinkst.base_url(), &red_canary.base_url());
    let state = dir.path().join("state.sqlite");

    let (mut kills, mut mid_walk) = (0, 0);
    let deadline = Instant::now() + Duration::from_secs(45);
    while !backfilled(&state).await && Instant::now() < deadline {
        let mut child = daemon(&config, false).spawn().unwrap();
        // Anywhere from start-up to well into a page, its publish or its commit.
        let after = Duration::from_millis(rng.random_range(60..500));
        tokio::time::sleep(after).await;
        child.kill().unwrap();
        child.wait().unwrap();
        kills += 1;
        if !backfilled(&state).await {
            mid_walk += 1;
        }
    }
    // The restart after the last kill finishes whatever is left.
    let last = daemon(&config, true).status().unwrap();
    assert!(last.success(), "the final run --once failed: {last:?}");
    assert!(backfilled(&state).await, "both backfills complete");

    let mut stream = revisions_by_subject(&nats.url()).await;
    let tc_stream = stream.remove("alertd.thinkst_canary.tc.incident").unwrap_or_default();
    let rc_stream = stream.remove("alertd.red_canary.rc.detection").unwrap_or_default();
    assert!(stream.is_empty(), "nothing else (no dead letters): {:?}", stream.keys());
    let tc = compare("thinkst_canary", &tc_stream, &truth(&thinkst, |i| i["updated_id"].to_string()));
    let rc_revisions: HashMap<String, String> =
        rc_stream.keys().map(|(id, revision)| (id.clone(), revision.clone())).collect();
    // A Red Canary revision is the detection's last change time as alertd
    // renders it; the truth is its id, and the stream must have each once.
    let rc = compare(
        "red_canary",
        &rc_stream,
        &truth(&red_canary, |d| rc_revisions.get(&d["id"].to_string()).cloned().unwrap_or_default()),
    );
    eprintln!("seed {seed}: {kills} SIGKILLs, {mid_walk} of them with a backfill unfinished");
    assert_eq!(tc, (0, 0, 0), "thinkst (missing, duplicated, foreign) after {kills} kills, seed {seed}");
    assert_eq!(rc, (0, 0, 0), "red canary (missing, duplicated, foreign) after {kills} kills, seed {seed}");
    assert!(kills >= KILLS, "only {kills} kills before the deadline");
    assert!(mid_walk >= KILLS, "only {mid_walk} kills landed mid-backfill; make the walks longer");
}
