//! Shared harness of the MCP end-to-end tests: a real rpc-server ([`TestApp`], fresh
//! Postgres database and data dir) behind a real mcp-frontend on 127.0.0.1 port 0, and
//! rmcp clients that speak to it with a bearer token in either lifecycle. Beside it: MCP
//! over raw HTTP ([`mcp`]), a hub of many nodes as processes ([`cluster`]), credentials end to end through the frontend ([`auth`]), the `nexus` binary as processes ([`procs`]) and the helpers of
//! hubs with Redis ([`redis`]).
//!
//! Not every test uses every helper.
#![allow(dead_code)]

pub mod auth;
pub mod claude;
pub mod cluster;
pub mod mcp;
pub mod nats;
pub mod procs;
pub mod redis;

use nexus_wire::methods::TokenCreateParams;
use rmcp::model::{CallToolRequestParams, CallToolResult, ClientConfig, ProtocolVersion, Tool};
use rmcp::service::{ClientInitializeError, RunningService, ServiceError};
use rmcp::transport::StreamableHttpClientTransport;
use rmcp::transport::streamable_http_client::StreamableHttpClientTransportConfig;
use rmcp::{ClientLifecycleMode, ClientServiceExt, RoleClient};
use rpc_server::auth::{InvalidationBus, TokenHasher};
use rpc_server::control::Control;
use rpc_server::db::{Backend, Store};
use rpc_server::testing::{TestApp, test_secret};
use serde_json::{Map, Value};
use std::path::Path;
use std::sync::Arc;
use std::time::Duration;

/// Upper bound of any single MCP exchange in these tests: a hang is a failure, not a wait.
pub const STEP: Duration = Duration::from_secs(10);

/// A running mcp-frontend in front of some rpc-server URL.
#[derive(Debug)]
pub struct FrontendHandle {
    /// `http://127.0.0.1:<port>`
    pub base: String,
    /// `http://127.0.0.1:<port>/mcp`
    pub mcp_url: String,
    pub port: u16,
    stop: Option<tokio::sync::oneshot::Sender<()>>,
}

impl Drop for FrontendHandle {
    fn drop(&mut self) {
        if let Some(tx) = self.stop.take() {
            let _ = tx.send(());
        }
    }
}

/// Starts a frontend (defaults of `FrontendConfig::local`) in front of `rpc_base`.
pub async fn spawn_frontend(rpc_base: &str) -> FrontendHandle {
    spawn_frontend_with(rpc_base, |_| {}).await
}

/// Starts a frontend in front of `rpc_base`, its configuration adjusted by `adjust`.
pub async fn spawn_frontend_with(
    rpc_base: &str,
    adjust: impl FnOnce(&mut mcp_frontend::FrontendConfig),
) -> FrontendHandle {
    let mut cfg = mcp_frontend::FrontendConfig::local(rpc_base, 0);
    adjust(&mut cfg);
    spawn_frontend_from(cfg).await
}

/// Starts a frontend from `cfg` (its port should be 0).
pub async fn spawn_frontend_from(cfg: mcp_frontend::FrontendConfig) -> FrontendHandle {
    let fe = mcp_frontend::Frontend::build(cfg)
        .await
        .expect("build the frontend");
    let port = fe.port();
    let (tx, rx) = tokio::sync::oneshot::channel::<()>();
    tokio::spawn(fe.run_until_stopped(async move {
        let _ = rx.await;
    }));
    let base = format!("http://127.0.0.1:{port}");
    FrontendHandle {
        mcp_url: format!("{base}/mcp"),
        base,
        port,
        stop: Some(tx),
    }
}

/// The rpc-server (Postgres) and a frontend in front of it.
#[derive(Debug)]
pub struct Hub {
    pub app: TestApp,
    pub fe: FrontendHandle,
}

impl Hub {
    pub async fn start() -> Self {
        let app = TestApp::spawn(Backend::Postgres).await;
        let fe = spawn_frontend(&app.base).await;
        Self { app, fe }
    }

    pub fn mcp_url(&self) -> &str {
        &self.fe.mcp_url
    }

    /// The bytes the hub stores for `rel` (leading `/` optional) in `zone`, if it is a file.
    pub async fn stored(&self, zone: &str, rel: &str) -> Option<Vec<u8>> {
        self.app.stored(zone, rel.trim_start_matches('/')).await
    }

    /// [`Hub::stored`] as text (panics on bytes that are not UTF-8).
    pub async fn stored_text(&self, zone: &str, rel: &str) -> Option<String> {
        self.stored(zone, rel)
            .await
            .map(|b| String::from_utf8(b).expect("stored text is UTF-8"))
    }

    /// Whether the hub stores a file at `rel` in `zone`.
    pub async fn has_file(&self, zone: &str, rel: &str) -> bool {
        self.stored(zone, rel).await.is_some()
    }

    /// Whether `rel` in `zone` is a stored directory.
    pub async fn stored_dir(&self, zone: &str, rel: &str) -> bool {
        self.app.stored_dir(zone, rel.trim_start_matches('/')).await
    }

    /// Every stored file as `zone/path`, sorted.
    pub async fn stored_files(&self) -> Vec<String> {
        self.app.stored_files().await
    }

    /// The stored files of `zone`, relative to it, sorted.
    pub async fn stored_in(&self, zone: &str) -> Vec<String> {
        in_zone(self.stored_files().await, zone)
    }

    /// Mints a token; returns the raw token.
    pub async fn token(&self, name: &str, zones: Option<&str>, admin: bool) -> String {
        self.app.mint(name, zones, admin).await.token
    }
}

/// The two MCP lifecycles the frontend serves.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Era {
    /// `server/discover`, stateless 2026-07-28 requests.
    Stateless,
    /// `initialize`, a legacy 2025-era session (`Mcp-Session-Id`).
    Session,
}

pub const ERAS: [Era; 2] = [Era::Stateless, Era::Session];

impl Era {
    pub fn name(self) -> &'static str {
        match self {
            Era::Stateless => "stateless",
            Era::Session => "session",
        }
    }

    fn lifecycle(self) -> ClientLifecycleMode {
        match self {
            Era::Stateless => ClientLifecycleMode::Discover {
                preferred_versions: vec![ProtocolVersion::V_2026_07_28],
            },
            Era::Session => ClientLifecycleMode::Initialize,
        }
    }
}

pub type Client = RunningService<RoleClient, ClientConfig>;

/// Connects an rmcp client with `Authorization: Bearer <token>`. The error is boxed: rmcp's
/// is large.
pub async fn try_connect(
    url: &str,
    token: &str,
    era: Era,
) -> Result<Client, Box<ClientInitializeError>> {
    let transport = StreamableHttpClientTransport::from_config(
        StreamableHttpClientTransportConfig::with_uri(url.to_owned()).auth_header(token.to_owned()),
    );
    match tokio::time::timeout(
        STEP,
        ClientConfig::default().serve_with_lifecycle(transport, era.lifecycle()),
    )
    .await
    {
        Ok(r) => r.map_err(Box::new),
        Err(_) => panic!("{} connect to {url} hung", era.name()),
    }
}

pub async fn connect(url: &str, token: &str, era: Era) -> Client {
    try_connect(url, token, era)
        .await
        .unwrap_or_else(|e| panic!("{} connect to {url}: {e}", era.name()))
}

/// One `tools/call`, bounded by [`STEP`].
pub async fn try_call(c: &Client, tool: &str, args: Value) -> Result<CallToolResult, ServiceError> {
    let args: Map<String, Value> = match args {
        Value::Object(m) => m,
        Value::Null => Map::new(),
        other => panic!("tool arguments must be an object, got {other}"),
    };
    tokio::time::timeout(
        STEP,
        c.call_tool(CallToolRequestParams::new(tool.to_owned()).with_arguments(args)),
    )
    .await
    .unwrap_or_else(|_| panic!("tools/call {tool} hung"))
}

/// The text content of a tool result, concatenated.
pub fn text(r: &CallToolResult) -> String {
    r.content
        .iter()
        .filter_map(|c| c.as_text().map(|t| t.text.clone()))
        .collect()
}

pub fn is_error(r: &CallToolResult) -> bool {
    r.is_error == Some(true)
}

/// A call that must succeed with `isError` unset or false; returns its text.
#[track_caller]
pub fn expect_ok(what: &str, r: Result<CallToolResult, ServiceError>) -> String {
    let r = r.unwrap_or_else(|e| panic!("{what}: protocol error {e}"));
    assert!(!is_error(&r), "{what}: isError: {}", text(&r));
    text(&r)
}

/// A call that must succeed and answer JSON text.
#[track_caller]
pub fn expect_json(what: &str, r: Result<CallToolResult, ServiceError>) -> Value {
    let t = expect_ok(what, r);
    serde_json::from_str(&t).unwrap_or_else(|e| panic!("{what}: not JSON ({e}): {t}"))
}

/// A call that must be a tool error (`isError: true`); returns its message.
#[track_caller]
pub fn expect_tool_error(what: &str, r: Result<CallToolResult, ServiceError>) -> String {
    let r =
        r.unwrap_or_else(|e| panic!("{what}: expected an isError result, got protocol error {e}"));
    assert!(
        is_error(&r),
        "{what}: expected isError, got success: {}",
        text(&r)
    );
    text(&r)
}

/// The error message of a call that failed either way (JSON-RPC error or `isError`).
#[track_caller]
pub fn expect_any_error(what: &str, r: Result<CallToolResult, ServiceError>) -> String {
    match r {
        Ok(r) => {
            assert!(
                is_error(&r),
                "{what}: expected an error, got success: {}",
                text(&r)
            );
            text(&r)
        }
        Err(e) => e.to_string(),
    }
}

/// All tools, bounded by [`STEP`].
pub async fn list_tools(c: &Client) -> Vec<Tool> {
    tokio::time::timeout(STEP, c.list_all_tools())
        .await
        .expect("tools/list hung")
        .expect("tools/list")
}

/// The text a hub known by its database URL and data dir (a child process) stores for `rel`
/// in `zone`, if it is a file.
pub async fn stored_text_at(
    db_url: &str,
    data_dir: &Path,
    zone: &str,
    rel: &str,
) -> Option<String> {
    rpc_server::testing::stored_file_at(db_url, data_dir, zone, rel.trim_start_matches('/'))
        .await
        .map(|b| String::from_utf8(b).expect("stored text is UTF-8"))
}

/// The entries of `files` (`zone/path`, as [`rpc_server::testing::stored_files`] lists
/// them) in `zone`, relative to it.
pub fn in_zone(files: Vec<String>, zone: &str) -> Vec<String> {
    let prefix = format!("{zone}/");
    files
        .into_iter()
        .filter_map(|f| f.strip_prefix(&prefix).map(str::to_owned))
        .collect()
}

/// A plain HTTP client that never goes through an environment proxy.
pub fn http() -> reqwest::Client {
    reqwest::Client::builder()
        .no_proxy()
        .timeout(STEP)
        .build()
        .expect("http client")
}

/// A control plane on `store` with the test secret and a bus of its own: what the CLI on
/// the hub host uses, without running it.
pub fn control(store: &Store) -> Control {
    let hasher = Arc::new(TokenHasher::new(&test_secret()).expect("secret"));
    Control::new(store.clone(), hasher, InvalidationBus::new(), None)
}

/// Mints token `name` with `zones` (e.g. `eng:rw`) on `control`; returns the raw token.
pub async fn mint(control: &Control, name: &str, zones: &str) -> String {
    control
        .create_token(TokenCreateParams {
            name: name.into(),
            zones: Some(zones.into()),
            ..Default::default()
        })
        .await
        .expect("mint")
        .token
}

/// The HTTP status of the rpc-server at `base` answering `whoami` with `token`.
pub async fn whoami_status(base: &str, token: &str) -> u16 {
    http()
        .post(format!("{base}/api/nfs/whoami"))
        .bearer_auth(token)
        .json(&serde_json::json!({"jsonrpc": "2.0", "id": 1, "method": "whoami", "params": {}}))
        .send()
        .await
        .expect("whoami")
        .status()
        .as_u16()
}
