//! The account's outbound webhook endpoints (docs/protocol.md §13): `/v1/account/webhooks`.
//! Registering, listing and deleting them, and their delivery log; the gateway delivers
//! (`gateway::webhooks`). Not to be confused with `webhook`, the billing provider's inbound one.

use axum::extract::State;
use axum::http::StatusCode;
use axum::Json;
use billing::{DeliveryOutcome, NewWebhook};
use domain::webhook::{check_endpoint_url, WebhookFormat};
use domain::Filter;

use crate::api::{
    DeliveriesQuery, DeliveryList, DeliveryView, ErrorBody, NewWebhookRequest, NewWebhookView,
    WebhookList, WebhookView,
};
use crate::auth::Caller;
use crate::error::ApiError;
use crate::extract::{JsonBody, PathParams, QueryParams};
use crate::AppState;

/// Longest filter query string accepted.
pub const MAX_FILTER_LEN: usize = 1024;
/// Delivery-log rows one request returns by default, and at most.
const DEFAULT_DELIVERIES: u32 = 100;
const MAX_DELIVERIES: u32 = 1000;

/// The account's webhook endpoints.
///
/// `GET /v1/account/webhooks`: every endpoint, oldest first, with how delivery stands.
#[utoipa::path(
    get,
    path = "/v1/account/webhooks",
    tag = "webhooks",
    responses(
        (status = 200, description = "The endpoints, oldest first.", body = WebhookList),
        (status = 401, description = "No valid token or session.", body = ErrorBody),
        (status = 503, description = "The account database is unavailable; retry.", body = ErrorBody),
    ),
    security(("api_token" = []), ("session_cookie" = [])),
)]
pub(crate) async fn list(
    State(state): State<AppState>,
    caller: Caller,
) -> Result<Json<WebhookList>, ApiError> {
    let webhooks = state.store.webhooks(&caller.account).await?;
    Ok(Json(WebhookList {
        webhooks: webhooks.iter().map(WebhookView::from).collect(),
    }))
}

/// Register a webhook endpoint.
///
/// `POST /v1/account/webhooks` `{url, filter, format}`: from now on, what the account's plan
/// sees and the filter takes is POSTed to `url` in signed batches. The answer is the only time
/// the signing secret is shown. 201.
#[utoipa::path(
    post,
    path = "/v1/account/webhooks",
    tag = "webhooks",
    request_body = NewWebhookRequest,
    responses(
        (status = 201, description = "The endpoint, with its signing secret: keep it now.",
            body = NewWebhookView),
        (status = 400, description = "The body is not the expected JSON.", body = ErrorBody),
        (status = 401, description = "No valid token or session.", body = ErrorBody),
        (status = 403, description = "The plan has no firehose, or its endpoints are all used \
            (as many as its connections); or a session without `X-CSRF-Token`.", body = ErrorBody),
        (status = 422, description = "The URL is refused (not https, credentials in it, a \
            private or special-purpose address), the filter does not parse, or an unknown \
            format.", body = ErrorBody),
        (status = 503, description = "The account database is unavailable; retry.", body = ErrorBody),
    ),
    security(("api_token" = []), ("session_cookie" = [], "csrf_token" = [])),
)]
pub(crate) async fn create(
    State(state): State<AppState>,
    caller: Caller,
    JsonBody(request): JsonBody<NewWebhookRequest>,
) -> Result<(StatusCode, Json<NewWebhookView>), ApiError> {
    let limits = &caller.plan.limits;
    if !limits.firehose {
        return Err(ApiError::Forbidden(format!(
            "webhooks deliver the firehose, which the {} plan does not include; upgrade (PUT \
             /v1/account/subscription) first",
            caller.plan.name
        )));
    }
    let url = check_endpoint_url(request.url.trim(), state.config.webhook_allow_private)
        .map_err(|why| ApiError::Unprocessable(format!("`url`: {why}")))?;
    let filter = request.filter.unwrap_or_default();
    let (filter, parsed) = check_filter(filter.trim())?;
    if parsed.correlated() == Some(true) && !limits.correlated {
        return Err(ApiError::Unprocessable(format!(
            "`filter`: correlated=true asks for the correlated stream, which the {} plan does not \
             include; the endpoint would receive nothing",
            caller.plan.name
        )));
    }
    let format = request
        .format
        .as_deref()
        .unwrap_or(WebhookFormat::Native.as_str())
        .parse::<WebhookFormat>()
        .map_err(|why| ApiError::Unprocessable(format!("`format`: {why}")))?;
    let new = NewWebhook {
        url: url.to_string(),
        filter,
        format: format.as_str().to_owned(),
    };
    let (webhook, secret) = state
        .store
        .create_webhook(&caller.account, &new, limits.max_connections)
        .await?;
    Ok((
        StatusCode::CREATED,
        Json(NewWebhookView {
            secret,
            webhook: WebhookView::from(&webhook),
        }),
    ))
}

/// A filter query string the stream would accept, as given, and what it means.
fn check_filter(filter: &str) -> Result<(String, Filter), ApiError> {
    if filter.len() > MAX_FILTER_LEN {
        return Err(ApiError::Unprocessable(format!(
            "`filter` is {} bytes; at most {MAX_FILTER_LEN}",
            filter.len()
        )));
    }
    let filter = filter.strip_prefix('?').unwrap_or(filter);
    let parsed = Filter::from_query(filter)
        .map_err(|why| ApiError::Unprocessable(format!("`filter`: {why}")))?;
    Ok((filter.to_owned(), parsed))
}

/// One webhook endpoint.
///
/// `GET /v1/account/webhooks/{id}`.
#[utoipa::path(
    get,
    path = "/v1/account/webhooks/{id}",
    tag = "webhooks",
    params(("id" = String, Path, description = "The endpoint's id (`wh_…`).")),
    responses(
        (status = 200, description = "The endpoint.", body = WebhookView),
        (status = 401, description = "No valid token or session.", body = ErrorBody),
        (status = 404, description = "The account has no such endpoint.", body = ErrorBody),
        (status = 503, description = "The account database is unavailable; retry.", body = ErrorBody),
    ),
    security(("api_token" = []), ("session_cookie" = [])),
)]
pub(crate) async fn show(
    State(state): State<AppState>,
    caller: Caller,
    PathParams(id): PathParams<String>,
) -> Result<Json<WebhookView>, ApiError> {
    let webhook = owned(&state, &caller, &id).await?;
    Ok(Json(WebhookView::from(&webhook)))
}

/// Delete a webhook endpoint.
///
/// `DELETE /v1/account/webhooks/{id}`: delivery stops (a try under way may still arrive) and
/// the delivery log goes with it. 204.
#[utoipa::path(
    delete,
    path = "/v1/account/webhooks/{id}",
    tag = "webhooks",
    params(("id" = String, Path, description = "The endpoint's id (`wh_…`).")),
    responses(
        (status = 204, description = "Deleted."),
        (status = 401, description = "No valid token or session.", body = ErrorBody),
        (status = 403, description = "A session without `X-CSRF-Token`.", body = ErrorBody),
        (status = 404, description = "The account has no such endpoint.", body = ErrorBody),
        (status = 503, description = "The account database is unavailable; retry.", body = ErrorBody),
    ),
    security(("api_token" = []), ("session_cookie" = [], "csrf_token" = [])),
)]
pub(crate) async fn remove(
    State(state): State<AppState>,
    caller: Caller,
    PathParams(id): PathParams<String>,
) -> Result<StatusCode, ApiError> {
    match state.store.delete_webhook(&caller.account, &id).await? {
        true => Ok(StatusCode::NO_CONTENT),
        false => Err(not_found(&id)),
    }
}

/// A webhook endpoint's delivery log.
///
/// `GET /v1/account/webhooks/{id}/deliveries?outcome=&limit=`: its tries and gaps, newest
/// first (the newest 1,000 are kept).
#[utoipa::path(
    get,
    path = "/v1/account/webhooks/{id}/deliveries",
    tag = "webhooks",
    params(("id" = String, Path, description = "The endpoint's id (`wh_…`)."), DeliveriesQuery),
    responses(
        (status = 200, description = "The delivery log, newest first.", body = DeliveryList),
        (status = 400, description = "An unknown query key.", body = ErrorBody),
        (status = 401, description = "No valid token or session.", body = ErrorBody),
        (status = 404, description = "The account has no such endpoint.", body = ErrorBody),
        (status = 422, description = "An unknown outcome, or `limit` out of range.", body = ErrorBody),
        (status = 503, description = "The account database is unavailable; retry.", body = ErrorBody),
    ),
    security(("api_token" = []), ("session_cookie" = [])),
)]
pub(crate) async fn deliveries(
    State(state): State<AppState>,
    caller: Caller,
    PathParams(id): PathParams<String>,
    QueryParams(query): QueryParams<DeliveriesQuery>,
) -> Result<Json<DeliveryList>, ApiError> {
    let outcome = match query.outcome.as_deref().filter(|text| !text.is_empty()) {
        None => None,
        Some(text) => Some(DeliveryOutcome::parse(text).map_err(|_| {
            ApiError::Unprocessable(format!(
                "`outcome` must be delivered, failed, dead_letter or gap (got `{text}`)"
            ))
        })?),
    };
    let limit = match query.limit {
        None => DEFAULT_DELIVERIES,
        Some(limit @ 1..=MAX_DELIVERIES) => limit,
        Some(limit) => {
            return Err(ApiError::Unprocessable(format!(
                "`limit` must be from 1 to {MAX_DELIVERIES} (got {limit})"
            )))
        }
    };
    let webhook = owned(&state, &caller, &id).await?;
    let rows = state
        .store
        .webhook_deliveries(&webhook.id, outcome, limit)
        .await?;
    Ok(Json(DeliveryList {
        deliveries: rows.iter().map(DeliveryView::from).collect(),
    }))
}

/// The caller's endpoint `id`, or 404.
async fn owned(state: &AppState, caller: &Caller, id: &str) -> Result<billing::Webhook, ApiError> {
    state
        .store
        .webhook(&caller.account, id)
        .await?
        .ok_or_else(|| not_found(id))
}

fn not_found(id: &str) -> ApiError {
    ApiError::NotFound(format!(
        "this account has no webhook `{id}` (GET /v1/account/webhooks lists them)"
    ))
}
