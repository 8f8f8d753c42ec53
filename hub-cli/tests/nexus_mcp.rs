//! `nexus-mcp`, the frontend-only binary the deployments run, as a real process: the same
//! flags and `[mcp]` config section as `nexus mcp serve`, no database driver linked, and an
//! authenticated MCP call through it to a real rpc-server.

use crate::common;
use crate::frontend_bin;

use common::procs::{Proc, clean_cmd, free_port, wait_healthy};
use common::{Era, connect, expect_json, expect_ok, try_call};
use rpc_server::db::Backend;
use rpc_server::testing::TestApp;
use serde_json::json;
use std::collections::BTreeSet;
use std::os::unix::fs::PermissionsExt;
use std::path::Path;
use std::process::{Command, Output};

fn nexus_mcp() -> Command {
    clean_cmd(frontend_bin::nexus_mcp())
}

fn run(mut cmd: Command, args: &[&str]) -> Output {
    let out = cmd.args(args).output().expect("run");
    assert!(
        out.status.success(),
        "{args:?}: {}\n{}",
        out.status,
        String::from_utf8_lossy(&out.stderr)
    );
    out
}

/// Every `--flag` a help text names.
fn long_flags(help: &[u8]) -> BTreeSet<String> {
    String::from_utf8_lossy(help)
        .split(|c: char| !(c.is_ascii_alphanumeric() || c == '-'))
        .filter(|w| w.len() > 2 && w.starts_with("--"))
        .map(str::to_owned)
        .collect()
}

/// `--version`, and `--help` naming exactly the flags of `nexus mcp serve --help`: one
/// command line for both entry points.
#[test]
fn version_and_the_same_flags_as_nexus_mcp_serve() {
    let out = run(nexus_mcp(), &["--version"]);
    assert_eq!(
        String::from_utf8_lossy(&out.stdout),
        format!("nexus-mcp {}\n", env!("CARGO_PKG_VERSION"))
    );
    let ours = long_flags(&run(nexus_mcp(), &["--help"]).stdout);
    let nexus = Path::new(env!("CARGO_BIN_EXE_nexus"));
    let theirs = long_flags(&run(clean_cmd(nexus), &["mcp", "serve", "--help"]).stdout);
    assert!(
        ours.contains("--url") && ours.contains("--config") && ours.contains("--allowed-hosts"),
        "{ours:?}"
    );
    assert_eq!(ours, theirs, "nexus-mcp --help vs nexus mcp serve --help");
}

/// The binary holds no database driver: none of sqlx, Postgres or SQLite is in it, while
/// `nexus` (which has them) shows that the check can see them.
#[test]
fn links_no_database_driver() {
    let has = |bin: &Path, needle: &str| {
        Command::new("grep")
            .args(["-q", "-a", "-F", needle])
            .arg(bin)
            .status()
            .expect("run grep")
            .success()
    };
    let nexus = Path::new(env!("CARGO_BIN_EXE_nexus"));
    let ours = frontend_bin::nexus_mcp();
    for needle in ["sqlx_core", "sqlx_postgres", "sqlite3_prepare"] {
        assert!(has(nexus, needle), "the check cannot see {needle} in nexus");
        assert!(!has(ours, needle), "{needle} is linked into nexus-mcp");
    }
}

/// Configured by `--config` alone (the rpc-server's URL and the port come only from the
/// file's [mcp] section), `nexus-mcp` serves an authenticated MCP client, forwarding its
/// calls with its token; a key the frontend does not have stops it before it listens.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn serves_an_authenticated_call_configured_by_file() {
    let app = TestApp::spawn(Backend::Sqlite).await;
    app.zone("eng").await;
    let token = app.mint("alice", Some("eng:rw"), false).await.token;

    let dir = tempfile::tempdir().expect("tempdir");
    let port = free_port();
    let config = dir.path().join("nexus-hub.toml");
    std::fs::write(
        &config,
        format!(
            "[rpc]\nport = 1\n\n[mcp]\nurl = \"{}\"\nport = {port}\n\
             allowed_hosts = [\"127.0.0.1\"]\naudit_stdout = false\n",
            app.base
        ),
    )
    .expect("write config");
    std::fs::set_permissions(&config, std::fs::Permissions::from_mode(0o600)).expect("chmod");

    let mut cmd = nexus_mcp();
    cmd.arg("--config")
        .arg(&config)
        .env("NEXUS_LOG_LEVEL", "warn");
    let mut fe = Proc::spawn("nexus-mcp", cmd, dir.path());
    let base = format!("http://127.0.0.1:{port}");
    wait_healthy(&format!("{base}/health"), &mut fe).await;

    let c = connect(&format!("{base}/mcp"), &token, Era::Stateless).await;
    let who = expect_json("whoami", try_call(&c, "nexus_whoami", json!({})).await);
    assert_eq!(who["name"], "alice", "{who}");
    expect_ok(
        "write",
        try_call(
            &c,
            "nexus_write_file",
            json!({"path": "/hello.md", "content": "through nexus-mcp"}),
        )
        .await,
    );
    assert_eq!(
        app.stored("eng", "hello.md").await.as_deref(),
        Some(&b"through nexus-mcp"[..])
    );
    let _ = c.cancel().await;
    drop(fe);

    let bad = dir.path().join("bad.toml");
    std::fs::write(&bad, "[mcp]\ndatabase_path = \"/tmp/x\"\n").expect("write config");
    let out = nexus_mcp()
        .arg("--config")
        .arg(&bad)
        .output()
        .expect("run nexus-mcp");
    let err = String::from_utf8_lossy(&out.stderr);
    assert!(!out.status.success(), "an unknown key must fail: {err}");
    assert!(err.contains("database_path"), "{err}");
}
