//! Indicator types (CIF's `itype`) and their detection, in CIF's order.
//!
//! Detection is purely syntactic: `10.0.0.1` is an `ipv4` even though it is later refused as a
//! private address. The rules for each type's syntax and canonical form live in
//! `indicator/normalise.rs`; this module names the types and picks the first one that fits.

use std::fmt;
use std::str::FromStr;

use crate::indicator::normalise;

/// The kind of an indicator, with CIF v1 / csirtg names (`as_str`).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum Itype {
    Url,
    Md5,
    Sha1,
    Sha256,
    Sha512,
    Ipv4,
    Cidr,
    Ipv6,
    Email,
    Fqdn,
    Asn,
}

impl Itype {
    /// Every itype, in CIF's detection order.
    pub const ALL: [Itype; 11] = [
        Itype::Url,
        Itype::Md5,
        Itype::Sha1,
        Itype::Sha256,
        Itype::Sha512,
        Itype::Ipv4,
        Itype::Cidr,
        Itype::Ipv6,
        Itype::Email,
        Itype::Fqdn,
        Itype::Asn,
    ];

    /// The wire name: `url`, `md5`, `sha1`, `sha256`, `sha512`, `ipv4`, `cidr`, `ipv6`, `email`,
    /// `fqdn`, `asn`.
    pub fn as_str(self) -> &'static str {
        match self {
            Itype::Url => "url",
            Itype::Md5 => "md5",
            Itype::Sha1 => "sha1",
            Itype::Sha256 => "sha256",
            Itype::Sha512 => "sha512",
            Itype::Ipv4 => "ipv4",
            Itype::Cidr => "cidr",
            Itype::Ipv6 => "ipv6",
            Itype::Email => "email",
            Itype::Fqdn => "fqdn",
            Itype::Asn => "asn",
        }
    }

    /// The name with its English article, for messages ("an ipv4", "a url").
    pub(crate) fn with_article(self) -> &'static str {
        match self {
            Itype::Url => "a url",
            Itype::Md5 => "an md5 hash",
            Itype::Sha1 => "a sha1 hash",
            Itype::Sha256 => "a sha256 hash",
            Itype::Sha512 => "a sha512 hash",
            Itype::Ipv4 => "an ipv4",
            Itype::Cidr => "a cidr",
            Itype::Ipv6 => "an ipv6",
            Itype::Email => "an email",
            Itype::Fqdn => "an fqdn",
            Itype::Asn => "an asn",
        }
    }

    /// Whether indicators of this type name IP addresses (and so have a network).
    pub fn is_address(self) -> bool {
        matches!(self, Itype::Ipv4 | Itype::Ipv6 | Itype::Cidr)
    }

    /// Whether indicators of this type are file hashes.
    pub fn is_hash(self) -> bool {
        matches!(
            self,
            Itype::Md5 | Itype::Sha1 | Itype::Sha256 | Itype::Sha512
        )
    }
}

impl fmt::Display for Itype {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.as_str())
    }
}

/// An `itype` value that names no known type.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("unknown itype `{0}`: known itypes are url, md5, sha1, sha256, sha512, ipv4, cidr, ipv6, email, fqdn, asn")]
pub struct UnknownItype(pub String);

impl FromStr for Itype {
    type Err = UnknownItype;

    /// Case-insensitive, surrounding whitespace ignored.
    fn from_str(text: &str) -> Result<Self, Self::Err> {
        let wanted = text.trim();
        Itype::ALL
            .into_iter()
            .find(|itype| itype.as_str().eq_ignore_ascii_case(wanted))
            .ok_or_else(|| UnknownItype(text.to_owned()))
    }
}

/// The type of an indicator, detected in CIF's order: url, md5/sha1/sha256/sha512, ipv4, cidr,
/// ipv6, email, fqdn, asn. `None` when nothing fits.
///
/// Meant for normalised text, but raw text works too (`EXAMPLE.com.` is an fqdn): every type's
/// recogniser accepts the spellings its normaliser rewrites. Reserved addresses are still
/// detected as addresses; refusing them is validation's job, not detection's.
pub fn detect(normalised: &str) -> Option<Itype> {
    normalise::classify(normalised).map(|(itype, _)| itype)
}

#[cfg(test)]
mod tests {
    use super::*;
    use proptest::prelude::*;

    fn check(input: &str, expected: Option<Itype>) {
        assert_eq!(detect(input), expected, "detecting {input:?}");
    }

    #[test]
    fn detects_each_type() {
        use Itype::*;
        check("http://example.com/path", Some(Url));
        check("https://Example.COM", Some(Url));
        check("ftp://203.0.114.1/x", Some(Url));
        check("http://[2606:4700::1111]:8080/x", Some(Url));
        check("d41d8cd98f00b204e9800998ecf8427e", Some(Md5));
        check("D41D8CD98F00B204E9800998ECF8427E", Some(Md5));
        check("da39a3ee5e6b4b0d3255bfef95601890afd80709", Some(Sha1));
        check(
            "e3b0c44298fc1c149afbf4c8996fb92427ae41e4649b934ca495991b7852b855",
            Some(Sha256),
        );
        check(&"ab".repeat(64), Some(Sha512));
        check("8.8.8.8", Some(Ipv4));
        check("010.001.002.003", Some(Ipv4));
        check("10.0.0.1", Some(Ipv4));
        check("1.1.1.0/24", Some(Cidr));
        check("2606:4700::/32", Some(Cidr));
        check("2606:4700:0:0::1111", Some(Ipv6));
        check("::1", Some(Ipv6));
        check("user@Example.com", Some(Email));
        check("example.com", Some(Fqdn));
        check("example.com.", Some(Fqdn));
        check("EXAMPLE.com", Some(Fqdn));
        check("xn--bcher-kva.example", Some(Fqdn));
        check("_dmarc.example.com", Some(Fqdn));
        check("AS13335", Some(Asn));
        check("as13335", Some(Asn));
        check("13335", Some(Asn));
        check("AS1.10", Some(Asn));
    }

    #[test]
    fn refuses_what_is_nothing() {
        check("", None);
        check("   ", None);
        check("1.2.3", None);
        check("999.1.1.1", None);
        check("1.2.3.4.5", None);
        check("localhost", None);
        check("example", None);
        check("example..com", None);
        check("exa mple.com", None);
        check("http://", None);
        check("http:///path", None);
        check("http://local host/", None);
        check("http://localhost/", None);
        check("example.com/path", None);
        check("@example.com", None);
        check("user@", None);
        check("a@b@example.com", None);
        check("1.2.3.4/33", None);
        check("1.2.3.4/", None);
        check("2606:4700::/129", None);
        check("d41d8cd98f00b204e9800998ecf8427", None); // 31 hex digits
        check("AS", None);
        check("AS99999999999", None);
        check("ASx", None);
        check("bücher.example", None);
        check("*.example.com", None);
    }

    #[test]
    fn parses_names_case_insensitively() {
        for itype in Itype::ALL {
            assert_eq!(itype.as_str().parse::<Itype>(), Ok(itype));
            assert_eq!(itype.as_str().to_uppercase().parse::<Itype>(), Ok(itype));
            assert_eq!(itype.to_string(), itype.as_str());
        }
        let error = "domain".parse::<Itype>().unwrap_err().to_string();
        assert!(
            error.contains("`domain`") && error.contains("fqdn, asn"),
            "{error}"
        );
    }

    proptest! {
        #[test]
        fn detection_never_panics(text in "\\PC{0,200}") {
            let _ = detect(&text);
        }

        #[test]
        fn detection_is_stable_under_normalisation(text in "[a-zA-Z0-9.:/@_-]{1,40}") {
            if let Some((itype, normalised)) = normalise::classify(&text) {
                prop_assert_eq!(normalise::classify(&normalised), Some((itype, normalised.clone())));
            }
        }
    }
}
