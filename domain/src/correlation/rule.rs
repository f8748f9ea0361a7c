//! A correlation rule's settings, its spec syntax, and which reports it considers.
//!
//! Spec syntax (`--correlate`, repeatable): `NAME[:OPTION=VALUE,…]`, for example
//! `scanners`, `scanner-nets:key=cidr/24,threshold=5` or `asn-scanners:key=asn,tags=scanner+bruteforce`.
//! Options: `key` (`exact`, `cidr/V4[/V6]`, `asn`), `threshold`, `window`, `lateness`, `idle`
//! (durations such as `30s`, `1h`, `2d`), `tags` (joined by `+`), `confidence` (the emissions'
//! floor, 0–10).

use std::net::IpAddr;
use std::time::Duration;

use ipnet::IpNet;

use super::key::{parse_asn, Key, KeyKind};
use super::SECOND;
use crate::indicator::{CORRELATOR_PROVIDER, FUTURE_TOLERANCE_SECONDS};
use crate::{Indicator, Itype, Tlp};

/// One rule: which reports count, how they are keyed, and the thresholds of docs/protocol.md §7.3.
#[derive(Debug, Clone, PartialEq)]
pub struct Rule {
    /// Names the rule in its emissions (`rule` field) and in metrics.
    pub name: String,
    pub key: KeyKind,
    /// Distinct providers needed within the window.
    pub threshold: usize,
    /// The window, and the quiet time after an emission before the key may emit again.
    pub window: Duration,
    /// How far behind the newest report a report may arrive and still count.
    pub lateness: Duration,
    /// After this long without a considered report, everything seen is final.
    pub idle: Duration,
    /// A report counts when it carries any of these tags (lowercase).
    pub tags: Vec<String>,
    /// The lowest confidence an emission carries (it also carries at least the sources' highest).
    pub confidence: f64,
}

impl Default for Rule {
    /// The default rule (docs/protocol.md §7.6): three providers, one scanner address, 24 hours,
    /// one hour of lateness.
    fn default() -> Self {
        Rule {
            name: "scanners".to_owned(),
            key: KeyKind::Exact,
            threshold: 3,
            window: Duration::from_secs(24 * 3600),
            lateness: Duration::from_secs(3600),
            idle: Duration::from_secs(60),
            tags: vec!["scanner".to_owned()],
            confidence: 8.0,
        }
    }
}

/// Why a rule spec was refused: names the option and what to write instead.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("correlation rule `{spec}`: {reason}")]
pub struct RuleError {
    pub spec: String,
    pub reason: String,
}

/// Why a report is not considered by a rule.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Skip {
    /// The correlator's own emissions never count.
    OwnProvider,
    /// Only `ipv4` and `ipv6` indicators are considered.
    NotAnAddress,
    /// None of the rule's tags.
    Untagged,
    /// The rule keys by AS number and the report has none.
    NoKey,
}

/// A considered report, borrowed from its indicator.
#[derive(Debug, Clone, Copy)]
pub struct Report<'a> {
    pub key: Key,
    pub provider: &'a str,
    /// Event time: the `reporttime`, clamped to `arrival` + the future tolerance.
    pub time: i64,
    /// When the log received it (the log's clock).
    pub arrival: i64,
    pub confidence: f64,
    pub tlp: Tlp,
    pub tags: &'a [String],
    /// The provider withdrew its reports of the key's indicator (docs/protocol.md §2.10): it
    /// counts no longer, and this is no report.
    pub withdrawn: bool,
}

impl Rule {
    /// Parses `NAME[:OPTION=VALUE,…]` (see the module doc); unspecified options keep
    /// [`Rule::default`]'s values.
    pub fn parse(spec: &str) -> Result<Rule, RuleError> {
        let error = |reason: String| RuleError {
            spec: spec.to_owned(),
            reason,
        };
        let (name, options) = spec.split_once(':').unwrap_or((spec, ""));
        let mut rule = Rule {
            name: name.trim().to_owned(),
            ..Rule::default()
        };
        for option in options.split(',').map(str::trim).filter(|o| !o.is_empty()) {
            let (option, value) = option
                .split_once('=')
                .ok_or_else(|| error(format!("`{option}` is not OPTION=VALUE")))?;
            let value = value.trim();
            match option.trim() {
                "key" => rule.key = parse_key(value).map_err(error)?,
                "threshold" => {
                    rule.threshold = value
                        .parse()
                        .map_err(|_| error(format!("threshold `{value}` is not a whole number")))?
                }
                "window" => rule.window = parse_duration("window", value).map_err(error)?,
                "lateness" => rule.lateness = parse_duration("lateness", value).map_err(error)?,
                "idle" => rule.idle = parse_duration("idle", value).map_err(error)?,
                "tags" => {
                    rule.tags = value
                        .split('+')
                        .map(|tag| tag.trim().to_lowercase())
                        .filter(|tag| !tag.is_empty())
                        .collect()
                }
                "confidence" => {
                    rule.confidence = value
                        .parse()
                        .map_err(|_| error(format!("confidence `{value}` is not a number")))?
                }
                other => {
                    return Err(error(format!(
                        "unknown option `{other}`: known options are key, threshold, window, lateness, idle, tags, confidence"
                    )))
                }
            }
        }
        rule.validate().map_err(error)?;
        Ok(rule)
    }

    /// Checks the settings make sense together.
    pub fn validate(&self) -> Result<(), String> {
        let name_ok = !self.name.is_empty()
            && self.name.len() <= 64
            && self
                .name
                .bytes()
                .all(|b| b.is_ascii_lowercase() || b.is_ascii_digit() || b == b'-' || b == b'_');
        if !name_ok {
            return Err(format!(
                "the name `{}` must be 1–64 of a-z, 0-9, `-`, `_`",
                self.name
            ));
        }
        if self.threshold < 2 {
            return Err("threshold must be at least 2 providers".to_owned());
        }
        if self.window < Duration::from_secs(1) {
            return Err("window must be at least 1s".to_owned());
        }
        if self.lateness >= self.window {
            return Err("lateness must be shorter than the window".to_owned());
        }
        if self.idle.is_zero() {
            return Err("idle must be more than 0s".to_owned());
        }
        if self.tags.is_empty() {
            return Err("tags must name at least one tag".to_owned());
        }
        if !(0.0..=10.0).contains(&self.confidence) {
            return Err("confidence must be between 0 and 10".to_owned());
        }
        Ok(())
    }

    /// The report this indicator makes under the rule, or why it is not considered.
    pub fn report<'a>(&self, indicator: &'a Indicator, arrival: i64) -> Result<Report<'a>, Skip> {
        if indicator.provider() == CORRELATOR_PROVIDER {
            return Err(Skip::OwnProvider);
        }
        let address = match indicator.itype() {
            Itype::Ipv4 | Itype::Ipv6 => indicator
                .network()
                .map(|network| network.addr())
                .ok_or(Skip::NotAnAddress)?,
            _ => return Err(Skip::NotAnAddress),
        };
        if !indicator.tags().iter().any(|tag| self.tags.contains(tag)) {
            return Err(Skip::Untagged);
        }
        let key = match self.key {
            KeyKind::Exact => Key::Address(address),
            KeyKind::Network { v4, v6 } => {
                let prefix = if address.is_ipv4() { v4 } else { v6 };
                // Prefix lengths are validated when the rule is parsed.
                let network = IpNet::new(address, prefix).map_err(|_| Skip::NoKey)?;
                Key::Network(network.trunc())
            }
            KeyKind::Asn => Key::Asn(
                indicator
                    .field("asn")
                    .and_then(parse_asn)
                    .ok_or(Skip::NoKey)?,
            ),
        };
        let reported = indicator.reporttime().timestamp_micros();
        Ok(Report {
            key,
            provider: indicator.provider(),
            time: reported.min(arrival.saturating_add(FUTURE_TOLERANCE_SECONDS * SECOND)),
            arrival,
            confidence: indicator.confidence(),
            tlp: indicator.tlp(),
            tags: indicator.tags(),
            withdrawn: indicator.is_withdrawn(),
        })
    }

    /// The window in microseconds.
    pub(crate) fn window_us(&self) -> i64 {
        duration_us(self.window)
    }

    pub(crate) fn lateness_us(&self) -> i64 {
        duration_us(self.lateness)
    }

    pub(crate) fn idle_us(&self) -> i64 {
        duration_us(self.idle)
    }
}

fn duration_us(duration: Duration) -> i64 {
    i64::try_from(duration.as_micros()).unwrap_or(i64::MAX)
}

fn parse_key(value: &str) -> Result<KeyKind, String> {
    let bad = || {
        format!("key `{value}` is not one of exact, cidr/V4 or cidr/V4/V6 (e.g. cidr/24/48), asn")
    };
    match value {
        "exact" => Ok(KeyKind::Exact),
        "asn" => Ok(KeyKind::Asn),
        _ => {
            let prefixes = value.strip_prefix("cidr/").ok_or_else(bad)?;
            let (v4, v6) = prefixes.split_once('/').unwrap_or((prefixes, "48"));
            let v4: u8 = v4.parse().map_err(|_| bad())?;
            let v6: u8 = v6.parse().map_err(|_| bad())?;
            // No shorter: a wider network of a public address may take in a reserved range
            // (100.0.0.0/8 holds 100.64.0.0/10), and the derived indicator would be refused.
            if !(24..=32).contains(&v4) || !(48..=128).contains(&v6) {
                return Err(format!(
                    "key `{value}`: the IPv4 prefix must be 24–32 and the IPv6 prefix 48–128"
                ));
            }
            // Both families validated: `IpNet::new` cannot fail for these lengths.
            debug_assert!(IpNet::new(IpAddr::from([0, 0, 0, 0]), v4).is_ok());
            Ok(KeyKind::Network { v4, v6 })
        }
    }
}

fn parse_duration(option: &str, value: &str) -> Result<Duration, String> {
    humantime::parse_duration(value)
        .map_err(|_| format!("{option} `{value}` is not a duration such as 30s, 10m, 1h or 2d"))
}
