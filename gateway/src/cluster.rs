//! The cluster's open streams, through Redis (docs/protocol.md §6.8): every node publishes a
//! snapshot of its streams every [`TICK`] (a key per node that expires if the node stops), so
//! any node can answer `GET /v1/admin/connections` for all of them; and an operator's close
//! reaches the node holding the stream as a message on one pub/sub channel.
//!
//! A snapshot is at most [`TICK`] old and holds a node's [`MAX_PER_NODE`] most-lagging streams
//! (the ones an operator looks for; the rest are counted as `truncated`), so its size has a
//! bound whatever the node holds.

use std::time::Duration;

use futures::StreamExt;
use redis::aio::ConnectionManager;
use redis::AsyncCommands;
use serde::{Deserialize, Serialize};
use sluice_log::Backoff;

use crate::connections::Connection;
use crate::AppState;

/// How often a node publishes its snapshot.
pub const TICK: Duration = Duration::from_secs(3);
/// A snapshot that is not refreshed disappears after this (its node stopped or lost Redis).
const TTL: Duration = Duration::from_secs(15);
/// Streams per node in a snapshot, the most lagging first.
pub const MAX_PER_NODE: usize = 5000;
/// Nodes read at most (keys scanned), a bound on one answer's work.
const MAX_NODES: usize = 256;

/// One node's streams as it last published them.
#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct NodeSnapshot {
    pub node: String,
    /// Unix milliseconds when it was taken.
    pub at_ms: i64,
    pub connections: Vec<Connection>,
    /// Streams of the node left out (beyond [`MAX_PER_NODE`]).
    pub truncated: usize,
}

/// What an operator asked to close, sent to every node; each acts on what is its own.
#[derive(Debug, Clone, Serialize, Deserialize, PartialEq, Eq)]
#[serde(tag = "close", rename_all = "snake_case")]
pub enum CloseRequest {
    /// One stream, on `node`.
    Stream { node: String, id: String },
    /// Every stream of the account, on every node.
    Account { account: String },
}

/// The node's handle on the cluster's shared view.
pub struct ClusterView {
    commands: ConnectionManager,
    client: redis::Client,
    prefix: String,
}

impl ClusterView {
    pub fn new(commands: ConnectionManager, client: redis::Client, prefix: &str) -> ClusterView {
        ClusterView {
            commands,
            client,
            prefix: prefix.to_owned(),
        }
    }

    fn key(&self, node: &str) -> String {
        format!("{}connections:{node}", self.prefix)
    }

    fn channel(&self) -> String {
        format!("{}admin:close", self.prefix)
    }

    async fn publish(&self, snapshot: &NodeSnapshot) -> redis::RedisResult<()> {
        let json = serde_json::to_string(snapshot).expect("a snapshot serialises");
        let mut commands = self.commands.clone();
        let ttl = u64::try_from(TTL.as_millis()).unwrap_or(u64::MAX);
        commands
            .pset_ex::<_, _, ()>(self.key(&snapshot.node), json, ttl)
            .await
    }

    /// Every node's snapshot but `except`'s (the caller's own, which it reads live).
    pub async fn others(&self, except: &str) -> redis::RedisResult<Vec<NodeSnapshot>> {
        let mut commands = self.commands.clone();
        let pattern = format!("{}connections:*", self.prefix);
        let mut keys: Vec<String> = Vec::new();
        let mut cursor: u64 = 0;
        loop {
            let (next, batch): (u64, Vec<String>) = redis::cmd("SCAN")
                .arg(cursor)
                .arg("MATCH")
                .arg(&pattern)
                .arg("COUNT")
                .arg(100)
                .query_async(&mut commands)
                .await?;
            keys.extend(batch);
            cursor = next;
            if cursor == 0 || keys.len() >= MAX_NODES {
                break;
            }
        }
        keys.retain(|key| *key != self.key(except));
        keys.sort();
        keys.dedup();
        keys.truncate(MAX_NODES);
        if keys.is_empty() {
            return Ok(Vec::new());
        }
        let values: Vec<Option<String>> = redis::cmd("MGET")
            .arg(&keys)
            .query_async(&mut commands)
            .await?;
        Ok(values
            .into_iter()
            .flatten()
            .filter_map(|json| match serde_json::from_str(&json) {
                Ok(snapshot) => Some(snapshot),
                Err(error) => {
                    tracing::warn!(%error, "a node's connection snapshot in Redis does not parse; skipped");
                    None
                }
            })
            .collect())
    }

    /// Sends `request` to every node.
    pub async fn request_close(&self, request: &CloseRequest) -> redis::RedisResult<()> {
        let json = serde_json::to_string(request).expect("a request serialises");
        let mut commands = self.commands.clone();
        commands.publish::<_, _, ()>(self.channel(), json).await
    }
}

/// Until shutdown: publishes this node's snapshot every [`TICK`], and closes what operators ask
/// other nodes to close here. Redis errors are counted and retried; the node's own list and
/// closes keep working without Redis.
pub async fn run(state: AppState) {
    let Some(view) = state.cluster.clone() else {
        return;
    };
    state.tracker.spawn(listen(state.clone()));
    let mut ticks = tokio::time::interval(TICK);
    ticks.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
    loop {
        tokio::select! {
            _ = state.shutdown.cancelled() => break,
            _ = ticks.tick() => {}
        }
        let mut connections = crate::connections::local(&state).await;
        connections.sort_by(|a, b| b.lag.seconds.total_cmp(&a.lag.seconds));
        let truncated = connections.len().saturating_sub(MAX_PER_NODE);
        connections.truncate(MAX_PER_NODE);
        let snapshot = NodeSnapshot {
            node: state.config.node.clone(),
            at_ms: chrono::Utc::now().timestamp_millis(),
            connections,
            truncated,
        };
        if let Err(error) = view.publish(&snapshot).await {
            state.metrics.backend_error("cluster");
            tracing::warn!(%error, "cannot publish this node's connections to Redis; retrying");
        }
    }
    // Gone at once rather than when the key expires.
    let mut commands = view.commands.clone();
    let _ = commands.del::<_, ()>(view.key(&state.config.node)).await;
}

/// Applies the close requests meant for this node, resubscribing after any Redis failure.
async fn listen(state: AppState) {
    let Some(view) = state.cluster.clone() else {
        return;
    };
    let mut backoff = Backoff::default();
    while !state.shutdown.is_cancelled() {
        let subscribed = async {
            let mut pubsub = view.client.get_async_pubsub().await?;
            pubsub.subscribe(view.channel()).await?;
            redis::RedisResult::Ok(pubsub)
        };
        let pubsub = match tokio::time::timeout(Duration::from_secs(5), subscribed).await {
            Ok(Ok(pubsub)) => pubsub,
            Ok(Err(error)) => {
                fail(&state, &error.to_string());
                backoff.wait(&state.shutdown).await;
                continue;
            }
            Err(_) => {
                fail(&state, "timed out subscribing");
                backoff.wait(&state.shutdown).await;
                continue;
            }
        };
        backoff.reset();
        let mut messages = pubsub.into_on_message();
        loop {
            let message = tokio::select! {
                _ = state.shutdown.cancelled() => return,
                message = messages.next() => message,
            };
            let Some(message) = message else { break };
            match serde_json::from_slice::<CloseRequest>(message.get_payload_bytes()) {
                Ok(request) => apply(&state, &request),
                Err(error) => {
                    tracing::warn!(%error, "a close request on Redis does not parse; ignored")
                }
            }
        }
        fail(&state, "Redis closed the subscription");
        backoff.wait(&state.shutdown).await;
    }
}

fn fail(state: &AppState, why: &str) {
    state.metrics.backend_error("cluster");
    tracing::warn!(
        why,
        "cannot listen for operators' close requests on Redis; retrying"
    );
}

/// Closes what `request` names on this node.
fn apply(state: &AppState, request: &CloseRequest) {
    match request {
        CloseRequest::Stream { node, id } if *node == state.config.node => {
            let closed = state.registry.close(id);
            tracing::info!(connection.id = %id, closed, "an operator closed a stream from another node");
        }
        CloseRequest::Stream { .. } => {}
        CloseRequest::Account { account } => {
            let closed = state.registry.close_account(account);
            tracing::info!(
                account,
                closed,
                "an operator closed an account's streams from another node"
            );
        }
    }
}
