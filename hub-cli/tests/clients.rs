//! Pointing agents at the hub (docs/CLIENTS.md): what `nexus hub client-config` and
//! `nexus hub token create --client` print, read back the way each client reads it (Codex's
//! TOML, the JSON of Cursor, VS Code — against a schema of its mcp.json — and Claude
//! Desktop, Goose's YAML, the shell for Claude Code); Claude Code itself connecting with the
//! printed command (with `Authorization` and with `X-Nexus-API-Key`) and reporting a
//! revoked token as 401; `hub status` on an embedded hub showing its live traffic; and
//! `hub doctor` naming each failure — a healthy hub, a refused Host, a revoked token, a
//! stopped hub.
//!
//! Claude Code comes from npm, pinned by tests/claude-code/package-lock.json (`npm ci
//! --prefix tests/claude-code`, done by scripts/test and .ci/run). Without it the Claude
//! Code test says so and passes, except in CI (`CI` set), where that is a failure.

use crate::common;

use common::claude::{claude_code, listed};

use common::procs::{HubUp, free_port, mcp_serve_cmd, parse_admin_env, run_nexus, start_frontend};
use serde_json::Value;
use std::path::{Path, PathBuf};

const URL: &str = "https://hub.example.com/mcp";

/// Runs `nexus <args>` with `env`; panics on a panic. (exit code, stdout, stderr)
async fn nexus(args: &[&str], env: &[(String, String)]) -> (i32, String, String) {
    let (code, out, err) = run_nexus(args, env).await;
    assert!(
        !out.contains("panicked") && !err.contains("panicked"),
        "nexus {args:?} panicked: {err}"
    );
    (code, out, err)
}

#[track_caller]
fn ok((code, out, err): (i32, String, String), what: &str) -> String {
    assert_eq!(code, 0, "{what}: exit {code}\nstdout: {out}\nstderr: {err}");
    out
}

fn env(pairs: &[(&str, &str)]) -> Vec<(String, String)> {
    pairs
        .iter()
        .map(|(k, v)| ((*k).to_owned(), (*v).to_owned()))
        .collect()
}

/// `nexus hub client-config CLIENT --url URL --json [extra…]`.
async fn client_config(client: &str, extra: &[&str], vars: &[(&str, &str)]) -> Value {
    let mut args = vec!["hub", "client-config", client, "--url", URL, "--json"];
    args.extend_from_slice(extra);
    let out = ok(nexus(&args, &env(vars)).await, client);
    serde_json::from_str(&out).unwrap_or_else(|e| panic!("{client}: not JSON ({e}): {out}"))
}

/// The words a POSIX shell makes of `line` (after its first), with `NEXUS_TOKEN` set: a
/// placeholder the shell expanded would show.
fn shell_words(line: &str) -> Vec<String> {
    let (_, rest) = line.split_once(' ').expect("a command with arguments");
    let out = std::process::Command::new("sh")
        .arg("-c")
        .arg(format!("printf '%s\\n' {rest}"))
        .env("NEXUS_TOKEN", "expanded-by-the-shell")
        .output()
        .expect("run sh");
    assert!(out.status.success(), "sh: {line}");
    String::from_utf8(out.stdout)
        .expect("utf-8")
        .lines()
        .map(str::to_owned)
        .collect()
}

fn vscode_schema() -> (boon::Schemas, boon::SchemaIndex) {
    let path = Path::new(env!("CARGO_MANIFEST_DIR")).join("tests/fixtures/vscode-mcp.schema.json");
    let schema: Value =
        serde_json::from_str(&std::fs::read_to_string(path).expect("schema")).expect("JSON");
    let mut compiler = boon::Compiler::new();
    let mut schemas = boon::Schemas::new();
    compiler
        .add_resource("urn:vscode-mcp", schema)
        .expect("resource");
    let index = compiler
        .compile("urn:vscode-mcp", &mut schemas)
        .expect("a valid schema");
    (schemas, index)
}

#[tokio::test]
async fn every_client_configuration_parses_as_that_client_reads_it() {
    let (schemas, vscode) = vscode_schema();
    for (header, name, value, placeholder_value) in [
        (
            "authorization",
            "Authorization",
            "Bearer sk-embedded",
            "Bearer ",
        ),
        ("x-nexus-api-key", "X-Nexus-API-Key", "sk-embedded", ""),
    ] {
        let flags = ["--header", header];
        let token = [("NEXUS_TOKEN", "sk-embedded")];

        // Claude Code: one shell command; the shell must leave the placeholder alone.
        let c = client_config("claude-code", &flags, &[]).await;
        assert_eq!(
            (c["format"].as_str(), c["token"].as_str()),
            (Some("shell"), Some("env"))
        );
        let text = c["text"].as_str().expect("text");
        assert!(!text.contains('\n'), "one line: {text}");
        let words = shell_words(text);
        let argv: Vec<String> = c["config"]["argv"]
            .as_array()
            .expect("argv")
            .iter()
            .map(|a| a.as_str().expect("string").to_owned())
            .collect();
        assert_eq!(argv[0], "claude");
        assert_eq!(
            words,
            argv[1..],
            "the printed command is the structured one"
        );
        let at = |flag: &str| {
            words
                .iter()
                .position(|w| w == flag)
                .map(|i| words[i + 1].clone())
        };
        assert_eq!(words[..2], ["mcp", "add"]);
        assert_eq!(at("--transport").as_deref(), Some("http"));
        assert!(words.contains(&URL.to_owned()), "{words:?}");
        assert_eq!(
            at("--header"),
            Some(format!("{name}: {placeholder_value}${{NEXUS_TOKEN}}")),
            "{words:?}"
        );

        // Codex: ~/.codex/config.toml, [mcp_servers.<name>], the token from a variable.
        let c = client_config("codex", &flags, &token).await;
        assert_eq!(c["token"], "env");
        let doc: toml::Table = toml::from_str(c["text"].as_str().expect("text")).expect("TOML");
        let server = doc["mcp_servers"]["nexus-hub"].as_table().expect("table");
        assert_eq!(server["url"].as_str(), Some(URL));
        match header {
            "authorization" => {
                assert_eq!(server["bearer_token_env_var"].as_str(), Some("NEXUS_TOKEN"));
                assert_eq!(server.len(), 2, "{server:?}");
            }
            _ => {
                let h = server["env_http_headers"]
                    .as_table()
                    .expect("env_http_headers");
                assert_eq!(h[name].as_str(), Some("NEXUS_TOKEN"));
                assert_eq!(server.len(), 2, "{server:?}");
            }
        }
        assert!(
            !c["text"]
                .as_str()
                .unwrap_or_default()
                .contains("sk-embedded")
        );

        // Cursor: mcp.json, mcpServers.<name>.url and headers with ${env:VAR}.
        let c = client_config("cursor", &flags, &token).await;
        let doc: Value = serde_json::from_str(c["text"].as_str().expect("text")).expect("JSON");
        let server = &doc["mcpServers"]["nexus-hub"];
        assert_eq!(server["url"], URL);
        assert_eq!(
            server["headers"][name],
            format!("{placeholder_value}${{env:NEXUS_TOKEN}}")
        );
        assert_eq!(server.as_object().map(|o| o.len()), Some(2), "{server}");

        // VS Code: mcp.json against its schema; the token asked for through an input.
        let c = client_config("vscode", &flags, &token).await;
        assert_eq!(c["token"], "prompt");
        let doc: Value = serde_json::from_str(c["text"].as_str().expect("text")).expect("JSON");
        if let Err(e) = schemas.validate(&doc, vscode) {
            panic!("VS Code's schema refuses {doc}: {e}");
        }
        let server = &doc["servers"]["nexus-hub"];
        assert_eq!(
            (server["type"].as_str(), server["url"].as_str()),
            (Some("http"), Some(URL))
        );
        let h = server["headers"][name].as_str().expect("the header");
        let id = h
            .strip_prefix(placeholder_value)
            .and_then(|h| h.strip_prefix("${input:"))
            .and_then(|h| h.strip_suffix('}'))
            .expect("an input variable");
        let input = doc["inputs"]
            .as_array()
            .and_then(|a| a.iter().find(|i| i["id"] == id))
            .expect("the input it names");
        assert_eq!(
            (input["type"].as_str(), input["password"].as_bool()),
            (Some("promptString"), Some(true))
        );

        // Goose: config.yaml, extensions.<name>, streamable_http with the header.
        let c = client_config("goose", &flags, &token).await;
        assert_eq!(c["token"], "embedded");
        let doc: Value = serde_saphyr::from_str(c["text"].as_str().expect("text")).expect("YAML");
        let ext = &doc["extensions"]["nexus-hub"];
        assert_eq!(ext["type"], "streamable_http");
        assert_eq!(ext["name"], "nexus-hub");
        assert_eq!(ext["uri"], URL);
        assert_eq!(ext["enabled"], true);
        assert_eq!(ext["headers"][name], value);

        // Claude Desktop: mcp-remote through npx, the header from its env.
        let c = client_config("claude-desktop", &flags, &token).await;
        let doc: Value = serde_json::from_str(c["text"].as_str().expect("text")).expect("JSON");
        let server = &doc["mcpServers"]["nexus-hub"];
        assert_eq!(server["command"], "npx");
        let args: Vec<&str> = server["args"]
            .as_array()
            .expect("args")
            .iter()
            .filter_map(Value::as_str)
            .collect();
        assert_eq!(
            args,
            [
                "-y",
                "mcp-remote",
                URL,
                "--header",
                &format!("{name}:${{NEXUS_AUTH_HEADER}}")
            ]
        );
        assert_eq!(server["env"]["NEXUS_AUTH_HEADER"], value);
    }

    // Plain http beyond this machine: mcp-remote must be told, and the output warns.
    let out = ok(
        nexus(
            &[
                "hub",
                "client-config",
                "claude-desktop",
                "--url",
                "http://hub.lan:8081",
                "--json",
            ],
            &env(&[("NEXUS_TOKEN", "sk-x")]),
        )
        .await,
        "claude-desktop over http",
    );
    let c: Value = serde_json::from_str(&out).expect("JSON");
    let args = c["config"]["mcpServers"]["nexus-hub"]["args"].to_string();
    assert!(
        args.contains("http://hub.lan:8081/mcp") && args.contains("--allow-http"),
        "{args}"
    );

    // Clients that hold the token need it; nothing is printed without it.
    let (code, out, err) = nexus(&["hub", "client-config", "goose", "--url", URL], &[]).await;
    assert_eq!(code, 1, "{out}{err}");
    assert!(out.is_empty() && err.contains("NEXUS_TOKEN"), "{err}");
    // Bad input is refused before anything is printed.
    for bad in [
        &["hub", "client-config", "codex", "--url", "ftp://x"][..],
        &[
            "hub",
            "client-config",
            "codex",
            "--url",
            URL,
            "--server-name",
            "a b",
        ],
        &[
            "hub",
            "client-config",
            "codex",
            "--url",
            URL,
            "--token-env",
            "A-B",
        ],
        &["hub", "client-config", "zed", "--url", URL],
        &["hub", "client-config", "codex"],
    ] {
        let (code, out, _) = nexus(bad, &[]).await;
        assert_eq!(code, 2, "{bad:?}: {out}");
        assert!(out.is_empty(), "{bad:?}: {out}");
    }
}

/// A fresh embedded hub and the environment its admin.env gives an operator.
async fn embedded(tmp: &Path) -> (HubUp, Vec<(String, String)>) {
    let data = tmp.join("data");
    let hub = HubUp::start(&data, tmp).await;
    // The frontend may still be starting once nexusd is ready.
    let mcp_health = format!("http://127.0.0.1:{}/health", hub.mcp_port);
    let client = reqwest::Client::new();
    for _ in 0..300 {
        if client
            .get(&mcp_health)
            .send()
            .await
            .is_ok_and(|r| r.status().is_success())
        {
            break;
        }
        tokio::time::sleep(std::time::Duration::from_millis(100)).await;
    }
    let text = std::fs::read_to_string(data.join("admin.env")).expect("admin.env");
    (hub, parse_admin_env(&text))
}

fn var<'a>(env: &'a [(String, String)], k: &str) -> &'a str {
    env.iter()
        .find(|(n, _)| n == k)
        .map(|(_, v)| v.as_str())
        .unwrap_or_else(|| panic!("{k} in admin.env"))
}

/// Runs `script` in sh with `home` as HOME and Claude Code on PATH; returns its stdout.
async fn claude_sh(claude: &Path, home: &Path, script: &str) -> String {
    common::claude::run(claude, home, Path::new("sh"), &["-c", script], script).await
}

/// The shell lines of `token create --client claude-code` output: `export …` and the
/// `claude mcp add …` command, as an operator pastes them.
fn pasted(out: &str) -> String {
    let lines: Vec<&str> = out
        .lines()
        .filter(|l| l.starts_with("export ") || l.starts_with("claude "))
        .collect();
    assert_eq!(lines.len(), 2, "an export and a command:\n{out}");
    lines.join("\n")
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn claude_code_connects_with_the_printed_command() {
    let Some(claude) = claude_code() else { return };
    let tmp = tempfile::tempdir().expect("tempdir");
    let (_hub, admin) = embedded(tmp.path()).await;
    let home = tmp.path().join("home");
    std::fs::create_dir_all(&home).expect("home");

    let bearer = pasted(&ok(
        nexus(
            &[
                "hub",
                "token",
                "create",
                "--name",
                "cc",
                "--zone",
                "default",
                "--client",
                "claude-code",
            ],
            &admin,
        )
        .await,
        "token create --client claude-code",
    ));
    let key = pasted(&ok(
        nexus(
            &[
                "hub",
                "token",
                "create",
                "--name",
                "cc-key",
                "--zone",
                "default",
                "--client",
                "claude-code",
                "--header",
                "x-nexus-api-key",
                "--token-env",
                "NEXUS_KEY_TOKEN",
                "--server-name",
                "nexus-hub-key",
            ],
            &admin,
        )
        .await,
        "token create --client claude-code --header x-nexus-api-key",
    ));
    // What the operator pastes, then what Claude Code says.
    let exports: String = format!("{bearer}\n{key}")
        .lines()
        .filter(|l| l.starts_with("export "))
        .collect::<Vec<_>>()
        .join("\n");
    claude_sh(&claude, &home, &bearer).await;
    claude_sh(&claude, &home, &key).await;
    let stored = std::fs::read_to_string(home.join(".claude.json")).expect(".claude.json");
    assert!(
        !stored.contains(var(&admin, "NEXUS_API_KEY")) && !stored.contains("sk-"),
        "the configuration holds no token"
    );
    let list = claude_sh(&claude, &home, &format!("{exports}\nclaude mcp list")).await;
    for server in ["nexus-hub", "nexus-hub-key"] {
        let l = listed(&list, server);
        assert!(l.contains("✔ Connected"), "{l}");
        assert!(l.contains(var(&admin, "NEXUS_MCP_URL")), "{l}");
    }

    // Revoked: Claude Code reports the hub's 401.
    ok(
        nexus(&["hub", "token", "revoke", "cc"], &admin).await,
        "revoke",
    );
    let list = claude_sh(&claude, &home, &format!("{exports}\nclaude mcp list")).await;
    let l = listed(&list, "nexus-hub");
    assert!(!l.contains("✔ Connected") && l.contains("401"), "{l}");
    assert!(
        listed(&list, "nexus-hub-key").contains("✔ Connected"),
        "{list}"
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn status_of_an_embedded_hub_shows_live_traffic() {
    let tmp = tempfile::tempdir().expect("tempdir");
    let (_hub, admin) = embedded(tmp.path()).await;
    let before: Value = serde_json::from_str(&ok(
        nexus(&["hub", "status", "--json"], &admin).await,
        "status",
    ))
    .expect("JSON");
    assert_eq!(before["redis"], "n/a");
    assert_eq!(before["connections"], 0, "{before}");
    assert_eq!(before["qps_5m"], 0.0, "{before}");

    let created: Value = serde_json::from_str(&ok(
        nexus(
            &[
                "hub", "token", "create", "--name", "agent", "--zone", "default", "--json",
            ],
            &admin,
        )
        .await,
        "token create",
    ))
    .expect("JSON");
    let token = created["token"].as_str().expect("token");
    let url = var(&admin, "NEXUS_MCP_URL");

    // `--client … --json`: the token and the client's configuration in one object, the
    // configuration naming this hub (NEXUS_MCP_URL from admin.env) and not the token.
    let both: Value = serde_json::from_str(&ok(
        nexus(
            &[
                "hub", "token", "create", "--name", "codex", "--zone", "default", "--client",
                "codex", "--json",
            ],
            &admin,
        )
        .await,
        "token create --client codex --json",
    ))
    .expect("JSON");
    assert!(
        both["token"].as_str().is_some_and(|t| t.starts_with("sk-")),
        "{both}"
    );
    let text = both["client_config"]["text"].as_str().expect("text");
    let doc: toml::Table = toml::from_str(text).expect("TOML");
    assert_eq!(doc["mcp_servers"]["nexus-hub"]["url"].as_str(), Some(url));
    assert!(
        !text.contains(both["token"].as_str().unwrap_or("sk-")),
        "{text}"
    );
    for _ in 0..3 {
        common::mcp::open_session(url, &common::mcp::bearer(token), "status-test").await;
    }
    // The audit writer counts a batch within ~10 ms; allow for a slow machine.
    let mut last = Value::Null;
    for _ in 0..50 {
        last = serde_json::from_str(&ok(
            nexus(&["hub", "status", "--json", "--detail"], &admin).await,
            "status --detail",
        ))
        .expect("JSON");
        if last["connections"].as_u64().unwrap_or(0) >= 1 {
            break;
        }
        tokio::time::sleep(std::time::Duration::from_millis(100)).await;
    }
    assert!(
        last["connections"].as_u64().is_some_and(|c| c >= 1),
        "{last}"
    );
    assert!(last["qps_5m"].as_f64().is_some_and(|q| q > 0.0), "{last}");
    let zones = last["detail"]["zones"].as_array().expect("zones");
    assert!(zones.iter().any(|z| z["zone"] == "default"), "{last}");
    let seen = last["detail"]["tokens"].as_array().expect("tokens");
    assert!(
        seen.iter()
            .any(|t| t["name"] == "agent" && t["key_id"] == created["key_id"]),
        "{last}"
    );
    // Rejections by tier come from the embedded nexusd's own counters.
    let limited: Value = serde_json::from_str(&ok(
        nexus(
            &[
                "hub",
                "token",
                "create",
                "--name",
                "slow",
                "--zone",
                "default",
                "--rate-limit",
                "1/m",
                "--json",
            ],
            &admin,
        )
        .await,
        "token create --rate-limit",
    ))
    .expect("JSON");
    let slow = common::mcp::bearer(limited["token"].as_str().expect("token"));
    let body = common::mcp::initialize_body("status-test");
    let codes: Vec<u16> = futures_util::future::join_all(
        (0..2).map(|_| common::mcp::send(common::mcp::post(url, Some(&slow), &body))),
    )
    .await
    .iter()
    .map(|r| r.status().as_u16())
    .collect();
    assert!(codes.contains(&429), "{codes:?}");
    let detail: Value = serde_json::from_str(&ok(
        nexus(&["hub", "status", "--json", "--detail"], &admin).await,
        "status --detail",
    ))
    .expect("JSON");
    assert!(
        detail["detail"]["rate_limited"]["custom"]
            .as_u64()
            .is_some_and(|n| n >= 1),
        "{detail}"
    );

    // Over MCP with the admin token (`--remote`), the hub answers with the same figures.
    let remote: Value = serde_json::from_str(&ok(
        nexus(
            &[
                "hub",
                "status",
                "--json",
                "--remote",
                url,
                "--admin-token",
                var(&admin, "NEXUS_API_KEY"),
            ],
            &[],
        )
        .await,
        "status --remote",
    ))
    .expect("JSON");
    assert!(
        remote["connections"].as_u64().is_some_and(|c| c >= 1),
        "{remote}"
    );
    assert!(
        remote["qps_5m"].as_f64().is_some_and(|q| q > 0.0),
        "{remote}"
    );

    // The default text mode shows the same.
    let text = ok(nexus(&["hub", "status"], &admin).await, "status");
    let conns = text
        .lines()
        .find_map(|l| l.strip_prefix("connections: "))
        .expect("connections line");
    assert!(conns.parse::<u64>().is_ok_and(|c| c >= 1), "{text}");
    assert!(
        !text.contains("qps (5m): n/a") && !text.contains("qps (5m): 0.00\n"),
        "{text}"
    );
}

/// `hub doctor --json` with `env`: (exit code, the checks by name).
async fn doctor(args: &[&str], env: &[(String, String)]) -> (i32, Value) {
    let mut all = vec!["hub", "doctor", "--json"];
    all.extend_from_slice(args);
    let (code, out, err) = nexus(&all, env).await;
    let report: Value =
        serde_json::from_str(&out).unwrap_or_else(|e| panic!("not JSON ({e}): {out}\n{err}"));
    let by_name: serde_json::Map<String, Value> = report["checks"]
        .as_array()
        .expect("checks")
        .iter()
        .map(|c| (c["name"].as_str().expect("name").to_owned(), c.clone()))
        .collect();
    assert_eq!(report["ok"], code == 0, "{report}");
    (code, Value::Object(by_name))
}

#[track_caller]
fn status_of(checks: &Value, name: &str) -> String {
    checks[name]["status"]
        .as_str()
        .unwrap_or_else(|| panic!("no {name}: {checks}"))
        .to_owned()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn doctor_names_each_failure() {
    let tmp = tempfile::tempdir().expect("tempdir");
    let (hub, admin) = embedded(tmp.path()).await;

    // Healthy: every check passes (the metadata may only warn: the hub names itself as
    // its authorization server).
    let (code, c) = doctor(&[], &admin).await;
    assert_eq!(code, 0, "{c}");
    for name in [
        "reachable",
        "tls",
        "host",
        "token",
        "initialize",
        "tools",
        "ratelimit",
    ] {
        assert_eq!(status_of(&c, name), "ok", "{name}: {c}");
    }
    assert_ne!(status_of(&c, "metadata"), "fail", "{c}");
    assert!(
        c["tools"]["detail"]
            .as_str()
            .is_some_and(|d| d.contains("tools")),
        "{c}"
    );

    // A frontend whose Host allowlist does not name the host the URL uses.
    let port = free_port();
    let mut cmd = mcp_serve_cmd(&hub.rpc_base, port);
    cmd.env("NEXUS_MCP_ALLOWED_HOSTS", "hub.example.com");
    let (_front, base) = start_frontend("wrong-hosts", cmd, tmp.path(), port).await;
    let url = format!("{base}/mcp");
    let (code, c) = doctor(&["--url", &url], &admin).await;
    assert_eq!(code, 1, "{c}");
    assert_eq!(status_of(&c, "reachable"), "ok", "{c}");
    assert_eq!(status_of(&c, "host"), "fail", "{c}");
    assert!(
        c["host"]["detail"]
            .as_str()
            .is_some_and(|d| d.contains("refuses Host")),
        "{c}"
    );
    assert!(
        c["host"]["fix"]
            .as_str()
            .is_some_and(|f| f.contains("NEXUS_MCP_ALLOWED_HOSTS")),
        "{c}"
    );
    assert_eq!(status_of(&c, "initialize"), "skip", "{c}");

    // A revoked token: refused with 401, named as such.
    let created: Value = serde_json::from_str(&ok(
        nexus(
            &[
                "hub", "token", "create", "--name", "gone", "--zone", "default", "--json",
            ],
            &admin,
        )
        .await,
        "token create",
    ))
    .expect("JSON");
    ok(
        nexus(&["hub", "token", "revoke", "gone"], &admin).await,
        "revoke",
    );
    let mut with_token = admin.clone();
    with_token.push((
        "NEXUS_TOKEN".into(),
        created["token"].as_str().expect("token").into(),
    ));
    let (code, c) = doctor(&[], &with_token).await;
    assert_eq!(code, 1, "{c}");
    assert_eq!(status_of(&c, "host"), "ok", "{c}");
    assert_eq!(status_of(&c, "initialize"), "fail", "{c}");
    let d = c["initialize"]["detail"].as_str().unwrap_or_default();
    assert!(d.contains("401") && d.contains("revoked"), "{c}");
    assert!(
        c["initialize"]["fix"]
            .as_str()
            .is_some_and(|f| f.contains("token create")),
        "{c}"
    );

    // A stopped hub: nothing answers.
    drop(hub);
    let (code, c) = doctor(&[], &admin).await;
    assert_eq!(code, 1, "{c}");
    assert_eq!(status_of(&c, "reachable"), "fail", "{c}");
    assert!(
        c["reachable"]["detail"]
            .as_str()
            .is_some_and(|d| d.contains("cannot connect")),
        "{c}"
    );
    for name in ["host", "initialize", "tools"] {
        assert_eq!(status_of(&c, name), "skip", "{name}: {c}");
    }
}

/// A CA (its certificate at `<dir>/ca.pem`) and a server certificate it signed for
/// localhost and 127.0.0.1: (ca, cert, key).
fn test_pki(dir: &Path) -> (PathBuf, PathBuf, PathBuf) {
    use rcgen::{
        BasicConstraints, CertificateParams, DnType, ExtendedKeyUsagePurpose, IsCa, Issuer,
        KeyPair, KeyUsagePurpose,
    };
    let mut p = CertificateParams::new(Vec::<String>::new()).expect("ca params");
    p.is_ca = IsCa::Ca(BasicConstraints::Unconstrained);
    p.distinguished_name
        .push(DnType::CommonName, "doctor test CA");
    p.key_usages = vec![KeyUsagePurpose::KeyCertSign, KeyUsagePurpose::CrlSign];
    let ca_key = KeyPair::generate().expect("ca key");
    let ca_cert = p.self_signed(&ca_key).expect("ca cert");
    let ca = dir.join("ca.pem");
    std::fs::write(&ca, ca_cert.pem()).expect("write ca");
    let issuer = Issuer::new(p, ca_key);
    let mut leaf = CertificateParams::new(vec!["localhost".to_owned(), "127.0.0.1".to_owned()])
        .expect("leaf params");
    leaf.distinguished_name
        .push(DnType::CommonName, "localhost");
    leaf.extended_key_usages = vec![ExtendedKeyUsagePurpose::ServerAuth];
    let key = KeyPair::generate().expect("leaf key");
    let cert = leaf.signed_by(&key, &issuer).expect("sign leaf");
    let (c, k) = (dir.join("server.pem"), dir.join("server-key.pem"));
    std::fs::write(&c, cert.pem()).expect("write cert");
    std::fs::write(&k, key.serialize_pem()).expect("write key");
    (ca, c, k)
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn doctor_checks_tls() {
    let tmp = tempfile::tempdir().expect("tempdir");
    let (hub, admin) = embedded(tmp.path()).await;
    let (ca, cert, key) = test_pki(tmp.path());
    let port = free_port();
    let mut cmd = mcp_serve_cmd(&hub.rpc_base, port);
    cmd.env("NEXUS_MCP_TLS_CERT", &cert)
        .env("NEXUS_MCP_TLS_KEY", &key);
    let front = common::procs::Proc::spawn("tls-frontend", cmd, tmp.path());
    let deadline = std::time::Instant::now() + std::time::Duration::from_secs(30);
    while tokio::net::TcpStream::connect(("127.0.0.1", port))
        .await
        .is_err()
    {
        assert!(
            std::time::Instant::now() < deadline,
            "TLS frontend not listening in 30 s:\n{}",
            front.log_text()
        );
        tokio::time::sleep(std::time::Duration::from_millis(100)).await;
    }
    let url = format!("https://localhost:{port}/mcp");
    let ca = ca.to_str().expect("utf-8 path");

    // Trusting the CA that signed it: the certificate checks out, and so does the rest.
    let (code, c) = doctor(&["--url", &url, "--ca-file", ca], &admin).await;
    assert_eq!(code, 0, "{c}");
    assert_eq!(status_of(&c, "tls"), "ok", "{c}");
    assert_eq!(status_of(&c, "initialize"), "ok", "{c}");

    // Not trusting it: the handshake fails, named as TLS, with the way out.
    let (code, c) = doctor(&["--url", &url], &admin).await;
    assert_eq!(code, 1, "{c}");
    assert_eq!(status_of(&c, "tls"), "fail", "{c}");
    assert!(
        c["tls"]["detail"]
            .as_str()
            .is_some_and(|d| d.contains("TLS handshake")),
        "{c}"
    );
    assert!(
        c["tls"]["fix"]
            .as_str()
            .is_some_and(|f| f.contains("--ca-file")),
        "{c}"
    );
    assert_eq!(status_of(&c, "initialize"), "skip", "{c}");
}
