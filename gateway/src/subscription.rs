//! One subscriber's ordered view of the log: catch up from the log, then follow the hub.
//!
//! Invariant: the sequence handed out is every log entry after the start position that passes
//! the filter, in cursor order, each once; any loss (retention, a lost Redis) is announced with a
//! `Reset` before anything after it. The proof sketch: the broadcast receiver is created before
//! the log is first read, so every entry appended after a read is broadcast to us later; entries
//! at or before `read_position` are skipped; on `Lagged` or `Resync` we read the log again.
//!
//! `next` is cancel-safe (state changes only after an await completes), so transports can use it
//! in `select!`.

use std::collections::VecDeque;
use std::sync::Arc;

use domain::protocol::ResetReason;
use domain::{Cursor, Filter, LogPosition, StreamId};
use sluice_log::{Backoff, Log, LogError, ReadBatch};
use tokio::sync::broadcast::{self, error::RecvError};
use tokio_util::sync::CancellationToken;

use crate::frames::{Framed, FramedEntry};
use crate::hub::{Hub, HubEvent};

const CATCH_UP_BATCH: usize = 256;

/// What a subscriber receives next.
#[derive(Debug, Clone)]
pub enum Delivery {
    Entry(Framed),
    /// History the subscriber needed is gone; delivery continues after `cursor`.
    Reset {
        reason: ResetReason,
        cursor: Cursor,
    },
}

/// Where a new subscriber starts: a position of the log (`cursor=`, `Last-Event-ID`), or a time
/// (`since=`), which becomes the position just before the first entry added at or after it and
/// is then checked like a cursor.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Start {
    At(LogPosition),
    /// The first entry whose id's millisecond (when the log added it) is at or after this Unix
    /// time in milliseconds.
    AddedSince(u64),
}

pub struct Subscription {
    log: Arc<dyn Log>,
    hub: Hub,
    receiver: broadcast::Receiver<HubEvent>,
    filter: Filter,
    epoch: String,
    read_position: StreamId,
    catching_up: bool,
    pending: VecDeque<Framed>,
    pending_reset: Option<Delivery>,
    backoff: Backoff,
    /// The oldest position the plan may read (replay window), as of the connection's start.
    floor: StreamId,
}

impl Subscription {
    /// Positions a new subscriber. `floor` is the oldest position its plan may resume from
    /// (the replay window). Returns the subscription and the cursor it starts after (the
    /// `hello` frame's cursor).
    pub async fn start(
        hub: &Hub,
        log: Arc<dyn Log>,
        start: Start,
        filter: Filter,
        floor: StreamId,
    ) -> Result<(Subscription, Cursor), LogError> {
        let receiver = hub.subscribe();
        let bounds = log.bounds().await?;
        let position = match start {
            Start::At(position) => position,
            Start::AddedSince(ms) => {
                // Right before every id of millisecond `ms`: a cursor of this epoch, so the
                // checks below (retention, replay window) treat it as they treat a client's.
                let before = ms
                    .checked_sub(1)
                    .map_or(StreamId::ZERO, |previous| StreamId::new(previous, u64::MAX));
                if before >= bounds.last {
                    // Nothing was added at or after that time yet (or it is in the future):
                    // nothing to replay and nothing lost, so no reset; new entries follow.
                    LogPosition::Now
                } else {
                    LogPosition::After(make_cursor(&bounds.epoch, before))
                }
            }
        };
        // Stream ids come from the log's clock, the floor from ours: never start past the log's
        // end, or entries appended with smaller ids would be skipped.
        let floor = floor.min(bounds.last);
        let oldest_allowed = bounds.trimmed_through.max(floor);
        let mut pending_reset: Option<ResetReason> = None;
        let read_position = match position {
            LogPosition::Now => bounds.last,
            LogPosition::Earliest => oldest_allowed,
            LogPosition::After(cursor) if cursor.epoch() != bounds.epoch => {
                pending_reset = Some(ResetReason::LogRestarted);
                oldest_allowed
            }
            LogPosition::After(cursor) if cursor.id() < bounds.trimmed_through => {
                pending_reset = Some(ResetReason::HistoryTrimmed);
                oldest_allowed
            }
            LogPosition::After(cursor) if cursor.id() < floor => {
                // Out of the window only if something the plan may not replay follows the
                // cursor: a client whose cursor is old because nothing arrived after it (the
                // `hello` of an empty log, a quiet day) has lost nothing and goes on from it.
                let next = log.read_after(cursor.id(), 1).await?;
                match next.entries.first() {
                    Some(entry) if entry.id() < floor => {
                        pending_reset = Some(ResetReason::ReplayWindow);
                        oldest_allowed
                    }
                    _ => cursor.id(),
                }
            }
            LogPosition::After(cursor) if cursor.id() > bounds.last => {
                pending_reset = Some(ResetReason::CursorAheadOfLog);
                bounds.last
            }
            LogPosition::After(cursor) => cursor.id(),
        };
        let start = make_cursor(&bounds.epoch, read_position);
        let subscription = Subscription {
            log,
            hub: hub.clone(),
            receiver,
            filter,
            epoch: bounds.epoch,
            read_position,
            catching_up: true,
            pending: VecDeque::new(),
            pending_reset: pending_reset.map(|reason| Delivery::Reset {
                reason,
                cursor: start.clone(),
            }),
            backoff: Backoff::default(),
            floor,
        };
        Ok((subscription, start))
    }

    /// The next delivery. Waits for new entries; while the log backend is unreachable it retries
    /// with backoff (the connection stays open and resumes without a gap when it returns).
    /// Returns `None` when the node shuts down.
    pub async fn next(&mut self, shutdown: &CancellationToken) -> Option<Delivery> {
        loop {
            if let Some(reset) = self.pending_reset.take() {
                return Some(reset);
            }
            if let Some(entry) = self.pending.pop_front() {
                if self.filter.matches(&entry.indicator) {
                    return Some(Delivery::Entry(entry));
                }
                continue;
            }
            if self.catching_up {
                // What the hub still holds is shared by every lagging subscriber: no read.
                if let Some(recent) =
                    self.hub
                        .recent_after(&self.epoch, self.read_position, CATCH_UP_BATCH)
                {
                    match recent.last() {
                        Some(newest) => {
                            self.read_position = newest.id();
                            self.pending.extend(recent);
                        }
                        // Caught up with the hub: follow it live.
                        None => self.catching_up = false,
                    }
                    continue;
                }
                match self
                    .log
                    .read_after(self.read_position, CATCH_UP_BATCH)
                    .await
                {
                    Ok(batch) => {
                        self.backoff.reset();
                        self.absorb(batch);
                    }
                    Err(error) => {
                        tracing::debug!(%error, "subscriber cannot read the log; retrying");
                        self.backoff.wait(shutdown).await;
                        if shutdown.is_cancelled() {
                            return None;
                        }
                    }
                }
                continue;
            }
            match self.receiver.recv().await {
                Ok(HubEvent::Entry(entry)) => {
                    if entry.cursor.epoch() != self.epoch {
                        self.catching_up = true;
                        continue;
                    }
                    if entry.id() <= self.read_position {
                        continue;
                    }
                    self.read_position = entry.id();
                    if self.filter.matches(&entry.indicator) {
                        return Some(Delivery::Entry(entry));
                    }
                }
                Ok(HubEvent::Resync) | Err(RecvError::Lagged(_)) => self.catching_up = true,
                Err(RecvError::Closed) => return None,
            }
        }
    }

    fn absorb(&mut self, batch: ReadBatch) {
        if batch.epoch != self.epoch {
            // A new epoch of the same log (Redis lost all or part of its data): what it holds
            // before our place is what we delivered or a history that no longer exists, and
            // what it appends from now on comes after it. So we keep our place, and say so; a
            // replay of everything retained would send every client a day of duplicates at once.
            self.epoch = batch.epoch;
            self.read_position = self
                .read_position
                .max(batch.trimmed_through)
                .max(self.floor);
            self.pending_reset = Some(Delivery::Reset {
                reason: ResetReason::LogRestarted,
                cursor: make_cursor(&self.epoch, self.read_position),
            });
            return;
        }
        if batch.trimmed_through > self.read_position {
            self.read_position = batch.trimmed_through;
            self.pending_reset = Some(Delivery::Reset {
                reason: ResetReason::HistoryTrimmed,
                cursor: make_cursor(&self.epoch, self.read_position),
            });
            return;
        }
        let Some(read_through) = batch.read_through else {
            self.catching_up = false;
            return;
        };
        self.pending
            .extend(batch.entries.into_iter().map(FramedEntry::new));
        self.read_position = read_through;
    }
}

fn make_cursor(epoch: &str, id: StreamId) -> Cursor {
    Cursor::new(epoch, id).expect("epochs come from the log and are valid")
}
