//! The Server-Sent Events transport of `/v1/stream`.
//!
//! A pump task writes pre-encoded events into a small channel that is the response body. Every
//! event carries `id:` (a cursor), so `Last-Event-ID` resumes exactly; a `:` comment every 15 s
//! keeps proxies from timing the stream out.

use std::convert::Infallible;

use axum::body::Body;
use axum::http::{header, HeaderValue, StatusCode};
use axum::response::Response;
use bytes::Bytes;
use futures::StreamExt;
use tokio::sync::mpsc;
use tokio::time::{timeout, Instant};
use tokio_stream::wrappers::ReceiverStream;

use super::{Output, Session};
use crate::metrics::{ReasonLabels, TransportLabels};
use crate::wire;
use crate::AppState;

/// Events buffered between the pump and the socket; beyond it the pump waits (backpressure).
const BODY_BUFFER: usize = 16;

pub fn respond(session: Session, state: AppState) -> Response {
    let (sender, receiver) = mpsc::channel::<Bytes>(BODY_BUFFER);
    let tracker = state.tracker.clone();
    tracker.spawn(pump(session, state, sender));
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

async fn pump(mut session: Session, state: AppState, sender: mpsc::Sender<Bytes>) {
    let config = state.config.clone();
    let _connection = state
        .metrics
        .connection("sse", &session.principal.plan.name);
    let delivered = state
        .metrics
        .delivered
        .get_or_create(&TransportLabels { transport: "sse" })
        .clone();
    let retry = format!("retry: {}\n", config.sse_retry.as_millis());
    let hello = wire::sse_event(
        "hello",
        &session.start.to_string(),
        &wire::hello_frame(&session.principal.plan, &session.start),
    );
    let mut first = retry.into_bytes();
    first.extend_from_slice(&hello);
    if sender.send(Bytes::from(first)).await.is_err() {
        return;
    }
    let mut heartbeats =
        tokio::time::interval_at(Instant::now() + config.sse_heartbeat, config.sse_heartbeat);
    let shutdown = state.shutdown.clone();
    let mut last_delivered = session.start.to_string();
    loop {
        let (event, output) = tokio::select! {
            biased;
            _ = shutdown.cancelled() => break,
            _ = sender.closed() => break,
            _ = heartbeats.tick() => (Bytes::from_static(b": heartbeat\n\n"), None),
            output = session.next(&shutdown) => {
                let Some(output) = output else { break };
                let event = match &output {
                    Output::Indicator(entry) => {
                        last_delivered = entry.cursor.to_string();
                        entry.sse_frame()
                    }
                    Output::Dropped { count, last_id } => {
                        last_delivered = last_id.to_string();
                        wire::sse_event("dropped", &last_delivered, &wire::dropped_frame(*count, "rate_limit", last_id))
                    }
                    Output::Reset { reason, cursor } => {
                        state.metrics.resets.get_or_create(&ReasonLabels { reason }).inc();
                        last_delivered = cursor.to_string();
                        wire::sse_event("reset", &last_delivered, &wire::reset_frame(reason, cursor))
                    }
                    Output::Plan(plan) => wire::sse_event("plan", &last_delivered, &wire::plan_frame(plan)),
                    // SSE has no close codes: ending the response is the signal, and the
                    // client's reconnect is then refused with an HTTP status.
                    Output::Close { reason, .. } => {
                        state.metrics.closed.get_or_create(&ReasonLabels { reason: close_label(reason) }).inc();
                        break;
                    }
                };
                (event, Some(output))
            },
        };
        let bytes = event.len();
        match timeout(config.slow_consumer_timeout, sender.send(event)).await {
            Ok(Ok(())) => {
                if let Some(output) = output {
                    if matches!(output, Output::Indicator(_)) {
                        delivered.inc();
                    }
                    session.record_sent(&output, bytes);
                }
            }
            Ok(Err(_)) => break,
            Err(_) => {
                // The client reconnects with Last-Event-ID and resumes from the log.
                state
                    .metrics
                    .closed
                    .get_or_create(&ReasonLabels {
                        reason: "slow_consumer",
                    })
                    .inc();
                break;
            }
        }
    }
}

fn close_label(reason: &str) -> &'static str {
    if reason.contains("revoked") || reason.contains("expired") {
        "token_revoked"
    } else {
        "plan"
    }
}
