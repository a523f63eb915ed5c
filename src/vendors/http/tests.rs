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
