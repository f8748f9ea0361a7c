//! [`origin_allowed`] and [`same_origin`]: the `Origin` checks for browser credentials (the
//! page's stream JWT), pure so the gateway and the web API share one rule.

/// Whether a request with this `Origin` header may proceed, given the operator's allowlist of
/// origins (`https://app.example.com`, `http://localhost:8080`).
///
/// - `Some(origin)`: allowed only if it equals an allowlist entry in scheme, host and port
///   exactly (scheme and host compared case-insensitively, a missing port meaning the
///   scheme's default, so `https://a.example` = `https://a.example:443`). No wildcards, no
///   subdomains, no path. `null` and anything that is not `http(s)://host[:port]` are refused.
///   An allowlist entry may end in one `/`; malformed entries match nothing.
/// - `None`: allowed. Browsers always send `Origin` on WebSocket handshakes and cross-origin
///   requests, so a request without one comes from a non-browser client (curl, a server), which
///   could forge any `Origin` anyway and must prove itself with its own credential; the check
///   exists to stop *other sites' pages* from riding on a browser's credentials.
///
/// An empty allowlist therefore allows non-browser clients only.
pub fn origin_allowed(origin: Option<&str>, allowlist: &[String]) -> bool {
    let Some(origin) = origin else {
        return true;
    };
    let Some(origin) = parse_origin(origin) else {
        return false;
    };
    allowlist.iter().any(|entry| {
        let entry = entry.strip_suffix('/').unwrap_or(entry);
        parse_origin(entry).as_ref() == Some(&origin)
    })
}

/// Whether `origin` is the server's own, given the request's `Host` header: the same host and
/// port (a `Host` without a port means the origin scheme's default). Schemes are not compared:
/// behind a TLS-terminating proxy the server cannot see the one the browser used.
pub fn same_origin(origin: &str, host: &str) -> bool {
    let Some((scheme, origin_host, origin_port)) = parse_origin(origin) else {
        return false;
    };
    match parse_origin(&format!("{scheme}://{host}")) {
        Some((_, host, port)) => host == origin_host && port == origin_port,
        None => false,
    }
}

/// `(scheme, host, port)` of a serialized origin, lower-cased, with the default port filled in.
fn parse_origin(text: &str) -> Option<(String, String, u16)> {
    let (scheme, rest) = text.split_once("://")?;
    let scheme = scheme.to_ascii_lowercase();
    let default_port = match scheme.as_str() {
        "http" => 80,
        "https" => 443,
        _ => return None,
    };
    if rest.is_empty()
        || rest
            .bytes()
            .any(|byte| !byte.is_ascii_graphic() || b"/?#@\\".contains(&byte))
    {
        return None;
    }
    // An IPv6 literal keeps its brackets; the port follows the last `]` or `:`.
    let (host, port) = match rest.strip_prefix('[') {
        Some(inner) => {
            let (address, after) = inner.split_once(']')?;
            let host = format!("[{address}]");
            match after {
                "" => (host, None),
                _ => (host, Some(after.strip_prefix(':')?)),
            }
        }
        None => match rest.split_once(':') {
            Some((host, port)) => (host.to_owned(), Some(port)),
            None => (rest.to_owned(), None),
        },
    };
    if host.is_empty() || host == "[]" {
        return None;
    }
    let port = match port {
        None => default_port,
        Some(digits) if !digits.is_empty() && digits.bytes().all(|b| b.is_ascii_digit()) => {
            digits.parse().ok()?
        }
        Some(_) => return None,
    };
    Some((scheme, host.to_ascii_lowercase(), port))
}

#[cfg(test)]
mod tests {
    use super::*;

    fn check(origin: Option<&str>, allowlist: &[&str], expected: bool) {
        let allowlist: Vec<String> = allowlist.iter().map(|entry| entry.to_string()).collect();
        assert_eq!(
            origin_allowed(origin, &allowlist),
            expected,
            "{origin:?} against {allowlist:?}"
        );
    }

    #[test]
    fn exact_scheme_host_and_port() {
        let list = &["https://app.example.com", "http://localhost:8080"];
        check(Some("https://app.example.com"), list, true);
        check(Some("HTTPS://App.Example.com"), list, true);
        check(Some("https://app.example.com:443"), list, true);
        check(Some("http://localhost:8080"), list, true);
        check(Some("http://app.example.com"), list, false);
        check(Some("https://app.example.com:8443"), list, false);
        check(Some("https://evil.app.example.com"), list, false);
        check(Some("https://app.example.com.evil.net"), list, false);
        check(Some("http://localhost"), list, false);
        check(Some("http://localhost:8081"), list, false);
        check(Some("https://localhost:8080"), list, false);
    }

    #[test]
    fn malformed_and_null_origins_are_refused() {
        let list = &["https://app.example.com"];
        for origin in [
            "null",
            "",
            "app.example.com",
            "https://",
            "https://app.example.com/",
            "https://app.example.com/path",
            "https://user@app.example.com",
            "https://app.example.com:",
            "https://app.example.com:99999",
            "https://app.example.com:+443",
            "ftp://app.example.com",
            "https://app.example.com\t",
        ] {
            check(Some(origin), list, false);
        }
    }

    #[test]
    fn missing_origin_means_a_non_browser_client() {
        check(None, &[], true);
        check(None, &["https://app.example.com"], true);
        check(Some("https://app.example.com"), &[], false);
    }

    #[test]
    fn same_origin_compares_host_and_port() {
        assert!(same_origin("http://127.0.0.1:8080", "127.0.0.1:8080"));
        assert!(same_origin(
            "https://Sluice.example.com",
            "sluice.example.com"
        ));
        assert!(same_origin(
            "https://sluice.example.com",
            "sluice.example.com:443"
        ));
        assert!(same_origin("http://[::1]:8080", "[::1]:8080"));
        assert!(!same_origin("http://127.0.0.1:8081", "127.0.0.1:8080"));
        assert!(!same_origin("https://evil.example", "sluice.example.com"));
        assert!(!same_origin(
            "http://sluice.example.com",
            "sluice.example.com:8080"
        ));
        assert!(!same_origin("null", "sluice.example.com"));
        assert!(!same_origin(
            "https://sluice.example.com",
            "sluice.example.com/x"
        ));
        assert!(!same_origin("https://sluice.example.com", ""));
    }

    #[test]
    fn allowlist_entries_are_parsed_the_same_way() {
        check(
            Some("https://app.example.com"),
            &["https://app.example.com/"],
            true,
        );
        check(
            Some("https://app.example.com"),
            &["https://APP.example.com:443"],
            true,
        );
        check(Some("http://[::1]:8080"), &["http://[::1]:8080"], true);
        check(Some("http://[::1]"), &["http://[::1]:80"], true);
        check(Some("http://[::1]:8080"), &["http://[::1]"], false);
        check(Some("https://app.example.com"), &["*"], false);
        check(
            Some("https://app.example.com"),
            &["https://*.example.com"],
            false,
        );
        check(Some("https://app.example.com"), &["app.example.com"], false);
    }
}
