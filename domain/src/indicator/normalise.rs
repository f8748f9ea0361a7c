//! The syntax and canonical form of each itype: recognising what an indicator is and rewriting
//! it to the one spelling the log, the filters and the correlator compare.
//!
//! Every normaliser is idempotent (normalising its own output gives the same text), which is what
//! lets stored JSON be re-read into an equal indicator.

use std::net::{IpAddr, Ipv4Addr, Ipv6Addr};

use ipnet::IpNet;

use crate::Itype;

/// Recognises `text` (trimmed) as the first itype that fits in CIF's order and returns it with
/// its canonical text. A CIDR is returned as written (canonical spelling, host bits kept) so
/// that validation can refuse host bits with a helpful message.
pub(crate) fn classify(text: &str) -> Option<(Itype, String)> {
    let text = text.trim();
    // No itype contains whitespace or control characters; refusing them here keeps every
    // recogniser below simple.
    if text.is_empty() || text.chars().any(|c| c.is_whitespace() || c.is_control()) {
        return None;
    }
    if let Some(url) = normalise_url(text) {
        return Some((Itype::Url, url));
    }
    if let Some(found) = normalise_hash(text) {
        return Some(found);
    }
    if let Some(address) = parse_ipv4(text) {
        return Some((Itype::Ipv4, address.to_string()));
    }
    if let Some(network) = parse_cidr(text) {
        return Some((Itype::Cidr, network.to_string()));
    }
    if let Ok(address) = text.parse::<Ipv6Addr>() {
        // std's Display writes RFC 5952 (lowercase, longest zero run compressed).
        return Some((Itype::Ipv6, address.to_string()));
    }
    if let Some(email) = normalise_email(text) {
        return Some((Itype::Email, email));
    }
    if let Some(fqdn) = normalise_fqdn(text) {
        return Some((Itype::Fqdn, fqdn));
    }
    if let Some(number) = parse_asn(text) {
        return Some((Itype::Asn, format_asn(number)));
    }
    None
}

/// `scheme://authority[/path][?query][#fragment]`: scheme and host lowercased, an IP host
/// canonicalised, trailing slashes of the path removed when there is no query or fragment;
/// everything else verbatim (paths are case-sensitive and percent-encoding is the sender's).
///
/// All trailing slashes go, not just one, so that normalising twice gives the same text.
/// A URL needs its scheme: `example.com/x` is refused rather than guessed.
fn normalise_url(text: &str) -> Option<String> {
    let (scheme, rest) = text.split_once("://")?;
    let scheme_ok = scheme.len() <= 32
        && scheme.starts_with(|c: char| c.is_ascii_alphabetic())
        && scheme
            .chars()
            .all(|c| c.is_ascii_alphanumeric() || matches!(c, '+' | '-' | '.'));
    if !scheme_ok {
        return None;
    }
    let authority_end = rest.find(['/', '?', '#']).unwrap_or(rest.len());
    let (authority, tail) = rest.split_at(authority_end);
    let (userinfo, host_and_port) = match authority.rsplit_once('@') {
        Some((userinfo, host_and_port)) => (Some(userinfo), host_and_port),
        None => (None, authority),
    };
    let (host, port) = split_host_port(host_and_port)?;
    let host = normalise_url_host(host)?;

    let mut url = String::with_capacity(text.len());
    url.push_str(&scheme.to_ascii_lowercase());
    url.push_str("://");
    if let Some(userinfo) = userinfo {
        url.push_str(userinfo);
        url.push('@');
    }
    url.push_str(&host);
    if let Some(port) = port {
        url.push(':');
        url.push_str(port);
    }
    if tail.contains(['?', '#']) {
        url.push_str(tail);
    } else {
        url.push_str(tail.trim_end_matches('/'));
    }
    Some(url)
}

/// Splits `host[:port]` or `[v6][:port]`; the port must be at most 5 digits.
fn split_host_port(text: &str) -> Option<(&str, Option<&str>)> {
    let (host, port) = if let Some(bracketed) = text.strip_prefix('[') {
        let (inside, after) = bracketed.split_once(']')?;
        let port = match after {
            "" => None,
            _ => Some(after.strip_prefix(':')?),
        };
        (&text[..inside.len() + 2], port)
    } else {
        match text.rsplit_once(':') {
            Some((host, port)) => (host, Some(port)),
            None => (text, None),
        }
    };
    if let Some(port) = port {
        if port.len() > 5 || !port.bytes().all(|b| b.is_ascii_digit()) {
            return None;
        }
    }
    // `host:` with an empty port means the default port (RFC 3986): same as no port.
    Some((host, port.filter(|port| !port.is_empty())))
}

/// A URL's host: `[ipv6]`, an IPv4 address or a domain name, in canonical form.
fn normalise_url_host(host: &str) -> Option<String> {
    if let Some(inside) = host.strip_prefix('[').and_then(|h| h.strip_suffix(']')) {
        return inside
            .parse::<Ipv6Addr>()
            .ok()
            .map(|address| format!("[{address}]"));
    }
    if let Some(address) = parse_ipv4(host) {
        return Some(address.to_string());
    }
    normalise_fqdn(host)
}

/// The IP address a URL's host names, if it is an IP literal (used to refuse private hosts).
pub(crate) fn url_host_address(url: &str) -> Option<IpAddr> {
    let rest = url.split_once("://")?.1;
    let authority = &rest[..rest.find(['/', '?', '#']).unwrap_or(rest.len())];
    let host_and_port = authority
        .rsplit_once('@')
        .map_or(authority, |(_, host)| host);
    let (host, _) = split_host_port(host_and_port)?;
    if let Some(inside) = host.strip_prefix('[').and_then(|h| h.strip_suffix(']')) {
        return inside.parse::<Ipv6Addr>().ok().map(IpAddr::V6);
    }
    parse_ipv4(host).map(IpAddr::V4)
}

/// Hex strings of 32/40/64/128 digits are md5/sha1/sha256/sha512, lowercased.
fn normalise_hash(text: &str) -> Option<(Itype, String)> {
    let itype = match text.len() {
        32 => Itype::Md5,
        40 => Itype::Sha1,
        64 => Itype::Sha256,
        128 => Itype::Sha512,
        _ => return None,
    };
    text.bytes()
        .all(|b| b.is_ascii_hexdigit())
        .then(|| (itype, text.to_ascii_lowercase()))
}

/// A dotted quad with 1–3 decimal digits per part. Leading zeros are read as decimal and dropped
/// (`010.001.002.003` is `10.1.2.3`), as CIF does; std refuses them to avoid the octal ambiguity,
/// but threat feeds do write them and mean decimal.
pub(crate) fn parse_ipv4(text: &str) -> Option<Ipv4Addr> {
    let mut octets = [0u8; 4];
    let mut parts = text.split('.');
    for octet in &mut octets {
        let part = parts.next()?;
        if part.is_empty() || part.len() > 3 || !part.bytes().all(|b| b.is_ascii_digit()) {
            return None;
        }
        *octet = part.parse().ok()?;
    }
    parts.next().is_none().then(|| Ipv4Addr::from(octets))
}

/// `address/prefix` for IPv4 (leading zeros allowed, as in `parse_ipv4`) or IPv6. Host bits are
/// kept; `IpNet`'s Display then gives the canonical spelling.
pub(crate) fn parse_cidr(text: &str) -> Option<IpNet> {
    let (address, prefix) = text.split_once('/')?;
    if prefix.is_empty() || prefix.len() > 3 || !prefix.bytes().all(|b| b.is_ascii_digit()) {
        return None;
    }
    let prefix: u8 = prefix.parse().ok()?;
    let address = match parse_ipv4(address) {
        Some(v4) => IpAddr::V4(v4),
        None => IpAddr::V6(address.parse::<Ipv6Addr>().ok()?),
    };
    IpNet::new(address, prefix).ok()
}

/// `local@domain`: the local part is RFC 5322 "atext" and dots (at most 64 characters), the domain
/// an fqdn; all lowercased (mailbox case-sensitivity is theoretical, and one spelling matters more).
fn normalise_email(text: &str) -> Option<String> {
    let (local, domain) = text.rsplit_once('@')?;
    let local_ok = !local.is_empty()
        && local.len() <= 64
        && local
            .chars()
            .all(|c| c.is_ascii_alphanumeric() || "!#$%&'*+/=?^_`{|}~.-".contains(c));
    if !local_ok {
        return None;
    }
    let domain = normalise_fqdn(domain)?;
    Some(format!("{}@{domain}", local.to_ascii_lowercase()))
}

/// A domain name of at least two labels, lowercased, without the root's trailing dot.
///
/// Labels are 1–63 of `[a-z0-9_-]` (underscores occur in real DNS names); the top-level label
/// must contain a letter, so dotted numbers such as `999.1.1.1` are never domains. Non-ASCII
/// names must arrive as punycode (`xn--…`), so that one name has one spelling.
pub(crate) fn normalise_fqdn(text: &str) -> Option<String> {
    let name = text.strip_suffix('.').unwrap_or(text);
    if name.is_empty() || name.len() > 253 {
        return None;
    }
    let name = name.to_ascii_lowercase();
    let labels: Vec<&str> = name.split('.').collect();
    let (tld, others) = labels.split_last()?;
    if others.is_empty() {
        return None;
    }
    let label_ok = |label: &str| {
        (1..=63).contains(&label.len())
            && label
                .bytes()
                .all(|b| b.is_ascii_lowercase() || b.is_ascii_digit() || b == b'-' || b == b'_')
    };
    let tld_ok = label_ok(tld)
        && tld.bytes().any(|b| b.is_ascii_lowercase())
        && !tld.contains('_')
        && !tld.starts_with('-')
        && !tld.ends_with('-');
    (tld_ok && others.iter().all(|label| label_ok(label))).then_some(name)
}

/// `AS13335`, `as13335`, `13335` (asplain) or `AS1.10` (asdot, only with the prefix since a bare
/// `1.10` means nothing certain).
pub(crate) fn parse_asn(text: &str) -> Option<u32> {
    let (prefixed, number) = match text.get(..2) {
        Some(prefix) if prefix.eq_ignore_ascii_case("as") => (true, &text[2..]),
        _ => (false, text),
    };
    let digits = |part: &str, max_len: usize| {
        !part.is_empty() && part.len() <= max_len && part.bytes().all(|b| b.is_ascii_digit())
    };
    match number.split_once('.') {
        Some((high, low)) if prefixed && digits(high, 5) && digits(low, 5) => {
            let high: u16 = high.parse().ok()?;
            let low: u16 = low.parse().ok()?;
            Some(u32::from(high) << 16 | u32::from(low))
        }
        Some(_) => None,
        None if digits(number, 10) => number.parse().ok(),
        None => None,
    }
}

/// The canonical ASN spelling: `AS` and the asplain number, as RIRs and most tools write it.
pub(crate) fn format_asn(number: u32) -> String {
    format!("AS{number}")
}

#[cfg(test)]
mod tests {
    use super::*;

    fn check(input: &str, expected: Option<(Itype, &str)>) {
        let got = classify(input);
        assert_eq!(
            got.as_ref().map(|(itype, text)| (*itype, text.as_str())),
            expected,
            "normalising {input:?}"
        );
    }

    #[test]
    fn normalises_each_type() {
        use Itype::*;
        check("  8.8.8.8\t", Some((Ipv4, "8.8.8.8")));
        check("010.001.002.003", Some((Ipv4, "10.1.2.3")));
        check("185.000.012.001", Some((Ipv4, "185.0.12.1")));
        check("2606:4700:0:0::1111", Some((Ipv6, "2606:4700::1111")));
        check(
            "2606:4700:0000:0000:0000:0000:0000:1111",
            Some((Ipv6, "2606:4700::1111")),
        );
        check("2606:4700:AB::1", Some((Ipv6, "2606:4700:ab::1")));
        check("2606:4700:0:0:1:0:0:1", Some((Ipv6, "2606:4700::1:0:0:1")));
        check("001.001.001.000/24", Some((Cidr, "1.1.1.0/24")));
        check("1.1.1.0/024", Some((Cidr, "1.1.1.0/24")));
        check("1.2.3.4/24", Some((Cidr, "1.2.3.4/24")));
        check("2606:4700:0::/32", Some((Cidr, "2606:4700::/32")));
        check("EXAMPLE.com", Some((Fqdn, "example.com")));
        check("example.com.", Some((Fqdn, "example.com")));
        check("Mail.Example.COM.", Some((Fqdn, "mail.example.com")));
        check("user@Example.com", Some((Email, "user@example.com")));
        check(
            "First.Last+tag@Example.com.",
            Some((Email, "first.last+tag@example.com")),
        );
        check("AS13335", Some((Asn, "AS13335")));
        check("as013335", Some((Asn, "AS13335")));
        check("13335", Some((Asn, "AS13335")));
        check("AS1.10", Some((Asn, "AS65546")));
        check("AS4294967295", Some((Asn, "AS4294967295")));
        check(
            "D41D8CD98F00B204E9800998ECF8427E",
            Some((Md5, "d41d8cd98f00b204e9800998ecf8427e")),
        );
    }

    #[test]
    fn normalises_urls() {
        use Itype::Url;
        check(
            "http://Example.COM/Path/",
            Some((Url, "http://example.com/Path")),
        );
        check("HTTP://example.com/", Some((Url, "http://example.com")));
        check("http://example.com", Some((Url, "http://example.com")));
        check("http://example.com//", Some((Url, "http://example.com")));
        check(
            "http://example.com/a/?q=/",
            Some((Url, "http://example.com/a/?q=/")),
        );
        check(
            "http://example.com/a#frag/",
            Some((Url, "http://example.com/a#frag/")),
        );
        check(
            "http://User:Pw@Example.com:8080/X",
            Some((Url, "http://User:Pw@example.com:8080/X")),
        );
        check(
            "http://[2606:4700:0::1111]:80/",
            Some((Url, "http://[2606:4700::1111]:80")),
        );
        check(
            "http://050.115.166.136/bin",
            Some((Url, "http://50.115.166.136/bin")),
        );
        check("http://example.com./x", Some((Url, "http://example.com/x")));
        check(
            "http://example.com?x=1",
            Some((Url, "http://example.com?x=1")),
        );
        check("hxxp://example.com/x", Some((Url, "hxxp://example.com/x")));
        check(
            "http://example.com:/x/",
            Some((Url, "http://example.com/x")),
        );
        check("http://example.com:99999999/", None);
        check("http://example.com:8o/", None);
        check("1http://example.com/", None);
        check("http://[::1/", None);
    }

    #[test]
    fn finds_url_host_addresses() {
        assert_eq!(
            url_host_address("http://10.0.0.1/x"),
            Some("10.0.0.1".parse().unwrap())
        );
        assert_eq!(
            url_host_address("http://u@[::1]:80/x"),
            Some("::1".parse().unwrap())
        );
        assert_eq!(url_host_address("http://example.com/x"), None);
    }
}
