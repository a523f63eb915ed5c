//! What a configuration reload changes: the sources added, removed (or
//! disabled), changed and left alone, and the sections only a restart
//! applies. Compared on the files' TOML tables, so a change is a change of
//! what the operator wrote (inline keys included), not of where it sits in
//! the file.

use std::collections::BTreeMap;

/// The sections whose settings are only read at start (the sink, the
/// store, the listener, the lease bucket).
pub const RESTART_SECTIONS: [&str; 4] = ["nats", "state", "service", "cluster"];

/// The running configuration, as written.
#[derive(Debug, Clone, Default)]
pub struct Running {
    sections: BTreeMap<&'static str, Option<toml::Value>>,
    sources: BTreeMap<String, toml::Value>,
}

/// What a reload does.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct Plan {
    /// Enabled sources the running configuration does not poll.
    pub added: Vec<String>,
    /// Polled sources the new file removes or disables.
    pub removed: Vec<String>,
    /// Polled sources whose settings differ.
    pub changed: Vec<String>,
    /// Polled sources left as they are.
    pub unchanged: usize,
    /// Sections that changed but need a restart (`[nats]`…): kept as running.
    pub refused: Vec<String>,
}

/// The enabled sources of `raw`, by name.
fn enabled_sources(raw: &toml::Table) -> BTreeMap<String, toml::Value> {
    let mut out = BTreeMap::new();
    for source in raw.get("source").and_then(toml::Value::as_array).into_iter().flatten() {
        let Some(table) = source.as_table() else { continue };
        if table.get("enabled").and_then(toml::Value::as_bool) == Some(false) {
            continue;
        }
        if let Some(name) = table.get("name").and_then(toml::Value::as_str) {
            out.insert(name.to_owned(), source.clone());
        }
    }
    out
}

impl Running {
    /// The configuration loaded at start, from its file's table.
    pub fn of(raw: &toml::Table) -> Running {
        Running {
            sections: RESTART_SECTIONS.iter().map(|s| (*s, raw.get(*s).cloned())).collect(),
            sources: enabled_sources(raw),
        }
    }

    /// What loading `raw` changes.
    pub fn plan(&self, raw: &toml::Table) -> Plan {
        let mut plan = Plan::default();
        for (section, before) in &self.sections {
            if raw.get(*section) != before.as_ref() {
                plan.refused.push(format!("[{section}]"));
            }
        }
        let next = enabled_sources(raw);
        for (name, table) in &next {
            match self.sources.get(name) {
                None => plan.added.push(name.clone()),
                Some(before) if before != table => plan.changed.push(name.clone()),
                Some(_) => plan.unchanged += 1,
            }
        }
        plan.removed = self.sources.keys().filter(|n| !next.contains_key(*n)).cloned().collect();
        plan
    }

    /// The reload applied: its sources run; the refused sections stay as
    /// they were.
    pub fn apply(&mut self, raw: &toml::Table) {
        self.sources = enabled_sources(raw);
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn table(text: &str) -> toml::Table {
        text.parse().unwrap()
    }

    const BASE: &str = r#"
[nats]
url = "nats://127.0.0.1:4222"
[[source]]
vendor = "a"
name = "one"
page_size = 10
[[source]]
vendor = "a"
name = "two"
"#;

    #[test]
    fn a_reload_sees_added_removed_changed_and_unchanged_sources() {
        let running = Running::of(&table(BASE));
        let next = table(
            r#"
# a comment and moved lines change nothing
[nats]
url = "nats://127.0.0.1:4222"
[[source]]
vendor = "a"
name = "one"
page_size = 20
[[source]]
vendor = "a"
name = "three"
"#,
        );
        let plan = running.plan(&next);
        assert_eq!(plan.added, vec!["three".to_owned()]);
        assert_eq!(plan.removed, vec!["two".to_owned()]);
        assert_eq!(plan.changed, vec!["one".to_owned()]);
        assert_eq!(plan.unchanged, 0);
        assert!(plan.refused.is_empty());
        assert_eq!(running.plan(&table(BASE)), Plan { unchanged: 2, ..Plan::default() });
    }

    #[test]
    fn a_disabled_source_is_removed_and_restart_sections_are_refused() {
        let mut running = Running::of(&table(BASE));
        let next = table(
            &BASE
                .replace("nats://127.0.0.1:4222", "nats://10.0.0.1:4222")
                .replace("name = \"two\"", "name = \"two\"\nenabled = false\n[service]\nlisten = \"off\""),
        );
        let plan = running.plan(&next);
        assert_eq!(plan.removed, vec!["two".to_owned()]);
        assert_eq!(plan.refused, vec!["[nats]".to_owned(), "[service]".to_owned()]);
        running.apply(&next);
        // The refused sections stay as running: asked again, still refused.
        assert_eq!(running.plan(&next).refused.len(), 2);
        assert_eq!(running.plan(&next).unchanged, 1);
    }
}
