//! The one streaming loop. Every transport (WebSocket, SSE) in every dialect (native,
//! ActionCable, CIFv4) runs its stream through [`drive`], which owns what they share: the
//! greeting, the outputs in order, the slow-consumer deadline on every send, the last delivered
//! cursor, the delivered/reset/closed metrics and usage metering. A [`Transport`] only says how
//! an output is written and what its own connection needs (pings, heartbeats, client frames).

use std::future::Future;

use domain::{Cursor, Frame};
use tokio::time::timeout;

use super::close::CloseReason;
use super::{Output, Session};
use crate::metrics::{ReasonLabels, TransportLabels};
use crate::AppState;

/// The peer is gone: a send failed.
#[derive(Debug)]
pub struct Gone;

/// What a transport's own side of the connection asks for.
pub enum Event<F> {
    /// Send this (a ping, a heartbeat, an answer to the client), under the same deadline as
    /// every other frame.
    Send(F),
    /// End the stream for this reason.
    Close(CloseReason),
    /// The peer started the closing handshake.
    PeerClosing,
    /// The connection is gone.
    Gone,
}

/// How a stream ended, for [`Transport::finish`].
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum End {
    /// The server ends it: say why (WebSocket: a close frame with the code and the cursor).
    Close(CloseReason),
    /// The peer is closing: complete its handshake.
    PeerClosing,
    /// Nothing is left to say anything to.
    Gone,
}

/// One kind of connection a stream can run over.
pub trait Transport: Send {
    /// What one send writes.
    type Frame: Send;
    /// The `transport` label of the connection and delivery metrics (`ws`, `sse`).
    const NAME: &'static str;

    /// The first frame, from the session's `hello` (which starts after `start`).
    fn greeting(&mut self, hello: &Frame, start: &Cursor) -> Self::Frame;

    /// The frame for one output (never `Close`), or `None` when this transport or dialect has
    /// no word for it; the output still counts as sent. `last` is the last delivered cursor.
    fn encode(&mut self, output: &Output, last: &Cursor) -> Option<Self::Frame>;

    /// A frame's size in bytes, for usage metering.
    fn frame_len(frame: &Self::Frame) -> usize;

    /// Writes one frame.
    fn send(&mut self, frame: Self::Frame) -> impl Future<Output = Result<(), Gone>> + Send;

    /// Waits for what the connection itself needs (a client frame to answer, a keep-alive due,
    /// the peer leaving). Must be cancel-safe: [`drive`] drops it whenever an output is ready.
    fn event(&mut self) -> impl Future<Output = Event<Self::Frame>> + Send;

    /// Whether outputs may be sent yet (ActionCable waits for the client's `subscribe`).
    fn ready(&self) -> bool {
        true
    }

    /// Ends the connection as `end` says; `last` is the last delivered cursor.
    fn finish(self, end: End, last: &Cursor) -> impl Future<Output = ()> + Send;
}

/// Runs `session` over `transport` until either ends or the node shuts down.
pub async fn drive<T: Transport>(mut session: Session, mut transport: T, state: &AppState) {
    let deadline = state.config.slow_consumer_timeout;
    let metrics = &state.metrics;
    let _connection = metrics.connection(T::NAME, &session.principal.plan.name);
    let delivered = metrics
        .delivered
        .get_or_create(&TransportLabels { transport: T::NAME })
        .clone();
    let shutdown = state.shutdown.clone();
    let mut last = session.start.clone();

    let greeting = transport.greeting(&session.hello(), &session.start);
    if !matches!(
        timeout(deadline, transport.send(greeting)).await,
        Ok(Ok(()))
    ) {
        return;
    }
    let end = loop {
        let (frame, output) = tokio::select! {
            biased;
            _ = shutdown.cancelled() => break End::Close(CloseReason::Shutdown),
            event = transport.event() => match event {
                Event::Send(frame) => (frame, None),
                Event::Close(reason) => break End::Close(reason),
                Event::PeerClosing => break End::PeerClosing,
                Event::Gone => break End::Gone,
            },
            output = session.next(&shutdown), if transport.ready() => match output {
                None => break End::Close(CloseReason::Shutdown),
                Some(Output::Close(reason)) => break End::Close(reason),
                Some(output) => {
                    if let Output::Reset { reason, .. } = &output {
                        metrics.resets.get_or_create(&ReasonLabels { reason: reason.as_str() }).inc();
                    }
                    match transport.encode(&output, &last) {
                        Some(frame) => (frame, Some(output)),
                        None => {
                            session.record_sent(&output, 0);
                            continue;
                        }
                    }
                }
            },
        };
        let bytes = T::frame_len(&frame);
        match timeout(deadline, transport.send(frame)).await {
            Ok(Ok(())) => {}
            Ok(Err(Gone)) => break End::Gone,
            Err(_) => break End::Close(CloseReason::SlowConsumer),
        }
        if let Some(output) = output {
            if let Some(position) = output.position() {
                last = position.clone();
            }
            if matches!(output, Output::Indicator(_)) {
                delivered.inc();
            }
            session.record_sent(&output, bytes);
        }
    };
    if let End::Close(reason) = end {
        metrics
            .closed
            .get_or_create(&ReasonLabels {
                reason: reason.label(),
            })
            .inc();
    }
    transport.finish(end, &last).await;
}
