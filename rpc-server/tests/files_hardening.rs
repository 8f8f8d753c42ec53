//! The file service under attack: size amplification by `edit`, reading a write-only zone
//! by moving or probing its files, symbolic links in a data directory being imported, and
//! paths at and past the normaliser's limits.

use rpc_server::db::Backend;
use rpc_server::testing::{TestApp, TestOptions, code};
use serde_json::{Value, json};
use std::io::Write;
use std::os::unix::fs::symlink;
use std::sync::{Arc, Mutex, OnceLock};

const INVALID_PATH: i64 = -32004;
const NOT_FOUND: i64 = -32007;
const PERMISSION_DENIED: i64 = -32003;
const TOO_LARGE: i64 = -32008;

fn message(r: &Result<Value, Value>) -> String {
    r.as_ref().expect_err("an error")["message"]
        .as_str()
        .expect("message")
        .to_owned()
}

// ------------------------------------------------------------------ edit amplification

#[tokio::test]
async fn an_amplifying_edit_is_refused_before_it_is_built() {
    // max_file_bytes is 1 MiB in the test options.
    let app = TestApp::spawn_with(Backend::Sqlite, TestOptions::unthrottled()).await;
    app.zone("eng").await;
    let t = app.mint("eng", Some("eng:rw"), false).await.token;
    let big = "a".repeat(1_000_000);
    let w = app
        .rpc(&t, "write", json!({"path": "/a.txt", "content": big}))
        .await
        .expect("1 MB write");
    let id = w["content_id"].clone();

    // The reported attack: 1,000,000 matches × 20,000 bytes would be 20 GB.
    let edit = json!({"path": "/a.txt", "edits": [
        {"old_str": "a", "new_str": "b".repeat(20_000), "replace_all": true}
    ]});
    let r = app.rpc(&t, "edit", edit).await;
    assert_eq!(code(&r), TOO_LARGE, "{r:?}");
    assert!(message(&r).contains("1048576"), "{}", message(&r));

    // Cumulative: each edit alone fits, the second one's result does not.
    app.rpc(
        &t,
        "write",
        json!({"path": "/b.txt", "content": "x".repeat(400_000)}),
    )
    .await
    .expect("seed");
    let r = app
        .rpc(
            &t,
            "edit",
            json!({"path": "/b.txt", "edits": [
                {"old_str": "x", "new_str": "xx", "replace_all": true},
                {"old_str": "xx", "new_str": "xxxx", "replace_all": true},
            ]}),
        )
        .await;
    assert_eq!(code(&r), TOO_LARGE, "{r:?}");
    assert!(message(&r).starts_with("edit 2"), "{}", message(&r));

    // The server still serves, and neither file changed.
    let read = app
        .rpc(&t, "read", json!({"path": "/a.txt"}))
        .await
        .expect("read after the refused edit");
    assert_eq!(read["content_id"], id);
    let b = app
        .rpc(&t, "stat", json!({"path": "/b.txt"}))
        .await
        .expect("stat");
    assert_eq!(b["size"], json!(400_000));
    // An edit within the limit still works (exactly at it, too).
    let r = app
        .rpc(
            &t,
            "edit",
            json!({"path": "/b.txt", "edits": [
                {"old_str": "x", "new_str": "xx", "replace_all": true},
                {"old_str": "xxxxxxxx", "new_str": "y", "replace_all": true},
            ]}),
        )
        .await
        .expect("edit within the limit");
    assert_eq!(r["size"], json!(100_000));
    assert_eq!(r["replacements"], json!(500_000));
}

// ------------------------------------------------------------------ write-only zones

#[tokio::test]
async fn a_write_only_zone_cannot_be_read_by_moving_or_probing() {
    let app = TestApp::spawn_with(Backend::Sqlite, TestOptions::unthrottled()).await;
    for z in ["wonly", "gamma"] {
        app.zone(z).await;
    }
    let admin = app.mint("root", None, true).await.token;
    app.write_files(
        &admin,
        &[
            ("/zone/wonly/inbox/report.txt", "secret report"),
            ("/zone/wonly/kept.txt", "kept"),
        ],
    )
    .await;
    let t = app
        .mint("mover", Some("wonly:w,gamma:rw"), false)
        .await
        .token;

    // Moving a file or a whole directory out (or within) needs `r` on the source zone.
    for (from, to) in [
        ("/zone/wonly/inbox/report.txt", "/zone/gamma/loot.txt"),
        ("/zone/wonly/inbox", "/zone/gamma/loot"),
        ("/zone/wonly/inbox/report.txt", "/zone/wonly/report.txt"),
        ("/zone/wonly/nothing.txt", "/zone/gamma/nothing.txt"),
    ] {
        let r = app
            .rpc(&t, "rename", json!({"old_path": from, "new_path": to}))
            .await;
        assert_eq!(code(&r), PERMISSION_DENIED, "{from} -> {to}: {r:?}");
        assert!(message(&r).contains("wonly"), "{}", message(&r));
    }
    let still = app
        .rpc(
            &admin,
            "read",
            json!({"path": "/zone/wonly/inbox/report.txt"}),
        )
        .await
        .expect("the report stayed");
    assert_eq!(still["content"], json!("secret report"));
    let gamma = app
        .rpc(&admin, "list", json!({"path": "/zone/gamma"}))
        .await
        .expect("list");
    assert_eq!(gamma["total"], json!(0), "{gamma}");
    // Moving into a write-only zone needs only `w` there.
    app.write_files(&t, &[("/zone/gamma/out.txt", "out")]).await;
    app.rpc(
        &t,
        "rename",
        json!({"old_path": "/zone/gamma/out.txt", "new_path": "/zone/wonly/in.txt"}),
    )
    .await
    .expect("move into a write-only zone");

    // `delete` answers alike whether or not the file was there.
    let existing = app
        .rpc(&t, "delete", json!({"path": "/zone/wonly/kept.txt"}))
        .await
        .expect("delete an existing file");
    let missing = app
        .rpc(&t, "delete", json!({"path": "/zone/wonly/never.txt"}))
        .await
        .expect("delete a missing file");
    let deep = app
        .rpc(&t, "delete", json!({"path": "/zone/wonly/no/such/dir.txt"}))
        .await
        .expect("delete below a missing directory");
    assert_eq!(existing["path"], json!("/zone/wonly/kept.txt"));
    assert_eq!(missing["path"], json!("/zone/wonly/never.txt"));
    assert_eq!(deep["path"], json!("/zone/wonly/no/such/dir.txt"));
    // …and where the caller can read, a missing file is still "not found".
    let r = app
        .rpc(&t, "delete", json!({"path": "/zone/gamma/never.txt"}))
        .await;
    assert_eq!(code(&r), -32007);

    // `if_match` is refused where the caller cannot read, matching or not, present or not.
    let report_id = hex_sha256(b"secret report");
    for (path, id) in [
        ("/zone/wonly/inbox/report.txt", report_id.as_str()),
        ("/zone/wonly/inbox/report.txt", "0000"),
        ("/zone/wonly/absent.txt", "0000"),
    ] {
        let r = app
            .rpc(
                &t,
                "write",
                json!({"path": path, "content": "over", "if_match": id}),
            )
            .await;
        assert_eq!(code(&r), PERMISSION_DENIED, "{path}: {r:?}");
    }
    let still = app
        .rpc(
            &admin,
            "read",
            json!({"path": "/zone/wonly/inbox/report.txt"}),
        )
        .await
        .expect("read");
    assert_eq!(still["content"], json!("secret report"));

    // `write` says nothing about what was there before…
    for path in ["/zone/wonly/inbox/report.txt", "/zone/wonly/brand-new.txt"] {
        let w = app
            .rpc(&t, "write", json!({"path": path, "content": "mine"}))
            .await
            .expect("write-only write");
        assert!(w.get("created").is_none(), "{path}: {w}");
        assert_eq!(w["size"], json!(4));
    }
    // …to a caller who cannot read; one who can still learns it.
    let w = app
        .rpc(
            &t,
            "write",
            json!({"path": "/zone/gamma/g.txt", "content": "g"}),
        )
        .await
        .expect("write");
    assert_eq!(w["created"], json!(true));
    let w = app
        .rpc(
            &t,
            "write",
            json!({"path": "/zone/gamma/g.txt", "content": "h"}),
        )
        .await
        .expect("write");
    assert_eq!(w["created"], json!(false));
}

fn hex_sha256(bytes: &[u8]) -> String {
    use sha2::Digest;
    hex::encode(sha2::Sha256::digest(bytes))
}

// ------------------------------------------------------------------ symbolic links

/// A data directory of an earlier release with zones alpha and beta and, inside alpha,
/// links an operator's tools might have left: a directory link to beta, a file link into
/// beta, a link to /etc/hostname, and a link to /etc. The server imports it on start.
async fn linked_zones() -> (TestApp, String, String) {
    let dir = tempfile::tempdir().expect("tempdir");
    let zones = dir.path().join("zones");
    for (path, content) in [
        ("beta/secret.txt", "beta secret"),
        ("beta/dir/inner.txt", "beta inner"),
        ("alpha/mine.txt", "alpha file"),
        ("alpha/sub/own.txt", "alpha own"),
    ] {
        let p = zones.join(path);
        std::fs::create_dir_all(p.parent().expect("parent")).expect("dirs");
        std::fs::write(&p, content).expect("file");
    }
    let alpha = zones.join("alpha");
    symlink("../beta", alpha.join("toBeta")).expect("dir link");
    symlink("../../beta/secret.txt", alpha.join("sub/betaSecret")).expect("file link");
    symlink("/etc/hostname", alpha.join("host")).expect("absolute file link");
    symlink("/etc", alpha.join("sub/etc")).expect("absolute dir link");
    let db = rpc_server::testing::TestDb::new(Backend::Sqlite).await;
    let app = TestApp::start(db, dir, TestOptions::unthrottled()).await;
    for z in ["alpha", "beta"] {
        app.zone(z).await;
    }
    let admin = app.mint("root", None, true).await.token;
    let t = app.mint("alpha", Some("alpha:rw"), false).await.token;
    (app, t, admin)
}

/// Beta and alpha's own files are as they were.
async fn nothing_escaped(app: &TestApp, admin: &str) {
    for (path, content) in [
        ("/zone/beta/secret.txt", "beta secret"),
        ("/zone/beta/dir/inner.txt", "beta inner"),
        ("/zone/alpha/mine.txt", "alpha file"),
    ] {
        let r = app
            .rpc(admin, "read", json!({"path": path}))
            .await
            .unwrap_or_else(|e| panic!("{path}: {e}"));
        assert_eq!(r["content"], json!(content), "{path}");
    }
    let beta = app
        .rpc(
            admin,
            "list",
            json!({"path": "/zone/beta", "recursive": true}),
        )
        .await
        .expect("list beta");
    let names: Vec<&str> = beta["items"]
        .as_array()
        .expect("items")
        .iter()
        .map(|i| i["path"].as_str().expect("path"))
        .collect();
    assert_eq!(
        names,
        [
            "/zone/beta/dir",
            "/zone/beta/dir/inner.txt",
            "/zone/beta/secret.txt"
        ]
    );
}

/// The namespace has no links at all: the import resolves beneath the old zones directory
/// without following any, so a link an operator left there is not imported, and a path
/// naming it is simply not there (or, for a write, a new entry of alpha's own).
#[tokio::test]
async fn links_in_an_imported_data_dir_are_never_followed() {
    let (app, t, admin) = linked_zones().await;
    let hostname = std::fs::read_to_string("/etc/hostname").unwrap_or_default();
    for p in [
        "/toBeta",
        "/toBeta/secret.txt",
        "/toBeta/dir/inner.txt",
        "/host",
        "/sub/betaSecret",
        "/sub/etc",
        "/sub/etc/hostname",
    ] {
        let r = app.rpc(&t, "read", json!({"path": p})).await;
        assert_eq!(code(&r), NOT_FOUND, "read {p}: {r:?}");
        let r = app.rpc(&t, "stat", json!({"path": p})).await.expect("stat");
        assert_eq!(r["exists"], json!(false), "{p}");
    }
    let all = app
        .rpc(&t, "list", json!({"path": "/", "recursive": true}))
        .await
        .expect("list");
    let listed: Vec<&str> = all["items"]
        .as_array()
        .expect("items")
        .iter()
        .map(|i| i["path"].as_str().expect("path"))
        .collect();
    assert_eq!(listed, ["/mine.txt", "/sub", "/sub/own.txt"]);
    for pattern in ["beta", "secret", "inner"] {
        let g = app
            .rpc(&t, "grep", json!({"pattern": pattern}))
            .await
            .expect("grep");
        assert_eq!(g["total"], json!(0), "{pattern}: {g}");
    }
    if !hostname.trim().is_empty() {
        let g = app
            .rpc(
                &t,
                "grep",
                json!({"pattern": regex_escape(hostname.trim())}),
            )
            .await
            .expect("grep");
        assert_eq!(g["total"], json!(0), "{g}");
    }
    // Writing where a link was makes alpha's own file; beta is untouched.
    app.rpc(
        &t,
        "write",
        json!({"path": "/toBeta/secret.txt", "content": "planted"}),
    )
    .await
    .expect("a new file of alpha's");
    nothing_escaped(&app, &admin).await;
    // The old directory is kept, links and all.
    let kept = app.data_dir.path().join("zones.imported/alpha");
    for link in ["toBeta", "host", "sub/betaSecret", "sub/etc"] {
        let m = std::fs::symlink_metadata(kept.join(link)).expect("link kept");
        assert!(m.file_type().is_symlink(), "{link}");
    }
}

fn regex_escape(s: &str) -> String {
    s.chars()
        .map(|c| {
            if c.is_ascii_alphanumeric() {
                c.to_string()
            } else {
                format!("\\{c}")
            }
        })
        .collect()
}

// ------------------------------------------------------------------ long paths

/// Paths live in the database, not on a disk behind the data dir: the longest the
/// normaliser admits (4096 bytes below a zone root, names up to 255 bytes) work with every
/// method, and one byte more is refused before anything is stored.
#[tokio::test]
async fn the_longest_paths_work_and_longer_ones_are_refused_up_front() {
    let log = error_log();
    let app = TestApp::spawn_with(Backend::Sqlite, TestOptions::unthrottled()).await;
    app.zone("eng").await;
    let t = app.mint("eng", Some("eng:rw"), false).await.token;
    app.write_files(&t, &[("/keep.txt", "k")]).await;

    // 16 names of 255 bytes: 4095 bytes below the zone root.
    let name = "n".repeat(255);
    let long = format!("/{}", [name.as_str(); 16].join("/"));
    assert_eq!(long.len() - 1, 4095);
    app.rpc(&t, "write", json!({"path": long, "content": "deep"}))
        .await
        .expect("write the longest path");
    let r = app
        .rpc(&t, "read", json!({"path": long}))
        .await
        .expect("read");
    assert_eq!(r["content"], json!("deep"));
    let r = app
        .rpc(&t, "stat", json!({"path": long}))
        .await
        .expect("stat");
    assert_eq!(r["size"], json!(4));
    let g = app
        .rpc(&t, "grep", json!({"pattern": "deep"}))
        .await
        .expect("grep");
    assert_eq!(g["total"], json!(1), "{g}");
    app.rpc(&t, "delete", json!({"path": long}))
        .await
        .expect("delete");

    // Past the limits: a name over 255 bytes, a path over 4096.
    let too_long = format!("{long}/xx");
    for path in [format!("/{}", "n".repeat(256)), too_long] {
        for (method, params) in [
            ("write", json!({"path": path, "content": "x"})),
            ("mkdir", json!({"path": path, "parents": true})),
            ("read", json!({"path": path})),
            ("rename", json!({"old_path": "/keep.txt", "new_path": path})),
        ] {
            let r = app.rpc(&t, method, params).await;
            assert_eq!(code(&r), INVALID_PATH, "{method}: {r:?}");
        }
    }
    // Nothing past the limits was stored; what was there still is.
    let all = app
        .rpc(
            &t,
            "list",
            json!({"path": "/", "recursive": true, "limit": 1000}),
        )
        .await
        .expect("list");
    let items = all["items"].as_array().expect("items");
    assert!(items.iter().any(|i| i["path"] == json!("/keep.txt")));
    for i in items {
        let p = i["path"].as_str().expect("path");
        assert!(p.len() <= 4096, "{p}");
        assert!(p.split('/').all(|c| c.len() <= 255), "{p}");
    }
    let logged = String::from_utf8_lossy(&log.lock().expect("log")).into_owned();
    assert!(logged.is_empty(), "ERROR lines: {logged}");
}

/// ERROR lines logged by any thread of this test process.
fn error_log() -> Arc<Mutex<Vec<u8>>> {
    static LOG: OnceLock<Arc<Mutex<Vec<u8>>>> = OnceLock::new();
    LOG.get_or_init(|| {
        let log = Arc::new(Mutex::new(Vec::new()));
        let sink = log.clone();
        let subscriber = tracing_subscriber::fmt()
            .with_max_level(tracing::Level::ERROR)
            .with_writer(move || Sink(sink.clone()))
            .finish();
        tracing::subscriber::set_global_default(subscriber).expect("one subscriber");
        log
    })
    .clone()
}

struct Sink(Arc<Mutex<Vec<u8>>>);

impl Write for Sink {
    fn write(&mut self, buf: &[u8]) -> std::io::Result<usize> {
        self.0
            .lock()
            .unwrap_or_else(|e| e.into_inner())
            .extend_from_slice(buf);
        Ok(buf.len())
    }
    fn flush(&mut self) -> std::io::Result<()> {
        Ok(())
    }
}
