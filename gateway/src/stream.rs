//! `GET /v1/stream`: the live firehose over WebSocket or SSE, and everything the streaming
//! endpoints share. [`prepare`] checks everything that can fail before any upgrade (so failures
//! are plain HTTP statuses every client understands); [`drive`](drive::drive) then runs the
//! session over its transport.
//!
//! - `session.rs`: one subscriber's stream, whatever the transport (plan, rate, changes).
//! - `drive.rs`: the one loop every transport runs; `close.rs`: why a stream ends.
//! - `ws.rs`, `sse.rs`: the transports; `dialect/`: what a WebSocket says (native, ActionCable,
//!   CIFv4).

mod close;
pub mod dialect;
pub mod drive;
mod prepare;
pub mod session;
pub mod sse;
pub mod ws;

use axum::extract::ws::rejection::WebSocketUpgradeRejection;
use axum::extract::ws::WebSocketUpgrade;
use axum::extract::State;
use axum::http::HeaderMap;
use axum::response::{IntoResponse, Response};

use crate::error::ApiError;
use crate::query::StreamQuery;
use crate::wire::ErrorBody;
use crate::AppState;
pub use close::CloseReason;
pub use prepare::{prepare, Remote};
pub use session::{Output, Session};

/// The live firehose: WebSocket or Server-Sent Events.
///
/// One path, two transports: a WebSocket upgrade request gets a WebSocket, any other request an
/// SSE stream (`text/event-stream`). Both start with a `hello` frame (`{"type": "hello", "plan",
/// "limits", "cursor"}`), then send `indicator` frames (`{"type": "indicator", "id": <cursor>,
/// "data": <indicator>}`), and, when they happen, `plan` (the account's plan changed), `dropped`
/// (`count` indicators over the plan's rate were not sent) and `reset` (the cursor is gone: the
/// stream restarts at the given `cursor`). Over SSE each is an event of that name whose `id:`
/// is the cursor, so `Last-Event-ID` resumes exactly; over WebSocket every close (1001 on
/// shutdown, 4001 token revoked, 4009 slow consumer, 4010 the plan no longer allows the
/// stream) carries the last delivered cursor in its reason.
///
/// Everything that can fail is checked before the upgrade, so refusals are plain HTTP statuses.
/// Browsers authenticate with a short-lived JWT from `POST /v1/session/stream-token` in
/// `access_token` (EventSource and WebSocket cannot set headers).
#[utoipa::path(
    get,
    path = "/v1/stream",
    tag = "stream",
    params(
        crate::openapi::StreamParams,
        crate::openapi::FilterParams,
        ("Last-Event-ID" = Option<String>, Header, description = "SSE: the `id` of the last \
            event received (an `EventSource` sends it when it reconnects); wins over `cursor`."),
    ),
    responses(
        (status = 101, description = "Switching to the WebSocket protocol (the request was a \
            WebSocket upgrade)."),
        (status = 200, description = "The SSE stream: `hello`, then `indicator` events (and \
            `plan`, `dropped`, `reset`), with a comment line every 15 s.",
            content_type = "text/event-stream", body = String),
        (status = 400, description = "A filter or the cursor is not valid, or the WebSocket \
            handshake is malformed.", body = ErrorBody),
        (status = 401, description = "No token, or not a valid one.", body = ErrorBody,
            headers(("WWW-Authenticate" = String, description = "`Bearer`"))),
        (status = 403, description = "The plan has no firehose (or no correlated stream, for \
            `correlated=true`), or a stream JWT from an origin that is not allowed.",
            body = ErrorBody),
        (status = 429, description = "The account already has its plan's concurrent streams \
            open.", body = ErrorBody,
            headers(("Retry-After" = u64, description = "Seconds to wait before retrying."))),
        (status = 503, description = "A backend is unavailable; retry.", body = ErrorBody,
            headers(("Retry-After" = u64, description = "Seconds to wait before retrying."))),
    ),
    security(("api_token" = []), ("access_token" = [])),
)]
pub async fn stream(
    State(state): State<AppState>,
    upgrade: Result<WebSocketUpgrade, WebSocketUpgradeRejection>,
    headers: HeaderMap,
    remote: Remote,
    query: Result<StreamQuery, ApiError>,
) -> Result<Response, ApiError> {
    // A request that asks for a WebSocket but gets the handshake wrong is told so; anything
    // else is an SSE request.
    let wants_websocket = headers
        .get(axum::http::header::UPGRADE)
        .and_then(|value| value.to_str().ok())
        .is_some_and(|value| value.eq_ignore_ascii_case("websocket"));
    let upgrade = match upgrade {
        Ok(upgrade) => Some(upgrade),
        Err(rejection) if wants_websocket => return Ok(rejection.into_response()),
        Err(_) => None,
    };
    let session = prepare(&state, &headers, remote, query?).await?;
    Ok(match upgrade {
        Some(upgrade) => ws::upgrade(upgrade, session, state, dialect::Native),
        None => sse::respond(session, state),
    })
}
