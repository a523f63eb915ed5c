//! `alertd tail`: watch the events in the stream as they arrive.
//!
//! People debugging a pipeline want to see what alertd publishes without
//! writing a subscriber: a compact colored line per event on a terminal, the
//! events as JSON lines when piped (into `jq`, a file, another tool). Vendor,
//! source and kind filter on the subject (the server does the work);
//! severity is filtered here, from the payload. It reads alertd v1 events
//! (`<prefix>.<vendor>.<source>.<kind>`), not OCSF findings or dead letters.

use std::borrow::Cow;
use std::io::Write;

use futures::StreamExt;
use serde_json::Value;
use tokio_util::sync::CancellationToken;

use crate::config::NatsConfig;
use crate::event::SeverityLevel;
use crate::publish::{NatsSink, PublishError, TailStart, token};
use crate::text::printable;

/// What to show.
#[derive(Debug, Clone)]
pub struct TailOptions {
    /// Only this vendor key.
    pub vendor: Option<String>,
    /// Only this source name.
    pub source: Option<String>,
    /// Only this kind (`alert`, `detection`, …).
    pub kind: Option<String>,
    /// Only events at least this severe.
    pub severity_at_least: Option<SeverityLevel>,
    /// Where to start in the stream.
    pub start: TailStart,
    /// JSON lines (else the one-line view).
    pub json: bool,
    /// Color the one-line view.
    pub color: bool,
}

/// Why a tail stopped.
#[derive(Debug, thiserror::Error)]
pub enum TailError {
    /// NATS could not be reached or the stream read.
    #[error(transparent)]
    Nats(#[from] PublishError),
    /// Writing to stdout failed (e.g. the reader went away).
    #[error("writing: {0}")]
    Write(#[from] std::io::Error),
}

/// The subject filter: `<prefix>.<vendor|*>.<source|*>.<kind|*>`.
pub fn filter_subject(prefix: &str, options: &TailOptions) -> String {
    let part = |v: &Option<String>| v.as_deref().map_or("*".to_owned(), token);
    format!("{prefix}.{}.{}.{}", part(&options.vendor), part(&options.source), part(&options.kind))
}

/// Whether `event` passes the severity filter.
pub fn severe_enough(event: &Value, at_least: Option<SeverityLevel>) -> bool {
    let Some(min) = at_least else { return true };
    serde_json::from_value::<SeverityLevel>(event["severity"]["level"].clone())
        .is_ok_and(|level| level >= min)
}

/// The one-line view: time, severity, vendor/source, kind, title, status.
/// Every field is vendor text (or could be, if someone else publishes on
/// the subject), so each goes through [`printable`]: a title cannot clear
/// the screen or retitle the terminal.
pub fn line(event: &Value, color: bool) -> String {
    let text = |pointer: &str| printable(event.pointer(pointer).and_then(Value::as_str).unwrap_or("-"));
    let severity = text("/severity/level");
    let paint = match severity.as_ref() {
        "critical" => "\x1b[1;31m",
        "high" => "\x1b[31m",
        "medium" => "\x1b[33m",
        "low" => "\x1b[36m",
        _ => "\x1b[2m",
    };
    let severity = format!("{:<8}", severity.to_uppercase());
    let severity = if color { format!("{paint}{severity}\x1b[0m") } else { severity };
    format!(
        "{} {severity} {}/{} {} {} [{}]",
        text("/created_at"),
        text("/source/vendor"),
        text("/source/name"),
        text("/source/kind"),
        text("/title"),
        text("/status/state"),
    )
}

/// Print events of `nats.stream` matching `options` to `out` until
/// `shutdown` (or the connection fails).
pub async fn run(
    nats: &NatsConfig,
    options: &TailOptions,
    out: &mut (dyn Write + Send),
    shutdown: CancellationToken,
) -> Result<(), TailError> {
    let sink = NatsSink::connect(nats, &format!("{} tail", crate::http::client_name())).await?;
    let filter = filter_subject(&nats.subject_prefix, options);
    let mut messages = sink.subscribe(&nats.stream, filter.clone(), options.start).await?;
    tracing::info!(message = "Tailing.", stream = %nats.stream, subject = %filter);
    loop {
        let next = tokio::select! {
            () = shutdown.cancelled() => return Ok(()),
            next = messages.next() => next,
        };
        let Some(received) = next else { return Ok(()) };
        let received = received?;
        let Ok(event) = serde_json::from_slice::<Value>(&received.payload) else {
            tracing::warn!(message = "Skipping a message that is not JSON.", subject = %received.subject);
            continue;
        };
        if !severe_enough(&event, options.severity_at_least) {
            continue;
        }
        if options.json {
            out.write_all(json_line(&received.payload).as_bytes())?;
            out.write_all(b"\n")?;
        } else {
            writeln!(out, "{}", line(&event, options.color))?;
        }
        out.flush()?;
    }
}

/// A message that parsed as JSON, as one line safe for a terminal. Valid
/// JSON holds no raw C0 control (they must be escaped in strings), but
/// DEL and the C1 controls (U+0080–U+009F, incl. the 8-bit CSI) may stand
/// raw in a string: they are escaped as `\u00XX`, which means the same
/// string to any JSON reader. Outside strings they cannot occur.
pub fn json_line(payload: &[u8]) -> Cow<'_, str> {
    let text = String::from_utf8_lossy(payload);
    if !text.chars().any(|c| matches!(c, '\u{7f}'..='\u{9f}')) {
        return text;
    }
    let mut out = String::with_capacity(text.len() + 16);
    for c in text.chars() {
        match c {
            '\u{7f}'..='\u{9f}' => out.push_str(&format!("\\u{:04x}", u32::from(c))),
            c => out.push(c),
        }
    }
    Cow::Owned(out)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn options() -> TailOptions {
        TailOptions {
            vendor: None,
            source: None,
            kind: None,
            severity_at_least: None,
            start: TailStart::New,
            json: true,
            color: false,
        }
    }

    #[test]
    fn filters_become_subject_tokens_and_wildcards() {
        assert_eq!(filter_subject("alertd", &options()), "alertd.*.*.*");
        let o = TailOptions { vendor: Some("rapid7".into()), source: Some("ac.me".into()), ..options() };
        assert_eq!(filter_subject("x.y", &o), "x.y.rapid7.ac_me.*");
    }

    #[test]
    fn severity_is_compared_on_alertd_scale() {
        let high = serde_json::json!({"severity": {"level": "high"}});
        let low = serde_json::json!({"severity": {"level": "low"}});
        assert!(severe_enough(&high, Some(SeverityLevel::Medium)));
        assert!(!severe_enough(&low, Some(SeverityLevel::Medium)));
        assert!(severe_enough(&low, None));
        assert!(!severe_enough(&serde_json::json!({}), Some(SeverityLevel::Info)));
    }

    #[test]
    fn the_line_view_names_what_matters() {
        let e = serde_json::json!({
            "created_at": "2026-01-01T00:00:00Z", "severity": {"level": "high"},
            "source": {"vendor": "rapid7", "name": "acme", "kind": "alert"},
            "title": "Bad thing", "status": {"state": "new"}
        });
        assert_eq!(line(&e, false), "2026-01-01T00:00:00Z HIGH     rapid7/acme alert Bad thing [new]");
        assert!(line(&e, true).contains("\x1b[31mHIGH"));
    }

    #[test]
    fn vendor_text_cannot_drive_the_terminal() {
        let e = serde_json::json!({
            "created_at": "2026-01-01T00:00:00Z", "severity": {"level": "high"},
            "source": {"vendor": "rapid7", "name": "acme", "kind": "alert\u{9b}2J"},
            "title": "\x1b]0;pwned\x07Bad\x1b[2J thing\nline two", "status": {"state": "new\x1b[8m"}
        });
        for color in [false, true] {
            let shown = line(&e, color);
            // The only escapes left are the ones alertd writes to paint the severity.
            let painted = shown.replace("\x1b[31m", "").replace("\x1b[0m", "");
            assert!(!painted.chars().any(char::is_control), "{shown:?}");
            assert!(shown.contains("?]0;pwned?Bad?[2J thing line two"), "{shown:?}");
        }
    }

    #[test]
    fn json_lines_escape_raw_del_and_c1_controls() {
        let payload = "{\"title\":\"a\u{9b}2Jb\u{7f}\",\"host\":\"h\\u001b[2J\"}";
        let shown = json_line(payload.as_bytes());
        assert_eq!(shown, "{\"title\":\"a\\u009b2Jb\\u007f\",\"host\":\"h\\u001b[2J\"}");
        let back: Value = serde_json::from_str(&shown).unwrap();
        assert_eq!(back["title"], "a\u{9b}2Jb\u{7f}", "the same string to a JSON reader");
        assert!(matches!(json_line(b"{\"a\":1}"), Cow::Borrowed(_)));
    }
}
