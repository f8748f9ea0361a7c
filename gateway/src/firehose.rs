//! `GET /firehose` and `GET /cif/firehose`: the firehose for the clients security teams already
//! run (COMPAT.md A and B), unmodified. csirtg.io's `csirtg-firehose` is fixed to `/firehose`
//! and authenticates with `Authorization: Token token=…`; CIFv4's `cif-firehose` takes any URL
//! and sends the bare token. So on `/firehose` the scheme decides the dialect (a bare token is
//! CIFv4, anything else ActionCable), and `/cif/firehose` always speaks CIFv4.
//!
//! Both go through the same checks as `/v1/stream` before the upgrade (bad token 401, no
//! firehose on the plan 403, connection cap 429), so these clients, which ignore in-band
//! refusals, see an HTTP status; then the same session applies the plan and the filters given
//! in the query string (`?itype=ipv4&tags=scanner`).

use axum::extract::ws::WebSocketUpgrade;
use axum::extract::{Query, State};
use axum::http::{header, HeaderMap};
use axum::response::Response;

use crate::error::ApiError;
use crate::stream::dialect::Dialect;
use crate::stream::{prepare, ws};
use crate::AppState;

/// csirtg.io's firehose (and CIFv4's), WebSocket only.
///
/// For `csirtg-firehose`, which is fixed to this path: with `Authorization: Token token=…` (or
/// `Bearer`, or `access_token`) the stream speaks csirtg.io's ActionCable channel; with CIFv4's
/// bare `Authorization: <token>` it speaks CIFv4's frames. The plan and the query's filters
/// apply as on `/v1/stream`, and refusals are HTTP statuses before the upgrade.
#[utoipa::path(
    get,
    path = "/firehose",
    tag = "stream",
    params(crate::openapi::TokenQuery, crate::openapi::FilterParams),
    responses(crate::openapi::FirehoseResponses),
    security(("api_token" = []), ("access_token" = [])),
)]
pub async fn firehose(
    State(state): State<AppState>,
    upgrade: WebSocketUpgrade,
    headers: HeaderMap,
    Query(params): Query<Vec<(String, String)>>,
) -> Result<Response, ApiError> {
    let dialect = dialect_of(&headers);
    let session = prepare(&state, &headers, &params).await?;
    Ok(ws::upgrade(upgrade, session, state, dialect))
}

/// CIFv4's firehose, WebSocket only.
///
/// For `cif-firehose`, which takes any URL and sends the bare token (`Authorization: <token>`):
/// always CIFv4's frames, whatever the `Authorization` scheme. Otherwise as `/firehose`.
#[utoipa::path(
    get,
    path = "/cif/firehose",
    tag = "stream",
    params(crate::openapi::TokenQuery, crate::openapi::FilterParams),
    responses(crate::openapi::FirehoseResponses),
    security(("api_token" = []), ("access_token" = [])),
)]
pub async fn cif_firehose(
    State(state): State<AppState>,
    upgrade: WebSocketUpgrade,
    headers: HeaderMap,
    Query(params): Query<Vec<(String, String)>>,
) -> Result<Response, ApiError> {
    let session = prepare(&state, &headers, &params).await?;
    Ok(ws::upgrade(upgrade, session, state, Dialect::Cif))
}

/// `Token token=…` or `Bearer …` (or a query token): ActionCable; a bare token: CIFv4.
fn dialect_of(headers: &HeaderMap) -> Dialect {
    let value = headers
        .get(header::AUTHORIZATION)
        .and_then(|value| value.to_str().ok())
        .map(str::trim);
    match value {
        Some(value) if !value.contains(char::is_whitespace) => Dialect::Cif,
        _ => Dialect::ActionCable,
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_authorization_scheme_picks_the_dialect() {
        let with = |value: &str| {
            let mut headers = HeaderMap::new();
            headers.insert(header::AUTHORIZATION, value.parse().unwrap());
            dialect_of(&headers)
        };
        assert_eq!(with("Token token=slc_abc"), Dialect::ActionCable);
        assert_eq!(with("token token=\"slc_abc\""), Dialect::ActionCable);
        assert_eq!(with("Bearer slc_abc"), Dialect::ActionCable);
        assert_eq!(with("slc_abc"), Dialect::Cif);
        assert_eq!(dialect_of(&HeaderMap::new()), Dialect::ActionCable);
    }
}
