//! The admin API: plans, any account's plan and usage; only for `admin` tokens.

use axum::http::{Method, StatusCode};
use billing::{Scope, UsageDelta};
use chrono::Utc;
use serde_json::{json, Value};

use crate::TestApp;

testkit::on_both_backends!(
    crate::TestApp;
    admins_list_the_plans,
    a_plan_edit_applies_and_records_plan_edited,
    plan_edits_are_validated,
    admins_move_any_account,
    admins_read_any_accounts_usage,
    only_admin_tokens_reach_the_admin_api,
);

fn pro_limits() -> Value {
    json!({
        "price_cents": 5000,
        "firehose": true,
        "sample_per_second": null,
        "max_connections": 10,
        "rate_per_second": 2000,
        "burst": 20000,
        "replay_window_seconds": 86400,
        "max_tlp": "amber",
        "correlated": true,
    })
}

async fn admins_list_the_plans(app: &TestApp) {
    let (_, admin) = app.account("ops", "enterprise", Scope::Admin).await;
    let answer = app.client().with_token(&admin).get("/v1/admin/plans").await;
    assert_eq!(answer.status, StatusCode::OK, "{:?}", answer.body);
    let plans = answer.body["plans"].as_array().unwrap();
    let names: Vec<_> = plans
        .iter()
        .map(|plan| plan["name"].as_str().unwrap())
        .collect();
    assert_eq!(names, vec!["free", "hobby", "pro", "enterprise"]);
    let mut pro = pro_limits();
    pro["name"] = json!("pro");
    assert_eq!(plans[2], pro);
    assert_eq!(plans[3]["price_cents"], Value::Null);
    assert_eq!(plans[3]["rate_per_second"], Value::Null);
    assert_eq!(plans[0]["sample_per_second"], 1);
}

async fn a_plan_edit_applies_and_records_plan_edited(app: &TestApp) {
    let (_, admin) = app.account("ops", "enterprise", Scope::Admin).await;
    let admin = app.client().with_token(&admin);
    let (_, customer) = app.account("acme", "pro", Scope::Read).await;
    let mut edit = pro_limits();
    edit["max_connections"] = json!(12);
    edit["rate_per_second"] = json!(null);
    edit["max_tlp"] = json!("RED");
    let answer = admin.put_json("/v1/admin/plans/pro", edit).await;
    assert_eq!(answer.status, StatusCode::OK, "{:?}", answer.body);
    assert_eq!(answer.body["max_connections"], 12);
    assert_eq!(answer.body["max_tlp"], "red");

    // Accounts on the plan see the new limits at once.
    let answer = app.client().with_token(&customer).get("/v1/account").await;
    assert_eq!(answer.body["limits"]["max_connections"], 12);
    assert_eq!(answer.body["limits"]["rate_per_second"], Value::Null);
    assert_eq!(app.change_kinds().await, vec!["plan_edited"]);
    let changes = app.store.changes_after(0, 10).await.unwrap();
    let billing::ChangeKind::PlanEdited { plan } = &changes[0].kind else {
        panic!("{changes:?}");
    };
    assert_eq!(plan.name, "pro");
    assert_eq!(plan.limits.max_connections, 12);

    // Naming the plan in the body is allowed when it agrees with the path.
    let mut named = pro_limits();
    named["name"] = json!("pro");
    let answer = admin.put_json("/v1/admin/plans/pro", named).await;
    assert_eq!(answer.status, StatusCode::OK, "{:?}", answer.body);
    assert_eq!(app.count("changes").await, 2);
}

async fn plan_edits_are_validated(app: &TestApp) {
    let (_, admin) = app.account("ops", "enterprise", Scope::Admin).await;
    let admin = app.client().with_token(&admin);
    let with = |field: &str, value: Value| {
        let mut body = pro_limits();
        body[field] = value;
        body
    };
    let without = |field: &str| {
        let mut body = pro_limits();
        body.as_object_mut().unwrap().remove(field);
        body
    };
    let cases: Vec<(&str, Value, StatusCode, &str)> = vec![
        (
            "negative connections",
            with("max_connections", json!(-1)),
            StatusCode::UNPROCESSABLE_ENTITY,
            "max_connections",
        ),
        (
            "connections too large",
            with("max_connections", json!(4_294_967_296_i64)),
            StatusCode::UNPROCESSABLE_ENTITY,
            "max_connections",
        ),
        (
            "negative rate",
            with("rate_per_second", json!(-5)),
            StatusCode::UNPROCESSABLE_ENTITY,
            "rate_per_second",
        ),
        (
            "negative burst",
            with("burst", json!(-5)),
            StatusCode::UNPROCESSABLE_ENTITY,
            "burst",
        ),
        (
            "negative sample",
            with("sample_per_second", json!(-1)),
            StatusCode::UNPROCESSABLE_ENTITY,
            "sample_per_second",
        ),
        (
            "negative price",
            with("price_cents", json!(-100)),
            StatusCode::UNPROCESSABLE_ENTITY,
            "price_cents",
        ),
        (
            "negative replay",
            with("replay_window_seconds", json!(-1)),
            StatusCode::UNPROCESSABLE_ENTITY,
            "replay_window_seconds",
        ),
        (
            "unknown TLP",
            with("max_tlp", json!("purple")),
            StatusCode::UNPROCESSABLE_ENTITY,
            "TLP",
        ),
        (
            "fractional",
            with("max_connections", json!(1.5)),
            StatusCode::UNPROCESSABLE_ENTITY,
            "max_connections",
        ),
        (
            "wrong type",
            with("firehose", json!("yes")),
            StatusCode::UNPROCESSABLE_ENTITY,
            "firehose",
        ),
        (
            "missing nullable field",
            without("rate_per_second"),
            StatusCode::UNPROCESSABLE_ENTITY,
            "rate_per_second",
        ),
        (
            "missing field",
            without("max_tlp"),
            StatusCode::UNPROCESSABLE_ENTITY,
            "max_tlp",
        ),
        (
            "unknown field",
            with("colour", json!("blue")),
            StatusCode::UNPROCESSABLE_ENTITY,
            "colour",
        ),
        (
            "renaming",
            with("name", json!("gold")),
            StatusCode::UNPROCESSABLE_ENTITY,
            "renamed",
        ),
    ];
    for (case, body, status, fragment) in cases {
        let answer = admin.put_json("/v1/admin/plans/pro", body).await;
        assert_eq!(answer.status, status, "{case}: {:?}", answer.body);
        assert!(
            answer.error().contains(fragment),
            "{case}: {}",
            answer.error()
        );
    }
    let answer = admin
        .put_json("/v1/admin/plans/platinum", pro_limits())
        .await;
    assert_eq!(answer.status, StatusCode::NOT_FOUND, "{:?}", answer.body);
    assert!(answer.error().contains("platinum"));

    assert_eq!(
        app.store.plan("pro").await.unwrap(),
        domain::Plan::defaults()
            .into_iter()
            .find(|plan| plan.name == "pro")
    );
    assert_eq!(app.count("changes").await, 0);
}

async fn admins_move_any_account(app: &TestApp) {
    let (_, admin) = app.account("ops", "enterprise", Scope::Admin).await;
    let admin = app.client().with_token(&admin);
    app.account("acme", "free", Scope::Read).await;
    // Contract plans are fine for admins, and the provider's configuration does not matter.
    let answer = admin
        .put_json(
            "/v1/admin/accounts/acme/plan",
            json!({"plan": "enterprise"}),
        )
        .await;
    assert_eq!(answer.status, StatusCode::OK, "{:?}", answer.body);
    assert_eq!(answer.body["account"], "acme");
    assert_eq!(answer.body["plan"], "enterprise");
    assert_eq!(answer.body["limits"]["max_connections"], 100);
    assert_eq!(app.plan_of("acme").await, "enterprise");
    assert_eq!(app.change_kinds().await, vec!["account_plan"]);

    let answer = admin
        .put_json("/v1/admin/accounts/ghost/plan", json!({"plan": "pro"}))
        .await;
    assert_eq!(answer.status, StatusCode::NOT_FOUND);
    assert!(answer.error().contains("ghost"));
    let answer = admin
        .put_json("/v1/admin/accounts/acme/plan", json!({"plan": "platinum"}))
        .await;
    assert_eq!(answer.status, StatusCode::UNPROCESSABLE_ENTITY);
    assert_eq!(app.count("changes").await, 1);
}

async fn admins_read_any_accounts_usage(app: &TestApp) {
    let (_, admin) = app.account("ops", "enterprise", Scope::Admin).await;
    let admin = app.client().with_token(&admin);
    let (acme, _) = app.account("acme", "pro", Scope::Read).await;
    let today = Utc::now().date_naive();
    let delta = UsageDelta {
        delivered: 7,
        dropped: 0,
        bytes: 700,
        connections_opened: 1,
        peak_connections: 1,
    };
    app.store
        .record_usage(&[(acme.id, today, delta)])
        .await
        .unwrap();
    let uri = format!("/v1/admin/accounts/acme/usage?from={today}&to={today}");
    let answer = admin.get(&uri).await;
    assert_eq!(answer.status, StatusCode::OK, "{:?}", answer.body);
    assert_eq!(answer.body["account"], "acme");
    assert_eq!(answer.body["days"][0]["delivered"], 7);
    let answer = admin.get("/v1/admin/accounts/ghost/usage").await;
    assert_eq!(answer.status, StatusCode::NOT_FOUND);
}

async fn only_admin_tokens_reach_the_admin_api(app: &TestApp) {
    app.store.create_account("acme", "pro").await.unwrap();
    let mut tokens = Vec::new();
    for scope in [Scope::Read, Scope::Write] {
        tokens.push(app.store.create_token("acme", scope, None).await.unwrap().1);
    }
    let requests: Vec<(Method, &str, Option<Value>)> = vec![
        (Method::GET, "/v1/admin/plans", None),
        (Method::PUT, "/v1/admin/plans/pro", Some(pro_limits())),
        (
            Method::PUT,
            "/v1/admin/accounts/acme/plan",
            Some(json!({"plan": "enterprise"})),
        ),
        (Method::GET, "/v1/admin/accounts/acme/usage", None),
    ];
    for (method, uri, body) in &requests {
        for token in &tokens {
            let answer = app
                .client()
                .with_token(token)
                .request(method.clone(), uri, body.clone())
                .await;
            assert_eq!(
                answer.status,
                StatusCode::FORBIDDEN,
                "{uri}: {:?}",
                answer.body
            );
            assert!(answer.error().contains("admin"), "{}", answer.error());
        }
        let answer = app
            .client()
            .request(method.clone(), uri, body.clone())
            .await;
        assert_eq!(answer.status, StatusCode::UNAUTHORIZED, "{uri}");
    }
    assert_eq!(app.plan_of("acme").await, "pro");
    assert_eq!(app.count("changes").await, 0);
}
