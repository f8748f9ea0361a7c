//! csirtg.io's `/firehose` (Rails ActionCable), as `csirtg-firehose` speaks it: `welcome`, then
//! `confirm_subscription` once the client subscribes to `IndicatorsChannel`, then
//! `{"identifier", "message"}` frames whose `message` is the indicator as a one-line JSON
//! string with comma-joined tags, and a `ping` every 3 s.

use std::time::Duration;

use axum::extract::ws::Utf8Bytes;
use domain::Frame;
use serde_json::{json, Value};

use super::{Dialect, Native};
use crate::frames::Encoding;
use crate::stream::Output;

/// The channel csirtg-firehose subscribes to.
const CHANNEL: &str = "IndicatorsChannel";
/// An identifier longer than this is refused: it is echoed in every frame.
const MAX_IDENTIFIER_BYTES: usize = 1024;

/// One connection's side of the ActionCable protocol.
#[derive(Default)]
pub struct ActionCable {
    /// The confirmed subscription's identifier as a JSON string, echoed verbatim in every frame.
    identifier: Option<String>,
}

impl Dialect for ActionCable {
    const NAME: &'static str = "action_cable";
    const KEEPALIVE: Option<Duration> = Some(Duration::from_secs(3));

    fn greeting(&self, _hello: &Frame) -> Utf8Bytes {
        Utf8Bytes::from_static(r#"{"type":"welcome"}"#)
    }

    fn encode(&self, output: &Output) -> Option<Utf8Bytes> {
        match output {
            // csirtg-firehose prints every message as an indicator.
            Output::Indicator(entry) if entry.indicator.is_withdrawn() => None,
            Output::Indicator(entry) => {
                let message = entry.encoded(Encoding::ActionCableMessage, |entry| {
                    Value::from(csirtg_message(entry.json())).to_string()
                });
                let identifier = self.identifier.as_deref().unwrap_or(r#""""#);
                Some(format!(r#"{{"identifier":{identifier},"message":{message}}}"#).into())
            }
            // Frames with a `type` are ignored by csirtg-firehose, so native notices are safe.
            notice => Native.encode(notice),
        }
    }

    fn ready(&self) -> bool {
        self.identifier.is_some()
    }

    fn on_client_text(&mut self, text: &str) -> Option<Utf8Bytes> {
        let command: Value = serde_json::from_str(text).ok()?;
        let identifier = command["identifier"].as_str()?;
        if identifier.len() > MAX_IDENTIFIER_BYTES {
            return Some(reply("", "reject_subscription"));
        }
        let channel = serde_json::from_str::<Value>(identifier)
            .ok()
            .and_then(|value| value["channel"].as_str().map(str::to_owned));
        let quoted = Value::from(identifier).to_string();
        match command["command"].as_str()? {
            "subscribe" if channel.as_deref() == Some(CHANNEL) => {
                self.identifier = Some(quoted);
                Some(reply(identifier, "confirm_subscription"))
            }
            "subscribe" => Some(reply(identifier, "reject_subscription")),
            "unsubscribe" if self.identifier.as_deref() == Some(quoted.as_str()) => {
                self.identifier = None;
                None
            }
            _ => None,
        }
    }

    fn keepalive(&self) -> Option<Utf8Bytes> {
        let frame = json!({"type": "ping", "message": chrono::Utc::now().timestamp()});
        Some(frame.to_string().into())
    }
}

fn reply(identifier: &str, kind: &str) -> Utf8Bytes {
    json!({"identifier": identifier, "type": kind})
        .to_string()
        .into()
}

/// csirtg.io's message: the indicator as one line of JSON, tags joined by commas.
fn csirtg_message(json: &str) -> String {
    let Ok(Value::Object(mut object)) = serde_json::from_str::<Value>(json) else {
        return json.to_owned();
    };
    if let Some(Value::Array(tags)) = object.get("tags") {
        let joined = tags
            .iter()
            .filter_map(Value::as_str)
            .collect::<Vec<_>>()
            .join(",");
        object.insert("tags".into(), Value::from(joined));
    }
    Value::Object(object).to_string()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn confirms_its_channel_and_rejects_others() {
        let mut cable = ActionCable::default();
        assert!(!cable.ready());
        let identifier = "{\"channel\": \"IndicatorsChannel\"}";
        let reply = cable
            .on_client_text(&json!({"command": "subscribe", "identifier": identifier}).to_string())
            .unwrap();
        let reply: Value = serde_json::from_str(&reply).unwrap();
        assert_eq!(reply["type"], "confirm_subscription");
        assert_eq!(reply["identifier"], identifier, "echoed byte for byte");
        assert!(cable.ready());
        let other =
            json!({"command": "subscribe", "identifier": "{\"channel\":\"Nope\"}"}).to_string();
        assert!(cable
            .on_client_text(&other)
            .unwrap()
            .contains("reject_subscription"));
        assert!(cable.on_client_text("not json").is_none());
        cable.on_client_text(
            &json!({"command": "unsubscribe", "identifier": identifier}).to_string(),
        );
        assert!(!cable.ready());
    }

    #[test]
    fn messages_are_one_line_with_joined_tags() {
        let json = r#"{"indicator":"185.220.101.7","tags":["scanner","ssh"],"confidence":7.5}"#;
        let csirtg: Value = serde_json::from_str(&csirtg_message(json)).unwrap();
        assert_eq!(csirtg["tags"], "scanner,ssh");
        assert!(!csirtg_message(json).contains('\n'));
    }

    #[test]
    fn indicator_frames_echo_the_identifier() {
        let mut cable = ActionCable::default();
        let identifier = "{\"channel\": \"IndicatorsChannel\", \"itype\": \"ipv4\"}";
        cable
            .on_client_text(&json!({"command": "subscribe", "identifier": identifier}).to_string());
        let indicator = domain::Indicator::from_json(
            json!({"indicator": "185.220.101.7", "provider": "p", "tags": ["a", "b"]}),
            domain::Provenance::Trusted,
            chrono::Utc::now(),
        )
        .unwrap();
        let entry = sluice_log::Entry::new(
            "e.1-0".parse().unwrap(),
            indicator.clone(),
            indicator.to_json().to_string().into(),
        );
        let frame = cable
            .encode(&Output::Indicator(crate::frames::FramedEntry::new(entry)))
            .unwrap();
        let frame: Value = serde_json::from_str(&frame).unwrap();
        assert_eq!(frame["identifier"], identifier);
        let message: Value = serde_json::from_str(frame["message"].as_str().unwrap()).unwrap();
        assert_eq!(message["indicator"], "185.220.101.7");
        assert_eq!(message["tags"], "a,b");
    }
}
