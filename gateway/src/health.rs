//! Operations endpoints: `/healthz` (process up), `/readyz` (backends reachable), `/metrics`.

use std::time::Duration;

use axum::extract::State;
use axum::http::{header, StatusCode};
use axum::response::IntoResponse;
use axum::Json;
use serde_json::json;

use crate::AppState;

const CHECK_TIMEOUT: Duration = Duration::from_secs(2);

pub async fn healthz() -> impl IntoResponse {
    Json(json!({"status": "ok"}))
}

/// 200 when the log backend and the account database answer, 503 ("degraded") otherwise. The
/// process keeps running either way and recovers by itself when the backend returns.
pub async fn readyz(State(state): State<AppState>) -> impl IntoResponse {
    let log = match tokio::time::timeout(CHECK_TIMEOUT, state.log.ping()).await {
        Ok(Ok(())) => "ok".to_owned(),
        Ok(Err(error)) => error.to_string(),
        Err(_) => "timed out".to_owned(),
    };
    let database = match tokio::time::timeout(CHECK_TIMEOUT, state.store.ping()).await {
        Ok(Ok(())) => "ok".to_owned(),
        Ok(Err(error)) => format!("{error:#}"),
        Err(_) => "timed out".to_owned(),
    };
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

pub async fn metrics(State(state): State<AppState>) -> impl IntoResponse {
    (
        [(
            header::CONTENT_TYPE,
            "application/openmetrics-text; version=1.0.0; charset=utf-8",
        )],
        state.metrics.render(),
    )
}
