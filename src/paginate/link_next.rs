//! Follow a `links.next` URL (Red Canary), with a page-count fallback.
//!
//! The next URL comes from the server, so it is checked before anything is
//! sent to it: a URL whose scheme, host or port differ from the configured
//! base URL is refused, because the request would carry the API key to it.
//! When a page has no next link but says which page it is, how many items
//! per page and how many in all, the scheme continues with `page + 1` while
//! `page * per_page < total_items` (some API versions omit the link). When
//! the envelope does not say which page it is (Red Canary's `meta` only has
//! `total_items`), the page is the one the request asked for: 1 at the
//! start, the `page` query parameter of a followed link.

use url::Url;

use super::{Continuation, PaginateError, Position};

/// Follow next links that stay on `base`'s origin.
#[derive(Debug, Clone)]
pub struct LinkNext {
    base: Url,
}

impl LinkNext {
    /// A scheme that only follows links to `base`'s scheme, host and port.
    pub fn new(base: Url) -> Self {
        Self { base }
    }

    pub(super) fn next(&self, at: &Position, cont: &Continuation) -> Result<Option<Position>, PaginateError> {
        let Continuation::Link { next, page, per_page, total_items } = cont else {
            return Err(PaginateError::Mismatch { scheme: "link_next", got: cont.name() });
        };
        if let Some(link) = next.as_deref().filter(|l| !l.is_empty()) {
            let url = self.base.join(link).map_err(|_| {
                // The vendor's bytes, into a log line: bounded and printable.
                PaginateError::BadLink(crate::text::clip(&super::redact_query(link), 200))
            })?;
            if url.origin() != self.base.origin() {
                return Err(PaginateError::ForeignLink(url.origin().ascii_serialization()));
            }
            return Ok(Some(Position::Link(url.into())));
        }
        match (page.or_else(|| page_of(at)), per_page, total_items) {
            (Some(page), Some(per), Some(total)) if *per > 0 && page.saturating_mul(*per) < *total => {
                Ok(Some(Position::Page(page + 1)))
            }
            _ => Ok(None),
        }
    }
}

/// The page number a request at `at` asked for.
fn page_of(at: &Position) -> Option<u64> {
    match at {
        Position::Start => Some(1),
        Position::Page(n) => Some(*n),
        Position::Link(link) => {
            Url::parse(link).ok()?.query_pairs().find(|(k, _)| k == "page").and_then(|(_, v)| v.parse().ok())
        }
        Position::Cursor(_) => None,
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn scheme() -> LinkNext {
        LinkNext::new(Url::parse("https://acme.my.redcanary.co").unwrap())
    }

    fn link(next: &str) -> Continuation {
        Continuation::Link { next: Some(next.into()), page: None, per_page: None, total_items: None }
    }

    #[test]
    fn follows_a_link_on_the_same_origin() {
        let next = scheme()
            .next(&Position::Start, &link("https://acme.my.redcanary.co/openapi/v3/detections?page=2"))
            .unwrap();
        assert_eq!(
            next,
            Some(Position::Link("https://acme.my.redcanary.co/openapi/v3/detections?page=2".into()))
        );
    }

    #[test]
    fn resolves_a_relative_link_against_the_base() {
        let next = scheme().next(&Position::Start, &link("/openapi/v3/detections?page=3")).unwrap();
        assert_eq!(
            next,
            Some(Position::Link("https://acme.my.redcanary.co/openapi/v3/detections?page=3".into()))
        );
    }

    #[test]
    fn refuses_another_host_scheme_or_port() {
        for foreign in [
            "https://evil.example/openapi/v3/detections?page=2",
            "http://acme.my.redcanary.co/openapi/v3/detections?page=2",
            "https://acme.my.redcanary.co:8443/openapi/v3/detections?page=2",
        ] {
            let err = scheme().next(&Position::Start, &link(foreign)).unwrap_err();
            assert!(matches!(err, PaginateError::ForeignLink(_)), "{foreign}: {err}");
        }
    }

    #[test]
    fn falls_back_to_page_counting_without_a_link() {
        let cont = |page| Continuation::Link {
            next: None,
            page: Some(page),
            per_page: Some(10),
            total_items: Some(25),
        };
        assert_eq!(scheme().next(&Position::Start, &cont(2)).unwrap(), Some(Position::Page(3)));
        assert_eq!(scheme().next(&Position::Start, &cont(3)).unwrap(), None);
    }

    #[test]
    fn without_a_page_in_the_envelope_the_requested_page_counts() {
        let cont = Continuation::Link { next: None, page: None, per_page: Some(10), total_items: Some(25) };
        let s = scheme();
        assert_eq!(s.next(&Position::Start, &cont).unwrap(), Some(Position::Page(2)));
        assert_eq!(s.next(&Position::Page(2), &cont).unwrap(), Some(Position::Page(3)));
        assert_eq!(s.next(&Position::Page(3), &cont).unwrap(), None);
        let followed =
            Position::Link("https://acme.my.redcanary.co/openapi/v3/detections?per_page=10&page=2".into());
        assert_eq!(s.next(&followed, &cont).unwrap(), Some(Position::Page(3)));
    }

    #[test]
    fn no_link_and_no_counters_ends_the_walk() {
        let cont = Continuation::Link { next: None, page: None, per_page: None, total_items: None };
        assert_eq!(scheme().next(&Position::Start, &cont).unwrap(), None);
    }
}
