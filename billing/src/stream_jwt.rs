//! Short-lived stream tokens (docs/protocol.md §4.2, §6.5): the JWT a signed-in browser presents as
//! `?access_token=` to `GET /v1/stream`. Pure: no HTTP, no database, the clock passed in.
//!
//! HS256 only, with `exp`, `nbf`, `aud` (`sluice-stream`) and `iss` (`sluice`) all required and
//! checked, an explicit leeway of [`LEEWAY_SECONDS`], no `kid` (there is one key, so any `kid`
//! is unknown), and at most [`MAX_TOKEN_BYTES`]. Every refusal is the same [`JwtError`], so a
//! caller learns nothing about which check failed.
//!
//! Time is checked here against the caller's `now`, not by `jsonwebtoken` (which reads the
//! system clock and cannot be given one): the library checks the signature, the algorithm, the
//! presence of the four required claims, `aud` and `iss`; this module checks `exp` and `nbf`:
//!
//! - expired when `exp + LEEWAY_SECONDS < now` (so `exp == now - 30` is still accepted and
//!   `exp == now - 31` is not);
//! - not yet valid when `nbf > now + LEEWAY_SECONDS`.

use jsonwebtoken::{Algorithm, DecodingKey, EncodingKey, Header, Validation};
use serde::{Deserialize, Serialize};

/// The `aud` of every stream token.
pub const AUDIENCE: &str = "sluice-stream";
/// The `iss` of every stream token.
pub const ISSUER: &str = "sluice";
/// How long a stream token is valid after it is issued, seconds.
pub const TTL_SECONDS: u64 = 300;
/// Clock skew tolerated on `exp` and `nbf`, seconds.
pub const LEEWAY_SECONDS: u64 = 30;
/// Longest token [`verify`] decodes; anything longer is refused before parsing.
pub const MAX_TOKEN_BYTES: usize = 4096;

/// The claims of a stream token.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct StreamClaims {
    /// The account's database id, as a decimal string.
    pub sub: String,
    /// The account's name.
    pub acct: String,
    /// Always [`AUDIENCE`].
    pub aud: String,
    /// Always [`ISSUER`].
    pub iss: String,
    /// Expiry, unix seconds.
    pub exp: u64,
    /// Not valid before, unix seconds.
    pub nbf: u64,
    /// Issued at, unix seconds.
    pub iat: u64,
    /// Unique token id (128 random bits, hex).
    pub jti: String,
}

impl StreamClaims {
    /// The account id in `sub`, if it is one.
    pub fn account_id(&self) -> Option<i64> {
        self.sub.parse().ok()
    }
}

/// A stream token was refused. Deliberately one value with one message, whatever was wrong
/// (signature, algorithm, a claim, size, format).
#[derive(Debug, Clone, Copy, PartialEq, Eq, thiserror::Error)]
#[error("invalid or expired stream token")]
pub struct JwtError;

/// A stream token for account `account` (id `account_id`), issued at `now` (unix seconds),
/// valid from `now` for [`TTL_SECONDS`], signed with HS256 under `secret`.
pub fn issue(secret: &[u8], account_id: i64, account: &str, now: u64) -> String {
    issue_for(secret, account_id, account, now, TTL_SECONDS)
}

/// [`issue`], valid for `ttl_seconds` instead (the web role's `--stream-token-ttl`).
pub fn issue_for(
    secret: &[u8],
    account_id: i64,
    account: &str,
    now: u64,
    ttl_seconds: u64,
) -> String {
    let claims = StreamClaims {
        sub: account_id.to_string(),
        acct: account.to_owned(),
        aud: AUDIENCE.to_owned(),
        iss: ISSUER.to_owned(),
        exp: now.saturating_add(ttl_seconds),
        nbf: now,
        iat: now,
        jti: hex::encode(rand::random::<[u8; 16]>()),
    };
    jsonwebtoken::encode(
        &Header::new(Algorithm::HS256),
        &claims,
        &EncodingKey::from_secret(secret),
    )
    .expect("HS256 over serializable claims cannot fail")
}

/// The claims of `token` if it is a valid stream token at `now` (unix seconds) under `secret`;
/// see the module documentation for every rule.
pub fn verify(secret: &[u8], token: &str, now: u64) -> Result<StreamClaims, JwtError> {
    if token.len() > MAX_TOKEN_BYTES {
        return Err(JwtError);
    }
    let header = jsonwebtoken::decode_header(token).map_err(|_| JwtError)?;
    if header.kid.is_some() || header.alg != Algorithm::HS256 {
        return Err(JwtError);
    }
    let claims = jsonwebtoken::decode::<StreamClaims>(
        token,
        &DecodingKey::from_secret(secret),
        &validation(),
    )
    .map_err(|_| JwtError)?
    .claims;
    if claims.exp.saturating_add(LEEWAY_SECONDS) < now
        || claims.nbf > now.saturating_add(LEEWAY_SECONDS)
    {
        return Err(JwtError);
    }
    Ok(claims)
}

/// What `jsonwebtoken` checks: HS256 only, the four claims present, `aud` and `iss` exact.
/// Its own time checks are off because it reads the system clock; [`verify`] checks `exp` and
/// `nbf` against the caller's `now` with the same leeway.
fn validation() -> Validation {
    let mut validation = Validation::new(Algorithm::HS256);
    validation.algorithms = vec![Algorithm::HS256];
    validation.set_required_spec_claims(&["exp", "nbf", "aud", "iss"]);
    validation.set_audience(&[AUDIENCE]);
    validation.set_issuer(&[ISSUER]);
    validation.leeway = LEEWAY_SECONDS;
    validation.validate_exp = false;
    validation.validate_nbf = false;
    validation
}
