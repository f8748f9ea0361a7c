//! `sluice up --demo`: replays the bundled feed snapshots (data/feeds) into the log at a steady
//! pace, round-robin across feeds, so a newcomer sees varied data flowing at once. Two made-up
//! honeypots echo csirtg.io's scanners, so correlated indicators appear within a minute.

use std::sync::Arc;
use std::time::Duration;

use domain::feed::{parse_feed, FeedFormat};
use domain::{Indicator, Provenance};
use serde_json::{Map, Value};
use sluice_log::Log;
use tokio_util::sync::CancellationToken;

/// (provider, feed text, tags the feed implies)
const FEEDS: &[(&str, &str, &[&str])] = &[
    (
        "csirtg.io/port-scanners",
        include_str!("../data/feeds/csirtg_feed.txt"),
        &["scanner"],
    ),
    (
        "spamhaus/drop",
        include_str!("../data/feeds/spamhaus_drop.txt"),
        &["hijacked"],
    ),
    (
        "openphish",
        include_str!("../data/feeds/openphish_feed.txt"),
        &["phishing"],
    ),
    (
        "abuse.ch/urlhaus",
        include_str!("../data/feeds/abuse_ch_urlhaus.txt"),
        &["malware"],
    ),
    (
        "bambenek/c2-domains",
        include_str!("../data/feeds/bambenek_fqdn_feed.txt"),
        &["botnet", "c2"],
    ),
    (
        "bambenek/c2-ips",
        include_str!("../data/feeds/bambenek_ipv4_feed.txt"),
        &["botnet", "c2"],
    ),
    (
        "dshield/block",
        include_str!("../data/feeds/sansedu_block.txt"),
        &["scanner"],
    ),
    (
        "alienvault/reputation",
        include_str!("../data/feeds/alienvault_feed.txt"),
        &["suspicious"],
    ),
    (
        "phishtank",
        include_str!("../data/feeds/phishtank_feed.json"),
        &["phishing"],
    ),
    // Three made-up sensors seeing the same scanners as csirtg.io, so that the correlator has
    // something to find: each address reported by them becomes a `correlated` indicator.
    (
        "demo/honeypot-eu",
        include_str!("../data/feeds/csirtg_feed.txt"),
        &["scanner", "honeypot"],
    ),
    (
        "demo/honeypot-us",
        include_str!("../data/feeds/csirtg_feed.txt"),
        &["scanner", "honeypot"],
    ),
];

/// The demo's records, interleaved across feeds: (provider, indicator object).
fn records() -> Vec<(&'static str, Map<String, Value>)> {
    let mut per_feed: Vec<Vec<(&'static str, Map<String, Value>)>> = FEEDS
        .iter()
        .map(|(provider, text, tags)| {
            parse_feed(text, FeedFormat::Auto)
                .into_iter()
                .filter_map(Result::ok)
                .map(|record| {
                    let mut object = record.object;
                    let mut all_tags: Vec<Value> =
                        tags.iter().map(|tag| Value::from(*tag)).collect();
                    match object.remove("tags") {
                        Some(Value::String(text)) => {
                            all_tags.extend(text.split(',').map(|t| Value::from(t.trim())))
                        }
                        Some(Value::Array(items)) => all_tags.extend(items),
                        _ => {}
                    }
                    object.insert("tags".into(), Value::Array(all_tags));
                    // Snapshot times are years old; the demo reports them as seen now.
                    for stale in ["reporttime", "lasttime", "firsttime"] {
                        object.remove(stale);
                    }
                    (*provider, object)
                })
                .collect()
        })
        .collect();
    let mut interleaved = Vec::new();
    while per_feed.iter().any(|feed| !feed.is_empty()) {
        for feed in per_feed.iter_mut() {
            if !feed.is_empty() {
                interleaved.push(feed.remove(0));
            }
        }
    }
    interleaved
}

pub async fn run(log: Arc<dyn Log>, per_second: u32, shutdown: CancellationToken) {
    let records = records();
    if records.is_empty() {
        return;
    }
    tracing::info!(
        demo.records = records.len(),
        demo.feeds = FEEDS.len(),
        demo.rate = per_second,
        "demo: replaying the bundled sample feeds in a loop"
    );
    let mut ticks =
        tokio::time::interval(Duration::from_secs_f64(1.0 / f64::from(per_second.max(1))));
    for (provider, object) in records.iter().cycle() {
        tokio::select! {
            _ = shutdown.cancelled() => return,
            _ = ticks.tick() => {}
        }
        let indicator = match Indicator::from_json(
            Value::Object(object.clone()),
            Provenance::Authenticated(provider),
            chrono::Utc::now(),
        ) {
            Ok(indicator) => indicator,
            // Every bundled record validates today; should one not, it is skipped like any reject.
            Err(_) => continue,
        };
        if let Err(error) = log.append(vec![indicator]).await {
            tracing::warn!(%error, "demo: cannot append; retrying with the next record");
        }
    }
}
