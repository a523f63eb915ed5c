//! Definitions checked at load, requests built, pages read.

use super::*;

pub(crate) const CANARYGUARD: &str = include_str!("../../../config/http/canaryguard.toml");

fn source(text: &str) -> SourceConfig {
    let config = crate::registry::parse(text, "t.toml").unwrap_or_else(|e| panic!("{e}"));
    config.sources.into_iter().next().unwrap()
}

#[test]
fn the_shipped_canaryguard_definition_loads() {
    let s = source(CANARYGUARD);
    let v = super::super::instantiate::<HttpSource>(&s).unwrap();
    assert!(matches!(v.scheme(), Scheme::PageTotal(_)));
}

/// The shipped CanaryGuard definition with `from` replaced by `to`: the
/// error `alertd check-config` gives for it, and the line `to` is on.
fn mistake(from: &str, to: &str) -> (String, usize, usize) {
    assert!(CANARYGUARD.contains(from), "{from}");
    let text = CANARYGUARD.replacen(from, to, 1);
    let line = text.lines().position(|l| l.contains(to.lines().last().unwrap_or(to))).unwrap() + 1;
    let err = crate::registry::parse(&text, "defs.toml").expect_err("a mistake is refused");
    let crate::config::ConfigError::Invalid { line: got, .. } = &err else { panic!("{err}") };
    (err.to_string(), *got, line)
}

fn assert_mistake(from: &str, to: &str, says: &str) {
    let (message, got, want) = mistake(from, to);
    assert!(message.starts_with(&format!("defs.toml:{want}:")), "line {want} expected ({got}): {message}");
    assert!(message.contains(says), "`{says}` expected in: {message}");
}

#[test]
fn an_unknown_scheme_is_named_on_its_line() {
    assert_mistake(
        "scheme = \"page_total\"",
        "scheme = \"pages\"",
        "http.pagination.scheme: unknown variant `pages`",
    );
}

#[test]
fn a_location_that_is_no_pointer_is_named_on_its_line() {
    assert_mistake(
        "path = \"/data\"",
        "path = \"data\"",
        "http.items.path: `data` is neither a JSON Pointer",
    );
    assert_mistake("total = \"/meta/total\"", "total = \"/meta~2total\"", "http.pagination.total:");
}

#[test]
fn an_invalid_jsonpath_is_named_on_its_line() {
    assert_mistake(
        "path = \"/data\"",
        "path = \"$.data[\"",
        "http.items.path: `$.data[` is not a JSONPath query",
    );
}

#[test]
fn an_unknown_request_variable_is_named_on_its_line() {
    assert_mistake(
        "limit = \"{page_size}\"",
        "limit = \"{pagesize}\"",
        "http.request.query.limit: unknown variable `{pagesize}`",
    );
}

#[test]
fn a_bad_time_format_is_named_on_its_line() {
    assert_mistake(
        "after = \"{window.start}\"",
        "after = \"{window.start:epoch}\"",
        "unknown time format `epoch`",
    );
}

#[test]
fn an_item_template_without_a_field_is_named_on_its_line() {
    assert_mistake(
        "description = \"A {/token_type|CanaryGuard} canary token was triggered.\"",
        "description = \"A {token_type} canary token\"",
        "http.fields.description: `{token_type}`",
    );
}

#[test]
fn an_unknown_key_is_named_on_its_line() {
    assert_mistake("method = \"GET\"", "methd = \"GET\"", "http.request.methd: unknown field `methd`");
}

#[test]
fn an_unknown_method_and_a_get_body_are_refused() {
    assert_mistake("method = \"GET\"", "method = \"PUT\"", "http.request.method: `PUT` is not GET or POST");
    assert_mistake(
        "method = \"GET\"",
        "method = \"GET\"\nbody = { a = 1 }",
        "http.request.body: a body is only sent with method = \"POST\"",
    );
}

#[test]
fn an_unknown_severity_is_named_on_its_line() {
    let (message, _, _) = mistake("crypto_btc = \"critical\"", "crypto_btc = \"severe\"");
    assert!(message.contains("http.fields") && message.contains("severe"), "{message}");
}

#[test]
fn a_missing_section_and_a_missing_definition_are_named() {
    let (message, _, _) = mistake("[source.http.fields]", "[source.http.unused]");
    assert!(
        message.contains("unknown field `unused`") || message.contains("[source.http.fields]"),
        "{message}"
    );
    let text = CANARYGUARD.split("[source.http]").next().unwrap();
    let err = crate::registry::parse(text, "defs.toml").unwrap_err().to_string();
    assert!(err.contains("needs a [source.http] table"), "{err}");
}

#[test]
fn a_scheme_needs_its_variable() {
    let (message, _, _) = mistake("page = \"{page}\", ", "");
    assert!(message.contains("this scheme counts pages: use `{page}`"), "{message}");
}

const THINKST: &str = include_str!("../../../config/http/thinkst_canary.toml");
const RED_CANARY: &str = include_str!("../../../config/http/red_canary.toml");

fn built(v: &HttpSource, plan: &HttpPlan, at: &Position) -> reqwest::Request {
    let key = Credential::from_secret("s3cr3t".into());
    v.request(&Client::new(), plan, at, &key).build().unwrap()
}

#[test]
fn an_id_walk_sends_its_window_start_only_on_a_new_sources_first_walk() {
    use chrono::TimeZone;
    let v = super::super::instantiate::<HttpSource>(&source(THINKST)).unwrap();
    let now = Utc.with_ymd_and_hms(2026, 3, 1, 12, 0, 0).unwrap();
    let plan = v.plan(None, now).unwrap();
    let req = built(&v, &plan, &Position::Start);
    assert_eq!(req.url().path(), "/api/v1/incidents/all");
    assert_eq!(
        req.url().query(),
        Some("incidents_since=0&limit=100&newer_than=2026-02-28-12%3A00%3A00"),
        "lookback 24h by default"
    );
    assert_eq!(req.headers()["x-canary-auth-token"], "s3cr3t");
    assert!(req.headers()["x-canary-auth-token"].is_sensitive());
    let plan = v.plan(Some("152"), now).unwrap();
    assert_eq!(built(&v, &plan, &Position::Start).url().query(), Some("incidents_since=152&limit=100"));
    let next = built(&v, &plan, &Position::Cursor("MTUz==".into()));
    assert_eq!(next.url().query(), Some("cursor=MTUz%3D%3D"), "later pages send the cursor alone");
    assert_eq!(v.finish(&plan, Some(160)).watermark, "160");
    assert_eq!(v.finish(&plan, None).watermark, "152");
}

#[test]
fn the_definitions_throttle_statuses_and_ocsf_product_are_the_sources() {
    let v = super::super::instantiate::<HttpSource>(&source(RED_CANARY)).unwrap();
    assert_eq!(v.throttle_statuses(), &[406]);
    assert_eq!(v.ocsf().name, "Red Canary MDR");
    assert_eq!(v.ocsf().vendor_name, "Red Canary");
    let key = Credential::from_secret("k".into());
    let plan = v.plan(None, Utc::now()).unwrap();
    let own = Position::Link("https://acme.my.redcanary.co/openapi/v3/detections?page=2".into());
    let foreign = Position::Link("https://evil.example/openapi/v3/detections?page=2".into());
    assert!(
        v.request(&Client::new(), &plan, &own, &key).build().unwrap().headers().contains_key("x-api-key")
    );
    assert!(
        !v.request(&Client::new(), &plan, &foreign, &key)
            .build()
            .unwrap()
            .headers()
            .contains_key("x-api-key"),
        "a stored link to another origin never gets the key"
    );
}

#[test]
fn query_and_basic_auth() {
    let text = CANARYGUARD.replace("type = \"bearer\"", "type = \"query\"\nname = \"api_key\"");
    let v = super::super::instantiate::<HttpSource>(&source(&text)).unwrap();
    let plan = v.plan(None, Utc::now()).unwrap();
    let req = built(&v, &plan, &Position::Page(2));
    assert!(req.url().query().unwrap().ends_with("&api_key=s3cr3t"), "{:?}", req.url().query());
    assert!(req.url().query().unwrap().starts_with("after="));
    let text = CANARYGUARD.replace("type = \"bearer\"", "type = \"basic\"\nusername = \"svc\"");
    let v = super::super::instantiate::<HttpSource>(&source(&text)).unwrap();
    let req = built(&v, &plan, &Position::Page(1));
    assert_eq!(req.headers()["authorization"], "Basic c3ZjOnMzY3IzdA==");
    assert!(req.headers()["authorization"].is_sensitive());
}

#[test]
fn a_post_body_is_templated_with_typed_numbers() {
    let text = CANARYGUARD.replace(
        "method = \"GET\"",
        "method = \"POST\"\nbody = { search = { from = \"{window.start:unix}\", size = \"{page_size}\", label = \"p{page}\", cursor = \"{cursor}\" } }",
    );
    let v = super::super::instantiate::<HttpSource>(&source(&text)).unwrap();
    let plan = v.plan(None, Utc::now()).unwrap();
    let req = built(&v, &plan, &Position::Page(3));
    assert_eq!(req.method(), reqwest::Method::POST);
    let body: Value = serde_json::from_slice(req.body().unwrap().as_bytes().unwrap()).unwrap();
    assert!(body["search"]["from"].is_i64(), "{body}");
    assert_eq!(body["search"]["size"], 100);
    assert_eq!(body["search"]["label"], "p3");
    assert!(body["search"].get("cursor").is_none(), "an unset variable leaves its key out");
}

fn ctx() -> NormalizeContext<'static> {
    NormalizeContext::new("acme", Utc::now())
}

#[test]
fn an_item_maps_field_by_field_with_the_vendor_values_kept() {
    let v = super::super::instantiate::<HttpSource>(&source(RED_CANARY)).unwrap();
    let item = serde_json::json!({
        "id": 741, "hostname": "victim", "username": "rem",
        "attributes": {
            "headline": "Riskware", "confirmed_at": "2019-12-25T02:37:41.311Z", "severity": "LOW",
            "last_activity_seen_at": "2019-12-25T03:22:26.494Z", "summary": "Found.",
            "classification": {"superclassification": "Unwanted Software"},
        },
        "relationships": {"affected_endpoint": {"data": {"network_addresses": ["10.0.0.1", "nope"]}}},
        "links": {"self": {"href": "https://acme.my.redcanary.co/detections/741"}}
    });
    let n = v.normalize(&item, &ctx()).unwrap();
    let e = &n.event;
    assert_eq!((e.native_id.as_str(), e.revision.as_str()), ("741", "2019-12-25T03:22:26.494Z"));
    assert_eq!(e.severity.level, crate::event::SeverityLevel::Low);
    assert_eq!(e.severity.vendor.as_deref(), Some("LOW"), "the vendor value is kept");
    assert_eq!(e.status.state, crate::event::StatusState::New, "the default");
    assert_eq!(e.entities.ips.len(), 1, "an unparsable address is dropped");
    assert_eq!(e.entities.hosts[0].hostname.as_deref(), Some("victim"));
    assert_eq!(e.tags, ["classification:Unwanted Software"]);
    assert_eq!(e.console_url.as_deref(), Some("https://acme.my.redcanary.co/detections/741"));
    assert_eq!(e.source.vendor, "http");
    assert_eq!(e.raw, item);
    assert_eq!(n.item_time, e.created_at);
}

#[test]
fn items_without_id_time_or_object_shape_are_dead_letters_with_a_reason() {
    let v = super::super::instantiate::<HttpSource>(&source(CANARYGUARD)).unwrap();
    let reason = |item: Value| v.normalize(&item, &ctx()).unwrap_err().0;
    assert!(reason(serde_json::json!({"triggered_at": "2026-03-27T08:15:42Z"})).contains("fields.id"));
    assert!(reason(serde_json::json!({"id": "a", "triggered_at": "soon"})).contains("/triggered_at"));
    assert!(reason(serde_json::json!("a string")).contains("not a JSON object"));
    let v = super::super::instantiate::<HttpSource>(&source(THINKST)).unwrap();
    let item = serde_json::json!({"id": "i", "description": {"created": "1720684078"}});
    assert!(reason_of(&v, item).contains("fields.revision"), "the revision is the updated_id");
}

fn reason_of(v: &HttpSource, item: Value) -> String {
    v.normalize(&item, &ctx()).unwrap_err().0
}

#[test]
fn a_definition_on_another_vendor_is_refused() {
    let text = CANARYGUARD.replacen("vendor = \"http\"", "vendor = \"canaryguard\"", 1);
    let err = crate::registry::parse(&text, "defs.toml").unwrap_err().to_string();
    assert!(err.contains("only read by vendor = \"http\""), "{err}");
}
