//! Startup as a value: [`Frontend::build`] binds the listener and wires rmcp behind the
//! layers; [`Frontend::run_until_stopped`] serves until shutdown.

use crate::config::FrontendConfig;
use crate::forward::RpcClient;
use crate::layers;
use crate::metrics::Metrics;
use crate::sessions::SessionBindings;
use crate::tools::NexusTools;
use anyhow::Context;
use axum::extract::State;
use axum::http::{HeaderMap, HeaderName, StatusCode, header};
use axum::response::{IntoResponse, Response};
use axum::routing::get;
use axum::{Json, Router, middleware};
use rmcp::transport::streamable_http_server::session::local::LocalSessionManager;
use rmcp::transport::streamable_http_server::{StreamableHttpServerConfig, StreamableHttpService};
use serde_json::json;
use std::future::Future;
use std::sync::Arc;
use std::time::Instant;
use tokio::net::TcpListener;
use tower::ServiceBuilder;
use tower_http::request_id::{MakeRequestUuid, PropagateRequestIdLayer, SetRequestIdLayer};
use tower_http::sensitive_headers::SetSensitiveRequestHeadersLayer;
use tower_http::trace::TraceLayer;

/// Shared state of the frontend's layers and routes.
#[derive(Clone, Debug)]
pub struct AppState(Arc<Inner>);

#[derive(Debug)]
pub struct Inner {
    pub cfg: FrontendConfig,
    pub rpc: Arc<RpcClient>,
    pub metrics: Metrics,
    pub sessions: SessionBindings,
    /// rmcp's sessions, capped and bound to key ids through `sessions`.
    pub session_manager: Arc<LocalSessionManager>,
    /// Fingerprints of recently verified tokens.
    pub known: crate::admission::KnownTokens,
    /// Requests per client address whose token is being verified.
    pub unverified: crate::admission::Unverified,
    /// Open SSE streams.
    pub streams: crate::admission::Streams,
    pub audit: crate::audit::Auditor,
    /// Failed authentications per client address.
    pub auth_failures: governor::DefaultKeyedRateLimiter<std::net::IpAddr>,
    pub started: Instant,
}

impl std::ops::Deref for AppState {
    type Target = Inner;
    fn deref(&self) -> &Inner {
        &self.0
    }
}

pub struct Frontend {
    listener: TcpListener,
    state: AppState,
    tls: Option<axum_server::tls_rustls::RustlsConfig>,
    cancel: tokio_util_cancel::Token,
}

mod tokio_util_cancel {
    pub type Token = tokio_util::sync::CancellationToken;
}

impl std::fmt::Debug for Frontend {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Frontend")
            .field("addr", &self.listener.local_addr().ok())
            .finish()
    }
}

const REQUEST_ID: HeaderName = HeaderName::from_static("x-request-id");

impl Frontend {
    pub async fn build(cfg: FrontendConfig) -> anyhow::Result<Self> {
        let rpc = Arc::new(RpcClient::new(&cfg.rpc_url, cfg.rpc_timeout)?);
        let tls = match &cfg.tls {
            Some((cert, key)) => Some(nexus_serve::load_tls(cert, key).await?),
            None => None,
        };
        let listener = nexus_serve::bind(&cfg.host, cfg.port)
            .await
            .with_context(|| format!("cannot listen on {}:{}", cfg.host, cfg.port))?;
        let metrics = Metrics::new();
        let cfg_failures = cfg.auth_failures_per_min;
        let audit = crate::audit::Auditor::start(
            cfg.redis_url
                .as_ref()
                .map(|u| secrecy::ExposeSecret::expose_secret(u).to_owned()),
            metrics.clone(),
            cfg.audit_stdout,
        );
        let limits = cfg.limits;
        let mut manager = LocalSessionManager::default();
        manager.session_config.keep_alive = Some(limits.session_idle_timeout);
        let session_manager = Arc::new(manager);
        let state = AppState(Arc::new(Inner {
            cfg,
            rpc,
            audit,
            metrics,
            sessions: SessionBindings::new(
                session_manager.clone(),
                limits.sessions_per_key,
                limits.sessions,
            ),
            session_manager,
            known: crate::admission::KnownTokens::new()?,
            unverified: crate::admission::Unverified::new(limits.unverified_per_addr),
            streams: crate::admission::Streams::new(limits.streams_per_key, limits.streams),
            auth_failures: governor::RateLimiter::keyed(failure_quota(cfg_failures)),
            started: Instant::now(),
        }));
        Ok(Self {
            listener,
            state,
            tls,
            cancel: Default::default(),
        })
    }

    pub fn port(&self) -> u16 {
        self.listener.local_addr().map(|a| a.port()).unwrap_or(0)
    }

    pub fn state(&self) -> &AppState {
        &self.state
    }

    pub async fn run_until_stopped(
        self,
        shutdown: impl Future<Output = ()> + Send + 'static,
    ) -> anyhow::Result<()> {
        let app = router(self.state.clone(), self.cancel.clone());
        tracing::info!(addr = ?self.listener.local_addr().ok(), rpc = %self.state.rpc.base(), "mcp-frontend listening");
        let st = self.state.clone();
        let housekeeping = tokio::spawn(async move {
            let mut tick = tokio::time::interval(std::time::Duration::from_secs(60));
            loop {
                tick.tick().await;
                st.auth_failures.retain_recent();
            }
        });
        let cancel = self.cancel.clone();
        let shutdown = async move {
            shutdown.await;
            cancel.cancel();
        };
        // Plain or TLS, with header-read and idle timeouts and a connection cap.
        let limits = self.state.cfg.connections;
        let res = nexus_serve::serve(self.listener, self.tls, app, limits, shutdown).await;
        housekeeping.abort();
        res.context("server error")
    }
}

fn failure_quota(per_min: u32) -> governor::Quota {
    let n = std::num::NonZeroU32::new(per_min.max(1)).unwrap_or(std::num::NonZeroU32::MIN);
    governor::Quota::per_minute(n)
}

/// The whole HTTP application of the frontend.
pub fn router(st: AppState, cancel: tokio_util_cancel::Token) -> Router {
    let cfg = &st.cfg;
    let mut mcp_cfg = StreamableHttpServerConfig::default()
        .with_legacy_session_mode(true)
        .with_json_response(true)
        .with_max_request_body_bytes(cfg.max_body_bytes)
        .with_cancellation_token(cancel.child_token());
    mcp_cfg = if cfg.allowed_hosts.iter().any(|h| h == "*") {
        mcp_cfg.disable_allowed_hosts()
    } else {
        mcp_cfg.with_allowed_hosts(cfg.allowed_hosts.clone())
    };
    // Origins are judged by the host guard alone (it also lets in this hub's own origin,
    // and loopback pages when the hub listens on loopback), so rmcp is not given a list.
    let tools = NexusTools::new(st.rpc.clone());
    let mcp: StreamableHttpService<NexusTools, LocalSessionManager> = StreamableHttpService::new(
        move || Ok(tools.clone()),
        st.session_manager.clone(),
        mcp_cfg,
    );
    let mcp_stack = ServiceBuilder::new()
        // Count every MCP request, including the ones refused below.
        .layer(middleware::from_fn_with_state(
            st.clone(),
            layers::metrics::track,
        ))
        // Refuse foreign Host/Origin first: DNS rebinding must not even reach auth.
        .layer(middleware::from_fn_with_state(
            st.clone(),
            layers::guard::host_guard,
        ))
        // No valid token, no MCP: 401 before rmcp sees the request.
        .layer(middleware::from_fn_with_state(
            st.clone(),
            layers::bearer::bearer,
        ));
    // The metadata names this resource by its Host: the same guard as /mcp decides
    // which Host values are answered at all.
    let guarded = || middleware::from_fn_with_state(st.clone(), layers::guard::host_guard);
    let mut app = Router::new()
        .route_service("/mcp", mcp)
        .route_layer(mcp_stack)
        .route("/health", get(health))
        .route(
            "/.well-known/oauth-protected-resource",
            get(resource_metadata).route_layer(guarded()),
        )
        .route(
            "/.well-known/oauth-protected-resource/mcp",
            get(resource_metadata).route_layer(guarded()),
        );
    if cfg.metrics_enabled {
        app = app.route("/metrics", get(metrics));
    }
    app.fallback(|| async {
        layers::error_response(
            StatusCode::NOT_FOUND,
            "not_found",
            "no such endpoint; MCP is at /mcp",
        )
    })
    .layer(
        ServiceBuilder::new()
            // Credentials are sensitive from the first layer on, so nothing logs them.
            .layer(SetSensitiveRequestHeadersLayer::new([
                header::AUTHORIZATION,
                HeaderName::from_static("x-nexus-api-key"),
            ]))
            // Our request id always wins; the caller's is kept apart for the audit line.
            .layer(middleware::map_request(
                crate::layers::metrics::stash_client_request_id,
            ))
            .layer(SetRequestIdLayer::new(REQUEST_ID, MakeRequestUuid))
            .layer(TraceLayer::new_for_http())
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

/// The public origin of this frontend (`scheme://host[:port]`): the configured public URL,
/// else the request's Host when it is named in the allowed hosts (the host guard has
/// already refused the others), else the listening address. A Host let in only by `*`
/// is never reflected.
pub fn public_base(st: &AppState, host: Option<&str>) -> String {
    if let Some(u) = &st.cfg.public_url {
        return u.trim_end_matches("/mcp").to_owned();
    }
    let scheme = if st.cfg.tls.is_some() {
        "https"
    } else {
        "http"
    };
    let named: Vec<String> = st
        .cfg
        .allowed_hosts
        .iter()
        .filter(|h| *h != "*")
        .cloned()
        .collect();
    match host {
        Some(host) if layers::guard::host_allowed(&named, host) => format!("{scheme}://{host}"),
        _ => format!("{scheme}://{}:{}", st.cfg.host, st.cfg.port),
    }
}

/// RFC 9728 protected resource metadata.
async fn resource_metadata(
    State(st): State<AppState>,
    headers: HeaderMap,
) -> Json<serde_json::Value> {
    let host = headers.get(header::HOST).and_then(|v| v.to_str().ok());
    let resource = format!("{}/mcp", public_base(&st, host));
    Json(json!({
        "resource": resource,
        "authorization_servers": [],
        "bearer_methods_supported": ["header"],
        "resource_name": "Nexus Hub MCP",
        "resource_documentation": "Send Authorization: Bearer sk-… (a token minted with `nexus hub token create`).",
    }))
}
