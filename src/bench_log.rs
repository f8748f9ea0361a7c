//! `sluice bench-log`: the log backends side by side in one run: append throughput (concurrent
//! batched appenders, as `POST /v1/indicators` makes them), the latency of one-indicator
//! appends (what a sync per batch costs), replay throughput, and how long the SQLite log takes
//! to open with what it holds. It measures; it asserts nothing.

use std::path::Path;
use std::sync::Arc;
use std::time::{Duration, Instant};

use anyhow::Context;
use domain::{Indicator, Provenance, StreamId};
use hdrhistogram::Histogram;
use sluice_log::memory::MemoryLog;
use sluice_log::redis::{RedisLog, RedisLogConfig};
use sluice_log::sqlite::{Fsync, SqliteLog, SqliteLogConfig};
use sluice_log::Log;

use crate::bench::ProcessSample;
use crate::cli::BenchLogArgs;

pub async fn run(args: BenchLogArgs) -> anyhow::Result<()> {
    std::fs::create_dir_all(&args.dir)
        .with_context(|| format!("--dir {}: cannot create it", args.dir.display()))?;
    let indicators = Arc::new(
        (0..args.entries)
            .map(indicator)
            .collect::<anyhow::Result<Vec<_>>>()?,
    );
    let json_bytes: usize = indicators
        .iter()
        .map(|i| i.to_json().to_string().len())
        .sum();
    println!(
        "{} indicators ({:.1} MiB of JSON), batches of {}, {} concurrent appenders; {} single \
         appends for latency",
        args.entries,
        json_bytes as f64 / (1 << 20) as f64,
        args.batch,
        args.appenders,
        args.single
    );
    println!();
    println!("| backend | append, entries/s | single append p50 / p99 / max | replay, entries/s |");
    println!("|---|---|---|---|");

    let memory =
        MemoryLog::with_max_bytes(sluice_log::DEFAULT_RETENTION, usize::MAX, usize::MAX >> 1);
    measure("memory", memory, &indicators, &args).await?;

    for fsync in [Fsync::EveryBatch, Fsync::Off] {
        let dir = args.dir.join(format!("sqlite-{}", fsync.name()));
        let _ = std::fs::remove_dir_all(&dir);
        let log = open_sqlite(&dir, fsync).await?;
        measure(
            &format!("sqlite, --log-fsync {}", fsync.name()),
            log.clone(),
            &indicators,
            &args,
        )
        .await?;
        log.close().await;
    }

    if let Some(url) = &args.redis {
        let prefix = format!("bench-log-{}:", std::process::id());
        let log = RedisLog::connect(RedisLogConfig {
            url: url.clone(),
            key_prefix: prefix.clone(),
            retention: sluice_log::DEFAULT_RETENTION,
        })
        .await
        .context("--redis: cannot connect")?;
        measure("redis", log, &indicators, &args).await?;
        let client = redis::Client::open(url.as_str())?;
        let mut connection = client.get_multiplexed_async_connection().await?;
        let keys: Vec<String> = redis::cmd("KEYS")
            .arg(format!("{prefix}*"))
            .query_async(&mut connection)
            .await?;
        if !keys.is_empty() {
            let _: i64 = redis::cmd("DEL")
                .arg(keys)
                .query_async(&mut connection)
                .await?;
        }
    }

    println!();
    let dir = args.dir.join("sqlite-batch");
    let size = std::fs::metadata(dir.join(sluice_log::sqlite::FILE_NAME))
        .map(|m| m.len())
        .unwrap_or(0);
    let before = ProcessSample::read(std::process::id())?.rss_kib;
    let started = Instant::now();
    let log = open_sqlite(&dir, Fsync::EveryBatch).await?;
    let opened = started.elapsed();
    let len = log.bounds().await?.len;
    let after = ProcessSample::read(std::process::id())?.rss_kib;
    println!(
        "sqlite open with {len} entries ({:.1} MiB file): {:.2} s, RSS +{:.0} MiB",
        size as f64 / (1 << 20) as f64,
        opened.as_secs_f64(),
        after.saturating_sub(before) as f64 / 1024.0
    );
    log.close().await;
    std::fs::remove_dir_all(&args.dir).ok();
    Ok(())
}

async fn open_sqlite(dir: &Path, fsync: Fsync) -> anyhow::Result<Arc<SqliteLog>> {
    Ok(SqliteLog::open(SqliteLogConfig {
        path: dir.join(sluice_log::sqlite::FILE_NAME),
        retention: sluice_log::DEFAULT_RETENTION,
        max_entries: usize::MAX,
        max_bytes: usize::MAX >> 1,
        fsync,
    })
    .await?)
}

/// A scanner report as a sensor sends it.
fn indicator(n: usize) -> anyhow::Result<Indicator> {
    let value = serde_json::json!({
        "indicator": std::net::Ipv4Addr::from(0x0500_0000u32 + n as u32).to_string(),
        "itype": "ipv4",
        "provider": "bench",
        "tags": ["scanner", "ssh"],
        "confidence": 7,
        "tlp": "green",
        "description": "ssh brute force against the sensor",
        "reporttime": "2026-12-01T00:00:00Z",
    });
    Indicator::from_json(value, Provenance::Trusted, chrono::Utc::now())
        .map_err(|rejection| anyhow::anyhow!("bench indicator rejected: {rejection:?}"))
}

async fn measure(
    name: &str,
    log: Arc<impl Log>,
    indicators: &Arc<Vec<Indicator>>,
    args: &BenchLogArgs,
) -> anyhow::Result<()> {
    // Concurrent batched appends of every indicator.
    let started = Instant::now();
    let chunks: Vec<Vec<Indicator>> = indicators
        .chunks(args.batch.max(1))
        .map(<[Indicator]>::to_vec)
        .collect();
    let queue = Arc::new(std::sync::Mutex::new(chunks));
    let appenders: Vec<_> = (0..args.appenders.max(1))
        .map(|_| {
            let (log, queue) = (log.clone(), queue.clone());
            tokio::spawn(async move {
                loop {
                    let Some(chunk) = queue.lock().expect("queue lock").pop() else {
                        return Ok::<_, anyhow::Error>(());
                    };
                    log.append(chunk).await?;
                }
            })
        })
        .collect();
    for appender in appenders {
        appender.await??;
    }
    let append_rate = indicators.len() as f64 / started.elapsed().as_secs_f64();

    // One-indicator appends, one after the other: each waits for its own commit.
    let mut latency = Histogram::<u64>::new_with_bounds(1, 60_000_000, 3)?;
    for item in indicators.iter().take(args.single) {
        let started = Instant::now();
        log.append(vec![item.clone()]).await?;
        latency.record(started.elapsed().as_micros().max(1) as u64)?;
    }

    // Replay everything from the start, a page at a time.
    let started = Instant::now();
    let (mut position, mut replayed) = (StreamId::ZERO, 0usize);
    loop {
        let batch = log.read_after(position, 1000).await?;
        replayed += batch.entries.len();
        // The JSON is what a replay sends; the embedded logs hold it, Redis's reader parses it.
        for entry in &batch.entries {
            std::hint::black_box(entry.json().len());
        }
        match batch.read_through {
            Some(through) => position = through,
            None => break,
        }
    }
    let replay_rate = replayed as f64 / started.elapsed().as_secs_f64();
    println!(
        "| {name} | {append_rate:.0} | {} / {} / {} | {replay_rate:.0} |",
        micros(latency.value_at_quantile(0.5)),
        micros(latency.value_at_quantile(0.99)),
        micros(latency.max()),
    );
    Ok(())
}

fn micros(value: u64) -> String {
    let duration = Duration::from_micros(value);
    if duration >= Duration::from_millis(10) {
        format!("{} ms", duration.as_millis())
    } else {
        format!("{:.2} ms", duration.as_secs_f64() * 1000.0)
    }
}
