//! Whitelist subtraction for feeds (docs/protocol.md §8.2; CIF's feed mode): indicators tagged
//! `whitelist` remove what they cover from a feed — an address or network covers addresses and
//! networks inside it, a domain covers itself and every name under it (and URLs on those hosts).

use ipnet::IpNet;

use crate::{Indicator, Itype};

/// The tag that makes an indicator a whitelist entry.
pub const WHITELIST_TAG: &str = "whitelist";

/// What a feed's whitelist entries cover.
#[derive(Debug, Default)]
pub struct Whitelist {
    networks: Vec<IpNet>,
    /// Lowercase domain names.
    domains: Vec<String>,
}

impl Whitelist {
    pub fn is_entry(indicator: &Indicator) -> bool {
        indicator.tags().iter().any(|tag| tag == WHITELIST_TAG)
    }

    pub fn add(&mut self, indicator: &Indicator) {
        match indicator.itype() {
            Itype::Ipv4 | Itype::Ipv6 | Itype::Cidr => self.networks.extend(indicator.network()),
            Itype::Fqdn => self.domains.push(indicator.indicator().to_owned()),
            Itype::Url => self.domains.extend(url_host(indicator.indicator())),
            _ => {}
        }
    }

    pub fn is_empty(&self) -> bool {
        self.networks.is_empty() && self.domains.is_empty()
    }

    /// Whether the whitelist covers `indicator`.
    pub fn covers(&self, indicator: &Indicator) -> bool {
        match indicator.itype() {
            Itype::Ipv4 | Itype::Ipv6 | Itype::Cidr => indicator
                .network()
                .is_some_and(|net| self.networks.iter().any(|allowed| allowed.contains(&net))),
            Itype::Fqdn => self.covers_domain(indicator.indicator()),
            Itype::Url => {
                url_host(indicator.indicator()).is_some_and(|host| self.covers_domain(&host))
            }
            Itype::Email => indicator
                .indicator()
                .rsplit_once('@')
                .is_some_and(|(_, domain)| self.covers_domain(domain)),
            _ => false,
        }
    }

    fn covers_domain(&self, name: &str) -> bool {
        self.domains.iter().any(|allowed| {
            name == allowed
                || name
                    .strip_suffix(allowed.as_str())
                    .is_some_and(|prefix| prefix.ends_with('.'))
        })
    }
}

/// The host of a normalised URL (`scheme://host[:port]/…`), lowercase.
fn url_host(url: &str) -> Option<String> {
    let rest = url.split_once("://").map_or(url, |(_, rest)| rest);
    let authority = rest.split(['/', '?', '#']).next()?;
    let host = authority
        .rsplit_once('@')
        .map_or(authority, |(_, host)| host);
    let host = host.split(':').next()?;
    Some(host.to_ascii_lowercase()).filter(|host| !host.is_empty())
}

#[cfg(test)]
mod tests {
    use serde_json::json;

    use super::*;
    use crate::Provenance;

    fn indicator(text: &str) -> Indicator {
        Indicator::from_json(
            json!({"indicator": text, "provider": "p"}),
            Provenance::Trusted,
            chrono::Utc::now(),
        )
        .unwrap()
    }

    #[test]
    fn networks_cover_what_is_inside_them() {
        let mut whitelist = Whitelist::default();
        whitelist.add(&indicator("8.8.8.0/24"));
        whitelist.add(&indicator("2001:4860::/32"));
        assert!(whitelist.covers(&indicator("8.8.8.8")));
        assert!(whitelist.covers(&indicator("8.8.8.0/25")));
        assert!(
            !whitelist.covers(&indicator("8.8.0.0/16")),
            "wider than the whitelist"
        );
        assert!(!whitelist.covers(&indicator("8.8.9.1")));
        assert!(whitelist.covers(&indicator("2001:4860:4860::8888")));
    }

    #[test]
    fn domains_cover_themselves_and_names_under_them() {
        let mut whitelist = Whitelist::default();
        whitelist.add(&indicator("example.com"));
        assert!(whitelist.covers(&indicator("example.com")));
        assert!(whitelist.covers(&indicator("www.example.com")));
        assert!(whitelist.covers(&indicator("https://cdn.example.com/x.js")));
        assert!(whitelist.covers(&indicator("abuse@mail.example.com")));
        assert!(
            !whitelist.covers(&indicator("badexample.com")),
            "a suffix is not a parent"
        );
        assert!(!whitelist.covers(&indicator("example.com.evil.net")));
        assert!(!whitelist.covers(&indicator("8.8.8.8")));
    }
}
