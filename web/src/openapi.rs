//! The OpenAPI description of this crate's routes ([`ApiDoc`]): the account, session, token,
//! admin and billing-webhook API from the handlers' `#[utoipa::path]` attributes and the wire
//! types of [`crate::api`], plus the HTML pages (from the page router's own table) and the ways
//! a caller proves who it is.

use utoipa::openapi::security::{ApiKey, ApiKeyValue, HttpAuthScheme, HttpBuilder, SecurityScheme};
use utoipa::{Modify, OpenApi};

use crate::api::{
    AccountView, CheckoutView, ErrorBody, Limits, NewTokenRequest, NewTokenView, PlanChoice,
    PlanEdit, PlanList, PlanView, SessionView, SignInRequest, SignUpRequest, StreamTokenView,
    SubscriptionAnswer, TokenList, TokenView, UsageView, WebhookAnswer, WebhookEvent,
};
use crate::api::{
    DeliveryList, DeliveryView, NewWebhookRequest, NewWebhookView, WebhookList, WebhookView,
};

/// The web role's routes: accounts, sessions, tokens, the admin API, the billing webhook and
/// the pages.
#[derive(OpenApi)]
#[openapi(
    paths(
        crate::webhook::receive,
        crate::account::plans,
        crate::account::show,
        crate::account::subscribe,
        crate::account::usage,
        crate::tokens::list,
        crate::tokens::create,
        crate::tokens::revoke,
        crate::webhooks::list,
        crate::webhooks::create,
        crate::webhooks::show,
        crate::webhooks::remove,
        crate::webhooks::deliveries,
        crate::session::show,
        crate::session::sign_up,
        crate::session::sign_in,
        crate::session::sign_out,
        crate::session::stream_token,
        crate::admin::list_plans,
        crate::admin::edit_plan,
        crate::admin::set_account_plan,
        crate::admin::account_usage,
    ),
    components(schemas(
        AccountView,
        CheckoutView,
        ErrorBody,
        Limits,
        NewTokenRequest,
        NewTokenView,
        PlanChoice,
        PlanEdit,
        PlanList,
        PlanView,
        SessionView,
        SignInRequest,
        SignUpRequest,
        StreamTokenView,
        SubscriptionAnswer,
        TokenList,
        TokenView,
        UsageView,
        billing::UsageDay,
        WebhookAnswer,
        WebhookEvent,
        NewWebhookRequest,
        NewWebhookView,
        WebhookView,
        WebhookList,
        DeliveryView,
        DeliveryList,
    )),
    modifiers(&SecuritySchemes, &Pages),
    tags(
        (name = "plans", description = "The plans on offer."),
        (name = "account", description = "The caller's own account: plan, subscription, usage. \
            An API token, or the browser's session cookie (with `X-CSRF-Token` to change \
            anything)."),
        (name = "tokens", description = "The signed-in user's API tokens. Browser sessions only: \
            an API token cannot mint tokens."),
        (name = "session", description = "Browser sign-up, sign-in and sign-out, and the \
            short-lived tokens the page streams with."),
        (name = "webhooks", description = "The account's outbound webhook endpoints: the \
            stream POSTed in signed batches to a URL, and the delivery log. An API token, or \
            the session cookie (with `X-CSRF-Token` to change anything)."),
        (name = "admin", description = "Every plan and account. `admin` tokens only."),
        (name = "billing", description = "The billing provider's signed subscription events."),
        (name = "pages", description = "The browser pages (HTML; each loads one script from \
            `/assets`). Signed-in pages redirect to `/signin` without a session."),
    )
)]
pub struct ApiDoc;

/// Adds this API's security schemes.
struct SecuritySchemes;

impl Modify for SecuritySchemes {
    fn modify(&self, openapi: &mut utoipa::openapi::OpenApi) {
        let components = openapi.components.get_or_insert_with(Default::default);
        components.add_security_scheme(
            "api_token",
            SecurityScheme::Http(
                HttpBuilder::new()
                    .scheme(HttpAuthScheme::Bearer)
                    .bearer_format("slc_…")
                    .description(Some(
                        "An API token (`slc_…`): `Authorization: Bearer slc_…` (or \
                         `Authorization: Token token=slc_…`). The admin API needs scope `admin`.",
                    ))
                    .build(),
            ),
        );
        components.add_security_scheme(
            "session_cookie",
            SecurityScheme::ApiKey(ApiKey::Cookie(ApiKeyValue::with_description(
                crate::SESSION_COOKIE,
                "The browser session set by sign-up and sign-in (`HttpOnly; SameSite=Lax`, \
                 7 days). State-changing requests with it also need `X-CSRF-Token`.",
            ))),
        );
        components.add_security_scheme(
            "csrf_token",
            SecurityScheme::ApiKey(ApiKey::Header(ApiKeyValue::with_description(
                "X-CSRF-Token",
                "The session's `csrf_token` (from sign-in or `GET /v1/session`), required with \
                 the session cookie on every request but GET, HEAD and OPTIONS.",
            ))),
        );
        components.add_security_scheme(
            "webhook_signature",
            SecurityScheme::ApiKey(ApiKey::Header(ApiKeyValue::with_description(
                billing::webhook_signature::SIGNATURE_HEADER,
                "`t=<unix seconds>,v1=<hex HMAC-SHA256(secret, \"<t>.<raw body>\")>` with a \
                 secret given to `--billing-webhook-secret`; `t` within 5 minutes of now.",
            ))),
        );
    }
}

/// Adds the HTML pages, from the page router's table.
struct Pages;

impl Modify for Pages {
    fn modify(&self, openapi: &mut utoipa::openapi::OpenApi) {
        crate::page::describe(openapi);
    }
}
