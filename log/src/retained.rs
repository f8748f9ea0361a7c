//! The retained window the embedded logs keep in memory: entries in id order, trimmed from the
//! front by age, by count and by bytes, with the newest trimmed id reported to readers.
//!
//! The in-process log is nothing but this window; the SQLite log keeps the same window in
//! memory for its readers and writes every entry to disk before it enters the window.

use std::collections::VecDeque;
use std::time::Duration;

use domain::StreamId;

use crate::{LogBounds, ReadBatch, SharedEntry};

/// How much the window keeps.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Bounds {
    pub retention: Duration,
    pub max_entries: usize,
    /// Bytes of the entries' stored JSON.
    pub max_bytes: usize,
}

impl Bounds {
    pub fn new(retention: Duration, max_entries: usize, max_bytes: usize) -> Bounds {
        Bounds {
            retention,
            max_entries: max_entries.max(1),
            max_bytes: max_bytes.max(1),
        }
    }
}

pub(crate) struct Retained {
    bounds: Bounds,
    entries: VecDeque<SharedEntry>,
    /// The stored JSON bytes of `entries`, what `bounds.max_bytes` bounds.
    bytes: usize,
    /// The newest id ever in the window (`0-0` if none).
    pub last: StreamId,
    /// The newest id trimmed from the window (`0-0` if none).
    pub trimmed_through: StreamId,
}

/// The id after `last` at the log's clock `now_ms`: the rule of Redis `XADD *`, time-based and
/// monotonic even if the clock steps back.
pub(crate) fn next_id(last: StreamId, now_ms: u64) -> StreamId {
    if now_ms > last.ms {
        StreamId::new(now_ms, 0)
    } else {
        StreamId::new(last.ms, last.seq + 1)
    }
}

/// The wall clock in milliseconds, the embedded logs' clock.
pub(crate) fn now_ms() -> u64 {
    u64::try_from(chrono::Utc::now().timestamp_millis()).unwrap_or(0)
}

impl Retained {
    pub fn new(bounds: Bounds) -> Retained {
        Retained {
            bounds,
            entries: VecDeque::new(),
            bytes: 0,
            last: StreamId::ZERO,
            trimmed_through: StreamId::ZERO,
        }
    }

    pub fn len(&self) -> usize {
        self.entries.len()
    }

    /// Adds an entry newer than every entry so far. The caller trims afterwards.
    pub fn push(&mut self, entry: SharedEntry) {
        debug_assert!(
            entry.id() > self.last,
            "entries enter the window in id order"
        );
        self.bytes += entry.json().len();
        self.last = entry.id();
        self.entries.push_back(entry);
    }

    /// Removes from the front what is older than the retention at `now_ms`, or beyond the count
    /// or byte bound.
    pub fn trim(&mut self, now_ms: u64) {
        let retention_ms = u64::try_from(self.bounds.retention.as_millis()).unwrap_or(u64::MAX);
        let min_ms = now_ms.saturating_sub(retention_ms);
        while let Some(front) = self.entries.front() {
            let expired = front.id().ms < min_ms;
            let over =
                self.entries.len() > self.bounds.max_entries || self.bytes > self.bounds.max_bytes;
            if !(expired || over) {
                break;
            }
            self.trimmed_through = front.id();
            self.bytes -= front.json().len();
            self.entries.pop_front();
        }
    }

    /// The window's extent now (after trimming to now).
    pub fn bounds(&mut self, epoch: &str) -> LogBounds {
        self.trim(now_ms());
        LogBounds {
            epoch: epoch.to_owned(),
            last: self.last,
            trimmed_through: self.trimmed_through,
            len: self.len() as u64,
        }
    }

    /// A read at `now_ms` (after trimming to it): the entries after `after`, at most `limit`.
    /// `clock_ms` is the log's clock unless a commit in flight holds it back (`committing_from`).
    pub fn read_batch(
        &mut self,
        epoch: &str,
        after: StreamId,
        limit: usize,
        committing_from: Option<u64>,
    ) -> ReadBatch {
        let now = now_ms();
        self.trim(now);
        let entries = self.read_after(after, limit);
        ReadBatch {
            epoch: epoch.to_owned(),
            trimmed_through: self.trimmed_through,
            read_through: entries.last().map(|entry| entry.id()),
            scanned: entries.len(),
            entries,
            clock_ms: committing_from.unwrap_or_else(|| now.max(self.last.ms)),
        }
    }

    /// The entries after `after`, oldest first, at most `limit`.
    pub fn read_after(&self, after: StreamId, limit: usize) -> Vec<SharedEntry> {
        let start = self.entries.partition_point(|entry| entry.id() <= after);
        self.entries
            .iter()
            .skip(start)
            .take(limit)
            .cloned()
            .collect()
    }
}

/// The embedded logs' `wait_after`: `read` until it returns entries, waking on `appended`, for up
/// to `block`; then whatever the last read returned.
pub(crate) async fn wait_for_entries(
    appended: &tokio::sync::Notify,
    block: Duration,
    read: impl Fn() -> ReadBatch,
) -> ReadBatch {
    let deadline = tokio::time::Instant::now() + block;
    loop {
        // Register interest before looking, so an append between the look and the wait still
        // wakes us.
        let notified = appended.notified();
        let batch = read();
        if !batch.entries.is_empty() {
            return batch;
        }
        if tokio::time::timeout_at(deadline, notified).await.is_err() {
            return batch;
        }
    }
}
