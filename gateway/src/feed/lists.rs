//! Plain lists for firewalls, DNS sinkholes and Zeek (docs/protocol.md §8.5):
//! `GET /v1/lists/{profile}.txt`, one indicator per line, what the feed scan selects under the
//! profile (plan's window and visibility, filters, whitelist subtracted, one line per
//! indicator).
//!
//! Devices poll these lists (a firewall's external dynamic list every few minutes), so the body
//! depends only on which indicators are in the list: lines are sorted by indicator (byte order),
//! not by arrival or confidence, and a re-report of a listed indicator leaves the bytes as they
//! were. The `ETag` is a hash of the body, and a poller that presents it in `If-None-Match` gets
//! a `304` with no body. A `304` still costs the node a scan, so it counts against the account's
//! feed rate like any feed request; it delivers nothing, so it is not metered as usage.

use axum::extract::{Path, State};
use axum::http::{header, HeaderMap, HeaderValue, StatusCode};
use axum::response::{IntoResponse, Response};
use axum::Json;
use domain::filter::Profile;
use domain::Filter;
use sha2::{Digest, Sha256};
use sluice_log::SharedEntry;

use super::{admit, meter, scan, Scan};
use crate::error::ApiError;
use crate::query::{EndpointQuery, Keys};
use crate::wire::ErrorBody;
use crate::AppState;

/// Lines a list has when `limit` is not given.
pub const DEFAULT_LIST_LIMIT: usize = 100_000;
/// The most lines a list has, whatever `limit` says: a feed scan reads at most 200,000 log
/// entries (`scan.rs`), so no list could be longer anyway.
pub const MAX_LIST_LIMIT: usize = 200_000;
/// What every list's name ends with.
const SUFFIX: &str = ".txt";
/// Bytes of the body's SHA-256 in its `ETag` (128 bits, as 32 hex digits).
const ETAG_BYTES: usize = 16;

/// `GET /v1/lists/{profile}.txt`.
pub type ListQuery = EndpointQuery<ListKeys>;

/// A list's own keys: `limit`.
#[derive(Debug)]
pub struct ListKeys {
    /// How many lines at most, within 1..=[`MAX_LIST_LIMIT`].
    pub limit: usize,
}

impl Default for ListKeys {
    fn default() -> Self {
        ListKeys {
            limit: DEFAULT_LIST_LIMIT,
        }
    }
}

impl Keys for ListKeys {
    fn take(&mut self, key: &str, value: &str) -> Result<bool, ApiError> {
        if key != "limit" {
            return Ok(false);
        }
        self.limit = value
            .parse::<usize>()
            .map_err(|_| ApiError::BadRequest(format!("limit `{value}` is not a number")))?
            .clamp(1, MAX_LIST_LIMIT);
        Ok(true)
    }
}

/// A plain list: one indicator per line.
///
/// The indicators of the profile (`firewall.txt`: ipv4, ipv6 and cidr with confidence ≥ 8;
/// `sinkhole.txt`: fqdn with confidence ≥ 8; `zeek.txt`: addresses, domains, URLs, hashes and
/// email addresses with confidence ≥ 7) within the plan's replay window and visibility,
/// whitelisted indicators subtracted, one line per indicator, sorted by indicator, each line
/// ending in `\n`, no header (an empty list is an empty body). Further filters narrow it;
/// `profile` is the list's name and is not a parameter here. `ETag` is a hash of the body:
/// send it back in `If-None-Match` to get `304 Not Modified` while the list is unchanged.
/// Every request, a `304` too, counts against the account's feed rate.
#[utoipa::path(
    get,
    path = "/v1/lists/{list}",
    tag = "indicators",
    params(
        ("list" = String, Path, description = "`firewall.txt`, `sinkhole.txt` or `zeek.txt`.",
            example = "firewall.txt"),
        crate::openapi::ListParams,
        crate::openapi::FilterParams,
        ("If-None-Match" = Option<String>, Header, description = "The `ETag` of the list the \
            client has: `304` with no body while it is still the list."),
    ),
    responses(
        (status = 200, description = "The list, one indicator per line, sorted \
            (`185.220.101.0/24\\n185.220.101.7\\n`).",
            content_type = "text/plain; charset=utf-8", body = String,
            headers(
                ("ETag" = String, description = "A hash of the body (strong)."),
                ("Cache-Control" = String, description = "`no-cache`: caches revalidate."),
            )),
        (status = 304, description = "Unchanged since the `ETag` in `If-None-Match`.",
            headers(("ETag" = String, description = "The list's `ETag`, unchanged."))),
        (status = 400, description = "A filter or `limit` is not valid, or `profile` was given.",
            body = ErrorBody),
        (status = 401, description = "No token, or not a valid one.", body = ErrorBody),
        (status = 403, description = "The plan has no feed access.", body = ErrorBody),
        (status = 404, description = "No such list; the error names the lists there are.",
            body = ErrorBody),
        (status = 429, description = "The account asks for feeds more often than the node's \
            `--feed-rate`, or the node is busy with other feeds; retry after `Retry-After`.",
            body = ErrorBody),
        (status = 503, description = "The log backend is unavailable; retry (`Retry-After`).",
            body = ErrorBody),
    ),
    security(("api_token" = []), ("basic" = []), ("access_token" = [])),
)]
pub async fn list(
    State(state): State<AppState>,
    Path(name): Path<String>,
    headers: HeaderMap,
    query: ListQuery,
) -> Result<Response, ApiError> {
    let principal = admit(&state, &headers, query.access_token.as_deref()).await?;
    let Some(profile) = profile_of(&name) else {
        return Ok(unknown_list(&name));
    };
    let filter = with_profile(query.filter()?, profile)?;
    let scanned = scan(
        &state,
        &principal.plan.limits,
        Scan {
            filter: &filter,
            exact: None,
            since_ms: 0,
            deliver_from: domain::StreamId::ZERO,
            limit: query.keys.limit,
        },
    )
    .await?;
    let body = lines(&scanned.entries);
    let etag = etag(&body);
    let validators = [
        (header::ETAG, etag.clone()),
        (header::CACHE_CONTROL, HeaderValue::from_static("no-cache")),
    ];
    if none_match(&headers, &etag) {
        return Ok((StatusCode::NOT_MODIFIED, validators).into_response());
    }
    meter(&state, &principal, scanned.entries.len(), body.len());
    let content_type = (
        header::CONTENT_TYPE,
        HeaderValue::from_static("text/plain; charset=utf-8"),
    );
    Ok((validators, [content_type], body).into_response())
}

/// `firewall.txt` → the `firewall` profile; exactly the profile's name, lowercase.
fn profile_of(name: &str) -> Option<Profile> {
    let wanted = name.strip_suffix(SUFFIX)?;
    Profile::ALL
        .into_iter()
        .find(|profile| profile.as_str() == wanted)
}

/// The 404 of a list that does not exist, naming those that do.
fn unknown_list(name: &str) -> Response {
    let known: Vec<String> = Profile::ALL
        .iter()
        .map(|profile| format!("`{profile}{SUFFIX}`"))
        .collect();
    let shown: String = name.chars().take(64).collect();
    let message = format!(
        "there is no list `{shown}`: the lists are {}",
        known.join(", ")
    );
    (StatusCode::NOT_FOUND, Json(ErrorBody::new(&message))).into_response()
}

/// The request's filter with the list's profile added (both apply).
fn with_profile(filter: &Filter, profile: Profile) -> Result<Filter, ApiError> {
    if let Some(given) = filter.profile() {
        return Err(ApiError::BadRequest(format!(
            "`profile={given}` with a list: the list's name is its profile; ask for \
             `/v1/lists/{given}{SUFFIX}` instead, or leave `profile` out"
        )));
    }
    let pairs = filter.to_pairs();
    Filter::from_pairs(
        pairs
            .iter()
            .map(|(key, value)| (*key, value.as_str()))
            .chain([("profile", profile.as_str())]),
    )
    .map_err(|error| ApiError::BadRequest(error.to_string()))
}

/// One indicator per line, sorted (byte order), each line ending in `\n`. Indicators never
/// contain whitespace or control characters (the indicator model refuses them).
fn lines(entries: &[SharedEntry]) -> String {
    let mut indicators: Vec<&str> = entries
        .iter()
        .map(|entry| entry.indicator.indicator())
        .collect();
    indicators.sort_unstable();
    let mut body = String::with_capacity(indicators.iter().map(|text| text.len() + 1).sum());
    for indicator in indicators {
        body.push_str(indicator);
        body.push('\n');
    }
    body
}

/// A strong validator: the body's SHA-256, cut to [`ETAG_BYTES`], in hex, quoted.
fn etag(body: &str) -> HeaderValue {
    let digest = Sha256::digest(body.as_bytes());
    let mut tag = String::with_capacity(2 + 2 * ETAG_BYTES);
    tag.push('"');
    for byte in &digest[..ETAG_BYTES] {
        tag.push_str(&format!("{byte:02x}"));
    }
    tag.push('"');
    HeaderValue::from_str(&tag).unwrap_or_else(|_| HeaderValue::from_static("\"\""))
}

/// Whether `If-None-Match` names `etag` (or is `*`). The comparison is the weak one RFC 9110
/// prescribes for `If-None-Match`: `W/"x"` matches `"x"`.
fn none_match(headers: &HeaderMap, etag: &HeaderValue) -> bool {
    let Ok(etag) = etag.to_str() else {
        return false;
    };
    headers
        .get_all(header::IF_NONE_MATCH)
        .iter()
        .filter_map(|value| value.to_str().ok())
        .flat_map(|value| value.split(','))
        .map(str::trim)
        .any(|tag| tag == "*" || tag.strip_prefix("W/").unwrap_or(tag) == etag)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn list_names_are_profiles_with_txt() {
        assert_eq!(profile_of("firewall.txt"), Some(Profile::Firewall));
        assert_eq!(profile_of("sinkhole.txt"), Some(Profile::Sinkhole));
        assert_eq!(profile_of("zeek.txt"), Some(Profile::Zeek));
        for name in [
            "firewall",
            "Firewall.txt",
            "firewall.csv",
            " zeek.txt",
            "botnet.txt",
        ] {
            assert_eq!(profile_of(name), None, "{name}");
        }
    }

    #[test]
    fn etags_are_quoted_hashes_of_the_body() {
        let tag = etag("185.220.101.7\n");
        let text = tag.to_str().unwrap();
        assert_eq!(text.len(), 2 + 32, "{text}");
        assert!(text.starts_with('"') && text.ends_with('"'), "{text}");
        assert_eq!(etag("185.220.101.7\n"), tag, "the same body, the same tag");
        assert_ne!(etag("185.220.101.8\n"), tag);
        assert_eq!(
            etag("").to_str().unwrap(),
            "\"e3b0c44298fc1c149afbf4c8996fb924\"",
            "SHA-256 of nothing, cut to 128 bits"
        );
    }

    #[test]
    fn if_none_match_compares_weakly_and_takes_lists_and_star() {
        let tag = etag("x\n");
        let text = tag.to_str().unwrap().to_owned();
        let with = |value: &str| {
            let mut headers = HeaderMap::new();
            headers.insert(header::IF_NONE_MATCH, value.parse().unwrap());
            none_match(&headers, &tag)
        };
        assert!(with(&text));
        assert!(with(&format!("W/{text}")));
        assert!(with(&format!("\"other\", {text}")));
        assert!(with("*"));
        assert!(!with("\"other\""));
        assert!(
            !with(text.trim_matches('"')),
            "an unquoted tag is not the tag"
        );
        assert!(!none_match(&HeaderMap::new(), &tag));
    }

    #[test]
    fn a_profile_in_the_query_is_refused_and_filters_narrow_the_profile() {
        let pairs = |query: &'static str| {
            query
                .split('&')
                .map(|pair| pair.split_once('=').unwrap())
                .collect::<Vec<_>>()
        };
        let filter = Filter::from_pairs(pairs("tags=scanner&confidence=9")).unwrap();
        let listed = with_profile(&filter, Profile::Firewall).unwrap();
        assert_eq!(listed.profile(), Some(Profile::Firewall));
        assert!(listed.wants_tag("scanner"));
        let given = Filter::from_pairs(pairs("profile=zeek")).unwrap();
        let refused = with_profile(&given, Profile::Firewall).unwrap_err();
        assert!(
            refused.to_string().contains("/v1/lists/zeek.txt"),
            "{refused}"
        );
    }
}
