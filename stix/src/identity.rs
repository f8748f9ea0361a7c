//! A provider as a STIX `identity`: the `created_by_ref` of everything it reported.

use domain::indicator::RESERVED_PROVIDER_PREFIX;
use serde_json::{json, Value};

use crate::id::identity_id;

/// The `created` and `modified` of every identity: the day this mapping was defined. An
/// identity has no time of its own in Sluice, and a constant keeps it one version everywhere.
const CREATED: &str = "2026-12-04T00:00:00.000Z";

/// `provider`'s identity: a deterministic id ([`crate::identity_id`]), its name, and
/// `identity_class` `organization`, or `system` for Sluice's own (`sluice/…`, such as
/// `sluice/correlator`).
pub fn identity(provider: &str) -> Value {
    let class = if provider.starts_with(RESERVED_PROVIDER_PREFIX) {
        "system"
    } else {
        "organization"
    };
    json!({
        "type": "identity",
        "spec_version": crate::SPEC_VERSION,
        "id": identity_id(provider),
        "created": CREATED,
        "modified": CREATED,
        "name": provider,
        "identity_class": class,
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn providers_are_organisations_and_sluice_a_system() {
        let csirtg = identity("csirtg.io");
        assert_eq!(csirtg["id"], identity_id("csirtg.io"));
        assert_eq!(csirtg["name"], "csirtg.io");
        assert_eq!(csirtg["identity_class"], "organization");
        assert_eq!(identity("sluice/correlator")["identity_class"], "system");
        assert_eq!(identity("csirtg.io"), csirtg, "deterministic");
    }
}
