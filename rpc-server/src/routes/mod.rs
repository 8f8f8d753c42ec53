//! HTTP surface of the rpc-server. [`router`] builds it (handed out by `Application::router`
//! to drive in-process); the layer stack is written here, in order, with why each layer is
//! there.

mod auth;
mod health;
mod oauth;
mod providers;
mod rpc;

pub(crate) use auth::LoginThrottle;

use crate::error::ApiError;
use crate::state::AppState;
use axum::Router;
use axum::extract::{MatchedPath, Request, State};
use axum::http::header::{AUTHORIZATION, HeaderName};
use axum::middleware::{self, Next};
use axum::response::Response;
use axum::routing::{delete, get, post};
use std::time::Duration;
use tower::ServiceBuilder;
use tower::util::MapRequestLayer;
use tower_http::request_id::{MakeRequestUuid, PropagateRequestIdLayer, SetRequestIdLayer};
use tower_http::sensitive_headers::SetSensitiveRequestHeadersLayer;
use tower_http::timeout::TimeoutLayer;

const REQUEST_ID: HeaderName = HeaderName::from_static(nexus_wire::headers::REQUEST_ID);

/// The whole HTTP application.
pub(crate) fn router(state: AppState) -> Router {
    layered(routes(), state)
}

/// Every endpoint, by path.
fn routes() -> Router<AppState> {
    Router::new()
        .route(
            "/api/nfs/{method}",
            post(rpc::call_method).fallback(method_not_allowed),
        )
        .route("/auth/login", post(auth::post_login))
        .route("/auth/refresh", post(auth::post_refresh))
        .route("/auth/logout", post(auth::post_logout))
        .route("/auth/me", get(auth::get_me))
        .route(
            "/auth/api-keys",
            post(auth::post_api_keys).get(auth::get_api_keys),
        )
        .route("/auth/api-keys/{id}", delete(auth::delete_api_keys))
        .route("/auth/users", post(auth::post_users).get(auth::get_users))
        .route("/auth/users/{u}", delete(auth::delete_users))
        .route(
            "/auth/users/{u}/permissions",
            post(auth::post_user_permissions),
        )
        .route("/auth/keys/rotate", post(auth::post_keys_rotate))
        .route(
            "/.well-known/oauth-authorization-server",
            get(oauth::metadata),
        )
        .route("/.well-known/openid-configuration", get(oauth::metadata))
        .route("/oauth/authorize", get(oauth::authorize))
        .route("/oauth/authorize/login", post(oauth::login))
        .route("/oauth/authorize/consent", post(oauth::consent))
        .route("/oauth/authorize/upstream", post(oauth::upstream))
        .route(
            crate::oauth::UPSTREAM_CALLBACK_PATH,
            get(oauth::upstream_callback),
        )
        .route("/oauth/token", post(oauth::token))
        .route("/oauth/register", post(oauth::register))
        .route("/oauth/revoke", post(oauth::revoke))
        .route("/health", get(health::health))
        .route("/healthz/live", get(health::live))
        .route("/healthz/ready", get(health::ready))
        .route("/metrics", get(health::metrics))
        .route(
            nexus_wire::resource::AUTH_PROVIDERS_PATH,
            get(providers::auth_providers),
        )
        .fallback(not_found)
}

/// `routes` under the layer stack, outermost (first to see a request) first.
fn layered(routes: Router<AppState>, state: AppState) -> Router {
    let layers = ServiceBuilder::new()
        // Mark credentials sensitive first, so no later layer can log them.
        .layer(SetSensitiveRequestHeadersLayer::new([
            AUTHORIZATION,
            HeaderName::from_static(nexus_wire::headers::API_KEY),
            HeaderName::from_static(nexus_wire::headers::X_API_KEY),
        ]))
        // The identity headers are this server's word on its responses; a client's copies
        // are dropped before anything can read them.
        .layer(MapRequestLayer::new(strip_identity))
        // Give every request an id (or keep the caller's) to correlate logs.
        .layer(SetRequestIdLayer::new(REQUEST_ID, MakeRequestUuid))
        // One span per request: method, matched route and request id; never the raw URI,
        // headers or bodies.
        .layer(nexus_serve::telemetry::http_trace())
        // Echo the id so callers can quote it.
        .layer(PropagateRequestIdLayer::new(REQUEST_ID))
        // Count requests by matched route, never by raw path.
        .layer(middleware::from_fn_with_state(state.clone(), track_http))
        // Bound every request in time so a stuck disk or database cannot pin a connection.
        .layer(TimeoutLayer::with_status_code(
            axum::http::StatusCode::REQUEST_TIMEOUT,
            Duration::from_secs(120),
        ));
    routes.layer(layers).with_state(state)
}

fn strip_identity(mut req: Request) -> Request {
    for name in nexus_wire::headers::IDENTITY {
        req.headers_mut().remove(name);
    }
    req
}

async fn track_http(State(st): State<AppState>, req: Request, next: Next) -> Response {
    let route = req
        .extensions()
        .get::<MatchedPath>()
        .map(|m| match m.as_str() {
            "/api/nfs/{method}" => "/api/nfs/{method}",
            "/health" => "/health",
            "/healthz/live" => "/healthz/live",
            "/healthz/ready" => "/healthz/ready",
            "/metrics" => "/metrics",
            "/auth/login" => "/auth/login",
            "/auth/refresh" => "/auth/refresh",
            "/auth/logout" => "/auth/logout",
            "/auth/me" => "/auth/me",
            "/auth/api-keys" => "/auth/api-keys",
            "/auth/api-keys/{id}" => "/auth/api-keys/{id}",
            "/auth/users" => "/auth/users",
            "/auth/users/{u}" => "/auth/users/{u}",
            "/auth/users/{u}/permissions" => "/auth/users/{u}/permissions",
            "/auth/keys/rotate" => "/auth/keys/rotate",
            "/.well-known/oauth-authorization-server" => "/.well-known/oauth-authorization-server",
            "/.well-known/openid-configuration" => "/.well-known/openid-configuration",
            "/oauth/authorize" => "/oauth/authorize",
            "/oauth/authorize/login" => "/oauth/authorize/login",
            "/oauth/authorize/consent" => "/oauth/authorize/consent",
            "/oauth/authorize/upstream" => "/oauth/authorize/upstream",
            "/oauth/upstream/callback" => "/oauth/upstream/callback",
            "/oauth/token" => "/oauth/token",
            "/oauth/register" => "/oauth/register",
            "/oauth/revoke" => "/oauth/revoke",
            nexus_wire::resource::AUTH_PROVIDERS_PATH => nexus_wire::resource::AUTH_PROVIDERS_PATH,
            _ => "other",
        })
        .unwrap_or("unmatched");
    let resp = next.run(req).await;
    let class = match resp.status().as_u16() {
        200..=299 => "2xx",
        400..=499 => "4xx",
        500..=599 => "5xx",
        _ => "other",
    };
    st.metrics
        .http_requests
        .with_label_values(&[route, class])
        .inc();
    resp
}

async fn not_found() -> ApiError {
    ApiError::NotFound
}

async fn method_not_allowed() -> ApiError {
    ApiError::MethodNotAllowed
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::config::AuthMode;
    use axum::body::Body;
    use axum::http::HeaderMap;
    use nexus_wire::headers;
    use tower::ServiceExt;

    /// What reaches a handler behind the full layer stack: which of the given headers.
    async fn seen(h: HeaderMap) -> String {
        let mut names: Vec<&str> = headers::IDENTITY
            .iter()
            .chain([&headers::COUNT_REQUEST])
            .copied()
            .filter(|n| h.contains_key(*n))
            .collect();
        names.sort_unstable();
        names.join(",")
    }

    #[tokio::test]
    async fn identity_headers_from_a_client_never_reach_a_handler() {
        let dir = tempfile::tempdir().expect("tempdir");
        let cfg = crate::config::ServerConfig {
            auth: AuthMode::SingleKey {
                key: secrecy::SecretString::from("sk-0123456789abcdef0123".to_owned()),
            },
            ..crate::testing::config("unused", dir.path(), &Default::default())
        };
        let app = crate::Application::build(cfg).await.expect("app");
        let probe = routes().route("/probe", get(seen));
        let mut req = axum::http::Request::get("/probe");
        for name in headers::IDENTITY.iter().chain([&headers::COUNT_REQUEST]) {
            req = req.header(*name, "forged");
        }
        let resp = layered(probe, app.state().clone())
            .oneshot(req.body(Body::empty()).expect("request"))
            .await
            .expect("response");
        let body = axum::body::to_bytes(resp.into_body(), 1024)
            .await
            .expect("body");
        assert_eq!(
            body,
            headers::COUNT_REQUEST,
            "only the non-identity header arrives"
        );
    }
}
