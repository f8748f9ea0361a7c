//! CIFv4's firehose (`cif-firehose`): the text `connected`, then one CIFv4 JSON indicator per
//! frame (`reported_at`, `first_at`, `last_at`, confidence on CIFv4's 0–4 scale), and `ping`
//! every 5 s. CIF clients print every frame as an indicator, so they get indicators only (no
//! withdrawals).

use std::time::Duration;

use axum::extract::ws::Utf8Bytes;
use domain::Frame;
use serde_json::{json, Value};

use super::Dialect;
use crate::frames::Encoding;
use crate::stream::Output;

/// CIFv4's protocol.
pub struct Cif;

impl Dialect for Cif {
    const NAME: &'static str = "cif";
    const KEEPALIVE: Option<Duration> = Some(Duration::from_secs(5));

    fn greeting(&self, _hello: &Frame) -> Utf8Bytes {
        Utf8Bytes::from_static("connected")
    }

    fn encode(&self, output: &Output) -> Option<Utf8Bytes> {
        match output {
            // CIF clients would print a withdrawal as one more indicator.
            Output::Indicator(entry) if entry.indicator.is_withdrawn() => None,
            Output::Indicator(entry) => {
                Some(entry.encoded(Encoding::Cif, |entry| cif_indicator(entry.json())))
            }
            _ => None,
        }
    }

    fn keepalive(&self) -> Option<Utf8Bytes> {
        Some(Utf8Bytes::from_static("ping"))
    }
}

/// CIFv4's field names and its 0–4 confidence scale (CIFv3's 0–10 × 0.4).
fn cif_indicator(json: &str) -> String {
    let Ok(Value::Object(mut object)) = serde_json::from_str::<Value>(json) else {
        return json.to_owned();
    };
    for (from, to) in [
        ("reporttime", "reported_at"),
        ("firsttime", "first_at"),
        ("lasttime", "last_at"),
    ] {
        if let Some(value) = object.remove(from) {
            object.insert(to.into(), value);
        }
    }
    if let Some(confidence) = object.get("confidence").and_then(Value::as_f64) {
        let scaled = (confidence * 0.4 * 100.0).round() / 100.0;
        object.insert("confidence".into(), json!(scaled));
    }
    Value::Object(object).to_string()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn indicators_take_cifv4s_shape() {
        let json = r#"{"indicator":"185.220.101.7","tags":["scanner","ssh"],"confidence":7.5,"reporttime":"2026-11-23T11:00:00Z","lasttime":"2026-11-23T11:00:00Z"}"#;
        let cif: Value = serde_json::from_str(&cif_indicator(json)).unwrap();
        assert_eq!(cif["confidence"], 3.0);
        assert_eq!(cif["reported_at"], "2026-11-23T11:00:00Z");
        assert_eq!(cif["last_at"], "2026-11-23T11:00:00Z");
        assert!(cif.get("reporttime").is_none());
        assert_eq!(cif["tags"], json!(["scanner", "ssh"]));
    }
}
