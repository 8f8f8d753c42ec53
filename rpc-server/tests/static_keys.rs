//! The static key file (SPEC §10, seed `001`) in real `nexusd` processes:
//! - the seed's bare dict and hashed keys both verify, a wrong key is 401, a plaintext key
//!   is warned about by user id and no key text ever reaches the server's output;
//! - zones and permissions are enforced like a database token's; a deleted zone or a
//!   disabled subject refuses the key on the next request;
//! - SIGHUP: a key added works, a key removed is 401 on the next request, a broken file or
//!   one made readable by others keeps the old set (and says why); mode 0644 is refused at
//!   startup;
//! - `X-API-Key` carries a credential like the other headers, and two headers naming two
//!   different credentials are refused;
//! - `[auth]` in the TOML configuration file builds the same chain.

use nexus_providers::static_keys::hashed_form;
use std::os::unix::fs::PermissionsExt;
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

const ADMIN: &str = "sk-admin-plaintext-key-0001";
const BOB: &str = "sk-bob-hashed-key-0000000001";
const CAROL: &str = "sk-carol-reader-key-00000001";
const DAVE: &str = "sk-dave-added-by-reload-0001";
const EVE: &str = "sk-eve-in-a-world-readable-01";
const FRANK: &str = "sk-frank-a-subject-key-00001";
const ALL_KEYS: [&str; 6] = [ADMIN, BOB, CAROL, DAVE, EVE, FRANK];

struct Nexusd {
    child: Child,
    base: String,
    log: PathBuf,
}

impl Drop for Nexusd {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

impl Nexusd {
    fn log(&self) -> String {
        std::fs::read_to_string(&self.log).unwrap_or_default()
    }

    fn hup(&self) {
        let ok = Command::new("kill")
            .args(["-HUP", &self.child.id().to_string()])
            .status()
            .expect("kill -HUP")
            .success();
        assert!(ok, "kill -HUP failed");
    }

    /// Waits (bounded) until `needle` occurs `n` times in the log.
    async fn logged(&self, needle: &str, n: usize) {
        let deadline = Instant::now() + Duration::from_secs(30);
        while self.log().matches(needle).count() < n {
            assert!(
                Instant::now() < deadline,
                "never logged {needle:?} x{n}: {}",
                self.log()
            );
            tokio::time::sleep(Duration::from_millis(20)).await;
        }
    }
}

fn nexusd_cmd(port: u16, data: &Path) -> Command {
    let mut cmd = Command::new(env!("CARGO_BIN_EXE_nexusd"));
    for (k, _) in std::env::vars_os() {
        if let Some(k) = k.to_str()
            && (k.starts_with("NEXUS_") || k == "RUST_LOG")
        {
            cmd.env_remove(k);
        }
    }
    cmd.args(["--host", "127.0.0.1", "--port", &port.to_string()])
        .arg("--data-dir")
        .arg(data)
        .env("RUST_LOG", "info")
        .stdin(Stdio::null());
    cmd
}

async fn start(mut cmd: Command, port: u16, logs: &Path) -> Nexusd {
    let log = logs.join(format!("nexusd-{port}.log"));
    let file = std::fs::File::create(&log).expect("log");
    let child = cmd
        .stdout(file.try_clone().expect("log"))
        .stderr(file)
        .spawn()
        .expect("spawn nexusd");
    let mut p = Nexusd {
        child,
        base: format!("http://127.0.0.1:{port}"),
        log,
    };
    let client = reqwest::Client::new();
    let deadline = Instant::now() + Duration::from_secs(60);
    loop {
        if let Some(st) = p.child.try_wait().expect("try_wait") {
            panic!("nexusd exited ({st}): {}", p.log());
        }
        if client
            .get(format!("{}/healthz/live", p.base))
            .send()
            .await
            .is_ok_and(|r| r.status().is_success())
        {
            return p;
        }
        assert!(Instant::now() < deadline, "nexusd never came up");
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
}

fn free_port() -> u16 {
    let l = std::net::TcpListener::bind("127.0.0.1:0").expect("bind");
    l.local_addr().expect("addr").port()
}

fn write(p: &Path, text: &str, mode: u32) {
    std::fs::write(p, text).expect("write");
    std::fs::set_permissions(p, std::fs::Permissions::from_mode(mode)).expect("chmod");
}

/// A JSON-RPC call with the given credential headers: (HTTP status, body).
async fn call(
    base: &str,
    headers: &[(&str, &str)],
    method: &str,
    params: serde_json::Value,
) -> (u16, serde_json::Value) {
    let mut req = reqwest::Client::new()
        .post(format!("{base}/api/nfs/{method}"))
        .json(&serde_json::json!({"jsonrpc": "2.0", "id": 1, "method": method, "params": params}));
    for (k, v) in headers {
        req = req.header(*k, *v);
    }
    let r = req.send().await.expect("request");
    let status = r.status().as_u16();
    let body = r.json().await.unwrap_or(serde_json::Value::Null);
    (status, body)
}

async fn as_key(
    base: &str,
    key: &str,
    method: &str,
    params: serde_json::Value,
) -> (u16, serde_json::Value) {
    let bearer = format!("Bearer {key}");
    call(base, &[("authorization", &bearer)], method, params).await
}

async fn whoami(base: &str, key: &str) -> u16 {
    as_key(base, key, "whoami", serde_json::json!({})).await.0
}

/// An admin call that must succeed.
async fn admin(base: &str, method: &str, params: serde_json::Value) {
    let (s, b) = as_key(base, ADMIN, method, params).await;
    assert!(s == 200 && b.get("result").is_some(), "{method}: {s} {b}");
}

/// The seed's bare dict (static alone beside database), plus our fields; `extra` appended.
fn auth_yaml(extra: &str) -> String {
    format!(
        r#"api_keys:
  {ADMIN}:
    user_id: "root-admin"
    tenant_id: null
    is_admin: true
    metadata:
      email: "admin@example.com"
  "{bob}":
    user_id: bob
    zones: "eng:r"
  "{carol}":
    user_id: carol
    zones: {{eng: rw}}
    permissions: [READ]
  "{frank}":
    user_id: frank
    zones: ops:rw
{extra}"#,
        bob = hashed_form(BOB),
        carol = hashed_form(CAROL),
        frank = hashed_form(FRANK),
    )
}

#[tokio::test]
async fn static_keys_verify_enforce_zones_and_reload_on_sighup() {
    let tmp = tempfile::tempdir().expect("tempdir");
    let auth = tmp.path().join("auth.yaml");
    write(&auth, &auth_yaml(""), 0o600);
    let port = free_port();
    let mut cmd = nexusd_cmd(port, &tmp.path().join("data"));
    cmd.args(["--auth-type", "database,static", "--auth-config"])
        .arg(&auth);
    let p = start(cmd, port, tmp.path()).await;
    let base = p.base.clone();

    // The admin key is plaintext, the others hashed; both forms verify.
    admin(
        &base,
        "hub_admin_zone_create",
        serde_json::json!({"name": "eng"}),
    )
    .await;
    admin(
        &base,
        "hub_admin_zone_create",
        serde_json::json!({"name": "ops"}),
    )
    .await;
    assert_eq!(whoami(&base, BOB).await, 200, "hashed key");
    assert_eq!(whoami(&base, CAROL).await, 200);
    assert_eq!(
        whoami(&base, "sk-bob-hashed-key-0000000002").await,
        401,
        "wrong key"
    );
    assert_eq!(whoami(&base, DAVE).await, 401, "not in the file yet");
    let (_, me) = as_key(&base, BOB, "whoami", serde_json::json!({})).await;
    assert_eq!(me["result"]["user_id"], "bob", "{me}");

    // Zones and permissions: bob holds eng:r, carol eng:rw capped to r by READ.
    for key in [BOB, CAROL] {
        let (s, b) = as_key(
            &base,
            key,
            "write",
            serde_json::json!({"path": "/x.md", "content": "no"}),
        )
        .await;
        assert!(
            b.get("error").is_some() && b.get("result").is_none(),
            "{s} {b}"
        );
        assert!(
            b["error"].to_string().contains("eng"),
            "names the zone: {b}"
        );
    }
    let (_, b) = as_key(&base, BOB, "list", serde_json::json!({"path": "/"})).await;
    assert!(b.get("result").is_some(), "bob can read eng: {b}");

    // X-API-Key works like the other headers; two different credentials are refused.
    let (s, _) = call(
        &base,
        &[("x-api-key", BOB)],
        "whoami",
        serde_json::json!({}),
    )
    .await;
    assert_eq!(s, 200, "X-API-Key");
    let (s, _) = call(
        &base,
        &[
            ("x-api-key", BOB),
            ("authorization", &format!("Bearer {CAROL}")),
        ],
        "whoami",
        serde_json::json!({}),
    )
    .await;
    assert_eq!(s, 401, "two credentials");
    let (s, _) = call(
        &base,
        &[("x-api-key", BOB), ("x-nexus-api-key", BOB)],
        "whoami",
        serde_json::json!({}),
    )
    .await;
    assert_eq!(s, 200, "the same credential twice is one credential");

    // A subject named by a key's user id binds it: disabling the subject refuses the key.
    admin(
        &base,
        "admin_create_user",
        serde_json::json!({"subject_id": "frank", "no_key": true}),
    )
    .await;
    assert_eq!(whoami(&base, FRANK).await, 200);
    admin(
        &base,
        "admin_set_user_state",
        serde_json::json!({"subject_id": "frank", "disabled": true}),
    )
    .await;
    assert_eq!(
        whoami(&base, FRANK).await,
        401,
        "a disabled subject's static key"
    );

    // SIGHUP with carol removed and dave added.
    let without_carol = auth_yaml(&format!(
        "  \"{}\":\n    user_id: dave\n    is_admin: true\n",
        hashed_form(DAVE)
    ))
    .replace(
        &format!("\"{}\"", hashed_form(CAROL)),
        &format!("\"{}\"", hashed_form("sk-nobody-has-this-key-01")),
    );
    write(&auth, &without_carol, 0o600);
    p.hup();
    p.logged("static keys reloaded", 1).await;
    assert_eq!(whoami(&base, DAVE).await, 200, "added by the reload");
    assert_eq!(
        whoami(&base, CAROL).await,
        401,
        "removed by the reload, at once"
    );
    assert_eq!(whoami(&base, BOB).await, 200, "kept");

    // A broken file keeps the old set, and the log says why.
    write(&auth, "api_keys:\n  [not yaml\n", 0o600);
    p.hup();
    p.logged("NOT reloaded", 1).await;
    assert_eq!(whoami(&base, BOB).await, 200, "old set kept");
    assert_eq!(whoami(&base, DAVE).await, 200, "old set kept");

    // A valid file readable by others is refused too.
    let with_eve = format!(
        "{without_carol}  \"{}\":\n    user_id: eve\n    is_admin: true\n",
        hashed_form(EVE)
    );
    write(&auth, &with_eve, 0o644);
    p.hup();
    p.logged("NOT reloaded", 2).await;
    assert_eq!(
        whoami(&base, EVE).await,
        401,
        "a world-readable file is not loaded"
    );
    assert_eq!(whoami(&base, BOB).await, 200, "old set kept");

    // A deleted zone refuses the keys that hold it, on the next request.
    admin(
        &base,
        "hub_admin_zone_delete",
        serde_json::json!({"name": "eng"}),
    )
    .await;
    assert_eq!(whoami(&base, BOB).await, 401, "zone deleted");

    let log = p.log();
    assert!(
        log.contains("plain text") && log.contains("root-admin"),
        "the plaintext key is warned about by user id: {log}"
    );
    assert!(log.contains("wider than 600"), "{log}");
    for k in ALL_KEYS {
        assert!(!log.contains(k), "a key reached the log: {log}");
    }
}

#[tokio::test]
async fn a_key_file_readable_by_others_is_refused_at_startup() {
    let tmp = tempfile::tempdir().expect("tempdir");
    let auth = tmp.path().join("auth.yaml");
    write(&auth, &auth_yaml(""), 0o644);
    let mut cmd = nexusd_cmd(free_port(), &tmp.path().join("data"));
    cmd.args(["--auth-type", "database,static", "--auth-config"])
        .arg(&auth);
    let out = cmd
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .output()
        .expect("run");
    assert!(!out.status.success(), "nexusd started");
    let err = String::from_utf8_lossy(&out.stderr);
    assert!(
        err.contains("wider than 600") && err.contains("chmod 600"),
        "{err}"
    );
    for k in ALL_KEYS {
        assert!(!err.contains(k), "{err}");
    }

    // A bad entry is refused at startup too, naming the user and not the key.
    write(
        &auth,
        &format!("api_keys:\n  {ADMIN}: {{user_id: Not-Valid, is_admin: true}}\n"),
        0o600,
    );
    let mut cmd = nexusd_cmd(free_port(), &tmp.path().join("data"));
    cmd.args(["--auth-type", "database,static", "--auth-config"])
        .arg(&auth);
    let out = cmd
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .output()
        .expect("run");
    assert!(!out.status.success(), "nexusd started");
    let err = String::from_utf8_lossy(&out.stderr);
    assert!(err.contains("Not-Valid") && !err.contains(ADMIN), "{err}");
}

#[tokio::test]
async fn the_config_files_auth_section_builds_the_chain() {
    let tmp = tempfile::tempdir().expect("tempdir");
    let toml = tmp.path().join("nexus-hub.toml");
    write(
        &toml,
        &format!(
            "[auth]\ntype = \"database,static\"\n[auth.static.api_keys.\"{}\"]\nuser_id = \"ops-admin\"\nis_admin = true\n",
            hashed_form(ADMIN)
        ),
        0o600,
    );
    let port = free_port();
    let mut cmd = nexusd_cmd(port, &tmp.path().join("data"));
    cmd.arg("--config").arg(&toml);
    let p = start(cmd, port, tmp.path()).await;
    assert_eq!(whoami(&p.base, ADMIN).await, 200, "inline [auth.static]");
    assert_eq!(whoami(&p.base, BOB).await, 401);
    drop(p);

    // `config = FILE` (relative to the configuration file); the flag beats the section.
    write(&tmp.path().join("auth.yaml"), &auth_yaml(""), 0o600);
    write(
        &toml,
        "[auth]\ntype = \"database,static\"\nconfig = \"auth.yaml\"\n",
        0o600,
    );
    let port = free_port();
    let mut cmd = nexusd_cmd(port, &tmp.path().join("data"));
    cmd.arg("--config").arg(&toml);
    let p = start(cmd, port, tmp.path()).await;
    assert_eq!(
        whoami(&p.base, ADMIN).await,
        200,
        "auth.yaml via [auth] config"
    );
    drop(p);
    let port = free_port();
    let mut cmd = nexusd_cmd(port, &tmp.path().join("data"));
    cmd.arg("--config")
        .arg(&toml)
        .args(["--auth-type", "database"]);
    let p = start(cmd, port, tmp.path()).await;
    assert_eq!(
        whoami(&p.base, ADMIN).await,
        401,
        "--auth-type wins over [auth]"
    );
}
