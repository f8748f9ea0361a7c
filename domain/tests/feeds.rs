//! The feed parsers and the indicator model over the real feed snapshots in `data/feeds`
//! (see its README for their sources): every file read with `FeedFormat::Auto`, every record
//! validated, and the counts pinned so that a change in parsing or validation shows up here.
//!
//! Every address in these snapshots is public (checked against the special-purpose registries
//! when the counts were pinned), so nothing is rejected; the rejection rules themselves are
//! covered by the unit tests in `src/indicator/tests.rs`.

use std::collections::BTreeMap;
use std::path::PathBuf;

use chrono::{DateTime, TimeZone, Utc};
use domain::feed::{parse_feed, FeedFormat, FeedRecord};
use domain::{Filter, Indicator, Itype, Provenance};
use serde_json::{json, Value};

fn feeds_dir() -> PathBuf {
    PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("../data/feeds")
}

fn now() -> DateTime<Utc> {
    Utc.with_ymd_and_hms(2024, 5, 1, 12, 0, 0).unwrap()
}

/// The counts for one feed file, and what its accepted indicators are.
#[derive(Debug, PartialEq)]
struct Counts {
    records: usize,
    feed_errors: usize,
    accepted: usize,
    rejected: usize,
    itypes: BTreeMap<&'static str, usize>,
}

fn counts(
    records: usize,
    feed_errors: usize,
    accepted: usize,
    rejected: usize,
    itypes: &[(&'static str, usize)],
) -> Counts {
    Counts {
        records,
        feed_errors,
        accepted,
        rejected,
        itypes: itypes.iter().copied().collect(),
    }
}

/// Item lines (non-comment, non-blank) per file, counted independently with
/// `grep -cvE '^\s*(#|;|//|$)'`: records + feed errors must add up to them (minus header lines).
#[rustfmt::skip]
fn expected() -> Vec<(&'static str, Counts)> {
    vec![
        //                         records errors accepted rejected  itypes
        ("abuse_ch_urlhaus.txt",   counts( 31, 0,  31, 0, &[("url", 31)])),
        ("alienvault_feed.txt",    counts( 12, 0,  12, 0, &[("ipv4", 12)])),
        ("bambenek_fqdn_feed.txt", counts( 15, 0,  15, 0, &[("fqdn", 15)])),
        ("bambenek_ipv4_feed.txt", counts( 22, 0,  22, 0, &[("ipv4", 22)])),
        ("csirtg_feed.txt",        counts( 25, 0,  25, 0, &[("ipv4", 25)])),
        ("openphish_feed.txt",     counts( 42, 0,  42, 0, &[("url", 42)])),
        ("phishtank_feed.json",    counts(  5, 0,   5, 0, &[("url", 5)])),
        // 16 item lines: the first is DShield's `Start End Netblock ...` header.
        ("sansedu_block.txt",      counts( 15, 0,  15, 0, &[("cidr", 15)])),
        ("spamhaus_drop.txt",      counts(737, 0, 737, 0, &[("cidr", 737)])),
    ]
}

fn read_feed(name: &str) -> String {
    std::fs::read_to_string(feeds_dir().join(name))
        .unwrap_or_else(|error| panic!("reading {name}: {error}"))
}

fn validate(record: &FeedRecord) -> Result<Indicator, domain::Rejection> {
    Indicator::from_json(
        Value::Object(record.object.clone()),
        Provenance::Authenticated("test"),
        now(),
    )
}

/// Every accepted indicator of a feed, with the line it came from.
fn accepted(name: &str) -> Vec<(usize, Indicator)> {
    parse_feed(&read_feed(name), FeedFormat::Auto)
        .into_iter()
        .filter_map(Result::ok)
        .filter_map(|record| {
            validate(&record)
                .ok()
                .map(|indicator| (record.line, indicator))
        })
        .collect()
}

fn at_line(name: &str, line: usize) -> Indicator {
    accepted(name)
        .into_iter()
        .find(|(at, _)| *at == line)
        .unwrap_or_else(|| panic!("{name}: no accepted indicator at line {line}"))
        .1
}

#[test]
fn every_feed_parses_and_validates_with_pinned_counts() {
    let mut files: Vec<String> = std::fs::read_dir(feeds_dir())
        .expect("data/feeds exists")
        .map(|entry| entry.unwrap().file_name().into_string().unwrap())
        .filter(|name| name != "README.md")
        .collect();
    files.sort();
    let expected = expected();
    let pinned: Vec<&str> = expected.iter().map(|(name, _)| *name).collect();
    assert_eq!(
        files, pinned,
        "every feed file has a row in EXPECTED, and only those"
    );

    for (name, expected) in expected {
        let mut got = counts(0, 0, 0, 0, &[]);
        for result in parse_feed(&read_feed(name), FeedFormat::Auto) {
            let record = match result {
                Ok(record) => record,
                Err(error) => {
                    eprintln!("{name}: {error}");
                    got.feed_errors += 1;
                    continue;
                }
            };
            got.records += 1;
            match validate(&record) {
                Ok(indicator) => {
                    got.accepted += 1;
                    *got.itypes.entry(indicator.itype().as_str()).or_default() += 1;
                }
                Err(rejection) => {
                    eprintln!("{name} line {}: {rejection}", record.line);
                    got.rejected += 1;
                }
            }
        }
        assert_eq!(got, expected, "{name}");
    }
}

#[test]
fn stored_form_of_every_feed_indicator_reads_back_equal() {
    for (name, _) in expected() {
        for (line, indicator) in accepted(name) {
            let stored = indicator.to_json().to_string();
            let again = Indicator::from_slice(stored.as_bytes(), Provenance::Trusted, Utc::now())
                .unwrap_or_else(|rejection| panic!("{name} line {line}: {rejection}"));
            assert_eq!(again, indicator, "{name} line {line}");
            assert_eq!(again.provider(), "test");
        }
    }
}

#[test]
fn known_lines_are_read_as_expected() {
    let spamhaus = at_line("spamhaus_drop.txt", 6);
    assert_eq!(
        (spamhaus.indicator(), spamhaus.itype()),
        ("1.10.16.0/20", Itype::Cidr)
    );
    assert_eq!(spamhaus.network(), Some("1.10.16.0/20".parse().unwrap()));

    let openphish = at_line("openphish_feed.txt", 1);
    assert_eq!(
        (openphish.indicator(), openphish.itype()),
        ("http://www.kerjakayu.my/.http", Itype::Url)
    );
    assert_eq!(
        at_line("openphish_feed.txt", 11).indicator(),
        "http://www.kwikvillabali.com"
    );
    assert_eq!(
        at_line("openphish_feed.txt", 12).indicator(),
        "http://www.jeanneachterberg.com/shellyahoo/yahoo%20Index.htm",
        "paths are kept verbatim"
    );

    let fqdn = at_line("bambenek_fqdn_feed.txt", 17);
    assert_eq!(
        (fqdn.indicator(), fqdn.itype()),
        ("ysg9ivv311.com", Itype::Fqdn)
    );
    assert_eq!(
        fqdn.description(),
        Some("Domain used by shiotob/urlzone/bebloh")
    );
    assert_eq!(
        fqdn.lasttime(),
        Some(Utc.with_ymd_and_hms(2016, 6, 5, 12, 3, 0).unwrap())
    );
    assert_eq!(
        fqdn.field("altid"),
        Some(&json!(
            "http://osint.bambenekconsulting.com/manual/bebloh.txt"
        ))
    );

    let c2 = at_line("bambenek_ipv4_feed.txt", 17);
    assert_eq!((c2.indicator(), c2.itype()), ("52.4.209.250", Itype::Ipv4));

    let csirtg = at_line("csirtg_feed.txt", 8);
    assert_eq!(
        (csirtg.indicator(), csirtg.itype()),
        ("216.243.31.2", Itype::Ipv4)
    );
    assert_eq!(
        csirtg.lasttime(),
        Some(Utc.with_ymd_and_hms(2016, 3, 23, 20, 17, 26).unwrap())
    );
    assert_eq!(csirtg.firsttime(), None, "empty cells are absent");
    assert_eq!(csirtg.field("portlist"), Some(&json!("443")));
    assert_eq!(csirtg.field("protocol"), Some(&json!("6")));
    assert_eq!(
        csirtg.field("id"),
        Some(&json!("337401")),
        "other columns are kept"
    );
    assert_eq!(
        csirtg.reporttime(),
        now(),
        "reporttime defaults to ingest time"
    );

    let urlhaus = at_line("abuse_ch_urlhaus.txt", 10);
    assert_eq!(
        (urlhaus.indicator(), urlhaus.itype()),
        (
            "http://madlabs.com.my/2428009LPOJER/com/Personal",
            Itype::Url
        )
    );
    assert_eq!(urlhaus.tags(), ["doc", "emotet"]);
    assert_eq!(urlhaus.description(), Some("malware_download"));
    assert_eq!(
        urlhaus.firsttime(),
        Some(Utc.with_ymd_and_hms(2018, 8, 20, 19, 10, 5).unwrap())
    );

    let dshield = at_line("sansedu_block.txt", 32);
    assert_eq!(
        (dshield.indicator(), dshield.itype()),
        ("207.150.177.0/24", Itype::Cidr)
    );
    assert_eq!(dshield.field("count"), Some(&json!(13840)));
    let named = at_line("sansedu_block.txt", 34);
    assert_eq!(
        named.description(),
        Some("University of Michigan (NET-UMNET3)")
    );
    assert_eq!(named.field("cc"), Some(&json!("US")));

    let alienvault = at_line("alienvault_feed.txt", 4);
    assert_eq!(
        (alienvault.indicator(), alienvault.itype()),
        ("93.158.211.210", Itype::Ipv4)
    );

    let phishtank = accepted("phishtank_feed.json");
    assert_eq!(
        phishtank[1].1.indicator(),
        "http://paypal.co.uk.5e02dbf260a330e49e6c38459453a4b1.bukafa.com/webscr/89ce715e0bff93e3579d548ecb0c292e\
         /login.php?service=mail&passive=true&rm=false&continue=1#information-login"
    );
    assert_eq!(phishtank[1].1.field("target"), Some(&json!("PayPal")));
    assert!(
        phishtank.iter().all(|(line, _)| *line == 1),
        "the whole array is on line 1"
    );
}

#[test]
fn filters_select_from_real_feeds() {
    let count = |name: &str, query: &[(&str, &str)]| {
        let filter = Filter::from_pairs(query.iter().copied()).unwrap();
        accepted(name)
            .iter()
            .filter(|(_, indicator)| filter.matches(indicator))
            .count()
    };
    // Counted independently with Python's ipaddress (`subnet_of`).
    assert_eq!(count("spamhaus_drop.txt", &[("cidr", "1.0.0.0/8")]), 3);
    assert_eq!(count("spamhaus_drop.txt", &[("cidr", "46.0.0.0/8")]), 7);
    assert_eq!(count("spamhaus_drop.txt", &[("cidr", "46.29.248.0/21")]), 2);
    assert_eq!(count("spamhaus_drop.txt", &[("itype", "ipv4")]), 0);
    assert_eq!(
        count(
            "csirtg_feed.txt",
            &[("itype", "ipv4,cidr"), ("confidence", "5")]
        ),
        25
    );
    // Feed items carry the default confidence 5: below every profile's bar.
    assert_eq!(count("spamhaus_drop.txt", &[("profile", "firewall")]), 0);
    // `grep -v "^#" abuse_ch_urlhaus.txt | awk -F'","' '{print $6}' | grep -c emotet`
    assert_eq!(count("abuse_ch_urlhaus.txt", &[("tags", "emotet")]), 19);
}
