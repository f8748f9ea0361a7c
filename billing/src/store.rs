//! The account database: one sqlx `AnyPool` over SQLite (the embedded default) or PostgreSQL.
//!
//! Both backends run the same queries. That works because every query sticks to the subset
//! both understand: `$1` placeholders, `RETURNING`, `ON CONFLICT`, integer unix-second times and
//! text. What differs (DDL type names) lives in the two migration folders.

use std::path::Path;
use std::time::Duration;

use anyhow::Context;
use chrono::{DateTime, Utc};
use sqlx::any::{AnyConnectOptions, AnyPoolOptions};
use sqlx::migrate::Migrator;
use sqlx::AnyPool;

/// Migrations for each backend, embedded at compile time (`build.rs` tracks the folders).
static SQLITE_MIGRATOR: Migrator = sqlx::migrate!("migrations/sqlite");
static POSTGRES_MIGRATOR: Migrator = sqlx::migrate!("migrations/postgres");

/// How long a caller waits for a pooled connection before the store reports itself unavailable;
/// short, so `/readyz` and handshakes answer promptly while the database is down.
const ACQUIRE_TIMEOUT: Duration = Duration::from_secs(5);

/// The account database (accounts, plans, API tokens). Cheap to clone: the pool is shared.
#[derive(Clone, Debug)]
pub struct Store {
    pool: AnyPool,
    backend: Backend,
}

#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub(crate) enum Backend {
    Sqlite,
    Postgres,
}

/// Why a store operation failed. All but `Db` are the caller's to fix and safe to show as is.
#[derive(Debug, thiserror::Error)]
pub enum StoreError {
    /// An account with this name already exists.
    #[error("account `{0}` already exists")]
    AccountExists(String),
    /// No account has this name.
    #[error("no account named `{0}` (create it with `sluice accounts create {0}`)")]
    UnknownAccount(String),
    /// No plan has this name.
    #[error("no plan named `{0}` (see `sluice plans list`)")]
    UnknownPlan(String),
    /// The account name breaks the naming rule; the text says which part.
    #[error("invalid account name: {0}")]
    InvalidName(String),
    /// A plan's limits break a rule (a negative price, a replay window out of range); the text
    /// says which field.
    #[error("invalid plan: {0}")]
    InvalidPlan(String),
    /// A billing event is unusable (no id, an `updated` event without a plan); the text says why.
    #[error("invalid billing event: {0}")]
    InvalidEvent(String),
    /// The email address fails the sanity check; the text says which part.
    #[error("invalid email address: {0}")]
    InvalidEmail(String),
    /// The password breaks the password rule; the text says which (never the password).
    #[error("invalid password: {0}")]
    InvalidPassword(String),
    /// A user with this email address already exists.
    #[error("a user with this email address already exists; sign in instead")]
    EmailTaken,
    /// `register_token` was given a token already registered to a different account.
    #[error("this token is already registered to another account; generate a new one")]
    TokenInUse,
    /// The plan's allowance is used up (webhook endpoints); the text says which and what to do.
    #[error("{0}")]
    Limit(String),
    /// Too many password hashes are running or waiting (their memory budget is in use); retry
    /// in a few seconds.
    #[error("too many sign-ins and sign-ups at the moment; retry in a few seconds")]
    Busy,
    /// The database failed; the chain says where.
    #[error(transparent)]
    Db(#[from] anyhow::Error),
}

impl Store {
    /// Opens the account database: `database` is `postgres://…` or `sqlite://…`; `None` means
    /// the SQLite file `<data_dir>/sluice.db` (WAL mode, 5 s busy timeout). Creates `data_dir`
    /// if missing in either case (the caller keeps `admin.token` there whatever the database).
    /// Does not migrate: call [`Store::migrate`].
    pub async fn open(database: Option<&str>, data_dir: &Path) -> anyhow::Result<Store> {
        std::fs::create_dir_all(data_dir)
            .with_context(|| format!("creating the data directory {}", data_dir.display()))?;
        if let Some(url) = database {
            return Store::connect(url).await;
        }
        let path = data_dir.join("sluice.db");
        let url = sqlite_file_url(&path)?;
        Store::connect_to(&url, Backend::Sqlite)
            .await
            .with_context(|| format!("opening the SQLite database {}", path.display()))
    }

    /// Connects to a database URL (`postgres://`, `postgresql://` or `sqlite:`). A SQLite file
    /// is created when missing unless the URL sets `mode=` itself; `sqlite::memory:` gives a
    /// throwaway database on a single connection.
    pub async fn connect(url: &str) -> anyhow::Result<Store> {
        // Errors never repeat the URL: it may carry a password.
        if url.starts_with("postgres://") || url.starts_with("postgresql://") {
            Store::connect_to(url, Backend::Postgres)
                .await
                .context("connecting to PostgreSQL")
        } else if url.starts_with("sqlite:") {
            let url = if url.contains("mode=") {
                url.to_owned()
            } else if url.contains('?') {
                format!("{url}&mode=rwc")
            } else {
                format!("{url}?mode=rwc")
            };
            Store::connect_to(&url, Backend::Sqlite)
                .await
                .context("opening the SQLite database")
        } else {
            anyhow::bail!(
                "unsupported database URL: use postgres://user:pass@host/db or sqlite://path"
            )
        }
    }

    async fn connect_to(url: &str, backend: Backend) -> anyhow::Result<Store> {
        // Idempotent: sqlx guards the registration with a `Once` of its own.
        sqlx::any::install_default_drivers();
        let options: AnyConnectOptions = url.parse().context("invalid database URL")?;
        let mut pool_options = AnyPoolOptions::new().acquire_timeout(ACQUIRE_TIMEOUT);
        if backend == Backend::Sqlite && (url.contains(":memory:") || url.contains("mode=memory")) {
            // An in-memory SQLite database lives as long as its connection, and through the
            // `Any` driver each new connection would open a different, empty one. So: exactly
            // one connection, never recycled. Good for throwaway stores, not for production.
            pool_options = pool_options
                .max_connections(1)
                .min_connections(1)
                .idle_timeout(None)
                .max_lifetime(None);
        }
        let pool = pool_options.connect_with(options).await?;
        if backend == Backend::Sqlite {
            // WAL lets readers (every authentication) proceed while a writer commits, and it
            // persists in the file, so setting it once here covers every later connection. sqlx
            // already sets the busy timeout (5 s) and `foreign_keys = ON` on each connection
            // (a test checks all three).
            sqlx::query("PRAGMA journal_mode = WAL")
                .execute(&pool)
                .await
                .context("switching SQLite to WAL mode")?;
        }
        Ok(Store { pool, backend })
    }

    /// Applies pending migrations (idempotent; safe for several processes starting at once on
    /// PostgreSQL, where sqlx takes an advisory lock). The first migration seeds the default plans.
    pub async fn migrate(&self) -> anyhow::Result<()> {
        let migrator = match self.backend {
            Backend::Sqlite => &SQLITE_MIGRATOR,
            Backend::Postgres => &POSTGRES_MIGRATOR,
        };
        migrator
            .run(&self.pool)
            .await
            .with_context(|| format!("applying the {} migrations", self.backend_name()))
    }

    /// Checks the database answers (`SELECT 1`), for `/readyz`.
    pub async fn ping(&self) -> anyhow::Result<()> {
        sqlx::query("SELECT 1")
            .execute(&self.pool)
            .await
            .with_context(|| format!("the {} database does not answer", self.backend_name()))?;
        Ok(())
    }

    /// Which backend this store runs on, for the few statements that differ.
    pub(crate) fn backend(&self) -> Backend {
        self.backend
    }

    /// `"sqlite"` or `"postgres"`.
    pub fn backend_name(&self) -> &'static str {
        match self.backend {
            Backend::Sqlite => "sqlite",
            Backend::Postgres => "postgres",
        }
    }

    /// The connection pool, for `billing`'s own queries and for tests that inspect tables.
    pub fn pool(&self) -> &AnyPool {
        &self.pool
    }

    /// Closes every connection (on shutdown, so SQLite checkpoints its WAL). Later operations
    /// fail with [`StoreError::Db`].
    pub async fn close(&self) {
        self.pool.close().await;
    }
}

/// `sqlite://` URL of a file, created if missing. Every byte outside a safe set is
/// percent-encoded (sqlx decodes it again), so directory names with spaces, `?`, `#` or `%`
/// cannot be misread as URL syntax.
fn sqlite_file_url(path: &Path) -> anyhow::Result<String> {
    let absolute =
        std::path::absolute(path).with_context(|| format!("resolving {}", path.display()))?;
    let text = absolute
        .to_str()
        .with_context(|| format!("{} is not valid UTF-8", absolute.display()))?;
    let mut url = String::from("sqlite://");
    for byte in text.bytes() {
        if byte.is_ascii_alphanumeric() || b"/._-~".contains(&byte) {
            url.push(char::from(byte));
        } else {
            url.push_str(&format!("%{byte:02X}"));
        }
    }
    url.push_str("?mode=rwc");
    Ok(url)
}

/// Current time in unix seconds, the unit every time column uses.
pub(crate) fn unix_now() -> i64 {
    Utc::now().timestamp()
}

/// A stored unix-seconds time as a `DateTime`.
pub(crate) fn from_unix(seconds: i64) -> anyhow::Result<DateTime<Utc>> {
    DateTime::from_timestamp(seconds, 0)
        .with_context(|| format!("stored time {seconds} is out of range"))
}

/// A nullable stored unix-seconds time.
pub(crate) fn from_unix_opt(seconds: Option<i64>) -> anyhow::Result<Option<DateTime<Utc>>> {
    seconds.map(from_unix).transpose()
}

/// Whether `error` is the database refusing a row for the given constraint kind.
pub(crate) fn violates(error: &sqlx::Error, kind: sqlx::error::ErrorKind) -> bool {
    error
        .as_database_error()
        .is_some_and(|database_error| database_error.kind() == kind)
}

/// Turns a sqlx result into a `StoreError::Db` with context naming the step.
pub(crate) trait DbContext<T> {
    fn db(self, step: &'static str) -> Result<T, StoreError>;
}

impl<T> DbContext<T> for Result<T, sqlx::Error> {
    fn db(self, step: &'static str) -> Result<T, StoreError> {
        self.map_err(|error| StoreError::Db(anyhow::Error::new(error).context(step)))
    }
}

impl<T> DbContext<T> for anyhow::Result<T> {
    fn db(self, step: &'static str) -> Result<T, StoreError> {
        self.map_err(|error| StoreError::Db(error.context(step)))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn sqlite_file_urls_escape_url_syntax() {
        let url = sqlite_file_url(Path::new("/data dir/a?b#c%d/sluice.db")).unwrap();
        assert_eq!(url, "sqlite:///data%20dir/a%3Fb%23c%25d/sluice.db?mode=rwc");
        assert!(sqlite_file_url(Path::new("relative/sluice.db"))
            .unwrap()
            .starts_with("sqlite:///"));
    }
}
