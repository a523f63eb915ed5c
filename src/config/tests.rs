//! The configuration's unit tests: parsing, checks across entries, bounds
//! and the redaction of secrets in errors.

use super::load::*;
use super::*;

const GOOD: &str = r#"
[nats]
url = "nats://127.0.0.1:4222"

[[source]]
vendor = "canaryguard"
name = "acme"
credential = { env = "CG_KEY" }
schedule = "*/5 * * * *"
"#;

fn error_of(text: &str) -> (usize, String) {
    match crate::registry::parse(text, "test.toml").unwrap_err() {
        ConfigError::Invalid { line, message, .. } => (line, message),
        other => panic!("unexpected {other}"),
    }
}

#[test]
fn a_good_file_loads_with_defaults() {
    let c = crate::registry::parse(GOOD, "test.toml").unwrap();
    let nats = c.nats.unwrap();
    assert_eq!(nats.stream, "ALERTD");
    assert_eq!(nats.subject_prefix, "alertd");
    assert_eq!(c.sources.len(), 1);
    assert_eq!(c.sources[0].page_size, 100);
    assert!(matches!(c.sources[0].schedule, Schedule::Cron(_)));
}

#[test]
fn a_cluster_needs_shared_cursors_and_says_where() {
    let c = crate::registry::parse(GOOD, "test.toml").unwrap();
    assert!(!c.cluster.is_enabled());
    assert_eq!(*c.state.backend.get_ref(), StateBackend::Sqlite);

    let clustered = format!("{GOOD}\n[cluster]\nenabled = true\n");
    let (line, message) = error_of(&clustered);
    assert_eq!(line, 12);
    assert!(message.contains("backend = \"nats-kv\""), "{message}");

    let shared = clustered.replace("[nats]", "[state]\nbackend = \"nats-kv\"\n\n[nats]");
    let c = crate::registry::parse(&shared, "test.toml").unwrap();
    assert!(c.cluster.is_enabled());
    assert_eq!(c.cluster.lease_ttl, Duration::from_secs(15));
    assert_eq!((c.state.bucket.as_str(), c.cluster.bucket.as_str()), ("alertd_cursors", "alertd_leases"));

    // nats-kv without [nats] points at the backend line.
    let no_nats = "[state]\nbackend = \"nats-kv\"\n";
    let (line, message) = error_of(no_nats);
    assert_eq!(line, 2);
    assert!(message.contains("add a [nats] section"), "{message}");

    let (line, message) =
        error_of(&shared.replace("enabled = true", "enabled = true\nlease_ttl = \"200ms\""));
    assert_eq!(line, 15);
    assert!(message.contains("lease_ttl"), "{message}");
    let (_, message) = error_of(&shared.replace("enabled = true", "enabled = true\nbucket = \"a.b\""));
    assert!(message.contains("bucket `a.b`"), "{message}");
    let (_, message) = error_of(&shared.replace("nats-kv", "etcd"));
    assert!(message.contains("etcd"), "{message}");
}

#[test]
fn instance_names_are_safe_kv_tokens() {
    let mut c = ClusterConfig { instance: Some("host.example.com:2".into()), ..ClusterConfig::default() };
    assert_eq!(c.instance_name(), "host_example_com_2");
    c.instance = Some(String::new());
    assert_eq!(c.instance_name(), "alertd");
    c.instance = None;
    assert!(!c.instance_name().is_empty());
}

#[test]
fn an_unknown_field_names_its_line_and_field() {
    let text = GOOD.replace("schedule =", "schedul =");
    let (line, message) = error_of(&text);
    assert_eq!(line, 9);
    assert!(message.contains("schedul"), "{message}");
}

#[test]
fn a_bad_schedule_names_its_line() {
    let text = GOOD.replace("*/5 * * * *", "every week or so");
    let (line, message) = error_of(&text);
    assert_eq!(line, 9);
    assert!(message.contains("`schedule`") && message.contains("week or so"), "{message}");
}

#[test]
fn an_unknown_vendor_lists_the_known_ones() {
    let text = GOOD.replace("\"canaryguard\"", "\"canary_gaurd\"");
    let (line, message) = error_of(&text);
    assert_eq!(line, 6);
    assert!(message.contains("canaryguard"), "{message}");
}

#[test]
fn a_duplicate_source_name_points_at_both() {
    let text = format!(
        "{GOOD}\n[[source]]\nvendor = \"canaryguard\"\nname = \"acme\"\ncredential = {{ env = \"X\" }}\n"
    );
    let (line, message) = error_of(&text);
    assert_eq!(line, 13);
    assert!(message.contains("line 7"), "{message}");
}

#[test]
fn a_source_name_with_a_dot_is_refused() {
    let text = GOOD.replace("\"acme\"", "\"acme.prod\"");
    let (line, _) = error_of(&text);
    assert_eq!(line, 7);
}

#[test]
fn a_wildcard_subject_prefix_is_refused() {
    let text = GOOD.replace("[nats]\n", "[nats]\nsubject_prefix = \"alerts.>\"\n");
    let (line, message) = error_of(&text);
    assert_eq!(line, 3);
    assert!(message.contains("subject_prefix"), "{message}");
}

#[test]
fn an_inline_key_in_the_file_is_refused() {
    let text = GOOD.replace("{ env = \"CG_KEY\" }", "{ inline = \"cg_live_x\" }");
    let (_, message) = error_of(&text);
    assert!(message.contains("inline"), "{message}");
}

#[test]
fn a_bad_duration_names_its_line() {
    let text = GOOD.replace("schedule =", "overlap = \"ten minutes\"\nschedule =");
    let (line, _) = error_of(&text);
    assert_eq!(line, 9);
}

fn with_base_url(url: &str, extra: &str) -> String {
    GOOD.replace("schedule =", &format!("base_url = \"{url}\"\n{extra}schedule ="))
}

#[test]
fn cleartext_http_off_loopback_is_refused_at_its_line() {
    let (line, message) = error_of(&with_base_url("http://10.1.2.3/", ""));
    assert_eq!(line, 9);
    assert!(message.contains("source `acme`") && message.contains("base_url"), "{message}");
    assert!(message.contains("allow_insecure_http"), "{message}");
    let err = crate::registry::parse(&with_base_url("http://alerts.example.com:8080/api?k=v", ""), "a.toml")
        .unwrap_err()
        .to_string();
    assert!(err.starts_with("a.toml:9:"), "{err}");

    let allowed =
        crate::registry::parse(&with_base_url("http://10.1.2.3/", "allow_insecure_http = true\n"), "t")
            .unwrap();
    assert!(allowed.sources[0].allow_insecure_http);
    for ok in [
        "http://127.0.0.1:9/",
        "http://127.8.9.10/",
        "http://[::1]:8080/",
        "http://localhost:1/x",
        "http://LOCALHOST/",
        "https://10.1.2.3/",
        "https://canaryguard.app",
    ] {
        let c = crate::registry::parse(&with_base_url(ok, ""), "t.toml");
        assert!(c.is_ok(), "{ok}: {:?}", c.err());
    }
    // A name that merely starts like loopback is not loopback.
    assert!(crate::registry::parse(&with_base_url("http://localhost.example.com/", ""), "t").is_err());
    assert!(crate::registry::parse(&with_base_url("http://[::ffff:10.0.0.1]/", ""), "t").is_err());
}

#[test]
fn a_vendors_computed_url_is_checked_too() {
    let mut c = crate::registry::parse(GOOD, "t.toml").unwrap();
    let source = &mut c.sources[0];
    source.base_url = Some(Spanned::new(0..0, Url::parse("http://10.9.9.9/").unwrap()));
    let Err(VendorProblem::Settings(err)) = crate::registry::check_source(source) else {
        panic!("a cleartext computed URL is refused")
    };
    assert!(err.contains("cleartext"), "{err}");
    source.allow_insecure_http = true;
    assert!(crate::registry::check_source(source).is_ok());
}

#[test]
fn durations_are_bounded_at_their_line() {
    for (setting, value) in [
        ("initial_lookback", "300000years"),
        ("overlap", "11years"),
        ("lag", "2days"),
        ("jitter", "61m"),
        ("timeout", "2h"),
        ("credential_expiry_warning", "3years"),
    ] {
        let text = GOOD.replace("schedule =", &format!("{setting} = \"{value}\"\nschedule ="));
        let (line, message) = error_of(&text);
        assert_eq!(line, 9, "{setting}");
        assert!(message.contains(setting) && message.contains("maximum"), "{setting}: {message}");
    }
    let (line, message) = error_of(&GOOD.replace("schedule =", "timeout = \"0s\"\nschedule ="));
    assert_eq!(line, 9);
    assert!(message.contains("timeout") && message.contains("more than 0"), "{message}");
    for (setting, value) in [("duplicate_window", "31d"), ("ack_timeout", "2h"), ("ack_timeout", "0s")] {
        let text = GOOD.replace("[nats]\n", &format!("[nats]\n{setting} = \"{value}\"\n"));
        let (line, message) = error_of(&text);
        assert_eq!(line, 3, "{setting}");
        assert!(message.contains(setting), "{message}");
    }
    let (line, message) = error_of(&format!("{GOOD}\n[cluster]\nlease_ttl = \"2h\"\n"));
    assert_eq!(line, 12);
    assert!(message.contains("lease_ttl"), "{message}");
    let (line, message) = error_of(&GOOD.replace("*/5 * * * *", "every 300000years"));
    assert_eq!(line, 9);
    assert!(message.contains("schedule") && message.contains("maximum"), "{message}");

    // The bounds themselves are accepted.
    let at_bounds = GOOD.replace(
        "schedule =",
        "initial_lookback = \"10years\"\noverlap = \"10years\"\nlag = \"1day\"\njitter = \"1h\"\n\
         timeout = \"1h\"\ncredential_expiry_warning = \"2years\"\nschedule =",
    );
    let c = crate::registry::parse(&at_bounds, "t.toml").unwrap();
    assert_eq!(c.sources[0].initial_lookback, MAX_LOOKBACK);
}

#[test]
fn the_longest_lookback_plans_without_panicking() {
    let text = GOOD.replace("schedule =", "initial_lookback = \"10years\"\nschedule =");
    let source = crate::registry::parse(&text, "t.toml").unwrap().sources.remove(0);
    let settings = crate::incremental::WindowSettings::of(&source);
    let window = crate::incremental::TimeWindow::plan(None, chrono::Utc::now(), settings).unwrap();
    assert!(window.after.timestamp() > 0 && window.after < window.before);
}

const NATS_SECRET: &str = "s3cr3t-pw";

fn assert_hidden(err: &ConfigError, secrets: &[&str]) {
    let shown = format!("{err} {err:?}");
    for secret in secrets {
        assert!(!shown.contains(secret), "{secret} shown in: {shown}");
    }
}

#[test]
fn the_nats_url_displays_without_its_userinfo() {
    let text = GOOD.replace("nats://127.0.0.1:4222", &format!("nats://alice:{NATS_SECRET}@127.0.0.1:1"));
    let c = crate::registry::parse(&text, "t.toml").unwrap();
    let nats = c.nats.as_ref().unwrap();
    let shown = format!("{} {:?} {c:?}", nats.url, nats.url);
    assert!(!shown.contains(NATS_SECRET) && !shown.contains("alice"), "{shown}");
    assert!(shown.contains("nats://***@127.0.0.1:1"), "{shown}");
    assert_eq!(nats.url.expose(), format!("nats://alice:{NATS_SECRET}@127.0.0.1:1"));
}

#[test]
fn errors_on_a_secret_line_do_not_repeat_the_secret() {
    // A wrong type on the URL line: the parser quotes the line.
    let text = GOOD.replace(
        "url = \"nats://127.0.0.1:4222\"",
        &format!("url = \"nats://alice:{NATS_SECRET}@127.0.0.1:1\"\nstream = 5"),
    );
    let err = crate::registry::parse(&text, "t.toml").unwrap_err();
    assert_hidden(&err, &[NATS_SECRET]);
    let text = GOOD.replace("\"nats://127.0.0.1:4222\"", &format!("[\"nats://alice:{NATS_SECRET}@h:1\"]"));
    let err = crate::registry::parse(&text, "t.toml").unwrap_err();
    assert!(
        matches!(&err, ConfigError::Invalid { line: 3, snippet, .. } if snippet.contains("***@h:1")),
        "{err}"
    );
    assert_hidden(&err, &[NATS_SECRET, "alice"]);
    // Scheme-less, as NATS clients accept it.
    let text = GOOD.replace("\"nats://127.0.0.1:4222\"", &format!("[\"alice:{NATS_SECRET}@h:1\"]"));
    assert_hidden(&crate::registry::parse(&text, "t.toml").unwrap_err(), &[NATS_SECRET]);

    // Broken lines holding a token, a password, a key pasted as the credential.
    for broken in [
        "token = \"tok-0123456789abcdef",
        "token = tok-0123456789abcdef",
        "password = { inline = \"tok-0123456789abcdef\" }",
        "api_key = \"tok-0123456789abcdef\"",
    ] {
        let text = GOOD.replace("[nats]\n", &format!("[nats]\n{broken}\n"));
        let err = crate::registry::parse(&text, "t.toml").unwrap_err();
        assert!(matches!(&err, ConfigError::Invalid { line: 3, .. }), "{broken}: {err}");
        assert_hidden(&err, &["0123456789abcdef"]);
        assert!(err.to_string().contains("***"), "{err}");
    }
    let text = GOOD.replace("{ env = \"CG_KEY\" }", "\"cg_live_0123456789abcdef\"");
    let (line, message) = error_of(&text);
    assert_eq!(line, 8);
    assert!(message.contains("credential"), "{message}");
    assert_hidden(&crate::registry::parse(&text, "t.toml").unwrap_err(), &["0123456789abcdef"]);
}

#[test]
fn redaction_keeps_ordinary_errors_whole() {
    // Not a secret line: the value stays in the message and the snippet.
    let text = GOOD.replace("\"canaryguard\"", "\"canary_gaurd\"");
    let err = crate::registry::parse(&text, "t.toml").unwrap_err();
    assert!(err.to_string().contains("canary_gaurd"), "{err}");
    // A credential's source (not a secret) keeps the field named.
    let text = GOOD.replace("{ env = \"CG_KEY\" }", "{ envv = \"CG_KEY\" }");
    let err = crate::registry::parse(&text, "t.toml").unwrap_err().to_string();
    assert!(err.contains("envv") && err.contains("credential"), "{err}");
}

#[test]
fn max_response_bytes_defaults_to_32_mib_and_is_bounded() {
    let c = crate::registry::parse(GOOD, "test.toml").unwrap();
    assert_eq!(c.sources[0].max_response_bytes, 32 * 1024 * 1024);
    let set = GOOD.replace("schedule =", "max_response_bytes = 1048576\nschedule =");
    assert_eq!(crate::registry::parse(&set, "test.toml").unwrap().sources[0].max_response_bytes, 1 << 20);
    for bad in ["0", "1073741825", "-1", "\"32MiB\"", "1.5"] {
        let text = GOOD.replace("schedule =", &format!("max_response_bytes = {bad}\nschedule ="));
        let (line, message) = error_of(&text);
        assert_eq!(line, 9, "{bad}");
        assert!(message.contains("max_response_bytes") && message.contains("1 GiB"), "{bad}: {message}");
    }
}

#[test]
fn line_col_counts_from_one() {
    assert_eq!(line_col("ab\ncd", 0), (1, 1));
    assert_eq!(line_col("ab\ncd", 4), (2, 2));
}
