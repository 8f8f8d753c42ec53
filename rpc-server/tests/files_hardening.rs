//! The file service under attack: size amplification by `edit`, reading a write-only zone
//! by moving or probing its files, symbolic links anywhere in a path (and swapped in
//! while a call runs), and paths too long for the disk once the data dir is prefixed.

use rpc_server::db::Backend;
use rpc_server::testing::{TestApp, TestOptions, code};
use serde_json::{Value, json};
use std::io::Write;
use std::os::unix::fs::symlink;
use std::path::{Path, PathBuf};
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, Mutex, OnceLock};

const INVALID_PATH: i64 = -32004;
const PERMISSION_DENIED: i64 = -32003;
const TOO_LARGE: i64 = -32008;

fn zone_dir(app: &TestApp, zone: &str) -> PathBuf {
    app.data_dir.path().join("zones").join(zone)
}

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

/// Zones alpha and beta; inside alpha, links an operator's tools might leave: a directory
/// link to beta, a file link into beta, a link to /etc/hostname, and a link to /etc.
async fn linked_zones() -> (TestApp, String, String) {
    let app = TestApp::spawn_with(Backend::Sqlite, TestOptions::unthrottled()).await;
    for z in ["alpha", "beta"] {
        app.zone(z).await;
    }
    let admin = app.mint("root", None, true).await.token;
    app.write_files(
        &admin,
        &[
            ("/zone/beta/secret.txt", "beta secret"),
            ("/zone/beta/dir/inner.txt", "beta inner"),
            ("/zone/alpha/mine.txt", "alpha file"),
            ("/zone/alpha/sub/own.txt", "alpha own"),
        ],
    )
    .await;
    let alpha = zone_dir(&app, "alpha");
    symlink("../beta", alpha.join("toBeta")).expect("dir link");
    symlink("../../beta/secret.txt", alpha.join("sub/betaSecret")).expect("file link");
    symlink("/etc/hostname", alpha.join("host")).expect("absolute file link");
    symlink("/etc", alpha.join("sub/etc")).expect("absolute dir link");
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
    let mut names: Vec<&str> = beta["items"]
        .as_array()
        .expect("items")
        .iter()
        .map(|i| i["path"].as_str().expect("path"))
        .collect();
    names.sort_unstable();
    assert_eq!(
        names,
        [
            "/zone/beta/dir",
            "/zone/beta/dir/inner.txt",
            "/zone/beta/secret.txt"
        ]
    );
    let alpha = zone_dir(app, "alpha");
    for link in ["toBeta", "host", "sub/betaSecret", "sub/etc"] {
        let m = std::fs::symlink_metadata(alpha.join(link)).expect("link kept");
        assert!(m.file_type().is_symlink(), "{link}");
    }
}

#[tokio::test]
async fn links_are_never_followed_by_any_method() {
    let (app, t, admin) = linked_zones().await;
    let hostname = std::fs::read_to_string("/etc/hostname").unwrap_or_default();

    // Links at the end of a path, and in the middle of one.
    let through = [
        "/toBeta",
        "/toBeta/secret.txt",
        "/toBeta/dir/inner.txt",
        "/host",
        "/sub/betaSecret",
        "/sub/etc",
        "/sub/etc/hostname",
    ];
    let edit = |p: &str| json!({"path": p, "edits": [{"old_str": "e", "new_str": "E", "replace_all": true}]});
    for p in through {
        let calls = [
            ("read", json!({"path": p})),
            ("stat", json!({"path": p})),
            ("write", json!({"path": p, "content": "planted"})),
            (
                "write",
                json!({"path": format!("{p}/new.txt"), "content": "planted"}),
            ),
            ("edit", edit(p)),
            ("delete", json!({"path": p})),
            ("list", json!({"path": p})),
            ("list", json!({"path": p, "recursive": true})),
            ("mkdir", json!({"path": p, "exist_ok": true})),
            (
                "mkdir",
                json!({"path": format!("{p}/made"), "parents": true}),
            ),
            ("rmdir", json!({"path": p, "recursive": true})),
            ("rename", json!({"old_path": p, "new_path": "/stolen"})),
            (
                "rename",
                json!({"old_path": "/mine.txt", "new_path": format!("{p}/planted.txt")}),
            ),
            ("glob", json!({"pattern": "**", "path": p})),
            ("grep", json!({"pattern": "e", "path": p})),
        ];
        for (method, params) in calls {
            let r = app.rpc(&t, method, params.clone()).await;
            assert_eq!(code(&r), INVALID_PATH, "{method} {params}: {r:?}");
            assert!(message(&r).contains("symbolic link"), "{method}: {r:?}");
        }
    }
    nothing_escaped(&app, &admin).await;

    // Walks neither show links nor go through them.
    let all = app
        .rpc(&t, "list", json!({"path": "/", "recursive": true}))
        .await
        .expect("list");
    let mut listed: Vec<&str> = all["items"]
        .as_array()
        .expect("items")
        .iter()
        .map(|i| i["path"].as_str().expect("path"))
        .collect();
    listed.sort_unstable();
    assert_eq!(listed, ["/mine.txt", "/sub", "/sub/own.txt"]);
    let globbed = app
        .rpc(&t, "glob", json!({"pattern": "**"}))
        .await
        .expect("glob");
    assert_eq!(globbed["total"], json!(3), "{globbed}");
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
    nothing_escaped(&app, &admin).await;
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

/// A directory swapped for a link while calls resolve through it (`renameat2` with
/// `RENAME_EXCHANGE`, atomically, again and again): every answer is alpha's own file or a
/// refusal, never beta's.
#[tokio::test]
async fn a_link_swapped_in_mid_call_does_not_escape() {
    let (app, t, admin) = linked_zones().await;
    app.write_files(&admin, &[("/zone/alpha/flip/secret.txt", "alpha side")])
        .await;
    let alpha = zone_dir(&app, "alpha");
    symlink("../beta", alpha.join("flipLink")).expect("link");
    let stop = Arc::new(AtomicBool::new(false));
    let swapper = {
        let stop = stop.clone();
        let alpha = alpha.clone();
        std::thread::spawn(move || {
            let dir = rustix::fs::open(
                &alpha,
                rustix::fs::OFlags::RDONLY | rustix::fs::OFlags::DIRECTORY,
                rustix::fs::Mode::empty(),
            )
            .expect("open alpha");
            let mut swaps = 0u64;
            while !stop.load(Ordering::Relaxed) {
                rustix::fs::renameat_with(
                    &dir,
                    "flip",
                    &dir,
                    "flipLink",
                    rustix::fs::RenameFlags::EXCHANGE,
                )
                .expect("exchange");
                swaps += 1;
            }
            swaps
        })
    };
    for _ in 0..400 {
        for (method, params) in [
            ("read", json!({"path": "/flip/secret.txt"})),
            ("stat", json!({"path": "/flip/secret.txt"})),
            ("list", json!({"path": "/flip"})),
            ("grep", json!({"pattern": "secret", "path": "/flip"})),
        ] {
            match app.rpc(&t, method, params).await {
                Ok(v) => {
                    let text = v.to_string();
                    assert!(!text.contains("beta"), "{method}: {text}");
                    if method == "read" {
                        assert_eq!(v["content"], json!("alpha side"));
                    }
                }
                Err(e) => assert!(
                    [INVALID_PATH, -32007].contains(&e["code"].as_i64().expect("code")),
                    "{method}: {e}"
                ),
            }
        }
        let r = app
            .rpc(
                &t,
                "write",
                json!({"path": "/flip/planted.txt", "content": "x"}),
            )
            .await;
        if let Err(e) = r {
            assert_eq!(e["code"], json!(INVALID_PATH), "{e}");
        }
    }
    stop.store(true, Ordering::Relaxed);
    let swaps = swapper.join().expect("swapper");
    assert!(swaps > 0);
    // The planted file, if any write got through, is on alpha's side.
    assert!(!zone_dir(&app, "beta").join("planted.txt").exists());
    nothing_escaped(&app, &admin).await;
}

// ------------------------------------------------------------------ paths over PATH_MAX

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

fn entries(dir: &Path) -> Vec<String> {
    walk_names(dir, dir)
}

fn walk_names(root: &Path, dir: &Path) -> Vec<String> {
    let mut out = Vec::new();
    let Ok(rd) = std::fs::read_dir(dir) else {
        return out;
    };
    for e in rd.flatten() {
        let p = e.path();
        out.push(p.strip_prefix(root).expect("below").display().to_string());
        if e.file_type().is_ok_and(|t| t.is_dir()) {
            out.extend(walk_names(root, &p));
        }
    }
    out.sort();
    out
}

#[tokio::test]
async fn paths_too_long_for_the_disk_are_refused_up_front() {
    let log = error_log();
    let app = TestApp::spawn_with(Backend::Sqlite, TestOptions::unthrottled()).await;
    app.zone("eng").await;
    let t = app.mint("eng", Some("eng:rw"), false).await.token;
    app.write_files(&t, &[("/keep.txt", "k")]).await;
    let before = entries(&zone_dir(&app, "eng"));

    // 16 names of 255 bytes: 4095 bytes, within the normaliser's 4096 below the zone root,
    // past PATH_MAX once `<data dir>/zones/eng/` is in front.
    let name = "n".repeat(255);
    let long = format!("/{}", [name.as_str(); 16].join("/"));
    assert!(long.len() - 1 <= 4096);
    let calls = [
        ("write", json!({"path": long, "content": "x"})),
        ("mkdir", json!({"path": long, "parents": true})),
        ("read", json!({"path": long})),
        ("stat", json!({"path": long})),
        ("delete", json!({"path": long})),
        ("list", json!({"path": long})),
        ("rename", json!({"old_path": "/keep.txt", "new_path": long})),
        ("glob", json!({"pattern": "*", "path": long})),
        ("grep", json!({"pattern": "x", "path": long})),
    ];
    for (method, params) in calls {
        let r = app.rpc(&t, method, params).await;
        assert_eq!(code(&r), INVALID_PATH, "{method}: {r:?}");
        assert!(
            message(&r).contains("too long"),
            "{method}: {}",
            message(&r)
        );
    }
    // A path that fits, but its temporary file (a 27-byte name beside it) would not: its
    // directory ends at byte 4070 of 4095, the file's own name is 5 bytes.
    let target = 4070 - zone_dir(&app, "eng").as_os_str().len();
    let mut tight = String::new();
    loop {
        let left = target - tight.len();
        if left <= 256 {
            tight.push('/');
            tight.push_str(&"d".repeat(left - 1));
            break;
        }
        tight.push('/');
        tight.push_str(&"d".repeat(if left == 257 { 254 } else { 255 }));
    }
    tight.push_str("/t.txt");
    let r = app
        .rpc(&t, "write", json!({"path": tight, "content": "x"}))
        .await;
    assert_eq!(code(&r), INVALID_PATH, "{r:?}");
    // A name over NAME_MAX is refused by the normaliser already.
    let r = app
        .rpc(
            &t,
            "write",
            json!({"path": format!("/{}", "n".repeat(256)), "content": "x"}),
        )
        .await;
    assert_eq!(code(&r), INVALID_PATH);

    // Nothing was left behind, nothing was logged as an error, and long paths that fit work.
    assert_eq!(entries(&zone_dir(&app, "eng")), before);
    let logged = String::from_utf8_lossy(&log.lock().expect("log")).into_owned();
    assert!(logged.is_empty(), "ERROR lines: {logged}");
    let fits = format!("/{}/f.txt", [name.as_str(); 10].join("/"));
    app.rpc(&t, "write", json!({"path": fits, "content": "fits"}))
        .await
        .expect("a long path that fits");
    let r = app
        .rpc(&t, "read", json!({"path": fits}))
        .await
        .expect("read it back");
    assert_eq!(r["content"], json!("fits"));
}
