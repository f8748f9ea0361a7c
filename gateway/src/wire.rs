//! What crosses the gateway's HTTP boundary: stream frames (WebSocket and SSE) and API bodies.
//!
//! Frames are built as strings here and nowhere else. Indicator frames are encoded once per entry
//! (see `log::Entry`) and shared by every subscriber.

use bytes::Bytes;
use domain::{Cursor, PlanLimits};
use serde::Serialize;
use serde_json::json;

/// WebSocket close codes of SPEC §4 beyond the standard ones.
pub mod close {
    pub const TOKEN_REVOKED: u16 = 4001;
    pub const SLOW_CONSUMER: u16 = 4009;
    pub const PLAN_DISALLOWS: u16 = 4010;
}

/// `{"type":"indicator","id":"<cursor>","data":{…}}`. `json` is the entry's canonical JSON.
pub fn indicator_frame(cursor: &Cursor, json: &str) -> String {
    // The cursor alphabet is [a-z0-9.-], so it needs no escaping.
    format!(r#"{{"type":"indicator","id":"{cursor}","data":{json}}}"#)
}

/// The plan's limits as `hello` and `plan` frames state them (`null` = unlimited).
pub fn limits(plan: &PlanLimits) -> serde_json::Value {
    json!({
        "firehose": plan.firehose,
        "sample_per_second": plan.sample_per_second,
        "max_connections": plan.max_connections,
        "rate_per_second": plan.rate_per_second,
        "burst": plan.burst,
        "replay_window_seconds": plan.replay_window.as_secs(),
        "max_tlp": plan.max_tlp.as_str(),
        "correlated": plan.correlated,
    })
}

pub fn hello_frame(plan: &PlanLimits, cursor: &Cursor) -> String {
    json!({
        "type": "hello",
        "plan": plan.name,
        "limits": limits(plan),
        "cursor": cursor.to_string(),
    })
    .to_string()
}

pub fn plan_frame(plan: &PlanLimits) -> String {
    json!({"type": "plan", "plan": plan.name, "limits": limits(plan)}).to_string()
}

pub fn dropped_frame(count: u64, reason: &str, last_id: &Cursor) -> String {
    json!({"type": "dropped", "count": count, "reason": reason, "last_id": last_id.to_string()})
        .to_string()
}

pub fn reset_frame(reason: &str, cursor: &Cursor) -> String {
    json!({"type": "reset", "reason": reason, "cursor": cursor.to_string()}).to_string()
}

/// One SSE event. `data` is one JSON document; should it ever contain a line break, each line
/// becomes its own `data:` field (which the SSE parser joins back), so no payload can forge a
/// field or an event.
pub fn sse_event(event: &str, id: &str, data: &str) -> Bytes {
    debug_assert!(!id.contains(['\n', '\r']) && !event.contains(['\n', '\r']));
    let mut out = String::with_capacity(data.len() + id.len() + event.len() + 24);
    out.push_str("id: ");
    out.push_str(id);
    out.push_str("\nevent: ");
    out.push_str(event);
    out.push('\n');
    for line in split_lines(data) {
        out.push_str("data: ");
        out.push_str(line);
        out.push('\n');
    }
    out.push('\n');
    Bytes::from(out)
}

/// Splits on `\r\n`, `\n` and `\r`, the three line ends of the SSE grammar.
fn split_lines(text: &str) -> Vec<&str> {
    let mut lines = Vec::new();
    let mut rest = text;
    while let Some(at) = rest.find(['\n', '\r']) {
        lines.push(&rest[..at]);
        let skip = if rest[at..].starts_with("\r\n") { 2 } else { 1 };
        rest = &rest[at + skip..];
    }
    lines.push(rest);
    lines
}

/// The answer to `POST /v1/indicators`.
#[derive(Debug, Serialize, utoipa::ToSchema)]
pub struct IngestResponse {
    /// How many items were stored.
    pub accepted: usize,
    /// The cursors of the stored items, in the order they were sent.
    pub ids: Vec<String>,
    /// The items refused, each with its reason; the others were stored all the same.
    pub rejected: Vec<RejectedItem>,
}

/// One refused item of a publish request.
#[derive(Debug, Serialize, utoipa::ToSchema)]
pub struct RejectedItem {
    /// Its position in the request (0-based; NDJSON: among the non-blank lines).
    pub index: usize,
    /// Which field was wrong and why.
    pub error: String,
}

/// Every error body: `{"error": "..."}` with a message that says what to do.
#[derive(Debug, Serialize, utoipa::ToSchema)]
pub struct ErrorBody<'a> {
    /// What went wrong and what to do about it.
    pub error: &'a str,
}

#[cfg(test)]
mod tests {
    use super::*;
    use proptest::prelude::*;

    /// A minimal SSE parser following the WHATWG event-stream grammar for the fields we use.
    fn parse_sse(stream: &str) -> Vec<(String, String, String)> {
        let mut events = Vec::new();
        let (mut id, mut event, mut data): (String, String, Vec<String>) = Default::default();
        for line in split_lines(stream) {
            if line.is_empty() {
                if !data.is_empty() {
                    events.push((id.clone(), event.clone(), data.join("\n")));
                }
                event.clear();
                data.clear();
                continue;
            }
            let (field, value) = line.split_once(':').unwrap_or((line, ""));
            let value = value.strip_prefix(' ').unwrap_or(value);
            match field {
                "id" => id = value.to_owned(),
                "event" => event = value.to_owned(),
                "data" => data.push(value.to_owned()),
                _ => {}
            }
        }
        events
    }

    proptest! {
        #[test]
        fn sse_encoding_cannot_be_forged(payloads in proptest::collection::vec("\\PC*|[\\r\\n a-z:]*", 1..5)) {
            let mut stream = String::new();
            let mut expected = Vec::new();
            for (n, payload) in payloads.iter().enumerate() {
                let id = format!("e.{n}-0");
                stream.push_str(std::str::from_utf8(&sse_event("indicator", &id, payload)).unwrap());
                // The SSE grammar normalises every line end inside data to `\n`.
                let normalised = split_lines(payload).join("\n");
                expected.push((id, "indicator".to_owned(), normalised));
            }
            prop_assert_eq!(parse_sse(&stream), expected);
        }
    }

    #[test]
    fn indicator_frame_is_one_json_object() {
        let cursor: Cursor = "abc.1-0".parse().unwrap();
        let frame = indicator_frame(&cursor, r#"{"indicator":"1.1.1.1"}"#);
        let value: serde_json::Value = serde_json::from_str(&frame).unwrap();
        assert_eq!(value["type"], "indicator");
        assert_eq!(value["id"], "abc.1-0");
        assert_eq!(value["data"]["indicator"], "1.1.1.1");
    }
}
