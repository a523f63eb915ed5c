//! v1 entities → OCSF `device`, `evidences`, `observables` (and `unmapped`
//! for what has no OCSF home), so a SIEM can pivot on every IP, host name,
//! user, URL and user agent the vendor named.
//!
//! - the first target host (else the first host) is the finding's `device`;
//!   other hosts are `evidences[].device`;
//! - source IPs are `evidences[].src_endpoint` (with their geolocation as
//!   `location` when the vendor ties one to the address), target IPs
//!   `evidences[].dst_endpoint`, users `evidences[].user`, URLs
//!   `evidences[].url`; a related IP (no role) only an observable;
//! - user agents go into the first source endpoint's evidence as
//!   `http_request.user_agent` (OCSF accepts no evidence holding only an
//!   HTTP request), the rest are observables and `unmapped.user_agents`;
//! - every one of them is also an `observables[]` entry whose `name` is the
//!   attribute path it was put at.

use std::collections::HashMap;
use std::net::IpAddr;

use serde_json::{Map, Value, json};

use crate::event::{Entities, Geo, Host, Role};

/// What the entities became.
#[derive(Debug, Default)]
pub(super) struct Mapped {
    pub device: Option<Value>,
    pub evidences: Vec<Value>,
    pub observables: Vec<Value>,
    pub unmapped: Map<String, Value>,
}

fn observable(name: Option<&str>, type_id: u8, type_name: &str, value: &str) -> Value {
    let mut o = Map::new();
    if let Some(name) = name {
        o.insert("name".into(), json!(name));
    }
    o.insert("type_id".into(), json!(type_id));
    o.insert("type".into(), json!(type_name));
    o.insert("value".into(), json!(value));
    Value::Object(o)
}

/// An OCSF `device` of `host`, with the observables of it at `path`;
/// `None` when the host names nothing OCSF can hold.
fn device(host: &Host, path: &str, observables: &mut Vec<Value>) -> Option<Value> {
    let mut d = Map::new();
    if let Some(name) = &host.hostname {
        d.insert("hostname".into(), json!(name));
        d.insert("name".into(), json!(name));
        observables.push(observable(Some(&format!("{path}.hostname")), 1, "Hostname", name));
    }
    if let Some(id) = &host.id {
        d.insert("uid".into(), json!(id));
        observables.push(observable(Some(&format!("{path}.uid")), 47, "Device Object: uid", id));
    }
    if let Some(ip) = host.ips.first() {
        d.insert("ip".into(), json!(ip));
        observables.push(observable(Some(&format!("{path}.ip")), 2, "IP Address", ip));
    }
    if d.is_empty() {
        return None;
    }
    d.insert("type_id".into(), json!(0));
    d.insert("type".into(), json!("Unknown"));
    Some(Value::Object(d))
}

/// An OCSF `location`, if the geolocation has one of the attributes OCSF
/// requires (city, country, region).
fn location(geo: &Geo) -> Option<Value> {
    if geo.city.is_none() && geo.country.is_none() && geo.region.is_none() {
        return None;
    }
    let mut l = Map::new();
    for (key, value) in [("city", &geo.city), ("country", &geo.country), ("region", &geo.region)] {
        if let Some(v) = value {
            l.insert(key.into(), json!(v));
        }
    }
    if let Some(lat) = geo.lat {
        l.insert("lat".into(), json!(lat));
    }
    if let Some(lon) = geo.lon {
        l.insert("long".into(), json!(lon));
    }
    Some(Value::Object(l))
}

pub(super) fn map(entities: &Entities) -> Mapped {
    let mut m = Mapped::default();
    let main = entities.hosts.iter().position(|h| h.role == Role::Target).unwrap_or(0);
    let mut device_ip = None;
    for (i, host) in entities.hosts.iter().enumerate() {
        if i == main {
            m.device = device(host, "device", &mut m.observables);
            device_ip = host.ips.first().cloned();
        } else if let Some(d) = device(host, "evidences.device", &mut m.observables) {
            m.evidences.push(json!({ "device": d }));
        }
    }

    let mut placed_geo = vec![false; entities.geo.len()];
    // The first geolocation tied to each address, found once: looking it up
    // in the list for every address would cost addresses × locations.
    let mut geo_of: HashMap<IpAddr, usize> = HashMap::new();
    for (i, geo) in entities.geo.iter().enumerate() {
        if let Some(ip) = geo.ip {
            geo_of.entry(ip).or_insert(i);
        }
    }
    let mut first_source = None;
    for ip in &entities.ips {
        let address = ip.address.to_string();
        match ip.role {
            Role::Source => {
                let mut endpoint = Map::new();
                endpoint.insert("ip".into(), json!(address));
                let geo = geo_of.get(&ip.address).copied();
                if let Some(loc) = geo.and_then(|g| location(&entities.geo[g])) {
                    endpoint.insert("location".into(), loc);
                    if let Some(g) = geo {
                        placed_geo[g] = true;
                    }
                }
                first_source.get_or_insert(m.evidences.len());
                m.evidences.push(json!({ "src_endpoint": endpoint }));
                m.observables.push(observable(Some("evidences.src_endpoint.ip"), 2, "IP Address", &address));
            }
            Role::Target if device_ip.as_deref() == Some(address.as_str()) => {}
            Role::Target => {
                m.evidences.push(json!({ "dst_endpoint": { "ip": address } }));
                m.observables.push(observable(Some("evidences.dst_endpoint.ip"), 2, "IP Address", &address));
            }
            Role::Related => m.observables.push(observable(None, 2, "IP Address", &address)),
        }
    }

    for user in &entities.users {
        m.evidences.push(json!({ "user": { "name": user.name } }));
        m.observables.push(observable(Some("evidences.user.name"), 4, "User Name", &user.name));
    }
    for url in &entities.urls {
        m.evidences.push(json!({ "url": { "url_string": url.url } }));
        m.observables.push(observable(Some("evidences.url.url_string"), 6, "URL String", &url.url));
    }

    let mut agents = entities.user_agents.iter();
    if let Some(at) = first_source
        && let Some(agent) = agents.next()
        && let Some(evidence) = m.evidences[at].as_object_mut()
    {
        evidence.insert("http_request".into(), json!({ "user_agent": agent }));
        m.observables.push(observable(
            Some("evidences.http_request.user_agent"),
            16,
            "HTTP User-Agent",
            agent,
        ));
    }
    let rest: Vec<&String> = agents.collect();
    for agent in &rest {
        m.observables.push(observable(None, 16, "HTTP User-Agent", agent));
    }
    if !rest.is_empty() {
        m.unmapped.insert("user_agents".into(), json!(rest));
    }

    let geo: Vec<&Geo> =
        entities.geo.iter().zip(&placed_geo).filter(|(_, placed)| !**placed).map(|(g, _)| g).collect();
    if !geo.is_empty() {
        m.unmapped.insert("geo".into(), json!(geo));
    }
    m
}
