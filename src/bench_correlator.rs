//! `sluice bench-correlator`: how fast the correlation rule runs on one core, how much memory a
//! tracked scanner costs, and (with `--redis`) the correlator's end-to-end rate through a Redis
//! log. It measures; it asserts nothing.

use std::net::{IpAddr, Ipv4Addr};
use std::sync::Arc;
use std::time::{Duration, Instant};

use anyhow::Context;
use domain::correlation::{Engine, Key, Report, Rule};
use domain::{Indicator, Provenance, Tlp};
use sluice_log::redis::{RedisLog, RedisLogConfig};
use sluice_log::Log;
use tokio_util::sync::CancellationToken;

use crate::bench::ProcessSample;
use crate::cli::BenchCorrelatorArgs;

const PROVIDERS: [&str; 5] = ["honeypot-eu", "honeypot-us", "firewall", "ids", "sinkhole"];
const SECOND: i64 = 1_000_000;

pub async fn run(args: BenchCorrelatorArgs) -> anyhow::Result<()> {
    let providers = args.providers.clamp(1, PROVIDERS.len());
    rule_on_one_core(args.scanners, providers)?;
    if let Some(url) = &args.redis {
        end_to_end(url, args.e2e_scanners, providers).await?;
    }
    Ok(())
}

/// A public address per scanner number (1.0.0.0 upwards, skipping nothing the rule cares about).
fn scanner(n: usize) -> Key {
    Key::Address(IpAddr::V4(Ipv4Addr::from(0x0100_0000u32 + n as u32)))
}

/// Reports in time order: every scanner is seen by `providers` providers a minute apart, and
/// scanners follow each other over 20 hours, so all of them are inside one 24-hour window.
fn reports(scanners: usize, providers: usize) -> Vec<(Key, usize, i64)> {
    let span = 20 * 3600 * SECOND;
    let step = span / scanners.max(1) as i64;
    let mut reports: Vec<(Key, usize, i64)> = (0..scanners)
        .flat_map(|n| {
            (0..providers).map(move |p| (scanner(n), p, n as i64 * step + p as i64 * 60 * SECOND))
        })
        .collect();
    reports.sort_by_key(|(_, _, time)| *time);
    reports
}

fn rule_on_one_core(scanners: usize, providers: usize) -> anyhow::Result<()> {
    let reports = reports(scanners, providers);
    let tags = vec!["scanner".to_owned()];
    let rule = Rule::default();
    eprintln!(
        "rule: {} reports ({scanners} scanners × {providers} providers), lateness {:?}",
        reports.len(),
        rule.lateness
    );
    let mut engine = Engine::new(rule);
    let mut out = Vec::new();
    let mut emitted = 0usize;
    let before = ProcessSample::read(std::process::id())?;
    let started = Instant::now();
    for &(key, provider, time) in &reports {
        let report = Report {
            key,
            provider: PROVIDERS[provider],
            time,
            arrival: time,
            confidence: 7.0,
            tlp: Tlp::Green,
            tags: &tags,
            withdrawn: false,
        };
        engine.observe(&report, &mut out);
        if out.len() >= 4096 {
            emitted += out.len();
            out.clear();
        }
    }
    let elapsed = started.elapsed();
    let after = ProcessSample::read(std::process::id())?;
    let stats = engine.stats();
    engine.finalise_all(&mut out);
    emitted += out.len();
    let rate = reports.len() as f64 / elapsed.as_secs_f64();
    let grown_kib = after.rss_kib.saturating_sub(before.rss_kib);
    println!(
        "rule, one core: {:.0} reports/s ({} reports in {:.2} s), {emitted} emissions",
        rate,
        reports.len(),
        elapsed.as_secs_f64()
    );
    println!(
        "state at the end: {} keys, {} sightings, {} reports pending (lateness); RSS grew {:.1} MiB = {:.0} bytes per tracked scanner",
        stats.keys,
        stats.sightings,
        stats.pending,
        grown_kib as f64 / 1024.0,
        grown_kib as f64 * 1024.0 / stats.keys.max(1) as f64
    );
    Ok(())
}

async fn end_to_end(url: &str, scanners: usize, providers: usize) -> anyhow::Result<()> {
    let prefix = format!("bench-{}:", sluice_log::new_epoch());
    let retention = Duration::from_secs(24 * 3600);
    let log = RedisLog::connect(RedisLogConfig {
        url: url.to_owned(),
        key_prefix: prefix.clone(),
        retention,
    })
    .await
    .context("--redis: cannot connect")?;
    let reports = reports(scanners, providers);
    eprintln!(
        "end to end: appending {} reports to Redis (keys {prefix}*)",
        reports.len()
    );
    append_reports(&log, &reports).await?;
    let expected = if providers >= 3 { scanners } else { 0 };
    let rule = Rule {
        lateness: Duration::ZERO,
        idle: Duration::from_secs(1),
        ..Rule::default()
    };
    let metrics = correlator::CorrelatorMetrics::default();
    let shutdown = CancellationToken::new();
    let log: Arc<dyn Log> = log;
    let started = Instant::now();
    let cpu_before = ProcessSample::read(std::process::id())?.cpu_seconds;
    let task = tokio::spawn(correlator::run(
        log,
        correlator::Config::new(vec![rule], retention),
        metrics.clone(),
        shutdown.clone(),
    ));
    let emitted = correlator::CorrelatorMetrics::rule(&metrics.emitted, "scanners");
    let accepted = correlator::CorrelatorMetrics::rule(&metrics.accepted, "scanners");
    while (accepted.get() as usize) < reports.len() || (emitted.get() as usize) < expected {
        if started.elapsed() > Duration::from_secs(600) {
            anyhow::bail!(
                "the correlator emitted {} of {expected} in 10 minutes",
                emitted.get()
            );
        }
        tokio::time::sleep(Duration::from_millis(10)).await;
    }
    let elapsed = started.elapsed();
    let cpu = ProcessSample::read(std::process::id())?.cpu_seconds - cpu_before;
    shutdown.cancel();
    task.await?;
    println!(
        "end to end with Redis: {:.0} reports/s ({} reports read, {} emissions appended in {:.2} s, {:.2} CPU-s in this process)",
        reports.len() as f64 / elapsed.as_secs_f64(),
        reports.len(),
        emitted.get(),
        elapsed.as_secs_f64(),
        cpu
    );
    remove_keys(url, &prefix).await
}

/// Appends the reports, 1,000 per call, as scanner sightings spread over the last 21 hours.
async fn append_reports(log: &RedisLog, reports: &[(Key, usize, i64)]) -> anyhow::Result<()> {
    let now = chrono::Utc::now();
    let start = now - chrono::TimeDelta::hours(21);
    for chunk in reports.chunks(1000) {
        let batch = chunk
            .iter()
            .map(|(key, provider, time)| {
                let reporttime = start + chrono::TimeDelta::microseconds(*time);
                Indicator::from_json(
                    serde_json::json!({
                        "indicator": key.to_string(),
                        "provider": PROVIDERS[*provider],
                        "tags": ["scanner"],
                        "reporttime": reporttime.to_rfc3339(),
                    }),
                    Provenance::Trusted,
                    now,
                )
            })
            .collect::<Result<Vec<_>, _>>()
            .map_err(|rejection| anyhow::anyhow!("bench report refused: {rejection}"))?;
        log.append(batch).await?;
    }
    Ok(())
}

/// Removes this run's keys with SCAN (never KEYS, which blocks a busy server) over its prefix.
async fn remove_keys(url: &str, prefix: &str) -> anyhow::Result<()> {
    let mut conn = redis::Client::open(url)?
        .get_multiplexed_async_connection()
        .await?;
    let mut cursor: u64 = 0;
    loop {
        let (next, keys): (u64, Vec<String>) = redis::cmd("SCAN")
            .arg(cursor)
            .arg("MATCH")
            .arg(format!("{prefix}*"))
            .arg("COUNT")
            .arg(1000)
            .query_async(&mut conn)
            .await?;
        if !keys.is_empty() {
            redis::cmd("UNLINK")
                .arg(&keys)
                .query_async::<()>(&mut conn)
                .await?;
        }
        if next == 0 {
            break;
        }
        cursor = next;
    }
    Ok(())
}
