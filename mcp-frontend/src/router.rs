//! The frontend's whole HTTP application: a public router (health, metrics, the
//! protected-resource metadata) merged with the protected `/mcp` one, under one edge
//! stack. Every layer appears once, in the order a request meets it.

use crate::error::GatewayError;
use crate::layers::{bearer, guard, limits, observe};
use crate::state::AppState;
use axum::extract::State;
use axum::http::{HeaderMap, HeaderName, StatusCode, header};
use axum::response::{IntoResponse, Response};
use axum::routing::get;
use axum::{Json, Router, middleware};
use serde_json::json;
use tokio_util::sync::CancellationToken;
use tower::ServiceBuilder;
use tower_http::request_id::{MakeRequestUuid, PropagateRequestIdLayer, SetRequestIdLayer};
use tower_http::sensitive_headers::SetSensitiveRequestHeadersLayer;
use tower_http::trace::TraceLayer;

const REQUEST_ID: HeaderName = HeaderName::from_static("x-request-id");

pub(crate) fn router(st: AppState, cancel: CancellationToken) -> Router {
    let mcp = crate::mcp::service(&st, cancel);
    let protected = Router::new().route_service("/mcp", mcp).route_layer(
        ServiceBuilder::new()
            // Count, time and audit every MCP request, the refused ones too.
            .layer(middleware::from_fn_with_state(st.clone(), observe::track))
            // Foreign Host/Origin first: a DNS-rebinding page must not even reach auth.
            .layer(middleware::from_fn_with_state(
                st.clone(),
                guard::host_guard,
            ))
            // No valid token, no MCP: the caller is verified (an unknown token before its
            // body is read), the body read within its deadline and parsed once.
            .layer(middleware::from_fn_with_state(st.clone(), bearer::bearer))
            // Sessions and SSE streams: owned by one key, capped per key and in all.
            .layer(middleware::from_fn_with_state(st.clone(), limits::limits)),
    );
    // The metadata names this resource by its Host: the same guard as /mcp decides which
    // Host values are answered at all.
    let guarded = || middleware::from_fn_with_state(st.clone(), guard::host_guard);
    let mut public = Router::new()
        .route("/health", get(health))
        .route(
            "/.well-known/oauth-protected-resource",
            get(resource_metadata).route_layer(guarded()),
        )
        .route(
            "/.well-known/oauth-protected-resource/mcp",
            get(resource_metadata).route_layer(guarded()),
        );
    if st.cfg.metrics_enabled {
        public = public.route("/metrics", get(metrics));
    }
    public
        .merge(protected)
        .fallback(|| async { GatewayError::NotFound })
        .layer(
            ServiceBuilder::new()
                // Credentials are sensitive from the first layer on, so nothing logs them.
                .layer(SetSensitiveRequestHeadersLayer::new([
                    header::AUTHORIZATION,
                    HeaderName::from_static(crate::layers::bearer::API_KEY_HEADER),
                ]))
                // The caller's request id is kept apart for the audit line, so ours wins.
                .layer(middleware::map_request(observe::stash_client_request_id))
                .layer(SetRequestIdLayer::new(REQUEST_ID, MakeRequestUuid))
                // One span per request, carrying our request id.
                .layer(TraceLayer::new_for_http())
                // The response names the request id the logs and the audit line use.
                .layer(PropagateRequestIdLayer::new(REQUEST_ID)),
        )
        .with_state(st)
}

async fn health(State(st): State<AppState>) -> Response {
    let ok = st.rpc.ready().await;
    let body = Json(json!({
        "status": if ok { "ok" } else { "degraded" },
        "version": env!("CARGO_PKG_VERSION"),
        "rpc_server": if ok { "ok" } else { "err" },
        "redis": if st.cfg.redis_url.is_some() { st.metrics.redis_status() } else { "n/a" },
        "uptime_seconds": st.started.elapsed().as_secs(),
    }));
    if ok {
        body.into_response()
    } else {
        (StatusCode::SERVICE_UNAVAILABLE, body).into_response()
    }
}

async fn metrics(State(st): State<AppState>) -> Response {
    (
        [(
            header::CONTENT_TYPE,
            "text/plain; version=0.0.4; charset=utf-8",
        )],
        st.metrics.render(),
    )
        .into_response()
}

/// RFC 9728 protected resource metadata.
async fn resource_metadata(
    State(st): State<AppState>,
    headers: HeaderMap,
) -> Json<serde_json::Value> {
    let host = headers.get(header::HOST).and_then(|v| v.to_str().ok());
    let resource = format!("{}/mcp", st.public_base(host));
    Json(json!({
        "resource": resource,
        "authorization_servers": [],
        "bearer_methods_supported": ["header"],
        "resource_name": "Nexus Hub MCP",
        "resource_documentation": "Send Authorization: Bearer sk-… (a token minted with `nexus hub token create`).",
    }))
}
