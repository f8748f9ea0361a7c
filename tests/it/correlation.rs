//! The correlator end to end: reports in through Redis or HTTP, derived indicators out on the
//! stream, exactly once across kill -9 and replicas.

use std::collections::HashMap;
use std::process::Stdio;
use std::time::Duration;

use chrono::{SecondsFormat, TimeDelta, Utc};
use domain::Frame;
use serde_json::{json, Value};
use tokio::process::{Child, Command};

use crate::harness::*;
use testkit::RedisServer;

/// Decide as soon as a later report or one idle second says the reports are complete.
const FAST_RULE: &str = "scanners:lateness=0s,idle=1s";

fn rfc3339(time: chrono::DateTime<Utc>) -> String {
    time.to_rfc3339_opts(SecondsFormat::Secs, true)
}

async fn publish_upstream(url: &str, messages: &[Value]) {
    let mut conn = redis_conn(url).await;
    let mut pipe = redis::pipe();
    for message in messages {
        pipe.cmd("PUBLISH")
            .arg("indicators")
            .arg(message.to_string())
            .ignore();
    }
    pipe.query_async::<()>(&mut conn).await.unwrap();
}

/// Reads the next indicator frame, skipping nothing else silently.
async fn next_indicator(socket: &mut Ws) -> Value {
    match ws_typed_frame(socket).await {
        Frame::Indicator { data, .. } => data,
        other => panic!("unexpected frame {other:?}"),
    }
}

/// A node correlating with [`FAST_RULE`] (on `redis`, or embedded) and an admin's WebSocket on
/// the correlated stream, past its `hello`.
async fn correlated_subscriber(redis: Option<String>) -> (Node, Ws) {
    let node = Node::start(NodeOptions {
        redis,
        args: vec!["--correlate".into(), FAST_RULE.into()],
        ..NodeOptions::default()
    })
    .await;
    let mut socket = ws_connect(
        &node.ws("/v1/stream?correlated=true"),
        Some(&node.admin_token),
    )
    .await
    .unwrap();
    assert_eq!(ws_frame(&mut socket).await["type"], "hello");
    (node, socket)
}

/// A gateway that stores upstream reports but runs no correlator (the tests start their own).
async fn upstream_gateway(redis: &RedisServer) -> Node {
    let gateway = Node::start(NodeOptions {
        redis: Some(redis.url()),
        args: vec!["--no-correlator".into()],
        ..NodeOptions::default()
    })
    .await;
    wait_upstream_subscribers(&redis.url(), 1).await;
    gateway
}

#[tokio::test]
async fn three_providers_through_redis_reach_a_correlated_subscriber() {
    let redis = RedisServer::start().unwrap();
    let (node, mut socket) = correlated_subscriber(Some(redis.url())).await;
    wait_upstream_subscribers(&redis.url(), 1).await;

    let now = Utc::now();
    let at = |minutes: i64| rfc3339(now - TimeDelta::minutes(minutes));
    publish_upstream(
        &redis.url(),
        &[
            json!({"indicator": "185.220.101.7", "provider": "honeypot-eu", "tags": ["scanner", "ssh"], "confidence": 6, "reporttime": at(120), "tlp": "green"}),
            // Noise: not a scanner report, not an address, and the correlator's own provider.
            json!({"indicator": "185.220.101.7", "provider": "mail-filter", "tags": "spam", "reporttime": at(100)}),
            json!({"indicator": "scanner.example.net", "provider": "dns-watch", "tags": "scanner", "reporttime": at(90)}),
            // The same address spelled with leading zeros is the same scanner.
            json!({"indicator": "185.220.101.007", "provider": "honeypot-us", "tags": "scanner", "confidence": 9, "reporttime": at(60), "tlp": "green"}),
            json!({"indicator": "185.220.101.7", "provider": "firewall", "tags": "scanner,rdp", "reporttime": at(30), "tlp": "amber"}),
        ],
    )
    .await;

    let derived = next_indicator(&mut socket).await;
    assert_eq!(derived["indicator"], "185.220.101.7", "{derived}");
    assert_eq!(derived["provider"], "sluice/correlator");
    assert_eq!(
        derived["tags"],
        json!(["correlated", "scanner", "rdp", "ssh"])
    );
    assert_eq!(derived["count"], 3);
    assert_eq!(derived["confidence"], 9);
    assert_eq!(derived["tlp"], "amber");
    assert_eq!(derived["rule"], "scanners");
    assert_eq!(derived["reporttime"], at(30));
    assert_eq!(derived["firsttime"], at(120));
    assert_eq!(derived["lasttime"], at(30));
    assert_eq!(
        derived["sources"],
        json!([
            {"provider": "honeypot-eu", "reporttime": at(120)},
            {"provider": "honeypot-us", "reporttime": at(60)},
            {"provider": "firewall", "reporttime": at(30)},
        ])
    );

    // A fourth provider inside the cooldown emits nothing; the next scanner's triple does.
    publish_upstream(
        &redis.url(),
        &[
            json!({"indicator": "185.220.101.7", "provider": "ids", "tags": "scanner", "reporttime": at(10)}),
            json!({"indicator": "185.220.101.8", "provider": "honeypot-eu", "tags": "scanner", "reporttime": at(9)}),
            json!({"indicator": "185.220.101.8", "provider": "honeypot-us", "tags": "scanner", "reporttime": at(8)}),
            json!({"indicator": "185.220.101.8", "provider": "ids", "tags": "scanner", "reporttime": at(7)}),
        ],
    )
    .await;
    let next = next_indicator(&mut socket).await;
    assert_eq!(next["indicator"], "185.220.101.8", "{next}");
    let metrics = node.metrics().await;
    assert!(
        metrics.contains("sluice_correlator_emitted_total{rule=\"scanners\"} 2"),
        "{metrics}"
    );
}

#[tokio::test]
async fn provider_identity_on_http_is_the_account() {
    let (node, mut socket) = correlated_subscriber(None).await;
    node.create_account("sensor", "pro").await;
    let now = Utc::now();
    // One account, three tokens, three claimed providers: one provider.
    for n in 0..3 {
        let token = node.create_token("sensor", "write").await;
        let report = json!({"indicator": "185.220.102.9", "provider": format!("spoofed-{n}"), "tags": "scanner", "reporttime": rfc3339(now - TimeDelta::minutes(50 - n))});
        let (status, answer) = node.publish(&token, &report).await;
        assert_eq!(status, 202, "{answer}");
    }
    for (n, account) in ["isp-a", "isp-b"].into_iter().enumerate() {
        node.create_account(account, "pro").await;
        let token = node.create_token(account, "write").await;
        let report = json!({"indicator": "185.220.102.9", "tags": "scanner", "reporttime": rfc3339(now - TimeDelta::minutes(20 - n as i64))});
        let (status, answer) = node.publish(&token, &report).await;
        assert_eq!(status, 202, "{answer}");
    }
    let derived = next_indicator(&mut socket).await;
    let providers: Vec<&str> = derived["sources"]
        .as_array()
        .unwrap()
        .iter()
        .map(|source| source["provider"].as_str().unwrap())
        .collect();
    assert_eq!(providers, ["sensor", "isp-a", "isp-b"], "{derived}");
    assert_eq!(
        derived["sources"][0]["reporttime"],
        rfc3339(now - TimeDelta::minutes(48)),
        "the account's latest report counts"
    );
}

fn start_correlator(redis: &RedisServer, log: &std::path::Path) -> Child {
    Command::new(sluice_binary())
        .args([
            "correlator",
            "--redis",
            &redis.url(),
            "--correlate",
            FAST_RULE,
        ])
        // Its decisions (`correlated indicators decided … already_present=N`) are debug lines.
        .env("RUST_LOG", "info,correlator=debug")
        .stdin(Stdio::null())
        .stdout(Stdio::null())
        .stderr(
            std::fs::OpenOptions::new()
                .create(true)
                .append(true)
                .open(log)
                .unwrap(),
        )
        .kill_on_drop(true)
        .spawn()
        .expect("cannot start sluice correlator")
}

/// The derived indicators in the log: indicator → how many times it was emitted.
async fn emitted(redis: &RedisServer) -> HashMap<String, usize> {
    let mut conn = redis_conn(&redis.url()).await;
    let entries: Vec<(String, Vec<(String, String)>)> = redis::cmd("XRANGE")
        .arg("sluice:log")
        .arg("-")
        .arg("+")
        .query_async(&mut conn)
        .await
        .unwrap();
    let mut counts = HashMap::new();
    for (_, fields) in entries {
        let data: Value = serde_json::from_str(&fields[0].1).unwrap();
        if data["provider"] == "sluice/correlator" {
            *counts
                .entry(data["indicator"].as_str().unwrap().to_owned())
                .or_default() += 1;
        }
    }
    counts
}

async fn wait_for_emissions(redis: &RedisServer, at_least: usize, log: &std::path::Path) {
    let deadline = tokio::time::Instant::now() + Duration::from_secs(60);
    while emitted(redis).await.len() < at_least {
        assert!(
            tokio::time::Instant::now() < deadline,
            "fewer than {at_least} emissions:\n{}",
            std::fs::read_to_string(log).unwrap_or_default()
        );
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
}

#[tokio::test]
async fn kill_9_and_replicas_emit_every_correlation_exactly_once() {
    const SCANNERS: usize = 3000;
    let redis = RedisServer::start().unwrap();
    let gateway = upstream_gateway(&redis).await;
    let start = Utc::now() - TimeDelta::hours(20);
    let mut reports = Vec::new();
    for n in 0..SCANNERS {
        let at = rfc3339(start + TimeDelta::seconds(n as i64));
        for provider in ["honeypot-eu", "honeypot-us", "firewall"] {
            reports.push(json!({"indicator": ip(n), "provider": provider, "tags": "scanner", "reporttime": at}));
        }
    }
    for chunk in reports.chunks(1000) {
        publish_upstream(&redis.url(), chunk).await;
    }
    let mut conn = redis_conn(&redis.url()).await;
    let deadline = tokio::time::Instant::now() + Duration::from_secs(60);
    loop {
        let len: usize = redis::cmd("XLEN")
            .arg("sluice:log")
            .query_async(&mut conn)
            .await
            .unwrap();
        if len == reports.len() {
            break;
        }
        assert!(
            tokio::time::Instant::now() < deadline,
            "the gateway stored {len} reports"
        );
        tokio::time::sleep(Duration::from_millis(50)).await;
    }

    let log = gateway.data_dir.join("correlator.log");
    // Killed as soon as it has emitted something, twice; then two replicas side by side.
    for at_least in [1, SCANNERS / 3] {
        let mut correlator = start_correlator(&redis, &log);
        wait_for_emissions(&redis, at_least, &log).await;
        correlator.start_kill().unwrap();
        correlator.wait().await.unwrap();
    }
    let _first = start_correlator(&redis, &log);
    let _second = start_correlator(&redis, &log);
    wait_for_emissions(&redis, SCANNERS, &log).await;
    // Let the replicas finish whatever they were appending.
    tokio::time::sleep(Duration::from_secs(2)).await;
    let counts = emitted(&redis).await;
    assert_eq!(counts.len(), SCANNERS);
    let duplicated: Vec<_> = counts.iter().filter(|(_, &n)| n > 1).collect();
    assert!(
        duplicated.is_empty(),
        "{} emitted more than once, e.g. {:?}",
        duplicated.len(),
        &duplicated[..duplicated.len().min(5)]
    );
    let logs = std::fs::read_to_string(&log).unwrap();
    assert!(
        logs.matches("caught up with the log").count() >= 2,
        "{logs}"
    );
}

/// A correlator that restarts after retention removed history (here: removed by hand) cannot
/// tell from the log that a key is cooling down; the log's per-series record refuses the early
/// second emission all the same, and lets the next one through a full window later.
#[tokio::test]
async fn history_lost_to_retention_does_not_bring_an_early_second_emission() {
    let redis = RedisServer::start().unwrap();
    let gateway = upstream_gateway(&redis).await;
    let log = gateway.data_dir.join("correlator.log");
    let start = Utc::now() - TimeDelta::hours(30);
    let triple = |hours: i64| -> Vec<Value> {
        let at = rfc3339(start + TimeDelta::hours(hours));
        ["honeypot-eu", "honeypot-us", "firewall"]
            .into_iter()
            .map(|provider| json!({"indicator": "185.220.103.1", "provider": provider, "tags": "scanner", "reporttime": at}))
            .collect()
    };
    let mut conn = redis_conn(&redis.url()).await;
    let emissions_of =
        |counts: HashMap<String, usize>| counts.get("185.220.103.1").copied().unwrap_or(0);

    publish_upstream(&redis.url(), &triple(0)).await;
    let mut correlator = start_correlator(&redis, &log);
    wait_for_emissions(&redis, 1, &log).await;
    correlator.start_kill().unwrap();
    correlator.wait().await.unwrap();

    // Retention takes everything, the emission included; new reports come 2 h after T.
    redis::cmd("XTRIM")
        .arg("sluice:log")
        .arg("MAXLEN")
        .arg(0)
        .query_async::<()>(&mut conn)
        .await
        .unwrap();
    publish_upstream(&redis.url(), &triple(2)).await;
    let _correlator = start_correlator(&redis, &log);
    let deadline = tokio::time::Instant::now() + Duration::from_secs(30);
    while !std::fs::read_to_string(&log)
        .unwrap_or_default()
        .contains("already_present=1")
    {
        assert!(
            tokio::time::Instant::now() < deadline,
            "the restarted correlator did not decide: {}",
            std::fs::read_to_string(&log).unwrap_or_default()
        );
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
    assert_eq!(
        emissions_of(emitted(&redis).await),
        0,
        "refused inside the cooldown"
    );

    // 25 h after T: a new emission is due.
    publish_upstream(&redis.url(), &triple(25)).await;
    wait_for_emissions(&redis, 1, &log).await;
    assert_eq!(emissions_of(emitted(&redis).await), 1);
}
