//! The persistent embedded log (`--log sqlite`, the default of `sluice up` without `--redis`):
//! the retained window in memory for readers, a SQLite file in `--data-dir` underneath it.
//!
//! Why SQLite: the project already ships it (the account database, through sqlx), so the binary
//! gains no storage engine; its write-ahead log gives atomic, checksummed commits with a choice
//! of fsync; and the file opens in the `sqlite3` shell when an operator needs to look.
//!
//! Appends go through one writer task ([`writer`]) that commits whatever has queued up in one
//! transaction (group commit): ids are assigned, the batch is written and synced, and only then
//! do its entries enter the window and their cursors go back to the callers. So an entry a reader
//! has seen is on disk, and nothing acknowledged is lost to a `kill -9`. With `--log-fsync off`
//! the commit is not synced: a process crash still loses nothing, a machine crash may lose the
//! newest commits, and the log then goes on under a new epoch (found out through the boot id).
//!
//! A restart reloads the window from the file and keeps the epoch, so every cursor stays valid.
//! A row that fails its checksum cuts the log there (it and everything after are deleted), and a
//! file SQLite cannot read is moved aside: both go on under a new epoch, so clients are told
//! `reset` rather than served damaged or missing history.

mod store;
mod writer;

use std::collections::HashMap;
use std::path::PathBuf;
use std::sync::{Arc, Mutex};
use std::time::Duration;

use domain::{Cursor, Indicator, StreamId};
use futures::future::BoxFuture;
use futures::FutureExt;
use tokio::sync::{mpsc, oneshot, Notify};

use crate::retained::{wait_for_entries, Retained};
use crate::{Log, LogBounds, LogError, ReadBatch, Spaced, SpacedOutcome};

pub use store::Recovery;

/// The log file's name in the data directory.
pub const FILE_NAME: &str = "log.db";

/// When a commit is synced to disk (`--log-fsync`).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub enum Fsync {
    /// Every batch is synced before it is acknowledged: nothing acknowledged is lost, even to a
    /// power cut.
    #[default]
    EveryBatch,
    /// Commits reach the operating system, not the disk: a process crash loses nothing, a
    /// machine crash may lose the newest commits (the log then starts a new epoch).
    Off,
}

impl Fsync {
    /// The flag's value, also recorded in the file.
    pub fn name(self) -> &'static str {
        match self {
            Fsync::EveryBatch => "batch",
            Fsync::Off => "off",
        }
    }
}

#[derive(Debug, Clone)]
pub struct SqliteLogConfig {
    pub path: PathBuf,
    pub retention: Duration,
    pub max_entries: usize,
    /// Bytes of the entries' stored JSON, on disk and in the window.
    pub max_bytes: usize,
    pub fsync: Fsync,
}

/// What the readers share with the writer.
struct Shared {
    view: Mutex<View>,
    appended: Notify,
    /// The last commit's failure, cleared by the next success: what `ping` reports.
    failure: Mutex<Option<String>>,
}

struct View {
    retained: Retained,
    /// The first id of the batch being committed, if one is: no read may report a clock past
    /// it, or a reader would believe it had seen everything before entries still to come.
    committing_from: Option<u64>,
}

impl Shared {
    fn view(&self) -> std::sync::MutexGuard<'_, View> {
        self.view.lock().expect("sqlite log view lock poisoned")
    }
}

pub struct SqliteLog {
    epoch: String,
    recovery: Recovery,
    shared: Arc<Shared>,
    requests: mpsc::Sender<writer::Command>,
    writer: Mutex<Option<tokio::task::JoinHandle<()>>>,
}

impl SqliteLog {
    /// Opens the log at `config.path` (creating it and its directory), loads what it retains
    /// and starts its writer.
    pub async fn open(config: SqliteLogConfig) -> Result<Arc<Self>, LogError> {
        let opened = store::open(&config).await?;
        let shared = Arc::new(Shared {
            view: Mutex::new(View {
                retained: opened.retained,
                committing_from: None,
            }),
            appended: Notify::new(),
            failure: Mutex::new(None),
        });
        let (requests, receiver) = mpsc::channel(writer::QUEUE);
        let task = writer::Writer {
            connection: Some(opened.connection),
            epoch: opened.epoch.clone(),
            shared: Arc::clone(&shared),
            disk_trimmed: opened.disk_trimmed,
            remembered: opened.remembered,
            series: opened.series,
        };
        let writer = tokio::spawn(task.run(receiver));
        Ok(Arc::new(SqliteLog {
            epoch: opened.epoch,
            recovery: opened.recovery,
            shared,
            requests,
            writer: Mutex::new(Some(writer)),
        }))
    }

    /// What opening the file found.
    pub fn recovery(&self) -> &Recovery {
        &self.recovery
    }

    /// Stops taking appends, marks the file closed cleanly and closes it. Appends after this
    /// fail as unavailable.
    pub async fn close(&self) {
        let (done, closed) = oneshot::channel();
        if self
            .requests
            .send(writer::Command::Close(done))
            .await
            .is_ok()
        {
            let _ = closed.await;
        }
        let handle = self.writer.lock().expect("writer handle lock").take();
        if let Some(handle) = handle {
            let _ = handle.await;
        }
    }

    async fn submit(&self, op: writer::Op) -> Result<writer::Outcome, LogError> {
        let (reply, outcome) = oneshot::channel();
        self.requests
            .send(writer::Command::Write(writer::Request { op, reply }))
            .await
            .map_err(|_| LogError::Unavailable("the log is closed".into()))?;
        outcome
            .await
            .map_err(|_| LogError::Unavailable("the log's writer stopped".into()))?
    }

    fn read_sync(&self, after: StreamId, limit: usize) -> ReadBatch {
        let mut view = self.shared.view();
        let committing_from = view.committing_from;
        view.retained
            .read_batch(&self.epoch, after, limit, committing_from)
    }
}

impl Log for SqliteLog {
    fn backend_name(&self) -> &'static str {
        "sqlite"
    }

    fn append(&self, items: Vec<Indicator>) -> BoxFuture<'_, Result<Vec<Cursor>, LogError>> {
        async move {
            if items.is_empty() {
                return Ok(Vec::new());
            }
            match self.submit(writer::Op::Append(items)).await? {
                writer::Outcome::Append(cursors) => Ok(cursors),
                _ => unreachable!("an append is answered with cursors"),
            }
        }
        .boxed()
    }

    fn append_once(
        &self,
        items: Vec<(Indicator, [u8; 32])>,
        remember: Duration,
    ) -> BoxFuture<'_, Result<Vec<Option<Cursor>>, LogError>> {
        async move {
            match self.submit(writer::Op::Once(items, remember)).await? {
                writer::Outcome::Once(cursors) => Ok(cursors),
                _ => unreachable!("append_once is answered per key"),
            }
        }
        .boxed()
    }

    fn append_spaced(
        &self,
        items: Vec<Spaced>,
        remember: Duration,
    ) -> BoxFuture<'_, Result<Vec<SpacedOutcome>, LogError>> {
        async move {
            match self.submit(writer::Op::Spaced(items, remember)).await? {
                writer::Outcome::Spaced(outcomes) => Ok(outcomes),
                _ => unreachable!("append_spaced is answered per item"),
            }
        }
        .boxed()
    }

    fn bounds(&self) -> BoxFuture<'_, Result<LogBounds, LogError>> {
        let bounds = self.shared.view().retained.bounds(&self.epoch);
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
            Ok(wait_for_entries(&self.shared.appended, block, || {
                self.read_sync(after, limit)
            })
            .await)
        }
        .boxed()
    }

    fn ping(&self) -> BoxFuture<'_, Result<(), LogError>> {
        let result = if self.requests.is_closed() {
            Err(LogError::Unavailable("the log is closed".into()))
        } else {
            match &*self.shared.failure.lock().expect("failure lock") {
                Some(failure) => Err(LogError::Unavailable(failure.clone())),
                None => Ok(()),
            }
        };
        async move { result }.boxed()
    }
}

/// What `append_once` and `append_spaced` remember, owned by the writer.
type Remembered = HashMap<[u8; 32], u64>;
type SeriesMap = HashMap<[u8; 32], (i64, u64)>;
