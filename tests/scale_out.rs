//! Scale-out under failure: three `alertd run` processes share six sources
//! (all five vendors) through leases in a three-node nats-server cluster
//! (R3 stream, R3 cursor and lease buckets). While the simulators keep
//! producing alerts, instances are SIGKILLed and restarted at seeded
//! random points and one NATS node is killed and restarted. Then:
//!
//! - the stream holds every alert the simulators had, each exactly once;
//! - every source was polled by one instance at a time: the simulators
//!   record each request's User-Agent, which names the instance and its
//!   lease epoch, and a source's epochs never go back (an old holder never
//!   polls after a new one started) and each epoch belongs to one instance;
//! - after a kill, another instance polls the dead one's sources within
//!   2 × the lease TTL (the failover times are printed);
//! - `alertd cluster status` shows every source held and, after SIGTERM,
//!   every lease released.
//!
//! The kill points come from `ALERTD_SCALE_SEED` (default 7).

mod common;

use std::collections::{BTreeMap, HashMap, HashSet};
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

use alertd::sim::{Fault, SimConfig, SimVendor, Simulator};
use chrono::{DateTime, Utc};
use rand::rngs::StdRng;
use rand::{Rng, SeedableRng};

use common::cluster::NatsCluster;
use common::{alertd_bin, stream_messages};

const TTL: Duration = Duration::from_secs(3);
const INSTANCES: [&str; 3] = ["node-a", "node-b", "node-c"];

/// One source: its name, vendor key, simulator.
struct Source {
    name: &'static str,
    vendor: &'static str,
    sim: Simulator,
}

async fn sources() -> Vec<Source> {
    let specs: [(&str, &str, SimVendor, u64); 6] = [
        ("cg-east", "canaryguard", SimVendor::CanaryGuard, 1),
        ("cg-west", "canaryguard", SimVendor::CanaryGuard, 2),
        ("rc", "red_canary", SimVendor::RedCanary, 3),
        ("tc", "thinkst_canary", SimVendor::ThinkstCanary, 4),
        ("r7", "rapid7", SimVendor::Rapid7, 5),
        ("cp", "catchpoint", SimVendor::Catchpoint, 6),
    ];
    let mut out = Vec::new();
    for (name, vendor, kind, seed) in specs {
        let config = SimConfig {
            seed,
            initial_items: 30,
            arrival_every: Some(Duration::from_millis(700)),
            ..SimConfig::for_vendor(kind)
        };
        let sim = Simulator::start(kind, config).await.expect("simulator starts");
        // Pages take a little while, so walks span kills.
        sim.inject(Fault::Slow(Duration::from_millis(40)), 1_000_000);
        out.push(Source { name, vendor, sim });
    }
    out
}

fn write_config(dir: &Path, nats: &str, sources: &[Source]) -> PathBuf {
    let mut text = format!(
        "[nats]\nurl = \"{nats}\"\nreplicas = 3\nack_timeout = \"3s\"\n\n\
         [state]\nbackend = \"nats-kv\"\n\n\
         [cluster]\nenabled = true\nlease_ttl = \"{}s\"\n\n\
         [service]\nlisten = \"off\"\n\n",
        TTL.as_secs()
    );
    for s in sources {
        text.push_str(&format!(
            "[[source]]\nvendor = \"{}\"\nname = \"{}\"\nbase_url = \"{}\"\ncredential = {{ env = \"{}\" }}\n\
             schedule = \"every 1s\"\njitter = \"0s\"\nlag = \"0s\"\ninitial_lookback = \"72h\"\n\
             page_size = 5\nrate_limits = []\ntimeout = \"5s\"\n\n",
            s.vendor,
            s.name,
            s.sim.base_url(),
            key_env(s.name)
        ));
    }
    let path = dir.join("alertd.toml");
    std::fs::write(&path, text).unwrap();
    path
}

fn key_env(source: &str) -> String {
    format!("ALERTD_SCALE_KEY_{}", source.replace('-', "_").to_uppercase())
}

fn alertd(config: &Path, sources: &[Source]) -> Command {
    let mut command = Command::new(alertd_bin());
    command.arg("-c").arg(config);
    for s in sources {
        command.env(key_env(s.name), SimConfig::for_vendor(kind_of(s.vendor)).api_key);
    }
    command
}

fn kind_of(vendor: &str) -> SimVendor {
    match vendor {
        "canaryguard" => SimVendor::CanaryGuard,
        "red_canary" => SimVendor::RedCanary,
        "thinkst_canary" => SimVendor::ThinkstCanary,
        "rapid7" => SimVendor::Rapid7,
        _ => SimVendor::Catchpoint,
    }
}

/// A running instance, its log file.
struct Instance {
    name: &'static str,
    /// `/metrics` and `/healthz`, given by `--listen` over the shared file's `off`.
    port: u16,
    child: Option<Child>,
    log: PathBuf,
    starts: usize,
}

impl Instance {
    fn start(&mut self, config: &Path, sources: &[Source]) {
        self.starts += 1;
        let log = std::fs::OpenOptions::new().create(true).append(true).open(&self.log).unwrap();
        let child = alertd(config, sources)
            .args(["--log-format", "json", "--instance", self.name, "--listen"])
            .arg(format!("127.0.0.1:{}", self.port))
            .arg("run")
            .stdout(Stdio::null())
            .stderr(log)
            .spawn()
            .unwrap();
        self.child = Some(child);
    }

    fn kill(&mut self) {
        if let Some(mut child) = self.child.take() {
            child.kill().unwrap();
            child.wait().unwrap();
        }
    }

    fn terminate(&mut self) -> bool {
        let Some(mut child) = self.child.take() else { return true };
        // SAFETY: plain kill(2) on our own child's pid.
        unsafe { libc::kill(child.id() as i32, libc::SIGTERM) };
        let deadline = Instant::now() + Duration::from_secs(20);
        loop {
            if let Some(status) = child.try_wait().unwrap() {
                return status.success();
            }
            if Instant::now() > deadline {
                let _ = child.kill();
                return false;
            }
            std::thread::sleep(Duration::from_millis(50));
        }
    }
}

/// Keeps the temp dir (with the instances' logs) if the test panics.
struct KeepOnPanic(Option<tempfile::TempDir>);

impl Drop for KeepOnPanic {
    fn drop(&mut self) {
        if std::thread::panicking()
            && let Some(dir) = self.0.take()
        {
            eprintln!("instance logs kept in {}", dir.keep().display());
        }
    }
}

/// `(instance, epoch)` from `alertd/0.1.0 (instance node-a; lease 42)`.
fn tenure(user_agent: &str) -> Option<(String, u64)> {
    let inner = user_agent.split_once('(')?.1.strip_suffix(')')?;
    let mut instance = None;
    let mut lease = None;
    for part in inner.split(';').map(str::trim) {
        if let Some(v) = part.strip_prefix("instance ") {
            instance = Some(v.to_owned());
        } else if let Some(v) = part.strip_prefix("lease ") {
            lease = v.parse().ok();
        }
    }
    Some((instance?, lease?))
}

/// Native ids in the stream per source, with how often each is there.
async fn stream_ids(url: &str) -> HashMap<String, HashMap<String, usize>> {
    let mut out: HashMap<String, HashMap<String, usize>> = HashMap::new();
    for m in stream_messages(url, "ALERTD").await {
        assert_eq!(m.msg_id.as_deref(), m.payload["id"].as_str(), "Nats-Msg-Id is the event id");
        assert!(!m.subject.starts_with("alertd.deadletter."), "no dead letters: {}", m.subject);
        let source = m.payload["source"]["name"].as_str().expect("source.name").to_owned();
        let id = m.payload["native_id"].as_str().expect("native_id").to_owned();
        *out.entry(source).or_default().entry(id).or_default() += 1;
    }
    out
}

fn truth_ids(sim: &Simulator) -> HashSet<String> {
    sim.ground_truth()
        .iter()
        .map(|i| {
            let id = if i.get("rrn").is_some() { &i["rrn"] } else { &i["id"] };
            id.as_str().map_or_else(|| id.to_string(), str::to_owned)
        })
        .collect()
}

fn cluster_status(config: &Path, sources: &[Source]) -> String {
    let out = alertd(config, sources).args(["cluster", "status"]).output().unwrap();
    assert!(out.status.success(), "cluster status failed: {}", String::from_utf8_lossy(&out.stderr));
    String::from_utf8(out.stdout).unwrap()
}

/// The holder column of each source row of `cluster status`.
fn holders(status: &str, sources: &[Source]) -> BTreeMap<String, String> {
    status
        .lines()
        .filter_map(|line| {
            let cols: Vec<&str> = line.split_whitespace().collect();
            let source = sources.iter().find(|s| cols.first() == Some(&s.name))?;
            Some((source.name.to_owned(), cols.get(2)?.to_string()))
        })
        .collect()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn instances_and_a_nats_node_die_yet_every_alert_lands_once_and_each_source_has_one_poller() {
    let seed: u64 = std::env::var("ALERTD_SCALE_SEED").ok().and_then(|s| s.parse().ok()).unwrap_or(7);
    let mut rng = StdRng::seed_from_u64(seed);
    let mut nats = NatsCluster::start(3).await;
    let sources = sources().await;
    let dir = tempfile::tempdir().unwrap();
    // The instances' logs stay in this directory when the test fails.
    let dir_path = dir.path().to_owned();
    let _keep = KeepOnPanic(Some(dir));
    let dir = &dir_path;
    let config = write_config(dir, &nats.urls(), &sources);
    let mut instances: Vec<Instance> = INSTANCES
        .iter()
        .map(|name| Instance {
            name,
            port: common::free_port(),
            child: None,
            log: dir.join(format!("{name}.log")),
            starts: 0,
        })
        .collect();
    for i in &mut instances {
        i.start(&config, &sources);
    }

    // Chaos: every 2–5 s one instance is SIGKILLed and comes back 1–4 s
    // later; once, a NATS node dies for 6 s.
    let mut kills: Vec<(String, DateTime<Utc>)> = Vec::new();
    let chaos_until = Instant::now() + Duration::from_secs(45);
    let nats_kill_at = Instant::now() + Duration::from_secs(rng.random_range(10..25));
    let mut nats_down: Option<(usize, Instant)> = None;
    let mut nats_killed = None;
    // From the NATS node's death to 5 s after its restart: JetStream moves
    // stream and bucket leaders, and leases cannot be written meanwhile.
    let mut nats_outage: Option<(DateTime<Utc>, DateTime<Utc>)> = None;
    let mut pending_restart: Vec<(usize, Instant)> = Vec::new();
    let mut next_kill = Instant::now() + Duration::from_millis(rng.random_range(3000..5000));
    while Instant::now() < chaos_until {
        tokio::time::sleep(Duration::from_millis(100)).await;
        let now = Instant::now();
        if nats_killed.is_none() && now >= nats_kill_at {
            let node = rng.random_range(0..3);
            nats.kill(node);
            eprintln!("killed NATS node {}", nats.name(node));
            nats_killed = Some(nats.name(node).to_owned());
            nats_down = Some((node, now + Duration::from_secs(6)));
            nats_outage = Some((Utc::now(), Utc::now() + chrono::Duration::days(1)));
        }
        if let Some((node, _)) = nats_down.filter(|(_, at)| now >= *at) {
            nats.restart(node).await;
            nats_down = None;
            nats_outage = nats_outage.map(|(from, _)| (from, Utc::now() + chrono::Duration::seconds(5)));
        }
        pending_restart.retain(|(i, at)| {
            if now >= *at {
                instances[*i].start(&config, &sources);
                false
            } else {
                true
            }
        });
        if now >= next_kill {
            let running: Vec<usize> =
                (0..instances.len()).filter(|i| instances[*i].child.is_some()).collect();
            // Keep at least one instance alive, as a real deployment would.
            if running.len() > 1 {
                let i = running[rng.random_range(0..running.len())];
                instances[i].kill();
                kills.push((instances[i].name.to_owned(), Utc::now()));
                pending_restart.push((i, now + Duration::from_millis(rng.random_range(1000..4000))));
            }
            next_kill = now + Duration::from_millis(rng.random_range(2000..5000));
        }
    }
    if let Some((node, _)) = nats_down {
        nats.restart(node).await;
        nats_outage = nats_outage.map(|(from, _)| (from, Utc::now() + chrono::Duration::seconds(5)));
    }
    for (i, _) in pending_restart.drain(..) {
        instances[i].start(&config, &sources);
    }

    // Every alert the simulators had when the chaos ended must arrive.
    let truth: Vec<HashSet<String>> = sources.iter().map(|s| truth_ids(&s.sim)).collect();
    let deadline = Instant::now() + Duration::from_secs(60);
    let stream = loop {
        let stream = stream_ids(nats.urls().split(',').next().unwrap()).await;
        let complete = sources.iter().zip(&truth).all(|(s, t)| {
            let got = stream.get(s.name);
            t.iter().all(|id| got.is_some_and(|g| g.contains_key(id)))
        });
        if complete || Instant::now() > deadline {
            break stream;
        }
        tokio::time::sleep(Duration::from_millis(500)).await;
    };

    // Cluster status: every source held by a live instance, two each once
    // the hand-overs after the last restart are done.
    let settle = Instant::now() + Duration::from_secs(20);
    let (status, held, per_instance) = loop {
        let status = cluster_status(&config, &sources);
        let held = holders(&status, &sources);
        let mut per_instance: BTreeMap<String, usize> = BTreeMap::new();
        for holder in held.values() {
            *per_instance.entry(holder.clone()).or_default() += 1;
        }
        let even = per_instance.len() == INSTANCES.len() && per_instance.values().all(|n| *n == 2);
        if even || Instant::now() > settle {
            break (status, held, per_instance);
        }
        tokio::time::sleep(Duration::from_millis(500)).await;
    };
    eprintln!("{status}");

    // `alertd check` sees both buckets and the three instances.
    let check = alertd(&config, &sources).arg("check").output().unwrap();
    let check_out = String::from_utf8_lossy(&check.stdout).into_owned();
    eprintln!("{check_out}");
    assert!(check.status.success(), "check failed:\n{check_out}");
    assert!(check_out.contains("3 live instances"), "{check_out}");
    assert!(check_out.contains("nats-kv:alertd_cursors: 6 cursors"), "{check_out}");

    // Each instance's metrics agree with the bucket, and each is healthy
    // (it judges only the sources it holds).
    let mut leases_in_metrics = BTreeMap::new();
    for i in &instances {
        let base = format!("http://127.0.0.1:{}", i.port);
        let metrics = reqwest::get(format!("{base}/metrics")).await.unwrap().text().await.unwrap();
        let gauge = |name: &str| -> Option<i64> {
            metrics.lines().find_map(|l| l.strip_prefix(name)?.trim().parse().ok())
        };
        leases_in_metrics.insert(i.name, gauge("alertd_cluster_leases_held"));
        assert_eq!(gauge("alertd_cluster_members"), Some(3), "{} sees 3 members", i.name);
        let health = reqwest::get(format!("{base}/healthz")).await.unwrap();
        assert_eq!(health.status(), 200, "{} healthy: {}", i.name, health.text().await.unwrap());
    }
    eprintln!("leases held per /metrics: {leases_in_metrics:?}");

    // SIGTERM: every instance exits 0 and lets its leases go.
    let clean: Vec<bool> = instances.iter_mut().map(Instance::terminate).collect();
    let after = cluster_status(&config, &sources);
    let released = holders(&after, &sources);
    // The shared cursors: one per source, each written by an instance.
    let cursors = alertd(&config, &sources).args(["cursors", "list"]).output().unwrap();
    let cursors = String::from_utf8_lossy(&cursors.stdout).into_owned();
    eprintln!("{cursors}");
    let written: Vec<&str> = cursors
        .lines()
        .filter(|l| sources.iter().any(|s| l.starts_with(&format!("{} ", s.name))))
        .filter_map(|l| l.split_whitespace().last())
        .collect();

    // Check the stream against the truth.
    let mut problems = Vec::new();
    for (s, t) in sources.iter().zip(&truth) {
        let got = stream.get(s.name).cloned().unwrap_or_default();
        let missing = t.iter().filter(|id| !got.contains_key(*id)).count();
        let duplicated = got.values().filter(|n| **n > 1).count();
        let final_truth = truth_ids(&s.sim);
        let foreign = got.keys().filter(|id| !final_truth.contains(*id)).count();
        eprintln!(
            "{:<8} {:<15} truth {:>3}  stream {:>3}  missing {missing}  duplicated {duplicated}  foreign {foreign}",
            s.name,
            s.vendor,
            t.len(),
            got.len()
        );
        if (missing, duplicated, foreign) != (0, 0, 0) {
            problems
                .push(format!("{}: {missing} missing, {duplicated} duplicated, {foreign} foreign", s.name));
        }
    }

    // One poller at a time, from the simulators' request logs.
    let mut overlaps = Vec::new();
    let mut failovers: Vec<f64> = Vec::new();
    let mut failovers_in_nats_outage: Vec<f64> = Vec::new();
    for s in &sources {
        let requests: Vec<(DateTime<Utc>, String, u64)> = s
            .sim
            .requests()
            .iter()
            .filter_map(|r| {
                let (instance, epoch) = tenure(r.user_agent.as_deref()?)?;
                Some((r.at, instance, epoch))
            })
            .collect();
        assert!(!requests.is_empty(), "{} was never polled under a lease", s.name);
        let mut epoch_owner: HashMap<u64, String> = HashMap::new();
        let mut highest = 0;
        let mut tenures = 0;
        for (at, instance, epoch) in &requests {
            if let Some(owner) = epoch_owner.insert(*epoch, instance.clone()) {
                if &owner != instance {
                    overlaps.push(format!("{}: epoch {epoch} used by {owner} and {instance}", s.name));
                }
            } else {
                tenures += 1;
            }
            if *epoch < highest {
                overlaps.push(format!(
                    "{}: {instance} polled under epoch {epoch} at {at} after epoch {highest}",
                    s.name
                ));
            }
            highest = highest.max(*epoch);
        }
        // Failover: from a kill of the instance polling this source to the
        // first request under a new lease (by another instance, or by the
        // victim restarted and holding a new lease).
        for (victim, killed_at) in &kills {
            let last_before = requests.iter().rev().find(|(at, _, _)| at <= killed_at);
            let Some((_, _, old_epoch)) = last_before.filter(|(_, who, _)| who == victim) else { continue };
            if let Some((at, _, _)) = requests.iter().find(|(at, _, e)| at > killed_at && e > old_epoch) {
                let seconds = (*at - *killed_at).num_milliseconds() as f64 / 1000.0;
                let during_outage = nats_outage.is_some_and(|(from, to)| {
                    *killed_at + chrono::Duration::seconds(TTL.as_secs() as i64 * 2) >= from
                        && *killed_at <= to
                });
                if during_outage {
                    failovers_in_nats_outage.push(seconds);
                } else {
                    failovers.push(seconds);
                }
            }
        }
        eprintln!("{:<8} {} requests under {tenures} tenures", s.name, requests.len());
    }
    failovers.sort_by(f64::total_cmp);
    failovers_in_nats_outage.sort_by(f64::total_cmp);
    let max_failover = failovers.last().copied().unwrap_or_default();
    let median = failovers.get(failovers.len() / 2).copied().unwrap_or_default();
    eprintln!(
        "seed {seed}: {} instance kills, NATS node {} killed; failover per orphaned source (s): median {median:.2}, max {max_failover:.2}, all {failovers:?}; while a NATS node was down or rejoining: {failovers_in_nats_outage:?}; sources per instance at the end {per_instance:?}",
        kills.len(),
        nats_killed.as_deref().unwrap_or("none"),
    );
    for i in &instances {
        eprintln!("{}: started {} times, log {}", i.name, i.starts, i.log.display());
    }

    assert!(problems.is_empty(), "seed {seed}: {problems:?}");
    assert!(overlaps.is_empty(), "seed {seed}: sources polled by two instances at once: {overlaps:?}");
    assert!(kills.len() >= 6, "only {} kills", kills.len());
    assert!(!failovers.is_empty(), "no kill hit an instance while it polled a source");
    assert!(
        max_failover <= 2.0 * TTL.as_secs_f64(),
        "seed {seed}: a dead instance's source waited {max_failover:.2}s, over 2 × TTL"
    );
    assert_eq!(held.len(), sources.len(), "every source held: {status}");
    for (name, n) in &leases_in_metrics {
        assert_eq!(*n, per_instance.get(*name).map(|n| *n as i64), "{name}: metrics vs cluster status");
    }
    assert!(
        per_instance.len() == INSTANCES.len() && per_instance.values().all(|n| *n == 2),
        "6 sources over 3 instances settle at 2 each: {per_instance:?}"
    );
    assert!(held.values().all(|h| INSTANCES.contains(&h.as_str())), "{status}");
    assert!(clean.iter().all(|c| *c), "every instance exits 0 on SIGTERM: {clean:?}");
    assert!(released.values().all(|h| h == "(nobody)"), "leases released on shutdown:\n{after}");
    assert_eq!(written.len(), sources.len(), "a cursor per source:\n{cursors}");
    assert!(written.iter().all(|w| INSTANCES.contains(w)), "written by the instances:\n{cursors}");
}
