//! The frontend's whole HTTP application: a public router (health, metrics, the
//! protected-resource metadata) merged with the protected `/mcp` one, under one edge
//! stack. Every layer appears once, in the order a request meets it.

use crate::error::GatewayError;
use crate::layers::{bearer, guard, limits, observe};
use crate::state::AppState;
use axum::extract::State;
use axum::http::{HeaderName, Method, StatusCode, header};
use axum::response::{IntoResponse, Response};
use axum::routing::{any, get};
use axum::{Json, Router, middleware};
use serde_json::json;
use tokio_util::sync::CancellationToken;
use tower::ServiceBuilder;
use tower_http::request_id::{MakeRequestUuid, PropagateRequestIdLayer, SetRequestIdLayer};
use tower_http::sensitive_headers::SetSensitiveRequestHeadersLayer;

const REQUEST_ID: HeaderName = HeaderName::from_static(nexus_wire::headers::REQUEST_ID);

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
    let guarded = || middleware::from_fn_with_state(st.clone(), guard::host_guard);
    // What an in-browser MCP client (a web app on its own origin) must reach to sign in:
    // the metadata documents and the token, registration and revocation endpoints. They
    // read no cookie and no ambient credential — a code is redeemed with its PKCE verifier,
    // a refresh or access token is in the body — so a foreign page learns nothing from
    // them it could not learn from a server, and `*` is what authorization servers send.
    // `*` also makes the browser refuse any credentialed request. The Host is still
    // checked (the metadata names the resource by it); the Origin is not. The login and
    // consent pages (`/oauth/authorize` and the rest of `/oauth/*`) get no CORS: their
    // cookie-bound forms stay under the full guard.
    let host_only = || middleware::from_fn_with_state(st.clone(), guard::host_only_guard);
    let open = || {
        tower_http::cors::CorsLayer::new()
            .allow_origin(tower_http::cors::Any)
            .allow_methods([Method::GET, Method::POST])
            .allow_headers([
                header::CONTENT_TYPE,
                header::AUTHORIZATION,
                HeaderName::from_static("mcp-protocol-version"),
            ])
            .expose_headers([header::WWW_AUTHENTICATE, header::RETRY_AFTER])
            .max_age(std::time::Duration::from_secs(600))
    };
    let mut public = Router::new()
        .route("/health", get(health))
        .route(
            "/.well-known/oauth-protected-resource",
            get(crate::metadata::resource_metadata)
                .layer(open())
                .layer(host_only()),
        )
        .route(
            "/.well-known/oauth-protected-resource/mcp",
            get(crate::metadata::resource_metadata)
                .layer(open())
                .layer(host_only()),
        )
        // Login, refresh, keys and users (SPEC §10) are the rpc-server's: relayed as they
        // came, under the same Host/Origin guard (a foreign page must not log in). `any`
        // has no method routes, only a fallback: `route_layer` would panic at startup.
        .route(
            "/auth/{*rest}",
            any(crate::relay::relay_auth).layer(guarded()),
        );
    if st.cfg.oauth {
        // The hub's OAuth authorization server (SPEC §11), the rpc-server's: its pages,
        // endpoints and metadata on this public origin, under the same guard (its forms
        // post from this origin).
        public = public.route(
            "/oauth/{*rest}",
            any(crate::relay::relay_oauth).layer(guarded()),
        );
        for path in [
            "/oauth/token",
            "/oauth/register",
            "/oauth/revoke",
            "/.well-known/oauth-authorization-server",
            "/.well-known/openid-configuration",
        ] {
            public = public.route(
                path,
                any(crate::relay::relay_oauth)
                    .layer(open())
                    .layer(host_only()),
            );
        }
    }
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
                    HeaderName::from_static(nexus_wire::headers::API_KEY),
                    HeaderName::from_static(nexus_wire::headers::X_API_KEY),
                ]))
                // The caller's request id is kept apart for the audit line, so ours wins.
                .layer(middleware::map_request(observe::stash_client_request_id))
                .layer(SetRequestIdLayer::new(REQUEST_ID, MakeRequestUuid))
                // One span per request, carrying our request id (docs/LOGGING.md).
                .layer(nexus_serve::telemetry::http_trace())
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
        // Reported, never a reason for 503: without the bus only audit degrades.
        "bus": st.bus.as_ref().map_or("n/a", |b| if b.health().connected { "ok" } else { "err" }),
        "uptime_seconds": st.started.elapsed().as_secs(),
    }));
    if ok {
        body.into_response()
    } else {
        (StatusCode::SERVICE_UNAVAILABLE, body).into_response()
    }
}

async fn metrics(State(st): State<AppState>) -> Response {
    nexus_serve::metrics_response(st.metrics.render())
}

/// RFC 9728 protected resource metadata.
/// The router driven in-process for the edge cases that need no rpc-server (it is
/// pointed at a closed port): refusals, their envelopes and challenges, the guard.
#[cfg(test)]
mod tests {
    use crate::config::FrontendConfig;
    use axum::body::Body;
    use axum::extract::ConnectInfo;
    use axum::http::{Request, StatusCode, header};
    use serde_json::Value;
    use std::net::SocketAddr;
    use tower::ServiceExt;

    /// A frontend whose rpc-server is unreachable; `adjust` edits its configuration.
    async fn build(adjust: impl FnOnce(&mut FrontendConfig)) -> axum::Router {
        let mut cfg = FrontendConfig::local("http://127.0.0.1:9", 0);
        adjust(&mut cfg);
        let fe = crate::Frontend::build(cfg).await.expect("frontend");
        super::router(fe.state.clone(), Default::default())
    }

    fn req(method: &str, uri: &str, headers: &[(&str, &str)], body: &str) -> Request<Body> {
        let mut r = Request::builder().method(method).uri(uri);
        for (n, v) in headers {
            r = r.header(*n, *v);
        }
        let mut r = r.body(Body::from(body.to_owned())).expect("request");
        let peer: SocketAddr = "127.0.0.1:40000".parse().expect("addr");
        r.extensions_mut().insert(ConnectInfo(peer));
        r
    }

    async fn send(
        app: &axum::Router,
        r: Request<Body>,
    ) -> (StatusCode, axum::http::HeaderMap, Value) {
        let resp = app.clone().oneshot(r).await.expect("infallible");
        let (parts, body) = resp.into_parts();
        let bytes = axum::body::to_bytes(body, 1 << 20).await.expect("body");
        let v = serde_json::from_slice(&bytes).unwrap_or(Value::Null);
        (parts.status, parts.headers, v)
    }

    const MCP: &[(&str, &str)] = &[
        ("host", "127.0.0.1:8081"),
        ("content-type", "application/json"),
        ("accept", "application/json, text/event-stream"),
    ];

    #[tokio::test]
    async fn refusals_are_enveloped_with_their_challenge() {
        let app = build(|_| {}).await;
        let (s, _, v) = send(&app, req("GET", "/nope", &[("host", "localhost")], "")).await;
        assert_eq!(s, StatusCode::NOT_FOUND);
        assert_eq!(v["error"]["code"], "not_found");

        let (s, h, v) = send(&app, req("POST", "/mcp", MCP, "{}")).await;
        assert_eq!(s, StatusCode::UNAUTHORIZED);
        assert_eq!(v["error"]["code"], "unauthorized");
        assert_eq!(
            h[header::WWW_AUTHENTICATE],
            "Bearer resource_metadata=\"http://127.0.0.1:8081/.well-known/oauth-protected-resource\", scope=\"files:read files:write\""
        );

        // A token nobody can verify (the rpc-server is down) is neither let in nor refused.
        let mut with_token = MCP.to_vec();
        with_token.push(("authorization", "Bearer sk-unknown"));
        let (s, h, v) = send(&app, req("POST", "/mcp", &with_token, "{}")).await;
        assert_eq!(s, StatusCode::SERVICE_UNAVAILABLE);
        assert_eq!(v["error"]["code"], "unavailable");
        assert_eq!(h[header::RETRY_AFTER], "2");

        // A body declared too large is refused before anything else is read or asked.
        with_token.push(("content-length", "999999999999"));
        let (s, _, v) = send(&app, req("POST", "/mcp", &with_token, "")).await;
        assert_eq!(s, StatusCode::PAYLOAD_TOO_LARGE);
        assert_eq!(v["error"]["code"], "payload_too_large");
    }

    #[tokio::test]
    async fn health_says_degraded_without_the_rpc_server_and_metrics_need_no_token() {
        let app = build(|_| {}).await;
        let (s, _, v) = send(&app, req("GET", "/health", &[("host", "x")], "")).await;
        assert_eq!(s, StatusCode::SERVICE_UNAVAILABLE);
        assert_eq!(v["status"], "degraded");
        let r = app
            .clone()
            .oneshot(req("GET", "/metrics", &[], ""))
            .await
            .expect("infallible");
        assert_eq!(r.status(), StatusCode::OK);
    }

    /// A bus that does not answer stops nothing: the frontend builds and serves, `/health`
    /// and `/metrics` say the bus is down. A bus that cannot work stops the start.
    #[tokio::test]
    async fn an_unreachable_bus_is_reported_and_a_bad_one_refused() {
        use crate::config::BusSettings;
        let settings = |url: &str, creds: Option<&str>| {
            BusSettings::new(
                url.to_owned().into(),
                creds.map(std::path::PathBuf::from),
                None,
                Some("fe-test".into()),
            )
            .expect("settings")
        };
        // Nothing listens on port 1.
        let app = build(|c| c.bus = Some(settings("nats://127.0.0.1:1", None))).await;
        let (_, _, v) = send(&app, req("GET", "/health", &[("host", "x")], "")).await;
        assert_eq!(v["bus"], "err", "{v}");
        let r = app
            .clone()
            .oneshot(req("GET", "/metrics", &[], ""))
            .await
            .expect("infallible");
        let bytes = axum::body::to_bytes(r.into_body(), 1 << 20)
            .await
            .expect("body");
        let text = String::from_utf8_lossy(&bytes);
        assert!(text.contains("nexus_bus_connected 0"), "{text}");

        let (_, _, v) = send(
            &build(|_| {}).await,
            req("GET", "/health", &[("host", "x")], ""),
        )
        .await;
        assert_eq!(v["bus"], "n/a", "{v}");

        let mut cfg = FrontendConfig::local("http://127.0.0.1:9", 0);
        cfg.bus = Some(settings(
            "nats://127.0.0.1:1",
            Some("/nonexistent/fe-test.creds"),
        ));
        let e = crate::Frontend::build(cfg)
            .await
            .expect_err("unreadable creds");
        let e = format!("{e:#}");
        assert!(e.contains("cannot read NEXUS_NATS_CREDS"), "{e}");
    }

    /// The MCP conformance scenario `dns-rebinding-protection`: with no origins
    /// configured, the hub's own origin and (on loopback) loopback pages pass the guard
    /// (and meet the bearer layer: 401 here); foreign hosts and origins are 403.
    #[tokio::test]
    async fn the_guard_lets_in_own_and_loopback_origins_only() {
        let app = build(|_| {}).await;
        let status = |host: &'static str, origin: Option<&'static str>| {
            let app = app.clone();
            async move {
                let mut h = vec![
                    ("host", host),
                    ("content-type", "application/json"),
                    ("accept", "application/json, text/event-stream"),
                ];
                if let Some(o) = origin {
                    h.push(("origin", o));
                }
                send(&app, req("POST", "/mcp", &h, "{}")).await.0
            }
        };
        let passed = StatusCode::UNAUTHORIZED;
        let refused = StatusCode::FORBIDDEN;
        assert_eq!(
            status("localhost:8081", Some("http://localhost:8081")).await,
            passed
        );
        assert_eq!(
            status("127.0.0.1:8081", Some("http://127.0.0.1:8081")).await,
            passed
        );
        assert_eq!(
            status("127.0.0.1:8081", Some("http://localhost:3000")).await,
            passed
        );
        assert_eq!(
            status("127.0.0.1:8081", Some("http://[::1]:5173")).await,
            passed
        );
        assert_eq!(status("127.0.0.1:8081", None).await, passed);
        assert_eq!(
            status("localhost:8081", Some("http://evil.example")).await,
            refused
        );
        assert_eq!(status("localhost:8081", Some("null")).await, refused);
        assert_eq!(
            status("evil.example:8081", Some("http://evil.example:8081")).await,
            refused
        );
        let (s, _, v) = send(
            &app,
            req(
                "GET",
                "/.well-known/oauth-protected-resource",
                &[("host", "evil.example")],
                "",
            ),
        )
        .await;
        assert_eq!(s, refused);
        assert_eq!(v["error"]["code"], "forbidden_host");

        // Listening beyond loopback, only the hub's own origin (and listed ones) pass.
        let public = build(|c| {
            c.host = "0.0.0.0".into();
            c.allowed_hosts = vec!["hub.example.com".into()];
            c.allowed_origins = vec!["https://app.example.com".into()];
        })
        .await;
        let status = |origin: &'static str| {
            let public = public.clone();
            async move {
                let h = [
                    ("host", "hub.example.com"),
                    ("origin", origin),
                    ("content-type", "application/json"),
                ];
                send(&public, req("POST", "/mcp", &h, "{}")).await.0
            }
        };
        assert_eq!(status("http://hub.example.com").await, passed);
        assert_eq!(status("https://app.example.com").await, passed);
        assert_eq!(status("http://localhost:3000").await, refused);
        assert_eq!(
            status("https://hub.example.com.evil.example").await,
            refused
        );
    }
}
