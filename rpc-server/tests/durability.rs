//! What the server promises about data: acknowledged writes and tokens survive a restart,
//! failed writes leave the old content whole, writes are atomic to readers, and no
//! temporary files are left behind in the blob store.

use rpc_server::db::Backend;
use rpc_server::testing::{BACKENDS, TestApp, TestOptions, code, sha256_hex};
use serde_json::{Value, json};
use std::path::Path;

/// A JSON-RPC call usable from spawned tasks (no borrow of the [`TestApp`]).
async fn call(
    client: &reqwest::Client,
    base: &str,
    token: &str,
    method: &str,
    params: Value,
) -> Result<Value, Value> {
    let resp = client
        .post(format!("{base}/api/nfs/{method}"))
        .bearer_auth(token)
        .json(&json!({"jsonrpc": "2.0", "id": 1, "method": method, "params": params}))
        .send()
        .await
        .expect("request");
    assert_eq!(resp.status().as_u16(), 200);
    let v: Value = resp.json().await.expect("json");
    match v.get("error") {
        Some(e) => Err(e.clone()),
        None => Ok(v["result"].clone()),
    }
}

/// Names of in-flight temporary files anywhere under `dir` (the blob store's).
fn temp_files(dir: &Path) -> Vec<String> {
    walkdir::WalkDir::new(dir)
        .into_iter()
        .map(|e| e.expect("walk"))
        .filter(|e| e.file_name().to_string_lossy().starts_with(".tmp-"))
        .map(|e| e.path().display().to_string())
        .collect()
}

#[tokio::test]
async fn acknowledged_writes_and_tokens_survive_a_restart() {
    for backend in BACKENDS {
        let app = TestApp::spawn(backend).await;
        for z in ["eng", "gone"] {
            app.zone(z).await;
        }
        let user = app.mint("user", Some("eng:rw"), false).await;
        let idle = app.mint("idle", Some("eng:r"), false).await;
        let admin = app.mint("root", None, true).await;
        let revoked = app.mint("revoked", Some("eng:rw"), false).await;
        let zoned = app.mint("zoned", Some("gone:rw"), false).await;
        app.control.revoke_token("revoked").await.expect("revoke");
        app.control.delete_zone("gone").await.expect("delete zone");

        let binary: Vec<u8> = (0..=255u8).cycle().take(70_000).collect();
        let b64 = base64_encode(&binary);
        let files = [
            ("/a.txt", json!({"path": "/a.txt", "content": "alpha\n"})),
            (
                "/deep/er/b.md",
                json!({"path": "/deep/er/b.md", "content": "# b\n".repeat(1000)}),
            ),
            (
                "/bin.dat",
                json!({"path": "/bin.dat", "content": b64, "encoding": "base64"}),
            ),
        ];
        let mut ids = Vec::new();
        for (path, params) in &files {
            let w = app
                .rpc(&user.token, "write", params.clone())
                .await
                .expect("write");
            ids.push((*path, w["content_id"].clone()));
        }
        assert_eq!(ids[2].1, json!(sha256_hex(&binary)));
        app.rpc(
            &user.token,
            "edit",
            json!({"path": "/a.txt", "edits": [{"old_str": "alpha", "new_str": "ALPHA"}]}),
        )
        .await
        .expect("edit");
        app.rpc(&user.token, "mkdir", json!({"path": "/empty-dir"}))
            .await
            .expect("mkdir");

        let (db, dir) = app.stop().await;
        let app = TestApp::start(db, dir, TestOptions::default()).await;

        // The same raw tokens still authenticate, with the same identities.
        let w = app
            .rpc(&user.token, "whoami", json!({}))
            .await
            .expect("user token after restart");
        assert_eq!(w["key_id"], json!(user.key_id), "{backend:?}");
        assert_eq!(w["zones"], json!([{"zone": "eng", "permission": "rw"}]));
        let w = app
            .rpc(&admin.token, "whoami", json!({}))
            .await
            .expect("admin token after restart");
        assert_eq!(w["is_admin"], json!(true));
        // Refusals survive too.
        assert_eq!(
            app.rpc_raw(Some(&revoked.token), "whoami", json!({}))
                .await
                .0,
            401
        );
        assert_eq!(
            app.rpc_raw(Some(&zoned.token), "whoami", json!({})).await.0,
            401
        );

        // Files: same bytes, same content ids.
        let r = app
            .rpc(&user.token, "read", json!({"path": "/a.txt"}))
            .await
            .expect("read a");
        assert_eq!(r["content"], json!("ALPHA\n"), "{backend:?}");
        let r = app
            .rpc(&user.token, "read", json!({"path": "/deep/er/b.md"}))
            .await
            .expect("read b");
        assert_eq!(r["content_id"], ids[1].1);
        let r = app
            .rpc(
                &user.token,
                "read",
                json!({"path": "/bin.dat", "encoding": "base64"}),
            )
            .await
            .expect("read bin");
        assert_eq!(r["content"], json!(b64));
        assert_eq!(r["content_id"], ids[2].1);
        let s = app
            .rpc(&user.token, "stat", json!({"path": "/empty-dir"}))
            .await
            .expect("stat dir");
        assert_eq!(s["is_dir"], json!(true));

        // last_used_at was recorded (flushed in batches and at shutdown), and only for
        // tokens that were used.
        let list = app.control.list_tokens(true).await.expect("list");
        let used = list.iter().find(|t| t.name == "user").expect("user");
        assert!(used.last_used_at.is_some(), "{backend:?}: {used:?}");
        let never = list.iter().find(|t| t.name == "idle").expect("idle");
        assert!(never.last_used_at.is_none(), "{backend:?}: {never:?}");
        assert_eq!(
            app.rpc_raw(Some(&idle.token), "whoami", json!({})).await.0,
            200
        );

        assert!(temp_files(app.data_dir.path()).is_empty());
        app.stop().await;
    }
}

fn base64_encode(bytes: &[u8]) -> String {
    use base64::Engine as _;
    base64::engine::general_purpose::STANDARD.encode(bytes)
}

#[tokio::test]
async fn failed_writes_leave_the_old_content_whole() {
    let app = TestApp::spawn(Backend::Postgres).await;
    app.zone("eng").await;
    let t = app.mint("w", Some("eng:rw"), false).await.token;
    let old = "line of the original content\n".repeat(2000);
    let w = app
        .rpc(&t, "write", json!({"path": "/doc.txt", "content": old}))
        .await
        .expect("write");
    let old_id = w["content_id"].clone();
    app.rpc(
        &t,
        "write",
        json!({"path": "/file-not-dir", "content": "f"}),
    )
    .await
    .expect("write");

    let big = "n".repeat(1024 * 1024 + 10);
    let failures = [
        (
            json!({"path": "/doc.txt", "content": big}),
            -32008,
            "over the size limit",
        ),
        (
            json!({"path": "/doc.txt", "content": "new", "if_match": sha256_hex(b"stale")}),
            -32006,
            "if_match conflict",
        ),
        (
            json!({"path": "/doc.txt", "content": "%%%", "encoding": "base64"}),
            -32602,
            "bad base64",
        ),
    ];
    for (params, want, what) in failures {
        let r = app.rpc(&t, "write", params).await;
        assert_eq!(code(&r), want, "{what}: {r:?}");
        let back = app
            .rpc(&t, "read", json!({"path": "/doc.txt"}))
            .await
            .expect("read");
        assert_eq!(back["content_id"], old_id, "{what}");
        assert_eq!(back["content"], json!(old), "{what}");
    }
    let r = app
        .rpc(&t, "edit", json!({"path": "/doc.txt", "edits": [{"old_str": "original", "new_str": "x".repeat(2000), "replace_all": true}]}))
        .await;
    assert_eq!(code(&r), -32008, "{r:?}");
    // A write below a file fails without touching the file.
    let r = app
        .rpc(
            &t,
            "write",
            json!({"path": "/file-not-dir/child", "content": "c"}),
        )
        .await;
    assert_eq!(code(&r), -32004, "a parent is a file: {r:?}");

    let f = app
        .rpc(&t, "read", json!({"path": "/file-not-dir"}))
        .await
        .expect("read");
    assert_eq!(f["content"], json!("f"));
    assert!(
        temp_files(app.data_dir.path()).is_empty(),
        "{:?}",
        temp_files(app.data_dir.path())
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn concurrent_writes_are_atomic_and_leave_no_temp_files() {
    let app = TestApp::spawn_with(Backend::Postgres, TestOptions::unthrottled()).await;
    app.zone("eng").await;
    let t = app.mint("busy", Some("eng:rw"), false).await.token;
    const LEN: usize = 64 * 1024;
    let a = "a".repeat(LEN);
    let b = "b".repeat(LEN);
    app.rpc(&t, "write", json!({"path": "/shared.txt", "content": a}))
        .await
        .expect("seed");

    // Writers flip the shared file between two contents and churn other files; readers
    // must only ever see one whole version.
    let mut tasks = Vec::new();
    for w in 0..4 {
        let (client, base, t) = (app.client.clone(), app.base.clone(), t.clone());
        let (a, b) = (a.clone(), b.clone());
        tasks.push(tokio::spawn(async move {
            for i in 0..25 {
                let content = if (w + i) % 2 == 0 { &a } else { &b };
                call(
                    &client,
                    &base,
                    &t,
                    "write",
                    json!({"path": "/shared.txt", "content": content}),
                )
                .await
                .expect("shared write");
                let own = format!("/w{w}/f{}.txt", i % 5);
                call(
                    &client,
                    &base,
                    &t,
                    "write",
                    json!({"path": own, "content": format!("{w}-{i}")}),
                )
                .await
                .expect("own write");
                if i % 5 == 4 {
                    call(
                        &client,
                        &base,
                        &t,
                        "rename",
                        json!({"old_path": own, "new_path": format!("/w{w}/renamed-{i}.txt")}),
                    )
                    .await
                    .expect("rename");
                }
            }
            0usize
        }));
    }
    for _ in 0..2 {
        let (client, base, t) = (app.client.clone(), app.base.clone(), t.clone());
        tasks.push(tokio::spawn(async move {
            let mut reads = 0;
            for _ in 0..40 {
                let r = call(&client, &base, &t, "read", json!({"path": "/shared.txt"}))
                    .await
                    .expect("read");
                let c = r["content"].as_str().expect("content");
                assert_eq!(c.len(), LEN, "torn read: {} bytes", c.len());
                let first = c.as_bytes()[0];
                assert!(c.bytes().all(|x| x == first), "mixed content in one read");
                assert_eq!(r["content_id"], json!(sha256_hex(c.as_bytes())));
                reads += 1;
            }
            reads
        }));
    }
    let mut reads = 0;
    for task in tasks {
        reads += task.await.expect("task");
    }
    assert_eq!(reads, 80);

    let blobs = app.data_dir.path();
    assert!(temp_files(blobs).is_empty(), "{:?}", temp_files(blobs));
    // Listings never show temporary files either.
    let l = app
        .rpc(
            &t,
            "list",
            json!({"path": "/", "recursive": true, "limit": 1000}),
        )
        .await
        .expect("list");
    assert!(!l.to_string().contains(".nexus-tmp-"));
    // shared.txt, and per writer: its directory, f0-f3 (f4 was renamed away each time)
    // and the five renamed files.
    assert_eq!(l["total"], json!(1 + 4 * (1 + 4 + 5)), "{l}");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn racing_if_match_writers_have_exactly_one_winner() {
    let app = TestApp::spawn_with(Backend::Postgres, TestOptions::unthrottled()).await;
    app.zone("eng").await;
    let t = app.mint("cas", Some("eng:rw"), false).await.token;
    for round in 0..5 {
        let path = format!("/cas-{round}.txt");
        let base_id = app
            .rpc(&t, "write", json!({"path": path, "content": "base"}))
            .await
            .expect("seed")["content_id"]
            .clone();
        let mut tasks = Vec::new();
        for i in 0..8 {
            let (client, base, t, path, base_id) = (
                app.client.clone(),
                app.base.clone(),
                t.clone(),
                path.clone(),
                base_id.clone(),
            );
            tasks.push(tokio::spawn(async move {
                let content = format!("writer-{i}");
                let r = call(
                    &client,
                    &base,
                    &t,
                    "write",
                    json!({"path": path, "content": content, "if_match": base_id}),
                )
                .await;
                (content, r)
            }));
        }
        let mut winners = Vec::new();
        for task in tasks {
            let (content, r) = task.await.expect("task");
            match r {
                Ok(_) => winners.push(content),
                Err(e) => assert_eq!(e["code"], json!(-32006), "{e}"),
            }
        }
        assert_eq!(winners.len(), 1, "round {round}: winners {winners:?}");
        let r = app
            .rpc(&t, "read", json!({"path": path}))
            .await
            .expect("read");
        assert_eq!(r["content"], json!(winners[0]));
    }
}
