//! CanaryGuard alert → event. The mapping is documented in
//! `docs/vendors/canaryguard.md` and `docs/event-schema.md`.
//!
//! A canary token firing is a strong signal by construction (nobody has a
//! reason to touch a decoy), so alerts are `high`; crypto-wallet tokens are
//! `critical`, since an on-chain transaction means someone holds the key.
//! An alert is an immutable trigger record: its revision is always `1`, and
//! the `reviewed` flag at fetch time gives the status.

use serde_json::Value;

use crate::event::{
    Entities, Event, Geo, IpEntity, Kind, Role, SCHEMA_VERSION, Severity, SeverityLevel, Status, StatusState,
    UrlEntity,
};
use crate::vendors::fields::{boolean, float, required_text, required_time, text};
use crate::vendors::{NormalizeContext, NormalizeError, Normalized};

use super::CanaryGuard;

pub(super) fn normalize(item: &Value, ctx: &NormalizeContext<'_>) -> Result<Normalized, NormalizeError> {
    let id = required_text(item, "/id")?;
    let triggered_at = required_time(item, "/triggered_at")?;
    let token_type = text(item, "/token_type");
    let token_id = text(item, "/token_id");
    let token_name = text(item, "/token_name").or_else(|| token_id.clone());
    let source_text = text(item, "/source_ip");
    let source_ip = source_text.as_deref().and_then(|s| s.parse().ok());
    let (city, country) = (text(item, "/geo/city"), text(item, "/geo/country"));

    // Texts are pushed in pieces: `format!` goes through `core::fmt`, and
    // its six calls here were 5 % of a CanaryGuard backfill (issue 16).
    let title = match (&token_name, &source_ip) {
        (Some(name), Some(ip)) => {
            ["Canary token ", name, " triggered from ", &crate::event::ip_text(ip)].concat()
        }
        (Some(name), None) => ["Canary token ", name, " triggered"].concat(),
        (None, _) => "Canary token triggered".to_owned(),
    };
    let place = Place { ip: source_text.as_deref(), city: city.as_deref(), country: country.as_deref() };
    let description = describe(item, token_type.as_deref(), &place);

    let level = match token_type.as_deref() {
        Some(t) if t.starts_with("crypto_") => SeverityLevel::Critical,
        _ => SeverityLevel::High,
    };
    let reviewed = boolean(item, "/reviewed");
    let status = match reviewed {
        Some(true) => Status { state: StatusState::Acknowledged, vendor: Some("reviewed".into()) },
        Some(false) => Status { state: StatusState::New, vendor: Some("not_reviewed".into()) },
        None => Status { state: StatusState::New, vendor: None },
    };

    let mut entities = Entities::default();
    if let Some(ip) = source_ip {
        entities.ips.push(IpEntity { address: ip, role: Role::Source });
    }
    if item.get("geo").is_some_and(Value::is_object) {
        let geo = Geo {
            ip: source_ip,
            city,
            region: text(item, "/geo/region"),
            country,
            lat: float(item, "/geo/lat"),
            lon: float(item, "/geo/lon"),
        };
        if geo != (Geo { ip: source_ip, ..Geo::default() }) {
            entities.geo.push(geo);
        }
    }
    if let Some(ua) = text(item, "/user_agent") {
        entities.user_agents.push(ua);
    }
    if let Some(referer) = text(item, "/headers/referer") {
        entities.urls.push(UrlEntity { url: referer, role: Role::Source });
    }

    let mut tags = vec!["canarytoken".to_owned()];
    if let Some(t) = &token_type {
        tags.push(["token_type:", t].concat());
    }
    if let Some(t) = &token_id {
        tags.push(["token_id:", t].concat());
    }

    let revision = "1".to_owned();
    let event = Event {
        schema_version: SCHEMA_VERSION.to_owned(),
        id: ctx.id::<CanaryGuard>(&id, &revision),
        source: ctx.source_ref::<CanaryGuard>(Kind::Alert),
        native_id: id,
        revision,
        title,
        description: Some(description),
        severity: Severity { level, vendor: None },
        status,
        created_at: triggered_at,
        updated_at: None,
        observed_at: Some(triggered_at),
        ingested_at: ctx.ingested_at,
        entities,
        tags,
        attack: Vec::new(),
        console_url: None,
        raw: ctx.raw(item),
    };
    Ok(Normalized { event, item_time: triggered_at, mark: None })
}

/// Where a trigger came from: the source address as the alert writes it,
/// and the city and country of its `geo`.
struct Place<'a> {
    ip: Option<&'a str>,
    city: Option<&'a str>,
    country: Option<&'a str>,
}

/// "A <type> canary token was triggered[ from <ip>[ (<city>, <country>)]][ on
/// wallet <address>]."
fn describe(item: &Value, token_type: Option<&str>, place: &Place<'_>) -> String {
    let mut out = String::with_capacity(128);
    out.push_str("A ");
    match token_type {
        Some(t) => out.extend(t.chars().map(|c| if c == '_' { ' ' } else { c })),
        None => out.push_str("CanaryGuard"),
    }
    out.push_str(" canary token was triggered");
    if let Some(ip) = place.ip {
        out.push_str(" from ");
        out.push_str(ip);
        let mut names = place.city.into_iter().chain(place.country);
        if let Some(first) = names.next() {
            out.push_str(" (");
            out.push_str(first);
            for name in names {
                out.push_str(", ");
                out.push_str(name);
            }
            out.push(')');
        }
    }
    if let Some(addr) = text(item, "/metadata/matched_address") {
        out.push_str(" on wallet ");
        out.push_str(&addr);
    }
    out.push('.');
    out
}

#[cfg(test)]
mod tests {
    use super::*;
    use chrono::{TimeZone, Utc};
    use serde_json::json;

    fn ctx() -> NormalizeContext<'static> {
        NormalizeContext::new("acme", Utc.with_ymd_and_hms(2026, 3, 28, 0, 0, 0).unwrap())
    }

    /// The alert object exactly as the vendor documents it.
    fn documented() -> Value {
        json!({
            "id": "alt_7c2b1a9e", "token_id": "tok_8f3a1b2c", "token_name": "prod-server-config",
            "token_type": "http", "triggered_at": "2026-03-27T08:15:42Z", "source_ip": "203.0.113.42",
            "geo": { "city": "Berlin", "region": "Berlin", "country": "DE", "lat": 52.52, "lon": 13.405 },
            "user_agent": "Mozilla/5.0 (Windows NT 10.0; Win64; x64) ...",
            "headers": { "referer": "https://example.com/internal" }
        })
    }

    #[test]
    fn the_documented_alert_maps_field_by_field() {
        let n = normalize(&documented(), &ctx()).unwrap();
        let e = n.event;
        assert_eq!(e.native_id, "alt_7c2b1a9e");
        assert_eq!(e.title, "Canary token prod-server-config triggered from 203.0.113.42");
        assert_eq!(e.severity.level, SeverityLevel::High);
        assert_eq!(e.status.state, StatusState::New);
        assert_eq!(e.created_at, Utc.with_ymd_and_hms(2026, 3, 27, 8, 15, 42).unwrap());
        assert_eq!(e.entities.ips[0].address.to_string(), "203.0.113.42");
        assert_eq!(e.entities.geo[0].city.as_deref(), Some("Berlin"));
        assert_eq!(e.entities.geo[0].lat, Some(52.52));
        assert_eq!(e.entities.urls[0].url, "https://example.com/internal");
        assert!(e.tags.contains(&"token_type:http".to_owned()));
        assert_eq!(e.raw, documented());
        assert_eq!(n.item_time, e.created_at);
    }

    /// The title, description and tags of each shape of alert, as the
    /// mapping documents them.
    #[test]
    fn titles_descriptions_and_tags_read_as_documented() {
        let cases = [
            (
                json!({}),
                "Canary token prod-server-config triggered from 203.0.113.42",
                "A http canary token was triggered from 203.0.113.42 (Berlin, DE).",
            ),
            (
                json!({"token_type": "crypto_eth_wallet", "geo": null, "metadata": {"matched_address": "0xabc"}}),
                "Canary token prod-server-config triggered from 203.0.113.42",
                "A crypto eth wallet canary token was triggered from 203.0.113.42 on wallet 0xabc.",
            ),
            (
                json!({"geo": {"country": "DE"}, "source_ip": "2001:db8::1", "token_name": null}),
                "Canary token tok_8f3a1b2c triggered from 2001:db8::1",
                "A http canary token was triggered from 2001:db8::1 (DE).",
            ),
            (
                json!({"geo": {"city": "Köln"}, "source_ip": "not-an-ip"}),
                "Canary token prod-server-config triggered",
                "A http canary token was triggered from not-an-ip (Köln).",
            ),
            (
                json!({"token_type": null, "source_ip": null, "token_name": null, "token_id": null}),
                "Canary token triggered",
                "A CanaryGuard canary token was triggered.",
            ),
        ];
        for (change, title, description) in cases {
            let mut item = documented();
            for (k, v) in change.as_object().unwrap() {
                item[k] = v.clone();
            }
            let e = normalize(&item, &ctx()).unwrap().event;
            assert_eq!(e.title, title, "{item}");
            assert_eq!(e.description.as_deref(), Some(description), "{item}");
        }
        let e = normalize(&documented(), &ctx()).unwrap().event;
        assert_eq!(e.tags, ["canarytoken", "token_type:http", "token_id:tok_8f3a1b2c"]);
    }

    #[test]
    fn crypto_tokens_are_critical_and_reviewed_alerts_acknowledged() {
        let mut item = documented();
        item["token_type"] = json!("crypto_eth");
        item["reviewed"] = json!(true);
        let e = normalize(&item, &ctx()).unwrap().event;
        assert_eq!(e.severity.level, SeverityLevel::Critical);
        assert_eq!(e.status.state, StatusState::Acknowledged);
    }

    #[test]
    fn a_sparse_alert_still_normalizes() {
        let item = json!({ "id": "alt_1", "triggered_at": "2026-03-27T08:15:42Z", "token_type": "dns" });
        let e = normalize(&item, &ctx()).unwrap().event;
        assert!(e.entities.is_empty());
        assert_eq!(e.title, "Canary token triggered");
    }

    #[test]
    fn a_missing_id_or_bad_time_is_a_named_error() {
        let mut item = documented();
        item.as_object_mut().unwrap().remove("id");
        assert!(normalize(&item, &ctx()).unwrap_err().0.contains("`id`"));
        let mut item = documented();
        item["triggered_at"] = json!("not a date");
        assert!(normalize(&item, &ctx()).unwrap_err().0.contains("triggered_at"));
    }

    #[test]
    fn a_bad_ip_is_dropped_not_fatal() {
        let mut item = documented();
        item["source_ip"] = json!("not-an-ip");
        let e = normalize(&item, &ctx()).unwrap().event;
        assert!(e.entities.ips.is_empty());
    }
}
