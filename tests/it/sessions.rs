//! Browsers: sign up, a session cookie, and a short-lived stream JWT that opens the firehose.

use serde_json::{json, Value};

use crate::harness::*;
use crate::{start, Backend};

#[tokio::test]
async fn signed_in_browser_streams_with_a_short_lived_jwt() {
    let (node, _redis) = start(Backend::Sqlite, &["--insecure-cookies"]).await;
    let client = reqwest::Client::new();
    let (cookie, csrf) = sign_up(
        &node,
        json!({"email": "ana@example.org", "password": "correct horse battery", "account": "ana"}),
    )
    .await;

    // Without the CSRF header the cookie is not enough for a state-changing request.
    let refused = client
        .post(node.http("/v1/session/stream-token"))
        .header("cookie", &cookie)
        .send()
        .await
        .unwrap();
    assert_eq!(refused.status(), 403);
    let issued: Value = client
        .post(node.http("/v1/session/stream-token"))
        .header("cookie", &cookie)
        .header("x-csrf-token", &csrf)
        .send()
        .await
        .unwrap()
        .json()
        .await
        .unwrap();
    let jwt = issued["token"].as_str().unwrap();

    // EventSource-style: the token in the query string.
    let url = node.ws(&format!("/v1/stream?access_token={jwt}"));
    let mut socket = ws_connect(&url, None).await.unwrap();
    let hello = ws_frame(&mut socket).await;
    assert_eq!(hello["plan"], "free");

    // A tampered token is refused before any upgrade, like any bad credential.
    let mut tampered = jwt.to_owned();
    tampered.pop();
    tampered.push(if jwt.ends_with('A') { 'B' } else { 'A' });
    let refused = ws_connect(
        &node.ws(&format!("/v1/stream?access_token={tampered}")),
        None,
    )
    .await;
    assert_eq!(refused.err(), Some(401));
    let logs = node.logs();
    assert!(!logs.contains(jwt) && !logs.contains("correct horse battery"));
    assert!(!logs.contains(cookie.trim_start_matches("sluice_session=")));
}

/// Signs up with `body`: the session's cookie (`name=value`) and CSRF token.
async fn sign_up(node: &Node, body: Value) -> (String, String) {
    let response = reqwest::Client::new()
        .post(node.http("/v1/session/signup"))
        .json(&body)
        .send()
        .await
        .unwrap();
    assert_eq!(response.status(), 201);
    let cookie = response.headers()["set-cookie"]
        .to_str()
        .unwrap()
        .split(';')
        .next()
        .unwrap()
        .to_owned();
    let session: Value = response.json().await.unwrap();
    (cookie, session["csrf_token"].as_str().unwrap().to_owned())
}

/// Signs up `email` (test mode, insecure cookies) and returns a stream JWT of its session.
async fn stream_jwt_for(node: &Node, email: &str) -> String {
    let (cookie, csrf) = sign_up(
        node,
        json!({"email": email, "password": "correct horse battery"}),
    )
    .await;
    let issued: Value = reqwest::Client::new()
        .post(node.http("/v1/session/stream-token"))
        .header("cookie", cookie)
        .header("x-csrf-token", csrf)
        .send()
        .await
        .unwrap()
        .json()
        .await
        .unwrap();
    issued["token"].as_str().unwrap().to_owned()
}

/// Opens the stream with `?access_token=` and an `Origin` header: the handshake's status.
/// The handshake's status. An accepted stream is closed and drained before returning; the
/// free plan's one connection slot is released as the server ends the stream, so a handshake
/// that races that release (429) is tried again.
async fn handshake_from(url: &str, origin: Option<&str>) -> u16 {
    use tokio_tungstenite::tungstenite::client::IntoClientRequest;
    for _ in 0..50 {
        let mut request = url.into_client_request().unwrap();
        if let Some(origin) = origin {
            request
                .headers_mut()
                .insert("origin", origin.parse().unwrap());
        }
        let status = match tokio_tungstenite::connect_async(request).await {
            Ok((mut socket, response)) => {
                ws_send_close(&mut socket).await;
                response.status().as_u16()
            }
            Err(tokio_tungstenite::tungstenite::Error::Http(response)) => {
                response.status().as_u16()
            }
            Err(error) => panic!("{error}"),
        };
        if status != 429 {
            return status;
        }
        tokio::time::sleep(std::time::Duration::from_millis(50)).await;
    }
    429
}

#[tokio::test]
async fn a_session_jwt_opens_the_stream_only_from_allowed_origins() {
    let (node, _redis) = start(
        Backend::Sqlite,
        &[
            "--insecure-cookies",
            "--allowed-origin",
            "https://app.example.com",
        ],
    )
    .await;
    let jwt = stream_jwt_for(&node, "origin@example.org").await;
    let url = node.ws(&format!("/v1/stream?access_token={jwt}"));
    let own = format!("http://{}", node.addr);
    assert_eq!(
        handshake_from(&url, Some(&own)).await,
        101,
        "the node's own page"
    );
    assert_eq!(
        handshake_from(&url, Some("https://app.example.com")).await,
        101,
        "allowed"
    );
    assert_eq!(handshake_from(&url, None).await, 101, "not a browser");
    for foreign in ["https://evil.example", "null", "http://127.0.0.1:1"] {
        assert_eq!(handshake_from(&url, Some(foreign)).await, 403, "{foreign}");
    }
    // API tokens are not browser credentials: any page may use one it was given.
    let token = node.create_token("admin", "read").await;
    let url = node.ws(&format!("/v1/stream?access_token={token}"));
    assert_eq!(
        handshake_from(&url, Some("https://evil.example")).await,
        101
    );
}
