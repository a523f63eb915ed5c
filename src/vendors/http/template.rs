//! The two small template syntaxes of a definition (docs/vendors/http.md):
//!
//! - request templates (`query`, `body`, `headers`, `path`): literal text
//!   with `{variable}` or `{variable:format}`; the variables are the walk's
//!   (`page`, `index`, `page_size`, `cursor`, `since_id`, `window.start`,
//!   `window.end`), the format is one of [`TimeFormat`] and only for times;
//! - item templates (`title`, `description`, `revision`, tags, …): literal
//!   text with `{/json/pointer}` or `{$.json.path}` placeholders, each
//!   with alternatives after `|` tried in order: another location, or a
//!   literal text (`{/name|/id|unnamed}`).
//!
//! `{{` and `}}` are literal braces. Nothing else: no expressions, no loops.

use chrono::format::{Item, StrftimeItems};
use chrono::{DateTime, SecondsFormat, Utc};
use serde_json::Value;

use super::location::{Location, text_of};

/// The walk's variables a request may use.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Var {
    /// The page number (page schemes count from 1).
    Page,
    /// The zero-based page index (`index_pages`).
    Index,
    /// Items per page asked for.
    PageSize,
    /// The opaque cursor of the previous page (unset on the first page).
    Cursor,
    /// The highest id already delivered (`incremental.by = "id"`).
    SinceId,
    /// The window's (exclusive) start.
    WindowStart,
    /// The window's (exclusive) end.
    WindowEnd,
}

/// The variable names, for error messages.
pub const VARIABLES: &str = "page, index, page_size, cursor, since_id, window.start, window.end";

impl Var {
    fn parse(name: &str) -> Option<Var> {
        Some(match name {
            "page" => Var::Page,
            "index" => Var::Index,
            "page_size" => Var::PageSize,
            "cursor" => Var::Cursor,
            "since_id" => Var::SinceId,
            "window.start" => Var::WindowStart,
            "window.end" => Var::WindowEnd,
            _ => return None,
        })
    }

    fn is_time(self) -> bool {
        matches!(self, Var::WindowStart | Var::WindowEnd)
    }
}

/// How a time is written into a request, or read from an item.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum TimeFormat {
    /// RFC 3339 in UTC with `Z`, fractional seconds only when there are any.
    Rfc3339,
    /// Unix seconds.
    Unix,
    /// Unix milliseconds.
    UnixMs,
    /// A strftime pattern (chrono's), e.g. `%Y-%m-%dT%H:%M:%S`.
    Strftime(String),
}

impl TimeFormat {
    /// Parse a format name or a strftime pattern (anything with a `%`).
    pub fn parse(text: &str) -> Result<TimeFormat, String> {
        match text {
            "rfc3339" => Ok(TimeFormat::Rfc3339),
            "unix" | "unix_s" => Ok(TimeFormat::Unix),
            "unix_ms" => Ok(TimeFormat::UnixMs),
            pattern if pattern.contains('%') => {
                if StrftimeItems::new(pattern).any(|i| matches!(i, Item::Error)) {
                    return Err(format!("`{pattern}` is not a valid strftime pattern"));
                }
                Ok(TimeFormat::Strftime(pattern.to_owned()))
            }
            other => Err(format!(
                "unknown time format `{other}`; use rfc3339, unix, unix_ms or a strftime pattern with `%`"
            )),
        }
    }

    /// `t` in this format.
    pub fn write(&self, t: DateTime<Utc>) -> String {
        match self {
            TimeFormat::Rfc3339 => t.to_rfc3339_opts(SecondsFormat::AutoSi, true),
            TimeFormat::Unix => t.timestamp().to_string(),
            TimeFormat::UnixMs => t.timestamp_millis().to_string(),
            TimeFormat::Strftime(p) => t.format(p).to_string(),
        }
    }

    /// Whether its text is a number (a body then carries it as one).
    pub fn is_number(&self) -> bool {
        matches!(self, TimeFormat::Unix | TimeFormat::UnixMs)
    }
}

/// One piece of a request template.
#[derive(Debug, Clone)]
pub enum ReqPart {
    /// Literal text.
    Text(String),
    /// A variable, with a time format for times.
    Var(Var, TimeFormat),
}

/// A parsed request template.
#[derive(Debug, Clone)]
pub struct RequestTemplate(pub Vec<ReqPart>);

/// The values of the variables for one request; `None` is unset.
pub trait Vars {
    /// The value of `var`, unset when the walk has none (no cursor on the
    /// first page, no window start in an id walk with a watermark).
    fn number(&self, var: Var) -> Option<u64>;
    /// Text variables: the cursor.
    fn text(&self, var: Var) -> Option<String>;
    /// Time variables.
    fn time(&self, var: Var) -> Option<DateTime<Utc>>;
}

impl RequestTemplate {
    /// Parse `text`.
    pub fn parse(text: &str) -> Result<RequestTemplate, String> {
        let mut parts = Vec::new();
        for piece in split(text)? {
            match piece {
                Piece::Text(t) => parts.push(ReqPart::Text(t)),
                Piece::Placeholder(inner) => {
                    let (name, format) = match inner.split_once(':') {
                        Some((n, f)) => (n.trim(), Some(f)),
                        None => (inner.trim(), None),
                    };
                    let var = Var::parse(name).ok_or_else(|| {
                        format!("unknown variable `{{{name}}}` in `{text}`; the variables are {VARIABLES}")
                    })?;
                    let format = match format {
                        Some(f) if var.is_time() => TimeFormat::parse(f)?,
                        Some(_) => return Err(format!("`{{{inner}}}`: only times take a format")),
                        None => TimeFormat::Rfc3339,
                    };
                    parts.push(ReqPart::Var(var, format));
                }
            }
        }
        Ok(RequestTemplate(parts))
    }

    /// The text, or `None` when a variable it uses is unset (the parameter
    /// or body key is then left out).
    pub fn render(&self, vars: &dyn Vars) -> Option<String> {
        let mut out = String::new();
        for part in &self.0 {
            match part {
                ReqPart::Text(t) => out.push_str(t),
                ReqPart::Var(var, format) => out.push_str(&value_text(*var, format, vars)?),
            }
        }
        Some(out)
    }

    /// For a JSON body: a template that is exactly one numeric variable
    /// renders as a JSON number, anything else as a string.
    pub fn render_json(&self, vars: &dyn Vars) -> Option<Value> {
        if let [ReqPart::Var(var, format)] = self.0.as_slice() {
            let numeric = matches!(var, Var::Page | Var::Index | Var::PageSize | Var::SinceId)
                || (var.is_time() && format.is_number());
            if numeric {
                let text = value_text(*var, format, vars)?;
                if let Ok(n) = text.parse::<i64>() {
                    return Some(Value::from(n));
                }
            }
        }
        self.render(vars).map(Value::String)
    }

    /// Whether it uses `var`.
    pub fn uses(&self, var: Var) -> bool {
        self.0.iter().any(|p| matches!(p, ReqPart::Var(v, _) if *v == var))
    }
}

fn value_text(var: Var, format: &TimeFormat, vars: &dyn Vars) -> Option<String> {
    match var {
        Var::Cursor => vars.text(var),
        Var::WindowStart | Var::WindowEnd => vars.time(var).map(|t| format.write(t)),
        _ => vars.number(var).map(|n| n.to_string()),
    }
}

/// One alternative of an item placeholder.
#[derive(Debug, Clone)]
pub enum Alt {
    /// A location in the item.
    At(Location),
    /// Literal text.
    Text(String),
}

/// One piece of an item template.
#[derive(Debug, Clone)]
pub enum ItemPart {
    /// Literal text.
    Text(String),
    /// The first alternative that has a value.
    Value(Vec<Alt>),
}

/// A parsed item template.
#[derive(Debug, Clone)]
pub struct ItemTemplate(pub Vec<ItemPart>);

impl ItemTemplate {
    /// Parse `text`.
    pub fn parse(text: &str) -> Result<ItemTemplate, String> {
        let mut parts = Vec::new();
        for piece in split(text)? {
            match piece {
                Piece::Text(t) => parts.push(ItemPart::Text(t)),
                Piece::Placeholder(inner) => {
                    let mut alts = Vec::new();
                    for (i, alt) in inner.split('|').enumerate() {
                        let alt = alt.trim();
                        if alt.starts_with('/') || alt.starts_with('$') {
                            alts.push(Alt::At(Location::parse(alt)?));
                        } else if i == 0 {
                            return Err(format!(
                                "`{{{inner}}}` in `{text}` names no field: a placeholder starts with a JSON Pointer (`{{/name}}`) or a JSONPath query (`{{$.name}}`); literal text may only follow `|`"
                            ));
                        } else {
                            alts.push(Alt::Text(alt.to_owned()));
                        }
                    }
                    parts.push(ItemPart::Value(alts));
                }
            }
        }
        Ok(ItemTemplate(parts))
    }

    /// The template over `item`, or `None` when a placeholder has no value
    /// (none of its alternatives is present).
    pub fn render(&self, item: &Value) -> Option<String> {
        let mut out = String::new();
        for part in &self.0 {
            match part {
                ItemPart::Text(t) => out.push_str(t),
                ItemPart::Value(alts) => {
                    let value = alts.iter().find_map(|alt| match alt {
                        Alt::At(loc) => loc.get(item).and_then(text_of),
                        Alt::Text(t) => Some(t.clone()),
                    })?;
                    out.push_str(&value);
                }
            }
        }
        Some(out)
    }
}

enum Piece {
    Text(String),
    Placeholder(String),
}

fn split(text: &str) -> Result<Vec<Piece>, String> {
    let mut pieces = Vec::new();
    let mut literal = String::new();
    let mut chars = text.chars().peekable();
    while let Some(c) = chars.next() {
        match c {
            '{' if chars.peek() == Some(&'{') => {
                chars.next();
                literal.push('{');
            }
            '}' if chars.peek() == Some(&'}') => {
                chars.next();
                literal.push('}');
            }
            '{' => {
                let mut inner = String::new();
                loop {
                    match chars.next() {
                        Some('}') => break,
                        Some('{') | None => {
                            return Err(format!(
                                "unclosed `{{` in `{text}` (write `{{{{` for a literal brace)"
                            ));
                        }
                        Some(c) => inner.push(c),
                    }
                }
                if !literal.is_empty() {
                    pieces.push(Piece::Text(std::mem::take(&mut literal)));
                }
                pieces.push(Piece::Placeholder(inner));
            }
            '}' => return Err(format!("unmatched `}}` in `{text}` (write `}}}}` for a literal brace)")),
            c => literal.push(c),
        }
    }
    if !literal.is_empty() {
        pieces.push(Piece::Text(literal));
    }
    Ok(pieces)
}

#[cfg(test)]
mod tests {
    use super::*;
    use chrono::TimeZone;
    use serde_json::json;

    struct Fixed;
    impl Vars for Fixed {
        fn number(&self, var: Var) -> Option<u64> {
            match var {
                Var::Page => Some(3),
                Var::PageSize => Some(50),
                _ => None,
            }
        }
        fn text(&self, _: Var) -> Option<String> {
            None
        }
        fn time(&self, var: Var) -> Option<DateTime<Utc>> {
            (var == Var::WindowStart).then(|| Utc.with_ymd_and_hms(2026, 3, 1, 10, 0, 5).unwrap())
        }
    }

    #[test]
    fn request_templates_render_variables_and_formats() {
        let t = RequestTemplate::parse("p{page}/{page_size} {{x}} {window.start:%Y-%m-%d-%H:%M:%S}").unwrap();
        assert_eq!(t.render(&Fixed).unwrap(), "p3/50 {x} 2026-03-01-10:00:05");
        assert_eq!(
            RequestTemplate::parse("{window.start}").unwrap().render(&Fixed).unwrap(),
            "2026-03-01T10:00:05Z"
        );
        assert_eq!(
            RequestTemplate::parse("{window.start:unix_ms}").unwrap().render(&Fixed).unwrap(),
            "1772359205000"
        );
        assert_eq!(RequestTemplate::parse("{cursor}").unwrap().render(&Fixed), None, "unset: left out");
        assert_eq!(RequestTemplate::parse("{page}").unwrap().render_json(&Fixed), Some(json!(3)));
    }

    #[test]
    fn request_template_mistakes_are_named() {
        assert!(RequestTemplate::parse("{pgae}").unwrap_err().contains("unknown variable `{pgae}`"));
        assert!(RequestTemplate::parse("{page:unix}").unwrap_err().contains("only times"));
        assert!(RequestTemplate::parse("{window.end:nope}").unwrap_err().contains("unknown time format"));
        assert!(RequestTemplate::parse("{page").unwrap_err().contains("unclosed"));
    }

    #[test]
    fn item_templates_take_the_first_present_alternative() {
        let item = json!({"name": "web-1", "ip": "10.0.0.1", "n": 4});
        let t = ItemTemplate::parse("Host {/name} ({/ip}) #{/n}").unwrap();
        assert_eq!(t.render(&item).unwrap(), "Host web-1 (10.0.0.1) #4");
        let t = ItemTemplate::parse("{/missing|/name}|{/gone|none}").unwrap();
        assert_eq!(t.render(&item).unwrap(), "web-1|none");
        assert_eq!(ItemTemplate::parse("x {/missing}").unwrap().render(&item), None);
        assert!(ItemTemplate::parse("{name}").unwrap_err().contains("names no field"));
    }
}
