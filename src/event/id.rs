//! Deterministic event ids.
//!
//! The id doubles as JetStream's `Nats-Msg-Id`: publishing the same item at the
//! same revision twice (after a crash, a retry, an overlap window) must produce
//! the same id so the stream stores it once.

use sha1::{Digest, Sha1};
use uuid::Uuid;

/// Namespace for alertd's UUIDv5 ids (a fixed random UUID; never change it,
/// or every id changes and the stream stores duplicates).
const NAMESPACE: Uuid = Uuid::from_u128(0x6c1f_55a0_2d8e_4b8e_9a57_3f0e_7c2a_91d4);

/// The id of `native_id` at `revision` from the source `source_name` of `vendor`.
///
/// The parts are length-prefixed so that no two different tuples can produce
/// the same input bytes.
pub fn event_id(vendor: &str, source_name: &str, native_id: &str, revision: &str) -> Uuid {
    let mut input = Vec::with_capacity(vendor.len() + source_name.len() + native_id.len() + 64);
    let mut digits = itoa::Buffer::new();
    for part in [vendor, source_name, native_id, revision] {
        // Not `to_string()`: an allocation and `core::fmt` per part.
        input.extend_from_slice(digits.format(part.len()).as_bytes());
        input.push(b':');
        input.extend_from_slice(part.as_bytes());
    }
    v5(&NAMESPACE, &input)
}

/// The UUID version 5 of `name` in `namespace` (RFC 9562): what
/// `Uuid::new_v5` computes, with its SHA-1 from the `sha1` crate, which uses
/// the CPU's SHA instructions where it has them (uuid's `sha1_smol` is
/// portable code: about 1,100 instructions per id, two ids per event with
/// OCSF, issue 16's tenth pass).
pub fn v5(namespace: &Uuid, name: &[u8]) -> Uuid {
    let mut hash = Sha1::new();
    hash.update(namespace.as_bytes());
    hash.update(name);
    let digest = hash.finalize();
    let mut bytes = [0; 16];
    bytes.copy_from_slice(&digest[..16]);
    uuid::Builder::from_sha1_bytes(bytes).into_uuid()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn same_item_and_revision_give_the_same_id() {
        assert_eq!(
            event_id("canaryguard", "acme", "alt_1", "1"),
            event_id("canaryguard", "acme", "alt_1", "1")
        );
    }

    #[test]
    fn any_differing_part_gives_another_id() {
        let base = event_id("canaryguard", "acme", "alt_1", "1");
        assert_ne!(base, event_id("canaryguard", "acme", "alt_1", "2"));
        assert_ne!(base, event_id("canaryguard", "acme", "alt_2", "1"));
        assert_ne!(base, event_id("canaryguard", "other", "alt_1", "1"));
        assert_ne!(base, event_id("red_canary", "acme", "alt_1", "1"));
    }

    /// Ids already in users' streams: a change to how the input is built
    /// would change every id, and the stream would store duplicates.
    #[test]
    fn the_ids_are_the_ones_published_before() {
        let cases = [
            (event_id("canaryguard", "acme", "alt_1", "1"), "bb70b398-3527-5cda-92f2-f0446980eb1f"),
            (
                event_id("red_canary", "prod-tenant", &"x".repeat(1234), "2026-12-03T10:00:00Z"),
                "75e85f67-095c-5d7b-b3e2-5b90b4437601",
            ),
            (event_id("", "", "", ""), "6571b02b-e54e-592f-96c6-8863fe987810"),
        ];
        for (id, expected) in cases {
            assert_eq!(id.to_string(), expected);
        }
    }

    proptest::proptest! {
        #![proptest_config(proptest::prelude::ProptestConfig {
            failure_persistence: None,
            ..proptest::prelude::ProptestConfig::default()
        })]

        /// The same UUID as uuid's own version 5, for any namespace and name.
        #[test]
        fn v5_is_uuids_v5(namespace in proptest::prelude::any::<u128>(), name in proptest::collection::vec(proptest::prelude::any::<u8>(), 0..300)) {
            let namespace = Uuid::from_u128(namespace);
            proptest::prop_assert_eq!(v5(&namespace, &name), Uuid::new_v5(&namespace, &name));
        }
    }

    #[test]
    fn parts_cannot_bleed_into_each_other() {
        assert_ne!(event_id("a", "bc", "d", "1"), event_id("ab", "c", "d", "1"));
    }
}
