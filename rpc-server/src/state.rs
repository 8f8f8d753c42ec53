//! The state every route shares: built once at startup as a [`StateInner`] struct literal
//! and shared read-only behind an `Arc`.

use crate::auth::AuthProvider;
use crate::control::Control;
use crate::db::Store;
use crate::files::FileService;
use crate::metrics::Metrics;
use crate::zones::ZoneSource;
use std::sync::Arc;
use std::time::Instant;

/// Shared, read-only state of the routes.
#[derive(Clone, Debug)]
pub struct AppState(Arc<StateInner>);

#[derive(Debug)]
pub struct StateInner {
    pub(crate) auth: Arc<dyn AuthProvider>,
    pub(crate) files: FileService,
    pub control: Option<Control>,
    pub(crate) store: Option<Store>,
    pub(crate) zones: ZoneSource,
    pub(crate) metrics: Metrics,
    pub(crate) max_body_bytes: usize,
    pub(crate) public_url: Option<String>,
    /// The cluster bus, when one is configured (SPEC §13).
    pub(crate) bus: Option<nexus_bus::Bus>,
    /// For reading traffic figures (status).
    pub(crate) redis_url: Option<secrecy::SecretString>,
    pub(crate) limits: Arc<crate::limits::Limits>,
    /// Proxies whose X-Forwarded-For names the client.
    pub(crate) trusted_proxies: Vec<ipnet::IpNet>,
    /// Compiled ReBAC grants per identity; absent in single-key mode.
    pub(crate) grants: Option<Arc<crate::auth::grants::GrantsSource>>,
    /// Issuers whose JWTs the provider chain accepts (for the protected-resource metadata).
    pub issuers: Vec<String>,
    /// The local provider (login, refresh, users), when `local` is in the chain.
    pub(crate) local: Option<Arc<crate::auth::local::LocalAuth>>,
    /// The OAuth authorization server (SPEC §11), when `NEXUS_OAUTH_ISSUER` is set.
    pub(crate) oauth: Option<Arc<crate::oauth::OAuthServer>>,
    pub(crate) started: Instant,
    /// Traffic figures of a frontend in this process, for `hub status` without Redis.
    pub(crate) live: std::sync::OnceLock<Arc<dyn crate::stats::LiveTraffic>>,
}

impl std::ops::Deref for AppState {
    type Target = StateInner;
    fn deref(&self) -> &StateInner {
        &self.0
    }
}

impl AppState {
    /// Reports `live`'s traffic figures in `hub_admin_status` when no Redis holds them
    /// (the embedded hub's in-process frontend). Set once; later calls change nothing.
    pub fn set_live_traffic(&self, live: Arc<dyn crate::stats::LiveTraffic>) {
        let _ = self.live.set(live);
    }

    /// `ok`, `err`, or `n/a` when Redis is not configured: as the bus sees it when the bus
    /// is a Redis Stream, else as the shared rate limits last found it.
    pub fn redis_status(&self) -> &'static str {
        let bus = self.bus.as_ref().map(nexus_bus::Bus::health);
        let up = match bus {
            Some(h) if h.backend == nexus_bus::BackendKind::Redis => Some(h.connected),
            _ => self.limits.redis_up(),
        };
        match up {
            None => "n/a",
            Some(true) => "ok",
            Some(false) => "err",
        }
    }

    /// The bus's health, for `/health` and `hub status`.
    pub fn bus_status(&self) -> Option<nexus_wire::methods::BusStatus> {
        self.bus.as_ref().map(crate::auth::cluster_bus::status)
    }

    /// Every node whose heartbeat the bus holds; `None` without a bus or when it cannot say.
    pub async fn bus_nodes(&self) -> Option<Vec<nexus_wire::methods::NodeStatus>> {
        crate::auth::cluster_bus::nodes(self.bus.as_ref()?).await
    }
}

impl From<StateInner> for AppState {
    fn from(inner: StateInner) -> Self {
        Self(Arc::new(inner))
    }
}
