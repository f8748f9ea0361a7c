//! The caller's own account: who am I, the subscription toggle, usage.

use axum::body::Body;
use axum::http::{header, Request, StatusCode};
use billing::{ApiToken, Scope, UsageDelta};
use chrono::{Days, Utc};
use serde_json::json;

use crate::{send, Client, TestApp};

testkit::on_both_backends!(
    crate::TestApp;
    the_account_shows_its_plan_and_limits,
    requests_without_a_valid_token_are_401,
    test_mode_toggle_applies_directly_and_records_a_change,
    toggle_is_a_conflict_when_a_provider_is_configured,
    toggle_refuses_unknown_and_contract_plans_and_bad_bodies,
    usage_round_trip,
    a_database_outage_is_503,
);

async fn the_account_shows_its_plan_and_limits(app: &TestApp) {
    let (_, token) = app.account("acme", "hobby", Scope::Read).await;
    let answer = app.client().with_token(&token).get("/v1/account").await;
    assert_eq!(answer.status, StatusCode::OK, "{:?}", answer.body);
    assert_eq!(
        answer.body,
        json!({
            "account": "acme",
            "plan": "hobby",
            "price_cents": 2500,
            "limits": {
                "firehose": true,
                "sample_per_second": null,
                "max_connections": 2,
                "rate_per_second": 100,
                "burst": 1000,
                "replay_window_seconds": 3600,
                "max_tlp": "amber",
                "correlated": true,
            }
        })
    );
    // csirtg's `Token token=` form works too.
    let request = Request::get("/v1/account")
        .header(
            header::AUTHORIZATION,
            format!("Token token={}", token.expose()),
        )
        .body(Body::empty())
        .unwrap();
    assert_eq!(send(&app.router, request).await.body["account"], "acme");
}

async fn requests_without_a_valid_token_are_401(app: &TestApp) {
    let (record, token) = {
        app.store.create_account("acme", "pro").await.unwrap();
        app.store
            .create_token("acme", Scope::Admin, None)
            .await
            .unwrap()
    };
    app.store.revoke_token(&record.id).await.unwrap();
    let unknown = ApiToken::generate();
    let mut answers = Vec::new();
    for presented in [None, Some(&unknown), Some(&token)] {
        let client = match presented {
            Some(presented) => app.client().with_token(presented),
            None => app.client(),
        };
        answers.push(client.get("/v1/account").await);
    }
    let request = Request::get("/v1/account")
        .header(header::AUTHORIZATION, "Bearer slc_garbage")
        .body(Body::empty())
        .unwrap();
    answers.push(send(&app.router, request).await);
    // Every refusal is the same 401, whatever was wrong.
    for answer in &answers {
        assert_eq!(answer.status, StatusCode::UNAUTHORIZED);
        assert_eq!(answer.error(), web::UNAUTHORIZED_MESSAGE);
        assert_eq!(answer.headers[header::WWW_AUTHENTICATE], "Bearer");
    }
}

async fn test_mode_toggle_applies_directly_and_records_a_change(app: &TestApp) {
    let (acme, reader) = app.account("acme", "free", Scope::Read).await;
    let test_mode = Client::new(&app.router_with_secrets(&[]));
    // A `read` token streams; it does not move the account between plans.
    let answer = test_mode
        .clone()
        .with_token(&reader)
        .put_json("/v1/account/subscription", json!({"plan": "hobby"}))
        .await;
    assert_eq!(answer.status, StatusCode::FORBIDDEN, "{:?}", answer.body);
    assert!(
        answer.error().contains("`read` token"),
        "{}",
        answer.error()
    );
    assert_eq!(app.plan_of("acme").await, "free");
    let (_, token) = app
        .store
        .create_token("acme", Scope::Write, None)
        .await
        .unwrap();
    let writer = test_mode.with_token(&token);
    let answer = writer
        .put_json("/v1/account/subscription", json!({"plan": "hobby"}))
        .await;
    assert_eq!(answer.status, StatusCode::OK, "{:?}", answer.body);
    assert_eq!(answer.body["plan"], "hobby");
    assert_eq!(answer.body["limits"]["max_connections"], 2);
    assert_eq!(app.plan_of("acme").await, "hobby");
    let changes = app.store.changes_after(0, 10).await.unwrap();
    assert_eq!(changes.len(), 1);
    assert_eq!(
        changes[0].kind,
        billing::ChangeKind::AccountPlan {
            account_id: acme.id,
            plan: app.store.plan("hobby").await.unwrap().unwrap(),
        }
    );
    // Without test mode and without a provider nobody moves themselves: an admin does.
    let no_provider = Client::new(&app.router_with_config(web::Config::default()))
        .with_token(&token)
        .put_json("/v1/account/subscription", json!({"plan": "pro"}))
        .await;
    assert_eq!(
        no_provider.status,
        StatusCode::CONFLICT,
        "{:?}",
        no_provider.body
    );
    assert!(
        no_provider.error().contains("--billing-test-mode"),
        "{}",
        no_provider.error()
    );
    assert_eq!(app.plan_of("acme").await, "hobby");
    // The same token now carries the new plan.
    let answer = writer.get("/v1/account").await;
    assert_eq!(answer.body["plan"], "hobby");
    // Toggling to the current plan is fine and records nothing.
    let answer = writer
        .put_json("/v1/account/subscription", json!({"plan": "hobby"}))
        .await;
    assert_eq!(answer.status, StatusCode::OK);
    assert_eq!(app.count("changes").await, 1);
}

async fn toggle_is_a_conflict_when_a_provider_is_configured(app: &TestApp) {
    let (_, token) = app.account("acme", "free", Scope::Admin).await;
    let answer = app
        .client()
        .with_token(&token)
        .put_json("/v1/account/subscription", json!({"plan": "pro"}))
        .await;
    assert_eq!(answer.status, StatusCode::CONFLICT, "{:?}", answer.body);
    assert!(
        answer
            .error()
            .starts_with("subscriptions are managed by the billing provider; "),
        "{}",
        answer.error()
    );
    assert_eq!(app.plan_of("acme").await, "free");
    assert_eq!(app.count("changes").await, 0);
}

async fn toggle_refuses_unknown_and_contract_plans_and_bad_bodies(app: &TestApp) {
    let (_, token) = app.account("acme", "free", Scope::Write).await;
    let test_mode = app.router_with_secrets(&[]);
    let writer = Client::new(&test_mode).with_token(&token);
    let put = |body| writer.put_json("/v1/account/subscription", body);
    let answer = put(json!({"plan": "platinum"})).await;
    assert_eq!(answer.status, StatusCode::UNPROCESSABLE_ENTITY);
    assert!(answer.error().contains("platinum"));
    let answer = put(json!({"plan": "enterprise"})).await;
    assert_eq!(answer.status, StatusCode::UNPROCESSABLE_ENTITY);
    assert!(answer.error().contains("contract"), "{}", answer.error());
    let answer = put(json!({"plan": 5})).await;
    assert_eq!(answer.status, StatusCode::UNPROCESSABLE_ENTITY);
    assert!(answer.error().contains("plan"), "{}", answer.error());
    let answer = put(json!({"tier": "pro"})).await;
    assert_eq!(answer.status, StatusCode::UNPROCESSABLE_ENTITY);

    let request = Request::put("/v1/account/subscription")
        .header(header::AUTHORIZATION, format!("Bearer {}", token.expose()))
        .header(header::CONTENT_TYPE, "application/json")
        .body(Body::from("{\"plan\":"))
        .unwrap();
    let answer = send(&test_mode, request).await;
    assert_eq!(answer.status, StatusCode::BAD_REQUEST);
    assert!(!answer.error().is_empty());
    let request = Request::put("/v1/account/subscription")
        .header(header::AUTHORIZATION, format!("Bearer {}", token.expose()))
        .body(Body::from("{\"plan\":\"pro\"}"))
        .unwrap();
    let answer = send(&test_mode, request).await;
    assert_eq!(answer.status, StatusCode::UNSUPPORTED_MEDIA_TYPE);
    assert!(
        answer.error().contains("application/json"),
        "{}",
        answer.error()
    );

    assert_eq!(app.plan_of("acme").await, "free");
    assert_eq!(app.count("changes").await, 0);
}

async fn usage_round_trip(app: &TestApp) {
    let (acme, token) = app.account("acme", "pro", Scope::Read).await;
    let (other, _) = app.account("other", "pro", Scope::Read).await;
    let today = Utc::now().date_naive();
    let long_ago = today.checked_sub_days(Days::new(40)).unwrap();
    let delta = |delivered| UsageDelta {
        delivered,
        dropped: 1,
        bytes: delivered * 100,
        connections_opened: 2,
        peak_connections: 2,
    };
    app.store
        .record_usage(&[
            (acme.id, today, delta(10)),
            (acme.id, long_ago, delta(20)),
            (other.id, today, delta(99)),
        ])
        .await
        .unwrap();
    app.store
        .record_usage(&[(acme.id, today, delta(5))])
        .await
        .unwrap();

    // Default range: the last 30 days, so only today.
    let reader = app.client().with_token(&token);
    let answer = reader.get("/v1/account/usage").await;
    assert_eq!(answer.status, StatusCode::OK, "{:?}", answer.body);
    assert_eq!(
        answer.body,
        json!({
            "account": "acme",
            "from": today.checked_sub_days(Days::new(29)).unwrap().to_string(),
            "to": today.to_string(),
            "days": [{
                "day": today.to_string(),
                "delivered": 15,
                "dropped": 2,
                "bytes": 1500,
                "connections": 4,
                "peak_connections": 2,
            }]
        })
    );
    // An explicit range reaches further back.
    let uri = format!("/v1/account/usage?from={long_ago}&to={today}");
    let answer = reader.get(&uri).await;
    let days: Vec<_> = answer.body["days"]
        .as_array()
        .unwrap()
        .iter()
        .map(|day| day["delivered"].as_u64().unwrap())
        .collect();
    assert_eq!(days, vec![20, 15]);

    for bad in [
        "/v1/account/usage?from=yesterday",
        "/v1/account/usage?from=2024-03-02&to=2024-03-01",
        "/v1/account/usage?from=2020-01-01&to=2024-01-01",
        "/v1/account/usage?since=2024-01-01",
    ] {
        let answer = reader.get(bad).await;
        assert_eq!(
            answer.status,
            StatusCode::BAD_REQUEST,
            "{bad}: {:?}",
            answer.body
        );
        assert!(!answer.error().is_empty());
    }
    let answer = app.client().get("/v1/account/usage").await;
    assert_eq!(answer.status, StatusCode::UNAUTHORIZED);
}

async fn a_database_outage_is_503(app: &TestApp) {
    let (_, token) = app.account("acme", "pro", Scope::Read).await;
    app.store.close().await;
    let answer = app.client().with_token(&token).get("/v1/account").await;
    assert_eq!(answer.status, StatusCode::SERVICE_UNAVAILABLE);
    assert_eq!(answer.headers[header::RETRY_AFTER], "2");
    assert!(answer.error().contains("retry"), "{}", answer.error());
    // A malformed token is still refused without the database.
    let request = Request::get("/v1/account")
        .header(header::AUTHORIZATION, "Bearer slc_garbage")
        .body(Body::empty())
        .unwrap();
    assert_eq!(
        send(&app.router, request).await.status,
        StatusCode::UNAUTHORIZED
    );
}
