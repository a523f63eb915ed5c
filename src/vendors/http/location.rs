//! Where a value is in a JSON document: a JSON Pointer (RFC 6901, `/a/b/0`)
//! or a JSONPath query (RFC 9535, `$.a.b[0]`, through `serde_json_path`).
//!
//! A location names one value: a pointer names at most one; a JSONPath
//! query may select several, and the first selected node (in document
//! order) is the value. A JSON `null` counts as absent.

use serde_json::Value;
use serde_json_path::JsonPath;

/// A parsed location.
#[derive(Debug, Clone)]
pub enum Location {
    /// RFC 6901 (`""` is the whole document).
    Pointer(String),
    /// RFC 9535 (starts with `$`).
    Path(Box<JsonPath>, String),
}

impl Location {
    /// Parse `text`: a pointer starts with `/` (or is empty: the whole
    /// document), a JSONPath query with `$`.
    pub fn parse(text: &str) -> Result<Location, String> {
        if text.is_empty() || text.starts_with('/') {
            // RFC 6901: `~` must be followed by 0 or 1.
            let mut chars = text.chars().peekable();
            while let Some(c) = chars.next() {
                if c == '~' && !matches!(chars.peek(), Some('0' | '1')) {
                    return Err(format!(
                        "`{text}` is not a JSON Pointer: `~` must be written `~0` and `/` inside a name `~1` (RFC 6901)"
                    ));
                }
            }
            return Ok(Location::Pointer(text.to_owned()));
        }
        if text.starts_with('$') {
            return JsonPath::parse(text)
                .map(|p| Location::Path(Box::new(p), text.to_owned()))
                .map_err(|e| format!("`{text}` is not a JSONPath query (RFC 9535): {e}"));
        }
        Err(format!(
            "`{text}` is neither a JSON Pointer (RFC 6901, starts with `/`, e.g. `/data/items`) nor a JSONPath query (RFC 9535, starts with `$`, e.g. `$.data.items`)"
        ))
    }

    /// The value at this location in `doc`, if present and not null.
    pub fn get<'a>(&self, doc: &'a Value) -> Option<&'a Value> {
        let found = match self {
            Location::Pointer(p) => crate::vendors::fields::lookup(doc, p),
            Location::Path(path, _) => path.query(doc).first(),
        };
        found.filter(|v| !v.is_null())
    }

    /// The location as written.
    pub fn as_str(&self) -> &str {
        match self {
            Location::Pointer(p) => p,
            Location::Path(_, text) => text,
        }
    }
}

/// A value as text: a non-blank string (trimmed), a number or a boolean.
pub fn text_of(value: &Value) -> Option<String> {
    match value {
        Value::String(s) if !s.trim().is_empty() => Some(s.trim().to_owned()),
        Value::Number(n) => Some(n.to_string()),
        Value::Bool(b) => Some(b.to_string()),
        _ => None,
    }
}

/// Each value of a location: the elements of an array, or the value itself.
pub fn each_text(value: &Value) -> Vec<String> {
    match value {
        Value::Array(list) => list.iter().filter_map(text_of).collect(),
        other => text_of(other).into_iter().collect(),
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    #[test]
    fn pointers_and_paths_find_the_same_value() {
        let doc = json!({"data": {"items": [{"id": 1}, {"id": 2}]}, "n": null});
        let p = Location::parse("/data/items/1/id").unwrap();
        let q = Location::parse("$.data.items[1].id").unwrap();
        assert_eq!(p.get(&doc), Some(&json!(2)));
        assert_eq!(q.get(&doc), Some(&json!(2)));
        assert_eq!(Location::parse("/n").unwrap().get(&doc), None, "null is absent");
        assert_eq!(Location::parse("$..id").unwrap().get(&doc), Some(&json!(1)), "first match");
    }

    #[test]
    fn malformed_locations_are_refused() {
        assert!(Location::parse("data.items").unwrap_err().contains("neither a JSON Pointer"));
        assert!(Location::parse("/a~2b").unwrap_err().contains("RFC 6901"));
        assert!(Location::parse("$.a[").unwrap_err().contains("RFC 9535"));
    }
}
