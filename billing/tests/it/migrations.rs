//! Opening, migrating and the seeded plans.

use billing::Store;
use domain::Plan;
use sqlx::Row;

use crate::TestDb;

testkit::on_both_backends!(
    crate::TestDb;
    migrations_are_idempotent,
    seeded_plans_equal_the_spec_defaults,
    ping_and_backend_name,
);

async fn migrations_are_idempotent(db: &TestDb) {
    // `TestDb` migrated once already; again on the same store and from a second "process".
    db.store.migrate().await.unwrap();
    db.store.migrate().await.unwrap();
    let other = db.reopen().await;
    other.migrate().await.unwrap();
    other.close().await;

    let applied: i64 = sqlx::query("SELECT COUNT(*) AS n FROM _sqlx_migrations")
        .fetch_one(db.store.pool())
        .await
        .unwrap()
        .try_get("n")
        .unwrap();
    // One row per migration file, whatever the number of runs.
    let files = std::fs::read_dir(concat!(env!("CARGO_MANIFEST_DIR"), "/migrations/sqlite"))
        .unwrap()
        .count();
    assert!(files >= 2);
    assert_eq!(applied, i64::try_from(files).unwrap());
    // The seed ran once: still exactly the four default plans.
    assert_eq!(db.store.plans().await.unwrap().len(), 4);
}

async fn seeded_plans_equal_the_spec_defaults(db: &TestDb) {
    let defaults = Plan::defaults();
    assert_eq!(db.store.plans().await.unwrap(), defaults);
    for plan in &defaults {
        assert_eq!(
            db.store.plan(&plan.name).await.unwrap().as_ref(),
            Some(plan)
        );
    }
    assert_eq!(db.store.plan("platinum").await.unwrap(), None);
}

async fn ping_and_backend_name(db: &TestDb) {
    db.store.ping().await.unwrap();
    let expected = if db.sqlite_files().is_empty() {
        "postgres"
    } else {
        "sqlite"
    };
    assert_eq!(db.store.backend_name(), expected);
    db.store.close().await;
    let error = db.store.ping().await.unwrap_err();
    assert!(
        format!("{error:#}").contains("does not answer"),
        "{error:#}"
    );
}

#[tokio::test]
async fn sqlite_default_creates_the_data_dir_in_wal_mode_with_a_busy_timeout() {
    let root = tempfile::tempdir().unwrap();
    // A nested, missing directory with characters that mean something in URLs.
    let data_dir = root.path().join("data dir?#%").join("sluice-data");
    let store = Store::open(None, &data_dir).await.unwrap();
    store.migrate().await.unwrap();
    assert!(data_dir.join("sluice.db").is_file());
    assert_eq!(store.backend_name(), "sqlite");

    let mut connection = store.pool().acquire().await.unwrap();
    let journal_mode: String = sqlx::query("PRAGMA journal_mode")
        .fetch_one(&mut *connection)
        .await
        .unwrap()
        .try_get(0)
        .unwrap();
    assert_eq!(journal_mode, "wal");
    let busy_timeout: i64 = sqlx::query("PRAGMA busy_timeout")
        .fetch_one(&mut *connection)
        .await
        .unwrap()
        .try_get(0)
        .unwrap();
    assert_eq!(busy_timeout, 5000);
    let foreign_keys: i64 = sqlx::query("PRAGMA foreign_keys")
        .fetch_one(&mut *connection)
        .await
        .unwrap()
        .try_get(0)
        .unwrap();
    assert_eq!(foreign_keys, 1);
    drop(connection);
    store.close().await;

    // Reopening finds the same data.
    let store = Store::open(None, &data_dir).await.unwrap();
    store.migrate().await.unwrap();
    assert_eq!(store.plans().await.unwrap(), Plan::defaults());
    store.close().await;
}

#[tokio::test]
async fn sqlite_urls_create_the_file_when_missing() {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("given.db");
    let url = format!("sqlite://{}", path.display());
    let store = Store::open(Some(&url), dir.path()).await.unwrap();
    store.migrate().await.unwrap();
    assert!(path.is_file());
    assert_eq!(store.plans().await.unwrap().len(), 4);
    store.close().await;
}

#[tokio::test]
async fn sqlite_in_memory_works_for_throwaway_stores() {
    let dir = tempfile::tempdir().unwrap();
    let store = Store::open(Some("sqlite::memory:"), dir.path())
        .await
        .unwrap();
    store.migrate().await.unwrap();
    store.create_account("acme", "hobby").await.unwrap();
    let (_, token) = store
        .create_token("acme", billing::Scope::Read, None)
        .await
        .unwrap();
    // Every pooled connection sees the same in-memory database.
    let principals = authenticate_concurrently(&store, token.expose()).await;
    assert!(principals
        .iter()
        .all(|principal| principal.account == "acme"));
    store.close().await;
}

/// Authenticates from several tasks at once, so the pool opens more than one connection.
async fn authenticate_concurrently(store: &Store, token: &str) -> Vec<billing::Principal> {
    let tasks: Vec<_> = (0..4)
        .map(|_| {
            let store = store.clone();
            let token = token.to_owned();
            tokio::spawn(async move { store.authenticate(&token).await.unwrap() })
        })
        .collect();
    let mut principals = Vec::new();
    for task in tasks {
        principals.push(task.await.unwrap());
    }
    principals
}

#[tokio::test]
async fn unsupported_and_unreachable_databases_fail_without_leaking_the_password() {
    let error = Store::connect("mysql://root:hunter2@localhost/db")
        .await
        .unwrap_err();
    let message = format!("{error:#}");
    assert!(message.contains("postgres://"), "{message}");
    assert!(!message.contains("hunter2"), "{message}");

    // Port 1 on loopback refuses connections.
    let error = Store::connect("postgres://sluice:hunter2@127.0.0.1:1/sluice")
        .await
        .unwrap_err();
    let message = format!("{error:#}");
    assert!(message.contains("PostgreSQL"), "{message}");
    assert!(!message.contains("hunter2"), "{message}");
}

#[test]
fn both_backends_have_the_same_migrations() {
    let names = |backend: &str| {
        let mut names: Vec<String> = std::fs::read_dir(format!(
            "{}/migrations/{backend}",
            env!("CARGO_MANIFEST_DIR")
        ))
        .unwrap()
        .map(|entry| entry.unwrap().file_name().to_string_lossy().into_owned())
        .collect();
        names.sort();
        names
    };
    assert_eq!(names("sqlite"), names("postgres"));
}
