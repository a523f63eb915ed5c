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

use std::borrow::Cow;
use std::collections::HashMap;
use std::net::IpAddr;

use serde::Serialize;
use serde_json::{Map, Value, json};

use crate::event::{Entities, Geo, Host, Role};

// Typed, borrowing the event's strings: a finding is serialized once as it
// is published, and building `Value` trees of owned keys for it first cost
// 7 to 9 % of an OCSF backfill's instructions. The fields of each type
// are in the order a `Value` object (sorted keys) wrote them.

/// What the entities became.
#[derive(Debug, Default)]
pub(super) struct Mapped<'a> {
    pub device: Option<Device<'a>>,
    pub evidences: Vec<Evidence<'a>>,
    pub observables: Vec<Observable<'a>>,
    pub unmapped: Map<String, Value>,
}

/// An OCSF `observable`.
#[derive(Debug, Serialize)]
pub(super) struct Observable<'a> {
    #[serde(skip_serializing_if = "Option::is_none")]
    name: Option<&'static str>,
    #[serde(rename = "type")]
    type_name: &'static str,
    type_id: u8,
    value: Cow<'a, str>,
}

fn observable<'a>(
    name: Option<&'static str>,
    type_id: u8,
    type_name: &'static str,
    value: impl Into<Cow<'a, str>>,
) -> Observable<'a> {
    Observable { name, type_name, type_id, value: value.into() }
}

/// An OCSF `device`.
#[derive(Debug, Serialize)]
pub(super) struct Device<'a> {
    #[serde(skip_serializing_if = "Option::is_none")]
    hostname: Option<&'a str>,
    #[serde(skip_serializing_if = "Option::is_none")]
    ip: Option<&'a str>,
    #[serde(skip_serializing_if = "Option::is_none")]
    name: Option<&'a str>,
    #[serde(rename = "type")]
    type_name: &'static str,
    type_id: u8,
    #[serde(skip_serializing_if = "Option::is_none")]
    uid: Option<&'a str>,
}

/// One `evidences[]` entry: a device, an endpoint (with the HTTP request
/// of its user agent), a user or a URL.
#[derive(Debug, Default, Serialize)]
pub(super) struct Evidence<'a> {
    #[serde(skip_serializing_if = "Option::is_none")]
    device: Option<Device<'a>>,
    #[serde(skip_serializing_if = "Option::is_none")]
    dst_endpoint: Option<Endpoint<'a>>,
    #[serde(skip_serializing_if = "Option::is_none")]
    http_request: Option<HttpRequest<'a>>,
    #[serde(skip_serializing_if = "Option::is_none")]
    src_endpoint: Option<Endpoint<'a>>,
    #[serde(skip_serializing_if = "Option::is_none")]
    url: Option<Url<'a>>,
    #[serde(skip_serializing_if = "Option::is_none")]
    user: Option<Name<'a>>,
}

#[derive(Debug, Serialize)]
pub(super) struct Endpoint<'a> {
    ip: String,
    #[serde(skip_serializing_if = "Option::is_none")]
    location: Option<Location<'a>>,
}

#[derive(Debug, Serialize)]
pub(super) struct HttpRequest<'a> {
    user_agent: &'a str,
}

#[derive(Debug, Serialize)]
pub(super) struct Url<'a> {
    url_string: &'a str,
}

#[derive(Debug, Serialize)]
pub(super) struct Name<'a> {
    name: &'a str,
}

/// An OCSF `location`.
#[derive(Debug, Serialize)]
pub(super) struct Location<'a> {
    #[serde(skip_serializing_if = "Option::is_none")]
    city: Option<&'a str>,
    #[serde(skip_serializing_if = "Option::is_none")]
    country: Option<&'a str>,
    #[serde(skip_serializing_if = "Option::is_none")]
    lat: Option<f64>,
    #[serde(skip_serializing_if = "Option::is_none")]
    long: Option<f64>,
    #[serde(skip_serializing_if = "Option::is_none")]
    region: Option<&'a str>,
}

/// Where a device is put: the finding's `device` or an evidence's.
#[derive(Clone, Copy)]
enum DevicePath {
    Device,
    Evidence,
}

impl DevicePath {
    /// The observable names of the device's hostname, uid and ip.
    fn names(self) -> [&'static str; 3] {
        match self {
            DevicePath::Device => ["device.hostname", "device.uid", "device.ip"],
            DevicePath::Evidence => {
                ["evidences.device.hostname", "evidences.device.uid", "evidences.device.ip"]
            }
        }
    }
}

/// An OCSF `device` of `host`, with the observables of it at `path`;
/// `None` when the host names nothing OCSF can hold.
fn device<'a>(host: &'a Host, path: DevicePath, observables: &mut Vec<Observable<'a>>) -> Option<Device<'a>> {
    let [hostname_at, uid_at, ip_at] = path.names();
    let hostname = host.hostname.as_deref();
    let uid = host.id.as_deref();
    let ip = host.ips.first().map(String::as_str);
    if let Some(name) = hostname {
        observables.push(observable(Some(hostname_at), 1, "Hostname", name));
    }
    if let Some(id) = uid {
        observables.push(observable(Some(uid_at), 47, "Device Object: uid", id));
    }
    if let Some(ip) = ip {
        observables.push(observable(Some(ip_at), 2, "IP Address", ip));
    }
    if hostname.is_none() && uid.is_none() && ip.is_none() {
        return None;
    }
    Some(Device { hostname, ip, name: hostname, type_name: "Unknown", type_id: 0, uid })
}

/// An OCSF `location`, if the geolocation has one of the attributes OCSF
/// requires (city, country, region).
fn location(geo: &Geo) -> Option<Location<'_>> {
    if geo.city.is_none() && geo.country.is_none() && geo.region.is_none() {
        return None;
    }
    Some(Location {
        city: geo.city.as_deref(),
        country: geo.country.as_deref(),
        lat: geo.lat,
        long: geo.lon,
        region: geo.region.as_deref(),
    })
}

pub(super) fn map(entities: &Entities) -> Mapped<'_> {
    let mut m = Mapped::default();
    let main = entities.hosts.iter().position(|h| h.role == Role::Target).unwrap_or(0);
    let mut device_ip = None;
    for (i, host) in entities.hosts.iter().enumerate() {
        if i == main {
            m.device = device(host, DevicePath::Device, &mut m.observables);
            device_ip = host.ips.first().map(String::as_str);
        } else if let Some(d) = device(host, DevicePath::Evidence, &mut m.observables) {
            m.evidences.push(Evidence { device: Some(d), ..Evidence::default() });
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
        let address = crate::event::ip_text(&ip.address);
        match ip.role {
            Role::Source => {
                let geo = geo_of.get(&ip.address).copied();
                let location = geo.and_then(|g| location(&entities.geo[g]));
                if location.is_some()
                    && let Some(g) = geo
                {
                    placed_geo[g] = true;
                }
                first_source.get_or_insert(m.evidences.len());
                m.observables.push(observable(
                    Some("evidences.src_endpoint.ip"),
                    2,
                    "IP Address",
                    address.clone(),
                ));
                m.evidences.push(Evidence {
                    src_endpoint: Some(Endpoint { ip: address, location }),
                    ..Evidence::default()
                });
            }
            Role::Target if device_ip == Some(address.as_str()) => {}
            Role::Target => {
                m.observables.push(observable(
                    Some("evidences.dst_endpoint.ip"),
                    2,
                    "IP Address",
                    address.clone(),
                ));
                m.evidences.push(Evidence {
                    dst_endpoint: Some(Endpoint { ip: address, location: None }),
                    ..Evidence::default()
                });
            }
            Role::Related => m.observables.push(observable(None, 2, "IP Address", address)),
        }
    }

    for user in &entities.users {
        m.evidences.push(Evidence { user: Some(Name { name: &user.name }), ..Evidence::default() });
        m.observables.push(observable(Some("evidences.user.name"), 4, "User Name", user.name.as_str()));
    }
    for url in &entities.urls {
        m.evidences.push(Evidence { url: Some(Url { url_string: &url.url }), ..Evidence::default() });
        m.observables.push(observable(Some("evidences.url.url_string"), 6, "URL String", url.url.as_str()));
    }

    let mut agents = entities.user_agents.iter();
    if let Some(at) = first_source
        && let Some(agent) = agents.next()
        && let Some(evidence) = m.evidences.get_mut(at)
    {
        evidence.http_request = Some(HttpRequest { user_agent: agent });
        m.observables.push(observable(
            Some("evidences.http_request.user_agent"),
            16,
            "HTTP User-Agent",
            agent.as_str(),
        ));
    }
    let rest: Vec<&String> = agents.collect();
    for agent in &rest {
        m.observables.push(observable(None, 16, "HTTP User-Agent", agent.as_str()));
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
