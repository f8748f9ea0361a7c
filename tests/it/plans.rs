//! Tiered access on live streams (docs/protocol.md §5): rate limits with exact drop accounting, TLP
//! visibility, connection caps, the replay window, plan changes and revocation within 5 s.

use std::time::Duration;

use domain::protocol::{DropReason, ResetReason};
use domain::{CloseCode, Frame};
use serde_json::{json, Value};

use crate::harness::*;
use crate::{start, Backend};

fn green(n: usize) -> Value {
    json!({"indicator": ip(n), "tags": ["scanner"], "tlp": "green"})
}

/// Reads frames until `indicators + dropped` reaches `expected`; returns (indicators, dropped).
async fn count_until(socket: &mut Ws, expected: u64) -> (Vec<String>, u64) {
    let (mut indicators, mut dropped) = (Vec::new(), 0u64);
    while (indicators.len() as u64) + dropped < expected {
        match ws_typed_frame(socket).await {
            Frame::Indicator { id, .. } => indicators.push(id.to_string()),
            Frame::Dropped { count, reason, .. } => {
                assert_eq!(reason, DropReason::RateLimit);
                dropped += count;
            }
            other => panic!("unexpected frame: {other:?}"),
        }
    }
    (indicators, dropped)
}

/// The free plan (1/s, burst 10): received + dropped equals exactly what passed the filters,
/// and what was received stays within burst + rate × elapsed.
#[tokio::test]
async fn rate_limit_skips_and_counts_exactly() {
    let (node, _redis) = start(Backend::Sqlite, &[]).await;
    node.create_account("freeloader", "free").await;
    let token = node.create_token("freeloader", "read").await;
    let started = std::time::Instant::now();
    let mut socket = ws_connect(&node.ws("/v1/stream"), Some(&token))
        .await
        .unwrap();
    let Frame::Hello { plan, limits, .. } = ws_typed_frame(&mut socket).await else {
        panic!("the stream does not start with `hello`");
    };
    assert_eq!(plan, "free");
    assert_eq!(limits.rate_per_second, Some(1));
    assert_eq!(limits.burst, Some(10));
    // 40 visible (green) and 10 invisible (amber) to a free plan.
    let mut batch: Vec<Value> = (0..40).map(green).collect();
    batch.extend((40..50).map(indicator));
    node.publish_all(&batch).await;
    let (received, dropped) = count_until(&mut socket, 40).await;
    let elapsed = started.elapsed().as_secs_f64();
    assert_eq!(received.len() as u64 + dropped, 40);
    assert!(dropped > 0);
    assert!(
        received.len() as f64 <= 10.0 + elapsed + 1.0,
        "{} received in {elapsed}s",
        received.len()
    );
}

/// Plans see only up to their TLP: free sees white and green, not amber or red.
#[tokio::test]
async fn tlp_visibility_follows_the_plan() {
    let (node, _redis) = start(Backend::Sqlite, &[]).await;
    node.create_account("watcher", "free").await;
    let token = node.create_token("watcher", "read").await;
    let mut socket = ws_connect(&node.ws("/v1/stream"), Some(&token))
        .await
        .unwrap();
    ws_frame(&mut socket).await;
    let batch = json!([
        {"indicator": ip(1), "tlp": "red"},
        {"indicator": ip(2), "tlp": "amber"},
        {"indicator": ip(3), "tlp": "white"},
        {"indicator": ip(4), "tlp": "green"},
    ]);
    node.publish(&node.admin_token, &batch).await;
    let got: Vec<String> = ws_indicators(&mut socket, 2)
        .await
        .into_iter()
        .map(|(_, i)| i)
        .collect();
    assert_eq!(got, [ip(3), ip(4)]);
    // The correlated stream is not in the free plan.
    let refused = ws_connect(&node.ws("/v1/stream?correlated=true"), Some(&token)).await;
    assert_eq!(refused.err(), Some(403));
}

/// Connects as soon as the account has a free slot (a dropped connection's slot returns when
/// the server notices the socket closed).
async fn connect_when_free(node: &Node, token: &str, path: &str) -> Ws {
    let deadline = tokio::time::Instant::now() + WAIT;
    loop {
        match ws_connect(&node.ws(path), Some(token)).await {
            Ok(socket) => return socket,
            Err(status) => assert_eq!(status, 429),
        }
        assert!(
            tokio::time::Instant::now() < deadline,
            "a slot never came back:\n{}",
            node.logs()
        );
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
}

/// The N+1th connection of an account is refused with 429 and Retry-After before any upgrade;
/// the slot returns when a connection ends. On Redis the cap holds across two nodes.
async fn connection_cap(backend: Backend) {
    let (node, redis) = start(backend, &[]).await;
    node.create_account("duo", "hobby").await;
    let token = node.create_token("duo", "read").await;
    let second_node = match &redis {
        Some(redis) => Some(
            Node::start(NodeOptions {
                role: Some("gateway"),
                redis: Some(redis.url()),
                data_dir: Some(node.data_dir.clone()),
                admin_token: Some(node.admin_token.clone()),
                ..NodeOptions::default()
            })
            .await,
        ),
        None => None,
    };
    let other = second_node.as_ref().unwrap_or(&node);
    let mut first = ws_connect(&node.ws("/v1/stream"), Some(&token))
        .await
        .unwrap();
    ws_frame(&mut first).await;
    let mut second = ws_connect(&other.ws("/v1/stream"), Some(&token))
        .await
        .unwrap();
    ws_frame(&mut second).await;
    assert_eq!(
        ws_connect(&other.ws("/v1/stream"), Some(&token))
            .await
            .err(),
        Some(429)
    );
    let response = reqwest::Client::new()
        .get(node.http("/v1/stream"))
        .bearer_auth(&token)
        .send()
        .await
        .unwrap();
    assert_eq!(response.status(), 429);
    assert!(response.headers().contains_key("retry-after"));

    // Many abrupt disconnects later, the count is still exact.
    drop(first);
    for _ in 0..50 {
        let socket = connect_when_free(&node, &token, "/v1/stream").await;
        drop(socket);
    }
    let mut last = connect_when_free(&node, &token, "/v1/stream").await;
    ws_frame(&mut last).await;
    assert_eq!(
        ws_connect(&node.ws("/v1/stream"), Some(&token)).await.err(),
        Some(429)
    );
}

#[tokio::test]
async fn connection_cap_memory() {
    connection_cap(Backend::Sqlite).await;
}

#[tokio::test]
async fn connection_cap_across_redis_nodes() {
    connection_cap(Backend::Redis).await;
}

/// A plan change reaches live connections within 5 s without reconnecting: a `plan` frame,
/// then the new limits. A change the connection's stream no longer fits closes it with 4010.
#[tokio::test]
async fn plan_changes_reach_live_connections() {
    let (node, _redis) = start(Backend::Sqlite, &[]).await;
    node.create_account("climber", "hobby").await;
    let token = node.create_token("climber", "read").await;
    let mut plain = ws_connect(&node.ws("/v1/stream"), Some(&token))
        .await
        .unwrap();
    assert_eq!(ws_frame(&mut plain).await["plan"], "hobby");
    let mut correlated = ws_connect(&node.ws("/v1/stream?correlated=true"), Some(&token))
        .await
        .unwrap();
    ws_frame(&mut correlated).await;

    let changed = std::time::Instant::now();
    let output = node.cli(&["plans", "set", "climber", "pro"]).await;
    assert!(
        output.status.success(),
        "{}",
        String::from_utf8_lossy(&output.stderr)
    );
    let frame = ws_typed_frame(&mut plain).await;
    let Frame::Plan { plan, limits } = frame else {
        panic!("expected `plan`, got {frame:?}");
    };
    assert_eq!(plan, "pro");
    assert_eq!(limits.rate_per_second, Some(2000));
    assert!(
        changed.elapsed() < Duration::from_secs(5),
        "took {:?}",
        changed.elapsed()
    );
    assert_eq!(ws_frame(&mut correlated).await["plan"], "pro");

    let output = node.cli(&["plans", "set", "climber", "free"]).await;
    assert!(output.status.success());
    let frame = ws_frame(&mut plain).await;
    assert_eq!(frame["plan"], "free");
    let (code, reason) = ws_close_code(&mut correlated).await;
    assert_eq!(code, CloseCode::PlanDisallows.code(), "{reason}");
    // The downgraded connection now runs at the free plan's limits.
    node.publish_all(&(0..30).map(green).collect::<Vec<_>>())
        .await;
    let (received, dropped) = count_until(&mut plain, 30).await;
    assert!(dropped > 0, "received {} with no drops", received.len());
}

/// Revoking a token closes its live connections within 5 s with 4001, and it cannot reconnect.
#[tokio::test]
async fn revocation_closes_live_connections() {
    let (node, _redis) = start(Backend::Sqlite, &[]).await;
    node.create_account("leaver", "pro").await;
    let (id, token) = node.create_token_with_id("leaver", "read").await;
    let keep = node.create_token("leaver", "read").await;
    let mut socket = ws_connect(&node.ws("/v1/stream"), Some(&token))
        .await
        .unwrap();
    ws_frame(&mut socket).await;
    let mut other = ws_connect(&node.ws("/v1/stream"), Some(&keep))
        .await
        .unwrap();
    ws_frame(&mut other).await;
    let revoked = std::time::Instant::now();
    assert!(node.cli(&["tokens", "revoke", &id]).await.status.success());
    let (code, _) = ws_close_code(&mut socket).await;
    assert_eq!(code, CloseCode::TokenRevoked.code());
    assert!(revoked.elapsed() < Duration::from_secs(5));
    assert_eq!(
        ws_connect(&node.ws("/v1/stream"), Some(&token)).await.err(),
        Some(401)
    );
    // The account's other token is untouched.
    node.publish_all(&[indicator(1)]).await;
    assert_eq!(ws_frame(&mut other).await["type"], "indicator");
}

/// An ActionCable socket that never subscribes receives no indicators, but its token's
/// revocation still reaches it: closed with 4001, not left open until the 30 s subscription
/// deadline closes it with 1008.
#[tokio::test]
async fn revocation_closes_an_actioncable_socket_that_never_subscribed() {
    let (node, _redis) = start(Backend::Sqlite, &[]).await;
    node.create_account("lurker", "pro").await;
    let (id, token) = node.create_token_with_id("lurker", "read").await;
    // `Bearer` on /firehose speaks csirtg.io's ActionCable channel.
    let mut socket = ws_connect(&node.ws("/firehose"), Some(&token))
        .await
        .unwrap();
    assert_eq!(ws_frame(&mut socket).await["type"], "welcome");
    assert!(node.cli(&["tokens", "revoke", &id]).await.status.success());
    let (code, reason) = ws_close_code(&mut socket).await;
    assert_eq!(code, CloseCode::TokenRevoked.code(), "{reason}");
}

/// A node caches authenticated tokens, but a plan change evicts them with the same poll that
/// tells the live streams: once a live stream has its `plan` frame, new handshakes see the plan.
#[tokio::test]
async fn cached_tokens_follow_plan_changes() {
    let (node, _redis) = start(Backend::Sqlite, &[]).await;
    node.create_account("mover", "hobby").await;
    let token = node.create_token("mover", "read").await;
    let mut live = ws_connect(&node.ws("/v1/stream"), Some(&token))
        .await
        .unwrap();
    assert_eq!(ws_frame(&mut live).await["plan"], "hobby");
    // A second handshake is served from the cache.
    let mut cached = ws_connect(&node.ws("/v1/stream"), Some(&token))
        .await
        .unwrap();
    assert_eq!(ws_frame(&mut cached).await["plan"], "hobby");
    assert!(node
        .cli(&["plans", "set", "mover", "pro"])
        .await
        .status
        .success());
    let frame = ws_typed_frame(&mut live).await;
    assert!(
        matches!(&frame, Frame::Plan { plan, .. } if plan == "pro"),
        "{frame:?}"
    );
    let mut after = ws_connect(&node.ws("/v1/stream"), Some(&token))
        .await
        .unwrap();
    assert_eq!(ws_frame(&mut after).await["plan"], "pro");
}

/// The replay window bounds resumes: the free plan has none, so a resume is `reset` to now.
#[tokio::test]
async fn replay_window_bounds_resume() {
    let (node, _redis) = start(Backend::Sqlite, &[]).await;
    node.create_account("late", "free").await;
    let token = node.create_token("late", "read").await;
    let ids = node
        .publish_all(&(0..3).map(green).collect::<Vec<_>>())
        .await;
    tokio::time::sleep(Duration::from_millis(20)).await;
    let url = node.ws(&format!("/v1/stream?cursor={}", ids[0]));
    let mut socket = ws_connect(&url, Some(&token)).await.unwrap();
    ws_frame(&mut socket).await;
    let reset = ws_typed_frame(&mut socket).await;
    assert!(
        matches!(
            reset,
            Frame::Reset {
                reason: ResetReason::ReplayWindow,
                ..
            }
        ),
        "{reset:?}"
    );
    // `earliest` means the oldest the plan may see: nothing before now. (The free plan has
    // one connection: wait for the first one's slot to come back.)
    ws_send_close(&mut socket).await;
    drop(socket);
    let mut socket = connect_when_free(&node, &token, "/v1/stream?cursor=earliest").await;
    ws_frame(&mut socket).await;
    let fresh = node.publish_all(&[green(9)]).await;
    assert_eq!(ws_indicators(&mut socket, 1).await[0].0, fresh[0]);
}

/// A cursor older than the replay window is out of reach only if something follows it before
/// the window: the `hello` cursor of an empty log (1970 by its id) resumes with everything
/// appended since, on a log that outlives the node (Redis) as on one that does not.
#[tokio::test]
async fn an_old_cursor_with_nothing_missed_is_not_reset() {
    let (node, _redis) = start(Backend::Redis, &["--no-correlator"]).await;
    let mut socket = ws_connect(&node.ws("/v1/stream"), Some(&node.admin_token))
        .await
        .unwrap();
    let Frame::Hello { cursor: hello, .. } = ws_typed_frame(&mut socket).await else {
        panic!("the stream does not start with `hello`");
    };
    ws_send_close(&mut socket).await;
    drop(socket);
    let ids = node
        .publish_all(&(0..3).map(green).collect::<Vec<_>>())
        .await;
    let url = node.ws(&format!("/v1/stream?cursor={hello}"));
    let mut socket = ws_connect(&url, Some(&node.admin_token)).await.unwrap();
    ws_frame(&mut socket).await;
    let got: Vec<String> = ws_indicators(&mut socket, 3)
        .await
        .into_iter()
        .map(|(id, _)| id)
        .collect();
    assert_eq!(got, ids);
}

/// A signed billing webhook moves an account to another plan, and its live connection follows
/// within 5 s; a tampered signature changes nothing.
#[tokio::test]
async fn signed_webhook_changes_a_live_plan() {
    let secret = "whsec_test_0123456789";
    let (node, _redis) = start(Backend::Sqlite, &["--billing-webhook-secret", secret]).await;
    node.create_account("payer", "hobby").await;
    let token = node.create_token("payer", "read").await;
    let mut socket = ws_connect(&node.ws("/v1/stream"), Some(&token))
        .await
        .unwrap();
    assert_eq!(ws_frame(&mut socket).await["plan"], "hobby");

    let now = chrono::Utc::now().timestamp();
    let event = json!({"id": "evt_1", "type": "subscription.updated", "account": "payer", "plan": "pro", "created": now});
    let body = event.to_string();
    let post = |signature: String, body: String| {
        reqwest::Client::new()
            .post(node.http("/v1/billing/webhook"))
            .header("sluice-signature", signature)
            .header("content-type", "application/json")
            .body(body)
            .send()
    };
    let tampered = body.replace("pro", "enterprise");
    let signature = billing::webhook_signature::sign(secret.as_bytes(), now, body.as_bytes());
    assert_eq!(
        post(signature.clone(), tampered).await.unwrap().status(),
        401
    );
    let sent = std::time::Instant::now();
    assert_eq!(post(signature, body).await.unwrap().status(), 200);
    let frame = ws_typed_frame(&mut socket).await;
    assert!(
        matches!(&frame, Frame::Plan { plan, .. } if plan == "pro"),
        "{frame:?}"
    );
    assert!(sent.elapsed() < Duration::from_secs(5));
}

/// Usage is metered per account and day, and the account can read it.
#[tokio::test]
async fn usage_is_metered() {
    let (node, _redis) = start(Backend::Sqlite, &["--usage-flush-interval", "200ms"]).await;
    node.create_account("meter", "pro").await;
    let token = node.create_token("meter", "read").await;
    let mut socket = ws_connect(&node.ws("/v1/stream"), Some(&token))
        .await
        .unwrap();
    ws_frame(&mut socket).await;
    node.publish_all(&(0..5).map(indicator).collect::<Vec<_>>())
        .await;
    ws_indicators(&mut socket, 5).await;
    ws_send_close(&mut socket).await;
    drop(socket);
    let day = usage_once_delivered(&node, &token, 5).await;
    assert_eq!(day["connections"], 1, "{day}");
    assert!(day["bytes"].as_u64().unwrap() > 5 * 50, "{day}");
}

/// A stream resumed from its cursor (the page's viewer after Pause and Resume) is metered for
/// what it catches up on: every indicator sent counts as delivered, replayed or live, as the
/// Usage page says.
#[tokio::test]
async fn catching_up_after_a_pause_is_metered() {
    let (node, _redis) = start(Backend::Sqlite, &["--usage-flush-interval", "200ms"]).await;
    node.create_account("pauser", "pro").await;
    let token = node.create_token("pauser", "read").await;
    let mut socket = ws_connect(&node.ws("/v1/stream"), Some(&token))
        .await
        .unwrap();
    ws_frame(&mut socket).await;
    node.publish_all(&(0..3).map(indicator).collect::<Vec<_>>())
        .await;
    let live = ws_indicators(&mut socket, 3).await;
    ws_send_close(&mut socket).await;
    drop(socket);
    // Published while paused: nobody is streaming.
    node.publish_all(&(3..7).map(indicator).collect::<Vec<_>>())
        .await;
    let resume = node.ws(&format!("/v1/stream?cursor={}", live[2].0));
    let mut socket = ws_connect(&resume, Some(&token)).await.unwrap();
    assert_eq!(ws_frame(&mut socket).await["type"], "hello");
    let caught_up = ws_indicators(&mut socket, 4).await;
    assert_eq!(caught_up[0].1, ip(3));
    ws_send_close(&mut socket).await;
    drop(socket);
    let day = usage_once_delivered(&node, &token, 7).await;
    assert_eq!(day["connections"], 2, "{day}");
}

/// Today's usage of the token's account, once it counts `delivered` indicators (usage is
/// flushed to the database every `--usage-flush-interval`).
async fn usage_once_delivered(node: &Node, token: &str, delivered: u64) -> Value {
    let deadline = tokio::time::Instant::now() + WAIT;
    loop {
        let usage: Value = reqwest::Client::new()
            .get(node.http("/v1/account/usage"))
            .bearer_auth(token)
            .send()
            .await
            .unwrap()
            .json()
            .await
            .unwrap();
        let day = &usage["days"][0];
        if day["delivered"] == delivered {
            return day.clone();
        }
        assert!(
            tokio::time::Instant::now() < deadline,
            "usage never reached {delivered} delivered: {usage}"
        );
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
}

/// A feed counts what it returns: its indicators as delivered and its body's bytes.
#[tokio::test]
async fn feed_usage_counts_the_body() {
    let (node, _redis) = start(Backend::Sqlite, &["--usage-flush-interval", "200ms"]).await;
    node.create_account("reader", "pro").await;
    let token = node.create_token("reader", "read").await;
    node.publish_all(&(0..3).map(indicator).collect::<Vec<_>>())
        .await;
    let body = reqwest::Client::new()
        .get(node.http("/v1/indicators"))
        .bearer_auth(&token)
        .send()
        .await
        .unwrap()
        .text()
        .await
        .unwrap();
    assert_eq!(serde_json::from_str::<Vec<Value>>(&body).unwrap().len(), 3);
    let day = usage_once_delivered(&node, &token, 3).await;
    assert_eq!(day["bytes"], body.len() as u64, "{day}");
}
