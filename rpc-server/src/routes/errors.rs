//! The HTTP-level error envelope: `{"error":{"code":"…","message":"…"}}`, built by named
//! helpers. Converting to a response never logs; callers decide what to record.

use axum::Json;
use axum::http::{HeaderValue, StatusCode, header};
use axum::response::{IntoResponse, Response};
use serde_json::json;

/// Errors answered before (or instead of) a JSON-RPC response.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum ApiError {
    /// Missing, malformed, unknown, expired or revoked token: all answered alike.
    Unauthorized,
    /// The auth backend is down: the token's validity is unknown.
    Unavailable,
    PayloadTooLarge,
    NotFound,
    MethodNotAllowed,
}

impl ApiError {
    pub fn status(self) -> StatusCode {
        match self {
            Self::Unauthorized => StatusCode::UNAUTHORIZED,
            Self::Unavailable => StatusCode::SERVICE_UNAVAILABLE,
            Self::PayloadTooLarge => StatusCode::PAYLOAD_TOO_LARGE,
            Self::NotFound => StatusCode::NOT_FOUND,
            Self::MethodNotAllowed => StatusCode::METHOD_NOT_ALLOWED,
        }
    }

    fn code_and_message(self) -> (&'static str, &'static str) {
        match self {
            Self::Unauthorized => (
                "unauthorized",
                "a valid token is required: send Authorization: Bearer sk-… or X-Nexus-API-Key: sk-…",
            ),
            Self::Unavailable => (
                "unavailable",
                "authentication is temporarily unavailable; retry shortly",
            ),
            Self::PayloadTooLarge => (
                "payload_too_large",
                "request body is larger than the server accepts",
            ),
            Self::NotFound => ("not_found", "no such endpoint"),
            Self::MethodNotAllowed => ("method_not_allowed", "use POST with a JSON-RPC body"),
        }
    }
}

impl IntoResponse for ApiError {
    fn into_response(self) -> Response {
        let (code, message) = self.code_and_message();
        let mut resp = (
            self.status(),
            Json(json!({ "error": { "code": code, "message": message } })),
        )
            .into_response();
        let h = resp.headers_mut();
        match self {
            Self::Unauthorized => {
                h.insert(
                    header::WWW_AUTHENTICATE,
                    HeaderValue::from_static("Bearer realm=\"nexus\""),
                );
            }
            Self::Unavailable => {
                h.insert(header::RETRY_AFTER, HeaderValue::from_static("2"));
            }
            Self::MethodNotAllowed => {
                h.insert(header::ALLOW, HeaderValue::from_static("POST"));
            }
            _ => {}
        }
        resp
    }
}

pub async fn not_found() -> ApiError {
    ApiError::NotFound
}

pub async fn method_not_allowed() -> ApiError {
    ApiError::MethodNotAllowed
}
