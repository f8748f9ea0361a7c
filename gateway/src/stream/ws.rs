//! The WebSocket transport, in any [`Dialect`].
//!
//! One task per connection owns the socket. It keeps reading until the peer's close completes
//! (tungstenite answers a peer's Close only if we keep reading), pings every 20 s, closes a peer
//! silent for 60 s, and closes with the last delivered cursor in the reason so the client can
//! resume exactly there.

use std::time::Duration;

use axum::extract::ws::{CloseFrame, Message, WebSocket, WebSocketUpgrade};
use axum::response::Response;
use domain::{Cursor, Frame};
use futures::SinkExt;
use tokio::time::{interval_at, timeout, Instant, Interval};

use super::close::CloseReason;
use super::dialect::Dialect;
use super::drive::{drive, End, Event, Gone, Transport};
use super::{Output, Session};
use crate::{AppState, Config};

/// Frames fed to a socket are written together once this many bytes are waiting, or at the
/// drive loop's flush: a burst goes out in a few writes, not one per frame.
const WRITE_COALESCE_BYTES: usize = 16 * 1024;

/// How long the close frame may take to leave before the socket is dropped.
const CLOSE_SEND_TIMEOUT: Duration = Duration::from_secs(1);

/// The production WebSocket settings, shared by every WebSocket endpoint (and by the Autobahn
/// conformance echo server, so what is tested is what runs).
pub fn configure(upgrade: WebSocketUpgrade, config: &Config) -> WebSocketUpgrade {
    upgrade
        // tungstenite's defaults (128 KiB buffers, 64 MiB messages) would cost ~256 KiB per idle
        // connection and let a client make us buffer 64 MiB; subscribers send next to nothing.
        .read_buffer_size(config.ws_read_buffer)
        .write_buffer_size(WRITE_COALESCE_BYTES)
        .max_write_buffer_size(config.ws_max_write_buffer)
        .max_message_size(config.max_message_bytes)
        .max_frame_size(config.max_message_bytes)
}

/// Applies the production settings and runs the stream over the socket, speaking `dialect`.
pub fn upgrade<D: Dialect>(
    upgrade: WebSocketUpgrade,
    session: Session,
    state: AppState,
    dialect: D,
) -> Response {
    // Tracked from now, not from when the upgrade completes: shutdown must wait for a socket
    // whose 101 is still in flight too.
    let tracked = state.tracker.token();
    configure(upgrade, &state.config).on_upgrade(move |socket| async move {
        let transport = WsTransport::new(socket, dialect, &state.config);
        drive(session, transport, &state).await;
        drop(tracked);
    })
}

struct WsTransport<D> {
    socket: WebSocket,
    dialect: D,
    pings: Interval,
    /// The dialect's own keep-alives, when it has any.
    keepalives: Option<Interval>,
    last_heard: Instant,
    connected: Instant,
    idle_timeout: Duration,
    close_timeout: Duration,
}

impl<D: Dialect> WsTransport<D> {
    fn new(socket: WebSocket, dialect: D, config: &Config) -> Self {
        let now = Instant::now();
        WsTransport {
            socket,
            dialect,
            pings: interval_at(now + config.ws_ping_interval, config.ws_ping_interval),
            keepalives: D::KEEPALIVE.map(|every| interval_at(now + every, every)),
            last_heard: now,
            connected: now,
            idle_timeout: config.ws_idle_timeout,
            close_timeout: config.close_timeout,
        }
    }
}

impl<D: Dialect> Transport for WsTransport<D> {
    type Frame = Message;
    const NAME: &'static str = "ws";
    const DIALECT: &'static str = D::NAME;

    fn greeting(&mut self, hello: &Frame, _start: &Cursor) -> Message {
        Message::Text(self.dialect.greeting(hello))
    }

    fn encode(&mut self, output: &Output, _last: &Cursor) -> Option<Message> {
        self.dialect.encode(output).map(Message::Text)
    }

    fn frame_len(frame: &Message) -> usize {
        match frame {
            Message::Text(text) => text.len(),
            _ => 0,
        }
    }

    async fn send(&mut self, frame: Message) -> Result<(), Gone> {
        self.socket.feed(frame).await.map_err(|_| Gone)
    }

    async fn flush(&mut self) -> Result<(), Gone> {
        self.socket.flush().await.map_err(|_| Gone)
    }

    async fn event(&mut self) -> Event<Message> {
        loop {
            tokio::select! {
                incoming = self.socket.recv() => match incoming {
                    Some(Ok(Message::Close(_))) => return Event::PeerClosing,
                    Some(Ok(Message::Text(text))) => {
                        self.last_heard = Instant::now();
                        if let Some(reply) = self.dialect.on_client_text(&text) {
                            return Event::Send(Message::Text(reply));
                        }
                    }
                    Some(Ok(_)) => self.last_heard = Instant::now(),
                    Some(Err(error)) => return read_error(&error),
                    None => return Event::Gone,
                },
                _ = self.pings.tick() => {
                    if self.last_heard.elapsed() >= self.idle_timeout {
                        return Event::Close(CloseReason::Idle);
                    }
                    return Event::Send(Message::Ping(Default::default()));
                }
                _ = tick(&mut self.keepalives), if self.keepalives.is_some() => {
                    if !self.dialect.ready() && self.connected.elapsed() >= D::READY_DEADLINE {
                        return Event::Close(CloseReason::NoSubscription);
                    }
                    if let Some(frame) = self.dialect.keepalive() {
                        return Event::Send(Message::Text(frame));
                    }
                }
            }
        }
    }

    fn ready(&self) -> bool {
        self.dialect.ready()
    }

    async fn finish(mut self, end: End, last: &Cursor) {
        match end {
            End::Close(reason) => {
                let frame = CloseFrame {
                    code: reason.code().code(),
                    reason: reason.text(last).into(),
                };
                // A peer that stopped reading must not hold the task: bounded, then dropped.
                let _ = timeout(
                    CLOSE_SEND_TIMEOUT,
                    self.socket.send(Message::Close(Some(frame))),
                )
                .await;
            }
            End::PeerClosing => {}
            End::Gone => return,
        }
        // Read until the peer completes the closing handshake (or the deadline passes).
        let _ = timeout(self.close_timeout, async {
            while let Some(Ok(_)) = self.socket.recv().await {}
        })
        .await;
    }
}

async fn tick(interval: &mut Option<Interval>) {
    match interval {
        Some(interval) => {
            interval.tick().await;
        }
        None => std::future::pending().await,
    }
}

/// What a read error means for the stream: the peer's fault gets its close code.
fn read_error(error: &axum::Error) -> Event<Message> {
    use tokio_tungstenite::tungstenite::Error as WsError;
    let inner =
        std::error::Error::source(error).and_then(|source| source.downcast_ref::<WsError>());
    match inner {
        Some(WsError::Capacity(_)) => Event::Close(CloseReason::TooBig),
        Some(WsError::Utf8(_)) => Event::Close(CloseReason::InvalidUtf8),
        Some(WsError::Protocol(_)) => Event::Close(CloseReason::ProtocolError),
        _ => Event::Gone,
    }
}
