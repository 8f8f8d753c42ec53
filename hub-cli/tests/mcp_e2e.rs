//! MCP end to end (SPEC §3, §5): rmcp clients with real tokens against a real frontend and
//! rpc-server (Postgres), in both lifecycles (stateless 2026 `server/discover` and legacy
//! `initialize` sessions). For a single-zone, a multi-zone, a read-only and an admin token:
//! the tool catalogue (admin tools only for the admin; schemas and annotations), every file
//! tool with its effect checked on disk, and the admin tools.

use crate::common;

use common::{
    Client, ERAS, Era, Hub, connect, expect_json, expect_ok, expect_tool_error, list_tools,
    try_call, try_connect,
};
use serde_json::{Value, json};
use std::collections::BTreeSet;

const FILE_TOOLS: [&str; 14] = [
    "nexus_read_file",
    "nexus_write_file",
    "nexus_edit_file",
    "nexus_delete_file",
    "nexus_list_files",
    "nexus_file_info",
    "nexus_mkdir",
    "nexus_rmdir",
    "nexus_rename_file",
    "nexus_glob",
    "nexus_grep",
    "nexus_semantic_search",
    "nexus_whoami",
    "nexus_md_structure",
];

const ADMIN_TOOLS: [&str; 16] = [
    "nexus_hub_token_create",
    "nexus_hub_token_list",
    "nexus_hub_token_revoke",
    "nexus_hub_status",
    "nexus_hub_user_create",
    "nexus_hub_user_list",
    "nexus_hub_user_delete",
    "nexus_hub_user_set_state",
    "nexus_hub_user_create_agent_key",
    "nexus_hub_oauth_client_list",
    "nexus_hub_oauth_client_revoke",
    "nexus_rebac_create",
    "nexus_rebac_delete",
    "nexus_rebac_check",
    "nexus_rebac_list_tuples",
    "nexus_rebac_expand",
];

/// tools/list: exactly the file tools (plus the admin tools for an admin), each with an
/// object input schema and read-only/destructive hints.
async fn check_catalogue(c: &Client, admin: bool, who: &str) {
    let tools = list_tools(c).await;
    let names: BTreeSet<&str> = tools.iter().map(|t| t.name.as_ref()).collect();
    let mut want: BTreeSet<&str> = FILE_TOOLS.into_iter().collect();
    if admin {
        want.extend(ADMIN_TOOLS);
    }
    assert_eq!(names, want, "{who}: tools/list");
    for t in &tools {
        assert_eq!(
            t.input_schema.get("type"),
            Some(&json!("object")),
            "{who}: {} input schema",
            t.name
        );
        let a = t
            .annotations
            .as_ref()
            .unwrap_or_else(|| panic!("{who}: {} has no annotations", t.name));
        let (ro, destr) = (
            a.read_only_hint
                .unwrap_or_else(|| panic!("{who}: {} readOnlyHint", t.name)),
            a.destructive_hint
                .unwrap_or_else(|| panic!("{who}: {} destructiveHint", t.name)),
        );
        assert!(
            !(ro && destr),
            "{who}: {} both read-only and destructive",
            t.name
        );
        let reads = [
            "nexus_read_file",
            "nexus_list_files",
            "nexus_file_info",
            "nexus_glob",
            "nexus_grep",
            "nexus_semantic_search",
            "nexus_whoami",
            "nexus_md_structure",
            "nexus_hub_token_list",
            "nexus_hub_status",
            "nexus_hub_user_list",
            "nexus_hub_oauth_client_list",
            "nexus_rebac_check",
            "nexus_rebac_list_tuples",
            "nexus_rebac_expand",
        ];
        assert_eq!(
            ro,
            reads.contains(&t.name.as_ref()),
            "{who}: {} readOnlyHint",
            t.name
        );
    }
}

/// The whole file-tool sequence in a writable zone `eng`, under `root` (`""` for a
/// single-zone token, `/zone/eng` otherwise), in directory `dir`.
async fn exercise_files(hub: &Hub, c: &Client, root: &str, dir: &str, who: &str) {
    let p = |rel: &str| format!("{root}/{dir}/{rel}");
    let content = "hello world\nsecond line\n";

    let w = expect_json(
        &format!("{who}: write"),
        try_call(
            c,
            "nexus_write_file",
            json!({"path": p("a.txt"), "content": content}),
        )
        .await,
    );
    assert_eq!(w["size"], content.len(), "{who}: write result {w}");
    assert_eq!(
        w["content_id"].as_str().map(str::len),
        Some(64),
        "{who}: {w}"
    );
    let stored_a = format!("{dir}/a.txt");
    assert_eq!(
        hub.stored_text("eng", &stored_a).await.as_deref(),
        Some(content),
        "{who}: the hub stores eng/{stored_a}"
    );

    let r = expect_ok(
        &format!("{who}: read"),
        try_call(c, "nexus_read_file", json!({"path": p("a.txt")})).await,
    );
    assert_eq!(r, content, "{who}: read returns the file text verbatim");

    let e = expect_json(
        &format!("{who}: edit"),
        try_call(
            c,
            "nexus_edit_file",
            json!({"path": p("a.txt"), "edits": [{"old_str": "world", "new_str": "nexus"}]}),
        )
        .await,
    );
    assert_eq!(e["replacements"], 1, "{who}: edit result {e}");
    let edited = "hello nexus\nsecond line\n";
    assert_eq!(
        hub.stored_text("eng", &stored_a).await.as_deref(),
        Some(edited),
        "{who}: edit stored"
    );

    let i = expect_json(
        &format!("{who}: file_info"),
        try_call(c, "nexus_file_info", json!({"path": p("a.txt")})).await,
    );
    assert_eq!(
        (&i["exists"], &i["is_dir"], &i["size"]),
        (&json!(true), &json!(false), &json!(edited.len())),
        "{who}: stat {i}"
    );

    expect_ok(
        &format!("{who}: mkdir"),
        try_call(c, "nexus_mkdir", json!({"path": p("sub")})).await,
    );
    assert!(
        hub.stored_dir("eng", &format!("{dir}/sub")).await,
        "{who}: mkdir stored"
    );

    expect_ok(
        &format!("{who}: rename"),
        try_call(
            c,
            "nexus_rename_file",
            json!({"old_path": p("a.txt"), "new_path": p("sub/b.txt")}),
        )
        .await,
    );
    let stored_b = format!("{dir}/sub/b.txt");
    assert!(
        !hub.has_file("eng", &stored_a).await
            && hub.stored_text("eng", &stored_b).await.as_deref() == Some(edited),
        "{who}: rename stored"
    );

    let l = expect_json(
        &format!("{who}: list"),
        try_call(
            c,
            "nexus_list_files",
            json!({"path": format!("{root}/{dir}"), "recursive": true}),
        )
        .await,
    );
    let listed: Vec<&str> = l["items"]
        .as_array()
        .unwrap_or_else(|| panic!("{who}: list items {l}"))
        .iter()
        .filter_map(|it| it["path"].as_str())
        .collect();
    assert!(listed.contains(&p("sub/b.txt").as_str()), "{who}: list {l}");
    assert!(listed.contains(&p("sub").as_str()), "{who}: list {l}");

    let g = expect_json(
        &format!("{who}: glob"),
        try_call(
            c,
            "nexus_glob",
            json!({"pattern": "**/*.txt", "path": format!("{root}/{dir}")}),
        )
        .await,
    );
    assert_eq!(g["items"], json!([p("sub/b.txt")]), "{who}: glob {g}");

    let s = expect_json(
        &format!("{who}: grep"),
        try_call(
            c,
            "nexus_grep",
            json!({"pattern": "n[e]xus", "path": format!("{root}/{dir}")}),
        )
        .await,
    );
    let hits = s["items"]
        .as_array()
        .unwrap_or_else(|| panic!("{who}: grep {s}"));
    assert_eq!(hits.len(), 1, "{who}: grep {s}");
    assert_eq!(hits[0]["path"], json!(p("sub/b.txt")), "{who}: grep {s}");
    assert_eq!(hits[0]["line"], 1, "{who}: grep {s}");
    assert_eq!(hits[0]["text"], "hello nexus", "{who}: grep {s}");

    expect_ok(
        &format!("{who}: delete"),
        try_call(c, "nexus_delete_file", json!({"path": p("sub/b.txt")})).await,
    );
    assert!(
        !hub.has_file("eng", &stored_b).await,
        "{who}: delete stored"
    );

    expect_ok(
        &format!("{who}: rmdir"),
        try_call(c, "nexus_rmdir", json!({"path": p("sub")})).await,
    );
    let sub = format!("{dir}/sub");
    assert!(
        !hub.stored_dir("eng", &sub).await && !hub.has_file("eng", &sub).await,
        "{who}: rmdir stored"
    );
}

async fn whoami(c: &Client, who: &str) -> Value {
    expect_json(
        &format!("{who}: whoami"),
        try_call(c, "nexus_whoami", json!({})).await,
    )
}

fn zones_of(w: &Value) -> Vec<(String, String)> {
    let mut z: Vec<(String, String)> = w["zones"]
        .as_array()
        .unwrap_or_else(|| panic!("whoami zones: {w}"))
        .iter()
        .map(|z| {
            (
                z["zone"].as_str().unwrap_or_default().to_owned(),
                z["permission"].as_str().unwrap_or_default().to_owned(),
            )
        })
        .collect();
    z.sort();
    z
}

/// A non-admin calling an admin tool anyway gets a permission-denied tool error (the
/// rpc-server's −32003) that says an admin token is needed.
async fn admin_tool_refused(c: &Client, who: &str) {
    let msg = expect_tool_error(
        &format!("{who}: nexus_hub_token_list"),
        try_call(c, "nexus_hub_token_list", json!({})).await,
    );
    assert_permission_denied(who, "nexus_hub_token_list", &msg);
    assert!(
        msg.to_ascii_lowercase().contains("admin"),
        "{who}: refusal of an admin tool should say it needs an admin token: {msg}"
    );
}

/// A tool error carries no JSON-RPC code; its text does: the rpc-server's −32003 reaches the
/// agent as "<tool> failed: permission denied: …", so any other refusal fails this.
#[track_caller]
fn assert_permission_denied(who: &str, tool: &str, msg: &str) {
    assert!(
        msg.starts_with(&format!("{tool} failed: permission denied: ")),
        "{who}: {tool}: not a permission-denied (-32003) refusal: {msg}"
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn zone_tokens_use_every_file_tool_in_both_eras() {
    let hub = Hub::start().await;
    for z in ["eng", "ops", "docs"] {
        hub.app.zone(z).await;
    }
    // Seed the read-only zone through the rpc-server with an admin token.
    let seeder = hub.token("seeder", None, true).await;
    for (path, content) in [
        ("/zone/docs/guide.md", "# Guide\nread me\n"),
        ("/zone/docs/dir/x.md", "x\n"),
    ] {
        hub.app
            .rpc(&seeder, "write", json!({"path": path, "content": content}))
            .await
            .unwrap_or_else(|e| panic!("seed {path}: {e}"));
    }

    for era in ERAS {
        let e = era.name();

        // Single zone: the zone is '/'.
        let who = format!("{e}/single");
        let tok = hub
            .token(&format!("single-{e}"), Some("eng:rw"), false)
            .await;
        let c = connect(hub.mcp_url(), &tok, era).await;
        check_catalogue(&c, false, &who).await;
        exercise_files(&hub, &c, "", &format!("{e}-single"), &who).await;
        let w = whoami(&c, &who).await;
        assert_eq!(w["name"], format!("single-{e}"), "{who}: {w}");
        assert_eq!(w["is_admin"], false, "{who}: {w}");
        assert_eq!(zones_of(&w), [("eng".into(), "rw".into())], "{who}: {w}");
        admin_tool_refused(&c, &who).await;
        let _ = c.cancel().await;

        // Several zones: /zone/<zone>/…, '/' lists them, the read-only one refuses writes.
        let who = format!("{e}/multi");
        let tok = hub
            .token(&format!("multi-{e}"), Some("eng:rw,ops:r"), false)
            .await;
        let c = connect(hub.mcp_url(), &tok, era).await;
        check_catalogue(&c, false, &who).await;
        exercise_files(&hub, &c, "/zone/eng", &format!("{e}-multi"), &who).await;
        let w = whoami(&c, &who).await;
        assert_eq!(
            zones_of(&w),
            [("eng".into(), "rw".into()), ("ops".into(), "r".into())],
            "{who}: {w}"
        );
        let l = expect_json(
            &format!("{who}: list /"),
            try_call(&c, "nexus_list_files", json!({"path": "/"})).await,
        );
        let roots: BTreeSet<&str> = l["items"]
            .as_array()
            .unwrap_or_else(|| panic!("{who}: list / {l}"))
            .iter()
            .filter_map(|it| it["name"].as_str())
            .collect();
        assert_eq!(roots, BTreeSet::from(["eng", "ops"]), "{who}: list / {l}");
        let msg = expect_tool_error(
            &format!("{who}: write to ops"),
            try_call(
                &c,
                "nexus_write_file",
                json!({"path": "/zone/ops/x.txt", "content": "no"}),
            )
            .await,
        );
        assert_permission_denied(&who, "nexus_write_file", &msg);
        assert!(msg.contains("'ops'"), "{who}: names the zone: {msg}");
        assert!(
            !hub.has_file("ops", "x.txt").await,
            "{who}: nothing written"
        );
        admin_tool_refused(&c, &who).await;
        let _ = c.cancel().await;

        // Read-only single zone: every read works, every write names the zone.
        let who = format!("{e}/readonly");
        let tok = hub.token(&format!("ro-{e}"), Some("docs:r"), false).await;
        let c = connect(hub.mcp_url(), &tok, era).await;
        check_catalogue(&c, false, &who).await;
        let r = expect_ok(
            &format!("{who}: read"),
            try_call(&c, "nexus_read_file", json!({"path": "/guide.md"})).await,
        );
        assert_eq!(r, "# Guide\nread me\n", "{who}");
        for (tool, args) in [
            ("nexus_file_info", json!({"path": "/guide.md"})),
            ("nexus_list_files", json!({"path": "/", "recursive": true})),
            ("nexus_glob", json!({"pattern": "**/*.md"})),
            ("nexus_grep", json!({"pattern": "read"})),
            ("nexus_whoami", json!({})),
        ] {
            expect_ok(&format!("{who}: {tool}"), try_call(&c, tool, args).await);
        }
        for (tool, args) in [
            (
                "nexus_write_file",
                json!({"path": "/new.md", "content": "no"}),
            ),
            (
                "nexus_edit_file",
                json!({"path": "/guide.md", "edits": [{"old_str": "read", "new_str": "write"}]}),
            ),
            ("nexus_mkdir", json!({"path": "/newdir"})),
            (
                "nexus_rename_file",
                json!({"old_path": "/guide.md", "new_path": "/moved.md"}),
            ),
            ("nexus_delete_file", json!({"path": "/guide.md"})),
            ("nexus_rmdir", json!({"path": "/dir", "recursive": true})),
        ] {
            let msg = expect_tool_error(&format!("{who}: {tool}"), try_call(&c, tool, args).await);
            assert_permission_denied(&who, tool, &msg);
            assert!(
                msg.contains("'docs'"),
                "{who}: {tool} names the zone: {msg}"
            );
        }
        assert_eq!(
            hub.stored_in("docs").await,
            ["dir/x.md", "guide.md"],
            "{who}: the read-only zone is unchanged"
        );
        assert_eq!(
            hub.stored_text("docs", "guide.md").await.as_deref(),
            Some("# Guide\nread me\n")
        );
        admin_tool_refused(&c, &who).await;
        let _ = c.cancel().await;
    }
}

/// The search tools' arguments through rmcp in both eras: grep's context, inversion, fixed
/// strings, include, files and counts; glob's files; list's details and markdown; ranked
/// keyword search, degraded (and saying so) when semantic ranking is asked for.
#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn search_arguments_in_both_eras() {
    let hub = Hub::start().await;
    hub.app.zone("kb").await;
    let tok = hub.token("searcher", Some("kb:rw"), false).await;
    for (path, content) in [
        (
            "/a.md",
            "intro
needle one
after one
needle two
",
        ),
        (
            "/b.txt",
            "call(f[0])
f0
",
        ),
        (
            "/docs/apple.md",
            "apple pie
apple tart
",
        ),
        (
            "/docs/pear.md",
            "pear and apple
",
        ),
    ] {
        hub.app
            .rpc(&tok, "write", json!({"path": path, "content": content}))
            .await
            .unwrap_or_else(|e| panic!("seed {path}: {e}"));
    }
    for era in ERAS {
        let who = era.name();
        let c = connect(hub.mcp_url(), &tok, era).await;
        let call = |tool: &'static str, args: Value| {
            let c = &c;
            async move {
                expect_json(
                    &format!("{who}: {tool} {args}"),
                    try_call(c, tool, args.clone()).await,
                )
            }
        };
        let g = call(
            "nexus_grep",
            json!({"pattern": "needle", "before_context": 1, "after_context": 1, "include": "*.md"}),
        )
        .await;
        assert_eq!(
            g["items"],
            json!([
                {"path": "/a.md", "line": 2, "text": "needle one", "before": ["intro"], "after": ["after one"]},
                {"path": "/a.md", "line": 4, "text": "needle two", "before": ["after one"]}
            ]),
            "{who}: {g}"
        );
        let g = call(
            "nexus_grep",
            json!({"pattern": "needle", "invert_match": true, "files": ["/a.md"]}),
        )
        .await;
        let lines: Vec<u64> = g["items"]
            .as_array()
            .expect("items")
            .iter()
            .map(|m| m["line"].as_u64().expect("line"))
            .collect();
        assert_eq!(lines, [1, 3], "{who}: {g}");
        let g = call(
            "nexus_grep",
            json!({"pattern": "f[0]", "fixed_strings": true}),
        )
        .await;
        assert_eq!(g["items"][0]["text"], "call(f[0])", "{who}: {g}");
        assert_eq!(g["total"], 1, "{who}: {g}");
        let g = call(
            "nexus_grep",
            json!({"pattern": "apple", "count_only": true}),
        )
        .await;
        assert_eq!(
            g["counts"],
            json!([{"path": "/docs/apple.md", "count": 2}, {"path": "/docs/pear.md", "count": 1}]),
            "{who}: {g}"
        );
        assert_eq!(g["matches"], 3, "{who}: {g}");
        let msg = expect_tool_error(
            &format!("{who}: exploding regex"),
            try_call(&c, "nexus_grep", json!({"pattern": "(?:a{1000}){1000}"})).await,
        );
        assert!(msg.contains("too large to run"), "{who}: {msg}");

        let gl = call(
            "nexus_glob",
            json!({"pattern": "**/*.md", "files": ["/b.txt", "/docs/pear.md", "/a.md"]}),
        )
        .await;
        assert_eq!(
            gl["items"],
            json!(["/a.md", "/docs/pear.md"]),
            "{who}: {gl}"
        );

        let l = call(
            "nexus_list_files",
            json!({"path": "/docs", "details": false}),
        )
        .await;
        assert_eq!(
            l["items"],
            json!([
                {"path": "/docs/apple.md", "name": "apple.md", "is_dir": false},
                {"path": "/docs/pear.md", "name": "pear.md", "is_dir": false}
            ]),
            "{who}: {l}"
        );
        let md = expect_ok(
            &format!("{who}: list markdown"),
            try_call(
                &c,
                "nexus_list_files",
                json!({"path": "/", "response_format": "markdown", "details": false}),
            )
            .await,
        );
        assert_eq!(
            md, "# `/`\n\n- `/a.md`\n- `/b.txt`\n- `/docs/`\n\n3 of 3 entries\n",
            "{who}"
        );

        let s = call("nexus_semantic_search", json!({"query": "apple pie"})).await;
        let paths: Vec<&str> = s["items"]
            .as_array()
            .expect("items")
            .iter()
            .map(|h| h["path"].as_str().expect("path"))
            .collect();
        assert_eq!(paths, ["/docs/apple.md", "/docs/pear.md"], "{who}: {s}");
        assert_eq!(s["items"][0]["snippet"], "apple pie", "{who}: {s}");
        assert_eq!(s["semantic_degraded"], false, "{who}: {s}");
        let h = call(
            "nexus_semantic_search",
            json!({"query": "apple pie", "search_mode": "hybrid", "limit": 1}),
        )
        .await;
        assert_eq!(h["semantic_degraded"], true, "{who}: {h}");
        assert_eq!(h["items"][0], s["items"][0], "{who}: {h}");
        assert_eq!(h["next_offset"], 1, "{who}: {h}");
        let _ = c.cancel().await;
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn admin_token_uses_file_and_admin_tools_in_both_eras() {
    let hub = Hub::start().await;
    hub.app.zone("eng").await;
    let admin = hub.token("root", None, true).await;

    for era in ERAS {
        let e = era.name();
        let who = format!("{e}/admin");
        let c = connect(hub.mcp_url(), &admin, era).await;
        check_catalogue(&c, true, &who).await;
        // A zoneless admin sees every zone at /zone/<zone>/….
        exercise_files(&hub, &c, "/zone/eng", &format!("{e}-admin"), &who).await;
        let w = whoami(&c, &who).await;
        assert_eq!(w["is_admin"], true, "{who}: {w}");

        // token create → the token works → listed → revoked → refused.
        let name = format!("minted-{e}");
        let created = expect_json(
            &format!("{who}: token_create"),
            try_call(
                &c,
                "nexus_hub_token_create",
                json!({"name": name, "zones": "eng:rw", "expires": "1d"}),
            )
            .await,
        );
        let minted = created["token"]
            .as_str()
            .unwrap_or_else(|| panic!("{who}: token_create result {created}"))
            .to_owned();
        assert!(minted.starts_with("sk-"), "{who}: {created}");
        assert_eq!(created["name"], name.as_str(), "{who}: {created}");
        let key_id = created["key_id"].as_str().unwrap_or_default().to_owned();

        let m = connect(hub.mcp_url(), &minted, Era::Stateless).await;
        let mw = whoami(&m, &format!("{who}: minted")).await;
        assert_eq!(mw["name"], name.as_str(), "{who}: {mw}");
        assert_eq!(zones_of(&mw), [("eng".into(), "rw".into())], "{who}: {mw}");
        expect_ok(
            &format!("{who}: minted writes"),
            try_call(
                &m,
                "nexus_write_file",
                json!({"path": format!("/{e}-minted.txt"), "content": "m"}),
            )
            .await,
        );
        assert!(hub.has_file("eng", &format!("{e}-minted.txt")).await);
        let _ = m.cancel().await;

        let list = expect_json(
            &format!("{who}: token_list"),
            try_call(&c, "nexus_hub_token_list", json!({})).await,
        );
        let names: Vec<&str> = list
            .as_array()
            .unwrap_or_else(|| panic!("{who}: token_list {list}"))
            .iter()
            .filter_map(|t| t["name"].as_str())
            .collect();
        assert!(
            names.contains(&name.as_str()) && names.contains(&"root"),
            "{who}: {list}"
        );
        assert!(
            !list.to_string().contains(&minted),
            "{who}: token_list leaks the token"
        );

        let revoked = expect_json(
            &format!("{who}: token_revoke"),
            try_call(&c, "nexus_hub_token_revoke", json!({"identifier": name})).await,
        );
        assert_eq!(revoked["key_id"], key_id.as_str(), "{who}: {revoked}");
        let refused = try_connect(hub.mcp_url(), &minted, Era::Stateless)
            .await
            .err()
            .unwrap_or_else(|| panic!("{who}: a revoked token connected"));
        assert!(
            refused
                .auth_challenge()
                .is_some_and(|c| c.contains("resource_metadata=")),
            "{who}: a revoked token must get a 401 challenge, got: {refused}"
        );
        let again = expect_json(
            &format!("{who}: token_list --show-revoked"),
            try_call(&c, "nexus_hub_token_list", json!({"show_revoked": true})).await,
        );
        assert!(
            again.to_string().contains(&key_id),
            "{who}: show_revoked lists the revoked token: {again}"
        );

        let s = expect_json(
            &format!("{who}: status"),
            try_call(&c, "nexus_hub_status", json!({})).await,
        );
        assert_eq!(s["postgres"], "ok", "{who}: status {s}");
        assert!(
            s["tokens"]["active"].as_u64().is_some_and(|n| n >= 1),
            "{who}: {s}"
        );
        let _ = c.cancel().await;
    }
}
