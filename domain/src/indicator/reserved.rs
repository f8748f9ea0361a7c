//! Special-purpose address ranges and AS numbers that are never valid indicators.
//!
//! Reporting `10.0.0.1` or `2001:db8::1` as a threat is always a mistake (a leaked internal log,
//! a copied documentation example), and a subscriber who pipes the firehose into a firewall
//! would block its own network. So they are refused at ingest with the registry's name for them.

use std::net::IpAddr;
use std::sync::OnceLock;

use ipnet::IpNet;

/// (range, what it is). More specific entries come first so the message names the closest one.
const RANGES: &[(&str, &str)] = &[
    ("0.0.0.0/8", "a \"this network\" address (RFC 1122)"),
    ("10.0.0.0/8", "a private-use address (RFC 1918)"),
    ("100.64.0.0/10", "a shared CGNAT address (RFC 6598)"),
    ("127.0.0.0/8", "a loopback address (RFC 1122)"),
    ("169.254.0.0/16", "a link-local address (RFC 3927)"),
    ("172.16.0.0/12", "a private-use address (RFC 1918)"),
    ("192.0.0.0/24", "an IETF protocol assignment (RFC 6890)"),
    (
        "192.0.2.0/24",
        "a documentation address (TEST-NET-1, RFC 5737)",
    ),
    ("192.168.0.0/16", "a private-use address (RFC 1918)"),
    ("198.18.0.0/15", "a benchmarking address (RFC 2544)"),
    (
        "198.51.100.0/24",
        "a documentation address (TEST-NET-2, RFC 5737)",
    ),
    (
        "203.0.113.0/24",
        "a documentation address (TEST-NET-3, RFC 5737)",
    ),
    ("224.0.0.0/4", "a multicast address (RFC 5771)"),
    (
        "255.255.255.255/32",
        "the limited broadcast address (RFC 919)",
    ),
    ("240.0.0.0/4", "a reserved address (RFC 1112)"),
    ("::/128", "the unspecified address (RFC 4291)"),
    ("::1/128", "the loopback address (RFC 4291)"),
    (
        "::ffff:0:0/96",
        "an IPv4-mapped address (RFC 4291; send the IPv4 address itself)",
    ),
    ("::/96", "a deprecated IPv4-compatible address (RFC 4291)"),
    ("100::/64", "a discard-only address (RFC 6666)"),
    ("2001:db8::/32", "a documentation address (RFC 3849)"),
    ("3fff::/20", "a documentation address (RFC 9637)"),
    ("fc00::/7", "a unique local address (RFC 4193)"),
    ("fe80::/10", "a link-local address (RFC 4291)"),
    ("fec0::/10", "a deprecated site-local address (RFC 3879)"),
    ("ff00::/8", "a multicast address (RFC 4291)"),
];

fn ranges() -> &'static [(IpNet, &'static str)] {
    static PARSED: OnceLock<Vec<(IpNet, &'static str)>> = OnceLock::new();
    PARSED.get_or_init(|| {
        RANGES
            .iter()
            .map(|(range, what)| {
                (
                    range.parse().expect("the reserved ranges table is valid"),
                    *what,
                )
            })
            .collect()
    })
}

/// The special-purpose range `network` overlaps (lies inside or contains), if any, with what it
/// is, e.g. `(10.0.0.0/8, "a private-use address (RFC 1918)")`.
pub(crate) fn special_range(network: IpNet) -> Option<(IpNet, &'static str)> {
    ranges()
        .iter()
        .find(|(range, _)| overlaps(*range, network))
        .copied()
}

/// The special-purpose range containing `address`, if any.
pub(crate) fn special_address(address: IpAddr) -> Option<(IpNet, &'static str)> {
    special_range(IpNet::from(address))
}

fn overlaps(a: IpNet, b: IpNet) -> bool {
    // Two prefixes overlap exactly when one contains the other's first address.
    a.contains(&b.network()) || b.contains(&a.network())
}

/// What a special-purpose AS number is, if it is one (RFC 7607, 6793, 5398, 6996, 7300).
pub(crate) fn special_asn(number: u32) -> Option<&'static str> {
    match number {
        0 => Some("reserved (RFC 7607)"),
        23456 => Some("AS_TRANS, a placeholder for 4-byte ASNs (RFC 6793)"),
        64496..=64511 | 65536..=65551 => Some("reserved for documentation (RFC 5398)"),
        64512..=65534 | 4_200_000_000..=4_294_967_294 => {
            Some("reserved for private use (RFC 6996)")
        }
        65535 | 4_294_967_295 => Some("reserved (RFC 7300)"),
        _ => None,
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn check(network: &str, expected: Option<&str>) {
        let network: IpNet = network
            .parse()
            .or_else(|_| network.parse::<IpAddr>().map(IpNet::from))
            .unwrap();
        assert_eq!(
            special_range(network)
                .map(|(range, _)| range.to_string())
                .as_deref(),
            expected,
            "{network}"
        );
    }

    #[test]
    fn finds_special_ranges() {
        check("10.1.2.3", Some("10.0.0.0/8"));
        check("172.31.255.255", Some("172.16.0.0/12"));
        check("172.32.0.1", None);
        check("192.168.1.0/24", Some("192.168.0.0/16"));
        check("192.0.0.0/8", Some("192.0.0.0/24"));
        check("100.64.0.1", Some("100.64.0.0/10"));
        check("100.128.0.1", None);
        check("198.19.255.255", Some("198.18.0.0/15"));
        check("203.0.113.7", Some("203.0.113.0/24"));
        check("203.0.114.7", None);
        check("224.0.0.1", Some("224.0.0.0/4"));
        check("255.255.255.255", Some("255.255.255.255/32"));
        check("250.1.1.1", Some("240.0.0.0/4"));
        check("0.0.0.0/0", Some("0.0.0.0/8"));
        check("1.1.1.1", None);
        check("8.8.8.0/24", None);
        check("::", Some("::/128"));
        check("::1", Some("::1/128"));
        check("::ffff:8.8.8.8", Some("::ffff:0.0.0.0/96"));
        check("2001:db8::1", Some("2001:db8::/32"));
        check("fd00::1", Some("fc00::/7"));
        check("fe80::1", Some("fe80::/10"));
        check("ff02::1", Some("ff00::/8"));
        check("2606:4700::1111", None);
        check("2000::/3", Some("2001:db8::/32"));
        check("2606::/16", None);
        check("2001::/16", Some("2001:db8::/32"));
    }

    #[test]
    fn finds_special_asns() {
        assert!(special_asn(0).is_some());
        assert!(special_asn(64512).is_some());
        assert!(special_asn(4_294_967_295).is_some());
        assert!(special_asn(13335).is_none());
        assert!(special_asn(65552).is_none());
    }
}
