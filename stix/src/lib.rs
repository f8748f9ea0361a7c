//! Sluice's indicators as STIX 2.1 objects (interop, part 1): what a TAXII 2.1 server serves.
//!
//! One log entry's [`domain::Indicator`] becomes an `indicator` SDO ([`indicator`]), plus, for
//! the correlator's derived indicators, `derived-from` relationships to the reports they were
//! derived from ([`objects`] gives all of them). The objects reference their provider's
//! `identity` ([`identity`]) and one of STIX's four predefined TLP marking definitions
//! ([`tlp_marking`]); a server sends those once, not with every indicator. [`bundle`] wraps
//! objects in a STIX bundle. Nothing here reads the log or the clock: an entry's arrival time is
//! TAXII's `date_added`, which belongs to the envelope and manifest, not to the object; and the
//! same report gives byte-for-byte the same objects on every node.
//!
//! # The mapping
//!
//! | STIX property | from |
//! |---|---|
//! | `id` | `indicator--` + UUIDv5 over [`NAMESPACE`] of `provider + "\n" + indicator` ([`indicator_id`]) |
//! | `created` | the provider's `firsttime` when it is earlier than `reporttime`, else `reporttime` |
//! | `modified`, `valid_from` | `reporttime` |
//! | `valid_until`, `revoked` | [`Lifecycle`]: the expiry the caller works out (the gateway: `domain::Validity::expires`, the indicator's own `valid_until` or its itype's default); `revoked` is not set yet |
//! | `created_by_ref` | the provider's [`identity`] ([`identity_id`]) |
//! | `name` | the normalised indicator |
//! | `description` | the provider's `description`, else `"<itype> reported by <provider>"` |
//! | `pattern` | per itype, below; `pattern_type` `stix`, `pattern_version` `2.1` |
//! | `indicator_types` | the tags, mapped below |
//! | `labels` | the tags as they are (left out when there are none) |
//! | `confidence` | CIF's 0–10 × 10, rounded half up, clamped to 0–100 (7.25 → 73) |
//! | `object_marking_refs` | the TLP level's predefined marking definition ([`tlp_marking_id`]) |
//! | `external_references` | URLs in `altid`, `reference`, `urlhaus_link`, `phish_detail_url` |
//!
//! Timestamps are `YYYY-MM-DDTHH:MM:SS.sssZ`: STIX wants `created` and `modified` precise to the
//! millisecond, and a fixed width keeps them ordered as strings. A provider's later report of the
//! same indicator is a newer version (same `id`, later `modified`) of the same object. `created`
//! cannot be remembered without state, so it is the provider's `firsttime` when given (stable
//! across a feed's reports) and never after `modified`.
//!
//! | itype | `pattern` |
//! |---|---|
//! | `ipv4`, `ipv6` | `[ipv4-addr:value = '185.20.30.40']`, `[ipv6-addr:value = '2606:4700::1111']` |
//! | `cidr` | `[ipv4-addr:value ISSUBSET '185.20.30.0/24']` (`ipv6-addr` for an IPv6 network) |
//! | `url`, `fqdn`, `email` | `[url:value = '…']`, `[domain-name:value = '…']`, `[email-addr:value = '…']` |
//! | `md5`, `sha1`, `sha256`, `sha512` | `[file:hashes.MD5 = '…']`, `[file:hashes.'SHA-1' = '…']`, `'SHA-256'`, `'SHA-512'` |
//! | `asn` | `[autonomous-system:number = 13335]` |
//!
//! String literals escape `\` and `'` with a backslash, the only two characters STIX patterning
//! treats specially in them; indicators are attacker-controlled (a URL's path may hold both).
//!
//! | `indicator_types` | tags |
//! |---|---|
//! | `malicious-activity` | phishing, malware, malware_download, botnet, c2, cnc, exploit, exploit-kit, ransomware, spam, bruteforce |
//! | `anomalous-activity` | scanner, scanning, scan |
//! | `anonymization` | tor, proxy, vpn |
//! | `compromised` | hijacked |
//! | `attribution` | — |
//! | `benign` | whitelist, allowlist |
//! | `unknown` | when no tag above is present |
//!
//! A tag that is itself an indicator-type-ov value (`benign`, `attribution`, …) also means that
//! value; an indicator gets every type its tags map to, in the table's order.

mod id;
mod identity;
mod indicator;
mod marking;
mod pattern;
mod reference;
mod relationship;
mod time;
mod vocab;

use domain::Indicator;
use serde_json::{json, Value};

pub use id::{identity_id, indicator_id, NAMESPACE};
pub use identity::identity;
pub use indicator::{indicator, Lifecycle};
pub use marking::{tlp_marking, tlp_marking_id};

/// The STIX version of every object written here.
pub const SPEC_VERSION: &str = "2.1";

/// Every object for one indicator: its `indicator` SDO first, then, for a derived indicator of
/// the correlator under an exact-address rule, one `derived-from` relationship per source
/// provider, to that provider's indicator id for the same address. (Under a network or ASN rule
/// the sources reported other addresses than the derived one, so there is none.)
pub fn objects(indicator: &Indicator, lifecycle: Lifecycle) -> Vec<Value> {
    let mut objects = vec![crate::indicator(indicator, lifecycle)];
    objects.extend(relationship::relationships(indicator));
    objects
}

/// A STIX bundle of `objects`. Its id is `bundle--` + a random UUIDv4: a bundle is a one-off
/// envelope, never versioned or referred to, so nothing is gained by deriving it.
pub fn bundle(objects: Vec<Value>) -> Value {
    json!({
        "type": "bundle",
        "id": format!("bundle--{}", uuid::Uuid::new_v4()),
        "objects": objects,
    })
}

#[cfg(test)]
pub(crate) mod testing;

#[cfg(test)]
mod tests {
    use super::*;
    use crate::testing::{correlated, report};
    use domain::correlation::Key;
    use domain::Itype;

    #[test]
    fn objects_of_a_report_are_its_indicator() {
        let report = report(json!({"indicator": "185.20.30.40", "tags": "scanner"}));
        assert_eq!(
            objects(&report, Lifecycle::default()),
            [indicator(&report, Lifecycle::default())]
        );
    }

    #[test]
    fn objects_of_a_derived_indicator_add_its_relationships() {
        let derived = correlated(Key::Address("2606:4700::1111".parse().unwrap()));
        assert_eq!(derived.itype(), Itype::Ipv6);
        let objects = objects(&derived, Lifecycle::default());
        assert_eq!(objects.len(), 4, "{objects:#?}");
        assert_eq!(objects[0]["type"], "indicator");
        assert_eq!(
            objects[0]["created_by_ref"],
            identity_id("sluice/correlator")
        );
        assert_eq!(objects[0]["confidence"], 90);
        for relationship in &objects[1..] {
            assert_eq!(relationship["type"], "relationship");
            assert_eq!(relationship["source_ref"], objects[0]["id"]);
            assert_eq!(relationship["modified"], objects[0]["modified"]);
        }
    }

    #[test]
    fn bundles_hold_the_objects() {
        let report = report(json!({"indicator": "185.20.30.40"}));
        let bundle = bundle(vec![
            identity("csirtg.io"),
            indicator(&report, Lifecycle::default()),
        ]);
        assert_eq!(bundle["type"], "bundle");
        assert_eq!(bundle["objects"].as_array().map(Vec::len), Some(2));
        let id = bundle["id"].as_str().unwrap();
        let uuid: uuid::Uuid = id.strip_prefix("bundle--").unwrap().parse().unwrap();
        assert_eq!(uuid.get_version_num(), 4);
        assert!(
            bundle.get("spec_version").is_none(),
            "2.1 bundles have none"
        );
    }
}
