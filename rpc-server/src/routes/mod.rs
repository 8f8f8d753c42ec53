//! HTTP surface of the rpc-server. [`router`] is a plain function so tests can drive it
//! in-process; the layer stack is written here, in order, with why each layer is there.

mod errors;
mod health;
mod rpc;

pub use errors::ApiError;

use crate::auth::AuthProvider;
use crate::control::Control;
use crate::db::Store;
use crate::files::FileService;
use crate::metrics::Metrics;
use crate::zones::ZoneSource;
use axum::Router;
use axum::extract::{MatchedPath, Request, State};
use axum::http::header::{AUTHORIZATION, HeaderName};
use axum::middleware::{self, Next};
use axum::response::Response;
use axum::routing::{get, post};
use std::sync::Arc;
use std::time::{Duration, Instant};
use tower::ServiceBuilder;
use tower_http::request_id::{MakeRequestUuid, PropagateRequestIdLayer, SetRequestIdLayer};
use tower_http::sensitive_headers::SetSensitiveRequestHeadersLayer;
use tower_http::timeout::TimeoutLayer;

const REQUEST_ID: HeaderName = HeaderName::from_static(nexus_wire::headers::REQUEST_ID);

/// Shared, read-only state of the routes.
#[derive(Clone, Debug)]
pub struct AppState(Arc<StateInner>);

#[derive(Debug)]
pub struct StateInner {
    pub auth: Arc<dyn AuthProvider>,
    pub files: FileService,
    pub control: Option<Control>,
    pub store: Option<Store>,
    pub zones: ZoneSource,
    pub metrics: Metrics,
    pub max_body_bytes: usize,
    pub public_url: Option<String>,
    /// Present when Redis is configured.
    pub redis: Option<crate::auth::broadcast::RedisHealth>,
    /// For reading traffic figures (status).
    pub redis_url: Option<secrecy::SecretString>,
    pub limits: Arc<crate::limits::Limits>,
    /// Proxies whose X-Forwarded-For names the client.
    pub trusted_proxies: Vec<ipnet::IpNet>,
    /// Compiled ReBAC grants per identity; absent in single-key mode.
    pub grants: Option<Arc<crate::auth::grants::GrantsSource>>,
    pub started: Instant,
}

impl std::ops::Deref for AppState {
    type Target = StateInner;
    fn deref(&self) -> &StateInner {
        &self.0
    }
}

impl AppState {
    /// Sets the proxies whose X-Forwarded-For is believed. Call before the state is
    /// shared (it is a no-op afterwards).
    pub fn with_trusted_proxies(mut self, trusted: Vec<ipnet::IpNet>) -> Self {
        if let Some(inner) = Arc::get_mut(&mut self.0) {
            inner.trusted_proxies = trusted;
        }
        self
    }

    /// Sets where compiled ReBAC grants come from. Call before the state is shared.
    pub fn with_grants(mut self, grants: Option<Arc<crate::auth::grants::GrantsSource>>) -> Self {
        if let Some(inner) = Arc::get_mut(&mut self.0) {
            inner.grants = grants;
        }
        self
    }

    /// `ok`, `err`, or `n/a` when Redis is not configured.
    pub fn redis_status(&self) -> &'static str {
        match &self.redis {
            None => "n/a",
            Some(h) if h.is_up() => "ok",
            Some(_) => "err",
        }
    }

    #[allow(clippy::too_many_arguments)]
    pub fn new(
        auth: Arc<dyn AuthProvider>,
        files: FileService,
        control: Option<Control>,
        store: Option<Store>,
        zones: ZoneSource,
        metrics: Metrics,
        max_body_bytes: usize,
        public_url: Option<String>,
        redis: Option<crate::auth::broadcast::RedisHealth>,
        redis_url: Option<secrecy::SecretString>,
        limits: Arc<crate::limits::Limits>,
    ) -> Self {
        Self(Arc::new(StateInner {
            auth,
            files,
            control,
            store,
            zones,
            metrics,
            max_body_bytes,
            public_url,
            redis,
            redis_url,
            limits,
            trusted_proxies: Vec::new(),
            grants: None,
            started: Instant::now(),
        }))
    }
}

/// The whole HTTP application.
pub fn router(state: AppState) -> Router {
    let layers = ServiceBuilder::new()
        // Mark credentials sensitive first, so no later layer can log them.
        .layer(SetSensitiveRequestHeadersLayer::new([
            AUTHORIZATION,
            HeaderName::from_static(nexus_wire::headers::API_KEY),
        ]))
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
    Router::new()
        .route(
            "/api/nfs/{method}",
            post(rpc::call_method).fallback(errors::method_not_allowed),
        )
        .route("/health", get(health::health))
        .route("/healthz/live", get(health::live))
        .route("/healthz/ready", get(health::ready))
        .route("/metrics", get(health::metrics))
        .fallback(errors::not_found)
        .layer(layers)
        .with_state(state)
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
