//! `GET /v1/stream`: authenticate, parse filters and start position, then hand the subscriber to
//! the WebSocket or the SSE transport (same path: an upgrade request gets a WebSocket).
//!
//! Everything that can fail is checked before the upgrade, so failures are plain HTTP statuses
//! (401, 400, 503) that every client understands.

pub mod sse;
pub mod ws;

use axum::extract::ws::rejection::WebSocketUpgradeRejection;
use axum::extract::ws::WebSocketUpgrade;
use axum::extract::{Query, State};
use axum::http::HeaderMap;
use axum::response::{IntoResponse, Response};
use billing::{Principal, Scope};
use domain::{Cursor, Filter, LogPosition};

use crate::error::ApiError;
use crate::subscription::Subscription;
use crate::AppState;

/// One authenticated, positioned subscriber, ready for a transport.
pub struct Session {
    pub principal: Principal,
    pub subscription: Subscription,
    /// Where delivery starts: the `hello` frame's cursor.
    pub start: Cursor,
}

pub async fn stream(
    State(state): State<AppState>,
    upgrade: Result<WebSocketUpgrade, WebSocketUpgradeRejection>,
    headers: HeaderMap,
    Query(params): Query<Vec<(String, String)>>,
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
    let mut access_token = None;
    let mut cursor = None;
    let mut filters = Vec::new();
    for (key, value) in &params {
        match key.as_str() {
            "access_token" => access_token = Some(value.as_str()),
            "cursor" => cursor = Some(value.as_str()),
            _ => filters.push((key.as_str(), value.as_str())),
        }
    }
    let principal = crate::auth::authenticate(&state, &headers, access_token, Scope::Read).await?;
    let filter =
        Filter::from_pairs(filters).map_err(|error| ApiError::BadRequest(error.to_string()))?;
    let last_event_id = headers
        .get("last-event-id")
        .and_then(|value| value.to_str().ok());
    let position: LogPosition = cursor
        .or(last_event_id)
        .unwrap_or("now")
        .parse()
        .map_err(|error: domain::CursorError| ApiError::BadRequest(error.to_string()))?;

    let (subscription, start) =
        Subscription::start(&state.hub, state.log.clone(), position, filter)
            .await
            .map_err(|error| {
                state.metrics.backend_error("log");
                ApiError::Unavailable(format!("{error}; retry shortly"))
            })?;
    let session = Session {
        principal,
        subscription,
        start,
    };
    Ok(match upgrade {
        Some(upgrade) => ws::upgrade(upgrade, session, state),
        None => sse::respond(session, state).into_response(),
    })
}
