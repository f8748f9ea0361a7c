//! Delivery and resume over WebSocket and SSE, on every log backend (same test bodies).

use domain::protocol::ResetReason;
use domain::{Cursor, Frame};
use serde_json::Value;

use crate::harness::*;
use crate::{start, Backend};

testkit::on_each_log_backend!(
    crate::Backend::Sqlite,
    crate::Backend::Memory,
    crate::Backend::Redis;
    ws_delivers_in_order,
    sse_delivers_in_order,
    resume_without_gap_or_duplicate,
    earliest_replays_the_log,
);

async fn ws_delivers_in_order(backend: Backend) {
    let (node, _redis) = start(backend, &[]).await;
    let mut socket = ws_connect(&node.ws("/v1/stream"), Some(&node.admin_token))
        .await
        .unwrap();
    let Frame::Hello { plan, .. } = ws_typed_frame(&mut socket).await else {
        panic!("the stream does not start with `hello`");
    };
    assert_eq!(plan, "enterprise");

    let sent: Vec<Value> = (0..50).map(indicator).collect();
    let ids = node.publish_all(&sent).await;
    let received = ws_indicators(&mut socket, 50).await;
    let expected: Vec<(String, String)> = ids.into_iter().zip((0..50).map(ip)).collect();
    assert_eq!(received, expected);
}

async fn sse_delivers_in_order(backend: Backend) {
    let (node, _redis) = start(backend, &[]).await;
    let mut sse = Sse::connect(&node.http("/v1/stream"), &node.admin_token, None)
        .await
        .unwrap();
    assert_eq!(sse.headers["content-type"], "text/event-stream");
    assert_eq!(sse.headers["cache-control"], "no-cache");
    assert_eq!(sse.headers["x-accel-buffering"], "no");
    let hello = sse.next().await.unwrap();
    assert_eq!(hello.event, "hello");
    assert_eq!(hello.id, hello.data["cursor"].as_str().unwrap());

    let sent: Vec<Value> = (0..30).map(indicator).collect();
    let ids = node.publish_all(&sent).await;
    let received = sse.indicators(30).await;
    let expected: Vec<(String, String)> = ids.into_iter().zip((0..30).map(ip)).collect();
    assert_eq!(received, expected);
}

/// Each SSE connection's `retry:` hint is drawn between the configured 2 s and twice it, so the
/// clients of a node that restarts do not all come back in the same instant.
#[tokio::test]
async fn sse_retry_hints_are_jittered_per_connection() {
    use futures::StreamExt;

    let (node, _redis) = start(Backend::Memory, &["--no-correlator"]).await;
    let mut hints = Vec::new();
    for _ in 0..8 {
        let response = reqwest::Client::new()
            .get(node.http("/v1/stream"))
            .bearer_auth(&node.admin_token)
            .send()
            .await
            .unwrap();
        assert_eq!(response.status(), 200);
        let mut body = response.bytes_stream();
        let mut text = String::new();
        while !text.contains("\n\n") {
            let chunk = tokio::time::timeout(WAIT, body.next())
                .await
                .expect("no greeting in time")
                .expect("the stream ended before its greeting")
                .unwrap();
            text.push_str(std::str::from_utf8(&chunk).unwrap());
        }
        let first = text.lines().next().unwrap();
        let retry: u64 = first
            .strip_prefix("retry: ")
            .unwrap_or_else(|| panic!("the body does not start with `retry:`: {text}"))
            .parse()
            .unwrap();
        assert!((2000..=4000).contains(&retry), "retry: {retry}");
        hints.push(retry);
    }
    hints.sort();
    hints.dedup();
    assert!(hints.len() > 1, "every connection got retry: {}", hints[0]);
}

/// A client reads part of the stream, disconnects, more arrives, and it resumes from its last
/// cursor: the union is exactly the log, no gap, no duplicate.
async fn resume_without_gap_or_duplicate(backend: Backend) {
    let (node, _redis) = start(backend, &[]).await;
    let mut socket = ws_connect(&node.ws("/v1/stream"), Some(&node.admin_token))
        .await
        .unwrap();
    ws_frame(&mut socket).await;
    let first_ids = node
        .publish_all(&(0..20).map(indicator).collect::<Vec<_>>())
        .await;
    let first = ws_indicators(&mut socket, 10).await;
    ws_send_close(&mut socket).await;
    drop(socket);

    let later_ids = node
        .publish_all(&(20..40).map(indicator).collect::<Vec<_>>())
        .await;
    let resume_from = &first.last().unwrap().0;
    let url = node.ws(&format!("/v1/stream?cursor={resume_from}"));
    let mut socket = ws_connect(&url, Some(&node.admin_token)).await.unwrap();
    let Frame::Hello { cursor, .. } = ws_typed_frame(&mut socket).await else {
        panic!("the stream does not start with `hello`");
    };
    assert_eq!(cursor.to_string(), *resume_from);
    let rest = ws_indicators(&mut socket, 30).await;

    let all_ids: Vec<String> = first_ids.into_iter().chain(later_ids).collect();
    let received: Vec<String> = first.into_iter().chain(rest).map(|(id, _)| id).collect();
    assert_eq!(received, all_ids);

    // SSE resumes the same way from Last-Event-ID.
    let mut sse = Sse::connect(
        &node.http("/v1/stream"),
        &node.admin_token,
        Some(&all_ids[34]),
    )
    .await
    .unwrap();
    assert_eq!(sse.next().await.unwrap().event, "hello");
    let tail: Vec<String> = sse
        .indicators(5)
        .await
        .into_iter()
        .map(|(id, _)| id)
        .collect();
    assert_eq!(tail, all_ids[35..]);
}

async fn earliest_replays_the_log(backend: Backend) {
    let (node, _redis) = start(backend, &[]).await;
    let ids = node
        .publish_all(&(0..15).map(indicator).collect::<Vec<_>>())
        .await;
    let mut socket = ws_connect(
        &node.ws("/v1/stream?cursor=earliest"),
        Some(&node.admin_token),
    )
    .await
    .unwrap();
    ws_frame(&mut socket).await;
    let got: Vec<String> = ws_indicators(&mut socket, 15)
        .await
        .into_iter()
        .map(|(id, _)| id)
        .collect();
    assert_eq!(got, ids);
}

/// Filters are applied server-side: only matching indicators arrive, in order.
#[tokio::test]
async fn filters_select_server_side() {
    let (node, _redis) = start(Backend::Memory, &[]).await;
    let url = node.ws("/v1/stream?itype=fqdn&tags=phishing");
    let mut socket = ws_connect(&url, Some(&node.admin_token)).await.unwrap();
    ws_frame(&mut socket).await;
    let batch = serde_json::json!([
        {"indicator": "185.1.2.3", "tags": ["phishing"]},
        {"indicator": "evil-login.example.net", "tags": ["phishing"]},
        {"indicator": "other.example.org", "tags": ["malware"]},
        {"indicator": "Second-Evil.example.net.", "tags": "phishing,login"},
    ]);
    let (status, _) = node.publish(&node.admin_token, &batch).await;
    assert_eq!(status, 202);
    let got: Vec<String> = ws_indicators(&mut socket, 2)
        .await
        .into_iter()
        .map(|(_, i)| i)
        .collect();
    assert_eq!(got, ["evil-login.example.net", "second-evil.example.net"]);

    let bad = ws_connect(&node.ws("/v1/stream?colour=red"), Some(&node.admin_token)).await;
    assert_eq!(bad.err(), Some(400));
}

/// History removed by retention is announced with `reset`, then delivery continues.
#[tokio::test]
async fn trimmed_history_is_announced_memory() {
    let (node, _redis) = start(Backend::Memory, &["--log-max-entries", "5"]).await;
    let ids = node
        .publish_all(&(0..12).map(indicator).collect::<Vec<_>>())
        .await;
    let url = node.ws(&format!("/v1/stream?cursor={}", ids[0]));
    let mut socket = ws_connect(&url, Some(&node.admin_token)).await.unwrap();
    ws_frame(&mut socket).await;
    let reset = ws_typed_frame(&mut socket).await;
    let Frame::Reset { reason, cursor } = reset else {
        panic!("expected `reset`, got {reset:?}");
    };
    assert_eq!(reason, ResetReason::HistoryTrimmed);
    assert_eq!(cursor.to_string(), ids[6]);
    let got: Vec<String> = ws_indicators(&mut socket, 5)
        .await
        .into_iter()
        .map(|(id, _)| id)
        .collect();
    assert_eq!(got, ids[7..]);
}

#[tokio::test]
async fn trimmed_history_is_announced_redis() {
    let (node, redis) = start(Backend::Redis, &[]).await;
    let redis = redis.unwrap();
    let ids = node
        .publish_all(&(0..12).map(indicator).collect::<Vec<_>>())
        .await;
    let client = redis::Client::open(redis.url()).unwrap();
    let mut conn = client.get_multiplexed_async_connection().await.unwrap();
    let _: i64 = redis::cmd("XTRIM")
        .arg("sluice:log")
        .arg("MAXLEN")
        .arg(5)
        .query_async(&mut conn)
        .await
        .unwrap();
    let url = node.ws(&format!("/v1/stream?cursor={}", ids[0]));
    let mut socket = ws_connect(&url, Some(&node.admin_token)).await.unwrap();
    ws_frame(&mut socket).await;
    let reset = ws_typed_frame(&mut socket).await;
    let Frame::Reset {
        reason,
        cursor: position,
    } = reset
    else {
        panic!("expected `reset`, got {reset:?}");
    };
    assert_eq!(reason, ResetReason::HistoryTrimmed);
    // Redis reports where retention stopped, not which id it removed last: the reset cursor
    // lies between the last removed entry and the first retained one.
    let removed: Cursor = ids[6].parse().unwrap();
    let retained: Cursor = ids[7].parse().unwrap();
    assert!(
        removed.id() <= position.id() && position.id() < retained.id(),
        "{position} is not between {removed} and {retained}"
    );
    let got: Vec<String> = ws_indicators(&mut socket, 5)
        .await
        .into_iter()
        .map(|(id, _)| id)
        .collect();
    assert_eq!(got, ids[7..]);
    // A resume from that reset cursor continues with no further reset.
    let url = node.ws(&format!("/v1/stream?cursor={position}"));
    let mut again = ws_connect(&url, Some(&node.admin_token)).await.unwrap();
    ws_frame(&mut again).await;
    let got: Vec<String> = ws_indicators(&mut again, 5)
        .await
        .into_iter()
        .map(|(id, _)| id)
        .collect();
    assert_eq!(got, ids[7..]);
}

/// A cursor from another incarnation of the log (the process restarted) gets `reset`.
#[tokio::test]
async fn cursor_from_a_lost_log_is_reset() {
    let (node, _redis) = start(Backend::Memory, &[]).await;
    let url = node.ws("/v1/stream?cursor=zzzzzz.1-0");
    let mut socket = ws_connect(&url, Some(&node.admin_token)).await.unwrap();
    ws_frame(&mut socket).await;
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

    let bad = ws_connect(
        &node.ws("/v1/stream?cursor=garbage"),
        Some(&node.admin_token),
    )
    .await;
    assert_eq!(bad.err(), Some(400));
}
