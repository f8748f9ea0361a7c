//! Browser sessions (docs/protocol.md §6.4, §6.5): `POST /v1/session/signup`,
//! `POST /v1/session/signin`, `POST /v1/session/signout`, `GET /v1/session` and
//! `POST /v1/session/stream-token`.
//!
//! Sign-up and sign-in set the session cookie and answer the session's CSRF token; every other
//! endpoint here needs the cookie (and, being a POST, the CSRF token: see `auth`).

use std::time::Duration;

use axum::extract::State;
use axum::http::{header, HeaderMap, HeaderValue, StatusCode};
use axum::response::IntoResponse;
use axum::Json;
use billing::{stream_jwt, StoreError, User};
use chrono::{DateTime, SecondsFormat, Utc};

use crate::api::{ErrorBody, SessionView, SignInRequest, SignUpRequest, StreamTokenView};
use crate::auth::{SessionCaller, SESSION_COOKIE};
use crate::error::ApiError;
use crate::extract::JsonBody;
use crate::AppState;

/// How long a browser session lasts after sign-in: 7 days.
pub const SESSION_TTL: Duration = Duration::from_secs(7 * 24 * 60 * 60);

/// Largest sign-up or sign-in body accepted (413 beyond): an address of at most 254
/// characters and a password of at most 1024 bytes fit many times over, even escaped.
pub const MAX_SESSION_BODY_BYTES: usize = 8 * 1024;

/// Refuses (400) an email address longer than [`billing::MAX_EMAIL_LEN`] characters (after
/// trimming, as the store would) or a password longer than [`billing::MAX_PASSWORD_BYTES`]
/// bytes: checked first, before the throttle remembers anything, the database is asked or a
/// password is hashed, so what an attacker sends costs no more than the body limit.
fn check_lengths(email: &str, password: &str) -> Result<(), ApiError> {
    if email.trim().chars().count() > billing::MAX_EMAIL_LEN {
        return Err(ApiError::BadRequest(format!(
            "the email address is too long: at most {} characters (RFC 5321)",
            billing::MAX_EMAIL_LEN
        )));
    }
    if password.len() > billing::MAX_PASSWORD_BYTES {
        return Err(ApiError::BadRequest(format!(
            "the password is too long: at most {} bytes",
            billing::MAX_PASSWORD_BYTES
        )));
    }
    Ok(())
}

/// Sign up.
///
/// `POST /v1/session/signup` `{email, password, account}`: creates the account (plan `free`)
/// and its user, signs in, 201.
#[utoipa::path(
    post,
    path = "/v1/session/signup",
    tag = "session",
    request_body = SignUpRequest,
    responses(
        (status = 201, description = "Signed up and in; the cookie is set.", body = SessionView,
            headers(("Set-Cookie" = String, description = "`sluice_session=…; HttpOnly; SameSite=Lax; Path=/; Max-Age=604800[; Secure]`"))),
        (status = 400, description = "The body is not the expected JSON, the email address is \
            over 254 characters, the password over 1024 bytes, or the account name breaks the \
            naming rule.", body = ErrorBody),
        (status = 409, description = "The email address or the account name is taken.",
            body = ErrorBody),
        (status = 413, description = "The body is over 8 KiB.", body = ErrorBody),
        (status = 422, description = "The email address or the password is not acceptable.",
            body = ErrorBody),
        (status = 429, description = "Too many sign-ups and sign-ins at the moment; \
            `Retry-After` says when to retry.", body = ErrorBody),
        (status = 503, description = "The account database is unavailable, or too many \
            passwords are being hashed; `Retry-After` says when to retry.", body = ErrorBody),
    ),
)]
pub(crate) async fn sign_up(
    State(state): State<AppState>,
    JsonBody(request): JsonBody<SignUpRequest>,
) -> Result<impl IntoResponse, ApiError> {
    check_lengths(&request.email, &request.password)?;
    state.throttle.sign_up()?;
    let user = match request.account.as_deref().map(str::trim) {
        Some(account) if !account.is_empty() => {
            state
                .store
                .sign_up(&request.email, &request.password, account)
                .await?
        }
        _ => sign_up_with_a_made_name(&state, &request).await?,
    };
    let (headers, view) = start_session(&state, &user).await?;
    Ok((StatusCode::CREATED, headers, Json(view)))
}

/// Sign in.
///
/// `POST /v1/session/signin` `{email, password}`: signs in, or 401 with one body whether the
/// email is unknown or the password wrong.
#[utoipa::path(
    post,
    path = "/v1/session/signin",
    tag = "session",
    request_body = SignInRequest,
    responses(
        (status = 200, description = "Signed in; the cookie is set.", body = SessionView,
            headers(("Set-Cookie" = String, description = "`sluice_session=…; HttpOnly; SameSite=Lax; Path=/; Max-Age=604800[; Secure]`"))),
        (status = 400, description = "The body is not the expected JSON, the email address is \
            over 254 characters or the password over 1024 bytes.", body = ErrorBody),
        (status = 401, description = "Wrong email or password.", body = ErrorBody),
        (status = 413, description = "The body is over 8 KiB.", body = ErrorBody),
        (status = 429, description = "Too many attempts for this email address (10 a minute \
            after a burst of 10), or for the whole process; `Retry-After` says when to retry.",
            body = ErrorBody),
        (status = 503, description = "The account database is unavailable, or too many \
            passwords are being hashed; `Retry-After` says when to retry.", body = ErrorBody),
    ),
)]
pub(crate) async fn sign_in(
    State(state): State<AppState>,
    JsonBody(request): JsonBody<SignInRequest>,
) -> Result<impl IntoResponse, ApiError> {
    check_lengths(&request.email, &request.password)?;
    state.throttle.sign_in(&request.email)?;
    let user = state
        .store
        .sign_in(&request.email, &request.password)
        .await?
        .ok_or(ApiError::SignInFailed)?;
    let (headers, view) = start_session(&state, &user).await?;
    Ok((StatusCode::OK, headers, Json(view)))
}

/// Sign out.
///
/// `POST /v1/session/signout` (cookie + CSRF): ends the session and clears the cookie, 204.
#[utoipa::path(
    post,
    path = "/v1/session/signout",
    tag = "session",
    responses(
        (status = 204, description = "Signed out; the cookie is cleared.",
            headers(("Set-Cookie" = String, description = "`sluice_session=; …; Max-Age=0`"))),
        (status = 401, description = "Not signed in.", body = ErrorBody),
        (status = 403, description = "Missing or wrong `X-CSRF-Token`.", body = ErrorBody),
        (status = 503, description = "The account database is unavailable; retry.", body = ErrorBody),
    ),
    security(("session_cookie" = [], "csrf_token" = [])),
)]
pub(crate) async fn sign_out(
    State(state): State<AppState>,
    caller: SessionCaller,
) -> Result<impl IntoResponse, ApiError> {
    state.store.delete_session(caller.secret.expose()).await?;
    tracing::info!(user.id = caller.session.user_id, "user signed out");
    let mut headers = HeaderMap::new();
    headers.insert(header::SET_COOKIE, cookie_header(&state, "", 0));
    Ok((StatusCode::NO_CONTENT, headers))
}

/// The current session.
///
/// `GET /v1/session` (cookie): the current session, or 401. The page reads its `csrf_token`
/// here.
#[utoipa::path(
    get,
    path = "/v1/session",
    tag = "session",
    responses(
        (status = 200, description = "The session.", body = SessionView),
        (status = 401, description = "Not signed in.", body = ErrorBody),
        (status = 503, description = "The account database is unavailable; retry.", body = ErrorBody),
    ),
    security(("session_cookie" = [])),
)]
pub(crate) async fn show(caller: SessionCaller) -> Json<SessionView> {
    Json(SessionView {
        account: caller.session.account,
        csrf_token: caller.session.csrf_token,
        expires_at: rfc3339(caller.session.expires_at),
    })
}

/// A token for the page's stream.
///
/// `POST /v1/session/stream-token` (cookie + CSRF): a JWT for the page's stream, valid for
/// `--stream-token-ttl` (5 minutes by default): `GET /v1/stream?access_token=<token>`.
#[utoipa::path(
    post,
    path = "/v1/session/stream-token",
    tag = "session",
    responses(
        (status = 200, description = "The JWT and its lifetime.", body = StreamTokenView),
        (status = 401, description = "Not signed in.", body = ErrorBody),
        (status = 403, description = "Missing or wrong `X-CSRF-Token`.", body = ErrorBody),
        (status = 503, description = "The account database is unavailable; retry.", body = ErrorBody),
    ),
    security(("session_cookie" = [], "csrf_token" = [])),
)]
pub(crate) async fn stream_token(
    State(state): State<AppState>,
    caller: SessionCaller,
) -> Result<Json<StreamTokenView>, ApiError> {
    let now = u64::try_from(Utc::now().timestamp()).unwrap_or_default();
    let ttl = state.config.stream_token_seconds();
    let token = stream_jwt::issue_for(
        state.config.stream_jwt_secret(),
        caller.session.account_id,
        &caller.session.account,
        now,
        ttl,
    );
    Ok(Json(StreamTokenView {
        token,
        expires_in: ttl,
    }))
}

/// Signs up under a name made from the email address: its local part, or that plus a random
/// suffix when the name is taken (a few tries, for the race with another sign-up).
async fn sign_up_with_a_made_name(
    state: &AppState,
    request: &SignUpRequest,
) -> Result<User, ApiError> {
    let base = account_name_from_email(&request.email);
    let mut candidate = base.clone();
    for _ in 0..5 {
        if state.store.account(&candidate).await?.is_none() {
            match state
                .store
                .sign_up(&request.email, &request.password, &candidate)
                .await
            {
                Err(StoreError::AccountExists(_)) => {}
                result => return Ok(result?),
            }
        }
        candidate = format!("{base}-{}", random_suffix());
    }
    Err(ApiError::Conflict(
        "could not find a free account name; choose one in the `account` field".into(),
    ))
}

/// An account name from an email address's local part: lower-cased, characters outside the
/// naming rule as `-`, starting with a letter or digit, at most 48 characters; `user` if
/// nothing is left.
fn account_name_from_email(email: &str) -> String {
    let local = email.split('@').next().unwrap_or_default().to_lowercase();
    let name: String = local
        .chars()
        .map(|character| match character {
            'a'..='z' | '0'..='9' | '.' | '_' | '-' => character,
            _ => '-',
        })
        .skip_while(|character| !character.is_ascii_alphanumeric())
        .take(48)
        .collect();
    if name.is_empty() {
        "user".to_owned()
    } else {
        name
    }
}

/// Four random characters of `[a-z0-9]`.
fn random_suffix() -> String {
    const ALPHABET: &[u8] = b"abcdefghijklmnopqrstuvwxyz0123456789";
    (0..4)
        .map(|_| char::from(ALPHABET[rand::random::<usize>() % ALPHABET.len()]))
        .collect()
}

/// Starts a session for `user`: the `Set-Cookie` header and the body to answer.
async fn start_session(
    state: &AppState,
    user: &User,
) -> Result<(HeaderMap, SessionView), ApiError> {
    let (secret, csrf_token) = state.store.create_session(user.id, SESSION_TTL).await?;
    let mut headers = HeaderMap::new();
    headers.insert(
        header::SET_COOKIE,
        cookie_header(state, secret.expose(), SESSION_TTL.as_secs()),
    );
    let expires_at = Utc::now() + SESSION_TTL;
    Ok((
        headers,
        SessionView {
            account: user.account.clone(),
            csrf_token,
            expires_at: rfc3339(expires_at),
        },
    ))
}

/// `sluice_session=<value>; HttpOnly; SameSite=Lax; Path=/; Max-Age=<seconds>[; Secure]`.
fn cookie_header(state: &AppState, value: &str, max_age: u64) -> HeaderValue {
    let secure = if state.config.insecure_cookies {
        ""
    } else {
        "; Secure"
    };
    HeaderValue::from_str(&format!(
        "{SESSION_COOKIE}={value}; HttpOnly; SameSite=Lax; Path=/; Max-Age={max_age}{secure}"
    ))
    .expect("hex digits and ASCII attributes make a valid header value")
}

fn rfc3339(time: DateTime<Utc>) -> String {
    time.to_rfc3339_opts(SecondsFormat::Secs, true)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn account_names_from_email_addresses() {
        for (email, expected) in [
            ("alice@example.com", "alice"),
            ("Alice.Smith+sluice@example.com", "alice.smith-sluice"),
            ("_ops@example.com", "ops"),
            ("..@example.com", "user"),
            ("ünïcode@example.com", "n-code"),
        ] {
            let name = account_name_from_email(email);
            assert_eq!(name, expected, "{email}");
            billing::Account::validate_name(&name).unwrap();
        }
        let long = format!("{}@example.com", "a".repeat(100));
        assert_eq!(account_name_from_email(&long).len(), 48);
        let suffix = random_suffix();
        assert_eq!(suffix.len(), 4);
        billing::Account::validate_name(&format!("alice-{suffix}")).unwrap();
    }
}
