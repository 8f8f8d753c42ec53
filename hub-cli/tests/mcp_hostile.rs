//! Hostile input through MCP with a valid token (SPEC §3, §5): unknown tools, wrong argument
//! types, unknown arguments, a huge argument and hostile paths are errors an agent can
//! read, and nothing lands outside the caller's zone.

use crate::common;

use common::{Hub, connect, expect_any_error, expect_ok, expect_tool_error, try_call};
use serde_json::{Value, json};

/// Calls with arguments of the wrong type: (tool, arguments, the offending argument).
fn wrong_types() -> Vec<(&'static str, Value, &'static str)> {
    vec![
        ("nexus_read_file", json!({"path": 5}), "path"),
        (
            "nexus_write_file",
            json!({"path": "/b.txt", "content": 7}),
            "content",
        ),
        (
            "nexus_edit_file",
            json!({"path": "/a.txt", "edits": "x"}),
            "edits",
        ),
        (
            "nexus_list_files",
            json!({"path": "/", "limit": "ten"}),
            "limit",
        ),
    ]
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn malformed_calls_are_errors_an_agent_can_read() {
    let hub = Hub::start().await;
    hub.app.zone("eng").await;
    let tok = hub.token("agent", Some("eng:rw"), false).await;
    for era in common::ERAS {
        let e = era.name();
        let c = connect(hub.mcp_url(), &tok, era).await;
        expect_ok(
            &format!("{e}: seed"),
            try_call(
                &c,
                "nexus_write_file",
                json!({"path": "/a.txt", "content": "a"}),
            )
            .await,
        );

        let msg = expect_any_error(
            &format!("{e}: unknown tool"),
            try_call(&c, "nexus_frobnicate", json!({})).await,
        );
        assert!(
            msg.contains("nexus_frobnicate"),
            "{e}: names the tool: {msg}"
        );

        for (tool, args, _) in wrong_types() {
            let msg = expect_tool_error(
                &format!("{e}: {tool} {args}"),
                try_call(&c, tool, args).await,
            );
            assert!(
                msg.contains(tool) && msg.contains("invalid") && msg.contains("expected"),
                "{e}: {tool}: says what is wrong and what was expected: {msg}"
            );
        }

        let msg = expect_tool_error(
            &format!("{e}: missing argument"),
            try_call(&c, "nexus_read_file", json!({})).await,
        );
        assert!(
            msg.contains("missing") && msg.contains("path"),
            "{e}: {msg}"
        );

        let msg = expect_tool_error(
            &format!("{e}: unknown argument"),
            try_call(
                &c,
                "nexus_read_file",
                json!({"path": "/a.txt", "frobnicate": true}),
            )
            .await,
        );
        assert!(msg.contains("frobnicate"), "{e}: names the argument: {msg}");
        let _ = c.cancel().await;
    }
    assert_eq!(hub.stored_files().await, ["eng/a.txt"]);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn wrong_type_messages_name_the_argument() {
    let hub = Hub::start().await;
    hub.app.zone("eng").await;
    let tok = hub.token("agent", Some("eng:rw"), false).await;
    let c = connect(hub.mcp_url(), &tok, common::Era::Stateless).await;
    for (tool, args, arg) in wrong_types() {
        let msg = expect_tool_error(&format!("{tool} {args}"), try_call(&c, tool, args).await);
        assert!(
            msg.contains(arg),
            "{tool}: the message names `{arg}`: {msg}"
        );
    }
}

/// 20 MiB: over the rpc-server's 1 MiB file limit (TestOptions) and its body limit, under
/// the frontend's 32 MiB body limit, so the refusal comes from the hub.
fn huge() -> String {
    "x".repeat(20 * 1024 * 1024)
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn a_huge_argument_is_refused_and_nothing_is_written() {
    let hub = Hub::start().await;
    hub.app.zone("eng").await;
    let tok = hub.token("agent", Some("eng:rw"), false).await;
    let huge = huge();
    for era in common::ERAS {
        let e = era.name();
        let c = connect(hub.mcp_url(), &tok, era).await;
        expect_any_error(
            &format!("{e}: 20 MiB write"),
            try_call(
                &c,
                "nexus_write_file",
                json!({"path": "/huge.txt", "content": huge}),
            )
            .await,
        );
        // The client is still usable afterwards.
        expect_ok(
            &format!("{e}: whoami after"),
            try_call(&c, "nexus_whoami", json!({})).await,
        );
        let _ = c.cancel().await;
    }
    assert_eq!(
        hub.stored_files().await,
        Vec::<String>::new(),
        "nothing written"
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn a_huge_argument_is_reported_as_too_large() {
    let hub = Hub::start().await;
    hub.app.zone("eng").await;
    let tok = hub.token("agent", Some("eng:rw"), false).await;
    let huge = huge();
    let c = connect(hub.mcp_url(), &tok, common::Era::Stateless).await;
    for attempt in 0..3 {
        let msg = expect_any_error(
            &format!("attempt {attempt}: 20 MiB write"),
            try_call(
                &c,
                "nexus_write_file",
                json!({"path": "/huge.txt", "content": huge}),
            )
            .await,
        );
        let lower = msg.to_ascii_lowercase();
        assert!(
            lower.contains("too large") && !lower.contains("unavailable"),
            "attempt {attempt}: an oversized write must say it is too large, not to retry: {}",
            msg.get(..300).unwrap_or(&msg)
        );
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn hostile_paths_never_leave_the_zone() {
    let hub = Hub::start().await;
    for z in ["eng", "ops", "other"] {
        hub.app.zone(z).await;
    }
    let single = hub.token("single", Some("eng:rw"), false).await;
    let multi = hub.token("multi", Some("eng:rw,ops:rw"), false).await;
    // Something to find in the zone the callers do not hold.
    let admin = hub.token("admin", None, true).await;
    hub.app
        .rpc(
            &admin,
            "write",
            json!({"path": "/zone/other/secret.txt", "content": "secret"}),
        )
        .await
        .expect("seed other");
    let data_dir = hub.app.data_dir.path().to_string_lossy().into_owned();
    let before = hub.stored_files().await;

    let hostile = [
        "../x",
        "/../x",
        "a/../../x",
        "a\\b",
        "..\\x",
        "a\u{0}b",
        "%2e%2e/x",
        "%2e%2e%2fx",
        "/%2E%2E/x",
    ];
    for era in common::ERAS {
        let e = era.name();
        for (who, tok, prefix) in [("single", &single, ""), ("multi", &multi, "/zone/eng/")] {
            let c = connect(hub.mcp_url(), tok, era).await;
            for p in hostile {
                let path = format!("{prefix}{p}");
                let w = format!("{e}/{who}: write {path:?}");
                let msg = expect_tool_error(
                    &w,
                    try_call(
                        &c,
                        "nexus_write_file",
                        json!({"path": path, "content": "x"}),
                    )
                    .await,
                );
                assert!(!msg.contains(&data_dir), "{w}: leaks a disk path: {msg}");
                for (tool, args) in [
                    ("nexus_read_file", json!({"path": path})),
                    ("nexus_mkdir", json!({"path": path})),
                    (
                        "nexus_rename_file",
                        json!({"old_path": format!("{prefix}nothere"), "new_path": path}),
                    ),
                ] {
                    expect_tool_error(&format!("{w}: {tool}"), try_call(&c, tool, args).await);
                }
            }
            // A zone the token does not hold.
            if who == "multi" {
                for path in ["/zone/other/x", "/zone/other/secret.txt", "/zone/nope/x"] {
                    let msg = expect_tool_error(
                        &format!("{e}/{who}: {path}"),
                        try_call(
                            &c,
                            "nexus_write_file",
                            json!({"path": path, "content": "x"}),
                        )
                        .await,
                    );
                    assert!(!msg.contains("secret"), "{msg}");
                    let msg = expect_tool_error(
                        &format!("{e}/{who}: read {path}"),
                        try_call(&c, "nexus_read_file", json!({"path": path})).await,
                    );
                    assert!(!msg.contains("secret\n") && msg != "secret", "{msg}");
                }
            } else {
                // For a single-zone token `/zone/other/x` is an ordinary path in its own zone
                // (its zone is `/`): allowed, and it must land inside eng, never in `other`.
                expect_ok(
                    &format!("{e}/{who}: /zone/other/x"),
                    try_call(
                        &c,
                        "nexus_write_file",
                        json!({"path": "/zone/other/x", "content": "mine"}),
                    )
                    .await,
                );
                assert_eq!(
                    hub.stored_text("eng", "zone/other/x").await.as_deref(),
                    Some("mine")
                );
                let r = expect_ok(
                    &format!("{e}/{who}: read /zone/other/secret.txt"),
                    try_call(
                        &c,
                        "nexus_read_file",
                        json!({"path": "/zone/other/secret.txt"}),
                    )
                    .await
                    .map(|mut r| {
                        // Not found is the right answer here; turn it into text to look at.
                        r.is_error = None;
                        r
                    }),
                );
                assert!(!r.contains("secret\n") && r != "secret", "{r}");
                expect_ok(
                    &format!("{e}/{who}: cleanup"),
                    try_call(
                        &c,
                        "nexus_rmdir",
                        json!({"path": "/zone", "recursive": true}),
                    )
                    .await,
                );
            }
            // Search never reaches another zone.
            let g = expect_ok(
                &format!("{e}/{who}: grep"),
                try_call(&c, "nexus_grep", json!({"pattern": "secret", "path": "/"})).await,
            );
            assert!(!g.contains("secret.txt"), "{e}/{who}: grep {g}");
            let g = expect_ok(
                &format!("{e}/{who}: glob"),
                try_call(
                    &c,
                    "nexus_glob",
                    json!({"pattern": "**/*.txt", "path": "/"}),
                )
                .await,
            );
            assert!(!g.contains("secret.txt"), "{e}/{who}: glob {g}");
            let _ = c.cancel().await;
        }
    }
    assert_eq!(
        hub.stored_files().await,
        before,
        "hostile paths changed the zones"
    );
    assert!(
        !hub.app.data_dir.path().join("x").exists(),
        "written outside the zones"
    );
}
