//! A fresh PostgreSQL database per test on the test server (`scripts/test` starts one).

use std::str::FromStr;
use std::time::Duration;

use anyhow::Context;
use rand::Rng;
use sqlx::postgres::{PgConnectOptions, PgConnection};
use sqlx::Connection;

/// Environment variable naming the server's admin URL (a user that may `CREATE DATABASE`).
const ADMIN_URL_ENV: &str = "SLUICE_TEST_POSTGRES_URL";
/// The admin URL when `SLUICE_TEST_POSTGRES_URL` is unset: the server `scripts/test` runs.
const DEFAULT_ADMIN_URL: &str = "postgres://postgres:postgres@127.0.0.1:5432/postgres";

/// Connecting should take milliseconds locally; a server that does not answer in this time is
/// treated as missing rather than left to hang the test run.
const CONNECT_TIMEOUT: Duration = Duration::from_secs(10);

/// A database created for one test, named `sluice_test_<random>`.
///
/// Call [`PgDatabase::drop_database`] at the end of the test; if the test panics first, `Drop`
/// drops the database anyway (on a helper thread, since `Drop` cannot await).
#[derive(Debug)]
pub struct PgDatabase {
    admin_url: String,
    name: String,
    url: String,
    dropped: bool,
}

impl PgDatabase {
    /// Creates a new empty database on the test server (`SLUICE_TEST_POSTGRES_URL`, default
    /// `postgres://postgres:postgres@127.0.0.1:5432/postgres`). Fails, telling to run `scripts/test`, when the server is not
    /// reachable.
    pub async fn create() -> anyhow::Result<PgDatabase> {
        let admin_url = std::env::var(ADMIN_URL_ENV).unwrap_or_else(|_| DEFAULT_ADMIN_URL.into());
        let mut admin = connect_admin(&admin_url).await?;
        // Lower case only: PostgreSQL folds unquoted identifiers, and the name goes into a URL.
        let suffix: String = (0..16)
            .map(|_| char::from(rand::thread_rng().sample(rand::distributions::Alphanumeric)))
            .map(|character| character.to_ascii_lowercase())
            .collect();
        let name = format!("sluice_test_{suffix}");
        sqlx::query(&format!("CREATE DATABASE {name}"))
            .execute(&mut admin)
            .await
            .with_context(|| format!("creating the test database {name}"))?;
        // A failed close only leaks one idle connection the server reaps on its own.
        let _ = admin.close().await;
        let url = database_url(&admin_url, &name);
        Ok(PgDatabase {
            admin_url,
            name,
            url,
            dropped: false,
        })
    }

    /// URL of the new database (same server and credentials as the admin URL).
    pub fn url(&self) -> &str {
        &self.url
    }

    /// Name of the new database.
    pub fn name(&self) -> &str {
        &self.name
    }

    /// Drops the database, disconnecting whatever is still connected to it.
    pub async fn drop_database(mut self) -> anyhow::Result<()> {
        self.dropped = true;
        drop_named(&self.admin_url, &self.name).await
    }
}

impl Drop for PgDatabase {
    fn drop(&mut self) {
        if self.dropped {
            return;
        }
        let admin_url = self.admin_url.clone();
        let name = self.name.clone();
        // `Drop` runs inside the test's runtime, which must not be blocked on itself: a thread
        // with a runtime of its own does the async cleanup, and joining it keeps the order
        // (the database is gone when the test ends).
        let cleanup = std::thread::spawn(move || {
            let runtime = tokio::runtime::Builder::new_current_thread()
                .enable_all()
                .build()?;
            runtime.block_on(drop_named(&admin_url, &name))
        });
        match cleanup.join() {
            Ok(Ok(())) => {}
            Ok(Err(error)) => eprintln!("testkit: could not drop test database: {error:#}"),
            Err(_) => eprintln!("testkit: the thread dropping a test database panicked"),
        }
    }
}

async fn connect_admin(admin_url: &str) -> anyhow::Result<PgConnection> {
    let options = PgConnectOptions::from_str(admin_url)
        .with_context(|| format!("{ADMIN_URL_ENV} is not a valid postgres:// URL"))?;
    // Errors name host and port, never the URL: it carries a password.
    let server = format!("{}:{}", options.get_host(), options.get_port());
    let advice = format!(
        "run `scripts/test`, which installs and starts PostgreSQL, or point {ADMIN_URL_ENV} \
         at a server where the user may CREATE DATABASE"
    );
    match tokio::time::timeout(CONNECT_TIMEOUT, PgConnection::connect_with(&options)).await {
        Ok(Ok(connection)) => Ok(connection),
        Ok(Err(error)) => Err(anyhow::anyhow!(
            "cannot connect to the test PostgreSQL server at {server}: {error}; {advice}"
        )),
        Err(_) => Err(anyhow::anyhow!(
            "the test PostgreSQL server at {server} did not answer within {CONNECT_TIMEOUT:?}; {advice}"
        )),
    }
}

async fn drop_named(admin_url: &str, name: &str) -> anyhow::Result<()> {
    let mut admin = connect_admin(admin_url).await?;
    // FORCE (PostgreSQL 13+) terminates the test's pooled connections still open.
    sqlx::query(&format!("DROP DATABASE IF EXISTS {name} WITH (FORCE)"))
        .execute(&mut admin)
        .await
        .with_context(|| format!("dropping the test database {name}"))?;
    let _ = admin.close().await;
    Ok(())
}

/// `admin_url` with its database replaced by `name`, keeping scheme, credentials, host and
/// query parameters. Done on the text (no URL crate needed): the database is the path after
/// the authority, up to the query.
fn database_url(admin_url: &str, name: &str) -> String {
    let (scheme, rest) = admin_url
        .split_once("://")
        .unwrap_or(("postgres", admin_url));
    let (before_query, query) = match rest.split_once('?') {
        Some((before, query)) => (before, Some(query)),
        None => (rest, None),
    };
    let authority = before_query.split('/').next().unwrap_or_default();
    match query {
        Some(query) => format!("{scheme}://{authority}/{name}?{query}"),
        None => format!("{scheme}://{authority}/{name}"),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn database_url_replaces_only_the_database() {
        let check = |admin: &str, expected: &str| assert_eq!(database_url(admin, "t1"), expected);
        check("postgres://u:p@h:5432/postgres", "postgres://u:p@h:5432/t1");
        check("postgres://u:p@h:5432", "postgres://u:p@h:5432/t1");
        check(
            "postgres://u@h/postgres?sslmode=disable",
            "postgres://u@h/t1?sslmode=disable",
        );
        check(
            "postgresql:///postgres?host=/run/postgresql",
            "postgresql:///t1?host=/run/postgresql",
        );
    }

    async fn exists(name: &str) -> bool {
        let admin_url = std::env::var(ADMIN_URL_ENV).unwrap_or_else(|_| DEFAULT_ADMIN_URL.into());
        let mut admin = connect_admin(&admin_url).await.unwrap();
        let count: i64 = sqlx::query_scalar("SELECT count(*) FROM pg_database WHERE datname = $1")
            .bind(name)
            .fetch_one(&mut admin)
            .await
            .unwrap();
        count == 1
    }

    #[tokio::test]
    async fn creates_a_usable_database_and_drops_it_even_while_connected() {
        let database = PgDatabase::create().await.unwrap();
        let name = database.name().to_owned();
        assert!(name.starts_with("sluice_test_"));
        let mut connection = PgConnection::connect(database.url()).await.unwrap();
        let current: String = sqlx::query_scalar("SELECT current_database()")
            .fetch_one(&mut connection)
            .await
            .unwrap();
        assert_eq!(current, name);
        assert!(exists(&name).await);
        // The connection stays open: FORCE must disconnect it.
        database.drop_database().await.unwrap();
        assert!(!exists(&name).await);
        drop(connection);
    }

    #[tokio::test]
    async fn drop_cleans_up_a_forgotten_database() {
        let database = PgDatabase::create().await.unwrap();
        let name = database.name().to_owned();
        assert!(exists(&name).await);
        drop(database);
        assert!(!exists(&name).await);
    }

    #[tokio::test]
    async fn each_database_is_new() {
        let first = PgDatabase::create().await.unwrap();
        let second = PgDatabase::create().await.unwrap();
        assert_ne!(first.name(), second.name());
        first.drop_database().await.unwrap();
        second.drop_database().await.unwrap();
    }
}
