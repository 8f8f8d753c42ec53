//! The one error type of the HTTP edge: every status the rpc-server answers with other
//! than 200 (a JSON-RPC error is a 200 with an `error` member), mapped in one place, with
//! the wire's error envelope as its body. Converting to a response never logs; callers
//! decide what to record.

use crate::limits::Decision;
use axum::http::{HeaderValue, StatusCode, header};
use axum::response::{IntoResponse, Response};
use nexus_wire::headers;

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
    /// The caller's token is over its rate limit.
    RateLimited(Decision),
    /// Too many failed authentications from this address.
    TooManyFailures,
    /// Input refused before anything changed (the `/auth/*` REST routes).
    BadRequest(&'static str),
    /// Authenticated, but not allowed (the `/auth/*` REST routes).
    Forbidden(&'static str),
    /// The thing exists already (the `/auth/*` REST routes).
    Conflict(&'static str),
    /// Too many login attempts from this address, or for this username from it.
    LoginThrottled,
}

/// Sets `X-RateLimit-Limit`, `-Remaining` and `-Reset` (seconds until the budget is whole).
pub fn rate_limit_headers(h: &mut axum::http::HeaderMap, d: &Decision) {
    for (name, v) in [
        (headers::RATE_LIMIT_LIMIT, u64::from(d.limit)),
        (headers::RATE_LIMIT_REMAINING, u64::from(d.remaining)),
        (headers::RATE_LIMIT_RESET, d.reset_secs),
    ] {
        h.insert(name, HeaderValue::from(v));
    }
}

impl ApiError {
    pub fn status(self) -> StatusCode {
        match self {
            Self::Unauthorized => StatusCode::UNAUTHORIZED,
            Self::Unavailable => StatusCode::SERVICE_UNAVAILABLE,
            Self::PayloadTooLarge => StatusCode::PAYLOAD_TOO_LARGE,
            Self::NotFound => StatusCode::NOT_FOUND,
            Self::MethodNotAllowed => StatusCode::METHOD_NOT_ALLOWED,
            Self::RateLimited(_) | Self::TooManyFailures | Self::LoginThrottled => {
                StatusCode::TOO_MANY_REQUESTS
            }
            Self::BadRequest(_) => StatusCode::BAD_REQUEST,
            Self::Forbidden(_) => StatusCode::FORBIDDEN,
            Self::Conflict(_) => StatusCode::CONFLICT,
        }
    }

    /// The `outcome` label of `nexus_rpc_requests_total` for a call refused with this.
    pub(crate) fn outcome(self) -> &'static str {
        match self {
            Self::Unauthorized => "unauthorized",
            Self::Unavailable => "unavailable",
            Self::PayloadTooLarge => "too_large",
            Self::NotFound => "not_found",
            Self::MethodNotAllowed => "method_not_allowed",
            Self::RateLimited(_) | Self::TooManyFailures | Self::LoginThrottled => "rate_limited",
            Self::BadRequest(_) => "bad_request",
            Self::Forbidden(_) => "forbidden",
            Self::Conflict(_) => "conflict",
        }
    }

    /// The response and its outcome label.
    pub(crate) fn answer(self) -> (Response, &'static str) {
        (self.into_response(), self.outcome())
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
            Self::RateLimited(_) => (
                "rate_limited",
                "this token is over its rate limit; retry after Retry-After seconds",
            ),
            Self::TooManyFailures => (
                "too_many_failures",
                "too many failed authentications from this address; retry later",
            ),
            Self::BadRequest(m) => ("bad_request", m),
            Self::Forbidden(m) => ("forbidden", m),
            Self::Conflict(m) => ("conflict", m),
            Self::LoginThrottled => (
                "too_many_attempts",
                "too many login attempts; retry after Retry-After seconds",
            ),
        }
    }
}

impl IntoResponse for ApiError {
    fn into_response(self) -> Response {
        let (code, message) = self.code_and_message();
        let mut resp = nexus_serve::error_response(self.status(), code, message);
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
            Self::RateLimited(d) => {
                rate_limit_headers(h, &d);
                h.insert(
                    header::RETRY_AFTER,
                    HeaderValue::from(d.retry_after_secs.max(1)),
                );
            }
            Self::TooManyFailures | Self::LoginThrottled => {
                h.insert(header::RETRY_AFTER, HeaderValue::from_static("60"));
            }
            _ => {}
        }
        resp
    }
}
