//! Text that alertd shows to people: secrets taken out, terminal controls
//! made harmless.
//!
//! Two kinds of text reach an operator's screen or log from outside
//! alertd's control: settings that embed secrets (a NATS URL with
//! `user:password@`), and whatever a vendor sends (alert titles, host
//! names, error messages). The first must never be printed as is; the
//! second must not be able to drive the terminal it is printed on (an
//! `ESC ] 0 ;` sequence retitles the window, `ESC [ 2 J` clears it, and
//! some terminals answer queries by typing into the shell).

use std::borrow::Cow;

/// What replaces a secret.
pub const REDACTED: &str = "***";

/// `url` with the userinfo of each URL replaced by `***`:
/// `nats://alice:pw@host:4222` → `nats://***@host:4222`. Works on a
/// comma-separated list (the `[nats] url` setting) and on strings that are
/// not valid URLs (a typo must not make the secret show), including the
/// scheme-less `user:pw@host:4222` that NATS clients accept.
pub fn redact_url(url: &str) -> String {
    url.split(',').map(redact_one_url).collect::<Vec<_>>().join(",")
}

fn redact_one_url(url: &str) -> String {
    let start = url.find("://").map_or(0, |i| i + 3);
    let authority_len = url[start..].find(['/', '?', '#']).unwrap_or(url.len() - start);
    let authority = &url[start..start + authority_len];
    match authority.rfind('@') {
        Some(at) => format!("{}{REDACTED}{}", &url[..start], &url[start + at..]),
        None => url.to_owned(),
    }
}

/// `text` with the userinfo of every `scheme://user:pw@` in it replaced by
/// `***`, for free text (error messages from libraries) that may quote a URL.
pub fn redact_urls_in(text: &str) -> String {
    let mut out = String::with_capacity(text.len());
    let mut rest = text;
    while let Some(i) = rest.find("://") {
        let start = i + 3;
        out.push_str(&rest[..start]);
        let after = &rest[start..];
        let end = after
            .find(|c: char| {
                matches!(c, '/' | '?' | '#' | ',' | '"' | '\'' | '`' | '<' | '>') || c.is_whitespace()
            })
            .unwrap_or(after.len());
        match after[..end].rfind('@') {
            Some(at) => {
                out.push_str(REDACTED);
                out.push_str(&after[at..end]);
            }
            None => out.push_str(&after[..end]),
        }
        rest = &after[end..];
    }
    out.push_str(rest);
    out
}

/// `text` safe to print on a terminal: every control character (C0 incl.
/// ESC, DEL, and C1 incl. the 8-bit CSI `\u{9b}`) becomes `?`, so vendor
/// text cannot move the cursor, change colors, retitle the window or write
/// to the clipboard. Tabs and line breaks become a space: one event, one
/// line. Borrowed when there is nothing to replace (the usual case).
pub fn printable(text: &str) -> Cow<'_, str> {
    if !text.chars().any(is_unprintable) {
        return Cow::Borrowed(text);
    }
    Cow::Owned(
        text.chars()
            .map(|c| match c {
                '\t' | '\n' | '\r' => ' ',
                c if is_unprintable(c) => '?',
                c => c,
            })
            .collect(),
    )
}

/// `text` cut to `max_chars` characters, with control characters and the
/// invisible ones that reorder or hide text (bidi overrides, zero-width
/// marks) blanked, and trimmed: safe to put in an error or a log line.
pub fn clip(text: &str, max_chars: usize) -> String {
    let flat: String =
        text.chars().take(max_chars).map(|c| if is_unprintable(c) { ' ' } else { c }).collect();
    flat.trim().to_owned()
}

/// Control characters, and the invisible ones that reorder or hide text.
fn is_unprintable(c: char) -> bool {
    c.is_control()
        || matches!(c, '\u{200B}'..='\u{200F}' | '\u{202A}'..='\u{202E}' | '\u{2060}'..='\u{206F}' | '\u{FEFF}')
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn userinfo_is_replaced_and_the_host_kept() {
        assert_eq!(redact_url("nats://alice:s3cr3t@127.0.0.1:4222"), "nats://***@127.0.0.1:4222");
        assert_eq!(redact_url("tls://tok3n@nats.example:4222/x?y"), "tls://***@nats.example:4222/x?y");
        assert_eq!(
            redact_url("nats://a:b@n1:4222,nats://n2:4222, nats://c:d@n3"),
            "nats://***@n1:4222,nats://n2:4222, nats://***@n3"
        );
        assert_eq!(redact_url("alice:pw@127.0.0.1:4222"), "***@127.0.0.1:4222");
        assert_eq!(redact_url("nats://127.0.0.1:4222"), "nats://127.0.0.1:4222");
        // A password holding `@` is cut at the last `@` of the authority.
        assert_eq!(redact_url("nats://u:p@ss@h:1/a@b"), "nats://***@h:1/a@b");
        assert_eq!(redact_url(""), "");
    }

    #[test]
    fn urls_inside_free_text_lose_their_userinfo() {
        let text = "NATS server URL `nats://alice:pw@h:1`: invalid port; also \"tls://t@h2\" and a@b.c";
        assert_eq!(
            redact_urls_in(text),
            "NATS server URL `nats://***@h:1`: invalid port; also \"tls://***@h2\" and a@b.c"
        );
        assert_eq!(redact_urls_in("no url"), "no url");
        assert_eq!(redact_urls_in("ends with nats://"), "ends with nats://");
    }

    #[test]
    fn terminal_controls_are_made_visible_and_harmless() {
        assert_eq!(printable("\x1b]0;pwned\x07Bad"), "?]0;pwned?Bad");
        assert_eq!(printable("\x1b[2Jgone"), "?[2Jgone");
        assert_eq!(printable("csi\u{9b}31m del\u{7f}"), "csi?31m del?");
        assert_eq!(printable("two\nlines\tand\r"), "two lines and ");
        assert!(matches!(printable("plain ünïcode ✓"), Cow::Borrowed("plain ünïcode ✓")));
    }
}
