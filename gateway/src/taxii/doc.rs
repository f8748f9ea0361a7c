//! The TAXII endpoints' OpenAPI description, shared by their annotations (documentation only:
//! the handlers read the query themselves, `params.rs`).

use utoipa::{IntoParams, IntoResponses};

/// What every TAXII endpoint may answer besides its 200, each a TAXII error object.
#[derive(IntoResponses)]
#[allow(dead_code)]
pub enum Refusals {
    #[response(
        status = 401,
        description = "No token, or not a valid one (Bearer, or HTTP Basic with the token as \
                       the password)."
    )]
    Unauthorized,
    #[response(
        status = 403,
        description = "The plan has no firehose, so no TAXII access."
    )]
    Forbidden,
    #[response(status = 404, description = "No such collection (or object).")]
    NotFound,
    #[response(
        status = 406,
        description = "`Accept` does not allow `application/taxii+json;version=2.1`."
    )]
    NotAcceptable,
}

/// What a page may answer besides [`Refusals`].
#[derive(IntoResponses)]
#[allow(dead_code)]
pub enum PageRefusals {
    #[response(
        status = 400,
        description = "A parameter is not valid (a TAXII error object says which)."
    )]
    BadRequest,
    #[response(
        status = 429,
        description = "Over the node's feed scans or the account's rate of TAXII pages \
                       (`--taxii-rate`); retry after `Retry-After`."
    )]
    TooManyRequests,
    #[response(
        status = 503,
        description = "The log is unavailable; retry after `Retry-After`."
    )]
    Unavailable,
}

/// The query of every page (`objects/`, `manifest/`, an object and its versions).
#[derive(IntoParams)]
#[into_params(parameter_in = Query)]
#[allow(dead_code)]
pub struct PageParams {
    /// Only objects added after this time (RFC 3339).
    added_after: Option<String>,
    /// Objects per page, at most 1,000 (the default).
    limit: Option<usize>,
    /// The `next` of the page before.
    next: Option<String>,
    /// `last` (the default; `all` on `versions/`), `first`, `all`, or versions' timestamps,
    /// comma-separated.
    #[param(rename = "match[version]")]
    match_version: Option<String>,
    /// `2.1`, the only one served.
    #[param(rename = "match[spec_version]")]
    match_spec_version: Option<String>,
}

/// The filters of a collection's `objects/` and `manifest/`.
#[derive(IntoParams)]
#[into_params(parameter_in = Query)]
#[allow(dead_code)]
pub struct ListParams {
    /// Only these object ids, comma-separated (at most 100).
    #[param(rename = "match[id]")]
    match_id: Option<String>,
    /// Only these object types (`indicator`, `relationship`), comma-separated.
    #[param(rename = "match[type]")]
    match_type: Option<String>,
}
