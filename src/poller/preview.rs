//! `alertd preview`: a source's first pages fetched, parsed and normalized
//! as a poll would, without publishing or committing anything. Items that
//! would be dead-lettered come back with the reason.

use std::borrow::Cow;

use chrono::Utc;
use serde_json::Value;
use tokio_util::sync::CancellationToken;

use crate::config::Credential;
use crate::event::Event;
use crate::paginate::{self, Page, PageHandler, Position};
use crate::vendors::{NormalizeContext, Vendor};

use super::{PollError, Poller};

/// What a preview saw.
#[derive(Debug, Default)]
pub struct Preview {
    /// One entry per page, in order.
    pub pages: Vec<PreviewPage>,
    /// Whether the walk ended within the pages asked for.
    pub complete: bool,
}

/// One page of a preview.
#[derive(Debug)]
pub struct PreviewPage {
    /// Where the page was fetched (its query is never shown).
    pub at: String,
    /// The events its items become.
    pub events: Vec<Event>,
    /// Items that would go to the dead letters, with the reason.
    pub dead_letters: Vec<(Value, String)>,
}

struct Handler<'a, V: Vendor> {
    poller: &'a Poller<V>,
    key: Credential,
    plan: V::Plan,
    limit: u64,
    out: Preview,
}

impl<V: Vendor> PageHandler for Handler<'_, V> {
    type Error = PollError;

    async fn fetch(&mut self, at: &Position) -> Result<Option<Page>, PollError> {
        // The poll's own request and checks, so a preview fetches what `run`
        // would. It runs until its pages are fetched (Ctrl-C ends the process).
        super::walk::fetch_page(self.poller, &self.key, &self.plan, at, &CancellationToken::new()).await
    }

    async fn deliver(
        &mut self,
        at: &Position,
        page: Page,
        _next: Option<&Position>,
    ) -> Result<bool, PollError> {
        let ctx = NormalizeContext::new(&self.poller.name, Utc::now());
        let mut events = Vec::new();
        let mut dead_letters = Vec::new();
        for (i, item) in page.items.iter().enumerate() {
            match self.poller.vendor.normalize(item, &ctx.with_text(page.text(i))) {
                Ok(normalized) => events.push(normalized.event),
                // The whole item, not the part the vendor reads.
                Err(error) => {
                    dead_letters.push((page.whole(i).map_or_else(|| item.clone(), Cow::into_owned), error.0));
                }
            }
        }
        self.out.pages.push(PreviewPage { at: at.to_string(), events, dead_letters });
        Ok((self.out.pages.len() as u64) < self.limit)
    }
}

impl<V: Vendor> Poller<V> {
    /// Walk at most `pages` pages of a new walk (planned as for a source
    /// without a cursor: from its initial lookback).
    pub(super) async fn preview_pages(&self, pages: u64) -> Result<Preview, PollError> {
        let key = Credential::resolve(&self.credential).map_err(|error| PollError::Credential {
            vendor: V::KEY,
            source_name: self.name.clone(),
            error,
        })?;
        let plan = self.vendor.plan(None, Utc::now()).map_err(|e| self.page_err(&Position::Start, e))?;
        let scheme = self.vendor.scheme();
        let limit = pages.max(1);
        let mut handler = Handler { poller: self, key, plan, limit, out: Preview::default() };
        let outcome = paginate::walk(&scheme, scheme.first(), limit + 1, &mut handler).await?;
        let mut out = handler.out;
        out.complete = outcome.complete;
        Ok(out)
    }
}
