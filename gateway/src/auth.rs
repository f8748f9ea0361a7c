//! Credentials on requests: where a token may be presented, and turning it into a `Principal`.

use std::borrow::Cow;

use axum::http::{header, HeaderMap};
use base64::Engine;
use billing::{AuthError, Principal, Scope};

use crate::error::ApiError;
use crate::AppState;

/// The token presented with a request, from (in order) `Authorization: Bearer <t>`,
/// `Authorization: Token token=<t>` (csirtg), `Authorization: Basic` with the token as the
/// password (TAXII clients; the user name is ignored, or is the token when the password is
/// empty), a bare `Authorization: <t>` (CIF), or the `access_token` query parameter (browsers'
/// `EventSource` cannot set headers).
pub fn presented_token<'a>(
    headers: &'a HeaderMap,
    query_token: Option<&'a str>,
) -> Option<Cow<'a, str>> {
    let from_header = headers
        .get(header::AUTHORIZATION)
        .and_then(|value| value.to_str().ok())
        .and_then(parse_authorization);
    from_header
        .or(query_token.map(Cow::Borrowed))
        .filter(|token| !token.is_empty())
}

fn parse_authorization(value: &str) -> Option<Cow<'_, str>> {
    let value = value.trim();
    let (scheme, rest) = match value.split_once(char::is_whitespace) {
        Some((scheme, rest)) => (scheme, rest.trim()),
        None => return Some(Cow::Borrowed(value)),
    };
    if scheme.eq_ignore_ascii_case("bearer") {
        return Some(Cow::Borrowed(rest));
    }
    if scheme.eq_ignore_ascii_case("token") {
        let token = match rest.split_once('=') {
            Some((key, token)) if key.trim().eq_ignore_ascii_case("token") => token.trim(),
            _ => rest,
        };
        return Some(Cow::Borrowed(token.trim_matches('"')));
    }
    if scheme.eq_ignore_ascii_case("basic") {
        return basic_password(rest).map(Cow::Owned);
    }
    None
}

/// The token in HTTP Basic credentials: the password, or the user name when there is none.
fn basic_password(encoded: &str) -> Option<String> {
    // Tokens are short; anything longer is not one of ours (and is not decoded).
    if encoded.len() > 1024 {
        return None;
    }
    let decoded = base64::engine::general_purpose::STANDARD
        .decode(encoded)
        .ok()?;
    let decoded = String::from_utf8(decoded).ok()?;
    let (user, password) = decoded.split_once(':').unwrap_or((&decoded, ""));
    let token = if password.is_empty() { user } else { password };
    Some(token.to_owned())
}

/// Authenticates the request's token and checks it carries `needed`.
pub async fn authenticate(
    state: &AppState,
    headers: &HeaderMap,
    query_token: Option<&str>,
    needed: Scope,
) -> Result<Principal, ApiError> {
    let token = presented_token(headers, query_token).ok_or(ApiError::Unauthorized)?;
    let token = token.as_ref();
    let principal = if looks_like_jwt(token) {
        check_origin(state, headers)?;
        jwt_principal(state, token).await?
    } else if let Some(principal) = state.tokens.get(token) {
        state.metrics.token_lookup("cache");
        principal
    } else if state.tokens.refused(token) {
        // Refused by the database a moment ago (token_cache.rs): not asked again.
        state.metrics.token_lookup("negative_cache");
        return Err(ApiError::Unauthorized);
    } else {
        let generation = state.tokens.generation();
        let looked_up = state.store.authenticate(token).await;
        if !matches!(looked_up, Err(AuthError::Malformed)) {
            state.metrics.token_lookup("database");
        }
        let principal = looked_up.map_err(|error| match error {
            AuthError::Db(error) => database_unavailable(state, &error),
            AuthError::Unknown | AuthError::Revoked | AuthError::Expired => {
                state.tokens.insert_refused(token);
                ApiError::Unauthorized
            }
            AuthError::Malformed => ApiError::Unauthorized,
        })?;
        state.tokens.insert(token, &principal, generation);
        principal
    };
    // A valid credential: the connection no longer counts against the pending caps.
    crate::server::authenticated();
    if !principal.scope.allows(needed) {
        return Err(ApiError::Forbidden(format!(
            "this token has scope `{}`; this endpoint needs `{}` (create one with `sluice tokens create --account {} --scope {}`)",
            principal.scope.as_str(),
            needed.as_str(),
            principal.account,
            needed.as_str()
        )));
    }
    Ok(principal)
}

/// API tokens start with `slc_`; a browser's stream token is a JWT (three dot-separated parts).
fn looks_like_jwt(token: &str) -> bool {
    !token.starts_with(billing::TOKEN_PREFIX) && token.matches('.').count() == 2
}

/// A stream JWT is a browser session's credential: a page of another site must not use one
/// it got hold of. A request with an `Origin` must come from this node's own origin or one in
/// `Config::allowed_origins` (403 otherwise); without one it is not a browser (see
/// `billing::origin::origin_allowed`).
fn check_origin(state: &AppState, headers: &HeaderMap) -> Result<(), ApiError> {
    let Some(origin) = headers.get(header::ORIGIN) else {
        return Ok(());
    };
    let origin = origin.to_str().unwrap_or("null");
    let host = headers
        .get(header::HOST)
        .and_then(|host| host.to_str().ok())
        .unwrap_or_default();
    if billing::origin::same_origin(origin, host)
        || billing::origin::origin_allowed(Some(origin), &state.config.allowed_origins)
    {
        return Ok(());
    }
    tracing::info!(origin = ?origin, "refused a stream JWT from another site's page");
    Err(ApiError::Forbidden(
        "this page's origin may not open the stream with a browser session; the operator can \
         allow it with --allowed-origin"
            .into(),
    ))
}

/// A browser's short-lived stream JWT (issued by the web role to a signed-in session): read
/// scope, the account's current plan, and an expiry the stream enforces (4001).
async fn jwt_principal(state: &AppState, token: &str) -> Result<Principal, ApiError> {
    let key = state
        .config
        .stream_jwt_key
        .as_ref()
        .ok_or(ApiError::Unauthorized)?;
    let now = chrono::Utc::now().timestamp().max(0) as u64;
    let claims =
        billing::stream_jwt::verify(&key.0, token, now).map_err(|_| ApiError::Unauthorized)?;
    let account = state
        .store
        .account(&claims.acct)
        .await
        .map_err(|error| database_unavailable(state, &anyhow::anyhow!("{error}")))?
        .filter(|account| account.id.to_string() == claims.sub)
        .ok_or(ApiError::Unauthorized)?;
    let plan = state
        .store
        .plan(&account.plan)
        .await
        .map_err(|error| database_unavailable(state, &anyhow::anyhow!("{error}")))?
        .ok_or(ApiError::Unauthorized)?;
    Ok(Principal {
        account_id: account.id,
        account: account.name,
        plan,
        scope: Scope::Read,
        token_id: format!("jwt:{}", claims.jti),
        expires_at: chrono::DateTime::from_timestamp(claims.exp as i64, 0),
    })
}

fn database_unavailable(state: &AppState, error: &anyhow::Error) -> ApiError {
    state.metrics.backend_error("database");
    tracing::warn!(error = format!("{error:#}"), "credential lookup failed");
    ApiError::Unavailable("the account database is unavailable; retry shortly".into())
}

#[cfg(test)]
mod tests {
    use super::*;

    fn check(authorization: &str, expected: Option<&str>) {
        assert_eq!(
            parse_authorization(authorization).as_deref(),
            expected,
            "{authorization:?}"
        );
    }

    #[test]
    fn accepts_every_documented_form() {
        check("Bearer slc_abc", Some("slc_abc"));
        check("bearer   slc_abc ", Some("slc_abc"));
        check("Token token=slc_abc", Some("slc_abc"));
        check("token token=\"slc_abc\"", Some("slc_abc"));
        check("TOKEN TOKEN = slc_abc", Some("slc_abc"));
        check("slc_abc", Some("slc_abc"));
        // user:pass, taxii:slc_abc, slc_abc: (the token as the user name), and not Base64.
        check("Basic dXNlcjpwYXNz", Some("pass"));
        check("basic dGF4aWk6c2xjX2FiYw==", Some("slc_abc"));
        check("Basic c2xjX2FiYzo=", Some("slc_abc"));
        check("Basic !!!", None);
    }

    #[test]
    fn header_wins_over_query() {
        let mut headers = HeaderMap::new();
        headers.insert(header::AUTHORIZATION, "Bearer a".parse().unwrap());
        assert_eq!(presented_token(&headers, Some("b")).as_deref(), Some("a"));
        assert_eq!(
            presented_token(&HeaderMap::new(), Some("b")).as_deref(),
            Some("b")
        );
        assert_eq!(presented_token(&HeaderMap::new(), Some("")), None);
    }
}
