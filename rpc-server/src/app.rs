//! Startup as a value: [`Application::build`] wires store, auth, cache, files and routes
//! and binds the listener; [`Application::run_until_stopped`] serves until shutdown.

use crate::auth::database::DatabaseAuth;
use crate::auth::last_used::LastUsed;
use crate::auth::single_key::{SINGLE_KEY_ZONE, SingleKeyAuth};
use crate::auth::{AuthProvider, IdentityCache, InvalidationBus, TokenHasher};
use crate::config::{AuthMode, ServerConfig, ensure_private_dir};
use crate::control::Control;
use crate::db::Store;
use crate::files::FileService;
use crate::metrics::Metrics;
use crate::routes::{self, AppState};
use crate::zones::ZoneSource;
use anyhow::Context;
use axum::serve::ListenerExt;
use secrecy::ExposeSecret;
use std::future::Future;
use std::sync::Arc;
use tokio::net::TcpListener;

pub struct Application {
    listener: TcpListener,
    state: AppState,
    last_used: Option<(Arc<LastUsed>, Store)>,
    flush_every: std::time::Duration,
    tls: Option<axum_server::tls_rustls::RustlsConfig>,
}

/// Loads a PEM certificate chain and key for built-in TLS (rustls with the ring provider).
pub async fn load_tls(
    cert: &std::path::Path,
    key: &std::path::Path,
) -> anyhow::Result<axum_server::tls_rustls::RustlsConfig> {
    // Another part of the process may have installed it already; either way one is set.
    let _ = rustls::crypto::ring::default_provider().install_default();
    axum_server::tls_rustls::RustlsConfig::from_pem_file(cert, key)
        .await
        .with_context(|| {
            format!(
                "cannot load TLS certificate {} and key {}",
                cert.display(),
                key.display()
            )
        })
}

/// Serves `app` over TLS on `listener` until `shutdown`, with TCP_NODELAY, then drains.
pub async fn serve_tls(
    listener: TcpListener,
    tls: axum_server::tls_rustls::RustlsConfig,
    app: axum::Router,
    shutdown: impl Future<Output = ()> + Send + 'static,
) -> std::io::Result<()> {
    let handle = axum_server::Handle::new();
    let h = handle.clone();
    tokio::spawn(async move {
        shutdown.await;
        h.graceful_shutdown(Some(std::time::Duration::from_secs(10)));
    });
    let acceptor = axum_server::tls_rustls::RustlsAcceptor::new(tls)
        .acceptor(axum_server::accept::NoDelayAcceptor::new());
    axum_server::from_tcp(listener.into_std()?)?
        .acceptor(acceptor)
        .handle(handle)
        .serve(app.into_make_service_with_connect_info::<std::net::SocketAddr>())
        .await
}

impl std::fmt::Debug for Application {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Application")
            .field("addr", &self.listener.local_addr().ok())
            .finish()
    }
}

impl Application {
    pub async fn build(cfg: ServerConfig) -> anyhow::Result<Self> {
        Self::build_with_bus(cfg, InvalidationBus::new()).await
    }

    /// Builds with a given invalidation bus, so that callers sharing it (an in-process CLI,
    /// a Redis subscriber) reach this server's caches.
    pub async fn build_with_bus(
        cfg: ServerConfig,
        bus: Arc<InvalidationBus>,
    ) -> anyhow::Result<Self> {
        ensure_private_dir(&cfg.data_dir)?;
        let files = FileService::new(&cfg.data_dir, cfg.max_file_bytes)
            .with_context(|| format!("cannot use data dir {}", cfg.data_dir.display()))?;
        let metrics = Metrics::new();
        let (auth, control, store, zones, last_used): (Arc<dyn AuthProvider>, _, _, _, _) =
            match &cfg.auth {
                AuthMode::SingleKey { key } => {
                    let auth =
                        SingleKeyAuth::new(key.expose_secret()).map_err(anyhow::Error::msg)?;
                    let zones = ZoneSource::Fixed(Arc::new(vec![SINGLE_KEY_ZONE.to_owned()]));
                    (Arc::new(auth), None, None, zones, None)
                }
                AuthMode::Database {
                    url,
                    secret,
                    previous_secret,
                } => {
                    let store = Store::connect(url.expose_secret())
                        .await
                        .context("cannot connect to the database")?;
                    if cfg.migrate || store.backend() == crate::db::Backend::Sqlite {
                        store
                            .migrate()
                            .await
                            .context("cannot apply database migrations")?;
                    }
                    store.list_zones(false).await.context(
                    "the database has no Nexus schema; run `nexus hub migrate` (or start with --migrate)",
                )?;
                    let mut hasher = TokenHasher::new(secret)?;
                    if let Some(prev) = previous_secret {
                        hasher = hasher.with_previous(prev)?;
                        tracing::info!(
                            "secret rotation: tokens hashed with NEXUS_API_KEY_SECRET_PREVIOUS are accepted and re-hashed"
                        );
                    }
                    let hasher = Arc::new(hasher);
                    let cache = Arc::new(IdentityCache::new(
                        cfg.auth_cache_ttl,
                        cfg.negative_cache_ttl,
                    ));
                    bus.subscribe(cache.clone());
                    let zones = ZoneSource::store(store.clone(), cfg.auth_cache_ttl);
                    bus.subscribe(Arc::new(zones.clone()));
                    let last_used = Arc::new(LastUsed::default());
                    let auth = DatabaseAuth::new(
                        store.clone(),
                        hasher.clone(),
                        cache.clone(),
                        last_used.clone(),
                        metrics.clone(),
                    );
                    let endpoint = cfg.public_url.clone();
                    let control = Control::new(store.clone(), hasher, bus.clone(), endpoint);
                    metrics.register_cache_size(cache);
                    (
                        Arc::new(auth),
                        Some(control),
                        Some(store.clone()),
                        zones,
                        Some((last_used, store)),
                    )
                }
            };
        let redis = match &cfg.redis_url {
            Some(url) if control.is_some() => {
                let health = crate::auth::broadcast::RedisHealth::default();
                let b = crate::auth::broadcast::start(
                    url.expose_secret(),
                    bus.clone(),
                    Some(metrics.clone()),
                    health.clone(),
                    true,
                )?;
                bus.set_broadcaster(b);
                Some(health)
            }
            _ => None,
        };
        let limits = Arc::new(crate::limits::Limits::new(
            cfg.limits,
            cfg.redis_url.as_ref().map(|u| u.expose_secret()),
            metrics.clone(),
        )?);
        let listener = TcpListener::bind((cfg.host.as_str(), cfg.port))
            .await
            .with_context(|| format!("cannot listen on {}:{}", cfg.host, cfg.port))?;
        let state = AppState::new(
            auth,
            files,
            control,
            store,
            zones,
            metrics,
            cfg.max_body_bytes,
            cfg.public_url.clone(),
            redis,
            cfg.redis_url.clone(),
            limits,
        )
        .with_trusted_proxies(cfg.trusted_proxies.clone());
        let tls = match &cfg.tls {
            Some((cert, key)) => Some(load_tls(cert, key).await?),
            None => None,
        };
        Ok(Self {
            listener,
            state,
            last_used,
            flush_every: cfg.last_used_flush,
            tls,
        })
    }

    pub fn port(&self) -> u16 {
        self.listener.local_addr().map(|a| a.port()).unwrap_or(0)
    }

    pub fn state(&self) -> &AppState {
        &self.state
    }

    /// Serves until `shutdown` resolves, then drains connections and flushes `last_used_at`.
    pub async fn run_until_stopped(
        self,
        shutdown: impl Future<Output = ()> + Send + 'static,
    ) -> anyhow::Result<()> {
        let flusher = self.last_used.clone().map(|(lu, store)| {
            let every = self.flush_every;
            tokio::spawn(async move {
                let mut tick = tokio::time::interval(every);
                tick.tick().await;
                loop {
                    tick.tick().await;
                    if let Err(e) = lu.flush(&store).await {
                        tracing::warn!(error = %e, "could not record token last-use times; will retry");
                    }
                }
            })
        });
        let limits = self.state.limits.clone();
        let housekeeping = tokio::spawn(async move {
            let mut tick = tokio::time::interval(std::time::Duration::from_secs(60));
            loop {
                tick.tick().await;
                limits.housekeeping();
            }
        });
        tracing::info!(addr = ?self.listener.local_addr().ok(), "rpc-server listening");
        let app = routes::router(self.state.clone());
        let res = match self.tls {
            Some(tls) => serve_tls(self.listener, tls, app, shutdown).await,
            None => {
                // Without TCP_NODELAY small responses wait on delayed ACKs (~40 ms per call).
                let listener = self.listener.tap_io(|tcp| {
                    let _ = tcp.set_nodelay(true);
                });
                axum::serve(
                    listener,
                    app.into_make_service_with_connect_info::<std::net::SocketAddr>(),
                )
                .with_graceful_shutdown(shutdown)
                .await
            }
        };
        if let Some(f) = flusher {
            f.abort();
        }
        housekeeping.abort();
        if let Some((lu, store)) = &self.last_used {
            let _ = lu.flush(store).await;
        }
        res.context("server error")
    }
}

/// Resolves on SIGINT or SIGTERM.
pub async fn shutdown_signal() {
    let ctrl_c = async {
        let _ = tokio::signal::ctrl_c().await;
    };
    let term = async {
        match tokio::signal::unix::signal(tokio::signal::unix::SignalKind::terminate()) {
            Ok(mut s) => {
                s.recv().await;
            }
            Err(_) => std::future::pending::<()>().await,
        }
    };
    tokio::select! { _ = ctrl_c => {}, _ = term => {} }
    tracing::info!("shutting down");
}
