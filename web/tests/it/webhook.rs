//! `POST /v1/billing/webhook` end to end: signatures over the raw body, idempotence, ordering,
//! and the answers a retrying provider needs.

use axum::http::StatusCode;
use billing::webhook_signature::sign;
use serde_json::json;

use crate::{webhook, TestApp, SECRET};

testkit::on_both_backends!(
    crate::TestApp;
    a_valid_event_changes_the_plan_and_records_a_change,
    bad_signatures_are_refused_before_any_query,
    rotated_secrets_verify,
    the_same_event_100_times_in_parallel_changes_state_once,
    out_of_order_events_end_in_the_newest_plan,
    redeliveries_answer_200_duplicate,
    events_the_store_cannot_apply_are_4xx_and_not_recorded,
    authentic_but_unusable_bodies_are_400,
    other_event_types_are_ignored,
    deleted_subscriptions_fall_back_to_free,
    test_mode_answers_503,
);

fn now() -> i64 {
    chrono::Utc::now().timestamp()
}

/// An event body, as the provider would send it.
fn event(id: &str, event_type: &str, account: &str, plan: &str, created: i64) -> Vec<u8> {
    json!({"id": id, "type": event_type, "account": account, "plan": plan, "created": created})
        .to_string()
        .into_bytes()
}

fn signed(body: &[u8]) -> String {
    sign(SECRET.as_bytes(), now(), body)
}

async fn a_valid_event_changes_the_plan_and_records_a_change(app: &TestApp) {
    app.store.create_account("acme", "free").await.unwrap();
    let body = event("evt_1", "subscription.updated", "acme", "pro", now());
    let answer = app.webhook(&body, Some(&signed(&body))).await;
    assert_eq!(answer.status, StatusCode::OK, "{:?}", answer.body);
    assert_eq!(answer.body, json!({"status": "applied"}));
    assert_eq!(app.plan_of("acme").await, "pro");
    assert_eq!(app.change_kinds().await, vec!["account_plan"]);
    assert_eq!(app.count("billing_events").await, 1);
}

async fn bad_signatures_are_refused_before_any_query(app: &TestApp) {
    app.store.create_account("acme", "free").await.unwrap();
    let body = event("evt_1", "subscription.updated", "acme", "pro", now());
    let valid = signed(&body);
    let mut tampered_body = body.clone();
    // "pro" → "prp": still valid JSON, different bytes.
    let position = tampered_body.windows(3).position(|w| w == b"pro").unwrap();
    tampered_body[position + 2] = b'p';
    let mut tampered_signature = valid.clone();
    let last = tampered_signature.pop().unwrap();
    tampered_signature.push(if last == '0' { '1' } else { '0' });
    let hex = valid.split_once("v1=").unwrap().1.to_owned();
    // Times a minute past the 5-minute tolerance: the cases are sent twice, seconds apart, and
    // must stay out of it (the exact boundary is `billing::webhook_signature`'s unit tests').
    let cases: Vec<(&str, Vec<u8>, Option<String>, &str)> = vec![
        (
            "tampered body",
            tampered_body,
            Some(valid.clone()),
            "does not match",
        ),
        (
            "tampered signature",
            body.clone(),
            Some(tampered_signature),
            "does not match",
        ),
        (
            "wrong secret",
            body.clone(),
            Some(sign(b"whsec_other", now(), &body)),
            "does not match",
        ),
        (
            "expired",
            body.clone(),
            Some(sign(SECRET.as_bytes(), now() - 360, &body)),
            "s old",
        ),
        (
            "future",
            body.clone(),
            Some(sign(SECRET.as_bytes(), now() + 360, &body)),
            "in the future",
        ),
        (
            "missing header",
            body.clone(),
            None,
            "missing Sluice-Signature",
        ),
        ("no t", body.clone(), Some(format!("v1={hex}")), "no `t=`"),
        (
            "no v1",
            body.clone(),
            Some(format!("t={}", now())),
            "no `v1=`",
        ),
        (
            "non-hex",
            body.clone(),
            Some(format!("t={},v1={}", now(), "g".repeat(64))),
            "64 hex digits",
        ),
        (
            "duplicate t",
            body.clone(),
            Some(format!("t={0},t={0},v1={hex}", now())),
            "more than once",
        ),
        (
            "garbage body, no signature",
            b"{not json".to_vec(),
            None,
            "missing",
        ),
    ];
    let check_all = |answers: Vec<crate::Answer>| {
        for ((case, _, _, fragment), answer) in cases.iter().zip(answers) {
            assert_eq!(
                answer.status,
                StatusCode::UNAUTHORIZED,
                "{case}: {:?}",
                answer.body
            );
            assert!(
                answer.error().contains(fragment),
                "{case}: {}",
                answer.error()
            );
        }
    };
    let mut answers = Vec::new();
    for (_, body, signature, _) in &cases {
        answers.push(app.webhook(body, signature.as_deref()).await);
    }
    check_all(answers);
    assert_eq!(app.plan_of("acme").await, "free");
    assert_eq!(app.count("billing_events").await, 0);
    assert_eq!(app.count("changes").await, 0);

    // With the pool closed any query fails: the same answers prove none was made. A valid
    // signature does need the database, and says it is unavailable.
    app.store.close().await;
    let mut answers = Vec::new();
    for (_, body, signature, _) in &cases {
        answers.push(app.webhook(body, signature.as_deref()).await);
    }
    check_all(answers);
    let answer = app.webhook(&body, Some(&valid)).await;
    assert_eq!(
        answer.status,
        StatusCode::SERVICE_UNAVAILABLE,
        "{:?}",
        answer.body
    );
}

async fn rotated_secrets_verify(app: &TestApp) {
    app.store.create_account("acme", "free").await.unwrap();
    let rotating = app.router_with_secrets(&["whsec_new", SECRET]);
    // Signed with the old secret only: the second configured secret matches.
    let body = event("evt_1", "subscription.updated", "acme", "hobby", now());
    let answer = webhook(&rotating, &body, Some(&signed(&body))).await;
    assert_eq!(answer.status, StatusCode::OK, "{:?}", answer.body);
    // Signed with both (two v1 entries): either matches.
    let body = event("evt_2", "subscription.updated", "acme", "pro", now() + 1);
    let t = now();
    let both = format!(
        "{},{}",
        sign(b"whsec_new", t, &body),
        sign(b"whsec_unknown", t, &body).replace(&format!("t={t},"), "")
    );
    let answer = webhook(&rotating, &body, Some(&both)).await;
    assert_eq!(answer.status, StatusCode::OK, "{:?}", answer.body);
    assert_eq!(app.plan_of("acme").await, "pro");
    // The router with only the new secret refuses the old one.
    let only_new = app.router_with_secrets(&["whsec_new"]);
    let body = event("evt_3", "subscription.updated", "acme", "free", now() + 2);
    let answer = webhook(&only_new, &body, Some(&signed(&body))).await;
    assert_eq!(answer.status, StatusCode::UNAUTHORIZED);
}

async fn the_same_event_100_times_in_parallel_changes_state_once(app: &TestApp) {
    app.store.create_account("acme", "free").await.unwrap();
    let body = event("evt_race", "subscription.updated", "acme", "pro", now());
    let signature = signed(&body);
    // 100 requests polled together on one task: their database work overlaps.
    let answers =
        futures::future::join_all((0..100).map(|_| app.webhook(&body, Some(&signature)))).await;
    let mut statuses: Vec<String> = answers
        .iter()
        .map(|answer| {
            assert_eq!(answer.status, StatusCode::OK, "{:?}", answer.body);
            answer.body["status"].as_str().unwrap().to_owned()
        })
        .collect();
    statuses.sort();
    statuses.dedup_by(|a, b| a == b);
    assert_eq!(statuses, vec!["applied", "duplicate"]);
    let applied = answers
        .iter()
        .filter(|answer| answer.body["status"] == "applied")
        .count();
    assert_eq!(applied, 1);
    assert_eq!(app.plan_of("acme").await, "pro");
    assert_eq!(app.count("billing_events").await, 1);
    assert_eq!(app.count("changes").await, 1);
}

async fn out_of_order_events_end_in_the_newest_plan(app: &TestApp) {
    app.store.create_account("acme", "free").await.unwrap();
    let created = now();
    let newer = event("evt_newer", "subscription.updated", "acme", "pro", created);
    let older = event(
        "evt_older",
        "subscription.updated",
        "acme",
        "hobby",
        created - 60,
    );
    let answer = app.webhook(&newer, Some(&signed(&newer))).await;
    assert_eq!(answer.body, json!({"status": "applied"}));
    let answer = app.webhook(&older, Some(&signed(&older))).await;
    assert_eq!(answer.status, StatusCode::OK);
    assert_eq!(answer.body, json!({"status": "stale"}));
    assert_eq!(app.plan_of("acme").await, "pro");
    assert_eq!(app.count("billing_events").await, 2);
    assert_eq!(app.change_kinds().await, vec!["account_plan"]);
}

async fn redeliveries_answer_200_duplicate(app: &TestApp) {
    app.store.create_account("acme", "free").await.unwrap();
    let body = event("evt_1", "subscription.updated", "acme", "pro", now());
    app.webhook(&body, Some(&signed(&body))).await;
    // A redelivery is signed afresh by the provider; it is the id that makes it the same event.
    let answer = app.webhook(&body, Some(&signed(&body))).await;
    assert_eq!(answer.status, StatusCode::OK);
    assert_eq!(answer.body, json!({"status": "duplicate"}));
    assert_eq!(app.count("changes").await, 1);
}

async fn events_the_store_cannot_apply_are_4xx_and_not_recorded(app: &TestApp) {
    app.store.create_account("acme", "free").await.unwrap();
    let body = event("evt_1", "subscription.updated", "ghost", "pro", now());
    let answer = app.webhook(&body, Some(&signed(&body))).await;
    assert_eq!(answer.status, StatusCode::NOT_FOUND, "{:?}", answer.body);
    assert!(answer.error().contains("ghost"), "{}", answer.error());

    let body = event("evt_2", "subscription.updated", "acme", "platinum", now());
    let answer = app.webhook(&body, Some(&signed(&body))).await;
    assert_eq!(
        answer.status,
        StatusCode::UNPROCESSABLE_ENTITY,
        "{:?}",
        answer.body
    );
    assert!(answer.error().contains("platinum"), "{}", answer.error());
    assert_eq!(app.count("billing_events").await, 0);

    // Once the account exists, the provider's retry of the first event applies.
    app.store.create_account("ghost", "free").await.unwrap();
    let body = event("evt_1", "subscription.updated", "ghost", "pro", now());
    let answer = app.webhook(&body, Some(&signed(&body))).await;
    assert_eq!(answer.body, json!({"status": "applied"}));
}

async fn authentic_but_unusable_bodies_are_400(app: &TestApp) {
    app.store.create_account("acme", "free").await.unwrap();
    let bodies: Vec<(&str, Vec<u8>)> = vec![
        ("not JSON", b"{\"id\": \"evt_1\", ".to_vec()),
        ("not an object", b"[1, 2]".to_vec()),
        ("no id", br#"{"type":"subscription.updated","account":"acme","plan":"pro","created":1}"#.to_vec()),
        ("created as text", br#"{"id":"e","type":"subscription.updated","account":"acme","plan":"pro","created":"now"}"#.to_vec()),
        ("no account", br#"{"id":"e","type":"subscription.updated","plan":"pro","created":1}"#.to_vec()),
        ("no created", br#"{"id":"e","type":"subscription.updated","account":"acme","plan":"pro"}"#.to_vec()),
        ("updated without plan", br#"{"id":"e","type":"subscription.updated","account":"acme","created":1}"#.to_vec()),
        ("invalid UTF-8", b"{\"id\":\"\xff\"}".to_vec()),
    ];
    for (case, body) in bodies {
        let answer = app.webhook(&body, Some(&signed(&body))).await;
        assert_eq!(
            answer.status,
            StatusCode::BAD_REQUEST,
            "{case}: {:?}",
            answer.body
        );
        assert!(!answer.error().is_empty());
    }
    assert_eq!(app.plan_of("acme").await, "free");
    assert_eq!(app.count("billing_events").await, 0);

    // Oversized bodies are refused before anything else is read.
    let huge = vec![b' '; web::MAX_WEBHOOK_BODY_BYTES + 1];
    let answer = app.webhook(&huge, Some(&signed(&huge))).await;
    assert_eq!(answer.status, StatusCode::PAYLOAD_TOO_LARGE);
}

async fn other_event_types_are_ignored(app: &TestApp) {
    app.store.create_account("acme", "free").await.unwrap();
    // Other types need no account, plan or time.
    for body in [
        event("evt_1", "invoice.paid", "acme", "pro", now()),
        br#"{"id":"evt_2","type":"customer.created"}"#.to_vec(),
    ] {
        let answer = app.webhook(&body, Some(&signed(&body))).await;
        assert_eq!(answer.status, StatusCode::OK, "{:?}", answer.body);
        assert_eq!(answer.body, json!({"status": "ignored"}));
    }
    assert_eq!(app.plan_of("acme").await, "free");
    assert_eq!(app.count("billing_events").await, 0);
}

async fn deleted_subscriptions_fall_back_to_free(app: &TestApp) {
    app.store.create_account("acme", "pro").await.unwrap();
    let body = json!({"id": "evt_del", "type": "subscription.deleted", "account": "acme", "created": now()})
        .to_string()
        .into_bytes();
    let answer = app.webhook(&body, Some(&signed(&body))).await;
    assert_eq!(answer.body, json!({"status": "applied"}));
    assert_eq!(app.plan_of("acme").await, "free");
}

async fn test_mode_answers_503(app: &TestApp) {
    app.store.create_account("acme", "free").await.unwrap();
    let test_mode = app.router_with_secrets(&[]);
    let body = event("evt_1", "subscription.updated", "acme", "pro", now());
    for signature in [Some(signed(&body)), None] {
        let answer = webhook(&test_mode, &body, signature.as_deref()).await;
        assert_eq!(answer.status, StatusCode::SERVICE_UNAVAILABLE);
        assert_eq!(
            answer.body,
            json!({"error": "billing webhook is not configured: set --billing-webhook-secret"})
        );
    }
    assert_eq!(app.plan_of("acme").await, "free");
}
