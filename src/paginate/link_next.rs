//! Follow a `links.next` URL (Red Canary), with a page-count fallback.
//!
//! The next URL comes from the server, so it is checked before anything is
//! sent to it: a URL whose scheme, host or port differ from the configured
//! base URL is refused, because the request would carry the API key to it.
//! When a page has no next link but says which page it is, how many items
//! per page and how many in all, the scheme continues with `page + 1` while
//! `page * per_page < total_items` (some API versions omit the link).

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

    pub(super) fn next(
        &self,
        _at: &Position,
        cont: &Continuation,
    ) -> Result<Option<Position>, PaginateError> {
        let Continuation::Link { next, page, per_page, total_items } = cont else {
            return Err(PaginateError::Mismatch { scheme: "link_next", got: cont.name() });
        };
        if let Some(link) = next.as_deref().filter(|l| !l.is_empty()) {
            let url = self.base.join(link).map_err(|_| PaginateError::BadLink(super::redact_query(link)))?;
            if url.origin() != self.base.origin() {
                return Err(PaginateError::ForeignLink(url.origin().ascii_serialization()));
            }
            return Ok(Some(Position::Link(url.into())));
        }
        match (page, per_page, total_items) {
            (Some(page), Some(per), Some(total)) if *per > 0 && page.saturating_mul(*per) < *total => {
                Ok(Some(Position::Page(page + 1)))
            }
            _ => Ok(None),
        }
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
    fn no_link_and_no_counters_ends_the_walk() {
        let cont = Continuation::Link { next: None, page: None, per_page: None, total_items: None };
        assert_eq!(scheme().next(&Position::Start, &cont).unwrap(), None);
    }
}
