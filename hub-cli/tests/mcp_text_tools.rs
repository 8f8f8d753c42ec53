//! The markdown-aware and tolerant file tools (SPEC §14) through rmcp, in both lifecycles
//! (stateless 2026-07-28 and legacy sessions): `nexus_read_file` with section, block_type,
//! offset/limit (the paging note), `nexus_md_structure`, and `nexus_edit_file` with fuzzy
//! matching, preview and the diff — every change checked in the hub's storage.

use crate::common;

use common::{ERAS, Hub, connect, expect_json, expect_ok, expect_tool_error, list_tools, try_call};
use serde_json::json;

const DOC: &str = "---\nowner: docs\n---\n\nHandbook\n========\n\n## Install\n\n### Linux\n\n```bash\n# comment, not a heading\nmake install\n```\n\n## Usage\n\n| flag | meaning |\n|------|---------|\n| -v | verbose |\n\nRun the tool.\n";

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn text_tools_in_both_eras() {
    let hub = Hub::start().await;
    hub.app.zone("eng").await;
    let token = hub.token("text-tools", Some("eng:rw"), false).await;
    for era in ERAS {
        let who = era.name();
        let c = connect(hub.mcp_url(), &token, era).await;
        let tools = list_tools(&c).await;
        let md = tools
            .iter()
            .find(|t| t.name == "nexus_md_structure")
            .unwrap_or_else(|| panic!("{who}: nexus_md_structure listed"));
        assert_eq!(
            md.annotations.as_ref().and_then(|a| a.read_only_hint),
            Some(true)
        );
        let read = tools
            .iter()
            .find(|t| t.name == "nexus_read_file")
            .expect("read tool");
        for arg in ["section", "block_type", "offset", "limit"] {
            assert!(
                read.input_schema["properties"].get(arg).is_some(),
                "{who}: read has {arg}"
            );
        }
        let edit = tools
            .iter()
            .find(|t| t.name == "nexus_edit_file")
            .expect("edit tool");
        for arg in ["fuzzy_threshold", "preview", "if_match"] {
            assert!(
                edit.input_schema["properties"].get(arg).is_some(),
                "{who}: edit has {arg}"
            );
        }

        let path = format!("/{who}/handbook.md");
        let stored = format!("{who}/handbook.md");
        expect_ok(
            &format!("{who}: write"),
            try_call(
                &c,
                "nexus_write_file",
                json!({"path": path, "content": DOC}),
            )
            .await,
        );

        // Sections, blocks, front matter, outline.
        let linux = expect_ok(
            &format!("{who}: section"),
            try_call(
                &c,
                "nexus_read_file",
                json!({"path": path, "section": "Install/Linux"}),
            )
            .await,
        );
        assert_eq!(
            linux,
            "### Linux\n\n```bash\n# comment, not a heading\nmake install\n```\n\n"
        );
        let code = expect_ok(
            &format!("{who}: code blocks"),
            try_call(
                &c,
                "nexus_read_file",
                json!({"path": path, "block_type": "code"}),
            )
            .await,
        );
        assert_eq!(
            code,
            "```bash\n# comment, not a heading\nmake install\n```\n"
        );
        let table = expect_ok(
            &format!("{who}: tables"),
            try_call(
                &c,
                "nexus_read_file",
                json!({"path": path, "section": "Handbook/Usage", "block_type": "table"}),
            )
            .await,
        );
        assert_eq!(
            table,
            "| flag | meaning |\n|------|---------|\n| -v | verbose |\n"
        );
        let fm = expect_ok(
            &format!("{who}: front matter"),
            try_call(
                &c,
                "nexus_read_file",
                json!({"path": path, "section": "frontmatter"}),
            )
            .await,
        );
        assert_eq!(fm, "owner: docs\n");
        let outline = expect_ok(
            &format!("{who}: outline"),
            try_call(&c, "nexus_read_file", json!({"path": path, "section": "*"})).await,
        );
        assert!(
            outline.contains("\n    ### Linux (lines 10-16, ~"),
            "{who}: {outline}"
        );

        // A window with more after it: the text, then a note with the next offset.
        let r = try_call(
            &c,
            "nexus_read_file",
            json!({"path": path, "offset": 4, "limit": 2}),
        )
        .await
        .expect("paged read");
        let blocks: Vec<String> = r
            .content
            .iter()
            .filter_map(|c| c.as_text().map(|t| t.text.clone()))
            .collect();
        assert_eq!(
            blocks,
            [
                "Handbook\n========\n",
                "[23 lines in all; more follow: read again with offset=6]"
            ],
            "{who}"
        );
        // The last window has no note.
        let r = try_call(&c, "nexus_read_file", json!({"path": path, "offset": 22}))
            .await
            .expect("tail");
        assert_eq!(r.content.len(), 1, "{who}");

        let missing = expect_tool_error(
            &format!("{who}: missing section"),
            try_call(
                &c,
                "nexus_read_file",
                json!({"path": path, "section": "Windows"}),
            )
            .await,
        );
        assert!(
            missing.contains("no section \"Windows\"")
                && missing.contains("Handbook/Install/Linux"),
            "{who}: {missing}"
        );

        let s = expect_json(
            &format!("{who}: md_structure"),
            try_call(&c, "nexus_md_structure", json!({"path": path})).await,
        );
        let paths: Vec<&str> = s["headings"]
            .as_array()
            .expect("headings")
            .iter()
            .filter_map(|h| h["path"].as_str())
            .collect();
        assert_eq!(
            paths,
            [
                "Handbook",
                "Handbook/Install",
                "Handbook/Install/Linux",
                "Handbook/Usage"
            ]
        );
        assert_eq!(s["frontmatter"]["end_line"], json!(3), "{who}: {s}");
        assert_eq!(s["blocks"][0]["language"], json!("bash"), "{who}: {s}");

        // Fuzzy edit, previewed first: the diff, and nothing written.
        let args = |preview: bool| {
            json!({"path": path, "preview": preview,
                   "edits": [{"old_str": "meke install", "new_str": "make install PREFIX=/usr"}]})
        };
        let before = hub.stored_text("eng", &stored).await;
        let pv = expect_json(
            &format!("{who}: preview"),
            try_call(&c, "nexus_edit_file", args(true)).await,
        );
        assert_eq!(pv["preview"], json!(true), "{who}: {pv}");
        assert!(
            pv["diff"]
                .as_str()
                .unwrap_or_default()
                .contains("+make install PREFIX=/usr\n"),
            "{who}: {pv}"
        );
        assert_eq!(
            hub.stored_text("eng", &stored).await,
            before,
            "{who}: preview wrote"
        );
        let e = expect_json(
            &format!("{who}: fuzzy edit"),
            try_call(&c, "nexus_edit_file", args(false)).await,
        );
        assert_eq!(e["matches"][0]["how"], json!("fuzzy"), "{who}: {e}");
        assert_eq!(e["matches"][0]["line"], json!(14), "{who}: {e}");
        let after = hub.stored_text("eng", &stored).await.unwrap_or_default();
        assert!(
            after.contains("\nmake install PREFIX=/usr\n```\n"),
            "{who}: {after}"
        );

        // Ambiguity names lines; a stale if_match is a conflict; both change nothing.
        expect_ok(
            &format!("{who}: twins"),
            try_call(
                &c,
                "nexus_write_file",
                json!({"path": format!("/{who}/twins.txt"), "content": "value = 1\nother\nvalue  = 1\n"}),
            )
            .await,
        );
        let amb = expect_tool_error(
            &format!("{who}: ambiguous"),
            try_call(
                &c,
                "nexus_edit_file",
                json!({"path": format!("/{who}/twins.txt"), "edits": [{"old_str": "value =  1", "new_str": "v"}]}),
            )
            .await,
        );
        assert!(amb.contains("at lines 1, 3"), "{who}: {amb}");
        let stale = expect_tool_error(
            &format!("{who}: stale if_match"),
            try_call(
                &c,
                "nexus_edit_file",
                json!({"path": path, "if_match": "0".repeat(64),
                       "edits": [{"old_str": "Run the tool.", "new_str": "Run it."}]}),
            )
            .await,
        );
        assert!(
            stale.contains("conflict") || stale.contains("changed"),
            "{who}: {stale}"
        );
        assert_eq!(
            hub.stored_text("eng", &stored).await.as_deref(),
            Some(after.as_str())
        );
        c.cancel().await.ok();
    }
}

/// A search called with a `progressToken` reports progress while the hub works, in both
/// eras (the interval is 1 ms here, so every call is long enough to report): each
/// `notifications/progress` carries the caller's token and rises; the answer follows them
/// on the same stream. Without a token, none is sent.
#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn long_searches_report_progress_to_a_client_that_asks() {
    use common::mcp::{bearer, open_session, post, send};
    let app = rpc_server::testing::TestApp::spawn(rpc_server::db::Backend::Sqlite).await;
    let fe = common::spawn_frontend_with(&app.base, |c| {
        c.progress_interval = std::time::Duration::from_millis(1);
    })
    .await;
    app.zone("eng").await;
    let token = app.mint("searcher", Some("eng:rw"), false).await.token;
    let files: Vec<(String, String)> = (0..200)
        .map(|i| (format!("/d/f{i}.txt"), format!("line {i}\nneedle {i}\n")))
        .collect();
    let refs: Vec<(&str, &str)> = files
        .iter()
        .map(|(p, c)| (p.as_str(), c.as_str()))
        .collect();
    app.write_files(&token, &refs).await;
    let auth = bearer(&token);
    let args = json!({"pattern": "needle [0-9]+", "path": "/"});

    let progress_of = |text: &str| -> Vec<serde_json::Value> {
        text.lines()
            .filter_map(|l| l.strip_prefix("data:"))
            .filter_map(|d| serde_json::from_str::<serde_json::Value>(d.trim()).ok())
            .filter(|m| m["method"] == "notifications/progress")
            .map(|m| m["params"].clone())
            .collect()
    };
    let check = |era: &str, text: &str| {
        let notes = progress_of(text);
        assert!(!notes.is_empty(), "{era}: no progress in {text}");
        let mut last = -1.0;
        for n in &notes {
            assert_eq!(n["progressToken"], "p-1", "{era}: {n}");
            let p = n["progress"].as_f64().expect("progress");
            assert!(p > last, "{era}: progress must rise: {notes:?}");
            last = p;
        }
        assert!(
            text.contains("needle 188"),
            "{era}: no answer after the progress: {text}"
        );
    };

    // Stateless: `_meta.progressToken` beside the era's members.
    let mut body = common::mcp::stateless_call_body("progress-test", "nexus_grep", args.clone());
    body["params"]["_meta"]["progressToken"] = json!("p-1");
    let text = send(post(&fe.mcp_url, Some(&auth), &body))
        .await
        .text()
        .await
        .expect("body");
    check("stateless", &text);
    // Without a token: one plain answer.
    let body = common::mcp::stateless_call_body("progress-test", "nexus_grep", args.clone());
    let text = send(post(&fe.mcp_url, Some(&auth), &body))
        .await
        .text()
        .await
        .expect("body");
    assert!(
        progress_of(&text).is_empty(),
        "progress nobody asked for: {text}"
    );

    // A legacy session.
    let (session, _) = open_session(&fe.mcp_url, &auth, "progress-test").await;
    let mut body = common::mcp::session_call_body("nexus_grep", args);
    body["params"]["_meta"] = json!({"progressToken": "p-1"});
    let req = post(&fe.mcp_url, Some(&auth), &body).header("mcp-session-id", &session);
    let text = send(req).await.text().await.expect("body");
    check("session", &text);
}
