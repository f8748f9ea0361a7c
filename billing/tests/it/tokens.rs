//! Token records: create, list, revoke; the plaintext is never stored.

use std::time::Duration;

use billing::{ApiToken, Scope, StoreError};
use sqlx::Row;

use crate::{assert_recent, TestDb};

testkit::on_both_backends!(
    crate::TestDb;
    creates_lists_and_revokes_tokens,
    tokens_of_unknown_accounts_are_refused,
    expiry_is_recorded,
    the_database_never_holds_a_plaintext_token,
);

async fn creates_lists_and_revokes_tokens(db: &TestDb) {
    db.store.create_account("acme", "pro").await.unwrap();
    db.store.create_account("other", "free").await.unwrap();
    let mut created = Vec::new();
    for scope in [Scope::Read, Scope::Write, Scope::Admin] {
        let (record, token) = db.store.create_token("acme", scope, None).await.unwrap();
        assert!(record.id.starts_with("tok_"), "{}", record.id);
        assert_eq!(record.id.len(), 16);
        assert!(record.id[4..]
            .bytes()
            .all(|byte| byte.is_ascii_alphanumeric()));
        assert_eq!(record.account, "acme");
        assert_eq!(record.scope, scope);
        assert_recent(record.created_at);
        assert_eq!(
            (record.expires_at, record.revoked_at, record.last_used_at),
            (None, None, None)
        );
        assert_eq!(ApiToken::parse(token.expose()), Ok(token.clone()));
        created.push(record);
    }
    db.store
        .create_token("other", Scope::Read, None)
        .await
        .unwrap();

    let mut listed = db.store.tokens("acme").await.unwrap();
    let mut expected = created.clone();
    // Several tokens share a creation second; compare as sets.
    listed.sort_by(|a, b| a.id.cmp(&b.id));
    expected.sort_by(|a, b| a.id.cmp(&b.id));
    assert_eq!(listed, expected);
    assert_eq!(db.store.tokens("other").await.unwrap().len(), 1);

    let target = &created[1];
    assert!(db.store.revoke_token(&target.id).await.unwrap());
    let revoked_at = db
        .store
        .tokens("acme")
        .await
        .unwrap()
        .into_iter()
        .find(|record| record.id == target.id)
        .unwrap()
        .revoked_at
        .expect("revoked_at is set");
    assert_recent(revoked_at);
    // Revoking again, or an unknown id, reports false and keeps the first time.
    assert!(!db.store.revoke_token(&target.id).await.unwrap());
    assert!(!db.store.revoke_token("tok_doesnotexist").await.unwrap());
    let still_revoked: Vec<_> = db
        .store
        .tokens("acme")
        .await
        .unwrap()
        .into_iter()
        .filter(|record| record.revoked_at.is_some())
        .collect();
    assert_eq!(still_revoked.len(), 1);
    assert_eq!(still_revoked[0].revoked_at, Some(revoked_at));
}

async fn tokens_of_unknown_accounts_are_refused(db: &TestDb) {
    let error = db
        .store
        .create_token("ghost", Scope::Read, None)
        .await
        .unwrap_err();
    assert!(
        matches!(&error, StoreError::UnknownAccount(name) if name == "ghost"),
        "{error:?}"
    );
    let error = db.store.tokens("ghost").await.unwrap_err();
    assert!(matches!(error, StoreError::UnknownAccount(_)), "{error:?}");
    let error = db
        .store
        .register_token("ghost", Scope::Admin, &ApiToken::generate())
        .await
        .unwrap_err();
    assert!(matches!(error, StoreError::UnknownAccount(_)), "{error:?}");
}

async fn expiry_is_recorded(db: &TestDb) {
    db.store.create_account("acme", "pro").await.unwrap();
    let thirty_days = Duration::from_secs(30 * 24 * 3600);
    let (record, _) = db
        .store
        .create_token("acme", Scope::Read, Some(thirty_days))
        .await
        .unwrap();
    let expires_at = record.expires_at.unwrap();
    assert_eq!(expires_at - record.created_at, chrono::Duration::days(30));
    assert_eq!(
        db.store.tokens("acme").await.unwrap()[0].expires_at,
        Some(expires_at)
    );

    let error = db
        .store
        .create_token("acme", Scope::Read, Some(Duration::MAX))
        .await
        .unwrap_err();
    assert!(matches!(error, StoreError::Db(_)), "{error:?}");
}

async fn the_database_never_holds_a_plaintext_token(db: &TestDb) {
    db.store.create_account("acme", "pro").await.unwrap();
    let mut plaintexts = Vec::new();
    for scope in [Scope::Read, Scope::Write, Scope::Admin] {
        let (_, token) = db
            .store
            .create_token("acme", scope, Some(Duration::from_secs(3600)))
            .await
            .unwrap();
        plaintexts.push(token);
    }
    let fixed = ApiToken::generate();
    db.store.bootstrap_admin(Some(&fixed)).await.unwrap();
    plaintexts.push(fixed);
    for token in &plaintexts {
        db.store.authenticate(token.expose()).await.unwrap();
    }

    // Every text column of every token and account row.
    let rows = sqlx::query("SELECT id, scope, hash FROM tokens")
        .fetch_all(db.store.pool())
        .await
        .unwrap();
    assert_eq!(rows.len(), plaintexts.len());
    let mut stored_text = String::new();
    let mut hashes = Vec::new();
    for row in &rows {
        for column in ["id", "scope", "hash"] {
            stored_text.push_str(&row.try_get::<String, _>(column).unwrap());
            stored_text.push('\n');
        }
        hashes.push(row.try_get::<String, _>("hash").unwrap());
    }
    for row in sqlx::query("SELECT name, plan FROM accounts")
        .fetch_all(db.store.pool())
        .await
        .unwrap()
    {
        stored_text.push_str(&row.try_get::<String, _>("name").unwrap());
        stored_text.push_str(&row.try_get::<String, _>("plan").unwrap());
    }
    // And on SQLite, the raw bytes of the database and its WAL.
    let raw_files: Vec<Vec<u8>> = db
        .sqlite_files()
        .iter()
        .map(|path| std::fs::read(path).unwrap())
        .collect();

    for token in &plaintexts {
        // The random part alone, so neither a stripped prefix nor a split copy slips through.
        let secret = &token.expose()[4..34];
        assert!(!stored_text.contains(secret), "plaintext token stored");
        for bytes in &raw_files {
            assert!(
                !bytes
                    .windows(secret.len())
                    .any(|window| window == secret.as_bytes()),
                "plaintext token in a SQLite file"
            );
        }
        assert!(
            hashes.contains(&token.hash()),
            "token stored by its SHA-256"
        );
    }
    // The scan does see the data: every hash is found in the raw files.
    if !raw_files.is_empty() {
        for hash in &hashes {
            assert!(
                raw_files.iter().any(|bytes| bytes
                    .windows(hash.len())
                    .any(|window| window == hash.as_bytes())),
                "the raw scan misses stored data"
            );
        }
    }
}
