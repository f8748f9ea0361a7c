//! TLP as STIX 2.1's predefined TLP marking definitions (STIX 2.1 §7.2.1.4): four objects with
//! well-known ids that every STIX consumer already knows, referenced from `object_marking_refs`.
//!
//! The ids and contents are those of the specification and of the `stix2` Python library's
//! `TLP_WHITE`, `TLP_GREEN`, `TLP_AMBER` and `TLP_RED` (checked by tests/it/stix.rs).

use domain::Tlp;
use serde_json::{json, Value};

/// When the specification created the four TLP marking definitions.
const CREATED: &str = "2017-01-20T00:00:00.000Z";

/// The id of `tlp`'s marking definition, e.g. `marking-definition--f88d31f6-…` for amber.
pub fn tlp_marking_id(tlp: Tlp) -> &'static str {
    match tlp {
        Tlp::White => "marking-definition--613f2e26-407d-48c7-9eca-b8e91df99dc9",
        Tlp::Green => "marking-definition--34098fce-860f-48ae-8e50-ebd3cc5e41da",
        Tlp::Amber => "marking-definition--f88d31f6-486f-44da-b317-01333bde0b82",
        Tlp::Red => "marking-definition--5e57c739-391a-4eb3-b6be-7d15ca92d5ed",
    }
}

/// `tlp`'s full marking-definition object, as the specification defines it.
pub fn tlp_marking(tlp: Tlp) -> Value {
    let name = match tlp {
        Tlp::White => "TLP:WHITE",
        Tlp::Green => "TLP:GREEN",
        Tlp::Amber => "TLP:AMBER",
        Tlp::Red => "TLP:RED",
    };
    json!({
        "type": "marking-definition",
        "spec_version": crate::SPEC_VERSION,
        "id": tlp_marking_id(tlp),
        "created": CREATED,
        "definition_type": "tlp",
        "name": name,
        "definition": {"tlp": tlp.as_str()},
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn markings_are_the_specifications() {
        // As `stix2.TLP_AMBER.serialize()` writes it (stix2 3.0.2).
        let amber: Value = serde_json::from_str(
            r#"{"type": "marking-definition", "spec_version": "2.1", "id": "marking-definition--f88d31f6-486f-44da-b317-01333bde0b82", "created": "2017-01-20T00:00:00.000Z", "definition_type": "tlp", "name": "TLP:AMBER", "definition": {"tlp": "amber"}}"#,
        )
        .unwrap();
        assert_eq!(tlp_marking(Tlp::Amber), amber);
        let ids: Vec<&str> = Tlp::ALL.into_iter().map(tlp_marking_id).collect();
        assert_eq!(
            ids,
            [
                "marking-definition--613f2e26-407d-48c7-9eca-b8e91df99dc9",
                "marking-definition--34098fce-860f-48ae-8e50-ebd3cc5e41da",
                "marking-definition--f88d31f6-486f-44da-b317-01333bde0b82",
                "marking-definition--5e57c739-391a-4eb3-b6be-7d15ca92d5ed",
            ]
        );
        for tlp in Tlp::ALL {
            let marking = tlp_marking(tlp);
            assert_eq!(marking["id"], tlp_marking_id(tlp));
            assert_eq!(marking["definition"]["tlp"], tlp.as_str());
            assert_eq!(
                marking["name"],
                format!("TLP:{}", tlp.as_str().to_uppercase())
            );
        }
    }
}
