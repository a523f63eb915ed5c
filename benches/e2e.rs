//! End to end (issue 16): the real release `alertd` binary (`run --once`)
//! backfills `ALERTD_BENCH_E2E_ITEMS` (default 100,000) items from an
//! in-process simulator (no latency, no limits) into a real `nats-server -js`
//! with file storage, for three pagination schemes (CanaryGuard page/limit,
//! Red Canary `links.next`, Thinkst cursor) and two formats (`["alertd"]`,
//! `["alertd", "ocsf"]`). Per case: events/s, messages/s, CPU seconds per
//! 100k events (exact, `wait4`) and peak RSS (`VmHWM`) of the alertd process,
//! then in the same run the raw JetStream publish ceiling with messages of
//! the same stored size: (a) up to 1,024 acks in flight, (b) acks awaited
//! per page of alertd's page size, each the best of three runs (the machine
//! is shared, so the ceiling errs high); and alertd ÷ (a). Per vendor also the
//! simulator's fetch+parse ceiling (HTTP + JSON parse of the same walk).
//!
//! Then the peer a user would write instead (`benches/peer/poller.py`:
//! requests + nats-py, acks awaited per page, SQLite cursor) against a
//! CanaryGuard simulator and the same nats-server, and alertd ÷ Python.
//! `ALERTD_BENCH_PEER_ITEMS` (default: the e2e item count) sizes its
//! backfill; `ALERTD_BENCH_PYTHON` (default `python3`) is the interpreter,
//! which must import `requests` and `nats` (`scripts/bench-e2e` makes a
//! venv when it cannot); without them the peer is skipped, saying so.

#[path = "e2e/ceiling.rs"]
mod ceiling;
#[path = "../tests/common/mod.rs"]
mod common;
#[path = "e2e/peer.rs"]
mod peer;
mod support;

use std::os::unix::process::CommandExt;
use std::path::Path;
use std::process::{Command, Stdio};
use std::time::Instant;

use alertd::sim::{SimConfig, SimVendor, Simulator};
use async_nats::jetstream::{self, context::Context};

/// One backfilled vendor: its simulator and alertd's page size for it (the
/// vendor's documented maximum).
struct Case {
    vendor: SimVendor,
    scheme: &'static str,
    page: usize,
}

const CASES: &[Case] = &[
    Case { vendor: SimVendor::CanaryGuard, scheme: "page/limit", page: 100 },
    Case { vendor: SimVendor::RedCanary, scheme: "links.next", page: 50 },
    Case { vendor: SimVendor::ThinkstCanary, scheme: "cursor", page: 100 },
];

const FORMATS: &[&[&str]] = &[&["alertd"], &["alertd", "ocsf"]];

/// The acks the first ceiling keeps in flight.
const WINDOW: usize = 1024;

/// The allocator alertd runs with, so the simulator and the fetch+parse
/// ceiling (this process) are not slowed by glibc's malloc holding the
/// simulator's data set of 100,000 items while they parse pages.
#[global_allocator]
static ALLOCATOR: mimalloc::MiMalloc = mimalloc::MiMalloc;

/// One alertd run and the ceilings measured beside it.
struct Row {
    vendor: &'static str,
    scheme: &'static str,
    formats: String,
    events: usize,
    messages: usize,
    secs: f64,
    cpu_per_100k: f64,
    /// The simulator's (this process's) CPU s per 100k events in alertd's run.
    sim_cpu_per_100k: f64,
    rss_mib: f64,
    message_bytes: usize,
    window_rate: f64,
    page_rate: f64,
    fetch_rate: f64,
    /// nats-server's CPU s per 100k messages: in alertd's run, under a
    /// publisher paced as alertd was (ceiling (c)), and flat out (ceiling (a)).
    broker_cpu: BrokerCpu,
}

#[derive(Clone, Copy)]
struct BrokerCpu {
    alertd: f64,
    paced: f64,
    half: f64,
    flat_out: f64,
}

/// One [`ceiling::Acks::Paced`] publish of `count` messages: its rate and,
/// per 100k messages, nats-server's CPU s and this process's.
async fn paced(
    js: &Context,
    nats_pid: u32,
    count: usize,
    payload: usize,
    burst: usize,
    per_sec: f64,
) -> (f64, f64, f64) {
    let (nats_before, self_before) = (support::proc_cpu_secs(nats_pid), support::self_usage().cpu_secs);
    let pace = ceiling::Acks::Paced { window: WINDOW, burst, per_sec };
    let (rate, _) = ceiling::publish(js, count, payload, pace).await;
    let per_100k = 100_000.0 / count.max(1) as f64;
    (
        rate,
        (support::proc_cpu_secs(nats_pid) - nats_before) * per_100k,
        (support::self_usage().cpu_secs - self_before) * per_100k,
    )
}

impl Row {
    fn events_per_sec(&self) -> f64 {
        self.events as f64 / self.secs
    }
    fn messages_per_sec(&self) -> f64 {
        self.messages as f64 / self.secs
    }
}

#[tokio::main(flavor = "multi_thread", worker_threads = 2)]
async fn main() {
    if !support::bench_mode("e2e") {
        return;
    }
    let items: usize = support::param("ALERTD_BENCH_E2E_ITEMS", 100_000);
    let peer_items: usize = support::param("ALERTD_BENCH_PEER_ITEMS", items);
    let nats = common::NatsServer::start();
    let client = async_nats::connect(nats.url()).await.expect("connect to nats-server");
    let js = jetstream::ContextBuilder::new().max_ack_inflight(2 * WINDOW).build(client);
    let overhead = ceiling::stored_overhead(&js).await;
    println!(
        "e2e: {items} items per backfill; nats-server -js, file storage; stored overhead per message {overhead} B"
    );

    // For profiling one case: ALERTD_BENCH_E2E_VENDORS=canaryguard,
    // ALERTD_BENCH_E2E_FORMATS=alertd, ALERTD_BENCH_E2E_CEILINGS=0,
    // ALERTD_BENCH_PEER_ITEMS=0 (the default runs everything).
    let vendors = std::env::var("ALERTD_BENCH_E2E_VENDORS").unwrap_or_default();
    let only_formats = std::env::var("ALERTD_BENCH_E2E_FORMATS").unwrap_or_default();
    let ceilings = std::env::var("ALERTD_BENCH_E2E_CEILINGS").map_or(true, |v| v != "0");
    let mut rows = Vec::new();
    for case in CASES {
        let key = case.vendor.key();
        if !vendors.is_empty() && !vendors.split(',').any(|v| v.trim() == key) {
            continue;
        }
        let seeding = Instant::now();
        let defaults = SimConfig::for_vendor(case.vendor);
        let history = support::duration_param("ALERTD_BENCH_E2E_HISTORY", defaults.history);
        let sim = Simulator::start(case.vendor, SimConfig { initial_items: items, history, ..defaults })
            .await
            .expect("simulator starts");
        println!("e2e: {key}: simulator seeded {items} items in {:.2} s", seeding.elapsed().as_secs_f64());
        let fetch_rate = if ceilings {
            let (fetched, fetch_secs) =
                ceiling::fetch_and_parse(case.vendor, &sim.base_url(), case.page).await;
            let fetch_rate = fetched as f64 / fetch_secs;
            println!(
                "e2e: {key}: ceiling fetch+parse (simulator, HTTP, JSON): {fetched} items in {fetch_secs:.2} s = {fetch_rate:.0} items/s"
            );
            fetch_rate
        } else {
            f64::NAN
        };
        for formats in FORMATS {
            if !only_formats.is_empty() && only_formats != formats.join(",") {
                continue;
            }
            let row = run_alertd(&js, &nats, &sim, case, formats, items, history).await;
            let payload = row.message_bytes.saturating_sub(overhead).max(1);
            let nats_pid = nats.pid().unwrap_or(0);
            let ((window_rate, stored), (page_rate, _), broker_cpu) = if ceilings {
                let (nats_before, self_before) =
                    (support::proc_cpu_secs(nats_pid), support::self_usage().cpu_secs);
                let window = ceiling::best_of(&js, items, payload, ceiling::Acks::InFlight(WINDOW)).await;
                let runs = (ceiling::RUNS * items.max(1)) as f64 / 100_000.0;
                let flat_out = (support::proc_cpu_secs(nats_pid) - nats_before) / runs;
                println!(
                    "e2e:   raw publish InFlight({WINDOW}): CPU s per 100k messages: nats-server {flat_out:.2}, publisher (this process) {:.2}",
                    (support::self_usage().cpu_secs - self_before) / runs,
                );
                let per_page = ceiling::best_of(&js, items, payload, ceiling::Acks::PerPage(case.page)).await;
                // (c): the broker's cost at alertd's own pace, a page's
                // messages at a time; (d): at half of (a), the pace the
                // target asks for. Each once.
                let burst = case.page * formats.len();
                let (paced_rate, at_pace, publisher) =
                    paced(&js, nats_pid, row.messages, payload, burst, row.messages_per_sec()).await;
                println!(
                    "e2e:   raw publish (c) paced as alertd ({WINDOW} acks in flight, bursts of {burst} at {:.0} msgs/s): {paced_rate:.0} msgs/s; \
                     CPU s per 100k messages: nats-server {at_pace:.2} (in alertd's run {:.2}, flat out {flat_out:.2}), publisher (this process) {publisher:.2}",
                    row.messages_per_sec(),
                    row.broker_cpu.alertd,
                );
                let (half_rate, half, publisher) =
                    paced(&js, nats_pid, row.messages, payload, burst, window.0 / 2.0).await;
                println!(
                    "e2e:   raw publish (d) paced at half of (a) ({WINDOW} acks in flight, bursts of {burst} at {:.0} msgs/s): {half_rate:.0} msgs/s; \
                     CPU s per 100k messages: nats-server {half:.2}, publisher (this process) {publisher:.2}",
                    window.0 / 2.0,
                );
                // What 50 % of (a) leaves alertd of this machine's 2 cores,
                // beside the broker at that pace and the simulator.
                let per_event = row.messages as f64 / row.events.max(1) as f64;
                let budget =
                    2.0 / (0.5 * window.0 / per_event) * 100_000.0 - half * per_event - row.sim_cpu_per_100k;
                println!(
                    "e2e: {key} {}: 50 % of (a) on 2 cores leaves alertd at most {budget:.2} CPU s per 100k events \
                     (2 cores, less nats-server at (d) and the simulator at alertd's run); alertd used {:.2}",
                    row.formats, row.cpu_per_100k,
                );
                (window, per_page, BrokerCpu { paced: at_pace, half, flat_out, ..row.broker_cpu })
            } else {
                ((f64::NAN, 0), (f64::NAN, 0), row.broker_cpu)
            };
            let row = Row { window_rate, page_rate, fetch_rate, broker_cpu, ..row };
            println!(
                "e2e: {key} {}: {} events in {:.2} s = {:.0} events/s, {:.0} messages/s; {:.2} CPU s per 100k events; peak RSS {:.1} MiB; \
                 message {} B stored (ceiling's {stored} B)",
                row.formats,
                row.events,
                row.secs,
                row.events_per_sec(),
                row.messages_per_sec(),
                row.cpu_per_100k,
                row.rss_mib,
                row.message_bytes,
            );
            println!(
                "e2e: {key} {}: raw publish ceiling (a) {WINDOW} acks in flight {:.0} msgs/s, (b) acks per page of {} {:.0} msgs/s; \
                 alertd messages/s = {:.0} % of (a), {:.0} % of (b)",
                row.formats,
                row.window_rate,
                case.page,
                row.page_rate,
                100.0 * row.messages_per_sec() / row.window_rate,
                100.0 * row.messages_per_sec() / row.page_rate,
            );
            rows.push(row);
        }
        sim.shutdown().await;
    }

    if peer_items != items && peer_items != 0 {
        println!(
            "e2e: the Python peer backfills {peer_items} items (ALERTD_BENCH_PEER_ITEMS), not {items}: its rates are per second and its CPU per 100k events is scaled linearly"
        );
    }
    let peer = if peer_items == 0 { None } else { peer::run(&js, &nats, peer_items).await };
    print_table(&rows, peer.as_ref());
}

/// Backfills `items` with the release binary as deployed, its own process,
/// into a fresh stream; returns the run's figures (ceilings not yet filled).
async fn run_alertd(
    js: &Context,
    nats: &common::NatsServer,
    sim: &Simulator,
    case: &Case,
    formats: &[&str],
    items: usize,
    history: std::time::Duration,
) -> Row {
    let key = case.vendor.key();
    let dir = tempfile::tempdir().expect("temp dir");
    let config_path = dir.path().join("alertd.toml");
    let formats_toml = formats.iter().map(|f| format!("\"{f}\"")).collect::<Vec<_>>().join(", ");
    let config = format!(
        "[nats]\nurl = \"{nats}\"\nstream = \"ALERTD\"\nstorage = \"file\"\nformats = [{formats_toml}]\n\n\
         [state]\npath = \"{state}\"\n\n[service]\nlisten = \"off\"\n\n[[source]]\nvendor = \"{key}\"\nname = \"bench\"\n\
         base_url = \"{base}\"\ncredential = {{ env = \"BENCH_KEY\" }}\nschedule = \"every 1h\"\njitter = \"0s\"\nlag = \"0s\"\n\
         initial_lookback = \"{lookback}\"\npage_size = {page}\nrate_limits = []\n",
        nats = nats.url(),
        state = dir.path().join("state.sqlite").display(),
        base = sim.base_url(),
        page = case.page,
        // The whole seeded history, and a day to spare.
        lookback = humantime::format_duration(history + std::time::Duration::from_secs(86_400)),
    );
    std::fs::write(&config_path, config).expect("write config");
    let nats_pid = nats.pid().unwrap_or(0);
    let (nats_cpu_before, self_cpu_before) =
        (support::proc_cpu_secs(nats_pid), support::self_usage().cpu_secs);
    let started = Instant::now();
    let child = alertd_command(&config_path)
        .env("BENCH_KEY", case.vendor.default_api_key())
        .env("ALERTD_LOG", "warn")
        .stdout(Stdio::null())
        .spawn()
        .expect("spawn alertd");
    let (code, usage) = tokio::task::spawn_blocking(move || support::wait_with_usage(child))
        .await
        .expect("the waiting thread does not panic");
    let secs = started.elapsed().as_secs_f64();
    let nats_cpu = support::proc_cpu_secs(nats_pid) - nats_cpu_before;
    let sim_cpu = support::self_usage().cpu_secs - self_cpu_before;
    assert_eq!(code, 0, "alertd run --once failed for {key}");
    let per_100k = |cpu: f64| cpu * 100_000.0 / items.max(1) as f64;
    println!(
        "e2e: {key} [{formats_toml}]: CPU s per 100k events: alertd {:.2}, nats-server {:.2}, simulator (this process) {:.2}; \
         {:.2} of the machine's 2 cores busy over {secs:.2} s",
        per_100k(usage.cpu_secs),
        per_100k(nats_cpu),
        per_100k(sim_cpu),
        (usage.cpu_secs + nats_cpu + sim_cpu) / secs,
    );

    let mut stream = js.get_stream("ALERTD").await.expect("alertd created its stream");
    let state = stream.info().await.expect("stream info").state.clone();
    js.delete_stream("ALERTD").await.expect("delete the stream for the next run");
    let messages = state.messages as usize;
    assert_eq!(messages, items * formats.len(), "{key}: every item became one stored message per format");
    Row {
        vendor: key,
        scheme: case.scheme,
        formats: format!("[{formats_toml}]"),
        events: items,
        messages,
        secs,
        cpu_per_100k: usage.cpu_secs * 100_000.0 / items.max(1) as f64,
        sim_cpu_per_100k: per_100k(sim_cpu),
        rss_mib: usage.max_rss_mib,
        message_bytes: (state.bytes as usize / messages.max(1)).max(1),
        window_rate: f64::NAN,
        page_rate: f64::NAN,
        fetch_rate: f64::NAN,
        broker_cpu: BrokerCpu {
            alertd: nats_cpu * 100_000.0 / messages.max(1) as f64,
            paced: f64::NAN,
            half: f64::NAN,
            flat_out: f64::NAN,
        },
    }
}

/// `alertd --config PATH run --once` (`ALERTD_BENCH_BIN` if set, else this
/// build's binary), under `ALERTD_BENCH_WRAP` if set (e.g.
/// `perf record -g -o /tmp/p.data`; the figures are then the profiler's).
fn alertd_command(config: &Path) -> Command {
    // ALERTD_BENCH_BIN: another build of alertd (an A/B run of two commits).
    let bin = std::env::var_os("ALERTD_BENCH_BIN").map_or_else(common::alertd_bin, std::path::PathBuf::from);
    let wrap = std::env::var("ALERTD_BENCH_WRAP").unwrap_or_default();
    let mut wrap = wrap.split_whitespace();
    let mut command = match wrap.next() {
        Some(program) => {
            let mut c = Command::new(program);
            c.args(wrap).arg(&bin);
            c
        }
        None => Command::new(&bin),
    };
    command.arg("--config").arg(config).args(["run", "--once"]);
    die_with_parent(&mut command);
    command
}

/// Kills the child if this benchmark dies first (a panic that aborts, a
/// signal), so no run leaves a stray process behind.
fn die_with_parent(command: &mut Command) {
    // SAFETY: prctl is async-signal-safe and touches only the child.
    unsafe {
        command.pre_exec(|| {
            libc::prctl(libc::PR_SET_PDEATHSIG, libc::SIGKILL);
            Ok(())
        });
    }
}

fn print_table(rows: &[Row], peer: Option<&peer::PeerRun>) {
    println!();
    println!(
        "e2e: | vendor (scheme) | formats | events/s | messages/s | CPU s / 100k events | peak RSS MiB | message B | ceiling (a) {WINDOW} in flight, msgs/s | ceiling (b) per page, msgs/s | alertd msgs/s ÷ (a) | fetch+parse ceiling, items/s | nats-server CPU s / 100k msgs: alertd's run, (c) at alertd's pace, (d) at half of (a), (a) flat out |"
    );
    println!("e2e: |---|---|---|---|---|---|---|---|---|---|---|---|");
    for r in rows {
        println!(
            "e2e: | {} ({}) | {} | {:.0} | {:.0} | {:.2} | {:.1} | {} | {:.0} | {:.0} | {:.0} % | {:.0} | {:.2}, {:.2}, {:.2}, {:.2} |",
            r.vendor,
            r.scheme,
            r.formats,
            r.events_per_sec(),
            r.messages_per_sec(),
            r.cpu_per_100k,
            r.rss_mib,
            r.message_bytes,
            r.window_rate,
            r.page_rate,
            100.0 * r.messages_per_sec() / r.window_rate,
            r.fetch_rate,
            r.broker_cpu.alertd,
            r.broker_cpu.paced,
            r.broker_cpu.half,
            r.broker_cpu.flat_out,
        );
    }
    let Some(peer) = peer else {
        println!("e2e: Python peer: skipped (see above)");
        return;
    };
    let Some(alertd) =
        rows.iter().find(|r| r.vendor == SimVendor::CanaryGuard.key() && r.messages == r.events)
    else {
        return;
    };
    println!(
        "e2e: Python peer (canaryguard, one event per item): {} events in {:.2} s = {:.0} events/s; {:.2} CPU s per 100k events; peak RSS {:.1} MiB; message {} B stored",
        peer.events,
        peer.secs,
        peer.events_per_sec(),
        peer.cpu_per_100k,
        peer.rss_mib,
        peer.message_bytes,
    );
    println!(
        "e2e: alertd ÷ Python (canaryguard, [\"alertd\"]): events/s {:.1}× (goal ≥ 20×), peak RSS {:.2}× (goal ≤ 0.33), CPU per event {:.2}×",
        alertd.events_per_sec() / peer.events_per_sec(),
        alertd.rss_mib / peer.rss_mib,
        alertd.cpu_per_100k / peer.cpu_per_100k,
    );
}
