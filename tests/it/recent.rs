//! Recent feeds (`GET /v1/indicators`, CIF's `GET /indicators` and `/ping`): whitelist
//! subtraction, deduplication, order, formats, `Content-Length`, and the plan's limits.

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
