//! What an alert's detection rule says: its MITRE codes and the keys it
//! matched on, mapped to ATT&CK techniques and event entities.

use std::net::IpAddr;

use serde_json::Value;

use crate::event::{AttackTechnique, Entities, Geo, Host, IpEntity, Role, UrlEntity, User};
use crate::vendors::bounded::{Capped, Distinct, Dropped};
use crate::vendors::fields::{each_string, get, text};

/// `rule.mitre_tcodes` mixes technique ids (`T1110`, `T1059.001`) and tactic
/// names (`Credential Access`). Techniques become ATT&CK entries; tactics go
/// to tags, and onto the techniques when the list holds exactly one tactic
/// code (a name listed twice is two codes, so no tactic is guessed).
pub(super) fn attack(item: &Value) -> (Capped<AttackTechnique>, Distinct<String>) {
    let mut techniques = Capped::new();
    let mut tactics = Distinct::new();
    let mut tactic_codes = 0_usize;
    for code in each_string(item, "/rule/mitre_tcodes") {
        if is_technique_id(&code) {
            techniques.push(AttackTechnique { id: code.to_ascii_uppercase(), name: None, tactic: None });
        } else {
            tactic_codes += 1;
            tactics.push(code);
        }
    }
    if tactic_codes == 1
        && let [tactic] = tactics.values()
    {
        for technique in techniques.values_mut() {
            technique.tactic = Some(tactic.clone());
        }
    }
    (techniques, tactics)
}

/// `T` + four digits, optionally `.` + three digits.
fn is_technique_id(code: &str) -> bool {
    let code = code.as_bytes();
    let digits = |s: &[u8]| s.iter().all(u8::is_ascii_digit);
    match code {
        [b'T' | b't', rest @ ..] if rest.len() == 4 => digits(rest),
        [b'T' | b't', rest @ ..] if rest.len() == 8 && rest[4] == b'.' => {
            digits(&rest[..4]) && digits(&rest[5..])
        }
        _ => false,
    }
}

/// Entities from the keys the rule matched on and the keys it marks as of
/// interest (`[{key, values[]}]`); keys alertd has no entity for stay in `raw`.
///
/// Each `(key, value)` pair counts once, keys compared in lower case: the
/// same pair in both lists (or twice in one) is one entity. Addresses are
/// one entity per address and role, users one per name; hosts and URLs one
/// per pair (a host named by `hostname` and by `asset` is two hosts, as
/// Rapid7 gave two keys). The geolocation takes the first value of each of
/// its keys. One pass, a hash lookup per value: the lists are the item's,
/// of any length.
pub(super) fn entities(item: &Value, dropped: &mut Dropped) -> Entities {
    let mut ips: Distinct<IpEntity> = Distinct::new();
    let mut users: Distinct<User, String> = Distinct::new();
    let mut hosts: Distinct<Host, (String, String)> = Distinct::new();
    let mut urls: Distinct<UrlEntity, (String, String)> = Distinct::new();
    let mut geo = GeoKeys::default();
    for list in ["/rule_keys_of_interest", "/rule_matching_keys"] {
        let Some(Value::Array(keys)) = get(item, list) else {
            continue;
        };
        for entry in keys {
            let Some(key) = text(entry, "/key") else {
                continue;
            };
            let key = key.to_ascii_lowercase();
            for value in each_string(entry, "/values") {
                match key.as_str() {
                    "source_ip" | "src_ip" | "source_address" => {
                        geo.source_ip.get_or_insert_with(|| value.clone());
                        push_ip(&mut ips, &value, Role::Source);
                    }
                    "destination_ip" | "dest_ip" | "dst_ip" | "destination_address" => {
                        push_ip(&mut ips, &value, Role::Target);
                    }
                    "account" | "user" | "username" | "source_account" => {
                        users.push_keyed(value.clone(), User { name: value, role: Role::Related });
                    }
                    "hostname" | "host" | "asset" | "source_asset" => {
                        let host = Host {
                            hostname: Some(value.clone()),
                            id: None,
                            ips: Vec::new(),
                            role: Role::Related,
                        };
                        hosts.push_keyed((key.clone(), value), host);
                    }
                    "url" | "destination_url" => {
                        let url = UrlEntity { url: value.clone(), role: Role::Target };
                        urls.push_keyed((key.clone(), value), url);
                    }
                    "geoip_city" => {
                        geo.city.get_or_insert(value);
                    }
                    "geoip_region" => {
                        geo.region.get_or_insert(value);
                    }
                    "geoip_country_code" | "geoip_country_name" => {
                        geo.country.get_or_insert(value);
                    }
                    _ => {}
                }
            }
        }
    }
    let mut entities = Entities {
        hosts: hosts.finish("entities.hosts", dropped),
        users: users.finish("entities.users", dropped),
        ips: ips.finish("entities.ips", dropped),
        urls: urls.finish("entities.urls", dropped),
        ..Entities::default()
    };
    if geo.city.is_some() || geo.region.is_some() || geo.country.is_some() {
        entities.geo.push(Geo {
            ip: geo.source_ip.and_then(|ip| ip.parse::<IpAddr>().ok()),
            city: geo.city,
            region: geo.region,
            country: geo.country,
            lat: None,
            lon: None,
        });
    }
    entities
}

/// The first value of each key the geolocation is made of (the source
/// address as written: a first value that is no address means none).
#[derive(Default)]
struct GeoKeys {
    source_ip: Option<String>,
    city: Option<String>,
    region: Option<String>,
    country: Option<String>,
}

fn push_ip(ips: &mut Distinct<IpEntity>, value: &str, role: Role) {
    if let Ok(address) = value.parse::<IpAddr>() {
        ips.push(IpEntity { address, role });
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    #[test]
    fn several_tactics_are_tags_not_guesses() {
        let item = json!({ "rule": { "mitre_tcodes": ["Execution", "Persistence", "t1059.001", "T1053"] } });
        let (techniques, tactics) = attack(&item);
        assert_eq!(
            techniques.values().iter().map(|a| (a.id.as_str(), a.tactic.is_none())).collect::<Vec<_>>(),
            vec![("T1059.001", true), ("T1053", true)]
        );
        assert_eq!(tactics.values(), ["Execution", "Persistence"]);
        assert!(!is_technique_id("T10") && !is_technique_id("T1059.1") && !is_technique_id("Tx059"));
    }

    #[test]
    fn keys_become_entities_once_and_unknown_keys_are_left_out() {
        let item = json!({
            "rule_matching_keys": [
                { "key": "source_ip", "values": ["203.0.113.9", "not an ip"] },
                { "key": "entryType", "values": ["ingress_auth"] }
            ],
            "rule_keys_of_interest": [
                { "key": "source_ip", "values": ["203.0.113.9"] },
                { "key": "destination_ip", "values": ["198.51.100.2"] },
                { "key": "account", "values": ["a@example.com"] },
                { "key": "user", "values": ["a@example.com"] },
                { "key": "hostname", "values": ["WS-1"] },
                { "key": "geoip_city", "values": ["Lyon"] }
            ]
        });
        let e = entities(&item, &mut Dropped::default());
        let ips: Vec<(String, Role)> = e.ips.iter().map(|i| (i.address.to_string(), i.role)).collect();
        assert_eq!(
            ips,
            vec![("203.0.113.9".to_owned(), Role::Source), ("198.51.100.2".to_owned(), Role::Target)]
        );
        assert_eq!(e.users.len(), 1);
        assert_eq!(e.hosts[0].hostname.as_deref(), Some("WS-1"));
        assert_eq!(e.geo[0].city.as_deref(), Some("Lyon"));
        assert_eq!(e.geo[0].ip, Some("203.0.113.9".parse().unwrap()));
        assert!(entities(&json!({}), &mut Dropped::default()).is_empty());
    }
}
