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
