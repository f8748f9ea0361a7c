//! API token records: creating, registering, listing and revoking tokens of an account.
//!
//! The database holds a token's SHA-256 and a public id (`tok_…`), never its plaintext: the
//! plaintext exists only in the value returned to the caller who shows it once.

use std::time::Duration;

use anyhow::Context;
use chrono::{DateTime, Utc};
use sqlx::any::AnyRow;
use sqlx::error::ErrorKind;
use sqlx::{AnyConnection, Row};

use crate::accounts::Account;
use crate::changes::{record_change, NewChange};
use crate::store::{from_unix, from_unix_opt, unix_now, violates, DbContext, Store, StoreError};
use crate::token::{random_base62, ApiToken, Scope};

/// Prefix of public token ids; distinct from the secret's `slc_` so the two are never confused.
const TOKEN_ID_PREFIX: &str = "tok_";
/// Random base62 characters in a public id (≈ 71 bits: unique without coordination).
const TOKEN_ID_RANDOM_LEN: usize = 12;

/// The columns [`record_from_row`] reads, for `tokens t JOIN accounts a`.
const RECORD_COLUMNS: &str = "t.id, a.name AS account, t.scope, t.created_at, t.expires_at, \
     t.revoked_at, t.last_used_at";

/// A token's public record: everything but the secret. Safe to log and show.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct TokenRecord {
    /// Public id, `tok_` + 12 base62 characters; what `sluice tokens revoke` takes.
    pub id: String,
    /// Name of the owning account.
    pub account: String,
    /// What the token may do.
    pub scope: Scope,
    /// When it was created (second precision).
    pub created_at: DateTime<Utc>,
    /// When it stops working, if ever.
    pub expires_at: Option<DateTime<Utc>>,
    /// When it was revoked, if it was.
    pub revoked_at: Option<DateTime<Utc>>,
    /// When it last authenticated, to about a minute (updates are throttled), if ever.
    pub last_used_at: Option<DateTime<Utc>>,
}

impl Store {
    /// Creates a token for `account`; returns its public record and the plaintext (show it once:
    /// it is not stored and cannot be recovered). `expires_in: None` never expires.
    pub async fn create_token(
        &self,
        account: &str,
        scope: Scope,
        expires_in: Option<Duration>,
    ) -> Result<(TokenRecord, ApiToken), StoreError> {
        let owner = self.existing_account(account).await?;
        let expires_at = expires_in
            .map(|duration| {
                let seconds = i64::try_from(duration.as_secs()).context("expiry too far away")?;
                unix_now()
                    .checked_add(seconds)
                    .context("expiry too far away")
            })
            .transpose()
            .db("computing the expiry")?;
        let token = ApiToken::generate();
        let mut connection = self.pool().acquire().await.db("creating a token")?;
        let record = insert_token(&mut connection, &owner, scope, &token, expires_at).await?;
        tracing::info!(token.id = %record.id, account.id = owner.id, scope = %scope, "created a token");
        Ok((record, token))
    }

    /// Registers a given plaintext token for `account` (the bootstrap admin token from
    /// `SLUICE_ADMIN_TOKEN`). Idempotent: a token already registered to this account is
    /// returned as it is stored (its original scope, and revoked if it was revoked); one
    /// registered to another account is refused with [`StoreError::TokenInUse`].
    pub async fn register_token(
        &self,
        account: &str,
        scope: Scope,
        token: &ApiToken,
    ) -> Result<TokenRecord, StoreError> {
        let owner = self.existing_account(account).await?;
        // `ON CONFLICT DO NOTHING` rather than look-then-insert: two processes starting at
        // once with the same `SLUICE_ADMIN_TOKEN` must both succeed.
        sqlx::query(
            "INSERT INTO tokens (id, account_id, scope, hash, created_at) \
             VALUES ($1, $2, $3, $4, $5) ON CONFLICT (hash) DO NOTHING",
        )
        .bind(new_token_id())
        .bind(owner.id)
        .bind(scope.as_str())
        .bind(token.hash())
        .bind(unix_now())
        .execute(self.pool())
        .await
        .db("registering a token")?;
        let sql = format!(
            "SELECT {RECORD_COLUMNS} FROM tokens t JOIN accounts a ON a.id = t.account_id \
             WHERE t.hash = $1"
        );
        let row = sqlx::query(&sql)
            .bind(token.hash())
            .fetch_one(self.pool())
            .await
            .db("reading a registered token")?;
        let record = record_from_row(&row).db("reading a registered token")?;
        if record.account != owner.name {
            return Err(StoreError::TokenInUse);
        }
        Ok(record)
    }

    /// Every token of `account` (revoked and expired ones included), oldest first.
    pub async fn tokens(&self, account: &str) -> Result<Vec<TokenRecord>, StoreError> {
        let owner = self.existing_account(account).await?;
        let sql = format!(
            "SELECT {RECORD_COLUMNS} FROM tokens t JOIN accounts a ON a.id = t.account_id \
             WHERE t.account_id = $1 ORDER BY t.created_at, t.id"
        );
        let rows = sqlx::query(&sql)
            .bind(owner.id)
            .fetch_all(self.pool())
            .await
            .db("listing tokens")?;
        rows.iter()
            .map(record_from_row)
            .collect::<anyhow::Result<_>>()
            .db("reading tokens")
    }

    /// Revokes the token with public id `id`; `false` if there is no such token or it was
    /// already revoked (the first revocation time is kept). Records a `token_revoked` change in
    /// the same transaction, so live connections using the token are closed.
    pub async fn revoke_token(&self, id: &str) -> Result<bool, StoreError> {
        let mut transaction = self.pool().begin().await.db("starting a revocation")?;
        let account_id: Option<i64> = sqlx::query(
            "UPDATE tokens SET revoked_at = $1 WHERE id = $2 AND revoked_at IS NULL \
             RETURNING account_id",
        )
        .bind(unix_now())
        .bind(id)
        .fetch_optional(&mut *transaction)
        .await
        .db("revoking a token")?
        .map(|row| row.try_get("account_id"))
        .transpose()
        .db("revoking a token")?;
        let Some(account_id) = account_id else {
            transaction
                .rollback()
                .await
                .db("rolling back a revocation")?;
            return Ok(false);
        };
        record_change(
            &mut transaction,
            self.backend(),
            NewChange::TokenRevoked {
                account_id,
                token_id: id,
            },
        )
        .await?;
        transaction.commit().await.db("committing a revocation")?;
        tracing::info!(token.id = %id, account.id = account_id, "revoked a token");
        Ok(true)
    }

    pub(crate) async fn existing_account(&self, name: &str) -> Result<Account, StoreError> {
        self.account(name)
            .await?
            .ok_or_else(|| StoreError::UnknownAccount(name.to_owned()))
    }
}

/// Inserts a token for `account`; `expires_at` in unix seconds.
pub(crate) async fn insert_token(
    connection: &mut AnyConnection,
    account: &Account,
    scope: Scope,
    token: &ApiToken,
    expires_at: Option<i64>,
) -> Result<TokenRecord, StoreError> {
    let id = new_token_id();
    let created_at = unix_now();
    let result = sqlx::query(
        "INSERT INTO tokens (id, account_id, scope, hash, created_at, expires_at) \
         VALUES ($1, $2, $3, $4, $5, $6)",
    )
    .bind(&id)
    .bind(account.id)
    .bind(scope.as_str())
    .bind(token.hash())
    .bind(created_at)
    .bind(expires_at)
    .execute(&mut *connection)
    .await;
    match result {
        Ok(_) => {}
        // Only a fixed (bootstrap) token can collide: generated ones carry 178 random bits.
        Err(error) if violates(&error, ErrorKind::UniqueViolation) => {
            return Err(StoreError::TokenInUse)
        }
        Err(error) => return Err(error).db("creating a token"),
    }
    Ok(TokenRecord {
        id,
        account: account.name.clone(),
        scope,
        created_at: from_unix(created_at).db("creating a token")?,
        expires_at: from_unix_opt(expires_at).db("creating a token")?,
        revoked_at: None,
        last_used_at: None,
    })
}

/// A new public token id.
fn new_token_id() -> String {
    format!("{TOKEN_ID_PREFIX}{}", random_base62(TOKEN_ID_RANDOM_LEN))
}

/// Decodes the [`RECORD_COLUMNS`] of a row.
fn record_from_row(row: &AnyRow) -> anyhow::Result<TokenRecord> {
    let scope: String = row.try_get("scope")?;
    Ok(TokenRecord {
        id: row.try_get("id")?,
        account: row.try_get("account")?,
        scope: scope.parse()?,
        created_at: from_unix(row.try_get("created_at")?)?,
        expires_at: from_unix_opt(row.try_get("expires_at")?)?,
        revoked_at: from_unix_opt(row.try_get("revoked_at")?)?,
        last_used_at: from_unix_opt(row.try_get("last_used_at")?)?,
    })
}
