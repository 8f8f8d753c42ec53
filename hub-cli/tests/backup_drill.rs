//! The backup/restore drill, with the scripts operators use (`deploy/backup/`): mint tokens
//! and write files, back up, destroy the database and the data dir, restore into a new
//! database and a new data dir, and check that the same tokens verify (and a revoked one
//! stays revoked) and every file is byte-identical: the namespace and the small files
//! inline are in the database, the larger ones in the data dir's blob store.

use rpc_server::db::{Backend, Store};
use rpc_server::testing::{
    TestApp, TestDb, TestOptions, empty_postgres_database, stored_file, stored_files,
};
use serde_json::json;
use std::collections::BTreeMap;
use std::path::{Path, PathBuf};
use std::process::Command;

fn files(root: &Path) -> BTreeMap<PathBuf, Vec<u8>> {
    let mut out = BTreeMap::new();
    let mut stack = vec![root.to_path_buf()];
    while let Some(d) = stack.pop() {
        let Ok(rd) = std::fs::read_dir(&d) else {
            continue;
        };
        for e in rd.flatten() {
            let p = e.path();
            if p.is_dir() {
                stack.push(p);
            } else if let Ok(rel) = p.strip_prefix(root) {
                out.insert(rel.to_path_buf(), std::fs::read(&p).expect("read"));
            }
        }
    }
    out
}

/// Every file the hub on `store` and `data_dir` stores, `zone/path` → bytes.
async fn contents(store: &Store, data_dir: &Path) -> BTreeMap<String, Vec<u8>> {
    let mut out = BTreeMap::new();
    for f in stored_files(store).await {
        let (zone, rel) = f.split_once('/').expect("zone/path");
        let bytes = stored_file(store, data_dir, zone, rel)
            .await
            .unwrap_or_else(|| panic!("{f} is listed but not readable"));
        out.insert(f, bytes);
    }
    out
}

fn script(name: &str) -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR"))
        .join("../deploy/backup")
        .join(name)
}

fn run(cmd: &mut Command) -> String {
    let out = cmd.output().expect("run script");
    let err = String::from_utf8_lossy(&out.stderr).into_owned();
    assert!(out.status.success(), "{cmd:?} failed: {err}");
    err
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn backup_destroy_restore_keeps_tokens_and_files() {
    for tool in ["pg_dump", "pg_restore"] {
        let ok = Command::new(tool)
            .arg("--version")
            .output()
            .is_ok_and(|o| o.status.success());
        assert!(ok, "{tool} is needed: apt-get install postgresql-client");
    }
    let app = TestApp::spawn_with(Backend::Postgres, TestOptions::unthrottled()).await;
    app.zone("eng").await;
    app.zone("ops").await;
    let alice = app.mint("alice", Some("eng:rw"), false).await;
    let multi = app.mint("multi", Some("eng:rw,ops:r"), false).await;
    let admin = app.mint("root", None, true).await;
    let gone = app.mint("gone", Some("eng:r"), false).await;
    app.control.revoke_token("gone").await.expect("revoke");
    let binary: Vec<u8> = (0..=255u8).cycle().take(70_000).collect();
    let b64 = base64_encode(&binary);
    app.rpc(
        &alice.token,
        "write",
        json!({"path": "/notes/a.md", "content": "# hello\n"}),
    )
    .await
    .expect("write");
    app.rpc(
        &alice.token,
        "write",
        json!({"path": "/bin/blob", "content": b64, "encoding": "base64"}),
    )
    .await
    .expect("write");
    app.rpc(
        &admin.token,
        "write",
        json!({"path": "/zone/ops/run.txt", "content": "ops"}),
    )
    .await
    .expect("write");
    let (db, data) = app.stop().await;
    let stored = contents(&db.store, data.path()).await;
    assert_eq!(
        stored.keys().collect::<Vec<_>>(),
        ["eng/bin/blob", "eng/notes/a.md", "ops/run.txt"]
    );
    assert_eq!(stored["eng/bin/blob"], binary);
    // The data dir holds the blob too large to keep inline.
    let before = files(data.path());
    assert!(
        before.values().any(|b| *b == binary),
        "the large file is a blob in the data dir: {:?}",
        before.keys().collect::<Vec<_>>()
    );

    let backups = tempfile::tempdir().expect("tempdir");
    run(Command::new("bash")
        .arg(script("nexus-backup.sh"))
        .arg("--backup-dir")
        .arg(backups.path())
        .arg("--data-dir")
        .arg(data.path())
        .env("NEXUS_DATABASE_URL", &db.url));
    let backup = std::fs::read_dir(backups.path())
        .expect("backups")
        .flatten()
        .map(|e| e.path())
        .find(|p| p.is_dir())
        .expect("one backup folder");

    // Destroy: the database and the data dir are gone.
    drop(db);
    drop(data);

    let new_url = empty_postgres_database("nexus_restore").await;
    let new_data = tempfile::tempdir().expect("tempdir");
    run(Command::new("bash")
        .arg(script("nexus-restore.sh"))
        .arg("--database-url")
        .arg(&new_url)
        .arg("--data-dir")
        .arg(new_data.path())
        .arg(&backup));
    assert_eq!(
        files(new_data.path()),
        before,
        "the data dir is byte-identical"
    );

    let store = Store::connect(&new_url).await.expect("restored database");
    assert_eq!(
        contents(&store, new_data.path()).await,
        stored,
        "every stored file is byte-identical"
    );
    let db = TestDb {
        url: new_url,
        store,
        dir: tempfile::tempdir().expect("tempdir"),
    };
    let app = TestApp::start(db, new_data, TestOptions::unthrottled()).await;
    for t in [&alice, &multi, &admin] {
        let who = app
            .rpc(&t.token, "whoami", json!({}))
            .await
            .expect("token verifies after restore");
        assert_eq!(who["key_id"], t.key_id);
    }
    assert_eq!(
        app.rpc_raw(Some(&gone.token), "whoami", json!({})).await.0,
        401,
        "revoked stays revoked"
    );
    let read = app
        .rpc(
            &alice.token,
            "read",
            json!({"path": "/bin/blob", "encoding": "base64"}),
        )
        .await
        .expect("read");
    assert_eq!(read["content"], json!(base64_encode(&binary)));
    for (token, path, want) in [
        (&alice.token, "/notes/a.md", "# hello\n"),
        (&multi.token, "/zone/ops/run.txt", "ops"),
    ] {
        let read = app
            .rpc(token, "read", json!({"path": path}))
            .await
            .unwrap_or_else(|e| panic!("read {path} after restore: {e}"));
        assert_eq!(read["content"], want, "{path}");
    }
    app.stop().await;
}

fn base64_encode(b: &[u8]) -> String {
    use base64::Engine as _;
    base64::engine::general_purpose::STANDARD.encode(b)
}
