//! Sluice's web page and its account, session, admin and billing-webhook HTTP API
//! (docs/protocol.md §5.6–§5.8, §6). The page is in `page` (see its module documentation); this
//! table is the API.
//!
//! Shape: [`Config`] (what the operator set), [`AppState`] (cheap to clone, handles inside),
//! [`router`] (merged into the node's router by the binary; tested in process with `oneshot`).
//! Wire types are in [`api`]; every error answers `{"error": "<what to do>"}` ([`ApiError`]).
//! [`ApiDoc`] is the OpenAPI description of every route here, pages included.
//!
//! | endpoint | who |
//! |---|---|
//! | `POST /v1/billing/webhook` | the billing provider (signed, see `billing::webhook_signature`) |
//! | `GET /v1/plans` | anyone |
//! | `GET /v1/account`, `GET /v1/account/usage` | any token, or the session cookie |
//! | `PUT /v1/account/subscription` | a `write` token, or the session cookie + `X-CSRF-Token` |
//! | `GET`, `POST /v1/account/tokens`, `DELETE /v1/account/tokens/{id}` | the session cookie (+ `X-CSRF-Token` to change) |
//! | `GET`, `POST /v1/account/webhooks`, `GET`, `DELETE /v1/account/webhooks/{id}`, `GET /v1/account/webhooks/{id}/deliveries` | any token, or the session cookie (+ `X-CSRF-Token` to change) |
//! | `POST /v1/session/signup`, `POST /v1/session/signin` | anyone (sets the session cookie) |
//! | `GET /v1/session` | the session cookie |
//! | `POST /v1/session/signout`, `POST /v1/session/stream-token` | the session cookie + `X-CSRF-Token` |
//! | `GET /v1/admin/plans`, `PUT /v1/admin/plans/{name}`, `PUT /v1/admin/accounts/{name}/plan`, `GET /v1/admin/accounts/{name}/usage` | `admin` tokens |

mod account;
mod admin;
pub mod api;
mod auth;
mod error;
mod extract;
mod openapi;
mod page;
mod session;
mod throttle;
mod tokens;
mod webhook;
mod webhooks;

use std::fmt;
use std::sync::{Arc, OnceLock};

use axum::extract::DefaultBodyLimit;
use axum::routing::{delete, get, post, put};
use axum::Router;
use billing::Store;

pub use auth::{
    bearer_token, session_cookie, AdminCaller, Caller, SessionCaller, CSRF_HEADER, SESSION_COOKIE,
};
pub use billing::origin::origin_allowed;
pub use error::{
    ApiError, CSRF_MESSAGE, NO_SESSION_MESSAGE, SIGN_IN_FAILED_MESSAGE, UNAUTHORIZED_MESSAGE,
};
pub use openapi::ApiDoc;
pub use page::{content_security_policy, set_security_headers};
pub use session::{MAX_SESSION_BODY_BYTES, SESSION_TTL};
pub use webhook::{MAX_WEBHOOK_BODY_BYTES, NOT_CONFIGURED_MESSAGE};

/// What the operator configured for this API.
#[derive(Clone, Default, PartialEq, Eq)]
pub struct Config {
    /// Secrets the billing webhook's signature may be made with (`--billing-webhook-secret`,
    /// `SLUICE_BILLING_WEBHOOK_SECRET`; several while rotating: any may match). Empty (the
    /// default): the webhook answers 503, and only admins change plans unless
    /// [`Config::billing_test_mode`] is on.
    pub billing_webhook_secrets: Vec<String>,
    /// *Test mode* (`--billing-test-mode`, set by `sluice up --demo`): no payment provider, and
    /// an account's own subscription toggle applies directly, so anyone who signs up can give
    /// themselves a paid plan. Off by default; excludes webhook secrets.
    pub billing_test_mode: bool,
    /// The HS256 key of the stream JWTs the page gets from `POST /v1/session/stream-token`
    /// (and the gateway verifies); at least 32 bytes. Every node of a cluster needs the same
    /// one. `None` (the default): a random 32-byte key per process, so stream tokens do not
    /// survive a restart and other nodes refuse them (a warning is logged at first use).
    /// CLI flag and `SLUICE_…` variable: added by the binary.
    pub jwt_secret: Option<Secret>,
    /// Leave `Secure` off the session cookie, so sign-in works over plain `http://` (local
    /// development only: the cookie then travels in clear). Default `false`. CLI flag and
    /// `SLUICE_…` variable: added by the binary.
    pub insecure_cookies: bool,
    /// The payment provider's checkout page (`--billing-checkout-url`): with a webhook secret
    /// set, the plans page's toggle sends the user there with `?account=…&plan=…`, and the
    /// provider's signed webhook changes the plan. `None`: the toggle answers 409 outside test
    /// mode.
    pub billing_checkout_url: Option<String>,
    /// Where the page's stream connects (`--gateway-url`, e.g. `https://stream.example.com`);
    /// `None`: this same origin (`sluice up`, or a proxy routing `/v1/stream` to gateways).
    pub gateway_url: Option<String>,
    /// How long the page's stream tokens last (`--stream-token-ttl`, 1 s to 1 h); `None`: 5
    /// minutes (`billing::stream_jwt::TTL_SECONDS`). The viewer renews its token when the
    /// stream closes with 4001, so shorter only means more reconnects.
    pub stream_token_ttl: Option<std::time::Duration>,
    /// Accept webhook endpoints on private, loopback and other special-purpose addresses, and
    /// `http://` to loopback (`--webhook-allow-private`; the gateway's deliverer has the same
    /// switch). Off by default: public `https://` endpoints only.
    pub webhook_allow_private: bool,
}

/// Fewest bytes a configured JWT secret may have (HS256's key size).
pub const MIN_JWT_SECRET_BYTES: usize = 32;

/// A secret setting. `Debug` never prints it.
#[derive(Clone, PartialEq, Eq)]
pub struct Secret(String);

impl Secret {
    /// Wraps a secret value.
    pub fn new(value: impl Into<String>) -> Secret {
        Secret(value.into())
    }

    /// The secret itself. Never log it.
    pub fn expose(&self) -> &str {
        &self.0
    }
}

impl fmt::Debug for Secret {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str("Secret(redacted)")
    }
}

impl Config {
    /// Whether no payment provider is configured (no webhook secret).
    pub fn test_mode(&self) -> bool {
        self.billing_test_mode
    }

    /// Seconds a page's stream token is valid.
    pub fn stream_token_seconds(&self) -> u64 {
        self.stream_token_ttl
            .map_or(billing::stream_jwt::TTL_SECONDS, |ttl| ttl.as_secs())
    }

    /// The key stream JWTs are signed and verified with: [`Config::jwt_secret`], or this
    /// process's random key when none is configured. Pass it to
    /// `billing::stream_jwt::verify` in the gateway of the same process.
    pub fn stream_jwt_secret(&self) -> &[u8] {
        match &self.jwt_secret {
            Some(secret) => secret.expose().as_bytes(),
            None => process_jwt_secret(),
        }
    }

    /// Checks the settings before the node binds a port; the error is one line naming the
    /// setting (for exit code 64).
    pub fn validate(&self) -> Result<(), String> {
        if let Some(secret) = &self.jwt_secret {
            check_jwt_secret(secret.expose())?;
        }
        if self.billing_test_mode && !self.billing_webhook_secrets.is_empty() {
            return Err(
                "--billing-test-mode lets accounts switch plans without paying; it cannot go with \
                 --billing-webhook-secret (drop one)"
                    .into(),
            );
        }
        for (flag, value) in [
            ("--billing-checkout-url", &self.billing_checkout_url),
            ("--gateway-url", &self.gateway_url),
        ] {
            if let Some(value) = value {
                let parsed = url::Url::parse(value)
                    .map_err(|error| format!("{flag} `{value}` is not a URL ({error})"))?;
                if !matches!(parsed.scheme(), "http" | "https") {
                    return Err(format!(
                        "{flag} `{value}` must be an http:// or https:// URL"
                    ));
                }
            }
        }
        if let Some(ttl) = self.stream_token_ttl {
            if !(1..=3600).contains(&ttl.as_secs()) {
                return Err(format!(
                    "--stream-token-ttl must be from 1s to 1h (got {}s)",
                    ttl.as_secs()
                ));
            }
        }
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
            .field("billing_test_mode", &self.billing_test_mode)
            .field("jwt_secret", &self.jwt_secret)
            .field("insecure_cookies", &self.insecure_cookies)
            .field("billing_checkout_url", &self.billing_checkout_url)
            .field("gateway_url", &self.gateway_url)
            .field("stream_token_ttl", &self.stream_token_ttl)
            .finish()
    }
}

/// Secrets that have been published as examples or defaults: anyone could sign stream tokens
/// with them.
const PUBLISHED_JWT_SECRETS: &[&str] = &["laptop-only-jwt-secret-change-me-0000"];

/// A configured stream-JWT key must be long enough for HS256 and not one anybody could know
/// (a published placeholder, or text saying it should be changed).
pub fn check_jwt_secret(secret: &str) -> Result<(), String> {
    if secret.len() < MIN_JWT_SECRET_BYTES {
        return Err(format!(
            "--jwt-secret must be at least {MIN_JWT_SECRET_BYTES} bytes (generate one with \
             `openssl rand -hex 32`)"
        ));
    }
    let lower = secret.to_ascii_lowercase();
    let placeholder = [
        "change-me",
        "changeme",
        "change_me",
        "replace-me",
        "example",
    ]
    .iter()
    .any(|marker| lower.contains(marker));
    if placeholder || PUBLISHED_JWT_SECRETS.contains(&secret) {
        return Err(
            "--jwt-secret is a placeholder anyone can read: generate one with `openssl rand -hex \
             32`, or leave it unset to have one made in --data-dir"
                .into(),
        );
    }
    Ok(())
}

/// This process's stream-JWT key when none is configured: 32 random bytes, made at first use.
fn process_jwt_secret() -> &'static [u8] {
    static KEY: OnceLock<[u8; 32]> = OnceLock::new();
    KEY.get_or_init(|| {
        tracing::warn!(
            "no JWT secret configured: stream tokens are signed with a random key of this \
             process; they will not survive a restart and other nodes will refuse them"
        );
        rand::random()
    })
}

/// What every handler needs. Cheap to clone: the store's pool and the config are shared.
#[derive(Clone, Debug)]
pub struct AppState {
    /// The account database.
    pub store: Store,
    /// The operator's settings.
    pub config: Arc<Config>,
    /// Limits on password attempts (sign-up, sign-in).
    pub throttle: Arc<throttle::Throttle>,
}

impl AppState {
    /// The state of a router over `store` with `config`, with fresh limiters.
    pub fn new(store: Store, config: Config) -> AppState {
        AppState {
            store,
            config: Arc::new(config),
            throttle: Arc::default(),
        }
    }
}

/// The API's routes, with their state; merge into the node's router.
pub fn router(state: AppState) -> Router {
    Router::new()
        .route("/v1/billing/webhook", post(webhook::receive))
        .route("/v1/account", get(account::show))
        .route("/v1/account/subscription", put(account::subscribe))
        .route("/v1/account/usage", get(account::usage))
        .route("/v1/account/tokens", get(tokens::list).post(tokens::create))
        .route("/v1/account/tokens/{id}", delete(tokens::revoke))
        .route(
            "/v1/account/webhooks",
            get(webhooks::list).post(webhooks::create),
        )
        .route(
            "/v1/account/webhooks/{id}",
            get(webhooks::show).delete(webhooks::remove),
        )
        .route(
            "/v1/account/webhooks/{id}/deliveries",
            get(webhooks::deliveries),
        )
        .route("/v1/plans", get(account::plans))
        .route("/v1/session", get(session::show))
        .route(
            "/v1/session/signup",
            post(session::sign_up).layer(DefaultBodyLimit::max(session::MAX_SESSION_BODY_BYTES)),
        )
        .route(
            "/v1/session/signin",
            post(session::sign_in).layer(DefaultBodyLimit::max(session::MAX_SESSION_BODY_BYTES)),
        )
        .route("/v1/session/signout", post(session::sign_out))
        .route("/v1/session/stream-token", post(session::stream_token))
        .route("/v1/admin/plans", get(admin::list_plans))
        .route("/v1/admin/plans/{name}", put(admin::edit_plan))
        .route(
            "/v1/admin/accounts/{name}/plan",
            put(admin::set_account_plan),
        )
        .route("/v1/admin/accounts/{name}/usage", get(admin::account_usage))
        .with_state(state.clone())
        .merge(page::router(state))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn config_debug_never_prints_secrets() {
        let config = Config {
            billing_webhook_secrets: vec!["whsec_supersecret".into(), "whsec_old".into()],
            jwt_secret: Some(Secret::new("jwt-supersecret-jwt-supersecret-jwt")),
            ..Config::default()
        };
        let printed = format!("{config:?}");
        assert!(!printed.contains("jwt-supersecret"), "{printed}");
        assert!(!printed.contains("supersecret"), "{printed}");
        assert!(printed.contains("2 redacted"), "{printed}");
    }

    #[test]
    fn config_validation() {
        assert!(
            !Config::default().test_mode(),
            "test mode is asked for, never a default"
        );
        assert_eq!(Config::default().validate(), Ok(()));
        let both = Config {
            billing_webhook_secrets: vec!["whsec_1".into()],
            billing_test_mode: true,
            ..Config::default()
        };
        assert!(both.validate().unwrap_err().contains("--billing-test-mode"));
        for placeholder in [
            "laptop-only-jwt-secret-change-me-0000",
            "please-CHANGEME-before-production-000",
        ] {
            let config = Config {
                jwt_secret: Some(Secret::new(placeholder)),
                ..Config::default()
            };
            assert!(config.validate().unwrap_err().contains("placeholder"));
        }
        let configured = Config {
            billing_webhook_secrets: vec!["whsec_1".into()],
            ..Config::default()
        };
        assert!(!configured.test_mode());
        assert_eq!(configured.validate(), Ok(()));
        let empty = Config {
            billing_webhook_secrets: vec!["whsec_1".into(), " ".into()],
            ..Config::default()
        };
        let error = empty.validate().unwrap_err();
        assert!(error.contains("--billing-webhook-secret"), "{error}");
        let short = Config {
            jwt_secret: Some(Secret::new("x".repeat(31))),
            ..Config::default()
        };
        let error = short.validate().unwrap_err();
        assert!(error.contains("--jwt-secret"), "{error}");
        let long_enough = Config {
            jwt_secret: Some(Secret::new("x".repeat(32))),
            ..Config::default()
        };
        assert_eq!(long_enough.validate(), Ok(()));
        assert_eq!(long_enough.stream_jwt_secret(), "x".repeat(32).as_bytes());
        // Without a configured secret: one random key per process, the same on every call.
        let random = Config::default();
        assert_eq!(random.stream_jwt_secret().len(), 32);
        assert_eq!(
            random.stream_jwt_secret(),
            Config::default().stream_jwt_secret()
        );
    }
}
