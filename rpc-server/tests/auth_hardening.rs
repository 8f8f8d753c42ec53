//! Failed authentication costs what it should, and no more:
//! - an address over its failed-authentication limit is refused before any database
//!   lookup (junk tokens cannot buy lookups), while identities it verified before keep
//!   working;
//! - a malformed credential goes through the same digest, cache and lookup path as an
//!   unknown well-formed token and gets the same answer, so neither the response nor the
//!   work done tells the two apart (SPEC §2).
//!
//! - the single development key can be given without putting it on a command line
//!   (`NEXUS_DEV_API_KEY`, `--api-key-file`, refused when others can read the file);
//! - an existing data dir that others can read is tightened at start.
//!
//! Lookups are counted from the server's own metric, never timed.

use nexus_wire::methods::TokenCreateParams;
use nexus_wire::spec::RateLimit;
use rpc_server::Application;
use rpc_server::auth::PlainToken;
use rpc_server::auth::{InvalidationBus, TokenHasher};
use rpc_server::control::Control;
use rpc_server::db::Backend;
use rpc_server::testing::{
    TestApp, TestDb, TestOptions, config, free_port, metric_at, stored_file_at, test_secret,
};
use std::os::unix::fs::PermissionsExt;
use std::path::Path;
use std::process::{Child, Command, Stdio};
use std::sync::Arc;
use std::time::{Duration, Instant};

/// `find_token` database lookups so far, from the server's `/metrics`.
async fn lookups(base: &str) -> u64 {
    metric_at(
        base,
        "nexus_db_query_duration_seconds_count{op=\"find_token\"}",
    )
    .await
    .unwrap_or(0)
}

/// `whoami` with raw header values; returns the status and the refusal as the caller
/// sees it (`WWW-Authenticate` and body).
async fn whoami(base: &str, headers: &[(&str, &str)]) -> (u16, String) {
    let mut req = reqwest::Client::new()
        .post(format!("{base}/api/nfs/whoami"))
        .header("content-type", "application/json")
        .body(r#"{"jsonrpc":"2.0","id":1,"method":"whoami","params":{}}"#);
    for (k, v) in headers {
        req = req.header(*k, *v);
    }
    let resp = req.send().await.expect("request");
    let status = resp.status().as_u16();
    let www = resp
        .headers()
        .get("www-authenticate")
        .map(|v| v.to_str().unwrap_or("").to_owned())
        .unwrap_or_default();
    let body = resp.text().await.expect("body");
    (status, format!("{www}|{body}"))
}

/// `whoami` with `token` from client address `client` (behind the trusted proxy).
async fn from(base: &str, client: &str, token: &str) -> u16 {
    whoami(
        base,
        &[
            ("authorization", &format!("Bearer {token}")),
            ("x-forwarded-for", client),
        ],
    )
    .await
    .0
}

/// 200 junk tokens from one address cost at most the limit's worth of lookups (plus the
/// one that discovers the address is over it), not one each.
#[tokio::test]
async fn an_address_over_its_failure_limit_costs_no_lookups() {
    // A budget of 5 an hour: no refill during the test, so the count is exact.
    const LIMIT: u32 = 5;
    let mut o = TestOptions::unthrottled();
    o.limits.auth_failures = RateLimit {
        count: LIMIT,
        period_secs: 3600,
    };
    // Clients are told apart by X-Forwarded-For, as behind the MCP frontend.
    let db = TestDb::new(Backend::Sqlite).await;
    let mut cfg = config(&db.url, db.dir.path(), &o);
    cfg.trusted_proxies = nexus_wire::forwarded::parse_trusted(&["127.0.0.1".into()]).expect("ok");
    let bus = InvalidationBus::new();
    let server = Application::build_with_bus(cfg, bus.clone())
        .await
        .expect("server");
    let base = format!("http://127.0.0.1:{}", server.port());
    tokio::spawn(server.run_until_stopped(std::future::pending()));
    let hasher = TokenHasher::new(&test_secret()).expect("secret");
    let control = Control::new(db.store.clone(), Arc::new(hasher), bus, None);
    control.create_zone("eng").await.expect("zone");
    let mint = |name: &'static str| {
        let control = &control;
        async move {
            control
                .create_token(TokenCreateParams {
                    name: name.into(),
                    zone: Some("eng".into()),
                    ..Default::default()
                })
                .await
                .expect("mint")
                .token
        }
    };
    let known = mint("known").await;
    let later = mint("later").await;
    let (flooder, other) = ("198.51.100.1", "198.51.100.2");

    let before = lookups(&base).await;
    let mut statuses = Vec::new();
    for _ in 0..200 {
        statuses.push(from(&base, flooder, PlainToken::generate().expose()).await);
    }
    let spent = lookups(&base).await - before;
    assert!(
        statuses[..LIMIT as usize].iter().all(|s| *s == 401),
        "{statuses:?}"
    );
    assert!(
        statuses[LIMIT as usize..].iter().all(|s| *s == 429),
        "{statuses:?}"
    );
    assert_eq!(
        spent,
        u64::from(LIMIT) + 1,
        "lookups for 200 junk tokens with a limit of {LIMIT}"
    );

    // Another client is not affected; the identity it verified is then served to the
    // flooding address too, from the cache, without a lookup.
    assert_eq!(from(&base, other, &known).await, 200);
    let before = lookups(&base).await;
    assert_eq!(from(&base, flooder, &known).await, 200);
    assert_eq!(lookups(&base).await, before);
    // A token not verified recently waits like the junk does: telling it apart would
    // take the lookup the limit is there to save.
    assert_eq!(from(&base, flooder, &later).await, 429);
    assert_eq!(lookups(&base).await, before);
    assert_eq!(from(&base, other, &later).await, 200);
}

const NEGATIVE_HITS: &str = "nexus_auth_cache_requests_total{result=\"negative_hit\"}";

/// Malformed credentials are looked up like unknown ones: one lookup per distinct
/// credential, a negative-cache hit when repeated, and the same 401 (body and
/// `WWW-Authenticate`).
#[tokio::test]
async fn malformed_and_unknown_tokens_take_the_same_path() {
    let app = TestApp::spawn_with(Backend::Sqlite, TestOptions::unthrottled()).await;
    let unknown = |i: usize| {
        let t = PlainToken::generate().expose().to_owned();
        // Vary it so each is distinct.
        format!("{}{}", &t[..t.len() - 1], i % 10)
    };
    let malformed: Vec<(&str, String)> = vec![
        ("authorization", "Bearer sk-short".into()),
        ("authorization", format!("Bearer {}x", unknown(1))),
        ("authorization", format!("Bearer SK-{}", &unknown(2)[3..])),
        ("authorization", format!("Bearer {}", "a".repeat(46))),
        ("x-nexus-api-key", "sk-not!well!formed".into()),
        ("authorization", format!("Basic {}", unknown(3))),
        ("authorization", "Bearer".into()),
    ];
    let well_formed: Vec<(&str, String)> = (0..malformed.len())
        .map(|i| ("authorization", format!("Bearer {}", unknown(i))))
        .collect();

    let mut answers = Vec::new();
    for (label, set) in [("malformed", &malformed), ("unknown", &well_formed)] {
        let lookups_before = lookups(&app.base).await;
        let negative_before = app.metric(NEGATIVE_HITS).await;
        for (h, v) in set {
            let first = whoami(&app.base, &[(h, v)]).await;
            let again = whoami(&app.base, &[(h, v)]).await;
            assert_eq!(first.0, 401, "{label} {v}: {}", first.1);
            assert_eq!(first, again, "{label} {v}");
            answers.push(first);
        }
        let n = set.len() as u64;
        assert_eq!(
            lookups(&app.base).await - lookups_before,
            n,
            "{label}: one lookup per distinct credential"
        );
        assert_eq!(
            app.metric(NEGATIVE_HITS).await - negative_before,
            n,
            "{label}: the repeat is answered from the negative cache"
        );
    }
    assert!(
        answers.windows(2).all(|w| w[0] == w[1]),
        "every refusal is the same: {answers:#?}"
    );
}

// ---- nexusd as a process -------------------------------------------------------------------

/// A `nexusd` child, killed and reaped when dropped.
struct Nexusd {
    child: Child,
    base: String,
    log: std::path::PathBuf,
}

impl Drop for Nexusd {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

/// `nexusd` with no `NEXUS_*` variable of the test environment, on a free port.
fn nexusd_cmd(port: u16) -> Command {
    let mut cmd = Command::new(env!("CARGO_BIN_EXE_nexusd"));
    for (k, _) in std::env::vars_os() {
        if let Some(k) = k.to_str()
            && (k.starts_with("NEXUS_") || k == "RUST_LOG")
        {
            cmd.env_remove(k);
        }
    }
    cmd.args(["--host", "127.0.0.1", "--port", &port.to_string()])
        .stdin(Stdio::null())
        .stdout(Stdio::null());
    cmd
}

/// Starts `cmd` and waits (events: the process answering, or exiting) until it is live.
async fn start(mut cmd: Command, port: u16, logs: &Path) -> Nexusd {
    let log = logs.join(format!("nexusd-{port}.log"));
    let child = cmd
        .stderr(std::fs::File::create(&log).expect("log"))
        .spawn()
        .expect("spawn nexusd");
    let mut p = Nexusd {
        child,
        base: format!("http://127.0.0.1:{port}"),
        log,
    };
    let client = reqwest::Client::new();
    // A hang bound only: start-up normally takes well under a second.
    let deadline = Instant::now() + Duration::from_secs(60);
    loop {
        if let Some(st) = p.child.try_wait().expect("try_wait") {
            panic!(
                "nexusd exited ({st}): {}",
                std::fs::read_to_string(&p.log).unwrap_or_default()
            );
        }
        if client
            .get(format!("{}/healthz/live", p.base))
            .send()
            .await
            .is_ok_and(|r| r.status().is_success())
        {
            return p;
        }
        assert!(Instant::now() < deadline, "nexusd not live");
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
}

/// Runs `cmd` expecting it to exit with an error; returns its stderr.
fn fails_to_start(mut cmd: Command) -> String {
    let out = cmd.stderr(Stdio::piped()).output().expect("run nexusd");
    assert!(!out.status.success(), "nexusd started");
    String::from_utf8_lossy(&out.stderr).into_owned()
}

async fn whoami_status(base: &str, key: &str) -> u16 {
    reqwest::Client::new()
        .post(format!("{base}/api/nfs/whoami"))
        .bearer_auth(key)
        .body(r#"{"jsonrpc":"2.0","id":1,"method":"whoami","params":{}}"#)
        .send()
        .await
        .expect("whoami")
        .status()
        .as_u16()
}

fn mode(p: &Path) -> u32 {
    std::fs::metadata(p).expect("stat").permissions().mode() & 0o777
}

fn chmod(p: &Path, m: u32) {
    std::fs::set_permissions(p, std::fs::Permissions::from_mode(m)).expect("chmod");
}

const DEV_KEY: &str = "sk-development-key-0123456789";

/// The development key from the environment or a private file, never from argv.
#[tokio::test]
async fn the_single_key_need_not_be_on_the_command_line() {
    let tmp = tempfile::tempdir().expect("tempdir");

    let port = free_port();
    let mut cmd = nexusd_cmd(port);
    cmd.env("NEXUS_DEV_API_KEY", DEV_KEY)
        .arg("--data-dir")
        .arg(tmp.path().join("env"));
    let p = start(cmd, port, tmp.path()).await;
    assert_eq!(whoami_status(&p.base, DEV_KEY).await, 200);
    assert_eq!(whoami_status(&p.base, &format!("{DEV_KEY}x")).await, 401);
    let argv = std::fs::read(format!("/proc/{}/cmdline", p.child.id())).expect("cmdline");
    assert!(
        !String::from_utf8_lossy(&argv).contains("development-key"),
        "the key is on the command line"
    );
    drop(p);

    let file = tmp.path().join("key");
    std::fs::write(&file, format!("{DEV_KEY}\n")).expect("write key");
    chmod(&file, 0o644);
    let mut cmd = nexusd_cmd(free_port());
    cmd.arg("--api-key-file")
        .arg(&file)
        .arg("--data-dir")
        .arg(tmp.path().join("file"));
    let err = fails_to_start(cmd);
    assert!(
        err.contains("readable by others") && err.contains("chmod 600"),
        "{err}"
    );
    assert!(
        !err.contains("development-key"),
        "the key is printed: {err}"
    );

    chmod(&file, 0o600);
    let port = free_port();
    let mut cmd = nexusd_cmd(port);
    cmd.env("NEXUS_DEV_API_KEY_FILE", &file)
        .arg("--data-dir")
        .arg(tmp.path().join("file"));
    let p = start(cmd, port, tmp.path()).await;
    assert_eq!(whoami_status(&p.base, DEV_KEY).await, 200);
    drop(p);

    std::fs::write(&file, "").expect("empty key file");
    let mut cmd = nexusd_cmd(free_port());
    cmd.arg("--api-key-file").arg(&file);
    let err = fails_to_start(cmd);
    assert!(err.contains("one line"), "{err}");
}

/// Every regular file under `dir`, recursively.
fn files_under(dir: &Path) -> Vec<std::path::PathBuf> {
    let mut out = Vec::new();
    let mut stack = vec![dir.to_path_buf()];
    while let Some(d) = stack.pop() {
        for e in std::fs::read_dir(&d).expect("read dir").flatten() {
            let p = e.path();
            if p.is_dir() {
                stack.push(p);
            } else {
                out.push(p);
            }
        }
    }
    out
}

/// An old data dir of an earlier release: 0755, its database `db` 0644 (empty: a valid,
/// empty SQLite database), and files under `zones/eng/`, one small (inline once imported)
/// and one over the inline limit (a blob). Returns the large file's bytes.
fn old_data_dir(old: &Path, db: &str) -> Vec<u8> {
    std::fs::create_dir_all(old.join("zones/eng")).expect("mkdir");
    std::fs::write(old.join(db), b"").expect("db");
    std::fs::write(old.join("zones/eng/notes.md"), b"notes").expect("file");
    let large: Vec<u8> = (0..=255u8).cycle().take(40_000).collect();
    std::fs::write(old.join("zones/eng/large.bin"), &large).expect("file");
    chmod(old, 0o755);
    chmod(&old.join(db), 0o644);
    large
}

/// What nexusd made of an old data dir: the files imported into the database `db` and the
/// blob store, and every new file private: the database, `blobs/` and each blob.
async fn assert_imported_and_private(old: &Path, db: &str, large: &[u8]) {
    assert!(
        !old.join("zones").exists() && old.join("zones.imported/eng/notes.md").is_file(),
        "the old files were imported and kept aside"
    );
    let url = format!("sqlite://{}", old.join(db).display());
    assert_eq!(
        stored_file_at(&url, old, "eng", "notes.md")
            .await
            .as_deref(),
        Some(&b"notes"[..])
    );
    assert_eq!(
        stored_file_at(&url, old, "eng", "large.bin")
            .await
            .as_deref(),
        Some(large)
    );
    for suffix in ["", "-wal", "-shm"] {
        let f = old.join(format!("{db}{suffix}"));
        if suffix.is_empty() || f.exists() {
            assert_eq!(mode(&f), 0o600, "{}", f.display());
        }
    }
    let blobs = old.join("blobs");
    assert_eq!(mode(&blobs) & 0o077, 0, "blobs/: {:o}", mode(&blobs));
    let stored = files_under(&blobs);
    assert!(!stored.is_empty(), "the large file is a blob");
    for f in stored {
        assert_eq!(mode(&f) & 0o077, 0, "{}: {:o}", f.display(), mode(&f));
    }
}

/// An existing data dir (0755, database 0644) is tightened at start, and what the import
/// of its old `zones/` makes is private; a new one is created tight, database included.
/// The same in single-key mode, where the namespace has a database of its own (files.db).
#[tokio::test]
async fn nexusd_tightens_its_data_dir() {
    let tmp = tempfile::tempdir().expect("tempdir");
    let old = tmp.path().join("old");
    let large = old_data_dir(&old, "nexus.db");

    let port = free_port();
    let mut cmd = nexusd_cmd(port);
    cmd.arg("--data-dir").arg(&old);
    let p = start(cmd, port, tmp.path()).await;
    assert_eq!(mode(&old), 0o700, "existing data dir");
    assert_eq!(mode(&old.join("api_key_secret")), 0o600, "api_key_secret");
    let log = std::fs::read_to_string(&p.log).expect("log");
    assert!(log.contains("tightened"), "no warning: {log}");
    drop(p);
    assert_imported_and_private(&old, "nexus.db", &large).await;

    let new = tmp.path().join("new");
    let port = free_port();
    let mut cmd = nexusd_cmd(port);
    cmd.arg("--data-dir").arg(&new);
    let p = start(cmd, port, tmp.path()).await;
    assert_eq!(mode(&new), 0o700, "new data dir");
    for f in ["nexus.db", "api_key_secret"] {
        assert_eq!(
            mode(&new.join(f)) & 0o077,
            0,
            "{f}: {:o}",
            mode(&new.join(f))
        );
    }
    drop(p);

    let single = tmp.path().join("single");
    let large = old_data_dir(&single, "files.db");
    let port = free_port();
    let mut cmd = nexusd_cmd(port);
    cmd.env("NEXUS_DEV_API_KEY", DEV_KEY)
        .arg("--data-dir")
        .arg(&single);
    let p = start(cmd, port, tmp.path()).await;
    assert_eq!(whoami_status(&p.base, DEV_KEY).await, 200);
    assert_eq!(mode(&single), 0o700, "single-key data dir");
    drop(p);
    assert_imported_and_private(&single, "files.db", &large).await;
}

/// A new SQLite database is owner-only from its first byte (it holds every token's
/// digest): never created with the umask's mode and tightened afterwards.
#[tokio::test]
async fn a_new_sqlite_database_is_created_owner_only() {
    let dir = tempfile::tempdir().expect("tempdir");
    let file = dir.path().join("fresh.db");
    let url = format!("sqlite://{}", file.display());
    let store = rpc_server::db::Store::connect(&url).await.expect("connect");
    store.migrate().await.expect("migrate");
    for suffix in ["", "-wal", "-shm"] {
        let path = format!("{}{suffix}", file.display());
        if let Ok(meta) = std::fs::metadata(&path) {
            assert_eq!(meta.permissions().mode() & 0o777, 0o600, "{path}");
        }
    }
    assert!(file.exists(), "the database file was made");
    // An in-memory database makes no file anywhere.
    let before: Vec<_> = std::fs::read_dir(".").expect("cwd").collect();
    rpc_server::db::Store::connect("sqlite::memory:")
        .await
        .expect("in-memory");
    let after: Vec<_> = std::fs::read_dir(".").expect("cwd").collect();
    assert_eq!(before.len(), after.len(), "no file for sqlite::memory:");
}
