//! How fast changes to tokens and zones reach a running server's identity cache: at once
//! through a shared invalidation bus (or the server's own admin methods), and within the
//! cache TTL when the control plane is a separate process with no bus to the server.

use rpc_server::db::Backend;
use rpc_server::testing::{TestApp, TestOptions, code};
use serde_json::{Value, json};
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, Ordering};
use std::time::Duration;

async fn status(app: &TestApp, token: &str) -> u16 {
    app.rpc_raw(Some(token), "whoami", json!({})).await.0
}

async fn whoami(app: &TestApp, token: &str) -> Value {
    app.rpc(token, "whoami", json!({}))
        .await
        .expect("whoami succeeds")
}

#[tokio::test]
async fn a_revoke_through_the_shared_bus_is_refused_on_the_very_next_request() {
    let app = TestApp::spawn(Backend::Postgres).await;
    app.zone("eng").await;
    let t = app.mint("agent", Some("eng:rw"), false).await;
    let other = app.mint("bystander", Some("eng:rw"), false).await;
    // Used twice: the second answer comes from the identity cache.
    assert_eq!(status(&app, &t.token).await, 200);
    assert_eq!(status(&app, &t.token).await, 200);
    assert_eq!(status(&app, &other.token).await, 200);

    let info = app.control.revoke_token("agent").await.expect("revoke");
    assert_eq!(info.status, "revoked");
    assert_eq!(status(&app, &t.token).await, 401);
    // Other cached identities are untouched.
    assert_eq!(status(&app, &other.token).await, 200);
}

/// Requests racing with a revoke: every request that starts after the revoke has returned
/// is refused, however many requests were in flight when it happened. Several rounds, since
/// a race shows only now and then.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn no_request_started_after_a_revoke_is_accepted() {
    let app = TestApp::spawn_with(Backend::Postgres, TestOptions::unthrottled()).await;
    app.zone("eng").await;
    for round in 0..8 {
        let name = format!("busy-{round}");
        let t = app.mint(&name, Some("eng:rw"), false).await;
        assert_eq!(status(&app, &t.token).await, 200);

        let revoked = Arc::new(AtomicBool::new(false));
        let stop = Arc::new(AtomicBool::new(false));
        let mut tasks = Vec::new();
        for _ in 0..6 {
            let (client, base, token) = (app.client.clone(), app.base.clone(), t.token.clone());
            let (revoked, stop) = (revoked.clone(), stop.clone());
            tasks.push(tokio::spawn(async move {
                let mut seen = Vec::new();
                while !stop.load(Ordering::SeqCst) {
                    let after = revoked.load(Ordering::SeqCst);
                    let s = client
                        .post(format!("{base}/api/nfs/whoami"))
                        .bearer_auth(&token)
                        .json(&json!({"jsonrpc": "2.0", "id": 1, "params": {}}))
                        .send()
                        .await
                        .expect("request")
                        .status()
                        .as_u16();
                    seen.push((after, s));
                }
                seen
            }));
        }
        tokio::time::sleep(Duration::from_millis(40)).await;
        app.control.revoke_token(&name).await.expect("revoke");
        revoked.store(true, Ordering::SeqCst);
        tokio::time::sleep(Duration::from_millis(80)).await;
        stop.store(true, Ordering::SeqCst);

        let (mut before_ok, mut after, mut stale) = (0, 0, 0);
        for task in tasks {
            for (started_after, s) in task.await.expect("task") {
                if started_after {
                    after += 1;
                    if s != 401 {
                        stale += 1;
                    }
                } else if s == 200 {
                    before_ok += 1;
                }
            }
        }
        assert!(
            before_ok > 0,
            "round {round}: never accepted before the revoke"
        );
        assert!(after > 0, "round {round}: no request ran after the revoke");
        assert_eq!(
            stale, 0,
            "round {round}: {stale} of {after} requests started after the revoke were not refused"
        );
    }
}

/// The same race without HTTP, at the identity cache itself: once `invalidate` has
/// returned, `get` must never hand out the identity again. (moka's lazy
/// `invalidate_entries_if` alone let it through for a moment in most rounds.)
#[test]
fn the_identity_cache_never_returns_an_identity_after_invalidating_it() {
    use nexus_wire::spec::SubjectType;
    use rpc_server::auth::cache::Cached;
    use rpc_server::auth::invalidation::{Invalidation, Subscriber};
    use rpc_server::auth::{Identity, IdentityCache, TokenDigest};

    let mut stale_rounds = Vec::new();
    for round in 0..50u8 {
        let cache = Arc::new(IdentityCache::new(
            Duration::from_secs(60),
            Duration::from_secs(5),
        ));
        let key_id = uuid::Uuid::new_v4();
        let digest = TokenDigest([round; 32]);
        let identity = Arc::new(Identity {
            key_id,
            name: "t".into(),
            user_id: "t".into(),
            subject_type: SubjectType::Agent,
            is_admin: false,
            zones: Vec::new(),
            expires_at: None,
            rate_limit: None,
            subject: None,
            rebac: Default::default(),
            credential: rpc_server::auth::Credential::Database,
            groups: Vec::new(),
            permissions: None,
        });
        cache.insert_valid(digest, identity, cache.epoch());
        assert!(matches!(cache.get(&digest), Some(Cached::Valid(_))));

        let invalidated = Arc::new(AtomicBool::new(false));
        let readers: Vec<_> = (0..2)
            .map(|_| {
                let (cache, invalidated) = (cache.clone(), invalidated.clone());
                std::thread::spawn(move || {
                    let (mut after, mut stale) = (0u32, 0u32);
                    while after < 3000 {
                        let is_after = invalidated.load(Ordering::SeqCst);
                        let hit = matches!(cache.get(&digest), Some(Cached::Valid(_)));
                        if is_after {
                            after += 1;
                            stale += u32::from(hit);
                        }
                    }
                    stale
                })
            })
            .collect();
        std::thread::sleep(Duration::from_millis(2));
        cache.invalidate(&Invalidation::Token { key_id });
        invalidated.store(true, Ordering::SeqCst);
        let stale: u32 = readers.into_iter().map(|r| r.join().expect("reader")).sum();
        if stale > 0 {
            stale_rounds.push((round, stale));
        }
    }
    assert!(
        stale_rounds.is_empty(),
        "(round, stale hits after invalidate returned): {stale_rounds:?}"
    );
}

/// A control plane in another process with no way to the server (no bus, no Redis, and a
/// database without the change notification triggers, as before that migration): the
/// revoked token lives on in the server's cache until the TTL, and not a moment longer.
#[tokio::test(flavor = "current_thread", start_paused = false)]
async fn without_a_shared_bus_the_cache_ttl_bounds_a_revoked_tokens_life() {
    let app = TestApp::spawn_with(
        Backend::Postgres,
        TestOptions {
            shared_bus: false,
            auth_cache_ttl: Duration::from_secs(60),
            ..Default::default()
        },
    )
    .await;
    app.zone("eng").await;
    app.db.without_notify_triggers().await;
    let t = app.mint("cli-revoked", Some("eng:rw"), false).await;
    let fresh = app.mint("never-used", Some("eng:rw"), false).await;
    assert_eq!(status(&app, &t.token).await, 200);

    app.control
        .revoke_token("cli-revoked")
        .await
        .expect("revoke");
    app.control
        .revoke_token("never-used")
        .await
        .expect("revoke");
    // Not cached: the database says revoked.
    assert_eq!(status(&app, &fresh.token).await, 401);
    // Cached: still accepted, since the server was never told.
    assert_eq!(status(&app, &t.token).await, 200);

    // The cache judges freshness by tokio's clock, which `advance` moves. While the clock is paused, tokio auto-advances it to the next timer whenever the
    // runtime idles, so a request that waits on the database (whose pool has a 3 s acquire
    // timeout) can time out spuriously. The request answered from the cache does no
    // database I/O and runs paused; the clock is resumed before the one that needs the
    // database. Resuming keeps the advanced offset: tokio's clock stays 61 s ahead.
    tokio::time::pause();
    tokio::time::advance(Duration::from_secs(58)).await;
    assert_eq!(
        status(&app, &t.token).await,
        200,
        "refused before the TTL passed"
    );
    tokio::time::advance(Duration::from_secs(3)).await;
    tokio::time::resume();
    assert_eq!(
        status(&app, &t.token).await,
        401,
        "accepted after the TTL passed"
    );
}

/// The server's own admin methods publish on the server's bus: immediate even when the
/// test's control plane is detached.
#[tokio::test]
async fn a_revoke_through_the_admin_method_is_immediate_without_a_shared_bus() {
    let app = TestApp::spawn_with(
        Backend::Postgres,
        TestOptions {
            shared_bus: false,
            ..Default::default()
        },
    )
    .await;
    app.zone("eng").await;
    let admin = app.mint("root", None, true).await;
    let t = app.mint("target", Some("eng:rw"), false).await;
    assert_eq!(status(&app, &t.token).await, 200);
    let r = app
        .rpc(
            &admin.token,
            "hub_admin_token_revoke",
            json!({"identifier": t.key_id}),
        )
        .await
        .expect("revoke");
    assert_eq!(r["status"], json!("revoked"), "{r}");
    assert_eq!(status(&app, &t.token).await, 401);
    // The admin token that did it is unaffected.
    assert_eq!(status(&app, &admin.token).await, 200);
}

#[tokio::test]
async fn zone_deletion_refuses_its_holders_at_once() {
    let app = TestApp::spawn(Backend::Postgres).await;
    for z in ["eng", "ops"] {
        app.zone(z).await;
    }
    let holder = app.mint("holder", Some("eng:rw,ops:r"), false).await;
    let only_ops = app.mint("only-ops", Some("ops:rw"), false).await;
    let eng_only = app.mint("eng-only", Some("eng:rw"), false).await;
    let admin = app.mint("root", None, true).await;
    app.rpc(
        &admin.token,
        "write",
        json!({"path": "/zone/ops/runbook.md", "content": "ops runbook"}),
    )
    .await
    .expect("admin writes into ops");
    for t in [&holder, &only_ops, &eng_only, &admin] {
        assert_eq!(status(&app, &t.token).await, 200);
    }
    assert_eq!(zones_of(&whoami(&app, &admin.token).await), ["eng", "ops"]);

    app.control.delete_zone("ops").await.expect("delete ops");

    assert_eq!(status(&app, &holder.token).await, 401);
    assert_eq!(status(&app, &only_ops.token).await, 401);
    assert_eq!(status(&app, &eng_only.token).await, 200);
    // The zoneless admin no longer sees the zone: not in whoami, not in /, not readable.
    assert_eq!(zones_of(&whoami(&app, &admin.token).await), ["eng"]);
    let root = app
        .rpc(&admin.token, "list", json!({"path": "/"}))
        .await
        .expect("list /");
    let names: Vec<&str> = root["items"]
        .as_array()
        .expect("items")
        .iter()
        .map(|i| i["name"].as_str().expect("name"))
        .collect();
    assert_eq!(names, ["eng"]);
    let r = app
        .rpc(
            &admin.token,
            "read",
            json!({"path": "/zone/ops/runbook.md"}),
        )
        .await;
    assert_eq!(code(&r), -32003, "{r:?}");

    // Restoring the zone brings its holders back at once (their refusals are not cached).
    let back = app.control.restore_zone("ops").await.expect("restore ops");
    assert_eq!(back.tokens_regaining_access, 2, "holder and only_ops");
    assert_eq!(status(&app, &holder.token).await, 200);
    assert_eq!(zones_of(&whoami(&app, &admin.token).await), ["eng", "ops"]);
}

fn zones_of(whoami: &Value) -> Vec<String> {
    whoami["zones"]
        .as_array()
        .expect("zones")
        .iter()
        .map(|z| z["zone"].as_str().expect("zone").to_owned())
        .collect()
}

#[tokio::test]
async fn zone_grant_changes_take_effect_at_once() {
    let app = TestApp::spawn(Backend::Postgres).await;
    for z in ["eng", "ops"] {
        app.zone(z).await;
    }
    let admin = app.mint("root", None, true).await;
    app.rpc(
        &admin.token,
        "write",
        json!({"path": "/zone/ops/a.txt", "content": "ops-a"}),
    )
    .await
    .expect("seed ops");
    let g = app.mint("grantee", Some("eng:rw"), false).await;
    app.rpc(
        &g.token,
        "write",
        json!({"path": "/a.txt", "content": "eng-a"}),
    )
    .await
    .expect("seed eng");
    let w = whoami(&app, &g.token).await;
    assert_eq!(w["path_mode"], json!("single"));

    // Add ops read-only: the token turns multi-zone at once.
    app.control
        .add_token_zones("grantee", "ops:r")
        .await
        .expect("add ops:r");
    let w = whoami(&app, &g.token).await;
    assert_eq!(w["path_mode"], json!("multi"), "{w}");
    assert_eq!(
        w["zones"],
        json!([{"zone": "eng", "permission": "rw"}, {"zone": "ops", "permission": "r"}])
    );
    let r = app
        .rpc(&g.token, "read", json!({"path": "/zone/ops/a.txt"}))
        .await
        .expect("read ops");
    assert_eq!(r["content"], json!("ops-a"));
    let r = app
        .rpc(
            &g.token,
            "write",
            json!({"path": "/zone/ops/b.txt", "content": "x"}),
        )
        .await;
    assert_eq!(code(&r), -32003, "{r:?}");

    // Upgrade ops to rw: writes work at once.
    app.control
        .add_token_zones("grantee", "ops:rw")
        .await
        .expect("upgrade ops");
    app.rpc(
        &g.token,
        "write",
        json!({"path": "/zone/ops/b.txt", "content": "x"}),
    )
    .await
    .expect("write ops after upgrade");

    // Remove ops: single-zone again; /zone/ops/a.txt is now just a name inside eng.
    app.control
        .remove_token_zones("grantee", &["ops".to_owned()])
        .await
        .expect("remove ops");
    let w = whoami(&app, &g.token).await;
    assert_eq!(w["path_mode"], json!("single"), "{w}");
    assert_eq!(w["zones"], json!([{"zone": "eng", "permission": "rw"}]));
    let r = app
        .rpc(&g.token, "read", json!({"path": "/zone/ops/a.txt"}))
        .await;
    assert_eq!(code(&r), -32007, "{r:?}");
    let r = app
        .rpc(&g.token, "read", json!({"path": "/a.txt"}))
        .await
        .expect("read eng");
    assert_eq!(r["content"], json!("eng-a"));

    // Downgrade eng to read-only: the next write is refused.
    app.control
        .add_token_zones("grantee", "eng:r")
        .await
        .expect("downgrade eng");
    let r = app
        .rpc(&g.token, "write", json!({"path": "/a.txt", "content": "y"}))
        .await;
    assert_eq!(code(&r), -32003, "{r:?}");
    let r = app
        .rpc(&g.token, "read", json!({"path": "/a.txt"}))
        .await
        .expect("read eng");
    assert_eq!(r["content"], json!("eng-a"));
}
