//! Who is calling: the [`Caller`], [`AdminCaller`] and [`SessionCaller`] extractors.
//!
//! Two credentials: an API token in `Authorization`, or the browser's session cookie
//! ([`SESSION_COOKIE`]). Handlers ask for a `Caller` and get an account, whatever proved it.
//!
//! CSRF: a browser attaches the cookie to any request to this site, including ones another
//! site's page triggers, so every state-changing request (any method but GET, HEAD, OPTIONS)
//! authenticated by the cookie must also carry [`CSRF_HEADER`] equal to the session's CSRF
//! token, which only a page of this origin can read. `SameSite=Lax` (other sites' pages send
//! no cookie with their POSTs) is a second line, not the only one; `Lax` rather than `Strict`
//! so that arriving from another site by a link (the payment provider's return, an email)
//! finds the user still signed in, which only ever means GETs, and GETs change nothing. API-token requests need no CSRF token: a browser never adds `Authorization`
//! on its own, so a cross-site request cannot carry one.

use axum::extract::FromRequestParts;
use axum::http::request::Parts;
use axum::http::{header, HeaderMap, Method};
use billing::{AuthError, Principal, Scope, SessionInfo, SessionSecret};
use domain::Plan;

use crate::error::{ApiError, CSRF_MESSAGE};
use crate::AppState;

/// Name of the session cookie (`HttpOnly; SameSite=Lax; Path=/`, `Secure` unless
/// `Config::insecure_cookies`).
pub const SESSION_COOKIE: &str = "sluice_session";
/// The header carrying the session's CSRF token on state-changing cookie requests.
pub const CSRF_HEADER: &str = "x-csrf-token";

/// The value of the [`SESSION_COOKIE`] cookie among the request's `Cookie` headers, if any.
pub fn session_cookie(headers: &HeaderMap) -> Option<&str> {
    headers
        .get_all(header::COOKIE)
        .iter()
        .filter_map(|value| value.to_str().ok())
        .flat_map(|value| value.split(';'))
        .filter_map(|pair| pair.trim().split_once('='))
        .find(|(name, _)| *name == SESSION_COOKIE)
        .map(|(_, value)| value.trim())
}

/// Whether `method` changes state, so a cookie-authenticated request needs a CSRF token.
fn changes_state(method: &Method) -> bool {
    !matches!(*method, Method::GET | Method::HEAD | Method::OPTIONS)
}

/// Compares without an early exit, so the time taken does not reveal how much of the
/// presented token was right.
fn constant_time_eq(a: &[u8], b: &[u8]) -> bool {
    a.len() == b.len() && a.iter().zip(b).fold(0u8, |acc, (x, y)| acc | (x ^ y)) == 0
}

/// Refuses a state-changing request whose [`CSRF_HEADER`] is missing or not `expected` (403).
fn check_csrf(parts: &Parts, expected: &str) -> Result<(), ApiError> {
    if !changes_state(&parts.method) {
        return Ok(());
    }
    let presented = parts
        .headers
        .get(CSRF_HEADER)
        .map(|value| value.as_bytes())
        .unwrap_or_default();
    if constant_time_eq(presented, expected.as_bytes()) {
        Ok(())
    } else {
        Err(ApiError::Forbidden(CSRF_MESSAGE.into()))
    }
}

/// The live session named by the request's cookie: `None` without a cookie, with a malformed
/// one, or when the session ended. No CSRF check (see [`SessionCaller`] for requests that
/// change state).
pub(crate) async fn live_session(
    state: &AppState,
    headers: &HeaderMap,
) -> Result<Option<(SessionInfo, SessionSecret)>, ApiError> {
    let Some(secret) = session_cookie(headers).and_then(SessionSecret::parse) else {
        return Ok(None);
    };
    let session = state.store.session(secret.expose()).await?;
    Ok(session.map(|session| (session, secret)))
}

/// A caller signed in through the browser: the session cookie named a live session, and for
/// state-changing methods [`CSRF_HEADER`] matched. Without a live session: 401
/// ([`ApiError::NoSession`]); with a wrong or missing CSRF token: 403.
#[derive(Debug, Clone, PartialEq)]
pub struct SessionCaller {
    /// The session (user, account, plan, CSRF token, expiry).
    pub session: SessionInfo,
    /// The cookie's secret, to end the session on sign-out.
    pub secret: SessionSecret,
}

impl SessionCaller {
    /// The live session behind the request's cookie, with its CSRF check; `None` without one.
    async fn from_cookie(parts: &Parts, state: &AppState) -> Result<Option<Self>, ApiError> {
        let Some((session, secret)) = live_session(state, &parts.headers).await? else {
            return Ok(None);
        };
        check_csrf(parts, &session.csrf_token)?;
        Ok(Some(SessionCaller { session, secret }))
    }
}

impl FromRequestParts<AppState> for SessionCaller {
    type Rejection = ApiError;

    async fn from_request_parts(parts: &mut Parts, state: &AppState) -> Result<Self, ApiError> {
        SessionCaller::from_cookie(parts, state)
            .await?
            .ok_or(ApiError::NoSession)
    }
}

/// The token in `Authorization: Bearer <t>` or `Authorization: Token token=<t>` (csirtg's
/// form, the value optionally quoted). Schemes are case-insensitive; anything else is `None`.
///
/// Deliberately independent of the gateway's parser: this API is for accounts and admins,
/// and does not take the stream's bare-token or query-string forms (query strings end up in
/// access logs).
pub fn bearer_token(headers: &HeaderMap) -> Option<&str> {
    let value = headers.get(header::AUTHORIZATION)?.to_str().ok()?.trim();
    let (scheme, rest) = value.split_once(char::is_whitespace)?;
    let rest = rest.trim();
    let token = if scheme.eq_ignore_ascii_case("bearer") {
        rest
    } else if scheme.eq_ignore_ascii_case("token") {
        let (key, token) = rest.split_once('=')?;
        if !key.trim().eq_ignore_ascii_case("token") {
            return None;
        }
        token.trim().trim_matches('"')
    } else {
        return None;
    };
    (!token.is_empty()).then_some(token)
}

/// An authenticated account (any scope).
#[derive(Debug, Clone, PartialEq)]
pub struct Caller {
    /// Database id of the account.
    pub account_id: i64,
    /// Account name.
    pub account: String,
    /// The account's current plan (resolved at authentication).
    pub plan: Plan,
    /// What the credential may do.
    pub scope: Scope,
    /// Whether a browser session (rather than an API token) proved it: the signed-in user
    /// acting for the account.
    pub session: bool,
}

impl From<Principal> for Caller {
    fn from(principal: Principal) -> Self {
        Caller {
            account_id: principal.account_id,
            account: principal.account,
            plan: principal.plan,
            scope: principal.scope,
            session: false,
        }
    }
}

/// A session acts for its account with scope `read`: the admin API stays API-token only.
impl From<SessionInfo> for Caller {
    fn from(session: SessionInfo) -> Self {
        Caller {
            account_id: session.account_id,
            account: session.account,
            plan: session.plan,
            scope: Scope::Read,
            session: true,
        }
    }
}

/// An `Authorization` header wins (and needs no CSRF token); without one, the session cookie
/// is tried (with the CSRF check for state-changing methods). Neither: 401.
impl FromRequestParts<AppState> for Caller {
    type Rejection = ApiError;

    async fn from_request_parts(parts: &mut Parts, state: &AppState) -> Result<Self, ApiError> {
        if parts.headers.get(header::AUTHORIZATION).is_none() {
            return match SessionCaller::from_cookie(parts, state).await {
                Ok(Some(caller)) => Ok(Caller::from(caller.session)),
                Ok(None) => Err(ApiError::Unauthorized),
                Err(error) => Err(error),
            };
        }
        let token = bearer_token(&parts.headers).ok_or(ApiError::Unauthorized)?;
        let principal = state
            .store
            .authenticate(token)
            .await
            .map_err(|error| match error {
                AuthError::Db(error) => ApiError::Database(error),
                // Every other refusal gets the same 401, whichever part was wrong.
                AuthError::Malformed
                | AuthError::Unknown
                | AuthError::Revoked
                | AuthError::Expired => ApiError::Unauthorized,
            })?;
        Ok(Caller::from(principal))
    }
}

/// An authenticated caller holding the `admin` scope; anyone else gets 403.
#[derive(Debug, Clone, PartialEq)]
pub struct AdminCaller(pub Caller);

impl FromRequestParts<AppState> for AdminCaller {
    type Rejection = ApiError;

    async fn from_request_parts(parts: &mut Parts, state: &AppState) -> Result<Self, ApiError> {
        let caller = Caller::from_request_parts(parts, state).await?;
        if !caller.scope.allows(Scope::Admin) {
            return Err(ApiError::Forbidden(format!(
                "this token has scope `{}`; the admin API needs an `admin` token \
                 (create one with `sluice tokens create --account admin --scope admin`)",
                caller.scope
            )));
        }
        Ok(AdminCaller(caller))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn check(authorization: Option<&str>, expected: Option<&str>) {
        let mut headers = HeaderMap::new();
        if let Some(value) = authorization {
            headers.insert(header::AUTHORIZATION, value.parse().unwrap());
        }
        assert_eq!(bearer_token(&headers), expected, "{authorization:?}");
    }

    #[test]
    fn accepts_bearer_and_token_forms() {
        check(Some("Bearer slc_abc"), Some("slc_abc"));
        check(Some("bearer   slc_abc "), Some("slc_abc"));
        check(Some("BEARER\tslc_abc"), Some("slc_abc"));
        check(Some("Token token=slc_abc"), Some("slc_abc"));
        check(Some("token token=\"slc_abc\""), Some("slc_abc"));
        check(Some("Token TOKEN = slc_abc"), Some("slc_abc"));
    }

    fn cookie(values: &[&str]) -> Option<String> {
        let mut headers = HeaderMap::new();
        for value in values {
            headers.append(header::COOKIE, value.parse().unwrap());
        }
        session_cookie(&headers).map(str::to_owned)
    }

    #[test]
    fn finds_the_session_cookie() {
        assert_eq!(cookie(&[]), None);
        assert_eq!(cookie(&["sluice_session=abc"]).as_deref(), Some("abc"));
        assert_eq!(
            cookie(&["theme=dark; sluice_session=abc; lang=en"]).as_deref(),
            Some("abc")
        );
        assert_eq!(
            cookie(&["theme=dark", "sluice_session=abc"]).as_deref(),
            Some("abc")
        );
        assert_eq!(cookie(&["xsluice_session=abc; sluice_sessionx=d"]), None);
    }

    #[test]
    fn csrf_applies_to_state_changing_methods_only() {
        for method in [Method::GET, Method::HEAD, Method::OPTIONS] {
            assert!(!changes_state(&method));
        }
        for method in [Method::POST, Method::PUT, Method::PATCH, Method::DELETE] {
            assert!(changes_state(&method));
        }
        assert!(constant_time_eq(b"abc", b"abc"));
        assert!(!constant_time_eq(b"abc", b"abd"));
        assert!(!constant_time_eq(b"abc", b"abcd"));
        assert!(!constant_time_eq(b"", b"abc"));
    }

    #[test]
    fn refuses_everything_else() {
        check(None, None);
        check(Some(""), None);
        check(Some("slc_abc"), None);
        check(Some("Bearer"), None);
        check(Some("Bearer   "), None);
        check(Some("Basic dXNlcjpwYXNz"), None);
        check(Some("Token slc_abc"), None);
        check(Some("Token key=slc_abc"), None);
        check(Some("Token token="), None);
    }
}
