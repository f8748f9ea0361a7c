//! Ingest over HTTP: `POST /v1/indicators` (one object, a JSON array, or NDJSON).
//!
//! Every item gets its own verdict; a bad item never costs the good ones. The provider is the
//! authenticated account, never the payload (docs/protocol.md §2).

use axum::extract::{FromRequest, Request, State};
use axum::http::{header, HeaderMap, StatusCode};
use axum::response::IntoResponse;
use axum::Json;
use billing::Scope;
use bytes::Bytes;
use domain::{Indicator, Provenance, Rejection};

use crate::error::ApiError;
use crate::metrics::SourceLabels;
use crate::wire::{ErrorBody, IngestResponse, RejectedItem};
use crate::withdraw::Withdrawals;
use crate::AppState;

/// Request bodies above this are refused with 413 (docs/protocol.md §3).
pub const BODY_LIMIT: usize = 1024 * 1024;

/// Publish indicators.
///
/// One JSON object, a JSON array of objects, or NDJSON (`Content-Type: application/x-ndjson`,
/// one object per line), at most 1 MiB. Every item gets its own verdict: a bad item never costs
/// the good ones, which are stored and streamed at once. The provider is the authenticated
/// account, never the payload. An item with `"withdrawn": true` withdraws the account's
/// reports of its indicator instead (see `DELETE /v1/indicators/{id}`); it is refused when
/// there is nothing of the account's to withdraw. Needs a `write` token.
#[utoipa::path(
    post,
    path = "/v1/indicators",
    tag = "indicators",
    request_body(
        description = "One indicator, an array of them, or NDJSON.",
        content(
            (crate::openapi::PublishBody = "application/json"),
            (String = "application/x-ndjson"),
        )
    ),
    responses(
        (status = 202, description = "Stored what was valid; `rejected` lists the rest with \
            their reasons.", body = IngestResponse),
        (status = 400, description = "The body is neither JSON nor NDJSON.", body = ErrorBody),
        (status = 401, description = "No token, or not a valid one.", body = ErrorBody),
        (status = 403, description = "The token lacks the `write` scope.", body = ErrorBody),
        (status = 408, description = "The body did not arrive within `--http-body-timeout` \
            (30 s); the connection is closed.", body = ErrorBody),
        (status = 413, description = "The body is over 1 MiB: split it.", body = ErrorBody),
        (status = 503, description = "The log backend is unavailable; nothing was stored, retry \
            (`Retry-After`).", body = ErrorBody),
    ),
    security(("api_token" = [])),
)]
pub async fn publish(
    State(state): State<AppState>,
    headers: HeaderMap,
    // The body is read only once the token is checked: a client that is not allowed to
    // publish gets its 401 at once, without the server waiting for (or buffering) a body.
    request: Request,
) -> Result<impl IntoResponse, ApiError> {
    let principal = crate::auth::authenticate(&state, &headers, None, Scope::Write).await?;
    let body = Bytes::from_request(request, &state).await;
    let body = body.map_err(|rejection| {
        if rejection.status() == StatusCode::PAYLOAD_TOO_LARGE {
            ApiError::PayloadTooLarge(format!(
                "request body is larger than {BODY_LIMIT} bytes: split it into several requests"
            ))
        } else {
            ApiError::BadRequest(rejection.body_text())
        }
    })?;
    let provenance = Provenance::Authenticated(&principal.account);
    let now = chrono::Utc::now();
    let mut verdicts = parse_items(&headers, &body, provenance, now)?;
    let unavailable = |error: sluice_log::LogError| {
        state.metrics.backend_error("log");
        tracing::warn!(%error, "append failed");
        ApiError::Unavailable(
            "the log is unavailable: nothing from this request was stored, retry it".into(),
        )
    };
    if verdicts
        .iter()
        .any(|verdict| verdict.as_ref().is_ok_and(Indicator::is_withdrawn))
    {
        let mut withdrawals = Withdrawals::begin(state.log.as_ref(), &state.taxii, now)
            .await
            .map_err(unavailable)?;
        verdicts = withdrawals
            .resolve_all(verdicts)
            .await
            .map_err(unavailable)?;
    }
    let mut accepted = Vec::new();
    let mut rejected = Vec::new();
    let mut reserved = 0;
    let mut withdrawn = 0;
    for (index, verdict) in verdicts.into_iter().enumerate() {
        match verdict {
            Ok(indicator) => {
                withdrawn += u64::from(indicator.is_withdrawn());
                accepted.push(indicator)
            }
            Err(rejection) => {
                reserved += u64::from(rejection.reserved);
                rejected.push(RejectedItem {
                    index,
                    error: rejection.to_string(),
                })
            }
        }
    }
    let count = accepted.len();
    let ids = state.log.append(accepted).await.map_err(unavailable)?;
    let http = SourceLabels { source: "http" };
    state
        .metrics
        .accepted
        .get_or_create(&http)
        .inc_by(count as u64);
    state
        .metrics
        .rejected
        .get_or_create(&http)
        .inc_by(rejected.len() as u64);
    state.metrics.reserved.get_or_create(&http).inc_by(reserved);
    state
        .metrics
        .withdrawals
        .get_or_create(&http)
        .inc_by(withdrawn);
    tracing::info!(
        account.name = %principal.account,
        ingest.accepted = count,
        ingest.rejected = rejected.len(),
        "indicators published"
    );
    Ok((
        StatusCode::ACCEPTED,
        Json(IngestResponse {
            accepted: count,
            ids: ids.iter().map(ToString::to_string).collect(),
            rejected,
        }),
    ))
}

/// One verdict per item of the body: a JSON object, an array of them, or NDJSON. A body that
/// is none of these is refused whole.
fn parse_items(
    headers: &HeaderMap,
    body: &[u8],
    provenance: Provenance<'_>,
    now: chrono::DateTime<chrono::Utc>,
) -> Result<Vec<Result<Indicator, Rejection>>, ApiError> {
    if is_ndjson(headers) {
        return Ok(body
            .split(|byte| *byte == b'\n')
            .filter(|line| !line.iter().all(u8::is_ascii_whitespace))
            .map(|line| Indicator::from_slice(line, provenance, now))
            .collect());
    }
    match serde_json::from_slice::<serde_json::Value>(body) {
        Ok(serde_json::Value::Array(items)) => Ok(items
            .into_iter()
            .map(|item| Indicator::from_json(item, provenance, now))
            .collect()),
        Ok(object @ serde_json::Value::Object(_)) => {
            Ok(vec![Indicator::from_json(object, provenance, now)])
        }
        Ok(_) => Err(ApiError::BadRequest(
            "body must be a JSON object, a JSON array of objects, or NDJSON \
             (with `Content-Type: application/x-ndjson`)"
                .into(),
        )),
        Err(error) => Err(ApiError::BadRequest(format!(
            "body is not valid JSON ({error}); send an object, an array, or NDJSON \
             with `Content-Type: application/x-ndjson`"
        ))),
    }
}

fn is_ndjson(headers: &HeaderMap) -> bool {
    headers
        .get(header::CONTENT_TYPE)
        .and_then(|value| value.to_str().ok())
        .is_some_and(|value| {
            let value = value.to_ascii_lowercase();
            value.contains("ndjson") || value.contains("jsonlines")
        })
}
