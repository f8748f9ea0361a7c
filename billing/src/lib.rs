//! Sluice accounts, plans, API tokens, subscriptions and usage on SQLite or PostgreSQL (sqlx),
//! per SPEC §5 and §6.
//!
//! [`Store`] owns the connection pool; its methods live next to the data they manage:
//! accounts and the first-start admin in `accounts`, plans in `plans`, token records in
//! `tokens`, authentication in `auth`, the change log live connections follow in `changes`,
//! billing-provider events in `subscriptions`, usage metering in `usage`. The token text
//! format and the webhook signature are pure and live in `token` and [`webhook_signature`], so
//! they can be checked without a database.

mod accounts;
mod auth;
mod changes;
mod plans;
mod store;
mod subscriptions;
mod token;
mod tokens;
mod usage;
pub mod webhook_signature;

pub use accounts::Account;
pub use auth::{AuthError, Principal};
pub use changes::{Change, ChangeKind, CHANGE_RETENTION};
pub use store::{Store, StoreError};
pub use subscriptions::{
    EventOutcome, SubscriptionEvent, FREE_PLAN, SUBSCRIPTION_DELETED, SUBSCRIPTION_UPDATED,
};
pub use token::{ApiToken, Scope, TokenFormatError, UnknownScope, TOKEN_LEN, TOKEN_PREFIX};
pub use tokens::TokenRecord;
pub use usage::{UsageDay, UsageDelta};
