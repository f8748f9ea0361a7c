//! The change log: every state change live connections must follow, for gateway nodes to poll.
//!
//! A plan change, a plan edit or a revocation is written together with a row in `changes`, in
//! the same transaction, so a node that polls [`Store::changes_after`] sees a change exactly
//! when the change itself is visible, never before and never only one of the two.
//!
//! Polling `id > last seen` is only sound if ids become visible in id order: otherwise a
//! transaction holding id 5 could commit after one holding id 6 was already read, and a poller
//! past 6 would never see 5. SQLite has a single writer, so commit order is id order there. On
//! PostgreSQL identity values are handed out at insert time, not at commit, so every writer
//! takes an `EXCLUSIVE` lock on `changes` (readers are not blocked) just before its insert and
//! holds it to commit. The insert is the last statement of each such transaction, so a writer
//! holding the lock never waits for anything else and the lock cannot take part in a deadlock.
//! Plan changes are rare; serialising their last few milliseconds costs nothing.
//!
//! Rows older than [`CHANGE_RETENTION_SECONDS`] are pruned on insert, so the table stays small.
//! A node that could not poll for longer than that must re-check its connections another way.

use std::time::Duration;

use domain::Plan;
use sqlx::any::AnyRow;
use sqlx::{AnyConnection, Row};

use crate::plans::{plan_from_row, PLAN_COLUMNS};
use crate::store::{unix_now, Backend, DbContext, Store, StoreError};

/// How long changes are kept: far longer than any poll interval, short enough to stay small.
pub const CHANGE_RETENTION: Duration = Duration::from_secs(CHANGE_RETENTION_SECONDS as u64);
const CHANGE_RETENTION_SECONDS: i64 = 24 * 60 * 60;

const KIND_ACCOUNT_PLAN: &str = "account_plan";
const KIND_PLAN_EDITED: &str = "plan_edited";
const KIND_TOKEN_REVOKED: &str = "token_revoked";

/// What changed, with what live connections need to follow it.
#[derive(Debug, Clone, PartialEq)]
pub enum ChangeKind {
    /// An account moved to another plan: its connections adopt `plan`'s limits.
    ///
    /// `plan` is the account's plan *when the log is read*, not when the row was written: a
    /// node catching up on several changes of one account applies the current plan each time,
    /// which is what it must end with anyway.
    AccountPlan {
        /// The account whose plan changed.
        account_id: i64,
        /// The account's current plan and its current limits.
        plan: Plan,
    },
    /// An admin edited a plan's limits: every connection on that plan adopts them.
    PlanEdited {
        /// The plan, with its limits as they are when the log is read.
        plan: Plan,
    },
    /// A token was revoked: connections authenticated with it close (4001).
    TokenRevoked {
        /// The account that owned the token.
        account_id: i64,
        /// The token's public id (`tok_…`).
        token_id: String,
    },
}

/// One entry of the change log.
#[derive(Debug, Clone, PartialEq)]
pub struct Change {
    /// Position in the log; increases with every change and is never reused.
    pub id: i64,
    /// What changed.
    pub kind: ChangeKind,
}

/// A change to record, inside the transaction that makes it.
#[derive(Debug, Clone, Copy)]
pub(crate) enum NewChange<'a> {
    AccountPlan { account_id: i64, plan: &'a str },
    PlanEdited { plan: &'a str },
    TokenRevoked { account_id: i64, token_id: &'a str },
}

impl Store {
    /// Changes with id > after, oldest first, at most `limit` (the plan limits resolved at read time).
    ///
    /// Rows of a kind this version does not know (written by a newer node during a rolling
    /// upgrade) are skipped with a warning, as are plan edits of a plan that no longer exists:
    /// no connection can be on it.
    pub async fn changes_after(&self, after: i64, limit: i64) -> Result<Vec<Change>, StoreError> {
        // For `account_plan` the account's current plan is joined in (falling back to the plan
        // the row names, should the account be gone); for `plan_edited` the named plan.
        let columns = PLAN_COLUMNS.as_str();
        let sql = format!(
            "SELECT c.id, c.kind, c.account_id, c.token_id, {columns} \
             FROM changes c \
             LEFT JOIN accounts a ON a.id = c.account_id \
             LEFT JOIN plans p ON p.name = CASE WHEN c.kind = '{KIND_ACCOUNT_PLAN}' \
                 THEN COALESCE(a.plan, c.plan) ELSE c.plan END \
             WHERE c.id > $1 ORDER BY c.id LIMIT $2"
        );
        let rows = sqlx::query(&sql)
            .bind(after)
            .bind(limit.max(0))
            .fetch_all(self.pool())
            .await
            .db("reading the change log")?;
        let mut changes = Vec::with_capacity(rows.len());
        for row in &rows {
            if let Some(change) = change_from_row(row).db("reading the change log")? {
                changes.push(change);
            }
        }
        Ok(changes)
    }

    /// The newest change id (0 if none): a node starts polling from here.
    pub async fn latest_change_id(&self) -> Result<i64, StoreError> {
        let row = sqlx::query("SELECT COALESCE(MAX(id), 0) AS latest FROM changes")
            .fetch_one(self.pool())
            .await
            .db("reading the newest change id")?;
        row.try_get::<i64, _>("latest")
            .db("reading the newest change id")
    }
}

/// Records `change` on `connection`, which must be inside the transaction making the change,
/// as its last statement before commit (see the module documentation for why). Also prunes
/// expired rows.
pub(crate) async fn record_change(
    connection: &mut AnyConnection,
    backend: Backend,
    change: NewChange<'_>,
) -> Result<(), StoreError> {
    if backend == Backend::Postgres {
        // Released at commit; from here on ids are handed out and committed in order.
        sqlx::query("LOCK TABLE changes IN EXCLUSIVE MODE")
            .execute(&mut *connection)
            .await
            .db("locking the change log")?;
    }
    let (kind, account_id, plan, token_id) = match change {
        NewChange::AccountPlan { account_id, plan } => {
            (KIND_ACCOUNT_PLAN, Some(account_id), Some(plan), None)
        }
        NewChange::PlanEdited { plan } => (KIND_PLAN_EDITED, None, Some(plan), None),
        NewChange::TokenRevoked {
            account_id,
            token_id,
        } => (KIND_TOKEN_REVOKED, Some(account_id), None, Some(token_id)),
    };
    let now = unix_now();
    sqlx::query(
        "INSERT INTO changes (kind, account_id, plan, token_id, created_at) \
         VALUES ($1, $2, $3, $4, $5)",
    )
    .bind(kind)
    .bind(account_id)
    .bind(plan)
    .bind(token_id)
    .bind(now)
    .execute(&mut *connection)
    .await
    .db("recording a change")?;
    // Under the lock (PostgreSQL) or the write lock (SQLite) already held: no extra contention.
    sqlx::query("DELETE FROM changes WHERE created_at < $1")
        .bind(now - CHANGE_RETENTION_SECONDS)
        .execute(&mut *connection)
        .await
        .db("pruning the change log")?;
    Ok(())
}

/// Decodes a row of [`Store::changes_after`]'s query; `None` for rows to skip.
fn change_from_row(row: &AnyRow) -> anyhow::Result<Option<Change>> {
    let id: i64 = row.try_get("id")?;
    let kind: String = row.try_get("kind")?;
    let account_id: Option<i64> = row.try_get("account_id")?;
    let plan_name: Option<String> = row.try_get("plan_name")?;
    let plan = || -> anyhow::Result<Option<Plan>> {
        plan_name.as_ref().map(|_| plan_from_row(row)).transpose()
    };
    let missing = |what: &str| anyhow::anyhow!("change {id} ({kind}) has no {what}");
    let kind = match kind.as_str() {
        KIND_ACCOUNT_PLAN => ChangeKind::AccountPlan {
            account_id: account_id.ok_or_else(|| missing("account"))?,
            // The account's plan always exists (foreign key); only a row naming a deleted
            // plan for a deleted account could come back without one.
            plan: match plan()? {
                Some(plan) => plan,
                None => {
                    tracing::warn!(change.id = id, "skipping a plan change whose plan is gone");
                    return Ok(None);
                }
            },
        },
        KIND_PLAN_EDITED => match plan()? {
            Some(plan) => ChangeKind::PlanEdited { plan },
            None => {
                tracing::warn!(change.id = id, "skipping an edit of a plan that is gone");
                return Ok(None);
            }
        },
        KIND_TOKEN_REVOKED => ChangeKind::TokenRevoked {
            account_id: account_id.ok_or_else(|| missing("account"))?,
            token_id: row
                .try_get::<Option<String>, _>("token_id")?
                .ok_or_else(|| missing("token"))?,
        },
        other => {
            tracing::warn!(
                change.id = id,
                change.kind = other,
                "skipping a change of unknown kind"
            );
            return Ok(None);
        }
    };
    Ok(Some(Change { id, kind }))
}
