//! Configuration: one typed struct, loaded once. Flags override environment variables
//! (clap's `env`), which override defaults. Secrets are typed so they cannot be printed.

use crate::auth::token::{MIN_SECRET_LEN, generate_secret};
use anyhow::{Context, bail};
use secrecy::{ExposeSecret, SecretString};
use std::fs;
use std::io::Write;
use std::os::unix::fs::{DirBuilderExt, OpenOptionsExt, PermissionsExt};
use std::path::{Path, PathBuf};
use std::time::Duration;

/// Name of the generated secret file inside the data dir (mode 0600).
pub const SECRET_FILE: &str = "api_key_secret";
pub const DEFAULT_MAX_FILE_BYTES: u64 = 16 * 1024 * 1024;

fn parse_ttl(s: &str) -> Result<Duration, String> {
    if let Ok(secs) = s.trim().parse::<u64>() {
        return Ok(Duration::from_secs(secs));
    }
    humantime::parse_duration(s.trim())
        .map_err(|e| format!("invalid duration {s:?}: {e} (e.g. 60 or 60s)"))
}

fn parse_positive(s: &str) -> Result<Duration, String> {
    match parse_ttl(s)? {
        d if d.is_zero() => Err(format!("{s:?} must be more than zero")),
        d => Ok(d),
    }
}

/// The rpc-server's command line; every flag also reads its `NEXUS_*` variable.
#[derive(Debug, Clone, clap::Args)]
pub struct ServerArgs {
    /// Address to listen on.
    #[arg(long, env = "NEXUS_HOST", default_value = "127.0.0.1")]
    pub host: String,
    /// Port to listen on (0 picks a free one).
    #[arg(long, env = "NEXUS_PORT", default_value_t = 2026)]
    pub port: u16,
    /// postgres://… or sqlite://…; defaults to sqlite in the data dir.
    #[arg(long, env = "NEXUS_DATABASE_URL", hide_env_values = true)]
    pub database_url: Option<SecretString>,
    /// Where files (and, embedded, the database and secret) live.
    #[arg(long, env = "NEXUS_DATA_DIR", default_value = "./nexus-data")]
    pub data_dir: PathBuf,
    /// Single-key development mode: this key is the only (admin) identity; no database.
    /// A command line is visible to every local user (`ps`): prefer the variable or
    /// --api-key-file. (Not `NEXUS_API_KEY`: that is the admin token in admin.env.)
    #[arg(long, env = "NEXUS_DEV_API_KEY", hide_env_values = true)]
    pub api_key: Option<SecretString>,
    /// Single-key development mode with the key read from this file (mode 0600 or
    /// stricter; one line).
    #[arg(long, env = "NEXUS_DEV_API_KEY_FILE", conflicts_with = "api_key")]
    pub api_key_file: Option<PathBuf>,
    /// The auth provider chain (SPEC §10), comma-separated: database, static, local, oidc,
    /// multi-oidc. API keys try the key providers (database, static) in this order; a JWT
    /// goes to the provider of its issuer.
    /// Default `database`; when neither this nor --auth-config is given (flag or
    /// environment), the configuration file's `[auth]` section decides.
    #[arg(long, env = "NEXUS_AUTH_TYPE")]
    pub auth_type: Option<String>,
    /// The providers' settings (YAML): one key per provider (`static:`, `local:`, `oidc:`,
    /// `multi-oidc:`), or the seed's bare dict when the chain has one such provider.
    #[arg(long, env = "NEXUS_AUTH_CONFIG")]
    pub auth_config: Option<PathBuf>,
    /// The configuration file (`--config`), whose `[auth]` section is read when neither
    /// --auth-type nor --auth-config was given. Set by the binary, not a flag of its own.
    #[arg(skip)]
    pub config_file: Option<PathBuf>,
    /// Identity cache lifetime (seconds or 60s/1m); 0 disables caching.
    #[arg(long, env = "NEXUS_AUTH_CACHE_TTL", default_value = "60", value_parser = parse_ttl)]
    pub auth_cache_ttl: Duration,
    /// Longest wait for a Postgres connection (seconds or 3s/500ms). While the database is
    /// down, a call that needs it fails with 503 after this long.
    #[arg(long, env = "NEXUS_DATABASE_ACQUIRE_TIMEOUT", default_value = "3", value_parser = parse_positive)]
    pub database_acquire_timeout: Duration,
    /// Largest file a write may create.
    #[arg(long, env = "NEXUS_MAX_FILE_BYTES", default_value_t = DEFAULT_MAX_FILE_BYTES)]
    pub max_file_bytes: u64,
    /// Where file bytes live: file:///dir or s3://bucket/prefix?endpoint=…&region=…
    /// (credentials from AWS_*). Default: the data dir's `blobs/`.
    #[arg(long, env = "NEXUS_STORAGE_URL")]
    pub storage_url: Option<String>,
    /// The store blobs are being moved from (after `nexus hub storage migrate`): blobs the
    /// store above lacks are read there and copied over.
    #[arg(long, env = "NEXUS_STORAGE_PREVIOUS_URL")]
    pub storage_previous_url: Option<String>,
    /// Files up to this many bytes are kept in the database itself (0: none).
    #[arg(long, env = "NEXUS_STORAGE_INLINE_MAX", default_value_t = DEFAULT_INLINE_MAX)]
    pub storage_inline_max: u64,
    /// Bytes of file content kept in memory, by content id.
    #[arg(long, env = "NEXUS_STORAGE_CACHE_BYTES", default_value_t = DEFAULT_CACHE_BYTES)]
    pub storage_cache_bytes: u64,
    /// How long a blob no file references is kept before the collector removes it.
    #[arg(long, env = "NEXUS_STORAGE_GC_GRACE", default_value = "1h", value_parser = parse_positive)]
    pub storage_gc_grace: Duration,
    /// How often the collector runs (one node at a time).
    #[arg(long, env = "NEXUS_STORAGE_GC_INTERVAL", default_value = "10m", value_parser = parse_positive)]
    pub storage_gc_interval: Duration,
    /// Largest request body (default: room for a max-size file in base64).
    #[arg(long, env = "NEXUS_MAX_BODY_BYTES")]
    pub max_body_bytes: Option<usize>,
    /// With Postgres and no NEXUS_API_KEY_SECRET, use (or create) the secret file in the
    /// data dir instead of refusing to start.
    #[arg(long, env = "NEXUS_ALLOW_DATA_DIR_SECRET")]
    pub allow_data_dir_secret: bool,
    /// Apply database migrations before serving.
    #[arg(long, env = "NEXUS_MIGRATE")]
    pub migrate: bool,
    /// Redis for shared rate limits and traffic figures, and the cluster bus (a Redis
    /// Stream) when NEXUS_BUS_URL is not set; optional.
    #[arg(long, env = "NEXUS_REDIS_URL", hide_env_values = true)]
    pub redis_url: Option<SecretString>,
    /// The cluster bus (SPEC §13): `redis://…` (a Redis Stream) or `nats://h1:4222,…`
    /// (JetStream); replayable invalidations, node heartbeats. Defaults to NEXUS_REDIS_URL.
    #[arg(long, env = "NEXUS_BUS_URL", hide_env_values = true)]
    pub bus_url: Option<SecretString>,
    /// This node's NATS credentials (`nexus hub cluster add-node NAME --role rpc`).
    #[arg(long, env = "NEXUS_NATS_CREDS")]
    pub nats_creds: Option<PathBuf>,
    /// Replicas of the JetStream streams this node creates (3 in a 3-node NATS cluster).
    #[arg(long, env = "NEXUS_NATS_REPLICAS", default_value_t = 1, value_parser = clap::value_parser!(u8).range(1..=5))]
    pub nats_replicas: u8,
    /// This node's name on the bus (the name its NATS credentials were minted for);
    /// default `rpc-<host>-<port>`.
    #[arg(long, env = "NEXUS_NODE_NAME")]
    pub node_name: Option<String>,
    /// Default tier of a token: one or more windows N/s, N/m, N/h, N/d, comma-separated
    /// (e.g. 1000/m,10000/h); every window must admit a request.
    #[arg(long, env = "NEXUS_RATE_LIMIT_TOKEN", default_value = "300/m")]
    pub rate_limit_token: nexus_wire::spec::RateTier,
    /// Default tier of an admin token (same syntax).
    #[arg(long, env = "NEXUS_RATE_LIMIT_ADMIN", default_value = "1000/m")]
    pub rate_limit_admin: nexus_wire::spec::RateTier,
    /// Proxies (IPs or CIDRs, comma-separated) whose X-Forwarded-For is believed for the
    /// per-address failed-authentication limit: the MCP frontend's address(es).
    #[arg(long, env = "NEXUS_TRUSTED_PROXIES", value_delimiter = ',')]
    pub trusted_proxies: Vec<String>,
    /// Failed authentications allowed per client address before 429.
    #[arg(long, env = "NEXUS_AUTH_FAILURE_LIMIT", default_value = "60/m")]
    pub auth_failure_limit: nexus_wire::spec::RateLimit,
    /// Serve HTTPS with this PEM certificate chain (needs --tls-key).
    #[arg(long, env = "NEXUS_TLS_CERT", requires = "tls_key")]
    pub tls_cert: Option<PathBuf>,
    /// PEM private key for --tls-cert.
    #[arg(long, env = "NEXUS_TLS_KEY", requires = "tls_cert")]
    pub tls_key: Option<PathBuf>,
    /// Require a client certificate chaining to this PEM CA bundle on every TLS connection
    /// (the MCP frontends' certificates); with --tls-cert.
    #[arg(long, env = "NEXUS_TLS_CLIENT_CA")]
    pub tls_client_ca: Option<PathBuf>,
    /// The URL clients use to reach this server (shown by status).
    #[arg(long = "public-url", env = "NEXUS_URL")]
    pub public_url: Option<String>,
    /// Be the OAuth authorization server of MCP clients (SPEC §11), under this issuer: the
    /// MCP frontend's public origin (`https://hub.example.com`), which proxies `/oauth/*`
    /// here; tokens are issued for `<issuer>/mcp`. Needs the local provider.
    #[arg(long, env = "NEXUS_OAUTH_ISSUER")]
    pub oauth_issuer: Option<String>,
    /// OAuth dynamic client registration (RFC 7591) at `/oauth/register`.
    #[arg(long, env = "NEXUS_OAUTH_DCR", default_value_t = true, action = clap::ArgAction::Set)]
    pub oauth_dcr: bool,
    /// Client ID Metadata Documents: an https URL as `client_id`, its document fetched
    /// through the SSRF guard (`false`: such clients are unknown, the metadata says so).
    #[arg(long, env = "NEXUS_OAUTH_CIMD", default_value_t = true, action = clap::ArgAction::Set)]
    pub oauth_cimd: bool,
    /// Only these client hosts may use a metadata document (`app.example`, `*.example.com`;
    /// comma-separated; empty: any public host).
    #[arg(long, env = "NEXUS_OAUTH_CIMD_ALLOW_HOSTS", value_delimiter = ',')]
    pub oauth_cimd_allow_hosts: Vec<String>,
    /// Let metadata documents be fetched from loopback and private addresses (RFC 1918,
    /// fc00::/7, 100.64/10): tests and labs only. Link-local (cloud metadata) stays refused.
    #[arg(long, env = "NEXUS_OAUTH_CIMD_ALLOW_PRIVATE", default_value_t = false, action = clap::ArgAction::Set)]
    pub oauth_cimd_allow_private: bool,
    /// PEM CA bundle trusted for metadata documents besides the system roots (a private PKI).
    #[arg(long, env = "NEXUS_OAUTH_CIMD_CA_FILE")]
    pub oauth_cimd_ca_file: Option<PathBuf>,
    /// A request head must arrive within this time of its first byte (of the accept, for a
    /// connection's first request): 10, 10s, 500ms.
    #[arg(long, env = "NEXUS_HEADER_READ_TIMEOUT", default_value = "10s", value_parser = nexus_serve::parse_timeout)]
    pub header_read_timeout: Duration,
    /// A connection with no request in flight is closed this long after its last response.
    #[arg(long, env = "NEXUS_IDLE_TIMEOUT", default_value = "120s", value_parser = nexus_serve::parse_timeout)]
    pub idle_timeout: Duration,
    /// Open connections at most; new ones past it are closed at once (0: no cap).
    #[arg(long, env = "NEXUS_MAX_CONNECTIONS", default_value_t = nexus_serve::DEFAULT_MAX_CONNECTIONS)]
    pub max_connections: usize,
    /// Open connections from one client address (an IPv6 /64) at most (0, the default: no
    /// cap; nexusd's clients are frontends, each one address with a connection per call).
    #[arg(long, env = "NEXUS_MAX_CONNECTIONS_PER_ADDRESS", default_value_t = 0)]
    pub max_connections_per_address: usize,
    /// A request body must arrive within this time of its head (plus a second per 64 KiB
    /// received); 408 and the connection closed after it.
    #[arg(long, env = "NEXUS_BODY_READ_TIMEOUT", default_value = "30s", value_parser = nexus_serve::parse_timeout)]
    pub body_read_timeout: Duration,
    /// A response write the client does not accept for this long closes the connection.
    #[arg(long, env = "NEXUS_WRITE_TIMEOUT", default_value = "30s", value_parser = nexus_serve::parse_timeout)]
    pub write_timeout: Duration,
    /// Longest one grep may run (20, 20s, 500ms); past it the call fails.
    #[arg(long, env = "NEXUS_GREP_TIMEOUT", default_value = "20s", value_parser = parse_positive)]
    pub grep_timeout: Duration,
    /// Work units one grep may spend (1–4 ns of CPU each); past it the call fails.
    #[arg(long, env = "NEXUS_GREP_MAX_WORK", default_value_t = crate::files::GrepLimits::default().max_work)]
    pub grep_max_work: u64,
    /// Greps one token may have running at once.
    #[arg(long, env = "NEXUS_GREP_PER_TOKEN", default_value_t = crate::files::GrepLimits::default().per_token)]
    pub grep_per_token: usize,
    /// Greps the server runs at once.
    #[arg(long, env = "NEXUS_GREP_CONCURRENCY", default_value_t = crate::files::GrepLimits::default().global)]
    pub grep_concurrency: usize,
    /// An OpenAI-compatible embeddings API (its base: `POST {url}/embeddings`) for
    /// semantic and hybrid search; without it they answer by keyword.
    #[arg(long, env = "NEXUS_EMBEDDINGS_URL")]
    pub embeddings_url: Option<String>,
    /// The embeddings model asked for.
    #[arg(
        long,
        env = "NEXUS_EMBEDDINGS_MODEL",
        default_value = "text-embedding-3-small"
    )]
    pub embeddings_model: String,
    /// Bearer key of the embeddings API (never logged).
    #[arg(long, env = "NEXUS_EMBEDDINGS_API_KEY", hide_env_values = true)]
    pub embeddings_api_key: Option<SecretString>,
    /// Bound of one embeddings request; a slower one degrades the search to keyword.
    #[arg(long, env = "NEXUS_EMBEDDINGS_TIMEOUT", default_value = "10s", value_parser = parse_positive)]
    pub embeddings_timeout: Duration,
}

/// The OAuth authorization server's settings (SPEC §11).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct OAuthSettings {
    /// The public origin, no trailing slash: `issuer` of the metadata and of every
    /// authorization response.
    pub issuer: String,
    /// Dynamic client registration on (`NEXUS_OAUTH_DCR`).
    pub dcr: bool,
    /// Client ID Metadata Documents.
    pub cimd: CimdSettings,
}

/// How Client ID Metadata Documents are fetched (`NEXUS_OAUTH_CIMD*`).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct CimdSettings {
    pub enabled: bool,
    /// Client hosts allowed (exact, or `*.suffix`); empty: any.
    pub allow_hosts: Vec<String>,
    /// Loopback and private targets allowed (tests, labs).
    pub allow_private: bool,
    /// PEM roots trusted besides the system's.
    pub ca_file: Option<PathBuf>,
}

impl Default for CimdSettings {
    fn default() -> Self {
        Self {
            enabled: true,
            allow_hosts: Vec::new(),
            allow_private: false,
            ca_file: None,
        }
    }
}

impl OAuthSettings {
    /// An issuer is an `http(s)` origin without query or fragment (RFC 8414 §2).
    pub fn new(issuer: &str, dcr: bool) -> anyhow::Result<Self> {
        let issuer = issuer.trim().trim_end_matches('/');
        let u = url::Url::parse(issuer)
            .map_err(|_| anyhow::anyhow!("NEXUS_OAUTH_ISSUER must be a URL, got {issuer:?}"))?;
        if !matches!(u.scheme(), "https" | "http")
            || u.host().is_none()
            || u.query().is_some()
            || u.fragment().is_some()
            || !u.username().is_empty()
        {
            anyhow::bail!(
                "NEXUS_OAUTH_ISSUER must be the frontend's public origin, like https://hub.example.com"
            );
        }
        Ok(Self {
            issuer: issuer.to_owned(),
            dcr,
            cimd: CimdSettings::default(),
        })
    }

    fn from_args(issuer: Option<&str>, dcr: bool) -> anyhow::Result<Option<Self>> {
        issuer
            .filter(|i| !i.trim().is_empty())
            .map(|i| Self::new(i, dcr))
            .transpose()
    }

    /// The protected resource tokens are bound to (RFC 8707): the frontend's `/mcp`.
    pub fn resource(&self) -> String {
        format!("{}/mcp", self.issuer)
    }
}

/// How callers are authenticated.
#[derive(Debug, Clone)]
pub enum AuthMode {
    Database {
        url: SecretString,
        secret: SecretString,
        /// `NEXUS_API_KEY_SECRET_PREVIOUS`, during a secret rotation.
        previous_secret: Option<SecretString>,
    },
    SingleKey {
        key: SecretString,
    },
}

/// The auth provider chain and each provider's settings.
#[derive(Debug, Clone)]
pub struct AuthChain {
    pub types: Vec<nexus_providers::config::AuthType>,
    pub file: nexus_providers::config::AuthFile,
    /// The auth file, when one was given (re-read on SIGHUP by the static provider).
    pub path: Option<PathBuf>,
    /// The configuration file whose `[auth]` section holds the settings inline (re-read
    /// on SIGHUP when there is no separate auth file).
    pub config_file: Option<PathBuf>,
    /// Root bootstrap and login-token lifetime, when `local` is in the chain.
    pub local: crate::auth::local::LocalSettings,
}

impl Default for AuthChain {
    fn default() -> Self {
        Self {
            types: vec![nexus_providers::config::AuthType::Database],
            file: Default::default(),
            path: None,
            config_file: None,
            local: Default::default(),
        }
    }
}

/// Refuses a file that holds static keys (or their hashes) when anyone but its owner
/// may read or write it, as the data dir's secret file is.
pub fn check_private_auth_file(path: &Path) -> anyhow::Result<()> {
    let mode = fs::metadata(path)
        .with_context(|| format!("cannot read {}", path.display()))?
        .permissions()
        .mode()
        & 0o777;
    if mode & 0o177 != 0 {
        bail!(
            "{} holds static keys but its mode is {mode:o}, wider than 600: chmod 600 it",
            path.display()
        );
    }
    Ok(())
}

impl AuthChain {
    /// Resolves `--auth-type` and `--auth-config`, checking one against the other.
    pub fn resolve(types: &str, path: Option<PathBuf>) -> anyhow::Result<Self> {
        use nexus_providers::config::{AuthFile, AuthType};
        let types = AuthType::parse_list(types).context("--auth-type")?;
        let file = match &path {
            Some(p) => read_auth_yaml(p, &types)?,
            None => AuthFile::default(),
        };
        file.check(&types)?;
        Self {
            types,
            file,
            path,
            config_file: None,
            local: Default::default(),
        }
        .with_local_settings()
    }

    /// Root bootstrap and the login-token lifetime (environment, then `local.jwt_ttl`),
    /// when `local` is in the chain.
    fn with_local_settings(mut self) -> anyhow::Result<Self> {
        if self
            .types
            .contains(&nexus_providers::config::AuthType::Local)
        {
            let mut local = crate::auth::local::LocalSettings::from_env()?;
            if local.jwt_ttl.is_none()
                && let Some(t) = self.file.local.as_ref().and_then(|l| l.jwt_ttl.as_deref())
            {
                local.jwt_ttl = Some(
                    crate::auth::local::parse_ttl(t)
                        .map_err(|e| anyhow::anyhow!("local.jwt_ttl: {e}"))?,
                );
            }
            self.local = local;
        }
        Ok(self)
    }

    /// Resolves the `[auth]` section of the configuration file: `type` (default
    /// `database`) and either `config` (an auth file, relative to the configuration file)
    /// or the providers' tables inline. No section: the default chain.
    pub fn from_config_file(toml_path: &Path) -> anyhow::Result<Self> {
        use nexus_providers::config::{AuthFile, AuthType};
        let Some(table) = nexus_serve::config_file::read_auth(toml_path)? else {
            return Ok(Self::default());
        };
        let at = |k: &str| format!("{}: [auth] {k}", toml_path.display());
        let text = |k: &str| -> anyhow::Result<Option<&str>> {
            match table.get(k) {
                None => Ok(None),
                Some(toml::Value::String(s)) => Ok(Some(s.as_str())),
                Some(_) => bail!("{} must be a string", at(k)),
            }
        };
        let types = AuthType::parse_list(text("type")?.unwrap_or("database"))
            .with_context(|| at("type"))?;
        let inline = table.keys().any(|k| k != "type" && k != "config");
        let (file, path, config_file) = match text("config")? {
            Some(_) if inline => bail!(
                "{}: [auth] has both config = FILE and provider tables; use one",
                toml_path.display()
            ),
            Some(rel) => {
                let dir = toml_path.parent().unwrap_or(Path::new("."));
                let p = dir.join(rel);
                (read_auth_yaml(&p, &types)?, Some(p), None)
            }
            None => {
                let file =
                    AuthFile::from_toml(&table).with_context(|| toml_path.display().to_string())?;
                if file.static_keys.is_some() {
                    check_private_auth_file(toml_path)?;
                }
                (file, None, Some(toml_path.to_path_buf()))
            }
        };
        file.check(&types)
            .with_context(|| toml_path.display().to_string())?;
        Self {
            types,
            file,
            path,
            config_file,
            local: Default::default(),
        }
        .with_local_settings()
    }

    /// The settings as the file(s) say now, for a reload: the chain itself (its types)
    /// cannot change without a restart.
    pub fn reread(&self) -> anyhow::Result<nexus_providers::config::AuthFile> {
        let file = match (&self.path, &self.config_file) {
            (Some(p), _) => read_auth_yaml(p, &self.types)?,
            (None, Some(t)) => {
                let fresh = Self::from_config_file(t)?;
                if fresh.types != self.types {
                    bail!(
                        "{}: [auth] type changed; restart the server to change the chain",
                        t.display()
                    );
                }
                fresh.file
            }
            (None, None) => bail!("the auth settings were not read from a file"),
        };
        file.check(&self.types)?;
        Ok(file)
    }
}

/// Reads an auth file (YAML). One with a static section must be private to its owner.
fn read_auth_yaml(
    p: &Path,
    types: &[nexus_providers::config::AuthType],
) -> anyhow::Result<nexus_providers::config::AuthFile> {
    use nexus_providers::config::{AuthFile, MAX_AUTH_FILE_BYTES};
    let len = fs::metadata(p)
        .with_context(|| format!("cannot read the auth file {}", p.display()))?
        .len();
    if len > MAX_AUTH_FILE_BYTES as u64 {
        bail!(
            "{}: the auth file is larger than {MAX_AUTH_FILE_BYTES} bytes",
            p.display()
        );
    }
    let text = fs::read_to_string(p)
        .with_context(|| format!("cannot read the auth file {}", p.display()))?;
    let file = AuthFile::from_yaml(&text, types).with_context(|| format!("{}", p.display()))?;
    if file.static_keys.is_some() {
        check_private_auth_file(p)?;
    }
    Ok(file)
}

impl ServerArgs {
    /// The auth chain these arguments name: `--auth-type`/`--auth-config` (flag or
    /// environment), else the configuration file's `[auth]`, else database keys alone.
    pub fn auth_chain(&self) -> anyhow::Result<AuthChain> {
        match (&self.auth_type, &self.auth_config, &self.config_file) {
            (None, None, Some(toml)) => AuthChain::from_config_file(toml),
            (types, path, _) => {
                AuthChain::resolve(types.as_deref().unwrap_or("database"), path.clone())
            }
        }
    }
}

/// The resolved configuration of one rpc-server.
#[derive(Debug, Clone)]
pub struct ServerConfig {
    pub host: String,
    pub port: u16,
    pub data_dir: PathBuf,
    pub auth: AuthMode,
    /// The provider chain in database mode (single-key mode has its one key).
    pub auth_chain: AuthChain,
    pub auth_cache_ttl: Duration,
    pub negative_cache_ttl: Duration,
    /// Longest wait for a Postgres connection before a call fails (503 for auth).
    pub db_acquire_timeout: Duration,
    pub max_file_bytes: u64,
    pub max_body_bytes: usize,
    pub last_used_flush: Duration,
    pub migrate: bool,
    pub public_url: Option<String>,
    /// The OAuth authorization server (SPEC §11), when on.
    pub oauth: Option<OAuthSettings>,
    pub redis_url: Option<SecretString>,
    /// The cluster bus; `None` without NEXUS_BUS_URL or NEXUS_REDIS_URL.
    pub bus: Option<BusSettings>,
    pub limits: crate::limits::LimitConfig,
    pub trusted_proxies: Vec<ipnet::IpNet>,
    /// Certificate chain and key (PEM) for built-in TLS.
    pub tls: Option<(PathBuf, PathBuf)>,
    /// With `tls`: the CA bundle (PEM) a client's certificate must chain to.
    pub tls_client_ca: Option<PathBuf>,
    /// Header-read and idle timeouts, connection cap.
    pub connections: nexus_serve::ConnLimits,
    /// What one grep may spend; how many run at once.
    pub grep: crate::files::GrepLimits,
    /// Where file bytes live and how the collector runs.
    pub storage: StorageConfig,
    /// Semantic search's embeddings endpoint, when configured.
    pub embeddings: Option<crate::files::EmbeddingsConfig>,
}

/// Files small enough to live in the database: one commit writes them, one query reads.
pub const DEFAULT_INLINE_MAX: u64 = 16 * 1024;
pub const DEFAULT_CACHE_BYTES: u64 = 256 * 1024 * 1024;

/// The blob store and its collector (SPEC §12).
#[derive(Debug, Clone)]
pub struct StorageConfig {
    pub url: nexus_blobs::StoreUrl,
    pub previous_url: Option<nexus_blobs::StoreUrl>,
    pub inline_max: u64,
    pub cache_bytes: u64,
    pub gc_grace: Duration,
    pub gc_interval: Duration,
}

impl StorageConfig {
    /// The defaults, with blobs in `<data_dir>/blobs`.
    pub fn under(data_dir: &std::path::Path) -> Self {
        Self {
            url: nexus_blobs::StoreUrl::File(data_dir.join("blobs")),
            previous_url: None,
            inline_max: DEFAULT_INLINE_MAX,
            cache_bytes: DEFAULT_CACHE_BYTES,
            gc_grace: Duration::from_secs(3600),
            gc_interval: Duration::from_secs(600),
        }
    }
}

impl ServerConfig {
    /// Resolves arguments and the `NEXUS_API_KEY_SECRET` environment variable.
    pub fn from_args(a: ServerArgs) -> anyhow::Result<Self> {
        let env_secret = std::env::var("NEXUS_API_KEY_SECRET")
            .ok()
            .filter(|s| !s.trim().is_empty());
        Self::resolve(a, env_secret.map(SecretString::from))
    }

    pub fn resolve(a: ServerArgs, env_secret: Option<SecretString>) -> anyhow::Result<Self> {
        if a.max_file_bytes == 0 {
            bail!("--max-file-bytes must be positive");
        }
        if a.grep_max_work == 0 || a.grep_per_token == 0 || a.grep_concurrency == 0 {
            bail!("--grep-max-work, --grep-per-token and --grep-concurrency must be positive");
        }
        let auth_chain = a.auth_chain()?;
        // Client certificates are a TLS check: without TLS they would be silently skipped.
        let tls_client_ca = match (a.tls_client_ca.clone(), &a.tls_cert) {
            (Some(_), None) => bail!(
                "NEXUS_TLS_CLIENT_CA (--tls-client-ca) needs NEXUS_TLS_CERT and NEXUS_TLS_KEY: client certificates are verified only over TLS"
            ),
            (ca, _) => ca,
        };
        let api_key = match (a.api_key, &a.api_key_file) {
            (Some(_), Some(_)) => bail!("use --api-key or --api-key-file, not both"),
            (Some(k), None) => Some(k),
            (None, Some(path)) => Some(read_key_file(path)?),
            (None, None) => None,
        };
        let auth = match api_key {
            Some(key) => {
                if auth_chain.types != AuthChain::default().types {
                    bail!("--api-key is single-key mode: it cannot be combined with --auth-type");
                }
                if a.database_url.is_some() {
                    tracing::warn!("--api-key given: single-key mode, the database URL is ignored");
                }
                AuthMode::SingleKey { key }
            }
            None => {
                let url = match a.database_url {
                    Some(u) => u,
                    None => {
                        ensure_private_dir(&a.data_dir)?;
                        SecretString::from(format!(
                            "sqlite://{}",
                            a.data_dir.join("nexus.db").display()
                        ))
                    }
                };
                let is_pg = url.expose_secret().starts_with("postgres");
                let secret = match env_secret {
                    Some(s) => s,
                    None if !is_pg || a.allow_data_dir_secret => {
                        load_or_create_secret(&a.data_dir)?
                    }
                    None => bail!(
                        "NEXUS_API_KEY_SECRET is required with Postgres (set it, or pass --allow-data-dir-secret to keep one in the data dir)"
                    ),
                };
                if secret.expose_secret().trim().len() < MIN_SECRET_LEN {
                    bail!("NEXUS_API_KEY_SECRET must be at least {MIN_SECRET_LEN} characters");
                }
                let previous_secret = std::env::var("NEXUS_API_KEY_SECRET_PREVIOUS")
                    .ok()
                    .filter(|s| !s.trim().is_empty())
                    .map(SecretString::from);
                AuthMode::Database {
                    url,
                    secret,
                    previous_secret,
                }
            }
        };
        let default_body = (a.max_file_bytes as usize).saturating_mul(4) / 3 + 1024 * 1024;
        let storage = StorageConfig {
            url: match a.storage_url.as_deref().map(str::trim) {
                Some(u) if !u.is_empty() => u
                    .parse()
                    .map_err(|e| anyhow::anyhow!("NEXUS_STORAGE_URL: {e}"))?,
                _ => nexus_blobs::StoreUrl::File(a.data_dir.join("blobs")),
            },
            previous_url: match a.storage_previous_url.as_deref().map(str::trim) {
                Some(u) if !u.is_empty() => Some(
                    u.parse()
                        .map_err(|e| anyhow::anyhow!("NEXUS_STORAGE_PREVIOUS_URL: {e}"))?,
                ),
                _ => None,
            },
            inline_max: a.storage_inline_max.min(a.max_file_bytes),
            cache_bytes: a.storage_cache_bytes,
            gc_grace: a.storage_gc_grace,
            gc_interval: a.storage_gc_interval,
        };
        Ok(Self {
            host: a.host,
            port: a.port,
            data_dir: a.data_dir,
            auth,
            auth_chain,
            auth_cache_ttl: a.auth_cache_ttl,
            negative_cache_ttl: Duration::from_secs(5).min(a.auth_cache_ttl),
            db_acquire_timeout: a.database_acquire_timeout,
            max_file_bytes: a.max_file_bytes,
            max_body_bytes: a.max_body_bytes.unwrap_or(default_body),
            last_used_flush: Duration::from_secs(15),
            migrate: a.migrate,
            public_url: a.public_url,
            oauth: OAuthSettings::from_args(a.oauth_issuer.as_deref(), a.oauth_dcr)?
                .map(|mut o| {
                    o.cimd = CimdSettings {
                        enabled: a.oauth_cimd,
                        allow_hosts: a
                            .oauth_cimd_allow_hosts
                            .iter()
                            .map(|h| h.trim().to_owned())
                            .filter(|h| !h.is_empty())
                            .collect(),
                        allow_private: a.oauth_cimd_allow_private,
                        ca_file: a.oauth_cimd_ca_file.clone(),
                    };
                    crate::oauth::cimd::load_roots(o.cimd.ca_file.as_deref())
                        .map_err(|e| anyhow::anyhow!("NEXUS_OAUTH_CIMD_CA_FILE: {e}"))?;
                    anyhow::Ok(o)
                })
                .transpose()?,
            bus: BusSettings::from_args(
                a.bus_url.as_ref().or(a.redis_url.as_ref()),
                a.nats_creds,
                a.nats_replicas,
                a.node_name,
            ),
            redis_url: a.redis_url.filter(|u| !u.expose_secret().trim().is_empty()),
            tls_client_ca,
            tls: a.tls_cert.zip(a.tls_key),
            connections: nexus_serve::ConnLimits {
                header_read_timeout: a.header_read_timeout,
                idle_timeout: a.idle_timeout,
                body_read_timeout: a.body_read_timeout,
                write_timeout: a.write_timeout,
                max_connections: a.max_connections,
                max_per_address: a.max_connections_per_address,
            },
            trusted_proxies: nexus_wire::forwarded::parse_trusted(&a.trusted_proxies)
                .map_err(|e| anyhow::anyhow!(e.0))?,
            grep: crate::files::GrepLimits {
                max_work: a.grep_max_work,
                timeout: a.grep_timeout,
                per_token: a.grep_per_token,
                global: a.grep_concurrency,
                ..Default::default()
            },
            limits: crate::limits::LimitConfig {
                token: a.rate_limit_token,
                admin: a.rate_limit_admin,
                auth_failures: a.auth_failure_limit,
            },
            storage,
            embeddings: a
                .embeddings_url
                .filter(|u| !u.trim().is_empty())
                .map(|url| crate::files::EmbeddingsConfig {
                    url,
                    model: a.embeddings_model,
                    api_key: a.embeddings_api_key,
                    timeout: a.embeddings_timeout,
                    batch: 32,
                }),
        })
    }
}

/// Files of the data dir that hold credentials or every token's digest.
const PRIVATE_FILES: &[&str] = &["nexus.db", "nexus.db-wal", "nexus.db-shm", "admin.env"];

/// Creates `dir` (mode 0700) if missing. An existing one (an older install, a restored
/// tarball, an rsync) is tightened: the dir to 0700, its database and admin.env to 0600.
/// The secret file is not: one that others could read is refused (see
/// [`load_or_create_secret`]), since it may have leaked already.
pub fn ensure_private_dir(dir: &Path) -> anyhow::Result<()> {
    if !dir.exists() {
        fs::DirBuilder::new()
            .recursive(true)
            .mode(0o700)
            .create(dir)
            .with_context(|| format!("cannot create data dir {}", dir.display()))?;
        fs::set_permissions(dir, fs::Permissions::from_mode(0o700))?;
        return Ok(());
    }
    tighten(dir, 0o700);
    for name in PRIVATE_FILES {
        tighten(&dir.join(name), 0o600);
    }
    Ok(())
}

/// Tightens the files of a SQLite database given by URL (wherever it lives) to 0600.
pub fn tighten_sqlite_files(url: &str) {
    let Some(path) = url
        .strip_prefix("sqlite://")
        .or_else(|| url.strip_prefix("sqlite:"))
        .and_then(|p| p.split('?').next())
        .filter(|p| !p.is_empty() && *p != ":memory:")
    else {
        return;
    };
    for suffix in ["", "-wal", "-shm"] {
        tighten(Path::new(&format!("{path}{suffix}")), 0o600);
    }
}

/// Takes from `path` every permission bit outside `allowed`; warns when it had to, loudly
/// when it could not. A missing path is left alone.
pub fn tighten(path: &Path, allowed: u32) {
    let Ok(meta) = fs::metadata(path) else {
        return;
    };
    let mode = meta.permissions().mode() & 0o7777;
    if mode & !allowed == 0 {
        return;
    }
    let tight = mode & allowed;
    match fs::set_permissions(path, fs::Permissions::from_mode(tight)) {
        Ok(()) => tracing::warn!(
            path = %path.display(),
            "other users could read this (mode {mode:o}); tightened to {tight:o}"
        ),
        Err(e) => {
            tracing::error!(
                path = %path.display(),
                error = %e,
                "other users can read this (mode {mode:o}) and it cannot be tightened: chmod {allowed:o} it, or run as its owner"
            );
            eprintln!(
                "warning: {} is readable by other users (mode {mode:o}) and could not be tightened ({e}): chmod {allowed:o} it",
                path.display()
            );
        }
    }
}

/// Reads a single-key file, refusing one that other users can read (the key is an admin
/// credential).
fn read_key_file(path: &Path) -> anyhow::Result<SecretString> {
    let meta = fs::metadata(path)
        .with_context(|| format!("cannot read --api-key-file {}", path.display()))?;
    let mode = meta.permissions().mode() & 0o777;
    if mode & 0o077 != 0 {
        bail!(
            "--api-key-file {} is readable by others (mode {mode:o}); chmod 600 it",
            path.display()
        );
    }
    let text = fs::read_to_string(path)
        .with_context(|| format!("cannot read --api-key-file {}", path.display()))?;
    let key = text.trim();
    if key.is_empty() || key.lines().count() != 1 {
        bail!(
            "--api-key-file {} must hold the key on one line",
            path.display()
        );
    }
    Ok(SecretString::from(key.to_owned()))
}

/// Reads the data dir's secret, creating it (mode 0600) on first use.
pub fn load_or_create_secret(dir: &Path) -> anyhow::Result<SecretString> {
    ensure_private_dir(dir)?;
    let path = dir.join(SECRET_FILE);
    match fs::read_to_string(&path) {
        Ok(s) => {
            let mode = fs::metadata(&path)?.permissions().mode() & 0o777;
            if mode & 0o077 != 0 {
                bail!(
                    "{} is readable by others (mode {mode:o}); chmod 600 it",
                    path.display()
                );
            }
            Ok(SecretString::from(s.trim().to_owned()))
        }
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => {
            let secret = generate_secret();
            let mut f = fs::OpenOptions::new()
                .write(true)
                .create_new(true)
                .mode(0o600)
                .open(&path)
                .with_context(|| format!("cannot create {}", path.display()))?;
            f.write_all(secret.expose_secret().as_bytes())?;
            f.sync_all()?;
            Ok(secret)
        }
        Err(e) => Err(e).with_context(|| format!("cannot read {}", path.display())),
    }
}

/// The configuration file read for nexusd's own arguments.
#[cfg(test)]
mod config_file_tests {
    use clap::{Args, Command, CommandFactory, FromArgMatches, Parser};
    use nexus_serve::config_file::parse_with_file;
    use std::ffi::OsString;
    use std::path::Path;

    #[derive(Parser, Debug)]
    struct Cli {
        #[command(subcommand)]
        cmd: Sub,
    }
    #[derive(clap::Subcommand, Debug)]
    enum Sub {
        Serve(crate::config::ServerArgs),
    }

    fn write(text: &str) -> (tempfile::TempDir, std::path::PathBuf) {
        use std::os::unix::fs::PermissionsExt;
        let d = tempfile::tempdir().expect("tempdir");
        let p = d.path().join("nexus-hub.toml");
        std::fs::write(&p, text).expect("write");
        std::fs::set_permissions(&p, std::fs::Permissions::from_mode(0o600)).expect("chmod");
        (d, p)
    }

    fn parse(argv: &[&str], file: &Path) -> anyhow::Result<crate::config::ServerArgs> {
        let argv: Vec<OsString> = argv.iter().map(OsString::from).collect();
        let m = parse_with_file(&Cli::command(), &argv, &["serve"], "rpc", file)?;
        let Sub::Serve(a) = Cli::from_arg_matches(&m)?.cmd;
        Ok(a)
    }

    #[test]
    fn file_fills_defaults_and_flags_win() {
        let (_d, p) = write(
            "[rpc]\nport = 3030\nhost = \"0.0.0.0\"\nmigrate = true\nrate_limit_token = \"10/s\"\n",
        );
        let a = parse(&["x", "serve"], &p).expect("parses");
        assert_eq!(
            (a.port, a.host.as_str(), a.migrate),
            (3030, "0.0.0.0", true)
        );
        assert_eq!(a.rate_limit_token.to_string(), "10/s");
        let a = parse(&["x", "serve", "--port", "4040"], &p).expect("parses");
        assert_eq!(a.port, 4040, "a flag beats the file");
        let _ = crate::config::ServerArgs::augment_args(Command::new("x"));
    }

    #[test]
    fn client_metadata_document_knobs_resolve() {
        let (d, p) = write("[rpc]\n");
        let base = [
            "x",
            "serve",
            "--api-key",
            "sk-development-key-123",
            "--oauth-issuer",
            "https://hub.example",
        ];
        let cfg = crate::ServerConfig::from_args(parse(&base, &p).expect("parses")).expect("ok");
        let cimd = cfg.oauth.expect("oauth").cimd;
        assert_eq!(cimd, crate::config::CimdSettings::default());
        assert!(cimd.enabled && !cimd.allow_private && cimd.allow_hosts.is_empty());

        let ca = d.path().join("ca.pem");
        std::fs::write(&ca, "not a certificate\n").expect("write");
        let mut argv = base.to_vec();
        argv.extend([
            "--oauth-cimd",
            "false",
            "--oauth-cimd-allow-hosts",
            "app.example, *.clients.example",
            "--oauth-cimd-allow-private",
            "true",
        ]);
        let cfg = crate::ServerConfig::from_args(parse(&argv, &p).expect("parses")).expect("ok");
        let cimd = cfg.oauth.expect("oauth").cimd;
        assert!(!cimd.enabled && cimd.allow_private);
        assert_eq!(cimd.allow_hosts, ["app.example", "*.clients.example"]);
        // A CA file that holds no certificate, or is missing, stops startup.
        for file in [ca.clone(), d.path().join("missing.pem")] {
            let mut with_ca = argv.clone();
            let f = file.to_str().expect("utf-8");
            with_ca.extend(["--oauth-cimd-ca-file", f]);
            let e = crate::ServerConfig::from_args(parse(&with_ca, &p).expect("parses"))
                .expect_err("refused");
            assert!(e.to_string().contains("NEXUS_OAUTH_CIMD_CA_FILE"), "{e}");
        }
    }

    #[test]
    fn an_oauth_section_sets_the_issuer_and_registration() {
        let (_d, p) = write("[oauth]\nissuer = \"https://hub.example\"\ndcr = false\n");
        let a = parse(&["x", "serve"], &p).expect("parses");
        assert_eq!(a.oauth_issuer.as_deref(), Some("https://hub.example"));
        assert!(!a.oauth_dcr);
        let (_d, p) = write(
            "[oauth]\nissuer = \"https://hub.example\"\ncimd = false\ncimd_allow_hosts = [\"app.example\", \"*.c.example\"]\ncimd_allow_private = true\n",
        );
        let a = parse(&["x", "serve"], &p).expect("parses");
        assert!(!a.oauth_cimd && a.oauth_cimd_allow_private);
        assert_eq!(a.oauth_cimd_allow_hosts, ["app.example", "*.c.example"]);
        for bad in [
            "[oauth]\nissuer = \"https://a\"\n[rpc]\noauth_issuer = \"https://b\"\n",
            "[oauth]\nnope = 1\n",
            "oauth = 1\n",
        ] {
            let (_d, p) = write(bad);
            assert!(parse(&["x", "serve"], &p).is_err(), "{bad}");
        }
    }

    #[test]
    fn bad_files_are_refused() {
        for bad in [
            "[rpc]\nnope = 1\n",
            "[other]\n",
            "[rpc]\nport = \"many\"\n",
            "not toml [",
        ] {
            let (_d, p) = write(bad);
            assert!(parse(&["x", "serve"], &p).is_err(), "{bad}");
        }
        let (d, p) = write("[rpc]\ndatabase_url = \"postgres://u:p@h/db\"\n");
        use std::os::unix::fs::PermissionsExt;
        std::fs::set_permissions(&p, std::fs::Permissions::from_mode(0o644)).expect("chmod");
        assert!(
            parse(&["x", "serve"], &p).is_err(),
            "secrets in a world-readable file"
        );
        drop(d);
    }
}

/// Where this node joins the cluster bus (SPEC §13).
#[derive(Debug, Clone)]
pub struct BusSettings {
    pub url: SecretString,
    pub nats_creds: Option<PathBuf>,
    pub replicas: u8,
    /// `NEXUS_NODE_NAME`; `None`: derived from the host and port.
    pub node_name: Option<String>,
}

impl BusSettings {
    /// The settings when a bus URL is set (blank counts as unset).
    pub fn from_args(
        url: Option<&SecretString>,
        nats_creds: Option<PathBuf>,
        replicas: u8,
        node_name: Option<String>,
    ) -> Option<Self> {
        let url = url.filter(|u| !u.expose_secret().trim().is_empty())?;
        Some(Self {
            url: url.clone(),
            nats_creds: nats_creds.filter(|p| !p.as_os_str().is_empty()),
            replicas,
            node_name: node_name.filter(|n| !n.trim().is_empty()),
        })
    }

    /// The bus client configuration of a node with `role` listening on `port`.
    pub fn bus_config(
        &self,
        role: nexus_bus::Role,
        port: u16,
        heartbeat: bool,
    ) -> nexus_bus::BusConfig {
        let name = nexus_bus::NodeIdentity::name_from_env(
            |k| match k {
                "NEXUS_NODE_NAME" => self.node_name.clone(),
                other => std::env::var(other).ok(),
            },
            role,
            port,
        );
        nexus_bus::BusConfig {
            url: self.url.expose_secret().to_owned(),
            nats_creds: self.nats_creds.clone(),
            node: nexus_bus::NodeIdentity {
                name,
                role,
                version: env!("CARGO_PKG_VERSION").to_owned(),
            },
            nats: nexus_bus::NatsSettings {
                replicas: usize::from(self.replicas),
                ..Default::default()
            },
            heartbeat,
        }
    }
}
