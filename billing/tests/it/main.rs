//! Integration tests of `billing`: every test body runs twice, on SQLite (a temporary data
//! directory, the embedded default) and on a fresh PostgreSQL database (`testkit::PgDatabase`),
//! so the two backends cannot drift apart. Each module names its bodies in
//! `testkit::on_both_backends!`, which makes the tests `module::body::sqlite` and
//! `module::body::postgres` over a [`TestDb`].

mod accounts;
mod auth;
mod bootstrap;
mod changes;
mod migrations;
mod stream_jwt;
mod subscriptions;
mod tokens;
mod usage;
mod users;
mod webhooks;

use std::path::PathBuf;

use billing::Store;
use tempfile::TempDir;
use testkit::PgDatabase;

/// A migrated store on one backend, and what it needs to stay alive (its directory or
/// database), removed by [`TestDb::finish`].
pub struct TestDb {
    pub store: Store,
    resource: Resource,
}

enum Resource {
    Sqlite(TempDir),
    Postgres(PgDatabase),
}

impl TestDb {
    /// The embedded default: `Store::open(None, data_dir)` in a fresh directory.
    pub async fn sqlite() -> TestDb {
        let dir = tempfile::tempdir().unwrap();
        let store = Store::open(None, dir.path()).await.unwrap();
        store.migrate().await.unwrap();
        TestDb {
            store,
            resource: Resource::Sqlite(dir),
        }
    }

    /// A fresh PostgreSQL database on the test server.
    pub async fn postgres() -> TestDb {
        let database = PgDatabase::create().await.unwrap();
        let data_dir = tempfile::tempdir().unwrap();
        let store = Store::open(Some(database.url()), data_dir.path())
            .await
            .unwrap();
        // Nothing of the database lives in the data directory.
        assert_eq!(std::fs::read_dir(data_dir.path()).unwrap().count(), 0);
        store.migrate().await.unwrap();
        TestDb {
            store,
            resource: Resource::Postgres(database),
        }
    }

    /// A second, independent store on the same database (another process, in effect).
    pub async fn reopen(&self) -> Store {
        match &self.resource {
            Resource::Sqlite(dir) => Store::open(None, dir.path()).await.unwrap(),
            Resource::Postgres(database) => Store::connect(database.url()).await.unwrap(),
        }
    }

    /// The SQLite files (database and WAL), whose raw bytes some tests scan; empty on PostgreSQL.
    pub fn sqlite_files(&self) -> Vec<PathBuf> {
        match &self.resource {
            Resource::Sqlite(dir) => std::fs::read_dir(dir.path())
                .unwrap()
                .map(|entry| entry.unwrap().path())
                .filter(|path| path.to_string_lossy().contains("sluice.db"))
                .collect(),
            Resource::Postgres(_) => Vec::new(),
        }
    }

    pub async fn finish(self) {
        self.store.close().await;
        match self.resource {
            Resource::Sqlite(dir) => dir.close().unwrap(),
            Resource::Postgres(database) => database.drop_database().await.unwrap(),
        }
    }
}

/// Rows in `table` (a fixed name from a test, never input).
pub async fn count_rows(store: &Store, table: &str) -> i64 {
    use sqlx::Row;
    sqlx::query(&format!("SELECT COUNT(*) AS n FROM {table}"))
        .fetch_one(store.pool())
        .await
        .unwrap()
        .try_get("n")
        .unwrap()
}

/// The default plan called `name` (docs/protocol.md §5.2).
pub fn default_plan(name: &str) -> domain::Plan {
    domain::Plan::defaults()
        .into_iter()
        .find(|plan| plan.name == name)
        .unwrap()
}

/// Asserts a time is within a few seconds of now (times are stored with second precision).
pub fn assert_recent(at: chrono::DateTime<chrono::Utc>) {
    let age = chrono::Utc::now() - at;
    assert!(
        age >= chrono::Duration::seconds(-1) && age <= chrono::Duration::seconds(10),
        "{at} is not recent"
    );
}
