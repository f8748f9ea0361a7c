//! The admin API (scope `admin`): plans, any account's plan, any account's usage.

use axum::extract::State;
use axum::Json;
use billing::StoreError;

use crate::account::usage_of;
use crate::api::{AccountView, PlanChoice, PlanEdit, PlanList, PlanView, UsageQuery, UsageView};
use crate::auth::AdminCaller;
use crate::error::ApiError;
use crate::extract::{JsonBody, PathParams, QueryParams};
use crate::AppState;

/// `GET /v1/admin/plans`: every plan with its price and limits.
pub(crate) async fn list_plans(
    State(state): State<AppState>,
    _admin: AdminCaller,
) -> Result<Json<PlanList>, ApiError> {
    let plans = state.store.plans().await?;
    Ok(Json(PlanList {
        plans: plans.iter().map(PlanView::from).collect(),
    }))
}

/// `PUT /v1/admin/plans/{name}`: replaces a plan's limits (the complete set). Accounts on the
/// plan carry the new limits at once; live connections adopt them via the change log.
pub(crate) async fn edit_plan(
    State(state): State<AppState>,
    AdminCaller(admin): AdminCaller,
    PathParams(name): PathParams<String>,
    JsonBody(edit): JsonBody<PlanEdit>,
) -> Result<Json<PlanView>, ApiError> {
    let limits = edit.into_limits(&name)?;
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

/// `PUT /v1/admin/accounts/{name}/plan` `{"plan": …}`: moves any account to any plan,
/// contract plans included, whatever the billing mode.
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

/// `GET /v1/admin/accounts/{name}/usage?from=…&to=…`.
pub(crate) async fn account_usage(
    State(state): State<AppState>,
    _admin: AdminCaller,
    PathParams(name): PathParams<String>,
    QueryParams(query): QueryParams<UsageQuery>,
) -> Result<Json<UsageView>, ApiError> {
    usage_of(&state, &name, query).await.map(Json)
}
