//! CIFv3's `GET /feed` (docs/protocol.md §10.6), as Elastic's `ti_cif3` integration polls it:
//! `Accept: application/vnd.cif.v3+json`, `Authorization: Token token=…`, `itype`, `confidence`,
//! `limit`, `tags`, `hours` and `reporttime` (the time of its previous poll), and it reads the
//! indicators from `data` of `{"message": "success", "data": […]}`, which is what CIFv3's server
//! (csirtgadgets/bearded-avenger, `cif/httpd/views/feed`) answers; errors are CIF's
//! `{"message": …, "data": []}` with the status.
//!
//! The feed scan as for `GET /v1/indicators`, with two differences a poller needs:
//! - `reporttime` (and `since`, `hours`, `days`) narrow the answer, not the scan: the scan reads
//!   the plan's whole window, so whitelist entries older than the last poll still subtract what
//!   they cover, as CIF's feed takes its whitelist from a longer window than the feed itself.
//!   Times are compared with when the report reached the log (the cursor's time), not with the
//!   provider's `reporttime` field, so a report that arrives late with an old `reporttime` is
//!   still in the next poll.
//! - each indicator is spelled as CIFv3 writes it and ti_cif3's ingest pipeline reads it
//!   ([`cif3_indicator`]).

use axum::body::Body;
use axum::extract::State;
use axum::http::{header, HeaderMap};
use axum::response::{IntoResponse, Response};
use domain::{Indicator, Itype, StreamId};
use serde_json::{json, Map, Value};

use super::{admit, meter, scan, Scan};
use crate::error::ApiError;
use crate::query::{EndpointQuery, FeedKeys, Keys};
use crate::AppState;

const HOUR_MS: u64 = 3_600_000;
const DAY_MS: u64 = 24 * HOUR_MS;

/// `GET /feed`.
pub type Cif3Query = EndpointQuery<Cif3Keys>;

/// `/feed`'s own keys: the feed's (`limit`, `q`/`indicator`), CIF's times, and the CIF keys
/// that mean nothing here.
#[derive(Debug, Default)]
pub struct Cif3Keys {
    pub feed: FeedKeys,
    /// `reporttime`, `since`: only entries added at or after this time (Unix ms), the latest.
    added_since_ms: u64,
    /// `hours`, `days`: only entries added this recently, the shortest.
    within_ms: Option<u64>,
}

impl Cif3Keys {
    /// Only entries added at or after this time (Unix ms), given the time now.
    pub fn added_since_ms(&self, now_ms: u64) -> u64 {
        let window = self
            .within_ms
            .map_or(0, |within| now_ms.saturating_sub(within));
        self.added_since_ms.max(window)
    }
}

impl Keys for Cif3Keys {
    fn take(&mut self, key: &str, value: &str) -> Result<bool, ApiError> {
        let value = value.trim();
        match key {
            "hours" | "days" if value.is_empty() => {}
            "hours" | "days" => {
                let unit = if key == "hours" { HOUR_MS } else { DAY_MS };
                let within = value
                    .parse::<u64>()
                    .ok()
                    .filter(|count| *count > 0)
                    .ok_or_else(|| {
                        ApiError::BadRequest(format!(
                            "{key} `{}` is not a whole number of {key} (1 or more)",
                            shown(value)
                        ))
                    })?
                    .saturating_mul(unit);
                self.within_ms = Some(self.within_ms.map_or(within, |w| w.min(within)));
            }
            "reporttime" | "since" if value.is_empty() => {}
            "reporttime" | "since" => {
                self.added_since_ms = self.added_since_ms.max(time(key, value)?);
            }
            // CIF clients send these: whether the search is logged, CIF's sharing groups, an
            // order, compression. Nothing here answers to them.
            "nolog" | "group" | "groups" | "sort" | "gzip" | "nocompress" => {}
            // An empty value is no value, as CIF reads its query.
            "limit" | "q" | "indicator" if value.is_empty() => {}
            _ => return self.feed.take(key, value),
        }
        Ok(true)
    }
}

/// `reporttime` or `since`, read as the feed reads `since` (RFC 3339 or Unix seconds).
fn time(key: &str, value: &str) -> Result<u64, ApiError> {
    let mut parsed = FeedKeys::default();
    parsed.take("since", value).map_err(|_| {
        ApiError::BadRequest(format!(
            "{key} `{}` is not an RFC 3339 time (2026-11-23T12:00:00Z) or Unix seconds",
            shown(value)
        ))
    })?;
    Ok(parsed.since_ms)
}

/// User input echoed in an error, cut to a readable length.
fn shown(value: &str) -> String {
    value.chars().take(64).collect()
}

/// CIFv3's feed.
///
/// What `GET /v1/indicators` selects (the plan's window and visibility, filters, whitelist
/// subtracted, one entry per indicator, newest first), as CIFv3's server answers it:
/// `{"message": "success", "data": [<indicator>, …]}`, each indicator in CIFv3's spelling. For
/// Elastic's `ti_cif3` integration (`Accept: application/vnd.cif.v3+json`,
/// `Authorization: Token token=…`). `reporttime`, `since`, `hours` and `days` keep only what
/// reached the log at or after a time; the whitelist still comes from the plan's whole window.
/// Errors are `{"message": "<what went wrong>", "data": []}`.
#[utoipa::path(
    get,
    path = "/feed",
    tag = "cif",
    params(
        crate::openapi::FeedParams,
        crate::openapi::FilterParams,
        crate::openapi::Cif3Params,
        ("Accept" = Option<String>, Header, description = "`application/vnd.cif.v3+json`, as \
            CIFv3 clients send; the answer is JSON whatever it says."),
    ),
    responses(
        (status = 200, description = "The indicators, newest first.",
            body = crate::openapi::Cif3Answer),
        (status = 400, description = "A filter, `limit`, `hours`, `days` or a time is not valid; \
            or a CIF filter Sluice cannot apply (`cc`, `asn`, …).",
            body = crate::openapi::Cif3Answer),
        (status = 401, description = "No token, or not a valid one.",
            body = crate::openapi::Cif3Answer),
        (status = 403, description = "The plan has no feed access.",
            body = crate::openapi::Cif3Answer),
        (status = 429, description = "The account asks for feeds more often than the node's \
            `--feed-rate`, or the node is busy with other feeds; retry after `Retry-After`.",
            body = crate::openapi::Cif3Answer),
        (status = 503, description = "The log backend is unavailable; retry (`Retry-After`).",
            body = crate::openapi::Cif3Answer),
    ),
    security(("api_token" = []), ("access_token" = [])),
)]
pub async fn feed(
    State(state): State<AppState>,
    headers: HeaderMap,
    query: Result<Cif3Query, ApiError>,
) -> Response {
    answer(&state, &headers, query)
        .await
        .unwrap_or_else(cif3_error)
}

async fn answer(
    state: &AppState,
    headers: &HeaderMap,
    query: Result<Cif3Query, ApiError>,
) -> Result<Response, ApiError> {
    let query = query?;
    let principal = admit(state, headers, query.access_token.as_deref()).await?;
    let now_ms = chrono::Utc::now().timestamp_millis().max(0) as u64;
    let added_since = StreamId::new(query.keys.added_since_ms(now_ms), 0);
    let scanned = scan(
        state,
        &principal.plan.limits,
        Scan {
            filter: query.filter()?,
            exact: query.keys.feed.exact.as_deref(),
            since_ms: 0,
            // The best report of each indicator among those since the last poll (an older,
            // higher-confidence one must not hide a re-report), with whitelists from the
            // whole window.
            deliver_from: added_since,
            limit: query.keys.feed.limit,
        },
    )
    .await?;
    let data: Vec<Value> = scanned
        .entries
        .iter()
        .map(|entry| cif3_indicator(&entry.indicator))
        .collect();
    let delivered = data.len();
    let body = json!({"message": "success", "data": data}).to_string();
    meter(state, &principal, delivered, body.len());
    Ok(([(header::CONTENT_TYPE, "application/json")], body).into_response())
}

/// An error as CIF answers one: the status and headers of the gateway's error (`Retry-After`,
/// `WWW-Authenticate`), the body `{"message": "<what went wrong>", "data": []}`.
fn cif3_error(error: ApiError) -> Response {
    let message = error.to_string();
    let (mut parts, _) = error.into_response().into_parts();
    parts.headers.remove(header::CONTENT_LENGTH);
    let body = json!({"message": message, "data": []}).to_string();
    Response::from_parts(parts, Body::from(body))
}

/// One indicator in CIFv3's spelling: Sluice's canonical JSON (CIF's field names already) with
/// what CIFv3 writes, and ti_cif3's ingest pipeline reads, differently:
/// - a network (`cidr`) has the `itype` of its family, `ipv4` or `ipv6`, and its prefix length
///   in `indicator_ipv4_mask` / `indicator_ipv6_mask` (ti_cif3 reads a mask as "a network");
/// - an ASN is lowercase, `as13335` (ti_cif3 reads the number after `as`);
/// - `firsttime` and `lasttime` are always there, the `reporttime` when the provider gave none
///   (ti_cif3 expires an indicator from its last or first sighting);
/// - `asn` is a number (ti_cif3 maps it to an integer): a provider's `"AS13335"` or `"13335"`
///   becomes `13335`, and anything else is left out;
/// - a numeric `portlist` is a string, as CIF's is;
/// - `uuid` is the indicator's STIX id (TAXII's, §12: the same provider's report of the same
///   indicator has the same one), which ti_cif3 keys its latest-indicator index on; `group` is
///   CIF's default sharing group, `["everyone"]`.
fn cif3_indicator(indicator: &Indicator) -> Value {
    let mut object = match indicator.to_json() {
        Value::Object(object) => object,
        other => return other,
    };
    if let Some(network) = indicator
        .network()
        .filter(|_| indicator.itype() == Itype::Cidr)
    {
        let (itype, mask) = if network.addr().is_ipv4() {
            ("ipv4", "indicator_ipv4_mask")
        } else {
            ("ipv6", "indicator_ipv6_mask")
        };
        object.insert("itype".into(), itype.into());
        object.insert(mask.into(), network.prefix_len().into());
    }
    if indicator.itype() == Itype::Asn {
        object.insert(
            "indicator".into(),
            indicator.indicator().to_ascii_lowercase().into(),
        );
    }
    let reporttime = object.get("reporttime").cloned().unwrap_or(Value::Null);
    for field in ["firsttime", "lasttime"] {
        object.entry(field).or_insert_with(|| reporttime.clone());
    }
    if let Some(asn) = object.remove("asn").as_ref().and_then(asn_number) {
        object.insert("asn".into(), asn.into());
    }
    portlist_as_text(&mut object);
    object.insert("group".into(), json!(["everyone"]));
    object.insert("uuid".into(), uuid(indicator).into());
    Value::Object(object)
}

/// An AS number written as a number, `"13335"` or `"AS13335"`.
fn asn_number(value: &Value) -> Option<u32> {
    match value {
        Value::Number(number) => number.as_u64().and_then(|n| u32::try_from(n).ok()),
        Value::String(text) => {
            let text = text.trim();
            let digits = match text.get(..2) {
                Some(prefix) if prefix.eq_ignore_ascii_case("as") => &text[2..],
                _ => text,
            };
            digits.parse().ok()
        }
        _ => None,
    }
}

fn portlist_as_text(object: &mut Map<String, Value>) {
    let text = match object.get("portlist") {
        Some(Value::Number(number)) => number.to_string(),
        _ => return,
    };
    object.insert("portlist".into(), text.into());
}

/// The UUID of the indicator's STIX id (`indicator--<uuid>`).
fn uuid(indicator: &Indicator) -> String {
    let id = sluice_stix::indicator_id(indicator.provider(), indicator.indicator());
    match id.split_once("--") {
        Some((_, uuid)) => uuid.to_owned(),
        None => id,
    }
}

#[cfg(test)]
mod tests {
    use axum::extract::FromRequestParts;
    use domain::Provenance;

    use super::*;

    fn indicator(value: Value) -> Indicator {
        Indicator::from_json(value, Provenance::Trusted, chrono::Utc::now()).unwrap()
    }

    async fn parse_keys(query: &str) -> Result<Cif3Keys, ApiError> {
        let request = axum::http::Request::get(format!("/feed?{query}"))
            .body(())
            .unwrap();
        let (mut parts, ()) = request.into_parts();
        Cif3Query::from_request_parts(&mut parts, &())
            .await
            .map(|query| query.keys)
    }

    #[tokio::test]
    async fn times_narrow_to_the_latest_and_windows_to_the_shortest() {
        let now = 10 * DAY_MS;
        let keys = parse_keys(
            "reporttime=2026-11-23T12:00:00Z&since=60&hours=2&days=1&nolog=1&group=everyone",
        )
        .await
        .unwrap();
        assert_eq!(keys.added_since_ms(now), 1_795_435_200_000);
        let keys = parse_keys("hours=2&days=1&reporttime=60").await.unwrap();
        assert_eq!(keys.added_since_ms(now), now - 2 * HOUR_MS);
        let keys = parse_keys("hours=&reporttime=&limit=").await.unwrap();
        assert_eq!(keys.added_since_ms(now), 0, "empty values are none");
        assert_eq!(keys.feed.limit, crate::query::DEFAULT_FEED_LIMIT);
        for bad in ["hours=0", "hours=two", "days=-1", "reporttime=yesterday"] {
            let refused = parse_keys(bad).await.map(|_| ()).unwrap_err();
            assert!(matches!(refused, ApiError::BadRequest(_)), "{bad}");
        }
    }

    #[test]
    fn networks_asns_and_times_take_cifs_spelling() {
        let network = cif3_indicator(&indicator(json!({
            "indicator": "185.220.101.0/24", "provider": "p", "asn": "AS13335", "portlist": 443,
            "reporttime": "2026-11-23T12:00:00Z"
        })));
        assert_eq!(network["itype"], "ipv4");
        assert_eq!(network["indicator_ipv4_mask"], 24);
        assert_eq!(network["asn"], 13335);
        assert_eq!(network["portlist"], "443");
        assert_eq!(network["firsttime"], "2026-11-23T12:00:00Z");
        assert_eq!(network["lasttime"], "2026-11-23T12:00:00Z");
        assert_eq!(network["group"], json!(["everyone"]));
        let uuid = network["uuid"].as_str().unwrap();
        assert_eq!(
            format!("indicator--{uuid}"),
            sluice_stix::indicator_id("p", "185.220.101.0/24")
        );
        let v6 = cif3_indicator(&indicator(
            json!({"indicator": "2a01:4f8::/32", "provider": "p", "asn": "not a number"}),
        ));
        assert_eq!(v6["itype"], "ipv6");
        assert_eq!(v6["indicator_ipv6_mask"], 32);
        assert!(v6.get("asn").is_none(), "{v6}");
        let asn = cif3_indicator(&indicator(json!({"indicator": "AS13335", "provider": "p"})));
        assert_eq!(asn["indicator"], "as13335");
        assert_eq!(asn["itype"], "asn");
        let address = cif3_indicator(&indicator(json!({
            "indicator": "185.220.101.7", "provider": "p", "asn": 13335,
            "firsttime": "2026-11-22T12:00:00Z", "reporttime": "2026-11-23T12:00:00Z"
        })));
        assert_eq!(address["itype"], "ipv4");
        assert!(address.get("indicator_ipv4_mask").is_none());
        assert_eq!(address["asn"], 13335);
        assert_eq!(address["firsttime"], "2026-11-22T12:00:00Z");
        assert_eq!(address["lasttime"], "2026-11-23T12:00:00Z");
    }

    #[tokio::test]
    async fn errors_are_cifs_message_and_empty_data() {
        let response = cif3_error(ApiError::TooManyRequests {
            message: "slow down".into(),
            retry_after_seconds: 3,
        });
        assert_eq!(response.status(), 429);
        assert_eq!(response.headers()[header::RETRY_AFTER], "3");
        assert_eq!(response.headers()[header::CONTENT_TYPE], "application/json");
        let body = axum::body::to_bytes(response.into_body(), usize::MAX)
            .await
            .unwrap();
        let body: Value = serde_json::from_slice(&body).unwrap();
        assert_eq!(body, json!({"message": "slow down", "data": []}));
    }
}
