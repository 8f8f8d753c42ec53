//! The markdown-aware reads and the tolerant edits (SPEC §14) through the rpc API:
//! `read` with section / block_type / offset / limit, `md_structure`, and `edit` with
//! fuzzy_threshold, preview, the diff and if_match — each change checked by reading back.

use base64::Engine as _;
use rpc_server::db::Backend;
use rpc_server::testing::{TestApp, code, sha256_hex};
use serde_json::{Value, json};

const GUIDE: &str = "---\ntitle: Guide\n---\n\nGuide\n=====\n\nIntro.\n\n## Install\n\n### Linux\n\n```sh\n# a comment, not a heading\napt install tool\n```\n\n### macOS\n\nbrew install tool\n\n## Options\n\n| name | default |\n|------|---------|\n| port | 80 |\n";

struct Zone {
    app: TestApp,
    token: String,
}

impl Zone {
    async fn new() -> Self {
        let app = TestApp::spawn(Backend::Postgres).await;
        app.zone("eng").await;
        app.zone("ops").await;
        let token = app.mint("text", Some("eng:rw,ops:r"), false).await.token;
        Self { app, token }
    }

    async fn call(&self, method: &str, params: Value) -> Result<Value, Value> {
        self.app.rpc(&self.token, method, params).await
    }

    async fn ok(&self, method: &str, params: Value) -> Value {
        let shown = params.to_string();
        self.call(method, params)
            .await
            .unwrap_or_else(|e| panic!("{method} {shown}: {e}"))
    }

    async fn read(&self, args: Value) -> Value {
        self.ok("read", args).await
    }

    async fn text(&self, path: &str) -> String {
        self.read(json!({"path": path})).await["content"]
            .as_str()
            .expect("content")
            .to_owned()
    }
}

fn message(r: &Result<Value, Value>) -> String {
    match r {
        Err(e) => e["message"].as_str().unwrap_or_default().to_owned(),
        Ok(v) => panic!("expected an error, got {v}"),
    }
}

#[tokio::test]
async fn markdown_reads() {
    let z = Zone::new().await;
    let p = "/zone/eng/guide.md";
    let w = z.ok("write", json!({"path": p, "content": GUIDE})).await;

    // A section, its lines, and the whole file's content id.
    let r = z.read(json!({"path": p, "section": "Install/Linux"})).await;
    assert_eq!(
        r["content"],
        json!("### Linux\n\n```sh\n# a comment, not a heading\napt install tool\n```\n\n")
    );
    assert_eq!((&r["start_line"], &r["end_line"]), (&json!(12), &json!(18)));
    assert_eq!(r["content_id"], w["content_id"]);
    assert_eq!(r["size"], json!(GUIDE.len()));
    assert_eq!(r["has_more"], json!(false));
    // The setext title holds everything; paths may start anywhere.
    assert_eq!(
        z.read(json!({"path": p, "section": "Guide/Install/Linux"}))
            .await["content"],
        r["content"]
    );

    // Outline, front matter, blocks.
    let o = z.read(json!({"path": p, "section": "*"})).await;
    let outline = o["content"].as_str().expect("outline");
    assert!(
        outline.starts_with("frontmatter (yaml): lines 1-3\n# Guide (lines 5-27, ~"),
        "{outline}"
    );
    assert!(
        outline.contains("\n    ### Linux (lines 12-18, ~"),
        "{outline}"
    );
    assert!(outline.contains(", code 1)"), "{outline}");
    assert_eq!(
        z.read(json!({"path": p, "section": "frontmatter"})).await["content"],
        json!("title: Guide\n")
    );
    let blocks = z.read(json!({"path": p, "block_type": "code"})).await;
    assert_eq!(
        blocks["content"],
        json!("```sh\n# a comment, not a heading\napt install tool\n```\n")
    );
    assert_eq!(blocks["start_line"], json!(14));
    let table = z
        .read(json!({"path": p, "section": "Options", "block_type": "table"}))
        .await;
    assert_eq!(
        table["content"],
        json!("| name | default |\n|------|---------|\n| port | 80 |\n")
    );

    // Line windows, of the file and of a section, with paging.
    let page = z.read(json!({"path": p, "offset": 4, "limit": 2})).await;
    assert_eq!(page["content"], json!("Guide\n=====\n"));
    assert_eq!(
        (&page["start_line"], &page["end_line"], &page["total_lines"]),
        (&json!(5), &json!(6), &json!(27))
    );
    assert_eq!(
        (&page["has_more"], &page["next_offset"]),
        (&json!(true), &json!(6))
    );
    let mut got = String::new();
    let mut offset = 0;
    for _ in 0..20 {
        let r = z
            .read(json!({"path": p, "section": "Install", "offset": offset, "limit": 3}))
            .await;
        got.push_str(r["content"].as_str().expect("content"));
        match r["next_offset"].as_u64() {
            Some(n) => offset = n,
            None => break,
        }
    }
    assert_eq!(
        got,
        z.read(json!({"path": p, "section": "Install"})).await["content"]
    );
    let past = z.read(json!({"path": p, "offset": 1000})).await;
    assert_eq!(
        (&past["content"], &past["has_more"]),
        (&json!(""), &json!(false))
    );

    // A missing section is an error, never the whole file; so are the bad combinations.
    let r = z
        .call("read", json!({"path": p, "section": "Windows"}))
        .await;
    assert_eq!(code(&r), -32602);
    let m = message(&r);
    assert!(
        m.contains("no section \"Windows\"") && m.contains("Guide/Install/Linux"),
        "{m}"
    );
    let r = z
        .call(
            "read",
            json!({"path": p, "section": "Install", "block_type": "table"}),
        )
        .await;
    assert_eq!(
        message(&r),
        "no tables in section \"Install\" of /zone/eng/guide.md"
    );
    let r = z
        .call(
            "read",
            json!({"path": p, "section": "*", "block_type": "code"}),
        )
        .await;
    assert_eq!(code(&r), -32602);
    let r = z
        .call(
            "read",
            json!({"path": p, "section": "Install", "encoding": "base64"}),
        )
        .await;
    assert_eq!(code(&r), -32602);
    let r = z
        .call("read", json!({"path": p, "block_type": "image"}))
        .await;
    assert_eq!(code(&r), -32602);
    let r = z
        .call("read", json!({"path": p, "section": "(.*)+$"}))
        .await;
    assert_eq!(code(&r), -32602);
    let bin = base64::engine::general_purpose::STANDARD.encode([0xff, 0xfe, b'#', b'\n']);
    z.ok(
        "write",
        json!({"path": "/zone/eng/bin.md", "content": bin, "encoding": "base64"}),
    )
    .await;
    let r = z
        .call("read", json!({"path": "/zone/eng/bin.md", "section": "*"}))
        .await;
    assert!(message(&r).contains("not valid UTF-8"), "{r:?}");
    // Plain reads are as they were.
    let plain = z.read(json!({"path": p})).await;
    assert_eq!(plain["content"], json!(GUIDE));
    assert!(plain.get("total_lines").is_none(), "{plain}");

    // md_structure.
    let s = z.ok("md_structure", json!({"path": p})).await;
    assert_eq!(s["total_lines"], json!(27));
    assert_eq!(s["content_id"], w["content_id"]);
    assert_eq!(
        s["frontmatter"],
        json!({"format": "yaml", "start_line": 1, "end_line": 3})
    );
    let heads: Vec<(u64, &str, &str, u64, u64)> = s["headings"]
        .as_array()
        .expect("headings")
        .iter()
        .map(|h| {
            (
                h["level"].as_u64().unwrap_or(0),
                h["title"].as_str().unwrap_or(""),
                h["path"].as_str().unwrap_or(""),
                h["start_line"].as_u64().unwrap_or(0),
                h["end_line"].as_u64().unwrap_or(0),
            )
        })
        .collect();
    assert_eq!(
        heads,
        [
            (1, "Guide", "Guide", 5, 27),
            (2, "Install", "Guide/Install", 10, 22),
            (3, "Linux", "Guide/Install/Linux", 12, 18),
            (3, "macOS", "Guide/Install/macOS", 19, 22),
            (2, "Options", "Guide/Options", 23, 27),
        ]
    );
    assert_eq!(s["headings"][2]["blocks"], json!({"code": 1}));
    assert_eq!(s["headings"][1]["blocks"], json!({}));
    assert_eq!(s["preamble_blocks"], json!({}));
    assert!(s["headings"][0]["tokens"].as_u64().unwrap_or(0) > 20, "{s}");
    assert_eq!(
        s["blocks"],
        json!([
            {"type": "code", "start_line": 14, "end_line": 17, "language": "sh"},
            {"type": "table", "start_line": 25, "end_line": 27}
        ])
    );
    assert_eq!(s["truncated"], json!(false));

    // Zones hold: a read-only zone is readable, another token's zone is not there.
    z.app
        .rpc(
            &z.app.mint("ops-writer", Some("ops:rw"), false).await.token,
            "write",
            json!({"path": "/notes.md", "content": "# Ops\n\nsecret\n"}),
        )
        .await
        .expect("ops write");
    let r = z
        .read(json!({"path": "/zone/ops/notes.md", "section": "Ops"}))
        .await;
    assert_eq!(r["content"], json!("# Ops\n\nsecret\n"));
    let outsider = z.app.mint("outsider", Some("eng:r"), false).await.token;
    let r = z
        .app
        .rpc(
            &outsider,
            "md_structure",
            json!({"path": "/../ops/notes.md"}),
        )
        .await;
    assert!(r.is_err(), "{r:?}");
    let r = z
        .app
        .rpc(&outsider, "md_structure", json!({"path": "/guide.md"}))
        .await;
    assert_eq!(r.expect("own zone")["total_lines"], json!(27));
}

#[tokio::test]
async fn tolerant_edits() {
    let z = Zone::new().await;
    let p = "/zone/eng/src.rs";
    let src = "fn total(items: &[Item]) -> u64 {\n    items.iter().map(|i| i.price).sum()\n}\n\nfn main() {\n    let  x =\t1;\n    println!(\"{x}\");\n}\n";
    let w = z.ok("write", json!({"path": p, "content": src})).await;
    let edit = |edits: Value, extra: Value| {
        let mut args = json!({"path": p, "edits": edits});
        if let (Some(a), Some(e)) = (args.as_object_mut(), extra.as_object()) {
            a.extend(e.clone());
        }
        args
    };

    // Exact: the diff comes back.
    let e = z
        .ok(
            "edit",
            edit(
                json!([{"old_str": "fn main()", "new_str": "fn start()"}]),
                json!({}),
            ),
        )
        .await;
    assert_eq!(e["replacements"], json!(1));
    assert_eq!(
        e["matches"],
        json!([{"edit": 1, "how": "exact", "line": 5, "score": 1.0, "count": 1}])
    );
    let diff = e["diff"].as_str().expect("diff");
    assert!(
        diff.starts_with("--- a/zone/eng/src.rs\n+++ b/zone/eng/src.rs\n@@ "),
        "{diff}"
    );
    assert!(diff.contains("\n-fn main() {\n+fn start() {\n"), "{diff}");
    assert_ne!(e["content_id"], w["content_id"]);

    // Whitespace drift.
    let e = z
        .ok(
            "edit",
            edit(
                json!([{"old_str": "let x = 1;", "new_str": "let x = 2;"}]),
                json!({}),
            ),
        )
        .await;
    assert_eq!(e["matches"][0]["how"], json!("whitespace"));
    assert_eq!(e["matches"][0]["line"], json!(6));
    assert!(z.text(p).await.contains("\n    let x = 2;\n"));

    // Near miss over the threshold: replaced, with its score.
    let near = "fn totl(items: &[Item]) -> u64 {\n    items.iter().map(|i| i.prices).sum()\n}\n";
    let e = z
        .ok(
            "edit",
            edit(
                json!([{"old_str": near, "new_str": "fn total() -> u64 { 0 }\n"}]),
                json!({}),
            ),
        )
        .await;
    assert_eq!(e["matches"][0]["how"], json!("fuzzy"));
    assert_eq!(e["matches"][0]["line"], json!(1));
    let score = e["matches"][0]["score"].as_f64().expect("score");
    assert!((0.85..1.0).contains(&score), "{e}");
    assert!(
        z.text(p)
            .await
            .starts_with("fn total() -> u64 { 0 }\n\nfn start() {\n")
    );

    // Near miss under the threshold: refused, nothing written.
    let before = z.ok("stat", json!({"path": p})).await["content_id"].clone();
    let r = z
        .call(
            "edit",
            edit(
                json!([{"old_str": "fn strat() {\n    let x = 3;", "new_str": "x"}]),
                json!({"fuzzy_threshold": 0.99}),
            ),
        )
        .await;
    assert_eq!(code(&r), -32602);
    let m = message(&r);
    assert!(
        m.starts_with(
            "edit 1: old_str not found in /zone/eng/src.rs exactly; the closest text, at line 3"
        ),
        "{m}"
    );
    // fuzzy_threshold 1: exact only; out of range: refused.
    let r = z
        .call(
            "edit",
            edit(
                json!([{"old_str": "let x  = 2;", "new_str": "y"}]),
                json!({"fuzzy_threshold": 1.0}),
            ),
        )
        .await;
    assert_eq!(message(&r), "edit 1: old_str not found in /zone/eng/src.rs");
    let r = z
        .call(
            "edit",
            edit(
                json!([{"old_str": "x", "new_str": "y"}]),
                json!({"fuzzy_threshold": 0.1}),
            ),
        )
        .await;
    assert_eq!(code(&r), -32602);
    assert_eq!(z.ok("stat", json!({"path": p})).await["content_id"], before);

    // Ambiguous: the lines are named, nothing changes.
    let twins = "let alpha = compute(1, 2);\nlet beta = 0;\nlet alpha = compute(1, 3);\n";
    let t = "/zone/eng/twins.rs";
    z.ok("write", json!({"path": t, "content": twins})).await;
    let r = z
        .call("edit", json!({"path": t, "edits": [{"old_str": "let alpha = compute(1, 4);", "new_str": "x"}]}))
        .await;
    let m = message(&r);
    assert!(m.contains("fuzzy matches, at lines 1, 3"), "{m}");
    let r = z
        .call(
            "edit",
            json!({"path": t, "edits": [{"old_str": "let  alpha", "new_str": "x"}]}),
        )
        .await;
    assert!(
        message(&r).contains("whitespace matches, at lines 1, 3"),
        "{r:?}"
    );
    assert_eq!(z.text(t).await, twins);

    // Preview: the diff, nothing written (content id and text unchanged).
    let cur = z.ok("stat", json!({"path": t})).await["content_id"].clone();
    let pv = z
        .ok(
            "edit",
            json!({"path": t, "preview": true, "edits": [{"old_str": "let beta = 0;", "new_str": "let beta = 1;"}]}),
        )
        .await;
    assert_eq!(pv["preview"], json!(true));
    assert_eq!(pv["content_id"], cur);
    assert_eq!(pv["content_id"], json!(sha256_hex(twins.as_bytes())));
    assert!(
        pv["diff"]
            .as_str()
            .expect("diff")
            .contains("-let beta = 0;\n+let beta = 1;\n"),
        "{pv}"
    );
    assert_eq!(z.text(t).await, twins);
    assert_eq!(z.ok("stat", json!({"path": t})).await["content_id"], cur);

    // if_match still decides, preview or not.
    let stale = json!(sha256_hex(b"something else"));
    for preview in [true, false] {
        let r = z
            .call(
                "edit",
                json!({"path": t, "preview": preview, "if_match": stale,
                       "edits": [{"old_str": "let  beta = 0;", "new_str": "let beta = 2;"}]}),
            )
            .await;
        assert_eq!(code(&r), -32006, "preview={preview}: {r:?}");
    }
    assert_eq!(z.text(t).await, twins);
    let e = z
        .ok(
            "edit",
            json!({"path": t, "if_match": cur,
                   "edits": [{"old_str": "let  beta = 0;", "new_str": "let beta = 2;"}]}),
        )
        .await;
    assert_eq!(e["matches"][0]["how"], json!("whitespace"));
    assert!(z.text(t).await.contains("\nlet beta = 2;\n"));

    // replace_all stays exact; a read-only zone stays read-only.
    let r = z
        .call("edit", json!({"path": t, "edits": [{"old_str": "let  alpha", "new_str": "x", "replace_all": true}]}))
        .await;
    assert!(
        message(&r).ends_with("(replace_all matches exactly only)"),
        "{r:?}"
    );
    let r = z
        .call("edit", json!({"path": "/zone/ops/x.md", "preview": true, "edits": [{"old_str": "a", "new_str": "b"}]}))
        .await;
    assert_eq!(code(&r), -32003, "{r:?}");
}
