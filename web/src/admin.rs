//! The admin API (scope `admin`): plans, any account's plan, any account's usage.

use axum::extract::State;
use axum::Json;
use billing::StoreError;

use crate::account::usage_of;
use crate::api::{
    AccountView, ErrorBody, PlanChoice, PlanEdit, PlanList, PlanView, UsageQuery, UsageView,
};
use crate::auth::AdminCaller;
use crate::error::ApiError;
use crate::extract::{JsonBody, PathParams, QueryParams};
use crate::AppState;

/// Every plan (admin).
///
/// `GET /v1/admin/plans`: every plan with its price and limits.
#[utoipa::path(
    get,
    path = "/v1/admin/plans",
    tag = "admin",
    responses(
        (status = 200, description = "Every plan, cheapest first.", body = PlanList),
        (status = 401, description = "No valid token.", body = ErrorBody),
        (status = 403, description = "The token is not an `admin` token.", body = ErrorBody),
        (status = 503, description = "The account database is unavailable; retry.", body = ErrorBody),
    ),
    security(("api_token" = [])),
)]
pub(crate) async fn list_plans(
    State(state): State<AppState>,
    _admin: AdminCaller,
) -> Result<Json<PlanList>, ApiError> {
    let plans = state.store.plans().await?;
    Ok(Json(PlanList {
        plans: plans.iter().map(PlanView::from).collect(),
    }))
}

/// Replace a plan's limits (admin).
///
/// `PUT /v1/admin/plans/{name}`: replaces a plan's limits (the complete set). Accounts on the
/// plan carry the new limits at once; live connections adopt them via the change log.
#[utoipa::path(
    put,
    path = "/v1/admin/plans/{name}",
    tag = "admin",
    params(("name" = String, Path, description = "The plan's name.", example = "pro")),
    request_body = PlanEdit,
    responses(
        (status = 200, description = "The plan as it is now.", body = PlanView),
        (status = 400, description = "The body is not the expected JSON.", body = ErrorBody),
        (status = 401, description = "No valid token.", body = ErrorBody),
        (status = 403, description = "The token is not an `admin` token.", body = ErrorBody),
        (status = 404, description = "No such plan.", body = ErrorBody),
        (status = 422, description = "A field is missing or out of range (the message names \
            it).", body = ErrorBody),
        (status = 503, description = "The account database is unavailable; retry.", body = ErrorBody),
    ),
    security(("api_token" = [])),
)]
pub(crate) async fn edit_plan(
    State(state): State<AppState>,
    AdminCaller(admin): AdminCaller,
    PathParams(name): PathParams<String>,
    JsonBody(edit): JsonBody<PlanEdit>,
) -> Result<Json<PlanView>, ApiError> {
    let limits = edit.into_plan(&name)?;
    match state.store.update_plan(&limits).await {
        Ok(()) => {}
        // The path names the resource, so a missing plan is a 404 here, not a bad value.
        Err(StoreError::UnknownPlan(_)) => {
            return Err(ApiError::NotFound(format!(
                "no plan named `{name}` (GET /v1/admin/plans lists them)"
            )))
        }
        Err(error) => return Err(error.into()),
    }
    tracing::info!(admin.account_id = admin.account_id, plan = %name, "admin edited a plan");
    Ok(Json(PlanView::from(&limits)))
}

/// Move an account to a plan (admin).
///
/// `PUT /v1/admin/accounts/{name}/plan` `{"plan": …}`: moves any account to any plan,
/// contract plans included, whatever the billing mode.
#[utoipa::path(
    put,
    path = "/v1/admin/accounts/{name}/plan",
    tag = "admin",
    params(("name" = String, Path, description = "The account's name.")),
    request_body = PlanChoice,
    responses(
        (status = 200, description = "The account on its new plan.", body = AccountView),
        (status = 400, description = "The body is not the expected JSON.", body = ErrorBody),
        (status = 401, description = "No valid token.", body = ErrorBody),
        (status = 403, description = "The token is not an `admin` token.", body = ErrorBody),
        (status = 404, description = "No such account.", body = ErrorBody),
        (status = 422, description = "No such plan.", body = ErrorBody),
        (status = 503, description = "The account database is unavailable; retry.", body = ErrorBody),
    ),
    security(("api_token" = [])),
)]
pub(crate) async fn set_account_plan(
    State(state): State<AppState>,
    AdminCaller(admin): AdminCaller,
    PathParams(name): PathParams<String>,
    JsonBody(choice): JsonBody<PlanChoice>,
) -> Result<Json<AccountView>, ApiError> {
    let account = state.store.set_plan(&name, &choice.plan).await?;
    let plan = state
        .store
        .plan(&account.plan)
        .await?
        .ok_or_else(|| ApiError::Unprocessable(format!("no plan named `{}`", account.plan)))?;
    tracing::info!(
        admin.account_id = admin.account_id,
        account.id = account.id,
        plan = %plan.name,
        "admin changed an account's plan"
    );
    Ok(Json(AccountView::of(&account, &plan)))
}

/// Any account's usage (admin).
///
/// `GET /v1/admin/accounts/{name}/usage?from=…&to=…`: as `GET /v1/account/usage`, for the named
/// account.
#[utoipa::path(
    get,
    path = "/v1/admin/accounts/{name}/usage",
    tag = "admin",
    params(("name" = String, Path, description = "The account's name."), UsageQuery),
    responses(
        (status = 200, description = "The days with usage in the range.", body = UsageView),
        (status = 400, description = "A date is not `YYYY-MM-DD`, `from` is after `to`, or the \
            range is over 366 days.", body = ErrorBody),
        (status = 401, description = "No valid token.", body = ErrorBody),
        (status = 403, description = "The token is not an `admin` token.", body = ErrorBody),
        (status = 404, description = "No such account.", body = ErrorBody),
        (status = 503, description = "The account database is unavailable; retry.", body = ErrorBody),
    ),
    security(("api_token" = [])),
)]
pub(crate) async fn account_usage(
    State(state): State<AppState>,
    _admin: AdminCaller,
    PathParams(name): PathParams<String>,
    QueryParams(query): QueryParams<UsageQuery>,
) -> Result<Json<UsageView>, ApiError> {
    usage_of(&state, &name, query).await.map(Json)
}
