//! Withdrawals end to end: a provider takes back its report (a batch item or `DELETE
//! /v1/indicators/{id}`), only its own and only once; streams carry a `withdrawn` frame (WS
//! and SSE), feeds and lists drop the report but keep other providers', TAXII revokes the
//! object, the Redis upstream withdraws alike, and the correlator stops counting the provider.

use std::time::Duration;

use chrono::{SecondsFormat, TimeDelta, Utc};
use domain::Frame;
use serde_json::{json, Value};

use crate::harness::*;

/// `DELETE /v1/indicators/{id}` (`id` percent-encoded as a path segment).
async fn withdraw(node: &Node, token: &str, id: &str) -> (u16, Value) {
    let segment: String = url::form_urlencoded::byte_serialize(id.as_bytes()).collect();
    let response = reqwest::Client::new()
        .delete(node.http(&format!("/v1/indicators/{segment}")))
        .bearer_auth(token)
        .send()
        .await
        .unwrap();
    let status = response.status().as_u16();
    (status, response.json().await.unwrap_or(Value::Null))
}

/// `GET path` with a bearer token: status, `ETag`, body.
async fn fetch(node: &Node, path: &str, token: &str) -> (u16, String, String) {
    let response = reqwest::Client::new()
        .get(node.http(path))
        .bearer_auth(token)
        .send()
        .await
        .unwrap();
    let status = response.status().as_u16();
    let etag = response
        .headers()
        .get("etag")
        .map(|value| value.to_str().unwrap().to_owned())
        .unwrap_or_default();
    (status, etag, response.text().await.unwrap())
}

/// The next frame that is not a `hello`.
async fn next_frame(socket: &mut Ws) -> Frame {
    loop {
        match ws_typed_frame(socket).await {
            Frame::Hello { .. } => continue,
            frame => return frame,
        }
    }
}

/// A TAXII object by id from the `indicators` collection, as the admin sees it.
async fn taxii_object(node: &Node, id: &str) -> Value {
    let response = reqwest::Client::new()
        .get(node.http(&format!("/taxii2/api/collections/indicators/objects/{id}/")))
        .header("accept", "application/taxii+json;version=2.1")
        .bearer_auth(&node.admin_token)
        .send()
        .await
        .unwrap();
    assert_eq!(response.status(), 200);
    let envelope: Value = response.json().await.unwrap();
    envelope["objects"][0].clone()
}

#[tokio::test]
async fn a_provider_withdraws_its_own_report_once_and_every_output_follows() {
    let node = Node::start(NodeOptions {
        args: ["--no-correlator", "--feed-rate", "0"]
            .map(String::from)
            .to_vec(),
        ..NodeOptions::default()
    })
    .await;
    for account in ["honeypot", "other"] {
        node.create_account(account, "pro").await;
    }
    let honeypot = node.create_token("honeypot", "write").await;
    let other = node.create_token("other", "write").await;
    let mut socket = ws_connect(&node.ws("/v1/stream"), Some(&node.admin_token))
        .await
        .unwrap();
    let mut sse = Sse::connect(&node.http("/v1/stream"), &node.admin_token, None)
        .await
        .unwrap();

    let (status, answer) = node
        .publish(
            &honeypot,
            &json!([
                {"indicator": "185.220.101.7", "tags": "scanner", "confidence": 9, "tlp": "green"},
                {"indicator": "evil.example.net", "tags": "c2", "confidence": 9},
            ]),
        )
        .await;
    assert_eq!((status, &answer["accepted"]), (202, &json!(2)), "{answer}");
    let (status, answer) = node
        .publish(
            &other,
            &json!({"indicator": "185.220.101.7", "tags": "scanner", "confidence": 8}),
        )
        .await;
    assert_eq!(status, 202, "{answer}");
    let (_, sinkhole_etag, sinkhole) =
        fetch(&node, "/v1/lists/sinkhole.txt", &node.admin_token).await;
    assert_eq!(sinkhole, "evil.example.net\n");

    // Only one's own: another account cannot withdraw it, by id or by name, and cannot tell
    // whether it exists.
    let object = sluice_stix::indicator_id("honeypot", "185.220.101.7");
    for id in [object.as_str(), "evil.example.net"] {
        let (status, answer) = withdraw(&node, &other, id).await;
        assert_eq!(status, 404, "{id}: {answer}");
        assert!(
            answer["error"]
                .as_str()
                .unwrap()
                .contains("nothing to withdraw"),
            "{answer}"
        );
    }
    let (status, answer) = withdraw(&node, &other, "indicator--NOT-A-UUID").await;
    assert_eq!(status, 400, "{answer}");
    let (status, _) = withdraw(
        &node,
        &node.create_token("honeypot", "read").await,
        "evil.example.net",
    )
    .await;
    assert_eq!(status, 403, "withdrawing needs a write token");

    // A batch item withdraws; one with nothing to withdraw is refused, the rest stands.
    let (status, answer) = node
        .publish(
            &honeypot,
            &json!([
                {"indicator": "EVIL.example.net.", "withdrawn": true},
                {"indicator": "never.example.org", "withdrawn": true},
                {"indicator": "185.220.101.8", "withdrawn": "yes"},
            ]),
        )
        .await;
    assert_eq!(status, 202, "{answer}");
    assert_eq!(answer["accepted"], 1, "{answer}");
    let rejected = answer["rejected"].as_array().unwrap();
    assert_eq!(rejected.len(), 2, "{answer}");
    assert_eq!(rejected[0]["index"], 1);
    assert!(rejected[0]["error"]
        .as_str()
        .unwrap()
        .contains("nothing to withdraw"));
    assert_eq!(rejected[1]["index"], 2);
    assert!(rejected[1]["error"]
        .as_str()
        .unwrap()
        .contains("expected true"));

    // By its STIX id: answered with the withdrawal's cursor; a second time there is nothing.
    let (status, answer) = withdraw(&node, &honeypot, &object).await;
    assert_eq!(status, 200, "{answer}");
    assert_eq!(answer["object"], object.as_str());
    assert_eq!(answer["indicator"], "185.220.101.7");
    let (status, answer) = withdraw(&node, &honeypot, "185.220.101.7").await;
    assert_eq!(status, 404, "{answer}");
    assert!(
        answer["error"]
            .as_str()
            .unwrap()
            .contains("already withdrawn"),
        "{answer}"
    );

    // WebSocket: three reports, then two `withdrawn` frames carrying the report's fields.
    for _ in 0..3 {
        assert!(matches!(
            next_frame(&mut socket).await,
            Frame::Indicator { .. }
        ));
    }
    let mut withdrawn = Vec::new();
    for _ in 0..2 {
        match next_frame(&mut socket).await {
            Frame::Withdrawn { data, .. } => withdrawn.push(data),
            other => panic!("expected a withdrawn frame, got {other:?}"),
        }
    }
    assert_eq!(withdrawn[0]["indicator"], "evil.example.net");
    assert_eq!(withdrawn[0]["tags"], json!(["c2"]), "the report's fields");
    assert_eq!(withdrawn[1]["indicator"], "185.220.101.7");
    assert_eq!(withdrawn[1]["tlp"], "green");
    for data in &withdrawn {
        assert_eq!(data["provider"], "honeypot");
        assert_eq!(data["withdrawn"], true);
    }

    // SSE names the event.
    let mut events = Vec::new();
    while events.len() < 5 {
        let event = tokio::time::timeout(Duration::from_secs(10), sse.next())
            .await
            .expect("an SSE event")
            .expect("the stream is open");
        if event.event != "hello" {
            events.push(event.event);
        }
    }
    assert_eq!(
        events,
        [
            "indicator",
            "indicator",
            "indicator",
            "withdrawn",
            "withdrawn"
        ]
    );

    // Lists and feeds: the withdrawn reports are gone, the other provider's stays.
    let (_, etag, sinkhole) = fetch(&node, "/v1/lists/sinkhole.txt", &node.admin_token).await;
    assert_eq!(sinkhole, "", "withdrawn by its only provider");
    assert_ne!(etag, sinkhole_etag, "pollers see the change");
    let (_, _, firewall) = fetch(&node, "/v1/lists/firewall.txt", &node.admin_token).await;
    assert_eq!(firewall, "185.220.101.7\n", "other still reports it");
    let (status, _, recent) = fetch(&node, "/v1/indicators?limit=50", &node.admin_token).await;
    assert_eq!(status, 200, "{recent}");
    let recent: Value = serde_json::from_str(&recent).unwrap();
    let listed: Vec<(String, String)> = recent
        .as_array()
        .unwrap()
        .iter()
        .map(|item| {
            assert!(
                item.get("withdrawn").is_none(),
                "a feed lists no withdrawal: {item}"
            );
            (
                item["indicator"].as_str().unwrap().to_owned(),
                item["provider"].as_str().unwrap().to_owned(),
            )
        })
        .collect();
    assert_eq!(listed, [("185.220.101.7".to_owned(), "other".to_owned())]);

    // TAXII: the object's last version is revoked.
    let revoked = taxii_object(&node, &object).await;
    assert_eq!(revoked["revoked"], true, "{revoked}");
    let others = taxii_object(&node, &sluice_stix::indicator_id("other", "185.220.101.7")).await;
    assert!(others.get("revoked").is_none(), "{others}");

    // Reported again: listed again, and it can be withdrawn again.
    let (status, _) = node
        .publish(
            &honeypot,
            &json!({"indicator": "evil.example.net", "tags": "c2", "confidence": 9}),
        )
        .await;
    assert_eq!(status, 202);
    let (_, _, sinkhole) = fetch(&node, "/v1/lists/sinkhole.txt", &node.admin_token).await;
    assert_eq!(sinkhole, "evil.example.net\n");
    assert!(taxii_object(
        &node,
        &sluice_stix::indicator_id("honeypot", "evil.example.net")
    )
    .await
    .get("revoked")
    .is_none());
    let (status, answer) = withdraw(&node, &honeypot, "evil.example.net").await;
    assert_eq!(status, 200, "{answer}");

    let metrics = node.metrics().await;
    assert!(
        metrics.contains(r#"sluice_ingest_withdrawals_total{source="http"} 3"#),
        "{metrics}"
    );
}

#[tokio::test]
async fn the_redis_upstream_withdraws_as_its_provider() {
    let redis = testkit::RedisServer::start().unwrap();
    let node = Node::start(NodeOptions {
        redis: Some(redis.url()),
        args: ["--no-correlator", "--feed-rate", "0"]
            .map(String::from)
            .to_vec(),
        ..NodeOptions::default()
    })
    .await;
    wait_upstream_subscribers(&redis.url(), 1).await;
    let mut socket = ws_connect(&node.ws("/v1/stream"), Some(&node.admin_token))
        .await
        .unwrap();
    let mut conn = redis_conn(&redis.url()).await;
    for message in [
        json!({"indicator": "185.220.101.9", "provider": "feed-a", "tags": "scanner"}),
        json!({"indicator": "185.220.101.9", "provider": "feed-b", "withdrawn": true}),
        json!({"indicator": "185.220.101.9", "provider": "feed-a", "withdrawn": true}),
    ] {
        redis::cmd("PUBLISH")
            .arg("indicators")
            .arg(message.to_string())
            .query_async::<()>(&mut conn)
            .await
            .unwrap();
    }
    assert!(matches!(
        next_frame(&mut socket).await,
        Frame::Indicator { .. }
    ));
    match next_frame(&mut socket).await {
        Frame::Withdrawn { data, .. } => assert_eq!(data["provider"], "feed-a"),
        other => panic!("expected feed-a's withdrawal, got {other:?}"),
    }
    let metrics = node.metrics().await;
    assert!(
        metrics.contains(r#"sluice_ingest_withdrawals_total{source="upstream"} 1"#)
            && metrics.contains(r#"sluice_ingest_rejected_total{source="upstream"} 1"#),
        "feed-b had nothing to withdraw: {metrics}"
    );
}

#[tokio::test]
async fn the_correlator_stops_counting_a_provider_that_withdrew() {
    let node = Node::start(NodeOptions {
        args: vec!["--correlate".into(), "scanners:lateness=0s,idle=1s".into()],
        ..NodeOptions::default()
    })
    .await;
    let mut socket = ws_connect(
        &node.ws("/v1/stream?correlated=true"),
        Some(&node.admin_token),
    )
    .await
    .unwrap();
    let now = Utc::now();
    let at = |minutes: i64| {
        (now - TimeDelta::minutes(minutes)).to_rfc3339_opts(SecondsFormat::Secs, true)
    };
    let mut tokens = Vec::new();
    for account in ["isp-a", "isp-b", "isp-c", "isp-d"] {
        node.create_account(account, "pro").await;
        tokens.push(node.create_token(account, "write").await);
    }
    let report = |minutes| json!({"indicator": "185.220.102.9", "tags": "scanner", "reporttime": at(minutes)});
    for (token, body) in [
        (&tokens[0], report(50)),
        (&tokens[1], report(40)),
        // isp-a takes its report back before a third provider reports.
        (
            &tokens[0],
            json!({"indicator": "185.220.102.9", "withdrawn": true}),
        ),
    ] {
        let (status, answer) = node.publish(token, &body).await;
        assert_eq!(status, 202, "{answer}");
        assert!(
            answer["rejected"].as_array().unwrap().is_empty(),
            "{answer}"
        );
    }
    // The withdrawal is at the time it was made: the later reports must be later still.
    tokio::time::sleep(Duration::from_millis(1100)).await;
    for token in &tokens[2..] {
        let later = json!({"indicator": "185.220.102.9", "tags": "scanner"});
        let (status, answer) = node.publish(token, &later).await;
        assert_eq!(status, 202, "{answer}");
    }
    let derived = match next_frame(&mut socket).await {
        Frame::Indicator { data, .. } => data,
        other => panic!("unexpected frame {other:?}"),
    };
    let providers: Vec<&str> = derived["sources"]
        .as_array()
        .unwrap()
        .iter()
        .map(|source| source["provider"].as_str().unwrap())
        .collect();
    assert_eq!(
        providers,
        ["isp-b", "isp-c", "isp-d"],
        "isp-a withdrew: the third provider after it is isp-d: {derived}"
    );
    let metrics = node.metrics().await;
    assert!(
        metrics.contains(r#"sluice_correlator_withdrawals_total{rule="scanners"} 1"#),
        "{metrics}"
    );
}
