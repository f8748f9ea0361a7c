//! The admin API's view of this node's open streams (docs/protocol.md §6.8): `GET
//! /v1/admin/connections` lists them with their counters and lag, `DELETE` closes one or all of
//! an account's. It answers for the node it reaches: each node knows only its own streams.

use std::collections::BTreeMap;
use std::time::Duration;

use axum::extract::{Path, Query, State};
use axum::http::{HeaderMap, StatusCode};
use axum::response::{IntoResponse, Response};
use axum::Json;
use billing::Scope;
use domain::StreamId;
use serde::{Deserialize, Serialize};
use utoipa::{IntoParams, ToSchema};

use crate::control::StreamSnapshot;
use crate::error::ApiError;
use crate::wire::ErrorBody;
use crate::AppState;

/// How often the node observes every stream's lag for the metrics.
pub const LAG_TICK: Duration = Duration::from_secs(10);
const DEFAULT_LIMIT: usize = 100;
const MAX_LIMIT: usize = 1000;

/// How far a stream is behind the log's head.
#[derive(Debug, Clone, Copy, PartialEq, Serialize, ToSchema)]
pub struct Lag {
    /// Entries this node has read after the stream's position; `null` when the stream is
    /// further behind than the node's ring of recent entries (unknown without a log scan).
    pub entries: Option<u64>,
    /// The newest entry's time minus the stream's position's time, seconds (0 when caught up).
    pub seconds: f64,
    /// The stream's position is within `--retention-margin` of the log's trim point (the
    /// newest entry retention removed): it is about to lose entries it has not read.
    pub near_retention: bool,
}

/// One open stream.
#[derive(Debug, Clone, Serialize, ToSchema)]
pub struct Connection {
    /// `c_<n>`, unique on its node while the node runs.
    pub id: String,
    pub account: String,
    pub plan: String,
    /// The token's id (`tok_…`), never the token.
    pub token_id: String,
    /// `ws` or `sse`.
    pub transport: &'static str,
    /// `native`, `action_cable` or `cif`.
    pub dialect: &'static str,
    pub node: String,
    /// The peer's address, as the node sees it (a proxy's, behind one).
    pub remote: Option<String>,
    /// RFC 3339.
    pub connected_at: String,
    /// The stream's filters as query parameters.
    pub filters: BTreeMap<String, String>,
    /// Indicators delivered.
    pub delivered: u64,
    /// Indicators counted in `dropped` frames (over the plan's rate).
    pub dropped: u64,
    /// Bytes of frames sent.
    pub bytes: u64,
    pub lag: Lag,
}

/// `GET /v1/admin/connections`.
#[derive(Debug, Serialize, ToSchema)]
pub struct ConnectionList {
    /// The node that answered (its listen address): the list is this node's streams only.
    pub node: String,
    pub connections: Vec<Connection>,
    /// The `after` of the next page, or `null` on the last.
    pub next: Option<String>,
}

/// `DELETE /v1/admin/connections?account=…`.
#[derive(Debug, Serialize, ToSchema)]
pub struct Closed {
    /// Streams told to close.
    pub closed: usize,
}

#[derive(Debug, Clone, Copy, Default, Deserialize, ToSchema, PartialEq, Eq)]
#[serde(rename_all = "snake_case")]
pub enum Sort {
    /// Oldest first.
    #[default]
    Connected,
    /// Most seconds behind first.
    Lag,
    /// By account name, then oldest first.
    Account,
}

#[derive(Debug, Default, Deserialize, IntoParams)]
#[into_params(parameter_in = Query)]
pub struct ListParams {
    /// Only this account's streams.
    pub account: Option<String>,
    /// `connected` (default), `lag` or `account`.
    #[param(value_type = Option<String>)]
    pub sort: Option<Sort>,
    /// Page size, default 100, at most 1000.
    pub limit: Option<usize>,
    /// The `next` of the previous page.
    pub after: Option<String>,
}

#[derive(Debug, Default, Deserialize, IntoParams)]
#[into_params(parameter_in = Query)]
pub struct CloseParams {
    /// Close every stream of this account on this node.
    pub account: Option<String>,
}

/// The lag of a stream at `position`, given the node's newest entry and the log's trim point.
pub fn lag(state: &AppState, position: StreamId, head: StreamId, trimmed_through: StreamId) -> Lag {
    let seconds = head.ms.saturating_sub(position.ms) as f64 / 1000.0;
    let entries = if position >= head {
        Some(0)
    } else {
        state.hub.count_after(position)
    };
    let margin = state.config.retention_margin.as_millis() as u64;
    let near_retention = trimmed_through != StreamId::ZERO
        && position.ms <= trimmed_through.ms.saturating_add(margin);
    Lag {
        entries,
        seconds,
        near_retention,
    }
}

/// The log's trim point, `0-0` when the log cannot say right now.
async fn trimmed_through(state: &AppState) -> StreamId {
    match state.log.bounds().await {
        Ok(bounds) => bounds.trimmed_through,
        Err(error) => {
            state.metrics.backend_error("log");
            tracing::warn!(%error, "cannot read the log's bounds for the connection list");
            StreamId::ZERO
        }
    }
}

fn connection(
    state: &AppState,
    stream: StreamSnapshot,
    head: StreamId,
    trim: StreamId,
) -> Connection {
    Connection {
        lag: lag(state, stream.position, head, trim),
        id: stream.id,
        account: stream.account,
        plan: stream.plan,
        token_id: stream.token_id,
        transport: stream.transport,
        dialect: stream.dialect,
        node: state.config.node.clone(),
        remote: stream.remote.map(|remote| remote.to_string()),
        connected_at: stream
            .connected_at
            .to_rfc3339_opts(chrono::SecondsFormat::Millis, true),
        filters: stream.filters.into_iter().collect(),
        delivered: stream.delivered,
        dropped: stream.dropped,
        bytes: stream.bytes,
    }
}

fn bad_query<T>(
    query: Result<Query<T>, axum::extract::rejection::QueryRejection>,
) -> Result<T, ApiError> {
    query
        .map(|Query(query)| query)
        .map_err(|rejection| ApiError::BadRequest(rejection.body_text()))
}

/// This node's open streams.
///
/// Every WebSocket and SSE stream open on the node that answers (not the cluster's: ask each
/// node), with its counters and how far it is behind the log's head. Needs an `admin` token.
#[utoipa::path(
    get,
    path = "/v1/admin/connections",
    tag = "operations",
    params(ListParams),
    responses(
        (status = 200, description = "This node's streams, one page.", body = ConnectionList),
        (status = 400, description = "A parameter is not valid.", body = ErrorBody),
        (status = 401, description = "No token, or not a valid one.", body = ErrorBody),
        (status = 403, description = "The token is not an `admin` token.", body = ErrorBody),
    ),
    security(("api_token" = [])),
)]
pub async fn list(
    State(state): State<AppState>,
    headers: HeaderMap,
    query: Result<Query<ListParams>, axum::extract::rejection::QueryRejection>,
) -> Result<Json<ConnectionList>, ApiError> {
    crate::auth::authenticate(&state, &headers, None, Scope::Admin).await?;
    let params = bad_query(query)?;
    let limit = params.limit.unwrap_or(DEFAULT_LIMIT);
    if limit == 0 || limit > MAX_LIMIT {
        return Err(ApiError::BadRequest(format!(
            "limit `{limit}` must be between 1 and {MAX_LIMIT}"
        )));
    }
    let sort = params.sort.unwrap_or_default();
    let head = state.hub.newest();
    let trim = trimmed_through(&state).await;
    let mut connections: Vec<Connection> = state
        .registry
        .snapshot()
        .into_iter()
        .filter(|stream| {
            params
                .account
                .as_ref()
                .is_none_or(|account| *account == stream.account)
        })
        .map(|stream| connection(&state, stream, head, trim))
        .collect();
    // The snapshot is oldest first; sorts are stable, so ties stay oldest first.
    match sort {
        Sort::Connected => {}
        Sort::Account => connections.sort_by(|a, b| a.account.cmp(&b.account)),
        Sort::Lag => connections.sort_by(|a, b| b.lag.seconds.total_cmp(&a.lag.seconds)),
    }
    if let Some(after) = &params.after {
        let Some(index) = connections.iter().position(|c| c.id == *after) else {
            return Err(ApiError::BadRequest(format!(
                "after `{after}`: no such connection is open now (it closed); list from the start"
            )));
        };
        connections.drain(..=index);
    }
    let next = (connections.len() > limit).then(|| connections[limit - 1].id.clone());
    connections.truncate(limit);
    Ok(Json(ConnectionList {
        node: state.config.node.clone(),
        connections,
        next,
    }))
}

/// Closes one stream on this node.
///
/// The stream ends as for a shutdown: a WebSocket gets close code 1001 with `closed by an
/// operator; resume from <cursor>`, an SSE stream ends (its `id:` lines are the cursor). The
/// client may reconnect from its cursor. Needs an `admin` token.
#[utoipa::path(
    delete,
    path = "/v1/admin/connections/{id}",
    tag = "operations",
    params(("id" = String, Path, description = "The connection's id (`c_…`).")),
    responses(
        (status = 204, description = "The stream was told to close."),
        (status = 401, description = "No token, or not a valid one.", body = ErrorBody),
        (status = 403, description = "The token is not an `admin` token.", body = ErrorBody),
        (status = 404, description = "No such stream is open on this node.", body = ErrorBody),
    ),
    security(("api_token" = [])),
)]
pub async fn close(
    State(state): State<AppState>,
    headers: HeaderMap,
    Path(id): Path<String>,
) -> Result<Response, ApiError> {
    crate::auth::authenticate(&state, &headers, None, Scope::Admin).await?;
    Ok(if state.registry.close(&id) {
        StatusCode::NO_CONTENT.into_response()
    } else {
        let message = format!("no connection `{id}` is open on this node");
        (StatusCode::NOT_FOUND, Json(ErrorBody::new(message))).into_response()
    })
}

/// Closes every stream of one account on this node.
///
/// As `DELETE /v1/admin/connections/{id}` for each of the account's streams here; other nodes'
/// are not touched. Needs an `admin` token.
#[utoipa::path(
    delete,
    path = "/v1/admin/connections",
    tag = "operations",
    params(CloseParams),
    responses(
        (status = 200, description = "How many streams were told to close.", body = Closed),
        (status = 400, description = "No `account`.", body = ErrorBody),
        (status = 401, description = "No token, or not a valid one.", body = ErrorBody),
        (status = 403, description = "The token is not an `admin` token.", body = ErrorBody),
    ),
    security(("api_token" = [])),
)]
pub async fn close_account(
    State(state): State<AppState>,
    headers: HeaderMap,
    query: Result<Query<CloseParams>, axum::extract::rejection::QueryRejection>,
) -> Result<Json<Closed>, ApiError> {
    crate::auth::authenticate(&state, &headers, None, Scope::Admin).await?;
    let params = bad_query(query)?;
    let account = params.account.ok_or_else(|| {
        ApiError::BadRequest("give `account=NAME`: which account's streams to close".into())
    })?;
    Ok(Json(Closed {
        closed: state.registry.close_account(&account),
    }))
}

/// Every [`LAG_TICK`] until shutdown: observes each open stream's lag in
/// `sluice_consumer_lag_seconds` and sets `sluice_consumers_near_retention`.
pub async fn observe_lag(state: AppState) {
    let mut ticks = tokio::time::interval(LAG_TICK);
    ticks.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
    loop {
        tokio::select! {
            _ = state.shutdown.cancelled() => return,
            _ = ticks.tick() => {}
        }
        let streams = state.registry.snapshot();
        if streams.is_empty() {
            state.metrics.consumers_near_retention.set(0);
            continue;
        }
        let head = state.hub.newest();
        let trim = trimmed_through(&state).await;
        let mut near = 0;
        for stream in streams {
            let lag = lag(&state, stream.position, head, trim);
            state.metrics.consumer_lag_seconds.observe(lag.seconds);
            near += i64::from(lag.near_retention);
        }
        state.metrics.consumers_near_retention.set(near);
    }
}
