//! The end-to-end tests of credentials through the frontend (SPEC §10): a real nexusd
//! process with a provider chain behind a real frontend process, both on free 127.0.0.1
//! ports known before start (an OIDC audience and the local issuer name the frontend's
//! URL), and the MCP round trip an agent makes with one token: the rmcp client in both
//! eras and the official Python SDK.

use super::mcp::{initialize_body, post, send};
use super::procs::{Proc, free_port, mcp_serve_cmd, serve_cmd, start_frontend, start_nexusd};
use super::{ERAS, connect, expect_ok, http, list_tools, try_call};
use rpc_server::db::Backend;
use rpc_server::testing::TestDb;
use serde_json::{Value, json};
use std::path::{Path, PathBuf};
use std::time::Duration;
use tempfile::TempDir;

/// nexusd and the frontend in front of it, killed when dropped.
pub struct Stack {
    /// nexusd, `http://127.0.0.1:<port>`.
    pub rpc: String,
    /// The frontend's public base, `http://127.0.0.1:<port>`.
    pub fe: String,
    /// `<fe>/mcp`
    pub mcp: String,
    pub db: TestDb,
    pub dir: TempDir,
    pub nexusd: Proc,
    pub frontend: Proc,
}

/// The frontend's port, chosen before anything starts so that configuration can name it.
pub fn frontend_port() -> u16 {
    free_port()
}

impl Stack {
    /// A Postgres database prepared by `prepare`, nexusd with `rpc_env` added, and the
    /// frontend on `fe_port` with `fe_env` added (auth failures unthrottled: the tests send
    /// many bad credentials from one address on purpose).
    pub async fn start(
        fe_port: u16,
        rpc_env: &[(&str, String)],
        fe_env: &[(&str, String)],
    ) -> Self {
        let db = TestDb::new(Backend::Postgres).await;
        let dir = tempfile::tempdir().expect("tempdir");
        let rpc_port = free_port();
        let mut cmd = serve_cmd(&db.url, &dir.path().join("data"), rpc_port);
        cmd.envs(rpc_env.iter().map(|(k, v)| (*k, v)));
        let (nexusd, rpc) = start_nexusd("nexusd", cmd, dir.path(), rpc_port).await;
        let mut cmd = mcp_serve_cmd(&rpc, fe_port);
        cmd.env("NEXUS_AUDIT_STDOUT", "false")
            .env("NEXUS_AUTH_FAILURES_PER_MIN", "100000")
            .envs(fe_env.iter().map(|(k, v)| (*k, v)));
        let (frontend, fe) = start_frontend("frontend", cmd, dir.path(), fe_port).await;
        Self {
            mcp: format!("{fe}/mcp"),
            rpc,
            fe,
            db,
            dir,
            nexusd,
            frontend,
        }
    }

    /// The files nexusd stores in `zone`, relative to it, sorted.
    pub async fn stored_in(&self, zone: &str) -> Vec<String> {
        super::in_zone(
            rpc_server::testing::stored_files(&self.db.store).await,
            zone,
        )
    }
}

/// The mode-0600 file `name` in `dir` holding `text`.
pub fn private_file(dir: &Path, name: &str, text: &str) -> PathBuf {
    use std::os::unix::fs::PermissionsExt as _;
    let p = dir.join(name);
    std::fs::write(&p, text).expect("write");
    std::fs::set_permissions(&p, std::fs::Permissions::from_mode(0o600)).expect("chmod");
    p
}

/// `POST url` with a JSON body and an optional bearer: status and JSON (Null if none).
pub async fn post_json(url: &str, token: Option<&str>, body: &Value) -> (u16, Value) {
    let mut r = http().post(url).json(body);
    if let Some(t) = token {
        r = r.bearer_auth(t);
    }
    let resp = r.send().await.expect("send");
    let status = resp.status().as_u16();
    (status, resp.json().await.unwrap_or(Value::Null))
}

/// `GET url` with a bearer: status and JSON (Null if none).
pub async fn get_json(url: &str, token: &str) -> (u16, Value) {
    let resp = http()
        .get(url)
        .bearer_auth(token)
        .send()
        .await
        .expect("send");
    let status = resp.status().as_u16();
    (status, resp.json().await.unwrap_or(Value::Null))
}

/// What a bare `initialize` at `/mcp` with `token` gets: status and `WWW-Authenticate`.
pub async fn mcp_status(mcp: &str, token: &str) -> (u16, String) {
    let auth = super::mcp::bearer(token);
    let r = send(post(mcp, Some(&auth), &initialize_body("auth-e2e"))).await;
    let challenge = r
        .headers()
        .get("www-authenticate")
        .and_then(|v| v.to_str().ok())
        .unwrap_or_default()
        .to_owned();
    (r.status().as_u16(), challenge)
}

/// The challenge every refused credential at the frontend `fe` carries.
pub fn challenge(fe: &str) -> String {
    format!(
        "Bearer resource_metadata=\"{fe}/.well-known/oauth-protected-resource\", scope=\"files:read files:write\""
    )
}

/// An rmcp client with `token`, in each era: the tools are listed, a file is written under
/// `<prefix>/rmcp/` and read back. Returns the paths written (relative to the prefix).
pub async fn rmcp_round_trip(mcp: &str, token: &str, prefix: &str, tag: &str) -> Vec<String> {
    let mut written = Vec::new();
    for era in ERAS {
        let c = connect(mcp, token, era).await;
        let tools = list_tools(&c).await;
        assert!(
            tools.iter().any(|t| t.name == "nexus_read_file"),
            "{tag} {}: {:?}",
            era.name(),
            tools.iter().map(|t| t.name.to_string()).collect::<Vec<_>>()
        );
        let rel = format!("rmcp/{tag}-{}.txt", era.name());
        let path = format!("{prefix}/{rel}");
        let content = format!("written by {tag} over rmcp ({})\n", era.name());
        expect_ok(
            "write",
            try_call(
                &c,
                "nexus_write_file",
                json!({"path": path, "content": content}),
            )
            .await,
        );
        let got = expect_ok(
            "read",
            try_call(&c, "nexus_read_file", json!({"path": path})).await,
        );
        assert_eq!(got, content, "{tag} {}", era.name());
        let _ = c.cancel().await;
        written.push(rel);
    }
    written
}

/// Runs `tests/python/e2e_mcp_sdk.py` (the official MCP Python SDK, both eras) with
/// `token`, its paths under `prefix`; fails, saying why, if the SDK is missing or any
/// check fails. Returns its stdout.
pub async fn python_sdk(mcp: &str, token: &str, prefix: &str) -> String {
    let probe = tokio::process::Command::new("python3")
        .args(["-c", "import mcp"])
        .output()
        .await;
    match probe {
        Ok(o) if o.status.success() => {}
        Ok(o) => panic!(
            "the MCP Python SDK is not installed: run `python3 -m pip install mcp` ({})",
            String::from_utf8_lossy(&o.stderr).trim()
        ),
        Err(e) => {
            panic!("python3 is needed for this test ({e}); then run `python3 -m pip install mcp`")
        }
    }
    let stdout = run_python(
        "e2e_mcp_sdk.py",
        &[mcp, token],
        &[("NEXUS_SDK_PREFIX", prefix)],
        Duration::from_secs(120),
    )
    .await;
    for era in ["initialize", "discover"] {
        assert!(stdout.contains(&format!("ok: {era}")), "{era}: {stdout}");
    }
    stdout
}

/// Runs `tests/python/<script>` with `args` and `env` (never through an environment proxy:
/// the hub is on loopback), bounded by `within`; returns its stdout, failing with everything
/// it said when it exits non-zero.
pub async fn run_python(
    script: &str,
    args: &[&str],
    env: &[(&str, &str)],
    within: Duration,
) -> String {
    let script = Path::new(env!("CARGO_MANIFEST_DIR"))
        .join("tests/python")
        .join(script);
    let mut cmd = tokio::process::Command::new("python3");
    cmd.arg(&script)
        .args(args)
        .envs(env.iter().copied())
        .env("NO_PROXY", "127.0.0.1,localhost")
        .env("no_proxy", "127.0.0.1,localhost")
        .kill_on_drop(true);
    let out = tokio::time::timeout(within, cmd.output())
        .await
        .unwrap_or_else(|_| panic!("{} hung", script.display()))
        .expect("run python3");
    let stdout = String::from_utf8_lossy(&out.stdout).into_owned();
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert!(
        out.status.success(),
        "{} failed ({}):\nstdout:\n{stdout}\nstderr:\n{stderr}",
        script.display(),
        out.status
    );
    stdout
}

/// Whether an rmcp client can start and list tools with `token` (session era).
pub async fn try_list(mcp: &str, token: &str) -> Result<usize, String> {
    let c = super::try_connect(mcp, token, super::Era::Session)
        .await
        .map_err(|e| e.to_string())?;
    let n = c.list_all_tools().await.map_err(|e| e.to_string())?.len();
    let _ = c.cancel().await;
    Ok(n)
}
