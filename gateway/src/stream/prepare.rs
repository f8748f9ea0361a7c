//! Everything before the transport, shared by every streaming endpoint: the credential, the
//! plan, the filters and start position (`cursor`, `Last-Event-ID` or `since`), the
//! registration for live plan changes, the connection slot, and the subscription. Each failure
//! is an HTTP status (400, 401, 403, 429, 503) sent before any upgrade.

use std::net::SocketAddr;
use std::sync::Arc;

use axum::extract::{ConnectInfo, FromRequestParts};
use axum::http::request::Parts;
use axum::http::HeaderMap;
use billing::{Principal, Scope};
use domain::Plan;

use super::session::{Session, SessionParts};
use crate::control::{Control, Registration, StreamInfo};
use crate::enforcement::replay_floor;
use crate::error::ApiError;
use crate::query::StreamQuery;
use crate::subscription::Subscription;
use crate::AppState;

/// How long a client refused for the connection cap should wait before retrying, seconds.
const CAP_RETRY_AFTER_SECONDS: u64 = 5;

/// The peer's address, when the request came through the node's accept loop (`server.rs`
/// inserts it); `None` in in-process tests.
#[derive(Debug, Clone, Copy, Default)]
pub struct Remote(pub Option<SocketAddr>);

impl<S: Send + Sync> FromRequestParts<S> for Remote {
    type Rejection = std::convert::Infallible;

    async fn from_request_parts(parts: &mut Parts, _state: &S) -> Result<Self, Self::Rejection> {
        Ok(Remote(
            parts
                .extensions
                .get::<ConnectInfo<SocketAddr>>()
                .map(|info| info.0),
        ))
    }
}

/// Checks a stream request and sets up its session.
pub async fn prepare(
    state: &AppState,
    headers: &HeaderMap,
    remote: Remote,
    query: StreamQuery,
) -> Result<Session, ApiError> {
    let access_token = query.access_token.as_deref();
    let changes_seen = state.registry.applied_change();
    let principal = crate::auth::authenticate(state, headers, access_token, Scope::Read).await?;
    check_plan(&principal.plan, false)?;
    let filter = query.filter()?.clone();
    let wants_correlated = filter.correlated() == Some(true);
    check_plan(&principal.plan, wants_correlated)?;
    let last_event_id = headers
        .get("last-event-id")
        .and_then(|value| value.to_str().ok());
    let start_at = query.keys.start(last_event_id)?;
    let filters = filter
        .to_pairs()
        .into_iter()
        .map(|(key, value)| (key.to_owned(), value))
        .collect();

    let (principal, registration, control) = register(
        state,
        headers,
        access_token,
        principal,
        changes_seen,
        wants_correlated,
        (remote.0, filters),
    )
    .await?;
    let plan = &principal.plan;
    let slot = state
        .slots
        .acquire(principal.account_id, plan.limits.max_connections)
        .await
        .map_err(|error| {
            state.metrics.backend_error("slots");
            tracing::warn!(%error, "connection slots unavailable");
            ApiError::Unavailable("connection slots are unavailable; retry shortly".into())
        })?
        .ok_or_else(|| ApiError::TooManyRequests {
            message: format!(
                "the account already has its {} concurrent streams (plan `{}`); close one or upgrade",
                plan.limits.max_connections, plan.name
            ),
            retry_after_seconds: CAP_RETRY_AFTER_SECONDS,
        })?;
    let now_ms = chrono::Utc::now().timestamp_millis().max(0) as u64;
    let floor = replay_floor(&plan.limits, now_ms);
    let (subscription, start) =
        Subscription::start(&state.hub, state.log.clone(), start_at, filter, floor)
            .await
            .map_err(|error| {
                state.metrics.backend_error("log");
                tracing::warn!(%error, "the log is unavailable for a new stream");
                ApiError::Unavailable("the log is unavailable; retry shortly".into())
            })?;
    Ok(Session::new(SessionParts {
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

/// Registers the stream for live plan changes and revocations. A change applied between
/// reading the principal and registering would never reach this stream, so when the change log
/// moved meanwhile (rare), the principal is read again.
async fn register(
    state: &AppState,
    headers: &HeaderMap,
    access_token: Option<&str>,
    principal: Principal,
    changes_seen: i64,
    wants_correlated: bool,
    (remote, filters): (Option<SocketAddr>, Vec<(String, String)>),
) -> Result<
    (
        Principal,
        Registration,
        tokio::sync::mpsc::UnboundedReceiver<Control>,
    ),
    ApiError,
> {
    let info = |principal: &Principal| {
        Arc::new(StreamInfo {
            account: principal.account.clone(),
            remote,
            filters: filters.clone(),
        })
    };
    let (registration, control) = state.registry.register(
        principal.account_id,
        &principal.token_id,
        &principal.plan.name,
        info(&principal),
    );
    if state.registry.applied_change() == changes_seen {
        return Ok((principal, registration, control));
    }
    drop(registration);
    let principal = crate::auth::authenticate(state, headers, access_token, Scope::Read).await?;
    check_plan(&principal.plan, wants_correlated)?;
    let (registration, control) = state.registry.register(
        principal.account_id,
        &principal.token_id,
        &principal.plan.name,
        info(&principal),
    );
    Ok((principal, registration, control))
}

/// 403 unless the plan allows a stream (and the correlated stream, when asked for).
fn check_plan(plan: &Plan, wants_correlated: bool) -> Result<(), ApiError> {
    if !plan.limits.allows_stream() {
        return Err(ApiError::Forbidden(format!(
            "the `{}` plan has no firehose access: move the account to a plan with a firehose",
            plan.name
        )));
    }
    if wants_correlated && !plan.limits.correlated {
        return Err(ApiError::Forbidden(format!(
            "the `{}` plan does not include the correlated stream (hobby and above do)",
            plan.name
        )));
    }
    Ok(())
}
