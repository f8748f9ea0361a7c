//! STIX timestamps: UTC with `Z` and exactly three fractional digits, `YYYY-MM-DDTHH:MM:SS.sssZ`.
//!
//! Milliseconds because STIX 2.1 requires `created` and `modified` to be precise to the
//! millisecond (its JSON schema wants at least three digits) and because consumers compare
//! versions by `modified`: one fixed width keeps those strings ordered like the instants they
//! name. Every timestamp of an object uses the same spelling, so none looks more precise than
//! the others. Sub-millisecond parts are cut (rounded down), except where a bound must stay
//! strictly after another ([`ceil_millis`]).
//!
//! Times are kept within 1970-01-01T00:00:00.000Z ..= 9999-12-31T23:59:59.999Z: STIX has four-
//! digit years, and the Python tools mishandle years before 1000. Only nonsense input (a
//! `firsttime` in antiquity) is ever moved by this.

use std::fmt::Write;

use chrono::{DateTime, Datelike, Timelike, Utc};

/// 9999-12-31T23:59:59.999Z in milliseconds since the Unix epoch.
pub(crate) const MAX_MILLIS: i64 = 253_402_300_799_999;

/// `time` in whole milliseconds since the Unix epoch, rounded down, kept in range.
pub(crate) fn floor_millis(time: DateTime<Utc>) -> i64 {
    // `timestamp_millis` rounds towards minus infinity (the sub-second part is never negative).
    time.timestamp_millis().clamp(0, MAX_MILLIS)
}

/// `time` in whole milliseconds, rounded up, kept in range.
pub(crate) fn ceil_millis(time: DateTime<Utc>) -> i64 {
    let partial = !time.timestamp_subsec_nanos().is_multiple_of(1_000_000);
    time.timestamp_millis()
        .saturating_add(i64::from(partial))
        .clamp(0, MAX_MILLIS)
}

/// `millis` (within range) as `YYYY-MM-DDTHH:MM:SS.sssZ`.
pub(crate) fn format(millis: i64) -> String {
    let time = DateTime::from_timestamp_millis(millis.clamp(0, MAX_MILLIS))
        .unwrap_or(DateTime::UNIX_EPOCH);
    let mut text = String::with_capacity(24);
    // Writing to a String cannot fail.
    let _ = write!(
        text,
        "{:04}-{:02}-{:02}T{:02}:{:02}:{:02}.{:03}Z",
        time.year(),
        time.month(),
        time.day(),
        time.hour(),
        time.minute(),
        time.second(),
        time.timestamp_subsec_millis()
    );
    text
}

#[cfg(test)]
mod tests {
    use super::*;

    fn at(text: &str) -> DateTime<Utc> {
        DateTime::parse_from_rfc3339(text).unwrap().to_utc()
    }

    #[test]
    fn writes_milliseconds() {
        assert_eq!(
            format(floor_millis(at("2016-03-23T20:22:27Z"))),
            "2016-03-23T20:22:27.000Z"
        );
        assert_eq!(
            format(floor_millis(at("2016-03-23T20:22:27.123999Z"))),
            "2016-03-23T20:22:27.123Z"
        );
        assert_eq!(
            format(ceil_millis(at("2016-03-23T20:22:27.123001Z"))),
            "2016-03-23T20:22:27.124Z"
        );
        assert_eq!(
            format(ceil_millis(at("2016-03-23T20:22:27.123Z"))),
            "2016-03-23T20:22:27.123Z"
        );
        assert_eq!(
            format(floor_millis(at("2016-12-31T23:59:59.999999999Z"))),
            "2016-12-31T23:59:59.999Z"
        );
    }

    #[test]
    fn keeps_times_in_range() {
        assert_eq!(
            format(floor_millis(at("0001-01-01T00:00:00Z"))),
            "1970-01-01T00:00:00.000Z"
        );
        assert_eq!(
            format(ceil_millis(at("9999-12-31T23:59:59.9999Z"))),
            "9999-12-31T23:59:59.999Z"
        );
        assert_eq!(format(i64::MAX), "9999-12-31T23:59:59.999Z");
    }
}
