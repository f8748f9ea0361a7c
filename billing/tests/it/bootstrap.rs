//! The `admin` account and token made on first start.

use billing::{ApiToken, Scope, StoreError};
use domain::Plan;

use crate::TestDb;

testkit::on_both_backends!(
    crate::TestDb;
    bootstrap_creates_the_admin_once,
    bootstrap_registers_a_fixed_token,
    a_fixed_token_given_later_is_registered_once,
    concurrent_bootstraps_create_one_admin,
    a_token_cannot_be_registered_to_two_accounts,
);

async fn assert_admin(db: &TestDb, token: &ApiToken) {
    let principal = db.store.authenticate(token.expose()).await.unwrap();
    assert_eq!(principal.account, "admin");
    assert_eq!(principal.scope, Scope::Admin);
    let enterprise = Plan::defaults().pop().unwrap();
    assert_eq!(enterprise.name, "enterprise");
    assert_eq!(principal.plan, enterprise);
}

async fn bootstrap_creates_the_admin_once(db: &TestDb) {
    let token = db
        .store
        .bootstrap_admin(None)
        .await
        .unwrap()
        .expect("first start");
    assert_admin(db, &token).await;
    let admin = db.store.account("admin").await.unwrap().unwrap();
    assert_eq!(admin.plan, "enterprise");

    assert!(db.store.bootstrap_admin(None).await.unwrap().is_none());
    let other = db.reopen().await;
    assert!(other.bootstrap_admin(None).await.unwrap().is_none());
    other.close().await;
    assert_eq!(db.store.tokens("admin").await.unwrap().len(), 1);
}

async fn bootstrap_registers_a_fixed_token(db: &TestDb) {
    let fixed = ApiToken::generate();
    let shown = db.store.bootstrap_admin(Some(&fixed)).await.unwrap();
    assert_eq!(shown.as_ref(), Some(&fixed));
    assert_admin(db, &fixed).await;

    // Later starts with the same token: nothing to show, nothing added.
    assert!(db
        .store
        .bootstrap_admin(Some(&fixed))
        .await
        .unwrap()
        .is_none());
    assert!(db
        .store
        .bootstrap_admin(Some(&fixed))
        .await
        .unwrap()
        .is_none());
    let tokens = db.store.tokens("admin").await.unwrap();
    assert_eq!(tokens.len(), 1);
    assert_eq!(tokens[0].scope, Scope::Admin);
}

async fn a_fixed_token_given_later_is_registered_once(db: &TestDb) {
    let generated = db.store.bootstrap_admin(None).await.unwrap().unwrap();
    let fixed = ApiToken::generate();
    assert!(db
        .store
        .bootstrap_admin(Some(&fixed))
        .await
        .unwrap()
        .is_none());
    assert!(db
        .store
        .bootstrap_admin(Some(&fixed))
        .await
        .unwrap()
        .is_none());
    assert_admin(db, &generated).await;
    assert_admin(db, &fixed).await;
    assert_eq!(db.store.tokens("admin").await.unwrap().len(), 2);

    // A revoked fixed token stays revoked across restarts.
    let record = db
        .store
        .register_token("admin", Scope::Admin, &fixed)
        .await
        .unwrap();
    assert!(db.store.revoke_token(&record.id).await.unwrap());
    assert!(db
        .store
        .bootstrap_admin(Some(&fixed))
        .await
        .unwrap()
        .is_none());
    let error = db.store.authenticate(fixed.expose()).await.unwrap_err();
    assert!(matches!(error, billing::AuthError::Revoked), "{error:?}");
}

async fn concurrent_bootstraps_create_one_admin(db: &TestDb) {
    // Several processes starting at once (separate pools), each racing to create `admin`.
    let mut stores = Vec::new();
    for _ in 0..4 {
        stores.push(db.reopen().await);
    }
    let tasks: Vec<_> = stores
        .iter()
        .cloned()
        .map(|store| tokio::spawn(async move { store.bootstrap_admin(None).await }))
        .collect();
    let mut shown: Vec<ApiToken> = Vec::new();
    for task in tasks {
        shown.extend(task.await.unwrap().unwrap());
    }
    assert_eq!(shown.len(), 1, "exactly one start shows a token");
    assert_admin(db, &shown[0]).await;
    assert_eq!(db.store.tokens("admin").await.unwrap().len(), 1);
    for store in stores {
        store.close().await;
    }
}

async fn a_token_cannot_be_registered_to_two_accounts(db: &TestDb) {
    db.store.create_account("acme", "pro").await.unwrap();
    let (_, token) = db
        .store
        .create_token("acme", Scope::Read, None)
        .await
        .unwrap();
    let error = db
        .store
        .register_token("acme", Scope::Read, &token)
        .await
        .map(|record| record.account)
        .unwrap();
    assert_eq!(error, "acme", "registering an own token again is a no-op");
    db.store.bootstrap_admin(None).await.unwrap();
    let error = db
        .store
        .register_token("admin", Scope::Admin, &token)
        .await
        .unwrap_err();
    assert!(matches!(error, StoreError::TokenInUse), "{error:?}");
    let error = db.store.bootstrap_admin(Some(&token)).await.unwrap_err();
    assert!(matches!(error, StoreError::TokenInUse), "{error:?}");
    // Still acme's, still read-only.
    let principal = db.store.authenticate(token.expose()).await.unwrap();
    assert_eq!(
        (principal.account.as_str(), principal.scope),
        ("acme", Scope::Read)
    );
}
