//! Test inputs: validated indicators as the log holds them, and a real derived indicator.

use chrono::{DateTime, Utc};
use domain::correlation::{Emission, Key, Source};
use domain::{Indicator, Provenance, Tlp};
use serde_json::Value;

/// A time written in RFC 3339.
pub(crate) fn at(text: &str) -> DateTime<Utc> {
    DateTime::parse_from_rfc3339(text)
        .expect("a test time")
        .to_utc()
}

/// The ingest time of every test report.
pub(crate) fn now() -> DateTime<Utc> {
    at("2026-12-04T03:00:00Z")
}

/// `object` validated as Sluice stores it, from provider `csirtg.io` unless it names another.
pub(crate) fn report(mut object: Value) -> Indicator {
    if let Value::Object(map) = &mut object {
        map.entry("provider").or_insert("csirtg.io".into());
    }
    Indicator::from_json(object, Provenance::Trusted, now()).expect("a valid test indicator")
}

/// The correlator's derived indicator for `key`, from three providers, as
/// `Emission::to_indicator` makes it.
pub(crate) fn correlated(key: Key) -> Indicator {
    let micros = |text: &str| at(text).timestamp_micros();
    let source = |provider: &str, time: &str| Source {
        provider: provider.to_owned(),
        time: micros(time),
    };
    Emission {
        rule: "scanner".to_owned(),
        key,
        time: micros("2026-12-04T02:30:00Z"),
        count: 3,
        first: micros("2026-12-04T01:00:00Z"),
        last: micros("2026-12-04T02:30:00Z"),
        sources: vec![
            source("alpha.example", "2026-12-04T01:00:00Z"),
            source("bravo.example", "2026-12-04T02:00:00Z"),
            source("charlie.example", "2026-12-04T02:30:00Z"),
        ],
        confidence: 9.0,
        tlp: Tlp::Green,
        tags: vec!["correlated".to_owned(), "scanner".to_owned()],
    }
    .to_indicator(now())
    .expect("a valid derived indicator")
}
