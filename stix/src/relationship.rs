//! The correlator's derived indicators as `derived-from` relationships (STIX 2.1 §5.1) to the
//! reports they were derived from.
//!
//! A derived indicator names its sources' providers (its `sources` field, docs/protocol.md §7.5)
//! and, under an exact-address rule, is the very address they reported; as ids are
//! deterministic, each source's indicator id is known without looking it up. Under a network or
//! AS-number rule (a `cidr` or `asn` derived indicator) the sources reported addresses that the
//! derived indicator does not name, so no relationship is written.

use domain::indicator::CORRELATOR_PROVIDER;
use domain::{Indicator, Itype};
use serde_json::{json, Value};

use crate::id::{identity_id, indicator_id, relationship_id};
use crate::indicator::versions;
use crate::marking::tlp_marking_id;
use crate::time;

const DERIVED_FROM: &str = "derived-from";

/// One relationship per source provider, from the derived indicator (`source_ref`) to that
/// provider's indicator (`target_ref`), with the derived indicator's times, creator and marking.
/// Empty for any other indicator.
pub(crate) fn relationships(indicator: &Indicator) -> Vec<Value> {
    let exact = matches!(indicator.itype(), Itype::Ipv4 | Itype::Ipv6);
    if !indicator.is_correlated() || !exact {
        return Vec::new();
    }
    let providers = source_providers(indicator);
    if providers.is_empty() {
        return Vec::new();
    }
    let source_ref = indicator_id(indicator.provider(), indicator.indicator());
    let (created, modified) = versions(indicator);
    let (created, modified) = (time::format(created), time::format(modified));
    let created_by_ref = identity_id(indicator.provider());
    let marking = tlp_marking_id(indicator.tlp());
    providers
        .into_iter()
        .map(|provider| {
            let target_ref = indicator_id(provider, indicator.indicator());
            json!({
                "type": "relationship",
                "spec_version": crate::SPEC_VERSION,
                "id": relationship_id(DERIVED_FROM, &source_ref, &target_ref),
                "created": created,
                "modified": modified,
                "created_by_ref": created_by_ref,
                "relationship_type": DERIVED_FROM,
                "source_ref": source_ref,
                "target_ref": target_ref,
                "object_marking_refs": [marking],
            })
        })
        .collect()
}

/// The distinct providers of the `sources` field, in its order.
fn source_providers(indicator: &Indicator) -> Vec<&str> {
    let mut providers: Vec<&str> = Vec::new();
    let sources = indicator
        .field("sources")
        .and_then(Value::as_array)
        .map_or(&[][..], Vec::as_slice);
    for source in sources {
        let Some(provider) = source.get("provider").and_then(Value::as_str) else {
            continue;
        };
        if !provider.is_empty() && provider != CORRELATOR_PROVIDER && !providers.contains(&provider)
        {
            providers.push(provider);
        }
    }
    providers
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::testing::{correlated, report};
    use domain::correlation::Key;

    #[test]
    fn derived_indicators_point_at_their_sources() {
        let derived = correlated(Key::Address("185.20.30.40".parse().unwrap()));
        let relationships = relationships(&derived);
        let derived_id = indicator_id(CORRELATOR_PROVIDER, "185.20.30.40");
        let targets: Vec<&str> = relationships
            .iter()
            .map(|relationship| {
                assert_eq!(relationship["relationship_type"], "derived-from");
                assert_eq!(relationship["source_ref"], derived_id.as_str());
                assert_eq!(
                    relationship["created_by_ref"],
                    identity_id("sluice/correlator")
                );
                assert_eq!(
                    relationship["object_marking_refs"][0],
                    tlp_marking_id(derived.tlp())
                );
                relationship["target_ref"].as_str().unwrap()
            })
            .collect();
        let expected: Vec<String> = ["alpha.example", "bravo.example", "charlie.example"]
            .into_iter()
            .map(|provider| indicator_id(provider, "185.20.30.40"))
            .collect();
        assert_eq!(targets, expected);
        // The target is exactly what the source's own report maps to.
        let source = crate::indicator(
            &report(json!({"indicator": "185.20.30.40", "provider": "bravo.example"})),
            crate::Lifecycle::default(),
        );
        assert_eq!(source["id"], targets[1]);
        assert_eq!(
            relationships,
            super::relationships(&derived),
            "deterministic"
        );
        assert_ne!(relationships[0]["id"], relationships[1]["id"]);
    }

    #[test]
    fn only_exact_address_derivations_have_relationships() {
        let network = correlated(Key::Network("185.20.30.0/24".parse().unwrap()));
        assert_eq!(network.itype(), Itype::Cidr);
        assert!(relationships(&network).is_empty());
        let ordinary = report(json!({"indicator": "185.20.30.40", "sources": [{"provider": "x"}]}));
        assert!(relationships(&ordinary).is_empty());
    }
}
