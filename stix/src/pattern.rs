//! STIX patterns (STIX 2.1 §9) for each itype: one comparison on the matching cyber-observable
//! object, its value a correctly escaped string literal (numbers for AS numbers).
//!
//! The table of patterns is in the crate documentation.
//!
//! Hash keys are the hash-algorithm-ov spellings (`MD5`, `SHA-1`, `SHA-256`, `SHA-512`); those
//! with a hyphen must be quoted in an object path (the grammar's path steps are identifiers
//! without hyphens or string literals). The pattern validator would also accept `SHA256`, but
//! consumers match hashes by the vocabulary's keys.
//!
//! Indicators are attacker-controlled: a URL's path and an email's local part may hold `'`,
//! `\`, `]` and any non-ASCII text. Inside a STIX string literal only `'` and `\` are special
//! (each escaped with a backslash); everything else, `]` included, is literal. The indicator model
//! refuses whitespace and control characters in indicators, but the escaping does not rely on it.

use domain::{Indicator, Itype};

/// The STIX pattern that matches `indicator`.
pub(crate) fn pattern(indicator: &Indicator) -> String {
    let text = indicator.indicator();
    let (path, operator) = match indicator.itype() {
        Itype::Ipv4 => ("ipv4-addr:value", "="),
        Itype::Ipv6 => ("ipv6-addr:value", "="),
        Itype::Cidr if is_ipv6_network(indicator) => ("ipv6-addr:value", "ISSUBSET"),
        Itype::Cidr => ("ipv4-addr:value", "ISSUBSET"),
        Itype::Url => ("url:value", "="),
        Itype::Fqdn => ("domain-name:value", "="),
        Itype::Email => ("email-addr:value", "="),
        Itype::Md5 => ("file:hashes.MD5", "="),
        Itype::Sha1 => ("file:hashes.'SHA-1'", "="),
        Itype::Sha256 => ("file:hashes.'SHA-256'", "="),
        Itype::Sha512 => ("file:hashes.'SHA-512'", "="),
        Itype::Asn => match asn_number(text) {
            Some(number) => return format!("[autonomous-system:number = {number}]"),
            // Unreachable for a validated indicator (always `AS<number>`); a name match keeps
            // the pattern true to the text rather than inventing a number.
            None => ("autonomous-system:name", "="),
        },
    };
    let mut pattern = String::with_capacity(path.len() + operator.len() + text.len() + 8);
    pattern.push('[');
    pattern.push_str(path);
    pattern.push(' ');
    pattern.push_str(operator);
    pattern.push(' ');
    push_literal(&mut pattern, text);
    pattern.push(']');
    pattern
}

/// Appends `text` as a STIX pattern string literal: quoted, `\` and `'` escaped.
pub(crate) fn push_literal(out: &mut String, text: &str) {
    out.reserve(text.len() + 2);
    out.push('\'');
    for c in text.chars() {
        match c {
            '\\' => out.push_str("\\\\"),
            '\'' => out.push_str("\\'"),
            c => out.push(c),
        }
    }
    out.push('\'');
}

fn is_ipv6_network(indicator: &Indicator) -> bool {
    match indicator.network() {
        Some(network) => network.addr().is_ipv6(),
        None => indicator.indicator().contains(':'),
    }
}

/// `AS13335` → 13335 (the indicator model's canonical spelling).
fn asn_number(text: &str) -> Option<u32> {
    text.strip_prefix("AS")?.parse().ok()
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::testing::report;

    fn pattern_of(indicator: &str) -> String {
        pattern(&report(serde_json::json!({ "indicator": indicator })))
    }

    #[test]
    fn each_itype_has_its_pattern() {
        let cases = [
            ("185.20.30.40", "[ipv4-addr:value = '185.20.30.40']"),
            ("2606:4700::1111", "[ipv6-addr:value = '2606:4700::1111']"),
            ("1.1.1.0/24", "[ipv4-addr:value ISSUBSET '1.1.1.0/24']"),
            (
                "2606:4700::/32",
                "[ipv6-addr:value ISSUBSET '2606:4700::/32']",
            ),
            (
                "http://Example.com/Path/",
                "[url:value = 'http://example.com/Path']",
            ),
            (
                "Evil.Example.NET.",
                "[domain-name:value = 'evil.example.net']",
            ),
            (
                "User@Example.com",
                "[email-addr:value = 'user@example.com']",
            ),
            (
                "D41D8CD98F00B204E9800998ECF8427E",
                "[file:hashes.MD5 = 'd41d8cd98f00b204e9800998ecf8427e']",
            ),
            (
                "da39a3ee5e6b4b0d3255bfef95601890afd80709",
                "[file:hashes.'SHA-1' = 'da39a3ee5e6b4b0d3255bfef95601890afd80709']",
            ),
            (
                "e3b0c44298fc1c149afbf4c8996fb92427ae41e4649b934ca495991b7852b855",
                "[file:hashes.'SHA-256' = \
                 'e3b0c44298fc1c149afbf4c8996fb92427ae41e4649b934ca495991b7852b855']",
            ),
            ("as13335", "[autonomous-system:number = 13335]"),
        ];
        for (indicator, expected) in cases {
            assert_eq!(pattern_of(indicator), expected, "{indicator}");
        }
        let sha512 = "ab".repeat(64);
        assert_eq!(
            pattern_of(&sha512),
            format!("[file:hashes.'SHA-512' = '{sha512}']")
        );
    }

    #[test]
    fn hostile_text_is_escaped() {
        assert_eq!(
            pattern_of(r"http://example.com/a'b\c]d?e='OR'1'='1']"),
            r"[url:value = 'http://example.com/a\'b\\c]d?e=\'OR\'1\'=\'1\']']"
        );
        assert_eq!(
            pattern_of("o'brien@example.com"),
            r"[email-addr:value = 'o\'brien@example.com']"
        );
        assert_eq!(
            pattern_of("http://example.com/ünï€😀\\'"),
            r"[url:value = 'http://example.com/ünï€😀\\\'']"
        );
        let mut literal = String::new();
        push_literal(&mut literal, "a\nb\\'");
        assert_eq!(literal, "'a\nb\\\\\\''");
    }
}
