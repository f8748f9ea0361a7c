//! How long an indicator holds (docs/protocol.md §2.9): the one rule for when an indicator
//! expires, which feeds, lists, TAXII and whole-file outputs apply when they read.
//!
//! The effective expiry of an indicator is its provider's own `valid_until` when it has one,
//! else its `reporttime` plus the default for its itype ([`Validity`]), else none. The default
//! is never written into the indicator: it applies when an indicator is read, so changing it
//! (`--default-validity`) changes what is already in the log, and a provider's own fields stay
//! as they were sent. An indicator is expired from its expiry on (`expires <= now`). Callers
//! pass `now`: this crate has no clock.

use std::fmt;
use std::str::FromStr;
use std::time::Duration;

use chrono::{DateTime, TimeDelta, Utc};

use crate::{Indicator, Itype};

const DAY: u64 = 24 * 3600;

/// The longest default: a year (366 days), the bound of every duration flag.
pub const MAX_DEFAULT: Duration = Duration::from_secs(366 * DAY);

/// The defaults per itype, with no default for an itype that never expires by default.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Validity {
    /// Indexed like [`Itype::ALL`].
    defaults: [Option<Duration>; Itype::ALL.len()],
}

impl Validity {
    /// No defaults: only an indicator's own `valid_until` counts.
    pub const fn none() -> Validity {
        Validity {
            defaults: [None; Itype::ALL.len()],
        }
    }

    /// The defaults when `--default-validity` is not given: addresses, networks, domains and
    /// email addresses 30 days, URLs 14 days, file hashes 365 days, AS numbers none.
    pub fn standard() -> Validity {
        let mut validity = Validity::none();
        for itype in Itype::ALL {
            let days = match itype {
                Itype::Ipv4 | Itype::Ipv6 | Itype::Cidr | Itype::Fqdn | Itype::Email => Some(30),
                Itype::Url => Some(14),
                Itype::Md5 | Itype::Sha1 | Itype::Sha256 | Itype::Sha512 => Some(365),
                Itype::Asn => None,
            };
            validity.defaults[slot(itype)] = days.map(|days| Duration::from_secs(days * DAY));
        }
        validity
    }

    /// The same with `itype`'s default set to `default` (`None`: no default).
    pub fn with(mut self, itype: Itype, default: Option<Duration>) -> Validity {
        self.defaults[slot(itype)] = default;
        self
    }

    /// The default for `itype`, if it has one.
    pub fn default_for(&self, itype: Itype) -> Option<Duration> {
        self.defaults[slot(itype)]
    }

    /// When `indicator` expires: its own `valid_until`, else its `reporttime` plus its
    /// itype's default, else never (`None`).
    pub fn expires(&self, indicator: &Indicator) -> Option<DateTime<Utc>> {
        if let Some(own) = indicator.valid_until() {
            return Some(own);
        }
        let default = TimeDelta::from_std(self.default_for(indicator.itype())?).ok()?;
        // Past chrono's range is as good as never.
        indicator.reporttime().checked_add_signed(default)
    }

    /// Whether `indicator` has expired at `now`.
    pub fn is_expired(&self, indicator: &Indicator, now: DateTime<Utc>) -> bool {
        self.expires(indicator)
            .is_some_and(|expires| expires <= now)
    }

    /// Reads a `--default-validity` value: comma-separated `ITYPE=DURATION` (`ipv4=30d`,
    /// humantime durations from 1 s to a year) or `ITYPE=none`, each over the standard
    /// defaults; the word `none` clears every default so far and `standard` restores them
    /// (`none,url=14d`: only URLs have a default). An itype may be named once.
    pub fn parse(spec: &str) -> Result<Validity, ValidityError> {
        let fail = |message: String| Err(ValidityError(message));
        if spec.trim().is_empty() {
            return fail(format!("is empty: {USAGE}"));
        }
        let mut validity = Validity::standard();
        let mut named: Vec<Itype> = Vec::new();
        for item in spec.split(',') {
            let item = item.trim();
            match item {
                "" => return fail(format!("`{spec}` has an empty item: {USAGE}")),
                "none" => {
                    validity = Validity::none();
                    continue;
                }
                "standard" => {
                    validity = Validity::standard();
                    continue;
                }
                _ => {}
            }
            let Some((name, duration)) = item.split_once('=') else {
                return fail(format!("`{item}` is not ITYPE=DURATION: {USAGE}"));
            };
            let itype: Itype = match name.trim().parse() {
                Ok(itype) => itype,
                Err(error) => return fail(format!("`{item}`: {error}")),
            };
            if named.contains(&itype) {
                return fail(format!("`{spec}` names {itype} twice"));
            }
            named.push(itype);
            let default = match duration.trim() {
                "none" => None,
                text => Some(
                    parse_default(text)
                        .map_err(|reason| ValidityError(format!("`{item}`: {reason}")))?,
                ),
            };
            validity = validity.with(itype, default);
        }
        Ok(validity)
    }
}

/// What a bad `--default-validity` is told.
const USAGE: &str =
    "give ITYPE=DURATION pairs such as ipv4=30d,url=14d (ITYPE=none for no default, or none)";

/// One default: a humantime duration, more than zero, at most [`MAX_DEFAULT`].
fn parse_default(text: &str) -> Result<Duration, String> {
    // Bounded before humantime sees it: no sensible duration is longer.
    let parsed = match text.len() {
        0..=64 => humantime::parse_duration(text).map_err(|error| error.to_string()),
        _ => Err("too long".to_owned()),
    };
    match parsed {
        Err(error) => Err(format!(
            "`{text}` is not a duration ({error}); use e.g. 12h, 14d, 30d"
        )),
        Ok(Duration::ZERO) => Err(format!(
            "`{text}` is zero; give a positive duration such as 1d, or none"
        )),
        Ok(duration) if duration > MAX_DEFAULT => Err(format!(
            "`{text}` is more than a year; use e.g. 12h, 14d, 365d"
        )),
        Ok(duration) => Ok(duration),
    }
}

/// Where `itype`'s default is kept.
fn slot(itype: Itype) -> usize {
    Itype::ALL
        .iter()
        .position(|known| *known == itype)
        .unwrap_or_default()
}

impl Default for Validity {
    fn default() -> Self {
        Validity::standard()
    }
}

impl FromStr for Validity {
    type Err = ValidityError;

    fn from_str(spec: &str) -> Result<Self, Self::Err> {
        Validity::parse(spec)
    }
}

/// Every itype with its default, in [`Itype::ALL`]'s order (`url=14d,md5=365d,…,asn=none`):
/// a value [`Validity::parse`] reads back as the same.
impl fmt::Display for Validity {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        for (n, itype) in Itype::ALL.into_iter().enumerate() {
            if n > 0 {
                f.write_str(",")?;
            }
            match self.default_for(itype) {
                Some(duration) => write!(f, "{itype}={}", Short(duration))?,
                None => write!(f, "{itype}=none")?,
            }
        }
        Ok(())
    }
}

/// A duration in its largest whole unit (`30d`, `12h`, `90s`, `1500ms`).
struct Short(Duration);

impl fmt::Display for Short {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let (seconds, nanos) = (self.0.as_secs(), self.0.subsec_nanos());
        if nanos != 0 {
            return match nanos % 1_000_000 {
                0 => write!(f, "{}ms", self.0.as_millis()),
                _ => write!(f, "{}ns", self.0.as_nanos()),
            };
        }
        for (unit, length) in [("d", DAY), ("h", 3600), ("m", 60)] {
            if seconds % length == 0 {
                return write!(f, "{}{unit}", seconds / length);
            }
        }
        write!(f, "{seconds}s")
    }
}

/// A `--default-validity` value that cannot be read.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("{0}")]
pub struct ValidityError(pub String);

#[cfg(test)]
mod tests {
    use chrono::TimeZone;
    use serde_json::json;

    use super::*;
    use crate::Provenance;

    fn now() -> DateTime<Utc> {
        Utc.with_ymd_and_hms(2026, 12, 4, 12, 0, 0).unwrap()
    }

    fn indicator(value: serde_json::Value) -> Indicator {
        Indicator::from_json(value, Provenance::Authenticated("alice"), now()).unwrap()
    }

    fn days(n: u64) -> Option<Duration> {
        Some(Duration::from_secs(n * DAY))
    }

    #[test]
    fn standard_defaults_per_itype() {
        let standard = Validity::standard();
        let expected = [
            (Itype::Ipv4, days(30)),
            (Itype::Ipv6, days(30)),
            (Itype::Cidr, days(30)),
            (Itype::Fqdn, days(30)),
            (Itype::Email, days(30)),
            (Itype::Url, days(14)),
            (Itype::Md5, days(365)),
            (Itype::Sha1, days(365)),
            (Itype::Sha256, days(365)),
            (Itype::Sha512, days(365)),
            (Itype::Asn, None),
        ];
        assert_eq!(expected.len(), Itype::ALL.len());
        for (itype, default) in expected {
            assert_eq!(standard.default_for(itype), default, "{itype}");
            assert_eq!(Validity::none().default_for(itype), None, "{itype}");
        }
        assert_eq!(Validity::default(), standard);
    }

    #[test]
    fn the_own_valid_until_comes_first_then_the_default() {
        let standard = Validity::standard();
        let at = |text: &str| text.parse::<DateTime<Utc>>().unwrap();
        let own = indicator(json!({
            "indicator": "185.220.101.7", "reporttime": "2026-12-04T10:00:00Z",
            "valid_until": "2026-12-05T10:00:00Z",
        }));
        assert_eq!(standard.expires(&own), Some(at("2026-12-05T10:00:00Z")));
        assert_eq!(
            Validity::none().expires(&own),
            Some(at("2026-12-05T10:00:00Z"))
        );
        let url = indicator(
            json!({"indicator": "http://evil.example.net/x", "reporttime": "2026-12-01T00:00:00Z"}),
        );
        assert_eq!(standard.expires(&url), Some(at("2026-12-15T00:00:00Z")));
        assert_eq!(Validity::none().expires(&url), None);
        let ip =
            indicator(json!({"indicator": "185.220.101.7", "reporttime": "2026-12-01T00:00:00Z"}));
        assert_eq!(standard.expires(&ip), Some(at("2026-12-31T00:00:00Z")));
        let asn = indicator(json!({"indicator": "AS13335"}));
        assert_eq!(standard.expires(&asn), None);
        assert!(!standard.is_expired(&asn, DateTime::<Utc>::MAX_UTC));

        // Expired from the instant of its expiry on.
        let expiry = at("2026-12-15T00:00:00Z");
        assert!(!standard.is_expired(&url, expiry - TimeDelta::milliseconds(1)));
        assert!(standard.is_expired(&url, expiry));
        assert!(standard.is_expired(&url, expiry + TimeDelta::days(1)));
        // A provider's own expiry beats a longer default, and a shorter one.
        let short = Validity::standard().with(Itype::Ipv4, Some(Duration::from_secs(1)));
        assert_eq!(short.expires(&own), Some(at("2026-12-05T10:00:00Z")));
        assert_eq!(
            short.expires(&ip),
            Some(at("2026-12-01T00:00:01Z")),
            "the default counts from the reporttime"
        );
    }

    #[test]
    fn parses_the_flag() {
        let parsed = Validity::parse("ipv4=1d, URL=12h,asn=30d,md5=none").unwrap();
        assert_eq!(parsed.default_for(Itype::Ipv4), days(1));
        assert_eq!(
            parsed.default_for(Itype::Url),
            Some(Duration::from_secs(12 * 3600))
        );
        assert_eq!(parsed.default_for(Itype::Asn), days(30));
        assert_eq!(parsed.default_for(Itype::Md5), None);
        assert_eq!(
            parsed.default_for(Itype::Ipv6),
            days(30),
            "unnamed: standard"
        );
        let only_urls = Validity::parse("none,url=14d").unwrap();
        assert_eq!(only_urls, Validity::none().with(Itype::Url, days(14)));
        assert_eq!(Validity::parse("none").unwrap(), Validity::none());
        assert_eq!(Validity::parse("standard").unwrap(), Validity::standard());
        assert_eq!(
            Validity::parse("ipv4=1s").unwrap().default_for(Itype::Ipv4),
            Some(Duration::from_secs(1))
        );
        for validity in [Validity::standard(), Validity::none(), parsed] {
            assert_eq!(
                Validity::parse(&validity.to_string()),
                Ok(validity),
                "{validity}"
            );
        }
        assert_eq!(
            Validity::standard().to_string(),
            "url=14d,md5=365d,sha1=365d,sha256=365d,sha512=365d,ipv4=30d,cidr=30d,ipv6=30d,\
             email=30d,fqdn=30d,asn=none"
        );
        let odd = Validity::none()
            .with(Itype::Ipv4, Some(Duration::from_millis(1500)))
            .with(Itype::Url, Some(Duration::from_secs(90)))
            .with(Itype::Fqdn, Some(Duration::from_secs(7200)));
        assert_eq!(Validity::parse(&odd.to_string()), Ok(odd), "{odd}");
    }

    #[test]
    fn refuses_bad_flags_with_one_reason() {
        for (spec, reason) in [
            ("", "is empty"),
            ("  ", "is empty"),
            ("ipv4=30d,", "empty item"),
            ("ipv4", "is not ITYPE=DURATION"),
            ("ipv5=30d", "unknown itype `ipv5`"),
            ("ipv4=0s", "is zero"),
            ("ipv4=0", "is zero"),
            ("ipv4=soon", "`soon` is not a duration"),
            ("ipv4=30", "is not a duration"),
            ("ipv4=-1d", "is not a duration"),
            ("ipv4=2y", "more than a year"),
            ("ipv4=30d,ipv4=1d", "names ipv4 twice"),
            ("ipv4=", "is not a duration"),
        ] {
            let error = Validity::parse(spec).expect_err(spec).to_string();
            assert!(error.contains(reason), "{spec:?}: {error}");
            assert!(!error.contains('\n'), "{spec:?}: one line: {error}");
        }
        let long = format!("ipv4={}", "9".repeat(100));
        assert!(Validity::parse(&long).is_err());
    }
}
