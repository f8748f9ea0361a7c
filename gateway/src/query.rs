//! The query strings of the streaming and feed endpoints, typed: each endpoint's own keys, the
//! credential (`access_token`), and every other key handed to `domain::Filter`, which refuses
//! what it does not know.

use axum::extract::{FromRequestParts, Query};
use axum::http::request::Parts;
use domain::{Filter, FilterError, LogPosition};

use crate::error::ApiError;

/// Indicators a feed returns when `limit` is not given.
pub const DEFAULT_FEED_LIMIT: usize = 500;
/// The most a feed returns, whatever `limit` says.
pub const MAX_FEED_LIMIT: usize = 10_000;

/// An endpoint's query string: its own keys (`K`), the credential, and the filter.
#[derive(Debug)]
pub struct EndpointQuery<K> {
    pub keys: K,
    /// `access_token=`: for clients that cannot set headers (browsers).
    pub access_token: Option<String>,
    /// Kept as parsed, refusal included: the credential is checked before the filter, so a
    /// caller without one learns nothing else.
    filter: Result<Filter, FilterError>,
}

impl<K> EndpointQuery<K> {
    /// The filter, or a 400 saying what is wrong with it.
    pub fn filter(&self) -> Result<&Filter, ApiError> {
        self.filter
            .as_ref()
            .map_err(|error| ApiError::BadRequest(error.to_string()))
    }
}

/// An endpoint's own query keys.
pub trait Keys: Default {
    /// Takes `key` if it is this endpoint's (`Ok(true)`); a bad value is a 400.
    fn take(&mut self, key: &str, value: &str) -> Result<bool, ApiError>;
}

/// `GET /v1/stream`, `/firehose`, `/cif/firehose`.
pub type StreamQuery = EndpointQuery<StreamKeys>;
/// `GET /v1/indicators` and CIF's `GET /indicators`.
pub type FeedQuery = EndpointQuery<FeedKeys>;

/// A stream's own keys: `cursor`.
#[derive(Debug, Default)]
pub struct StreamKeys {
    /// `cursor=` as given (`Last-Event-ID`, a header, wins over it).
    pub cursor: Option<String>,
}

impl Keys for StreamKeys {
    fn take(&mut self, key: &str, value: &str) -> Result<bool, ApiError> {
        match key {
            "cursor" => self.cursor = Some(value.to_owned()),
            _ => return Ok(false),
        }
        Ok(true)
    }
}

impl StreamKeys {
    /// Where to start: `Last-Event-ID` (an `EventSource` reconnecting), else `cursor`, else now.
    pub fn position(&self, last_event_id: Option<&str>) -> Result<LogPosition, ApiError> {
        last_event_id
            .or(self.cursor.as_deref())
            .unwrap_or("now")
            .parse()
            .map_err(|error: domain::CursorError| ApiError::BadRequest(error.to_string()))
    }
}

/// A feed's own keys: `limit`, `since`, CIF's search (`q`, `indicator`) and the CIF keys that
/// mean nothing here.
#[derive(Debug)]
pub struct FeedKeys {
    /// How many indicators at most, within 1..=[`MAX_FEED_LIMIT`].
    pub limit: usize,
    /// Only entries added at or after this time (Unix ms; 0: the plan's whole window).
    pub since_ms: u64,
    /// CIF's search: one exact indicator, with no whitelist subtraction.
    pub exact: Option<String>,
}

impl Default for FeedKeys {
    fn default() -> Self {
        FeedKeys {
            limit: DEFAULT_FEED_LIMIT,
            since_ms: 0,
            exact: None,
        }
    }
}

impl Keys for FeedKeys {
    fn take(&mut self, key: &str, value: &str) -> Result<bool, ApiError> {
        match key {
            "limit" => {
                self.limit = value
                    .parse::<usize>()
                    .map_err(|_| ApiError::BadRequest(format!("limit `{value}` is not a number")))?
                    .clamp(1, MAX_FEED_LIMIT)
            }
            "since" => self.since_ms = parse_since(value)?,
            "q" | "indicator" => self.exact = Some(value.trim().to_owned()),
            // CIF clients send these; they have no meaning here.
            "nolog" | "feed" | "days" => {}
            _ => return Ok(false),
        }
        Ok(true)
    }
}

impl<K: Keys, S: Send + Sync> FromRequestParts<S> for EndpointQuery<K> {
    type Rejection = ApiError;

    async fn from_request_parts(parts: &mut Parts, _: &S) -> Result<Self, ApiError> {
        let Query(pairs) = Query::<Vec<(String, String)>>::try_from_uri(&parts.uri)
            .map_err(|rejection| ApiError::BadRequest(rejection.body_text()))?;
        let mut keys = K::default();
        let mut access_token = None;
        let mut filters = Vec::new();
        for (key, value) in &pairs {
            if key == "access_token" {
                access_token = Some(value.clone());
            } else if !keys.take(key, value)? {
                filters.push((key.as_str(), value.as_str()));
            }
        }
        Ok(EndpointQuery {
            keys,
            access_token,
            filter: Filter::from_pairs(filters),
        })
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

#[cfg(test)]
mod tests {
    use super::*;

    async fn parse<T: FromRequestParts<(), Rejection = ApiError>>(
        query: &str,
    ) -> Result<T, ApiError> {
        let request = axum::http::Request::get(format!("/x?{query}"))
            .body(())
            .unwrap();
        let (mut parts, ()) = request.into_parts();
        T::from_request_parts(&mut parts, &()).await
    }

    #[tokio::test]
    async fn streams_take_their_keys_and_filter_the_rest() {
        let query: StreamQuery = parse("access_token=t&cursor=now&itype=ipv4&tags=ssh")
            .await
            .unwrap();
        assert_eq!(query.access_token.as_deref(), Some("t"));
        assert_eq!(query.keys.position(None).unwrap(), LogPosition::Now);
        assert_eq!(query.filter().unwrap().to_pairs().len(), 2);
        let stray = parse::<StreamQuery>("access_token=t&limit=5")
            .await
            .unwrap();
        assert_eq!(
            stray.access_token.as_deref(),
            Some("t"),
            "kept for the 401 check"
        );
        assert!(stray.filter().is_err(), "not a stream key");
        assert!(matches!(
            parse::<StreamQuery>("cursor=nope")
                .await
                .unwrap()
                .keys
                .position(None),
            Err(ApiError::BadRequest(_))
        ));
        let earliest = parse::<StreamQuery>("cursor=now").await.unwrap();
        assert_eq!(
            earliest.keys.position(Some("earliest")).unwrap(),
            LogPosition::Earliest,
            "Last-Event-ID wins"
        );
    }

    #[tokio::test]
    async fn feeds_take_limits_times_and_cif_keys() {
        let query: FeedQuery = parse("limit=99999&since=60&q=%201.2.3.4&nolog=1&tlp=green")
            .await
            .unwrap();
        assert_eq!(query.keys.limit, MAX_FEED_LIMIT);
        assert_eq!(query.keys.since_ms, 60_000);
        assert_eq!(query.keys.exact.as_deref(), Some("1.2.3.4"));
        assert_eq!(query.filter().unwrap().max_tlp(), Some(domain::Tlp::Green));
        let since: FeedQuery = parse("since=2026-11-23T12:00:00Z").await.unwrap();
        assert_eq!(since.keys.since_ms, 1_795_435_200_000);
        assert!(parse::<FeedQuery>("limit=x").await.is_err());
        assert!(parse::<FeedQuery>("since=yesterday").await.is_err());
        let stray = parse::<FeedQuery>("cursor=now").await.unwrap();
        assert!(stray.filter().is_err(), "not a feed key");
        assert_eq!(
            parse::<FeedQuery>("").await.unwrap().keys.limit,
            DEFAULT_FEED_LIMIT
        );
    }
}
