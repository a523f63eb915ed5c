//! The page loop's guards and each scheme's end rules.

use super::*;
use serde_json::json;

/// A server that answers with a fixed list of pages, keyed by position.
struct Script {
    pages: Vec<(Position, Page)>,
    delivered: Vec<(Position, Option<Position>)>,
    delivered_items: Vec<usize>,
    stop_after: Option<usize>,
    /// Positions fetched, and at which one the source stops instead.
    fetched: Vec<Position>,
    stop_at: Option<Position>,
}

impl Script {
    fn new(pages: Vec<(Position, Page)>) -> Script {
        Script {
            pages,
            delivered: vec![],
            delivered_items: vec![],
            stop_after: None,
            fetched: vec![],
            stop_at: None,
        }
    }
}

impl PageHandler for Script {
    type Error = PaginateError;
    async fn fetch(&mut self, at: &Position) -> Result<Option<Page>, PaginateError> {
        if self.stop_at.as_ref() == Some(at) {
            return Ok(None);
        }
        self.fetched.push(at.clone());
        let found = self.pages.iter().find(|(p, _)| p == at);
        Ok(Some(
            found.map(|(_, page)| page.clone()).unwrap_or(Page::new(vec![], Continuation::HasMore(false))),
        ))
    }
    async fn deliver(
        &mut self,
        at: &Position,
        page: Page,
        next: Option<&Position>,
    ) -> Result<bool, PaginateError> {
        self.delivered.push((at.clone(), next.cloned()));
        self.delivered_items.push(page.items.len());
        Ok(self.stop_after != Some(self.delivered.len()))
    }
}

fn page(n: usize, continuation: Continuation) -> Page {
    Page::new((0..n).map(|i| json!({ "i": i })).collect(), continuation)
}

/// A page of items `{"id": …}` (JSON null for a hollow item), keyed by id.
fn keyed(ids: &[Option<u32>], continuation: Continuation) -> Page {
    let items = ids.iter().map(|id| json!({ "id": id })).collect();
    Page::new(items, continuation).with_keys(|item| item["id"].as_u64().map(|id| id.to_string()))
}

#[tokio::test]
async fn a_cursor_that_comes_back_stops_the_walk_with_a_loop_error() {
    let scheme = Scheme::Cursor(cursor::CursorScheme);
    let mut script = Script::new(vec![
        (Position::Start, page(2, Continuation::Cursor(Some("a".into())))),
        (Position::Cursor("a".into()), page(2, Continuation::Cursor(Some("a".into())))),
    ]);
    let err = walk(&scheme, Position::Start, 100, &mut script).await.unwrap_err();
    assert!(matches!(err, PaginateError::Loop(_)), "{err}");
    assert_eq!(script.delivered.len(), 2);
    // The position seen before is not fetched again beside the delivery.
    assert_eq!(script.fetched, [Position::Start, Position::Cursor("a".into())]);
}

#[tokio::test]
async fn the_page_bound_stops_an_endless_walk() {
    let scheme = Scheme::HasMore(has_more::HasMore);
    let mut script =
        Script::new((1..=10).map(|n| (Position::Page(n), page(1, Continuation::HasMore(true)))).collect());
    let err = walk(&scheme, Position::Page(1), 3, &mut script).await.unwrap_err();
    assert_eq!(err, PaginateError::TooManyPages(3));
    // No page past the bound is fetched beside the last delivery.
    assert_eq!(script.fetched, [Position::Page(1), Position::Page(2), Position::Page(3)]);
}

#[tokio::test]
async fn a_walk_ends_on_an_empty_page_even_if_the_server_says_more() {
    let scheme = Scheme::HasMore(has_more::HasMore);
    let mut script = Script::new(vec![
        (Position::Page(1), page(1, Continuation::HasMore(true))),
        (Position::Page(2), page(0, Continuation::HasMore(true))),
    ]);
    let outcome = walk(&scheme, Position::Page(1), 100, &mut script).await.unwrap();
    assert_eq!(outcome, WalkOutcome { pages: 2, complete: true, ended_by: None });
}

#[tokio::test]
async fn deliver_is_told_where_the_walk_continues() {
    let scheme = Scheme::PageTotal(page_total::PageTotal);
    let cont = Continuation::PageTotal { total: 5, limit: 2 };
    let mut script = Script::new((1..=3).map(|n| (Position::Page(n), page(2, cont.clone()))).collect());
    walk(&scheme, Position::Page(1), 100, &mut script).await.unwrap();
    assert_eq!(
        script.delivered,
        vec![
            (Position::Page(1), Some(Position::Page(2))),
            (Position::Page(2), Some(Position::Page(3))),
            (Position::Page(3), None),
        ]
    );
}

#[tokio::test]
async fn a_handler_can_stop_a_walk_between_pages() {
    let scheme = Scheme::PageTotal(page_total::PageTotal);
    let cont = Continuation::PageTotal { total: 6, limit: 2 };
    let mut script = Script::new((1..=3).map(|n| (Position::Page(n), page(2, cont.clone()))).collect());
    script.stop_after = Some(1);
    let outcome = walk(&scheme, Position::Page(1), 100, &mut script).await.unwrap();
    assert_eq!(outcome, WalkOutcome { pages: 1, complete: false, ended_by: None });
    assert_eq!(script.fetched, [Position::Page(1)], "a stopped delivery fetches nothing more");
}

/// A handler that fetches beside its deliveries, as the poller's does:
/// each fetch is started before the delivery it overlaps and finishes after.
struct Overlapping {
    script: Script,
    /// What happened, in order.
    log: Vec<String>,
    fail_delivery_of: Option<Position>,
}

impl PageHandler for Overlapping {
    type Error = PaginateError;
    async fn fetch(&mut self, at: &Position) -> Result<Option<Page>, PaginateError> {
        self.log.push(format!("fetch {at}"));
        self.script.fetch(at).await
    }
    async fn deliver(
        &mut self,
        at: &Position,
        page: Page,
        next: Option<&Position>,
    ) -> Result<bool, PaginateError> {
        if self.fail_delivery_of.as_ref() == Some(at) {
            return Err(PaginateError::Loop(format!("delivery of {at} failed")));
        }
        self.log.push(format!("deliver {at}"));
        self.script.deliver(at, page, next).await
    }
    async fn deliver_and_fetch(
        &mut self,
        at: &Position,
        page: Page,
        next: &Position,
    ) -> Result<(bool, Option<Result<Option<Page>, PaginateError>>), PaginateError> {
        self.log.push(format!("start fetch {next}"));
        let fetched = self.script.fetch(next).await;
        let go_on = self.deliver(at, page, Some(next)).await?;
        self.log.push(format!("end fetch {next}"));
        Ok((go_on, go_on.then_some(fetched)))
    }
}

/// Three pages of two items, page/limit, fetched beside their deliveries;
/// the delivery of `fail_delivery_of` fails.
fn overlapping(fail_delivery_of: Option<Position>) -> (Scheme, Overlapping) {
    let cont = Continuation::PageTotal { total: 6, limit: 2 };
    let script = Script::new((1..=3).map(|n| (Position::Page(n), page(2, cont.clone()))).collect());
    (Scheme::PageTotal(page_total::PageTotal), Overlapping { script, log: vec![], fail_delivery_of })
}

#[tokio::test]
async fn pages_fetched_beside_deliveries_are_delivered_once_each_in_order() {
    let (scheme, mut handler) = overlapping(None);
    let outcome = walk(&scheme, Position::Page(1), 100, &mut handler).await.unwrap();
    assert_eq!(outcome, WalkOutcome { pages: 3, complete: true, ended_by: None });
    assert_eq!(
        handler.log,
        [
            "fetch page 1",
            "start fetch page 2",
            "deliver page 1",
            "end fetch page 2",
            "start fetch page 3",
            "deliver page 2",
            "end fetch page 3",
            "deliver page 3",
        ]
    );
    assert_eq!(handler.script.delivered_items, [2, 2, 2]);
}

#[tokio::test]
async fn a_failed_delivery_drops_the_page_fetched_beside_it() {
    let (scheme, mut handler) = overlapping(Some(Position::Page(2)));
    let err = walk(&scheme, Position::Page(1), 100, &mut handler).await.unwrap_err();
    assert!(err.to_string().contains("delivery of page 2 failed"), "{err}");
    assert_eq!(handler.script.delivered, [(Position::Page(1), Some(Position::Page(2)))]);
}

fn link(page: u64) -> Continuation {
    Continuation::Link {
        next: Some(format!("https://acme.example/d?page={page}")),
        page: None,
        per_page: None,
        total_items: None,
    }
}

fn link_scheme() -> Scheme {
    Scheme::LinkNext(link_next::LinkNext::new(url::Url::parse("https://acme.example").unwrap()))
}

fn at_link(page: u64) -> Position {
    Position::Link(format!("https://acme.example/d?page={page}"))
}

#[tokio::test]
async fn a_page_repeating_the_previous_ids_ends_the_walk_as_complete() {
    // Page 3 is past the end and the server answers with page 2 again
    // (in another order); its link points on, forever.
    let mut script = Script::new(vec![
        (Position::Start, keyed(&[Some(1), Some(2)], link(2))),
        (at_link(2), keyed(&[Some(3), Some(4)], link(3))),
        (at_link(3), keyed(&[Some(4), Some(3)], link(4))),
        (at_link(4), keyed(&[Some(5)], link(5))),
    ]);
    let outcome = walk(&link_scheme(), Position::Start, 100, &mut script).await.unwrap();
    assert_eq!(outcome, WalkOutcome { pages: 3, complete: true, ended_by: Some(EndRule::RepeatedPage) });
    assert_eq!(script.delivered[2], (at_link(3), None), "delivered as the last page");
    assert_eq!(script.delivered_items, vec![2, 2, 0], "the repeats are not delivered again");
}

#[tokio::test]
async fn a_page_of_hollow_items_ends_the_walk_as_complete() {
    let mut script = Script::new(vec![
        (Position::Start, keyed(&[Some(1), Some(2)], link(2))),
        (at_link(2), keyed(&[None, None, None], link(3))),
        (at_link(3), keyed(&[Some(9)], link(4))),
    ]);
    let outcome = walk(&link_scheme(), Position::Start, 100, &mut script).await.unwrap();
    assert_eq!(outcome.ended_by, Some(EndRule::HollowPage));
    assert!(outcome.complete);
    assert_eq!(outcome.pages, 2);
    assert_eq!(script.delivered_items, vec![2, 0]);
}

#[tokio::test]
async fn overlapping_or_partly_hollow_pages_do_not_end_the_walk() {
    // Items shifting by one between pages (an insert at the top of a
    // newest-first list) and one hollow item among real ones are normal.
    let mut script = Script::new(vec![
        (Position::Start, keyed(&[Some(1), Some(2)], link(2))),
        (at_link(2), keyed(&[Some(2), Some(3)], link(3))),
        (at_link(3), keyed(&[None, Some(4)], link(4))),
        (
            at_link(4),
            keyed(
                &[Some(5)],
                Continuation::Link { next: None, page: None, per_page: None, total_items: None },
            ),
        ),
    ]);
    let outcome = walk(&link_scheme(), Position::Start, 100, &mut script).await.unwrap();
    assert_eq!(outcome, WalkOutcome { pages: 4, complete: true, ended_by: None });
    assert_eq!(script.delivered_items, vec![2, 2, 2, 1]);
}

#[tokio::test]
async fn pages_without_keys_are_never_judged_repeated() {
    // Identical item lists but no keys: the vendor did not opt in, so
    // only the continuation (here: a page bound) ends the walk.
    let scheme = Scheme::HasMore(has_more::HasMore);
    let mut script =
        Script::new((1..=5).map(|n| (Position::Page(n), page(2, Continuation::HasMore(n < 5)))).collect());
    let outcome = walk(&scheme, Position::Page(1), 100, &mut script).await.unwrap();
    assert_eq!(outcome.pages, 5);
    assert_eq!(outcome.ended_by, None);
}

#[test]
fn positions_survive_a_round_trip_through_json() {
    for p in [
        Position::Start,
        Position::Page(7),
        Position::Cursor("c".into()),
        Position::Link("https://x/y?page=2".into()),
    ] {
        let text = serde_json::to_string(&p).unwrap();
        assert_eq!(serde_json::from_str::<Position>(&text).unwrap(), p);
    }
}

#[test]
fn a_link_position_never_prints_its_query() {
    let p = Position::Link("https://h/api?auth_token=SECRET&cursor=1".into());
    assert!(!p.to_string().contains("SECRET"));
}

#[tokio::test]
async fn a_handler_that_stops_instead_of_fetching_ends_the_walk_incomplete() {
    let scheme = Scheme::HasMore(has_more::HasMore);
    let mut script =
        Script::new((1..=5).map(|n| (Position::Page(n), page(2, Continuation::HasMore(true)))).collect());
    script.stop_at = Some(Position::Page(3));
    let outcome = walk(&scheme, Position::Page(1), 100, &mut script).await.unwrap();
    assert_eq!(outcome, WalkOutcome { pages: 2, complete: false, ended_by: None });
    assert_eq!(script.fetched, [Position::Page(1), Position::Page(2)]);
    let delivered: Vec<_> = script.delivered.iter().map(|(at, _)| at.clone()).collect();
    assert_eq!(delivered, [Position::Page(1), Position::Page(2)], "only what was fetched is delivered");
}
