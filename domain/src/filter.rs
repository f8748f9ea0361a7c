//! Stream and feed filters (docs/protocol.md §4.3, §4.4): which indicators a subscriber wants,
//! parsed from the query string and evaluated on each indicator before anything is sent or counted.
//!
//! Every key is optional and they combine with AND; a key's comma-separated values combine with
//! OR. An empty value (`tags=`) is the same as no key, so forms and scripts can send every field.

use std::fmt;
use std::net::{IpAddr, Ipv6Addr};
use std::str::FromStr;

use ipnet::IpNet;

use crate::indicator::normalise;
use crate::{Indicator, Itype, Tlp};

/// The query keys [`Filter::from_pairs`] understands, in the order error messages list them.
pub const FILTER_KEYS: [&str; 8] = [
    "itype",
    "tags",
    "confidence",
    "tlp",
    "provider",
    "cidr",
    "profile",
    "correlated",
];

/// Most values one list key may carry: every value is checked against every indicator of the
/// stream, so an unbounded list would let one subscriber slow the fan-out for everybody.
pub const MAX_FILTER_VALUES: usize = 256;

/// A subscriber's filter. `Filter::default()` lets everything through.
#[derive(Debug, Clone, Default, PartialEq)]
pub struct Filter {
    itypes: Vec<Itype>,
    tags: Vec<String>,
    min_confidence: Option<f64>,
    max_tlp: Option<Tlp>,
    providers: Vec<String>,
    networks: Vec<IpNet>,
    profile: Option<Profile>,
    correlated: Option<bool>,
}

/// Curated presets for what a device consumes, like CIF's end-point profiles. Explicit filters
/// given with a profile narrow it further (both apply).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum Profile {
    /// Block lists for firewalls: `itype=ipv4,ipv6,cidr` and `confidence≥8`, so that a
    /// coin-flip report never blocks traffic.
    Firewall,
    /// DNS sinkholes / RPZ: `itype=fqdn` and `confidence≥8`.
    Sinkhole,
    /// Zeek's Intel framework, which matches addresses, domains, URLs, file hashes and email
    /// addresses (not subnets) and only alerts, so a lower bar: `itype=ipv4,ipv6,fqdn,url,md5,
    /// sha1,sha256,sha512,email` and `confidence≥7`.
    Zeek,
}

impl Profile {
    /// Every profile.
    pub const ALL: [Profile; 3] = [Profile::Firewall, Profile::Sinkhole, Profile::Zeek];

    /// The `profile=` value: `firewall`, `sinkhole`, `zeek`.
    pub fn as_str(self) -> &'static str {
        match self {
            Profile::Firewall => "firewall",
            Profile::Sinkhole => "sinkhole",
            Profile::Zeek => "zeek",
        }
    }

    /// The itypes the profile lets through.
    pub fn itypes(self) -> &'static [Itype] {
        use Itype::*;
        match self {
            Profile::Firewall => &[Ipv4, Ipv6, Cidr],
            Profile::Sinkhole => &[Fqdn],
            Profile::Zeek => &[Ipv4, Ipv6, Fqdn, Url, Md5, Sha1, Sha256, Sha512, Email],
        }
    }

    /// The lowest confidence the profile lets through.
    pub fn min_confidence(self) -> f64 {
        match self {
            Profile::Firewall | Profile::Sinkhole => 8.0,
            Profile::Zeek => 7.0,
        }
    }

    fn matches(self, indicator: &Indicator) -> bool {
        self.itypes().contains(&indicator.itype())
            && indicator.confidence() >= self.min_confidence()
    }
}

impl fmt::Display for Profile {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.as_str())
    }
}

impl FromStr for Profile {
    type Err = FilterError;

    fn from_str(text: &str) -> Result<Self, Self::Err> {
        let wanted = text.trim();
        Profile::ALL
            .into_iter()
            .find(|profile| profile.as_str().eq_ignore_ascii_case(wanted))
            .ok_or_else(|| FilterError::invalid("profile", text, "firewall, sinkhole or zeek"))
    }
}

/// Why a filter query was refused; each message names the key and says what to send instead.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum FilterError {
    /// A query key that is not a filter.
    #[error("unknown filter `{key}`: known filters are itype, tags, confidence, tlp, provider, cidr, profile, correlated")]
    UnknownKey { key: String },
    /// A value the filter cannot take; `expected` says what it can.
    #[error("filter `{key}`: `{value}` is not valid: expected {expected}")]
    InvalidValue {
        key: &'static str,
        value: String,
        expected: &'static str,
    },
    /// A single-valued filter given twice.
    #[error("filter `{key}` is given more than once: give it once")]
    Repeated { key: &'static str },
    /// A list filter with more than [`MAX_FILTER_VALUES`] values.
    #[error("filter `{key}` has more than {max} values: narrow it down")]
    TooManyValues { key: &'static str, max: usize },
}

impl FilterError {
    fn invalid(key: &'static str, value: &str, expected: &'static str) -> FilterError {
        FilterError::InvalidValue {
            key,
            value: cut(value),
            expected,
        }
    }
}

/// User input echoed in an error, cut to a readable length.
fn cut(text: &str) -> String {
    const MAX_CHARS: usize = 64;
    match text.char_indices().nth(MAX_CHARS) {
        Some((end, _)) => format!("{}…", &text[..end]),
        None => text.to_owned(),
    }
}

impl Filter {
    /// Parses the stream/feed filter query keys: itype, tags, confidence, tlp, provider, cidr, profile, correlated.
    /// Unknown keys are an error naming the key and listing the known ones. Comma-separated lists. Empty value = not set.
    ///
    /// List keys given twice accumulate (`itype=ipv4&itype=cidr` is `itype=ipv4,cidr`); single-valued
    /// keys given twice are an error rather than a silent "last one wins". A `cidr` with host bits
    /// set is taken as its network (`1.2.3.4/24` means `1.2.3.0/24`), and a bare address as /32
    /// or /128; reserved ranges are fine here since a filter only narrows.
    pub fn from_pairs<'a>(
        pairs: impl IntoIterator<Item = (&'a str, &'a str)>,
    ) -> Result<Filter, FilterError> {
        let mut filter = Filter::default();
        for (key, value) in pairs {
            filter.add(key, value)?;
        }
        Ok(filter)
    }

    /// [`Filter::from_pairs`] over a query string (`itype=ipv4&correlated=true`, percent- and
    /// `+`-decoded), as a webhook endpoint stores its filter.
    pub fn from_query(query: &str) -> Result<Filter, FilterError> {
        let pairs: Vec<(String, String)> = url::form_urlencoded::parse(query.as_bytes())
            .into_owned()
            .collect();
        Filter::from_pairs(
            pairs
                .iter()
                .map(|(key, value)| (key.as_str(), value.as_str())),
        )
    }

    /// One `key=value` pair: list keys accumulate, the others may be set once.
    fn add(&mut self, key: &str, value: &str) -> Result<(), FilterError> {
        let mut values = value
            .split(',')
            .map(str::trim)
            .filter(|value| !value.is_empty())
            .peekable();
        if values.peek().is_none() {
            return match FILTER_KEYS.contains(&key) {
                true => Ok(()),
                false => Err(FilterError::UnknownKey { key: cut(key) }),
            };
        }
        match key {
            "itype" => values
                .try_for_each(|value| push_unique(&mut self.itypes, parse_itype(value)?, "itype")),
            "tags" => values
                .try_for_each(|value| push_unique(&mut self.tags, value.to_lowercase(), "tags")),
            "provider" => values.try_for_each(|value| {
                push_unique(&mut self.providers, value.to_owned(), "provider")
            }),
            "cidr" => values.try_for_each(|value| {
                let network = parse_network(value).ok_or_else(|| {
                    FilterError::invalid(
                        "cidr",
                        value,
                        "an IP address or network such as `1.1.1.0/24`",
                    )
                })?;
                push_unique(&mut self.networks, network, "cidr")
            }),
            "confidence" => set_once(
                &mut self.min_confidence,
                parse_confidence(value)?,
                "confidence",
            ),
            "tlp" => {
                let tlp = value.parse::<Tlp>().map_err(|_| {
                    FilterError::invalid("tlp", value, "white, green, amber or red")
                })?;
                set_once(&mut self.max_tlp, tlp, "tlp")
            }
            "profile" => set_once(&mut self.profile, value.parse()?, "profile"),
            "correlated" => set_once(&mut self.correlated, parse_correlated(value)?, "correlated"),
            other => Err(FilterError::UnknownKey { key: cut(other) }),
        }
    }

    /// Whether `indicator` passes every filter given.
    pub fn matches(&self, indicator: &Indicator) -> bool {
        (self.itypes.is_empty() || self.itypes.contains(&indicator.itype()))
            && (self.tags.is_empty() || indicator.tags().iter().any(|tag| self.tags.contains(tag)))
            && self
                .min_confidence
                .is_none_or(|min| indicator.confidence() >= min)
            && self.max_tlp.is_none_or(|max| indicator.tlp() <= max)
            && (self.providers.is_empty()
                || self.providers.iter().any(|p| p == indicator.provider()))
            && (self.networks.is_empty()
                || indicator.network().is_some_and(|network| {
                    self.networks.iter().any(|wanted| wanted.contains(&network))
                }))
            && self
                .profile
                .is_none_or(|profile| profile.matches(indicator))
            && self
                .correlated
                .is_none_or(|wanted| indicator.is_correlated() == wanted)
    }

    /// True when no filter is set: everything matches.
    pub fn is_empty(&self) -> bool {
        *self == Filter::default()
    }

    /// The `tlp=` ceiling, if given (the gateway combines it with the plan's).
    pub fn max_tlp(&self) -> Option<Tlp> {
        self.max_tlp
    }

    /// `correlated=`, if given: `Some(true)` only derived indicators, `Some(false)` none of them.
    pub fn correlated(&self) -> Option<bool> {
        self.correlated
    }

    /// `profile=`, if given.
    pub fn profile(&self) -> Option<Profile> {
        self.profile
    }

    /// Whether `tags=` names `tag` (lowercase).
    pub fn wants_tag(&self, tag: &str) -> bool {
        self.tags.iter().any(|wanted| wanted == tag)
    }

    /// The filter as query pairs, in [`FILTER_KEYS`] order: what [`Filter::from_pairs`] reads back
    /// into the same filter (clients build their query strings from it).
    pub fn to_pairs(&self) -> Vec<(&'static str, String)> {
        fn join<T: fmt::Display>(values: &[T]) -> Option<String> {
            (!values.is_empty()).then(|| {
                values
                    .iter()
                    .map(ToString::to_string)
                    .collect::<Vec<_>>()
                    .join(",")
            })
        }
        let values = [
            join(&self.itypes),
            join(&self.tags),
            self.min_confidence.map(|confidence| confidence.to_string()),
            self.max_tlp.map(|tlp| tlp.to_string()),
            join(&self.providers),
            join(&self.networks),
            self.profile.map(|profile| profile.to_string()),
            self.correlated.map(|correlated| correlated.to_string()),
        ];
        FILTER_KEYS
            .into_iter()
            .zip(values)
            .filter_map(|(key, value)| Some((key, value?)))
            .collect()
    }
}

fn push_unique<T: PartialEq>(
    list: &mut Vec<T>,
    value: T,
    key: &'static str,
) -> Result<(), FilterError> {
    if list.contains(&value) {
        return Ok(());
    }
    if list.len() == MAX_FILTER_VALUES {
        return Err(FilterError::TooManyValues {
            key,
            max: MAX_FILTER_VALUES,
        });
    }
    list.push(value);
    Ok(())
}

fn parse_itype(value: &str) -> Result<Itype, FilterError> {
    value.parse::<Itype>().map_err(|_| {
        FilterError::invalid(
            "itype",
            value,
            "url, md5, sha1, sha256, sha512, ipv4, cidr, ipv6, email, fqdn or asn",
        )
    })
}

fn parse_confidence(value: &str) -> Result<f64, FilterError> {
    value
        .trim()
        .parse::<f64>()
        .ok()
        .filter(|confidence| (0.0..=10.0).contains(confidence))
        .ok_or_else(|| FilterError::invalid("confidence", value, "a number from 0 to 10"))
}

fn parse_correlated(value: &str) -> Result<bool, FilterError> {
    match value.trim().to_ascii_lowercase().as_str() {
        "true" | "1" | "yes" => Ok(true),
        "false" | "0" | "no" => Ok(false),
        _ => Err(FilterError::invalid("correlated", value, "true or false")),
    }
}

fn set_once<T>(slot: &mut Option<T>, value: T, key: &'static str) -> Result<(), FilterError> {
    if slot.is_some() {
        return Err(FilterError::Repeated { key });
    }
    *slot = Some(value);
    Ok(())
}

/// `1.1.1.0/24`, `2606:4700::/32`, or a bare address as a single-address network.
fn parse_network(text: &str) -> Option<IpNet> {
    if let Some(network) = normalise::parse_cidr(text) {
        return Some(network.trunc());
    }
    let address = match normalise::parse_ipv4(text) {
        Some(v4) => IpAddr::V4(v4),
        None => IpAddr::V6(text.parse::<Ipv6Addr>().ok()?),
    };
    Some(IpNet::from(address))
}

#[cfg(test)]
mod tests {
    use chrono::{TimeZone, Utc};
    use proptest::prelude::*;
    use serde_json::{json, Value};

    use super::*;
    use crate::indicator::CORRELATOR_PROVIDER;
    use crate::Provenance;

    fn indicator(value: Value) -> Indicator {
        let now = Utc.with_ymd_and_hms(2024, 5, 1, 12, 0, 0).unwrap();
        Indicator::from_json(value, Provenance::Trusted, now).unwrap()
    }

    fn pairs(query: &str) -> Vec<(&str, &str)> {
        query
            .split('&')
            .filter(|pair| !pair.is_empty())
            .map(|pair| pair.split_once('=').unwrap_or((pair, "")))
            .collect()
    }

    fn parse(query: &str) -> Result<Filter, FilterError> {
        Filter::from_pairs(pairs(query))
    }

    /// `expected[i]` says whether `query` lets `indicators[i]` through.
    fn check(query: &str, indicators: &[Indicator], expected: &[bool]) {
        let filter = parse(query).unwrap_or_else(|error| panic!("{query}: {error}"));
        let got: Vec<bool> = indicators.iter().map(|i| filter.matches(i)).collect();
        assert_eq!(got, expected, "{query}");
    }

    fn sample() -> Vec<Indicator> {
        vec![
            // 0: scanner ipv4, confidence 8, amber
            indicator(
                json!({"indicator": "185.220.101.4", "provider": "a", "tags": "scanner,ssh", "confidence": 8}),
            ),
            // 1: cidr, confidence 9, green
            indicator(
                json!({"indicator": "1.1.1.0/24", "provider": "b", "tags": "botnet", "confidence": 9, "tlp": "green"}),
            ),
            // 2: fqdn, confidence 8, white
            indicator(
                json!({"indicator": "evil.example", "provider": "a", "tags": "c2", "confidence": 8, "tlp": "white"}),
            ),
            // 3: url, confidence 7, red
            indicator(
                json!({"indicator": "http://evil.example/x", "provider": "c", "confidence": 7, "tlp": "red"}),
            ),
            // 4: ipv6, confidence 5 (default)
            indicator(
                json!({"indicator": "2606:4700::1111", "provider": "b", "tags": ["scanner"]}),
            ),
            // 5: the correlator's derived indicator
            indicator(
                json!({"indicator": "185.220.101.4", "provider": CORRELATOR_PROVIDER, "tags": ["correlated", "scanner"], "confidence": 9}),
            ),
            // 6: sha256, confidence 10
            indicator(
                json!({"indicator": "E3B0C44298FC1C149AFBF4C8996FB92427AE41E4649B934CA495991B7852B855", "provider": "c", "confidence": 10}),
            ),
            // 7: asn
            indicator(json!({"indicator": "AS13335", "provider": "a", "confidence": 10})),
        ]
    }

    #[test]
    fn filters_by_each_key() {
        let s = sample();
        check("", &s, &[true; 8]);
        check(
            "itype=ipv4,cidr",
            &s,
            &[true, true, false, false, false, true, false, false],
        );
        check(
            "itype=IPV6&itype=asn",
            &s,
            &[false, false, false, false, true, false, false, true],
        );
        check(
            "tags=scanner,SSH",
            &s,
            &[true, false, false, false, true, true, false, false],
        );
        check("tags=nothing", &s, &[false; 8]);
        check(
            "confidence=8",
            &s,
            &[true, true, true, false, false, true, true, true],
        );
        check(
            "confidence=8.5",
            &s,
            &[false, true, false, false, false, true, true, true],
        );
        check("confidence=0", &s, &[true; 8]);
        check(
            "tlp=green",
            &s,
            &[false, true, true, false, false, false, false, false],
        );
        check(
            "tlp=white",
            &s,
            &[false, false, true, false, false, false, false, false],
        );
        check("tlp=red", &s, &[true; 8]);
        check(
            "provider=a,c",
            &s,
            &[true, false, true, true, false, false, true, true],
        );
        check("provider=A", &s, &[false; 8]);
        check(
            "cidr=185.220.101.0/24",
            &s,
            &[true, false, false, false, false, true, false, false],
        );
        check(
            "cidr=185.220.101.4",
            &s,
            &[true, false, false, false, false, true, false, false],
        );
        check(
            "cidr=1.1.0.0/16,2606:4700::/32",
            &s,
            &[false, true, false, false, true, false, false, false],
        );
        check("cidr=1.1.1.0/25", &s, &[false; 8]); // the /24 is not inside a /25
        check(
            "cidr=0.0.0.0/0",
            &s,
            &[true, true, false, false, false, true, false, false],
        );
        check(
            "correlated=true",
            &s,
            &[false, false, false, false, false, true, false, false],
        );
        check(
            "correlated=false",
            &s,
            &[true, true, true, true, true, false, true, true],
        );
    }

    #[test]
    fn profiles_are_presets_narrowed_by_explicit_filters() {
        let s = sample();
        check(
            "profile=firewall",
            &s,
            &[true, true, false, false, false, true, false, false],
        );
        check(
            "profile=sinkhole",
            &s,
            &[false, false, true, false, false, false, false, false],
        );
        check(
            "profile=zeek",
            &s,
            &[true, false, true, true, false, true, true, false],
        );
        check(
            "profile=firewall&confidence=9",
            &s,
            &[false, true, false, false, false, true, false, false],
        );
        check(
            "profile=firewall&itype=cidr",
            &s,
            &[false, true, false, false, false, false, false, false],
        );
        check(
            "profile=zeek&correlated=false&tlp=amber",
            &s,
            &[true, false, true, false, false, false, true, false],
        );
        check(
            "profile=FIREWALL&confidence=1",
            &s,
            &[true, true, false, false, false, true, false, false],
        );
    }

    #[test]
    fn combines_keys_with_and() {
        let s = sample();
        check(
            "itype=ipv4&tags=scanner&provider=a",
            &s,
            &[true, false, false, false, false, false, false, false],
        );
        check(
            "tags=scanner&confidence=9",
            &s,
            &[false, false, false, false, false, true, false, false],
        );
    }

    #[test]
    fn empty_values_are_not_set() {
        let filter =
            parse("itype=&tags=&confidence=&tlp=&provider=&cidr=&profile=&correlated=&tags=,, ,")
                .unwrap();
        assert!(filter.is_empty());
        assert_eq!(filter, Filter::default());
        assert!(!parse("itype=ipv4").unwrap().is_empty());
        assert!(!parse("correlated=false").unwrap().is_empty());
        assert_eq!(
            parse("itype=ipv4,,cidr,").unwrap(),
            parse("itype=cidr&itype=ipv4&itype=ipv4")
                .unwrap()
                .clone_sorted()
        );
    }

    impl Filter {
        fn clone_sorted(&self) -> Filter {
            let mut sorted = self.clone();
            sorted
                .itypes
                .sort_by_key(|itype| Itype::ALL.iter().position(|i| i == itype));
            sorted
        }
    }

    fn check_error(query: &str, expected: &str) {
        let error = parse(query).expect_err(query).to_string();
        assert!(
            error.contains(expected),
            "{query}: {error:?} should contain {expected:?}"
        );
    }

    #[test]
    fn explains_bad_queries() {
        check_error(
            "foo=1",
            "unknown filter `foo`: known filters are itype, tags, confidence, tlp, provider, cidr, profile, correlated",
        );
        check_error("foo=", "unknown filter `foo`");
        check_error("Itype=ipv4", "unknown filter `Itype`");
        check_error(
            "itype=domain",
            "filter `itype`: `domain` is not valid: expected url, md5",
        );
        check_error(
            "confidence=high",
            "filter `confidence`: `high` is not valid: expected a number from 0 to 10",
        );
        check_error("confidence=11", "expected a number from 0 to 10");
        check_error("confidence=-1", "expected a number from 0 to 10");
        check_error("confidence=NaN", "expected a number from 0 to 10");
        check_error(
            "tlp=blue",
            "filter `tlp`: `blue` is not valid: expected white, green, amber or red",
        );
        check_error(
            "cidr=1.2.3",
            "filter `cidr`: `1.2.3` is not valid: expected an IP address or network",
        );
        check_error("cidr=1.2.3.0/33", "expected an IP address or network");
        check_error(
            "profile=router",
            "filter `profile`: `router` is not valid: expected firewall, sinkhole or zeek",
        );
        check_error("correlated=maybe", "expected true or false");
        check_error(
            "confidence=7&confidence=8",
            "filter `confidence` is given more than once: give it once",
        );
        check_error("profile=zeek&profile=zeek", "given more than once");
        let many: Vec<String> = (0..=MAX_FILTER_VALUES).map(|n| format!("t{n}")).collect();
        check_error(
            &format!("tags={}", many.join(",")),
            "filter `tags` has more than 256 values",
        );
        let long_key = "k".repeat(10_000);
        assert!(
            parse(&format!("{long_key}=1"))
                .unwrap_err()
                .to_string()
                .len()
                < 300
        );
    }

    #[test]
    fn reads_networks_leniently() {
        let networks = |query: &str| parse(query).unwrap().networks;
        assert_eq!(
            networks("cidr=1.2.3.4/24"),
            vec!["1.2.3.0/24".parse::<IpNet>().unwrap()]
        );
        assert_eq!(
            networks("cidr=001.002.003.004"),
            vec!["1.2.3.4/32".parse::<IpNet>().unwrap()]
        );
        assert_eq!(
            networks("cidr=2606:4700:0::1111"),
            vec!["2606:4700::1111/128".parse::<IpNet>().unwrap()]
        );
        assert_eq!(
            networks("cidr=10.0.0.0/8"),
            vec!["10.0.0.0/8".parse::<IpNet>().unwrap()]
        );
    }

    #[test]
    fn pairs_read_back_into_the_same_filter() {
        for query in [
            "",
            "itype=ipv4,cidr&tags=Scanner,ssh&confidence=7.5&tlp=green",
            "provider=a/b,c&cidr=1.2.3.4/24,2606:4700::/32&profile=zeek&correlated=false",
        ] {
            let filter = parse(query).unwrap();
            let pairs = filter.to_pairs();
            let again = Filter::from_pairs(pairs.iter().map(|(key, value)| (*key, value.as_str())))
                .unwrap();
            assert_eq!(again, filter, "{query}");
        }
        let filter = parse("tags=Whitelist,x").unwrap();
        assert!(filter.wants_tag("whitelist"));
        assert!(!filter.wants_tag("scanner"));
    }

    proptest! {
        #[test]
        fn from_pairs_never_panics(
            pairs in prop::collection::vec(
                (
                    prop_oneof![
                        Just("itype".to_owned()), Just("tags".to_owned()), Just("confidence".to_owned()),
                        Just("tlp".to_owned()), Just("provider".to_owned()), Just("cidr".to_owned()),
                        Just("profile".to_owned()), Just("correlated".to_owned()), "\\PC{0,10}",
                    ],
                    "\\PC{0,40}",
                ),
                0..6,
            )
        ) {
            let borrowed: Vec<(&str, &str)> = pairs.iter().map(|(k, v)| (k.as_str(), v.as_str())).collect();
            if let Ok(filter) = Filter::from_pairs(borrowed) {
                for indicator in sample() {
                    let _ = filter.matches(&indicator);
                }
            }
        }
    }
}
