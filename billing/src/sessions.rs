//! Browser sessions: a random 256-bit session id the browser keeps in a cookie, stored only as
//! its SHA-256, with the CSRF token the page echoes on state-changing requests.

use std::fmt;
use std::time::Duration;

use chrono::{DateTime, Utc};
use domain::Plan;
use rand::RngCore;
use sha2::{Digest, Sha256};
use sqlx::Row;

use crate::plans::{plan_from_row, PLAN_COLUMNS};
use crate::store::{from_unix, unix_now, DbContext, Store, StoreError};

/// Length of a session secret's text: 32 random bytes as lower-case hex.
pub const SESSION_SECRET_LEN: usize = 64;

/// A session id as the browser holds it (the cookie's value). Only its SHA-256 is stored;
/// `Debug` redacts it.
#[derive(Clone, PartialEq, Eq)]
pub struct SessionSecret(String);

impl SessionSecret {
    /// A new secret: 256 bits from the operating system's CSPRNG.
    pub fn generate() -> SessionSecret {
        SessionSecret(random_hex())
    }

    /// A presented secret, if it has the right shape (64 lower-case hex digits). Anything else
    /// is refused without a database query.
    pub fn parse(text: &str) -> Option<SessionSecret> {
        (text.len() == SESSION_SECRET_LEN
            && text
                .bytes()
                .all(|byte| byte.is_ascii_digit() || (b'a'..=b'f').contains(&byte)))
        .then(|| SessionSecret(text.to_owned()))
    }

    /// The secret's text, to put in the cookie. Never log it.
    pub fn expose(&self) -> &str {
        &self.0
    }

    /// Hex SHA-256 of the secret: the `sessions.id_hash` column.
    fn hash(&self) -> String {
        hex::encode(Sha256::digest(self.0.as_bytes()))
    }
}

impl fmt::Debug for SessionSecret {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str("SessionSecret(redacted)")
    }
}

/// A live session: who is signed in, to which account, and the CSRF token to expect.
#[derive(Debug, Clone, PartialEq)]
pub struct SessionInfo {
    /// The signed-in user.
    pub user_id: i64,
    /// Name of the user's account.
    pub account: String,
    /// Database id of the user's account.
    pub account_id: i64,
    /// The account's current plan (joined in at lookup, so plan changes apply at once).
    pub plan: Plan,
    /// What `X-CSRF-Token` must equal on state-changing requests of this session.
    pub csrf_token: String,
    /// When the session ends (second precision).
    pub expires_at: DateTime<Utc>,
}

impl Store {
    /// Starts a session for `user_id` lasting `ttl`; returns the secret for the cookie and the
    /// session's CSRF token. Also removes sessions that have already expired, so the table
    /// does not grow without bound.
    pub async fn create_session(
        &self,
        user_id: i64,
        ttl: Duration,
    ) -> Result<(SessionSecret, String), StoreError> {
        let secret = SessionSecret::generate();
        let csrf_token = random_hex();
        let now = unix_now();
        let ttl = i64::try_from(ttl.as_secs()).unwrap_or(i64::MAX);
        sqlx::query("DELETE FROM sessions WHERE expires_at <= $1")
            .bind(now)
            .execute(self.pool())
            .await
            .db("removing expired sessions")?;
        sqlx::query(
            "INSERT INTO sessions (id_hash, user_id, created_at, expires_at, csrf_token) \
             VALUES ($1, $2, $3, $4, $5)",
        )
        .bind(secret.hash())
        .bind(user_id)
        .bind(now)
        .bind(now.saturating_add(ttl))
        .bind(&csrf_token)
        .execute(self.pool())
        .await
        .db("creating a session")?;
        tracing::info!(user.id = user_id, "started a session");
        Ok((secret, csrf_token))
    }

    /// The live session `secret` (the cookie's text) belongs to; `None` when it is malformed
    /// (no query), unknown or expired.
    pub async fn session(&self, secret: &str) -> Result<Option<SessionInfo>, StoreError> {
        let Some(secret) = SessionSecret::parse(secret) else {
            return Ok(None);
        };
        let columns = PLAN_COLUMNS.as_str();
        let sql = format!(
            "SELECT s.user_id, s.csrf_token, s.expires_at, a.id AS account_id, \
             a.name AS account_name, {columns} \
             FROM sessions s JOIN users u ON u.id = s.user_id \
             JOIN accounts a ON a.id = u.account_id JOIN plans p ON p.name = a.plan \
             WHERE s.id_hash = $1 AND s.expires_at > $2"
        );
        let row = sqlx::query(&sql)
            .bind(secret.hash())
            .bind(unix_now())
            .fetch_optional(self.pool())
            .await
            .db("looking up a session")?;
        let Some(row) = row else {
            return Ok(None);
        };
        let decode = || -> anyhow::Result<SessionInfo> {
            Ok(SessionInfo {
                user_id: row.try_get("user_id")?,
                account: row.try_get("account_name")?,
                account_id: row.try_get("account_id")?,
                plan: plan_from_row(&row)?,
                csrf_token: row.try_get("csrf_token")?,
                expires_at: from_unix(row.try_get("expires_at")?)?,
            })
        };
        decode().map(Some).db("reading a session")
    }

    /// Ends the session `secret` belongs to (signing out); whether there was one.
    pub async fn delete_session(&self, secret: &str) -> Result<bool, StoreError> {
        let Some(secret) = SessionSecret::parse(secret) else {
            return Ok(false);
        };
        let result = sqlx::query("DELETE FROM sessions WHERE id_hash = $1")
            .bind(secret.hash())
            .execute(self.pool())
            .await
            .db("ending a session")?;
        Ok(result.rows_affected() > 0)
    }
}

/// 32 bytes from the operating system's CSPRNG, as lower-case hex.
fn random_hex() -> String {
    let mut bytes = [0u8; 32];
    rand::rngs::OsRng.fill_bytes(&mut bytes);
    hex::encode(bytes)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn secrets_are_256_bit_hex_and_never_print() {
        let secret = SessionSecret::generate();
        assert_eq!(secret.expose().len(), SESSION_SECRET_LEN);
        assert_eq!(SessionSecret::parse(secret.expose()), Some(secret.clone()));
        assert_ne!(secret, SessionSecret::generate());
        assert_eq!(format!("{secret:?}"), "SessionSecret(redacted)");
        assert_ne!(secret.hash(), secret.expose());
        assert_eq!(secret.hash().len(), 64);
    }

    #[test]
    fn malformed_secrets_are_refused() {
        for text in [
            "",
            "abc",
            &"A".repeat(64),
            &"g".repeat(64),
            &"a".repeat(63),
            &"a".repeat(65),
        ] {
            assert_eq!(SessionSecret::parse(text), None, "{text:?}");
        }
    }
}
