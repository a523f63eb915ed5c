//! What an alert's detection rule says: its MITRE codes and the keys it
//! matched on, mapped to ATT&CK techniques and event entities.

use std::net::IpAddr;

use serde_json::Value;

use crate::event::{AttackTechnique, Entities, Geo, Host, IpEntity, Role, UrlEntity, User};
use crate::vendors::fields::{get, strings, text};

/// `rule.mitre_tcodes` mixes technique ids (`T1110`, `T1059.001`) and tactic
/// names (`Credential Access`). Techniques become ATT&CK entries; tactics go
/// to tags, and onto the techniques when there is exactly one of them.
pub(super) fn attack(item: &Value) -> (Vec<AttackTechnique>, Vec<String>) {
    let (ids, tactics): (Vec<String>, Vec<String>) =
        strings(item, "/rule/mitre_tcodes").into_iter().partition(|code| is_technique_id(code));
    let tactic = match tactics.as_slice() {
        [one] => Some(one.clone()),
        _ => None,
    };
    let techniques = ids
        .into_iter()
        .map(|id| AttackTechnique { id: id.to_ascii_uppercase(), name: None, tactic: tactic.clone() })
        .collect();
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
pub(super) fn entities(item: &Value) -> Entities {
    let mut values: Vec<(String, String)> = Vec::new();
    for list in ["/rule_keys_of_interest", "/rule_matching_keys"] {
        if let Some(Value::Array(keys)) = get(item, list) {
            for entry in keys {
                let Some(key) = text(entry, "/key") else {
                    continue;
                };
                for value in strings(entry, "/values") {
                    let pair = (key.to_ascii_lowercase(), value);
                    if !values.contains(&pair) {
                        values.push(pair);
                    }
                }
            }
        }
    }
    let first =
        |keys: &[&str]| values.iter().find(|(k, _)| keys.contains(&k.as_str())).map(|(_, v)| v.clone());
    let mut entities = Entities::default();
    for (key, value) in &values {
        match key.as_str() {
            "source_ip" | "src_ip" | "source_address" => push_ip(&mut entities, value, Role::Source),
            "destination_ip" | "dest_ip" | "dst_ip" | "destination_address" => {
                push_ip(&mut entities, value, Role::Target);
            }
            "account" | "user" | "username" | "source_account"
                if !entities.users.iter().any(|u| &u.name == value) =>
            {
                entities.users.push(User { name: value.clone(), role: Role::Related });
            }
            "hostname" | "host" | "asset" | "source_asset" => entities.hosts.push(Host {
                hostname: Some(value.clone()),
                id: None,
                ips: Vec::new(),
                role: Role::Related,
            }),
            "url" | "destination_url" => {
                entities.urls.push(UrlEntity { url: value.clone(), role: Role::Target })
            }
            _ => {}
        }
    }
    let geo = Geo {
        ip: first(&["source_ip", "src_ip", "source_address"]).and_then(|ip| ip.parse::<IpAddr>().ok()),
        city: first(&["geoip_city"]),
        region: first(&["geoip_region"]),
        country: first(&["geoip_country_code", "geoip_country_name"]),
        lat: None,
        lon: None,
    };
    if geo.city.is_some() || geo.region.is_some() || geo.country.is_some() {
        entities.geo.push(geo);
    }
    entities
}

fn push_ip(entities: &mut Entities, value: &str, role: Role) {
    if let Ok(address) = value.parse::<IpAddr>()
        && !entities.ips.iter().any(|ip| ip.address == address && ip.role == role)
    {
        entities.ips.push(IpEntity { address, role });
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
            techniques.iter().map(|a| (a.id.as_str(), a.tactic.is_none())).collect::<Vec<_>>(),
            vec![("T1059.001", true), ("T1053", true)]
        );
        assert_eq!(tactics, vec!["Execution", "Persistence"]);
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
        let e = entities(&item);
        let ips: Vec<(String, Role)> = e.ips.iter().map(|i| (i.address.to_string(), i.role)).collect();
        assert_eq!(
            ips,
            vec![("203.0.113.9".to_owned(), Role::Source), ("198.51.100.2".to_owned(), Role::Target)]
        );
        assert_eq!(e.users.len(), 1);
        assert_eq!(e.hosts[0].hostname.as_deref(), Some("WS-1"));
        assert_eq!(e.geo[0].city.as_deref(), Some("Lyon"));
        assert_eq!(e.geo[0].ip, Some("203.0.113.9".parse().unwrap()));
        assert!(entities(&json!({})).is_empty());
    }
}
