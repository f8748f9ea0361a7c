//! `since=` on the stream (docs/protocol.md §4.5): the first entry added at or after a time, over
//! WebSocket and SSE, on the SQLite and Redis logs; beyond the plan's replay window a `reset`
//! exactly as an old cursor gets; with a cursor a 400, unless the cursor is an `EventSource`'s
//! `Last-Event-ID`, which resumes; malformed values a 400; a time to come waits for new entries.

use std::time::Duration;

use domain::protocol::ResetReason;
use domain::Frame;
use serde_json::{json, Value};

use crate::harness::*;
use crate::{start, Backend};

/// The millisecond of a cursor (`<epoch>.<ms>-<seq>`): when the log added the entry.
fn ms_of(cursor: &str) -> u64 {
    let (_, id) = cursor.split_once('.').unwrap();
    id.split_once('-').unwrap().0.parse().unwrap()
}

fn now_ms() -> u64 {
    chrono::Utc::now().timestamp_millis() as u64
}

fn rfc3339(ms: u64) -> String {
    chrono::DateTime::from_timestamp_millis(ms as i64)
        .unwrap()
        .to_rfc3339_opts(chrono::SecondsFormat::Millis, true)
}

/// Publishes `before`, notes the time once they are in the log, then publishes `after`:
/// returns (the ids of `before`, the time, the ids of `after`).
async fn publish_around_a_time(
    node: &Node,
    before: std::ops::Range<usize>,
    after: std::ops::Range<usize>,
) -> (Vec<String>, u64, Vec<String>) {
    let old = node
        .publish_all(&before.map(indicator).collect::<Vec<_>>())
        .await;
    tokio::time::sleep(Duration::from_millis(30)).await;
    let time = now_ms();
    tokio::time::sleep(Duration::from_millis(30)).await;
    let new = node
        .publish_all(&after.map(indicator).collect::<Vec<_>>())
        .await;
    assert!(
        old.iter().all(|id| ms_of(id) < time) && new.iter().all(|id| ms_of(id) >= time),
        "the log's clock is this machine's: {old:?} {time} {new:?}"
    );
    (old, time, new)
}

/// The stream's `hello` cursor; panics on anything else.
async fn hello(socket: &mut Ws) -> String {
    match ws_typed_frame(socket).await {
        Frame::Hello { cursor, .. } => cursor.to_string(),
        other => panic!("the stream does not start with `hello`: {other:?}"),
    }
}

async fn since_starts_at_the_first_entry_added_at_or_after_it(backend: Backend) {
    let (node, _redis) = start(backend, &["--no-correlator"]).await;
    let (old, time, new) = publish_around_a_time(&node, 0..3, 3..6).await;
    let url = node.ws(&format!("/v1/stream?since={}", rfc3339(time)));
    let mut socket = ws_connect(&url, Some(&node.admin_token)).await.unwrap();
    let start = hello(&mut socket).await;
    let got: Vec<String> = ws_indicators(&mut socket, 3)
        .await
        .into_iter()
        .map(|(id, _)| id)
        .collect();
    assert_eq!(
        got, new,
        "exactly what was added after the time, no reset before it"
    );
    // Then it follows the live log, without a gap or a duplicate.
    let live = node.publish_all(&[indicator(6)]).await;
    assert_eq!(ws_indicators(&mut socket, 1).await[0].0, live[0]);
    ws_send_close(&mut socket).await;

    // The `hello` cursor resumes the same way: it is a position right before the time.
    let url = node.ws(&format!("/v1/stream?cursor={start}"));
    let mut socket = ws_connect(&url, Some(&node.admin_token)).await.unwrap();
    assert_eq!(hello(&mut socket).await, start);
    assert_eq!(ws_indicators(&mut socket, 1).await[0].0, new[0]);
    ws_send_close(&mut socket).await;

    // "At or after": an entry added in the very millisecond named is included, and Unix
    // seconds (the feed's other spelling) mean the same.
    let all: Vec<String> = old.iter().chain(&new).chain(&live).cloned().collect();
    for since in [rfc3339(ms_of(&old[2])), (ms_of(&old[2]) / 1000).to_string()] {
        let since_ms = since
            .parse::<u64>()
            .map_or_else(|_| ms_of(&old[2]), |seconds| seconds * 1000);
        let expected: Vec<String> = all
            .iter()
            .filter(|id| ms_of(id) >= since_ms)
            .cloned()
            .collect();
        assert!(expected.contains(&old[2]));
        let url = node.ws(&format!("/v1/stream?since={since}"));
        let mut socket = ws_connect(&url, Some(&node.admin_token)).await.unwrap();
        hello(&mut socket).await;
        let got: Vec<String> = ws_indicators(&mut socket, expected.len())
            .await
            .into_iter()
            .map(|(id, _)| id)
            .collect();
        assert_eq!(got, expected, "since={since}");
        ws_send_close(&mut socket).await;
    }
}

#[tokio::test]
async fn since_starts_at_the_first_entry_added_at_or_after_it_sqlite() {
    since_starts_at_the_first_entry_added_at_or_after_it(Backend::Sqlite).await;
}

/// Redis reads `XRANGE` from the position before the time, whose sequence is the largest.
#[tokio::test]
async fn since_starts_at_the_first_entry_added_at_or_after_it_redis() {
    since_starts_at_the_first_entry_added_at_or_after_it(Backend::Redis).await;
}

/// Over SSE too; and an `EventSource` reconnecting with its URL (`since` in it) and
/// `Last-Event-ID` resumes after its last event, never back at the time.
#[tokio::test]
async fn since_over_sse_and_an_event_source_resuming_from_its_place() {
    let (node, _redis) = start(Backend::Sqlite, &["--no-correlator"]).await;
    let (_, time, new) = publish_around_a_time(&node, 0..3, 3..6).await;
    let url = node.http(&format!("/v1/stream?since={}", rfc3339(time)));
    let mut sse = Sse::connect(&url, &node.admin_token, None).await.unwrap();
    assert_eq!(sse.next().await.unwrap().event, "hello");
    let got: Vec<String> = sse
        .indicators(3)
        .await
        .into_iter()
        .map(|(id, _)| id)
        .collect();
    assert_eq!(got, new);
    drop(sse);

    let mut sse = Sse::connect(&url, &node.admin_token, Some(&new[0]))
        .await
        .unwrap();
    let hello = sse.next().await.unwrap();
    assert_eq!(
        (hello.event.as_str(), hello.id.as_str()),
        ("hello", new[0].as_str())
    );
    let got: Vec<String> = sse
        .indicators(2)
        .await
        .into_iter()
        .map(|(id, _)| id)
        .collect();
    assert_eq!(got, new[1..]);
}

/// Replaces the `hobby` plan's limits (admin API): a replay window of `window_seconds`, and
/// room for several streams at once.
async fn set_hobby_replay_window(node: &Node, window_seconds: u64) {
    let response = reqwest::Client::new()
        .put(node.http("/v1/admin/plans/hobby"))
        .bearer_auth(&node.admin_token)
        .json(&json!({
            "price_cents": 2500,
            "firehose": true,
            "sample_per_second": null,
            "max_connections": 10,
            "rate_per_second": null,
            "burst": null,
            "replay_window_seconds": window_seconds,
            "max_tlp": "amber",
            "correlated": true,
        }))
        .send()
        .await
        .unwrap();
    let status = response.status();
    let body: Value = response.json().await.unwrap_or(Value::Null);
    assert_eq!(status, 200, "{body}");
}

/// A `since` older than the plan's replay window starts at the window's start with a
/// `replay_window` reset, exactly as an old cursor does; within the window there is none.
#[tokio::test]
async fn an_old_since_is_reset_like_an_old_cursor() {
    const WINDOW: u64 = 5;
    let (node, _redis) = start(Backend::Sqlite, &["--no-correlator"]).await;
    set_hobby_replay_window(&node, WINDOW).await;
    node.create_account("short", "hobby").await;
    let token = node.create_token("short", "read").await;
    let old = node
        .publish_all(&(0..3).map(indicator).collect::<Vec<_>>())
        .await;
    tokio::time::sleep(Duration::from_millis(WINDOW * 1000 + 500)).await;
    let in_window = now_ms();
    let fresh = node
        .publish_all(&(3..5).map(indicator).collect::<Vec<_>>())
        .await;

    let an_hour_ago = rfc3339(now_ms() - 3_600_000);
    let mut by_time = ws_connect(
        &node.ws(&format!("/v1/stream?since={an_hour_ago}")),
        Some(&token),
    )
    .await
    .unwrap();
    let mut by_cursor = ws_connect(
        &node.ws(&format!("/v1/stream?cursor={}", old[0])),
        Some(&token),
    )
    .await
    .unwrap();
    for (socket, what) in [(&mut by_time, "since"), (&mut by_cursor, "cursor")] {
        let start = hello(socket).await;
        match ws_typed_frame(socket).await {
            Frame::Reset { reason, cursor } => {
                assert_eq!(reason, ResetReason::ReplayWindow, "{what}");
                assert_eq!(
                    cursor.to_string(),
                    start,
                    "{what}: `hello` says where it goes on"
                );
                assert!(ms_of(&start) > ms_of(&old[2]), "{what}: {start}");
            }
            other => panic!("{what}: expected a reset, got {other:?}"),
        }
        let got: Vec<String> = ws_indicators(socket, 2)
            .await
            .into_iter()
            .map(|(id, _)| id)
            .collect();
        assert_eq!(got, fresh, "{what}: only what the window holds");
    }

    // Within the window: no reset, what was added since.
    let url = node.ws(&format!("/v1/stream?since={}", rfc3339(in_window)));
    let mut socket = ws_connect(&url, Some(&token)).await.unwrap();
    hello(&mut socket).await;
    let got: Vec<String> = ws_indicators(&mut socket, 2)
        .await
        .into_iter()
        .map(|(id, _)| id)
        .collect();
    assert_eq!(got, fresh);
}

/// A time to come is no error and no reset: the stream waits for new entries.
#[tokio::test]
async fn a_since_in_the_future_waits_for_new_entries() {
    let (node, _redis) = start(Backend::Sqlite, &["--no-correlator"]).await;
    node.publish_all(&[indicator(0)]).await;
    let url = node.ws(&format!(
        "/v1/stream?since={}",
        rfc3339(now_ms() + 3_600_000)
    ));
    let mut socket = ws_connect(&url, Some(&node.admin_token)).await.unwrap();
    hello(&mut socket).await;
    let fresh = node.publish_all(&[indicator(1)]).await;
    match ws_typed_frame(&mut socket).await {
        Frame::Indicator { id, .. } => assert_eq!(id.to_string(), fresh[0]),
        other => panic!("expected the new indicator, got {other:?}"),
    }
}

/// The body of a refused stream request (SSE, a plain GET) and its status.
async fn refusal(node: &Node, path: &str) -> (u16, String) {
    let response = reqwest::Client::new()
        .get(node.http(path))
        .bearer_auth(&node.admin_token)
        .send()
        .await
        .unwrap();
    let status = response.status().as_u16();
    let body: Value = response.json().await.unwrap_or(Value::Null);
    (
        status,
        body["error"].as_str().unwrap_or_default().to_owned(),
    )
}

/// `since` with a cursor, and a value that is not a time, are 400s that say what to do, on
/// WebSocket and SSE, and on the dialect endpoints, which share the query parsing.
#[tokio::test]
async fn since_with_a_cursor_or_a_bad_value_is_a_400() {
    let (node, _redis) = start(Backend::Sqlite, &["--no-correlator"]).await;
    let time = rfc3339(now_ms());
    let both = format!("/v1/stream?since={time}&cursor=earliest");
    let (status, message) = refusal(&node, &both).await;
    assert_eq!(status, 400, "{message}");
    assert!(message.contains("`since` and `cursor`"), "{message}");
    assert_eq!(
        ws_connect(&node.ws(&both), Some(&node.admin_token))
            .await
            .err(),
        Some(400)
    );
    for bad in ["yesterday", "2026-13-01T00:00:00Z", "2026-11-23"] {
        let path = format!("/v1/stream?since={bad}");
        let (status, message) = refusal(&node, &path).await;
        assert_eq!(status, 400, "{bad}: {message}");
        assert!(
            message.contains(bad) && message.contains("RFC 3339"),
            "{bad}: {message}"
        );
        for path in [
            path.clone(),
            format!("/firehose?since={bad}"),
            format!("/cif/firehose?since={bad}"),
        ] {
            assert_eq!(
                ws_connect(&node.ws(&path), Some(&node.admin_token))
                    .await
                    .err(),
                Some(400),
                "{path}"
            );
        }
    }
    // An empty `since` is none at all.
    let mut socket = ws_connect(&node.ws("/v1/stream?since="), Some(&node.admin_token))
        .await
        .unwrap();
    hello(&mut socket).await;

    // The description of the stream documents it.
    let document: Value = reqwest::get(node.http("/openapi.json"))
        .await
        .unwrap()
        .json()
        .await
        .unwrap();
    let parameters = document["paths"]["/v1/stream"]["get"]["parameters"]
        .as_array()
        .unwrap();
    assert!(
        parameters
            .iter()
            .any(|parameter| parameter["name"] == "since" && parameter["in"] == "query"),
        "{parameters:?}"
    );
}
