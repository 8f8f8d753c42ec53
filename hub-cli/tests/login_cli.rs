//! The local provider from an operator's seat (SPEC §10), with real `nexus serve`
//! processes and the `nexus` CLI: root bootstrap with and without `NEXUS_ROOT_PASSWORD`
//! (a generated password shown exactly once and stored only as an argon2id hash),
//! `nexus admin set-password` from standard input (and `--create`, a new local user), `nexus hub keys rotate` and `list` on a
//! running server's database, and unknown-user vs wrong-password login timing.

use crate::common;

use common::http;
use common::procs::{Proc, free_port, hub_cmd, nexus_cmd, serve_cmd, start_nexusd};
use rpc_server::db::Backend;
use rpc_server::testing::TestDb;
use serde_json::{Value, json};
use std::path::Path;
use std::process::Stdio;
use std::time::{Duration, Instant};
use tokio::io::AsyncWriteExt;

const ROOT_PW: &str = "root-password-for-cli-tests";

/// `nexus serve` with the database and local providers on `db_url`.
async fn nexusd(
    name: &'static str,
    db_url: &str,
    dir: &Path,
    env: &[(&str, &str)],
) -> (Proc, String) {
    let port = free_port();
    let mut cmd = serve_cmd(db_url, &dir.join(format!("data-{name}")), port);
    cmd.env("NEXUS_AUTH_TYPE", "database,local");
    for (k, v) in env {
        cmd.env(k, v);
    }
    start_nexusd(name, cmd, dir, port).await
}

async fn login_from(base: &str, user: &str, pw: &str, xff: Option<&str>) -> (u16, Value) {
    let mut r = http()
        .post(format!("{base}/auth/login"))
        .json(&json!({"username": user, "password": pw}));
    if let Some(x) = xff {
        r = r.header("x-forwarded-for", x);
    }
    let resp = r.send().await.expect("login");
    let st = resp.status().as_u16();
    (st, resp.json().await.unwrap_or(Value::Null))
}

async fn login(base: &str, user: &str, pw: &str) -> (u16, Value) {
    login_from(base, user, pw, None).await
}

/// The login token of a successful login.
async fn token(base: &str, user: &str, pw: &str) -> String {
    let (st, v) = login(base, user, pw).await;
    assert_eq!(st, 200, "login {user}: {v}");
    v["token"].as_str().expect("token").to_owned()
}

async fn me(base: &str, token: &str) -> u16 {
    http()
        .get(format!("{base}/auth/me"))
        .bearer_auth(token)
        .send()
        .await
        .expect("me")
        .status()
        .as_u16()
}

/// The `kid` of a JWT's header, decoded by hand (the test must not share the server's
/// parser).
fn kid(jwt: &str) -> String {
    use base64::Engine as _;
    let head = jwt.split('.').next().expect("header");
    let bytes = base64::engine::general_purpose::URL_SAFE_NO_PAD
        .decode(head)
        .expect("base64url header");
    let v: Value = serde_json::from_slice(&bytes).expect("json header");
    assert_eq!(v["alg"], "EdDSA", "{v}");
    v["kid"].as_str().expect("kid").to_owned()
}

/// Runs `nexus <args>` with `env` and `stdin` fed to it; (exit code, stdout, stderr).
async fn nexus_stdin(args: &[&str], env: &[(&str, &str)], stdin: &[u8]) -> (i32, String, String) {
    let mut cmd = nexus_cmd();
    cmd.args(args)
        .envs(env.iter().copied())
        .stdin(Stdio::piped())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped());
    let mut cmd = tokio::process::Command::from(cmd);
    cmd.kill_on_drop(true);
    let mut child = cmd.spawn().expect("spawn nexus");
    let mut input = child.stdin.take().expect("stdin");
    input.write_all(stdin).await.expect("write stdin");
    drop(input);
    let out = tokio::time::timeout(common::procs::CLI_WAIT, child.wait_with_output())
        .await
        .unwrap_or_else(|_| panic!("nexus {args:?} hung"))
        .expect("nexus output");
    let text = |b: &[u8]| String::from_utf8_lossy(b).into_owned();
    (
        out.status.code().unwrap_or(-1),
        text(&out.stdout),
        text(&out.stderr),
    )
}

/// The password of the "generated password" banner in a nexusd log, if any.
fn generated_password(log: &str) -> Option<String> {
    let mut lines = log.lines();
    lines.find(|l| l.contains("generated password"))?;
    Some(lines.next()?.trim().to_owned())
}

/// Every byte of the SQLite database at `url` (its WAL and journal included).
fn sqlite_bytes(url: &str) -> Vec<u8> {
    let path = Path::new(url.strip_prefix("sqlite://").expect("sqlite url"));
    let dir = path.parent().expect("dir");
    let stem = path
        .file_name()
        .expect("name")
        .to_string_lossy()
        .into_owned();
    let mut all = Vec::new();
    for e in std::fs::read_dir(dir).expect("read dir").flatten() {
        if e.file_name().to_string_lossy().starts_with(&stem) {
            all.extend(std::fs::read(e.path()).expect("read db file"));
        }
    }
    assert!(!all.is_empty(), "no database file at {url}");
    all
}

fn contains(hay: &[u8], needle: &str) -> bool {
    hay.windows(needle.len()).any(|w| w == needle.as_bytes())
}

/// Polls (bounded: 10 s) until the token is refused at `base`.
async fn refused_soon(base: &str, token: &str) -> bool {
    let deadline = Instant::now() + Duration::from_secs(10);
    while Instant::now() < deadline {
        if me(base, token).await == 401 {
            return true;
        }
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
    false
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn root_with_nexus_root_password_logs_in_and_nothing_about_it_is_printed() {
    let db = TestDb::new(Backend::Sqlite).await;
    let (p, base) = nexusd(
        "root-env",
        &db.url,
        db.dir.path(),
        &[("NEXUS_ROOT_PASSWORD", ROOT_PW)],
    )
    .await;
    let t = token(&base, "root", ROOT_PW).await;
    assert_eq!(me(&base, &t).await, 200);
    let log = p.log_text();
    assert!(!log.contains(ROOT_PW), "the password is in the log:\n{log}");
    assert!(
        generated_password(&log).is_none(),
        "no generated password when one is given:\n{log}"
    );
    let u = db
        .store
        .find_local_user("root")
        .await
        .expect("read")
        .expect("root exists");
    assert!(
        u.password_hash.starts_with("$argon2id$"),
        "an argon2id hash"
    );
    assert!(!contains(&sqlite_bytes(&db.url), ROOT_PW));
}

async fn generated_root_password_is_shown_once(backend: Backend) {
    let db = TestDb::new(backend).await;
    let dir = tempfile::tempdir().expect("tempdir");
    let (first, base) = nexusd("first-start", &db.url, dir.path(), &[]).await;
    let log = first.log_text();
    let pw = generated_password(&log).unwrap_or_else(|| panic!("no generated password:\n{log}"));
    assert!(pw.len() >= 20, "a strong password: {pw:?}");
    assert_eq!(log.matches(&pw).count(), 1, "printed exactly once:\n{log}");
    let t = token(&base, "root", &pw).await;
    assert_eq!(me(&base, &t).await, 200);
    drop(first);

    let (second, base) = nexusd("second-start", &db.url, dir.path(), &[]).await;
    let log = second.log_text();
    assert!(
        !log.contains(&pw) && generated_password(&log).is_none(),
        "the second start prints no password:\n{log}"
    );
    token(&base, "root", &pw).await;
    drop(second);

    let u = db
        .store
        .find_local_user("root")
        .await
        .expect("read")
        .expect("root exists");
    assert!(
        u.password_hash.starts_with("$argon2id$"),
        "an argon2id hash"
    );
    assert!(!u.password_hash.contains(&pw));
    if backend == Backend::Sqlite {
        assert!(
            !contains(&sqlite_bytes(&db.url), &pw),
            "the password is nowhere in the database files"
        );
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn generated_root_password_is_shown_once_sqlite() {
    generated_root_password_is_shown_once(Backend::Sqlite).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn generated_root_password_is_shown_once_postgres() {
    generated_root_password_is_shown_once(Backend::Postgres).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn set_password_from_stdin_replaces_the_old_one_and_ends_sessions() {
    let db = TestDb::new(Backend::Postgres).await;
    let (_p, base) = nexusd(
        "set-password",
        &db.url,
        db.dir.path(),
        &[("NEXUS_ROOT_PASSWORD", ROOT_PW)],
    )
    .await;
    let root = token(&base, "root", ROOT_PW).await;
    let r = http()
        .post(format!("{base}/auth/users"))
        .bearer_auth(&root)
        .json(&json!({"username": "alice", "password": "alice-old-password"}))
        .send()
        .await
        .expect("create alice");
    assert_eq!(r.status().as_u16(), 201);
    let before = token(&base, "alice", "alice-old-password").await;
    let env = [("NEXUS_DATABASE_URL", db.url.as_str())];

    let new_pw = "alice-new-password";
    let (code, out, err) = nexus_stdin(
        &["admin", "set-password", "alice"],
        &env,
        format!("{new_pw}\n").as_bytes(),
    )
    .await;
    assert_eq!(code, 0, "{out}{err}");
    assert!(!out.contains(new_pw) && !err.contains(new_pw));
    assert_eq!(login(&base, "alice", new_pw).await.0, 200);
    assert_eq!(login(&base, "alice", "alice-old-password").await.0, 401);
    assert!(
        refused_soon(&base, &before).await,
        "a login token from before the change is refused"
    );
    let u = db
        .store
        .find_local_user("alice")
        .await
        .expect("read")
        .expect("alice");
    assert!(u.password_hash.starts_with("$argon2id$") && !u.password_hash.contains(new_pw));

    // Refusals change nothing.
    let (code, _, err) = nexus_stdin(&["admin", "set-password", "bob"], &env, b"x\n").await;
    assert_eq!(code, 1, "unknown user: {err}");
    assert!(err.contains("no local user"), "{err}");
    let (code, _, err) = nexus_stdin(&["admin", "set-password", "alice"], &env, b"\n").await;
    assert_eq!(code, 1, "empty password: {err}");
    assert!(err.contains("empty"), "{err}");
    let (code, _, err) = nexus_stdin(&["admin", "set-password", "alice"], &env, b"").await;
    assert_eq!(code, 1, "no input: {err}");
    let (code, _, err) = nexus_stdin(
        &[
            "admin",
            "set-password",
            "alice",
            "--remote",
            "http://127.0.0.1:9",
        ],
        &env,
        b"x\n",
    )
    .await;
    assert_eq!(code, 2, "{err}");
    assert!(err.contains("no remote form"), "{err}");
    let (code, _, _) = nexus_stdin(
        &["admin", "set-password", "alice", "as-argument"],
        &env,
        b"",
    )
    .await;
    assert_eq!(code, 2, "a password is never an argument");
    assert_eq!(
        login(&base, "alice", new_pw).await.0,
        200,
        "the refused runs changed nothing"
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn set_password_create_makes_a_local_user_from_the_cli() {
    let db = TestDb::new(Backend::Postgres).await;
    let (_p, base) = nexusd(
        "set-password-create",
        &db.url,
        db.dir.path(),
        &[("NEXUS_ROOT_PASSWORD", ROOT_PW)],
    )
    .await;
    let env = [("NEXUS_DATABASE_URL", db.url.as_str())];
    let pw = "carol-first-password";

    // Without --create, the hint names the command that makes one.
    let (code, _, err) = nexus_stdin(&["admin", "set-password", "carol"], &env, b"x\n").await;
    assert_eq!(code, 1, "{err}");
    assert!(err.contains("set-password carol --create"), "{err}");

    let (code, out, err) = nexus_stdin(
        &[
            "admin",
            "set-password",
            "carol",
            "--create",
            "--permissions",
            "READ,WRITE",
        ],
        &env,
        format!("{pw}\n").as_bytes(),
    )
    .await;
    assert_eq!(code, 0, "{out}{err}");
    assert!(
        out.contains("Local user created: carol (READ,WRITE;"),
        "{out}"
    );
    assert!(!out.contains(pw) && !err.contains(pw));
    // The running server signs her in; she is a registered user subject.
    let t = token(&base, "carol", pw).await;
    assert_eq!(me(&base, &t).await, 200);
    let u = db
        .store
        .find_local_user("carol")
        .await
        .expect("read")
        .expect("carol");
    assert_eq!(
        (u.permissions.as_str(), u.zones.as_str()),
        ("READ,WRITE", "")
    );
    assert!(u.password_hash.starts_with("$argon2id$"));
    assert!(db.store.get_subject("carol").await.expect("read").is_some());

    // With zones, and READ alone by default.
    let (code, out, err) = nexus_stdin(
        &[
            "admin",
            "set-password",
            "dave",
            "--create",
            "--zones",
            "eng:rw",
        ],
        &env,
        b"dave-password\n",
    )
    .await;
    assert_eq!(code, 0, "{out}{err}");
    let u = db
        .store
        .find_local_user("dave")
        .await
        .expect("read")
        .expect("dave");
    assert_eq!(
        (u.permissions.as_str(), u.zones.as_str()),
        ("READ", "eng:rw")
    );

    // Refusals change nothing: an existing user, SUPER, unknown permissions, bad zones,
    // a name that is not a subject id, a subject that is not a user, --zones alone.
    let (code, _, err) = nexus_stdin(
        &["admin", "set-password", "carol", "--create"],
        &env,
        b"another-password\n",
    )
    .await;
    assert_eq!(code, 1, "{err}");
    assert!(err.contains("exists"), "{err}");
    assert_eq!(login(&base, "carol", pw).await.0, 200, "password unchanged");
    for (args, want) in [
        (vec!["--permissions", "SUPER"], 2),
        (vec!["--permissions", "READ,OWNER"], 2),
        (vec!["--zones", "eng:x"], 2),
    ] {
        let mut all = vec!["admin", "set-password", "erin", "--create"];
        all.extend(args.iter().copied());
        let (code, _, err) = nexus_stdin(&all, &env, b"erin-password\n").await;
        assert_eq!(code, want, "{args:?}: {err}");
    }
    let (code, _, err) = nexus_stdin(
        &["admin", "set-password", "Erin!", "--create"],
        &env,
        b"erin-password\n",
    )
    .await;
    assert_ne!(code, 0, "{err}");
    let (code, out, err) = nexus_stdin(
        &[
            "admin",
            "create-user",
            "bot",
            "--subject-type",
            "agent",
            "--no-key",
        ],
        &env,
        b"",
    )
    .await;
    assert_eq!(code, 0, "{out}{err}");
    let (code, _, err) = nexus_stdin(
        &["admin", "set-password", "bot", "--create"],
        &env,
        b"bot-password\n",
    )
    .await;
    assert_eq!(code, 1, "{err}");
    assert!(err.contains("not a user"), "{err}");
    let (code, _, err) = nexus_stdin(
        &["admin", "set-password", "carol", "--zones", "eng:r"],
        &env,
        b"x\n",
    )
    .await;
    assert_eq!(code, 2, "--zones needs --create: {err}");
    for who in ["erin", "bot"] {
        assert!(
            db.store.find_local_user(who).await.expect("read").is_none(),
            "{who} was not made"
        );
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn keys_rotate_on_a_running_servers_database() {
    let db = TestDb::new(Backend::Sqlite).await;
    // Two servers of one hub: one public URL, so one issuer.
    let env = [
        ("NEXUS_ROOT_PASSWORD", ROOT_PW),
        ("NEXUS_URL", "http://hub.test"),
    ];
    let (_a, a) = nexusd("keys-a", &db.url, db.dir.path(), &env).await;
    let (_b, b) = nexusd("keys-b", &db.url, db.dir.path(), &env).await;
    let before = token(&a, "root", ROOT_PW).await;
    let old_kid = kid(&before);

    let list = |json: bool| {
        let mut cmd = hub_cmd(&db.url);
        cmd.args(["keys", "list"]);
        if json {
            cmd.arg("--json");
        }
        common::procs::run(&mut cmd)
    };
    let (code, out, err) = list(true);
    assert_eq!(code, 0, "{err}");
    let keys: Value = serde_json::from_str(&out).expect("json");
    assert_eq!(keys.as_array().map(Vec::len), Some(1), "{keys}");

    let (code, out, err) = common::procs::run(hub_cmd(&db.url).args(["keys", "rotate", "--json"]));
    assert_eq!(code, 0, "{out}{err}");
    let rotated: Value = serde_json::from_str(&out).expect("json");
    let new_kid = rotated["kid"].as_str().expect("kid").to_owned();
    assert_ne!(new_kid, old_kid);

    let (code, out, _) = list(true);
    assert_eq!(code, 0);
    let keys: Value = serde_json::from_str(&out).expect("json");
    let keys = keys.as_array().expect("array");
    assert_eq!(keys.len(), 2, "{keys:?}");
    for k in keys {
        let mut fields: Vec<&str> = k
            .as_object()
            .expect("object")
            .keys()
            .map(String::as_str)
            .collect();
        fields.sort_unstable();
        assert_eq!(
            fields,
            ["created_at", "kid", "not_after", "state"],
            "no key material"
        );
    }
    let state = |kid: &str| {
        keys.iter()
            .find(|k| k["kid"] == kid)
            .map(|k| (k["state"].clone(), k["not_after"].clone()))
            .expect("listed")
    };
    assert_eq!(state(&new_kid), (json!("active"), Value::Null));
    let (st, until) = state(&old_kid);
    assert_eq!(st, "retired");
    assert!(until.is_string(), "the old key verifies until a set time");
    let (code, text, _) = list(false);
    assert_eq!(code, 0);
    assert!(
        text.contains("KID") && text.contains(&new_kid) && text.contains("retired"),
        "{text}"
    );

    // Tokens signed before keep working on both servers.
    assert_eq!(me(&a, &before).await, 200);
    assert_eq!(me(&b, &before).await, 200);
    // Each running server signs with the new key from its next login, and the other
    // verifies it although it had never seen that kid.
    let from_a = token(&a, "root", ROOT_PW).await;
    let from_b = token(&b, "root", ROOT_PW).await;
    assert_eq!(kid(&from_a), new_kid);
    assert_eq!(kid(&from_b), new_kid);
    assert_eq!(me(&b, &from_a).await, 200);
    assert_eq!(me(&a, &from_b).await, 200);

    // Another secret than the servers' is refused, and changes nothing.
    let (code, _, err) = common::procs::run(
        hub_cmd(&db.url)
            .env(
                "NEXUS_API_KEY_SECRET",
                "another-secret-0123456789abcdef0123456789",
            )
            .args(["keys", "rotate"]),
    );
    assert_eq!(code, 1, "{err}");
    assert!(err.contains("cannot open the active signing key"), "{err}");
    let (_, out, _) = list(true);
    let after: Value = serde_json::from_str(&out).expect("json");
    assert_eq!(after.as_array().map(Vec::len), Some(2));
    assert_eq!(kid(&token(&a, "root", ROOT_PW).await), new_kid);
}

/// Unknown user and wrong password cost the same: one argon2id verification each. Means
/// of alternating attempts, each from its own address so no throttle bites, compared
/// with a wide margin (no absolute times).
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn unknown_user_and_wrong_password_take_alike() {
    const ROUNDS: usize = 20;
    let db = TestDb::new(Backend::Sqlite).await;
    let (_p, base) = nexusd(
        "timing",
        &db.url,
        db.dir.path(),
        &[
            ("NEXUS_ROOT_PASSWORD", ROOT_PW),
            ("NEXUS_TRUSTED_PROXIES", "127.0.0.1/32"),
        ],
    )
    .await;
    // Warm both paths (connections, caches) before measuring.
    for i in 0..2 {
        login_from(&base, "nobody", "x", Some(&format!("10.9.0.{i}"))).await;
        login_from(&base, "root", "wrong", Some(&format!("10.9.1.{i}"))).await;
    }
    let (mut unknown, mut wrong) = (Duration::ZERO, Duration::ZERO);
    for i in 0..ROUNDS {
        let (u, w) = (format!("10.1.{i}.1"), format!("10.2.{i}.1"));
        let t = Instant::now();
        let (st, v) = login_from(&base, &format!("nobody-{i}"), "guess", Some(&u)).await;
        unknown += t.elapsed();
        assert_eq!(st, 401, "{v}");
        let t = Instant::now();
        let (st2, v2) = login_from(&base, "root", "guess", Some(&w)).await;
        wrong += t.elapsed();
        assert_eq!(st2, 401, "{v2}");
        assert_eq!(v, v2, "the same refusal body");
    }
    let ratio = unknown.as_secs_f64() / wrong.as_secs_f64();
    assert!(
        (0.5..=2.0).contains(&ratio),
        "unknown user {unknown:?} vs wrong password {wrong:?} over {ROUNDS} attempts: ratio {ratio:.2}"
    );
}
