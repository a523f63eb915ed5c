//! Thinkst Canary Console simulator: incidents served from
//! `/api/v1/incidents/{all,acknowledged,unacknowledged}` in the feed envelope
//! of the docs' examples (stringly typed fields, four timestamp forms,
//! `incidents: null` when empty, `max_updated_id` only when not).
//!
//! Every created or changed incident takes the next console-wide `updated_id`
//! ([`VendorApi::stamp`]); `incidents_since` returns those above it, oldest
//! change first. With `limit` the answer is paged by an opaque base64 cursor
//! that encodes the query and the highest `updated_id` at the first request,
//! so a walk is a snapshot: incidents changed during it come with the next
//! `incidents_since`. Without `limit` the whole feed comes in one answer with
//! no `cursor` key. The key is accepted in `X-Canary-Auth-Token` or
//! `auth_token`; `next_link` carries `auth_token` back when the request did,
//! as the docs' examples show. Errors are `{"result":"error","message"}`: 401
//! for a bad key, 400 for a bad parameter, and HTTP 200 for a bad cursor.
//!
//! `data.rs` holds the console's made-up birds, tokens, services and
//! places, and how an incident of each kind is drawn from them.

mod data;

use std::sync::Arc;

use axum::Json;
use axum::extract::{Path, RawQuery, State};
use axum::http::header::RETRY_AFTER;
use axum::http::{HeaderMap, HeaderValue, StatusCode};
use axum::response::{IntoResponse, Response};
use axum::routing::get;
use base64::Engine;
use base64::engine::general_purpose::STANDARD as BASE64;
use chrono::{DateTime, NaiveDateTime, TimeDelta, Utc};
use rand::Rng;
use rand::rngs::StdRng;
use serde_json::{Map, Value, json};

use super::state::{Item, Routes, Shared, VendorApi, hex, page_response, pick};

pub(crate) use data::ThinkstCanary;
use data::*;

/// A well-formed key for demos and tests, so nobody needs a real account.
pub const THINKST_CANARY_DEMO_KEY: &str = "3f9e1d7c5b3a29180f7e6d5c4b3a2918";

impl VendorApi for ThinkstCanary {
    fn generate(&self, rng: &mut StdRng, at: DateTime<Utc>) -> Item {
        let src = format!("{}.{}", pick(rng, IPV4_PREFIXES), rng.random_range(1..255));
        let roll = rng.random_range(0..100);
        let mut d = Map::new();
        let (summary, slug, events, first) = if roll < 35 {
            let token = pick(rng, &self.tokens);
            d.insert("dst_host".into(), json!("203.0.113.250"));
            d.insert("dst_port".into(), json!("80"));
            d.insert("logtype".into(), json!(token.kind.1));
            d.insert("memo".into(), json!(token.memo));
            d.insert("name".into(), json!("N/A"));
            d.insert("node_id".into(), json!(token.node_id));
            d.insert("src_host".into(), json!(src));
            d.insert("src_port".into(), json!("0"));
            d.insert("local_time".into(), json!(format!("{} (UTC)", at.format("%Y-%m-%d %H:%M:%S"))));
            ("Canarytoken triggered", "canarytoken", vec![token_event(rng, token, &src, at)], at)
        } else {
            let canary = pick(rng, &self.canaries);
            d.insert("dst_host".into(), json!(canary.ip));
            d.insert("dst_host_public_ip".into(), json!(""));
            d.insert("name".into(), json!(canary.name));
            d.insert("node_id".into(), json!(canary.node_id));
            d.insert("ip_address".into(), json!(""));
            d.insert("ippers".into(), json!(""));
            d.insert("mac_address".into(), json!(""));
            d.insert("local_time".into(), json!(at.format("%Y-%m-%d %H:%M:%S").to_string()));
            if roll < 42 {
                d.insert("dst_port".into(), json!(""));
                d.insert("logtype".into(), json!("1004"));
                d.insert("src_host".into(), json!(""));
                d.insert("src_port".into(), json!(""));
                ("Canary Disconnected", "canarydisconnected", vec![json!({})], at)
            } else {
                let (logtype, summary, slug, port) = *pick(rng, SERVICES);
                d.insert("dst_port".into(), json!(port));
                d.insert("logtype".into(), json!(logtype));
                d.insert("src_host".into(), json!(src));
                d.insert("src_port".into(), json!(rng.random_range(30000..65000).to_string()));
                let reverse = *pick(rng, REVERSES);
                if !reverse.is_empty() {
                    d.insert("src_host_reverse".into(), json!(reverse));
                }
                let n: i64 = if slug.ends_with("login") { rng.random_range(1..=4) } else { 1 };
                // A brute force bundles its attempts, three seconds apart,
                // the last at `at`; the first is the incident's creation.
                let first = at - TimeDelta::seconds(3 * (n - 1));
                let events =
                    (0..n).map(|k| service_event(rng, logtype, first + TimeDelta::seconds(3 * k))).collect();
                (summary, slug, events, first)
            }
        };
        let last = at;
        let ids: Vec<String> =
            events.iter().filter_map(|e| e.get("timestamp").map(ToString::to_string)).collect();
        d.insert("acknowledged".into(), json!(if rng.random_bool(0.15) { "True" } else { "False" }));
        d.insert("created".into(), json!(first.timestamp().to_string()));
        d.insert("created_std".into(), json!(std_time(first)));
        d.insert("description".into(), json!(summary));
        d.insert("events_count".into(), json!(events.len().to_string()));
        d.insert("events_list".into(), json!(ids.join(",")));
        d.insert("events".into(), Value::Array(events));
        d.insert("flock_id".into(), json!(FLOCK.0));
        d.insert("flock_name".into(), json!(FLOCK.1));
        d.insert("matched_annotations".into(), json!({}));
        d.insert("notified".into(), json!("False"));
        let source = d.get("src_host").and_then(Value::as_str).unwrap_or_default().to_owned();
        let id = format!("incident:{slug}:{}:{source}:{}", hex(rng, 32), first.timestamp());
        let json = json!({
            "description": d,
            "hash_id": hex(rng, 32),
            "id": id,
            "summary": summary,
            "updated": rfc1123(last),
            "updated_id": 0,
            "updated_std": std_time(last),
            "updated_time": last.timestamp().to_string(),
        });
        Item::new(first, id, json)
    }

    /// An open incident gets another event bundled in, or is acknowledged;
    /// an acknowledged one no longer changes.
    fn update(&self, rng: &mut StdRng, item: &mut Item, at: DateTime<Utc>) -> bool {
        let json = &mut item.json;
        let Some(d) = json.get_mut("description").and_then(Value::as_object_mut) else {
            return false;
        };
        if d.get("acknowledged").and_then(Value::as_str) == Some("True") {
            return false;
        }
        let logtype = d.get("logtype").and_then(Value::as_str).unwrap_or_default().to_owned();
        if logtype == "1004" || rng.random_bool(0.5) {
            d.insert("acknowledged".into(), json!("True"));
        } else {
            let Some(events) = d.get_mut("events").and_then(Value::as_array_mut) else {
                return false;
            };
            let mut event = events.last().cloned().unwrap_or_else(|| json!({}));
            event["timestamp"] = json!(at.timestamp());
            event["timestamp_std"] = json!(std_time(at));
            events.push(event);
            let count = events.len();
            d.insert("events_count".into(), json!(count.to_string()));
            let list = d.get("events_list").and_then(Value::as_str).unwrap_or_default();
            let list = format!("{list},{}", at.timestamp());
            d.insert("events_list".into(), json!(list.trim_start_matches(',')));
        }
        json["updated"] = json!(rfc1123(at));
        json["updated_std"] = json!(std_time(at));
        json["updated_time"] = json!(at.timestamp().to_string());
        true
    }

    fn stamp(&self, item: &mut Item, seq: u64) {
        item.json["updated_id"] = json!(seq);
    }

    fn rate_limited(&self, retry_after_secs: u64) -> Response {
        let mut response = error(StatusCode::TOO_MANY_REQUESTS, "Rate limit exceeded, slow down");
        response.headers_mut().insert(RETRY_AFTER, HeaderValue::from(retry_after_secs));
        response
    }

    fn unauthorized(&self) -> Response {
        error(StatusCode::UNAUTHORIZED, "Unauthorized")
    }

    fn error_in_200(&self) -> Response {
        error(StatusCode::OK, "Something went wrong fetching incidents, please try again")
    }

    fn malform(&self, body: &mut Value) {
        let Some(items) = body.get_mut("incidents").and_then(Value::as_array_mut) else {
            return;
        };
        let middle = items.len() / 2;
        if let Some(Value::Object(incident)) = items.get_mut(middle) {
            incident.remove("id");
            incident.insert("updated_id".into(), json!("not a number"));
        }
    }

    fn routes(&self) -> Routes {
        Routes {
            open: axum::Router::new()
                .route("/api/v1/ping", get(ping))
                .fallback(|| async { error(StatusCode::NOT_FOUND, "Page not found") }),
            data: axum::Router::new().route("/api/v1/incidents/{feed}", get(incidents)),
        }
    }
}

/// What a request may be refused for.
#[derive(Debug, thiserror::Error)]
enum QueryError {
    #[error("Invalid auth_token")]
    BadToken,
    #[error("Unauthorized")]
    BadHeader,
    #[error("incidents_since must be a non-negative integer")]
    Since,
    #[error("limit must be a positive integer")]
    Limit,
    #[error("newer_than must be in the format yyyy-mm-dd-hh:mm:ss")]
    NewerThan,
    #[error("Invalid cursor")]
    Cursor,
}

/// A walk's query, as its cursor remembers it.
#[derive(Debug, Clone, PartialEq, Eq)]
struct Walk {
    /// Incidents with an `updated_id` above this.
    after: u64,
    /// And at most this: the highest `updated_id` when the walk began.
    upper: u64,
    limit: Option<u64>,
    /// Creation time strictly after this (epoch seconds).
    newer_than: Option<i64>,
    page: u64,
}

impl Walk {
    fn cursor(&self) -> String {
        BASE64.encode(format!(
            "{}:{}:{}:{}:{}",
            self.after,
            self.upper,
            self.limit.unwrap_or(0),
            self.newer_than.unwrap_or(-1),
            self.page
        ))
    }

    fn from_cursor(cursor: &str) -> Result<Walk, QueryError> {
        let text =
            BASE64.decode(cursor).ok().and_then(|b| String::from_utf8(b).ok()).ok_or(QueryError::Cursor)?;
        let parts: Vec<i64> =
            text.split(':').map(str::parse).collect::<Result<_, _>>().map_err(|_| QueryError::Cursor)?;
        let [after, upper, limit, newer_than, page] = parts[..] else {
            return Err(QueryError::Cursor);
        };
        let unsigned = |n: i64| u64::try_from(n).map_err(|_| QueryError::Cursor);
        Ok(Walk {
            after: unsigned(after)?,
            upper: unsigned(upper)?,
            limit: Some(unsigned(limit)?).filter(|l| *l > 0),
            newer_than: (newer_than >= 0).then_some(newer_than),
            page: unsigned(page)?,
        })
    }
}

/// The request's key, checked; `Ok(true)` when it came as `auth_token`.
fn authenticate(
    shared: &Shared,
    headers: &HeaderMap,
    query: &[(String, String)],
) -> Result<bool, QueryError> {
    if let Some(token) = query.iter().find(|(k, _)| k == "auth_token").map(|(_, v)| v) {
        return if token == shared.api_key() { Ok(true) } else { Err(QueryError::BadToken) };
    }
    match headers.get("x-canary-auth-token").and_then(|v| v.to_str().ok()) {
        Some(token) if token == shared.api_key() => Ok(false),
        _ => Err(QueryError::BadHeader),
    }
}

/// The walk a request asks for, given the highest `updated_id` now.
fn walk_of(query: &[(String, String)], newest: u64) -> Result<Walk, QueryError> {
    let param = |name: &str| query.iter().find(|(k, _)| k == name).map(|(_, v)| v.as_str());
    if let Some(cursor) = param("cursor") {
        return Walk::from_cursor(cursor);
    }
    let after = match param("incidents_since") {
        Some(v) => v.parse().map_err(|_| QueryError::Since)?,
        None => 0,
    };
    let limit = match param("limit") {
        Some(v) => Some(v.parse().ok().filter(|l| *l > 0).ok_or(QueryError::Limit)?),
        None => None,
    };
    let newer_than = match param("newer_than") {
        Some(v) => Some(
            NaiveDateTime::parse_from_str(v, "%Y-%m-%d-%H:%M:%S")
                .map_err(|_| QueryError::NewerThan)?
                .and_utc()
                .timestamp(),
        ),
        None => None,
    };
    Ok(Walk { after, upper: newest, limit, newer_than, page: 1 })
}

/// An incident as a page serves it: its `updated_id` and its text.
fn served(item: &Item) -> (u64, Arc<str>) {
    (updated_id(item), item.text.clone())
}

fn updated_id(item: &Item) -> u64 {
    item.json.get("updated_id").and_then(Value::as_u64).unwrap_or(0)
}

fn acknowledged(item: &Item) -> bool {
    item.json.pointer("/description/acknowledged").and_then(Value::as_str) == Some("True")
}

async fn ping(State(shared): State<Arc<Shared>>, headers: HeaderMap, RawQuery(raw): RawQuery) -> Response {
    let query = pairs(raw.as_deref());
    match authenticate(&shared, &headers, &query) {
        Ok(_) => Json(json!({"result": "success"})).into_response(),
        Err(e) => error(StatusCode::UNAUTHORIZED, &e.to_string()),
    }
}

async fn incidents(
    State(shared): State<Arc<Shared>>,
    Path(feed): Path<String>,
    headers: HeaderMap,
    RawQuery(raw): RawQuery,
) -> Response {
    let (name, want_ack) = match feed.as_str() {
        "all" => ("All Incidents", None),
        "acknowledged" => ("Acknowledged Incidents", Some(true)),
        "unacknowledged" => ("Unacknowledged Incidents", Some(false)),
        _ => return error(StatusCode::NOT_FOUND, "Page not found"),
    };
    let query = pairs(raw.as_deref());
    let by_query = match authenticate(&shared, &headers, &query) {
        Ok(by_query) => by_query,
        Err(e) => return error(StatusCode::UNAUTHORIZED, &e.to_string()),
    };
    // Every stamp is an `updated_id`, so the last one given is the newest.
    let newest = shared.with_stamped_items(|_, seq, _| seq);
    let walk = match walk_of(&query, newest) {
        Ok(walk) => walk,
        // Thinkst reports a bad cursor in the body of a 200.
        Err(QueryError::Cursor) => return error(StatusCode::OK, &QueryError::Cursor.to_string()),
        Err(e) => return error(StatusCode::BAD_REQUEST, &e.to_string()),
    };
    // One more than the page, to know whether another follows; only those
    // are copied, so a page costs O(page) when the stamps are in store order
    // (a 100,000-incident backfill in the end-to-end benchmark).
    let wanted =
        walk.limit.map_or(usize::MAX, |l| usize::try_from(l).unwrap_or(usize::MAX).saturating_add(1));
    let mut matching: Vec<(u64, Arc<str>)> = shared.with_stamped_items(|items, _, in_order| {
        let keep = |i: &&Item| {
            walk.newer_than.is_none_or(|t| i.at.timestamp() > t)
                && want_ack.is_none_or(|a| acknowledged(i) == a)
        };
        if in_order {
            let start = items.partition_point(|i| updated_id(i) <= walk.after);
            let end = items.partition_point(|i| updated_id(i) <= walk.upper).max(start);
            return items[start..end].iter().filter(keep).take(wanted).map(served).collect();
        }
        let mut found: Vec<&Item> = items
            .iter()
            .filter(|i| (walk.after.saturating_add(1)..=walk.upper).contains(&updated_id(i)))
            .filter(keep)
            .collect();
        found.sort_by_key(|i| updated_id(i));
        found.into_iter().take(wanted).map(served).collect()
    });
    let now = Utc::now();
    let mut body = Map::new();
    if let Some(limit) = walk.limit {
        let take = usize::try_from(limit).unwrap_or(usize::MAX);
        let more = matching.len() > take;
        matching.truncate(take);
        let next = more.then(|| Walk {
            after: matching.last().map_or(walk.after, |(id, _)| *id),
            page: walk.page + 1,
            ..walk.clone()
        });
        let next_link = next.as_ref().map(|n| {
            let mut q = url::form_urlencoded::Serializer::new(String::new());
            q.append_pair("cursor", &n.cursor());
            if by_query {
                q.append_pair("auth_token", shared.api_key());
            }
            let host = headers.get("host").and_then(|v| v.to_str().ok()).unwrap_or("127.0.0.1");
            format!("http://{host}/api/v1/incidents/{feed}?{}", q.finish())
        });
        body.insert(
            "cursor".into(),
            json!({"next": next.map(|n| n.cursor()), "next_link": next_link, "prev": null, "prev_link": null}),
        );
    }
    body.insert("feed".into(), json!(name));
    if matching.is_empty() {
        body.insert("incidents".into(), Value::Null);
    } else {
        let max = matching.iter().map(|(id, _)| *id).max();
        body.insert("incidents".into(), Value::Array(Vec::new()));
        body.insert("max_updated_id".into(), json!(max));
    }
    body.insert("result".into(), json!("success"));
    body.insert("updated".into(), json!(rfc1123(now)));
    body.insert("updated_std".into(), json!(std_time(now)));
    body.insert("updated_timestamp".into(), json!(now.timestamp()));
    let texts: Vec<Arc<str>> = matching.into_iter().map(|(_, text)| text).collect();
    page_response(Value::Object(body), "/incidents", &texts)
}

fn pairs(raw: Option<&str>) -> Vec<(String, String)> {
    url::form_urlencoded::parse(raw.unwrap_or_default().as_bytes())
        .map(|(k, v)| (k.into_owned(), v.into_owned()))
        .collect()
}

/// Thinkst's error envelope.
fn error(status: StatusCode, message: &str) -> Response {
    (status, Json(json!({"message": message, "result": "error"}))).into_response()
}
