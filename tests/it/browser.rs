//! The web page in a real browser (headless chromium): a newcomer's whole journey, the
//! escaping of hostile indicators, live plan changes, and no console errors on any page.

use serde_json::{json, Value};

use crate::harness::*;
use crate::webdriver::Browser;
use crate::{start, Backend};

const HOSTILE_URL: &str = "http://phish.example/<script>document.title='pwned'</script>";
const HOSTILE_TAG: &str = "<img src=x onerror=document.title='pwned'>";

#[tokio::test]
async fn newcomer_signs_up_subscribes_creates_a_token_and_watches_the_stream() {
    // Default settings: the session cookie is `Secure`, which browsers accept from 127.0.0.1.
    let (node, _redis) = start(
        Backend::Sqlite,
        &["--usage-flush-interval", "1s", "--billing-test-mode"],
    )
    .await;
    let browser = Browser::start("journey").await;
    let web = &browser.client;

    // Sign up with only an email and a password; the account name is made from the email.
    web.goto(&node.http("/")).await.unwrap();
    browser.screenshot("welcome").await;
    browser.sign_up("newcomer@example.org", None).await;
    browser
        .wait_text("plan-current", |text| text == "free")
        .await;
    assert_eq!(browser.all("plan-select-free").await.len(), 1);
    assert_eq!(browser.all("plan-select-pro").await.len(), 1);

    // Flick the hobby switch: test mode applies it at once.
    browser.switch_plan("hobby").await;
    let switch = browser.testid("plan-select-hobby").await;
    assert_eq!(
        switch.attr("aria-checked").await.unwrap().as_deref(),
        Some("true")
    );
    browser.screenshot("plans").await;

    // A token, shown once, streams from outside the browser with the account's new plan.
    browser.click("nav-tokens").await;
    browser.wait_path("/tokens").await;
    browser.click("token-create").await;
    let token = browser
        .wait_text("token-value", |text| text.starts_with("slc_"))
        .await;
    browser.wait_count("token-row", 1).await;
    browser.screenshot("tokens").await;
    let mut outside = ws_connect(&node.ws("/v1/stream"), Some(&token))
        .await
        .unwrap();
    let hello = ws_frame(&mut outside).await;
    assert_eq!(hello["plan"], "hobby", "{hello}");

    // The viewer: published indicators appear as rows, hostile text as text.
    browser.open_viewer().await;
    browser.wait_path("/live").await;
    assert_eq!(browser.text("stream-plan").await, "hobby");
    let mut batch: Vec<Value> = (0..5).map(indicator).collect();
    batch
        .push(json!({"indicator": HOSTILE_URL, "itype": "url", "tags": ["phishing", HOSTILE_TAG]}));
    node.publish_all(&batch).await;
    let rows = browser.wait_count("stream-row", batch.len()).await;
    assert_eq!(
        browser.text("stream-received").await,
        batch.len().to_string()
    );
    assert_eq!(browser.text("stream-dropped").await, "0");
    assert_eq!(
        ws_indicators(&mut outside, batch.len()).await.len(),
        batch.len()
    );
    let newest = rows[0].text().await.unwrap();
    assert!(
        newest.contains(HOSTILE_URL),
        "the hostile URL shows as text: {newest}"
    );
    assert!(
        newest.contains(HOSTILE_TAG),
        "the hostile tag shows as text: {newest}"
    );
    let injected = web
        .execute(
            "return document.querySelectorAll('main script, main img').length",
            vec![],
        )
        .await
        .unwrap();
    assert_eq!(injected, json!(0), "indicator text became markup");
    assert_ne!(web.title().await.unwrap(), "pwned");
    let wscat = browser.text("copy-wscat-command").await;
    assert!(wscat.contains(&node.ws("/v1/stream")), "{wscat}");
    assert!(
        !wscat.contains("access_token"),
        "the page's JWT is not in the command: {wscat}"
    );
    browser.screenshot("firehose").await;

    // A plan change elsewhere (an admin here) reaches the open viewer and the outside stream.
    set_plan(&node, "newcomer", "pro").await;
    browser.wait_text("stream-plan", |text| text == "pro").await;
    let limits = browser.text("stream-limits").await;
    assert!(limits.contains("2,000/s per stream"), "{limits}");
    let plan = next_frame_of_type(&mut outside, "plan").await;
    assert_eq!(plan["plan"], "pro", "{plan}");

    // Pause stops the viewer; what arrives meanwhile is shown on resume, from the cursor.
    browser.click("stream-pause").await;
    browser
        .wait_text("stream-state", |text| text == "paused")
        .await;
    node.publish_all(&[indicator(100), indicator(101)]).await;
    tokio::time::sleep(std::time::Duration::from_millis(500)).await;
    assert_eq!(
        browser.text("stream-received").await,
        batch.len().to_string()
    );
    browser.click("stream-pause").await;
    browser
        .wait_text("stream-received", |text| {
            text == (batch.len() + 2).to_string()
        })
        .await;

    // The plans page shows the change too, and usage has a chart.
    browser.click("nav-plans").await;
    browser
        .wait_text("plan-current", |text| text == "pro")
        .await;
    browser.click("nav-usage").await;
    browser.wait_path("/usage").await;
    let rows = browser.wait_count("usage-row", 1).await;
    let today = rows[0].text().await.unwrap();
    assert!(
        today.contains(&chrono::Utc::now().format("%Y-%m-%d").to_string()),
        "{today}"
    );
    // The page says when its figures were read (they lag live streams by the flush interval).
    browser
        .wait_text("usage-loaded", |text| text.ends_with(" UTC"))
        .await;
    browser.screenshot("usage").await;

    let errors = browser.console_errors().await;
    assert!(errors.is_empty(), "console errors: {errors:#?}");

    // Signing out ends the session: the pages send the browser back to sign in.
    browser.click("signout").await;
    browser.wait_path("/signin").await;
    web.goto(&node.http("/live")).await.unwrap();
    browser.wait_path("/signin").await;

    // A wrong password says so; the right one signs back in, to the viewer.
    browser
        .type_into("signin-email", "newcomer@example.org")
        .await;
    browser
        .type_into("signin-password", "not the password")
        .await;
    browser.click("signin-submit").await;
    let alert = web
        .wait()
        .for_element(fantoccini::Locator::Css("#signin .error:not([hidden])"))
        .await
        .unwrap();
    assert!(alert
        .text()
        .await
        .unwrap()
        .contains("wrong email or password"));
    browser
        .type_into("signin-password", crate::webdriver::PASSWORD)
        .await;
    browser.click("signin-submit").await;
    browser.wait_path("/live").await;
    browser.wait_text("stream-plan", |text| text == "pro").await;
    browser.close().await;
}

/// The exact number behind a counter (`data-count`; the text has thousands separators).
async fn count_of(browser: &Browser, testid: &str) -> u64 {
    let counter = browser.testid(testid).await;
    let value = counter
        .attr("data-count")
        .await
        .unwrap()
        .unwrap_or_default();
    value
        .parse()
        .unwrap_or_else(|_| panic!("{testid} counts {value:?}"))
}

/// Moves `account` to `plan` through the admin API.
async fn set_plan(node: &Node, account: &str, plan: &str) {
    let response = reqwest::Client::new()
        .put(node.http(&format!("/v1/admin/accounts/{account}/plan")))
        .bearer_auth(&node.admin_token)
        .json(&json!({"plan": plan}))
        .send()
        .await
        .unwrap();
    assert_eq!(response.status(), 200);
}

/// Skips frames until one of `kind` arrives.
async fn next_frame_of_type(socket: &mut Ws, kind: &str) -> Value {
    loop {
        let frame = ws_frame(socket).await;
        if frame["type"] == kind {
            return frame;
        }
    }
}

#[tokio::test]
async fn the_page_on_its_own_origin_streams_from_a_gateway() {
    // `sluice web` on one port, the gateway (`up`) on another: one account database, one key.
    let data = tempfile::tempdir().unwrap();
    let (gateway_port, web_port) = (free_port(), free_port());
    let web_origin = format!("http://127.0.0.1:{web_port}");
    let gateway_origin = format!("http://127.0.0.1:{gateway_port}");
    let gateway = Node::start(NodeOptions {
        data_dir: Some(data.path().to_owned()),
        port: Some(gateway_port),
        // No --jwt-secret: the roles share the key made in their data directory.
        args: ["--allowed-origin", &web_origin].map(String::from).to_vec(),
        ..NodeOptions::default()
    })
    .await;
    let web_node = Node::start(NodeOptions {
        role: Some("web"),
        data_dir: Some(data.path().to_owned()),
        port: Some(web_port),
        args: ["--gateway-url", &gateway_origin, "--billing-test-mode"]
            .map(String::from)
            .to_vec(),
        ..NodeOptions::default()
    })
    .await;

    let page = reqwest::get(web_node.http("/")).await.unwrap();
    let policy = page.headers()["content-security-policy"]
        .to_str()
        .unwrap()
        .to_owned();
    assert!(
        policy.contains(&format!(
            "connect-src 'self' {gateway_origin} ws://127.0.0.1:{gateway_port};"
        )),
        "{policy}"
    );

    let browser = Browser::start("split-origin").await;
    browser
        .client
        .goto(&web_node.http("/signup"))
        .await
        .unwrap();
    browser.sign_up("split@example.org", Some("split")).await;

    // On `free` (1/s, burst 10) a burst of 20 is cut, and the viewer counts what was dropped.
    browser.open_viewer().await;
    let burst: Vec<Value> = (100..120)
        .map(|n| {
            let mut item = indicator(n);
            item["tlp"] = json!("green");
            item
        })
        .collect();
    gateway.publish_all(&burst).await;
    let deadline = tokio::time::Instant::now() + WAIT;
    let (received, dropped) = loop {
        let received = count_of(&browser, "stream-received").await;
        let dropped = count_of(&browser, "stream-dropped").await;
        if received + dropped == burst.len() as u64 {
            break (received, dropped);
        }
        assert!(
            tokio::time::Instant::now() < deadline,
            "{received} + {dropped}"
        );
        tokio::time::sleep(std::time::Duration::from_millis(100)).await;
    };
    assert!(
        dropped >= 5 && received >= 10,
        "{received} received, {dropped} dropped"
    );
    assert_eq!(browser.all("stream-row").await.len() as u64, received);

    browser.click("nav-plans").await;
    browser.switch_plan("hobby").await;
    browser.open_viewer().await;
    gateway.publish_all(&[indicator(1), indicator(2)]).await;
    let rows = browser.wait_count("stream-row", 2).await;
    assert!(rows[0].text().await.unwrap().contains(&ip(2)));
    let curl = browser.text("copy-curl-command").await;
    assert!(
        curl.contains(&format!("{gateway_origin}/v1/stream")),
        "{curl}"
    );
    browser.screenshot("firehose").await;
    let errors = browser.console_errors().await;
    assert!(errors.is_empty(), "console errors: {errors:#?}");
    browser.close().await;
    drop(web_node);
}

#[tokio::test]
async fn the_viewer_renews_its_stream_token_and_misses_nothing() {
    // Stream tokens of 2 s: the viewer's stream closes with 4001 every 2 s and must come back
    // from its cursor each time.
    let (node, _redis) = start(
        Backend::Sqlite,
        &["--stream-token-ttl", "2s", "--billing-test-mode"],
    )
    .await;
    let browser = Browser::start("renewal").await;
    browser.client.goto(&node.http("/signup")).await.unwrap();
    browser.sign_up("renewal@example.org", None).await;
    browser.switch_plan("hobby").await;
    browser.open_viewer().await;

    let mut published = Vec::new();
    for round in 0..4 {
        let batch = [indicator(10 * round), indicator(10 * round + 1)];
        node.publish_all(&batch).await;
        published.extend(batch);
        tokio::time::sleep(std::time::Duration::from_millis(1500)).await;
    }
    // Every indicator shown once: nothing lost and nothing repeated across the renewals.
    let deadline = tokio::time::Instant::now() + WAIT;
    while count_of(&browser, "stream-received").await < published.len() as u64 {
        assert!(tokio::time::Instant::now() < deadline, "not all arrived");
        tokio::time::sleep(std::time::Duration::from_millis(100)).await;
    }
    tokio::time::sleep(std::time::Duration::from_millis(500)).await;
    assert_eq!(
        count_of(&browser, "stream-received").await,
        published.len() as u64
    );
    let mut shown = Vec::new();
    for row in browser.all("stream-row").await {
        shown.push(row.attr("data-cursor").await.unwrap().unwrap());
    }
    shown.sort();
    shown.dedup();
    assert_eq!(shown.len(), published.len(), "{shown:?}");
    browser.screenshot("firehose").await;
    let metrics = node.metrics().await;
    let renewals = metrics
        .lines()
        .find(|line| line.contains("token_revoked"))
        .and_then(|line| line.rsplit(' ').next())
        .and_then(|count| count.parse::<f64>().ok())
        .unwrap_or(0.0);
    assert!(
        renewals >= 2.0,
        "the stream was not renewed: {renewals}\n{metrics}"
    );
    let errors = browser.console_errors().await;
    assert!(errors.is_empty(), "console errors: {errors:#?}");
    browser.close().await;
}
