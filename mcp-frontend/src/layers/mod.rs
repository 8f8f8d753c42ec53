//! The frontend's tower layers, applied to `/mcp` in this order (outermost first):
//! metrics → host guard → bearer → rmcp. Request ids and tracing wrap the whole router
//! (see `app::router`).

pub mod bearer;
pub mod guard;
pub mod metrics;

use axum::Json;
use axum::http::{HeaderValue, StatusCode, header};
use axum::response::{IntoResponse, Response};
use serde_json::json;

/// The frontend's HTTP error envelope, the same shape as the rpc-server's.
pub fn error_response(status: StatusCode, code: &str, message: &str) -> Response {
    (
        status,
        Json(json!({ "error": { "code": code, "message": message } })),
    )
        .into_response()
}

pub fn unauthorized(resource_metadata: &str) -> Response {
    let mut r = error_response(
        StatusCode::UNAUTHORIZED,
        "unauthorized",
        "a valid token is required: send Authorization: Bearer sk-… or X-Nexus-API-Key: sk-…",
    );
    let challenge = format!("Bearer resource_metadata=\"{resource_metadata}\"");
    if let Ok(v) = HeaderValue::from_str(&challenge) {
        r.headers_mut().insert(header::WWW_AUTHENTICATE, v);
    }
    r
}
