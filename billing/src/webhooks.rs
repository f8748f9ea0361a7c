//! Outbound webhook endpoints and their delivery state (docs/protocol.md §13): what an account
//! registers, and what the delivering node records — the cursor per endpoint, the batch in
//! flight, the lease that keeps one node per endpoint, and the delivery log.
//!
//! The rules of a URL are `domain::webhook`'s; the caller checks them before
//! [`Store::create_webhook`]. Delivery itself is the gateway's (`gateway::webhooks`).

use anyhow::Context;
use chrono::{DateTime, Utc};
use sqlx::any::AnyRow;
use sqlx::Row;

use crate::store::{from_unix, from_unix_opt, unix_now, DbContext, Store, StoreError};
use crate::token::random_base62;

/// Prefix of endpoint ids.
const WEBHOOK_ID_PREFIX: &str = "wh_";
/// Random base62 characters in an endpoint id.
const WEBHOOK_ID_RANDOM_LEN: usize = 12;
/// Prefix of signing secrets.
const SECRET_PREFIX: &str = "whsec_";
/// Random base62 characters in a signing secret (≈ 190 bits).
const SECRET_RANDOM_LEN: usize = 32;
/// Delivery-log rows kept per endpoint; older ones are pruned as new ones arrive.
pub const DELIVERY_LOG_ROWS: i64 = 1000;
/// Longest error text stored per delivery.
const MAX_ERROR_LEN: usize = 500;

const COLUMNS: &str = "w.id, a.name AS account, w.url, w.filter, w.format, w.created_at, \
     w.cursor, w.pending_attempts, w.last_success_at, w.last_error";

/// An endpoint as its account sees it (never its secret).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Webhook {
    /// `wh_` + 12 base62 characters.
    pub id: String,
    pub account: String,
    pub url: String,
    /// The stream filter, as a query string.
    pub filter: String,
    /// `native`, `slack` or `stix`.
    pub format: String,
    pub created_at: DateTime<Utc>,
    /// Delivered through this log position, if anything was.
    pub cursor: Option<String>,
    /// Failed attempts of the batch in flight.
    pub failing_attempts: u32,
    pub last_success_at: Option<DateTime<Utc>>,
    pub last_error: Option<String>,
}

/// What the delivering node reads of an endpoint: everything, secret included.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct WebhookJob {
    pub webhook: Webhook,
    /// The account's plan name now.
    pub plan: String,
    pub secret: String,
    /// The batch in flight.
    pub pending: Option<PendingBatch>,
}

/// A batch recorded before its first try.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct PendingBatch {
    /// Its idempotency key.
    pub key: String,
    /// The log position the cursor moves to once it is through.
    pub through: String,
    /// Indicators in it: a re-read must find as many, or the batch is gathered anew.
    pub count: usize,
}

/// One node's hold on one endpoint: every write of the delivery state names it, and is refused
/// once another holder (or a later lease of the same node) has taken over.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Lease {
    /// The endpoint's id.
    pub id: String,
    pub node: String,
    pub generation: i64,
}

/// What became of one attempt (or a gap), for the delivery log.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct DeliveryRecord {
    pub batch_key: String,
    /// 1 for the first try.
    pub attempt: u32,
    pub outcome: DeliveryOutcome,
    pub http_status: Option<u16>,
    pub error: Option<String>,
    pub indicators: u32,
    pub first_cursor: Option<String>,
    pub last_cursor: Option<String>,
}

/// One row of the delivery log, as read back.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Delivery {
    pub record: DeliveryRecord,
    pub at: DateTime<Utc>,
}

/// How an attempt ended.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum DeliveryOutcome {
    /// The receiver answered 2xx.
    Delivered,
    /// It did not; the batch will be tried again.
    Failed,
    /// The last try failed: the batch is given up on (its cursors say what to replay).
    DeadLetter,
    /// Indicators left the retained log (or the log was reset) before they were delivered.
    Gap,
}

impl DeliveryOutcome {
    pub fn as_str(self) -> &'static str {
        match self {
            DeliveryOutcome::Delivered => "delivered",
            DeliveryOutcome::Failed => "failed",
            DeliveryOutcome::DeadLetter => "dead_letter",
            DeliveryOutcome::Gap => "gap",
        }
    }

    pub fn parse(text: &str) -> anyhow::Result<Self> {
        Ok(match text {
            "delivered" => DeliveryOutcome::Delivered,
            "failed" => DeliveryOutcome::Failed,
            "dead_letter" => DeliveryOutcome::DeadLetter,
            "gap" => DeliveryOutcome::Gap,
            other => anyhow::bail!("unknown delivery outcome `{other}`"),
        })
    }
}

/// What [`Store::create_webhook`] stores.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct NewWebhook {
    pub url: String,
    pub filter: String,
    pub format: String,
}

impl Store {
    /// Registers an endpoint for `account` unless it already has `max` of them; returns it and
    /// its signing secret (shown once).
    pub async fn create_webhook(
        &self,
        account: &str,
        new: &NewWebhook,
        max: u32,
    ) -> Result<(Webhook, String), StoreError> {
        let owner = self.existing_account(account).await?;
        let mut transaction = self.pool().begin().await.db("registering a webhook")?;
        // Locks the account's row first (PostgreSQL: a row lock; SQLite: the write lock), so
        // two registrations at once cannot both see room for one more.
        sqlx::query("UPDATE accounts SET id = id WHERE id = $1")
            .bind(owner.id)
            .execute(&mut *transaction)
            .await
            .db("registering a webhook")?;
        let count: i64 = sqlx::query("SELECT COUNT(*) AS n FROM webhooks WHERE account_id = $1")
            .bind(owner.id)
            .fetch_one(&mut *transaction)
            .await
            .and_then(|row| row.try_get("n"))
            .db("counting webhooks")?;
        if count >= i64::from(max) {
            return Err(StoreError::Limit(format!(
                "the {} plan allows {max} webhook endpoint{}; delete one first or upgrade",
                owner.plan,
                if max == 1 { "" } else { "s" }
            )));
        }
        let id = format!(
            "{WEBHOOK_ID_PREFIX}{}",
            random_base62(WEBHOOK_ID_RANDOM_LEN)
        );
        let secret = format!("{SECRET_PREFIX}{}", random_base62(SECRET_RANDOM_LEN));
        sqlx::query(
            "INSERT INTO webhooks (id, account_id, url, filter, format, secret, created_at) \
             VALUES ($1, $2, $3, $4, $5, $6, $7)",
        )
        .bind(&id)
        .bind(owner.id)
        .bind(&new.url)
        .bind(&new.filter)
        .bind(&new.format)
        .bind(&secret)
        .bind(unix_now())
        .execute(&mut *transaction)
        .await
        .db("registering a webhook")?;
        transaction.commit().await.db("registering a webhook")?;
        tracing::info!(webhook.id = %id, account.id = owner.id, "registered a webhook");
        let webhook = self
            .webhook(account, &id)
            .await?
            .context("the new webhook is not there")
            .db("reading a new webhook")?;
        Ok((webhook, secret))
    }

    /// The account's endpoints, oldest first.
    pub async fn webhooks(&self, account: &str) -> Result<Vec<Webhook>, StoreError> {
        let owner = self.existing_account(account).await?;
        let sql = format!(
            "SELECT {COLUMNS} FROM webhooks w JOIN accounts a ON a.id = w.account_id \
             WHERE w.account_id = $1 ORDER BY w.created_at, w.id"
        );
        let rows = sqlx::query(&sql)
            .bind(owner.id)
            .fetch_all(self.pool())
            .await
            .db("listing webhooks")?;
        rows.iter()
            .map(webhook_from_row)
            .collect::<anyhow::Result<_>>()
            .db("reading webhooks")
    }

    /// One of the account's endpoints.
    pub async fn webhook(&self, account: &str, id: &str) -> Result<Option<Webhook>, StoreError> {
        let sql = format!(
            "SELECT {COLUMNS} FROM webhooks w JOIN accounts a ON a.id = w.account_id \
             WHERE w.id = $1 AND a.name = $2"
        );
        let row = sqlx::query(&sql)
            .bind(id)
            .bind(account)
            .fetch_optional(self.pool())
            .await
            .db("reading a webhook")?;
        row.as_ref()
            .map(webhook_from_row)
            .transpose()
            .db("reading a webhook")
    }

    /// Deletes one of the account's endpoints and its delivery log; false if it has none such.
    pub async fn delete_webhook(&self, account: &str, id: &str) -> Result<bool, StoreError> {
        let owner = self.existing_account(account).await?;
        let result = sqlx::query("DELETE FROM webhooks WHERE id = $1 AND account_id = $2")
            .bind(id)
            .bind(owner.id)
            .execute(self.pool())
            .await
            .db("deleting a webhook")?;
        Ok(result.rows_affected() == 1)
    }

    /// The endpoint's delivery log, newest first, at most `limit` rows; `outcome` narrows it.
    pub async fn webhook_deliveries(
        &self,
        id: &str,
        outcome: Option<DeliveryOutcome>,
        limit: u32,
    ) -> Result<Vec<Delivery>, StoreError> {
        let rows = sqlx::query(
            "SELECT batch_key, attempt, outcome, http_status, error, indicators, first_cursor, \
             last_cursor, at FROM webhook_deliveries \
             WHERE webhook_id = $1 AND ($2 = '' OR outcome = $2) ORDER BY id DESC LIMIT $3",
        )
        .bind(id)
        .bind(outcome.map_or("", DeliveryOutcome::as_str))
        .bind(i64::from(limit))
        .fetch_all(self.pool())
        .await
        .db("reading a delivery log")?;
        rows.iter()
            .map(delivery_from_row)
            .collect::<anyhow::Result<_>>()
            .db("reading a delivery log")
    }

    /// Takes the lease of every endpoint no other node holds (or whose lease has run out), and
    /// renews this node's own, until `until` (unix seconds). Returns the leases this node holds;
    /// a lease taken over (from another node, or this node's own after it lapsed) has a new
    /// generation.
    pub async fn claim_webhooks(&self, node: &str, until: i64) -> Result<Vec<Lease>, StoreError> {
        let rows = sqlx::query(
            "UPDATE webhooks SET \
             lease_gen = CASE WHEN lease_node = $1 AND lease_until >= $3 THEN lease_gen \
             ELSE lease_gen + 1 END, \
             lease_node = $1, lease_until = $2 \
             WHERE lease_node = $1 OR lease_node IS NULL OR lease_until < $3 \
             RETURNING id, lease_gen",
        )
        .bind(node)
        .bind(until)
        .bind(unix_now())
        .fetch_all(self.pool())
        .await
        .db("claiming webhooks")?;
        rows.iter()
            .map(|row| {
                Ok(Lease {
                    id: row.try_get("id")?,
                    node: node.to_owned(),
                    generation: row.try_get("lease_gen")?,
                })
            })
            .collect::<Result<_, sqlx::Error>>()
            .db("claiming webhooks")
    }

    /// Gives up this node's leases (at shutdown), so another node takes over at once.
    pub async fn release_webhooks(&self, node: &str) -> Result<(), StoreError> {
        sqlx::query("UPDATE webhooks SET lease_node = NULL, lease_until = 0 WHERE lease_node = $1")
            .bind(node)
            .execute(self.pool())
            .await
            .db("releasing webhooks")?;
        Ok(())
    }

    /// Whether `lease` is still held and unexpired (checked before each try of a batch).
    pub async fn holds_webhook(&self, lease: &Lease) -> Result<bool, StoreError> {
        let row = sqlx::query(
            "SELECT id FROM webhooks WHERE id = $1 AND lease_node = $2 AND lease_gen = $3 \
             AND lease_until >= $4",
        )
        .bind(&lease.id)
        .bind(&lease.node)
        .bind(lease.generation)
        .bind(unix_now())
        .fetch_optional(self.pool())
        .await
        .db("checking a webhook lease")?;
        Ok(row.is_some())
    }

    /// An endpoint as the holder of `lease` reads it; `None` once it is deleted or the lease
    /// is another's.
    pub async fn webhook_job(&self, lease: &Lease) -> Result<Option<WebhookJob>, StoreError> {
        let sql = format!(
            "SELECT {COLUMNS}, a.plan, w.secret, w.pending_key, w.pending_through, \
             w.pending_count FROM webhooks w JOIN accounts a ON a.id = w.account_id \
             WHERE w.id = $1 AND w.lease_node = $2 AND w.lease_gen = $3"
        );
        let row = sqlx::query(&sql)
            .bind(&lease.id)
            .bind(&lease.node)
            .bind(lease.generation)
            .fetch_optional(self.pool())
            .await
            .db("reading a webhook job")?;
        let Some(row) = row else { return Ok(None) };
        let job = (|| -> anyhow::Result<WebhookJob> {
            let key: Option<String> = row.try_get("pending_key")?;
            let through: Option<String> = row.try_get("pending_through")?;
            let count: i64 = row.try_get("pending_count")?;
            Ok(WebhookJob {
                webhook: webhook_from_row(&row)?,
                plan: row.try_get("plan")?,
                secret: row.try_get("secret")?,
                pending: key.zip(through).map(|(key, through)| PendingBatch {
                    key,
                    through,
                    count: usize::try_from(count).unwrap_or(0),
                }),
            })
        })()
        .db("reading a webhook job")?;
        Ok(Some(job))
    }

    /// Records the batch about to be sent, before the first try: after a crash the next holder
    /// sends exactly this batch again, under the same key. False if the lease was lost (or a
    /// batch is already in flight).
    pub async fn begin_webhook_batch(
        &self,
        lease: &Lease,
        batch: &PendingBatch,
    ) -> Result<bool, StoreError> {
        let result = sqlx::query(
            "UPDATE webhooks SET pending_key = $1, pending_through = $2, pending_count = $3, \
             pending_attempts = 0 \
             WHERE id = $4 AND lease_node = $5 AND lease_gen = $6 AND pending_key IS NULL",
        )
        .bind(&batch.key)
        .bind(&batch.through)
        .bind(i64::try_from(batch.count).unwrap_or(i64::MAX))
        .bind(&lease.id)
        .bind(&lease.node)
        .bind(lease.generation)
        .execute(self.pool())
        .await
        .db("recording a webhook batch")?;
        Ok(result.rows_affected() == 1)
    }

    /// Forgets the batch in flight `key` without moving the cursor (its contents changed: the
    /// next batch is gathered again from the cursor, under a new key). False if the lease was
    /// lost.
    pub async fn clear_webhook_batch(&self, lease: &Lease, key: &str) -> Result<bool, StoreError> {
        let result = sqlx::query(
            "UPDATE webhooks SET pending_key = NULL, pending_through = NULL, pending_count = 0, \
             pending_attempts = 0 \
             WHERE id = $1 AND lease_node = $2 AND lease_gen = $3 AND pending_key = $4",
        )
        .bind(&lease.id)
        .bind(&lease.node)
        .bind(lease.generation)
        .bind(key)
        .execute(self.pool())
        .await
        .db("clearing a webhook batch")?;
        Ok(result.rows_affected() == 1)
    }

    /// Records a failed attempt of the batch in flight (`record.batch_key`). False if the
    /// lease was lost.
    pub async fn fail_webhook_attempt(
        &self,
        lease: &Lease,
        record: &DeliveryRecord,
    ) -> Result<bool, StoreError> {
        let mut transaction = self
            .pool()
            .begin()
            .await
            .db("recording a webhook attempt")?;
        let result = sqlx::query(
            "UPDATE webhooks SET pending_attempts = $1, last_error = $2 \
             WHERE id = $3 AND lease_node = $4 AND lease_gen = $5 AND pending_key = $6",
        )
        .bind(i64::from(record.attempt))
        .bind(record.error.as_deref().map(bounded_error))
        .bind(&lease.id)
        .bind(&lease.node)
        .bind(lease.generation)
        .bind(&record.batch_key)
        .execute(&mut *transaction)
        .await
        .db("recording a webhook attempt")?;
        if result.rows_affected() != 1 {
            return Ok(false);
        }
        insert_delivery(&mut transaction, &lease.id, record).await?;
        transaction
            .commit()
            .await
            .db("recording a webhook attempt")?;
        Ok(true)
    }

    /// Moves the endpoint's cursor to `cursor` and clears the batch in flight, recording how it
    /// ended. `record` names the batch in flight it ends (its `batch_key`; empty for a gap or
    /// for positions with nothing to deliver, when no batch may be in flight). False if the
    /// lease was lost or the batch in flight is another.
    pub async fn advance_webhook(
        &self,
        lease: &Lease,
        cursor: &str,
        record: Option<&DeliveryRecord>,
    ) -> Result<bool, StoreError> {
        let mut transaction = self.pool().begin().await.db("advancing a webhook")?;
        let delivered = record.is_some_and(|record| record.outcome == DeliveryOutcome::Delivered);
        let key = record.map_or("", |record| record.batch_key.as_str());
        let result = sqlx::query(
            "UPDATE webhooks SET cursor = $1, pending_key = NULL, pending_through = NULL, \
             pending_count = 0, pending_attempts = 0, \
             last_success_at = CASE WHEN $2 = 1 THEN $3 ELSE last_success_at END, \
             last_error = CASE WHEN $2 = 1 THEN NULL ELSE last_error END \
             WHERE id = $4 AND lease_node = $5 AND lease_gen = $6 \
             AND COALESCE(pending_key, '') = $7",
        )
        .bind(cursor)
        .bind(i64::from(delivered))
        .bind(unix_now())
        .bind(&lease.id)
        .bind(&lease.node)
        .bind(lease.generation)
        .bind(key)
        .execute(&mut *transaction)
        .await
        .db("advancing a webhook")?;
        if result.rows_affected() != 1 {
            return Ok(false);
        }
        if let Some(record) = record {
            insert_delivery(&mut transaction, &lease.id, record).await?;
        }
        transaction.commit().await.db("advancing a webhook")?;
        Ok(true)
    }

    /// Notes why the endpoint is not being delivered (plan without the firehose, a URL the
    /// node's rules now refuse), for its account to see. False if the lease was lost.
    pub async fn note_webhook_error(&self, lease: &Lease, error: &str) -> Result<bool, StoreError> {
        let result = sqlx::query(
            "UPDATE webhooks SET last_error = $1 \
             WHERE id = $2 AND lease_node = $3 AND lease_gen = $4",
        )
        .bind(bounded_error(error))
        .bind(&lease.id)
        .bind(&lease.node)
        .bind(lease.generation)
        .execute(self.pool())
        .await
        .db("noting a webhook error")?;
        Ok(result.rows_affected() == 1)
    }
}

/// Inserts a delivery-log row and prunes the endpoint's log to its newest
/// [`DELIVERY_LOG_ROWS`].
async fn insert_delivery(
    transaction: &mut sqlx::Transaction<'_, sqlx::Any>,
    id: &str,
    record: &DeliveryRecord,
) -> Result<(), StoreError> {
    sqlx::query(
        "INSERT INTO webhook_deliveries (webhook_id, batch_key, attempt, outcome, http_status, \
         error, indicators, first_cursor, last_cursor, at) \
         VALUES ($1, $2, $3, $4, $5, $6, $7, $8, $9, $10)",
    )
    .bind(id)
    .bind(&record.batch_key)
    .bind(i64::from(record.attempt))
    .bind(record.outcome.as_str())
    .bind(record.http_status.map(i64::from))
    .bind(record.error.as_deref().map(bounded_error))
    .bind(i64::from(record.indicators))
    .bind(record.first_cursor.as_deref())
    .bind(record.last_cursor.as_deref())
    .bind(unix_now())
    .execute(&mut **transaction)
    .await
    .db("writing the delivery log")?;
    sqlx::query(
        "DELETE FROM webhook_deliveries WHERE webhook_id = $1 AND id <= \
         (SELECT id FROM webhook_deliveries WHERE webhook_id = $1 ORDER BY id DESC \
         LIMIT 1 OFFSET $2)",
    )
    .bind(id)
    .bind(DELIVERY_LOG_ROWS)
    .execute(&mut **transaction)
    .await
    .db("pruning the delivery log")?;
    Ok(())
}

/// An error text cut to [`MAX_ERROR_LEN`] bytes at a character boundary.
fn bounded_error(text: &str) -> String {
    let mut end = text.len().min(MAX_ERROR_LEN);
    while !text.is_char_boundary(end) {
        end -= 1;
    }
    text[..end].to_owned()
}

fn webhook_from_row(row: &AnyRow) -> anyhow::Result<Webhook> {
    let attempts: i64 = row.try_get("pending_attempts")?;
    Ok(Webhook {
        id: row.try_get("id")?,
        account: row.try_get("account")?,
        url: row.try_get("url")?,
        filter: row.try_get("filter")?,
        format: row.try_get("format")?,
        created_at: from_unix(row.try_get("created_at")?)?,
        cursor: row.try_get("cursor")?,
        failing_attempts: u32::try_from(attempts).unwrap_or(u32::MAX),
        last_success_at: from_unix_opt(row.try_get("last_success_at")?)?,
        last_error: row.try_get("last_error")?,
    })
}

fn delivery_from_row(row: &AnyRow) -> anyhow::Result<Delivery> {
    let attempt: i64 = row.try_get("attempt")?;
    let status: Option<i64> = row.try_get("http_status")?;
    let indicators: i64 = row.try_get("indicators")?;
    Ok(Delivery {
        record: DeliveryRecord {
            batch_key: row.try_get("batch_key")?,
            attempt: u32::try_from(attempt)?,
            outcome: DeliveryOutcome::parse(&row.try_get::<String, _>("outcome")?)?,
            http_status: status.map(u16::try_from).transpose()?,
            error: row.try_get("error")?,
            indicators: u32::try_from(indicators)?,
            first_cursor: row.try_get("first_cursor")?,
            last_cursor: row.try_get("last_cursor")?,
        },
        at: from_unix(row.try_get("at")?)?,
    })
}
