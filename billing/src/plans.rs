//! Plans as stored (docs/protocol.md §5): reading them into `domain::Plan`, and admins editing
//! them.
//!
//! Plans are seeded by the first migration and may be edited straight in the database, so
//! decoding checks every value rather than trusting it. This file is the one place where a
//! limit meets its column: [`LIMIT_COLUMNS`] names them, [`limits_from_row`] reads them and
//! [`bind_limits`] writes them, side by side.

use std::sync::LazyLock;
use std::time::Duration;

use anyhow::Context;
use domain::{Limits, Plan, Tlp};
use sqlx::any::{AnyArguments, AnyRow};
use sqlx::query::Query;
use sqlx::{Any, Row};

use crate::changes::{record_change, NewChange};
use crate::store::{unix_now, DbContext, Store, StoreError};

/// The columns of `plans` that hold a [`Limits`] field, in the order [`bind_limits`] binds them.
const LIMIT_COLUMNS: [&str; 8] = [
    "firehose",
    "sample_per_second",
    "max_connections",
    "rate_per_second",
    "burst",
    "replay_window_seconds",
    "max_tlp",
    "correlated",
];

/// The plan columns of `plans p`, aliased with a `plan_` prefix so they can be selected next to
/// other tables' columns (`accounts.name`, …) without clashing.
pub(crate) static PLAN_COLUMNS: LazyLock<String> = LazyLock::new(|| {
    ["name", "price_cents"]
        .iter()
        .chain(&LIMIT_COLUMNS)
        .map(|column| format!("p.{column} AS plan_{column}"))
        .collect::<Vec<_>>()
        .join(", ")
});

/// `UPDATE plans SET price_cents = $1, <each limit> = $n, updated_at = … WHERE name = …`.
static UPDATE_PLAN: LazyLock<String> = LazyLock::new(|| {
    let limits: Vec<String> = LIMIT_COLUMNS
        .iter()
        .enumerate()
        .map(|(n, column)| format!("{column} = ${}", n + 2))
        .collect();
    let next = LIMIT_COLUMNS.len() + 2;
    format!(
        "UPDATE plans SET price_cents = $1, {}, updated_at = ${next} WHERE name = ${}",
        limits.join(", "),
        next + 1
    )
});

impl Store {
    /// Every plan, cheapest first, contract-priced plans last.
    pub async fn plans(&self) -> Result<Vec<Plan>, StoreError> {
        let sql = format!(
            "SELECT {} FROM plans p ORDER BY p.price_cents IS NULL, p.price_cents, p.name",
            *PLAN_COLUMNS
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
    pub async fn plan(&self, name: &str) -> Result<Option<Plan>, StoreError> {
        let sql = format!("SELECT {} FROM plans p WHERE p.name = $1", *PLAN_COLUMNS);
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
    pub async fn update_plan(&self, plan: &Plan) -> Result<(), StoreError> {
        if plan.price_cents.is_some_and(|cents| cents < 0) {
            return Err(StoreError::InvalidPlan(format!(
                "price_cents must not be negative (got {})",
                plan.price_cents.unwrap_or_default()
            )));
        }
        // Checked before anything is written (binding cannot fail).
        i64::try_from(plan.limits.replay_window.as_secs()).map_err(|_| {
            StoreError::InvalidPlan(format!(
                "replay_window of {} s is out of range",
                plan.limits.replay_window.as_secs()
            ))
        })?;
        let mut transaction = self.pool().begin().await.db("starting a plan edit")?;
        let query = sqlx::query(&UPDATE_PLAN).bind(plan.price_cents);
        let updated = bind_limits(query, &plan.limits)
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
pub(crate) fn plan_from_row(row: &AnyRow) -> anyhow::Result<Plan> {
    let name: String = row.try_get("plan_name")?;
    let decode = || -> anyhow::Result<Plan> {
        Ok(Plan {
            name: name.clone(),
            price_cents: row.try_get("plan_price_cents")?,
            limits: limits_from_row(row)?,
        })
    };
    decode().with_context(|| format!("plan `{name}` has an invalid value"))
}

/// Reads the [`LIMIT_COLUMNS`] (as `plan_<column>`).
fn limits_from_row(row: &AnyRow) -> anyhow::Result<Limits> {
    let max_tlp: String = row.try_get("plan_max_tlp")?;
    let replay_window_seconds: i64 = row.try_get("plan_replay_window_seconds")?;
    Ok(Limits {
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
}

/// Binds the [`LIMIT_COLUMNS`], in their order.
fn bind_limits<'q>(
    query: Query<'q, Any, AnyArguments<'q>>,
    limits: &Limits,
) -> Query<'q, Any, AnyArguments<'q>> {
    query
        .bind(limits.firehose)
        .bind(limits.sample_per_second.map(i64::from))
        .bind(i64::from(limits.max_connections))
        .bind(limits.rate_per_second.map(i64::from))
        .bind(limits.burst.map(i64::from))
        .bind(i64::try_from(limits.replay_window.as_secs()).unwrap_or(i64::MAX))
        .bind(limits.max_tlp.as_str())
        .bind(limits.correlated)
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
