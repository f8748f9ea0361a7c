//! `GET /v1/stream`: authenticate, check the plan, parse filters and start position, take a
//! connection slot, then hand the session to the WebSocket or the SSE transport (same path: an
//! upgrade request gets a WebSocket).
//!
//! Everything that can fail is checked before the upgrade, so failures are plain HTTP statuses
//! (400, 401, 403, 429, 503) that every client understands.

pub mod dialect;
pub mod session;
pub mod sse;
pub mod ws;

use axum::extract::ws::rejection::WebSocketUpgradeRejection;
use axum::extract::ws::WebSocketUpgrade;
use axum::extract::{Query, State};
use axum::http::HeaderMap;
use axum::response::{IntoResponse, Response};
use billing::Scope;
use domain::{Filter, LogPosition};

use crate::enforcement::{replay_floor, stream_allowed};
use crate::error::ApiError;
use crate::subscription::Subscription;
use crate::wire::ErrorBody;
use crate::AppState;
pub use session::{Output, Session};

/// How long a client refused for the connection cap should wait before retrying, seconds.
const CAP_RETRY_AFTER_SECONDS: u64 = 5;

/// 403 unless the plan allows a stream (and the correlated stream, when asked for).
fn check_plan(plan: &domain::PlanLimits, wants_correlated: bool) -> Result<(), ApiError> {
    if !stream_allowed(plan) {
        return Err(ApiError::Forbidden(format!(
            "the `{}` plan has no firehose access: move the account to a plan with a firehose",
            plan.name
        )));
    }
    if wants_correlated && !plan.correlated {
        return Err(ApiError::Forbidden(format!(
            "the `{}` plan does not include the correlated stream (hobby and above do)",
            plan.name
        )));
    }
    Ok(())
}

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
    let session = prepare(&state, &headers, &params).await?;
    Ok(match upgrade {
        Some(upgrade) => ws::upgrade(upgrade, session, state, dialect::Dialect::Native),
        None => sse::respond(session, state).into_response(),
    })
}

/// Everything before the transport, shared by every streaming endpoint: the credential, the
/// plan, the filters and start position (query `cursor`, or `Last-Event-ID`), the registration
/// for live plan changes, the connection slot, and the subscription.
pub async fn prepare(
    state: &AppState,
    headers: &HeaderMap,
    params: &[(String, String)],
) -> Result<Session, ApiError> {
    let mut access_token = None;
    let mut cursor = None;
    let mut filters = Vec::new();
    for (key, value) in params {
        match key.as_str() {
            "access_token" => access_token = Some(value.as_str()),
            "cursor" => cursor = Some(value.as_str()),
            _ => filters.push((key.as_str(), value.as_str())),
        }
    }
    let changes_seen = state.registry.applied_change();
    let mut principal =
        crate::auth::authenticate(state, headers, access_token, Scope::Read).await?;
    check_plan(&principal.plan, false)?;
    let filter =
        Filter::from_pairs(filters).map_err(|error| ApiError::BadRequest(error.to_string()))?;
    let wants_correlated = filter.correlated() == Some(true);
    check_plan(&principal.plan, wants_correlated)?;
    let last_event_id = headers
        .get("last-event-id")
        .and_then(|value| value.to_str().ok());
    // An EventSource reconnects to the same URL with Last-Event-ID: that is the newer position.
    let position: LogPosition = last_event_id
        .or(cursor)
        .unwrap_or("now")
        .parse()
        .map_err(|error: domain::CursorError| ApiError::BadRequest(error.to_string()))?;

    let (mut registration, mut control) = state.registry.register(
        principal.account_id,
        &principal.token_id,
        &principal.plan.name,
    );
    // A plan change or revocation applied between reading the principal and registering would
    // never reach this stream: read it again (rare: only when the change log moved meanwhile).
    if state.registry.applied_change() != changes_seen {
        drop(registration);
        principal = crate::auth::authenticate(state, headers, access_token, Scope::Read).await?;
        check_plan(&principal.plan, wants_correlated)?;
        (registration, control) = state.registry.register(
            principal.account_id,
            &principal.token_id,
            &principal.plan.name,
        );
    }
    let plan = &principal.plan;
    let slot = state
        .slots
        .acquire(principal.account_id, plan.max_connections)
        .await
        .map_err(|error| {
            state.metrics.backend_error("slots");
            ApiError::Unavailable(format!("{error}; retry shortly"))
        })?
        .ok_or_else(|| ApiError::TooManyRequests {
            message: format!(
                "the account already has its {} concurrent streams (plan `{}`); close one or upgrade",
                plan.max_connections, plan.name
            ),
            retry_after_seconds: CAP_RETRY_AFTER_SECONDS,
        })?;
    let now_ms = chrono::Utc::now().timestamp_millis().max(0) as u64;
    let floor = replay_floor(plan, now_ms);
    let (subscription, start) =
        Subscription::start(&state.hub, state.log.clone(), position, filter, floor)
            .await
            .map_err(|error| {
                state.metrics.backend_error("log");
                ApiError::Unavailable(format!("{error}; retry shortly"))
            })?;
    Ok(Session::new(session::SessionParts {
        principal,
        start,
        subscription,
        wants_correlated,
        control,
        registration,
        slot,
        meter: state.usage.clone(),
    }))
}
