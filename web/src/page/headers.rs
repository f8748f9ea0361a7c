//! Security headers of the page's responses: the Content-Security-Policy and its companions.

use axum::extract::{Request, State};
use axum::http::{header, HeaderMap, HeaderValue};
use axum::middleware::Next;
use axum::response::Response;

/// The page's Content-Security-Policy: scripts, styles and images only from this origin
/// (no inline script or style, no `eval`), connections to this origin and, when the stream is
/// elsewhere (`gateway_url`), to that origin over HTTP(S) and WebSocket; no framing, no plugins,
/// forms only to this origin.
pub fn content_security_policy(gateway_url: Option<&str>) -> String {
    let mut connect = String::from("'self'");
    if let Some(origin) = gateway_url.and_then(|url| url::Url::parse(url).ok()) {
        let origin = origin.origin().ascii_serialization();
        let websocket = origin
            .replacen("https://", "wss://", 1)
            .replacen("http://", "ws://", 1);
        connect = format!("'self' {origin} {websocket}");
    }
    format!(
        "default-src 'none'; script-src 'self'; style-src 'self'; img-src 'self'; \
         connect-src {connect}; form-action 'self'; frame-ancestors 'none'; base-uri 'none'"
    )
}

/// Sets `policy` as a response's Content-Security-Policy, with its companions: no MIME
/// sniffing, no framing, referrers only within this origin. Shared by the page and `/docs`.
pub fn set_security_headers(headers: &mut HeaderMap, policy: HeaderValue) {
    headers.insert(header::CONTENT_SECURITY_POLICY, policy);
    headers.insert(
        header::X_CONTENT_TYPE_OPTIONS,
        HeaderValue::from_static("nosniff"),
    );
    headers.insert(header::X_FRAME_OPTIONS, HeaderValue::from_static("DENY"));
    headers.insert(
        header::REFERRER_POLICY,
        HeaderValue::from_static("same-origin"),
    );
}

/// Adds the security headers, with the page's policy (made once, when the router is built),
/// to every page response.
pub(super) async fn secure(
    State(policy): State<HeaderValue>,
    request: Request,
    next: Next,
) -> Response {
    let mut response = next.run(request).await;
    set_security_headers(response.headers_mut(), policy);
    response
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn policy_names_the_gateway_origin() {
        let local = content_security_policy(None);
        assert!(local.contains("script-src 'self';"), "{local}");
        assert!(!local.contains("unsafe-inline"), "{local}");
        assert!(local.contains("connect-src 'self';"), "{local}");
        let remote = content_security_policy(Some("https://stream.example.com/base/"));
        assert!(
            remote.contains(
                "connect-src 'self' https://stream.example.com wss://stream.example.com;"
            ),
            "{remote}"
        );
    }
}
