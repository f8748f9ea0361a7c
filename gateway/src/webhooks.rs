//! Outbound webhooks (docs/protocol.md §13): the log, delivered to the HTTP endpoints accounts
//! register, in batches, signed, at least once and in order per endpoint.
//!
//! Shape: [`run`] is the node's one claim loop. Every `claim_interval` it takes (or renews) the
//! database lease of every endpoint no other node holds (`billing::Store::claim_webhooks`) and
//! runs one [`endpoint`] task per endpoint it holds; a lease it loses (or cannot renew before it
//! runs out) stops its task. Every write of an endpoint's delivery state names the lease's
//! generation, which goes up at every change of holder, so a task that lost its lease cannot
//! move the cursor. So each endpoint has one deliverer in the cluster, which is what keeps its
//! batches in order. An
//! endpoint's task reads the log from the endpoint's cursor, filters (the endpoint's filter and
//! the plan's visibility, the same rule as a stream's), and sends a batch when it is full or
//! has waited `linger`; the batch is recorded (its key, last position and size) before the
//! first try, so the next holder after a crash sends exactly it again, under the same
//! idempotency key (or, should a re-read find other contents, a new batch under a new key).
//! The bodies are in `body`; the guarded HTTP client in `client`.

mod body;
mod client;
mod endpoint;
mod metrics;

use std::collections::HashMap;
use std::time::Duration;

use tokio::task::JoinHandle;
use tokio_util::sync::CancellationToken;

pub use client::MAX_RESPONSE_BYTES;
pub use metrics::WebhookMetrics;

use crate::AppState;

/// How deliveries behave (flags `--webhook-…`).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct WebhookConfig {
    /// Deliver at all on this node (`--no-webhooks` turns it off, e.g. on nodes without egress).
    pub enabled: bool,
    /// Lets endpoints resolve to private, loopback and other special-purpose addresses, and
    /// `http://` for loopback (`--webhook-allow-private`). Off: public `https://` only.
    pub allow_private: bool,
    /// Most indicators per batch (a limited plan's burst caps it further).
    pub batch_max: usize,
    /// How long a batch waits for more indicators after its first one.
    pub linger: Duration,
    /// Deadline of one POST, connection to the end of the answer's status line and the bytes
    /// read of its body.
    pub timeout: Duration,
    /// Tries per batch before it becomes a dead letter.
    pub max_attempts: u32,
    /// The first retry's delay; each next one doubles, with jitter, up to `retry_max`.
    pub retry_base: Duration,
    pub retry_max: Duration,
    /// How often the node claims endpoints and renews its leases; a lease lasts
    /// [`WebhookConfig::lease`].
    pub claim_interval: Duration,
}

impl Default for WebhookConfig {
    fn default() -> Self {
        WebhookConfig {
            enabled: true,
            allow_private: false,
            batch_max: 100,
            linger: Duration::from_secs(1),
            timeout: Duration::from_secs(10),
            max_attempts: 8,
            retry_base: Duration::from_secs(1),
            retry_max: Duration::from_secs(600),
            claim_interval: Duration::from_secs(2),
        }
    }
}

impl WebhookConfig {
    /// How long a lease lasts without renewal: a node that stops renewing (crashed, cut off
    /// from the database) loses its endpoints after this.
    pub fn lease(&self) -> Duration {
        (self.claim_interval * 5).max(Duration::from_secs(10))
    }
}

/// The node's claim loop, until shutdown; then it stops every endpoint task and gives up its
/// leases so another node takes over at once.
pub async fn run(state: AppState) {
    let config = state.config.webhooks.clone();
    if !config.enabled {
        return;
    }
    let client = match client::Client::new(config.allow_private, config.timeout) {
        Ok(client) => client,
        Err(error) => {
            tracing::error!(%error, "webhooks: cannot build the HTTP client; no deliveries from this node");
            return;
        }
    };
    let metrics = WebhookMetrics::default();
    state
        .metrics
        .extend(|registry| metrics.register_with(registry));
    // The leases name the node as the cluster does (`Config::node`): the same across its
    // restarts, so it takes its own endpoints back at once.
    let node = state.config.node.clone();
    // Per endpoint: the lease generation its task holds, and the task.
    let mut tasks: HashMap<String, (i64, CancellationToken, JoinHandle<()>)> = HashMap::new();
    // Until when the leases of the last successful claim last.
    let mut held_until = i64::MIN;
    let mut tick = tokio::time::interval(config.claim_interval);
    tick.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
    loop {
        tokio::select! {
            _ = state.shutdown.cancelled() => break,
            _ = tick.tick() => {}
        }
        let now = chrono::Utc::now().timestamp();
        let until = now + i64::try_from(config.lease().as_secs()).unwrap_or(i64::MAX / 2);
        let held = match state.store.claim_webhooks(&node, until).await {
            Ok(held) => held,
            Err(error) => {
                tracing::warn!(%error, "webhooks: cannot claim endpoints; retrying");
                state.metrics.backend_error("webhooks");
                if now >= held_until && !tasks.is_empty() {
                    // The leases have run out: another node may hold them now.
                    tracing::warn!("webhooks: this node's leases ran out; its deliveries stop");
                    for (_, (_, cancel, _)) in tasks.drain() {
                        cancel.cancel();
                    }
                    metrics.endpoints.set(0);
                }
                continue;
            }
        };
        held_until = until;
        let generation: HashMap<&str, i64> = held
            .iter()
            .map(|lease| (lease.id.as_str(), lease.generation))
            .collect();
        tasks.retain(|id, (held_generation, cancel, task)| {
            let keep = generation.get(id.as_str()) == Some(held_generation) && !task.is_finished();
            if !keep {
                cancel.cancel();
            }
            keep
        });
        for lease in held {
            if tasks.contains_key(&lease.id) {
                continue;
            }
            let cancel = state.shutdown.child_token();
            let id = lease.id.clone();
            let generation = lease.generation;
            let task = endpoint::Endpoint {
                lease,
                state: state.clone(),
                client: client.clone(),
                metrics: metrics.clone(),
                cancel: cancel.clone(),
            };
            tasks.insert(id, (generation, cancel, state.tracker.spawn(task.run())));
        }
        metrics
            .endpoints
            .set(i64::try_from(tasks.len()).unwrap_or(i64::MAX));
    }
    for (_, (_, cancel, task)) in tasks.drain() {
        cancel.cancel();
        let _ = task.await;
    }
    if let Err(error) = state.store.release_webhooks(&node).await {
        tracing::warn!(%error, "webhooks: could not release the leases; other nodes take over when they expire");
    }
}
