//! MCP itself, behind the layers: the Nexus tools ([`handler`], [`catalogue`]), files as
//! resources ([`resources`]) and the prompts ([`prompts`]), served by
//! the [`direct`] path for stateless requests it can answer exactly, and by rmcp's
//! streamable-HTTP service for everything else. A legacy `initialize` gets its session id
//! sealed here (`crate::sessions`) before rmcp opens the session under it.

pub(crate) mod catalogue;
pub(crate) mod direct;
pub(crate) mod handler;
pub(crate) mod prompts;
pub(crate) mod resources;
pub(crate) mod subscriptions;

use crate::error::GatewayError;
use crate::layers::limits::caller_key_id;
use crate::request::McpBody;
use crate::sessions::manager::{SealedSessions, SealedStore};
use crate::sessions::{self, SealError, Sealer};
use crate::state::AppState;
use axum::body::Body;
use axum::extract::Request;
use axum::http::request::Parts;
use axum::http::{Method, StatusCode};
use axum::response::{IntoResponse, Response};
use futures_util::future::BoxFuture;
use handler::NexusTools;
use rmcp::transport::streamable_http_server::session::local::LocalSessionManager;
use rmcp::transport::streamable_http_server::{StreamableHttpServerConfig, StreamableHttpService};
use std::convert::Infallible;
use std::sync::Arc;
use std::task::{Context, Poll};
use tokio_util::sync::CancellationToken;

type Rmcp = StreamableHttpService<NexusTools, SealedSessions<LocalSessionManager>>;

/// The `/mcp` endpoint: the direct path when it applies, rmcp otherwise.
#[derive(Clone)]
pub(crate) struct McpService {
    tools: NexusTools,
    rmcp: Rmcp,
    /// Stateless requests answered directly (`None`: the direct path is off).
    direct: Option<prometheus::IntCounter>,
    /// Seals the id of each new legacy session.
    sealer: Arc<Sealer>,
}

impl std::fmt::Debug for McpService {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("McpService").finish_non_exhaustive()
    }
}

impl tower::Service<Request> for McpService {
    type Response = Response;
    type Error = Infallible;
    type Future = BoxFuture<'static, Result<Response, Infallible>>;

    fn poll_ready(&mut self, _: &mut Context<'_>) -> Poll<Result<(), Infallible>> {
        Poll::Ready(Ok(()))
    }

    fn call(&mut self, req: Request) -> Self::Future {
        let (parts, body) = req.into_parts();
        let planned = match &self.direct {
            Some(_) => parts
                .extensions
                .get::<Arc<McpBody>>()
                .and_then(|b| direct::plan(&parts, b, &self.tools)),
            None => None,
        };
        match planned {
            Some(plan) => {
                if let Some(c) = &self.direct {
                    c.inc();
                }
                let tools = self.tools.clone();
                Box::pin(async move { Ok(direct::answer(&tools, plan, &parts.extensions).await) })
            }
            None => {
                let opening = match self.new_session_id(&parts) {
                    Ok(id) => id,
                    Err(refusal) => return Box::pin(async move { Ok(refusal.into_response()) }),
                };
                let mut rmcp = self.rmcp.clone();
                let deleting = parts.method == Method::DELETE;
                // A session whose subscriptions were suspended has them checked again with
                // the token of this request, before it is served.
                let recheck = parts
                    .headers
                    .get(nexus_wire::headers::SESSION)
                    .and_then(|v| v.to_str().ok())
                    .filter(|s| !self.tools.subscriptions().suspended_of(s).is_empty())
                    .map(|s| (s.to_owned(), parts.extensions.clone(), self.tools.clone()));
                let listen = parts
                    .extensions
                    .get::<Arc<McpBody>>()
                    .and_then(|b| listen_request(b));
                let tools = self.tools.clone();
                Box::pin(async move {
                    let mut parts = parts;
                    if let Some((session, ext, tools)) = recheck {
                        tools.recheck(&ext, &session).await;
                    }
                    // A listen stream's subscriptions are taken before rmcp acknowledges
                    // them, so nothing changed after the acknowledgment is missed.
                    if let Some((id, uris)) = listen {
                        match tools.prepare_listen(&parts.extensions, &uris).await {
                            Ok(pending) => {
                                parts.extensions.insert(pending);
                            }
                            Err(e) => return Ok(jsonrpc_error(id, e)),
                        }
                    }
                    let req = Request::from_parts(parts, body);
                    let call = tower::Service::call(&mut rmcp, req);
                    let resp = match opening {
                        Some(id) => sessions::manager::opening(id, call).await,
                        None => call.await,
                    };
                    let mut resp = match resp {
                        Ok(r) => r.map(Body::new),
                        Err(never) => match never {},
                    }
                    .into_response();
                    // A session ended by DELETE is answered 204: rmcp says 202, which the
                    // official Python SDK logs as a failed termination (it wants 200 or 204).
                    if deleting && resp.status() == StatusCode::ACCEPTED {
                        *resp.status_mut() = StatusCode::NO_CONTENT;
                        *resp.body_mut() = Body::empty();
                    }
                    Ok(resp)
                })
            }
        }
    }
}

/// The id and resource URIs of a `subscriptions/listen` request that asks for resource
/// updates; `None` for anything else (rmcp answers it).
fn listen_request(body: &McpBody) -> Option<(serde_json::Value, Vec<String>)> {
    #[derive(serde::Deserialize)]
    struct Listen {
        id: serde_json::Value,
        params: ListenParams,
    }
    #[derive(serde::Deserialize)]
    struct ListenParams {
        notifications: Filter,
    }
    #[derive(serde::Deserialize)]
    #[serde(rename_all = "camelCase")]
    struct Filter {
        #[serde(default)]
        resource_subscriptions: Vec<String>,
    }
    if body.method() != Some("subscriptions/listen") {
        return None;
    }
    let l: Listen = serde_json::from_slice(&body.bytes).ok()?;
    let uris = l.params.notifications.resource_subscriptions;
    (!uris.is_empty()).then_some((l.id, uris))
}

/// A JSON-RPC error answer to request `id`.
fn jsonrpc_error(id: serde_json::Value, e: rmcp::ErrorData) -> Response {
    let body = serde_json::json!({"jsonrpc": "2.0", "id": id, "error": e});
    (
        [(axum::http::header::CONTENT_TYPE, "application/json")],
        body.to_string(),
    )
        .into_response()
}

impl McpService {
    /// The sealed id of the session a legacy `initialize` (a POST without a session id)
    /// opens: the caller's key id and the client's parameters, sealed. `None` for any other
    /// request; a refusal when the parameters are too large to travel in an id.
    fn new_session_id(&self, parts: &Parts) -> Result<Option<String>, GatewayError> {
        #[derive(serde::Deserialize)]
        struct Initialize {
            params: serde_json::Value,
        }
        if parts.method != Method::POST || parts.headers.contains_key(nexus_wire::headers::SESSION)
        {
            return Ok(None);
        }
        let Some(body) = parts.extensions.get::<Arc<McpBody>>() else {
            return Ok(None);
        };
        if body.method() != Some("initialize") {
            return Ok(None);
        }
        // Parameters rmcp will refuse open nothing; it answers them itself.
        let Ok(init) = serde_json::from_slice::<Initialize>(&body.bytes) else {
            return Ok(None);
        };
        let key_id = caller_key_id(&parts.extensions);
        match self.sealer.seal(key_id.as_deref(), &init.params) {
            Ok(id) => Ok(Some(id)),
            Err(SealError::TooLarge) => Err(GatewayError::Transport {
                status: StatusCode::BAD_REQUEST,
                message: "the initialize parameters are too large for a session (trim clientInfo and capabilities)".into(),
            }),
            Err(SealError::Random) => Err(GatewayError::Transport {
                status: StatusCode::SERVICE_UNAVAILABLE,
                message: "cannot open a session right now; retry shortly".into(),
            }),
        }
    }
}

/// The `/mcp` endpoint's service.
pub(crate) fn service(st: &AppState, cancel: CancellationToken) -> McpService {
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
    let tools = NexusTools::new(
        st.rpc.clone(),
        st.subscriptions.clone(),
        cfg.progress_interval,
    );
    let factory = tools.clone();
    // Sessions this replica does not hold are rebuilt from their sealed ids.
    mcp_cfg.session_store = Some(Arc::new(SealedStore::new(st.sealer.clone())));
    let rmcp = StreamableHttpService::new(
        move || Ok(factory.clone()),
        st.sealed_sessions.clone(),
        mcp_cfg,
    );
    McpService {
        tools,
        rmcp,
        direct: cfg.direct_path.then(|| st.metrics.direct.clone()),
        sealer: st.sealer.clone(),
    }
}
