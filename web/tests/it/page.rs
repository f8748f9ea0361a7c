//! The page's routes: sign-in redirects, security headers, compiled-in assets, the public plan
//! list, and the subscribe switch's checkout when a payment provider is configured.

use axum::body::Body;
use axum::http::{header, HeaderMap, Method, Request, StatusCode};
use axum::Router;
use billing::Scope;
use serde_json::json;
use tower::ServiceExt;

use crate::session::{router, sign_up};
use crate::{Client, TestApp};

testkit::on_both_backends!(
    crate::TestApp;
    pages_need_a_session_and_carry_security_headers,
    plans_are_public,
    the_switch_sends_to_checkout_when_a_provider_is_configured,
);

/// GET `path` with the session cookie, if given: status, headers, body text.
async fn get(router: &Router, path: &str, cookie: Option<&str>) -> (StatusCode, HeaderMap, String) {
    let mut request = Request::builder().method(Method::GET).uri(path);
    if let Some(cookie) = cookie {
        request = request.header(header::COOKIE, format!("sluice_session={cookie}"));
    }
    let response = router
        .clone()
        .oneshot(request.body(Body::empty()).unwrap())
        .await
        .unwrap();
    let status = response.status();
    let headers = response.headers().clone();
    let body = axum::body::to_bytes(response.into_body(), usize::MAX)
        .await
        .unwrap();
    (status, headers, String::from_utf8(body.to_vec()).unwrap())
}

/// Every `<script` of `page` loads a file: no inline script anywhere.
fn assert_scripts_are_files(page: &str) {
    let scripts: Vec<&str> = page.split("<script").skip(1).collect();
    assert!(!scripts.is_empty(), "the page has its module");
    for script in scripts {
        let tag = &script[..script.find('>').unwrap()];
        assert!(
            tag.contains(" src=\"/assets/"),
            "inline script: <script{tag}>"
        );
        assert!(
            script[tag.len() + 1..].starts_with("</script>"),
            "a body: {script}"
        );
    }
}

async fn pages_need_a_session_and_carry_security_headers(app: &TestApp) {
    let router = router(app);
    for path in ["/plans", "/tokens", "/live", "/usage"] {
        let (status, headers, _) = get(&router, path, None).await;
        assert_eq!(status, StatusCode::SEE_OTHER, "{path}");
        assert_eq!(headers[header::LOCATION], "/signin", "{path}");
        let (status, _, _) = get(&router, path, Some("not-a-session")).await;
        assert_eq!(
            status,
            StatusCode::SEE_OTHER,
            "{path} with a made-up cookie"
        );
    }
    let (status, headers, body) = get(&router, "/", None).await;
    assert_eq!(status, StatusCode::OK);
    assert!(body.contains(r#"data-testid="signup-email""#));
    assert!(body.contains(r#"data-testid="signin-submit""#));
    let policy = headers[header::CONTENT_SECURITY_POLICY].to_str().unwrap();
    assert!(policy.contains("script-src 'self';"), "{policy}");
    assert!(!policy.contains("unsafe"), "{policy}");
    assert_eq!(headers[header::X_FRAME_OPTIONS], "DENY");
    assert_eq!(headers[header::X_CONTENT_TYPE_OPTIONS], "nosniff");
    assert_scripts_are_files(&body);

    let (cookie, csrf) = sign_up(&router).await;
    let (status, headers, _) = get(&router, "/", Some(&cookie)).await;
    assert_eq!(status, StatusCode::SEE_OTHER);
    assert_eq!(headers[header::LOCATION], "/live");
    for (path, testid) in [
        ("/plans", "plan-current"),
        ("/tokens", "token-create"),
        ("/live", "stream-pause"),
        ("/usage", "usage-chart"),
    ] {
        let (status, headers, body) = get(&router, path, Some(&cookie)).await;
        assert_eq!(status, StatusCode::OK, "{path}");
        assert_eq!(headers[header::CACHE_CONTROL], "no-store", "{path}");
        assert!(
            headers.contains_key(header::CONTENT_SECURITY_POLICY),
            "{path}"
        );
        assert!(
            body.contains(&format!(r#"content="{csrf}""#)),
            "{path}: the CSRF token"
        );
        assert!(body.contains(r#"data-testid="nav-plans""#), "{path}");
        assert_scripts_are_files(&body);
        assert!(body.contains(r#"aria-current="page""#), "{path}");
        assert!(
            body.contains(&format!(r#"data-testid="{testid}""#)),
            "{path}"
        );
    }

    for script in [
        "common", "chart", "welcome", "plans", "tokens", "firehose", "usage",
    ] {
        let path = format!("/assets/js/{script}.js");
        let (status, headers, body) = get(&router, &path, None).await;
        assert_eq!(status, StatusCode::OK, "{path}");
        let content_type = headers[header::CONTENT_TYPE].to_str().unwrap();
        assert!(content_type.starts_with("text/javascript"), "{path}");
        for sink in [
            "innerHTML",
            "outerHTML",
            "insertAdjacentHTML",
            "document.write",
            "eval(",
        ] {
            assert!(
                !body.contains(sink),
                "{path} uses {sink}: values go in as text only"
            );
        }
    }
    let (status, _, _) = get(&router, "/assets/../Cargo.toml", None).await;
    assert_ne!(status, StatusCode::OK);
    let (status, _, _) = get(&router, "/assets/nothing.js", None).await;
    assert_eq!(status, StatusCode::NOT_FOUND);
}

async fn plans_are_public(app: &TestApp) {
    let answer = Client::new(&router(app)).get("/v1/plans").await;
    assert_eq!(answer.status, StatusCode::OK);
    let names: Vec<&str> = answer.body["plans"]
        .as_array()
        .unwrap()
        .iter()
        .map(|plan| plan["name"].as_str().unwrap())
        .collect();
    assert_eq!(names, ["free", "hobby", "pro", "enterprise"]);
    assert_eq!(answer.body["plans"][1]["price_cents"], 2500);
    assert_eq!(answer.body["plans"][1]["rate_per_second"], 100);
}

async fn the_switch_sends_to_checkout_when_a_provider_is_configured(app: &TestApp) {
    let router = app.router_with_config(web::Config {
        billing_webhook_secrets: vec![crate::SECRET.into()],
        billing_checkout_url: Some("https://pay.example.com/checkout?ref=sluice".into()),
        ..web::Config::default()
    });
    let (_, token) = app.account("acme", "free", Scope::Write).await;
    let writer = Client::new(&router).with_token(&token);
    let answer = writer
        .put_json("/v1/account/subscription", json!({"plan": "hobby"}))
        .await;
    assert_eq!(answer.status, StatusCode::ACCEPTED, "{:?}", answer.body);
    assert_eq!(answer.body["status"], "checkout");
    assert_eq!(
        answer.body["checkout_url"],
        "https://pay.example.com/checkout?ref=sluice&account=acme&plan=hobby"
    );
    // Nothing changes until the provider's signed webhook says so.
    assert_eq!(app.plan_of("acme").await, "free");
    assert_eq!(app.count("changes").await, 0);
    // Contract plans stay contract plans.
    let answer = writer
        .put_json("/v1/account/subscription", json!({"plan": "enterprise"}))
        .await;
    assert_eq!(answer.status, StatusCode::UNPROCESSABLE_ENTITY);
}
