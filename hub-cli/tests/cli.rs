//! End-to-end tests of the `nexus` binary in local mode (SPEC §2, §3, §7): the real
//! executable against a fresh database per test, with an explicit environment. Cases are
//! grouped into a few test functions because every spawn of the binary costs a little.
//!
//! Every run checks that nothing panicked (no "panicked" on stdout or stderr).

use crate::common;

use chrono::{DateTime, Utc};
use common::procs::nexus_cmd;
use nexus_wire::spec::{Permission, SubjectType, ZoneGrant};
use rpc_server::db::{Backend, NewToken};
use rpc_server::testing::{BACKENDS, TEST_SECRET, TestApp, TestDb, TestOptions};
use serde_json::{Value, json};
use std::collections::BTreeSet;
use std::time::Duration;

// ---- running the binary ----------------------------------------------------------------

/// Runs `nexus <args>` with every `NEXUS_*` variable of the test environment removed, then
/// `NEXUS_DATABASE_URL` and `NEXUS_API_KEY_SECRET` set as given. Returns (exit code,
/// stdout, stderr).
fn run_with(db_url: Option<&str>, secret: Option<&str>, args: &[&str]) -> (i32, String, String) {
    let mut cmd = nexus_cmd();
    if let Some(u) = db_url {
        cmd.env("NEXUS_DATABASE_URL", u);
    }
    if let Some(s) = secret {
        cmd.env("NEXUS_API_KEY_SECRET", s);
    }
    let out = cmd.args(args).output().expect("run the nexus binary");
    let stdout = String::from_utf8(out.stdout).expect("stdout is UTF-8");
    let stderr = String::from_utf8(out.stderr).expect("stderr is UTF-8");
    assert!(
        !stderr.contains("panicked") && !stdout.contains("panicked"),
        "nexus {args:?} panicked:\n{stderr}"
    );
    (out.status.code().unwrap_or(-1), stdout, stderr)
}

/// `nexus hub <args>` against `db_url` with the test secret.
fn nexus(db_url: &str, args: &[&str]) -> (i32, String, String) {
    let mut full = vec!["hub"];
    full.extend_from_slice(args);
    run_with(Some(db_url), Some(TEST_SECRET), &full)
}

/// `nexus hub <args>` must succeed; returns stdout.
#[track_caller]
fn ok(db: &str, args: &[&str]) -> String {
    let (code, out, err) = nexus(db, args);
    assert_eq!(
        code, 0,
        "nexus hub {args:?} failed:\nstdout: {out}\nstderr: {err}"
    );
    out
}

/// `nexus hub <args>` must succeed with JSON on stdout.
#[track_caller]
fn ok_json(db: &str, args: &[&str]) -> Value {
    let out = ok(db, args);
    serde_json::from_str(&out)
        .unwrap_or_else(|e| panic!("nexus hub {args:?}: not JSON ({e}): {out}"))
}

/// `nexus hub <args>` must fail with `code`, print nothing on stdout, and exactly one
/// `error: …` line on stderr that contains `needle`. Returns stderr.
#[track_caller]
fn fails(db: &str, args: &[&str], code: i32, needle: &str) -> String {
    let (c, out, err) = nexus(db, args);
    assert_eq!(
        c, code,
        "nexus hub {args:?}: exit code\nstdout: {out}\nstderr: {err}"
    );
    assert!(
        out.is_empty(),
        "nexus hub {args:?}: stdout on failure: {out}"
    );
    assert_eq!(
        err.lines().count(),
        1,
        "nexus hub {args:?}: one error line: {err}"
    );
    assert!(err.starts_with("error: "), "nexus hub {args:?}: {err}");
    assert!(
        err.contains(needle),
        "nexus hub {args:?}: {err:?} lacks {needle:?}"
    );
    err
}

/// A clap usage error: non-zero exit, an `error:` line, nothing on stdout.
#[track_caller]
fn usage_error(db: &str, args: &[&str], needle: &str) {
    let (c, out, err) = nexus(db, args);
    assert_ne!(c, 0, "nexus hub {args:?} should fail: {out}");
    assert!(
        out.is_empty(),
        "nexus hub {args:?}: stdout on failure: {out}"
    );
    assert!(
        err.lines().any(|l| l.starts_with("error:")),
        "nexus hub {args:?}: no error line: {err}"
    );
    assert!(
        err.contains(needle),
        "nexus hub {args:?}: {err:?} lacks {needle:?}"
    );
}

/// Mints `--name name <extra> --json` and returns the created object.
#[track_caller]
fn mint(db: &str, name: &str, extra: &[&str]) -> Value {
    let mut args = vec!["token", "create", "--name", name, "--json"];
    args.extend_from_slice(extra);
    ok_json(db, &args)
}

fn s(v: &Value) -> &str {
    v.as_str().unwrap_or_else(|| panic!("not a string: {v}"))
}

fn keys(v: &Value) -> BTreeSet<String> {
    v.as_object()
        .unwrap_or_else(|| panic!("not an object: {v}"))
        .keys()
        .cloned()
        .collect()
}

fn set(items: &[&str]) -> BTreeSet<String> {
    items.iter().map(|s| (*s).to_owned()).collect()
}

/// The value of the first `key: value` line.
fn field<'a>(text: &'a str, key: &str) -> &'a str {
    let prefix = format!("{key}: ");
    text.lines()
        .find_map(|l| l.strip_prefix(prefix.as_str()))
        .unwrap_or_else(|| panic!("no {key:?} line in:\n{text}"))
}

fn time(v: &Value) -> DateTime<Utc> {
    DateTime::parse_from_rfc3339(s(v))
        .unwrap_or_else(|e| panic!("not RFC 3339 ({e}): {v}"))
        .with_timezone(&Utc)
}

fn is_token(t: &str) -> bool {
    t.strip_prefix("sk-").is_some_and(|b| {
        b.len() == 43
            && b.bytes()
                .all(|c| c.is_ascii_alphanumeric() || c == b'-' || c == b'_')
    })
}

fn grants(pairs: &[(&str, &str)]) -> Value {
    Value::Array(
        pairs
            .iter()
            .map(|(z, p)| json!({"zone_id": z, "permission": p}))
            .collect(),
    )
}

/// The entry for `key_id` in `token list --show-revoked --json`.
#[track_caller]
fn listed(db: &str, key_id: &str) -> Value {
    let all = ok_json(db, &["token", "list", "--show-revoked", "--json"]);
    all.as_array()
        .expect("token list --json is an array")
        .iter()
        .find(|t| t["key_id"] == key_id)
        .cloned()
        .unwrap_or_else(|| panic!("{key_id} not listed: {all}"))
}

/// Checks the seven status lines appear, in order (other lines may sit between them).
#[track_caller]
fn assert_status_lines(text: &str) {
    let mut lines = text.lines();
    for p in [
        "endpoint: ",
        "profile: ",
        "postgres: ",
        "redis: ",
        "tokens: ",
        "connections: ",
        "qps (5m): ",
    ] {
        assert!(
            lines.any(|l| l.starts_with(p)),
            "status: no {p:?} line in order:\n{text}"
        );
    }
}

async fn whoami_status(app: &TestApp, token: &str) -> u16 {
    app.rpc_raw(Some(token), "whoami", json!({})).await.0
}

// ---- token create ----------------------------------------------------------------------

#[tokio::test]
async fn token_create() {
    let db = TestDb::new(Backend::Postgres).await;
    let url = db.url.as_str();
    for z in ["eng", "ops", "team-a", "team-b", "other"] {
        ok(url, &["zone", "create", z]);
    }

    // Text output: key_id and token lines; the warning (and never the token) on stderr.
    let (code, out, err) = nexus(
        url,
        &[
            "token",
            "create",
            "--name",
            "alice",
            "--zones",
            "eng:rw,ops:r",
        ],
    );
    assert_eq!(code, 0, "{err}");
    let key_id = field(&out, "key_id");
    uuid::Uuid::parse_str(key_id).expect("key_id is a uuid");
    let token = field(&out, "token");
    assert!(is_token(token), "token shape: {token:?}");
    assert_eq!(field(&out, "zones"), "eng:rw,ops:r");
    assert!(err.contains("shown once"), "warning on stderr: {err:?}");
    assert!(
        !err.contains(token) && !err.contains("sk-"),
        "token on stderr: {err:?}"
    );
    assert_eq!(out.matches(token).count(), 1, "token printed once: {out}");

    // --json: one object with exactly these keys.
    let (code, out, err) = nexus(
        url,
        &[
            "token", "create", "--name", "bob", "--zone", "eng", "--json",
        ],
    );
    assert_eq!(code, 0, "{err}");
    let bob: Value = serde_json::from_str(&out).expect("one JSON object");
    assert_eq!(
        keys(&bob),
        set(&[
            "key_id",
            "token",
            "name",
            "admin",
            "zones",
            "user_id",
            "subject_type",
            "created_at",
            "expires_at",
            "rate_limit"
        ])
    );
    assert!(is_token(s(&bob["token"])), "{bob}");
    assert!(
        err.contains("shown once") && !err.contains(s(&bob["token"])),
        "{err:?}"
    );
    uuid::Uuid::parse_str(s(&bob["key_id"])).expect("key_id is a uuid");
    assert_eq!(bob["name"], "bob");
    assert_eq!(bob["admin"], false);
    assert_eq!(
        bob["zones"],
        grants(&[("eng", "rw")]),
        "--zone eng means rw"
    );
    assert_eq!(bob["user_id"], "bob", "user_id defaults to the name");
    assert_eq!(bob["subject_type"], "user");
    assert_eq!(bob["expires_at"], Value::Null);
    assert_eq!(bob["rate_limit"], Value::Null);
    let created = time(&bob["created_at"]);
    assert!(
        (Utc::now() - created).num_seconds().abs() < 120,
        "{created}"
    );

    // --admin alone: a zoneless admin.
    let root = mint(url, "root", &["--admin"]);
    assert_eq!(root["admin"], true);
    assert_eq!(root["zones"], json!([]));

    let multi = mint(url, "multi", &["--zones", "eng:rw,ops:r"]);
    assert_eq!(multi["zones"], grants(&[("eng", "rw"), ("ops", "r")]));
    assert_eq!(multi["admin"], false);

    // Globs grant exactly the matching active zones.
    let g = mint(url, "globber", &["--zones-glob", "team-*"]);
    assert_eq!(g["zones"], grants(&[("team-a", "rw"), ("team-b", "rw")]));
    let g = mint(url, "globber-r", &["--zones-glob", "team-*:r"]);
    assert_eq!(g["zones"], grants(&[("team-a", "r"), ("team-b", "r")]));
    fails(
        url,
        &[
            "token",
            "create",
            "--name",
            "g0",
            "--zones-glob",
            "nomatch-*",
        ],
        1,
        "no active zone matches",
    );

    // Other attributes.
    let a = mint(
        url,
        "agent-1",
        &[
            "--zone",
            "eng",
            "--subject-type",
            "agent",
            "--user-id",
            "u-42",
        ],
    );
    assert_eq!(a["subject_type"], "agent");
    assert_eq!(a["user_id"], "u-42");
    fails(
        url,
        &[
            "token",
            "create",
            "--name",
            "robot",
            "--zone",
            "eng",
            "--subject-type",
            "robot",
        ],
        1,
        "subject type",
    );

    let e = mint(url, "expiring", &["--zone", "eng", "--expires", "90d"]);
    let ahead = time(&e["expires_at"]) - Utc::now();
    assert!(
        (ahead - chrono::Duration::days(90)).num_seconds().abs() < 120,
        "expires_at ~90 days ahead: {}",
        e["expires_at"]
    );

    let r = mint(url, "limited", &["--zone", "eng", "--rate-limit", "10/s"]);
    assert_eq!(r["rate_limit"], "10/s");
    assert_eq!(listed(url, s(&r["key_id"]))["rate_limit"], "10/s");
    fails(
        url,
        &[
            "token",
            "create",
            "--name",
            "unlimited",
            "--zone",
            "eng",
            "--rate-limit",
            "0/s",
        ],
        1,
        "rate limit",
    );
    fails(
        url,
        &[
            "token",
            "create",
            "--name",
            "unlimited",
            "--zone",
            "eng",
            "--rate-limit",
            "ten/s",
        ],
        1,
        "invalid rate limit",
    );

    // Refusals.
    usage_error(
        url,
        &[
            "token", "create", "--name", "x1", "--zones", "eng", "--zone", "ops",
        ],
        "cannot be used with",
    );
    usage_error(
        url,
        &[
            "token",
            "create",
            "--name",
            "x2",
            "--zones",
            "eng",
            "--zones-glob",
            "team-*",
        ],
        "cannot be used with",
    );
    usage_error(
        url,
        &[
            "token",
            "create",
            "--name",
            "x3",
            "--zone",
            "eng",
            "--zones-glob",
            "team-*",
        ],
        "cannot be used with",
    );
    fails(
        url,
        &["token", "create", "--name", "nozone"],
        1,
        "a token needs zones",
    );
    for bad in ["90", "abc", "--expires=-1d"] {
        let args: Vec<&str> = if bad.starts_with("--") {
            vec!["token", "create", "--name", "d", "--zone", "eng", bad]
        } else {
            vec![
                "token",
                "create",
                "--name",
                "d",
                "--zone",
                "eng",
                "--expires",
                bad,
            ]
        };
        fails(url, &args, 1, "invalid duration");
    }
    // `10s` is well-formed but below the 1-minute floor: refused with its own message.
    fails(
        url,
        &[
            "token",
            "create",
            "--name",
            "d",
            "--zone",
            "eng",
            "--expires",
            "10s",
        ],
        1,
        "duration must be at least 1m",
    );
    // Without `=`, clap takes `-1d` for a flag: still a clean usage error.
    usage_error(
        url,
        &[
            "token",
            "create",
            "--name",
            "d",
            "--zone",
            "eng",
            "--expires",
            "-1d",
        ],
        "-1",
    );
    fails(
        url,
        &["token", "create", "--name", "alice", "--zone", "eng"],
        1,
        "\"alice\"",
    );
    fails(
        url,
        &["token", "create", "--name", "ghost", "--zone", "nope"],
        1,
        "zone \"nope\" does not exist",
    );
    fails(
        url,
        &[
            "token",
            "create",
            "--name",
            "ghost",
            "--zones",
            "eng,nope:r",
        ],
        1,
        "\"nope\"",
    );
    fails(
        url,
        &["token", "create", "--name", "a b", "--zone", "eng"],
        1,
        "invalid token name",
    );
    fails(
        url,
        &["token", "create", "--name", "bad", "--zones", "eng:x"],
        1,
        "invalid permission",
    );
    // Hostile input stays on one line, without raw control characters.
    for name in ["a\nb", "a\u{1b}[31mb"] {
        let err = fails(
            url,
            &["token", "create", "--name", name, "--zone", "eng"],
            1,
            "invalid token name",
        );
        assert!(!err.contains('\u{1b}'), "{err:?}");
        let err = fails(
            url,
            &["token", "revoke", name],
            1,
            "no active token matches",
        );
        assert!(!err.contains('\u{1b}'), "{err:?}");
    }
    fails(
        url,
        &["token", "create", "--name", "bad", "--zones", "Eng"],
        1,
        "invalid zone name",
    );

    // None of the refusals left a token behind.
    let names: BTreeSet<String> = ok_json(url, &["token", "list", "--show-revoked", "--json"])
        .as_array()
        .expect("array")
        .iter()
        .map(|t| s(&t["name"]).to_owned())
        .collect();
    assert_eq!(
        names,
        set(&[
            "alice",
            "bob",
            "root",
            "multi",
            "globber",
            "globber-r",
            "agent-1",
            "expiring",
            "limited"
        ])
    );
}

// ---- token list / revoke / zones -------------------------------------------------------

#[tokio::test]
async fn token_list_revoke_and_zones() {
    let db = TestDb::new(Backend::Postgres).await;
    let url = db.url.as_str();
    assert_eq!(ok(url, &["token", "list"]).trim(), "no tokens");
    assert_eq!(ok_json(url, &["token", "list", "--json"]), json!([]));
    ok(url, &["zone", "create", "eng"]);
    ok(url, &["zone", "create", "ops"]);

    let alpha = mint(url, "alpha", &["--zone", "eng"]);
    let beta = mint(url, "beta", &["--zones", "eng:r,ops:rw"]);
    let (alpha_id, beta_id) = (s(&alpha["key_id"]), s(&beta["key_id"]));

    // Text: a header, one row per token.
    let text = ok(url, &["token", "list"]);
    let lines: Vec<&str> = text.lines().collect();
    assert_eq!(lines.len(), 3, "{text}");
    assert!(
        lines[0].contains("KEY_ID") && lines[0].contains("NAME"),
        "{text}"
    );
    for (id, name) in [(alpha_id, "alpha"), (beta_id, "beta")] {
        assert_eq!(
            lines[1..]
                .iter()
                .filter(|l| l.contains(id) && l.contains(name) && l.contains("active"))
                .count(),
            1,
            "{text}"
        );
    }
    assert!(!text.contains("sk-"), "token in listing: {text}");

    // JSON.
    let list = ok_json(url, &["token", "list", "--json"]);
    let list = list.as_array().expect("array");
    assert_eq!(list.len(), 2);
    for t in list {
        let k = keys(t);
        for want in [
            "key_id",
            "name",
            "status",
            "zones",
            "admin",
            "created_at",
            "expires_at",
            "revoked_at",
            "last_used_at",
        ] {
            assert!(k.contains(want), "{want} missing: {t}");
        }
        assert!(!k.contains("token") && !k.contains("digest"), "{t}");
        assert_eq!(t["status"], "active");
        assert_eq!(t["revoked_at"], Value::Null);
        assert_eq!(t["admin"], false);
    }
    assert_eq!(
        listed(url, beta_id)["zones"],
        grants(&[("eng", "r"), ("ops", "rw")])
    );

    // Revoke by name.
    let out = ok(url, &["token", "revoke", "alpha"]);
    assert_eq!(out.trim(), format!("revoked: alpha ({alpha_id})"));
    let active = ok_json(url, &["token", "list", "--json"]);
    assert_eq!(active.as_array().expect("array").len(), 1);
    assert_eq!(active[0]["name"], "beta");
    let a = listed(url, alpha_id);
    assert_eq!(a["status"], "revoked");
    time(&a["revoked_at"]);
    let text = ok(url, &["token", "list", "--show-revoked"]);
    assert!(
        text.lines()
            .any(|l| l.contains(alpha_id) && l.contains("revoked")),
        "{text}"
    );
    assert!(!ok(url, &["token", "list"]).contains(alpha_id));
    // Twice: nothing active matches any more.
    fails(
        url,
        &["token", "revoke", "alpha"],
        1,
        "no active token matches",
    );
    fails(
        url,
        &["token", "revoke", alpha_id],
        1,
        "no active token matches",
    );
    // The name is free again once the holder is revoked.
    let alpha2 = mint(url, "alpha", &["--zone", "eng"]);
    assert_ne!(alpha2["key_id"], alpha["key_id"]);

    // Revoke by full key id (--json: the token's listing shape), and by an 8-digit prefix.
    let gamma = mint(url, "gamma", &["--zone", "eng"]);
    let r = ok_json(url, &["token", "revoke", s(&gamma["key_id"]), "--json"]);
    assert_eq!(r["key_id"], gamma["key_id"]);
    assert_eq!(r["status"], "revoked");
    let delta = mint(url, "delta", &["--zone", "eng"]);
    let prefix = s(&delta["key_id"])[..8].to_ascii_uppercase();
    let out = ok(url, &["token", "revoke", &prefix]);
    assert!(out.starts_with("revoked: delta ("), "{out}");
    assert_eq!(listed(url, s(&delta["key_id"]))["status"], "revoked");
    // Shorter than 8 digits is not a prefix (only a name), so nothing matches.
    let eps = mint(url, "epsilon", &["--zone", "eng"]);
    fails(
        url,
        &["token", "revoke", &s(&eps["key_id"])[..7]],
        1,
        "no active token matches",
    );
    fails(
        url,
        &["token", "revoke", "nobody"],
        1,
        "no active token matches",
    );

    // Ambiguous: B is named with A's key id; both match, exit 2, both named.
    let amb_a = mint(url, "amb-a", &["--zone", "eng"]);
    let a_id = s(&amb_a["key_id"]);
    let amb_b = mint(url, a_id, &["--zone", "eng"]);
    let b_id = s(&amb_b["key_id"]);
    let err = fails(url, &["token", "revoke", a_id], 2, a_id);
    assert!(err.contains(b_id) && err.contains("amb-a"), "{err}");
    assert_eq!(listed(url, a_id)["status"], "active");
    assert_eq!(listed(url, b_id)["status"], "active");
    // A prefix of A's key id matches only A (B's name is the whole id, not a prefix).
    assert_eq!(
        ok(url, &["token", "revoke", &a_id[..8]]).trim(),
        format!("revoked: amb-a ({a_id})")
    );
    // Now B is the only match for A's full key id (by name).
    assert_eq!(
        ok(url, &["token", "revoke", a_id]).trim(),
        format!("revoked: {a_id} ({b_id})")
    );

    // token zones show / add / remove.
    let zt = mint(url, "zt", &["--zone", "eng"]);
    let zt_id = s(&zt["key_id"]);
    assert_eq!(
        ok(url, &["token", "zones", "show", "zt"]).trim(),
        format!("zt ({zt_id}): eng:rw")
    );
    assert_eq!(
        ok_json(url, &["token", "zones", "show", zt_id, "--json"]),
        grants(&[("eng", "rw")])
    );
    assert_eq!(
        ok(url, &["token", "zones", "add", "zt", "ops:r"]).trim(),
        format!("zt ({zt_id}): eng:rw,ops:r")
    );
    // Adding a held zone changes its permission.
    assert_eq!(
        ok_json(url, &["token", "zones", "add", "zt", "eng:r", "--json"]),
        grants(&[("eng", "r"), ("ops", "r")])
    );
    assert_eq!(
        listed(url, zt_id)["zones"],
        grants(&[("eng", "r"), ("ops", "r")])
    );
    fails(url, &["token", "zones", "add", "zt", "nope"], 1, "\"nope\"");
    fails(
        url,
        &["token", "zones", "add", "zt", "Bad"],
        1,
        "invalid zone name",
    );
    fails(
        url,
        &["token", "zones", "add", "nobody", "eng"],
        1,
        "no active token matches",
    );
    assert_eq!(
        ok_json(url, &["token", "zones", "remove", "zt", "ops", "--json"]),
        grants(&[("eng", "r")])
    );
    fails(
        url,
        &["token", "zones", "remove", "zt", "ops"],
        1,
        "holds none of those zones",
    );
    // The last zone of a non-admin token stays.
    fails(
        url,
        &["token", "zones", "remove", "zt", "eng"],
        1,
        "would hold no zone",
    );
    assert_eq!(listed(url, zt_id)["zones"], grants(&[("eng", "r")]));
    usage_error(url, &["token", "zones", "remove", "zt"], "required");

    // Admin tokens: zoneless shows "every zone"; they may drop their last zone.
    mint(url, "root", &["--admin"]);
    let out = ok(url, &["token", "zones", "show", "root"]);
    assert!(out.contains("every zone"), "{out}");
    mint(url, "root-eng", &["--admin", "--zone", "eng"]);
    assert_eq!(
        ok_json(
            url,
            &["token", "zones", "remove", "root-eng", "eng", "--json"]
        ),
        json!([])
    );
    // Revoked tokens are out of reach.
    fails(
        url,
        &["token", "zones", "show", "gamma"],
        1,
        "no active token matches",
    );
}

// ---- zones -----------------------------------------------------------------------------

#[tokio::test]
async fn zone_commands() {
    let db = TestDb::new(Backend::Postgres).await;
    let url = db.url.as_str();
    assert_eq!(ok(url, &["zone", "list"]).trim(), "no zones");
    assert_eq!(ok_json(url, &["zone", "list", "--json"]), json!([]));

    assert_eq!(
        ok(url, &["zone", "create", "eng"]).trim(),
        "created zone: eng"
    );
    let ops = ok_json(url, &["zone", "create", "ops", "--json"]);
    assert_eq!(ops["zone_id"], "ops");
    assert_eq!(ops["status"], "active");
    assert_eq!(ops["tokens"], 0);
    assert_eq!(ops["deleted_at"], Value::Null);
    time(&ops["created_at"]);
    fails(url, &["zone", "create", "eng"], 1, "already exists");
    for bad in ["Eng", "a/b", "..", "_x", "a b", ""] {
        fails(url, &["zone", "create", bad], 1, "invalid zone name");
        fails(url, &["zone", "delete", bad], 1, "invalid zone name");
    }
    let long = "a".repeat(64);
    fails(url, &["zone", "create", &long], 1, "invalid zone name");

    mint(url, "t1", &["--zones", "eng,ops:r"]);
    mint(url, "t2", &["--zone", "eng"]);

    let text = ok(url, &["zone", "list"]);
    let lines: Vec<&str> = text.lines().collect();
    assert_eq!(lines.len(), 3, "{text}");
    assert!(lines[0].contains("ZONE"), "{text}");
    assert!(
        lines
            .iter()
            .any(|l| l.starts_with("eng ") && l.contains("active")),
        "{text}"
    );
    assert!(lines.iter().any(|l| l.starts_with("ops ")), "{text}");
    let list = ok_json(url, &["zone", "list", "--json"]);
    let by = |id: &str| -> Value {
        list.as_array()
            .expect("array")
            .iter()
            .find(|z| z["zone_id"] == id)
            .cloned()
            .unwrap_or_else(|| panic!("{id} not listed: {list}"))
    };
    assert_eq!(by("eng")["tokens"], 2);
    assert_eq!(by("ops")["tokens"], 1);

    let out = ok(url, &["zone", "delete", "ops"]);
    assert!(out.starts_with("deleted zone: ops"), "{out}");
    fails(url, &["zone", "delete", "ops"], 1, "\"ops\"");
    fails(url, &["zone", "delete", "nope"], 1, "\"nope\"");
    let list = ok_json(url, &["zone", "list", "--json"]);
    assert_eq!(list.as_array().expect("array").len(), 1, "{list}");
    assert_eq!(list[0]["zone_id"], "eng");
    let all = ok_json(url, &["zone", "list", "--show-deleted", "--json"]);
    let ops = all
        .as_array()
        .expect("array")
        .iter()
        .find(|z| z["zone_id"] == "ops")
        .cloned()
        .expect("deleted zone listed with --show-deleted");
    assert_eq!(ops["status"], "deleted");
    time(&ops["deleted_at"]);
    // A deleted zone can no longer be granted.
    fails(
        url,
        &["token", "create", "--name", "t3", "--zone", "ops"],
        1,
        "\"ops\"",
    );

    let del = ok_json(url, &["zone", "delete", "eng", "--json"]);
    assert_eq!(del["zone_id"], "eng");
    assert_eq!(del["status"], "deleted");
    assert_eq!(ok(url, &["zone", "list"]).trim(), "no zones");

    // Create never revives a deleted zone; restore does, explicitly.
    fails(
        url,
        &["zone", "create", "ops"],
        1,
        "nexus hub zone restore ops",
    );
    let back = ok_json(url, &["zone", "restore", "ops", "--json"]);
    assert_eq!(back["status"], "active");
    assert_eq!(back["deleted_at"], Value::Null);
}

// ---- against a running server ----------------------------------------------------------

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn cli_changes_reach_a_running_server() {
    let db = TestDb::new(Backend::Postgres).await;
    let url = db.url.clone();
    let url = url.as_str();
    ok(url, &["zone", "create", "eng"]);
    ok(url, &["zone", "create", "ops"]);
    let t1 = mint(
        url,
        "agent-1",
        &["--zones", "eng,ops:r", "--subject-type", "agent"],
    );
    let t1_token = s(&t1["token"]);
    let unused = mint(url, "unused", &["--zone", "eng"]);

    // The CLI is a separate process: the server learns of its changes from the database.
    let app = TestApp::start(
        db,
        tempfile::tempdir().expect("tempdir"),
        TestOptions {
            shared_bus: false,
            ..TestOptions::default()
        },
    )
    .await;
    let who = app
        .rpc(t1_token, "whoami", json!({}))
        .await
        .expect("whoami");
    assert_eq!(who["key_id"], t1["key_id"]);
    assert_eq!(who["name"], "agent-1");
    assert_eq!(who["subject_type"], "agent");
    assert_eq!(who["is_admin"], false);
    assert_eq!(who["path_mode"], "multi");
    assert_eq!(
        who["zones"],
        json!([{"zone": "eng", "permission": "rw"}, {"zone": "ops", "permission": "r"}])
    );

    ok(url, &["token", "revoke", "agent-1"]);
    // Cached, yet refused long before the 60 s TTL: the database announced the revoke.
    let since = std::time::Instant::now();
    while whoami_status(&app, t1_token).await != 401 {
        assert!(
            since.elapsed() < Duration::from_secs(5),
            "a cached identity outlived a CLI revoke"
        );
        tokio::time::sleep(Duration::from_millis(5)).await;
    }
    // A token the server never cached is refused as soon as it is revoked.
    ok(url, &["token", "revoke", "unused"]);
    assert_eq!(whoami_status(&app, s(&unused["token"])).await, 401);
    let (db, dir) = app.stop().await;

    // TTL zero: every request is verified against the database.
    let app = TestApp::start(
        db,
        dir,
        TestOptions {
            shared_bus: false,
            auth_cache_ttl: Duration::ZERO,
            ..TestOptions::default()
        },
    )
    .await;
    assert_eq!(whoami_status(&app, t1_token).await, 401);

    let t2 = mint(url, "agent-2", &["--zone", "eng"]);
    let t2_token = s(&t2["token"]);
    let who = app
        .rpc(t2_token, "whoami", json!({}))
        .await
        .expect("whoami");
    assert_eq!(who["path_mode"], "single");
    ok(url, &["token", "revoke", s(&t2["key_id"])]);
    assert_eq!(
        whoami_status(&app, t2_token).await,
        401,
        "revoked at once with TTL 0"
    );

    // Zone changes through the CLI.
    let t3 = mint(url, "agent-3", &["--zone", "eng"]);
    let t3_token = s(&t3["token"]);
    let root = mint(url, "root", &["--admin"]);
    let root_token = s(&root["token"]);
    ok(url, &["token", "zones", "add", "agent-3", "ops:r"]);
    let who = app
        .rpc(t3_token, "whoami", json!({}))
        .await
        .expect("whoami");
    assert_eq!(who["zones"].as_array().expect("zones").len(), 2, "{who}");
    ok(url, &["token", "zones", "remove", "agent-3", "ops"]);
    let who = app
        .rpc(t3_token, "whoami", json!({}))
        .await
        .expect("whoami");
    assert_eq!(who["zones"], json!([{"zone": "eng", "permission": "rw"}]));

    ok(url, &["zone", "delete", "eng"]);
    assert_eq!(
        whoami_status(&app, t3_token).await,
        401,
        "a token holding a deleted zone is refused"
    );
    let who = app
        .rpc(root_token, "whoami", json!({}))
        .await
        .expect("admin whoami");
    assert_eq!(who["is_admin"], true);
    app.stop().await;
}

// ---- status ----------------------------------------------------------------------------

#[tokio::test]
async fn status_postgres_and_database_down() {
    let db = TestDb::new(Backend::Postgres).await;
    let url = db.url.as_str();
    ok(url, &["zone", "create", "eng"]);
    let a = mint(url, "a", &["--zone", "eng"]);
    mint(url, "b", &["--zone", "eng"]);
    ok(url, &["token", "revoke", s(&a["key_id"])]);

    let text = ok(url, &["status"]);
    assert_status_lines(&text);
    assert_eq!(field(&text, "endpoint"), "http://127.0.0.1:2026");
    assert_eq!(field(&text, "profile"), "hub");
    assert_eq!(field(&text, "postgres"), "ok");
    // No Redis is configured for this CLI run: its figures are not applicable, not failing.
    assert_eq!(field(&text, "redis"), "n/a", "{text}");
    assert_eq!(field(&text, "tokens"), "1 active, 1 revoked, 0 expired");
    assert_eq!(field(&text, "connections"), "n/a");
    assert_eq!(field(&text, "qps (5m)"), "n/a");

    let j = ok_json(url, &["status", "--json"]);
    for k in [
        "endpoint",
        "profile",
        "postgres",
        "redis",
        "tokens",
        "connections",
        "qps_5m",
    ] {
        assert!(keys(&j).contains(k), "{k} missing: {j}");
    }
    assert_eq!(j["endpoint"], "http://127.0.0.1:2026");
    assert_eq!(j["profile"], "hub");
    assert_eq!(j["postgres"], "ok");
    assert_eq!(j["redis"], "n/a", "{j}");
    assert_eq!(
        j["tokens"],
        json!({"active": 1, "revoked": 1, "expired": 0})
    );
    assert_eq!(j["connections"], Value::Null);
    assert_eq!(j["qps_5m"], Value::Null);

    // An expired token (the CLI cannot mint one: the floor is 1m) counts as expired.
    let mut digest = [0u8; 32];
    digest[..16].copy_from_slice(uuid::Uuid::new_v4().as_bytes());
    let past = Utc::now() - chrono::Duration::days(1);
    let expired_id = uuid::Uuid::new_v4();
    db.store
        .insert_token(&NewToken {
            key_id: expired_id,
            digest,
            name: "old".into(),
            user_id: "old".into(),
            subject_type: SubjectType::Service,
            is_admin: false,
            rate_limit: None,
            created_at: past - chrono::Duration::days(1),
            expires_at: Some(past),
            zones: vec![ZoneGrant {
                zone_id: "eng".into(),
                permission: Permission::Read,
            }],
            permissions: None,
            oauth: None,
        })
        .await
        .expect("insert an expired token");
    assert_eq!(listed(url, &expired_id.to_string())["status"], "expired");
    assert_eq!(
        ok_json(url, &["status", "--json"])["tokens"],
        json!({"active": 1, "revoked": 1, "expired": 1})
    );
    let text = ok(url, &["status"]);
    assert_eq!(field(&text, "tokens"), "1 active, 1 revoked, 1 expired");

    // The database is down: exit 2, "postgres: err", and still the report. Each run waits
    // for the pool's acquire timeout, so the three run side by side.
    let down = "postgres://nexus:nexus@127.0.0.1:1/nexus";
    let (text, json_run, list) = std::thread::scope(|sc| {
        let a = sc.spawn(|| nexus(down, &["status"]));
        let b = sc.spawn(|| nexus(down, &["status", "--json"]));
        let c = sc.spawn(|| nexus(down, &["token", "list"]));
        (
            a.join().expect("status"),
            b.join().expect("status --json"),
            c.join().expect("token list"),
        )
    });
    let (code, out, err) = text;
    assert_eq!(code, 2, "stdout: {out}\nstderr: {err}");
    assert_status_lines(&out);
    assert_eq!(field(&out, "profile"), "hub");
    assert_eq!(field(&out, "postgres"), "err");
    assert_eq!(field(&out, "tokens"), "n/a");
    assert_eq!(err.lines().count(), 1, "{err}");
    assert!(err.starts_with("error: "), "{err}");
    let (code, out, _) = json_run;
    assert_eq!(code, 2);
    let j: Value = serde_json::from_str(&out).expect("status --json when down");
    assert_eq!(j["postgres"], "err");
    assert_eq!(j["profile"], "hub");
    assert_eq!(j["tokens"], Value::Null);
    // Other commands fail with one line, exit 1.
    let (code, out, err) = list;
    assert_eq!(code, 1, "{err}");
    assert!(out.is_empty(), "{out}");
    assert_eq!(err.lines().count(), 1, "{err}");
    assert!(err.contains("cannot connect to the database"), "{err}");
}

// ---- both backends ---------------------------------------------------------------------

#[tokio::test]
async fn basics_on_both_backends() {
    for backend in BACKENDS {
        let db = TestDb::new(backend).await;
        let url = db.url.as_str();
        let ctx = format!("{backend:?}");
        ok(url, &["zone", "create", "eng"]);
        assert_eq!(
            ok_json(url, &["zone", "list", "--json"])[0]["zone_id"],
            "eng",
            "{ctx}"
        );

        let (code, out, err) = nexus(url, &["token", "create", "--name", "one", "--zone", "eng"]);
        assert_eq!(code, 0, "{ctx}: {err}");
        assert!(is_token(field(&out, "token")), "{ctx}: {out}");
        assert!(err.contains("shown once"), "{ctx}: {err}");
        let one_id = field(&out, "key_id").to_owned();
        let two = mint(url, "two", &["--zones", "eng:r", "--rate-limit", "5/m"]);
        fails(
            url,
            &["token", "create", "--name", "two", "--zone", "eng"],
            1,
            "\"two\"",
        );

        let text = ok(url, &["token", "list"]);
        assert_eq!(text.lines().count(), 3, "{ctx}: {text}");
        assert!(
            text.lines().next().is_some_and(|l| l.contains("KEY_ID")),
            "{ctx}"
        );
        assert_eq!(listed(url, s(&two["key_id"]))["rate_limit"], "5/m", "{ctx}");

        let out = ok(url, &["token", "revoke", &one_id[..8]]);
        assert_eq!(out.trim(), format!("revoked: one ({one_id})"), "{ctx}");
        fails(
            url,
            &["token", "revoke", "one"],
            1,
            "no active token matches",
        );
        assert_eq!(listed(url, &one_id)["status"], "revoked", "{ctx}");
        assert_eq!(
            ok_json(url, &["token", "list", "--json"])
                .as_array()
                .map(Vec::len),
            Some(1)
        );

        let text = ok(url, &["status"]);
        assert_status_lines(&text);
        assert_eq!(
            field(&text, "tokens"),
            "1 active, 1 revoked, 0 expired",
            "{ctx}"
        );
        let j = ok_json(url, &["status", "--json"]);
        assert_eq!(
            j["tokens"],
            json!({"active": 1, "revoked": 1, "expired": 0}),
            "{ctx}"
        );
        match backend {
            Backend::Sqlite => {
                assert_eq!(j["profile"], "embedded");
                assert_eq!(j["postgres"], "n/a");
                assert_eq!(field(&text, "profile"), "embedded");
                assert_eq!(field(&text, "postgres"), "n/a");
            }
            Backend::Postgres => {
                assert_eq!(j["profile"], "hub");
                assert_eq!(j["postgres"], "ok");
            }
        }
    }
}

// ---- migrate ---------------------------------------------------------------------------

#[tokio::test]
async fn migrate_fresh_databases() {
    let pg = rpc_server::testing::empty_postgres_database("nexus_cli_migrate").await;

    let dir = tempfile::tempdir().expect("tempdir");
    let lite = format!("sqlite://{}", dir.path().join("fresh.db").display());

    for url in [pg.as_str(), lite.as_str()] {
        let out = ok(url, &["migrate"]);
        assert!(out.starts_with("migrations applied"), "{url}: {out}");
        let out = ok(url, &["migrate"]);
        assert!(out.starts_with("migrations applied"), "again, {url}: {out}");
        ok(url, &["zone", "create", "eng"]);
        mint(url, "first", &["--zone", "eng"]);
        assert!(ok(url, &["status"]).contains("tokens: 1 active"), "{url}");
    }
}

// ---- environment and arguments ---------------------------------------------------------

#[tokio::test]
async fn environment_and_argument_errors() {
    let db = TestDb::new(Backend::Postgres).await;
    let url = db.url.as_str();

    // No database URL: one line naming the variable, exit 1.
    for args in [
        &["hub", "token", "list"][..],
        &["hub", "status"],
        &["hub", "migrate"],
        &["hub", "zone", "create", "eng"],
    ] {
        let (code, out, err) = run_with(None, Some(TEST_SECRET), args);
        assert_eq!(code, 1, "{args:?}: {err}");
        assert!(out.is_empty(), "{args:?}: {out}");
        assert_eq!(err.lines().count(), 1, "{args:?}: {err}");
        assert!(err.contains("NEXUS_DATABASE_URL"), "{args:?}: {err}");
    }
    // --database-url stands in for the variable.
    let (code, out, err) = run_with(None, None, &["hub", "--database-url", url, "zone", "list"]);
    assert_eq!(code, 0, "{err}");
    assert_eq!(out.trim(), "no zones");

    // Without the secret, minting is refused; the rest works.
    ok(url, &["zone", "create", "eng"]);
    let (code, out, err) = run_with(
        Some(url),
        None,
        &["hub", "token", "create", "--name", "x", "--zone", "eng"],
    );
    assert_eq!(code, 1, "{err}");
    assert!(!out.contains("sk-"), "{out}");
    assert!(err.contains("NEXUS_API_KEY_SECRET"), "{err}");
    let (code, _, err) = run_with(Some(url), None, &["hub", "token", "list"]);
    assert_eq!(code, 0, "{err}");

    // A URL of the wrong kind.
    fails(
        "mysql://localhost/x",
        &["token", "list"],
        1,
        "cannot connect to the database",
    );

    // Bad arguments: clap's usage error, never a panic.
    for args in [
        &["hub", "token", "list", "--bogus"][..],
        &["hub", "frobnicate"],
        &["hub", "token", "create"],
        &["hub", "token", "revoke"],
        &["bogus"],
        &[],
    ] {
        let (code, out, err) = run_with(Some(url), Some(TEST_SECRET), args);
        assert_ne!(code, 0, "{args:?}: {out}");
        assert!(
            err.contains("error") || err.contains("Usage"),
            "{args:?}: {err}"
        );
    }
    let (code, _, err) = run_with(
        Some(url),
        Some(TEST_SECRET),
        &["hub", "token", "list", "--bogus"],
    );
    assert_eq!(code, 2);
    assert!(err.contains("--bogus"), "{err}");
}

// ---- embedded secret -------------------------------------------------------------------

/// Without `NEXUS_API_KEY_SECRET`, a SQLite hub's secret comes from the file beside the
/// database, so tokens minted by the CLI verify on a server using that secret.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn embedded_secret_file_on_sqlite() {
    let db = TestDb::new(Backend::Sqlite).await;
    let url = db.url.clone();
    ok(&url, &["zone", "create", "default"]);
    let create = [
        "hub", "token", "create", "--name", "emb", "--zone", "default", "--json",
    ];
    let (code, _, err) = run_with(Some(&url), None, &create);
    assert_eq!(code, 1, "no secret anywhere: {err}");
    assert!(err.contains("NEXUS_API_KEY_SECRET"), "{err}");

    std::fs::write(
        db.dir.path().join(rpc_server::config::SECRET_FILE),
        format!("{TEST_SECRET}\n"),
    )
    .expect("write the secret file");
    let (code, out, err) = run_with(Some(&url), None, &create);
    assert_eq!(code, 0, "{err}");
    let t: Value = serde_json::from_str(&out).expect("json");
    let app = TestApp::start(
        db,
        tempfile::tempdir().expect("tempdir"),
        TestOptions::default(),
    )
    .await;
    let who = app
        .rpc(s(&t["token"]), "whoami", json!({}))
        .await
        .expect("whoami");
    assert_eq!(who["name"], "emb");
    assert_eq!(who["path_mode"], "single");
    app.stop().await;
}

// ---- an un-migrated database ------------------------------------------------------------

#[tokio::test]
async fn unmigrated_database_points_at_migrate() {
    let url = rpc_server::testing::empty_postgres_database("nexus_cli_unmigrated").await;
    for (args, want) in [
        (&["token", "list"][..], 1),
        (&["zone", "create", "eng"], 1),
        (&["status"], 2),
    ] {
        let (code, _, err) = nexus(&url, args);
        assert_eq!(code, want, "{args:?}: {err}");
        assert!(
            err.contains("migrate"),
            "{args:?}: unhelpful error: {err:?}"
        );
    }
}

// ---- OAuth clients ------------------------------------------------------------------------

/// `hub oauth clients revoke <url>` blocks a metadata document's client before its first
/// use (listed as kind `cimd`, revoked); an unknown registered id is still an error.
#[tokio::test]
async fn oauth_clients_revoke_blocks_an_unseen_metadata_document_url() {
    let db = TestDb::new(Backend::Sqlite).await;
    let url = &db.url;
    let client = "https://app.example/oauth/client.json";
    let out = ok(url, &["oauth", "clients", "revoke", client]);
    assert!(out.contains("revoked OAuth client"), "{out}");
    let listed = ok_json(url, &["oauth", "clients", "list", "--json"]);
    let row = listed
        .as_array()
        .expect("array")
        .iter()
        .find(|c| c["client_id"] == client)
        .unwrap_or_else(|| panic!("listed: {listed}"));
    assert_eq!(row["kind"], "cimd");
    assert_eq!(row["status"], "revoked");
    assert!(
        !db.store
            .oauth_block_client(client, chrono::Utc::now())
            .await
            .expect("block"),
        "already known"
    );
    let again = ok_json(url, &["oauth", "clients", "revoke", client, "--json"]);
    assert_eq!(again["revoked"], true);
    fails(
        url,
        &["oauth", "clients", "revoke", "dcr-nope"],
        1,
        "no OAuth client",
    );
}
