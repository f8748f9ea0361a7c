//! Browser users and sessions: sign-up, sign-in, sessions, and that neither passwords nor
//! session ids are ever at rest in plaintext.

use std::time::Duration;

use billing::{SessionSecret, StoreError};
use sha2::{Digest, Sha256};
use sqlx::Row;

use crate::{assert_recent, count_rows, default_plan, TestDb};

const PASSWORD: &str = "correct horse battery staple";

testkit::on_both_backends!(
    crate::TestDb;
    sign_up_creates_a_free_account_and_its_user,
    sign_up_refusals_leave_nothing_behind,
    sign_in_checks_the_password,
    sessions_round_trip_and_end,
    expired_sessions_are_gone,
    nothing_secret_is_stored_in_plaintext,
);

async fn sign_up_creates_a_free_account_and_its_user(db: &TestDb) {
    let user = db
        .store
        .sign_up(" Ada@Example.COM ", PASSWORD, "acme")
        .await
        .unwrap();
    assert_eq!(user.email, "ada@example.com");
    assert_eq!(user.account, "acme");
    assert_recent(user.created_at);
    let account = db.store.account("acme").await.unwrap().unwrap();
    assert_eq!(account.id, user.account_id);
    assert_eq!(account.plan, "free");
    let hash: String = sqlx::query("SELECT password_hash FROM users WHERE id = $1")
        .bind(user.id)
        .fetch_one(db.store.pool())
        .await
        .unwrap()
        .try_get("password_hash")
        .unwrap();
    assert!(
        hash.starts_with("$argon2id$v=19$m=19456,t=2,p=1$"),
        "{hash}"
    );
}

async fn sign_up_refusals_leave_nothing_behind(db: &TestDb) {
    db.store
        .sign_up("ada@example.com", PASSWORD, "acme")
        .await
        .unwrap();
    let refusals = [
        ("bob@example.com", "short pass", "bob"),
        ("not-an-email", PASSWORD, "bob"),
        ("bob@example.com", PASSWORD, "Bob Corp"),
        // Same email in another case: the account must not be left behind without its user.
        ("ADA@example.com", PASSWORD, "bob"),
        ("bob@example.com", PASSWORD, "acme"),
    ];
    let mut errors = Vec::new();
    for (email, password, account) in refusals {
        errors.push(
            db.store
                .sign_up(email, password, account)
                .await
                .unwrap_err(),
        );
    }
    assert!(
        matches!(errors[0], StoreError::InvalidPassword(_)),
        "{errors:?}"
    );
    assert!(
        matches!(errors[1], StoreError::InvalidEmail(_)),
        "{errors:?}"
    );
    assert!(
        matches!(errors[2], StoreError::InvalidName(_)),
        "{errors:?}"
    );
    assert!(matches!(errors[3], StoreError::EmailTaken), "{errors:?}");
    assert!(
        matches!(errors[4], StoreError::AccountExists(_)),
        "{errors:?}"
    );
    for error in &errors {
        assert!(!error.to_string().contains(PASSWORD), "{error}");
    }
    assert_eq!(count_rows(&db.store, "users").await, 1);
    assert_eq!(count_rows(&db.store, "accounts").await, 1);
    assert_eq!(db.store.account("bob").await.unwrap(), None);
}

async fn sign_in_checks_the_password(db: &TestDb) {
    let user = db
        .store
        .sign_up("ada@example.com", PASSWORD, "acme")
        .await
        .unwrap();
    let signed_in = db.store.sign_in("ADA@example.com", PASSWORD).await.unwrap();
    assert_eq!(signed_in, Some(user));
    for (email, password) in [
        ("ada@example.com", "correct horse battery stapl"),
        ("ada@example.com", ""),
        ("bob@example.com", PASSWORD),
        ("not-an-email", PASSWORD),
        ("ada@example.com", &"x".repeat(2000)),
    ] {
        assert_eq!(
            db.store.sign_in(email, password).await.unwrap(),
            None,
            "{email}"
        );
    }
}

async fn sessions_round_trip_and_end(db: &TestDb) {
    let user = db
        .store
        .sign_up("ada@example.com", PASSWORD, "acme")
        .await
        .unwrap();
    let (secret, csrf_token) = db
        .store
        .create_session(user.id, Duration::from_secs(3600))
        .await
        .unwrap();
    assert_eq!(csrf_token.len(), 64);
    let session = db.store.session(secret.expose()).await.unwrap().unwrap();
    assert_eq!(session.user_id, user.id);
    assert_eq!(session.account, "acme");
    assert_eq!(session.account_id, user.account_id);
    assert_eq!(session.plan, default_plan("free"));
    assert_eq!(session.csrf_token, csrf_token);
    let remaining = session.expires_at - chrono::Utc::now();
    assert!(remaining > chrono::Duration::seconds(3590), "{remaining}");

    // A plan change shows at the next lookup.
    db.store.set_plan("acme", "hobby").await.unwrap();
    let session = db.store.session(secret.expose()).await.unwrap().unwrap();
    assert_eq!(session.plan, default_plan("hobby"));

    // A second session is independent.
    let (other, other_csrf) = db
        .store
        .create_session(user.id, Duration::from_secs(3600))
        .await
        .unwrap();
    assert_ne!(other, secret);
    assert_ne!(other_csrf, csrf_token);

    for unknown in [
        SessionSecret::generate().expose().to_owned(),
        String::new(),
        "garbage".to_owned(),
        secret.expose().to_uppercase(),
    ] {
        assert_eq!(db.store.session(&unknown).await.unwrap(), None);
    }
    assert!(db.store.delete_session(secret.expose()).await.unwrap());
    assert!(!db.store.delete_session(secret.expose()).await.unwrap());
    assert_eq!(db.store.session(secret.expose()).await.unwrap(), None);
    assert!(db.store.session(other.expose()).await.unwrap().is_some());
}

async fn expired_sessions_are_gone(db: &TestDb) {
    let user = db
        .store
        .sign_up("ada@example.com", PASSWORD, "acme")
        .await
        .unwrap();
    let (expired, _) = db
        .store
        .create_session(user.id, Duration::ZERO)
        .await
        .unwrap();
    assert_eq!(db.store.session(expired.expose()).await.unwrap(), None);
    // The next sign-in sweeps it away.
    db.store
        .create_session(user.id, Duration::from_secs(60))
        .await
        .unwrap();
    assert_eq!(count_rows(&db.store, "sessions").await, 1);
}

async fn nothing_secret_is_stored_in_plaintext(db: &TestDb) {
    let user = db
        .store
        .sign_up("ada@example.com", PASSWORD, "acme")
        .await
        .unwrap();
    db.store.sign_in("ada@example.com", PASSWORD).await.unwrap();
    let (secret, _) = db
        .store
        .create_session(user.id, Duration::from_secs(3600))
        .await
        .unwrap();
    let id_hash: String = sqlx::query("SELECT id_hash FROM sessions")
        .fetch_one(db.store.pool())
        .await
        .unwrap()
        .try_get("id_hash")
        .unwrap();
    assert_eq!(id_hash, hex::encode(Sha256::digest(secret.expose())));
    let stored = dump(db).await;
    assert!(!stored.contains(PASSWORD));
    assert!(!stored.contains(secret.expose()));
    assert!(
        stored.contains(&id_hash),
        "the dump must cover the sessions table"
    );
    for file in db.sqlite_files() {
        let bytes = std::fs::read(&file).unwrap();
        for needle in [PASSWORD.as_bytes(), secret.expose().as_bytes()] {
            assert!(
                !bytes.windows(needle.len()).any(|window| window == needle),
                "{} holds a plaintext secret",
                file.display()
            );
        }
    }
}

/// Every text column of `users` and `sessions`, concatenated.
async fn dump(db: &TestDb) -> String {
    let mut text = String::new();
    for (table, columns) in [
        ("users", ["email", "password_hash", "email"]),
        ("sessions", ["id_hash", "csrf_token", "id_hash"]),
    ] {
        let sql = format!("SELECT {} FROM {table}", columns.join(", "));
        for row in sqlx::query(&sql).fetch_all(db.store.pool()).await.unwrap() {
            for index in 0..columns.len() {
                text.push_str(&row.try_get::<String, _>(index).unwrap());
                text.push('\n');
            }
        }
    }
    text
}
