//! TAXII 2.1's media types, content negotiation and error objects.

use axum::http::{header, HeaderMap, HeaderValue, StatusCode};
use axum::response::{IntoResponse, Response};
use serde_json::{json, Value};

use crate::error::ApiError;

/// What every TAXII response is, and what a client must be able to accept.
pub const TAXII: &str = "application/taxii+json;version=2.1";
/// The media type of the objects a collection holds.
pub const STIX: &str = "application/stix+json;version=2.1";

/// Whether a request's `Accept` lets it take [`TAXII`]: no `Accept`, `*/*`, `application/*`,
/// or `application/taxii+json` without a version or with `version=2.1`.
pub fn acceptable(headers: &HeaderMap) -> bool {
    let Some(accept) = headers.get(header::ACCEPT) else {
        return true;
    };
    let Ok(accept) = accept.to_str() else {
        return false;
    };
    accept.split(',').any(|range| {
        let mut parts = range.split(';').map(str::trim);
        let media = parts.next().unwrap_or("").to_ascii_lowercase();
        let mut version = None;
        let mut refused = false;
        for parameter in parts {
            let (name, value) = parameter.split_once('=').unwrap_or((parameter, ""));
            let value = value.trim().trim_matches('"');
            match name.trim().to_ascii_lowercase().as_str() {
                "version" => version = Some(value.to_owned()),
                "q" => refused = value.parse::<f32>().is_ok_and(|q| q <= 0.0),
                _ => {}
            }
        }
        !refused
            && match media.as_str() {
                "*/*" | "application/*" => true,
                "application/taxii+json" => version.as_deref().is_none_or(|v| v == "2.1"),
                _ => false,
            }
    })
}

/// A TAXII answer: `body` as [`TAXII`], with extra headers.
pub fn answer(body: &Value, headers: Vec<(&'static str, String)>) -> Response {
    // `to_vec` writes straight into the buffer (`to_string` goes through `fmt`).
    let body = serde_json::to_vec(body).unwrap_or_default();
    let mut response = (
        [(header::CONTENT_TYPE, HeaderValue::from_static(TAXII))],
        body,
    )
        .into_response();
    for (name, value) in headers {
        if let Ok(value) = HeaderValue::from_str(&value) {
            response.headers_mut().insert(name, value);
        }
    }
    response
}

/// Every error a TAXII endpoint answers, as a TAXII error object.
#[derive(Debug)]
pub enum TaxiiError {
    /// What the rest of the API would answer (401, 403, 400, 429, 503, 500).
    Api(ApiError),
    NotFound(String),
    NotAcceptable,
}

impl From<ApiError> for TaxiiError {
    fn from(error: ApiError) -> Self {
        TaxiiError::Api(error)
    }
}

impl IntoResponse for TaxiiError {
    fn into_response(self) -> Response {
        let (status, title, description) = match self {
            TaxiiError::NotFound(what) => (StatusCode::NOT_FOUND, "Not found", what),
            TaxiiError::NotAcceptable => (
                StatusCode::NOT_ACCEPTABLE,
                "Not acceptable",
                format!("this server answers `{TAXII}`; send it in `Accept`"),
            ),
            TaxiiError::Api(error) => {
                // The status, Retry-After and WWW-Authenticate the rest of the API uses.
                let description = error.to_string();
                let mut response = error.into_response();
                let status = response.status();
                let headers = response.headers_mut();
                if status == StatusCode::UNAUTHORIZED {
                    headers.insert(
                        header::WWW_AUTHENTICATE,
                        HeaderValue::from_static("Basic realm=\"sluice\", Bearer"),
                    );
                }
                let title = status.canonical_reason().unwrap_or("Error");
                let body = error_object(status, title, &description);
                headers.insert(header::CONTENT_TYPE, HeaderValue::from_static(TAXII));
                headers.remove(header::CONTENT_LENGTH);
                *response.body_mut() = body.to_string().into();
                return response;
            }
        };
        let body = error_object(status, title, &description);
        (
            status,
            [(header::CONTENT_TYPE, HeaderValue::from_static(TAXII))],
            body.to_string(),
        )
            .into_response()
    }
}

fn error_object(status: StatusCode, title: &str, description: &str) -> Value {
    json!({
        "title": title,
        "description": description,
        "http_status": status.as_str(),
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    fn accepts(value: Option<&str>) -> bool {
        let mut headers = HeaderMap::new();
        if let Some(value) = value {
            headers.insert(header::ACCEPT, value.parse().unwrap());
        }
        acceptable(&headers)
    }

    #[test]
    fn negotiation_follows_the_media_type_and_version() {
        for yes in [
            None,
            Some("application/taxii+json;version=2.1"),
            Some("application/taxii+json; version=\"2.1\""),
            Some("application/taxii+json"),
            Some("text/html, */*;q=0.8"),
            Some("application/*"),
        ] {
            assert!(accepts(yes), "{yes:?}");
        }
        for no in [
            Some("application/taxii+json;version=2.0"),
            Some("application/vnd.oasis.taxii+json; version=2.0"),
            Some("text/html"),
            Some("application/taxii+json;version=2.1;q=0"),
        ] {
            assert!(!accepts(no), "{no:?}");
        }
    }
}
