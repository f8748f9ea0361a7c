//! Why a stream ends, typed: the close code a client sees, the label the `stream_closes` metric
//! counts, and the text before the cursor in the close reason.

use domain::{CloseCode, Cursor};

/// Every way the server ends a stream.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum CloseReason {
    /// The node is shutting down (SIGTERM).
    Shutdown,
    /// The peer answered no ping within the idle timeout.
    Idle,
    /// An ActionCable client did not subscribe in time.
    NoSubscription,
    /// The peer sent a message over the size limit.
    TooBig,
    /// The peer sent a text frame that is not UTF-8.
    InvalidUtf8,
    /// The peer broke the WebSocket protocol.
    ProtocolError,
    /// The peer did not take a frame within the slow-consumer timeout.
    SlowConsumer,
    TokenRevoked,
    TokenExpired,
    /// The account's plan no longer allows this stream.
    PlanDisallows,
    /// An operator closed it (`DELETE /v1/admin/connections/{id}`): reconnect from the cursor.
    AdminClosed,
}

impl CloseReason {
    pub fn code(self) -> CloseCode {
        match self {
            CloseReason::Shutdown | CloseReason::AdminClosed => CloseCode::Shutdown,
            CloseReason::Idle | CloseReason::NoSubscription => CloseCode::Policy,
            CloseReason::TooBig => CloseCode::TooBig,
            CloseReason::InvalidUtf8 => CloseCode::InvalidData,
            CloseReason::ProtocolError => CloseCode::ProtocolError,
            CloseReason::SlowConsumer => CloseCode::SlowConsumer,
            CloseReason::TokenRevoked | CloseReason::TokenExpired => CloseCode::TokenRevoked,
            CloseReason::PlanDisallows => CloseCode::PlanDisallows,
        }
    }

    /// The `reason` label of `sluice_stream_closes`.
    pub fn label(self) -> &'static str {
        match self {
            CloseReason::Shutdown => "shutdown",
            CloseReason::Idle | CloseReason::NoSubscription => "idle",
            CloseReason::TooBig => "too_big",
            CloseReason::InvalidUtf8 => "invalid_utf8",
            CloseReason::ProtocolError => "protocol_error",
            CloseReason::SlowConsumer => "slow_consumer",
            CloseReason::TokenRevoked | CloseReason::TokenExpired => "token_revoked",
            CloseReason::PlanDisallows => "plan",
            CloseReason::AdminClosed => "admin",
        }
    }

    fn describe(self) -> &'static str {
        match self {
            CloseReason::Shutdown => "server shutting down",
            CloseReason::Idle => "no pong within the idle timeout",
            CloseReason::NoSubscription => "no subscription to IndicatorsChannel",
            CloseReason::TooBig => "message too big",
            CloseReason::InvalidUtf8 => "invalid UTF-8",
            CloseReason::ProtocolError => "protocol error",
            CloseReason::SlowConsumer => "slow consumer",
            CloseReason::TokenRevoked => "token revoked",
            CloseReason::TokenExpired => "token expired",
            CloseReason::PlanDisallows => "the account's plan no longer allows this stream",
            CloseReason::AdminClosed => "closed by an operator",
        }
    }

    /// The close frame's reason: what happened and the last delivered cursor, within the 123
    /// bytes RFC 6455 allows.
    pub fn text(self, last_delivered: &Cursor) -> String {
        let mut text = format!("{}; resume from {last_delivered}", self.describe());
        let mut end = text.len().min(123);
        while !text.is_char_boundary(end) {
            end -= 1;
        }
        text.truncate(end);
        text
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn every_reason_names_the_cursor_within_the_limit() {
        let cursor: Cursor = "abcdefghijkl.18446744073709551615-18446744073709551615"
            .parse()
            .unwrap();
        for reason in [
            CloseReason::Shutdown,
            CloseReason::Idle,
            CloseReason::NoSubscription,
            CloseReason::TooBig,
            CloseReason::InvalidUtf8,
            CloseReason::ProtocolError,
            CloseReason::SlowConsumer,
            CloseReason::TokenRevoked,
            CloseReason::TokenExpired,
            CloseReason::PlanDisallows,
            CloseReason::AdminClosed,
        ] {
            let text = reason.text(&cursor);
            assert!(text.len() <= 123, "{text}");
            assert!(text.ends_with(&cursor.to_string()), "{text}");
        }
        assert_eq!(CloseReason::TokenExpired.code().code(), 4001);
    }
}
