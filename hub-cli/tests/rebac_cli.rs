//! The operator guide's identity walkthrough (users, agent keys, groups, tuples: steps 2–5)
//! as an operator runs it: the real `nexus` binary against a real nexusd (`nexus serve`) and
//! MCP frontend (`nexus mcp serve`), on SQLite and on Postgres. The CLI's output has the
//! guide's shapes (✓/✗, "Save this API key for alice!", "Users:", "Permissions for …:"),
//! exits 0 / 1 (denied or failed) / 2 (malformed argument), and then an agent holding
//! alice's key sees through MCP exactly what the tuples allow in a `rebac` zone. `--remote`
//! (the admin MCP tools) prints what local mode prints.

use crate::common;

use common::procs::{
    HubUp, Proc, free_port, mcp_serve_cmd, parse_admin_env, run_nexus, serve_cmd, start_frontend,
    start_nexusd, wait_healthy,
};
use common::{
    Client, Era, connect, expect_any_error, expect_json, expect_ok, list_tools, try_call,
};
use rpc_server::db::Backend;
use rpc_server::testing::{TEST_SECRET, TestDb, poll_until};
use serde_json::{Value, json};
use std::collections::BTreeSet;
use std::time::Duration;

/// The identity cache TTL of the server: a change must reach it long before this.
const TTL_SECS: u64 = 60;
/// How long a CLI change may take to reach the running server: a twelfth of the TTL, so
/// only a working invalidation path (never the TTL backstop) can meet it.
const FRESH: Duration = Duration::from_secs(TTL_SECS / 12);

/// nexusd and the frontend as processes on one database, and the CLI's environment.
struct Stack {
    _procs: Vec<Proc>,
    rpc_base: String,
    mcp_url: String,
    env: Vec<(String, String)>,
    _db: Option<TestDb>,
    _tmp: tempfile::TempDir,
}

async fn stack(backend: Backend) -> Stack {
    let db = TestDb::new(backend).await;
    let tmp = tempfile::tempdir().expect("tempdir");
    let (rpc_port, mcp_port) = (free_port(), free_port());
    let mut cmd = serve_cmd(&db.url, &tmp.path().join("data"), rpc_port);
    cmd.env("NEXUS_AUTH_CACHE_TTL", TTL_SECS.to_string());
    let (rpc, rpc_base) = start_nexusd("nexusd", cmd, tmp.path(), rpc_port).await;
    let mut cmd = mcp_serve_cmd(&rpc_base, mcp_port);
    cmd.env("NEXUS_AUDIT_STDOUT", "false");
    let (fe, fe_base) = start_frontend("mcp-frontend", cmd, tmp.path(), mcp_port).await;
    let env = vec![
        ("NEXUS_DATABASE_URL".to_owned(), db.url.clone()),
        ("NEXUS_API_KEY_SECRET".to_owned(), TEST_SECRET.to_owned()),
    ];
    Stack {
        _procs: vec![rpc, fe],
        rpc_base,
        mcp_url: format!("{fe_base}/mcp"),
        env,
        _db: Some(db),
        _tmp: tmp,
    }
}

/// `nexus hub up` in a fresh data dir; the CLI's environment is its admin.env, as after
/// `source nexus-data/admin.env`.
async fn hub_up() -> Stack {
    let tmp = tempfile::tempdir().expect("tempdir");
    let data = tmp.path().join("nexus-data");
    let HubUp {
        proc: mut up,
        rpc_base,
        mcp_port,
    } = HubUp::start(&data, tmp.path()).await;
    wait_healthy(&format!("http://127.0.0.1:{mcp_port}/health"), &mut up).await;
    let env = parse_admin_env(&std::fs::read_to_string(data.join("admin.env")).expect("admin.env"));
    Stack {
        _procs: vec![up],
        rpc_base,
        mcp_url: format!("http://127.0.0.1:{mcp_port}/mcp"),
        env,
        _db: None,
        _tmp: tmp,
    }
}

struct Run {
    code: i32,
    out: String,
    err: String,
}

impl Stack {
    /// Runs `nexus <args>` with the CLI's environment.
    async fn nexus<S: AsRef<str> + std::fmt::Debug>(&self, args: &[S]) -> Run {
        let args: Vec<&str> = args.iter().map(AsRef::as_ref).collect();
        let (code, out, err) = run_nexus(&args, &self.env).await;
        Run { code, out, err }
    }

    /// `nexus <args>` that must exit `code`; its stdout.
    async fn exits<S: AsRef<str> + std::fmt::Debug>(&self, code: i32, args: &[S]) -> String {
        let r = self.nexus(args).await;
        assert_eq!(
            r.code, code,
            "nexus {args:?}: exit {}\nstdout: {}\nstderr: {}",
            r.code, r.out, r.err
        );
        if code == 0 {
            assert!(
                !r.err.contains("error"),
                "nexus {args:?} succeeded but wrote an error: {}",
                r.err
            );
        }
        r.out
    }

    async fn ok<S: AsRef<str> + std::fmt::Debug>(&self, args: &[S]) -> String {
        self.exits(0, args).await
    }

    /// A refused command: exit `code`, nothing on stdout, one clear line on stderr.
    async fn refused<S: AsRef<str> + std::fmt::Debug>(&self, code: i32, args: &[S], says: &str) {
        let r = self.nexus(args).await;
        assert_eq!(r.code, code, "nexus {args:?}: {} / {}", r.out, r.err);
        assert!(r.out.is_empty(), "nexus {args:?} printed {}", r.out);
        assert!(
            r.err.starts_with("error: ") && r.err.contains(says),
            "nexus {args:?}: stderr {:?} should say {says:?}",
            r.err
        );
        assert!(!r.err.contains("panicked"), "{}", r.err);
    }

    async fn tuple_count(&self) -> usize {
        let v: Value =
            serde_json::from_str(&self.ok(&["rebac", "list-tuples", "--json"][..]).await)
                .expect("list-tuples JSON");
        v["tuples"].as_array().expect("tuples").len()
    }

    /// `read` of `path` over the rpc-server's API with `token`: Ok(content) or the error.
    async fn read(&self, token: &str, path: &str) -> Result<String, Value> {
        let v: Value = common::http()
            .post(format!("{}/api/nfs/read", self.rpc_base))
            .bearer_auth(token)
            .json(&json!({"jsonrpc": "2.0", "id": 1, "method": "read", "params": {"path": path}}))
            .send()
            .await
            .expect("read")
            .json()
            .await
            .expect("read JSON");
        match v["result"]["content"].as_str() {
            Some(c) => Ok(c.to_owned()),
            None => Err(v["error"].clone()),
        }
    }

    /// `write` of `path` over the rpc-server's API with `token`: Ok or the error.
    async fn write(&self, token: &str, path: &str) -> Result<(), Value> {
        let v: Value = common::http()
            .post(format!("{}/api/nfs/write", self.rpc_base))
            .bearer_auth(token)
            .json(&json!({"jsonrpc": "2.0", "id": 1, "method": "write",
                          "params": {"path": path, "content": "x"}}))
            .send()
            .await
            .expect("write")
            .json()
            .await
            .expect("write JSON");
        if v.get("result").is_some() {
            Ok(())
        } else {
            Err(v["error"].clone())
        }
    }

    /// The rpc-server's answer to `whoami` with `token`: its HTTP status.
    async fn whoami_status(&self, token: &str) -> u16 {
        common::whoami_status(&self.rpc_base, token).await
    }
}

/// The raw key on a `✓ API key: sk-…` line.
fn api_key(out: &str) -> String {
    out.lines()
        .find_map(|l| l.strip_prefix("✓ API key: "))
        .unwrap_or_else(|| panic!("no API key line in {out}"))
        .trim()
        .to_owned()
}

fn lines(out: &str) -> Vec<&str> {
    out.lines().collect()
}

/// The bullet lines under a heading, as a set (the order is the store's).
fn bullets(out: &str, heading: &str) -> BTreeSet<String> {
    let mut it = out.lines();
    assert_eq!(it.next(), Some(heading), "{out}");
    it.map(|l| {
        assert!(l.starts_with("  • "), "not a bullet: {l:?} in {out}");
        l.to_owned()
    })
    .collect()
}

fn set(items: &[&str]) -> BTreeSet<String> {
    items.iter().map(|s| (*s).to_owned()).collect()
}

/// Polls `f` until it is true; fails after [`FRESH`].
async fn within_fresh<F, Fut>(what: &str, f: F)
where
    F: FnMut() -> Fut,
    Fut: std::future::Future<Output = bool>,
{
    let what = format!(
        "{what}: not seen by the server {FRESH:?} after the CLI returned (cache TTL {TTL_SECS} s)"
    );
    poll_until(FRESH, &what, f).await;
}

async fn call(c: &Client, tool: &str, args: Value) -> Result<String, String> {
    match try_call(c, tool, args).await {
        Ok(r) if !common::is_error(&r) => Ok(common::text(&r)),
        Ok(r) => Err(common::text(&r)),
        Err(e) => Err(e.to_string()),
    }
}

#[track_caller]
fn denied(what: &str, r: Result<String, String>) {
    match r {
        Ok(t) => panic!("{what}: allowed, answered {t}"),
        Err(e) => assert!(
            e.to_lowercase().contains("permission denied"),
            "{what}: refused, but not as permission denied: {e}"
        ),
    }
}

/// Steps 2–5 of the guide with the CLI, then the same decisions through MCP with alice's key.
async fn walkthrough(backend: Backend) {
    let s = stack(backend).await;

    // The zone the example lives in: tuples decide within it.
    assert_eq!(
        s.ok(&["hub", "zone", "create", "eng", "--access", "rebac"])
            .await
            .trim(),
        "created zone: eng (access: rebac)"
    );
    s.ok(&["hub", "zone", "create", "ops"]).await;
    let zones = s.ok(&["hub", "zone", "list"]).await;
    assert!(lines(&zones)[0].contains("ACCESS"), "{zones}");
    assert!(
        zones
            .lines()
            .any(|l| l.starts_with("eng ") && l.contains(" rebac ")),
        "{zones}"
    );
    assert!(
        zones
            .lines()
            .any(|l| l.starts_with("ops ") && l.contains(" open ")),
        "{zones}"
    );
    s.refused(
        2,
        &["hub", "zone", "set", "ops", "--access", "closed"],
        "possible values: open, rebac",
    )
    .await;
    let root: Value = serde_json::from_str(
        &s.ok(&[
            "hub", "token", "create", "--name", "root", "--admin", "--json",
        ])
        .await,
    )
    .expect("token JSON");
    let root = root["token"].as_str().expect("token").to_owned();

    // ---- step 2: users ----
    let out = s
        .ok(&[
            "admin",
            "create-user",
            "alice",
            "--name",
            "Alice Johnson",
            "--subject-type",
            "user",
        ])
        .await;
    let l = lines(&out);
    assert_eq!(l[0], "✓ User created: alice", "{out}");
    assert!(l[1].starts_with("✓ API key: sk-"), "{out}");
    assert_eq!(l.last(), Some(&"Save this API key for alice!"), "{out}");
    let alice = api_key(&out);
    s.ok(&[
        "admin",
        "create-user",
        "bot-analyzer",
        "--name",
        "Data Analyzer Bot",
        "--subject-type",
        "agent",
    ])
    .await;
    s.ok(&[
        "admin",
        "create-user",
        "bob",
        "--name",
        "Bob Smith",
        "--tenant-id",
        "acme-corp",
    ])
    .await;
    assert_eq!(
        s.ok(&["admin", "create-user", "carol", "--no-key"]).await,
        "✓ User created: carol\n"
    );
    assert_eq!(
        bullets(&s.ok(&["admin", "list-users"]).await, "Users:"),
        set(&[
            "  • alice (user) - tenant: default",
            "  • bob (user) - tenant: acme-corp",
            "  • bot-analyzer (agent) - tenant: default",
            "  • carol (user) - tenant: default",
        ])
    );
    let users: Value =
        serde_json::from_str(&s.ok(&["admin", "list-users", "--json"]).await).expect("JSON");
    assert_eq!(users.as_array().map(Vec::len), Some(4), "{users}");
    s.refused(
        1,
        &["admin", "create-user", "alice", "--name", "Again"],
        "already exists",
    )
    .await;
    for bad in ["Alice", "../x", "a b", "_x", ""] {
        s.refused(2, &["admin", "create-user", bad], "subject id")
            .await;
    }
    s.refused(
        2,
        &["admin", "create-user", "dave", "--subject-type", "robot"],
        "robot",
    )
    .await;
    assert!(
        s.ok(&["admin", "delete-user", "bob"])
            .await
            .starts_with("✓ User deleted: bob (1 token revoked"),
    );
    assert!(
        s.ok(&["admin", "delete-user-by-id", "carol"])
            .await
            .starts_with("✓ User deleted: carol (0 tokens revoked"),
    );
    s.refused(1, &["admin", "delete-user", "bob"], "no subject named")
        .await;

    // ---- step 4: agent keys ----
    let out = s
        .ok(&[
            "admin",
            "create-agent-key",
            "analyzer-bot",
            "--name",
            "Analyzer Bot v2.0",
            "--owner",
            "alice",
        ])
        .await;
    assert_eq!(lines(&out)[0], "✓ Agent key created", "{out}");
    assert!(api_key(&out).starts_with("sk-"), "{out}");
    assert_eq!(
        bullets(&s.ok(&["admin", "list-agents"]).await, "Agents:"),
        set(&[
            "  • analyzer-bot - Analyzer Bot v2.0 (owner: alice)",
            "  • bot-analyzer - Data Analyzer Bot",
        ])
    );

    // ---- step 5: tuples, hub-wide and with --zone ----
    let t = |subject: &'static str, rel: &'static str, obj: &'static str| {
        ["--subject", subject, "--relation", rel, "--object", obj]
    };
    let mut args = vec!["rebac", "create"];
    args.extend(t("user:alice", "can_read", "file:/workspace"));
    args.extend(["--zone", "eng"]);
    assert_eq!(
        s.ok(&args).await,
        "✓ Created: user:alice can_read file:/zone/eng/workspace\n"
    );
    let mut args = vec!["rebac", "create"];
    args.extend(t("user:alice", "can_write", "file:/workspace/alice-files"));
    args.extend(["--zone", "eng"]);
    s.ok(&args).await;
    let mut args = vec!["rebac", "create"];
    args.extend(t("user:alice", "member", "group:engineering"));
    s.ok(&args).await;
    let mut args = vec!["rebac", "create"];
    args.extend(t(
        "group:engineering",
        "can_read",
        "file:/zone/eng/shared/engineering",
    ));
    s.ok(&args).await;
    let mut args = vec!["rebac", "create"];
    args.extend(t("user:alice", "can_read", "file:/zone/eng/workspace"));
    s.refused(1, &args, "already exists").await;

    let check = |rel: &'static str, obj: &'static str| {
        let mut a = vec!["rebac", "check"];
        a.extend(t("user:alice", rel, obj));
        a.extend(["--zone", "eng"]);
        a
    };
    assert_eq!(
        s.exits(0, &check("can_read", "file:/workspace")).await,
        "✓ Allowed: user:alice can_read file:/zone/eng/workspace\n"
    );
    assert_eq!(
        s.exits(0, &check("can_write", "file:/workspace/alice-files/a.md"))
            .await,
        "✓ Allowed: user:alice can_write file:/zone/eng/workspace/alice-files/a.md\n"
    );
    assert_eq!(
        s.exits(1, &check("can_write", "file:/workspace")).await,
        "✗ Denied: user:alice can_write file:/zone/eng/workspace\n"
    );
    s.exits(1, &check("can_read", "file:/secret")).await;
    // --explain: the membership chain and the folder tuple that decided.
    let mut a = check("can_read", "file:/shared/engineering/design.md");
    a.push("--explain");
    let out = s.exits(0, &a).await;
    assert_eq!(
        lines(&out)[0],
        "✓ Allowed: user:alice can_read file:/zone/eng/shared/engineering/design.md"
    );
    assert!(
        out.contains("    user:alice member group:engineering\n")
            && out.contains(
                "    group:engineering#member can_read file:/zone/eng/shared/engineering\n"
            ),
        "{out}"
    );
    let mut a = check("can_write", "file:/secret");
    a.extend(["--explain", "--json"]);
    let v: Value = serde_json::from_str(&s.exits(1, &a).await).expect("check JSON");
    assert_eq!(v["allowed"], false);
    assert_eq!(v["object"], "file:/zone/eng/secret");

    let perms = s
        .ok(&["rebac", "list-tuples", "--subject", "user:alice"])
        .await;
    assert_eq!(
        perms,
        "Permissions for user:alice:\n  • can_read → file:/zone/eng/workspace\n  \
         • can_write → file:/zone/eng/workspace/alice-files\n  • member → group:engineering\n"
    );
    let expand = s
        .ok(&[
            "rebac",
            "expand",
            "--relation",
            "can_read",
            "--object",
            "file:/shared/engineering/x",
            "--zone",
            "eng",
        ])
        .await;
    assert!(
        expand.starts_with("Who has can_read on file:/zone/eng/shared/engineering/x:\n")
            && expand.contains("  • user:alice\n"),
        "{expand}"
    );

    // Hostile input: a clear error, exit 2, nothing written.
    let before = s.tuple_count().await;
    for (rel, obj, says) in [
        ("can_reed", "file:/workspace", "unknown relation"),
        ("can_read", "file:/workspace/../../etc", ".."),
        ("can_read", "file:/workspace/%2e%2e/x", "encoded"),
        ("can_read", "folder:/workspace", "folder"),
        ("member", "file:/workspace", "member"),
    ] {
        let mut a = vec!["rebac", "create"];
        a.extend(t("user:alice", rel, obj));
        a.extend(["--zone", "eng"]);
        s.refused(2, &a, says).await;
    }
    let mut a = vec!["rebac", "create"];
    a.extend(t("user:Alice", "can_read", "file:/zone/eng/x"));
    s.refused(2, &a, "Alice").await;
    let mut a = vec!["rebac", "create"];
    a.extend(t("user:alice", "can_read", "file:/zone/nope/x"));
    s.refused(1, &a, "nope").await;
    assert_eq!(s.tuple_count().await, before, "a refused tuple was written");

    let status = s.ok(&["hub", "status", "--detail"]).await;
    assert!(
        status.contains("\nsubjects: 3\n") && status.contains(&format!("\ntuples: {before}\n")),
        "{status}"
    );

    // ---- the same decisions through MCP, with alice's key ----
    let admin = connect(&s.mcp_url, &root, Era::Stateless).await;
    for (path, content) in [
        ("/zone/eng/workspace/readme.md", "team readme"),
        ("/zone/eng/workspace/alice-files/notes.md", "alice's notes"),
        ("/zone/eng/secret/plan.md", "the plan"),
        ("/zone/eng/shared/engineering/design.md", "the design"),
    ] {
        expect_ok(
            path,
            try_call(
                &admin,
                "nexus_write_file",
                json!({"path": path, "content": content}),
            )
            .await,
        );
    }
    let agent = connect(&s.mcp_url, &alice, Era::Stateless).await;
    let names: Vec<String> = list_tools(&agent)
        .await
        .iter()
        .map(|t| t.name.to_string())
        .collect();
    assert!(
        !names
            .iter()
            .any(|n| n.starts_with("nexus_rebac_") || n.starts_with("nexus_hub_")),
        "admin tools listed to alice: {names:?}"
    );
    let me = expect_json("whoami", try_call(&agent, "nexus_whoami", json!({})).await);
    let p = if me["path_mode"] == "single" {
        String::new()
    } else {
        "/zone/eng".to_owned()
    };
    let path = |rel: &str| format!("{p}{rel}");
    assert_eq!(
        call(
            &agent,
            "nexus_read_file",
            json!({"path": path("/workspace/readme.md")})
        )
        .await,
        Ok("team readme".to_owned())
    );
    assert_eq!(
        call(
            &agent,
            "nexus_read_file",
            json!({"path": path("/shared/engineering/design.md")})
        )
        .await,
        Ok("the design".to_owned()),
        "read through the group"
    );
    denied(
        "read outside every tuple",
        call(
            &agent,
            "nexus_read_file",
            json!({"path": path("/secret/plan.md")}),
        )
        .await,
    );
    denied(
        "write where alice may only read",
        call(
            &agent,
            "nexus_write_file",
            json!({"path": path("/workspace/readme.md"), "content": "x"}),
        )
        .await,
    );
    call(
        &agent,
        "nexus_write_file",
        json!({"path": path("/workspace/alice-files/new.md"), "content": "mine"}),
    )
    .await
    .expect("alice writes under alice-files");
    let listed = expect_json(
        "list",
        try_call(
            &agent,
            "nexus_list_files",
            json!({"path": if p.is_empty() { "/".to_owned() } else { p.clone() }}),
        )
        .await,
    );
    let listed = listed.to_string();
    assert!(
        listed.contains("workspace") && listed.contains("shared") && !listed.contains("secret"),
        "list shows only the way to what alice may read: {listed}"
    );

    // A tuple deleted with the CLI is refused by the running server at once.
    let mut a = vec!["rebac", "delete"];
    a.extend(t("user:alice", "can_read", "file:/workspace"));
    a.extend(["--zone", "eng"]);
    assert_eq!(
        s.ok(&a).await,
        "✓ Deleted: user:alice can_read file:/zone/eng/workspace\n"
    );
    s.exits(1, &check("can_read", "file:/workspace")).await;
    within_fresh("a deleted tuple", || async {
        call(
            &agent,
            "nexus_read_file",
            json!({"path": path("/workspace/readme.md")}),
        )
        .await
        .is_err()
    })
    .await;
    denied(
        "read after the tuple was deleted",
        call(
            &agent,
            "nexus_read_file",
            json!({"path": path("/workspace/readme.md")}),
        )
        .await,
    );
    assert_eq!(
        call(
            &agent,
            "nexus_read_file",
            json!({"path": path("/workspace/alice-files/notes.md")})
        )
        .await,
        Ok("alice's notes".to_owned()),
        "can_write on alice-files still implies reading it"
    );

    // A zone switched to rebac holds a zone-limited key to the tuples at once, and back.
    let out = s
        .ok(&[
            "admin",
            "create-user",
            "dana",
            "--zones",
            "ops:rw",
            "--expires",
            "30d",
        ])
        .await;
    let dana = api_key(&out);
    assert!(out.contains("\n  zones: ops:rw\n"), "{out}");
    expect_ok(
        "ops file",
        try_call(
            &admin,
            "nexus_write_file",
            json!({"path": "/zone/ops/runbook.md", "content": "steps"}),
        )
        .await,
    );
    assert_eq!(s.read(&dana, "/runbook.md").await, Ok("steps".to_owned()));
    let set: Value = serde_json::from_str(
        &s.ok(&["hub", "zone", "set", "ops", "--access", "rebac", "--json"])
            .await,
    )
    .expect("zone set JSON");
    assert_eq!(set["access_mode"], "rebac", "{set}");
    within_fresh("a zone switched to rebac", || async {
        s.read(&dana, "/runbook.md").await.is_err()
    })
    .await;
    let e = s.read(&dana, "/runbook.md").await.expect_err("refused");
    assert_eq!(e["code"], -32003, "permission denied: {e}");
    // An expiring zone role lets her back in; `list-tuples` shows until when.
    let mut a = vec!["rebac", "create"];
    a.extend(t("user:dana", "reader", "zone:ops"));
    a.extend(["--expires", "1h"]);
    assert!(
        s.ok(&a)
            .await
            .starts_with("✓ Created: user:dana reader zone:ops (until "),
    );
    assert!(
        s.ok(&["rebac", "list-tuples", "--subject", "user:dana"])
            .await
            .starts_with("Permissions for user:dana:\n  • reader → zone:ops (until "),
    );
    within_fresh("a zone role", || async {
        s.read(&dana, "/runbook.md").await.is_ok()
    })
    .await;
    let mut a = vec!["rebac", "delete"];
    a.extend(t("user:dana", "reader", "zone:ops"));
    a.extend(["--expires", "1h"]);
    s.refused(2, &a, "--expires applies to rebac create only")
        .await;
    assert_eq!(
        s.ok(&["hub", "zone", "set", "ops", "--access", "open"])
            .await,
        "zone ops: access open\n"
    );
    s.refused(
        1,
        &["hub", "zone", "set", "nope", "--access", "open"],
        "no active zone named",
    )
    .await;

    // The ceiling: a read-only zone grant stays read-only whatever the tuples say.
    let frank = api_key(
        &s.ok(&["admin", "create-user", "frank", "--zones", "eng:r"])
            .await,
    );
    for (rel, obj) in [
        ("can_write", "file:/zone/eng/workspace/frank"),
        ("writer", "zone:eng"),
    ] {
        s.ok(&[
            "rebac",
            "create",
            "--subject",
            "user:frank",
            "--relation",
            rel,
            "--object",
            obj,
        ])
        .await;
    }
    s.ok(&[
        "rebac",
        "create",
        "--subject",
        "user:frank",
        "--relation",
        "admin",
        "--object",
        "namespace:default",
    ])
    .await;
    assert_eq!(
        s.read(&frank, "/secret/plan.md").await,
        Ok("the plan".to_owned())
    );
    let e = s
        .write(&frank, "/workspace/frank/a.md")
        .await
        .expect_err("a read-only grant never writes");
    assert_eq!(e["code"], -32003, "permission denied: {e}");
    assert_eq!(
        s.ok(&["admin", "delete-user", "frank"]).await,
        "✓ User deleted: frank (1 token revoked, 3 tuples removed)\n"
    );
    within_fresh("a deleted user's key", || async {
        s.whoami_status(&frank).await == 401
    })
    .await;

    // Disabling alice refuses her key everywhere; enabling brings it back.
    assert_eq!(s.whoami_status(&alice).await, 200);
    assert!(
        s.ok(&["admin", "disable-user", "alice"])
            .await
            .starts_with("✓ User disabled: alice")
    );
    within_fresh("a disabled user", || async {
        s.whoami_status(&alice).await == 401
    })
    .await;
    assert_eq!(
        s.ok(&["admin", "enable-user", "alice"]).await,
        "✓ User enabled: alice\n"
    );
    within_fresh("an enabled user", || async {
        s.whoami_status(&alice).await == 200
    })
    .await;

    // ---- --remote: the admin MCP tools print what local mode prints ----
    let remote = |args: &[&'static str]| {
        let mut a: Vec<String> = args.iter().map(|s| (*s).to_owned()).collect();
        a.extend([
            "--remote".to_owned(),
            s.mcp_url.clone(),
            "--admin-token".to_owned(),
            root.clone(),
        ]);
        a
    };
    let r = s
        .nexus(&remote(&[
            "admin",
            "create-user",
            "erin",
            "--name",
            "Erin",
            "--subject-type",
            "user",
        ]))
        .await;
    assert_eq!(r.code, 0, "{} / {}", r.out, r.err);
    assert_eq!(lines(&r.out)[0], "✓ User created: erin");
    assert_eq!(
        lines(&r.out).last(),
        Some(&"Save this API key for erin!"),
        "{}",
        r.out
    );
    for args in [
        &["rebac", "list-tuples", "--subject", "user:alice"][..],
        &["admin", "list-users"],
        &["admin", "list-users", "--json"],
        &[
            "rebac",
            "check",
            "--subject",
            "user:alice",
            "--relation",
            "can_read",
            "--object",
            "file:/shared/engineering/design.md",
            "--zone",
            "eng",
            "--explain",
        ],
    ] {
        let local = s.ok(args).await;
        let r = s.nexus(&remote(args)).await;
        assert_eq!(r.code, 0, "remote {args:?}: {}", r.err);
        assert_eq!(r.out, local, "remote {args:?} prints what local does");
    }
    let r = s
        .nexus(&remote(&[
            "rebac",
            "check",
            "--subject",
            "user:alice",
            "--relation",
            "can_read",
            "--object",
            "file:/zone/eng/secret",
        ]))
        .await;
    assert_eq!(
        (r.code, r.out.as_str()),
        (1, "✗ Denied: user:alice can_read file:/zone/eng/secret\n"),
        "{}",
        r.err
    );
    // Every other admin tool, one remote call each, with local mode's output.
    for (args, want) in [
        (
            &[
                "rebac",
                "create",
                "--subject",
                "user:erin",
                "--relation",
                "writer",
                "--object",
                "zone:eng",
            ][..],
            "✓ Created: user:erin writer zone:eng\n",
        ),
        (
            &[
                "rebac",
                "expand",
                "--relation",
                "reader",
                "--object",
                "zone:eng",
            ],
            "Who has reader on zone:eng:\n  • user:erin\n      user:erin writer zone:eng\n",
        ),
        (
            &[
                "rebac",
                "delete",
                "--subject",
                "user:erin",
                "--relation",
                "writer",
                "--object",
                "zone:eng",
            ],
            "✓ Deleted: user:erin writer zone:eng\n",
        ),
        (
            &["admin", "disable-user", "erin"],
            "✓ User disabled: erin (its tokens are refused until it is enabled)\n",
        ),
        (&["admin", "enable-user", "erin"], "✓ User enabled: erin\n"),
        (
            &["admin", "delete-user", "erin"],
            "✓ User deleted: erin (1 token revoked, 0 tuples removed)\n",
        ),
    ] {
        let r = s.nexus(&remote(args)).await;
        assert_eq!(
            (r.code, r.out.as_str()),
            (0, want),
            "remote {args:?}: {}",
            r.err
        );
    }
    let r = s
        .nexus(&remote(&[
            "admin",
            "create-agent-key",
            "remote-bot",
            "--name",
            "Remote Bot",
            "--owner",
            "alice",
        ]))
        .await;
    assert_eq!(r.code, 0, "{}", r.err);
    assert_eq!(lines(&r.out)[0], "✓ Agent key created", "{}", r.out);
    assert!(api_key(&r.out).starts_with("sk-"));
    let r = s
        .nexus(&remote(&["hub", "status", "--detail", "--json"]))
        .await;
    assert_eq!(r.code, 0, "{}", r.err);
    let st: Value = serde_json::from_str(&r.out).expect("status JSON");
    assert!(
        st["subjects"].as_u64().is_some_and(|n| n >= 4) && st["tuples"].as_u64().is_some(),
        "remote status --detail counts subjects and tuples: {st}"
    );
    // alice's key is no admin token: the tools are refused to it.
    let mut a: Vec<String> = ["rebac", "list-tuples", "--remote", &s.mcp_url]
        .iter()
        .map(|x| (*x).to_owned())
        .collect();
    a.extend(["--admin-token".to_owned(), alice.clone()]);
    let r = s.nexus(&a).await;
    assert_eq!(r.code, 1, "{} / {}", r.out, r.err);
    assert!(r.err.contains("admin token"), "{}", r.err);
    let err = expect_any_error(
        "alice calls an admin tool",
        try_call(&agent, "nexus_rebac_list_tuples", json!({})).await,
    );
    assert!(err.contains("admin token"), "{err}");
}

/// "From a fresh `nexus hub up`": the guide's steps 2–5 in the embedded hub's `default`
/// zone (access `open`), with alice's key as `create-user` mints it (no zones of its own):
/// her tuples alone decide what her agent reaches.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn seed_steps_from_a_fresh_hub_up() {
    let s = hub_up().await;
    let root = s
        .env
        .iter()
        .find(|(k, _)| k == "NEXUS_API_KEY")
        .map(|(_, v)| v.clone())
        .expect("admin token in admin.env");
    let out = s
        .ok(&[
            "admin",
            "create-user",
            "alice",
            "--name",
            "Alice Johnson",
            "--subject-type",
            "user",
        ])
        .await;
    assert_eq!(lines(&out).last(), Some(&"Save this API key for alice!"));
    let alice = api_key(&out);
    let tuple = |rel: &'static str, obj: &'static str| {
        vec![
            "rebac",
            "create",
            "--subject",
            "user:alice",
            "--relation",
            rel,
            "--object",
            obj,
            "--zone",
            "default",
        ]
    };
    s.ok(&tuple("can_read", "file:/workspace")).await;
    s.ok(&tuple("can_write", "file:/workspace/alice-files"))
        .await;
    assert_eq!(
        s.exits(
            0,
            &[
                "rebac",
                "check",
                "--subject",
                "user:alice",
                "--relation",
                "can_read",
                "--object",
                "file:/zone/default/workspace",
            ]
        )
        .await,
        "✓ Allowed: user:alice can_read file:/zone/default/workspace\n"
    );
    // The seed writes hub-wide objects without a zone: the error says how to name them.
    s.refused(
        2,
        &[
            "rebac",
            "check",
            "--subject",
            "user:alice",
            "--relation",
            "can_read",
            "--object",
            "file:/workspace",
        ],
        "--zone",
    )
    .await;

    let admin = connect(&s.mcp_url, &root, Era::Stateless).await;
    // The admin token sees every zone: hub-wide paths.
    for path in ["/workspace/readme.md", "/private/plan.md"] {
        expect_ok(
            path,
            try_call(
                &admin,
                "nexus_write_file",
                json!({"path": format!("/zone/default{path}"), "content": path}),
            )
            .await,
        );
    }
    let agent = connect(&s.mcp_url, &alice, Era::Stateless).await;
    let me = expect_json("whoami", try_call(&agent, "nexus_whoami", json!({})).await);
    let p = if me["path_mode"] == "single" {
        ""
    } else {
        "/zone/default"
    };
    assert_eq!(
        call(
            &agent,
            "nexus_read_file",
            json!({"path": format!("{p}/workspace/readme.md")})
        )
        .await,
        Ok("/workspace/readme.md".to_owned())
    );
    denied(
        "a folder no tuple covers",
        call(
            &agent,
            "nexus_read_file",
            json!({"path": format!("{p}/private/plan.md")}),
        )
        .await,
    );
    denied(
        "a write where alice may only read",
        call(
            &agent,
            "nexus_write_file",
            json!({"path": format!("{p}/workspace/x.md"), "content": "x"}),
        )
        .await,
    );
    call(
        &agent,
        "nexus_write_file",
        json!({"path": format!("{p}/workspace/alice-files/x.md"), "content": "x"}),
    )
    .await
    .expect("alice writes under alice-files");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn seed_walkthrough_on_sqlite() {
    walkthrough(Backend::Sqlite).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn seed_walkthrough_on_postgres() {
    walkthrough(Backend::Postgres).await;
}
