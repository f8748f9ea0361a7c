//! Accounts: creating them, their plan, and the `admin` account made on first start.

use chrono::{DateTime, Utc};
use sqlx::any::AnyRow;
use sqlx::error::ErrorKind;
use sqlx::{AnyConnection, Row};

use crate::changes::{record_change, NewChange};
use crate::store::{from_unix, unix_now, violates, Backend, DbContext, Store, StoreError};
use crate::token::{ApiToken, Scope};
use crate::tokens::insert_token;

/// The account created on first start, which holds the first admin token.
const ADMIN_ACCOUNT: &str = "admin";
/// The plan of the `admin` account.
const ADMIN_PLAN: &str = "enterprise";
/// Longest account name.
const MAX_NAME_LEN: usize = 64;

/// An account. Every token of an account shares its plan (docs/protocol.md §5.1).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Account {
    /// Database id.
    pub id: i64,
    /// Unique name; also the provider name on indicators the account publishes.
    pub name: String,
    /// Name of the account's plan.
    pub plan: String,
    /// When the account was created (second precision).
    pub created_at: DateTime<Utc>,
}

impl Account {
    /// Checks the naming rule: 1–64 characters of `[a-z0-9._-]`, starting with a letter or
    /// digit. Names become provider names on the stream, so they must be safe in every output
    /// format (CSV, zeek, iptables comments) and impossible to confuse by case.
    pub fn validate_name(name: &str) -> Result<(), StoreError> {
        let invalid = |reason: String| Err(StoreError::InvalidName(reason));
        let Some(first) = name.chars().next() else {
            return invalid("it is empty".into());
        };
        if name.len() > MAX_NAME_LEN {
            return invalid(format!(
                "it has {} characters, at most {MAX_NAME_LEN} are allowed",
                name.chars().count()
            ));
        }
        if !(first.is_ascii_lowercase() || first.is_ascii_digit()) {
            return invalid(format!(
                "`{name}` must start with a lower-case letter or a digit"
            ));
        }
        if let Some(bad) = name.chars().find(|character| {
            !(character.is_ascii_lowercase()
                || character.is_ascii_digit()
                || matches!(character, '.' | '_' | '-'))
        }) {
            return invalid(format!(
                "`{name}` contains {bad:?}; use only a-z, 0-9, `.`, `_` and `-`"
            ));
        }
        Ok(())
    }
}

impl Store {
    /// Creates an account on `plan`.
    pub async fn create_account(&self, name: &str, plan: &str) -> Result<Account, StoreError> {
        Account::validate_name(name)?;
        let mut connection = self.pool().acquire().await.db("creating an account")?;
        insert_account(&mut connection, name, plan).await
    }

    /// The account called `name`, if any.
    pub async fn account(&self, name: &str) -> Result<Option<Account>, StoreError> {
        let row = sqlx::query("SELECT id, name, plan, created_at FROM accounts WHERE name = $1")
            .bind(name)
            .fetch_optional(self.pool())
            .await
            .db("looking up an account")?;
        row.as_ref()
            .map(account_from_row)
            .transpose()
            .db("reading an account")
    }

    /// Moves an account to another plan. Its existing tokens carry the new plan from the next
    /// authentication on (the plan is joined in at lookup, never copied into tokens), and an
    /// `account_plan` change is recorded in the same transaction so live connections follow
    /// (a move to the plan the account is already on changes nothing and records nothing).
    pub async fn set_plan(&self, account: &str, plan: &str) -> Result<Account, StoreError> {
        let mut transaction = self.pool().begin().await.db("starting a plan change")?;
        match change_account_plan(
            &mut transaction,
            self.backend(),
            AccountKey::Name(account),
            plan,
        )
        .await?
        {
            Some(changed) => {
                transaction.commit().await.db("committing a plan change")?;
                tracing::info!(account.id = changed.id, plan = %plan, "changed an account's plan");
                Ok(changed)
            }
            None => {
                transaction
                    .rollback()
                    .await
                    .db("rolling back a plan change")?;
                // Nothing was updated: either the account is already on `plan`, or it does
                // not exist.
                self.account(account)
                    .await?
                    .ok_or_else(|| StoreError::UnknownAccount(account.to_owned()))
            }
        }
    }

    /// First start: if account `admin` does not exist, creates it (plan `enterprise`) with an
    /// admin-scope token — `fixed` when given, else a new one — and returns that token's
    /// plaintext to show once. Writes nothing to disk.
    ///
    /// Later starts return `None`; when `fixed` is given they make sure it is registered (so a
    /// `SLUICE_ADMIN_TOKEN` set after the first start works too). A revoked fixed token stays
    /// revoked: revocation is an admin's decision that a restart must not undo.
    pub async fn bootstrap_admin(
        &self,
        fixed: Option<&ApiToken>,
    ) -> Result<Option<ApiToken>, StoreError> {
        if self.account(ADMIN_ACCOUNT).await?.is_none() {
            let token = fixed.cloned().unwrap_or_else(ApiToken::generate);
            // One transaction: a crash between the two inserts must not leave an `admin`
            // account without a token, which would lock the operator out for good.
            let mut transaction = self
                .pool()
                .begin()
                .await
                .db("starting the admin bootstrap")?;
            match insert_account(&mut transaction, ADMIN_ACCOUNT, ADMIN_PLAN).await {
                Ok(account) => {
                    let record =
                        insert_token(&mut transaction, &account, Scope::Admin, &token, None)
                            .await?;
                    transaction
                        .commit()
                        .await
                        .db("committing the admin bootstrap")?;
                    tracing::info!(
                        account.id = account.id,
                        token.id = %record.id,
                        "created the admin account and its first token"
                    );
                    return Ok(Some(token));
                }
                // Another process starting at the same moment created it first; fall through
                // to the "already exists" path.
                Err(StoreError::AccountExists(_)) => {
                    transaction
                        .rollback()
                        .await
                        .db("rolling back the admin bootstrap")?;
                }
                Err(error) => return Err(error),
            }
        }
        if let Some(fixed) = fixed {
            self.register_token(ADMIN_ACCOUNT, Scope::Admin, fixed)
                .await?;
        }
        Ok(None)
    }
}

/// How [`change_account_plan`] finds the account.
#[derive(Debug, Clone, Copy)]
pub(crate) enum AccountKey<'a> {
    Name(&'a str),
    Id(i64),
}

/// Moves an account to `plan` inside `connection`'s transaction and records the `account_plan`
/// change; `None` when nothing changed (no such account, or already on `plan`). The caller
/// commits. Only writes, so on SQLite the transaction takes the write lock at its first
/// statement and never has to upgrade a read snapshot (which fails at once under WAL).
pub(crate) async fn change_account_plan(
    connection: &mut AnyConnection,
    backend: Backend,
    account: AccountKey<'_>,
    plan: &str,
) -> Result<Option<Account>, StoreError> {
    let condition = match account {
        AccountKey::Name(_) => "name = $2",
        AccountKey::Id(_) => "id = $2",
    };
    let sql = format!(
        "UPDATE accounts SET plan = $1 WHERE {condition} AND plan <> $1 \
         RETURNING id, name, plan, created_at"
    );
    let statement = sqlx::query(&sql).bind(plan);
    let statement = match account {
        AccountKey::Name(name) => statement.bind(name),
        AccountKey::Id(id) => statement.bind(id),
    };
    let changed = match statement.fetch_optional(&mut *connection).await {
        Ok(Some(row)) => account_from_row(&row).db("reading an account")?,
        Ok(None) => return Ok(None),
        Err(error) if violates(&error, ErrorKind::ForeignKeyViolation) => {
            return Err(StoreError::UnknownPlan(plan.to_owned()))
        }
        Err(error) => return Err(error).db("changing an account's plan"),
    };
    record_change(
        connection,
        backend,
        NewChange::AccountPlan {
            account_id: changed.id,
            plan,
        },
    )
    .await?;
    Ok(Some(changed))
}

/// Inserts an account (the name must already be valid).
pub(crate) async fn insert_account(
    connection: &mut AnyConnection,
    name: &str,
    plan: &str,
) -> Result<Account, StoreError> {
    let result = sqlx::query(
        "INSERT INTO accounts (name, plan, created_at) VALUES ($1, $2, $3) \
         RETURNING id, name, plan, created_at",
    )
    .bind(name)
    .bind(plan)
    .bind(unix_now())
    .fetch_one(&mut *connection)
    .await;
    match result {
        Ok(row) => account_from_row(&row).db("reading an account"),
        Err(error) if violates(&error, ErrorKind::UniqueViolation) => {
            Err(StoreError::AccountExists(name.to_owned()))
        }
        Err(error) if violates(&error, ErrorKind::ForeignKeyViolation) => {
            Err(StoreError::UnknownPlan(plan.to_owned()))
        }
        Err(error) => Err(error).db("creating an account"),
    }
}

fn account_from_row(row: &AnyRow) -> anyhow::Result<Account> {
    Ok(Account {
        id: row.try_get("id")?,
        name: row.try_get("name")?,
        plan: row.try_get("plan")?,
        created_at: from_unix(row.try_get("created_at")?)?,
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    fn check(name: &str, valid: bool) {
        let result = Account::validate_name(name);
        assert_eq!(result.is_ok(), valid, "{name:?}: {result:?}");
    }

    #[test]
    fn account_names_follow_the_rule() {
        check("a", true);
        check("acme", true);
        check("0day.feeds_v2-eu", true);
        check(&"a".repeat(64), true);
        check("", false);
        check(&"a".repeat(65), false);
        check("-acme", false);
        check(".acme", false);
        check("_acme", false);
        check("Acme", false);
        check("ac me", false);
        check("acme/feeds", false);
        check("acmé", false);
        check("acme\n", false);
    }

    #[test]
    fn invalid_name_messages_say_why() {
        let message = Account::validate_name("Acme").unwrap_err().to_string();
        assert!(message.contains("lower-case"), "{message}");
        let message = Account::validate_name("acme feeds")
            .unwrap_err()
            .to_string();
        assert!(message.contains("' '"), "{message}");
    }
}
