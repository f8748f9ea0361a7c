//! What only the SQLite log promises: its entries, epoch, cursors, once-keys and series outlive
//! the process; retention still holds across a restart; damage is cut and announced with a new
//! epoch, never served; one process owns the file.

use std::path::{Path, PathBuf};
use std::sync::Arc;
use std::time::Duration;

use domain::{Cursor, Indicator, Provenance, StreamId};
use sluice_log::sqlite::{Fsync, Recovery, SqliteLog, SqliteLogConfig, FILE_NAME};
use sluice_log::{Log, LogError, Spaced, SpacedOutcome};
use sqlx::Connection;

const LONG: Duration = Duration::from_secs(3600);

fn config(dir: &Path) -> SqliteLogConfig {
    SqliteLogConfig {
        path: dir.join(FILE_NAME),
        retention: sluice_log::DEFAULT_RETENTION,
        max_entries: 100_000,
        max_bytes: sluice_log::memory::DEFAULT_MAX_BYTES,
        fsync: Fsync::EveryBatch,
    }
}

fn indicator(n: usize) -> Indicator {
    let value = serde_json::json!({
        "indicator": format!("198.51.{}.{}", n / 256 % 256, n % 256),
        "provider": "persistence",
        "tags": ["scanner"],
        "reporttime": "2024-01-01T00:00:00Z",
    });
    Indicator::from_json(value, Provenance::Trusted, chrono::Utc::now()).unwrap()
}

async fn append(log: &SqliteLog, range: std::ops::Range<usize>) -> Vec<Cursor> {
    log.append(range.map(indicator).collect()).await.unwrap()
}

/// Every retained entry, as (cursor, JSON).
async fn contents(log: &SqliteLog) -> Vec<(Cursor, String)> {
    let batch = log.read_after(StreamId::ZERO, usize::MAX).await.unwrap();
    batch
        .entries
        .iter()
        .map(|entry| (entry.cursor.clone(), entry.json().to_owned()))
        .collect()
}

/// A direct connection to the closed log's file, to damage it as a bad disk would.
async fn raw(path: &Path) -> sqlx::SqliteConnection {
    sqlx::SqliteConnection::connect(&format!("sqlite://{}", path.display()))
        .await
        .unwrap()
}

#[tokio::test]
async fn a_restart_keeps_entries_epoch_and_cursors() {
    let dir = tempfile::tempdir().unwrap();
    let log = SqliteLog::open(config(dir.path())).await.unwrap();
    assert_eq!(log.recovery(), &Recovery::Created);
    let mut cursors = append(&log, 0..20).await;
    cursors.extend(append(&log, 20..25).await);
    let before = contents(&log).await;
    let bounds = log.bounds().await.unwrap();
    log.close().await;
    // Closed: appends are refused, not lost silently.
    assert!(matches!(
        log.append(vec![indicator(99)]).await,
        Err(LogError::Unavailable(_))
    ));
    assert!(log.ping().await.is_err());

    let log = SqliteLog::open(config(dir.path())).await.unwrap();
    assert_eq!(log.recovery(), &Recovery::Resumed);
    assert_eq!(log.bounds().await.unwrap(), bounds);
    assert_eq!(contents(&log).await, before);
    // A cursor from before the restart reads on where it was.
    let after = log.read_after(cursors[9].id(), 100).await.unwrap();
    assert_eq!(after.epoch, bounds.epoch);
    assert_eq!(after.entries.len(), 15);
    assert_eq!(after.entries[0].cursor, cursors[10]);
    // New entries come after every old one.
    let more = append(&log, 25..26).await;
    assert!(more[0].id() > bounds.last);
    assert_eq!(more[0].epoch(), bounds.epoch);
    log.close().await;
}

/// A log dropped without `close` (its last handle gone) still closes its file; what it
/// acknowledged is there at the next start, under the same epoch. (A `kill -9` of a real
/// process is the integration suite's `lifecycle` test.)
#[tokio::test]
async fn a_log_dropped_without_close_closes_its_file() {
    let dir = tempfile::tempdir().unwrap();
    let log = SqliteLog::open(config(dir.path())).await.unwrap();
    let cursors = append(&log, 0..50).await;
    let epoch = cursors[0].epoch().to_owned();
    drop(log);
    // The writer may still be finishing; the file is free once it has.
    let log = reopen(dir.path()).await;
    let kept: Vec<Cursor> = contents(&log).await.into_iter().map(|(c, _)| c).collect();
    assert_eq!(kept, cursors);
    assert_eq!(log.bounds().await.unwrap().epoch, epoch);
}

async fn reopen(dir: &Path) -> Arc<SqliteLog> {
    let deadline = std::time::Instant::now() + Duration::from_secs(10);
    loop {
        match SqliteLog::open(config(dir)).await {
            Ok(log) => return log,
            Err(error) => {
                assert!(std::time::Instant::now() < deadline, "{error}");
                tokio::time::sleep(Duration::from_millis(20)).await;
            }
        }
    }
}

#[tokio::test]
async fn once_keys_and_series_outlive_a_restart() {
    let dir = tempfile::tempdir().unwrap();
    let log = SqliteLog::open(config(dir.path())).await.unwrap();
    let key = [7u8; 32];
    let first = log
        .append_once(vec![(indicator(0), key)], LONG)
        .await
        .unwrap();
    assert!(first[0].is_some());
    let spaced = |n: usize, time: i64| Spaced {
        indicator: indicator(n),
        series: [9u8; 32],
        time,
        spacing: 1_000,
    };
    let outcome = log
        .append_spaced(vec![spaced(1, 10_000)], LONG)
        .await
        .unwrap();
    assert!(matches!(outcome[0], SpacedOutcome::Appended(_)));
    log.close().await;

    let log = SqliteLog::open(config(dir.path())).await.unwrap();
    let again = log
        .append_once(vec![(indicator(2), key), (indicator(3), [8u8; 32])], LONG)
        .await
        .unwrap();
    assert!(again[0].is_none() && again[1].is_some());
    let outcome = log
        .append_spaced(vec![spaced(4, 10_500), spaced(5, 11_000)], LONG)
        .await
        .unwrap();
    assert_eq!(outcome[0], SpacedOutcome::Refused { newest: 10_000 });
    assert!(matches!(outcome[1], SpacedOutcome::Appended(_)));
    log.close().await;
}

/// Entries that expired while the log was closed are trimmed when it opens, and reported; a
/// smaller byte budget at the next start trims the oldest, and says so.
#[tokio::test]
async fn retention_holds_across_a_restart() {
    let dir = tempfile::tempdir().unwrap();
    let short = SqliteLogConfig {
        retention: Duration::from_millis(400),
        ..config(dir.path())
    };
    let log = SqliteLog::open(short.clone()).await.unwrap();
    let old = append(&log, 0..3).await;
    log.close().await;
    tokio::time::sleep(Duration::from_millis(600)).await;
    let log = SqliteLog::open(short).await.unwrap();
    let bounds = log.bounds().await.unwrap();
    assert_eq!((bounds.len, bounds.last), (0, old[2].id()));
    assert_eq!(bounds.trimmed_through, old[2].id());
    assert_eq!(bounds.epoch, old[0].epoch());
    let fresh = append(&log, 3..13).await;
    assert!(fresh[0].id() > old[2].id());
    log.close().await;

    // The expired rows are gone from the file too, not only from the window.
    let mut connection = raw(&dir.path().join(FILE_NAME)).await;
    let rows: i64 = sqlx::query_scalar("SELECT count(*) FROM entries")
        .fetch_one(&mut connection)
        .await
        .unwrap();
    connection.close().await.unwrap();
    assert_eq!(rows, 10);

    let size = |n: usize| indicator(n).to_json().to_string().len();
    let small = SqliteLogConfig {
        max_bytes: (8..13).map(size).sum(),
        ..config(dir.path())
    };
    let log = SqliteLog::open(small).await.unwrap();
    let bounds = log.bounds().await.unwrap();
    assert_eq!((bounds.len, bounds.trimmed_through), (5, fresh[4].id()));
    let kept: Vec<Cursor> = contents(&log).await.into_iter().map(|(c, _)| c).collect();
    assert_eq!(kept, fresh[5..]);
    log.close().await;
}

/// A row whose checksum fails (a bad sector, a torn write the file system let through) cuts
/// the log there: it and everything after it are deleted, what came before is kept, and the
/// log goes on under a new epoch so every client is told `reset`.
#[tokio::test]
async fn a_corrupt_row_cuts_the_log_there_under_a_new_epoch() {
    let dir = tempfile::tempdir().unwrap();
    let log = SqliteLog::open(config(dir.path())).await.unwrap();
    let cursors = append(&log, 0..10).await;
    let before = contents(&log).await;
    log.close().await;

    let damaged = cursors[6].id();
    let mut connection = raw(&dir.path().join(FILE_NAME)).await;
    sqlx::query(
        "UPDATE entries SET json = replace(json, '198.51', '198.52') WHERE ms = ? AND seq = ?",
    )
    .bind(damaged.ms as i64)
    .bind(damaged.seq as i64)
    .execute(&mut connection)
    .await
    .unwrap();
    connection.close().await.unwrap();

    let log = SqliteLog::open(config(dir.path())).await.unwrap();
    assert_eq!(
        log.recovery(),
        &Recovery::CutCorruptTail {
            from: damaged,
            cut: 4
        }
    );
    let bounds = log.bounds().await.unwrap();
    assert_ne!(bounds.epoch, cursors[0].epoch());
    let kept = contents(&log).await;
    assert_eq!(kept.len(), 6);
    for ((cursor, json), (old_cursor, old_json)) in kept.iter().zip(&before) {
        assert_eq!(cursor.id(), old_cursor.id());
        assert_eq!(cursor.epoch(), bounds.epoch);
        assert_eq!(json, old_json);
    }
    // New entries never reuse an id a client may hold.
    let more = append(&log, 10..11).await;
    assert!(more[0].id() > cursors[9].id());
    log.close().await;

    // The cut is for good: the next start resumes the new epoch.
    let log = SqliteLog::open(config(dir.path())).await.unwrap();
    assert_eq!(log.recovery(), &Recovery::Resumed);
    assert_eq!(log.bounds().await.unwrap().epoch, bounds.epoch);
    assert_eq!(contents(&log).await.len(), 7);
    log.close().await;
}

/// A file SQLite cannot read at all is moved aside (kept for whoever wants to look) and a new
/// log starts, under a new epoch.
#[tokio::test]
async fn an_unreadable_file_is_moved_aside_and_a_new_log_starts() {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join(FILE_NAME);
    let log = SqliteLog::open(config(dir.path())).await.unwrap();
    let old = append(&log, 0..500).await;
    log.close().await;

    // Its header overwritten with garbage.
    let mut bytes = std::fs::read(&path).unwrap();
    bytes[..100].fill(0xA5);
    std::fs::write(&path, &bytes).unwrap();

    let log = SqliteLog::open(config(dir.path())).await.unwrap();
    let Recovery::ReplacedCorruptFile { moved_to } = log.recovery().clone() else {
        panic!("not recovered as a corrupt file: {:?}", log.recovery());
    };
    assert_eq!(std::fs::read(&moved_to).unwrap(), bytes);
    let bounds = log.bounds().await.unwrap();
    assert_ne!(bounds.epoch, old[0].epoch());
    assert_eq!(bounds.len, 0);
    append(&log, 0..1).await;
    log.close().await;
    assert_eq!(corrupt_copies(dir.path()).len(), 1);
}

fn corrupt_copies(dir: &Path) -> Vec<PathBuf> {
    std::fs::read_dir(dir)
        .unwrap()
        .map(|entry| entry.unwrap().path())
        .filter(|path| path.to_string_lossy().contains(".corrupt-"))
        .collect()
}

/// With `--log-fsync off`, a machine crash (a different boot, the file not closed cleanly) may
/// have lost acknowledged commits: the log goes on under a new epoch. A process crash on the
/// same boot loses nothing and keeps it.
#[tokio::test]
async fn an_unsynced_log_after_a_machine_crash_starts_a_new_epoch() {
    let dir = tempfile::tempdir().unwrap();
    let unsynced = SqliteLogConfig {
        fsync: Fsync::Off,
        ..config(dir.path())
    };
    let log = SqliteLog::open(unsynced.clone()).await.unwrap();
    let cursors = append(&log, 0..5).await;
    log.close().await;
    let mark_crashed = |boot: &'static str| {
        let path = dir.path().join(FILE_NAME);
        async move {
            let mut connection = raw(&path).await;
            sqlx::query("UPDATE meta SET value = '0' WHERE key = 'clean'")
                .execute(&mut connection)
                .await
                .unwrap();
            if !boot.is_empty() {
                sqlx::query("UPDATE meta SET value = ? WHERE key = 'boot'")
                    .bind(boot)
                    .execute(&mut connection)
                    .await
                    .unwrap();
            }
            connection.close().await.unwrap();
        }
    };

    // As the file is after a process crash: not closed cleanly, on this boot.
    mark_crashed("").await;
    let log = SqliteLog::open(unsynced.clone()).await.unwrap();
    assert_eq!(log.recovery(), &Recovery::Resumed);
    assert_eq!(log.bounds().await.unwrap().epoch, cursors[0].epoch());
    log.close().await;

    // As the file is after a power cut: not closed cleanly, written on another boot.
    mark_crashed("an-earlier-boot").await;
    let log = SqliteLog::open(unsynced).await.unwrap();
    assert_eq!(log.recovery(), &Recovery::NewEpochAfterUnsyncedCrash);
    let bounds = log.bounds().await.unwrap();
    assert_ne!(bounds.epoch, cursors[0].epoch());
    assert_eq!(bounds.len, 5);
    log.close().await;
}

#[tokio::test]
async fn one_process_owns_the_file() {
    let dir = tempfile::tempdir().unwrap();
    let log = SqliteLog::open(config(dir.path())).await.unwrap();
    append(&log, 0..1).await;
    let Err(error) = SqliteLog::open(config(dir.path())).await else {
        panic!("a second log opened the same file");
    };
    assert!(
        error.to_string().contains("in use by another process"),
        "{error}"
    );
    log.close().await;
    SqliteLog::open(config(dir.path()))
        .await
        .unwrap()
        .close()
        .await;
}

/// A future format is refused with what to do, not read as if it were this one.
#[tokio::test]
async fn a_newer_format_is_refused() {
    let dir = tempfile::tempdir().unwrap();
    SqliteLog::open(config(dir.path()))
        .await
        .unwrap()
        .close()
        .await;
    let mut connection = raw(&dir.path().join(FILE_NAME)).await;
    sqlx::query("UPDATE meta SET value = '99' WHERE key = 'format'")
        .execute(&mut connection)
        .await
        .unwrap();
    connection.close().await.unwrap();
    let Err(error) = SqliteLog::open(config(dir.path())).await else {
        panic!("a newer format was opened");
    };
    assert!(error.to_string().contains("format 99"), "{error}");
}

/// Concurrent appenders are committed in batches, each caller's entries in its order, every
/// id unique and increasing in the log.
#[tokio::test]
async fn concurrent_appends_are_grouped_and_ordered() {
    let dir = tempfile::tempdir().unwrap();
    let log = SqliteLog::open(config(dir.path())).await.unwrap();
    let tasks: Vec<_> = (0..8)
        .map(|t| {
            let log = Arc::clone(&log);
            tokio::spawn(async move {
                let mut cursors = Vec::new();
                for k in 0..25 {
                    cursors.extend(append(&log, t * 1000 + k..t * 1000 + k + 1).await);
                }
                cursors
            })
        })
        .collect();
    let mut all = Vec::new();
    for task in tasks {
        let cursors = task.await.unwrap();
        assert!(cursors.windows(2).all(|pair| pair[0].id() < pair[1].id()));
        all.extend(cursors);
    }
    let kept: Vec<Cursor> = contents(&log).await.into_iter().map(|(c, _)| c).collect();
    assert_eq!(kept.len(), 200);
    assert!(kept.windows(2).all(|pair| pair[0].id() < pair[1].id()));
    all.sort_by_key(Cursor::id);
    assert_eq!(all, kept);
    log.close().await;
}
