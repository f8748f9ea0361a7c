//! The Server-Sent Events transport of `/v1/stream`.
//!
//! The stream's task writes events into a small channel that is the response body. Every event
//! is named after its frame's `type` and carries `id:` (a cursor), so `Last-Event-ID` resumes
//! exactly; its `data` is the same JSON object a WebSocket frame carries. A `:` comment every
//! 15 s keeps proxies from timing the stream out. SSE has no close codes: ending the response is
//! the signal, and a reconnect that is no longer allowed is refused with an HTTP status.
//!
//! The `retry:` hint is drawn per connection between `sse_retry` and twice it, so the clients of
//! a node that restarts do not all come back in the same instant.

use std::convert::Infallible;
use std::time::Duration;

use axum::body::Body;
use axum::http::{header, HeaderValue, StatusCode};
use axum::response::Response;
use bytes::Bytes;
use domain::{Cursor, Frame};
use futures::StreamExt;
use tokio::sync::mpsc;
use tokio::time::{interval_at, Instant, Interval};
use tokio_stream::wrappers::ReceiverStream;

use super::dialect::native_indicator;
use super::drive::{drive, End, Event, Gone, Transport};
use super::{Output, Session};
use crate::frames::Encoding;
use crate::wire;
use crate::AppState;

/// Events buffered between the stream's task and the socket; beyond it the task waits
/// (backpressure).
const BODY_BUFFER: usize = 16;
const HEARTBEAT: &[u8] = b": heartbeat\n\n";

pub fn respond(session: Session, state: AppState) -> Response {
    let (sender, receiver) = mpsc::channel::<Bytes>(BODY_BUFFER);
    let transport = SseTransport::new(sender, &state);
    state.tracker.clone().spawn(async move {
        drive(session, transport, &state).await;
    });
    let body = Body::from_stream(ReceiverStream::new(receiver).map(Ok::<_, Infallible>));
    let mut response = Response::new(body);
    *response.status_mut() = StatusCode::OK;
    let headers = response.headers_mut();
    headers.insert(
        header::CONTENT_TYPE,
        HeaderValue::from_static("text/event-stream"),
    );
    headers.insert(header::CACHE_CONTROL, HeaderValue::from_static("no-cache"));
    headers.insert("x-accel-buffering", HeaderValue::from_static("no"));
    response
}

struct SseTransport {
    sender: mpsc::Sender<Bytes>,
    heartbeats: Interval,
    retry: Duration,
}

impl SseTransport {
    fn new(sender: mpsc::Sender<Bytes>, state: &AppState) -> Self {
        let every = state.config.sse_heartbeat;
        SseTransport {
            sender,
            heartbeats: interval_at(Instant::now() + every, every),
            retry: jittered_retry(state.config.sse_retry),
        }
    }
}

/// A reconnection delay drawn uniformly from `[base, 2 × base]`, whole milliseconds.
pub fn jittered_retry(base: Duration) -> Duration {
    use rand::Rng;
    let base_ms = u64::try_from(base.as_millis()).unwrap_or(u64::MAX / 2);
    Duration::from_millis(rand::thread_rng().gen_range(base_ms..=base_ms.saturating_mul(2)))
}

/// One frame as an event: named after its type, with the cursor as its id.
fn event(frame: &Frame, id: &Cursor) -> Bytes {
    wire::sse_event(frame.kind(), &id.to_string(), &frame.encode()).into()
}

impl Transport for SseTransport {
    type Frame = Bytes;
    const NAME: &'static str = "sse";

    fn greeting(&mut self, hello: &Frame, start: &Cursor) -> Bytes {
        let mut first = format!("retry: {}\n", self.retry.as_millis()).into_bytes();
        first.extend_from_slice(&event(hello, start));
        first.into()
    }

    fn encode(&mut self, output: &Output, last: &Cursor) -> Option<Bytes> {
        match output {
            Output::Indicator(entry) => Some(
                entry
                    .encoded(Encoding::Sse, |_| {
                        let kind = if entry.indicator.is_withdrawn() {
                            "withdrawn"
                        } else {
                            "indicator"
                        };
                        wire::sse_event(kind, &entry.cursor.to_string(), &native_indicator(entry))
                    })
                    .into(),
            ),
            notice => {
                let frame = notice.notice()?;
                Some(event(&frame, notice.position().unwrap_or(last)))
            }
        }
    }

    fn frame_len(frame: &Bytes) -> usize {
        frame.len()
    }

    async fn send(&mut self, frame: Bytes) -> Result<(), Gone> {
        self.sender.send(frame).await.map_err(|_| Gone)
    }

    async fn event(&mut self) -> Event<Bytes> {
        tokio::select! {
            _ = self.sender.closed() => Event::Gone,
            _ = self.heartbeats.tick() => Event::Send(Bytes::from_static(HEARTBEAT)),
        }
    }

    /// Dropping the sender ends the response body.
    async fn finish(self, _end: End, _last: &Cursor) {}
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn retry_hints_spread_between_the_base_and_twice_it() {
        let base = Duration::from_secs(2);
        let draws: Vec<Duration> = (0..200).map(|_| jittered_retry(base)).collect();
        assert!(
            draws.iter().all(|d| (base..=base * 2).contains(d)),
            "{draws:?}"
        );
        let distinct: std::collections::HashSet<_> = draws.iter().collect();
        assert!(distinct.len() > 100, "{} distinct of 200", distinct.len());
        assert!(draws.iter().any(|d| *d < base + base / 2));
        assert!(draws.iter().any(|d| *d > base + base / 2));
        assert_eq!(jittered_retry(Duration::ZERO), Duration::ZERO);
    }
}
