//! A Redis that comes back with less than it had acknowledged (an older snapshot after a crash,
//! a lagging replica promoted) keeps its epoch key: the log must notice from the entries and
//! start a new epoch, so clients are told `reset` instead of missing entries silently.

use std::time::{Duration, Instant};

use domain::{Indicator, Provenance, StreamId};
use sluice_log::redis::{RedisLog, RedisLogConfig};
use sluice_log::Log;
use testkit::RedisServer;

fn indicators(from: usize, count: usize) -> Vec<Indicator> {
    (from..from + count)
        .map(|n| {
            let value = serde_json::json!({
                "indicator": format!("185.220.{}.{}", 100 + n / 250, 1 + n % 250),
                "provider": "loss-test",
            });
            Indicator::from_json(value, Provenance::Trusted, chrono::Utc::now()).unwrap()
        })
        .collect()
}

async fn connect(redis: &RedisServer) -> std::sync::Arc<RedisLog> {
    RedisLog::connect(RedisLogConfig {
        url: redis.url(),
        key_prefix: "loss:".into(),
        retention: Duration::from_secs(3600),
    })
    .await
    .unwrap()
}

/// Reads everything, as a node's hub does, retrying while the server restarts.
async fn read_all(log: &RedisLog) -> sluice_log::ReadBatch {
    let deadline = Instant::now() + Duration::from_secs(10);
    loop {
        match log.read_after(StreamId::ZERO, 1000).await {
            Ok(batch) => return batch,
            Err(error) if Instant::now() < deadline => {
                let _ = error;
                tokio::time::sleep(Duration::from_millis(100)).await;
            }
            Err(error) => panic!("the log did not come back: {error}"),
        }
    }
}

async fn save(redis: &RedisServer) {
    let client = redis::Client::open(redis.url()).unwrap();
    let mut conn = client.get_multiplexed_async_connection().await.unwrap();
    redis::cmd("SAVE")
        .query_async::<()>(&mut conn)
        .await
        .unwrap();
}

/// Restarted from a snapshot older than what the node read: a new epoch, even though appends
/// after the restart already moved the stream's end past what was lost.
#[tokio::test]
async fn a_restart_from_an_older_snapshot_starts_a_new_epoch() {
    let mut redis = RedisServer::start().unwrap();
    let log = connect(&redis).await;
    log.append(indicators(0, 10)).await.unwrap();
    let before = read_all(&log).await;
    save(&redis).await;
    log.append(indicators(10, 5)).await.unwrap();
    let read = read_all(&log).await;
    assert_eq!(read.epoch, before.epoch);
    assert_eq!(
        read.entries.len(),
        15,
        "the node read the five the snapshot lacks"
    );

    redis.kill();
    redis.restart().unwrap();
    // Appends reach the restarted server first: the stream's end passes what was lost.
    let deadline = Instant::now() + Duration::from_secs(10);
    while log.append(indicators(20, 3)).await.is_err() {
        assert!(Instant::now() < deadline, "appends never resumed");
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
    let after = read_all(&log).await;
    assert_ne!(after.epoch, before.epoch, "lost entries went unnoticed");
    assert_eq!(
        after.entries.len(),
        13,
        "the snapshot's ten and the three new ones"
    );
    // Every node now reads the new epoch, including one that never read the lost entries.
    let other = connect(&redis).await;
    assert_eq!(read_all(&other).await.epoch, after.epoch);
    assert_eq!(
        read_all(&log).await.epoch,
        after.epoch,
        "decided once, not again"
    );
}

/// What retention removed is not a loss, and neither is a restart that kept everything.
#[tokio::test]
async fn trimming_and_a_whole_restart_keep_the_epoch() {
    let mut redis = RedisServer::start().unwrap();
    let log = connect(&redis).await;
    log.append(indicators(0, 10)).await.unwrap();
    let before = read_all(&log).await;
    save(&redis).await;
    redis.kill();
    redis.restart().unwrap();
    assert_eq!(read_all(&log).await.epoch, before.epoch);

    let client = redis::Client::open(redis.url()).unwrap();
    let mut conn = client.get_multiplexed_async_connection().await.unwrap();
    // Exact trimming of everything but the last entry, as retention would over time.
    redis::cmd("XTRIM")
        .arg("loss:log")
        .arg("MAXLEN")
        .arg(1)
        .query_async::<()>(&mut conn)
        .await
        .unwrap();
    let trimmed = read_all(&log).await;
    assert_eq!(trimmed.epoch, before.epoch);
    assert_eq!(trimmed.entries.len(), 1);
}

async fn command(redis: &RedisServer, args: &[&str]) -> redis::Value {
    let client = redis::Client::open(redis.url()).unwrap();
    let mut conn = client.get_multiplexed_async_connection().await.unwrap();
    let mut cmd = redis::cmd(args[0]);
    for arg in &args[1..] {
        cmd.arg(*arg);
    }
    cmd.query_async(&mut conn).await.unwrap()
}

/// Waits until `replica` holds `entries` entries of the log.
async fn wait_for_length(replica: &RedisServer, entries: i64) {
    let deadline = Instant::now() + Duration::from_secs(10);
    while command(replica, &["XLEN", "loss:log"]).await != redis::Value::Int(entries) {
        assert!(Instant::now() < deadline, "the replica never caught up");
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
}

/// A replica that stopped following before the last appends is promoted in the primary's
/// place (the node's address now reaches it): the node notices and starts a new epoch.
#[tokio::test]
async fn a_lagging_replica_promoted_starts_a_new_epoch() {
    let mut primary = RedisServer::start().unwrap();
    let replica = RedisServer::start().unwrap();
    let log = connect(&primary).await;
    // Full syncs start at once, not after the default 5 s wait for more replicas.
    for server in [&primary, &replica] {
        command(server, &["CONFIG", "SET", "repl-diskless-sync-delay", "0"]).await;
    }
    command(
        &replica,
        &["REPLICAOF", "127.0.0.1", &primary.port().to_string()],
    )
    .await;
    log.append(indicators(0, 10)).await.unwrap();
    let before = read_all(&log).await;
    wait_for_length(&replica, 10).await;
    // The replica falls behind for good: it is cut off, then the primary acknowledges more.
    command(&replica, &["REPLICAOF", "NO", "ONE"]).await;
    log.append(indicators(10, 5)).await.unwrap();
    assert_eq!(read_all(&log).await.entries.len(), 15);

    // Failover: what now answers at the primary's address holds the replica's data.
    primary.kill();
    primary.restart().unwrap();
    command(
        &primary,
        &["REPLICAOF", "127.0.0.1", &replica.port().to_string()],
    )
    .await;
    wait_for_length(&primary, 10).await;
    command(&primary, &["REPLICAOF", "NO", "ONE"]).await;

    let after = read_all(&log).await;
    assert_ne!(
        after.epoch, before.epoch,
        "the promoted replica's gap went unnoticed"
    );
    assert_eq!(after.entries.len(), 10);
}
