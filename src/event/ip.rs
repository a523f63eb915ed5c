//! An IP address's canonical text, as `Display` writes it, without
//! `core::fmt` for IPv4: std formats an `Ipv4Addr` through a `Formatter`
//! and a padding buffer, about 1,400 instructions, and alertd writes each
//! address two or three times (the host's `ips`, the event's `ips[]`, the
//! OCSF endpoint): 1.9 % of a Red Canary backfill's instructions. IPv6
//! (rarer, and its canonical form has rules) takes `Display`'s path.

use std::net::{IpAddr, Ipv4Addr};

use serde::Serializer;

/// `ip` as `ip.to_string()` writes it.
pub fn ip_text(ip: &IpAddr) -> String {
    match ip {
        IpAddr::V4(v4) => v4_text(*v4, &mut [0; 15]).to_owned(),
        IpAddr::V6(_) => ip.to_string(),
    }
}

/// `#[serde(serialize_with)]` for an `IpAddr`: what serde writes for it
/// in a human-readable format (its `Display` text).
pub(super) fn serialize<S: Serializer>(ip: &IpAddr, serializer: S) -> Result<S::Ok, S::Error> {
    match ip {
        IpAddr::V4(v4) => serializer.serialize_str(v4_text(*v4, &mut [0; 15])),
        IpAddr::V6(_) => serde::Serialize::serialize(ip, serializer),
    }
}

/// `#[serde(serialize_with)]` for an `Option<IpAddr>` (skipped when
/// `None` by `skip_serializing_if`; a `None` that reaches here is `null`).
pub(super) fn serialize_opt<S: Serializer>(ip: &Option<IpAddr>, serializer: S) -> Result<S::Ok, S::Error> {
    match ip {
        Some(ip) => serialize(ip, serializer),
        None => serializer.serialize_none(),
    }
}

/// Dotted decimal, no leading zeros, in `buf`.
fn v4_text(ip: Ipv4Addr, buf: &mut [u8; 15]) -> &str {
    let mut at = 0;
    for (i, octet) in ip.octets().into_iter().enumerate() {
        if i > 0 {
            buf[at] = b'.';
            at += 1;
        }
        if octet >= 100 {
            buf[at] = b'0' + octet / 100;
            at += 1;
        }
        if octet >= 10 {
            buf[at] = b'0' + octet / 10 % 10;
            at += 1;
        }
        buf[at] = b'0' + octet % 10;
        at += 1;
    }
    // Digits and dots: always ASCII.
    std::str::from_utf8(&buf[..at]).unwrap_or_default()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn every_octet_in_every_place_is_written_as_display_writes_it() {
        for octet in 0..=255u8 {
            for place in 0..4 {
                let mut octets = [1, 20, 255, 7];
                octets[place] = octet;
                let ip = IpAddr::from(octets);
                assert_eq!(ip_text(&ip), ip.to_string());
            }
        }
        for ip in ["0.0.0.0", "255.255.255.255", "::", "::ffff:10.0.0.1", "2001:db8::1", "fe80::1:2:3:4"] {
            let ip: IpAddr = ip.parse().unwrap();
            assert_eq!(ip_text(&ip), ip.to_string());
            let mut ours = Vec::new();
            serialize(&ip, &mut serde_json::Serializer::new(&mut ours)).unwrap();
            assert_eq!(ours, serde_json::to_vec(&ip).unwrap());
        }
    }

    proptest::proptest! {
        #![proptest_config(proptest::test_runner::Config {
            failure_persistence: None,
            ..proptest::test_runner::Config::default()
        })]

        #[test]
        fn any_address_is_written_as_display_writes_it(bits in proptest::num::u32::ANY, v6 in proptest::num::u128::ANY) {
            for ip in [IpAddr::from(Ipv4Addr::from(bits)), IpAddr::from(std::net::Ipv6Addr::from(v6))] {
                proptest::prop_assert_eq!(ip_text(&ip), ip.to_string());
                let mut ours = Vec::new();
                serialize(&ip, &mut serde_json::Serializer::new(&mut ours)).unwrap();
                proptest::prop_assert_eq!(ours, serde_json::to_vec(&ip).unwrap());
            }
        }
    }
}
