//! Accounts and their plans.

use billing::StoreError;

use crate::{assert_recent, TestDb};

testkit::on_both_backends!(
    crate::TestDb;
    creates_and_finds_accounts,
    duplicate_accounts_are_refused,
    invalid_names_are_refused,
    unknown_plans_are_refused,
    set_plan_moves_an_account,
);

async fn creates_and_finds_accounts(db: &TestDb) {
    let acme = db.store.create_account("acme", "pro").await.unwrap();
    assert_eq!(acme.name, "acme");
    assert_eq!(acme.plan, "pro");
    assert_recent(acme.created_at);
    let other = db
        .store
        .create_account("0day.feeds_v2-eu", "free")
        .await
        .unwrap();
    assert_ne!(acme.id, other.id);

    assert_eq!(db.store.account("acme").await.unwrap(), Some(acme));
    assert_eq!(
        db.store.account("0day.feeds_v2-eu").await.unwrap(),
        Some(other)
    );
    assert_eq!(db.store.account("nobody").await.unwrap(), None);
}

async fn duplicate_accounts_are_refused(db: &TestDb) {
    let first = db.store.create_account("acme", "pro").await.unwrap();
    let error = db.store.create_account("acme", "free").await.unwrap_err();
    assert!(
        matches!(&error, StoreError::AccountExists(name) if name == "acme"),
        "{error:?}"
    );
    assert_eq!(error.to_string(), "account `acme` already exists");
    // The original is untouched.
    assert_eq!(db.store.account("acme").await.unwrap(), Some(first));
}

async fn invalid_names_are_refused(db: &TestDb) {
    let too_long = "a".repeat(65);
    for name in ["", "Acme", "-acme", "ac me", "acme/x", too_long.as_str()] {
        let error = db.store.create_account(name, "free").await.unwrap_err();
        assert!(
            matches!(error, StoreError::InvalidName(_)),
            "{name:?}: {error:?}"
        );
        assert_eq!(db.store.account(name).await.unwrap(), None);
    }
    let longest = "a".repeat(64);
    db.store.create_account(&longest, "free").await.unwrap();
}

async fn unknown_plans_are_refused(db: &TestDb) {
    let error = db
        .store
        .create_account("acme", "platinum")
        .await
        .unwrap_err();
    assert!(
        matches!(&error, StoreError::UnknownPlan(plan) if plan == "platinum"),
        "{error:?}"
    );
    assert!(error.to_string().contains("sluice plans list"), "{error}");
    assert_eq!(db.store.account("acme").await.unwrap(), None);
}

async fn set_plan_moves_an_account(db: &TestDb) {
    let created = db.store.create_account("acme", "free").await.unwrap();
    let moved = db.store.set_plan("acme", "enterprise").await.unwrap();
    assert_eq!(moved.plan, "enterprise");
    assert_eq!(
        (moved.id, &moved.name, moved.created_at),
        (created.id, &created.name, created.created_at)
    );
    assert_eq!(db.store.account("acme").await.unwrap(), Some(moved));

    let error = db.store.set_plan("acme", "platinum").await.unwrap_err();
    assert!(
        matches!(&error, StoreError::UnknownPlan(plan) if plan == "platinum"),
        "{error:?}"
    );
    assert_eq!(
        db.store.account("acme").await.unwrap().unwrap().plan,
        "enterprise"
    );

    let error = db.store.set_plan("ghost", "pro").await.unwrap_err();
    assert!(
        matches!(&error, StoreError::UnknownAccount(name) if name == "ghost"),
        "{error:?}"
    );
}
