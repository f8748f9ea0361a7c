//! The indicator model (docs/protocol.md §2): one validated, normalised indicator of compromise,
//! and the rules that turn a provider's JSON object into one or refuse it with the field and the
//! reason.
//!
//! Field names are CIF v1 / csirtg.io's so existing tools understand the stream. Fields Sluice
//! does not know are the provider's context: kept verbatim and delivered as received.
//!
//! The model's finer decisions, in one place (docs/protocol.md §2.1–§2.5 states them for clients):
//! - `indicator`: at most [`MAX_INDICATOR_TEXT_BYTES`]; a CIDR with host bits set
//!   (`1.2.3.4/24`) is refused with the network it probably means, never silently truncated;
//!   a URL whose host is a reserved IP literal is refused like the address itself; reserved and
//!   private-use AS numbers are refused like reserved addresses. ASNs are written `AS13335`.
//! - `confidence`: a number or a numeric string (`"7"`, as CSV feeds give it), 0–10, kept to
//!   two decimals so that the value survives a trip through JSON text exactly.
//! - times: see `indicator/time.rs` for the accepted spellings; always written RFC 3339 UTC `Z`.
//! - `valid_until`: a time, strictly after `reporttime`; from outside Sluice also spelled
//!   `expires` (a time) or `ttl` (seconds, or a duration such as `14d`, from `reporttime`),
//!   one of the three at most, stored as `valid_until`. What is read back from the log
//!   ([`Provenance::Trusted`]) is taken as written: only `valid_until` is read there, and no
//!   ordering is checked, so a stored entry never becomes unreadable (a clock set back may
//!   clamp its `reporttime` on a later read). The default expiry per itype is not the
//!   indicator's: see [`crate::validity`].
//! - a `null` known field is the same as an absent one; a `null` unknown field is kept.
//! - `count` may be a digit string (CSV feeds) and is stored as a number.
//! - `withdrawn`: `true` marks a withdrawal (docs/protocol.md §2.10), a boolean or absent;
//!   `false` is the same as absent and is not stored. From outside Sluice it is a request, which
//!   the gateway turns into the withdrawal it stores with [`Indicator::withdrawal_of`].

pub(crate) mod normalise;
pub(crate) mod reserved;
mod time;

pub(crate) use time::format_time;

use std::net::IpAddr;

use chrono::{DateTime, Datelike, TimeDelta, Utc};
use ipnet::IpNet;
use serde_json::{Map, Value};

use crate::{Itype, Tlp};

/// The largest indicator, as serialised JSON (docs/protocol.md §2.6: 64 KiB of JSON).
pub const MAX_INDICATOR_BYTES: usize = 64 * 1024;
/// The longest `indicator` value, after trimming. Longer is never a real URL (browsers and
/// servers stop well before) and would only bloat every index keyed by it.
pub const MAX_INDICATOR_TEXT_BYTES: usize = 8 * 1024;
/// The longest `provider` on the trusted path, in characters.
pub const MAX_PROVIDER_CHARS: usize = 256;
/// The most tags one indicator may carry, after deduplication.
pub const MAX_TAGS: usize = 64;
/// The longest tag, in characters.
pub const MAX_TAG_CHARS: usize = 128;
/// `confidence` when the provider gives none (CIFv3: 5 is a coin flip).
pub const DEFAULT_CONFIDENCE: f64 = 5.0;
/// How far in the future a `reporttime` may be before it is clamped to the ingest time (clock skew).
pub const FUTURE_TOLERANCE_SECONDS: i64 = 5 * 60;
/// The longest `ttl` a provider may give (100 years): longer is a mistake, and keeps every
/// `valid_until` within the four-digit years RFC 3339 can write.
pub const MAX_TTL_SECONDS: u64 = 100 * 365 * 24 * 3600;
/// The provider of the correlator's derived indicators (docs/protocol.md §2.4, §7.5).
pub const CORRELATOR_PROVIDER: &str = "sluice/correlator";
/// Providers under this prefix are Sluice's own: no ingest path accepts them from outside.
pub const RESERVED_PROVIDER_PREFIX: &str = "sluice/";
/// The tag of derived indicators, reserved like their provider.
pub const CORRELATED_TAG: &str = "correlated";

/// The pseudo-field rejections name when the object as a whole is wrong (size, JSON, type).
const OBJECT: &str = "object";

/// Where an indicator came from: decides who the provider is.
#[derive(Debug, Clone, Copy)]
pub enum Provenance<'a> {
    /// HTTP API: the provider is the authenticated account; a payload `provider` is dropped
    /// (one in the reserved `sluice/` namespace is refused).
    Authenticated(&'a str),
    /// A provider's message on the Redis upstream (or `sluice publish`): the payload's
    /// `provider` is required and may not be in the reserved `sluice/` namespace.
    Upstream,
    /// What Sluice itself wrote: the log read back, the correlator's derived indicators.
    Trusted,
}

impl Provenance<'_> {
    /// Whether this comes from outside Sluice, so the reserved namespace is refused.
    fn is_external(self) -> bool {
        !matches!(self, Provenance::Trusted)
    }
}

/// One validated, normalised indicator. Built only by [`Indicator::from_json`] /
/// [`Indicator::from_slice`], so every value of this type obeys docs/protocol.md §2, and its
/// [`to_json`](Indicator::to_json) read back with [`Provenance::Trusted`] gives it again.
#[derive(Debug, Clone, PartialEq)]
pub struct Indicator {
    indicator: String,
    itype: Itype,
    provider: String,
    tags: Vec<String>,
    confidence: f64,
    tlp: Tlp,
    reporttime: DateTime<Utc>,
    firsttime: Option<DateTime<Utc>>,
    lasttime: Option<DateTime<Utc>>,
    /// The provider's own expiry (`valid_until`, or its aliases on input).
    valid_until: Option<DateTime<Utc>>,
    /// A withdrawal of the provider's earlier reports of this indicator, not a report.
    withdrawn: bool,
    /// Derived from `indicator` for addresses and networks, kept to make filtering cheap.
    network: Option<IpNet>,
    /// The optional CIF fields (type-checked) and everything else (verbatim).
    details: Details,
}

/// An indicator's other fields, sorted by name, in a boxed slice: a log keeps every retained
/// indicator in memory, and a `Map` (a B-tree) allocates a node of eleven slots (some 600
/// bytes) for the one or two fields most indicators carry.
#[derive(Debug, Clone, PartialEq)]
struct Details(Box<[(String, Value)]>);

impl Details {
    fn from_map(map: Map<String, Value>) -> Details {
        // A `Map` iterates in key order, which `get` relies on.
        Details(map.into_iter().collect())
    }

    fn get(&self, name: &str) -> Option<&Value> {
        self.0
            .binary_search_by(|(key, _)| key.as_str().cmp(name))
            .ok()
            .map(|at| &self.0[at].1)
    }

    fn to_map(&self) -> Map<String, Value> {
        self.0.iter().cloned().collect()
    }
}

/// Why an indicator was refused: always names the field and the reason.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("{field}: {reason}")]
pub struct Rejection {
    /// The offending field (`indicator`, `tags`, ...), or `object` for the object as a whole.
    pub field: String,
    /// What is wrong and, where it helps, what to send instead.
    pub reason: String,
    /// It claimed to be Sluice's own (the `sluice/` provider namespace, the `correlated` tag):
    /// a forgery or a misconfigured publisher, which operators want counted apart.
    pub reserved: bool,
}

impl Rejection {
    /// A rejection of `field` for `reason`.
    pub fn new(field: impl Into<String>, reason: impl Into<String>) -> Rejection {
        Rejection {
            field: field.into(),
            reason: reason.into(),
            reserved: false,
        }
    }

    /// A rejection for claiming to be Sluice's own.
    fn reserved(field: &str, reason: String) -> Rejection {
        Rejection {
            reserved: true,
            ..Rejection::new(field, reason)
        }
    }
}

impl Indicator {
    /// Validates and normalises one indicator object. `now` is ingest time (default reporttime, future clamp).
    pub fn from_json(
        value: Value,
        provenance: Provenance<'_>,
        now: DateTime<Utc>,
    ) -> Result<Indicator, Rejection> {
        let mut object = match value {
            Value::Object(object) => object,
            other => {
                return Err(Rejection::new(
                    OBJECT,
                    format!("expected a JSON object, found {}", kind(&other)),
                ));
            }
        };
        let (indicator, itype, network) = take_indicator(&mut object)?;
        let provider = take_provider(&mut object, provenance)?;
        let tags = take_tags(&mut object)?;
        if provenance.is_external() && tags.iter().any(|tag| tag == CORRELATED_TAG) {
            return Err(Rejection::reserved(
                "tags",
                format!(
                    "`{CORRELATED_TAG}` is reserved for the indicators Sluice's correlator derives"
                ),
            ));
        }
        let confidence = take_confidence(&mut object)?;
        let tlp = take_tlp(&mut object)?;
        let reporttime = match take_time(&mut object, "reporttime")? {
            Some(reported) if reported > latest_acceptable(now) => now,
            Some(reported) => reported,
            None => now,
        };
        let firsttime = take_time(&mut object, "firsttime")?;
        let lasttime = take_time(&mut object, "lasttime")?;
        let valid_until = take_valid_until(&mut object, provenance, reporttime)?;
        let withdrawn = take_withdrawn(&mut object)?;
        check_optional_fields(&mut object)?;

        let indicator = Indicator {
            indicator,
            itype,
            provider,
            tags,
            confidence,
            tlp,
            reporttime,
            firsttime,
            lasttime,
            valid_until,
            withdrawn,
            network,
            details: Details::from_map(object),
        };
        // Checked on the canonical form because that is what is stored and re-read with
        // `from_slice`: whatever is accepted here is guaranteed to be readable again.
        let size = indicator.encoded_len();
        if size > MAX_INDICATOR_BYTES {
            return Err(Rejection::new(
                OBJECT,
                format!("is {size} bytes of JSON; the limit is {MAX_INDICATOR_BYTES} bytes"),
            ));
        }
        Ok(indicator)
    }

    /// Same from raw bytes: rejects > MAX_INDICATOR_BYTES, invalid UTF-8, malformed JSON, non-object with a Rejection.
    pub fn from_slice(
        bytes: &[u8],
        provenance: Provenance<'_>,
        now: DateTime<Utc>,
    ) -> Result<Indicator, Rejection> {
        if bytes.len() > MAX_INDICATOR_BYTES {
            return Err(Rejection::new(
                OBJECT,
                format!(
                    "is {} bytes of JSON; the limit is {MAX_INDICATOR_BYTES} bytes",
                    bytes.len()
                ),
            ));
        }
        let text = std::str::from_utf8(bytes).map_err(|error| {
            Rejection::new(
                OBJECT,
                format!("is not valid UTF-8 (at byte {})", error.valid_up_to()),
            )
        })?;
        let value: Value = serde_json::from_str(text)
            .map_err(|error| Rejection::new(OBJECT, format!("is not valid JSON: {error}")))?;
        Indicator::from_json(value, provenance, now)
    }

    /// Canonical JSON object (CIF v1 / csirtg field names; tags as array; reporttime etc RFC 3339 UTC with `Z`; extra unknown fields kept verbatim).
    pub fn to_json(&self) -> Value {
        let mut object = self.details.to_map();
        object.insert("indicator".into(), Value::from(self.indicator.as_str()));
        object.insert("itype".into(), Value::from(self.itype.as_str()));
        object.insert("provider".into(), Value::from(self.provider.as_str()));
        object.insert("tags".into(), Value::from(self.tags.clone()));
        object.insert("confidence".into(), confidence_to_json(self.confidence));
        object.insert("tlp".into(), Value::from(self.tlp.as_str()));
        object.insert(
            "reporttime".into(),
            Value::from(time::format_time(self.reporttime)),
        );
        if let Some(firsttime) = self.firsttime {
            object.insert(
                "firsttime".into(),
                Value::from(time::format_time(firsttime)),
            );
        }
        if let Some(lasttime) = self.lasttime {
            object.insert("lasttime".into(), Value::from(time::format_time(lasttime)));
        }
        if let Some(valid_until) = self.valid_until {
            object.insert(
                VALID_UNTIL.into(),
                Value::from(time::format_time(valid_until)),
            );
        }
        if self.withdrawn {
            object.insert(WITHDRAWN.into(), Value::Bool(true));
        }
        Value::Object(object)
    }

    /// The normalised indicator (`10.1.2.3`, `http://example.com/Path`, `AS13335`, ...).
    pub fn indicator(&self) -> &str {
        &self.indicator
    }

    /// The detected type (a given `itype` must agree with it).
    pub fn itype(&self) -> Itype {
        self.itype
    }

    /// Who reported it: the authenticated account, or the trusted payload's `provider`.
    pub fn provider(&self) -> &str {
        &self.provider
    }

    /// Lowercased, trimmed, deduplicated, in first-seen order.
    pub fn tags(&self) -> &[String] {
        &self.tags
    }

    /// 0–10 (CIFv3 scale), at most two decimals.
    pub fn confidence(&self) -> f64 {
        self.confidence
    }

    /// The sharing level (default amber).
    pub fn tlp(&self) -> Tlp {
        self.tlp
    }

    /// When the provider saw it (never more than 5 minutes after ingest).
    pub fn reporttime(&self) -> DateTime<Utc> {
        self.reporttime
    }

    /// When the provider first saw it, if given.
    pub fn firsttime(&self) -> Option<DateTime<Utc>> {
        self.firsttime
    }

    /// When the provider last saw it, if given.
    pub fn lasttime(&self) -> Option<DateTime<Utc>> {
        self.lasttime
    }

    /// Until when the provider says it holds (`valid_until`, UTC), if it said. The expiry
    /// Sluice applies also has a default per itype: [`crate::validity::Validity::expires`].
    pub fn valid_until(&self) -> Option<DateTime<Utc>> {
        self.valid_until
    }

    /// The network this indicator covers, for ipv4/ipv6 (as /32, /128) and cidr; None otherwise.
    pub fn network(&self) -> Option<IpNet> {
        self.network
    }

    /// True for a withdrawal: the provider takes back what it reported of this indicator.
    pub fn is_withdrawn(&self) -> bool {
        self.withdrawn
    }

    /// The withdrawal of `report`'s indicator by its provider, as stored: the report's fields
    /// and level (so the filters and plans that saw the report see its withdrawal; the gateway
    /// picks the report at the most shareable level the provider used), reported at `now`,
    /// without the report's expiry. `firsttime` is the report's, or its `reporttime` when it
    /// has none: the provider's first sighting, so the withdrawal's STIX object keeps the
    /// report's `created`.
    pub fn withdrawal_of(report: &Indicator, now: DateTime<Utc>) -> Indicator {
        Indicator {
            firsttime: report.firsttime.or(Some(report.reporttime)),
            reporttime: now,
            valid_until: None,
            withdrawn: true,
            ..report.clone()
        }
    }

    /// True for the correlator's derived indicators: provider `sluice/correlator` (tag `correlated`).
    pub fn is_correlated(&self) -> bool {
        self.provider == CORRELATOR_PROVIDER
    }

    /// The `description`, when it is a string.
    pub fn description(&self) -> Option<&str> {
        self.details.get("description").and_then(Value::as_str)
    }

    /// Any other field: the optional CIF ones (`description`, `portlist`, `count`, ...) or a
    /// provider's own, as stored. `None` for the core fields, which have their own accessors.
    pub fn field(&self, name: &str) -> Option<&Value> {
        self.details.get(name)
    }

    /// Length of `to_json()` serialised, without building the string.
    fn encoded_len(&self) -> usize {
        let mut counter = ByteCounter(0);
        // Writing a `Value` to a sink that never fails cannot fail.
        let _ = serde_json::to_writer(&mut counter, &self.to_json());
        counter.0
    }
}

struct ByteCounter(usize);

impl std::io::Write for ByteCounter {
    fn write(&mut self, buf: &[u8]) -> std::io::Result<usize> {
        self.0 += buf.len();
        Ok(buf.len())
    }

    fn flush(&mut self) -> std::io::Result<()> {
        Ok(())
    }
}

fn latest_acceptable(now: DateTime<Utc>) -> DateTime<Utc> {
    now.checked_add_signed(TimeDelta::seconds(FUTURE_TOLERANCE_SECONDS))
        .unwrap_or(now)
}

/// Integral confidences are written as integers (`7`, as CIF does), others as decimals.
fn confidence_to_json(confidence: f64) -> Value {
    if confidence.fract() == 0.0 {
        // 0–10, so the cast is exact.
        Value::from(confidence as i64)
    } else {
        Value::from(confidence)
    }
}

/// "a string", "an array", ... for messages about wrong types.
fn kind(value: &Value) -> &'static str {
    match value {
        Value::Null => "null",
        Value::Bool(_) => "a boolean",
        Value::Number(_) => "a number",
        Value::String(_) => "a string",
        Value::Array(_) => "an array",
        Value::Object(_) => "an object",
    }
}

/// Quotes a value for a message, cut to a readable length (rejections echo user input).
fn shown(text: &str) -> String {
    const MAX_CHARS: usize = 80;
    match text.char_indices().nth(MAX_CHARS) {
        Some((cut, _)) => format!("`{}…`", &text[..cut]),
        None => format!("`{text}`"),
    }
}

/// Removes `field`, treating `null` as absent.
fn take(object: &mut Map<String, Value>, field: &str) -> Option<Value> {
    object.remove(field).filter(|value| !value.is_null())
}

/// The `indicator` field: classified, normalised, checked against a declared `itype`, and
/// refused when it names a private, reserved or otherwise non-public target.
fn take_indicator(
    object: &mut Map<String, Value>,
) -> Result<(String, Itype, Option<IpNet>), Rejection> {
    let raw = take_indicator_text(object)?;
    let (itype, normalised) = normalise::classify(&raw).ok_or_else(|| {
        Rejection::new(
            "indicator",
            format!(
                "cannot tell what {} is: expected a URL with its scheme (`http://example.com/x`), \
                 an md5/sha1/sha256/sha512 hash, an IPv4 or IPv6 address or CIDR, an email \
                 address, a domain name or an ASN (`AS13335`)",
                shown(&raw)
            ),
        )
    })?;
    check_declared_itype(take(object, "itype"), itype, &normalised)?;
    let network = network_of(itype, &normalised)?;
    refuse_non_public(itype, &normalised, network)?;
    Ok((normalised, itype, network))
}

/// The raw text: a non-empty string within [`MAX_INDICATOR_TEXT_BYTES`], trimmed.
fn take_indicator_text(object: &mut Map<String, Value>) -> Result<String, Rejection> {
    let reject = |reason: String| Rejection::new("indicator", reason);
    let raw = match take(object, "indicator") {
        Some(Value::String(raw)) => raw,
        Some(other) => return Err(reject(format!("expected a string, found {}", kind(&other)))),
        None => {
            return Err(reject(
                "missing: every indicator needs an `indicator` string".into(),
            ))
        }
    };
    let raw = raw.trim();
    if raw.is_empty() {
        return Err(reject("is empty".into()));
    }
    if raw.len() > MAX_INDICATOR_TEXT_BYTES {
        return Err(reject(format!(
            "is {} bytes long; the limit is {MAX_INDICATOR_TEXT_BYTES}",
            raw.len()
        )));
    }
    Ok(raw.to_owned())
}

/// A sender may say what the indicator is; if it does, it must agree with what it is.
fn check_declared_itype(
    declared: Option<Value>,
    detected: Itype,
    normalised: &str,
) -> Result<(), Rejection> {
    let given: Itype = match declared {
        None => return Ok(()),
        Some(Value::String(given)) => given
            .parse()
            .map_err(|error| Rejection::new("itype", format!("{error}")))?,
        Some(other) => {
            return Err(Rejection::new(
                "itype",
                format!("expected a string such as `ipv4`, found {}", kind(&other)),
            ))
        }
    };
    if given != detected {
        return Err(Rejection::new(
            "itype",
            format!(
                "indicator {} is {}, not {given}",
                shown(normalised),
                detected.with_article()
            ),
        ));
    }
    Ok(())
}

/// The network an address or CIDR covers; a CIDR with host bits set is refused.
fn network_of(itype: Itype, normalised: &str) -> Result<Option<IpNet>, Rejection> {
    let network = match itype {
        Itype::Ipv4 | Itype::Ipv6 => normalised.parse::<IpAddr>().ok().map(IpNet::from),
        Itype::Cidr => normalise::parse_cidr(normalised),
        _ => None,
    };
    if let (Itype::Cidr, Some(network)) = (itype, network) {
        if network.trunc() != network {
            return Err(Rejection::new(
                "indicator",
                format!(
                    "{} has host bits set: send the network `{}`",
                    shown(normalised),
                    network.trunc()
                ),
            ));
        }
    }
    Ok(network)
}

/// Private, reserved and documentation addresses, URLs on such hosts and private AS numbers
/// are not indicators.
fn refuse_non_public(
    itype: Itype,
    normalised: &str,
    network: Option<IpNet>,
) -> Result<(), Rejection> {
    let reject = |reason: String| Err(Rejection::new("indicator", reason));
    if let Some((range, what)) = network.and_then(reserved::special_range) {
        let relation = match network {
            Some(network) if itype == Itype::Cidr && !range.contains(&network) => {
                format!("overlaps {range}, which is")
            }
            _ => "is".to_owned(),
        };
        return reject(format!(
            "{} {relation} {what}: only public, routable addresses are indicators",
            shown(normalised)
        ));
    }
    if itype == Itype::Url {
        if let Some(host) = normalise::url_host_address(normalised) {
            if let Some((_, what)) = reserved::special_address(host) {
                return reject(format!(
                    "{} points at {host}, {what}: only URLs on public hosts are indicators",
                    shown(normalised)
                ));
            }
        }
    }
    if itype == Itype::Asn {
        if let Some(what) = normalise::parse_asn(normalised).and_then(reserved::special_asn) {
            return reject(format!(
                "{} is {what}: only public AS numbers are indicators",
                shown(normalised)
            ));
        }
    }
    Ok(())
}

fn take_provider(
    object: &mut Map<String, Value>,
    provenance: Provenance<'_>,
) -> Result<String, Rejection> {
    const FIELD: &str = "provider";
    // Removed in both cases: over the API a payload `provider` must not survive as an extra.
    let given = take(object, FIELD);
    let reject = |reason: String| Rejection::new(FIELD, reason);
    if provenance.is_external() {
        if let Some(Value::String(given)) = &given {
            if given.trim().starts_with(RESERVED_PROVIDER_PREFIX) {
                return Err(Rejection::reserved(
                    FIELD,
                    format!(
                        "{} is in the `{RESERVED_PROVIDER_PREFIX}` namespace, reserved for what \
                         Sluice itself derives; publish under your own provider name",
                        shown(given.trim())
                    ),
                ));
            }
        }
    }
    match provenance {
        Provenance::Authenticated(account) => Ok(account.to_owned()),
        Provenance::Upstream | Provenance::Trusted => {
            let provider = match given {
                Some(Value::String(provider)) => provider,
                Some(other) => {
                    return Err(reject(format!("expected a string, found {}", kind(&other))))
                }
                None => {
                    return Err(reject(
                        "missing: indicators on the trusted upstream must name their provider"
                            .into(),
                    ));
                }
            };
            let provider = provider.trim();
            if provider.is_empty() {
                return Err(reject("is empty".into()));
            }
            if provider.chars().count() > MAX_PROVIDER_CHARS {
                return Err(reject(format!(
                    "is longer than {MAX_PROVIDER_CHARS} characters"
                )));
            }
            if provider.chars().any(char::is_control) {
                return Err(reject("contains control characters".into()));
            }
            Ok(provider.to_owned())
        }
    }
}

fn take_tags(object: &mut Map<String, Value>) -> Result<Vec<String>, Rejection> {
    const FIELD: &str = "tags";
    const EXPECTED: &str = "expected an array of strings or a comma-separated string";
    let mut tags = Vec::new();
    match take(object, FIELD) {
        None => {}
        Some(Value::String(text)) => add_tags(&mut tags, &text)?,
        Some(Value::Array(items)) => {
            for (index, item) in items.iter().enumerate() {
                match item {
                    Value::String(text) => add_tags(&mut tags, text)?,
                    other => {
                        return Err(Rejection::new(
                            FIELD,
                            format!("{EXPECTED}; item {index} is {}", kind(other)),
                        ));
                    }
                }
            }
        }
        Some(other) => {
            return Err(Rejection::new(
                FIELD,
                format!("{EXPECTED}, found {}", kind(&other)),
            ))
        }
    }
    Ok(tags)
}

/// Adds the comma-separated tags of `text`. Commas split array items too, so that every stored
/// tag is comma-free and `tags=a,b` filters and CSV output can name it.
fn add_tags(tags: &mut Vec<String>, text: &str) -> Result<(), Rejection> {
    for tag in text.split(',') {
        let tag = tag.trim().to_lowercase();
        if tag.is_empty() || tags.contains(&tag) {
            continue;
        }
        if tag.chars().count() > MAX_TAG_CHARS {
            return Err(Rejection::new(
                "tags",
                format!(
                    "tag {} is longer than {MAX_TAG_CHARS} characters",
                    shown(&tag)
                ),
            ));
        }
        if tag.chars().any(char::is_control) {
            return Err(Rejection::new(
                "tags",
                format!("tag {} contains control characters", shown(&tag)),
            ));
        }
        if tags.len() == MAX_TAGS {
            return Err(Rejection::new(
                "tags",
                format!("more than {MAX_TAGS} distinct tags"),
            ));
        }
        tags.push(tag);
    }
    Ok(())
}

fn take_confidence(object: &mut Map<String, Value>) -> Result<f64, Rejection> {
    const FIELD: &str = "confidence";
    const EXPECTED: &str = "expected a number from 0 to 10";
    let confidence = match take(object, FIELD) {
        None => return Ok(DEFAULT_CONFIDENCE),
        Some(Value::Number(number)) => number.as_f64(),
        // CSV feeds and hand-written scripts send "7".
        Some(Value::String(text)) => text.trim().parse::<f64>().ok().filter(|n| n.is_finite()),
        Some(other) => {
            return Err(Rejection::new(
                FIELD,
                format!("{EXPECTED}, found {}", kind(&other)),
            ));
        }
    };
    match confidence {
        Some(confidence) if (0.0..=10.0).contains(&confidence) => {
            // Two decimals: n/100 is what parsing "x.yz" gives exactly, so the stored value
            // reads back bit-for-bit; `+ 0.0` turns -0 into 0.
            Ok((confidence * 100.0).round() / 100.0 + 0.0)
        }
        Some(confidence) => Err(Rejection::new(
            FIELD,
            format!("is {confidence}: {EXPECTED}"),
        )),
        None => Err(Rejection::new(
            FIELD,
            format!("is not a number: {EXPECTED}"),
        )),
    }
}

fn take_tlp(object: &mut Map<String, Value>) -> Result<Tlp, Rejection> {
    match take(object, "tlp") {
        None => Ok(Tlp::default()),
        Some(Value::String(text)) => text
            .parse()
            .map_err(|error| Rejection::new("tlp", format!("{error}"))),
        Some(other) => Err(Rejection::new(
            "tlp",
            format!(
                "expected white, green, amber or red, found {}",
                kind(&other)
            ),
        )),
    }
}

fn take_time(
    object: &mut Map<String, Value>,
    field: &str,
) -> Result<Option<DateTime<Utc>>, Rejection> {
    match take(object, field) {
        None => Ok(None),
        Some(Value::String(text)) => time::parse_time(&text).map(Some).ok_or_else(|| {
            Rejection::new(
                field,
                format!("{} is not a time: {}", shown(&text), time::EXPECTED),
            )
        }),
        Some(other) => Err(Rejection::new(
            field,
            format!("{}, found {}", time::EXPECTED, kind(&other)),
        )),
    }
}

/// The expiry's field, as stored.
const VALID_UNTIL: &str = "valid_until";

/// `valid_until`; from outside Sluice also `expires` (a time) or `ttl` (from `reporttime`), of
/// which at most one may be given. An expiry at or before `reporttime` is refused, naming the
/// field the provider used. Sluice's own JSON (the log read back) is read as written.
fn take_valid_until(
    object: &mut Map<String, Value>,
    provenance: Provenance<'_>,
    reporttime: DateTime<Utc>,
) -> Result<Option<DateTime<Utc>>, Rejection> {
    let own = take_time(object, VALID_UNTIL)?;
    if !provenance.is_external() {
        return Ok(own);
    }
    let expires = take_time(object, "expires")?;
    let ttl = take_ttl(object, reporttime)?;
    let mut given = [(VALID_UNTIL, own), ("expires", expires), ("ttl", ttl)]
        .into_iter()
        .filter_map(|(field, time)| time.map(|time| (field, time)));
    let Some((field, valid_until)) = given.next() else {
        return Ok(None);
    };
    if let Some((other, _)) = given.next() {
        return Err(Rejection::new(
            other,
            format!("`{field}` is given too: send one of valid_until, expires or ttl"),
        ));
    }
    if valid_until <= reporttime {
        let reason = match field {
            "ttl" => {
                "must be more than zero: the indicator would expire as it is reported".to_owned()
            }
            _ => format!(
                "{} is not after the reporttime {}: an indicator must hold for some time after \
                 it is reported",
                time::format_time(valid_until),
                time::format_time(reporttime)
            ),
        };
        return Err(Rejection::new(field, reason));
    }
    Ok(Some(valid_until))
}

/// The withdrawal mark, as stored.
const WITHDRAWN: &str = "withdrawn";

/// `withdrawn`: a boolean; `false` and `null` are the same as absent.
fn take_withdrawn(object: &mut Map<String, Value>) -> Result<bool, Rejection> {
    match take(object, WITHDRAWN) {
        None => Ok(false),
        Some(Value::Bool(withdrawn)) => Ok(withdrawn),
        Some(other) => Err(Rejection::new(
            WITHDRAWN,
            format!(
                "expected true (to withdraw your reports of this indicator) or false, found {}",
                kind(&other)
            ),
        )),
    }
}

/// `ttl`: whole seconds (a number or a digit string) or a duration (`12h`, `14d`), counted
/// from `reporttime`.
fn take_ttl(
    object: &mut Map<String, Value>,
    reporttime: DateTime<Utc>,
) -> Result<Option<DateTime<Utc>>, Rejection> {
    const FIELD: &str = "ttl";
    const EXPECTED: &str =
        "expected whole seconds or a duration such as `14d`, counted from the reporttime";
    let seconds = match take(object, FIELD) {
        None => return Ok(None),
        Some(Value::Number(number)) => match number.as_u64() {
            Some(seconds) => std::time::Duration::from_secs(seconds),
            None => return Err(Rejection::new(FIELD, format!("is {number}: {EXPECTED}"))),
        },
        Some(Value::String(text)) => {
            let trimmed = text.trim();
            let parsed = match trimmed.parse::<u64>() {
                Ok(seconds) => Some(std::time::Duration::from_secs(seconds)),
                // Bounded before humantime sees it: no sensible duration is longer.
                Err(_) if trimmed.len() <= 64 => humantime::parse_duration(trimmed).ok(),
                Err(_) => None,
            };
            parsed.ok_or_else(|| {
                Rejection::new(
                    FIELD,
                    format!("{} is not a duration: {EXPECTED}", shown(&text)),
                )
            })?
        }
        Some(other) => {
            return Err(Rejection::new(
                FIELD,
                format!("{EXPECTED}, found {}", kind(&other)),
            ))
        }
    };
    if seconds.as_secs() > MAX_TTL_SECONDS {
        return Err(Rejection::new(
            FIELD,
            format!("is more than 100 years: {EXPECTED}"),
        ));
    }
    // Within chrono's range (100 years after a reporttime of at most the year 9999), and
    // refused past the year 9999, which RFC 3339 cannot write.
    let until = TimeDelta::from_std(seconds)
        .ok()
        .and_then(|ttl| reporttime.checked_add_signed(ttl))
        .filter(|until| until.year() <= 9999);
    match until {
        Some(until) => Ok(Some(until)),
        None => Err(Rejection::new(FIELD, format!("is too long: {EXPECTED}"))),
    }
}

/// What CIF puts in each optional field; anything else there is refused rather than passed on
/// to consumers that trust CIF's types.
#[derive(Clone, Copy)]
enum Shape {
    Text,
    TextOrNumber,
    TextOrTexts,
    Count,
}

const OPTIONAL_FIELDS: &[(&str, Shape)] = &[
    ("description", Shape::Text),
    ("portlist", Shape::TextOrNumber),
    ("protocol", Shape::TextOrNumber),
    ("cc", Shape::Text),
    ("asn", Shape::TextOrNumber),
    ("asn_desc", Shape::Text),
    ("rdata", Shape::TextOrTexts),
    ("count", Shape::Count),
];

fn check_optional_fields(object: &mut Map<String, Value>) -> Result<(), Rejection> {
    for &(field, shape) in OPTIONAL_FIELDS {
        let Some(value) = take(object, field) else {
            continue;
        };
        let checked = match (shape, value) {
            (Shape::Count, Value::String(text)) => match text.trim().parse::<u64>() {
                Ok(count) => Ok(Value::from(count)),
                Err(_) => Err(Value::String(text)),
            },
            (_, Value::String(text)) => Ok(Value::String(text)),
            (Shape::TextOrNumber | Shape::Count, Value::Number(number))
                if number.as_u64().is_some() =>
            {
                Ok(Value::Number(number))
            }
            (Shape::TextOrTexts, Value::Array(items)) if items.iter().all(Value::is_string) => {
                Ok(Value::Array(items))
            }
            (_, other) => Err(other),
        };
        match checked {
            Ok(value) => {
                object.insert(field.to_owned(), value);
            }
            Err(other) => {
                let expected = match shape {
                    Shape::Text => "expected a string",
                    Shape::TextOrNumber => "expected a string or a non-negative integer",
                    Shape::TextOrTexts => "expected a string or an array of strings",
                    Shape::Count => "expected a non-negative integer",
                };
                return Err(Rejection::new(
                    field,
                    format!("{expected}, found {}", kind(&other)),
                ));
            }
        }
    }
    Ok(())
}

#[cfg(test)]
mod tests;
