//! Files as MCP resources, the prompts, completion and logging (SPEC §14), through a real
//! hub (rpc-server on Postgres, the frontend) and real clients: rmcp in both eras (a legacy
//! session and stateless 2026-07-28 requests) and the official Python SDK
//! (`tests/python/resources_prompts.py`).
//!
//! - `resources/list` pages through every file the caller may read (130 of them: two pages
//!   and more), directories left out, nothing of a zone it does not hold; each entry's URI
//!   reads back the same bytes: text as text, other bytes as a base64 blob.
//! - Reading a URI outside the caller's zones, a missing file, a foreign scheme or a path
//!   that climbs out with `..`: a JSON-RPC error, nothing read.
//! - `resources/templates/list` is `nexus://files/{path}`; `prompts/list` and `prompts/get`
//!   of the original's two prompts; `completion/complete` of paths for the template and the
//!   prompts, within the caller's view (`../` completes to nothing); `logging/setLevel` is
//!   accepted.

use crate::common;

use common::{ERAS, Era, Hub, connect};
use rmcp::model::{
    GetPromptRequestParams, PaginatedRequestParams, ReadResourceRequestParams, ResourceContents,
};
use std::collections::BTreeSet;
use std::time::Duration;

const FILES: usize = 130;

async fn seeded() -> (Hub, String, String) {
    let hub = Hub::start().await;
    hub.app.zone("eng").await;
    hub.app.zone("ops").await;
    let admin = hub.token("seeder", Some("eng:rw,ops:rw"), false).await;
    let mut files: Vec<(String, String)> = (0..FILES)
        .map(|i| {
            (
                format!("/zone/eng/many/f{i:03}.md"),
                format!("# file {i}\n"),
            )
        })
        .collect();
    files.push(("/zone/eng/notes/guide.md".into(), "# Guide\nhello\n".into()));
    files.push(("/zone/ops/secret/plan.md".into(), "ops only\n".into()));
    let refs: Vec<(&str, &str)> = files
        .iter()
        .map(|(p, c)| (p.as_str(), c.as_str()))
        .collect();
    hub.app.write_files(&admin, &refs).await;
    // A file that is not UTF-8.
    hub.app
        .rpc(
            &admin,
            "write",
            serde_json::json!({"path": "/zone/eng/bin/x.bin", "content": "//4AAQ==", "encoding": "base64"}),
        )
        .await
        .expect("write a binary file");
    let eng = hub.token("eng-reader", Some("eng:r"), false).await;
    let ops = hub.token("ops-reader", Some("ops:r"), false).await;
    (hub, eng, ops)
}

async fn all_resources(c: &common::Client) -> (Vec<rmcp::model::Resource>, usize) {
    let (mut all, mut pages, mut cursor) = (Vec::new(), 0, None);
    loop {
        let page = tokio::time::timeout(
            common::STEP,
            c.list_resources(Some(PaginatedRequestParams::default().with_cursor(cursor))),
        )
        .await
        .expect("resources/list hung")
        .expect("resources/list");
        pages += 1;
        all.extend(page.resources);
        match page.next_cursor {
            Some(next) => cursor = Some(next),
            None => return (all, pages),
        }
        assert!(pages < 50, "resources/list never ends");
    }
}

async fn read(c: &common::Client, uri: &str) -> Result<ResourceContents, String> {
    tokio::time::timeout(
        common::STEP,
        c.read_resource(ReadResourceRequestParams::new(uri)),
    )
    .await
    .expect("resources/read hung")
    .map(|r| r.contents.into_iter().next().expect("one content"))
    .map_err(|e| e.to_string())
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn files_are_resources_within_the_callers_zones_in_both_eras() {
    let (hub, eng, ops) = seeded().await;
    for era in ERAS {
        let c = connect(hub.mcp_url(), &eng, era).await;
        let (all, pages) = all_resources(&c).await;
        let uris: BTreeSet<String> = all.iter().map(|r| r.uri.clone()).collect();
        assert_eq!(uris.len(), all.len(), "{era:?}: a resource listed twice");
        assert_eq!(all.len(), FILES + 2, "{era:?}: {uris:?}");
        assert!(pages >= 2, "{era:?}: {FILES} files on one page");
        assert!(uris.contains("nexus://files/notes/guide.md"), "{uris:?}");
        assert!(uris.contains("nexus://files/bin/x.bin"), "{uris:?}");
        assert!(
            uris.iter()
                .all(|u| !u.contains("secret") && !u.ends_with('/')),
            "{era:?}: another zone or a directory listed: {uris:?}"
        );
        let guide = all
            .iter()
            .find(|r| r.uri.ends_with("guide.md"))
            .expect("guide");
        assert_eq!(guide.mime_type.as_deref(), Some("text/markdown"));
        assert_eq!(guide.size, Some(14));

        match read(&c, "nexus://files/notes/guide.md")
            .await
            .expect("read")
        {
            ResourceContents::TextResourceContents { text, uri, .. } => {
                assert_eq!(text, "# Guide\nhello\n");
                assert_eq!(uri, "nexus://files/notes/guide.md");
            }
            other => panic!("{era:?}: {other:?}"),
        }
        match read(&c, "nexus://files/bin/x.bin").await.expect("read") {
            ResourceContents::BlobResourceContents { blob, .. } => assert_eq!(blob, "//4AAQ=="),
            other => panic!("{era:?}: {other:?}"),
        }
        // Nothing outside the caller's view, whatever the URI says.
        for uri in [
            "nexus://files/zone/ops/secret/plan.md",
            "nexus://files/../ops/secret/plan.md",
            "nexus://files/notes/../../ops/secret/plan.md",
            "nexus://files/notes/missing.md",
            "file:///etc/passwd",
            "nexus://files/%FF",
        ] {
            let e = read(&c, uri).await.expect_err(uri);
            assert!(!e.contains("ops only"), "{era:?} {uri}: {e}");
        }

        let templates = c.list_all_resource_templates().await.expect("templates");
        assert_eq!(templates.len(), 1);
        assert_eq!(templates[0].uri_template, "nexus://files/{path}");

        // The other reader sees its own zone only.
        let o = connect(hub.mcp_url(), &ops, era).await;
        let (theirs, _) = all_resources(&o).await;
        let theirs: Vec<&str> = theirs.iter().map(|r| r.uri.as_str()).collect();
        assert_eq!(theirs, vec!["nexus://files/secret/plan.md"], "{era:?}");
        assert!(read(&o, "nexus://files/notes/guide.md").await.is_err());
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn prompts_completion_and_logging_answer_in_both_eras() {
    let (hub, eng, ops) = seeded().await;
    for era in ERAS {
        let c = connect(hub.mcp_url(), &eng, era).await;
        let prompts = c.list_all_prompts().await.expect("prompts/list");
        let names: BTreeSet<&str> = prompts.iter().map(|p| p.name.as_str()).collect();
        assert_eq!(
            names,
            BTreeSet::from(["file_analysis_prompt", "search_and_summarize_prompt"]),
            "{era:?}"
        );
        let mut args = serde_json::Map::new();
        args.insert("file_path".into(), "/notes/guide.md".into());
        let p = c
            .get_prompt(GetPromptRequestParams::new("file_analysis_prompt").with_arguments(args))
            .await
            .expect("prompts/get");
        let text = serde_json::to_string(&p.messages).expect("json");
        assert!(text.contains("/notes/guide.md"), "{text}");
        assert!(
            c.get_prompt(GetPromptRequestParams::new("file_analysis_prompt"))
                .await
                .is_err(),
            "{era:?}: a prompt without its argument"
        );

        let values = |info: rmcp::model::CompletionInfo| info.values;
        let v = values(
            c.complete_resource_argument("nexus://files/{path}", "path", "no", None)
                .await
                .expect("complete"),
        );
        assert_eq!(v, vec!["notes/".to_owned()], "{era:?}");
        let v = values(
            c.complete_prompt_argument("file_analysis_prompt", "file_path", "/notes/g", None)
                .await
                .expect("complete"),
        );
        assert_eq!(v, vec!["/notes/guide.md".to_owned()], "{era:?}");
        let v = values(
            c.complete_resource_argument("nexus://files/{path}", "path", "many/f12", None)
                .await
                .expect("complete"),
        );
        assert_eq!(v.len(), 10, "{era:?}: {v:?}");
        for outside in ["../", "../ops/", "/zone/ops/", "notes/../../"] {
            let v = values(
                c.complete_resource_argument("nexus://files/{path}", "path", outside, None)
                    .await
                    .expect("complete"),
            );
            assert!(v.is_empty(), "{era:?} {outside}: {v:?}");
        }
        let o = connect(hub.mcp_url(), &ops, era).await;
        let v = values(
            o.complete_resource_argument("nexus://files/{path}", "path", "", None)
                .await
                .expect("complete"),
        );
        assert_eq!(v, vec!["secret/".to_owned()], "{era:?}");
        if era == Era::Session {
            #[allow(deprecated)]
            c.set_level(rmcp::model::SetLevelRequestParams::new(
                rmcp::model::LoggingLevel::Info,
            ))
            .await
            .expect("logging/setLevel");
        }
    }

    // The official Python SDK, both eras.
    let stdout = common::auth::run_python(
        "resources_prompts.py",
        &[hub.mcp_url(), &eng],
        &[],
        Duration::from_secs(120),
    )
    .await;
    for era in ["initialize", "discover"] {
        assert!(stdout.contains(&format!("ok: {era}")), "{stdout}");
    }
}
