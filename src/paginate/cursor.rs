//! An opaque cursor until the server returns none (Thinkst Canary's
//! `cursor.next`).

use super::{Continuation, PaginateError, Position};

/// Follow `cursor.next` until it is null or empty.
#[derive(Debug, Clone, Copy, Default)]
pub struct CursorScheme;

impl CursorScheme {
    pub(super) fn next(
        &self,
        _at: &Position,
        cont: &Continuation,
    ) -> Result<Option<Position>, PaginateError> {
        let Continuation::Cursor(next) = cont else {
            return Err(PaginateError::Mismatch { scheme: "cursor", got: cont.name() });
        };
        Ok(next.as_deref().filter(|c| !c.is_empty()).map(|c| Position::Cursor(c.to_owned())))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn follows_the_cursor_until_null_or_empty() {
        let s = CursorScheme;
        assert_eq!(
            s.next(&Position::Start, &Continuation::Cursor(Some("abc".into()))).unwrap(),
            Some(Position::Cursor("abc".into()))
        );
        assert_eq!(s.next(&Position::Start, &Continuation::Cursor(None)).unwrap(), None);
        assert_eq!(s.next(&Position::Start, &Continuation::Cursor(Some(String::new()))).unwrap(), None);
    }
}
