//! The public `/auth/*` paths (SPEC §10: login, refresh, logout, me, api-keys, users) and,
//! with `--oauth`, the OAuth authorization server's (SPEC §11: `/oauth/*` and its
//! metadata), relayed to the rpc-server, which alone answers them: the frontend keeps no
//! user, no password, no key and no pending login. A relayed request carries only the headers the auth endpoints
//! read, within the frontend's body bound and deadline; the answer comes back with only
//! the headers a client needs.

use crate::error::GatewayError;
use crate::state::AppState;
use axum::body::Body;
use axum::extract::{Request, State};
use axum::http::{HeaderMap, HeaderName};
use axum::response::{IntoResponse, Response};

/// Largest body an auth request has: a login, a key or user to create.
const MAX_AUTH_BODY: usize = 64 * 1024;

/// Request headers the auth endpoints read. Identity headers and anything else a client
/// sends stay here.
const REQUEST_HEADERS: &[&str] = &[
    "content-type",
    "accept",
    "authorization",
    "user-agent",
    nexus_wire::headers::API_KEY,
    "x-api-key",
    nexus_wire::headers::REQUEST_ID,
];

/// Answer headers a client needs: the body's type, the challenge, limits and caching.
const RESPONSE_HEADERS: &[&str] = &[
    "content-type",
    "www-authenticate",
    "retry-after",
    "cache-control",
    nexus_wire::headers::RATE_LIMIT_LIMIT,
    nexus_wire::headers::RATE_LIMIT_REMAINING,
    nexus_wire::headers::RATE_LIMIT_RESET,
];

/// What the OAuth pages and endpoints read besides: the CSRF cookie.
const OAUTH_REQUEST_HEADERS: &[&str] = &[
    "content-type",
    "accept",
    "cookie",
    "user-agent",
    nexus_wire::headers::REQUEST_ID,
];

/// What the OAuth pages send besides: the cookie, the redirect and the pages' protections.
const OAUTH_RESPONSE_HEADERS: &[&str] = &[
    "content-type",
    "cache-control",
    "pragma",
    "retry-after",
    "set-cookie",
    "location",
    "content-security-policy",
    "x-frame-options",
    "x-content-type-options",
    "referrer-policy",
];

pub(crate) async fn relay_auth(State(st): State<AppState>, req: Request) -> Response {
    relay(st, req, REQUEST_HEADERS, RESPONSE_HEADERS).await
}

pub(crate) async fn relay_oauth(State(st): State<AppState>, req: Request) -> Response {
    relay(st, req, OAUTH_REQUEST_HEADERS, OAUTH_RESPONSE_HEADERS).await
}

async fn relay(
    st: AppState,
    req: Request,
    request_headers: &'static [&'static str],
    response_headers: &'static [&'static str],
) -> Response {
    let (parts, body) = req.into_parts();
    let client = crate::layers::bearer::client_ip(&st, &parts);
    let Ok(body) = axum::body::to_bytes(body, MAX_AUTH_BODY).await else {
        return GatewayError::PayloadTooLarge.into_response();
    };
    let mut relayed = HeaderMap::new();
    for name in request_headers {
        for v in parts.headers.get_all(*name) {
            relayed.append(HeaderName::from_static(name), v.clone());
        }
    }
    let path = parts
        .uri
        .path_and_query()
        .map_or(parts.uri.path(), |p| p.as_str());
    match st
        .rpc
        .relay(parts.method, path, &relayed, body, client)
        .await
    {
        Ok(answer) => {
            let (head, bytes) = answer.into_parts();
            let mut resp = Response::new(Body::from(bytes));
            *resp.status_mut() = head.status;
            for name in response_headers {
                for v in head.headers.get_all(*name) {
                    resp.headers_mut()
                        .append(HeaderName::from_static(name), v.clone());
                }
            }
            resp
        }
        Err(_) => GatewayError::Unavailable.into_response(),
    }
}
