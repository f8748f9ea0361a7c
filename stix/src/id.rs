//! Deterministic STIX identifiers: UUIDv5 names under Sluice's own namespace.
//!
//! The same report maps to the same identifier on every node and in every process, with no
//! state: a TAXII client that polls two nodes, or polls again after a restart, sees one object
//! (in newer versions) rather than a new object per delivery.

use std::cell::RefCell;
use std::collections::HashMap;

use uuid::Uuid;

/// Sluice's UUIDv5 namespace for STIX identifiers: `c0b74369-6d4f-46b0-9df9-078ba5b8808b`, a
/// UUIDv4 generated once (2026-12-04) for this purpose and never to change: changing it changes
/// every identifier Sluice has ever published.
///
/// STIX 2.1 (§2.9) recommends UUIDv4 for domain objects and lets producers use another version
/// with a namespace of their own (never the SCO namespace `6ba7b810-…`); this is that namespace.
/// The names hashed under it, for each object type:
///
/// | object | UUIDv5 name |
/// |---|---|
/// | `indicator` | `provider + "\n" + indicator` (the normalised indicator text) |
/// | `identity` | `provider` |
/// | `relationship` | `relationship_type + "\n" + source_ref + "\n" + target_ref` |
///
/// Providers and indicators never contain control characters (the indicator model refuses
/// them), so the newline separates the parts unambiguously, and each row's names differ in
/// their number of newlines.
pub const NAMESPACE: Uuid = Uuid::from_u128(0xc0b7_4369_6d4f_46b0_9df9_078b_a5b8_808b);

/// `indicator--<UUIDv5(NAMESPACE, provider + "\n" + indicator)>`: the id of `provider`'s report of
/// the normalised `indicator` (what [`domain::Indicator::indicator`] returns).
pub fn indicator_id(provider: &str, indicator: &str) -> String {
    let mut name = String::with_capacity(provider.len() + 1 + indicator.len());
    name.push_str(provider);
    name.push('\n');
    name.push_str(indicator);
    typed("indicator", &name)
}

/// `identity--<UUIDv5(NAMESPACE, provider)>`: the id of a provider's [`crate::identity`].
///
/// Every indicator names its provider's identity, and a log holds few providers: the ids are
/// remembered per thread (a few hundred of them at most), which saves a SHA-1 per object.
pub fn identity_id(provider: &str) -> String {
    const REMEMBERED: usize = 512;
    thread_local! {
        static IDS: RefCell<HashMap<String, String>> = RefCell::new(HashMap::new());
    }
    IDS.with(|ids| {
        let mut ids = ids.borrow_mut();
        if let Some(id) = ids.get(provider) {
            return id.clone();
        }
        if ids.len() >= REMEMBERED {
            ids.clear();
        }
        let id = typed("identity", provider);
        ids.insert(provider.to_owned(), id.clone());
        id
    })
}

/// `relationship--<UUIDv5(NAMESPACE, kind + "\n" + source + "\n" + target)>`.
pub(crate) fn relationship_id(kind: &str, source: &str, target: &str) -> String {
    let name = [kind, source, target].join("\n");
    typed("relationship", &name)
}

/// `<object_type>--<UUIDv5(NAMESPACE, name)>`, lowercase and hyphenated.
fn typed(object_type: &str, name: &str) -> String {
    let uuid = Uuid::new_v5(&NAMESPACE, name.as_bytes());
    let mut buffer = Uuid::encode_buffer();
    let mut id = String::with_capacity(object_type.len() + 2 + uuid::fmt::Hyphenated::LENGTH);
    id.push_str(object_type);
    id.push_str("--");
    id.push_str(uuid.hyphenated().encode_lower(&mut buffer));
    id
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn ids_are_uuidv5_under_the_namespace() {
        let id = indicator_id("csirtg.io", "185.20.30.40");
        let expected = Uuid::new_v5(&NAMESPACE, b"csirtg.io\n185.20.30.40");
        assert_eq!(id, format!("indicator--{expected}"));
        let uuid: Uuid = id["indicator--".len()..].parse().unwrap();
        assert_eq!(uuid.get_version_num(), 5);
        assert_eq!(
            NAMESPACE.to_string(),
            "c0b74369-6d4f-46b0-9df9-078ba5b8808b"
        );
    }

    #[test]
    fn ids_are_stable_and_distinct() {
        // Golden values (Python's `uuid.uuid5` agrees): they must never change, consumers have
        // stored them.
        assert_eq!(
            indicator_id("csirtg.io", "185.20.30.40"),
            "indicator--ccfb7495-b2fe-5b7f-8c96-077ab1a9fbbc"
        );
        assert_eq!(
            identity_id("csirtg.io"),
            "identity--d01b9b4f-3909-524d-bae5-12ff54431432"
        );
        assert_ne!(
            indicator_id("csirtg.io", "185.20.30.40"),
            indicator_id("spamhaus", "185.20.30.40")
        );
        assert_ne!(
            indicator_id("csirtg.io", "185.20.30.40"),
            indicator_id("csirtg.io", "185.20.30.41")
        );
        assert_ne!(identity_id("csirtg.io"), identity_id("spamhaus"));
    }
}
