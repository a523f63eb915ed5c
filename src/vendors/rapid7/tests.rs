//! Rapid7 requests and page parsing.

use chrono::TimeZone;

use super::*;

fn source(extra: &str) -> SourceConfig {
    let mut config = crate::registry::parse(
        &format!(
            "[[source]]\nvendor = \"rapid7\"\nname = \"t\"\ncredential = {{ env = \"X\" }}\npage_size = 250\nlag = \"30s\"\noverlap = \"10m\"\n{extra}"
        ),
        "t.toml",
    )
    .unwrap();
    config.sources.remove(0)
}

fn vendor(extra: &str) -> Rapid7 {
    crate::vendors::instantiate::<Rapid7>(&source(extra)).unwrap()
}

fn plan(v: &Rapid7) -> TimeWindow {
    let now = Utc.with_ymd_and_hms(2026, 3, 1, 12, 0, 0).unwrap();
    v.plan(Some("2026-03-01T11:00:00Z"), now).unwrap()
}

fn key() -> Credential {
    Credential::from_secret("r7-key".to_owned().into())
}

#[test]
fn the_region_gives_the_base_url_and_base_url_overrides_it() {
    let v = vendor("[source.options]\nregion = \"eu\"\n");
    assert_eq!(v.base_url.as_str(), "https://eu.api.insight.rapid7.com/");
    let v = vendor("base_url = \"http://127.0.0.1:9/r7\"\n[source.options]\nregion = \"eu\"\n");
    assert_eq!(v.base_url.as_str(), "http://127.0.0.1:9/r7");
}

#[test]
fn every_region_url_is_https() {
    for region in ["us", "us2", "us3", "eu", "ca", "au", "ap"] {
        let v = vendor(&format!("[source.options]\nregion = \"{region}\"\n"));
        assert_eq!(v.base_url.scheme(), "https", "{region}: {}", v.base_url);
        assert!(crate::config::check_transport(&v.base_url, false).is_ok());
    }
}

#[test]
fn without_region_or_base_url_the_source_is_refused_naming_both() {
    let err = crate::registry::parse(
        "[[source]]\nvendor = \"rapid7\"\nname = \"t\"\ncredential = { env = \"X\" }\n",
        "t.toml",
    )
    .unwrap_err()
    .to_string();
    assert!(err.contains("region") && err.contains("base_url"), "{err}");
    let err = crate::registry::parse(
        "[[source]]\nvendor = \"rapid7\"\nname = \"t\"\ncredential = { env = \"X\" }\n[source.options]\nregion = \"mars\"\n",
        "t.toml",
    )
    .unwrap_err()
    .to_string();
    assert!(err.contains("mars") && err.contains("us2"), "{err}");
}

#[test]
fn an_alerts_request_posts_the_documented_search() {
    let v = vendor("[source.options]\nregion = \"us\"\n");
    assert_eq!(v.kind(), Kind::Alert);
    let request = v.request(&Client::new(), &plan(&v), &Position::Page(2), &key()).build().unwrap();
    assert_eq!(request.method(), "POST");
    assert_eq!(
        request.url().as_str(),
        "https://us.api.insight.rapid7.com/idr/at/alerts/ops/search?index=2&size=100"
    );
    assert_eq!(request.headers()["accept-version"], "strong-force-preview");
    assert_eq!(request.headers()["x-api-key"], "r7-key");
    assert!(request.headers()["x-api-key"].is_sensitive());
    let body: Value = serde_json::from_slice(request.body().unwrap().as_bytes().unwrap()).unwrap();
    assert_eq!(
        body,
        json!({
            "search": { "start_time": "2026-03-01T10:50:00.000Z", "end_time": "2026-03-01T11:59:30.000Z" },
            "sorts": [{ "field_id": "created_at", "order": "ASCENDING_NULLS_LAST" }],
        })
    );
}

#[test]
fn an_investigations_request_gets_the_sorted_window() {
    let v = vendor("[source.options]\nregion = \"ap\"\nendpoint = \"investigations\"\n");
    assert_eq!(v.kind(), Kind::Investigation);
    let request = v.request(&Client::new(), &plan(&v), &Position::Page(0), &key()).build().unwrap();
    assert_eq!(request.method(), "GET");
    assert_eq!(request.url().path(), "/idr/v2/investigations");
    let query: Vec<(String, String)> =
        request.url().query_pairs().map(|(k, v)| (k.into_owned(), v.into_owned())).collect();
    assert_eq!(
        query,
        [
            ("start_time", "2026-03-01T10:50:00.000Z"),
            ("end_time", "2026-03-01T11:59:30.000Z"),
            ("index", "0"),
            ("size", "100"),
            ("sort", "created_time,ASC"),
        ]
        .map(|(k, v)| (k.to_owned(), v.to_owned()))
    );
    assert_eq!(request.headers()["accept-version"], "investigations-preview");
}

#[test]
fn validate_is_a_get_with_the_key() {
    let v = vendor("base_url = \"https://r7.example/prefix\"\n");
    let request = v.validate_request(&Client::new(), &key()).unwrap().build().unwrap();
    assert_eq!(request.url().as_str(), "https://r7.example/prefix/validate");
    assert_eq!(request.headers()["x-api-key"], "r7-key");
}

#[test]
fn alert_pages_end_on_the_last_index_flag_or_the_item_total() {
    let v = vendor("[source.options]\nregion = \"us\"\n");
    let page = v
        .parse_page(br#"{"rrns":[],"alerts":[{"rrn":"a"}],"metadata":{"index":0,"size":2,"items_in_index":1,"total_items":8425,"is_last_index":false},"aggregates":[],"region_failures":[]}"#)
        .unwrap();
    assert_eq!(page.items.len(), 1);
    assert_eq!(page.continuation, Continuation::IndexPages { total_pages: Some(4213), is_last: Some(false) });
    let page = v
        .parse_page(br#"{"alerts":[{"rrn":"a"}],"metadata":{"index":0,"size":20,"total_items":21}}"#)
        .unwrap();
    assert_eq!(page.continuation, Continuation::IndexPages { total_pages: Some(2), is_last: None });
    assert!(matches!(
        v.parse_page(br#"{"alerts":[],"metadata":{"index":0}}"#),
        Err(PageError::Shape(m)) if m.contains("is_last_index")
    ));
    assert!(matches!(
        v.parse_page(br#"{"data":[]}"#),
        Err(PageError::Shape(m)) if m.contains("alerts")
    ));
}

#[test]
fn a_search_that_failed_in_a_region_is_an_error_not_a_short_page() {
    let v = vendor("[source.options]\nregion = \"us\"\n");
    let err = v
        .parse_page(br#"{"alerts":[{"rrn":"a"}],"metadata":{"is_last_index":true},"region_failures":[{"region":"eu1"}]}"#)
        .unwrap_err();
    assert!(matches!(&err, PageError::Vendor(m) if m.contains("eu1")), "{err}");
}

#[test]
fn investigation_pages_read_total_pages_and_vendor_messages() {
    let v = vendor("[source.options]\nregion = \"us\"\nendpoint = \"investigations\"\n");
    let page = v
        .parse_page(br#"{"data":[{"rrn":"a"},{"rrn":"b"}],"metadata":{"index":0,"size":2,"total_pages":2,"total_data":3}}"#)
        .unwrap();
    assert_eq!(page.continuation, Continuation::IndexPages { total_pages: Some(2), is_last: None });
    assert_eq!(
        v.parse_page(br#"{"message":"Invalid sort","correlation_id":"c"}"#).unwrap_err(),
        PageError::Vendor("Invalid sort".into())
    );
    assert!(matches!(v.parse_page(br#"{"data":[],"metadata":{"index":0}}"#), Err(PageError::Shape(_))));
    assert!(matches!(v.parse_page(b"[1"), Err(PageError::Json(_))));
}
