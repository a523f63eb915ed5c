//! Thinkst Canary Console (API v1): incidents of Canaries and Canarytokens.
//!
//! `GET {base}/api/v1/incidents/all?incidents_since=<updated_id>&limit=N`,
//! then `?cursor=<cursor.next>` alone (the cursor encodes the rest of the
//! query) until `cursor.next` is null: [`crate::paginate::cursor`].
//! `updated_id` is a console-wide counter bumped whenever an incident
//! changes, so the checkpoint is the highest `updated_id` published
//! ([`Normalized::mark`]) and an incident that comes back with a higher one
//! is a new revision. The key goes in the `X-Canary-Auth-Token` header, or
//! with `auth = "query"` in the `auth_token` parameter; alertd never prints a
//! URL's query, so it appears in no log line or error either way.
//!
//! A new source has no `updated_id` yet: its first walk also sends
//! `newer_than` (creation time) = now − `initial_lookback`, so it does not
//! read the console's whole history. See `docs/vendors/thinkst-canary.md`.

mod logtype;
mod normalize;

use std::time::Duration;

use chrono::{DateTime, Utc};
use reqwest::{Client, RequestBuilder};
use serde::{Deserialize, Serialize};
use serde_json::Value;
use url::Url;

use crate::config::{Credential, SourceConfig};
use crate::event::Kind;
use crate::incremental::{earlier, format_time, parse_time};
use crate::paginate::{Continuation, Page, Position, Scheme, cursor::CursorScheme};

use super::{Finish, NormalizeContext, NormalizeError, Normalized, PageError, Vendor};

/// A Thinkst Canary Console (`https://<hash>.canary.tools`).
#[derive(Debug)]
pub struct ThinkstCanary {
    incidents_url: Url,
    page_size: u32,
    auth: Auth,
    initial_lookback: Duration,
    overlap: Duration,
}

/// Where the API key travels.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum Auth {
    /// `X-Canary-Auth-Token` header: keeps the key out of URLs (and so out
    /// of proxies' access logs).
    #[default]
    Header,
    /// `auth_token` query parameter, for consoles or proxies that need it.
    Query,
}

/// `[source.options]` for Thinkst Canary.
#[derive(Debug, Default, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Options {
    /// `header` (default) or `query`.
    #[serde(default)]
    pub auth: Auth,
}

/// What a walk needs to resume: its starting point, fixed when planned.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct IncidentsPlan {
    /// `incidents_since`: the highest `updated_id` already delivered.
    pub since: i64,
    /// `newer_than` (creation time) for a source with no `updated_id` yet.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub newer_than: Option<DateTime<Utc>>,
    /// When the walk was planned, to prune seen ids.
    pub planned_at: DateTime<Utc>,
}

impl Vendor for ThinkstCanary {
    const KEY: &'static str = "thinkst_canary";
    const NAME: &'static str = "Thinkst Canary";
    const DEFAULT_BASE_URL: Option<&'static str> = None;
    const CONFIG_EXAMPLE: &'static str = r#"
# REQUIRED: your console's address (its domain hash).
base_url = "https://1234abcd.canary.tools"
# [source.options]
# auth = "header"        # the default; "query" sends auth_token in the URL (proxies' logs keep it)
"#;
    /// The maximum `limit` is undocumented; incidents bundle their events,
    /// so pages are kept modest.
    const MAX_PAGE_SIZE: u32 = 100;
    /// Its revisions are change times: an item is new until it is updated.
    const OCSF: crate::ocsf::Product = crate::ocsf::Product {
        name: "Canary",
        vendor_name: "Thinkst",
        is_first_revision: crate::ocsf::not_yet_updated,
    };

    type Options = Options;
    type Plan = IncidentsPlan;

    const READS: super::keep::Keep = normalize::READS;

    fn new(source: &SourceConfig, base_url: Url, options: Options) -> Result<Self, String> {
        Ok(ThinkstCanary {
            incidents_url: super::endpoint(&base_url, "/api/v1/incidents/all"),
            page_size: super::page_size::<Self>(source),
            auth: options.auth,
            initial_lookback: source.initial_lookback,
            overlap: source.overlap,
        })
    }

    fn kind(&self) -> Kind {
        Kind::Incident
    }

    fn scheme(&self) -> Scheme {
        Scheme::Cursor(CursorScheme)
    }

    /// The watermark is an `updated_id`; a time (from `alertd cursors reset
    /// --since`, or a first walk that found nothing) starts from that
    /// creation time instead.
    fn plan(&self, watermark: Option<&str>, now: DateTime<Utc>) -> Result<IncidentsPlan, PageError> {
        let (since, newer_than) = match watermark.map(str::trim) {
            None => (0, Some(earlier(now, self.initial_lookback))),
            Some(text) => match text.parse::<i64>() {
                Ok(id) => (id, None),
                Err(_) => match parse_time(text) {
                    Some(t) => (0, Some(t)),
                    None => {
                        return Err(PageError::State(format!(
                            "stored watermark `{text}` is neither an updated_id nor an RFC 3339 time; reset the cursor with `alertd cursors reset`"
                        )));
                    }
                },
            },
        };
        Ok(IncidentsPlan { since, newer_than, planned_at: now })
    }

    fn request(
        &self,
        client: &Client,
        plan: &IncidentsPlan,
        at: &Position,
        key: &Credential,
    ) -> RequestBuilder {
        let mut query = Vec::new();
        match at {
            Position::Cursor(cursor) => query.push(("cursor", cursor.clone())),
            _ => {
                query.push(("incidents_since", plan.since.to_string()));
                query.push(("limit", self.page_size.to_string()));
                if let Some(t) = plan.newer_than {
                    query.push(("newer_than", t.format("%Y-%m-%d-%H:%M:%S").to_string()));
                }
            }
        }
        let request = client.get(self.incidents_url.clone()).query(&query);
        match self.auth {
            Auth::Header => key.header(request, "X-Canary-Auth-Token"),
            Auth::Query => key.query(request, "auth_token"),
        }
    }

    fn parse_page(&self, body: &[u8]) -> Result<Page, PageError> {
        let parsed = super::envelope::parse(body, &["incidents"], &Self::READS)?;
        let envelope = parsed.rest;
        if envelope.get("result").and_then(Value::as_str) == Some("error") {
            let message = envelope.get("message").and_then(Value::as_str).unwrap_or("(no message)");
            return Err(PageError::vendor(message));
        }
        let items = match (parsed.items, envelope.get("incidents")) {
            (Some(items), _) => items,
            (None, None | Some(Value::Null)) => super::envelope::Items::default(),
            (None, Some(_)) => return Err(PageError::Shape("`incidents` is not an array".into())),
        };
        let next = match envelope.pointer("/cursor/next") {
            Some(Value::String(c)) => Some(c.clone()),
            None | Some(Value::Null) => None,
            Some(_) => return Err(PageError::Shape("`cursor.next` is not a string".into())),
        };
        Ok(items.into_page(Continuation::Cursor(next)))
    }

    fn normalize(&self, item: &Value, ctx: &NormalizeContext<'_>) -> Result<Normalized, NormalizeError> {
        normalize::normalize(item, ctx)
    }

    /// A walk that published nothing keeps its starting point (for a first
    /// walk: its creation-time bound, so the next one does not fall back to
    /// the whole history). Seen ids cannot come back once `incidents_since`
    /// passed them; the overlap keeps them a little longer against clock skew.
    fn finish(&self, plan: &IncidentsPlan, max_mark: Option<i64>) -> Finish {
        let watermark = match (max_mark, plan.newer_than) {
            (Some(mark), _) => mark.max(plan.since).to_string(),
            (None, Some(t)) if plan.since == 0 => format_time(t),
            (None, _) => plan.since.to_string(),
        };
        Finish { watermark, prune_before: Some(earlier(plan.planned_at, self.overlap)) }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use chrono::TimeZone;

    fn vendor(options: &str) -> ThinkstCanary {
        let config = crate::registry::parse(
            &format!(
                "[[source]]\nvendor = \"thinkst_canary\"\nname = \"t\"\nbase_url = \"https://abc123.canary.tools\"\n\
                 credential = {{ env = \"X\" }}\npage_size = 25\ninitial_lookback = \"24h\"\n{options}"
            ),
            "t.toml",
        )
        .unwrap();
        super::super::instantiate::<ThinkstCanary>(&config.sources[0]).unwrap()
    }

    fn now() -> DateTime<Utc> {
        Utc.with_ymd_and_hms(2026, 3, 1, 12, 0, 0).unwrap()
    }

    fn built(v: &ThinkstCanary, plan: &IncidentsPlan, at: &Position) -> reqwest::Request {
        let key = Credential::from_secret("s3cr3t".into());
        v.request(&Client::new(), plan, at, &key).build().unwrap()
    }

    #[test]
    fn the_first_walk_of_a_new_source_is_bounded_by_the_lookback() {
        let v = vendor("");
        let plan = v.plan(None, now()).unwrap();
        assert_eq!(plan.since, 0);
        let req = built(&v, &plan, &Position::Start);
        assert_eq!(req.url().path(), "/api/v1/incidents/all");
        assert_eq!(req.url().query(), Some("incidents_since=0&limit=25&newer_than=2026-02-28-12%3A00%3A00"));
        assert_eq!(req.headers()["x-canary-auth-token"], "s3cr3t");
    }

    #[test]
    fn later_walks_start_after_the_stored_updated_id_and_follow_the_cursor_alone() {
        let v = vendor("");
        let plan = v.plan(Some("152"), now()).unwrap();
        assert_eq!((plan.since, plan.newer_than), (152, None));
        let req = built(&v, &plan, &Position::Start);
        assert_eq!(req.url().query(), Some("incidents_since=152&limit=25"));
        let req = built(&v, &plan, &Position::Cursor("MTUzOjE0Nw==".into()));
        assert_eq!(req.url().query(), Some("cursor=MTUzOjE0Nw%3D%3D"));
    }

    #[test]
    fn query_auth_puts_the_key_in_auth_token_only() {
        let v = vendor("[source.options]\nauth = \"query\"\n");
        let plan = v.plan(Some("1"), now()).unwrap();
        let req = built(&v, &plan, &Position::Cursor("c".into()));
        assert_eq!(req.url().query(), Some("cursor=c&auth_token=s3cr3t"));
        assert!(!req.headers().contains_key("x-canary-auth-token"));
    }

    #[test]
    fn a_reset_to_a_time_and_a_garbled_watermark() {
        let v = vendor("");
        let plan = v.plan(Some("2026-01-01T00:00:00.000000Z"), now()).unwrap();
        assert_eq!(plan.since, 0);
        assert_eq!(plan.newer_than, Some(Utc.with_ymd_and_hms(2026, 1, 1, 0, 0, 0).unwrap()));
        assert!(matches!(v.plan(Some("yesterday"), now()), Err(PageError::State(_))));
    }

    #[test]
    fn the_checkpoint_is_the_highest_updated_id_and_never_moves_back() {
        let v = vendor("");
        let first = v.plan(None, now()).unwrap();
        assert_eq!(v.finish(&first, Some(17)).watermark, "17");
        assert_eq!(
            v.finish(&first, None).watermark,
            "2026-02-28T12:00:00.000000Z",
            "an empty first walk keeps its lookback bound"
        );
        let later = v.plan(Some("40"), now()).unwrap();
        assert_eq!(v.finish(&later, None).watermark, "40");
        assert_eq!(v.finish(&later, Some(38)).watermark, "40");
        assert_eq!(v.finish(&later, Some(41)).watermark, "41");
    }

    #[test]
    fn pages_with_null_absent_or_listed_incidents_parse() {
        let v = vendor("");
        for body in [
            r#"{"feed":"All Incidents","incidents":null,"result":"success","cursor":{"next":null}}"#,
            r#"{"feed":"All Incidents","result":"success"}"#,
            r#"{"incidents":[],"cursor":{"next":null,"prev":null}}"#,
        ] {
            let page = v.parse_page(body.as_bytes()).unwrap();
            assert!(page.items.is_empty(), "{body}");
            assert_eq!(page.continuation, Continuation::Cursor(None));
        }
        let page = v
            .parse_page(br#"{"incidents":[{"id":"a"}],"cursor":{"next":"MTE6MTA="},"result":"success"}"#)
            .unwrap();
        assert_eq!(page.items.len(), 1);
        assert_eq!(page.continuation, Continuation::Cursor(Some("MTE6MTA=".into())));
    }

    #[test]
    fn an_error_result_is_a_vendor_error_even_with_http_200() {
        let v = vendor("");
        assert_eq!(
            v.parse_page(br#"{"message":"Invalid auth_token","result":"error"}"#).unwrap_err(),
            PageError::Vendor("Invalid auth_token".into())
        );
        assert!(matches!(v.parse_page(br#"{"incidents":{"id":"a"}}"#), Err(PageError::Shape(_))));
    }

    #[test]
    fn unknown_options_are_refused() {
        let config = crate::registry::parse(
            "[[source]]\nvendor = \"thinkst_canary\"\nname = \"t\"\nbase_url = \"https://x.canary.tools\"\n\
             credential = { env = \"X\" }\n[source.options]\nauth = \"cookie\"\n",
            "t.toml",
        );
        let err = config.expect_err("unknown options are refused").to_string();
        assert!(err.contains("auth") || err.contains("cookie"), "{err}");
    }
}
