//! `GET /firehose` and `GET /cif/firehose`: the firehose for the clients security teams already
//! run (docs/protocol.md §10), unmodified. csirtg.io's `csirtg-firehose` is fixed to `/firehose`
//! and authenticates with `Authorization: Token token=…`; CIFv4's `cif-firehose` takes any URL
//! and sends the bare token. So on `/firehose` the scheme decides the dialect (a bare token is
//! CIFv4, anything else ActionCable), and `/cif/firehose` always speaks CIFv4.
//!
//! Both go through the same checks as `/v1/stream` before the upgrade (bad token 401, no
//! firehose on the plan 403, connection cap 429), so these clients, which ignore in-band
//! refusals, see an HTTP status; then the same session applies the plan and the filters given
//! in the query string (`?itype=ipv4&tags=scanner`).

use axum::extract::ws::WebSocketUpgrade;
use axum::extract::State;
use axum::http::{header, HeaderMap};
use axum::response::Response;

use crate::error::ApiError;
use crate::query::StreamQuery;
use crate::stream::dialect::{ActionCable, Cif};
use crate::stream::{prepare, ws, Remote};
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
    remote: Remote,
    query: StreamQuery,
) -> Result<Response, ApiError> {
    let session = prepare(&state, &headers, remote, query).await?;
    Ok(if speaks_cif(&headers) {
        ws::upgrade(upgrade, session, state, Cif)
    } else {
        ws::upgrade(upgrade, session, state, ActionCable::default())
    })
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
    remote: Remote,
    query: StreamQuery,
) -> Result<Response, ApiError> {
    let session = prepare(&state, &headers, remote, query).await?;
    Ok(ws::upgrade(upgrade, session, state, Cif))
}

/// A bare token (`Authorization: <token>`) is CIFv4's; `Token token=…`, `Bearer …` or a query
/// token is csirtg.io's ActionCable client.
fn speaks_cif(headers: &HeaderMap) -> bool {
    headers
        .get(header::AUTHORIZATION)
        .and_then(|value| value.to_str().ok())
        .map(str::trim)
        .is_some_and(|value| !value.contains(char::is_whitespace))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_authorization_scheme_picks_the_dialect() {
        let with = |value: &str| {
            let mut headers = HeaderMap::new();
            headers.insert(header::AUTHORIZATION, value.parse().unwrap());
            speaks_cif(&headers)
        };
        assert!(!with("Token token=slc_abc"));
        assert!(!with("token token=\"slc_abc\""));
        assert!(!with("Bearer slc_abc"));
        assert!(with("slc_abc"));
        assert!(!speaks_cif(&HeaderMap::new()));
    }
}
