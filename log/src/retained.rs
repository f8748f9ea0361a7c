//! The retained window the embedded logs keep in memory: entries in id order, trimmed from the
//! front by age, by count and by bytes, with the newest trimmed id reported to readers.
//!
//! The in-process log is nothing but this window; the SQLite log keeps the same window in
//! memory for its readers and writes every entry to disk before it enters the window.

use std::collections::VecDeque;
use std::time::Duration;

use domain::StreamId;

use crate::SharedEntry;

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
