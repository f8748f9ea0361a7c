//! The stream's wire protocol (docs/protocol.md §4): the frames, the reasons they carry, the
//! close codes, and the error body every HTTP API answers with. One definition, used by the
//! server to write, by `sluice stream` to read, and by the tests to check.
//!
//! A WebSocket text frame and an SSE event's `data` are the same JSON object; over SSE the
//! event's name is the frame's `type` and its `id` the frame's cursor.

use std::borrow::Cow;
use std::fmt;

use serde::{Deserialize, Serialize};

use crate::{Cursor, Limits};

/// One frame of the native stream (`/v1/stream`), tagged by `type`.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(tag = "type", rename_all = "snake_case")]
pub enum Frame {
    /// First frame of every stream: the plan it runs under and where it starts.
    Hello {
        plan: String,
        limits: Limits,
        /// Delivery continues right after this cursor.
        cursor: Cursor,
    },
    /// One indicator; `id` is its cursor.
    Indicator { id: Cursor, data: serde_json::Value },
    /// The provider withdrew its reports of an indicator; `data` is the withdrawal (the
    /// indicator with `"withdrawn": true`) and `id` its cursor.
    Withdrawn { id: Cursor, data: serde_json::Value },
    /// `count` indicators were skipped; the last of them was `last_id`. Counts are exact.
    Dropped {
        count: u64,
        reason: DropReason,
        last_id: Cursor,
    },
    /// History needed to continue from the requested position is gone; delivery continues
    /// right after `cursor`.
    Reset { reason: ResetReason, cursor: Cursor },
    /// The account's plan changed; the stream now runs under `limits`.
    Plan { plan: String, limits: Limits },
    /// A frame type this version does not know (read side only: a newer server's frame is
    /// skipped, not an error).
    #[serde(other)]
    Unknown,
}

impl Frame {
    /// The frame's `type`, which is also its SSE event name.
    pub fn kind(&self) -> &'static str {
        match self {
            Frame::Hello { .. } => "hello",
            Frame::Indicator { .. } => "indicator",
            Frame::Withdrawn { .. } => "withdrawn",
            Frame::Dropped { .. } => "dropped",
            Frame::Reset { .. } => "reset",
            Frame::Plan { .. } => "plan",
            Frame::Unknown => "unknown",
        }
    }

    /// The frame as one line of JSON.
    pub fn encode(&self) -> String {
        serde_json::to_string(self).expect("frames serialise to JSON")
    }
}

/// The `indicator` frame from an entry's canonical JSON, without building a
/// `serde_json::Value`: the bytes `Frame::Indicator { id, data }.encode()` would give (a test
/// holds the two together). The hot path: encoded once per entry and node.
pub fn indicator_frame(id: &Cursor, data_json: &str) -> String {
    // The cursor alphabet is [a-z0-9.-], so it needs no escaping.
    format!(r#"{{"type":"indicator","id":"{id}","data":{data_json}}}"#)
}

/// The `withdrawn` frame, written like [`indicator_frame`].
pub fn withdrawn_frame(id: &Cursor, data_json: &str) -> String {
    format!(r#"{{"type":"withdrawn","id":"{id}","data":{data_json}}}"#)
}

/// Why indicators were skipped (`dropped` frames).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum DropReason {
    /// Over the plan's per-connection rate.
    RateLimit,
    /// A reason this version does not know (read side only).
    #[serde(other)]
    Unknown,
}

/// Why a stream was reset (`reset` frames).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum ResetReason {
    /// The log's storage was lost and started over (a new epoch): the cursor's history is gone.
    LogRestarted,
    /// Retention removed entries after the cursor.
    HistoryTrimmed,
    /// The cursor is older than the plan's replay window.
    ReplayWindow,
    /// The cursor is ahead of the log's newest entry.
    CursorAheadOfLog,
    /// A reason this version does not know (read side only).
    #[serde(other)]
    Unknown,
}

impl ResetReason {
    pub fn as_str(self) -> &'static str {
        match self {
            ResetReason::LogRestarted => "log_restarted",
            ResetReason::HistoryTrimmed => "history_trimmed",
            ResetReason::ReplayWindow => "replay_window",
            ResetReason::CursorAheadOfLog => "cursor_ahead_of_log",
            ResetReason::Unknown => "unknown",
        }
    }
}

impl fmt::Display for ResetReason {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.as_str())
    }
}

/// The WebSocket close codes a stream ends with (docs/protocol.md §4.7). Every close's reason
/// text carries the last delivered cursor.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum CloseCode {
    /// 1001: the server is shutting down; reconnect (elsewhere) from the cursor.
    Shutdown,
    /// 1002: the client broke the WebSocket protocol.
    ProtocolError,
    /// 1007: the client sent a text frame that is not UTF-8.
    InvalidData,
    /// 1008: policy (no pong within the idle timeout, no subscription in time).
    Policy,
    /// 1009: the client sent a message over the size limit.
    TooBig,
    /// 4001: the token was revoked or expired.
    TokenRevoked,
    /// 4009: the client did not read fast enough; resume from the cursor.
    SlowConsumer,
    /// 4010: the account's plan no longer allows this stream.
    PlanDisallows,
}

impl CloseCode {
    pub const ALL: [CloseCode; 8] = [
        CloseCode::Shutdown,
        CloseCode::ProtocolError,
        CloseCode::InvalidData,
        CloseCode::Policy,
        CloseCode::TooBig,
        CloseCode::TokenRevoked,
        CloseCode::SlowConsumer,
        CloseCode::PlanDisallows,
    ];

    pub const fn code(self) -> u16 {
        match self {
            CloseCode::Shutdown => 1001,
            CloseCode::ProtocolError => 1002,
            CloseCode::InvalidData => 1007,
            CloseCode::Policy => 1008,
            CloseCode::TooBig => 1009,
            CloseCode::TokenRevoked => 4001,
            CloseCode::SlowConsumer => 4009,
            CloseCode::PlanDisallows => 4010,
        }
    }

    /// The code's meaning, or `None` for a code Sluice never sends.
    pub fn from_code(code: u16) -> Option<CloseCode> {
        CloseCode::ALL
            .into_iter()
            .find(|known| known.code() == code)
    }
}

/// Every HTTP error body: `{"error": "<what went wrong and what to do>"}`.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[cfg_attr(feature = "openapi", derive(utoipa::ToSchema))]
pub struct ErrorBody<'a> {
    /// What went wrong and what to do about it.
    #[serde(borrow)]
    #[cfg_attr(feature = "openapi", schema(value_type = String))]
    pub error: Cow<'a, str>,
}

impl<'a> ErrorBody<'a> {
    pub fn new(error: impl Into<Cow<'a, str>>) -> Self {
        ErrorBody {
            error: error.into(),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::Plan;

    fn cursor(text: &str) -> Cursor {
        text.parse().unwrap()
    }

    #[test]
    fn frames_are_tagged_by_type() {
        let limits = Plan::defaults()[2].limits.clone();
        let hello = Frame::Hello {
            plan: "pro".into(),
            limits,
            cursor: cursor("e1.5-0"),
        };
        let json: serde_json::Value = serde_json::from_str(&hello.encode()).unwrap();
        assert_eq!(json["type"], "hello");
        assert_eq!(json["cursor"], "e1.5-0");
        assert_eq!(json["limits"]["max_tlp"], "amber");
        assert_eq!(serde_json::from_value::<Frame>(json).unwrap(), hello);

        let dropped = Frame::Dropped {
            count: 3,
            reason: DropReason::RateLimit,
            last_id: cursor("e1.9-1"),
        };
        assert_eq!(
            dropped.encode(),
            r#"{"type":"dropped","count":3,"reason":"rate_limit","last_id":"e1.9-1"}"#
        );
        let reset = Frame::Reset {
            reason: ResetReason::HistoryTrimmed,
            cursor: cursor("e1.2-0"),
        };
        assert_eq!(
            reset.encode(),
            r#"{"type":"reset","reason":"history_trimmed","cursor":"e1.2-0"}"#
        );
        assert_eq!(reset.kind(), "reset");
    }

    #[test]
    fn the_fast_indicator_frame_is_the_typed_one() {
        // Canonical JSON, as entries hold it: keys in order.
        let data = r#"{"confidence":7,"indicator":"185.220.101.7","tags":["scanner"]}"#;
        let id = cursor("abc.1700000000000-3");
        let fast = indicator_frame(&id, data);
        let typed = Frame::Indicator {
            id,
            data: serde_json::from_str(data).unwrap(),
        };
        assert_eq!(serde_json::from_str::<Frame>(&fast).unwrap(), typed);
        assert_eq!(fast, typed.encode());

        let withdrawal = r#"{"indicator":"185.220.101.7","withdrawn":true}"#;
        let fast = withdrawn_frame(&cursor("abc.1700000000001-0"), withdrawal);
        let typed = Frame::Withdrawn {
            id: cursor("abc.1700000000001-0"),
            data: serde_json::from_str(withdrawal).unwrap(),
        };
        assert_eq!(serde_json::from_str::<Frame>(&fast).unwrap(), typed);
        assert_eq!(fast, typed.encode());
        assert_eq!(typed.kind(), "withdrawn");
    }

    #[test]
    fn unknown_frames_and_reasons_are_readable() {
        assert_eq!(
            serde_json::from_str::<Frame>(r#"{"type":"a_later_frame","id":"x.1-0"}"#).unwrap(),
            Frame::Unknown
        );
        let reset: Frame =
            serde_json::from_str(r#"{"type":"reset","reason":"new_reason","cursor":"x.1-0"}"#)
                .unwrap();
        assert!(matches!(
            reset,
            Frame::Reset {
                reason: ResetReason::Unknown,
                ..
            }
        ));
        assert!(serde_json::from_str::<Frame>(r#"{"no_type":1}"#).is_err());
    }

    #[test]
    fn close_codes_round_trip() {
        for code in CloseCode::ALL {
            assert_eq!(CloseCode::from_code(code.code()), Some(code));
        }
        assert_eq!(CloseCode::from_code(1000), None);
        assert_eq!(CloseCode::SlowConsumer.code(), 4009);
    }

    #[test]
    fn reset_reasons_name_themselves_as_they_serialise() {
        for reason in [
            ResetReason::LogRestarted,
            ResetReason::HistoryTrimmed,
            ResetReason::ReplayWindow,
            ResetReason::CursorAheadOfLog,
        ] {
            assert_eq!(
                serde_json::to_string(&reason).unwrap(),
                format!("\"{}\"", reason.as_str())
            );
        }
    }
}
