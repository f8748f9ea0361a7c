//! Sluice's account, admin and billing-webhook HTTP API (SPEC §5, §6). The browser page and
//! its sessions come with issue 6 and will live here too.
//!
//! Shape: [`Config`] (what the operator set), [`AppState`] (cheap to clone, handles inside),
//! [`router`] (merged into the node's router by the binary; tested in process with `oneshot`).
//! Wire types are in [`api`]; every error answers `{"error": "<what to do>"}` ([`ApiError`]).
//!
//! | endpoint | who |
//! |---|---|
//! | `POST /v1/billing/webhook` | the billing provider (signed, see `billing::webhook_signature`) |
//! | `GET /v1/account`, `PUT /v1/account/subscription`, `GET /v1/account/usage` | any token |
//! | `GET /v1/admin/plans`, `PUT /v1/admin/plans/{name}`, `PUT /v1/admin/accounts/{name}/plan`, `GET /v1/admin/accounts/{name}/usage` | `admin` tokens |

mod account;
mod admin;
pub mod api;
mod auth;
mod error;
mod extract;
mod webhook;

use std::fmt;
use std::sync::Arc;

use axum::routing::{get, post, put};
use axum::Router;
use billing::Store;

pub use auth::{bearer_token, AdminCaller, Caller};
pub use error::{ApiError, UNAUTHORIZED_MESSAGE};
pub use webhook::{MAX_WEBHOOK_BODY_BYTES, NOT_CONFIGURED_MESSAGE};

/// What the operator configured for this API.
#[derive(Clone, Default, PartialEq, Eq)]
pub struct Config {
    /// Secrets the billing webhook's signature may be made with (`--billing-webhook-secret`,
    /// `SLUICE_BILLING_WEBHOOK_SECRET`; several while rotating: any may match). Empty (the
    /// default) is *test mode*: no payment provider, the webhook answers 503 and an account's
    /// own subscription toggle applies directly.
    pub billing_webhook_secrets: Vec<String>,
}

impl Config {
    /// Whether no payment provider is configured (no webhook secret).
    pub fn test_mode(&self) -> bool {
        self.billing_webhook_secrets.is_empty()
    }

    /// Checks the settings before the node binds a port; the error is one line naming the
    /// setting (for exit code 64).
    pub fn validate(&self) -> Result<(), String> {
        if self
            .billing_webhook_secrets
            .iter()
            .any(|secret| secret.trim().is_empty())
        {
            return Err(
                "--billing-webhook-secret must not be empty (anyone could sign with an \
                        empty secret); leave it unset for test mode"
                    .into(),
            );
        }
        Ok(())
    }
}

/// Secrets never print: logs of the configuration show how many there are, nothing more.
impl fmt::Debug for Config {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("Config")
            .field(
                "billing_webhook_secrets",
                &format_args!("[{} redacted]", self.billing_webhook_secrets.len()),
            )
            .finish()
    }
}

/// What every handler needs. Cheap to clone: the store's pool and the config are shared.
#[derive(Clone, Debug)]
pub struct AppState {
    /// The account database.
    pub store: Store,
    /// The operator's settings.
    pub config: Arc<Config>,
}

/// The API's routes, with their state; merge into the node's router.
pub fn router(state: AppState) -> Router {
    Router::new()
        .route("/v1/billing/webhook", post(webhook::receive))
        .route("/v1/account", get(account::show))
        .route("/v1/account/subscription", put(account::subscribe))
        .route("/v1/account/usage", get(account::usage))
        .route("/v1/admin/plans", get(admin::list_plans))
        .route("/v1/admin/plans/{name}", put(admin::edit_plan))
        .route(
            "/v1/admin/accounts/{name}/plan",
            put(admin::set_account_plan),
        )
        .route("/v1/admin/accounts/{name}/usage", get(admin::account_usage))
        .with_state(state)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn config_debug_never_prints_secrets() {
        let config = Config {
            billing_webhook_secrets: vec!["whsec_supersecret".into(), "whsec_old".into()],
        };
        let printed = format!("{config:?}");
        assert!(!printed.contains("supersecret"), "{printed}");
        assert!(printed.contains("2 redacted"), "{printed}");
    }

    #[test]
    fn config_validation() {
        assert!(Config::default().test_mode());
        assert_eq!(Config::default().validate(), Ok(()));
        let configured = Config {
            billing_webhook_secrets: vec!["whsec_1".into()],
        };
        assert!(!configured.test_mode());
        assert_eq!(configured.validate(), Ok(()));
        let empty = Config {
            billing_webhook_secrets: vec!["whsec_1".into(), " ".into()],
        };
        let error = empty.validate().unwrap_err();
        assert!(error.contains("--billing-webhook-secret"), "{error}");
    }
}
