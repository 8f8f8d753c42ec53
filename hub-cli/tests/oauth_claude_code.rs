//! The real Claude Code signs in to `nexus hub up` with OAuth (SPEC §11), no token pasted:
//! `claude mcp add --transport http hub <mcp-url>` with no header, then `claude mcp login
//! hub --no-browser` on a pseudo-terminal — the way a user on another machine than their
//! browser does it. Claude Code registers itself (RFC 7591), prints the authorization URL
//! and asks for the redirect URL; headless Chromium (tests/python/oauth_browser.py) fills
//! the hub's login and consent pages as root and lands on Claude Code's loopback redirect,
//! which does not resolve in that browser; the URL it was sent to is pasted back, and
//! Claude Code redeems the code. `claude mcp list` then shows the hub connected. The
//! operator sees the credential (kind `oauth`, Claude Code's registration) in `nexus hub
//! token list` and revokes it; Claude Code is then refused and cannot refresh its way back.
//! Screenshots of the pages are kept under `target/test-artifacts/oauth-claude-code/`.
//!
//! Claude Code comes from tests/claude-code (`npm ci --prefix tests/claude-code`, done by
//! scripts/test unless `NEXUS_TEST_SKIP_CLAUDE_CODE=1`); without it this test says so and
//! passes, except in CI (`CI` set). Chromium and chromedriver are needed as for
//! tests/oauth_browser.rs.

use crate::common;

use common::claude::{claude_code, claude_env, listed};

use common::procs::field;

use common::procs::{BannerHub, parse_admin_env, run_nexus};
use serde_json::Value;
use std::path::{Path, PathBuf};
use std::time::Duration;

fn artifacts() -> PathBuf {
    common::procs::artifacts("oauth-claude-code")
}

/// Runs `claude <args>`; returns its stdout, failing with everything it said.
async fn claude(claude: &Path, home: &Path, args: &[&str]) -> String {
    common::claude::run(claude, home, claude, args, &format!("claude {args:?}")).await
}

fn query(url: &str) -> Vec<(String, String)> {
    let u = reqwest::Url::parse(url).unwrap_or_else(|e| panic!("{url}: {e}"));
    u.query_pairs()
        .map(|(k, v)| (k.into_owned(), v.into_owned()))
        .collect()
}

fn param<'a>(q: &'a [(String, String)], k: &str) -> Option<&'a str> {
    q.iter().find(|(n, _)| n == k).map(|(_, v)| v.as_str())
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn claude_code_signs_in_with_oauth_and_the_operator_revokes_it() {
    let Some(bin) = claude_code() else { return };
    for b in ["/usr/bin/chromium", "/usr/bin/chromedriver"] {
        assert!(
            Path::new(b).exists(),
            "{b} is needed: apt-get install chromium chromium-driver"
        );
    }
    let tmp = tempfile::tempdir().expect("tempdir");
    let data = tmp.path().join("data");
    let mut hub = BannerHub::start(&data);
    let banner = hub.banner();
    let mcp = field(&banner, "mcp: ").expect("an mcp: line");
    let root_pw = field(&banner, "root: ").expect("the generated root password, once");
    let env = parse_admin_env(&std::fs::read_to_string(data.join("admin.env")).expect("env"));
    let home = tmp.path().join("home");
    std::fs::create_dir_all(&home).expect("home");

    // Added with the URL alone: no header, no token.
    claude(
        &bin,
        &home,
        &["mcp", "add", "--transport", "http", "hub", &mcp],
    )
    .await;
    let list = claude(&bin, &home, &["mcp", "list"]).await;
    let l = listed(&list, "hub");
    assert!(l.contains("Needs authentication"), "{l}");

    // The login: Claude Code on a terminal, the browser between.
    let shots = artifacts();
    let mut py_env: Vec<(String, String)> = claude_env(&bin, &home);
    py_env.push(("ANTHROPIC_API_KEY".into(), String::new()));
    let py_env: Vec<(&str, &str)> = py_env
        .iter()
        .map(|(k, v)| (k.as_str(), v.as_str()))
        .collect();
    let out = common::auth::run_python(
        "oauth_browser.py",
        &[
            "claude-login",
            bin.to_str().expect("utf-8 path"),
            "hub",
            "root",
            &root_pw,
            shots.to_str().expect("utf-8 path"),
            "claude-code",
        ],
        &py_env,
        Duration::from_secs(240),
    )
    .await;
    assert!(out.contains("exit: 0"), "{out}");
    assert!(out.contains("Authenticated with \"hub\""), "{out}");
    for page in ["login", "consent", "redirect"] {
        let p = shots.join(format!("claude-code-{page}.png"));
        let bytes = std::fs::read(&p).unwrap_or_else(|e| panic!("{}: {e}", p.display()));
        assert!(bytes.starts_with(b"\x89PNG"), "{} is a PNG", p.display());
    }
    // What Claude Code asked for: PKCE S256 and the hub's /mcp as the resource (RFC 8707);
    // what it got back names the issuer (RFC 9207).
    let authorize = out
        .lines()
        .find_map(|l| l.strip_prefix("authorize: "))
        .expect("the authorization URL");
    let asked = query(authorize);
    assert_eq!(
        param(&asked, "code_challenge_method"),
        Some("S256"),
        "{authorize}"
    );
    assert_eq!(param(&asked, "resource"), Some(mcp.as_str()), "{authorize}");
    let redirect = out
        .lines()
        .find_map(|l| l.strip_prefix("redirect: "))
        .expect("the redirect URL");
    let back = query(redirect);
    assert!(
        param(&back, "code").is_some_and(|c| c.starts_with("nxc-")),
        "{redirect}"
    );
    assert_eq!(param(&back, "state"), param(&asked, "state"), "{redirect}");
    let origin = mcp.trim_end_matches("/mcp");
    assert_eq!(param(&back, "iss"), Some(origin), "{redirect}");

    let list = claude(&bin, &home, &["mcp", "list"]).await;
    let l = listed(&list, "hub");
    assert!(l.contains("✔ Connected"), "{l}");
    // Claude Code keeps its tokens itself; its configuration holds none.
    let stored = std::fs::read_to_string(home.join(".claude.json")).expect(".claude.json");
    assert!(
        !stored.contains("sk-") && !stored.contains("nxr-"),
        "{stored}"
    );

    // The operator: one credential of kind oauth, root's, issued to Claude Code's registration.
    let oauth = common::procs::oauth_tokens(&env).await;
    assert_eq!(oauth.len(), 1, "{oauth:?}");
    assert_eq!(oauth[0]["user_id"], "root");
    assert_eq!(oauth[0]["status"], "active");
    let client_id = oauth[0]["oauth_client"].as_str().expect("oauth_client");
    assert_eq!(Some(client_id), param(&asked, "client_id"));
    let (code, clients, err) =
        run_nexus(&["hub", "oauth", "clients", "list", "--json"], &env).await;
    assert_eq!(code, 0, "{err}");
    let clients: Value = serde_json::from_str(&clients).expect("json");
    // The same from afar, over the admin tools.
    let admin = env
        .iter()
        .find(|(k, _)| k == "NEXUS_API_KEY")
        .map(|(_, v)| v.as_str())
        .expect("admin token");
    let (code, remote, err) = run_nexus(
        &[
            "hub",
            "oauth",
            "clients",
            "list",
            "--json",
            "--remote",
            &mcp,
            "--admin-token",
            admin,
        ],
        &env,
    )
    .await;
    assert_eq!(code, 0, "{err}");
    assert_eq!(
        serde_json::from_str::<Value>(&remote).expect("json"),
        clients
    );
    let client = clients
        .as_array()
        .expect("array")
        .iter()
        .find(|c| c["client_id"] == client_id)
        .expect("the token's client is listed");
    let client_name = client["client_name"].as_str().expect("client_name");
    assert!(client_name.starts_with("Claude Code"), "{client}");
    assert_eq!(client["kind"], "dcr");
    assert_eq!(client["active_tokens"], 1);
    // A loopback redirect URI by name (RFC 8252), the port Claude Code listened on.
    assert!(
        client["redirect_uris"][0]
            .as_str()
            .is_some_and(|u| u.starts_with("http://localhost:")),
        "{client}"
    );
    // The text table names the kind and the client.
    let (code, table, err) = run_nexus(&["hub", "token", "list"], &env).await;
    assert_eq!(code, 0, "{err}");
    let name = oauth[0]["name"].as_str().expect("name");
    let row = table
        .lines()
        .find(|l| l.contains(name))
        .unwrap_or_else(|| panic!("{name} in:\n{table}"));
    assert!(
        row.contains("oauth") && row.contains(client_name),
        "{table}"
    );
    assert!(
        table.lines().next().is_some_and(|h| h.contains("KIND")),
        "{table}"
    );

    // Revoked: Claude Code is refused, and its refresh token mints nothing.
    let (code, _, err) = run_nexus(&["hub", "token", "revoke", name], &env).await;
    assert_eq!(code, 0, "{err}");
    let list = claude(&bin, &home, &["mcp", "list"]).await;
    let l = listed(&list, "hub");
    assert!(!l.contains("✔ Connected"), "{l}");
    assert!(
        l.contains("Needs authentication") || l.contains("Failed"),
        "{l}"
    );
    let left = common::procs::oauth_tokens(&env).await;
    assert!(
        left.is_empty(),
        "no live OAuth token after the revocation: {left:?}"
    );
    hub.terminate();
}
