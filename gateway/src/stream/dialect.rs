//! The languages a WebSocket stream can speak: Sluice's own frames, and the firehose protocols
//! existing clients speak (docs/protocol.md §10): csirtg.io's ActionCable channel and CIFv4's
//! text frames. Everything but the words is shared ([`super::drive`]): the same session, plan,
//! filters, limits and deadlines. A new dialect is one file here implementing [`Dialect`].

mod action_cable;
mod cif;
mod native;

use std::time::Duration;

use axum::extract::ws::Utf8Bytes;
use domain::Frame;

use super::Output;
pub use action_cable::ActionCable;
pub use cif::Cif;
pub use native::{native_indicator, Native};

/// What one WebSocket connection says, and how it answers its client.
pub trait Dialect: Send + 'static {
    /// The `dialect` of the admin API's connection list (`native`, `action_cable`, `cif`).
    const NAME: &'static str;
    /// How often the dialect sends a keep-alive of its own (besides WebSocket pings).
    const KEEPALIVE: Option<Duration> = None;
    /// A client that is not [`ready`](Dialect::ready) this long after connecting is closed
    /// (1008): until then it holds a connection slot without receiving anything.
    const READY_DEADLINE: Duration = Duration::from_secs(30);

    /// What to send first, given the native `hello`.
    fn greeting(&self, hello: &Frame) -> Utf8Bytes;

    /// The frame for one output, or `None` when the dialect has no word for it.
    fn encode(&self, output: &Output) -> Option<Utf8Bytes>;

    /// Whether outputs may flow (ActionCable waits for the client's `subscribe`).
    fn ready(&self) -> bool {
        true
    }

    /// The answer to a text frame from the client, if any.
    fn on_client_text(&mut self, _text: &str) -> Option<Utf8Bytes> {
        None
    }

    /// The keep-alive frame, sent every [`KEEPALIVE`](Dialect::KEEPALIVE).
    fn keepalive(&self) -> Option<Utf8Bytes> {
        None
    }
}
