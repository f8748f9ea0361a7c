//! Connection caps per account (docs/protocol.md §5.4), across every node: a slot is taken
//! before a stream is upgraded and returned when the stream ends, however it ends.
//!
//! Two backends behind one trait. In process (embedded default): a counter per account. On Redis:
//! a sorted set per account whose members are leases scored by their expiry; a node renews its
//! leases every third of the TTL, so the slots of a node that was killed come back within the TTL,
//! and a Lua script makes "prune expired, count, add" atomic across nodes.

use std::collections::{HashMap, HashSet};
use std::sync::{Arc, Mutex};
use std::time::Duration;

use futures::future::BoxFuture;
use futures::FutureExt;
use redis::aio::ConnectionManager;
use redis::Script;
use tokio_util::sync::CancellationToken;

use sluice_log::LogError;

/// A held connection slot; dropping it returns the slot.
pub struct Slot {
    release: Option<Box<dyn FnOnce() + Send + Sync>>,
}

impl Drop for Slot {
    fn drop(&mut self) {
        if let Some(release) = self.release.take() {
            release();
        }
    }
}

pub trait ConnectionSlots: Send + Sync + 'static {
    /// Takes one of the account's `max` slots, or `None` when all are in use.
    fn acquire(&self, account_id: i64, max: u32) -> BoxFuture<'_, Result<Option<Slot>, LogError>>;
}

/// The embedded default: one process, one counter per account.
#[derive(Default)]
pub struct MemorySlots {
    in_use: Arc<Mutex<HashMap<i64, u32>>>,
}

impl ConnectionSlots for MemorySlots {
    fn acquire(&self, account_id: i64, max: u32) -> BoxFuture<'_, Result<Option<Slot>, LogError>> {
        let slot = {
            let mut in_use = self.in_use.lock().expect("slots lock poisoned");
            let count = in_use.entry(account_id).or_default();
            if *count >= max {
                None
            } else {
                *count += 1;
                let in_use = self.in_use.clone();
                Some(Slot {
                    release: Some(Box::new(move || {
                        let mut in_use = in_use.lock().expect("slots lock poisoned");
                        if let Some(count) = in_use.get_mut(&account_id) {
                            *count = count.saturating_sub(1);
                            if *count == 0 {
                                in_use.remove(&account_id);
                            }
                        }
                    })),
                })
            }
        };
        async move { Ok(slot) }.boxed()
    }
}

const ACQUIRE_SCRIPT: &str = r#"
local now = tonumber(ARGV[1])
redis.call('ZREMRANGEBYSCORE', KEYS[1], '-inf', now)
if redis.call('ZCARD', KEYS[1]) >= tonumber(ARGV[2]) then
  return 0
end
redis.call('ZADD', KEYS[1], now + tonumber(ARGV[3]), ARGV[4])
redis.call('PEXPIRE', KEYS[1], ARGV[3])
return 1
"#;

/// Slots shared by every node through Redis.
pub struct RedisSlots {
    key_prefix: String,
    node_id: String,
    ttl: Duration,
    commands: ConnectionManager,
    acquire: Script,
    /// This node's live leases, by account key, for renewal.
    held: Arc<Mutex<HashMap<String, HashSet<String>>>>,
    next_lease: std::sync::atomic::AtomicU64,
}

impl RedisSlots {
    pub fn new(commands: ConnectionManager, key_prefix: &str, ttl: Duration) -> Arc<Self> {
        Arc::new(RedisSlots {
            key_prefix: format!("{key_prefix}conns:"),
            node_id: sluice_log::new_epoch(),
            ttl,
            commands,
            acquire: Script::new(ACQUIRE_SCRIPT),
            held: Arc::default(),
            next_lease: Default::default(),
        })
    }

    /// Renews this node's leases every third of the TTL until `shutdown`.
    pub async fn renew(self: Arc<Self>, shutdown: CancellationToken) {
        let mut ticks = tokio::time::interval(self.ttl / 3);
        loop {
            tokio::select! {
                _ = shutdown.cancelled() => return,
                _ = ticks.tick() => {}
            }
            let held: Vec<(String, Vec<String>)> = {
                let held = self.held.lock().expect("slots lock poisoned");
                held.iter()
                    .map(|(key, leases)| (key.clone(), leases.iter().cloned().collect()))
                    .collect()
            };
            if held.is_empty() {
                continue;
            }
            let expiry = now_ms() + self.ttl.as_millis() as u64;
            let mut pipe = redis::pipe();
            for (key, leases) in &held {
                for lease in leases {
                    // Plain ZADD, not XX: a lease lost while Redis was away (restart, a long
                    // blip) is restored, so the connection counts again. A lease released
                    // since the snapshot may live on for at most one TTL.
                    pipe.cmd("ZADD").arg(key).arg(expiry).arg(lease).ignore();
                }
                pipe.cmd("PEXPIRE")
                    .arg(key)
                    .arg(self.ttl.as_millis() as u64)
                    .ignore();
            }
            let mut conn = self.commands.clone();
            if let Err(error) = pipe.query_async::<()>(&mut conn).await {
                tracing::warn!(%error, "cannot renew connection leases; retrying");
            }
        }
    }
}

fn now_ms() -> u64 {
    chrono::Utc::now().timestamp_millis().max(0) as u64
}

impl ConnectionSlots for RedisSlots {
    fn acquire(&self, account_id: i64, max: u32) -> BoxFuture<'_, Result<Option<Slot>, LogError>> {
        async move {
            let key = format!("{}{account_id}", self.key_prefix);
            let sequence = self
                .next_lease
                .fetch_add(1, std::sync::atomic::Ordering::Relaxed);
            let lease = format!("{}:{sequence}", self.node_id);
            // The guard exists before the script runs: if this future is dropped or times out
            // after Redis granted the lease, dropping the guard still releases it.
            let slot = self.hold(key.clone(), lease.clone());
            let mut conn = self.commands.clone();
            let granted: i64 = self
                .acquire
                .key(&key)
                .arg(now_ms())
                .arg(max)
                .arg(self.ttl.as_millis() as u64)
                .arg(&lease)
                .invoke_async(&mut conn)
                .await
                .map_err(|error| LogError::Unavailable(error.to_string()))?;
            Ok((granted != 0).then_some(slot))
        }
        .boxed()
    }
}

impl RedisSlots {
    /// Records a lease as held by this node and returns the guard that releases it.
    fn hold(&self, key: String, lease: String) -> Slot {
        self.held
            .lock()
            .expect("slots lock poisoned")
            .entry(key.clone())
            .or_default()
            .insert(lease.clone());
        let held = self.held.clone();
        let commands = self.commands.clone();
        Slot {
            release: Some(Box::new(move || {
                {
                    let mut held = held.lock().expect("slots lock poisoned");
                    if let Some(leases) = held.get_mut(&key) {
                        leases.remove(&lease);
                        if leases.is_empty() {
                            held.remove(&key);
                        }
                    }
                }
                // Released in the background; should it fail, the lease expires with its TTL.
                if let Ok(runtime) = tokio::runtime::Handle::try_current() {
                    let mut conn = commands;
                    runtime.spawn(async move {
                        let _: redis::RedisResult<()> = redis::cmd("ZREM")
                            .arg(&key)
                            .arg(&lease)
                            .query_async(&mut conn)
                            .await;
                    });
                }
            })),
        }
    }
}
