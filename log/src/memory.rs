//! The in-process log: the embedded default for a single node (`sluice up` without `--redis`).
//!
//! Entries live in a `VecDeque` ordered by id; retention trims the front by age, by count and by
//! bytes (the stored JSON of the entries), and reports whatever it trimmed through
//! `trimmed_through`, whichever bound removed it.
//! A restart loses the log, so each process start is a new epoch: cursors from before are
//! answered with `reset`, never silently.

use std::collections::{HashMap, VecDeque};
use std::sync::{Arc, Mutex};
use std::time::Duration;

use domain::{Cursor, Indicator, StreamId};
use futures::future::BoxFuture;
use futures::FutureExt;
use tokio::sync::Notify;

use crate::{Entry, Log, LogBounds, LogError, ReadBatch, SharedEntry, Spaced, SpacedOutcome};

/// The in-process log's default bound on bytes (`--memory-log-max-bytes`): 256 MiB of stored JSON.
pub const DEFAULT_MAX_BYTES: usize = 256 * 1024 * 1024;

pub struct MemoryLog {
    epoch: String,
    retention: Duration,
    max_entries: usize,
    max_bytes: usize,
    inner: Mutex<Inner>,
    appended: Notify,
}

#[derive(Default)]
struct Inner {
    entries: VecDeque<SharedEntry>,
    /// The stored JSON bytes of `entries`, what `max_bytes` bounds.
    bytes: usize,
    last: StreamId,
    trimmed_through: StreamId,
    /// `append_once` keys and when they are forgotten (ms).
    remembered: HashMap<[u8; 32], u64>,
    /// `remembered`'s size after its last pruning: it is pruned again when it has doubled.
    remembered_pruned_at: usize,
    /// `append_spaced` series: the newest time appended and when the series is forgotten (ms).
    series: HashMap<[u8; 32], (i64, u64)>,
}

impl MemoryLog {
    /// A log keeping entries for `retention`, and at most `max_entries` of them (memory bound),
    /// holding at most [`DEFAULT_MAX_BYTES`] of JSON.
    pub fn new(retention: Duration, max_entries: usize) -> Arc<Self> {
        Self::with_max_bytes(retention, max_entries, DEFAULT_MAX_BYTES)
    }

    /// As [`MemoryLog::new`], keeping at most `max_bytes` of entries' stored JSON: the oldest
    /// entries are trimmed when either bound is exceeded. The process's memory for the log is a
    /// small multiple of it (each entry also keeps its parsed indicator).
    pub fn with_max_bytes(retention: Duration, max_entries: usize, max_bytes: usize) -> Arc<Self> {
        Arc::new(MemoryLog {
            epoch: crate::new_epoch(),
            retention,
            max_entries: max_entries.max(1),
            max_bytes: max_bytes.max(1),
            inner: Mutex::new(Inner::default()),
            appended: Notify::new(),
        })
    }

    fn now_ms() -> u64 {
        u64::try_from(chrono::Utc::now().timestamp_millis()).unwrap_or(0)
    }

    fn append_sync(&self, items: Vec<Indicator>) -> Vec<Cursor> {
        let mut inner = self.inner.lock().expect("memory log lock poisoned");
        let cursors = self.append_locked(&mut inner, items);
        drop(inner);
        self.appended.notify_waiters();
        cursors
    }

    fn append_locked(&self, inner: &mut Inner, items: Vec<Indicator>) -> Vec<Cursor> {
        // Read under the lock, so an id is never older than a clock a reader already saw.
        let now = Self::now_ms();
        let mut cursors = Vec::with_capacity(items.len());
        {
            for indicator in items {
                // Same rule as Redis `XADD *`: time-based, monotonic even if the clock steps back.
                let id = if now > inner.last.ms {
                    StreamId::new(now, 0)
                } else {
                    StreamId::new(inner.last.ms, inner.last.seq + 1)
                };
                let cursor = Cursor::new(&self.epoch, id).expect("epoch is valid by construction");
                let json: Arc<str> = indicator.to_json().to_string().into();
                inner.bytes += json.len();
                inner
                    .entries
                    .push_back(Entry::new(cursor.clone(), indicator, json));
                inner.last = id;
                cursors.push(cursor);
            }
            self.trim(inner, now);
        }
        cursors
    }

    fn append_spaced_sync(&self, items: Vec<Spaced>, remember: Duration) -> Vec<SpacedOutcome> {
        let mut inner = self.inner.lock().expect("memory log lock poisoned");
        let now = Self::now_ms();
        inner.series.retain(|_, (_, forget_at)| *forget_at > now);
        let forget_at = now.saturating_add(u64::try_from(remember.as_millis()).unwrap_or(u64::MAX));
        let mut results = Vec::with_capacity(items.len());
        for item in items {
            if let Some(&(newest, _)) = inner.series.get(&item.series) {
                if item.time < newest.saturating_add(item.spacing) {
                    results.push(SpacedOutcome::Refused { newest });
                    continue;
                }
            }
            inner.series.insert(item.series, (item.time, forget_at));
            let cursors = self.append_locked(&mut inner, vec![item.indicator]);
            results.extend(cursors.into_iter().map(SpacedOutcome::Appended));
        }
        drop(inner);
        self.appended.notify_waiters();
        results
    }

    fn append_once_sync(
        &self,
        items: Vec<(Indicator, [u8; 32])>,
        remember: Duration,
    ) -> Vec<Option<Cursor>> {
        let mut inner = self.inner.lock().expect("memory log lock poisoned");
        let now = Self::now_ms();
        if inner.remembered.len() >= 2 * inner.remembered_pruned_at.max(1024) {
            inner.remembered.retain(|_, forget_at| *forget_at > now);
            inner.remembered_pruned_at = inner.remembered.len();
        }
        let forget_at = now.saturating_add(u64::try_from(remember.as_millis()).unwrap_or(u64::MAX));
        let mut results = Vec::with_capacity(items.len());
        for (indicator, key) in items {
            let seen = inner
                .remembered
                .get(&key)
                .is_some_and(|forget| *forget > now);
            if seen {
                results.push(None);
                continue;
            }
            inner.remembered.insert(key, forget_at);
            let cursor = self.append_locked(&mut inner, vec![indicator]).pop();
            results.push(cursor);
        }
        drop(inner);
        self.appended.notify_waiters();
        results
    }

    fn trim(&self, inner: &mut Inner, now_ms: u64) {
        let min_ms =
            now_ms.saturating_sub(u64::try_from(self.retention.as_millis()).unwrap_or(u64::MAX));
        while let Some(front) = inner.entries.front() {
            let expired = front.id().ms < min_ms;
            let over = inner.entries.len() > self.max_entries || inner.bytes > self.max_bytes;
            if !(expired || over) {
                break;
            }
            inner.trimmed_through = front.id();
            inner.bytes -= front.json().len();
            inner.entries.pop_front();
        }
    }

    fn read_sync(&self, after: StreamId, limit: usize) -> ReadBatch {
        let mut inner = self.inner.lock().expect("memory log lock poisoned");
        self.trim(&mut inner, Self::now_ms());
        let start = inner.entries.partition_point(|entry| entry.id() <= after);
        let entries: Vec<SharedEntry> = inner
            .entries
            .iter()
            .skip(start)
            .take(limit)
            .cloned()
            .collect();
        ReadBatch {
            epoch: self.epoch.clone(),
            trimmed_through: inner.trimmed_through,
            read_through: entries.last().map(|entry| entry.id()),
            scanned: entries.len(),
            entries,
            clock_ms: Self::now_ms().max(inner.last.ms),
        }
    }
}

impl Log for MemoryLog {
    fn backend_name(&self) -> &'static str {
        "memory"
    }

    fn append(&self, items: Vec<Indicator>) -> BoxFuture<'_, Result<Vec<Cursor>, LogError>> {
        let cursors = self.append_sync(items);
        async move { Ok(cursors) }.boxed()
    }

    fn append_once(
        &self,
        items: Vec<(Indicator, [u8; 32])>,
        remember: Duration,
    ) -> BoxFuture<'_, Result<Vec<Option<Cursor>>, LogError>> {
        let cursors = self.append_once_sync(items, remember);
        async move { Ok(cursors) }.boxed()
    }

    fn append_spaced(
        &self,
        items: Vec<Spaced>,
        remember: Duration,
    ) -> BoxFuture<'_, Result<Vec<SpacedOutcome>, LogError>> {
        let cursors = self.append_spaced_sync(items, remember);
        async move { Ok(cursors) }.boxed()
    }

    fn bounds(&self) -> BoxFuture<'_, Result<LogBounds, LogError>> {
        let bounds = {
            let mut inner = self.inner.lock().expect("memory log lock poisoned");
            self.trim(&mut inner, Self::now_ms());
            LogBounds {
                epoch: self.epoch.clone(),
                last: inner.last,
                trimmed_through: inner.trimmed_through,
                len: inner.entries.len() as u64,
            }
        };
        async move { Ok(bounds) }.boxed()
    }

    fn read_after(
        &self,
        after: StreamId,
        limit: usize,
    ) -> BoxFuture<'_, Result<ReadBatch, LogError>> {
        let batch = self.read_sync(after, limit);
        async move { Ok(batch) }.boxed()
    }

    fn wait_after(
        &self,
        after: StreamId,
        limit: usize,
        block: Duration,
    ) -> BoxFuture<'_, Result<ReadBatch, LogError>> {
        async move {
            let deadline = tokio::time::Instant::now() + block;
            loop {
                // Register interest before looking, so an append between the look and the
                // wait still wakes us.
                let notified = self.appended.notified();
                let batch = self.read_sync(after, limit);
                if !batch.entries.is_empty() {
                    return Ok(batch);
                }
                if tokio::time::timeout_at(deadline, notified).await.is_err() {
                    return Ok(batch);
                }
            }
        }
        .boxed()
    }

    fn ping(&self) -> BoxFuture<'_, Result<(), LogError>> {
        async { Ok(()) }.boxed()
    }
}
