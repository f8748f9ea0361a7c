//! The STIX `indicator` SDO (STIX 2.1 §4.7) of one Sluice indicator.

use chrono::{DateTime, Utc};
use domain::Indicator;
use serde_json::{Map, Value};

use crate::id::{identity_id, indicator_id};
use crate::marking::tlp_marking_id;
use crate::{pattern, reference, time, vocab};

/// What Sluice knows about an indicator beyond its report: whether and until when it holds.
/// The default (`valid_until: None, revoked: false`) is an open-ended indicator. TAXII passes
/// each indicator's expiry (`domain::Validity::expires`). A withdrawal
/// (`Indicator::is_withdrawn`) is revoked whatever `revoked` says.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct Lifecycle {
    /// When the indicator stops being valid: written as `valid_until`, rounded up to the
    /// millisecond and always after `valid_from` (an expiry at or before the report becomes
    /// `valid_from` + 1 ms: already expired, the nearest STIX can say). `None`: open-ended.
    pub valid_until: Option<DateTime<Utc>>,
    /// Withdrawn by its provider or by Sluice: `revoked: true` (left out when false, STIX's
    /// default).
    pub revoked: bool,
}

/// The `indicator` object for `indicator`. See the crate documentation for the mapping.
pub fn indicator(indicator: &Indicator, lifecycle: Lifecycle) -> Value {
    let (created, modified) = versions(indicator);
    let mut object = Map::new();
    let mut put = |key: &str, value: Value| {
        object.insert(key.to_owned(), value);
    };
    put("type", "indicator".into());
    put("spec_version", crate::SPEC_VERSION.into());
    put(
        "id",
        indicator_id(indicator.provider(), indicator.indicator()).into(),
    );
    // `modified` is also `valid_from`, and usually `created`: written once.
    let modified_text = time::format(modified);
    let created_text = match created == modified {
        true => modified_text.clone(),
        false => time::format(created),
    };
    put("created", created_text.into());
    put("modified", modified_text.clone().into());
    put("created_by_ref", identity_id(indicator.provider()).into());
    put("name", indicator.indicator().into());
    put("description", description(indicator).into());
    put(
        "indicator_types",
        vocab::indicator_types(indicator.tags()).into(),
    );
    put("pattern", pattern::pattern(indicator).into());
    put("pattern_type", "stix".into());
    put("pattern_version", crate::SPEC_VERSION.into());
    put("valid_from", modified_text.into());
    if let Some(until) = lifecycle.valid_until {
        // Strictly after `valid_from` (a STIX rule); at the far end of the range the clamp in
        // `time::format` would undo the + 1, but a report is never from the year 9999.
        let until = time::ceil_millis(until).max(modified + 1);
        put("valid_until", time::format(until).into());
    }
    if !indicator.tags().is_empty() {
        put("labels", indicator.tags().into());
    }
    put(
        "confidence",
        vocab::confidence(indicator.confidence()).into(),
    );
    if lifecycle.revoked || indicator.is_withdrawn() {
        put("revoked", true.into());
    }
    let references = reference::external_references(indicator);
    if !references.is_empty() {
        put("external_references", references.into());
    }
    put(
        "object_marking_refs",
        vec![tlp_marking_id(indicator.tlp())].into(),
    );
    Value::Object(object)
}

/// The object's `created` and `modified`, in milliseconds (see the crate documentation):
/// `modified` is the report's time, `created` the provider's first sighting when it is earlier,
/// else the same.
pub(crate) fn versions(indicator: &Indicator) -> (i64, i64) {
    let modified = time::floor_millis(indicator.reporttime());
    let created = indicator
        .firsttime()
        .map_or(modified, |first| time::floor_millis(first).min(modified));
    (created, modified)
}

/// The provider's `description`, or what the report says when it has none (STIX wants both a
/// name and a description on an indicator).
fn description(indicator: &Indicator) -> String {
    match indicator.description() {
        Some(text) if !text.trim().is_empty() => text.to_owned(),
        _ => format!("{} reported by {}", indicator.itype(), indicator.provider()),
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::testing::{at, report};
    use serde_json::json;

    #[test]
    fn maps_every_field() {
        let object = indicator(
            &report(json!({
                "indicator": "185.20.30.40",
                "provider": "csirtg.io",
                "tags": "scanner,ssh",
                "confidence": 7.25,
                "tlp": "green",
                "reporttime": "2016-03-23T20:22:27.123456Z",
                "firsttime": "2016-03-22T08:00:00Z",
                "description": "sourced from firewall logs",
                "altid": "https://csirtg.io/indicators/337401",
                "portlist": "22",
            })),
            Lifecycle::default(),
        );
        assert_eq!(
            object,
            json!({
                "type": "indicator",
                "spec_version": "2.1",
                "id": "indicator--ccfb7495-b2fe-5b7f-8c96-077ab1a9fbbc",
                "created": "2016-03-22T08:00:00.000Z",
                "modified": "2016-03-23T20:22:27.123Z",
                "created_by_ref": "identity--d01b9b4f-3909-524d-bae5-12ff54431432",
                "name": "185.20.30.40",
                "description": "sourced from firewall logs",
                "indicator_types": ["anomalous-activity"],
                "pattern": "[ipv4-addr:value = '185.20.30.40']",
                "pattern_type": "stix",
                "pattern_version": "2.1",
                "valid_from": "2016-03-23T20:22:27.123Z",
                "labels": ["scanner", "ssh"],
                "confidence": 73,
                "external_references": [{
                    "source_name": "csirtg.io",
                    "description": "altid",
                    "url": "https://csirtg.io/indicators/337401",
                }],
                "object_marking_refs": ["marking-definition--34098fce-860f-48ae-8e50-ebd3cc5e41da"],
            })
        );
    }

    #[test]
    fn a_later_report_is_a_newer_version_of_the_same_object() {
        let first = indicator(
            &report(json!({"indicator": "evil.example.net", "reporttime": "2016-03-23T20:00:00Z"})),
            Lifecycle::default(),
        );
        let later = indicator(
            &report(
                json!({"indicator": "EVIL.example.net.", "reporttime": "2016-03-24T20:00:00Z"}),
            ),
            Lifecycle::default(),
        );
        assert_eq!(first["id"], later["id"]);
        assert!(later["modified"].as_str() > first["modified"].as_str());
        let other = indicator(
            &report(json!({"indicator": "evil.example.net", "provider": "spamhaus"})),
            Lifecycle::default(),
        );
        assert_ne!(first["id"], other["id"]);
    }

    #[test]
    fn created_is_never_after_modified() {
        let object = indicator(
            &report(json!({
                "indicator": "evil.example.net",
                "reporttime": "2016-03-23T20:00:00Z",
                "firsttime": "2016-03-25T00:00:00Z",
            })),
            Lifecycle::default(),
        );
        assert_eq!(object["created"], "2016-03-23T20:00:00.000Z");
        assert_eq!(object["modified"], "2016-03-23T20:00:00.000Z");
    }

    #[test]
    fn lifecycle_sets_valid_until_and_revoked() {
        let report = report(json!({
            "indicator": "evil.example.net",
            "reporttime": "2016-03-23T20:00:00Z",
        }));
        let open = indicator(&report, Lifecycle::default());
        assert!(open.get("valid_until").is_none() && open.get("revoked").is_none());
        let expiring = indicator(
            &report,
            Lifecycle {
                valid_until: Some(at("2016-03-24T20:00:00.0001Z")),
                revoked: true,
            },
        );
        assert_eq!(expiring["valid_until"], "2016-03-24T20:00:00.001Z");
        assert_eq!(expiring["revoked"], true);
        for until in ["2016-03-23T20:00:00Z", "2016-03-01T00:00:00Z"] {
            let expired = indicator(
                &report,
                Lifecycle {
                    valid_until: Some(at(until)),
                    revoked: false,
                },
            );
            assert_eq!(
                expired["valid_until"], "2016-03-23T20:00:00.001Z",
                "{until}"
            );
        }
    }

    #[test]
    fn a_withdrawal_is_the_revoked_newest_version_of_its_report() {
        let report = report(json!({
            "indicator": "evil.example.net",
            "reporttime": "2016-03-23T20:00:00Z",
        }));
        let later = report.reporttime() + chrono::TimeDelta::hours(2);
        let withdrawal = Indicator::withdrawal_of(&report, later);
        let (before, after) = (
            indicator(&report, Lifecycle::default()),
            indicator(&withdrawal, Lifecycle::default()),
        );
        assert_eq!(after["revoked"], true);
        assert_eq!(after["id"], before["id"], "the same object");
        assert!(after["modified"].as_str() > before["modified"].as_str());
        assert_eq!(after["created"], before["created"]);
    }

    #[test]
    fn optional_properties_are_left_out_or_filled_in() {
        let object = indicator(
            &report(json!({"indicator": "evil.example.net", "provider": "spamhaus"})),
            Lifecycle::default(),
        );
        assert!(object.get("labels").is_none());
        assert!(object.get("external_references").is_none());
        assert_eq!(object["indicator_types"], json!(["unknown"]));
        assert_eq!(object["description"], "fqdn reported by spamhaus");
        assert_eq!(object["confidence"], 50, "CIF's default confidence, 5");
        assert_eq!(
            object["object_marking_refs"],
            json!([tlp_marking_id(domain::Tlp::Amber)]),
            "Sluice's default TLP"
        );
    }
}
