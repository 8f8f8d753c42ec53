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
    /// Present when Redis is configured.
    pub(crate) redis: Option<crate::auth::broadcast::RedisHealth>,
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
    pub(crate) started: Instant,
}

impl std::ops::Deref for AppState {
    type Target = StateInner;
    fn deref(&self) -> &StateInner {
        &self.0
    }
}

impl AppState {
    /// `ok`, `err`, or `n/a` when Redis is not configured.
    pub fn redis_status(&self) -> &'static str {
        match &self.redis {
            None => "n/a",
            Some(h) if h.is_up() => "ok",
            Some(_) => "err",
        }
    }
}

impl From<StateInner> for AppState {
    fn from(inner: StateInner) -> Self {
        Self(Arc::new(inner))
    }
}
