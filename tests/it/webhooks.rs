//! Outbound webhooks on a real node (docs/protocol.md §13), delivered to a real receiver on
//! loopback: signed batches in order, the same key on every retry, dead letters, receivers
//! that hang or hang up, resuming from the stored cursor after a restart, the Slack format,
//! filters, and what registration refuses (SSRF, plans).

use std::time::Duration;

use serde_json::{json, Value};

use crate::harness::*;
use crate::receiver::{Behaviour, Received, Receiver};

/// Flags of a node that delivers quickly to loopback.
const FAST: &[&str] = &[
    "--no-correlator",
    "--webhook-allow-private",
    "--webhook-linger",
    "200ms",
    "--webhook-retry-base",
    "100ms",
    "--webhook-timeout",
    "1s",
    "--webhook-max-attempts",
    "3",
    "--webhook-claim-interval",
    "1s",
];

fn fast(extra: &[&str]) -> Vec<String> {
    FAST.iter().chain(extra).map(|a| a.to_string()).collect()
}

async fn call(
    node: &Node,
    method: reqwest::Method,
    path: &str,
    token: &str,
    body: Option<Value>,
) -> (u16, Value) {
    let mut request = reqwest::Client::new()
        .request(method, node.http(path))
        .bearer_auth(token);
    if let Some(body) = body {
        request = request.json(&body);
    }
    let response = request.send().await.unwrap();
    let status = response.status().as_u16();
    (status, response.json().await.unwrap_or(Value::Null))
}

async fn register(node: &Node, token: &str, body: Value) -> (u16, Value) {
    call(
        node,
        reqwest::Method::POST,
        "/v1/account/webhooks",
        token,
        Some(body),
    )
    .await
}

/// A node with the [`FAST`] flags.
async fn fast_node() -> Node {
    Node::start(NodeOptions {
        args: fast(&[]),
        ..NodeOptions::default()
    })
    .await
}

/// Registers `body` for `token`'s account; returns the endpoint's id and signing secret.
async fn endpoint(node: &Node, token: &str, body: Value) -> (String, String) {
    let (status, created) = register(node, token, body).await;
    assert_eq!(status, 201, "{created}");
    let field = |name: &str| created[name].as_str().unwrap().to_owned();
    (field("id"), field("secret"))
}

/// The delivery log of `id`, newest first.
async fn deliveries(node: &Node, token: &str, id: &str, query: &str) -> Vec<Value> {
    let path = format!("/v1/account/webhooks/{id}/deliveries{query}");
    let (status, answer) = call(node, reqwest::Method::GET, &path, token, None).await;
    assert_eq!(status, 200, "{answer}");
    answer["deliveries"].as_array().unwrap().clone()
}

/// Polls the delivery log until `done` holds.
async fn deliveries_until(
    node: &Node,
    token: &str,
    id: &str,
    done: impl Fn(&[Value]) -> bool,
) -> Vec<Value> {
    let deadline = tokio::time::Instant::now() + WAIT;
    loop {
        let rows = deliveries(node, token, id, "").await;
        if done(&rows) {
            return rows;
        }
        assert!(
            tokio::time::Instant::now() < deadline,
            "the delivery log never got there: {rows:?}"
        );
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
}

/// The indicator values of a native batch.
fn values(batch: &Received) -> Vec<String> {
    batch.json()["indicators"]
        .as_array()
        .unwrap()
        .iter()
        .map(|i| i["indicator"].as_str().unwrap().to_owned())
        .collect()
}

/// Receives native batches until `n` indicators have arrived; checks every signature.
async fn receive(receiver: &mut Receiver, secret: &str, n: usize) -> (Vec<String>, Vec<Received>) {
    let mut got = Vec::new();
    let mut batches = Vec::new();
    while got.len() < n {
        let batch = receiver.next().await;
        check_signature(&batch, secret);
        got.extend(values(&batch));
        batches.push(batch);
    }
    (got, batches)
}

fn check_signature(batch: &Received, secret: &str) {
    billing::webhook_signature::verify(
        Some(batch.header("sluice-signature")),
        &batch.body,
        &[secret],
        chrono::Utc::now().timestamp(),
    )
    .unwrap_or_else(|error| panic!("the signature does not verify: {error}"));
}

/// The account `name` on `plan`, with a `read` token.
async fn account(node: &Node, name: &str, plan: &str) -> String {
    node.create_account(name, plan).await;
    node.create_token(name, "read").await
}

#[tokio::test]
async fn delivers_signed_batches_in_order_and_resumes_from_the_cursor_after_a_restart() {
    let mut receiver = Receiver::start().await;
    let data = tempfile::tempdir().unwrap();
    let port = free_port();
    let options = NodeOptions {
        data_dir: Some(data.path().to_path_buf()),
        port: Some(port),
        args: fast(&[]),
        ..NodeOptions::default()
    };
    let mut node = Node::start(options.clone()).await;
    let token = account(&node, "acme", "pro").await;
    let (status, created) = register(
        &node,
        &token,
        json!({"url": receiver.url("/hook"), "filter": "itype=ipv4"}),
    )
    .await;
    assert_eq!(status, 201, "{created}");
    let id = created["id"].as_str().unwrap().to_owned();
    let secret = created["secret"].as_str().unwrap().to_owned();
    assert!(
        id.starts_with("wh_") && secret.starts_with("whsec_"),
        "{created}"
    );
    assert_eq!(created["format"], "native");

    let first: Vec<Value> = (0..5).map(indicator).collect();
    let mut mixed = first.clone();
    mixed.insert(
        2,
        json!({"indicator": "filtered-out.example.com", "tags": ["phishing"]}),
    );
    node.publish_all(&mixed).await;
    let (got, batches) = receive(&mut receiver, &secret, 5).await;
    assert_eq!(
        got,
        (0..5).map(ip).collect::<Vec<_>>(),
        "in order, filtered"
    );
    let batch = &batches[0];
    assert_eq!(batch.path, "/hook");
    assert_eq!(batch.header("sluice-webhook-id"), id);
    assert_eq!(batch.header("sluice-delivery-attempt"), "1");
    assert_eq!(batch.header("content-type"), "application/json");
    let body = batch.json();
    assert_eq!(body["webhook"], id.as_str());
    assert_eq!(body["batch"], batch.header("idempotency-key"));
    assert_eq!(body["count"], body["indicators"].as_array().unwrap().len());
    assert!(body["cursor"].as_str().unwrap().contains('.'), "{body}");

    // The cursor is stored; a restarted node goes on from it: nothing again, nothing lost.
    deliveries_until(&node, &token, &id, |rows| {
        rows.iter()
            .filter(|r| r["outcome"] == "delivered")
            .map(|r| r["indicators"].as_u64().unwrap())
            .sum::<u64>()
            == 5
    })
    .await;
    node.signal("TERM");
    node.wait_exit().await;
    let node = Node::start(options).await;
    node.publish_all(&(5..8).map(indicator).collect::<Vec<_>>())
        .await;
    let (got, _) = receive(&mut receiver, &secret, 3).await;
    assert_eq!(got, (5..8).map(ip).collect::<Vec<_>>());
    assert!(
        receiver
            .quiet_for(Duration::from_millis(1500))
            .await
            .is_none(),
        "a duplicate arrived"
    );

    let (status, shown) = call(
        &node,
        reqwest::Method::GET,
        &format!("/v1/account/webhooks/{id}"),
        &token,
        None,
    )
    .await;
    assert_eq!(status, 200, "{shown}");
    assert!(
        shown.get("secret").is_none(),
        "the secret is shown once: {shown}"
    );
    assert!(shown["last_success_at"].is_string(), "{shown}");
    assert!(shown["last_error"].is_null(), "{shown}");
    let metrics = node.metrics().await;
    assert!(
        metrics.contains("sluice_webhook_attempts_total{outcome=\"delivered\"}"),
        "{metrics}"
    );
}

#[tokio::test]
async fn retries_with_the_same_key_then_gives_up_as_a_dead_letter_and_moves_on() {
    let mut receiver = Receiver::start().await;
    let node = fast_node().await;
    let token = account(&node, "acme", "pro").await;
    let (id, secret) = endpoint(&node, &token, json!({"url": receiver.url("/")})).await;

    // A 500, then a success: the same batch, the same key, the next attempt number.
    receiver.script(&[Behaviour::Status(500)]);
    node.publish_all(&[indicator(1)]).await;
    let refused = receiver.next().await;
    let accepted = receiver.next().await;
    check_signature(&accepted, &secret);
    assert_eq!(refused.body, accepted.body);
    assert_eq!(
        refused.header("idempotency-key"),
        accepted.header("idempotency-key")
    );
    assert_eq!(refused.header("sluice-delivery-attempt"), "1");
    assert_eq!(accepted.header("sluice-delivery-attempt"), "2");
    let rows = deliveries_until(&node, &token, &id, |rows| rows.len() == 2).await;
    assert_eq!(rows[0]["outcome"], "delivered");
    assert_eq!(rows[1]["outcome"], "failed");
    assert_eq!(rows[1]["http_status"], 500);
    assert!(
        rows[1]["error"].as_str().unwrap().contains("answer!"),
        "{rows:?}"
    );

    // Three refusals (the node's --webhook-max-attempts): a dead letter; the next batch goes.
    receiver.script(&[Behaviour::Status(503); 3]);
    node.publish_all(&[indicator(2)]).await;
    let mut keys = Vec::new();
    for attempt in 1..=3 {
        let request = receiver.next().await;
        assert_eq!(
            request.header("sluice-delivery-attempt"),
            attempt.to_string()
        );
        assert_eq!(values(&request), [ip(2)]);
        keys.push(request.header("idempotency-key").to_owned());
    }
    assert!(keys.iter().all(|key| *key == keys[0]), "{keys:?}");
    node.publish_all(&[indicator(3)]).await;
    let next = receiver.next().await;
    assert_eq!(values(&next), [ip(3)]);
    assert_ne!(next.header("idempotency-key"), keys[0]);
    let dead = deliveries(&node, &token, &id, "?outcome=dead_letter").await;
    assert_eq!(dead.len(), 1, "{dead:?}");
    assert_eq!(dead[0]["batch"], keys[0].as_str());
    assert_eq!(dead[0]["attempt"], 3);
    assert_eq!(dead[0]["indicators"], 1);
    assert!(dead[0]["first_cursor"].is_string(), "{dead:?}");
    let metrics = node.metrics().await;
    assert!(
        metrics.contains("sluice_webhook_attempts_total{outcome=\"dead_letter\"} 1"),
        "{metrics}"
    );
}

#[tokio::test]
async fn a_receiver_that_hangs_or_hangs_up_is_a_failed_try_not_a_stuck_endpoint() {
    let mut receiver = Receiver::start().await;
    let node = fast_node().await;
    let token = account(&node, "acme", "pro").await;
    let (id, _) = endpoint(&node, &token, json!({"url": receiver.url("/")})).await;

    receiver.script(&[Behaviour::Hang, Behaviour::Close]);
    node.publish_all(&[indicator(1)]).await;
    let hung = receiver.next().await;
    let closed = receiver.next().await;
    let accepted = receiver.next().await;
    assert_eq!(
        hung.header("idempotency-key"),
        accepted.header("idempotency-key")
    );
    assert_eq!(closed.header("sluice-delivery-attempt"), "2");
    assert_eq!(values(&accepted), [ip(1)]);
    let rows = deliveries_until(&node, &token, &id, |rows| rows.len() == 3).await;
    let errors: Vec<&str> = rows[1..]
        .iter()
        .map(|row| row["error"].as_str().unwrap_or(""))
        .collect();
    assert!(errors[1].contains("timed out"), "{errors:?}");
    assert!(
        !errors[0].is_empty() && rows[0]["outcome"] == "delivered",
        "{rows:?}"
    );
}

#[tokio::test]
async fn the_slack_format_is_a_text_message() {
    let mut receiver = Receiver::start().await;
    let node = fast_node().await;
    let token = account(&node, "acme", "hobby").await;
    let (status, created) = register(
        &node,
        &token,
        json!({"url": receiver.url("/slack"), "format": "slack"}),
    )
    .await;
    assert_eq!(status, 201, "{created}");
    node.publish_all(&[json!({"indicator": "evil.example.com", "tags": ["phishing"]})])
        .await;
    let message = receiver.next().await.json();
    let text = message["text"].as_str().unwrap();
    assert!(text.contains("evil.example.com"), "{text}");
    assert_eq!(message.as_object().unwrap().len(), 1, "{message}");
}

#[tokio::test]
async fn registration_refuses_what_a_deliverer_must_not_reach_and_what_the_plan_does_not_allow() {
    // No --webhook-allow-private: public https only.
    let node = Node::start(NodeOptions {
        args: vec!["--no-correlator".into()],
        ..NodeOptions::default()
    })
    .await;
    let token = account(&node, "acme", "hobby").await;
    for url in [
        "http://hooks.example.com/",
        "https://127.0.0.1/",
        "https://localhost/",
        "https://10.1.2.3/",
        "https://192.168.0.10/",
        "https://169.254.169.254/latest/meta-data/",
        "https://[::1]/",
        "https://[::ffff:10.0.0.1]/",
        "https://[fd00::1]/",
        "https://user:secret@hooks.example.com/",
        "ftp://hooks.example.com/",
        "not a url",
    ] {
        let (status, answer) = register(&node, &token, json!({ "url": url })).await;
        assert_eq!(status, 422, "{url}: {answer}");
        assert!(
            answer["error"].as_str().unwrap().starts_with("`url`"),
            "{answer}"
        );
    }
    let long = format!("https://hooks.example.com/{}", "a".repeat(3000));
    let (status, _) = register(&node, &token, json!({ "url": long })).await;
    assert_eq!(status, 422);
    let url = "https://hooks.example.com/sluice";
    let (status, answer) =
        register(&node, &token, json!({"url": url, "filter": "colour=red"})).await;
    assert_eq!(status, 422, "{answer}");
    assert!(
        answer["error"].as_str().unwrap().contains("colour"),
        "{answer}"
    );
    let (status, answer) = register(&node, &token, json!({"url": url, "format": "xml"})).await;
    assert_eq!(status, 422, "{answer}");
    let (status, answer) = register(&node, &token, json!({"url": 7})).await;
    assert!(status == 400 || status == 422, "{status} {answer}");

    // The hobby plan holds two connections: two endpoints.
    for _ in 0..2 {
        let (status, answer) = register(
            &node,
            &token,
            json!({"url": url, "filter": "correlated=true"}),
        )
        .await;
        assert_eq!(status, 201, "{answer}");
    }
    let (status, answer) = register(&node, &token, json!({ "url": url })).await;
    assert_eq!(status, 403, "{answer}");
    assert!(
        answer["error"].as_str().unwrap().contains("delete one"),
        "{answer}"
    );
    let (_, list) = call(
        &node,
        reqwest::Method::GET,
        "/v1/account/webhooks",
        &token,
        None,
    )
    .await;
    let ids: Vec<String> = list["webhooks"]
        .as_array()
        .unwrap()
        .iter()
        .map(|w| w["id"].as_str().unwrap().to_owned())
        .collect();
    assert_eq!(ids.len(), 2, "{list}");

    // Another account sees none of them and cannot delete them.
    let other = account(&node, "other", "pro").await;
    let path = format!("/v1/account/webhooks/{}", ids[0]);
    let (status, _) = call(&node, reqwest::Method::DELETE, &path, &other, None).await;
    assert_eq!(status, 404);
    let (status, _) = call(&node, reqwest::Method::GET, &path, &other, None).await;
    assert_eq!(status, 404);
    let (status, _) = call(&node, reqwest::Method::DELETE, &path, &token, None).await;
    assert_eq!(status, 204);
    let (status, _) = call(&node, reqwest::Method::GET, &path, &token, None).await;
    assert_eq!(status, 404);

    // No firehose, no webhooks; no token, no webhooks.
    let free = account(&node, "sampler", "free").await;
    let (status, answer) = register(&node, &free, json!({ "url": url })).await;
    assert_eq!(status, 403, "{answer}");
    let (status, _) = register(&node, "slc_not_a_token", json!({ "url": url })).await;
    assert_eq!(status, 401);
}

#[tokio::test]
async fn the_page_registers_an_endpoint_shows_its_secret_once_and_its_delivery_log() {
    let mut receiver = Receiver::start().await;
    let node = Node::start(NodeOptions {
        args: fast(&["--billing-test-mode"]),
        ..NodeOptions::default()
    })
    .await;
    let browser = crate::webdriver::Browser::start("webhooks").await;
    browser.client.goto(&node.http("/")).await.unwrap();
    browser.sign_up("hooks@example.org", None).await;
    browser
        .wait_text("plan-current", |text| text == "free")
        .await;
    browser.switch_plan("hobby").await;
    browser.click("nav-webhooks").await;
    browser.wait_path("/webhooks").await;

    // Refused (even with --webhook-allow-private): the error says why, nothing is registered.
    browser
        .type_into("webhook-url", "https://user:secret@hooks.example.com/")
        .await;
    browser.click("webhook-create").await;
    let alert = browser.alert_text().await;
    assert!(alert.contains("credentials"));
    assert!(browser.all("webhook-row").await.is_empty());

    let url = receiver.url("/from-the-page");
    browser.type_into("webhook-url", &url).await;
    browser.type_into("webhook-filter", "itype=ipv4").await;
    browser.click("webhook-create").await;
    let secret = browser
        .wait_text("webhook-secret", |text| text.starts_with("whsec_"))
        .await;
    browser.wait_count("webhook-row", 1).await;

    node.publish_all(&[indicator(7)]).await;
    let batch = receiver.next().await;
    assert_eq!(batch.path, "/from-the-page");
    check_signature(&batch, &secret);
    assert_eq!(values(&batch), [ip(7)]);
    browser
        .wait_text("webhook-last-success", |text| text != "—")
        .await;
    browser.click("webhook-log").await;
    browser.wait_count("delivery-row", 1).await;
    assert_eq!(browser.text("delivery-outcome").await, "delivered");
    browser.screenshot("webhooks").await;

    browser.click("webhook-delete").await;
    browser.wait_none("webhook-row").await;
    // The only error the browser logged is the refusal asked for above.
    let errors = browser.console_errors().await;
    let unexpected: Vec<_> = errors
        .iter()
        .filter(|error| !error.contains("/v1/account/webhooks - Failed to load resource: the server responded with a status of 422"))
        .collect();
    assert!(unexpected.is_empty(), "console errors: {errors:#?}");
    assert_eq!(errors.len(), 1, "{errors:#?}");
    browser.close().await;
}

/// The `sluice_webhook_endpoints` gauge of `node` (endpoints it holds the lease of).
async fn endpoints_held(node: &Node) -> u64 {
    node.metrics()
        .await
        .lines()
        .find_map(|line| line.strip_prefix("sluice_webhook_endpoints "))
        .and_then(|value| value.trim().parse().ok())
        .unwrap_or(0)
}

#[tokio::test]
async fn another_node_takes_over_a_dead_nodes_endpoint_and_resends_its_batch_under_the_same_key() {
    let redis = testkit::RedisServer::start().unwrap();
    let database = testkit::PgDatabase::create().await.unwrap();
    let args: Vec<String> = [
        "--webhook-allow-private",
        "--webhook-linger",
        "200ms",
        "--webhook-timeout",
        "60s",
        "--webhook-claim-interval",
        "1s",
    ]
    .iter()
    .map(|a| a.to_string())
    .collect();
    let options = NodeOptions {
        redis: Some(redis.url()),
        database: Some(database.url().to_owned()),
        ..NodeOptions::default()
    };
    let first = Node::start(NodeOptions {
        args: [vec!["--no-correlator".to_owned()], args.clone()].concat(),
        ..options.clone()
    })
    .await;
    let second = Node::start(NodeOptions {
        role: Some("gateway"),
        admin_token: Some(first.admin_token.clone()),
        args,
        ..options
    })
    .await;
    let mut receiver = Receiver::start().await;
    let token = first.admin_token.clone();
    let (status, created) = register(&first, &token, json!({"url": receiver.url("/")})).await;
    assert_eq!(status, 201, "{created}");
    let secret = created["secret"].as_str().unwrap().to_owned();

    // One node holds the endpoint; its first try hangs, and the node dies in the middle of it.
    let deadline = tokio::time::Instant::now() + WAIT;
    let (mut holder, survivor) = loop {
        match (endpoints_held(&first).await, endpoints_held(&second).await) {
            (1, 0) => break (first, second),
            (0, 1) => break (second, first),
            held => assert!(tokio::time::Instant::now() < deadline, "held: {held:?}"),
        }
        tokio::time::sleep(Duration::from_millis(100)).await;
    };
    receiver.script(&[Behaviour::Hang]);
    survivor.publish_all(&[indicator(1)]).await;
    let hung = receiver.next().await;
    check_signature(&hung, &secret);
    holder.signal("KILL");
    holder.wait_exit().await;

    // Once the dead node's lease runs out, the survivor sends the same batch, same key.
    let again = receiver.next().await;
    check_signature(&again, &secret);
    assert_eq!(
        again.header("idempotency-key"),
        hung.header("idempotency-key")
    );
    assert_eq!(values(&again), [ip(1)]);
    assert_eq!(again.json()["batch"], hung.json()["batch"]);
    assert_eq!(endpoints_held(&survivor).await, 1);

    // And goes on from there: nothing lost, nothing twice.
    survivor.publish_all(&[indicator(2)]).await;
    let next = receiver.next().await;
    assert_eq!(values(&next), [ip(2)]);
    assert_ne!(
        next.header("idempotency-key"),
        hung.header("idempotency-key")
    );
    assert!(receiver
        .quiet_for(Duration::from_millis(1500))
        .await
        .is_none());
    drop(survivor);
    database.drop_database().await.unwrap();
}

#[tokio::test]
async fn a_batch_that_reads_differently_after_a_restart_goes_again_under_a_new_key() {
    let mut receiver = Receiver::start().await;
    let data = tempfile::tempdir().unwrap();
    let options = NodeOptions {
        data_dir: Some(data.path().to_path_buf()),
        port: Some(free_port()),
        // A long first retry: the node is stopped before it would try again.
        args: [
            "--no-correlator",
            "--webhook-allow-private",
            "--webhook-linger",
            "200ms",
            "--webhook-retry-base",
            "60s",
            "--webhook-claim-interval",
            "1s",
        ]
        .iter()
        .map(|a| a.to_string())
        .collect(),
        ..NodeOptions::default()
    };
    let mut node = Node::start(options.clone()).await;
    let token = account(&node, "acme", "pro").await;
    let (id, _) = endpoint(&node, &token, json!({"url": receiver.url("/")})).await;

    // The pro plan sees the green indicator, not the red one before it.
    receiver.script(&[Behaviour::Status(500)]);
    let mut red = indicator(1);
    red["tlp"] = json!("red");
    node.publish_all(&[red, indicator(2)]).await;
    let refused = receiver.next().await;
    assert_eq!(values(&refused), [ip(2)]);
    deliveries_until(&node, &token, &id, |rows| rows.len() == 1).await;
    node.signal("TERM");
    node.wait_exit().await;

    // Enterprise sees red: the batch in flight would read differently, so it is not resent
    // under its key; the next batch holds both, under a new one.
    let output = node.cli(&["plans", "set", "acme", "enterprise"]).await;
    assert!(
        output.status.success(),
        "{}",
        String::from_utf8_lossy(&output.stderr)
    );
    let _node = Node::start(options).await;
    let again = receiver.next().await;
    assert_eq!(values(&again), [ip(1), ip(2)]);
    assert_ne!(
        again.header("idempotency-key"),
        refused.header("idempotency-key")
    );
    assert_eq!(again.header("sluice-delivery-attempt"), "1");
}

#[tokio::test]
async fn the_stix_format_is_a_bundle_the_oasis_validator_accepts() {
    let mut receiver = Receiver::start().await;
    let node = fast_node().await;
    let token = account(&node, "acme", "pro").await;
    let (status, created) = register(
        &node,
        &token,
        json!({"url": receiver.url("/stix"), "format": "stix"}),
    )
    .await;
    assert_eq!(status, 201, "{created}");
    node.publish_all(&[
        json!({"indicator": ip(1), "tags": ["scanner"], "tlp": "green"}),
        json!({"indicator": "http://phish.example/it's", "tags": ["phishing"], "tlp": "amber"}),
    ])
    .await;
    let mut objects = Vec::new();
    while objects
        .iter()
        .filter(|o: &&Value| o["type"] == "indicator")
        .count()
        < 2
    {
        let batch = receiver.next().await;
        let bundle = batch.json();
        assert_eq!(bundle["type"], "bundle", "{bundle}");
        // Each bundle stands on its own: the identities and markings its indicators refer to.
        let ids: Vec<&str> = bundle["objects"]
            .as_array()
            .unwrap()
            .iter()
            .map(|o| o["id"].as_str().unwrap())
            .collect();
        for object in bundle["objects"].as_array().unwrap() {
            if object["type"] == "indicator" {
                assert!(
                    ids.contains(&object["created_by_ref"].as_str().unwrap()),
                    "{bundle}"
                );
                for marking in object["object_marking_refs"].as_array().unwrap() {
                    assert!(ids.contains(&marking.as_str().unwrap()), "{bundle}");
                }
            }
        }
        let file = tempfile::NamedTempFile::new().unwrap();
        std::fs::write(file.path(), &batch.body).unwrap();
        let output = std::process::Command::new(crate::stix::python())
            .arg("-c")
            .arg(
                "import sys, json\n\
                 from stix2validator import ValidationOptions, validate_file\n\
                 r = validate_file(sys.argv[1], ValidationOptions(version='2.1'))\n\
                 print(json.dumps({'valid': r.is_valid, 'errors': [str(e) for o in r.object_results for e in o.errors]}))",
            )
            .arg(file.path())
            .output()
            .unwrap();
        let report: Value = serde_json::from_slice(&output.stdout)
            .unwrap_or_else(|_| panic!("validator: {}", String::from_utf8_lossy(&output.stderr)));
        assert_eq!(report["valid"], true, "{report}");
        objects.extend(bundle["objects"].as_array().unwrap().clone());
    }
    let names: Vec<&str> = objects
        .iter()
        .filter(|o| o["type"] == "indicator")
        .map(|o| o["name"].as_str().unwrap())
        .collect();
    assert_eq!(names, [ip(1).as_str(), "http://phish.example/it's"]);
}

#[tokio::test]
async fn a_slow_receiver_is_waited_for_and_a_redirect_is_not_followed() {
    let mut receiver = Receiver::start().await;
    let mut elsewhere = Receiver::start().await;
    let node = fast_node().await;
    let token = account(&node, "acme", "pro").await;
    let (id, _) = endpoint(&node, &token, json!({"url": receiver.url("/")})).await;

    // Slower than the linger, within the 1 s deadline: one try, taken.
    receiver.script(&[Behaviour::Slow(Duration::from_millis(600))]);
    node.publish_all(&[indicator(1)]).await;
    assert_eq!(values(&receiver.next().await), [ip(1)]);
    let rows = deliveries_until(&node, &token, &id, |rows| !rows.is_empty()).await;
    assert_eq!(rows[0]["outcome"], "delivered", "{rows:?}");
    assert_eq!(rows[0]["attempt"], 1);

    // A redirect is a failed try: the batch goes nowhere but the registered URL.
    receiver.script(&[Behaviour::Redirect(elsewhere.addr.port())]);
    node.publish_all(&[indicator(2)]).await;
    let redirected = receiver.next().await;
    let retried = receiver.next().await;
    assert_eq!(
        redirected.header("idempotency-key"),
        retried.header("idempotency-key")
    );
    let rows = deliveries_until(&node, &token, &id, |rows| rows.len() == 3).await;
    assert_eq!(rows[1]["outcome"], "failed", "{rows:?}");
    assert_eq!(rows[1]["http_status"], 302, "{rows:?}");
    assert!(elsewhere
        .quiet_for(Duration::from_millis(500))
        .await
        .is_none());
}

#[tokio::test]
async fn deliveries_go_on_after_the_log_comes_back_from_a_crash() {
    let mut redis = testkit::RedisServer::start().unwrap();
    let mut receiver = Receiver::start().await;
    let node = Node::start(NodeOptions {
        redis: Some(redis.url()),
        args: fast(&[]),
        ..NodeOptions::default()
    })
    .await;
    let token = account(&node, "acme", "pro").await;
    let (id, _) = endpoint(&node, &token, json!({"url": receiver.url("/")})).await;
    node.publish_all(&[indicator(1)]).await;
    assert_eq!(values(&receiver.next().await), [ip(1)]);

    // Redis crashes and comes back empty: a new log epoch. Meanwhile the endpoint waits on
    // the hub (caught up, nothing to read); then it records the gap and delivers what arrives
    // in the new log.
    redis.kill();
    let deadline = tokio::time::Instant::now() + WAIT;
    while node.readyz().await != 503 {
        assert!(
            tokio::time::Instant::now() < deadline,
            "the outage went unseen"
        );
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
    redis.restart().unwrap();
    let deadline = tokio::time::Instant::now() + WAIT;
    loop {
        let (status, _) = node
            .publish(&node.admin_token, &json!([indicator(2)]))
            .await;
        if status == 202 {
            break;
        }
        assert!(
            tokio::time::Instant::now() < deadline,
            "publishing never came back"
        );
        tokio::time::sleep(Duration::from_millis(200)).await;
    }
    assert_eq!(values(&receiver.next().await), [ip(2)]);
    let gaps = deliveries(&node, &token, &id, "?outcome=gap").await;
    assert_eq!(gaps.len(), 1, "{gaps:?}");
    assert!(
        gaps[0]["error"].as_str().unwrap().contains("new epoch"),
        "{gaps:?}"
    );
}
