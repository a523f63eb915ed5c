//! `[source.http]`: the TOML of a definition, checked into a [`Spec`].
//!
//! Each section is read on its own so that a mistake is reported with the
//! dotted key it is under (`http.pagination.scheme: …`); the config loader
//! turns that key into the file's line. Every location, template and time
//! format is parsed here, at load, so a running source meets no syntax error.

use std::collections::BTreeMap;

use serde::Deserialize;
use serde::de::DeserializeOwned;

use crate::event::{Kind, SeverityLevel, StatusState};

use super::location::Location;
use super::template::{ItemTemplate, RequestTemplate, TimeFormat, Var};

/// A mistake in a definition, under the dotted key `path` of `[source.http]`.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct DefError {
    /// Dotted key below the source (`http.pagination.scheme`).
    pub path: String,
    /// What is wrong.
    pub message: String,
}

impl std::fmt::Display for DefError {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "{}: {}", self.path, self.message)
    }
}

fn err(path: &str, message: impl Into<String>) -> DefError {
    DefError { path: format!("http.{path}"), message: message.into() }
}

/// The definition, checked.
#[derive(Debug, Clone)]
pub struct Spec {
    pub kind: Kind,
    pub product: String,
    pub vendor_name: String,
    pub max_page_size: u32,
    pub throttle_statuses: Vec<u16>,
    pub request: RequestSpec,
    pub auth: AuthSpec,
    pub pagination: PaginationSpec,
    pub end_on_repeated_page: bool,
    pub incremental: IncrementalSpec,
    pub items: ItemsSpec,
    pub empty_answer: Option<EmptyAnswer>,
    pub fields: FieldsSpec,
}

#[derive(Debug, Clone)]
pub struct RequestSpec {
    pub post: bool,
    pub path: String,
    pub query: Vec<(String, RequestTemplate)>,
    pub next_query: Option<Vec<(String, RequestTemplate)>>,
    pub headers: Vec<(reqwest::header::HeaderName, RequestTemplate)>,
    pub body: Option<BodyTemplate>,
}

/// A JSON body whose string leaves are request templates.
#[derive(Debug, Clone)]
pub enum BodyTemplate {
    Object(Vec<(String, BodyTemplate)>),
    Array(Vec<BodyTemplate>),
    Text(RequestTemplate),
    Other(serde_json::Value),
}

#[derive(Debug, Clone)]
pub enum AuthSpec {
    Bearer,
    Header { name: reqwest::header::HeaderName, prefix: String },
    Query { name: String },
    Basic { username: String },
}

#[derive(Debug, Clone)]
pub enum NextFrom {
    Body(Location),
    LinkHeader,
}

#[derive(Debug, Clone)]
pub enum PaginationSpec {
    LinkNext { next: NextFrom, total_items: Option<Location> },
    Cursor { cursor: Location },
    PageTotal { total: Option<Location>, total_pages: Option<Location>, limit: Option<Location> },
    IndexPages { is_last: Option<Location>, total_pages: Option<Location>, total: Option<Location> },
    HasMore { has_more: Location },
}

#[derive(Debug, Clone)]
pub enum IncrementalSpec {
    Time { field: Location, format: Option<TimeFormat>, whole_seconds: bool },
    Id { field: Location },
}

#[derive(Debug, Clone)]
pub struct ItemsSpec {
    pub at: Location,
    pub allow_missing: bool,
    pub error: Option<Location>,
    pub error_message: Option<Location>,
}

#[derive(Debug, Clone)]
pub struct EmptyAnswer {
    pub status: u16,
    pub body_contains: String,
}

/// How a text field is computed.
#[derive(Debug, Clone)]
pub enum TextExpr {
    At(Location),
    Template(ItemTemplate),
    /// A template, or this text when one of its placeholders has no value.
    TemplateOr(ItemTemplate, String),
    LatestOf(Vec<Location>),
}

#[derive(Debug, Clone)]
pub struct ValueMap<T> {
    pub at: Option<Location>,
    pub map: BTreeMap<String, T>,
    pub default: T,
}

#[derive(Debug, Clone)]
pub struct FieldsSpec {
    pub id: TextExpr,
    pub revision: TextExpr,
    pub created: Vec<Location>,
    pub created_format: Option<TimeFormat>,
    pub updated: Vec<Location>,
    pub observed: Vec<Location>,
    pub title: Option<ItemTemplate>,
    pub description: Option<ItemTemplate>,
    pub severity: ValueMap<SeverityLevel>,
    pub status: ValueMap<StatusState>,
    pub hosts: Vec<TextExpr>,
    pub users: Vec<TextExpr>,
    pub ips: Vec<TextExpr>,
    pub urls: Vec<TextExpr>,
    pub tags: Vec<TextExpr>,
    pub console_url: Option<TextExpr>,
}

// ---- TOML shapes ----

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct Top {
    #[serde(default)]
    kind: Option<Kind>,
    #[serde(default)]
    product: Option<String>,
    #[serde(default)]
    vendor_name: Option<String>,
    #[serde(default)]
    max_page_size: Option<u32>,
    #[serde(default)]
    throttle_statuses: Vec<u16>,
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct RequestToml {
    #[serde(default)]
    method: Option<String>,
    path: String,
    #[serde(default)]
    query: BTreeMap<String, toml::Value>,
    #[serde(default)]
    next_query: Option<BTreeMap<String, toml::Value>>,
    #[serde(default)]
    headers: BTreeMap<String, String>,
    #[serde(default)]
    body: Option<toml::Value>,
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields, tag = "type", rename_all = "snake_case")]
enum AuthToml {
    Bearer,
    Header {
        name: String,
        #[serde(default)]
        prefix: String,
    },
    Query {
        name: String,
    },
    Basic {
        username: String,
    },
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields, tag = "scheme", rename_all = "snake_case")]
enum PaginationToml {
    LinkNext {
        next: String,
        #[serde(default)]
        total_items: Option<String>,
        #[serde(default)]
        end_on_repeated_page: bool,
    },
    Cursor {
        cursor: String,
        #[serde(default)]
        end_on_repeated_page: bool,
    },
    PageTotal {
        #[serde(default)]
        total: Option<String>,
        #[serde(default)]
        total_pages: Option<String>,
        #[serde(default)]
        limit: Option<String>,
        #[serde(default)]
        end_on_repeated_page: bool,
    },
    IndexPages {
        #[serde(default)]
        is_last: Option<String>,
        #[serde(default)]
        total_pages: Option<String>,
        #[serde(default)]
        total: Option<String>,
        #[serde(default)]
        end_on_repeated_page: bool,
    },
    HasMore {
        has_more: String,
        #[serde(default)]
        end_on_repeated_page: bool,
    },
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields, tag = "by", rename_all = "snake_case")]
enum IncrementalToml {
    Time {
        field: String,
        #[serde(default)]
        format: Option<String>,
        /// Documentation of the API's order; the window end is fixed for a
        /// walk and the watermark moves only at its end either way.
        #[serde(default)]
        #[allow(dead_code)]
        order: Option<Order>,
        #[serde(default)]
        whole_seconds: bool,
    },
    Id {
        field: String,
    },
}

#[derive(Deserialize)]
#[serde(rename_all = "snake_case")]
enum Order {
    NewestFirst,
    OldestFirst,
    Unknown,
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct ItemsToml {
    path: String,
    #[serde(default)]
    allow_missing: bool,
    #[serde(default)]
    error: Option<String>,
    #[serde(default)]
    error_message: Option<String>,
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct EmptyToml {
    status: u16,
    body_contains: String,
}

#[derive(Deserialize)]
#[serde(untagged)]
enum ExprToml {
    Text(String),
    Table(ExprTable),
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct ExprTable {
    #[serde(default)]
    constant: Option<String>,
    #[serde(default)]
    latest_of: Option<Vec<String>>,
    #[serde(default)]
    template: Option<String>,
    /// With `template`: the text when a placeholder has no value.
    #[serde(default)]
    default: Option<String>,
}

#[derive(Deserialize)]
#[serde(untagged)]
enum Locations {
    One(String),
    Many(Vec<String>),
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields, bound(deserialize = "T: Deserialize<'de>"))]
struct MapToml<T> {
    #[serde(default)]
    path: Option<String>,
    #[serde(default = "BTreeMap::new")]
    map: BTreeMap<String, T>,
    #[serde(default)]
    default: Option<T>,
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct FieldsToml {
    id: ExprToml,
    #[serde(default)]
    revision: Option<ExprToml>,
    created: Locations,
    #[serde(default)]
    created_format: Option<String>,
    #[serde(default)]
    updated: Option<Locations>,
    #[serde(default)]
    observed: Option<Locations>,
    #[serde(default)]
    title: Option<String>,
    #[serde(default)]
    description: Option<String>,
    #[serde(default)]
    severity: Option<MapToml<SeverityLevel>>,
    #[serde(default)]
    status: Option<MapToml<StatusState>>,
    #[serde(default)]
    hosts: Vec<ExprToml>,
    #[serde(default)]
    users: Vec<ExprToml>,
    #[serde(default)]
    ips: Vec<ExprToml>,
    #[serde(default)]
    urls: Vec<ExprToml>,
    #[serde(default)]
    tags: Vec<ExprToml>,
    #[serde(default)]
    console_url: Option<ExprToml>,
}

const SECTIONS: &[&str] =
    &["request", "auth", "pagination", "incremental", "items", "fields", "empty_answer"];

/// Deserialize the section `key` of `table`, naming the key of a mistake.
fn section<T: DeserializeOwned>(table: &toml::Table, key: &str) -> Result<Option<T>, DefError> {
    let Some(value) = table.get(key) else { return Ok(None) };
    value.clone().try_into::<T>().map(Some).map_err(|e| {
        let message = e.message().trim().to_owned();
        // "unknown field `x`" / "missing field `x`": name that field.
        let field = ["unknown field `", "missing field `", "unknown variant `"]
            .iter()
            .find_map(|p| message.split_once(p).and_then(|(_, rest)| rest.split_once('`')).map(|(f, _)| f));
        let path = match field {
            Some(_) if message.starts_with("unknown variant") => {
                format!("{key}.{}", variant_key(key))
            }
            Some(f) if !message.starts_with("missing") => format!("{key}.{f}"),
            _ => key.to_owned(),
        };
        err(&path, message)
    })
}

/// The tag key of a section's variants.
fn variant_key(section: &str) -> &'static str {
    match section {
        "auth" => "type",
        "pagination" => "scheme",
        "incremental" => "by",
        _ => "kind",
    }
}

fn loc(path: &str, text: &str) -> Result<Location, DefError> {
    Location::parse(text).map_err(|m| err(path, m))
}

fn opt_loc(path: &str, text: Option<&String>) -> Result<Option<Location>, DefError> {
    text.map(|t| loc(path, t)).transpose()
}

fn locations(path: &str, l: Option<Locations>) -> Result<Vec<Location>, DefError> {
    match l {
        None => Ok(Vec::new()),
        Some(Locations::One(t)) => Ok(vec![loc(path, &t)?]),
        Some(Locations::Many(list)) => list.iter().map(|t| loc(path, t)).collect(),
    }
}

fn expr(path: &str, e: ExprToml) -> Result<TextExpr, DefError> {
    match e {
        ExprToml::Text(t) if t.starts_with('/') || t.starts_with('$') => Ok(TextExpr::At(loc(path, &t)?)),
        ExprToml::Text(t) => ItemTemplate::parse(&t).map(TextExpr::Template).map_err(|m| err(path, m)),
        ExprToml::Table(ExprTable {
            template: Some(t),
            default: Some(d),
            constant: None,
            latest_of: None,
        }) => ItemTemplate::parse(&t).map(|t| TextExpr::TemplateOr(t, d)).map_err(|m| err(path, m)),
        ExprToml::Table(ExprTable { default: Some(_), .. }) => {
            Err(err(path, "`default` goes with `template` only (the text when a placeholder has no value)"))
        }
        ExprToml::Table(table) => match (table.constant, table.latest_of, table.template) {
            (Some(c), None, None) => {
                Ok(TextExpr::Template(ItemTemplate(vec![super::template::ItemPart::Text(c)])))
            }
            (None, Some(list), None) if !list.is_empty() => {
                Ok(TextExpr::LatestOf(list.iter().map(|t| loc(path, t)).collect::<Result<_, _>>()?))
            }
            (None, None, Some(t)) => {
                ItemTemplate::parse(&t).map(TextExpr::Template).map_err(|m| err(path, m))
            }
            _ => {
                Err(err(path, "give exactly one of `constant`, `latest_of` (a non-empty list) or `template`"))
            }
        },
    }
}

fn exprs(path: &str, list: Vec<ExprToml>) -> Result<Vec<TextExpr>, DefError> {
    list.into_iter().map(|e| expr(path, e)).collect()
}

fn request_templates(
    path: &str,
    map: BTreeMap<String, toml::Value>,
) -> Result<Vec<(String, RequestTemplate)>, DefError> {
    map.into_iter()
        .map(|(k, v)| {
            let text = match v {
                toml::Value::String(s) => s,
                toml::Value::Integer(n) => n.to_string(),
                toml::Value::Boolean(b) => b.to_string(),
                _ => {
                    return Err(err(
                        &format!("{path}.{k}"),
                        "a parameter is a string, an integer or a boolean",
                    ));
                }
            };
            RequestTemplate::parse(&text).map(|t| (k.clone(), t)).map_err(|m| err(&format!("{path}.{k}"), m))
        })
        .collect()
}

fn body(path: &str, value: toml::Value) -> Result<BodyTemplate, DefError> {
    Ok(match value {
        toml::Value::String(s) => BodyTemplate::Text(RequestTemplate::parse(&s).map_err(|m| err(path, m))?),
        toml::Value::Table(t) => BodyTemplate::Object(
            t.into_iter()
                .map(|(k, v)| body(&format!("{path}.{k}"), v).map(|b| (k, b)))
                .collect::<Result<_, _>>()?,
        ),
        toml::Value::Array(a) => {
            BodyTemplate::Array(a.into_iter().map(|v| body(path, v)).collect::<Result<_, _>>()?)
        }
        other => BodyTemplate::Other(
            serde_json::to_value(&other).map_err(|e| err(path, format!("not JSON: {e}")))?,
        ),
    })
}

fn value_map<T: Clone>(path: &str, m: Option<MapToml<T>>, fallback: T) -> Result<ValueMap<T>, DefError> {
    let Some(m) = m else { return Ok(ValueMap { at: None, map: BTreeMap::new(), default: fallback }) };
    let at = opt_loc(&format!("{path}.path"), m.path.as_ref())?;
    if at.is_none() && !m.map.is_empty() {
        return Err(err(path, "`map` needs `path`, the item field whose value it maps"));
    }
    Ok(ValueMap {
        at,
        map: m.map.into_iter().map(|(k, v)| (k.to_ascii_lowercase(), v)).collect(),
        default: m.default.unwrap_or(fallback),
    })
}

/// Check a `[source.http]` table.
pub fn parse(table: &toml::Table) -> Result<Spec, DefError> {
    let mut top_table = toml::Table::new();
    for (k, v) in table {
        if !SECTIONS.contains(&k.as_str()) {
            top_table.insert(k.clone(), v.clone());
        }
    }
    let top: Top = toml::Value::Table(top_table).try_into().map_err(|e: toml::de::Error| {
        let message = e.message().trim().to_owned();
        let field = message
            .split_once('`')
            .and_then(|(_, rest)| rest.split_once('`'))
            .map(|(f, _)| f.to_owned())
            .unwrap_or_default();
        let known = format!("; the sections are {}", SECTIONS.join(", "));
        err(
            &field,
            format!("{message}{}", if message.starts_with("unknown field") { known } else { String::new() }),
        )
    })?;
    let required = |key: &str| err(key, format!("missing section [source.http.{key}]"));

    let r: RequestToml = section(table, "request")?.ok_or_else(|| required("request"))?;
    let post = match r.method.as_deref().map(str::to_ascii_uppercase).as_deref() {
        None | Some("GET") => false,
        Some("POST") => true,
        Some(other) => return Err(err("request.method", format!("`{other}` is not GET or POST"))),
    };
    if !r.path.starts_with('/') {
        return Err(err("request.path", "the path starts with `/` (it is appended to base_url)"));
    }
    let mut headers = Vec::new();
    for (name, value) in r.headers {
        let path = format!("request.headers.{name}");
        let header = reqwest::header::HeaderName::from_bytes(name.as_bytes())
            .map_err(|_| err(&path, format!("`{name}` is not an HTTP header name")))?;
        headers.push((header, RequestTemplate::parse(&value).map_err(|m| err(&path, m))?));
    }
    let body = match r.body {
        None => None,
        Some(b) if post => Some(body("request.body", b)?),
        Some(_) => return Err(err("request.body", "a body is only sent with method = \"POST\"")),
    };
    let request = RequestSpec {
        post,
        path: r.path,
        query: request_templates("request.query", r.query)?,
        next_query: r.next_query.map(|q| request_templates("request.next_query", q)).transpose()?,
        headers,
        body,
    };

    let auth = match section::<AuthToml>(table, "auth")?.ok_or_else(|| required("auth"))? {
        AuthToml::Bearer => AuthSpec::Bearer,
        AuthToml::Header { name, prefix } => AuthSpec::Header {
            name: reqwest::header::HeaderName::from_bytes(name.as_bytes())
                .map_err(|_| err("auth.name", format!("`{name}` is not an HTTP header name")))?,
            prefix,
        },
        AuthToml::Query { name } => AuthSpec::Query { name },
        AuthToml::Basic { username } => AuthSpec::Basic { username },
    };

    let p: PaginationToml = section(table, "pagination")?.ok_or_else(|| required("pagination"))?;
    let (pagination, end_on_repeated_page) = match p {
        PaginationToml::LinkNext { next, total_items, end_on_repeated_page } => {
            let next = if next == "link_header" {
                NextFrom::LinkHeader
            } else {
                NextFrom::Body(loc("pagination.next", &next)?)
            };
            let total_items = opt_loc("pagination.total_items", total_items.as_ref())?;
            (PaginationSpec::LinkNext { next, total_items }, end_on_repeated_page)
        }
        PaginationToml::Cursor { cursor, end_on_repeated_page } => {
            (PaginationSpec::Cursor { cursor: loc("pagination.cursor", &cursor)? }, end_on_repeated_page)
        }
        PaginationToml::PageTotal { total, total_pages, limit, end_on_repeated_page } => {
            if total.is_some() == total_pages.is_some() {
                return Err(err(
                    "pagination",
                    "page_total needs exactly one of `total` (items) or `total_pages`",
                ));
            }
            (
                PaginationSpec::PageTotal {
                    total: opt_loc("pagination.total", total.as_ref())?,
                    total_pages: opt_loc("pagination.total_pages", total_pages.as_ref())?,
                    limit: opt_loc("pagination.limit", limit.as_ref())?,
                },
                end_on_repeated_page,
            )
        }
        PaginationToml::IndexPages { is_last, total_pages, total, end_on_repeated_page } => {
            if is_last.is_none() && total_pages.is_none() && total.is_none() {
                return Err(err("pagination", "index_pages needs `is_last`, `total_pages` or `total`"));
            }
            (
                PaginationSpec::IndexPages {
                    is_last: opt_loc("pagination.is_last", is_last.as_ref())?,
                    total_pages: opt_loc("pagination.total_pages", total_pages.as_ref())?,
                    total: opt_loc("pagination.total", total.as_ref())?,
                },
                end_on_repeated_page,
            )
        }
        PaginationToml::HasMore { has_more, end_on_repeated_page } => (
            PaginationSpec::HasMore { has_more: loc("pagination.has_more", &has_more)? },
            end_on_repeated_page,
        ),
    };

    let incremental =
        match section::<IncrementalToml>(table, "incremental")?.ok_or_else(|| required("incremental"))? {
            IncrementalToml::Time { field, format, order: _, whole_seconds } => IncrementalSpec::Time {
                field: loc("incremental.field", &field)?,
                format: format
                    .map(|f| TimeFormat::parse(&f).map_err(|m| err("incremental.format", m)))
                    .transpose()?,
                whole_seconds,
            },
            IncrementalToml::Id { field } => IncrementalSpec::Id { field: loc("incremental.field", &field)? },
        };

    let i: ItemsToml = section(table, "items")?.ok_or_else(|| required("items"))?;
    let items = ItemsSpec {
        at: loc("items.path", &i.path)?,
        allow_missing: i.allow_missing,
        error: opt_loc("items.error", i.error.as_ref())?,
        error_message: opt_loc("items.error_message", i.error_message.as_ref())?,
    };
    let empty_answer = section::<EmptyToml>(table, "empty_answer")?
        .map(|e| EmptyAnswer { status: e.status, body_contains: e.body_contains.to_ascii_lowercase() });

    let f: FieldsToml = section(table, "fields")?.ok_or_else(|| required("fields"))?;
    let fields = FieldsSpec {
        id: expr("fields.id", f.id)?,
        revision: match f.revision {
            Some(r) => expr("fields.revision", r)?,
            None => TextExpr::Template(ItemTemplate(vec![super::template::ItemPart::Text("1".into())])),
        },
        created: locations("fields.created", Some(f.created))?,
        created_format: f
            .created_format
            .map(|t| TimeFormat::parse(&t).map_err(|m| err("fields.created_format", m)))
            .transpose()?,
        updated: locations("fields.updated", f.updated)?,
        observed: locations("fields.observed", f.observed)?,
        title: f.title.map(|t| ItemTemplate::parse(&t).map_err(|m| err("fields.title", m))).transpose()?,
        description: f
            .description
            .map(|t| ItemTemplate::parse(&t).map_err(|m| err("fields.description", m)))
            .transpose()?,
        severity: value_map("fields.severity", f.severity, SeverityLevel::Unknown)?,
        status: value_map("fields.status", f.status, StatusState::Unknown)?,
        hosts: exprs("fields.hosts", f.hosts)?,
        users: exprs("fields.users", f.users)?,
        ips: exprs("fields.ips", f.ips)?,
        urls: exprs("fields.urls", f.urls)?,
        tags: exprs("fields.tags", f.tags)?,
        console_url: f.console_url.map(|c| expr("fields.console_url", c)).transpose()?,
    };

    // The variables the request uses must exist in this walk.
    let mut all: Vec<&RequestTemplate> = request.query.iter().map(|(_, t)| t).collect();
    all.extend(request.next_query.iter().flatten().map(|(_, t)| t));
    all.extend(request.headers.iter().map(|(_, t)| t));
    let mut body_templates = Vec::new();
    if let Some(b) = &request.body {
        collect(b, &mut body_templates);
    }
    all.extend(body_templates);
    let uses = |v: Var| all.iter().any(|t| t.uses(v));
    if matches!(pagination, PaginationSpec::Cursor { .. }) && !uses(Var::Cursor) {
        return Err(err(
            "request",
            "the cursor scheme needs `{cursor}` in a query parameter, header or body",
        ));
    }
    if matches!(incremental, IncrementalSpec::Id { .. }) && !uses(Var::SinceId) {
        return Err(err("request", "incremental by id needs `{since_id}` in a query parameter or the body"));
    }
    if matches!(incremental, IncrementalSpec::Time { .. }) && !uses(Var::WindowStart) {
        return Err(err(
            "request",
            "incremental by time needs `{window.start}` in a query parameter or the body",
        ));
    }
    if uses(Var::SinceId) && matches!(incremental, IncrementalSpec::Time { .. }) {
        return Err(err("request", "`{since_id}` is only set with incremental.by = \"id\""));
    }
    let page_var = uses(Var::Page) || uses(Var::Index);
    if matches!(
        pagination,
        PaginationSpec::PageTotal { .. } | PaginationSpec::IndexPages { .. } | PaginationSpec::HasMore { .. }
    ) && !page_var
    {
        return Err(err(
            "request",
            "this scheme counts pages: use `{page}` (or `{index}`) in a query parameter or the body",
        ));
    }

    Ok(Spec {
        kind: top.kind.unwrap_or(Kind::Alert),
        product: top.product.unwrap_or_else(|| "HTTP source".to_owned()),
        vendor_name: top.vendor_name.unwrap_or_else(|| "Unknown".to_owned()),
        max_page_size: top.max_page_size.unwrap_or(1000).max(1),
        throttle_statuses: top.throttle_statuses,
        request,
        auth,
        pagination,
        end_on_repeated_page,
        incremental,
        items,
        empty_answer,
        fields,
    })
}

fn collect<'a>(b: &'a BodyTemplate, out: &mut Vec<&'a RequestTemplate>) {
    match b {
        BodyTemplate::Object(o) => o.iter().for_each(|(_, v)| collect(v, out)),
        BodyTemplate::Array(a) => a.iter().for_each(|v| collect(v, out)),
        BodyTemplate::Text(t) => out.push(t),
        BodyTemplate::Other(_) => {}
    }
}
