//! Subscription events from the billing provider (docs/protocol.md §5.7): applying a verified
//! `subscription.updated` / `subscription.deleted` event to an account's plan, once per event
//! id, never letting an older event override a newer one.
//!
//! The signature is checked before anything here runs (`webhook_signature`); this module
//! trusts the event's content and only guards against delivery order and repetition, which
//! providers do not guarantee: they retry, and retries race.

use crate::accounts::{change_account_plan, AccountKey};
use crate::store::{unix_now, DbContext, Store, StoreError};

/// `type` of an event that sets an account's plan.
pub const SUBSCRIPTION_UPDATED: &str = "subscription.updated";
/// `type` of an event that ends an account's subscription: the account moves to [`FREE_PLAN`].
pub const SUBSCRIPTION_DELETED: &str = "subscription.deleted";
/// The plan an account falls back to when its subscription ends.
pub const FREE_PLAN: &str = "free";
/// Longest event id accepted; providers' ids are a few dozen characters.
const MAX_EVENT_ID_LEN: usize = 255;

/// A subscription event as the provider sent it (already authenticated by its signature).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct SubscriptionEvent {
    /// The provider's event id (`evt_…`): deliveries with the same id are one event.
    pub id: String,
    /// The event's `type`; types other than [`SUBSCRIPTION_UPDATED`] and
    /// [`SUBSCRIPTION_DELETED`] are ignored.
    pub event_type: String,
    /// The account's name.
    pub account: String,
    /// The new plan; required by `subscription.updated`, ignored by `subscription.deleted`.
    pub plan: Option<String>,
    /// When the provider created the event (unix seconds): what orders events.
    pub created: i64,
}

impl SubscriptionEvent {
    /// Whether events of this `type` change anything; others are acknowledged and ignored
    /// (a provider sends many kinds of events to one endpoint).
    pub fn is_handled_type(event_type: &str) -> bool {
        matches!(event_type, SUBSCRIPTION_UPDATED | SUBSCRIPTION_DELETED)
    }

    /// The plan this event moves the account to; `None` for ignored types.
    fn target_plan(&self) -> Result<Option<&str>, StoreError> {
        match self.event_type.as_str() {
            SUBSCRIPTION_UPDATED => match self.plan.as_deref() {
                Some(plan) if !plan.is_empty() => Ok(Some(plan)),
                _ => Err(StoreError::InvalidEvent(format!(
                    "a `{SUBSCRIPTION_UPDATED}` event needs a `plan`"
                ))),
            },
            SUBSCRIPTION_DELETED => Ok(Some(FREE_PLAN)),
            _ => Ok(None),
        }
    }
}

/// What became of a subscription event.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum EventOutcome {
    /// Recorded, and the account is on the event's plan (a `account_plan` change was recorded
    /// if that moved it).
    Applied,
    /// An event with this id was already received; nothing changed.
    Duplicate,
    /// Recorded, but a newer event was already applied to the account, so the plan stays.
    Stale,
    /// A type this version does not act on; nothing was recorded or queried.
    Ignored,
}

impl EventOutcome {
    /// The outcome as the webhook reports it: `applied`, `duplicate`, `stale` or `ignored`.
    pub fn as_str(self) -> &'static str {
        match self {
            EventOutcome::Applied => "applied",
            EventOutcome::Duplicate => "duplicate",
            EventOutcome::Stale => "stale",
            EventOutcome::Ignored => "ignored",
        }
    }
}

impl Store {
    /// Applies a verified subscription event: records it by id and, unless an event created
    /// later was already applied to the account, moves the account to the event's plan, all in
    /// one transaction. Redeliveries (even concurrent ones) answer [`EventOutcome::Duplicate`]
    /// and change nothing.
    ///
    /// An unknown account or plan is refused ([`StoreError::UnknownAccount`],
    /// [`StoreError::UnknownPlan`]) and *not* recorded, so the provider's retry, once the
    /// account or plan exists, is applied rather than taken for a duplicate.
    ///
    /// Events created in the same second as the last applied one are applied (the later
    /// delivery wins): the provider's timestamps cannot order them, and refusing both ways
    /// would be worse.
    pub async fn apply_subscription_event(
        &self,
        event: &SubscriptionEvent,
    ) -> Result<EventOutcome, StoreError> {
        let Some(plan) = event.target_plan()? else {
            return Ok(EventOutcome::Ignored);
        };
        if event.id.is_empty() || event.id.len() > MAX_EVENT_ID_LEN {
            return Err(StoreError::InvalidEvent(format!(
                "the event id must have 1 to {MAX_EVENT_ID_LEN} characters"
            )));
        }
        // Reads before the transaction: on SQLite a transaction that reads and then writes can
        // fail at once under WAL when another writer commits in between; one that starts with
        // a write just waits its turn. Accounts are never renamed and plans in use never
        // deleted, so the answers cannot go stale before the transaction uses them.
        let account = self
            .account(&event.account)
            .await?
            .ok_or_else(|| StoreError::UnknownAccount(event.account.clone()))?;
        if self.plan(plan).await?.is_none() {
            return Err(StoreError::UnknownPlan(plan.to_owned()));
        }

        let mut transaction = self.pool().begin().await.db("starting a billing event")?;
        if !record_event(&mut transaction, event, account.id, plan).await? {
            transaction
                .rollback()
                .await
                .db("rolling back a duplicate billing event")?;
            return Ok(EventOutcome::Duplicate);
        }

        // Claim the account's event order first: this both decides staleness and locks the
        // account's row (PostgreSQL) until commit, so two different events for one account
        // apply one after the other, each comparing against the other's result.
        let claimed = sqlx::query(
            "UPDATE accounts SET plan_event_created = $1 \
             WHERE id = $2 AND (plan_event_created IS NULL OR plan_event_created <= $1)",
        )
        .bind(event.created)
        .bind(account.id)
        .execute(&mut *transaction)
        .await
        .db("ordering a billing event")?;
        let outcome = if claimed.rows_affected() == 0 {
            EventOutcome::Stale
        } else {
            // A plan deleted since the check above comes back as `UnknownPlan`.
            change_account_plan(
                &mut transaction,
                self.backend(),
                AccountKey::Id(account.id),
                plan,
            )
            .await?;
            EventOutcome::Applied
        };
        transaction
            .commit()
            .await
            .db("committing a billing event")?;
        tracing::info!(
            billing.event_id = %event.id,
            billing.event_type = %event.event_type,
            account.id = account.id,
            plan = %plan,
            outcome = outcome.as_str(),
            "received a billing event"
        );
        Ok(outcome)
    }
}

/// Records the event by its id, once: false when it was recorded before. The id's primary key
/// decides: concurrent deliveries of one event wait here for the first to commit, then find the
/// row and insert nothing.
async fn record_event(
    connection: &mut sqlx::AnyConnection,
    event: &SubscriptionEvent,
    account_id: i64,
    plan: &str,
) -> Result<bool, StoreError> {
    let inserted = sqlx::query(
        "INSERT INTO billing_events (id, account_id, type, plan, created, received_at) \
         VALUES ($1, $2, $3, $4, $5, $6) ON CONFLICT (id) DO NOTHING",
    )
    .bind(&event.id)
    .bind(account_id)
    .bind(&event.event_type)
    .bind(plan)
    .bind(event.created)
    .bind(unix_now())
    .execute(&mut *connection)
    .await
    .db("recording a billing event")?;
    Ok(inserted.rows_affected() > 0)
}
