//! Expiry (docs/protocol.md §2.9, §8, §12): an indicator's own `valid_until` (or its aliases),
//! else its `reporttime` plus `--default-validity`'s default for its itype. Feeds, lists, CIFv3's
//! `/feed` and TAXII's objects and manifest leave expired indicators out once they expire; the
//! stream still delivers every one; `sluice stream`'s whole-file outputs drop their lines.

use std::process::Stdio;
use std::time::Duration;

use chrono::{DateTime, SubsecRound, TimeDelta, Utc};
use serde_json::{json, Value};
use tokio::process::Command;

use crate::harness::*;

const TAXII: &str = "application/taxii+json;version=2.1";

/// How long the short-lived indicators hold: long enough to be seen everywhere first.
const SHORT: i64 = 6;

fn rfc3339(time: DateTime<Utc>) -> String {
    time.to_rfc3339_opts(chrono::SecondsFormat::Millis, true)
}

async fn get(node: &Node, path: &str, accept: &str) -> (u16, String) {
    let response = reqwest::Client::new()
        .get(node.http(path))
        .header("accept", accept)
        .bearer_auth(&node.admin_token)
        .send()
        .await
        .unwrap();
    let status = response.status().as_u16();
    (status, response.text().await.unwrap())
}

async fn get_json(node: &Node, path: &str, accept: &str) -> Value {
    let (status, body) = get(node, path, accept).await;
    assert_eq!(status, 200, "{path}: {body}");
    serde_json::from_str(&body).unwrap_or_else(|_| panic!("{path}: not JSON: {body}"))
}

/// The indicators of `GET /v1/indicators`.
async fn feed(node: &Node) -> Vec<String> {
    let answer = get_json(node, "/v1/indicators", "application/json").await;
    answer
        .as_array()
        .unwrap()
        .iter()
        .map(|item| item["indicator"].as_str().unwrap().to_owned())
        .collect()
}

/// The lines of a plain list.
async fn list(node: &Node, name: &str) -> Vec<String> {
    let (status, body) = get(node, &format!("/v1/lists/{name}.txt"), "text/plain").await;
    assert_eq!(status, 200, "{body}");
    body.lines().map(str::to_owned).collect()
}

/// The indicators of CIFv3's `/feed`, every itype.
async fn cif3(node: &Node) -> Vec<String> {
    let answer = get_json(
        node,
        "/feed?itype=ipv4,cidr,fqdn&limit=100",
        "application/vnd.cif.v3+json",
    )
    .await;
    answer["data"]
        .as_array()
        .unwrap()
        .iter()
        .map(|item| item["indicator"].as_str().unwrap().to_owned())
        .collect()
}

/// The `indicator` objects of the `indicators` collection, by name.
async fn taxii_objects(node: &Node) -> Vec<Value> {
    let answer = get_json(node, "/taxii2/api/collections/indicators/objects/", TAXII).await;
    answer["objects"]
        .as_array()
        .cloned()
        .unwrap_or_default()
        .into_iter()
        .filter(|object| object["type"] == "indicator")
        .collect()
}

/// The ids in the `indicators` collection's manifest.
async fn manifest(node: &Node) -> Vec<String> {
    let answer = get_json(node, "/taxii2/api/collections/indicators/manifest/", TAXII).await;
    answer["objects"]
        .as_array()
        .cloned()
        .unwrap_or_default()
        .iter()
        .map(|record| record["id"].as_str().unwrap().to_owned())
        .collect()
}

fn names(objects: &[Value]) -> Vec<&str> {
    objects
        .iter()
        .map(|object| object["name"].as_str().unwrap())
        .collect()
}

fn named<'a>(objects: &'a [Value], name: &str) -> &'a Value {
    objects
        .iter()
        .find(|object| object["name"] == name)
        .unwrap_or_else(|| panic!("no object {name} in {objects:?}"))
}

fn has(list: &[String], wanted: &str) -> bool {
    list.iter().any(|item| item == wanted)
}

fn time(value: &Value) -> DateTime<Utc> {
    value
        .as_str()
        .and_then(|text| text.parse().ok())
        .unwrap_or_else(|| panic!("not a time: {value}"))
}

/// Polls `check` until it holds, for at most [`WAIT`].
async fn eventually<F, Fut>(what: &str, mut check: F)
where
    F: FnMut() -> Fut,
    Fut: std::future::Future<Output = Result<(), String>>,
{
    let deadline = tokio::time::Instant::now() + WAIT;
    loop {
        match check().await {
            Ok(()) => return,
            Err(state) => assert!(
                tokio::time::Instant::now() < deadline,
                "{what} did not happen in time: {state}"
            ),
        }
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
}

const OWN: &str = "185.200.0.1";
const DEFAULTED: &str = "185.200.1.0/24";
const OPEN: &str = "stays.example.net";
const STANDARD: &str = "185.200.0.2";
const ARRIVED_EXPIRED: &str = "185.200.0.3";
const OPEN_URL: &str = "http://stays.example.net/x";

#[tokio::test]
async fn expired_indicators_leave_feeds_lists_and_taxii_but_not_the_stream() {
    let node = Node::start(NodeOptions {
        args: [
            "--no-correlator",
            "--feed-rate",
            "0",
            "--taxii-rate",
            "0",
            "--default-validity",
            format!("cidr={SHORT}s,fqdn=none").as_str(),
        ]
        .map(String::from)
        .to_vec(),
        ..NodeOptions::default()
    })
    .await;
    let mut stream = ws_connect(
        &node.ws("/v1/stream?cursor=earliest"),
        Some(&node.admin_token),
    )
    .await
    .unwrap();
    assert_eq!(ws_frame(&mut stream).await["type"], "hello");

    // Whole milliseconds, as written below.
    let now = Utc::now().trunc_subsecs(3);
    let until = now + TimeDelta::seconds(SHORT);
    let high = |indicator: &str| json!({"indicator": indicator, "confidence": 9, "tags": "c2"});
    let mut own = high(OWN);
    own["reporttime"] = json!(rfc3339(now));
    own["valid_until"] = json!(rfc3339(until));
    let mut arrived_expired = high(ARRIVED_EXPIRED);
    arrived_expired["reporttime"] = json!(rfc3339(now - TimeDelta::days(2)));
    arrived_expired["expires"] = json!(rfc3339(now - TimeDelta::days(1)));
    node.publish_all(&[
        own,
        high(DEFAULTED),
        high(OPEN),
        high(STANDARD),
        arrived_expired,
    ])
    .await;

    // The stream delivers what arrives, the indicator that arrived expired included, with
    // its `valid_until` in the data.
    let mut delivered = Vec::new();
    while delivered.len() < 5 {
        let frame = ws_frame(&mut stream).await;
        assert_eq!(frame["type"], "indicator", "{frame}");
        delivered.push(frame["data"].clone());
    }
    let in_stream: Vec<&str> = delivered
        .iter()
        .map(|data| data["indicator"].as_str().unwrap())
        .collect();
    assert_eq!(in_stream, [OWN, DEFAULTED, OPEN, STANDARD, ARRIVED_EXPIRED]);
    assert_eq!(time(&delivered[0]["valid_until"]), until);
    assert!(
        delivered[1].get("valid_until").is_none(),
        "the default is not written into the indicator: {}",
        delivered[1]
    );
    assert_eq!(
        time(&delivered[4]["valid_until"]),
        now - TimeDelta::days(1),
        "`expires` is stored as `valid_until`"
    );
    assert!(delivered[4].get("expires").is_none());

    // Before they expire: everywhere, but the one that arrived expired nowhere.
    let before = feed(&node).await;
    for wanted in [OWN, DEFAULTED, OPEN, STANDARD] {
        assert!(has(&before, wanted), "{wanted} not in the feed: {before:?}");
    }
    assert!(!has(&before, ARRIVED_EXPIRED), "{before:?}");
    let firewall = list(&node, "firewall").await;
    assert_eq!(firewall, [OWN, STANDARD, DEFAULTED], "sorted");
    assert_eq!(list(&node, "sinkhole").await, [OPEN]);
    let cif = cif3(&node).await;
    for wanted in [OWN, DEFAULTED, OPEN, STANDARD] {
        assert!(has(&cif, wanted), "{wanted} not in /feed: {cif:?}");
    }
    assert!(!has(&cif, ARRIVED_EXPIRED), "{cif:?}");

    // STIX objects carry the effective expiry as `valid_until`.
    let objects = taxii_objects(&node).await;
    let mut shown = names(&objects);
    shown.sort_unstable();
    assert_eq!(shown, [OWN, STANDARD, DEFAULTED, OPEN], "{objects:?}");
    let valid_until = |name: &str| time(&named(&objects, name)["valid_until"]);
    assert_eq!(valid_until(OWN), until, "its own");
    // `modified` (the reporttime) is cut to the millisecond and `valid_until` rounded up.
    let lasts = |name: &str| valid_until(name) - time(&named(&objects, name)["modified"]);
    let about = |lasted: TimeDelta, expected: TimeDelta| {
        lasted >= expected && lasted <= expected + TimeDelta::milliseconds(2)
    };
    assert!(
        about(lasts(DEFAULTED), TimeDelta::seconds(SHORT)),
        "reporttime + the flag's default for cidr: {}",
        lasts(DEFAULTED)
    );
    assert!(
        about(lasts(STANDARD), TimeDelta::days(30)),
        "reporttime + the standard default for ipv4: {}",
        lasts(STANDARD)
    );
    assert!(
        named(&objects, OPEN).get("valid_until").is_none(),
        "fqdn=none: open-ended"
    );
    let own_id = named(&objects, OWN)["id"].as_str().unwrap().to_owned();
    assert!(manifest(&node).await.contains(&own_id));

    // Once they expire they are gone from each; the others stay.
    eventually("expiry from the feed", || async {
        let now = feed(&node).await;
        match has(&now, OWN) || has(&now, DEFAULTED) {
            true => Err(format!("{now:?}")),
            false => Ok(()),
        }
    })
    .await;
    assert!(Utc::now() >= until, "gone before its valid_until ({until})");
    let after = feed(&node).await;
    assert!(
        has(&after, OPEN) && has(&after, STANDARD),
        "the others stay: {after:?}"
    );
    assert_eq!(list(&node, "firewall").await, [STANDARD]);
    assert_eq!(list(&node, "sinkhole").await, [OPEN]);
    let cif = cif3(&node).await;
    assert!(
        !has(&cif, OWN) && !has(&cif, DEFAULTED) && has(&cif, OPEN) && has(&cif, STANDARD),
        "{cif:?}"
    );
    let objects = taxii_objects(&node).await;
    let mut shown = names(&objects);
    shown.sort_unstable();
    assert_eq!(shown, [STANDARD, OPEN], "{objects:?}");
    let ids = manifest(&node).await;
    assert_eq!(ids.len(), 2, "{ids:?}");
    assert!(!ids.contains(&own_id), "{ids:?}");

    // Asked for by id, an expired object is still answered: its valid_until is in the past.
    let by_id = get_json(
        &node,
        &format!("/taxii2/api/collections/indicators/objects/{own_id}/"),
        TAXII,
    )
    .await;
    let object = &by_id["objects"][0];
    assert_eq!(object["name"], OWN, "{by_id}");
    assert!(time(&object["valid_until"]) <= Utc::now(), "{object}");
}

#[tokio::test]
async fn bad_expiries_are_refused_naming_the_field() {
    let node = Node::start(NodeOptions {
        args: vec!["--no-correlator".into()],
        ..NodeOptions::default()
    })
    .await;
    let now = Utc::now().trunc_subsecs(3);
    let (status, answer) = node
        .publish(
            &node.admin_token,
            &json!([
                {"indicator": ip(1), "reporttime": rfc3339(now), "valid_until": rfc3339(now - TimeDelta::seconds(1))},
                {"indicator": ip(2), "valid_until": "next week"},
                {"indicator": ip(3), "expires": "2001-01-01T00:00:00Z"},
                {"indicator": ip(4), "ttl": 0},
                {"indicator": ip(5), "ttl": "forever"},
                {"indicator": ip(6), "expires": rfc3339(now + TimeDelta::days(1)), "ttl": 60},
                {"indicator": ip(7), "ttl": "2h"},
            ]),
        )
        .await;
    assert_eq!(status, 202, "{answer}");
    assert_eq!(answer["accepted"], 1, "{answer}");
    let errors: Vec<&str> = answer["rejected"]
        .as_array()
        .unwrap()
        .iter()
        .map(|item| item["error"].as_str().unwrap())
        .collect();
    let expected = [
        "valid_until: ",
        "valid_until: `next week` is not a time",
        "expires: 2001-01-01T00:00:00Z is not after the reporttime",
        "ttl: must be more than zero",
        "ttl: `forever` is not a duration",
        "ttl: `expires` is given too",
    ];
    assert_eq!(errors.len(), expected.len(), "{answer}");
    for (error, start) in errors.iter().zip(expected) {
        assert!(error.starts_with(start), "{error:?} should start {start:?}");
    }
    assert!(
        errors[0].contains("is not after the reporttime"),
        "{errors:?}"
    );
    let stored = get_json(&node, "/v1/indicators", "application/json").await;
    let stored = &stored[0];
    assert_eq!(stored["indicator"], ip(7));
    assert_eq!(
        time(&stored["valid_until"]) - time(&stored["reporttime"]),
        TimeDelta::hours(2),
        "ttl is counted from the reporttime: {stored}"
    );
}

#[tokio::test]
async fn a_bad_default_validity_exits_64_with_one_line() {
    let dir = tempfile::tempdir().unwrap();
    for (command, bad, says) in [
        ("up", "ipv5=30d", "unknown itype `ipv5`"),
        ("up", "ipv4=0s", "is zero"),
        ("up", "ipv4=soon", "is not a duration"),
        ("up", "ipv4", "is not ITYPE=DURATION"),
        ("up", "ipv4=400d", "more than a year"),
        ("stream", "url=", "is not a duration"),
    ] {
        let output = Command::new(sluice_binary())
            .args([command, "--default-validity", bad])
            .env("SLUICE_DATA_DIR", dir.path())
            .env("SLUICE_TOKEN", "unused")
            .env_remove("SLUICE_ADMIN_TOKEN")
            .stdin(Stdio::null())
            .output();
        let output = tokio::time::timeout(WAIT, output).await.unwrap().unwrap();
        let stderr = String::from_utf8_lossy(&output.stderr);
        assert_eq!(output.status.code(), Some(64), "{command} {bad}: {stderr}");
        assert_eq!(stderr.lines().count(), 1, "{command} {bad}: {stderr}");
        assert!(
            stderr.contains("--default-validity") && stderr.contains(says),
            "{command} {bad}: {stderr}"
        );
    }
}

/// `sluice stream`'s whole-file outputs drop a line once it expires: by the indicator's own
/// `valid_until`, or by `--default-validity` of its own; a report that arrives expired adds
/// nothing, and one without an expiry stays.
#[tokio::test]
async fn whole_file_outputs_drop_expired_lines() {
    let node = Node::start(NodeOptions {
        args: vec!["--no-correlator".into()],
        ..NodeOptions::default()
    })
    .await;
    let dir = tempfile::tempdir().unwrap();
    let intel = dir.path().join("sluice.intel");
    let validity = format!("none,fqdn={SHORT}s");
    let consumer = Consumer::start(
        &node,
        &[
            "--format",
            "zeek",
            "--output",
            intel.to_str().unwrap(),
            "--output-interval",
            "100ms",
            "--cursor",
            "earliest",
            "--default-validity",
            &validity,
        ],
    );

    let now = Utc::now().trunc_subsecs(3);
    let until = now + TimeDelta::seconds(SHORT);
    node.publish_all(&[
        json!({"indicator": OWN, "tags": "c2", "reporttime": rfc3339(now), "valid_until": rfc3339(until)}),
        json!({"indicator": "expiring.example.net", "tags": "c2"}),
        json!({"indicator": STANDARD, "tags": "c2"}),
        json!({"indicator": ARRIVED_EXPIRED, "tags": "c2",
               "reporttime": rfc3339(now - TimeDelta::days(2)), "ttl": "1d"}),
        json!({"indicator": OPEN_URL, "tags": "c2"}),
    ])
    .await;
    let read = || std::fs::read_to_string(&intel).unwrap_or_default();
    eventually("the whole file", || async {
        let text = read();
        match text.contains("stays.example.net/x") {
            true => Ok(()),
            false => Err(text),
        }
    })
    .await;
    let text = read();
    for wanted in [OWN, "expiring.example.net", STANDARD] {
        assert!(text.contains(wanted), "{wanted} missing: {text}");
    }
    assert!(!text.contains(ARRIVED_EXPIRED), "arrived expired: {text}");

    eventually("expiry from the whole file", || async {
        let text = read();
        match text.contains(OWN) || text.contains("expiring.example.net") {
            true => Err(text),
            false => Ok(()),
        }
    })
    .await;
    assert!(Utc::now() >= until, "gone before its valid_until");
    let text = read();
    assert!(
        text.contains(STANDARD) && text.contains("stays.example.net/x"),
        "no expiry, so they stay: {text}"
    );
    assert!(text.contains(&format!("{STANDARD}\tIntel::ADDR")), "{text}");
    drop(consumer);
}
