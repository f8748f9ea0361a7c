//! Live plan changes and revocations (docs/protocol.md §5.5, §6.2): this node's registry of open
//! streams and the poller that applies the account database's change log to them.
//!
//! Every plan change, plan edit and token revocation is written to the `changes` table in the
//! same transaction as the change itself (billing). Each node polls it (default every second), so
//! every node, on either backend, applies a change within a poll interval plus one query —
//! well inside the 5 seconds docs/protocol.md §5.5 allows — and a node that was briefly cut off
//! catches up from its last applied id, losing nothing.

use std::collections::HashMap;
use std::sync::atomic::{AtomicI64, AtomicU64, Ordering};
use std::sync::{Arc, Mutex};
use std::time::Duration;

use billing::{Change, ChangeKind, Store};
use domain::Plan;
use tokio::sync::mpsc;
use tokio_util::sync::CancellationToken;

use crate::metrics::Metrics;
use crate::token_cache::TokenCache;
use sluice_log::Backoff;

/// What a live stream is told to do.
#[derive(Debug, Clone, PartialEq)]
pub enum Control {
    /// Adopt these limits (send a `plan` frame; close with 4010 if they forbid this stream).
    Plan(Plan),
    /// The token was revoked: close with 4001.
    Revoked,
}

struct Registered {
    account_id: i64,
    token_id: String,
    plan: String,
    sender: mpsc::UnboundedSender<Control>,
}

/// The node's open streams, by connection id.
#[derive(Default)]
pub struct Registry {
    streams: Mutex<HashMap<u64, Registered>>,
    next_id: AtomicU64,
    /// The newest change applied, so a handshake can tell whether a change slipped in between
    /// reading its principal and registering.
    applied: AtomicI64,
}

/// Keeps a stream registered; dropping it unregisters.
pub struct Registration {
    registry: Arc<Registry>,
    id: u64,
}

impl Drop for Registration {
    fn drop(&mut self) {
        self.registry
            .streams
            .lock()
            .expect("registry lock poisoned")
            .remove(&self.id);
    }
}

impl Registry {
    pub fn register(
        self: &Arc<Self>,
        account_id: i64,
        token_id: &str,
        plan: &str,
    ) -> (Registration, mpsc::UnboundedReceiver<Control>) {
        let (sender, receiver) = mpsc::unbounded_channel();
        let id = self.next_id.fetch_add(1, Ordering::Relaxed);
        self.streams.lock().expect("registry lock poisoned").insert(
            id,
            Registered {
                account_id,
                token_id: token_id.to_owned(),
                plan: plan.to_owned(),
                sender,
            },
        );
        (
            Registration {
                registry: self.clone(),
                id,
            },
            receiver,
        )
    }

    /// Tells the affected streams about one change; returns how many were told.
    pub fn apply(&self, change: &Change) -> usize {
        let mut streams = self.streams.lock().expect("registry lock poisoned");
        // Recorded under the lock: a stream registered after this is guaranteed to see the new
        // id (and re-read its principal), one registered before is told below.
        self.applied.fetch_max(change.id, Ordering::AcqRel);
        let mut told = 0;
        for stream in streams.values_mut() {
            let control = match &change.kind {
                ChangeKind::AccountPlan { account_id, plan }
                    if *account_id == stream.account_id =>
                {
                    stream.plan = plan.name.clone();
                    Control::Plan(plan.clone())
                }
                ChangeKind::PlanEdited { plan } if plan.name == stream.plan => {
                    Control::Plan(plan.clone())
                }
                ChangeKind::TokenRevoked { token_id, .. } if *token_id == stream.token_id => {
                    Control::Revoked
                }
                _ => continue,
            };
            // A send fails only when the stream is ending anyway.
            if stream.sender.send(control).is_ok() {
                told += 1;
            }
        }
        told
    }

    /// The id of the newest change applied to this node's streams.
    pub fn applied_change(&self) -> i64 {
        self.applied.load(Ordering::Acquire)
    }

    pub fn len(&self) -> usize {
        self.streams.lock().expect("registry lock poisoned").len()
    }

    pub fn is_empty(&self) -> bool {
        self.len() == 0
    }
}

/// Polls the change log every `interval` until `shutdown`, applying changes to `registry`.
pub async fn poll_changes(
    store: Store,
    registry: Arc<Registry>,
    tokens: Arc<TokenCache>,
    metrics: Arc<Metrics>,
    interval: Duration,
    shutdown: CancellationToken,
) {
    let mut backoff = Backoff::default();
    let mut last = loop {
        match store.latest_change_id().await {
            Ok(id) => break id,
            Err(error) => {
                metrics.backend_error("change_log");
                tracing::warn!(%error, "cannot read the change log; retrying");
                backoff.wait(&shutdown).await;
                if shutdown.is_cancelled() {
                    return;
                }
            }
        }
    };
    registry.applied.store(last, Ordering::Release);
    let mut ticks = tokio::time::interval(interval);
    ticks.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
    loop {
        tokio::select! {
            _ = shutdown.cancelled() => return,
            _ = ticks.tick() => {}
        }
        loop {
            match store.changes_after(last, 500).await {
                Ok(changes) => {
                    for change in &changes {
                        // The cache first: a handshake that re-reads its principal because
                        // the registry moved on must not find the stale one cached.
                        tokens.invalidate(change.id, &change.kind);
                        let told = registry.apply(change);
                        tracing::debug!(
                            change.id = change.id,
                            streams.told = told,
                            "applied a change"
                        );
                        last = last.max(change.id);
                    }
                    if changes.len() < 500 {
                        break;
                    }
                }
                Err(error) => {
                    metrics.backend_error("change_log");
                    tracing::warn!(%error, "cannot read the change log; retrying next tick");
                    break;
                }
            }
        }
    }
}
