//! What every layer and route of the frontend shares, built once by [`crate::startup`].

use crate::audit::Auditor;
use crate::config::FrontendConfig;
use crate::forward::RpcClient;
use crate::layers::admission::{KnownTokens, Unverified};
use crate::layers::guard::host_allowed;
use crate::layers::limits::{SessionBindings, Streams};
use crate::metrics::Metrics;
use crate::sessions::Sealer;
use crate::sessions::manager::SealedSessions;
use rmcp::transport::streamable_http_server::session::local::LocalSessionManager;
use std::sync::Arc;
use std::time::Instant;

/// Shared state of the frontend's layers and routes.
#[derive(Clone, Debug)]
pub(crate) struct AppState(Arc<Inner>);

#[derive(Debug)]
pub(crate) struct Inner {
    pub cfg: FrontendConfig,
    pub rpc: Arc<RpcClient>,
    pub metrics: Metrics,
    pub audit: Auditor,
    /// The cluster bus, when configured: held here for the life of the process (its
    /// heartbeat stops with the last handle) and for `/health`.
    pub bus: Option<nexus_bus::Bus>,
    /// Resource subscriptions held by this replica.
    pub subscriptions: Arc<crate::mcp::subscriptions::Subscriptions>,
    /// rmcp's sessions in this process (new ones under sealed ids), capped and bound to
    /// key ids through `sessions`.
    pub sealed_sessions: Arc<SealedSessions<LocalSessionManager>>,
    /// Seals and opens session ids.
    pub sealer: Arc<Sealer>,
    pub sessions: SessionBindings,
    /// Open SSE streams.
    pub streams: Streams,
    /// Fingerprints of recently verified tokens.
    pub known: KnownTokens,
    /// Requests per client address whose token is being verified.
    pub unverified: Unverified,
    /// Failed authentications per client address.
    pub auth_failures: governor::DefaultKeyedRateLimiter<std::net::IpAddr>,
    pub started: Instant,
    /// Who issues tokens for this resource, as the rpc-server last said.
    pub auth_servers: crate::metadata::AuthServers,
}

impl std::ops::Deref for AppState {
    type Target = Inner;
    fn deref(&self) -> &Inner {
        &self.0
    }
}

impl AppState {
    pub fn new(inner: Inner) -> Self {
        Self(Arc::new(inner))
    }

    /// The public origin of this frontend (`scheme://host[:port]`): the configured public
    /// URL, else the request's Host when it is named in the allowed hosts (the host guard
    /// has already refused the others), else the listening address. A Host let in only by
    /// `*` is never reflected.
    pub fn public_base(&self, host: Option<&str>) -> String {
        if let Some(u) = &self.cfg.public_url {
            return u.trim_end_matches("/mcp").to_owned();
        }
        let scheme = if self.cfg.tls.is_some() {
            "https"
        } else {
            "http"
        };
        let named: Vec<String> = self
            .cfg
            .allowed_hosts
            .iter()
            .filter(|h| *h != "*")
            .cloned()
            .collect();
        match host {
            Some(host) if host_allowed(&named, host) => format!("{scheme}://{host}"),
            _ => format!("{scheme}://{}:{}", self.cfg.host, self.cfg.port),
        }
    }
}
