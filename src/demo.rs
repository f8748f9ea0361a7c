//! `sluice up --demo`: replays the bundled feed snapshots (data/feeds) into the log at a steady
//! pace, one record of each feed in turn (each feed cycling through its own records), so that
//! every kind of indicator keeps coming all the time: addresses, networks, URLs and domains, TLP
//! white, green and amber, confidences from 4 to 9. The snapshots carry no TLP or confidence, so
//! each feed gets the ones its source would give. Two made-up honeypots echo csirtg.io's
//! scanners in the same rounds, so each of those addresses has three providers within seconds and
//! the correlator emits it (README, "What `--demo` sends").

use std::sync::Arc;
use std::time::Duration;

use domain::feed::{parse_feed, FeedFormat};
use domain::{Indicator, Provenance, Tlp};
use serde_json::{Map, Value};
use sluice_log::Log;
use tokio_util::sync::CancellationToken;

/// One bundled feed as the demo sends it.
struct Source {
    provider: &'static str,
    text: &'static str,
    /// Tags the feed implies, before the record's own.
    tags: &'static [&'static str],
    tlp: Tlp,
    confidence: u8,
}

/// The feeds, in the order of each round. TLP and confidence are what each source's kind of
/// data usually gets: public block lists are white, curated phishing green, the C&C feeds amber;
/// verified or hand-curated lists high confidence, raw sightings lower.
const SOURCES: &[Source] = &[
    Source {
        provider: "csirtg.io/port-scanners",
        text: include_str!("../data/feeds/csirtg_feed.txt"),
        tags: &["scanner"],
        tlp: Tlp::White,
        confidence: 6,
    },
    Source {
        provider: "spamhaus/drop",
        text: include_str!("../data/feeds/spamhaus_drop.txt"),
        tags: &["hijacked"],
        tlp: Tlp::White,
        confidence: 9,
    },
    Source {
        provider: "openphish",
        text: include_str!("../data/feeds/openphish_feed.txt"),
        tags: &["phishing"],
        tlp: Tlp::Green,
        confidence: 8,
    },
    Source {
        provider: "abuse.ch/urlhaus",
        text: include_str!("../data/feeds/abuse_ch_urlhaus.txt"),
        tags: &["malware"],
        tlp: Tlp::White,
        confidence: 8,
    },
    Source {
        provider: "bambenek/c2-domains",
        text: include_str!("../data/feeds/bambenek_fqdn_feed.txt"),
        tags: &["botnet", "c2"],
        tlp: Tlp::Amber,
        confidence: 9,
    },
    Source {
        provider: "bambenek/c2-ips",
        text: include_str!("../data/feeds/bambenek_ipv4_feed.txt"),
        tags: &["botnet", "c2"],
        tlp: Tlp::Amber,
        confidence: 8,
    },
    Source {
        provider: "dshield/block",
        text: include_str!("../data/feeds/sansedu_block.txt"),
        tags: &["scanner"],
        tlp: Tlp::White,
        confidence: 7,
    },
    Source {
        provider: "alienvault/reputation",
        text: include_str!("../data/feeds/alienvault_feed.txt"),
        tags: &["suspicious"],
        tlp: Tlp::Green,
        confidence: 4,
    },
    Source {
        provider: "phishtank",
        text: include_str!("../data/feeds/phishtank_feed.json"),
        tags: &["phishing"],
        tlp: Tlp::White,
        confidence: 9,
    },
    // Two made-up sensors seeing the same scanners as csirtg.io, in the same rounds, so that the
    // correlator has something to find: each of those addresses becomes a `correlated`
    // indicator (once: the rule then keeps it quiet for its 24-hour window).
    Source {
        provider: "demo/honeypot-eu",
        text: include_str!("../data/feeds/csirtg_feed.txt"),
        tags: &["scanner", "honeypot"],
        tlp: Tlp::Amber,
        confidence: 5,
    },
    Source {
        provider: "demo/honeypot-us",
        text: include_str!("../data/feeds/csirtg_feed.txt"),
        tags: &["scanner", "honeypot"],
        tlp: Tlp::Amber,
        confidence: 6,
    },
];

/// One feed's records, ready to be sent: (provider, indicator object).
struct Feed {
    provider: &'static str,
    records: Vec<Map<String, Value>>,
}

/// The feeds' records with the demo's tags, TLP and confidence (a record's own win) and without
/// the snapshots' years-old times. Feeds without a usable record are left out.
fn feeds() -> Vec<Feed> {
    SOURCES
        .iter()
        .map(|source| Feed {
            provider: source.provider,
            records: parse_feed(source.text, FeedFormat::Auto)
                .into_iter()
                .filter_map(Result::ok)
                .map(|record| prepare(record.object, source))
                .collect(),
        })
        .filter(|feed| !feed.records.is_empty())
        .collect()
}

fn prepare(mut object: Map<String, Value>, source: &Source) -> Map<String, Value> {
    let mut tags: Vec<Value> = source.tags.iter().map(|tag| Value::from(*tag)).collect();
    match object.remove("tags") {
        Some(Value::String(text)) => tags.extend(text.split(',').map(|t| Value::from(t.trim()))),
        Some(Value::Array(items)) => tags.extend(items),
        _ => {}
    }
    object.insert("tags".into(), Value::Array(tags));
    object
        .entry("tlp")
        .or_insert_with(|| Value::from(source.tlp.as_str()));
    object
        .entry("confidence")
        .or_insert_with(|| Value::from(source.confidence));
    // Snapshot times are years old; the demo reports them as seen now.
    for stale in ["reporttime", "lasttime", "firsttime"] {
        object.remove(stale);
    }
    object
}

/// The endless order of the demo: round after round, one record of each feed, each feed
/// cycling through its own records (a small feed repeats sooner than a large one).
fn schedule(feeds: &[Feed]) -> impl Iterator<Item = (&'static str, &Map<String, Value>)> + '_ {
    (0usize..).flat_map(move |round| {
        feeds
            .iter()
            .map(move |feed| (feed.provider, &feed.records[round % feed.records.len()]))
    })
}

pub async fn run(log: Arc<dyn Log>, per_second: u32, shutdown: CancellationToken) {
    let feeds = feeds();
    if feeds.is_empty() {
        return;
    }
    tracing::info!(
        demo.records = feeds.iter().map(|feed| feed.records.len()).sum::<usize>(),
        demo.feeds = feeds.len(),
        demo.rate = per_second,
        "demo: replaying the bundled sample feeds, one record of each in turn"
    );
    let mut ticks =
        tokio::time::interval(Duration::from_secs_f64(1.0 / f64::from(per_second.max(1))));
    for (provider, object) in schedule(&feeds) {
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
            // Every bundled record validates (a test holds it to that); should one not, it is
            // skipped like any reject.
            Err(_) => continue,
        };
        if let Err(error) = log.append(vec![indicator]).await {
            tracing::warn!(%error, "demo: cannot append; retrying with the next record");
        }
    }
}

#[cfg(test)]
mod tests {
    use std::collections::{BTreeSet, HashMap, HashSet};

    use domain::{Filter, Itype};

    use super::*;

    /// The first `n` indicators the demo sends after skipping `skip`.
    fn sent(skip: usize, n: usize) -> Vec<Indicator> {
        let feeds = feeds();
        schedule(&feeds)
            .skip(skip)
            .take(n)
            .map(|(provider, object)| {
                Indicator::from_json(
                    Value::Object(object.clone()),
                    Provenance::Authenticated(provider),
                    chrono::Utc::now(),
                )
                .unwrap_or_else(|error| panic!("{provider}: {error}: {object:?}"))
            })
            .collect()
    }

    #[test]
    fn every_feed_contributes_and_every_record_validates() {
        let feeds = feeds();
        assert_eq!(feeds.len(), SOURCES.len(), "a bundled feed has no record");
        let longest = feeds.iter().map(|feed| feed.records.len()).max().unwrap();
        // One whole cycle of the longest feed passes every record of every feed.
        assert_eq!(sent(0, longest * feeds.len()).len(), longest * feeds.len());
    }

    /// The complaints of a first try: a `free` account saw only `hello`, `--profile zeek` wrote
    /// an empty file, and `--tags scanner` went quiet for minutes. Any stretch of a minute (300
    /// indicators at the default 5/s), early or late in the loop, has something for each.
    #[test]
    fn any_minute_of_the_demo_mixes_tlps_confidences_itypes_and_scanners() {
        let free = Filter::from_pairs([("tlp", "green")]).unwrap();
        let scanners = Filter::from_pairs([("tags", "scanner")]).unwrap();
        for skip in [0, 1_000, 4_321, 8_000] {
            let minute = sent(skip, 300);
            let tlps: BTreeSet<Tlp> = minute.iter().map(Indicator::tlp).collect();
            assert_eq!(
                tlps,
                BTreeSet::from([Tlp::White, Tlp::Green, Tlp::Amber]),
                "at {skip}"
            );
            let itypes: HashSet<Itype> = minute.iter().map(Indicator::itype).collect();
            for itype in [Itype::Ipv4, Itype::Cidr, Itype::Url, Itype::Fqdn] {
                assert!(
                    itypes.contains(&itype),
                    "no {itype:?} at {skip}: {itypes:?}"
                );
            }
            assert!(minute.iter().any(|i| i.confidence() >= 7.0), "at {skip}");
            assert!(minute.iter().any(|i| i.confidence() < 7.0), "at {skip}");
            let count = |filter: &Filter| minute.iter().filter(|i| filter.matches(i)).count();
            assert!(count(&free) >= 100, "free sees {} at {skip}", count(&free));
            assert!(
                count(&scanners) >= 100,
                "scanners: {} at {skip}",
                count(&scanners)
            );
            for profile in ["firewall", "sinkhole", "zeek"] {
                let filter = Filter::from_pairs([("profile", profile)]).unwrap();
                assert!(
                    count(&filter) >= 20,
                    "{profile}: {} at {skip}",
                    count(&filter)
                );
            }
        }
    }

    /// csirtg.io and the two honeypots report each scanner in the same round, so the correlator
    /// has three providers for each of them within one round (2.2 s at the default rate).
    #[test]
    fn three_providers_report_each_csirtg_scanner_within_one_round() {
        let feeds = feeds();
        let round = feeds.len();
        let csirtg = feeds
            .iter()
            .find(|feed| feed.provider == "csirtg.io/port-scanners")
            .unwrap()
            .records
            .len();
        let first = sent(0, csirtg * round);
        for (index, chunk) in first.chunks(round).enumerate() {
            let mut providers: HashMap<&str, BTreeSet<&str>> = HashMap::new();
            for indicator in chunk
                .iter()
                .filter(|i| i.tags().iter().any(|t| t == "scanner"))
            {
                providers
                    .entry(indicator.indicator())
                    .or_default()
                    .insert(indicator.provider());
            }
            assert!(
                providers.values().any(|seen| seen.len() >= 3),
                "round {index}: {providers:?}"
            );
        }
    }

    /// README's "What `--demo` sends" table says what this module sends, row for row.
    #[test]
    fn the_readme_table_says_what_each_feed_sends() {
        let readme = include_str!("../README.md");
        let feeds = feeds();
        assert_eq!(feeds.len(), SOURCES.len());
        for (source, feed) in SOURCES.iter().zip(&feeds) {
            let start = format!("| `{}` |", source.provider);
            let row = readme
                .lines()
                .find(|line| line.starts_with(&start))
                .unwrap_or_else(|| panic!("README.md has no row for {}", source.provider));
            let cells: Vec<&str> = row.split('|').map(str::trim).collect();
            let tags: Vec<String> = source.tags.iter().map(|tag| format!("`{tag}`")).collect();
            assert!(
                cells[2].contains(&format!("{} ", feed.records.len())),
                "{row}"
            );
            assert_eq!(cells[3], tags.join(", "), "{row}");
            assert_eq!(cells[4], source.tlp.as_str(), "{row}");
            assert_eq!(cells[5], source.confidence.to_string(), "{row}");
        }
    }
}
