//! The simulated console's inventory (Canaries, Canarytokens, services,
//! places) and how incidents are drawn from it, in the feed's stringly
//! typed shapes.

use chrono::{DateTime, Utc};
use rand::Rng;
use rand::rngs::StdRng;
use serde_json::{Map, Value, json};

use crate::sim::state::{hex, pick};

pub(super) const CANARIES: usize = 5;
pub(super) const TOKENS: usize = 4;
pub(super) const FLOCK: (&str, &str) = ("flock:default", "Default Flock");

/// Canary services that raise incidents: (logtype, summary, slug, port).
pub(super) const SERVICES: &[(&str, &str, &str, &str)] = &[
    ("4002", "SSH Login Attempt", "sshlogin", "22"),
    ("3001", "HTTP Login Attempt", "httplogin", "80"),
    ("2000", "FTP Login Attempt", "ftplogin", "21"),
    ("5000", "Shared File Opened", "smbfileopen", "445"),
    ("5003", "Host Port Scan", "hostportscan", "-1"),
];
/// Canarytoken kinds: (type, logtype).
pub(super) const TOKEN_KINDS: &[(&str, &str)] = &[("http", "17000"), ("dns", "16000"), ("aws-id", "17012")];
pub(super) const USERNAMES: &[&str] = &["admin", "root", "azureuser", "backup", "svc_sql", "jsmith"];
pub(super) const PASSWORDS: &[&str] = &["admin", "123456", "Winter2026!", "P@ssw0rd", "letmein"];
pub(super) const REVERSES: &[&str] = &["scanner-7.example.net", "vpn-egress.example.org", ""];
pub(super) const USER_AGENTS: &[&str] = &[
    "curl/8.7.1",
    "Mozilla/5.0 (Windows NT 10.0; Win64; x64) AppleWebKit/537.36 (KHTML, like Gecko) Chrome/124.0 Safari/537.36",
    "python-requests/2.31.0",
];
pub(super) const FILES: &[&str] = &["Q3-Payroll.xlsx", "passwords.docx", "VPN-config.zip"];
/// A place for Canarytoken geoip.
pub(super) struct Place {
    pub(super) city: &'static str,
    /// Name and code.
    pub(super) region: (&'static str, &'static str),
    /// Name, ISO alpha-2 and alpha-3.
    pub(super) country: (&'static str, &'static str, &'static str),
    pub(super) continent: &'static str,
    pub(super) currency: &'static str,
    pub(super) lat_lon: (f64, f64),
    /// Id, abbreviation, name and offset.
    pub(super) timezone: (&'static str, &'static str, &'static str, &'static str),
}

pub(super) const PLACES: &[Place] = &[
    Place {
        city: "Emerainville",
        region: ("Ile-de-France", "J"),
        country: ("France", "FR", "FRA"),
        continent: "EU",
        currency: "EUR",
        lat_lon: (48.81276, 2.62139),
        timezone: ("Europe/Paris", "CEST", "Central European Summer Time", "+02:00"),
    },
    Place {
        city: "Frankfurt am Main",
        region: ("Hesse", "HE"),
        country: ("Germany", "DE", "DEU"),
        continent: "EU",
        currency: "EUR",
        lat_lon: (50.1109, 8.6821),
        timezone: ("Europe/Berlin", "CEST", "Central European Summer Time", "+02:00"),
    },
    Place {
        city: "Ashburn",
        region: ("Virginia", "VA"),
        country: ("United States", "US", "USA"),
        continent: "NA",
        currency: "USD",
        lat_lon: (39.0438, -77.4874),
        timezone: ("America/New_York", "EDT", "Eastern Daylight Time", "-04:00"),
    },
    Place {
        city: "Singapore",
        region: ("Singapore", "01"),
        country: ("Singapore", "SG", "SGP"),
        continent: "AS",
        currency: "SGD",
        lat_lon: (1.3521, 103.8198),
        timezone: ("Asia/Singapore", "+08", "Singapore Standard Time", "+08:00"),
    },
];
/// Documentation prefixes (RFC 5737) so simulated sources never hit real hosts.
pub(super) const IPV4_PREFIXES: &[&str] = &["192.0.2", "198.51.100", "203.0.113"];

/// A deployed Canary.
pub(super) struct Canary {
    pub(super) name: String,
    pub(super) node_id: String,
    pub(super) ip: String,
}

/// A deployed Canarytoken.
pub(super) struct Token {
    pub(super) node_id: String,
    pub(super) memo: String,
    pub(super) kind: (&'static str, &'static str),
}

/// Thinkst's vendor hooks and the console's birds and tokens.
pub(crate) struct ThinkstCanary {
    pub(super) canaries: Vec<Canary>,
    pub(super) tokens: Vec<Token>,
}

impl ThinkstCanary {
    /// Draws the Canaries and Canarytokens; every token kind appears.
    pub(crate) fn new(rng: &mut StdRng) -> Self {
        let canaries = (0..CANARIES)
            .map(|i| Canary {
                name: format!("{}-{:02}", ["fileserver", "nas", "dc", "web"][i % 4], i + 1),
                node_id: format!("000{}", hex(rng, 13)),
                ip: format!("10.20.{}.{}", rng.random_range(0..255), rng.random_range(2..255)),
            })
            .collect();
        let memos = [
            "AWS keys on the build server",
            "Link in the finance wiki",
            "DNS name in the VPN config",
            "Link to generate alert",
        ];
        let tokens = (0..TOKENS)
            .map(|i| Token {
                node_id: hex(rng, 25),
                memo: memos[i % memos.len()].to_owned(),
                kind: TOKEN_KINDS[i % TOKEN_KINDS.len()],
            })
            .collect();
        Self { canaries, tokens }
    }
}

pub(super) fn std_time(t: DateTime<Utc>) -> String {
    t.format("%Y-%m-%d %H:%M:%S UTC+0000").to_string()
}

pub(super) fn rfc1123(t: DateTime<Utc>) -> String {
    t.format("%a, %d %b %Y %H:%M:%S GMT").to_string()
}

/// One event of a Canary service incident, at `t`.
pub(super) fn service_event(rng: &mut StdRng, logtype: &str, t: DateTime<Utc>) -> Value {
    let mut event = match logtype {
        "4002" => {
            json!({"LOCALVERSION": "SSH-2.0-OpenSSH_8.9p1", "PASSWORD": *pick(rng, PASSWORDS),
            "REMOTEVERSION": "SSH-2.0-libssh2_1.10.1_DEV", "USERNAME": *pick(rng, USERNAMES)})
        }
        "3001" => {
            json!({"HOSTNAME": "nas-01.corp.example", "METHOD": "POST", "PASSWORD": *pick(rng, PASSWORDS),
            "PATH": "/index.html", "RESPONSE": 200, "SKIN": "nasLogin",
            "USERAGENT": *pick(rng, USER_AGENTS), "USERNAME": *pick(rng, USERNAMES)})
        }
        "2000" => json!({"USERNAME": *pick(rng, USERNAMES), "PASSWORD": *pick(rng, PASSWORDS)}),
        "5000" => {
            json!({"USER": *pick(rng, USERNAMES), "FILENAME": *pick(rng, FILES), "AUDITACTION": "pread",
            "DOMAIN": "CORP", "LOCALNAME": "FILESERVER", "MODE": "workgroup", "OFFSET": "0",
            "REMOTENAME": "WKS-0042", "SHARENAME": "Documents", "SIZE": "4096",
            "SMBARCH": "Windows 10", "SMBVER": "3.1.1", "STATUS": "ok"})
        }
        _ => json!({"ports": "22,80,443,445,3389"}),
    };
    event["timestamp"] = json!(t.timestamp());
    event["timestamp_std"] = json!(std_time(t));
    event
}

/// One trigger of `token` from `src` at `t`.
pub(super) fn token_event(rng: &mut StdRng, token: &Token, src: &str, t: DateTime<Utc>) -> Value {
    let mut event = Map::new();
    event.insert("canarytoken".into(), json!(token.node_id));
    event.insert("src_host".into(), json!(src));
    event.insert("timestamp".into(), json!(t.timestamp()));
    event.insert("timestamp_std".into(), json!(std_time(t)));
    event.insert("type".into(), json!(token.kind.0));
    match token.kind.0 {
        "dns" => {
            event.insert("hostname".into(), json!(format!("{}.canarytokens.example", token.node_id)));
        }
        _ => {
            event.insert("dst_port".into(), json!(80));
            event.insert("event_name".into(), json!(""));
            event.insert(
                "headers".into(),
                json!({"Accept": "*/*", "Host": "canarytokens.example", "User-Agent": *pick(rng, USER_AGENTS)}),
            );
            let p = pick(rng, PLACES);
            let (tz_id, abbr, tz_name, offset) = p.timezone;
            event.insert(
                "geoip".into(),
                json!({"city": p.city, "continent_code": p.continent, "country": p.country.0,
                    "country_code": p.country.1, "country_code3": p.country.2,
                    "currency_code": p.currency, "host_domain": "", "hostname": "", "ip": src,
                    "is_bogon": false, "is_v4_mapped": false, "is_v6": false,
                    "latitude": p.lat_lon.0, "longitude": p.lat_lon.1,
                    "region": p.region.0, "region_code": p.region.1,
                    "timezone": {"abbr": abbr, "date": t.format("%Y-%m-%d").to_string(), "id": tz_id,
                        "name": tz_name, "offset": offset, "time": t.format("%H:%M:%S%.6f").to_string()},
                    "valid": true}),
            );
            event.insert(
                "ip_blocklist".into(),
                json!({"is_proxy": false, "is_tor": rng.random_bool(0.1), "is_vpn": false}),
            );
            event.insert("request_args".into(), json!({}));
        }
    }
    Value::Object(event)
}
