//! One suite for both backends' revisit bookkeeping (`revisions.rs`):
//! `store` and `reopened` are two handles on the same state (the same
//! SQLite file, or two daemons on one bucket).

use chrono::{DateTime, TimeZone, Utc};

use super::{Revision, RevisitMove, RevisitState, Store};

fn at(day: u32) -> DateTime<Utc> {
    Utc.with_ymd_and_hms(2026, 3, day, 12, 0, 0).single().unwrap_or_default()
}

fn revision(native_id: &str, event_id: &str, day: u32) -> Revision {
    Revision { native_id: native_id.into(), event_id: event_id.into(), item_time: at(day) }
}

/// Run the suite; panics on the first difference.
pub async fn run(store: &Store, reopened: &Store) {
    // Items as a revisit finds them: (native id, item time).
    let ids =
        |list: &[(&str, u32)]| list.iter().map(|(s, day)| ((*s).to_owned(), at(*day))).collect::<Vec<_>>();
    assert_eq!(store.revisit_state("acme").await.unwrap(), RevisitState::default());
    assert!(store.published_revisions("acme", ids(&[("a", 20)])).await.unwrap().is_empty());

    // The regular walk records what it published; the latest wins.
    store.record_revisions("acme", vec![revision("a", "e1", 20), revision("b", "e2", 2)]).await.unwrap();
    store.record_revisions("acme", vec![revision("a", "e3", 20)]).await.unwrap();
    store.record_revisions("other", vec![revision("a", "x1", 1)]).await.unwrap();
    let published =
        reopened.published_revisions("acme", ids(&[("a", 20), ("b", 2), ("c", 19)])).await.unwrap();
    assert_eq!(published.len(), 2, "{published:?}");
    assert_eq!(published.get("a").map(String::as_str), Some("e3"));
    assert_eq!(published.get("b").map(String::as_str), Some("e2"));

    // A revisit page: its revisions and the walk's position at once.
    reopened.revisit_state("acme").await.unwrap();
    let page = RevisitMove::Page { walk: "w1".into(), started_at: at(21) };
    reopened.commit_revisit("acme", page, vec![revision("c", "e4", 19)]).await.unwrap();
    assert_eq!(
        store.revisit_state("acme").await.unwrap(),
        RevisitState { walk: Some("w1".into()), started_at: Some(at(21)) }
    );
    let published = store.published_revisions("acme", ids(&[("c", 19)])).await.unwrap();
    assert_eq!(published.get("c").map(String::as_str), Some("e4"));

    // The last page ends the walk and forgets what left the window.
    let last = RevisitMove::Last { started_at: at(21), prune_before: at(10) };
    store.commit_revisit("acme", last, Vec::new()).await.unwrap();
    assert_eq!(
        reopened.revisit_state("acme").await.unwrap(),
        RevisitState { walk: None, started_at: Some(at(21)) }
    );
    let published =
        reopened.published_revisions("acme", ids(&[("a", 20), ("b", 2), ("c", 19)])).await.unwrap();
    assert!(!published.contains_key("b"), "b left the window: {published:?}");
    assert_eq!(published.len(), 2);
    assert_eq!(reopened.revision_count("acme").await.unwrap(), 2);
    assert_eq!(reopened.revision_count("other").await.unwrap(), 1, "another source is untouched");
    assert_eq!(reopened.revision_count("nobody").await.unwrap(), 0);

    // Pruning again (nothing old left) and pruning a source with nothing
    // remembered change nothing and end.
    store.revisit_state("acme").await.unwrap();
    store
        .commit_revisit("acme", RevisitMove::Last { started_at: at(22), prune_before: at(10) }, Vec::new())
        .await
        .unwrap();
    assert_eq!(store.revision_count("acme").await.unwrap(), 2);
    store.revisit_state("empty").await.unwrap();
    store
        .commit_revisit("empty", RevisitMove::Last { started_at: at(22), prune_before: at(30) }, Vec::new())
        .await
        .unwrap();
    assert_eq!(store.revision_count("empty").await.unwrap(), 0);

    // A revision recorded again after its item left the window is kept by
    // the next prune only if its time is inside.
    store.record_revisions("acme", vec![revision("b", "e5", 25)]).await.unwrap();
    assert_eq!(store.revision_count("acme").await.unwrap(), 3);

    // `alertd cursors reset` forgets the revisions and the revisit of that
    // source only, with or without `since`.
    store.revisit_state("acme").await.unwrap();
    let page = RevisitMove::Page { walk: "w2".into(), started_at: at(23) };
    store.commit_revisit("acme", page, vec![revision("d", "e6", 22)]).await.unwrap();
    reopened.reset("acme", "some_vendor", None).await.unwrap();
    assert_eq!(store.revision_count("acme").await.unwrap(), 0);
    assert!(
        store
            .published_revisions("acme", ids(&[("a", 20), ("b", 25), ("c", 19), ("d", 22)]))
            .await
            .unwrap()
            .is_empty()
    );
    assert_eq!(store.revisit_state("acme").await.unwrap(), RevisitState::default());
    assert_eq!(store.revision_count("other").await.unwrap(), 1, "another source is untouched");
    // A revisit starts over after the reset (each run reads its state
    // first, as `store` did just above).
    let page = RevisitMove::Page { walk: "w3".into(), started_at: at(24) };
    store.commit_revisit("acme", page, vec![revision("a", "e7", 24)]).await.unwrap();
    assert_eq!(reopened.revisit_state("acme").await.unwrap().walk.as_deref(), Some("w3"));
    reopened.reset("acme", "some_vendor", Some(at(1))).await.unwrap();
    assert_eq!(store.revision_count("acme").await.unwrap(), 0);
    assert_eq!(store.revisit_state("acme").await.unwrap(), RevisitState::default());

    // One batch, newest first as vendors list items, holding an item twice
    // (it changed while the walk went on): the later of the two wins,
    // whatever order the backend writes the batch in.
    let batch = vec![revision("f", "e8", 26), revision("e", "e9", 25), revision("f", "e10", 26)];
    store.record_revisions("acme", batch).await.unwrap();
    let published = reopened.published_revisions("acme", ids(&[("e", 25), ("f", 26)])).await.unwrap();
    assert_eq!(published.get("f").map(String::as_str), Some("e10"), "{published:?}");
    assert_eq!(published.get("e").map(String::as_str), Some("e9"), "{published:?}");
}
