//! Plans as stored (SPEC §5): reading them into `domain::PlanLimits`, and admins editing them.
//!
//! Plans are seeded by the first migration and may be edited straight in the database, so
//! decoding checks every value rather than trusting it.

use std::time::Duration;

use anyhow::Context;
use domain::{PlanLimits, Tlp};
use sqlx::any::AnyRow;
use sqlx::Row;

use crate::changes::{record_change, NewChange};
use crate::store::{unix_now, DbContext, Store, StoreError};

/// The plan columns of `plans p`, aliased with a `plan_` prefix so they can be selected next to
/// other tables' columns (`accounts.name`, …) without clashing.
pub(crate) const PLAN_COLUMNS: &str = "p.name AS plan_name, p.price_cents AS plan_price_cents, \
     p.firehose AS plan_firehose, p.sample_per_second AS plan_sample_per_second, \
     p.max_connections AS plan_max_connections, p.rate_per_second AS plan_rate_per_second, \
     p.burst AS plan_burst, p.replay_window_seconds AS plan_replay_window_seconds, \
     p.max_tlp AS plan_max_tlp, p.correlated AS plan_correlated";

impl Store {
    /// Every plan, cheapest first, contract-priced plans last.
    pub async fn plans(&self) -> Result<Vec<PlanLimits>, StoreError> {
        let sql = format!(
            "SELECT {PLAN_COLUMNS} FROM plans p \
             ORDER BY p.price_cents IS NULL, p.price_cents, p.name"
        );
        let rows = sqlx::query(&sql)
            .fetch_all(self.pool())
            .await
            .db("listing plans")?;
        rows.iter()
            .map(plan_from_row)
            .collect::<anyhow::Result<_>>()
            .db("reading plans")
    }

    /// The plan called `name`, if any.
    pub async fn plan(&self, name: &str) -> Result<Option<PlanLimits>, StoreError> {
        let sql = format!("SELECT {PLAN_COLUMNS} FROM plans p WHERE p.name = $1");
        let row = sqlx::query(&sql)
            .bind(name)
            .fetch_optional(self.pool())
            .await
            .db("looking up a plan")?;
        row.as_ref()
            .map(plan_from_row)
            .transpose()
            .db("reading a plan")
    }

    /// Edits a plan's limits (admin); records `plan_edited`. Name must exist.
    ///
    /// Every account on the plan carries the new limits from its next authentication, and live
    /// connections adopt them through the change log. Plans cannot be renamed here: the name
    /// selects the plan.
    pub async fn update_plan(&self, plan: &PlanLimits) -> Result<(), StoreError> {
        if plan.price_cents.is_some_and(|cents| cents < 0) {
            return Err(StoreError::InvalidPlan(format!(
                "price_cents must not be negative (got {})",
                plan.price_cents.unwrap_or_default()
            )));
        }
        let replay_window_seconds = i64::try_from(plan.replay_window.as_secs()).map_err(|_| {
            StoreError::InvalidPlan(format!(
                "replay_window of {} s is out of range",
                plan.replay_window.as_secs()
            ))
        })?;
        let mut transaction = self.pool().begin().await.db("starting a plan edit")?;
        let updated = sqlx::query(
            "UPDATE plans SET price_cents = $1, firehose = $2, sample_per_second = $3, \
             max_connections = $4, rate_per_second = $5, burst = $6, replay_window_seconds = $7, \
             max_tlp = $8, correlated = $9, updated_at = $10 WHERE name = $11",
        )
        .bind(plan.price_cents)
        .bind(plan.firehose)
        .bind(plan.sample_per_second.map(i64::from))
        .bind(i64::from(plan.max_connections))
        .bind(plan.rate_per_second.map(i64::from))
        .bind(plan.burst.map(i64::from))
        .bind(replay_window_seconds)
        .bind(plan.max_tlp.as_str())
        .bind(plan.correlated)
        .bind(unix_now())
        .bind(&plan.name)
        .execute(&mut *transaction)
        .await
        .db("editing a plan")?;
        if updated.rows_affected() == 0 {
            transaction
                .rollback()
                .await
                .db("rolling back a plan edit")?;
            return Err(StoreError::UnknownPlan(plan.name.clone()));
        }
        record_change(
            &mut transaction,
            self.backend(),
            NewChange::PlanEdited { plan: &plan.name },
        )
        .await?;
        transaction.commit().await.db("committing a plan edit")?;
        tracing::info!(plan = %plan.name, "edited a plan's limits");
        Ok(())
    }
}

/// Decodes the `plan_*` columns of a row (see [`PLAN_COLUMNS`]).
pub(crate) fn plan_from_row(row: &AnyRow) -> anyhow::Result<PlanLimits> {
    let name: String = row.try_get("plan_name")?;
    let decode = || -> anyhow::Result<PlanLimits> {
        let max_tlp: String = row.try_get("plan_max_tlp")?;
        let replay_window_seconds: i64 = row.try_get("plan_replay_window_seconds")?;
        Ok(PlanLimits {
            name: name.clone(),
            price_cents: row.try_get("plan_price_cents")?,
            firehose: flag(row, "plan_firehose")?,
            sample_per_second: optional_u32(row, "plan_sample_per_second")?,
            max_connections: required_u32(row, "plan_max_connections")?,
            rate_per_second: optional_u32(row, "plan_rate_per_second")?,
            burst: optional_u32(row, "plan_burst")?,
            replay_window: Duration::from_secs(
                u64::try_from(replay_window_seconds).context("negative replay_window_seconds")?,
            ),
            max_tlp: max_tlp.parse::<Tlp>()?,
            correlated: flag(row, "plan_correlated")?,
        })
    };
    decode().with_context(|| format!("plan `{name}` has an invalid value"))
}

/// A boolean column: PostgreSQL `BOOLEAN`, or SQLite `INTEGER` 0/1 (SQLite has no boolean, and
/// sqlx's `Any` driver hands it over as an integer).
pub(crate) fn flag(row: &AnyRow, column: &str) -> anyhow::Result<bool> {
    if let Ok(value) = row.try_get::<bool, _>(column) {
        return Ok(value);
    }
    let value: i64 = row
        .try_get(column)
        .with_context(|| format!("column {column} is neither boolean nor integer"))?;
    Ok(value != 0)
}

fn required_u32(row: &AnyRow, column: &str) -> anyhow::Result<u32> {
    let value: i64 = row.try_get(column)?;
    u32::try_from(value).with_context(|| format!("{column} = {value} is out of range"))
}

fn optional_u32(row: &AnyRow, column: &str) -> anyhow::Result<Option<u32>> {
    let value: Option<i64> = row.try_get(column)?;
    value
        .map(|value| {
            u32::try_from(value).with_context(|| format!("{column} = {value} is out of range"))
        })
        .transpose()
}
