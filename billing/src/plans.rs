//! Plans as stored (SPEC §5): reading them into `domain::PlanLimits`.
//!
//! Plans are seeded by the first migration and edited by admins straight in the database, so
//! decoding checks every value rather than trusting it.

use std::time::Duration;

use anyhow::Context;
use domain::{PlanLimits, Tlp};
use sqlx::any::AnyRow;
use sqlx::Row;

use crate::store::{DbContext, Store, StoreError};

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
