//! `page`/`limit` with a total item count (CanaryGuard's `meta.total`).
//!
//! The number of pages is `ceil(total / limit)`; there is no next link, so the
//! scheme counts. `limit` comes from the response's own `meta.limit`, because a
//! server may clamp the limit that was asked for.

use super::{Continuation, PaginateError, Position};

/// Page numbers from 1 while `page * limit < total`.
#[derive(Debug, Clone, Copy, Default)]
pub struct PageTotal;

impl PageTotal {
    pub(super) fn next(&self, at: &Position, cont: &Continuation) -> Result<Option<Position>, PaginateError> {
        let Continuation::PageTotal { total, limit } = cont else {
            return Err(PaginateError::Mismatch { scheme: "page_total", got: cont.name() });
        };
        let Position::Page(page) = at else {
            return Err(PaginateError::BadPosition { scheme: "page_total", at: at.to_string() });
        };
        if *limit == 0 {
            return Ok(None);
        }
        let seen = page.saturating_mul(*limit);
        Ok((seen < *total).then(|| Position::Page(page + 1)))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn next(page: u64, total: u64, limit: u64) -> Option<Position> {
        PageTotal.next(&Position::Page(page), &Continuation::PageTotal { total, limit }).unwrap()
    }

    #[test]
    fn walks_until_the_total_is_covered() {
        assert_eq!(next(1, 73, 25), Some(Position::Page(2)));
        assert_eq!(next(2, 73, 25), Some(Position::Page(3)));
        assert_eq!(next(3, 73, 25), None);
    }

    #[test]
    fn an_exact_multiple_ends_on_the_last_full_page() {
        assert_eq!(next(2, 50, 25), None);
    }

    #[test]
    fn a_zero_limit_cannot_loop() {
        assert_eq!(next(1, 10, 0), None);
    }

    #[test]
    fn another_schemes_continuation_is_an_error() {
        let err = PageTotal.next(&Position::Page(1), &Continuation::HasMore(true)).unwrap_err();
        assert!(matches!(err, PaginateError::Mismatch { .. }));
    }
}
