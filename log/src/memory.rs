//! The in-process log (`--log memory`): tests and throwaway runs.
//!
//! Entries live in the retained window (`retained.rs`); retention trims it by age, by count and
//! by bytes (the stored JSON of the entries), and reports whatever it trimmed through
//! `trimmed_through`, whichever bound removed it.
//! A restart loses the log, so each process start is a new epoch: cursors from before are
//! answered with `reset`, never silently.

use std::collections::HashMap;
use std::sync::{Arc, Mutex};
use std::time::Duration;

use domain::{Cursor, Indicator, StreamId};
use futures::future::BoxFuture;
use futures::FutureExt;
use tokio::sync::Notify;

use crate::retained::{next_id, now_ms, wait_for_entries, Bounds, Retained};
use crate::{Entry, Log, LogBounds, LogError, ReadBatch, Spaced, SpacedOutcome};

/// The embedded logs' default bound on bytes (`--log-max-bytes`): 256 MiB of stored JSON.
pub const DEFAULT_MAX_BYTES: usize = 256 * 1024 * 1024;

pub struct MemoryLog {
    epoch: String,
    inner: Mutex<Inner>,
    appended: Notify,
}

struct Inner {
    retained: Retained,
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
    /// multiple of it: about 5 times for typical indicators, as each entry also keeps its parsed
    /// indicator (BENCHMARKS.md).
    pub fn with_max_bytes(retention: Duration, max_entries: usize, max_bytes: usize) -> Arc<Self> {
        Arc::new(MemoryLog {
            epoch: crate::new_epoch(),
            inner: Mutex::new(Inner {
                retained: Retained::new(Bounds::new(retention, max_entries, max_bytes)),
                remembered: HashMap::new(),
                remembered_pruned_at: 0,
                series: HashMap::new(),
            }),
            appended: Notify::new(),
        })
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
        let now = now_ms();
        let mut cursors = Vec::with_capacity(items.len());
        for indicator in items {
            let id = next_id(inner.retained.last, now);
            let cursor = Cursor::new(&self.epoch, id).expect("epoch is valid by construction");
            let json: Arc<str> = indicator.to_json().to_string().into();
            inner
                .retained
                .push(Entry::new(cursor.clone(), indicator, json));
            cursors.push(cursor);
        }
        inner.retained.trim(now);
        cursors
    }

    fn append_spaced_sync(&self, items: Vec<Spaced>, remember: Duration) -> Vec<SpacedOutcome> {
        let mut inner = self.inner.lock().expect("memory log lock poisoned");
        let now = now_ms();
        inner.series.retain(|_, (_, forget_at)| *forget_at > now);
        let forget_at = now.saturating_add(u64::try_from(remember.as_millis()).unwrap_or(u64::MAX));
        let mut results = Vec::with_capacity(items.len());
        for item in items {
            if let Some(&(newest, _)) = inner.series.get(&item.series) {
                if item.too_close_to(newest) {
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
        let now = now_ms();
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

    fn read_sync(&self, after: StreamId, limit: usize) -> ReadBatch {
        let mut inner = self.inner.lock().expect("memory log lock poisoned");
        inner.retained.read_batch(&self.epoch, after, limit, None)
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
            inner.retained.bounds(&self.epoch)
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
            Ok(wait_for_entries(&self.appended, block, || self.read_sync(after, limit)).await)
        }
        .boxed()
    }

    fn ping(&self) -> BoxFuture<'_, Result<(), LogError>> {
        async { Ok(()) }.boxed()
    }
}
