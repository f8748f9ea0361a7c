//! Wire types of the account, admin and webhook API: every body that crosses the HTTP boundary,
//! converted to and from `domain`/`billing` types here and nowhere else.

use std::time::Duration;

use billing::{Account, TokenRecord, UsageDay};
use domain::{Plan, Tlp};
use serde::{Deserialize, Deserializer, Serialize};
use utoipa::{IntoParams, ToSchema};

use crate::error::ApiError;

pub use domain::{ErrorBody, Limits};

/// `GET /v1/account` and the answer to a plan change: the account, its plan and its limits.
#[derive(Debug, Serialize, ToSchema)]
pub struct AccountView {
    /// Account name.
    pub account: String,
    /// Plan name.
    pub plan: String,
    /// Price of the plan in US cents per month; `null` for contract pricing.
    pub price_cents: Option<i64>,
    /// The plan's limits.
    pub limits: Limits,
}

impl AccountView {
    /// The view of `account` on `plan`.
    pub fn new(account: &str, plan: &Plan) -> AccountView {
        AccountView {
            account: account.to_owned(),
            plan: plan.name.clone(),
            price_cents: plan.price_cents,
            limits: plan.limits.clone(),
        }
    }

    /// The view of a stored account, given its plan's limits.
    pub fn of(account: &Account, plan: &Plan) -> AccountView {
        AccountView::new(&account.name, plan)
    }
}

/// A plan as the admin API lists it: name, price and limits side by side.
#[derive(Debug, Serialize, ToSchema)]
pub struct PlanView {
    /// Plan name.
    pub name: String,
    /// US cents per month; `null` for contract pricing.
    pub price_cents: Option<i64>,
    /// The limits, flattened next to the name.
    #[serde(flatten)]
    pub limits: Limits,
}

impl From<&Plan> for PlanView {
    fn from(plan: &Plan) -> Self {
        PlanView {
            name: plan.name.clone(),
            price_cents: plan.price_cents,
            limits: plan.limits.clone(),
        }
    }
}

/// `GET /v1/admin/plans`.
#[derive(Debug, Serialize, ToSchema)]
pub struct PlanList {
    /// Every plan, cheapest first.
    pub plans: Vec<PlanView>,
}

/// `{"plan": "<name>"}`: the body of both plan-choosing endpoints.
#[derive(Debug, Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub struct PlanChoice {
    /// The plan to move to.
    pub plan: String,
}

/// `PUT /v1/admin/plans/{name}`: a plan's complete limits. Every field is required, nullable
/// ones included (`null` = unlimited / contract price): a forgotten field must be an error, not
/// silently "unlimited". Numbers are read wide and checked here, so errors name the field.
#[derive(Debug, Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub struct PlanEdit {
    /// Optional; when present it must equal the name in the path (plans are not renamed here).
    #[serde(default)]
    pub name: Option<String>,
    /// US cents per month, ≥ 0; `null` for contract pricing.
    #[serde(deserialize_with = "required_nullable")]
    #[schema(required = true)]
    pub price_cents: Option<i64>,
    /// Full firehose (false: a sample).
    pub firehose: bool,
    /// Indicators per second of the sample; `null` when not a sample plan.
    #[serde(deserialize_with = "required_nullable")]
    #[schema(required = true)]
    pub sample_per_second: Option<i64>,
    /// Concurrent connections per account, 0 to 2³²−1.
    pub max_connections: i64,
    /// Per-connection rate, 0 to 2³²−1; `null` = unlimited.
    #[serde(deserialize_with = "required_nullable")]
    #[schema(required = true)]
    pub rate_per_second: Option<i64>,
    /// Per-connection burst, 0 to 2³²−1; `null` = unlimited.
    #[serde(deserialize_with = "required_nullable")]
    #[schema(required = true)]
    pub burst: Option<i64>,
    /// How far back a cursor may reach, seconds, ≥ 0.
    pub replay_window_seconds: i64,
    /// `white`, `green`, `amber` or `red`.
    #[schema(example = "amber")]
    pub max_tlp: String,
    /// Whether the correlated stream is included.
    pub correlated: bool,
}

/// With `deserialize_with`, serde no longer treats a missing `Option` field as `None`: the
/// field must be present, though it may be `null`.
fn required_nullable<'de, D, T>(deserializer: D) -> Result<Option<T>, D::Error>
where
    D: Deserializer<'de>,
    T: Deserialize<'de>,
{
    Option::<T>::deserialize(deserializer)
}

impl PlanEdit {
    /// The limits for plan `name`, or a 422 naming the first bad field.
    pub fn into_plan(self, name: &str) -> Result<Plan, ApiError> {
        if let Some(body_name) = &self.name {
            if body_name != name {
                return Err(ApiError::Unprocessable(format!(
                    "the body names plan `{body_name}` but the path names `{name}`; plans cannot be renamed"
                )));
            }
        }
        let count = |field: &str, value: i64| {
            u32::try_from(value).map_err(|_| {
                ApiError::Unprocessable(format!(
                    "`{field}` must be a whole number from 0 to {} (got {value})",
                    u32::MAX
                ))
            })
        };
        let optional_count =
            |field: &str, value: Option<i64>| value.map(|value| count(field, value)).transpose();
        if let Some(cents) = self.price_cents.filter(|cents| *cents < 0) {
            return Err(ApiError::Unprocessable(format!(
                "`price_cents` must not be negative (got {cents}); use null for contract pricing"
            )));
        }
        let replay_window_seconds = u64::try_from(self.replay_window_seconds).map_err(|_| {
            ApiError::Unprocessable(format!(
                "`replay_window_seconds` must not be negative (got {})",
                self.replay_window_seconds
            ))
        })?;
        let max_tlp: Tlp = self
            .max_tlp
            .parse()
            .map_err(|error: domain::tlp::UnknownTlp| {
                ApiError::Unprocessable(format!("`max_tlp`: {error}"))
            })?;
        Ok(Plan {
            name: name.to_owned(),
            price_cents: self.price_cents,
            limits: Limits {
                firehose: self.firehose,
                sample_per_second: optional_count("sample_per_second", self.sample_per_second)?,
                max_connections: count("max_connections", self.max_connections)?,
                rate_per_second: optional_count("rate_per_second", self.rate_per_second)?,
                burst: optional_count("burst", self.burst)?,
                replay_window: Duration::from_secs(replay_window_seconds),
                max_tlp,
                correlated: self.correlated,
            },
        })
    }
}

/// `?from=YYYY-MM-DD&to=YYYY-MM-DD` of the usage endpoints (both optional).
#[derive(Debug, Default, Deserialize, IntoParams)]
#[serde(deny_unknown_fields)]
#[into_params(parameter_in = Query)]
pub struct UsageQuery {
    /// First day, inclusive (default: 29 days before `to`), as `YYYY-MM-DD`. At most 366 days
    /// from `to`.
    #[param(format = Date, example = "2026-11-01")]
    pub from: Option<String>,
    /// Last day, inclusive (default: today, UTC), as `YYYY-MM-DD`.
    #[param(format = Date, example = "2026-11-30")]
    pub to: Option<String>,
}

/// An account's usage over a range of days.
#[derive(Debug, Serialize, ToSchema)]
pub struct UsageView {
    /// Account name.
    pub account: String,
    /// First day of the range.
    pub from: String,
    /// Last day of the range.
    pub to: String,
    /// Days with usage, oldest first; days without usage are absent.
    pub days: Vec<UsageDay>,
}

/// A billing provider's event, as far as it is read before its `type` is known: only `id` and
/// `type` are required, so events this API ignores need no other field.
#[derive(Debug, Deserialize, ToSchema)]
pub struct WebhookEvent {
    /// The provider's event id (`evt_…`).
    pub id: String,
    /// `subscription.updated`, `subscription.deleted`, or another type (ignored).
    #[serde(rename = "type")]
    pub event_type: String,
    /// The account's name.
    #[serde(default)]
    pub account: Option<String>,
    /// The new plan (`subscription.updated`).
    #[serde(default)]
    pub plan: Option<String>,
    /// When the provider created the event, unix seconds.
    #[serde(default)]
    pub created: Option<i64>,
}

impl WebhookEvent {
    /// The event for `billing`, or a 400 naming the missing field.
    pub fn into_subscription_event(self) -> Result<billing::SubscriptionEvent, ApiError> {
        let missing = |field: &str| {
            ApiError::BadRequest(format!("a `{}` event needs `{field}`", self.event_type))
        };
        let account = self.account.clone().ok_or_else(|| missing("account"))?;
        let created = self.created.ok_or_else(|| missing("created"))?;
        Ok(billing::SubscriptionEvent {
            id: self.id,
            event_type: self.event_type,
            account,
            plan: self.plan,
            created,
        })
    }
}

/// The webhook's 200 answer: `applied`, `duplicate`, `stale` or `ignored`.
#[derive(Debug, Serialize, ToSchema)]
pub struct WebhookAnswer {
    /// What became of the event: `applied`, `duplicate`, `stale` or `ignored`.
    #[schema(example = "applied")]
    pub status: &'static str,
}

/// `POST /v1/session/signup`: a new account (plan `free`) and its first user.
#[derive(Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub struct SignUpRequest {
    /// The user's email address (stored lower-cased).
    #[schema(format = Email)]
    pub email: String,
    /// At least 12 characters; hashed with argon2id, never stored or logged as is.
    #[schema(format = Password)]
    pub password: String,
    /// The new account's name (the account naming rule applies). Optional: without one, a
    /// name is made from the email address (`alice@example.com` → `alice`, or `alice-x7k2`
    /// when taken).
    #[serde(default)]
    pub account: Option<String>,
}

/// `POST /v1/session/signin`.
#[derive(Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub struct SignInRequest {
    /// The user's email address (any case).
    #[schema(format = Email)]
    pub email: String,
    /// The user's password.
    #[schema(format = Password)]
    pub password: String,
}

/// Passwords never print, not even in a debug log of a request.
impl std::fmt::Debug for SignUpRequest {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("SignUpRequest")
            .field("email", &self.email)
            .field("password", &"[redacted]")
            .field("account", &self.account)
            .finish()
    }
}

/// Passwords never print, not even in a debug log of a request.
impl std::fmt::Debug for SignInRequest {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("SignInRequest")
            .field("email", &self.email)
            .field("password", &"[redacted]")
            .finish()
    }
}

/// The current session: the answer to sign-up, sign-in and `GET /v1/session`. The session id
/// itself is only in the `HttpOnly` cookie; the page reads `csrf_token` from here and sends it
/// back as `X-CSRF-Token`.
#[derive(Debug, Serialize, ToSchema)]
pub struct SessionView {
    /// The signed-in account's name.
    pub account: String,
    /// What `X-CSRF-Token` must carry on state-changing requests of this session.
    pub csrf_token: String,
    /// When the session ends (RFC 3339, UTC).
    #[schema(format = DateTime)]
    pub expires_at: String,
}

/// `POST /v1/session/stream-token`: a short-lived JWT for `GET /v1/stream?access_token=`.
#[derive(Debug, Serialize, ToSchema)]
pub struct StreamTokenView {
    /// The JWT (HS256; see `billing::stream_jwt`).
    pub token: String,
    /// Seconds until it expires.
    pub expires_in: u64,
}

/// One API token as the Tokens page lists it: everything but its value.
#[derive(Debug, Serialize, ToSchema)]
pub struct TokenView {
    /// Public id (`tok_…`), what revocation takes.
    pub id: String,
    /// `read` or `write` (`admin` for operators' tokens).
    #[schema(example = "read")]
    pub scope: &'static str,
    /// RFC 3339, UTC.
    #[schema(format = DateTime)]
    pub created_at: String,
    /// RFC 3339, UTC; `null`: never expires.
    #[schema(format = DateTime)]
    pub expires_at: Option<String>,
    /// RFC 3339, UTC; `null`: live.
    #[schema(format = DateTime)]
    pub revoked_at: Option<String>,
    /// RFC 3339, UTC, to about a minute; `null`: never used.
    #[schema(format = DateTime)]
    pub last_used_at: Option<String>,
}

impl From<&TokenRecord> for TokenView {
    fn from(record: &TokenRecord) -> Self {
        TokenView {
            id: record.id.clone(),
            scope: record.scope.as_str(),
            created_at: rfc3339(record.created_at),
            expires_at: record.expires_at.map(rfc3339),
            revoked_at: record.revoked_at.map(rfc3339),
            last_used_at: record.last_used_at.map(rfc3339),
        }
    }
}

/// `GET /v1/account/tokens`.
#[derive(Debug, Serialize, ToSchema)]
pub struct TokenList {
    /// Newest first.
    pub tokens: Vec<TokenView>,
}

/// `POST /v1/account/tokens`.
#[derive(Debug, Default, Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub struct NewTokenRequest {
    /// `read` (default) or `write`.
    #[serde(default)]
    #[schema(example = "read")]
    pub scope: Option<String>,
    /// Days until the token stops working, 1 to 730; absent or `null`: never.
    #[serde(default)]
    #[schema(minimum = 1, maximum = 730)]
    pub expires_in_days: Option<u32>,
}

/// The answer to `POST /v1/account/tokens`: the only time the token's value is shown.
#[derive(Debug, Serialize, ToSchema)]
pub struct NewTokenView {
    /// The token (`slc_…`). Not stored: copy it now.
    pub token: String,
    /// Its public record.
    #[serde(flatten)]
    pub record: TokenView,
}

/// `PUT /v1/account/subscription` when a payment provider owns subscriptions (202): where to
/// send the user to pay; the provider's signed webhook then changes the plan.
#[derive(Debug, Serialize, ToSchema)]
pub struct CheckoutView {
    /// Always `checkout`.
    #[schema(example = "checkout")]
    pub status: &'static str,
    /// The provider's checkout page for this account and plan.
    pub checkout_url: String,
}

/// The answer to `PUT /v1/account/subscription`: the changed account, or where to pay.
#[derive(Debug, Serialize, ToSchema)]
#[serde(untagged)]
pub enum SubscriptionAnswer {
    /// Test mode: the plan changed (200).
    Changed(AccountView),
    /// A payment provider is configured: go to its checkout (202).
    Checkout(CheckoutView),
}

/// `POST /v1/account/webhooks`: an endpoint to deliver the stream to.
#[derive(Debug, Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub struct NewWebhookRequest {
    /// Where batches are POSTed: `https://` (plain `http://` only to loopback on deployments
    /// that allow private addresses). At most 2,048 characters, no user name or password.
    #[schema(example = "https://hooks.example.com/sluice")]
    pub url: String,
    /// A stream filter as a query string (the keys of `GET /v1/stream`: `itype`, `tags`,
    /// `confidence`, `tlp`, `provider`, `cidr`, `profile`, `correlated`); empty: everything the
    /// plan sees.
    #[schema(example = "correlated=true")]
    #[serde(default)]
    pub filter: Option<String>,
    /// `native` (JSON batches, the default), `slack` (a `{"text": …}` message) or `stix` (a
    /// STIX 2.1 bundle).
    #[schema(example = "native")]
    #[serde(default)]
    pub format: Option<String>,
}

/// One webhook endpoint as its account sees it (never its secret).
#[derive(Debug, Serialize, ToSchema)]
pub struct WebhookView {
    /// Public id (`wh_…`).
    pub id: String,
    pub url: String,
    /// The stream filter, as a query string (empty: none).
    pub filter: String,
    /// `native`, `slack` or `stix`.
    pub format: String,
    /// RFC 3339, UTC.
    #[schema(format = DateTime)]
    pub created_at: String,
    /// The log position delivered through (`null`: nothing yet).
    pub cursor: Option<String>,
    /// Failed tries of the batch in flight (0: none failing).
    pub failing_attempts: u32,
    /// RFC 3339, UTC, of the last batch the receiver took; `null`: none yet.
    #[schema(format = DateTime)]
    pub last_success_at: Option<String>,
    /// Why the last try failed, or why delivery is paused; `null` after a success.
    pub last_error: Option<String>,
}

/// A time on the wire: RFC 3339, UTC, to the second.
fn rfc3339(time: chrono::DateTime<chrono::Utc>) -> String {
    time.to_rfc3339_opts(chrono::SecondsFormat::Secs, true)
}

impl From<&billing::Webhook> for WebhookView {
    fn from(webhook: &billing::Webhook) -> Self {
        WebhookView {
            id: webhook.id.clone(),
            url: webhook.url.clone(),
            filter: webhook.filter.clone(),
            format: webhook.format.clone(),
            created_at: rfc3339(webhook.created_at),
            cursor: webhook.cursor.clone(),
            failing_attempts: webhook.failing_attempts,
            last_success_at: webhook.last_success_at.map(rfc3339),
            last_error: webhook.last_error.clone(),
        }
    }
}

/// The answer to `POST /v1/account/webhooks`: the endpoint and its signing secret, shown once.
#[derive(Debug, Serialize, ToSchema)]
pub struct NewWebhookView {
    /// The key of every batch's `Sluice-Signature` (`whsec_…`): keep it; it is not shown again.
    pub secret: String,
    #[serde(flatten)]
    pub webhook: WebhookView,
}

/// `GET /v1/account/webhooks`.
#[derive(Debug, Serialize, ToSchema)]
pub struct WebhookList {
    /// Oldest first.
    pub webhooks: Vec<WebhookView>,
}

/// `?outcome=&limit=` of `GET /v1/account/webhooks/{id}/deliveries`.
#[derive(Debug, Default, Deserialize, IntoParams)]
#[serde(deny_unknown_fields)]
#[into_params(parameter_in = Query)]
pub struct DeliveriesQuery {
    /// Only rows with this outcome: `delivered`, `failed`, `dead_letter` or `gap`.
    pub outcome: Option<String>,
    /// Rows, newest first: 1 to 1,000 (default 100).
    pub limit: Option<u32>,
}

/// One row of an endpoint's delivery log: a try, or a gap.
#[derive(Debug, Serialize, ToSchema)]
pub struct DeliveryView {
    /// RFC 3339, UTC.
    #[schema(format = DateTime)]
    pub at: String,
    /// The batch's idempotency key (the `Idempotency-Key` header); empty for a gap.
    pub batch: String,
    /// 1 for a batch's first try; 0 for a gap.
    pub attempt: u32,
    /// `delivered`, `failed` (tried again later), `dead_letter` (the last try failed: the batch
    /// is given up; its cursors say what to replay from the stream) or `gap` (indicators left
    /// the retained log before they were delivered).
    pub outcome: &'static str,
    /// The receiver's status, if it answered.
    pub http_status: Option<u16>,
    pub error: Option<String>,
    /// Indicators in the batch.
    pub indicators: u32,
    /// Cursor of the batch's first indicator (of a gap: where it starts).
    pub first_cursor: Option<String>,
    /// Cursor of its last indicator (of a gap: where delivery resumed).
    pub last_cursor: Option<String>,
}

impl From<&billing::Delivery> for DeliveryView {
    fn from(delivery: &billing::Delivery) -> Self {
        let record = &delivery.record;
        DeliveryView {
            at: rfc3339(delivery.at),
            batch: record.batch_key.clone(),
            attempt: record.attempt,
            outcome: record.outcome.as_str(),
            http_status: record.http_status,
            error: record.error.clone(),
            indicators: record.indicators,
            first_cursor: record.first_cursor.clone(),
            last_cursor: record.last_cursor.clone(),
        }
    }
}

/// `GET /v1/account/webhooks/{id}/deliveries`.
#[derive(Debug, Serialize, ToSchema)]
pub struct DeliveryList {
    /// Newest first.
    pub deliveries: Vec<DeliveryView>,
}
