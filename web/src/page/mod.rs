//! The web page (docs/protocol.md §6.9): a handful of server-composed HTML pages, each with one
//! ES module, every asset compiled into the binary (no CDN, no build step, works offline).
//!
//! Why no front-end framework: five small pages whose dynamic parts are a few lists and one
//! live table. Plain modules keep the binary self-contained and the escaping rule simple: the
//! server fills only values it made itself ([`assets::attribute`] escapes them anyway), and the
//! scripts put every value from the API or the stream into the page with `textContent` or DOM
//! properties, never as markup. The Content-Security-Policy ([`headers`]) forbids inline script,
//! so a string that slipped into markup still could not run.
//!
//! | path | who |
//! |---|---|
//! | `/`, `/signin`, `/signup` | anyone (signed in: redirected to `/live`) |
//! | `/plans`, `/tokens`, `/live` (the firehose viewer; `/firehose` is csirtg.io's stream), `/webhooks`, `/usage` | the session cookie (else redirected to `/signin`) |
//! | `/operator` (the open streams, for operators) | anyone; it shows nothing without an `admin` token typed in |
//! | `/assets/…` | anyone |

mod assets;
mod headers;

use axum::extract::{Path, State};
use axum::http::{header, HeaderMap, HeaderValue, StatusCode};
use axum::response::{IntoResponse, Redirect, Response};
use axum::routing::get;
use axum::Router;

use crate::auth::live_session;
use crate::error::ApiError;
use crate::AppState;

pub use headers::{content_security_policy, set_security_headers};

/// A page behind the sign-in: its path, the nav label, and its main content and script.
struct AppPage {
    path: &'static str,
    label: &'static str,
    name: &'static str,
    main: &'static str,
}

/// The signed-in pages, in nav order.
static APP_PAGES: [AppPage; 5] = [
    AppPage {
        path: "/live",
        label: "Firehose",
        name: "firehose",
        main: include_str!("../../assets/pages/firehose.html"),
    },
    AppPage {
        path: "/plans",
        label: "Plans",
        name: "plans",
        main: include_str!("../../assets/pages/plans.html"),
    },
    AppPage {
        path: "/tokens",
        label: "Tokens",
        name: "tokens",
        main: include_str!("../../assets/pages/tokens.html"),
    },
    AppPage {
        path: "/webhooks",
        label: "Webhooks",
        name: "webhooks",
        main: include_str!("../../assets/pages/webhooks.html"),
    },
    AppPage {
        path: "/usage",
        label: "Usage",
        name: "usage",
        main: include_str!("../../assets/pages/usage.html"),
    },
];

/// The pages anyone may open: the sign-in and sign-up forms.
const WELCOME_PATHS: [&str; 3] = ["/", "/signin", "/signup"];

/// The page routes, with their security headers; merge into the node's router.
pub fn router(state: AppState) -> Router {
    let mut router = Router::new().route("/assets/{*file}", get(asset));
    for path in WELCOME_PATHS {
        router = router.route(path, get(welcome));
    }
    router = router.route(OPERATOR_PATH, get(operator));
    for page in &APP_PAGES {
        router = router.route(
            page.path,
            get(move |state: State<AppState>, headers: HeaderMap| app_page(state, headers, page)),
        );
    }
    let policy = HeaderValue::from_str(&content_security_policy(
        state.config.gateway_url.as_deref(),
    ))
    .expect("the policy is ASCII: a URL's origin serialises as ASCII");
    router
        .with_state(state)
        .layer(axum::middleware::from_fn_with_state(
            policy,
            headers::secure,
        ))
}

/// The operators' page: the cluster's open streams, through the admin API.
const OPERATOR_PATH: &str = "/operator";

/// `/operator`: the open streams for operators. The page holds nothing itself: it asks the
/// admin API with an `admin` token the operator types in (kept in the tab's memory), so it
/// needs no session, and a session gives it nothing.
async fn operator(State(state): State<AppState>) -> Response {
    html(assets::render(&assets::Fill {
        title: "Open streams",
        page: "operator",
        main: include_str!("../../assets/pages/operator.html"),
        nav: String::new(),
        account: "",
        csrf: "",
        gateway: "",
        cookies: cookie_mode(&state),
    }))
}

/// `/`, `/signin`, `/signup` ([`WELCOME_PATHS`]): the sign-in and sign-up forms; a signed-in
/// visitor goes to the firehose instead.
async fn welcome(State(state): State<AppState>, headers: HeaderMap) -> Result<Response, ApiError> {
    if live_session(&state, &headers).await?.is_some() {
        return Ok(Redirect::to("/live").into_response());
    }
    Ok(html(assets::render(&assets::Fill {
        title: "Sign in",
        page: "welcome",
        main: include_str!("../../assets/pages/welcome.html"),
        nav: String::new(),
        account: "",
        csrf: "",
        gateway: "",
        cookies: cookie_mode(&state),
    })))
}

/// A signed-in page; without a live session, a redirect to `/signin`.
async fn app_page(
    State(state): State<AppState>,
    headers: HeaderMap,
    page: &'static AppPage,
) -> Result<Response, ApiError> {
    let Some((session, _)) = live_session(&state, &headers).await? else {
        return Ok(Redirect::to("/signin").into_response());
    };
    Ok(html(assets::render(&assets::Fill {
        title: page.label,
        page: page.name,
        main: page.main,
        nav: nav(page.path),
        account: &session.account,
        csrf: &session.csrf_token,
        gateway: state.config.gateway_url.as_deref().unwrap_or_default(),
        cookies: cookie_mode(&state),
    })))
}

fn cookie_mode(state: &AppState) -> &'static str {
    if state.config.insecure_cookies {
        "insecure"
    } else {
        "secure"
    }
}

/// The links of the top navigation, the current one marked for assistive technology.
fn nav(current: &str) -> String {
    APP_PAGES
        .iter()
        .map(|page| {
            let marker = if page.path == current {
                r#" aria-current="page""#
            } else {
                ""
            };
            format!(
                r#"<a href="{}" data-testid="nav-{}"{marker}>{}</a>"#,
                page.path, page.name, page.label
            )
        })
        .collect()
}

/// An HTML page that is never cached (it carries the session's CSRF token).
fn html(body: String) -> Response {
    (
        [
            (header::CONTENT_TYPE, "text/html; charset=utf-8"),
            (header::CACHE_CONTROL, "no-store"),
        ],
        body,
    )
        .into_response()
}

/// `/assets/{file}`: a compiled-in stylesheet, script or icon.
async fn asset(Path(file): Path<String>) -> Response {
    match assets::file(&file) {
        Some((content_type, body)) => (
            [
                (header::CONTENT_TYPE, content_type),
                (header::CACHE_CONTROL, "no-cache"),
            ],
            body,
        )
            .into_response(),
        None => (StatusCode::NOT_FOUND, "no such asset\n").into_response(),
    }
}

/// Adds the pages to an OpenAPI description, from the same tables the router is built from:
/// `GET`, `text/html`, tag `pages`.
pub(crate) fn describe(openapi: &mut utoipa::openapi::OpenApi) {
    use utoipa::openapi::path::{HttpMethod, OperationBuilder, ParameterBuilder, ParameterIn};
    use utoipa::openapi::schema::{Object, Type};
    use utoipa::openapi::{Content, Required, ResponseBuilder};

    let response = |description: &str| ResponseBuilder::new().description(description);

    let text = || Some(Object::with_type(Type::String));
    let html = |summary: &str, description: &str| {
        OperationBuilder::new()
            .tag("pages")
            .summary(Some(summary))
            .description(Some(description))
            .response(
                "200",
                response("The page.").content("text/html", Content::new(text())),
            )
    };
    let signed_in = |operation: OperationBuilder| {
        operation.response("303", response("No live session: to `/signin`."))
    };
    for path in WELCOME_PATHS {
        let operation = html(
            "Sign-in and sign-up page",
            "The sign-in and sign-up forms; a visitor with a live session is redirected to `/live`.",
        )
        .response("303", response("A live session: to `/live`."));
        openapi
            .paths
            .add_path_operation(path, vec![HttpMethod::Get], operation);
    }
    openapi.paths.add_path_operation(
        OPERATOR_PATH,
        vec![HttpMethod::Get],
        html(
            "Operators' page",
            "The cluster's open streams with their lag, refreshed every 2 s, and a close button \
             per stream: the admin API (`/v1/admin/connections`) with an `admin` token typed \
             into the page. No session needed.",
        ),
    );
    for page in &APP_PAGES {
        let operation = signed_in(html(
            &format!("{} page", page.label),
            &format!(
                "The signed-in page `{}` (session cookie). Its script and stylesheet come from \
                 `/assets`; its Content-Security-Policy allows no inline script.",
                page.name
            ),
        ));
        openapi
            .paths
            .add_path_operation(page.path, vec![HttpMethod::Get], operation);
    }
    let asset = OperationBuilder::new()
        .tag("pages")
        .summary(Some("A page asset"))
        .description(Some(
            "A stylesheet, script or icon compiled into the binary (`no-cache`).",
        ))
        .parameter(
            ParameterBuilder::new()
                .name("file")
                .parameter_in(ParameterIn::Path)
                .required(Required::True)
                .description(Some("The asset's path under `/assets/`."))
                .schema(text()),
        )
        .response(
            "200",
            response("The file, with its content type.")
                .content("text/css", Content::new(text()))
                .content("text/javascript", Content::new(text()))
                .content("image/svg+xml", Content::new(text())),
        )
        .response("404", response("No such asset."));
    openapi
        .paths
        .add_path_operation("/assets/{file}", vec![HttpMethod::Get], asset);
}
