//! The query strings of the streaming and feed endpoints, typed: each endpoint's own keys, the
//! credential (`access_token`), and every other key handed to `domain::Filter`, which refuses
//! what it does not know.

use axum::extract::{FromRequestParts, Query};
use axum::http::request::Parts;
use domain::{Filter, FilterError};

use crate::error::ApiError;
use crate::subscription::Start;

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

/// A stream's own keys: `cursor` and `since`.
#[derive(Debug, Default)]
pub struct StreamKeys {
    /// `cursor=` as given (`Last-Event-ID`, a header, wins over it).
    pub cursor: Option<String>,
    /// `since=` as given: a time, read as the feed's `since` (RFC 3339 or Unix seconds).
    pub since: Option<String>,
}

impl Keys for StreamKeys {
    fn take(&mut self, key: &str, value: &str) -> Result<bool, ApiError> {
        match key {
            "cursor" => self.cursor = Some(value.to_owned()),
            "since" => self.since = Some(value.to_owned()),
            _ => return Ok(false),
        }
        Ok(true)
    }
}

impl StreamKeys {
    /// Where to start: `Last-Event-ID` (an `EventSource` reconnecting), else `cursor` or
    /// `since` (not both: a 400), else now. A reconnecting `EventSource` sends its original
    /// URL, `since` included, with `Last-Event-ID`: it resumes from its place, never from the
    /// time again.
    pub fn start(&self, last_event_id: Option<&str>) -> Result<Start, ApiError> {
        // An empty value is the same as none, as for `cursor` and the filters.
        let since = match self.since.as_deref().map(str::trim) {
            Some("") | None => None,
            Some(value) => Some(parse_since(value)?),
        };
        let cursor = self.cursor.as_deref().filter(|cursor| !cursor.is_empty());
        if since.is_some() && cursor.is_some() {
            return Err(ApiError::BadRequest(
                "`since` and `cursor` both say where to start: give one of them (`cursor` to \
                 resume from a frame's `id`, `since` to start at a time)"
                    .into(),
            ));
        }
        match (last_event_id, since) {
            (None, Some(ms)) => Ok(Start::AddedSince(ms)),
            (id, _) => id
                .or(cursor)
                .unwrap_or("now")
                .parse()
                .map(Start::At)
                .map_err(|error: domain::CursorError| ApiError::BadRequest(error.to_string())),
        }
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
    use domain::LogPosition;

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
        assert_eq!(query.keys.start(None).unwrap(), Start::At(LogPosition::Now));
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
                .start(None),
            Err(ApiError::BadRequest(_))
        ));
        let earliest = parse::<StreamQuery>("cursor=now").await.unwrap();
        assert_eq!(
            earliest.keys.start(Some("earliest")).unwrap(),
            Start::At(LogPosition::Earliest),
            "Last-Event-ID wins"
        );
    }

    async fn start(query: &str, last_event_id: Option<&str>) -> Result<Start, String> {
        let query: StreamQuery = parse(query).await.map_err(|error| error.to_string())?;
        query
            .keys
            .start(last_event_id)
            .map_err(|error| match error {
                ApiError::BadRequest(message) => message,
                other => panic!("not a 400: {other:?}"),
            })
    }

    #[tokio::test]
    async fn streams_start_at_a_time_with_since() {
        assert_eq!(
            start("since=2026-11-23T12:00:00.250Z", None).await,
            Ok(Start::AddedSince(1_795_435_200_250))
        );
        assert_eq!(
            start("since=2026-11-23T13:00:00%2B01:00", None).await,
            Ok(Start::AddedSince(1_795_435_200_000)),
            "an offset, its `+` escaped"
        );
        assert_eq!(
            start("since=60", None).await,
            Ok(Start::AddedSince(60_000)),
            "Unix seconds, as the feed's `since`"
        );
        assert_eq!(
            start("since=&cursor=earliest", None).await,
            Ok(Start::At(LogPosition::Earliest)),
            "an empty `since` is none"
        );
        let both = start("since=2026-11-23T12:00:00Z&cursor=now", None).await;
        assert!(
            both.as_ref()
                .is_err_and(|message| message.contains("`since` and `cursor`")),
            "{both:?}"
        );
        let bad = start("since=yesterday", None).await;
        assert!(
            bad.as_ref()
                .is_err_and(|message| message.contains("RFC 3339")),
            "{bad:?}"
        );
        assert!(
            start("since=2026-11-23T12:00:00+01:00", None)
                .await
                .is_err(),
            "an unescaped `+` is a space"
        );
        // An EventSource reconnects with its URL and Last-Event-ID: it resumes, never restarts
        // at the time.
        let cursor = "e1.5-0";
        assert_eq!(
            start("since=2026-11-23T12:00:00Z", Some(cursor)).await,
            Ok(Start::At(LogPosition::After(cursor.parse().unwrap())))
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
