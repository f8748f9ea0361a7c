//! Operations endpoints: `/healthz` (process up), `/readyz` (backends reachable), `/metrics`.

use std::time::Duration;

use axum::extract::State;
use axum::http::{header, StatusCode};
use axum::response::IntoResponse;
use axum::Json;
use serde::Serialize;
use serde_json::json;

use crate::AppState;

const CHECK_TIMEOUT: Duration = Duration::from_secs(2);

/// One backend's answer to a readiness check. What went wrong is logged, not answered: the
/// endpoint is public and error text can carry hostnames and credentials.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, utoipa::ToSchema)]
#[serde(rename_all = "snake_case")]
pub enum BackendStatus {
    Ok,
    Unreachable,
    TimedOut,
}

/// One backend in `GET /readyz`: which it is and how it answered.
#[derive(Debug, Clone, Serialize, utoipa::ToSchema)]
pub struct BackendState {
    /// `memory` or `redis` for the log, `sqlite` or `postgres` for the database.
    pub backend: &'static str,
    pub status: BackendStatus,
}

impl BackendState {
    /// Runs `check` within 2 s; a failure is logged under `what`.
    pub async fn check<E: std::fmt::Display>(
        what: &'static str,
        backend: &'static str,
        check: impl std::future::Future<Output = Result<(), E>>,
    ) -> BackendState {
        let status = match tokio::time::timeout(CHECK_TIMEOUT, check).await {
            Ok(Ok(())) => BackendStatus::Ok,
            Ok(Err(error)) => {
                tracing::warn!(backend, error = %error, "readiness: the {what} does not answer");
                BackendStatus::Unreachable
            }
            Err(_) => {
                tracing::warn!(backend, "readiness: the {what} did not answer within 2 s");
                BackendStatus::TimedOut
            }
        };
        BackendState { backend, status }
    }

    /// The account database (for `/readyz` here and `sluice web`'s).
    pub async fn database(store: &billing::Store) -> BackendState {
        BackendState::check("account database", store.backend_name(), async {
            store.ping().await.map_err(|error| format!("{error:#}"))
        })
        .await
    }
}

/// `ready` when every backend answers, `degraded` otherwise.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, utoipa::ToSchema)]
#[serde(rename_all = "snake_case")]
pub enum Readiness {
    Ready,
    Degraded,
}

/// The body of `GET /readyz`.
#[derive(Debug, Clone, Serialize, utoipa::ToSchema)]
pub struct ReadyAnswer {
    pub status: Readiness,
    /// The log backend; absent on `sluice web`, which has no log.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub log: Option<BackendState>,
    /// The account database.
    pub database: BackendState,
}

impl ReadyAnswer {
    pub fn new(log: Option<BackendState>, database: BackendState) -> ReadyAnswer {
        let ready = database.status == BackendStatus::Ok
            && log
                .as_ref()
                .is_none_or(|log| log.status == BackendStatus::Ok);
        ReadyAnswer {
            status: if ready {
                Readiness::Ready
            } else {
                Readiness::Degraded
            },
            log,
            database,
        }
    }
}

impl IntoResponse for ReadyAnswer {
    /// 200 when ready, 503 when degraded.
    fn into_response(self) -> axum::response::Response {
        let code = match self.status {
            Readiness::Ready => StatusCode::OK,
            Readiness::Degraded => StatusCode::SERVICE_UNAVAILABLE,
        };
        (code, Json(self)).into_response()
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
        (status = 200, description = "Both backends answer.", body = ReadyAnswer,
            example = json!({"status": "ready", "log": {"backend": "memory", "status": "ok"},
                "database": {"backend": "sqlite", "status": "ok"}})),
        (status = 503, description = "A backend does not answer (`unreachable` or `timed_out`; \
            the node's log says why).",
            body = ReadyAnswer),
    ),
)]
pub async fn readyz(State(state): State<AppState>) -> ReadyAnswer {
    let log = BackendState::check("log", state.log.backend_name(), state.log.ping()).await;
    let database = BackendState::database(&state.store).await;
    ReadyAnswer::new(Some(log), database)
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
