//! `ApiError`: every HTTP error this API answers, as `{"error": "<what to do>"}`.

use axum::extract::rejection::{JsonRejection, PathRejection, QueryRejection};
use axum::http::{header, HeaderValue, StatusCode};
use axum::response::{IntoResponse, Response};
use axum::Json;
use billing::StoreError;

use crate::api::ErrorBody;

pub use billing::UNAUTHORIZED_MESSAGE;

/// The one 401 body for a failed sign-in: the same for an unknown email and a wrong password.
pub const SIGN_IN_FAILED_MESSAGE: &str =
    "wrong email or password; check both, or sign up at POST /v1/session/signup";

/// The 401 body of session endpoints without a live session cookie.
pub const NO_SESSION_MESSAGE: &str =
    "not signed in (no session, or it expired): sign in with POST /v1/session/signin";

/// The 403 body when a cookie-authenticated, state-changing request lacks the right CSRF token.
pub const CSRF_MESSAGE: &str =
    "missing or wrong X-CSRF-Token header: send the csrf_token that sign-in (or GET /v1/session) \
     returned";

/// The 503 body while the account database does not answer.
const DATABASE_UNAVAILABLE: &str = "the account database is unavailable; retry shortly";

/// An HTTP error. 4xx messages are safe to show and say what to do; 5xx are logged once, when
/// the response is built, and answered with a generic message.
#[derive(Debug, thiserror::Error)]
pub enum ApiError {
    /// No credential, or one that does not authenticate (401).
    #[error("{}", UNAUTHORIZED_MESSAGE)]
    Unauthorized,
    /// A sign-in with an unknown email or a wrong password (401, one body for both).
    #[error("{}", SIGN_IN_FAILED_MESSAGE)]
    SignInFailed,
    /// A session endpoint called without a live session cookie (401).
    #[error("{}", NO_SESSION_MESSAGE)]
    NoSession,
    /// A billing webhook request whose signature does not verify (401).
    #[error("{0}")]
    BadSignature(String),
    /// Authenticated, but not allowed (403).
    #[error("{0}")]
    Forbidden(String),
    /// A malformed request (400).
    #[error("{0}")]
    BadRequest(String),
    /// The named account or plan does not exist (404).
    #[error("{0}")]
    NotFound(String),
    /// The request conflicts with how the deployment is set up (409).
    #[error("{0}")]
    Conflict(String),
    /// Well-formed, but a value is not acceptable (422).
    #[error("{0}")]
    Unprocessable(String),
    /// The body is larger than the endpoint accepts (413).
    #[error("{0}")]
    PayloadTooLarge(String),
    /// Too many attempts; try again after the given seconds (429 with `Retry-After`).
    #[error("{message}")]
    TooManyRequests {
        message: String,
        retry_after_seconds: u64,
    },
    /// Too much password hashing under way to take this request's turn (503 with
    /// `Retry-After`; nothing is logged, the caller only has to retry).
    #[error("{0}")]
    Overloaded(String),
    /// The endpoint is not configured on this deployment (503, no retry hint).
    #[error("{0}")]
    NotConfigured(String),
    /// An extractor refused the request; keeps axum's status (400, 415, 422) and its text.
    #[error("{1}")]
    Rejected(StatusCode, String),
    /// The account database failed (503 with `Retry-After`); the cause is logged.
    #[error("{}", DATABASE_UNAVAILABLE)]
    Database(#[source] anyhow::Error),
}

impl ApiError {
    /// The status this error is answered with.
    pub fn status(&self) -> StatusCode {
        match self {
            ApiError::Unauthorized
            | ApiError::SignInFailed
            | ApiError::NoSession
            | ApiError::BadSignature(_) => StatusCode::UNAUTHORIZED,
            ApiError::Forbidden(_) => StatusCode::FORBIDDEN,
            ApiError::BadRequest(_) => StatusCode::BAD_REQUEST,
            ApiError::NotFound(_) => StatusCode::NOT_FOUND,
            ApiError::Conflict(_) => StatusCode::CONFLICT,
            ApiError::Unprocessable(_) => StatusCode::UNPROCESSABLE_ENTITY,
            ApiError::PayloadTooLarge(_) => StatusCode::PAYLOAD_TOO_LARGE,
            ApiError::TooManyRequests { .. } => StatusCode::TOO_MANY_REQUESTS,
            ApiError::NotConfigured(_) | ApiError::Overloaded(_) | ApiError::Database(_) => {
                StatusCode::SERVICE_UNAVAILABLE
            }
            ApiError::Rejected(status, _) => *status,
        }
    }
}

impl IntoResponse for ApiError {
    fn into_response(self) -> Response {
        let status = self.status();
        if let ApiError::Database(error) = &self {
            tracing::warn!(error = format!("{error:#}"), "account database failed");
        }
        let message = self.to_string();
        let mut response = (status, Json(ErrorBody::new(message.as_str()))).into_response();
        match self {
            ApiError::Unauthorized => {
                response
                    .headers_mut()
                    .insert(header::WWW_AUTHENTICATE, HeaderValue::from_static("Bearer"));
            }
            ApiError::Database(_) | ApiError::Overloaded(_) => {
                response
                    .headers_mut()
                    .insert(header::RETRY_AFTER, HeaderValue::from_static("2"));
            }
            ApiError::TooManyRequests {
                retry_after_seconds,
                ..
            } => {
                response
                    .headers_mut()
                    .insert(header::RETRY_AFTER, HeaderValue::from(retry_after_seconds));
            }
            _ => {}
        }
        response
    }
}

/// Store errors as HTTP: what the caller can fix keeps the store's message (it names the
/// account or plan and the command to fix it); database failures become a logged 503.
impl From<StoreError> for ApiError {
    fn from(error: StoreError) -> Self {
        match error {
            StoreError::UnknownAccount(_) => ApiError::NotFound(error.to_string()),
            StoreError::UnknownPlan(_) | StoreError::InvalidPlan(_) => {
                ApiError::Unprocessable(error.to_string())
            }
            StoreError::InvalidEmail(_) | StoreError::InvalidPassword(_) => {
                ApiError::Unprocessable(error.to_string())
            }
            StoreError::InvalidName(_) | StoreError::InvalidEvent(_) => {
                ApiError::BadRequest(error.to_string())
            }
            StoreError::AccountExists(_) | StoreError::TokenInUse | StoreError::EmailTaken => {
                ApiError::Conflict(error.to_string())
            }
            StoreError::Limit(_) => ApiError::Forbidden(error.to_string()),
            StoreError::Busy => ApiError::Overloaded(error.to_string()),
            StoreError::Db(error) => ApiError::Database(error),
        }
    }
}

impl From<JsonRejection> for ApiError {
    fn from(rejection: JsonRejection) -> Self {
        ApiError::Rejected(rejection.status(), rejection.body_text())
    }
}

impl From<QueryRejection> for ApiError {
    fn from(rejection: QueryRejection) -> Self {
        ApiError::Rejected(rejection.status(), rejection.body_text())
    }
}

impl From<PathRejection> for ApiError {
    fn from(rejection: PathRejection) -> Self {
        ApiError::Rejected(rejection.status(), rejection.body_text())
    }
}
