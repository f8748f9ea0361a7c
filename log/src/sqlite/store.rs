//! The SQLite file behind the embedded log: its schema, opening and recovery, and the one
//! transaction per batch that makes appends durable.
//!
//! Tables (all `WITHOUT ROWID`, keyed by what they are looked up by):
//! - `entries(ms, seq, crc, json)`: one row per entry, keyed by its id; `crc` is a CRC-32 of the
//!   id and the JSON, checked when the log is loaded.
//! - `once_keys(key, forget_at)` and `series(key, newest, forget_at)`: what `append_once` and
//!   `append_spaced` remember, so a restart neither re-appends a key nor forgets a series.
//! - `meta(key, value)`: the format, the epoch, the newest id ever appended, the newest trimmed
//!   id, whether the last run closed cleanly, with which durability, and on which boot.

use std::collections::HashMap;
use std::path::{Path, PathBuf};
use std::sync::Arc;

use domain::{Cursor, StreamId};
use sqlx::sqlite::{
    SqliteConnectOptions, SqliteConnection, SqliteJournalMode, SqliteLockingMode, SqliteSynchronous,
};
use sqlx::{ConnectOptions, Connection};

use super::{Fsync, SqliteLogConfig};
use crate::retained::{now_ms, Bounds, Retained};
use crate::{Entry, LogError};

/// The on-disk format this code reads and writes.
const FORMAT: &str = "1";

const SCHEMA: &str = "
CREATE TABLE IF NOT EXISTS meta (key TEXT PRIMARY KEY, value TEXT NOT NULL) WITHOUT ROWID;
CREATE TABLE IF NOT EXISTS entries (
    ms INTEGER NOT NULL, seq INTEGER NOT NULL, crc INTEGER NOT NULL, json TEXT NOT NULL,
    PRIMARY KEY (ms, seq)
) WITHOUT ROWID;
CREATE TABLE IF NOT EXISTS once_keys (key BLOB PRIMARY KEY, forget_at INTEGER NOT NULL) WITHOUT ROWID;
CREATE TABLE IF NOT EXISTS series (
    key BLOB PRIMARY KEY, newest INTEGER NOT NULL, forget_at INTEGER NOT NULL
) WITHOUT ROWID;
";

/// SQLite's primary result codes for a file that is not (or no longer) a sound database.
const SQLITE_CORRUPT: &str = "11";
const SQLITE_NOTADB: &str = "26";

/// The open file and what was loaded from it.
pub(super) struct Opened {
    pub connection: SqliteConnection,
    pub epoch: String,
    pub retained: Retained,
    /// The newest id deleted from `entries` (rows at or before it are gone from disk).
    pub disk_trimmed: StreamId,
    pub remembered: HashMap<[u8; 32], u64>,
    pub series: HashMap<[u8; 32], (i64, u64)>,
    pub recovery: Recovery,
}

/// What opening found, for the log line and the tests.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Recovery {
    /// No log there before: a new one.
    Created,
    /// The log as it was left.
    Resumed,
    /// Entries from `from` on failed their checksum and were cut; a new epoch announces it.
    CutCorruptTail { from: StreamId, cut: u64 },
    /// The file was not a sound database; it was moved to `moved_to` and a new log started.
    ReplacedCorruptFile { moved_to: PathBuf },
    /// The machine restarted while the log was open with `--log-fsync off`: the newest
    /// acknowledged entries may be gone, so the log goes on under a new epoch.
    NewEpochAfterUnsyncedCrash,
}

fn unavailable(path: &Path, error: impl std::fmt::Display) -> LogError {
    LogError::Unavailable(format!("the log at {}: {error}", path.display()))
}

fn options(config: &SqliteLogConfig) -> SqliteConnectOptions {
    SqliteConnectOptions::new()
        .filename(&config.path)
        .create_if_missing(true)
        .journal_mode(SqliteJournalMode::Wal)
        .synchronous(match config.fsync {
            Fsync::EveryBatch => SqliteSynchronous::Full,
            Fsync::Off => SqliteSynchronous::Normal,
        })
        // One process owns the log: a second `sluice up` on the same directory is refused.
        .locking_mode(SqliteLockingMode::Exclusive)
        .busy_timeout(std::time::Duration::ZERO)
        // Loading a large log is one long scan, not a slow query worth a warning.
        .disable_statement_logging()
}

fn is_corruption(error: &sqlx::Error) -> bool {
    match error {
        sqlx::Error::Database(database) => database
            .code()
            .is_some_and(|code| code == SQLITE_CORRUPT || code == SQLITE_NOTADB),
        _ => false,
    }
}

fn is_busy(error: &sqlx::Error) -> bool {
    match error {
        // SQLITE_BUSY (5) and SQLITE_LOCKED (6), with or without an extended code.
        sqlx::Error::Database(database) => database
            .code()
            .and_then(|code| code.parse::<u32>().ok())
            .is_some_and(|code| matches!(code & 0xff, 5 | 6)),
        _ => false,
    }
}

/// The CRC-32 a row carries: of its id and its JSON.
pub(super) fn checksum(id: StreamId, json: &str) -> u32 {
    let mut hasher = crc32fast::Hasher::new();
    hasher.update(&id.ms.to_be_bytes());
    hasher.update(&id.seq.to_be_bytes());
    hasher.update(json.as_bytes());
    hasher.finalize()
}

/// Opens (or creates) the log, recovering from what a crash or a bad disk left.
pub(super) async fn open(config: &SqliteLogConfig) -> Result<Opened, LogError> {
    let path = &config.path;
    if let Some(dir) = path.parent().filter(|dir| !dir.as_os_str().is_empty()) {
        std::fs::create_dir_all(dir).map_err(|error| unavailable(path, error))?;
    }
    let existed = path.exists();
    match open_checked(config, existed).await {
        Ok(opened) => Ok(opened),
        Err(OpenError::Corrupt(reason)) => {
            let moved_to = move_aside(path).map_err(|error| unavailable(path, error))?;
            tracing::error!(
                log.path = %path.display(),
                log.moved_to = %moved_to.display(),
                "the log file is damaged ({reason}); it was moved aside and a new log started: \
                 clients are told `reset` and replay what the new log holds"
            );
            let mut opened = open_checked(config, false)
                .await
                .map_err(|error| error.into_log_error(path))?;
            opened.recovery = Recovery::ReplacedCorruptFile { moved_to };
            Ok(opened)
        }
        Err(error) => Err(error.into_log_error(path)),
    }
}

enum OpenError {
    Corrupt(String),
    Busy,
    Other(String),
}

impl OpenError {
    fn into_log_error(self, path: &Path) -> LogError {
        match self {
            OpenError::Busy => unavailable(
                path,
                "it is in use by another process (one node per --data-dir; stop the other, or \
                 give this one another --data-dir)",
            ),
            OpenError::Corrupt(reason) | OpenError::Other(reason) => unavailable(path, reason),
        }
    }
}

impl From<sqlx::Error> for OpenError {
    fn from(error: sqlx::Error) -> Self {
        if is_corruption(&error) {
            OpenError::Corrupt(error.to_string())
        } else if is_busy(&error) {
            OpenError::Busy
        } else {
            OpenError::Other(error.to_string())
        }
    }
}

/// Renames the file and its WAL out of the way: `log.db.corrupt-<unix seconds>`.
fn move_aside(path: &Path) -> std::io::Result<PathBuf> {
    let stamp = chrono::Utc::now().timestamp();
    let moved_to = PathBuf::from(format!("{}.corrupt-{stamp}", path.display()));
    std::fs::rename(path, &moved_to)?;
    for suffix in ["-wal", "-shm"] {
        let side = PathBuf::from(format!("{}{suffix}", path.display()));
        if side.exists() {
            std::fs::rename(&side, format!("{}{suffix}", moved_to.display()))?;
        }
    }
    Ok(moved_to)
}

/// This boot's identity (Linux), to tell a process crash from a machine crash.
fn boot_id() -> String {
    std::fs::read_to_string("/proc/sys/kernel/random/boot_id")
        .map(|id| id.trim().to_owned())
        .unwrap_or_default()
}

async fn open_checked(config: &SqliteLogConfig, existed: bool) -> Result<Opened, OpenError> {
    let mut connection = SqliteConnection::connect_with(&options(config)).await?;
    if existed {
        let check: String = sqlx::query_scalar("PRAGMA quick_check")
            .fetch_one(&mut connection)
            .await?;
        if check != "ok" {
            return Err(OpenError::Corrupt(format!("quick_check: {check}")));
        }
    }
    // The first write takes the exclusive lock, held until the connection closes.
    sqlx::raw_sql(SCHEMA).execute(&mut connection).await?;
    let meta: HashMap<String, String> = sqlx::query_as("SELECT key, value FROM meta")
        .fetch_all(&mut connection)
        .await?
        .into_iter()
        .collect();
    match meta.get("format").map(String::as_str) {
        None | Some(FORMAT) => {}
        Some(other) => {
            return Err(OpenError::Other(format!(
                "it is in format {other}, which this version of sluice does not read (it reads \
                 format {FORMAT}); run the version that wrote it, or move the file away to start \
                 a new log"
            )))
        }
    }
    let stored_id = |key: &str| {
        meta.get(key)
            .and_then(|value| StreamId::parse(value).ok())
            .unwrap_or(StreamId::ZERO)
    };
    let meta_last = stored_id("last");
    let meta_trimmed = stored_id("trimmed_through");
    let this_boot = boot_id();

    let mut recovery = if meta.contains_key("epoch") {
        Recovery::Resumed
    } else {
        Recovery::Created
    };
    let unsynced_crash = meta.get("clean").map(String::as_str) == Some("0")
        && meta.get("fsync").map(String::as_str) == Some(Fsync::Off.name())
        && meta.get("boot").is_some_and(|boot| *boot != this_boot);
    if unsynced_crash {
        recovery = Recovery::NewEpochAfterUnsyncedCrash;
    }

    let bounds = Bounds::new(config.retention, config.max_entries, config.max_bytes);
    let mut retained = Retained::new(bounds);
    let mut cut_from = None;
    let mut skipped = 0u64;
    // The file's epoch goes on only when it resumes as it was left; the scan may still find a
    // damaged tail, which ends it (the entries are then rebuilt under a fresh one).
    let kept_epoch = meta
        .get("epoch")
        .filter(|epoch| domain::cursor::validate_epoch(epoch).is_ok())
        .filter(|_| recovery == Recovery::Resumed)
        .cloned();
    let scan_epoch = kept_epoch.clone().unwrap_or_else(crate::new_epoch);
    {
        // Chunks are read by SQLite's thread while the previous one is checked and parsed on a
        // blocking thread: loading uses both of a small machine's cores.
        let now = now_ms();
        let mut after = meta_trimmed;
        let mut checking: Option<tokio::task::JoinHandle<Vec<Loaded>>> = None;
        let started = std::time::Instant::now();
        let mut reported = started;
        loop {
            if reported.elapsed() >= LOAD_PROGRESS_EVERY {
                reported = std::time::Instant::now();
                tracing::info!(
                    log.path = %config.path.display(),
                    "loading the log: {} entries so far ({} s)",
                    retained.len(),
                    started.elapsed().as_secs()
                );
            }
            let rows: Vec<(i64, i64, i64, String)> = sqlx::query_as(
                "SELECT ms, seq, crc, json FROM entries WHERE (ms, seq) > (?, ?) \
                 ORDER BY ms, seq LIMIT ?",
            )
            .bind(to_sql(after.ms))
            .bind(to_sql(after.seq))
            .bind(LOAD_CHUNK as i64)
            .fetch_all(&mut connection)
            .await?;
            let exhausted = rows.len() < LOAD_CHUNK;
            if let Some((ms, seq, _, _)) = rows.last() {
                after = StreamId::new(from_sql(*ms), from_sql(*seq));
            }
            let next = (!rows.is_empty()).then(|| {
                let epoch = scan_epoch.clone();
                tokio::task::spawn_blocking(move || check_rows(rows, &epoch))
            });
            if let Some(previous) = checking.take() {
                let loaded = previous
                    .await
                    .map_err(|error| OpenError::Other(error.to_string()))?;
                cut_from = absorb(&mut retained, loaded, now, &mut skipped);
                if cut_from.is_some() {
                    break;
                }
            }
            checking = next;
            if exhausted {
                if let Some(last) = checking.take() {
                    let loaded = last
                        .await
                        .map_err(|error| OpenError::Other(error.to_string()))?;
                    cut_from = absorb(&mut retained, loaded, now, &mut skipped);
                }
                break;
            }
        }
    }
    if skipped > 0 {
        tracing::warn!(
            log.skipped = skipped,
            "log entries that are no longer valid indicators were skipped"
        );
    }
    if let Some(from) = cut_from {
        let cut: i64 = sqlx::query_scalar("SELECT count(*) FROM entries WHERE (ms, seq) >= (?, ?)")
            .bind(to_sql(from.ms))
            .bind(to_sql(from.seq))
            .fetch_one(&mut connection)
            .await?;
        sqlx::query("DELETE FROM entries WHERE (ms, seq) >= (?, ?)")
            .bind(to_sql(from.ms))
            .bind(to_sql(from.seq))
            .execute(&mut connection)
            .await?;
        let cut = u64::try_from(cut).unwrap_or(0);
        tracing::error!(
            log.path = %config.path.display(),
            log.cut_from = %from,
            log.cut = cut,
            "the log's tail failed its checksum: {cut} entries from {from} on were cut and the log \
             goes on under a new epoch (clients are told `reset`)"
        );
        recovery = Recovery::CutCorruptTail { from, cut };
    }

    let mut epoch = scan_epoch;
    if cut_from.is_some() && kept_epoch.is_some() {
        epoch = crate::new_epoch();
        retained = rebuild(retained, &epoch, bounds);
    }
    retained.last = retained.last.max(meta_last);
    retained.trimmed_through = retained.trimmed_through.max(meta_trimmed);

    let now = i64::try_from(now_ms()).unwrap_or(i64::MAX);
    let remembered = sqlx::query_as::<_, (Vec<u8>, i64)>(
        "SELECT key, forget_at FROM once_keys WHERE forget_at > ?",
    )
    .bind(now)
    .fetch_all(&mut connection)
    .await?
    .into_iter()
    .filter_map(|(key, forget_at)| Some((key.try_into().ok()?, from_sql(forget_at))))
    .collect();
    let series = sqlx::query_as::<_, (Vec<u8>, i64, i64)>(
        "SELECT key, newest, forget_at FROM series WHERE forget_at > ?",
    )
    .bind(now)
    .fetch_all(&mut connection)
    .await?
    .into_iter()
    .filter_map(|(key, newest, forget_at)| {
        Some((key.try_into().ok()?, (newest, from_sql(forget_at))))
    })
    .collect();

    let mut transaction = connection.begin().await?;
    for (key, value) in [
        ("format", FORMAT.to_owned()),
        ("epoch", epoch.clone()),
        ("last", retained.last.to_string()),
        ("trimmed_through", meta_trimmed.to_string()),
        ("clean", "0".to_owned()),
        ("fsync", config.fsync.name().to_owned()),
        ("boot", this_boot),
    ] {
        set_meta(&mut transaction, key, &value).await?;
    }
    transaction.commit().await?;

    Ok(Opened {
        connection,
        epoch,
        retained,
        disk_trimmed: meta_trimmed,
        remembered,
        series,
        recovery,
    })
}

/// Rows read and checked per chunk while loading.
const LOAD_CHUNK: usize = 16_384;
/// How often a long load says how far it got.
const LOAD_PROGRESS_EVERY: std::time::Duration = std::time::Duration::from_secs(2);

/// One stored row, checked.
enum Loaded {
    Entry(crate::SharedEntry),
    /// Intact but no longer a valid indicator (a stricter version reads an older log): skipped,
    /// as a Redis reader skips garbage.
    Invalid,
    /// Failed its checksum: the log is cut here.
    Damaged(StreamId),
}

/// Checks and parses a chunk of rows, up to the first damaged one.
fn check_rows(rows: Vec<(i64, i64, i64, String)>, epoch: &str) -> Vec<Loaded> {
    let mut loaded = Vec::with_capacity(rows.len());
    for (ms, seq, crc, json) in rows {
        let id = StreamId::new(from_sql(ms), from_sql(seq));
        if u32::try_from(crc).ok() != Some(checksum(id, &json)) {
            loaded.push(Loaded::Damaged(id));
            break;
        }
        let cursor = Cursor::new(epoch, id).expect("epoch validated before loading");
        loaded.push(match Entry::from_stored_json(cursor, json.into()) {
            Ok(entry) => Loaded::Entry(entry),
            Err(_) => Loaded::Invalid,
        });
    }
    loaded
}

/// Adds checked rows to the window; returns where the log must be cut, if anywhere.
fn absorb(
    retained: &mut Retained,
    loaded: Vec<Loaded>,
    now: u64,
    skipped: &mut u64,
) -> Option<StreamId> {
    for row in loaded {
        match row {
            Loaded::Entry(entry) if entry.id() > retained.last => {
                retained.push(entry);
                retained.trim(now);
            }
            // Out of order can only be damage too.
            Loaded::Entry(entry) => return Some(entry.id()),
            Loaded::Invalid => *skipped += 1,
            Loaded::Damaged(id) => return Some(id),
        }
    }
    None
}

/// The same entries under another epoch's cursors.
fn rebuild(retained: Retained, epoch: &str, bounds: Bounds) -> Retained {
    let mut rebuilt = Retained::new(bounds);
    for entry in retained.read_after(StreamId::ZERO, usize::MAX) {
        let cursor = Cursor::new(epoch, entry.id()).expect("a fresh epoch is valid");
        rebuilt.push(Entry::new(
            cursor,
            entry.indicator.clone(),
            entry.json().into(),
        ));
    }
    rebuilt.last = retained.last;
    rebuilt.trimmed_through = retained.trimmed_through;
    rebuilt
}

pub(super) async fn set_meta(
    connection: &mut SqliteConnection,
    key: &str,
    value: &str,
) -> Result<(), sqlx::Error> {
    sqlx::query("INSERT OR REPLACE INTO meta (key, value) VALUES (?, ?)")
        .bind(key)
        .bind(value)
        .execute(connection)
        .await
        .map(drop)
}

/// Ids and times are stored as SQLite's signed 64-bit integers; none exceeds `i64::MAX`.
pub(super) fn to_sql(value: u64) -> i64 {
    i64::try_from(value).unwrap_or(i64::MAX)
}

fn from_sql(value: i64) -> u64 {
    u64::try_from(value).unwrap_or(0)
}

/// One batch's rows, written in one transaction.
#[derive(Default)]
pub(super) struct BatchRows {
    pub entries: Vec<(StreamId, Arc<str>)>,
    pub once_keys: Vec<([u8; 32], u64)>,
    pub series: Vec<([u8; 32], i64, u64)>,
}

/// Rows per `INSERT`: SQLite binds at most 32,766 parameters per statement.
const ROWS_PER_INSERT: usize = 500;

/// Writes one batch (and deletes what retention trimmed, through `trim_through`) in one
/// transaction; returns once it is durable as the log's `--log-fsync` says.
pub(super) async fn write_batch(
    connection: &mut SqliteConnection,
    rows: &BatchRows,
    last: StreamId,
    trim_through: Option<StreamId>,
) -> Result<(), sqlx::Error> {
    let mut transaction = connection.begin().await?;
    for chunk in rows.entries.chunks(ROWS_PER_INSERT) {
        let mut insert = sqlx::QueryBuilder::new("INSERT INTO entries (ms, seq, crc, json) ");
        insert.push_values(chunk, |mut row, (id, json)| {
            row.push_bind(to_sql(id.ms))
                .push_bind(to_sql(id.seq))
                .push_bind(i64::from(checksum(*id, json)))
                .push_bind(&**json);
        });
        insert.build().execute(&mut *transaction).await?;
    }
    for chunk in rows.once_keys.chunks(ROWS_PER_INSERT) {
        let mut insert =
            sqlx::QueryBuilder::new("INSERT OR REPLACE INTO once_keys (key, forget_at) ");
        insert.push_values(chunk, |mut row, (key, forget_at)| {
            row.push_bind(&key[..]).push_bind(to_sql(*forget_at));
        });
        insert.build().execute(&mut *transaction).await?;
    }
    for chunk in rows.series.chunks(ROWS_PER_INSERT) {
        let mut insert =
            sqlx::QueryBuilder::new("INSERT OR REPLACE INTO series (key, newest, forget_at) ");
        insert.push_values(chunk, |mut row, (key, newest, forget_at)| {
            row.push_bind(&key[..])
                .push_bind(*newest)
                .push_bind(to_sql(*forget_at));
        });
        insert.build().execute(&mut *transaction).await?;
    }
    if !rows.entries.is_empty() {
        set_meta(&mut transaction, "last", &last.to_string()).await?;
    }
    if let Some(through) = trim_through {
        sqlx::query("DELETE FROM entries WHERE (ms, seq) <= (?, ?)")
            .bind(to_sql(through.ms))
            .bind(to_sql(through.seq))
            .execute(&mut *transaction)
            .await?;
        set_meta(&mut transaction, "trimmed_through", &through.to_string()).await?;
    }
    transaction.commit().await
}

/// Forgets once-keys and series past their time.
pub(super) async fn forget_expired(
    connection: &mut SqliteConnection,
    now_ms: u64,
) -> Result<(), sqlx::Error> {
    let mut transaction = connection.begin().await?;
    sqlx::query("DELETE FROM once_keys WHERE forget_at <= ?")
        .bind(to_sql(now_ms))
        .execute(&mut *transaction)
        .await?;
    sqlx::query("DELETE FROM series WHERE forget_at <= ?")
        .bind(to_sql(now_ms))
        .execute(&mut *transaction)
        .await?;
    transaction.commit().await
}

/// Marks a clean close and folds the WAL back into the file.
pub(super) async fn close(mut connection: SqliteConnection) -> Result<(), sqlx::Error> {
    set_meta(&mut connection, "clean", "1").await?;
    sqlx::query("PRAGMA wal_checkpoint(TRUNCATE)")
        .execute(&mut connection)
        .await?;
    connection.close().await
}
