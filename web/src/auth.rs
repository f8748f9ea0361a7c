//! Who is calling: the [`Caller`] and [`AdminCaller`] extractors.
//!
//! Today the only credential is an API token in `Authorization`. Browser sessions (issue 6)
//! will be tried in [`Caller`]'s extractor beside it, so handlers never change: they ask for a
//! `Caller` and get an account, whatever proved it.

use axum::extract::FromRequestParts;
use axum::http::request::Parts;
use axum::http::{header, HeaderMap};
use billing::{AuthError, Principal, Scope};
use domain::PlanLimits;

use crate::error::ApiError;
use crate::AppState;

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
    pub plan: PlanLimits,
    /// What the credential may do.
    pub scope: Scope,
}

impl From<Principal> for Caller {
    fn from(principal: Principal) -> Self {
        Caller {
            account_id: principal.account_id,
            account: principal.account,
            plan: principal.plan,
            scope: principal.scope,
        }
    }
}

impl FromRequestParts<AppState> for Caller {
    type Rejection = ApiError;

    async fn from_request_parts(parts: &mut Parts, state: &AppState) -> Result<Self, ApiError> {
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
