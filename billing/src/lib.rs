//! Sluice accounts, plans, API tokens, subscriptions and usage on SQLite or PostgreSQL (sqlx),
//! per docs/protocol.md §5 and §6.
//!
//! [`Store`] owns the connection pool; its methods live next to the data they manage:
//! accounts and the first-start admin in `accounts`, plans in `plans`, token records in
//! `tokens`, authentication in `auth`, the change log live connections follow in `changes`,
//! billing-provider events in `subscriptions`, usage metering in `usage`, browser users in
//! `users` and their sessions in `sessions`, outbound webhook endpoints and their delivery
//! state in `webhooks`. The token text
//! format, the webhook signature, the stream JWT and the browser `Origin` rule are pure and
//! live in `token`, [`webhook_signature`], [`stream_jwt`] and [`origin`], so they can be
//! checked without a database.

mod accounts;
mod auth;
mod changes;
mod hash_gate;
pub mod origin;
mod plans;
mod sessions;
mod store;
pub mod stream_jwt;
mod subscriptions;
mod token;
mod tokens;
mod usage;
mod users;
pub mod webhook_signature;
mod webhooks;

pub use accounts::Account;
pub use auth::{AuthError, Principal, UNAUTHORIZED_MESSAGE};
pub use changes::{Change, ChangeKind, CHANGE_RETENTION};
pub use hash_gate::{HASH_MEMORY_BUDGET_BYTES, HASH_MEMORY_BYTES, HASH_WAIT, MAX_HASH_WAITERS};
pub use sessions::{SessionInfo, SessionSecret, SESSION_SECRET_LEN};
pub use store::{Store, StoreError};
pub use subscriptions::{
    EventOutcome, SubscriptionEvent, FREE_PLAN, SUBSCRIPTION_DELETED, SUBSCRIPTION_UPDATED,
};
pub use token::{ApiToken, Scope, TokenFormatError, UnknownScope, TOKEN_LEN, TOKEN_PREFIX};
pub use tokens::TokenRecord;
pub use usage::{UsageDay, UsageDelta, UsageTotal};
pub use users::{
    normalize_email, validate_password, User, MAX_EMAIL_LEN, MAX_PASSWORD_BYTES, MIN_PASSWORD_CHARS,
};
pub use webhooks::{
    Delivery, DeliveryOutcome, DeliveryRecord, Lease, NewWebhook, PendingBatch, Webhook,
    WebhookJob, DELIVERY_LOG_ROWS,
};
