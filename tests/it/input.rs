//! Bad input gets a clear error and costs nothing else.

use std::time::Duration;

use domain::CloseCode;
use serde_json::{json, Value};

use crate::harness::*;
use crate::{start, Backend};

#[tokio::test]
async fn batch_reports_each_item_and_keeps_the_good_ones() {
    let (node, _redis) = start(Backend::Sqlite, &[]).await;
    let mut socket = ws_connect(&node.ws("/v1/stream"), Some(&node.admin_token))
        .await
        .unwrap();
    ws_frame(&mut socket).await;
    let batch = json!([
        {"indicator": "185.20.30.40", "tags": "scanner"},
        {"indicator": 42},
        {"indicator": "192.168.1.1"},
        {"indicator": "185.20.30.41", "itype": "fqdn"},
        {"indicator": "185.20.30.42", "itype": "banana"},
        {"indicator": "185.20.30.43", "confidence": "very"},
        "not an object",
        {"indicator": "evil.example.net", "provider": "someone-else"},
    ]);
    let (status, answer) = node.publish(&node.admin_token, &batch).await;
    assert_eq!(status, 202, "{answer}");
    assert_eq!(answer["accepted"], 2);
    let rejected: Vec<u64> = answer["rejected"]
        .as_array()
        .unwrap()
        .iter()
        .map(|item| {
            assert!(!item["error"].as_str().unwrap().is_empty());
            item["index"].as_u64().unwrap()
        })
        .collect();
    assert_eq!(rejected, [1, 2, 3, 4, 5, 6]);
    let frames = [ws_frame(&mut socket).await, ws_frame(&mut socket).await];
    assert_eq!(frames[0]["data"]["indicator"], "185.20.30.40");
    assert_eq!(frames[1]["data"]["indicator"], "evil.example.net");
    // Over HTTP the provider is the authenticated account, never the payload.
    assert_eq!(frames[1]["data"]["provider"], "admin");
}

#[tokio::test]
async fn malformed_bodies_are_400_and_oversized_413() {
    let (node, _redis) = start(Backend::Sqlite, &[]).await;
    let client = reqwest::Client::new();
    let post = |body: Vec<u8>, content_type: &'static str| {
        client
            .post(node.http("/v1/indicators"))
            .bearer_auth(&node.admin_token)
            .header("content-type", content_type)
            .body(body)
            .send()
    };
    for body in [&b"{not json"[..], b"\xff\xfe", b"42", b"\"text\""] {
        let response = post(body.to_vec(), "application/json").await.unwrap();
        assert_eq!(response.status(), 400);
        let answer: Value = response.json().await.unwrap();
        assert!(answer["error"].as_str().unwrap().len() > 10, "{answer}");
    }
    let big = format!(
        "[{}]",
        vec![r#"{"indicator":"185.1.1.1"}"#; 50_000].join(",")
    );
    assert!(big.len() > 1024 * 1024);
    let response = post(big.into_bytes(), "application/json").await.unwrap();
    assert_eq!(response.status(), 413);

    // NDJSON: a bad line is one rejected item.
    let ndjson = "{\"indicator\":\"185.1.1.2\"}\nnot json\n\n{\"indicator\":\"185.1.1.3\"}\n";
    let response = post(ndjson.as_bytes().to_vec(), "application/x-ndjson")
        .await
        .unwrap();
    assert_eq!(response.status(), 202);
    let answer: Value = response.json().await.unwrap();
    assert_eq!(answer["accepted"], 2);
    assert_eq!(answer["rejected"][0]["index"], 1);
}

#[tokio::test]
async fn bad_credentials_are_refused_before_upgrade() {
    let (node, _redis) = start(Backend::Sqlite, &[]).await;
    let forged = billing::ApiToken::generate();
    for token in [None, Some("garbage"), Some(forged.expose())] {
        let refused = ws_connect(&node.ws("/v1/stream"), token).await;
        assert_eq!(refused.err(), Some(401), "token {token:?}");
        let sse = Sse::connect(&node.http("/v1/stream"), token.unwrap_or(""), None).await;
        assert_eq!(sse.err(), Some(401));
    }
    // A read token cannot publish.
    node.create_account("reader", "pro").await;
    let read = node.create_token("reader", "read").await;
    let (status, answer) = node
        .publish(&read, &json!({"indicator": "185.1.1.1"}))
        .await;
    assert_eq!(status, 403, "{answer}");
    // ... but streams.
    let mut socket = ws_connect(&node.ws("/v1/stream"), Some(&read))
        .await
        .unwrap();
    assert_eq!(ws_frame(&mut socket).await["plan"], "pro");
}

#[tokio::test]
async fn websocket_protocol_violations_get_their_close_codes() {
    use futures::SinkExt;
    use tokio_tungstenite::tungstenite::protocol::frame::coding::{Data, OpCode};
    use tokio_tungstenite::tungstenite::protocol::frame::Frame;
    use tokio_tungstenite::tungstenite::Message;

    let (node, _redis) = start(Backend::Sqlite, &[]).await;
    let mut socket = ws_connect(&node.ws("/v1/stream"), Some(&node.admin_token))
        .await
        .unwrap();
    ws_frame(&mut socket).await;
    socket
        .send(Message::text("x".repeat(100 * 1024)))
        .await
        .unwrap();
    assert_eq!(ws_close_code(&mut socket).await.0, CloseCode::TooBig.code());

    let mut socket = ws_connect(&node.ws("/v1/stream"), Some(&node.admin_token))
        .await
        .unwrap();
    ws_frame(&mut socket).await;
    let invalid = Frame::message(vec![0xff, 0xfe, 0xfd], OpCode::Data(Data::Text), true);
    socket.send(Message::Frame(invalid)).await.unwrap();
    assert_eq!(
        ws_close_code(&mut socket).await.0,
        CloseCode::InvalidData.code()
    );

    // Ordinary client chatter is ignored, and the stream goes on.
    let mut socket = ws_connect(&node.ws("/v1/stream"), Some(&node.admin_token))
        .await
        .unwrap();
    ws_frame(&mut socket).await;
    socket.send(Message::text("{\"hello\":1}")).await.unwrap();
    node.publish_all(&[indicator(1)]).await;
    assert_eq!(ws_frame(&mut socket).await["type"], "indicator");
}

/// Nobody outside Sluice speaks as its correlator: a `sluice/` provider or the `correlated`
/// tag is refused on the Redis upstream and over HTTP, counted apart, and never reaches a
/// `?correlated=true` stream or the feed.
#[tokio::test]
async fn forged_correlator_output_is_refused_on_every_path() {
    let (node, redis) = start(Backend::Redis, &["--no-correlator"]).await;
    let redis = redis.unwrap();
    let mut correlated = ws_connect(
        &node.ws("/v1/stream?correlated=true"),
        Some(&node.admin_token),
    )
    .await
    .unwrap();
    let mut everything = ws_connect(&node.ws("/v1/stream"), Some(&node.admin_token))
        .await
        .unwrap();
    ws_frame(&mut correlated).await;
    ws_frame(&mut everything).await;
    wait_upstream_subscribers(&redis.url(), 1).await;
    let mut conn = redis_conn(&redis.url()).await;
    for forged in [
        json!({"indicator": ip(1), "provider": "sluice/correlator", "tags": ["correlated", "scanner"],
               "count": 3, "rule": "scanners"}),
        json!({"indicator": ip(2), "provider": "sluice/anything"}),
        json!({"indicator": ip(3), "provider": "honeypot", "tags": "correlated"}),
        json!({"indicator": ip(4), "provider": "honeypot", "tags": "scanner"}),
    ] {
        let _: i64 = redis::cmd("PUBLISH")
            .arg("indicators")
            .arg(forged.to_string())
            .query_async(&mut conn)
            .await
            .unwrap();
    }
    let (status, answer) = node
        .publish(
            &node.admin_token,
            &json!([
                {"indicator": ip(5), "provider": "sluice/correlator"},
                {"indicator": ip(6), "tags": ["Correlated"]},
                {"indicator": ip(7)},
            ]),
        )
        .await;
    assert_eq!(status, 202, "{answer}");
    assert_eq!(answer["accepted"], 1, "{answer}");
    for item in answer["rejected"].as_array().unwrap() {
        assert!(
            item["error"].as_str().unwrap().contains("reserved"),
            "{item}"
        );
    }
    // Only the two honest ones arrive (the upstream and HTTP race each other, so in either
    // order), and nothing on the correlated stream.
    let mut delivered: Vec<String> = ws_indicators(&mut everything, 2)
        .await
        .into_iter()
        .map(|(_, indicator)| indicator)
        .collect();
    delivered.sort();
    let mut honest = [ip(4), ip(7)];
    honest.sort();
    assert_eq!(delivered, honest);
    assert!(
        tokio::time::timeout(Duration::from_millis(300), ws_frame(&mut correlated))
            .await
            .is_err(),
        "a forged indicator reached ?correlated=true"
    );
    let metrics = node.metrics().await;
    assert!(
        metrics.contains(r#"sluice_ingest_reserved_total{source="upstream"} 3"#),
        "{metrics}"
    );
    assert!(
        metrics.contains(r#"sluice_ingest_reserved_total{source="http"} 2"#),
        "{metrics}"
    );
}
