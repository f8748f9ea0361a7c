//! Sluice accounts, plans and API tokens on SQLite or PostgreSQL (sqlx), per SPEC §5 and §6.
//!
//! [`Store`] owns the connection pool; its methods live next to the data they manage:
//! accounts and the first-start admin in `accounts`, plans in `plans`, token records in
//! `tokens`, authentication in `auth`. The token text format itself is pure and lives in
//! `token`, so clients can validate tokens without a database.

mod accounts;
mod auth;
mod plans;
mod store;
mod token;
mod tokens;

pub use accounts::Account;
pub use auth::{AuthError, Principal};
pub use store::{Store, StoreError};
pub use token::{ApiToken, Scope, TokenFormatError, UnknownScope, TOKEN_LEN, TOKEN_PREFIX};
pub use tokens::TokenRecord;
