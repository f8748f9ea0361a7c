//! Recent feeds: `GET /v1/indicators` (SPEC §8) and CIF's `GET /indicators` and `GET /ping`
//! (COMPAT.md C). The log within the plan's replay window, filtered like a stream and by the
//! plan's visibility, whitelisted indicators subtracted, deduplicated by indicator (highest
//! confidence, then newest), newest first. JSON by default; CSV for `Accept: text/csv` (and
//! `text/plain`, which CIF clients send). Bodies are whole strings, so `Content-Length` is always
//! set (CIF clients fail on chunked responses).

use std::collections::HashMap;

use axum::extract::{Query, State};
use axum::http::{header, HeaderMap, HeaderValue};
use axum::response::{IntoResponse, Response};
use axum::Json;
use billing::Scope;
use domain::export::Format;
use domain::whitelist::Whitelist;
use domain::{Filter, StreamId};
use serde_json::{json, Value};

use crate::enforcement::{replay_floor, stream_allowed, visible};
use crate::error::ApiError;
use crate::log::SharedEntry;
use crate::wire::ErrorBody;
use crate::AppState;

/// Indicators returned when `limit` is not given, and at most.
const DEFAULT_LIMIT: usize = 500;
const MAX_LIMIT: usize = 10_000;
/// Log entries a single request scans at most, so one request cannot read a whole day; the
/// newest are scanned first. Whitelist entries older than what was scanned do not apply.
const MAX_SCAN: usize = 200_000;
const READ_BATCH: usize = 2_000;

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
        (status = 503, description = "The log backend is unavailable; retry (`Retry-After`).",
            body = ErrorBody),
    ),
    security(("api_token" = []), ("access_token" = [])),
)]
pub async fn recent(
    State(state): State<AppState>,
    headers: HeaderMap,
    Query(params): Query<Vec<(String, String)>>,
) -> Result<Response, ApiError> {
    feed(&state, &headers, &params).await
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
        (status = 503, description = "The log backend is unavailable; retry (`Retry-After`).",
            body = ErrorBody),
    ),
    security(("api_token" = []), ("access_token" = [])),
)]
pub async fn cif_indicators(
    state: State<AppState>,
    headers: HeaderMap,
    params: Query<Vec<(String, String)>>,
) -> Result<Response, ApiError> {
    recent(state, headers, params).await
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
    params: &[(String, String)],
) -> Result<Response, ApiError> {
    let mut access_token = None;
    let mut limit = DEFAULT_LIMIT;
    let mut since_ms = 0u64;
    let mut exact = None;
    let mut filters = Vec::new();
    for (key, value) in params {
        match key.as_str() {
            "access_token" => access_token = Some(value.as_str()),
            "limit" => {
                limit = value
                    .parse::<usize>()
                    .map_err(|_| ApiError::BadRequest(format!("limit `{value}` is not a number")))?
                    .clamp(1, MAX_LIMIT)
            }
            "since" => since_ms = parse_since(value)?,
            // CIF's search: one exact indicator, no feed-mode whitelist subtraction.
            "q" | "indicator" => exact = Some(value.trim().to_owned()),
            // CIF clients send these; they have no meaning here.
            "nolog" | "feed" | "days" => {}
            _ => filters.push((key.as_str(), value.as_str())),
        }
    }
    let principal = crate::auth::authenticate(state, headers, access_token, Scope::Read).await?;
    let plan = &principal.plan;
    if !stream_allowed(plan) {
        return Err(ApiError::Forbidden(format!(
            "the `{}` plan has no feed access: move the account to a plan with a firehose",
            plan.name
        )));
    }
    let filter =
        Filter::from_pairs(filters).map_err(|error| ApiError::BadRequest(error.to_string()))?;
    let wants_whitelist = params
        .iter()
        .any(|(key, value)| key == "tags" && value.split(',').any(|tag| tag.trim() == "whitelist"));
    let now_ms = chrono::Utc::now().timestamp_millis().max(0) as u64;
    let floor = replay_floor(plan, now_ms).max(StreamId::new(since_ms, 0));

    // Scan backwards in time, in spans that double (1 min, 2 min, …) down to the floor, each
    // span read forwards up to where the previous one began: the newest entries are always
    // read, even when the window holds more than one request may scan.
    let mut best: HashMap<String, SharedEntry> = HashMap::new();
    let mut whitelist = Whitelist::default();
    let mut scanned = 0;
    let mut end = StreamId::new(now_ms.saturating_add(1), 0);
    let mut span_ms: u64 = 60_000;
    loop {
        let start = StreamId::new(end.ms.saturating_sub(span_ms).max(floor.ms), 0);
        let mut position = StreamId::new(start.ms.saturating_sub(1), u64::MAX);
        'span: while scanned < MAX_SCAN {
            let batch = state
                .log
                .read_after(position, READ_BATCH)
                .await
                .map_err(|error| {
                    state.metrics.backend_error("log");
                    ApiError::Unavailable(format!("{error}; retry shortly"))
                })?;
            scanned += batch.scanned;
            for entry in &batch.entries {
                if entry.id() >= end {
                    break 'span;
                }
                consider(
                    entry,
                    plan,
                    &filter,
                    exact.as_deref(),
                    wants_whitelist,
                    &mut whitelist,
                    &mut best,
                );
            }
            match batch.read_through {
                Some(through) if batch.scanned >= READ_BATCH && through < end => position = through,
                _ => break,
            }
        }
        if start.ms <= floor.ms || scanned >= MAX_SCAN || best.len() >= limit {
            break;
        }
        end = start;
        span_ms = span_ms.saturating_mul(2);
    }
    let mut entries: Vec<SharedEntry> = best
        .into_values()
        .filter(|entry| exact.is_some() || !whitelist.covers(&entry.indicator))
        .collect();
    entries.sort_by_key(|entry| std::cmp::Reverse(entry.cursor.id()));
    entries.truncate(limit);

    // CSV when asked for (CIF's clients ask with text/plain), unless JSON is acceptable too.
    let csv = headers
        .get(header::ACCEPT)
        .and_then(|value| value.to_str().ok())
        .is_some_and(|accept| {
            (accept.contains("text/csv") || accept.contains("text/plain"))
                && !accept.contains("application/json")
        });
    let response = if csv {
        let mut body = String::new();
        for line in Format::Csv.header(0) {
            body.push_str(&line);
            body.push('\n');
        }
        for entry in &entries {
            for line in Format::Csv.lines(&entry.indicator) {
                body.push_str(&line);
                body.push('\n');
            }
        }
        let mut response = body.into_response();
        response.headers_mut().insert(
            header::CONTENT_TYPE,
            HeaderValue::from_static("text/csv; charset=utf-8"),
        );
        response
    } else {
        let mut body = String::from("[");
        for (n, entry) in entries.iter().enumerate() {
            if n > 0 {
                body.push(',');
            }
            body.push_str(entry.json());
        }
        body.push(']');
        let mut response = body.into_response();
        response.headers_mut().insert(
            header::CONTENT_TYPE,
            HeaderValue::from_static("application/json"),
        );
        response
    };
    // Metered like streams: what a feed returns counts as delivered to the account.
    let bytes = response
        .headers()
        .get(header::CONTENT_LENGTH)
        .and_then(|value| value.to_str().ok()?.parse().ok())
        .unwrap_or(0);
    state
        .usage
        .add(principal.account_id, entries.len() as u64, 0, bytes);
    Ok(response)
}

/// Adds one log entry to the feed being built (or to its whitelist).
fn consider(
    entry: &SharedEntry,
    plan: &domain::PlanLimits,
    filter: &Filter,
    exact: Option<&str>,
    wants_whitelist: bool,
    whitelist: &mut Whitelist,
    best: &mut HashMap<String, SharedEntry>,
) {
    let indicator = &entry.indicator;
    if !visible(plan, indicator) {
        return;
    }
    if Whitelist::is_entry(indicator) && !wants_whitelist {
        whitelist.add(indicator);
        return;
    }
    if !filter.matches(indicator) {
        return;
    }
    if exact.is_some_and(|q| !q.eq_ignore_ascii_case(indicator.indicator())) {
        return;
    }
    let key = indicator.indicator().to_owned();
    // Spans are read newest first but each span oldest first: keep the highest confidence,
    // and the newest among equals.
    let better = best.get(&key).is_none_or(|kept| {
        let (new, old) = (indicator.confidence(), kept.indicator.confidence());
        new > old || (new == old && entry.id() > kept.id())
    });
    if better {
        best.insert(key, entry.clone());
    }
}

/// `since`: RFC 3339, or Unix seconds (CIF style).
fn parse_since(value: &str) -> Result<u64, ApiError> {
    if let Ok(seconds) = value.trim().parse::<u64>() {
        return Ok(seconds.saturating_mul(1000));
    }
    chrono::DateTime::parse_from_rfc3339(value.trim())
        .map(|time| time.timestamp_millis().max(0) as u64)
        .map_err(|_| {
            ApiError::BadRequest(format!(
                "since `{value}` is not an RFC 3339 time (2026-11-23T12:00:00Z) or Unix seconds"
            ))
        })
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
