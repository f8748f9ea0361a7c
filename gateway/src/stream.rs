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
