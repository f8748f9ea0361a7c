//! Reading the time spellings feeds use, and writing the one Sluice emits (RFC 3339 UTC, `Z`).
//!
//! Accepted, all meaning the same instant when the zone is absent (UTC, as CIF assumes):
//! - RFC 3339 with any offset and optional fraction: `2016-03-23T20:22:27Z`,
//!   `2016-03-23T20:22:27.000000Z`, `2016-03-23T20:22:27+01:00`, and with a space for the `T`;
//! - csirtg.io's `2016-03-23 20:22:27 UTC`;
//! - zone-less `2016-03-23 20:22:27`, `2016-03-23T20:22:27`, `2016-06-05 12:03` (Bambenek),
//!   with optional fraction;
//! - a bare date `2016-03-23` (midnight UTC).
//!
//! Numbers (Unix timestamps) are refused: seconds and milliseconds cannot be told apart safely.

use chrono::{DateTime, NaiveDate, NaiveDateTime, SecondsFormat, Utc};

/// What a refused time is told to look like.
pub(crate) const EXPECTED: &str = "expected an RFC 3339 time such as `2016-03-23T20:22:27Z`";

const NAIVE_FORMATS: &[&str] = &[
    "%Y-%m-%dT%H:%M:%S%.f",
    "%Y-%m-%d %H:%M:%S%.f",
    "%Y-%m-%dT%H:%M",
    "%Y-%m-%d %H:%M",
];

/// Parses one of the accepted spellings (see the module doc).
pub(crate) fn parse_time(text: &str) -> Option<DateTime<Utc>> {
    let text = text.trim();
    // Bounded before chrono sees it: no accepted spelling is longer.
    if text.is_empty() || text.len() > 64 {
        return None;
    }
    if let Ok(time) = DateTime::parse_from_rfc3339(text) {
        return Some(time.with_timezone(&Utc));
    }
    let zoneless = text
        .strip_suffix(" UTC")
        .or_else(|| text.strip_suffix(" utc"))
        .or_else(|| text.strip_suffix('Z'))
        .or_else(|| text.strip_suffix('z'))
        .unwrap_or(text);
    NAIVE_FORMATS
        .iter()
        .find_map(|format| NaiveDateTime::parse_from_str(zoneless, format).ok())
        .or_else(|| {
            NaiveDate::parse_from_str(zoneless, "%Y-%m-%d")
                .ok()
                .and_then(|date| date.and_hms_opt(0, 0, 0))
        })
        .map(|naive| naive.and_utc())
}

/// RFC 3339 in UTC with `Z`; fractional seconds only when there are some, and exactly as many
/// as needed to give back the same instant.
pub(crate) fn format_time(time: DateTime<Utc>) -> String {
    time.to_rfc3339_opts(SecondsFormat::AutoSi, true)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn check(input: &str, expected: Option<&str>) {
        assert_eq!(
            parse_time(input).map(format_time).as_deref(),
            expected,
            "parsing {input:?}"
        );
    }

    #[test]
    fn parses_feed_spellings() {
        check("2016-03-23T20:22:27Z", Some("2016-03-23T20:22:27Z"));
        check("2016-03-23T20:22:27.000000Z", Some("2016-03-23T20:22:27Z"));
        check("2016-03-23T20:22:27.250Z", Some("2016-03-23T20:22:27.250Z"));
        check(
            "2016-03-23T20:22:27.123456789Z",
            Some("2016-03-23T20:22:27.123456789Z"),
        );
        check("2016-03-23T21:22:27+01:00", Some("2016-03-23T20:22:27Z"));
        check("2016-03-26T12:17:32+00:00", Some("2016-03-26T12:17:32Z"));
        check("2016-03-23 20:22:27Z", Some("2016-03-23T20:22:27Z"));
        check("2016-03-23 20:22:27 UTC", Some("2016-03-23T20:22:27Z"));
        check("2016-03-23 20:22:27", Some("2016-03-23T20:22:27Z"));
        check("2016-03-23T20:22:27", Some("2016-03-23T20:22:27Z"));
        check("2016-06-05 12:03", Some("2016-06-05T12:03:00Z"));
        check("2016-03-23", Some("2016-03-23T00:00:00Z"));
        check(" 2016-03-23T20:22:27Z ", Some("2016-03-23T20:22:27Z"));
    }

    #[test]
    fn refuses_the_rest() {
        check("", None);
        check("yesterday", None);
        check("1458764547", None);
        check("2016-13-01T00:00:00Z", None);
        check("2016-02-30", None);
        check("23/03/2016 20:22", None);
        check("2016-03-23T20:22:27 PST", None);
    }
}
