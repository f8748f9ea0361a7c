//! Outbound webhook endpoints (docs/protocol.md §13): which URLs an account may register and
//! which addresses a delivery may connect to, and the body formats. Pure: the gateway resolves
//! names and connects; this says yes or no.
//!
//! The rule guards against server-side request forgery. An endpoint is an account's URL that
//! the server fetches, so without it anyone with a paid plan could make a node POST to its own
//! admin port, to the cloud metadata service (`169.254.169.254`), or into the operator's private
//! network. So: `https://` only; no address in a special-purpose range (private, loopback,
//! link-local, CGNAT, documentation, multicast…: `indicator::reserved`), checked at registration
//! for literal addresses and at every connection for resolved names (a name may resolve to
//! something else tomorrow). An operator flag (`--webhook-allow-private`) lifts the address rule
//! for deployments whose receivers live inside, and lets `http://` through for loopback only, so
//! tests and a receiver on the same machine work without certificates.

use std::net::IpAddr;

use url::{Host, Url};

/// Longest endpoint URL accepted.
pub const MAX_URL_LEN: usize = 2048;

/// What an endpoint receives per batch.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum WebhookFormat {
    /// `{"webhook", "batch", "cursor", "indicators": […]}`: the indicators as the stream sends them.
    Native,
    /// Slack's incoming-webhook shape, `{"text": "…"}`: one line per indicator.
    Slack,
    /// A STIX 2.1 bundle: the indicators as the TAXII server's objects, with their providers'
    /// identities and TLP marking definitions.
    Stix,
}

impl WebhookFormat {
    /// Every format, as the API names them.
    pub const NAMES: &'static [&'static str] = &["native", "slack", "stix"];

    pub fn as_str(self) -> &'static str {
        match self {
            WebhookFormat::Native => "native",
            WebhookFormat::Slack => "slack",
            WebhookFormat::Stix => "stix",
        }
    }
}

impl std::str::FromStr for WebhookFormat {
    type Err = String;

    fn from_str(text: &str) -> Result<Self, String> {
        match text {
            "native" => Ok(WebhookFormat::Native),
            "slack" => Ok(WebhookFormat::Slack),
            "stix" => Ok(WebhookFormat::Stix),
            other => Err(format!(
                "unknown webhook format `{}`: use native, slack or stix",
                other.chars().take(32).collect::<String>()
            )),
        }
    }
}

/// Checks an endpoint URL at registration: the scheme, the host, and the address when the host
/// is one. A name is resolved only at delivery ([`address_allowed`] then applies to each address).
/// The error says what to change.
pub fn check_endpoint_url(text: &str, allow_private: bool) -> Result<Url, String> {
    if text.len() > MAX_URL_LEN {
        return Err(format!("the URL is longer than {MAX_URL_LEN} bytes"));
    }
    let url = Url::parse(text).map_err(|error| format!("`url` is not a URL ({error})"))?;
    if !url.username().is_empty() || url.password().is_some() {
        return Err(
            "the URL must not carry credentials: every delivery is signed with the endpoint's \
             secret (Sluice-Signature) instead"
                .into(),
        );
    }
    let host = url.host().ok_or_else(|| "the URL has no host".to_owned())?;
    let loopback = match &host {
        // `localhost`, `localhost.` and any `*.localhost` are this machine (RFC 6761).
        Host::Domain(name) => {
            let name = name.trim_end_matches('.').to_ascii_lowercase();
            name == "localhost" || name.ends_with(".localhost")
        }
        Host::Ipv4(address) => address.is_loopback(),
        Host::Ipv6(address) => address.is_loopback(),
    };
    match url.scheme() {
        "https" => {}
        "http" if allow_private && loopback => {}
        "http" => {
            return Err(
                "webhook endpoints must be https:// (plain http:// is only for loopback \
                 receivers, on a node started with --webhook-allow-private)"
                    .into(),
            )
        }
        other => return Err(format!("unsupported scheme `{other}`: use https://")),
    }
    let literal = match host {
        Host::Ipv4(address) => Some(IpAddr::V4(address)),
        Host::Ipv6(address) => Some(IpAddr::V6(address)),
        Host::Domain(name) if loopback && !allow_private => {
            return Err(format!(
                "`{name}` is this machine: webhooks may not call the server itself"
            ))
        }
        Host::Domain(_) => None,
    };
    if let Some(address) = literal {
        address_allowed(address, allow_private)?;
    }
    Ok(url)
}

/// Whether a delivery may connect to `address`: never to a special-purpose range unless the
/// operator allowed private addresses. IPv4-mapped IPv6 addresses are judged as the IPv4 address
/// they carry.
pub fn address_allowed(address: IpAddr, allow_private: bool) -> Result<(), String> {
    if allow_private {
        return Ok(());
    }
    let address = match address {
        IpAddr::V6(v6) => match embedded_ipv4(v6) {
            Embedded::Address(v4) => IpAddr::V4(v4),
            Embedded::Refused(what) => {
                return Err(format!(
                    "{v6} is {what}: webhooks only reach public addresses given directly"
                ))
            }
            Embedded::None => IpAddr::V6(v6),
        },
        v4 => v4,
    };
    match crate::indicator::reserved::special_address(address) {
        Some((range, what)) => Err(format!(
            "{address} is {what} ({range}): webhooks only reach public addresses (an operator \
             can allow private ones with --webhook-allow-private)"
        )),
        None => Ok(()),
    }
}

/// What an IPv6 address says about an IPv4 one it reaches.
enum Embedded {
    /// It reaches this IPv4 address (judged as that address).
    Address(std::net::Ipv4Addr),
    /// It reaches an IPv4 address through a translator whose target cannot be judged.
    Refused(&'static str),
    None,
}

/// IPv6 forms that reach an IPv4 address: IPv4-mapped (`::ffff:a.b.c.d`), NAT64's well-known
/// prefix (`64:ff9b::a.b.c.d`, RFC 6052) and 6to4 (`2002:aabb:ccdd::`, RFC 3056) carry it;
/// local-use NAT64 (`64:ff9b:1::/48`, RFC 8215) and Teredo (`2001::/32`, RFC 4380) map it in
/// ways a check here cannot follow, so they are refused.
fn embedded_ipv4(address: std::net::Ipv6Addr) -> Embedded {
    let segments = address.segments();
    let v4 = |high: u16, low: u16| {
        Embedded::Address(std::net::Ipv4Addr::from(
            (u32::from(high) << 16) | u32::from(low),
        ))
    };
    if let Some(mapped) = address.to_ipv4_mapped() {
        return Embedded::Address(mapped);
    }
    match segments {
        [0x64, 0xff9b, 0, 0, 0, 0, high, low] => v4(high, low),
        [0x64, 0xff9b, 1, ..] => Embedded::Refused("a local-use NAT64 address (RFC 8215)"),
        [0x2002, high, low, ..] => v4(high, low),
        [0x2001, 0, ..] => Embedded::Refused("a Teredo address (RFC 4380)"),
        _ => Embedded::None,
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn https_to_public_hosts_only() {
        for ok in [
            "https://hooks.example.com/sluice",
            "https://93.184.216.34:8443/x?y=1",
            "https://[2606:4700::1111]/",
            "https://[64:ff9b::5db8:d822]/",
            "https://[2002:5db8:d822::1]/",
        ] {
            assert!(check_endpoint_url(ok, false).is_ok(), "{ok}");
        }
        for (bad, why) in [
            ("http://hooks.example.com/", "https://"),
            ("ftp://hooks.example.com/", "scheme"),
            ("https://10.1.2.3/", "private-use"),
            ("https://169.254.169.254/latest/meta-data/", "link-local"),
            ("https://127.0.0.1:8080/", "loopback"),
            ("https://[::1]/", "loopback"),
            ("https://[::ffff:192.168.1.1]/", "private-use"),
            ("https://[fd00:ec2::254]/", "unique local"),
            ("https://100.64.0.1/", "CGNAT"),
            ("https://0.0.0.0/", "this network"),
            ("https://localhost/", "this machine"),
            ("https://LocalHost./", "this machine"),
            ("https://api.localhost/", "this machine"),
            ("https://[64:ff9b::a00:5]/", "private-use"),
            ("https://[64:ff9b::7f00:1]/", "loopback"),
            ("https://[64:ff9b:1::a00:5]/", "NAT64"),
            ("https://[2002:a9fe:a9fe::1]/", "link-local"),
            ("https://[2001:0:4136:e378:8000:63bf:3fff:fdd2]/", "Teredo"),
            ("https://user:pw@hooks.example.com/", "credentials"),
            ("not a url", "not a URL"),
        ] {
            let error = check_endpoint_url(bad, false).unwrap_err();
            assert!(error.contains(why), "{bad}: {error}");
        }
        let long = format!("https://example.com/{}", "a".repeat(MAX_URL_LEN));
        assert!(check_endpoint_url(&long, false)
            .unwrap_err()
            .contains("longer"));
    }

    #[test]
    fn the_operator_flag_allows_private_and_loopback_http() {
        for ok in [
            "http://127.0.0.1:9999/hook",
            "http://localhost:9999/hook",
            "https://10.1.2.3/",
        ] {
            assert!(check_endpoint_url(ok, true).is_ok(), "{ok}");
        }
        // Plain http stays loopback-only even then: it would carry the batch in clear.
        assert!(check_endpoint_url("http://10.1.2.3/", true)
            .unwrap_err()
            .contains("https://"));
        assert!(address_allowed("10.0.0.1".parse().unwrap(), true).is_ok());
        assert!(address_allowed("10.0.0.1".parse().unwrap(), false).is_err());
        assert!(address_allowed("::ffff:127.0.0.1".parse().unwrap(), false).is_err());
        assert!(address_allowed("93.184.216.34".parse().unwrap(), false).is_ok());
    }

    #[test]
    fn formats_round_trip() {
        for name in WebhookFormat::NAMES {
            assert_eq!(name.parse::<WebhookFormat>().unwrap().as_str(), *name);
        }
        assert!("xml"
            .parse::<WebhookFormat>()
            .unwrap_err()
            .contains("native"));
    }
}
