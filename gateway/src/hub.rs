//! The hub: this node's single live reader of the log, broadcasting each entry to local clients.
//!
//! One reader per node, whatever the number of clients: the log (Redis or in-process) sees one
//! blocking read per node, and each entry is parsed and encoded once. A client that cannot keep up
//! with the broadcast channel is told `Lagged` and reads the log itself (see `subscription`), so a
//! slow client costs the others nothing and loses nothing.

use std::sync::Arc;
use std::time::Duration;

use domain::StreamId;
use tokio::sync::broadcast;
use tokio_util::sync::CancellationToken;

use sluice_log::{Backoff, Log};

use crate::frames::{Framed, FramedEntry};
use crate::metrics::Metrics;

/// Entries kept for live subscribers before a slow one lags and falls back to the log.
pub const DEFAULT_CAPACITY: usize = 4096;
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
}

impl Hub {
    pub fn new(capacity: usize) -> Self {
        let (sender, _) = broadcast::channel(capacity.max(16));
        Hub { sender }
    }

    pub fn subscribe(&self) -> broadcast::Receiver<HubEvent> {
        self.sender.subscribe()
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
                let _ = self.sender.send(HubEvent::Resync);
                continue;
            }
            let mut newest = last;
            if batch.trimmed_through > last {
                // The reader was away longer than retention: entries passed unseen.
                let _ = self.sender.send(HubEvent::Resync);
                newest = batch.trimmed_through;
            }
            for entry in batch.entries {
                newest = entry.id();
                let now_ms = chrono::Utc::now().timestamp_millis();
                metrics
                    .ingest_lag_ms
                    .set(now_ms.saturating_sub(newest.ms as i64).max(0));
                // No receivers is fine: nobody is subscribed on this node right now.
                let _ = self.sender.send(HubEvent::Entry(FramedEntry::new(entry)));
            }
            // Past invalid raw entries too, so they are not read again forever.
            position = Some((epoch, newest.max(batch.read_through.unwrap_or(newest))));
        }
    }
}
