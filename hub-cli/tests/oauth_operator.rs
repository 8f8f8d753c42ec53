//! The operator's side of the hub's OAuth server (SPEC §11, §7) on `nexus hub up`:
//! `nexus hub oauth clients list|revoke` give the same answers locally and with `--remote`
//! (the admin MCP tools, admin tokens only), and `hub token list` names each token's kind.
//! Clients are registered over HTTP (RFC 7591) as an MCP client does; the sign-in itself
//! is tests/oauth_browser.rs's and tests/oauth_claude_code.rs's.

use crate::common;

use common::procs::field;

use common::procs::{BannerHub, parse_admin_env, run_nexus};
use serde_json::{Value, json};

async fn register(base: &str, name: &str) -> String {
    let r = reqwest::Client::builder()
        .no_proxy()
        .build()
        .expect("client")
        .post(format!("{base}/oauth/register"))
        .json(&json!({
            "client_name": name,
            "redirect_uris": ["http://127.0.0.1:9/callback"],
            "token_endpoint_auth_method": "none",
        }))
        .send()
        .await
        .expect("register");
    assert_eq!(r.status().as_u16(), 201);
    let v: Value = r.json().await.expect("JSON");
    v["client_id"].as_str().expect("client_id").to_owned()
}

/// `env` without the database: only `--remote` can answer.
fn remote_only(env: &[(String, String)]) -> Vec<(String, String)> {
    env.iter()
        .filter(|(k, _)| k != "NEXUS_DATABASE_URL")
        .cloned()
        .collect()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn oauth_clients_are_listed_and_revoked_locally_and_remotely() {
    let tmp = tempfile::tempdir().expect("tempdir");
    let data = tmp.path().join("data");
    let mut hub = BannerHub::start(&data);
    let banner = hub.banner();
    let mcp = field(&banner, "mcp: ").expect("an mcp: line");
    let base = mcp.trim_end_matches("/mcp").to_owned();
    let env = parse_admin_env(&std::fs::read_to_string(data.join("admin.env")).expect("env"));
    let admin = env
        .iter()
        .find(|(k, _)| k == "NEXUS_API_KEY")
        .map(|(_, v)| v.clone())
        .expect("admin token");
    let a = register(&base, "Editor A").await;
    let b = register(&base, "Editor B").await;

    let (code, local, err) = run_nexus(&["hub", "oauth", "clients", "list", "--json"], &env).await;
    assert_eq!(code, 0, "{err}");
    let far = remote_only(&env);
    let remote_args = ["--remote", mcp.as_str(), "--admin-token", admin.as_str()];
    let mut list = vec!["hub", "oauth", "clients", "list", "--json"];
    list.extend(remote_args);
    let (code, remote, err) = run_nexus(&list, &far).await;
    assert_eq!(code, 0, "{err}");
    let local: Value = serde_json::from_str(&local).expect("json");
    let remote: Value = serde_json::from_str(&remote).expect("json");
    assert_eq!(local, remote, "the same answer either way");
    let ids: Vec<&str> = remote
        .as_array()
        .expect("array")
        .iter()
        .map(|c| c["client_id"].as_str().expect("id"))
        .collect();
    assert_eq!(ids, [a.as_str(), b.as_str()], "oldest first");
    assert_eq!(remote[0]["client_name"], "Editor A");
    assert_eq!(remote[0]["kind"], "dcr");
    assert_eq!(remote[0]["status"], "active");
    assert_eq!(remote[0]["active_tokens"], 0);
    assert_eq!(
        remote[0]["redirect_uris"],
        json!(["http://127.0.0.1:9/callback"])
    );
    // The text form names each client once per line.
    let mut text = vec!["hub", "oauth", "clients", "list"];
    text.extend(remote_args);
    let (code, out, err) = run_nexus(&text, &far).await;
    assert_eq!(code, 0, "{err}");
    assert_eq!(out.lines().count(), 2, "{out}");
    assert!(
        out.lines()
            .next()
            .is_some_and(|l| l.contains(&a) && l.contains("\"Editor A\"") && l.contains("active")),
        "{out}"
    );

    // Revoked remotely: the local list agrees; an unknown client is exit 1, remote or not.
    let mut revoke = vec!["hub", "oauth", "clients", "revoke", a.as_str(), "--json"];
    revoke.extend(remote_args);
    let (code, out, err) = run_nexus(&revoke, &far).await;
    assert_eq!(code, 0, "{err}");
    let done: Value = serde_json::from_str(&out).expect("json");
    assert_eq!(
        done,
        json!({"client_id": a, "revoked": true, "revoked_tokens": 0})
    );
    let (_, local, _) = run_nexus(&["hub", "oauth", "clients", "list", "--json"], &env).await;
    let local: Value = serde_json::from_str(&local).expect("json");
    assert_eq!(local[0]["status"], "revoked");
    assert_eq!(local[1]["status"], "active");
    let mut unknown = vec!["hub", "oauth", "clients", "revoke", "dcr-nope"];
    unknown.extend(remote_args);
    let (code, _, err) = run_nexus(&unknown, &far).await;
    assert_eq!(code, 1, "{err}");
    assert!(err.contains("no OAuth client"), "{err}");
    let (code, _, err) = run_nexus(&["hub", "oauth", "clients", "revoke", "dcr-nope"], &env).await;
    assert_eq!(code, 1, "{err}");
    assert!(err.contains("no OAuth client"), "{err}");

    // Only an admin token may: a zone token is refused and changes nothing.
    let (code, out, err) = run_nexus(
        &[
            "hub", "token", "create", "--name", "plain", "--zone", "default", "--json",
        ],
        &env,
    )
    .await;
    assert_eq!(code, 0, "{err}");
    let plain: Value = serde_json::from_str(&out).expect("json");
    let plain = plain["token"].as_str().expect("token");
    let (code, _, err) = run_nexus(
        &[
            "hub",
            "oauth",
            "clients",
            "revoke",
            &b,
            "--remote",
            &mcp,
            "--admin-token",
            plain,
        ],
        &far,
    )
    .await;
    assert_ne!(code, 0, "a zone token revoked a client");
    assert!(!err.is_empty());
    let (_, local, _) = run_nexus(&["hub", "oauth", "clients", "list", "--json"], &env).await;
    let local: Value = serde_json::from_str(&local).expect("json");
    assert_eq!(local[1]["status"], "active", "unchanged");

    // `hub token list` names the kind of each token (and, for oauth ones, the client).
    let (code, table, err) = run_nexus(&["hub", "token", "list"], &env).await;
    assert_eq!(code, 0, "{err}");
    let header: Vec<&str> = table
        .lines()
        .next()
        .expect("header")
        .split_whitespace()
        .collect();
    assert_eq!(
        &header[..4],
        ["KEY_ID", "NAME", "KIND", "CLIENT"],
        "{table}"
    );
    let row: Vec<&str> = table
        .lines()
        .find(|l| l.split_whitespace().nth(1) == Some("plain"))
        .expect("plain's row")
        .split_whitespace()
        .collect();
    assert_eq!(&row[2..4], ["key", "-"], "{table}");
    hub.terminate();
}
