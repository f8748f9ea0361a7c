//! The pull endpoints for devices and CIFv3 clients: plain lists (`GET /v1/lists/{profile}.txt`:
//! contents per profile, whitelist subtraction, order, `ETag`/`304`, limits, credentials, plans)
//! and CIFv3's `GET /feed` asked exactly as Elastic's `ti_cif3` integration asks it.

use std::time::Duration;

use reqwest::header::HeaderMap;
use reqwest::RequestBuilder;
use serde_json::{json, Value};

use crate::harness::*;

/// What a client sees of one answer.
struct Answer {
    status: u16,
    headers: HeaderMap,
    body: String,
}

impl Answer {
    fn header(&self, name: &str) -> Option<&str> {
        self.headers
            .get(name)
            .map(|value| value.to_str().expect("a text header"))
    }

    fn json(&self) -> Value {
        serde_json::from_str(&self.body)
            .unwrap_or_else(|error| panic!("not JSON ({error}): {}", self.body))
    }
}

async fn send(request: RequestBuilder) -> Answer {
    let response = request.send().await.unwrap();
    Answer {
        status: response.status().as_u16(),
        headers: response.headers().clone(),
        body: response.text().await.unwrap(),
    }
}

fn get(node: &Node, path: &str) -> RequestBuilder {
    reqwest::Client::new().get(node.http(path))
}

/// `GET path` with a bearer token.
async fn fetch(node: &Node, path: &str, token: &str) -> Answer {
    send(get(node, path).bearer_auth(token)).await
}

/// A node whose accounts may ask for feeds as often as they like (the tests of the rate set
/// their own).
async fn node() -> Node {
    Node::start(NodeOptions {
        args: ["--no-correlator", "--feed-rate", "0"]
            .map(String::from)
            .to_vec(),
        ..NodeOptions::default()
    })
    .await
}

const SHA256: &str = "e3b0c44298fc1c149afbf4c8996fb92427ae41e4649b934ca495991b7852b855";

#[tokio::test]
async fn lists_hold_each_profiles_indicators_sorted_with_the_whitelist_subtracted() {
    let node = node().await;
    node.publish_all(&[
        json!({"indicator": "185.220.101.7", "tags": "scanner", "confidence": 9}),
        json!({"indicator": "2a01:4f8::1", "tags": "botnet", "confidence": 9}),
        json!({"indicator": "185.220.102.0/24", "tags": "scanner", "confidence": 8}),
        json!({"indicator": "185.220.103.9", "tags": "scanner", "confidence": 7}),
        json!({"indicator": "185.220.104.0/24", "tags": "whitelist"}),
        json!({"indicator": "185.220.104.5", "tags": "scanner", "confidence": 9}),
        json!({"indicator": "example.org", "tags": "whitelist"}),
        json!({"indicator": "cdn.example.org", "tags": "c2", "confidence": 9}),
        json!({"indicator": "evil.example.net", "tags": "c2", "confidence": 9}),
        json!({"indicator": "http://evil.example.net/login", "tags": "phishing", "confidence": 7}),
        json!({"indicator": SHA256, "tags": "malware", "confidence": 8}),
        json!({"indicator": "bad.example.com", "tags": "c2", "confidence": 5}),
        json!({"indicator": "185.220.105.1", "tags": "scanner", "confidence": 9, "tlp": "red"}),
        // Reported again, lower: still one line.
        json!({"indicator": "185.220.101.7", "tags": "scanner", "confidence": 8}),
    ])
    .await;
    let admin = &node.admin_token;

    let firewall = fetch(&node, "/v1/lists/firewall.txt", admin).await;
    assert_eq!(firewall.status, 200, "{}", firewall.body);
    assert_eq!(
        firewall.body, "185.220.101.7\n185.220.102.0/24\n185.220.105.1\n2a01:4f8::1\n",
        "addresses and networks with confidence ≥ 8, sorted, the whitelisted one gone"
    );
    assert_eq!(
        firewall.header("content-type"),
        Some("text/plain; charset=utf-8")
    );
    assert_eq!(firewall.header("cache-control"), Some("no-cache"));
    assert_eq!(
        firewall.header("content-length"),
        Some(firewall.body.len().to_string().as_str())
    );
    let etag = firewall.header("etag").expect("an ETag");
    assert!(
        etag.len() == 34 && etag.starts_with('"') && etag.ends_with('"'),
        "{etag}"
    );

    let sinkhole = fetch(&node, "/v1/lists/sinkhole.txt", admin).await;
    assert_eq!(sinkhole.status, 200, "{}", sinkhole.body);
    assert_eq!(
        sinkhole.body, "evil.example.net\n",
        "domains with confidence ≥ 8; cdn.example.org is under a whitelisted domain"
    );

    let zeek = fetch(&node, "/v1/lists/zeek.txt", admin).await;
    assert_eq!(zeek.status, 200, "{}", zeek.body);
    assert_eq!(
        zeek.body,
        format!(
            "185.220.101.7\n185.220.103.9\n185.220.105.1\n2a01:4f8::1\n{SHA256}\n\
             evil.example.net\nhttp://evil.example.net/login\n"
        ),
        "what Zeek matches with confidence ≥ 7, no networks"
    );

    // Stream filters narrow a list.
    for (query, expected) in [
        ("itype=cidr", "185.220.102.0/24\n"),
        ("tags=botnet", "2a01:4f8::1\n"),
        (
            "confidence=9",
            "185.220.101.7\n185.220.105.1\n2a01:4f8::1\n",
        ),
        (
            "cidr=185.220.0.0/16&tlp=amber",
            "185.220.101.7\n185.220.102.0/24\n",
        ),
        ("itype=fqdn", ""),
    ] {
        let narrowed = fetch(&node, &format!("/v1/lists/firewall.txt?{query}"), admin).await;
        assert_eq!(narrowed.status, 200, "{query}: {}", narrowed.body);
        assert_eq!(narrowed.body, expected, "{query}");
    }

    // The credentials an EDL fetcher can give: the URL, or Basic with the token as password;
    // and csirtg's `Token token=`. A hobby plan sees up to amber: not the red report.
    node.create_account("edl", "hobby").await;
    let token = node.create_token("edl", "read").await;
    let amber = "185.220.101.7\n185.220.102.0/24\n2a01:4f8::1\n";
    let by_url = send(get(
        &node,
        &format!("/v1/lists/firewall.txt?access_token={token}"),
    ))
    .await;
    assert_eq!((by_url.status, by_url.body.as_str()), (200, amber));
    let by_basic = send(get(&node, "/v1/lists/firewall.txt").basic_auth("edl", Some(&token))).await;
    assert_eq!((by_basic.status, by_basic.body.as_str()), (200, amber));
    let by_csirtg = send(
        get(&node, "/v1/lists/firewall.txt")
            .header("authorization", format!("Token token={token}")),
    )
    .await;
    assert_eq!((by_csirtg.status, by_csirtg.body.as_str()), (200, amber));
}

#[tokio::test]
async fn a_list_is_304_while_unchanged_and_has_a_new_etag_once_it_changes() {
    let node = node().await;
    node.publish_all(&[
        json!({"indicator": "185.220.101.7", "tags": "scanner", "confidence": 9}),
        json!({"indicator": "185.220.102.0/24", "tags": "scanner", "confidence": 8}),
    ])
    .await;
    let token = node.admin_token.clone();
    let path = "/v1/lists/firewall.txt";
    let conditional = |tag: &str| {
        let request = get(&node, path)
            .bearer_auth(&token)
            .header("if-none-match", tag);
        send(request)
    };

    let first = fetch(&node, path, &token).await;
    assert_eq!(first.status, 200, "{}", first.body);
    let etag = first.header("etag").expect("an ETag").to_owned();

    let unchanged = conditional(&etag).await;
    assert_eq!(unchanged.status, 304, "{}", unchanged.body);
    assert_eq!(unchanged.body, "", "a 304 has no body");
    assert_eq!(unchanged.header("etag"), Some(etag.as_str()));
    assert_eq!(unchanged.header("cache-control"), Some("no-cache"));
    for tag in [
        format!("W/{etag}"),
        format!("\"elsewhere\", {etag}"),
        "*".into(),
    ] {
        assert_eq!(conditional(&tag).await.status, 304, "{tag}");
    }
    let other = conditional("\"elsewhere\"").await;
    assert_eq!(
        (other.status, other.body.as_str()),
        (200, first.body.as_str())
    );

    // A listed indicator reported again, at another confidence: the same lines, the same
    // bytes (the order is the indicators', not the reports'), still 304.
    node.publish_all(&[
        json!({"indicator": "185.220.101.7", "tags": "scanner", "confidence": 10}),
        json!({"indicator": "185.220.102.0/24", "tags": "scanner", "confidence": 9}),
    ])
    .await;
    assert_eq!(conditional(&etag).await.status, 304);

    // A new indicator: a new body, a new ETag, and the old one no longer matches.
    node.publish_all(&[json!({"indicator": "185.220.100.1", "tags": "scanner", "confidence": 9})])
        .await;
    let changed = conditional(&etag).await;
    assert_eq!(changed.status, 200, "{}", changed.body);
    assert_eq!(
        changed.body,
        "185.220.100.1\n185.220.101.7\n185.220.102.0/24\n"
    );
    let new_etag = changed.header("etag").expect("an ETag").to_owned();
    assert_ne!(new_etag, etag);
    assert_eq!(conditional(&new_etag).await.status, 304);
}

/// A `304` costs the node a scan like any list, so it counts against the account's feed rate.
#[tokio::test]
async fn a_304_counts_against_the_feed_rate() {
    let node = Node::start(NodeOptions {
        args: ["--no-correlator", "--feed-rate", "1", "--feed-burst", "2"]
            .map(String::from)
            .to_vec(),
        ..NodeOptions::default()
    })
    .await;
    node.publish_all(&[json!({"indicator": "185.220.101.7", "confidence": 9})])
        .await;
    let path = "/v1/lists/firewall.txt";
    let first = fetch(&node, path, &node.admin_token).await;
    assert_eq!(first.status, 200, "{}", first.body);
    let etag = first.header("etag").expect("an ETag").to_owned();
    let conditional = || {
        send(
            get(&node, path)
                .bearer_auth(&node.admin_token)
                .header("if-none-match", etag.as_str()),
        )
    };
    assert_eq!(conditional().await.status, 304);
    let refused = conditional().await;
    assert_eq!(refused.status, 429, "the burst of two is spent");
    assert!(refused.header("retry-after").is_some());
    assert!(refused.json()["error"]
        .as_str()
        .is_some_and(|message| message.contains("more often than 1 a second")));
    tokio::time::sleep(Duration::from_millis(1100)).await;
    assert_eq!(conditional().await.status, 304, "admitted again");
}

#[tokio::test]
async fn lists_refuse_unknown_names_bad_filters_and_missing_tokens_and_a_free_plan_sees_none() {
    let node = node().await;
    node.publish_all(&[json!({"indicator": "185.220.101.7", "confidence": 9})])
        .await;
    let admin = &node.admin_token;

    for name in ["botnet.txt", "firewall", "firewall.csv", "Firewall.txt"] {
        let missing = fetch(&node, &format!("/v1/lists/{name}"), admin).await;
        assert_eq!(missing.status, 404, "{name}: {}", missing.body);
        let message = missing.json()["error"].as_str().unwrap().to_owned();
        for known in ["`firewall.txt`", "`sinkhole.txt`", "`zeek.txt`"] {
            assert!(message.contains(known), "{name}: {message}");
        }
    }

    for (query, says) in [
        ("itype=nope", "itype"),
        ("cursor=now", "unknown filter `cursor`"),
        ("since=60", "unknown filter `since`"),
        ("profile=zeek", "/v1/lists/zeek.txt"),
        ("limit=many", "limit"),
    ] {
        let refused = fetch(&node, &format!("/v1/lists/firewall.txt?{query}"), admin).await;
        assert_eq!(refused.status, 400, "{query}: {}", refused.body);
        let message = refused.json()["error"].as_str().unwrap().to_owned();
        assert!(message.contains(says), "{query}: {message}");
    }

    // The credential comes first: without one, nothing else is looked at.
    for path in ["/v1/lists/firewall.txt", "/v1/lists/botnet.txt?itype=nope"] {
        let anonymous = send(get(&node, path)).await;
        assert_eq!(anonymous.status, 401, "{path}: {}", anonymous.body);
        assert_eq!(anonymous.header("www-authenticate"), Some("Bearer"));
    }
    let bogus = fetch(&node, "/v1/lists/firewall.txt", "slc_bogus").await;
    assert_eq!(bogus.status, 401);

    // The free plan has a replay window of zero: its lists are always empty (an empty body),
    // not refused.
    node.create_account("trial", "free").await;
    let free = node.create_token("trial", "read").await;
    let empty = fetch(&node, "/v1/lists/firewall.txt", &free).await;
    assert_eq!(empty.status, 200, "{}", empty.body);
    assert_eq!(empty.body, "");
    assert_eq!(
        empty.header("etag"),
        Some("\"e3b0c44298fc1c149afbf4c8996fb924\""),
        "the hash of an empty body"
    );
    let admins = fetch(&node, "/v1/lists/firewall.txt", admin).await;
    assert_eq!(
        admins.body, "185.220.101.7\n",
        "the same list on a plan with a window"
    );
}

/// A list is not held to the JSON feed's 10,000: 12,000 addresses are all there; `limit`
/// keeps the newest.
#[tokio::test]
async fn a_large_list_goes_past_the_feeds_maximum_and_limit_keeps_the_newest() {
    let node = node().await;
    let address = |n: usize| json!({"indicator": ip(n), "tags": ["scanner"], "confidence": 9});
    for batch in 0..2 {
        let indicators: Vec<Value> = (batch * 6_000..(batch + 1) * 6_000).map(address).collect();
        node.publish_all(&indicators).await;
    }
    let mut every: Vec<String> = (0..12_000).map(ip).collect();
    every.sort();

    let whole = fetch(&node, "/v1/lists/firewall.txt", &node.admin_token).await;
    assert_eq!(whole.status, 200);
    assert!(whole.body.ends_with('\n'));
    assert_eq!(whole.body.lines().collect::<Vec<_>>(), every);
    let clamped = fetch(
        &node,
        "/v1/lists/firewall.txt?limit=999999999",
        &node.admin_token,
    )
    .await;
    assert_eq!(
        (clamped.status, clamped.body.len()),
        (200, whole.body.len()),
        "a limit above the maximum is the maximum"
    );

    let newest = fetch(&node, "/v1/lists/firewall.txt?limit=100", &node.admin_token).await;
    assert_eq!(newest.status, 200);
    let mut expected: Vec<String> = (11_900..12_000).map(ip).collect();
    expected.sort();
    assert_eq!(newest.body.lines().collect::<Vec<_>>(), expected);
}

/// `GET /feed` as `ti_cif3` sends it (its `httpjson` stream): `Accept`, `User-Agent`,
/// `Authorization: Token token=…` and `itype`, `confidence`, `limit`, `tags`, `reporttime`.
fn ti_cif3(node: &Node, token: &str, itype: &str, reporttime: &str) -> RequestBuilder {
    get(node, "/feed")
        .header("accept", "application/vnd.cif.v3+json")
        .header("user-agent", "elastic-integration/0.1.0")
        .header("authorization", format!("Token token={token}"))
        .query(&[
            ("itype", itype),
            ("confidence", "8"),
            ("limit", "100000"),
            ("tags", "botnet"),
            ("reporttime", reporttime),
        ])
}

/// The indicators of a `/feed` answer, by indicator; the answer must be CIFv3's shape.
fn data(answer: &Answer) -> Vec<Value> {
    assert_eq!(answer.status, 200, "{}", answer.body);
    assert_eq!(answer.header("content-type"), Some("application/json"));
    let body = answer.json();
    let mut keys: Vec<&String> = body.as_object().unwrap().keys().collect();
    keys.sort();
    assert_eq!(keys, ["data", "message"], "{body}");
    assert_eq!(body["message"], "success");
    body["data"].as_array().unwrap().clone()
}

fn names(data: &[Value]) -> Vec<&str> {
    data.iter()
        .map(|item| item["indicator"].as_str().unwrap())
        .collect()
}

/// RFC 3339 in whole seconds, UTC, as `ti_cif3` writes `reporttime` (Go's `time.RFC3339`).
fn rfc3339(time: chrono::DateTime<chrono::Utc>) -> String {
    time.format("%Y-%m-%dT%H:%M:%SZ").to_string()
}

#[tokio::test]
async fn cif3_feed_answers_ti_cif3s_poll_with_cifv3_indicators() {
    let node = node().await;
    node.publish_all(&[
        json!({
            "indicator": "185.220.101.7", "tags": ["botnet", "ssh"], "confidence": 9,
            "tlp": "green", "description": "ssh brute force", "asn": "AS13335", "cc": "de",
            "asn_desc": "example-as", "count": 3, "portlist": 22, "protocol": "tcp",
            "reference": "https://example.net/r/1",
            "firsttime": "2026-11-20T08:00:00Z", "lasttime": "2026-11-21T09:30:00Z",
            "reporttime": "2026-11-21T10:00:00Z",
            // Fixed times: its own expiry keeps it from the default's 30 days after them.
            "valid_until": "2099-01-01T00:00:00Z"
        }),
        json!({"indicator": "185.220.102.0/24", "tags": "botnet", "confidence": 8}),
        json!({"indicator": "185.220.103.9", "tags": "botnet", "confidence": 6}),
        json!({"indicator": "185.220.104.0/24", "tags": "whitelist"}),
        json!({"indicator": "185.220.104.5", "tags": "botnet", "confidence": 9}),
        json!({"indicator": "evil.example.net", "tags": "botnet", "confidence": 9}),
        json!({"indicator": "185.220.105.1", "tags": "phishing", "confidence": 9}),
    ])
    .await;
    let token = &node.admin_token;
    // The first poll looks back `initial_lookback` (120 h by default). Times are compared with
    // when a report reached the log, not with its `reporttime` (2026-11-21 above).
    let first_poll = rfc3339(chrono::Utc::now() - chrono::Duration::hours(120));

    let first = send(ti_cif3(&node, token, "ipv4", &first_poll)).await;
    let items = data(&first);
    assert_eq!(
        names(&items),
        ["185.220.101.7"],
        "ipv4 addresses with confidence ≥ 8 tagged botnet, the whitelisted one gone"
    );
    // Field by field, as ti_cif3's ingest pipeline reads them.
    let item = &items[0];
    assert_eq!(item["indicator"], "185.220.101.7"); // threat.indicator.name, .ip
    assert_eq!(item["itype"], "ipv4"); // threat.indicator.type: ipv4-addr
    assert!(
        item.get("indicator_ipv4_mask").is_none(),
        "an address, not a network"
    );
    assert_eq!(item["tlp"], "green"); // uppercased into threat.indicator.marking.tlp
    assert_eq!(item["provider"], "admin"); // threat.indicator.provider
    assert_eq!(item["confidence"], 9); // a number 0–10: "High"
    assert_eq!(item["tags"], json!(["botnet", "ssh"])); // a list, appended to `tags`
    assert_eq!(item["reporttime"], "2026-11-21T10:00:00Z"); // threat.indicator.modified_at
    assert_eq!(item["firsttime"], "2026-11-20T08:00:00Z"); // threat.indicator.first_seen
    assert_eq!(item["lasttime"], "2026-11-21T09:30:00Z"); // threat.indicator.last_seen
    assert_eq!(item["valid_until"], "2099-01-01T00:00:00Z"); // as stored (§2.1)
    assert_eq!(item["count"], 3); // threat.indicator.sightings
    assert_eq!(item["description"], "ssh brute force"); // threat.indicator.description
    assert_eq!(item["reference"], "https://example.net/r/1"); // threat.indicator.reference
    assert_eq!(item["asn"], 13335); // threat.indicator.as.number, an integer
    assert_eq!(item["asn_desc"], "example-as"); // threat.indicator.as.organization.name
    assert_eq!(item["cc"], "de"); // threat.indicator.geo.country_iso_code
    assert_eq!(item["protocol"], "tcp"); // network.transport
    assert_eq!(item["portlist"], "22"); // cif3.portlist, a string as in CIF
    assert_eq!(item["group"], json!(["everyone"]));
    // cif3.uuid, a key of the integration's latest-indicator transform: stable, the STIX id's.
    assert_eq!(
        format!("indicator--{}", item["uuid"].as_str().unwrap()),
        sluice_stix::indicator_id("admin", "185.220.101.7")
    );

    // Networks, asked for by Sluice's own itype, come in CIF's spelling: the family's itype
    // and the mask (what ti_cif3 turns into threat.indicator.network.cidr).
    let with_networks = send(ti_cif3(&node, token, "ipv4,cidr", &first_poll)).await;
    let items = data(&with_networks);
    assert_eq!(
        names(&items),
        ["185.220.102.0/24", "185.220.101.7"],
        "newest first"
    );
    assert_eq!(items[0]["itype"], "ipv4");
    assert_eq!(items[0]["indicator_ipv4_mask"], 24);
    assert_eq!(
        items[0]["firsttime"], items[0]["reporttime"],
        "sighting times default to the report's"
    );
    assert_eq!(items[0]["lasttime"], items[0]["reporttime"]);

    // The next poll asks from the time of the previous one, in whole seconds: only what came
    // since, and the whitelist published before still subtracts.
    let since = chrono::Utc::now() + chrono::Duration::seconds(1);
    let second_poll = rfc3339(since);
    let wait = since.timestamp_millis() / 1000 * 1000 - chrono::Utc::now().timestamp_millis();
    tokio::time::sleep(Duration::from_millis(wait.max(0) as u64 + 100)).await;
    node.publish_all(&[
        json!({"indicator": "185.220.104.77", "tags": "botnet", "confidence": 9}),
        json!({"indicator": "185.220.106.1", "tags": "botnet", "confidence": 9}),
    ])
    .await;
    let second = send(ti_cif3(&node, token, "ipv4", &second_poll)).await;
    assert_eq!(
        names(&data(&second)),
        ["185.220.106.1"],
        "185.220.104.77 is covered by the earlier whitelist entry"
    );
    let again = send(ti_cif3(&node, token, "ipv4", &first_poll)).await;
    assert_eq!(names(&data(&again)), ["185.220.106.1", "185.220.101.7"]);
}

#[tokio::test]
async fn cif3_feed_errors_are_cifs_and_the_keys_cif_clients_send_are_taken() {
    let node = node().await;
    node.publish_all(&[json!({"indicator": "185.220.101.7", "tags": "botnet", "confidence": 9})])
        .await;
    let token = &node.admin_token;
    let cif = |query: &'static str, token: Option<&str>| {
        let mut request =
            get(&node, &format!("/feed?{query}")).header("accept", "application/vnd.cif.v3+json");
        if let Some(token) = token {
            request = request.header("authorization", format!("Token token={token}"));
        }
        send(request)
    };
    /// CIF's error: `{"message": …, "data": []}`.
    fn message(answer: &Answer) -> String {
        let body = answer.json();
        assert_eq!(body["data"], json!([]), "{body}");
        assert!(body.get("error").is_none(), "{body}");
        body["message"].as_str().unwrap().to_owned()
    }

    let anonymous = cif("itype=ipv4", None).await;
    assert_eq!(anonymous.status, 401);
    assert_eq!(anonymous.header("www-authenticate"), Some("Bearer"));
    assert!(!message(&anonymous).is_empty());
    for (query, says) in [
        ("itype=ssdeep", "itype"),
        ("itype=ipv4&cc=de", "unknown filter `cc`"),
        ("itype=ipv4&hours=0", "hours"),
        ("itype=ipv4&reporttime=yesterday", "reporttime"),
        ("itype=ipv4&limit=lots", "limit"),
    ] {
        let refused = cif(query, Some(token)).await;
        assert_eq!(refused.status, 400, "{query}: {}", refused.body);
        let said = message(&refused);
        assert!(said.contains(says), "{query}: {said}");
    }

    // What CIF clients send that means nothing here is taken and ignored; empty values are
    // none; `hours` is a window.
    let taken = cif(
        concat!(
            "itype=ipv4&nolog=1&group=everyone&groups=everyone&sort=reporttime&feed=1",
            "&days=&limit=&hours=1"
        ),
        Some(token),
    )
    .await;
    assert_eq!(names(&data(&taken)), ["185.220.101.7"]);

    // A free plan's window is zero.
    node.create_account("trial", "free").await;
    let free = node.create_token("trial", "read").await;
    let empty = cif("itype=ipv4", Some(&free)).await;
    assert!(data(&empty).is_empty());
}

#[tokio::test]
async fn cif3_feed_gives_a_re_report_since_the_last_poll_even_below_an_older_one() {
    let node = node().await;
    let token = &node.admin_token;
    node.publish_all(&[json!({"indicator": "185.220.106.7", "tags": "botnet", "confidence": 9})])
        .await;
    // ti_cif3 polls in whole seconds: the next poll starts after the first report's second.
    tokio::time::sleep(std::time::Duration::from_millis(1_100)).await;
    let last_poll = rfc3339(chrono::Utc::now());
    tokio::time::sleep(std::time::Duration::from_millis(1_100)).await;
    node.publish_all(&[json!({"indicator": "185.220.106.7", "tags": "botnet", "confidence": 8})])
        .await;
    let items = data(&send(ti_cif3(&node, token, "ipv4", &last_poll)).await);
    assert_eq!(names(&items), ["185.220.106.7"], "the re-report is news");
    assert_eq!(items[0]["confidence"], 8.0);
}
