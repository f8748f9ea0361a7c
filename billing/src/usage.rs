//! Usage metering per account and UTC day, for invoicing (docs/protocol.md §5.8): gateway nodes
//! add what they counted; accounts and admins read it back.
//!
//! Several nodes report for the same account and day, so counters are added (`delivered`,
//! `dropped`, `bytes`, `connections`) with an upsert rather than overwritten. The one exception
//! is `peak_connections`: each node only knows its own concurrent connections, so the stored
//! value is the largest peak any single node reported — a lower bound of the account's real
//! cluster-wide peak, exact when the account's connections sit on one node.

use chrono::NaiveDate;
use sqlx::any::AnyRow;
use sqlx::Row;

use crate::store::{DbContext, Store, StoreError};

/// The `day` column's text form: ISO 8601, which sorts like the dates it names.
const DAY_FORMAT: &str = "%Y-%m-%d";

/// What one node counted for one account since its last report.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct UsageDelta {
    /// Indicators delivered to the account's connections.
    pub delivered: u64,
    /// Indicators skipped over the rate limit (and announced to the client as `dropped`).
    pub dropped: u64,
    /// Bytes of frames sent to the account's connections.
    pub bytes: u64,
    /// Stream connections the account opened.
    pub connections_opened: u64,
    /// The most connections the account had open at once on the reporting node.
    pub peak_connections: u64,
}

/// An account's usage on one UTC day.
#[derive(Debug, Clone, PartialEq, Eq, serde::Serialize)]
#[cfg_attr(feature = "openapi", derive(utoipa::ToSchema))]
pub struct UsageDay {
    /// The day, `YYYY-MM-DD` (UTC).
    pub day: String,
    /// Indicators delivered.
    pub delivered: u64,
    /// Indicators dropped over the rate limit.
    pub dropped: u64,
    /// Bytes sent.
    pub bytes: u64,
    /// Connections opened.
    pub connections: u64,
    /// The largest number of concurrent connections any single node reported (the max of
    /// per-node peaks, not their sum: see the module documentation).
    pub peak_connections: u64,
}

/// One account's usage over a period, with what an invoice needs: its plan and price now.
#[derive(Debug, Clone, PartialEq, Eq, serde::Serialize)]
pub struct UsageTotal {
    pub account: String,
    /// The account's plan when the totals are read (plan changes are not kept per day).
    pub plan: String,
    /// The plan's monthly price in cents, `None` for a contract plan.
    pub price_cents: Option<i64>,
    /// Days of the period with recorded usage.
    pub days: u64,
    pub delivered: u64,
    pub dropped: u64,
    pub bytes: u64,
    pub connections: u64,
    /// The largest peak of any day (see [`UsageDay::peak_connections`]).
    pub peak_connections: u64,
}

impl Store {
    /// Every account's totals over the days in [from, to], by account name; accounts without
    /// usage in the period are listed with zeros, so an invoice run sees every account.
    pub async fn usage_totals(
        &self,
        from: NaiveDate,
        to: NaiveDate,
    ) -> Result<Vec<UsageTotal>, StoreError> {
        // CAST: PostgreSQL's SUM of a BIGINT is a NUMERIC, which the Any driver cannot read.
        let rows = sqlx::query(
            "SELECT a.name AS account, a.plan AS plan, p.price_cents AS price_cents,              CAST(COUNT(u.day) AS BIGINT) AS days,              CAST(COALESCE(SUM(u.delivered), 0) AS BIGINT) AS delivered,              CAST(COALESCE(SUM(u.dropped), 0) AS BIGINT) AS dropped,              CAST(COALESCE(SUM(u.bytes), 0) AS BIGINT) AS bytes,              CAST(COALESCE(SUM(u.connections), 0) AS BIGINT) AS connections,              CAST(COALESCE(MAX(u.peak_connections), 0) AS BIGINT) AS peak_connections              FROM accounts a              LEFT JOIN plans p ON p.name = a.plan              LEFT JOIN usage_daily u ON u.account_id = a.id AND u.day >= $1 AND u.day <= $2              GROUP BY a.name, a.plan, p.price_cents ORDER BY a.name",
        )
        .bind(from.format(DAY_FORMAT).to_string())
        .bind(to.format(DAY_FORMAT).to_string())
        .fetch_all(self.pool())
        .await
        .db("reading usage totals")?;
        rows.iter()
            .map(usage_total_from_row)
            .collect::<anyhow::Result<_>>()
            .db("reading usage totals")
    }

    /// Adds deltas (peak = max) for each (account_id, day) in one transaction (upsert; ON CONFLICT works on both backends).
    ///
    /// All or nothing: an unknown `account_id` fails the whole batch, so a node can retry it.
    pub async fn record_usage(
        &self,
        entries: &[(i64, NaiveDate, UsageDelta)],
    ) -> Result<(), StoreError> {
        if entries.is_empty() {
            return Ok(());
        }
        let mut transaction = self.pool().begin().await.db("starting a usage report")?;
        for (account_id, day, delta) in entries {
            let column = |name: &str, value: u64| {
                i64::try_from(value).map_err(|_| {
                    StoreError::Db(anyhow::anyhow!("usage {name} = {value} is out of range"))
                })
            };
            sqlx::query(
                "INSERT INTO usage_daily \
                 (account_id, day, delivered, dropped, bytes, connections, peak_connections) \
                 VALUES ($1, $2, $3, $4, $5, $6, $7) \
                 ON CONFLICT (account_id, day) DO UPDATE SET \
                 delivered = usage_daily.delivered + excluded.delivered, \
                 dropped = usage_daily.dropped + excluded.dropped, \
                 bytes = usage_daily.bytes + excluded.bytes, \
                 connections = usage_daily.connections + excluded.connections, \
                 peak_connections = CASE \
                     WHEN excluded.peak_connections > usage_daily.peak_connections \
                     THEN excluded.peak_connections ELSE usage_daily.peak_connections END",
            )
            .bind(account_id)
            .bind(day.format(DAY_FORMAT).to_string())
            .bind(column("delivered", delta.delivered)?)
            .bind(column("dropped", delta.dropped)?)
            .bind(column("bytes", delta.bytes)?)
            .bind(column("connections_opened", delta.connections_opened)?)
            .bind(column("peak_connections", delta.peak_connections)?)
            .execute(&mut *transaction)
            .await
            .db("recording usage")?;
        }
        transaction.commit().await.db("committing a usage report")
    }

    /// An account's days in [from, to], oldest first.
    ///
    /// Only days with recorded usage are listed; a day without a row had none.
    pub async fn usage(
        &self,
        account: &str,
        from: NaiveDate,
        to: NaiveDate,
    ) -> Result<Vec<UsageDay>, StoreError> {
        let account = self
            .account(account)
            .await?
            .ok_or_else(|| StoreError::UnknownAccount(account.to_owned()))?;
        let rows = sqlx::query(
            "SELECT day, delivered, dropped, bytes, connections, peak_connections \
             FROM usage_daily WHERE account_id = $1 AND day >= $2 AND day <= $3 ORDER BY day",
        )
        .bind(account.id)
        .bind(from.format(DAY_FORMAT).to_string())
        .bind(to.format(DAY_FORMAT).to_string())
        .fetch_all(self.pool())
        .await
        .db("reading usage")?;
        rows.iter()
            .map(usage_day_from_row)
            .collect::<anyhow::Result<_>>()
            .db("reading usage")
    }
}

fn usage_total_from_row(row: &AnyRow) -> anyhow::Result<UsageTotal> {
    let counter = |column: &str| -> anyhow::Result<u64> {
        let value: i64 = row.try_get(column)?;
        u64::try_from(value).map_err(|_| anyhow::anyhow!("usage {column} = {value} is negative"))
    };
    Ok(UsageTotal {
        account: row.try_get("account")?,
        plan: row.try_get("plan")?,
        price_cents: row.try_get("price_cents")?,
        days: counter("days")?,
        delivered: counter("delivered")?,
        dropped: counter("dropped")?,
        bytes: counter("bytes")?,
        connections: counter("connections")?,
        peak_connections: counter("peak_connections")?,
    })
}

fn usage_day_from_row(row: &AnyRow) -> anyhow::Result<UsageDay> {
    let counter = |column: &str| -> anyhow::Result<u64> {
        let value: i64 = row.try_get(column)?;
        u64::try_from(value).map_err(|_| anyhow::anyhow!("usage {column} = {value} is negative"))
    };
    Ok(UsageDay {
        day: row.try_get("day")?,
        delivered: counter("delivered")?,
        dropped: counter("dropped")?,
        bytes: counter("bytes")?,
        connections: counter("connections")?,
        peak_connections: counter("peak_connections")?,
    })
}
