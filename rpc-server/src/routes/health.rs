//! Health, readiness, liveness and metrics endpoints (no token needed).

use crate::state::AppState;
use axum::Json;
use axum::extract::State;
use axum::http::StatusCode;
use axum::response::{IntoResponse, Response};
use serde_json::json;
use std::time::Duration;

async fn database_ok(st: &AppState) -> Option<bool> {
    let store = st.store.as_ref()?;
    let ok = tokio::time::timeout(Duration::from_secs(2), store.ping())
        .await
        .is_ok_and(|r| r.is_ok());
    if !ok {
        st.metrics.db_errors.with_label_values(&["ping"]).inc();
    }
    Some(ok)
}

pub async fn health(State(st): State<AppState>) -> Json<serde_json::Value> {
    let database = match database_ok(&st).await {
        Some(true) => "ok",
        Some(false) => "err",
        None => "n/a",
    };
    Json(json!({
        "status": "ok",
        "version": env!("CARGO_PKG_VERSION"),
        "database": database,
        "redis": st.redis_status(),
        "bus": st.bus_status(),
        "auth": st.auth.kind(),
        "uptime_seconds": st.started.elapsed().as_secs(),
    }))
}

pub async fn live() -> Json<serde_json::Value> {
    Json(json!({ "status": "ok" }))
}

pub async fn ready(State(st): State<AppState>) -> Response {
    match database_ok(&st).await {
        Some(false) => (
            StatusCode::SERVICE_UNAVAILABLE,
            Json(json!({ "status": "unavailable", "database": "err" })),
        )
            .into_response(),
        _ => Json(json!({ "status": "ready" })).into_response(),
    }
}

pub async fn metrics(State(st): State<AppState>) -> Response {
    nexus_serve::metrics_response(st.metrics.render())
}
