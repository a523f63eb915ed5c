//! The `alertd` binary as an operator uses it: config checks, cursors,
//! signals, and a SIGKILL in the middle of a backfill.

mod common;

use std::collections::HashMap;
use std::path::Path;
use std::process::{Command, Stdio};
use std::time::{Duration, Instant};

use alertd::sim::{CANARYGUARD_DEMO_KEY, Fault, SimConfig, SimVendor, Simulator};

use common::{NatsServer, alertd_bin, stream_messages};

fn write_config(dir: &Path, nats: Option<&str>, base_url: &str, extra: &str) -> std::path::PathBuf {
    let nats =
        nats.map(|url| format!("[nats]\nurl = \"{url}\"\nack_timeout = \"2s\"\n\n")).unwrap_or_default();
    let text = format!(
        "{nats}[state]\npath = \"{}\"\n\n[service]\nlisten = \"off\"\n\n[[source]]\nvendor = \"canaryguard\"\nname = \"acme\"\n\
         base_url = \"{base_url}\"\ncredential = {{ env = \"ALERTD_TEST_CG_KEY\" }}\nschedule = \"every 1s\"\n\
         jitter = \"0s\"\nlag = \"0s\"\ninitial_lookback = \"72h\"\n{extra}\n",
        dir.join("state.sqlite").display()
    );
    let path = dir.join("alertd.toml");
    std::fs::write(&path, text).unwrap();
    path
}

#[test]
fn check_config_names_the_file_line_and_field_of_a_bad_line() {
    let dir = tempfile::tempdir().unwrap();
    let path = write_config(dir.path(), None, "http://127.0.0.1:9", "page_size = \"lots\"");
    let out = Command::new(alertd_bin()).arg("check-config").arg(&path).output().unwrap();
    assert!(!out.status.success());
    let stderr = String::from_utf8_lossy(&out.stderr);
    let text = std::fs::read_to_string(&path).unwrap();
    let line = text.lines().position(|l| l.starts_with("page_size")).unwrap() + 1;
    assert!(stderr.contains(&format!("{}:{line}:13:", path.display())), "{stderr}");
    assert!(stderr.contains("page_size"), "{stderr}");
}

#[test]
fn check_config_accepts_the_shipped_example() {
    let example = concat!(env!("CARGO_MANIFEST_DIR"), "/config/alertd.example.toml");
    let out = Command::new(alertd_bin()).args(["check-config", example]).output().unwrap();
    assert!(out.status.success(), "{}", String::from_utf8_lossy(&out.stderr));
    assert!(String::from_utf8_lossy(&out.stdout).contains("OK"));
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn cursors_can_be_listed_and_reset() {
    let sim =
        Simulator::start(SimVendor::CanaryGuard, SimConfig { initial_items: 12, ..SimConfig::default() })
            .await
            .unwrap();
    let dir = tempfile::tempdir().unwrap();
    let path = write_config(dir.path(), None, &sim.base_url(), "");
    let run = Command::new(alertd_bin())
        .args(["run", "--once", "-c"])
        .arg(&path)
        .env("ALERTD_TEST_CG_KEY", CANARYGUARD_DEMO_KEY)
        .output()
        .unwrap();
    assert!(run.status.success(), "{}", String::from_utf8_lossy(&run.stderr));
    assert_eq!(String::from_utf8_lossy(&run.stdout).lines().count(), 12, "12 events on stdout");

    let list = Command::new(alertd_bin()).args(["cursors", "list", "-c"]).arg(&path).output().unwrap();
    let text = String::from_utf8_lossy(&list.stdout);
    let row = text.lines().find(|l| l.starts_with("acme")).unwrap_or_else(|| panic!("no row: {text}"));
    assert!(row.contains("canaryguard") && row.contains("Z "), "a watermark was stored: {row}");

    let reset = Command::new(alertd_bin())
        .args(["cursors", "reset", "acme", "--since", "2020-01-01T00:00:00Z", "-c"])
        .arg(&path)
        .output()
        .unwrap();
    assert!(reset.status.success());
    let list = Command::new(alertd_bin()).args(["cursors", "list", "-c"]).arg(&path).output().unwrap();
    assert!(String::from_utf8_lossy(&list.stdout).contains("2020-01-01T00:00:00.000000Z"));

    let unknown =
        Command::new(alertd_bin()).args(["cursors", "reset", "nope", "-c"]).arg(&path).output().unwrap();
    assert!(!unknown.status.success());
    assert!(String::from_utf8_lossy(&unknown.stderr).contains("no source named `nope`"));
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn sigterm_finishes_the_page_in_flight_commits_and_exits_zero() {
    let nats = NatsServer::start();
    let sim =
        Simulator::start(SimVendor::CanaryGuard, SimConfig { initial_items: 40, ..SimConfig::default() })
            .await
            .unwrap();
    // Every page takes a second, so SIGTERM lands while a page is in flight.
    sim.inject(Fault::Slow(Duration::from_secs(1)), 100);
    let dir = tempfile::tempdir().unwrap();
    let path = write_config(dir.path(), Some(&nats.url()), &sim.base_url(), "page_size = 5");
    let child = Command::new(alertd_bin())
        .args(["run", "-c"])
        .arg(&path)
        .env("ALERTD_TEST_CG_KEY", CANARYGUARD_DEMO_KEY)
        .stderr(Stdio::null())
        .spawn()
        .unwrap();
    tokio::time::sleep(Duration::from_millis(2500)).await;
    let pid = child.id().to_string();
    assert!(Command::new("kill").args(["-TERM", &pid]).status().unwrap().success());
    let output = child.wait_with_output().unwrap();
    assert!(output.status.success(), "exit status {:?}", output.status);

    let stored = stream_messages(&nats.url(), "ALERTD").await.len();
    let store = alertd::checkpoint::Store::open(&dir.path().join("state.sqlite")).unwrap();
    let state = store.load("acme").await.unwrap();
    let walk = state.walk.expect("the walk stopped early and is resumable");
    // Every published page was committed: the stored position is right after them.
    assert!(stored >= 10 && stored % 5 == 0, "whole pages only: {stored}");
    assert!(walk.contains(&format!("\"value\":{}", stored / 5 + 1)), "{walk} after {stored} events");
}

/// SIGKILL at random points of a multi-page backfill, restart, repeat: the
/// stream ends up with every alert exactly once.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_sigkilled_daemon_loses_nothing_and_duplicates_nothing() {
    let nats = NatsServer::start();
    let sim =
        Simulator::start(SimVendor::CanaryGuard, SimConfig { initial_items: 300, ..SimConfig::default() })
            .await
            .unwrap();
    sim.inject(Fault::Slow(Duration::from_millis(40)), 10_000);
    let dir = tempfile::tempdir().unwrap();
    let path = write_config(dir.path(), Some(&nats.url()), &sim.base_url(), "page_size = 3");
    let mut kills = 0;
    let deadline = Instant::now() + Duration::from_secs(120);
    loop {
        let mut child = Command::new(alertd_bin())
            .args(["run", "-c"])
            .arg(&path)
            .env("ALERTD_TEST_CG_KEY", CANARYGUARD_DEMO_KEY)
            .stderr(Stdio::null())
            .spawn()
            .unwrap();
        // Kill somewhere between 0.3 s and 1.5 s in: mid-page, mid-publish or mid-commit.
        let wait = 300 + (kills * 377) % 1200;
        tokio::time::sleep(Duration::from_millis(wait)).await;
        child.kill().unwrap();
        child.wait().unwrap();
        kills += 1;
        let done = alertd::checkpoint::Store::open(&dir.path().join("state.sqlite"))
            .unwrap()
            .load("acme")
            .await
            .unwrap();
        if (done.walk.is_none() && done.watermark.is_some() && kills >= 5) || Instant::now() > deadline {
            break;
        }
    }
    assert!(kills >= 5, "the backfill must survive several kills (got {kills})");
    let mut counts: HashMap<String, usize> = HashMap::new();
    for m in stream_messages(&nats.url(), "ALERTD").await {
        *counts.entry(m.payload["native_id"].as_str().unwrap().to_owned()).or_default() += 1;
    }
    let truth: Vec<String> =
        sim.ground_truth().iter().map(|a| a["id"].as_str().unwrap().to_owned()).collect();
    let missing = truth.iter().filter(|id| !counts.contains_key(*id)).count();
    let dupes = counts.values().filter(|n| **n > 1).count();
    assert_eq!((missing, dupes), (0, 0), "after {kills} kills: {missing} missing, {dupes} duplicated");
    assert_eq!(counts.len(), truth.len());
}

#[test]
fn run_once_refuses_to_ignore_cluster_leases() {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("alertd.toml");
    std::fs::write(
        &path,
        "[nats]\nurl = \"nats://127.0.0.1:1\"\n\n[state]\nbackend = \"nats-kv\"\n\n[cluster]\nenabled = true\n",
    )
    .unwrap();
    let out = Command::new(alertd_bin()).args(["run", "--once", "-c"]).arg(&path).output().unwrap();
    assert!(!out.status.success());
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert!(stderr.contains("without taking its lease"), "{stderr}");
}
