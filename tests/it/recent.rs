//! Recent feeds (`GET /v1/indicators`, CIF's `GET /indicators` and `/ping`): whitelist
//! subtraction, deduplication, order, formats, `Content-Length`, and the plan's limits.

use std::time::Duration;

use serde_json::{json, Value};

use crate::harness::*;

async fn get(
    node: &Node,
    path: &str,
    authorization: &str,
    accept: &str,
) -> (u16, Option<String>, String) {
    let response = reqwest::Client::new()
        .get(node.http(path))
        .header("authorization", authorization)
        .header("accept", accept)
        .send()
        .await
        .unwrap();
    let status = response.status().as_u16();
    let length = response
        .headers()
        .get("content-length")
        .map(|value| value.to_str().unwrap().to_owned());
    (status, length, response.text().await.unwrap())
}

fn names(body: &str) -> Vec<String> {
    serde_json::from_str::<Vec<Value>>(body)
        .unwrap()
        .iter()
        .map(|item| item["indicator"].as_str().unwrap().to_owned())
        .collect()
}

#[tokio::test]
async fn feeds_subtract_the_whitelist_deduplicate_and_keep_the_plan() {
    let node = Node::start(NodeOptions {
        args: vec!["--no-correlator".into()],
        ..NodeOptions::default()
    })
    .await;
    node.publish_all(&[
        json!({"indicator": "185.220.101.7", "tags": "scanner", "confidence": 5}),
        json!({"indicator": "185.220.103.0/24", "tags": "whitelist"}),
        json!({"indicator": "185.220.103.5", "tags": "scanner"}),
        json!({"indicator": "example.com", "tags": "whitelist"}),
        json!({"indicator": "www.example.com", "tags": "c2"}),
        json!({"indicator": "evil.example.net", "tags": "c2", "description": "=HYPERLINK(\"http://x\")"}),
        json!({"indicator": "185.220.102.9", "tags": "scanner", "tlp": "red"}),
        json!({"indicator": "185.220.101.7", "tags": "scanner", "confidence": 8}),
    ])
    .await;
    let admin = format!("Bearer {}", node.admin_token);

    let (status, length, body) = get(&node, "/v1/indicators", &admin, "application/json").await;
    assert_eq!(status, 200, "{body}");
    assert_eq!(
        length,
        Some(body.len().to_string()),
        "Content-Length, never chunked"
    );
    assert_eq!(
        names(&body),
        ["185.220.101.7", "185.220.102.9", "evil.example.net"],
        "newest first; whitelisted and covered ones gone"
    );
    let items: Vec<Value> = serde_json::from_str(&body).unwrap();
    assert_eq!(items[0]["confidence"], 8, "the highest confidence is kept");

    let (_, _, body) = get(
        &node,
        "/v1/indicators?itype=ipv4&limit=1",
        &admin,
        "application/json",
    )
    .await;
    assert_eq!(names(&body), ["185.220.101.7"]);
    let (_, _, body) = get(
        &node,
        "/v1/indicators?tags=whitelist",
        &admin,
        "application/json",
    )
    .await;
    assert_eq!(
        names(&body),
        ["example.com", "185.220.103.0/24"],
        "asking for the whitelist shows it"
    );

    // CSV, hostile fields defused; CIF's bare token and text/plain on /indicators.
    let (status, length, csv) = get(
        &node,
        "/indicators?itype=fqdn",
        &node.admin_token,
        "text/plain",
    )
    .await;
    assert_eq!(status, 200, "{csv}");
    assert_eq!(length, Some(csv.len().to_string()));
    let lines: Vec<&str> = csv.lines().collect();
    assert!(
        lines[0].starts_with("indicator,itype,provider,tags"),
        "{csv}"
    );
    assert_eq!(lines.len(), 2, "{csv}");
    assert!(
        lines[1].ends_with(",\"'=HYPERLINK(\"\"http://x\"\")\""),
        "{csv}"
    );

    // A hobby account sees up to amber: the red report is not in its feed.
    node.create_account("reader", "hobby").await;
    let token = node.create_token("reader", "read").await;
    let (_, _, body) = get(
        &node,
        "/v1/indicators",
        &format!("Bearer {token}"),
        "application/json",
    )
    .await;
    assert_eq!(names(&body), ["185.220.101.7", "evil.example.net"]);

    let (status, _, _) = get(
        &node,
        "/v1/indicators",
        "Bearer slc_bogus",
        "application/json",
    )
    .await;
    assert_eq!(status, 401);
    let (status, _, body) = get(
        &node,
        "/v1/indicators?since=yesterday",
        &admin,
        "application/json",
    )
    .await;
    assert_eq!(status, 400, "{body}");

    let ping: Value = reqwest::get(node.http("/ping"))
        .await
        .unwrap()
        .json()
        .await
        .unwrap();
    assert_eq!(ping["status"], "success");
    assert!(ping["data"].as_i64().unwrap() > 1_700_000_000);
}

/// One feed request, as a client sees a refusal: (status, `Retry-After`, body).
async fn feed_request(node: &Node, path: &str, token: &str) -> (u16, Option<String>, String) {
    let response = reqwest::Client::new()
        .get(node.http(path))
        .bearer_auth(token)
        .send()
        .await
        .unwrap();
    let status = response.status().as_u16();
    let retry_after = response
        .headers()
        .get("retry-after")
        .map(|value| value.to_str().unwrap().to_owned());
    (status, retry_after, response.text().await.unwrap())
}

/// The value of a `sluice_feed_throttled_total` series (0 when absent).
async fn throttled(node: &Node, reason: &str) -> u64 {
    let series = format!("sluice_feed_throttled_total{{reason=\"{reason}\"}} ");
    node.metrics()
        .await
        .lines()
        .find_map(|line| line.strip_prefix(series.as_str()))
        .map_or(0, |value| value.trim().parse().unwrap())
}

/// A node runs `--max-concurrent-feeds` scans at once: on a large log, feeds arriving together
/// beyond that wait briefly, then get 429 with `Retry-After: 1` and a JSON error saying what to
/// do, while the others are answered in full.
#[tokio::test]
async fn feeds_beyond_the_nodes_scan_permits_get_429_with_retry_after() {
    let node = Node::start(NodeOptions {
        args: [
            "--no-correlator",
            "--max-concurrent-feeds",
            "1",
            "--feed-rate",
            "0",
        ]
        .map(String::from)
        .to_vec(),
        ..NodeOptions::default()
    })
    .await;
    // 60,000 distinct indicators: every feed scans all of them (they are all in its first
    // span) and keeps each.
    for batch in 0..6 {
        let indicators: Vec<Value> = (batch * 10_000..(batch + 1) * 10_000)
            .map(indicator)
            .collect();
        node.publish_all(&indicators).await;
    }
    let requests =
        (0..16).map(|_| feed_request(&node, "/v1/indicators?limit=10000", &node.admin_token));
    let answers = futures::future::join_all(requests).await;

    let mut statuses: Vec<u16> = answers.iter().map(|(status, _, _)| *status).collect();
    statuses.sort();
    assert!(statuses.contains(&200), "{statuses:?}");
    assert!(statuses.contains(&429), "{statuses:?}");
    for (status, retry_after, body) in &answers {
        match status {
            200 => assert_eq!(
                serde_json::from_str::<Vec<Value>>(body).unwrap().len(),
                10_000
            ),
            429 => {
                assert_eq!(retry_after.as_deref(), Some("1"), "{body}");
                let error: Value = serde_json::from_str(body).unwrap();
                let message = error["error"].as_str().unwrap();
                assert!(
                    message.contains("busy") && message.contains("retry"),
                    "{message}"
                );
            }
            other => panic!("unexpected status {other}: {body}"),
        }
    }
    let refused = statuses.iter().filter(|status| **status == 429).count() as u64;
    assert_eq!(throttled(&node, "busy").await, refused);
    assert_eq!(throttled(&node, "rate").await, 0);

    // Once the others are done, a feed gets its turn again.
    let (status, _, body) = feed_request(&node, "/v1/indicators?limit=1", &node.admin_token).await;
    assert_eq!(status, 200, "{body}");
}

/// Each account may ask for feeds `--feed-rate` times a second after a burst of `--feed-burst`
/// (1 and 5 by default): beyond, 429 with `Retry-After`; another account is not held up.
#[tokio::test]
async fn an_account_over_its_feed_rate_gets_429_and_others_do_not() {
    let node = Node::start(NodeOptions {
        args: vec!["--no-correlator".into()],
        ..NodeOptions::default()
    })
    .await;
    node.create_account("poller", "pro").await;
    node.create_account("neighbour", "pro").await;
    let poller = node.create_token("poller", "read").await;
    let neighbour = node.create_token("neighbour", "read").await;
    node.publish_all(&[indicator(1)]).await;

    let mut answers = Vec::new();
    for _ in 0..8 {
        answers.push(feed_request(&node, "/v1/indicators", &poller).await);
    }
    for (status, _, body) in &answers[..5] {
        assert_eq!(*status, 200, "the burst is admitted: {body}");
    }
    let refused: Vec<_> = answers
        .iter()
        .filter(|(status, _, _)| *status == 429)
        .collect();
    assert!(!refused.is_empty(), "eight at once, never refused");
    for (_, retry_after, body) in &refused {
        let seconds: u64 = retry_after
            .as_deref()
            .expect("Retry-After")
            .parse()
            .unwrap();
        assert!((1..=2).contains(&seconds), "{seconds}");
        let error: Value = serde_json::from_str(body).unwrap();
        let message = error["error"].as_str().unwrap();
        assert!(message.contains("more often than 1 a second"), "{message}");
    }
    assert_eq!(throttled(&node, "rate").await, refused.len() as u64);

    // The neighbour's feeds are its own.
    let (status, _, body) = feed_request(&node, "/v1/indicators", &neighbour).await;
    assert_eq!(status, 200, "{body}");
    // And the poller gets in again once its rate allows.
    tokio::time::sleep(Duration::from_millis(1100)).await;
    let (status, _, body) = feed_request(&node, "/v1/indicators", &poller).await;
    assert_eq!(status, 200, "{body}");
}

/// The value of a `sluice_token_lookups_total` series (0 when absent).
async fn token_lookups(node: &Node, via: &str) -> u64 {
    let series = format!("sluice_token_lookups_total{{via=\"{via}\"}} ");
    node.metrics()
        .await
        .lines()
        .find_map(|line| line.strip_prefix(series.as_str()))
        .map_or(0, |value| value.trim().parse().unwrap())
}

/// A well-formed token with a valid checksum that the database does not know: presented 100
/// times, it reaches the database a handful of times, not 100 (the negative cache).
#[tokio::test]
async fn a_repeated_unknown_token_reaches_the_database_a_handful_of_times() {
    let node = Node::start(NodeOptions {
        args: vec!["--no-correlator".into()],
        ..NodeOptions::default()
    })
    .await;
    let bogus = billing::ApiToken::generate();
    let before = token_lookups(&node, "database").await;
    for _ in 0..100 {
        let (status, _, body) = feed_request(&node, "/v1/indicators", bogus.expose()).await;
        assert_eq!(status, 401, "{body}");
    }
    let lookups = token_lookups(&node, "database").await - before;
    assert!(
        lookups <= 3,
        "{lookups} database lookups for one unknown token"
    );
    assert!(token_lookups(&node, "negative_cache").await >= 97);
}
