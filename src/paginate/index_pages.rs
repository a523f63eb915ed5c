//! A zero-based `index` with `size`, ended by `total_pages` or a last-index
//! flag (Rapid7 InsightIDR: `metadata.index`, `metadata.total_pages`,
//! `metadata.is_last_index`).

use super::{Continuation, PaginateError, Position};

/// Indexes from 0 until the server's last-index flag or `total_pages`.
#[derive(Debug, Clone, Copy, Default)]
pub struct IndexPages;

impl IndexPages {
    pub(super) fn next(&self, at: &Position, cont: &Continuation) -> Result<Option<Position>, PaginateError> {
        let Continuation::IndexPages { total_pages, is_last } = cont else {
            return Err(PaginateError::Mismatch { scheme: "index_pages", got: cont.name() });
        };
        let Position::Page(index) = at else {
            return Err(PaginateError::BadPosition { scheme: "index_pages", at: at.to_string() });
        };
        let more = match (is_last, total_pages) {
            (Some(last), _) => !last,
            (None, Some(total)) => index + 1 < *total,
            (None, None) => false,
        };
        Ok(more.then(|| Position::Page(index + 1)))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn next(index: u64, total_pages: Option<u64>, is_last: Option<bool>) -> Option<Position> {
        IndexPages.next(&Position::Page(index), &Continuation::IndexPages { total_pages, is_last }).unwrap()
    }

    #[test]
    fn walks_indexes_up_to_total_pages_minus_one() {
        assert_eq!(next(0, Some(3), None), Some(Position::Page(1)));
        assert_eq!(next(1, Some(3), None), Some(Position::Page(2)));
        assert_eq!(next(2, Some(3), None), None);
    }

    #[test]
    fn the_last_index_flag_wins_over_total_pages() {
        assert_eq!(next(0, Some(3), Some(true)), None);
        assert_eq!(next(5, Some(3), Some(false)), Some(Position::Page(6)));
    }

    #[test]
    fn without_any_end_marker_the_walk_stops() {
        assert_eq!(next(0, None, None), None);
    }
}
