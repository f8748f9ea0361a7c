//! The WebSocket transport of `/v1/stream`.
//!
//! One task per connection owns both halves of the socket. It keeps reading until the peer's
//! close completes (tungstenite answers a peer's Close only if we keep reading), pings every
//! 20 s, closes a peer silent for 60 s, and closes with the last delivered cursor in the reason so
//! the client can resume exactly there.

use std::time::Duration;

use axum::extract::ws::{close_code, CloseFrame, Message, Utf8Bytes, WebSocket, WebSocketUpgrade};
use axum::response::Response;
use domain::Cursor;
use futures::stream::SplitStream;
use futures::{SinkExt, StreamExt};
use tokio::time::{timeout, Instant};

use super::dialect::{native_frame, Dialect, Speaker, SUBSCRIBE_DEADLINE};
use super::{Output, Session};
use crate::metrics::{ReasonLabels, TransportLabels};
use crate::wire::{self, close};
use crate::{AppState, Config};

/// The production WebSocket settings, shared by every WebSocket endpoint (and by the Autobahn
/// conformance echo server, so what is tested is what runs).
pub fn configure(upgrade: WebSocketUpgrade, config: &Config) -> WebSocketUpgrade {
    upgrade
        // tungstenite's defaults (128 KiB buffers, 64 MiB messages) would cost ~256 KiB per idle
        // connection and let a client make us buffer 64 MiB; subscribers send next to nothing.
        .read_buffer_size(config.ws_read_buffer)
        .write_buffer_size(0)
        .max_write_buffer_size(config.ws_max_write_buffer)
        .max_message_size(config.max_message_bytes)
        .max_frame_size(config.max_message_bytes)
}

/// Applies the production settings and hands the socket to `serve`, speaking `dialect`.
pub fn upgrade(
    upgrade: WebSocketUpgrade,
    session: Session,
    state: AppState,
    dialect: Dialect,
) -> Response {
    // Tracked from now, not from when the upgrade completes: shutdown must wait for a socket
    // whose 101 is still in flight too.
    let tracked = state.tracker.token();
    configure(upgrade, &state.config).on_upgrade(move |socket| async move {
        serve(socket, session, state, dialect).await;
        drop(tracked);
    })
}

enum End {
    /// Send this close frame, then finish the closing handshake.
    Close(u16, String),
    /// The peer started closing or vanished: keep reading until the socket ends.
    Drain,
    Gone,
}

async fn serve(socket: WebSocket, mut session: Session, state: AppState, dialect: Dialect) {
    let mut speaker = Speaker::new(dialect);
    let config = state.config.clone();
    let _connection = state.metrics.connection("ws", &session.principal.plan.name);
    let delivered = state
        .metrics
        .delivered
        .get_or_create(&TransportLabels { transport: "ws" })
        .clone();
    let (mut sink, mut stream) = socket.split();
    let mut last_delivered: Cursor = session.start.clone();
    let hello = speaker.greeting(wire::hello_frame(&session.principal.plan, &session.start));
    let sent = timeout(
        config.slow_consumer_timeout,
        sink.send(Message::Text(hello.into())),
    )
    .await;
    if !matches!(sent, Ok(Ok(()))) {
        return;
    }
    let mut pings = tokio::time::interval_at(
        Instant::now() + config.ws_ping_interval,
        config.ws_ping_interval,
    );
    let mut last_heard = Instant::now();
    let shutdown = state.shutdown.clone();
    // The dialect's own keep-alive frames (ActionCable `ping` every 3 s, CIF `ping` every 5 s).
    let keepalive_every = speaker
        .keepalive()
        .map_or(Duration::from_secs(3600), |(every, _)| every);
    let mut keepalives =
        tokio::time::interval_at(Instant::now() + keepalive_every, keepalive_every);
    let started = Instant::now();

    let end = loop {
        tokio::select! {
            biased;
            _ = shutdown.cancelled() => {
                break End::Close(close_code::AWAY, last_delivered.to_string());
            }
            incoming = stream.next() => match incoming {
                Some(Ok(Message::Close(_))) => break End::Drain,
                Some(Ok(Message::Text(text))) => {
                    last_heard = Instant::now();
                    if let Some(reply) = speaker.on_client_text(&text) {
                        match timeout(config.slow_consumer_timeout, sink.send(Message::Text(reply.into()))).await {
                            Ok(Ok(())) => {}
                            Ok(Err(_)) => break End::Gone,
                            Err(_) => break End::Close(close::SLOW_CONSUMER, last_delivered.to_string()),
                        }
                    }
                }
                Some(Ok(_)) => last_heard = Instant::now(),
                Some(Err(error)) => break close_for_read_error(&error, &last_delivered),
                None => break End::Gone,
            },
            _ = pings.tick() => {
                if last_heard.elapsed() >= config.ws_idle_timeout {
                    break End::Close(close_code::POLICY, format!("no pong for {}s; resume from {last_delivered}", config.ws_idle_timeout.as_secs()));
                }
                // Bounded like every send: a peer that stopped reading must not pin this task.
                match timeout(config.slow_consumer_timeout, sink.send(Message::Ping(Default::default()))).await {
                    Ok(Ok(())) => {}
                    Ok(Err(_)) => break End::Gone,
                    Err(_) => break End::Close(close::SLOW_CONSUMER, last_delivered.to_string()),
                }
            }
            _ = keepalives.tick(), if speaker.has_keepalive() => {
                if !speaker.ready() && started.elapsed() >= SUBSCRIBE_DEADLINE {
                    break End::Close(close_code::POLICY, "no subscription to IndicatorsChannel".into());
                }
                let Some((_, frame)) = speaker.keepalive() else { continue };
                match timeout(config.slow_consumer_timeout, sink.send(Message::Text(frame.into()))).await {
                    Ok(Ok(())) => {}
                    Ok(Err(_)) => break End::Gone,
                    Err(_) => break End::Close(close::SLOW_CONSUMER, last_delivered.to_string()),
                }
            }
            output = session.next(&shutdown), if speaker.ready() => {
                let Some(output) = output else {
                    break End::Close(close_code::AWAY, last_delivered.to_string());
                };
                let position = match &output {
                    Output::Indicator(entry) => Some(entry.cursor.clone()),
                    Output::Dropped { last_id, .. } => Some(last_id.clone()),
                    Output::Reset { reason, cursor } => {
                        state.metrics.resets.get_or_create(&ReasonLabels { reason }).inc();
                        Some(cursor.clone())
                    }
                    Output::Plan(_) => None,
                    Output::Close { code, reason } => {
                        break End::Close(*code, format!("{reason}; resume from {last_delivered}"));
                    }
                };
                // The native indicator frame is pre-encoded and shared; other frames and
                // dialects are built here.
                let frame = match (&output, dialect) {
                    (Output::Indicator(entry), Dialect::Native) => Some(entry.ws_frame()),
                    _ => speaker.render(&output, || native_frame(&output)).map(Utf8Bytes::from),
                };
                let Some(frame) = frame else {
                    // Nothing to say in this dialect (CIF has no drop notice): still metered.
                    session.record_sent(&output, 0);
                    continue;
                };
                let bytes = frame.len();
                match timeout(config.slow_consumer_timeout, sink.send(Message::Text(frame))).await {
                    Ok(Ok(())) => {
                        if let Some(position) = position {
                            last_delivered = position;
                        }
                        if matches!(output, Output::Indicator(_)) {
                            delivered.inc();
                        }
                        session.record_sent(&output, bytes);
                    }
                    Ok(Err(_)) => break End::Gone,
                    Err(_) => break End::Close(close::SLOW_CONSUMER, last_delivered.to_string()),
                }
            }
        }
    };

    if let End::Close(code, reason) = &end {
        state
            .metrics
            .closed
            .get_or_create(&ReasonLabels {
                reason: close_reason_label(*code),
            })
            .inc();
        let frame = CloseFrame {
            code: *code,
            reason: truncate_reason(reason).into(),
        };
        // A peer that stopped reading must not hold the task: bounded, then dropped.
        let _ = timeout(
            Duration::from_secs(1),
            sink.send(Message::Close(Some(frame))),
        )
        .await;
    }
    if !matches!(end, End::Gone) {
        drain(&mut stream, config.close_timeout).await;
    }
}

/// Reads until the peer completes the closing handshake (or the deadline passes).
async fn drain(stream: &mut SplitStream<WebSocket>, deadline: Duration) {
    let _ = timeout(deadline, async {
        while let Some(Ok(_)) = stream.next().await {}
    })
    .await;
}

fn close_for_read_error(error: &axum::Error, last: &Cursor) -> End {
    use tokio_tungstenite::tungstenite::Error as WsError;
    let inner =
        std::error::Error::source(error).and_then(|source| source.downcast_ref::<WsError>());
    match inner {
        Some(WsError::Capacity(_)) => End::Close(
            close_code::SIZE,
            format!("message too big; resume from {last}"),
        ),
        Some(WsError::Utf8(_)) => End::Close(
            close_code::INVALID,
            format!("invalid UTF-8; resume from {last}"),
        ),
        Some(WsError::Protocol(_)) => End::Close(
            close_code::PROTOCOL,
            format!("protocol error; resume from {last}"),
        ),
        _ => End::Gone,
    }
}

fn close_reason_label(code: u16) -> &'static str {
    match code {
        close_code::AWAY => "shutdown",
        close_code::POLICY => "idle",
        close_code::SIZE => "too_big",
        close_code::INVALID => "invalid_utf8",
        close_code::PROTOCOL => "protocol_error",
        close::SLOW_CONSUMER => "slow_consumer",
        close::TOKEN_REVOKED => "token_revoked",
        close::PLAN_DISALLOWS => "plan",
        _ => "other",
    }
}

/// Close reasons are limited to 123 bytes by RFC 6455.
fn truncate_reason(reason: &str) -> String {
    let mut end = reason.len().min(123);
    while !reason.is_char_boundary(end) {
        end -= 1;
    }
    reason[..end].to_owned()
}
