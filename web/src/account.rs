//! The caller's own account: `GET /v1/account`, `PUT /v1/account/subscription` (the plans
//! page's toggle) and `GET /v1/account/usage`.

use axum::extract::State;
use axum::http::StatusCode;
use axum::Json;
use billing::Scope;
use chrono::{Days, NaiveDate, Utc};

use crate::api::{
    AccountView, CheckoutView, ErrorBody, PlanChoice, PlanList, PlanView, SubscriptionAnswer,
    UsageQuery, UsageView,
};
use crate::auth::Caller;
use crate::error::ApiError;
use crate::extract::{JsonBody, QueryParams};
use crate::AppState;

/// Days in the default usage range (ending today, inclusive).
const DEFAULT_USAGE_DAYS: u64 = 30;
/// Longest usage range one request may ask for: a year and a day, enough for any invoice.
const MAX_USAGE_DAYS: i64 = 366;

/// The caller's account.
///
/// `GET /v1/account`: the caller's account, plan and limits.
#[utoipa::path(
    get,
    path = "/v1/account",
    tag = "account",
    responses(
        (status = 200, description = "The account, its plan and limits.", body = AccountView),
        (status = 401, description = "No valid token or session.", body = ErrorBody),
        (status = 503, description = "The account database is unavailable; retry.", body = ErrorBody),
    ),
    security(("api_token" = []), ("session_cookie" = [])),
)]
pub(crate) async fn show(caller: Caller) -> Json<AccountView> {
    Json(AccountView::new(&caller.account, &caller.plan))
}

/// Change the account's plan.
///
/// `PUT /v1/account/subscription` `{"plan": …}`: in test mode (no webhook secret) moves the
/// account at once (200, the account); with a payment provider, answers where to pay (202,
/// [`CheckoutView`]) when `--billing-checkout-url` is set, and 409 when it is not. Contract
/// plans (no price) are moved to by an admin only.
#[utoipa::path(
    put,
    path = "/v1/account/subscription",
    tag = "account",
    request_body = PlanChoice,
    responses(
        (status = 200, description = "Test mode: the plan changed; the account as it is now.",
            body = AccountView),
        (status = 202, description = "A payment provider owns subscriptions: send the user to \
            `checkout_url`; its signed webhook changes the plan.", body = CheckoutView),
        (status = 400, description = "The body is not the expected JSON.", body = ErrorBody),
        (status = 401, description = "No valid token or session.", body = ErrorBody),
        (status = 403, description = "Session without the right `X-CSRF-Token`.", body = ErrorBody),
        (status = 409, description = "A payment provider owns subscriptions and no checkout is \
            configured.", body = ErrorBody),
        (status = 422, description = "No such plan, or a contract plan.", body = ErrorBody),
        (status = 503, description = "The account database is unavailable; retry.", body = ErrorBody),
    ),
    security(("api_token" = []), ("session_cookie" = [], "csrf_token" = [])),
)]
pub(crate) async fn subscribe(
    State(state): State<AppState>,
    caller: Caller,
    JsonBody(choice): JsonBody<PlanChoice>,
) -> Result<(StatusCode, Json<SubscriptionAnswer>), ApiError> {
    // A `read` token streams for a tool (a SIEM, a firewall feed); it must not move the account
    // between plans. The signed-in user, or a `write` token, may.
    if !caller.session && !caller.scope.allows(Scope::Write) {
        return Err(ApiError::Forbidden(
            "a `read` token cannot change the account's plan: sign in on the web page, or use a \
             `write` token"
                .into(),
        ));
    }
    let checkout = state.config.billing_checkout_url.as_deref();
    if !state.config.test_mode() && checkout.is_none() {
        let message = if state.config.billing_webhook_secrets.is_empty() {
            "this deployment takes no payments, so an admin changes plans (PUT \
             /v1/admin/accounts/{name}/plan); to try plans out, run it with --billing-test-mode"
        } else {
            "subscriptions are managed by the billing provider; change the plan through its \
             checkout or customer portal (an admin can still use PUT /v1/admin/accounts/{name}/plan)"
        };
        return Err(ApiError::Conflict(message.into()));
    }
    let plan = state
        .store
        .plan(&choice.plan)
        .await?
        .ok_or_else(|| ApiError::Unprocessable(format!("no plan named `{}`", choice.plan)))?;
    // Contract plans are agreed with a person, not toggled: without this, test mode would let
    // any account give itself `enterprise`.
    if plan.price_cents.is_none() {
        return Err(ApiError::Unprocessable(format!(
            "plan `{}` is sold by contract; ask an admin to move the account",
            plan.name
        )));
    }
    if let Some(checkout) = checkout.filter(|_| !state.config.test_mode()) {
        // The provider takes payment, then tells us through the signed webhook.
        let mut url = url::Url::parse(checkout).map_err(|error| {
            ApiError::NotConfigured(format!("--billing-checkout-url is not a URL ({error})"))
        })?;
        url.query_pairs_mut()
            .append_pair("account", &caller.account)
            .append_pair("plan", &plan.name);
        return Ok((
            StatusCode::ACCEPTED,
            Json(SubscriptionAnswer::Checkout(CheckoutView {
                status: "checkout",
                checkout_url: url.into(),
            })),
        ));
    }
    let account = state.store.set_plan(&caller.account, &plan.name).await?;
    tracing::info!(account.id = account.id, plan = %plan.name, "account changed its own plan (test mode)");
    Ok((
        StatusCode::OK,
        Json(SubscriptionAnswer::Changed(AccountView::of(
            &account, &plan,
        ))),
    ))
}

/// The plans.
///
/// `GET /v1/plans` (anyone): every plan with its price and limits, cheapest first.
#[utoipa::path(
    get,
    path = "/v1/plans",
    tag = "plans",
    responses(
        (status = 200, description = "Every plan, cheapest first.", body = PlanList),
        (status = 503, description = "The account database is unavailable; retry.", body = ErrorBody),
    ),
)]
pub(crate) async fn plans(State(state): State<AppState>) -> Result<Json<PlanList>, ApiError> {
    let plans = state.store.plans().await?;
    Ok(Json(PlanList {
        plans: plans.iter().map(PlanView::from).collect(),
    }))
}

/// The account's usage.
///
/// `GET /v1/account/usage?from=YYYY-MM-DD&to=YYYY-MM-DD`: per UTC day, what the account's
/// streams and feeds delivered, dropped and sent, and its connections.
#[utoipa::path(
    get,
    path = "/v1/account/usage",
    tag = "account",
    params(UsageQuery),
    responses(
        (status = 200, description = "The days with usage in the range.", body = UsageView),
        (status = 400, description = "A date is not `YYYY-MM-DD`, `from` is after `to`, or the \
            range is over 366 days.", body = ErrorBody),
        (status = 401, description = "No valid token or session.", body = ErrorBody),
        (status = 503, description = "The account database is unavailable; retry.", body = ErrorBody),
    ),
    security(("api_token" = []), ("session_cookie" = [])),
)]
pub(crate) async fn usage(
    State(state): State<AppState>,
    caller: Caller,
    QueryParams(query): QueryParams<UsageQuery>,
) -> Result<Json<UsageView>, ApiError> {
    usage_of(&state, &caller.account, query).await.map(Json)
}

/// The usage of `account` over the query's range (shared with the admin API).
pub(crate) async fn usage_of(
    state: &AppState,
    account: &str,
    query: UsageQuery,
) -> Result<UsageView, ApiError> {
    let (from, to) = usage_range(&query, Utc::now().date_naive())?;
    let days = state.store.usage(account, from, to).await?;
    Ok(UsageView {
        account: account.to_owned(),
        from: from.to_string(),
        to: to.to_string(),
        days,
    })
}

/// The inclusive range a usage query asks for, given today's (UTC) date.
fn usage_range(query: &UsageQuery, today: NaiveDate) -> Result<(NaiveDate, NaiveDate), ApiError> {
    let parse = |name: &str, text: &str| {
        NaiveDate::parse_from_str(text, "%Y-%m-%d").map_err(|_| {
            ApiError::BadRequest(format!(
                "`{name}` must be a date as YYYY-MM-DD (got `{text}`)"
            ))
        })
    };
    let to = query
        .to
        .as_deref()
        .map(|text| parse("to", text))
        .transpose()?
        .unwrap_or(today);
    let from = match query.from.as_deref() {
        Some(text) => parse("from", text)?,
        None => to
            .checked_sub_days(Days::new(DEFAULT_USAGE_DAYS - 1))
            .unwrap_or(NaiveDate::MIN),
    };
    if from > to {
        return Err(ApiError::BadRequest(format!(
            "`from` ({from}) is after `to` ({to})"
        )));
    }
    if (to - from).num_days() >= MAX_USAGE_DAYS {
        return Err(ApiError::BadRequest(format!(
            "ask for at most {MAX_USAGE_DAYS} days at a time"
        )));
    }
    Ok((from, to))
}

#[cfg(test)]
mod tests {
    use super::*;

    fn day(text: &str) -> NaiveDate {
        text.parse().unwrap()
    }

    fn check(from: Option<&str>, to: Option<&str>, expected: Result<(&str, &str), &str>) {
        let query = UsageQuery {
            from: from.map(Into::into),
            to: to.map(Into::into),
        };
        let result = usage_range(&query, day("2024-03-15"));
        match expected {
            Ok((from, to)) => assert_eq!(result.unwrap(), (day(from), day(to))),
            Err(fragment) => {
                let message = result.unwrap_err().to_string();
                assert!(message.contains(fragment), "{message}");
            }
        }
    }

    #[test]
    fn usage_ranges() {
        check(None, None, Ok(("2024-02-15", "2024-03-15")));
        check(None, Some("2024-01-31"), Ok(("2024-01-02", "2024-01-31")));
        check(Some("2024-03-01"), None, Ok(("2024-03-01", "2024-03-15")));
        check(
            Some("2024-03-01"),
            Some("2024-03-01"),
            Ok(("2024-03-01", "2024-03-01")),
        );
        check(
            Some("2024-01-01"),
            Some("2024-12-31"),
            Ok(("2024-01-01", "2024-12-31")),
        );
        check(
            Some("2024-01-01"),
            Some("2025-01-01"),
            Err("at most 366 days"),
        );
        check(Some("2024-03-02"), Some("2024-03-01"), Err("is after"));
        check(Some("yesterday"), None, Err("`from` must be a date"));
        check(None, Some("2024-13-01"), Err("`to` must be a date"));
        check(Some("2024-3-1"), None, Ok(("2024-03-01", "2024-03-15")));
    }
}
