//! The lists an event keeps, built in linear time and bounded in length.
//!
//! An item is whatever the endpoint sent: within `max_response_bytes` (32 MiB
//! by default) one alert can carry hundreds of thousands of tags, keys or
//! bundled events. Removing duplicates by scanning the list for every value
//! made normalizing quadratic in them (one Rapid7 alert with 20,000 tags
//! took 2.2 s in a debug build; a body full of them would take hours on a
//! runtime worker thread, stalling every other source), and an event holding
//! every value would be as large as the body, and again as large in its OCSF
//! finding. So every list a normalizer fills from item data is one of these:
//!
//! - [`Distinct`] finds duplicates among its first [`SMALL`] keys by
//!   comparing them, and past that through a hash set beside the list, so
//!   the first-seen order (which the golden files and consumers see) is
//!   kept and each value costs at most [`SMALL`] comparisons or one hash
//!   lookup (hashing every value of the few short lists of a real alert
//!   was 4 % of a Thinkst backfill's instructions);
//! - [`Distinct`] and [`Capped`] keep at most [`MAX_VALUES`] values; what does
//!   not fit is dropped, and [`Dropped::into_tags`] ends the event's tags
//!   with `truncated:<list>` for every list that lost values, so a consumer
//!   can tell a cut list from a complete one (documented in
//!   `docs/event-schema.md`).

use std::collections::HashSet;
use std::hash::Hash;
use std::net::IpAddr;

use crate::event::Geo;

/// The most values an event keeps in any one list (`tags`, `attack`, each
/// `entities` list, a host's `ips`). Far above what a real alert names (the
/// longest list of any golden event is 13 tags), far below what one 32 MiB
/// body can hold.
pub const MAX_VALUES: usize = 1000;

/// The prefix of the tags that say a list was cut: `truncated:tags`,
/// `truncated:entities.ips`, …
pub const TRUNCATED_TAG: &str = "truncated:";

/// A list without duplicates, in first-seen order, of at most [`MAX_VALUES`]
/// values. `K` is what makes two values the same (the value itself, or a part
/// of it: Rapid7 users are the same user by name whatever their role).
#[derive(Debug)]
pub struct Distinct<T, K = T> {
    values: Vec<T>,
    /// The keys while there are at most [`SMALL`] of them.
    few: Vec<K>,
    /// The keys once there are more (then `few` is empty).
    seen: HashSet<K>,
    dropped: bool,
}

/// How many keys a [`Distinct`] compares one by one before it hashes them.
pub const SMALL: usize = 16;

impl<T, K: Eq + Hash> Default for Distinct<T, K> {
    fn default() -> Self {
        Distinct { values: Vec::new(), few: Vec::new(), seen: HashSet::new(), dropped: false }
    }
}

impl<T, K: Eq + Hash> Distinct<T, K> {
    /// An empty list.
    pub fn new() -> Self {
        Self::default()
    }

    /// Append `value`, known by `key`, unless a value with that key is in
    /// already; when the list is full, a new value is dropped (and noted).
    /// Whether it was appended.
    pub fn push_keyed(&mut self, key: K, value: T) -> bool {
        if self.few.contains(&key) || self.seen.contains(&key) {
            return false;
        }
        if self.values.len() >= MAX_VALUES {
            self.dropped = true;
            return false;
        }
        if self.seen.is_empty() && self.few.len() < SMALL {
            self.few.push(key);
        } else {
            self.seen.extend(self.few.drain(..));
            self.seen.insert(key);
        }
        self.values.push(value);
        true
    }

    /// The values kept so far, in first-seen order.
    pub fn values(&self) -> &[T] {
        &self.values
    }

    /// Whether a value was dropped because the list was full.
    pub fn dropped(&self) -> bool {
        self.dropped
    }

    /// The values, with a drop noted in `dropped` under `list` (the event
    /// field's path, e.g. `entities.ips`).
    pub fn finish(self, list: &'static str, dropped: &mut Dropped) -> Vec<T> {
        if self.dropped {
            dropped.note(list);
        }
        self.values
    }
}

impl<T: Clone + Eq + Hash> Distinct<T> {
    /// Append `value` unless it is in already (see [`Distinct::push_keyed`]).
    pub fn push(&mut self, value: T) -> bool {
        self.push_keyed(value.clone(), value)
    }
}

/// A list of at most [`MAX_VALUES`] values, duplicates kept (for lists the
/// vendor's mapping never deduplicated: one tag per Catchpoint label value,
/// one host per Rapid7 key that names it).
#[derive(Debug)]
pub struct Capped<T> {
    values: Vec<T>,
    dropped: bool,
}

impl<T> Default for Capped<T> {
    fn default() -> Self {
        Capped { values: Vec::new(), dropped: false }
    }
}

impl<T> Capped<T> {
    /// An empty list.
    pub fn new() -> Self {
        Self::default()
    }

    /// Append `value`, or drop it (and note that) when the list is full.
    pub fn push(&mut self, value: T) {
        if self.values.len() < MAX_VALUES {
            self.values.push(value);
        } else {
            self.dropped = true;
        }
    }

    /// The values kept so far.
    pub fn values(&self) -> &[T] {
        &self.values
    }

    /// The values kept so far, to complete them (Rapid7's one tactic goes
    /// onto every technique once all codes are read).
    pub fn values_mut(&mut self) -> &mut [T] {
        &mut self.values
    }

    /// Whether a value was dropped because the list was full.
    pub fn dropped(&self) -> bool {
        self.dropped
    }

    /// The values, with a drop noted in `dropped` under `list`.
    pub fn finish(self, list: &'static str, dropped: &mut Dropped) -> Vec<T> {
        if self.dropped {
            dropped.note(list);
        }
        self.values
    }
}

impl<T> Extend<T> for Capped<T> {
    /// Stops reading `values` at the first one that does not fit: the rest
    /// would be dropped anyway, and reading on costs time for nothing.
    fn extend<I: IntoIterator<Item = T>>(&mut self, values: I) {
        for value in values {
            if self.values.len() >= MAX_VALUES {
                self.dropped = true;
                return;
            }
            self.values.push(value);
        }
    }
}

/// The lists of one event that lost values, in the order they were noted.
#[derive(Debug, Default)]
pub struct Dropped(Vec<&'static str>);

impl Dropped {
    /// Note that `list` lost values.
    pub fn note(&mut self, list: &'static str) {
        // At most one entry per event field: a scan of a handful of names.
        if !self.0.contains(&list) {
            self.0.push(list);
        }
    }

    /// The lists noted so far.
    pub fn lists(&self) -> &[&'static str] {
        &self.0
    }

    /// The event's tags: `tags`' values, then `truncated:<list>` for every
    /// list that lost values (`tags` itself included). The tags stay within
    /// [`MAX_VALUES`]: the markers take the places of the last tags, which
    /// are the item's free-form ones in every vendor's mapping.
    pub fn into_tags(mut self, tags: Distinct<String>) -> Vec<String> {
        let mut tags = tags.finish("tags", &mut self);
        self.mark(&mut tags);
        tags
    }

    /// [`Dropped::into_tags`] for a vendor whose tags keep duplicates.
    pub fn into_capped_tags(mut self, tags: Capped<String>) -> Vec<String> {
        let mut tags = tags.finish("tags", &mut self);
        self.mark(&mut tags);
        tags
    }

    fn mark(mut self, tags: &mut Vec<String>) {
        if self.0.is_empty() {
            return;
        }
        if tags.len() + self.0.len() > MAX_VALUES {
            // Room for the markers costs tags: that is a cut list too.
            self.note("tags");
        }
        tags.truncate(MAX_VALUES.saturating_sub(self.0.len()));
        tags.extend(self.0.into_iter().map(|list| format!("{TRUNCATED_TAG}{list}")));
    }
}

/// What makes two geolocations the same, as `Geo`'s `==` says it, in a
/// form a hash set can hold (`Geo` has floats, which are not `Hash`). The
/// readers of [`crate::vendors::fields::float`] give only finite floats; the
/// key also equates `0.0` and `-0.0` as `==` does.
pub type GeoKey = (Option<IpAddr>, Option<String>, Option<String>, Option<String>, Option<u64>, Option<u64>);

/// The [`GeoKey`] of `geo`.
pub fn geo_key(geo: &Geo) -> GeoKey {
    let bits = |f: Option<f64>| f.map(|f| if f == 0.0 { 0 } else { f.to_bits() });
    (geo.ip, geo.city.clone(), geo.region.clone(), geo.country.clone(), bits(geo.lat), bits(geo.lon))
}

/// Test support: every list of `event` is within [`MAX_VALUES`].
#[cfg(test)]
pub(crate) fn assert_bounded(event: &crate::event::Event) {
    let e = &event.entities;
    for (list, len) in [
        ("tags", event.tags.len()),
        ("attack", event.attack.len()),
        ("entities.hosts", e.hosts.len()),
        ("entities.users", e.users.len()),
        ("entities.ips", e.ips.len()),
        ("entities.geo", e.geo.len()),
        ("entities.user_agents", e.user_agents.len()),
        ("entities.urls", e.urls.len()),
    ] {
        assert!(len <= MAX_VALUES, "{list} holds {len} values, more than {MAX_VALUES}");
    }
    for host in &e.hosts {
        assert!(host.ips.len() <= MAX_VALUES, "a host holds {} addresses", host.ips.len());
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn duplicates_are_dropped_and_the_first_seen_order_kept() {
        let mut list = Distinct::new();
        for value in ["b", "a", "b", "c", "a"] {
            list.push(value.to_owned());
        }
        assert_eq!(list.values(), ["b", "a", "c"]);
        assert!(!list.dropped(), "a duplicate is no drop");
        let mut dropped = Dropped::default();
        assert_eq!(list.finish("tags", &mut dropped), ["b", "a", "c"]);
        assert!(dropped.lists().is_empty());
    }

    /// Duplicates are found whether the keys are still compared one by one
    /// or already hashed, on both sides of the switch.
    #[test]
    fn duplicates_are_found_before_and_after_the_keys_are_hashed() {
        let mut list = Distinct::new();
        let mut expected = Vec::new();
        for round in 0..3 {
            for i in 0..3 * SMALL {
                let fresh = list.push(i);
                assert_eq!(fresh, round == 0, "value {i} in round {round}");
                if fresh {
                    expected.push(i);
                }
                assert!(!list.push(i / 2), "{} was pushed before", i / 2);
            }
        }
        assert_eq!(list.values(), expected.as_slice());
    }

    #[test]
    fn a_full_list_drops_new_values_but_not_duplicates_of_kept_ones() {
        let mut list = Distinct::new();
        for i in 0..MAX_VALUES {
            assert!(list.push(i));
        }
        assert!(!list.push(0));
        assert!(!list.dropped(), "a duplicate of a kept value is not a loss");
        assert!(!list.push(MAX_VALUES));
        assert!(list.dropped());
        assert_eq!(list.values().len(), MAX_VALUES);
    }

    #[test]
    fn keyed_values_are_the_same_by_key() {
        let mut users: Distinct<(&str, u8), &str> = Distinct::new();
        users.push_keyed("ana", ("ana", 1));
        users.push_keyed("ana", ("ana", 2));
        assert_eq!(users.values(), [("ana", 1)]);
    }

    #[test]
    fn capped_lists_keep_duplicates_and_stop_at_the_cap() {
        let mut list = Capped::new();
        list.push(1);
        list.push(1);
        assert_eq!(list.values(), [1, 1]);
        list.extend(0..10 * MAX_VALUES);
        assert_eq!(list.values().len(), MAX_VALUES);
        assert!(list.dropped());
    }

    #[test]
    fn truncation_is_tagged_within_the_cap() {
        let mut tags = Distinct::new();
        for i in 0..2 * MAX_VALUES {
            tags.push(format!("tag:{i}"));
        }
        let mut dropped = Dropped::default();
        dropped.note("entities.ips");
        dropped.note("entities.ips");
        let tags = dropped.into_tags(tags);
        assert_eq!(tags.len(), MAX_VALUES);
        assert_eq!(tags[MAX_VALUES - 2..], ["truncated:entities.ips", "truncated:tags"]);
        assert_eq!(tags[0], "tag:0", "the first tags are kept");

        let mut full = Distinct::new();
        for i in 0..MAX_VALUES {
            full.push(format!("tag:{i}"));
        }
        let mut dropped = Dropped::default();
        dropped.note("attack");
        let tags = dropped.into_tags(full);
        assert_eq!(tags.len(), MAX_VALUES);
        assert_eq!(
            tags[MAX_VALUES - 3..],
            ["tag:997", "truncated:attack", "truncated:tags"],
            "a full list of tags that makes room for a marker says it was cut"
        );

        let mut few = Distinct::new();
        few.push("a".to_owned());
        assert_eq!(Dropped::default().into_tags(few), ["a"], "nothing cut, nothing marked");
    }

    #[test]
    fn geolocations_equal_by_eq_have_equal_keys() {
        let a = Geo { city: Some("Lyon".into()), lat: Some(0.0), lon: Some(4.8), ..Geo::default() };
        let b = Geo { lat: Some(-0.0), ..a.clone() };
        assert_eq!(a, b);
        assert_eq!(geo_key(&a), geo_key(&b));
        let c = Geo { lon: Some(4.9), ..a.clone() };
        assert_ne!(geo_key(&a), geo_key(&c));
    }
}
