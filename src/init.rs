//! `alertd init [--vendor V]... [--nats URL]`: a commented configuration to
//! start from, with one `[[source]]` per chosen vendor.
//!
//! The file is assembled from the registry: the settings every source has
//! are written here, each vendor's own (`base_url` when it has no public
//! endpoint, `[source.options]`) come from its `Vendor::CONFIG_EXAMPLE`, so
//! no vendor knowledge lives in this module. Credentials are `{ systemd =
//! "…" }` placeholders: the file holds no key. What it prints passes
//! `alertd check-config` as it is (tests/cli.rs checks every vendor).

use crate::registry::VendorEntry;

/// The NATS server a configuration points at when none is given.
pub const DEFAULT_NATS_URL: &str = "nats://127.0.0.1:4222";

/// The configuration for `vendors` (each once, in the order given),
/// publishing to `nats_url` (default [`DEFAULT_NATS_URL`]).
pub fn render(vendors: &[&VendorEntry], nats_url: Option<&str>) -> String {
    let mut chosen: Vec<&VendorEntry> = Vec::new();
    for v in vendors {
        if !chosen.iter().any(|c| c.key == v.key) {
            chosen.push(v);
        }
    }
    let names: Vec<&str> = chosen.iter().map(|v| v.name).collect();
    let mut out = format!(
        "\
# alertd configuration, written by `alertd init` (alertd {version}) for {names}.
# Every setting, with its default and bounds, is documented in
# /usr/share/doc/alertd/alertd.example.toml (config/alertd.example.toml in the
# source tree); each vendor's page is in /usr/share/doc/alertd/vendors/.
#
# Next:
#   1. Edit what is marked REQUIRED, the source names, and [nats] url.
#   2. Put each API key where its `credential` says. For {{ systemd = \"NAME\" }}:
#      store it in /etc/alertd/credentials/NAME (mode 0600) and add
#      LoadCredential=NAME:/etc/alertd/credentials/NAME to the unit
#      (`sudo systemctl edit alertd`). Or use {{ env = \"VAR\" }} / {{ file = \"/path\" }}.
#   3. alertd check-config /etc/alertd/alertd.toml   (the file, offline)
#   4. alertd check                                  (NATS, the stream, each key)
#   5. sudo systemctl enable --now alertd

# Where events go: a JetStream stream on this server, created on start if
# missing. Without [nats], events are printed to stdout as JSON lines.
[nats]
url = {url}
# stream = \"ALERTD\"                 # its subjects are \"<subject_prefix>.>\"
# subject_prefix = \"alertd\"         # events on alertd.<vendor>.<source>.<kind>
# formats = [\"alertd\"]              # add \"ocsf\" for OCSF Detection Findings too
# duplicate_window = \"2h\"           # keep it longer than the NATS outages you expect
# user = \"alertd\"                   # if the server needs a login:
# password = {{ systemd = \"nats-password\" }}

# Cursors are kept in a SQLite file: under systemd
# /var/lib/alertd/alertd.sqlite, else ./alertd.sqlite.
# [state]
# path = \"/var/lib/alertd/alertd.sqlite\"

# Prometheus /metrics and /healthz (\"off\" to disable).
# [service]
# listen = \"127.0.0.1:9464\"
",
        version = env!("CARGO_PKG_VERSION"),
        names = names.join(", "),
        url = toml_string(nats_url.unwrap_or(DEFAULT_NATS_URL)),
    );
    for v in chosen {
        let name = format!("{}-prod", v.key.replace('_', "-"));
        out.push_str(&format!(
            "
# {vendor_name} (its page: /usr/share/doc/alertd/vendors/{doc}.md)
[[source]]
vendor = {key}
name = {name}   # unique: the tenant in events and subjects
credential = {{ systemd = {name} }}   # the API key; or {{ env = \"VAR\" }}, {{ file = \"/path\" }}
schedule = \"every 1m\"   # or a crontab line (UTC), e.g. \"*/5 * * * *\"
# initial_lookback = \"24h\"   # how far back the very first poll reaches
# enabled = false            # keep the entry without polling it
",
            vendor_name = v.name,
            doc = v.key.replace('_', "-"),
            key = toml_string(v.key),
            name = toml_string(&name),
        ));
        let example = v.config_example.trim_matches('\n');
        if !example.is_empty() {
            out.push_str(example);
            out.push('\n');
        }
    }
    out
}

/// `s` as a TOML basic string.
fn toml_string(s: &str) -> String {
    toml::Value::String(s.to_owned()).to_string()
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::registry::VENDORS;

    #[test]
    fn every_vendor_alone_and_all_together_parse_as_printed() {
        let all: Vec<&VendorEntry> = VENDORS.iter().collect();
        for chosen in all.iter().map(|v| vec![*v]).chain([all.clone()]) {
            let text = render(&chosen, None);
            let config = crate::registry::parse(&text, "init")
                .unwrap_or_else(|e| panic!("{}: {e}\n{text}", chosen[0].key));
            assert_eq!(config.sources.len(), chosen.len(), "{text}");
            assert_eq!(config.nats.map(|n| n.url.to_string()).as_deref(), Some(DEFAULT_NATS_URL));
        }
    }

    #[test]
    fn a_vendor_named_twice_is_one_source_and_the_url_is_quoted() {
        let v = &VENDORS[0];
        let text = render(&[v, v], Some("nats://h\"x:4222"));
        assert_eq!(text.matches("[[source]]").count(), 1, "{text}");
        let config = crate::registry::parse(&text, "init").unwrap();
        assert_eq!(config.nats.unwrap().url.expose(), "nats://h\"x:4222", "{text}");
    }
}
