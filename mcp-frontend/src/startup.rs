//! Startup as a value: [`Frontend::build`] binds the listener and builds the shared state;
//! [`Frontend::run_until_stopped`] serves [`crate::router::router`] until shutdown.

use crate::config::{BusSettings, FrontendConfig};
use crate::forward::RpcClient;
use crate::layers::admission::{KnownTokens, Unverified};
use crate::layers::limits::{SessionBindings, Streams};
use crate::metrics::Metrics;
use crate::sessions::Sealer;
use crate::sessions::manager::SealedSessions;
use crate::state::{AppState, Inner};
use anyhow::Context;
use rmcp::transport::streamable_http_server::session::local::LocalSessionManager;
use std::future::Future;
use std::sync::Arc;
use std::time::{Duration, Instant};
use tokio::net::TcpListener;
use tokio_util::sync::CancellationToken;

pub struct Frontend {
    listener: TcpListener,
    pub(crate) state: AppState,
    tls: Option<axum_server::tls_rustls::RustlsConfig>,
    cancel: CancellationToken,
}

impl std::fmt::Debug for Frontend {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Frontend")
            .field("addr", &self.listener.local_addr().ok())
            .finish()
    }
}

impl Frontend {
    /// Binds the listener and builds the state, forwarding to the rpc-server over HTTP (or
    /// HTTPS, with `cfg.rpc_tls`).
    pub async fn build(cfg: FrontendConfig) -> anyhow::Result<Self> {
        let rpc = match &cfg.rpc_tls {
            Some(tls) => RpcClient::with_tls(&cfg.rpc_url, tls, cfg.rpc_timeout)?,
            None => RpcClient::new(&cfg.rpc_url, cfg.rpc_timeout)?,
        };
        Self::build_with_rpc(cfg, rpc).await
    }

    /// As [`Frontend::build`], with a given rpc client (one calling the rpc-server
    /// in-process, in the embedded hub).
    pub async fn build_with_rpc(cfg: FrontendConfig, rpc: RpcClient) -> anyhow::Result<Self> {
        let tls = match &cfg.tls {
            Some((cert, key)) => Some(nexus_serve::load_tls(cert, key, None).await?),
            None => None,
        };
        let listener = nexus_serve::bind(&cfg.host, cfg.port)
            .await
            .with_context(|| format!("cannot listen on {}:{}", cfg.host, cfg.port))?;
        let metrics = Metrics::new();
        let bus = match &cfg.bus {
            Some(settings) => {
                let port = listener.local_addr().map(|a| a.port()).unwrap_or(cfg.port);
                Some(start_bus(settings, port, &metrics).await?)
            }
            None => None,
        };
        let audit = crate::audit::Auditor::start(
            cfg.redis_url
                .as_ref()
                .map(|u| secrecy::ExposeSecret::expose_secret(u).to_owned()),
            metrics.clone(),
            cfg.audit_stdout,
            bus.clone(),
            cfg.live_traffic
                .then(|| Arc::new(crate::audit::Traffic::default())),
        );
        let subscriptions = {
            use crate::mcp::subscriptions::{Source, Subscriptions};
            Subscriptions::new(match (&bus, &cfg.local_changes) {
                (Some(b), _) => Source::Bus(b.clone()),
                (None, Some(l)) => Source::Local(l.0.clone()),
                (None, None) => Source::None,
            })
        };
        let limits = cfg.limits;
        let mut manager = LocalSessionManager::default();
        manager.session_config.keep_alive = Some(limits.session_idle_timeout);
        let session_manager = Arc::new(manager);
        // Ids DELETEd here are remembered until they expire, up to a few times the cap.
        let sealer = Arc::new(Sealer::new(
            &cfg.sessions,
            limits.sessions.saturating_mul(4),
        )?);
        let state = AppState::new(Inner {
            rpc: Arc::new(rpc),
            audit,
            bus,
            subscriptions,
            metrics,
            sessions: SessionBindings::new(
                session_manager.clone(),
                limits.sessions_per_key,
                limits.sessions,
            ),
            sealed_sessions: Arc::new(SealedSessions::new(session_manager)),
            sealer: sealer.clone(),
            streams: Streams::new(limits.streams_per_key, limits.streams),
            known: KnownTokens::new()?,
            unverified: Unverified::new(limits.unverified_per_addr),
            auth_failures: governor::RateLimiter::keyed(failure_quota(cfg.auth_failures_per_min)),
            started: Instant::now(),
            auth_servers: Default::default(),
            cfg,
        });
        // The metadata names the real authorization servers from the first request on
        // when the rpc-server is already up; otherwise they are read once it is.
        state.auth_servers.refresh(&state.rpc).await;
        Ok(Self {
            listener,
            state,
            tls,
            cancel: CancellationToken::new(),
        })
    }

    pub fn port(&self) -> u16 {
        self.listener.local_addr().map(|a| a.port()).unwrap_or(0)
    }

    /// The traffic figures this frontend keeps in process (`FrontendConfig::live_traffic`).
    pub fn traffic(&self) -> Option<Arc<crate::Traffic>> {
        self.state.audit.traffic()
    }

    pub async fn run_until_stopped(
        self,
        shutdown: impl Future<Output = ()> + Send + 'static,
    ) -> anyhow::Result<()> {
        let app = crate::router::router(self.state.clone(), self.cancel.clone());
        tracing::info!(addr = ?self.listener.local_addr().ok(), rpc = %self.state.rpc.base(), "mcp-frontend listening");
        let st = self.state.clone();
        let housekeeping = tokio::spawn(async move {
            let mut tick = tokio::time::interval(std::time::Duration::from_secs(60));
            loop {
                tick.tick().await;
                st.auth_failures.retain_recent();
            }
        });
        let _listeners = crate::invalidations::start(
            self.state.bus.as_ref(),
            self.state.sealer.clone(),
            self.state.metrics.clone(),
            self.state.cfg.sessions.reload_every,
        );
        let st = self.state.clone();
        let metadata = tokio::spawn(async move {
            st.auth_servers
                .keep_fresh(&st.rpc, st.cfg.auth_metadata_refresh)
                .await;
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
        metadata.abort();
        // The server has drained: the audit lines of its last requests go out before the
        // process ends, within a bound (a bus that is down must not hold a shutdown).
        self.state
            .audit
            .flush(AUDIT_FLUSH_WRITER, AUDIT_FLUSH_BUS)
            .await;
        res.context("server error")
    }
}

/// At shutdown, how long the audit writer may take to write what is queued.
const AUDIT_FLUSH_WRITER: Duration = Duration::from_secs(1);
/// At shutdown, how long the bus may take to send the audit lines it holds.
const AUDIT_FLUSH_BUS: Duration = Duration::from_secs(2);

/// Starts the cluster bus as node `frontend-<host>-<port>` (or `NEXUS_NODE_NAME`), its
/// metrics on the frontend's `/metrics`. Fails on a configuration that cannot work (a bad
/// URL, an unreadable credentials file); a bus that is merely unreachable is not an error:
/// the frontend serves, `Bus::health` (and `/health`) tells, audit lines to the bus are
/// dropped and counted until it is back.
async fn start_bus(
    settings: &BusSettings,
    port: u16,
    metrics: &Metrics,
) -> anyhow::Result<nexus_bus::Bus> {
    use nexus_bus::{Bus, BusConfig, NodeIdentity, Role};
    use secrecy::ExposeSecret as _;
    // The bus reads its settings as the environment would hold them; here they are the
    // resolved flags (a flag overrides its variable), and only the host name is read from
    // the real environment.
    let var = |k: &str| -> Option<String> {
        match k {
            "NEXUS_BUS_URL" => Some(settings.url.expose_secret().to_owned()),
            "NEXUS_NATS_REPLICAS" => settings.nats_replicas.map(|r| r.to_string()),
            "NEXUS_NODE_NAME" => settings.node_name.clone(),
            "HOSTNAME" => std::env::var("HOSTNAME").ok(),
            _ => None,
        }
    };
    let node = NodeIdentity {
        name: NodeIdentity::name_from_env(var, Role::Frontend, port),
        role: Role::Frontend,
        version: env!("CARGO_PKG_VERSION").to_owned(),
    };
    // Configuration errors name the variable already; the others say which part failed.
    let error = |e: nexus_bus::BusError| match e {
        nexus_bus::BusError::Config(_) | nexus_bus::BusError::Url(_) => anyhow::anyhow!("{e}"),
        e => anyhow::anyhow!("cluster bus: {e}"),
    };
    let mut config = BusConfig::from_env(node, var)
        .map_err(error)?
        .ok_or_else(|| anyhow::anyhow!("NEXUS_BUS_URL is empty"))?;
    config.nats_creds = settings.nats_creds.clone();
    let name = config.node.name.clone();
    let bus = Bus::start(config, Some(metrics.registry()))
        .await
        .map_err(error)?;
    let shown = nexus_bus::BusUrl::parse(settings.url.expose_secret(), true)
        .map(|u| u.to_string())
        .unwrap_or_default();
    tracing::info!(node = %name, bus = %shown, "cluster bus configured");
    Ok(bus)
}

fn failure_quota(per_min: u32) -> governor::Quota {
    let n = std::num::NonZeroU32::new(per_min.max(1)).unwrap_or(std::num::NonZeroU32::MIN);
    governor::Quota::per_minute(n)
}
