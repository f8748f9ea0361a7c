//! The indicator log: one trait, three backends (SQLite on disk, in-process, Redis Streams).
//!
//! The log is the source of truth for delivery: live fan-out is only an optimisation over it, and
//! any subscriber that falls behind or resumes reads the log itself. That is what makes "no gap,
//! no duplicate" hold: every entry has one cursor, and cursors are ordered.
//!
//! This crate knows indicators and cursors (`domain`) and its storage backends; it knows
//! nothing of transports, accounts or plans.

mod backoff;
mod entry;
mod epoch;
pub mod memory;
pub mod redis;
mod retained;
pub mod sqlite;

use std::time::Duration;

use domain::{Cursor, Indicator, StreamId};
use futures::future::BoxFuture;

pub use backoff::Backoff;
pub use entry::{Entry, SharedEntry};
pub use epoch::new_epoch;

/// What a read returns: entries plus what the reader needs to detect a gap.
#[derive(Debug, Default)]
pub struct ReadBatch {
    /// The log's current epoch.
    pub epoch: String,
    /// The newest entry that retention removed (`0-0` if none): a reader positioned before it
    /// has lost history and must be told (`reset`).
    pub trimmed_through: StreamId,
    pub entries: Vec<SharedEntry>,
    /// The id of the last raw entry read, valid or not (`None`: nothing was read). Readers
    /// advance to it, so an entry that is not a valid indicator is skipped once, not forever.
    pub read_through: Option<StreamId>,
    /// The log's clock (ms) when the read was taken: entries appended afterwards get ids at or
    /// after it. A read that returned fewer entries than its limit saw everything before it.
    pub clock_ms: u64,
    /// Raw entries read, valid or not: fewer than the limit means the read reached the end.
    pub scanned: usize,
}

/// The log's current extent.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct LogBounds {
    pub epoch: String,
    /// The newest entry's id, or `0-0` for an empty log.
    pub last: StreamId,
    /// The newest id removed by retention, or `0-0`.
    pub trimmed_through: StreamId,
    /// Entries currently retained.
    pub len: u64,
}

#[derive(Debug, thiserror::Error)]
pub enum LogError {
    #[error("the log backend is unavailable: {0}")]
    Unavailable(String),
    #[error("the log backend answered something unexpected: {0}")]
    Protocol(String),
}

/// An ordered, retained, replayable log of indicators.
///
/// Implementations must give every entry a unique [`StreamId`] greater than all earlier ones,
/// and report retention honestly through `trimmed_through`.
pub trait Log: Send + Sync + 'static {
    /// `"sqlite"`, `"memory"` or `"redis"`, for logs and `/readyz`.
    fn backend_name(&self) -> &'static str;

    /// Appends validated indicators in order and returns their cursors.
    fn append(&self, items: Vec<Indicator>) -> BoxFuture<'_, Result<Vec<Cursor>, LogError>>;

    /// Appends each item at most once per cluster while its key is remembered (`remember`):
    /// every node receives the same upstream `PUBLISH` (key: the message's SHA-256), and every
    /// correlator replica decides the same emissions (key: the emission's identity). Returns, per
    /// item, its cursor or `None` when the key was already appended.
    fn append_once(
        &self,
        items: Vec<(Indicator, [u8; 32])>,
        remember: Duration,
    ) -> BoxFuture<'_, Result<Vec<Option<Cursor>>, LogError>>;

    /// Appends each item unless its series (a 32-byte key) already has an item less than
    /// `spacing` after it, or later: the log remembers the newest time appended per series for
    /// `remember`. Only ever-later items a full spacing apart get in, however many writers
    /// decide them and in whatever order they crash and replay. Returns, per item, its cursor
    /// or the series' newest time when refused.
    fn append_spaced(
        &self,
        items: Vec<Spaced>,
        remember: Duration,
    ) -> BoxFuture<'_, Result<Vec<SpacedOutcome>, LogError>>;

    fn bounds(&self) -> BoxFuture<'_, Result<LogBounds, LogError>>;

    /// Entries with an id greater than `after`, oldest first, at most `limit`.
    fn read_after(
        &self,
        after: StreamId,
        limit: usize,
    ) -> BoxFuture<'_, Result<ReadBatch, LogError>>;

    /// Like `read_after`, but waits up to `block` for something to arrive. Used only by the
    /// node's single live reader (the hub).
    fn wait_after(
        &self,
        after: StreamId,
        limit: usize,
        block: Duration,
    ) -> BoxFuture<'_, Result<ReadBatch, LogError>>;

    /// Cheap reachability check for `/readyz`.
    fn ping(&self) -> BoxFuture<'_, Result<(), LogError>>;
}

/// An item for [`Log::append_spaced`].
#[derive(Debug, Clone)]
pub struct Spaced {
    pub indicator: Indicator,
    pub series: [u8; 32],
    /// The item's time in its series (microseconds).
    pub time: i64,
    /// How far after the series' newest item this one must be (microseconds).
    pub spacing: i64,
}

impl Spaced {
    /// Whether the item is too close to (or older than) its series' newest time.
    pub fn too_close_to(&self, newest: i64) -> bool {
        self.time < newest.saturating_add(self.spacing)
    }
}

/// What became of one [`Spaced`] item.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum SpacedOutcome {
    Appended(Cursor),
    /// Too close to (or older than) the series' newest item, whose time this is.
    Refused {
        newest: i64,
    },
}

/// How long entries are kept (docs/protocol.md §3: a replayable 24-hour log).
pub const DEFAULT_RETENTION: Duration = Duration::from_secs(24 * 3600);
