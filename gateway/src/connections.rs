//! The admin API's view of the open streams (docs/protocol.md §6.8): `GET
//! /v1/admin/connections` lists them with their counters and lag, `DELETE` closes one or all of
//! an account's. A node knows its own streams; with Redis it also reads the other nodes'
//! snapshots and sends closes to them (`cluster`), so any node answers for the cluster.

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
#[derive(Debug, Clone, Copy, PartialEq, Serialize, Deserialize, ToSchema)]
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
#[derive(Debug, Clone, Serialize, Deserialize, ToSchema)]
pub struct Connection {
    /// `c_<n>`, unique on its node while the node runs; in a cluster answer `c_<n>@<node>`,
    /// unique in the cluster (what `DELETE /v1/admin/connections/{id}` takes).
    pub id: String,
    pub account: String,
    pub plan: String,
    /// The token's id (`tok_…`), never the token.
    pub token_id: String,
    /// `ws` or `sse`.
    pub transport: String,
    /// `native`, `action_cable` or `cif`.
    pub dialect: String,
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
    /// The node that answered.
    pub node: String,
    /// `cluster`: every node's streams (this node's live, the others' as of their last
    /// snapshot, at most 3 s old); `node`: this node's only (no Redis, or `scope=node`).
    pub scope: &'static str,
    /// The nodes whose streams the list covers.
    pub nodes: Vec<String>,
    /// Streams left out of the other nodes' snapshots (each holds its 5,000 most lagging).
    pub truncated: usize,
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
    /// By node, then oldest first.
    Node,
}

#[derive(Debug, Clone, Copy, Deserialize, ToSchema, PartialEq, Eq)]
#[serde(rename_all = "snake_case")]
pub enum ListScope {
    /// Every node's streams (the default with Redis).
    Cluster,
    /// Only the answering node's.
    Node,
}

#[derive(Debug, Default, Deserialize, IntoParams)]
#[into_params(parameter_in = Query)]
pub struct ListParams {
    /// Only this account's streams.
    pub account: Option<String>,
    /// Only this node's streams (a `node` of the list).
    pub node: Option<String>,
    /// `cluster` (the default with Redis) or `node` (this node's only).
    #[param(value_type = Option<String>)]
    pub scope: Option<ListScope>,
    /// `connected` (default), `lag`, `account` or `node`.
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
    /// Close every stream of this account (on every node, with Redis).
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
        transport: stream.transport.to_owned(),
        dialect: stream.dialect.to_owned(),
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

/// This node's open streams, as the admin API lists them.
pub async fn local(state: &AppState) -> Vec<Connection> {
    let head = state.hub.newest();
    let trim = trimmed_through(state).await;
    state
        .registry
        .snapshot()
        .into_iter()
        .map(|stream| connection(state, stream, head, trim))
        .collect()
}

/// `c_<n>@<node>`: a connection's id in a cluster answer.
fn qualified(id: &str, node: &str) -> String {
    format!("{id}@{node}")
}

/// The open streams.
///
/// Every WebSocket and SSE stream, with its counters and how far it is behind the log's head:
/// the cluster's with Redis (this node's live, the others' from their snapshots, at most 3 s
/// old), else this node's. Needs an `admin` token.
#[utoipa::path(
    get,
    path = "/v1/admin/connections",
    tag = "operations",
    params(ListParams),
    responses(
        (status = 200, description = "The streams, one page.", body = ConnectionList),
        (status = 400, description = "A parameter is not valid.", body = ErrorBody),
        (status = 401, description = "No token, or not a valid one.", body = ErrorBody),
        (status = 403, description = "The token is not an `admin` token.", body = ErrorBody),
        (status = 503, description = "Redis does not answer for the cluster's list; \
            `scope=node` lists this node's.", body = ErrorBody),
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
    let me = state.config.node.clone();
    let cluster = match (params.scope, &state.cluster) {
        (Some(ListScope::Node), _) | (None, None) => None,
        (Some(ListScope::Cluster), None) => {
            return Err(ApiError::BadRequest(
                "scope `cluster` needs Redis (--redis): this node knows only its own streams"
                    .into(),
            ))
        }
        (_, Some(view)) => Some(view.clone()),
    };
    let mut connections = local(&state).await;
    let mut nodes = vec![me.clone()];
    let mut truncated = 0;
    if let Some(view) = &cluster {
        for connection in &mut connections {
            connection.id = qualified(&connection.id, &me);
        }
        let others = view.others(&me).await.map_err(|error| {
            state.metrics.backend_error("cluster");
            tracing::warn!(%error, "cannot read the other nodes' connections from Redis");
            ApiError::Unavailable(
                "Redis does not answer, so only this node's streams are known: retry, or ask \
                 with scope=node"
                    .into(),
            )
        })?;
        for snapshot in others {
            nodes.push(snapshot.node.clone());
            truncated += snapshot.truncated;
            connections.extend(snapshot.connections.into_iter().map(|mut connection| {
                connection.id = qualified(&connection.id, &snapshot.node);
                connection
            }));
        }
        nodes.sort();
    }
    connections.retain(|connection| {
        params
            .account
            .as_ref()
            .is_none_or(|account| *account == connection.account)
            && params
                .node
                .as_ref()
                .is_none_or(|node| *node == connection.node)
    });
    // Oldest first, then the sort asked for; sorts are stable, so ties stay oldest first.
    connections.sort_by(|a, b| a.connected_at.cmp(&b.connected_at));
    match params.sort.unwrap_or_default() {
        Sort::Connected => {}
        Sort::Account => connections.sort_by(|a, b| a.account.cmp(&b.account)),
        Sort::Node => connections.sort_by(|a, b| a.node.cmp(&b.node)),
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
        node: me,
        scope: if cluster.is_some() { "cluster" } else { "node" },
        nodes,
        truncated,
        connections,
        next,
    }))
}

/// Closes one stream.
///
/// The stream ends as for a shutdown: a WebSocket gets close code 1001 with `closed by an
/// operator; resume from <cursor>`, an SSE stream ends (its `id:` lines are the cursor). The
/// client may reconnect from its cursor. `c_<n>` is a stream of this node; `c_<n>@<node>` (a
/// cluster list's id) one of any node, told through Redis. Needs an `admin` token.
#[utoipa::path(
    delete,
    path = "/v1/admin/connections/{id}",
    tag = "operations",
    params(("id" = String, Path, description = "The connection's id (`c_…`, or `c_…@<node>`).")),
    responses(
        (status = 204, description = "The stream was told to close."),
        (status = 401, description = "No token, or not a valid one.", body = ErrorBody),
        (status = 403, description = "The token is not an `admin` token.", body = ErrorBody),
        (status = 404, description = "No such stream is open.", body = ErrorBody),
        (status = 503, description = "Redis does not answer, so another node cannot be told.",
            body = ErrorBody),
    ),
    security(("api_token" = [])),
)]
pub async fn close(
    State(state): State<AppState>,
    headers: HeaderMap,
    Path(id): Path<String>,
) -> Result<Response, ApiError> {
    crate::auth::authenticate(&state, &headers, None, Scope::Admin).await?;
    let not_found = |message: String| {
        Ok((StatusCode::NOT_FOUND, Json(ErrorBody::new(message))).into_response())
    };
    let (local_id, node) = match id.split_once('@') {
        Some((local_id, node)) => (local_id, node),
        None => (id.as_str(), state.config.node.as_str()),
    };
    if node == state.config.node {
        return if state.registry.close(local_id) {
            Ok(StatusCode::NO_CONTENT.into_response())
        } else {
            not_found(format!("no connection `{local_id}` is open on this node"))
        };
    }
    let Some(view) = &state.cluster else {
        return not_found(format!(
            "`{id}` is on node {node}, and this node has no Redis to reach it: ask that node"
        ));
    };
    let unavailable = |error: redis::RedisError| {
        state.metrics.backend_error("cluster");
        ApiError::Unavailable(format!("Redis does not answer ({error}); retry"))
    };
    let listed = view
        .others(&state.config.node)
        .await
        .map_err(unavailable)?
        .into_iter()
        .any(|snapshot| {
            snapshot.node == node && snapshot.connections.iter().any(|c| c.id == local_id)
        });
    if !listed {
        return not_found(format!("no connection `{id}` is open in the cluster"));
    }
    view.request_close(&crate::cluster::CloseRequest::Stream {
        node: node.to_owned(),
        id: local_id.to_owned(),
    })
    .await
    .map_err(unavailable)?;
    Ok(StatusCode::NO_CONTENT.into_response())
}

/// Closes every stream of one account.
///
/// As `DELETE /v1/admin/connections/{id}` for each of the account's streams: this node's, and
/// with Redis every other node's too. `closed` counts this node's and those the other nodes'
/// snapshots list. Needs an `admin` token.
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
        (status = 503, description = "Redis does not answer: this node's streams were closed, \
            the other nodes' were not.", body = ErrorBody),
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
    let mut closed = state.registry.close_account(&account);
    if let Some(view) = &state.cluster {
        let unavailable = |error: redis::RedisError| {
            state.metrics.backend_error("cluster");
            ApiError::Unavailable(format!(
                "Redis does not answer ({error}): this node's {closed} streams were closed, \
                 the other nodes' were not; retry"
            ))
        };
        let others = view.others(&state.config.node).await.map_err(unavailable)?;
        view.request_close(&crate::cluster::CloseRequest::Account {
            account: account.clone(),
        })
        .await
        .map_err(unavailable)?;
        closed += others
            .iter()
            .flat_map(|snapshot| &snapshot.connections)
            .filter(|connection| connection.account == account)
            .count();
    }
    Ok(Json(Closed { closed }))
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
