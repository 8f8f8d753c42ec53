//! Frontend configuration: flags over `NEXUS_*` environment variables over defaults.

use std::time::Duration;

fn parse_bool(s: &str) -> Result<bool, String> {
    match s.trim().to_ascii_lowercase().as_str() {
        "1" | "true" | "yes" | "on" => Ok(true),
        "0" | "false" | "no" | "off" => Ok(false),
        _ => Err(format!("expected true or false, got {s:?}")),
    }
}

fn parse_secs(s: &str) -> Result<Duration, String> {
    s.trim()
        .parse::<f64>()
        .ok()
        .filter(|v| *v > 0.0 && *v < 3600.0)
        .map(Duration::from_secs_f64)
        .ok_or_else(|| format!("expected seconds between 0 and 3600, got {s:?}"))
}

fn parse_replicas(s: &str) -> Result<u8, String> {
    s.trim()
        .parse()
        .ok()
        .filter(|n| (1..=5).contains(n))
        .ok_or_else(|| format!("NEXUS_NATS_REPLICAS must be 1 to 5, not {s:?}"))
}

/// `nexus mcp serve` flags.
#[derive(Debug, Clone, clap::Args)]
pub struct FrontendArgs {
    /// Transport: only `http` is served by the hub frontend.
    #[arg(long, default_value = "http", value_parser = ["http"])]
    pub transport: String,
    /// The rpc-server's URL.
    #[arg(long, env = "NEXUS_URL", default_value = "http://127.0.0.1:2026")]
    pub url: String,
    /// Address to listen on.
    #[arg(long, env = "NEXUS_MCP_HOST", default_value = "127.0.0.1")]
    pub host: String,
    /// Port to listen on (0 picks a free one).
    #[arg(long, env = "NEXUS_MCP_PORT", default_value_t = 8081)]
    pub port: u16,
    /// Public URL of the MCP endpoint (for the RFC 9728 metadata); default from Host.
    #[arg(long = "public-url", env = "NEXUS_MCP_URL")]
    pub public_url: Option<String>,
    /// Refuse requests without a valid token with 401 (default true for HTTP).
    #[arg(long, env = "NEXUS_MCP_REQUIRE_BEARER", default_value = "true", value_parser = parse_bool)]
    pub require_bearer: bool,
    /// Allowed Host values (comma-separated; host or host:port; `*` allows any).
    #[arg(
        long,
        env = "NEXUS_MCP_ALLOWED_HOSTS",
        value_delimiter = ',',
        default_value = "localhost,127.0.0.1,::1"
    )]
    pub allowed_hosts: Vec<String>,
    /// More browser Origins to allow (comma-separated, with scheme). The hub's own origin
    /// always passes, and loopback pages do when the frontend listens on loopback; requests
    /// without Origin pass.
    #[arg(long, env = "NEXUS_MCP_ALLOWED_ORIGINS", value_delimiter = ',')]
    pub allowed_origins: Vec<String>,
    /// Answer stateless (2026-07-28) tools/call, tools/list, server/discover and ping
    /// directly; false sends every request through the general MCP transport (same answers,
    /// more work per request).
    #[arg(long, env = "NEXUS_MCP_DIRECT_PATH", default_value = "true", value_parser = parse_bool)]
    pub direct_path: bool,
    /// Serve GET /metrics.
    #[arg(long, env = "NEXUS_MCP_METRICS_ENABLED", default_value = "true", value_parser = parse_bool)]
    pub metrics_enabled: bool,
    /// Serve the hub's OAuth authorization server (SPEC §11) on this origin: proxy
    /// `/oauth/*` and its metadata to the rpc-server (started with NEXUS_OAUTH_ISSUER set
    /// to this origin) and name it in the protected-resource metadata.
    #[arg(long, env = "NEXUS_MCP_OAUTH", default_value = "false", value_parser = parse_bool)]
    pub oauth: bool,
    /// Redis for the audit channel and stream and the traffic figures of `hub status`.
    #[arg(long, env = "NEXUS_REDIS_URL", hide_env_values = true)]
    pub redis_url: Option<secrecy::SecretString>,
    /// Write one audit line per MCP request on stdout.
    #[arg(long, env = "NEXUS_AUDIT_STDOUT", default_value = "true", value_parser = parse_bool)]
    pub audit_stdout: bool,
    /// The cluster bus: `nats://host:4222,…` (every audit line also goes to the durable
    /// JetStream stream; this node's heartbeat) or `redis://…` (the heartbeat only; Redis
    /// audit stays with NEXUS_REDIS_URL). Unset: no bus.
    #[arg(long, env = "NEXUS_BUS_URL", hide_env_values = true)]
    pub bus_url: Option<secrecy::SecretString>,
    /// This node's NATS credentials (`nexus hub cluster add-node NAME --role frontend`);
    /// needed unless every NATS server is on 127.0.0.1.
    #[arg(long, env = "NEXUS_NATS_CREDS")]
    pub nats_creds: Option<std::path::PathBuf>,
    /// Replicas of the JetStream streams this node creates: 1 for one server, 3 in a
    /// three-server cluster.
    #[arg(long, env = "NEXUS_NATS_REPLICAS", value_name = "N", value_parser = parse_replicas)]
    pub nats_replicas: Option<u8>,
    /// This node's name on the bus, unique in the cluster (default:
    /// `frontend-<host name>-<port>`).
    #[arg(long, env = "NEXUS_NODE_NAME")]
    pub node_name: Option<String>,
    /// Proxies (IPs or CIDRs) in front of this frontend whose X-Forwarded-For names the client.
    #[arg(long, env = "NEXUS_MCP_TRUSTED_PROXIES", value_delimiter = ',')]
    pub trusted_proxies: Vec<String>,
    /// Failed authentications allowed per client address per minute before 429.
    #[arg(long, env = "NEXUS_AUTH_FAILURES_PER_MIN", default_value_t = 60)]
    pub auth_failures_per_min: u32,
    /// Serve HTTPS with this PEM certificate chain (needs --tls-key).
    #[arg(long, env = "NEXUS_MCP_TLS_CERT", requires = "tls_key")]
    pub tls_cert: Option<std::path::PathBuf>,
    /// PEM private key for --tls-cert.
    #[arg(long, env = "NEXUS_MCP_TLS_KEY", requires = "tls_cert")]
    pub tls_key: Option<std::path::PathBuf>,
    /// With an https:// --url: the PEM CA bundle that verifies the rpc-server's certificate,
    /// then the only trust (default: the system's roots).
    #[arg(long, env = "NEXUS_MCP_RPC_CA")]
    pub rpc_ca: Option<std::path::PathBuf>,
    /// With an https:// --url: a PEM client certificate chain to present to the rpc-server
    /// (with --rpc-key).
    #[arg(long, env = "NEXUS_MCP_RPC_CERT")]
    pub rpc_cert: Option<std::path::PathBuf>,
    /// PEM private key for --rpc-cert.
    #[arg(long, env = "NEXUS_MCP_RPC_KEY")]
    pub rpc_key: Option<std::path::PathBuf>,
    /// Timeout of one call to the rpc-server, in seconds.
    #[arg(long, env = "NEXUS_MCP_RPC_TIMEOUT", default_value = "30", value_parser = parse_secs)]
    pub rpc_timeout: Duration,
    /// How often a long search (grep, glob, semantic search, a listing) reports progress
    /// to a client that sent a `progressToken`.
    #[arg(long, env = "NEXUS_MCP_PROGRESS_INTERVAL", default_value = "1s", value_parser = nexus_serve::parse_timeout)]
    pub progress_interval: Duration,
    /// Largest MCP request body; 413 beyond it.
    #[arg(long, env = "NEXUS_MCP_MAX_BODY_BYTES", default_value_t = DEFAULT_MAX_BODY_BYTES)]
    pub max_body_bytes: usize,
    /// A request head must arrive within this time of its first byte (of the accept, for a
    /// connection's first request): 10, 10s, 500ms.
    #[arg(long, env = "NEXUS_MCP_HEADER_READ_TIMEOUT", default_value = "10s", value_parser = nexus_serve::parse_timeout)]
    pub header_read_timeout: Duration,
    /// A connection with no request in flight is closed this long after its last response.
    #[arg(long, env = "NEXUS_MCP_IDLE_TIMEOUT", default_value = "120s", value_parser = nexus_serve::parse_timeout)]
    pub idle_timeout: Duration,
    /// Open connections at most; new ones past it are closed at once (0: no cap).
    #[arg(long, env = "NEXUS_MCP_MAX_CONNECTIONS", default_value_t = nexus_serve::DEFAULT_MAX_CONNECTIONS)]
    pub max_connections: usize,
    /// Open connections from one client address (an IPv6 /64) at most (0: no cap; default:
    /// a quarter of --max-connections). Behind a proxy, raise it or set 0.
    #[arg(long, env = "NEXUS_MCP_MAX_CONNECTIONS_PER_ADDRESS")]
    pub max_connections_per_address: Option<usize>,
    /// A response write the client does not accept for this long closes the connection.
    #[arg(long, env = "NEXUS_MCP_WRITE_TIMEOUT", default_value = "30s", value_parser = nexus_serve::parse_timeout)]
    pub write_timeout: Duration,
    /// A request body must arrive within this time of its head; 408 after it.
    #[arg(long, env = "NEXUS_MCP_BODY_READ_TIMEOUT", default_value = "30s", value_parser = nexus_serve::parse_timeout)]
    pub body_read_timeout: Duration,
    /// Requests per client address whose token is still being verified, at most; 429 past it.
    #[arg(long, env = "NEXUS_MCP_MAX_UNVERIFIED_PER_ADDR", default_value_t = Limits::default().unverified_per_addr)]
    pub max_unverified_per_addr: usize,
    /// Open MCP sessions per token, at most; `initialize` past it is refused with 429.
    #[arg(long, env = "NEXUS_MCP_MAX_SESSIONS_PER_KEY", default_value_t = Limits::default().sessions_per_key)]
    pub max_sessions_per_key: usize,
    /// Open MCP sessions in all, at most; `initialize` past it is refused with 503.
    #[arg(long, env = "NEXUS_MCP_MAX_SESSIONS", default_value_t = Limits::default().sessions)]
    pub max_sessions: usize,
    /// A session with no request for this long is closed.
    #[arg(long, env = "NEXUS_MCP_SESSION_IDLE_TIMEOUT", default_value = "300s", value_parser = nexus_serve::parse_timeout)]
    pub session_idle_timeout: Duration,
    // Sealed session ids (crate::sessions): any replica with the same secret serves any session.
    /// Secret that seals MCP session ids: 32 or more bytes as hex or base64, the same on
    /// every frontend replica. Unset (and no --session-secret-file): a random secret per
    /// process, so sessions stay local to it.
    #[arg(long, env = "NEXUS_MCP_SESSION_SECRET", hide_env_values = true)]
    pub session_secret: Option<secrecy::SecretString>,
    /// A file (mode 0600) holding the session secret, in place of --session-secret: the
    /// current secret on the first line, earlier ones (still accepted) on the next. Re-read
    /// when the cluster bus announces a rotation (`nexus hub session-secret rotate`) and
    /// every --session-secret-reload.
    #[arg(
        long,
        env = "NEXUS_MCP_SESSION_SECRET_FILE",
        conflicts_with = "session_secret"
    )]
    pub session_secret_file: Option<std::path::PathBuf>,
    /// Earlier session secrets (comma-separated): ids they sealed are still accepted during
    /// a rotation; new ids are sealed with the current secret.
    #[arg(
        long,
        env = "NEXUS_MCP_SESSION_SECRET_PREVIOUS",
        hide_env_values = true,
        value_delimiter = ','
    )]
    pub session_secret_previous: Vec<secrecy::SecretString>,
    /// How often the session secret file is re-read (the bus's announcement of a rotation
    /// is acted on at once; this catches a file changed without one).
    #[arg(long, env = "NEXUS_MCP_SESSION_SECRET_RELOAD", default_value = "30s", value_parser = nexus_serve::parse_timeout)]
    pub session_secret_reload: Duration,
    /// Absolute lifetime of an MCP session (24h, 30m, 7d; at most 30d), on every replica.
    #[arg(long, env = "NEXUS_MCP_SESSION_LIFETIME", default_value = "24h", value_parser = crate::sessions::parse_lifetime)]
    pub session_lifetime: Duration,
    /// Open SSE streams (GET /mcp) per token, at most; 429 past it.
    #[arg(long, env = "NEXUS_MCP_MAX_STREAMS_PER_KEY", default_value_t = Limits::default().streams_per_key)]
    pub max_streams_per_key: usize,
    /// Open SSE streams in all, at most; 503 past it.
    #[arg(long, env = "NEXUS_MCP_MAX_STREAMS", default_value_t = Limits::default().streams)]
    pub max_streams: usize,
    /// An SSE stream that carried no event for this long is ended (keep-alive pings do not
    /// count); the client reconnects when it needs one.
    #[arg(long, env = "NEXUS_MCP_STREAM_IDLE_TIMEOUT", default_value = "120s", value_parser = nexus_serve::parse_timeout)]
    pub stream_idle_timeout: Duration,
}

/// What one caller, and all callers together, may hold open in the frontend.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Limits {
    /// Deadline of a whole request body.
    pub body_read_timeout: Duration,
    /// Concurrent requests per client address whose token is being verified.
    pub unverified_per_addr: usize,
    pub sessions_per_key: usize,
    pub sessions: usize,
    /// Idle time after which a session is closed.
    pub session_idle_timeout: Duration,
    pub streams_per_key: usize,
    pub streams: usize,
    /// Time without an event after which an SSE stream is ended.
    pub stream_idle_timeout: Duration,
}

impl Default for Limits {
    fn default() -> Self {
        Self {
            body_read_timeout: Duration::from_secs(30),
            unverified_per_addr: 32,
            sessions_per_key: 32,
            sessions: 10_000,
            session_idle_timeout: Duration::from_secs(300),
            streams_per_key: 4,
            // Well under the default connection cap: streams never take every slot.
            streams: 1_000,
            stream_idle_timeout: Duration::from_secs(120),
        }
    }
}

/// Room for the rpc-server's largest write (16 MiB of content) in JSON, with headroom.
pub const DEFAULT_MAX_BODY_BYTES: usize = 32 * 1024 * 1024;

/// See [`FrontendConfig::auth_metadata_refresh`].
pub const DEFAULT_AUTH_METADATA_REFRESH: Duration = Duration::from_secs(60);

/// The TLS settings of the hop to the rpc-server: an https:// URL reads them (the files
/// once, here); plain http:// takes none, and TLS settings with it are a mistake to report,
/// not to ignore.
fn rpc_tls(url: &str, a: &FrontendArgs) -> anyhow::Result<Option<crate::forward::RpcTls>> {
    let set = [
        ("NEXUS_MCP_RPC_CA (--rpc-ca)", &a.rpc_ca),
        ("NEXUS_MCP_RPC_CERT (--rpc-cert)", &a.rpc_cert),
        ("NEXUS_MCP_RPC_KEY (--rpc-key)", &a.rpc_key),
    ];
    if url.starts_with("http://") {
        if let Some((name, _)) = set.iter().find(|(_, v)| v.is_some()) {
            anyhow::bail!(
                "{name} is set but --url {url:?} is plain http://; use https:// or unset it"
            );
        }
        return Ok(None);
    }
    if !url.starts_with("https://") {
        anyhow::bail!("--url must be the http:// or https:// URL of the rpc-server, got {url:?}");
    }
    let client = match (&a.rpc_cert, &a.rpc_key) {
        (Some(cert), Some(key)) => Some((cert.as_path(), key.as_path())),
        (None, None) => None,
        (Some(_), None) => anyhow::bail!(
            "NEXUS_MCP_RPC_CERT (--rpc-cert) is set without NEXUS_MCP_RPC_KEY (--rpc-key): give both or neither"
        ),
        (None, Some(_)) => anyhow::bail!(
            "NEXUS_MCP_RPC_KEY (--rpc-key) is set without NEXUS_MCP_RPC_CERT (--rpc-cert): give both or neither"
        ),
    };
    crate::forward::RpcTls::load(a.rpc_ca.as_deref(), client).map(Some)
}

/// The cluster bus settings (SPEC §13), checked at startup; the bus itself starts with the
/// frontend, once its port (part of the default node name) is known.
#[derive(Debug, Clone)]
pub struct BusSettings {
    /// `NEXUS_BUS_URL`; may carry a password.
    pub url: secrecy::SecretString,
    /// `NEXUS_NATS_CREDS`.
    pub nats_creds: Option<std::path::PathBuf>,
    /// `NEXUS_NATS_REPLICAS` (1 to 5); the bus's default when unset.
    pub nats_replicas: Option<u8>,
    /// `NEXUS_NODE_NAME`; `frontend-<host>-<port>` when unset.
    pub node_name: Option<String>,
}

impl BusSettings {
    /// The settings of `url` and the rest, refused when the URL cannot work (unknown
    /// scheme, no server, remote NATS servers without credentials) or the node name is
    /// not one the bus accepts. Messages name the variable and never the password.
    pub fn new(
        url: secrecy::SecretString,
        nats_creds: Option<std::path::PathBuf>,
        nats_replicas: Option<u8>,
        node_name: Option<String>,
    ) -> anyhow::Result<Self> {
        use secrecy::ExposeSecret as _;
        nexus_bus::BusUrl::parse(url.expose_secret(), nats_creds.is_some())
            .map_err(|e| anyhow::anyhow!("{e}"))?;
        let node_name = node_name
            .map(|n| n.trim().to_owned())
            .filter(|n| !n.is_empty());
        if let Some(n) = &node_name
            && !nexus_wire::bus::is_valid_node_name(n)
        {
            anyhow::bail!("NEXUS_NODE_NAME {n:?} must be 1-64 of A-Z a-z 0-9 _ -");
        }
        if let Some(r) = nats_replicas
            && !(1..=5).contains(&r)
        {
            anyhow::bail!("NEXUS_NATS_REPLICAS must be 1 to 5, not {r}");
        }
        Ok(Self {
            url,
            nats_creds: nats_creds.filter(|p| !p.as_os_str().is_empty()),
            nats_replicas,
            node_name,
        })
    }
}

/// How an in-process rpc-server hands its announcements (file changes, revocations) to
/// the frontend of the embedded hub, which has no bus: each call opens a new reader.
#[derive(Clone)]
pub struct LocalChanges(
    pub  std::sync::Arc<
        dyn Fn() -> tokio::sync::broadcast::Receiver<nexus_wire::bus::Invalidation> + Send + Sync,
    >,
);

impl std::fmt::Debug for LocalChanges {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str("LocalChanges")
    }
}

/// The resolved configuration.
#[derive(Debug, Clone)]
pub struct FrontendConfig {
    pub rpc_url: String,
    pub host: String,
    pub port: u16,
    pub public_url: Option<String>,
    pub require_bearer: bool,
    pub allowed_hosts: Vec<String>,
    pub allowed_origins: Vec<String>,
    pub metrics_enabled: bool,
    /// Proxy the OAuth authorization server and name it in the metadata.
    pub oauth: bool,
    /// Stateless requests answered by the direct path (see `mcp::direct`).
    pub direct_path: bool,
    pub rpc_timeout: Duration,
    /// How often long calls report progress.
    pub progress_interval: Duration,
    /// Largest MCP request body accepted.
    pub max_body_bytes: usize,
    pub redis_url: Option<secrecy::SecretString>,
    pub audit_stdout: bool,
    /// Keep traffic figures in process (`audit::Traffic`) for a rpc-server in the same
    /// process to report: the embedded hub, which has no Redis to hold them.
    pub live_traffic: bool,
    /// The cluster bus; `None` without `NEXUS_BUS_URL`.
    pub bus: Option<BusSettings>,
    /// Without a bus, in the embedded hub: the rpc-server's announcements in process.
    pub local_changes: Option<LocalChanges>,
    pub auth_failures_per_min: u32,
    pub tls: Option<(std::path::PathBuf, std::path::PathBuf)>,
    /// TLS to the rpc-server, read at startup; set exactly when `rpc_url` is https.
    pub rpc_tls: Option<crate::forward::RpcTls>,
    pub trusted_proxies: Vec<ipnet::IpNet>,
    /// Header-read and idle timeouts, connection cap.
    pub connections: nexus_serve::ConnLimits,
    /// Body deadline, caps on unverified requests, sessions and streams.
    pub limits: Limits,
    /// How often the authorization servers of the protected-resource metadata are read
    /// again from the rpc-server (`GET /auth/providers`); until a first answer, every 5 s.
    pub auth_metadata_refresh: Duration,
    /// How MCP session ids are sealed: secret, previous secrets, lifetime.
    pub sessions: crate::sessions::SessionSealing,
}

impl FrontendConfig {
    pub fn from_args(a: FrontendArgs) -> anyhow::Result<Self> {
        let rpc_url = a.url.trim_end_matches('/').to_owned();
        let rpc_tls = rpc_tls(&rpc_url, &a)?;
        let clean = |v: Vec<String>| -> Vec<String> {
            v.into_iter()
                .map(|x| x.trim().to_owned())
                .filter(|x| !x.is_empty())
                .collect()
        };
        let allowed_hosts = clean(a.allowed_hosts);
        let allowed_origins = clean(a.allowed_origins);
        if allowed_hosts.is_empty() {
            anyhow::bail!(
                "NEXUS_MCP_ALLOWED_HOSTS is empty: list the Host names clients use, or * to allow any"
            );
        }
        for o in &allowed_origins {
            if !o.contains("://") && o != "null" {
                anyhow::bail!("allowed origin {o:?} needs a scheme, e.g. https://{o}");
            }
        }
        if a.max_body_bytes == 0 {
            anyhow::bail!("--max-body-bytes must be positive");
        }
        for (name, v) in [
            ("--max-unverified-per-addr", a.max_unverified_per_addr),
            ("--max-sessions-per-key", a.max_sessions_per_key),
            ("--max-sessions", a.max_sessions),
            ("--max-streams-per-key", a.max_streams_per_key),
            ("--max-streams", a.max_streams),
        ] {
            if v == 0 {
                anyhow::bail!("{name} must be positive");
            }
        }
        let sessions = crate::sessions::SessionSealing::resolve(
            a.session_secret.as_ref(),
            a.session_secret_file.as_deref(),
            &a.session_secret_previous,
            a.session_lifetime,
        )?;
        let sessions = crate::sessions::SessionSealing {
            reload_every: a.session_secret_reload,
            ..sessions
        };
        let trusted = nexus_wire::forwarded::parse_trusted(&a.trusted_proxies)
            .map_err(|e| anyhow::anyhow!(e.0))?;
        let bus = a
            .bus_url
            .filter(|u| !secrecy::ExposeSecret::expose_secret(u).trim().is_empty())
            .map(|url| BusSettings::new(url, a.nats_creds, a.nats_replicas, a.node_name))
            .transpose()?;
        Ok(Self {
            rpc_url,
            host: a.host,
            port: a.port,
            public_url: a.public_url.map(|u| u.trim_end_matches('/').to_owned()),
            require_bearer: a.require_bearer,
            allowed_hosts,
            allowed_origins,
            metrics_enabled: a.metrics_enabled,
            oauth: a.oauth,
            direct_path: a.direct_path,
            rpc_timeout: a.rpc_timeout,
            progress_interval: a.progress_interval,
            max_body_bytes: a.max_body_bytes,
            redis_url: a
                .redis_url
                .filter(|u| !secrecy::ExposeSecret::expose_secret(u).trim().is_empty()),
            audit_stdout: a.audit_stdout,
            live_traffic: false,
            bus,
            local_changes: None,
            auth_failures_per_min: a.auth_failures_per_min,
            tls: a.tls_cert.zip(a.tls_key),
            rpc_tls,
            trusted_proxies: trusted.clone(),
            connections: nexus_serve::ConnLimits {
                header_read_timeout: a.header_read_timeout,
                idle_timeout: a.idle_timeout,
                max_connections: a.max_connections,
                // The same deadline at the connection (serve) and for the request (bearer).
                body_read_timeout: a.body_read_timeout,
                write_timeout: a.write_timeout,
                // Behind a trusted proxy every client arrives from the proxy's address: a
                // per-address cap would then cap everyone together, so it is off by default.
                max_per_address: a
                    .max_connections_per_address
                    .unwrap_or(if trusted.is_empty() {
                        nexus_serve::ConnLimits::default_per_address(a.max_connections)
                    } else {
                        0
                    }),
            },
            limits: Limits {
                body_read_timeout: a.body_read_timeout,
                unverified_per_addr: a.max_unverified_per_addr,
                sessions_per_key: a.max_sessions_per_key,
                sessions: a.max_sessions,
                session_idle_timeout: a.session_idle_timeout,
                streams_per_key: a.max_streams_per_key,
                streams: a.max_streams,
                stream_idle_timeout: a.stream_idle_timeout,
            },
            auth_metadata_refresh: DEFAULT_AUTH_METADATA_REFRESH,
            sessions,
        })
    }

    /// Defaults for a frontend on loopback in front of `rpc_url` (embedded mode, tests).
    pub fn local(rpc_url: &str, port: u16) -> Self {
        Self {
            rpc_url: rpc_url.trim_end_matches('/').to_owned(),
            host: "127.0.0.1".into(),
            port,
            public_url: None,
            require_bearer: true,
            allowed_hosts: vec!["localhost".into(), "127.0.0.1".into(), "::1".into()],
            allowed_origins: Vec::new(),
            metrics_enabled: true,
            oauth: false,
            direct_path: true,
            rpc_timeout: Duration::from_secs(30),
            progress_interval: Duration::from_secs(1),
            max_body_bytes: DEFAULT_MAX_BODY_BYTES,
            redis_url: None,
            audit_stdout: true,
            live_traffic: true,
            bus: None,
            local_changes: None,
            auth_failures_per_min: 60,
            tls: None,
            rpc_tls: None,
            trusted_proxies: Vec::new(),
            connections: nexus_serve::ConnLimits {
                max_per_address: nexus_serve::ConnLimits::default_per_address(
                    nexus_serve::DEFAULT_MAX_CONNECTIONS,
                ),
                ..Default::default()
            },
            limits: Limits::default(),
            auth_metadata_refresh: DEFAULT_AUTH_METADATA_REFRESH,
            sessions: Default::default(),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use clap::Parser;

    #[derive(Parser)]
    struct Cli {
        #[command(flatten)]
        args: FrontendArgs,
    }

    fn config(flags: &[&str]) -> FrontendConfig {
        let mut argv = vec!["nexus", "--max-connections", "200"];
        argv.extend_from_slice(flags);
        let cli = Cli::try_parse_from(argv).expect("flags parse");
        FrontendConfig::from_args(cli.args).expect("valid config")
    }

    fn try_config(flags: &[&str]) -> Result<FrontendConfig, String> {
        let mut argv = vec!["nexus"];
        argv.extend_from_slice(flags);
        let cli = Cli::try_parse_from(argv).map_err(|e| e.to_string())?;
        FrontendConfig::from_args(cli.args).map_err(|e| e.to_string())
    }

    #[test]
    fn session_secrets_come_from_the_flag_or_a_private_file_and_are_never_echoed() {
        use std::os::unix::fs::PermissionsExt;
        let hex = "5a".repeat(32);
        let c = config(&["--session-secret", &hex]);
        assert!(c.sessions.secret.is_some());
        assert_eq!(c.sessions.lifetime, crate::sessions::DEFAULT_LIFETIME);
        assert!(config(&[]).sessions.secret.is_none());
        let c = config(&[
            "--session-secret",
            &hex,
            "--session-secret-previous",
            &format!("{},{}", "61".repeat(32), "62".repeat(40)),
            "--session-lifetime",
            "2h",
        ]);
        assert_eq!(c.sessions.previous.len(), 2);
        assert_eq!(c.sessions.lifetime, Duration::from_secs(7200));

        let short = "ab".repeat(20);
        let e = try_config(&["--session-secret", &short]).expect_err("too short");
        assert!(
            e.contains("NEXUS_MCP_SESSION_SECRET") && !e.contains(&short),
            "{e}"
        );
        let e = try_config(&["--session-secret-previous", &hex]).expect_err("no current");
        assert!(!e.contains(&hex), "{e}");

        let d = tempfile::tempdir().expect("tempdir");
        let f = d.path().join("secret");
        std::fs::write(&f, format!("{hex}\n")).expect("write");
        let path = f.to_str().expect("utf-8 path");
        std::fs::set_permissions(&f, std::fs::Permissions::from_mode(0o644)).expect("chmod");
        let e = try_config(&["--session-secret-file", path]).expect_err("readable by others");
        assert!(e.contains("chmod 600") && !e.contains(&hex), "{e}");
        std::fs::set_permissions(&f, std::fs::Permissions::from_mode(0o600)).expect("chmod");
        assert!(
            config(&["--session-secret-file", path])
                .sessions
                .secret
                .is_some()
        );
        assert!(try_config(&["--session-secret", &hex, "--session-secret-file", path]).is_err());
    }

    #[test]
    fn bus_settings_are_checked_at_startup_and_the_url_is_never_echoed() {
        assert!(config(&[]).bus.is_none());
        assert!(config(&["--bus-url", " "]).bus.is_none(), "blank: no bus");
        let c = config(&[
            "--bus-url",
            "nats://n1:4222,n2:4222",
            "--nats-creds",
            "/etc/nexus/fe-1.creds",
            "--nats-replicas",
            "3",
            "--node-name",
            "fe-1",
        ]);
        let bus = c.bus.expect("a bus");
        assert_eq!(bus.nats_replicas, Some(3));
        assert_eq!(bus.node_name.as_deref(), Some("fe-1"));
        assert_eq!(
            bus.nats_creds.as_deref(),
            Some(std::path::Path::new("/etc/nexus/fe-1.creds"))
        );
        // Loopback NATS needs no credentials; a remote one does.
        assert!(
            config(&["--bus-url", "nats://127.0.0.1:4222"])
                .bus
                .is_some()
        );
        let e = try_config(&["--bus-url", "nats://nats.example:4222"]).expect_err("no creds");
        assert!(e.contains("NEXUS_NATS_CREDS"), "{e}");
        for bad in [
            "mqtt://h:1",
            "nats://user:hunter2@nats.example:4222,",
            "nats://user:hunter2@",
        ] {
            let e = try_config(&["--bus-url", bad]).expect_err(bad);
            assert!(e.contains("NEXUS_BUS_URL"), "{bad}: {e}");
            assert!(!e.contains("hunter2"), "{bad}: {e}");
        }
        for bad in ["0", "6", "three"] {
            assert!(
                try_config(&["--bus-url", "redis://127.0.0.1", "--nats-replicas", bad]).is_err(),
                "{bad}"
            );
        }
        let e = try_config(&["--bus-url", "redis://127.0.0.1", "--node-name", "a.b"])
            .expect_err("bad node name");
        assert!(e.contains("NEXUS_NODE_NAME"), "{e}");
    }

    #[test]
    fn per_address_cap_is_off_behind_a_trusted_proxy_unless_set() {
        // Facing clients directly: one address holds at most a quarter of the slots.
        assert_eq!(config(&[]).connections.max_per_address, 50);
        // Behind a proxy every client shares its address; a quarter would cap all of them.
        let proxied = ["--trusted-proxies", "10.0.0.0/8"];
        assert_eq!(config(&proxied).connections.max_per_address, 0);
        let set = [
            "--trusted-proxies",
            "10.0.0.0/8",
            "--max-connections-per-address",
            "7",
        ];
        assert_eq!(config(&set).connections.max_per_address, 7);
    }
}
