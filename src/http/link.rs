//! The `rel="next"` target of a `Link` header (RFC 8288), for APIs that
//! page with it (GitHub style). Only the target is read; whether it may be
//! followed (same origin) is the pagination scheme's decision.

use reqwest::header::{HeaderMap, LINK};

/// The longest link target kept: a server's bytes, held with a walk.
const MAX_LINK_CHARS: usize = 4096;

/// The target of the first `rel="next"` link of every `Link` header.
pub fn next_link(headers: &HeaderMap) -> Option<String> {
    headers.get_all(LINK).iter().filter_map(|v| v.to_str().ok()).find_map(next_in)
}

/// `<target>; rel="next"` among the comma-separated link-values of `value`.
fn next_in(value: &str) -> Option<String> {
    let mut rest = value;
    loop {
        let start = rest.find('<')?;
        let after = &rest[start + 1..];
        let end = after.find('>')?;
        let target = after[..end].trim();
        let params_and_more = &after[end + 1..];
        // The parameters run to the next link-value (`, <`).
        let params_end = params_and_more.find(", <").or_else(|| params_and_more.find(",<"));
        let params = &params_and_more[..params_end.unwrap_or(params_and_more.len())];
        let is_next = params.split(';').any(|p| {
            let Some((name, value)) = p.split_once('=') else { return false };
            name.trim().eq_ignore_ascii_case("rel")
                && value.trim().trim_matches('"').split_whitespace().any(|r| r.eq_ignore_ascii_case("next"))
        });
        if is_next && !target.is_empty() && target.chars().count() <= MAX_LINK_CHARS {
            return Some(target.to_owned());
        }
        rest = &params_and_more[params_end?..];
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn headers(values: &[&str]) -> HeaderMap {
        let mut h = HeaderMap::new();
        for v in values {
            h.append(LINK, v.parse().unwrap());
        }
        h
    }

    #[test]
    fn finds_the_next_link_among_others() {
        let h = headers(&[
            r#"<https://api.example/items?page=1>; rel="prev", <https://api.example/items?page=3>; rel="next", <https://api.example/items?page=9>; rel="last""#,
        ]);
        assert_eq!(next_link(&h).as_deref(), Some("https://api.example/items?page=3"));
        let h = headers(&[r#"</items?page=1>; rel=first"#, r#"</items?cursor=a,b>; rel="next nofollow""#]);
        assert_eq!(next_link(&h).as_deref(), Some("/items?cursor=a,b"));
    }

    #[test]
    fn no_next_link_is_none() {
        assert_eq!(next_link(&headers(&[r#"<https://api.example/items?page=1>; rel="prev""#])), None);
        assert_eq!(next_link(&headers(&["garbage"])), None);
        assert_eq!(next_link(&HeaderMap::new()), None);
        assert_eq!(next_link(&headers(&["<unclosed; rel=next"])), None);
    }
}
