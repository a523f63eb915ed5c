//! `systemctl reload` (SIGHUP) on the real binary, with a real nats-server
//! and three simulators: a daemon polling two sources gets a third added,
//! one's page size changed, one removed, a broken file, and the file fixed
//! (with a `[nats]` change it must refuse, and the removed source back),
//! each followed by SIGHUP. The
//! process stays the same throughout; the simulators' request logs show the
//! removed source stopped and the new one started; the stream holds every
//! item exactly once; the broken file changed nothing.

mod common;

use std::collections::{HashMap, HashSet};
use std::path::Path;
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

use alertd::sim::{CANARYGUARD_DEMO_KEY, Fault, SimConfig, SimVendor, Simulator};

use common::{NatsServer, free_port};

async fn sim(seed: u64, items: usize) -> Simulator {
    let config = SimConfig { seed, initial_items: items, ..Default::default() };
    Simulator::start(SimVendor::CanaryGuard, config).await.expect("simulator starts")
}

fn source(name: &str, sim: &Simulator, page_size: u32) -> String {
    format!(
        "[[source]]\nvendor = \"canaryguard\"\nname = \"{name}\"\nbase_url = \"{}\"\ncredential = {{ env = \"CG_KEY\" }}\n\
         schedule = \"every 1s\"\njitter = \"0s\"\nlag = \"0s\"\ninitial_lookback = \"72h\"\nretries = 0\n\
         rate_limits = []\npage_size = {page_size}\n",
        sim.base_url()
    )
}

fn head(dir: &Path, nats: &str, port: u16, ack_timeout: &str) -> String {
    format!(
        "[nats]\nurl = \"{nats}\"\nstream = \"ALERTD\"\nack_timeout = \"{ack_timeout}\"\n\n[state]\npath = \"{}\"\n\n\
         [service]\nlisten = \"127.0.0.1:{port}\"\n\n",
        dir.join("state.sqlite").display()
    )
}

async fn metrics(port: u16) -> String {
    match reqwest::get(format!("http://127.0.0.1:{port}/metrics")).await {
        Ok(r) => r.text().await.unwrap_or_default(),
        Err(_) => String::new(),
    }
}

fn sample(metrics: &str, prefix: &str) -> Option<f64> {
    metrics.lines().find(|l| l.starts_with(prefix)).and_then(|l| l.rsplit(' ').next()?.parse().ok())
}

/// Native ids per subject in the stream.
async fn stream_ids(url: &str) -> HashMap<String, HashMap<String, usize>> {
    let mut out: HashMap<String, HashMap<String, usize>> = HashMap::new();
    for m in common::stream_messages(url, "ALERTD").await {
        assert!(!m.subject.starts_with("alertd.deadletter."), "no dead letter expected: {}", m.subject);
        assert_eq!(m.msg_id.as_deref(), m.payload["id"].as_str(), "Nats-Msg-Id is the event id");
        let id = m.payload["native_id"].as_str().expect("native_id").to_owned();
        *out.entry(m.subject).or_default().entry(id).or_insert(0) += 1;
    }
    out
}

fn subject(source: &str) -> String {
    format!("alertd.canaryguard.{source}.alert")
}

/// Wait until the stream holds every alert of `sim` under `source`'s subject.
async fn wait_delivered(url: &str, source: &str, sim: &Simulator, within: Duration) {
    let truth = common::poll::truth_ids(sim, "id");
    let deadline = Instant::now() + within;
    loop {
        let ids = stream_ids(url).await;
        let have: HashSet<String> =
            ids.get(&subject(source)).map(|m| m.keys().cloned().collect()).unwrap_or_default();
        if truth.is_subset(&have) {
            return;
        }
        assert!(
            Instant::now() < deadline,
            "{source}: {} of {} alerts in the stream after {within:?}",
            have.intersection(&truth).count(),
            truth.len()
        );
        tokio::time::sleep(Duration::from_millis(200)).await;
    }
}

/// Send SIGHUP and wait until the reload counter for `result` reaches `count`.
async fn reload(child: &Child, port: u16, result: &str, count: f64) -> String {
    let ok = Command::new("kill").args(["-HUP", &child.id().to_string()]).status().unwrap().success();
    assert!(ok, "kill -HUP");
    let deadline = Instant::now() + Duration::from_secs(30);
    loop {
        let text = metrics(port).await;
        if sample(&text, &format!("alertd_config_reloads_total{{result=\"{result}\"}}")) == Some(count) {
            return text;
        }
        assert!(Instant::now() < deadline, "reload #{count} ({result}) not counted within 30s:\n{text}");
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
}

fn log_lines(path: &Path) -> Vec<serde_json::Value> {
    std::fs::read_to_string(path)
        .unwrap_or_default()
        .lines()
        .filter_map(|l| serde_json::from_str(l).ok())
        .collect()
}

fn requests_with_limit(sim: &Simulator, limit: u32) -> usize {
    let want = format!("limit={limit}");
    sim.requests()
        .iter()
        .filter(|r| r.query.as_deref().is_some_and(|q| q.split('&').any(|p| p == want)))
        .count()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn sighup_adds_changes_removes_sources_and_refuses_a_broken_file() {
    let nats = NatsServer::start();
    let (alpha, beta, gamma) = (sim(11, 17).await, sim(12, 9).await, sim(13, 13).await);
    let dir = tempfile::tempdir().unwrap();
    let port = free_port();
    let file = dir.path().join("alertd.toml");
    let log = dir.path().join("alertd.log");
    let head = |ack: &str| head(dir.path(), &nats.url(), port, ack);
    std::fs::write(&file, head("5s") + &source("alpha", &alpha, 5) + &source("beta", &beta, 5)).unwrap();
    let mut child = Command::new(common::alertd_bin())
        .args(["--log-format", "json", "run", "-c"])
        .arg(&file)
        .env("CG_KEY", CANARYGUARD_DEMO_KEY)
        .stdout(Stdio::null())
        .stderr(std::fs::File::create(&log).unwrap())
        .spawn()
        .unwrap();
    struct Kill(u32);
    impl Drop for Kill {
        fn drop(&mut self) {
            let _ = Command::new("kill").args(["-KILL", &self.0.to_string()]).stderr(Stdio::null()).status();
        }
    }
    let _guard = Kill(child.id());
    let pid = child.id();
    let url = nats.url();
    let within = Duration::from_secs(60);
    // The listener starts once the stream exists.
    let deadline = Instant::now() + within;
    while metrics(port).await.is_empty() {
        assert!(
            Instant::now() < deadline,
            "no /metrics within {within:?}: {}",
            std::fs::read_to_string(&log).unwrap_or_default()
        );
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
    wait_delivered(&url, "alpha", &alpha, within).await;
    wait_delivered(&url, "beta", &beta, within).await;
    assert!(gamma.requests().is_empty(), "gamma is not configured yet");

    // 1. Add gamma.
    std::fs::write(
        &file,
        head("5s") + &source("alpha", &alpha, 5) + &source("beta", &beta, 5) + &source("gamma", &gamma, 5),
    )
    .unwrap();
    reload(&child, port, "success", 1.0).await;
    wait_delivered(&url, "gamma", &gamma, within).await;

    // 2. alpha's page size 5 → 3: its next walks ask for 3; new alerts arrive.
    let alpha_limit_3_before = requests_with_limit(&alpha, 3);
    assert_eq!(alpha_limit_3_before, 0);
    std::fs::write(
        &file,
        head("5s") + &source("alpha", &alpha, 3) + &source("beta", &beta, 5) + &source("gamma", &gamma, 5),
    )
    .unwrap();
    reload(&child, port, "success", 2.0).await;
    alpha.add_items(7);
    wait_delivered(&url, "alpha", &alpha, within).await;
    let alpha_requests = alpha.requests();
    let last_5 =
        alpha_requests.iter().rposition(|r| r.query.as_deref().is_some_and(|q| q.contains("limit=5")));
    let first_3 =
        alpha_requests.iter().position(|r| r.query.as_deref().is_some_and(|q| q.contains("limit=3")));
    assert!(first_3.is_some(), "alpha never asked for pages of 3");
    assert!(
        last_5 < first_3,
        "alpha asked for 5 after it asked for 3: the change applied at a page boundary, once"
    );

    // 3. Remove beta in the middle of a walk (30 new alerts, pages of 5, the
    //    first six answers slow): it finishes the page in flight and
    //    commits, stops (no request after its stop), and its series go.
    beta.inject(Fault::Slow(Duration::from_millis(400)), 6);
    beta.add_items(30);
    tokio::time::sleep(Duration::from_millis(1200)).await;
    std::fs::write(&file, head("5s") + &source("alpha", &alpha, 3) + &source("gamma", &gamma, 5)).unwrap();
    let text = reload(&child, port, "success", 3.0).await;
    assert!(!text.contains("source=\"beta\""), "beta's series are gone:\n{text}");
    assert!(text.contains("source=\"gamma\"") && text.contains("source=\"alpha\""));
    let beta_requests = beta.requests().len();
    beta.add_items(5);
    // Three schedule periods: beta would have been asked three times.
    tokio::time::sleep(Duration::from_secs(4)).await;
    assert_eq!(beta.requests().len(), beta_requests, "beta was polled after its removal");
    let stopped_with = stream_ids(&url).await.get(&subject("beta")).map_or(0, HashMap::len);
    assert!((9..=39).contains(&stopped_with), "beta stopped with {stopped_with} alerts in the stream");

    // 4. A broken file (it would also drop gamma): refused, nothing changes.
    std::fs::write(&file, head("5s") + &source("alpha", &alpha, 3) + "page_size = \"many\"\n").unwrap();
    let text = reload(&child, port, "failure", 1.0).await;
    assert_eq!(sample(&text, "alertd_config_last_reload_successful"), Some(0.0));
    assert!(text.contains("source=\"gamma\""), "gamma kept running");
    gamma.add_items(4);
    alpha.add_items(2);
    wait_delivered(&url, "gamma", &gamma, within).await;
    wait_delivered(&url, "alpha", &alpha, within).await;
    assert_eq!(beta.requests().len(), beta_requests, "the broken file did not bring beta back");
    let refused = log_lines(&log)
        .into_iter()
        .find(|l| {
            l["level"] == "ERROR"
                && l["message"].as_str().is_some_and(|m| m.starts_with("Configuration reload refused"))
        })
        .expect("an ERROR line for the broken file");
    let error = refused["error"].as_str().unwrap_or_default();
    let named = format!("{}:", file.display());
    assert!(error.contains(&named) && error.contains("page_size"), "file, line and field: {refused}");
    assert_eq!(refused["file"].as_str(), Some(file.to_str().unwrap()));

    // 5. Fixed, with a [nats] change: the [nats] part is refused (WARN), the
    //    rest applies (gamma's page size; beta back). Beta resumes from the
    //    cursor it committed when it stopped: it re-publishes nothing.
    std::fs::write(
        &file,
        head("7s") + &source("alpha", &alpha, 3) + &source("gamma", &gamma, 4) + &source("beta", &beta, 5),
    )
    .unwrap();
    let text = reload(&child, port, "success", 4.0).await;
    assert_eq!(sample(&text, "alertd_config_last_reload_successful"), Some(1.0));
    gamma.add_items(3);
    wait_delivered(&url, "gamma", &gamma, within).await;
    wait_delivered(&url, "beta", &beta, within).await;
    let text = metrics(port).await;
    let beta_dupes = sample(&text, r#"alertd_events_duplicate_total{source="beta",vendor="canaryguard"}"#);
    assert!(beta_dupes.unwrap_or(0.0) == 0.0, "beta re-published events it had committed: {beta_dupes:?}");
    assert!(requests_with_limit(&gamma, 4) > 0, "gamma's new page size applied");
    let lines = log_lines(&log);
    assert!(lines.iter().any(|l| l["level"] == "WARN" && l["section"] == "[nats]"), "a WARN naming [nats]");

    // What each applied reload did; sources not named were not touched.
    let applied: Vec<(String, String, String, u64)> = lines
        .iter()
        .filter(|l| l["message"] == "Configuration reloaded.")
        .map(|l| {
            let f = |k: &str| l[k].as_str().unwrap_or_default().to_owned();
            (f("added"), f("removed"), f("changed"), l["unchanged"].as_u64().unwrap_or(99))
        })
        .collect();
    let want = |a: &str, r: &str, c: &str, u: u64| (a.to_owned(), r.to_owned(), c.to_owned(), u);
    assert_eq!(
        applied,
        vec![
            want("gamma", "", "", 2),
            want("", "", "alpha", 2),
            want("", "beta", "", 2),
            want("beta", "", "gamma", 1),
        ]
    );
    assert!(lines.iter().any(|l| l["message"] == "Source stopped and removed." && l["source"] == "beta"));

    // Same process throughout: started once, never exited.
    assert!(child.try_wait().unwrap().is_none(), "alertd exited");
    assert_eq!(child.id(), pid);
    let starts = lines.iter().filter(|l| l["message"] == "alertd started.").count();
    assert_eq!(starts, 1, "alertd started once");

    assert!(Command::new("kill").args(["-TERM", &pid.to_string()]).status().unwrap().success());
    assert!(child.wait().unwrap().success());

    // Every alert of every source exactly once.
    let ids = stream_ids(&url).await;
    for (name, sim) in [("alpha", &alpha), ("beta", &beta), ("gamma", &gamma)] {
        let truth = common::poll::truth_ids(sim, "id");
        common::poll::assert_exactly_once(&ids[&subject(name)], &truth);
    }
    assert_eq!(ids.len(), 3, "only the three sources' subjects: {:?}", ids.keys());
}

/// systemd hears `RELOADING=1` with `MONOTONIC_USEC` (what
/// `Type=notify-reload` requires), then `READY=1`, for every SIGHUP,
/// including one whose file is refused.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_reload_is_announced_to_systemd_with_its_monotonic_time() {
    use std::os::unix::net::UnixDatagram;
    let sim = common::canaryguard(3).await;
    let dir = tempfile::tempdir().unwrap();
    let socket_path = dir.path().join("notify.sock");
    let socket = UnixDatagram::bind(&socket_path).unwrap();
    socket.set_read_timeout(Some(Duration::from_millis(200))).unwrap();
    let file = dir.path().join("alertd.toml");
    let good = format!(
        "[state]\npath = \"{}\"\n[service]\nlisten = \"off\"\n{}",
        dir.path().join("s.sqlite").display(),
        source("acme", &sim, 5)
    );
    std::fs::write(&file, &good).unwrap();
    let mut child = Command::new(common::alertd_bin())
        .args(["run", "-c"])
        .arg(&file)
        .env("CG_KEY", CANARYGUARD_DEMO_KEY)
        .env("NOTIFY_SOCKET", &socket_path)
        .stdout(Stdio::null())
        .stderr(Stdio::null())
        .spawn()
        .unwrap();
    let mut buf = [0u8; 512];
    let mut receive_until = |want: &str, received: &mut Vec<String>| {
        let deadline = Instant::now() + Duration::from_secs(20);
        while Instant::now() < deadline {
            if let Ok(n) = socket.recv(&mut buf) {
                let message = String::from_utf8_lossy(&buf[..n]).into_owned();
                let done = message.contains(want);
                received.push(message);
                if done {
                    return;
                }
            }
        }
        panic!("no {want} within 20s: {received:?}");
    };
    let mut received = Vec::new();
    receive_until("READY=1", &mut received);
    for file_text in [good.replace("page_size = 5", "page_size = 6"), "[[source]\n".to_owned()] {
        std::fs::write(&file, file_text).unwrap();
        let before = received.len();
        assert!(Command::new("kill").args(["-HUP", &child.id().to_string()]).status().unwrap().success());
        receive_until("READY=1", &mut received);
        let this: Vec<&String> = received[before..].iter().collect();
        let reloading = this.iter().position(|m| m.contains("RELOADING=1")).expect("RELOADING=1 sent");
        let usec: u64 = this[reloading]
            .lines()
            .find_map(|l| l.strip_prefix("MONOTONIC_USEC="))
            .and_then(|v| v.parse().ok())
            .unwrap_or_else(|| panic!("RELOADING=1 comes with MONOTONIC_USEC: {:?}", this[reloading]));
        assert!(usec > 0);
        let ready = this.iter().rposition(|m| m.contains("READY=1")).unwrap();
        assert!(reloading < ready, "RELOADING=1, then READY=1: {this:?}");
    }
    assert!(child.try_wait().unwrap().is_none(), "alertd kept running");
    assert!(Command::new("kill").args(["-TERM", &child.id().to_string()]).status().unwrap().success());
    assert!(child.wait().unwrap().success());
}

/// Under `[cluster]` every instance reloads the same file on its own: the
/// removed source's lease is released and nobody polls it any more, the
/// added source is taken by one instance, and every alert lands once.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn each_cluster_instance_reloads_on_its_own() {
    let nats = NatsServer::start();
    let (alpha, beta, gamma) = (sim(21, 11).await, sim(22, 8).await, sim(23, 6).await);
    let dir = tempfile::tempdir().unwrap();
    let file = dir.path().join("alertd.toml");
    let head = format!(
        "[nats]\nurl = \"{}\"\nstream = \"ALERTD\"\nack_timeout = \"5s\"\n\n[state]\nbackend = \"nats-kv\"\n\n\
         [cluster]\nenabled = true\nlease_ttl = \"3s\"\n\n",
        nats.url()
    );
    std::fs::write(&file, head.clone() + &source("alpha", &alpha, 5) + &source("beta", &beta, 5)).unwrap();
    let ports = [free_port(), free_port()];
    let mut children = Vec::new();
    for (name, port) in ["a", "b"].iter().zip(ports) {
        let child = Command::new(common::alertd_bin())
            .args(["--instance", name, "--listen", &format!("127.0.0.1:{port}"), "run", "-c"])
            .arg(&file)
            .env("CG_KEY", CANARYGUARD_DEMO_KEY)
            .stdout(Stdio::null())
            .stderr(Stdio::null())
            .spawn()
            .unwrap();
        children.push(child);
    }
    struct KillAll(Vec<u32>);
    impl Drop for KillAll {
        fn drop(&mut self) {
            for pid in &self.0 {
                let _ = Command::new("kill").args(["-KILL", &pid.to_string()]).stderr(Stdio::null()).status();
            }
        }
    }
    let _guard = KillAll(children.iter().map(Child::id).collect());
    let url = nats.url();
    let within = Duration::from_secs(90);
    let deadline = Instant::now() + within;
    for port in ports {
        while metrics(port).await.is_empty() {
            assert!(Instant::now() < deadline, "instance on {port} never served /metrics");
            tokio::time::sleep(Duration::from_millis(100)).await;
        }
    }
    wait_delivered(&url, "alpha", &alpha, within).await;
    wait_delivered(&url, "beta", &beta, within).await;

    // Add gamma, remove beta; reload both instances.
    std::fs::write(&file, head + &source("alpha", &alpha, 5) + &source("gamma", &gamma, 5)).unwrap();
    for (child, port) in children.iter().zip(ports) {
        reload(child, port, "success", 1.0).await;
    }
    wait_delivered(&url, "gamma", &gamma, within).await;
    let client = async_nats::connect(&url).await.unwrap();
    let leases =
        async_nats::jetstream::new(client).get_key_value("alertd_leases").await.expect("lease bucket");
    assert!(leases.get("lease.beta").await.unwrap().is_none(), "beta's lease was released");
    assert!(leases.get("lease.gamma").await.unwrap().is_some(), "gamma has a holder");
    let beta_requests = beta.requests().len();
    beta.add_items(4);
    tokio::time::sleep(Duration::from_secs(4)).await;
    assert_eq!(beta.requests().len(), beta_requests, "beta was polled after both instances dropped it");
    // One holder per source: the instances' held leases add up to two (once
    // a handover the new assignment may cause has finished).
    let deadline = Instant::now() + Duration::from_secs(30);
    loop {
        let mut held = 0.0;
        for port in ports {
            let text = metrics(port).await;
            assert!(!text.contains("source=\"beta\""), "beta's series are gone on {port}");
            held += sample(&text, "alertd_cluster_leases_held").unwrap_or(0.0);
        }
        if held == 2.0 {
            break;
        }
        assert!(Instant::now() < deadline, "alpha and gamma each held by one instance: {held} held");
        tokio::time::sleep(Duration::from_millis(200)).await;
    }

    for child in &mut children {
        assert!(child.try_wait().unwrap().is_none(), "an instance exited");
        assert!(Command::new("kill").args(["-TERM", &child.id().to_string()]).status().unwrap().success());
    }
    for mut child in children {
        assert!(child.wait().unwrap().success());
    }
    let ids = stream_ids(&url).await;
    for (name, sim) in [("alpha", &alpha), ("gamma", &gamma)] {
        common::poll::assert_exactly_once(&ids[&subject(name)], &common::poll::truth_ids(sim, "id"));
    }
    let beta_ids = &ids[&subject("beta")];
    assert!(
        beta_ids.values().all(|n| *n == 1) && beta_ids.len() == 8,
        "beta: its 8 alerts once: {beta_ids:?}"
    );
}
