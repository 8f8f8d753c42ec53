//! Test support: a fresh database per test (Postgres from `NEXUS_TEST_DATABASE_URL`, or a
//! SQLite file) and [`TestApp`], the real server on 127.0.0.1 port 0 with an in-process
//! control plane sharing its invalidation bus and its router for in-process requests.
//! [`idp`] runs a real OpenID provider for the OIDC tests; [`oauth`] is the OAuth tests'
//! hub and client.

pub mod idp;
pub mod oauth;

use crate::Application;
use crate::auth::{InvalidationBus, TokenHasher};
use crate::config::{AuthMode, ServerConfig};
use crate::control::Control;
use crate::db::{Backend, Store};
use nexus_wire::methods::{TokenCreateParams, TokenCreated};
use secrecy::SecretString;
use serde_json::{Value, json};
use std::sync::Arc;
use std::time::Duration;
use tempfile::TempDir;

/// The secret every test server uses.
pub const TEST_SECRET: &str = "test-secret-0123456789abcdef0123456789abcdef";

pub fn test_secret() -> SecretString {
    SecretString::from(TEST_SECRET)
}

/// Both backends, for tests that must behave the same on each.
pub const BACKENDS: [Backend; 2] = [Backend::Postgres, Backend::Sqlite];

/// The admin URL of the test Postgres cluster. Tests fail (never skip) without it.
pub fn postgres_admin_url() -> String {
    std::env::var("NEXUS_TEST_DATABASE_URL").expect(
        "NEXUS_TEST_DATABASE_URL is not set: run the tests with scripts/test (it starts Postgres and Redis)",
    )
}

/// A fresh, migrated, empty database of the given backend.
#[derive(Debug)]
pub struct TestDb {
    pub url: String,
    pub store: Store,
    pub dir: TempDir,
}

/// Drops a test database when the test is done with it, so thousands of test runs do not
/// fill the disk. Runs on its own thread: `Drop` cannot await.
impl Drop for TestDb {
    fn drop(&mut self) {
        if let Some((_, name)) = self.url.rsplit_once('/')
            && self.url.starts_with("postgres")
        {
            drop(DropDatabase(name.to_owned()));
        }
    }
}

/// Drops the named test database (`nexus_…` only) when dropped, even if the test failed.
/// Runs on its own thread: `Drop` cannot await.
#[derive(Debug)]
pub struct DropDatabase(pub String);

impl Drop for DropDatabase {
    fn drop(&mut self) {
        let name = self.0.clone();
        let valid = name.starts_with("nexus_")
            && name.bytes().all(|b| b.is_ascii_alphanumeric() || b == b'_');
        let Ok(admin) = std::env::var("NEXUS_TEST_DATABASE_URL") else {
            return;
        };
        if !valid {
            return;
        }
        let _ = std::thread::spawn(move || {
            let Ok(rt) = tokio::runtime::Builder::new_current_thread()
                .enable_all()
                .build()
            else {
                return;
            };
            // FORCE ends the test's own pooled connections, whatever runtime they live on.
            rt.block_on(async move {
                if let Ok(a) = Store::connect(&admin).await {
                    let _ = a
                        .execute_raw(&format!("DROP DATABASE IF EXISTS {name} WITH (FORCE)"))
                        .await;
                    a.close().await;
                }
            });
        })
        .join();
    }
}

impl TestDb {
    pub async fn new(backend: Backend) -> Self {
        let dir = tempfile::tempdir().expect("tempdir");
        let url = match backend {
            Backend::Sqlite => format!("sqlite://{}", dir.path().join("nexus.db").display()),
            Backend::Postgres => empty_postgres_database("nexus_test").await,
        };
        let store = Store::connect(&url).await.expect("connect");
        store.migrate().await.expect("migrate");
        Self { url, store, dir }
    }

    /// Drops the token, grant and zone notification triggers (Postgres), as a deployment
    /// that has not applied that migration has it: only Redis then carries such a change
    /// to other processes.
    pub async fn without_notify_triggers(&self) {
        self.store
            .execute_raw(
                "DROP TRIGGER nexus_invalidate_token_update ON api_tokens; \
                 DROP TRIGGER nexus_invalidate_token_delete ON api_tokens; \
                 DROP TRIGGER nexus_invalidate_grants ON token_zones; \
                 DROP TRIGGER nexus_invalidate_zones ON zones;",
            )
            .await
            .expect("drop the notification triggers");
    }
}

/// A running rpc-server with its own database and data dir.
#[derive(Debug)]
pub struct TestApp {
    pub base: String,
    pub port: u16,
    pub db: TestDb,
    pub data_dir: TempDir,
    pub bus: Arc<InvalidationBus>,
    pub control: Control,
    pub client: reqwest::Client,
    /// The same server's HTTP application, to drive in-process (`tower::ServiceExt::oneshot`).
    pub router: axum::Router,
    shutdown: Option<tokio::sync::oneshot::Sender<()>>,
    handle: Option<tokio::task::JoinHandle<anyhow::Result<()>>>,
}

/// Options for [`TestApp::spawn_with`].
#[derive(Debug, Clone)]
pub struct TestOptions {
    pub auth_cache_ttl: Duration,
    /// How long a call waits for a Postgres connection (while the database is down).
    pub db_acquire_timeout: Duration,
    pub max_file_bytes: u64,
    /// Share the server's invalidation bus with [`TestApp::control`] (true) or give the
    /// control plane its own, as a separate CLI process would have (false).
    pub shared_bus: bool,
    /// Redis for broadcast and shared limits (e.g. [`redis_url`]).
    pub redis_url: Option<String>,
    pub limits: crate::limits::LimitConfig,
    /// Grep budget and concurrency caps.
    pub grep: crate::files::GrepLimits,
    /// The auth provider chain (database keys alone by default).
    pub auth_chain: crate::config::AuthChain,
    /// The blob store and collector (default: blobs under the data dir).
    pub storage: Option<crate::config::StorageConfig>,
    /// The cluster bus (default: `redis_url`'s Redis Stream, as in production).
    pub bus: Option<crate::config::BusSettings>,
    /// Semantic search's embeddings endpoint (none by default).
    pub embeddings: Option<crate::files::EmbeddingsConfig>,
}

impl Default for TestOptions {
    fn default() -> Self {
        Self {
            auth_cache_ttl: Duration::from_secs(60),
            db_acquire_timeout: crate::db::DEFAULT_ACQUIRE_TIMEOUT,
            max_file_bytes: 1024 * 1024,
            shared_bus: true,
            redis_url: None,
            limits: Default::default(),
            auth_chain: Default::default(),
            grep: Default::default(),
            storage: None,
            bus: None,
            embeddings: None,
        }
    }
}

impl TestOptions {
    /// Limits high enough that a test's own traffic never trips them.
    pub fn unthrottled() -> Self {
        let lots = nexus_wire::spec::RateLimit {
            count: 1_000_000,
            period_secs: 1,
        };
        Self {
            limits: crate::limits::LimitConfig {
                token: lots.into(),
                admin: lots.into(),
                auth_failures: lots,
            },
            ..Default::default()
        }
    }
}

/// Creates an empty, un-migrated Postgres database and returns its URL.
pub async fn empty_postgres_database(prefix: &str) -> String {
    let admin = postgres_admin_url();
    let name = format!("{prefix}_{}", uuid::Uuid::new_v4().simple());
    let admin_store = Store::connect(&admin)
        .await
        .expect("connect to test Postgres");
    admin_store
        .execute_raw(&format!("CREATE DATABASE {name}"))
        .await
        .expect("create database");
    admin_store.close().await;
    let (base, _) = admin.rsplit_once('/').expect("database URL has a path");
    format!("{base}/{name}")
}

/// The test Redis URL. Tests fail (never skip) without it.
pub fn redis_url() -> String {
    std::env::var("NEXUS_TEST_REDIS_URL").expect(
        "NEXUS_TEST_REDIS_URL is not set: run the tests with scripts/test (it starts Postgres and Redis)",
    )
}

pub fn config(db_url: &str, data_dir: &std::path::Path, o: &TestOptions) -> ServerConfig {
    ServerConfig {
        host: "127.0.0.1".into(),
        port: 0,
        data_dir: data_dir.to_path_buf(),
        auth: AuthMode::Database {
            url: SecretString::from(db_url.to_owned()),
            secret: test_secret(),
            previous_secret: None,
        },
        auth_chain: o.auth_chain.clone(),
        auth_cache_ttl: o.auth_cache_ttl,
        negative_cache_ttl: Duration::from_secs(5).min(o.auth_cache_ttl),
        db_acquire_timeout: o.db_acquire_timeout,
        max_file_bytes: o.max_file_bytes,
        max_body_bytes: (o.max_file_bytes as usize) * 2 + 65536,
        last_used_flush: Duration::from_millis(200),
        migrate: false,
        public_url: None,
        oauth: None,
        redis_url: o.redis_url.clone().map(SecretString::from),
        bus: o.bus.clone().or_else(|| {
            let url = o.redis_url.clone().map(SecretString::from);
            crate::config::BusSettings::from_args(url.as_ref(), None, 1, None)
        }),
        limits: o.limits,
        tls: None,
        tls_client_ca: None,
        trusted_proxies: Vec::new(),
        connections: Default::default(),
        grep: o.grep.clone(),
        storage: o
            .storage
            .clone()
            .unwrap_or_else(|| crate::config::StorageConfig::under(data_dir)),
        embeddings: o.embeddings.clone(),
    }
}

impl TestApp {
    pub async fn spawn(backend: Backend) -> Self {
        Self::spawn_with(backend, TestOptions::default()).await
    }

    pub async fn spawn_with(backend: Backend, o: TestOptions) -> Self {
        let db = TestDb::new(backend).await;
        let data_dir = tempfile::tempdir().expect("tempdir");
        Self::start(db, data_dir, o).await
    }

    /// Starts a server on an existing database and data dir (e.g. after a restart).
    pub async fn start(db: TestDb, data_dir: TempDir, o: TestOptions) -> Self {
        let bus = InvalidationBus::new();
        let app = Application::build_with_bus(config(&db.url, data_dir.path(), &o), bus.clone())
            .await
            .expect("build app");
        let port = app.port();
        let router = app.router();
        let (tx, rx) = tokio::sync::oneshot::channel::<()>();
        let handle = tokio::spawn(app.run_until_stopped(async move {
            let _ = rx.await;
        }));
        let control_bus = if o.shared_bus {
            bus.clone()
        } else {
            InvalidationBus::new()
        };
        let hasher = Arc::new(TokenHasher::new(&test_secret()).expect("secret"));
        let control = Control::new(db.store.clone(), hasher, control_bus, None);
        Self {
            base: format!("http://127.0.0.1:{port}"),
            port,
            db,
            data_dir,
            bus,
            control,
            client: reqwest::Client::new(),
            router,
            shutdown: Some(tx),
            handle: Some(handle),
        }
    }

    /// Stops the server gracefully and hands back its database and data dir.
    pub async fn stop(mut self) -> (TestDb, TempDir) {
        if let Some(tx) = self.shutdown.take() {
            let _ = tx.send(());
        }
        if let Some(h) = self.handle.take() {
            let _ = h.await;
        }
        let TestApp { db, data_dir, .. } = self;
        (db, data_dir)
    }

    pub async fn zone(&self, name: &str) {
        self.control.create_zone(name).await.expect("create zone");
    }

    /// Mints a token through the control plane.
    pub async fn mint(&self, name: &str, zones: Option<&str>, admin: bool) -> TokenCreated {
        self.control
            .create_token(TokenCreateParams {
                name: name.into(),
                zones: zones.map(Into::into),
                admin,
                ..Default::default()
            })
            .await
            .expect("mint token")
    }

    /// Writes `files` (path, content) with `token`, panicking on any failure.
    pub async fn write_files(&self, token: &str, files: &[(&str, &str)]) {
        for (path, content) in files {
            self.rpc(token, "write", json!({"path": path, "content": content}))
                .await
                .expect("seed a file");
        }
    }

    /// One exact series (name and labels as printed) of this server's `/metrics`; 0 when
    /// absent, as a counter nothing has touched yet.
    pub async fn metric(&self, series: &str) -> u64 {
        metric_with(&self.client, &self.base, series)
            .await
            .unwrap_or(0)
    }

    /// Runs `change` (a database write) and waits, at most 10 s, until this server has
    /// applied the database's announcement of it. The announcement arrives asynchronously
    /// and empties the cache entries it names, so a test that relies on an identity staying
    /// cached warms it up only after this returns.
    pub async fn settled<T>(&self, change: impl std::future::Future<Output = T>) -> T {
        const RECEIVED: &str = r#"nexus_invalidations_total{event="received"}"#;
        let before = self.metric(RECEIVED).await;
        let out = change.await;
        poll_until(
            Duration::from_secs(10),
            "the change was never announced to this server",
            || async { self.metric(RECEIVED).await > before },
        )
        .await;
        out
    }

    /// Waits (at most 10 s) until this server's Redis subscription is up: subscribing
    /// empties the identity cache, so a test relying on a cached identity warms it after.
    pub async fn wait_redis_up(&self) {
        wait_health_redis(&self.base, "ok", Duration::from_secs(10)).await;
    }

    /// POSTs a JSON-RPC call; returns the HTTP status and the parsed body.
    pub async fn rpc_raw(&self, auth: Option<&str>, method: &str, params: Value) -> (u16, Value) {
        let mut req = self
            .client
            .post(format!("{}/api/nfs/{method}", self.base))
            .json(&json!({"jsonrpc": "2.0", "id": 1, "method": method, "params": params}));
        if let Some(t) = auth {
            req = req.header("Authorization", format!("Bearer {t}"));
        }
        let resp = req.send().await.expect("request");
        let status = resp.status().as_u16();
        let body = resp.json::<Value>().await.unwrap_or(Value::Null);
        (status, body)
    }

    /// Sends `req` through this server's router in-process; returns the status, headers and
    /// body.
    pub async fn oneshot(
        &self,
        req: axum::http::Request<axum::body::Body>,
    ) -> (
        axum::http::StatusCode,
        axum::http::HeaderMap,
        axum::body::Bytes,
    ) {
        use tower::ServiceExt as _;
        let resp = self.router.clone().oneshot(req).await.expect("infallible");
        let (parts, body) = resp.into_parts();
        let body = axum::body::to_bytes(body, usize::MAX)
            .await
            .expect("response body");
        (parts.status, parts.headers, body)
    }

    /// A call expected to succeed at the HTTP level; returns `result` or the `error`.
    pub async fn rpc(&self, token: &str, method: &str, params: Value) -> Result<Value, Value> {
        let (status, body) = self.rpc_raw(Some(token), method, params).await;
        assert_eq!(status, 200, "HTTP status for {method}: {body}");
        match body.get("error") {
            Some(e) => Err(e.clone()),
            None => Ok(body["result"].clone()),
        }
    }
}

/// A client for the probes below: no environment proxy, and a hung request fails after
/// `within` rather than stalling the test.
fn probe_client(within: Duration) -> reqwest::Client {
    reqwest::Client::builder()
        .no_proxy()
        .timeout(within)
        .build()
        .expect("http client")
}

/// One exact series (name and labels as printed) of the `/metrics` at `base`, if present.
pub async fn metric_at(base: &str, series: &str) -> Option<u64> {
    metric_with(&probe_client(Duration::from_secs(10)), base, series).await
}

async fn metric_with(client: &reqwest::Client, base: &str, series: &str) -> Option<u64> {
    let text = client
        .get(format!("{base}/metrics"))
        .send()
        .await
        .expect("metrics")
        .text()
        .await
        .expect("metrics text");
    let v = text
        .lines()
        .find_map(|l| l.strip_prefix(series)?.strip_prefix(' '))?;
    let v: f64 = v
        .trim()
        .parse()
        .unwrap_or_else(|e| panic!("{series}: {v:?}: {e}"));
    Some(v as u64)
}

/// Waits until `<base>/health` reports `redis` = `want` (`ok` once the subscription is up);
/// fails after `within`. Returns how long it took.
pub async fn wait_health_redis(base: &str, want: &str, within: Duration) -> Duration {
    let client = probe_client(within);
    let start = std::time::Instant::now();
    loop {
        let h: Value = client
            .get(format!("{base}/health"))
            .send()
            .await
            .unwrap_or_else(|e| panic!("GET {base}/health: {e}"))
            .json()
            .await
            .expect("health JSON");
        if h["redis"] == want {
            return start.elapsed();
        }
        assert!(
            start.elapsed() < within,
            "{base}/health: redis is {}, not {want:?}, after {within:?}",
            h["redis"]
        );
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
}

/// Polls `f` until it is true; fails with `what` once `within` has passed.
pub async fn poll_until<F, Fut>(within: Duration, what: &str, mut f: F)
where
    F: FnMut() -> Fut,
    Fut: std::future::Future<Output = bool>,
{
    let until = tokio::time::Instant::now() + within;
    while !f().await {
        assert!(tokio::time::Instant::now() < until, "{what}");
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
}

/// The JSON-RPC error code of a failed [`TestApp::rpc`].
pub fn code(r: &Result<Value, Value>) -> i64 {
    match r {
        Ok(v) => panic!("expected an error, got {v}"),
        Err(e) => e["code"].as_i64().expect("error code"),
    }
}

/// The content id the server gives `bytes`: their SHA-256, in hex.
pub fn sha256_hex(bytes: &[u8]) -> String {
    use sha2::Digest as _;
    hex::encode(sha2::Sha256::digest(bytes))
}

/// A port nothing listens on right now (bound, then released).
pub fn free_port() -> u16 {
    let l = std::net::TcpListener::bind("127.0.0.1:0").expect("bind a free port");
    l.local_addr().expect("local addr").port()
}

/// Every stored file as `zone/path`, sorted, read straight from the database: what tests
/// look at instead of a data directory's files.
pub async fn stored_files(store: &Store) -> Vec<String> {
    store
        .fs_all_files()
        .await
        .expect("list stored files")
        .into_iter()
        .map(|(z, p)| format!("{z}/{p}"))
        .collect()
}

/// The bytes stored for `rel` in `zone` (inline, or in the local blob store under
/// `data_dir/blobs`), or `None` when no such file is stored.
pub async fn stored_file(
    store: &Store,
    data_dir: &std::path::Path,
    zone: &str,
    rel: &str,
) -> Option<Vec<u8>> {
    use nexus_blobs::BlobStore as _;
    let found = store.fs_get(zone, rel).await.expect("read the namespace")?;
    if found.row.is_dir {
        return None;
    }
    if let Some(b) = found.inline {
        return Some(b);
    }
    let id = nexus_blobs::ContentId::parse(found.row.content_id.as_deref()?).ok()?;
    let blobs = nexus_blobs::LocalDir::open(&data_dir.join("blobs"))
        .await
        .expect("open the blob store");
    Some(blobs.get(&id).await.expect("the blob").to_vec())
}

/// Whether `rel` in `zone` is a stored directory.
pub async fn stored_dir(store: &Store, zone: &str, rel: &str) -> bool {
    store
        .fs_get(zone, rel)
        .await
        .expect("read the namespace")
        .is_some_and(|f| f.row.is_dir)
}

/// [`stored_file`] for a hub known only by its database URL and data dir (a child process).
pub async fn stored_file_at(
    db_url: &str,
    data_dir: &std::path::Path,
    zone: &str,
    rel: &str,
) -> Option<Vec<u8>> {
    let store = Store::connect(db_url).await.expect("connect");
    let out = stored_file(&store, data_dir, zone, rel).await;
    store.close().await;
    out
}

impl TestApp {
    /// The bytes this server stores for `rel` in `zone` (see [`stored_file`]).
    pub async fn stored(&self, zone: &str, rel: &str) -> Option<Vec<u8>> {
        stored_file(&self.db.store, self.data_dir.path(), zone, rel).await
    }

    /// Every file this server stores, as `zone/path`.
    pub async fn stored_files(&self) -> Vec<String> {
        stored_files(&self.db.store).await
    }

    /// Whether `rel` in `zone` is a stored directory.
    pub async fn stored_dir(&self, zone: &str, rel: &str) -> bool {
        stored_dir(&self.db.store, zone, rel).await
    }
}
