//! The signed-in user's own API tokens (the Tokens page): `GET /v1/account/tokens`,
//! `POST /v1/account/tokens` and `DELETE /v1/account/tokens/{id}`.
//!
//! Browser sessions only ([`SessionCaller`]): an API token must not mint other tokens, or a
//! leaked `read` token could make itself a `write` one. Operators use `sluice tokens`.

use std::time::Duration;

use axum::extract::State;
use axum::http::StatusCode;
use axum::Json;
use billing::Scope;

use crate::api::{ErrorBody, NewTokenRequest, NewTokenView, TokenList, TokenView};
use crate::auth::SessionCaller;
use crate::error::ApiError;
use crate::extract::{JsonBody, PathParams};
use crate::AppState;

/// Longest expiry a token made on the page may have: two years.
pub const MAX_TOKEN_DAYS: u32 = 730;

/// The account's API tokens.
///
/// `GET /v1/account/tokens`: every token of the account, revoked and expired ones included,
/// newest first. Never their values.
#[utoipa::path(
    get,
    path = "/v1/account/tokens",
    tag = "tokens",
    responses(
        (status = 200, description = "The tokens, newest first.", body = TokenList),
        (status = 401, description = "Not signed in.", body = ErrorBody),
        (status = 503, description = "The account database is unavailable; retry.", body = ErrorBody),
    ),
    security(("session_cookie" = [])),
)]
pub(crate) async fn list(
    State(state): State<AppState>,
    caller: SessionCaller,
) -> Result<Json<TokenList>, ApiError> {
    let mut tokens = state.store.tokens(&caller.session.account).await?;
    tokens.reverse();
    Ok(Json(TokenList {
        tokens: tokens.iter().map(TokenView::from).collect(),
    }))
}

/// Create an API token.
///
/// `POST /v1/account/tokens` `{scope, expires_in_days}`: a new token of the account; the
/// answer is the only time its value is shown. 201.
#[utoipa::path(
    post,
    path = "/v1/account/tokens",
    tag = "tokens",
    request_body = NewTokenRequest,
    responses(
        (status = 201, description = "The new token, with its value: copy it now.",
            body = NewTokenView),
        (status = 400, description = "The body is not the expected JSON.", body = ErrorBody),
        (status = 401, description = "Not signed in.", body = ErrorBody),
        (status = 403, description = "Missing or wrong `X-CSRF-Token`; scope `admin`; or scope \
            `write` for an account no operator has made a publisher (it holds no live `write` \
            token).",
            body = ErrorBody),
        (status = 422, description = "An unknown scope, or `expires_in_days` out of range.",
            body = ErrorBody),
        (status = 503, description = "The account database is unavailable; retry.", body = ErrorBody),
    ),
    security(("session_cookie" = [], "csrf_token" = [])),
)]
pub(crate) async fn create(
    State(state): State<AppState>,
    caller: SessionCaller,
    JsonBody(request): JsonBody<NewTokenRequest>,
) -> Result<(StatusCode, Json<NewTokenView>), ApiError> {
    let scope: Scope = request
        .scope
        .as_deref()
        .unwrap_or("read")
        .parse()
        .map_err(|error: billing::UnknownScope| ApiError::Unprocessable(error.to_string()))?;
    if scope == Scope::Admin {
        return Err(ApiError::Forbidden(
            "`admin` tokens administer every account; an operator creates them with \
             `sluice tokens create --scope admin`"
                .into(),
        ));
    }
    if scope == Scope::Write && !is_publisher(&state, &caller.session.account).await? {
        return Err(ApiError::Forbidden(
            "this account does not publish yet: anyone can sign up, so publishing (and counting \
             as a provider for the correlator) starts when an operator issues the account's \
             first `write` token with `sluice tokens create --account NAME --scope write`"
                .into(),
        ));
    }
    let expires_in = match request.expires_in_days {
        None => None,
        Some(days @ 1..=MAX_TOKEN_DAYS) => Some(Duration::from_secs(u64::from(days) * 86_400)),
        Some(days) => {
            return Err(ApiError::Unprocessable(format!(
                "`expires_in_days` must be from 1 to {MAX_TOKEN_DAYS} (got {days}); leave it \
                 out for a token that does not expire"
            )))
        }
    };
    let (record, token) = state
        .store
        .create_token(&caller.session.account, scope, expires_in)
        .await?;
    Ok((
        StatusCode::CREATED,
        Json(NewTokenView {
            token: token.expose().to_owned(),
            record: TokenView::from(&record),
        }),
    ))
}

/// Revoke an API token.
///
/// `DELETE /v1/account/tokens/{id}`: revokes one of the account's tokens (live streams using
/// it close with 4001 within seconds). 204; 404 for another account's or an unknown id.
#[utoipa::path(
    delete,
    path = "/v1/account/tokens/{id}",
    tag = "tokens",
    params(("id" = String, Path, description = "The token's public id (`tok_…`).")),
    responses(
        (status = 204, description = "Revoked."),
        (status = 401, description = "Not signed in.", body = ErrorBody),
        (status = 403, description = "Missing or wrong `X-CSRF-Token`.", body = ErrorBody),
        (status = 404, description = "The account has no such token.", body = ErrorBody),
        (status = 503, description = "The account database is unavailable; retry.", body = ErrorBody),
    ),
    security(("session_cookie" = [], "csrf_token" = [])),
)]
pub(crate) async fn revoke(
    State(state): State<AppState>,
    caller: SessionCaller,
    PathParams(id): PathParams<String>,
) -> Result<StatusCode, ApiError> {
    let owned = state
        .store
        .tokens(&caller.session.account)
        .await?
        .into_iter()
        .any(|token| token.id == id);
    if !owned {
        return Err(ApiError::NotFound(format!(
            "this account has no token `{id}` (GET /v1/account/tokens lists them)"
        )));
    }
    state.store.revoke_token(&id).await?;
    Ok(StatusCode::NO_CONTENT)
}

/// Whether `account` holds a live token that may publish: an operator made it a publisher. A
/// signed-up account must not mint `write` tokens on its own, or a handful of sign-ups could
/// pose as independent providers and make the correlator vouch for any address.
async fn is_publisher(state: &AppState, account: &str) -> Result<bool, ApiError> {
    let now = chrono::Utc::now();
    Ok(state.store.tokens(account).await?.iter().any(|token| {
        token.scope.allows(Scope::Write)
            && token.revoked_at.is_none()
            && token.expires_at.is_none_or(|expires| expires > now)
    }))
}
