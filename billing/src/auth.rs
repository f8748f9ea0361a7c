//! Authenticating a presented API token into a [`Principal`]: who is calling, on which plan,
//! with which scope.

use chrono::{DateTime, Utc};
use domain::Plan;
use sqlx::Row;

use crate::plans::{plan_from_row, PLAN_COLUMNS};
use crate::store::{from_unix_opt, unix_now, Store};
use crate::token::{ApiToken, Scope};

/// The one 401 body for a bad API token, on the gateway and the account API alike: the same
/// for every kind of bad credential, so a caller learns nothing about which part was wrong.
pub const UNAUTHORIZED_MESSAGE: &str = "missing or invalid API token: send `Authorization: \
     Bearer <token>` (the stream also takes `?access_token=<token>`); create one with `sluice \
     tokens create --account NAME`";

/// `last_used_at` is refreshed at most this often per token, so that frequent authentications
/// (every handshake, periodic re-checks of live connections) do not turn into a write each.
const LAST_USED_RESOLUTION_SECONDS: i64 = 60;

/// An authenticated caller.
#[derive(Debug, Clone, PartialEq)]
pub struct Principal {
    /// Database id of the account.
    pub account_id: i64,
    /// Account name (the provider name of what it publishes).
    pub account: String,
    /// The account's current plan.
    pub plan: Plan,
    /// The token's scope.
    pub scope: Scope,
    /// The token's public id (`tok_…`), safe to log.
    pub token_id: String,
    /// When the token expires, if ever.
    pub expires_at: Option<DateTime<Utc>>,
}

/// Why a token was refused. Messages are safe to show to the caller: they never include the
/// token. (The gateway answers every variant but `Db` with the same 401, so the message is
/// for logs and the CLI.)
#[derive(Debug, thiserror::Error)]
pub enum AuthError {
    /// Not a well-formed token, or its checksum does not match. Decided without the database.
    #[error("malformed API token")]
    Malformed,
    /// Well-formed but not a token of this deployment.
    #[error("unknown API token")]
    Unknown,
    /// The token was revoked.
    #[error("API token revoked")]
    Revoked,
    /// The token has expired.
    #[error("API token expired")]
    Expired,
    /// The database failed; the token's validity is unknown.
    #[error("the account database is unavailable")]
    Db(#[source] anyhow::Error),
}

impl Store {
    /// Authenticates a presented token. Format and checksum are checked first, so garbage and
    /// typos never reach the database; then the token is looked up by its SHA-256 together with
    /// its account and the account's current plan (so a plan change applies at once).
    ///
    /// The lookup is an indexed equality match on the hash, not a comparison of secrets, so
    /// there is no timing side channel on the token to protect.
    pub async fn authenticate(&self, presented: &str) -> Result<Principal, AuthError> {
        let token = ApiToken::parse(presented).map_err(|_| AuthError::Malformed)?;
        let columns = PLAN_COLUMNS.as_str();
        let sql = format!(
            "SELECT t.id AS token_id, t.scope, t.expires_at, t.revoked_at, t.last_used_at, \
             a.id AS account_id, a.name AS account_name, {columns} \
             FROM tokens t JOIN accounts a ON a.id = t.account_id JOIN plans p ON p.name = a.plan \
             WHERE t.hash = $1"
        );
        let row = sqlx::query(&sql)
            .bind(token.hash())
            .fetch_optional(self.pool())
            .await
            .map_err(|error| {
                AuthError::Db(anyhow::Error::new(error).context("looking up a token"))
            })?
            .ok_or(AuthError::Unknown)?;
        let decode = || -> anyhow::Result<_> {
            let scope: String = row.try_get("scope")?;
            let revoked_at: Option<i64> = row.try_get("revoked_at")?;
            let last_used_at: Option<i64> = row.try_get("last_used_at")?;
            let expires_at: Option<i64> = row.try_get("expires_at")?;
            let principal = Principal {
                account_id: row.try_get("account_id")?,
                account: row.try_get("account_name")?,
                plan: plan_from_row(&row)?,
                scope: scope.parse()?,
                token_id: row.try_get("token_id")?,
                expires_at: from_unix_opt(expires_at)?,
            };
            Ok((principal, expires_at, revoked_at, last_used_at))
        };
        let (principal, expires_at, revoked_at, last_used_at) =
            decode().map_err(|error| AuthError::Db(error.context("reading a token")))?;

        let now = unix_now();
        if revoked_at.is_some() {
            return Err(AuthError::Revoked);
        }
        if expires_at.is_some_and(|expires_at| expires_at <= now) {
            return Err(AuthError::Expired);
        }
        if last_used_at
            .is_none_or(|last_used_at| now - last_used_at >= LAST_USED_RESOLUTION_SECONDS)
        {
            self.touch_token(&principal.token_id, now).await;
        }
        Ok(principal)
    }

    /// Records that a token was used. Best effort: bookkeeping must not refuse a valid token
    /// when, say, SQLite is busy with a long write.
    async fn touch_token(&self, token_id: &str, now: i64) {
        let result = sqlx::query("UPDATE tokens SET last_used_at = $1 WHERE id = $2")
            .bind(now)
            .bind(token_id)
            .execute(self.pool())
            .await;
        if let Err(error) = result {
            tracing::warn!(token.id = %token_id, error = %error, "could not record token use");
        }
    }
}
