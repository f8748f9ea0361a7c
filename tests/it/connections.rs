//! The admin API's connection list on a real node (docs/protocol.md §6.8): what it says about
//! each open stream, who may ask, filtering and paging, closing one stream (1001 with its cursor,
//! and it resumes) or an account's, and the lag of a stream that reads nothing.

use std::time::Duration;

use serde_json::Value;

use crate::harness::*;

async fn list(node: &Node, token: Option<&str>, query: &str) -> (u16, Value) {
    let mut request =
        reqwest::Client::new().get(node.http(&format!("/v1/admin/connections{query}")));
    if let Some(token) = token {
        request = request.bearer_auth(token);
    }
    let response = request.send().await.unwrap();
    let status = response.status().as_u16();
    (status, response.json().await.unwrap_or(Value::Null))
}

async fn delete(node: &Node, path: &str) -> (u16, Value) {
    let response = reqwest::Client::new()
        .delete(node.http(path))
        .bearer_auth(&node.admin_token)
        .send()
        .await
        .unwrap();
    let status = response.status().as_u16();
    (status, response.json().await.unwrap_or(Value::Null))
}

/// Lists until `done` holds for the answer (counters are updated just after each send).
async fn list_until(node: &Node, query: &str, done: impl Fn(&Value) -> bool) -> Value {
    let deadline = tokio::time::Instant::now() + WAIT;
    loop {
        let (status, answer) = list(node, Some(&node.admin_token), query).await;
        assert_eq!(status, 200, "{answer}");
        if done(&answer) {
            return answer;
        }
        assert!(
            tokio::time::Instant::now() < deadline,
            "the list never got there: {answer}"
        );
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
}

fn by_account<'a>(answer: &'a Value, account: &str) -> &'a Value {
    answer["connections"]
        .as_array()
        .unwrap()
        .iter()
        .find(|c| c["account"] == account)
        .unwrap_or_else(|| panic!("no connection of {account}: {answer}"))
}

#[tokio::test]
async fn admin_lists_pages_and_closes_this_nodes_streams() {
    let node = Node::start(NodeOptions {
        args: vec!["--no-correlator".into()],
        ..NodeOptions::default()
    })
    .await;
    node.create_account("alpha", "pro").await;
    node.create_account("beta", "pro").await;
    let (alpha_id, alpha) = node.create_token_with_id("alpha", "read").await;
    let (_, beta) = node.create_token_with_id("beta", "read").await;

    let mut ws = ws_connect(&node.ws("/v1/stream"), Some(&alpha))
        .await
        .unwrap();
    assert_eq!(ws_frame(&mut ws).await["type"], "hello");
    let mut sse = Sse::connect(&node.http("/v1/stream?itype=ipv4"), &beta, None)
        .await
        .unwrap();
    assert_eq!(sse.next().await.unwrap().event, "hello");

    node.publish_all(&(0..3).map(indicator).collect::<Vec<_>>())
        .await;
    let seen = ws_indicators(&mut ws, 3).await;
    sse.indicators(3).await;

    let answer = list_until(&node, "", |answer| {
        answer["connections"]
            .as_array()
            .is_some_and(|all| all.len() == 2 && all.iter().all(|c| c["delivered"] == 3))
    })
    .await;
    assert_eq!(answer["node"], node.addr.to_string(), "{answer}");
    assert!(answer["next"].is_null(), "{answer}");
    let first = by_account(&answer, "alpha");
    assert_eq!(first["plan"], "pro");
    assert_eq!(first["token_id"], alpha_id.as_str());
    assert!(!answer.to_string().contains(&alpha), "never the token");
    assert_eq!(first["transport"], "ws");
    assert_eq!(first["dialect"], "native");
    assert_eq!(first["node"], node.addr.to_string());
    assert!(
        first["remote"].as_str().unwrap().starts_with("127.0.0.1:"),
        "{first}"
    );
    assert!(first["connected_at"].as_str().unwrap().ends_with('Z'));
    assert_eq!(first["dropped"], 0);
    assert!(first["bytes"].as_u64().unwrap() > 0);
    assert_eq!(first["lag"]["entries"], 0, "caught up: {first}");
    assert_eq!(first["lag"]["seconds"], 0.0);
    assert_eq!(first["lag"]["near_retention"], false);
    let second = by_account(&answer, "beta");
    assert_eq!(second["transport"], "sse");
    assert_eq!(second["filters"]["itype"], "ipv4", "{second}");
    assert_eq!(second["lag"]["entries"], 0);

    // Who may ask, and what they may ask for.
    assert_eq!(list(&node, None, "").await.0, 401);
    let (status, refused) = list(&node, Some(&alpha), "").await;
    assert_eq!(status, 403, "{refused}");
    assert_eq!(
        list(&node, Some(&node.admin_token), "?limit=0").await.0,
        400
    );
    assert_eq!(
        list(&node, Some(&node.admin_token), "?sort=size").await.0,
        400
    );
    let (_, only) = list(&node, Some(&node.admin_token), "?account=beta").await;
    assert_eq!(only["connections"].as_array().unwrap().len(), 1, "{only}");
    assert_eq!(only["connections"][0]["account"], "beta");

    // Pages of one, oldest first.
    let (_, page) = list(&node, Some(&node.admin_token), "?limit=1").await;
    assert_eq!(page["connections"][0]["account"], "alpha", "{page}");
    let next = page["next"].as_str().expect("a second page").to_owned();
    let (_, page) = list(
        &node,
        Some(&node.admin_token),
        &format!("?limit=1&after={next}"),
    )
    .await;
    assert_eq!(page["connections"][0]["account"], "beta", "{page}");
    assert!(page["next"].is_null(), "{page}");
    let (_, by_name) = list(&node, Some(&node.admin_token), "?sort=account").await;
    assert_eq!(by_name["connections"][1]["account"], "beta");

    // Closing one stream: 1001 with the cursor, and the client resumes from it.
    assert_eq!(delete(&node, "/v1/admin/connections/c_999999").await.0, 404);
    let id = first["id"].as_str().unwrap();
    assert_eq!(
        delete(&node, &format!("/v1/admin/connections/{id}"))
            .await
            .0,
        204
    );
    let (code, reason) = ws_close_code(&mut ws).await;
    assert_eq!(code, 1001, "{reason}");
    let last = &seen[2].0;
    assert_eq!(reason, format!("closed by an operator; resume from {last}"));
    let mut resumed = ws_connect(&node.ws(&format!("/v1/stream?cursor={last}")), Some(&alpha))
        .await
        .unwrap();
    assert_eq!(ws_frame(&mut resumed).await["cursor"], last.as_str());
    node.publish_all(&[indicator(3)]).await;
    assert_eq!(ws_indicators(&mut resumed, 1).await[0].1, ip(3));

    // Closing an account's streams.
    let (status, closed) = delete(&node, "/v1/admin/connections?account=beta").await;
    assert_eq!(
        (status, &closed["closed"]),
        (200, &Value::from(1)),
        "{closed}"
    );
    while let Some(event) = sse.next().await {
        assert_eq!(event.event, "indicator", "{event:?}");
    }
    assert_eq!(delete(&node, "/v1/admin/connections").await.0, 400);
    list_until(&node, "?account=beta", |answer| {
        answer["connections"].as_array().is_some_and(Vec::is_empty)
    })
    .await;
}

#[tokio::test]
async fn a_stream_that_reads_nothing_shows_its_lag() {
    let node = Node::start(NodeOptions {
        args: vec!["--no-correlator".into()],
        ..NodeOptions::default()
    })
    .await;
    node.create_account("idle", "pro").await;
    let token = node.create_token("idle", "read").await;
    // An ActionCable socket takes no indicators before its `subscribe`: they wait, and its
    // position stays where it connected.
    let mut socket = ws_connect(&node.ws("/firehose"), Some(&token))
        .await
        .unwrap();
    assert_eq!(ws_frame(&mut socket).await["type"], "welcome");
    tokio::time::sleep(Duration::from_millis(20)).await;
    node.publish_all(&(0..5).map(indicator).collect::<Vec<_>>())
        .await;
    let answer = list_until(&node, "?sort=lag", |answer| {
        answer["connections"][0]["lag"]["entries"] == 5
    })
    .await;
    let idle = &answer["connections"][0];
    assert_eq!(idle["dialect"], "action_cable", "{idle}");
    assert_eq!(idle["delivered"], 0);
    assert!(idle["lag"]["seconds"].as_f64().unwrap() > 0.0, "{idle}");
    let id = idle["id"].as_str().unwrap().to_owned();

    // The command line: the table, its JSON, and closing.
    let url = node.http("");
    let admin = ["--url", url.as_str(), "--token", node.admin_token.as_str()];
    let output = node
        .cli(&[&["admin", "connections"][..], &admin[..]].concat())
        .await;
    let table = String::from_utf8_lossy(&output.stdout);
    assert!(
        output.status.success(),
        "{}",
        String::from_utf8_lossy(&output.stderr)
    );
    let row = table
        .lines()
        .find(|line| line.starts_with(&id))
        .unwrap_or_else(|| panic!("{table}"));
    assert!(
        row.contains("idle") && row.contains("ws/action_cable"),
        "{table}"
    );
    let output = node
        .cli(
            &[
                &["admin", "connections", "--json", "--account", "idle"][..],
                &admin[..],
            ]
            .concat(),
        )
        .await;
    let json: Value = serde_json::from_slice(&output.stdout).unwrap();
    assert_eq!(json["connections"][0]["id"], id.as_str(), "{json}");
    let output = node
        .cli(&["admin", "connections", "--url", url.as_str()])
        .await;
    assert_eq!(output.status.code(), Some(64), "no token");
    let output = node
        .cli(&[&["admin", "close", id.as_str()][..], &admin[..]].concat())
        .await;
    assert!(
        output.status.success(),
        "{}",
        String::from_utf8_lossy(&output.stderr)
    );
    let (code, reason) = ws_close_code(&mut socket).await;
    assert_eq!(code, 1001, "{reason}");
    // Until its closing handshake is over the stream is still listed; then it is gone.
    list_until(&node, "", |answer| {
        answer["connections"].as_array().is_some_and(Vec::is_empty)
    })
    .await;
    let output = node
        .cli(&[&["admin", "close", id.as_str()][..], &admin[..]].concat())
        .await;
    assert_eq!(output.status.code(), Some(1), "already closed");
    assert!(String::from_utf8_lossy(&output.stderr).contains("404"));
    let output = node.cli(&["up", "--retention-margin", "0s"]).await;
    assert_eq!(output.status.code(), Some(64), "a zero margin is refused");

    let metrics = node.metrics().await;
    assert!(
        metrics.contains("sluice_consumer_lag_seconds_bucket"),
        "{metrics}"
    );
    assert!(
        metrics.contains("sluice_consumers_near_retention "),
        "{metrics}"
    );
}

/// A WebSocket client that stops reading (a 4 KiB receive buffer, as in tests/slow/load.rs)
/// while indicators keep coming: its position stops where its socket filled, and the list shows
/// it behind in entries and seconds while a reading client is caught up.
#[tokio::test]
async fn a_stalled_reader_falls_behind_in_the_list() {
    use tokio_tungstenite::tungstenite::client::IntoClientRequest;
    let node = Node::start(NodeOptions {
        args: vec!["--no-correlator".into()],
        ..NodeOptions::default()
    })
    .await;
    let socket = tokio::net::TcpSocket::new_v4().unwrap();
    socket.set_recv_buffer_size(4096).unwrap();
    let stream = socket.connect(node.addr).await.unwrap();
    let mut request = node.ws("/v1/stream").into_client_request().unwrap();
    request.headers_mut().insert(
        "authorization",
        format!("Bearer {}", node.admin_token).parse().unwrap(),
    );
    let (mut stalled, _) =
        tokio_tungstenite::client_async(request, tokio_tungstenite::MaybeTlsStream::Plain(stream))
            .await
            .unwrap();
    assert_eq!(ws_frame(&mut stalled).await["type"], "hello");
    // About 300 KiB of frames: more than the socket, the kernel and the node buffer together.
    let padding = "x".repeat(900);
    let batch: Vec<Value> = (0..300)
        .map(|n| {
            let mut report = indicator(n);
            report["description"] = Value::from(format!("{n} {padding}"));
            report
        })
        .collect();
    // In batches some milliseconds apart: one batch may share one millisecond.
    for batch in batch.chunks(50) {
        node.publish_all(batch).await;
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
    let answer = list_until(&node, "?sort=lag", |answer| {
        let first = &answer["connections"][0];
        first["lag"]["seconds"].as_f64().is_some_and(|s| s > 0.0)
            && first["lag"]["entries"].as_u64().is_some_and(|n| n > 0)
    })
    .await;
    let behind = &answer["connections"][0];
    assert!(behind["delivered"].as_u64().unwrap() < 300, "{behind}");
    assert_eq!(behind["transport"], "ws");
    drop(stalled);
}

/// With Redis, any node lists the cluster's streams (the others' from their snapshots) and
/// closes a stream on another node, or an account's everywhere.
#[tokio::test]
async fn with_redis_any_node_lists_and_closes_the_clusters_streams() {
    let redis = testkit::RedisServer::start().unwrap();
    let data_dir = tempfile::tempdir().unwrap();
    let first = Node::start(NodeOptions {
        redis: Some(redis.url()),
        data_dir: Some(data_dir.path().to_path_buf()),
        args: vec!["--no-correlator".into()],
        ..NodeOptions::default()
    })
    .await;
    let second = Node::start(NodeOptions {
        role: Some("gateway"),
        redis: Some(redis.url()),
        data_dir: Some(data_dir.path().to_path_buf()),
        admin_token: Some(first.admin_token.clone()),
        ..NodeOptions::default()
    })
    .await;
    first.create_account("alpha", "pro").await;
    let alpha = first.create_token("alpha", "read").await;
    let mut on_first = ws_connect(&first.ws("/v1/stream"), Some(&alpha))
        .await
        .unwrap();
    let mut on_second = ws_connect(&second.ws("/v1/stream"), Some(&alpha))
        .await
        .unwrap();
    ws_frame(&mut on_first).await;
    ws_frame(&mut on_second).await;

    let answer = list_until(&first, "", |answer| {
        answer["connections"]
            .as_array()
            .is_some_and(|all| all.len() == 2)
    })
    .await;
    assert_eq!(answer["scope"], "cluster", "{answer}");
    let mut nodes = vec![first.addr.to_string(), second.addr.to_string()];
    nodes.sort();
    assert_eq!(answer["nodes"], serde_json::json!(nodes), "{answer}");
    let remote = answer["connections"]
        .as_array()
        .unwrap()
        .iter()
        .find(|c| c["node"] == second.addr.to_string())
        .unwrap_or_else(|| panic!("no stream of the second node: {answer}"))
        .clone();
    let id = remote["id"].as_str().unwrap();
    assert!(id.ends_with(&format!("@{}", second.addr)), "{remote}");
    let (_, only) = list(
        &first,
        Some(&first.admin_token),
        &format!("?node={}", second.addr),
    )
    .await;
    assert_eq!(only["connections"].as_array().unwrap().len(), 1, "{only}");
    let url = first.http("");
    let output = first
        .cli(&[
            "admin",
            "connections",
            "--url",
            &url,
            "--token",
            &first.admin_token,
        ])
        .await;
    let stderr = String::from_utf8_lossy(&output.stderr);
    assert!(stderr.contains("2 stream(s) on 2 node(s)"), "{stderr}");
    assert!(
        String::from_utf8_lossy(&output.stdout).contains(id),
        "the table names the remote stream's id"
    );
    let (_, here) = list(&first, Some(&first.admin_token), "?scope=node").await;
    assert_eq!(here["scope"], "node");
    assert_eq!(here["connections"].as_array().unwrap().len(), 1, "{here}");

    // The first node closes the second's stream: 1001, as if it had been closed there.
    let missing = format!("c_999999@{}", second.addr);
    assert_eq!(
        delete(&first, &format!("/v1/admin/connections/{missing}"))
            .await
            .0,
        404
    );
    assert_eq!(
        delete(&first, &format!("/v1/admin/connections/{id}"))
            .await
            .0,
        204
    );
    let (code, reason) = ws_close_code(&mut on_second).await;
    assert_eq!(code, 1001, "{reason}");
    assert!(reason.starts_with("closed by an operator"), "{reason}");

    // An account's streams, on every node.
    let mut again = ws_connect(&second.ws("/v1/stream"), Some(&alpha))
        .await
        .unwrap();
    ws_frame(&mut again).await;
    list_until(&first, "", |answer| {
        answer["connections"].as_array().is_some_and(|all| {
            all.len() == 2 && all.iter().any(|c| c["node"] == second.addr.to_string())
        })
    })
    .await;
    let (status, closed) = delete(&first, "/v1/admin/connections?account=alpha").await;
    assert_eq!(
        (status, &closed["closed"]),
        (200, &Value::from(2)),
        "{closed}"
    );
    assert_eq!(ws_close_code(&mut on_first).await.0, 1001);
    assert_eq!(ws_close_code(&mut again).await.0, 1001);
}

/// The operators' page lists the open streams with an admin token and closes one.
#[tokio::test]
async fn the_operator_page_lists_and_closes_streams() {
    let node = Node::start(NodeOptions {
        args: vec!["--no-correlator".into()],
        ..NodeOptions::default()
    })
    .await;
    node.create_account("watched", "pro").await;
    let token = node.create_token("watched", "read").await;
    let mut ws = ws_connect(&node.ws("/v1/stream"), Some(&token))
        .await
        .unwrap();
    assert_eq!(ws_frame(&mut ws).await["type"], "hello");

    let browser = crate::webdriver::Browser::start("operator").await;
    browser.client.goto(&node.http("/operator")).await.unwrap();
    // A token that is not an admin's: the API's refusal, and nothing listed.
    browser.type_into("operator-token", &token).await;
    browser.click("operator-show").await;
    let alert = browser.alert_text().await;
    assert!(alert.contains("admin"), "the refusal says why");
    assert!(browser.all("operator-row").await.is_empty());

    browser.type_into("operator-token", &node.admin_token).await;
    browser.click("operator-show").await;
    let rows = browser.wait_count("operator-row", 1).await;
    assert_eq!(rows.len(), 1);
    assert_eq!(browser.text("operator-row-account").await, "watched");
    browser
        .wait_text("operator-summary", |text| {
            text.starts_with("1 stream(s) on node")
        })
        .await;
    browser.screenshot("operator").await;
    browser.click("operator-close").await;
    let (code, reason) = ws_close_code(&mut ws).await;
    assert_eq!(code, 1001, "{reason}");
    browser.wait_none("operator-row").await;
    let errors: Vec<String> = browser
        .console_errors()
        .await
        .into_iter()
        .filter(|error| !error.contains("status of 403"))
        .collect();
    assert!(errors.is_empty(), "console errors: {errors:#?}");
    browser.close().await;
}
