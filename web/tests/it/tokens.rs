//! The Tokens page's API: a signed-in user creates (value once), lists and revokes the
//! account's own tokens; API tokens cannot mint tokens, and no one mints `admin` tokens here.

use axum::http::StatusCode;
use billing::Scope;
use serde_json::json;

use crate::session::{router, sign_up};
use crate::{Client, TestApp};

testkit::on_both_backends!(
    crate::TestApp;
    a_session_creates_lists_and_revokes_its_tokens,
    token_creation_refuses_what_it_must,
);

async fn a_session_creates_lists_and_revokes_its_tokens(app: &TestApp) {
    let router = router(app);
    let (cookie, csrf) = sign_up(&router).await;
    let signed_in = Client::new(&router).with_cookie(&cookie);
    let with_csrf = signed_in.clone().with_csrf(&csrf);
    let ask_for_write = || {
        with_csrf.post_json(
            "/v1/account/tokens",
            json!({"scope": "write", "expires_in_days": 30}),
        )
    };
    // A signed-up account does not publish until an operator makes it a publisher.
    let refused = ask_for_write().await;
    assert_eq!(refused.status, StatusCode::FORBIDDEN, "{:?}", refused.body);
    assert!(
        refused.error().contains("--scope write"),
        "{}",
        refused.error()
    );
    app.store
        .create_token("acme", Scope::Write, None)
        .await
        .unwrap();
    let created = ask_for_write().await;
    assert_eq!(created.status, StatusCode::CREATED, "{:?}", created.body);
    let token = created.body["token"].as_str().unwrap().to_owned();
    let id = created.body["id"].as_str().unwrap().to_owned();
    assert_eq!(created.body["scope"], "write");
    assert!(created.body["expires_at"].is_string());
    // The token works, as the account's.
    let principal = app.store.authenticate(&token).await.unwrap();
    assert_eq!(principal.account, "acme");
    assert_eq!(principal.scope, Scope::Write);
    // A second, with the defaults: read, never expires.
    let second = with_csrf.post_json("/v1/account/tokens", json!({})).await;
    assert_eq!(second.status, StatusCode::CREATED);
    assert_eq!(second.body["scope"], "read");
    assert!(second.body["expires_at"].is_null());

    // Listed newest first, never with a value.
    let list = signed_in.get("/v1/account/tokens").await;
    assert_eq!(list.status, StatusCode::OK);
    let tokens = list.body["tokens"].as_array().unwrap();
    assert_eq!(tokens.len(), 3, "the operator's, and two of the page's");
    assert!(tokens.iter().any(|listed| listed["id"] == id.as_str()));
    assert!(!list.body.to_string().contains(&token));

    // Revocation needs the CSRF token, then takes effect.
    let path = format!("/v1/account/tokens/{id}");
    let refused = signed_in.delete(&path).await;
    assert_eq!(refused.status, StatusCode::FORBIDDEN);
    let revoked = with_csrf.delete(&path).await;
    assert_eq!(revoked.status, StatusCode::NO_CONTENT);
    assert!(app.store.authenticate(&token).await.is_err());
    assert!(app
        .change_kinds()
        .await
        .contains(&"token_revoked".to_owned()));
    let list = signed_in.get("/v1/account/tokens").await;
    // Two tokens made within one second may list in either order: find them by id.
    for listed in list.body["tokens"].as_array().unwrap() {
        let revoked = listed["id"] == id.as_str();
        assert_eq!(listed["revoked_at"].is_string(), revoked, "{listed}");
    }

    // Another account's token is not this account's to revoke, nor to see.
    let (_, other) = app.account("other", "free", Scope::Read).await;
    let other_id = app.store.tokens("other").await.unwrap()[0].id.clone();
    let answer = with_csrf
        .delete(&format!("/v1/account/tokens/{other_id}"))
        .await;
    assert_eq!(answer.status, StatusCode::NOT_FOUND, "{:?}", answer.body);
    assert!(app.store.authenticate(other.expose()).await.is_ok());
}

async fn token_creation_refuses_what_it_must(app: &TestApp) {
    let router = router(app);
    let (cookie, csrf) = sign_up(&router).await;
    let signed_in = Client::new(&router).with_cookie(&cookie);
    let with_csrf = signed_in.clone().with_csrf(&csrf);
    for (body, status, fragment) in [
        (
            json!({"scope": "admin"}),
            StatusCode::FORBIDDEN,
            "sluice tokens create --scope admin",
        ),
        (
            json!({"scope": "root"}),
            StatusCode::UNPROCESSABLE_ENTITY,
            "unknown scope `root`",
        ),
        (
            json!({"expires_in_days": 0}),
            StatusCode::UNPROCESSABLE_ENTITY,
            "from 1 to 730",
        ),
        (
            json!({"expires_in_days": 731}),
            StatusCode::UNPROCESSABLE_ENTITY,
            "from 1 to 730",
        ),
        (
            json!({"expires_in_days": "soon"}),
            StatusCode::UNPROCESSABLE_ENTITY,
            "expires_in_days",
        ),
        (
            json!({"colour": "red"}),
            StatusCode::UNPROCESSABLE_ENTITY,
            "colour",
        ),
    ] {
        let answer = with_csrf
            .post_json("/v1/account/tokens", body.clone())
            .await;
        assert_eq!(answer.status, status, "{body}: {:?}", answer.body);
        assert!(
            answer.error().contains(fragment),
            "{body}: {}",
            answer.error()
        );
    }
    // Without the CSRF token, and with an API token instead of a session: refused.
    let answer = signed_in.post_json("/v1/account/tokens", json!({})).await;
    assert_eq!(answer.status, StatusCode::FORBIDDEN);
    let (_, token) = app.account("tooling", "pro", Scope::Write).await;
    let answer = Client::new(&router)
        .with_token(&token)
        .post_json("/v1/account/tokens", json!({}))
        .await;
    assert_eq!(answer.status, StatusCode::UNAUTHORIZED);
    assert_eq!(app.store.tokens("acme").await.unwrap().len(), 0);
}
