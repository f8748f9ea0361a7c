//! In-process tests of `web::router` (`tower::ServiceExt::oneshot`): every test body runs on
//! SQLite and on a fresh PostgreSQL database, like `billing`'s tests, so the API cannot depend
//! on one backend's behaviour.

/// For each named `async fn(&TestApp)` in scope, a module with a `sqlite` and a `postgres` test.
macro_rules! on_both_backends {
    ($($body:ident),* $(,)?) => {
        $(
            mod $body {
                #[tokio::test]
                async fn sqlite() {
                    let app = $crate::TestApp::sqlite().await;
                    super::$body(&app).await;
                    app.finish().await;
                }

                #[tokio::test]
                async fn postgres() {
                    let app = $crate::TestApp::postgres().await;
                    super::$body(&app).await;
                    app.finish().await;
                }
            }
        )*
    };
}

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

    /// Sends a JSON request (with a bearer token, if given) to [`TestApp::router`].
    pub async fn call(
        &self,
        method: Method,
        uri: &str,
        token: Option<&ApiToken>,
        body: Option<Value>,
    ) -> Answer {
        call(&self.router, method, uri, token, body).await
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

/// Sends a JSON request to `router`.
pub async fn call(
    router: &Router,
    method: Method,
    uri: &str,
    token: Option<&ApiToken>,
    body: Option<Value>,
) -> Answer {
    let mut request = Request::builder().method(method).uri(uri);
    if let Some(token) = token {
        request = request.header(header::AUTHORIZATION, format!("Bearer {}", token.expose()));
    }
    let body = match body {
        Some(body) => {
            request = request.header(header::CONTENT_TYPE, "application/json");
            Body::from(body.to_string())
        }
        None => Body::empty(),
    };
    send(router, request.body(body).unwrap()).await
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
