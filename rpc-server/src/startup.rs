//! Startup as a value: [`Application::build`] picks the backends ([`Backends`]: one key,
//! or a database with its caches), wires them with files and limits into the shared
//! state, and binds the listener; [`Application::router`] is the HTTP application;
//! [`Application::run_until_stopped`] serves it until shutdown.

use crate::auth::chain::ProviderChain;
use crate::auth::database::DatabaseAuth;
use crate::auth::grants::GrantsSource;
use crate::auth::last_used::LastUsed;
use crate::auth::local::LocalAuth;
use crate::auth::oidc::OidcAuth;
use crate::auth::single_key::{SINGLE_KEY_ZONE, SingleKeyAuth};
use crate::auth::static_keys::StaticAuth;
use crate::auth::{AuthProvider, IdentityCache, InvalidationBus, TokenHasher};
use crate::config::{AuthMode, ServerConfig, ensure_private_dir};
use crate::control::Control;
use crate::db::Store;
use crate::files::FileService;
use crate::metrics::Metrics;
use crate::routes;
use crate::state::{AppState, StateInner};
use crate::zones::ZoneSource;
use anyhow::Context;
use nexus_providers::config::AuthType;
use secrecy::ExposeSecret;
use secrecy::SecretString;
use std::future::Future;
use std::sync::Arc;
use std::time::Instant;
use tokio::net::TcpListener;

pub struct Application {
    listener: TcpListener,
    state: AppState,
    last_used: Option<(Arc<LastUsed>, Store)>,
    flush_every: std::time::Duration,
    tls: Option<axum_server::tls_rustls::RustlsConfig>,
    /// The blob store's collector settings.
    storage: crate::config::StorageConfig,
    connections: nexus_serve::ConnLimits,
    /// The static file's provider, reloaded on SIGHUP while serving.
    static_keys: Option<Arc<StaticAuth>>,
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
        let metrics = Metrics::new();
        let backends = match &cfg.auth {
            AuthMode::SingleKey { key } => Backends::single_key(key.expose_secret())?,
            AuthMode::Database {
                url,
                secret,
                previous_secret,
            } => {
                let db = Database {
                    url,
                    secret,
                    previous_secret: previous_secret.as_ref(),
                };
                Backends::database(&cfg, db, &bus, &metrics).await?
            }
        };
        let files = open_files(&cfg, backends.store.as_ref(), &metrics).await?;
        // An in-process frontend hears of revocations too (its subscriptions end with them).
        bus.subscribe(Arc::new(files.changes().clone()));
        let limits = Arc::new(crate::limits::Limits::new(
            cfg.limits,
            cfg.redis_url.as_ref().map(|u| u.expose_secret()),
            metrics.clone(),
        )?);
        let listener = nexus_serve::bind(&cfg.host, cfg.port)
            .await
            .with_context(|| format!("cannot listen on {}:{}", cfg.host, cfg.port))?;
        // The cluster bus carries this server's changes to the others and theirs (replayed
        // after a disconnect) to this one; only a server that can change anything joins.
        // Named by the port actually bound (two nodes of one host differ by it).
        let port = listener.local_addr().map(|a| a.port()).unwrap_or(cfg.port);
        let cluster_bus = match &cfg.bus {
            Some(b) if backends.control.is_some() => {
                Some(crate::auth::cluster_bus::start(b, port, bus.clone(), &metrics).await?)
            }
            _ => None,
        };
        if let Some(b) = &cluster_bus {
            files.changes().join(b.clone());
        }
        let Backends {
            auth,
            issuers,
            control,
            store,
            zones,
            grants,
            last_used,
            local,
            static_keys,
            oauth,
        } = backends;
        let state = AppState::from(StateInner {
            auth,
            files,
            control,
            store,
            zones,
            metrics,
            max_body_bytes: cfg.max_body_bytes,
            public_url: cfg.public_url.clone(),
            bus: cluster_bus,
            redis_url: cfg.redis_url.clone(),
            limits,
            trusted_proxies: cfg.trusted_proxies.clone(),
            grants,
            issuers,
            local,
            oauth,
            started: Instant::now(),
            live: Default::default(),
        });
        let tls = match &cfg.tls {
            Some((cert, key)) => {
                Some(nexus_serve::load_tls(cert, key, cfg.tls_client_ca.as_deref()).await?)
            }
            None => None,
        };
        Ok(Self {
            listener,
            state,
            last_used,
            flush_every: cfg.last_used_flush,
            tls,
            storage: cfg.storage.clone(),
            connections: cfg.connections,
            static_keys,
        })
    }

    pub fn port(&self) -> u16 {
        self.listener.local_addr().map(|a| a.port()).unwrap_or(0)
    }

    /// The root password generated at this start, once (see `LocalSettings`).
    pub fn take_generated_root_password(&self) -> Option<SecretString> {
        self.state
            .local
            .as_ref()
            .and_then(|l| l.take_generated_root_password())
    }

    /// Committed file changes (and what the embedding program adds), for an in-process
    /// frontend's resource subscriptions.
    pub fn file_changes(&self) -> crate::files::FileChanges {
        self.state.files.changes().clone()
    }

    pub fn state(&self) -> &AppState {
        &self.state
    }

    /// The static file's provider, when the chain has one (its `reload` is what SIGHUP does).
    pub fn static_keys(&self) -> Option<&Arc<StaticAuth>> {
        self.static_keys.as_ref()
    }

    /// The whole HTTP application as a tower service with its state: every route and
    /// every layer `run_until_stopped` serves, without the listener. A request driven
    /// through it in-process (`tower::ServiceExt::oneshot`, or an embedding server handing
    /// over its own requests) takes the same path as one over TCP: the same credential
    /// check, limits, dispatch and response headers. Two things are the embedder's: the
    /// client address (attach `axum::extract::ConnectInfo<SocketAddr>` to the request's
    /// extensions for per-address failure limits and `X-Forwarded-For`; without it they
    /// do not apply), and the serve loop's connection bounds. Background work (last-use
    /// flushing, limit housekeeping, the blob collector) runs only under
    /// `run_until_stopped`. Cheap to call; every router shares this application's state.
    pub fn router(&self) -> axum::Router {
        routes::router(self.state.clone())
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
        let local = self.state.local.clone();
        let oauth = self.state.oauth.clone();
        let housekeeping = tokio::spawn(async move {
            let mut tick = tokio::time::interval(std::time::Duration::from_secs(60));
            loop {
                tick.tick().await;
                limits.housekeeping();
                if let Some(l) = &local {
                    l.throttle.housekeeping();
                }
                if let Some(o) = &oauth {
                    o.housekeeping();
                }
            }
        });
        // Blobs no file references any more, removed after their grace period; one node at
        // a time (the collector's lock), off the request path.
        let (files, storage) = (self.state.files.clone(), self.storage.clone());
        let collector = tokio::spawn(async move {
            let mut tick = tokio::time::interval(storage.gc_interval);
            tick.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
            tick.tick().await;
            loop {
                tick.tick().await;
                match files
                    .blobs()
                    .collect(files.store(), storage.gc_grace, chrono::Utc::now())
                    .await
                {
                    Ok(c) if c.removed > 0 || c.failed > 0 => tracing::info!(
                        removed = c.removed,
                        bytes = c.bytes,
                        failed = c.failed,
                        "collected unreferenced blobs"
                    ),
                    Ok(_) => {}
                    Err(e) => tracing::warn!(error = ?e, "blob collector round failed"),
                }
            }
        });
        // Registered before serving: SIGHUP's default action would end the process.
        let reloader = match &self.static_keys {
            Some(s) => Some(reload_on_sighup(s.clone())?),
            None => None,
        };
        tracing::info!(addr = ?self.listener.local_addr().ok(), "rpc-server listening");
        let app = self.router();
        // Plain or TLS, with header-read and idle timeouts and a connection cap.
        let res =
            nexus_serve::serve(self.listener, self.tls, app, self.connections, shutdown).await;
        if let Some(f) = flusher {
            f.abort();
        }
        housekeeping.abort();
        collector.abort();
        if let Some(r) = reloader {
            r.abort();
        }
        if let Some((lu, store)) = &self.last_used {
            let _ = lu.flush(store).await;
        }
        res.context("server error")
    }
}

/// Re-reads the static key file on each SIGHUP, off the async threads (a file read).
fn reload_on_sighup(keys: Arc<StaticAuth>) -> anyhow::Result<tokio::task::JoinHandle<()>> {
    use tokio::signal::unix::{SignalKind, signal};
    let mut hup = signal(SignalKind::hangup()).context("cannot listen for SIGHUP")?;
    Ok(tokio::spawn(async move {
        while hup.recv().await.is_some() {
            let keys = keys.clone();
            if tokio::task::spawn_blocking(move || keys.reload_logged())
                .await
                .is_err()
            {
                tracing::error!("static keys NOT reloaded: the reload task failed");
            }
        }
    }))
}

/// What answers "who is this token?" and what stands behind it: the auth provider, the
/// zones, and in database mode the control plane, the store, compiled grants and the
/// last-use recorder.
struct Backends {
    auth: Arc<dyn AuthProvider>,
    /// Issuers whose JWTs the chain accepts.
    issuers: Vec<String>,
    control: Option<Control>,
    store: Option<Store>,
    zones: ZoneSource,
    grants: Option<Arc<GrantsSource>>,
    last_used: Option<(Arc<LastUsed>, Store)>,
    local: Option<Arc<LocalAuth>>,
    /// The static file's provider, reloaded on SIGHUP.
    static_keys: Option<Arc<StaticAuth>>,
    /// The OAuth authorization server (SPEC §11), when on.
    oauth: Option<Arc<crate::oauth::OAuthServer>>,
}

/// What the providers of the chain share: the database provider itself, and the store,
/// digests, identity cache and metrics behind every other one.
struct ChainParts<'a> {
    database: &'a Arc<dyn AuthProvider>,
    local: Option<&'a Arc<LocalAuth>>,
    static_keys: Option<&'a Arc<StaticAuth>>,
    store: &'a Store,
    hasher: &'a Arc<TokenHasher>,
    cache: &'a Arc<IdentityCache>,
    metrics: &'a Metrics,
}

/// The file service: the namespace in the hub's database (in single-key mode, an SQLite
/// file of its own in the data dir), the configured blob store, and the import of a data
/// directory an earlier release kept files in.
async fn open_files(
    cfg: &ServerConfig,
    store: Option<&Store>,
    metrics: &Metrics,
) -> anyhow::Result<FileService> {
    let store = match store {
        Some(s) => s.clone(),
        None => {
            let url = format!("sqlite://{}", cfg.data_dir.join("files.db").display());
            let s = Store::connect(&url)
                .await
                .context("cannot open the file database")?;
            s.migrate()
                .await
                .context("cannot apply database migrations")?;
            crate::config::tighten_sqlite_files(&url);
            s
        }
    };
    let backing = nexus_blobs::open(&cfg.storage.url)
        .await
        .with_context(|| format!("cannot open the blob store {}", cfg.storage.url))?;
    tracing::info!(blobs = %backing.describe(), inline_max = cfg.storage.inline_max, "file storage");
    let previous = match &cfg.storage.previous_url {
        Some(u) => {
            let p = nexus_blobs::open(u)
                .await
                .with_context(|| format!("cannot open the previous blob store {u}"))?;
            tracing::info!(previous = %p.describe(), "blobs missing from the store are read from the previous one and copied");
            Some(p)
        }
        None => None,
    };
    let blobs =
        crate::files::store::Blobs::new(backing, cfg.storage.inline_max, cfg.storage.cache_bytes)
            .with_previous(previous);
    let files = FileService::new(store, blobs, cfg.max_file_bytes)
        .with_grep_limits(cfg.grep.clone(), Some(metrics.clone()))
        .with_embeddings(cfg.embeddings.clone())
        .map_err(|e| anyhow::anyhow!(e))?;
    if let Some(e) = &cfg.embeddings {
        tracing::info!(url = %e.url, model = %e.model, "semantic search through an embeddings endpoint");
    }
    files
        .import_data_dir(&cfg.data_dir)
        .await
        .with_context(|| {
            format!(
                "cannot import the files under {}/zones",
                cfg.data_dir.display()
            )
        })?;
    Ok(files)
}

/// The database settings of [`AuthMode::Database`].
struct Database<'a> {
    url: &'a SecretString,
    secret: &'a SecretString,
    previous_secret: Option<&'a SecretString>,
}

impl Backends {
    /// One fixed key with access to the one zone: no database, no control plane.
    fn single_key(key: &str) -> anyhow::Result<Self> {
        let auth = SingleKeyAuth::new(key).map_err(anyhow::Error::msg)?;
        Ok(Self {
            auth: Arc::new(auth),
            issuers: Vec::new(),
            control: None,
            store: None,
            zones: ZoneSource::fixed(vec![SINGLE_KEY_ZONE.to_owned()]),
            grants: None,
            last_used: None,
            local: None,
            static_keys: None,
            oauth: None,
        })
    }

    /// The configured provider chain (SPEC §10), in `--auth-type` order.
    fn chain(cfg: &ServerConfig, parts: ChainParts<'_>) -> anyhow::Result<ProviderChain> {
        let mut chain = ProviderChain::new();
        for t in &cfg.auth_chain.types {
            chain = match t {
                AuthType::Database => chain.with_api_keys(parts.database.clone()),
                AuthType::Static => match parts.static_keys {
                    Some(s) => chain.with_api_keys(s.clone()),
                    None => anyhow::bail!("auth type static: the static keys were not loaded"),
                },
                AuthType::Local => match parts.local {
                    Some(l) => chain.with_issuer(l.issuer().to_owned(), l.clone())?,
                    None => anyhow::bail!("the local provider was not built"),
                },
                AuthType::Oidc | AuthType::MultiOidc => {
                    let file = &cfg.auth_chain.file;
                    let configs = match t {
                        AuthType::Oidc => {
                            file.oidc.iter().map(|c| ("oidc".to_owned(), c)).collect()
                        }
                        _ => file
                            .multi_oidc
                            .iter()
                            .flat_map(|m| m.providers.iter().map(|(n, c)| (n.clone(), c)))
                            .collect::<Vec<_>>(),
                    };
                    if configs.is_empty() {
                        anyhow::bail!(
                            "auth type {t} needs a {t} section in the auth configuration"
                        );
                    }
                    for (name, c) in configs {
                        let p = OidcAuth::new(
                            &name,
                            c,
                            parts.store.clone(),
                            parts.hasher.clone(),
                            parts.cache.clone(),
                            parts.metrics.clone(),
                        )
                        .with_context(|| format!("auth provider {t} {name}"))?;
                        let issuer = p.issuer().to_owned();
                        tracing::info!(provider = %name, issuer = %issuer, "accepting OIDC access tokens");
                        chain = chain.with_issuer(issuer, Arc::new(p))?;
                    }
                    chain
                }
            };
        }
        Ok(chain)
    }

    /// Tokens, zones and grants from the database, each behind a cache that `bus`
    /// invalidates (and the database's own change notifications, without Redis).
    async fn database(
        cfg: &ServerConfig,
        db: Database<'_>,
        bus: &Arc<InvalidationBus>,
        metrics: &Metrics,
    ) -> anyhow::Result<Self> {
        let url = db.url.expose_secret();
        let store = Store::connect_with(url, cfg.db_acquire_timeout)
            .await
            .context("cannot connect to the database")?;
        if cfg.migrate || store.backend() == crate::db::Backend::Sqlite {
            store
                .migrate()
                .await
                .context("cannot apply database migrations")?;
        }
        // A new SQLite database is created with the umask's mode: it holds every token's
        // digest, so only this user may read it.
        crate::config::tighten_sqlite_files(url);
        store.list_zones(false).await.context(
            "the database has no Nexus schema; run `nexus hub migrate` (or start with --migrate)",
        )?;
        let mut hasher = TokenHasher::new(db.secret)?;
        if let Some(prev) = db.previous_secret {
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
        let grants = Arc::new(GrantsSource::new(
            store.clone(),
            cfg.auth_cache_ttl,
            metrics.clone(),
        ));
        bus.subscribe(grants.clone());
        // Changes announced by the database reach the cache without Redis.
        crate::auth::db_notify::start(url, bus.clone(), Some(metrics.clone())).await;
        let last_used = Arc::new(LastUsed::default());
        let database: Arc<dyn AuthProvider> = Arc::new(DatabaseAuth::new(
            store.clone(),
            hasher.clone(),
            cache.clone(),
            last_used.clone(),
            metrics.clone(),
        ));
        // The static file's keys, with a verdict cache of their own (keyed by the keys'
        // SHA-256, not the HMAC digest the database provider's cache uses).
        let static_keys = if cfg.auth_chain.types.contains(&AuthType::Static) {
            let own_cache = Arc::new(IdentityCache::new(
                cfg.auth_cache_ttl,
                std::time::Duration::ZERO,
            ));
            bus.subscribe(own_cache.clone());
            Some(Arc::new(StaticAuth::new(
                cfg.auth_chain.clone(),
                store.clone(),
                zones.clone(),
                own_cache,
                hasher.clone(),
            )?))
        } else {
            None
        };
        let local = if cfg.auth_chain.types.contains(&AuthType::Local) {
            Some(Self::local(cfg, &store, &hasher, &cache, bus, metrics).await?)
        } else {
            None
        };
        let chain = Self::chain(
            cfg,
            ChainParts {
                database: &database,
                local: local.as_ref(),
                static_keys: static_keys.as_ref(),
                store: &store,
                hasher: &hasher,
                cache: &cache,
                metrics,
            },
        )?;
        let mut control = Control::new(
            store.clone(),
            hasher.clone(),
            bus.clone(),
            cfg.public_url.clone(),
        );
        if let Some(url) = &cfg.redis_url {
            control = control.with_audit_redis(url.expose_secret());
        }
        let oauth = match &cfg.oauth {
            None => None,
            Some(o) => {
                // Upstream sign-in: the OIDC providers of the chain that have login
                // credentials (SPEC §11).
                let mut upstreams = Vec::new();
                let oidc_on = cfg
                    .auth_chain
                    .types
                    .iter()
                    .any(|t| matches!(t, AuthType::Oidc | AuthType::MultiOidc));
                if oidc_on {
                    for (name, c) in cfg.auth_chain.file.oidc_providers() {
                        if let Some(u) = crate::oauth::Upstream::from_config(&name, c, metrics)
                            .with_context(|| format!("OAuth sign-in through {name}"))?
                        {
                            tracing::info!(provider = %name, issuer = %c.issuer, "OAuth sign-in through an upstream OpenID provider on");
                            upstreams.push(u);
                        }
                    }
                }
                if local.is_none() && upstreams.is_empty() {
                    anyhow::bail!(
                        "NEXUS_OAUTH_ISSUER needs someone to sign in: the local provider (--auth-type database,local) or an OIDC provider with `login:` settings"
                    );
                }
                tracing::info!(issuer = %o.issuer, dcr = o.dcr, client_metadata_documents = o.cimd.enabled, local = local.is_some(), upstreams = upstreams.len(), "OAuth authorization server on");
                Some(Arc::new(crate::oauth::OAuthServer::new(
                    o.clone(),
                    control.clone(),
                    local.clone(),
                    hasher,
                    upstreams,
                )))
            }
        };
        metrics.register_cache_size(move || cache.len());
        Ok(Self {
            issuers: chain.issuers(),
            auth: chain.into_provider(),
            control: Some(control),
            store: Some(store.clone()),
            zones,
            grants: Some(grants),
            last_used: Some((last_used, store)),
            local,
            static_keys,
            oauth,
        })
    }

    /// The local provider: its signing keys, the auth file's users, and root (SPEC §10).
    async fn local(
        cfg: &ServerConfig,
        store: &Store,
        hasher: &Arc<TokenHasher>,
        cache: &Arc<IdentityCache>,
        bus: &Arc<InvalidationBus>,
        metrics: &Metrics,
    ) -> anyhow::Result<Arc<LocalAuth>> {
        let s = &cfg.auth_chain.local;
        // The hub's issuer is its public URL: every nexusd behind it must agree on it.
        let issuer = cfg
            .public_url
            .clone()
            .unwrap_or_else(|| format!("http://{}:{}", cfg.host, cfg.port))
            .trim_end_matches('/')
            .to_owned();
        let local = Arc::new(LocalAuth::new(
            store.clone(),
            hasher.clone(),
            cache.clone(),
            bus.clone(),
            metrics.clone(),
            issuer,
            s.clone(),
        )?);
        local
            .ensure_keys()
            .await
            .context("cannot prepare login signing keys")?;
        tokio::task::spawn_blocking(nexus_providers::password::warm_up).await?;
        if let Some(users) = cfg.auth_chain.file.local.as_ref().map(|l| &l.users) {
            crate::auth::local::upsert_config_users(&local, users).await?;
        }
        crate::auth::local::bootstrap_root(&local, s).await?;
        Ok(local)
    }
}
