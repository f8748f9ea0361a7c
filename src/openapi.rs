//! `GET /openapi.json` and `/docs`: the whole HTTP API in one OpenAPI document, and Swagger UI.
//!
//! The document is generated from the code: the gateway's [`gateway::ApiDoc`] and the web
//! role's [`web::ApiDoc`] (each from its handlers' `#[utoipa::path]` attributes and its wire
//! types), merged, plus these two routes. Every role serves the same document (`sluice up`
//! serves all of it; the tags say which role serves what), so a client reads one description
//! of the API wherever it asks.
//!
//! Swagger UI comes from the `utoipa-swagger-ui-vendored` crate: nothing is downloaded at
//! build time and the browser fetches nothing from elsewhere. Its page loads its scripts and
//! stylesheets from `/docs/` and has no inline script, so [`DOCS_CSP`] allows scripts from this
//! origin only, as the web page's own policy does.

use axum::extract::Request;
use axum::http::HeaderValue;
use axum::middleware::Next;
use axum::response::Response;
use axum::Router;
use utoipa::openapi::path::{HttpMethod, OperationBuilder, ParameterBuilder, ParameterIn};
use utoipa::openapi::schema::{Object, Type};
use utoipa::openapi::{Content, InfoBuilder, LicenseBuilder, Required, ResponseBuilder};
use utoipa::OpenApi;
use utoipa_swagger_ui::{Config, SwaggerUi};

/// Where the document is served.
pub const DOCUMENT_PATH: &str = "/openapi.json";
/// Where Swagger UI is served (`/docs` redirects to `/docs/`).
pub const DOCS_PATH: &str = "/docs";

/// The Content-Security-Policy of `/docs` and `/openapi.json`: scripts, styles and images from
/// this origin only (Swagger UI's icons are `data:` images in its stylesheet), requests ("Try it
/// out") to this origin only; no inline script or style, no `eval`, no framing, no forms.
pub const DOCS_CSP: &str = "default-src 'none'; script-src 'self'; style-src 'self'; \
     img-src 'self' data:; connect-src 'self'; form-action 'none'; frame-ancestors 'none'; \
     base-uri 'none'";

/// The whole API: the gateway's routes, the web role's, and the documentation's own.
pub fn document() -> utoipa::openapi::OpenApi {
    let mut document = gateway::ApiDoc::openapi();
    document.merge(web::ApiDoc::openapi());
    describe_docs(&mut document);
    document.info = InfoBuilder::new()
        .title("Sluice")
        .version(env!("CARGO_PKG_VERSION"))
        .description(Some(DESCRIPTION))
        .license(Some(
            LicenseBuilder::new()
                .name(env!("CARGO_PKG_LICENSE"))
                .identifier(Some(env!("CARGO_PKG_LICENSE")))
                .build(),
        ))
        .build();
    document
}

const DESCRIPTION: &str = "Sluice, a real-time threat-intelligence firehose: publish \
indicators of compromise over HTTP, read the recent ones, and stream them live over WebSocket or \
Server-Sent Events, filtered and limited by the account's plan.\n\n\
Which process serves what: `sluice up` serves everything here. In a cluster, `sluice gateway` \
serves the tags `indicators`, `stream`, `cif` and `operations`, and `sluice web` serves `plans`, \
`account`, `tokens`, `session`, `admin`, `billing` and `pages` (and `/healthz` and `/readyz`, \
for its account database); both serve `docs`.\n\n\
Errors are `{\"error\": \"<what went wrong and what to do>\"}`.";

/// Adds `/openapi.json` and `/docs` themselves.
fn describe_docs(document: &mut utoipa::openapi::OpenApi) {
    let text = || Some(Object::with_type(Type::String));
    let response = |description: &str| ResponseBuilder::new().description(description);
    let get = |summary: &str, description: &str| {
        OperationBuilder::new()
            .tag("docs")
            .summary(Some(summary))
            .description(Some(description))
    };
    let paths = &mut document.paths;
    paths.add_path_operation(
        DOCUMENT_PATH,
        vec![HttpMethod::Get],
        get(
            "This document",
            "The OpenAPI description of every HTTP endpoint.",
        )
        .response(
            "200",
            response("The document.").content("application/json", Content::new(text())),
        ),
    );
    paths.add_path_operation(
        DOCS_PATH,
        vec![HttpMethod::Get],
        get("Swagger UI", "Redirects to `/docs/`.").response("303", response("To `/docs/`.")),
    );
    paths.add_path_operation(
        format!("{DOCS_PATH}/"),
        vec![HttpMethod::Get],
        get(
            "Swagger UI",
            "Swagger UI showing this document; its scripts and stylesheets are served beside it.",
        )
        .response(
            "200",
            response("The page.").content("text/html", Content::new(text())),
        ),
    );
    paths.add_path_operation(
        format!("{DOCS_PATH}/{{file}}"),
        vec![HttpMethod::Get],
        get(
            "A Swagger UI file",
            "A script, stylesheet or icon of Swagger UI.",
        )
        .parameter(
            ParameterBuilder::new()
                .name("file")
                .parameter_in(ParameterIn::Path)
                .required(Required::True)
                .description(Some("The file's name, as `/docs/` links it."))
                .schema(text()),
        )
        .response("200", response("The file, with its content type."))
        .response("404", response("No such file.")),
    );
    let tags = document.tags.get_or_insert_with(Vec::new);
    tags.push(
        utoipa::openapi::tag::TagBuilder::new()
            .name("docs")
            .description(Some("This document and Swagger UI."))
            .build(),
    );
}

/// `GET /openapi.json` and Swagger UI under `/docs`, with their security headers; merge into a
/// role's router.
pub fn router() -> Router {
    let swagger = SwaggerUi::new(DOCS_PATH)
        .url(DOCUMENT_PATH, document())
        // No badge fetched from the public validator, and the base layout: the standalone one's
        // top bar (a box to load other URLs) sets an inline style that the policy refuses.
        .config(Config::default().validator_url("none").use_base_layout());
    Router::from(swagger).layer(axum::middleware::from_fn(secure))
}

/// Adds [`DOCS_CSP`] and its companions to every documentation response.
async fn secure(request: Request, next: Next) -> Response {
    let mut response = next.run(request).await;
    web::set_security_headers(response.headers_mut(), HeaderValue::from_static(DOCS_CSP));
    response
}

#[cfg(test)]
mod tests {
    use std::collections::{BTreeMap, BTreeSet};
    use std::sync::Arc;
    use std::time::Duration;

    use axum::body::Body;
    use axum::http::{Method, Request, StatusCode};
    use tower::ServiceExt;

    use super::*;

    /// Path (parameters as `{}`) → methods, as the document describes them.
    fn documented() -> BTreeMap<String, BTreeSet<String>> {
        let document = serde_json::to_value(document()).unwrap();
        let mut routes = BTreeMap::new();
        for (path, item) in document["paths"].as_object().unwrap() {
            let methods = item
                .as_object()
                .unwrap()
                .keys()
                .filter(|key| {
                    [
                        "get", "put", "post", "delete", "patch", "head", "options", "trace",
                    ]
                    .contains(&key.as_str())
                })
                .map(|key| key.to_uppercase())
                .collect();
            routes.insert(shape(path), methods);
        }
        routes
    }

    /// `/v1/account/tokens/{id}` and axum's `/assets/{*file}` → `/…/{}`.
    fn shape(path: &str) -> String {
        path.split('/')
            .map(|segment| {
                if segment.starts_with('{') && segment.ends_with('}') {
                    "{}"
                } else {
                    segment
                }
            })
            .collect::<Vec<_>>()
            .join("/")
    }

    /// Path (parameters as `{}`) → methods, as `app` actually routes them. axum has no public
    /// list of a router's paths; its `Debug` names them (`RouteId(3): "/v1/stream"`), and this
    /// fails loudly should that change. The methods are what a 405 answer's `Allow` header says.
    async fn registered(app: &Router) -> BTreeMap<String, BTreeSet<String>> {
        let debug = format!("{app:?}");
        // The fallback router comes after the path router and has paths of its own (`/`).
        let (routed, _) = debug
            .split_once("fallback_router:")
            .expect("a router's Debug output names its fallback router");
        let mut paths = BTreeSet::new();
        for piece in routed.split("RouteId(").skip(1) {
            let Some((_, rest)) = piece.split_once(": \"") else {
                continue;
            };
            if !piece
                .split_once(')')
                .is_some_and(|(id, _)| id.bytes().all(|byte| byte.is_ascii_digit()))
            {
                continue;
            }
            let path = rest.split('"').next().unwrap();
            if path.starts_with('/') && !path.contains("__private__axum") {
                paths.insert(path.to_owned());
            }
        }
        assert!(
            paths.contains("/healthz") && paths.len() > 10,
            "cannot read the routes from the router's Debug output any more; found {paths:?}"
        );
        let mut routes = BTreeMap::new();
        for path in paths {
            let concrete: String = path
                .split('/')
                .map(|segment| {
                    if segment.starts_with('{') {
                        "x"
                    } else {
                        segment
                    }
                })
                .collect::<Vec<_>>()
                .join("/");
            // No route takes PATCH, so every path answers 405 and lists what it takes.
            let response = app
                .clone()
                .oneshot(
                    Request::builder()
                        .method(Method::PATCH)
                        .uri(&concrete)
                        .body(Body::empty())
                        .unwrap(),
                )
                .await
                .unwrap();
            assert_eq!(
                response.status(),
                StatusCode::METHOD_NOT_ALLOWED,
                "PATCH {concrete}"
            );
            let methods = response.headers()["allow"]
                .to_str()
                .unwrap()
                .split(',')
                .map(|method| method.trim().to_owned())
                // axum answers HEAD wherever it answers GET.
                .filter(|method| method != "HEAD")
                .collect();
            routes.insert(shape(&path), methods);
        }
        routes
    }

    async fn states(dir: &std::path::Path) -> (gateway::AppState, web::AppState) {
        let store = billing::Store::open(None, dir).await.unwrap();
        store.migrate().await.unwrap();
        let gateway = gateway::AppState::new(
            gateway::Config::default(),
            sluice_log::memory::MemoryLog::new(Duration::from_secs(3600), 1000),
            Arc::new(gateway::slots::MemorySlots::default()),
            store.clone(),
            tokio_util::sync::CancellationToken::new(),
        );
        let web = web::AppState::new(store, web::Config::default());
        (gateway, web)
    }

    /// Every route each role serves is in the document with the same methods, and everything the
    /// document lists is served by `sluice up`: a route added without its `#[utoipa::path]` (or
    /// a description of a route that is gone) fails here.
    #[tokio::test]
    async fn the_document_describes_exactly_the_routes_served() {
        let dir = tempfile::tempdir().unwrap();
        let (gateway, web) = states(dir.path()).await;
        let documented = documented();
        let up = crate::serve::node_app(gateway.clone(), Some(web::router(web.clone())));
        let roles = [
            ("up", registered(&up).await),
            (
                "gateway",
                registered(&crate::serve::node_app(gateway, None)).await,
            ),
            ("web", registered(&crate::serve::web_app(web)).await),
        ];
        for (role, routes) in &roles {
            for (path, methods) in routes {
                assert_eq!(
                    documented.get(path),
                    Some(methods),
                    "`sluice {role}` serves {methods:?} {path}; the document says {:?}",
                    documented.get(path)
                );
            }
        }
        assert_eq!(
            &roles[0].1, &documented,
            "`sluice up` serves everything the document lists"
        );
    }

    #[test]
    fn the_document_is_whole() {
        let document = serde_json::to_value(document()).unwrap();
        assert_eq!(document["info"]["title"], "Sluice");
        assert_eq!(document["info"]["version"], env!("CARGO_PKG_VERSION"));
        // Every reference names a schema that is there.
        let schemas = document["components"]["schemas"].as_object().unwrap();
        let text = document.to_string();
        for reference in text.split("\"$ref\":\"").skip(1) {
            let reference = reference.split('"').next().unwrap();
            let name = reference
                .strip_prefix("#/components/schemas/")
                .unwrap_or_else(|| panic!("unexpected reference {reference}"));
            assert!(schemas.contains_key(name), "no schema {name}");
        }
        // Every operation has a summary, responses and tags that exist, and asks only for
        // security schemes that exist.
        let schemes = document["components"]["securitySchemes"]
            .as_object()
            .unwrap();
        let tags: BTreeSet<&str> = document["tags"]
            .as_array()
            .unwrap()
            .iter()
            .map(|tag| tag["name"].as_str().unwrap())
            .collect();
        for (path, item) in document["paths"].as_object().unwrap() {
            for (method, operation) in item.as_object().unwrap() {
                let at = format!("{method} {path}");
                assert!(operation["summary"].is_string(), "{at}: no summary");
                assert!(
                    !operation["responses"].as_object().unwrap().is_empty(),
                    "{at}: no responses"
                );
                for tag in operation["tags"].as_array().unwrap() {
                    assert!(tags.contains(tag.as_str().unwrap()), "{at}: tag {tag}");
                }
                for requirement in operation["security"].as_array().into_iter().flatten() {
                    for scheme in requirement.as_object().unwrap().keys() {
                        assert!(schemes.contains_key(scheme), "{at}: scheme {scheme}");
                    }
                }
            }
        }
    }
}
