//! Recent feeds: `GET /v1/indicators` (docs/protocol.md §8) and CIF's `GET /indicators` and
//! `GET /ping` (§10). The log within the plan's replay window, filtered like a stream and by the
//! plan's visibility, expired entries left out (`Config::validity`), whitelisted indicators
//! subtracted, deduplicated by indicator (highest confidence, then newest), newest first. JSON by default; CSV for `Accept: text/csv` (and
//! `text/plain`, which CIF clients send). Bodies are whole strings, so `Content-Length` is always
//! set (CIF clients fail on chunked responses). Each request is bounded per account and per node
//! ([`limit`]): a feed is the one request that costs a scan of the log.
//!
//! The plain lists ([`lists`], §8.5) and CIFv3's `GET /feed` ([`cif3`], §10.6) are the same scan
//! in other shapes; what every feed shares is here: `admit` (credential, plan, rate), `scan`
//! (a scan permit, then the scan) and `meter` (usage).

pub mod cif3;
pub mod limit;
pub mod lists;
mod scan;

use axum::extract::State;
use axum::http::{header, HeaderMap};
use axum::response::{IntoResponse, Response};
use axum::Json;
use billing::{Principal, Scope};
use domain::export::Format;
use domain::{Filter, Limits, StreamId};
use serde_json::{json, Value};
use sluice_log::SharedEntry;
use tokio::sync::SemaphorePermit;

use crate::enforcement::replay_floor;
use crate::error::ApiError;
use crate::query::FeedQuery;
use crate::wire::ErrorBody;
use crate::AppState;
use scan::Selection;

/// Recent indicators.
///
/// The log within the plan's replay window, filtered like a stream and by the plan's
/// visibility, whitelisted indicators subtracted, one entry per indicator (the highest
/// confidence, then the newest), newest first. JSON by default; CSV for `Accept: text/csv` or
/// `text/plain` unless JSON is acceptable too. Counted as delivered in the account's usage.
#[utoipa::path(
    get,
    path = "/v1/indicators",
    tag = "indicators",
    params(
        crate::openapi::FeedParams,
        crate::openapi::FilterParams,
        ("Accept" = Option<String>, Header, description = "`text/csv` or `text/plain` for CSV \
            (a header line, then one line per indicator); JSON otherwise."),
    ),
    responses(
        (status = 200, description = "The indicators, newest first.", content(
            (Vec<crate::openapi::Indicator> = "application/json"),
            (String = "text/csv"),
        )),
        (status = 400, description = "A filter, `limit` or `since` is not valid.", body = ErrorBody),
        (status = 401, description = "No token, or not a valid one.", body = ErrorBody),
        (status = 403, description = "The plan has no feed access.", body = ErrorBody),
        (status = 429, description = "The account asks for feeds more often than the node's \
            `--feed-rate`, or the node is busy with other feeds; retry after `Retry-After`.",
            body = ErrorBody),
        (status = 503, description = "The log backend is unavailable; retry (`Retry-After`).",
            body = ErrorBody),
    ),
    security(("api_token" = []), ("access_token" = [])),
)]
pub async fn recent(
    State(state): State<AppState>,
    headers: HeaderMap,
    query: FeedQuery,
) -> Result<Response, ApiError> {
    feed(&state, &headers, query).await
}

/// CIF's indicator search and feed.
///
/// `GET /v1/indicators` under the path CIF clients use: the same answer, and CIF's `nolog`,
/// `feed` and `days` are accepted and ignored. CIF clients ask for `text/plain`, so they get CSV.
#[utoipa::path(
    get,
    path = "/indicators",
    tag = "cif",
    params(
        crate::openapi::FeedParams,
        crate::openapi::FilterParams,
        crate::openapi::CifIgnoredParams,
        ("Accept" = Option<String>, Header, description = "`text/csv` or `text/plain` for CSV; \
            JSON otherwise."),
    ),
    responses(
        (status = 200, description = "The indicators, newest first.", content(
            (Vec<crate::openapi::Indicator> = "application/json"),
            (String = "text/csv"),
        )),
        (status = 400, description = "A filter, `limit` or `since` is not valid.", body = ErrorBody),
        (status = 401, description = "No token, or not a valid one.", body = ErrorBody),
        (status = 403, description = "The plan has no feed access.", body = ErrorBody),
        (status = 429, description = "The account asks for feeds more often than the node's \
            `--feed-rate`, or the node is busy with other feeds; retry after `Retry-After`.",
            body = ErrorBody),
        (status = 503, description = "The log backend is unavailable; retry (`Retry-After`).",
            body = ErrorBody),
    ),
    security(("api_token" = []), ("access_token" = [])),
)]
pub async fn cif_indicators(
    state: State<AppState>,
    headers: HeaderMap,
    query: FeedQuery,
) -> Result<Response, ApiError> {
    recent(state, headers, query).await
}

/// CIF's liveness check.
///
/// Answers without looking at the token, as CIF servers do: `{"status": "success", "data":
/// <Unix seconds>}`.
#[utoipa::path(
    get,
    path = "/ping",
    tag = "cif",
    responses(
        (status = 200, description = "The server is up.", body = inline(PingAnswer),
            example = json!({"status": "success", "data": 1795435200})),
    ),
)]
pub async fn ping() -> Json<Value> {
    Json(json!({"status": "success", "data": chrono::Utc::now().timestamp()}))
}

async fn feed(
    state: &AppState,
    headers: &HeaderMap,
    query: FeedQuery,
) -> Result<Response, ApiError> {
    let principal = admit(state, headers, query.access_token.as_deref()).await?;
    let scanned = scan(
        state,
        &principal.plan.limits,
        Scan {
            filter: query.filter()?,
            exact: query.keys.exact.as_deref(),
            since_ms: query.keys.since_ms,
            deliver_from: StreamId::ZERO,
            limit: query.keys.limit,
        },
    )
    .await?;
    let (content_type, body) = if wants_csv(headers) {
        ("text/csv; charset=utf-8", csv(&scanned.entries))
    } else {
        ("application/json", json_array(&scanned.entries))
    };
    meter(state, &principal, scanned.entries.len(), body.len());
    Ok(([(header::CONTENT_TYPE, content_type)], body).into_response())
}

/// The first steps of every feed (this one, the plain lists, CIFv3's `/feed`): the credential
/// (scope `read`), the plan's feed access and the account's feed rate. Each feed checks its
/// own parameters after this, so a caller without a credential learns nothing else.
pub(crate) async fn admit(
    state: &AppState,
    headers: &HeaderMap,
    access_token: Option<&str>,
) -> Result<Principal, ApiError> {
    let principal = crate::auth::authenticate(state, headers, access_token, Scope::Read).await?;
    let plan = &principal.plan;
    if !plan.limits.allows_stream() {
        return Err(ApiError::Forbidden(format!(
            "the `{}` plan has no feed access: move the account to a plan with a firehose",
            plan.name
        )));
    }
    state
        .feeds
        .admit(principal.account_id)
        .map_err(|throttled| throttled_error(state, throttled))?;
    Ok(principal)
}

/// What one feed asks of the scan, besides the plan's window and visibility.
pub(crate) struct Scan<'a> {
    pub filter: &'a Filter,
    /// CIF's search: one exact indicator, and no whitelist subtraction.
    pub exact: Option<&'a str>,
    /// Only entries added at or after this time (Unix ms; 0: the plan's whole window).
    pub since_ms: u64,
    /// Indicators only from entries added at or after this position, while whitelist entries
    /// still count from the whole window (CIFv3's `hours`/`reporttime`); `ZERO`: all.
    pub deliver_from: StreamId,
    pub limit: usize,
}

/// A feed's entries, newest first, with the node's scan permit: held until the answer is
/// built, since the scan and the encoding are the work it bounds.
pub(crate) struct Scanned<'s> {
    pub entries: Vec<SharedEntry>,
    _permit: SemaphorePermit<'s>,
}

/// Takes one of the node's scan permits (or a 429) and scans the log ([`scan::collect`]).
pub(crate) async fn scan<'s>(
    state: &'s AppState,
    limits: &Limits,
    wanted: Scan<'_>,
) -> Result<Scanned<'s>, ApiError> {
    let permit = state
        .feeds
        .scan_permit()
        .await
        .map_err(|throttled| throttled_error(state, throttled))?;
    let now = chrono::Utc::now();
    let now_ms = now.timestamp_millis().max(0) as u64;
    let selection = Selection {
        limits,
        filter: wanted.filter,
        exact: wanted.exact,
        floor: replay_floor(limits, now_ms).max(StreamId::new(wanted.since_ms, 0)),
        deliver_from: wanted.deliver_from,
        limit: wanted.limit,
        validity: &state.config.validity,
        now,
    };
    let entries = scan::collect(state.log.as_ref(), &selection, now_ms)
        .await
        .map_err(|error| {
            state.metrics.backend_error("log");
            tracing::warn!(%error, "a feed could not read the log");
            ApiError::Unavailable("the log is unavailable; retry shortly".into())
        })?;
    Ok(Scanned {
        entries,
        _permit: permit,
    })
}

/// Metered like streams: what a feed returns counts as delivered to the account.
pub(crate) fn meter(state: &AppState, principal: &Principal, delivered: usize, bytes: usize) {
    state
        .usage
        .add(principal.account_id, delivered as u64, 0, bytes as u64);
}

/// A 429 for a feed over one of its bounds, counted by reason.
fn throttled_error(state: &AppState, throttled: limit::Throttled) -> ApiError {
    state.metrics.feed_throttled(throttled.reason());
    state.feeds.refusal(throttled)
}

/// CSV when asked for (CIF's clients ask with text/plain), unless JSON is acceptable too.
fn wants_csv(headers: &HeaderMap) -> bool {
    headers
        .get(header::ACCEPT)
        .and_then(|value| value.to_str().ok())
        .is_some_and(|accept| {
            (accept.contains("text/csv") || accept.contains("text/plain"))
                && !accept.contains("application/json")
        })
}

fn csv(entries: &[SharedEntry]) -> String {
    let mut body = String::new();
    let lines = Format::Csv.header(0).into_iter().chain(
        entries
            .iter()
            .flat_map(|entry| Format::Csv.lines(&entry.indicator)),
    );
    for line in lines {
        body.push_str(&line);
        body.push('\n');
    }
    body
}

fn json_array(entries: &[SharedEntry]) -> String {
    let mut body = String::from("[");
    for (n, entry) in entries.iter().enumerate() {
        if n > 0 {
            body.push(',');
        }
        body.push_str(entry.json());
    }
    body.push(']');
    body
}

// Documentation only: `ping` writes it with `json!`.
/// The body of `GET /ping`.
#[allow(dead_code)]
#[derive(utoipa::ToSchema)]
struct PingAnswer {
    /// Always `success`.
    status: String,
    /// The server's time, Unix seconds.
    data: i64,
}
