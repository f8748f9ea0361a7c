//! The one streaming loop. Every transport (WebSocket, SSE) in every dialect (native,
//! ActionCable, CIFv4) runs its stream through [`drive`], which owns what they share: the
//! greeting, the outputs in order, the slow-consumer deadline on every send, the last delivered
//! cursor, the delivered/reset/closed metrics and usage metering. A [`Transport`] only says how
//! an output is written and what its own connection needs (pings, heartbeats, client frames).

use std::future::Future;

use domain::{Cursor, Frame};
use futures::FutureExt;
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
    /// What the stream speaks, for the admin API (`native` unless a WebSocket dialect says).
    const DIALECT: &'static str = "native";

    /// The first frame, from the session's `hello` (which starts after `start`).
    fn greeting(&mut self, hello: &Frame, start: &Cursor) -> Self::Frame;

    /// The frame for one output (never `Close`), or `None` when this transport or dialect has
    /// no word for it; the output still counts as sent. `last` is the last delivered cursor.
    fn encode(&mut self, output: &Output, last: &Cursor) -> Option<Self::Frame>;

    /// A frame's size in bytes, for usage metering.
    fn frame_len(frame: &Self::Frame) -> usize;

    /// Queues one frame; it may stay buffered until [`Transport::flush`] (so a burst of
    /// outputs costs a few writes, not one each). Waits when the connection's buffer is full.
    fn send(&mut self, frame: Self::Frame) -> impl Future<Output = Result<(), Gone>> + Send;

    /// Writes out what [`Transport::send`] buffered. [`drive`] calls it whenever no output is
    /// ready right away, so buffering never delays a frame behind an idle stream.
    fn flush(&mut self) -> impl Future<Output = Result<(), Gone>> + Send {
        std::future::ready(Ok(()))
    }

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

/// What to do with the next output or event.
enum Step<F> {
    Send(F, Option<Output>),
    /// An output the transport has no word for: counted as sent, nothing written.
    Skip(Output),
    End(End),
}

/// The step for one output of the session (`None`: the node shuts down).
fn step<T: Transport>(
    output: Option<Output>,
    transport: &mut T,
    last: &Cursor,
    state: &AppState,
) -> Step<T::Frame> {
    match output {
        None => Step::End(End::Close(CloseReason::Shutdown)),
        Some(Output::Close(reason)) => Step::End(End::Close(reason)),
        Some(output) => {
            if let Output::Reset { reason, .. } = &output {
                state
                    .metrics
                    .resets
                    .get_or_create(&ReasonLabels {
                        reason: reason.as_str(),
                    })
                    .inc();
            }
            match transport.encode(&output, last) {
                Some(frame) => Step::Send(frame, Some(output)),
                None => Step::Skip(output),
            }
        }
    }
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
    session.live().set_kind(T::NAME, T::DIALECT);
    session.live().set_position(last.id());

    let greeting = transport.greeting(&session.hello(), &session.start);
    let greeted = timeout(deadline, async {
        transport.send(greeting).await?;
        transport.flush().await
    })
    .await;
    if !matches!(greeted, Ok(Ok(()))) {
        return;
    }
    let mut unflushed = false;
    let end = loop {
        // An output that is ready now joins the frames not yet written; otherwise they are
        // written before waiting (the session's `next` is cancel-safe, so polling it once and
        // dropping it loses nothing).
        let ready_now = if unflushed && transport.ready() {
            session.next(&shutdown).now_or_never()
        } else {
            None
        };
        let next = match ready_now {
            Some(output) => step(output, &mut transport, &last, state),
            None => {
                if unflushed {
                    match timeout(deadline, transport.flush()).await {
                        Ok(Ok(())) => unflushed = false,
                        Ok(Err(Gone)) => break End::Gone,
                        Err(_) => break End::Close(CloseReason::SlowConsumer),
                    }
                }
                // A transport that takes no indicators yet still hears what ends the stream
                // (a revocation, an expiry, a plan that no longer allows it).
                let ready = transport.ready();
                let output = async {
                    if ready {
                        session.next(&shutdown).await
                    } else {
                        Some(session.next_control().await)
                    }
                };
                tokio::select! {
                    biased;
                    _ = shutdown.cancelled() => break End::Close(CloseReason::Shutdown),
                    event = transport.event() => match event {
                        Event::Send(frame) => Step::Send(frame, None),
                        Event::Close(reason) => Step::End(End::Close(reason)),
                        Event::PeerClosing => Step::End(End::PeerClosing),
                        Event::Gone => Step::End(End::Gone),
                    },
                    output = output => step(output, &mut transport, &last, state),
                }
            }
        };
        let (frame, output) = match next {
            Step::Send(frame, output) => (frame, output),
            Step::Skip(output) => {
                session.record_sent(&output, 0);
                continue;
            }
            Step::End(end) => break end,
        };
        let bytes = T::frame_len(&frame);
        match timeout(deadline, transport.send(frame)).await {
            Ok(Ok(())) => unflushed = true,
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
