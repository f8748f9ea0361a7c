//! `GET /openapi.json` and `/docs`: the description lists every endpoint with its methods, every
//! role serves it, and Swagger UI comes entirely from the node (no CDN) and works in a browser
//! under its Content-Security-Policy.

use std::collections::{BTreeMap, BTreeSet};
use std::time::Duration;

use fantoccini::Locator;
use serde_json::Value;
use testkit::RedisServer;

use crate::harness::*;
use crate::webdriver::Browser;
use crate::{start, Backend};

/// Every HTTP endpoint Sluice serves, and its methods.
const ENDPOINTS: &[(&str, &[&str])] = &[
    // The gateway.
    ("/v1/indicators", &["get", "post"]),
    ("/v1/indicators/{id}", &["delete"]),
    ("/indicators", &["get"]),
    ("/ping", &["get"]),
    ("/v1/lists/{list}", &["get"]),
    ("/feed", &["get"]),
    ("/v1/stream", &["get"]),
    ("/firehose", &["get"]),
    ("/cif/firehose", &["get"]),
    ("/healthz", &["get"]),
    ("/readyz", &["get"]),
    ("/metrics", &["get"]),
    ("/v1/admin/connections", &["delete", "get"]),
    ("/v1/admin/connections/{id}", &["delete"]),
    ("/taxii2/", &["get"]),
    ("/taxii2/api/", &["get"]),
    ("/taxii2/api/collections/", &["get"]),
    ("/taxii2/api/collections/{collection}/", &["get"]),
    ("/taxii2/api/collections/{collection}/objects/", &["get"]),
    ("/taxii2/api/collections/{collection}/manifest/", &["get"]),
    (
        "/taxii2/api/collections/{collection}/objects/{object}/",
        &["get"],
    ),
    (
        "/taxii2/api/collections/{collection}/objects/{object}/versions/",
        &["get"],
    ),
    // The account, session, admin and billing API.
    ("/v1/billing/webhook", &["post"]),
    ("/v1/plans", &["get"]),
    ("/v1/account", &["get"]),
    ("/v1/account/subscription", &["put"]),
    ("/v1/account/usage", &["get"]),
    ("/v1/account/tokens", &["get", "post"]),
    ("/v1/account/tokens/{id}", &["delete"]),
    ("/v1/account/webhooks", &["get", "post"]),
    ("/v1/account/webhooks/{id}", &["get", "delete"]),
    ("/v1/account/webhooks/{id}/deliveries", &["get"]),
    ("/v1/session", &["get"]),
    ("/v1/session/signup", &["post"]),
    ("/v1/session/signin", &["post"]),
    ("/v1/session/signout", &["post"]),
    ("/v1/session/stream-token", &["post"]),
    ("/v1/admin/plans", &["get"]),
    ("/v1/admin/plans/{name}", &["put"]),
    ("/v1/admin/accounts/{name}/plan", &["put"]),
    ("/v1/admin/accounts/{name}/usage", &["get"]),
    // The pages.
    ("/", &["get"]),
    ("/signin", &["get"]),
    ("/signup", &["get"]),
    ("/live", &["get"]),
    ("/plans", &["get"]),
    ("/tokens", &["get"]),
    ("/webhooks", &["get"]),
    ("/usage", &["get"]),
    ("/operator", &["get"]),
    ("/assets/{file}", &["get"]),
    // The documentation.
    ("/openapi.json", &["get"]),
    ("/docs", &["get"]),
    ("/docs/", &["get"]),
    ("/docs/{file}", &["get"]),
];

const METHODS: [&str; 8] = [
    "get", "put", "post", "delete", "patch", "head", "options", "trace",
];

async fn fetch_document(node: &Node) -> Value {
    let response = reqwest::get(node.http("/openapi.json")).await.unwrap();
    assert_eq!(response.status(), 200);
    let content_type = response.headers()["content-type"]
        .to_str()
        .unwrap()
        .to_owned();
    assert!(
        content_type.starts_with("application/json"),
        "{content_type}"
    );
    let text = response.text().await.unwrap();
    serde_json::from_str(&text).unwrap_or_else(|error| panic!("not JSON ({error}): {text}"))
}

fn operations(document: &Value) -> BTreeMap<String, BTreeSet<String>> {
    document["paths"]
        .as_object()
        .expect("`paths` is an object")
        .iter()
        .map(|(path, item)| {
            let methods = item
                .as_object()
                .unwrap()
                .keys()
                .filter(|key| METHODS.contains(&key.as_str()))
                .cloned()
                .collect();
            (path.clone(), methods)
        })
        .collect()
}

fn parameter_names(operation: &Value, location: &str) -> BTreeSet<String> {
    operation["parameters"]
        .as_array()
        .into_iter()
        .flatten()
        .filter(|parameter| parameter["in"] == location)
        .map(|parameter| parameter["name"].as_str().unwrap().to_owned())
        .collect()
}

#[tokio::test]
async fn openapi_json_describes_every_endpoint() {
    let (node, _redis) = start(Backend::Sqlite, &[]).await;
    let document = fetch_document(&node).await;

    let version = document["openapi"].as_str().expect("an `openapi` version");
    assert!(version.starts_with("3."), "openapi {version}");
    assert_eq!(document["info"]["title"], "Sluice");
    assert_eq!(document["info"]["version"], env!("CARGO_PKG_VERSION"));

    let expected: BTreeMap<String, BTreeSet<String>> = ENDPOINTS
        .iter()
        .map(|(path, methods)| {
            (
                path.to_string(),
                methods.iter().map(|m| m.to_string()).collect(),
            )
        })
        .collect();
    let found = operations(&document);
    for (path, methods) in &expected {
        assert_eq!(found.get(path), Some(methods), "{path}");
    }
    for (path, methods) in &found {
        assert_eq!(
            expected.get(path),
            Some(methods),
            "{path} is described but not in this test's list"
        );
    }

    // Every operation has a summary and responses.
    for (path, item) in document["paths"].as_object().unwrap() {
        for (method, operation) in item.as_object().unwrap() {
            if METHODS.contains(&method.as_str()) {
                assert!(operation["summary"].is_string(), "{method} {path}");
                assert!(
                    !operation["responses"].as_object().unwrap().is_empty(),
                    "{method} {path}"
                );
            }
        }
    }

    // The stream: its query parameters, `Last-Event-ID`, and both transports' answers.
    let stream = &document["paths"]["/v1/stream"]["get"];
    let query = parameter_names(stream, "query");
    for name in [
        "access_token",
        "cursor",
        "itype",
        "tags",
        "confidence",
        "tlp",
        "provider",
        "cidr",
        "profile",
        "correlated",
    ] {
        assert!(query.contains(name), "/v1/stream lacks ?{name}: {query:?}");
    }
    assert!(parameter_names(stream, "header").contains("Last-Event-ID"));
    let responses = &stream["responses"];
    for status in ["101", "200", "400", "401", "403", "429"] {
        assert!(responses[status].is_object(), "/v1/stream lacks {status}");
    }
    assert!(responses["200"]["content"]["text/event-stream"].is_object());
    assert!(responses["429"]["headers"]["Retry-After"].is_object());

    // The recent feed answers JSON or CSV; publishing takes JSON or NDJSON.
    let recent = &document["paths"]["/v1/indicators"]["get"]["responses"]["200"]["content"];
    assert!(recent["application/json"].is_object() && recent["text/csv"].is_object());
    let publish = &document["paths"]["/v1/indicators"]["post"];
    assert!(publish["requestBody"]["content"]["application/x-ndjson"].is_object());
    assert_eq!(
        publish["responses"]["202"]["content"]["application/json"]["schema"]["$ref"],
        "#/components/schemas/IngestResponse"
    );

    // The subscription toggle: the account (200) or where to pay (202).
    let subscribe = &document["paths"]["/v1/account/subscription"]["put"]["responses"];
    assert_eq!(
        subscribe["200"]["content"]["application/json"]["schema"]["$ref"],
        "#/components/schemas/AccountView"
    );
    assert_eq!(
        subscribe["202"]["content"]["application/json"]["schema"]["$ref"],
        "#/components/schemas/CheckoutView"
    );

    // The credentials.
    let schemes = &document["components"]["securitySchemes"];
    assert_eq!(schemes["api_token"]["type"], "http");
    assert_eq!(schemes["api_token"]["scheme"], "bearer");
    assert_eq!(schemes["session_cookie"]["in"], "cookie");
    assert_eq!(schemes["session_cookie"]["name"], "sluice_session");
    assert_eq!(schemes["csrf_token"]["in"], "header");
    assert_eq!(schemes["csrf_token"]["name"], "X-CSRF-Token");
    assert_eq!(schemes["access_token"]["in"], "query");
    assert_eq!(schemes["access_token"]["name"], "access_token");
    let token_create = &document["paths"]["/v1/account/tokens"]["post"]["security"];
    assert_eq!(
        token_create,
        &serde_json::json!([{"session_cookie": [], "csrf_token": []}])
    );

    // Every schema a response or body refers to is in the document.
    let schemas = document["components"]["schemas"].as_object().unwrap();
    let text = document.to_string();
    for reference in text.split("\"$ref\":\"").skip(1) {
        let name = reference
            .split('"')
            .next()
            .unwrap()
            .trim_start_matches("#/components/schemas/");
        assert!(schemas.contains_key(name), "no schema {name}");
    }
}

/// The `src` and `href` values of an HTML page.
fn links(html: &str) -> Vec<String> {
    let mut links = Vec::new();
    for attribute in ["src=\"", "href=\""] {
        for piece in html.split(attribute).skip(1) {
            links.push(piece.split('"').next().unwrap().to_owned());
        }
    }
    links
}

#[tokio::test]
async fn docs_serve_swagger_ui_and_all_its_files_from_the_node() {
    let (node, _redis) = start(Backend::Sqlite, &[]).await;
    let client = reqwest::Client::new();

    // `/docs` leads to the page (a redirect to `/docs/`, where its relative links resolve).
    let response = client.get(node.http("/docs")).send().await.unwrap();
    assert_eq!(response.status(), 200);
    assert_eq!(response.url().path(), "/docs/");
    let page_url = response.url().clone();
    let headers = response.headers().clone();
    assert!(
        headers["content-type"]
            .to_str()
            .unwrap()
            .starts_with("text/html"),
        "{headers:?}"
    );
    let policy = headers["content-security-policy"].to_str().unwrap();
    assert!(policy.contains("script-src 'self';"), "{policy}");
    assert!(
        !policy.contains("unsafe-inline") && !policy.contains("unsafe-eval"),
        "{policy}"
    );
    assert!(policy.contains("frame-ancestors 'none'"), "{policy}");
    let html = response.text().await.unwrap();
    assert!(html.contains("<html"), "{html}");
    assert!(!html.contains("<script>"), "no inline script: {html}");

    // Every script, stylesheet and icon comes from this node.
    let links = links(&html);
    let scripts: Vec<&String> = links.iter().filter(|link| link.ends_with(".js")).collect();
    let styles: Vec<&String> = links.iter().filter(|link| link.ends_with(".css")).collect();
    assert!(!scripts.is_empty() && !styles.is_empty(), "{links:?}");
    for link in &links {
        assert!(
            !link.contains("://") && !link.starts_with("//"),
            "{link} is not on this server"
        );
        let url = page_url.join(link).unwrap();
        assert_eq!(url.host_str(), page_url.host_str(), "{url}");
        let response = client.get(url.clone()).send().await.unwrap();
        assert_eq!(response.status(), 200, "{url}");
        let content_type = response.headers()["content-type"]
            .to_str()
            .unwrap()
            .to_owned();
        if link.ends_with(".js") {
            assert!(content_type.contains("javascript"), "{url}: {content_type}");
        } else if link.ends_with(".css") {
            assert!(
                content_type.starts_with("text/css"),
                "{url}: {content_type}"
            );
        }
        let body = response.bytes().await.unwrap();
        assert!(!body.is_empty(), "{url} is empty");
        if link.ends_with("swagger-initializer.js") {
            let text = String::from_utf8(body.to_vec()).unwrap();
            assert!(text.contains("\"/openapi.json\""), "{text}");
            for outside in ["https://", "http://", "unpkg", "cdn"] {
                assert!(!text.contains(outside), "{outside} in {text}");
            }
        }
    }
    assert!(
        scripts
            .iter()
            .any(|link| link.ends_with("swagger-initializer.js")),
        "{links:?}"
    );
    for outside in ["https://", "http://", "unpkg", "cdn"] {
        assert!(!html.contains(outside), "{outside} in {html}");
    }

    let missing = client
        .get(node.http("/docs/nothing.js"))
        .send()
        .await
        .unwrap();
    assert_eq!(missing.status(), 404);
}

/// `sluice gateway` and `sluice web` serve the same document and Swagger UI as `sluice up`.
#[tokio::test]
async fn every_role_serves_the_document() {
    let (up, _none) = start(Backend::Sqlite, &[]).await;
    let redis = RedisServer::start().expect("cannot start redis-server");
    let gateway = Node::start(NodeOptions {
        role: Some("gateway"),
        redis: Some(redis.url()),
        ..NodeOptions::default()
    })
    .await;
    let web = Node::start(NodeOptions {
        role: Some("web"),
        args: ["--jwt-secret", "openapi-test-jwt-secret-0123456789abcdef"]
            .map(String::from)
            .to_vec(),
        ..NodeOptions::default()
    })
    .await;
    let expected = operations(&fetch_document(&up).await);
    for node in [&gateway, &web] {
        assert_eq!(operations(&fetch_document(node).await), expected);
        let docs = reqwest::get(node.http("/docs/")).await.unwrap();
        assert_eq!(docs.status(), 200);
        assert!(docs.headers().contains_key("content-security-policy"));
        let script = reqwest::get(node.http("/docs/swagger-ui-bundle.js"))
            .await
            .unwrap();
        assert_eq!(script.status(), 200);
    }
}

/// Swagger UI renders the document and runs a request in a real browser, under `/docs`'s
/// Content-Security-Policy, without a single console error (a blocked script, style or request
/// is one).
#[tokio::test]
async fn swagger_ui_works_in_a_browser_under_its_policy() {
    let (node, _redis) = start(Backend::Sqlite, &[]).await;
    let browser = Browser::start("openapi-docs").await;
    browser.client.goto(&node.http("/docs")).await.unwrap();

    // Every operation is rendered.
    let deadline = tokio::time::Instant::now() + WAIT;
    let operations = ENDPOINTS
        .iter()
        .map(|(_, methods)| methods.len())
        .sum::<usize>();
    loop {
        let rendered = browser
            .client
            .find_all(Locator::Css(".opblock"))
            .await
            .unwrap()
            .len();
        if rendered == operations {
            break;
        }
        assert!(
            tokio::time::Instant::now() < deadline,
            "{rendered} of {operations} operations rendered"
        );
        tokio::time::sleep(Duration::from_millis(100)).await;
    }

    // Open GET /healthz, try it out, and see the node's answer.
    let healthz = browser
        .client
        .find(Locator::Css(
            "#operations-operations-healthz .opblock-summary",
        ))
        .await
        .unwrap();
    healthz.click().await.unwrap();
    let wait = |selector: &'static str| {
        let client = browser.client.clone();
        async move {
            client
                .wait()
                .at_most(WAIT)
                .for_element(Locator::Css(selector))
                .await
                .unwrap_or_else(|error| panic!("no {selector}: {error}"))
        }
    };
    wait("#operations-operations-healthz .try-out__btn")
        .await
        .click()
        .await
        .unwrap();
    wait("#operations-operations-healthz .execute")
        .await
        .click()
        .await
        .unwrap();
    let status = wait(
        "#operations-operations-healthz .live-responses-table tr.response .response-col_status",
    )
    .await
    .text()
    .await
    .unwrap();
    assert!(status.trim().starts_with("200"), "{status}");
    browser.screenshot("healthz").await;

    // The stream's parameters, a schema, and the credentials dialog render too.
    browser
        .client
        .find(Locator::Css("#operations-stream-stream .opblock-summary"))
        .await
        .unwrap()
        .click()
        .await
        .unwrap();
    let parameters = wait("#operations-stream-stream .parameters").await;
    let text = parameters.text().await.unwrap();
    assert!(
        text.contains("Last-Event-ID") && text.contains("cursor"),
        "{text}"
    );
    wait(".models .json-schema-2020-12-accordion")
        .await
        .click()
        .await
        .unwrap();
    wait(".models .json-schema-2020-12-body").await;
    wait(".btn.authorize").await.click().await.unwrap();
    let dialog = wait(".modal-ux").await.text().await.unwrap();
    assert!(
        dialog.contains("api_token") && dialog.contains("session_cookie"),
        "{dialog}"
    );
    browser.screenshot("authorize").await;

    let errors = browser.console_errors().await;
    assert!(errors.is_empty(), "console errors: {errors:#?}");
    browser.close().await;
}
