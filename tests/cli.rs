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
    // With a revisit, the walk also remembers what it published.
    let path = write_config(dir.path(), None, &sim.base_url(), "revisit = {}");
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
    // SOURCE VENDOR WATERMARK WALK SEEN REVISIONS UPDATED
    let revisions = |row: &str| row.split_whitespace().nth(5).map(str::to_owned);
    assert_eq!(revisions(row).as_deref(), Some("12"), "12 revisions remembered: {text}");

    let reset = Command::new(alertd_bin())
        .args(["cursors", "reset", "acme", "--since", "2020-01-01T00:00:00Z", "-c"])
        .arg(&path)
        .output()
        .unwrap();
    assert!(reset.status.success());
    let list = Command::new(alertd_bin()).args(["cursors", "list", "-c"]).arg(&path).output().unwrap();
    let text = String::from_utf8_lossy(&list.stdout);
    let row = text.lines().find(|l| l.starts_with("acme")).unwrap_or_else(|| panic!("no row: {text}"));
    assert!(row.contains("2020-01-01T00:00:00.000000Z"), "{text}");
    assert_eq!(revisions(row).as_deref(), Some("0"), "the reset forgot the revisions: {text}");

    let unknown =
        Command::new(alertd_bin()).args(["cursors", "reset", "nope", "-c"]).arg(&path).output().unwrap();
    assert!(!unknown.status.success());
    assert!(String::from_utf8_lossy(&unknown.stderr).contains("no source named `nope`"));
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn sigterm_mid_walk_commits_whole_pages_and_exits_zero() {
    let nats = NatsServer::start();
    let sim =
        Simulator::start(SimVendor::CanaryGuard, SimConfig { initial_items: 40, ..SimConfig::default() })
            .await
            .unwrap();
    // Every page takes a second, so SIGTERM lands while a request is in
    // flight: it is abandoned (tests/shutdown.rs), the pages before it stay.
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
    // Two pages committed (the walk goes on at page 3), however slowly the
    // daemon started.
    let state = dir.path().join("state.sqlite");
    let deadline = Instant::now() + Duration::from_secs(60);
    loop {
        let walk = match state.exists() {
            true => alertd::checkpoint::Store::open(&state).unwrap().load("acme").await.unwrap().walk,
            false => None,
        };
        if walk.is_some_and(|w| !w.contains("\"value\":2")) {
            break;
        }
        assert!(Instant::now() < deadline, "two pages not committed within 60 s");
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
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

/// Every output of a command: stdout and stderr.
fn all_output(out: &std::process::Output) -> String {
    format!("{}{}", String::from_utf8_lossy(&out.stdout), String::from_utf8_lossy(&out.stderr))
}

const NATS_PASSWORD: &str = "s3cr3t-pw";
const NATS_TOKEN: &str = "tok3n-0123456789abcdef";

#[test]
fn check_config_and_check_never_print_the_nats_password_or_a_token() {
    let dir = tempfile::tempdir().unwrap();
    // Nothing listens on port 1: `check` reports the NATS failure.
    let url = format!("nats://alice:{NATS_PASSWORD}@127.0.0.1:1");
    let good = write_config(dir.path(), Some(&url), "http://127.0.0.1:9", "");
    let out = Command::new(alertd_bin()).arg("check-config").arg(&good).output().unwrap();
    assert!(out.status.success(), "{}", all_output(&out));
    let shown = all_output(&out);
    assert!(shown.contains("NATS nats://***@127.0.0.1:1"), "{shown}");
    assert!(!shown.contains(NATS_PASSWORD) && !shown.contains("alice"), "{shown}");

    // Broken lines holding a token: the parser quotes the line it refuses.
    let text = std::fs::read_to_string(&good).unwrap();
    for broken in [
        format!("token = \"{NATS_TOKEN}"),
        format!("token = {NATS_TOKEN}"),
        format!("password = [\"{NATS_TOKEN}\"]"),
    ] {
        let path = dir.path().join("broken.toml");
        std::fs::write(&path, text.replacen("ack_timeout", &format!("{broken}\nack_timeout"), 1)).unwrap();
        let out = Command::new(alertd_bin()).arg("check-config").arg(&path).output().unwrap();
        assert!(!out.status.success(), "{broken}");
        let shown = all_output(&out);
        assert!(shown.contains(&format!("{}:3:", path.display())), "{broken}: {shown}");
        assert!(!shown.contains(NATS_TOKEN) && !shown.contains("0123456789abcdef"), "{shown}");
        assert!(!shown.contains(NATS_PASSWORD), "{shown}");
    }

    // `check`, with every crate's debug logs on (async-nats logs the
    // server addresses it tries).
    let out = Command::new(alertd_bin())
        .args(["--log", "debug", "check", "-c"])
        .arg(&good)
        .env("ALERTD_TEST_CG_KEY", CANARYGUARD_DEMO_KEY)
        .output()
        .unwrap();
    let shown = all_output(&out);
    assert!(!out.status.success(), "NATS is unreachable: {shown}");
    let nats_row = shown.lines().find(|l| l.starts_with("nats")).unwrap_or_else(|| panic!("{shown}"));
    assert!(nats_row.contains("FAIL"), "{nats_row}");
    assert!(shown.contains("DEBUG"), "debug logs were on: {shown}");
    assert!(!shown.contains(NATS_PASSWORD) && !shown.contains("alice:"), "{shown}");
}

/// A child process killed when the test ends, passed or not.
struct KillOnDrop(std::process::Child);

impl Drop for KillOnDrop {
    fn drop(&mut self) {
        let _ = self.0.kill();
        let _ = self.0.wait();
    }
}

/// A nats-server that requires user `alice` with `NATS_PASSWORD`.
struct AuthNats {
    child: std::process::Child,
    port: u16,
    _store: tempfile::TempDir,
}

impl AuthNats {
    fn start() -> AuthNats {
        let port = common::free_port();
        let store = tempfile::tempdir().unwrap();
        let child = Command::new(common::nats_server_bin())
            .args([
                "-js",
                "-a",
                "127.0.0.1",
                "-p",
                &port.to_string(),
                "--user",
                "alice",
                "--pass",
                NATS_PASSWORD,
            ])
            .arg("-sd")
            .arg(store.path())
            .stdout(Stdio::null())
            .stderr(Stdio::null())
            .spawn()
            .unwrap();
        common::wait_listening(port, "nats-server");
        AuthNats { child, port, _store: store }
    }
}

impl Drop for AuthNats {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

/// The URL's userinfo is what logs alertd in (async-nats alone ignores
/// it), and neither `run`'s logs, `check` nor `cluster status` show it.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_password_in_the_nats_url_logs_in_and_is_never_shown() {
    let nats = AuthNats::start();
    let dir = tempfile::tempdir().unwrap();
    let url = format!("nats://alice:{NATS_PASSWORD}@127.0.0.1:{}", nats.port);
    let path = dir.path().join("alertd.toml");
    std::fs::write(
        &path,
        format!(
            "[nats]\nurl = \"{url}\"\nack_timeout = \"2s\"\n\n[state]\nbackend = \"nats-kv\"\n\n\
             [cluster]\nenabled = true\ninstance = \"one\"\nlease_ttl = \"3s\"\n\n[service]\nlisten = \"off\"\n\n\
             [[source]]\nvendor = \"canaryguard\"\nname = \"acme\"\nbase_url = \"http://127.0.0.1:9\"\n\
             credential = {{ env = \"ALERTD_TEST_CG_KEY\" }}\nschedule = \"every 1h\"\njitter = \"0s\"\nretries = 0\n"
        ),
    )
    .unwrap();

    // Logs go to a file: a pipe nobody reads while the test waits would
    // fill up and block the daemon.
    let log = dir.path().join("run.log");
    let daemon = KillOnDrop(
        Command::new(alertd_bin())
            .args(["--log", "debug", "run", "-c"])
            .arg(&path)
            .env("ALERTD_TEST_CG_KEY", CANARYGUARD_DEMO_KEY)
            .stdout(Stdio::null())
            .stderr(std::fs::File::create(&log).unwrap())
            .spawn()
            .unwrap(),
    );
    // The daemon is up once it holds the source's lease.
    let deadline = Instant::now() + Duration::from_secs(60);
    let status = loop {
        let out = Command::new(alertd_bin()).args(["cluster", "status", "-c"]).arg(&path).output().unwrap();
        let shown = all_output(&out);
        if out.status.success() && shown.lines().any(|l| l.starts_with("acme") && l.contains(" one ")) {
            break shown;
        }
        assert!(Instant::now() < deadline, "no lease within 60s: {shown}");
        tokio::time::sleep(Duration::from_millis(500)).await;
    };
    let check = Command::new(alertd_bin())
        .args(["check", "-c"])
        .arg(&path)
        .env("ALERTD_TEST_CG_KEY", CANARYGUARD_DEMO_KEY)
        .output()
        .unwrap();
    let check = all_output(&check);
    let nats_row = check.lines().find(|l| l.starts_with("nats")).unwrap_or_else(|| panic!("{check}"));
    assert!(nats_row.contains(" ok ") && nats_row.contains("nats://***@127.0.0.1"), "{check}");
    assert!(Command::new("kill").args(["-TERM", &daemon.0.id().to_string()]).status().unwrap().success());
    let mut daemon = daemon;
    assert!(daemon.0.wait().unwrap().success());
    let run = std::fs::read_to_string(&log).unwrap();
    assert!(run.contains("DEBUG"), "debug logs were on: {run}");
    for shown in [&status, &check, &run] {
        assert!(!shown.contains(NATS_PASSWORD) && !shown.contains("alice:"), "{shown}");
    }

    // A wrong password in the URL is refused by the server: the URL's
    // userinfo is what is sent.
    let wrong = std::fs::read_to_string(&path).unwrap().replace(NATS_PASSWORD, "wrong-pw");
    std::fs::write(&path, wrong).unwrap();
    let out = Command::new(alertd_bin()).args(["check", "-c"]).arg(&path).output().unwrap();
    let shown = all_output(&out);
    let nats_row = shown.lines().find(|l| l.starts_with("nats")).unwrap_or_else(|| panic!("{shown}"));
    assert!(nats_row.contains("FAIL") && shown.contains("authorization violation"), "{shown}");
    assert!(!shown.contains("wrong-pw"), "{shown}");
}

#[test]
fn check_config_refuses_a_lookback_chrono_cannot_represent() {
    let dir = tempfile::tempdir().unwrap();
    let path = write_config(dir.path(), None, "http://127.0.0.1:9", "");
    let text = std::fs::read_to_string(&path).unwrap().replace("\"72h\"", "\"300000years\"");
    std::fs::write(&path, &text).unwrap();
    let line = text.lines().position(|l| l.starts_with("initial_lookback")).unwrap() + 1;
    for args in [&["check-config"][..], &["run", "--once", "-c"][..]] {
        let out = Command::new(alertd_bin())
            .args(args)
            .arg(&path)
            .env("ALERTD_TEST_CG_KEY", CANARYGUARD_DEMO_KEY)
            .output()
            .unwrap();
        let stderr = String::from_utf8_lossy(&out.stderr);
        assert_eq!(out.status.code(), Some(1), "{args:?}: a refusal, not a panic (101): {stderr}");
        assert!(stderr.contains(&format!("{}:{line}:", path.display())), "{stderr}");
        assert!(stderr.contains("initial_lookback") && stderr.contains("maximum 10years"), "{stderr}");
    }
}

#[test]
fn check_config_refuses_cleartext_http_off_loopback_unless_allowed() {
    let dir = tempfile::tempdir().unwrap();
    // Config only: nothing is sent to 10.1.2.3.
    let path = write_config(dir.path(), None, "http://10.1.2.3/", "");
    let out = Command::new(alertd_bin()).arg("check-config").arg(&path).output().unwrap();
    assert!(!out.status.success());
    let stderr = String::from_utf8_lossy(&out.stderr);
    let text = std::fs::read_to_string(&path).unwrap();
    let line = text.lines().position(|l| l.starts_with("base_url")).unwrap() + 1;
    assert!(stderr.contains(&format!("{}:{line}:", path.display())), "{stderr}");
    assert!(stderr.contains("source `acme`: base_url") && stderr.contains("allow_insecure_http"), "{stderr}");

    let allowed = write_config(dir.path(), None, "http://10.1.2.3/", "allow_insecure_http = true");
    let out = Command::new(alertd_bin()).arg("check-config").arg(&allowed).output().unwrap();
    assert!(out.status.success(), "{}", all_output(&out));
    for url in ["http://127.0.0.1:9/", "https://10.1.2.3/"] {
        let path = write_config(dir.path(), None, url, "");
        let out = Command::new(alertd_bin()).arg("check-config").arg(&path).output().unwrap();
        assert!(out.status.success(), "{url}: {}", all_output(&out));
    }
}

/// `alertd …` at the default log level (no `--log`, `ALERTD_LOG` or `RUST_LOG`).
fn alertd_default_log() -> Command {
    let mut command = Command::new(alertd_bin());
    command.env_remove("RUST_LOG").env_remove("ALERTD_LOG");
    command
}

/// The README's first run, step by step, as far as it runs without
/// systemd: `init` → edit → `check-config` → `check` → start (`run --once`
/// here), then `cursors list` and `tail`. No step prints the NATS client's
/// own log lines, and the summary counts events and messages apart.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_first_run_path_of_the_readme_works_step_by_step() {
    let nats = NatsServer::start();
    let sim =
        Simulator::start(SimVendor::CanaryGuard, SimConfig { initial_items: 12, ..SimConfig::default() })
            .await
            .unwrap();
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("alertd.toml");
    let mut shown = Vec::new();

    // 1. init
    let init = alertd_default_log()
        .args(["init", "--vendor", "canaryguard", "--nats", &nats.url()])
        .output()
        .unwrap();
    assert!(init.status.success(), "{}", all_output(&init));
    let text = String::from_utf8(init.stdout).unwrap();
    assert!(text.contains("credential = { systemd = \"canaryguard-prod\" }"), "{text}");

    // 2. edit: the key from the environment, the simulator as the vendor,
    // state and listener for a test, OCSF beside alertd's events.
    let edited = text
        .replace(
            "credential = { systemd = \"canaryguard-prod\" }",
            "credential = { env = \"ALERTD_TEST_CG_KEY\" }",
        )
        .replace("# base_url = \"https://canaryguard.app\"", &format!("base_url = \"{}\"", sim.base_url()))
        .replace("# formats = [\"alertd\"]", "formats = [\"alertd\", \"ocsf\"]")
        .replace("# [state]", "[state]")
        .replace(
            "# path = \"/var/lib/alertd/alertd.sqlite\"",
            &format!("path = \"{}\"", dir.path().join("state.sqlite").display()),
        )
        .replace("# [service]\n# listen = \"127.0.0.1:9464\"", "[service]\nlisten = \"off\"")
        + "initial_lookback = \"72h\"\nlag = \"0s\"\n";
    assert_ne!(edited, text);
    std::fs::write(&path, &edited).unwrap();

    // 3. check-config
    let out = alertd_default_log().arg("check-config").arg(&path).output().unwrap();
    assert!(out.status.success(), "{}\n{edited}", all_output(&out));
    assert!(
        String::from_utf8_lossy(&out.stdout).contains("OK (1 sources, 1 enabled"),
        "{}",
        all_output(&out)
    );

    // 4. check: the stream does not exist yet, which is fine.
    let out = alertd_default_log()
        .args(["check", "-c"])
        .arg(&path)
        .env("ALERTD_TEST_CG_KEY", CANARYGUARD_DEMO_KEY)
        .output()
        .unwrap();
    let check = all_output(&out);
    assert!(out.status.success(), "{check}");
    assert!(!check.contains("FAIL") && check.contains("will be created on start"), "{check}");
    shown.push(check);

    // 5. start (`systemctl enable --now alertd` runs `alertd run`).
    let out = alertd_default_log()
        .args(["run", "--once", "-c"])
        .arg(&path)
        .env("ALERTD_TEST_CG_KEY", CANARYGUARD_DEMO_KEY)
        .output()
        .unwrap();
    let run = all_output(&out);
    assert!(out.status.success(), "{run}");
    assert!(
        run.contains("canaryguard-prod: 1 pages, 12 items, 12 events, 24 messages (alertd, ocsf)"),
        "{run}"
    );
    assert!(run.contains("events=12 messages=24 formats=alertd,ocsf"), "the log line: {run}");
    assert_eq!(stream_messages(&nats.url(), "ALERTD").await.len(), 24);
    shown.push(run);

    let out = alertd_default_log().args(["cursors", "list", "-c"]).arg(&path).output().unwrap();
    assert!(out.status.success(), "{}", all_output(&out));
    shown.push(all_output(&out));

    // `tail` until it printed the stored events (12 v1 events; OCSF
    // findings are not alertd events), then SIGINT.
    let tail_out = dir.path().join("tail.out");
    let tail_err = dir.path().join("tail.err");
    let tail = KillOnDrop(
        alertd_default_log()
            .args(["tail", "--from-start", "-c"])
            .arg(&path)
            .stdout(std::fs::File::create(&tail_out).unwrap())
            .stderr(std::fs::File::create(&tail_err).unwrap())
            .spawn()
            .unwrap(),
    );
    let deadline = Instant::now() + Duration::from_secs(60);
    while std::fs::read_to_string(&tail_out).unwrap_or_default().lines().count() < 12 {
        assert!(Instant::now() < deadline, "tail printed: {}", std::fs::read_to_string(&tail_out).unwrap());
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
    assert!(Command::new("kill").args(["-INT", &tail.0.id().to_string()]).status().unwrap().success());
    let mut tail = tail;
    tail.0.wait().unwrap();
    shown.push(std::fs::read_to_string(&tail_err).unwrap() + &std::fs::read_to_string(&tail_out).unwrap());

    for output in &shown {
        assert!(!output.contains("async_nats"), "a library's log line at the default level:\n{output}");
    }
    // Asked for, they are there.
    let out = Command::new(alertd_bin())
        .args(["--log", "info", "check", "-c"])
        .arg(&path)
        .env("ALERTD_TEST_CG_KEY", CANARYGUARD_DEMO_KEY)
        .output()
        .unwrap();
    assert!(all_output(&out).contains("async_nats"), "{}", all_output(&out));
}

/// `init` for each vendor alone, and for all of them, passes `check-config` as printed.
#[test]
fn init_output_passes_check_config_for_every_vendor_and_all_together() {
    let dir = tempfile::tempdir().unwrap();
    let keys: Vec<&str> = alertd::registry::keys().collect();
    let mut choices: Vec<Vec<&str>> = keys.iter().map(|k| vec![*k]).collect();
    choices.push(keys.clone());
    for chosen in choices {
        let mut command = Command::new(alertd_bin());
        command.arg("init");
        for key in &chosen {
            command.args(["--vendor", key]);
        }
        let out = command.output().unwrap();
        assert!(out.status.success(), "{chosen:?}: {}", all_output(&out));
        let text = String::from_utf8(out.stdout).unwrap();
        assert_eq!(text.matches("[[source]]").count(), chosen.len(), "{text}");
        assert!(text.contains("[nats]\nurl = \"nats://127.0.0.1:4222\""), "{text}");
        for key in &chosen {
            let name = format!("{}-prod", key.replace('_', "-"));
            assert!(text.contains(&format!("credential = {{ systemd = \"{name}\" }}")), "{text}");
        }
        let path = dir.path().join("init.toml");
        std::fs::write(&path, &text).unwrap();
        let out = Command::new(alertd_bin()).arg("check-config").arg(&path).output().unwrap();
        assert!(out.status.success(), "{chosen:?}: {}\n{text}", all_output(&out));
        let summary = format!("OK ({n} sources, {n} enabled; events to NATS", n = chosen.len());
        assert!(String::from_utf8_lossy(&out.stdout).contains(&summary), "{}", all_output(&out));
    }
    let unknown = Command::new(alertd_bin()).args(["init", "--vendor", "nope"]).output().unwrap();
    assert!(!unknown.status.success());
    assert!(all_output(&unknown).contains("possible values: canaryguard"), "{}", all_output(&unknown));
}
