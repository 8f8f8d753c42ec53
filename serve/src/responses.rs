//! The two responses both services build by hand: the HTTP error envelope and the
//! Prometheus scrape.

use axum::Json;
use axum::http::{StatusCode, header};
use axum::response::{IntoResponse, Response};
use nexus_wire::ErrorEnvelope;
use std::borrow::Cow;

/// The content type of the Prometheus text exposition format.
pub const METRICS_CONTENT_TYPE: &str = "text/plain; version=0.0.4; charset=utf-8";

/// `status` with the wire's error envelope, `{"error":{"code":…,"message":…}}`, as JSON.
pub fn error_response(
    status: StatusCode,
    code: impl Into<Cow<'static, str>>,
    message: impl Into<Cow<'static, str>>,
) -> Response {
    (status, Json(ErrorEnvelope::new(code, message))).into_response()
}

/// A rendered Prometheus registry as a `/metrics` response.
pub fn metrics_response(text: String) -> Response {
    ([(header::CONTENT_TYPE, METRICS_CONTENT_TYPE)], text).into_response()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[tokio::test]
    async fn envelope_and_scrape() {
        let r = error_response(StatusCode::NOT_FOUND, "not_found", "no such endpoint");
        assert_eq!(r.status(), StatusCode::NOT_FOUND);
        assert_eq!(r.headers()[header::CONTENT_TYPE], "application/json");
        let body = axum::body::to_bytes(r.into_body(), 1024)
            .await
            .expect("body");
        let e: ErrorEnvelope = serde_json::from_slice(&body).expect("envelope");
        assert_eq!(e, ErrorEnvelope::new("not_found", "no such endpoint"));
        let m = metrics_response("a 1\n".into());
        assert_eq!(m.headers()[header::CONTENT_TYPE], METRICS_CONTENT_TYPE);
    }
}
