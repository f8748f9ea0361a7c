//! In-process tests of `web::router` (`tower::ServiceExt::oneshot`): every test body runs on
//! SQLite and on a fresh PostgreSQL database, like `billing`'s tests, so the API cannot depend
//! on one backend's behaviour. Each module names its bodies in `testkit::on_both_backends!`,
//! which makes the tests `module::body::sqlite` and `module::body::postgres` over a [`TestApp`].

mod account;
mod admin;
mod page;
mod session;
mod tokens;
mod webhook;

use axum::body::Body;
use axum::http::{header, Method, Request, StatusCode};
use axum::Router;
use billing::{Account, ApiToken, Scope, Store};
use serde_json::Value;
use sqlx::Row;
use tempfile::TempDir;
use testkit::PgDatabase;
use tower::ServiceExt;

/// The webhook secret of [`TestApp::router`].
pub const SECRET: &str = "whsec_test_current";

/// A migrated store on one backend, a router over it with [`SECRET`] configured, and what the
/// store needs to stay alive.
pub struct TestApp {
    pub store: Store,
    pub router: Router,
    resource: Resource,
}

enum Resource {
    Sqlite(TempDir),
    Postgres(PgDatabase),
}

/// A request's answer: status, and the body as JSON (`Null` when empty).
#[derive(Debug)]
pub struct Answer {
    pub status: StatusCode,
    pub body: Value,
    pub headers: axum::http::HeaderMap,
}

impl Answer {
    /// The `error` message of an error body.
    pub fn error(&self) -> &str {
        self.body["error"]
            .as_str()
            .unwrap_or_else(|| panic!("not an error body: {:?}", self.body))
    }
}

impl TestApp {
    pub async fn sqlite() -> TestApp {
        let dir = tempfile::tempdir().unwrap();
        let store = Store::open(None, dir.path()).await.unwrap();
        TestApp::build(store, Resource::Sqlite(dir)).await
    }

    pub async fn postgres() -> TestApp {
        let database = PgDatabase::create().await.unwrap();
        let store = Store::connect(database.url()).await.unwrap();
        TestApp::build(store, Resource::Postgres(database)).await
    }

    async fn build(store: Store, resource: Resource) -> TestApp {
        store.migrate().await.unwrap();
        let router = TestApp::router_for(&store, &[SECRET]);
        TestApp {
            store,
            router,
            resource,
        }
    }

    fn router_for(store: &Store, secrets: &[&str]) -> Router {
        web::router(web::AppState::new(
            store.clone(),
            web::Config {
                billing_webhook_secrets: secrets.iter().map(|secret| secret.to_string()).collect(),
                // No provider in these tests means trying plans out: test mode, asked for.
                billing_test_mode: secrets.is_empty(),
                ..web::Config::default()
            },
        ))
    }

    /// Another router on the same store, with `config`.
    pub fn router_with_config(&self, config: web::Config) -> Router {
        web::router(web::AppState::new(self.store.clone(), config))
    }

    /// Another router on the same store, with other webhook secrets (none: test mode).
    pub fn router_with_secrets(&self, secrets: &[&str]) -> Router {
        TestApp::router_for(&self.store, secrets)
    }

    /// An account on `plan` and a token of `scope` for it.
    pub async fn account(&self, name: &str, plan: &str, scope: Scope) -> (Account, ApiToken) {
        let account = self.store.create_account(name, plan).await.unwrap();
        let (_, token) = self.store.create_token(name, scope, None).await.unwrap();
        (account, token)
    }

    /// Rows in `table` (a fixed name from a test).
    pub async fn count(&self, table: &str) -> i64 {
        sqlx::query(&format!("SELECT COUNT(*) AS n FROM {table}"))
            .fetch_one(self.store.pool())
            .await
            .unwrap()
            .try_get("n")
            .unwrap()
    }

    /// Kinds of the changes recorded so far, oldest first.
    pub async fn change_kinds(&self) -> Vec<String> {
        sqlx::query("SELECT kind FROM changes ORDER BY id")
            .fetch_all(self.store.pool())
            .await
            .unwrap()
            .iter()
            .map(|row| row.try_get("kind").unwrap())
            .collect()
    }

    /// The plan an account is on.
    pub async fn plan_of(&self, account: &str) -> String {
        self.store.account(account).await.unwrap().unwrap().plan
    }

    /// A client of [`TestApp::router`] without credentials.
    pub fn client(&self) -> Client {
        Client::new(&self.router)
    }

    /// Posts `body` to the webhook with `signature` as `Sluice-Signature`.
    pub async fn webhook(&self, body: &[u8], signature: Option<&str>) -> Answer {
        webhook(&self.router, body, signature).await
    }

    pub async fn finish(self) {
        self.store.close().await;
        match self.resource {
            Resource::Sqlite(dir) => dir.close().unwrap(),
            Resource::Postgres(database) => database.drop_database().await.unwrap(),
        }
    }
}

/// A client of one router: the credentials it presents (a bearer token, a session cookie, a
/// CSRF token; none by default), then JSON requests answered with an [`Answer`].
#[derive(Clone)]
pub struct Client {
    router: Router,
    token: Option<String>,
    cookie: Option<String>,
    csrf: Option<String>,
}

impl Client {
    pub fn new(router: &Router) -> Client {
        Client {
            router: router.clone(),
            token: None,
            cookie: None,
            csrf: None,
        }
    }

    /// Presents `token` as `Authorization: Bearer`.
    pub fn with_token(mut self, token: &ApiToken) -> Client {
        self.token = Some(token.expose().to_owned());
        self
    }

    /// Presents the session cookie `sluice_session=<cookie>` (among another cookie, as a
    /// browser would), without a CSRF token.
    pub fn with_cookie(mut self, cookie: &str) -> Client {
        self.cookie = Some(cookie.to_owned());
        self
    }

    /// Presents `csrf` as `X-CSRF-Token`.
    pub fn with_csrf(mut self, csrf: &str) -> Client {
        self.csrf = Some(csrf.to_owned());
        self
    }

    /// A signed-in browser: the session cookie and its CSRF token.
    pub fn with_session(self, cookie: &str, csrf: &str) -> Client {
        self.with_cookie(cookie).with_csrf(csrf)
    }

    pub async fn get(&self, uri: &str) -> Answer {
        self.request(Method::GET, uri, None).await
    }

    pub async fn delete(&self, uri: &str) -> Answer {
        self.request(Method::DELETE, uri, None).await
    }

    /// A POST without a body.
    pub async fn post(&self, uri: &str) -> Answer {
        self.request(Method::POST, uri, None).await
    }

    pub async fn post_json(&self, uri: &str, body: Value) -> Answer {
        self.request(Method::POST, uri, Some(body)).await
    }

    pub async fn put_json(&self, uri: &str, body: Value) -> Answer {
        self.request(Method::PUT, uri, Some(body)).await
    }

    /// Any request, with a JSON body if given.
    pub async fn request(&self, method: Method, uri: &str, body: Option<Value>) -> Answer {
        let mut request = Request::builder().method(method).uri(uri);
        if let Some(token) = &self.token {
            request = request.header(header::AUTHORIZATION, format!("Bearer {token}"));
        }
        if let Some(cookie) = &self.cookie {
            request = request.header(
                header::COOKIE,
                format!("theme=dark; sluice_session={cookie}"),
            );
        }
        if let Some(csrf) = &self.csrf {
            request = request.header("X-CSRF-Token", csrf);
        }
        let body = match body {
            Some(body) => {
                request = request.header(header::CONTENT_TYPE, "application/json");
                Body::from(body.to_string())
            }
            None => Body::empty(),
        };
        send(&self.router, request.body(body).unwrap()).await
    }
}

/// Posts raw bytes to the webhook.
pub async fn webhook(router: &Router, body: &[u8], signature: Option<&str>) -> Answer {
    let mut request = Request::builder()
        .method(Method::POST)
        .uri("/v1/billing/webhook")
        .header(header::CONTENT_TYPE, "application/json");
    if let Some(signature) = signature {
        request = request.header("Sluice-Signature", signature);
    }
    send(router, request.body(Body::from(body.to_vec())).unwrap()).await
}

/// Sends any request and reads the answer.
pub async fn send(router: &Router, request: Request<Body>) -> Answer {
    let response = router.clone().oneshot(request).await.unwrap();
    let status = response.status();
    let headers = response.headers().clone();
    let bytes = axum::body::to_bytes(response.into_body(), usize::MAX)
        .await
        .unwrap();
    let body = if bytes.is_empty() {
        Value::Null
    } else {
        serde_json::from_slice(&bytes).unwrap_or_else(|_| {
            panic!(
                "{status}: not a JSON body: {:?}",
                String::from_utf8_lossy(&bytes)
            )
        })
    };
    Answer {
        status,
        body,
        headers,
    }
}
