//! A page number while the envelope's `hasMore` is true (Catchpoint).

use super::{Continuation, PaginateError, Position};

/// Page numbers from 1 while `hasMore`.
#[derive(Debug, Clone, Copy, Default)]
pub struct HasMore;

impl HasMore {
    pub(super) fn next(&self, at: &Position, cont: &Continuation) -> Result<Option<Position>, PaginateError> {
        let Continuation::HasMore(more) = cont else {
            return Err(PaginateError::Mismatch { scheme: "has_more", got: cont.name() });
        };
        let Position::Page(page) = at else {
            return Err(PaginateError::BadPosition { scheme: "has_more", at: at.to_string() });
        };
        Ok(more.then(|| Position::Page(page + 1)))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn continues_only_while_has_more() {
        let at = Position::Page(4);
        assert_eq!(HasMore.next(&at, &Continuation::HasMore(true)).unwrap(), Some(Position::Page(5)));
        assert_eq!(HasMore.next(&at, &Continuation::HasMore(false)).unwrap(), None);
    }

    #[test]
    fn a_cursor_position_is_refused() {
        let err = HasMore.next(&Position::Cursor("x".into()), &Continuation::HasMore(true)).unwrap_err();
        assert!(matches!(err, PaginateError::BadPosition { .. }));
    }
}
