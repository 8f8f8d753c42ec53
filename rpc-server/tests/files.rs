//! The file methods' behaviour, through one single-zone token.

use base64::Engine as _;
use rpc_server::db::Backend;
use rpc_server::testing::{TestApp, code, sha256_hex};
use serde_json::{Value, json};

struct Zone {
    app: TestApp,
    token: String,
}

impl Zone {
    async fn new() -> Self {
        let app = TestApp::spawn(Backend::Postgres).await;
        app.zone("eng").await;
        let token = app.mint("files", Some("eng:rw"), false).await.token;
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

    async fn write(&self, path: &str, content: &str) -> Value {
        self.ok("write", json!({"path": path, "content": content}))
            .await
    }

    async fn text(&self, path: &str) -> String {
        self.ok("read", json!({"path": path})).await["content"]
            .as_str()
            .expect("content")
            .to_owned()
    }
}

fn paths(v: &Value, key: &str) -> Vec<String> {
    v["items"]
        .as_array()
        .expect("items")
        .iter()
        .map(|i| {
            if key.is_empty() {
                i.as_str().expect("item").to_owned()
            } else {
                i[key].as_str().expect("field").to_owned()
            }
        })
        .collect()
}

#[tokio::test]
async fn file_methods_behave() {
    let z = Zone::new().await;

    // ---- write / read round trip; content_id is the SHA-256 of the bytes
    let body = "hello, zone\nsecond line\n";
    let w = z.write("/notes/a.txt", body).await;
    assert_eq!(w["path"], json!("/notes/a.txt"));
    assert_eq!(w["size"], json!(body.len()));
    assert_eq!(w["content_id"], json!(sha256_hex(body.as_bytes())));
    assert_eq!(w["created"], json!(true));
    let r = z.ok("read", json!({"path": "/notes/a.txt"})).await;
    assert_eq!(r["path"], json!("/notes/a.txt"));
    assert_eq!(r["content"], json!(body));
    assert_eq!(r["encoding"], json!("utf-8"));
    assert_eq!(r["size"], json!(body.len()));
    assert_eq!(r["content_id"], w["content_id"]);
    let w2 = z.write("notes//a.txt", "v2").await;
    assert_eq!(w2["created"], json!(false));
    assert_eq!(w2["path"], json!("/notes/a.txt"), "paths are normalised");
    assert_eq!(z.text("/notes/./a.txt").await, "v2");
    let r = z.call("read", json!({"path": "/notes/missing.txt"})).await;
    assert_eq!(code(&r), -32007);

    // ---- base64 round trip of every byte value
    let bytes: Vec<u8> = (0..=255u8).rev().chain(0..=255u8).collect();
    let b64 = base64::engine::general_purpose::STANDARD.encode(&bytes);
    let w = z
        .ok(
            "write",
            json!({"path": "/bin/blob", "content": b64, "encoding": "base64"}),
        )
        .await;
    assert_eq!(w["size"], json!(bytes.len()));
    assert_eq!(w["content_id"], json!(sha256_hex(&bytes)));
    let r = z
        .ok("read", json!({"path": "/bin/blob", "encoding": "base64"}))
        .await;
    assert_eq!(r["encoding"], json!("base64"));
    let back = base64::engine::general_purpose::STANDARD
        .decode(r["content"].as_str().expect("content"))
        .expect("base64");
    assert_eq!(back, bytes);
    assert_eq!(r["content_id"], json!(sha256_hex(&bytes)));
    // Non-UTF-8 read as text: an error that points at base64.
    let r = z.call("read", json!({"path": "/bin/blob"})).await;
    assert_eq!(code(&r), -32602, "{r:?}");
    let msg = r.expect_err("error")["message"].to_string();
    assert!(msg.contains("base64"), "{msg}");
    let r = z
        .call(
            "write",
            json!({"path": "/bin/bad", "content": "!!not base64!!", "encoding": "base64"}),
        )
        .await;
    assert_eq!(code(&r), -32602, "{r:?}");

    // ---- if_match
    let v1 = z.write("/cas.txt", "one").await["content_id"].clone();
    let v2 = z
        .ok(
            "write",
            json!({"path": "/cas.txt", "content": "two", "if_match": v1}),
        )
        .await["content_id"]
        .clone();
    assert_eq!(v2, json!(sha256_hex(b"two")));
    let r = z
        .call(
            "write",
            json!({"path": "/cas.txt", "content": "three", "if_match": v1}),
        )
        .await;
    assert_eq!(code(&r), -32006, "{r:?}");
    assert_eq!(z.text("/cas.txt").await, "two");
    let r = z
        .call(
            "edit",
            json!({"path": "/cas.txt", "edits": [{"old_str": "two", "new_str": "2"}], "if_match": v1}),
        )
        .await;
    assert_eq!(code(&r), -32006, "{r:?}");
    assert_eq!(z.text("/cas.txt").await, "two");
    let r = z
        .call(
            "write",
            json!({"path": "/nothing-here.txt", "content": "x", "if_match": v1}),
        )
        .await;
    assert_eq!(code(&r), -32006, "if_match on a missing file: {r:?}");
    let st = z.ok("stat", json!({"path": "/nothing-here.txt"})).await;
    assert_eq!(st["exists"], json!(false));

    // ---- edit
    z.write("/e.txt", "alpha beta gamma beta").await;
    let e = z
        .ok(
            "edit",
            json!({"path": "/e.txt", "edits": [{"old_str": "alpha", "new_str": "ALPHA"}]}),
        )
        .await;
    assert_eq!(e["replacements"], json!(1));
    let expect = "ALPHA beta gamma beta";
    assert_eq!(e["content_id"], json!(sha256_hex(expect.as_bytes())));
    assert_eq!(e["size"], json!(expect.len()));
    assert_eq!(z.text("/e.txt").await, expect);
    let r = z
        .call(
            "edit",
            json!({"path": "/e.txt", "edits": [{"old_str": "zeta", "new_str": "x"}]}),
        )
        .await;
    assert_eq!(code(&r), -32602, "missing old_str: {r:?}");
    let r = z
        .call(
            "edit",
            json!({"path": "/e.txt", "edits": [{"old_str": "beta", "new_str": "x"}]}),
        )
        .await;
    assert_eq!(code(&r), -32602, "ambiguous old_str: {r:?}");
    assert!(
        r.expect_err("error")["message"]
            .to_string()
            .contains("replace_all")
    );
    // A failing edit later in the list leaves the earlier ones unapplied.
    let r = z
        .call(
            "edit",
            json!({"path": "/e.txt", "edits": [
                {"old_str": "gamma", "new_str": "GAMMA"},
                {"old_str": "zeta", "new_str": "x"}
            ]}),
        )
        .await;
    assert_eq!(code(&r), -32602);
    assert_eq!(z.text("/e.txt").await, expect);
    let e = z
        .ok(
            "edit",
            json!({"path": "/e.txt", "edits": [{"old_str": "beta", "new_str": "B", "replace_all": true}]}),
        )
        .await;
    assert_eq!(e["replacements"], json!(2));
    assert_eq!(z.text("/e.txt").await, "ALPHA B gamma B");
    let r = z
        .call(
            "edit",
            json!({"path": "/none.txt", "edits": [{"old_str": "a", "new_str": "b"}]}),
        )
        .await;
    assert_eq!(code(&r), -32007, "{r:?}");

    // ---- list: pagination and recursion
    for name in ["c", "a", "e", "b", "d"] {
        z.write(&format!("/dir/{name}.txt"), name).await;
    }
    z.write("/dir/sub/deep.txt", "deep").await;
    let l = z
        .ok("list", json!({"path": "/dir", "limit": 2, "offset": 0}))
        .await;
    assert_eq!(paths(&l, "path"), ["/dir/a.txt", "/dir/b.txt"]);
    assert_eq!(l["total"], json!(6));
    assert_eq!(l["has_more"], json!(true));
    assert_eq!(l["next_offset"], json!(2));
    let item = &l["items"][0];
    assert_eq!(item["name"], json!("a.txt"));
    assert_eq!(item["is_dir"], json!(false));
    assert_eq!(item["size"], json!(1));
    assert!(item["modified"].is_string(), "{item}");
    let l = z
        .ok("list", json!({"path": "/dir", "limit": 2, "offset": 4}))
        .await;
    assert_eq!(paths(&l, "path"), ["/dir/e.txt", "/dir/sub"]);
    assert_eq!(l["has_more"], json!(false));
    assert_eq!(l["next_offset"], json!(null));
    assert_eq!(l["items"][1]["is_dir"], json!(true));
    let l = z.ok("list", json!({"path": "/dir", "offset": 10})).await;
    assert_eq!(l["items"], json!([]));
    assert_eq!(l["total"], json!(6));
    let l = z
        .ok("list", json!({"path": "/dir", "recursive": true}))
        .await;
    let all = paths(&l, "path");
    assert!(all.contains(&"/dir/sub/deep.txt".to_owned()), "{all:?}");
    assert_eq!(l["total"], json!(7));
    let l = z.ok("list", json!({"path": "/dir"})).await;
    assert!(!paths(&l, "path").contains(&"/dir/sub/deep.txt".to_owned()));
    let r = z.call("list", json!({"path": "/dir", "limit": 0})).await;
    assert_eq!(code(&r), -32602);
    let r = z.call("list", json!({"path": "/no-such-dir"})).await;
    assert_eq!(code(&r), -32007);

    // ---- stat
    let s = z.ok("stat", json!({"path": "/missing"})).await;
    assert_eq!(s["exists"], json!(false));
    assert_eq!(s["path"], json!("/missing"));
    let s = z.ok("stat", json!({"path": "/dir/a.txt"})).await;
    assert_eq!(s["exists"], json!(true));
    assert_eq!(s["is_dir"], json!(false));
    assert_eq!(s["size"], json!(1));
    assert_eq!(s["content_id"], json!(sha256_hex(b"a")));
    let s = z.ok("stat", json!({"path": "/dir"})).await;
    assert_eq!(s["is_dir"], json!(true));

    // ---- mkdir / rmdir
    z.ok("mkdir", json!({"path": "/made/x/y"})).await;
    assert_eq!(
        z.ok("stat", json!({"path": "/made/x/y"})).await["is_dir"],
        json!(true)
    );
    let r = z
        .call("mkdir", json!({"path": "/made/x/y", "exist_ok": false}))
        .await;
    assert_eq!(code(&r), -32001);
    let r = z
        .call("mkdir", json!({"path": "/other/z", "parents": false}))
        .await;
    assert_eq!(code(&r), -32007, "no parent: {r:?}");
    let r = z.call("mkdir", json!({"path": "/dir/a.txt"})).await;
    assert_eq!(code(&r), -32001, "a file is in the way: {r:?}");
    z.write("/made/x/file.txt", "f").await;
    let r = z.call("rmdir", json!({"path": "/made"})).await;
    assert_eq!(
        code(&r),
        -32602,
        "non-recursive rmdir of a non-empty dir: {r:?}"
    );
    assert_eq!(z.text("/made/x/file.txt").await, "f");
    z.ok("rmdir", json!({"path": "/made", "recursive": true}))
        .await;
    assert_eq!(
        z.ok("stat", json!({"path": "/made"})).await["exists"],
        json!(false)
    );
    z.ok("mkdir", json!({"path": "/empty"})).await;
    z.ok("rmdir", json!({"path": "/empty"})).await;
    let r = z.call("rmdir", json!({"path": "/dir/a.txt"})).await;
    assert_eq!(code(&r), -32602, "rmdir of a file: {r:?}");
    let r = z.call("rmdir", json!({"path": "/"})).await;
    assert_eq!(code(&r), -32602, "rmdir of the zone root: {r:?}");

    // ---- rename
    z.write("/r/a.txt", "A").await;
    z.write("/r/b.txt", "B").await;
    let rn = z
        .ok(
            "rename",
            json!({"old_path": "/r/a.txt", "new_path": "/r/moved/c.txt"}),
        )
        .await;
    assert_eq!(rn["old_path"], json!("/r/a.txt"));
    assert_eq!(rn["new_path"], json!("/r/moved/c.txt"));
    assert_eq!(z.text("/r/moved/c.txt").await, "A");
    assert_eq!(
        z.ok("stat", json!({"path": "/r/a.txt"})).await["exists"],
        json!(false)
    );
    let r = z
        .call(
            "rename",
            json!({"old_path": "/r/moved/c.txt", "new_path": "/r/b.txt"}),
        )
        .await;
    assert_eq!(code(&r), -32001, "{r:?}");
    assert_eq!(z.text("/r/moved/c.txt").await, "A");
    assert_eq!(z.text("/r/b.txt").await, "B");
    z.ok(
        "rename",
        json!({"old_path": "/r/moved/c.txt", "new_path": "/r/b.txt", "overwrite": true}),
    )
    .await;
    assert_eq!(z.text("/r/b.txt").await, "A");
    assert_eq!(
        z.ok("stat", json!({"path": "/r/moved/c.txt"})).await["exists"],
        json!(false)
    );
    let r = z
        .call(
            "rename",
            json!({"old_path": "/r/nope.txt", "new_path": "/r/x.txt"}),
        )
        .await;
    assert_eq!(code(&r), -32007, "{r:?}");
    let r = z
        .call("rename", json!({"old_path": "/r", "new_path": "/r/inside"}))
        .await;
    assert_eq!(code(&r), -32602, "a directory into itself: {r:?}");

    // ---- delete
    z.ok("delete", json!({"path": "/r/b.txt"})).await;
    let r = z.call("delete", json!({"path": "/r/b.txt"})).await;
    assert_eq!(code(&r), -32007);
    let r = z.call("delete", json!({"path": "/dir"})).await;
    assert_eq!(code(&r), -32602, "delete of a directory: {r:?}");
}

#[tokio::test]
async fn glob_grep_and_the_size_limit() {
    let z = Zone::new().await;
    for (path, content) in [
        ("/top.md", "Hello top\nnothing\n"),
        ("/other.txt", "hello txt\n"),
        ("/docs/guide.md", "intro\nHELLO guide\nhello again\n"),
        ("/docs/deep/more.md", "no match here\n"),
        ("/docs/deep/note.txt", "HeLLo deep\n"),
    ] {
        z.write(path, content).await;
    }

    // glob: `**/*.md` at any depth, `*.md` only at the top (`*` never crosses `/`).
    let g = z.ok("glob", json!({"pattern": "**/*.md"})).await;
    assert_eq!(
        paths(&g, ""),
        ["/docs/deep/more.md", "/docs/guide.md", "/top.md"]
    );
    assert_eq!(g["total"], json!(3));
    assert_eq!(g["has_more"], json!(false));
    let g = z.ok("glob", json!({"pattern": "*.md"})).await;
    assert_eq!(paths(&g, ""), ["/top.md"]);
    let g = z
        .ok("glob", json!({"pattern": "*.md", "path": "/docs"}))
        .await;
    assert_eq!(paths(&g, ""), ["/docs/guide.md"]);
    let g = z
        .ok("glob", json!({"pattern": "**/*.md", "limit": 2}))
        .await;
    assert_eq!(g["items"].as_array().expect("items").len(), 2);
    assert_eq!(g["total"], json!(3));
    assert_eq!(g["has_more"], json!(true));

    // grep: regex, case, line numbers, pagination.
    let r = z.ok("grep", json!({"pattern": "hello"})).await;
    let hits: Vec<(String, u64)> = r["items"]
        .as_array()
        .expect("items")
        .iter()
        .map(|m| {
            (
                m["path"].as_str().expect("path").to_owned(),
                m["line"].as_u64().expect("line"),
            )
        })
        .collect();
    assert_eq!(
        hits,
        [
            ("/docs/guide.md".to_owned(), 3),
            ("/other.txt".to_owned(), 1)
        ]
    );
    let r = z
        .ok("grep", json!({"pattern": "hello", "ignore_case": true}))
        .await;
    assert_eq!(r["total"], json!(5), "{r}");
    let first = &r["items"][0];
    assert_eq!(first["path"], json!("/docs/deep/note.txt"));
    assert_eq!(first["line"], json!(1));
    assert_eq!(first["text"], json!("HeLLo deep"));
    let guide: Vec<u64> = r["items"]
        .as_array()
        .expect("items")
        .iter()
        .filter(|m| m["path"] == json!("/docs/guide.md"))
        .map(|m| m["line"].as_u64().expect("line"))
        .collect();
    assert_eq!(guide, [2, 3]);
    let r = z
        .ok(
            "grep",
            json!({"pattern": "^h.*o\\b", "ignore_case": true, "path": "/docs", "limit": 1, "offset": 1}),
        )
        .await;
    assert_eq!(r["total"], json!(3), "{r}");
    assert_eq!(r["items"].as_array().expect("items").len(), 1);
    assert_eq!(r["has_more"], json!(true));
    let r = z.call("grep", json!({"pattern": "(unclosed"})).await;
    assert_eq!(code(&r), -32602);

    // Over the size limit (1 MiB in tests): refused, and the old content is whole.
    let old = "old content that must survive\n".repeat(100);
    let w = z.write("/big.txt", &old).await;
    let too_big = "y".repeat(1024 * 1024 + 1);
    let r = z
        .call("write", json!({"path": "/big.txt", "content": too_big}))
        .await;
    assert_eq!(code(&r), -32008, "{r:?}");
    let back = z.ok("read", json!({"path": "/big.txt"})).await;
    assert_eq!(back["content"], json!(old));
    assert_eq!(back["content_id"], w["content_id"]);
    // Exactly at the limit is fine.
    let at_limit = "z".repeat(1024 * 1024);
    let w = z.write("/limit.txt", &at_limit).await;
    assert_eq!(w["size"], json!(1024 * 1024));
    // An edit that would grow past the limit fails too, leaving the file alone.
    let r = z
        .call(
            "edit",
            json!({"path": "/limit.txt", "edits": [{"old_str": "zz", "new_str": "zzz", "replace_all": true}]}),
        )
        .await;
    assert_eq!(code(&r), -32008, "edit past the limit: {r:?}");
    let s = z.ok("stat", json!({"path": "/limit.txt"})).await;
    assert_eq!(s["size"], json!(1024 * 1024));
}

/// Small files live in the database (one query reads them), large ones in the blob store;
/// both read back exactly what was written.
#[tokio::test]
async fn small_files_live_in_the_database_and_large_ones_in_the_blob_store() {
    let z = Zone::new().await;
    let inline = r#"nexus_file_reads_total{source="database"}"#;
    let blocking = r#"nexus_file_reads_total{source="store"}"#;
    let small = "s".repeat(1000);
    let large: String = (0..200 * 1024u32)
        .map(|i| char::from(b'a' + (i % 26) as u8))
        .collect();
    z.write("/small.txt", &small).await;
    z.write("/large.txt", &large).await;
    let (i0, b0) = (z.app.metric(inline).await, z.app.metric(blocking).await);
    assert_eq!(z.text("/small.txt").await, small);
    assert_eq!(
        (
            z.app.metric(inline).await - i0,
            z.app.metric(blocking).await - b0
        ),
        (1, 0),
        "the small file came from the database"
    );
    assert_eq!(
        sha256_hex(z.text("/large.txt").await.as_bytes()),
        sha256_hex(large.as_bytes())
    );
    assert_eq!(
        (
            z.app.metric(inline).await - i0,
            z.app.metric(blocking).await - b0
        ),
        (1, 1),
        "the large file came from the blob store"
    );
}
