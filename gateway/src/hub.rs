//! The hub: this node's single live reader of the log, broadcasting each entry to local clients.
//!
//! One reader per node, whatever the number of clients: the log (Redis or in-process) sees one
//! blocking read per node, and each entry is parsed and encoded once. A client that cannot keep up
//! with the broadcast channel is told `Lagged` and catches up (see `subscription`): from the
//! hub's ring of recent entries when it still holds the position, so lagging clients share one
//! copy of what they missed instead of each re-reading and re-parsing it from the log; from the
//! log otherwise. Either way a slow client costs the others little and loses nothing.

use std::collections::VecDeque;
use std::sync::{Arc, RwLock};
use std::time::Duration;

use domain::StreamId;
use tokio::sync::broadcast;
use tokio_util::sync::CancellationToken;

use sluice_log::{Backoff, Log};

use crate::frames::{Framed, FramedEntry};
use crate::metrics::Metrics;

/// Entries kept for live subscribers before a slow one lags and catches up from the ring (then
/// the log). Small on purpose: a receiver dropped while it lags walks every entry it is behind,
/// up to this many, and a crowd of stalled subscribers ending together would hold up the sends
/// (RELIABILITY.md, stalled readers: 4,096 cost the healthy a 49–90 ms spike, 1,024 none seen).
pub const DEFAULT_CAPACITY: usize = 1024;
/// Recent entries the ring keeps for lagging subscribers, at most (they are shared with the
/// broadcast channel and the subscribers, so this bounds what lagging costs, not a copy).
pub const RING_ENTRIES: usize = 8 * 1024;
const READ_BATCH: usize = 512;
const BLOCK: Duration = Duration::from_secs(1);

#[derive(Debug, Clone)]
pub enum HubEvent {
    Entry(Framed),
    /// The live sequence has a discontinuity (the log's epoch changed, or retention removed
    /// entries the reader had not seen): subscribers must re-read the log to find out.
    Resync,
}

#[derive(Clone)]
pub struct Hub {
    sender: broadcast::Sender<HubEvent>,
    ring: Arc<RwLock<Ring>>,
}

/// The newest entries the hub read, contiguous: every entry of `epoch` after `base` up to the
/// last one held is in `entries`.
#[derive(Default)]
struct Ring {
    epoch: String,
    base: StreamId,
    entries: VecDeque<Framed>,
}

impl Ring {
    /// Starts over after a discontinuity: nothing is held after `base`.
    fn restart(&mut self, epoch: &str, base: StreamId) {
        self.epoch = epoch.to_owned();
        self.base = base;
        self.entries.clear();
    }

    fn push(&mut self, entry: Framed) {
        if self.entries.len() >= RING_ENTRIES {
            if let Some(oldest) = self.entries.pop_front() {
                self.base = oldest.id();
            }
        }
        self.entries.push_back(entry);
    }
}

impl Hub {
    pub fn new(capacity: usize) -> Self {
        let (sender, _) = broadcast::channel(capacity.max(16));
        Hub {
            sender,
            ring: Arc::default(),
        }
    }

    pub fn subscribe(&self) -> broadcast::Receiver<HubEvent> {
        self.sender.subscribe()
    }

    /// The newest entry the hub has read (`0-0` before any).
    pub fn newest(&self) -> StreamId {
        let ring = self.ring.read().expect("hub ring poisoned");
        ring.entries.back().map_or(ring.base, |entry| entry.id())
    }

    /// How many entries the hub has read after `after`, when its ring still holds that
    /// position (`None`: further behind than the ring, so unknown without asking the log).
    /// Counts without cloning: one binary search under the read lock.
    pub fn count_after(&self, after: StreamId) -> Option<u64> {
        let ring = self.ring.read().expect("hub ring poisoned");
        if after < ring.base {
            return None;
        }
        let start = ring.entries.partition_point(|entry| entry.id() <= after);
        Some((ring.entries.len() - start) as u64)
    }

    /// Up to `limit` entries of `epoch` after `after`, from the ring, oldest first, when the
    /// ring holds everything after `after` (`None` otherwise: read the log). An empty answer
    /// means the hub has read nothing newer yet.
    pub fn recent_after(&self, epoch: &str, after: StreamId, limit: usize) -> Option<Vec<Framed>> {
        let ring = self.ring.read().expect("hub ring poisoned");
        if ring.epoch != epoch || after < ring.base {
            return None;
        }
        let start = ring.entries.partition_point(|entry| entry.id() <= after);
        Some(
            ring.entries
                .iter()
                .skip(start)
                .take(limit)
                .cloned()
                .collect(),
        )
    }

    /// Tails the log until `shutdown`, broadcasting what it reads. Backend errors are counted,
    /// logged and retried with backoff: the reader never gives up while the process runs.
    pub async fn run(self, log: Arc<dyn Log>, metrics: Arc<Metrics>, shutdown: CancellationToken) {
        let mut position: Option<(String, StreamId)> = None;
        let mut backoff = Backoff::default();
        while !shutdown.is_cancelled() {
            let (epoch, last) = match &position {
                Some(position) => position.clone(),
                None => match log.bounds().await {
                    Ok(bounds) => {
                        position = Some((bounds.epoch.clone(), bounds.last));
                        // A subscriber that caught up with the log before this read and went
                        // live would miss what was appended since (this reader starts after
                        // it): have every subscriber look at the log once more.
                        let _ = self.sender.send(HubEvent::Resync);
                        (bounds.epoch, bounds.last)
                    }
                    Err(error) => {
                        metrics.backend_error("hub");
                        tracing::warn!(%error, "live reader cannot reach the log; retrying");
                        backoff.wait(&shutdown).await;
                        continue;
                    }
                },
            };
            let batch = tokio::select! {
                _ = shutdown.cancelled() => break,
                batch = log.wait_after(last, READ_BATCH, BLOCK) => batch,
            };
            let batch = match batch {
                Ok(batch) => batch,
                Err(error) => {
                    metrics.backend_error("hub");
                    tracing::warn!(%error, "live reader lost the log; retrying");
                    backoff.wait(&shutdown).await;
                    continue;
                }
            };
            backoff.reset();
            if batch.epoch != epoch {
                tracing::warn!(
                    epoch.old = %epoch,
                    epoch.new = %batch.epoch,
                    "the log has a new epoch (its backend lost its data); subscribers will be reset"
                );
                // Re-read the new log's end; subscribers read what they need from the log.
                position = None;
                self.ring
                    .write()
                    .expect("hub ring poisoned")
                    .restart("", StreamId::ZERO);
                let _ = self.sender.send(HubEvent::Resync);
                continue;
            }
            let mut newest = last;
            let mut ring = self.ring.write().expect("hub ring poisoned");
            if ring.epoch != epoch {
                // Just started, or after a new epoch: the ring holds what follows `last`.
                ring.restart(&epoch, last);
            }
            if batch.trimmed_through > last {
                // The reader was away longer than retention: entries passed unseen.
                ring.restart(&epoch, batch.trimmed_through);
                let _ = self.sender.send(HubEvent::Resync);
                newest = batch.trimmed_through;
            }
            for entry in batch.entries {
                newest = entry.id();
                let now_ms = chrono::Utc::now().timestamp_millis();
                metrics
                    .ingest_lag_ms
                    .set(now_ms.saturating_sub(newest.ms as i64).max(0));
                let framed = FramedEntry::new(entry);
                // In the ring before the broadcast: a subscriber told it lagged finds it there.
                ring.push(framed.clone());
                // No receivers is fine: nobody is subscribed on this node right now.
                let _ = self.sender.send(HubEvent::Entry(framed));
            }
            // Past invalid raw entries too, so they are not read again forever.
            let read_through = newest.max(batch.read_through.unwrap_or(newest));
            drop(ring);
            position = Some((epoch, read_through));
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use domain::{Cursor, Indicator, Provenance};
    use sluice_log::Entry;

    fn framed(epoch: &str, ms: u64) -> Framed {
        let indicator = Indicator::from_json(
            serde_json::json!({"indicator": format!("185.220.101.{}", ms % 250 + 1), "provider": "p"}),
            Provenance::Trusted,
            chrono::Utc::now(),
        )
        .unwrap();
        let cursor = Cursor::new(epoch, StreamId::new(ms, 0)).unwrap();
        let json: Arc<str> = indicator.to_json().to_string().into();
        FramedEntry::new(Entry::new(cursor, indicator, json))
    }

    fn ids(entries: &[Framed]) -> Vec<u64> {
        entries.iter().map(|entry| entry.id().ms).collect()
    }

    #[test]
    fn the_ring_answers_only_what_it_holds_whole() {
        let hub = Hub::new(16);
        assert!(
            hub.recent_after("e1", StreamId::ZERO, 10).is_none(),
            "nothing read yet"
        );
        {
            let mut ring = hub.ring.write().unwrap();
            ring.restart("e1", StreamId::new(10, 0));
            for ms in 11..=15 {
                ring.push(framed("e1", ms));
            }
        }
        let after = |ms| {
            hub.recent_after("e1", StreamId::new(ms, 0), 3)
                .map(|e| ids(&e))
        };
        assert_eq!(after(10), Some(vec![11, 12, 13]));
        assert_eq!(after(13), Some(vec![14, 15]));
        assert_eq!(after(15), Some(vec![]), "caught up with the hub");
        assert_eq!(after(9), None, "before the ring: the log knows");
        assert_eq!(hub.newest(), StreamId::new(15, 0));
        assert_eq!(hub.count_after(StreamId::new(12, 0)), Some(3));
        assert_eq!(hub.count_after(StreamId::new(15, 0)), Some(0));
        assert_eq!(hub.count_after(StreamId::new(9, 0)), None);
        assert!(
            hub.recent_after("e2", StreamId::new(12, 0), 3).is_none(),
            "another epoch"
        );
    }

    #[test]
    fn the_ring_is_bounded_and_moves_its_base() {
        let hub = Hub::new(16);
        let mut ring = hub.ring.write().unwrap();
        ring.restart("e1", StreamId::ZERO);
        for ms in 1..=(RING_ENTRIES as u64 + 5) {
            ring.push(framed("e1", ms));
        }
        assert_eq!(ring.entries.len(), RING_ENTRIES);
        assert_eq!(ring.base, StreamId::new(5, 0));
        drop(ring);
        assert!(hub.recent_after("e1", StreamId::new(4, 0), 1).is_none());
        let next = hub.recent_after("e1", StreamId::new(5, 0), 1).unwrap();
        assert_eq!(ids(&next), [6]);
    }
}
