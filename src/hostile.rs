//! One answer through everything that reads vendor bytes, for the property
//! tests and the cargo-fuzz targets (`fuzz/`): [`classify`], then for each
//! of the five vendors (and the declarative `http` vendor with each
//! definition of `config/http/`) `empty_page_for` or `parse_page`, the pagination
//! scheme's next position, `normalize` of every item and the OCSF finding
//! of every event. Not part of alertd's operation; public only so the fuzz
//! crate can call the very code the daemon runs.
//!
//! [`exercise`] returns every message an operator could see on the way
//! (errors of every layer); [`check_message`] says whether one is fit for a
//! log line: bounded, with no control characters.

use std::sync::OnceLock;
use std::time::Duration;

use bytes::Bytes;
use reqwest::StatusCode;
use reqwest::header::HeaderMap;
use url::Url;

use crate::http::{ThrottleSignals, classify};
use crate::vendors::canaryguard::CanaryGuard;
use crate::vendors::catchpoint::Catchpoint;
use crate::vendors::http::HttpSource;
use crate::vendors::rapid7::Rapid7;
use crate::vendors::red_canary::RedCanary;
use crate::vendors::thinkst_canary::ThinkstCanary;
use crate::vendors::{NormalizeContext, Vendor};

/// The longest message [`check_message`] accepts, in characters.
pub const MAX_MESSAGE_CHARS: usize = 1000;

/// The URL the answers are classified as coming from.
pub const ANSWERED_URL: &str = "https://tenant.example/api/v1/alerts";

/// Every vendor, as a source at [`ANSWERED_URL`]'s origin configures it.
struct Vendors {
    canaryguard: CanaryGuard,
    catchpoint: Catchpoint,
    rapid7_alerts: Rapid7,
    rapid7_investigations: Rapid7,
    red_canary: RedCanary,
    thinkst_canary: ThinkstCanary,
    /// One declarative source per definition of `config/http/`.
    definitions: Vec<HttpSource>,
}

/// The shipped definitions of `config/http/`.
const DEFINITIONS: [&str; 5] = [
    include_str!("../config/http/canaryguard.toml"),
    include_str!("../config/http/catchpoint.toml"),
    include_str!("../config/http/rapid7.toml"),
    include_str!("../config/http/red_canary.toml"),
    include_str!("../config/http/thinkst_canary.toml"),
];

fn vendors() -> &'static Vendors {
    static VENDORS: OnceLock<Vendors> = OnceLock::new();
    VENDORS.get_or_init(|| Vendors {
        canaryguard: build(""),
        catchpoint: build(""),
        rapid7_alerts: build(""),
        rapid7_investigations: build("endpoint = \"investigations\""),
        red_canary: build(""),
        thinkst_canary: build("auth = \"query\""),
        definitions: DEFINITIONS.iter().map(|text| definition(text)).collect(),
    })
}

/// `V` configured with `options`; the harness's own fixed config, so a
/// failure here is a bug in this file, not input.
fn build<V: Vendor>(options: &str) -> V {
    let text = format!(
        "[[source]]\nvendor = \"{}\"\nname = \"hostile\"\nbase_url = \"https://tenant.example\"\n\
         credential = {{ env = \"UNUSED\" }}\n[source.options]\n{options}\n",
        V::KEY
    );
    // The vendor is instantiated below, which checks its options itself.
    let config = crate::config::Config::from_toml(&text, "hostile.toml", &|_| Ok(()))
        .expect("the harness config is valid");
    crate::vendors::instantiate::<V>(&config.sources[0]).expect("the harness source builds")
}

/// A shipped definition at [`ANSWERED_URL`]'s origin.
fn definition(text: &str) -> HttpSource {
    let text: String = text
        .lines()
        .map(|line| if line.starts_with("base_url") { "base_url = \"https://tenant.example\"" } else { line })
        .collect::<Vec<_>>()
        .join("\n");
    let config = crate::config::Config::from_toml(&text, "definition.toml", &|_| Ok(()))
        .expect("a shipped definition is valid");
    crate::vendors::instantiate::<HttpSource>(&config.sources[0]).expect("a shipped definition builds")
}

/// Run one answer (`status`, `headers`, `body`) through classification and
/// every vendor's readers; the messages produced on the way, in order.
pub fn exercise(status: StatusCode, headers: &HeaderMap, body: &Bytes) -> Vec<String> {
    let mut messages = Vec::new();
    let v = vendors();
    through(&v.canaryguard, status, headers, body, &mut messages);
    through(&v.catchpoint, status, headers, body, &mut messages);
    through(&v.rapid7_alerts, status, headers, body, &mut messages);
    through(&v.rapid7_investigations, status, headers, body, &mut messages);
    through(&v.red_canary, status, headers, body, &mut messages);
    through(&v.thinkst_canary, status, headers, body, &mut messages);
    for definition in &v.definitions {
        through(definition, status, headers, body, &mut messages);
    }
    messages.push(crate::http::vendor_message(body));
    messages
}

/// Whether `message` may go into a log line: at most
/// [`MAX_MESSAGE_CHARS`] characters and no control characters.
pub fn check_message(message: &str) -> Result<(), String> {
    let chars = message.chars().count();
    if chars > MAX_MESSAGE_CHARS {
        return Err(format!("a message of {chars} characters: {}…", crate::text::clip(message, 200)));
    }
    if let Some(c) = message.chars().find(|c| c.is_control()) {
        return Err(format!("a control character {c:?} in: {}", crate::text::clip(message, 300)));
    }
    Ok(())
}

fn through<V: Vendor>(v: &V, status: StatusCode, headers: &HeaderMap, body: &Bytes, out: &mut Vec<String>) {
    let url = Url::parse(ANSWERED_URL).unwrap_or_else(|_| unreachable!("a valid constant URL"));
    let signals = ThrottleSignals { statuses: v.throttle_statuses(), body: V::throttled_answer };
    let now = Duration::from_secs(1_800_000_000);
    let scheme = v.scheme();
    let page = match classify(status, headers, &url, body.clone(), signals, now) {
        Ok(answer) => match v.parse_answer(&answer.body, answer.next_link.as_deref()) {
            Ok(page) => page,
            Err(error) => return out.push(error.to_string()),
        },
        Err(error) => {
            out.push(error.to_string());
            match v.empty_page_for(&scheme.first(), &error) {
                Some(page) => page,
                None => return,
            }
        }
    };
    if let Err(error) = scheme.next(&scheme.first(), &page) {
        out.push(error.to_string());
    }
    let ctx = NormalizeContext::new("hostile", chrono::DateTime::UNIX_EPOCH);
    for item in &page.items {
        match v.normalize(item, &ctx) {
            Ok(normalized) => {
                let _ = crate::ocsf::finding(&normalized.event, &v.ocsf());
                let _ = serde_json::to_vec(&normalized.event);
            }
            Err(error) => out.push(error.to_string()),
        }
    }
}
