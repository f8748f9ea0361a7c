//! The languages a WebSocket stream can speak: Sluice's own frames, and the two firehose
//! protocols existing clients speak (COMPAT.md): csirtg.io's ActionCable channel and CIFv4's
//! text frames. Everything but the words is shared: the same session, plan, filters and limits.

use std::time::Duration;

use serde_json::{json, Value};

use super::Output;
use crate::wire;

/// Which protocol a connection speaks.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Dialect {
    /// `/v1/stream`: `hello`, `indicator`, `dropped`, `reset`, `plan` frames.
    Native,
    /// csirtg.io's `/firehose` (Rails ActionCable): `welcome`, then `confirm_subscription` once
    /// the client subscribes to `IndicatorsChannel`, then `{"identifier", "message"}` frames
    /// whose `message` is the indicator as a one-line JSON string with comma-joined tags.
    ActionCable,
    /// CIFv4's firehose: the text `connected`, then one CIFv4 JSON indicator per frame
    /// (`reported_at`, `first_at`, `last_at`, confidence 0–4), `ping` every 5 s when idle.
    Cif,
}

/// The channel csirtg-firehose subscribes to.
const CHANNEL: &str = "IndicatorsChannel";
/// An identifier longer than this is refused: it is echoed in every frame.
const MAX_IDENTIFIER_BYTES: usize = 1024;
/// An ActionCable connection that has not subscribed by then is closed (1008): until it does,
/// it holds a connection slot without receiving anything.
pub const SUBSCRIBE_DEADLINE: Duration = Duration::from_secs(30);

/// One connection's side of its dialect.
pub struct Speaker {
    dialect: Dialect,
    /// ActionCable: the identifier string of the confirmed subscription, echoed verbatim.
    identifier: Option<String>,
}

impl Speaker {
    pub fn new(dialect: Dialect) -> Speaker {
        Speaker {
            dialect,
            identifier: None,
        }
    }

    /// What to send first.
    pub fn greeting(&self, hello: String) -> String {
        match self.dialect {
            Dialect::Native => hello,
            Dialect::ActionCable => json!({"type": "welcome"}).to_string(),
            Dialect::Cif => "connected".to_owned(),
        }
    }

    /// Whether indicators may flow (ActionCable waits for the client's `subscribe`).
    pub fn ready(&self) -> bool {
        self.dialect != Dialect::ActionCable || self.identifier.is_some()
    }

    /// Answers a text frame from the client.
    pub fn on_client_text(&mut self, text: &str) -> Option<String> {
        if self.dialect != Dialect::ActionCable {
            return None;
        }
        let command: Value = serde_json::from_str(text).ok()?;
        let identifier = command["identifier"].as_str()?.to_owned();
        if identifier.len() > MAX_IDENTIFIER_BYTES {
            return Some(json!({"identifier": "", "type": "reject_subscription"}).to_string());
        }
        let channel = serde_json::from_str::<Value>(&identifier)
            .ok()
            .and_then(|value| value["channel"].as_str().map(str::to_owned));
        match command["command"].as_str()? {
            "subscribe" if channel.as_deref() == Some(CHANNEL) => {
                self.identifier = Some(identifier.clone());
                Some(json!({"identifier": identifier, "type": "confirm_subscription"}).to_string())
            }
            "subscribe" => {
                Some(json!({"identifier": identifier, "type": "reject_subscription"}).to_string())
            }
            "unsubscribe" if self.identifier.as_deref() == Some(identifier.as_str()) => {
                self.identifier = None;
                None
            }
            _ => None,
        }
    }

    /// The frame for one session output, or `None` when the dialect has no word for it (CIF
    /// clients print every frame as an indicator, so they get indicators only).
    pub fn render(&self, output: &Output, native: impl FnOnce() -> String) -> Option<String> {
        match (self.dialect, output) {
            (Dialect::Native, _) => Some(native()),
            (Dialect::ActionCable, Output::Indicator(entry)) => Some(
                json!({
                    "identifier": self.identifier.as_deref().unwrap_or_default(),
                    "message": csirtg_message(entry.json()),
                })
                .to_string(),
            ),
            // Frames with a `type` are ignored by csirtg-firehose, so native notices are safe.
            (Dialect::ActionCable, _) => Some(native()),
            (Dialect::Cif, Output::Indicator(entry)) => Some(cif_indicator(entry.json())),
            (Dialect::Cif, _) => None,
        }
    }

    /// Whether the dialect sends keep-alive frames of its own.
    pub fn has_keepalive(&self) -> bool {
        self.dialect != Dialect::Native
    }

    /// The dialect's own keep-alive (besides WebSocket pings): its interval and frame.
    pub fn keepalive(&self) -> Option<(Duration, String)> {
        match self.dialect {
            Dialect::Native => None,
            Dialect::ActionCable => Some((
                Duration::from_secs(3),
                json!({"type": "ping", "message": chrono::Utc::now().timestamp()}).to_string(),
            )),
            Dialect::Cif => Some((Duration::from_secs(5), "ping".to_owned())),
        }
    }
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

/// The native frame of an output (what `/v1/stream` sends).
pub fn native_frame(output: &Output) -> String {
    match output {
        Output::Indicator(entry) => entry.ws_frame().to_string(),
        Output::Dropped { count, last_id } => wire::dropped_frame(*count, "rate_limit", last_id),
        Output::Reset { reason, cursor } => wire::reset_frame(reason, cursor),
        Output::Plan(plan) => wire::plan_frame(plan),
        Output::Close { .. } => String::new(),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn action_cable_confirms_its_channel_and_rejects_others() {
        let mut speaker = Speaker::new(Dialect::ActionCable);
        assert!(!speaker.ready());
        let identifier = "{\"channel\": \"IndicatorsChannel\"}";
        let reply = speaker
            .on_client_text(&json!({"command": "subscribe", "identifier": identifier}).to_string())
            .unwrap();
        let reply: Value = serde_json::from_str(&reply).unwrap();
        assert_eq!(reply["type"], "confirm_subscription");
        assert_eq!(reply["identifier"], identifier, "echoed byte for byte");
        assert!(speaker.ready());
        let other =
            json!({"command": "subscribe", "identifier": "{\"channel\":\"Nope\"}"}).to_string();
        assert!(speaker
            .on_client_text(&other)
            .unwrap()
            .contains("reject_subscription"));
        assert!(speaker.on_client_text("not json").is_none());
        speaker.on_client_text(
            &json!({"command": "unsubscribe", "identifier": identifier}).to_string(),
        );
        assert!(!speaker.ready());
    }

    #[test]
    fn messages_take_each_dialects_shape() {
        let json = r#"{"indicator":"185.220.101.7","tags":["scanner","ssh"],"confidence":7.5,"reporttime":"2026-11-23T11:00:00Z","lasttime":"2026-11-23T11:00:00Z"}"#;
        let csirtg: Value = serde_json::from_str(&csirtg_message(json)).unwrap();
        assert_eq!(csirtg["tags"], "scanner,ssh");
        assert!(!csirtg_message(json).contains('\n'));
        let cif: Value = serde_json::from_str(&cif_indicator(json)).unwrap();
        assert_eq!(cif["confidence"], 3.0);
        assert_eq!(cif["reported_at"], "2026-11-23T11:00:00Z");
        assert_eq!(cif["last_at"], "2026-11-23T11:00:00Z");
        assert!(cif.get("reporttime").is_none());
        assert_eq!(cif["tags"], json!(["scanner", "ssh"]));
    }
}
