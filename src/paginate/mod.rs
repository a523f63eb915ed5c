//! Pagination schemes: the only place where page loops live.
//!
//! A vendor turns a response body into a [`Page`]: its items plus a
//! [`Continuation`], the part of the envelope that says what comes next
//! (`meta.total`, `links.next`, `cursor.next`, `hasMore`, `total_pages`). A
//! [`Scheme`] turns the position a page was fetched at plus that continuation
//! into the next [`Position`], and [`walk`] drives the loop with the guards
//! every scheme needs: a position seen twice in one walk stops with an error
//! (a vendor bug would otherwise loop forever), and so does passing the
//! configured page bound.
//!
//! Some APIs keep answering past their last page: with the last page again,
//! or with "hollow" items that carry no id (Red Canary clients met both). A
//! vendor that knows its items' ids hands them over with [`Page::with_keys`];
//! [`walk`] then ends the walk, as complete, on a page that repeats the
//! previous page's ids or holds only hollow items ([`EndRule`]), instead of
//! following such pages until the page bound.
//!
//! One file per scheme:
//! - [`page_total`]: `page`/`limit` + a total item count (CanaryGuard);
//! - [`link_next`]: follow a `links.next` URL, refusing other origins (Red Canary);
//! - [`cursor`]: an opaque cursor until it is null (Thinkst Canary);
//! - [`index_pages`]: a zero-based `index`/`size` + `total_pages` or last-index flag (Rapid7);
//! - [`has_more`]: a page number while `hasMore` is true (Catchpoint).

pub mod cursor;
pub mod has_more;
pub mod index_pages;
pub mod link_next;
pub mod page_total;

use std::collections::HashSet;
use std::future::Future;

use serde::{Deserialize, Serialize};

/// Where a request in a walk points. Persisted with an unfinished walk, so a
/// restarted daemon resumes at the page after the last one it committed.
#[derive(Debug, Clone, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[serde(tag = "at", content = "value", rename_all = "snake_case")]
pub enum Position {
    /// The first request of a walk (vendor-specific initial query).
    Start,
    /// A page number or a zero-based index, as the scheme counts.
    Page(u64),
    /// An opaque cursor given by the previous page.
    Cursor(String),
    /// An absolute URL given by the previous page.
    Link(String),
}

/// What a page's envelope says about the next page. Each scheme reads its own
/// variant; a vendor handing a scheme the wrong one is a programming error
/// reported as [`PaginateError::Mismatch`].
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Continuation {
    /// `meta.total` items in all, `limit` per page.
    PageTotal {
        /// Items matching the query, across all pages.
        total: u64,
        /// Items per page as the server applied it.
        limit: u64,
    },
    /// A `links.next` URL, with the page counters some APIs add beside it.
    Link {
        /// The next page's URL, if any.
        next: Option<String>,
        /// The page this response says it is (1-based), if it says.
        page: Option<u64>,
        /// Items per page, if the envelope says.
        per_page: Option<u64>,
        /// Items in all, if the envelope says.
        total_items: Option<u64>,
    },
    /// An opaque cursor for the next page, `None` at the end.
    Cursor(Option<String>),
    /// Rapid7-style index metadata.
    IndexPages {
        /// Pages in all, if the envelope says.
        total_pages: Option<u64>,
        /// The server's own end-of-walk flag, if it gives one.
        is_last: Option<bool>,
    },
    /// A `hasMore` flag.
    HasMore(bool),
}

/// One parsed page.
#[derive(Debug, Clone)]
pub struct Page {
    /// The vendor's items, verbatim.
    pub items: Vec<serde_json::Value>,
    /// Each item's JSON text as the vendor sent it, when the vendor kept
    /// it (see `vendors::envelope`): one per item, or none at all.
    pub texts: Vec<crate::event::Raw>,
    /// True when `items` hold only the part of each item its vendor reads
    /// (see `vendors::keep`); [`Page::whole`] gives the whole item.
    pub partial: bool,
    /// What the envelope says about the next page.
    pub continuation: Continuation,
    /// Each item's id as the vendor reads it (`None` for a hollow item), when
    /// the vendor wants [`walk`] to apply the [`EndRule`]s; `None` when it
    /// does not.
    pub keys: Option<Vec<Option<String>>>,
    /// API usage the vendor reported beside the page (Catchpoint's
    /// `usageLimits`), exported as metrics by the poller.
    pub usage: Vec<ApiUsage>,
}

/// One of a vendor's API budgets, as the vendor reported it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ApiUsage {
    /// The budget's period: `minute`, `hour`, `day`.
    pub period: &'static str,
    /// Calls allowed in the period.
    pub limit: Option<u64>,
    /// Calls made in the current period.
    pub used: Option<u64>,
}

impl Page {
    /// A page without item keys: only the scheme's continuation ends the walk.
    pub fn new(items: Vec<serde_json::Value>, continuation: Continuation) -> Page {
        Page { items, continuation, keys: None, usage: Vec::new(), texts: Vec::new(), partial: false }
    }

    /// A page of `items` with their texts as the vendor sent them (an
    /// event's `raw` is then that text, not the item serialized again).
    /// Texts that do not pair up one to one with the items are dropped.
    pub fn with_texts(
        items: Vec<serde_json::Value>,
        texts: Vec<crate::event::Raw>,
        continuation: Continuation,
    ) -> Page {
        let texts = if texts.len() == items.len() { texts } else { Vec::new() };
        Page { texts, ..Page::new(items, continuation) }
    }

    /// The text of item `i`, when the page has the texts.
    pub fn text(&self, i: usize) -> Option<&crate::event::Raw> {
        self.texts.get(i)
    }

    /// Mark `items` as the part of each item its vendor reads (`partial`),
    /// which only a page with every item's text can be: the whole item is
    /// then parsed again from its text when it is needed.
    #[must_use]
    pub fn partial(mut self, partial: bool) -> Page {
        self.partial = partial && self.texts.len() == self.items.len();
        self
    }

    /// Item `i` whole, for what copies an item rather than reads its
    /// fields (a dead letter): parsed from its text when the page holds only
    /// part of each item.
    pub fn whole(&self, i: usize) -> Option<std::borrow::Cow<'_, serde_json::Value>> {
        let item = self.items.get(i)?;
        match self.text(i) {
            // The text parsed once already (as a projection, which fails
            // wherever a whole parse would), so this does not fail.
            Some(text) if self.partial => Some(std::borrow::Cow::Owned(
                serde_json::from_str(text.get()).unwrap_or_else(|_| item.clone()),
            )),
            _ => Some(std::borrow::Cow::Borrowed(item)),
        }
    }

    /// Read each item's id with `key` (`None` for a hollow item), so that
    /// [`walk`] can recognise a repeated or hollow page past the end.
    #[must_use]
    pub fn with_keys(mut self, key: impl Fn(&serde_json::Value) -> Option<String>) -> Page {
        self.keys = Some(self.items.iter().map(key).collect());
        self
    }

    /// The sorted ids of the page's non-hollow items, to compare pages by.
    fn fingerprint(&self) -> Option<Vec<String>> {
        let mut ids: Vec<String> = self.keys.as_ref()?.iter().flatten().cloned().collect();
        ids.sort_unstable();
        Some(ids)
    }

    /// The rule that ends the walk at this page, given the previous page's
    /// fingerprint.
    fn end_rule(&self, fingerprint: Option<&[String]>, previous: Option<&[String]>) -> Option<EndRule> {
        let keys = self.keys.as_ref()?;
        if !keys.is_empty() && keys.iter().all(Option::is_none) {
            return Some(EndRule::HollowPage);
        }
        match (fingerprint, previous) {
            (Some(now), Some(before)) if !now.is_empty() && now == before => Some(EndRule::RepeatedPage),
            _ => None,
        }
    }
}

/// Why [`walk`] ended a walk although the page's continuation pointed on.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum EndRule {
    /// The page held exactly the ids of the page before it: a server that
    /// answers past its end with its last page again.
    RepeatedPage,
    /// Every item on the page was hollow (no id): a server that pads past
    /// its end with empty records.
    HollowPage,
}

impl EndRule {
    /// A bounded label for structured logs.
    pub fn as_str(self) -> &'static str {
        match self {
            EndRule::RepeatedPage => "repeated_page",
            EndRule::HollowPage => "hollow_page",
        }
    }
}

/// A pagination scheme.
#[derive(Debug, Clone)]
pub enum Scheme {
    /// See [`page_total`].
    PageTotal(page_total::PageTotal),
    /// See [`link_next`].
    LinkNext(link_next::LinkNext),
    /// See [`cursor`].
    Cursor(cursor::CursorScheme),
    /// See [`index_pages`].
    IndexPages(index_pages::IndexPages),
    /// See [`has_more`].
    HasMore(has_more::HasMore),
}

impl Scheme {
    /// The position of a walk's first request.
    pub fn first(&self) -> Position {
        match self {
            Scheme::PageTotal(_) | Scheme::HasMore(_) => Position::Page(1),
            Scheme::IndexPages(_) => Position::Page(0),
            Scheme::LinkNext(_) | Scheme::Cursor(_) => Position::Start,
        }
    }

    /// The position after `page`, fetched at `at`; `None` ends the walk.
    ///
    /// An empty page always ends a walk: no scheme can make progress past
    /// it, and vendors that keep answering "more" with no items would
    /// otherwise spin until the page bound.
    pub fn next(&self, at: &Position, page: &Page) -> Result<Option<Position>, PaginateError> {
        if page.items.is_empty() {
            return Ok(None);
        }
        match self {
            Scheme::PageTotal(s) => s.next(at, &page.continuation),
            Scheme::LinkNext(s) => s.next(at, &page.continuation),
            Scheme::Cursor(s) => s.next(at, &page.continuation),
            Scheme::IndexPages(s) => s.next(at, &page.continuation),
            Scheme::HasMore(s) => s.next(at, &page.continuation),
        }
    }
}

/// Why a walk stopped early.
#[derive(Debug, thiserror::Error, PartialEq, Eq)]
pub enum PaginateError {
    /// The vendor led back to a position this walk already fetched.
    #[error("pagination loop: the server led back to {0} a second time")]
    Loop(String),
    /// The walk reached the configured page bound.
    #[error("pagination stopped after {0} pages (max_pages)")]
    TooManyPages(u64),
    /// A `links.next` URL points somewhere the credentials must not go.
    #[error(
        "refused to follow a next link to another origin ({0}); the API key is only sent to the configured base URL"
    )]
    ForeignLink(String),
    /// A `links.next` URL is not a URL.
    #[error("next link is not a valid URL: {0}")]
    BadLink(String),
    /// The scheme was given another scheme's continuation.
    #[error("pagination scheme {scheme} cannot read a {got} continuation")]
    Mismatch {
        /// The scheme that was asked.
        scheme: &'static str,
        /// What it was given.
        got: &'static str,
    },
    /// The scheme cannot continue from this position.
    #[error("pagination scheme {scheme} cannot continue from {at}")]
    BadPosition {
        /// The scheme that was asked.
        scheme: &'static str,
        /// The position it was given.
        at: String,
    },
}

impl Continuation {
    /// The variant's name, for [`PaginateError::Mismatch`].
    pub(crate) fn name(&self) -> &'static str {
        match self {
            Continuation::PageTotal { .. } => "page_total",
            Continuation::Link { .. } => "link",
            Continuation::Cursor(_) => "cursor",
            Continuation::IndexPages { .. } => "index_pages",
            Continuation::HasMore(_) => "has_more",
        }
    }
}

impl std::fmt::Display for Position {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            Position::Start => f.write_str("the first page"),
            Position::Page(n) => write!(f, "page {n}"),
            Position::Cursor(_) => f.write_str("a cursor"),
            Position::Link(url) => write!(f, "link {}", redact_query(url)),
        }
    }
}

/// A URL with its query string removed, for messages: a query can carry a
/// credential (Thinkst's `auth_token`), so none is ever printed.
pub fn redact_query(url: &str) -> String {
    match url.split_once('?') {
        Some((path, _)) => format!("{path}?…"),
        None => url.to_owned(),
    }
}

/// The caller's side of a walk: fetch a page, then deliver it.
///
/// Delivery gets the position the walk will continue at, so the caller can
/// commit that position together with the page's events in one transaction.
pub trait PageHandler: Send {
    /// The caller's error type; pagination errors convert into it.
    type Error: From<PaginateError>;

    /// Fetch and parse the page at `at`; `None` stops the walk before this
    /// page without an error (the source is stopping and no answer came).
    fn fetch(&mut self, at: &Position) -> impl Future<Output = Result<Option<Page>, Self::Error>> + Send;

    /// Deliver the page fetched at `at`; `next` is where the walk goes next
    /// (`None` when this was the last page). Returning `Ok(false)` stops the
    /// walk after this page (e.g. on shutdown) without an error.
    fn deliver(
        &mut self,
        at: &Position,
        page: Page,
        next: Option<&Position>,
    ) -> impl Future<Output = Result<bool, Self::Error>> + Send;

    /// [`Self::deliver`] the page fetched at `at`, and fetch the page at
    /// `next`; the fetch's result is `None` when delivery stopped the walk.
    ///
    /// The default does one after the other. A handler may overlap them
    /// (send the next request while this page is normalized and published):
    /// the walk still delivers pages one at a time and in order, and a
    /// failed or stopped delivery drops the fetch.
    #[allow(clippy::type_complexity)]
    fn deliver_and_fetch(
        &mut self,
        at: &Position,
        page: Page,
        next: &Position,
    ) -> impl Future<Output = Result<(bool, Option<Result<Option<Page>, Self::Error>>), Self::Error>> + Send
    {
        async move {
            if !self.deliver(at, page, Some(next)).await? {
                return Ok((false, None));
            }
            Ok((true, Some(self.fetch(next).await)))
        }
    }
}

/// How a walk ended.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct WalkOutcome {
    /// Pages fetched and delivered.
    pub pages: u64,
    /// True when the last page said there was nothing more; false when the
    /// handler asked to stop early (after a page, or instead of fetching one).
    pub complete: bool,
    /// Set when an [`EndRule`] ended the walk rather than the continuation.
    pub ended_by: Option<EndRule>,
}

/// Walk `scheme` from `start`, at most `max_pages` pages.
///
/// A page that an [`EndRule`] recognises as past the end is delivered
/// without its items (they are repeats or hollow) as the walk's last page,
/// so the caller still commits the walk's end.
pub async fn walk<H: PageHandler + Send>(
    scheme: &Scheme,
    start: Position,
    max_pages: u64,
    handler: &mut H,
) -> Result<WalkOutcome, H::Error> {
    let mut visited = HashSet::new();
    let mut previous: Option<Vec<String>> = None;
    let mut at = start;
    let mut pages = 0;
    // The page at `at` when it was fetched while the one before was delivered.
    let mut fetched = None;
    loop {
        if !visited.insert(at.clone()) {
            return Err(PaginateError::Loop(at.to_string()).into());
        }
        if pages >= max_pages {
            return Err(PaginateError::TooManyPages(pages).into());
        }
        let page = match fetched.take() {
            Some(page) => page?,
            None => handler.fetch(&at).await?,
        };
        let Some(mut page) = page else {
            return Ok(WalkOutcome { pages, complete: false, ended_by: None });
        };
        pages += 1;
        let fingerprint = page.fingerprint();
        let ended_by = page.end_rule(fingerprint.as_deref(), previous.as_deref());
        let next = match ended_by {
            Some(_) => {
                page.items.clear();
                page.keys = Some(Vec::new());
                None
            }
            None => scheme.next(&at, &page)?,
        };
        previous = fingerprint;
        // The next page is fetched beside this delivery only when the loop's
        // guards will let the walk go there.
        let go_on = match &next {
            Some(next) if pages < max_pages && !visited.contains(next) => {
                let (go_on, next_page) = handler.deliver_and_fetch(&at, page, next).await?;
                fetched = next_page;
                go_on
            }
            _ => handler.deliver(&at, page, next.as_ref()).await?,
        };
        match next {
            Some(next) if go_on => at = next,
            Some(_) => {
                return Ok(WalkOutcome { pages, complete: false, ended_by: None });
            }
            None => {
                return Ok(WalkOutcome { pages, complete: true, ended_by });
            }
        }
    }
}

#[cfg(test)]
mod tests;
