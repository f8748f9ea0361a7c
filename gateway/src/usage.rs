//! Usage metering (docs/protocol.md §5.8): indicators delivered and dropped, bytes, connections,
//! per account and day, accumulated in memory and written to the account database every few
//! seconds.
//!
//! Streams report in batches (about once a second) so the hot path takes no lock per frame. The
//! day is the UTC day of the flush; a flush straddling midnight books up to one interval on the
//! new day. `peak_connections` is this node's peak; with several nodes the database keeps the
//! largest node's peak.

use std::collections::HashMap;
use std::sync::Mutex;
use std::time::Duration;

use billing::{Store, UsageDelta};
use tokio_util::sync::CancellationToken;

#[derive(Default, Clone, Copy)]
struct AccountUsage {
    delta: UsageDelta,
    open: u64,
}

#[derive(Default)]
pub struct UsageMeter {
    accounts: Mutex<HashMap<i64, AccountUsage>>,
}

impl UsageMeter {
    pub fn opened(&self, account_id: i64) {
        let mut accounts = self.accounts.lock().expect("usage lock poisoned");
        let usage = accounts.entry(account_id).or_default();
        usage.open += 1;
        usage.delta.connections_opened += 1;
        usage.delta.peak_connections = usage.delta.peak_connections.max(usage.open);
    }

    pub fn closed(&self, account_id: i64) {
        let mut accounts = self.accounts.lock().expect("usage lock poisoned");
        let usage = accounts.entry(account_id).or_default();
        usage.open = usage.open.saturating_sub(1);
    }

    pub fn add(&self, account_id: i64, delivered: u64, dropped: u64, bytes: u64) {
        if delivered == 0 && dropped == 0 && bytes == 0 {
            return;
        }
        let mut accounts = self.accounts.lock().expect("usage lock poisoned");
        let usage = accounts.entry(account_id).or_default();
        usage.delta.delivered += delivered;
        usage.delta.dropped += dropped;
        usage.delta.bytes += bytes;
    }

    /// Takes what accumulated since the last flush (keeping open-connection counts).
    fn take(&self) -> Vec<(i64, UsageDelta)> {
        let mut accounts = self.accounts.lock().expect("usage lock poisoned");
        let taken = accounts
            .iter()
            .filter(|(_, usage)| usage.delta != UsageDelta::default())
            .map(|(account, usage)| (*account, usage.delta))
            .collect();
        accounts.retain(|_, usage| usage.open > 0);
        for usage in accounts.values_mut() {
            usage.delta = UsageDelta {
                peak_connections: usage.open,
                ..UsageDelta::default()
            };
        }
        taken
    }

    /// Writes what accumulated to the store; on failure it is kept for the next flush.
    pub async fn flush(&self, store: &Store) {
        let taken = self.take();
        if taken.is_empty() {
            return;
        }
        let today = chrono::Utc::now().date_naive();
        let entries: Vec<_> = taken
            .iter()
            .map(|(account, delta)| (*account, today, *delta))
            .collect();
        if let Err(error) = store.record_usage(&entries).await {
            tracing::warn!(%error, "cannot record usage; keeping it for the next flush");
            let mut accounts = self.accounts.lock().expect("usage lock poisoned");
            for (account, delta) in taken {
                let usage = accounts.entry(account).or_default();
                usage.delta.delivered += delta.delivered;
                usage.delta.dropped += delta.dropped;
                usage.delta.bytes += delta.bytes;
                usage.delta.connections_opened += delta.connections_opened;
                usage.delta.peak_connections =
                    usage.delta.peak_connections.max(delta.peak_connections);
            }
        }
    }

    /// Flushes every `interval` until `shutdown` (the last flush happens after streams drain,
    /// in `gateway::serve`).
    pub async fn run(
        self: std::sync::Arc<Self>,
        store: Store,
        interval: Duration,
        shutdown: CancellationToken,
    ) {
        let mut ticks = tokio::time::interval(interval);
        ticks.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
        loop {
            tokio::select! {
                _ = shutdown.cancelled() => break,
                _ = ticks.tick() => self.flush(&store).await,
            }
        }
    }
}
