//! The [`Log`] contract, on every backend: each body runs against the SQLite log in a temporary
//! directory, the in-process log, and a Redis log on a private `redis-server`
//! (`testkit::RedisServer`), so they cannot drift apart. Test names read `body::sqlite`,
//! `body::memory` and `body::redis`.
//!
//! Where the backends' bounds differ (the embedded logs are bounded by age, by a number of
//! entries and by bytes, exactly; the Redis log by age only, trimmed approximately), a body
//! asserts what the trait promises of all: whatever a backend removed is reported through
//! `trimmed_through`, and what it kept is read back whole.

use std::sync::Arc;
use std::time::{Duration, Instant};

use domain::{Cursor, Indicator, Provenance, StreamId};
use sluice_log::memory::MemoryLog;
use sluice_log::redis::{RedisLog, RedisLogConfig};
use sluice_log::sqlite::{SqliteLog, SqliteLogConfig};
use sluice_log::{Log, LogError, ReadBatch, Spaced, SpacedOutcome};
use testkit::RedisServer;

testkit::on_each_log_backend!(
    crate::Backend::Sqlite,
    crate::Backend::Memory,
    crate::Backend::Redis;
    appends_read_back_in_order_with_increasing_cursors,
    reads_after_a_position_return_only_later_entries,
    now_and_earliest_are_the_bounds,
    wait_after_returns_what_arrives_or_nothing_after_the_block,
    retention_by_age_removes_old_entries_and_says_so,
    a_bound_on_entries_trims_the_oldest_and_says_so,
    a_bound_on_bytes_trims_the_oldest_and_says_so,
    the_epoch_names_one_incarnation_of_the_storage,
    append_once_appends_each_key_once_while_remembered,
    append_spaced_keeps_a_series_a_spacing_apart,
);

/// The Redis log's key prefix in these tests: its stream is `contract:log`.
const KEY_PREFIX: &str = "contract:";
/// Long enough for any test here not to see a remembered key or series expire.
const LONG: Duration = Duration::from_secs(3600);
/// How long a Redis log may take to answer again after its server restarted.
const RECONNECT: Duration = Duration::from_secs(10);

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Backend {
    Sqlite,
    Memory,
    Redis,
}

impl Backend {
    /// Whether the backend trims exactly at its bounds (Redis trims whole stream nodes).
    fn trims_exactly(self) -> bool {
        self != Backend::Redis
    }
}

/// How the log under test is built.
#[derive(Debug, Clone, Copy)]
struct Settings {
    retention: Duration,
    /// The embedded logs' bound on entries. The Redis log has none:
    /// [`TestLog::apply_max_entries`] trims its stream to it by hand.
    max_entries: usize,
    /// The embedded logs' bound on bytes of stored JSON.
    max_bytes: usize,
}

impl Default for Settings {
    fn default() -> Self {
        Settings {
            retention: sluice_log::DEFAULT_RETENTION,
            max_entries: 100_000,
            max_bytes: sluice_log::memory::DEFAULT_MAX_BYTES,
        }
    }
}

/// A log on one backend, and the Redis server or the directory it needs.
struct TestLog {
    log: Arc<dyn Log>,
    backend: Backend,
    settings: Settings,
    redis: Option<RedisServer>,
    dir: tempfile::TempDir,
    /// The SQLite log, to close it before its file is removed.
    sqlite: Option<Arc<SqliteLog>>,
}

impl TestLog {
    async fn start(backend: Backend, settings: Settings) -> TestLog {
        let redis = match backend {
            Backend::Sqlite | Backend::Memory => None,
            Backend::Redis => Some(RedisServer::start().expect("cannot start redis-server")),
        };
        let dir = tempfile::tempdir().unwrap();
        let (log, sqlite) = build(backend, settings, redis.as_ref(), dir.path()).await;
        assert_eq!(
            log.backend_name(),
            match backend {
                Backend::Sqlite => "sqlite",
                Backend::Memory => "memory",
                Backend::Redis => "redis",
            }
        );
        TestLog {
            log,
            backend,
            settings,
            redis,
            dir,
            sqlite,
        }
    }

    /// Removes all but the newest `settings.max_entries` entries. The memory log's own bound
    /// has done so already; on Redis, bounded by age only, `XTRIM MAXLEN` does what an
    /// operator or a shorter retention would, behind the log's back.
    async fn apply_max_entries(&self) {
        let Some(redis) = &self.redis else {
            return;
        };
        let mut connection = redis::Client::open(redis.url())
            .unwrap()
            .get_multiplexed_async_connection()
            .await
            .unwrap();
        let _: i64 = redis::cmd("XTRIM")
            .arg(format!("{KEY_PREFIX}log"))
            .arg("MAXLEN")
            .arg(self.settings.max_entries)
            .query_async(&mut connection)
            .await
            .unwrap();
    }

    /// Loses the log's storage. In memory, the process restarted: a new log. On SQLite, the
    /// file is deleted between two runs. On Redis, the server crashes (meanwhile the log
    /// reports itself unavailable) and comes back empty, and the same log reconnects to it.
    async fn lose_storage(&mut self) {
        match self.backend {
            Backend::Memory => {
                self.log = build(self.backend, self.settings, None, self.dir.path())
                    .await
                    .0;
            }
            Backend::Sqlite => {
                self.sqlite.take().unwrap().close().await;
                for entry in std::fs::read_dir(self.dir.path()).unwrap() {
                    std::fs::remove_file(entry.unwrap().path()).unwrap();
                }
                (self.log, self.sqlite) =
                    build(self.backend, self.settings, None, self.dir.path()).await;
            }
            Backend::Redis => {
                let redis = self.redis.as_mut().unwrap();
                redis.kill();
                let error = self.log.ping().await.unwrap_err();
                assert!(matches!(error, LogError::Unavailable(_)), "{error:?}");
                redis.restart().unwrap();
                let deadline = Instant::now() + RECONNECT;
                while let Err(error) = self.log.ping().await {
                    assert!(Instant::now() < deadline, "no reconnection: {error}");
                    tokio::time::sleep(Duration::from_millis(50)).await;
                }
            }
        }
    }
}

async fn build(
    backend: Backend,
    settings: Settings,
    redis: Option<&RedisServer>,
    dir: &std::path::Path,
) -> (Arc<dyn Log>, Option<Arc<SqliteLog>>) {
    match backend {
        Backend::Sqlite => {
            let log = SqliteLog::open(SqliteLogConfig {
                path: dir.join(sluice_log::sqlite::FILE_NAME),
                retention: settings.retention,
                max_entries: settings.max_entries,
                max_bytes: settings.max_bytes,
                fsync: Default::default(),
            })
            .await
            .unwrap();
            (log.clone(), Some(log))
        }
        Backend::Memory => (
            MemoryLog::with_max_bytes(settings.retention, settings.max_entries, settings.max_bytes),
            None,
        ),
        Backend::Redis => (
            RedisLog::connect(RedisLogConfig {
                url: redis.expect("a Redis log needs its server").url(),
                key_prefix: KEY_PREFIX.into(),
                retention: settings.retention,
            })
            .await
            .unwrap(),
            None,
        ),
    }
}

/// The n-th test indicator: a routable address, a fixed report time (so it reads back equal).
fn indicator(n: usize) -> Indicator {
    let value = serde_json::json!({
        "indicator": format!("185.{}.{}.{}", 100 + n / 65536 % 100, n / 256 % 256, n % 256),
        "provider": "contract",
        "tags": ["scanner"],
        "reporttime": "2024-01-01T00:00:00Z",
    });
    Indicator::from_json(value, Provenance::Trusted, chrono::Utc::now()).unwrap()
}

/// Appends indicators `range`, one call, and returns their cursors.
async fn append(log: &dyn Log, range: std::ops::Range<usize>) -> Vec<Cursor> {
    let cursors = log
        .append(range.clone().map(indicator).collect())
        .await
        .unwrap();
    assert_eq!(cursors.len(), range.len());
    cursors
}

fn ids(cursors: &[Cursor]) -> Vec<StreamId> {
    cursors.iter().map(Cursor::id).collect()
}

fn batch_ids(batch: &ReadBatch) -> Vec<StreamId> {
    batch.entries.iter().map(|entry| entry.id()).collect()
}

fn assert_increasing(ids: &[StreamId]) {
    assert!(
        ids.windows(2).all(|pair| pair[0] < pair[1]),
        "not strictly increasing: {ids:?}"
    );
}

async fn appends_read_back_in_order_with_increasing_cursors(backend: Backend) {
    let test = TestLog::start(backend, Settings::default()).await;
    let log = &*test.log;
    log.ping().await.unwrap();

    // An empty log is at zero, with an epoch already.
    let empty = log.bounds().await.unwrap();
    assert_eq!(
        (empty.last, empty.trimmed_through, empty.len),
        (StreamId::ZERO, StreamId::ZERO, 0)
    );
    domain::cursor::validate_epoch(&empty.epoch).unwrap();
    assert!(log.append(Vec::new()).await.unwrap().is_empty());
    assert_eq!(log.bounds().await.unwrap(), empty);

    // Two appends: every cursor greater than all earlier ones, all in the log's epoch.
    let mut cursors = append(log, 0..20).await;
    cursors.extend(append(log, 20..25).await);
    assert_increasing(&ids(&cursors));
    assert!(cursors.iter().all(|cursor| cursor.epoch() == empty.epoch));

    let batch = log.read_after(StreamId::ZERO, 100).await.unwrap();
    assert_eq!(batch.epoch, empty.epoch);
    assert_eq!(batch.trimmed_through, StreamId::ZERO);
    assert_eq!(batch.scanned, 25);
    assert_eq!(batch.read_through, Some(cursors[24].id()));
    assert!(batch.clock_ms >= cursors[24].id().ms);
    for (n, (entry, cursor)) in batch.entries.iter().zip(&cursors).enumerate() {
        assert_eq!(&entry.cursor, cursor);
        assert_eq!(entry.indicator, indicator(n));
        assert_eq!(entry.json(), indicator(n).to_json().to_string());
    }
    assert_eq!(batch.entries.len(), 25);

    let bounds = log.bounds().await.unwrap();
    assert_eq!(bounds.epoch, empty.epoch);
    assert_eq!(bounds.last, cursors[24].id());
    assert_eq!(bounds.trimmed_through, StreamId::ZERO);
    assert_eq!(bounds.len, 25);

    // What is appended after a read has ids at or after the read's clock.
    let later = append(log, 25..26).await;
    assert!(later[0].id().ms >= batch.clock_ms);
    assert!(later[0].id() > bounds.last);
}

async fn reads_after_a_position_return_only_later_entries(backend: Backend) {
    let test = TestLog::start(backend, Settings::default()).await;
    let log = &*test.log;
    let cursors = append(log, 0..10).await;
    let all = ids(&cursors);
    for k in [0, 4, 8, 9] {
        let batch = log.read_after(all[k], 100).await.unwrap();
        assert_eq!(batch_ids(&batch), all[k + 1..], "after entry {k}");
        assert_eq!(batch.trimmed_through, StreamId::ZERO);
    }

    // At most `limit`, oldest first: paging by `read_through` reads each entry once.
    let (mut position, mut paged, mut sizes) = (StreamId::ZERO, Vec::new(), Vec::new());
    loop {
        let batch = log.read_after(position, 3).await.unwrap();
        assert_eq!(batch.scanned, batch.entries.len());
        sizes.push(batch.entries.len());
        paged.extend(batch_ids(&batch));
        match batch.read_through {
            Some(through) => position = through,
            None => break,
        }
    }
    assert_eq!(sizes, [3, 3, 3, 1, 0]);
    assert_eq!(paged, all);

    // Nothing after the newest entry, nor after a position past it.
    let ahead = StreamId::new(all[9].ms + 60_000, 0);
    for position in [all[9], ahead] {
        let batch = log.read_after(position, 100).await.unwrap();
        assert!(batch.entries.is_empty(), "after {position}");
        assert_eq!((batch.read_through, batch.scanned), (None, 0));
    }
}

/// A subscriber's `now` is the log's `last`, and its `earliest` the log's `trimmed_through`
/// (the gateway positions them so): reading after them gives what arrives from now on, and
/// everything retained.
async fn now_and_earliest_are_the_bounds(backend: Backend) {
    let test = TestLog::start(backend, Settings::default()).await;
    let log = &*test.log;
    let before = append(log, 0..5).await;
    let now = log.bounds().await.unwrap().last;
    assert_eq!(now, before[4].id());
    assert!(log.read_after(now, 100).await.unwrap().entries.is_empty());
    let after = append(log, 5..8).await;
    assert_eq!(
        batch_ids(&log.read_after(now, 100).await.unwrap()),
        ids(&after)
    );

    let earliest = log.bounds().await.unwrap().trimmed_through;
    let everything: Vec<StreamId> = before.iter().chain(&after).map(Cursor::id).collect();
    assert_eq!(
        batch_ids(&log.read_after(earliest, 100).await.unwrap()),
        everything
    );
}

async fn wait_after_returns_what_arrives_or_nothing_after_the_block(backend: Backend) {
    let test = TestLog::start(backend, Settings::default()).await;
    let log = Arc::clone(&test.log);
    let first = append(&*log, 0..2).await;

    // Something is there already: no waiting.
    let started = Instant::now();
    let batch = log
        .wait_after(StreamId::ZERO, 10, Duration::from_secs(10))
        .await
        .unwrap();
    assert_eq!(batch_ids(&batch), ids(&first));
    assert!(started.elapsed() < Duration::from_secs(5));

    // Nothing arrives: an empty batch once the block has passed.
    let block = Duration::from_millis(300);
    let started = Instant::now();
    let batch = log.wait_after(first[1].id(), 10, block).await.unwrap();
    assert!(batch.entries.is_empty());
    assert!(started.elapsed() >= block - Duration::from_millis(20));

    // Something arrives while waiting: it is returned, without waiting out the block.
    let appender = {
        let log = Arc::clone(&log);
        tokio::spawn(async move {
            tokio::time::sleep(Duration::from_millis(200)).await;
            append(&*log, 2..3).await
        })
    };
    let started = Instant::now();
    let batch = log
        .wait_after(first[1].id(), 10, Duration::from_secs(10))
        .await
        .unwrap();
    let appended = appender.await.unwrap();
    assert_eq!(batch_ids(&batch), ids(&appended));
    assert!(started.elapsed() < Duration::from_secs(5));
}

/// Entries older than the retention are removed and reported: `trimmed_through` says up to
/// where, and every entry after it is still read.
async fn retention_by_age_removes_old_entries_and_says_so(backend: Backend) {
    let retention = Duration::from_millis(500);
    let settings = Settings {
        retention,
        ..Settings::default()
    };
    let test = TestLog::start(backend, settings).await;
    let log = &*test.log;
    let old = append(log, 0..3).await;
    tokio::time::sleep(retention + Duration::from_millis(300)).await;

    // All of it expired: gone, and the newest removed id is reported.
    let bounds = log.bounds().await.unwrap();
    assert_eq!(bounds.len, 0);
    assert_eq!(bounds.last, old[2].id());
    assert_eq!(bounds.trimmed_through, old[2].id());
    let batch = log.read_after(StreamId::ZERO, 100).await.unwrap();
    assert!(batch.entries.is_empty());
    // A reader at the start is told it lost history.
    assert_eq!(batch.trimmed_through, old[2].id());

    // A fresh entry after that is read, past the reported boundary.
    let fresh = append(log, 3..4).await;
    let batch = log.read_after(StreamId::ZERO, 100).await.unwrap();
    assert_eq!(batch_ids(&batch), ids(&fresh));
    assert!(old[2].id() <= batch.trimmed_through && batch.trimmed_through < fresh[0].id());

    // One entry expired and one fresh: a backend may trim the expired one or not yet (Redis
    // trims whole nodes of its stream), but what it kept and what it reports removed add up.
    tokio::time::sleep(retention + Duration::from_millis(300)).await;
    let newest = append(log, 4..5).await;
    let batch = log.read_after(StreamId::ZERO, 100).await.unwrap();
    let appended = [fresh[0].id(), newest[0].id()];
    let kept: Vec<StreamId> = appended
        .into_iter()
        .filter(|id| *id > batch.trimmed_through)
        .collect();
    assert_eq!(batch_ids(&batch), kept);
    assert!(batch.trimmed_through < newest[0].id());
    if backend.trims_exactly() {
        assert_eq!(batch.trimmed_through, fresh[0].id());
    }
}

/// Twelve entries, a bound of five: the oldest seven are gone, and a reader positioned before
/// the boundary is told so, while one after it is not.
async fn a_bound_on_entries_trims_the_oldest_and_says_so(backend: Backend) {
    let settings = Settings {
        max_entries: 5,
        ..Settings::default()
    };
    let test = TestLog::start(backend, settings).await;
    let log = &*test.log;
    let all = ids(&append(log, 0..12).await);
    test.apply_max_entries().await;

    let bounds = log.bounds().await.unwrap();
    assert_eq!(bounds.len, 5);
    assert_eq!(bounds.last, all[11]);
    // The embedded logs report the last id they removed; Redis where retention stopped, which
    // is no earlier and before the first retained entry.
    let trimmed = bounds.trimmed_through;
    assert!(all[6] <= trimmed && trimmed < all[7], "{trimmed}");
    if backend.trims_exactly() {
        assert_eq!(trimmed, all[6]);
    }

    // From a position whose next entries are gone: the retained entries, and
    // `trimmed_through` after the position, which is how a reader knows it lost history.
    for position in [StreamId::ZERO, all[0], all[5]] {
        let batch = log.read_after(position, 100).await.unwrap();
        assert_eq!(batch_ids(&batch), all[7..], "after {position}");
        assert_eq!(batch.trimmed_through, trimmed);
        assert!(batch.trimmed_through > position);
    }
    // From the reported boundary, or anything retained: nothing lost.
    for (position, rest) in [(trimmed, &all[7..]), (all[8], &all[9..])] {
        let batch = log.read_after(position, 100).await.unwrap();
        assert_eq!(batch_ids(&batch), rest, "after {position}");
        assert!(batch.trimmed_through <= position);
    }

    // The bound keeps holding as more arrives.
    let more = ids(&append(log, 12..15).await);
    test.apply_max_entries().await;
    let batch = log.read_after(StreamId::ZERO, 100).await.unwrap();
    let newest: Vec<StreamId> = all[10..].iter().chain(&more).copied().collect();
    assert_eq!(batch_ids(&batch), newest);
    assert!(all[9] <= batch.trimmed_through && batch.trimmed_through < all[10]);
}

/// The embedded logs' bound on bytes (Redis has none: its memory is Redis's `maxmemory`, and
/// the body only checks that it keeps everything under it). Twelve entries under a bound that
/// holds the newest five's JSON: the oldest seven are trimmed and reported exactly as the bound
/// on entries reports them, whichever bound was hit.
async fn a_bound_on_bytes_trims_the_oldest_and_says_so(backend: Backend) {
    let size = |n: usize| indicator(n).to_json().to_string().len();
    let max_bytes: usize = (7..12).map(size).sum();
    let settings = Settings {
        max_bytes,
        ..Settings::default()
    };
    let test = TestLog::start(backend, settings).await;
    let log = &test.log;
    let all = ids(&append(&**log, 0..12).await);
    if !backend.trims_exactly() {
        let batch = log.read_after(StreamId::ZERO, 100).await.unwrap();
        assert_eq!(batch_ids(&batch), all);
        return;
    }

    let bounds = log.bounds().await.unwrap();
    assert_eq!(bounds.len, 5);
    assert_eq!(bounds.last, all[11]);
    assert_eq!(bounds.trimmed_through, all[6]);
    for position in [StreamId::ZERO, all[0], all[5]] {
        let batch = log.read_after(position, 100).await.unwrap();
        assert_eq!(batch_ids(&batch), all[7..], "after {position}");
        assert_eq!(batch.trimmed_through, all[6]);
    }

    // One at a time, the bound keeps holding: what is kept is within it, the newest entries
    // are kept, and what is not kept is reported trimmed (no silent gap).
    let mut all = all;
    for n in 12..15 {
        all.extend(ids(&append(&**log, n..n + 1).await));
        let batch = log.read_after(StreamId::ZERO, 100).await.unwrap();
        let kept: usize = batch.entries.iter().map(|entry| entry.json().len()).sum();
        assert!(kept <= max_bytes, "{kept} > {max_bytes}");
        let expected: Vec<StreamId> = all
            .iter()
            .copied()
            .filter(|id| *id > batch.trimmed_through)
            .collect();
        assert_eq!(batch_ids(&batch), expected, "after entry {n}");
        assert!(expected.len() >= 4 && expected.last() == all.last());
    }

    // Whichever bound is the tighter one trims: here the count.
    let settings = Settings {
        max_entries: 3,
        max_bytes,
        ..Settings::default()
    };
    let test = TestLog::start(backend, settings).await;
    let log = &test.log;
    let all = ids(&append(&**log, 0..12).await);
    let bounds = log.bounds().await.unwrap();
    assert_eq!((bounds.len, bounds.trimmed_through), (3, all[8]));
}

/// An epoch names one incarnation of the log's storage: every cursor and read carries it, and
/// storage that was lost comes back under another, so a cursor from before is recognisable.
async fn the_epoch_names_one_incarnation_of_the_storage(backend: Backend) {
    let mut test = TestLog::start(backend, Settings::default()).await;
    let epoch = test.log.bounds().await.unwrap().epoch;
    let before = append(&*test.log, 0..3).await;
    assert!(before.iter().all(|cursor| cursor.epoch() == epoch));
    let batch = test.log.read_after(StreamId::ZERO, 100).await.unwrap();
    assert_eq!(batch.epoch, epoch);
    assert_eq!(test.log.bounds().await.unwrap().epoch, epoch);

    test.lose_storage().await;
    let bounds = test.log.bounds().await.unwrap();
    assert_ne!(bounds.epoch, epoch);
    domain::cursor::validate_epoch(&bounds.epoch).unwrap();
    assert_eq!((bounds.last, bounds.len), (StreamId::ZERO, 0));
    // A reader resuming from a cursor of the lost history reads under the new epoch: that is
    // how it knows.
    let batch = test.log.read_after(before[2].id(), 100).await.unwrap();
    assert_eq!(batch.epoch, bounds.epoch);
    assert!(batch.entries.is_empty());
    let after = append(&*test.log, 3..4).await;
    assert_eq!(after[0].epoch(), bounds.epoch);
    assert_eq!(test.log.bounds().await.unwrap().epoch, bounds.epoch);
}

async fn append_once_appends_each_key_once_while_remembered(backend: Backend) {
    let test = TestLog::start(backend, Settings::default()).await;
    let log = &*test.log;
    let key = |k: u8| [k; 32];
    // A key twice in one call: the first is appended.
    let first = log
        .append_once(
            vec![
                (indicator(0), key(1)),
                (indicator(1), key(2)),
                (indicator(2), key(1)),
            ],
            LONG,
        )
        .await
        .unwrap();
    assert!(first[0].is_some() && first[1].is_some() && first[2].is_none());
    assert!(log.append_once(Vec::new(), LONG).await.unwrap().is_empty());
    // A key already appended by an earlier call: not again.
    let again = log
        .append_once(vec![(indicator(3), key(1)), (indicator(4), key(3))], LONG)
        .await
        .unwrap();
    assert!(again[0].is_none() && again[1].is_some());

    let appended: Vec<Cursor> = first.into_iter().chain(again).flatten().collect();
    assert_increasing(&ids(&appended));
    let batch = log.read_after(StreamId::ZERO, 100).await.unwrap();
    assert_eq!(batch_ids(&batch), ids(&appended));
    let indicators: Vec<&Indicator> = batch.entries.iter().map(|e| &e.indicator).collect();
    assert_eq!(indicators, [&indicator(0), &indicator(1), &indicator(4)]);

    // Once forgotten, the key is appended again.
    let remember = Duration::from_millis(200);
    let once = |n| log.append_once(vec![(indicator(n), key(9))], remember);
    assert!(once(5).await.unwrap()[0].is_some());
    assert!(once(6).await.unwrap()[0].is_none());
    tokio::time::sleep(remember * 2).await;
    assert!(once(7).await.unwrap()[0].is_some());
}

async fn append_spaced_keeps_a_series_a_spacing_apart(backend: Backend) {
    let test = TestLog::start(backend, Settings::default()).await;
    let log = &*test.log;
    let item = |n: usize, series: u8, time: i64| Spaced {
        indicator: indicator(n),
        series: [series; 32],
        time,
        spacing: 1_000,
    };
    let appended = |outcome: &SpacedOutcome| match outcome {
        SpacedOutcome::Appended(cursor) => Some(cursor.clone()),
        SpacedOutcome::Refused { .. } => None,
    };

    // Within one call each item sees the ones before it; series are independent.
    let first = log
        .append_spaced(
            vec![item(0, 1, 10_000), item(1, 1, 10_500), item(2, 2, 10_500)],
            LONG,
        )
        .await
        .unwrap();
    assert!(appended(&first[0]).is_some());
    assert_eq!(first[1], SpacedOutcome::Refused { newest: 10_000 });
    assert!(appended(&first[2]).is_some());
    // A full spacing later gets in; anything older than the newest does not.
    let second = log
        .append_spaced(vec![item(3, 1, 11_000), item(4, 1, 10_900)], LONG)
        .await
        .unwrap();
    assert!(appended(&second[0]).is_some());
    assert_eq!(second[1], SpacedOutcome::Refused { newest: 11_000 });
    assert!(log
        .append_spaced(Vec::new(), LONG)
        .await
        .unwrap()
        .is_empty());

    let cursors: Vec<Cursor> = first.iter().chain(&second).filter_map(appended).collect();
    assert_increasing(&ids(&cursors));
    let batch = log.read_after(StreamId::ZERO, 100).await.unwrap();
    assert_eq!(batch_ids(&batch), ids(&cursors));
    let indicators: Vec<&Indicator> = batch.entries.iter().map(|e| &e.indicator).collect();
    assert_eq!(indicators, [&indicator(0), &indicator(2), &indicator(3)]);

    // Once the series is forgotten, any time gets in.
    let remember = Duration::from_millis(200);
    let spaced = |n, time| log.append_spaced(vec![item(n, 3, time)], remember);
    assert!(appended(&spaced(5, 5_000).await.unwrap()[0]).is_some());
    assert_eq!(
        spaced(6, 5_000).await.unwrap(),
        [SpacedOutcome::Refused { newest: 5_000 }]
    );
    tokio::time::sleep(remember * 2).await;
    assert!(appended(&spaced(7, 1).await.unwrap()[0]).is_some());
}
