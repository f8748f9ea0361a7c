//! Operations endpoints: `/healthz` (process up), `/readyz` (backends reachable), `/metrics`.

use std::time::Duration;

use axum::extract::State;
use axum::http::{header, StatusCode};
use axum::response::IntoResponse;
use axum::Json;
use serde_json::json;

use crate::AppState;

const CHECK_TIMEOUT: Duration = Duration::from_secs(2);

/// `ok` when the account database answers within 2 s, else what went wrong (for `/readyz`
/// here and `sluice web`'s).
pub async fn database_status(store: &billing::Store) -> String {
    match tokio::time::timeout(CHECK_TIMEOUT, store.ping()).await {
        Ok(Ok(())) => "ok".to_owned(),
        Ok(Err(error)) => format!("{error:#}"),
        Err(_) => "timed out".to_owned(),
    }
}

/// Liveness.
///
/// 200 while the process serves HTTP, whatever its backends do.
#[utoipa::path(
    get,
    path = "/healthz",
    tag = "operations",
    responses((status = 200, description = "The process is up.",
        body = inline(HealthAnswer), example = json!({"status": "ok"}))),
)]
pub async fn healthz() -> impl IntoResponse {
    Json(json!({"status": "ok"}))
}

/// Readiness.
///
/// 200 when the log backend and the account database answer, 503 ("degraded") otherwise. The
/// process keeps running either way and recovers by itself when the backend returns. (`sluice
/// web` answers the same for its account database alone.)
#[utoipa::path(
    get,
    path = "/readyz",
    tag = "operations",
    responses(
        (status = 200, description = "Both backends answer.", body = inline(ReadyAnswer),
            example = json!({"status": "ready", "log": {"backend": "memory", "status": "ok"},
                "database": {"backend": "sqlite", "status": "ok"}})),
        (status = 503, description = "A backend does not answer; its `status` says why.",
            body = inline(ReadyAnswer)),
    ),
)]
pub async fn readyz(State(state): State<AppState>) -> impl IntoResponse {
    let log = match tokio::time::timeout(CHECK_TIMEOUT, state.log.ping()).await {
        Ok(Ok(())) => "ok".to_owned(),
        Ok(Err(error)) => error.to_string(),
        Err(_) => "timed out".to_owned(),
    };
    let database = database_status(&state.store).await;
    let ready = log == "ok" && database == "ok";
    let status = if ready {
        StatusCode::OK
    } else {
        StatusCode::SERVICE_UNAVAILABLE
    };
    let body = json!({
        "status": if ready { "ready" } else { "degraded" },
        "log": { "backend": state.log.backend_name(), "status": log },
        "database": { "backend": state.store.backend_name(), "status": database },
    });
    (status, Json(body))
}

/// Prometheus metrics.
///
/// The node's counters and gauges in the OpenMetrics text format: ingest, delivery, drops,
/// connections, backend errors, the correlator's work.
#[utoipa::path(
    get,
    path = "/metrics",
    tag = "operations",
    responses((status = 200, description = "OpenMetrics text.",
        content_type = "application/openmetrics-text; version=1.0.0; charset=utf-8", body = String)),
)]
pub async fn metrics(State(state): State<AppState>) -> impl IntoResponse {
    (
        [(
            header::CONTENT_TYPE,
            "application/openmetrics-text; version=1.0.0; charset=utf-8",
        )],
        state.metrics.render(),
    )
}

// Documentation only: `healthz` writes it with `json!`.
/// The body of `GET /healthz`.
#[allow(dead_code)]
#[derive(utoipa::ToSchema)]
struct HealthAnswer {
    /// Always `ok`.
    status: String,
}

// Documentation only: `readyz` writes it with `json!`.
/// The body of `GET /readyz`.
#[allow(dead_code)]
#[derive(utoipa::ToSchema)]
struct ReadyAnswer {
    /// `ready` or `degraded`.
    status: String,
    /// The log backend (`memory` or `redis`) and `ok` or what is wrong with it; absent on
    /// `sluice web`, which has no log.
    log: Option<BackendState>,
    /// The account database (`sqlite` or `postgres`) and `ok` or what is wrong with it.
    database: BackendState,
}

/// One backend's state in `GET /readyz`.
#[allow(dead_code)]
#[derive(utoipa::ToSchema)]
struct BackendState {
    backend: String,
    status: String,
}
