//! Authentication: a presented token into a principal, and every way it is refused.

use std::time::Duration;

use billing::{ApiToken, AuthError, Scope};
use domain::Plan;

use crate::TestDb;

testkit::on_both_backends!(
    crate::TestDb;
    authenticates_with_the_account_plan_and_scope,
    revoked_tokens_are_refused,
    expired_tokens_are_refused,
    unknown_tokens_are_refused,
    malformed_tokens_never_reach_the_database,
    scopes_are_hierarchical,
    plan_changes_apply_to_existing_tokens,
    authentication_records_last_use,
);

fn default_plan(name: &str) -> Plan {
    Plan::defaults()
        .into_iter()
        .find(|plan| plan.name == name)
        .unwrap()
}

async fn authenticates_with_the_account_plan_and_scope(db: &TestDb) {
    let account = db.store.create_account("acme", "pro").await.unwrap();
    let (record, token) = db
        .store
        .create_token("acme", Scope::Write, None)
        .await
        .unwrap();
    let principal = db.store.authenticate(token.expose()).await.unwrap();
    assert_eq!(principal.account_id, account.id);
    assert_eq!(principal.account, "acme");
    assert_eq!(principal.plan, default_plan("pro"));
    assert_eq!(principal.scope, Scope::Write);
    assert_eq!(principal.token_id, record.id);
    assert_eq!(principal.expires_at, None);

    // Pasted with surrounding whitespace (a trailing newline from a file) still works.
    let pasted = format!(" {}\n", token.expose());
    assert_eq!(db.store.authenticate(&pasted).await.unwrap(), principal);

    let (record, token) = db
        .store
        .create_token("acme", Scope::Read, Some(Duration::from_secs(3600)))
        .await
        .unwrap();
    let principal = db.store.authenticate(token.expose()).await.unwrap();
    assert_eq!(principal.expires_at, record.expires_at);
    assert!(principal.expires_at.is_some());
}

async fn revoked_tokens_are_refused(db: &TestDb) {
    db.store.create_account("acme", "pro").await.unwrap();
    let (record, token) = db
        .store
        .create_token("acme", Scope::Read, None)
        .await
        .unwrap();
    let (_, kept) = db
        .store
        .create_token("acme", Scope::Read, None)
        .await
        .unwrap();
    db.store.authenticate(token.expose()).await.unwrap();
    assert!(db.store.revoke_token(&record.id).await.unwrap());
    let error = db.store.authenticate(token.expose()).await.unwrap_err();
    assert!(matches!(error, AuthError::Revoked), "{error:?}");
    // Revocation is per token: the account's other token still works.
    db.store.authenticate(kept.expose()).await.unwrap();
}

async fn expired_tokens_are_refused(db: &TestDb) {
    db.store.create_account("acme", "pro").await.unwrap();
    // A zero lifetime expires at its creation second: deterministic, no sleeping.
    let (_, expired) = db
        .store
        .create_token("acme", Scope::Read, Some(Duration::ZERO))
        .await
        .unwrap();
    let error = db.store.authenticate(expired.expose()).await.unwrap_err();
    assert!(matches!(error, AuthError::Expired), "{error:?}");

    // Revoked wins over expired: it is the more deliberate state.
    let (record, both) = db
        .store
        .create_token("acme", Scope::Read, Some(Duration::ZERO))
        .await
        .unwrap();
    db.store.revoke_token(&record.id).await.unwrap();
    let error = db.store.authenticate(both.expose()).await.unwrap_err();
    assert!(matches!(error, AuthError::Revoked), "{error:?}");

    let (_, fresh) = db
        .store
        .create_token("acme", Scope::Read, Some(Duration::from_secs(60)))
        .await
        .unwrap();
    db.store.authenticate(fresh.expose()).await.unwrap();
}

async fn unknown_tokens_are_refused(db: &TestDb) {
    let error = db
        .store
        .authenticate(ApiToken::generate().expose())
        .await
        .unwrap_err();
    assert!(matches!(error, AuthError::Unknown), "{error:?}");
}

/// A typo of a valid token: one character of the random part changed.
fn with_typo(token: &ApiToken) -> String {
    let mut bytes = token.expose().as_bytes().to_vec();
    bytes[10] = if bytes[10] == b'a' { b'b' } else { b'a' };
    String::from_utf8(bytes).unwrap()
}

async fn malformed_tokens_never_reach_the_database(db: &TestDb) {
    db.store.create_account("acme", "pro").await.unwrap();
    let (_, token) = db
        .store
        .create_token("acme", Scope::Read, None)
        .await
        .unwrap();
    let typo = with_typo(&token);
    let garbage = [
        "",
        "hunter2",
        "Bearer slc_",
        &token.expose()[..39],
        &typo,
        &token.expose()[4..],
    ];
    let check_all_malformed = |results: Vec<Result<_, AuthError>>| {
        for (presented, result) in garbage.iter().zip(results) {
            let error = result.unwrap_err();
            assert!(
                matches!(error, AuthError::Malformed),
                "{presented:?}: {error:?}"
            );
            assert!(!error.to_string().contains(&token.expose()[4..14]));
        }
    };
    let mut results = Vec::new();
    for presented in garbage {
        results.push(db.store.authenticate(presented).await);
    }
    check_all_malformed(results);

    // With the pool closed, any query fails. Malformed tokens are still refused the same way,
    // which proves they were decided without the database; a well-formed one needs it.
    db.store.close().await;
    let mut results = Vec::new();
    for presented in garbage {
        results.push(db.store.authenticate(presented).await);
    }
    check_all_malformed(results);
    let error = db.store.authenticate(token.expose()).await.unwrap_err();
    assert!(matches!(error, AuthError::Db(_)), "{error:?}");
    assert!(!format!("{error:#}").contains(&token.expose()[4..14]));
}

async fn scopes_are_hierarchical(db: &TestDb) {
    db.store.create_account("acme", "pro").await.unwrap();
    for held in [Scope::Read, Scope::Write, Scope::Admin] {
        let (_, token) = db.store.create_token("acme", held, None).await.unwrap();
        let principal = db.store.authenticate(token.expose()).await.unwrap();
        assert_eq!(principal.scope, held);
        for needed in [Scope::Read, Scope::Write, Scope::Admin] {
            assert_eq!(
                principal.scope.allows(needed),
                held >= needed,
                "{held} vs {needed}"
            );
        }
    }
}

async fn plan_changes_apply_to_existing_tokens(db: &TestDb) {
    db.store.create_account("acme", "free").await.unwrap();
    let (_, first) = db
        .store
        .create_token("acme", Scope::Read, None)
        .await
        .unwrap();
    let (_, second) = db
        .store
        .create_token("acme", Scope::Write, None)
        .await
        .unwrap();
    for token in [&first, &second] {
        let principal = db.store.authenticate(token.expose()).await.unwrap();
        assert_eq!(principal.plan, default_plan("free"));
    }
    db.store.set_plan("acme", "pro").await.unwrap();
    for token in [&first, &second] {
        let principal = db.store.authenticate(token.expose()).await.unwrap();
        assert_eq!(principal.plan, default_plan("pro"));
    }
    // Another process changing the plan is seen too (nothing is cached).
    let other = db.reopen().await;
    other.set_plan("acme", "enterprise").await.unwrap();
    other.close().await;
    let principal = db.store.authenticate(first.expose()).await.unwrap();
    assert_eq!(principal.plan, default_plan("enterprise"));
}

async fn authentication_records_last_use(db: &TestDb) {
    db.store.create_account("acme", "pro").await.unwrap();
    let (_, token) = db
        .store
        .create_token("acme", Scope::Read, None)
        .await
        .unwrap();
    assert_eq!(db.store.tokens("acme").await.unwrap()[0].last_used_at, None);
    db.store.authenticate(token.expose()).await.unwrap();
    let used = db.store.tokens("acme").await.unwrap()[0].last_used_at;
    crate::assert_recent(used.expect("last_used_at is set"));
}
