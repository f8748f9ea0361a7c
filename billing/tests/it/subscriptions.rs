//! Subscription events: applied once per id, never overridden by an older event, refused
//! without being recorded when they name an unknown account or plan.

use billing::{ChangeKind, EventOutcome, StoreError, SubscriptionEvent};

use crate::{count_rows, default_plan, TestDb};

testkit::on_both_backends!(
    crate::TestDb;
    updated_moves_the_account_and_records_a_change,
    deleted_moves_the_account_to_free,
    redeliveries_are_duplicates,
    the_same_event_in_parallel_changes_state_once,
    older_events_never_override_newer_ones,
    events_in_the_same_second_apply_in_arrival_order,
    unknown_accounts_and_plans_are_refused_and_not_recorded,
    invalid_events_are_refused,
    other_types_are_ignored_without_a_query,
    an_event_for_the_current_plan_records_no_change,
);

fn event(
    id: &str,
    event_type: &str,
    account: &str,
    plan: Option<&str>,
    created: i64,
) -> SubscriptionEvent {
    SubscriptionEvent {
        id: id.into(),
        event_type: event_type.into(),
        account: account.into(),
        plan: plan.map(Into::into),
        created,
    }
}

fn updated(id: &str, plan: &str, created: i64) -> SubscriptionEvent {
    event(id, "subscription.updated", "acme", Some(plan), created)
}

async fn plan_of(db: &TestDb, account: &str) -> String {
    db.store.account(account).await.unwrap().unwrap().plan
}

async fn updated_moves_the_account_and_records_a_change(db: &TestDb) {
    let acme = db.store.create_account("acme", "free").await.unwrap();
    let outcome = db
        .store
        .apply_subscription_event(&updated("evt_1", "pro", 1_700_000_000))
        .await
        .unwrap();
    assert_eq!(outcome, EventOutcome::Applied);
    assert_eq!(plan_of(db, "acme").await, "pro");
    let changes = db.store.changes_after(0, 100).await.unwrap();
    assert_eq!(changes.len(), 1);
    assert_eq!(
        changes[0].kind,
        ChangeKind::AccountPlan {
            account_id: acme.id,
            plan: default_plan("pro"),
        }
    );
    assert_eq!(count_rows(&db.store, "billing_events").await, 1);
}

async fn deleted_moves_the_account_to_free(db: &TestDb) {
    db.store.create_account("acme", "pro").await.unwrap();
    // A `plan` on a deletion is ignored: ending a subscription always means `free`.
    let outcome = db
        .store
        .apply_subscription_event(&event(
            "evt_1",
            "subscription.deleted",
            "acme",
            Some("pro"),
            10,
        ))
        .await
        .unwrap();
    assert_eq!(outcome, EventOutcome::Applied);
    assert_eq!(plan_of(db, "acme").await, "free");
    let outcome = db
        .store
        .apply_subscription_event(&event("evt_2", "subscription.deleted", "acme", None, 11))
        .await
        .unwrap();
    assert_eq!(outcome, EventOutcome::Applied);
    assert_eq!(count_rows(&db.store, "changes").await, 1);
}

async fn redeliveries_are_duplicates(db: &TestDb) {
    db.store.create_account("acme", "free").await.unwrap();
    let first = updated("evt_1", "pro", 100);
    assert_eq!(
        db.store.apply_subscription_event(&first).await.unwrap(),
        EventOutcome::Applied
    );
    // An admin moves the account meanwhile; a redelivery must not undo that.
    db.store.set_plan("acme", "hobby").await.unwrap();
    for _ in 0..3 {
        assert_eq!(
            db.store.apply_subscription_event(&first).await.unwrap(),
            EventOutcome::Duplicate
        );
    }
    // Another process sees the same id as a duplicate too.
    let other = db.reopen().await;
    assert_eq!(
        other.apply_subscription_event(&first).await.unwrap(),
        EventOutcome::Duplicate
    );
    other.close().await;
    assert_eq!(plan_of(db, "acme").await, "hobby");
    assert_eq!(count_rows(&db.store, "billing_events").await, 1);
    assert_eq!(count_rows(&db.store, "changes").await, 2);
}

async fn the_same_event_in_parallel_changes_state_once(db: &TestDb) {
    db.store.create_account("acme", "free").await.unwrap();
    let event = updated("evt_race", "pro", 100);
    // All spawned before any is awaited, so the deliveries race on the database.
    let deliveries: Vec<_> = (0..100)
        .map(|_| {
            let store = db.store.clone();
            let event = event.clone();
            tokio::spawn(async move { store.apply_subscription_event(&event).await.unwrap() })
        })
        .collect();
    let mut outcomes = Vec::new();
    for delivery in deliveries {
        outcomes.push(delivery.await.unwrap());
    }
    let count = |wanted: EventOutcome| {
        outcomes
            .iter()
            .filter(|outcome| **outcome == wanted)
            .count()
    };
    let (applied, duplicates) = (count(EventOutcome::Applied), count(EventOutcome::Duplicate));
    assert_eq!((applied, duplicates), (1, 99));
    assert_eq!(plan_of(db, "acme").await, "pro");
    assert_eq!(count_rows(&db.store, "billing_events").await, 1);
    assert_eq!(count_rows(&db.store, "changes").await, 1);
}

async fn older_events_never_override_newer_ones(db: &TestDb) {
    db.store.create_account("acme", "free").await.unwrap();
    // Delivered out of order: the newer (pro) first, then the older (hobby).
    assert_eq!(
        db.store
            .apply_subscription_event(&updated("evt_new", "pro", 2000))
            .await
            .unwrap(),
        EventOutcome::Applied
    );
    assert_eq!(
        db.store
            .apply_subscription_event(&updated("evt_old", "hobby", 1000))
            .await
            .unwrap(),
        EventOutcome::Stale
    );
    // An older deletion is stale too.
    assert_eq!(
        db.store
            .apply_subscription_event(&event(
                "evt_older_delete",
                "subscription.deleted",
                "acme",
                None,
                1999
            ))
            .await
            .unwrap(),
        EventOutcome::Stale
    );
    assert_eq!(plan_of(db, "acme").await, "pro");
    // Stale events are recorded (a redelivery is a duplicate) but change nothing.
    assert_eq!(count_rows(&db.store, "billing_events").await, 3);
    assert_eq!(count_rows(&db.store, "changes").await, 1);
    assert_eq!(
        db.store
            .apply_subscription_event(&updated("evt_old", "hobby", 1000))
            .await
            .unwrap(),
        EventOutcome::Duplicate
    );
    // A genuinely newer event still applies.
    assert_eq!(
        db.store
            .apply_subscription_event(&updated("evt_newest", "hobby", 3000))
            .await
            .unwrap(),
        EventOutcome::Applied
    );
    assert_eq!(plan_of(db, "acme").await, "hobby");

    // Event order is per account: another account's older event still applies.
    db.store.create_account("beta", "free").await.unwrap();
    let outcome = db
        .store
        .apply_subscription_event(&event(
            "evt_beta",
            "subscription.updated",
            "beta",
            Some("pro"),
            1,
        ))
        .await
        .unwrap();
    assert_eq!(outcome, EventOutcome::Applied);
}

async fn events_in_the_same_second_apply_in_arrival_order(db: &TestDb) {
    db.store.create_account("acme", "free").await.unwrap();
    for (id, plan) in [("evt_a", "pro"), ("evt_b", "hobby")] {
        assert_eq!(
            db.store
                .apply_subscription_event(&updated(id, plan, 500))
                .await
                .unwrap(),
            EventOutcome::Applied
        );
    }
    assert_eq!(plan_of(db, "acme").await, "hobby");
}

async fn unknown_accounts_and_plans_are_refused_and_not_recorded(db: &TestDb) {
    let error = db
        .store
        .apply_subscription_event(&event(
            "evt_1",
            "subscription.updated",
            "ghost",
            Some("pro"),
            1,
        ))
        .await
        .unwrap_err();
    assert!(
        matches!(&error, StoreError::UnknownAccount(name) if name == "ghost"),
        "{error:?}"
    );
    db.store.create_account("acme", "free").await.unwrap();
    let error = db
        .store
        .apply_subscription_event(&updated("evt_2", "platinum", 1))
        .await
        .unwrap_err();
    assert!(
        matches!(&error, StoreError::UnknownPlan(name) if name == "platinum"),
        "{error:?}"
    );
    assert_eq!(count_rows(&db.store, "billing_events").await, 0);

    // The provider's retry once the account exists applies (it was not taken as seen).
    db.store.create_account("ghost", "free").await.unwrap();
    let outcome = db
        .store
        .apply_subscription_event(&event(
            "evt_1",
            "subscription.updated",
            "ghost",
            Some("pro"),
            1,
        ))
        .await
        .unwrap();
    assert_eq!(outcome, EventOutcome::Applied);
    assert_eq!(plan_of(db, "ghost").await, "pro");
}

async fn invalid_events_are_refused(db: &TestDb) {
    db.store.create_account("acme", "free").await.unwrap();
    for bad in [
        event("evt_1", "subscription.updated", "acme", None, 1),
        event("evt_1", "subscription.updated", "acme", Some(""), 1),
        updated("", "pro", 1),
        updated(&"e".repeat(256), "pro", 1),
    ] {
        let error = db.store.apply_subscription_event(&bad).await.unwrap_err();
        assert!(
            matches!(error, StoreError::InvalidEvent(_)),
            "{bad:?}: {error:?}"
        );
    }
    assert_eq!(plan_of(db, "acme").await, "free");
    assert_eq!(count_rows(&db.store, "billing_events").await, 0);
}

async fn other_types_are_ignored_without_a_query(db: &TestDb) {
    db.store.create_account("acme", "free").await.unwrap();
    let invoice = event("evt_1", "invoice.paid", "acme", Some("pro"), 1);
    assert_eq!(
        db.store.apply_subscription_event(&invoice).await.unwrap(),
        EventOutcome::Ignored
    );
    assert_eq!(count_rows(&db.store, "billing_events").await, 0);
    assert!(SubscriptionEvent::is_handled_type("subscription.updated"));
    assert!(SubscriptionEvent::is_handled_type("subscription.deleted"));
    assert!(!SubscriptionEvent::is_handled_type("invoice.paid"));
    // Decided without the database: still answered with the pool closed.
    db.store.close().await;
    assert_eq!(
        db.store.apply_subscription_event(&invoice).await.unwrap(),
        EventOutcome::Ignored
    );
}

async fn an_event_for_the_current_plan_records_no_change(db: &TestDb) {
    db.store.create_account("acme", "pro").await.unwrap();
    assert_eq!(
        db.store
            .apply_subscription_event(&updated("evt_1", "pro", 1))
            .await
            .unwrap(),
        EventOutcome::Applied
    );
    assert_eq!(count_rows(&db.store, "changes").await, 0);
    assert_eq!(count_rows(&db.store, "billing_events").await, 1);
    // It still orders later events: an older one is stale.
    assert_eq!(
        db.store
            .apply_subscription_event(&updated("evt_0", "free", 0))
            .await
            .unwrap(),
        EventOutcome::Stale
    );
}
