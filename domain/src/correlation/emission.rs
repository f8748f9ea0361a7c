//! A decision of the rule, and the derived indicator it becomes (docs/protocol.md §7.5).

use chrono::{DateTime, Utc};
use serde_json::{json, Value};

use super::key::Key;
use crate::indicator::CORRELATOR_PROVIDER;
use crate::{Indicator, Provenance, Rejection, Tlp};

/// One report behind an emission: each counted provider with its latest report in the window.
#[derive(Debug, Clone, PartialEq)]
pub struct Source {
    pub provider: String,
    pub time: i64,
}

/// The rule fired for `key` at `time`.
#[derive(Debug, Clone, PartialEq)]
pub struct Emission {
    pub rule: String,
    pub key: Key,
    /// T: the report time at which the condition first held.
    pub time: i64,
    /// Distinct providers in the window at T.
    pub count: usize,
    /// The earliest and latest of their reports.
    pub first: i64,
    pub last: i64,
    /// Ordered by time, then provider; the latest [`super::engine::MAX_SOURCES`] of them.
    pub sources: Vec<Source>,
    /// At least the rule's floor and the sources' highest.
    pub confidence: f64,
    /// The most restrictive of the sources': a derived indicator never shares more widely than
    /// what it was derived from.
    pub tlp: Tlp,
    /// `correlated`, the rule's considered tags, then the union of the sources' tags, sorted.
    pub tags: Vec<String>,
}

impl Emission {
    /// The series this emission belongs to: one rule, one key. The log keeps the newest
    /// emission time per series and appends an emission only a full window after it, so a
    /// replica or a restart deciding it again (or deciding an early one from a history that
    /// retention shortened) appends nothing.
    pub fn series(&self) -> String {
        format!("correlation\0{}\0{}", self.rule, self.key)
    }

    /// The derived indicator, validated like any other.
    pub fn to_indicator(&self, now: DateTime<Utc>) -> Result<Indicator, Rejection> {
        let (indicator, itype) = self.key.indicator();
        let sources: Vec<Value> = self
            .sources
            .iter()
            .map(|source| json!({"provider": source.provider, "reporttime": rfc3339(source.time)}))
            .collect();
        let mut object = json!({
            "indicator": indicator,
            "itype": itype,
            "provider": CORRELATOR_PROVIDER,
            "tags": self.tags,
            "confidence": self.confidence,
            "tlp": self.tlp.as_str(),
            "reporttime": rfc3339(self.time),
            "firsttime": rfc3339(self.first),
            "lasttime": rfc3339(self.last),
            "count": self.count,
            "sources": sources,
            "rule": self.rule,
            "description": format!(
                "{} providers reported {indicator} within the `{}` rule's window",
                self.count,
                self.rule
            ),
        });
        if let (Key::Asn(number), Value::Object(map)) = (self.key, &mut object) {
            map.insert("asn".to_owned(), Value::from(number));
        }
        Indicator::from_json(object, Provenance::Trusted, now)
    }
}

fn rfc3339(micros: i64) -> String {
    DateTime::<Utc>::from_timestamp_micros(micros)
        .map(crate::indicator::format_time)
        .unwrap_or_default()
}
