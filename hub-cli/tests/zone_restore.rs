//! A deleted zone comes back only through an explicit restore (SPEC §3, §7): `zone create`
//! of a deleted name (CLI or admin RPC) refuses, pointing to `zone restore`, and revives
//! nobody's access; `zone restore` brings the zone, its files and its holders back and
//! says how many tokens regain access. The real `nexus` binary against a running server
//! on both backends.

use crate::common;

use common::procs::{hub_cmd, run};
use rpc_server::db::Backend;
use rpc_server::testing::{BACKENDS, TestApp, TestOptions};
use serde_json::{Value, json};
use std::time::Duration;

/// `nexus hub <args>` with only this test's database and secret in the environment.
fn hub(db_url: &str, args: &[&str]) -> (i32, String, String) {
    run(hub_cmd(db_url).args(args))
}

#[track_caller]
fn hub_ok(db_url: &str, args: &[&str]) -> String {
    let (code, out, err) = hub(db_url, args);
    assert_eq!(code, 0, "nexus hub {args:?}: {out}{err}");
    out
}

/// Must fail with exit 1 and one `error:` line containing `needle`.
#[track_caller]
fn hub_fails(db_url: &str, args: &[&str], needle: &str) {
    let (code, out, err) = hub(db_url, args);
    assert_eq!(code, 1, "nexus hub {args:?}: {out}{err}");
    assert!(out.is_empty(), "nexus hub {args:?}: stdout {out}");
    assert_eq!(err.lines().count(), 1, "nexus hub {args:?}: {err}");
    assert!(
        err.starts_with("error: ") && err.contains(needle),
        "nexus hub {args:?}: {err}"
    );
}

async fn status(app: &TestApp, token: &str) -> u16 {
    app.rpc_raw(Some(token), "whoami", json!({})).await.0
}

fn zone_status(db_url: &str, zone: &str) -> String {
    let all: Value = serde_json::from_str(&hub_ok(
        db_url,
        &["zone", "list", "--show-deleted", "--json"],
    ))
    .expect("json");
    all.as_array()
        .expect("array")
        .iter()
        .find(|z| z["zone_id"] == zone)
        .map(|z| z["status"].as_str().expect("status").to_owned())
        .unwrap_or_default()
}

async fn exercise(backend: Backend) {
    // No identity cache: every request asks the database, so what the CLI (a separate
    // process) changed is what the next request sees.
    let app = TestApp::spawn_with(
        backend,
        TestOptions {
            auth_cache_ttl: Duration::ZERO,
            shared_bus: false,
            ..TestOptions::unthrottled()
        },
    )
    .await;
    let db = app.db.url.clone();
    let db = db.as_str();
    for z in ["eng", "ops", "tmp"] {
        hub_ok(db, &["zone", "create", z]);
    }
    let holder = app.mint("holder", Some("ops:rw"), false).await;
    let both = app.mint("both", Some("eng:rw,ops:r"), false).await;
    let also_tmp = app.mint("also-tmp", Some("ops:rw,tmp:rw"), false).await;
    let revoked = app.mint("revoked", Some("ops:rw"), false).await;
    let admin = app.mint("root", None, true).await;
    app.write_files(&holder.token, &[("/report.txt", "quarterly")])
        .await;
    hub_ok(db, &["token", "revoke", "revoked"]);
    hub_ok(db, &["zone", "delete", "tmp"]);
    hub_ok(db, &["zone", "delete", "ops"]);
    for t in [&holder, &both, &also_tmp] {
        assert_eq!(status(&app, &t.token).await, 401, "{backend:?} {}", t.name);
    }

    // Creating the deleted name refuses and changes nothing, from the CLI and over RPC.
    hub_fails(db, &["zone", "create", "ops"], "nexus hub zone restore ops");
    let r = app
        .rpc(
            &admin.token,
            "hub_admin_zone_create",
            json!({"name": "ops"}),
        )
        .await;
    let e = r.expect_err("create of a deleted zone over RPC");
    assert_eq!(e["code"], -32001, "{backend:?} {e}");
    assert!(
        e["message"].as_str().is_some_and(|m| m.contains("restore")),
        "{e}"
    );
    assert_eq!(zone_status(db, "ops"), "deleted");
    for t in [&holder, &both, &also_tmp] {
        assert_eq!(status(&app, &t.token).await, 401, "{backend:?} {}", t.name);
    }

    // Restore says who comes back: not the revoked token, not the one also holding a
    // zone that is still deleted.
    let out = hub_ok(db, &["zone", "restore", "ops"]);
    assert_eq!(
        out.trim(),
        "restored zone: ops (2 tokens regain access)",
        "{backend:?}"
    );
    assert_eq!(status(&app, &holder.token).await, 200);
    assert_eq!(status(&app, &both.token).await, 200);
    assert_eq!(status(&app, &also_tmp.token).await, 401);
    assert_eq!(status(&app, &revoked.token).await, 401);
    let file = app
        .rpc(&holder.token, "read", json!({"path": "/report.txt"}))
        .await
        .expect("the zone's file is back");
    assert_eq!(file["content"], "quarterly");

    hub_fails(db, &["zone", "restore", "ops"], "is active, not deleted");
    hub_fails(db, &["zone", "restore", "nope"], "no zone named \"nope\"");
    hub_fails(db, &["zone", "restore", "Bad!"], "invalid zone name");

    // The admin RPC equivalent, with --json's shape.
    app.rpc(
        &admin.token,
        "hub_admin_zone_delete",
        json!({"name": "ops"}),
    )
    .await
    .expect("delete over RPC");
    let back = app
        .rpc(
            &admin.token,
            "hub_admin_zone_restore",
            json!({"name": "ops"}),
        )
        .await
        .expect("restore over RPC");
    assert_eq!(back["zone_id"], "ops", "{back}");
    assert_eq!(back["status"], "active", "{back}");
    assert_eq!(back["tokens_regaining_access"], 2, "{back}");
    hub_ok(db, &["zone", "delete", "ops"]);
    let j: Value =
        serde_json::from_str(&hub_ok(db, &["zone", "restore", "ops", "--json"])).expect("json");
    assert_eq!(j["zone_id"], "ops");
    assert_eq!(j["deleted_at"], Value::Null);
    assert_eq!(j["tokens_regaining_access"], 2);
    let non_admin = app
        .rpc(
            &holder.token,
            "hub_admin_zone_restore",
            json!({"name": "ops"}),
        )
        .await
        .expect_err("admin only");
    assert_eq!(non_admin["code"], -32003, "{non_admin}");
    app.stop().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_deleted_zone_comes_back_only_through_restore() {
    for backend in BACKENDS {
        exercise(backend).await;
    }
}
