//! Browser sessions: sign-up and sign-in cookies, CSRF, the account API through the cookie,
//! stream tokens, sign-out, and no plaintext password or session id in the database.

use axum::body::Body;
use axum::http::{header, Method, Request, StatusCode};
use axum::Router;
use billing::stream_jwt;
use serde_json::json;
use sqlx::Row;

use crate::{send, Answer, Client, TestApp};

pub(crate) const PASSWORD: &str = "correct horse battery staple";
const JWT_SECRET: &str = "jwt-secret-for-tests-jwt-secret-";

testkit::on_both_backends!(
    crate::TestApp;
    sign_up_sets_a_lax_http_only_secure_cookie,
    sign_in_refusals_are_one_401,
    sign_in_attempts_are_throttled_per_email,
    cookie_requests_that_change_state_need_the_csrf_token,
    the_subscription_toggles_through_the_session,
    stream_tokens_verify_with_the_configured_secret,
    sign_out_ends_the_session,
    the_database_never_holds_a_password_or_session_id,
    over_long_emails_and_passwords_are_refused_before_the_throttle,
    over_large_sign_in_bodies_are_refused_with_413,
);

/// A router in test mode (no webhook secret), with a JWT secret and `Secure` cookies.
pub(crate) fn router(app: &TestApp) -> Router {
    app.router_with_config(web::Config {
        jwt_secret: Some(web::Secret::new(JWT_SECRET)),
        billing_test_mode: true,
        ..web::Config::default()
    })
}

/// The session cookie's value in a `Set-Cookie` answer.
fn cookie_of(answer: &Answer) -> String {
    let set_cookie = answer.headers[header::SET_COOKIE].to_str().unwrap();
    let value = set_cookie
        .strip_prefix("sluice_session=")
        .unwrap()
        .split(';')
        .next()
        .unwrap();
    value.to_owned()
}

/// Signs up `ada@example.com` with account `acme`: (cookie, csrf token).
pub(crate) async fn sign_up(router: &Router) -> (String, String) {
    let answer = Client::new(router)
        .post_json(
            "/v1/session/signup",
            json!({"email": "Ada@Example.com", "password": PASSWORD, "account": "acme"}),
        )
        .await;
    assert_eq!(answer.status, StatusCode::CREATED, "{:?}", answer.body);
    (
        cookie_of(&answer),
        answer.body["csrf_token"].as_str().unwrap().to_owned(),
    )
}

async fn sign_up_sets_a_lax_http_only_secure_cookie(app: &TestApp) {
    let router = router(app);
    let anonymous = Client::new(&router);
    let answer = anonymous
        .post_json(
            "/v1/session/signup",
            json!({"email": "ada@example.com", "password": PASSWORD, "account": "acme"}),
        )
        .await;
    assert_eq!(answer.status, StatusCode::CREATED, "{:?}", answer.body);
    let set_cookie = answer.headers[header::SET_COOKIE].to_str().unwrap();
    let attributes: Vec<&str> = set_cookie.split("; ").skip(1).collect();
    assert_eq!(
        attributes,
        [
            "HttpOnly",
            "SameSite=Lax",
            "Path=/",
            "Max-Age=604800",
            "Secure"
        ]
    );
    let cookie = cookie_of(&answer);
    assert_eq!(cookie.len(), 64);
    assert_eq!(answer.body["account"], "acme");
    let csrf = answer.body["csrf_token"].as_str().unwrap();
    assert_eq!(csrf.len(), 64);
    assert_ne!(csrf, cookie);

    // The session answers who is signed in, and the account API accepts the cookie.
    let signed_in = Client::new(&router).with_cookie(&cookie);
    let session = signed_in.get("/v1/session").await;
    assert_eq!(session.status, StatusCode::OK);
    assert_eq!(session.body["account"], "acme");
    assert_eq!(session.body["csrf_token"], csrf);
    let account = signed_in.get("/v1/account").await;
    assert_eq!(account.status, StatusCode::OK, "{:?}", account.body);
    assert_eq!(account.body["plan"], "free");

    // `insecure_cookies` drops `Secure` only.
    let insecure = app.router_with_config(web::Config {
        insecure_cookies: true,
        ..web::Config::default()
    });
    let answer = Client::new(&insecure)
        .post_json(
            "/v1/session/signin",
            json!({"email": "ada@example.com", "password": PASSWORD}),
        )
        .await;
    assert_eq!(answer.status, StatusCode::OK);
    let set_cookie = answer.headers[header::SET_COOKIE].to_str().unwrap();
    assert!(set_cookie.ends_with("; HttpOnly; SameSite=Lax; Path=/; Max-Age=604800"));

    // Sign-up refusals say what to fix.
    for (body, status) in [
        (
            json!({"email": "bob@example.com", "password": "short", "account": "bob"}),
            StatusCode::UNPROCESSABLE_ENTITY,
        ),
        (
            json!({"email": "ADA@example.com", "password": PASSWORD, "account": "bob"}),
            StatusCode::CONFLICT,
        ),
        (
            json!({"email": "bob@example.com", "password": PASSWORD, "account": "acme"}),
            StatusCode::CONFLICT,
        ),
        (
            json!({"email": "bob@example.com", "password": PASSWORD, "account": "Bob!"}),
            StatusCode::BAD_REQUEST,
        ),
    ] {
        let answer = anonymous.post_json("/v1/session/signup", body).await;
        assert_eq!(answer.status, status, "{:?}", answer.body);
        assert!(answer.headers.get(header::SET_COOKIE).is_none());
        assert!(!answer.error().contains(PASSWORD));
    }

    // Without an account name, one is made from the email address, unique if taken.
    for (email, expected) in [("bob@example.com", "bob"), ("bob@example.net", "bob-")] {
        let body = json!({"email": email, "password": PASSWORD});
        let answer = anonymous.post_json("/v1/session/signup", body).await;
        assert_eq!(answer.status, StatusCode::CREATED, "{:?}", answer.body);
        let account = answer.body["account"].as_str().unwrap();
        assert!(account.starts_with(expected), "{account}");
        assert!(
            account == "bob" || account.len() == "bob-".len() + 4,
            "{account}"
        );
    }
}

async fn sign_in_refusals_are_one_401(app: &TestApp) {
    let router = router(app);
    sign_up(&router).await;
    let anonymous = Client::new(&router);
    let mut refusals = Vec::new();
    for (email, password) in [
        ("ada@example.com", "wrong password!"),
        ("nobody@example.com", PASSWORD),
        ("not an email", PASSWORD),
    ] {
        let answer = anonymous
            .post_json(
                "/v1/session/signin",
                json!({"email": email, "password": password}),
            )
            .await;
        assert_eq!(answer.status, StatusCode::UNAUTHORIZED);
        assert!(answer.headers.get(header::SET_COOKIE).is_none());
        refusals.push(answer.body);
    }
    assert!(
        refusals.iter().all(|body| *body == refusals[0]),
        "{refusals:?}"
    );
    assert_eq!(refusals[0]["error"], web::SIGN_IN_FAILED_MESSAGE);

    let answer = anonymous
        .post_json(
            "/v1/session/signin",
            json!({"email": "ADA@example.com", "password": PASSWORD}),
        )
        .await;
    assert_eq!(answer.status, StatusCode::OK, "{:?}", answer.body);
    assert_eq!(answer.body["account"], "acme");
    let cookie = cookie_of(&answer);
    let session = Client::new(&router)
        .with_cookie(&cookie)
        .get("/v1/session")
        .await;
    assert_eq!(session.body["csrf_token"], answer.body["csrf_token"]);

    // No cookie, or one that names no session: 401.
    for cookie in [None, Some("garbage"), Some(&*"0".repeat(64))] {
        let client = match cookie {
            Some(cookie) => anonymous.clone().with_cookie(cookie),
            None => anonymous.clone(),
        };
        let answer = client.get("/v1/session").await;
        assert_eq!(answer.status, StatusCode::UNAUTHORIZED);
        assert_eq!(answer.error(), web::NO_SESSION_MESSAGE);
        let answer = client.get("/v1/account").await;
        assert_eq!(answer.status, StatusCode::UNAUTHORIZED);
    }
}

async fn cookie_requests_that_change_state_need_the_csrf_token(app: &TestApp) {
    let router = router(app);
    let (cookie, csrf) = sign_up(&router).await;
    let signed_in = Client::new(&router).with_cookie(&cookie);
    let wrong = "f".repeat(64);
    let requests = [
        (
            Method::PUT,
            "/v1/account/subscription",
            Some(json!({"plan": "hobby"})),
        ),
        (Method::POST, "/v1/session/stream-token", None),
        (Method::POST, "/v1/session/signout", None),
    ];
    for (method, uri, body) in requests {
        for presented in [None, Some(wrong.as_str()), Some(""), Some(&csrf[..63])] {
            let client = match presented {
                Some(presented) => signed_in.clone().with_csrf(presented),
                None => signed_in.clone(),
            };
            let answer = client.request(method.clone(), uri, body.clone()).await;
            assert_eq!(
                answer.status,
                StatusCode::FORBIDDEN,
                "{method} {uri} {presented:?}"
            );
            assert_eq!(answer.error(), web::CSRF_MESSAGE);
        }
    }
    // Nothing happened: still on `free`, still signed in.
    assert_eq!(app.plan_of("acme").await, "free");
    let answer = signed_in.get("/v1/session").await;
    assert_eq!(answer.status, StatusCode::OK);
    // Another session's CSRF token does not fit this one.
    let other = Client::new(&router)
        .post_json(
            "/v1/session/signin",
            json!({"email": "ada@example.com", "password": PASSWORD}),
        )
        .await;
    let other_csrf = other.body["csrf_token"].as_str().unwrap();
    let answer = signed_in
        .clone()
        .with_csrf(other_csrf)
        .post("/v1/session/stream-token")
        .await;
    assert_eq!(answer.status, StatusCode::FORBIDDEN);
}

async fn the_subscription_toggles_through_the_session(app: &TestApp) {
    let router = router(app);
    let (cookie, csrf) = sign_up(&router).await;
    let answer = Client::new(&router)
        .with_session(&cookie, &csrf)
        .put_json("/v1/account/subscription", json!({"plan": "hobby"}))
        .await;
    assert_eq!(answer.status, StatusCode::OK, "{:?}", answer.body);
    assert_eq!(answer.body["plan"], "hobby");
    assert_eq!(app.plan_of("acme").await, "hobby");
    assert_eq!(app.change_kinds().await, ["account_plan"]);
    let signed_in = Client::new(&router).with_cookie(&cookie);
    let answer = signed_in.get("/v1/account").await;
    assert_eq!(answer.body["plan"], "hobby");
    // Sessions carry scope `read`: the admin API stays API-token only.
    let answer = signed_in.get("/v1/admin/plans").await;
    assert_eq!(answer.status, StatusCode::FORBIDDEN);
}

async fn stream_tokens_verify_with_the_configured_secret(app: &TestApp) {
    let router = router(app);
    let (cookie, csrf) = sign_up(&router).await;
    let answer = Client::new(&router)
        .with_session(&cookie, &csrf)
        .post("/v1/session/stream-token")
        .await;
    assert_eq!(answer.status, StatusCode::OK, "{:?}", answer.body);
    assert_eq!(answer.body["expires_in"], 300);
    let token = answer.body["token"].as_str().unwrap();
    let now = u64::try_from(chrono::Utc::now().timestamp()).unwrap();
    let claims = stream_jwt::verify(JWT_SECRET.as_bytes(), token, now).unwrap();
    let account = app.store.account("acme").await.unwrap().unwrap();
    assert_eq!(claims.account_id(), Some(account.id));
    assert_eq!(claims.acct, "acme");
    assert!(
        claims.exp >= now + 290 && claims.exp <= now + 300,
        "{claims:?}"
    );
    assert!(stream_jwt::verify(b"another-secret-another-secret-an", token, now).is_err());
    assert!(stream_jwt::verify(JWT_SECRET.as_bytes(), token, now + 331).is_err());

    // Without a configured secret, the process's random key signs them.
    let random = app.router_with_config(web::Config::default());
    let answer = Client::new(&random)
        .with_session(&cookie, &csrf)
        .post("/v1/session/stream-token")
        .await;
    let token = answer.body["token"].as_str().unwrap();
    let secret = web::Config::default();
    assert!(stream_jwt::verify(secret.stream_jwt_secret(), token, now).is_ok());
    assert!(stream_jwt::verify(JWT_SECRET.as_bytes(), token, now).is_err());

    // An API token is no session.
    let (_, api_token) = app.account("globex", "pro", billing::Scope::Read).await;
    let request = Request::post("/v1/session/stream-token")
        .header(
            header::AUTHORIZATION,
            format!("Bearer {}", api_token.expose()),
        )
        .body(Body::empty())
        .unwrap();
    assert_eq!(
        send(&router, request).await.status,
        StatusCode::UNAUTHORIZED
    );
}

async fn sign_out_ends_the_session(app: &TestApp) {
    let router = router(app);
    let (cookie, csrf) = sign_up(&router).await;
    let signed_in = Client::new(&router).with_cookie(&cookie);
    let answer = signed_in
        .clone()
        .with_csrf(&csrf)
        .post("/v1/session/signout")
        .await;
    assert_eq!(answer.status, StatusCode::NO_CONTENT);
    let set_cookie = answer.headers[header::SET_COOKIE].to_str().unwrap();
    assert!(set_cookie.starts_with("sluice_session=; "), "{set_cookie}");
    assert!(set_cookie.contains("Max-Age=0"), "{set_cookie}");
    assert_eq!(app.count("sessions").await, 0);
    for (method, uri, csrf) in [
        (Method::GET, "/v1/session", None),
        (Method::GET, "/v1/account", None),
        (Method::POST, "/v1/session/stream-token", Some(&csrf)),
        (Method::POST, "/v1/session/signout", Some(&csrf)),
    ] {
        let client = match csrf {
            Some(csrf) => signed_in.clone().with_csrf(csrf),
            None => signed_in.clone(),
        };
        let answer = client.request(method, uri, None).await;
        assert_eq!(answer.status, StatusCode::UNAUTHORIZED, "{uri}");
    }
}

async fn the_database_never_holds_a_password_or_session_id(app: &TestApp) {
    let router = router(app);
    let (first, _) = sign_up(&router).await;
    let answer = Client::new(&router)
        .post_json(
            "/v1/session/signin",
            json!({"email": "ada@example.com", "password": PASSWORD}),
        )
        .await;
    let second = cookie_of(&answer);
    let mut stored = String::new();
    for sql in [
        "SELECT email AS a, password_hash AS b FROM users",
        "SELECT id_hash AS a, csrf_token AS b FROM sessions",
    ] {
        for row in sqlx::query(sql).fetch_all(app.store.pool()).await.unwrap() {
            for column in ["a", "b"] {
                stored.push_str(&row.try_get::<String, _>(column).unwrap());
                stored.push('\n');
            }
        }
    }
    assert_eq!(app.count("sessions").await, 2);
    assert!(stored.contains("$argon2id$"), "{stored}");
    for secret in [PASSWORD, first.as_str(), second.as_str()] {
        assert!(!stored.contains(secret), "plaintext {secret:?} stored");
    }
}

async fn sign_in_attempts_are_throttled_per_email(app: &TestApp) {
    let router = router(app);
    sign_up(&router).await;
    let anonymous = Client::new(&router);
    let attempt = |email: &str, password: &str| {
        anonymous.post_json(
            "/v1/session/signin",
            json!({"email": email, "password": password}),
        )
    };
    for _ in 0..10 {
        let answer = attempt("ada@example.com", "a wrong guess here").await;
        assert_eq!(answer.status, StatusCode::UNAUTHORIZED);
    }
    // The eleventh within the minute is refused before any hashing, even with the password.
    let answer = attempt("ADA@example.com", PASSWORD).await;
    assert_eq!(
        answer.status,
        StatusCode::TOO_MANY_REQUESTS,
        "{:?}",
        answer.body
    );
    assert!(
        answer.error().contains("try again in"),
        "{}",
        answer.error()
    );
    let retry_after: u64 = answer.headers[header::RETRY_AFTER]
        .to_str()
        .unwrap()
        .parse()
        .unwrap();
    assert!((1..=7).contains(&retry_after), "{retry_after}");
    assert!(answer.headers.get(header::SET_COOKIE).is_none());
    // Other addresses are not held up.
    let answer = attempt("someone@example.com", "a wrong guess here").await;
    assert_eq!(answer.status, StatusCode::UNAUTHORIZED);
}

/// [`router`]'s configuration, with its state kept to look at the throttle.
fn router_and_state(app: &TestApp) -> (Router, web::AppState) {
    let state = web::AppState::new(
        app.store.clone(),
        web::Config {
            jwt_secret: Some(web::Secret::new(JWT_SECRET)),
            billing_test_mode: true,
            ..web::Config::default()
        },
    );
    (web::router(state.clone()), state)
}

/// An email address of exactly `len` characters (`len` ≥ 70) that passes the sanity check.
fn email_of_len(len: usize) -> String {
    let local = "a".repeat(64);
    let domain = format!("{}.com", "b".repeat(len - 64 - 1 - 4));
    let email = format!("{local}@{domain}");
    assert_eq!(email.len(), len);
    email
}

async fn over_long_emails_and_passwords_are_refused_before_the_throttle(app: &TestApp) {
    let (router, state) = router_and_state(app);
    let anonymous = Client::new(&router);
    for len in [255, 256, 100_000] {
        let email = email_of_len(len);
        for (uri, body) in [
            (
                "/v1/session/signin",
                json!({"email": email, "password": PASSWORD}),
            ),
            (
                "/v1/session/signup",
                json!({"email": email, "password": PASSWORD, "account": "acme"}),
            ),
        ] {
            let answer = anonymous.post_json(uri, body).await;
            if len > web::MAX_SESSION_BODY_BYTES {
                assert_eq!(answer.status, StatusCode::PAYLOAD_TOO_LARGE, "{uri} {len}");
                continue;
            }
            assert_eq!(answer.status, StatusCode::BAD_REQUEST, "{uri} {len}");
            assert!(
                answer.error().contains("email address"),
                "{}",
                answer.error()
            );
            assert!(
                answer.error().contains("at most 254 characters"),
                "{}",
                answer.error()
            );
            assert!(answer.headers.get(header::SET_COOKIE).is_none());
        }
    }
    let long_password = "p".repeat(billing::MAX_PASSWORD_BYTES + 1);
    for (uri, body) in [
        (
            "/v1/session/signin",
            json!({"email": "ada@example.com", "password": long_password}),
        ),
        (
            "/v1/session/signup",
            json!({"email": "ada@example.com", "password": long_password, "account": "acme"}),
        ),
    ] {
        let answer = anonymous.post_json(uri, body).await;
        assert_eq!(answer.status, StatusCode::BAD_REQUEST, "{uri}");
        assert!(
            answer.error().contains("at most 1024 bytes"),
            "{}",
            answer.error()
        );
    }
    // Nothing was remembered, nothing stored.
    assert_eq!(state.throttle.tracked_emails(), 0);
    assert_eq!(app.count("users").await, 0);

    // 254 characters (and blanks around them, trimmed) is an address like any other.
    let email = format!("  {}  ", email_of_len(254));
    let answer = anonymous
        .post_json(
            "/v1/session/signin",
            json!({"email": email, "password": PASSWORD}),
        )
        .await;
    assert_eq!(answer.status, StatusCode::UNAUTHORIZED, "{:?}", answer.body);
    assert_eq!(state.throttle.tracked_emails(), 1);
    let answer = anonymous
        .post_json(
            "/v1/session/signup",
            json!({"email": email, "password": PASSWORD, "account": "acme"}),
        )
        .await;
    assert_eq!(answer.status, StatusCode::CREATED, "{:?}", answer.body);
}

async fn over_large_sign_in_bodies_are_refused_with_413(app: &TestApp) {
    let (router, state) = router_and_state(app);
    // Well-formed JSON of 100 KB: refused for its size, before it is parsed.
    let padding = "x".repeat(100 * 1024);
    for uri in ["/v1/session/signin", "/v1/session/signup"] {
        let body = json!({"email": format!("{padding}@example.com"), "password": PASSWORD});
        let request = Request::builder()
            .method(Method::POST)
            .uri(uri)
            .header(header::CONTENT_TYPE, "application/json")
            .body(Body::from(body.to_string()))
            .unwrap();
        let answer = send(&router, request).await;
        assert_eq!(
            answer.status,
            StatusCode::PAYLOAD_TOO_LARGE,
            "{uri}: {:?}",
            answer.body
        );
        assert!(
            answer.error().contains("length limit"),
            "{}",
            answer.error()
        );
    }
    assert_eq!(state.throttle.tracked_emails(), 0);
    // Just under the limit is read as usual.
    let password = "p".repeat(1000);
    let answer = Client::new(&router)
        .post_json(
            "/v1/session/signin",
            json!({"email": "ada@example.com", "password": password}),
        )
        .await;
    assert_eq!(answer.status, StatusCode::UNAUTHORIZED, "{:?}", answer.body);
}
