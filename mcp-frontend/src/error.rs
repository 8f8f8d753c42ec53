//! Every refusal the frontend itself sends, and its one status mapping. Bodies are the
//! error envelope both services share (`{"error":{"code","message"}}`), except a JSON-RPC
//! parse error, which is JSON-RPC; refusals an agent can retry carry `Retry-After`.

use crate::forward::RateHeaders;
use axum::Json;
use axum::http::{HeaderValue, StatusCode, header};
use axum::response::{IntoResponse, Response};
use std::time::Duration;

/// Which per-key or global cap a session or stream met.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum CapError {
    /// This key holds its maximum.
    PerKey(usize),
    /// Everyone together holds the maximum.
    Total(usize),
}

#[derive(Debug)]
pub(crate) enum GatewayError {
    ForbiddenHost,
    ForbiddenOrigin,
    /// No valid token; `metadata` is where this resource's RFC 9728 metadata lives.
    Unauthorized {
        metadata: String,
    },
    /// This address failed authentication too often.
    TooManyFailures,
    /// This address has too many requests waiting for their token's verification.
    TooManyUnverified,
    /// The rpc-server limited this caller.
    RateLimited {
        retry_after: Option<u64>,
        rate: Option<RateHeaders>,
    },
    /// Nobody could decide on the token (the rpc-server or its database is down).
    Unavailable,
    /// The rpc-server could not be reached, or did not answer within the rpc timeout.
    UpstreamUnavailable,
    PayloadTooLarge,
    RequestTimeout {
        limit: Duration,
    },
    UnreadableBody,
    /// The body is not JSON: a JSON-RPC parse error (-32700).
    ParseError,
    SessionNotFound,
    OverCap {
        what: &'static str,
        cap: CapError,
        retry: Duration,
    },
    /// A session's tool result could not be held to read its verdict.
    Undeliverable,
    NotFound,
    /// A refusal rmcp sent in text, re-sent in the envelope.
    Transport {
        status: StatusCode,
        message: String,
    },
}

impl GatewayError {
    fn status(&self) -> StatusCode {
        use GatewayError::*;
        match self {
            ForbiddenHost | ForbiddenOrigin => StatusCode::FORBIDDEN,
            Unauthorized { .. } => StatusCode::UNAUTHORIZED,
            TooManyFailures | TooManyUnverified | RateLimited { .. } => {
                StatusCode::TOO_MANY_REQUESTS
            }
            OverCap {
                cap: CapError::PerKey(_),
                ..
            } => StatusCode::TOO_MANY_REQUESTS,
            Unavailable
            | UpstreamUnavailable
            | OverCap {
                cap: CapError::Total(_),
                ..
            } => StatusCode::SERVICE_UNAVAILABLE,
            PayloadTooLarge => StatusCode::PAYLOAD_TOO_LARGE,
            RequestTimeout { .. } => StatusCode::REQUEST_TIMEOUT,
            UnreadableBody | ParseError => StatusCode::BAD_REQUEST,
            SessionNotFound | NotFound => StatusCode::NOT_FOUND,
            Undeliverable => StatusCode::INTERNAL_SERVER_ERROR,
            Transport { status, .. } => *status,
        }
    }

    /// Seconds after which a retry may succeed.
    fn retry_after(&self) -> Option<u64> {
        use GatewayError::*;
        match self {
            TooManyFailures => Some(60),
            TooManyUnverified => Some(1),
            Unavailable | UpstreamUnavailable => Some(2),
            RateLimited { retry_after, .. } => *retry_after,
            OverCap { retry, .. } => Some(retry.as_secs().max(1)),
            _ => None,
        }
    }

    fn code_and_message(&self) -> (String, String) {
        use GatewayError::*;
        let (code, message): (&str, String) = match self {
            ForbiddenHost => (
                "forbidden_host",
                "Host header not allowed (NEXUS_MCP_ALLOWED_HOSTS)".into(),
            ),
            ForbiddenOrigin => (
                "forbidden_origin",
                "Origin not allowed (NEXUS_MCP_ALLOWED_ORIGINS)".into(),
            ),
            Unauthorized { .. } => (
                "unauthorized",
                "a valid token is required: send Authorization: Bearer sk-… or X-Nexus-API-Key: sk-…"
                    .into(),
            ),
            TooManyFailures => (
                "too_many_failures",
                "too many failed authentications from this address; retry later".into(),
            ),
            TooManyUnverified => (
                "too_many_unverified",
                "too many requests from this address are waiting for token verification; retry shortly"
                    .into(),
            ),
            RateLimited { .. } => ("rate_limited", "too many requests; slow down".into()),
            Unavailable => (
                "unavailable",
                "the hub cannot verify tokens right now; retry shortly".into(),
            ),
            UpstreamUnavailable => (
                "unavailable",
                "the hub's rpc-server could not be reached or did not answer in time; retry shortly"
                    .into(),
            ),
            PayloadTooLarge => ("payload_too_large", "request body too large".into()),
            RequestTimeout { limit } => (
                "request_timeout",
                format!(
                    "the request body did not arrive within {} s",
                    limit.as_secs_f64()
                ),
            ),
            UnreadableBody => ("bad_request", "the request body could not be read".into()),
            ParseError => ("parse_error", String::new()),
            SessionNotFound => (
                "session_not_found",
                "no such session for this token; initialize a new one".into(),
            ),
            OverCap {
                what,
                cap: CapError::PerKey(n),
                ..
            } => {
                return (
                    format!("too_many_{what}s"),
                    format!(
                        "this token has {n} open {what}s, the most allowed; close one (DELETE /mcp) or wait for an idle one to close"
                    ),
                );
            }
            OverCap {
                what,
                cap: CapError::Total(n),
                ..
            } => {
                return (
                    format!("{what}s_full"),
                    format!("the hub holds {n} open {what}s, the most allowed; retry later"),
                );
            }
            Undeliverable => (
                "internal",
                "the tool result could not be delivered; retry".into(),
            ),
            NotFound => ("not_found", "no such endpoint; MCP is at /mcp".into()),
            Transport { status, message } => (transport_code(*status), message.clone()),
        };
        (code.to_owned(), message)
    }
}

/// The envelope code of a refusal rmcp sent.
fn transport_code(status: StatusCode) -> &'static str {
    match status {
        StatusCode::BAD_REQUEST => "bad_request",
        StatusCode::NOT_FOUND => "not_found",
        StatusCode::METHOD_NOT_ALLOWED => "method_not_allowed",
        StatusCode::NOT_ACCEPTABLE => "not_acceptable",
        StatusCode::PAYLOAD_TOO_LARGE => "payload_too_large",
        StatusCode::UNSUPPORTED_MEDIA_TYPE => "unsupported_media_type",
        StatusCode::UNPROCESSABLE_ENTITY => "unprocessable",
        s if s.is_server_error() => "internal",
        _ => "error",
    }
}

impl IntoResponse for GatewayError {
    fn into_response(self) -> Response {
        let status = self.status();
        let mut r = match &self {
            GatewayError::ParseError => {
                let body = nexus_wire::jsonrpc::Response::err(
                    serde_json::Value::Null,
                    nexus_wire::RpcError::parse("parse error: the request body is not valid JSON"),
                );
                (status, Json(body)).into_response()
            }
            _ => {
                let (code, message) = self.code_and_message();
                nexus_serve::error_response(status, code, message)
            }
        };
        let h = r.headers_mut();
        if let Some(s) = self.retry_after() {
            h.insert(header::RETRY_AFTER, HeaderValue::from(s));
        }
        match &self {
            GatewayError::Unauthorized { metadata } => {
                // RFC 6750 §3 / MCP authorization: where the metadata is, and the scopes
                // a client should request to work with files.
                let challenge = format!(
                    "Bearer resource_metadata=\"{metadata}\", scope=\"{}\"",
                    nexus_wire::resource::CHALLENGE_SCOPE
                );
                if let Ok(v) = HeaderValue::from_str(&challenge) {
                    h.insert(header::WWW_AUTHENTICATE, v);
                }
            }
            GatewayError::RateLimited {
                rate: Some(rate), ..
            } => rate.apply(h),
            _ => {}
        }
        r
    }
}
