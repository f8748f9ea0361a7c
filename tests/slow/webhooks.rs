//! Outbound webhooks under a steady load: two endpoints whose receivers take everything, and a
//! third whose receiver refuses every batch, while indicators arrive at `SLUICE_SLOW_RATE` a
//! second for `SLUICE_SLOW_SECONDS`. The healthy endpoints must get every indicator once, in
//! order, whatever the failing one does; the figures (latency from publish to receipt, batch
//! sizes, the node's CPU and memory) go to RELIABILITY.md.

use std::time::Duration;

use serde_json::{json, Value};

use crate::harness::*;
use crate::measure::*;
use crate::receiver::{Behaviour, Receiver};

/// The node's user and system CPU time so far, seconds.
fn cpu_seconds(pid: u32) -> f64 {
    let stat = std::fs::read_to_string(format!("/proc/{pid}/stat")).unwrap();
    // Fields after the command name (which may hold spaces) start at the state, field 3.
    let rest = &stat[stat.rfind(')').unwrap() + 2..];
    let fields: Vec<&str> = rest.split_whitespace().collect();
    let ticks: f64 = fields[11].parse::<f64>().unwrap() + fields[12].parse::<f64>().unwrap();
    // USER_HZ is 100 on Linux.
    ticks / 100.0
}

async fn register(node: &Node, url: &str) -> Value {
    let response = reqwest::Client::new()
        .post(node.http("/v1/account/webhooks"))
        .bearer_auth(&node.admin_token)
        .json(&json!({ "url": url }))
        .send()
        .await
        .unwrap();
    assert_eq!(response.status(), 201);
    response.json().await.unwrap()
}

#[tokio::test]
async fn webhooks_deliver_everything_in_order_beside_a_failing_endpoint() {
    let rate = size("RATE", 1000);
    let seconds = size("SECONDS", 20);
    let node = Node::start(NodeOptions {
        args: [
            "--log",
            "memory",
            "--no-correlator",
            "--webhook-allow-private",
        ]
        .iter()
        .map(|a| a.to_string())
        .collect(),
        ..NodeOptions::default()
    })
    .await;
    let mut healthy = [Receiver::start().await, Receiver::start().await];
    let failing = Receiver::start().await;
    failing.script(&[Behaviour::Status(503); 100_000]);
    for receiver in &healthy {
        register(&node, &receiver.url("/")).await;
    }
    register(&node, &failing.url("/")).await;
    // Every endpoint is claimed (within a claim interval) before the load starts.
    tokio::time::sleep(Duration::from_secs(3)).await;
    let rss_before = rss_kib(node.pid());
    let cpu_before = cpu_seconds(node.pid());

    let total = rate * seconds;
    let publisher = {
        let url = node.http("/v1/indicators");
        let token = node.admin_token.clone();
        tokio::spawn(async move {
            let client = reqwest::Client::new();
            let per_tick = (rate / 20).max(1);
            let mut ticker = tokio::time::interval(Duration::from_millis(50));
            let mut sent = 0;
            while sent < total {
                ticker.tick().await;
                let sent_us = now_us();
                let batch: Vec<Value> = (sent..(sent + per_tick).min(total))
                    .map(|n| {
                        json!({"indicator": ip(n), "tags": "scanner",
                               "description": format!("sent_us={sent_us}")})
                    })
                    .collect();
                sent += batch.len();
                let response = client
                    .post(&url)
                    .bearer_auth(&token)
                    .json(&batch)
                    .send()
                    .await
                    .unwrap();
                assert_eq!(response.status(), 202);
            }
        })
    };

    let [first, second] = &mut healthy;
    let ((first_batches, first_latency), (second_batches, second_latency)) =
        tokio::join!(consume(first, total, 0), consume(second, total, 1));
    let batches = [first_batches, second_batches];
    let mut latency = first_latency;
    latency.add(&second_latency).unwrap();
    let max_rss = rss_kib(node.pid());
    publisher.await.unwrap();
    let cpu = cpu_seconds(node.pid()) - cpu_before;
    let metrics = node.metrics().await;
    let failed = metrics
        .lines()
        .find_map(|line| line.strip_prefix("sluice_webhook_attempts_total{outcome=\"failed\"} "))
        .unwrap_or("0")
        .to_owned();
    println!(
        "webhooks: {total} indicators at {rate}/s to 2 healthy endpoints beside 1 failing: \
         latency publish→receipt {}; batches {batches:?} (mean {:.1} indicators); failing \
         endpoint tries {failed}; node CPU {cpu:.2} s ({:.3} ms per indicator delivered); \
         RSS {} → {} KiB at the end",
        summary(&latency),
        (2 * total) as f64 / (batches[0] + batches[1]) as f64,
        cpu * 1000.0 / (2 * total) as f64,
        rss_before,
        max_rss,
    );
    // Bounds that hold on any machine: batches are at most 100, and the failing endpoint
    // was tried again and again without holding the others up (they got everything above).
    assert!(batches.iter().all(|&n| n >= total / 100), "{batches:?}");
    assert!(failed.parse::<f64>().unwrap_or(0.0) >= 2.0, "{failed}");
}

/// Reads `total` indicators from one healthy receiver: every one in order, once; returns the
/// batches it took and each indicator's latency from publish to receipt.
async fn consume(
    receiver: &mut Receiver,
    total: usize,
    index: usize,
) -> (usize, hdrhistogram::Histogram<u64>) {
    let mut latency = histogram();
    let mut batches = 0;
    let mut next = 0;
    while next < total {
        let request = receiver.next().await;
        batches += 1;
        let received_us = now_us();
        for indicator in request.json()["indicators"].as_array().unwrap() {
            assert_eq!(
                indicator["indicator"],
                ip(next).as_str(),
                "endpoint {index}: in order, once"
            );
            let sent_us: u64 = indicator["description"]
                .as_str()
                .and_then(|text| text.strip_prefix("sent_us="))
                .and_then(|us| us.parse().ok())
                .unwrap();
            latency
                .record(received_us.saturating_sub(sent_us).max(1))
                .unwrap();
            next += 1;
        }
    }
    (batches, latency)
}
