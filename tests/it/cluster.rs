//! Several nodes on one Redis, and Redis failures.

use std::time::Duration;

use domain::protocol::ResetReason;
use domain::Frame;
use serde_json::{json, Value};

use crate::harness::*;
use testkit::RedisServer;

async fn stream_len(redis: &RedisServer) -> i64 {
    redis::cmd("XLEN")
        .arg("sluice:log")
        .query_async(&mut redis_conn(&redis.url()).await)
        .await
        .unwrap()
}

/// An `up` node and a further `gateway` node sharing `redis` and the SQLite in `data_dir`.
async fn two_nodes(redis: &RedisServer, data_dir: &std::path::Path) -> (Node, Node) {
    let first = Node::start(NodeOptions {
        redis: Some(redis.url()),
        data_dir: Some(data_dir.to_path_buf()),
        ..NodeOptions::default()
    })
    .await;
    let second = Node::start(NodeOptions {
        role: Some("gateway"),
        redis: Some(redis.url()),
        data_dir: Some(data_dir.to_path_buf()),
        admin_token: Some(first.admin_token.clone()),
        ..NodeOptions::default()
    })
    .await;
    (first, second)
}

/// Two gateway nodes on one Redis behave as one firehose: a raw upstream PUBLISH is stored once,
/// clients on both nodes receive it once, and a cursor from one node resumes on the other.
#[tokio::test]
async fn two_nodes_are_one_firehose() {
    let redis = RedisServer::start().unwrap();
    let data_dir = tempfile::tempdir().unwrap();
    let (first, second) = two_nodes(&redis, data_dir.path()).await;
    let token = first.admin_token.clone();
    let mut on_first = ws_connect(&first.ws("/v1/stream"), Some(&token))
        .await
        .unwrap();
    let mut on_second = ws_connect(&second.ws("/v1/stream"), Some(&token))
        .await
        .unwrap();
    ws_frame(&mut on_first).await;
    ws_frame(&mut on_second).await;
    // Both nodes must be subscribed to the upstream before we publish.
    wait_upstream_subscribers(&redis.url(), 2).await;
    let mut conn = redis_conn(&redis.url()).await;

    for n in 0..5 {
        let message = json!({"indicator": ip(n), "provider": "honeypot-1", "tags": ["scanner"]});
        let receivers: i64 = redis::cmd("PUBLISH")
            .arg("indicators")
            .arg(message.to_string())
            .query_async(&mut conn)
            .await
            .unwrap();
        assert_eq!(receivers, 2);
    }
    let from_first = ws_indicators(&mut on_first, 5).await;
    let from_second = ws_indicators(&mut on_second, 5).await;
    assert_eq!(from_first, from_second);
    assert_eq!(
        from_first
            .iter()
            .map(|(_, i)| i.clone())
            .collect::<Vec<_>>(),
        (0..5).map(ip).collect::<Vec<_>>()
    );
    assert_eq!(
        stream_len(&redis).await,
        5,
        "each upstream message is stored once"
    );

    // Publish over HTTP on the first node, resume on the second from a first-node cursor.
    let ids = first
        .publish_all(&(5..10).map(indicator).collect::<Vec<_>>())
        .await;
    let url = second.ws(&format!("/v1/stream?cursor={}", from_first[4].0));
    let mut resumed = ws_connect(&url, Some(&token)).await.unwrap();
    ws_frame(&mut resumed).await;
    let got: Vec<String> = ws_indicators(&mut resumed, 5)
        .await
        .into_iter()
        .map(|(id, _)| id)
        .collect();
    assert_eq!(got, ids);
    // No extra frame is pending: the next thing we see is what we publish next.
    let next = first.publish_all(&[indicator(99)]).await;
    assert_eq!(ws_indicators(&mut resumed, 1).await[0].0, next[0]);
}

/// Publishes `items` as soon as the node's log takes appends again (after a Redis restart);
/// their cursors.
async fn publish_once_back(node: &Node, items: &[Value]) -> Vec<Value> {
    let deadline = tokio::time::Instant::now() + WAIT;
    loop {
        let (status, answer) = node
            .publish(&node.admin_token, &Value::from(items.to_vec()))
            .await;
        if status == 202 {
            return answer["ids"].as_array().unwrap().clone();
        }
        assert!(
            tokio::time::Instant::now() < deadline,
            "the log never took appends again: {answer}"
        );
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
}

/// Redis killed and restarted empty under a live client: the node stays up, /readyz reports
/// degraded then ready, the client is told the history was lost (`reset`), and new indicators
/// flow again, without reconnecting.
#[tokio::test]
async fn redis_restart_is_announced_and_recovered() {
    let mut redis = RedisServer::start().unwrap();
    let node = Node::start(NodeOptions {
        redis: Some(redis.url()),
        ..NodeOptions::default()
    })
    .await;
    let mut socket = ws_connect(&node.ws("/v1/stream"), Some(&node.admin_token))
        .await
        .unwrap();
    ws_frame(&mut socket).await;
    node.publish_all(&(0..3).map(indicator).collect::<Vec<_>>())
        .await;
    ws_indicators(&mut socket, 3).await;

    redis.kill();
    let deadline = tokio::time::Instant::now() + WAIT;
    while node.readyz().await != 503 {
        assert!(
            tokio::time::Instant::now() < deadline,
            "readyz never reported degraded"
        );
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
    redis.restart().unwrap();
    let deadline = tokio::time::Instant::now() + WAIT;
    while node.readyz().await != 200 {
        assert!(
            tokio::time::Instant::now() < deadline,
            "readyz never recovered:\n{}",
            node.logs()
        );
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
    let ids = publish_once_back(&node, &[indicator(10), indicator(11)]).await;
    let reset = ws_typed_frame(&mut socket).await;
    assert!(
        matches!(
            reset,
            Frame::Reset {
                reason: ResetReason::LogRestarted,
                ..
            }
        ),
        "{reset:?}"
    );
    let got = ws_indicators(&mut socket, 2).await;
    assert_eq!(got[0].0, ids[0].as_str().unwrap());
    assert_eq!(got[1].0, ids[1].as_str().unwrap());
}

/// Redis crashes and comes back from a snapshot older than what it acknowledged (its epoch key
/// included): the live client, which already received the lost indicators, is told `reset`
/// instead of continuing as if nothing happened, and a client resuming from a lost cursor
/// is reset too.
#[tokio::test]
async fn redis_back_from_an_older_snapshot_is_announced() {
    let mut redis = RedisServer::start().unwrap();
    let node = Node::start(NodeOptions {
        redis: Some(redis.url()),
        args: vec!["--no-correlator".into()],
        ..NodeOptions::default()
    })
    .await;
    let mut socket = ws_connect(&node.ws("/v1/stream"), Some(&node.admin_token))
        .await
        .unwrap();
    ws_frame(&mut socket).await;
    node.publish_all(&(0..3).map(indicator).collect::<Vec<_>>())
        .await;
    ws_indicators(&mut socket, 3).await;
    let _: () = redis::cmd("SAVE")
        .query_async(&mut redis_conn(&redis.url()).await)
        .await
        .unwrap();
    // Acknowledged and streamed, then lost with the crash.
    let lost = node
        .publish_all(&(3..6).map(indicator).collect::<Vec<_>>())
        .await;
    ws_indicators(&mut socket, 3).await;
    redis.kill();
    redis.restart().unwrap();
    // The node's next read finds the entries it read gone, without anything new arriving. The
    // test publishes once the reset is out: an append racing that read is answered with a
    // cursor of the old epoch (the append scripts do not look for lost history) while the
    // stream delivers it under the new one.
    let reset = ws_typed_frame(&mut socket).await;
    assert!(
        matches!(
            reset,
            Frame::Reset {
                reason: ResetReason::LogRestarted,
                ..
            }
        ),
        "{reset:?}\n{}",
        node.logs()
    );
    let ids = publish_once_back(&node, &[indicator(10)]).await;
    let got = ws_indicators(&mut socket, 1).await;
    assert_eq!(got[0].0, ids[0].as_str().unwrap());
    // A client that held a lost cursor is told too, on any node.
    let url = node.ws(&format!("/v1/stream?cursor={}", lost[2]));
    let mut resumed = ws_connect(&url, Some(&node.admin_token)).await.unwrap();
    ws_frame(&mut resumed).await;
    let reset = ws_typed_frame(&mut resumed).await;
    assert!(matches!(reset, Frame::Reset { .. }), "{reset:?}");
}

/// Garbage on the upstream channel is counted and logged; the valid message after it is stored.
#[tokio::test]
async fn upstream_garbage_is_counted_not_fatal() {
    let redis = RedisServer::start().unwrap();
    let node = Node::start(NodeOptions {
        redis: Some(redis.url()),
        ..NodeOptions::default()
    })
    .await;
    let mut socket = ws_connect(&node.ws("/v1/stream"), Some(&node.admin_token))
        .await
        .unwrap();
    ws_frame(&mut socket).await;
    wait_upstream_subscribers(&redis.url(), 1).await;
    let mut conn = redis_conn(&redis.url()).await;
    let garbage: [&[u8]; 6] = [
        b"not json",
        b"{\"indicator\": 5, \"provider\": \"x\"}",
        b"{\"indicator\": \"185.1.1.1\"}",
        b"{\"indicator\": \"10.0.0.1\", \"provider\": \"x\"}",
        b"\xff\xfe\x00garbage",
        b"[1,2,3]",
    ];
    for message in garbage {
        let _: i64 = redis::cmd("PUBLISH")
            .arg("indicators")
            .arg(message)
            .query_async(&mut conn)
            .await
            .unwrap();
    }
    let good = json!({"indicator": "185.9.9.9", "provider": "honeypot"}).to_string();
    let _: i64 = redis::cmd("PUBLISH")
        .arg("indicators")
        .arg(good)
        .query_async(&mut conn)
        .await
        .unwrap();
    let got = ws_indicators(&mut socket, 1).await;
    assert_eq!(got[0].1, "185.9.9.9");
    let metrics = node.metrics().await;
    assert!(
        metrics.contains("sluice_ingest_rejected_total{source=\"upstream\"} 6"),
        "{metrics}"
    );
}

/// `sluice publish --redis` sends a feed straight into the upstream channel; the provider comes
/// from `--provider`, and a gateway stores and streams it.
#[tokio::test]
async fn publish_cli_into_redis() {
    let redis = RedisServer::start().unwrap();
    let node = Node::start(NodeOptions {
        redis: Some(redis.url()),
        ..NodeOptions::default()
    })
    .await;
    let mut socket = ws_connect(&node.ws("/v1/stream"), Some(&node.admin_token))
        .await
        .unwrap();
    ws_frame(&mut socket).await;
    wait_upstream_subscribers(&redis.url(), 1).await;
    let feed = concat!(env!("CARGO_MANIFEST_DIR"), "/data/feeds/csirtg_feed.txt");
    let output = tokio::process::Command::new(sluice_binary())
        .args([
            "publish",
            feed,
            "--redis",
            &redis.url(),
            "--provider",
            "csirtg.io",
        ])
        .output()
        .await
        .unwrap();
    assert!(
        output.status.success(),
        "{}",
        String::from_utf8_lossy(&output.stderr)
    );
    let got = ws_frame(&mut socket).await;
    assert_eq!(got["data"]["provider"], "csirtg.io");
    assert_eq!(got["data"]["itype"], "ipv4");
    // Without a provider the trusted path refuses, with a clear configuration error.
    let output = tokio::process::Command::new(sluice_binary())
        .args(["publish", feed, "--redis", &redis.url()])
        .env_remove("SLUICE_PROVIDER")
        .output()
        .await
        .unwrap();
    assert_eq!(output.status.code(), Some(64));
}

/// A plan change reaches live connections on every node of a cluster.
#[tokio::test]
async fn plan_change_reaches_every_node() {
    let redis = RedisServer::start().unwrap();
    let data_dir = tempfile::tempdir().unwrap();
    let (first, second) = two_nodes(&redis, data_dir.path()).await;
    first.create_account("shared", "hobby").await;
    let token = first.create_token("shared", "read").await;
    let mut on_first = ws_connect(&first.ws("/v1/stream"), Some(&token))
        .await
        .unwrap();
    let mut on_second = ws_connect(&second.ws("/v1/stream"), Some(&token))
        .await
        .unwrap();
    ws_frame(&mut on_first).await;
    ws_frame(&mut on_second).await;
    let changed = std::time::Instant::now();
    assert!(first
        .cli(&["plans", "set", "shared", "pro"])
        .await
        .status
        .success());
    for socket in [&mut on_first, &mut on_second] {
        let frame = ws_typed_frame(socket).await;
        assert!(
            matches!(&frame, Frame::Plan { plan, .. } if plan == "pro"),
            "{frame:?}"
        );
    }
    assert!(changed.elapsed() < Duration::from_secs(5));
}
