//! The query parameters of TAXII's object endpoints: `added_after`, `limit`, `next` and the
//! `match[…]` filters, each refused with a clear 400 when it is not valid.

use std::collections::HashSet;

use chrono::{DateTime, Utc};
use domain::{Cursor, StreamId};

use crate::error::ApiError;

/// Most objects one page holds, and what a page holds when no `limit` is given.
pub const MAX_LIMIT: usize = 1_000;
/// Most values one `match[…]` filter takes (a 400 beyond): each is compared with every entry
/// a page reads.
pub const MAX_MATCH_VALUES: usize = 100;

/// Which versions of each object a request asks for (`match[version]`; `last` by default).
#[derive(Debug, Clone, Default, PartialEq)]
pub struct VersionMatch {
    pub all: bool,
    pub first: bool,
    pub last: bool,
    /// Versions by their `modified` time, in milliseconds.
    pub at_ms: Vec<i64>,
}

/// A request's parameters.
#[derive(Debug, Clone)]
pub struct Params {
    /// Only entries added after this millisecond.
    pub added_after_ms: Option<u64>,
    pub limit: usize,
    /// Where the previous page ended.
    pub next: Option<Cursor>,
    pub types: Option<HashSet<String>>,
    pub ids: Option<HashSet<String>>,
    pub versions: VersionMatch,
    /// False when `match[spec_version]` names no version this server has (2.1): nothing matches.
    pub spec_version_ok: bool,
}

/// Which parameters an endpoint takes besides `added_after`, `limit`, `next`,
/// `match[version]` and `match[spec_version]`.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Endpoint {
    /// `objects/` and `manifest/`: also `match[id]` and `match[type]`.
    List,
    /// `objects/{id}/` and `objects/{id}/versions/`.
    Object,
}

impl VersionMatch {
    /// Only the last version of each object: what TAXII answers unless asked otherwise.
    pub fn last() -> Self {
        VersionMatch {
            last: true,
            ..VersionMatch::default()
        }
    }

    /// Every version (the default of `versions/`).
    pub fn all() -> Self {
        VersionMatch {
            all: true,
            ..VersionMatch::default()
        }
    }
}

impl Params {
    /// Reads `query`; `default_versions` is what `match[version]` is when not given (`last`
    /// on most endpoints, `all` on `versions/`).
    pub fn parse(
        query: Option<&str>,
        endpoint: Endpoint,
        default_versions: VersionMatch,
    ) -> Result<Params, ApiError> {
        let mut params = Params {
            added_after_ms: None,
            limit: MAX_LIMIT,
            next: None,
            types: None,
            ids: None,
            versions: VersionMatch::default(),
            spec_version_ok: true,
        };
        let mut versions = None;
        for (key, value) in url::form_urlencoded::parse(query.unwrap_or("").as_bytes()) {
            let value = value.trim();
            match key.as_ref() {
                "added_after" => params.added_after_ms = Some(timestamp_ms("added_after", value)?),
                "limit" => params.limit = limit(value)?,
                "next" => {
                    params.next = Some(value.parse().map_err(|_| {
                        bad("next", value, "the `next` of the page before, unchanged")
                    })?)
                }
                // An empty filter is no filter, as everywhere else in the API.
                _ if key.starts_with("match[") && value.is_empty() => {}
                "match[version]" => versions = Some(version_match(bounded(&key, value)?)?),
                "match[spec_version]" => {
                    params.spec_version_ok =
                        list(bounded(&key, value)?).any(|version| version == "2.1")
                }
                "match[type]" if endpoint == Endpoint::List => {
                    params.types = Some(list(bounded(&key, value)?).map(str::to_owned).collect())
                }
                "match[id]" if endpoint == Endpoint::List => {
                    params.ids = Some(list(bounded(&key, value)?).map(str::to_owned).collect())
                }
                other if other.starts_with("match[") => {
                    return Err(ApiError::BadRequest(format!(
                        "`{}` is not a filter this endpoint has; it takes {}",
                        cut(other),
                        match endpoint {
                            Endpoint::List =>
                                "match[id], match[type], match[version] and \
                                               match[spec_version]",
                            Endpoint::Object => "match[version] and match[spec_version]",
                        }
                    )))
                }
                // Other parameters are not TAXII's; ignored, as the spec lets servers do.
                _ => {}
            }
        }
        params.versions = versions.unwrap_or(default_versions);
        Ok(params)
    }

    /// The position the page starts after, given the oldest one the plan may read.
    pub fn start_after(&self, floor: StreamId) -> StreamId {
        let floor = StreamId::new(floor.ms.saturating_sub(1), u64::MAX);
        let added_after = self
            .added_after_ms
            .map(|ms| StreamId::new(ms, u64::MAX))
            .unwrap_or(StreamId::ZERO);
        let next = self.next.as_ref().map(Cursor::id).unwrap_or(StreamId::ZERO);
        floor.max(added_after).max(next)
    }
}

/// `value` when it lists at most [`MAX_MATCH_VALUES`] values.
fn bounded<'a>(key: &str, value: &'a str) -> Result<&'a str, ApiError> {
    if list(value).nth(MAX_MATCH_VALUES).is_some() {
        return Err(ApiError::BadRequest(format!(
            "`{}` lists more than {MAX_MATCH_VALUES} values; ask in several requests",
            cut(key)
        )));
    }
    Ok(value)
}

fn list(value: &str) -> impl Iterator<Item = &str> {
    value
        .split(',')
        .map(str::trim)
        .filter(|item| !item.is_empty())
}

fn limit(value: &str) -> Result<usize, ApiError> {
    match value.parse::<usize>() {
        Ok(0) | Err(_) => Err(bad("limit", value, "a whole number from 1")),
        // A larger limit is allowed; the page holds at most MAX_LIMIT (TAXII lets servers).
        Ok(limit) => Ok(limit.min(MAX_LIMIT)),
    }
}

fn timestamp_ms(name: &str, value: &str) -> Result<u64, ApiError> {
    let time = DateTime::parse_from_rfc3339(value)
        .map_err(|_| bad(name, value, "a timestamp such as 2026-12-04T10:00:00.000Z"))?;
    Ok(time.with_timezone(&Utc).timestamp_millis().max(0) as u64)
}

fn version_match(value: &str) -> Result<VersionMatch, ApiError> {
    let mut versions = VersionMatch::default();
    for item in list(value) {
        match item {
            "all" => versions.all = true,
            "first" => versions.first = true,
            "last" => versions.last = true,
            time => versions.at_ms.push(
                DateTime::parse_from_rfc3339(time)
                    .map_err(|_| {
                        bad(
                            "match[version]",
                            time,
                            "last, first, all, or a version's timestamp",
                        )
                    })?
                    .timestamp_millis(),
            ),
        }
    }
    Ok(versions)
}

fn bad(name: &str, value: &str, expected: &str) -> ApiError {
    ApiError::BadRequest(format!("`{name}` is `{}`; expected {expected}", cut(value)))
}

/// At most 64 characters of what the client sent, for error messages.
fn cut(text: &str) -> String {
    match text.char_indices().nth(64) {
        Some((end, _)) => format!("{}…", &text[..end]),
        None => text.to_owned(),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn parse(query: &str) -> Result<Params, ApiError> {
        Params::parse(Some(query), Endpoint::List, VersionMatch::last())
    }

    #[test]
    fn defaults_are_the_last_versions_a_full_page() {
        let params = parse("").unwrap();
        assert_eq!(params.limit, MAX_LIMIT);
        assert!(params.versions.last && !params.versions.all);
        assert!(params.spec_version_ok);
        assert!(params.types.is_none() && params.ids.is_none());
    }

    #[test]
    fn every_parameter_is_read() {
        let params = parse(
            "added_after=2026-12-04T10:00:00.123Z&limit=5000&next=ab12.1700000000000-3\
             &match%5Bversion%5D=first,2026-12-04T09:00:00Z&match[type]=indicator\
             &match[id]=indicator--x&match[spec_version]=2.0,2.1",
        )
        .unwrap();
        assert_eq!(params.added_after_ms, Some(1_796_378_400_123));
        assert_eq!(params.limit, MAX_LIMIT);
        assert_eq!(
            params.next.unwrap().id(),
            StreamId::new(1_700_000_000_000, 3)
        );
        assert!(params.versions.first && !params.versions.last);
        assert_eq!(params.versions.at_ms, [1_796_374_800_000]);
        assert_eq!(
            params.types.unwrap(),
            HashSet::from(["indicator".to_owned()])
        );
        assert_eq!(
            params.ids.unwrap(),
            HashSet::from(["indicator--x".to_owned()])
        );
        assert!(params.spec_version_ok);
        assert!(!parse("match[spec_version]=2.0").unwrap().spec_version_ok);
    }

    #[test]
    fn bad_values_are_refused_with_what_was_expected() {
        for query in [
            "limit=0",
            "limit=-1",
            "added_after=yesterday",
            "next=garbage",
            "match[version]=newest",
            "match[relationship_type]=derived-from",
        ] {
            let error = parse(query).unwrap_err().to_string();
            assert!(error.contains('`'), "{query}: {error}");
        }
        assert!(Params::parse(Some("match[id]=x"), Endpoint::Object, VersionMatch::all()).is_err());
        let many = vec!["indicator--x"; MAX_MATCH_VALUES + 1].join(",");
        assert!(parse(&format!("match[id]={many}")).is_err());
    }

    #[test]
    fn empty_filters_are_no_filters_and_endpoints_set_their_default() {
        let params = parse("match[version]=&match[spec_version]=&match[type]=").unwrap();
        assert_eq!(params.versions, VersionMatch::last());
        assert!(params.spec_version_ok && params.types.is_none());
        let params = Params::parse(
            Some("match%5bversion%5d=first"),
            Endpoint::Object,
            VersionMatch::all(),
        )
        .unwrap();
        assert!(
            params.versions.first && !params.versions.all,
            "lower-case escapes too"
        );
        let params = Params::parse(None, Endpoint::Object, VersionMatch::all()).unwrap();
        assert_eq!(params.versions, VersionMatch::all());
    }

    #[test]
    fn a_page_starts_after_the_latest_of_its_bounds() {
        let mut params = parse("").unwrap();
        let floor = StreamId::new(1_000, 0);
        assert_eq!(params.start_after(floor), StreamId::new(999, u64::MAX));
        params.added_after_ms = Some(2_000);
        assert_eq!(params.start_after(floor), StreamId::new(2_000, u64::MAX));
        params.next = Some(Cursor::new("e", StreamId::new(3_000, 2)).unwrap());
        assert_eq!(params.start_after(floor), StreamId::new(3_000, 2));
    }
}
