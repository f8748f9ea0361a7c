//! What crosses the gateway's HTTP boundary besides the stream's frames (`domain::protocol`):
//! the SSE event encoding and the ingest API's bodies.

use serde::{Deserialize, Serialize};

pub use domain::ErrorBody;

/// One SSE event. `data` is one JSON document; should it ever contain a line break, each line
/// becomes its own `data:` field (which the SSE parser joins back), so no payload can forge a
/// field or an event.
pub fn sse_event(event: &str, id: &str, data: &str) -> String {
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
    out
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
#[derive(Debug, Serialize, Deserialize, utoipa::ToSchema)]
pub struct IngestResponse {
    /// How many items were stored.
    pub accepted: usize,
    /// The cursors of the stored items, in the order they were sent.
    pub ids: Vec<String>,
    /// The items refused, each with its reason; the others were stored all the same.
    pub rejected: Vec<RejectedItem>,
}

/// The answer to `DELETE /v1/indicators/{id}`.
#[derive(Debug, Serialize, Deserialize, utoipa::ToSchema)]
pub struct WithdrawalResponse {
    /// The withdrawal's cursor in the log.
    pub id: String,
    /// The indicator withdrawn.
    pub indicator: String,
    /// Its STIX object's id (TAXII shows it revoked from now on).
    pub object: String,
}

/// One refused item of a publish request.
#[derive(Debug, Serialize, Deserialize, utoipa::ToSchema)]
pub struct RejectedItem {
    /// Its position in the request (0-based; NDJSON: among the non-blank lines).
    pub index: usize,
    /// Which field was wrong and why.
    pub error: String,
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
                stream.push_str(&sse_event("indicator", &id, payload));
                // The SSE grammar normalises every line end inside data to `\n`.
                let normalised = split_lines(payload).join("\n");
                expected.push((id, "indicator".to_owned(), normalised));
            }
            prop_assert_eq!(parse_sse(&stream), expected);
        }
    }
}
