//! `nexus hub up` as an operator runs it (SPEC §7): the real binary on a fresh data dir
//! prints the MCP URL and a one-time admin token, writes admin.env (0600), serves MCP with
//! that token, answers the remote and local admin commands, refuses a non-admin token
//! remotely, and after a restart on the same data dir keeps the token, the files and the
//! MCP sessions (their sealing secret is kept in the data dir, 0600).

use crate::common;

use common::procs::field;

use common::procs::{BannerHub, run_nexus};
use common::{Era, connect, expect_json, expect_ok, try_call};
use serde_json::{Value, json};
use std::os::unix::fs::PermissionsExt;

/// Runs `nexus <args>` with `env`; returns (exit code, stdout, stderr). Never hangs.
async fn run(args: &[&str], env: &[(String, String)]) -> (i32, String, String) {
    let (code, stdout, stderr) = run_nexus(args, env).await;
    assert!(
        !stdout.contains("panicked") && !stderr.contains("panicked"),
        "nexus {args:?} panicked: {stderr}"
    );
    (code, stdout, stderr)
}

#[track_caller]
fn ok((code, out, err): (i32, String, String), what: &str) -> String {
    assert_eq!(code, 0, "{what}: exit {code}\nstdout: {out}\nstderr: {err}");
    out
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn hub_up_serves_mcp_and_admin_and_survives_a_restart() {
    let tmp = tempfile::tempdir().expect("tempdir");
    let data = tmp.path().join("data");

    // ---- first start -------------------------------------------------------------------
    let mut hub = BannerHub::start(&data);
    let banner = hub.banner();
    let mcp_url = field(&banner, "mcp: ").expect("an `mcp:` line");
    assert!(
        mcp_url.starts_with("http://127.0.0.1:") && mcp_url.ends_with("/mcp"),
        "{mcp_url}"
    );
    let token = field(&banner, "token: ").expect("a `token:` line on first start");
    assert!(token.starts_with("sk-"), "{token}");

    let env_path = data.join("admin.env");
    let mode = std::fs::metadata(&env_path)
        .expect("admin.env exists")
        .permissions()
        .mode();
    assert_eq!(mode & 0o777, 0o600, "admin.env mode {mode:o}");
    // The secret sealing MCP session ids: made once, kept private, so a legacy session
    // opened now still works after the restart below.
    let mode = std::fs::metadata(data.join("mcp-session.secret"))
        .expect("mcp-session.secret exists")
        .permissions()
        .mode();
    assert_eq!(mode & 0o777, 0o600, "mcp-session.secret mode {mode:o}");
    let (sid, _) =
        common::mcp::open_session(&mcp_url, &common::mcp::bearer(&token), "hub-up").await;
    let env_text = std::fs::read_to_string(&env_path).expect("read admin.env");
    for k in [
        "NEXUS_URL",
        "NEXUS_MCP_URL",
        "NEXUS_API_KEY",
        "NEXUS_DATABASE_URL",
        "NEXUS_API_KEY_SECRET",
    ] {
        assert!(
            env_text.contains(&format!("export {k}=")),
            "admin.env lacks {k}"
        );
    }
    let env = common::procs::parse_admin_env(&env_text);
    let get = |k: &str| {
        env.iter()
            .find(|(n, _)| n == k)
            .map(|(_, v)| v.clone())
            .unwrap_or_default()
    };
    assert_eq!(get("NEXUS_API_KEY"), token);
    assert_eq!(get("NEXUS_MCP_URL"), mcp_url);
    assert!(get("NEXUS_URL").starts_with("http://127.0.0.1:"));

    // MCP with the admin token: zoneless, so /zone/<zone>/… paths.
    let c = connect(&mcp_url, &token, Era::Stateless).await;
    let w = expect_json("whoami", try_call(&c, "nexus_whoami", json!({})).await);
    assert_eq!(w["is_admin"], true, "{w}");
    expect_ok(
        "write",
        try_call(
            &c,
            "nexus_write_file",
            json!({"path": "/zone/default/a.txt", "content": "kept"}),
        )
        .await,
    );
    // The hub's own database (admin.env names it) stores the bytes.
    assert_eq!(
        common::stored_text_at(&get("NEXUS_DATABASE_URL"), &data, "default", "a.txt")
            .await
            .as_deref(),
        Some("kept")
    );
    let _ = c.cancel().await;

    // Remote admin over MCP (with and without /mcp in the URL), then local admin.
    let base_url = mcp_url.trim_end_matches("/mcp").to_owned();
    let out = ok(
        run(
            &[
                "hub",
                "token",
                "create",
                "--name",
                "bob",
                "--zone",
                "default",
                "--remote",
                &mcp_url,
                "--admin-token",
                &token,
            ],
            &[],
        )
        .await,
        "remote token create",
    );
    let bob = out
        .lines()
        .find_map(|l| l.trim().strip_prefix("token: "))
        .unwrap_or_else(|| panic!("token create printed no token: {out}"))
        .to_owned();
    assert!(bob.starts_with("sk-"), "{out}");

    let out = ok(
        run(
            &[
                "hub",
                "token",
                "list",
                "--remote",
                &base_url,
                "--admin-token",
                &token,
                "--json",
            ],
            &[],
        )
        .await,
        "remote token list",
    );
    let list: Value =
        serde_json::from_str(&out).unwrap_or_else(|e| panic!("token list --json ({e}): {out}"));
    let names: Vec<&str> = list
        .as_array()
        .unwrap_or_else(|| panic!("{list}"))
        .iter()
        .filter_map(|t| t["name"].as_str())
        .collect();
    assert!(names.contains(&"bob") && names.contains(&"admin"), "{list}");

    let out = ok(
        run(
            &[
                "hub",
                "status",
                "--remote",
                &mcp_url,
                "--admin-token",
                &token,
            ],
            &[],
        )
        .await,
        "remote status",
    );
    assert!(
        out.contains("endpoint:") && out.contains("tokens:"),
        "{out}"
    );

    let out = ok(run(&["hub", "status"], &env).await, "local status");
    assert!(out.contains("tokens:"), "{out}");
    let out = ok(
        run(&["hub", "status", "--json"], &env).await,
        "local status --json",
    );
    let s: Value = serde_json::from_str(&out).unwrap_or_else(|e| panic!("status ({e}): {out}"));
    assert_eq!(s["tokens"]["active"], 2, "{s}");
    let out = ok(
        run(&["hub", "token", "list", "--json"], &env).await,
        "local token list",
    );
    assert!(out.contains("\"bob\""), "{out}");

    // bob works as an agent but not as an admin.
    let b = connect(&mcp_url, &bob, Era::Stateless).await;
    expect_ok(
        "bob reads",
        try_call(&b, "nexus_read_file", json!({"path": "/a.txt"})).await,
    );
    let _ = b.cancel().await;
    let (code, out, err) = run(
        &[
            "hub",
            "token",
            "list",
            "--remote",
            &mcp_url,
            "--admin-token",
            &bob,
        ],
        &[],
    )
    .await;
    assert_eq!(code, 1, "non-admin remote: stdout {out} stderr {err}");
    assert!(out.trim().is_empty(), "non-admin remote printed: {out}");
    let err_lines: Vec<&str> = err.lines().filter(|l| !l.trim().is_empty()).collect();
    assert_eq!(err_lines.len(), 1, "one clear line: {err}");
    assert!(
        err_lines[0].starts_with("error:") && err_lines[0].to_ascii_lowercase().contains("admin"),
        "{err}"
    );

    let status = hub.terminate();
    assert!(status.success(), "hub up exit after SIGTERM: {status:?}");
    drop(hub);

    // ---- restart on the same data dir ------------------------------------------------------
    let mut hub = BannerHub::start(&data);
    let banner = hub.banner();
    assert!(
        field(&banner, "token: ").is_none(),
        "a restart must not print a new token:\n{}",
        banner.join("\n")
    );
    assert!(
        banner.iter().any(|l| l.contains("as before")),
        "{}",
        banner.join("\n")
    );
    let mcp_url = field(&banner, "mcp: ").expect("an `mcp:` line");
    let env =
        common::procs::parse_admin_env(&std::fs::read_to_string(&env_path).expect("admin.env"));
    assert!(
        env.iter().any(|(k, v)| k == "NEXUS_API_KEY" && *v == token),
        "admin.env keeps the token"
    );
    let list = json!({"jsonrpc": "2.0", "id": 4, "method": "tools/list"});
    let r = common::mcp::send(
        common::mcp::post(&mcp_url, Some(&common::mcp::bearer(&token)), &list)
            .header("mcp-session-id", &sid),
    )
    .await;
    assert_eq!(
        r.status().as_u16(),
        200,
        "the session opened before the restart"
    );
    let c = connect(&mcp_url, &token, Era::Session).await;
    let r = expect_ok(
        "read after restart",
        try_call(
            &c,
            "nexus_read_file",
            json!({"path": "/zone/default/a.txt"}),
        )
        .await,
    );
    assert_eq!(r, "kept");
    let _ = c.cancel().await;
    let b = connect(&mcp_url, &bob, Era::Stateless).await;
    expect_ok(
        "bob after restart",
        try_call(&b, "nexus_whoami", json!({})).await,
    );
    let _ = b.cancel().await;
    hub.terminate();
}
