//! Zone isolation under hostile paths: every file method, with every hostile path in every
//! position, for a single-zone and a multi-zone token. Nothing from the zone the tokens do
//! not hold may come back, no filesystem path may leak, and nothing on disk outside the
//! tokens' own zones may change.

use rpc_server::db::Backend;
use rpc_server::testing::{TestApp, TestDb, TestOptions};
use serde_json::{Value, json};
use sha2::{Digest, Sha256};
use std::collections::BTreeMap;
use std::path::{Path, PathBuf};

const MARKER: &str = "CLASSIFIED-4f1d9c2e-b7a3-4e55-9d0a-secret-zone-marker";

/// What a hostile path must do for a token.
#[derive(Debug, Clone, Copy, PartialEq)]
enum Exp {
    /// Refused as an invalid path (-32004) by every method.
    Invalid,
    /// Refused as another zone (-32003) by every method.
    Denied,
    /// A harmless name inside the caller's own zone(s): initially not found.
    Inside,
}

use Exp::{Denied, Inside, Invalid};

/// (path, expectation for the single-zone `eng:rw` token, for the `eng:rw,ops:rw` token)
fn hostile_paths(data_dir: &str) -> Vec<(String, Exp, Exp)> {
    let mut v: Vec<(String, Exp, Exp)> = [
        // `..` in many forms
        ("..", Invalid, Invalid),
        ("/..", Invalid, Invalid),
        ("../secret/plans.txt", Invalid, Invalid),
        ("/../secret/plans.txt", Invalid, Invalid),
        ("/../../zones/secret/plans.txt", Invalid, Invalid),
        ("/zone/../secret/plans.txt", Invalid, Invalid),
        ("/zone/eng/../secret/plans.txt", Invalid, Invalid),
        ("/zone/eng/../../secret/plans.txt", Invalid, Invalid),
        ("/zone/ops/../secret/plans.txt", Invalid, Invalid),
        ("/zone/ops/../../secret/plans.txt", Invalid, Invalid),
        ("/zone/secret/../eng/readme.md", Invalid, Invalid),
        ("a/b/../../../secret/plans.txt", Invalid, Invalid),
        ("./../secret", Invalid, Invalid),
        ("/zone/eng/..", Invalid, Invalid),
        ("/zone/eng/sub/..", Invalid, Invalid),
        ("/zone/eng/../../../../etc/passwd", Invalid, Invalid),
        // doubled / tripled slashes with `..`
        ("//..//secret//plans.txt", Invalid, Invalid),
        ("///..///..///secret/plans.txt", Invalid, Invalid),
        ("/zone//eng//..//..//secret/plans.txt", Invalid, Invalid),
        (".//..//./secret", Invalid, Invalid),
        // percent-encoding
        ("%2e%2e/secret/plans.txt", Invalid, Invalid),
        ("%2E%2E/secret/plans.txt", Invalid, Invalid),
        ("/zone/eng/%2e%2e/secret/plans.txt", Invalid, Invalid),
        ("..%2fsecret%2fplans.txt", Invalid, Invalid),
        ("%2e%2e%2f%2e%2e%2fsecret", Invalid, Invalid),
        ("/zone%2fsecret%2fplans.txt", Invalid, Invalid),
        ("/zone/eng/%2E%2e%2F%2e%2E%2Fsecret", Invalid, Invalid),
        ("/zone/eng/%5c..%5csecret", Invalid, Invalid),
        ("/zone/secret%00/plans.txt", Invalid, Invalid),
        // double-encoded: never decoded, so just an odd name inside the zone
        ("/zone/eng/%252e%252e/secret", Inside, Inside),
        // NUL
        ("/zone/eng/\0/../secret", Invalid, Invalid),
        ("plans.txt\0.md", Invalid, Invalid),
        ("/zone/secret\0/plans.txt", Invalid, Invalid),
        // backslashes
        ("..\\secret\\plans.txt", Invalid, Invalid),
        ("/zone/eng\\..\\secret\\plans.txt", Invalid, Invalid),
        ("\\zone\\secret\\plans.txt", Invalid, Invalid),
        // another zone by name
        ("/zone/secret/plans.txt", Inside, Denied),
        ("/zone/secret", Inside, Denied),
        ("/zone/secret/", Inside, Denied),
        ("zone/secret/plans.txt", Inside, Denied),
        ("/zone/./secret/plans.txt", Inside, Denied),
        ("//zone//secret//plans.txt", Inside, Denied),
        ("/zone/secret/deep/x/y.txt", Inside, Denied),
        ("/zone/Secret/plans.txt", Inside, Invalid),
        ("/zone/secret /plans.txt", Inside, Invalid),
        // reserved temporary names
        ("/zone/eng/.nexus-tmp-0123456789abcdef", Invalid, Invalid),
        (".nexus-tmp-x", Invalid, Invalid),
        ("/zone/eng/sub/.nexus-tmp-x/y", Invalid, Invalid),
        // control characters
        ("/zone/eng/a\nb", Invalid, Invalid),
        ("/zone/eng/a\rb", Invalid, Invalid),
        ("/zone/eng/\u{1b}[31mred", Invalid, Invalid),
        ("/zone/eng/del\u{7f}", Invalid, Invalid),
        ("/zone/eng/nel\u{85}", Invalid, Invalid),
        ("/zone/eng/tab\tname", Invalid, Invalid),
        // unicode lookalikes: just names
        ("．．/secret/plans.txt", Inside, Invalid),
        ("/zone/eng/．．/．．/secret/plans.txt", Inside, Inside),
        ("/zone/eng/‥/secret/plans.txt", Inside, Inside),
        ("/zone/eng/∕..∕secret", Inside, Inside),
        ("/zone/eng/..;/secret", Inside, Inside),
        ("/zone/eng/file:../secret", Inside, Inside),
        ("/zone/eng/....", Inside, Inside),
        // absolute filesystem paths resolve inside the zone
        ("/etc/passwd", Inside, Invalid),
        ("/proc/self/environ", Inside, Invalid),
        ("~/secret", Inside, Invalid),
    ]
    .into_iter()
    .map(|(p, s, m)| (p.to_owned(), s, m))
    .collect();
    // over-long name, over-long path, over-deep path
    v.push(("a".repeat(256), Invalid, Invalid));
    v.push((format!("/zone/eng/{}", "b".repeat(300)), Invalid, Invalid));
    v.push((
        format!("/zone/eng/{}", "abcdefg/".repeat(520)),
        Invalid,
        Invalid,
    ));
    v.push((format!("/zone/eng/{}", "d/".repeat(70)), Invalid, Invalid));
    // the data dir's own path
    v.push((
        format!("{data_dir}/zones/secret/plans.txt"),
        Inside,
        Invalid,
    ));
    v
}

/// Every file and directory under `root`, with a content hash for files.
fn snapshot(root: &Path) -> BTreeMap<PathBuf, Option<String>> {
    walkdir::WalkDir::new(root)
        .follow_links(false)
        .into_iter()
        .map(|e| {
            let e = e.expect("walk");
            let rel = e.path().strip_prefix(root).expect("prefix").to_path_buf();
            let hash = e
                .file_type()
                .is_file()
                .then(|| hex::encode(Sha256::digest(std::fs::read(e.path()).expect("read"))));
            (rel, hash)
        })
        .collect()
}

/// Every file the server stores, `zone/path` → a hash of its bytes.
async fn stored_snapshot(app: &TestApp) -> BTreeMap<String, String> {
    let mut out = BTreeMap::new();
    for f in app.stored_files().await {
        let (zone, rel) = f.split_once('/').expect("zone/path");
        let bytes = app
            .stored(zone, rel)
            .await
            .unwrap_or_else(|| panic!("{f} is listed but not readable"));
        out.insert(f, hex::encode(Sha256::digest(bytes)));
    }
    out
}

/// Drops the stored files the tokens may legitimately change: those of their own zones.
fn outside_own_zones(s: &BTreeMap<String, String>) -> BTreeMap<String, String> {
    s.iter()
        .filter(|(p, _)| !p.starts_with("eng/") && !p.starts_with("ops/"))
        .map(|(p, h)| (p.clone(), h.clone()))
        .collect()
}

/// Drops what storing files may legitimately change on disk: the blob store under the
/// data dir `data` (and an SQLite database there, were there one).
fn outside_storage(
    s: &BTreeMap<PathBuf, Option<String>>,
    data: &Path,
) -> BTreeMap<PathBuf, Option<String>> {
    let blobs = data.join("blobs");
    s.iter()
        .filter(|(p, _)| {
            let db = p.parent() == Some(data)
                && p.file_name()
                    .and_then(|n| n.to_str())
                    .is_some_and(|n| n.starts_with("nexus.db") || n.starts_with("files.db"));
            let in_blobs = p.starts_with(&blobs) && *p != &blobs;
            !in_blobs && !db
        })
        .map(|(p, h)| (p.clone(), h.clone()))
        .collect()
}

struct Ctx<'a> {
    app: &'a TestApp,
    /// Strings that must never appear in a response unless the request carried them.
    leaks: Vec<String>,
    /// Leak strings the caller itself has sent (and may have used as file names).
    known: Vec<String>,
    calls: usize,
}

impl Ctx<'_> {
    /// One call; checks HTTP 200, no secret marker, no filesystem path, no internal error.
    async fn call(&mut self, token: &str, method: &str, params: Value) -> Result<Value, Value> {
        self.calls += 1;
        let request = params.to_string();
        let (status, body) = self.app.rpc_raw(Some(token), method, params).await;
        let text = body.to_string();
        let shown: String = request.chars().take(200).collect();
        assert_eq!(status, 200, "{method} {shown}: {text}");
        assert!(
            !text.contains(MARKER),
            "{method} {shown}: the secret zone's content leaked: {text}"
        );
        for leak in &self.leaks {
            if request.contains(leak.as_str()) {
                self.known.push(leak.clone());
            }
        }
        for leak in &self.leaks {
            if !self.known.contains(leak) {
                assert!(
                    !text.contains(leak.as_str()),
                    "{method} {shown}: filesystem path leaked: {text}"
                );
            }
        }
        match body.get("error") {
            Some(e) => {
                assert_ne!(e["code"], json!(-32603), "{method} {shown}: internal error");
                Err(e.clone())
            }
            None => Ok(body["result"].clone()),
        }
    }
}

fn err_code(r: &Result<Value, Value>) -> Option<i64> {
    r.as_ref().err().map(|e| e["code"].as_i64().expect("code"))
}

fn expected_code(e: Exp) -> Option<i64> {
    match e {
        Invalid => Some(-32004),
        Denied => Some(-32003),
        Inside => None,
    }
}

/// Items of a glob, grep or list result as paths.
fn result_paths(method: &str, v: &Value) -> Vec<String> {
    v["items"]
        .as_array()
        .expect("items")
        .iter()
        .map(|i| match method {
            "glob" => i.as_str().expect("glob item").to_owned(),
            _ => i["path"].as_str().expect("item path").to_owned(),
        })
        .collect()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn hostile_paths_never_cross_zones() {
    // The data dir lives inside a sandbox so that an escape above it would show up too.
    let sandbox = tempfile::tempdir().expect("sandbox");
    std::fs::write(sandbox.path().join("canary.txt"), "outside the data dir").expect("canary");
    let data_dir = tempfile::Builder::new()
        .prefix("data")
        .tempdir_in(sandbox.path())
        .expect("data dir");
    let data_path = data_dir.path().to_path_buf();
    let db = TestDb::new(Backend::Postgres).await;
    let app = TestApp::start(db, data_dir, TestOptions::unthrottled()).await;
    for z in ["eng", "ops", "secret"] {
        app.zone(z).await;
    }
    let admin = app.mint("root", None, true).await;
    for (path, content) in [
        ("/zone/secret/plans.txt", format!("{MARKER}\nplans\n")),
        ("/zone/secret/readme.md", format!("{MARKER} readme\n")),
        ("/zone/secret/deep/x/y.txt", format!("{MARKER} deep\n")),
        ("/zone/eng/readme.md", "eng readme\n".to_owned()),
        ("/zone/ops/runbook.md", "ops runbook\n".to_owned()),
    ] {
        app.rpc(
            &admin.token,
            "write",
            json!({"path": path, "content": content}),
        )
        .await
        .expect("seed");
    }
    let single = app.mint("single", Some("eng:rw"), false).await;
    let multi = app.mint("multi", Some("eng:rw,ops:rw"), false).await;

    let data_str = data_path.to_str().expect("utf-8 path").to_owned();
    // The test looks for the data dir's resolved name too, in case it sits behind a link.
    #[allow(clippy::disallowed_methods)]
    let canonical = data_path
        .canonicalize()
        .expect("canonical")
        .to_str()
        .expect("utf-8")
        .to_owned();
    let sandbox_str = sandbox.path().to_str().expect("utf-8").to_owned();
    let mut leaks = vec![data_str.clone(), canonical, sandbox_str];
    leaks.dedup();
    let before = snapshot(sandbox.path());
    let stored_before = stored_snapshot(&app).await;
    let rel_data = data_path
        .strip_prefix(sandbox.path())
        .expect("inside sandbox")
        .to_path_buf();
    assert!(
        stored_before.contains_key("secret/plans.txt"),
        "the secret file is where the test expects it: {:?}",
        stored_before.keys()
    );

    let paths = hostile_paths(&data_str);
    assert!(paths.len() >= 40, "{}", paths.len());
    let mut cx = Ctx {
        app: &app,
        leaks,
        known: Vec::new(),
        calls: 0,
    };
    let tokens = [
        ("single", single.token.as_str(), true),
        ("multi", multi.token.as_str(), false),
    ];
    // The data dir's own path goes last: once a token has used it as a name, its own
    // files carry it, so from then on it is no longer a leak to see it.
    let (main_paths, data_dir_path) = paths.split_at(paths.len() - 1);
    assert!(data_dir_path[0].0.starts_with(&data_str));
    for chunk in [main_paths, data_dir_path] {
        reads_first(&mut cx, &tokens, chunk).await;
        every_method(&mut cx, &tokens, chunk).await;
    }

    // Glob patterns aimed at the secret zone.
    for pattern in [
        "../secret/*",
        "../../secret/**",
        "/zone/secret/**",
        "zone/secret/*",
        "**/secret/**",
        "**/plans.txt",
        "**/*",
        "{..,secret}/**",
        "/zone/*/plans.txt",
        "/**/y.txt",
    ] {
        for (label, token, is_single) in tokens {
            let r = cx
                .call(token, "glob", json!({"pattern": pattern, "path": "/"}))
                .await;
            if let Ok(v) = &r {
                for p in result_paths("glob", v) {
                    assert!(
                        is_single || p.starts_with("/zone/eng/") || p.starts_with("/zone/ops/"),
                        "{label} glob {pattern:?} returned {p}"
                    );
                }
            }
        }
    }

    // Searches from the multi-zone token's root see its zones and nothing else.
    let all = cx
        .call(
            &multi.token,
            "glob",
            json!({"pattern": "**", "path": "/", "limit": 1000}),
        )
        .await
        .expect("glob **");
    let found = result_paths("glob", &all);
    assert!(
        found.contains(&"/zone/eng/readme.md".to_owned()),
        "{found:?}"
    );
    assert!(
        found.contains(&"/zone/ops/runbook.md".to_owned()),
        "{found:?}"
    );
    assert!(
        found
            .iter()
            .all(|p| p.starts_with("/zone/eng/") || p.starts_with("/zone/ops/")),
        "{found:?}"
    );
    let grep = cx
        .call(
            &multi.token,
            "grep",
            json!({"pattern": ".", "path": "/", "limit": 1000}),
        )
        .await
        .expect("grep .");
    let hits = result_paths("grep", &grep);
    assert!(hits.contains(&"/zone/eng/readme.md".to_owned()), "{hits:?}");
    assert!(
        hits.contains(&"/zone/ops/runbook.md".to_owned()),
        "{hits:?}"
    );
    assert!(
        hits.iter()
            .all(|p| p.starts_with("/zone/eng/") || p.starts_with("/zone/ops/")),
        "{hits:?}"
    );
    let marker_hits = cx
        .call(
            &multi.token,
            "grep",
            json!({"pattern": "CLASSIFIED", "path": "/"}),
        )
        .await
        .expect("grep marker");
    assert_eq!(marker_hits["total"], json!(0), "{marker_hits}");
    let listing = cx
        .call(
            &multi.token,
            "list",
            json!({"path": "/", "recursive": true, "limit": 1000}),
        )
        .await
        .expect("list / recursive");
    let listed = result_paths("list", &listing);
    assert!(
        listed.contains(&"/zone/ops/runbook.md".to_owned()),
        "{listed:?}"
    );
    assert!(
        listed
            .iter()
            .all(|p| p.starts_with("/zone/eng") || p.starts_with("/zone/ops")),
        "{listed:?}"
    );
    for token in [&single.token, &multi.token] {
        let r = cx
            .call(token, "grep", json!({"pattern": "CLASSIFIED", "path": "/"}))
            .await
            .expect("grep");
        assert_eq!(r["total"], json!(0), "{r}");
    }

    // Raw bodies: the path string carried as invalid UTF-8 is a parse error, and JSON
    // escapes decode to the same refused text as the literal characters.
    let raw_cases: Vec<(Vec<u8>, i64)> = vec![
        (
            raw_read_body(b"/zone/eng/\xff\xfe/../secret/plans.txt"),
            -32700,
        ),
        (raw_read_body(b"/\xc0\xae\xc0\xae/secret/plans.txt"), -32700),
        (raw_read_body(b"/zone/eng/\xed\xa0\x80"), -32700),
        (raw_read_body(br"/zone/eng/\ud800/x"), -32700),
        (raw_read_body(br"\u002e\u002e/secret/plans.txt"), -32004),
        (raw_read_body(br"/zone/eng/\u0000/x"), -32004),
        (raw_read_body(br"/zone/eng/\u005c..\u005csecret"), -32004),
    ];
    for &(label, token, _) in &tokens {
        for (body, want) in &raw_cases {
            let resp = app
                .client
                .post(format!("{}/api/nfs/read", app.base))
                .bearer_auth(token)
                .header("content-type", "application/json")
                .body(body.clone())
                .send()
                .await
                .expect("request");
            assert_eq!(resp.status().as_u16(), 200);
            let text = resp.text().await.expect("body");
            let v: Value = serde_json::from_str(&text).expect("json response");
            assert_eq!(
                v["error"]["code"],
                json!(want),
                "{label} {}: {text}",
                String::from_utf8_lossy(body)
            );
            assert!(!text.contains(MARKER));
            assert!(!text.contains(&data_str));
        }
    }

    // Stored: the secret zone and everything outside eng/ and ops/ are as they were.
    let stored_after = stored_snapshot(&app).await;
    let secret_of = |s: &BTreeMap<String, String>| -> BTreeMap<String, String> {
        s.iter()
            .filter(|(p, _)| p.starts_with("secret/"))
            .map(|(p, h)| (p.clone(), h.clone()))
            .collect()
    };
    assert_eq!(
        secret_of(&stored_before).len(),
        3,
        "{:?}",
        secret_of(&stored_before).keys()
    );
    assert_eq!(secret_of(&stored_before), secret_of(&stored_after));
    assert_eq!(
        outside_own_zones(&stored_before),
        outside_own_zones(&stored_after)
    );
    // The hostile calls did write inside the tokens' own zones, so the snapshot saw them.
    assert_ne!(
        stored_before, stored_after,
        "no call changed anything: the checks above saw nothing"
    );
    // On disk: the sandbox (canary, data dir) gained or lost nothing outside the blob
    // store; no hostile name became a file anywhere.
    let after = snapshot(sandbox.path());
    assert_eq!(
        outside_storage(&before, &rel_data),
        outside_storage(&after, &rel_data)
    );
    assert!(
        after.contains_key(Path::new("canary.txt")),
        "the canary outside the data dir is still there"
    );
    // And the secret content is still readable by its holder.
    let r = app
        .rpc(
            &admin.token,
            "read",
            json!({"path": "/zone/secret/plans.txt"}),
        )
        .await
        .expect("admin read");
    assert!(r["content"].as_str().expect("content").starts_with(MARKER));
    assert!(cx.calls > 2000, "{} calls", cx.calls);
}

type Tokens<'a> = [(&'a str, &'a str, bool); 2];

/// Reads only, before anything has been written: exact outcomes.
async fn reads_first(cx: &mut Ctx<'_>, tokens: &Tokens<'_>, paths: &[(String, Exp, Exp)]) {
    for (path, s_exp, m_exp) in paths {
        for &(label, token, is_single) in tokens {
            let exp = if is_single { *s_exp } else { *m_exp };
            let r = cx.call(token, "read", json!({"path": path})).await;
            let want = expected_code(exp).unwrap_or(-32007);
            assert_eq!(err_code(&r), Some(want), "{label} read {path:?}: {r:?}");
            for (method, params) in [
                ("stat", json!({"path": path})),
                ("list", json!({"path": path})),
                ("glob", json!({"pattern": "**", "path": path})),
                ("grep", json!({"pattern": ".", "path": path})),
            ] {
                let r = cx.call(token, method, params).await;
                match expected_code(exp) {
                    Some(c) => {
                        assert_eq!(err_code(&r), Some(c), "{label} {method} {path:?}: {r:?}")
                    }
                    None if method == "stat" => {
                        let v = r.expect("stat of a name inside the zone");
                        assert_eq!(v["exists"], json!(false), "{label} stat {path:?}: {v}");
                    }
                    None => {
                        // Nothing there yet: an error (not found), never an item.
                        assert_eq!(
                            err_code(&r),
                            Some(-32007),
                            "{label} {method} {path:?}: {r:?}"
                        );
                    }
                }
            }
        }
    }
}

/// Every method with the path in every position.
async fn every_method(cx: &mut Ctx<'_>, tokens: &Tokens<'_>, paths: &[(String, Exp, Exp)]) {
    for (path, s_exp, m_exp) in paths {
        for &(label, token, is_single) in tokens {
            let exp = if is_single { *s_exp } else { *m_exp };
            let src = if is_single {
                "/src.txt"
            } else {
                "/zone/eng/src.txt"
            };
            let dst = if is_single {
                "/dst.txt"
            } else {
                "/zone/eng/dst.txt"
            };
            let calls = [
                ("write", json!({"path": path, "content": "hostile-write"})),
                ("read", json!({"path": path})),
                (
                    "edit",
                    json!({"path": path, "edits": [{"old_str": "hostile-write", "new_str": "edited"}]}),
                ),
                ("stat", json!({"path": path})),
                ("list", json!({"path": path, "recursive": true})),
                ("glob", json!({"pattern": "**", "path": path})),
                ("grep", json!({"pattern": ".", "path": path})),
                ("delete", json!({"path": path})),
                ("mkdir", json!({"path": path, "parents": true})),
                ("rmdir", json!({"path": path, "recursive": true})),
                (
                    "rename",
                    json!({"old_path": path, "new_path": dst, "overwrite": true}),
                ),
            ];
            for (method, params) in calls {
                let r = cx.call(token, method, params).await;
                if let Some(c) = expected_code(exp) {
                    assert_eq!(err_code(&r), Some(c), "{label} {method} {path:?}: {r:?}");
                }
                if let (Ok(v), "glob" | "grep" | "list", false) = (&r, method, is_single) {
                    for p in result_paths(method, v) {
                        assert!(
                            p.starts_with("/zone/eng/") || p.starts_with("/zone/ops/"),
                            "{label} {method} {path:?} returned {p}"
                        );
                    }
                }
            }
            // As the destination of a rename, with a source that exists.
            cx.call(token, "write", json!({"path": src, "content": "src"}))
                .await
                .expect("write rename source");
            let r = cx
                .call(token, "rename", json!({"old_path": src, "new_path": path}))
                .await;
            if let Some(c) = expected_code(exp) {
                assert_eq!(err_code(&r), Some(c), "{label} rename -> {path:?}: {r:?}");
                let still = cx.call(token, "read", json!({"path": src})).await;
                assert_eq!(still.expect("source kept")["content"], json!("src"));
            }
            // Inside a glob pattern.
            let r = cx
                .call(token, "glob", json!({"pattern": path, "path": "/"}))
                .await;
            if let (Ok(v), false) = (&r, is_single) {
                for p in result_paths("glob", v) {
                    assert!(
                        p.starts_with("/zone/eng/") || p.starts_with("/zone/ops/"),
                        "{label} glob pattern {path:?} returned {p}"
                    );
                }
            }
        }
    }
}

fn raw_read_body(path: &[u8]) -> Vec<u8> {
    let mut b = br#"{"jsonrpc":"2.0","id":1,"method":"read","params":{"path":""#.to_vec();
    b.extend_from_slice(path);
    b.extend_from_slice(br#""}}"#);
    b
}

/// A single-zone token naming another zone in its path just names a directory inside its
/// own zone; writing there lands in its own zone and reading gives back its own bytes.
#[tokio::test]
async fn a_single_zone_token_naming_another_zone_stays_in_its_own() {
    let app = TestApp::spawn(Backend::Postgres).await;
    for z in ["eng", "secret"] {
        app.zone(z).await;
    }
    let admin = app.mint("root", None, true).await;
    app.rpc(
        &admin.token,
        "write",
        json!({"path": "/zone/secret/plans.txt", "content": MARKER}),
    )
    .await
    .expect("seed secret");
    let single = app.mint("single", Some("eng:rw"), false).await;

    let r = app
        .rpc(
            &single.token,
            "read",
            json!({"path": "/zone/secret/plans.txt"}),
        )
        .await;
    assert_eq!(err_code(&r), Some(-32007), "{r:?}");
    app.rpc(
        &single.token,
        "write",
        json!({"path": "/zone/secret/plans.txt", "content": "mine"}),
    )
    .await
    .expect("write inside own zone");
    let r = app
        .rpc(
            &single.token,
            "read",
            json!({"path": "/zone/secret/plans.txt"}),
        )
        .await
        .expect("read back");
    assert_eq!(r["content"], json!("mine"));
    assert_eq!(
        app.stored("eng", "zone/secret/plans.txt").await.as_deref(),
        Some(&b"mine"[..]),
        "eng's copy"
    );
    assert_eq!(
        app.stored("secret", "plans.txt").await.as_deref(),
        Some(MARKER.as_bytes()),
        "secret's copy"
    );
    assert_eq!(
        app.stored_files().await,
        ["eng/zone/secret/plans.txt", "secret/plans.txt"]
    );
    // The admin still reads the real secret, untouched.
    let r = app
        .rpc(
            &admin.token,
            "read",
            json!({"path": "/zone/secret/plans.txt"}),
        )
        .await
        .expect("admin read");
    assert_eq!(r["content"], json!(MARKER));
}
