//! What the rule groups reports by: the exact address, its network, or its AS number.

use std::fmt;
use std::net::IpAddr;

use ipnet::IpNet;

/// How a rule keys reports (`key=` in a rule spec).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum KeyKind {
    /// The normalised address itself (`exact`).
    Exact,
    /// The address's network: IPv4 `/v4`, IPv6 `/v6` (`cidr/24`, `cidr/24/48`).
    Network { v4: u8, v6: u8 },
    /// The indicator's `asn` field (`asn`); reports without one are skipped.
    Asn,
}

impl fmt::Display for KeyKind {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            KeyKind::Exact => f.write_str("exact"),
            KeyKind::Network { v4, v6 } => write!(f, "cidr/{v4}/{v6}"),
            KeyKind::Asn => f.write_str("asn"),
        }
    }
}

/// A report's key under a rule. Ordered so that decisions come out in a stable order.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub enum Key {
    Address(IpAddr),
    Network(IpNet),
    Asn(u32),
}

impl Key {
    /// Reads back a derived indicator's `indicator` under a rule's key kind (see
    /// [`Key::indicator`]); `None` when it does not fit the kind.
    pub fn parse(kind: KeyKind, text: &str) -> Option<Key> {
        match kind {
            KeyKind::Exact => text.parse().ok().map(Key::Address),
            KeyKind::Network { .. } => text.parse().ok().map(Key::Network),
            KeyKind::Asn => parse_asn(&serde_json::Value::from(text)).map(Key::Asn),
        }
    }

    /// The derived indicator's `indicator` and `itype`.
    pub fn indicator(&self) -> (String, &'static str) {
        match self {
            Key::Address(IpAddr::V4(address)) => (address.to_string(), "ipv4"),
            Key::Address(IpAddr::V6(address)) => (address.to_string(), "ipv6"),
            Key::Network(network) => (network.to_string(), "cidr"),
            Key::Asn(number) => (format!("AS{number}"), "asn"),
        }
    }
}

impl fmt::Display for Key {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.indicator().0)
    }
}

/// Reads an `asn` field as CIF feeds write it: `15169`, `"15169"`, `"AS15169"`, `"as15169"`.
pub(crate) fn parse_asn(value: &serde_json::Value) -> Option<u32> {
    match value {
        serde_json::Value::Number(number) => number.as_u64().and_then(|n| u32::try_from(n).ok()),
        serde_json::Value::String(text) => {
            let text = text.trim();
            let digits = text
                .strip_prefix("AS")
                .or_else(|| text.strip_prefix("as"))
                .or_else(|| text.strip_prefix("As"))
                .unwrap_or(text);
            digits.parse().ok()
        }
        _ => None,
    }
    .filter(|&number| number != 0)
}
