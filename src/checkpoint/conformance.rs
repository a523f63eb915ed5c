//! The behaviour every checkpoint backend must have, as one suite that the
//! SQLite unit tests and the `nats-kv` integration tests (against a real
//! nats-server) both run: the backends are interchangeable only if the
//! same checks pass on each.
//!
//! Test support, not part of alertd's API: it panics on the first
//! difference.

use std::collections::HashSet;

use chrono::{DateTime, TimeZone, Utc};

use super::{Seen, SourceState, Store};

fn t(h: u32) -> DateTime<Utc> {
    Utc.with_ymd_and_hms(2026, 3, 1, h, 0, 0).single().unwrap_or_default()
}

fn seen(id: &str, h: u32) -> Seen {
    Seen { event_id: id.into(), item_time: t(h) }
}

fn ids(list: &[&str]) -> HashSet<String> {
    list.iter().map(|s| (*s).to_owned()).collect()
}

/// Run the suite. `store` and `reopened` are two handles on the same empty
/// storage (the second one as a restarted daemon would open it).
pub async fn run(store: &Store, reopened: &Store) {
    a_page_commit_is_seen_by_a_restarted_daemon(store, reopened).await;
    the_last_page_sets_the_watermark_ends_the_walk_and_prunes(store, reopened).await;
    sources_do_not_see_each_others_ids(store).await;
    reset_forgets_or_rewinds_a_source(store, reopened).await;
}

async fn a_page_commit_is_seen_by_a_restarted_daemon(store: &Store, reopened: &Store) {
    assert_eq!(store.load("acme").await.ok(), Some(SourceState::default()), "an unknown source is empty");
    store.commit_page("acme", "some_vendor", "{\"next\":2}".into(), vec![seen("a", 1)]).await.ok();
    let state = reopened.load("acme").await.ok().unwrap_or_default();
    assert_eq!(state.walk.as_deref(), Some("{\"next\":2}"));
    assert_eq!(state.watermark, None);
    assert_eq!(state.vendor.as_deref(), Some("some_vendor"));
    let found = reopened.seen("acme", vec!["a".into(), "b".into()]).await.ok();
    assert_eq!(found, Some(ids(&["a"])));
}

async fn the_last_page_sets_the_watermark_ends_the_walk_and_prunes(store: &Store, reopened: &Store) {
    reopened.load("acme").await.ok();
    reopened.commit_page("acme", "some_vendor", "{}".into(), vec![seen("old", 1)]).await.ok();
    let last = reopened.commit_last_page("acme", "some_vendor", vec![seen("new", 5)], "W".into(), Some(t(3)));
    assert!(last.await.is_ok(), "the last page commits");
    let state = store.load("acme").await.ok();
    assert_eq!(
        state,
        Some(SourceState { vendor: Some("some_vendor".into()), watermark: Some("W".into()), walk: None })
    );
    let found = store.seen("acme", vec!["a".into(), "old".into(), "new".into()]).await.ok();
    assert_eq!(found, Some(ids(&["new"])), "ids older than the prune time are forgotten");
    let rows = store.list().await.ok().unwrap_or_default();
    assert_eq!(rows.len(), 1);
    assert_eq!((rows[0].source.as_str(), rows[0].seen, rows[0].walk_in_progress), ("acme", 1, false));
}

async fn sources_do_not_see_each_others_ids(store: &Store) {
    store.commit_page("other", "some_vendor", "{}".into(), vec![seen("x", 1)]).await.ok();
    assert_eq!(store.seen("acme", vec!["x".into()]).await.ok(), Some(HashSet::new()));
    assert_eq!(store.seen("other", vec!["x".into()]).await.ok(), Some(ids(&["x"])));
    assert!(store.reset("other", "some_vendor", None).await.unwrap_or(false));
}

async fn reset_forgets_or_rewinds_a_source(store: &Store, reopened: &Store) {
    assert_eq!(store.reset("acme", "some_vendor", Some(t(2))).await.ok(), Some(true));
    let state = reopened.load("acme").await.ok().unwrap_or_default();
    assert_eq!(state.watermark.as_deref(), Some("2026-03-01T02:00:00.000000Z"));
    assert_eq!(
        reopened.seen("acme", vec!["new".into()]).await.ok(),
        Some(HashSet::new()),
        "reset clears ids"
    );
    assert_eq!(store.reset("acme", "some_vendor", None).await.ok(), Some(true));
    assert_eq!(reopened.load("acme").await.ok(), Some(SourceState::default()));
    assert_eq!(store.list().await.ok().map(|rows| rows.len()), Some(0));
    assert_eq!(store.reset("acme", "some_vendor", None).await.ok(), Some(false), "nothing left to forget");
    // A forgotten source starts again.
    store.load("acme").await.ok();
    assert!(store.commit_page("acme", "some_vendor", "{}".into(), vec![]).await.is_ok());
    assert_eq!(reopened.load("acme").await.ok().and_then(|s| s.walk), Some("{}".to_owned()));
}
