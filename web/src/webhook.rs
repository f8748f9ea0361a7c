//! `POST /v1/billing/webhook` (docs/protocol.md §5.7): the billing provider's signed
//! subscription events.
//!
//! Order matters: the signature is verified over the raw body bytes before the body is parsed
//! or the database is touched, so a forged or replayed request costs one HMAC per configured
//! secret and nothing else. Answers are chosen for a provider that retries on anything but
//! 2xx: redeliveries, stale events and event types we do not act on get 200 (retrying cannot
//! change them); an unknown account or plan gets 4xx so that the retry, once an operator has
//! fixed it, is applied.

use axum::body::{to_bytes, Body};
use axum::extract::State;
use axum::http::HeaderMap;
use axum::Json;
use billing::webhook_signature::{self, SIGNATURE_HEADER};
use billing::{StoreError, SubscriptionEvent};

use crate::api::{ErrorBody, WebhookAnswer, WebhookEvent};
use crate::error::ApiError;
use crate::AppState;

/// Largest event body accepted; subscription events are a few hundred bytes.
pub const MAX_WEBHOOK_BODY_BYTES: usize = 64 * 1024;

/// The 503 message in test mode (no secret configured).
pub const NOT_CONFIGURED_MESSAGE: &str =
    "billing webhook is not configured: set --billing-webhook-secret";

/// Receive a billing event.
///
/// `POST /v1/billing/webhook`: the billing provider's signed subscription events
/// (`subscription.updated` moves the account to `plan`, `subscription.deleted` back to `free`;
/// other types are acknowledged and ignored). The signature is checked over the raw body before
/// anything else. Redeliveries and stale events answer 200, so the provider stops retrying; an
/// unknown account or plan answers 4xx, so its retry applies once an operator has fixed it.
#[utoipa::path(
    post,
    path = "/v1/billing/webhook",
    tag = "billing",
    request_body(content = WebhookEvent, description = "The event, at most 64 KiB; signed as \
        it is sent."),
    responses(
        (status = 200, description = "Done with the event: `applied`, `duplicate`, `stale` or \
            `ignored`.", body = WebhookAnswer),
        (status = 400, description = "Not the expected JSON, or a field the event type needs \
            is missing.", body = ErrorBody),
        (status = 401, description = "The signature is missing, malformed, stale or wrong.",
            body = ErrorBody),
        (status = 404, description = "No such account (retried later, it applies).",
            body = ErrorBody),
        (status = 413, description = "The body is over 64 KiB.", body = ErrorBody),
        (status = 422, description = "No such plan.", body = ErrorBody),
        (status = 503, description = "No webhook secret is configured (test mode), or the \
            account database is unavailable.", body = ErrorBody),
    ),
    security(("webhook_signature" = [])),
)]
pub(crate) async fn receive(
    State(state): State<AppState>,
    headers: HeaderMap,
    body: Body,
) -> Result<Json<WebhookAnswer>, ApiError> {
    let secrets = &state.config.billing_webhook_secrets;
    if secrets.is_empty() {
        return Err(ApiError::NotConfigured(NOT_CONFIGURED_MESSAGE.into()));
    }
    let body = to_bytes(body, MAX_WEBHOOK_BODY_BYTES).await.map_err(|_| {
        ApiError::PayloadTooLarge(format!(
            "webhook bodies are limited to {MAX_WEBHOOK_BODY_BYTES} bytes"
        ))
    })?;
    let header = match headers.get(SIGNATURE_HEADER) {
        None => None,
        Some(value) => Some(value.to_str().map_err(|_| {
            ApiError::BadSignature(format!(
                "malformed {SIGNATURE_HEADER} header: it is not ASCII"
            ))
        })?),
    };
    let now = chrono::Utc::now().timestamp();
    if let Err(error) = webhook_signature::verify(header, &body, secrets, now) {
        tracing::warn!(error = %error, "refused a billing webhook request");
        return Err(ApiError::BadSignature(error.to_string()));
    }

    // Authentic from here on.
    let event: WebhookEvent = serde_json::from_slice(&body).map_err(|error| {
        ApiError::BadRequest(format!(
            "the event is not the expected JSON ({{\"id\", \"type\", \"account\", \"plan\", \"created\"}}): {error}"
        ))
    })?;
    if !SubscriptionEvent::is_handled_type(&event.event_type) {
        tracing::info!(billing.event_id = %event.id, billing.event_type = %event.event_type, "ignored a billing event");
        return Ok(Json(WebhookAnswer { status: "ignored" }));
    }
    let event = event.into_subscription_event()?;
    let outcome =
        state
            .store
            .apply_subscription_event(&event)
            .await
            .map_err(|error| match error {
                // The account is named by the provider: say so, rather than suggest a CLI command.
                StoreError::UnknownAccount(name) => ApiError::NotFound(format!(
                    "no account named `{name}`: create it, and the provider's retry will apply"
                )),
                error => error.into(),
            })?;
    Ok(Json(WebhookAnswer {
        status: outcome.as_str(),
    }))
}
