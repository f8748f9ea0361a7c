//! Live plan changes and revocations (docs/protocol.md §5.5, §6.2): this node's registry of open
//! streams and the poller that applies the account database's change log to them.
//!
//! Every plan change, plan edit and token revocation is written to the `changes` table in the
//! same transaction as the change itself (billing). Each node polls it (default every second), so
//! every node, on either backend, applies a change within a poll interval plus one query —
//! well inside the 5 seconds docs/protocol.md §5.5 allows — and a node that was briefly cut off
//! catches up from its last applied id, losing nothing.

use std::collections::HashMap;
use std::net::SocketAddr;
use std::sync::atomic::{AtomicI64, AtomicU64, Ordering};
use std::sync::{Arc, Mutex, OnceLock};
use std::time::Duration;

use domain::StreamId;

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
    /// An operator closed the stream (`DELETE /v1/admin/connections/{id}`): close with 1001.
    AdminClosed,
}

/// What a stream is, for the admin API's connection list (docs/protocol.md §6.8), fixed when it
/// registers.
#[derive(Debug, Clone, Default)]
pub struct StreamInfo {
    pub account: String,
    pub remote: Option<SocketAddr>,
    /// The filter as its query pairs (`Filter::to_pairs`).
    pub filters: Vec<(String, String)>,
}

/// One open stream's live counters, updated by its session with relaxed atomics (a few adds
/// per frame, no allocation) and read by the admin API.
#[derive(Debug, Default)]
pub struct Live {
    pub delivered: AtomicU64,
    pub dropped: AtomicU64,
    pub bytes: AtomicU64,
    /// The last delivered position (ms and seq of its `StreamId`): the `hello` cursor until
    /// something is sent.
    position_ms: AtomicU64,
    position_seq: AtomicU64,
    /// The transport and dialect names, set once when the stream is driven.
    kind: OnceLock<(&'static str, &'static str)>,
}

impl Live {
    pub fn set_position(&self, id: StreamId) {
        self.position_ms.store(id.ms, Ordering::Relaxed);
        self.position_seq.store(id.seq, Ordering::Relaxed);
    }

    /// The last delivered position (the two halves are read apart: a listing may pair one
    /// frame's ms with the next frame's seq, which is harmless for a lag estimate).
    pub fn position(&self) -> StreamId {
        StreamId::new(
            self.position_ms.load(Ordering::Relaxed),
            self.position_seq.load(Ordering::Relaxed),
        )
    }

    pub fn set_kind(&self, transport: &'static str, dialect: &'static str) {
        let _ = self.kind.set((transport, dialect));
    }
}

struct Registered {
    account_id: i64,
    token_id: String,
    plan: String,
    info: Arc<StreamInfo>,
    live: Arc<Live>,
    connected_at: chrono::DateTime<chrono::Utc>,
    sender: mpsc::UnboundedSender<Control>,
}

/// A snapshot of one open stream, for the admin API.
#[derive(Debug, Clone)]
pub struct StreamSnapshot {
    /// `c_<n>`: unique on this node while it runs.
    pub id: String,
    pub account_id: i64,
    pub account: String,
    pub plan: String,
    pub token_id: String,
    pub transport: &'static str,
    pub dialect: &'static str,
    pub remote: Option<SocketAddr>,
    pub connected_at: chrono::DateTime<chrono::Utc>,
    pub filters: Vec<(String, String)>,
    pub delivered: u64,
    pub dropped: u64,
    pub bytes: u64,
    pub position: StreamId,
}

/// The public form of a connection id.
pub fn connection_id(id: u64) -> String {
    format!("c_{id}")
}

fn parse_connection_id(id: &str) -> Option<u64> {
    id.strip_prefix("c_")?.parse().ok()
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
    live: Arc<Live>,
}

impl Registration {
    /// The counters the stream updates as it sends.
    pub fn live(&self) -> &Arc<Live> {
        &self.live
    }
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
        info: Arc<StreamInfo>,
    ) -> (Registration, mpsc::UnboundedReceiver<Control>) {
        let (sender, receiver) = mpsc::unbounded_channel();
        let id = self.next_id.fetch_add(1, Ordering::Relaxed);
        let live = Arc::new(Live::default());
        self.streams.lock().expect("registry lock poisoned").insert(
            id,
            Registered {
                account_id,
                token_id: token_id.to_owned(),
                plan: plan.to_owned(),
                info,
                live: live.clone(),
                connected_at: chrono::Utc::now(),
                sender,
            },
        );
        (
            Registration {
                registry: self.clone(),
                id,
                live,
            },
            receiver,
        )
    }

    /// Every open stream of this node that is streaming, oldest first (one still in its
    /// handshake, registered but not yet driven, has no transport or position yet).
    pub fn snapshot(&self) -> Vec<StreamSnapshot> {
        let streams = self.streams.lock().expect("registry lock poisoned");
        let mut out: Vec<StreamSnapshot> = streams
            .iter()
            .filter_map(|(id, stream)| {
                let (transport, dialect) = *stream.live.kind.get()?;
                Some(StreamSnapshot {
                    id: connection_id(*id),
                    account_id: stream.account_id,
                    account: stream.info.account.clone(),
                    plan: stream.plan.clone(),
                    token_id: stream.token_id.clone(),
                    transport,
                    dialect,
                    remote: stream.info.remote,
                    connected_at: stream.connected_at,
                    filters: stream.info.filters.clone(),
                    delivered: stream.live.delivered.load(Ordering::Relaxed),
                    dropped: stream.live.dropped.load(Ordering::Relaxed),
                    bytes: stream.live.bytes.load(Ordering::Relaxed),
                    position: stream.live.position(),
                })
            })
            .collect();
        drop(streams);
        out.sort_by_key(|stream| parse_connection_id(&stream.id));
        out
    }

    /// Tells the stream `id` (`c_<n>`) to close; false when no such stream is open.
    pub fn close(&self, id: &str) -> bool {
        let Some(id) = parse_connection_id(id) else {
            return false;
        };
        let streams = self.streams.lock().expect("registry lock poisoned");
        streams
            .get(&id)
            .is_some_and(|stream| stream.sender.send(Control::AdminClosed).is_ok())
    }

    /// Tells every stream of the account named `account` to close; returns how many were told.
    pub fn close_account(&self, account: &str) -> usize {
        let streams = self.streams.lock().expect("registry lock poisoned");
        streams
            .values()
            .filter(|stream| stream.info.account == account)
            .filter(|stream| stream.sender.send(Control::AdminClosed).is_ok())
            .count()
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

#[cfg(test)]
mod tests {
    use super::*;

    fn info(account: &str) -> Arc<StreamInfo> {
        Arc::new(StreamInfo {
            account: account.into(),
            remote: None,
            filters: vec![("itype".into(), "ipv4".into())],
        })
    }

    #[test]
    fn streams_are_listed_counted_closed_and_forgotten() {
        let registry = Arc::new(Registry::default());
        let (first, mut first_control) = registry.register(1, "tok_a", "pro", info("alpha"));
        let (second, mut second_control) = registry.register(2, "tok_b", "hobby", info("beta"));
        let (third, mut third_control) = registry.register(2, "tok_c", "hobby", info("beta"));
        assert!(registry.snapshot().is_empty(), "not streaming yet");
        first.live().set_kind("ws", "native");
        second.live().set_kind("sse", "native");
        third.live().set_kind("ws", "cif");
        first.live().delivered.fetch_add(3, Ordering::Relaxed);
        first.live().set_position(StreamId::new(10, 2));

        let listed = registry.snapshot();
        assert_eq!(listed.len(), 3);
        assert_eq!(listed[0].id, "c_0");
        assert_eq!(listed[0].account, "alpha");
        assert_eq!(listed[0].token_id, "tok_a");
        assert_eq!((listed[0].transport, listed[0].dialect), ("ws", "native"));
        assert_eq!(listed[0].delivered, 3);
        assert_eq!(listed[0].position, StreamId::new(10, 2));
        assert_eq!(listed[1].filters, [("itype".to_owned(), "ipv4".to_owned())]);

        assert!(registry.close("c_0"));
        assert_eq!(first_control.try_recv().ok(), Some(Control::AdminClosed));
        assert!(!registry.close("c_99"));
        assert!(!registry.close("0"));
        assert_eq!(registry.close_account("beta"), 2);
        assert_eq!(second_control.try_recv().ok(), Some(Control::AdminClosed));
        assert_eq!(third_control.try_recv().ok(), Some(Control::AdminClosed));

        drop(second);
        assert_eq!(registry.len(), 2);
        drop(first);
        assert!(!registry.close("c_0"), "a closed stream is gone");
    }
}
