//! The shared parts of scale-out against a real nats-server: the `nats-kv`
//! cursor backend (same behaviour as SQLite, plus compare-and-set between
//! writers) and the lease bucket (create-if-absent, renew by revision,
//! expiry by TTL, release).

mod common;

use std::time::Duration;

use alertd::checkpoint::{Seen, Store, StoreError};
use alertd::cluster::leases::Renewal;
use alertd::cluster::{LeaseError, LeaseTable};
use chrono::{DateTime, TimeZone, Utc};

use common::NatsServer;

fn t(h: u32) -> DateTime<Utc> {
    Utc.with_ymd_and_hms(2026, 3, 1, h, 0, 0).unwrap()
}

fn seen(id: &str, h: u32) -> Seen {
    Seen { event_id: id.into(), item_time: t(h) }
}

async fn js(nats: &NatsServer) -> async_nats::jetstream::Context {
    async_nats::jetstream::new(async_nats::connect(nats.url()).await.unwrap())
}

async fn kv_store(nats: &NatsServer, writer: &str) -> Store {
    Store::open_kv(&js(nats).await, "cursors", 1, writer).await.unwrap()
}

#[tokio::test]
async fn kv_cursors_pass_the_backend_suite_sqlite_passes() {
    let nats = NatsServer::start();
    let store = kv_store(&nats, "a").await;
    assert_eq!(store.describe(), "nats-kv:cursors");
    let reopened = kv_store(&nats, "b").await;
    alertd::checkpoint::conformance::run(&store, &reopened).await;
    // Shared cursors say who wrote them.
    reopened.load("acme").await.unwrap();
    reopened.commit_page("acme", "canaryguard", "{}".into(), vec![]).await.unwrap();
    let rows = store.list().await.unwrap();
    assert_eq!(rows[0].written_by.as_deref(), Some("b"));
}

#[tokio::test]
async fn a_backfill_larger_than_one_message_commits_and_pruned_slots_are_reused() {
    let nats = NatsServer::start();
    let store = kv_store(&nats, "a").await;
    // 300 pages of 100 ids: about 2 MiB of ids, twice the default
    // max_payload of one message.
    let page = |p: usize| -> Vec<Seen> {
        (0..100).map(|i| seen(&format!("{p:04}-{i:03}-{}", "x".repeat(40)), (p % 20) as u32)).collect()
    };
    store.load("big").await.unwrap();
    for p in 0..300 {
        store.commit_page("big", "canaryguard", format!("{{\"next\":{p}}}"), page(p)).await.unwrap();
    }
    let reopened = kv_store(&nats, "b").await;
    assert_eq!(reopened.load("big").await.unwrap().walk.as_deref(), Some("{\"next\":299}"));
    let probe = vec![page(0)[0].event_id.clone(), page(299)[99].event_id.clone(), "nope".to_owned()];
    assert_eq!(reopened.seen("big", probe.clone()).await.unwrap().len(), 2);
    assert_eq!(reopened.list().await.unwrap()[0].seen, 30_000);

    // The last page prunes every page whose newest item is older than
    // hour 19: only pages p % 20 == 19 stay.
    reopened.commit_last_page("big", "canaryguard", vec![], "W".into(), Some(t(19))).await.unwrap();
    store.load("big").await.unwrap();
    assert_eq!(store.list().await.unwrap()[0].seen, 1_500);
    assert_eq!(store.seen("big", probe).await.unwrap().len(), 1, "page 299 (hour 19) stays, page 0 goes");

    // New pages reuse the pruned slots: the bucket holds no more segment
    // keys than the most the source ever needed.
    for p in 0..100 {
        store.commit_page("big", "canaryguard", "{}".into(), page(p)).await.unwrap();
    }
    let kv = js(&nats).await.get_key_value("cursors").await.unwrap();
    let mut keys = kv.keys().await.unwrap();
    let mut segments = 0;
    while let Some(k) = futures::StreamExt::next(&mut keys).await {
        segments += usize::from(k.unwrap().starts_with("seen.big."));
    }
    assert_eq!(segments, 300, "slots reused, none added");
}

#[tokio::test]
async fn two_writers_from_the_same_state_cannot_both_move_a_cursor() {
    let nats = NatsServer::start();
    let a = kv_store(&nats, "a").await;
    let b = kv_store(&nats, "b").await;
    a.commit_page("acme", "canaryguard", "{\"next\":1}".into(), vec![]).await.unwrap();
    // Both read revision N.
    a.load("acme").await.unwrap();
    b.load("acme").await.unwrap();
    // b (the new lease holder) moves the cursor first…
    b.commit_page("acme", "canaryguard", "{\"next\":9}".into(), vec![seen("b1", 1)]).await.unwrap();
    // …so a (the old holder, finishing its page) is refused.
    let err =
        a.commit_page("acme", "canaryguard", "{\"next\":2}".into(), vec![seen("a1", 1)]).await.unwrap_err();
    assert!(matches!(&err, StoreError::Conflict { source_name, .. } if source_name == "acme"), "{err}");
    assert_eq!(err.code(), "store_conflict");
    assert!(err.to_string().contains("changed by another writer"), "{err}");
    let state = b.load("acme").await.unwrap();
    assert_eq!(state.walk.as_deref(), Some("{\"next\":9}"), "b's cursor stands");
    assert!(b.seen("acme", vec!["a1".into()]).await.unwrap().is_empty());
    let fresh = kv_store(&nats, "c").await;
    fresh.load("acme").await.unwrap();
    assert_eq!(fresh.seen("acme", vec!["b1".into(), "a1".into()]).await.unwrap().len(), 1, "b's ids intact");

    // Two first writers of a new source: only one creates it.
    a.load("fresh").await.unwrap();
    b.load("fresh").await.unwrap();
    a.commit_page("fresh", "canaryguard", "{}".into(), vec![]).await.unwrap();
    let err = b.commit_page("fresh", "canaryguard", "{}".into(), vec![]).await.unwrap_err();
    assert!(matches!(err, StoreError::Conflict { .. }), "{err}");

    // After re-reading, the loser may go on from the winner's state.
    a.load("acme").await.unwrap();
    a.commit_last_page("acme", "canaryguard", vec![], "W".into(), None).await.unwrap();
    assert_eq!(b.load("acme").await.unwrap().watermark.as_deref(), Some("W"));
}

#[tokio::test]
async fn a_lease_has_one_holder_expires_after_its_ttl_and_can_be_released() {
    let nats = NatsServer::start();
    let js = js(&nats).await;
    let ttl = Duration::from_secs(2);
    let a = LeaseTable::open(&js, "leases", ttl, 1, "a").await.unwrap();
    let b = LeaseTable::open(&js, "leases", ttl, 1, "b").await.unwrap();

    let held = a.acquire("src").await.unwrap().expect("free lease taken");
    assert_eq!(held.epoch, held.revision);
    assert_eq!(b.acquire("src").await.unwrap(), None, "held by a");
    let view = b.holder("src").await.unwrap().expect("a holds it");
    assert_eq!((view.record.instance.as_str(), view.epoch), ("a", held.epoch));

    // Renewals keep it past the TTL and keep the epoch.
    let mut current = held;
    for _ in 0..4 {
        tokio::time::sleep(ttl / 3).await;
        match a.renew("src", current, view.record.acquired_at).await.unwrap() {
            Renewal::Renewed(h) => current = h,
            Renewal::Lost => panic!("renewed lease lost"),
        }
    }
    assert_eq!(current.epoch, held.epoch);
    assert!(current.revision > held.revision);
    assert_eq!(b.acquire("src").await.unwrap(), None, "still a's after more than one TTL");

    // a stops renewing (it died): the lease expires and b takes it with a
    // higher epoch; a's renewal now finds it lost.
    let deadline = tokio::time::Instant::now() + ttl * 3;
    let taken = loop {
        if let Some(h) = b.acquire("src").await.unwrap() {
            break h;
        }
        assert!(tokio::time::Instant::now() < deadline, "lease did not expire within 3 × TTL");
        tokio::time::sleep(Duration::from_millis(100)).await;
    };
    assert!(taken.epoch > current.epoch);
    assert!(matches!(a.renew("src", current, view.record.acquired_at).await.unwrap(), Renewal::Lost));
    // A stale release by a leaves b's lease alone.
    a.release("src", current).await.unwrap();
    assert_eq!(a.holder("src").await.unwrap().unwrap().record.instance, "b");

    // b releases: a can take it at once.
    b.release("src", taken).await.unwrap();
    assert!(a.acquire("src").await.unwrap().is_some());
}

#[tokio::test]
async fn members_come_and_go_and_instances_must_agree_on_the_ttl() {
    let nats = NatsServer::start();
    let js = js(&nats).await;
    let ttl = Duration::from_secs(2);
    let a = LeaseTable::open(&js, "leases", ttl, 1, "a").await.unwrap();
    let b = LeaseTable::open(&js, "leases", ttl, 1, "b").await.unwrap();
    a.heartbeat().await.unwrap();
    b.heartbeat().await.unwrap();
    assert_eq!(a.members().await.unwrap(), ["a", "b"]);
    b.leave().await.unwrap();
    assert_eq!(a.members().await.unwrap(), ["a"]);
    // Without heartbeats a member disappears after the TTL.
    tokio::time::sleep(ttl + Duration::from_millis(1500)).await;
    assert!(a.members().await.unwrap().is_empty());

    let err = LeaseTable::open(&js, "leases", Duration::from_secs(30), 1, "c").await.unwrap_err();
    assert!(matches!(err, LeaseError::TtlMismatch { .. }), "{err}");
    assert!(err.to_string().contains("every instance must use the same lease_ttl"), "{err}");
}

/// `[cluster]` in one process: the daemon takes its source's lease and
/// polls under it; when another instance takes the lease (here: the test,
/// after wiping the lease, as if it had expired), the daemon stops polling
/// under its old epoch within a tick, before its next page.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_daemon_that_loses_its_lease_stops_before_its_next_page() {
    use alertd::config::CredentialSource;
    use alertd::sim::{CANARYGUARD_DEMO_KEY, Fault};

    let nats = NatsServer::start();
    let sim = common::canaryguard(300).await;
    // A page every 400 ms: the backfill is still going when the lease goes.
    sim.inject(Fault::Slow(Duration::from_millis(400)), 1_000_000);
    let text = format!(
        "[nats]\nurl = \"{}\"\nack_timeout = \"2s\"\n\n[state]\nbackend = \"nats-kv\"\n\n\
         [cluster]\nenabled = true\nlease_ttl = \"3s\"\ninstance = \"victim\"\n\n[service]\nlisten = \"off\"\n\n\
         [[source]]\nvendor = \"canaryguard\"\nname = \"cg\"\nbase_url = \"{}\"\ncredential = {{ env = \"UNUSED\" }}\n\
         schedule = \"every 1s\"\njitter = \"0s\"\nlag = \"0s\"\ninitial_lookback = \"72h\"\npage_size = 5\nrate_limits = []\n",
        nats.url(),
        sim.base_url()
    );
    let mut config = alertd::registry::parse(&text, "test.toml").unwrap();
    config.sources[0].credential =
        CredentialSource::Inline(secrecy::SecretString::from(CANARYGUARD_DEMO_KEY.to_owned()));
    let daemon = common::poll::RunningDaemon::start(&config);

    let js = js(&nats).await;
    let thief = {
        let deadline = tokio::time::Instant::now() + Duration::from_secs(20);
        loop {
            if let Ok(table) =
                LeaseTable::open(&js, "alertd_leases", Duration::from_secs(3), 1, "thief").await
            {
                break table;
            }
            assert!(tokio::time::Instant::now() < deadline, "the daemon never made the lease bucket");
            tokio::time::sleep(Duration::from_millis(100)).await;
        }
    };
    let victim_epoch = |ua: &str| -> Option<u64> {
        ua.strip_prefix("alertd/")?.split("(instance victim; lease ").nth(1)?.strip_suffix(')')?.parse().ok()
    };
    // Wait until it polls under its lease, a few pages into the backfill.
    let deadline = tokio::time::Instant::now() + Duration::from_secs(20);
    let epoch = loop {
        let epochs: Vec<u64> =
            sim.requests().iter().filter_map(|r| victim_epoch(r.user_agent.as_deref()?)).collect();
        if epochs.len() >= 3 {
            break epochs[0];
        }
        assert!(tokio::time::Instant::now() < deadline, "no requests under a lease");
        tokio::time::sleep(Duration::from_millis(100)).await;
    };
    assert_eq!(
        thief.holder("cg").await.unwrap().map(|l| (l.record.instance, l.epoch)),
        Some(("victim".into(), epoch))
    );

    // The lease goes to someone else.
    let raw = js.get_key_value("alertd_leases").await.unwrap();
    raw.purge("lease.cg").await.unwrap();
    let stolen = thief.acquire("cg").await.unwrap().expect("the wiped lease is free");
    let taken_at = std::time::Instant::now();
    assert!(stolen.epoch > epoch);
    tokio::time::sleep(Duration::from_secs(4)).await;

    // One tick (1 s) to notice, plus slack for a busy machine, then not one
    // more request under the old epoch (without the lease check, a page
    // every half second would keep coming).
    let late: Vec<_> = sim
        .requests()
        .into_iter()
        .filter(|r| r.user_agent.as_deref().and_then(victim_epoch) == Some(epoch))
        .filter(|r| r.received > taken_at + Duration::from_millis(2500))
        .collect();
    assert!(
        late.is_empty(),
        "{} requests under the lost lease, the last {:?} after",
        late.len(),
        late.last().map(|r| r.received - taken_at)
    );
    daemon.stop().await;
}
