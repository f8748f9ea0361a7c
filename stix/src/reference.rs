//! `external_references` from the fields in which feeds give a URL about the indicator.
//!
//! | field | who writes it |
//! |---|---|
//! | `altid` | CIF v1/v2 (the alternate id's URL); Bambenek's feeds (their fourth column) |
//! | `reference` | CIF v3/v4 |
//! | `urlhaus_link` | abuse.ch URLhaus's CSV dump |
//! | `phish_detail_url` | PhishTank's JSON |
//!
//! Each becomes `{"source_name": provider, "description": field, "url": value}`. The value is the
//! provider's, so it is kept only when it is a plain `http`/`https` URI (RFC 3986 characters and
//! well-formed `%` escapes, at most 2,048 bytes); anything else is left out rather than repaired.
//! STIX reserves the source names `cve` and `capec` (they then require a CVE or CAPEC id), so a
//! provider of that exact name is written `cve (provider)`.

use domain::Indicator;
use serde_json::{json, Value};

/// The fields read, in this order.
const FIELDS: [&str; 4] = ["altid", "reference", "urlhaus_link", "phish_detail_url"];

/// The longest URL kept.
const MAX_URL_BYTES: usize = 2048;

/// The indicator's external references; empty when it has none.
pub(crate) fn external_references(indicator: &Indicator) -> Vec<Value> {
    let mut references: Vec<Value> = Vec::new();
    let mut seen: Vec<&str> = Vec::new();
    for field in FIELDS {
        let Some(url) = indicator.field(field).and_then(Value::as_str) else {
            continue;
        };
        let url = url.trim();
        if !is_web_uri(url) || seen.contains(&url) {
            continue;
        }
        seen.push(url);
        references.push(json!({
            "source_name": source_name(indicator.provider()),
            "description": field,
            "url": url,
        }));
    }
    references
}

fn source_name(provider: &str) -> String {
    match provider {
        "cve" | "capec" => format!("{provider} (provider)"),
        _ => provider.to_owned(),
    }
}

/// An absolute `http`/`https` URI with a non-empty authority, in RFC 3986's characters.
fn is_web_uri(text: &str) -> bool {
    let Some(rest) = text
        .strip_prefix("https://")
        .or_else(|| text.strip_prefix("http://"))
    else {
        return false;
    };
    if text.len() > MAX_URL_BYTES {
        return false;
    }
    let authority_end = rest.find(['/', '?', '#']).unwrap_or(rest.len());
    let (authority, tail) = rest.split_at(authority_end);
    let (before_fragment, fragment) = match tail.split_once('#') {
        Some((before, fragment)) => (before, Some(fragment)),
        None => (tail, None),
    };
    let (path, query) = match before_fragment.split_once('?') {
        Some((path, query)) => (path, Some(query)),
        None => (before_fragment, None),
    };
    valid_authority(authority)
        && valid(path, |c| is_pchar(c) || c == '/')
        && query.is_none_or(|query| valid(query, |c| is_pchar(c) || matches!(c, '/' | '?')))
        && fragment
            .is_none_or(|fragment| valid(fragment, |c| is_pchar(c) || matches!(c, '/' | '?')))
}

/// `[userinfo@]host[:port]`, the host a non-empty name or a bracketed IP literal.
fn valid_authority(authority: &str) -> bool {
    let (userinfo, host_and_port) = authority.rsplit_once('@').unwrap_or(("", authority));
    let (host_ok, port) = match host_and_port.strip_prefix('[') {
        Some(literal) => match literal.split_once(']') {
            Some((inside, after)) => (
                !inside.is_empty()
                    && inside
                        .chars()
                        .all(|c| c.is_ascii_hexdigit() || matches!(c, ':' | '.')),
                after,
            ),
            None => return false,
        },
        None => {
            let at = host_and_port.find(':').unwrap_or(host_and_port.len());
            let (host, port) = host_and_port.split_at(at);
            (
                !host.is_empty() && valid(host, |c| is_pchar(c) && !matches!(c, ':' | '@')),
                port,
            )
        }
    };
    let port_ok = port.is_empty()
        || port
            .strip_prefix(':')
            .is_some_and(|digits| digits.bytes().all(|b| b.is_ascii_digit()));
    valid(userinfo, |c| is_pchar(c) && c != '@') && host_ok && port_ok
}

/// Every character allowed by `allowed`, or a `%` followed by two hex digits.
fn valid(part: &str, allowed: impl Fn(char) -> bool) -> bool {
    let bytes = part.as_bytes();
    let mut at = 0;
    while at < bytes.len() {
        if bytes[at] == b'%' {
            let escape = bytes.get(at + 1..at + 3);
            if !escape.is_some_and(|hex| hex.iter().all(u8::is_ascii_hexdigit)) {
                return false;
            }
            at += 3;
        } else if bytes[at].is_ascii() && allowed(char::from(bytes[at])) {
            at += 1;
        } else {
            return false;
        }
    }
    true
}

/// RFC 3986's `pchar` less `%` (escapes are checked apart): unreserved, sub-delims, `:`, `@`.
fn is_pchar(c: char) -> bool {
    c.is_ascii_alphanumeric() || "-._~!$&'()*+,;=:@".contains(c)
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::testing::report;

    #[test]
    fn urls_in_known_fields_become_references() {
        let indicator = report(serde_json::json!({
            "indicator": "http://madlabs.com.my/2428009LPOJER/com/Personal",
            "provider": "abuse.ch",
            "urlhaus_link": "https://urlhaus.abuse.ch/url/44693/",
            "altid": "https://urlhaus.abuse.ch/url/44693/",
            "reference": "http://osint.example/a b",
            "phish_detail_url": "http://www.phishtank.com/phish_detail.php?phish_id=3919226",
        }));
        assert_eq!(
            external_references(&indicator),
            [
                json!({"source_name": "abuse.ch", "description": "altid",
                       "url": "https://urlhaus.abuse.ch/url/44693/"}),
                json!({"source_name": "abuse.ch", "description": "phish_detail_url",
                       "url": "http://www.phishtank.com/phish_detail.php?phish_id=3919226"}),
            ]
        );
    }

    #[test]
    fn only_plain_web_uris_are_kept() {
        for good in [
            "http://example.com",
            "https://example.com:8443/a/b;c?d=e&f=%20#g/h?",
            "http://[2001:db8::1]/x",
            "https://user@example.com/~x/(y)*'z'",
        ] {
            assert!(is_web_uri(good), "{good}");
        }
        for bad in [
            "ftp://example.com/",
            "javascript:alert(1)",
            "http://",
            "http:///path",
            "http://example.com/a b",
            "http://example.com/\"><script>",
            "http://example.com/ü",
            "http://example.com/%zz",
            "http://example.com/%4",
            "http://example.com/#a#b",
            "http://example.com/\\x",
            "http://example.com/{x}",
            "http://exa[mple.com/",
            "http://[zz]/",
            "http://example.com:8o/",
            "http://a@b@example.com/",
        ] {
            assert!(!is_web_uri(bad), "{bad}");
        }
        assert!(!is_web_uri(&format!(
            "http://example.com/{}",
            "a".repeat(2048)
        )));
    }

    #[test]
    fn reserved_source_names_are_avoided() {
        assert_eq!(source_name("cve"), "cve (provider)");
        assert_eq!(source_name("capec"), "capec (provider)");
        assert_eq!(source_name("cve.example"), "cve.example");
    }
}
